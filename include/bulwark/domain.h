/*
 * domain.h: error-handling contexts that follow asynchronous work.
 *
 * A domain is Node's `domain` in C. While a domain is active (entered),
 * every emitter, timer, immediate, next-tick, I/O request and resource
 * created through bulwark is bound to it, and their callbacks later run
 * inside it. Whatever goes wrong in any of them (bw_throw, an `error` event
 * with no listener, an error passed to an intercepted callback, or a fault
 * such as a NULL dereference) reaches the domain's error handler instead
 * of ending the process.
 *
 * The domain stack is per thread. Routing of a thrown error or fault
 * follows the stack at the moment it happens, from the top down, to the
 * first domain with a handler (a domain without one that is a member of
 * another passes it to its owner); the handler runs with that domain popped
 * (its parent is active). With no handler anywhere, the process-level
 * uncaught handlers of guard.h run; with none of those, the process reports
 * the error and ends (a fault re-raises its signal, so the exit status and
 * core dump are true; any other error exits 1).
 *
 * Beyond Node, a domain owns memory (an arena) and cleanup callbacks, and
 * disposing it closes its members and frees what it owns, so a request that
 * failed leaks nothing that it allocated through its domain.
 *
 * Lifetime: domains are reference-counted. bw_domain_new gives the caller one
 * reference (bw_domain_release gives it up). Members, stack entries, pending callbacks,
 * bound wrappers and errors that name the domain each hold one more, so a
 * domain lives as long as anything bound to it. The member lists are weak:
 * a member removes itself when it is freed, so there is no cycle.
 *
 * Threads: a domain belongs to the thread that created it.
 */
#ifndef BULWARK_DOMAIN_H
#define BULWARK_DOMAIN_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A domain error handler. `err` is borrowed (bw_error_hold to keep it). It
 * runs with `d` popped from the stack: bw_domain_active() is the parent. */
typedef void (*bw_domain_error_cb)(bw_domain *d, bw_error *err, void *data);

/* ---- Life cycle -------------------------------------------------------- */

/* A new, inert domain in *out: not entered, no members, no owner (domains
 * are never bound implicitly, D-03). 0, or -ENOMEM (*out is then NULL). */
BW_EXTERN int bw_domain_new(bw_domain **out);

/* Reference counting. bw_domain_hold returns its argument. The last release
 * of a domain that was never disposed runs its cleanups (each guarded, as in
 * bw_domain_dispose) and frees its arena. */
BW_EXTERN bw_domain *bw_domain_hold(bw_domain *d);
BW_EXTERN void bw_domain_release(bw_domain *d);

/*
 * Dispose: in a first phase, with no user code running, mark the domain
 * disposed, take it off the stack and detach it from its owner; then close
 * every member (timers are cleared, emitters lose their listeners and
 * swallow later errors, resources get their close function, member domains
 * are disposed), run the cleanups (last registered first) and free the
 * arena. Afterwards enter/exit/add do nothing, run and bound wrappers do
 * not call their function, pending callbacks bound to it never run, and
 * errors reaching it are swallowed (D-83..D-87).
 *
 * Each close function and cleanup runs under a guard of its own, outside
 * any domain: one that throws or faults costs only itself (the others
 * still run, the arena is still freed). Its error goes to the first domain
 * up the owner chain `d` had that has a handler (decorated as a throw that
 * reached that domain), else it is logged (bw_log, BW_LOG_ERROR); never to
 * `d`'s own handlers. dispose may be called from anywhere, guarded or not.
 * Returns 0, or BW_EDISPOSED if it was already disposed (and does nothing).
 */
BW_EXTERN int bw_domain_dispose(bw_domain *d);
BW_EXTERN bool bw_domain_is_disposed(const bw_domain *d);

/* A name for reports and logs (copied); NULL clears it. 0 or -ENOMEM. */
BW_EXTERN int bw_domain_set_name(bw_domain *d, const char *name);
BW_EXTERN const char *bw_domain_name(const bw_domain *d); /* "" if none */

/* A user pointer the library never touches. */
BW_EXTERN void bw_domain_set_data(bw_domain *d, void *data);
BW_EXTERN void *bw_domain_data(const bw_domain *d);

