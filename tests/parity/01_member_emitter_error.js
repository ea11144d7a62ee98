// A domain that is a member of another passes an emitter error it has no
// handler for to its owner (issue 12, item 10).
'use strict';
const { named, out, report } = require('./common');
const EventEmitter = require('events');

const d1 = named('d1');
const d2 = named('d2');
report(d1);
d1.add(d2);
const e = new EventEmitter();
e.name = 'e';
d2.add(e);
const d3 = named('d3');
report(d3);
d3.run(() => {
  out(`emit returned ${e.emit('error', new Error('boom'))}`);
});
out('after');
