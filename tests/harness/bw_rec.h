/*
 * bw_rec.h: helpers the unit tests share: a recorder for domain error
 * handlers and uncaught handlers, and a counting allocator that proves
 * memory is given back.
 *
 * Everything is static inline: each test file includes what it uses.
 */
#ifndef BW_REC_H
#define BW_REC_H

#include <errno.h>
#include <stdlib.h>

#include "bw_test.h"

#define BW_REC_MAX 16

/* What a handler saw, call by call. Errors are held: bw_rec_clear() drops
 * them (the leak checks of the sanitizer and valgrind variants see it). */
typedef struct bw_rec {
    int calls;
    bw_error *err[BW_REC_MAX];
    bw_domain *domain[BW_REC_MAX]; /* the handler's `d` argument */
    bw_domain *active[BW_REC_MAX]; /* bw_domain_active() in the handler */
    size_t depth[BW_REC_MAX];      /* bw_domain_stack_depth() in the handler */
} bw_rec;

static inline void bw_rec_note(bw_rec *r, bw_domain *d, bw_error *err)
{
    int i = r->calls++;
    if (i >= BW_REC_MAX)
        return;
    r->err[i] = bw_error_hold(err);
    r->domain[i] = d;
    r->active[i] = bw_domain_active();
    r->depth[i] = bw_domain_stack_depth();
}

/* A domain error handler; `data` is the bw_rec. */
static inline void bw_rec_handler(bw_domain *d, bw_error *err, void *data)
{
    bw_rec_note(data, d, err);
}

/* A process-level uncaught handler; `data` is the bw_rec. */
static inline void bw_rec_uncaught(bw_error *err, void *data)
{
    bw_rec_note(data, NULL, err);
}

static inline void bw_rec_on(bw_domain *d, bw_rec *r)
{
    BW_CHECK_INT_EQ(bw_domain_on_error(d, bw_rec_handler, r), 0);
}

static inline void bw_rec_clear(bw_rec *r)
{
    for (int i = 0; i < r->calls && i < BW_REC_MAX; i++)
        bw_error_release(r->err[i]);
    memset(r, 0, sizeof *r);
}

/* A domain with a recording handler. */
static inline bw_domain *bw_rec_domain(bw_rec *r)
{
    bw_domain *d = bw_test_domain();
    BW_CHECK(d != NULL);
    if (r != NULL)
        bw_rec_on(d, r);
    return d;
}

/* Check the four routing fields of an error (Node's domain, domainThrown,
 * domainEmitter, domainBound). */
#define BW_CHECK_ROUTING(err, d, thrown, emitter, bound)                                           \
    do {                                                                                           \
        BW_CHECK_PTR_EQ(bw_error_domain(err), (d));                                                \
        BW_CHECK_INT_EQ(bw_error_domain_thrown(err), (thrown));                                    \
        BW_CHECK_PTR_EQ(bw_error_domain_emitter(err), (emitter));                                  \
        BW_CHECK(bw_error_domain_bound(err) == (bw_fnptr)(bound));                                 \
    } while (0)

/* ---- Counting allocator ------------------------------------------------ */

/* Blocks handed out by bulwark and not yet given back. */
static long bw_count_live;

static inline void *bw_count_malloc(size_t size, void *ctx)
{
    (void)ctx;
    void *p = malloc(size);
    if (p != NULL)
        bw_count_live++;
    return p;
}

static inline void *bw_count_realloc(void *ptr, size_t size, void *ctx)
{
    (void)ctx;
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        bw_count_live++;
    return p;
}

static inline void bw_count_free(void *ptr, void *ctx)
{
    (void)ctx;
    if (ptr != NULL)
        bw_count_live--;
    free(ptr);
}

/* Install the counting allocator: call first in a test, before any other
 * bulwark call. */
static inline void bw_count_install(void)
{
    bw_allocator a = {bw_count_malloc, bw_count_realloc, bw_count_free, NULL};
    bw_set_allocator(&a);
}

/* ---- Small task helpers ------------------------------------------------ */

/* Busy-wait on the monotonic clock (the scenario needs timers to fall due
 * together; this is not synchronisation with anything). */
static inline void bw_busy_wait_ms(uint64_t ms)
{
    uint64_t end = uv_hrtime() + ms * 1000000u;
    while (uv_hrtime() < end)
        ;
}

#endif /* BW_REC_H */
