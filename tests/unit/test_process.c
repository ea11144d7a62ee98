/*
 * test_process.c: interplay with the process-level uncaught handlers and
 * abort mode (domain-behaviors.md section 12, D-74..D-82).
 *
 * bulwark's process level: bw_on_uncaught() is Node's
 * process.on('uncaughtException'); bw_set_abort_on_uncaught() is
 * --abort-on-uncaught-exception. Exit codes: an uncaught error that is not
 * a fault exits BW_EXIT_UNCAUGHT (1, as Node); a throw from an uncaught or
 * outermost handler exits BW_EXIT_HANDLER_THREW (7, as Node); an uncaught
 * *fault* re-raises its signal instead of exiting 1 (test_fault.c).
 */
#include "bw_rec.h"

#include <signal.h>

/* ---- Scenarios ------------------------------------------------------------ */

typedef struct scene {
    bw_loop *loop;
    bw_domain *outer; /* the domain that should handle, if any */
    bw_domain *inner;
    bw_rec rec;
    bw_emitter *emitter;
    bw_bound *bound;
    int thrown;
} scene;

static void scene_throw(void *arg)
{
    scene *s = arg;
    s->thrown++;
    bw_throwf(-EINVAL, "boom from domain");
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

static void scene_tick_then_throw(bw_timer *t, void *data)
{
    (void)t;
    scene *s = data;
    bw_next_tick(s->loop, scene_throw, s);
}

static void *bound_throw(void *ctx, void *arg)
{
    (void)arg;
    scene_throw(ctx);
    return NULL;
}

static void call_bound_timer(bw_timer *t, void *data)
{
    (void)t;
    scene *s = data;
    bw_bound_call(s->bound, NULL);
}

static void emit_timer(bw_timer *t, void *data)
{
    (void)t;
    scene *s = data;
    s->thrown++;
    bw_emitter_emit_error(s->emitter, bw_error_new(-EIO, "emitted"));
}

static void icpt_fn(void *ctx, void *result)
{
    (void)ctx;
    (void)result;
}

static void intercept_timer(bw_timer *t, void *data)
{
    (void)t;
    scene *s = data;
    s->thrown++;
    bw_error *err = bw_error_new(-EIO, "intercepted");
    bw_bound_callback(err, NULL, s->bound);
    bw_error_release(err);
}

/* What runs inside the innermost domain. */
enum body {
    B_SYNC,
    B_TIMEOUT,
    B_IMMEDIATE,
    B_TICK,
    B_FS,
    B_TIMEOUT_TICK,
    B_EMIT,
    B_INTERCEPT,
    B_BIND,
};

static void *scene_body(void *arg)
{
    scene *s = arg;
    switch ((enum body)(intptr_t)bw_domain_data(s->inner)) {
    case B_SYNC:
        scene_throw(s);
        break;
    case B_TIMEOUT:
        bw_timeout(s->loop, 1, scene_throw_timer, s, NULL);
        break;
    case B_IMMEDIATE:
        bw_set_immediate(s->loop, scene_throw, s, NULL);
        break;
    case B_TICK:
        bw_next_tick(s->loop, scene_throw, s);
        break;
    case B_FS:
        bw_fs_exists(s->loop, "/", scene_throw_fs, s);
        break;
    case B_TIMEOUT_TICK:
        bw_timeout(s->loop, 1, scene_tick_then_throw, s, NULL);
        break;
    case B_EMIT:
        s->emitter = bw_test_emitter(); /* the inner domain's */
        bw_timeout(s->loop, 1, emit_timer, s, NULL);
        break;
    case B_INTERCEPT:
        s->bound = bw_test_intercept(s->inner, icpt_fn, NULL);
        bw_timeout(s->loop, 1, intercept_timer, s, NULL);
        break;
    case B_BIND:
        s->bound = bw_test_bind(s->inner, bound_throw, s);
        bw_timeout(s->loop, 1, call_bound_timer, s, NULL);
        break;
    }
    return NULL;
}

static void *scene_nested(void *arg)
{
    scene *s = arg;
    return bw_domain_run(s->inner, scene_body, s);
}

static void scene_main(void *arg)
{
    scene *s = arg;
    if (s->outer != NULL && s->outer != s->inner)
        bw_domain_run(s->outer, scene_nested, s);
    else
        scene_nested(s);
}

/* Where the handler is. */
enum where { H_NONE, H_INNER, H_OUTER };

typedef struct scase {
    enum body body;
    bool nested; /* run(outer, run(inner, ...)) rather than run(inner, ...) */
    enum where handler;
} scase;

/* Run a scenario to the end of its loop; returns how many handler calls. */
static int scene_play(scene *s, const scase *c)
{
    s->loop = bw_test_loop();
    s->inner = bw_test_domain();
    s->outer = c->nested ? bw_test_domain() : s->inner;
    if (c->handler == H_INNER)
        bw_rec_on(s->inner, &s->rec);
    else if (c->handler == H_OUTER)
        bw_rec_on(s->outer, &s->rec);
    bw_domain_set_data(s->inner, (void *)(intptr_t)c->body);
    bw_test_main(scene_main, s);
    bw_test_loop_finish(s->loop);
    return s->rec.calls;
}

static void scene_free(scene *s)
{
    bw_rec_clear(&s->rec);
    bw_emitter_free(s->emitter);
    bw_bound_release(s->bound);
    if (s->outer != s->inner)
        bw_domain_release(s->outer);
    bw_domain_release(s->inner);
}

static void uncaught_marker(bw_error *err, void *data)
{
    (void)err;
    (void)data;
    printf("UNCAUGHT HANDLER CALLED\n");
    _exit(42);
}

/* ---- D-74, D-75 ----------------------------------------------------------- */

BW_TEST(D_74, sync_throw_without_handler_goes_to_uncaught_with_no_domain)
{
    bw_rec u = {0};
    bw_on_uncaught(bw_rec_uncaught, &u);
    scene s = {0};
    scase c = {B_SYNC, false, H_NONE};
    BW_CHECK_INT_EQ(scene_play(&s, &c), 0);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(u.calls, 1);
    BW_CHECK(u.active[0] == NULL);
    BW_CHECK_INT_EQ(u.depth[0], 0);
    BW_CHECK_STR_EQ(bw_error_message(u.err[0]), "boom from domain");
    /* Before exit: nothing active. */
    BW_CHECK(bw_domain_active() == NULL);
    bw_off_uncaught(bw_rec_uncaught, &u);
    bw_rec_clear(&u);
    scene_free(&s);
}

BW_TEST(D_75, async_throw_bound_to_handlerless_domain_goes_to_uncaught)
{
    bw_rec u = {0};
    bw_on_uncaught(bw_rec_uncaught, &u);
    scene s = {0};
    scase c = {B_TIMEOUT, false, H_NONE};
    scene_play(&s, &c);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(u.calls, 1);
    BW_CHECK(u.active[0] == NULL);
    bw_off_uncaught(bw_rec_uncaught, &u);
    bw_rec_clear(&u);
    scene_free(&s);
}

/* ---- D-76, D-77: handled errors: never the uncaught handler, never abort -- */

static const scase handled_cases[] = {
    {B_SYNC, false, H_INNER},      {B_SYNC, true, H_INNER},          {B_SYNC, true, H_OUTER},
    {B_TIMEOUT, false, H_INNER},   {B_IMMEDIATE, false, H_INNER},    {B_TICK, false, H_INNER},
    {B_FS, false, H_INNER},        {B_TIMEOUT_TICK, false, H_INNER}, {B_EMIT, false, H_INNER},
    {B_INTERCEPT, false, H_INNER}, {B_BIND, false, H_INNER},         {B_TIMEOUT, true, H_INNER},
    {B_TICK, true, H_INNER},
};
#define NHANDLED (sizeof handled_cases / sizeof handled_cases[0])

typedef struct handled_arg {
    size_t index;
    bool abort_mode;
} handled_arg;

static void handled_child(void *arg)
{
    handled_arg *a = arg;
    bw_set_abort_on_uncaught(a->abort_mode);
    bw_on_uncaught(uncaught_marker, NULL);
    scene s = {0};
    int calls = scene_play(&s, &handled_cases[a->index]);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(calls, 1);
    scene_free(&s);
}

static void check_handled_cases(bool abort_mode)
{
    for (size_t i = 0; i < NHANDLED; i++) {
        handled_arg a = {i, abort_mode};
        bw_test_child c = bw_test_fork(handled_child, &a, 10);
        if (!c.exited || c.code != 0)
            printf("case %zu:\n", i);
        BW_CHECK_EXIT(c, 0);
        BW_CHECK_NOT_CONTAINS(c.out, "UNCAUGHT HANDLER CALLED");
        bw_test_child_free(&c);
    }
}

BW_TEST(D_76, domain_handled_error_never_reaches_uncaught_handler)
{
    check_handled_cases(false);
}

BW_TEST(D_77, abort_mode_never_aborts_on_a_handled_error)
{
    check_handled_cases(true);
}

/* ---- D-78: abort mode aborts on what no domain on the stack handles ------ */

static const scase unhandled_cases[] = {
    {B_SYNC, false, H_NONE},      {B_SYNC, true, H_NONE},       {B_TIMEOUT, false, H_NONE},
    {B_IMMEDIATE, false, H_NONE}, {B_TICK, false, H_NONE},      {B_FS, false, H_NONE},
    {B_TIMEOUT, true, H_OUTER},   {B_IMMEDIATE, true, H_OUTER}, {B_TICK, true, H_OUTER},
    {B_FS, true, H_OUTER},
};
#define NUNHANDLED (sizeof unhandled_cases / sizeof unhandled_cases[0])

static void unhandled_child(void *arg)
{
    bw_set_abort_on_uncaught(true);
    bw_on_uncaught(uncaught_marker, NULL); /* abort mode aborts before it */
    scene s = {0};
    scene_play(&s, &unhandled_cases[(size_t)(uintptr_t)arg]);
    printf("NOT ABORTED\n");
}

BW_TEST(D_78, abort_mode_aborts_on_unhandled_error)
{
    for (size_t i = 0; i < NUNHANDLED; i++) {
        bw_test_child c = bw_test_fork(unhandled_child, (void *)(uintptr_t)i, 10);
        if (!c.signaled)
            printf("case %zu:\n", i);
        BW_CHECK_SIGNALED(c, SIGABRT);
        BW_CHECK_NOT_CONTAINS(c.out, "UNCAUGHT HANDLER CALLED");
        BW_CHECK_NOT_CONTAINS(c.out, "NOT ABORTED");
        BW_CHECK_CONTAINS(c.out, "boom from domain"); /* the report */
        bw_test_child_free(&c);
    }
}

/* ---- D-79: the uncaught handler itself throws ---------------------------- */

static void throwing_uncaught(bw_error *err, void *data)
{
    (void)err;
    if (data != NULL) /* abort mode: must never run */
        _exit(42);
    bw_throwf(-EINVAL, "boom from uncaughtException handler");
}

static void d79_child(void *arg)
{
    bw_set_abort_on_uncaught(arg != NULL);
    bw_on_uncaught(throwing_uncaught, arg);
    scene s = {0};
    scase c = {B_SYNC, false, H_NONE};
    scene_play(&s, &c);
    printf("CARRIED ON\n");
}

BW_TEST(D_79, uncaught_handler_that_throws_is_fatal)
{
    bw_test_child c = bw_test_fork(d79_child, NULL, 10);
    BW_CHECK(c.exited && c.code != 0);
    BW_CHECK_EXIT(c, BW_EXIT_HANDLER_THREW);
    BW_CHECK_CONTAINS(c.out, "boom from uncaughtException handler");
    BW_CHECK_NOT_CONTAINS(c.out, "boom from domain");
    BW_CHECK_NOT_CONTAINS(c.out, "CARRIED ON");
    bw_test_child_free(&c);

    c = bw_test_fork(d79_child, (void *)1, 10);
    BW_CHECK_SIGNALED(c, SIGABRT);
    BW_CHECK_NOT_CONTAINS(c.out, "boom from uncaughtException handler");
    BW_CHECK_NOT_CONTAINS(c.out, "CARRIED ON");
    bw_test_child_free(&c);
}

/* ---- D-80: no domain, no handler: exit 1 ---------------------------------- */

static void d80_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "accidental error");
}

