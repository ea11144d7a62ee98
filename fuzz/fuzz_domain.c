/*
 * fuzz_domain: the domain API driven by a byte program.
 *
 * Each input is a program of small instructions over a few domain slots
 * and emitters: create, release, enter, exit, run, add, remove, handlers
 * (some of which throw), throw, emit `error`, bind, intercept, next tick,
 * dispose. Instructions run in "ticks", each inside its own callback
 * boundary (bw_invoke); a throw ends its tick, as in Node.
 *
 * After every instruction the harness checks its invariants:
 *   - the real domain stack equals a shadow stack the harness keeps by
 *     applying the documented rules (enter pushes, exit pops the topmost
 *     occurrence and what is above it, dispose removes the domain, a throw
 *     clears the stack at its boundary);
 *   - no handler receives the same error twice: every error carries a
 *     serial number and every handler registration (domain handlers, error
 *     listeners, the uncaught handler) records the serials it saw (several
 *     handlers of one domain each get the error, as Node's listeners do);
 *   - nothing is used after it is freed (ASan and LSan, in the fuzzing and
 *     replay builds).
 * The harness never calls an API on a domain it has released, so every
 * finding is the library's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulwark.h"
#include "fuzz_common.h"

#define NSLOTS 6
#define NEMITTERS 3
#define MAX_STACK 64
#define MAX_SERIAL 1024
#define MAX_REG 64 /* handler registrations tracked per input */

typedef struct fuzz_state {
    const uint8_t *prog;
    size_t len;
    size_t pos;
    bool tick_done;
    bw_loop *loop;
    bw_domain *slot[NSLOTS];
    bool disposed[NSLOTS];
    bw_emitter *emitter[NSLOTS];
    bw_domain *shadow[MAX_STACK];
    size_t depth;
    uint8_t seen[MAX_REG][MAX_SERIAL / 8]; /* serials each registration received */
    unsigned next_reg;
    bw_error *ours;                /* our reference to an error lent to the API */
    unsigned next_serial;
} fuzz_state;

static fuzz_state *S;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_domain: at byte %zu:\n", S->pos);
    fuzz_crash(what);
}

static uint8_t next_byte(void)
{
    return S->pos < S->len ? S->prog[S->pos++] : 0;
}

/* ---- The shadow stack ---------------------------------------------------- */

static void shadow_check(void)
{
    if (bw_domain_stack_depth() != S->depth)
        fail("stack depth differs from the shadow");
    for (size_t i = 0; i < S->depth; i++)
        if (bw_domain_stack_at(i) != S->shadow[i])
            fail("stack entry differs from the shadow");
    if (bw_domain_active() != (S->depth ? S->shadow[S->depth - 1] : NULL))
        fail("active domain is not the top of the stack");
}

/* The shadow holds its own reference on each entry, so the harness never
 * looks at a domain the library freed. */
static void shadow_push(bw_domain *d)
{
    S->shadow[S->depth++] = bw_domain_hold(d);
}

static void shadow_truncate(size_t depth)
{
    while (S->depth > depth)
        bw_domain_release(S->shadow[--S->depth]);
}

static void shadow_exit(bw_domain *d)
{
    for (size_t i = S->depth; i > 0; i--) {
        if (S->shadow[i - 1] == d) {
            shadow_truncate(i - 1);
            return;
        }
    }
}

static void shadow_remove_all(bw_domain *d)
{
    size_t w = 0;
    bw_domain_hold(d); /* the releases below must not free it mid-loop */
    for (size_t r = 0; r < S->depth; r++) {
        if (S->shadow[r] != d)
            S->shadow[w++] = S->shadow[r];
        else
            bw_domain_release(d);
    }
    S->depth = w;
    bw_domain_release(d);
}

/* ---- Errors and who receives them ---------------------------------------- */

static bw_error *new_error(void)
{
    /* The serial travels as the error's path: routing leaves it untouched. */
    char tag[16];
    snprintf(tag, sizeof tag, "%u", S->next_serial++ % MAX_SERIAL);
    return bw_error_from_status(-5, "fuzz", tag);
}

/* Whether a domain left on the stack would take an error now. A throw from
 * a handler with nobody below is fatal by design: the harness avoids it. */
static bool someone_below_catches(void)
{
    for (size_t i = bw_domain_stack_depth(); i > 0; i--) {
        bw_domain *d = bw_domain_stack_at(i - 1);
        if (bw_domain_error_handler_count(d) > 0 || bw_domain_is_disposed(d))
            return true;
    }
    return false;
}

/* A registration id travels as the handler's data pointer. */
static void *new_reg(void)
{
    return (void *)(uintptr_t)S->next_reg++; /* the last row is the uncaught handler's */
}

/* Ids never wrap: once they run out, no more handlers are registered. */
static bool regs_left(void)
{
    return S->next_reg < MAX_REG - 1;
}

