/*
 * cluster.h: a primary that forks and supervises workers, and the seed's
 * crash-safe policy for the workers.
 *
 * The primary opens the listening sockets (or takes them from systemd
 * socket activation) before forking, so every worker inherits them and a
 * worker that stops accepting loses no queued connection; the primary keeps
 * them open until a shutdown begins and never accepts a connection itself.
 * Workers are forked (no exec): each gets a fresh bw_loop, inherited
 * listening sockets, and a socketpair to the primary for messages (online,
 * listening, heartbeat, retiring, disconnect, user messages).
 *
 * Supervision (bw_cluster_start): keep `workers` workers running. A worker
 * that starts to retire (it tells the primary at the moment of an error) or
 * dies is replaced at once, so capacity returns while the old one drains.
 * Workers that die before they listen are restarted with exponential
 * backoff; past the restart intensity (`restart_intensity` such failures in
 * `restart_period_ms`) the primary stops, says why and exits non-zero.
 * A callback that runs past the callback limit (guard.h,
 * bw_guard_set_callback_limit, default 1 s) is interrupted in the worker and
 * becomes an error in its request, like a fault. A worker whose loop stops
 * turning all the same (no heartbeat for `heartbeat_timeout_ms`: a loop the
 * limit could not interrupt, or the limit off) is the last resort: the
 * primary logs the last request it dispatched, forks its replacement at
 * once, then kills it. A draining worker still alive after
 * `kill_timeout_ms` is killed.
 *
 * Quarantine (src/cluster_quarantine.c): a request that crashes or hangs
 * `poison_threshold` workers within `poison_window_ms` is quarantined:
 * workers answer it 503 for `quarantine_ms` instead of crashing again. The
 * key is the whole request first, "METHOD /target" with its query (or what
 * bw_crash_policy.quarantine_key says), so one bad input does not take its
 * route down for everyone. It widens to every request of the route (the
 * router's pattern, "GET /items/:id", when one matched, else the path,
 * "GET /slow" for every query of /slow) when `poison_threshold` distinct
 * keys of that route crashed within the window: an attacker who varies
 * the query or the id does not dodge it. A hang counts against the hung
 * worker's last request (its path: the route is not known then). Workers
 * check a request against the exact keys and paths before its handler,
 * against routes once the router matched (before the route's handler);
 * with nothing quarantined or blocked that is one test per request.
 * bw_cluster_lift_quarantine ends quarantines early.
 *
 * Fault budget: a client address (the IP of bw_http_request_peer, so the
 * PROXY protocol's address behind a proxy) whose requests crashed
 * `client_fault_budget` workers within `client_fault_window_ms` is
 * blocked for `client_block_ms`: workers answer its requests 429 with
 * Retry-After before the handler runs (whatever they ask for; each
 * answer `client_block_delay_ms` late, so that a client looping on its
 * 429s as fast as it can costs the server next to nothing), the
 * primary logs the block (warn) and emits BW_EVENT_CLIENT_BLOCKED, and
 * bw_cluster_clients_blocked counts it. Hangs are not charged to a client
 * (the hung worker cannot say whose request it was).
 * SIGTERM/SIGINT: graceful shutdown of every worker within
 * `shutdown_timeout_ms`, then exit 0. Nothing is forked once it began. The
 * primary closes its copies of the listening sockets and each worker serves
 * the connections already queued before closing its own, so a client that
 * connects meanwhile is served or refused at connect. Workers ignore these
 * two signals unless the primary itself sends them (bw_worker_kill): sent
 * to the whole process group (Ctrl-C, systemd's KillMode=control-group),
 * they reach the workers too, and the primary's drain is what follows.
 * SIGHUP: rolling restart, one worker at a time, the new one listening
 * before the old one drains. SIGUSR1: reopen the event log (logrotate).
 * SIGUSR2: the binary upgrade (below). Workers ignore these three (sent to
 * the whole process group, they reach the workers too): only the primary
 * acts on them.
 *
 * Connection handoff (`handoff`, on by default): a worker that retires
 * (a fault, a hang the callback limit interrupted, a rolling restart, a
 * graceful disconnect) does not close its clients' connections: each one
 * at rest (no request being read or answered, every response written) is
 * passed to a worker that serves, with the bytes it had read and not
 * parsed (pipelined requests behind the last one it answered), how many
 * requests it carried, the time left on its timeout and the peer's
 * address. The receiver adopts it as if it had accepted it, parses the
 * carried bytes first and serves it; the client sees nothing, not even a
 * Connection: close (responses of a worker that retires say keep-alive).
 * A connection with a request in flight moves once its response is out;
 * one whose request head or body is still arriving is served where it
 * is, then moves. The path goes through the primary (it alone knows which
 * workers serve, and of which generation: a rolling restart hands the old
 * generation's connections to the new one), over a second socketpair per
 * worker, descriptors attached with SCM_RIGHTS, in batches of at most 32
 * connections and 128 KiB, at most 4 batches unanswered per worker. The
 * giver keeps its descriptor until the receiver answers, so a connection
 * is in exactly one worker at any time: a receiver that dies before
 * answering, one at its descriptor or connection limit, or no receiver at
 * all (a single worker's replacement still starting) gives the connection
 * back to the giver, which keeps serving it and offers it again (2 to 50
 * ms later) for up to `handoff_timeout_ms`; then, and when the whole
 * cluster stops, connections close as without handoff (a grace read, then
 * a lingering close; the last response says close where it still can),
 * with a log line. One limit: a batch delivered to a receiver that then
 * stops answering while still alive (stopped, or its loop stuck) cannot
 * be recalled (its descriptors are in the receiver's socket): those
 * connections wait, and requests sent on them are answered late, until
 * the primary finds the receiver hung (`heartbeat_timeout_ms`) and kills
 * it; then the giver takes them back (tests/e2e/test_handoff.py, R-08).
 * src/cluster_handoff.c describes the protocol.
 *
 * systemd (`notify`, on by default; nothing happens without NOTIFY_SOCKET):
 * the primary speaks the sd_notify protocol to the socket NOTIFY_SOCKET
 * names, as a Type=notify service: READY=1 once `workers` workers listen;
 * RELOADING=1 with MONOTONIC_USEC= when a rolling restart begins and
 * READY=1 when it is over; STOPPING=1 when a shutdown begins; STATUS= with
 * the worker counts whenever they change. With WATCHDOG_USEC (and
 * WATCHDOG_PID naming the primary, or unset) it sends WATCHDOG=1 every half
 * interval from a timer on its own loop, while supervision is healthy: not
 * given up, no worker silent for twice `heartbeat_timeout_ms` unattended,
 * none alive `heartbeat_timeout_ms` after a SIGKILL. Workers lose the three
 * variables at fork: only the primary speaks for the service.
 *
 * Metrics and health (`admin_port`, off by default): the primary serves,
 * on its own loop, GET /metrics in Prometheus' text format, /healthz (200
 * while its loop turns) and /readyz (200 while a worker listens and no
 * shutdown, give-up or upgrade handover has begun; 503 from the moment
 * one does). The workers count requests (by status and outcome), their
 * duration and the errors that reached them (by origin and signal) in
 * pages shared with the primary before the fork, so the counts of a
 * worker that faults are not lost with it and none is counted twice;
 * the primary counts exits by reason, replacement and drain times, and
 * handoffs itself. docs/DEPLOYMENT.md lists every metric.
 *
 * Recycling and limits (`max_requests`, `max_requests_jitter`,
 * `max_memory_mb`; all off by default): the primary decides, from its tick.
 * A worker past its request threshold (the dispatched count the worker
 * keeps in the page it shares with the primary, the count the hang report
 * reads: the request path does nothing new) or its resident-memory limit
 * is recycled as a rolling restart replaces a worker: its replacement is
 * forked first, and once that one listens the old one disconnects
 * gracefully and hands its connections off, so no request is lost. One
 * worker at a time, none while a rolling restart runs (it replaces them
 * all), none while shutting down. The primary logs why at info level
 * (requests and threshold, or RSS and limit) and emits BW_EVENT_RECYCLE
 * ("recycle" in the event log, with the reason). A replacement that dies
 * before listening counts as a start-up failure (backoff, restart
 * intensity); the old worker keeps serving and is recycled later.
 *
 * Privileges (`user`, `group`): the primary keeps its identity (root, to
 * bind port 80; it never runs user code); each worker, right after fork and
 * before any user code, sets its supplementary groups (the user's, from
 * the group database, or just `group`), then its gid, then its uid, and
 * checks the result (real and effective ids, and that setuid(0) now
 * fails). A failure is logged and ends the worker with
 * BW_EXIT_PRIVILEGES before it listens: supervision restarts it with
 * backoff and, past the restart intensity, gives up saying why. A primary
 * that is not root can only "drop" to its own ids: anything else fails
 * that way. Workers running as root without a `user`: see `allow_root`
 * (by default a warning, not a refusal, so that a program that ran as
 * root before keeps running; a service should set a user, or BW_NO).
 *
 * A reload that must pick up a new binary needs an exec: bulwark forks
 * workers from the primary's image, so a new binary means restarting the
 * primary (systemd socket activation keeps the listening socket across
 * that restart).
 *
 * In a worker, the crash-safe policy (bw_worker_ctx_serve_http) turns an error
 * in a request's domain into: a crash report in the log (error, signal and
 * address, backtrace, request, worker pid), a kill timer that fires even if
 * the loop or malloc is wedged (a kernel timer whose handler calls _exit),
 * stop accepting, tell the primary, answer that request 500 (or reset it if
 * its headers are out), let every other request finish, exit.
 */
