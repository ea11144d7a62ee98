/*
 * harsh: the chaos client's harsh mode. Hundreds of connections, each of
 * one of four kinds, drawn at random (weights: --mix):
 *
 *   fresh       one request with Connection: close, on a new connection
 *   keepalive   2 to 16 requests one after the other on one connection
 *   pipelined   1 to 4 batches of 2 or 3 requests, each batch in one write
 *   halfclosed  one batch of 1 to 3 requests, then shutdown(SHUT_WR)
 *
 * A fraction P/1000 of the requests go to a fault route (every route of
 * examples/bulwark-server that answers 500, the loop-blocking
 * /stack-overflow included; /hang only with --hang), in any position of a
 * batch; the rest go to "/". With --sighup-pid, the client sends SIGHUP to
 * that pid (the primary: a rolling restart) every --sighup-every-ms during
 * the storm.
 *
 * Each request sent ends in one bucket. Innocent ("/"): answered (200),
 * wrong status, or lost: no complete response before EOF, a reset, the
 * timeout, a response that said Connection: close ahead of it in its
 * batch (its bytes reached the server in the same write, so the promise
 * counts it lost: "after_fault" where that response was a fault's own
 * 500, "after_close" where it answered an innocent request), or garbage. Faults: answered 500,
 * answered 503 (quarantine), other status, or lost the same ways. Apart:
 * "retryable", requests of a batch sent on a reused connection that the
 * server closed before any byte of an answer (RFC 9112 section 9.3.1 lets
 * a client retry those; they are not retried here), and connect failures.
 *
 * Always bounded in time: after --duration-ms nothing new starts; what is
 * in flight gets its own --timeout-ms; a hard deadline (duration + timeout
 * + 1 s) ends the run, and what is still in flight then timed out.
 *
 * Output: a JSON object (--json FILE, or stdout) with the counts and the
 * p50/p99 latency of the innocent requests answered, and a summary on
 * stderr. Exit status 0 unless the run could not happen.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o harsh harsh.c common.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "common.h"

#define MAX_DEPTH 3 /* requests in one batch */
#define MAX_ROUTES 16
/* One request: a route of at most 200 bytes (parse_routes), the Host
 * header (struct target), Connection: close and the fixed words. */
#define MAX_REQUEST (200 + HOST_HEADER_MAX + 64)
#define RECONNECT_BACKOFF_NS 10000000ull /* 10 ms after a failed connect */
#define MS 1000000ull                    /* nanoseconds */

static const char *const default_routes[] = {"/segv",           "/error",      "/abort",
                                             "/assert",         "/fpe",        "/throw",
                                             "/stack-overflow", "/emit-error", "/callback-error"};

/* ---- options ------------------------------------------------------------ */

enum kind { K_FRESH, K_KEEPALIVE, K_PIPELINED, K_HALFCLOSED, K_COUNT };
static const char *const kind_names[K_COUNT] = {"fresh", "keepalive", "pipelined", "halfclosed"};

struct options {
    const char *host;
    int port;
    int connections;
    long duration_ms;
    int fault_permille;
    long timeout_ms;
    const char *json;
    uint64_t seed;
    bool hang;
    long sighup_pid;
    long sighup_every_ms;
    long mix[K_COUNT];
    const char *routes[MAX_ROUTES];
    int nroutes;
};

/* ---- the tally ------------------------------------------------------------ */

enum loss { L_EOF, L_RESET, L_TIMEOUT, L_AFTER_CLOSE, L_AFTER_FAULT, L_PROTOCOL, L_COUNT };
static const char *const loss_names[L_COUNT] = {"eof",         "reset",       "timeout",
                                                "after_close", "after_fault", "protocol"};

/* One kind of request: innocent or fault. */
struct tally {
    uint64_t sent;
    uint64_t expected;   /* 200 for innocent requests, 500 for faults */
    uint64_t status_503; /* a fault quarantined; for an innocent one, a wrong status */
    uint64_t other_status;
    uint64_t lost, lost_by[L_COUNT];
    uint64_t retryable;
};

struct latencies {
    uint32_t *us;
    size_t len, cap;
};

/* ---- connections ---------------------------------------------------------- */

enum conn_state { C_DOWN, C_CONNECTING, C_OPEN };

