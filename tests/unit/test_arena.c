/*
 * test_arena.c: what a domain owns: its arena and cleanups, given back on
 * dispose and on the last release; dispose closes the members.
 *
 * The counting allocator proves, in every build, that each block bulwark
 * took is given back; the .asan and .valgrind variants prove it again with
 * their leak checks.
 */
#include "bw_rec.h"

#include <stdalign.h>

BW_TEST(X_20, arena_allocations_are_aligned_and_counted)
{
    bw_domain *d = bw_test_domain();
    BW_CHECK_INT_EQ(bw_domain_arena_size(d), 0);
    for (size_t size = 0; size < 300; size += 7) {
        char *p = bw_domain_alloc(d, size);
        BW_CHECK(p != NULL);
        BW_CHECK_INT_EQ((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, 0xab, size); /* ASan/valgrind: the whole size is ours */
    }
    size_t small = bw_domain_arena_size(d);
    BW_CHECK(small > 0);
    char *big = bw_domain_alloc(d, 100000); /* a block of its own */
    BW_CHECK(big != NULL);
    memset(big, 1, 100000);
    BW_CHECK(bw_domain_arena_size(d) >= small + 100000);
    /* Small allocations still come from the current block afterwards. */
    size_t before = bw_domain_arena_size(d);
    BW_CHECK(bw_domain_alloc(d, 16) != NULL);
    BW_CHECK_INT_EQ(bw_domain_arena_size(d), before);
    int *zeros = bw_domain_calloc(d, 64, sizeof *zeros);
    for (int i = 0; i < 64; i++)
        BW_CHECK_INT_EQ(zeros[i], 0);
    BW_CHECK(bw_domain_calloc(d, SIZE_MAX / 2, 4) == NULL); /* overflow */
    BW_CHECK(bw_domain_alloc(d, SIZE_MAX) == NULL);
    char *s = bw_domain_strdup(d, "request body");
    BW_CHECK_STR_EQ(s, "request body");
    bw_domain_release(d);
}

static int order[8];
static int norder;
static bw_domain *active_in_cleanup[8];
static size_t depth_in_cleanup[8];

static void cleanup(void *arg)
{
    active_in_cleanup[norder] = bw_domain_active();
    depth_in_cleanup[norder] = bw_domain_stack_depth();
    order[norder++] = (int)(intptr_t)arg;
}

static void fill(bw_domain *d)
{
    for (int i = 0; i < 50; i++)
        BW_CHECK(bw_domain_alloc(d, 100) != NULL);
    BW_CHECK(bw_domain_alloc(d, 64 * 1024) != NULL);
    BW_CHECK(bw_domain_strdup(d, "x") != NULL);
}

BW_TEST(X_21, dispose_runs_cleanups_lifo_outside_any_domain_and_frees_the_arena)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop();
    long base = bw_count_live;
    bw_domain *d = bw_test_domain();
    long with_domain = bw_count_live;
    fill(d);
    for (intptr_t i = 1; i <= 3; i++)
        BW_CHECK_INT_EQ(bw_domain_defer(d, cleanup, (void *)i), 0);
    BW_CHECK(bw_count_live > with_domain);
    bw_domain *other = bw_test_domain();
    bw_domain_enter(other); /* dispose called from inside another domain */
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    bw_domain_exit(other);
    BW_CHECK_INT_EQ(norder, 3);
    BW_CHECK_INT_EQ(order[0], 3);
    BW_CHECK_INT_EQ(order[1], 2);
    BW_CHECK_INT_EQ(order[2], 1);
    for (int i = 0; i < 3; i++) {
        BW_CHECK(active_in_cleanup[i] == NULL);
        BW_CHECK_INT_EQ(depth_in_cleanup[i], 0);
    }
    BW_CHECK_INT_EQ(bw_domain_arena_size(d), 0);
    bw_domain_release(other);
    BW_CHECK_INT_EQ(bw_count_live, with_domain); /* only the domain itself */
    /* After dispose: no memory, no cleanups (fn not called: still ours). */
    BW_CHECK(bw_domain_alloc(d, 8) == NULL);
    BW_CHECK_INT_EQ(bw_domain_defer(d, cleanup, (void *)9), BW_EDISPOSED);
    bw_domain_release(d);
    BW_CHECK_INT_EQ(norder, 3);
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(loop);
}

