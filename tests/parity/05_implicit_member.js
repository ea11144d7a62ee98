// An emitter created while a domain is active is bound to it: is it one of
// the domain's members?
//
// bulwark deliberately differs: docs/DOMAINS.md, "implicit binding makes a member".
// node: owner=d members=0
// node: exit 0
// bulwark: owner=d members=1
// bulwark: exit 0
'use strict';
const { named, out, nameOf } = require('./common');
const EventEmitter = require('events');

const d = named('d');
d.run(() => {
  const e = new EventEmitter();
  out(`owner=${nameOf(e.domain)} members=${d.members.length}`);
});
