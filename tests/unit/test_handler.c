/*
 * test_handler.c: errors inside a domain's own error handler, and nested
 * domains (domain-behaviors.md sections 9 and 10, D-58..D-67).
 *
 * bulwark's exit codes: a throw from the outermost handler (or from an
 * uncaught handler) exits BW_EXIT_HANDLER_THREW, Node's 7; abort mode
 * (bw_set_abort_on_uncaught) ends it by SIGABRT. Process-level outcomes
 * are checked in forked children.
 */
#include "bw_rec.h"

#include <signal.h>

typedef struct scene {
    bw_loop *loop;
    bw_domain *outer;
    bw_domain *inner;
    bw_rec r_outer;
    bw_rec r_inner;
    bw_rec uncaught;
    int thrown;
} scene;

static void scene_throw(void *arg)
{
    scene *s = arg;
    s->thrown++;
    bw_throwf(-EINVAL, "thrown");
}

static void *scene_throw_run(void *arg)
{
    scene_throw(arg);
    return NULL;
}

static void scene_throw_timer(bw_timer *t, void *data)
{
    (void)t;
    scene_throw(data);
}

static void scene_throw_fs(bw_error *err, void *result, void *data)
{
    (void)err;
    (void)result;
    scene_throw(data);
}

static void scene_free(scene *s)
{
    bw_rec_clear(&s->r_outer);
    bw_rec_clear(&s->r_inner);
    bw_rec_clear(&s->uncaught);
    bw_domain_release(s->outer);
    bw_domain_release(s->inner);
}

/* run(outer, run(inner, body)) */
static void *scene_inner_run(void *arg)
{
    scene *s = arg;
    return bw_domain_run(s->inner, (void *(*)(void *))bw_domain_data(s->inner), s);
}

static void scene_nested_main(void *arg)
{
    scene *s = arg;
    bw_domain_run(s->outer, scene_inner_run, s);
}

/* ---- 9. Errors inside a domain's own error handler ----------------------- */

typedef struct d58 {
    int h1_calls;
    int h1_saw_e2;
    bw_rec r2;
} d58;

static void d58_h1(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    d58 *s = data;
    s->h1_calls++;
    if (strcmp(bw_error_message(err), "E2") == 0)
        s->h1_saw_e2++;
    bw_throwf(-EINVAL, "E2");
}

static void *d58_throw_e1(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "E1");
}

typedef struct d58_doms {
    bw_domain *d1;
    bw_domain *d2;
} d58_doms;

static void *d58_outer(void *arg)
{
    d58_doms *x = arg;
    return bw_domain_run(x->d1, d58_throw_e1, NULL);
}

static void d58_main(void *arg)
{
    d58_doms *x = arg;
    bw_domain_run(x->d2, d58_outer, x);
}

BW_TEST(D_58, throw_from_handler_goes_to_next_domain_down)
{
    d58 s = {0};
    d58_doms x = {bw_test_domain(), bw_rec_domain(&s.r2)};
    bw_domain_on_error(x.d1, d58_h1, &s);
    bw_test_main(d58_main, &x);
    BW_CHECK_INT_EQ(s.h1_calls, 1);
    BW_CHECK_INT_EQ(s.h1_saw_e2, 0);
    BW_CHECK_INT_EQ(s.r2.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(s.r2.err[0]), "E2");
    BW_CHECK_PTR_EQ(bw_error_domain(s.r2.err[0]), x.d2);
    BW_CHECK_INT_EQ(bw_error_domain_thrown(s.r2.err[0]), BW_YES);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_rec_clear(&s.r2);
    bw_domain_release(x.d1);
    bw_domain_release(x.d2);
}

/* ---- D-59, D-60: the outermost handler throws ----------------------------
 *
 * Node exits 7; bulwark exits BW_EXIT_HANDLER_THREW (7), no signal, and
 * its report on stderr names the handler's error, not the original. The
 * process-level uncaught handlers are not called for it.
 */
static void d59_throwing_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    (void)data;
    bw_throwf(-EINVAL, "exception from domain error handler");
}

