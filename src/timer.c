/*
 * timer.c: timeouts and intervals on libuv timers, bound to domains.
 *
 * holds: 1 while the timer is pending (owned by the loop) and 1 while its
 * uv handle is open, plus the caller's if it asked for the handle, plus
 * bw_timer_hold's; memory goes when all are gone. A
 * finished timer is unbound from its domain at once and its handle closed.
 */
#include "internal.h"

struct bw_timer {
    bw_member member;
    uv_timer_t handle;
    bw_loop *loop;
    bw_timer_cb cb;
    void *data;
    uint64_t repeat;
    uint32_t holds;
    bool pending;
};

static void timer_member_dispose(bw_member *m);
static const bw__member_ops timer_member_ops = {"timer", timer_member_dispose, false};

static void timer_release_one(bw_timer *t)
{
    if (--t->holds == 0)
        bw_free(t);
}

static void on_close(uv_handle_t *h)
{
    timer_release_one(h->data);
}

/* The timer will not fire again: unbind, close the handle, drop the
 * loop's hold. */
static void timer_finish(bw_timer *t)
{
    if (!t->pending)
        return;
    t->pending = false;
    bw__member_unbind(&t->member);
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, on_close);
    timer_release_one(t);
}

static void timer_member_dispose(bw_member *m)
{
    timer_finish(BW__CONTAINER_OF(m, bw_timer, member));
}

static void fire(void *arg)
{
    bw_timer *t = arg;
    t->cb(t, t->data);
}

static void on_timer(uv_timer_t *h)
{
    bw_timer *t = h->data;
    bw_domain *d = t->member.owner;
    bw__thread *th = bw__thread_get();
    th->loop = t->loop;
    t->holds++; /* the callback may clear the timer */
    if (t->repeat == 0) {
        /* A one-shot is finished once it fires, even if its callback throws;
         * but it stays a member of its domain while the callback runs. */
        bw_invoke(d, fire, t);
        timer_finish(t);
    } else {
        bw_invoke(d, fire, t);
    }
    timer_release_one(t);
}

static int timer_start(bw_loop *loop, uint64_t ms, uint64_t repeat, bw_timer_cb cb, void *data,
                       bw_timer **out)
{
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    bw_timer *t = bw_calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    bw__member_init(&t->member, &timer_member_ops);
    t->loop = loop;
    t->cb = cb;
    t->data = data;
    t->repeat = repeat;
    t->holds = out != NULL ? 3 : 2; /* pending + open handle (+ the caller) */
    t->pending = true;
    uv_timer_init(loop->uv, &t->handle);
    t->handle.data = t;
    uv_timer_start(&t->handle, on_timer, ms, repeat);
    bw__member_bind_active(&t->member);
    if (out != NULL)
        *out = t;
    return 0;
}

int bw_timeout(bw_loop *loop, uint64_t ms, bw_timer_cb cb, void *data, bw_timer **out)
{
    return timer_start(loop, ms, 0, cb, data, out);
}

int bw_interval(bw_loop *loop, uint64_t ms, bw_timer_cb cb, void *data, bw_timer **out)
{
    if (ms == 0)
        ms = 1;
    return timer_start(loop, ms, ms, cb, data, out);
}

void bw_timer_clear(bw_timer *t)
{
    if (t == NULL)
        return;
    timer_finish(t);
}

void bw_timer_ref(bw_timer *t)
{
    if (t->pending)
        uv_ref((uv_handle_t *)&t->handle);
}

void bw_timer_unref(bw_timer *t)
{
    if (t->pending)
        uv_unref((uv_handle_t *)&t->handle);
}

bool bw_timer_has_ref(const bw_timer *t)
{
    return t->pending && uv_has_ref((const uv_handle_t *)&t->handle);
}

bool bw_timer_is_pending(const bw_timer *t)
{
    return t->pending;
}

bw_timer *bw_timer_hold(bw_timer *t)
{
    t->holds++;
    return t;
}

void bw_timer_release(bw_timer *t)
{
    timer_release_one(t);
}

bw_member *bw_timer_member(bw_timer *t)
{
    return &t->member;
}

bw_domain *bw_timer_domain(const bw_timer *t)
{
    return t->member.owner;
}
