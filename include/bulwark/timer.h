/*
 * timer.h: timeouts and intervals bound to domains.
 *
 * A timer created while a domain is active is bound to it (D-14); its
 * callback runs inside that domain under a guard, so a throw or fault there
 * reaches the domain's handler. bw_domain_add(d, bw_timer_member(t)) moves
 * a timer to another domain (D-35). Unref'ing a timer does not change its
 * domain (D-20), and an unref'd timer does not keep the loop alive (the
 * seed's kill timer).
 *
 * Lifetime: a timer is pending until it is finished: a one-shot once its
 * callback has returned, an interval once it is cleared, either once its
 * domain is disposed. The loop keeps a pending timer alive by itself, so a
 * fire-and-forget timer passes NULL for `out` and is freed when finished.
 * A caller that asks for the handle (`out` not NULL) owns it: the handle
 * stays valid, fired, cleared or disposed, until that caller gives it up
 * with bw_timer_release. So clearing a timer that already fired does
 * nothing, as clearTimeout does in Node. Releasing does not cancel: a
 * released pending timer still fires. bw_timer_hold adds more owners.
 */
#ifndef BULWARK_TIMER_H
#define BULWARK_TIMER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*bw_timer_cb)(bw_timer *t, void *data);

/*
 * Call cb once after `ms` milliseconds. With `out`, *out is the caller's
 * handle (see Lifetime above). 0, -EINVAL (no loop or no cb) or -ENOMEM;
 * on failure nothing is scheduled and *out is NULL.
 */
BW_EXTERN int bw_timeout(bw_loop *loop, uint64_t ms, bw_timer_cb cb, void *data,
                         bw_timer **out);

/* Call cb every `ms` milliseconds (at least 1) until cleared. `out` and the
 * return as for bw_timeout. */
BW_EXTERN int bw_interval(bw_loop *loop, uint64_t ms, bw_timer_cb cb, void *data,
                          bw_timer **out);

/* Cancel: the callback will not run again. Safe from inside the callback,
 * and a no-op on a timer already finished (fired, cleared, disposed). */
BW_EXTERN void bw_timer_clear(bw_timer *t);

/* Whether the timer keeps the loop alive (default yes), as uv_ref/unref. */
BW_EXTERN void bw_timer_ref(bw_timer *t);
BW_EXTERN void bw_timer_unref(bw_timer *t);
BW_EXTERN bool bw_timer_has_ref(const bw_timer *t);

/* True until the timer is finished (see above). */
BW_EXTERN bool bw_timer_is_pending(const bw_timer *t);

/* One more owner of the handle (returns t); each owner ends with one
 * bw_timer_release, after which it must not use the pointer. */
BW_EXTERN bw_timer *bw_timer_hold(bw_timer *t);
BW_EXTERN void bw_timer_release(bw_timer *t);

/* The timer as a domain member, and its domain (or NULL). */
BW_EXTERN bw_member *bw_timer_member(bw_timer *t);
BW_EXTERN bw_domain *bw_timer_domain(const bw_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_TIMER_H */
