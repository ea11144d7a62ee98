/*
 * guard.c: guards, throw and try, callback boundaries, and the process
 * level (uncaught handlers, abort mode).
 *
 * A guard is a sigjmp_buf on the C stack of the library frame that calls
 * user code, linked into the thread's guard chain. It is armed with
 * sigsetjmp(env, 0): no system call on the normal path. A throw or a fault
 * jumps back to it; the fault path alone restores the signal mask.
 *
 * Everything a frame needs after the jump lives in the guard itself (in
 * memory, never in a register that the jump may have clobbered).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

atomic_int bw__uncaught_count;
atomic_bool bw__abort_mode;

static inline void guard_arm(bw__thread *t, bw__guard *g, int kind)
{
    g->prev = t->guard;
    /* A new outermost callback, for the callback limit (watchdog.c): the
     * guard's only cost for it. */
    t->watch_gen += g->prev == NULL;
    g->kind = kind;
    g->thrown = NULL;
    g->unwind_mark = t->unwind_depth;
    g->stack_base = t->depth;
    t->guard = g;
}

/* After a jump: disarm, recover the error, run the unwind records of the
 * library frames the jump crossed. */
static bw_error *guard_landed(bw__thread *t, bw__guard *g, int how)
{
    t->guard = g->prev;
    bw_error *err;
    if (how == BW__JUMP_FAULT) {
        bw__fault_unmask();
        err = bw__fault_take_error(t);
    } else {
        err = g->thrown;
    }
    bw__unwind_run_to(t, g->unwind_mark);
    return err;
}

static void replenish_spare(bw__thread *t)
{
    if (t->spare_fault == NULL)
        t->spare_fault = bw__error_alloc(256);
}

/* ---- throw ------------------------------------------------------------- */

void bw_throw(bw_error *err)
{
    bw__thread *t = bw__thread_get();
    if (err == NULL) {
        err = t->oom_error;
        err->holds++;
    }
    bw__error_default_origin(err, BW_ORIGIN_THROWN);
    bw__guard *g = t->guard;
    if (g == NULL)
        bw__fatal(err, "error thrown outside any guarded callback (use bw_invoke)",
                  BW_EXIT_UNCAUGHT);
    g->thrown = err;
    siglongjmp(g->env, BW__JUMP_THROW);
}

void bw_throwf(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bw_error *err = bw__error_newv_at(__builtin_return_address(0), code, fmt, ap);
    va_end(ap);
    bw_throw(err);
}

void bw_throw_value(void *value)
{
    bw_error *err = bw__error_alloc(32);
    if (err == NULL)
        bw_throw(NULL);
    err->code = BW_ETHROWN;
    err->is_value = true;
    err->value = value;
    strcpy(err->message, "a value was thrown");
    bw_throw(err);
}

/* ---- try --------------------------------------------------------------- */

bw_error *bw_try(bw_task_fn fn, void *arg)
{
    bw__thread *t = bw__thread_get();
    bw__guard g;
    guard_arm(t, &g, BW__GUARD_TRY);
    int how = sigsetjmp(g.env, 0);
    if (how == 0) {
        fn(arg);
        bw__tls->guard = g.prev;
        return NULL;
    }
    bw__thread *tt = bw__tls;
    bw_error *err = guard_landed(tt, &g, how);
    bw__stack_truncate(tt, g.stack_base);
    replenish_spare(tt);
    return err;
}

bool bw_in_guard(void)
{
    bw__thread *t = bw__tls;
    return t != NULL && t->guard != NULL;
}

/* ---- boundaries -------------------------------------------------------- */

void bw__boundary(bw__thread *t, bw_domain *d, bw_task_fn fn, void *arg)
{
    bw__guard g;
    guard_arm(t, &g, BW__GUARD_BOUNDARY);
    int how = sigsetjmp(g.env, 0);
    if (BW__LIKELY(how == 0)) {
        if (d != NULL && BW__UNLIKELY(bw__stack_push(t, d) != 0))
            bw_throw(NULL);
        fn(arg);
        bw__thread *tn = bw__tls;
        bw__stack_truncate(tn, g.stack_base);
        tn->guard = g.prev;
        return;
    }
    bw__thread *tt = bw__tls;
    bw_error *err = guard_landed(tt, &g, how);
    bw__route(tt, err, g.stack_base);
    replenish_spare(tt);
}

