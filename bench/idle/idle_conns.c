/*
 * idle_conns: open N keep-alive connections to an HTTP server, send one
 * `GET /` on each and read its response, then leave them all idle, so the
 * caller can measure what the server spends per idle connection.
 *
 * Protocol with the caller (bench/run), line by line:
 *   stdout  "ready open=A failed=F setup_ms=T"   all connections set up
 *   stdin   any line                             (the caller measured)
 *   stdout  "check open=A closed=C"              how many the server closed
 *                                                 meanwhile (EOF or reset)
 *   stdin   any line or EOF                      then everything is closed
 *
 * Connects are kept to --concurrency at a time so the server's listen
 * backlog never overflows (an overflow costs a 1 s SYN retransmit). The
 * process raises its own descriptor limit to the hard limit; the caller
 * raises the hard limit (as root) if N needs more.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o idle_conns idle_conns.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { IDLE_NEW, IDLE_CONNECTING, IDLE_READING, IDLE_DONE, IDLE_FAILED };

struct conn {
    int fd;
    enum state state;
    size_t len;
    char buf[1024]; /* the response to GET /: a short head and "ok" */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Is the response in c->buf complete? -1 if it is not a 200 or is malformed. */
static int response_complete(struct conn *c)
{
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return c->len + 1 >= sizeof c->buf ? -1 : 0;
    if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0 && strncmp(c->buf, "HTTP/1.0 200", 12) != 0)
        return -1;
    size_t head = (size_t)(end - c->buf) + 4;
    for (char *line = c->buf; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0)
            return c->len >= head + strtoul(line + 15, NULL, 10);
        if (strncasecmp(line, "transfer-encoding:", 18) == 0)
            return c->len >= head + 5 && memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) == 0;
    }
    return -1; /* a close-delimited body would not leave the connection idle */
}

static void fail(int epfd, struct conn *c, long *active, long *failed)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = IDLE_FAILED;
    (*active)--;
    (*failed)++;
}

static void wait_line(void)
{
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    long n = 10000, concurrency = 200, timeout_ms = 60000;
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},        {"port", required_argument, 0, 'p'},
        {"connections", required_argument, 0, 'c'}, {"concurrency", required_argument, 0, 'k'},
        {"timeout-ms", required_argument, 0, 't'},  {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': n = atol(optarg); break;
        case 'k': concurrency = atol(optarg); break;
        case 't': timeout_ms = atol(optarg); break;
        default: goto usage;
        }
    }
    if (port <= 0 || port > 65535 || n <= 0 || concurrency <= 0 || timeout_ms <= 0)
        goto usage;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)n + 16 > rl.rlim_cur) {
        fprintf(stderr, "idle_conns: descriptor limit %lu is too low for %ld connections\n",
                (unsigned long)rl.rlim_cur, n);
        return 2;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char portstr[16], request[300];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "idle_conns: %s: %s\n", host, gai_strerror(rc));
        return 2;
    }
    int reqlen = snprintf(request, sizeof request, "GET / HTTP/1.1\r\nHost: %s%s%s:%d\r\n\r\n",
                          strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);

    struct conn *conns = calloc((size_t)n, sizeof *conns);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("idle_conns");
        return 2;
    }

    uint64_t start = now_ms(), deadline = start + (uint64_t)timeout_ms;
    long next = 0, active = 0, done = 0, failed = 0;
    struct epoll_event events[256];
    while (done + failed < n && now_ms() < deadline) {
        /* Start connects up to the concurrency bound. */
        while (next < n && active < concurrency) {
            struct conn *c = &conns[next++];
            c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) {
                c->state = IDLE_FAILED;
                failed++;
                continue;
            }
            active++;
            if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
                fail(epfd, c, &active, &failed);
                continue;
            }
            c->state = IDLE_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        }
        int k = epoll_wait(epfd, events, 256, 100);
        for (int i = 0; i < k; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->state == IDLE_CONNECTING) {
                int err = 0;
                socklen_t sl = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
                /* The request is tiny: one send completes on a fresh socket. */
                if (err || send(c->fd, request, (size_t)reqlen, MSG_NOSIGNAL) != reqlen) {
                    fail(epfd, c, &active, &failed);
                    continue;
                }
                c->state = IDLE_READING;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                fail(epfd, c, &active, &failed);
                continue;
            }
            c->len += (size_t)r;
            int complete = response_complete(c);
            if (complete < 0) {
                fail(epfd, c, &active, &failed);
            } else if (complete) {
                /* Idle from now on: out of epoll, checked once later. */
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                c->state = IDLE_DONE;
                active--;
                done++;
            }
        }
    }
    freeaddrinfo(ai);
    /* Whatever did not finish by the deadline counts as failed. */
    for (long i = 0; i < n; i++) {
        struct conn *c = &conns[i];
        if (c->state == IDLE_CONNECTING || c->state == IDLE_READING)
            fail(epfd, c, &active, &failed);
        else if (c->state == IDLE_NEW)
            failed++;
    }

    printf("ready open=%ld failed=%ld setup_ms=%lu\n", done, failed,
           (unsigned long)(now_ms() - start));
    fflush(stdout);
    wait_line();

    long open = 0, closed = 0;
    for (long i = 0; i < n; i++) {
        struct conn *c = &conns[i];
        if (c->state != IDLE_DONE)
            continue;
        char b;
        ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            open++;
        else
            closed++; /* EOF, reset, or bytes nobody asked for */
    }
    printf("check open=%ld closed=%ld\n", open, closed);
    fflush(stdout);
    wait_line();
    for (long i = 0; i < n; i++)
        if (conns[i].fd > 0)
            close(conns[i].fd);
    free(conns);
    return 0;

usage:
    fprintf(stderr, "usage: idle_conns --port N [--host H] [--connections N] "
                    "[--concurrency K] [--timeout-ms T]\n");
    return 2;
}
