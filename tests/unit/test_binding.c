/*
 * test_binding.c: implicit binding of emitters, timers, ticks, immediates,
 * I/O requests and raw libuv handles (domain-behaviors.md section 3,
 * D-13..D-24).
 */
#include "bw_rec.h"

#include <fcntl.h>

/* ---- D-13: an emitter created in d belongs to d for good --------------- */

typedef struct d13 {
    bw_domain *d;
    bw_emitter *e;
    bool emit_result;
    int emits;
} d13;

static void *d13_create(void *arg)
{
    d13 *s = arg;
    s->e = bw_test_emitter();
    return NULL;
}

static void d13_emit(bw_timer *t, void *data)
{
    (void)t;
    d13 *s = data;
    s->emits++;
    BW_CHECK(bw_domain_active() == NULL);
    s->emit_result = bw_emitter_emit_error(s->e, bw_error_new(-EINVAL, "foobar"));
}

BW_TEST(D_13, emitter_created_in_domain_belongs_to_it)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    d13 s = {bw_rec_domain(&r), NULL, true, 0};
    bw_domain_run(s.d, d13_create, &s);
    BW_CHECK_PTR_EQ(bw_emitter_domain(s.e), s.d);
    BW_CHECK(bw_domain_has_member(s.d, bw_emitter_member(s.e)));
    bw_timeout(loop, 1, d13_emit, &s, NULL); /* no domain active here */
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(s.emits, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK(!s.emit_result);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "foobar");
    BW_CHECK_ROUTING(r.err[0], s.d, BW_NO, s.e, NULL);
    bw_rec_clear(&r);
    bw_emitter_free(s.e);
    bw_domain_release(s.d);
}

/* ---- D-14..D-16: timers, next ticks and immediates --------------------- */

typedef struct async_throw {
    bw_loop *loop;
    bw_domain *d;
    const char *message;
    int ran;
} async_throw;

static void throw_task(void *arg)
{
    async_throw *s = arg;
    s->ran++;
    bw_throwf(-EINVAL, "%s", s->message);
}

static void throw_timer(bw_timer *t, void *data)
{
    (void)t;
    throw_task(data);
}

static void *schedule_timeout(void *arg)
{
    async_throw *s = arg;
    bw_timeout(s->loop, 1, throw_timer, s, NULL);
    return NULL;
}

static void *schedule_tick(void *arg)
{
    async_throw *s = arg;
    bw_next_tick(s->loop, throw_task, s);
    return NULL;
}

static void *schedule_immediate(void *arg)
{
    async_throw *s = arg;
    bw_set_immediate(s->loop, throw_task, s, NULL);
    return NULL;
}

static void check_async_throw(void *(*schedule)(void *), const char *message)
{
    bw_rec r = {0};
    async_throw s = {bw_test_loop(), bw_rec_domain(&r), message, 0};
    bw_domain_run(s.d, schedule, &s);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.ran, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), message);
    BW_CHECK_ROUTING(r.err[0], s.d, BW_YES, NULL, NULL);
    BW_CHECK_INT_EQ(bw_error_origin_of(r.err[0]), BW_ORIGIN_THROWN);
    bw_rec_clear(&r);
    bw_domain_release(s.d);
}

BW_TEST(D_14, timer_created_in_domain_runs_inside_it)
{
    check_async_throw(schedule_timeout, "foobar");
}

BW_TEST(D_15, next_tick_scheduled_in_domain_runs_inside_it)
{
    check_async_throw(schedule_tick, "foobar");
}

BW_TEST(D_16, immediate_scheduled_in_domain_runs_inside_it)
{
    check_async_throw(schedule_immediate, "Immediate Error");
}

/* ---- D-17: binding carries through a chain of async hops --------------- */

typedef struct d17 {
    bw_loop *loop;
    bw_domain *d;
    int hops;
    int interval_runs;
    int log_lines;
} d17;

