/*
 * cluster_internal.h: what the primary (cluster_primary.c) and the worker
 * runtime (cluster_worker.c) share: the channel protocol, the shared page
 * each worker writes its last request into, and the structures.
 *
 * The channel is a SOCK_SEQPACKET socketpair: one message per packet, so
 * framing is free and a message is never split. A message is a type byte
 * followed by a payload of at most BW__MSG_MAX - 1 bytes. Unknown or
 * malformed messages are ignored (C-11).
 */
#ifndef BULWARK_CLUSTER_INTERNAL_H
#define BULWARK_CLUSTER_INTERNAL_H

#include <time.h>

#include "bulwark/cluster.h"
#include "cluster_recycle.h"
#include "http_internal.h"
#include "internal.h"
#include "sd_notify.h"

#define BW__MSG_MAX 4096

typedef struct bw__relay bw__relay;
typedef struct bw__metrics bw__metrics;
#define BW__MAX_LISTENERS 8
#define BW__REQUEST_TEXT 256

enum bw__msg_type {
    /* worker -> primary */
    BW__MSG_ONLINE = 'O',
    BW__MSG_LISTENING = 'L',     /* "address family port" */
    BW__MSG_HEARTBEAT = 'H',
    BW__MSG_RETIRING = 'R',      /* "kill_ms KEY\nPEER_IP\nGROUP": the error is in that
                                    request (KEY: "METHOD /target" or the policy's
                                    quarantine_key; PEER_IP may be empty; GROUP: "r METHOD
                                    /pattern" or "p METHOD /path"); the worker's own kill
                                    timer fires after kill_ms */
    BW__MSG_DISCONNECTING = 'D', /* worker-initiated disconnect: acknowledge */
    BW__MSG_FAILED = 'F',        /* "why": the worker cannot start and exits (the primary's
                                    log says why: its exit status may come after its EOF) */
    /* primary -> worker */
    BW__MSG_DISCONNECT = 'd',    /* primary-initiated graceful disconnect; "stay": no worker
                                    could take its connections (they close there) */
    BW__MSG_SHUTDOWN = 's',      /* the same, the whole cluster stopping: the worker also
                                    serves the connections queued on the listeners */
    BW__MSG_ACK = 'a',           /* acknowledges DISCONNECTING */
    BW__MSG_QUARANTINE = 'q',    /* "ttl_ms KIND KEY" (KIND: bw__qkind; c: a client
                                    blocked) */
    BW__MSG_LIFT = 'l',          /* "q KEY", "q" (every quarantine), "c IP", "c" (every
                                    client block): lifted */
    /* both ways */
    BW__MSG_USER = 'u',
};

/* Written by the worker at each dispatch, read by the primary when the
 * worker stops answering (hang report). A torn read only garbles a
 * diagnostic, so no lock. */
/* The fault signals counted apart (bulwark_faults_total's signal label). */
#define BW__FAULT_SIGNALS 7 /* none, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, other */
#define BW__ORIGINS 5       /* bw_error_origin */

/* What a worker counts for the metrics (cluster_metrics.c). In the shared
 * page, so that the counts of a worker that dies are still there for the
 * primary to add up (once, when it forgets the worker). */
typedef struct bw__worker_counts {
    bw_http_stats http;
    uint64_t errors[BW__ORIGINS][BW__FAULT_SIGNALS]; /* errors that reached a request */
} bw__worker_counts;

typedef struct bw__worker_shm {
    volatile uint64_t dispatched;
    char last_request[BW__REQUEST_TEXT];
    bw__worker_counts counts;
    uint64_t connections, in_flight; /* gauges, written at each heartbeat */
} bw__worker_shm;

