// A bind wrapper called with an error as its first argument.
//
// bulwark deliberately differs: docs/DOMAINS.md, "a bind wrapper given an error argument".
// node: fn called with boom
// node: after
// node: exit 0
// bulwark: d handler: boom; domain=d thrown=true emitter=none bound=no; active=none depth=0
// bulwark: exit 0
'use strict';
const { named, out, report } = require('./common');

const d = named('d');
report(d);
const w = d.bind((err) => out(`fn called with ${err ? err.message : 'nothing'}`));
w(new Error('boom'));
out('after');
