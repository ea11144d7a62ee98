/*
 * http_server.c: the server: options, listeners, accepting, graceful close,
 * the periodic sweep that enforces every connection's deadline, and the
 * deferred finalization of requests.
 *
 * Deadlines are plain stores into each connection (no timer operation per
 * request); one unref'd periodic timer per server sweeps the connections
 * and acts on the expired ones. Its period follows the smallest configured
 * timeout, so short test timeouts stay precise.
 */
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"

#define BW__FREE_REQUESTS_MAX 64

static const bw__member_ops server_member_ops = {"http-server", NULL, false};

void bw_http_options_init(bw_http_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_head_size = 16 * 1024;
    o->max_body_size = 1024 * 1024;
    o->headers_timeout_ms = 60 * 1000;
    o->request_timeout_ms = 300 * 1000;
    o->keepalive_timeout_ms = 75 * 1000;
    o->max_connections = 16384;
    o->max_pipelined = 16;
    o->max_output_buffer = 1024 * 1024;
    o->close_grace_ms = 100;
    o->send_timeout_ms = 60 * 1000;
    o->response_timeout_ms = 0;
    o->lingering_timeout_ms = 5 * 1000;
    o->backlog = 511;
    o->domain_per_request = true;
}

static bool options_valid(const bw_http_options *o)
{
    return o->max_head_size >= 64 && o->max_head_size < UINT32_MAX / 2 && o->headers_timeout_ms &&
           o->request_timeout_ms && o->keepalive_timeout_ms && o->max_connections &&
           o->max_pipelined && o->max_output_buffer && o->lingering_timeout_ms &&
           o->send_timeout_ms && o->backlog > 0;
}

int bw_http_server_new(bw_loop *loop, const bw_http_options *options, bw_http_handler handler,
                       void *data, bw_http_server **out)
{
    *out = NULL;
    bw_http_options defaults;
    if (options == NULL) {
        bw_http_options_init(&defaults);
        options = &defaults;
    }
    if (!options_valid(options) || handler == NULL)
        return -EINVAL;
    bw_http_server *s = bw_calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->readbuf = bw_malloc(BW__READBUF_SIZE);
    if (s->readbuf == NULL) {
        bw_free(s);
        return -ENOMEM;
    }
    bw__member_init(&s->member, &server_member_ops);
    uint64_t seed[1] = {0};
    if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed[0] = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
    snprintf(s->id_prefix, sizeof s->id_prefix, "%016llx", (unsigned long long)seed[0]);
    s->loop = loop;
    s->opts = *options;
    if (s->opts.on_request_error == NULL)
        s->opts.on_request_error = bw_http_default_request_error;
    s->handler = handler;
    s->data = data;
    bw__member_bind_active(&s->member);
    *out = s;
    return 0;
}

/* ---- Periodic sweep and deferred finalization -------------------------- */

static void on_sweep(uv_timer_t *timer)
{
    bw_http_server *s = timer->data;
    uint64_t now = uv_now(s->loop->uv);
    bw__conn *c = s->conns;
    while (c != NULL) {
        bw__conn *next = c->next; /* the sweep may close c */
        if (s->opts.response_timeout_ms != 0 && c->inflight > 0)
            bw__conn_sweep_responses(c, now);
        if (c->deadline != 0 && now >= c->deadline)
            bw__conn_sweep(c, now);
        c = next;
    }
}

static uint64_t sweep_period(const bw_http_options *o)
{
    uint64_t m = o->headers_timeout_ms;
    uint64_t all[] = {o->request_timeout_ms, o->keepalive_timeout_ms, o->lingering_timeout_ms,
                      o->send_timeout_ms,
                      o->close_grace_ms ? o->close_grace_ms : UINT64_MAX,
                      o->response_timeout_ms ? o->response_timeout_ms : UINT64_MAX};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] < m)
            m = all[i];
    m /= 4;
    return m < 5 ? 5 : m > 1000 ? 1000 : m;
}

typedef struct finished_call {
    bw_http_server *s;
    bw_http_request *r;
    const bw_http_finished *f;
} finished_call;

static void call_finished_cb(void *arg)
{
    finished_call *fc = arg;
    fc->s->finished_cb(fc->r, fc->f, fc->s->finished_data);
}

