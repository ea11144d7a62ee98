/*
 * test_watchdog.c: the callback limit (guard.h, issue 12 item 4): a guarded
 * callback that keeps its thread busy past the limit is interrupted and
 * routed to its domain with origin timeout, like a fault; never while it is
 * inside the C library (nor while a libc function that called back into it
 * is on its stack); 0 turns the limit off; a callback under the limit, or a
 * long run of short ones, is untouched; a domain handler past the limit is
 * interrupted to the next domain down. IDs: L_ (the limit).
 *
 * Times are this thread's CPU time, the clock the limit is counted on.
 */
#include <dlfcn.h>
#include <time.h>

#include "bw_rec.h"

static uint64_t cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static volatile unsigned long spins;

/* Busy in the test's own code until `ms` of CPU time have passed. */
static void spin_for(uint64_t ms)
{
    uint64_t end = cpu_ms() + ms;
    while (cpu_ms() < end)
        for (int i = 0; i < 10000; i++)
            spins++;
}

/* State shared with the callbacks, which never return when interrupted. */
static struct {
    uint64_t started_ms; /* CPU clock when the callback began */
    volatile int stage;  /* how far the callback got */
    bw_rec rec;
} s;

/* Non-static: -rdynamic names them, and the tests check where the
 * interruption landed by that name. */
void spin_forever(void *arg)
{
    (void)arg;
    s.started_ms = cpu_ms();
    s.stage = 1;
    for (;;)
        spins++;
}

static void spin_40(void *arg)
{
    (void)arg;
    spin_for(40);
    s.stage++;
}

/* The routed error, checked for what every interruption must carry. */
static bw_error *only_timeout(bw_domain *d, uint64_t limit_ms)
{
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    bw_error *err = s.rec.err[0];
    BW_CHECK_INT_EQ(bw_error_origin_of(err), BW_ORIGIN_TIMEOUT);
    BW_CHECK_INT_EQ(bw_error_code(err), BW_ETIMEOUT);
    BW_CHECK_INT_EQ(bw_error_signal(err), 0);
    BW_CHECK_PTR_EQ(bw_error_domain(err), d);
    BW_CHECK_PTR_EQ(s.rec.domain[0], d);
    BW_CHECK_CONTAINS(bw_error_message(err), "callback limit");
    char limit[64];
    snprintf(limit, sizeof limit, "the limit is %llu ms", (unsigned long long)limit_ms);
    BW_CHECK_CONTAINS(bw_error_message(err), limit);
    BW_CHECK(bw_error_backtrace(err, NULL) > 0);
    return err;
}

/* The function the interruption landed in (the backtrace's first frame). */
static const char *landed_in(const bw_error *err)
{
    void *const *frames;
    BW_CHECK(bw_error_backtrace(err, &frames) > 0);
    Dl_info info;
    if (dladdr(frames[0], &info) == 0 || info.dli_sname == NULL)
        return "?";
    return info.dli_sname;
}

/* Whether it landed in the module (the test program) of `fn`. */
static bool landed_beside(const bw_error *err, bw_task_fn fn)
{
    void *const *frames;
    BW_CHECK(bw_error_backtrace(err, &frames) > 0);
    Dl_info there, here;
    BW_CHECK(dladdr(frames[0], &there) != 0 && dladdr((void *)fn, &here) != 0);
    return there.dli_fbase == here.dli_fbase;
}

BW_TEST(L_01, busy_loop_is_interrupted_and_routed_to_its_domain)
{
    bw_loop *loop;
    BW_CHECK_INT_EQ(bw_loop_new(&loop), 0);
    bw_guard_set_callback_limit(200);
    BW_CHECK_INT_EQ(bw_guard_callback_limit(), 200);
    bw_domain *d = bw_rec_domain(&s.rec);
    bw_invoke(d, spin_forever, NULL);
    uint64_t took = cpu_ms() - s.started_ms;
    BW_CHECK_INT_EQ(s.stage, 1);
    bw_error *err = only_timeout(d, 200);
    BW_CHECK_STR_EQ(landed_in(err), "spin_forever");
    /* At least the limit, at most about one tick (limit/4) after it
     * (valgrind delivers signals later). */
    const char *preload = getenv("LD_PRELOAD");
    bool valgrind = preload != NULL && strstr(preload, "vgpreload") != NULL;
    BW_CHECK(took >= 200);
    BW_CHECK(took < 200 + 50 + (valgrind ? 1000 : 100));
    /* The thread goes on: the next callback runs to its end, untouched. */
    bw_rec_clear(&s.rec);
    s.stage = 0;
    bw_invoke(d, spin_40, NULL);
    BW_CHECK_INT_EQ(s.stage, 1);
    BW_CHECK_INT_EQ(s.rec.calls, 0);
    bw_domain_release(d);
    BW_CHECK_INT_EQ(bw_loop_free(loop), 0);
}

