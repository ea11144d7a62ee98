/*
 * chaos: a keep-alive HTTP/1.1 load client that classifies every request.
 *
 * It keeps C connections busy, one request in flight on each. A fraction
 * P/1000 of the requests go to the fault path, the rest to "/". Each
 * request ends up in exactly one bucket:
 *
 *   good          "/" answered 200
 *   innocent      "/" lost any other way: another status, a reset, EOF
 *                 before the response was complete, a timeout, garbage
 *   contained     fault path answered 500
 *   uncontained   fault path answered any other way
 *
 * and, outside those buckets, "retryable closes": the connection was idle
 * (its previous response complete) and the server closed it (EOF or reset)
 * before any byte of the answer to our next request arrived. RFC 9112
 * section 9.3.1 lets a client retry such a request, so it is not a
 * casualty: it is counted here and retried once on a new connection, and
 * the retry is classified like any other request. Failed connects are
 * counted apart too (no request was sent on them).
 *
 * Modes:
 *   duration (default)  run for --duration-ms, then let in-flight requests
 *                       finish (each within its own --timeout-ms).
 *   --requests N        send exactly N requests to "/" (no faults) and stop.
 *   --sync              with --requests: connect, send --warmup W requests
 *                       on the same connections, print "ready" on stdout and
 *                       wait for a line on stdin; then send the N requests,
 *                       print "done" and wait for a line again before
 *                       closing. Used by bench/counts to zero and dump the
 *                       server's counters around exactly N requests.
 *
 * Always bounded in time: whatever the server does, the run ends by a hard
 * deadline (duration + timeout + 1 s), and what is still in flight then is
 * a timeout.
 *
 * Output: a JSON object (--json FILE, or stdout) and a summary on stderr.
 * Exit status 0 unless the run could not happen (bad options, no socket).
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o chaos chaos.c common.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_FAULT_TIMES 10000    /* fault_times_ns entries kept */
#define RECONNECT_BACKOFF_NS 10000000ull /* 10 ms after a failed connect */

/* ---- options ------------------------------------------------------------ */

struct options {
    const char *host;
    int port;
    int connections;
    long duration_ms;
    const char *fault_path;
    int fault_permille;
    long timeout_ms;
    const char *json;
    uint64_t seed;
    long requests; /* 0: duration mode */
    long warmup;
    bool sync;
};

/* ---- connections ---------------------------------------------------------- */

enum conn_state { S_DOWN, S_CONNECTING, S_WRITING, S_READING, S_PARKED };

/* How a request in flight failed. */
enum failure { F_STATUS, F_RESET, F_EOF, F_TIMEOUT, F_PROTOCOL, F_COUNT };
static const char *const failure_names[F_COUNT] = {"status", "reset", "eof", "timeout",
                                                   "protocol"};

struct conn {
    int fd;
    enum conn_state state;
    bool reused;        /* a response completed on this connection already */
    bool in_flight;     /* a request is on this connection */
    bool is_fault;      /* ...to the fault path */
    bool is_retry;      /* ...retrying a retryable close */
    bool pending_retry; /* the next request is that retry */
    bool pending_fault;
    uint64_t deadline_ns; /* request timeout */
    uint64_t reconnect_at_ns;
    size_t resp_bytes;    /* bytes of the current response received */
    uint32_t events;      /* what epoll watches for on fd */
    size_t req_len, req_off;
    char req[512];
    struct parser p;
};

struct stats {
    uint64_t requests, good, contained;
    uint64_t innocent, innocent_by[F_COUNT];
    uint64_t uncontained, uncontained_by[F_COUNT];
    uint64_t retryable_closes;
    uint64_t retryable_by_reset; /* the rest were EOF */
    uint64_t connect_failures;
    uint64_t connect_refused, connect_timeouts; /* the rest: other errors */
    uint64_t fault_requests;
    uint64_t fault_times_dropped;
    size_t fault_times_len;
    uint64_t fault_times[MAX_FAULT_TIMES];
};

