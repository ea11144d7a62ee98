/*
 * http.h: an HTTP/1.1 server with a domain per request.
 *
 * The server runs on a bw_loop, parses with llhttp (strict: no lenient
 * flags), and by default runs each request's handler inside a new domain
 * whose members are the request and the response, so every timer, emitter
 * and callback the handler starts is bound to the request. An error in that
 * domain (a throw, or a fault such as a NULL dereference in a timer the
 * handler started) calls the server's request-error hook with the request
 * and response; the default answers 500 with `Connection: close` if no
 * header has gone out yet, and resets the connection otherwise, so a
 * truncated body never looks like a success.
 *
 * A request's scope ends when its response has finished: its domain is then
 * disposed (its timers are cleared, its cleanups run, its arena is freed).
 * Work that must outlive the response is created outside the request's
 * domain, or removed from it (bw_domain_remove).
 *
 * Keep-alive and pipelining: responses go out in request order; pipelined
 * requests are dispatched as they are parsed (up to a bound), and a later
 * response waits, buffered, for the earlier ones.
 *
 * Graceful close: stop accepting; idle keep-alive connections are closed
 * after a short grace read (a request that arrives meanwhile is served with
 * `Connection: close`) and a lingering close (write side shut down first,
 * then reading until the client closes), so no request is reset. A
 * connection that never carried a request is not idle: it keeps its
 * headers timeout, and the request it sends is served. On a busy
 * connection every request already read is served, in order, and the last
 * response says `Connection: close` (a client that half-closed its side is
 * answered the same way). A callback fires when the last connection is
 * gone. With a handoff callback (bw_http_server_set_handoff; cluster.h
 * sets one in every worker), connections at rest are given to it instead
 * of closed, to live on in another process.
 *
 * Limits (each answered with its status, a log line through bw_log, and the
 * connection closed): head size 431, body size 413, headers timeout and
 * request timeout 408, malformed or smuggling-prone input 400 (conflicting
 * Content-Length/Transfer-Encoding, obsolete line folding, invalid
 * characters), maximum connections (new ones get 503 and are closed), send
 * timeout (a client that stops reading is reset). Listening raises the
 * process's soft descriptor limit towards max_connections, and warns if the
 * hard limit keeps it below: past it, the kernel refuses connections before
 * the server can answer them.
 *
 * Threads: a server and its requests belong to the loop's thread.
 */
#ifndef BULWARK_HTTP_H
#define BULWARK_HTTP_H

#include "common.h" /* first: the feature macros uv.h needs */
#include <sys/socket.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bw_http_server bw_http_server;
typedef struct bw_http_request bw_http_request;
typedef struct bw_http_response bw_http_response;

/* The request handler. It may answer at once or later (from a timer, an
 * I/O completion...). req and res stay valid until the response has
 * finished (see bw_http_request_hold to keep them longer). */
typedef void (*bw_http_handler)(bw_http_request *req, bw_http_response *res, void *data);

/* Called when an error reaches a request's domain (err is borrowed). It runs
 * outside the request's domain. */
typedef void (*bw_http_request_error_cb)(bw_http_request *req, bw_http_response *res,
                                         bw_error *err, void *data);

/* Called once the server is closed and its last connection is gone; status
 * is 0. Never called from inside bw_http_server_close. */
typedef void (*bw_http_close_cb)(bw_http_server *server, int status, void *data);

