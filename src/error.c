/*
 * error.c: the error value: creation, reference counting, fields, the
 * routing decoration and the readable report.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BW__MESSAGE_MIN 64

bw_error *bw__error_alloc(size_t cap)
{
    if (cap < BW__MESSAGE_MIN)
        cap = BW__MESSAGE_MIN;
    bw_error *err = bw_malloc(sizeof *err + cap);
    if (err == NULL)
        return NULL;
    memset(err, 0, sizeof *err);
    err->holds = 1;
    err->origin = BW_ORIGIN_THROWN;
    err->thrown = BW_UNSET;
    err->message_cap = cap;
    err->message[0] = '\0';
    return err;
}

/* The thread's pinned out-of-memory error, with a new hold. */
static bw_error *oom_error(void)
{
    bw__thread *t = bw__thread_get();
    if (t == NULL || t->oom_error == NULL)
        abort(); /* cannot even report: nothing else is possible */
    t->oom_error->holds++;
    return t->oom_error;
}

/*
 * Capture the backtrace from `caller` outward. `caller` is the return
 * address into the code that asked for the error (each public entry point
 * passes its own __builtin_return_address(0)), so the library's frames are
 * dropped exactly, however the compiler inlined or tail-called them; a
 * fixed skip count would drop the user's frame instead (bw_error_newv
 * called directly) or keep the library's (bw_error_new).
 */
static void capture_backtrace(bw_error *err, void *caller)
{
    void *frames[BW_BACKTRACE_MAX + 8];
    int n = backtrace(frames, BW_BACKTRACE_MAX + 8);
    int start = 0;
    for (int i = 0; i < n; i++) {
        if (frames[i] == caller) {
            start = i;
            break;
        }
    }
    int count = n - start < BW_BACKTRACE_MAX ? n - start : BW_BACKTRACE_MAX;
    err->nframes = count;
    memcpy(err->frames, frames + start, (size_t)count * sizeof(void *));
}

bw_error *bw__error_newv_at(void *caller, int code, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int len = fmt != NULL ? vsnprintf(NULL, 0, fmt, ap2) : 0;
    va_end(ap2);
    if (len < 0)
        len = 0;
    bw_error *err = bw__error_alloc((size_t)len + 1);
    if (err == NULL)
        return oom_error();
    err->code = code;
    if (fmt != NULL)
        vsnprintf(err->message, err->message_cap, fmt, ap);
    capture_backtrace(err, caller);
    return err;
}

static bw_error *error_new_at(void *caller, int code, const char *fmt, ...) BW_PRINTF(3, 4);
static bw_error *error_new_at(void *caller, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bw_error *err = bw__error_newv_at(caller, code, fmt, ap);
    va_end(ap);
    return err;
}

bw_error *bw_error_newv(int code, const char *fmt, va_list ap)
{
    return bw__error_newv_at(__builtin_return_address(0), code, fmt, ap);
}

bw_error *bw_error_new(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bw_error *err = bw__error_newv_at(__builtin_return_address(0), code, fmt, ap);
    va_end(ap);
    return err;
}

