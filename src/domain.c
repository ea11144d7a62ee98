/*
 * domain.c: the domain object: life cycle, error handlers, the stack
 * operations users call, members, and what a domain owns (arena and
 * cleanups).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static void domain_member_dispose(bw_member *m);

static const bw__member_ops domain_member_ops = {"domain", domain_member_dispose, false};

/* ---- Life cycle -------------------------------------------------------- */

/* An HTTP server creates and frees a domain per request: keep a few freed
 * ones per thread instead of going through malloc each time. The free list
 * is linked through the `data` field. */
#define BW__DOMAIN_CACHE 64

bw_domain *bw__domain_alloc(void)
{
    bw__thread *t = bw__thread_get();
    bw_domain *d = t->free_domains;
    if (d != NULL) {
        t->free_domains = (bw_domain *)d->data;
        t->nfree_domains--;
        memset(d, 0, sizeof *d);
    } else {
        d = bw_calloc(1, sizeof *d);
        if (d == NULL)
            return NULL;
    }
    /* Domains are never bound implicitly (D-03): no bind_active here. */
    bw__member_init(&d->as_member, &domain_member_ops);
    d->holds = 1;
    d->handlers = d->inline_handlers;
    d->caphandlers = BW__INLINE_HANDLERS;
    return d;
}

int bw_domain_new(bw_domain **out)
{
    *out = bw__domain_alloc();
    return *out != NULL ? 0 : -ENOMEM;
}

bw_domain *bw_domain_hold(bw_domain *d)
{
    d->holds++;
    return d;
}

/* ---- User code that dispose and the last release call ------------------
 *
 * The close functions of members and the cleanups are user code, and a
 * dispose often runs from library teardown (the end of a response, a libuv
 * close callback) with no guard around it. Each one runs under its own
 * guard (bw_try), so a failing one costs only itself: the others still
 * run, the arena is still freed, and the process carries on.
 *
 * They run outside any domain (domain.h): what they create must not be
 * bound to whichever domain happens to be active at the dispose or the last
 * release. The stack is set aside before the first of them runs, emptied
 * again after each (an enter a callback leaked does not outlive it), and
 * put back at the end.
 *
 * Where a failure goes (docs/DOMAINS.md, "When a cleanup fails"): to the
 * first domain up the owner chain the disposed domain had (its owner, its
 * owner's owner...) that has a handler and is not disposed, decorated as a
 * throw that reached that owner; with none, it is logged through bw_log.
 * Never back into the disposed domain's own handlers (it has none left),
 * never to the process level (by default that would end the process, which
 * is what this containment is for).
 */
typedef struct teardown {
    bw_domain *owner; /* the owner the domain had, for failures */
    bool held;        /* owner held: from the first call into user code on */
    bool aside;       /* the stack is saved in `saved` */
    bw__stack_snapshot saved;
} teardown;

/* Nothing is held yet: a teardown with no user code to run (the common
 * case, a request's domain) costs a few stores. */
static void teardown_begin(teardown *td, bw_domain *owner)
{
    td->owner = owner;
    td->held = false;
    td->aside = false;
}

typedef struct handler_call {
    bw_domain *d;
    bw_error *err;
} handler_call;

static void call_handlers_task(void *arg)
{
    handler_call *c = arg;
    bw__domain_call_handlers(c->d, c->err);
}

static void log_failure(const bw_error *err, const char *what, const char *how)
{
    bw__log_error(BW_LOG_ERROR, err, NULL, "%s failed during a domain's teardown (%s)%s", what, how,
                  err->origin == BW_ORIGIN_FAULT ? "; after a fault the process is in doubt" : "");
}

static bw_teardown_error_cb teardown_error_cb;
static void *teardown_error_data;

void bw_domain_on_teardown_error(bw_teardown_error_cb cb, void *data)
{
    teardown_error_cb = cb;
    teardown_error_data = data;
}