/* The finished hook, once per dispatched request, as it is finalized:
 * before its domain is disposed (the callee may still read it). */
__attribute__((noinline, cold)) static void report_finished(bw_http_server *s,
                                                            bw_http_request *r)
{
    r->flags |= BW__REQ_REPORTED;
    uint32_t fl = r->flags;
    bw_http_finished f = {
        .status = r->res.headers_sent ? r->res.status : 0,
        .body_bytes = r->res.body_sent,
        .duration_ms = r->received_ms != 0 ? uv_now(s->loop->uv) - r->received_ms : 0,
        .outcome = (fl & BW__REQ_ERRORED)       ? BW_HTTP_FAULTED
                   : (fl & BW__REQ_RESET)       ? BW_HTTP_RESET
                   : (fl & BW__REQ_ABORTED)     ? BW_HTTP_ABORTED
                   : (fl & BW__REQ_QUARANTINED) ? BW_HTTP_QUARANTINED
                                                : BW_HTTP_ANSWERED,
        .method = bw_http_request_method(r),
        .target = bw_http_request_target(r),
        .route = r->route,
    };
    finished_call fc = {s, r, &f};
    bw_invoke(s->member.owner, call_finished_cb, &fc);
}

static void bump(uint64_t *counter, uint64_t by)
{
    __atomic_store_n(counter, *counter + by, __ATOMIC_RELAXED); /* one writer */
}

__attribute__((noinline, cold)) static int uncommon_outcome(uint32_t fl)
{
    return (fl & BW__REQ_ERRORED)   ? BW_HTTP_FAULTED
           : (fl & BW__REQ_RESET)   ? BW_HTTP_RESET
           : (fl & BW__REQ_ABORTED) ? BW_HTTP_ABORTED
                                    : BW_HTTP_QUARANTINED;
}

/* bw_http_server_count_into's counters, for one request finished at loop
 * time `now`. The status is 0 or one set_status let through (200-599) or
 * the server's own: always inside by_status. */
static inline void count_finished(bw_http_stats *st, bw_http_request *r, uint64_t now)
{
    static const uint64_t bounds[BW_HTTP_STATS_BUCKETS] = BW_HTTP_STATS_BOUNDS_MS;
    uint32_t fl = r->flags;
    bump(&st->by_status[r->res.headers_sent ? (unsigned)r->res.status % 600 : 0], 1);
    const uint32_t uncommon =
        BW__REQ_ERRORED | BW__REQ_RESET | BW__REQ_ABORTED | BW__REQ_QUARANTINED;
    bump(&st->by_outcome[BW__UNLIKELY(fl & uncommon) ? uncommon_outcome(fl) : BW_HTTP_ANSWERED],
         1);
    uint64_t ms = r->received_ms != 0 ? now - r->received_ms : 0;
    size_t b = 0;
    while (ms > bounds[b] && ++b < BW_HTTP_STATS_BUCKETS)
        ;
    if (b < BW_HTTP_STATS_BUCKETS)
        bump(&st->duration_bucket[b], 1);
    bump(&st->duration_count, 1);
    if (ms != 0)
        bump(&st->duration_sum_ms, ms);
}

__attribute__((always_inline)) static inline void finalize_pending(bw_http_server *s)
{
    /* Read once per batch: the hook and the counters are the exception. */
    bw_http_stats *stats = s->stats;
    bool report = __builtin_expect(s->finished_cb != NULL || stats != NULL, 0);
    uint64_t now = report ? uv_now(s->loop->uv) : 0;
    while (s->finalize_head != NULL) {
        bw_http_request *r = s->finalize_head;
        s->finalize_head = r->next;
        r->next = NULL;
        r->flags &= ~(uint32_t)BW__REQ_FINALIZING;
        if (report && stats != NULL && !(r->flags & BW__REQ_REPORTED))
            count_finished(stats, r, now);
        if (report && !(r->flags & BW__REQ_REPORTED) && s->finished_cb != NULL)
            report_finished(s, r);
        bw__request_dispose_domain(r);
        bw__request_release(r);
    }
}

static void maybe_complete_close(bw_http_server *s);

static void resume_pending(bw_http_server *s)
{
    while (s->resume_head != NULL) {
        bw__conn *c = s->resume_head;
        s->resume_head = c->resume_next;
        bw__conn_resume(c);
    }
}