/* ---- Error handlers ---------------------------------------------------- */

/* Add a handler (Node's d.on('error', h)). Handlers run in the order added.
 * 0 or -ENOMEM. */
BW_EXTERN int bw_domain_on_error(bw_domain *d, bw_domain_error_cb cb, void *data);
/* Add a handler that is removed before its first call (d.once('error')). */
BW_EXTERN int bw_domain_once_error(bw_domain *d, bw_domain_error_cb cb, void *data);
/* Remove the first handler registered with this cb and data; 0 or -ENOENT. */
BW_EXTERN int bw_domain_off_error(bw_domain *d, bw_domain_error_cb cb, void *data);
BW_EXTERN size_t bw_domain_error_handler_count(const bw_domain *d);

/* ---- The stack --------------------------------------------------------- */

/* Push `d` (even if it is already on the stack) and make it active. Does
 * nothing on a disposed domain. 0, or -ENOMEM if the stack cannot grow. */
BW_EXTERN int bw_domain_enter(bw_domain *d);

/* Pop the topmost occurrence of `d` and every domain above it; the new top
 * becomes active. Does nothing if `d` is not on the stack (D-07, D-08). */
BW_EXTERN void bw_domain_exit(bw_domain *d);

/*
 * Enter `d`, call fn(arg), exit `d`, and return fn's result (D-09). If fn
 * throws (or faults), the throw ends the whole current callback: control
 * goes to the guard around it, never back here, and the exit does not
 * happen (the routing clears the stack instead, D-11). On a disposed domain
 * fn is not called and NULL is returned.
 */
BW_EXTERN void *bw_domain_run(bw_domain *d, void *(*fn)(void *arg), void *arg);

/* The active domain (top of the stack), or NULL. */
BW_EXTERN bw_domain *bw_domain_active(void);
/* The number of entries on this thread's stack, and the entry at `index`
 * (0 is the bottom); NULL past the end. */
BW_EXTERN size_t bw_domain_stack_depth(void);
BW_EXTERN bw_domain *bw_domain_stack_at(size_t index);

/* ---- Members ----------------------------------------------------------- */

/*
 * Make `d` the owner of member `m` (an emitter, timer, resource, request,
 * or another domain). An object belongs to at most one domain: adding it to
 * another moves it (D-28); adding it twice changes nothing (D-26). Adding a
 * domain that already (transitively) owns `d` would make a cycle and is
 * refused with BW_ECYCLE (nothing changes, D-34). Returns 0, BW_EDISPOSED
 * if `d` is disposed, or BW_ECYCLE.
 */
BW_EXTERN int bw_domain_add(bw_domain *d, bw_member *m);

/* Clear `m`'s owner if it is `d` and drop it from the members. 0, or
 * -ENOENT if `m` is not a member of `d`. */
BW_EXTERN int bw_domain_remove(bw_domain *d, bw_member *m);

/* How many members `d` has, and whether `m` is one of them. */
BW_EXTERN size_t bw_domain_member_count(const bw_domain *d);
BW_EXTERN bool bw_domain_has_member(const bw_domain *d, const bw_member *m);
/* The member at `index` in the order added (O(index)); NULL past the end. */
BW_EXTERN bw_member *bw_domain_member_at(const bw_domain *d, size_t index);

/* The domain that owns `m`, or NULL. Not a new reference. */
BW_EXTERN bw_domain *bw_member_owner(const bw_member *m);

/* A domain seen as a member of another domain. A member domain passes the
 * errors it has no handler for to its owner, as Node does (thrown errors
 * and faults whose innermost domain it is, its emitters' error events, its
 * intercept wrappers' errors): the owner's handler gets them with
 * domain = the owner, domain_thrown = no and bw_error_domain_member() =
 * the member (docs/DOMAINS.md, "Domains as members"). */
BW_EXTERN bw_member *bw_domain_member(bw_domain *d);

/* ---- bind and intercept ------------------------------------------------ */

typedef void *(*bw_bound_fn)(void *ctx, void *arg);
typedef void (*bw_intercept_fn)(void *ctx, void *result);