static void d17_stat_done(bw_error *err, void *result, void *data)
{
    (void)result;
    d17 *s = data;
    BW_CHECK(err != NULL); /* "missing" does not exist */
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    s->hops++;
    bw_throwf(-EINVAL, "foobar");
}

static void d17_timeout(bw_timer *t, void *data)
{
    (void)t;
    d17 *s = data;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    s->hops++;
    BW_CHECK_INT_EQ(bw_fs_stat(s->loop, "missing", d17_stat_done, s), 0);
}

static void d17_interval(bw_timer *t, void *data)
{
    d17 *s = data;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    s->interval_runs++;
    bw_timer_clear(t);
    bw_timeout(s->loop, 1, d17_timeout, s, NULL);
}

static void d17_tick(void *arg)
{
    d17 *s = arg;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    s->hops++;
    bw_interval(s->loop, 1, d17_interval, s, NULL);
}

static void *d17_start(void *arg)
{
    d17 *s = arg;
    bw_next_tick(s->loop, d17_tick, s);
    return NULL;
}

static void d17_log(bw_log_level level, const char *msg, void *data)
{
    (void)level;
    (void)msg;
    ((d17 *)data)->log_lines++;
}

BW_TEST(D_17, binding_carries_through_async_hops)
{
    bw_rec r = {0};
    d17 s = {bw_test_loop(), bw_rec_domain(&r), 0, 0, 0};
    bw_log_set_handler(d17_log, &s);
    bw_domain_run(s.d, d17_start, &s);
    bw_test_loop_finish(s.loop);
    bw_log_set_handler(NULL, NULL);
    BW_CHECK_INT_EQ(s.hops, 3);
    BW_CHECK_INT_EQ(s.interval_runs, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "foobar");
    BW_CHECK_ROUTING(r.err[0], s.d, BW_YES, NULL, NULL);
    BW_CHECK_INT_EQ(s.log_lines, 0); /* no warning printed */
    bw_rec_clear(&r);
    bw_domain_release(s.d);
}

/* ---- D-18: I/O requests complete inside the domain, at any depth ------- */

typedef struct d18 {
    bw_loop *loop;
    bw_domain *d;
    bw_error *thrown; /* the pointer the open callback threw */
    int scandirs;
    int opens;
} d18;

static void d18_open_done(bw_error *err, void *result, void *data)
{
    (void)result;
    d18 *s = data;
    s->opens++;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    if (err != NULL) {
        s->thrown = err;
        bw_throw(bw_error_hold(err)); /* fail if err is set */
    }
}

static void d18_scandir_done(bw_error *err, void *result, void *data)
{
    d18 *s = data;
    s->scandirs++;
    BW_CHECK(err == NULL);
    BW_CHECK(((bw_fs_result *)result)->value > 0);
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    bw_fs_open(s->loop, "this file does not exist", O_RDONLY, 0, d18_open_done, s);
}

static void d18_timer(bw_timer *t, void *data)
{
    (void)t;
    d18 *s = data;
    BW_CHECK_INT_EQ(bw_fs_scandir(s->loop, "/", d18_scandir_done, s), 0);
}

static void *d18_start(void *arg)
{
    d18 *s = arg;
    bw_timeout(s->loop, 10, d18_timer, s, NULL);
    return NULL;
}