/* What a quarantine or a block keys on (cluster_quarantine.c). */
typedef enum bw__qkind {
    BW__Q_EXACT = 'e', /* "METHOD /target" (or the policy's quarantine_key) */
    BW__Q_PATH = 'p',  /* "METHOD /path": every query of it */
    BW__Q_ROUTE = 'r', /* "METHOD /items/:id": the router's matched pattern */
    BW__Q_CLIENT = 'c', /* a peer IP address (the fault budget) */
} bw__qkind;

/* A quarantine candidate (or a quarantine), as the primary knows it and as
 * workers copy it. Exact keys count crashes; path and route keys count the
 * distinct exact keys that crashed under them. */
typedef struct bw__poison {
    char key[BW__REQUEST_TEXT];
    char kind;                  /* bw__qkind (not CLIENT) */
    uint64_t times[16];         /* recent crashes (primary clock, ms) */
    uint64_t targets[16];       /* path, route: a hash of each crash's exact key */
    size_t ntimes;
    uint64_t until_ms;          /* quarantined until (0: not quarantined) */
    uint64_t until_mono_ns;     /* the same, on the system-wide monotonic clock */
} bw__poison;

#define BW__MAX_POISON 64

/* A client's crashes (the fault budget), and its block. */
typedef struct bw__client {
    char ip[48];
    uint64_t times[16];
    size_t ntimes;
    uint64_t until_ms;      /* blocked until (0: not blocked) */
    uint64_t until_mono_ns;
} bw__client;

#define BW__MAX_CLIENTS 128

/* The worker's copy of what is quarantined or blocked. `active` is the
 * one thing a request looks at when nothing is (the fast path). */
typedef struct bw__qentry {
    char kind;
    char key[BW__REQUEST_TEXT];
    uint64_t until_mono_ns;
    bool logged; /* (client) its first refusal was logged */
} bw__qentry;

#define BW__MAX_GUARDS 64

typedef struct bw__guards {
    size_t active; /* entries in use (some may have expired: pruned on a match) */
    size_t nroute;  /* of them, ROUTE entries (the router's gate) */
    size_t nclient; /* and CLIENT entries */
    bw__qentry g[BW__MAX_GUARDS];
} bw__guards;

struct bw_worker {
    bw_cluster *c;
    bw_worker *next;
    int id;
    pid_t pid;
    bw_worker_state state;
    int fd;
    uv_poll_t poll;
    bool poll_open;
    bool connected;
    bool exited;
    int exit_code;
    int term_signal;
    bw_tristate after_disconnect;
    bool disconnect_sent;    /* the primary asked it to disconnect */
    bool retiring;           /* it hit an error and drains */
    bool was_listening;
    bool hang_reported;
    bool gone;               /* its departure was accounted for (once) */
    bool fork_event_pending;
    bool rolling_old;        /* to be replaced by the rolling restart */
    bool replaced;           /* a replacement was forked (and logged) for it */
    uint64_t forked_ms;
    uint64_t last_heartbeat_ms;
    uint64_t kill_deadline_ms;
    uint64_t sigkill_ms;     /* when the primary sent SIGKILL (0: never) */
    uint64_t drain_since_ms; /* when it began to retire or drain (0: serving) */
    bool recycled;           /* retired by max_requests or the memory limit */
    bw__worker_shm *shm;
    int ho_fd;          /* the handoff channel (-1: none) */
    uv_poll_t ho_poll;
    bool ho_poll_open;
    uint64_t recycle_at;     /* recycle once it dispatched this many (0: never) */
    bool recycle_due;        /* past a limit: to be replaced (cluster_recycle.c) */
    char failure[192];       /* "; it reported: ..." (BW__MSG_FAILED), or "" */
};

typedef struct bw__event_cb {
    bw_cluster_event_cb cb;
    void *data;
} bw__event_cb;

