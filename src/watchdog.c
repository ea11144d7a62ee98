/*
 * watchdog.c: the callback limit (guard.h): a guarded callback that keeps
 * its thread busy past the limit is interrupted and routed like a fault.
 *
 * Nothing is armed per call. Each thread has one POSIX timer on its own CPU
 * clock (CLOCK_THREAD_CPUTIME_ID, signal SIGRTMIN+4 directed at that
 * thread), ticking every limit/4 of CPU time: a thread that sleeps in the
 * loop gets no signal at all. Arming an outermost guard bumps a counter
 * (t->watch_gen, guard.c); the handler compares it with what it saw at the
 * previous tick. The same value, with a guard armed, at 1 + 4 ticks means
 * one callback has run for at least the limit.
 *
 * Then the handler, on the alternate stack, looks at where the thread was
 * interrupted. Jumping out of the C library can leave a lock held (malloc's
 * arena lock, stdio's, the loader's), and jumping out of libuv or bulwark
 * leaves their structures half updated, so the interrupted program counter
 * and the return addresses above it, up to the first frame of bulwark's
 * (the library frame that called the user's code, or a bulwark function the
 * user called, both of which a throw may cross), must all lie outside the
 * text of the modules recorded at start-up: libc, the loader, libuv,
 * libgcc's unwinder, sanitizer runtimes, the module of the malloc in use,
 * the vDSO, and bulwark's own code. If one does not, the timer is re-armed
 * to look again in BW__WATCH_RETRY_NS; otherwise the handler records a
 * timeout into the thread's fault record and jumps to the innermost guard,
 * exactly as the fault handler does (fault.c builds the error after the
 * jump, on the normal stack).
 *
 * bulwark's own code: in libbulwark.so it is that whole module. Linked
 * statically, it shares the program's module with the user's code, so the
 * build renames the text sections of the archive's objects to `bw_text`
 * (CMakeLists.txt), whose bounds the linker provides as __start_bw_text and
 * __stop_bw_text. Without them (another build), only the program counter
 * is checked against the system's modules.
 *
 * Everything the handler does is async-signal-safe but for backtrace(),
 * which the fault handler uses too (warmed up at install time, so it loads
 * nothing), and which runs only once the limit has passed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the signal handler reads the limit lock-free");

#define BW__WATCH_TICKS 4           /* ticks per limit */
#define BW__WATCH_RETRY_NS 2000000L /* look again this soon when the place was unsafe */
#define BW__MAX_RANGES 64

_Atomic uint64_t bw__callback_limit_ms = 1000;
atomic_uint bw__watchdog_forks;

typedef struct text_range {
    uintptr_t lo, hi;
} text_range;

/* Written once, before any timer exists; read by the handler. */
static text_range system_text[BW__MAX_RANGES];
static size_t nsystem;
static text_range own_text[BW__MAX_RANGES];
static size_t nown;
static int watch_signal;
static bool installed;
static atomic_bool set_by_call; /* bw_guard_set_callback_limit wins over the environment */

/* The bounds of bulwark's code in a static build (see above). */
extern const char __start_bw_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_bw_text[] __attribute__((weak, visibility("hidden")));

static bool in_ranges(const text_range *r, size_t n, uintptr_t pc)
{
    for (size_t i = 0; i < n; i++)
        if (pc >= r[i].lo && pc < r[i].hi)
            return true;
    return false;
}

/* ---- Start-up: the text ranges ----------------------------------------- */

static const char *const system_modules[] = {
    "libc.so",    "ld-linux",   "ld64.so",  "libuv.so", "libgcc_s", "libpthread",
    "libdl.so",   "librt.so",   "libasan",  "libubsan", "liblsan",  "libtsan",
    "linux-vdso", "linux-gate", "libbulwark", "vgpreload", /* valgrind's malloc, memcpy... */
};

typedef struct scan {
    uintptr_t own_fn;    /* a function of bulwark's */
    uintptr_t malloc_fn; /* the malloc in use (maybe interposed) */
} scan;