static void d59_uncaught(bw_error *err, void *data)
{
    (void)err;
    (void)data;
    printf("UNCAUGHT HANDLER CALLED\n");
    _exit(42);
}

static void d59_throw_tick(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "You should NOT see me");
}

static void *d59_schedule(void *arg)
{
    bw_next_tick(arg, d59_throw_tick, NULL);
    return NULL;
}

static void d59_child(void *arg)
{
    bw_set_abort_on_uncaught(arg != NULL);
    bw_loop *loop = bw_test_loop();
    bw_domain *d = bw_test_domain();
    bw_domain_on_error(d, d59_throwing_handler, NULL);
    bw_on_uncaught(d59_uncaught, NULL);
    bw_domain_run(d, d59_schedule, loop);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    printf("the loop returned\n");
}

BW_TEST(D_59, outermost_handler_throw_exits_with_handler_code)
{
    bw_test_child c = bw_test_fork(d59_child, NULL, 10);
    BW_CHECK_EXIT(c, BW_EXIT_HANDLER_THREW);
    BW_CHECK_INT_EQ(BW_EXIT_HANDLER_THREW, 7);
    BW_CHECK_CONTAINS(c.out, "exception from domain error handler");
    BW_CHECK_NOT_CONTAINS(c.out, "You should NOT see me");
    BW_CHECK_NOT_CONTAINS(c.out, "UNCAUGHT HANDLER CALLED");
    BW_CHECK_NOT_CONTAINS(c.out, "the loop returned");
    bw_test_child_free(&c);
}

BW_TEST(D_60, outermost_handler_throw_aborts_in_abort_mode)
{
    bw_test_child c = bw_test_fork(d59_child, (void *)1, 10);
    BW_CHECK_SIGNALED(c, SIGABRT);
    BW_CHECK_NOT_CONTAINS(c.out, "UNCAUGHT HANDLER CALLED");
    BW_CHECK_NOT_CONTAINS(c.out, "the loop returned");
    bw_test_child_free(&c);
}

/* ---- D-61: a throw the handler catches itself ---------------------------- */

static void d61_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "caught inside the handler");
}

static void d61_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    int *caught = data;
    bw_error *inner = bw_try(d61_throw, NULL);
    if (inner != NULL && strcmp(bw_error_message(inner), "caught inside the handler") == 0)
        (*caught)++;
    bw_error_release(inner);
}

static void *d61_throw_in_run(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "the original error");
}

static void d61_main(void *arg)
{
    bw_domain_run(arg, d61_throw_in_run, NULL);
}

static void d61_child(void *arg)
{
    bw_set_abort_on_uncaught(arg != NULL);
    int caught = 0;
    bw_domain *d = bw_test_domain();
    bw_domain_on_error(d, d61_handler, &caught);
    bw_test_main(d61_main, d);
    BW_CHECK_INT_EQ(caught, 1);
    bw_domain_release(d);
}

BW_TEST(D_61, throw_caught_inside_the_handler_changes_nothing)
{
    for (intptr_t abort_mode = 0; abort_mode < 2; abort_mode++) {
        bw_test_child c = bw_test_fork(d61_child, (void *)abort_mode, 10);
        BW_CHECK_EXIT(c, 0);
        bw_test_child_free(&c);
    }
}

/* ---- D-62: a throw from an emitted error's handler ----------------------- */

typedef struct d62 {
    bw_domain *d1;
    bw_domain *d2;
    bw_emitter *e;
    bw_rec r1;
    bw_rec r2;
    bw_error *e1;
    int after_emit;
} d62;

static void d62_h2(bw_domain *d, bw_error *err, void *data)
{
    d62 *s = data;
    bw_rec_handler(d, err, &s->r2);
    bw_throwf(-EINVAL, "E2");
}

static void *d62_inner(void *arg)
{
    d62 *s = arg;
    s->e = bw_test_emitter(); /* owned by d2 */
    bw_emitter_emit_error(s->e, s->e1);
    s->after_emit++;
    return NULL;
}

static void *d62_outer(void *arg)
{
    d62 *s = arg;
    return bw_domain_run(s->d2, d62_inner, s);
}

