/*
 * cluster_metrics.c: the primary's admin listener and its metrics.
 *
 *   GET /metrics  the Prometheus text exposition format (0.0.4)
 *   GET /healthz  200 while the primary's loop turns (it answers)
 *   GET /readyz   200 while a worker listens and the cluster is neither
 *                 shutting down, given up nor handing over to a new
 *                 primary; 503 from the moment one of those begins
 *
 * What the workers count (requests by status and outcome, their duration,
 * the errors that reached a request, by origin and signal) lives in each
 * worker's shared page (bw__worker_shm), written by the worker and read
 * here: a worker that faults cannot send its last counts anywhere, but its
 * page is still the primary's. When the primary forgets a worker (it has
 * exited and its channels are closed) the page's counts are added to the
 * retired totals, once, before the page goes; a scrape adds the retired
 * totals and every live page. So no count is lost with a worker and none
 * is counted twice.
 *
 * What only the primary sees it counts itself: worker exits by reason,
 * the time from a retirement to its replacement listening, drains, and
 * handoffs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cluster_internal.h"

/* Seconds, for the primary's own histograms. */
#define LIFE_BUCKETS 10
static const double life_bounds[LIFE_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,  1,     2.5,  10};

typedef struct histogram {
    uint64_t bucket[LIFE_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} histogram;

enum exit_reason {
    EXIT_FAULT,       /* the crash policy retired it (an error in a request) */
    EXIT_HANG,        /* no heartbeat: killed */
    EXIT_RECYCLE,     /* max_requests or the memory limit */
    EXIT_ROLLING,     /* a rolling restart */
    EXIT_UPGRADE,     /* handed over to a new primary */
    EXIT_SHUTDOWN,    /* a shutdown or a disconnect */
    EXIT_KILLED,      /* still alive at its kill deadline */
    EXIT_STARTUP,     /* died before it listened */
    EXIT_CRASH,       /* died on its own, unasked (a fault outside any guard) */
    EXIT_REASONS
};
static const char *const exit_names[EXIT_REASONS] = {
    "fault", "hang", "recycle", "rolling_restart", "upgrade", "shutdown", "killed",
    "startup_failure", "crash"};

#define PENDING_MAX 64

struct bw__metrics {
    bw_http_server *admin;
    int admin_fd; /* a copy of its listening socket, for an upgrade's successor */
    bool closing;
    bw__worker_counts retired;   /* the counts of forgotten workers */
    uint64_t exits[EXIT_REASONS];
    histogram replacement, drain;
    uint64_t pending[PENDING_MAX]; /* retirement times awaiting a replacement, a ring */
    size_t pending_head, npending;
    uint64_t handoffs_moved, handoffs_refused;
};

static bw__metrics *metrics_of(bw_cluster *c)
{
    if (c->metrics == NULL) {
        c->metrics = bw_calloc(1, sizeof *c->metrics);
        if (c->metrics != NULL)
            c->metrics->admin_fd = -1;
    }
    return c->metrics;
}

static void observe(histogram *h, double seconds)
{
    size_t b = 0;
    while (b < LIFE_BUCKETS && seconds > life_bounds[b])
        b++;
    if (b < LIFE_BUCKETS)
        h->bucket[b]++;
    h->count++;
    h->sum += seconds;
}

/* ---- Events from the supervision --------------------------------------- */

void bw__metrics_draining(bw_cluster *c, bw_worker *w)
{
    if (w->drain_since_ms == 0)
        w->drain_since_ms = uv_now(c->loop->uv);
}

void bw__metrics_retiring(bw_cluster *c, bw_worker *w)
{
    bw__metrics *m = metrics_of(c);
    if (w->drain_since_ms != 0)
        return;
    w->drain_since_ms = uv_now(c->loop->uv);
    if (m == NULL || c->shutting_down)
        return; /* no replacement comes */
    if (m->npending == PENDING_MAX) { /* a storm: the oldest is dropped */
        m->pending_head = (m->pending_head + 1) % PENDING_MAX;
        m->npending--;
    }
    m->pending[(m->pending_head + m->npending++) % PENDING_MAX] = w->drain_since_ms;
}

void bw__metrics_listening(bw_cluster *c, bw_worker *w)
{
    (void)w;
    bw__metrics *m = metrics_of(c);
    if (m == NULL || m->npending == 0)
        return;
    uint64_t since = m->pending[m->pending_head];
    m->pending_head = (m->pending_head + 1) % PENDING_MAX;
    m->npending--;
    observe(&m->replacement, (double)(uv_now(c->loop->uv) - since) / 1000.0);
}

static enum exit_reason reason_of(const bw_cluster *c, const bw_worker *w)
{
    if (w->hang_reported)
        return EXIT_HANG;
    if (w->sigkill_ms != 0)
        return EXIT_KILLED;
    if (!w->was_listening)
        return EXIT_STARTUP;
    if (w->recycled)
        return EXIT_RECYCLE;
    if (w->retiring)
        return EXIT_FAULT;
    if (w->rolling_old)
        return EXIT_ROLLING;
    if (c->upgrade.handing_over)
        return EXIT_UPGRADE;
    if (w->disconnect_sent || c->shutting_down)
        return EXIT_SHUTDOWN;
    return EXIT_CRASH;
}

void bw__metrics_exit(bw_cluster *c, bw_worker *w)
{
    bw__metrics *m = metrics_of(c);
    if (m == NULL)
        return;
    m->exits[reason_of(c, w)]++;
    if (w->drain_since_ms != 0)
        observe(&m->drain, (double)(uv_now(c->loop->uv) - w->drain_since_ms) / 1000.0);
}

static void add_counts(bw__worker_counts *to, const bw__worker_counts *from)
{
    const uint64_t *f = (const uint64_t *)from;
    uint64_t *t = (uint64_t *)to;
    for (size_t i = 0; i < sizeof *from / sizeof(uint64_t); i++)
        t[i] += __atomic_load_n(&f[i], __ATOMIC_RELAXED);
}

void bw__metrics_forget(bw_cluster *c, bw_worker *w)
{
    bw__metrics *m = metrics_of(c);
    if (m != NULL && w->shm != NULL)
        add_counts(&m->retired, &w->shm->counts);
}

void bw__metrics_handoff(bw_cluster *c, size_t moved, size_t refused)
{
    bw__metrics *m = metrics_of(c);
    if (m == NULL)
        return;
    m->handoffs_moved += moved;
    m->handoffs_refused += refused;
}

/* ---- The exposition ---------------------------------------------------- */

typedef struct text {
    bw__buf b;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...) BW_PRINTF(2, 3);
static void put(text *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || bw__buf_append(&t->b, line, (size_t)n) != 0)
        t->failed = true;
}

