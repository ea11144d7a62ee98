// A throw from an inner domain's handler when no domain below it on the
// stack has a handler.
//
// bulwark deliberately differs: docs/DOMAINS.md, "a throw from a handler with nothing below it".
// node: d1 handler: boom
// node: next timer ran
// node: exit event
// node: exit 0
// bulwark: d1 handler: boom
// bulwark: exit event
// bulwark: exit 7
'use strict';
const { named, out } = require('./common');

const d0 = named('d0'); // no handler
const d1 = named('d1');
d1.on('error', (err) => {
  out(`d1 handler: ${err.message}`);
  throw new Error('from the handler');
});
process.on('exit', () => out('exit event'));
setTimeout(() => {
  d0.run(() => {
    d1.run(() => {
      throw new Error('boom');
    });
  });
}, 1);
setTimeout(() => out('next timer ran'), 5);