static void call_teardown_error_cb(void *arg)
{
    teardown_error_cb(arg, teardown_error_data);
}

/* A close function or cleanup threw or faulted: route `err` (consumed). */
static void teardown_failed(teardown *td, bw_error *err, const char *what)
{
    bw_domain *p = td->owner;
    while (p != NULL && (p->disposed || p->nhandlers == 0))
        p = p->as_member.owner;
    if (p == NULL) {
        log_failure(err, what, "no owner with a handler took it");
        if (teardown_error_cb != NULL) {
            bw_error *err2 = bw_try(call_teardown_error_cb, err);
            if (err2 != NULL) {
                log_failure(err2, "the teardown error hook", "it threw");
                bw_error_release(err2);
            }
        }
        bw_error_release(err);
        return;
    }
    if (!err->is_value) {
        bw__error_set_domain(err, p);
        err->thrown = BW_YES;
    }
    handler_call c = {p, err};
    bw_error *err2 = bw_try(call_handlers_task, &c);
    if (err2 != NULL) {
        log_failure(err2, "the owner's error handler", "it threw while handling a failed cleanup");
        bw_error_release(err2);
    }
    bw_error_release(err);
}

/* Call fn(arg), user code, under its own guard and outside any domain.
 * Out of line: most teardowns (a request's domain) have no user code, and
 * their path stays short. */
__attribute__((noinline)) static void teardown_call(teardown *td, bw_task_fn fn, void *arg, const char *what)
{
    bw__thread *t = bw__thread_get();
    if (!td->held && td->owner != NULL) {
        /* User code may release the owner: keep it for a failure's sake. */
        bw_domain_hold(td->owner);
        td->held = true;
    }
    if (!td->aside && t->depth > 0 && bw__stack_save(t, &td->saved) == 0) {
        td->aside = true;
        bw__stack_truncate(t, 0);
    }
    size_t base = t->depth;
    bw_error *err = bw_try(fn, arg);
    bw__stack_truncate(t, base);
    if (err != NULL) {
        teardown_failed(td, err, what);
        bw__stack_truncate(t, base);
    }
}

static void teardown_end(teardown *td)
{
    if (td->aside) {
        bw__stack_restore(bw__tls, &td->saved);
        td->aside = false;
    }
    if (td->held)
        bw_domain_release(td->owner);
}

/* Run the cleanups, last registered first, each under its own guard. The
 * list is taken off the domain first: a cleanup that disposes or releases
 * it finds nothing left to run. */
static void run_cleanups(teardown *td, bw_domain *d)
{
    bw__cleanup *c = d->cleanups;
    d->cleanups = NULL;
    while (c != NULL) {
        bw__cleanup *next = c->next; /* in the arena: freed only after all ran */
        teardown_call(td, c->fn, c->arg, "a cleanup (bw_domain_defer)");
        c = next;
    }
}

static void domain_free(bw_domain *d)
{
    if (d->cleanups == NULL) {
        /* Nothing of the user's to run (a disposed domain's cleanups ran
         * already): no teardown to set up. */
        bw__member_unbind(&d->as_member);
    } else {
        teardown td;
        teardown_begin(&td, d->as_member.owner);
        /* A member's link to its owner is weak: a domain that goes while it
         * is a member of another must leave its owner's list (fuzzing). */
        bw__member_unbind(&d->as_member);
        run_cleanups(&td, d);
        teardown_end(&td);
    }
    bw__arena_free_all(&d->arena);
    if (d->handlers != d->inline_handlers)
        bw_free(d->handlers);
    bw_free(d->name);
    bw__thread *t = bw__tls;
    if (t != NULL && t->nfree_domains < BW__DOMAIN_CACHE && bw__allocator_is_default()) {
        d->data = t->free_domains;
        t->free_domains = d;
        t->nfree_domains++;
        return;
    }
    bw_free(d);
}