BW_TEST(D_18, io_requests_complete_inside_the_domain)
{
    bw_rec r = {0};
    d18 s = {bw_test_loop(), bw_rec_domain(&r), NULL, 0, 0};
    bw_domain_run(s.d, d18_start, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.scandirs, 1);
    BW_CHECK_INT_EQ(s.opens, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    bw_error *err = r.err[0];
    BW_CHECK_PTR_EQ(err, s.thrown); /* the very error of the open */
    BW_CHECK_ROUTING(err, s.d, BW_YES, NULL, NULL);
    BW_CHECK_INT_EQ(bw_error_code(err), -ENOENT);
    BW_CHECK_STR_EQ(bw_err_name(bw_error_code(err)), "ENOENT");
    BW_CHECK_STR_EQ(bw_error_path(err), "this file does not exist");
    BW_CHECK_STR_EQ(bw_error_syscall(err), "open");
    BW_CHECK_CONTAINS(bw_error_message(err), "this file does not exist");
    bw_rec_clear(&r);
    bw_domain_release(s.d);
}

/* ---- D-19: network objects created in d run their callbacks inside d ---
 *
 * bulwark's HTTP server does not exist yet: a raw libuv TCP server and
 * client on 127.0.0.1 port 0, each handle a bw_resource created inside the
 * run (so bound to d), each libuv callback handed over with
 * bw_resource_invoke. The "worker still reports listening" half of the
 * rule belongs to the cluster, which does not exist yet either.
 */
typedef struct d19 {
    bw_loop *loop;
    bw_domain *d;
    uv_tcp_t server;
    uv_tcp_t client;
    uv_tcp_t conn;
    uv_connect_t connect_req;
    uv_write_t write_req;
    bw_resource *server_r;
    bw_resource *client_r;
    bw_resource *conn_r;
    char buf[64];
    int accepted;
    int connected;
    int data_calls;
    int handled;
} d19;

static d19 *d19_state;

static void d19_close_handle(void *ptr)
{
    uv_handle_t *h = ptr;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void d19_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    *buf = uv_buf_init(d19_state->buf, sizeof d19_state->buf);
}

typedef struct d19_read {
    ssize_t n;
} d19_read;

static void d19_on_data(void *arg)
{
    d19_read *rd = arg;
    d19 *s = d19_state;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    if (rd->n > 0) {
        s->data_calls++;
        bw_throwf(-EPROTO, "thrown from the data listener");
    }
}

static void d19_read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    (void)stream;
    (void)buf;
    d19_read rd = {n};
    bw_resource_invoke(d19_state->conn_r, d19_on_data, &rd);
}

static void d19_accept(void *arg)
{
    d19 *s = arg;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    s->accepted++;
    uv_tcp_init(bw_loop_uv(s->loop), &s->conn);
    BW_CHECK_INT_EQ(uv_accept((uv_stream_t *)&s->server, (uv_stream_t *)&s->conn), 0);
    s->conn_r = bw_test_resource(&s->conn, d19_close_handle); /* bound to d: it is active */
    uv_read_start((uv_stream_t *)&s->conn, d19_alloc, d19_read_cb);
}

static void d19_connection_cb(uv_stream_t *server, int status)
{
    (void)server;
    BW_CHECK_INT_EQ(status, 0);
    bw_resource_invoke(d19_state->server_r, d19_accept, d19_state);
}

static void d19_write_cb(uv_write_t *req, int status)
{
    (void)req;
    (void)status; /* UV_ECANCELED once the domain closed the client */
}

static void d19_send(void *arg)
{
    d19 *s = arg;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d);
    s->connected++;
    uv_buf_t b = uv_buf_init("hello", 5);
    uv_write(&s->write_req, (uv_stream_t *)&s->client, &b, 1, d19_write_cb);
}

static void d19_connect_cb(uv_connect_t *req, int status)
{
    (void)req;
    BW_CHECK_INT_EQ(status, 0);
    bw_resource_invoke(d19_state->client_r, d19_send, d19_state);
}

static void *d19_start(void *arg)
{
    d19 *s = arg;
    uv_loop_t *uv = bw_loop_uv(s->loop);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(uv, &s->server);
    s->server_r = bw_test_resource(&s->server, d19_close_handle);
    BW_CHECK_INT_EQ(uv_tcp_bind(&s->server, (const struct sockaddr *)&addr, 0), 0);
    BW_CHECK_INT_EQ(uv_listen((uv_stream_t *)&s->server, 8, d19_connection_cb), 0);
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->server, (struct sockaddr *)&bound, &len);
    uv_tcp_init(uv, &s->client);
    s->client_r = bw_test_resource(&s->client, d19_close_handle);
    BW_CHECK_INT_EQ(uv_tcp_connect(&s->connect_req, &s->client, (const struct sockaddr *)&bound,
                                   d19_connect_cb),
                    0);
    return NULL;
}

