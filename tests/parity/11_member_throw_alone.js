// A synchronous throw in a handler-less member domain with no other domain
// on the stack: does its owner take it?
//
// bulwark deliberately differs: docs/DOMAINS.md, "a throw in a handler-less member domain alone on the stack".
// node: uncaught: boom
// node: exit 0
// bulwark: d1 handler: boom; domain=d1 thrown=false emitter=d2 bound=no; active=none depth=0
// bulwark: exit 0
'use strict';
const { named, out, report } = require('./common');

const d1 = named('d1');
const d2 = named('d2');
report(d1);
d1.add(d2);
process.on('uncaughtException', (err) => out(`uncaught: ${err.message}`));
setTimeout(() => d2.run(() => {
  throw new Error('boom');
}), 1);
