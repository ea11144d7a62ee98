/*
 * test_dispose.c: dispose (domain-behaviors.md section 13, D-83..D-87).
 *
 * bulwark keeps legacy Node's dispose and goes further: disposing a domain
 * also closes its members (timers cleared, emitters lose their listeners,
 * resources closed, member domains disposed), runs its cleanups and frees
 * its arena (test_arena.c checks the memory side).
 */
#include "bw_rec.h"

static void never(bw_timer *t, void *data)
{
    (void)t;
    int *calls = data;
    (*calls)++;
}

static void listener(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    (void)arg;
    (*(int *)data)++;
}

BW_TEST(D_83, dispose_exits_unlinks_and_empties)
{
    bw_loop *loop = bw_test_loop();
    bw_domain *p = bw_test_domain();
    bw_domain *d = bw_test_domain();
    bw_domain *other = bw_test_domain();
    int fired = 0, heard = 0;
    bw_timer *t; /* ours: valid after dispose finishes it */
    BW_CHECK_INT_EQ(bw_timeout(loop, 1, never, &fired, &t), 0);
    bw_emitter *e = bw_test_emitter();
    bw_emitter_on(e, "data", listener, &heard);
    bw_domain_add(d, bw_timer_member(t));
    bw_domain_add(d, bw_emitter_member(e));
    bw_domain_enter(other);
    bw_domain_enter(d);
    BW_CHECK_INT_EQ(bw_domain_add(p, bw_domain_member(d)), 0);
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    BW_CHECK(bw_domain_is_disposed(d));
    /* Not on the stack (the rest of it is kept). */
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    BW_CHECK_PTR_EQ(bw_domain_active(), other);
    /* Not a member of its owner any more; no members of its own. */
    BW_CHECK(!bw_domain_has_member(p, bw_domain_member(d)));
    BW_CHECK_INT_EQ(bw_domain_member_count(p), 0);
    BW_CHECK(bw_member_owner(bw_domain_member(d)) == NULL);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 0);
    /* Its members were closed. */
    BW_CHECK(!bw_timer_is_pending(t));
    BW_CHECK(bw_emitter_domain(e) == NULL);
    BW_CHECK_INT_EQ(bw_emitter_listener_count(e, "data"), 0);
    /* A second dispose does nothing. */
    BW_CHECK_INT_EQ(bw_domain_dispose(d), BW_EDISPOSED);
    bw_domain_exit(other);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(fired, 0);
    BW_CHECK(!bw_emitter_emit(e, "data", NULL));
    BW_CHECK_INT_EQ(heard, 0);
    bw_timer_release(t);
    bw_emitter_free(e);
    bw_domain_release(other);
    bw_domain_release(d);
    bw_domain_release(p);
}

/* ---- D-84: a disposed domain does nothing -------------------------------- */

static int fn_calls;

static void *count_run(void *arg)
{
    (void)arg;
    fn_calls++;
    return "ran";
}

static void *count_bound(void *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    fn_calls++;
    return "ran";
}

static void count_icpt(void *ctx, void *result)
{
    (void)ctx;
    (void)result;
    fn_calls++;
}

static void count_task(void *arg)
{
    (void)arg;
    fn_calls++;
}

BW_TEST(D_84, disposed_domain_enter_exit_add_run_bind_do_nothing)
{
    bw_domain *d = bw_test_domain();
    bw_bound *w = bw_test_bind(d, count_bound, NULL);
    bw_bound *i = bw_test_intercept(d, count_icpt, NULL);
    bw_domain_dispose(d);
    BW_CHECK_INT_EQ(bw_domain_enter(d), 0);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_domain_exit(d);
    bw_emitter *e = bw_test_emitter();
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_emitter_member(e)), BW_EDISPOSED);
    BW_CHECK(bw_emitter_domain(e) == NULL);
    BW_CHECK(bw_domain_run(d, count_run, NULL) == NULL);
    BW_CHECK(bw_bound_call(w, NULL) == NULL);
    bw_bound_callback(NULL, "result", i);
    bw_invoke(d, count_task, NULL);
    /* A wrapper made after the dispose does nothing either. */
    bw_bound *late = bw_test_bind(d, count_bound, NULL);
    BW_CHECK(bw_bound_call(late, NULL) == NULL);
    BW_CHECK_INT_EQ(fn_calls, 0);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_bound_release(late);
    bw_bound_release(w);
    bw_bound_release(i);
    bw_emitter_free(e);
    bw_domain_release(d);
}

/* ---- D-85: errors reaching a disposed domain are swallowed --------------- */

typedef struct d85 {
    bw_domain *d;
    bw_emitter *e;
    bw_bound *icpt;
    bw_bound *bind;
    bool emit_result;
} d85;

