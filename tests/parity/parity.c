/*
 * parity.c: the C twins of the JavaScript scenarios in this directory.
 *
 * `parity NN_name` runs one scenario and prints its outcome lines exactly
 * as NN_name.js prints them under Node 20 (common.js has the format);
 * compare.sh runs both and compares. Scenarios where bulwark deliberately
 * differs pin both outputs in their .js file (the `// node:` and
 * `// bulwark:` lines); docs/DOMAINS.md says why each differs.
 *
 * Each scenario's top level runs under one boundary (bw_invoke), as a
 * Node script runs as one tick; timers run from the loop afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulwark.h"

/* ---- What every scenario prints (common.js) ----------------------------- */

static bw_loop *loop;

static void out(const char *fmt, ...) BW_PRINTF(1, 2);
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Constructors that abort on failure: a scenario has no way to go on. */
static bw_domain *named(const char *name)
{
    bw_domain *d;
    if (bw_domain_new(&d) != 0 || bw_domain_set_name(d, name) != 0)
        abort();
    return d;
}

static bw_emitter *new_emitter(void)
{
    bw_emitter *e;
    if (bw_emitter_new(&e) != 0)
        abort();
    return e;
}

static bw_bound *bound_to(bw_domain *d, bw_bound_fn fn, bw_intercept_fn ifn)
{
    bw_bound *b;
    if ((fn != NULL ? bw_domain_bind(d, fn, NULL, &b) : bw_domain_intercept(d, ifn, NULL, &b)) != 0)
        abort();
    return b;
}

static const char *name_of(const bw_domain *d)
{
    return d != NULL ? bw_domain_name(d) : "none";
}

static const char *active(void)
{
    return name_of(bw_domain_active());
}

static size_t depth(void)
{
    return bw_domain_stack_depth();
}

static const char *thrown_of(const bw_error *err)
{
    switch (bw_error_domain_thrown(err)) {
    case BW_YES:
        return "true";
    case BW_NO:
        return "false";
    default:
        return "unset";
    }
}

/* Node's err.domainEmitter: the member domain that passed the error on, or
 * the emitter it came from (whose data is its name). */
static const char *emitter_of(const bw_error *err)
{
    if (bw_error_domain_member(err) != NULL)
        return name_of(bw_error_domain_member(err));
    if (bw_error_domain_emitter(err) != NULL)
        return bw_emitter_data(bw_error_domain_emitter(err));
    return "none";
}

/* The routing fields of an error, as common.js's fields() prints them. */
static const char *fields(const bw_error *err)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "domain=%s thrown=%s emitter=%s bound=%s",
             name_of(bw_error_domain(err)), thrown_of(err), emitter_of(err),
             bw_error_domain_bound(err) != NULL ? "yes" : "no");
    return buf;
}

static void on_report(bw_domain *d, bw_error *err, void *data)
{
    (void)data;
    out("%s handler: %s; %s; active=%s depth=%zu", name_of(d), bw_error_message(err), fields(err),
        active(), depth());
}

static void report(bw_domain *d)
{
    bw_domain_on_error(d, on_report, NULL);
}

static void *throw_boom(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "boom");
}

static void task_throw_boom(void *arg)
{
    throw_boom(arg);
}

/* From a timer: outer.run(() => inner.run(body)). */
typedef struct nest {
    bw_domain **outer;
    bw_domain **inner;
    void *(*body)(void *arg);
} nest;

static void *run_inner(void *arg)
{
    nest *n = arg;
    return bw_domain_run(*n->inner, n->body, NULL);
}

static void nested_run(bw_timer *t, void *data)
{
    (void)t;
    bw_domain_run(*((nest *)data)->outer, run_inner, data);
}

/* A handler that prints what it got, then throws `data` (a message). */
static void print_then_throw(bw_domain *d, bw_error *err, void *data)
{
    out("%s handler: %s", name_of(d), bw_error_message(err));
    bw_throwf(-EINVAL, "%s", (const char *)data);
}

static void after_timer(uint64_t ms, bw_timer_cb cb, void *data)
{
    bw_timeout(loop, ms, cb, data, NULL);
}