void bw_invoke(bw_domain *d, bw_task_fn fn, void *arg)
{
    bw__thread *t = bw__thread_get();
    if (d != NULL && d->disposed)
        return;
    bool outermost = t->guard == NULL;
    bw__boundary(t, d, fn, arg);
    if (outermost && t->tick_head != NULL)
        bw__drain_ticks(t);
}

/* ---- Handler calls ----------------------------------------------------- */

/* Call d's handlers under a guard of `kind`. Returns NULL, or (for a
 * HANDLER guard) the error a handler threw. A throw under a FATAL guard
 * ends the process. */
static bw_error *call_handlers_guarded(bw__thread *t, bw_domain *d, bw_error *err, int kind)
{
    bw__guard g;
    guard_arm(t, &g, kind);
    int how = sigsetjmp(g.env, 0);
    if (how == 0) {
        bw__domain_call_handlers(d, err);
        bw__tls->guard = g.prev;
        return NULL;
    }
    bw__thread *tt = bw__tls;
    bw_error *err2 = guard_landed(tt, &g, how);
    replenish_spare(tt);
    if (g.kind == BW__GUARD_FATAL)
        bw__fatal(err2, "error thrown from the outermost domain error handler",
                  BW_EXIT_HANDLER_THREW);
    return err2;
}

/* ---- The process level ------------------------------------------------- */

typedef struct uncaught_handler {
    bw_uncaught_cb cb;
    void *data;
} uncaught_handler;

static uncaught_handler *uncaught_handlers;
static size_t uncaught_cap;

