/*
 * reuse: requests on reused keep-alive connections while the server's
 * workers come and go (issue 13). C keep-alive connections (--connections,
 * default 40), each on its own persistent connection, one request at a time:
 * idle a random 0 to --idle-max-ms (default 200, seeded), then GET / or
 * POST / with a small body (at random), read the whole response, and again.
 * An idle connection is not watched, as a client that keeps it in a pool
 * does not watch it: its next request is sent whatever the server did
 * meanwhile.
 *
 * Meanwhile, on a schedule of their own: with --fault-every-ms N, a fault
 * route (--fault-routes, in turn; default /segv) on a fresh connection
 * (Connection: close) every N ms; with --signal-pid PID --signal-every-ms N,
 * SIGHUP to PID every N ms (a bulwark primary: a rolling restart; an nginx
 * master: a reload).
 *
 * Each request on a reused connection (not the first on its connection)
 * ends in one bucket: answered 200; another status; lost: EOF ("eof") or a
 * reset ("reset") before any byte of its response, or timed out
 * ("timeout"), or the connection ended inside the response ("partial"),
 * or bytes that are no response ("protocol"). For the lost ones, whether
 * the server's FIN had already arrived when the request was sent (a peek
 * just before sending: "fin_before_send"; a pool that checks its
 * connections would have reconnected instead) is counted too. A response
 * that says Connection: close ends its connection, and the client
 * reconnects ("close_responses"). First requests on a connection are
 * counted apart, and so are the fault requests ("answered": 500 for them,
 * 200 for the others).
 *
 * Bounded in time: after --duration-ms nothing new starts; what is in
 * flight gets --timeout-ms; a hard deadline ends the run.
 *
 * Output: a JSON object (--json FILE, or stdout), a summary on stderr.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o reuse reuse.c common.c
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

#define MS 1000000ull
#define MAX_ROUTES 16
#define MAX_FAULTS 64 /* fault connections in flight at once */
#define MAX_REQUEST (200 + HOST_HEADER_MAX + 256)
#define RECONNECT_BACKOFF_NS (10 * MS)

struct options {
    const char *host;
    int port;
    int connections;
    long duration_ms;
    long idle_max_ms;
    long timeout_ms;
    long fault_every_ms;
    long signal_pid;
    long signal_every_ms;
    uint64_t seed;
    const char *json;
    const char *routes[MAX_ROUTES];
    int nroutes;
};

enum loss { L_EOF, L_RESET, L_TIMEOUT, L_PARTIAL, L_PROTOCOL, L_COUNT };
static const char *const loss_names[L_COUNT] = {"eof", "reset", "timeout", "partial", "protocol"};

struct tally {
    uint64_t sent, answered, other_status; /* answered: 200, or 500 for a fault */
    uint64_t lost, lost_by[L_COUNT], fin_before_send;
};

enum state { S_DOWN, S_CONNECTING, S_WAITING, S_IDLE };

struct conn {
    int fd;
    enum state state;
    bool fault;     /* a fault request's connection */
    uint64_t done;  /* responses on this connection */
    bool fin_seen;  /* the server's FIN was there when the request was sent */
    size_t resp_bytes;
    uint64_t sent_ns, wake_ns, reconnect_ns;
    uint32_t events;
    size_t out_len, out_off;
    char out[MAX_REQUEST];
    struct parser p;
};

struct client {
    struct options o;
    struct target target;
    int epfd;
    bool issuing;
    struct conn *conns;
    struct conn faults[MAX_FAULTS];
    int next_route;
    struct tally reused, first, fault;
    uint64_t unsolicited; /* bytes that answer no request */
    uint64_t fault_connect_failures;
    uint64_t close_responses, connect_failures, fault_slots_full, signals, posts, gets;
    uint64_t next_fault_ns, next_signal_ns;
};

static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

static struct tally *tally_of(struct client *cl, const struct conn *c)
{
    return c->fault ? &cl->fault : c->done > 0 ? &cl->reused : &cl->first;
}

static void watch(struct client *cl, struct conn *c, uint32_t events)
{
    sock_watch(cl->epfd, c->fd, c, &c->events, events);
}