static void print_exit_event(void)
{
    out("exit event");
}

/* ---- The scenarios ------------------------------------------------------- */

static bw_domain *d0, *d1, *d2, *d3, *d4, *d5, *d6;

static void *s01_emit(void *arg)
{
    bw_emitter *e = arg;
    bool handled = bw_emitter_emit_error(e, bw_error_new(-EIO, "boom"));
    out("emit returned %s", handled ? "true" : "false");
    return NULL;
}

static void s01_member_emitter_error(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    report(d1);
    bw_domain_add(d1, bw_domain_member(d2));
    bw_emitter *e = new_emitter();
    bw_emitter_set_data(e, "e");
    bw_domain_add(d2, bw_emitter_member(e));
    d3 = named("d3");
    report(d3);
    bw_domain_run(d3, s01_emit, e);
    out("after");
}

static void s02_fn(void *ctx, void *result)
{
    (void)ctx;
    (void)result;
    out("fn called");
}

static void s02_member_intercept_error(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    report(d1);
    bw_domain_add(d1, bw_domain_member(d2));
    bw_bound *cb = bound_to(d2, NULL, s02_fn);
    bw_error *err = bw_error_new(-EIO, "boom");
    bw_bound_callback(err, NULL, cb);
    bw_error_release(err);
    out("after");
}

static void print_next(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    out("next: active=%s depth=%zu", active(), depth());
}

static void s03_member_sync_throw(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    d3 = named("d3");
    report(d1);
    report(d3);
    bw_domain_add(d1, bw_domain_member(d2));
    static nest n = {&d3, &d2, throw_boom};
    after_timer(1, nested_run, &n);
    after_timer(5, print_next, NULL);
}

static void s04_next(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    out("next timer ran");
}

static void s04_handler_throw_nothing_below(void *arg)
{
    (void)arg;
    d0 = named("d0");
    d1 = named("d1");
    bw_domain_on_error(d1, print_then_throw, "from the handler");
    atexit(print_exit_event);
    static nest n = {&d0, &d1, throw_boom};
    after_timer(1, nested_run, &n);
    after_timer(5, s04_next, NULL);
}

static void *s05_body(void *arg)
{
    bw_domain *d = arg;
    bw_emitter *e = new_emitter();
    out("owner=%s members=%zu", name_of(bw_emitter_domain(e)), bw_domain_member_count(d));
    return NULL;
}

static void s05_implicit_member(void *arg)
{
    (void)arg;
    bw_domain *d = named("d");
    bw_domain_run(d, s05_body, d);
}

static void s06_uncaught(bw_error *err, void *data)
{
    (void)data;
    out("uncaught: %s; active=%s", bw_error_message(err), active());
}

static void s06_uncaught_plain(bw_error *err, void *data)
{
    (void)data;
    out("uncaught: %s", bw_error_message(err));
}

static void s06_callback(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    out("callback: active=%s", active());
    throw_boom(NULL);
}

static void s06_add_timer(void *arg)
{
    (void)arg;
    bw_domain *d = named("d");
    report(d);
    bw_on_uncaught(s06_uncaught, NULL);
    bw_timer *t;
    if (bw_timeout(loop, 1, s06_callback, NULL, &t) != 0)
        abort();
    bw_domain_add(d, bw_timer_member(t));
    bw_timer_release(t); /* the loop keeps it while it is pending */
    out("members=%zu", bw_domain_member_count(d));
}

static void s07_first(bw_timer *t, void *data)
{
    (void)t;
    bw_domain_enter(data);
    out("first: active=%s depth=%zu", active(), depth());
}

static void s07_second(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    out("second: active=%s depth=%zu", active(), depth());
}

static void s07_leaked_enter(void *arg)
{
    (void)arg;
    bw_domain *d = named("d");
    after_timer(1, s07_first, d);
    after_timer(5, s07_second, NULL);
}

static void print_at_exit(void)
{
    out("at exit: active=%s depth=%zu", active(), depth());
}

/* Node's top level is a tick of its own; here code outside any guard enters
 * the domain, then the throw happens under the boundary it calls. */