struct client {
    struct options o;
    int epfd;
    struct target target;
    struct conn *conns;
    struct stats st;
    /* What may still be sent. */
    bool issuing;        /* new (non-retry) requests may start */
    long budget;         /* requests left to issue in the current phase; -1: unlimited */
    long outstanding;    /* in flight + pending retries */
};

static void conn_close(struct client *cl, struct conn *c)
{
    sock_close(cl->epfd, &c->fd, &c->events);
    c->state = S_DOWN;
    c->reused = false;
}

/* Watch fd for `events`; a system call only when that changes. */
static void watch(struct client *cl, struct conn *c, uint32_t events)
{
    sock_watch(cl->epfd, c->fd, c, &c->events, events);
}

static void record_outcome(struct client *cl, struct conn *c, bool ok, enum failure why)
{
    struct stats *st = &cl->st;
    st->requests++;
    if (c->is_fault) {
        st->fault_requests++;
        if (ok) {
            st->contained++;
            if (st->fault_times_len < MAX_FAULT_TIMES)
                st->fault_times[st->fault_times_len++] = now_ns();
            else
                st->fault_times_dropped++;
        } else {
            st->uncontained++;
            st->uncontained_by[why]++;
        }
    } else if (ok) {
        st->good++;
    } else {
        st->innocent++;
        st->innocent_by[why]++;
    }
    c->in_flight = false;
    cl->outstanding--;
}

static void conn_start(struct client *cl, struct conn *c);

/* A connect failed (err: an errno, or ETIMEDOUT for our own timeout): count
 * it and try again after a short pause (a pending retry stays pending). */
static void connect_failed(struct client *cl, struct conn *c, int err)
{
    cl->st.connect_failures++;
    if (err == ECONNREFUSED)
        cl->st.connect_refused++;
    else if (err == ETIMEDOUT)
        cl->st.connect_timeouts++;
    conn_close(cl, c);
    c->reconnect_at_ns = now_ns() + RECONNECT_BACKOFF_NS;
}
static void conn_send_next(struct client *cl, struct conn *c);

/*
 * The request in flight on c failed. A close by the server of a reused,
 * idle connection before any response byte is the retryable case; the rest
 * are classified now.
 */
static void conn_fail(struct client *cl, struct conn *c, enum failure why)
{
    bool retryable = c->in_flight && c->reused && c->resp_bytes == 0 && !c->is_retry &&
                     (why == F_EOF || why == F_RESET);
    if (retryable) {
        cl->st.retryable_closes++;
        if (why == F_RESET)
            cl->st.retryable_by_reset++;
        c->in_flight = false;
        c->pending_retry = true; /* still outstanding: the retry will settle it */
        c->pending_fault = c->is_fault;
    } else if (c->in_flight) {
        record_outcome(cl, c, false, why);
    }
    conn_close(cl, c);
    conn_start(cl, c);
}

/* Does this connection have anything to send now? */
static bool has_work(struct client *cl, struct conn *c)
{
    return c->pending_retry || (cl->issuing && cl->budget != 0);
}

static void conn_start(struct client *cl, struct conn *c)
{
    if (!has_work(cl, c)) {
        c->state = S_DOWN;
        return;
    }
    int rc = sock_connect(&cl->target, &c->fd);
    if (rc != 0 && rc != -EINPROGRESS) {
        connect_failed(cl, c, -rc);
        return;
    }
    c->reused = false;
    c->reconnect_at_ns = 0;
    if (rc == 0) {
        conn_send_next(cl, c);
        return;
    }
    c->state = S_CONNECTING;
    c->deadline_ns = now_ns() + (uint64_t)cl->o.timeout_ms * 1000000ull; /* connect timeout */
    watch(cl, c, EPOLLOUT);
}

static void conn_write(struct client *cl, struct conn *c)
{
    switch (sock_send(c->fd, c->req, c->req_len, &c->req_off)) {
    case SEND_AGAIN:
        c->state = S_WRITING;
        watch(cl, c, EPOLLOUT | EPOLLIN);
        return;
    case SEND_FAILED: /* EPIPE or ECONNRESET: the server closed the connection. */
        conn_fail(cl, c, F_RESET);
        return;
    case SEND_DONE:
        break;
    }
    c->state = S_READING;
    watch(cl, c, EPOLLIN);
}

