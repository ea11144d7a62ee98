/*
 * fault.c: turning hardware faults into errors.
 *
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT are caught on a per-thread
 * alternate signal stack (so a stack overflow can be caught too). The
 * handler only reads the thread's state, records the fault into storage
 * prepared in advance, captures the backtrace (backtrace() was warmed up at
 * install time, so it does not load anything) and jumps to the innermost
 * guard. Everything else (building the error, routing, logging) happens
 * after the jump, on the normal stack.
 *
 * The callback limit's handler (watchdog.c) records a timeout into the same
 * record and jumps the same way; bw__fault_take_error builds either error.
 *
 * A fault that nobody would take (no guard, a second fault while the first
 * is recorded, a fault inside the outermost error handler, or no domain and
 * no uncaught handler to receive it) is not caught: the previous action of
 * the signal (normally the default) runs in place, so the exit status and
 * the core dump show the real fault.
 */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NFAULT_SIGNALS (sizeof fault_signals / sizeof fault_signals[0])

static struct sigaction previous[NFAULT_SIGNALS];
static sigset_t fault_set;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_status;

/* Alternate stack: room for the handler and backtrace()'s unwinder. */
#define BW__ALTSTACK_SIZE (64 * 1024)

static int signal_index(int signo)
{
    for (size_t i = 0; i < NFAULT_SIGNALS; i++)
        if (fault_signals[i] == signo)
            return (int)i;
    return -1;
}

/* Give the signal back to whoever had it before us (normally SIG_DFL). */
static void pass_on(int signo, const siginfo_t *si)
{
    int i = signal_index(signo);
    if (i >= 0)
        sigaction(signo, &previous[i], NULL);
    /* A fault raised by the kernel (si_code > 0) happens again when the
     * instruction is re-executed on return, this time with the restored
     * action and the true siginfo. A signal sent by a process (abort(),
     * kill) must be raised again; it stays pending until we return. */
    if (si == NULL || si->si_code <= 0)
        raise(signo);
}

void *bw__context_pc(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (void *)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (void *)uc->uc_mcontext.pc;
#else
    (void)uc;
    return NULL;
#endif
}

static bool is_stack_overflow(const bw__thread *t, int signo, uintptr_t addr)
{
    if (signo != SIGSEGV || t->stack_lo == 0)
        return false;
    /* The guard gap sits just below the lowest usable stack address. */
    return addr < t->stack_lo + 64 * 1024 && addr + 1024 * 1024 >= t->stack_lo;
}

bool bw__fault_routable(const bw__thread *t, const bw__guard *g)
{
    if (g->kind == BW__GUARD_TRY)
        return true; /* the caller of bw_try takes everything */
    if (g->kind == BW__GUARD_FATAL)
        return false; /* the outermost handler faulted: nothing is left */
    return bw__error_would_be_caught(t);
}

static void on_fault(int signo, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    bw__thread *t = bw__tls;
    bw__guard *g = t != NULL ? t->guard : NULL;
    /* Only a real fault is the running callback's: a SIGSEGV sent with
     * kill (si_code <= 0) says nothing about the code that happened to run,
     * and gets its default action. SIGABRT is the exception: abort() and a
     * failed assert() send it to themselves. */
    bool sent = si == NULL || (si->si_code <= 0 && signo != SIGABRT);
    if (g == NULL || sent || t->fault.pending || !bw__fault_routable(t, g)) {
        pass_on(signo, si);
        errno = saved_errno;
        return;
    }
    bw__fault_record *f = &t->fault;
    f->pending = 1;
    f->signo = signo;
    f->si_code = si->si_code;
    f->addr = si->si_addr;
    f->pc = bw__context_pc(uctx);
    f->timeout = false;
    f->stack_overflow = is_stack_overflow(t, signo, (uintptr_t)si->si_addr);
    f->nframes = backtrace(f->frames, BW_BACKTRACE_MAX);
    errno = saved_errno;
    siglongjmp(g->env, BW__JUMP_FAULT);
}

