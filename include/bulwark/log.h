/*
 * log.h: the logging hook.
 *
 * The library never prints by itself: everything it has to say goes through
 * one hook. The default hook writes one line per message to standard error
 * with a single write(2), formatted on the stack (no stdio, no heap, no
 * lock), so it stays usable after a fault has left stdio or the heap in
 * doubt. A pipe keeps a write whole only up to PIPE_BUF (4096) bytes, and
 * a cluster's processes usually share one: a longer text message (a crash
 * report with its backtrace) is written in pieces of whole lines, so
 * another process's line may come between two of its lines, never inside
 * one. A JSON line longer than that is one write still (a file opened with
 * O_APPEND, or journald's socket, keeps it whole; a shared pipe may not).
 * It has two formats (bw_log_set_format):
 *
 * TEXT (the default):
 *
 *   2026-12-02T02:33:25.123Z bulwark[4567] INFO: cluster: worker 3 (pid 4570) exited ...
 *
 *   The time in RFC 3339, UTC, milliseconds; the process id; the level
 *   (bw_log_level_name); the message as given, unescaped. An error report
 *   (a crash in a request, an uncaught error) is one message of several
 *   lines: the first carries the prefix, the report's own lines follow it,
 *   indented by two spaces (bw_error_format).
 *
 * JSON (JSON Lines: one object per line, UTF-8):
 *
 *   {"time":"2026-12-02T02:33:25.123Z","level":"INFO","pid":4567,"msg":"..."}
 *
 *   "time", "level" and "pid" as above; "worker": the worker id (cluster.h),
 *   only in a cluster's worker process; "msg": the message. Strings are
 *   JSON strings: `"` and `\` escaped with a backslash, \n \r \t \b \f
 *   as such, other control characters and DEL as \u00XX, bytes that are
 *   not UTF-8 as \ufffd. A line is at most 16 KiB: a string that does not
 *   fit is cut (the line stays valid JSON).
 *
 *   An error report is one line too, with two more members:
 *     "request": {"method", "target", "route" (the matched pattern, or
 *                 null), "peer" ("127.0.0.1:51234")}, when the error
 *                 happened in a request;
 *     "error":   {"message", "code" (the status, a number), "code_name"
 *                 ("BW_ETHROWN", "EFAULT", ...), "origin" ("thrown",
 *                 "fault", "emitter", "callback", "timeout"),
 *                 for a fault: "signal" ("SIGSEGV"), "signo", "si_code"
 *                 ("SEGV_MAPERR"), "address" ("0x0"), "stack_overflow";
 *                 "syscall" and "path" when set; "domain" (its name) and
 *                 "thrown" ("yes"/"no") when routing set them; "value"
 *                 ("0x2a") for a thrown value that is not an error;
 *                 "backtrace": [{"pc": "0x...", "function", "offset",
 *                 "module", "module_offset"}, ...] innermost first
 *                 (addresses and offsets as hex strings; "function" and
 *                 "offset" only when a symbol is known, "module" and
 *                 "module_offset" only when the module is); frames that
 *                 do not fit are left out and "backtrace_truncated" is
 *                 true}.
 *   In a report each string is cut at 2 KiB (escaped), so that a long
 *   target or message leaves room for the rest; members may be left out
 *   of a line that would still exceed 16 KiB, never cut in the middle.
 *
 * A hook installed with bw_log_set_handler receives the text of each
 * message, without prefix, whatever the format (an error report as the
 * TEXT report, several lines): the format is the default hook's.
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

/* The default hook's line format. Default: TEXT, or JSON if the
 * environment variable BW_LOG_FORMAT is "json", read at the first message.
 * Not thread-safe: call it at start-up (workers inherit it). */
typedef enum bw_log_format {
    BW_LOG_FORMAT_TEXT = 0,
    BW_LOG_FORMAT_JSON = 1,
} bw_log_format;
BW_EXTERN void bw_log_set_format(bw_log_format format);
BW_EXTERN bw_log_format bw_log_get_format(void);

/* Log through the hook, printf-style. Messages longer than 4 KiB are
 * truncated. */
BW_EXTERN void bw_log(bw_log_level level, const char *fmt, ...) BW_PRINTF(2, 3);

/* The name of a level ("INFO"). */
BW_EXTERN const char *bw_log_level_name(bw_log_level level);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_LOG_H */