#ifndef BULWARK_CLUSTER_H
#define BULWARK_CLUSTER_H

#include "common.h" /* first: the feature macros uv.h needs */
#include <sys/types.h>

#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bw_cluster bw_cluster;       /* the primary's supervisor */
typedef struct bw_worker bw_worker;         /* a worker, seen from the primary */
typedef struct bw_worker_ctx bw_worker_ctx; /* the worker process's own view */

typedef struct bw_cluster_options {
    int workers;                    /* how many to keep running. Default 2 */
    int backlog;                    /* listen backlog. Default 511 */
    uint64_t kill_timeout_ms;       /* a draining worker's deadline: its own kernel timer ends
                                       it then, and the primary kills it 1 s later. Must
                                       not be 0 (bw_cluster_new: -EINVAL). Default 30000 */
    uint64_t heartbeat_interval_ms; /* worker -> primary. Default 1000 */
    uint64_t heartbeat_timeout_ms;  /* no heartbeat this long: hung. Default 10000 */
    uint64_t shutdown_timeout_ms;   /* SIGTERM/SIGINT deadline. Default 30000 */
    uint64_t drain_delay_ms;        /* SIGTERM/SIGINT: serve on this long, /readyz already
                                       503 (and systemd told STOPPING), before the drain
                                       begins, so a load balancer's health check takes
                                       the instance out while it still serves everything:
                                       set it above the check's fall x interval. Default 0 */
    int restart_intensity;          /* start-up failures allowed... Default 5 */
    uint64_t restart_period_ms;     /* ...within this period. Default 60000 */
    uint64_t backoff_initial_ms;    /* first restart delay after a start-up failure. 100 */
    uint64_t backoff_max_ms;        /* Default 10000 */
    int max_forks_per_second;       /* a ceiling on forks, whatever the cause. Default 200 */
    int poison_threshold;           /* crashes of one route that quarantine it; 0: off. 3 */
    uint64_t poison_window_ms;      /* Default 60000 */
    uint64_t quarantine_ms;         /* Default 60000 */
    int client_fault_budget;        /* crashes one client address may cause... 0: off. 5 */
    uint64_t client_fault_window_ms; /* ...within this window. Default 60000 */
    uint64_t client_block_ms;       /* then it is answered 429 this long. Default 60000 */
    uint64_t client_block_delay_ms; /* each 429 waits this long before it goes (at most
                                       half the server's response_timeout_ms): a client
                                       that retries at once is slowed to one request per
                                       delay per connection; 0: at once. Default 1000 */
    bool handle_signals;            /* SIGTERM/SIGINT/SIGHUP as above. Default true */
    const char *event_log;          /* JSON lines of events, or NULL (env BW_EVENT_LOG):
                                       {"mono_ns", "time" (RFC 3339, UTC, ms), "event",
                                       "worker", "pid", ...}; an exit has "code" (-1 if
                                       killed), "signal" (0 if not) and "signal_name" */
    bool handoff;                   /* a retiring worker hands its connections at rest to a
                                       serving sibling instead of closing them
                                       ("Connection handoff" above). Default true */
    uint64_t handoff_timeout_ms;    /* how long a batch of connections may wait for a
                                       worker to take it; then they close gracefully where
                                       they are. Default 2000 */
    bool notify;                    /* with NOTIFY_SOCKET set (systemd's Type=notify), tell
                                       the service manager READY/RELOADING/STOPPING/STATUS
                                       and, with WATCHDOG_USEC, ping its watchdog while
                                       supervision is healthy ("systemd" above). Default
                                       true */
    const char *const *upgrade_argv; /* SIGUSR2 execs this (argv[0] the program's path,
                                       NULL-terminated; copied by bw_cluster_new). NULL:
                                       the command line the process was started with */
    uint64_t upgrade_timeout_ms;    /* a new primary not ready within this is killed and
                                       the old one goes on serving. Default 60000 */
    int admin_port;                 /* the primary's admin listener ("Metrics and health"
                                       above): 0 off (the default), -1 any free port
                                       (bw_cluster_admin_port tells which) */
    const char *admin_host;         /* its address. Default "127.0.0.1" (loopback only) */
    bool metrics;                   /* with the admin listener, workers keep the counters
                                       of /metrics (about 46 instructions per request).
                                       Default true */
    /* Recycling ("Recycling and limits" above). A worker that has dispatched
     * max_requests + a random 0..max_requests_jitter requests (its own
     * threshold, drawn by the primary at fork and written in its fork event
     * as "max_requests") is replaced the rolling-restart way: its
     * replacement is forked first, and once that one listens the old one
     * disconnects gracefully, handing its connections off. A soft limit:
     * the primary looks every 50 ms, and the worker serves on until its
     * replacement listens. 0: off (the default, and the jitter's). */
    uint64_t max_requests;
    uint64_t max_requests_jitter;
    /* The same for a worker whose resident memory (/proc/<pid>/statm, read
     * at most once a second) exceeds this many MiB. 0: off (default). */
    uint64_t max_memory_mb;
    /* Privileges ("Privileges" above): the user and group the workers run
     * as, names or numeric ids; NULL (the default): the primary's own.
     * group NULL with a user: the user's primary group. Read by
     * bw_cluster_new. */
    const char *user;
    const char *group;
    /* Workers running as root because the primary does and no `user` is
     * set: BW_UNSET (the default) allows it with a warning in the log,
     * BW_NO refuses (bw_cluster_new: -EPERM), BW_YES allows it silently. A
     * user that is root (uid 0) is explicit, always allowed. */
    bw_tristate allow_root;
    /* A file the primary writes its pid into (atomically: a temporary file
     * renamed) when bw_cluster_start begins, and removes when the cluster is
     * freed if the file still holds its pid. NULL: none (default). The
     * string is copied. */
    const char *pid_file;
} bw_cluster_options;

