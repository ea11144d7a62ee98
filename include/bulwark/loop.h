/*
 * loop.h: the event loop bulwark runs on.
 *
 * A bw_loop is a libuv loop plus bulwark's per-loop state (the next-tick
 * and immediate queues). Raw libuv code can run beside bulwark on the same
 * loop: bw_loop_uv() returns the uv_loop_t. A loop belongs to the thread
 * that created it; the first loop of a thread also prepares that thread's
 * fault handling (alternate signal stack, preallocated fault records).
 */
#ifndef BULWARK_LOOP_H
#define BULWARK_LOOP_H

#include "common.h" /* first: the feature macros uv.h needs */
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Create a loop with its own uv_loop_t. Installs the process's fault
 * handlers the first time (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT on an
 * alternate stack). Returns 0, -ENOMEM, or a libuv error.
 */
BW_EXTERN int bw_loop_new(bw_loop **out);

/* Wrap an existing uv_loop_t, which the caller keeps owning (bw_loop_free
 * then does not close it). */
BW_EXTERN int bw_loop_wrap(uv_loop_t *uv, bw_loop **out);

/* The libuv loop. */
BW_EXTERN uv_loop_t *bw_loop_uv(bw_loop *loop);

/*
 * Run the loop (uv_run with the same modes). Next ticks queued outside any
 * callback run first. Returns uv_run's result.
 */
BW_EXTERN int bw_loop_run(bw_loop *loop, uv_run_mode mode);

/* Stop the loop (uv_stop). */
BW_EXTERN void bw_loop_stop(bw_loop *loop);

/*
 * Free the loop, synchronously (in bulwark `_close` always takes a callback
 * and finishes later; `_free` is done when it returns). Fails with
 * BW_EBUSY (and frees nothing) while handles other than bulwark's own idle
 * machinery are open: close them and run the loop until it returns first.
 */
BW_EXTERN int bw_loop_free(bw_loop *loop);

/* The loop whose callback is running on this thread, or NULL. */
BW_EXTERN bw_loop *bw_loop_current(void);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_LOOP_H */
