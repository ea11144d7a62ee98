/*
 * test_throw.c: thrown exceptions (domain-behaviors.md section 8,
 * D-50..D-57).
 *
 * "Abort mode" is bw_set_abort_on_uncaught(true), the C counterpart of
 * --abort-on-uncaught-exception; the process-level checks run in a forked
 * child (bw_test_fork), whose exit status the parent checks.
 */
#include "bw_rec.h"

#include <signal.h>

/* ---- Shared scenario pieces --------------------------------------------- */

typedef struct scene {
    bw_loop *loop;
    bw_domain *d;
    bw_rec rec;
    int thrown; /* throws that happened */
} scene;

static void scene_throw(void *arg)
{
    scene *s = arg;
    s->thrown++;
    bw_throwf(-EINVAL, "thrown #%d", s->thrown);
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

static void scene_data_listener(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    (void)arg;
    scene_throw(data);
}

static void scene_emit_data(bw_timer *t, void *data)
{
    (void)t;
    bw_emitter *socket = data;
    bw_emitter_emit(socket, "data", "chunk");
}

/* ---- D-50 ----------------------------------------------------------------- */

static void *d50_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "exceptional!");
}

static void d50_main(void *arg)
{
    bw_domain_run(arg, d50_throw, NULL);
}

static void d50_child(void *arg)
{
    (void)arg;
    bw_set_abort_on_uncaught(true);
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    bw_test_main(d50_main, d);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "exceptional!");
    BW_CHECK_INT_EQ(bw_error_domain_thrown(r.err[0]), BW_YES);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0); /* the handler cleared the stack */
    printf("carried on\n");
    bw_rec_clear(&r);
    bw_domain_release(d);
}

BW_TEST(D_50, sync_throw_in_run_goes_to_handler_and_process_carries_on)
{
    bw_test_child c = bw_test_fork(d50_child, NULL, 10);
    BW_CHECK_EXIT(c, 0);
    BW_CHECK_CONTAINS(c.out, "carried on");
    bw_test_child_free(&c);
}

/* ---- D-51: a throw from any async callback bound to d ------------------- */

enum d51_kind { D51_TICK, D51_TIMEOUT, D51_IMMEDIATE, D51_TIMEOUT_TICK, D51_FS, D51_DATA, D51_N };

static void *d51_schedule(void *arg)
{
    scene *s = arg;
    enum d51_kind kind = (enum d51_kind)(intptr_t)bw_domain_data(s->d);
    switch (kind) {
    case D51_TICK:
        bw_next_tick(s->loop, scene_throw, s);
        break;
    case D51_TIMEOUT:
        bw_timeout(s->loop, 33, scene_throw_timer, s, NULL);
        break;
    case D51_IMMEDIATE:
        bw_set_immediate(s->loop, scene_throw, s, NULL);
        break;
    case D51_TIMEOUT_TICK:
        bw_timeout(s->loop, 1, scene_tick_then_throw, s, NULL);
        break;
    case D51_FS:
        bw_fs_exists(s->loop, "/", scene_throw_fs, s);
        break;
    case D51_DATA: {
        bw_emitter *socket = bw_test_emitter(); /* a socket of d's */
        bw_emitter_on(socket, "data", scene_data_listener, s);
        bw_timeout(s->loop, 1, scene_emit_data, socket, NULL);
        return socket;
    }
    case D51_N:
        break;
    }
    return NULL;
}

static void d51_child(void *arg)
{
    bw_set_abort_on_uncaught(true);
    scene s = {bw_test_loop(), bw_test_domain(), {0}, 0};
    BW_CHECK_INT_EQ(bw_domain_once_error(s.d, bw_rec_handler, &s.rec), 0);
    bw_domain_set_data(s.d, arg);
    bw_emitter *socket = bw_domain_run(s.d, d51_schedule, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.thrown, 1);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(s.rec.err[0]), s.d);
    bw_emitter_free(socket);
    bw_rec_clear(&s.rec);
    bw_domain_release(s.d);
}

BW_TEST(D_51, throw_from_any_async_callback_reaches_the_domain)
{
    for (intptr_t kind = 0; kind < D51_N; kind++) {
        bw_test_child c = bw_test_fork(d51_child, (void *)kind, 10);
        if (!c.exited || c.code != 0)
            printf("case %d:\n", (int)kind);
        BW_CHECK_EXIT(c, 0);
        bw_test_child_free(&c);
    }
}

/* ---- D-52: one run body, five throws, all routed ------------------------ */