static void s08_top_level_stack_cleared(void *arg)
{
    (void)arg;
    bw_domain *d = named("d");
    report(d);
    atexit(print_at_exit);
    bw_domain_enter(d);
    bw_invoke(NULL, task_throw_boom, NULL);
}

static void *s09_fn(void *ctx, void *arg)
{
    (void)ctx;
    out("fn called with %s", arg != NULL ? (const char *)arg : "nothing");
    return NULL;
}

static void s09_bind_error_argument(void *arg)
{
    (void)arg;
    bw_domain *d = named("d");
    report(d);
    bw_bound *w = bound_to(d, s09_fn, NULL);
    bw_error *err = bw_error_new(-EIO, "boom");
    bw_bound_callback(err, NULL, w);
    bw_error_release(err);
    out("after");
}

static void s10_run_b(void *arg)
{
    bw_domain_run(arg, throw_boom, NULL);
}

static void s10_try_restores_stack(void *arg)
{
    (void)arg;
    bw_domain *a = named("a");
    bw_domain *b = named("b");
    bw_domain_enter(a);
    bw_error *err = bw_try(s10_run_b, b);
    if (err != NULL)
        out("caught %s", bw_error_message(err));
    bw_error_release(err);
    out("after: active=%s depth=%zu", active(), depth());
    bw_domain_exit(a);
}

static void s11_first(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    bw_domain_run(d2, throw_boom, NULL);
}

static void s11_member_throw_alone(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    report(d1);
    bw_domain_add(d1, bw_domain_member(d2));
    bw_on_uncaught(s06_uncaught, NULL);
    after_timer(1, s11_first, NULL);
}

static void s12_nested_handler_throw(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    report(d2);
    bw_domain_on_error(d1, print_then_throw, "from d1 handler");
    static nest n = {&d2, &d1, throw_boom};
    after_timer(1, nested_run, &n);
}

static void on_report_stack(bw_domain *d, bw_error *err, void *data)
{
    (void)err;
    (void)data;
    out("%s handler: active=%s depth=%zu", name_of(d), active(), depth());
}

/* domains[0].run(() => domains[1].run(... emit an error ...)) */
typedef struct emit_in {
    bw_domain **domains;
    size_t n;
} emit_in;

static void *s13_emit_in(void *arg)
{
    emit_in *c = arg;
    if (c->n > 1) {
        emit_in rest = {c->domains + 1, c->n - 1};
        return bw_domain_run(rest.domains[0], s13_emit_in, &rest);
    }
    bw_emitter *e = new_emitter();
    bw_emitter_emit_error(e, bw_error_new(-EIO, "boom"));
    out("after emit: active=%s depth=%zu", active(), depth());
    bw_emitter_free(e);
    return NULL;
}

static void s13_emit_handler_stack(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    d3 = named("d3");
    bw_domain *all[3] = {d1, d2, d3};
    for (int i = 0; i < 3; i++)
        bw_domain_on_error(all[i], on_report_stack, NULL);
    bw_domain *rows[5][4] = {{d1}, {d1, d1}, {d1, d2}, {d1, d2, d2}, {d3, d1, d3, d3}};
    size_t lens[5] = {1, 2, 2, 3, 4};
    for (int i = 0; i < 5; i++) {
        emit_in c = {rows[i], lens[i]};
        bw_domain_run(rows[i][0], s13_emit_in, &c);
    }
}

static void *s14_throw_sync(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "sync");
}

static void s14_throw_async(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    bw_throwf(-EINVAL, "async");
}

static void *s14_schedule(void *arg)
{
    (void)arg;
    bw_timeout(loop, 1, s14_throw_async, NULL, NULL);
    return NULL;
}

static void s14_outer_catches_only_on_the_stack(void *arg)
{
    (void)arg;
    d3 = named("d3");
    d4 = named("d4");
    d5 = named("d5");
    d6 = named("d6");
    report(d3);
    report(d5);
    bw_on_uncaught(s06_uncaught_plain, NULL);
    static nest sync = {&d3, &d4, s14_throw_sync};
    static nest async = {&d5, &d6, s14_schedule};
    after_timer(1, nested_run, &sync);
    after_timer(5, nested_run, &async);
}