/* Stop watching an idle connection (sock_watch only adds or modifies). */
static void unwatch(struct client *cl, struct conn *c)
{
    if (c->events) {
        epoll_ctl(cl->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        c->events = 0;
    }
}

static void conn_close(struct client *cl, struct conn *c)
{
    sock_close(cl->epfd, &c->fd, &c->events);
    c->state = S_DOWN;
}

static void conn_open(struct client *cl, struct conn *c);

static void conn_replace(struct client *cl, struct conn *c)
{
    conn_close(cl, c);
    if (!c->fault)
        conn_open(cl, c);
}

static void lose(struct client *cl, struct conn *c, enum loss why)
{
    struct tally *t = tally_of(cl, c);
    t->lost++;
    t->lost_by[why]++;
    if (c->fin_seen)
        t->fin_before_send++;
    conn_replace(cl, c);
}

/* ---- sending ------------------------------------------------------------- */

static void build_request(struct client *cl, struct conn *c)
{
    const char *host = cl->target.host_header;
    int n;
    if (c->fault) {
        const char *route = cl->o.routes[cl->next_route++ % cl->o.nroutes];
        n = snprintf(c->out, sizeof c->out, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     route, host);
    } else if (rng_below(2)) {
        char body[80];
        int len = snprintf(body, sizeof body, "n=%" PRIu64 "&pad=%.*s", c->done,
                           (int)rng_below(48), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        n = snprintf(c->out, sizeof c->out,
                     "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded"
                     "\r\nContent-Length: %d\r\n\r\n%s",
                     host, len, body);
        cl->posts++;
    } else {
        n = snprintf(c->out, sizeof c->out, "GET /?n=%" PRIu64 " HTTP/1.1\r\nHost: %s\r\n\r\n",
                     c->done, host);
        cl->gets++;
    }
    c->out_len = (size_t)n;
    c->out_off = 0;
}

static void conn_flush(struct client *cl, struct conn *c)
{
    switch (sock_send(c->fd, c->out, c->out_len, &c->out_off)) {
    case SEND_AGAIN:
        watch(cl, c, EPOLLOUT | EPOLLIN);
        return;
    case SEND_FAILED:
        lose(cl, c, L_RESET);
        return;
    case SEND_DONE:
        watch(cl, c, EPOLLIN);
        return;
    }
}

static void send_request(struct client *cl, struct conn *c)
{
    c->fin_seen = false;
    if (c->done > 0) {
        /* Only for the tally: was the server's FIN (or a reset) already
         * here? The request goes out anyway. */
        char b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            c->fin_seen = true;
        else if (n > 0) { /* bytes nobody asked for */
            cl->unsolicited++;
            conn_replace(cl, c);
            return;
        }
    }
    build_request(cl, c);
    tally_of(cl, c)->sent++;
    parser_reset(&c->p);
    c->resp_bytes = 0;
    c->sent_ns = now_ns();
    c->state = S_WAITING;
    conn_flush(cl, c);
}

static void conn_open(struct client *cl, struct conn *c)
{
    c->reconnect_ns = 0;
    c->done = 0;
    if (!cl->issuing)
        return;
    int rc = sock_connect(&cl->target, &c->fd);
    if (rc != 0 && rc != -EINPROGRESS) {
        cl->connect_failures++;
        c->state = S_DOWN;
        c->reconnect_ns = now_ns() + RECONNECT_BACKOFF_NS;
        return;
    }
    c->sent_ns = now_ns();
    if (rc == 0) {
        send_request(cl, c);
        return;
    }
    c->state = S_CONNECTING;
    watch(cl, c, EPOLLOUT);
}

/* ---- receiving ----------------------------------------------------------- */

static void response_done(struct client *cl, struct conn *c, size_t left)
{
    struct tally *t = tally_of(cl, c);
    if (c->p.status == (c->fault ? 500 : 200))
        t->answered++;
    else
        t->other_status++;
    c->done++;
    if (c->fault) {
        conn_close(cl, c);
        return;
    }
    if (left > 0) { /* more bytes than the response: nobody asked for them */
        cl->unsolicited++;
        conn_replace(cl, c);
        return;
    }
    if (c->p.close) {
        cl->close_responses++;
        conn_replace(cl, c);
        return;
    }
    unwatch(cl, c);
    c->state = S_IDLE;
    c->wake_ns = now_ns() + rng_below((uint64_t)cl->o.idle_max_ms * 1000 + 1) * 1000;
}

static void conn_readable(struct client *cl, struct conn *c)
{
    char buf[16384];
    while (c->state == S_WAITING) {
        ssize_t n = sock_recv(c->fd, buf, sizeof buf);
        if (n == RECV_AGAIN)
            return;
        if (n <= 0) {
            if (n == 0 && c->p.phase == P_BODY_EOF) { /* a close-delimited body */
                response_done(cl, c, 0);
                if (c->state == S_IDLE)
                    conn_replace(cl, c);
            } else if (c->resp_bytes > 0) {
                lose(cl, c, L_PARTIAL);
            } else {
                lose(cl, c, n == 0 ? L_EOF : L_RESET);
            }
            return;
        }
        c->resp_bytes += (size_t)n;
        size_t used = 0;
        enum parse_result r = parser_feed(&c->p, buf, (size_t)n, &used);
        if (r == PR_ERROR) {
            lose(cl, c, L_PROTOCOL);
            return;
        }
        if (r == PR_DONE) {
            response_done(cl, c, (size_t)n - used);
            return;
        }
    }
}

static void conn_event(struct client *cl, struct conn *c, uint32_t events)
{
    if (c->state == S_CONNECTING) {
        if (sock_connect_result(c->fd, events) != 0) {
            if (c->fault)
                cl->fault_connect_failures++;
            else
                cl->connect_failures++;
            conn_close(cl, c);
            c->reconnect_ns = now_ns() + RECONNECT_BACKOFF_NS;
            return;
        }
        send_request(cl, c);
        return;
    }
    if (c->state != S_WAITING)
        return;
    if ((events & EPOLLOUT) && c->out_off < c->out_len) {
        conn_flush(cl, c);
        if (c->state != S_WAITING)
            return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(cl, c);
}

/* ---- the run ------------------------------------------------------------- */

static void start_fault(struct client *cl)
{
    for (int i = 0; i < MAX_FAULTS; i++) {
        struct conn *c = &cl->faults[i];
        if (c->state != S_DOWN)
            continue;
        c->fault = true;
        c->done = 0;
        c->fin_seen = false;
        int rc = sock_connect(&cl->target, &c->fd);
        if (rc != 0 && rc != -EINPROGRESS) {
            cl->fault_connect_failures++;
            return;
        }
        c->sent_ns = now_ns();
        if (rc == 0) {
            send_request(cl, c);
        } else {
            c->state = S_CONNECTING;
            watch(cl, c, EPOLLOUT);
        }
        return;
    }
    cl->fault_slots_full++;
}

/* now - then, 0 if `then` is later (stamped after `now` was read). */
static uint64_t since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

static void sweep(struct client *cl, uint64_t now)
{
    uint64_t timeout = (uint64_t)cl->o.timeout_ms * MS;
    for (int i = 0; i < cl->o.connections + MAX_FAULTS; i++) {
        struct conn *c = i < cl->o.connections ? &cl->conns[i] : &cl->faults[i - cl->o.connections];
        if (c->state == S_CONNECTING && since(now, c->sent_ns) >= timeout) {
            if (c->fault)
                cl->fault_connect_failures++;
            else
                cl->connect_failures++;
            conn_close(cl, c);
            c->reconnect_ns = now + RECONNECT_BACKOFF_NS;
        } else if (c->state == S_WAITING && since(now, c->sent_ns) >= timeout) {
            lose(cl, c, L_TIMEOUT);
        } else if (!c->fault && c->state == S_IDLE && cl->issuing && now >= c->wake_ns) {
            send_request(cl, c);
        } else if (!c->fault && c->state == S_DOWN && cl->issuing && now >= c->reconnect_ns) {
            conn_open(cl, c);
        }
    }
}

static void timed_actions(struct client *cl, uint64_t now)
{
    if (!cl->issuing)
        return;
    if (cl->o.fault_every_ms > 0 && now >= cl->next_fault_ns) {
        start_fault(cl);
        cl->next_fault_ns += (uint64_t)cl->o.fault_every_ms * MS;
    }
    if (cl->o.signal_pid > 0 && now >= cl->next_signal_ns) {
        if (kill((pid_t)cl->o.signal_pid, SIGHUP) == 0)
            cl->signals++;
        cl->next_signal_ns += (uint64_t)cl->o.signal_every_ms * MS;
    }
}

static bool any_owed(const struct client *cl)
{
    for (int i = 0; i < cl->o.connections; i++)
        if (cl->conns[i].state == S_WAITING || cl->conns[i].state == S_CONNECTING)
            return true;
    for (int i = 0; i < MAX_FAULTS; i++)
        if (cl->faults[i].state != S_DOWN)
            return true;
    return false;
}

static void run(struct client *cl)
{
    uint64_t start = now_ns();
    uint64_t until = start + (uint64_t)cl->o.duration_ms * MS;
    uint64_t hard = until + (uint64_t)cl->o.timeout_ms * MS + 1000 * MS;
    cl->issuing = true;
    cl->next_fault_ns = start + (uint64_t)cl->o.fault_every_ms * MS;
    cl->next_signal_ns = start + (uint64_t)cl->o.signal_every_ms * MS;
    for (int i = 0; i < cl->o.connections; i++)
        conn_open(cl, &cl->conns[i]);
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (cl->issuing && now >= until)
            cl->issuing = false;
        if ((!cl->issuing && !any_owed(cl)) || now >= hard)
            break;
        timed_actions(cl, now);
        sweep(cl, now);
        int n = epoll_wait(cl->epfd, events, 256, 1);
        for (int i = 0; i < n; i++)
            conn_event(cl, events[i].data.ptr, events[i].events);
    }
    for (int i = 0; i < cl->o.connections + MAX_FAULTS; i++) {
        struct conn *c = i < cl->o.connections ? &cl->conns[i] : &cl->faults[i - cl->o.connections];
        if (c->state == S_WAITING) {
            struct tally *t = tally_of(cl, c);
            t->lost++;
            t->lost_by[L_TIMEOUT]++; /* the hard deadline */
        }
        conn_close(cl, c);
    }
}

/* ---- output -------------------------------------------------------------- */

static void write_tally(FILE *f, const char *name, const struct tally *t, const char *sep)
{
    fprintf(f,
            "  \"%s\": {\"sent\": %" PRIu64 ", \"answered\": %" PRIu64
            ", \"other_status\": %" PRIu64 ", \"lost\": %" PRIu64 ", \"lost_by\": {",
            name, t->sent, t->answered, t->other_status, t->lost);
    for (int i = 0; i < L_COUNT; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", loss_names[i], t->lost_by[i]);
    fprintf(f, "}, \"fin_before_send\": %" PRIu64 "}%s\n", t->fin_before_send, sep);
}

static double per_k(uint64_t n, uint64_t of)
{
    return of ? 1000.0 * (double)n / (double)of : 0.0;
}

static void write_json(FILE *f, const struct client *cl, double elapsed_ms)
{
    const struct options *o = &cl->o;
    fprintf(f, "{\n  \"host\": \"%s\", \"port\": %d, \"connections\": %d, \"seed\": %" PRIu64 ",\n",
            o->host, o->port, o->connections, o->seed);
    fprintf(f,
            "  \"duration_ms\": %ld, \"elapsed_ms\": %.1f, \"idle_max_ms\": %ld, \"timeout_ms\": %ld,\n",
            o->duration_ms, elapsed_ms, o->idle_max_ms, o->timeout_ms);
    fprintf(f, "  \"fault_every_ms\": %ld, \"signal_every_ms\": %ld, \"signals_sent\": %" PRIu64 ",\n",
            o->fault_every_ms, o->signal_pid > 0 ? o->signal_every_ms : 0, cl->signals);
    fprintf(f, "  \"gets\": %" PRIu64 ", \"posts\": %" PRIu64 ",\n", cl->gets, cl->posts);
    write_tally(f, "reused", &cl->reused, ",");
    write_tally(f, "first", &cl->first, ",");
    write_tally(f, "faults", &cl->fault, ",");
    fprintf(f,
            "  \"reused_lost_per_1000\": %.2f, \"close_responses\": %" PRIu64
            ", \"unsolicited\": %" PRIu64 ",\n  \"connect_failures\": %" PRIu64
            ", \"fault_connect_failures\": %" PRIu64 ", \"fault_slots_full\": %" PRIu64 "\n}\n",
            per_k(cl->reused.lost, cl->reused.sent), cl->close_responses, cl->unsolicited,
            cl->connect_failures, cl->fault_connect_failures, cl->fault_slots_full);
}

static void write_summary(const struct client *cl, double elapsed_ms)
{
    const struct tally *r = &cl->reused, *f = &cl->first, *ft = &cl->fault;
    fprintf(stderr,
            "reuse: %.0f ms, %d connections: reused sent %" PRIu64 " 200 %" PRIu64 " other %" PRIu64
            " lost %" PRIu64 " (%.2f per 1,000; eof %" PRIu64 " reset %" PRIu64 " timeout %" PRIu64
            " partial %" PRIu64 " protocol %" PRIu64 "; FIN already there %" PRIu64
            "); first sent %" PRIu64 " lost %" PRIu64 "; close responses %" PRIu64
            "; unsolicited %" PRIu64 "; faults sent %" PRIu64 " 500 %" PRIu64 " other %" PRIu64 " lost %" PRIu64
            "; signals %" PRIu64 "; connect failures %" PRIu64 " (faults %" PRIu64 ")\n",
            elapsed_ms, cl->o.connections, r->sent, r->answered, r->other_status, r->lost,
            per_k(r->lost, r->sent), r->lost_by[L_EOF], r->lost_by[L_RESET], r->lost_by[L_TIMEOUT],
            r->lost_by[L_PARTIAL], r->lost_by[L_PROTOCOL], r->fin_before_send, f->sent, f->lost,
            cl->close_responses, cl->unsolicited, ft->sent, ft->answered, ft->other_status, ft->lost,
            cl->signals, cl->connect_failures, cl->fault_connect_failures);
}

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: reuse [--host H] --port N [--connections C] [--duration-ms D]\n"
               "             [--idle-max-ms I] [--timeout-ms T] [--seed S] [--json FILE]\n"
               "             [--fault-every-ms N [--fault-routes /a,/b,...]]\n"
               "             [--signal-pid PID --signal-every-ms N]\n");
}

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
    case 'i':
        return parse_long(optarg, 0, 3600000, &o->idle_max_ms);
    case 't':
        return parse_long(optarg, 1, 3600000, &o->timeout_ms);
    case 'f':
        return parse_long(optarg, 0, 3600000, &o->fault_every_ms);
    case 'r':
        return parse_routes(optarg, o);
    case 'u':
        return parse_long(optarg, 1, INT_MAX, &o->signal_pid);
    case 'e':
        return parse_long(optarg, 1, 3600000, &o->signal_every_ms);
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
        {"idle-max-ms", required_argument, 0, 'i'},
        {"timeout-ms", required_argument, 0, 't'},
        {"fault-every-ms", required_argument, 0, 'f'},
        {"fault-routes", required_argument, 0, 'r'},
        {"signal-pid", required_argument, 0, 'u'},
        {"signal-every-ms", required_argument, 0, 'e'},
        {"seed", required_argument, 0, 's'},
        {"json", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    *o = (struct options){.host = "127.0.0.1",
                          .connections = 40,
                          .duration_ms = 10000,
                          .idle_max_ms = 200,
                          .timeout_ms = 5000,
                          .signal_every_ms = 200,
                          .seed = 1,
                          .routes = {"/segv"},
                          .nroutes = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'H') {
            usage(stdout);
            exit(0);
        }
        if (!parse_option(ch, o)) {
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || o->port == 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct client cl; /* zeroed */
    if (parse_options(argc, argv, &cl.o) < 0)
        return 2;
    cl.epfd = client_init("reuse", &cl.target, cl.o.host, cl.o.port, cl.o.seed);
    if (cl.epfd < 0)
        return 2;
    cl.conns = calloc((size_t)cl.o.connections, sizeof *cl.conns);
    if (!cl.conns) {
        perror("reuse");
        return 2;
    }
    for (int i = 0; i < cl.o.connections; i++)
        cl.conns[i].fd = -1;
    for (int i = 0; i < MAX_FAULTS; i++) {
        cl.faults[i].fd = -1;
        cl.faults[i].fault = true;
    }
    uint64_t start = now_ns();
    run(&cl);
    double elapsed_ms = (double)(now_ns() - start) / 1e6;
    FILE *out = output_open(cl.o.json);
    write_json(out, &cl, elapsed_ms);
    output_close(out);
    write_summary(&cl, elapsed_ms);
    free(cl.conns);
    close(cl.epfd);
    return 0;
}
