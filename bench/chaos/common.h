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
#include <sys/socket.h>

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
    bool close;     /* the connection ends after this response */
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

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host_header[300];
};

/* Resolve host:port into t; -1 (and a message on stderr) if it cannot. */
int target_resolve(struct target *t, const char *host, int port);

#endif
