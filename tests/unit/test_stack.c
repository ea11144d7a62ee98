/*
 * test_stack.c: creation and the domain stack; run, enter and exit
 * (domain-behaviors.md sections 1 and 2, D-01..D-12).
 */
#include "bw_rec.h"

/* ---- 1. Creation and the stack ----------------------------------------- */

BW_TEST(D_01, new_domain_is_inert)
{
    bw_domain *d = bw_test_domain();
    BW_CHECK(d != NULL);
    BW_CHECK(bw_domain_active() == NULL);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 0);
    BW_CHECK(bw_domain_member_at(d, 0) == NULL);
    BW_CHECK(bw_member_owner(bw_domain_member(d)) == NULL);
    BW_CHECK(!bw_domain_is_disposed(d));
    BW_CHECK_INT_EQ(bw_domain_enter(d), 0);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(0), d);
    BW_CHECK_PTR_EQ(bw_domain_active(), d);
    bw_domain_exit(d);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_domain_release(d);
}

/* D-02: timer A throws inside a domain; timer B, due in the same batch and
 * scheduled with no domain, runs with none. An uncaught handler, and the
 * code after the loop (the C "before-exit"), see none too. */
typedef struct d02 {
    bw_rec handled;
    bw_rec uncaught;
    bw_domain *d;
    bw_domain *seen_in_b;
    size_t depth_in_b;
    int b_calls;
} d02;

static void *d02_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "A");
}

static void d02_timer_a(bw_timer *t, void *data)
{
    (void)t;
    d02 *s = data;
    bw_domain_run(s->d, d02_throw, NULL);
}

static void d02_timer_b(bw_timer *t, void *data)
{
    (void)t;
    d02 *s = data;
    s->b_calls++;
    s->seen_in_b = bw_domain_active();
    s->depth_in_b = bw_domain_stack_depth();
}

static void d02_uncaught_throw(void *arg)
{
    (void)arg;
    bw_domain *nohandler = bw_test_domain();
    bw_domain_enter(nohandler);
    bw_domain_release(nohandler); /* the stack holds it */
    bw_throwf(-EIO, "nobody handles this");
}

BW_TEST(D_02, no_active_domain_after_handled_throw_and_in_uncaught)
{
    d02 s = {0};
    bw_loop *loop = bw_test_loop();
    s.d = bw_rec_domain(&s.handled);
    bw_timeout(loop, 1, d02_timer_a, &s, NULL);
    bw_timeout(loop, 1, d02_timer_b, &s, NULL);
    BW_CHECK_INT_EQ(bw_on_uncaught(bw_rec_uncaught, &s.uncaught), 0);
    bw_test_main(d02_uncaught_throw, NULL);
    BW_CHECK_INT_EQ(s.uncaught.calls, 1);
    BW_CHECK(s.uncaught.active[0] == NULL);
    BW_CHECK_INT_EQ(s.uncaught.depth[0], 0);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    /* "before exit": the loop has ended */
    BW_CHECK(bw_domain_active() == NULL);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    BW_CHECK_INT_EQ(s.handled.calls, 1);
    BW_CHECK_INT_EQ(s.b_calls, 1);
    BW_CHECK(s.seen_in_b == NULL);
    BW_CHECK_INT_EQ(s.depth_in_b, 0);
    BW_CHECK_INT_EQ(bw_off_uncaught(bw_rec_uncaught, &s.uncaught), 0);
    bw_test_loop_finish(loop);
    bw_rec_clear(&s.handled);
    bw_rec_clear(&s.uncaught);
    bw_domain_release(s.d);
}

static void *d03_create(void *arg)
{
    bw_domain **out = arg;
    *out = bw_test_domain();
    return NULL;
}