static void on_finalize_check(uv_check_t *check)
{
    bw_http_server *s = check->data;
    resume_pending(s);
    finalize_pending(s);
    uv_check_stop(&s->finalize_check);
    uv_idle_stop(&s->finalize_idle);
    maybe_complete_close(s);
}

static void noop_idle(uv_idle_t *idle)
{
    (void)idle;
}

void bw__server_wake(bw_http_server *s)
{
    /* Before the first listen, and once the close completes, these handles
     * are not running: starting one being closed would count it active
     * for ever, and the loop would never end. */
    if (!s->sweep_running)
        return;
    if (!uv_is_active((uv_handle_t *)&s->finalize_check)) {
        uv_check_start(&s->finalize_check, on_finalize_check);
        uv_idle_start(&s->finalize_idle, noop_idle); /* no blocking poll meanwhile */
    }
}

void bw__server_finalize_later(bw_http_server *s, bw_http_request *r)
{
    if (r->flags & BW__REQ_FINALIZING)
        return;
    r->flags |= BW__REQ_FINALIZING;
    r->next = s->finalize_head;
    s->finalize_head = r;
    bw__server_wake(s);
}

static int start_internal_handles(bw_http_server *s)
{
    if (s->handles_open > 0)
        return 0;
    uv_timer_init(s->loop->uv, &s->sweep);
    uv_check_init(s->loop->uv, &s->finalize_check);
    uv_idle_init(s->loop->uv, &s->finalize_idle);
    s->sweep.data = s;
    s->finalize_check.data = s;
    s->finalize_idle.data = s;
    s->handles_open = 3;
    uint64_t period = sweep_period(&s->opts);
    uv_timer_start(&s->sweep, on_sweep, period, period);
    uv_unref((uv_handle_t *)&s->sweep);
    uv_unref((uv_handle_t *)&s->finalize_check);
    s->sweep_running = true;
    return 0;
}

/* A server fed by connections of its own making (the fuzz harnesses' memory
 * transport): the sweep and finalizer run, with no listener. */
int bw__server_start_unlistened(bw_http_server *s)
{
    return start_internal_handles(s);
}

/* ---- Output buffers ----------------------------------------------------- */

#define BW__OUT_POOL 64
#define BW__OUT_POOL_MAX_CAP (64 * 1024)

void bw__server_lend_buf(bw_http_server *s, bw__buf *b)
{
    if (s->nout_pool > 0)
        *b = s->out_pool[--s->nout_pool];
}

void bw__server_return_buf(bw_http_server *s, bw__buf *b)
{
    if (b->base == NULL)
        return;
    b->len = 0;
    if (b->cap > BW__OUT_POOL_MAX_CAP || s->closed) {
        bw__buf_free(b);
        return;
    }
    if (s->out_pool == NULL)
        s->out_pool = bw_malloc(BW__OUT_POOL * sizeof *s->out_pool);
    if (s->out_pool == NULL || s->nout_pool == BW__OUT_POOL) {
        bw__buf_free(b);
        return;
    }
    s->out_pool[s->nout_pool++] = *b;
    *b = (bw__buf){NULL, 0, 0};
}

static void free_out_pool(bw_http_server *s)
{
    while (s->nout_pool > 0)
        bw__buf_free(&s->out_pool[--s->nout_pool]);
    bw_free(s->out_pool);
    s->out_pool = NULL;
}

/* ---- Requests: a small free list keeps allocation off the hot path ----- */

bw_http_request *bw__server_request_new(bw_http_server *s)
{
    bw_http_request *r = s->free_requests;
    if (r != NULL) {
        s->free_requests = r->next;
        s->nfree_requests--;
        r->next = NULL;
        return r;
    }
    return bw_calloc(1, sizeof *r);
}

void bw__server_request_recycle(bw_http_server *s, bw_http_request *r)
{
    if (s->nfree_requests >= BW__FREE_REQUESTS_MAX || s->closed) {
        bw__buf_free(&r->head);
        bw_free(r->headers);
        bw_free(r->res.headers);
        bw_free(r);
        return;
    }
    r->next = s->free_requests;
    s->free_requests = r;
    s->nfree_requests++;
}

