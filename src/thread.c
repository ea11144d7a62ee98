/*
 * thread.c: the per-thread state: the domain stack, the unwind records and
 * the preallocated errors that the fault path uses without allocating.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

__thread bw__thread *bw__tls __attribute__((tls_model("initial-exec")));

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

#define BW__STACK_INITIAL 16
#define BW__UNWIND_INITIAL 16
#define BW__FAULT_MESSAGE_CAP 256

static void thread_free(void *arg)
{
    bw__thread *t = arg;
    if (t == NULL)
        return;
    /* Stop using the alternate stack before freeing it. */
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    bw__watchdog_thread_free(t);
    bw__stack_truncate(t, 0);
    bw__release_caches();
    bw_free(t->stack);
    bw_free(t->unwind);
    bw_free(t->oom_error);
    bw_free(t->spare_fault);
    bw_free(t->altstack);
    if (bw__tls == t)
        bw__tls = NULL;
    bw_free(t);
}

static void make_thread_key(void)
{
    pthread_key_create(&thread_key, thread_free);
}

static void read_stack_bounds(bw__thread *t)
{
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        t->stack_lo = (uintptr_t)addr;
        t->stack_hi = (uintptr_t)addr + size;
    }
    pthread_attr_destroy(&attr);
}

static bw_error *make_oom_error(void)
{
    bw_error *err = bw__error_alloc(64);
    if (err == NULL)
        return NULL;
    err->code = -ENOMEM;
    err->pinned = true;
    strcpy(err->message, "ENOMEM: out of memory");
    return err;
}

bw__thread *bw__thread_init(void)
{
    if (bw__tls != NULL)
        return bw__tls;
    pthread_once(&thread_key_once, make_thread_key);
    bw__thread *t = bw_calloc(1, sizeof *t);
    if (t == NULL)
        goto fail;
    t->stack = bw_malloc(BW__STACK_INITIAL * sizeof *t->stack);
    t->unwind = bw_malloc(BW__UNWIND_INITIAL * sizeof *t->unwind);
    t->oom_error = make_oom_error();
    t->spare_fault = bw__error_alloc(BW__FAULT_MESSAGE_CAP);
    if (t->stack == NULL || t->unwind == NULL || t->oom_error == NULL || t->spare_fault == NULL)
        goto fail;
    t->cap = BW__STACK_INITIAL;
    t->unwind_cap = BW__UNWIND_INITIAL;
    read_stack_bounds(t);
    bw__tls = t;
    pthread_setspecific(thread_key, t);
    if (bw__fault_install(t) != 0)
        bw_log(BW_LOG_WARN, "fault handlers could not be installed on this thread");
    bw__watchdog_apply(t);
    return t;
fail:
    /* A thread that cannot get a few hundred bytes at start-up cannot run
     * bulwark at all; say so and stop rather than run unguarded. */
    bw_log(BW_LOG_FATAL, "out of memory while preparing a thread for bulwark");
    abort();
}

void bw__thread_after_fork(void)
{
    bw__thread *t = bw__tls;
    if (t == NULL)
        return;
    /* The entries are the parent's: drop them without touching the domains. */
    t->guard = NULL;
    t->depth = 0;
    t->unwind_depth = 0;
    t->tick_head = NULL;
    t->tick_tail = NULL;
    t->draining = false;
    t->loop = NULL;
    t->fault.pending = 0;
    bw__watchdog_sync(t); /* the parent's timer did not come along */
}

/* ---- The domain stack -------------------------------------------------- */

int bw__stack_grow(bw__thread *t)
{
    size_t cap = t->cap * 2;
    bw_domain **s = bw_realloc(t->stack, cap * sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    t->stack = s;
    t->cap = cap;
    return 0;
}

int bw__stack_save(bw__thread *t, bw__stack_snapshot *s)
{
    s->depth = t->depth;
    s->entries = NULL;
    if (t->depth == 0)
        return 0;
    s->entries = bw_malloc(t->depth * sizeof *s->entries);
    if (s->entries == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->depth; i++) {
        s->entries[i] = t->stack[i];
        bw_domain_hold(s->entries[i]);
    }
    return 0;
}

void bw__stack_restore(bw__thread *t, bw__stack_snapshot *s)
{
    bw__stack_truncate(t, 0);
    for (size_t i = 0; i < s->depth; i++) {
        /* A domain disposed meanwhile stays off the stack: nothing runs
         * inside a disposed domain. The capacity once held this many
         * entries, so push cannot fail. */
        if (!s->entries[i]->disposed)
            bw__stack_push(t, s->entries[i]);
    }
    bw__stack_snapshot_free(s);
}

void bw__stack_snapshot_free(bw__stack_snapshot *s)
{
    for (size_t i = 0; i < s->depth && s->entries != NULL; i++)
        bw_domain_release(s->entries[i]);
    bw_free(s->entries);
    s->entries = NULL;
    s->depth = 0;
}

/* ---- Unwind records ---------------------------------------------------- */

bool bw__unwind_push(bw__thread *t, bw__unwind_fn fn, void *a, void *b)
{
    if (BW__UNLIKELY(t->unwind_depth == t->unwind_cap)) {
        size_t cap = t->unwind_cap * 2;
        bw__unwind *u = bw_realloc(t->unwind, cap * sizeof *u);
        if (u == NULL)
            return false;
        t->unwind = u;
        t->unwind_cap = cap;
    }
    t->unwind[t->unwind_depth++] = (bw__unwind){fn, a, b};
    return true;
}

void bw__unwind_run_to(bw__thread *t, size_t mark)
{
    while (t->unwind_depth > mark) {
        bw__unwind u = t->unwind[--t->unwind_depth];
        u.fn(u.a, u.b);
    }
}
