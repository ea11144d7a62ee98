/*
 * test_members.c: explicit add / remove / members (domain-behaviors.md
 * section 4, D-25..D-35).
 */
#include "bw_rec.h"

BW_TEST(D_25, add_makes_d_the_owner)
{
    bw_domain *d = bw_test_domain();
    bw_emitter *e = bw_test_emitter();
    BW_CHECK(bw_emitter_domain(e) == NULL);
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_emitter_member(e)), 0);
    BW_CHECK_PTR_EQ(bw_member_owner(bw_emitter_member(e)), d);
    BW_CHECK_PTR_EQ(bw_emitter_domain(e), d);
    BW_CHECK(bw_domain_has_member(d, bw_emitter_member(e)));
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 1);
    BW_CHECK_PTR_EQ(bw_domain_member_at(d, 0), bw_emitter_member(e));
    bw_emitter_free(e);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 0); /* a freed member leaves */
    bw_domain_release(d);
}

BW_TEST(D_26, adding_twice_does_not_change_the_count)
{
    bw_domain *d = bw_test_domain();
    bw_emitter *e = bw_test_emitter();
    bw_emitter *other = bw_test_emitter();
    bw_domain_add(d, bw_emitter_member(other));
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_emitter_member(e)), 0);
    size_t n = bw_domain_member_count(d);
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_emitter_member(e)), 0);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), n);
    BW_CHECK_INT_EQ(n, 2);
    /* The order added is kept: the second add did not move it. */
    BW_CHECK_PTR_EQ(bw_domain_member_at(d, 1), bw_emitter_member(e));
    bw_emitter_free(e);
    bw_emitter_free(other);
    bw_domain_release(d);
}

BW_TEST(D_27, remove_clears_owner_and_drops_member)
{
    bw_domain *d = bw_test_domain();
    bw_emitter *e = bw_test_emitter();
    bw_emitter *e2 = bw_test_emitter();
    bw_domain_add(d, bw_emitter_member(e));
    bw_domain_add(d, bw_emitter_member(e2));
    size_t n = bw_domain_member_count(d);
    BW_CHECK_INT_EQ(bw_domain_remove(d, bw_emitter_member(e2)), 0);
    BW_CHECK(bw_emitter_domain(e2) != d);
    BW_CHECK(bw_emitter_domain(e2) == NULL);
    BW_CHECK(!bw_domain_has_member(d, bw_emitter_member(e2)));
    BW_CHECK_INT_EQ(bw_domain_member_count(d), n - 1);
    /* Removing what is not a member is a clear status. */
    BW_CHECK_INT_EQ(bw_domain_remove(d, bw_emitter_member(e2)), -ENOENT);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), n - 1);
    bw_emitter_free(e);
    bw_emitter_free(e2);
    bw_domain_release(d);
}

BW_TEST(D_28, adding_to_a_second_domain_moves_the_object)
{
    bw_domain *d1 = bw_test_domain(), *d2 = bw_test_domain();
    bw_emitter *e = bw_test_emitter();
    bw_domain_add(d1, bw_emitter_member(e));
    BW_CHECK_INT_EQ(bw_domain_add(d2, bw_emitter_member(e)), 0);
    BW_CHECK_PTR_EQ(bw_emitter_domain(e), d2);
    BW_CHECK(!bw_domain_has_member(d1, bw_emitter_member(e)));
    BW_CHECK(bw_domain_has_member(d2, bw_emitter_member(e)));
    BW_CHECK_INT_EQ(bw_domain_member_count(d1), 0);
    BW_CHECK_INT_EQ(bw_domain_member_count(d2), 1);
    /* The same for a domain as a member. */
    bw_domain *child = bw_test_domain();
    bw_domain_add(d1, bw_domain_member(child));
    bw_domain_add(d2, bw_domain_member(child));
    BW_CHECK_PTR_EQ(bw_member_owner(bw_domain_member(child)), d2);
    BW_CHECK_INT_EQ(bw_domain_member_count(d1), 0);
    BW_CHECK_INT_EQ(bw_domain_member_count(d2), 2);
    bw_domain_remove(d2, bw_domain_member(child));
    bw_domain_release(child);
    bw_emitter_free(e);
    bw_domain_release(d1);
    bw_domain_release(d2);
}

