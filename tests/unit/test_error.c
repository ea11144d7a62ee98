/*
 * test_error.c: the error value: the readable report, status names and
 * messages, the routing fields' three states, reference counting, and the
 * out-of-memory error.
 */
#include "bw_rec.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

/* Non-static, so that -rdynamic gives them names in backtraces; never
 * inlined, and with work after the call so that it is not a tail call (the
 * site must have a frame of its own). */
static volatile int site_calls;

__attribute__((noinline)) bw_error *report_site_new(void)
{
    bw_error *err = bw_error_new(-EINVAL, "the message %d", 42);
    site_calls++;
    return err;
}

__attribute__((noinline, format(printf, 1, 2))) bw_error *report_site_newv(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bw_error *err = bw_error_newv(-EIO, fmt, ap);
    va_end(ap);
    site_calls++;
    return err;
}

__attribute__((noinline)) void report_site_throwf(void *arg)
{
    (void)arg;
    site_calls++;
    bw_throwf(-EPERM, "thrown here");
}

/* The report's line for backtrace frame #0. */
static void first_frame(const char *text, char *line, size_t size)
{
    const char *p = strstr(text, "#0 ");
    BW_CHECK(p != NULL);
    size_t n = strcspn(p, "\n");
    snprintf(line, size, "%.*s", (int)n, p);
}

static char *format(const bw_error *err)
{
    size_t n = bw_error_format(err, NULL, 0);
    char *buf = malloc(n + 1);
    BW_CHECK(buf != NULL);
    BW_CHECK_INT_EQ(bw_error_format(err, buf, n + 1), n);
    BW_CHECK_INT_EQ(strlen(buf), n);
    return buf;
}

BW_TEST(X_10, format_names_message_origin_and_backtrace_symbols)
{
    bw_error *err = report_site_new();
    char *text = format(err);
    BW_CHECK_CONTAINS(text, "EINVAL: the message 42");
    BW_CHECK_CONTAINS(text, "origin: thrown");
    BW_CHECK_CONTAINS(text, "backtrace:");
    BW_CHECK_CONTAINS(text, "report_site_new");
    BW_CHECK_NOT_CONTAINS(text, "signal:"); /* not a fault */
    BW_CHECK(text[strlen(text) - 1] != '\n');
    /* The first frame is where the error was made, through either entry. */
    char first[512];
    first_frame(text, first, sizeof first);
    BW_CHECK_CONTAINS(first, "report_site_new");
    free(text);
    bw_error_release(err);
    err = report_site_newv("from %s", "newv");
    BW_CHECK(bw_error_backtrace(err, NULL) > 0);
    text = format(err);
    BW_CHECK_CONTAINS(text, "EIO: from newv");
    first_frame(text, first, sizeof first);
    BW_CHECK_CONTAINS(first, "report_site_newv");
    free(text);
    bw_error_release(err);
    /* bw_throwf: the thrower, not the library. (gcc moves a call to a
     * noreturn function into a ".cold" part that dladdr cannot name, so the
     * check is that no bulwark frame comes first.) */
    err = bw_try(report_site_throwf, NULL);
    BW_CHECK(err != NULL);
    text = format(err);
    first_frame(text, first, sizeof first);
    BW_CHECK_NOT_CONTAINS(first, " in bw_");
    free(text);
    bw_error_release(err);
}

BW_TEST(X_11, format_behaves_like_snprintf)
{
    bw_error *err = bw_error_from_status(-ENOENT, "open", "/nowhere");
    size_t n = bw_error_format(err, NULL, 0);
    BW_CHECK(n > 20);
    char *full = malloc(n + 1);
    /* Exactly enough room: the whole report, not reported as truncated. */
    BW_CHECK_INT_EQ(bw_error_format(err, full, n + 1), n);
    BW_CHECK_INT_EQ(strlen(full), n);
    BW_CHECK_CONTAINS(full, "syscall: open, path: /nowhere");
    /* Every smaller size: truncated, NUL-terminated, same required length. */
    for (size_t size = 1; size <= n; size++) {
        char *buf = malloc(size);
        BW_CHECK_INT_EQ(bw_error_format(err, buf, size), n);
        BW_CHECK_INT_EQ(strlen(buf), size - 1);
        BW_CHECK(strncmp(buf, full, size - 1) == 0);
        free(buf);
    }
    /* A larger buffer changes nothing. */
    char *big = malloc(n + 100);
    BW_CHECK_INT_EQ(bw_error_format(err, big, n + 100), n);
    BW_CHECK_STR_EQ(big, full);
    free(big);
    free(full);
    bw_error_release(err);
}