BW_TEST(X_22, last_release_runs_cleanups_and_frees_the_arena)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop();
    long base = bw_count_live;
    bw_domain *d = bw_test_domain();
    fill(d);
    bw_domain_defer(d, cleanup, (void *)1);
    bw_domain_defer(d, cleanup, (void *)2);
    bw_domain *other = bw_test_domain();
    bw_domain_enter(other);
    bw_domain_release(d); /* never disposed */
    bw_domain_exit(other);
    bw_domain_release(other);
    BW_CHECK_INT_EQ(norder, 2);
    BW_CHECK_INT_EQ(order[0], 2);
    BW_CHECK_INT_EQ(order[1], 1);
    BW_CHECK(active_in_cleanup[0] == NULL);
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(loop);
}

/* ---- dispose closes the members ---------------------------------------- */

typedef struct members {
    bw_loop *loop;
    int fired;
    int heard;
    int closed;
    bw_timer *timeout;
    bw_timer *interval;
    bw_emitter *e;
    bw_resource *r;
    bw_domain *child;
} members;

static void count_fire(bw_timer *t, void *data)
{
    (void)t;
    ((members *)data)->fired++;
}

static void count_heard(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    (void)arg;
    ((members *)data)->heard++;
}

static void count_close(void *ptr)
{
    ((members *)ptr)->closed++;
}

static void child_cleanup(void *arg)
{
    ((members *)arg)->closed += 10;
}

static void *make_members(void *arg)
{
    members *s = arg;
    BW_CHECK_INT_EQ(bw_timeout(s->loop, 1, count_fire, s, &s->timeout), 0);
    BW_CHECK_INT_EQ(bw_interval(s->loop, 1, count_fire, s, &s->interval), 0);
    s->e = bw_test_emitter();
    bw_emitter_on(s->e, "data", count_heard, s);
    bw_emitter_on(s->e, BW_EVENT_ERROR, count_heard, s);
    s->r = bw_test_resource(s, count_close);
    return NULL;
}

static void emit_after(void *arg)
{
    members *s = arg;
    bw_emitter_emit(s->e, "data", NULL);
    /* No listener left, no domain: errors are swallowed, not thrown. */
    BW_CHECK(!bw_emitter_emit_error(s->e, bw_error_new(-EIO, "after dispose")));
}

BW_TEST(X_23, dispose_closes_timers_emitters_resources_and_member_domains)
{
    bw_count_install();
    members s = {0};
    s.loop = bw_test_loop();
    long base = bw_count_live;
    bw_domain *d = bw_test_domain();
    bw_domain_run(d, make_members, &s);
    s.child = bw_test_domain();
    bw_domain_add(d, bw_domain_member(s.child));
    bw_domain_defer(s.child, child_cleanup, &s);
    bw_timer *child_timer;
    BW_CHECK_INT_EQ(bw_timeout(s.loop, 1, count_fire, &s, &child_timer), 0);
    bw_domain_add(s.child, bw_timer_member(child_timer));
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 5);

    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 0);
    BW_CHECK(bw_domain_is_disposed(s.child));
    BW_CHECK_INT_EQ(bw_emitter_listener_count(s.e, "data"), 0);
    BW_CHECK_INT_EQ(bw_emitter_listener_count(s.e, BW_EVENT_ERROR), 0);
    BW_CHECK(bw_resource_is_disposed(s.r));
    BW_CHECK_INT_EQ(s.closed, 1 + 10);
    bw_resource_dispose(s.r); /* the close function runs once only */
    BW_CHECK_INT_EQ(s.closed, 1 + 10);
    bw_test_main(emit_after, &s);
    bw_loop_run(s.loop, UV_RUN_DEFAULT); /* the timers never fire */
    BW_CHECK_INT_EQ(s.fired, 0);
    BW_CHECK_INT_EQ(s.heard, 0);
    /* What is left is the user's: the timer handles, the emitter, the
     * resource record and the two domain references. Disposed, the timers'
     * handles are still valid: clearing them does nothing. Then everything
     * is given back. */
    BW_CHECK(!bw_timer_is_pending(s.timeout) && !bw_timer_is_pending(s.interval));
    bw_timer_clear(s.timeout);
    bw_timer_clear(child_timer);
    bw_timer_release(s.timeout);
    bw_timer_release(s.interval);
    bw_timer_release(child_timer);
    bw_emitter_free(s.e);
    bw_resource_free(s.r);
    bw_domain_release(s.child);
    bw_domain_release(d);
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(s.loop);
}

