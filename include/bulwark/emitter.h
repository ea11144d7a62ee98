/*
 * emitter.h: event emitters with Node's domain semantics.
 *
 * An emitter created while a domain is active is bound to it for good
 * (implicit binding, D-13); bw_domain_add binds one explicitly. Listeners
 * of ordinary events run inside the emitter's domain (D-32).
 *
 * The `error` event is routed as in the seeds:
 *   1. if the emitter has `error` listeners, they get the error, untouched;
 *   2. else, if it has a domain, the domain's handler gets it, decorated
 *      (domain, domain_emitter = the emitter, domain_thrown = no), and the
 *      emit reports "not handled by a listener"; a domain with no handler
 *      that is a member of another passes it to its owner (domain.h);
 *   3. else the error is thrown.
 */
#ifndef BULWARK_EMITTER_H
#define BULWARK_EMITTER_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The name of the error event. */
#define BW_EVENT_ERROR "error"

/*
 * A listener. `arg` is what the emit passed (for `error`, the bw_error *,
 * borrowed). A listener may add or remove listeners, including itself;
 * changes take effect from the next emit.
 */
typedef void (*bw_listener_fn)(bw_emitter *e, void *arg, void *data);

/* A new emitter in *out, bound to the active domain (if any); the caller's
 * until bw_emitter_free. 0, or -ENOMEM (*out is then NULL). */
BW_EXTERN int bw_emitter_new(bw_emitter **out);

/* Remove the emitter from its domain and free it with its listeners. Safe
 * inside one of its own listeners: the free then waits for the emit. */
BW_EXTERN void bw_emitter_free(bw_emitter *e);

/* Add a listener for `event` (the name is copied). 0 or -ENOMEM. */
BW_EXTERN int bw_emitter_on(bw_emitter *e, const char *event, bw_listener_fn fn, void *data);
/* Add a listener that is removed before its first call. */
BW_EXTERN int bw_emitter_once(bw_emitter *e, const char *event, bw_listener_fn fn, void *data);
/* Remove the first listener with this fn and data; 0 or -ENOENT. */
BW_EXTERN int bw_emitter_off(bw_emitter *e, const char *event, bw_listener_fn fn, void *data);
/* Remove every listener of `event`, or of every event if `event` is NULL. */
BW_EXTERN void bw_emitter_off_all(bw_emitter *e, const char *event);
BW_EXTERN size_t bw_emitter_listener_count(const bw_emitter *e, const char *event);

/*
 * Emit an ordinary event: call its listeners in order, inside the emitter's
 * domain. Returns true if there were listeners. Emitting BW_EVENT_ERROR
 * through this function is the same as bw_emitter_emit_error(e, arg) with
 * a new reference taken on arg.
 */
BW_EXTERN bool bw_emitter_emit(bw_emitter *e, const char *event, void *arg);

/*
 * Emit `error` (consumes the caller's reference on `err`; NULL is replaced
 * by an error of code BW_EUNHANDLED, D-46). Returns true if a listener
 * handled it, false if it went to the domain (D-45). With neither, it is
 * thrown and this call does not return (D-47). While the domain's handler
 * runs, the adjacent copies of the active domain are popped (D-48); a throw
 * from that handler comes out of this call site as a thrown error (D-62).
 */
BW_EXTERN bool bw_emitter_emit_error(bw_emitter *e, bw_error *err);

/* The emitter as a domain member (for bw_domain_add and bw_member_owner). */
BW_EXTERN bw_member *bw_emitter_member(bw_emitter *e);
/* Its domain, or NULL. */
BW_EXTERN bw_domain *bw_emitter_domain(const bw_emitter *e);

/* A user pointer the library never touches. */
BW_EXTERN void bw_emitter_set_data(bw_emitter *e, void *data);
BW_EXTERN void *bw_emitter_data(const bw_emitter *e);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_EMITTER_H */