BW_TEST(D_29, remove_then_add_works)
{
    bw_domain *d = bw_test_domain();
    bw_emitter *e = bw_test_emitter();
    bw_domain_add(d, bw_emitter_member(e));
    BW_CHECK_INT_EQ(bw_domain_remove(d, bw_emitter_member(e)), 0);
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_emitter_member(e)), 0);
    BW_CHECK_PTR_EQ(bw_emitter_domain(e), d);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 1);
    bw_emitter_free(e);
    bw_domain_release(d);
}

/* ---- D-30: an explicit member's error event goes to the domain --------- */

typedef struct emit_case {
    bw_emitter *e;
    bool result;
} emit_case;

static void d30_emit(void *arg)
{
    emit_case *c = arg;
    c->result = bw_emitter_emit_error(c->e, bw_error_new(-EINVAL, "foobar"));
}

BW_TEST(D_30, explicit_members_error_event_goes_to_the_domain)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    emit_case c = {bw_test_emitter(), true};
    bw_domain_add(d, bw_emitter_member(c.e));
    bw_test_main(d30_emit, &c);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK(!c.result);
    BW_CHECK_STR_EQ(bw_error_message(r.err[0]), "foobar");
    BW_CHECK_ROUTING(r.err[0], d, BW_NO, c.e, NULL);
    BW_CHECK_INT_EQ(bw_error_origin_of(r.err[0]), BW_ORIGIN_EMITTER);
    bw_rec_clear(&r);
    bw_emitter_free(c.e);
    bw_domain_release(d);
}

/* ---- D-31: created outside any domain, added later --------------------- */

BW_TEST(D_31, object_added_later_routes_its_async_error)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    bw_emitter *s;
    BW_CHECK_INT_EQ(bw_fs_read_stream(loop, "stream for nonexistent file", &s), 0);
    BW_CHECK(bw_emitter_domain(s) == NULL);
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_emitter_member(s)), 0);
    bw_test_loop_finish(loop); /* the stream frees itself after "close" */
    BW_CHECK_INT_EQ(r.calls, 1);
    bw_error *err = r.err[0];
    const char *prefix = "ENOENT: no such file or directory, open '";
    BW_CHECK(strncmp(bw_error_message(err), prefix, strlen(prefix)) == 0);
    BW_CHECK_ROUTING(err, d, BW_NO, s, NULL);
    BW_CHECK_INT_EQ(bw_error_code(err), -ENOENT);
    BW_CHECK_STR_EQ(bw_error_path(err), "stream for nonexistent file");
    BW_CHECK_STR_EQ(bw_error_syscall(err), "open");
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 0);
    bw_rec_clear(&r);
    bw_domain_release(d);
}

/* ---- D-32: listeners run inside the object's domain ---------------------
 *
 * The client side of the per-request pattern, with emitters standing for
 * the client request and response (the HTTP client does not exist): five
 * requests, each with its own domain; the response's "end" listener parses
 * the body and throws on the two bad ones. The responses arrive from
 * timers that run with no domain.
 */
typedef struct d32_req {
    bw_loop *loop;
    bw_domain *c;
    bw_emitter *req;
    bw_emitter *res;
    const char *body;
    int ends;
} d32_req;

static int d32_handled;

static void d32_handler(bw_domain *d, bw_error *err, void *data)
{
    d32_req *q = data;
    BW_CHECK_PTR_EQ(d, q->c);
    BW_CHECK_PTR_EQ(bw_error_domain(err), q->c);
    BW_CHECK_INT_EQ(bw_error_domain_thrown(err), BW_YES);
    d32_handled++;
}

static void d32_on_end(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    (void)arg;
    d32_req *q = data;
    q->ends++;
    BW_CHECK_PTR_EQ(bw_domain_active(), q->c);
    if (q->body[0] != '{')
        bw_throwf(-EPROTO, "bad JSON: %s", q->body);
}

