/*
 * tick.h: next tick and immediates.
 *
 * bw_next_tick is process.nextTick: the task runs right after the current
 * callback returns, before the loop goes on to anything else (tasks queued
 * by tasks run in the same drain). bw_set_immediate is setImmediate: the
 * task runs in the loop's check phase, after I/O polling.
 *
 * Both are bound to the domain active when they are queued (D-15, D-16)
 * and run inside it under a guard. A task whose domain has been disposed
 * meanwhile is dropped without running (D-86).
 */
#ifndef BULWARK_TICK_H
#define BULWARK_TICK_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Queue fn(data) for right after the current callback. Outside any
 * callback, it runs at the start of the next bw_loop_run (or the next
 * callback, whichever comes first). 0 or -ENOMEM. */
BW_EXTERN int bw_next_tick(bw_loop *loop, bw_task_fn fn, void *data);

/*
 * Queue fn(data) for the loop's check phase. Ownership is a one-shot
 * timer's (timer.h): with `out` NULL the immediate frees itself once it has
 * run or been cleared; with `out`, *out is the caller's handle, valid until
 * the caller's bw_immediate_release, whatever happened to the task.
 * 0, -EINVAL (no loop or no fn) or -ENOMEM (nothing queued, *out NULL).
 */
BW_EXTERN int bw_set_immediate(bw_loop *loop, bw_task_fn fn, void *data, bw_immediate **out);
/* Cancel a pending immediate; a no-op once it has run or been cleared. */
BW_EXTERN void bw_immediate_clear(bw_immediate *im);
/* One more owner of the handle (returns im); each ends with a release. */
BW_EXTERN bw_immediate *bw_immediate_hold(bw_immediate *im);
BW_EXTERN void bw_immediate_release(bw_immediate *im);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_TICK_H */