static bool module_holds(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && addr >= lo && addr < lo + ph->p_memsz)
            return true;
    }
    return false;
}

static void add_text(text_range *r, size_t *n, const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum && *n < BW__MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            r[(*n)++] = (text_range){lo, lo + ph->p_memsz};
        }
    }
}

static int record_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const scan *s = data;
    const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
    bool program = name[0] == '\0'; /* the main program: the user's code lives here */
    bool own = module_holds(info, s->own_fn);
    bool system = !program && s->malloc_fn != 0 && module_holds(info, s->malloc_fn);
    for (size_t i = 0; !program && i < sizeof system_modules / sizeof *system_modules; i++)
        if (strstr(name, system_modules[i]) != NULL)
            system = true;
    uintptr_t start = (uintptr_t)__start_bw_text, stop = (uintptr_t)__stop_bw_text;
    if (own && start != 0 && stop > start) {
        if (nown < BW__MAX_RANGES)
            own_text[nown++] = (text_range){start, stop};
    } else if (own && !program) {
        add_text(own_text, &nown, info); /* libbulwark.so: all of it */
    }
    if (system)
        add_text(system_text, &nsystem, info);
    return 0;
}

/* ---- The handler ------------------------------------------------------- */

static void settime(bw__watchdog *w, long first_ns, long period_ns)
{
    struct itimerspec its = {
        .it_value = {first_ns / 1000000000L, first_ns % 1000000000L},
        .it_interval = {period_ns / 1000000000L, period_ns % 1000000000L},
    };
    timer_settime(w->timer, 0, &its, NULL);
}

static long period_of(uint64_t limit_ms)
{
    long p = (long)(limit_ms * 1000000u / BW__WATCH_TICKS);
    return p > 0 ? p : 1;
}

static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether jumping out from here leaves the system's and bulwark's code
 * consistent: the interrupted pc, and every return address above it up to
 * the first of bulwark's frames, lie in the user's code. Fills f->frames. */
static bool safe_to_jump(bw__fault_record *f, uintptr_t pc)
{
    if (in_ranges(system_text, nsystem, pc) || in_ranges(own_text, nown, pc))
        return false;
    f->nframes = backtrace(f->frames, BW_BACKTRACE_MAX);
    if (nown == 0)
        return true; /* bulwark's frames unknown: the pc is all we can check */
    int i = 0;
    while (i < f->nframes && (uintptr_t)f->frames[i] != pc)
        i++;
    if (i == f->nframes)
        return false; /* the unwinder lost the signal frame: nothing can be checked */
    for (i++; i < f->nframes; i++) {
        uintptr_t ret = (uintptr_t)f->frames[i] - 1; /* inside the call instruction */
        if (in_ranges(own_text, nown, ret))
            return true;
        if (in_ranges(system_text, nsystem, ret))
            return false;
    }
    return true;
}

static void on_tick(int signo, siginfo_t *si, void *uctx)
{
    (void)signo;
    (void)si;
    int saved_errno = errno;
    bw__thread *t = bw__tls;
    if (t == NULL || !t->watch.has_timer)
        goto out;
    bw__watchdog *w = &t->watch;
    uint64_t limit = atomic_load_explicit(&bw__callback_limit_ms, memory_order_relaxed);
    if (limit != w->limit_ms) {
        /* Changed from another thread: follow (timer_settime is safe here). */
        w->limit_ms = limit;
        w->ticks = 0;
        settime(w, limit ? period_of(limit) : 0, limit ? period_of(limit) : 0);
        goto out;
    }
    bw__guard *g = t->guard;
    unsigned long gen = t->watch_gen;
    if (g == NULL || gen != w->seen_gen) {
        /* Between callbacks, or a new one since the last tick. */
        w->seen_gen = gen;
        w->ticks = 0;
        w->seen_cpu_ns = cpu_now_ns();
        goto out;
    }
    if (++w->ticks < BW__WATCH_TICKS || t->fault.pending || !bw__fault_routable(t, g))
        goto out;
    bw__fault_record *f = &t->fault;
    uintptr_t pc = (uintptr_t)bw__context_pc(uctx);
    if (!safe_to_jump(f, pc)) {
        settime(w, BW__WATCH_RETRY_NS, period_of(limit));
        goto out;
    }
    uint64_t now = cpu_now_ns();
    f->pending = 1;
    f->timeout = true;
    f->limit_ms = limit;
    f->ran_ms = (now - w->seen_cpu_ns) / 1000000u;
    f->signo = 0;
    f->si_code = 0;
    f->addr = NULL;
    f->pc = (void *)pc;
    f->stack_overflow = false;
    /* A nested guard may catch it and the callback go on: a fresh limit. */
    w->ticks = 0;
    w->seen_cpu_ns = now;
    errno = saved_errno;
    siglongjmp(g->env, BW__JUMP_FAULT);
out:
    errno = saved_errno;
}