/* A binary upgrade in progress, from either side (cluster_upgrade.c). */
typedef struct bw__upgrade {
    char *args;             /* the command line's strings, back to back */
    char **argv;            /* into args */
    char *path;             /* absolute argv[0], or NULL: search PATH */
    bw_worker *peer;        /* the other primary, as a handoff channel */
    bool successor;         /* we were started by an upgrade */
    bool ready_sent;        /* (successor) READY went to the predecessor */
    pid_t successor_pid;    /* (predecessor) the new primary, until it is settled */
    pid_t failed_pid;       /* (predecessor) a failed one, still to reap */
    bool handing_over;      /* (predecessor) it is ready: we drain into it */
    uint64_t deadline_ms;   /* (predecessor) ready by then, or rolled back */
    bool channel_lost;      /* (predecessor) it closed the channel before READY */
} bw__upgrade;

struct bw_cluster {
    bw_loop *loop;
    bw_cluster_options opts;
    bw_worker_main_fn main;
    void *main_data;
    pid_t primary_pid;
    int listen_fds[BW__MAX_LISTENERS];
    size_t nlisten;
    int port;
    bw_worker *workers;
    int next_id;
    int maintained; /* workers forked by supervision: the first `workers` start it */
    bool supervising;
    bool shutting_down;
    bool gave_up;
    int exit_status;
    uv_timer_t tick;
    uv_idle_t deferred; /* emits fork events after fork() returned (C-07) */
    uv_signal_t sigchld, sigterm, sigint, sighup, sigusr2, sigusr1;
    char event_log_path[4096]; /* for SIGUSR1's reopen ("": none) */
    bool signals_on;
    size_t handles_open;
    uint64_t failures[64]; /* start-up failures (ms), a ring */
    size_t nfailures;
    uint64_t backoff_ms;
    uint64_t next_fork_ms; /* start-up backoff: no fork before */
    double fork_tokens;
    uint64_t tokens_ms;
    bw__poison poison[BW__MAX_POISON];
    size_t npoison;
    bw__client clients[BW__MAX_CLIENTS]; /* the fault budget (cluster_quarantine.c) */
    size_t nclients;
    uint64_t clients_blocked; /* blocks decided since the start */
    bw__event_cb *event_cbs;
    size_t nevent_cbs;
    int event_log_fd;
    bw_cluster_done_cb disconnect_cb;
    void *disconnect_data;
    bool disconnect_done_pending;
    uint64_t shutdown_deadline_ms;
    bool rolling;
    bw_worker *rolling_new; /* the replacement being started */
    bw_cluster_done_cb close_cb;
    void *close_data;
    bw__relay *relay; /* handoffs in flight (cluster_relay.c) */
    /* The service manager (cluster_notify.c). */
    bw__notify notify;
    uv_timer_t watchdog;
    bool watchdog_open;
    bool notify_ready, notify_reloading, notify_stopping;
    char notify_status[160]; /* the last STATUS= sent */
    bw__upgrade upgrade;     /* SIGUSR2 (cluster_upgrade.c) */
    bw__metrics *metrics;    /* the admin listener and the counters (cluster_metrics.c) */
    uint64_t stop_at_ms;     /* drain_delay_ms: the shutdown begins then (0: none pending) */
    /* Recycling (cluster_recycle.c). */
    uint64_t recycle_rng;    /* the jitter's generator state */
    uint64_t rss_checked_ms; /* the last reading of the workers' RSS */
    bw_worker *recycle_new;  /* the replacement being started... */
    bw_worker *recycle_old;  /* ...for this one */
    /* Privileges and pid file (cluster_privileges.c). */
    bool drop_privileges;
    uid_t run_uid;
    gid_t run_gid;
    gid_t *run_groups;
    int nrun_groups;
    char run_user[64];       /* for the log: the name as given */
    char *pid_file;          /* written by bw_cluster_start (NULL: none or not yet) */
};

/* cluster_metrics.c: the admin listener (/metrics, /healthz, /readyz) and
 * what the primary counts itself. start: at bw_cluster_start (if
 * admin_port); close: at bw_cluster_close (true if it has a handle to wait
 * for: it calls bw__cluster_handle_closed then); worker events feed the
 * primary's own counters and histograms; forget: a worker's shared counts
 * added to the retired ones, before its page goes. */
