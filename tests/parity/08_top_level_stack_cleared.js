// An error handled by a domain that the top level entered: what is left on
// the stack once it has been handled?
'use strict';
const { named, out, report, active, depth } = require('./common');

const d = named('d');
report(d);
process.on('exit', () => out(`at exit: active=${active()} depth=${depth()}`));
d.enter();
throw new Error('boom');