static void d85_main(void *arg)
{
    d85 *s = arg;
    /* An emitter that was d's member, with no listener. */
    s->emit_result = bw_emitter_emit_error(s->e, bw_error_new(-EIO, "to a disposed domain"));
    /* A completion owned by d, failing. */
    bw_error *err = bw_error_new(-EIO, "intercepted");
    bw_bound_callback(err, NULL, s->icpt);
    bw_bound_callback(err, NULL, s->bind);
    bw_error_release(err);
}

BW_TEST(D_85, error_reaching_disposed_domain_is_swallowed)
{
    bw_rec r = {0}, u = {0};
    d85 s = {0};
    s.d = bw_rec_domain(&r);
    s.e = bw_test_emitter();
    bw_domain_add(s.d, bw_emitter_member(s.e));
    s.icpt = bw_test_intercept(s.d, count_icpt, NULL);
    s.bind = bw_test_bind(s.d, count_bound, NULL);
    bw_on_uncaught(bw_rec_uncaught, &u);
    bw_domain_dispose(s.d);
    bw_test_main(d85_main, &s);
    BW_CHECK(!s.emit_result);
    BW_CHECK_INT_EQ(r.calls, 0);
    BW_CHECK_INT_EQ(u.calls, 0);
    BW_CHECK_INT_EQ(fn_calls, 0);
    bw_off_uncaught(bw_rec_uncaught, &u);
    bw_bound_release(s.icpt);
    bw_bound_release(s.bind);
    bw_emitter_free(s.e);
    bw_domain_release(s.d);
}

/* ---- D-86: pending callbacks of a disposed domain never run -------------- */

typedef struct d86 {
    bw_loop *loop;
    bw_domain *d;
    int must_not_run;
    int second;
    int logs;
    int handled;
} d86;

static void d86_never_timer(bw_timer *t, void *data)
{
    (void)t;
    ((d86 *)data)->must_not_run++;
}

static void d86_never_task(void *arg)
{
    ((d86 *)arg)->must_not_run++;
}

static void *d86_body(void *arg)
{
    d86 *s = arg;
    bw_timeout(s->loop, 0, d86_never_timer, s, NULL);
    bw_next_tick(s->loop, d86_never_task, s);
    bw_set_immediate(s->loop, d86_never_task, s, NULL);
    bw_throwf(-EINVAL, "undefined is not a function");
}

static void d86_first(bw_timer *t, void *data)
{
    (void)t;
    d86 *s = data;
    bw_domain_run(s->d, d86_body, s);
}

static void d86_second(bw_timer *t, void *data)
{
    (void)t;
    ((d86 *)data)->second++;
}

static void d86_log(bw_timer *t, void *data)
{
    d86 *s = data;
    if (++s->logs == 10)
        bw_timer_clear(t);
}

static void d86_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)err;
    ((d86 *)data)->handled++;
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
}

BW_TEST(D_86, pending_callbacks_of_disposed_domain_never_run)
{
    d86 s = {0};
    s.loop = bw_test_loop();
    s.d = bw_test_domain();
    bw_domain_on_error(s.d, d86_handler, &s);
    bw_interval(s.loop, 5, d86_log, &s, NULL);
    bw_timeout(s.loop, 10, d86_first, &s, NULL);
    bw_timeout(s.loop, 10, d86_second, &s, NULL);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.handled, 1);
    BW_CHECK_INT_EQ(s.must_not_run, 0);
    BW_CHECK_INT_EQ(s.second, 1);
    BW_CHECK_INT_EQ(s.logs, 10);
    BW_CHECK(bw_domain_is_disposed(s.d));
    bw_domain_release(s.d);
}

/* ---- D-87: native callbacks of a disposed domain's resources -------------
 *
 * Node's test makes a stream handle's internal close fail with EINVAL. Here
 * a read stream created in d, whose domain is disposed before its I/O
 * completes, hits a failing read(2) (a directory: EISDIR): the stream's own
 * `error` listener still gets the error, and nothing crashes. A second
 * stream, with no listener, has its error swallowed. And a raw libuv
 * handle's callback, arriving for a resource of the disposed domain, runs
 * nothing (bw_resource_invoke).
 */
typedef struct d87 {
    bw_loop *loop;
    bw_domain *d;
    bw_emitter *listened;
    bw_emitter *silent;
    bw_resource *r;
    uv_timer_t raw;
    int errors;
    int closes;
    int error_code;
    int invoked;
} d87;

static void d87_on_error(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    d87 *s = data;
    s->errors++;
    s->error_code = bw_error_code(arg);
    BW_CHECK_STR_EQ(bw_error_syscall(arg), "read");
}

static void d87_on_close(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    (void)arg;
    ((d87 *)data)->closes++;
}