typedef struct bw_http_options {
    size_t max_head_size;          /* request line + headers; 431 beyond. Default 16 KiB */
    size_t max_body_size;          /* request body; 413 beyond. Default 1 MiB */
    uint64_t headers_timeout_ms;   /* first byte to end of headers; 408. Default 60 s */
    uint64_t request_timeout_ms;   /* first byte to end of body; 408. Default 300 s */
    uint64_t keepalive_timeout_ms; /* idle keep-alive connection; closed. Default 75 s
                                      (longer than the 60 s idle timeout of common load
                                      balancers, so a proxy never sends on a connection
                                      the server has just dropped) */
    size_t max_connections;        /* open connections; 503 beyond. Default 16384 */
    size_t max_pipelined;          /* dispatched requests per connection before the
                                      server stops reading it. Default 16 */
    size_t max_output_buffer;      /* unsent bytes per connection before the server stops
                                      reading it (backpressure). Default 1 MiB */
    uint64_t close_grace_ms;       /* on close, how long an idle connection still accepts a
                                      request (served with Connection: close). Default 100 */
    uint64_t send_timeout_ms;      /* a write the client does not take within this is
                                      abandoned: the connection is reset. Default 60 s */
    uint64_t lingering_timeout_ms; /* lingering close: wait this long for the client to
                                      close after we shut down our side. Default 5 s */
    uint64_t response_timeout_ms;  /* from the whole request's arrival (its body included;
                                      request_timeout_ms bounds that) to the response's
                                      end: past it, an error (BW_ETIMEOUT, origin timeout) goes to
                                      the request's domain, once (the default hook answers
                                      500, or resets a response already started). For a
                                      handler that forgets its response. Default 0: off
                                      (long polls and streams are legitimate) */
    int backlog;                   /* listen backlog. Default 511 */
    bool domain_per_request;       /* run each handler in a new domain. Default true */
    bool request_id_header;        /* send each request's id (bw_http_request_id) back as
                                      X-Request-Id. Default false */
    bool defer_continue;           /* Expect: 100-continue: false (the default, Node's) sends
                                      100 Continue before the handler runs; true sends it
                                      only when the handler reads the body (on_body,
                                      read_body), so a handler can refuse an upload with
                                      its final status before the client sends it */
    bool proxy_protocol;           /* every connection begins with a PROXY protocol header
                                      (v1 or v2, as HAProxy's send-proxy / send-proxy-v2
                                      write it); its source address becomes the peer
                                      (bw_http_request_peer, logs, the finished hook). A
                                      connection whose header is invalid, or does not
                                      come within headers_timeout_ms, is closed without
                                      an answer. Only for a listener that nothing but the
                                      proxy can reach. Default false */
    bw_http_request_error_cb on_request_error; /* NULL: the default (500 or reset) */
    void *request_error_data;
} bw_http_options;

/* Fill `o` with the defaults above. */
BW_EXTERN void bw_http_options_init(bw_http_options *o);

/* ---- Server ------------------------------------------------------------ */

/*
 * A server on `loop` (options NULL: defaults). If a domain is active, the
 * server is bound to it and its callbacks run inside it. Returns 0, -ENOMEM
 * or -EINVAL (a zero limit).
 */
BW_EXTERN int bw_http_server_new(bw_loop *loop, const bw_http_options *options,
                                 bw_http_handler handler, void *data, bw_http_server **out);

/* Listen on host:port (IPv4 or IPv6 literal, or "localhost"; port 0 picks a
 * free one). May be called more than once (e.g. 127.0.0.1 and ::1). 0, or a
 * -errno / UV_E* code (-EADDRINUSE...). */
BW_EXTERN int bw_http_server_listen(bw_http_server *s, const char *host, int port);

/* Serve on an already-listening socket (inherited from a primary, or from
 * systemd). The server takes ownership of the fd in every case: it closes
 * it when it closes, or at once if this call fails. */
BW_EXTERN int bw_http_server_listen_fd(bw_http_server *s, int fd);

/* The port of the first listener (0 if none). */
BW_EXTERN int bw_http_server_port(const bw_http_server *s);

/*
 * Graceful close, as described above. The connections the kernel has
 * already queued on the listeners are accepted first (without waiting) and
 * served like the others, so that closing the listeners does not reset
 * them; call bw_http_server_stop_accepting first to leave them to another
 * process that shares the listening socket. Returns 0; BW_ECLOSING if a
 * close is already in progress; BW_ENOTRUNNING if the server is closed or
 * never listened. Only a call that returns 0 ever calls `cb`; it runs under
 * a guard, in the server's domain (an error in it is routed there).
 */
BW_EXTERN int bw_http_server_close(bw_http_server *s, bw_http_close_cb cb, void *data);