/* ---- Never inside the C library ---------------------------------------- */

typedef struct key {
    char text[16];
} key;

#define NKEYS (1u << 19)
static key *keys, *shuffled;

/* Sorts that run entirely inside libc (memcpy, then qsort comparing with
 * strcmp), for many times the limit, then a busy loop in the test's code. */
void spin_after_qsort(void *arg)
{
    (void)arg;
    s.started_ms = cpu_ms();
    s.stage = 1;
    for (int round = 0; round < 4; round++) {
        memcpy(keys, shuffled, NKEYS * sizeof *keys);
        qsort(keys, NKEYS, sizeof *keys, (int (*)(const void *, const void *))strcmp);
    }
    s.stage = 2; /* back from libc */
    for (;;)
        spins++;
}

BW_TEST(L_02, not_interrupted_inside_libc_but_once_back_in_user_code)
{
    keys = malloc(NKEYS * sizeof *keys);
    shuffled = malloc(NKEYS * sizeof *keys);
    BW_CHECK(keys != NULL && shuffled != NULL);
    for (unsigned i = 0; i < NKEYS; i++)
        snprintf(shuffled[i].text, sizeof shuffled[i].text, "%08x", i * 2654435761u);
    /* How long one round of the libc part takes here, with the limit off. */
    bw_guard_set_callback_limit(0);
    uint64_t t0 = cpu_ms();
    memcpy(keys, shuffled, NKEYS * sizeof *keys);
    qsort(keys, NKEYS, sizeof *keys, (int (*)(const void *, const void *))strcmp);
    uint64_t one_round = cpu_ms() - t0 + 1;

    /* A limit a fraction of that: every tick past it lands inside libc. */
    uint64_t limit = one_round / 4 + 1;
    bw_guard_set_callback_limit(limit);
    bw_domain *d = bw_rec_domain(&s.rec);
    bw_invoke(d, spin_after_qsort, NULL);
    if (s.stage != 2)
        bw_test_fail(__FILE__, __LINE__, "interrupted during the sorts, in %s",
                     s.rec.calls > 0 ? landed_in(s.rec.err[0]) : "(no error)");
    BW_CHECK_INT_EQ(s.stage, 2); /* the sorts all finished */
    for (unsigned i = 1; i < NKEYS; i++)
        BW_CHECK(strcmp(keys[i - 1].text, keys[i].text) <= 0);
    bw_error *err = only_timeout(d, limit);
    BW_CHECK_STR_EQ(landed_in(err), "spin_after_qsort");
    bw_rec_clear(&s.rec);
    bw_domain_release(d);
    free(keys);
    free(shuffled);
}