static void d80_child(void *arg)
{
    (void)arg;
    bw_loop *loop = bw_test_loop();
    bw_next_tick(loop, d80_throw, NULL);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    printf("CARRIED ON\n");
}

BW_TEST(D_80, uncaught_error_without_any_handler_exits_1)
{
    bw_test_child c = bw_test_fork(d80_child, NULL, 10);
    BW_CHECK_EXIT(c, BW_EXIT_UNCAUGHT);
    BW_CHECK_INT_EQ(BW_EXIT_UNCAUGHT, 1);
    BW_CHECK_CONTAINS(c.out, "accidental error");
    BW_CHECK_NOT_CONTAINS(c.out, "CARRIED ON");
    bw_test_child_free(&c);
}

/* ---- D-81: an uncaught handler replaces the default crash ----------------
 * (The cluster primary half of the rule waits for the cluster.) */

static void d81_exit(void *arg)
{
    (void)arg;
    exit(42);
}

static void d81_uncaught(bw_error *err, void *data)
{
    (void)err;
    bw_next_tick(data, d81_exit, NULL);
}

static void d81_child(void *arg)
{
    (void)arg;
    bw_loop *loop = bw_test_loop();
    bw_on_uncaught(d81_uncaught, loop);
    bw_next_tick(loop, d80_throw, NULL);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    printf("the loop returned without exiting\n");
}