static void d19_handler(bw_domain *d, bw_error *err, void *data)
{
    d19 *s = data;
    s->handled++;
    BW_CHECK_PTR_EQ(bw_error_domain(err), d);
    BW_CHECK_INT_EQ(bw_error_domain_thrown(err), BW_YES);
    BW_CHECK_STR_EQ(bw_error_message(err), "thrown from the data listener");
    /* Disposing the domain closes the three handles: the loop can end. */
    BW_CHECK_INT_EQ(bw_domain_dispose(d), 0);
}

BW_TEST(D_19, network_objects_run_their_callbacks_inside_the_domain)
{
    d19 s = {0};
    d19_state = &s;
    s.loop = bw_test_loop();
    s.d = bw_test_domain();
    bw_domain_on_error(s.d, d19_handler, &s);
    /* Even in abort mode: an error a domain handles never aborts. */
    bw_set_abort_on_uncaught(true);
    bw_domain_run(s.d, d19_start, &s);
    BW_CHECK_PTR_EQ(bw_resource_domain(s.server_r), s.d);
    BW_CHECK_PTR_EQ(bw_resource_domain(s.client_r), s.d);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.accepted, 1);
    BW_CHECK_INT_EQ(s.connected, 1);
    BW_CHECK_INT_EQ(s.data_calls, 1);
    BW_CHECK_INT_EQ(s.handled, 1);
    BW_CHECK(bw_resource_is_disposed(s.server_r));
    BW_CHECK(bw_resource_is_disposed(s.client_r));
    BW_CHECK(bw_resource_is_disposed(s.conn_r));
    bw_resource_free(s.server_r);
    bw_resource_free(s.client_r);
    bw_resource_free(s.conn_r);
    bw_domain_release(s.d);
}

/* ---- D-20: unref does not change a timer's domain ---------------------- */

typedef struct d20 {
    bw_loop *loop;
    bw_domain *d;
    bw_timer *a;
    bw_timer *b;
    bw_timer *t;
    int t_fired;
    int a_ran;
    int b_ran;
} d20;

static void d20_a(bw_timer *t, void *data)
{
    (void)t;
    d20 *s = data;
    s->a_ran++;
    bw_throwf(-EINVAL, "from A");
}

static void d20_b(bw_timer *t, void *data)
{
    (void)t;
    d20 *s = data;
    s->b_ran++;
    bw_timer_clear(s->t);
    bw_throwf(-EINVAL, "from B");
}

static void d20_t(bw_timer *t, void *data)
{
    (void)t;
    ((d20 *)data)->t_fired++;
}

static void *d20_start(void *arg)
{
    d20 *s = arg;
    BW_CHECK_INT_EQ(bw_timeout(s->loop, 0, d20_a, s, &s->a), 0);
    bw_timer_unref(s->a);
    BW_CHECK(!bw_timer_has_ref(s->a));
    BW_CHECK_PTR_EQ(bw_timer_domain(s->a), s->d);
    BW_CHECK_INT_EQ(bw_timeout(s->loop, 0, d20_b, s, &s->b), 0);
    return NULL;
}