static char *dup_string(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = bw_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

bw_error *bw_error_from_status(int status, const char *syscall, const char *path)
{
    void *caller = __builtin_return_address(0);
    bw_error *err;
    if (syscall != NULL && path != NULL)
        err = error_new_at(caller, status, "%s: %s, %s '%s'", bw_err_name(status),
                           bw_strerror(status), syscall, path);
    else if (syscall != NULL)
        err = error_new_at(caller, status, "%s: %s, %s", bw_err_name(status), bw_strerror(status),
                           syscall);
    else
        err = error_new_at(caller, status, "%s: %s", bw_err_name(status), bw_strerror(status));
    if (err->pinned)
        return err;
    err->origin = BW_ORIGIN_CALLBACK;
    err->origin_set = true;
    err->syscall = dup_string(syscall);
    err->path = dup_string(path);
    return err;
}

bw_error *bw_error_hold(bw_error *err)
{
    if (err != NULL)
        err->holds++;
    return err;
}

void bw_error_release(bw_error *err)
{
    if (err == NULL || --err->holds > 0)
        return;
    if (err->pinned) {
        /* The pinned OOM error is reused: keep it alive, forget routing. */
        err->holds = 1;
        if (err->domain != NULL)
            bw_domain_release(err->domain);
        err->domain = NULL;
        err->thrown = BW_UNSET;
        err->emitter = NULL;
        err->bound = NULL;
        if (err->member != NULL)
            bw_domain_release(err->member);
        err->member = NULL;
        return;
    }
    if (err->domain != NULL)
        bw_domain_release(err->domain);
    if (err->member != NULL)
        bw_domain_release(err->member);
    bw_free(err->path);
    bw_free(err->syscall);
    bw_free(err);
}

int bw_error_code(const bw_error *err)
{
    return err->code;
}

const char *bw_error_message(const bw_error *err)
{
    return err->message;
}

bw_error_origin bw_error_origin_of(const bw_error *err)
{
    return err->origin;
}

const char *bw_error_origin_name(bw_error_origin origin)
{
    switch (origin) {
    case BW_ORIGIN_THROWN:
        return "thrown";
    case BW_ORIGIN_FAULT:
        return "fault";
    case BW_ORIGIN_EMITTER:
        return "emitter";
    case BW_ORIGIN_CALLBACK:
        return "callback";
    case BW_ORIGIN_TIMEOUT:
        return "timeout";
    }
    return "?";
}

void bw_error_set_origin(bw_error *err, bw_error_origin origin)
{
    if (err->pinned)
        return; /* the shared out-of-memory error: one caller's origin is not another's */
    err->origin = origin;
    err->origin_set = true;
}

void bw__error_default_origin(bw_error *err, bw_error_origin origin)
{
    if (!err->origin_set && !err->pinned) {
        err->origin = origin;
        err->origin_set = true;
    }
}

const char *bw_error_path(const bw_error *err)
{
    return err->path;
}

const char *bw_error_syscall(const bw_error *err)
{
    return err->syscall;
}

int bw_error_signal(const bw_error *err)
{
    return err->signo;
}

int bw_error_si_code(const bw_error *err)
{
    return err->si_code;
}

void *bw_error_fault_address(const bw_error *err)
{
    return err->addr;
}

bool bw_error_is_stack_overflow(const bw_error *err)
{
    return err->stack_overflow;
}

size_t bw_error_backtrace(const bw_error *err, void *const **frames)
{
    if (frames != NULL)
        *frames = err->frames;
    return (size_t)err->nframes;
}

bw_domain *bw_error_domain(const bw_error *err)
{
    return err->domain;
}

bw_tristate bw_error_domain_thrown(const bw_error *err)
{
    return err->thrown;
}

bw_emitter *bw_error_domain_emitter(const bw_error *err)
{
    return err->emitter;
}

bw_fnptr bw_error_domain_bound(const bw_error *err)
{
    return err->bound;
}

bw_domain *bw_error_domain_member(const bw_error *err)
{
    return err->member;
}

bool bw_error_is_value(const bw_error *err)
{
    return err->is_value;
}

void *bw_error_value(const bw_error *err)
{
    return err->value;
}

/* ---- Decoration ------------------------------------------------------- */

void bw__error_set_domain(bw_error *err, bw_domain *d)
{
    if (err->is_value || err->domain == d)
        return;
    if (d != NULL)
        bw_domain_hold(d);
    if (err->domain != NULL)
        bw_domain_release(err->domain);
    err->domain = d;
}

void bw__error_decorate_emitted(bw_error *err, bw_domain *d, bw_emitter *e)
{
    if (err->is_value)
        return;
    bw__error_set_domain(err, d);
    err->emitter = e;
    err->thrown = BW_NO;
}

void bw__error_decorate_bound(bw_error *err, bw_domain *d, bw_fnptr fn)
{
    if (err->is_value)
        return;
    bw__error_set_domain(err, d);
    err->bound = fn;
    err->thrown = BW_NO;
}

void bw__error_decorate_passed(bw_error *err, bw_domain *owner, bw_domain *member)
{
    if (err->is_value)
        return;
    bw__error_set_domain(err, owner);
    if (err->member != member) {
        bw_domain_hold(member);
        if (err->member != NULL)
            bw_domain_release(err->member);
        err->member = member;
    }
    err->thrown = BW_NO;
}

/* ---- The report ------------------------------------------------------- */

void bw__resolve_frame(void *pc, bw__frame *f)
{
    memset(f, 0, sizeof *f);
    Dl_info info;
    if (dladdr(pc, &info) == 0 || info.dli_fname == NULL)
        return;
    f->module = info.dli_fname;
    f->module_off = (uintptr_t)pc - (uintptr_t)info.dli_fbase;
    /* Static functions are only in the module's own symbol table. A return
     * address may point just past its function: look up the byte before.
     * The main program's path as loaded may be relative (and wrong after a
     * chdir): /proc/self/exe stands in, but only when the file could not be
     * read at all, never for another module's missing symbol. */
    int found = bw__elf_symbol(info.dli_fname, f->module_off - 1, (uintptr_t)pc - 1, f->name,
                               sizeof f->name, &f->sym_off);
    if (found < 0 && info.dli_fname[0] != '/')
        found = bw__elf_symbol("/proc/self/exe", f->module_off - 1, (uintptr_t)pc - 1, f->name,
                               sizeof f->name, &f->sym_off);
    if (found > 0) {
        f->sym_off += 1;
    } else if (info.dli_sname != NULL) {
        snprintf(f->name, sizeof f->name, "%s", info.dli_sname);
        f->sym_off = (uintptr_t)pc - (uintptr_t)info.dli_saddr;
    } else {
        f->name[0] = '\0';
        f->sym_off = 0;
    }
}

void bw__symbolize(void *pc, char *buf, size_t size)
{
    bw__frame f;
    bw__resolve_frame(pc, &f);
    if (f.module == NULL)
        snprintf(buf, size, "%p", pc);
    else if (f.name[0] != '\0')
        snprintf(buf, size, "%p in %s+0x%zx (%s+0x%zx)", pc, f.name, (size_t)f.sym_off, f.module,
                 (size_t)f.module_off);
    else
        snprintf(buf, size, "%p in ?? (%s+0x%zx)", pc, f.module, (size_t)f.module_off);
}

typedef struct report {
    char *buf;
    size_t size;
    size_t len;
} report;

static void put(report *r, const char *fmt, ...) BW_PRINTF(2, 3);
static void put(report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = r->len < r->size ? r->buf + r->len : NULL;
    size_t room = r->len < r->size ? r->size - r->len : 0;
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len += (size_t)n;
}

static const char *signal_name(int signo)
{
    switch (signo) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    default:
        return "signal";
    }
}

