/*
 * log.h: the logging hook.
 *
 * The library never prints by itself: everything it has to say goes through
 * one hook. The default hook writes one line per message to standard error
 * with a single write(2) ("bulwark[pid] LEVEL: message"), which stays
 * usable after a fault has left stdio or the heap in doubt.
 */
#ifndef BULWARK_LOG_H
#define BULWARK_LOG_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bw_log_level {
    BW_LOG_DEBUG = 0,
    BW_LOG_INFO = 1,
    BW_LOG_WARN = 2,
    BW_LOG_ERROR = 3,
    BW_LOG_FATAL = 4,
} bw_log_level;

/*
 * A log hook receives one complete message, without a trailing newline.
 * `msg` is valid only during the call. The hook may be called from any
 * thread that runs a bulwark loop, and on the fatal path after a fault, so
 * it should not take locks that a crashed callback might hold.
 */
typedef void (*bw_log_fn)(bw_log_level level, const char *msg, void *data);

/* Install a hook; NULL restores the default (stderr). Not thread-safe:
 * call it at start-up. */
BW_EXTERN void bw_log_set_handler(bw_log_fn fn, void *data);

/* Messages below `level` are dropped before formatting. Default: INFO,
 * or the value of the environment variable BW_LOG_LEVEL (debug, info,
 * warn, error) read at the first message. */
BW_EXTERN void bw_log_set_level(bw_log_level level);
BW_EXTERN bw_log_level bw_log_get_level(void);

/* Log through the hook, printf-style. Messages longer than 4 KiB are
 * truncated. */
BW_EXTERN void bw_log(bw_log_level level, const char *fmt, ...) BW_PRINTF(2, 3);

/* The name of a level ("INFO"). */
BW_EXTERN const char *bw_log_level_name(bw_log_level level);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_LOG_H */
