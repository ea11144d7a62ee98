/*
 * tick.c: the next-tick queue (per thread, drained after the outermost
 * callback) and immediates (per loop, run in the check phase).
 */
#include <errno.h>

#include "internal.h"

struct bw__tick {
    bw__tick *next;
    bw_task_fn fn;
    void *data;
    bw_domain *d; /* held; NULL: no domain */
};

int bw_next_tick(bw_loop *loop, bw_task_fn fn, void *data)
{
    bw__thread *t = bw__thread_get();
    bw__tick *tick = bw_malloc(sizeof *tick);
    if (tick == NULL)
        return -ENOMEM;
    bw_domain *d = bw_domain_active();
    tick->next = NULL;
    tick->fn = fn;
    tick->data = data;
    tick->d = d != NULL ? bw_domain_hold(d) : NULL;
    if (t->tick_tail != NULL)
        t->tick_tail->next = tick;
    else
        t->tick_head = tick;
    t->tick_tail = tick;
    /* Inside a callback the outermost boundary drains the queue when the
     * callback returns; outside, the loop must wake up for it. */
    if (t->guard == NULL && !t->draining)
        bw__loop_tick_queued(loop);
    return 0;
}

void bw__drain_ticks(bw__thread *t)
{
    if (t->draining)
        return;
    t->draining = true;
    while (t->tick_head != NULL) {
        bw__tick *tick = t->tick_head;
        t->tick_head = tick->next;
        if (t->tick_head == NULL)
            t->tick_tail = NULL;
        bw_domain *d = tick->d;
        bw_task_fn fn = tick->fn;
        void *data = tick->data;
        bw_free(tick);
        /* A task whose domain was disposed meanwhile is dropped (D-86). */
        if (d == NULL || !d->disposed)
            bw__boundary(t, d, fn, data);
        if (d != NULL)
            bw_domain_release(d);
    }
    t->draining = false;
}

/* ---- Immediates -------------------------------------------------------- */

struct bw_immediate {
    bw_immediate *prev;
    bw_immediate *next;
    bw_loop *loop;
    bw_task_fn fn;
    void *data;
    bw_domain *d;    /* held */
    uint64_t phase;  /* the loop's check phase count when it was queued */
    uint32_t holds;  /* 1 while queued, plus user holds */
    bool queued;
};

/* The task has run or been cleared: the domain is not needed any longer,
 * even if the caller keeps the handle. */
static void immediate_done(bw_immediate *im)
{
    bw_domain *d = im->d;
    im->d = NULL;
    if (d != NULL)
        bw_domain_release(d);
}

static void immediate_release(bw_immediate *im)
{
    if (--im->holds > 0)
        return;
    immediate_done(im);
    bw_free(im);
}

static void unlink_immediate(bw__immediate_list *list, bw_immediate *im)
{
    if (im->prev != NULL)
        im->prev->next = im->next;
    else
        list->head = im->next;
    if (im->next != NULL)
        im->next->prev = im->prev;
    else
        list->tail = im->prev;
    im->prev = im->next = NULL;
    im->queued = false;
}

static void stop_if_empty(bw_loop *loop)
{
    if (loop->immediates.head == NULL) {
        uv_check_stop(&loop->immediate_check);
        uv_idle_stop(&loop->immediate_idle);
    }
}

static void noop_idle(uv_idle_t *idle)
{
    (void)idle;
}

static void on_check(uv_check_t *check)
{
    bw_loop *loop = check->data;
    bw__thread *t = bw__thread_get();
    t->loop = loop;
    /* Run only what was queued before this phase began: immediates queued
     * by immediates wait for the next loop iteration, as in Node. Told
     * apart by phase number, not by remembering the last one queued: that
     * one may be cleared by an earlier immediate of the same phase. */
    uint64_t phase = loop->immediate_phase++;
    while (loop->immediates.head != NULL && loop->immediates.head->phase <= phase) {
        bw_immediate *im = loop->immediates.head;
        unlink_immediate(&loop->immediates, im);
        if (im->d == NULL || !im->d->disposed)
            bw_invoke(im->d, im->fn, im->data);
        immediate_done(im);
        immediate_release(im);
    }
    stop_if_empty(loop);
}

int bw_set_immediate(bw_loop *loop, bw_task_fn fn, void *data, bw_immediate **out)
{
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || fn == NULL)
        return -EINVAL;
    bw_immediate *im = bw_calloc(1, sizeof *im);
    if (im == NULL)
        return -ENOMEM;
    bw_domain *d = bw_domain_active();
    im->loop = loop;
    im->fn = fn;
    im->data = data;
    im->d = d != NULL ? bw_domain_hold(d) : NULL;
    im->phase = loop->immediate_phase;
    im->holds = out != NULL ? 2 : 1; /* the queue's, and the caller's */
    im->queued = true;
    bw__immediate_list *list = &loop->immediates;
    im->prev = list->tail;
    if (list->tail != NULL)
        list->tail->next = im;
    else
        list->head = im;
    list->tail = im;
    if (!uv_is_active((uv_handle_t *)&loop->immediate_check)) {
        uv_check_start(&loop->immediate_check, on_check);
        /* A ref'd idle handle keeps the loop alive and its poll from
         * blocking while immediates wait. */
        uv_idle_start(&loop->immediate_idle, noop_idle);
    }
    if (out != NULL)
        *out = im;
    return 0;
}

void bw_immediate_clear(bw_immediate *im)
{
    if (!im->queued)
        return;
    bw_loop *loop = im->loop;
    unlink_immediate(&loop->immediates, im);
    stop_if_empty(loop);
    immediate_done(im);
    immediate_release(im);
}

bw_immediate *bw_immediate_hold(bw_immediate *im)
{
    im->holds++;
    return im;
}

void bw_immediate_release(bw_immediate *im)
{
    immediate_release(im);
}