BW_TEST(D_20, unref_does_not_change_a_timers_domain)
{
    bw_rec r = {0};
    d20 s = {0};
    s.loop = bw_test_loop();
    s.d = bw_rec_domain(&r);
    BW_CHECK_INT_EQ(bw_timeout(s.loop, 10000, d20_t, &s, &s.t), 0); /* ref'd, no domain */
    bw_domain_run(s.d, d20_start, &s);
    bw_timer_unref(s.b);
    BW_CHECK_PTR_EQ(bw_timer_domain(s.b), s.d);
    uint64_t start = uv_hrtime();
    bw_test_loop_finish(s.loop);
    BW_CHECK(uv_hrtime() - start < 5000000000u); /* T did not hold the loop */
    BW_CHECK_INT_EQ(s.a_ran, 1);
    BW_CHECK_INT_EQ(s.b_ran, 1);
    BW_CHECK_INT_EQ(s.t_fired, 0);
    BW_CHECK_INT_EQ(r.calls, 2);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[0]), s.d);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[1]), s.d);
    BW_CHECK_STR_EQ(bw_error_message(r.err[1]), "from B");
    bw_rec_clear(&r);
    bw_timer_release(s.a);
    bw_timer_release(s.b);
    bw_timer_release(s.t);
    bw_domain_release(s.d);
}

/* ---- D-21: the next callback of a batch runs with no domain ------------
 * "Call an undefined function" is a throw here, so that the case also runs
 * under the sanitizers; test_throw.c's D-55 does the literal NULL call. */

typedef struct d21 {
    bw_domain *d;
    bw_domain *seen_in_b;
    size_t depth_in_b;
    int b_ran;
} d21;

static void *d21_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "undefined function called");
}

static void d21_a(bw_timer *t, void *data)
{
    (void)t;
    bw_domain_run(((d21 *)data)->d, d21_throw, NULL);
}

static void d21_b(bw_timer *t, void *data)
{
    (void)t;
    d21 *s = data;
    s->b_ran++;
    s->seen_in_b = bw_domain_active();
    s->depth_in_b = bw_domain_stack_depth();
}

BW_TEST(D_21, callback_scheduled_without_domain_runs_without_one)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    d21 s = {bw_rec_domain(&r), (bw_domain *)&s, 99, 0};
    bw_timeout(loop, 5, d21_a, &s, NULL);
    bw_timeout(loop, 5, d21_b, &s, NULL);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[0]), s.d);
    BW_CHECK_INT_EQ(s.b_ran, 1);
    BW_CHECK(s.seen_in_b == NULL);
    BW_CHECK_INT_EQ(s.depth_in_b, 0);
    bw_rec_clear(&r);
    bw_domain_release(s.d);
}

/* ---- D-22: other timers due together still run, in order --------------- */

typedef struct d22 {
    bw_loop *loop;
    int first;
    int third_saw_first;
    int order[3];
    int n;
} d22;

static void d22_fail(bw_timer *t, void *data)
{
    (void)t;
    d22 *s = data;
    s->order[s->n++] = 1;
    bw_throwf(-EINVAL, "FAIL");
}

static void d22_first(bw_timer *t, void *data)
{
    (void)t;
    d22 *s = data;
    s->order[s->n++] = 2;
    s->first = 1;
}

static void d22_third(bw_timer *t, void *data)
{
    (void)t;
    d22 *s = data;
    s->order[s->n++] = 3;
    s->third_saw_first = s->first;
}

static void *d22_start(void *arg)
{
    d22 *s = arg;
    bw_timeout(s->loop, 1, d22_fail, s, NULL);
    bw_timeout(s->loop, 1, d22_first, s, NULL);
    bw_timeout(s->loop, 2, d22_third, s, NULL);
    bw_busy_wait_ms(3); /* all three fall due in the same timer batch */
    return NULL;
}

BW_TEST(D_22, other_timers_due_together_still_run_in_order)
{
    bw_rec r = {0};
    d22 s = {0};
    s.loop = bw_test_loop();
    bw_domain *d = bw_test_domain();
    bw_domain_run(d, d22_start, &s);
    BW_CHECK_INT_EQ(bw_domain_once_error(d, bw_rec_handler, &r), 0);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "FAIL");
    BW_CHECK_INT_EQ(bw_domain_error_handler_count(d), 0); /* once */
    BW_CHECK_INT_EQ(s.n, 3);
    BW_CHECK_INT_EQ(s.order[0], 1);
    BW_CHECK_INT_EQ(s.order[1], 2);
    BW_CHECK_INT_EQ(s.order[2], 3);
    BW_CHECK_INT_EQ(s.third_saw_first, 1);
    bw_rec_clear(&r);
    bw_domain_release(d);
}