BW__HIDDEN int bw__metrics_start(bw_cluster *c);
BW__HIDDEN bool bw__metrics_close(bw_cluster *c);
BW__HIDDEN void bw__metrics_free(bw_cluster *c);
BW__HIDDEN void bw__metrics_retiring(bw_cluster *c, bw_worker *w); /* replaced at once */
BW__HIDDEN void bw__metrics_draining(bw_cluster *c, bw_worker *w); /* asked to drain */
BW__HIDDEN void bw__metrics_listening(bw_cluster *c, bw_worker *w);
BW__HIDDEN void bw__metrics_exit(bw_cluster *c, bw_worker *w);
BW__HIDDEN void bw__metrics_forget(bw_cluster *c, bw_worker *w);
BW__HIDDEN void bw__metrics_handoff(bw_cluster *c, size_t moved, size_t refused);
BW__HIDDEN void bw__cluster_handle_closed(bw_cluster *c);
/* A listening TCP socket (non-blocking, CLOEXEC) on host:port ("localhost"
 * or NULL: 127.0.0.1; an address with ':' is IPv6): the fd or -errno. */
BW__HIDDEN int bw__listen_socket(const char *host, int port, int backlog);
/* The admin listener's socket, for an upgrade's successor (-1: none), and
 * the handover: this primary stops accepting on it. */
BW__HIDDEN int bw__metrics_admin_fd(const bw_cluster *c);
BW__HIDDEN void bw__metrics_hand_over(bw_cluster *c);
/* Workers by state (starting, serving, draining), for STATUS= and metrics. */
typedef struct bw__worker_census {
    int serving, starting, draining;
} bw__worker_census;
BW__HIDDEN bw__worker_census bw__cluster_census(const bw_cluster *c);

/* cluster_primary.c, for the upgrade: stop supervising and ask every
 * worker to disconnect (their connections go to the successor), exit once
 * they are gone; or, the successor lost, supervise again. */
BW__HIDDEN void bw__cluster_hand_over(bw_cluster *c);
BW__HIDDEN void bw__cluster_resume(bw_cluster *c);

/* cluster_upgrade.c. init: at bw_cluster_new (a successor finds its
 * channel; the command line is recorded). ready: a successor's workers all
 * listen. begin: SIGUSR2. on_ready: the successor said READY. reap: from
 * SIGCHLD, true if the successor was reaped. tick: its deadline.
 * peer_gone: the channel closed. is_peer / receiver: the relay's view. */
BW__HIDDEN int bw__upgrade_init(bw_cluster *c);
BW__HIDDEN void bw__upgrade_ready(bw_cluster *c);
BW__HIDDEN int bw__upgrade_begin(bw_cluster *c);
BW__HIDDEN void bw__upgrade_on_ready(bw_cluster *c);
/* A shutdown began before the successor was ready: it stops too. */
BW__HIDDEN void bw__upgrade_abandon(bw_cluster *c);
BW__HIDDEN bool bw__upgrade_reap(bw_cluster *c);
BW__HIDDEN void bw__upgrade_tick(bw_cluster *c, uint64_t now);
BW__HIDDEN void bw__upgrade_peer_gone(bw_cluster *c);
BW__HIDDEN bool bw__upgrade_is_peer(const bw_cluster *c, const bw_worker *w);
BW__HIDDEN bw_worker *bw__upgrade_receiver(bw_cluster *c);
BW__HIDDEN void bw__upgrade_close(bw_cluster *c);
BW__HIDDEN void bw__upgrade_free(bw_cluster *c);

/* cluster_recycle.c: the worker's request threshold, drawn at fork (before
 * the fork: the child's copy is the same); the fork event's extra fields
 * (NULL: none); the tick's checks; the hooks of a worker that listens
 * (a replacement: its old worker may drain), of one that is gone, and of
 * a rolling restart that begins (it takes the recycling over). */