/* Stop accepting new connections now: the listeners are closed, and what
 * the kernel has queued on them is left to any other process sharing them
 * (part of close; also usable alone). */
BW_EXTERN void bw_http_server_stop_accepting(bw_http_server *s);

/* Close the idle keep-alive connections (never one with a request in
 * progress, nor one that has not carried a request yet), with the same
 * grace and lingering as close. */
BW_EXTERN void bw_http_server_close_idle_connections(bw_http_server *s);

/* Close every connection at once, idle or not (responses in progress are
 * lost; their connections are reset). */
BW_EXTERN void bw_http_server_close_all_connections(bw_http_server *s);

/*
 * Handing connections to another process (cluster.h uses this to move a
 * retiring worker's connections to a sibling; a standalone server never
 * does it unless asked).
 *
 * With a handoff callback set, a closing server does not close a
 * connection that has nothing in flight: no request being parsed or
 * answered, no byte of output unsent, not half-closed, not asked to
 * close. It gives it to cb instead: `fd` (a duplicate of the connection's
 * socket, non-blocking, close-on-exec) and `state` (len bytes, valid during
 * the call: what bw_http_server_adopt needs to go on where this server
 * stopped: the bytes read and not yet parsed, how many requests the
 * connection carried, the time left on its timeouts, the peer's address).
 * A busy connection is given once its last response has gone out; its
 * responses say keep-alive meanwhile. Only whole requests are kept back
 * for the next process: a request whose head or body is arriving is
 * served here first.
 *
 * cb returns 0 when it took the connection: the server forgets it
 * (closing only its own descriptor: the client sees nothing), and `fd` is
 * the callee's until it gives it back with bw_http_server_handoff_settle
 * (which closes it, or adopts it back): to pass the connection to another
 * process, send a copy of fd (SCM_RIGHTS does); to adopt it in this one,
 * adopt dup(fd). -EAGAIN: not now (the connection stays, is
 * served if a request comes, and is offered again at the next
 * bw_http_server_handoff_more). Anything else: this one cannot move; the
 * server closes it gracefully, as without a callback. cb runs under a
 * guard, in the server's domain; a throw counts as "cannot move" and the
 * fd is closed.
 *
 * The close does not complete (its callback waits) until every connection
 * given away is settled with bw_http_server_handoff_settle.
 *
 * Set or clear (cb NULL) it before bw_http_server_close: connections
 * already marked when the close began keep the choice made then.
 * Returns 0.
 */
typedef int (*bw_http_handoff_cb)(bw_http_server *s, int fd, const void *state, size_t len,
                                  void *data);
/* The largest state a server gives (a connection with more unparsed input
 * than fits is closed gracefully instead of moved). */
#define BW_HTTP_HANDOFF_STATE_MAX (96 * 1024)
BW_EXTERN int bw_http_server_set_handoff(bw_http_server *s, bw_http_handoff_cb cb, void *data);

/* Offer again the connections a handoff callback answered -EAGAIN. */
BW_EXTERN void bw_http_server_handoff_more(bw_http_server *s);

/*
 * Settle a connection given to the handoff callback: status 0, another
 * process adopted it (the fd is closed here; the connection lives on
 * there). -EAGAIN: nobody could take it now: the server takes it back,
 * serves it if a request comes, and offers it again at the next
 * bw_http_server_handoff_more. Anything else: it cannot move: the server
 * takes it back and closes it as it would have without a handoff (what it
 * carried is served first, then the grace read and the lingering close).
 * The fd is the server's in every case. 0, or -EINVAL if no connection
 * given away is unsettled.
 */
BW_EXTERN int bw_http_server_handoff_settle(bw_http_server *s, int fd, const void *state,
                                            size_t len, int status);

/*
 * Adopt a connection another process's server gave away (its fd and
 * state): registered as if accepted here, the bytes it carried parsed
 * first, its timeouts going on from where they were. The server must be
 * running (listening, or closing: a closing server hands it on or closes
 * it gracefully). 0: the fd is the server's. Otherwise the fd is still the
 * caller's: BW_ENOTRUNNING (closed, never started, or closing with its
 * last connection gone: its close is completing, and nothing it adopted
 * then would be served), BW_ELIMIT
 * (max_connections reached), BW_EPROTO (a state this version does not
 * read), -ENOMEM, or a libuv code.
 */
