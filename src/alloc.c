/*
 * alloc.c: the replaceable allocator (SQLite-style), used by every
 * allocation the library makes.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void *libc_malloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static void *libc_realloc(void *ptr, size_t size, void *ctx)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void libc_free(void *ptr, void *ctx)
{
    (void)ctx;
    free(ptr);
}

static bw_allocator allocator = {libc_malloc, libc_realloc, libc_free, NULL};

bool bw__allocator_is_default(void)
{
    return allocator.malloc == libc_malloc;
}

void bw_set_allocator(const bw_allocator *a)
{
    /* Memory cached for reuse belongs to the allocator that made it. */
    bw__release_caches();
    if (a == NULL) {
        allocator = (bw_allocator){libc_malloc, libc_realloc, libc_free, NULL};
        return;
    }
    allocator = *a;
}

bw_allocator bw_get_allocator(void)
{
    return allocator;
}

void *bw_malloc(size_t size)
{
    return allocator.malloc(size == 0 ? 1 : size, allocator.ctx);
}

void *bw_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = bw_malloc(count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

void *bw_realloc(void *ptr, size_t size)
{
    return allocator.realloc(ptr, size == 0 ? 1 : size, allocator.ctx);
}

void bw_free(void *ptr)
{
    if (ptr != NULL)
        allocator.free(ptr, allocator.ctx);
}