BW__HIDDEN void bw__recycle_plan(bw_cluster *c, bw_worker *w);
BW__HIDDEN const char *bw__recycle_fork_extra(const bw_worker *w, char *buf, size_t size);
BW__HIDDEN void bw__recycle_tick(bw_cluster *c, uint64_t now_ms);
BW__HIDDEN void bw__recycle_listening(bw_cluster *c, bw_worker *w);
BW__HIDDEN void bw__recycle_gone(bw_cluster *c, bw_worker *w);
BW__HIDDEN void bw__recycle_rolling_begins(bw_cluster *c);
/* cluster_primary.c: the fork ceiling and start-up backoff, as supervision
 * applies them (takes a token when it says yes). */
BW__HIDDEN bool bw__cluster_fork_allowed(bw_cluster *c);

/* cluster_privileges.c: look up `user` and `group` and apply the root
 * policy (bw_cluster_new; 0 or its documented errors); drop them in a
 * worker (on failure: BW__MSG_FAILED, then exit BW_EXIT_PRIVILEGES); in
 * the primary, record a BW__MSG_FAILED, and what a start-up failure was,
 * for its log ("" or "; ..."); the pid file. */
BW__HIDDEN int bw__privileges_init(bw_cluster *c);
BW__HIDDEN void bw__privileges_drop(const bw_cluster *c, int worker_id, int channel_fd);
BW__HIDDEN void bw__worker_failed(bw_worker *w, const char *why, size_t len);
BW__HIDDEN const char *bw__worker_failure_hint(const bw_worker *w);
BW__HIDDEN void bw__privileges_free(bw_cluster *c);
BW__HIDDEN int bw__pid_file_write(bw_cluster *c);
/* An upgrade's handover: the file names the successor from now on. */
BW__HIDDEN void bw__pid_file_hand_over(bw_cluster *c, pid_t successor);
BW__HIDDEN void bw__pid_file_remove(bw_cluster *c);

/* cluster_notify.c: open NOTIFY_SOCKET (if opts.notify); tell the manager
 * what changed (call after any change of worker state, start, reload,
 * shutdown); hand over to a successor (MAINPID=, READY=1, then silence); start the watchdog pings (true if
 * a timer was opened: bw_cluster_close closes it). */
BW__HIDDEN void bw__cluster_notify_init(bw_cluster *c);
BW__HIDDEN void bw__cluster_notify_update(bw_cluster *c);
BW__HIDDEN void bw__cluster_notify_hand_over(bw_cluster *c, pid_t successor);
/* STOPPING=1 ahead of the shutdown (drain_delay_ms). */
BW__HIDDEN void bw__cluster_notify_stopping(bw_cluster *c);
BW__HIDDEN bool bw__cluster_notify_start(bw_cluster *c);

/*
 * The primary's descriptors at fork time, by number and file. The worker
 * closes these (but the ones it keeps) and only these: a descriptor that a
 * fork handler created in the child must survive. libuv re-creates its
 * process-wide signal lock pipe in one; closing it made uv_signal_start and
 * uv_spawn abort in every worker.
 */
typedef struct bw__fd_id {
    int fd;
    dev_t dev;
    ino_t ino;
} bw__fd_id;

#define BW__MAX_FDS 4096

typedef struct bw__fd_snapshot {
    bool complete; /* false: /proc/self/fd unreadable or too many: close all */
    size_t n;
    bw__fd_id ids[BW__MAX_FDS];
} bw__fd_snapshot;

/* cluster_worker.c: the child's side (`fds` may be NULL). Never returns. */
BW_NORETURN BW__HIDDEN void bw__worker_child_main(bw_cluster *c, bw_worker *w, int fd,
                                                  int ho_fd, const char *const *env,
                                                  const bw__fd_snapshot *fds);

