// bench/lib/report.js OUT_DIR: turn a bench/run directory (meta.json,
// records.jsonl and the raw/ files they name) into results.json (settings,
// every raw figure, the summaries) and results.md (the tables).
//
// Conventions: medians across rounds for rates and latencies; counts of the
// chaos runs are summed across rounds before the per-1000 rates are taken;
// recovery times are pooled across rounds. p99 is the nearest rank.
'use strict';

const fs = require('fs');
const path = require('path');

const out = process.argv[2];
if (!out) {
  console.error('usage: report.js OUT_DIR');
  process.exit(2);
}

const meta = JSON.parse(fs.readFileSync(path.join(out, 'meta.json'), 'utf8'));
const records = readJsonLines(path.join(out, 'records.jsonl'));
const S = meta.settings;

const LABELS = {
  bulwark: `bulwark example server (${S.workers} workers)`,
  nginx: `nginx ${meta.versions.nginx.replace(/^nginx\//, '')} (${S.nginx_workers ?? S.workers} workers, \`return 200 "ok"\`)`,
  node: `the seed's Node.js server (Node ${meta.versions.node}, 2 workers)`,
};
const ORDER = ['bulwark', 'nginx', 'node'];

// ---- helpers ----------------------------------------------------------------

function readJsonLines(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function quantile(xs, q) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const fmt = (x, d = 1) => (x == null ? '–' : x.toFixed(d));
const ratio = (a, b) => (a != null && b ? a / b : null);
const fmtRatio = (x) => (x == null ? '–' : `${x.toFixed(2)}×`);

const skipped = new Map(records.filter((r) => r.kind === 'skip').map((r) => [r.server, r.reason]));
const measured = (kind) => ORDER.filter((s) => records.some((r) => r.kind === kind && r.server === s));
const errors = records.filter((r) => r.kind === 'error');

// ---- throughput -------------------------------------------------------------

const throughput = {};
for (const s of measured('throughput')) {
  const runs = records.filter((r) => r.kind === 'throughput' && r.server === s).map((r) => {
    const secs = r.wrk.duration_us / 1e6;
    const cpuSecs = r.cpu_ticks / r.clk_tck;
    return {
      round: r.round,
      rps: r.wrk.requests / secs,
      p50_ms: r.wrk.latency_us.p50 / 1000,
      p99_ms: r.wrk.latency_us.p99 / 1000,
      server_cores: cpuSecs / secs,
      rps_per_core: cpuSecs > 0 ? r.wrk.requests / cpuSecs : null,
      errors: Object.values(r.wrk.errors).reduce((a, b) => a + b, 0),
    };
  });
  const col = (k) => runs.map((x) => x[k]).filter((x) => x != null);
  throughput[s] = {
    rounds: runs.length,
    rps_median: median(col('rps')),
    rps_min: Math.min(...col('rps')),
    rps_max: Math.max(...col('rps')),
    p50_ms_median: median(col('p50_ms')),
    p99_ms_median: median(col('p99_ms')),
    server_cores_median: median(col('server_cores')),
    rps_per_core_median: median(col('rps_per_core')),
    errors: col('errors').reduce((a, b) => a + b, 0),
    runs,
  };
}
const tp = (s, k) => (throughput[s] ? throughput[s][k] : null);
const ratios = {
  bulwark_over_nginx: ratio(tp('bulwark', 'rps_median'), tp('nginx', 'rps_median')),
  bulwark_over_node: ratio(tp('bulwark', 'rps_median'), tp('node', 'rps_median')),
  bulwark_over_nginx_per_core: ratio(tp('bulwark', 'rps_per_core_median'), tp('nginx', 'rps_per_core_median')),
  bulwark_over_node_per_core: ratio(tp('bulwark', 'rps_per_core_median'), tp('node', 'rps_per_core_median')),
};

// ---- chaos and recovery -------------------------------------------------------

// From one run's event log: the times at which replacement workers (any
// worker but the first `workers` forked) logged `listening`, and each
// replacement's fork-to-listening time. Workers are told apart by pid (a
// server may reuse worker ids for slots), or by id when there is no pid.
function replacementTimes(events, workers) {
  const who = (e) => (e.pid != null ? `p${e.pid}` : `w${e.worker}`);
  const initial = new Set(events.filter((e) => e.event === 'fork').slice(0, workers).map(who));
  const forkAt = new Map();
  const listening = [];
  const startup = [];
  for (const e of events) {
    if (initial.has(who(e))) continue;
    if (e.event === 'fork') forkAt.set(who(e), e.mono_ns);
    if (e.event === 'listening') {
      listening.push(e.mono_ns);
      if (forkAt.has(who(e))) startup.push((e.mono_ns - forkAt.get(who(e))) / 1e6);
    }
  }
  listening.sort((a, b) => a - b);
  return { listening, startup };
}

// For each fault (the time its 500 reached the client), the time to the next
// replacement's `listening`, in ms. Faults with none after them are counted.
function recoveryTimes(faultTimes, listening) {
  const times = [];
  let unmatched = 0;
  let j = 0;
  for (const t of [...faultTimes].sort((a, b) => a - b)) {
    while (j < listening.length && listening[j] <= t) j++;
    if (j < listening.length) times.push((listening[j] - t) / 1e6);
    else unmatched++;
  }
  return { times, unmatched };
}

const chaos = [];
const recovery = {};
for (const r of records.filter((x) => x.kind === 'chaos')) {
  const file = path.join(out, r.chaos_file);
  if (!fs.existsSync(file)) continue;
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  // Event-log lines are parsed as JSON numbers: exact below 2^53 ns (104 days
  // of uptime), far more than the microseconds that matter here.
  const events = readJsonLines(path.join(out, r.events_file));
  const forks = events.filter((e) => e.event === 'fork').length;
  const { listening, startup } = replacementTimes(events, r.workers);
  const rec = recoveryTimes(c.fault_times_ns, listening);
  let g = chaos.find((x) => x.server === r.server && x.fault_path === r.fault_path && x.permille === r.permille);
  if (!g) {
    g = {
      server: r.server, fault_path: r.fault_path, permille: r.permille, rounds: 0,
      requests: 0, good: 0, innocent: 0, contained: 0, uncontained: 0,
      retryable_closes: 0, connect_failures: 0, fault_requests: 0,
      innocent_by: {}, uncontained_by: {}, connect_failures_by: {}, retryable_by: {},
      replacements: 0, event_log: false, good_per_sec: [], recovery_ms: [], recovery_unmatched: 0,
      startup_ms: [], runs: [],
    };
    chaos.push(g);
  }
  g.rounds++;
  for (const k of ['requests', 'good', 'innocent', 'contained', 'uncontained', 'retryable_closes',
    'connect_failures', 'fault_requests']) g[k] += c[k];
  for (const k of ['innocent_by', 'uncontained_by', 'connect_failures_by', 'retryable_by'])
    for (const [why, n] of Object.entries(c[k] || {})) g[k][why] = (g[k][why] || 0) + n;
  g.event_log = g.event_log || events.length > 0;
  g.replacements += Math.max(0, forks - r.workers);
  g.good_per_sec.push(c.good_per_sec);
  g.recovery_ms.push(...rec.times);
  g.recovery_unmatched += rec.unmatched;
  g.startup_ms.push(...startup);
  g.runs.push({
    round: r.round, requests: c.requests, good_per_sec: c.good_per_sec, innocent: c.innocent,
    uncontained: c.uncontained, retryable_closes: c.retryable_closes,
    connect_failures: c.connect_failures, replacements: Math.max(0, forks - r.workers),
    faults_recorded: c.fault_times_ns.length, elapsed_ms: c.elapsed_ms,
  });
  const key = r.server;
  recovery[key] = recovery[key] || { recovery_ms: [], unmatched: 0, startup_ms: [], event_log: false };
  recovery[key].recovery_ms.push(...rec.times);
  recovery[key].unmatched += rec.unmatched;
  recovery[key].startup_ms.push(...startup);
  recovery[key].event_log = recovery[key].event_log || events.length > 0;
}
chaos.sort((a, b) => ORDER.indexOf(a.server) - ORDER.indexOf(b.server) ||
  b.permille - a.permille || a.fault_path.localeCompare(b.fault_path));
const per1000 = (n, total) => (total ? (1000 * n) / total : null);
const chaosSummary = chaos.map((g) => ({
  server: g.server, fault_path: g.fault_path, permille: g.permille, rounds: g.rounds,
  requests: g.requests, good: g.good, innocent: g.innocent, contained: g.contained,
  uncontained: g.uncontained, retryable_closes: g.retryable_closes,
  connect_failures: g.connect_failures, fault_requests: g.fault_requests,
  innocent_by: g.innocent_by, uncontained_by: g.uncontained_by,
  connect_failures_by: g.connect_failures_by, retryable_by: g.retryable_by,
  per_1000: {
    innocent: per1000(g.innocent, g.requests),
    uncontained: per1000(g.uncontained, g.requests),
    retryable_closes: per1000(g.retryable_closes, g.requests),
    connect_failures: per1000(g.connect_failures, g.requests),
  },
  good_per_sec_median: median(g.good_per_sec),
  worker_replacements: g.event_log ? g.replacements : null,
  recovery_ms_median: median(g.recovery_ms),
  recovery_ms_p99: quantile(g.recovery_ms, 0.99),
  recovery_faults_measured: g.recovery_ms.length,
  recovery_faults_unmatched: g.recovery_unmatched,
  worker_startup_ms_median: median(g.startup_ms),
  runs: g.runs,
}));
const recoverySummary = {};
for (const [s, r] of Object.entries(recovery)) {
  recoverySummary[s] = {
    event_log: r.event_log,
    faults_measured: r.recovery_ms.length,
    faults_unmatched: r.unmatched,
    median_ms: median(r.recovery_ms),
    p99_ms: quantile(r.recovery_ms, 0.99),
    replacements: r.startup_ms.length,
    worker_startup_median_ms: median(r.startup_ms),
    worker_startup_p99_ms: quantile(r.startup_ms, 0.99),
  };
}

// ---- memory -------------------------------------------------------------------

const memory = {};
for (const s of measured('memory')) {
  const runs = records.filter((r) => r.kind === 'memory' && r.server === s).map((r) => ({
    round: r.round, open: r.open, failed: r.failed, setup_ms: r.setup_ms,
    closed_meanwhile: r.closed_meanwhile, processes: r.processes,
    rss_before_kb: r.rss_before_kb, rss_after_kb: r.rss_after_kb,
    rss_per_conn_bytes: r.open ? ((r.rss_after_kb - r.rss_before_kb) * 1024) / r.open : null,
    pss_per_conn_bytes: r.open ? ((r.pss_after_kb - r.pss_before_kb) * 1024) / r.open : null,
  }));
  const col = (k) => runs.map((x) => x[k]).filter((x) => x != null);
  memory[s] = {
    rounds: runs.length,
    connections: S.idle_conns,
    open_median: median(col('open')),
    closed_meanwhile_max: Math.max(...col('closed_meanwhile')),
    rss_before_mib: median(col('rss_before_kb')) / 1024,
    rss_after_mib: median(col('rss_after_kb')) / 1024,
    rss_per_conn_bytes_median: median(col('rss_per_conn_bytes')),
    pss_per_conn_bytes_median: median(col('pss_per_conn_bytes')),
    runs,
  };
}

// ---- proxy (three instances behind HAProxy) ---------------------------------------

const PROXY_VARIANTS = {
  shipped: 'handoff on, `retry-on conn-failure empty-response` (as shipped)',
  'no-handoff': 'handoff off (`HANDOFF=0`), retry-on as shipped',
  'no-retry': 'handoff on, `retry-on none`',
  neither: 'handoff off, `retry-on none`',
};
const proxy = [];
for (const r of records.filter((x) => x.kind === 'proxy')) {
  const file = path.join(out, r.harsh_file);
  if (!fs.existsSync(file)) continue;
  const h = JSON.parse(fs.readFileSync(file, 'utf8'));
  let g = proxy.find((x) => x.variant === r.variant);
  if (!g) {
    g = { variant: r.variant, handoff: r.handoff, retry_on: r.retry_on, rounds: 0, runs: [] };
    proxy.push(g);
  }
  g.rounds++;
  const secs = h.elapsed_ms / 1000;
  g.runs.push({
    round: r.round,
    innocent_sent: h.innocent.sent,
    innocent_answered: h.innocent.answered,
    innocent_failures: h.innocent.lost + h.innocent.wrong_status,
    innocent_lost_by: h.innocent.lost_by,
    connect_failures: h.connect_failures,
    faults_sent: h.faults.sent,
    faults_500: h.faults.answered_500,
    faults_other: h.faults.sent - h.faults.answered_500,
    rps: secs > 0 ? (h.innocent.answered + h.faults.answered_500) / secs : null,
    p50_ms: h.innocent_latency_ms.p50,
    p99_ms: h.innocent_latency_ms.p99,
    upgrade_ok: !!r.upgrade_ok,
    upgrade_total_ms: r.upgrade_total_ms,
    upgrade_ready_ms: r.upgrade_ready_ms,
    upgrade_exit_ms: r.upgrade_exit_ms,
    haproxy_retries: r.haproxy_retries,
    haproxy_redispatches: r.haproxy_redispatches,
  });
}
const proxyOrder = Object.keys(PROXY_VARIANTS);
proxy.sort((a, b) => proxyOrder.indexOf(a.variant) - proxyOrder.indexOf(b.variant));
const sum = (xs) => xs.reduce((a, b) => a + (b || 0), 0);
const proxySummary = proxy.map((g) => {
  const col = (k) => g.runs.map((x) => x[k]).filter((x) => x != null);
  return {
    variant: g.variant, handoff: g.handoff, retry_on: g.retry_on, rounds: g.rounds,
    innocent_sent: sum(col('innocent_sent')),
    innocent_failures: sum(col('innocent_failures')),
    connect_failures: sum(col('connect_failures')),
    faults_sent: sum(col('faults_sent')),
    faults_500: sum(col('faults_500')),
    rps_median: median(col('rps')),
    p99_ms_median: median(col('p99_ms')),
    upgrades_ok: g.runs.every((x) => x.upgrade_ok),
    upgrade_total_ms_median: median(col('upgrade_total_ms')),
    upgrade_ready_ms_median: median(g.runs.flatMap((x) => x.upgrade_ready_ms)),
    haproxy_retries: sum(col('haproxy_retries')),
    runs: g.runs,
  };
});

// ---- targets (issue 5), reported, never asserted ----------------------------------

function targets() {
  const rows = [];
  const bw = (x) => x != null;
  rows.push(['throughput ≥ nginx', bw(ratios.bulwark_over_nginx) ? fmtRatio(ratios.bulwark_over_nginx) : null,
    bw(ratios.bulwark_over_nginx) ? ratios.bulwark_over_nginx >= 1 : null]);
  rows.push(['throughput ≥ 4× the Node.js server', bw(ratios.bulwark_over_node) ? fmtRatio(ratios.bulwark_over_node) : null,
    bw(ratios.bulwark_over_node) ? ratios.bulwark_over_node >= 4 : null]);
  const bwChaos = chaosSummary.filter((g) => g.server === 'bulwark');
  const inn = bwChaos.reduce((a, g) => a + g.innocent, 0);
  const unc = bwChaos.reduce((a, g) => a + g.uncontained, 0);
  rows.push(['zero innocent casualties (every route, every p)', bwChaos.length ? `${inn}` : null, bwChaos.length ? inn === 0 : null]);
  rows.push(['zero uncontained faults (every route, every p)', bwChaos.length ? `${unc}` : null, bwChaos.length ? unc === 0 : null]);
  const rb = recoverySummary.bulwark;
  rows.push(['replacement listening within 10 ms (median)', rb && rb.median_ms != null ? `${fmt(rb.median_ms, 2)} ms` : null,
    rb && rb.median_ms != null ? rb.median_ms <= 10 : null]);
  const mb = memory.bulwark && memory.bulwark.rss_per_conn_bytes_median;
  const mn = memory.nginx && memory.nginx.rss_per_conn_bytes_median;
  rows.push(['memory per idle connection ≤ nginx', mb != null ? `${fmtInt(mb)} B vs ${fmtInt(mn)} B` : null,
    mb != null && mn != null ? mb <= mn : null]);
  return rows.map(([target, value, met]) => ({ target, value, met }));
}

// ---- output -------------------------------------------------------------------------

const summary = { throughput, ratios, chaos: chaosSummary, recovery: recoverySummary, memory, proxy: proxySummary, targets: targets() };
fs.writeFileSync(path.join(out, 'results.json'),
  JSON.stringify({ meta, skipped: Object.fromEntries(skipped), errors, summary, records }, null, 1) + '\n');

const md = [];
const notMeasured = (s) => (skipped.has(s) ? `not yet measured (${skipped.get(s)})` : 'not measured');
md.push(`# bulwark benchmarks, ${meta.stamp}`, '');
md.push(`Machine: ${meta.machine.cpu}, ${meta.machine.cores} cores, ${meta.machine.mem_gib} GiB, ` +
  `${meta.machine.kernel}. nginx ${meta.versions.nginx.replace(/^nginx\//, '')}, Node ${meta.versions.node}, ` +
  `wrk ${meta.versions.wrk}. Commit ${meta.commit}. ${S.rounds} rounds, servers interleaved in each ` +
  `round, all traffic on ${S.host || '127.0.0.1'}; ` +
  (S.server_cpus
    ? `servers pinned to CPU ${S.server_cpus}, load clients to CPU ${S.client_cpus || 'any'} (taskset). `
    : "server and clients share the machine's cores. ") +
  'Produced by `bench/run`; raw numbers in `results.json`.', '');
for (const [s, why] of skipped) md.push(`- **${s}: not yet measured** (${why}).`);
for (const e of errors) md.push(`- error: ${e.server} ${e.section} round ${e.round} did not start; left out.`);
if (skipped.size || errors.length) md.push('');

if (S.sections.includes('throughput')) {
  md.push('## Throughput', '');
  md.push(`\`wrk -t${S.wrk_threads} -c${S.wrk_connections} -d${S.wrk_duration_s}s\`, keep-alive \`GET /\`` +
    (S.wrk_warmup_s > 0 ? ` after a ${S.wrk_warmup_s} s warm-up` : '') +
    `. Median of ${S.rounds} rounds, spread min–max. Server CPU: utime+stime of the server's whole ` +
    'process tree during the timed run; req/s per server core = requests / server CPU seconds.', '');
  md.push('| server | req/s | spread | vs nginx | p50 ms | p99 ms | server cores busy | req/s per server core |');
  md.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of ORDER) {
    const t = throughput[s];
    if (!t) {
      md.push(`| ${LABELS[s]} | ${notMeasured(s)} | | | | | | |`);
      continue;
    }
    md.push(`| ${LABELS[s]} | ${fmtInt(t.rps_median)} | ${fmtInt(t.rps_min)}–${fmtInt(t.rps_max)} | ` +
      `${fmtRatio(ratio(t.rps_median, tp('nginx', 'rps_median')))} | ${fmt(t.p50_ms_median, 2)} | ` +
      `${fmt(t.p99_ms_median, 2)} | ${fmt(t.server_cores_median, 2)} | ${fmtInt(t.rps_per_core_median)} |`);
  }
  md.push('');
  md.push(`bulwark / nginx: ${fmtRatio(ratios.bulwark_over_nginx)} req/s, ${fmtRatio(ratios.bulwark_over_nginx_per_core)} per core. ` +
    `bulwark / Node: ${fmtRatio(ratios.bulwark_over_node)} req/s, ${fmtRatio(ratios.bulwark_over_node_per_core)} per core.`);
  const errs = ORDER.filter((s) => throughput[s] && throughput[s].errors);
  if (errs.length) md.push('', `wrk errors: ${errs.map((s) => `${s} ${throughput[s].errors}`).join(', ')}.`);
  md.push('');
}