/* A request that failed: its handler disposes its domain; whatever it had
 * allocated and registered is given back, with no action by anyone else. */
typedef struct request {
    bw_loop *loop;
    bw_domain *d;
    int cleanups;
    int handled;
} request;

static void request_cleanup(void *arg)
{
    ((request *)arg)->cleanups++;
}

static void request_fail(bw_timer *t, void *data)
{
    (void)t;
    request *q = data;
    char *body = bw_domain_alloc(q->d, 4096);
    memset(body, 'x', 4096);
    bw_domain_defer(q->d, request_cleanup, q);
    bw_timeout(q->loop, 1000, count_fire, NULL, NULL); /* would keep the loop alive */
    bw_throwf(-EINVAL, "request failed halfway");
}

static void request_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)err;
    ((request *)data)->handled++;
    bw_domain_dispose(d);
}

static void *request_start(void *arg)
{
    request *q = arg;
    bw_timeout(q->loop, 1, request_fail, q, NULL);
    return NULL;
}

BW_TEST(X_24, failed_request_leaks_nothing_it_allocated_through_its_domain)
{
    bw_count_install();
    request q = {0};
    q.loop = bw_test_loop();
    long base = bw_count_live;
    q.d = bw_test_domain();
    bw_domain_on_error(q.d, request_handler, &q);
    bw_domain_run(q.d, request_start, &q);
    uint64_t start = uv_hrtime();
    bw_loop_run(q.loop, UV_RUN_DEFAULT);
    BW_CHECK(uv_hrtime() - start < 500000000u); /* the 1 s timer was closed */
    BW_CHECK_INT_EQ(q.handled, 1);
    BW_CHECK_INT_EQ(q.cleanups, 1);
    bw_domain_release(q.d);
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(q.loop);
}

/* Allocation failure is the caller's error, never an abort. */
static int fail_after = -1; /* allocations left before failing; -1: never */

static void *bound_identity(void *ctx, void *arg)
{
    (void)ctx;
    return arg;
}

static void *failing_malloc(size_t size, void *ctx)
{
    if (fail_after == 0)
        return NULL;
    if (fail_after > 0)
        fail_after--;
    return bw_count_malloc(size, ctx);
}

static void *failing_realloc(void *ptr, size_t size, void *ctx)
{
    if (fail_after == 0)
        return NULL;
    return bw_count_realloc(ptr, size, ctx);
}

BW_TEST(X_25, allocation_failure_is_a_status_not_an_abort)
{
    bw_allocator a = {failing_malloc, failing_realloc, bw_count_free, NULL};
    bw_set_allocator(&a);
    bw_loop *loop = bw_test_loop();
    long base = bw_count_live;
    bw_domain *d = bw_test_domain();
    fail_after = 0;
    BW_CHECK(bw_domain_alloc(d, 10) == NULL);
    BW_CHECK_INT_EQ(bw_domain_defer(d, cleanup, NULL), -ENOMEM);
    BW_CHECK_INT_EQ(bw_domain_set_name(d, "x"), -ENOMEM);
    bw_bound *b = (bw_bound *)&b;
    BW_CHECK_INT_EQ(bw_domain_bind(d, bound_identity, NULL, &b), -ENOMEM);
    BW_CHECK(b == NULL);
    bw_resource *r = (bw_resource *)&r;
    BW_CHECK_INT_EQ(bw_resource_new(NULL, NULL, &r), -ENOMEM);
    BW_CHECK(r == NULL);
    bw_immediate *im = (bw_immediate *)&im;
    BW_CHECK_INT_EQ(bw_set_immediate(loop, cleanup, NULL, &im), -ENOMEM);
    BW_CHECK(im == NULL);
    BW_CHECK_INT_EQ(bw_next_tick(loop, cleanup, NULL), -ENOMEM);
    BW_CHECK_INT_EQ(bw_fs_stat(loop, "/", NULL, NULL), -ENOMEM);
    fail_after = -1;
    BW_CHECK_INT_EQ(norder, 0); /* the refused cleanup never runs */
    bw_domain_release(d);
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(loop);
}