BW_TEST(D_03, domain_created_inside_run_is_not_bound)
{
    bw_domain *d1 = bw_test_domain();
    bw_domain *d2 = NULL;
    bw_domain_run(d1, d03_create, &d2);
    BW_CHECK(d2 != NULL);
    BW_CHECK(bw_member_owner(bw_domain_member(d2)) == NULL);
    BW_CHECK(!bw_domain_has_member(d1, bw_domain_member(d2)));
    BW_CHECK_INT_EQ(bw_domain_member_count(d1), 0);
    /* Nesting through an explicit add does work. */
    BW_CHECK_INT_EQ(bw_domain_add(d1, bw_domain_member(d2)), 0);
    BW_CHECK_PTR_EQ(bw_member_owner(bw_domain_member(d2)), d1);
    BW_CHECK_INT_EQ(bw_domain_remove(d1, bw_domain_member(d2)), 0);
    bw_domain_release(d2);
    bw_domain_release(d1);
}

/* D-04: 1000 throws from bound functions run from next ticks. */
typedef struct d04 {
    int calls;
    size_t max_depth;
} d04;

static void d04_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    d04 *s = data;
    s->calls++;
    if (bw_domain_stack_depth() > s->max_depth)
        s->max_depth = bw_domain_stack_depth();
}

static void *d04_foo(void *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    bw_throwf(-EINVAL, "foo");
}

static void d04_tick(void *bound)
{
    bw_bound_call(bound, NULL);
}

BW_TEST(D_04, stack_does_not_grow_across_handled_errors)
{
    bw_loop *loop = bw_test_loop();
    d04 s = {0};
    bw_domain *a = bw_test_domain();
    bw_domain_on_error(a, d04_handler, &s);
    bw_bound *foo = bw_test_bind(a, d04_foo, NULL);
    for (int i = 0; i < 1000; i++)
        BW_CHECK_INT_EQ(bw_next_tick(loop, d04_tick, foo), 0);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(s.calls, 1000);
    BW_CHECK(s.max_depth <= 5);
    BW_CHECK_INT_EQ(s.max_depth, 0);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_bound_release(foo);
    bw_domain_release(a);
}

/* D-05: run(create, run(create, run(create, run(dH, throw)))). */
typedef struct d05 {
    bw_domain *chain[4];
    int level;
} d05;

static void *d05_run(void *arg)
{
    d05 *s = arg;
    if (s->level == 4)
        bw_throwf(-EINVAL, "innermost");
    return bw_domain_run(s->chain[s->level++], d05_run, s);
}

static void d05_main(void *arg)
{
    d05_run(arg);
}

BW_TEST(D_05, nested_runs_ending_in_handled_throw_leave_stack_empty)
{
    bw_rec r = {0};
    d05 s = {{bw_test_domain(), bw_test_domain(), bw_test_domain(), bw_rec_domain(&r)}, 0};
    bw_test_main(d05_main, &s);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[0]), s.chain[3]);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_rec_clear(&r);
    for (int i = 0; i < 4; i++)
        bw_domain_release(s.chain[i]);
}

/* ---- 2. run / enter / exit --------------------------------------------- */

static void *d06_inner(void *arg)
{
    size_t *depth = arg;
    *depth = bw_domain_stack_depth();
    return NULL;
}

typedef struct d06 {
    bw_domain *d1;
    size_t depth;
} d06;

static void *d06_outer(void *arg)
{
    d06 *s = arg;
    return bw_domain_run(s->d1, d06_inner, &s->depth);
}

BW_TEST(D_06, enter_pushes_even_if_already_on_stack)
{
    bw_domain *a = bw_test_domain(), *b = bw_test_domain(), *c = bw_test_domain();
    bw_domain_enter(a);
    bw_domain_enter(b);
    bw_domain_enter(c);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 3);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(0), a);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(1), b);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(2), c);
    BW_CHECK(bw_domain_stack_at(3) == NULL);
    BW_CHECK_PTR_EQ(bw_domain_active(), c);
    bw_domain_enter(a);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 4);
    BW_CHECK_PTR_EQ(bw_domain_active(), a);
    bw_domain_exit(a); /* the topmost a */
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 3);
    bw_domain_exit(a); /* the bottom a: clears the stack */
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);

    d06 s = {bw_test_domain(), 0};
    bw_domain_run(s.d1, d06_outer, &s);
    BW_CHECK_INT_EQ(s.depth, 2);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_domain_release(s.d1);
    bw_domain_release(a);
    bw_domain_release(b);
    bw_domain_release(c);
}