static void free_request_pool(bw_http_server *s)
{
    while (s->free_requests != NULL) {
        bw_http_request *r = s->free_requests;
        s->free_requests = r->next;
        bw__buf_free(&r->head);
        bw_free(r->headers);
        bw_free(r->res.headers);
        bw_free(r);
    }
    s->nfree_requests = 0;
}

/* ---- Listening --------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    bw_http_server *s = listener->data;
    if (status < 0) {
        bw_log(BW_LOG_WARN, "http: accept failed: %s", bw_strerror(status));
        return;
    }
    if (!s->accepting)
        return;
    bw__conn_accept(s, listener);
}

static int record_port(bw_http_server *s, uv_tcp_t *listener)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_tcp_getsockname(listener, (struct sockaddr *)&ss, &len);
    if (rc != 0)
        return rc;
    if (s->port == 0) {
        if (ss.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    bw_http_server *s = h->data;
    s->listeners_open--;
    maybe_complete_close(s);
}

static uv_tcp_t *next_listener(bw_http_server *s, int *rc)
{
    if (s->closing || s->closed) {
        *rc = BW_ENOTRUNNING;
        return NULL;
    }
    if (s->nlisteners == sizeof s->listeners / sizeof s->listeners[0]) {
        *rc = BW_ELIMIT;
        return NULL;
    }
    start_internal_handles(s);
    uv_tcp_t *l = &s->listeners[s->nlisteners];
    *rc = uv_tcp_init(s->loop->uv, l);
    if (*rc != 0)
        return NULL;
    l->data = s;
    return l;
}

/* Every connection is a descriptor: raise the soft limit towards what
 * max_connections needs (as nginx's worker_rlimit_nofile does), and say so
 * when the hard limit keeps it short. */
static void ensure_fd_limit(const bw_http_server *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)s->opts.max_connections + 64;
    if (rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    struct rlimit raised = {want, rl.rlim_max};
    if (want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0)
        rl.rlim_cur = want;
    if (rl.rlim_cur < need)
        bw_log(BW_LOG_WARN,
               "http: max_connections is %zu but the descriptor limit is %llu: beyond it, "
               "connections are refused without a 503",
               s->opts.max_connections, (unsigned long long)rl.rlim_cur);
}

static int commit_listener(bw_http_server *s, uv_tcp_t *l, int rc)
{
    if (s->nlisteners == 0)
        ensure_fd_limit(s);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)l, s->opts.backlog, on_connection);
    if (rc == 0)
        rc = record_port(s, l);
    s->nlisteners++;
    s->listeners_open++;
    if (rc != 0) {
        uv_close((uv_handle_t *)l, on_listener_closed);
        return rc;
    }
    s->accepting = true;
    return 0;
}

int bw_http_server_listen(bw_http_server *s, const char *host, int port)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    if (host == NULL || strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    struct sockaddr_storage addr;
    int rc;
    if (strchr(host, ':') != NULL)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        return -EINVAL;
    uv_tcp_t *l = next_listener(s, &rc);
    if (l == NULL)
        return rc;
    rc = uv_tcp_bind(l, (const struct sockaddr *)&addr, 0);
    return commit_listener(s, l, rc);
}

int bw_http_server_listen_fd(bw_http_server *s, int fd)
{
    int rc;
    uv_tcp_t *l = next_listener(s, &rc);
    if (l == NULL) {
        close(fd);
        return rc;
    }
    rc = uv_tcp_open(l, fd);
    if (rc != 0)
        close(fd); /* not the handle's: commit_listener's close leaves it */
    return commit_listener(s, l, rc);
}

int bw_http_server_port(const bw_http_server *s)
{
    return s->port;
}

bool bw_http_server_is_listening(const bw_http_server *s)
{
    return s->accepting;
}

/* ---- Closing ----------------------------------------------------------- */

/* Accept, without waiting, the connections the kernel has queued on the
 * listeners: closing a listener resets them (when no other process holds
 * it), which a client sees as a connection accepted and then dropped.
 * They are served like any connection of a closing server. */
