/*
 * cluster_worker.c: the worker process: what happens right after fork, the
 * channel to the primary, draining and disconnecting, and the seed's
 * crash-safe policy for HTTP servers.
 *
 * Right after fork the child forgets everything of the primary's that it
 * must not touch: signal handlers (libuv's, which write into the primary's
 * loop), the thread's guard chain and domain stack (they point into the
 * primary's frames), and every descriptor except the listening sockets and
 * its own channel. It then runs the user's main on a fresh loop and exits
 * with main's status without ever returning into the primary's code.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster_internal.h"

#define BW__MAX_SERVED 8

typedef struct served {
    bw_worker_ctx *ctx;
    bw_http_server *srv;
    bw_http_handler handler; /* the user's */
    void *data;
    bw_http_request_error_cb error_hook; /* the user's own, or NULL (the server's default) */
    void *error_data;
    bool open;
} served;

struct bw_worker_ctx {
    int id;
    bw_cluster *c; /* the primary's, as copied by fork: options only */
    bw_loop *loop;
    int fd;
    uv_poll_t poll;
    bool connected;
    uv_timer_t heartbeat;
    bool heartbeat_on;
    int listen_fds[BW__MAX_LISTENERS];
    size_t nlisten;
    served servers[BW__MAX_SERVED];
    size_t nservers;
    size_t nopen;
    bool draining;
    bool primary_asked; /* the primary sent DISCONNECT or SHUTDOWN */
    bool cluster_stopping; /* SHUTDOWN: serve what is queued on the listeners too */
    bool reading_before_drain; /* begin_drain reads the channel: no second read inside it */
    bw_domain *callbacks_domain; /* guards the user's message and disconnect callbacks */
    bool retiring;
    bool waiting_ack;
    bw_crash_policy policy;
    bw__guards guards; /* quarantines and blocked clients (cluster_quarantine.c) */
    bw__worker_shm *shm;
    bool counting; /* the counters of /metrics (cluster_metrics.c) */
    bw_worker_ctx_message_cb message_cb;
    void *message_data;
    bw_worker_ctx_disconnect_cb disconnect_cb;
    void *disconnect_data;
    bool kill_timer_armed;
    bw__ho_worker *handoff; /* connection handoff (cluster_handoff.c), or NULL */
};

static bool is_worker;

bool bw_cluster_is_worker(void)
{
    return is_worker;
}

/* ---- After fork -------------------------------------------------------- */

static pid_t primary_pid;

/* SIGTERM and SIGINT reach workers when they are sent to the whole process
 * group (Ctrl-C in a terminal, systemd's KillMode=control-group): the
 * primary gets them too and drains every worker gracefully, so a worker
 * ignores them: dying of them at once would lose its in-flight requests.
 * Only the primary's own kill (bw_worker_kill) keeps its default action. */
static void on_stop_signal(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    if (info->si_code != SI_USER || info->si_pid != primary_pid)
        return;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* blocked until this handler returns, then the default action */
}

/* The primary forks with every signal blocked (cluster_primary.c), so
 * nothing is acted on with the primary's handlers until these are set. */
