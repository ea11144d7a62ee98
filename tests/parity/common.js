// common.js: what every parity scenario prints, the same way its C twin
// (parity.c) does: one outcome line per event, names instead of objects.
'use strict';
const domain = require('domain');

function named(name) {
  const d = domain.create();
  d.name = name;
  return d;
}

function nameOf(x) {
  if (x === undefined || x === null) return 'none';
  return x.name !== undefined ? x.name : '?';
}

function out(line) {
  process.stdout.write(line + '\n');
}

function active() {
  return nameOf(process.domain);
}

function depth() {
  return domain._stack.length;
}

function thrownOf(err) {
  return err.domainThrown === undefined ? 'unset' : String(err.domainThrown);
}

// The routing fields of an error, as the C twin prints them.
function fields(err) {
  return `domain=${nameOf(err.domain)} thrown=${thrownOf(err)} ` +
    `emitter=${nameOf(err.domainEmitter)} bound=${err.domainBound ? 'yes' : 'no'}`;
}

// An error handler that prints what it got and where it ran.
function report(d) {
  d.on('error', (err) => {
    out(`${d.name} handler: ${err.message}; ${fields(err)}; active=${active()} depth=${depth()}`);
  });
}

module.exports = { domain, named, nameOf, out, active, depth, fields, report };