void bw__release_caches(void)
{
    bw__thread *t = bw__tls;
    while (t != NULL && t->free_domains != NULL) {
        bw_domain *d = t->free_domains;
        t->free_domains = (bw_domain *)d->data;
        t->nfree_domains--;
        bw_free(d);
    }
}

void bw__domain_last_release(bw_domain *d)
{
    /* Nothing holds it, so it has no members, no owner, no stack entry. */
    domain_free(d);
}

void bw_domain_release(bw_domain *d)
{
    if (d == NULL)
        return;
    if (--d->holds > 0)
        return;
    domain_free(d);
}

/* Remove every occurrence of d from the stack, keeping the others in order.
 * (Legacy dispose exits d; with duplicates we drop them all, so nothing can
 * run inside a disposed domain.) */
static void stack_remove_all(bw__thread *t, bw_domain *d)
{
    size_t w = 0;
    size_t removed = 0;
    for (size_t r = 0; r < t->depth; r++) {
        if (t->stack[r] == d)
            removed++;
        else
            t->stack[w++] = t->stack[r];
    }
    t->depth = w;
    while (removed-- > 0)
        bw_domain_release(d);
}

static void member_dispose_task(void *m)
{
    bw_member *member = m;
    member->ops->dispose(member);
}

/*
 * Two phases. First, with no user code running, the domain is marked
 * disposed (nothing can enter it, be added to it or reach its handlers any
 * more), taken off the stack and detached from its owner. Then what it
 * holds is closed: each member is unlinked and closed, a user's close
 * function under its own guard; each cleanup runs under its own guard; the
 * arena is freed. A failing close function or cleanup costs only itself.
 */
int bw_domain_dispose(bw_domain *d)
{
    if (d->disposed)
        return BW_EDISPOSED;
    bw_domain_hold(d); /* members and the stack may hold the last references */
    d->disposed = true;
    d->nhandlers = 0;
    teardown td;
    teardown_begin(&td, d->as_member.owner);
    stack_remove_all(bw__thread_get(), d);
    bw__member_unbind(&d->as_member);
    /* Members stay linked until their turn, so that one whose close frees
     * another member (which then unlinks itself) leaves a consistent list:
     * always take the first. Nothing new can join a disposed domain. */
    while (d->first != NULL) {
        bw_member *m = d->first;
        const bw__member_ops *ops = m->ops;
        bw__member_unbind(m);
        if (ops->dispose == NULL)
            continue;
        if (ops->user_code)
            teardown_call(&td, member_dispose_task, m, "a resource's close function");
        else
            ops->dispose(m);
    }
    if (d->cleanups != NULL)
        run_cleanups(&td, d);
    teardown_end(&td);
    bw__arena_free_all(&d->arena);
    bw_domain_release(d);
    return 0;
}

bool bw_domain_is_disposed(const bw_domain *d)
{
    return d->disposed;
}

static void domain_member_dispose(bw_member *m)
{
    bw_domain *d = BW__CONTAINER_OF(m, bw_domain, as_member);
    bw_domain_dispose(d);
}

int bw_domain_set_name(bw_domain *d, const char *name)
{
    char *copy = NULL;
    if (name != NULL) {
        size_t n = strlen(name) + 1;
        copy = bw_malloc(n);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, name, n);
    }
    bw_free(d->name);
    d->name = copy;
    return 0;
}

const char *bw_domain_name(const bw_domain *d)
{
    return d->name != NULL ? d->name : "";
}

void bw_domain_set_data(bw_domain *d, void *data)
{
    d->data = data;
}

void *bw_domain_data(const bw_domain *d)
{
    return d->data;
}

/* ---- Error handlers ---------------------------------------------------- */