static const char *si_code_name(int signo, int code)
{
    if (code <= 0)
        return code == SI_USER ? "SI_USER" : code == SI_TKILL ? "SI_TKILL" : "SI_QUEUE/other";
    switch (signo) {
    case SIGSEGV:
        return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "?";
    case SIGBUS:
        return code == BUS_ADRALN   ? "BUS_ADRALN"
               : code == BUS_ADRERR ? "BUS_ADRERR"
               : code == BUS_OBJERR ? "BUS_OBJERR"
                                    : "?";
    case SIGFPE:
        return code == FPE_INTDIV ? "FPE_INTDIV" : code == FPE_INTOVF ? "FPE_INTOVF" : "FPE_*";
    case SIGILL:
        return code == ILL_ILLOPN ? "ILL_ILLOPN" : code == ILL_ILLOPC ? "ILL_ILLOPC" : "ILL_*";
    default:
        return "?";
    }
}

size_t bw_error_format(const bw_error *err, char *buf, size_t size)
{
    report r = {buf, size, 0};
    if (size > 0)
        buf[0] = '\0';
    if (err->is_value)
        put(&r, "thrown value %p (not an error)\n", err->value);
    else
        put(&r, "%s: %s\n", bw_err_name(err->code), err->message);
    put(&r, "  origin: %s\n", bw_error_origin_name(err->origin));
    if (err->origin == BW_ORIGIN_FAULT) {
        put(&r, "  signal: %s (%d), code %s (%d), address %p%s\n", signal_name(err->signo),
            err->signo, si_code_name(err->signo, err->si_code), err->si_code, err->addr,
            err->stack_overflow ? ", stack overflow" : "");
    }
    if (err->syscall != NULL || err->path != NULL)
        put(&r, "  syscall: %s, path: %s\n", err->syscall ? err->syscall : "-",
            err->path ? err->path : "-");
    if (err->domain != NULL || err->thrown != BW_UNSET)
        put(&r, "  domain: %p%s%s%s, thrown: %s%s%s\n", (void *)err->domain,
            err->domain && bw_domain_name(err->domain)[0] ? " (" : "",
            err->domain ? bw_domain_name(err->domain) : "",
            err->domain && bw_domain_name(err->domain)[0] ? ")" : "",
            err->thrown == BW_UNSET ? "unset"
            : err->thrown == BW_YES ? "yes"
                                    : "no",
            err->emitter ? ", from an emitter" : "", err->bound ? ", from a bound callback" : "");
    if (err->nframes > 0) {
        put(&r, "  backtrace:\n");
        for (int i = 0; i < err->nframes; i++) {
            char frame[512];
            bw__symbolize(err->frames[i], frame, sizeof frame);
            put(&r, "    #%d %s\n", i, frame);
        }
    }
    /* Every line ends with a newline; a report is one block of lines, so
     * drop the last one. Decide by length, not by looking at buf: when the
     * buffer is exactly one byte short, that newline was cut already and
     * the report still fits (snprintf semantics: return what it needs). */
    if (r.len > 0) {
        r.len--;
        if (r.len < size)
            buf[r.len] = '\0';
    }
    return r.len;
}