/* The exit status of a worker that could not drop its privileges (as
 * sysexits' EX_NOPERM). */
#define BW_EXIT_PRIVILEGES 77

/* Fill `o` with the defaults documented on each field. */
BW_EXTERN void bw_cluster_options_init(bw_cluster_options *o);

/* ---- The primary -------------------------------------------------------- */

typedef enum bw_worker_state {
    BW_WORKER_NONE = 0,
    BW_WORKER_ONLINE = 1,
    BW_WORKER_LISTENING = 2,
    BW_WORKER_DISCONNECTED = 3,
    BW_WORKER_DEAD = 4,
} bw_worker_state;

typedef enum bw_cluster_event_type {
    BW_EVENT_FORK = 0,
    BW_EVENT_ONLINE = 1,
    BW_EVENT_LISTENING = 2,
    BW_EVENT_DISCONNECT = 3,
    BW_EVENT_EXIT = 4,
    BW_EVENT_MESSAGE = 5, /* a user message from the worker */
    BW_EVENT_RETIRING = 6, /* the worker hit an error and is draining */
    BW_EVENT_HANG = 7,     /* no heartbeat: the worker is being killed */
    BW_EVENT_QUARANTINE = 8,
    BW_EVENT_RECYCLE = 9,  /* the worker reached max_requests or max_memory_mb: it is
                              replaced, then drains (data: the reason) */
    BW_EVENT_CLIENT_BLOCKED = 10, /* data: the client's IP address */
} bw_cluster_event_type;

