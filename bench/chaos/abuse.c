/*
 * abuse: one abusive client among ordinary ones (issue 16, section 4).
 *
 * Ordinary clients (--clients, default 31): each a keep-alive connection
 * bound to its own loopback address (127.0.0.3, 127.0.0.4, ...: the whole
 * 127/8 range is local, and the server sees distinct clients), one GET / in
 * flight at a time, the next sent as soon as the last is answered. A
 * request on a reused connection that meets EOF or a reset before any byte
 * of its response (the server closed an idle connection: RFC 9112 9.3.1)
 * is retried once on a fresh connection ("retried", not lost); anything
 * else that is not a 200 is lost: another status, a second failure, a
 * connection that ends inside a response, --timeout-ms without an answer.
 *
 * The attacker (--attacker, off by default; --attack-conns connections,
 * default 4) from 127.0.0.2: a fresh connection per request, GET
 * <--attack-prefix><n> (default /segv/, n counting up: a target that
 * differs every time), read until the response or the end, then again,
 * as fast as it can. Its answers are counted by status (500: it crashed a
 * worker; 429: it was blocked; 503: quarantined) and the first 429 marks
 * the moment the fault budget tripped.
 *
 * Output: a JSON object (--json FILE, or stdout), a summary on stderr:
 * the ordinary clients' 200s over the run and after the trip, as rates,
 * and per 100 ms (buckets, from t0_ns on CLOCK_MONOTONIC); trip_ns on the
 * same clock. --clients 0 --attacker is the attacker alone, in a process
 * of its own (bench/chaos-abuse runs it so: its work is not the ordinary
 * clients' process's).
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o abuse abuse.c common.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define MS 1000000ull
#define MAX_CONNS 512
#define MAX_REQUEST (200 + HOST_HEADER_MAX)

struct conn {
    int fd;
    uint32_t watched;
    bool attacker;
    int source;       /* the last octet of 127.0.0.x */
    bool connecting;
    bool in_flight;   /* a request sent (or being sent), its response owed */
    bool reused;      /* the request is not the first on its connection */
    bool retry;       /* this request is already a retry */
    size_t got;       /* bytes of the response so far */
    char req[MAX_REQUEST];
    size_t req_len, req_off;
    uint64_t sent_ns;
    struct parser p;
};

struct options {
    const char *host;
    int port;
    int clients;
    bool attacker;
    int attack_conns;
    const char *attack_prefix;
    long duration_ms;
    long timeout_ms;
    const char *json;
};

static struct options O = {"127.0.0.1", 0, 31, false, 4, "/segv/", 10000, 5000, NULL};
static struct target T;
static int epfd;
static struct conn conns[MAX_CONNS];
static int nconns;
static uint64_t attack_n;
static bool stopping;

#define BUCKET_NS (100 * MS)
#define MAX_BUCKETS 36000

static uint64_t t0;
static uint32_t buckets[MAX_BUCKETS]; /* ordinary 200s per 100 ms from t0 */

static struct {
    uint64_t ok, lost, retried, lost_status, lost_eof, lost_timeout, lost_partial, lost_connect;
    uint64_t ok_after_trip;
    uint64_t a_requests, a_500, a_429, a_503, a_other, a_closed;
    uint64_t trip_ns; /* 0: never */
} S;