/* Start the next request on an established connection, or park it. */
static void conn_send_next(struct client *cl, struct conn *c)
{
    bool fault;
    if (c->pending_retry) {
        fault = c->pending_fault;
        c->pending_retry = false;
        c->is_retry = true;
    } else if (cl->issuing && cl->budget != 0) {
        fault = cl->o.fault_permille > 0 && (int)(rng_next() % 1000) < cl->o.fault_permille;
        if (cl->budget > 0)
            cl->budget--;
        cl->outstanding++;
        c->is_retry = false;
    } else {
        /* Nothing to send: keep the connection open but idle. */
        c->state = S_PARKED;
        watch(cl, c, EPOLLIN);
        return;
    }
    c->is_fault = fault;
    c->in_flight = true;
    c->resp_bytes = 0;
    parser_reset(&c->p);
    int n = snprintf(c->req, sizeof c->req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                     fault ? cl->o.fault_path : "/", cl->target.host_header);
    c->req_len = (size_t)n;
    c->req_off = 0;
    c->deadline_ns = now_ns() + (uint64_t)cl->o.timeout_ms * 1000000ull;
    conn_write(cl, c);
}

static void conn_response_done(struct client *cl, struct conn *c, bool server_closes)
{
    int want = c->is_fault ? 500 : 200;
    bool ok = c->p.status == want;
    record_outcome(cl, c, ok, F_STATUS);
    if (server_closes || c->p.close) {
        conn_close(cl, c);
        conn_start(cl, c);
        return;
    }
    c->reused = true;
    conn_send_next(cl, c);
}

static void conn_readable(struct client *cl, struct conn *c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = sock_recv(c->fd, buf, sizeof buf);
        if (n == RECV_AGAIN)
            return;
        if (n <= 0) {
            bool reset = n == RECV_RESET;
            if (c->state == S_PARKED) {
                conn_close(cl, c); /* idle, nothing lost */
                conn_start(cl, c);
            } else if (!reset && c->in_flight && c->p.phase == P_BODY_EOF) {
                conn_response_done(cl, c, true); /* close-delimited body */
            } else {
                conn_fail(cl, c, reset ? F_RESET : F_EOF);
            }
            return;
        }
        if (!c->in_flight) {
            /* Bytes nobody asked for on an idle connection. */
            conn_close(cl, c);
            conn_start(cl, c);
            return;
        }
        c->resp_bytes += (size_t)n;
        size_t used = 0;
        enum parse_result r = parser_feed(&c->p, buf, (size_t)n, &used);
        if (r == PR_ERROR) {
            conn_fail(cl, c, F_PROTOCOL);
            return;
        }
        if (r == PR_DONE) {
            /* Extra bytes after a complete response: we never pipeline, so
             * the connection is out of step; finish this request and drop it. */
            conn_response_done(cl, c, used < (size_t)n);
            return;
        }
    }
}

