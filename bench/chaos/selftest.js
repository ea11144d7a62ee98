// Self-test of the chaos clients' bookkeeping: a raw TCP server scripted to
// misbehave in one known way per scenario, and the buckets the client must
// put the requests in. Run: node bench/chaos/selftest.js PATH/TO/chaos
// [PATH/TO/harsh] (bench/run does not need it; run it after changing
// chaos.c, harsh.c or common.c).
'use strict';

const net = require('net');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const chaosBin = process.argv[2];
const harshBin = process.argv[3];
if (!chaosBin) {
  console.error('usage: selftest.js CHAOS_BINARY [HARSH_BINARY]');
  process.exit(2);
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const ERR500 = 'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops';

// Each scenario: handle(socket, path, n) for the n-th request (counted over
// the whole server, from 1) on a socket; a check on the chaos JSON.
const scenarios = [
  {
    name: 'keep-alive, faults contained',
    args: ['--fault-permille', '200'],
    handle: (s, p) => s.write(p === '/error' ? ERR500 : OK),
    check: (r) => r.good > 0 && r.contained > 0 && r.innocent === 0 && r.uncontained === 0 &&
      r.retryable_closes === 0 && r.fault_times_ns.length === r.contained,
  },
  {
    name: 'chunked body in pieces, with a trailer',
    handle: (s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\no');
      setImmediate(() => s.write('\r\n1\r\nk\r\n0\r\nX-Trailer: 1\r\n\r\n'));
    },
    check: (r) => r.good > 0 && r.innocent === 0 && r.retryable_closes === 0,
  },
  {
    name: 'Connection: close on every response',
    handle: (s) => s.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'),
    check: (r) => r.good > 0 && r.innocent === 0 && r.retryable_closes === 0,
  },
  {
    name: 'body delimited by the close (HTTP/1.0)',
    handle: (s) => s.end('HTTP/1.0 200 OK\r\n\r\nok'),
    check: (r) => r.good > 0 && r.innocent === 0 && r.retryable_closes === 0,
  },
  {
    name: '100 Continue before the response',
    handle: (s) => s.write('HTTP/1.1 100 Continue\r\n\r\n' + OK),
    check: (r) => r.good > 0 && r.innocent === 0,
  },
  {
    name: 'idle keep-alive connection closed after every 3rd response: retryable',
    handle: (s, p, n, k) => {
      s.write(OK);
      if (k % 3 === 0) s.end();
    },
    check: (r) => r.good > 0 && r.innocent === 0 && r.retryable_closes > 0,
  },
  {
    name: 'EOF in the middle of a body: innocent',
    handle: (s, p, n) => (n % 5 === 0 ? s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok') : s.write(OK)),
    check: (r) => r.innocent > 0 && r.innocent_by.eof === r.innocent && r.retryable_closes === 0,
  },
  {
    name: 'another status for "/": innocent',
    handle: (s, p, n) => s.write(n % 7 === 0 ? 'HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n' : OK),
    check: (r) => r.innocent > 0 && r.innocent_by.status === r.innocent,
  },
  {
    name: 'fault route reset on a fresh connection: uncontained, not retryable',
    args: ['--fault-permille', '100'],
    handle: (s, p) => (p === '/error' ? s.resetAndDestroy() : s.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok')),
    check: (r) => r.uncontained > 0 && r.uncontained_by.reset + r.uncontained_by.eof === r.uncontained &&
      r.innocent === 0 && r.retryable_closes === 0,
  },
  {
    name: 'every 10th request never answered: timeouts',
    args: ['--timeout-ms', '200'],
    handle: (s, p, n) => { if (n % 10 !== 0) s.write(OK); },
    check: (r) => r.innocent > 0 && r.innocent_by.timeout === r.innocent,
  },
  {
    name: 'server that never answers: bounded by the hard deadline',
    args: ['--timeout-ms', '300', '--duration-ms', '500'],
    handle: () => {},
    check: (r) => r.good === 0 && r.innocent === r.requests && r.requests > 0 && r.elapsed_ms < 2000,
  },
  {
    name: 'exactly N requests',
    args: ['--requests', '1234', '--connections', '8'],
    handle: (s) => s.write(OK),
    check: (r) => r.requests === 1234 && r.good === 1234,
  },
];

// The harsh client's scenarios: the same server, its own buckets (and
// --fault-routes /error, so that ERR500 answers every fault).
const CLOSE = 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok';
const ERR500_CLOSE = ERR500.replace('\r\n', '\r\nConnection: close\r\n');
const answer = (s, p, head) => {
  const fault = p === '/error';
  if (/connection: close/i.test(head)) s.end(fault ? ERR500_CLOSE : CLOSE);
  else s.write(fault ? ERR500 : OK);
};
const noLoss = (t) => t.lost === 0 && t.retryable === 0;
const harshScenarios = [
  {
    name: 'harsh: every kind of connection answered, faults contained',
    args: ['--fault-permille', '300'],
    handle: (s, p, n, k, head) => answer(s, p, head),
    check: (r) => noLoss(r.innocent) && noLoss(r.faults) && r.innocent.answered === r.innocent.sent &&
      r.faults.answered_500 === r.faults.sent && r.faults.sent > 0 &&
      Object.values(r.connections_by_kind).every((c) => c > 0) && r.innocent_latency_ms.samples > 0,
  },
  {
    name: 'harsh: a pipeline cut after its first response says close: after_close',
    args: ['--mix', '0,0,1,0', '--fault-permille', '0'],
    handle: (s, p, n, k) => (k === 1 ? s.end(CLOSE) : null),
    check: (r) => r.innocent.lost > 0 && r.innocent.lost_by.after_close === r.innocent.lost &&
      r.innocent.answered + r.innocent.lost === r.innocent.sent,
  },
  {
    name: 'harsh: half-closed connections reset at their first request: reset',
    args: ['--mix', '0,0,0,1'],
    handle: (s) => s.resetAndDestroy(),
    check: (r) => r.innocent.sent > 0 && r.innocent.lost === r.innocent.sent &&
      r.innocent.lost_by.reset + r.innocent.lost_by.eof === r.innocent.lost,
  },
  {
    name: 'harsh: an idle keep-alive connection closed: retryable, not lost',
    args: ['--mix', '0,1,0,0'],
    handle: (s, p, n, k, head) => { answer(s, p, head); if (k === 2) s.end(); },
    check: (r) => r.innocent.retryable > 0 && r.innocent.lost === 0,
  },
  {
    name: 'harsh: SIGHUP every 100 ms to the given pid',
    args: ['--sighup-pid', String(process.pid), '--sighup-every-ms', '100', '--duration-ms', '550'],
    handle: (s, p, n, k, head) => answer(s, p, head),
    check: (r) => r.sighups_sent === 5 && sighups === 5,
  },
];
let sighups = 0;
process.on('SIGHUP', () => sighups++);

function serve(scn) {
  let n = 0;
  const server = net.createServer((s) => {
    let buf = '';
    let k = 0;
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        if (s.destroyed || s.writableEnded) return;
        scn.handle(s, head.split(' ')[1], ++n, ++k, head);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function runChaos(port, args, bin = chaosBin) {
  const json = path.join(os.tmpdir(), `chaos-selftest-${process.pid}.json`);
  const argv = ['--port', String(port), '--connections', '4', '--duration-ms', '300',
    '--json', json, ...args];
  return new Promise((resolve) => {
    const child = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const r = code === 0 ? JSON.parse(fs.readFileSync(json, 'utf8')) : null;
      fs.rmSync(json, { force: true });
      resolve({ code, r, err });
    });
  });
}

(async () => {
  let failed = 0;
  const runs = scenarios.map((scn) => [scn, chaosBin, scn.args || []]);
  if (harshBin) {
    for (const scn of harshScenarios)
      runs.push([scn, harshBin, ['--fault-routes', '/error', '--timeout-ms', '500', ...scn.args]]);
  }
  for (const [scn, bin, args] of runs) {
    const server = await serve(scn);
    const { code, r, err } = await runChaos(server.address().port, args, bin);
    server.close();
    const ok = code === 0 && r && scn.check(r);
    if (!ok) failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${scn.name}`);
    if (!ok) console.log(`     exit ${code}; ${err.trim()}`);
  }
  // Nothing listening: connect failures only, and still a clean exit.
  const probe = await serve({ handle: () => {} });
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const { code, r } = await runChaos(port, []);
  const ok = code === 0 && r.requests === 0 && r.connect_failures > 0;
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} nothing listening: connect failures only`);
  console.log(failed ? `${failed} failed` : 'all passed');
  process.exit(failed ? 1 : 0);
})();
