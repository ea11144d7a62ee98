// A callback enters a domain and never exits it: does the next callback
// (created outside any domain) run inside it?
//
// bulwark deliberately differs: docs/DOMAINS.md, "an enter leaked by a callback".
// node: first: active=d depth=1
// node: second: active=d depth=1
// node: exit 0
// bulwark: first: active=d depth=1
// bulwark: second: active=none depth=0
// bulwark: exit 0
'use strict';
const { named, out, active, depth } = require('./common');

const d = named('d');
setTimeout(() => {
  d.enter();
  out(`first: active=${active()} depth=${depth()}`);
}, 1);
setTimeout(() => out(`second: active=${active()} depth=${depth()}`), 5);