/* The report as the members of a JSON object (log.h describes them). */
void bw__error_json(const bw_error *err, bw__jw *w)
{
    if (err->is_value) {
        bw__jw_kstr(w, "message", "thrown value (not an error)");
        bw__jw_khex(w, "value", (uintptr_t)err->value);
    } else {
        bw__jw_kstr(w, "message", err->message);
    }
    bw__jw_kint(w, "code", err->code);
    bw__jw_kstr(w, "code_name", bw_err_name(err->code));
    bw__jw_kstr(w, "origin", bw_error_origin_name(err->origin));
    if (err->origin == BW_ORIGIN_FAULT) {
        bw__jw_kstr(w, "signal", signal_name(err->signo));
        bw__jw_kint(w, "signo", err->signo);
        bw__jw_kstr(w, "si_code", si_code_name(err->signo, err->si_code));
        bw__jw_khex(w, "address", (uintptr_t)err->addr);
        bw__jw_kbool(w, "stack_overflow", err->stack_overflow);
    }
    if (err->syscall != NULL)
        bw__jw_kstr(w, "syscall", err->syscall);
    if (err->path != NULL)
        bw__jw_kstr(w, "path", err->path);
    if (err->domain != NULL)
        bw__jw_kstr(w, "domain", bw_domain_name(err->domain));
    if (err->thrown != BW_UNSET)
        bw__jw_kstr(w, "thrown", err->thrown == BW_YES ? "yes" : "no");
    if (!bw__jw_open(w, "backtrace", "["))
        return;
    bool truncated = false, cut_before = w->cut;
    for (int i = 0; i < err->nframes; i++) {
        /* A frame goes in whole or not at all: it must not take the room
         * of the brackets that close the line. */
        size_t mark = w->len;
        w->cut = false;
        bw__frame f;
        bw__resolve_frame(err->frames[i], &f);
        if (w->buf[w->len - 1] != '[')
            bw__jw_raw(w, ",");
        bw__jw_raw(w, "{");
        if (!w->over) {
            bw__jw_khex(w, "pc", (uintptr_t)err->frames[i]);
            if (f.name[0] != '\0') {
                bw__jw_kstr(w, "function", f.name);
                bw__jw_khex(w, "offset", f.sym_off);
            }
            if (f.module != NULL) {
                bw__jw_kstr(w, "module", f.module);
                bw__jw_khex(w, "module_offset", f.module_off);
            }
            bw__jw_raw(w, "}");
        }
        if (w->over || w->cut) {
            w->len = mark;
            w->over = false;
            truncated = true;
            break;
        }
    }
    w->cut = cut_before || truncated;
    bw__jw_close(w, "]");
    if (truncated)
        bw__jw_kbool(w, "backtrace_truncated", true);
}