static void conn_event(struct client *cl, struct conn *c, uint32_t events)
{
    if (c->state == S_CONNECTING) {
        int err = sock_connect_result(c->fd, events);
        if (err != 0) {
            connect_failed(cl, c, err);
            return;
        }
        conn_send_next(cl, c);
        return;
    }
    if (c->state == S_WRITING && (events & EPOLLOUT)) {
        conn_write(cl, c);
        if (c->state != S_READING)
            return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(cl, c);
}

/* Requests past their timeout fail; connections due for a reconnect start. */
static void sweep(struct client *cl, uint64_t now)
{
    for (int i = 0; i < cl->o.connections; i++) {
        struct conn *c = &cl->conns[i];
        if (c->in_flight && now >= c->deadline_ns)
            conn_fail(cl, c, F_TIMEOUT);
        else if (c->state == S_CONNECTING && now >= c->deadline_ns)
            connect_failed(cl, c, ETIMEDOUT);
        else if (c->state == S_DOWN && c->fd < 0 && c->reconnect_at_ns && now >= c->reconnect_at_ns)
            conn_start(cl, c);
        else if (c->state == S_PARKED && has_work(cl, c))
            conn_send_next(cl, c);
        else if (c->state == S_DOWN && c->fd < 0 && !c->reconnect_at_ns && has_work(cl, c))
            conn_start(cl, c);
    }
}

/*
 * Run the loop until `until_ns` (issuing stops there) and then until nothing
 * is outstanding or `hard_ns` passes. With a budget, issuing stops when it
 * is spent and the loop ends when its requests are settled.
 */
static void run_loop(struct client *cl, uint64_t until_ns, uint64_t hard_ns)
{
    struct epoll_event events[256];
    uint64_t last_sweep = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (cl->issuing && now >= until_ns)
            cl->issuing = false;
        if (!cl->issuing || cl->budget == 0) {
            if (cl->outstanding == 0)
                break;
        }
        if (now >= hard_ns) {
            /* Whatever is still in flight timed out; pending retries too. */
            for (int i = 0; i < cl->o.connections; i++) {
                struct conn *c = &cl->conns[i];
                if (c->in_flight)
                    record_outcome(cl, c, false, F_TIMEOUT);
                if (c->pending_retry) {
                    c->pending_retry = false;
                    c->is_fault = c->pending_fault;
                    c->in_flight = true;
                    record_outcome(cl, c, false, F_TIMEOUT);
                }
            }
            break;
        }
        if (now - last_sweep >= 1000000ull) {
            sweep(cl, now);
            last_sweep = now;
        }
        int n = epoll_wait(cl->epfd, events, 256, 1);
        for (int i = 0; i < n; i++)
            conn_event(cl, events[i].data.ptr, events[i].events);
    }
}

/* ---- output -------------------------------------------------------------- */

static double per_1000(uint64_t n, uint64_t total)
{
    return total ? 1000.0 * (double)n / (double)total : 0.0;
}

static void write_json(FILE *f, const struct client *cl, double elapsed_ms)
{
    const struct stats *st = &cl->st;
    const struct options *o = &cl->o;
    double secs = elapsed_ms / 1000.0;
    fprintf(f, "{\n");
    fprintf(f, "  \"host\": \"%s\", \"port\": %d, \"connections\": %d,\n", o->host, o->port,
            o->connections);
    fprintf(f, "  \"fault_path\": \"%s\", \"fault_permille\": %d, \"timeout_ms\": %ld,\n",
            o->fault_path, o->fault_permille, o->timeout_ms);
    fprintf(f, "  \"seed\": %" PRIu64 ", \"duration_ms\": %ld, \"elapsed_ms\": %.1f,\n", o->seed,
            o->requests ? 0 : o->duration_ms, elapsed_ms);
    fprintf(f, "  \"requests\": %" PRIu64 ", \"good\": %" PRIu64 ", \"fault_requests\": %" PRIu64
               ",\n",
            st->requests, st->good, st->fault_requests);
    fprintf(f, "  \"innocent\": %" PRIu64 ", \"contained\": %" PRIu64 ", \"uncontained\": %" PRIu64
               ",\n",
            st->innocent, st->contained, st->uncontained);
    fprintf(f, "  \"retryable_closes\": %" PRIu64 ", \"connect_failures\": %" PRIu64 ",\n",
            st->retryable_closes, st->connect_failures);
    fprintf(f,
            "  \"connect_failures_by\": {\"refused\": %" PRIu64 ", \"timeout\": %" PRIu64
            ", \"other\": %" PRIu64 "},\n",
            st->connect_refused, st->connect_timeouts,
            st->connect_failures - st->connect_refused - st->connect_timeouts);
    fprintf(f, "  \"retryable_by\": {\"eof\": %" PRIu64 ", \"reset\": %" PRIu64 "},\n",
            st->retryable_closes - st->retryable_by_reset, st->retryable_by_reset);
    for (int k = 0; k < 2; k++) {
        const uint64_t *by = k ? st->uncontained_by : st->innocent_by;
        fprintf(f, "  \"%s_by\": {", k ? "uncontained" : "innocent");
        for (int i = 0; i < F_COUNT; i++)
            fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", failure_names[i], by[i]);
        fprintf(f, "},\n");
    }
    fprintf(f, "  \"good_per_sec\": %.1f,\n", secs > 0 ? (double)st->good / secs : 0.0);
    fprintf(f,
            "  \"per_1000\": {\"innocent\": %.4f, \"uncontained\": %.4f, \"retryable_closes\": "
            "%.4f, \"connect_failures\": %.4f},\n",
            per_1000(st->innocent, st->requests), per_1000(st->uncontained, st->requests),
            per_1000(st->retryable_closes, st->requests),
            per_1000(st->connect_failures, st->requests));
    fprintf(f, "  \"fault_times_dropped\": %" PRIu64 ",\n", st->fault_times_dropped);
    fprintf(f, "  \"fault_times_ns\": [");
    for (size_t i = 0; i < st->fault_times_len; i++)
        fprintf(f, "%s%" PRIu64, i ? "," : "", st->fault_times[i]);
    fprintf(f, "]\n}\n");
}

