// D-48: while the handler of an emitted error runs, the adjacent copies of
// the active domain are popped; afterwards the stack is restored exactly.
'use strict';
const {named, out, active, depth} = require('./common');
const EventEmitter = require('events');

const d1 = named('d1');
const d2 = named('d2');
const d3 = named('d3');
for (const d of [d1, d2, d3]) {
    d.on('error', () => out(`${d.name} handler: active=${active()} depth=${depth()}`));
}

function emitIn(...domains)
{
    const rest = domains.slice(1);
    domains[0].run(() => {
        if (rest.length > 0)
            return emitIn(...rest);
        const e = new EventEmitter();
        e.emit('error', new Error('boom'));
        out(`after emit: active=${active()} depth=${depth()}`);
    });
}

emitIn(d1);
emitIn(d1, d1);
emitIn(d1, d2);
emitIn(d1, d2, d2);
emitIn(d3, d1, d3, d3);
