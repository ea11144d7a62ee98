/*
 * test_decoration.c: the routing fields an error gets (domain-behaviors.md
 * section 11, D-68..D-73): err.domain, domain_thrown (unset / no / yes),
 * domain_emitter and domain_bound.
 */
#include "bw_rec.h"

#include <fcntl.h>

typedef struct scene {
    bw_loop *loop;
    bw_domain *d;
    bw_rec rec;
    bw_error *sent; /* the very error thrown or emitted */
} scene;

static void throw_sent(void *arg)
{
    scene *s = arg;
    bw_throw(bw_error_hold(s->sent));
}

static void throw_sent_timer(bw_timer *t, void *data)
{
    (void)t;
    throw_sent(data);
}

static void *bound_throw(void *ctx, void *arg)
{
    (void)arg;
    throw_sent(ctx);
    return NULL;
}

static void call_bound_timer(bw_timer *t, void *data)
{
    (void)t;
    bw_bound_call(data, NULL);
}

static void *schedule_thrown(void *arg)
{
    scene *s = arg;
    bw_timeout(s->loop, 1, throw_sent_timer, s, NULL);
    bw_next_tick(s->loop, throw_sent, s);
    return NULL;
}

BW_TEST(D_68, thrown_error_decoration)
{
    scene s = {bw_test_loop(), NULL, {0}, NULL};
    s.d = bw_rec_domain(&s.rec);
    s.sent = bw_error_new(-EINVAL, "thrown");
    /* Fresh: every routing field unset. */
    BW_CHECK_ROUTING(s.sent, NULL, BW_UNSET, NULL, NULL);
    bw_domain_run(s.d, schedule_thrown, &s);
    /* A bound function, called from a timer outside any domain. */
    bw_bound *w = bw_test_bind(s.d, bound_throw, &s);
    bw_timeout(s.loop, 2, call_bound_timer, w, NULL);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.rec.calls, 3);
    for (int i = 0; i < 3; i++) {
        BW_CHECK_PTR_EQ(s.rec.err[i], s.sent);
        BW_CHECK_ROUTING(s.rec.err[i], s.d, BW_YES, NULL, NULL);
        BW_CHECK_INT_EQ(bw_error_origin_of(s.rec.err[i]), BW_ORIGIN_THROWN);
    }
    bw_rec_clear(&s.rec);
    bw_error_release(s.sent);
    bw_bound_release(w);
    bw_domain_release(s.d);
}

static void emit_sent(void *arg)
{
    bw_emitter **e = arg;
    scene *s = bw_emitter_data(*e);
    bw_emitter_emit_error(*e, bw_error_hold(s->sent));
}

BW_TEST(D_69, emitted_error_decoration)
{
    scene s = {NULL, NULL, {0}, NULL};
    s.d = bw_rec_domain(&s.rec);
    s.sent = bw_error_new(-EIO, "emitted");
    bw_emitter *e = bw_test_emitter();
    bw_emitter_set_data(e, &s);
    bw_domain_add(s.d, bw_emitter_member(e));
    bw_test_main(emit_sent, &e);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    BW_CHECK_PTR_EQ(s.rec.err[0], s.sent);
    BW_CHECK_ROUTING(s.sent, s.d, BW_NO, e, NULL);
    BW_CHECK_INT_EQ(bw_error_origin_of(s.sent), BW_ORIGIN_EMITTER);
    bw_rec_clear(&s.rec);
    bw_error_release(s.sent);
    bw_emitter_free(e);
    bw_domain_release(s.d);
}

static void intercepted_fn(void *ctx, void *result)
{
    (void)ctx;
    (void)result;
    BW_CHECK(!"an intercepted error must not call fn");
}

static void deliver_sent(void *arg)
{
    scene *s = arg;
    bw_bound *w = bw_test_intercept(s->d, intercepted_fn, NULL);
    bw_bound_callback(s->sent, NULL, w);
    bw_bound_release(w);
}

BW_TEST(D_70, intercepted_error_decoration)
{
    scene s = {NULL, NULL, {0}, NULL};
    s.d = bw_rec_domain(&s.rec);
    s.sent = bw_error_new(-EIO, "intercepted");
    bw_test_main(deliver_sent, &s);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    BW_CHECK_PTR_EQ(s.rec.err[0], s.sent);
    BW_CHECK_ROUTING(s.sent, s.d, BW_NO, NULL, intercepted_fn);
    bw_rec_clear(&s.rec);
    bw_error_release(s.sent);
    bw_domain_release(s.d);
}

/* D-71: only errors are decorated. In C a non-error value travels in a
 * carrier (bw_throw_value); the carrier's routing fields stay unset and the
 * value, here a bare int code, comes back unchanged. */
static void *throw_int_code(void *arg)
{
    (void)arg;
    bw_throw_value((void *)(intptr_t)-ENOENT);
}

static void throw_value_main(void *arg)
{
    bw_domain_run(arg, throw_int_code, NULL);
}

