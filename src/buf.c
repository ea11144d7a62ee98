/*
 * buf.c: the growable byte buffer.
 */
#include <errno.h>

#include "buf.h"
#include "internal.h"

int bw__buf_grow(bw__buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = bw_realloc(b->base, cap);
    if (p == NULL)
        return -ENOMEM;
    b->base = p;
    b->cap = cap;
    return 0;
}

void bw__buf_consume(bw__buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}
