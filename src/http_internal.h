/*
 * http_internal.h: the HTTP server's structures, shared by http_server.c
 * (listeners, accept, close, the periodic sweep), http_conn.c (reading,
 * parsing, dispatch, writing, closing a connection), http_request.c and
 * http_response.c. Never installed.
 */
#ifndef BULWARK_HTTP_INTERNAL_H
#define BULWARK_HTTP_INTERNAL_H

#include <llhttp.h>

#include "bulwark/http.h"
#include "buf.h"
#include "http_decode.h"
#include "internal.h"

typedef struct bw__conn bw__conn;

/*
 * How a connection reaches its peer. TCP through libuv in production
 * (bw__tcp_transport, http_transport.c); a buffer in memory for the fuzz
 * harnesses. Asynchronous completions come back through bw__conn_input,
 * bw__conn_wrote, bw__conn_shutdown_done and bw__conn_closed.
 */
typedef struct bw__transport {
    int (*read_start)(bw__conn *c);
    void (*read_stop)(bw__conn *c);
    /* Write what fits now: bytes written (>= 0), UV_EAGAIN, or an error. */
    int (*try_write)(bw__conn *c, const char *data, size_t len);
    /* Write it all, later; then bw__conn_wrote. The data stays valid. */
    int (*write)(bw__conn *c, const char *data, size_t len);
    /* Shut down our side after pending writes; then bw__conn_shutdown_done. */
    int (*shutdown)(bw__conn *c);
    /* Close (or reset); then, later, bw__conn_closed. */
    void (*close)(bw__conn *c, bool reset);
    /* The peer's address as text. */
    void (*peer)(bw__conn *c, char *buf, size_t size);
    /* Whether bytes have arrived that were not read yet (asked only when
     * the connection is about to close: a request in them is served). */
    bool (*input_pending)(bw__conn *c);
    /* A duplicate of the connection's socket for another process, or
     * -errno (NULL: this transport's connections cannot move). */
    int (*export_fd)(bw__conn *c);
} bw__transport;

/* A header as offsets into the request's head buffer (which may move while
 * the head is parsed; it is stable from headers-complete on). */
typedef struct bw__header {
    uint32_t name;
    uint32_t value;
} bw__header;

typedef struct bw__out_header {
    char *name;
    char *value;
} bw__out_header;

struct bw_http_response {
    bw_member member;
    bw_http_request *req;
    int status;
    bw__out_header *headers; /* user headers (bw_malloc'ed strings) */
    size_t nheaders;
    size_t capheaders;
    int64_t content_length; /* -1: not set by the user */
    uint64_t body_sent;
    bw__buf pending; /* output waiting for earlier responses (pipelining) */
    bw_http_drain_cb drain_cb;
    void *drain_arg;
    bool headers_sent;
    bool ended;
    bool chunked;
    bool close_after; /* Connection: close */
    bool head_only;   /* a response to HEAD: no body on the wire */
};

enum bw__req_flag {
    BW__REQ_HEAD_DONE = 1 << 0,     /* headers complete, handler dispatched */
    BW__REQ_MSG_DONE = 1 << 1,      /* the whole message (body) parsed */
    BW__REQ_FINISHED = 1 << 2,      /* response ended and handed to the connection */
    BW__REQ_ABORTED = 1 << 3,       /* the client went away */
    BW__REQ_CONTINUE = 1 << 4,      /* Expect: 100-continue, not yet answered */
    BW__REQ_FINALIZING = 1 << 5,    /* queued for finalization */
    BW__REQ_BODY_TOO_BIG = 1 << 6,
    BW__REQ_TIMED_OUT = 1 << 7,     /* response_timeout_ms passed; reported once */
    BW__REQ_ERRORED = 1 << 8,       /* an error reached its domain (or the hook for it) */
    BW__REQ_RESET = 1 << 9,         /* the server reset its connection */
    BW__REQ_REPORTED = 1 << 10,     /* the finished hook has seen it */
    BW__REQ_QUARANTINED = 1 << 11,  /* bw_http_request_set_outcome said so */
};

