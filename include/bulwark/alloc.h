/*
 * alloc.h: the replaceable allocator.
 *
 * Every allocation bulwark makes goes through these hooks (as SQLite's
 * sqlite3_config(SQLITE_CONFIG_MALLOC) does), so a test can fail the Nth
 * allocation and check that the failure becomes a clean error, and an
 * application can plug in its own allocator.
 *
 * An allocation failure inside a request is that request's error (ENOMEM),
 * never an abort of the process.
 *
 * With the default allocator, bulwark keeps a few freed objects per thread
 * for reuse (a domain per request adds up); with a custom allocator it
 * keeps nothing, so the allocator sees every allocation and every free.
 */
#ifndef BULWARK_ALLOC_H
#define BULWARK_ALLOC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bw_allocator {
    void *(*malloc)(size_t size, void *ctx);
    void *(*realloc)(void *ptr, size_t size, void *ctx);
    void (*free)(void *ptr, void *ctx);
    void *ctx;
} bw_allocator;

/*
 * Replace the allocator. Call it before any other bulwark function, from
 * one thread: memory allocated by one allocator must be freed by it.
 * NULL restores the C library's malloc/realloc/free.
 */
BW_EXTERN void bw_set_allocator(const bw_allocator *allocator);

/* The allocator in use (a copy). */
BW_EXTERN bw_allocator bw_get_allocator(void);

/* Allocate and free through the current allocator. NULL on failure. */
BW_EXTERN void *bw_malloc(size_t size);
BW_EXTERN void *bw_calloc(size_t count, size_t size);
BW_EXTERN void *bw_realloc(void *ptr, size_t size);
BW_EXTERN void bw_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_ALLOC_H */