/* A fault's report: signal name, si_code, address, and the faulting
 * function by name. */
static char *ro_page;

__attribute__((noinline)) void report_fault_site(void)
{
    volatile char *volatile p = ro_page + 24;
    *p = 1;
    site_calls++;
}

static void fault_task(void *arg)
{
    (void)arg;
    report_fault_site();
    site_calls++;
}

BW_FAULT_TEST(X_12, format_of_a_fault_names_signal_address_and_function)
{
    ro_page =
        mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    BW_CHECK(ro_page != MAP_FAILED);
    bw_loop *loop = bw_test_loop(); /* installs the fault handlers */
    bw_error *err = bw_try(fault_task, NULL);
    BW_CHECK(err != NULL);
    char *text = format(err);
    char addr[64];
    snprintf(addr, sizeof addr, "address %p", (void *)(ro_page + 24));
    BW_CHECK_CONTAINS(text, "BW_EFAULTSIG: SIGSEGV");
    BW_CHECK_CONTAINS(text, "origin: fault");
    BW_CHECK_CONTAINS(text, "signal: SIGSEGV (11), code SEGV_ACCERR");
    BW_CHECK_CONTAINS(text, addr);
    BW_CHECK_CONTAINS(text, "report_fault_site");
    /* The backtrace starts at the faulting instruction. */
    BW_CHECK(bw_error_backtrace(err, NULL) > 1);
    char first[512];
    first_frame(text, first, sizeof first);
    BW_CHECK_CONTAINS(first, "report_fault_site");
    free(text);
    bw_error_release(err);
    bw_test_loop_finish(loop);
}

/* ---- Status codes -------------------------------------------------------- */

