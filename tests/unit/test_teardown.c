/*
 * test_teardown.c: user code that a domain's teardown calls (the close
 * functions of its resources, its cleanups) runs under a guard of its own
 * (issue 12, item 7).
 *
 * A cleanup or close function that throws or faults costs only itself: the
 * others still run, the arena is still freed, nothing leaks, the stack the
 * dispose was called with is put back, and the process carries on. The
 * failure goes to the disposed domain's owner if it had one with a handler,
 * otherwise to the log (docs/DOMAINS.md, "When a cleanup fails"); never to
 * the disposed domain's own handlers.
 *
 * The throwing cases run in every variant (the .asan and .valgrind ones
 * prove that nothing leaks); the faulting ones (F_) in the plain build only.
 * Each dispose here happens outside any guard, as the HTTP server's does
 * after a response went out: before this, the first throw ended the process.
 */
#include "bw_rec.h"

/* ---- What happened -------------------------------------------------------- */

typedef struct seen {
    int order[8]; /* the cleanups and close functions, in the order they ran */
    int n;
    bw_domain *active[8];
    int errors_logged;
    char log[8192];
} seen;

static seen s;

static void note(int id)
{
    if (s.n < 8) {
        s.active[s.n] = bw_domain_active();
        s.order[s.n] = id;
    }
    s.n++;
}

static void log_hook(bw_log_level level, const char *msg, void *data)
{
    (void)data;
    if (level != BW_LOG_ERROR)
        return;
    s.errors_logged++;
    size_t len = strlen(s.log);
    snprintf(s.log + len, sizeof s.log - len, "%s\n", msg);
}

static void start(void)
{
    memset(&s, 0, sizeof s);
    bw_log_set_handler(log_hook, NULL);
    bw_domain_release(bw_test_domain()); /* the thread's state exists from here */
}

static void finish(void)
{
    bw_log_set_handler(NULL, NULL);
}

static void cleanup_ok(void *arg)
{
    note((int)(intptr_t)arg);
}

static void cleanup_throws(void *arg)
{
    note((int)(intptr_t)arg);
    bw_domain *leaked = bw_test_domain();
    bw_domain_enter(leaked); /* never exited: must not outlive the cleanup */
    bw_domain_release(leaked);
    bw_throwf(-EIO, "cleanup %d threw", (int)(intptr_t)arg);
}

void cleanup_faults(void *arg) /* not static: named in the logged backtrace */
{
    note((int)(intptr_t)arg);
    volatile int *volatile p = NULL;
    *p = 1;
}

static void close_ok(void *ptr)
{
    note((int)(intptr_t)ptr);
}

static void close_throws(void *ptr)
{
    note((int)(intptr_t)ptr);
    bw_throwf(-EBADF, "close %d threw", (int)(intptr_t)ptr);
}

void close_faults(void *ptr)
{
    note((int)(intptr_t)ptr);
    volatile int *volatile p = NULL;
    *p = 2;
}

/* A domain with an arena in use, cleanups 1, `bad` (failing with `fail`),
 * 3 registered in that order (they run 3, bad, 1), and two resources: one
 * whose close fails (`bad_close`, id 10) and one that closes (id 11). */
static bw_domain *doomed(bw_task_fn fail, bw_resource_close_fn bad_close, bw_resource **rs)
{
    bw_domain *d = bw_test_domain();
    for (int i = 0; i < 20; i++)
        BW_CHECK(bw_domain_alloc(d, 500) != NULL);
    BW_CHECK(bw_domain_arena_size(d) > 0);
    BW_CHECK_INT_EQ(bw_domain_defer(d, cleanup_ok, (void *)1), 0);
    BW_CHECK_INT_EQ(bw_domain_defer(d, fail != NULL ? fail : cleanup_ok, (void *)2), 0);
    BW_CHECK_INT_EQ(bw_domain_defer(d, cleanup_ok, (void *)3), 0);
    rs[0] = bw_test_resource((void *)10, bad_close != NULL ? bad_close : close_ok);
    rs[1] = bw_test_resource((void *)11, close_ok);
    bw_domain_add(d, bw_resource_member(rs[0]));
    bw_domain_add(d, bw_resource_member(rs[1]));
    return d;
}

/* Everything ran, in order: the close functions (members in the order
 * added), then the cleanups last registered first; all outside any domain. */
static void check_all_ran(void)
{
    BW_CHECK_INT_EQ(s.n, 5);
    int want[5] = {10, 11, 3, 2, 1};
    for (int i = 0; i < 5; i++) {
        BW_CHECK_INT_EQ(s.order[i], want[i]);
        BW_CHECK(s.active[i] == NULL);
    }
}

/* Dispose from inside another domain, outside any guard; the counting
 * allocator proves the arena went back. */