/* Send one message; 0 or -errno (never raises SIGPIPE). */
BW__HIDDEN int bw__msg_send(int fd, int type, const void *payload, size_t len);

/* After recv() returned 0: true if the peer hung up, false if that was an
 * empty packet (malformed: every message has its type byte; C-11). */
BW__HIDDEN bool bw__msg_hung_up(int fd);

/* Read the messages waiting on a channel, calling on_msg for each (the
 * message is NUL-terminated, valid during the call), while *connected
 * stays true. false once the channel is gone (end of stream or error). */
typedef void (*bw__msg_fn)(void *ctx, const char *msg, size_t len);
BW__HIDDEN bool bw__msg_receive(int fd, const bool *connected, bw__msg_fn on_msg, void *ctx);

/* ---- The handoff channel (cluster_handoff.c, cluster_relay.c) ---------- */

#define BW__HO_BATCH 32                  /* connections per message */
#define BW__HO_PAYLOAD_MAX (128 * 1024)  /* their states' bytes per message */
#define BW__HO_PACKET_MAX (BW__HO_PAYLOAD_MAX + 2048)
#define BW__HO_WINDOW 4                  /* a worker's batches unanswered at once */
#define BW__HO_SERVERS 8

enum bw__ho_type {
    BW__HO_OFFER = 'O',   /* worker -> primary: connections to move (descriptors attached) */
    BW__HO_DELIVER = 'D', /* primary -> worker: the same, to adopt */
    BW__HO_RESULT = 'R',  /* worker -> primary: per connection, 0 (adopted) or why not */
    BW__HO_ANSWER = 'A',  /* primary -> the giver: the same, for its batch */
    /* Between two primaries (cluster_upgrade.c), the predecessor is to the
     * successor what a giver's primary is to a receiver: it sends DELIVER,
     * the successor answers ANSWER. And: */
    BW__HO_READY = 'Y',   /* successor -> predecessor: every worker listens */
};

/* A packet: this header, then (OFFER, DELIVER) n entry headers and the n
 * states back to back, or (RESULT, ANSWER) n int32 statuses. */
typedef struct bw__ho_hdr {
    uint8_t type;
    uint8_t pad;
    uint16_t n;
    uint32_t batch; /* the giver's batch id (OFFER, ANSWER), the primary's (DELIVER, RESULT) */
} bw__ho_hdr;

typedef struct bw__ho_entry_hdr {
    uint32_t server; /* the index of the giving server among its worker's */
    uint32_t len;
} bw__ho_entry_hdr;

typedef struct bw__ho_entry {
    uint32_t server;
    int fd; /* -1: none came with it (the receiver's descriptor limit) */
    const char *state;
    size_t len;
} bw__ho_entry;

typedef struct bw__ho_msg {
    uint8_t type;
    size_t n;
    uint32_t batch;
    bool truncated; /* fewer descriptors came than entries */
    bw__ho_entry entries[BW__HO_BATCH];
    int32_t status[BW__HO_BATCH];
} bw__ho_msg;

/* Send one message (with its descriptors); 0 or -errno (-EAGAIN: full). */
BW__HIDDEN int bw__ho_send(int fd, const bw__ho_msg *m);
/* Receive one into buf (states point into it): 1, 0 at the end of the
 * stream, -EAGAIN, BW_EPROTO (malformed: its descriptors are closed), or
 * -errno. */
BW__HIDDEN int bw__ho_recv(int fd, char *buf, size_t size, bw__ho_msg *m);

typedef struct bw__ho_worker bw__ho_worker;
/* timeout_ms: how long this worker offers its connections before it
 * closes the rest gracefully itself. */
BW__HIDDEN bw__ho_worker *bw__ho_worker_new(bw_loop *loop, int fd, uint64_t timeout_ms);
/* Register a server (to adopt into); give: also hand its connections off
 * when it closes. */
