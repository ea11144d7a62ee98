/*
 * What the load clients of bench/chaos share: the clock, the random
 * sequence, a streaming HTTP/1.1 response parser, option parsing and the
 * target's address. See common.h.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* ---- time and randomness ------------------------------------------------ */

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;

void rng_seed(uint64_t seed)
{
    rng_state = seed;
}

/* splitmix64: small, fast, and the same sequence for the same seed. */
uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- response parser ---------------------------------------------------- */

void parser_reset(struct parser *p)
{
    p->phase = P_HEAD;
    p->status = 0;
    p->minor = 1;
    p->close = false;
    p->remaining = 0;
    p->head_len = 0;
    p->line_len = 0;
}

/* Case-insensitive search for a token in a comma-separated header value. */
static bool value_has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return true;
    }
    return false;
}

/*
 * Parse the head held in p->head (ending with CRLF CRLF) and choose how the
 * body is framed (RFC 9112 section 6.3). Returns false on a malformed head.
 */
static bool parse_head(struct parser *p)
{
    const char *s = p->head;
    const char *end = p->head + p->head_len;
    if (p->head_len < 12 || strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != ' ')
        return false;
    p->minor = s[7] - '0';
    if (s[9] < '0' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
        return false;
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');

    bool chunked = false, has_length = false, keep_alive = false, close = false;
    uint64_t length = 0;
    const char *line = memchr(s, '\n', (size_t)(end - s));
    if (!line)
        return false;
    line++;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            return false;
        size_t len = (size_t)(eol - line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the empty line */
        const char *colon = memchr(line, ':', len);
        if (!colon)
            return false;
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vlen = len - nlen - 1;
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            uint64_t n = 0;
            size_t i = 0;
            for (; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
                n = n * 10 + (uint64_t)(v[i] - '0');
            if (i == 0)
                return false;
            if (has_length && n != length)
                return false; /* conflicting lengths */
            has_length = true;
            length = n;
        } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            if (value_has_token(v, vlen, "chunked"))
                chunked = true;
        } else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (value_has_token(v, vlen, "close"))
                close = true;
            if (value_has_token(v, vlen, "keep-alive"))
                keep_alive = true;
        }
        line = eol + 1;
    }
    p->close = close || (p->minor == 0 && !keep_alive);

    if ((p->status >= 100 && p->status < 200) || p->status == 204 || p->status == 304) {
        p->phase = P_DONE;
    } else if (chunked) {
        p->phase = P_CHUNK_SIZE;
        p->line_len = 0;
    } else if (has_length) {
        p->remaining = length;
        p->phase = length ? P_BODY_LEN : P_DONE;
    } else {
        p->phase = P_BODY_EOF;
        p->close = true;
    }
    return true;
}

/* One CRLF-terminated line of the chunked framing, collected across reads. */
static int collect_line(struct parser *p, const char *buf, size_t len, size_t *used, bool *complete)
{
    size_t i = 0;
    *complete = false;
    while (i < len) {
        char ch = buf[i++];
        if (ch == '\n') {
            if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
                p->line_len--;
            p->line[p->line_len] = '\0';
            *complete = true;
            break;
        }
        if (p->line_len + 1 >= sizeof p->line)
            return -1;
        p->line[p->line_len++] = ch;
    }
    *used = i;
    return 0;
}

/* A framing line from buf[*off..len), advancing *off: 1 complete, 0 more
 * to come, -1 too long. */
static int take_line(struct parser *p, const char *buf, size_t len, size_t *off)
{
    size_t n;
    bool complete;
    if (collect_line(p, buf + *off, len - *off, &n, &complete) < 0)
        return -1;
    *off += n;
    return complete;
}

/* Up to `avail` bytes of a body whose p->remaining bytes are to come. */
static size_t take_body(struct parser *p, size_t avail)
{
    size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
    p->remaining -= n;
    return n;
}