typedef struct bw_cluster_event {
    bw_cluster_event_type type;
    bw_worker *worker;
    /* LISTENING: the address the worker listens on (C-03). */
    const char *address;
    int family; /* 4 or 6 */
    int port;
    /* EXIT: exit code (or -1) and signal (or 0), and whether the exit
     * followed a disconnect. */
    int exit_code;
    int term_signal;
    /* MESSAGE: the payload (valid during the callback). RETIRING, HANG:
     * "METHOD /target" of the request concerned (RETIRING: or the policy's
     * quarantine_key). QUARANTINE: the key quarantined ("METHOD /target",
     * "METHOD /path" or "METHOD /route/:pattern"). RECYCLE: "max_requests"
     * or "max_memory". CLIENT_BLOCKED: the IP. */
    const char *data;
    size_t len;
} bw_cluster_event;

typedef void (*bw_cluster_event_cb)(bw_cluster *c, const bw_cluster_event *ev, void *data);

/* The worker's entry point, run in the forked child with a fresh loop. Its
 * return value is the worker's exit status. */
typedef int (*bw_worker_main_fn)(bw_worker_ctx *ctx, void *data);

/*
 * A cluster on the primary's loop. Nothing is forked yet. The event log
 * (options or BW_EVENT_LOG) is opened here, and `user` and `group` are
 * looked up. 0, -ENOMEM, -EINVAL (a bad option), -ENOENT (no such user or
 * group), -EPERM (root workers refused: allow_root BW_NO), or -errno.
 */