static void d62_main(void *arg)
{
    d62 *s = arg;
    bw_domain_run(s->d1, d62_outer, s);
}

BW_TEST(D_62, throw_from_emitted_error_handler_reaches_the_parent)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop();
    long base = bw_count_live;
    d62 s = {0};
    s.d1 = bw_rec_domain(&s.r1);
    s.d2 = bw_test_domain();
    bw_domain_on_error(s.d2, d62_h2, &s);
    s.e1 = bw_error_new(-EINVAL, "E1");
    bw_test_main(d62_main, &s);
    BW_CHECK_INT_EQ(s.after_emit, 0);
    BW_CHECK_INT_EQ(s.r2.calls, 1);
    BW_CHECK_PTR_EQ(s.r2.err[0], s.e1);
    BW_CHECK_PTR_EQ(s.r2.active[0], s.d1); /* handler-time stack: [d1] */
    BW_CHECK_INT_EQ(s.r1.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(s.r1.err[0]), "E2");
    BW_CHECK_ROUTING(s.r1.err[0], s.d1, BW_YES, NULL, NULL);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_rec_clear(&s.r1);
    bw_rec_clear(&s.r2);
    bw_emitter_free(s.e);
    bw_domain_release(s.d1);
    bw_domain_release(s.d2);
    /* What the abandoned emit held (the stack snapshot, E1) was released by
     * the throw crossing it. */
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(loop);
}

/* ---- 10. Nested domains and propagation ---------------------------------- */

/* D-63: the inner domain has a handler: it catches, the outer does not. */
BW_TEST(D_63, inner_domain_with_handler_catches)
{
    bw_set_abort_on_uncaught(true); /* a handled error never aborts */
    scene s = {0};
    s.outer = bw_rec_domain(&s.r_outer);
    s.inner = bw_rec_domain(&s.r_inner);
    bw_domain_set_data(s.inner, (void *)scene_throw_run);
    bw_on_uncaught(bw_rec_uncaught, &s.uncaught);
    bw_test_main(scene_nested_main, &s);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(s.r_inner.calls, 1);
    BW_CHECK_INT_EQ(s.r_outer.calls, 0);
    BW_CHECK_INT_EQ(s.uncaught.calls, 0);
    bw_off_uncaught(bw_rec_uncaught, &s.uncaught);
    scene_free(&s);
}

/* D-64: the inner domain is handler-less, both are on the stack: the outer
 * catches, synchronously. */
BW_TEST(D_64, handlerless_inner_sync_throw_outer_catches)
{
    bw_set_abort_on_uncaught(true);
    scene s = {0};
    s.outer = bw_rec_domain(&s.r_outer);
    s.inner = bw_test_domain();
    bw_domain_set_data(s.inner, (void *)scene_throw_run);
    bw_on_uncaught(bw_rec_uncaught, &s.uncaught);
    bw_test_main(scene_nested_main, &s);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(s.r_outer.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(s.r_outer.err[0]), s.outer);
    BW_CHECK_INT_EQ(s.uncaught.calls, 0);
    bw_off_uncaught(bw_rec_uncaught, &s.uncaught);
    scene_free(&s);
}

/* D-65, D-66: X(throw) scheduled in run(outer, run(inner, ...)). */
enum async_kind { K_TIMEOUT, K_IMMEDIATE, K_TICK, K_FS, K_N };

static void *schedule_async(void *arg)
{
    scene *s = arg;
    switch ((enum async_kind)s->thrown) {
    case K_TIMEOUT:
        bw_timeout(s->loop, 33, scene_throw_timer, s, NULL);
        break;
    case K_IMMEDIATE:
        bw_set_immediate(s->loop, scene_throw, s, NULL);
        break;
    case K_TICK:
        bw_next_tick(s->loop, scene_throw, s);
        break;
    case K_FS:
        bw_fs_exists(s->loop, "/", scene_throw_fs, s);
        break;
    case K_N:
        break;
    }
    s->thrown = 0;
    return NULL;
}