if (S.sections.includes('chaos')) {
  md.push('## Chaos', '');
  md.push(`\`bench/chaos\`: ${S.chaos_connections} keep-alive connections, one request in flight on each, ` +
    `${S.chaos_duration_ms / 1000} s per run, request timeout ${S.chaos_timeout_ms} ms; a fraction p of the ` +
    'requests go to the fault route, the rest to `/`. Counts summed over the rounds, rates per 1,000 requests. ' +
    '*Innocent*: a `/` request lost (not a 200). *Uncontained*: a fault request not answered 500. ' +
    '*Retryable*: the server closed an idle keep-alive connection before answering the next request ' +
    '(RFC 9112 §9.3.1; retried once, not a casualty). *Connect failures*: connections refused or timed out. ' +
    `*Replacements*: forks beyond the first ${S.workers}, from the primary's event log. ` +
    (S.poison_threshold === 0
      ? 'bulwark runs with its poison quarantine off (`POISON_THRESHOLD=0`), so that every fault is ' +
        'measured: by default it answers a route that crashed 3 workers within 60 s with 503 instead.'
      : `bulwark runs with \`POISON_THRESHOLD=${S.poison_threshold}\`: a route that crashes that many ` +
        'workers is answered 503 for a while, which counts here as uncontained.'), '');
  md.push('| server | fault route | p | requests | good req/s | innocent ‰ | uncontained ‰ | retryable ‰ | connect failures | replacements | recovery median ms | recovery p99 ms |');
  md.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of ORDER) {
    const rows = chaosSummary.filter((g) => g.server === s);
    if (!rows.length && s !== 'nginx') md.push(`| ${s} | | | ${notMeasured(s)} | | | | | | | | |`);
    for (const g of rows) {
      md.push(`| ${s} | \`${g.fault_path}\` | ${g.permille / 10} % | ${fmtInt(g.requests)} | ` +
        `${fmtInt(g.good_per_sec_median)} | ${fmt(g.per_1000.innocent, 2)} | ${fmt(g.per_1000.uncontained, 2)} | ` +
        `${fmt(g.per_1000.retryable_closes, 2)} | ${fmtInt(g.connect_failures)} | ` +
        `${g.worker_replacements == null ? 'no event log' : fmtInt(g.worker_replacements)} | ` +
        `${fmt(g.recovery_ms_median, 1)} | ${fmt(g.recovery_ms_p99, 1)} |`);
    }
  }
  md.push('', 'How requests and connections were lost (counts over all rounds):', '');
  const by = (o) => Object.entries(o).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  for (const g of chaosSummary) {
    if (g.innocent || g.uncontained || g.retryable_closes || g.connect_failures)
      md.push(`- ${g.server} \`${g.fault_path}\` p ${g.permille / 10} %: innocent: ${by(g.innocent_by)}; ` +
        `uncontained: ${by(g.uncontained_by)}; retryable closes: ${by(g.retryable_by)}; ` +
        `connect failures: ${by(g.connect_failures_by)}.`);
  }
  if (!chaosSummary.some((g) => g.innocent || g.uncontained || g.retryable_closes || g.connect_failures))
    md.push('- none.');
  md.push('');

  md.push('## Recovery', '');
  md.push('Time from a fault (the moment its 500 reached the client) to the next `listening` of a replacement ' +
    'worker in the primary\'s event log (same monotonic clock), pooled over all fault routes, rates and rounds. ' +
    'Faults after the last replacement are not counted. Worker start: a replacement\'s fork to its `listening`.', '');
  md.push('| server | faults measured | median ms | p99 ms | replacements | worker start median ms | worker start p99 ms |');
  md.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const s of ORDER) {
    if (s === 'nginx') continue;
    const r = recoverySummary[s];
    if (!r) {
      md.push(`| ${s} | ${notMeasured(s)} | | | | | |`);
      continue;
    }
    if (!r.event_log) {
      md.push(`| ${s} | no event log (BW_EVENT_LOG not written) | | | | | |`);
      continue;
    }
    md.push(`| ${s} | ${fmtInt(r.faults_measured)} (+${fmtInt(r.faults_unmatched)} after the last) | ` +
      `${fmt(r.median_ms, 2)} | ${fmt(r.p99_ms, 2)} | ${fmtInt(r.replacements)} | ` +
      `${fmt(r.worker_startup_median_ms, 2)} | ${fmt(r.worker_startup_p99_ms, 2)} |`);
  }
  md.push('');
}