BW_EXTERN int bw_cluster_new(bw_loop *loop, const bw_cluster_options *options,
                             bw_worker_main_fn main, void *data, bw_cluster **out);

/* Open a listening socket in the primary (before forking; every worker
 * inherits it). Port 0 picks one (see bw_cluster_port). */
BW_EXTERN int bw_cluster_listen(bw_cluster *c, const char *host, int port);

/* Take the sockets systemd passed (LISTEN_PID/LISTEN_FDS); returns how
 * many (0 if none were passed) or -errno. The variables are then unset. */
BW_EXTERN int bw_cluster_listen_inherited(bw_cluster *c);

/* The admin listener's port (the one the kernel chose for admin_port -1),
 * or 0 when it is off or not started yet (bw_cluster_start starts it). */
BW_EXTERN int bw_cluster_admin_port(const bw_cluster *c);

/* The port the cluster listens on (the one the kernel chose for a port of
 * 0); 0 before bw_cluster_listen. */
BW_EXTERN int bw_cluster_port(const bw_cluster *c);

/* Events in the primary (fork, online, listening, disconnect, exit, ...).
 * Several callbacks may be added; they run under a guard. */
BW_EXTERN int bw_cluster_on_event(bw_cluster *c, bw_cluster_event_cb cb, void *data);