static void d32_respond(bw_timer *t, void *data)
{
    (void)t;
    d32_req *q = data;
    BW_CHECK(bw_domain_active() == NULL);
    q->res = bw_test_emitter();
    bw_domain_add(q->c, bw_emitter_member(q->res));
    bw_emitter_on(q->res, "end", d32_on_end, q);
    bw_emitter_emit(q->res, "end", NULL);
}

BW_TEST(D_32, listeners_run_inside_the_objects_domain)
{
    bw_loop *loop = bw_test_loop();
    const char *bodies[5] = {"{\"ok\":1}", "not json", "{\"ok\":2}", "<html>", "{}"};
    d32_req q[5];
    for (int i = 0; i < 5; i++) {
        q[i] = (d32_req){loop, bw_test_domain(), bw_test_emitter(), NULL, bodies[i], 0};
        bw_domain_on_error(q[i].c, d32_handler, &q[i]);
        bw_domain_add(q[i].c, bw_emitter_member(q[i].req));
        bw_timeout(loop, (uint64_t)i, d32_respond, &q[i], NULL);
    }
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(d32_handled, 2);
    for (int i = 0; i < 5; i++) {
        BW_CHECK_INT_EQ(q[i].ends, 1);
        bw_emitter_free(q[i].req);
        bw_emitter_free(q[i].res);
        bw_domain_release(q[i].c);
    }
}

/* ---- D-33: a domain as a member of another -------------------------------
 *
 * Emitters stand for the server, the requests and responses. Root `a` is
 * entered (inside the main boundary) and owns the server; per request,
 * b is added to a and owns req and res; the response's write completion is
 * bind(b, throw). The client domain c owns the client's response and gets
 * its parse error once. a's handler is never called.
 */
typedef struct d33 {
    bw_loop *loop;
    bw_domain *a;
    bw_domain *b;
    bw_domain *c;
    bw_emitter *server;
    bw_emitter *req;
    bw_emitter *res;
    bw_emitter *client_res;
    bw_bound *write_cb;
    bw_rec ra;
    bw_rec rb;
    bw_rec rc;
} d33;

static void *d33_write_throws(void *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    bw_throwf(-EPIPE, "thrown from the write callback");
}

static void d33_write_done(void *arg)
{
    d33 *s = arg;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->a); /* the tick was queued inside a */
    bw_bound_call(s->write_cb, NULL);
}

static void d33_on_request(bw_emitter *server, void *arg, void *data)
{
    (void)server;
    (void)arg;
    d33 *s = data;
    BW_CHECK_PTR_EQ(bw_domain_active(), s->a);
    s->b = bw_rec_domain(&s->rb);
    BW_CHECK_INT_EQ(bw_domain_add(s->a, bw_domain_member(s->b)), 0);
    s->req = bw_test_emitter(); /* implicitly a's */
    s->res = bw_test_emitter();
    bw_domain_add(s->b, bw_emitter_member(s->req));
    bw_domain_add(s->b, bw_emitter_member(s->res));
    BW_CHECK_PTR_EQ(bw_emitter_domain(s->req), s->b);
    s->write_cb = bw_test_bind(s->b, d33_write_throws, NULL);
    bw_next_tick(s->loop, d33_write_done, s); /* res.write("HELLO", cb) */
}

static void *d33_listen(void *arg)
{
    d33 *s = arg;
    s->server = bw_test_emitter();
    bw_emitter_on(s->server, "request", d33_on_request, s);
    return NULL;
}

static void d33_main(void *arg)
{
    d33 *s = arg;
    bw_domain_enter(s->a);
    d33_listen(s);
    BW_CHECK_PTR_EQ(bw_emitter_domain(s->server), s->a);
}

static void d33_request_arrives(bw_timer *t, void *data)
{
    (void)t;
    d33 *s = data;
    bw_emitter_emit(s->server, "request", NULL);
}

static void d33_client_parse(bw_timer *t, void *data)
{
    (void)t;
    d33 *s = data;
    s->client_res = bw_test_emitter();
    bw_domain_add(s->c, bw_emitter_member(s->client_res));
    bw_emitter_emit_error(s->client_res, bw_error_new(-EPROTO, "Parse Error"));
}