static int add_handler(bw_domain *d, bw_domain_error_cb cb, void *data, bool once)
{
    if (d->nhandlers == d->caphandlers) {
        uint32_t cap = d->caphandlers * 2;
        bw__handler *h = bw_malloc(cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        memcpy(h, d->handlers, d->nhandlers * sizeof *h);
        if (d->handlers != d->inline_handlers)
            bw_free(d->handlers);
        d->handlers = h;
        d->caphandlers = cap;
    }
    d->handlers[d->nhandlers++] = (bw__handler){cb, data, once};
    return 0;
}

int bw_domain_on_error(bw_domain *d, bw_domain_error_cb cb, void *data)
{
    return add_handler(d, cb, data, false);
}

int bw_domain_once_error(bw_domain *d, bw_domain_error_cb cb, void *data)
{
    return add_handler(d, cb, data, true);
}

static void remove_handler_at(bw_domain *d, uint32_t i)
{
    memmove(&d->handlers[i], &d->handlers[i + 1], (d->nhandlers - i - 1) * sizeof *d->handlers);
    d->nhandlers--;
}

int bw_domain_off_error(bw_domain *d, bw_domain_error_cb cb, void *data)
{
    for (uint32_t i = 0; i < d->nhandlers; i++) {
        if (d->handlers[i].cb == cb && d->handlers[i].data == data) {
            remove_handler_at(d, i);
            return 0;
        }
    }
    return -ENOENT;
}

size_t bw_domain_error_handler_count(const bw_domain *d)
{
    return d->nhandlers;
}

/* End of a handler call: `copy` is the heap copy of the handler list when
 * the local buffer was too small (else NULL). */
static void handler_call_end(void *d, void *copy)
{
    bw_free(copy);
    bw_domain_release(d);
}

void bw__domain_call_handlers(bw_domain *d, bw_error *err)
{
    bw__thread *t = bw__thread_get();
    bw__handler local[4];
    uint32_t n = d->nhandlers;
    bw__handler *copy = NULL;
    bw__handler *list = local;
    if (n > 4) {
        copy = bw_malloc(n * sizeof *list);
        if (copy == NULL)
            bw_throw(NULL);
        list = copy;
    }
    bw_domain_hold(d);
    /* Handlers added or removed by a handler take effect from the next
     * error; once-handlers are removed before they are called. */
    memcpy(list, d->handlers, n * sizeof *list);
    for (uint32_t i = d->nhandlers; i > 0; i--)
        if (d->handlers[i - 1].once)
            remove_handler_at(d, i - 1);
    bool unwind = bw__unwind_push(t, handler_call_end, d, copy);
    for (uint32_t i = 0; i < n; i++)
        list[i].cb(d, err, list[i].data);
    if (unwind)
        bw__unwind_pop(t);
    handler_call_end(d, copy);
}

bw_domain *bw__domain_pass_up(bw__thread *t, bw_domain *d, bw_error *err)
{
    while (d->nhandlers == 0) {
        bw_domain *owner = d->as_member.owner;
        if (owner == NULL || owner->disposed)
            break;
        bw__error_decorate_passed(err, owner, d);
        bw__stack_pop_active(t);
        d = owner;
    }
    return d;
}

/* ---- The stack --------------------------------------------------------- */

void bw__stack_pop_active(bw__thread *t)
{
    bw_domain *active = t->depth > 0 ? t->stack[t->depth - 1] : NULL;
    while (t->depth > 0 && t->stack[t->depth - 1] == active)
        bw__stack_truncate(t, t->depth - 1);
}

int bw_domain_enter(bw_domain *d)
{
    if (d->disposed)
        return 0;
    return bw__stack_push(bw__thread_get(), d);
}

void bw_domain_exit(bw_domain *d)
{
    if (d->disposed)
        return;
    bw__thread *t = bw__thread_get();
    for (size_t i = t->depth; i > 0; i--) {
        if (t->stack[i - 1] == d) {
            bw__stack_truncate(t, i - 1);
            return;
        }
    }
}

void *bw_domain_run(bw_domain *d, void *(*fn)(void *arg), void *arg)
{
    if (d->disposed)
        return NULL;
    if (bw_domain_enter(d) != 0)
        bw_throw(NULL);
    void *ret = fn(arg);
    bw_domain_exit(d);
    return ret;
}

bw_domain *bw_domain_active(void)
{
    bw__thread *t = bw__tls;
    return t != NULL && t->depth > 0 ? t->stack[t->depth - 1] : NULL;
}

size_t bw_domain_stack_depth(void)
{
    bw__thread *t = bw__tls;
    return t != NULL ? t->depth : 0;
}

bw_domain *bw_domain_stack_at(size_t index)
{
    bw__thread *t = bw__tls;
    return t != NULL && index < t->depth ? t->stack[index] : NULL;
}

/* ---- Members ----------------------------------------------------------- */

void bw__member_init(bw_member *m, const bw__member_ops *ops)
{
    m->owner = NULL;
    m->prev = NULL;
    m->next = NULL;
    m->ops = ops;
}

static void link_member(bw_domain *d, bw_member *m)
{
    m->owner = bw_domain_hold(d);
    m->prev = d->last;
    m->next = NULL;
    if (d->last != NULL)
        d->last->next = m;
    else
        d->first = m;
    d->last = m;
    d->member_count++;
}

void bw__member_unbind(bw_member *m)
{
    bw_domain *d = m->owner;
    if (d == NULL)
        return;
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        d->first = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    else
        d->last = m->prev;
    d->member_count--;
    m->owner = NULL;
    m->prev = NULL;
    m->next = NULL;
    bw_domain_release(d);
}

void bw__member_bind_active(bw_member *m)
{
    bw_domain *d = bw_domain_active();
    if (d != NULL && !d->disposed)
        link_member(d, m);
}

int bw_domain_add(bw_domain *d, bw_member *m)
{
    if (d->disposed)
        return BW_EDISPOSED;
    if (m->owner == d)
        return 0;
    if (m->owner == NULL && m->ops != &domain_member_ops) {
        link_member(d, m); /* the common case: a fresh object, no cycle possible */
        return 0;
    }
    if (m->ops == &domain_member_ops) {
        /* Refuse cycles: m must not be d, nor own d at any distance (D-34). */
        const bw_domain *child = BW__CONTAINER_OF(m, bw_domain, as_member);
        for (const bw_domain *p = d; p != NULL; p = p->as_member.owner)
            if (p == child)
                return BW_ECYCLE;
    }
    bw__member_unbind(m); /* an object belongs to at most one domain (D-28) */
    link_member(d, m);
    return 0;
}

int bw_domain_remove(bw_domain *d, bw_member *m)
{
    if (m->owner != d)
        return -ENOENT;
    bw__member_unbind(m);
    return 0;
}

size_t bw_domain_member_count(const bw_domain *d)
{
    return d->member_count;
}

bool bw_domain_has_member(const bw_domain *d, const bw_member *m)
{
    return m->owner == d;
}

bw_member *bw_domain_member_at(const bw_domain *d, size_t index)
{
    bw_member *m = d->first;
    while (m != NULL && index-- > 0)
        m = m->next;
    return m;
}

bw_domain *bw_member_owner(const bw_member *m)
{
    return m->owner;
}

bw_member *bw_domain_member(bw_domain *d)
{
    return &d->as_member;
}

/* ---- What a domain owns ------------------------------------------------ */

void *bw_domain_alloc(bw_domain *d, size_t size)
{
    if (d->disposed)
        return NULL;
    return bw__arena_alloc(&d->arena, size);
}

void *bw_domain_calloc(bw_domain *d, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = bw_domain_alloc(d, count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

char *bw_domain_strdup(bw_domain *d, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = bw_domain_alloc(d, n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

size_t bw_domain_arena_size(const bw_domain *d)
{
    return d->arena.total;
}

int bw_domain_defer(bw_domain *d, bw_task_fn fn, void *arg)
{
    if (d->disposed)
        return BW_EDISPOSED;
    bw__cleanup *c = bw__arena_alloc(&d->arena, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = d->cleanups;
    d->cleanups = c;
    return 0;
}