BW_EXTERN int bw_http_server_adopt(bw_http_server *s, int fd, const void *state, size_t len);

/*
 * The finished hook: what an access log and metrics are built on. Called
 * once per request whose handler ran, when it is done with: its response
 * complete (and its body read), or abandoned (the client went away, the
 * connection was reset). It runs under a guard in the server's domain,
 * before the request's domain is disposed, so req (its headers, its
 * peer, even once its connection is gone, its data) may still be read; f
 * is valid during the call. Requests refused
 * before a handler (400, 408, 413, 431, 503 at the limits) are logged by
 * the server itself and do not come here. No cost when unset.
 */
typedef enum bw_http_outcome {
    BW_HTTP_ANSWERED = 0,    /* its response went out whole */
    BW_HTTP_FAULTED = 1,     /* an error reached its domain (a fault, a throw, a timeout);
                                what was sent is the error's answer (or a reset) */
    BW_HTTP_RESET = 2,       /* the server reset the connection (bw_http_response_reset) */
    BW_HTTP_ABORTED = 3,     /* the client went away before the response was complete */
    BW_HTTP_QUARANTINED = 4, /* refused by the cluster: 503 (quarantine), 429 (fault budget) */
} bw_http_outcome;

typedef struct bw_http_finished {
    int status;           /* the status sent; 0 if no head went out */
    uint64_t body_bytes;  /* body bytes handed to the connection */
    uint64_t duration_ms; /* from the whole request's arrival to now (loop time) */
    bw_http_outcome outcome;
    const char *method;
    const char *target;   /* as sent */
    const char *route;    /* the matched route pattern (router.h), or NULL */
} bw_http_finished;

typedef void (*bw_http_finished_cb)(bw_http_request *req, const bw_http_finished *f, void *data);

/* Set (or clear, cb NULL) the finished hook. Returns 0. */
BW_EXTERN int bw_http_server_on_finished(bw_http_server *s, bw_http_finished_cb cb, void *data);

/*
 * Counters a server keeps for metrics: set a bw_http_stats of the caller's
 * (zeroed, in shared memory if another process reads it: cluster.h's
 * metrics do) and the server counts into it, once per finished request,
 * as the finished hook would see it. Several servers may count into one.
 * The server's thread writes each field with a relaxed atomic store and
 * never decreases one: a reader (another thread, another process) sees
 * each counter grow, not all of them at one instant. Cost: about 30
 * instructions per request (bench/counts, `metrics`). NULL stops
 * counting. Returns 0.
 */
#define BW_HTTP_STATS_BUCKETS 11
/* The duration histogram's upper bounds, in milliseconds (loop time); a
 * request slower than the last is counted in duration_count only. */
#define BW_HTTP_STATS_BOUNDS_MS {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
typedef struct bw_http_stats {
    uint64_t by_status[600];  /* finished requests by the status sent (0: no head went out) */
    uint64_t by_outcome[5];   /* by bw_http_outcome */
    uint64_t duration_bucket[BW_HTTP_STATS_BUCKETS]; /* per bucket, not cumulative */
    uint64_t duration_count;
    uint64_t duration_sum_ms;
} bw_http_stats;
BW_EXTERN int bw_http_server_count_into(bw_http_server *s, bw_http_stats *stats);

/* For a layer that answers for the server (cluster.h's quarantine): the
 * outcome the finished hook reports for req (BW_HTTP_QUARANTINED). */
BW_EXTERN void bw_http_request_set_outcome(bw_http_request *req, bw_http_outcome outcome);

/* The request handler and its data, as given to bw_http_server_new or the
 * last bw_http_server_set_handler (to wrap them: cluster.h's policy does). */
BW_EXTERN void bw_http_server_get_handler(const bw_http_server *s, bw_http_handler *handler,
                                          void **data);
/* Replace the request handler; requests dispatched from now on get it.
 * 0, or -EINVAL for a NULL handler. */