BW_TEST(D_33, domain_member_of_domain_errors_reach_only_the_owner)
{
    d33 s = {0};
    s.loop = bw_test_loop();
    s.a = bw_rec_domain(&s.ra);
    s.c = bw_rec_domain(&s.rc);
    bw_test_main(d33_main, &s);
    bw_timeout(s.loop, 1, d33_request_arrives, &s, NULL);
    bw_timeout(s.loop, 2, d33_client_parse, &s, NULL);
    bw_test_loop_finish(s.loop);
    BW_CHECK_INT_EQ(s.rb.calls, 1);
    BW_CHECK_PTR_EQ(bw_error_domain(s.rb.err[0]), s.b);
    BW_CHECK_PTR_EQ(s.rb.active[0], s.a); /* b's handler ran in its parent */
    BW_CHECK_INT_EQ(s.rc.calls, 1);
    BW_CHECK_STR_EQ(bw_error_message(s.rc.err[0]), "Parse Error");
    BW_CHECK_ROUTING(s.rc.err[0], s.c, BW_NO, s.client_res, NULL);
    BW_CHECK_INT_EQ(s.ra.calls, 0);
    BW_CHECK_PTR_EQ(bw_member_owner(bw_domain_member(s.b)), s.a);
    bw_bound_release(s.write_cb);
    bw_emitter_free(s.req);
    bw_emitter_free(s.res);
    bw_emitter_free(s.client_res);
    bw_emitter_free(s.server);
    bw_domain_remove(s.a, bw_domain_member(s.b));
    bw_rec_clear(&s.ra);
    bw_rec_clear(&s.rb);
    bw_rec_clear(&s.rc);
    bw_domain_release(s.b);
    bw_domain_release(s.a);
    bw_domain_release(s.c);
}

/* ---- D-34: add refuses cycles between domains --------------------------- */

static void *d34_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EINVAL, "inside e");
}

typedef struct d34 {
    bw_domain *e;
    bw_emitter *em;
} d34;

static void d34_main(void *arg)
{
    d34 *s = arg;
    /* An emitter of e's, with no listener: its error goes to e. */
    bw_emitter_emit_error(s->em, bw_error_new(-EINVAL, "emitted by e's emitter"));
    bw_domain_run(s->e, d34_throw, NULL);
}

BW_TEST(D_34, add_refuses_cycles_between_domains)
{
    bw_rec rd = {0}, re = {0};
    bw_domain *d = bw_rec_domain(&rd);
    bw_domain *e = bw_rec_domain(&re);
    bw_domain *f = bw_test_domain();
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_domain_member(e)), 0);
    BW_CHECK_PTR_EQ(bw_member_owner(bw_domain_member(e)), d);
    /* e owns d? no: d owns e. */
    BW_CHECK_INT_EQ(bw_domain_add(e, bw_domain_member(d)), BW_ECYCLE);
    BW_CHECK(bw_member_owner(bw_domain_member(d)) == NULL);
    BW_CHECK_INT_EQ(bw_domain_member_count(e), 0);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 1);
    /* At any distance: d owns e owns f; f cannot own d. */
    BW_CHECK_INT_EQ(bw_domain_add(e, bw_domain_member(f)), 0);
    BW_CHECK_INT_EQ(bw_domain_add(f, bw_domain_member(d)), BW_ECYCLE);
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_domain_member(d)), BW_ECYCLE);
    BW_CHECK(bw_member_owner(bw_domain_member(d)) == NULL);
    /* Errors later raised in e reach e, and routing terminates. */
    d34 s = {e, bw_test_emitter()};
    bw_domain_add(e, bw_emitter_member(s.em));
    bw_test_main(d34_main, &s);
    BW_CHECK_INT_EQ(re.calls, 2);
    BW_CHECK_INT_EQ(rd.calls, 0);
    bw_emitter_free(s.em);
    bw_domain_remove(e, bw_domain_member(f));
    bw_domain_remove(d, bw_domain_member(e));
    bw_rec_clear(&rd);
    bw_rec_clear(&re);
    bw_domain_release(f);
    bw_domain_release(e);
    bw_domain_release(d);
}