static void accept_backlog(bw_http_server *s)
{
    if (!s->accepting)
        return;
    for (size_t i = 0; i < s->nlisteners; i++) {
        uv_os_fd_t lfd;
        if (uv_is_closing((uv_handle_t *)&s->listeners[i]) ||
            uv_fileno((uv_handle_t *)&s->listeners[i], &lfd) != 0)
            continue;
        while (s->nconns < s->opts.max_connections) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                break; /* EAGAIN: nothing more queued; anything else: as libuv would */
            }
            if (bw__conn_adopt(s, fd) != 0)
                close(fd);
        }
    }
}

void bw_http_server_stop_accepting(bw_http_server *s)
{
    if (!s->accepting)
        return;
    s->accepting = false;
    for (size_t i = 0; i < s->nlisteners; i++) {
        uv_handle_t *h = (uv_handle_t *)&s->listeners[i];
        if (!uv_is_closing(h))
            uv_close(h, on_listener_closed);
    }
}

/* The user's close callback, under a guard: an error in it goes to the
 * server's domain like an error in any of its callbacks. */
static void call_close_cb(void *arg)
{
    bw_http_server *s = arg;
    s->close_cb(s, 0, s->close_data);
}

static void on_internal_closed(uv_handle_t *h)
{
    bw_http_server *s = h->data;
    if (--s->handles_open > 0)
        return;
    s->closed = true;
    s->closing = false;
    free_request_pool(s);
    free_out_pool(s);
    if (s->close_cb != NULL)
        bw_invoke(s->member.owner, call_close_cb, s);
}

/* The last step of close: every connection is gone and the listeners are
 * closed; stop the sweep and the finalizer, then tell the user. */
static void maybe_complete_close(bw_http_server *s)
{
    if (!s->closing || s->nconns > 0 || s->listeners_open > 0 || !s->sweep_running ||
        s->spare_busy || s->handoffs_out > 0)
        return;
    finalize_pending(s);
    s->sweep_running = false;
    uv_close((uv_handle_t *)&s->sweep, on_internal_closed);
    uv_close((uv_handle_t *)&s->finalize_check, on_internal_closed);
    uv_close((uv_handle_t *)&s->finalize_idle, on_internal_closed);
}

int bw_http_server_close(bw_http_server *s, bw_http_close_cb cb, void *data)
{
    if (s->closing)
        return BW_ECLOSING;
    if (s->closed || s->handles_open == 0)
        return BW_ENOTRUNNING; /* never started (no listen) or closed already */
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    s->handoff_blocked = false;
    accept_backlog(s);
    bw_http_server_stop_accepting(s);
    /* The grace of idle connections counts from now, not from the start of
     * this loop iteration: the caller may have run long (a fault's report). */
    uv_update_time(s->loop->uv);
    bw__conn *c = s->conns;
    while (c != NULL) {
        bw__conn *next = c->next;
        bw__conn_server_closing(c);
        c = next;
    }
    /* Busy connections close when their last response is out (they answer
     * Connection: close from now on). The completion is always deferred,
     * so cb never runs inside this call. */
    bw__server_wake(s);
    return 0;
}

void bw_http_server_close_idle_connections(bw_http_server *s)
{
    /* The grace period starts now, not when this loop iteration began: a
     * close from a callback that ran long (one the callback limit
     * interrupted) would otherwise find the grace already over at the next
     * timer check, before the poll reads the requests that came meanwhile. */
    uv_update_time(s->loop->uv);
    bw__conn *c = s->conns;
    while (c != NULL) {
        bw__conn *next = c->next;
        bw__conn_close_idle(c);
        c = next;
    }
}

void bw_http_server_close_all_connections(bw_http_server *s)
{
    bw__conn *c = s->conns;
    while (c != NULL) {
        bw__conn *next = c->next;
        bw__conn_destroy(c, true);
        c = next;
    }
}

void bw__server_conn_gone(bw_http_server *s, bw__conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    if (s->closing && s->nconns == 0)
        bw__server_wake(s); /* completes the close from the check phase */
}

int bw_http_server_count_into(bw_http_server *s, bw_http_stats *stats)
{
    s->stats = stats;
    return 0;
}

int bw_http_server_on_finished(bw_http_server *s, bw_http_finished_cb cb, void *data)
{
    s->finished_cb = cb;
    s->finished_data = cb != NULL ? data : NULL;
    return 0;
}

/* ---- Handing connections to another process ---------------------------- */

