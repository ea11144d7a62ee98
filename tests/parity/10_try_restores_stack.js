// A throw caught by the code itself (try/catch; in C, bw_try) from inside
// a run: what is on the stack afterwards?
//
// bulwark deliberately differs: docs/DOMAINS.md, "bw_try restores the stack".
// node: caught boom
// node: after: active=b depth=2
// node: exit 0
// bulwark: caught boom
// bulwark: after: active=a depth=1
// bulwark: exit 0
'use strict';
const { named, out, active, depth } = require('./common');

const a = named('a');
const b = named('b');
a.enter();
try {
  b.run(() => {
    throw new Error('boom');
  });
} catch (err) {
  out(`caught ${err.message}`);
}
out(`after: active=${active()} depth=${depth()}`);
a.exit();