/* ---- D-35: timers can be added explicitly ------------------------------- */

static void d35_throw(bw_timer *t, void *data)
{
    (void)t;
    int *ran = data;
    (*ran)++;
    BW_CHECK(bw_domain_active() != NULL);
    bw_throwf(-EINVAL, "E");
}

BW_TEST(D_35, timers_can_be_added_explicitly)
{
    bw_loop *loop = bw_test_loop();
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    int ran = 0;
    bw_timer *t;
    BW_CHECK_INT_EQ(bw_timeout(loop, 1, d35_throw, &ran, &t), 0);
    BW_CHECK(bw_timer_domain(t) == NULL);
    BW_CHECK_INT_EQ(bw_domain_add(d, bw_timer_member(t)), 0);
    BW_CHECK_PTR_EQ(bw_timer_domain(t), d);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 1);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(ran, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_ROUTING(r.err[0], d, BW_YES, NULL, NULL);
    BW_CHECK_INT_EQ(bw_domain_member_count(d), 0); /* a finished timer leaves */
    bw_timer_release(t);
    bw_rec_clear(&r);
    bw_domain_release(d);
}

/* ---- D-33: a member domain passes what it has no handler for to its owner --
 *
 * Node: a Domain is an EventEmitter, so after add(d1, d2) an error that d2
 * has no handler for is emitted on d2, whose own domain is d1: d1's handler
 * gets it with domain = d1, domainEmitter = d2 (here
 * bw_error_domain_member), domainThrown = false, and with the active domain
 * popped once more (tests/parity/01..03 check the same against Node 20).
 */
typedef struct pass {
    bw_domain *d1;
    bw_domain *d2;
    bw_domain *d3;
    bw_emitter *e;
    bw_bound *icpt;
    bw_rec r1;
    bw_rec r3;
    bool emit_result;
    int fn_calls;
    int after;
} pass;

static void pass_setup(pass *s)
{
    memset(s, 0, sizeof *s);
    s->d1 = bw_rec_domain(&s->r1);
    s->d2 = bw_test_domain(); /* no handler */
    s->d3 = bw_rec_domain(&s->r3);
    BW_CHECK_INT_EQ(bw_domain_add(s->d1, bw_domain_member(s->d2)), 0);
}

static void pass_teardown(pass *s)
{
    bw_rec_clear(&s->r1);
    bw_rec_clear(&s->r3);
    bw_domain_remove(s->d1, bw_domain_member(s->d2));
    bw_domain_release(s->d1);
    bw_domain_release(s->d2);
    bw_domain_release(s->d3);
}

static void *pass_emit(void *arg)
{
    pass *s = arg;
    s->emit_result = bw_emitter_emit_error(s->e, bw_error_new(-EIO, "boom"));
    BW_CHECK_PTR_EQ(bw_domain_active(), s->d3); /* restored after the handler */
    s->after++;
    return NULL;
}

static void pass_emit_main(void *arg)
{
    pass *s = arg;
    bw_domain_run(s->d3, pass_emit, s);
}

BW_TEST(D_33, member_domain_passes_unhandled_emitter_error_to_its_owner)
{
    pass s;
    pass_setup(&s);
    s.e = bw_test_emitter();
    bw_domain_add(s.d2, bw_emitter_member(s.e));
    bw_test_main(pass_emit_main, &s);
    BW_CHECK_INT_EQ(s.after, 1); /* the process, and the emit's caller, carried on */
    BW_CHECK(!s.emit_result);
    BW_CHECK_INT_EQ(s.r3.calls, 0);
    BW_CHECK_INT_EQ(s.r1.calls, 1);
    BW_CHECK_ROUTING(s.r1.err[0], s.d1, BW_NO, s.e, NULL);
    BW_CHECK_PTR_EQ(bw_error_domain_member(s.r1.err[0]), s.d2);
    BW_CHECK(s.r1.active[0] == NULL); /* d3 popped, as Node does */
    BW_CHECK_INT_EQ(s.r1.depth[0], 0);
    bw_emitter_free(s.e);
    pass_teardown(&s);
}