struct bw_http_request {
    bw_member member;
    bw_http_response res;
    bw__conn *conn; /* NULL once detached from its connection */
    bw_http_server *srv;
    bw_http_request *next; /* in the connection's queue, or in a free/finalize list */
    uint32_t holds;        /* the connection's + the user's */
    uint32_t flags;
    uint8_t method;
    uint8_t version_minor;
    bool keep_alive;
    bool field_open; /* a header name is being parsed */
    bool te_seen;    /* a Transfer-Encoding line came */
    bw__buf head; /* target, then name\0value\0 pairs */
    uint32_t target_len;
    uint32_t value_start; /* offset of the header value being parsed */
    int32_t expect;       /* index of the Expect header, or -1 */
    uint32_t host;        /* 1 + the index of the first Host header; 0: none */
    uint32_t hosts;       /* Host header lines seen */
    uint32_t path_len; /* bytes of target before '?' */
    bw__header *headers;
    size_t nheaders;
    size_t capheaders;
    char *path; /* NUL-terminated copies in head (a one-byte target: itself): see http_conn.c */
    char *query;
    uint64_t body_received;
    size_t trailer_len; /* bytes of trailers seen (dropped: see http_conn.c) */
    bw__buf body; /* buffered body (no reader yet, or read_body) */
    bw_http_body_cb body_cb;
    bw_http_body_done_cb body_done_cb;
    void *body_arg;
    bw_http_abort_cb abort_cb;
    void *abort_arg;
    bw_domain *domain;
    uint64_t received_ms; /* loop time when the whole request had arrived; 0 before */
    bw__arena arena;
    char *peer; /* the peer's address, in the arena, once asked for */
    const char *id; /* bw_http_request_id: in the head or the arena, once asked for */
    const char *route; /* the matched pattern (router.h), or NULL */
    void *route_state;
    void *data;
};

enum bw__conn_state {
    BW__CONN_OPEN = 0,  /* reading requests */
    BW__CONN_GRACE = 1, /* server closing: an idle connection's last chance */
    BW__CONN_LINGER = 2, /* our side shut down; reading until the client closes */
    BW__CONN_CLOSED = 3, /* uv_close called */
};

/* What a closing server does with a connection (http_conn.c). */
enum bw__wind {
    BW__WIND_NONE = 0,  /* the server is not closing */
    BW__WIND_CLOSE = 1, /* close at the natural end of the input */
    BW__WIND_MOVE = 2,  /* hand it off once nothing is in flight (bw_http_server_set_handoff) */
};

/* What a connection needs only under backpressure or a paused parser: kept
 * out of every idle connection (memory per connection), allocated the first
 * time it is needed and kept until the connection closes. */
typedef struct bw__conn_spill {
    bw__buf writing;    /* bytes handed to the transport's write */
    bw__buf pending_in; /* unparsed input kept while parsing is paused */
    char peer[64];      /* the peer's address once a request asked for it ("" before) */
    bw__buf proxy_in;   /* a PROXY header that came in pieces (proxy_protocol) */
} bw__conn_spill;