static void count_fork(void)
{
    atomic_fetch_add_explicit(&bw__watchdog_forks, 1, memory_order_relaxed);
}

void bw__watchdog_install(sigset_t *fault_set)
{
    const char *env = getenv("BW_CALLBACK_LIMIT_MS");
    if (env != NULL && *env != '\0' && !atomic_load(&set_by_call))
        atomic_store(&bw__callback_limit_ms, strtoull(env, NULL, 10));
    scan s = {(uintptr_t)&bw__watchdog_install, (uintptr_t)dlsym(RTLD_DEFAULT, "malloc")};
    dl_iterate_phdr(record_module, &s);
    watch_signal = SIGRTMIN + 4;
    sigaddset(fault_set, watch_signal);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_tick;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sa.sa_mask = *fault_set;
    if (sigaction(watch_signal, &sa, NULL) != 0 || pthread_atfork(NULL, NULL, count_fork) != 0) {
        bw_log(BW_LOG_WARN, "the callback limit is unavailable: its signal handler could not be "
                            "installed");
        return;
    }
    installed = true;
}

/* ---- Per thread -------------------------------------------------------- */

void bw__watchdog_apply(bw__thread *t)
{
    if (!installed)
        return;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, watch_signal);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    bw__watchdog *w = &t->watch;
    unsigned forks = atomic_load_explicit(&bw__watchdog_forks, memory_order_relaxed);
    if (w->forks != forks)
        w->has_timer = false; /* the parent's: a child has no timers */
    w->forks = forks;
    w->limit_ms = atomic_load_explicit(&bw__callback_limit_ms, memory_order_relaxed);
    w->ticks = 0;
    w->seen_gen = t->watch_gen;
    w->seen_cpu_ns = cpu_now_ns();
    if (w->limit_ms != 0 && !w->has_timer) {
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = watch_signal;
#ifdef sigev_notify_thread_id
        sev.sigev_notify_thread_id = gettid();
#else
        sev._sigev_un._tid = gettid();
#endif
        if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &w->timer) == 0)
            w->has_timer = true;
        else
            bw_log(BW_LOG_WARN, "the callback limit is off on this thread: timer_create: %s",
                   strerror(errno));
    }
    if (w->has_timer) {
        long period = w->limit_ms != 0 ? period_of(w->limit_ms) : 0;
        settime(w, period, period);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void bw__watchdog_thread_free(bw__thread *t)
{
    bw__watchdog *w = &t->watch;
    if (w->has_timer &&
        w->forks == atomic_load_explicit(&bw__watchdog_forks, memory_order_relaxed))
        timer_delete(w->timer);
    w->has_timer = false;
}

/* ---- The public setting ------------------------------------------------ */

void bw_guard_set_callback_limit(uint64_t ms)
{
    atomic_store(&set_by_call, true);
    atomic_store(&bw__callback_limit_ms, ms);
    bw__thread *t = bw__tls;
    if (t != NULL)
        bw__watchdog_apply(t);
}

uint64_t bw_guard_callback_limit(void)
{
    return atomic_load(&bw__callback_limit_ms);
}
