/*
 * internal.h: what the modules of libbulwark share and users never see.
 *
 * The per-thread state (domain stack, guards, fault record), the layout of
 * a domain member, the domain itself, the unwind records that let library
 * frames clean up when a throw crosses them, and the routing entry points.
 * Never installed.
 */
#ifndef BULWARK_INTERNAL_H
#define BULWARK_INTERNAL_H

#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "bulwark.h"

#define BW__HIDDEN __attribute__((visibility("hidden")))

/* alloc.c: whether bw_malloc is the C library's. Caches of reusable memory
 * are kept only then, so that a custom allocator sees every allocation. */
BW__HIDDEN bool bw__allocator_is_default(void);
/* domain.c: give this thread's cached domain structs back to the allocator. */
BW__HIDDEN void bw__release_caches(void);
#define BW__LIKELY(x) __builtin_expect(!!(x), 1)
#define BW__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define BW__CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

/* ---- Members ----------------------------------------------------------- */

typedef struct bw__member_ops {
    const char *kind;
    /* The owner is being disposed: close what the member stands for. The
     * member has already been unlinked from the owner. May be NULL. */
    void (*dispose)(bw_member *m);
    /* dispose calls user code (a resource's close function): the domain
     * runs it under a guard of its own. */
    bool user_code;
} bw__member_ops;

struct bw_member {
    bw_domain *owner; /* holds a reference on the owner */
    bw_member *prev;  /* in the owner's member list */
    bw_member *next;
    const bw__member_ops *ops;
};

BW__HIDDEN void bw__member_init(bw_member *m, const bw__member_ops *ops);
/* Bind to the active domain, if any (implicit binding). */
BW__HIDDEN void bw__member_bind_active(bw_member *m);
/* Unlink from the owner, if any, and drop the hold on it. */
BW__HIDDEN void bw__member_unbind(bw_member *m);

/* ---- Arena ------------------------------------------------------------- */

typedef struct bw__arena_block bw__arena_block;
typedef struct bw__arena {
    bw__arena_block *head; /* the block being bumped; large blocks follow it */
    size_t total;          /* bytes held, headers included */
} bw__arena;

BW__HIDDEN void *bw__arena_alloc(bw__arena *a, size_t size);
BW__HIDDEN void bw__arena_free_all(bw__arena *a);

/* ---- Domains ----------------------------------------------------------- */

typedef struct bw__handler {
    bw_domain_error_cb cb;
    void *data;
    bool once;
} bw__handler;

typedef struct bw__cleanup {
    struct bw__cleanup *next;
    bw_task_fn fn;
    void *arg;
} bw__cleanup;

#define BW__INLINE_HANDLERS 2

struct bw_domain {
    bw_member as_member; /* when this domain is a member of another */
    uint32_t holds;
    bool disposed;
    uint32_t nhandlers;
    uint32_t caphandlers;
    bw__handler *handlers; /* points at inline_handlers until it grows */
    bw__handler inline_handlers[BW__INLINE_HANDLERS];
    bw_member *first; /* members, in the order added (weak links) */
    bw_member *last;
    size_t member_count;
    bw__arena arena;
    bw__cleanup *cleanups; /* LIFO, allocated from the arena */
    char *name;
    void *data;
};

/* Whether an error that reaches `d` is handled there: it has a handler, or
 * one of its owners up the chain has (a member domain passes what it has no
 * handler for to its owner), or it is disposed (errors reaching a disposed
 * domain are swallowed, D-85). Plain reads: the fault handler calls it. */
static inline bool bw__domain_catches(const bw_domain *d)
{
    if (d->disposed)
        return true;
    for (; d != NULL; d = d->as_member.owner)
        if (d->nhandlers > 0)
            return true;
    return false;
}

/* Call d's handlers in order with `err` (once-handlers are removed first).
 * Not guarded: a throw from a handler propagates to the caller's guard. */
BW__HIDDEN void bw__domain_call_handlers(bw_domain *d, bw_error *err);

/* ---- Errors ------------------------------------------------------------ */

