/*
 * test_emitter.c: routing of `error` events (domain-behaviors.md section 7,
 * D-44..D-49).
 */
#include "bw_rec.h"

/* ---- D-44: a listener gets the error untouched -------------------------- */

typedef struct d44 {
    bw_emitter *e;
    bw_error *got[2];
    int listener_calls;
    bool results[2];
} d44;

static void d44_listener(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    d44 *s = data;
    s->got[s->listener_calls++] = bw_error_hold(arg);
}

static void d44_main(void *arg)
{
    d44 *s = arg;
    bw_error *first = bw_error_new(-EINVAL, "first");
    bw_emitter_once(s->e, BW_EVENT_ERROR, d44_listener, s);
    s->results[0] = bw_emitter_emit_error(s->e, first);
    BW_CHECK_INT_EQ(bw_emitter_listener_count(s->e, BW_EVENT_ERROR), 0); /* once */
    bw_emitter_once(s->e, BW_EVENT_ERROR, d44_listener, s);
    /* bw_emitter_emit with "error" takes its own reference. */
    bw_error *second = bw_error_new(-EIO, "second");
    s->results[1] = bw_emitter_emit(s->e, BW_EVENT_ERROR, second);
    bw_error_release(second);
}

/*
 * In C, an `error` event always carries a bw_error (there is no "plain
 * object" to emit). What the rule protects is checked on it: the listener
 * gets the very pointer, with nothing added (the routing fields stay
 * unset, message and code unchanged), and the domain is not consulted.
 */
BW_TEST(D_44, listener_gets_the_error_and_domain_is_not_consulted)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    d44 s = {bw_test_emitter(), {NULL, NULL}, 0, {false, false}};
    bw_domain_add(d, bw_emitter_member(s.e));
    bw_test_main(d44_main, &s);
    BW_CHECK_INT_EQ(r.calls, 0);
    BW_CHECK_INT_EQ(s.listener_calls, 2);
    BW_CHECK(s.results[0]);
    BW_CHECK(s.results[1]);
    BW_CHECK_STR_EQ(bw_error_message(s.got[0]), "first");
    BW_CHECK_STR_EQ(bw_error_message(s.got[1]), "second");
    BW_CHECK_INT_EQ(bw_error_code(s.got[1]), -EIO);
    for (int i = 0; i < 2; i++) {
        BW_CHECK_ROUTING(s.got[i], NULL, BW_UNSET, NULL, NULL);
        bw_error_release(s.got[i]);
    }
    bw_emitter_free(s.e);
    bw_domain_release(d);
}

/* ---- D-45, D-46: no listener, an owner ---------------------------------- */

typedef struct emit_call {
    bw_emitter *e;
    bw_error *err;
    bool result;
} emit_call;

static void emit_main(void *arg)
{
    emit_call *c = arg;
    c->result = bw_emitter_emit_error(c->e, c->err);
}

BW_TEST(D_45, no_listener_goes_to_domain_once_and_emit_returns_false)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    emit_call c = {bw_test_emitter(), bw_error_new(-EINVAL, "foobar"), true};
    bw_error *sent = c.err;
    bw_domain_add(d, bw_emitter_member(c.e));
    bw_test_main(emit_main, &c);
    BW_CHECK(!c.result);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(r.err[0], sent);
    BW_CHECK_ROUTING(r.err[0], d, BW_NO, c.e, NULL);
    /* An ordinary event with no listener reports false too. */
    BW_CHECK(!bw_emitter_emit(c.e, "data", NULL));
    bw_rec_clear(&r);
    bw_emitter_free(c.e);
    bw_domain_release(d);
}

static void d46_emit_null_via_emit(void *arg)
{
    emit_call *c = arg;
    c->result = bw_emitter_emit(c->e, BW_EVENT_ERROR, NULL);
}

BW_TEST(D_46, error_event_without_value_gives_a_real_error)
{
    bw_rec r = {0};
    bw_domain *d = bw_rec_domain(&r);
    emit_call c = {bw_test_emitter(), NULL, true};
    bw_domain_add(d, bw_emitter_member(c.e));
    bw_test_main(emit_main, &c);
    BW_CHECK(!c.result);
    c.result = true;
    bw_test_main(d46_emit_null_via_emit, &c);
    BW_CHECK(!c.result);
    BW_CHECK_INT_EQ(r.calls, 2);
    for (int i = 0; i < 2; i++) {
        BW_CHECK(r.err[i] != NULL);
        BW_CHECK_INT_EQ(bw_error_code(r.err[i]), BW_EUNHANDLED);
        BW_CHECK(bw_error_message(r.err[i])[0] != '\0');
        BW_CHECK_ROUTING(r.err[i], d, BW_NO, c.e, NULL);
    }
    bw_rec_clear(&r);
    bw_emitter_free(c.e);
    bw_domain_release(d);
}

/* ---- D-47: no listener, no owner: a throw ------------------------------- */

static void *d47_emit(void *arg)
{
    emit_call *c = arg;
    c->result = bw_emitter_emit_error(c->e, c->err);
    BW_CHECK(!"emit_error with no listener and no domain returned");
    return NULL;
}

typedef struct d47 {
    bw_domain *d;
    emit_call c;
} d47;

static void d47_main(void *arg)
{
    d47 *s = arg;
    bw_domain_run(s->d, d47_emit, &s->c);
}