BW_TEST(D_07, exit_pops_topmost_occurrence_and_everything_above)
{
    bw_domain *a = bw_test_domain(), *b = bw_test_domain(), *c = bw_test_domain();
    bw_domain_enter(a);
    bw_domain_enter(b);
    bw_domain_enter(c);
    bw_domain_exit(b);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(0), a);
    BW_CHECK_PTR_EQ(bw_domain_active(), a);
    bw_domain_enter(b);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 2);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(1), b);
    /* With duplicates, the topmost occurrence goes: [a,b,a,c] - a = [a,b]. */
    bw_domain_enter(a);
    bw_domain_enter(c);
    bw_domain_exit(a);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 2);
    BW_CHECK_PTR_EQ(bw_domain_active(), b);
    bw_domain_exit(a);
    BW_CHECK(bw_domain_active() == NULL);
    bw_domain_release(a);
    bw_domain_release(b);
    bw_domain_release(c);
}

BW_TEST(D_08, exit_of_domain_not_on_stack_does_nothing)
{
    bw_domain *a = bw_test_domain(), *b = bw_test_domain();
    bw_domain *other = bw_test_domain();
    bw_domain_enter(a);
    bw_domain_enter(b);
    bw_domain_exit(other);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 2);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(0), a);
    BW_CHECK_PTR_EQ(bw_domain_stack_at(1), b);
    bw_domain_exit(a);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_domain_exit(a); /* nothing on the stack at all */
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_domain_release(other);
    bw_domain_release(a);
    bw_domain_release(b);
}

/* D-09: C passes one argument; several arguments travel in a struct. */
static char d09_buf[64];

static void *d09_constant(void *arg)
{
    (void)arg;
    return "return value";
}

typedef struct d09_args {
    const char *a;
    const char *b;
} d09_args;

static void *d09_join(void *arg)
{
    d09_args *x = arg;
    snprintf(d09_buf, sizeof d09_buf, "%s %s", x->a, x->b);
    return d09_buf;
}

BW_TEST(D_09, run_returns_what_fn_returned)
{
    bw_domain *d = bw_test_domain();
    BW_CHECK_STR_EQ(bw_domain_run(d, d09_constant, NULL), "return value");
    d09_args args = {"return", "value"};
    BW_CHECK_STR_EQ(bw_domain_run(d, d09_join, &args), "return value");
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_domain_release(d);
}

/* D-10: inside run(b) b is active; afterwards the stack is as it was. */
typedef struct d10 {
    bw_domain *doms[4];
    int n; /* how many nested runs */
    int level;
    int checks; /* the body's checks that held */
} d10;

static void *d10_body(void *arg)
{
    d10 *s = arg;
    bw_domain *mine = s->doms[s->level];
    if (bw_domain_active() == mine)
        s->checks++;
    size_t before = bw_domain_stack_depth();
    if (++s->level < s->n) {
        bw_domain_run(s->doms[s->level], d10_body, s);
        if (bw_domain_active() == mine && bw_domain_stack_depth() == before)
            s->checks++;
    }
    return NULL;
}

BW_TEST(D_10, run_makes_d_active_and_restores_the_stack)
{
    bw_domain *a = bw_test_domain(), *b = bw_test_domain();
    bw_domain_enter(a);
    d10 s = {{b}, 1, 0, 0};
    bw_domain_run(b, d10_body, &s);
    BW_CHECK_INT_EQ(s.checks, 1);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    BW_CHECK_PTR_EQ(bw_domain_active(), a);

    /* Nested 4 deep with repeated domains: b, a, b, b. */
    d10 n = {{b, a, b, b}, 4, 0, 0};
    bw_domain_run(b, d10_body, &n);
    BW_CHECK_INT_EQ(n.checks, 4 + 3);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    BW_CHECK_PTR_EQ(bw_domain_active(), a);
    bw_domain_exit(a);
    bw_domain_release(a);
    bw_domain_release(b);
}