struct bw_error {
    uint32_t holds;
    int code;
    bw_error_origin origin;
    bool origin_set;
    bool pinned; /* the per-thread out-of-memory error: never freed */
    bool is_value;
    bool stack_overflow;
    int signo;
    int si_code;
    void *addr;
    void *value;
    char *path;
    char *syscall;
    bw_domain *domain; /* held */
    bw_tristate thrown;
    bw_emitter *emitter; /* weak */
    bw_domain *member;   /* held: the member domain that passed it on */
    bw_fnptr bound;
    int nframes;
    void *frames[BW_BACKTRACE_MAX];
    size_t message_cap;
    char message[]; /* inline, NUL-terminated */
};

/* Set the origin unless the creator or an earlier route already did. */
BW__HIDDEN void bw__error_default_origin(bw_error *err, bw_error_origin origin);
/* Routing decoration (never applied to value carriers, D-71). */
BW__HIDDEN void bw__error_set_domain(bw_error *err, bw_domain *d);
BW__HIDDEN void bw__error_decorate_emitted(bw_error *err, bw_domain *d, bw_emitter *e);
BW__HIDDEN void bw__error_decorate_bound(bw_error *err, bw_domain *d, bw_fnptr fn);
BW__HIDDEN void bw__error_decorate_passed(bw_error *err, bw_domain *owner, bw_domain *member);
/* bw_error_newv with the backtrace starting at `caller`, a return address
 * into the code that asked for the error (__builtin_return_address(0) of
 * the public entry point). */
BW__HIDDEN bw_error *bw__error_newv_at(void *caller, int code, const char *fmt, va_list ap)
    BW_PRINTF(3, 0);
/* An error with room for a message of `cap` bytes; NULL on ENOMEM. */
BW__HIDDEN bw_error *bw__error_alloc(size_t cap);
/* The function containing an address, from a module's .symtab (symbols.c).
 * addr_rel: relative to the load base; addr_abs: for non-PIE executables.
 * 1 found, 0 not in this file, -1 the file could not be read. */
BW__HIDDEN int bw__elf_symbol(const char *path, uintptr_t addr_rel, uintptr_t addr_abs,
                              char *name, size_t size, uintptr_t *offset);
/* Resolve one frame to "symbol+0xoff (module+0xoff)" into buf. */
BW__HIDDEN void bw__symbolize(void *pc, char *buf, size_t size);
/* The parts of a resolved frame, for the JSON report: `module` NULL when
 * dladdr knows nothing, `name` empty when no symbol contains the address. */
typedef struct bw__frame {
    const char *module;
    uintptr_t module_off;
    char name[256];
    uintptr_t sym_off;
} bw__frame;
BW__HIDDEN void bw__resolve_frame(void *pc, bw__frame *f);

/* ---- Logging (log.c) ---------------------------------------------------- */

/* A JSON writer on a caller's buffer (no heap: it runs after faults).
 * Appends that do not fit below `limit` set `over` and write nothing;
 * strings are cut to fit instead. `cut`: a string was cut or a member
 * left out (the bw__jw_k* functions put a member whole or not at all,
 * and clear `over`). The room between `limit`
 * and `size` is kept for the closing brackets (bw__jw_close). */
typedef struct bw__jw {
    char *buf;
    size_t size, limit, len;
    size_t str_max; /* if not 0: a string takes at most this much, escaped */
    bool over, cut;
} bw__jw;
BW__HIDDEN void bw__jw_raw(bw__jw *w, const char *s);
BW__HIDDEN void bw__jw_str(bw__jw *w, const char *s); /* a string, escaped; NULL: null */
BW__HIDDEN void bw__jw_int(bw__jw *w, long long v);
BW__HIDDEN void bw__jw_hex(bw__jw *w, uintptr_t v); /* "0x1f", quoted */
/* "key": after a comma unless first in its object; false if it did not fit. */
BW__HIDDEN bool bw__jw_key(bw__jw *w, const char *key);
/* A key and its value, or (if they do not fit) neither. */
BW__HIDDEN void bw__jw_kstr(bw__jw *w, const char *key, const char *s);
BW__HIDDEN void bw__jw_kint(bw__jw *w, const char *key, long long v);
BW__HIDDEN void bw__jw_khex(bw__jw *w, const char *key, uintptr_t v);
BW__HIDDEN void bw__jw_kbool(bw__jw *w, const char *key, bool v);
/* A key and an opening bracket; close it with bw__jw_close only if true. */
BW__HIDDEN bool bw__jw_open(bw__jw *w, const char *key, const char *bracket);
BW__HIDDEN void bw__jw_close(bw__jw *w, const char *s); /* into the reserved room */

