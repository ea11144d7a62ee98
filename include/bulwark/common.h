/*
 * bulwark: crash-safe servers in C.
 *
 * common.h: the few definitions every public header shares: the export
 * mark, the attribute helpers and the forward declarations of the opaque
 * types, so that headers can name each other's types without including
 * each other.
 */
#ifndef BULWARK_COMMON_H
#define BULWARK_COMMON_H

/* uv.h, which loop.h and fs.h include, needs POSIX types
 * (pthread_rwlock_t...). A program built with a strict -std=c11 and no
 * feature macro gets them from here when a bulwark header is its first
 * include; bulwark.pc's Cflags say -D_DEFAULT_SOURCE for the others. */
#if !defined(_FEATURES_H) && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE) && \
    !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && !defined(_BSD_SOURCE)
#define _DEFAULT_SOURCE 1
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function carries BW_EXTERN; everything else is hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define BW_EXTERN __attribute__((visibility("default")))
#define BW_NORETURN __attribute__((noreturn))
#define BW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define BW_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define BW_EXTERN
#define BW_NORETURN
#define BW_PRINTF(fmt, args)
#define BW_WARN_UNUSED
#endif

#define BW_VERSION_MAJOR 0
#define BW_VERSION_MINOR 2
#define BW_VERSION_PATCH 0

/* The opaque types of the library. Each is documented in its own header. */
typedef struct bw_loop bw_loop;           /* loop.h */
typedef struct bw_error bw_error;         /* error.h */
typedef struct bw_domain bw_domain;       /* domain.h */
typedef struct bw_member bw_member;       /* domain.h */
typedef struct bw_bound bw_bound;         /* domain.h */
typedef struct bw_emitter bw_emitter;     /* emitter.h */
typedef struct bw_timer bw_timer;         /* timer.h */
typedef struct bw_immediate bw_immediate; /* tick.h */
typedef struct bw_resource bw_resource;   /* resource.h */

/*
 * The shape of every bulwark completion that can fail, as in Node's
 * `function (err, result)`: `err` is NULL on success. Unless a function
 * says otherwise, `err` is borrowed for the duration of the call (take
 * bw_error_hold() to keep it) and `result` is described by the function
 * that started the operation.
 */
typedef void (*bw_callback)(bw_error *err, void *result, void *data);

/* A plain task: a function and its argument. */
typedef void (*bw_task_fn)(void *data);

/* Library version as "major.minor.patch". */
BW_EXTERN const char *bw_version(void);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_COMMON_H */
