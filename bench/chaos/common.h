/*
 * What the load clients of bench/chaos (chaos.c, harsh.c) share: the
 * clock, a seeded random sequence, a streaming HTTP/1.1 response parser
 * (status line, Content-Length, chunked, close-delimited bodies, interim
 * 1xx, Connection), option parsing and the target's address.
 */
#ifndef BENCH_CHAOS_COMMON_H
#define BENCH_CHAOS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#define MAX_HEAD 16384 /* status line + headers we accept */

/* CLOCK_MONOTONIC in nanoseconds (the clock of the primary's event log). */
uint64_t now_ns(void);

/* splitmix64: the same sequence for the same seed. */
void rng_seed(uint64_t seed);
uint64_t rng_next(void);

/* ---- response parser ---------------------------------------------------- */

enum parse_phase {
    P_HEAD,       /* status line and headers, up to the empty line */
    P_BODY_LEN,   /* Content-Length bytes */
    P_CHUNK_SIZE, /* chunk-size [; ext] CRLF */
    P_CHUNK_DATA,
    P_CHUNK_CRLF, /* the CRLF after a chunk's data */
    P_TRAILER,    /* trailer lines, up to the empty line */
    P_BODY_EOF,   /* no length: the body ends when the connection does */
    P_DONE,
};

enum parse_result { PR_MORE, PR_DONE, PR_ERROR };

struct parser {
    enum parse_phase phase;
    int status;
    int minor;
    bool close; /* the connection ends after this response */
    uint64_t remaining;
    size_t head_len;
    char head[MAX_HEAD];
    size_t line_len; /* chunk-size and trailer lines */
    char line[256];
};

/* Ready for the next response. */
void parser_reset(struct parser *p);

/*
 * Feed bytes. *used says how many were consumed; on PR_DONE the rest (if
 * any) belongs to the next response.
 */
enum parse_result parser_feed(struct parser *p, const char *buf, size_t len, size_t *used);

/* ---- options and the target --------------------------------------------- */

/* A decimal in [min, max], the whole string; false otherwise. */
bool parse_long(const char *s, long min, long max, long *out);

#define HOST_HEADER_MAX 300 /* "host:port", or "[v6 address]:port" */

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host_header[HOST_HEADER_MAX];
};

/* Resolve host:port into t; -1 (and a message on stderr) if it cannot. */
int target_resolve(struct target *t, const char *host, int port);

/*
 * What every client does first: resolve the target, ignore SIGPIPE, seed
 * the random sequence. Returns an epoll descriptor, or -1 (with a message
 * on stderr naming `who`).
 */
int client_init(const char *who, struct target *t, const char *host, int port, uint64_t seed);

/* ---- sockets watched by epoll ------------------------------------------- */

/* Watch fd for `events` (data.ptr = ptr); a system call only when that
 * changes *watched, which remembers what epoll watches for. */
void sock_watch(int epfd, int fd, void *ptr, uint32_t *watched, uint32_t events);

/* Stop watching *fd, close it, set it to -1 (nothing if it is -1 already). */
void sock_close(int epfd, int *fd, uint32_t *watched);

/* A non-blocking TCP_NODELAY socket connecting to t, in *fd: 0 connected,
 * -EINPROGRESS under way, or another -errno (and no socket). */
int sock_connect(const struct target *t, int *fd);

/* How a connect under way ended, once epoll reports fd: 0 or an errno. */
int sock_connect_result(int fd, uint32_t events);

enum send_result { SEND_DONE, SEND_AGAIN, SEND_FAILED };

/* Send buf[*off..len), advancing *off: all sent, the socket is full, or
 * the server closed the connection (EPIPE, ECONNRESET). */
enum send_result sock_send(int fd, const char *buf, size_t len, size_t *off);

#define RECV_AGAIN (-2) /* nothing to read now */
#define RECV_RESET (-1)

/* recv: the byte count, 0 at EOF, RECV_RESET or RECV_AGAIN. */
ssize_t sock_recv(int fd, char *buf, size_t size);

/* --json FILE, or stdout if there is none or it cannot be opened. */
FILE *output_open(const char *path);
void output_close(FILE *f);

#endif