static void reset_signals(pid_t primary)
{
    static const int defaults[] = {SIGCHLD, SIGALRM};
    /* The primary's controls (a rolling restart, log reopening, an
     * upgrade): sent to the
     * whole process group (a terminal's hangup, kill -HUP -PGID), they must
     * not kill the workers on the way, whose default action for both is to
     * die. The primary acts for them. User code may still install handlers
     * of its own. */
    static const int controls[] = {SIGHUP, SIGUSR1, SIGUSR2};
    static const int stops[] = {SIGTERM, SIGINT};
    primary_pid = primary;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        sigaction(defaults[i], &sa, NULL);
    sa.sa_handler = SIG_IGN; /* a write to a closed socket is an error, not a death */
    sigaction(SIGPIPE, &sa, NULL);
    for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++)
        sigaction(controls[i], &sa, NULL);
    sa.sa_handler = NULL;
    sa.sa_sigaction = on_stop_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        sigaction(stops[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static bool is_kept(int fd, const int *keep, size_t nkeep)
{
    for (size_t i = 0; i < nkeep; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

/* Close every descriptor of the primary's but stdio, the listening sockets
 * and the channel: the primary's loop, its other workers' channels, its
 * event log. Without a snapshot, close everything else. */
static void close_inherited(const int *keep, size_t nkeep, const bw__fd_snapshot *fds)
{
    if (fds != NULL && fds->complete) {
        for (size_t i = 0; i < fds->n; i++) {
            const bw__fd_id *id = &fds->ids[i];
            struct stat st;
            /* Another file under that number was created here, after fork. */
            if (is_kept(id->fd, keep, nkeep) || fstat(id->fd, &st) != 0 || st.st_dev != id->dev ||
                st.st_ino != id->ino)
                continue;
            close(id->fd);
        }
        return;
    }
    int sorted[BW__MAX_LISTENERS + 2];
    memcpy(sorted, keep, nkeep * sizeof *keep);
    qsort(sorted, nkeep, sizeof *sorted, cmp_int);
    unsigned lo = 3;
    for (size_t i = 0; i < nkeep; i++) {
        if ((unsigned)sorted[i] < lo)
            continue;
        if ((unsigned)sorted[i] > lo)
            close_range(lo, (unsigned)sorted[i] - 1, 0);
        lo = (unsigned)sorted[i] + 1;
    }
    close_range(lo, ~0U, 0);
}

static void stop_signal_watcher(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (h->type == UV_SIGNAL && uv_is_active(h) && !uv_is_closing(h))
        uv_signal_stop((uv_signal_t *)h);
}

static void on_channel(uv_poll_t *p, int status, int events);
static void on_heartbeat(uv_timer_t *t);
static void on_callback_error(bw_domain *d, bw_error *err, void *arg);
static void on_teardown_error(bw_error *err, void *arg);

void bw__worker_child_main(bw_cluster *c, bw_worker *w, int fd, int ho_fd,
                           const char *const *env, const bw__fd_snapshot *fds)
{
    /* libuv keeps the signal watchers of every loop in one process-wide
     * table: the primary's are still in this copy of it, and would swallow
     * the worker's own (a uv_spawn's SIGCHLD). Take them out; the primary's
     * loop itself is never run here. Stopping the last watcher of a signal
     * resets it to its default action: the worker's own dispositions are
     * set after that, and the signals blocked for the fork stay blocked
     * until then. */
    uv_walk(c->loop->uv, stop_signal_watcher, NULL);
    reset_signals(c->primary_pid);
    /* Die with the primary (C-20), even if this process is busy (SIGTERM
     * from anyone but the primary is ignored: see on_stop_signal). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != c->primary_pid)
        _exit(0);
    bw__thread_after_fork();
    bw__log_set_worker(w->id); /* on every JSON line of this process */
    /* Only the primary speaks for the service (cluster_notify.c): nothing a
     * worker runs may tell systemd it is ready, stopping or alive. */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    for (const char *const *e = env; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL)
            continue;
        char name[256];
        size_t n = (size_t)(eq - *e) < sizeof name - 1 ? (size_t)(eq - *e) : sizeof name - 1;
        memcpy(name, *e, n);
        name[n] = '\0';
        setenv(name, eq + 1, 1);
    }
    int keep[BW__MAX_LISTENERS + 2];
    memcpy(keep, c->listen_fds, c->nlisten * sizeof *keep);
    size_t nkeep = c->nlisten;
    keep[nkeep++] = fd;
    if (ho_fd >= 0)
        keep[nkeep++] = ho_fd;
    close_inherited(keep, nkeep, fds);
    /* Before any user code: the worker runs as `user`/`group` from here. */
    bw__privileges_drop(c, w->id, fd);
    is_worker = true;

    static bw_worker_ctx ctx; /* one per process */
    memset(&ctx, 0, sizeof ctx);
    ctx.id = w->id;
    ctx.c = c;
    ctx.fd = fd;
    ctx.shm = w->shm;
    ctx.counting = c->opts.metrics && c->opts.admin_port != 0;
    ctx.nlisten = c->nlisten;
    memcpy(ctx.listen_fds, c->listen_fds, c->nlisten * sizeof *ctx.listen_fds);
    ctx.policy.kill_timeout_ms = c->opts.kill_timeout_ms;
    ctx.policy.body = "Oops, there was a problem!\n";
    ctx.policy.content_type = "text/plain";
    /* What the primary quarantined or blocked before this worker was born. */
    bw__guards_init(&ctx.guards, c);
    int rc = bw_loop_new(&ctx.loop);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "worker %d: no event loop: %s", ctx.id, bw_strerror(rc));
        _exit(70);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (ho_fd >= 0 && (ctx.handoff = bw__ho_worker_new(ctx.loop, ho_fd, c->opts.handoff_timeout_ms)) == NULL)
        close(ho_fd); /* out of memory: this worker neither gives nor takes */
    uv_poll_init(ctx.loop->uv, &ctx.poll, fd);
    ctx.poll.data = &ctx;
    ctx.connected = true;
    uv_poll_start(&ctx.poll, UV_READABLE | UV_DISCONNECT, on_channel);
    bw_domain_on_teardown_error(on_teardown_error, &ctx);
    if (bw_domain_new(&ctx.callbacks_domain) != 0 ||
        bw_domain_on_error(ctx.callbacks_domain, on_callback_error, &ctx) != 0) {
        bw_log(BW_LOG_FATAL, "worker %d: out of memory at start-up", ctx.id);
        _exit(70);
    }
    uv_timer_init(ctx.loop->uv, &ctx.heartbeat);
    ctx.heartbeat.data = &ctx;
    uint64_t every = c->opts.heartbeat_interval_ms;
    uv_timer_start(&ctx.heartbeat, on_heartbeat, every, every);
    uv_unref((uv_handle_t *)&ctx.heartbeat); /* the channel keeps us alive, not this */
    ctx.heartbeat_on = true;
    bw__msg_send(fd, BW__MSG_ONLINE, NULL, 0);

    int status = c->main(&ctx, c->main_data);
    fflush(NULL);
    _exit(status & 0xff);
}

/* ---- The channel ------------------------------------------------------- */

static void begin_drain(bw_worker_ctx *ctx);
static void retire(bw_worker_ctx *ctx, bw_http_request *req, const char *what);

static void call_disconnect_cb(void *arg)
{
    bw_worker_ctx *ctx = arg;
    ctx->disconnect_cb(ctx, ctx->disconnect_data);
}

typedef struct message_call {
    bw_worker_ctx *ctx;
    const char *msg;
    size_t len;
} message_call;

static void call_message_cb(void *arg)
{
    message_call *m = arg;
    m->ctx->message_cb(m->ctx, m->msg, m->len, m->ctx->message_data);
}

/* A cleanup or close function that faulted in a teardown (a request's
 * domain disposed after its response) left the process in doubt: retire
 * gracefully, as after a fault in a request. A throw there is only logged. */
static void on_teardown_error(bw_error *err, void *arg)
{
    static const char key[] = "teardown";
    if (bw_error_origin_of(err) == BW_ORIGIN_FAULT || bw_error_origin_of(err) == BW_ORIGIN_TIMEOUT)
        retire(arg, NULL, key);
}

/* An error in the user's message or disconnect callback costs only that
 * callback: it is logged, and the worker, now in doubt, retires
 * gracefully (its requests are served, a replacement is forked). */
static void on_callback_error(bw_domain *d, bw_error *err, void *arg)
{
    (void)d;
    bw_worker_ctx *ctx = arg;
    bw__log_error(BW_LOG_ERROR, err, NULL, "worker %d (pid %ld): error in a worker callback",
                  ctx->id, (long)getpid());
    static const char key[] = "worker callback";
    retire(ctx, NULL, key);
}

static void on_heartbeat(uv_timer_t *t)
{
    bw_worker_ctx *ctx = t->data;
    bw__msg_send(ctx->fd, BW__MSG_HEARTBEAT, NULL, 0);
    if (ctx->counting) { /* the gauges of /metrics, as of now */
        uint64_t conns = 0, requests = 0;
        for (size_t i = 0; i < ctx->nservers; i++) {
            if (ctx->servers[i].open) {
                conns += bw_http_server_connection_count(ctx->servers[i].srv);
                requests += bw_http_server_request_count(ctx->servers[i].srv);
            }
        }
        __atomic_store_n(&ctx->shm->connections, conns, __ATOMIC_RELAXED);
        __atomic_store_n(&ctx->shm->in_flight, requests, __ATOMIC_RELAXED);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_channel(bw_worker_ctx *ctx)
{
    if (!ctx->connected)
        return;
    ctx->connected = false;
    if (ctx->handoff != NULL)
        bw__ho_worker_close(ctx->handoff);
    uv_poll_stop(&ctx->poll);
    uv_close((uv_handle_t *)&ctx->poll, on_poll_closed);
    if (ctx->heartbeat_on) {
        ctx->heartbeat_on = false;
        uv_close((uv_handle_t *)&ctx->heartbeat, NULL);
    }
    /* The callback runs disconnected (is_connected false, sends fail) but
     * before the descriptor closes: what it does (a log line, a flush) is
     * done before the primary hears the end of the channel, so the
     * primary's disconnect event always comes after it (C-41). */
    if (ctx->disconnect_cb != NULL)
        bw_invoke(ctx->callbacks_domain, call_disconnect_cb, ctx);
    close(ctx->fd);
    ctx->fd = -1;
}

static void set_route_gates(bw_worker_ctx *ctx);

/* "ttl_ms KIND KEY" (cluster_internal.h). */
static void add_quarantine(bw_worker_ctx *ctx, const char *payload)
{
    unsigned long long ttl;
    int skip = 0;
    if (sscanf(payload, "%llu %n", &ttl, &skip) != 1 || skip == 0 || payload[skip] == '\0' ||
        payload[skip + 1] != ' ')
        return; /* malformed: ignored (C-11) */
    bw__guards_add(&ctx->guards, payload[skip], ttl, payload + skip + 2);
    set_route_gates(ctx);
}

static void on_message(bw_worker_ctx *ctx, const char *msg, size_t len)
{
    switch (msg[0]) {
    case BW__MSG_SHUTDOWN:
        ctx->cluster_stopping = true;
        if (ctx->draining && ctx->handoff != NULL) {
            /* Retiring already, and now the whole cluster stops: what has
             * not moved yet closes here (no sibling will serve it). */
            bw__ho_worker_stop_giving(ctx->handoff);
            for (size_t i = 0; i < ctx->nservers; i++)
                if (ctx->servers[i].open)
                    bw_http_server_handoff_more(ctx->servers[i].srv);
        }
        /* fall through */
    case BW__MSG_DISCONNECT:
        ctx->primary_asked = true;
        if (len > 1 && strcmp(msg + 1, "stay") == 0 && ctx->handoff != NULL)
            bw__ho_worker_stop_giving(ctx->handoff); /* nobody could take them */
        begin_drain(ctx);
        return;
    case BW__MSG_ACK:
        if (ctx->waiting_ack)
            close_channel(ctx);
        return;
    case BW__MSG_QUARANTINE:
        add_quarantine(ctx, msg + 1);
        return;
    case BW__MSG_LIFT:
        bw__guards_lift(&ctx->guards, msg + 1);
        set_route_gates(ctx);
        return;
    case BW__MSG_USER:
        if (ctx->message_cb != NULL) {
            message_call m = {ctx, msg + 1, len - 1};
            bw_invoke(ctx->callbacks_domain, call_message_cb, &m);
        }
        return;
    default:
        return; /* unknown or malformed: ignored (C-11) */
    }
}

static void on_message_cb(void *ctx, const char *msg, size_t len)
{
    on_message(ctx, msg, len);
}

static void channel_lost(bw_worker_ctx *ctx)
{
    if (ctx->waiting_ack || ctx->primary_asked) {
        close_channel(ctx); /* the disconnect protocol was under way */
        return;
    }
    /* Lost without the disconnect protocol: the primary is gone or cut us
     * off. Exit at once (C-27). */
    fflush(NULL);
    _exit(0);
}

static void on_channel(uv_poll_t *p, int status, int events)
{
    bw_worker_ctx *ctx = p->data;
    if (status < 0) {
        channel_lost(ctx);
        return;
    }
    (void)events;
    if (!bw__msg_receive(ctx->fd, &ctx->connected, on_message_cb, ctx))
        channel_lost(ctx);
}

/* ---- Draining and disconnecting ---------------------------------------- */

/* Servers are closed and their connections gone: leave the primary. */
static void finish_disconnect(bw_worker_ctx *ctx)
{
    if (!ctx->connected)
        return;
    if (ctx->primary_asked) {
        close_channel(ctx); /* the primary knows already */
        return;
    }
    /* Worker-initiated: the primary acknowledges first (C-25). */
    ctx->waiting_ack = true;
    if (bw__msg_send(ctx->fd, BW__MSG_DISCONNECTING, NULL, 0) != 0)
        close_channel(ctx);
}

static void on_server_closed(bw_http_server *srv, int status, void *data)
{
    (void)status;
    served *s = data;
    bw_worker_ctx *ctx = s->ctx;
    if (ctx->handoff != NULL)
        bw__ho_worker_server_gone(ctx->handoff, srv);
    if (s->open) {
        s->open = false;
        ctx->nopen--;
    }
    if (ctx->nopen == 0)
        finish_disconnect(ctx);
}

static void begin_drain(bw_worker_ctx *ctx)
{
    if (ctx->draining)
        return;
    /* Retiring alone leaves the listeners' queue to the siblings (below).
     * But the primary may have stopped the whole cluster meanwhile: its
     * message waits in the channel while a fault or a long callback held
     * this loop, and the siblings have served their queues and closed
     * theirs. This worker is then the last to hold the listeners, and
     * closing them on a queue nobody accepts makes the kernel reset every
     * client in it. Read what is waiting first; a stop begins the drain. */
    if (!ctx->cluster_stopping && ctx->connected && !ctx->reading_before_drain) {
        ctx->reading_before_drain = true;
        (void)bw__msg_receive(ctx->fd, &ctx->connected, on_message_cb, ctx); /* EOF: on_channel's */
        ctx->reading_before_drain = false;
        if (ctx->draining)
            return;
    }
    ctx->draining = true;
    /* The whole cluster stops: no sibling will serve, so nothing moves. */
    if (ctx->cluster_stopping && ctx->handoff != NULL)
        bw__ho_worker_stop_giving(ctx->handoff);
    for (size_t i = 0; i < ctx->nservers; i++) {
        served *s = &ctx->servers[i];
        if (!s->open)
            continue;
        /* Retiring alone, the connections queued on the shared listeners
         * are the siblings' to accept; when the whole cluster stops, this
         * worker serves its share of them (bw_http_server_close accepts
         * what is queued before it closes the listeners), so no client is
         * accepted by the kernel and then reset. */
        if (!ctx->cluster_stopping)
            bw_http_server_stop_accepting(s->srv);
        /* A close already in progress is fine (the seed's comment thread). */
        int rc = bw_http_server_close(s->srv, on_server_closed, s);
        if (rc == BW_ENOTRUNNING) {
            s->open = false;
            ctx->nopen--;
        }
    }
    /* The inherited copies of the listening sockets go too: a copy left
     * open keeps the socket listening, so the kernel would accept clients
     * that nobody serves and reset them when this process exits. */
    for (size_t i = 0; i < ctx->nlisten; i++)
        close(ctx->listen_fds[i]);
    ctx->nlisten = 0;
    if (ctx->nopen == 0)
        finish_disconnect(ctx);
}

int bw_worker_ctx_disconnect(bw_worker_ctx *ctx)
{
    begin_drain(ctx);
    return 0;
}

/* ---- The kill timer ---------------------------------------------------- */

static void on_kill_timer(int sig)
{
    (void)sig;
    static const char msg[] = "bulwark: worker kill timer expired while draining; exiting 1\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

/* A kernel timer whose handler only calls _exit: it fires even if the loop
 * is stuck or malloc is wedged by the fault. */
static void arm_kill_timer(bw_worker_ctx *ctx)
{
    if (ctx->kill_timer_armed || ctx->policy.kill_timeout_ms == 0)
        return;
    ctx->kill_timer_armed = true;
    bw__signal_set(SIGALRM, on_kill_timer);
    timer_t t;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGALRM;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
        alarm((unsigned)((ctx->policy.kill_timeout_ms + 999) / 1000)); /* coarser, same effect */
        return;
    }
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(ctx->policy.kill_timeout_ms / 1000);
    its.it_value.tv_nsec = (long)(ctx->policy.kill_timeout_ms % 1000) * 1000000L;
    timer_settime(t, 0, &its, NULL);
}

/* ---- Serving HTTP with the crash-safe policy --------------------------- */

/* "METHOD /path" (or "METHOD /target", with_query) of a request. */
static size_t request_key(bw_http_request *req, char *out, size_t size, bool with_query)
{
    const char *method = bw_http_request_method(req);
    const char *path = with_query ? bw_http_request_target(req) : bw_http_request_path(req);
    return (size_t)snprintf(out, size, "%s %s", method, path) < size ? strlen(out) : size - 1;
}

typedef struct key_call {
    bw_worker_ctx *ctx;
    bw_http_request *req;
    char *out;
    size_t size;
} key_call;

static void call_key_cb(void *arg)
{
    key_call *k = arg;
    k->ctx->policy.quarantine_key(k->req, k->out, k->size, k->ctx->policy.quarantine_key_data);
}

/* The request's exact quarantine key: the policy's hook (under a guard),
 * else "METHOD /target". */
static size_t exact_key(bw_worker_ctx *ctx, bw_http_request *req, char *out, size_t size)
{
    if (ctx->policy.quarantine_key != NULL) {
        out[0] = '\0';
        key_call k = {ctx, req, out, size};
        bw_error *err = bw_try(call_key_cb, &k);
        if (err != NULL) {
            bw__log_request r = bw__log_request_of(req);
            bw__log_error(BW_LOG_ERROR, err, &r,
                          "worker %d (pid %ld): the quarantine key hook failed", ctx->id,
                          (long)getpid());
            bw_error_release(err);
            out[0] = '\0';
        }
        out[size - 1] = '\0';
        for (char *p = out; *p; p++)
            if (*p == '\n')
                *p = ' '; /* the RETIRING message's separator */
        if (out[0] != '\0')
            return strlen(out);
    }
    return request_key(req, out, size, true);
}

/* Seconds left until `until` (at least 1). */
static uint64_t left_s(uint64_t until)
{
    uint64_t now = bw__mono_ns();
    uint64_t left = until > now ? (until - now + 999999999u) / 1000000000u : 1;
    return left > 0 ? left : 1;
}

typedef struct quarantine_call {
    bw_worker_ctx *ctx;
    bw_http_request *req;
    bw_http_response *res;
    uint64_t left;
} quarantine_call;

static void call_quarantine_cb(void *arg)
{
    quarantine_call *q = arg;
    q->ctx->policy.on_quarantined(q->req, q->res, q->left, q->ctx->policy.quarantine_data);
}

/* The 503 of a quarantined request: the user's hook, or (if it has none,
 * or leaves the response open) plain text with the real time left. */
static void answer_quarantined(bw_worker_ctx *ctx, bw_http_request *req, bw_http_response *res,
                               uint64_t left)
{
    bw_http_request_set_outcome(req, BW_HTTP_QUARANTINED);
    if (ctx->policy.on_quarantined != NULL) {
        quarantine_call q = {ctx, req, res, left};
        bw_error *err = bw_try(call_quarantine_cb, &q);
        if (err != NULL) {
            bw__log_request r = bw__log_request_of(req);
            bw__log_error(BW_LOG_ERROR, err, &r, "worker %d (pid %ld): the quarantine hook failed",
                          ctx->id, (long)getpid());
            bw_error_release(err);
        }
        if (bw_http_response_finished(res))
            return;
        if (bw_http_response_headers_sent(res)) {
            bw_http_response_reset(res);
            return;
        }
    }
    static const char body[] = "Service Unavailable: this request is quarantined after "
                               "crashing workers\n";
    char retry[24];
    snprintf(retry, sizeof retry, "%llu", (unsigned long long)left);
    bw_http_response_set_header(res, "Retry-After", retry);
    bw_http_response_send(res, 503, "text/plain", body, sizeof body - 1);
}

/* The 429 of a blocked client (the fault budget). Its first refusal in
 * this worker is logged (the primary logged the block itself). */
typedef struct blocked_answer {
    bw_http_response *res;
    uint64_t until_mono_ns;
} blocked_answer;

static void send_blocked(bw_http_response *res, uint64_t until_mono_ns)
{
    static const char body[] = "Too Many Requests: this client's requests crashed workers\n";
    char retry[24];
    snprintf(retry, sizeof retry, "%llu", (unsigned long long)left_s(until_mono_ns));
    bw_http_response_set_header(res, "Retry-After", retry);
    bw_http_response_send(res, 429, "text/plain", body, sizeof body - 1);
}

static void send_blocked_later(bw_timer *t, void *data)
{
    (void)t;
    blocked_answer *b = data;
    send_blocked(b->res, b->until_mono_ns);
}

/* The 429 of a blocked client (the fault budget), client_block_delay_ms
 * late: a timer of the request's domain (gone with the request if the
 * client leaves first). Its first refusal in this worker is logged (the
 * primary logged the block itself). */
static void answer_blocked(bw_worker_ctx *ctx, bw_http_request *req, bw_http_response *res,
                           bw__qentry *g)
{
    bw_http_request_set_outcome(req, BW_HTTP_QUARANTINED);
    if (!g->logged) {
        g->logged = true;
        bw_log(BW_LOG_WARN,
               "worker %d (pid %ld): client %s is blocked (its requests crashed workers): "
               "answering it 429 for %llu s",
               ctx->id, (long)getpid(), g->key, (unsigned long long)left_s(g->until_mono_ns));
    }
    uint64_t delay = ctx->c->opts.client_block_delay_ms;
    uint64_t rt = bw_http_request_server(req)->opts.response_timeout_ms;
    if (rt > 0 && delay > rt / 2)
        delay = rt / 2; /* never the server's own timeout (a fault) */
    blocked_answer *b = delay > 0 ? bw_http_request_alloc(req, sizeof *b) : NULL;
    if (b != NULL) {
        b->res = res;
        b->until_mono_ns = g->until_mono_ns;
        if (bw_timeout(bw_http_request_loop(req), delay, send_blocked_later, b, NULL) == 0)
            return;
    }
    send_blocked(res, g->until_mono_ns);
}

/* Something is quarantined or blocked: is req? If so it is answered
 * (429 for a blocked client, 503 for a quarantined request or path). */
static bool guarded(bw_worker_ctx *ctx, bw_http_request *req, bw_http_response *res)
{
    bw__guards *g = &ctx->guards;
    bw__guards_prune(g);
    if (g->nroute == 0)
        set_route_gates(ctx); /* the last route expired: the router's check goes */
    if (g->nclient > 0) {
        char ip[48];
        size_t n = bw__peer_ip(bw_http_request_peer(req), ip, sizeof ip);
        bw__qentry *b = n > 0 ? bw__guards_find(g, BW__Q_CLIENT, ip, n) : NULL;
        if (b != NULL) {
            answer_blocked(ctx, req, res, b);
            return true;
        }
    }
    if (g->active - g->nclient - g->nroute > 0) {
        char key[BW__REQUEST_TEXT];
        size_t n = exact_key(ctx, req, key, sizeof key);
        bw__qentry *q = bw__guards_find(g, BW__Q_EXACT, key, n);
        if (q == NULL) {
            n = request_key(req, key, sizeof key, false);
            q = bw__guards_find(g, BW__Q_PATH, key, n);
        }
        if (q != NULL) {
            answer_quarantined(ctx, req, res, left_s(q->until_mono_ns));
            return true;
        }
    }
    return false;
}

/* The router's gate, set while a route is quarantined: once the pattern
 * matched, before the route's handler. */
static bool route_gate(bw_http_request *req, bw_http_response *res, void *data)
{
    bw_worker_ctx *ctx = data;
    const char *route = bw_http_request_route(req);
    if (ctx->guards.nroute == 0 || route == NULL)
        return false;
    char key[BW__REQUEST_TEXT];
    int n = snprintf(key, sizeof key, "%s %s", bw_http_request_method(req), route);
    if (n < 0 || (size_t)n >= sizeof key)
        return false;
    bw__qentry *q = bw__guards_find(&ctx->guards, BW__Q_ROUTE, key, (size_t)n);
    if (q == NULL)
        return false;
    answer_quarantined(ctx, req, res, left_s(q->until_mono_ns));
    return true;
}

static void set_route_gates(bw_worker_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nservers; i++) {
        bw_http_server *srv = ctx->servers[i].srv;
        srv->route_gate = ctx->guards.nroute > 0 ? route_gate : NULL;
        srv->route_gate_data = ctx;
    }
}

static void worker_handler(bw_http_request *req, bw_http_response *res, void *data)
{
    served *s = data;
    bw_worker_ctx *ctx = s->ctx;
    /* What this worker is doing, for the primary if it stops answering. */
    request_key(req, ctx->shm->last_request, sizeof ctx->shm->last_request, true);
    ctx->shm->dispatched++;
    /* The fast path: nothing quarantined, nobody blocked, one test. */
    if (ctx->guards.active > 0 && guarded(ctx, req, res))
        return;
    s->handler(req, res, s->data);
}

/* Retire after an error: the failsafe first (a kernel timer, armed before
 * anything that may take a lock the fault left held: the report's
 * formatting, malloc, the user's log hook), then the primary is told at
 * once (it forks a replacement; the message carries the effective kill
 * deadline, so the primary's own deadline is never the shorter one), then
 * the worker stops taking requests and lets the others finish. */
static void retire(bw_worker_ctx *ctx, bw_http_request *req, const char *what)
{
    if (ctx->retiring)
        return;
    ctx->retiring = true;
    arm_kill_timer(ctx);
    /* "kill_ms KEY\nPEER_IP\nGROUP" (cluster_internal.h): what the
     * primary's quarantine and the client's fault budget count. Outside a
     * request (what: "teardown"), the key says what it was, and there is
     * neither client nor group ("-"). */
    char key[BW__REQUEST_TEXT], ip[48] = "", group[BW__REQUEST_TEXT] = "-";
    if (req != NULL) {
        exact_key(ctx, req, key, sizeof key);
        bw__peer_ip(bw_http_request_peer(req), ip, sizeof ip);
    } else {
        snprintf(key, sizeof key, "%s", what);
    }
    const char *route = req != NULL ? bw_http_request_route(req) : NULL;
    if (route != NULL)
        snprintf(group, sizeof group, "r %s %s", bw_http_request_method(req), route);
    else if (req != NULL)
        snprintf(group, sizeof group, "p %s %s", bw_http_request_method(req),
                 bw_http_request_path(req));
    char msg[BW__REQUEST_TEXT * 2 + 96];
    int n = snprintf(msg, sizeof msg, "%llu %s\n%s\n%s",
                     (unsigned long long)ctx->policy.kill_timeout_ms, key, ip, group);
    if (n > 0 && ctx->connected)
        bw__msg_send(ctx->fd, BW__MSG_RETIRING, msg,
                     (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    begin_drain(ctx);
}

typedef struct user_hook_call {
    served *s;
    bw_http_request *req;
    bw_http_response *res;
    bw_error *err;
} user_hook_call;

static void call_user_hook(void *arg)
{
    user_hook_call *h = arg;
    h->s->error_hook(h->req, h->res, h->err, h->s->error_data);
}

/* The seed's "Much better!" domain error handler, for every request. */
/* bulwark_faults_total: counted in the shared page (cluster_metrics.c). */
static void count_error(bw_worker_ctx *ctx, const bw_error *err)
{
    if (!ctx->counting)
        return;
    unsigned origin = (unsigned)bw_error_origin_of(err);
    int sig = bw_error_signal(err);
    size_t s = sig == 0         ? 0
               : sig == SIGSEGV ? 1
               : sig == SIGBUS  ? 2
               : sig == SIGFPE  ? 3
               : sig == SIGILL  ? 4
               : sig == SIGABRT ? 5
                                : 6;
    uint64_t *n = &ctx->shm->counts.errors[origin < BW__ORIGINS ? origin : 0][s];
    __atomic_store_n(n, *n + 1, __ATOMIC_RELAXED);
}

static void crash_policy(bw_http_request *req, bw_http_response *res, bw_error *err, void *data)
{
    served *s = data;
    bw_worker_ctx *ctx = s->ctx;
    bw_error_origin origin = bw_error_origin_of(err);
    count_error(ctx, err);
    bool damaged = origin == BW_ORIGIN_FAULT || origin == BW_ORIGIN_TIMEOUT;
    if (damaged || !ctx->policy.keep_on_errors)
        retire(ctx, req, NULL);
    if (bw_log_get_level() <= BW_LOG_ERROR) {
        /* The id is made now if nobody asked for it yet, and the peer kept
         * (for the access log's line, written once the connection is gone),
         * in the request's own memory, which the 500 below writes into
         * anyway. */
        const char *id = bw_http_request_id(req);
        (void)bw_http_request_peer(req);
        bw__log_request r = bw__log_request_of(req);
        bw__log_error(BW_LOG_ERROR, err, &r, "worker %d (pid %ld): %s in request %s %s (id %s)",
                      ctx->id, (long)getpid(), ctx->retiring ? "crash" : "error (the worker goes on)",
                      r.method, r.target, id);
    }
    if (bw_http_response_finished(res))
        return;
    if (s->error_hook != NULL) {
        /* The user's own hook writes the error response. It is user code
         * like any other: a throw or a fault in it costs its own answer
         * (the policy's 500 follows), never the worker's other requests. */
        user_hook_call h = {s, req, res, err};
        bw_error *hook_err = bw_try(call_user_hook, &h);
        if (hook_err != NULL) {
            bw__log_request r = bw__log_request_of(req);
            bw__log_error(BW_LOG_ERROR, hook_err, &r,
                          "worker %d (pid %ld): the request-error hook failed", ctx->id,
                          (long)getpid());
            bw_error_release(hook_err);
        }
        if (bw_http_response_finished(res))
            return;
    }
    /* Try to send an error to the request that triggered the problem. */
    if (bw_http_response_headers_sent(res)) {
        bw_http_response_reset(res); /* a truncated body must not look like a success */
        return;
    }
    /* No Connection: close of its own: the server is closing, and the last
     * response its connection carries says close (requests pipelined
     * behind this one are answered first). */
    bw_http_response_send(res, 500, ctx->policy.content_type, ctx->policy.body,
                          strlen(ctx->policy.body));
}

static void announce_listening(bw_worker_ctx *ctx, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    char addr[INET6_ADDRSTRLEN] = "?";
    int port, family;
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        family = 6;
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        family = 4;
    }
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s %d %d", addr, family, port);
    bw__msg_send(ctx->fd, BW__MSG_LISTENING, msg, (size_t)n);
}

int bw_worker_ctx_serve_http(bw_worker_ctx *ctx, bw_http_server *srv, const bw_crash_policy *policy)
{
    if (ctx->nservers == BW__MAX_SERVED)
        return BW_ELIMIT;
    if (ctx->draining)
        return BW_ECLOSING;
    if (bw_http_server_is_listening(srv))
        return BW_EBUSY;
    if (policy != NULL) {
        if (policy->kill_timeout_ms != 0)
            ctx->policy.kill_timeout_ms = policy->kill_timeout_ms;
        if (policy->body != NULL)
            ctx->policy.body = policy->body;
        if (policy->content_type != NULL)
            ctx->policy.content_type = policy->content_type;
        ctx->policy.keep_on_errors = policy->keep_on_errors;
        if (policy->on_quarantined != NULL) {
            ctx->policy.on_quarantined = policy->on_quarantined;
            ctx->policy.quarantine_data = policy->quarantine_data;
        }
        if (policy->quarantine_key != NULL) {
            ctx->policy.quarantine_key = policy->quarantine_key;
            ctx->policy.quarantine_key_data = policy->quarantine_key_data;
        }
    }
    served *s = &ctx->servers[ctx->nservers];
    s->ctx = ctx;
    s->srv = srv;
    /* Compose with the user's handler and error hook through the server's
     * public API: the policy wraps them, it does not replace them. */
    bw_http_server_get_handler(srv, &s->handler, &s->data);
    bw_http_server_get_request_error_hook(srv, &s->error_hook, &s->error_data);
    if (s->error_hook == bw_http_default_request_error)
        s->error_hook = NULL; /* the policy's own 500 replaces the default's */
    bw_http_server_set_handler(srv, worker_handler, s);
    bw_http_server_set_request_error_hook(srv, crash_policy, s);
    if (ctx->counting)
        bw_http_server_count_into(srv, &ctx->shm->counts.http);
    if (ctx->handoff != NULL) {
        int rc = bw__ho_worker_add_server(ctx->handoff, srv, true);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < ctx->nlisten; i++) {
        /* The server owns (and closes) its copy; ours stays for later servers. */
        int fd = fcntl(ctx->listen_fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return -errno;
        int rc = bw_http_server_listen_fd(srv, fd);
        if (rc != 0)
            return rc; /* the server closed its copy */
    }
    s->open = true;
    ctx->nservers++;
    set_route_gates(ctx);
    ctx->nopen++;
    for (size_t i = 0; i < ctx->nlisten; i++)
        announce_listening(ctx, ctx->listen_fds[i]);
    return 0;
}

/* ---- Accessors --------------------------------------------------------- */

bw_loop *bw_worker_ctx_loop(bw_worker_ctx *ctx)
{
    return ctx->loop;
}

int bw_worker_ctx_id(const bw_worker_ctx *ctx)
{
    return ctx->id;
}

size_t bw_worker_ctx_listen_fd_count(const bw_worker_ctx *ctx)
{
    return ctx->nlisten;
}

int bw_worker_ctx_listen_fd(const bw_worker_ctx *ctx, size_t i)
{
    return i < ctx->nlisten ? ctx->listen_fds[i] : -1;
}

bool bw_worker_ctx_is_connected(const bw_worker_ctx *ctx)
{
    return ctx->connected;
}

void bw_worker_ctx_on_message(bw_worker_ctx *ctx, bw_worker_ctx_message_cb cb, void *data)
{
    ctx->message_cb = cb;
    ctx->message_data = data;
}

int bw_worker_ctx_send(bw_worker_ctx *ctx, const void *msg, size_t len)
{
    return bw__msg_send(ctx->connected ? ctx->fd : -1, BW__MSG_USER, msg, len);
}

void bw_worker_ctx_on_disconnect(bw_worker_ctx *ctx, bw_worker_ctx_disconnect_cb cb, void *data)
{
    ctx->disconnect_cb = cb;
    ctx->disconnect_data = data;
}