static void write_summary(const struct client *cl, double elapsed_ms)
{
    const struct stats *st = &cl->st;
    fprintf(stderr,
            "chaos: %" PRIu64 " requests in %.0f ms (%.0f good/s): good %" PRIu64
            ", innocent %" PRIu64 " (%.3f/1000), contained %" PRIu64 ", uncontained %" PRIu64
            " (%.3f/1000), retryable closes %" PRIu64 " (%.3f/1000), connect failures %" PRIu64
            "\n",
            st->requests, elapsed_ms,
            elapsed_ms > 0 ? (double)st->good * 1000.0 / elapsed_ms : 0.0, st->good, st->innocent,
            per_1000(st->innocent, st->requests), st->contained, st->uncontained,
            per_1000(st->uncontained, st->requests), st->retryable_closes,
            per_1000(st->retryable_closes, st->requests), st->connect_failures);
    for (int k = 0; k < 2; k++) {
        const uint64_t *by = k ? st->uncontained_by : st->innocent_by;
        if (!(k ? st->uncontained : st->innocent))
            continue;
        fprintf(stderr, "chaos:   %s by cause:", k ? "uncontained" : "innocent");
        for (int i = 0; i < F_COUNT; i++)
            if (by[i])
                fprintf(stderr, " %s %" PRIu64, failure_names[i], by[i]);
        fprintf(stderr, "\n");
    }
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chaos [--host H] --port N [--connections C] [--duration-ms D]\n"
            "             [--fault-path /error] [--fault-permille P] [--timeout-ms T]\n"
            "             [--seed S] [--json FILE]\n"
            "             [--requests N [--warmup W] [--sync]]\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},        {"port", required_argument, 0, 'p'},
        {"connections", required_argument, 0, 'c'}, {"duration-ms", required_argument, 0, 'd'},
        {"fault-path", required_argument, 0, 'f'},  {"fault-permille", required_argument, 0, 'P'},
        {"timeout-ms", required_argument, 0, 't'},  {"json", required_argument, 0, 'j'},
        {"seed", required_argument, 0, 's'},        {"requests", required_argument, 0, 'n'},
        {"warmup", required_argument, 0, 'w'},      {"sync", no_argument, 0, 'S'},
        {"help", no_argument, 0, 'H'},              {0, 0, 0, 0},
    };
    *o = (struct options){.host = "127.0.0.1",
                          .connections = 32,
                          .duration_ms = 10000,
                          .fault_path = "/error",
                          .timeout_ms = 2000,
                          .seed = 1};
    bool duration_given = false;
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': o->host = optarg; break;
        case 'p': if (!parse_long(optarg, 1, 65535, &v)) goto bad; o->port = (int)v; break;
        case 'c': if (!parse_long(optarg, 1, 100000, &v)) goto bad; o->connections = (int)v; break;
        case 'd': if (!parse_long(optarg, 1, 86400000, &v)) goto bad; o->duration_ms = v; duration_given = true; break;
        case 'f': if (optarg[0] != '/' || strlen(optarg) > 200 || strpbrk(optarg, " \r\n")) goto bad; o->fault_path = optarg; break;
        case 'P': if (!parse_long(optarg, 0, 1000, &v)) goto bad; o->fault_permille = (int)v; break;
        case 't': if (!parse_long(optarg, 1, 3600000, &v)) goto bad; o->timeout_ms = v; break;
        case 'j': o->json = optarg; break;
        case 's': if (!parse_long(optarg, 0, LONG_MAX, &v)) goto bad; o->seed = (uint64_t)v; break;
        case 'n': if (!parse_long(optarg, 1, LONG_MAX, &v)) goto bad; o->requests = v; break;
        case 'w': if (!parse_long(optarg, 0, LONG_MAX, &v)) goto bad; o->warmup = v; break;
        case 'S': o->sync = true; break;
        case 'H': usage(stdout); exit(0);
        default: goto bad;
        }
    }
    if (optind != argc || o->port == 0)
        goto bad;
    if (o->requests) {
        o->fault_permille = 0; /* exact counts: "/" only */
        if (!duration_given)
            o->duration_ms = 600000; /* the hard limit of a counted run */
    }
    if ((o->sync || o->warmup) && !o->requests) {
        fprintf(stderr, "chaos: --sync and --warmup need --requests\n");
        return -1;
    }
    return 0;