BW_TEST(D_47, no_listener_no_owner_is_a_throw)
{
    bw_rec r = {0};
    d47 s = {bw_rec_domain(&r), {bw_test_emitter(), bw_error_new(-EINVAL, "E"), true}};
    bw_error *sent = s.c.err;
    BW_CHECK(bw_emitter_domain(s.c.e) == NULL);
    bw_test_main(d47_main, &s);
    BW_CHECK_INT_EQ(r.calls, 1);
    BW_CHECK_PTR_EQ(r.err[0], sent);
    BW_CHECK_PTR_EQ(bw_error_domain(r.err[0]), s.d);
    BW_CHECK_INT_EQ(bw_error_domain_thrown(r.err[0]), BW_YES);
    BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
    bw_rec_clear(&r);
    bw_emitter_free(s.c.e);
    bw_domain_release(s.d);
}

/* ---- D-48, D-49: the stack while an emitted error's handler runs --------- */

#define NONE (-1)

typedef struct row {
    int n;
    int chain[4];   /* indexes into the domains d1, d2, d3 (bottom first) */
    int handler;    /* whose handler runs */
    size_t h_depth; /* in the handler */
    int h_stack[2]; /* the handler-time stack (h_depth entries) */
    int h_active;
    size_t after_depth; /* after emit returns */
    int after_active;
} row;

static const row rows[] = {
    {1, {0}, 0, 0, {0}, NONE, 1, 0},          {2, {0, 0}, 0, 0, {0}, NONE, 2, 0},
    {2, {0, 1}, 1, 1, {0}, 0, 2, 1},          {3, {0, 1, 1}, 1, 1, {0}, 0, 3, 1},
    {4, {2, 0, 2, 2}, 2, 2, {2, 0}, 0, 4, 2},
};

typedef struct table {
    bw_loop *loop;
    bw_domain *doms[3];
    const row *row;
    int level;
    int handler_calls[3];
    bool handler_ok;
    bool after_ok;
    int ticks;
    size_t tick_depth;
    bw_domain *tick_active;
} table;

static bw_domain *dom(table *s, int i)
{
    return i == NONE ? NULL : s->doms[i];
}

static void table_tick(void *arg)
{
    table *s = arg;
    s->ticks++;
    s->tick_depth = bw_domain_stack_depth();
    s->tick_active = bw_domain_active();
}

static void table_handler(bw_domain *d, bw_error *err, void *data)
{
    (void)err;
    table *s = data;
    const row *w = s->row;
    for (int i = 0; i < 3; i++)
        if (d == s->doms[i])
            s->handler_calls[i]++;
    bool ok = d == dom(s, w->handler) && bw_domain_stack_depth() == w->h_depth &&
              bw_domain_active() == dom(s, w->h_active);
    for (size_t i = 0; i < w->h_depth; i++)
        ok = ok && bw_domain_stack_at(i) == dom(s, w->h_stack[i]);
    s->handler_ok = ok;
    bw_next_tick(s->loop, table_tick, s); /* D-49 */
}

static void *table_run(void *arg)
{
    table *s = arg;
    const row *w = s->row;
    if (s->level < w->n)
        return bw_domain_run(s->doms[w->chain[s->level++]], table_run, s);
    /* Innermost: the emitter's owner is the innermost domain. */
    bw_emitter *e = bw_test_emitter();
    bool handled_by_listener = bw_emitter_emit_error(e, bw_error_new(-EINVAL, "row"));
    bool ok = !handled_by_listener && bw_domain_stack_depth() == w->after_depth &&
              bw_domain_active() == dom(s, w->after_active);
    for (int i = 0; i < w->n; i++)
        ok = ok && bw_domain_stack_at((size_t)i) == s->doms[w->chain[i]];
    s->after_ok = ok;
    bw_emitter_free(e);
    return NULL;
}

static void table_main(void *arg)
{
    table_run(arg);
}

static void run_table(bool check_ticks)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        table s = {0};
        s.loop = bw_test_loop();
        s.row = &rows[i];
        for (int k = 0; k < 3; k++) {
            s.doms[k] = bw_test_domain();
            bw_domain_on_error(s.doms[k], table_handler, &s);
        }
        bw_test_main(table_main, &s); /* the tick is drained when it returns */
        bw_test_loop_finish(s.loop);
        if (!s.handler_ok || !s.after_ok)
            bw_test_fail(__FILE__, __LINE__, "row %zu: handler %s, after emit %s", i,
                         s.handler_ok ? "ok" : "wrong", s.after_ok ? "ok" : "wrong");
        for (int k = 0; k < 3; k++)
            BW_CHECK_INT_EQ(s.handler_calls[k], k == s.row->handler ? 1 : 0);
        BW_CHECK_INT_EQ(s.ticks, 1);
        if (check_ticks) {
            /* The tick is bound to the handler-time active domain. */
            size_t want_depth = s.row->h_active == NONE ? 0 : 1;
            if (s.tick_depth != want_depth || s.tick_active != dom(&s, s.row->h_active))
                bw_test_fail(__FILE__, __LINE__, "row %zu: tick ran with depth %zu", i,
                             s.tick_depth);
        }
        BW_CHECK_INT_EQ(bw_domain_stack_depth(), 0);
        for (int k = 0; k < 3; k++)
            bw_domain_release(s.doms[k]);
    }
}

BW_TEST(D_48, emitted_error_handler_stack_table)
{
    run_table(false);
}

BW_TEST(D_49, work_scheduled_in_the_handler_is_bound_to_its_active_domain)
{
    run_table(true);
}