static void delivered(bw_error *err, void *reg)
{
    const char *tag = bw_error_path(err);
    if (tag == NULL)
        return; /* an error of the library's own (ENOMEM, BW_EUNHANDLED) */
    unsigned serial = (unsigned)atoi(tag) % MAX_SERIAL;
    uint8_t *row = S->seen[(uintptr_t)reg % MAX_REG];
    if (row[serial / 8] & (1u << (serial % 8)))
        fail("a handler received the same error twice");
    row[serial / 8] |= (uint8_t)(1u << (serial % 8));
}

static void on_error_quiet(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    delivered(err, data);
}

static void on_error_rethrow(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    delivered(err, data);
    if (someone_below_catches())
        bw_throw(new_error()); /* goes to the next domain down, never back here */
}

static void on_uncaught(bw_error *err, void *data)
{
    (void)data;
    delivered(err, (void *)(uintptr_t)(MAX_REG - 1)); /* its own row */
}

static void on_listener_error(bw_emitter *e, void *arg, void *data)
{
    (void)e;
    delivered(arg, data);
}

/* ---- bind, intercept, ticks ---------------------------------------------- */

static void *bound_fn(void *ctx, void *arg)
{
    (void)ctx;
    if (arg != NULL)
        bw_throw(new_error());
    return NULL;
}

static void intercepted_fn(void *ctx, void *result)
{
    (void)ctx;
    (void)result;
}

static void tick_task(void *data)
{
    if (data != NULL)
        bw_throw(new_error());
}

static void *run_fn(void *arg)
{
    (void)arg;
    return NULL;
}

/* ---- The instructions ---------------------------------------------------- */

enum {
    OP_TICK_END,
    OP_CREATE,
    OP_RELEASE,
    OP_ENTER,
    OP_EXIT,
    OP_RUN,
    OP_ADD_DOMAIN,
    OP_REMOVE_DOMAIN,
    OP_ON_ERROR,
    OP_OFF_ERROR,
    OP_THROW,
    OP_EMITTER_NEW,
    OP_EMITTER_ADD,
    OP_EMITTER_LISTEN,
    OP_EMIT_ERROR,
    OP_EMITTER_FREE,
    OP_BIND_CALL,
    OP_INTERCEPT,
    OP_NEXT_TICK,
    OP_DISPOSE,
    OP_ALLOC,
    NOPS
};

static int pick_live(void)
{
    int i = next_byte() % NSLOTS;
    return S->slot[i] != NULL ? i : -1;
}