static void family(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void life_histogram(text *t, const char *name, const char *help, const histogram *h)
{
    family(t, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t b = 0; b < LIFE_BUCKETS; b++) {
        cum += h->bucket[b];
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, life_bounds[b], (unsigned long long)cum);
    }
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

static const char *signal_label(size_t i)
{
    static const char *const names[BW__FAULT_SIGNALS] = {"none",   "SIGSEGV", "SIGBUS", "SIGFPE",
                                                         "SIGILL", "SIGABRT", "other"};
    return names[i];
}

static void render(bw_cluster *c, text *t)
{
    bw__metrics *m = c->metrics;
    bw__worker_counts all = m->retired;
    uint64_t connections = 0, in_flight = 0;
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->shm == NULL)
            continue;
        add_counts(&all, &w->shm->counts);
        if (!w->exited) {
            connections += __atomic_load_n(&w->shm->connections, __ATOMIC_RELAXED);
            in_flight += __atomic_load_n(&w->shm->in_flight, __ATOMIC_RELAXED);
        }
    }
    const bw_http_stats *h = &all.http;
    family(t, "bulwark_requests_total", "counter", "HTTP requests finished, by the status sent "
           "(0: none was).");
    bool any = false;
    for (int s = 0; s < 600; s++) {
        if (h->by_status[s] != 0) {
            put(t, "bulwark_requests_total{code=\"%d\"} %llu\n", s,
                (unsigned long long)h->by_status[s]);
            any = true;
        }
    }
    if (!any)
        put(t, "bulwark_requests_total{code=\"200\"} 0\n");
    static const char *const outcomes[5] = {"answered", "faulted", "reset", "aborted",
                                            "quarantined"};
    family(t, "bulwark_request_outcomes_total", "counter",
           "HTTP requests finished, by how they ended.");
    for (int o = 0; o < 5; o++)
        put(t, "bulwark_request_outcomes_total{outcome=\"%s\"} %llu\n", outcomes[o],
            (unsigned long long)h->by_outcome[o]);
    static const uint64_t bounds[BW_HTTP_STATS_BUCKETS] = BW_HTTP_STATS_BOUNDS_MS;
    family(t, "bulwark_request_duration_seconds", "histogram",
           "From the whole request's arrival to its response's end.");
    uint64_t cum = 0;
    for (size_t b = 0; b < BW_HTTP_STATS_BUCKETS; b++) {
        cum += h->duration_bucket[b];
        put(t, "bulwark_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
            (double)bounds[b] / 1000.0, (unsigned long long)cum);
    }
    put(t, "bulwark_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
        "bulwark_request_duration_seconds_sum %.3f\n"
        "bulwark_request_duration_seconds_count %llu\n", (unsigned long long)h->duration_count,
        (double)h->duration_sum_ms / 1000.0, (unsigned long long)h->duration_count);
    family(t, "bulwark_faults_total", "counter",
           "Errors that reached a request's domain, by origin and fault signal.");
    for (size_t o = 0; o < BW__ORIGINS; o++)
        for (size_t s = 0; s < BW__FAULT_SIGNALS; s++)
            if (all.errors[o][s] != 0 || (o == BW_ORIGIN_FAULT && s == 1))
                put(t, "bulwark_faults_total{origin=\"%s\",signal=\"%s\"} %llu\n",
                    bw_error_origin_name((bw_error_origin)o), signal_label(s),
                    (unsigned long long)all.errors[o][s]);
    family(t, "bulwark_worker_exits_total", "counter", "Workers that exited, by reason.");
    for (int r = 0; r < EXIT_REASONS; r++)
        put(t, "bulwark_worker_exits_total{reason=\"%s\"} %llu\n", exit_names[r],
            (unsigned long long)m->exits[r]);
    bw__worker_census n = bw__cluster_census(c);
    family(t, "bulwark_workers", "gauge", "Workers now, by state.");
    put(t, "bulwark_workers{state=\"starting\"} %d\nbulwark_workers{state=\"serving\"} %d\n"
        "bulwark_workers{state=\"draining\"} %d\n", n.starting, n.serving, n.draining);
    life_histogram(t, "bulwark_replacement_seconds",
                   "From a worker's retirement to its replacement listening.", &m->replacement);
    life_histogram(t, "bulwark_drain_seconds", "From a worker's retirement or drain to its exit.",
                   &m->drain);
    family(t, "bulwark_quarantined_routes", "gauge",
           "Quarantines in force now (a target, a path or a route answered 503).");
    put(t, "bulwark_quarantined_routes %zu\n", bw_cluster_quarantines_active(c));
    family(t, "bulwark_clients_blocked_total", "counter",
           "Clients blocked by the fault budget (answered 429 for a while).");
    put(t, "bulwark_clients_blocked_total %llu\n", (unsigned long long)bw_cluster_clients_blocked(c));
    family(t, "bulwark_clients_blocked", "gauge", "Clients blocked by the fault budget now.");
    put(t, "bulwark_clients_blocked %zu\n", bw_cluster_clients_blocked_now(c));
    family(t, "bulwark_connections", "gauge", "Open client connections (at the workers' last "
           "heartbeat).");
    put(t, "bulwark_connections %llu\n", (unsigned long long)connections);
    family(t, "bulwark_requests_in_flight", "gauge", "Requests being served (at the workers' "
           "last heartbeat).");
    put(t, "bulwark_requests_in_flight %llu\n", (unsigned long long)in_flight);
    family(t, "bulwark_handoffs_total", "counter",
           "Idle connections a retiring worker offered, by result.");
    put(t, "bulwark_handoffs_total{result=\"moved\"} %llu\nbulwark_handoffs_total{result=\"refused\"} "
        "%llu\n", (unsigned long long)m->handoffs_moved, (unsigned long long)m->handoffs_refused);
}