BW_TEST(X_13, strerror_and_err_name)
{
#define CHECK_CODE(name, value, msg)                                                               \
    BW_CHECK_STR_EQ(bw_err_name(value), #name);                                                    \
    BW_CHECK_STR_EQ(bw_strerror(value), msg);                                                      \
    BW_CHECK(value <= -30000 && value >= -30999);
    BW_STATUS_MAP(CHECK_CODE)
#undef CHECK_CODE
    BW_CHECK_STR_EQ(bw_err_name(0), "OK");
    BW_CHECK_STR_EQ(bw_strerror(0), "success");
    BW_CHECK_STR_EQ(bw_err_name(-ENOENT), "ENOENT");
    BW_CHECK_STR_EQ(bw_strerror(-ENOENT), "no such file or directory");
    BW_CHECK_STR_EQ(bw_err_name(UV_EOF), "EOF");
    BW_CHECK_STR_EQ(bw_err_name(UV_ECONNRESET), "ECONNRESET");
    BW_CHECK(bw_err_name(-EPIPE) == bw_err_name(UV_EPIPE));
    /* -errno codes libuv has no name for still get theirs. */
    BW_CHECK_STR_EQ(bw_err_name(-ECHILD), "ECHILD");
    BW_CHECK(strcmp(bw_strerror(-ECHILD), "unknown error") != 0);
    /* Unknown codes: the documented static strings (nothing allocated). */
    BW_CHECK_STR_EQ(bw_strerror(12345), "unknown error");
    BW_CHECK_STR_EQ(bw_err_name(12345), "UNKNOWN");
    BW_CHECK_STR_EQ(bw_strerror(-99999), "unknown error");
    BW_CHECK_STR_EQ(bw_err_name(-99999), "UNKNOWN");
    BW_CHECK_STR_EQ(bw_strerror(-30500), "unknown error");
    BW_CHECK(bw_strerror(-99999) == bw_strerror(-99998)); /* static */
}

/* ---- Fields and the routing fields' three states ------------------------- */

BW_TEST(X_14, error_fields_and_from_status)
{
    bw_error *err = bw_error_from_status(-ENOENT, "open", "x");
    BW_CHECK_STR_EQ(bw_error_message(err), "ENOENT: no such file or directory, open 'x'");
    BW_CHECK_INT_EQ(bw_error_code(err), -ENOENT);
    BW_CHECK_INT_EQ(bw_error_origin_of(err), BW_ORIGIN_CALLBACK);
    BW_CHECK_STR_EQ(bw_error_syscall(err), "open");
    BW_CHECK_STR_EQ(bw_error_path(err), "x");
    BW_CHECK_INT_EQ(bw_error_signal(err), 0);
    BW_CHECK(bw_error_fault_address(err) == NULL);
    BW_CHECK(!bw_error_is_value(err));
    bw_error_release(err);

    err = bw_error_from_status(-EPIPE, "write", NULL);
    BW_CHECK_STR_EQ(bw_error_message(err), "EPIPE: broken pipe, write");
    BW_CHECK(bw_error_path(err) == NULL);
    bw_error_release(err);
    err = bw_error_from_status(-EPIPE, NULL, NULL);
    BW_CHECK_STR_EQ(bw_error_message(err), "EPIPE: broken pipe");
    BW_CHECK(bw_error_syscall(err) == NULL);
    bw_error_set_origin(err, BW_ORIGIN_TIMEOUT);
    BW_CHECK_INT_EQ(bw_error_origin_of(err), BW_ORIGIN_TIMEOUT);
    bw_error_release(err);

    BW_CHECK_STR_EQ(bw_error_origin_name(BW_ORIGIN_THROWN), "thrown");
    BW_CHECK_STR_EQ(bw_error_origin_name(BW_ORIGIN_FAULT), "fault");
    BW_CHECK_STR_EQ(bw_error_origin_name(BW_ORIGIN_EMITTER), "emitter");
    BW_CHECK_STR_EQ(bw_error_origin_name(BW_ORIGIN_CALLBACK), "callback");
    BW_CHECK_STR_EQ(bw_error_origin_name(BW_ORIGIN_TIMEOUT), "timeout");
}

typedef struct routed {
    bw_domain *d;
    bw_error *err;
    bw_emitter *e;
} routed;

static void *throw_it(void *arg)
{
    routed *s = arg;
    bw_throw(bw_error_hold(s->err));
}

static void throw_main(void *arg)
{
    routed *s = arg;
    bw_domain_run(s->d, throw_it, s);
}

static void emit_main(void *arg)
{
    routed *s = arg;
    bw_emitter_emit_error(s->e, bw_error_hold(s->err));
}

BW_TEST(X_15, routing_fields_are_tristate)
{
    bw_rec r = {0};
    routed s = {bw_rec_domain(&r), bw_error_new(-EINVAL, "thrown"), bw_test_emitter()};
    BW_CHECK_ROUTING(s.err, NULL, BW_UNSET, NULL, NULL); /* unset */
    bw_test_main(throw_main, &s);
    BW_CHECK_ROUTING(s.err, s.d, BW_YES, NULL, NULL); /* true */
    bw_error_release(s.err);

    s.err = bw_error_new(-EINVAL, "emitted");
    BW_CHECK_INT_EQ(bw_error_domain_thrown(s.err), BW_UNSET);
    bw_domain_add(s.d, bw_emitter_member(s.e));
    bw_test_main(emit_main, &s);
    BW_CHECK_ROUTING(s.err, s.d, BW_NO, s.e, NULL); /* false */
    BW_CHECK_INT_EQ(r.calls, 2);
    /* The three states are distinct values. */
    BW_CHECK(BW_UNSET != BW_NO && BW_NO != BW_YES && BW_UNSET != BW_YES);
    bw_rec_clear(&r);
    bw_error_release(s.err);
    bw_emitter_free(s.e);
    bw_domain_release(s.d);
}

/* An error that names a domain holds it: the domain outlives the user's
 * reference until the error goes, then everything is given back. */
BW_TEST(X_16, error_holds_the_domain_it_names)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop();
    long base = bw_count_live;
    bw_rec r = {0};
    routed s = {bw_rec_domain(&r), bw_error_new(-EINVAL, "kept"), NULL};
    bw_domain_set_name(s.d, "request 7");
    bw_test_main(throw_main, &s);
    bw_domain_release(s.d); /* the user's reference */
    BW_CHECK_STR_EQ(bw_domain_name(bw_error_domain(s.err)), "request 7");
    char text[4096];
    bw_error_format(s.err, text, sizeof text);
    BW_CHECK_CONTAINS(text, "(request 7), thrown: yes");
    bw_rec_clear(&r);
    BW_CHECK(bw_count_live > base);
    bw_error_release(s.err); /* the last hold on the domain */
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(loop);
}

