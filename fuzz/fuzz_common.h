/*
 * fuzz_common.h: what every harness does once.
 *
 * A pass-through allocator: with a custom allocator installed, bulwark
 * keeps no cache of freed objects, so each input frees everything it
 * allocated and libFuzzer's leak check (run whenever an input mallocs more
 * than it frees) has nothing to chase but real leaks.
 */
#ifndef BW_FUZZ_COMMON_H
#define BW_FUZZ_COMMON_H

#include <stdlib.h>

#include "bulwark.h"

static void *fuzz_malloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static void *fuzz_realloc(void *ptr, size_t size, void *ctx)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void fuzz_free(void *ptr, void *ctx)
{
    (void)ctx;
    free(ptr);
}

static inline void fuzz_setup_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    static const bw_allocator pass = {fuzz_malloc, fuzz_realloc, fuzz_free, NULL};
    bw_set_allocator(&pass);
    bw_log_set_level(BW_LOG_FATAL);
}

#endif /* BW_FUZZ_COMMON_H */
