// D-58: a throw from an inner handler goes to the next domain down.
'use strict';
const { named, out, report } = require('./common');

const d1 = named('d1');
const d2 = named('d2');
report(d2);
d1.on('error', (err) => {
  out(`d1 handler: ${err.message}`);
  throw new Error('from d1 handler');
});
setTimeout(() => d2.run(() => d1.run(() => {
  throw new Error('boom');
})), 1);