struct bw__conn {
    uv_tcp_t tcp; /* the TCP transport's; first, so its close frees c */
    const bw__transport *tr;
    void *tr_data; /* the transport's own: TCP write/shutdown requests, lazily */
    bw_http_server *srv;
    bw__conn *prev; /* in the server's connection list */
    bw__conn *next;
    llhttp_t parser;
    bw_http_request *parsing; /* the request being parsed */
    bw_http_request *qhead;   /* dispatched, response not yet handed over */
    bw_http_request *qtail;
    bw__conn *resume_next;    /* in the server's resume list */
    bw__buf out;        /* bytes to write (lent by the server while in use) */
    struct bw__conn_spill *spill; /* rarely needed buffers, allocated on first use */
    char *peer_text;    /* the peer from a PROXY header (bw_malloc'ed); NULL: the socket's */
    uint64_t deadline;  /* loop ms; 0: none */
    uint64_t head_started;  /* the current request's first byte (the accept, for the first) */
    uint64_t write_started; /* when the pending write began (send timeout) */
    uint32_t inflight;
    uint32_t requests_begun;
    /* 1 + the offset in `out` of the "Connection: keep-alive" line of the
     * last dispatched response, recorded while winding down and until
     * `out` goes to the transport or another request is dispatched: it can
     * still become "Connection: close" (http_conn.c, settle_last). 0: none. */
    uint32_t out_ka_at;
    int16_t error_status; /* status to answer for a parse error (400, 413, 431) */
    const char *error_detail; /* why, for the log line, when llhttp did not say */
    uint8_t state;        /* enum bw__conn_state */
    bool in_feed;         /* inside the read callback: writes are batched */
    bool reading;
    bool paused;          /* parser paused (pipelining bound, close decided) */
    bool eof;             /* the client shut down its side */
    bool close_after;     /* no request after those dispatched: close once they are answered */
    uint8_t wind_down;    /* enum bw__wind: what the server's close means for it */
    bool no_move;         /* taken back after a failed handoff: it closes here */
    bool boundary_pause;  /* the parser paused at a message's end to see what follows */
    bool last_said_close; /* the last response handed to the output said Connection: close */
    bool write_pending;
    bool resume_queued;
    bool prev_input_lf;   /* the previous input chunk ended with '\n' */
};

struct bw_http_server {
    bw_member member;
    bw_loop *loop;
    bw_http_options opts;
    bw_http_handler handler;
    void *data;
    uv_tcp_t listeners[4];
    size_t nlisteners;
    size_t listeners_open; /* not yet closed */
    int port;
    bool accepting;
    bool closing;
    bool closed;
    bw__conn *conns;
    size_t nconns;
    size_t nrequests; /* dispatched and not finalized */
    uv_timer_t sweep;
    bool sweep_running;
    uv_check_t finalize_check;
    uv_idle_t finalize_idle;
    bw_http_request *finalize_head;
    bw__conn *resume_head; /* connections whose parser waits to resume */
    bw_http_request *free_requests; /* recycled request structs */
    size_t nfree_requests;
    bw_http_close_cb close_cb;
    void *close_data;
    size_t handles_open; /* sweep + check + idle + listeners, for free() */
    uint64_t refused_logged_at;
    uint64_t refused_since_log;
    char *readbuf; /* shared by every connection: parsed before the next read */
    uv_tcp_t spare; /* refuses a connection when memory is out (see refuse) */
    const char *exec_base; /* start of the chunk being parsed (fold detection) */
    bw__buf *out_pool; /* output buffers of idle connections, for reuse */
    size_t nout_pool;
    bool spare_busy;
    uv_stream_t *spare_waiting;
    char good_host[47];    /* the last valid Host a request carried (http_conn.c) */
    uint8_t good_host_len; /* 0: none yet (an empty Host is checked each time: cheap) */
    bw_http_finished_cb finished_cb;
    bw_http_stats *stats; /* bw_http_server_count_into */
    char id_prefix[17];   /* bw_http_request_id: 16 random hex digits */
    uint64_t id_seq;
    void *finished_data;
    bw_http_handoff_cb handoff_cb;
    void *handoff_data;
    size_t handoffs_out;  /* given to handoff_cb, not yet settled */
    bool handoff_blocked; /* handoff_cb said -EAGAIN: wait for handoff_more */
    /* Called by the router once a route matched, before its handler, only
     * while set (the cluster's worker sets it while a route is quarantined):
     * true if it answered the request (the handler does not run). */
    bool (*route_gate)(bw_http_request *req, bw_http_response *res, void *data);
    void *route_gate_data;
};

#define BW__READBUF_SIZE (64 * 1024)