/* Feed bytes (common.h). */
enum parse_result parser_feed(struct parser *p, const char *buf, size_t len, size_t *used)
{
    size_t off = 0;
    while (off < len) {
        switch (p->phase) {
        case P_HEAD: {
            /* Search for CRLF CRLF, including across the previous read. */
            size_t before = p->head_len;
            size_t take = len - off;
            if (take > MAX_HEAD - 1 - p->head_len)
                take = MAX_HEAD - 1 - p->head_len;
            if (take == 0)
                return PR_ERROR;
            memcpy(p->head + p->head_len, buf + off, take);
            p->head_len += take;
            p->head[p->head_len] = '\0';
            size_t from = before >= 3 ? before - 3 : 0;
            char *hit = memmem(p->head + from, p->head_len - from, "\r\n\r\n", 4);
            if (!hit) {
                off += take;
                break;
            }
            size_t head_end = (size_t)(hit - p->head) + 4;
            off += head_end - before;
            p->head_len = head_end;
            if (!parse_head(p))
                return PR_ERROR;
            if (p->status >= 100 && p->status < 200 && p->status != 101) {
                parser_reset(p); /* interim response: the real one follows */
                break;
            }
            break;
        }
        case P_BODY_LEN:
            off += take_body(p, len - off);
            if (p->remaining == 0)
                p->phase = P_DONE;
            break;
        case P_CHUNK_SIZE: {
            int got = take_line(p, buf, len, &off);
            if (got < 0)
                return PR_ERROR;
            if (got == 0)
                break;
            char *endp;
            errno = 0;
            unsigned long long size = strtoull(p->line, &endp, 16);
            if (endp == p->line || errno || (*endp && *endp != ';' && *endp != ' '))
                return PR_ERROR;
            p->line_len = 0;
            p->remaining = size;
            p->phase = size ? P_CHUNK_DATA : P_TRAILER;
            break;
        }
        case P_CHUNK_DATA:
            off += take_body(p, len - off);
            if (p->remaining == 0) {
                p->phase = P_CHUNK_CRLF;
                p->line_len = 0;
            }
            break;
        case P_CHUNK_CRLF:
        case P_TRAILER: {
            int got = take_line(p, buf, len, &off);
            if (got < 0)
                return PR_ERROR;
            if (got == 0)
                break;
            bool empty = p->line_len == 0;
            p->line_len = 0;
            if (p->phase == P_CHUNK_CRLF) {
                if (!empty)
                    return PR_ERROR;
                p->phase = P_CHUNK_SIZE;
            } else if (empty) {
                p->phase = P_DONE;
            }
            break;
        }
        case P_BODY_EOF:
            off = len;
            break;
        case P_DONE:
            break;
        }
        if (p->phase == P_DONE) {
            *used = off;
            return PR_DONE;
        }
    }
    *used = off;
    return p->phase == P_DONE ? PR_DONE : PR_MORE;
}

/* ---- options and the target ---------------------------------------------- */

bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int target_resolve(struct target *t, const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addrlen = res->ai_addrlen;
    bool v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    snprintf(t->host_header, sizeof t->host_header, v6 && strchr(host, ':') ? "[%s]:%d" : "%s:%d",
             host, port);
    return 0;
}

int client_init(const char *who, struct target *t, const char *host, int port, uint64_t seed)
{
    if (target_resolve(t, host, port) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    rng_seed(seed);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        perror(who);
    return epfd;
}

/* ---- sockets watched by epoll ------------------------------------------- */

void sock_watch(int epfd, int fd, void *ptr, uint32_t *watched, uint32_t events)
{
    if (*watched == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    int op = *watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(epfd, op, fd, &ev) == 0)
        *watched = events;
}

void sock_close(int epfd, int *fd, uint32_t *watched)
{
    if (*fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, *fd, NULL);
        close(*fd);
    }
    *fd = -1;
    *watched = 0;
}

int sock_connect(const struct target *t, int *fd)
{
    *fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return -errno;
    int one = 1;
    setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(*fd, (const struct sockaddr *)&t->addr, t->addrlen) == 0)
        return 0;
    int err = errno;
    if (err != EINPROGRESS) {
        close(*fd);
        *fd = -1;
    }
    return -err;
}

int sock_connect_result(int fd, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0 && (events & (EPOLLERR | EPOLLHUP)))
        err = ECONNRESET;
    return err;
}

enum send_result sock_send(int fd, const char *buf, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);
        if (n > 0)
            *off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SEND_AGAIN;
        else
            return SEND_FAILED;
    }
    return SEND_DONE;
}

ssize_t sock_recv(int fd, char *buf, size_t size)
{
    for (;;) {
        ssize_t n = recv(fd, buf, size, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? RECV_AGAIN : RECV_RESET;
    }
}

FILE *output_open(const char *path)
{
    FILE *f = path ? fopen(path, "w") : NULL;
    if (path && !f)
        perror(path);
    return f ? f : stdout;
}

void output_close(FILE *f)
{
    if (f != stdout)
        fclose(f);
}