static void s15_d2_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)data;
    out("d2 handler: %s; %s", bw_error_message(err), fields(err));
    bw_throwf(-EINVAL, "from d2 handler");
}

static void *s15_emit(void *arg)
{
    (void)arg;
    bw_emitter *e = new_emitter();
    bw_emitter_set_data(e, "e");
    bw_emitter_emit_error(e, bw_error_new(-EIO, "boom"));
    out("not reached");
    return NULL;
}

static void s15_emit_handler_throws(void *arg)
{
    (void)arg;
    d1 = named("d1");
    d2 = named("d2");
    report(d1);
    bw_domain_on_error(d2, s15_d2_handler, NULL);
    static nest n = {&d1, &d2, s15_emit};
    after_timer(1, nested_run, &n);
}

static void s16_fn(void *ctx, void *result)
{
    (void)ctx;
    out("fn: %s; active=%s", (const char *)result, active());
}

static void *s16_body(void *arg)
{
    bw_bound *w = arg;
    bw_bound_callback(NULL, "data", w);
    out("after: active=%s", active());
    bw_error *err = bw_error_new(-EIO, "boom");
    bw_bound_callback(err, NULL, w);
    bw_error_release(err);
    out("after error: active=%s", active());
    return NULL;
}

static void s16_intercept(void *arg)
{
    (void)arg;
    bw_domain *a = named("a");
    bw_domain *d = named("d");
    report(d);
    bw_bound *w = bound_to(d, NULL, s16_fn);
    bw_domain_run(a, s16_body, w);
}

static void *s17_body(void *arg)
{
    bw_domain *d = arg;
    bw_timer *t;
    if (bw_timeout(loop, 1, s06_callback, NULL, &t) != 0)
        abort();
    bw_domain_remove(d, bw_timer_member(t));
    bw_timer_release(t);
    return NULL;
}

static void s17_remove_timer(void *arg)
{
    (void)arg;
    bw_domain *d = named("d");
    report(d);
    bw_on_uncaught(s06_uncaught, NULL);
    bw_domain_run(d, s17_body, d);
    out("members=%zu", bw_domain_member_count(d));
}

/* ---- main ---------------------------------------------------------------- */

typedef struct scenario {
    const char *name;
    bw_task_fn fn;
    bool top_level_unguarded; /* the scenario makes its own boundary */
} scenario;

static const scenario scenarios[] = {
    {"01_member_emitter_error", s01_member_emitter_error, false},
    {"02_member_intercept_error", s02_member_intercept_error, false},
    {"03_member_sync_throw", s03_member_sync_throw, false},
    {"04_handler_throw_nothing_below", s04_handler_throw_nothing_below, false},
    {"05_implicit_member", s05_implicit_member, false},
    {"06_add_timer", s06_add_timer, false},
    {"07_leaked_enter", s07_leaked_enter, false},
    {"08_top_level_stack_cleared", s08_top_level_stack_cleared, true},
    {"09_bind_error_argument", s09_bind_error_argument, false},
    {"10_try_restores_stack", s10_try_restores_stack, false},
    {"11_member_throw_alone", s11_member_throw_alone, false},
    {"12_nested_handler_throw", s12_nested_handler_throw, false},
    {"13_emit_handler_stack", s13_emit_handler_stack, false},
    {"14_outer_catches_only_on_the_stack", s14_outer_catches_only_on_the_stack, false},
    {"15_emit_handler_throws", s15_emit_handler_throws, false},
    {"16_intercept", s16_intercept, false},
    {"17_remove_timer", s17_remove_timer, false},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s NN_name\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const scenario *s = &scenarios[i];
        if (strcmp(s->name, argv[1]) != 0)
            continue;
        if (bw_loop_new(&loop) != 0)
            return 2;
        if (s->top_level_unguarded)
            s->fn(NULL);
        else
            bw_invoke(NULL, s->fn, NULL);
        bw_loop_run(loop, UV_RUN_DEFAULT);
        return 0;
    }
    fprintf(stderr, "no such scenario: %s\n", argv[1]);
    return 2;
}