static void dispose_and_check(bw_domain *d, bw_resource **rs)
{
    long before = bw_count_live;
    size_t arena = bw_domain_arena_size(d);
    BW_CHECK(arena > 0);
    bw_domain *outer = bw_test_domain();
    bw_domain_enter(outer);
    BW_CHECK(!bw_in_guard());
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    /* The caller's stack is back, without anything a cleanup leaked. */
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 1);
    BW_CHECK_PTR_EQ(bw_domain_active(), outer);
    bw_domain_exit(outer);
    bw_domain_release(outer);
    check_all_ran();
    BW_CHECK(bw_domain_is_disposed(d));
    BW_CHECK_INT_EQ(bw_domain_arena_size(d), 0);
    BW_CHECK(bw_count_live < before); /* the arena's blocks were given back */
    BW_CHECK(bw_resource_is_disposed(rs[0]));
    BW_CHECK(bw_resource_is_disposed(rs[1]));
    bw_resource_free(rs[0]);
    bw_resource_free(rs[1]);
    bw_domain_release(d);
}

/* Dispose a `doomed` domain whose cleanup `fail` or close function
 * `bad_close` fails: everything else ran, one failure was logged, and its
 * report contains `what`. The log stays in `s` for further checks. */
static void check_contained(bw_task_fn fail, bw_resource_close_fn bad_close, const char *what)
{
    start();
    bw_resource *rs[2];
    bw_domain *d = doomed(fail, bad_close, rs);
    dispose_and_check(d, rs);
    BW_CHECK_INT_EQ(s.errors_logged, 1);
    BW_CHECK_CONTAINS(s.log, what);
    finish();
}

static void check_fault_contained(bw_task_fn fail, bw_resource_close_fn bad_close, const char *what)
{
    check_contained(fail, bad_close, what);
    BW_CHECK_CONTAINS(s.log, "SIGSEGV");
    BW_CHECK_CONTAINS(s.log, "the process is in doubt");
}

BW_TEST(X_26, cleanup_that_throws_costs_only_itself)
{
    bw_count_install();
    start();
    long base = bw_count_live;
    bw_rec r = {0};
    bw_resource *rs[2];
    bw_domain *d = doomed(cleanup_throws, NULL, rs);
    bw_rec_on(d, &r);
    dispose_and_check(d, rs);
    BW_CHECK_INT_EQ(r.calls, 0); /* never the disposed domain's own handler */
    BW_CHECK_INT_EQ(s.errors_logged, 1);
    BW_CHECK_CONTAINS(s.log, "a cleanup (bw_domain_defer) failed");
    BW_CHECK_CONTAINS(s.log, "cleanup 2 threw");
    finish();
    BW_CHECK_INT_EQ(bw_count_live, base); /* and nothing else leaked either */
}

BW_TEST(X_27, close_function_that_throws_costs_only_itself)
{
    bw_count_install();
    start();
    long base = bw_count_live;
    check_contained(NULL, close_throws, "a resource's close function failed");
    BW_CHECK_CONTAINS(s.log, "close 10 threw");
    BW_CHECK_INT_EQ(bw_count_live, base);
}

/* ---- The owner takes the failure ------------------------------------------ */

BW_TEST(X_28, failed_cleanup_goes_to_the_owner_domain)
{
    start();
    bw_rec rp = {0}, rd = {0};
    bw_domain *p = bw_rec_domain(&rp);
    bw_domain *mid = bw_test_domain(); /* no handler: the failure goes past it */
    bw_resource *rs[2];
    bw_domain *d = doomed(cleanup_throws, close_throws, rs);
    bw_rec_on(d, &rd);
    BW_CHECK_INT_EQ(bw_domain_add(p, bw_domain_member(mid)), 0);
    BW_CHECK_INT_EQ(bw_domain_add(mid, bw_domain_member(d)), 0);
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    check_all_ran();
    BW_CHECK_INT_EQ(rd.calls, 0);
    BW_CHECK_INT_EQ(rp.calls, 2);
    BW_CHECK_STR_EQ(bw_error_message(rp.err[0]), "close 10 threw");
    BW_CHECK_STR_EQ(bw_error_message(rp.err[1]), "cleanup 2 threw");
    for (int i = 0; i < 2; i++) {
        BW_CHECK_ROUTING(rp.err[i], p, BW_YES, NULL, NULL);
        BW_CHECK(rp.active[i] == NULL); /* outside any domain, like the cleanups */
    }
    BW_CHECK_INT_EQ(s.errors_logged, 0); /* taken, so not logged */
    BW_CHECK_INT_EQ(bw_domain_member_count(mid), 0);
    bw_rec_clear(&rp);
    bw_resource_free(rs[0]);
    bw_resource_free(rs[1]);
    bw_domain_release(d);
    bw_domain_remove(p, bw_domain_member(mid));
    bw_domain_release(mid);
    bw_domain_release(p);
    finish();
}

/* An owner's handler that throws while handling the failure: logged too,
 * and the teardown goes on. */