/* ---- The admin listener ------------------------------------------------ */

static bool ready(const bw_cluster *c)
{
    return !c->shutting_down && c->stop_at_ms == 0 && !c->gave_up && !c->upgrade.handing_over &&
           bw__cluster_census(c).serving > 0;
}

/* POST /quarantine/lift[?key=K] and POST /clients/unblock[?ip=A]: the
 * lift API (cluster.h); without the parameter, everything. */
static bool admin_action(bw_cluster *c, bw_http_request *req, bw_http_response *res,
                         const char *path)
{
    bool lift = strcmp(path, "/quarantine/lift") == 0;
    if (!lift && strcmp(path, "/clients/unblock") != 0)
        return false;
    if (strcmp(bw_http_request_method(req), "POST") != 0) {
        bw_http_response_set_header(res, "Allow", "POST");
        bw_http_response_send(res, 405, "text/plain", "method not allowed\n", 19);
        return true;
    }
    const char *arg = NULL;
    int rc = bw_http_request_query_param(req, lift ? "key" : "ip", 0, &arg);
    if (rc != 0 && rc != -ENOENT) {
        bw_http_response_send(res, 400, "text/plain", "bad query\n", 10);
        return true;
    }
    if (rc != 0)
        arg = NULL;
    int n = lift ? bw_cluster_lift_quarantine(c, arg) : bw_cluster_unblock_client(c, arg);
    if (n < 0) {
        bw_http_response_send(res, 400, "text/plain", "empty key\n", 10);
        return true;
    }
    char body[64];
    int len = snprintf(body, sizeof body, "%s %d\n", lift ? "lifted" : "unblocked", n);
    bw_log(BW_LOG_INFO, "cluster: admin: %s %s: %d", lift ? "lift quarantine" : "unblock client",
           arg != NULL ? arg : "(all)", n);
    bw_http_response_send(res, 200, "text/plain", body, (size_t)len);
    return true;
}

