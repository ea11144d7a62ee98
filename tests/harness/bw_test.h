/*
 * bw_test.h: the unit-test harness.
 *
 * A test file declares cases with BW_TEST(ID, name) (or BW_FAULT_TEST for a
 * case that deliberately raises a fault signal). CMake reads those lines and
 * registers one CTest test per case, so a case is written once and run in
 * its own process with a timeout: `test_x ID_name` runs one case,
 * `test_x --list` lists them.
 *
 * IDs carry the behaviour of docs/BEHAVIOURS.md they cover
 * (D_06 is D-06); cases beyond that list use F_ (faults), X_ (other).
 *
 * Checks print where they failed and end the process with status 1 at
 * once: they never return into code that might be in a bad state, and they
 * do not raise SIGABRT (which bulwark would catch as a fault).
 */
#ifndef BW_TEST_H
#define BW_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bulwark.h"

typedef struct bw_test_case {
    const char *id;
    const char *name;
    void (*fn)(void);
} bw_test_case;

#define BW__TEST_DEFINE(id, name)                                                                  \
    static void id##_##name(void);                                                                 \
    static const bw_test_case bw__tc_##id##_##name                                                 \
        __attribute__((used, section("bw_tests"), aligned(sizeof(void *)))) = {#id, #name,       \
                                                                                id##_##name};      \
    static void id##_##name(void)

#define BW_TEST(id, name) BW__TEST_DEFINE(id, name)
#define BW_FAULT_TEST(id, name) BW__TEST_DEFINE(id, name)

void bw_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define BW_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            bw_test_fail(__FILE__, __LINE__, "check failed: %s", #cond);                           \
    } while (0)

#define BW_CHECK_INT_EQ(a, b)                                                                      \
    do {                                                                                           \
        long long bw__a = (long long)(a), bw__b = (long long)(b);                                  \
        if (bw__a != bw__b)                                                                        \
            bw_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, bw__a, bw__b);      \
    } while (0)

#define BW_CHECK_PTR_EQ(a, b)                                                                      \
    do {                                                                                           \
        const void *bw__a = (const void *)(a), *bw__b = (const void *)(b);                         \
        if (bw__a != bw__b)                                                                        \
            bw_test_fail(__FILE__, __LINE__, "%s == %s: %p != %p", #a, #b, bw__a, bw__b);          \
    } while (0)

#define BW_CHECK_STR_EQ(a, b)                                                                      \
    do {                                                                                           \
        const char *bw__a = (a), *bw__b = (b);                                                     \
        if (bw__a == NULL || bw__b == NULL || strcmp(bw__a, bw__b) != 0)                           \
            bw_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                 \
                         bw__a ? bw__a : "(null)", bw__b ? bw__b : "(null)");                      \
    } while (0)

#define BW_CHECK_CONTAINS(haystack, needle)                                                        \
    do {                                                                                           \
        const char *bw__h = (haystack), *bw__n = (needle);                                         \
        if (bw__h == NULL || strstr(bw__h, bw__n) == NULL)                                         \
            bw_test_fail(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #haystack,      \
                         bw__n, bw__h ? bw__h : "(null)");                                         \
    } while (0)

#define BW_CHECK_NOT_CONTAINS(haystack, needle)                                                    \
    do {                                                                                           \
        const char *bw__h = (haystack), *bw__n = (needle);                                         \
        if (bw__h != NULL && strstr(bw__h, bw__n) != NULL)                                         \
            bw_test_fail(__FILE__, __LINE__, "%s contains \"%s\": \"%s\"", #haystack, bw__n,       \
                         bw__h);                                                                   \
    } while (0)

/* A fresh loop for a test; fails the test if it cannot be made. */
bw_loop *bw_test_loop(void);

/* Run the loop until it has nothing left, then check that it closes cleanly
 * (no handle left open). */
void bw_test_loop_finish(bw_loop *loop);

/*
 * Constructors for fixtures: each makes the object with its bulwark
 * constructor and fails the test (at the caller's line) if that returns a
 * status. Tests of the constructors' own failures call them directly.
 */
bw_domain *bw_test__domain(const char *file, int line);
bw_emitter *bw_test__emitter(const char *file, int line);
bw_bound *bw_test__bind(const char *file, int line, bw_domain *d, bw_bound_fn fn, void *ctx);
bw_bound *bw_test__intercept(const char *file, int line, bw_domain *d, bw_intercept_fn fn,
                             void *ctx);
bw_resource *bw_test__resource(const char *file, int line, void *ptr, bw_resource_close_fn close);
#define bw_test_domain() bw_test__domain(__FILE__, __LINE__)
#define bw_test_emitter() bw_test__emitter(__FILE__, __LINE__)
#define bw_test_bind(d, fn, ctx) bw_test__bind(__FILE__, __LINE__, (d), (fn), (ctx))
#define bw_test_intercept(d, fn, ctx) bw_test__intercept(__FILE__, __LINE__, (d), (fn), (ctx))
#define bw_test_resource(ptr, close) bw_test__resource(__FILE__, __LINE__, (ptr), (close))

/* The outcome of a child process. */
typedef struct bw_test_child {
    bool exited;   /* exited normally: `code` is valid */
    int code;
    bool signaled; /* killed by a signal: `sig` is valid */
    int sig;
    char *out;     /* everything the child wrote to stdout and stderr */
} bw_test_child;

/*
 * Fork, run fn(arg) in the child with core dumps off and stdout/stderr
 * captured, and exit 0 if fn returns. Waits at most `timeout_s` seconds
 * (then kills the child with SIGKILL and fails the test).
 */
bw_test_child bw_test_fork(void (*fn)(void *), void *arg, int timeout_s);
void bw_test_child_free(bw_test_child *c);

/* Expectations on a child's outcome. */
#define BW_CHECK_EXIT(c, status)                                                                   \
    do {                                                                                           \
        if (!(c).exited || (c).code != (status))                                                   \
            bw_test_fail(__FILE__, __LINE__,                                                       \
                         "child: expected exit %d, got %s %d; output:\n%s", (status),              \
                         (c).exited ? "exit" : "signal", (c).exited ? (c).code : (c).sig,          \
                         (c).out);                                                                 \
    } while (0)

#define BW_CHECK_SIGNALED(c, signo)                                                                \
    do {                                                                                           \
        if (!(c).signaled || (c).sig != (signo))                                                   \
            bw_test_fail(__FILE__, __LINE__,                                                       \
                         "child: expected signal %d, got %s %d; output:\n%s", (signo),             \
                         (c).exited ? "exit" : "signal", (c).exited ? (c).code : (c).sig,          \
                         (c).out);                                                                 \
    } while (0)

/* Run fn(arg) inside bw_invoke with no domain: the test's own "main script"
 * boundary, so a throw in it is routed like one from a callback. */
void bw_test_main(bw_task_fn fn, void *arg);

#endif /* BW_TEST_H */
