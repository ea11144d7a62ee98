/*
 * test_tick.c: the loop's own semantics that the domain rules lean on:
 * next ticks, immediates, timers (clear, ref/unref, hold).
 */
#include "bw_rec.h"

/* ---- Immediates ------------------------------------------------------------ */

typedef struct imm {
    bw_loop *loop;
    uv_prepare_t prepare; /* counts loop iterations */
    int iteration;
    int a_iteration;
    int c_iteration;
    int b_ran;
    int c_ran;
    bw_immediate *b;
} imm;

static void on_prepare(uv_prepare_t *p)
{
    ((imm *)p->data)->iteration++;
}

static void imm_c(void *arg)
{
    imm *s = arg;
    s->c_ran++;
    s->c_iteration = s->iteration;
    uv_prepare_stop(&s->prepare);
    uv_close((uv_handle_t *)&s->prepare, NULL);
}

static void imm_b(void *arg)
{
    ((imm *)arg)->b_ran++;
}

static void imm_a(void *arg)
{
    imm *s = arg;
    s->a_iteration = s->iteration;
    bw_immediate_clear(s->b); /* the last one queued before this phase */
    bw_set_immediate(s->loop, imm_c, s, NULL);
}

BW_TEST(X_30, immediate_queued_by_immediate_waits_for_next_iteration)
{
    imm s = {0};
    s.loop = bw_test_loop();
    uv_prepare_init(bw_loop_uv(s.loop), &s.prepare);
    s.prepare.data = &s;
    uv_prepare_start(&s.prepare, on_prepare);
    uv_unref((uv_handle_t *)&s.prepare);
    bw_set_immediate(s.loop, imm_a, &s, NULL);
    BW_CHECK_INT_EQ(bw_set_immediate(s.loop, imm_b, &s, &s.b), 0);
    bw_test_loop_finish(s.loop);
    bw_immediate_release(s.b);
    BW_CHECK_INT_EQ(s.b_ran, 0);
    BW_CHECK_INT_EQ(s.c_ran, 1);
    BW_CHECK(s.c_iteration > s.a_iteration); /* not in the same check phase */
}

static void count_task(void *arg)
{
    (*(int *)arg)++;
}

BW_TEST(X_31, cleared_immediate_never_runs)
{
    bw_loop *loop = bw_test_loop();
    int ran = 0;
    bw_immediate *im, *other;
    BW_CHECK_INT_EQ(bw_set_immediate(loop, count_task, &ran, &im), 0);
    BW_CHECK_INT_EQ(bw_set_immediate(loop, count_task, &ran, &other), 0);
    bw_immediate_clear(im);
    bw_immediate_clear(im); /* twice: a no-op */
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(ran, 1);
    bw_immediate_clear(other); /* after it ran: a no-op */
    bw_immediate_release(im);
    bw_immediate_release(other);
}

/* ---- Next ticks ------------------------------------------------------------ */

typedef struct ticks {
    bw_loop *loop;
    char log[16];
    int n;
} ticks;

static void tick_b(void *arg)
{
    ticks *s = arg;
    s->log[s->n++] = 'b';
}

static void tick_a(void *arg)
{
    ticks *s = arg;
    s->log[s->n++] = 'a';
    bw_next_tick(s->loop, tick_b, s); /* queued by a tick: the same drain */
}

static void timer_1(bw_timer *t, void *data)
{
    (void)t;
    ticks *s = data;
    s->log[s->n++] = '1';
    bw_next_tick(s->loop, tick_a, s);
}

static void timer_2(bw_timer *t, void *data)
{
    (void)t;
    ticks *s = data;
    s->log[s->n++] = '2';
}

BW_TEST(X_32, next_tick_runs_right_after_the_current_callback)
{
    ticks s = {0};
    s.loop = bw_test_loop();
    bw_timeout(s.loop, 1, timer_1, &s, NULL);
    bw_timeout(s.loop, 1, timer_2, &s, NULL); /* due in the same batch */
    bw_busy_wait_ms(2);
    bw_test_loop_finish(s.loop);
    BW_CHECK_STR_EQ(s.log, "1ab2");
}

/* ---- Timers ------------------------------------------------------------------ */

static void never(bw_timer *t, void *data)
{
    (void)t;
    (*(int *)data)++;
}

