/*
 * guard.h: throwing, catching, and running callbacks under a guard.
 *
 * A guard is the boundary around a user callback. bulwark puts one around
 * every callback it calls from its loop (timers, immediates, next ticks,
 * I/O completions, emitter dispatch from those) and around the function
 * given to bw_invoke. A throw, or a fault signal (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT, stack overflow) raised inside the callback, jumps back
 * to the guard: the library's own frames (libuv's loop) are never unwound.
 * The error is then routed to the domains on the stack (domain.h).
 *
 * The guard costs no system call on its normal path (sigsetjmp without
 * saving the mask); the signal mask is restored only on the fault path.
 *
 * What a throw skips: C has no destructors, so nothing between the throw
 * and the guard is cleaned up. Register cleanups with the domain
 * (bw_domain_defer, bw_domain_alloc) instead of relying on unwinding.
 *
 * A fault can leave the heap, locks or stdio inconsistent; a process that
 * caught one should answer what it must, drain and exit (cluster.h's policy
 * does exactly that).
 */
#ifndef BULWARK_GUARD_H
#define BULWARK_GUARD_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Throw `err` (consumes the caller's reference). Control goes to the
 * innermost guard of this thread and never returns. With no guard at all
 * (code outside any bulwark callback), the error is fatal: it is reported
 * and the process exits 1. NULL throws an out-of-memory error.
 */
BW_EXTERN BW_NORETURN void bw_throw(bw_error *err);

/* Throw a new error with a code and a message. */
BW_EXTERN BW_NORETURN void bw_throwf(int code, const char *fmt, ...) BW_PRINTF(2, 3);

/* Throw a value that is not an error (Node's `throw 42`, D-53): the handler
 * gets an error for which bw_error_value() returns `value` unchanged. */
BW_EXTERN BW_NORETURN void bw_throw_value(void *value);

/*
 * try/catch: call fn(arg) under a nested guard. Returns NULL if fn returned
 * normally, or the error it threw (or the fault it caused), which the caller
 * now owns. The domain stack is restored to its depth at the call. A caught
 * fault leaves the process in doubt, as above (D-61).
 */
BW_EXTERN bw_error *bw_try(bw_task_fn fn, void *arg);

/*
 * Run fn(arg) as a callback boundary inside `d` (NULL: no domain): guard,
 * enter d, call, exit d; an error is routed as a throw from inside `d`; then
 * the next-tick queue is drained (when this is the outermost boundary).
 * This is how a raw libuv callback of the user's own runs inside a domain
 * (the C shape of domain.bind for libuv; see examples/raw_libuv.c):
 *
 *     static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
 *         struct read_args a = { s, n, buf };
 *         bw_invoke(conn->domain, handle_read, &a);
 *     }
 *
 * If `d` is disposed, fn is not called (D-86).
 */
BW_EXTERN void bw_invoke(bw_domain *d, bw_task_fn fn, void *arg);

/* True while a guard is armed on this thread (inside a guarded callback). */
BW_EXTERN bool bw_in_guard(void);

/* ---- The callback limit ------------------------------------------------ */

/*
 * A guarded callback that keeps its thread busy longer than the callback
 * limit (CPU time of that thread, from the moment bulwark called it until
 * it returns) is interrupted: an error of code BW_ETIMEOUT and origin
 * BW_ORIGIN_TIMEOUT ("callback limit: a callback ran for more than N ms of
 * CPU time ...") jumps to the innermost guard and is routed exactly like a
 * fault in that callback (so under the cluster's crash-safe policy its
 * request gets its 500 and the worker retires while its other requests are
 * served). The time counted is that of the outermost guarded callback (the
 * one the loop called); nested guards (bw_try, bw_invoke inside a callback)
 * do not restart it. A domain error handler is a new callback with a limit
 * of its own. After an interruption caught by a nested guard (bw_try), the
 * callback that goes on running gets a fresh limit.
 *
 * It is interrupted only where that is safe and useful: never while it runs
 * code of the C library, the dynamic loader, libuv, libgcc's unwinder, a
 * sanitizer runtime, an interposed malloc, or bulwark itself (nor while
 * such code is on the stack above it: a libc function that called back into
 * user code may hold a lock); the watchdog then looks again a few
 * milliseconds later. It is not interrupted when nothing would take the
 * error (no domain with a handler on the stack, no uncaught handler, no
 * bw_try), nor in the outermost domain error handler or an uncaught
 * handler. A callback blocked in a system call uses no CPU time and is not
 * counted; the cluster's heartbeat is the last resort for it (and for any
 * loop that cannot be interrupted). docs/SECURITY.md says what the
 * interruption can and cannot clean up: what a throw skips, it skips.
 *
 * The cost: one timer per thread on that thread's CPU clock (no signal while
 * the thread sleeps), ticking every limit/4 of CPU time; the guard itself
 * only bumps a counter. The signal is SIGRTMIN+4, which the program must
 * leave to bulwark.
 *
 * Process-wide; 0 turns it off. Default 1000 ms, or the environment variable
 * BW_CALLBACK_LIMIT_MS (read when bulwark starts on the process's first
 * thread; a call to this function takes precedence). The calling thread's
 * timer follows at once; other threads follow at their next tick (a new
 * period, or off) or their next bw_loop_run (turning it on).
 */
BW_EXTERN void bw_guard_set_callback_limit(uint64_t ms);
/* The callback limit in ms (0: off). */
BW_EXTERN uint64_t bw_guard_callback_limit(void);

/* ---- The process level ------------------------------------------------- */

/*
 * A process-level uncaught handler (Node's process.on('uncaughtException')):
 * called, with no domain active, for an error that no domain on the stack
 * handled. `err` is borrowed. When at least one is installed, an uncaught
 * error does not end the process: the loop goes on. A throw from such a
 * handler is fatal (D-79).
 */
typedef void (*bw_uncaught_cb)(bw_error *err, void *data);

/* Process-wide; call from the main thread. 0 or -ENOMEM. */
BW_EXTERN int bw_on_uncaught(bw_uncaught_cb cb, void *data);
/* 0, or -ENOENT if that handler is not installed. */
BW_EXTERN int bw_off_uncaught(bw_uncaught_cb cb, void *data);

/*
 * Abort mode (Node's --abort-on-uncaught-exception): an error that no
 * domain on the stack handles calls abort() (with SIGABRT reset to its
 * default action) for a core dump, before any uncaught handler runs. A
 * fault that nobody handles is not turned into SIGABRT: it keeps its own
 * signal, taken at the faulting instruction, which makes the truer core.
 * Also enabled by the environment variable BW_ABORT_ON_UNCAUGHT=1 at the
 * first bw_loop_new().
 */
BW_EXTERN void bw_set_abort_on_uncaught(bool enabled);
BW_EXTERN bool bw_abort_on_uncaught(void);

/*
 * Exit code used when an error is thrown from the outermost domain error
 * handler or from an uncaught handler (Node's 7), and for an uncaught error
 * that is not a fault (Node's 1). A fault that nobody handles re-raises its
 * signal instead, so the exit status is that signal.
 */
#define BW_EXIT_UNCAUGHT 1
#define BW_EXIT_HANDLER_THREW 7

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_GUARD_H */