static void *d52_body(void *arg)
{
    scene *s = arg;
    bw_next_tick(s->loop, scene_throw, s);
    bw_fs_exists(s->loop, "/", scene_throw_fs, s);
    bw_set_immediate(s->loop, scene_throw, s, NULL);
    bw_timeout(s->loop, 0, scene_throw_timer, s, NULL);
    scene_throw(s);
    return NULL;
}

static void d52_main(void *arg)
{
    scene *s = arg;
    bw_domain_run(s->d, d52_body, s);
}

static void d52_child(void *arg)
{
    (void)arg;
    bw_set_abort_on_uncaught(true);
    scene s = {bw_test_loop(), NULL, {0}, 0};
    s.d = bw_rec_domain(&s.rec);
    bw_test_main(d52_main, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.thrown, 5);
    BW_CHECK_INT_EQ(s.rec.calls, 5);
    bw_rec_clear(&s.rec);
    bw_domain_release(s.d);
}

BW_TEST(D_52, every_throw_of_one_run_body_is_routed)
{
    bw_test_child c = bw_test_fork(d52_child, NULL, 10);
    BW_CHECK_EXIT(c, 0);
    bw_test_child_free(&c);
}

/* ---- D-53: thrown values that are not errors ------------------------------
 *
 * C has no untyped throw: bw_throw_value(v) carries any pointer-sized value
 * in an error of code BW_ETHROWN, and bw_error_value() gives back exactly
 * v. The seven JS values map to: 42, NULL (null and undefined alike),
 * false (0), a function pointer, a string, and a unique address (a symbol).
 */
static void d53_fn(void) {}

static const char d53_symbol = 's';

typedef struct d53 {
    bw_loop *loop;
    void *values[7];
    int next;
} d53;

static void d53_throw(void *arg)
{
    d53 *s = arg;
    bw_throw_value(s->values[s->next++]);
}

static void *d53_schedule(void *arg)
{
    d53 *s = arg;
    for (int i = 0; i < 7; i++)
        bw_next_tick(s->loop, d53_throw, s);
    return NULL;
}

BW_TEST(D_53, thrown_value_reaches_handler_exactly_as_thrown)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    d53 s = {bw_test_loop(),
             {(void *)(intptr_t)42, NULL, NULL, (void *)(intptr_t) false, (void *)(uintptr_t)d53_fn,
              "string", (void *)&d53_symbol},
             0};
    bw_domain_run(d, d53_schedule, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(r.calls, 7);
    for (int i = 0; i < 7; i++) {
        BW_CHECK(bw_error_is_value(r.err[i]));
        BW_CHECK_PTR_EQ(bw_error_value(r.err[i]), s.values[i]);
        BW_CHECK_INT_EQ(bw_error_code(r.err[i]), BW_ETHROWN);
        BW_CHECK_PTR_EQ(r.domain[i], d);
    }
    bw_rec_clear(&r);
    bw_domain_release(d);
}

/* ---- D-54: catching is decided when the error happens ------------------- */

static void *d54_schedule(void *arg)
{
    scene *s = arg;
    bw_next_tick(s->loop, scene_throw, s);
    return NULL;
}

static void *d54_schedule_timers(void *arg)
{
    scene *s = arg;
    bw_timeout(s->loop, 1, scene_throw_timer, s, NULL);
    bw_timeout(s->loop, 1, scene_throw_timer, s, NULL);
    return NULL;
}

BW_TEST(D_54, handler_registered_after_scheduling_still_catches)
{
    scene s = {bw_test_loop(), bw_test_domain(), {0}, 0};
    bw_domain_run(s.d, d54_schedule, &s);
    BW_CHECK_INT_EQ(bw_domain_on_error(s.d, bw_rec_handler, &s.rec), 0); /* only now */
    bw_loop_run(s.loop, UV_RUN_DEFAULT);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    BW_CHECK_INT_EQ(bw_domain_off_error(s.d, bw_rec_handler, &s.rec), 0);
    BW_CHECK_INT_EQ(bw_domain_off_error(s.d, bw_rec_handler, &s.rec), -ENOENT);

    /* With once, registered after the run that scheduled two timers: the
     * first throw is caught; the second finds no handler (an uncaught
     * handler takes it, since the once-handler is gone). */
    bw_rec uncaught = {0};
    bw_on_uncaught(bw_rec_uncaught, &uncaught);
    bw_domain_run(s.d, d54_schedule_timers, &s);
    BW_CHECK_INT_EQ(bw_domain_once_error(s.d, bw_rec_handler, &s.rec), 0);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.thrown, 3);
    BW_CHECK_INT_EQ(s.rec.calls, 2);
    BW_CHECK_INT_EQ(uncaught.calls, 1);
    bw_off_uncaught(bw_rec_uncaught, &uncaught);
    bw_rec_clear(&uncaught);
    bw_rec_clear(&s.rec);
    bw_domain_release(s.d);
}