BW_TEST(X_33, unrefd_timer_does_not_keep_the_loop_alive)
{
    bw_loop *loop = bw_test_loop();
    int fired = 0;
    bw_timer *kill;
    BW_CHECK_INT_EQ(bw_timeout(loop, 30000, never, &fired, &kill), 0);
    BW_CHECK(bw_timer_has_ref(kill));
    bw_timer_unref(kill);
    BW_CHECK(!bw_timer_has_ref(kill));
    uint64_t start = uv_hrtime();
    bw_loop_run(loop, UV_RUN_DEFAULT); /* nothing else: returns at once */
    BW_CHECK(uv_hrtime() - start < 1000000000u);
    BW_CHECK(bw_timer_is_pending(kill));
    bw_timer_ref(kill);
    BW_CHECK(bw_timer_has_ref(kill));
    bw_timer_clear(kill);
    BW_CHECK(!bw_timer_is_pending(kill));
    bw_timer_clear(kill); /* held and finished: harmless */
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(fired, 0);
    bw_timer_release(kill);
}

static void interval_three(bw_timer *t, void *data)
{
    int *n = data;
    if (++*n == 3)
        bw_timer_clear(t); /* from inside its own callback */
}

BW_TEST(X_34, interval_runs_until_cleared)
{
    bw_loop *loop = bw_test_loop();
    int n = 0;
    bw_timer *t;
    BW_CHECK_INT_EQ(bw_interval(loop, 0, interval_three, &n, &t), 0);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(n, 3);
    BW_CHECK(!bw_timer_is_pending(t));
    bw_timer_release(t);
}

/* ---- a handle stays valid until its owner releases it -------------
 * The libuv or Node habit: keep the timer, clear it later, whether or not
 * it fired meanwhile. The handle the caller asked for is the caller's, so
 * that clear is a no-op, never a use after free (the ASan and valgrind
 * runs of this file check the "never"). */

static void count_timer(bw_timer *t, void *data)
{
    (void)t;
    (*(int *)data)++;
}

BW_TEST(X_37, clearing_a_fired_timer_does_nothing)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop();
    long base = bw_count_live;
    int fired = 0, ran = 0;
    bw_timer *t, *forgotten;
    bw_immediate *im;
    BW_CHECK_INT_EQ(bw_timeout(loop, 0, count_timer, &fired, &t), 0);
    BW_CHECK_INT_EQ(bw_timeout(loop, 0, count_timer, &fired, NULL), 0); /* fire and forget */
    BW_CHECK_INT_EQ(bw_timeout(loop, 0, count_timer, &fired, &forgotten), 0);
    bw_timer_release(forgotten); /* given up before it fires: it still fires */
    BW_CHECK_INT_EQ(bw_set_immediate(loop, count_task, &ran, &im), 0);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    BW_CHECK_INT_EQ(fired, 3);
    BW_CHECK_INT_EQ(ran, 1);
    BW_CHECK(!bw_timer_is_pending(t));
    bw_timer_clear(t); /* fired: nothing happens */
    bw_timer_clear(t);
    bw_timer_unref(t);
    BW_CHECK(!bw_timer_has_ref(t));
    bw_immediate_clear(im); /* ran: nothing happens */
    bw_timer_release(t);
    bw_immediate_release(im);
    BW_CHECK_INT_EQ(bw_count_live, base); /* the releases freed them */
    bw_test_loop_finish(loop);
}

BW_TEST(X_38, constructors_refuse_what_cannot_run)
{
    bw_loop *loop = bw_test_loop();
    bw_timer *t = (bw_timer *)&t;
    bw_immediate *im = (bw_immediate *)&im;
    bw_bound *b = (bw_bound *)&b;
    BW_CHECK_INT_EQ(bw_timeout(loop, 1, NULL, NULL, &t), -EINVAL);
    BW_CHECK(t == NULL);
    t = (bw_timer *)&t;
    BW_CHECK_INT_EQ(bw_interval(NULL, 1, count_timer, NULL, &t), -EINVAL);
    BW_CHECK(t == NULL);
    BW_CHECK_INT_EQ(bw_set_immediate(loop, NULL, NULL, &im), -EINVAL);
    BW_CHECK(im == NULL);
    BW_CHECK_INT_EQ(bw_domain_bind(NULL, NULL, NULL, &b), -EINVAL);
    BW_CHECK(b == NULL);
    bw_test_loop_finish(loop);
}
