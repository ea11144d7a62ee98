/*
 * loop.c: the bw_loop: a libuv loop plus the handles bulwark needs for its
 * queues (a check and an idle handle for immediates, an idle handle that
 * drains next ticks queued outside any callback).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void on_tick_idle(uv_idle_t *idle)
{
    bw_loop *loop = idle->data;
    uv_idle_stop(idle);
    bw__thread *t = bw__thread_get();
    t->loop = loop;
    bw__drain_ticks(t);
}

static void env_settings(void)
{
    const char *v = getenv("BW_ABORT_ON_UNCAUGHT");
    if (v != NULL && strcmp(v, "1") == 0)
        bw_set_abort_on_uncaught(true);
}

static int loop_setup(bw_loop *loop)
{
    if (bw__thread_get() == NULL)
        return -ENOMEM;
    static bool env_read;
    if (!env_read) {
        env_read = true;
        env_settings();
    }
    uv_check_init(loop->uv, &loop->immediate_check);
    uv_idle_init(loop->uv, &loop->immediate_idle);
    uv_idle_init(loop->uv, &loop->tick_idle);
    loop->immediate_check.data = loop;
    loop->immediate_idle.data = loop;
    loop->tick_idle.data = loop;
    /* Internal handles never keep the loop alive by themselves. */
    uv_unref((uv_handle_t *)&loop->immediate_check);
    loop->internal_handles = 3;
    return 0;
}

int bw_loop_new(bw_loop **out)
{
    *out = NULL;
    bw_loop *loop = bw_calloc(1, sizeof *loop);
    if (loop == NULL)
        return -ENOMEM;
    int rc = uv_loop_init(&loop->own_uv);
    if (rc != 0) {
        bw_free(loop);
        return rc;
    }
    loop->uv = &loop->own_uv;
    loop->owns_uv = true;
    loop_setup(loop);
    *out = loop;
    return 0;
}

int bw_loop_wrap(uv_loop_t *uv, bw_loop **out)
{
    *out = NULL;
    bw_loop *loop = bw_calloc(1, sizeof *loop);
    if (loop == NULL)
        return -ENOMEM;
    loop->uv = uv;
    loop->owns_uv = false;
    loop_setup(loop);
    *out = loop;
    return 0;
}

uv_loop_t *bw_loop_uv(bw_loop *loop)
{
    return loop->uv;
}

int bw_loop_run(bw_loop *loop, uv_run_mode mode)
{
    bw__thread *t = bw__thread_get();
    bw__watchdog_sync(t);
    bw_loop *previous = t->loop;
    t->loop = loop;
    if (t->guard == NULL && t->tick_head != NULL)
        bw__drain_ticks(t);
    int rc = uv_run(loop->uv, mode);
    t->loop = previous;
    return rc;
}

void bw_loop_stop(bw_loop *loop)
{
    uv_stop(loop->uv);
}

bw_loop *bw_loop_current(void)
{
    bw__thread *t = bw__tls;
    return t != NULL ? t->loop : NULL;
}

bool bw__is_internal_handle(const bw_loop *loop, const uv_handle_t *h)
{
    return h == (const uv_handle_t *)&loop->immediate_check ||
           h == (const uv_handle_t *)&loop->immediate_idle ||
           h == (const uv_handle_t *)&loop->tick_idle;
}

typedef struct busy_walk {
    bw_loop *loop;
    size_t others;
} busy_walk;

static void count_user_handles(uv_handle_t *h, void *arg)
{
    busy_walk *w = arg;
    if (!bw__is_internal_handle(w->loop, h) && !uv_is_closing(h))
        w->others++;
}

int bw_loop_free(bw_loop *loop)
{
    busy_walk w = {loop, 0};
    uv_walk(loop->uv, count_user_handles, &w);
    if (w.others > 0)
        return BW_EBUSY;
    uv_close((uv_handle_t *)&loop->immediate_check, NULL);
    uv_close((uv_handle_t *)&loop->immediate_idle, NULL);
    uv_close((uv_handle_t *)&loop->tick_idle, NULL);
    /* Let the closes (and any close still in flight) complete. */
    uv_run(loop->uv, UV_RUN_DEFAULT);
    if (loop->owns_uv) {
        int rc = uv_loop_close(loop->uv);
        if (rc != 0)
            return rc == UV_EBUSY ? BW_EBUSY : rc;
    }
    bw__thread *t = bw__tls;
    if (t != NULL && t->loop == loop)
        t->loop = NULL;
    bw_free(loop);
    return 0;
}

void bw__loop_tick_queued(bw_loop *loop)
{
    if (!uv_is_active((uv_handle_t *)&loop->tick_idle))
        uv_idle_start(&loop->tick_idle, on_tick_idle);
}