/* One instruction. Returns false at the end of the tick. */
static bool step(void)
{
    uint8_t op = next_byte() % NOPS;
    int i, j;
    switch (op) {
    case OP_TICK_END:
        return false;
    case OP_CREATE:
        i = next_byte() % NSLOTS;
        if (S->slot[i] == NULL) {
            bw_domain_new(&S->slot[i]); /* NULL if out of memory */
            S->disposed[i] = false;
        }
        break;
    case OP_RELEASE:
        if ((i = pick_live()) >= 0) {
            /* The stack holds its own references: releasing ours is safe. */
            bw_domain_release(S->slot[i]);
            S->slot[i] = NULL;
        }
        break;
    case OP_ENTER:
        if ((i = pick_live()) >= 0 && S->depth < MAX_STACK - 1) {
            bw_domain_enter(S->slot[i]);
            if (!S->disposed[i])
                shadow_push(S->slot[i]);
        }
        break;
    case OP_EXIT:
        if ((i = pick_live()) >= 0) {
            bw_domain_exit(S->slot[i]);
            if (!S->disposed[i])
                shadow_exit(S->slot[i]);
        }
        break;
    case OP_RUN:
        if ((i = pick_live()) >= 0)
            bw_domain_run(S->slot[i], run_fn, NULL); /* returns: the stack is as before */
        break;
    case OP_ADD_DOMAIN:
        if ((i = pick_live()) >= 0 && (j = pick_live()) >= 0)
            bw_domain_add(S->slot[i], bw_domain_member(S->slot[j]));
        break;
    case OP_REMOVE_DOMAIN:
        if ((i = pick_live()) >= 0 && (j = pick_live()) >= 0)
            bw_domain_remove(S->slot[i], bw_domain_member(S->slot[j]));
        break;
    case OP_ON_ERROR:
        if ((i = pick_live()) >= 0 && regs_left())
            bw_domain_on_error(S->slot[i], next_byte() & 1 ? on_error_rethrow : on_error_quiet,
                               new_reg());
        break;
    case OP_OFF_ERROR:
        if ((i = pick_live()) >= 0) {
            /* Remove the oldest registrations by trying the ids in order. */
            for (uintptr_t r = 0; r < MAX_REG - 1; r++)
                if (bw_domain_off_error(S->slot[i], on_error_quiet, (void *)r) == 0 ||
                    bw_domain_off_error(S->slot[i], on_error_rethrow, (void *)r) == 0)
                    break;
        }
        break;
    case OP_THROW:
        bw_throw(new_error());
    case OP_EMITTER_NEW:
        i = next_byte() % NEMITTERS;
        if (S->emitter[i] == NULL)
            bw_emitter_new(&S->emitter[i]); /* bound to the active domain */
        break;
    case OP_EMITTER_ADD:
        i = next_byte() % NEMITTERS;
        if (S->emitter[i] != NULL && (j = pick_live()) >= 0)
            bw_domain_add(S->slot[j], bw_emitter_member(S->emitter[i]));
        break;
    case OP_EMITTER_LISTEN:
        i = next_byte() % NEMITTERS;
        if (S->emitter[i] != NULL && regs_left())
            bw_emitter_once(S->emitter[i], BW_EVENT_ERROR, on_listener_error, new_reg());
        break;
    case OP_EMIT_ERROR:
        i = next_byte() % NEMITTERS;
        if (S->emitter[i] != NULL)
            bw_emitter_emit_error(S->emitter[i], new_error());
        /* The owner's handler ran with the stack changed and restored it. */
        break;
    case OP_EMITTER_FREE:
        i = next_byte() % NEMITTERS;
        bw_emitter_free(S->emitter[i]);
        S->emitter[i] = NULL;
        break;
    case OP_BIND_CALL:
        if ((i = pick_live()) >= 0) {
            bw_bound *b;
            if (bw_domain_bind(S->slot[i], bound_fn, NULL, &b) == 0)
                bw_bound_call(bw_bound_once(b), next_byte() & 1 ? (void *)1 : NULL);
        }
        break;
    case OP_INTERCEPT:
        if ((i = pick_live()) >= 0) {
            bw_bound *b;
            bw_domain_intercept(S->slot[i], intercepted_fn, NULL, &b); /* NULL on failure */
            /* Lent, not given: released after the tick even if it is thrown. */
            S->ours = next_byte() & 1 ? new_error() : NULL;
            if (b != NULL)
                bw_bound_callback(S->ours, NULL, bw_bound_once(b));
            bw_error_release(S->ours);
            S->ours = NULL;
        }
        break;
    case OP_NEXT_TICK:
        bw_next_tick(S->loop, tick_task, next_byte() & 1 ? (void *)1 : NULL);
        break;
    case OP_DISPOSE:
        if ((i = pick_live()) >= 0 && !S->disposed[i]) {
            bw_domain_dispose(S->slot[i]);
            S->disposed[i] = true;
            shadow_remove_all(S->slot[i]);
            /* Member domains were disposed with it, including ones whose
             * slot we released: the stack's own hold keeps those alive, so
             * asking each shadow entry is safe. */
            for (int k = 0; k < NSLOTS; k++)
                if (S->slot[k] != NULL && bw_domain_is_disposed(S->slot[k]))
                    S->disposed[k] = true;
            for (size_t e = S->depth; e > 0; e--)
                if (e <= S->depth && bw_domain_is_disposed(S->shadow[e - 1]))
                    shadow_remove_all(S->shadow[e - 1]);
        }
        break;
    case OP_ALLOC:
        if ((i = pick_live()) >= 0)
            bw_domain_alloc(S->slot[i], (size_t)next_byte() * 37);
        break;
    }
    shadow_check();
    return true;
}

static void run_tick(void *arg)
{
    (void)arg;
    shadow_truncate(0); /* a boundary starts with an empty stack */
    shadow_check();
    while (S->pos < S->len && step())
        ;
    S->tick_done = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool installed;
    fuzz_setup_once();
    if (!installed) {
        installed = true;
        bw_on_uncaught(on_uncaught, NULL);
    }
    fuzz_state st;
    memset(&st, 0, sizeof st);
    S = &st;
    st.prog = data;
    st.len = size;
    if (bw_loop_new(&st.loop) != 0)
        return 0;
    while (st.pos < st.len) {
        st.tick_done = false;
        bw_invoke(NULL, run_tick, NULL);
        bw_error_release(st.ours);
        st.ours = NULL;
        /* Routing cleared the stack: the shadow follows (D-56). */
        shadow_truncate(0);
        shadow_check();
        if (!st.tick_done) {
            /* A throw ended the tick: skip to the next tick marker. */
            while (st.pos < st.len && st.prog[st.pos] % NOPS != OP_TICK_END)
                st.pos++;
        }
    }
    bw_loop_run(st.loop, UV_RUN_DEFAULT); /* pending next ticks */
    for (int i = 0; i < NEMITTERS; i++)
        bw_emitter_free(st.emitter[i]);
    for (int i = 0; i < NSLOTS; i++) {
        if (st.slot[i] != NULL) {
            bw_domain_dispose(st.slot[i]);
            bw_domain_release(st.slot[i]);
        }
    }
    if (bw_loop_free(st.loop) != 0)
        fail("the loop did not close cleanly");
    S = NULL;
    return 0;
}