/* http_transport.c */
extern const bw__transport bw__tcp_transport;
/* TCP whose reads go to bw__conn_proxy_input: a connection of a
 * proxy_protocol server until its PROXY header is parsed. */
extern const bw__transport bw__tcp_proxy_transport;
BW__HIDDEN void bw__tcp_refuse(bw_http_server *srv, uv_stream_t *listener);

/* http_conn.c */
BW__HIDDEN void bw__conn_accept(bw_http_server *srv, uv_stream_t *listener);
/* A connection on an accepted socket `fd`, registered and reading. 0, or an
 * error (the fd is then still the caller's). */
BW__HIDDEN int bw__conn_adopt(bw_http_server *srv, int fd);
/* A connection on `fd` with the state another server gave away
 * (bw_http_server_adopt); no_move: taken back by the server that gave it,
 * which closes it rather than hand it off again. 0, or an error (the fd is
 * then still the caller's). */
BW__HIDDEN int bw__conn_adopt_state(bw_http_server *srv, int fd, const void *state, size_t len,
                                    bool no_move);
/* Restore a given-away state into c, just attached (the fuzz harness's
 * memory connections arrive this way too). 0, or BW_EPROTO / -ENOMEM. */
BW__HIDDEN int bw__conn_restore(bw__conn *c, const void *state, size_t len);
/* Check a state's framing without a connection. */
BW__HIDDEN bool bw__conn_state_valid(const void *state, size_t len);
/* Hand c off if it is marked to move and nothing is in flight. */
BW__HIDDEN void bw__conn_try_move(bw__conn *c);
/* A connection over `tr`, registered with the server and reading. NULL on
 * ENOMEM. (TCP connections come from bw__conn_accept.) */
BW__HIDDEN bw__conn *bw__conn_attach(bw_http_server *srv, const bw__transport *tr,
                                     void *tr_data);
/* From the transport: input (nread > 0), end of input (UV_EOF) or an error. */
BW__HIDDEN void bw__conn_input(bw__conn *c, const char *data, ssize_t nread);
/* The same, before the PROXY header (bw__tcp_proxy_transport): parsed,
 * the connection switches to bw__tcp_transport and what follows the
 * header goes to bw__conn_input. */
BW__HIDDEN void bw__conn_proxy_input(bw__conn *c, const char *data, ssize_t nread);
BW__HIDDEN void bw__conn_wrote(bw__conn *c, int status);
BW__HIDDEN void bw__conn_shutdown_done(bw__conn *c, int status);
BW__HIDDEN void bw__conn_closed(bw__conn *c);
BW__HIDDEN void bw__conn_sweep(bw__conn *c, uint64_t now);
/* response_timeout_ms: report each dispatched request of c whose response
 * has not ended in time. May close c. */
BW__HIDDEN void bw__conn_sweep_responses(bw__conn *c, uint64_t now);
BW__HIDDEN void bw__conn_close_idle(bw__conn *c);
/* The server began to close: an idle connection gets its grace read; a busy
 * one closes after its last response (which says so if it still can). */
BW__HIDDEN void bw__conn_server_closing(bw__conn *c);
/* The slow half of bw__conn_is_last_response: the connection winds down. */
BW__HIDDEN bool bw__conn_decide_last(bw__conn *c);
/* Whether the response to r, whose head is being written, is the last the
 * connection carries (it says Connection: close). May decide it: nothing
 * is read after a yes. */
static inline bool bw__conn_is_last_response(bw__conn *c, bw_http_request *r)
{
    if (r != c->qtail)
        return false; /* later requests were dispatched: their responses follow */
    if (c->close_after)
        return true;
    if (!c->eof && c->wind_down == BW__WIND_NONE)
        return false;
    return bw__conn_decide_last(c);
}
/* No request after those dispatched is read; the last one's response says
 * Connection: close if its head can still be changed. */
BW__HIDDEN void bw__conn_stop_after_dispatched(bw__conn *c);
/* The head just written to the connection's output has its keep-alive line
 * at offset `at` (send_head, while winding down). */
