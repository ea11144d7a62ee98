// A synchronous throw inside d3.run(() => d2.run(...)), d2 a handler-less
// member of d1: the owner d1 takes it, not d3 below on the stack (issue 12,
// item 10).
'use strict';
const { named, out, report, active, depth } = require('./common');

const d1 = named('d1');
const d2 = named('d2');
const d3 = named('d3');
report(d1);
report(d3);
d1.add(d2);
setTimeout(() => {
  d3.run(() => {
    d2.run(() => {
      throw new Error('boom');
    });
  });
}, 1);
setTimeout(() => out(`next: active=${active()} depth=${depth()}`), 5);