static int by_value_slowly(const void *a, const void *b)
{
    spin_for(1); /* user code, but called from inside qsort */
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* User code whose caller is libc (a qsort comparator): not interrupted
 * there either, since qsort's frame may hold what a jump would leak. */
void spin_in_comparator(void *arg)
{
    (void)arg;
    int values[64];
    for (int i = 0; i < 64; i++)
        values[i] = (i * 37) % 64;
    s.started_ms = cpu_ms();
    s.stage = 1;
    qsort(values, 64, sizeof *values, by_value_slowly); /* ~400 comparisons, 1 ms each */
    s.stage = 2;
    for (;;)
        spins++;
}

BW_TEST(L_03, not_interrupted_in_a_callback_from_libc)
{
    bw_guard_set_callback_limit(40);
    bw_domain *d = bw_rec_domain(&s.rec);
    bw_invoke(d, spin_in_comparator, NULL);
    BW_CHECK_INT_EQ(s.stage, 2);
    bw_error *err = only_timeout(d, 40);
    BW_CHECK_STR_EQ(landed_in(err), "spin_in_comparator");
    BW_CHECK(cpu_ms() - s.started_ms >= 100); /* the sort alone ran longer than the limit */
    bw_rec_clear(&s.rec);
    bw_domain_release(d);
}

/* What the churn holds when it is interrupted (a jump frees nothing: the
 * test does, for the leak checkers). */
static void *volatile held[64]; /* volatile: every store happens, in order */

/* A loop that spends most of its time in malloc and free: interrupted, and
 * only ever in its own code, so the heap is whole afterwards. */
void churn_malloc(void *arg)
{
    (void)arg;
    s.started_ms = cpu_ms();
    s.stage = 1;
    for (unsigned long i = 0;; i++) {
        unsigned j = (unsigned)(i * 7919u) % 64;
        void *old = held[j];
        held[j] = NULL;
        free(old);
        held[j] = malloc(16 + (i % 4096));
        spins++;
    }
}

/* Plain build only: the interruption may land between malloc's return and
 * the store of its result, a block the leak checkers rightly report (and
 * valgrind's malloc is not the program's). */
BW_FAULT_TEST(L_04, malloc_loop_interrupted_in_user_code_heap_intact)
{
    bw_guard_set_callback_limit(100);
    bw_domain *d = bw_rec_domain(&s.rec);
    for (int round = 0; round < 5; round++) {
        bw_invoke(d, churn_malloc, NULL);
        bw_error *err = only_timeout(d, 100);
        BW_CHECK(landed_beside(err, churn_malloc)); /* its loop, or a PLT stub: not libc */
        bw_rec_clear(&s.rec);
        for (int i = 0; i < 64; i++) {
            free(held[i]);
            held[i] = NULL;
        }
    }
    /* The heap still works (an interrupted malloc would have broken it). */
    for (int i = 0; i < 100000; i++) {
        void *p = malloc((size_t)(i % 8192) + 1);
        BW_CHECK(p != NULL);
        memset(p, 0x5a, (size_t)(i % 8192) + 1);
        free(p);
    }
    bw_domain_release(d);
}

/* ---- Off, under the limit, nested, nobody to take it -------------------- */

static void spin_300(void *arg)
{
    (void)arg;
    s.stage = 1;
    spin_for(300);
    s.stage = 2;
}

BW_TEST(L_05, limit_zero_turns_it_off_and_back_on)
{
    bw_guard_set_callback_limit(0);
    BW_CHECK_INT_EQ(bw_guard_callback_limit(), 0);
    bw_domain *d = bw_rec_domain(&s.rec);
    bw_invoke(d, spin_300, NULL);
    BW_CHECK_INT_EQ(s.stage, 2);
    BW_CHECK_INT_EQ(s.rec.calls, 0);
    bw_guard_set_callback_limit(100);
    s.stage = 0;
    bw_invoke(d, spin_300, NULL);
    BW_CHECK_INT_EQ(s.stage, 1);
    only_timeout(d, 100);
    bw_rec_clear(&s.rec);
    bw_domain_release(d);
}

BW_TEST(L_06, callbacks_under_the_limit_are_untouched)
{
    /* Twenty callbacks of 40 ms each: 800 ms in all, each well under 100. */
    bw_guard_set_callback_limit(100);
    bw_domain *d = bw_rec_domain(&s.rec);
    for (int i = 0; i < 20; i++)
        bw_invoke(d, spin_40, NULL);
    BW_CHECK_INT_EQ(s.stage, 20);
    BW_CHECK_INT_EQ(s.rec.calls, 0);
    bw_domain_release(d);
}

static void try_spin(void *arg)
{
    bw_error **caught = arg;
    *caught = bw_try(spin_forever, NULL);
    s.stage = 3; /* the callback goes on after its bw_try caught the timeout */
}

BW_TEST(L_07, a_nested_try_catches_it_and_the_callback_goes_on)
{
    bw_guard_set_callback_limit(100);
    bw_domain *d = bw_rec_domain(&s.rec);
    bw_error *caught = NULL;
    bw_invoke(d, try_spin, &caught);
    BW_CHECK_INT_EQ(s.stage, 3);
    BW_CHECK(caught != NULL);
    BW_CHECK_INT_EQ(bw_error_origin_of(caught), BW_ORIGIN_TIMEOUT);
    BW_CHECK_INT_EQ(s.rec.calls, 0);
    bw_error_release(caught);
    bw_domain_release(d);
}

BW_TEST(L_08, not_interrupted_when_nobody_would_take_the_error)
{
    /* No domain, no uncaught handler: an interruption could only end the
     * process, so the callback runs on (the heartbeat is the last resort). */
    bw_guard_set_callback_limit(50);
    bw_invoke(NULL, spin_300, NULL);
    BW_CHECK_INT_EQ(s.stage, 2);
}

/* ---- A domain error handler that runs too long -------------------------- */

void handler_spins(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)err;
    (void)data;
    s.stage = 5; /* the inner handler got the throw, and now never returns */
    for (;;)
        spins++;
}

static void *throw_inside(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "thrown in the inner domain");
}

static void run_inner(void *arg)
{
    bw_domain_run(arg, throw_inside, NULL);
}

BW_TEST(L_09, a_domain_handler_past_the_limit_is_interrupted_to_the_next_domain_down)
{
    /* A handler is a callback with its own limit; its timeout goes to the
     * next domain down the stack, as a throw from a handler does. */
    bw_guard_set_callback_limit(100);
    bw_domain *outer = bw_rec_domain(&s.rec);
    bw_domain *inner = bw_test_domain();
    BW_CHECK_INT_EQ(bw_domain_on_error(inner, handler_spins, NULL), 0);
    bw_invoke(outer, run_inner, inner);
    BW_CHECK_INT_EQ(s.stage, 5);
    BW_CHECK_STR_EQ(landed_in(only_timeout(outer, 100)), "handler_spins");
    bw_rec_clear(&s.rec);
    bw_domain_release(inner);
    bw_domain_release(outer);
}