BW__HIDDEN void bw__conn_note_keepalive(bw__conn *c, size_t at);
BW__HIDDEN void bw__conn_destroy(bw__conn *c, bool reset);
BW__HIDDEN void bw__conn_flush(bw__conn *c);
BW__HIDDEN void bw__conn_response_ended(bw__conn *c, bw_http_request *r);
BW__HIDDEN void bw__conn_response_output(bw__conn *c, bw_http_request *r, const void *data,
                                         size_t len);
BW__HIDDEN void bw__conn_start_reading(bw__conn *c);
/* Where response output of r goes now, and the check after adding to it. */
BW__HIDDEN bw__buf *bw__conn_output_buf(bw__conn *c, bw_http_request *r);
BW__HIDDEN void bw__conn_output_added(bw__conn *c);
BW__HIDDEN void bw__conn_resume(bw__conn *c);
/* The peer's address as text, in a buffer of this thread's: valid until the
 * next call (for log lines). */
BW__HIDDEN const char *bw__conn_peer(bw__conn *c);
/* The same, kept in the connection (its spill) from the first call on. */
BW__HIDDEN const char *bw__conn_peer_keep(bw__conn *c);
BW__HIDDEN bool bw__conn_over_output_bound(const bw__conn *c);
/* Bytes handed to the transport and not yet written. */
static inline size_t bw__conn_writing_len(const bw__conn *c)
{
    return c->spill != NULL ? c->spill->writing.len : 0;
}
BW__HIDDEN const llhttp_settings_t *bw__http_parser_settings(void);

/* http_server.c */
BW__HIDDEN int bw__server_start_unlistened(bw_http_server *srv);
/* Output buffers: an idle connection holds none (memory per idle
 * connection); one is lent from the server's pool when output begins. */
BW__HIDDEN void bw__server_lend_buf(bw_http_server *srv, bw__buf *b);
BW__HIDDEN void bw__server_return_buf(bw_http_server *srv, bw__buf *b);
BW__HIDDEN void bw__server_conn_gone(bw_http_server *srv, bw__conn *c);
BW__HIDDEN void bw__server_finalize_later(bw_http_server *srv, bw_http_request *r);
/* Make sure the check phase runs this iteration (resumes, finalizations). */
BW__HIDDEN void bw__server_wake(bw_http_server *srv);
BW__HIDDEN bw_http_request *bw__server_request_new(bw_http_server *srv);
BW__HIDDEN void bw__server_request_recycle(bw_http_server *srv, bw_http_request *r);
BW__HIDDEN void bw__server_log_refusal(bw_http_server *srv);

/* http_request.c */
BW__HIDDEN void bw__request_init(bw_http_request *r, bw__conn *c);
BW__HIDDEN void bw__request_reset(bw_http_request *r);
BW__HIDDEN bool bw__request_finish_head(bw_http_request *r); /* false: a fragment in the target */
BW__HIDDEN void bw__request_body_data(bw_http_request *r, const char *data, size_t len);
BW__HIDDEN void bw__request_body_end(bw_http_request *r);
BW__HIDDEN void bw__request_abort(bw_http_request *r);
BW__HIDDEN void bw__request_release(bw_http_request *r);
BW__HIDDEN void bw__request_send_continue(bw_http_request *r);
BW__HIDDEN void bw__request_dispose_domain(bw_http_request *r);

/* http_response.c */
BW__HIDDEN void bw__response_init(bw_http_response *res, bw_http_request *r);
BW__HIDDEN void bw__response_reset(bw_http_response *res);
/* A complete response generated by the server itself (400, 408, 413...). */
BW__HIDDEN void bw__response_send_error(bw_http_response *res, int status);
/* Serialize a minimal response into buf (for refusals outside a request). */
BW__HIDDEN size_t bw__response_simple(char *buf, size_t size, int status);
BW__HIDDEN void bw__response_drained(bw_http_response *res);

#endif /* BULWARK_HTTP_INTERNAL_H */