struct conn {
    int fd;
    enum conn_state state;
    enum kind kind;
    int batches_left; /* batches still to send after the current one */
    int depth;        /* requests in the current batch */
    int answered;     /* ...with their response complete */
    bool fault[MAX_DEPTH];
    bool reused;       /* an earlier batch on this connection was answered */
    size_t resp_bytes; /* bytes received for the current batch */
    uint64_t sent_ns;  /* when the current batch (or the connect) started */
    uint64_t reconnect_at_ns;
    uint32_t events; /* what epoll watches for on fd */
    size_t out_len, out_off;
    char out[MAX_DEPTH * MAX_REQUEST];
    struct parser p;
};

struct client {
    struct options o;
    struct target target;
    int epfd;
    struct conn *conns;
    bool issuing; /* new connections and batches may start */
    struct tally innocent, fault;
    uint64_t connect_failures;
    uint64_t sighups;
    uint64_t next_hup_ns;
    uint64_t by_kind[K_COUNT];
    struct latencies lat;
};

static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

static void lat_add(struct latencies *l, uint64_t ns)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint32_t *us = realloc(l->us, cap * sizeof *us);
        if (!us)
            return; /* a sample fewer; the counts stay exact */
        l->us = us;
        l->cap = cap;
    }
    uint64_t us = ns / 1000;
    l->us[l->len++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void watch(struct client *cl, struct conn *c, uint32_t events)
{
    sock_watch(cl->epfd, c->fd, c, &c->events, events);
}

static void conn_close(struct client *cl, struct conn *c)
{
    sock_close(cl->epfd, &c->fd, &c->events);
    c->state = C_DOWN;
    c->depth = c->answered = 0;
}

static struct tally *tally_of(struct client *cl, const struct conn *c, int i)
{
    return c->fault[i] ? &cl->fault : &cl->innocent;
}

/* The responses still owed on c are lost (or, `retryable`, set apart). */
static void settle_rest(struct client *cl, struct conn *c, enum loss why, bool retryable)
{
    for (int i = c->answered; i < c->depth; i++) {
        struct tally *t = tally_of(cl, c, i);
        if (retryable) {
            t->retryable++;
        } else {
            t->lost++;
            t->lost_by[why]++;
        }
    }
    c->answered = c->depth;
}

static void conn_open(struct client *cl, struct conn *c);

/* Close c and start another connection in its place. */
static void conn_replace(struct client *cl, struct conn *c)
{
    conn_close(cl, c);
    conn_open(cl, c);
}

/* The server ended c (EOF or reset) or it timed out with responses owed. */
static void conn_lost(struct client *cl, struct conn *c, enum loss why)
{
    bool idle_close = c->reused && c->resp_bytes == 0 && why != L_TIMEOUT;
    settle_rest(cl, c, why, idle_close);
    conn_replace(cl, c);
}

static void connect_failed(struct client *cl, struct conn *c)
{
    cl->connect_failures++;
    conn_close(cl, c);
    c->reconnect_at_ns = now_ns() + RECONNECT_BACKOFF_NS;
}

/* ---- sending ------------------------------------------------------------- */

static int batch_depth(enum kind k)
{
    switch (k) {
    case K_PIPELINED:
        return 2 + (int)rng_below(2);
    case K_HALFCLOSED:
        return 1 + (int)rng_below(MAX_DEPTH);
    default:
        return 1;
    }
}

static const char *pick_path(struct client *cl, bool *fault)
{
    *fault = cl->o.fault_permille > 0 && (int)rng_below(1000) < cl->o.fault_permille;
    return *fault ? cl->o.routes[rng_below((uint64_t)cl->o.nroutes)] : "/";
}

static void batch_build(struct client *cl, struct conn *c)
{
    c->depth = batch_depth(c->kind);
    c->answered = 0;
    c->out_len = c->out_off = 0;
    const char *extra = c->kind == K_FRESH ? "Connection: close\r\n" : "";
    for (int i = 0; i < c->depth; i++) {
        const char *path = pick_path(cl, &c->fault[i]);
        int n =
            snprintf(c->out + c->out_len, sizeof c->out - c->out_len,
                     "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, cl->target.host_header, extra);
        c->out_len += (size_t)n;
        tally_of(cl, c, i)->sent++;
    }
}

static void conn_flush(struct client *cl, struct conn *c)
{
    switch (sock_send(c->fd, c->out, c->out_len, &c->out_off)) {
    case SEND_AGAIN:
        watch(cl, c, EPOLLOUT | EPOLLIN);
        return;
    case SEND_FAILED: /* EPIPE or ECONNRESET */
        conn_lost(cl, c, L_RESET);
        return;
    case SEND_DONE:
        break;
    }
    if (c->kind == K_HALFCLOSED)
        shutdown(c->fd, SHUT_WR);
    watch(cl, c, EPOLLIN);
}

static void batch_send(struct client *cl, struct conn *c)
{
    if (!c->reused)
        cl->by_kind[c->kind]++; /* a connection that got as far as a request */
    batch_build(cl, c);
    parser_reset(&c->p);
    c->resp_bytes = 0;
    c->sent_ns = now_ns();
    conn_flush(cl, c);
}

static enum kind pick_kind(const struct options *o)
{
    long total = 0;
    for (int k = 0; k < K_COUNT; k++)
        total += o->mix[k];
    long r = (long)rng_below((uint64_t)total);
    for (int k = 0; k < K_COUNT; k++) {
        if (r < o->mix[k])
            return (enum kind)k;
        r -= o->mix[k];
    }
    return K_FRESH;
}

static int batches_for(enum kind k)
{
    switch (k) {
    case K_KEEPALIVE:
        return 1 + (int)rng_below(15);
    case K_PIPELINED:
        return (int)rng_below(4);
    default:
        return 0;
    }
}

static void conn_open(struct client *cl, struct conn *c)
{
    c->reconnect_at_ns = 0;
    if (!cl->issuing)
        return;
    int rc = sock_connect(&cl->target, &c->fd);
    if (rc != 0 && rc != -EINPROGRESS) {
        connect_failed(cl, c);
        return;
    }
    c->kind = pick_kind(&cl->o);
    c->batches_left = batches_for(c->kind);
    c->reused = false;
    c->sent_ns = now_ns(); /* the connect's own timeout */
    if (rc == 0) {
        c->state = C_OPEN;
        batch_send(cl, c);
        return;
    }
    c->state = C_CONNECTING;
    watch(cl, c, EPOLLOUT);
}

/* ---- receiving ----------------------------------------------------------- */

static void classify(struct client *cl, struct conn *c)
{
    int i = c->answered++;
    struct tally *t = tally_of(cl, c, i);
    int want = c->fault[i] ? 500 : 200;
    if (c->p.status == want) {
        t->expected++;
        if (!c->fault[i])
            lat_add(&cl->lat, now_ns() - c->sent_ns);
    } else if (c->p.status == 503) {
        t->status_503++;
    } else {
        t->other_status++;
    }
}

/* A response completed; false if c was closed or replaced meanwhile. */
static bool response_done(struct client *cl, struct conn *c)
{
    bool closes = c->p.close;
    enum loss why = c->fault[c->answered] ? L_AFTER_FAULT : L_AFTER_CLOSE;
    classify(cl, c);
    parser_reset(&c->p);
    if (closes) {
        settle_rest(cl, c, why, false);
        conn_replace(cl, c);
        return false;
    }
    if (c->answered < c->depth)
        return true;
    if (c->batches_left == 0 || !cl->issuing || c->kind == K_FRESH || c->kind == K_HALFCLOSED) {
        conn_replace(cl, c);
        return false;
    }
    c->batches_left--;
    c->reused = true;
    batch_send(cl, c);
    return c->state == C_OPEN;
}

static void conn_feed(struct client *cl, struct conn *c, const char *buf, size_t len)
{
    c->resp_bytes += len;
    while (len > 0) {
        if (c->answered == c->depth) { /* bytes nobody asked for */
            conn_replace(cl, c);
            return;
        }
        size_t used = 0;
        enum parse_result r = parser_feed(&c->p, buf, len, &used);
        if (r == PR_ERROR) {
            conn_lost(cl, c, L_PROTOCOL);
            return;
        }
        buf += used;
        len -= used;
        if (r == PR_DONE && !response_done(cl, c))
            return;
    }
}

static void conn_ended(struct client *cl, struct conn *c, bool reset)
{
    if (!reset && c->answered < c->depth && c->p.phase == P_BODY_EOF &&
        !response_done(cl, c)) /* a close-delimited body ends here */
        return;
    if (c->answered < c->depth)
        conn_lost(cl, c, reset ? L_RESET : L_EOF);
    else
        conn_replace(cl, c);
}

static void conn_readable(struct client *cl, struct conn *c)
{
    char buf[16384];
    while (c->state == C_OPEN) {
        ssize_t n = sock_recv(c->fd, buf, sizeof buf);
        if (n == RECV_AGAIN)
            return;
        if (n <= 0) {
            conn_ended(cl, c, n == RECV_RESET);
            return;
        }
        conn_feed(cl, c, buf, (size_t)n);
    }
}

static void conn_event(struct client *cl, struct conn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        if (sock_connect_result(c->fd, events) != 0) {
            connect_failed(cl, c);
            return;
        }
        c->state = C_OPEN;
        batch_send(cl, c);
        return;
    }
    if ((events & EPOLLOUT) && c->out_off < c->out_len) {
        conn_flush(cl, c);
        if (c->state != C_OPEN)
            return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(cl, c);
}

/* ---- the run ------------------------------------------------------------- */

static bool owes(const struct conn *c)
{
    return c->state != C_DOWN && c->answered < c->depth;
}

/* Timeouts, reconnects due, and connections to start. */
static void sweep(struct client *cl, uint64_t now)
{
    uint64_t timeout = (uint64_t)cl->o.timeout_ms * MS;
    for (int i = 0; i < cl->o.connections; i++) {
        struct conn *c = &cl->conns[i];
        if (c->state == C_CONNECTING && now - c->sent_ns >= timeout)
            connect_failed(cl, c);
        else if (owes(c) && now - c->sent_ns >= timeout)
            conn_lost(cl, c, L_TIMEOUT);
        else if (c->state == C_DOWN && now >= c->reconnect_at_ns)
            conn_open(cl, c);
    }
}

static void maybe_sighup(struct client *cl, uint64_t now)
{
    if (cl->o.sighup_pid <= 0 || !cl->issuing || now < cl->next_hup_ns)
        return;
    if (kill((pid_t)cl->o.sighup_pid, SIGHUP) == 0)
        cl->sighups++;
    cl->next_hup_ns = now + (uint64_t)cl->o.sighup_every_ms * MS;
}

static bool any_owed(const struct client *cl)
{
    for (int i = 0; i < cl->o.connections; i++)
        if (owes(&cl->conns[i]) || cl->conns[i].state == C_CONNECTING)
            return true;
    return false;
}

static void run(struct client *cl)
{
    uint64_t start = now_ns();
    uint64_t until = start + (uint64_t)cl->o.duration_ms * MS;
    uint64_t hard = until + (uint64_t)cl->o.timeout_ms * MS + 1000 * MS;
    cl->issuing = true;
    cl->next_hup_ns = start + (uint64_t)cl->o.sighup_every_ms * MS;
    for (int i = 0; i < cl->o.connections; i++)
        conn_open(cl, &cl->conns[i]);
    struct epoll_event events[256];
    uint64_t last_sweep = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (cl->issuing && now >= until)
            cl->issuing = false;
        if (!cl->issuing && !any_owed(cl))
            break;
        if (now >= hard)
            break;
        maybe_sighup(cl, now);
        if (now - last_sweep >= MS) {
            sweep(cl, now);
            last_sweep = now;
        }
        int n = epoll_wait(cl->epfd, events, 256, 1);
        for (int i = 0; i < n; i++)
            conn_event(cl, events[i].data.ptr, events[i].events);
    }
    for (int i = 0; i < cl->o.connections; i++) {
        struct conn *c = &cl->conns[i];
        settle_rest(cl, c, L_TIMEOUT, false); /* the hard deadline */
        conn_close(cl, c);
    }
}

/* ---- output -------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of the sorted samples, in milliseconds. */
static double quantile_ms(const struct latencies *l, double q)
{
    if (l->len == 0)
        return 0.0;
    size_t i = (size_t)(q * (double)(l->len - 1) + 0.5);
    return l->us[i] / 1000.0;
}

static void write_losses(FILE *f, const struct tally *t)
{
    fprintf(f, "\"lost\": %" PRIu64 ", \"lost_by\": {", t->lost);
    for (int i = 0; i < L_COUNT; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", loss_names[i], t->lost_by[i]);
    fprintf(f, "}, \"retryable\": %" PRIu64 "}", t->retryable);
}

static void write_json(FILE *f, const struct client *cl, double elapsed_ms)
{
    const struct options *o = &cl->o;
    const struct tally *in = &cl->innocent, *ft = &cl->fault;
    fprintf(f, "{\n  \"host\": \"%s\", \"port\": %d, \"connections\": %d,\n", o->host, o->port,
            o->connections);
    fprintf(f,
            "  \"duration_ms\": %ld, \"elapsed_ms\": %.1f, \"timeout_ms\": %ld, \"seed\": %" PRIu64
            ",\n",
            o->duration_ms, elapsed_ms, o->timeout_ms, o->seed);
    fprintf(f,
            "  \"fault_permille\": %d, \"hang\": %s, \"sighup_every_ms\": %ld, "
            "\"sighups_sent\": %" PRIu64 ",\n",
            o->fault_permille, o->hang ? "true" : "false",
            o->sighup_pid > 0 ? o->sighup_every_ms : 0, cl->sighups);
    fprintf(f, "  \"connections_by_kind\": {");
    for (int k = 0; k < K_COUNT; k++)
        fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", kind_names[k], cl->by_kind[k]);
    fprintf(f, "},\n");
    fprintf(f,
            "  \"innocent\": {\"sent\": %" PRIu64 ", \"answered\": %" PRIu64
            ", \"wrong_status\": %" PRIu64 ", ",
            in->sent, in->expected, in->status_503 + in->other_status);
    write_losses(f, in);
    fprintf(f,
            ",\n  \"faults\": {\"sent\": %" PRIu64 ", \"answered_500\": %" PRIu64
            ", \"answered_503\": %" PRIu64 ", \"other_status\": %" PRIu64 ", ",
            ft->sent, ft->expected, ft->status_503, ft->other_status);
    write_losses(f, ft);
    fprintf(f, ",\n  \"connect_failures\": %" PRIu64 ",\n", cl->connect_failures);
    fprintf(f,
            "  \"innocent_latency_ms\": {\"samples\": %zu, \"p50\": %.3f, \"p99\": %.3f, "
            "\"max\": %.3f}\n}\n",
            cl->lat.len, quantile_ms(&cl->lat, 0.5), quantile_ms(&cl->lat, 0.99),
            quantile_ms(&cl->lat, 1.0));
}

static void write_summary(const struct client *cl, double elapsed_ms)
{
    const struct tally *in = &cl->innocent, *ft = &cl->fault;
    fprintf(stderr,
            "harsh: %.0f ms, %d connections, %" PRIu64 " SIGHUPs: innocent sent %" PRIu64
            " answered %" PRIu64 " wrong status %" PRIu64 " lost %" PRIu64 " (retryable %" PRIu64
            "); faults sent %" PRIu64 " 500 %" PRIu64 " 503 %" PRIu64 " other %" PRIu64
            " lost %" PRIu64 "; connect failures %" PRIu64 "; innocent p50 %.1f ms p99 %.1f ms\n",
            elapsed_ms, cl->o.connections, cl->sighups, in->sent, in->expected,
            in->status_503 + in->other_status, in->lost, in->retryable, ft->sent, ft->expected,
            ft->status_503, ft->other_status, ft->lost, cl->connect_failures,
            quantile_ms(&cl->lat, 0.5), quantile_ms(&cl->lat, 0.99));
}

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: harsh [--host H] --port N [--connections C] [--duration-ms D]\n"
               "             [--fault-permille P] [--fault-routes /a,/b,...] [--hang]\n"
               "             [--mix FRESH,KEEPALIVE,PIPELINED,HALFCLOSED] [--timeout-ms T]\n"
               "             [--sighup-pid PID [--sighup-every-ms N]] [--seed S] [--json FILE]\n");
}

