/*
 * test_bind.c: bind and intercept (domain-behaviors.md sections 5 and 6,
 * D-36..D-43).
 *
 * C has no closures: a wrapper is a bw_bound object, called through
 * bw_bound_call (bind) or the bw_callback-shaped bw_bound_callback
 * (intercept, and any bulwark completion).
 */
#include "bw_rec.h"

#include <fcntl.h>

/* ---- 5. bind ------------------------------------------------------------ */

typedef struct d36 {
    bw_domain *d;
    bw_domain *seen;
    int calls;
} d36;

static void *d36_plus_one(void *ctx, void *arg)
{
    d36 *s = ctx;
    s->calls++;
    s->seen = bw_domain_active();
    return (void *)((intptr_t)arg + 1);
}

BW_TEST(D_36, bind_enters_calls_exits_and_returns)
{
    bw_domain *a = bw_test_domain();
    d36 s = {bw_test_domain(), NULL, 0};
    bw_bound *w = bw_test_bind(s.d, d36_plus_one, &s);
    BW_CHECK(w != NULL);
    BW_CHECK_PTR_EQ(bw_bound_domain(w), s.d);
    bw_domain_enter(a);
    void *ret = bw_bound_call(w, (void *)(intptr_t)1);
    BW_CHECK_INT_EQ((intptr_t)ret, 2);
    BW_CHECK_INT_EQ(s.calls, 1);
    BW_CHECK_PTR_EQ(s.seen, s.d);
    BW_CHECK_PTR_EQ(bw_domain_active(), a);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    bw_domain_exit(a);
    /* The wrapper holds its domain: the user's reference can go first. */
    bw_domain_release(s.d);
    BW_CHECK_INT_EQ((intptr_t)bw_bound_call(w, (void *)(intptr_t)41), 42);
    BW_CHECK_INT_EQ(s.calls, 2);
    bw_bound_release(w);
    bw_domain_release(a);
}

static void *d37_throw(void *ctx, void *arg)
{
    (void)arg;
    (*(int *)ctx)++;
    bw_throwf(-EINVAL, "foobar");
}

static void d37_timer(bw_timer *t, void *data)
{
    (void)t;
    bw_bound_call(data, NULL);
}

BW_TEST(D_37, throw_from_bound_function_is_thrown_not_bound)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    int ran = 0;
    bw_bound *w = bw_test_bind(d, d37_throw, &ran);
    bw_timer *t;
    BW_CHECK_INT_EQ(bw_timeout(loop, 1, d37_timer, w, &t), 0); /* outside any domain */
    BW_CHECK(bw_timer_domain(t) == NULL);
    bw_timer_release(t); /* the loop keeps it until it fires */
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(ran, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "foobar");
    BW_CHECK_ROUTING(r.err[0], d, BW_YES, NULL, NULL);
    bw_rec_clear(&r);
    bw_bound_release(w);
    bw_domain_release(d);
}

/* D-38: the "server" (an emitter) belongs to a; res.write's completion is
 * bind(b, throw), called from a listener that runs inside a. */
typedef struct d38 {
    bw_bound *write_cb;
    int drains;
} d38;

static void d38_on_drain(bw_emitter *res, void *arg, void *data)
{
    (void)res;
    (void)arg;
    d38 *s = data;
    s->drains++;
    bw_bound_call(s->write_cb, NULL);
}

static void d38_write(void *arg)
{
    bw_emitter *res = arg;
    bw_emitter_emit(res, "drain", NULL);
}

BW_TEST(D_38, bound_callback_runs_in_its_domain_whatever_the_caller)
{
    bw_rec ra = {0}, rb = {0};
    bw_domain *a = bw_rec_domain(&ra);
    bw_domain *b = bw_rec_domain(&rb);
    int ran = 0;
    d38 s = {bw_test_bind(b, d37_throw, &ran), 0};
    bw_emitter *res = bw_test_emitter();
    bw_domain_add(a, bw_emitter_member(res));
    bw_emitter_on(res, "drain", d38_on_drain, &s);
    bw_test_main(d38_write, res);
    BW_CHECK_INT_EQ(s.drains, 1);
    BW_CHECK_INT_EQ(ran, 1);
    BW_CHECK_INT_EQ(rb.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(rb.err[0]), b);
    BW_CHECK_PTR_EQ(rb.active[0], a); /* popped b: the caller's a is below */
    BW_CHECK_INT_EQ(ra.calls, 0);
    bw_rec_clear(&ra);
    bw_rec_clear(&rb);
    bw_emitter_free(res);
    bw_bound_release(s.write_cb);
    bw_domain_release(a);
    bw_domain_release(b);
}

/* ---- 6. intercept ------------------------------------------------------- */

typedef struct icpt {
    int calls;
    void *result;
    bw_domain *seen;
} icpt;

static void icpt_fn(void *ctx, void *result)
{
    icpt *s = ctx;
    s->calls++;
    s->result = result;
    s->seen = bw_domain_active();
}