/* The wall-clock time in RFC 3339, UTC, milliseconds
 * ("2026-12-02T02:33:25.123Z"): BW__LOG_TIME_LEN characters and a NUL. */
#define BW__LOG_TIME_LEN 24
BW__HIDDEN size_t bw__log_time(char *out);

/* The error as a JSON object: message, code and its name, origin, fault
 * details, I/O details, routing, the backtrace as an array of frames. */
BW__HIDDEN void bw__error_json(const bw_error *err, bw__jw *w);

/* The request an error happened in, for a crash report. */
typedef struct bw__log_request {
    const char *method, *target, *route, *peer; /* route: NULL if none */
    const char *id; /* bw_http_request_id, if it was asked for; NULL otherwise */
} bw__log_request;

/* Log an error: through a user's hook, or the default hook in text format,
 * as the message (fmt) followed by ": " and bw_error_format's report; by
 * the default hook in JSON format, as one line with the error and the
 * request as objects. Stack only, like bw_log. */
BW__HIDDEN void bw__log_error(bw_log_level level, const bw_error *err, const bw__log_request *req,
                              const char *fmt, ...) BW_PRINTF(4, 5);
/* A request's fields for bw__log_error, without allocating (the peer is
 * read from the connection, not kept in the request: after a fault the
 * heap is in doubt). http_request.c. */
BW__HIDDEN bw__log_request bw__log_request_of(const bw_http_request *req);
/* The worker id every JSON line of this process carries (-1: none). */
BW__HIDDEN void bw__log_set_worker(int id);

/* ---- Per-thread state, guards and faults ------------------------------- */

enum bw__guard_kind {
    BW__GUARD_BOUNDARY = 0, /* around a callback from the loop: route errors */
    BW__GUARD_TRY = 1,      /* bw_try: hand the error back to the caller */
    BW__GUARD_HANDLER = 2,  /* around an inner domain's handler */
    BW__GUARD_FATAL = 3,    /* around the outermost handler: a throw is fatal */
};

enum bw__jump {
    BW__JUMP_THROW = 1,
    BW__JUMP_FAULT = 2,
};

typedef struct bw__guard {
    sigjmp_buf env;
    struct bw__guard *prev;
    bw_error *thrown;
    size_t unwind_mark;
    size_t stack_base;
    int kind;
} bw__guard;

/* What the signal handler records; written only inside the handler. */
typedef struct bw__fault_record {
    volatile sig_atomic_t pending;
    bool timeout;         /* the callback limit, not a fault signal */
    uint64_t limit_ms;    /* timeout: the limit in force */
    uint64_t ran_ms;      /* timeout: CPU time the callback had run, at least */
    int signo;
    int si_code;
    void *addr;
    void *pc;
    bool stack_overflow;
    int nframes;
    void *frames[BW_BACKTRACE_MAX];
} bw__fault_record;

/* A cleanup that a library frame registers before it calls user code, run
 * by the guard if a throw crosses that frame (C's stand-in for unwinding).
 * The record is copied into the thread's array: its arguments must never
 * point into the crossed frames, whose stack memory the guard reuses. */
typedef void (*bw__unwind_fn)(void *a, void *b);
typedef struct bw__unwind {
    bw__unwind_fn fn;
    void *a;
    void *b;
} bw__unwind;

typedef struct bw__tick bw__tick;

/* The callback limit's per-thread state (watchdog.c). Written by the
 * watchdog's signal handler, which runs on this thread only, and by
 * bw__watchdog_apply with that signal blocked. */
typedef struct bw__watchdog {
    timer_t timer;          /* on this thread's CPU clock */
    bool has_timer;
    uint64_t limit_ms;      /* the limit the timer is armed for (0: off) */
    unsigned forks;         /* bw__watchdog_forks when armed (timers do not survive fork) */
    unsigned long seen_gen; /* the outermost callback seen at the last tick */
    unsigned ticks;         /* ticks it has been seen running */
    uint64_t seen_cpu_ns;   /* this thread's CPU clock when it was first seen */
} bw__watchdog;