bad:
    usage(stderr);
    return -1;
}

/* --sync: say `word` on stdout, then block until stdin gives a line (or EOF). */
static void handshake(const char *word)
{
    printf("%s\n", word);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return;
}

int main(int argc, char **argv)
{
    static struct client cl; /* large (stats); zeroed */
    if (parse_options(argc, argv, &cl.o) < 0)
        return 2;
    cl.epfd = client_init("chaos", &cl.target, cl.o.host, cl.o.port, cl.o.seed);
    if (cl.epfd < 0)
        return 2;
    cl.conns = calloc((size_t)cl.o.connections, sizeof *cl.conns);
    if (!cl.conns) {
        perror("chaos");
        return 2;
    }
    for (int i = 0; i < cl.o.connections; i++)
        cl.conns[i].fd = -1;

    uint64_t timeout_ns = (uint64_t)cl.o.timeout_ms * 1000000ull;
    uint64_t limit_ns = (uint64_t)cl.o.duration_ms * 1000000ull;
    uint64_t start = now_ns();

    if (cl.o.requests && cl.o.warmup > 0) {
        /* Warm-up on the connections the counted phase will use; not counted. */
        cl.issuing = true;
        cl.budget = cl.o.warmup;
        for (int i = 0; i < cl.o.connections; i++)
            conn_start(&cl, &cl.conns[i]);
        run_loop(&cl, start + limit_ns, start + limit_ns + timeout_ns);
        memset(&cl.st, 0, sizeof cl.st);
    }
    if (cl.o.sync)
        handshake("ready");

    start = now_ns();
    cl.issuing = true;
    cl.budget = cl.o.requests ? cl.o.requests : -1;
    for (int i = 0; i < cl.o.connections; i++) {
        struct conn *c = &cl.conns[i];
        if (c->state == S_PARKED)
            conn_send_next(&cl, c);
        else if (c->state == S_DOWN)
            conn_start(&cl, c);
    }
    uint64_t hard = start + limit_ns + timeout_ns + 1000000000ull;
    run_loop(&cl, start + limit_ns, hard);
    double elapsed_ms = (double)(now_ns() - start) / 1e6;
    if (cl.o.sync)
        handshake("done");
    for (int i = 0; i < cl.o.connections; i++)
        conn_close(&cl, &cl.conns[i]);

    FILE *out = output_open(cl.o.json);
    write_json(out, &cl, elapsed_ms);
    output_close(out);
    write_summary(&cl, elapsed_ms);
    free(cl.conns);
    close(cl.epfd);
    return 0;
}