BW_TEST(D_81, uncaught_handler_replaces_the_default_crash)
{
    bw_test_child c = bw_test_fork(d81_child, NULL, 10);
    BW_CHECK_EXIT(c, 42);
    BW_CHECK_NOT_CONTAINS(c.out, "accidental error");
    bw_test_child_free(&c);
}

/* ---- D-82: no counterpart -------------------------------------------------
 *
 * Node's rule is about process.setUncaughtExceptionCapture(), a single
 * capture hook that domains take over. bulwark has no such hook: the
 * process level is a list of uncaught handlers that coexist with domains
 * at any time. What is checked instead: handlers can be installed and
 * removed while domains are in use, a domain still takes precedence, and
 * removing an unknown handler is a clear status.
 */
BW_TEST(D_82, uncaught_handlers_coexist_with_domains)
{
    bw_rec u = {0};
    scene s = {0};
    scase handled = {B_SYNC, false, H_INNER};
    scene_play(&s, &handled); /* domains in use */
    BW_CHECK_INT_EQ(bw_on_uncaught(bw_rec_uncaught, &u), 0);
    scene_free(&s);
    memset(&s, 0, sizeof s);
    scene_play(&s, &handled);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    BW_CHECK_INT_EQ(u.calls, 0);
    scene_free(&s);
    memset(&s, 0, sizeof s);
    scase unhandled = {B_SYNC, false, H_NONE};
    scene_play(&s, &unhandled);
    BW_CHECK_INT_EQ(u.calls, 1);
    scene_free(&s);
    BW_CHECK_INT_EQ(bw_off_uncaught(bw_rec_uncaught, &u), 0);
    BW_CHECK_INT_EQ(bw_off_uncaught(bw_rec_uncaught, &u), -ENOENT);
    bw_rec_clear(&u);
}
