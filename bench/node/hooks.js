// Preload for the seed's server (node -r ./hooks.js seed-server.js): logs
// the primary's cluster events, without changing the seed, as JSON lines in
// the file named by BW_EVENT_LOG (nothing is logged if it is unset):
//
//   {"mono_ns": 123, "event": "listening", "worker": 3, "pid": 4567}
//
// mono_ns is process.hrtime.bigint(), i.e. CLOCK_MONOTONIC in ns, the clock
// the chaos client stamps its responses with, so the two can be compared.
// It is written from the bigint's digits, so no precision is lost. `exit`
// lines also carry "code" and "signal". Workers inherit the -r flag and
// load this too; only the primary logs.
'use strict';

const cluster = require('cluster');
const fs = require('fs');

const path = process.env.BW_EVENT_LOG;

if (path && cluster.isPrimary) {
  // Synchronous appends: the primary is idle between events, and a line
  // must be on disk even if the primary is killed right after.
  const fd = fs.openSync(path, 'a');
  const log = (event, worker, extra) => {
    let line = `{"mono_ns": ${process.hrtime.bigint()}, "event": "${event}", ` +
      `"worker": ${worker.id}, "pid": ${worker.process.pid ?? null}`;
    for (const [k, v] of Object.entries(extra || {}))
      line += `, ${JSON.stringify(k)}: ${JSON.stringify(v ?? null)}`;
    fs.writeSync(fd, line + '}\n');
  };
  cluster.on('fork', (w) => log('fork', w));
  cluster.on('online', (w) => log('online', w));
  cluster.on('listening', (w) => log('listening', w));
  cluster.on('disconnect', (w) => log('disconnect', w));
  cluster.on('exit', (w, code, signal) => log('exit', w, { code, signal }));
}