/* Fork one worker now; `env` ("NAME=value" strings, NULL-terminated, may be
 * NULL) is added to the worker's environment (C-06). The fork event is
 * emitted later, never inside this call (C-07). Without bw_cluster_start,
 * nobody replaces the worker and the restart intensity does not count it. */
BW_EXTERN int bw_cluster_fork(bw_cluster *c, const char *const *env, bw_worker **out);

/* Supervise: fork `workers` workers and keep that many running, with the
 * policies above. Workers get SIGTERM when the primary dies
 * (PR_SET_PDEATHSIG), which Linux ties to the thread that forked them:
 * run the primary's loop on the thread that will live as long as the
 * primary (its main thread), or a worker is told to stop when that thread
 * exits. With admin_port set, the admin listener starts first. 0; -errno
 * if the pid file (`pid_file`) could not be written; or the admin
 * listener's error (-EADDRINUSE...). Nothing is forked after an error. */
BW_EXTERN int bw_cluster_start(bw_cluster *c);

/* Graceful shutdown: stop replacing (supervision ends), disconnect every
 * worker, kill those still alive after shutdown_timeout_ms; cb(c, data) once
 * all are gone (always after this call returns, C-30). From then on the
 * cluster may fork again, and shut down again (C-33). */
typedef void (*bw_cluster_done_cb)(bw_cluster *c, void *data);
BW_EXTERN int bw_cluster_disconnect(bw_cluster *c, bw_cluster_done_cb cb, void *data);

/* Rolling restart (SIGHUP does this): one worker at a time, a new one
 * forked and listening before an old one is told to disconnect. If a new
 * worker dies before listening or cannot be forked, the restart is
 * abandoned (logged; the old workers keep serving) rather than retried.
 * Calling it during a restart changes nothing. 0, a fork's error, or
 * BW_ESTATE while shutting down or after giving up. */
BW_EXTERN int bw_cluster_rolling_restart(bw_cluster *c);

/* The workers known now (dead ones leave once disconnected and exited, so an
 * exit event no longer finds its worker here: C-18, C-21). */
BW_EXTERN size_t bw_cluster_worker_count(const bw_cluster *c);
BW_EXTERN bw_worker *bw_cluster_worker_at(const bw_cluster *c, size_t i);
/* Workers that count towards capacity (not retiring, not dead). */
BW_EXTERN size_t bw_cluster_active_count(const bw_cluster *c);

/* Close the listening sockets and the cluster's handles; cb fires when the
 * cluster can be freed. Call after all workers are gone, from
 * bw_cluster_disconnect's callback: before it, BW_EBUSY (a worker that just
 * left the list may still be being released). */
BW_EXTERN int bw_cluster_close(bw_cluster *c, bw_cluster_done_cb cb, void *data);
BW_EXTERN void bw_cluster_free(bw_cluster *c);

/* Exit status the primary should use: 0, or non-zero after it gave up
 * (restart intensity exceeded). */
BW_EXTERN int bw_cluster_exit_status(const bw_cluster *c);

/*
 * The whole primary in one call, as the seed's "Much better!" block: a loop,
 * a cluster listening on host:port (or on systemd's sockets), `workers`
 * supervised workers running `main`, signals handled, until shutdown.
 * Returns the process's exit status. In a forked worker it never returns.
 */
BW_EXTERN int bw_cluster_run(const bw_cluster_options *options, const char *host, int port,
                             bw_worker_main_fn main, void *data);

/*
 * Lift quarantines now, in the primary and in every worker: the one whose
 * key is `key` (as the quarantine event and log gave it: "GET /slow?ms=666",
 * "GET /slow", "GET /items/:id"), or all of them with key NULL. The crash
 * counts behind them start again from zero. Returns how many the primary
 * lifted (0: none had that key; the workers are told all the same), or
 * -EINVAL for an empty key. For an admin endpoint (POST /quarantine/lift).
 */
