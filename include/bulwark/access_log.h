/*
 * access_log.h: one line per request, for an operator's log pipeline.
 *
 * An access log is a bw_http_finished_cb (http.h): set it as a server's
 * finished hook and every request that server finishes gets a line. Lines
 * go to a buffer of the log's own, written out when it holds 64 KiB, once
 * a second (a timer on the loop, which does not keep it alive), and when
 * the log is freed: no system call per request. A file that is moved or
 * removed (logrotate) is noticed at the next write, which goes to a new
 * file at the path: no signal and no copytruncate needed. What a process that dies
 * without freeing its log (SIGKILL) had buffered, at most a second of
 * lines, is lost; a worker that retires after a fault frees it as it
 * exits, so the faulted request's line is written.
 *
 * Formats (each line ends with '\n'):
 *
 *   BW_ACCESS_LOG_COMBINED, Apache/nginx "combined" with fields after it:
 *     127.0.0.1 - - [02/Dec/2026:03:20:01 +0000] "GET /a?b=1 HTTP/1.1" 200 2
 *     "-" "curl/7.88.1" rt=0.001 pid=4242 route=/a id=3f9a0c1be27d4a55-1c
 *     outcome=answered
 *     (one line; the peer's address without its port; bytes are body
 *     bytes, "-" when 0; rt in seconds; route "-" when none. Quotes,
 *     backslashes and control characters in the request line, Referer and
 *     User-Agent are escaped as \" \\ \xHH, as nginx does.)
 *
 *   BW_ACCESS_LOG_JSON, one object per line:
 *     {"time":"2026-12-02T03:20:01.123Z","peer":"127.0.0.1:40314",
 *      "method":"GET","target":"/a?b=1","version":"1.1","status":200,
 *      "bytes":2,"duration_ms":0,"pid":4242,"route":null,
 *      "request_id":"3f9a0c1be27d4a55-1c","outcome":"answered",
 *      "referer":null,"user_agent":"curl/7.88.1"}
 *     (strings escaped as log.h says; status 0 when no head went out.)
 *
 * The request id is bw_http_request_id's (the client's X-Request-Id if
 * valid, else generated); the outcome is the finished hook's
 * (answered, faulted, reset, aborted, quarantined).
 */
#ifndef BULWARK_ACCESS_LOG_H
#define BULWARK_ACCESS_LOG_H

#include "common.h"
#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bw_access_log_format {
    BW_ACCESS_LOG_COMBINED = 0,
    BW_ACCESS_LOG_JSON = 1,
} bw_access_log_format;

typedef struct bw_access_log bw_access_log;

/*
 * An access log on `loop`, appending to `path` (created 0644 if needed,
 * O_APPEND: several processes may share the file; each write is whole
 * lines), or to standard error if `path` is "-". 0, -EINVAL (no loop, no
 * path, an unknown format), -ENOMEM, or open()'s -errno; *out is NULL on
 * failure.
 */
BW_EXTERN int bw_access_log_new(bw_loop *loop, const char *path, bw_access_log_format format,
                                bw_access_log **out);

/* The finished hook that writes a line: bw_http_server_on_finished(srv,
 * bw_access_log_finished, log). */
BW_EXTERN void bw_access_log_finished(bw_http_request *req, const bw_http_finished *f,
                                      void *log);

/* Write out what is buffered now. 0, or the -errno of write() (the lines
 * are dropped then, and the failure logged once until a write works). */
BW_EXTERN int bw_access_log_flush(bw_access_log *log);

/* Flush, close the file (not standard error) and free the log; its timer
 * is closed on the loop (run the loop for the close to complete). NULL is
 * a no-op. Unhook it from its servers first. */
BW_EXTERN void bw_access_log_free(bw_access_log *log);

#ifdef __cplusplus
}
#endif

#endif /* BULWARK_ACCESS_LOG_H */
