// Preload for bench/counts (node -r ./single.js seed-server.js): runs the
// seed's worker branch in one process, so its instructions and system calls
// per request can be counted like those of one nginx worker or one bulwark
// process, without changing the seed.
//
// The seed tests the deprecated alias `cluster.isMaster`; net's listen()
// tests `cluster.isPrimary`. Clearing only the alias sends the seed down its
// worker branch while the server still listens on its own socket, as a
// process that is not a cluster worker does. `cluster.worker` gets a
// disconnect() that exits, for the error path (which bench/counts does not
// take).
'use strict';

const cluster = require('cluster');

if (!cluster.isPrimary)
  throw new Error('single.js: load it in a plain process, not in a cluster worker');
cluster.isMaster = false;
cluster.worker = { disconnect() { process.exit(1); } };