typedef struct icpt_call {
    bw_bound *w;
    bw_error *err;
    void *result;
} icpt_call;

static void icpt_deliver(void *arg)
{
    icpt_call *c = arg;
    bw_bound_callback(c->err, c->result, c->w);
    bw_error_release(c->err); /* the caller's reference: the callback borrowed it */
}

BW_TEST(D_39, intercept_routes_an_error_without_calling_fn)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    icpt s = {0};
    bw_bound *w = bw_test_intercept(d, icpt_fn, &s);
    BW_CHECK_PTR_EQ(bw_bound_domain(w), d);
    icpt_call c = {w, bw_error_new(-EINVAL, "foobar"), NULL};
    bw_error *sent = c.err;
    bw_test_main(icpt_deliver, &c);
    BW_CHECK_INT_EQ(s.calls, 0);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(r.err[0], sent);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "foobar");
    /* domain_bound is the original function, not the wrapper */
    BW_CHECK_ROUTING(r.err[0], d, BW_NO, NULL, icpt_fn);
    BW_CHECK_INT_EQ(bw_error_origin_of(r.err[0]), BW_ORIGIN_CALLBACK);
    bw_rec_clear(&r);
    bw_bound_release(w);
    bw_domain_release(d);
}

BW_TEST(D_40, intercept_without_error_strips_it_and_calls_fn)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    icpt s = {0};
    bw_bound *w = bw_test_intercept(d, icpt_fn, &s);
    icpt_call c = {w, NULL, "data"};
    bw_test_main(icpt_deliver, &c);
    BW_CHECK_INT_EQ(s.calls, 1);
    BW_CHECK_STR_EQ(s.result, "data");
    BW_CHECK_INT_EQ(r.calls, 0);
    /* bw_bound_call is the same path without the error argument. */
    bw_bound_call(w, "more");
    BW_CHECK_INT_EQ(s.calls, 2);
    BW_CHECK_STR_EQ(s.result, "more");
    bw_bound_release(w);
    bw_domain_release(d);
}

/* D-41: C's completion carries one result pointer: several results travel
 * together in one struct, and all of them reach fn. */
typedef struct two_results {
    const char *first;
    const char *second;
} two_results;

BW_TEST(D_41, several_results_are_all_passed_on)
{
    bw_domain *d = bw_test_domain();
    icpt s = {0};
    two_results both = {"data", "data2"};
    bw_bound *w = bw_test_intercept(d, icpt_fn, &s);
    icpt_call c = {w, NULL, &both};
    bw_test_main(icpt_deliver, &c);
    BW_CHECK_INT_EQ(s.calls, 1);
    two_results *got = s.result;
    BW_CHECK_STR_EQ(got->first, "data");
    BW_CHECK_STR_EQ(got->second, "data2");
    bw_bound_release(w);
    bw_domain_release(d);
}

static void d42_main(void *arg)
{
    icpt_call *c = arg;
    bw_domain *a = bw_test_domain();
    bw_domain_enter(a);
    bw_bound_callback(NULL, c->result, c->w);
    BW_CHECK_PTR_EQ(bw_domain_active(), a);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    bw_domain_exit(a);
    bw_domain_release(a);
}

BW_TEST(D_42, intercepted_function_runs_inside_the_domain)
{
    bw_domain *d = bw_test_domain();
    icpt s = {0};
    bw_bound *w = bw_test_intercept(d, icpt_fn, &s);
    icpt_call c = {w, NULL, "x"};
    bw_test_main(d42_main, &c);
    BW_CHECK_INT_EQ(s.calls, 1);
    BW_CHECK_PTR_EQ(s.seen, d);
    bw_bound_release(w);
    bw_domain_release(d);
}

/* D-43: intercept as an I/O completion callback. */
BW_TEST(D_43, intercept_as_io_callback_keeps_every_field)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    icpt s = {0};
    bw_bound *w = bw_bound_once(bw_test_intercept(d, icpt_fn, &s));
    BW_CHECK_INT_EQ(bw_fs_open(loop, "this file does not exist", O_RDONLY, 0, bw_bound_callback, w),
                    0);
    bw_test_loop_finish(loop); /* the once-wrapper released itself */
    BW_CHECK_INT_EQ(s.calls, 0);
    BW_CHECK_INT_EQ(r.calls, 1);
    bw_error *err = r.err[0];
    BW_CHECK_INT_EQ(bw_error_code(err), -ENOENT);
    BW_CHECK_STR_EQ(bw_err_name(bw_error_code(err)), "ENOENT");
    BW_CHECK_STR_EQ(bw_error_path(err), "this file does not exist");
    BW_CHECK_STR_EQ(bw_error_syscall(err), "open");
    BW_CHECK_ROUTING(err, d, BW_NO, NULL, icpt_fn);
    bw_rec_clear(&r);
    bw_domain_release(d);
}