/* A comma-separated list of routes into o->routes (the string is kept). */
static bool parse_routes(char *list, struct options *o)
{
    o->nroutes = 0;
    for (char *r = strtok(list, ","); r; r = strtok(NULL, ",")) {
        if (r[0] != '/' || strlen(r) > 200 || strpbrk(r, " \r\n") || o->nroutes == MAX_ROUTES)
            return false;
        o->routes[o->nroutes++] = r;
    }
    return o->nroutes > 0;
}

static bool parse_mix(char *s, struct options *o)
{
    long total = 0;
    char *w = strtok(s, ",");
    for (int k = 0; k < K_COUNT; k++, w = strtok(NULL, ",")) {
        if (!w || !parse_long(w, 0, 1000, &o->mix[k]))
            return false;
        total += o->mix[k];
    }
    return w == NULL && total > 0;
}

static void default_options(struct options *o)
{
    *o = (struct options){.host = "127.0.0.1",
                          .connections = 256,
                          .duration_ms = 10000,
                          .fault_permille = 300,
                          .timeout_ms = 5000,
                          .seed = 1,
                          .sighup_every_ms = 1000,
                          .mix = {1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof default_routes / sizeof *default_routes; i++)
        o->routes[o->nroutes++] = default_routes[i];
}

static bool parse_int(const char *s, long min, long max, int *out)
{
    long v;
    if (!parse_long(s, min, max, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool parse_option(int ch, struct options *o)
{
    long v;
    switch (ch) {
    case 'h':
        o->host = optarg;
        return true;
    case 'p':
        return parse_int(optarg, 1, 65535, &o->port);
    case 'c':
        return parse_int(optarg, 1, 100000, &o->connections);
    case 'd':
        return parse_long(optarg, 1, 86400000, &o->duration_ms);
    case 'P':
        return parse_int(optarg, 0, 1000, &o->fault_permille);
    case 'r':
        return parse_routes(optarg, o);
    case 'g':
        o->hang = true;
        return true;
    case 'm':
        return parse_mix(optarg, o);
    case 't':
        return parse_long(optarg, 1, 3600000, &o->timeout_ms);
    case 'u':
        return parse_long(optarg, 1, INT_MAX, &o->sighup_pid);
    case 'e':
        return parse_long(optarg, 1, 3600000, &o->sighup_every_ms);
    case 's':
        if (!parse_long(optarg, 0, LONG_MAX, &v))
            return false;
        o->seed = (uint64_t)v;
        return true;
    case 'j':
        o->json = optarg;
        return true;
    default:
        return false;
    }
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},
        {"port", required_argument, 0, 'p'},
        {"connections", required_argument, 0, 'c'},
        {"duration-ms", required_argument, 0, 'd'},
        {"fault-permille", required_argument, 0, 'P'},
        {"fault-routes", required_argument, 0, 'r'},
        {"hang", no_argument, 0, 'g'},
        {"mix", required_argument, 0, 'm'},
        {"timeout-ms", required_argument, 0, 't'},
        {"sighup-pid", required_argument, 0, 'u'},
        {"sighup-every-ms", required_argument, 0, 'e'},
        {"seed", required_argument, 0, 's'},
        {"json", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    default_options(o);
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'H') {
            usage(stdout);
            exit(0);
        }
        if (!parse_option(ch, o))
            goto bad;
    }
    if (optind != argc || o->port == 0)
        goto bad;
    if (o->hang && o->nroutes < MAX_ROUTES)
        o->routes[o->nroutes++] = "/hang";
    return 0;
bad:
    usage(stderr);
    return -1;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static struct client cl; /* zeroed */
    if (parse_options(argc, argv, &cl.o) < 0)
        return 2;
    cl.epfd = client_init("harsh", &cl.target, cl.o.host, cl.o.port, cl.o.seed);
    if (cl.epfd < 0)
        return 2;
    cl.conns = calloc((size_t)cl.o.connections, sizeof *cl.conns);
    if (!cl.conns) {
        perror("harsh");
        return 2;
    }
    for (int i = 0; i < cl.o.connections; i++)
        cl.conns[i].fd = -1;
    uint64_t start = now_ns();
    run(&cl);
    double elapsed_ms = (double)(now_ns() - start) / 1e6;
    if (cl.lat.len > 0)
        qsort(cl.lat.us, cl.lat.len, sizeof *cl.lat.us, cmp_u32);
    FILE *out = output_open(cl.o.json);
    write_json(out, &cl, elapsed_ms);
    output_close(out);
    write_summary(&cl, elapsed_ms);
    free(cl.lat.us);
    free(cl.conns);
    close(cl.epfd);
    return 0;
}