/* ---- Out of memory -------------------------------------------------------- */

static bool fail_allocations;

static void *failing_malloc(size_t size, void *ctx)
{
    return fail_allocations ? NULL : bw_count_malloc(size, ctx);
}

static void *failing_realloc(void *ptr, size_t size, void *ctx)
{
    return fail_allocations ? NULL : bw_count_realloc(ptr, size, ctx);
}

static void timer_noop(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
}

static void throw_null(void *arg)
{
    (void)arg;
    bw_throw(NULL);
}

BW_TEST(X_17, out_of_memory_gives_the_pinned_enomem_error)
{
    bw_allocator a = {failing_malloc, failing_realloc, bw_count_free, NULL};
    bw_set_allocator(&a);
    bw_loop *loop = bw_test_loop(); /* the thread's pinned errors are made here */
    bw_rec u = {0};
    bw_on_uncaught(bw_rec_uncaught, &u);
    long base = bw_count_live;
    fail_allocations = true;
    bw_error *e1 = bw_error_new(-EINVAL, "%s", "no room for this");
    bw_error *e2 = bw_error_from_status(-EIO, "read", "/x");
    BW_CHECK_PTR_EQ(e1, e2); /* the same pinned error */
    BW_CHECK_INT_EQ(bw_error_code(e1), -ENOMEM);
    BW_CHECK_STR_EQ(bw_err_name(bw_error_code(e1)), "ENOMEM");
    bw_domain *d = (bw_domain *)&d;
    BW_CHECK_INT_EQ(bw_domain_new(&d), -ENOMEM);
    BW_CHECK(d == NULL);
    bw_emitter *e = (bw_emitter *)&e;
    BW_CHECK_INT_EQ(bw_emitter_new(&e), -ENOMEM);
    BW_CHECK(e == NULL);
    bw_timer *t = (bw_timer *)&t;
    BW_CHECK_INT_EQ(bw_timeout(loop, 1, timer_noop, NULL, &t), -ENOMEM);
    BW_CHECK(t == NULL);
    bw_error_release(e1);
    bw_error_release(e2);
    /* bw_throw(NULL) throws it too; routing it allocates nothing. */
    bw_test_main(throw_null, NULL);
    fail_allocations = false;
    BW_CHECK_INT_EQ(u.calls, 1);
    BW_CHECK_INT_EQ(bw_error_code(u.err[0]), -ENOMEM);
    bw_off_uncaught(bw_rec_uncaught, &u);
    bw_rec_clear(&u);
    BW_CHECK_INT_EQ(bw_count_live, base);
    bw_test_loop_finish(loop);
}

/* The pinned out-of-memory error is shared by every caller that could not
 * get an error of its own: the origin one of them sets must not reach the
 * next (issue 12, item 9). */
BW_TEST(X_35, origin_set_on_the_shared_oom_error_stays_with_no_one)
{
    bw_allocator a = {failing_malloc, failing_realloc, bw_count_free, NULL};
    bw_set_allocator(&a);
    bw_loop *loop = bw_test_loop();
    fail_allocations = true;
    bw_error *e1 = bw_error_new(-EINVAL, "%s", "no room");
    bw_error_origin before = bw_error_origin_of(e1);
    bw_error_set_origin(e1, BW_ORIGIN_TIMEOUT);
    bw_error_release(e1);
    bw_error *e2 = bw_error_new(-EIO, "%s", "no room either");
    fail_allocations = false;
    BW_CHECK_PTR_EQ(e1, e2);
    BW_CHECK_INT_EQ(bw_error_origin_of(e2), before);
    BW_CHECK(bw_error_origin_of(e2) != BW_ORIGIN_TIMEOUT);
    bw_error_release(e2);
    bw_test_loop_finish(loop);
}
