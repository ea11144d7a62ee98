// A timer created outside any domain, then added to d: where does a throw
// from its callback go?
//
// bulwark deliberately differs: docs/DOMAINS.md, "add/remove of a timer".
// node: members=1
// node: callback: active=none
// node: uncaught: boom; active=none
// node: exit 0
// bulwark: members=1
// bulwark: callback: active=d
// bulwark: d handler: boom; domain=d thrown=true emitter=none bound=no; active=none depth=0
// bulwark: exit 0
'use strict';
const { named, out, report, active } = require('./common');

const d = named('d');
report(d);
process.on('uncaughtException', (err) => out(`uncaught: ${err.message}; active=${active()}`));
const t = setTimeout(() => {
  out(`callback: active=${active()}`);
  throw new Error('boom');
}, 1);
d.add(t);
out(`members=${d.members.length}`);
