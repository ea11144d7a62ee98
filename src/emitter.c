/*
 * emitter.c: event emitters, and the routing of their `error` event.
 *
 * Listeners are kept per event name in arrays. An emit calls a copy of the
 * array, so listeners added or removed during an emit take effect from the
 * next one (as Node does). The emitter is held during an emit, so freeing
 * it from one of its own listeners is safe.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

typedef struct listener {
    bw_listener_fn fn;
    void *data;
    bool once;
} listener;

typedef struct event_list {
    char *name;
    listener *v;
    size_t n;
    size_t cap;
} event_list;

struct bw_emitter {
    bw_member member;
    event_list *events;
    size_t nevents;
    size_t capevents;
    void *data;
    uint32_t holds; /* 1 for the user, 1 per emit in progress */
    bool freed;
    bool swallow_errors; /* its domain was disposed (legacy dispose) */
};

static void emitter_member_dispose(bw_member *m);
static const bw__member_ops emitter_member_ops = {"emitter", emitter_member_dispose, false};

int bw_emitter_new(bw_emitter **out)
{
    bw_emitter *e = bw_calloc(1, sizeof *e);
    *out = e;
    if (e == NULL)
        return -ENOMEM;
    bw__member_init(&e->member, &emitter_member_ops);
    e->holds = 1;
    bw__member_bind_active(&e->member);
    return 0;
}

static void emitter_destroy(bw_emitter *e)
{
    for (size_t i = 0; i < e->nevents; i++) {
        bw_free(e->events[i].name);
        bw_free(e->events[i].v);
    }
    bw_free(e->events);
    bw_free(e);
}

static void emitter_release(bw_emitter *e)
{
    if (--e->holds == 0)
        emitter_destroy(e);
}

void bw_emitter_free(bw_emitter *e)
{
    if (e == NULL || e->freed)
        return;
    e->freed = true;
    bw__member_unbind(&e->member);
    bw_emitter_off_all(e, NULL);
    emitter_release(e);
}

static void emitter_member_dispose(bw_member *m)
{
    /* Legacy dispose: drop the listeners and swallow later errors. */
    bw_emitter *e = BW__CONTAINER_OF(m, bw_emitter, member);
    bw_emitter_off_all(e, NULL);
    e->swallow_errors = true;
}

static event_list *find_event(const bw_emitter *e, const char *name)
{
    for (size_t i = 0; i < e->nevents; i++)
        if (strcmp(e->events[i].name, name) == 0)
            return &e->events[i];
    return NULL;
}

