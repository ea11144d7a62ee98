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
 * Lifetime: the loop owns a timer while it is pending. A one-shot timer is
 * finished once its callback has returned; an interval, once it is cleared;
 * either, once its domain is disposed. A finished timer is freed, so a
 * pointer kept beyond that must hold a reference (bw_timer_hold, then
 * bw_timer_release when done). bw_timer_clear on a held, finished timer is
 * a harmless no-op.
 */
#ifndef BULWARK_TIMER_H
#define BULWARK_TIMER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*bw_timer_cb)(bw_timer *t, void *data);

/* Call cb once after `ms` milliseconds. NULL on failure (ENOMEM). */
BW_EXTERN bw_timer *bw_timeout(bw_loop *loop, uint64_t ms, bw_timer_cb cb, void *data);

/* Call cb every `ms` milliseconds (at least 1) until cleared. */
BW_EXTERN bw_timer *bw_interval(bw_loop *loop, uint64_t ms, bw_timer_cb cb, void *data);

/* Cancel: the callback will not run again. Safe from inside the callback. */
BW_EXTERN void bw_timer_clear(bw_timer *t);

/* Whether the timer keeps the loop alive (default yes), as uv_ref/unref. */
BW_EXTERN void bw_timer_ref(bw_timer *t);
BW_EXTERN void bw_timer_unref(bw_timer *t);
BW_EXTERN bool bw_timer_has_ref(const bw_timer *t);

/* True until the timer is finished (see above). */
BW_EXTERN bool bw_timer_is_pending(const bw_timer *t);

/* Reference counting for pointers kept beyond the timer's pending life. */
BW_EXTERN bw_timer *bw_timer_hold(bw_timer *t);
BW_EXTERN void bw_timer_release(bw_timer *t);

/* The timer as a domain member, and its domain (or NULL). */
BW_EXTERN bw_member *bw_timer_member(bw_timer *t);
BW_EXTERN bw_domain *bw_timer_domain(const bw_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_TIMER_H */
