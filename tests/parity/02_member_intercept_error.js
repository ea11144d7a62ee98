// A domain that is a member of another passes an intercepted callback's
// error it has no handler for to its owner (issue 12, item 10).
'use strict';
const { named, out, report } = require('./common');

const d1 = named('d1');
const d2 = named('d2');
report(d1);
d1.add(d2);
const cb = d2.intercept(() => out('fn called'));
cb(new Error('boom'));
out('after');