/* ---- D-23: bound to the domain active when scheduled ------------------- */

typedef struct d23 {
    bw_loop *loop;
    bw_domain *d5;
    bw_domain *d6;
    size_t depth;
    bw_domain *bottom;
    int ran;
} d23;

static void d23_cb(bw_timer *t, void *data)
{
    (void)t;
    d23 *s = data;
    s->ran++;
    s->depth = bw_domain_stack_depth();
    s->bottom = bw_domain_stack_at(0);
}

static void *d23_inner(void *arg)
{
    d23 *s = arg;
    bw_timeout(s->loop, 1, d23_cb, s, NULL);
    return NULL;
}

static void *d23_outer(void *arg)
{
    d23 *s = arg;
    return bw_domain_run(s->d6, d23_inner, s);
}

BW_TEST(D_23, callback_bound_to_domain_active_when_scheduled)
{
    d23 s = {bw_test_loop(), bw_test_domain(), bw_test_domain(), 0, NULL, 0};
    bw_domain_run(s.d5, d23_outer, &s);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.ran, 1);
    BW_CHECK_INT_EQ(s.depth, 1);
    BW_CHECK_PTR_EQ(s.bottom, s.d6); /* d5 is not on the stack */
    bw_domain_release(s.d5);
    bw_domain_release(s.d6);
}

/* ---- D-24: binding bookkeeping keeps nothing alive ---------------------
 *
 * C has no garbage collector: "every reference is gone" means the user's
 * own references are dropped. The counting allocator proves every block
 * bulwark allocated for the domain, the emitter and the resource is given
 * back, whatever the order of the drops (the leak checks of the .asan and
 * .valgrind variants prove it too).
 */
typedef struct d24 {
    bw_domain *d;
    bw_emitter *e;
    bw_resource *r;
} d24;

static void *d24_body(void *arg)
{
    d24 *s = arg;
    s->r = bw_test_resource(s, NULL);
    s->e = bw_test_emitter();
    BW_CHECK_INT_EQ(bw_domain_remove(s->d, bw_emitter_member(s->e)), 0);
    BW_CHECK_INT_EQ(bw_domain_add(s->d, bw_emitter_member(s->e)), 0);
    bw_emitter_set_data(s->e, s->r);
    return NULL;
}

static void d24_make(d24 *s)
{
    s->d = bw_test_domain();
    bw_domain_run(s->d, d24_body, s);
    BW_CHECK_PTR_EQ(bw_resource_domain(s->r), s->d);
    BW_CHECK_PTR_EQ(bw_emitter_domain(s->e), s->d);
    BW_CHECK_PTR_EQ(bw_emitter_data(s->e), s->r);
    BW_CHECK_INT_EQ(bw_domain_member_count(s->d), 2);
}

BW_TEST(D_24, binding_bookkeeping_keeps_nothing_alive)
{
    bw_count_install();
    bw_loop *loop = bw_test_loop(); /* prepares the thread's state */
    long base = bw_count_live;

    d24 s;
    d24_make(&s);
    BW_CHECK(bw_count_live > base);
    bw_emitter_free(s.e);
    bw_resource_free(s.r);
    bw_domain_release(s.d);
    BW_CHECK_INT_EQ(bw_count_live, base);

    /* The domain dropped first: its members keep it alive, then free it. */
    d24_make(&s);
    bw_domain_release(s.d);
    BW_CHECK_INT_EQ(bw_domain_member_count(s.d), 2); /* still alive */
    bw_resource_free(s.r);
    bw_emitter_free(s.e);
    BW_CHECK_INT_EQ(bw_count_live, base);

    bw_test_loop_finish(loop);
}