/*
 * bind (d.bind(fn)): a wrapper that, when called with bw_bound_call, enters
 * `d`, calls fn(ctx, arg), exits `d` and returns fn's result, whatever
 * domain the caller is in (D-36, D-38). A throw from fn is a thrown error
 * (domain_bound stays unset, D-37). The wrapper, in *out, holds `d`; it is
 * the caller's until bw_bound_release (or its one call, if bw_bound_once).
 * 0, -EINVAL (no domain or no fn), or -ENOMEM; *out is NULL on failure.
 */
BW_EXTERN int bw_domain_bind(bw_domain *d, bw_bound_fn fn, void *ctx, bw_bound **out);

/*
 * intercept (d.intercept(fn)): a wrapper for completions of the bw_callback
 * shape. Called with an error, it does not call fn: the error is routed to
 * `d`'s handler with domain_bound set to fn, domain_thrown false (D-39,
 * D-70). Called without one, it calls fn(ctx, result) inside `d` (D-40..42).
 * *out, status and ownership as for bw_domain_bind.
 */
BW_EXTERN int bw_domain_intercept(bw_domain *d, bw_intercept_fn fn, void *ctx, bw_bound **out);

/* Call a bind wrapper. On a disposed domain fn is not called; NULL. */
BW_EXTERN void *bw_bound_call(bw_bound *b, void *arg);

/*
 * The bw_callback-shaped entry of a wrapper: pass `bw_bound_callback` as the
 * callback and the wrapper as its data to any bulwark operation (or call it
 * from your own completion). As for any bw_callback, `err` is borrowed: the
 * wrapper takes its own reference to route it, and the caller still
 * releases its own. For a bind wrapper, a non-NULL err is thrown inside the
 * domain; otherwise fn(ctx, result) is called.
 */
BW_EXTERN void bw_bound_callback(bw_error *err, void *result, void *bound);

/* Mark the wrapper to be released automatically after its first call:
 * convenient for one-shot completions. Returns `b`. */
BW_EXTERN bw_bound *bw_bound_once(bw_bound *b);

/* The domain the wrapper is bound to (owner(w), D-36). Not a new reference. */
BW_EXTERN bw_domain *bw_bound_domain(const bw_bound *b);

/* Release the wrapper (and its hold on the domain). Safe to call from inside
 * its own call: the release then happens when the call returns. */
BW_EXTERN void bw_bound_release(bw_bound *b);

/* ---- What a domain owns ------------------------------------------------ */

/*
 * Memory from the domain's arena: valid until the domain is disposed or
 * freed, never freed one by one. Aligned for any type. NULL if memory is
 * exhausted or the domain is disposed.
 */
BW_EXTERN void *bw_domain_alloc(bw_domain *d, size_t size);
BW_EXTERN void *bw_domain_calloc(bw_domain *d, size_t count, size_t size);
BW_EXTERN char *bw_domain_strdup(bw_domain *d, const char *s);
/* Bytes currently held by the arena (for tests and metrics). */
BW_EXTERN size_t bw_domain_arena_size(const bw_domain *d);

/*
 * Register fn(arg) to run when the domain is disposed or freed; cleanups
 * run last registered first, outside any domain, each under its own guard
 * (a throw or a fault in one is contained: see bw_domain_dispose).
 * 0, -ENOMEM, or BW_EDISPOSED (fn is then NOT called: the caller still
 * owns what arg points to).
 */
BW_EXTERN int bw_domain_defer(bw_domain *d, bw_task_fn fn, void *arg);

/*
 * Called when a close function or a cleanup failed during a teardown and no
 * owner domain with a handler took the error (it is logged first). The
 * error is the callback's for the call only. For a process that must not
 * serve on in doubt after a fault: cluster.h's crash-safe policy sets it to
 * retire the worker gracefully. One per process; NULL removes it. The
 * callback runs under a guard; an error in it is logged.
 */
typedef void (*bw_teardown_error_cb)(bw_error *err, void *data);
BW_EXTERN void bw_domain_on_teardown_error(bw_teardown_error_cb cb, void *data);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_DOMAIN_H */
