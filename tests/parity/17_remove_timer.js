// A timer created inside d, then removed from d: where does a throw from
// its callback go?
//
// bulwark deliberately differs: docs/DOMAINS.md, "add/remove of a timer".
// node: members=0
// node: callback: active=d
// node: d handler: boom; domain=d thrown=true emitter=none bound=no; active=none depth=0
// node: exit 0
// bulwark: members=0
// bulwark: callback: active=none
// bulwark: uncaught: boom; active=none
// bulwark: exit 0
'use strict';
const {named, out, report, active} = require('./common');

const d = named('d');
report(d);
process.on('uncaughtException', (err) => out(`uncaught: ${err.message}; active=${active()}`));
d.run(() => {
    const t = setTimeout(() => {
        out(`callback: active=${active()}`);
        throw new Error('boom');
    }, 1);
    d.remove(t);
});
out(`members=${d.members.length}`);