typedef struct bw__thread {
    bw__guard *guard; /* innermost armed guard; read by the fault handler */
    /* Outermost guards armed so far: the watchdog sees the same value at
     * two ticks only if one callback ran across both. */
    unsigned long watch_gen;
    bw__fault_record fault;
    bw_domain **stack;
    size_t depth;
    size_t cap;
    bw__unwind *unwind;
    size_t unwind_depth;
    size_t unwind_cap;
    bw__tick *tick_head; /* next-tick queue */
    bw__tick *tick_tail;
    bool draining;
    bw_loop *loop;          /* the loop running on this thread */
    bw_domain *free_domains; /* recycled domain structs (one per request) */
    unsigned nfree_domains;
    bw_error *oom_error;    /* pinned ENOMEM error */
    bw_error *spare_fault;  /* preallocated error for the next fault */
    uintptr_t stack_lo;     /* this thread's stack, for overflow detection */
    uintptr_t stack_hi;
    void *altstack;
    size_t altstack_size;
    bw__watchdog watch;
} bw__thread;

/* The calling thread's state, read by the fault handler: initial-exec so
 * that reading it in a signal handler never allocates. */
extern __thread bw__thread *bw__tls __attribute__((tls_model("initial-exec")));

BW__HIDDEN bw__thread *bw__thread_init(void);
/* In a child after fork: forget the parent's guards, stack and queues
 * (they point into frames the child must never return to). */
BW__HIDDEN void bw__thread_after_fork(void);
static inline bw__thread *bw__thread_get(void)
{
    bw__thread *t = bw__tls;
    return BW__LIKELY(t != NULL) ? t : bw__thread_init();
}

/* Install the process's fault handlers (once) and this thread's alternate
 * signal stack. 0 or -errno. */
BW__HIDDEN int bw__fault_install(bw__thread *t);
/* Unblock the fault signals (and the watchdog's) after a jump out of a
 * handler. */
BW__HIDDEN void bw__fault_unmask(void);
/* Whether an error raised now under guard g would be taken by someone (the
 * fault handler's test; plain memory reads only). */
BW__HIDDEN bool bw__fault_routable(const bw__thread *t, const bw__guard *g);
/* The interrupted program counter in a signal handler's ucontext. */
BW__HIDDEN void *bw__context_pc(void *uctx);

/* ---- The callback limit (watchdog.c) ----------------------------------- */

/* The limit in ms (0: off); lock-free, read by the signal handler. */
extern _Atomic uint64_t bw__callback_limit_ms;
/* Forks seen so far (a pthread_atfork child handler counts them). */
extern atomic_uint bw__watchdog_forks;
/* Once per process, from the fault handlers' installation: record the
 * text ranges of the system's code and bulwark's, install the handler. */
BW__HIDDEN void bw__watchdog_install(sigset_t *fault_set);
/* Arm (or disarm) this thread's timer for the current limit. */
BW__HIDDEN void bw__watchdog_apply(bw__thread *t);
/* Delete this thread's timer (thread exit). */
BW__HIDDEN void bw__watchdog_thread_free(bw__thread *t);
/* Re-arm if the limit changed or the process forked since it was armed. */
static inline void bw__watchdog_sync(bw__thread *t)
{
    if (BW__UNLIKELY(t->watch.limit_ms != atomic_load_explicit(&bw__callback_limit_ms,
                                                               memory_order_relaxed) ||
                     t->watch.forks != atomic_load_explicit(&bw__watchdog_forks,
                                                            memory_order_relaxed)))
        bw__watchdog_apply(t);
}
/* Build the error of the recorded fault (no allocation when a spare exists). */
BW__HIDDEN bw_error *bw__fault_take_error(bw__thread *t);
/* Install a plain handler (or SIG_DFL) for signo and unblock it. */
BW__HIDDEN void bw__signal_set(int signo, void (*handler)(int));
/* End the process by `signo` with its default action (true exit status). */
BW_NORETURN BW__HIDDEN void bw__die_by_signal(int signo);

/* Stack operations (no checks for disposed). Inline: every guarded
 * callback pushes and pops once, and the call overhead dominated the guard's
 * cost (bench/guard). */
BW__HIDDEN int bw__stack_grow(bw__thread *t);
/* The last hold of a domain went: dispose what it owns and free it. */
BW__HIDDEN void bw__domain_last_release(bw_domain *d);

static inline int bw__stack_push(bw__thread *t, bw_domain *d)
{
    if (BW__UNLIKELY(t->depth == t->cap) && bw__stack_grow(t) != 0)
        return -12; /* -ENOMEM */
    d->holds++;
    t->stack[t->depth++] = d;
    return 0;
}

