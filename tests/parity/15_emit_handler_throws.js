// D-62: a throw from the handler of an emitted error comes out of the emit
// call site, with the handler-time stack in force: the parent gets it.
'use strict';
const {named, out, report, fields} = require('./common');
const EventEmitter = require('events');

const d1 = named('d1');
const d2 = named('d2');
report(d1);
d2.on('error', (err) => {
    out(`d2 handler: ${err.message}; ${fields(err)}`);
    throw new Error('from d2 handler');
});
setTimeout(() => d1.run(() => d2.run(() => {
    const e = new EventEmitter();
    e.name = 'e';
    e.emit('error', new Error('boom'));
    out('not reached');
})),
           1);
