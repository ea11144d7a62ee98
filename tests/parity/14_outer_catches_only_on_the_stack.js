// D-64, D-73: a synchronous throw in a handler-less inner domain goes to
// the outer domain on the stack; D-65: an async one does not (only the
// inner domain is on the stack when its timer fires).
'use strict';
const {named, out, report} = require('./common');

const d3 = named('d3');
const d4 = named('d4');
const d5 = named('d5');
const d6 = named('d6');
report(d3);
report(d5);
process.on('uncaughtException', (err) => out(`uncaught: ${err.message}`));
setTimeout(() => d3.run(() => d4.run(() => { throw new Error('sync'); })), 1);
setTimeout(() => d5.run(() => d6.run(() => setTimeout(() => { throw new Error('async'); }, 1))), 5);