/* D-11: a throw ends the whole callback: nothing after it runs. */
typedef struct d11 {
    bw_domain *d1;
    bw_domain *d2;
    int reached_inner;
    int reached_outer;
} d11;

static void *d11_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "E");
}

static void *d11_outer(void *arg)
{
    d11 *s = arg;
    bw_domain_run(s->d2, d11_throw, NULL);
    s->reached_inner = 1;
    return NULL;
}

static void d11_main(void *arg)
{
    d11 *s = arg;
    bw_domain_run(s->d1, d11_outer, s);
    s->reached_outer = 1;
}

BW_TEST(D_11, throw_ends_the_tick_and_skips_enclosing_runs)
{
    bw_rec r = {0};
    d11 s = {bw_test_domain(), bw_rec_domain(&r), 0, 0};
    bw_test_main(d11_main, &s);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_INT_EQ(s.reached_inner, 0);
    BW_CHECK_INT_EQ(s.reached_outer, 0);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    /* d2's handler ran with d2 popped: d1 was still below it. */
    BW_CHECK_PTR_EQ(r.active[0], s.d1);
    bw_rec_clear(&r);
    bw_domain_release(s.d1);
    bw_domain_release(s.d2);
}

/* D-12: domains first used from inside an async callback. */
typedef struct d12 {
    bw_loop *loop;
    bw_domain *d;
    bw_domain *seen;
    int calls;
} d12;

static void d12_tick(void *arg)
{
    d12 *s = arg;
    s->calls++;
    s->seen = bw_domain_active();
}

static void *d12_schedule(void *arg)
{
    d12 *s = arg;
    bw_next_tick(s->loop, d12_tick, s);
    return NULL;
}

static void d12_timer(bw_timer *t, void *data)
{
    (void)t;
    d12 *s = data;
    s->d = bw_test_domain();
    bw_domain_run(s->d, d12_schedule, s);
}

BW_TEST(D_12, domains_work_when_first_used_in_a_callback)
{
    d12 s = {bw_test_loop(), NULL, NULL, 0};
    bw_timeout(s.loop, 1, d12_timer, &s, NULL);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.calls, 1);
    BW_CHECK(s.d != NULL);
    BW_CHECK_PTR_EQ(s.seen, s.d);
    bw_domain_release(s.d);
}

/* ---- D-56 at the outermost boundary --------------------------------------
 *
 * Code outside any guard entered a domain, then called a boundary whose
 * callback threw and was handled: once handled, the stack is empty, as in
 * Node ("no domains should be left on the stack between ticks";
 * tests/parity/08). A nested boundary keeps its enclosing callback's
 * domains instead: that callback goes on running in them. */
static void *d56_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "boom");
}

static void d56_run(void *arg)
{
    bw_domain_run(arg, d56_throw, NULL);
}

typedef struct d56_nested {
    bw_domain *outer;
    bw_domain *inner;
    size_t depth_after;
    bw_domain *active_after;
} d56_nested;

static void d56_outer_cb(void *arg)
{
    d56_nested *s = arg;
    bw_invoke(NULL, d56_run, s->inner);
    s->depth_after = bw_domain_stack_depth();
    s->active_after = bw_domain_active();
}

BW_TEST(D_56, outermost_boundary_clears_what_code_outside_any_guard_entered)
{
    bw_rec r = {0};
    bw_domain *top = bw_test_domain();
    bw_domain *d = bw_rec_domain(&r);
    BW_CHECK(!bw_in_guard());
    bw_domain_enter(top);
    bw_invoke(NULL, d56_run, d);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    BW_CHECK(bw_domain_active() == NULL);
    /* Nested: the enclosing callback's domain is kept. */
    d56_nested s = {top, d, 99, NULL};
    bw_invoke(top, d56_outer_cb, &s);
    BW_CHECK_INT_EQ(r.calls, 2);
    BW_CHECK_INT_EQ(s.depth_after, 1);
    BW_CHECK_PTR_EQ(s.active_after, top);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_rec_clear(&r);
    bw_domain_release(d);
    bw_domain_release(top);
}