/* ---- D-55: the outermost handler runs with nothing active --------------- */

typedef void (*d55_fn)(void);
static d55_fn volatile d55_undefined = NULL;

static void *d55_call_undefined(void *arg)
{
    (void)arg;
    if (d55_undefined == NULL)
        bw_throwf(-EINVAL, "undefined is not a function");
    d55_undefined();
    return NULL;
}

static void *d55_call_null(void *arg)
{
    (void)arg;
    d55_undefined(); /* a call through a NULL function pointer: SIGSEGV */
    return NULL;
}

typedef struct d55 {
    bw_domain *d;
    void *(*body)(void *);
} d55;

static void d55_timer(bw_timer *t, void *data)
{
    (void)t;
    d55 *s = data;
    bw_domain_run(s->d, s->body, NULL);
}

static void d55_check(void *(*body)(void *), int signo)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    d55 s = {bw_rec_domain(&r), body};
    bw_timeout(loop, 1, d55_timer, &s, NULL);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[0]), s.d);
    BW_CHECK(r.active[0] == NULL);
    BW_CHECK_INT_EQ(r.depth[0], 0);
    BW_CHECK_INT_EQ(bw_error_signal(r.err[0]), signo);
    bw_rec_clear(&r);
    bw_domain_release(s.d);
}

BW_TEST(D_55, outermost_handler_runs_with_no_active_domain)
{
    d55_check(d55_call_undefined, 0);
}

/* The literal C form of "call an undefined function": a fault. */
BW_FAULT_TEST(D_55, null_function_call_reaches_outermost_handler)
{
    d55_check(d55_call_null, SIGSEGV);
}

/* ---- D-56: once handled, the stack is empty ----------------------------- */

typedef struct d56 {
    bw_loop *loop;
    size_t depth;
    bw_domain *active;
    int ticks;
} d56;

static void d56_tick(void *arg)
{
    d56 *s = arg;
    s->ticks++;
    s->depth = bw_domain_stack_depth();
    s->active = bw_domain_active();
}

static void d56_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    d56 *s = data;
    bw_next_tick(s->loop, d56_tick, s);
}

static void d56_throw_timer(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    bw_throwf(-EINVAL, "E");
}

static void *d56_start(void *arg)
{
    d56 *s = arg;
    bw_timeout(s->loop, 1, d56_throw_timer, s, NULL);
    return NULL;
}

BW_TEST(D_56, stack_is_empty_once_a_throw_is_handled)
{
    d56 s = {bw_test_loop(), 99, (bw_domain *)&s, 0};
    bw_domain *d = bw_test_domain();
    bw_domain_on_error(d, d56_handler, &s);
    bw_domain_run(d, d56_start, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.ticks, 1);
    BW_CHECK_INT_EQ(s.depth, 0);
    BW_CHECK(s.active == NULL);
    bw_domain_release(d);
}

/* ---- D-57: a handled throw does not disturb unrelated work --------------- */

typedef struct d57 {
    bw_loop *loop;
    int logs;
} d57;

static void d57_log(bw_timer *t, void *data)
{
    (void)t;
    d57 *s = data;
    if (++s->logs < 10)
        bw_timeout(s->loop, 5, d57_log, s, NULL); /* re-arms itself */
}

static void *d57_fail_later(void *arg)
{
    scene *sc = arg;
    bw_timeout(sc->loop, 12, scene_throw_timer, sc, NULL);
    return NULL;
}

BW_TEST(D_57, handled_throw_does_not_disturb_unrelated_work)
{
    d57 s = {bw_test_loop(), 0};
    scene sc = {s.loop, NULL, {0}, 0};
    sc.d = bw_rec_domain(&sc.rec);
    bw_timeout(s.loop, 5, d57_log, &s, NULL);
    bw_domain_run(sc.d, d57_fail_later, &sc);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(sc.rec.calls, 1);
    BW_CHECK_INT_EQ(s.logs, 10);
    bw_rec_clear(&sc.rec);
    bw_domain_release(sc.d);
}