static void pass_fn(void *ctx, void *result)
{
    (void)result;
    ((pass *)ctx)->fn_calls++;
}

static void pass_intercept_main(void *arg)
{
    pass *s = arg;
    bw_error *err = bw_error_new(-EIO, "boom");
    bw_bound_callback(err, NULL, s->icpt);
    bw_error_release(err);
    s->after++;
}

BW_TEST(D_33, member_domain_passes_unhandled_intercepted_error_to_its_owner)
{
    pass s;
    pass_setup(&s);
    s.icpt = bw_test_intercept(s.d2, pass_fn, &s);
    bw_test_main(pass_intercept_main, &s);
    BW_CHECK_INT_EQ(s.after, 1);
    BW_CHECK_INT_EQ(s.fn_calls, 0);
    BW_CHECK_INT_EQ(s.r1.calls, 1);
    BW_CHECK_ROUTING(s.r1.err[0], s.d1, BW_NO, NULL, pass_fn);
    BW_CHECK_PTR_EQ(bw_error_domain_member(s.r1.err[0]), s.d2);
    bw_bound_release(s.icpt);
    pass_teardown(&s);
}

static void *pass_throw(void *arg)
{
    (void)arg;
    bw_throwf(-EIO, "boom");
}

static void *pass_run_d2(void *arg)
{
    pass *s = arg;
    return bw_domain_run(s->d2, pass_throw, s);
}

static void pass_throw_main(void *arg)
{
    pass *s = arg;
    bw_domain_run(s->d3, pass_run_d2, s);
}

BW_TEST(D_33, member_domain_passes_unhandled_throw_to_its_owner_not_the_stack)
{
    pass s;
    pass_setup(&s);
    bw_test_main(pass_throw_main, &s);
    BW_CHECK_INT_EQ(s.r3.calls, 0); /* d3, below on the stack, is not asked */
    BW_CHECK_INT_EQ(s.r1.calls, 1);
    BW_CHECK_ROUTING(s.r1.err[0], s.d1, BW_NO, NULL, NULL);
    BW_CHECK_PTR_EQ(bw_error_domain_member(s.r1.err[0]), s.d2);
    BW_CHECK(s.r1.active[0] == NULL);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    pass_teardown(&s);
}

/* Through a chain of handler-less owners; and alone on the stack (Node
 * would not ask the owner there: docs/DOMAINS.md). */
static void pass_alone_main(void *arg)
{
    bw_domain_run(arg, pass_throw, NULL);
}

BW_TEST(D_33, owner_chain_passes_through_domains_without_handlers)
{
    bw_rec r = {0}, u = {0};
    bw_domain *top = bw_rec_domain(&r);
    bw_domain *mid = bw_test_domain();
    bw_domain *leaf = bw_test_domain();
    bw_domain_add(top, bw_domain_member(mid));
    bw_domain_add(mid, bw_domain_member(leaf));
    bw_on_uncaught(bw_rec_uncaught, &u);
    bw_test_main(pass_alone_main, leaf);
    BW_CHECK_INT_EQ(u.calls, 0);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_ROUTING(r.err[0], top, BW_NO, NULL, NULL);
    BW_CHECK_PTR_EQ(bw_error_domain_member(r.err[0]), mid); /* the last to pass it on */
    /* A member whose owners have no handler at all: uncaught, as before. */
    bw_domain_off_error(top, bw_rec_handler, &r);
    bw_test_main(pass_alone_main, leaf);
    BW_CHECK_INT_EQ(u.calls, 1);
    BW_CHECK_INT_EQ(r.calls, 1);
    bw_off_uncaught(bw_rec_uncaught, &u);
    bw_rec_clear(&u);
    bw_rec_clear(&r);
    bw_domain_remove(mid, bw_domain_member(leaf));
    bw_domain_remove(top, bw_domain_member(mid));
    bw_domain_release(leaf);
    bw_domain_release(mid);
    bw_domain_release(top);
}