static void throwing_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    (*(int *)data)++;
    bw_throwf(-EPERM, "the owner's handler threw");
}

BW_TEST(X_28, owner_handler_that_throws_is_logged)
{
    start();
    int calls = 0;
    bw_domain *p = bw_test_domain();
    bw_domain_on_error(p, throwing_handler, &calls);
    bw_resource *rs[2];
    bw_domain *d = doomed(cleanup_throws, NULL, rs);
    bw_domain_add(p, bw_domain_member(d));
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    check_all_ran();
    BW_CHECK_INT_EQ(calls, 1);
    BW_CHECK_INT_EQ(s.errors_logged, 1);
    BW_CHECK_CONTAINS(s.log, "the owner's handler threw");
    bw_resource_free(rs[0]);
    bw_resource_free(rs[1]);
    bw_domain_release(d);
    bw_domain_release(p);
    finish();
}

/* ---- The last release runs the cleanups under guards too -------------------- */

BW_TEST(X_29, last_release_with_a_throwing_cleanup_frees_everything)
{
    bw_count_install();
    start();
    long base = bw_count_live;
    bw_domain *d = bw_test_domain();
    BW_CHECK(bw_domain_alloc(d, 100000) != NULL);
    bw_domain_defer(d, cleanup_ok, (void *)1);
    bw_domain_defer(d, cleanup_throws, (void *)2);
    bw_domain_defer(d, cleanup_ok, (void *)3);
    bw_domain_release(d);
    BW_CHECK_INT_EQ(s.n, 3);
    BW_CHECK_INT_EQ(s.order[0], 3);
    BW_CHECK_INT_EQ(s.order[2], 1);
    BW_CHECK_INT_EQ(s.errors_logged, 1);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    finish();
    BW_CHECK_INT_EQ(bw_count_live, base);
}

/* ---- Inside a guarded callback: the throw must not escape the dispose ------
 *
 * The common shape: a domain's handler disposes its domain. A throwing
 * cleanup used to jump out of the dispose to the callback's guard, skipping
 * the rest of the handler and of the dispose. */
typedef struct in_handler {
    bw_domain *d;
    int after_dispose;
    bw_rec u;
} in_handler;

static void disposing_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)err;
    in_handler *h = data;
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
    h->after_dispose++;
}

static void *throw_body(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "the request failed");
}

static void run_request(void *arg)
{
    in_handler *h = arg;
    bw_domain_run(h->d, throw_body, NULL);
}

BW_TEST(X_26, cleanup_that_throws_during_dispose_by_a_handler)
{
    start();
    in_handler h = {0};
    h.d = bw_test_domain();
    bw_domain_on_error(h.d, disposing_handler, &h);
    bw_domain_defer(h.d, cleanup_ok, (void *)1);
    bw_domain_defer(h.d, cleanup_throws, (void *)2);
    bw_on_uncaught(bw_rec_uncaught, &h.u);
    bw_test_main(run_request, &h);
    BW_CHECK_INT_EQ(h.after_dispose, 1);
    BW_CHECK_INT_EQ(s.n, 2);
    BW_CHECK_INT_EQ(h.u.calls, 0); /* not the process level */
    BW_CHECK_INT_EQ(s.errors_logged, 1);
    bw_off_uncaught(bw_rec_uncaught, &h.u);
    bw_domain_release(h.d);
    finish();
}

/* ---- The callback limit ------------------------------------------------------
 *
 * A cleanup that keeps its thread busy is interrupted past the callback
 * limit (guard.h) like any other guarded callback, even when the dispose
 * runs outside every guard: its own guard is the outermost. */
static volatile unsigned long spins;

void cleanup_spins(void *arg)
{
    note((int)(intptr_t)arg);
    for (;;)
        spins++;
}

BW_TEST(X_29, cleanup_past_the_callback_limit_is_interrupted_and_contained)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop();
    bw_guard_set_callback_limit(100);
    check_contained(cleanup_spins, NULL, "a cleanup (bw_domain_defer) failed");
    BW_CHECK_CONTAINS(s.log, "callback limit");
    BW_CHECK_CONTAINS(s.log, "origin: timeout");
    BW_CHECK_INT_EQ(bw_loop_free(loop), 0);
}

/* ---- Faults (plain build only) --------------------------------------------- */

BW_FAULT_TEST(F_17, cleanup_that_faults_costs_only_itself)
{
    bw_count_install();
    check_fault_contained(cleanup_faults, NULL, "a cleanup (bw_domain_defer) failed");
    BW_CHECK_CONTAINS(s.log, "cleanup_faults"); /* the backtrace names it */
}

BW_FAULT_TEST(F_18, close_function_that_faults_costs_only_itself)
{
    bw_count_install();
    check_fault_contained(NULL, close_faults, "a resource's close function failed");
    /* A second fault afterwards is still caught: the mask was restored. */
    check_fault_contained(cleanup_faults, NULL, "a cleanup (bw_domain_defer) failed");
}