BW__HIDDEN int bw__ho_worker_add_server(bw__ho_worker *w, bw_http_server *srv, bool give);
/* The whole cluster stops: connections close here, none move. */
BW__HIDDEN void bw__ho_worker_stop_giving(bw__ho_worker *w);
BW__HIDDEN void bw__ho_worker_server_gone(bw__ho_worker *w, bw_http_server *srv);
/* The worker leaves the primary: the channel and its handles close (what
 * is still unanswered is taken back). */
BW__HIDDEN void bw__ho_worker_close(bw__ho_worker *w);
BW__HIDDEN void bw__ho_worker_stats(const bw__ho_worker *w, uint64_t *moved, uint64_t *refused,
                                    uint64_t *taken);

/* cluster_relay.c: the primary's side. */
BW__HIDDEN int bw__relay_open(bw_cluster *c, bw_worker *w, int fd);
/* The worker's channel closed or it exited: fail what was delivered to it. */
BW__HIDDEN void bw__relay_worker_gone(bw_cluster *c, bw_worker *w);
BW__HIDDEN void bw__relay_free(bw_cluster *c);
/* Whether a worker other than giver can take connections now or later (a
 * sibling, or a replacement supervision forks). */
BW__HIDDEN bool bw__receiver_may_come(const bw_cluster *c, const bw_worker *giver);
/* Whether the primary may deliver connections to w (cluster_primary.c). */
BW__HIDDEN bool bw__worker_can_receive(const bw_worker *w);
/* A line in the event log (cluster_primary.c). */
BW__HIDDEN void bw__cluster_event_line(bw_cluster *c, const char *name, const bw_worker *w,
                                       const char *extra);
/* Free w if it has disconnected, exited, and its handles are closed. */
BW__HIDDEN void bw__cluster_maybe_forget(bw_cluster *c, bw_worker *w);

/* cluster_quarantine.c, the primary's side. report: a worker retired in
 * a request (a RETIRING message's KEY, PEER_IP, GROUP) or hung in one
 * (its last request, "METHOD /target"; peer and group ""): count it
 * towards quarantines and the client's fault budget, and tell the workers
 * what that decided. tick: expire quarantines and blocks. */
BW__HIDDEN void bw__quarantine_report(bw_cluster *c, bw_worker *w, const char *key,
                                      const char *peer_ip, const char *group);
BW__HIDDEN void bw__quarantine_tick(bw_cluster *c, uint64_t now);
/* Emit an event from the quarantine code (cluster_primary.c's emit). */
BW__HIDDEN void bw__cluster_emit(bw_cluster *c, const bw_cluster_event *ev, const char *extra);

/* cluster_quarantine.c, the worker's side. init: copy what the primary
 * (whose memory fork copied) has in force. add: a QUARANTINE message or a
 * block. lift: a LIFT message. find: the guard of `kind` whose key is
 * `key` (length n) and in force, or NULL (expired ones are dropped). */
BW__HIDDEN void bw__guards_init(bw__guards *g, const bw_cluster *c);
BW__HIDDEN void bw__guards_add(bw__guards *g, char kind, uint64_t ttl_ms, const char *key);
BW__HIDDEN void bw__guards_lift(bw__guards *g, const char *payload);
BW__HIDDEN bw__qentry *bw__guards_find(bw__guards *g, char kind, const char *key, size_t n);
/* Drop what expired. */
BW__HIDDEN void bw__guards_prune(bw__guards *g);

/* The IP of bw_http_request_peer's "ip:port" ("::1" of "::1:5000"), into
 * out; its length (0: unknown). */
BW__HIDDEN size_t bw__peer_ip(const char *peer, char *out, size_t size);

/* Monotonic nanoseconds, comparable across processes (event log). */
BW__HIDDEN uint64_t bw__mono_ns(void);

#endif /* BULWARK_CLUSTER_INTERNAL_H */