static void install_handlers(void)
{
    /* backtrace() loads the unwinder on its first call: do that now, not
     * inside a signal handler. */
    void *warm[4];
    backtrace(warm, 4);

    sigemptyset(&fault_set);
    for (size_t i = 0; i < NFAULT_SIGNALS; i++)
        sigaddset(&fault_set, fault_signals[i]);
    /* The callback limit's handler jumps like this one: its signal joins
     * the set, blocked while either handler runs, unblocked after a jump. */
    bw__watchdog_install(&fault_set);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    /* Block every fault signal while the handler runs: a fault inside the
     * handler is then forced to its default action by the kernel. */
    sa.sa_mask = fault_set;
    for (size_t i = 0; i < NFAULT_SIGNALS; i++) {
        if (sigaction(fault_signals[i], &sa, &previous[i]) != 0) {
            install_status = -errno;
            return;
        }
    }
}

int bw__fault_install(bw__thread *t)
{
    pthread_once(&install_once, install_handlers);
    if (install_status != 0)
        return install_status;
    if (t->altstack != NULL)
        return 0;
    size_t size = BW__ALTSTACK_SIZE + (size_t)MINSIGSTKSZ;
    void *mem = bw_malloc(size);
    if (mem == NULL)
        return -ENOMEM;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int e = -errno;
        bw_free(mem);
        return e;
    }
    t->altstack = mem;
    t->altstack_size = size;
    return 0;
}

void bw__fault_unmask(void)
{
    pthread_sigmask(SIG_UNBLOCK, &fault_set, NULL);
}

static const char *fault_description(int signo, int code)
{
    switch (signo) {
    case SIGSEGV:
        return code == SEGV_ACCERR ? "invalid permissions for mapped memory"
                                   : "invalid memory reference";
    case SIGBUS:
        return code == BUS_ADRALN ? "misaligned address" : "bus error (nonexistent address)";
    case SIGFPE:
        return code == FPE_INTDIV   ? "integer division by zero"
               : code == FPE_INTOVF ? "integer overflow"
                                    : "arithmetic exception";
    case SIGILL:
        return "illegal instruction";
    case SIGABRT:
        return "abort() called (a failed assert() calls it too)";
    default:
        return "fault";
    }
}

bw_error *bw__fault_take_error(bw__thread *t)
{
    bw__fault_record *f = &t->fault;
    bw_error *err = t->spare_fault;
    t->spare_fault = NULL;
    if (err == NULL)
        err = bw__error_alloc(256);
    if (err == NULL) {
        err = t->oom_error;
        err->holds++;
        f->pending = 0;
        return err;
    }
    err->origin_set = true;
    if (f->timeout) {
        err->origin = BW_ORIGIN_TIMEOUT;
        err->code = BW_ETIMEOUT;
        snprintf(err->message, err->message_cap,
                 "callback limit: a callback ran for more than %llu ms of CPU time without "
                 "returning (the limit is %llu ms); interrupted",
                 (unsigned long long)f->ran_ms, (unsigned long long)f->limit_ms);
    } else {
        err->origin = BW_ORIGIN_FAULT;
        err->signo = f->signo;
        err->si_code = f->si_code;
        err->addr = f->addr;
        err->stack_overflow = f->stack_overflow;
        err->code = f->stack_overflow ? BW_ESTACKOVERFLOW : BW_EFAULTSIG;
        snprintf(err->message, err->message_cap, "SIG%s: %s at address %p%s",
                 sigabbrev_np(f->signo), fault_description(f->signo, f->si_code), f->addr,
                 f->stack_overflow ? " (stack overflow)" : "");
    }
    /* Start the backtrace at the faulting instruction, dropping the
     * handler's own frames and the signal trampoline. */
    int start = 0;
    for (int i = 0; i < f->nframes; i++) {
        if (f->frames[i] == f->pc) {
            start = i;
            break;
        }
    }
    err->nframes = 0;
    if (start == 0 && f->pc != NULL)
        err->frames[err->nframes++] = f->pc;
    for (int i = start; i < f->nframes && err->nframes < BW_BACKTRACE_MAX; i++)
        err->frames[err->nframes++] = f->frames[i];
    f->pending = 0;
    return err;
}

void bw__signal_set(int signo, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void bw__die_by_signal(int signo)
{
    bw__signal_set(signo, SIG_DFL);
    raise(signo);
    /* Only reached if the signal's default action does not end a process. */
    _exit(128 + signo);
}