BW_EXTERN int bw_cluster_lift_quarantine(bw_cluster *c, const char *key);

/* The same for the fault budget's blocks: the client `ip` ("127.0.0.2",
 * "::1"), or every client with NULL. Its crash count starts again. */
BW_EXTERN int bw_cluster_unblock_client(bw_cluster *c, const char *ip);

/* For metrics: quarantines in force now; client blocks decided since the
 * cluster was made (a counter); clients blocked now. */
BW_EXTERN size_t bw_cluster_quarantines_active(const bw_cluster *c);
BW_EXTERN uint64_t bw_cluster_clients_blocked(const bw_cluster *c);
BW_EXTERN size_t bw_cluster_clients_blocked_now(const bw_cluster *c);

/* A worker, from the primary. */
BW_EXTERN int bw_worker_id(const bw_worker *w);
BW_EXTERN pid_t bw_worker_pid(const bw_worker *w);
BW_EXTERN bw_worker_state bw_worker_state_of(const bw_worker *w);
BW_EXTERN bool bw_worker_is_connected(const bw_worker *w);
BW_EXTERN bool bw_worker_is_dead(const bw_worker *w);
/* BW_UNSET until bw_worker_disconnect or the first disconnect or exit event,
 * then yes/no (C-37..C-39). */
BW_EXTERN bw_tristate bw_worker_exited_after_disconnect(const bw_worker *w);
/* Send a user message (C-08); 0, or -EPIPE if the channel is closed. */
BW_EXTERN int bw_worker_send(bw_worker *w, const void *msg, size_t len);
/* Signal the worker (0: SIGTERM). Does not mark it as disconnected (C-18). */
BW_EXTERN int bw_worker_kill(bw_worker *w, int sig);
/* Ask the worker to disconnect gracefully (C-24). */
BW_EXTERN int bw_worker_disconnect(bw_worker *w);

/* ---- In the worker ----------------------------------------------------- */

/* True in a process forked as a worker. */
BW_EXTERN bool bw_cluster_is_worker(void);

/* The worker's loop (made by the cluster; the worker's main runs it). */
BW_EXTERN bw_loop *bw_worker_ctx_loop(bw_worker_ctx *ctx);
/* The worker's id, as the primary's bw_worker_id gives it (1, 2, ...). */
BW_EXTERN int bw_worker_ctx_id(const bw_worker_ctx *ctx);

/* The listening sockets inherited from the primary (none once the worker
 * began to drain: it closes them, so that they stop listening once every
 * process that served them is done). */
BW_EXTERN size_t bw_worker_ctx_listen_fd_count(const bw_worker_ctx *ctx);
BW_EXTERN int bw_worker_ctx_listen_fd(const bw_worker_ctx *ctx, size_t i);

/*
 * The crash-safe policy of bw_worker_ctx_serve_http. On an error in a request's
 * domain the worker, in this order: arms a kernel kill timer of
 * kill_timeout_ms (it fires even if the loop or malloc is wedged), tells the
 * primary (which forks a replacement at once and kills the worker itself
 * kill_timeout_ms + 1 s later if it is still alive), stops accepting, logs
 * the error, and answers the request. The answer: the server's own error
 * hook if the user set one (options.on_request_error), which writes what it
 * likes; if it leaves the response unfinished (or there is none), a 500 with
 * this body and content type; a response whose headers went out already is
 * reset. Every other request on the worker is served; then it exits.
 */
/* Writes the 503 of a quarantined request (headers, body): a JSON API
 * answers JSON. retry_after_s: the seconds left on the quarantine (at
 * least 1), which the default also sends as Retry-After. It runs under a
 * guard; a response it leaves unfinished (or a throw) gets the default. */
typedef void (*bw_quarantine_cb)(bw_http_request *req, bw_http_response *res,
                                 uint64_t retry_after_s, void *data);