if (S.sections.includes('memory')) {
  md.push('## Memory', '');
  md.push(`${fmtInt(S.idle_conns)} keep-alive connections, each sent one \`GET /\` and read the response, then ` +
    'left idle. RSS (and PSS, which splits shared pages between processes) of the server\'s whole process ' +
    'tree with them open, minus before, divided by the connections held. Median of the rounds. Kernel ' +
    'socket buffers are not in RSS.', '');
  md.push('| server | connections held | closed by the server meanwhile | RSS before MiB | RSS after MiB | RSS per connection | PSS per connection |');
  md.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const s of ORDER) {
    const m = memory[s];
    if (!m) {
      md.push(`| ${LABELS[s]} | ${notMeasured(s)} | | | | | |`);
      continue;
    }
    md.push(`| ${LABELS[s]} | ${fmtInt(m.open_median)} | ${fmtInt(m.closed_meanwhile_max)} | ` +
      `${fmt(m.rss_before_mib, 1)} | ${fmt(m.rss_after_mib, 1)} | ${fmtInt(m.rss_per_conn_bytes_median)} B | ` +
      `${fmtInt(m.pss_per_conn_bytes_median)} B |`);
  }
  md.push('');
}

if (S.sections.includes('proxy')) {
  md.push('## Behind HAProxy', '');
  md.push(`Three instances of the bulwark example server (${S.workers} workers each, PROXY protocol on, ` +
    `\`/readyz\` on an admin port) behind HAProxy ${meta.versions.haproxy || ''} running \`${S.proxy_cfg}\` ` +
    '(ports, stats socket and log rewritten). `bench/chaos-harsh` through the proxy: ' +
    `${S.proxy_connections} connections (\`--mix ${S.proxy_mix}\`: fresh, keep-alive, pipelined, half-closed), ` +
    `${S.proxy_duration_ms / 1000} s, ${S.proxy_permille / 10} % of the requests to ${S.proxy_fault_routes} ` +
    '(each retires its worker); a third of the way in, a rolling SIGUSR2 upgrade of the three instances, ' +
    'one after another (each one\'s `upgrade_ready` and its old primary\'s exit before the next). ' +
    `Counts summed over ${S.rounds} round(s); req/s (every answered request through the proxy), p99 and ` +
    'upgrade times are medians. *Innocent failures*: a `/` request not answered 200 (target: 0). ' +
    '*Upgrade*: from the first SIGUSR2 to the third old primary\'s exit; *per instance*: SIGUSR2 to `upgrade_ready`. ' +
    '*HAProxy retries*: its backend\'s `wretr`.', '');
  md.push('| variant | innocent requests | innocent failures | connect failures | faults sent | answered 500 | req/s | innocent p99 ms | upgrade ms | per instance ms | HAProxy retries |');
  md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const g of proxySummary) {
    md.push(`| ${PROXY_VARIANTS[g.variant] || g.variant} | ${fmtInt(g.innocent_sent)} | ${fmtInt(g.innocent_failures)} | ` +
      `${fmtInt(g.connect_failures)} | ${fmtInt(g.faults_sent)} | ${fmtInt(g.faults_500)} | ${fmtInt(g.rps_median)} | ` +
      `${fmt(g.p99_ms_median, 1)} | ${g.upgrades_ok ? fmtInt(g.upgrade_total_ms_median) : '**failed**'} | ` +
      `${fmtInt(g.upgrade_ready_ms_median)} | ${fmtInt(g.haproxy_retries)} |`);
  }
  if (!proxySummary.length) md.push('| not measured | | | | | | | | | | |');
  const lost = proxySummary.filter((g) => g.innocent_failures);
  if (lost.length) {
    md.push('', 'How innocent requests were lost (all rounds):', '');
    for (const g of lost) {
      const by = {};
      for (const x of g.runs) for (const [k, n] of Object.entries(x.innocent_lost_by)) by[k] = (by[k] || 0) + n;
      md.push(`- ${g.variant}: ${Object.entries(by).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ') || 'wrong status'}.`);
    }
  }
  md.push('');
}

md.push('## Against the targets of issue 5', '');
md.push('| target | bulwark | met |', '|---|---|---|');
for (const t of summary.targets)
  md.push(`| ${t.target} | ${t.value == null ? 'not yet measured' : t.value} | ${t.met == null ? '–' : t.met ? 'yes' : '**no**'} |`);
md.push('');

fs.writeFileSync(path.join(out, 'results.md'), md.join('\n'));
process.stdout.write(md.join('\n') + '\n');
