// D-39, D-40, D-42: intercept strips a null error and runs fn inside the
// domain; an error goes to the handler instead, fn not called.
'use strict';
const {named, out, report, active} = require('./common');

const a = named('a');
const d = named('d');
report(d);
const w = d.intercept((data) => out(`fn: ${data}; active=${active()}`));
a.run(() => {
    w(null, 'data');
    out(`after: active=${active()}`);
    w(new Error('boom'));
    out(`after error: active=${active()}`);
});