BW_EXTERN int bw_http_server_set_handler(bw_http_server *s, bw_http_handler handler, void *data);

/* The request-error hook (options.on_request_error, or
 * bw_http_default_request_error when none was given) and its data. */
BW_EXTERN void bw_http_server_get_request_error_hook(const bw_http_server *s,
                                                     bw_http_request_error_cb *cb, void **data);
/* Replace the request-error hook (NULL: the default). Returns 0. */
BW_EXTERN int bw_http_server_set_request_error_hook(bw_http_server *s, bw_http_request_error_cb cb,
                                                    void *data);

/* The default request-error hook: logs the error's report through bw_log,
 * then answers 500 with Connection: close (requests pipelined behind it and
 * already dispatched are answered first) if no header went out, or resets
 * the connection if one did. Callable from a hook of the user's. */
BW_EXTERN void bw_http_default_request_error(bw_http_request *req, bw_http_response *res,
                                             bw_error *err, void *data);

/* Open connections (given-away ones excluded), requests in flight, and
 * whether the server holds a listening socket. */
BW_EXTERN size_t bw_http_server_connection_count(const bw_http_server *s);
BW_EXTERN size_t bw_http_server_request_count(const bw_http_server *s); /* in flight */
BW_EXTERN bool bw_http_server_is_listening(const bw_http_server *s);

/* Free a server that was closed (after its close callback) or never
 * listened. BW_EBUSY otherwise. */
BW_EXTERN int bw_http_server_free(bw_http_server *s);

/* The server's loop, and the server as a domain member (a domain that owns
 * it closes it when disposed). */
BW_EXTERN bw_loop *bw_http_server_loop(const bw_http_server *s);
BW_EXTERN bw_member *bw_http_server_member(bw_http_server *s);

/* ---- Request ----------------------------------------------------------- */

/* The method token and the target, as sent (NUL-terminated, valid while
 * the request is). */
BW_EXTERN const char *bw_http_request_method(const bw_http_request *req);
BW_EXTERN const char *bw_http_request_target(const bw_http_request *req); /* as sent */
/* The path (before '?') and the query (after it, or ""), raw: as sent,
 * not percent-decoded. For an absolute-form target ("http://h/p?q") the
 * path is what follows the authority ("/p"; "/" if none). */
BW_EXTERN const char *bw_http_request_path(const bw_http_request *req);
BW_EXTERN const char *bw_http_request_query(const bw_http_request *req);

/*
 * The path percent-decoded (RFC 3986 2.1), in the request's memory (valid
 * as long as the request). 0; BW_EPROTO if the path holds a '%' without
 * two hex digits after it, an encoded NUL (%00: it would cut the string
 * short), or an encoded '/' (%2F: a slash inside a segment changes what
 * the segments are; answer such a request 400, or work from the raw
 * path); -ENOMEM. *out is set only on 0.
 */
BW_EXTERN int bw_http_request_path_decoded(bw_http_request *req, const char **out);

/*
 * The value of the n-th (0-based) query parameter named `name`
 * (application/x-www-form-urlencoded: pairs split at '&', name and value
 * at the first '=', names compared after decoding), decoded ('+' is a
 * space, %XX a byte), in the request's memory; "" for a name without '='
 * ("?debug"). 0; -ENOENT if there is no such parameter; BW_EPROTO if its
 * value holds an invalid escape or %00; BW_ELIMIT if the query has more
 * than 1,024 pairs before it; -ENOMEM. *out is set only on 0.
 */
BW_EXTERN int bw_http_request_query_param(bw_http_request *req, const char *name, size_t n,
                                          const char **out);
/* HTTP version: 1.0 or 1.1 -> minor 0 or 1 (HTTP/1.2-1.9 are served as
 * 1.1, RFC 9110 2.5: 1). */
BW_EXTERN int bw_http_request_version_minor(const bw_http_request *req);