static int connect_from(int source, int *fd)
{
    *fd = socket(T.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return -errno;
    int one = 1;
    setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src;
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl((127u << 24) | (unsigned)source);
    if (bind(*fd, (struct sockaddr *)&src, sizeof src) != 0) {
        int err = errno;
        close(*fd);
        *fd = -1;
        return -err;
    }
    if (connect(*fd, (const struct sockaddr *)&T.addr, T.addrlen) == 0)
        return 0;
    int err = errno;
    if (err != EINPROGRESS) {
        close(*fd);
        *fd = -1;
    }
    return -err;
}

static void build_request(struct conn *c)
{
    if (c->attacker)
        c->req_len = (size_t)snprintf(c->req, sizeof c->req,
                                      "GET %s%" PRIu64 " HTTP/1.1\r\nHost: %s\r\n"
                                      "Connection: close\r\n\r\n",
                                      O.attack_prefix, attack_n++, T.host_header);
    else
        c->req_len = (size_t)snprintf(c->req, sizeof c->req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
                                      T.host_header);
    c->req_off = 0;
}

static void conn_open(struct conn *c);

static void conn_close(struct conn *c)
{
    sock_close(epfd, &c->fd, &c->watched);
}

static void flush(struct conn *c)
{
    enum send_result r = sock_send(c->fd, c->req, c->req_len, &c->req_off);
    sock_watch(epfd, c->fd, c, &c->watched, r == SEND_AGAIN ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void send_request(struct conn *c, bool reuse)
{
    parser_reset(&c->p);
    c->got = 0;
    c->in_flight = true;
    c->reused = reuse;
    c->sent_ns = now_ns();
    flush(c);
}

/* The next request of c (an ordinary client's, or the attacker's next). */
static void next(struct conn *c)
{
    c->retry = false;
    if (stopping) {
        c->in_flight = false;
        conn_close(c);
        return;
    }
    build_request(c);
    if (c->fd >= 0 && !c->attacker)
        send_request(c, true);
    else
        conn_open(c);
}

/* A connect that failed: the attacker's is a closed door (counted apart),
 * an ordinary client's a lost request. Either goes on with the next. */
static void connect_failed(struct conn *c)
{
    if (c->attacker) {
        S.a_closed++;
    } else {
        S.lost++;
        S.lost_connect++;
    }
    next(c);
}

static void conn_open(struct conn *c)
{
    conn_close(c);
    int rc = connect_from(c->source, &c->fd);
    c->in_flight = true;
    c->got = 0;
    c->sent_ns = now_ns();
    if (rc == 0) {
        c->connecting = false;
        send_request(c, false);
    } else if (rc == -EINPROGRESS) {
        c->connecting = true;
        sock_watch(epfd, c->fd, c, &c->watched, EPOLLOUT);
    } else {
        connect_failed(c);
    }
}

/* An ordinary request failed with nothing of its response: retried once
 * on a fresh connection if it was sent on a reused one. */
static void innocent_failed(struct conn *c, uint64_t *why)
{
    conn_close(c);
    if (c->reused && !c->retry && c->got == 0) {
        S.retried++;
        c->retry = true;
        conn_open(c); /* the same request again */
        return;
    }
    S.lost++;
    (*why)++;
    next(c);
}

static void answered(struct conn *c, size_t left)
{
    int status = c->p.status;
    bool close_after = c->p.close;
    c->in_flight = false;
    if (c->attacker) {
        S.a_requests++;
        if (status == 500)
            S.a_500++;
        else if (status == 429) {
            S.a_429++;
            if (S.trip_ns == 0)
                S.trip_ns = now_ns();
        } else if (status == 503)
            S.a_503++;
        else
            S.a_other++;
        conn_close(c);
        next(c);
        return;
    }
    if (status == 200) {
        S.ok++;
        uint64_t b = (now_ns() - t0) / BUCKET_NS;
        if (b < MAX_BUCKETS)
            buckets[b]++;
        if (S.trip_ns != 0)
            S.ok_after_trip++;
    } else {
        S.lost++;
        S.lost_status++;
    }
    if (close_after || left > 0)
        conn_close(c);
    next(c);
}

static void readable(struct conn *c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = sock_recv(c->fd, buf, sizeof buf);
        if (n == RECV_AGAIN)
            return;
        if (n <= 0) { /* EOF or reset */
            if (c->attacker) {
                if (c->p.phase == P_BODY_EOF) {
                    answered(c, 0);
                    return;
                }
                S.a_requests++;
                S.a_closed++;
                conn_close(c);
                next(c);
            } else if (!c->in_flight) {
                conn_close(c);
            } else if (c->p.phase == P_BODY_EOF) {
                answered(c, 0);
            } else if (c->got == 0) {
                innocent_failed(c, &S.lost_eof);
            } else {
                conn_close(c);
                S.lost++;
                S.lost_partial++;
                next(c);
            }
            return;
        }
        if (!c->in_flight)
            continue; /* bytes nobody asked for: ignored */
        c->got += (size_t)n;
        size_t used;
        enum parse_result r = parser_feed(&c->p, buf, (size_t)n, &used);
        if (r == PR_ERROR) {
            conn_close(c);
            if (c->attacker) {
                S.a_requests++;
                S.a_other++;
            } else {
                S.lost++;
                S.lost_partial++;
            }
            next(c);
            return;
        }
        if (r == PR_DONE) {
            answered(c, (size_t)n - used);
            return;
        }
    }
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->connecting) {
        int err = sock_connect_result(c->fd, events);
        c->connecting = false;
        if (err != 0) {
            conn_close(c);
            connect_failed(c);
            return;
        }
        send_request(c, false);
        return;
    }
    if (events & EPOLLOUT)
        flush(c);
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        readable(c);
}

static void sweep(uint64_t now)
{
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->fd >= 0 && c->in_flight && now - c->sent_ns > (uint64_t)O.timeout_ms * MS) {
            conn_close(c);
            if (c->attacker) {
                S.a_requests++;
                S.a_closed++;
            } else {
                S.lost++;
                S.lost_timeout++;
            }
            next(c);
        }
    }
}

static bool owed(void)
{
    for (int i = 0; i < nconns; i++)
        if (!conns[i].attacker && conns[i].fd >= 0 && conns[i].in_flight)
            return true;
    return false;
}

