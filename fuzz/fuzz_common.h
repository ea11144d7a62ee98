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

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bulwark.h"

/* libFuzzer's own SIGABRT handler, saved before bulwark installs its own. */
static struct sigaction fuzz_saved_abrt;

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

/*
 * A harness's invariant is broken: crash so that libFuzzer records the input.
 * abort() alone would not do inside a guarded callback: bulwark catches its
 * SIGABRT like any fault and routes it, and the run goes on. So SIGABRT goes
 * back to libFuzzer's handler first.
 */
static inline void fuzz_crash(const char *what)
{
    fprintf(stderr, "fuzz: invariant broken: %s\n", what);
    sigaction(SIGABRT, &fuzz_saved_abrt, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGABRT);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    abort();
}

static inline void fuzz_setup_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    sigaction(SIGABRT, NULL, &fuzz_saved_abrt);
    static const bw_allocator pass = {fuzz_malloc, fuzz_realloc, fuzz_free, NULL};
    bw_set_allocator(&pass);
    bw_log_set_level(BW_LOG_FATAL);
}

#endif /* BW_FUZZ_COMMON_H */