static void run_async_case(scene *s, int kind, bool inner_handler)
{
    s->loop = bw_test_loop();
    s->outer = bw_rec_domain(&s->r_outer);
    s->inner = bw_rec_domain(inner_handler ? &s->r_inner : NULL);
    bw_domain_set_data(s->inner, (void *)schedule_async);
    s->thrown = kind; /* read by schedule_async */
    bw_on_uncaught(bw_rec_uncaught, &s->uncaught);
    bw_test_main(scene_nested_main, s);
    bw_test_loop_finish(s->loop);
    bw_off_uncaught(bw_rec_uncaught, &s->uncaught);
}

BW_TEST(D_65, handlerless_inner_async_throw_outer_does_not_catch)
{
    scene s = {0};
    run_async_case(&s, K_TIMEOUT, false);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(s.uncaught.calls, 1);
    BW_CHECK_INT_EQ(s.r_outer.calls, 0);
    scene_free(&s);
}

static void d65_abort_child(void *arg)
{
    bw_set_abort_on_uncaught(true);
    scene s = {0};
    run_async_case(&s, (int)(intptr_t)arg, false);
    printf("NOT ABORTED\n");
}

/* In abort mode, the same shape with each kind of callback aborts. */
BW_TEST(D_65, handlerless_inner_async_throw_aborts_in_abort_mode)
{
    for (intptr_t kind = 0; kind < K_N; kind++) {
        bw_test_child c = bw_test_fork(d65_abort_child, (void *)kind, 10);
        if (!c.signaled)
            printf("case %d:\n", (int)kind);
        BW_CHECK_SIGNALED(c, SIGABRT);
        BW_CHECK_NOT_CONTAINS(c.out, "NOT ABORTED");
        bw_test_child_free(&c);
    }
}

BW_TEST(D_66, inner_handler_catches_async_throw)
{
    bw_set_abort_on_uncaught(true);
    for (int kind = 0; kind < K_N; kind++) {
        scene s = {0};
        run_async_case(&s, kind, true);
        BW_CHECK_INT_EQ(s.thrown, 1);
        BW_CHECK_INT_EQ(s.r_inner.calls, 1);
        BW_CHECK_PTR_EQ(bw_error_domain(s.r_inner.err[0]), s.inner);
        BW_CHECK_INT_EQ(s.r_outer.calls, 0);
        BW_CHECK_INT_EQ(s.uncaught.calls, 0);
        scene_free(&s);
    }
}

/* D-67: an inner domain's handler runs in the context of its parent. */
typedef struct d67 {
    bw_loop *loop;
    bw_domain *d;
    size_t h_depth;
    bw_domain *h_active;
    size_t t_depth;
    bw_domain *t_active;
    int ticks;
    int handled;
} d67;

static void d67_tick(void *arg)
{
    d67 *s = arg;
    s->ticks++;
    s->t_depth = bw_domain_stack_depth();
    s->t_active = bw_domain_active();
}

static void d67_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    d67 *s = data;
    s->handled++;
    s->h_depth = bw_domain_stack_depth();
    s->h_active = bw_domain_active();
    bw_next_tick(s->loop, d67_tick, s);
}

BW_TEST(D_67, inner_handler_runs_in_the_parent_context)
{
    d67 st = {0};
    st.loop = bw_test_loop();
    scene s = {0};
    s.outer = bw_test_domain();
    s.inner = bw_test_domain();
    st.d = s.outer;
    bw_domain_on_error(s.inner, d67_handler, &st);
    bw_domain_set_data(s.inner, (void *)scene_throw_run);
    bw_test_main(scene_nested_main, &s);
    bw_test_loop_finish(st.loop);
    BW_CHECK_INT_EQ(st.handled, 1);
    BW_CHECK_INT_EQ(st.h_depth, 1);
    BW_CHECK_PTR_EQ(st.h_active, s.outer);
    BW_CHECK_INT_EQ(st.ticks, 1);
    BW_CHECK_INT_EQ(st.t_depth, 1);
    BW_CHECK_PTR_EQ(st.t_active, s.outer);
    scene_free(&s);
}