static void admin_handler(bw_http_request *req, bw_http_response *res, void *data)
{
    bw_cluster *c = data;
    const char *path = bw_http_request_path(req);
    if (admin_action(c, req, res, path))
        return;
    bool get = strcmp(bw_http_request_method(req), "GET") == 0 ||
               strcmp(bw_http_request_method(req), "HEAD") == 0;
    if (strcmp(path, "/metrics") == 0 && get) {
        text t = {{0}, false};
        render(c, &t);
        if (t.failed) {
            bw__buf_free(&t.b);
            bw_http_response_send(res, 503, "text/plain", "out of memory\n", 14);
            return;
        }
        bw_http_response_send(res, 200, "text/plain; version=0.0.4; charset=utf-8", t.b.base,
                              t.b.len);
        bw__buf_free(&t.b);
    } else if (strcmp(path, "/healthz") == 0 && get) {
        bw_http_response_send(res, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(path, "/readyz") == 0 && get) {
        if (ready(c))
            bw_http_response_send(res, 200, "text/plain", "ready\n", 6);
        else
            bw_http_response_send(res, 503, "text/plain", "not ready\n", 10);
    } else if (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
               strcmp(path, "/readyz") == 0) {
        bw_http_response_set_header(res, "Allow", "GET, HEAD");
        bw_http_response_send(res, 405, "text/plain", "method not allowed\n", 19);
    } else {
        bw_http_response_send(res, 404, "text/plain", "not found\n", 10);
    }
}

int bw__metrics_start(bw_cluster *c)
{
    if (c->opts.admin_port == 0 || (c->metrics != NULL && c->metrics->admin != NULL))
        return 0;
    bw__metrics *m = metrics_of(c);
    if (m == NULL)
        return -ENOMEM;
    bw_http_options o;
    bw_http_options_init(&o);
    o.max_connections = 64; /* scrapers and probes, not clients */
    int rc = bw_http_server_new(c->loop, &o, admin_handler, c, &m->admin);
    if (rc != 0)
        return rc;
    const char *host = c->opts.admin_host != NULL ? c->opts.admin_host : "127.0.0.1";
    /* An upgrade's successor takes its predecessor's socket (the same
     * port, which it could not bind while the old one holds it). */
    int fd = -1;
    const char *given = getenv("BW_ADMIN_FD");
    if (given != NULL) {
        unsetenv("BW_ADMIN_FD");
        char *end;
        long v = strtol(given, &end, 10);
        if (*end == '\0' && v >= 3 && v < INT_MAX && fcntl((int)v, F_GETFD) >= 0) {
            fd = (int)v;
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        }
    }
    if (fd < 0)
        fd = bw__listen_socket(host, c->opts.admin_port > 0 ? c->opts.admin_port : 0, 64);
    m->admin_fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    rc = fd < 0 ? fd : bw_http_server_listen_fd(m->admin, fd); /* closes fd on failure */
    if (rc != 0) {
        bw_log(BW_LOG_ERROR, "cluster: admin listener on %s:%d: %s", host, c->opts.admin_port,
               bw_strerror(rc));
        bw_http_server_free(m->admin);
        m->admin = NULL;
        return rc;
    }
    int port = bw_http_server_port(m->admin);
    bw_log(BW_LOG_INFO, "cluster: admin listener (/metrics, /healthz, /readyz) on %s port %d",
           host, port);
    char extra[96];
    snprintf(extra, sizeof extra, "\"host\": \"%s\", \"port\": %d", host, port);
    bw__cluster_event_line(c, "admin", NULL, extra);
    return 0;
}

static void on_admin_closed(bw_http_server *s, int status, void *data)
{
    (void)s;
    (void)status;
    bw__cluster_handle_closed(data);
}

bool bw__metrics_close(bw_cluster *c)
{
    bw__metrics *m = c->metrics;
    if (m == NULL || m->admin == NULL || m->closing)
        return false;
    m->closing = true;
    return bw_http_server_close(m->admin, on_admin_closed, c) == 0;
}

void bw__metrics_free(bw_cluster *c)
{
    bw__metrics *m = c->metrics;
    if (m == NULL)
        return;
    if (m->admin_fd >= 0)
        close(m->admin_fd);
    if (m->admin != NULL)
        bw_http_server_free(m->admin);
    bw_free(m);
    c->metrics = NULL;
}

int bw__metrics_admin_fd(const bw_cluster *c)
{
    return c->metrics != NULL ? c->metrics->admin_fd : -1;
}

void bw__metrics_hand_over(bw_cluster *c)
{
    if (c->metrics != NULL && c->metrics->admin != NULL)
        bw_http_server_stop_accepting(c->metrics->admin); /* the successor answers now */
}

int bw_cluster_admin_port(const bw_cluster *c)
{
    return c->metrics != NULL && c->metrics->admin != NULL ? bw_http_server_port(c->metrics->admin)
                                                           : 0;
}