int bw_http_server_set_handoff(bw_http_server *s, bw_http_handoff_cb cb, void *data)
{
    s->handoff_cb = cb;
    s->handoff_data = cb != NULL ? data : NULL;
    return 0;
}

void bw_http_server_handoff_more(bw_http_server *s)
{
    s->handoff_blocked = false;
    bw__conn *c = s->conns;
    while (c != NULL && !s->handoff_blocked) {
        bw__conn *next = c->next; /* a move closes c (it stays listed until closed) */
        bw__conn_try_move(c);
        c = next;
    }
}

int bw_http_server_handoff_settle(bw_http_server *s, int fd, const void *state, size_t len,
                                  int status)
{
    if (s->handoffs_out == 0)
        return -EINVAL;
    s->handoffs_out--;
    if (status == 0) {
        close(fd);
    } else {
        /* Taken back: to move later (offered again at handoff_more), or
         * to close here. */
        if (status == -EAGAIN)
            s->handoff_blocked = true;
        int rc = s->closed ? BW_ENOTRUNNING
                           : bw__conn_adopt_state(s, fd, state, len, status != -EAGAIN);
        if (rc != 0) {
            bw_log(BW_LOG_WARN, "http: a connection given away could not be taken back (%s): "
                   "closed", bw_strerror(rc));
            close(fd);
        }
    }
    if (s->closing)
        bw__server_wake(s); /* the close may complete now */
    return 0;
}

/* A closing server still takes connections (its close waits for them),
 * until the close completes: from the moment its last connection is gone
 * it is closing its own handles, and a connection adopted then (a
 * sibling's handoff that crossed this worker's retirement) would be served
 * by a server about to end. */
static bool completing_close(const bw_http_server *s)
{
    return s->closing && !s->sweep_running;
}

int bw_http_server_adopt(bw_http_server *s, int fd, const void *state, size_t len)
{
    if (s->closed || s->handles_open == 0 || completing_close(s))
        return BW_ENOTRUNNING;
    return bw__conn_adopt_state(s, fd, state, len, false);
}

void bw_http_server_get_handler(const bw_http_server *s, bw_http_handler *handler, void **data)
{
    *handler = s->handler;
    *data = s->data;
}

int bw_http_server_set_handler(bw_http_server *s, bw_http_handler handler, void *data)
{
    if (handler == NULL)
        return -EINVAL;
    s->handler = handler;
    s->data = data;
    return 0;
}

void bw_http_server_get_request_error_hook(const bw_http_server *s, bw_http_request_error_cb *cb,
                                           void **data)
{
    *cb = s->opts.on_request_error;
    *data = s->opts.request_error_data;
}

int bw_http_server_set_request_error_hook(bw_http_server *s, bw_http_request_error_cb cb,
                                          void *data)
{
    s->opts.on_request_error = cb != NULL ? cb : bw_http_default_request_error;
    s->opts.request_error_data = cb != NULL ? data : NULL;
    return 0;
}

size_t bw_http_server_connection_count(const bw_http_server *s)
{
    return s->nconns;
}

size_t bw_http_server_request_count(const bw_http_server *s)
{
    return s->nrequests;
}

int bw_http_server_free(bw_http_server *s)
{
    if (s == NULL)
        return 0;
    bool never_listened = s->handles_open == 0;
    if (!never_listened && !s->closed)
        return BW_EBUSY;
    bw__member_unbind(&s->member);
    free_request_pool(s);
    free_out_pool(s);
    bw_free(s->readbuf);
    bw_free(s);
    return 0;
}

bw_loop *bw_http_server_loop(const bw_http_server *s)
{
    return s->loop;
}

bw_member *bw_http_server_member(bw_http_server *s)
{
    return &s->member;
}

void bw__server_log_refusal(bw_http_server *s)
{
    uint64_t now = uv_now(s->loop->uv);
    s->refused_since_log++;
    if (s->refused_logged_at != 0 && now - s->refused_logged_at < 1000)
        return;
    bw_log(BW_LOG_WARN,
           "http: 503 refused %llu connection(s): the limit of %zu open connections is reached",
           (unsigned long long)s->refused_since_log, s->opts.max_connections);
    s->refused_logged_at = now;
    s->refused_since_log = 0;
}