/* The first value of a header (case-insensitive name), or NULL. */
BW_EXTERN const char *bw_http_request_header(const bw_http_request *req, const char *name);
/* The n-th value (0-based) of a repeated header, or NULL. */
BW_EXTERN const char *bw_http_request_header_nth(const bw_http_request *req, const char *name,
                                                 size_t n);
/* Iterate over all headers in the order received. */
BW_EXTERN size_t bw_http_request_header_count(const bw_http_request *req);
BW_EXTERN bool bw_http_request_header_at(const bw_http_request *req, size_t i, const char **name,
                                         const char **value);

/*
 * Body, streamed: cb(req, data, len, last, arg) for each chunk as it
 * arrives (data valid during the call), then once with last = true. Chunks
 * that arrived before this call are delivered first. With `Expect:
 * 100-continue`, `100 Continue` has gone out before the handler ran, or,
 * with the server's defer_continue, goes out when a body reader is set.
 * Trailers after a chunked body are parsed, count against max_head_size
 * (431 beyond) and are dropped, so the head the handler sees never changes.
 * 0, or BW_ESTATE if a reader is already set.
 */
typedef void (*bw_http_body_cb)(bw_http_request *req, const char *data, size_t len, bool last,
                                void *arg);
BW_EXTERN int bw_http_request_on_body(bw_http_request *req, bw_http_body_cb cb, void *arg);

/* Body, buffered whole (up to max_body_size): cb(req, body, len, arg) once
 * the body is complete. */
typedef void (*bw_http_body_done_cb)(bw_http_request *req, const char *body, size_t len,
                                     void *arg);
BW_EXTERN int bw_http_request_read_body(bw_http_request *req, bw_http_body_done_cb cb, void *arg);

/* The client went away (reset, or the connection failed) before the response
 * finished. The callback, if set, is called once, inside the request's
 * domain. */
typedef void (*bw_http_abort_cb)(bw_http_request *req, void *arg);
BW_EXTERN bool bw_http_request_aborted(const bw_http_request *req);
BW_EXTERN void bw_http_request_on_abort(bw_http_request *req, bw_http_abort_cb cb, void *arg);

/* Request-scoped memory, freed with the request. NULL on ENOMEM. */
BW_EXTERN void *bw_http_request_alloc(bw_http_request *req, size_t size);

/* The request's domain (NULL if domain_per_request is off). */
BW_EXTERN bw_domain *bw_http_request_domain(const bw_http_request *req);
BW_EXTERN bw_http_server *bw_http_request_server(const bw_http_request *req);
BW_EXTERN bw_loop *bw_http_request_loop(const bw_http_request *req);
/* The peer's address as text ("127.0.0.1:51234"). */
BW_EXTERN const char *bw_http_request_peer(const bw_http_request *req);
/*
 * The request's id, for logs and tracing: the X-Request-Id it came with,
 * if that is 1 to 64 characters of letters, digits and "-_.:+/=" (any
 * other value is ignored, never echoed: it could forge log lines), or
 * else one generated here, unique across the server's processes: 16 hex
 * digits drawn at random when the server was made, '-', and a sequence
 * number in hex. Made on the first call (in the request's memory, which
 * holds it until the request is freed); the same string after that.
 */
BW_EXTERN const char *bw_http_request_id(bw_http_request *req);

/* The pattern of the route that matched ("/items/:id", router.h), or
 * NULL: for handlers and logs. */
BW_EXTERN const char *bw_http_request_route(const bw_http_request *req);
/* For a router: record the pattern that matched (kept as a pointer: it
 * must outlive the request) and the router's own per-request state. */
BW_EXTERN void bw_http_request_set_route(bw_http_request *req, const char *pattern, void *state);
BW_EXTERN void *bw_http_request_route_state(const bw_http_request *req);

/* A user pointer the library never touches. */
BW_EXTERN void bw_http_request_set_data(bw_http_request *req, void *data);
BW_EXTERN void *bw_http_request_data(const bw_http_request *req);

/* Keep req and res valid after the response finished; release when done. */
BW_EXTERN void bw_http_request_hold(bw_http_request *req);
BW_EXTERN void bw_http_request_release(bw_http_request *req);

