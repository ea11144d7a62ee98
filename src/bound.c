/*
 * bound.c: bind and intercept wrappers (d.bind(fn), d.intercept(fn)).
 *
 * C has no closures, so a wrapper is an object {domain, fn, ctx} that is
 * called through bw_bound_call or through the bw_callback-shaped
 * bw_bound_callback. It holds its domain.
 */
#include "internal.h"

enum { BOUND_BIND, BOUND_INTERCEPT };

struct bw_bound {
    bw_domain *d;
    int kind;
    bw_bound_fn fn;
    bw_intercept_fn ifn;
    void *ctx;
    bool once;
    bool release_pending;
    uint32_t active; /* calls in progress */
};

static bw_bound *bound_new(bw_domain *d, int kind, void *ctx)
{
    bw_bound *b = bw_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->d = bw_domain_hold(d);
    b->kind = kind;
    b->ctx = ctx;
    return b;
}

int bw_domain_bind(bw_domain *d, bw_bound_fn fn, void *ctx, bw_bound **out)
{
    *out = NULL;
    if (d == NULL || fn == NULL)
        return -EINVAL;
    bw_bound *b = bound_new(d, BOUND_BIND, ctx);
    if (b == NULL)
        return -ENOMEM;
    b->fn = fn;
    *out = b;
    return 0;
}

int bw_domain_intercept(bw_domain *d, bw_intercept_fn fn, void *ctx, bw_bound **out)
{
    *out = NULL;
    if (d == NULL || fn == NULL)
        return -EINVAL;
    bw_bound *b = bound_new(d, BOUND_INTERCEPT, ctx);
    if (b == NULL)
        return -ENOMEM;
    b->ifn = fn;
    *out = b;
    return 0;
}

bw_bound *bw_bound_once(bw_bound *b)
{
    b->once = true;
    return b;
}

bw_domain *bw_bound_domain(const bw_bound *b)
{
    return b->d;
}

static void bound_free(bw_bound *b)
{
    bw_domain_release(b->d);
    bw_free(b);
}

void bw_bound_release(bw_bound *b)
{
    if (b == NULL)
        return;
    if (b->active > 0) {
        b->release_pending = true;
        return;
    }
    bound_free(b);
}

static void release_error(void *err, void *unused)
{
    (void)unused;
    bw_error_release(err);
}

/* A call ends, normally or by a throw crossing it. */
static void call_end(void *arg, void *unused)
{
    (void)unused;
    bw_bound *b = arg;
    b->active--;
    if (b->active == 0 && (b->release_pending || b->once))
        bound_free(b);
}

static void call_begin(bw__thread *t, bw_bound *b, bool *unwind)
{
    b->active++;
    *unwind = bw__unwind_push(t, call_end, b, NULL);
}

static void call_finish(bw__thread *t, bw_bound *b, bool unwind)
{
    if (unwind)
        bw__unwind_pop(t);
    call_end(b, NULL);
}

void *bw_bound_call(bw_bound *b, void *arg)
{
    bw__thread *t = bw__thread_get();
    if (b->d->disposed) {
        if (b->once && b->active == 0)
            bound_free(b);
        return NULL; /* D-84: bound wrappers of a disposed domain do nothing */
    }
    bool unwind;
    call_begin(t, b, &unwind);
    void *ret = NULL;
    if (bw_domain_enter(b->d) != 0)
        bw_throw(NULL);
    if (b->kind == BOUND_BIND)
        ret = b->fn(b->ctx, arg);
    else
        b->ifn(b->ctx, arg);
    bw_domain_exit(b->d);
    call_finish(t, b, unwind);
    return ret;
}

void bw_bound_callback(bw_error *err, void *result, void *bound)
{
    bw_bound *b = bound;
    bw__thread *t = bw__thread_get();
    bw_domain *d = b->d;
    if (d->disposed) {
        /* Errors reaching a disposed domain are swallowed (D-85). */
        if (b->once && b->active == 0)
            bound_free(b);
        return;
    }
    if (err == NULL) {
        bw_bound_call(b, result);
        return;
    }
    /* `err` is borrowed, as in every bw_callback (a bulwark operation that
     * completes through this wrapper releases its own reference after the
     * call): routing consumes a reference of our own. */
    bw_error_hold(err);
    bool unwind;
    call_begin(t, b, &unwind);
    if (b->kind == BOUND_BIND) {
        /* A bind wrapper has no error argument: the error is thrown inside
         * its domain, as the function itself would have done. */
        if (bw_domain_enter(d) != 0)
            bw_throw(NULL);
        bw_throw(err);
    }
    /* Intercept: the error goes to the domain's handler, decorated as bound
     * (D-39, D-70); with no handler, to d's owner if d is a member of another
     * domain, else it is thrown (Node's domain.emit('error') with no
     * listener throws). */
    bw__error_default_origin(err, BW_ORIGIN_CALLBACK);
    bw__error_decorate_bound(err, d, (bw_fnptr)b->ifn);
    if (d->nhandlers == 0) {
        /* Node: d.emit('error'), which passes it to d's owner, if any, and
         * throws it from here otherwise. */
        bw__domain_emit_error(t, d, err, false);
        call_finish(t, b, unwind);
        return;
    }
    /* The error is released by an unwind record if a handler throws. */
    bool err_unwind = bw__unwind_push(t, release_error, err, NULL);
    bw__domain_call_handlers(d, err);
    if (err_unwind)
        bw__unwind_pop(t);
    bw_error_release(err);
    call_finish(t, b, unwind);
}
