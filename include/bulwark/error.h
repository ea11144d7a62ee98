/*
 * error.h: the error value that travels to domains.
 *
 * A bw_error is what a domain's error handler receives: an explicit throw,
 * an `error` event nobody listened to, an error handed to an intercepted
 * callback, a time limit, or a hardware fault (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT, stack overflow) caught in a guarded callback.
 *
 * It carries a code (a status of status.h), a message, its origin, the
 * fault details, a backtrace captured where it happened, optional I/O
 * details (path, syscall), and the routing fields that Node puts on errors:
 * the domain that handled it and whether it was thrown, emitted or passed
 * to a bound callback.
 *
 * Errors are reference-counted. Functions that create one return a
 * reference the caller owns. Functions that route an error (bw_throw,
 * bw_emitter_emit_error) consume the caller's reference; a bw_callback
 * (bw_bound_callback among them) only borrows it.
 * A handler receives a borrowed reference valid during the call; it takes
 * bw_error_hold() to keep the error longer.
 */
#ifndef BULWARK_ERROR_H
#define BULWARK_ERROR_H

#include "common.h" /* first: the feature macros uv.h needs */
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where an error came from. */
typedef enum bw_error_origin {
    BW_ORIGIN_THROWN = 0,   /* bw_throw() and friends */
    BW_ORIGIN_FAULT = 1,    /* a fault signal caught by a guard */
    BW_ORIGIN_EMITTER = 2,  /* an `error` event with no listener */
    BW_ORIGIN_CALLBACK = 3, /* an error given to a callback (bw_callback's err) */
    BW_ORIGIN_TIMEOUT = 4,  /* a time limit (request timeout, hang) */
} bw_error_origin;

/* A three-state flag: the routing fields distinguish "never set" from
 * "false" (Node's domainThrown is undefined, false or true). */
typedef enum bw_tristate {
    BW_UNSET = -1,
    BW_NO = 0,
    BW_YES = 1,
} bw_tristate;

/* A generic function pointer, for the `domain_bound` field. */
typedef void (*bw_fnptr)(void);

/* Most frames a backtrace keeps. */
#define BW_BACKTRACE_MAX 48

/*
 * Create an error with a code and a printf-style message. The backtrace is
 * captured here. Never returns NULL: if memory is exhausted it returns the
 * calling thread's preallocated out-of-memory error (code -ENOMEM), whose
 * hold/release are counted like any other.
 */
BW_EXTERN bw_error *bw_error_new(int code, const char *fmt, ...) BW_PRINTF(2, 3);
BW_EXTERN bw_error *bw_error_newv(int code, const char *fmt, va_list ap) BW_PRINTF(2, 0);

/*
 * Create the error of a failed system call: code `status` (a -errno or UV_E*
 * value), message "<strerror>, <syscall> '<path>'" as Node prints it
 * ("ENOENT: no such file or directory, open 'x'"), origin CALLBACK.
 * `syscall` and `path` may be NULL.
 */
BW_EXTERN bw_error *bw_error_from_status(int status, const char *syscall, const char *path);

/* Reference counting. bw_error_hold returns its argument. */
BW_EXTERN bw_error *bw_error_hold(bw_error *err);
BW_EXTERN void bw_error_release(bw_error *err);

/* The fields. Strings are owned by the error. */
BW_EXTERN int bw_error_code(const bw_error *err);
BW_EXTERN const char *bw_error_message(const bw_error *err);
BW_EXTERN bw_error_origin bw_error_origin_of(const bw_error *err);
BW_EXTERN const char *bw_error_origin_name(bw_error_origin origin);
BW_EXTERN const char *bw_error_path(const bw_error *err);    /* NULL if none */
BW_EXTERN const char *bw_error_syscall(const bw_error *err); /* NULL if none */
/* Set the origin. Ignored on the shared out-of-memory error (the one
 * returned when an error cannot be allocated): it is handed to every
 * caller, so one caller's origin must not become another's. */
BW_EXTERN void bw_error_set_origin(bw_error *err, bw_error_origin origin);

/* Fault details; 0 / NULL unless the origin is BW_ORIGIN_FAULT. */
BW_EXTERN int bw_error_signal(const bw_error *err);
BW_EXTERN int bw_error_si_code(const bw_error *err);
BW_EXTERN void *bw_error_fault_address(const bw_error *err);
BW_EXTERN bool bw_error_is_stack_overflow(const bw_error *err);

/* The backtrace captured where the error happened (innermost first). */
BW_EXTERN size_t bw_error_backtrace(const bw_error *err, void *const **frames);

/*
 * Routing fields, set by the routing machinery (Node's err.domain,
 * err.domainThrown, err.domainEmitter, err.domainBound). `domain` is the
 * domain whose handler ran (held by the error while it lives); the others
 * stay UNSET/NULL until a route sets them.
 */
BW_EXTERN bw_domain *bw_error_domain(const bw_error *err);
BW_EXTERN bw_tristate bw_error_domain_thrown(const bw_error *err);
BW_EXTERN bw_emitter *bw_error_domain_emitter(const bw_error *err);
BW_EXTERN bw_fnptr bw_error_domain_bound(const bw_error *err);
/*
 * The member domain that passed the error on to its owner because it had
 * no handler (after bw_domain_add(d1, bw_domain_member(d2)), an unhandled
 * error of d2's reaches d1 with this set to d2), or NULL. Node puts that
 * domain in err.domainEmitter; in C a domain is not a bw_emitter, so the
 * emitter field keeps the emitter the error came from. Held by the error.
 */
BW_EXTERN bw_domain *bw_error_domain_member(const bw_error *err);

/*
 * Thrown values that are not errors (Node lets you `throw 42`). bw_throw_value
 * carries an arbitrary pointer in an error of code BW_ETHROWN; the handler
 * reads back the very pointer with bw_error_value(). Routing never decorates
 * such a carrier (D-71): its routing fields stay unset.
 */
BW_EXTERN bool bw_error_is_value(const bw_error *err);
BW_EXTERN void *bw_error_value(const bw_error *err);

/*
 * Format the error as one readable report: the message and code, the origin,
 * fault details (signal name, si_code, address, stack overflow), I/O details,
 * routing fields, and the backtrace with symbol names (module+offset where no
 * symbol is exported; build executables with -rdynamic for names).
 * Behaves like snprintf: writes at most `size` bytes including the NUL and
 * returns the length the full report needs.
 */
BW_EXTERN size_t bw_error_format(const bw_error *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_ERROR_H */
