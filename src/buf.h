/*
 * buf.h: a growable byte buffer, for the HTTP server's input and output.
 */
#ifndef BULWARK_BUF_H
#define BULWARK_BUF_H

#include <stddef.h>
#include <string.h>

#include "bulwark/alloc.h"

typedef struct bw__buf {
    char *base;
    size_t len;
    size_t cap;
} bw__buf;

/* Make room for `extra` more bytes. 0 or -ENOMEM. */
int bw__buf_grow(bw__buf *b, size_t extra);
static inline int bw__buf_reserve(bw__buf *b, size_t extra)
{
    return b->cap - b->len >= extra ? 0 : bw__buf_grow(b, extra); /* the call only to grow */
}

static inline int bw__buf_append(bw__buf *b, const void *data, size_t len)
{
    if (b->cap - b->len < len && bw__buf_grow(b, len) != 0)
        return -12; /* -ENOMEM, without pulling errno.h into every user */
    memcpy(b->base + b->len, data, len);
    b->len += len;
    return 0;
}

/* Drop the first n bytes. */
void bw__buf_consume(bw__buf *b, size_t n);

/* Free the storage. */
static inline void bw__buf_free(bw__buf *b)
{
    bw_free(b->base);
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Swap two buffers (to hand a full buffer to a write without copying). */
static inline void bw__buf_swap(bw__buf *a, bw__buf *b)
{
    bw__buf t = *a;
    *a = *b;
    *b = t;
}

#endif /* BULWARK_BUF_H */