/* The request as a domain member, and its response (never NULL). */
BW_EXTERN bw_member *bw_http_request_member(bw_http_request *req);
BW_EXTERN bw_http_response *bw_http_request_response(bw_http_request *req);

/* ---- Response ---------------------------------------------------------- */

/* Status before the headers go out (default 200). BW_ESTATE after. */
BW_EXTERN int bw_http_response_set_status(bw_http_response *res, int status);
BW_EXTERN int bw_http_response_status(const bw_http_response *res);

/* Set (replace) or add a header before the headers go out. The server
 * manages Date, Connection, Transfer-Encoding (and Content-Length unless
 * you set it). -EINVAL for names or values with CR/LF/NUL; BW_ESTATE once
 * the headers are out. Strings are copied. */
BW_EXTERN int bw_http_response_set_header(bw_http_response *res, const char *name,
                                          const char *value);
BW_EXTERN int bw_http_response_add_header(bw_http_response *res, const char *name,
                                          const char *value);

/* Write part of the body; the headers go out with the first write. Without
 * a Content-Length, HTTP/1.1 bodies are chunked. The bytes are copied
 * before this returns (the caller may free or reuse `data` at once).
 * 0; BW_ESTATE after end; BW_ELIMIT past a Content-Length you set (nothing
 * of this call is sent); -EPIPE if the client is gone (the request was
 * aborted: nothing is sent); -ENOMEM (the connection is reset). */
BW_EXTERN int bw_http_response_write(bw_http_response *res, const void *data, size_t len);

/* Finish the response, with a last piece of body (may be NULL/0), copied
 * before this returns. If no header went out yet and no Content-Length was
 * set, Content-Length is len. A body shorter than the Content-Length set
 * closes the connection after it (the client cannot reuse it). The
 * response is ended in every case but BW_ESTATE: 0; BW_ESTATE if already
 * ended; BW_ELIMIT if len goes past a Content-Length you set (the excess is
 * not sent); -EPIPE if the client is gone. */
BW_EXTERN int bw_http_response_end(bw_http_response *res, const void *data, size_t len);

/* Convenience: status, Content-Type (may be NULL), body (copied), end.
 * -EINVAL for a status outside 100-999 (nothing is sent, the response
 * stays open). An invalid Content-Type is left out: the response goes
 * without it and -EINVAL is returned (out of memory for it: 0, the same).
 * Otherwise as bw_http_response_end. */
BW_EXTERN int bw_http_response_send(bw_http_response *res, int status, const char *content_type,
                                    const void *body, size_t len);

/* Ask for the connection to close: no request after those already
 * dispatched on it (or whose head is already arriving) is read. Requests pipelined behind this one whose
 * handlers already ran are still answered, in order; the last response
 * the connection carries says Connection: close (this one, if it is the
 * last and its headers are not out yet). */
BW_EXTERN void bw_http_response_close_connection(bw_http_response *res);

/* Abort: reset the connection now (for errors after the headers went out;
 * a truncated body must never look like a success). */
BW_EXTERN void bw_http_response_reset(bw_http_response *res);

/* Whether the status line and headers are written (set_status and the
 * header setters then return BW_ESTATE), and whether end/send was called. */
BW_EXTERN bool bw_http_response_headers_sent(const bw_http_response *res);
BW_EXTERN bool bw_http_response_finished(const bw_http_response *res);

/* Backpressure: true when the connection's unsent output is over
 * max_output_buffer; cb(res, arg) is then called once it drains. */
BW_EXTERN bool bw_http_response_needs_drain(const bw_http_response *res);
typedef void (*bw_http_drain_cb)(bw_http_response *res, void *arg);
BW_EXTERN void bw_http_response_on_drain(bw_http_response *res, bw_http_drain_cb cb, void *arg);

/* The response as a domain member, and its request. */
BW_EXTERN bw_member *bw_http_response_member(bw_http_response *res);
BW_EXTERN bw_http_request *bw_http_response_request(bw_http_response *res);

/* The reason phrase of a status ("Not Found"); "Unknown" if none. */
BW_EXTERN const char *bw_http_status_reason(int status);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_HTTP_H */