/* Chooses a request's exact quarantine key: writes a NUL-terminated key of
 * at most `size` bytes (size is 256) into `key`; an empty key falls back to
 * the default, "METHOD /target". Called when a request retires its worker
 * (after the kill timer is armed) and, while anything is quarantined, for
 * every request before its handler: keep it cheap, and give equal requests
 * equal keys (the method first, then whatever identifies the input: a
 * header, a tenant). The path and route widening above is unchanged. Runs
 * under a guard: a throw falls back to the default. */
typedef void (*bw_quarantine_key_cb)(bw_http_request *req, char *key, size_t size, void *data);

typedef struct bw_crash_policy {
    uint64_t kill_timeout_ms; /* 0: the cluster's kill_timeout_ms (the default) */
    const char *body;         /* the 500's body; NULL: "Oops, there was a problem!\n" */
    const char *content_type; /* the 500's Content-Type; NULL: "text/plain" (headers and
                                 the rest: the server's on_request_error hook, which the
                                 policy calls first, see bw_worker_ctx_serve_http) */
    bw_quarantine_cb on_quarantined; /* NULL: a plain-text 503 with Retry-After */
    void *quarantine_data;
    bw_quarantine_key_cb quarantine_key; /* NULL: "METHOD /target" */
    void *quarantine_key_data;
    /* false (the seed's policy, the default): every error that reaches a
     * request's domain retires the worker. true: only a fault or an
     * interrupted hang (origins fault and timeout: memory or the loop may
     * be damaged) does; a throw, an emitter's unhandled error or an error
     * handed to a callback (an ENOENT) costs its request the error
     * response and the disposal of its domain (timers cleared, cleanups
     * run, arena freed), and the worker goes on. That assumes of the
     * request's code that everything it holds is owned by its domain
     * (members, cleanups, the request's memory), and that it holds no lock
     * and leaves no shared state half-changed across a throw. */
    bool keep_on_errors;
} bw_crash_policy;

/*
 * Serve `srv` on the inherited sockets with the crash-safe policy (policy
 * NULL: defaults): announces `listening` to the primary for each socket,
 * answers quarantined requests 503 and blocked clients 429 (see
 * "Quarantine" and "Fault budget" above), records each dispatched request for the
 * primary's hang report. The server must be new (not listening). It stays
 * the caller's, but the worker closes it when it disconnects: free it only
 * after the worker's loop has ended, even if you closed it yourself.
 */
BW_EXTERN int bw_worker_ctx_serve_http(bw_worker_ctx *ctx, bw_http_server *srv,
                                   const bw_crash_policy *policy);

/* Disconnect: stop accepting, finish in-flight requests, tell the primary,
 * close the channel; the process then exits when its loop is empty
 * (C-22, C-25). Repeated calls do nothing. */
BW_EXTERN int bw_worker_ctx_disconnect(bw_worker_ctx *ctx);

/* True while the channel to the primary is open: from start-up until the
 * disconnect callback, which already reads false (C-14). */
BW_EXTERN bool bw_worker_ctx_is_connected(const bw_worker_ctx *ctx);

/* User messages from the primary: cb runs under a guard, in the worker's
 * own callbacks domain (an error there is logged and retires the worker).
 * And to the primary: bw_worker_ctx_send copies msg; 0, -EPIPE once
 * disconnected, -EMSGSIZE past the channel's message size, or -errno. */
typedef void (*bw_worker_ctx_message_cb)(bw_worker_ctx *ctx, const void *msg, size_t len, void *data);
BW_EXTERN void bw_worker_ctx_on_message(bw_worker_ctx *ctx, bw_worker_ctx_message_cb cb, void *data);
BW_EXTERN int bw_worker_ctx_send(bw_worker_ctx *ctx, const void *msg, size_t len);

/* Called once the worker has disconnected (its channel is closed). */
typedef void (*bw_worker_ctx_disconnect_cb)(bw_worker_ctx *ctx, void *data);
BW_EXTERN void bw_worker_ctx_on_disconnect(bw_worker_ctx *ctx, bw_worker_ctx_disconnect_cb cb,
                                       void *data);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_CLUSTER_H */