static event_list *find_or_add_event(bw_emitter *e, const char *name)
{
    event_list *ev = find_event(e, name);
    if (ev != NULL)
        return ev;
    if (e->nevents == e->capevents) {
        size_t cap = e->capevents ? e->capevents * 2 : 2;
        event_list *v = bw_realloc(e->events, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        e->events = v;
        e->capevents = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = bw_malloc(len);
    if (copy == NULL)
        return NULL;
    memcpy(copy, name, len);
    ev = &e->events[e->nevents++];
    *ev = (event_list){copy, NULL, 0, 0};
    return ev;
}

static int add_listener(bw_emitter *e, const char *name, bw_listener_fn fn, void *data, bool once)
{
    if (e->freed)
        return BW_ESTATE;
    event_list *ev = find_or_add_event(e, name);
    if (ev == NULL)
        return -ENOMEM;
    if (ev->n == ev->cap) {
        size_t cap = ev->cap ? ev->cap * 2 : 2;
        listener *v = bw_realloc(ev->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        ev->v = v;
        ev->cap = cap;
    }
    ev->v[ev->n++] = (listener){fn, data, once};
    return 0;
}

int bw_emitter_on(bw_emitter *e, const char *event, bw_listener_fn fn, void *data)
{
    return add_listener(e, event, fn, data, false);
}

int bw_emitter_once(bw_emitter *e, const char *event, bw_listener_fn fn, void *data)
{
    return add_listener(e, event, fn, data, true);
}

static void remove_at(event_list *ev, size_t i)
{
    memmove(&ev->v[i], &ev->v[i + 1], (ev->n - i - 1) * sizeof *ev->v);
    ev->n--;
}

int bw_emitter_off(bw_emitter *e, const char *name, bw_listener_fn fn, void *data)
{
    event_list *ev = find_event(e, name);
    if (ev == NULL)
        return -ENOENT;
    for (size_t i = 0; i < ev->n; i++) {
        if (ev->v[i].fn == fn && ev->v[i].data == data) {
            remove_at(ev, i);
            return 0;
        }
    }
    return -ENOENT;
}

void bw_emitter_off_all(bw_emitter *e, const char *name)
{
    for (size_t i = 0; i < e->nevents; i++)
        if (name == NULL || strcmp(e->events[i].name, name) == 0)
            e->events[i].n = 0;
}

size_t bw_emitter_listener_count(const bw_emitter *e, const char *name)
{
    const event_list *ev = find_event(e, name);
    return ev != NULL ? ev->n : 0;
}

/* End of an emit, normally or by a throw crossing it. */
static void emit_end(void *emitter, void *copy)
{
    bw_free(copy);
    emitter_release(emitter);
}

/* Call a copy of the listeners of `ev`; once-listeners are removed first. */
static void call_listeners(bw__thread *t, bw_emitter *e, event_list *ev, void *arg)
{
    listener local[8];
    listener *copy = NULL;
    listener *list = local;
    size_t n = ev->n;
    if (n > 8) {
        copy = bw_malloc(n * sizeof *copy);
        if (copy == NULL)
            bw_throw(NULL);
        list = copy;
    }
    memcpy(list, ev->v, n * sizeof *list);
    for (size_t i = ev->n; i > 0; i--)
        if (ev->v[i - 1].once)
            remove_at(ev, i - 1);
    e->holds++;
    bool unwind = bw__unwind_push(t, emit_end, e, copy);
    for (size_t i = 0; i < n; i++)
        list[i].fn(e, arg, list[i].data);
    if (unwind)
        bw__unwind_pop(t);
    emit_end(e, copy);
}

bool bw_emitter_emit(bw_emitter *e, const char *name, void *arg)
{
    if (strcmp(name, BW_EVENT_ERROR) == 0)
        return bw_emitter_emit_error(e, bw_error_hold(arg));
    event_list *ev = find_event(e, name);
    if (ev == NULL || ev->n == 0)
        return false;
    bw__thread *t = bw__thread_get();
    bw_domain *d = e->member.owner;
    if (d != NULL && !d->disposed) {
        /* Listeners run inside the emitter's domain (D-32). A throw skips
         * the exit: routing clears the stack. */
        size_t depth = t->depth;
        if (bw__stack_push(t, d) != 0)
            bw_throw(NULL);
        call_listeners(t, e, ev, arg);
        bw__stack_truncate(t, depth);
    } else {
        call_listeners(t, e, ev, arg);
    }
    return true;
}

/* End of a domain-routed error event. The snapshot is restored only when
 * the handler returns normally: after a throw, the handler-time stack must
 * stay in force for routing (D-62). */
static void routed_error_end(void *err, void *saved)
{
    bw_error_release(err);
    if (saved != NULL) {
        /* saved[0] is the depth, saved[1..] the held domains. */
        uintptr_t *s = saved;
        for (size_t i = 0; i < s[0]; i++)
            bw_domain_release((bw_domain *)s[i + 1]);
        bw_free(s);
    }
}

bool bw_emitter_emit_error(bw_emitter *e, bw_error *err)
{
    bw__thread *t = bw__thread_get();
    if (err == NULL)
        err = bw_error_new(BW_EUNHANDLED, "Unhandled error.");
    event_list *ev = find_event(e, BW_EVENT_ERROR);
    if (ev != NULL && ev->n > 0) {
        /* 1. Listeners get the error untouched (D-44). */
        bool unwind = bw__unwind_push(t, routed_error_end, err, NULL);
        call_listeners(t, e, ev, err);
        if (unwind)
            bw__unwind_pop(t);
        bw_error_release(err);
        return true;
    }
    bw_domain *d = e->member.owner;
    if (e->swallow_errors || (d != NULL && d->disposed)) {
        bw_error_release(err); /* D-85: a disposed domain swallows */
        return false;
    }
    bw__error_default_origin(err, BW_ORIGIN_EMITTER);
    if (d == NULL)
        bw_throw(err); /* 3. No listener, no domain: a throw (D-47). */

    /* 2. The domain's handler, with the adjacent copies of the active domain
     * popped while it runs (D-48), then the stack restored. */
    bw__error_decorate_emitted(err, d, e);
    return bw__domain_emit_error(t, d, err, true);
}

bool bw__domain_emit_error(bw__thread *t, bw_domain *d, bw_error *err, bool pop_active)
{
    size_t depth = t->depth;
    uintptr_t *saved = NULL;
    if (depth > 0) {
        saved = bw_malloc((depth + 1) * sizeof *saved);
        if (saved == NULL) {
            bw_error_release(err);
            bw_throw(NULL);
        }
        saved[0] = depth;
        for (size_t i = 0; i < depth; i++)
            saved[i + 1] = (uintptr_t)bw_domain_hold(t->stack[i]);
    }
    if (pop_active)
        bw__stack_pop_active(t);
    /* A member domain with no handler passes it to its owner (Node: the
     * domain is an emitter whose own domain is its owner). */
    d = bw__domain_pass_up(t, d, err);
    if (d->nhandlers == 0) {
        /* Node: domain.emit('error') with no listener throws, from here,
         * with the stack as it now is. */
        if (saved != NULL)
            routed_error_end(bw_error_hold(err), saved);
        bw_throw(err);
    }
    bool unwind = bw__unwind_push(t, routed_error_end, err, saved);
    bw__domain_call_handlers(d, err);
    if (unwind)
        bw__unwind_pop(t);
    /* Returned normally: restore the stack exactly, less any domain the
     * handler disposed (a common way to end a failed request): nothing runs
     * inside a disposed domain. */
    bw__stack_truncate(t, 0);
    for (size_t i = 0; i < depth; i++)
        if (!((bw_domain *)saved[i + 1])->disposed)
            bw__stack_push(t, (bw_domain *)saved[i + 1]);
    routed_error_end(err, saved);
    return false;
}

bw_member *bw_emitter_member(bw_emitter *e)
{
    return &e->member;
}

bw_domain *bw_emitter_domain(const bw_emitter *e)
{
    return e->member.owner;
}

void bw_emitter_set_data(bw_emitter *e, void *data)
{
    e->data = data;
}

void *bw_emitter_data(const bw_emitter *e)
{
    return e->data;
}