static void *d87_open(void *arg)
{
    d87 *s = arg;
    BW_CHECK_INT_EQ(bw_fs_read_stream(s->loop, "/", &s->listened), 0);
    BW_CHECK_INT_EQ(bw_fs_read_stream(s->loop, "/", &s->silent), 0);
    s->r = bw_test_resource(&s->raw, NULL);
    return NULL;
}

static void d87_body(void *arg)
{
    ((d87 *)arg)->invoked++;
}

static void d87_raw_cb(uv_timer_t *h)
{
    d87 *s = h->data;
    bw_resource_invoke(s->r, d87_body, s);
    bw_invoke(s->d, d87_body, s); /* the disposed domain itself */
    uv_close((uv_handle_t *)h, NULL);
}

BW_TEST(D_87, native_callback_of_disposed_domain_does_not_crash)
{
    bw_set_abort_on_uncaught(true);
    d87 s = {0};
    s.loop = bw_test_loop();
    s.d = bw_test_domain();
    uv_timer_init(bw_loop_uv(s.loop), &s.raw);
    s.raw.data = &s;
    bw_domain_run(s.d, d87_open, &s);
    BW_CHECK_PTR_EQ(bw_emitter_domain(s.listened), s.d);
    BW_CHECK_PTR_EQ(bw_resource_domain(s.r), s.d);
    BW_CHECK_INT_EQ(bw_domain_dispose(s.d), 0);
    BW_CHECK(bw_resource_is_disposed(s.r));
    bw_emitter_on(s.listened, BW_EVENT_ERROR, d87_on_error, &s);
    bw_emitter_on(s.listened, "close", d87_on_close, &s);
    uv_timer_start(&s.raw, d87_raw_cb, 1, 0);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.errors, 1);
    BW_CHECK_INT_EQ(s.error_code, -EISDIR);
    BW_CHECK_INT_EQ(s.closes, 1);
    BW_CHECK_INT_EQ(s.invoked, 0);
    bw_resource_free(s.r);
    bw_domain_release(s.d);
}

/* ---- Disposed domains never come back onto the stack ------------------------
 *
 * A domain disposed by the handler of an error its emitter emitted: when
 * the handler returns, the stack is restored (D-48) but without the
 * disposed domain: nothing runs inside a disposed domain afterwards.
 */
typedef struct back {
    bw_loop *loop;
    bw_domain *d;
    bw_emitter *e;
    bw_domain *active_after;
    size_t depth_after;
    int handled;
} back;

static void back_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)err;
    ((back *)data)->handled++;
    bw_domain_dispose(d);
}

static void back_timer(bw_timer *t, void *data)
{
    (void)t;
    back *s = data;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    bw_emitter_emit_error(s->e, bw_error_new(-EIO, "request failed"));
    s->active_after = bw_domain_active();
    s->depth_after = bw_domain_stack_depth();
}

static void *back_start(void *arg)
{
    back *s = arg;
    s->e = bw_test_emitter();
    bw_timeout(s->loop, 1, back_timer, s, NULL);
    return NULL;
}

BW_TEST(D_83, domain_disposed_by_emitted_error_handler_stays_off_the_stack)
{
    back s = {0};
    s.loop = bw_test_loop();
    s.d = bw_test_domain();
    bw_domain_on_error(s.d, back_handler, &s);
    bw_domain_run(s.d, back_start, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.handled, 1);
    BW_CHECK(s.active_after == NULL);
    BW_CHECK_INT_EQ(s.depth_after, 0);
    bw_emitter_free(s.e);
    bw_domain_release(s.d);
}

/* A domain disposed inside a nested callback boundary, below that
 * boundary's part of the stack, and then a throw: routing must not touch
 * the stack entry that the dispose removed (it may be freed memory). */
typedef struct nested {
    bw_domain *d;
    bw_rec u;
    int after;
} nested;

static void nested_inner(void *arg)
{
    nested *s = arg;
    bw_domain_dispose(s->d); /* drops the stack's hold: d is freed */
    bw_throwf(-EINVAL, "thrown after the dispose");
}

static void nested_outer(void *arg)
{
    nested *s = arg;
    bw_domain_enter(s->d);
    bw_domain_release(s->d); /* only the stack holds it now */
    bw_invoke(NULL, nested_inner, s);
    s->after++;
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
}

BW_TEST(D_83, dispose_inside_nested_boundary_then_throw)
{
    nested s = {0};
    s.d = bw_test_domain();
    bw_on_uncaught(bw_rec_uncaught, &s.u);
    bw_test_main(nested_outer, &s);
    BW_CHECK_INT_EQ(s.after, 1);
    BW_CHECK_INT_EQ(s.u.calls, 1);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_off_uncaught(bw_rec_uncaught, &s.u);
    bw_rec_clear(&s.u);
}