int bw_on_uncaught(bw_uncaught_cb cb, void *data)
{
    size_t n = (size_t)atomic_load(&bw__uncaught_count);
    if (n == uncaught_cap) {
        size_t cap = uncaught_cap ? uncaught_cap * 2 : 4;
        uncaught_handler *h = bw_realloc(uncaught_handlers, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        uncaught_handlers = h;
        uncaught_cap = cap;
    }
    uncaught_handlers[n] = (uncaught_handler){cb, data};
    atomic_store(&bw__uncaught_count, (int)n + 1);
    return 0;
}

int bw_off_uncaught(bw_uncaught_cb cb, void *data)
{
    size_t n = (size_t)atomic_load(&bw__uncaught_count);
    for (size_t i = 0; i < n; i++) {
        if (uncaught_handlers[i].cb == cb && uncaught_handlers[i].data == data) {
            memmove(&uncaught_handlers[i], &uncaught_handlers[i + 1],
                    (n - i - 1) * sizeof *uncaught_handlers);
            atomic_store(&bw__uncaught_count, (int)n - 1);
            return 0;
        }
    }
    return -ENOENT;
}

void bw_set_abort_on_uncaught(bool enabled)
{
    atomic_store(&bw__abort_mode, enabled);
}

bool bw_abort_on_uncaught(void)
{
    return atomic_load(&bw__abort_mode);
}

typedef struct uncaught_call {
    uncaught_handler *handlers;
    size_t n;
    bw_error *err;
} uncaught_call;

static void run_uncaught_handlers(void *arg)
{
    uncaught_call *c = arg;
    for (size_t i = 0; i < c->n; i++)
        c->handlers[i].cb(c->err, c->handlers[i].data);
}

/* An error no domain took. Consumes err. */
static void route_uncaught(bw__thread *t, bw_error *err)
{
    if (atomic_load(&bw__abort_mode))
        bw__fatal(err, "uncaught error (abort mode)", BW_EXIT_UNCAUGHT);
    size_t n = (size_t)atomic_load(&bw__uncaught_count);
    if (n == 0)
        bw__fatal(err, "uncaught error", BW_EXIT_UNCAUGHT);
    /* Handlers may install or remove handlers: call a copy. */
    uncaught_handler copy[8];
    uncaught_handler *handlers = n <= 8 ? copy : bw_malloc(n * sizeof *handlers);
    if (handlers == NULL)
        bw__fatal(err, "uncaught error (no memory to call the uncaught handlers)",
                  BW_EXIT_UNCAUGHT);
    memcpy(handlers, uncaught_handlers, n * sizeof *handlers);
    uncaught_call call = {handlers, n, err};
    bw__guard g;
    guard_arm(t, &g, BW__GUARD_FATAL);
    int how = sigsetjmp(g.env, 0);
    if (how == 0) {
        run_uncaught_handlers(&call);
        bw__tls->guard = g.prev;
    } else {
        bw__thread *tt = bw__tls;
        bw_error *err2 = guard_landed(tt, &g, how);
        bw__fatal(err2, "error thrown from an uncaught-error handler", BW_EXIT_HANDLER_THREW);
    }
    if (handlers != copy)
        bw_free(handlers);
    bw_error_release(err);
}

void bw__fatal(bw_error *err, const char *why, int code)
{
    bw__log_error(BW_LOG_FATAL, err, NULL, "%s", why);
    if (atomic_load(&bw__abort_mode))
        bw__die_by_signal(SIGABRT);
    if (err->origin == BW_ORIGIN_FAULT && err->signo != 0)
        bw__die_by_signal(err->signo);
    exit(code);
}

/* ---- Routing ----------------------------------------------------------- */

static bool stack_catches(const bw__thread *t)
{
    for (size_t i = t->depth; i > 0; i--)
        if (bw__domain_catches(t->stack[i - 1]))
            return true;
    return false;
}

bool bw__error_would_be_caught(const bw__thread *t)
{
    if (stack_catches(t))
        return true;
    if (t->guard != NULL && t->guard->kind == BW__GUARD_HANDLER)
        return false; /* a throw from a handler never reaches the process level */
    return atomic_load(&bw__uncaught_count) > 0 && !atomic_load(&bw__abort_mode);
}

/*
 * The routing algorithm (DESIGN.md, "Routing"), run after a guard caught
 * `err` (consumed). The stack is the stack at the moment of the throw.
 *  1. No domain on the stack catches: the process level takes it.
 *  2. d = top; decorate; pop d and its adjacent duplicates (a handler never
 *     runs inside its own domain, D-58).
 *  3. d disposed: swallowed (D-85). d without handlers: the same error goes
 *     to the next domain down (D-64, D-73).
 *  4. Stack now empty: d is the outermost; a throw from its handler is
 *     fatal (D-59). Otherwise a throw from its handler is routed to what is
 *     left of the stack, repeating from 2 (D-58).
 *  5. The stack is cleared: nothing leaks into the next callback (D-56).
 */
void bw__route(bw__thread *t, bw_error *err, size_t base)
{
    /* A dispose inside the callback removes its domain from the whole stack,
     * below `base` too: never look past the real top (a removed entry's
     * slot may point at a freed domain). */
    if (base > t->depth)
        base = t->depth;
    bw__stack_snapshot outer = {NULL, 0};
    if (base > 0 && t->guard != NULL) {
        /* A nested boundary (a guard encloses it): keep the domains of the
         * enclosing callback, which goes on running in them. At the
         * outermost boundary the whole stack is cleared, whatever code
         * outside any guard had entered: "no domains should be left on the
         * stack between ticks" (Node's lib/domain.js; D-56). */
        size_t depth = t->depth;
        t->depth = base;
        if (bw__stack_save(t, &outer) != 0)
            outer.depth = 0;
        t->depth = depth;
    }
    bool first = true;
    for (;;) {
        if (!stack_catches(t)) {
            if (!first)
                bw__fatal(err, "error thrown from a domain error handler, and no domain below "
                               "it has a handler",
                          BW_EXIT_HANDLER_THREW);
            bw__stack_truncate(t, 0);
            route_uncaught(t, err);
            err = NULL;
            break;
        }
        bw_domain *d = bw_domain_hold(t->stack[t->depth - 1]);
        if (!err->is_value) {
            bw__error_set_domain(err, d);
            err->thrown = BW_YES;
        }
        while (t->depth > 0 && t->stack[t->depth - 1] == d)
            bw__stack_truncate(t, t->depth - 1);
        if (d->disposed) {
            bw_domain_release(d);
            break;
        }
        if (d->nhandlers == 0) {
            /* A member domain passes it to its owner, as Node's emit does
             * (the owner's handler runs with the next domain down popped
             * too); with no owner that has a handler, the same error goes
             * to the next domain down (D-64, D-73). */
            bw_domain *owner = bw_domain_hold(bw__domain_pass_up(t, d, err));
            bw_domain_release(d);
            d = owner;
            if (d->nhandlers == 0) {
                bw_domain_release(d);
                continue;
            }
        }
        int kind = t->depth == 0 ? BW__GUARD_FATAL : BW__GUARD_HANDLER;
        bw_error *err2 = call_handlers_guarded(t, d, err, kind);
        bw_domain_release(d);
        if (err2 == NULL)
            break;
        bw_error_release(err);
        err = err2;
        bw__error_default_origin(err, BW_ORIGIN_THROWN);
        first = false;
    }
    if (err != NULL)
        bw_error_release(err);
    bw__stack_truncate(t, 0);
    if (outer.depth > 0)
        bw__stack_restore(t, &outer);
}