static void usage(void)
{
    fprintf(stderr, "usage: abuse --port N [--host A] [--clients N] [--attacker] "
                    "[--attack-conns N] [--attack-prefix P] [--duration-ms N] "
                    "[--timeout-ms N] [--json FILE]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},     {"port", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'c'},  {"attacker", no_argument, NULL, 'a'},
        {"attack-conns", required_argument, NULL, 'A'},
        {"attack-prefix", required_argument, NULL, 'P'},
        {"duration-ms", required_argument, NULL, 'd'},
        {"timeout-ms", required_argument, NULL, 't'}, {"json", required_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': O.host = optarg; break;
        case 'p': if (!parse_long(optarg, 1, 65535, &v)) { usage(); return 64; } O.port = (int)v; break;
        case 'c': if (!parse_long(optarg, 0, 250, &v)) { usage(); return 64; } O.clients = (int)v; break;
        case 'a': O.attacker = true; break;
        case 'A': if (!parse_long(optarg, 1, 64, &v)) { usage(); return 64; } O.attack_conns = (int)v; break;
        case 'P': O.attack_prefix = optarg; break;
        case 'd': if (!parse_long(optarg, 100, 3600000, &v)) { usage(); return 64; } O.duration_ms = v; break;
        case 't': if (!parse_long(optarg, 10, 600000, &v)) { usage(); return 64; } O.timeout_ms = v; break;
        case 'j': O.json = optarg; break;
        default: usage(); return 64;
        }
    }
    if (O.port == 0) {
        usage();
        return 64;
    }
    epfd = client_init("abuse", &T, O.host, O.port, 1);
    if (epfd < 0)
        return 1;
    for (int i = 0; i < O.clients; i++)
        conns[nconns++] = (struct conn){.fd = -1, .source = 3 + i};
    for (int i = 0; O.attacker && i < O.attack_conns; i++)
        conns[nconns++] = (struct conn){.fd = -1, .attacker = true, .source = 2};
    t0 = now_ns();
    uint64_t end = t0 + (uint64_t)O.duration_ms * MS;
    for (int i = 0; i < nconns; i++)
        next(&conns[i]);
    struct epoll_event evs[256];
    uint64_t stopped_at = 0;
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, 10);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        uint64_t now = now_ns();
        sweep(now);
        if (!stopping && now >= end) {
            stopping = true;
            stopped_at = now;
            for (int i = 0; i < nconns; i++)
                if (conns[i].attacker || !conns[i].in_flight)
                    conn_close(&conns[i]);
        }
        if (stopping && (!owed() || now - stopped_at > (uint64_t)O.timeout_ms * MS))
            break;
    }
    double run_s = (double)(stopped_at - t0) / 1e9;
    double after_s = S.trip_ns != 0 ? (double)(stopped_at - S.trip_ns) / 1e9 : 0;
    FILE *f = output_open(O.json);
    fprintf(f,
            "{\"duration_ms\": %ld, \"clients\": %d, \"attacker\": %s, \"ok\": %" PRIu64
            ", \"lost\": %" PRIu64 ", \"retried\": %" PRIu64 ", \"lost_status\": %" PRIu64
            ", \"lost_eof\": %" PRIu64 ", \"lost_timeout\": %" PRIu64 ", \"lost_partial\": %" PRIu64
            ", \"lost_connect\": %" PRIu64 ", \"goodput_rps\": %.1f, \"trip_ms\": %.1f"
            ", \"ok_after_trip\": %" PRIu64 ", \"goodput_after_trip_rps\": %.1f"
            ", \"attack\": {\"requests\": %" PRIu64 ", \"s500\": %" PRIu64 ", \"s429\": %" PRIu64
            ", \"s503\": %" PRIu64 ", \"other\": %" PRIu64 ", \"closed\": %" PRIu64 "}"
            ", \"t0_ns\": %" PRIu64 ", \"trip_ns\": %" PRIu64 ", \"bucket_ms\": 100, \"buckets\": [",
            O.duration_ms, O.clients, O.attacker ? "true" : "false", S.ok, S.lost, S.retried,
            S.lost_status, S.lost_eof, S.lost_timeout, S.lost_partial, S.lost_connect,
            (double)S.ok / run_s, S.trip_ns != 0 ? (double)(S.trip_ns - t0) / 1e6 : -1.0,
            S.ok_after_trip, after_s > 0 ? (double)S.ok_after_trip / after_s : 0.0, S.a_requests,
            S.a_500, S.a_429, S.a_503, S.a_other, S.a_closed, t0, S.trip_ns);
    uint64_t nb = (stopped_at - t0) / BUCKET_NS;
    for (uint64_t b = 0; b < nb && b < MAX_BUCKETS; b++)
        fprintf(f, "%s%u", b ? ", " : "", buckets[b]);
    fprintf(f, "]}\n");
    output_close(f);
    fprintf(stderr,
            "abuse: %d clients%s: %" PRIu64 " ok (%.0f/s), %" PRIu64 " lost, %" PRIu64
            " retried; attacker: %" PRIu64 " requests, %" PRIu64 " crashed a worker, %" PRIu64
            " answered 429 (first after %.0f ms), %" PRIu64 " 503\n",
            O.clients, O.attacker ? " + attacker" : "", S.ok, (double)S.ok / run_s, S.lost,
            S.retried, S.a_requests, S.a_500, S.a_429,
            S.trip_ns != 0 ? (double)(S.trip_ns - t0) / 1e6 : -1.0, S.a_503);
    return 0;
}