BW_TEST(D_71, only_error_objects_are_decorated)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    bw_test_main(throw_value_main, d);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK(bw_error_is_value(r.err[0]));
    BW_CHECK_INT_EQ((intptr_t)bw_error_value(r.err[0]), -ENOENT);
    BW_CHECK_PTR_EQ(r.domain[0], d); /* it did reach d's handler */
    BW_CHECK_ROUTING(r.err[0], NULL, BW_UNSET, NULL, NULL);
    bw_rec_clear(&r);
    bw_domain_release(d);
}

/* D-72: decoration adds fields and nothing else: same pointer, same message,
 * code, path and syscall. Through a throw (fs error thrown from the
 * callback), an emitter listener, and a domain-routed emit. */
typedef struct d72 {
    bw_loop *loop;
    bw_domain *d;
    bw_rec rec;
    bw_error *fs_err;
    int listened;
    char message[128];
} d72;

static void d72_open_done(bw_error *err, void *result, void *data)
{
    (void)result;
    d72 *s = data;
    BW_CHECK(err != NULL);
    s->fs_err = err;
    snprintf(s->message, sizeof s->message, "%s", bw_error_message(err));
    bw_throw(bw_error_hold(err));
}

static void *d72_open(void *arg)
{
    d72 *s = arg;
    bw_fs_open(s->loop, "no such file here", O_RDONLY, 0, d72_open_done, s);
    return NULL;
}

static void check_fields(const bw_error *err, int code, const char *path, const char *syscall)
{
    BW_CHECK_INT_EQ(bw_error_code(err), code);
    BW_CHECK_STR_EQ(bw_error_path(err), path);
    BW_CHECK_STR_EQ(bw_error_syscall(err), syscall);
}

static void d72_listener(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    ((d72 *)data)->listened++;
    check_fields(arg, -EACCES, "/secret", "open");
    BW_CHECK_ROUTING((bw_error *)arg, NULL, BW_UNSET, NULL, NULL);
}

static void d72_emit(void *arg)
{
    bw_emitter *e = arg;
    bw_emitter_emit_error(e, bw_error_from_status(-EACCES, "open", "/secret"));
}

BW_TEST(D_72, decoration_adds_fields_and_nothing_else)
{
    d72 s = {0};
    s.loop = bw_test_loop();
    s.d = bw_rec_domain(&s.rec);
    bw_domain_run(s.d, d72_open, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    BW_CHECK_PTR_EQ(s.rec.err[0], s.fs_err);
    BW_CHECK_STR_EQ(bw_error_message(s.rec.err[0]), s.message);
    check_fields(s.rec.err[0], -ENOENT, "no such file here", "open");
    BW_CHECK_INT_EQ(bw_error_origin_of(s.rec.err[0]), BW_ORIGIN_CALLBACK);

    /* A listener: untouched. */
    bw_emitter *e = bw_test_emitter();
    bw_domain_add(s.d, bw_emitter_member(e));
    bw_emitter_on(e, BW_EVENT_ERROR, d72_listener, &s);
    bw_test_main(d72_emit, e);
    BW_CHECK_INT_EQ(s.listened, 1);
    BW_CHECK_INT_EQ(s.rec.calls, 1);
    /* A domain: decorated, fields kept. */
    bw_emitter_off_all(e, NULL);
    bw_test_main(d72_emit, e);
    BW_CHECK_INT_EQ(s.rec.calls, 2);
    check_fields(s.rec.err[1], -EACCES, "/secret", "open");
    BW_CHECK_STR_EQ(bw_error_message(s.rec.err[1]), "EACCES: permission denied, open '/secret'");
    BW_CHECK_ROUTING(s.rec.err[1], s.d, BW_NO, e, NULL);
    bw_rec_clear(&s.rec);
    bw_emitter_free(e);
    bw_domain_release(s.d);
}

/* D-73: a handler-less inner domain passes the error to the outer one, and
 * err.domain names the domain whose handler ran. */
typedef struct d73 {
    bw_domain *d3;
    bw_domain *d4;
} d73;

static void *d73_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "inner");
}

static void *d73_outer(void *arg)
{
    d73 *s = arg;
    return bw_domain_run(s->d4, d73_throw, NULL);
}

static void d73_main(void *arg)
{
    d73 *s = arg;
    bw_domain_run(s->d3, d73_outer, s);
}

BW_TEST(D_73, err_domain_names_the_domain_whose_handler_ran)
{
    bw_rec r = {0};
    d73 s = {bw_rec_domain(&r), bw_test_domain()};
    bw_test_main(d73_main, &s);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[0]), s.d3);
    BW_CHECK(bw_error_domain(r.err[0]) != s.d4);
    BW_CHECK_INT_EQ(bw_error_domain_thrown(r.err[0]), BW_YES);
    bw_rec_clear(&r);
    bw_domain_release(s.d3);
    bw_domain_release(s.d4);
}