static inline void bw__stack_truncate(bw__thread *t, size_t depth)
{
    while (t->depth > depth) {
        bw_domain *d = t->stack[--t->depth];
        if (--d->holds == 0)
            bw__domain_last_release(d);
    }
}

typedef struct bw__stack_snapshot {
    bw_domain **entries;
    size_t depth;
} bw__stack_snapshot;
BW__HIDDEN int bw__stack_save(bw__thread *t, bw__stack_snapshot *s);
BW__HIDDEN void bw__stack_restore(bw__thread *t, bw__stack_snapshot *s);
BW__HIDDEN void bw__stack_snapshot_free(bw__stack_snapshot *s);

/* Unwind records. push returns false (and runs nothing) on ENOMEM. */
BW__HIDDEN bool bw__unwind_push(bw__thread *t, bw__unwind_fn fn, void *a, void *b);
static inline void bw__unwind_pop(bw__thread *t)
{
    t->unwind_depth--;
}
BW__HIDDEN void bw__unwind_run_to(bw__thread *t, size_t mark);

/* Run fn(arg) as a callback boundary inside d (which may be NULL); errors are
 * routed. Does not drain next ticks (bw_invoke does). */
BW__HIDDEN void bw__boundary(bw__thread *t, bw_domain *d, bw_task_fn fn, void *arg);
/* Drain the next-tick queue if no guard is armed (outermost boundary). */
BW__HIDDEN void bw__drain_ticks(bw__thread *t);

/* `d` has no handler: pass `err` up its owner chain as Node's emit does for
 * a domain that is a member of another (Domain is an EventEmitter), one
 * level at a time: decorate it for the owner (domain = owner, member = the
 * domain passing it on, thrown = false), and pop the adjacent copies of the
 * active domain, so that the owner's handler does not run inside it (D-48).
 * Stops at the first domain with a handler, or where the chain ends.
 * Returns that domain (`d` itself when it has no owner). */
/* bw_domain_new without the status: NULL on ENOMEM (the per-request path). */
BW__HIDDEN bw_domain *bw__domain_alloc(void);
BW__HIDDEN bw_domain *bw__domain_pass_up(bw__thread *t, bw_domain *d, bw_error *err);
/* Node's `d.emit('error', err)` for a domain: its handlers get `err`
 * (consumed, already decorated) with the stack changed as D-48 says (the
 * active domain popped first if `pop_active`, then once per owner passed
 * up to), and the stack is restored when they return; with no handler up
 * the owner chain, `err` is thrown from here with the stack as it then is
 * (D-47, D-62). Returns false (Node's emit result). */
BW__HIDDEN bool bw__domain_emit_error(bw__thread *t, bw_domain *d, bw_error *err, bool pop_active);
/* Pop the active domain and its adjacent copies from the top of the stack. */
BW__HIDDEN void bw__stack_pop_active(bw__thread *t);

/* Route an error that landed at a boundary whose stack base is `base`. */
BW__HIDDEN void bw__route(bw__thread *t, bw_error *err, size_t base);
/* Whether some domain on the stack, or the process level, would take an
 * error now (read by the fault handler: plain memory reads only). */
BW__HIDDEN bool bw__error_would_be_caught(const bw__thread *t);
/* Report an error and end the process (fault: its signal; else `code`). */
BW_NORETURN BW__HIDDEN void bw__fatal(bw_error *err, const char *why, int code);

/* Process-level settings, read by the fault handler. */
extern atomic_int bw__uncaught_count;
extern atomic_bool bw__abort_mode;

/* ---- Loops ------------------------------------------------------------- */

typedef struct bw__immediate_list {
    bw_immediate *head;
    bw_immediate *tail;
} bw__immediate_list;

struct bw_loop {
    uv_loop_t *uv;
    uv_loop_t own_uv;
    bool owns_uv;
    uv_check_t immediate_check;
    uv_idle_t immediate_idle;  /* keeps the poll from blocking while immediates wait */
    uv_idle_t tick_idle;       /* drains next ticks queued outside any callback */
    bw__immediate_list immediates;
    uint64_t immediate_phase; /* check phases begun so far */
    size_t internal_handles;
};

BW__HIDDEN void bw__loop_tick_queued(bw_loop *loop);
BW__HIDDEN bool bw__is_internal_handle(const bw_loop *loop, const uv_handle_t *h);

#endif /* BULWARK_INTERNAL_H */
