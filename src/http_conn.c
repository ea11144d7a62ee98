/*
 * http_conn.c: one client connection: reading into the server's shared
 * buffer, parsing with llhttp, dispatching requests to the handler inside
 * their domains, ordering pipelined responses, writing, and closing without
 * losing what is in flight.
 *
 * The life of a connection:
 *   OPEN    reading and parsing requests; responses go out in order.
 *   GRACE   the server is closing and this connection was idle: a request
 *           that still arrives is served (with Connection: close). A
 *           connection that never carried a request is not idle: it keeps
 *           its headers timeout, and its request is served.
 *   LINGER  our side is shut down (FIN sent after the last byte); we read
 *           and discard until the client closes, so that unread input never
 *           turns our close into a reset that would destroy the response.
 *   CLOSED  the transport is closing; memory goes when it says it closed.
 *
 * Who closes: every request whose handler ran gets its response, in order,
 * and the decision to close belongs to the last response the connection
 * really carries. A response's Connection header comes from its own request
 * and from whether it is the last: while the server closes (or after the
 * client half-closed), every request already read is parsed and served,
 * and only the response after which nothing more was read says close
 * (settle_last). A response written during a read, before the rest of
 * that read is parsed, says keep-alive and is rewritten to close if it
 * turns out to be the last while it is still in the output buffer.
 *
 * The bytes come and go through a transport (http_transport.c: TCP with
 * libuv), so the same state machine can be driven from memory (fuzz/).
 *
 * User code (handlers, body readers, abort callbacks) is only ever called
 * through bw_invoke, so a throw or a fault in it lands in a guard and never
 * unwinds llhttp's or libuv's frames. Work that must not happen inside user
 * code (resuming a paused parser, finalizing a request) is deferred to the
 * server's check phase.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http_internal.h"
#include "http_state.h"
#include "proxy_proto.h"

static void begin_lingering_close(bw__conn *c);
static void unqueue_resume(bw__conn *c);
static void want_resume(bw__conn *c);
static void protocol_error(bw__conn *c, llhttp_errno_t e);

static uint64_t now_ms(const bw__conn *c)
{
    return uv_now(c->srv->loop->uv);
}

static bw__conn_spill *spill_of(bw__conn *c);

const char *bw__conn_peer(bw__conn *c)
{
    if (c->peer_text != NULL)
        return c->peer_text; /* from its PROXY header */
    /* Not kept in every connection: 64 bytes of every idle connection for
     * a log line that is rarely written. Kept once a request asked for it
     * (bw__conn_peer_keep), read here without allocating (this runs in
     * error paths, after faults). */
    if (c->spill != NULL && c->spill->peer[0] != '\0')
        return c->spill->peer;
    static __thread char peer[64];
    c->tr->peer(c, peer, sizeof peer);
    return peer;
}

const char *bw__conn_peer_keep(bw__conn *c)
{
    /* An access log asks for every request's peer: one getpeername per
     * connection, not one per request. */
    if (c->peer_text != NULL)
        return c->peer_text; /* from its PROXY header */
    bw__conn_spill *sp = spill_of(c);
    if (sp == NULL)
        return bw__conn_peer(c);
    if (sp->peer[0] == '\0')
        c->tr->peer(c, sp->peer, sizeof sp->peer);
    return sp->peer;
}

/* ---- Accepting --------------------------------------------------------- */

/* Register a new connection with its server and start reading. */
static void conn_register(bw__conn *c)
{
    bw_http_server *srv = c->srv;
    llhttp_init(&c->parser, HTTP_REQUEST, bw__http_parser_settings());
    /* Any "HTTP/" DIGIT "." DIGIT gets through llhttp (the grammar is still
     * its own: RFC 9112 2.3); on_headers_complete answers a major other
     * than 1 with 505 and serves 1.2-1.9 as 1.1 (RFC 9110 2.5). llhttp 8.1
     * has the flag but no setter; llhttp_reset keeps it. */
    c->parser.lenient_flags |= LENIENT_VERSION;
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    /* A new connection gets the headers timeout to send its first request;
     * one that sends nothing is closed silently when it expires. */
    c->head_started = now_ms(c); /* the first request's clock starts here */
    c->deadline = c->head_started + srv->opts.headers_timeout_ms;
    if (srv->closing) /* accepted from the backlog, or adopted, during a close */
        c->wind_down = srv->handoff_cb != NULL && !c->no_move ? BW__WIND_MOVE : BW__WIND_CLOSE;
    bw__conn_start_reading(c);
}

void bw__conn_accept(bw_http_server *srv, uv_stream_t *listener)
{
    if (srv->nconns >= srv->opts.max_connections) {
        bw__tcp_refuse(srv, listener);
        return;
    }
    bw__conn *c = bw_calloc(1, sizeof *c);
    if (c == NULL) {
        bw_log(BW_LOG_ERROR, "http: out of memory accepting a connection");
        bw__tcp_refuse(srv, listener);
        return;
    }
    c->srv = srv;
    c->tr = srv->opts.proxy_protocol ? &bw__tcp_proxy_transport : &bw__tcp_transport;
    uv_tcp_init(srv->loop->uv, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->state = BW__CONN_CLOSED;
        c->tr->close(c, false); /* not registered: bw__conn_closed just frees it */
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_register(c);
}

int bw__conn_adopt(bw_http_server *srv, int fd)
{
    bw__conn *c = bw_calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->srv = srv;
    c->tr = srv->opts.proxy_protocol ? &bw__tcp_proxy_transport : &bw__tcp_transport;
    uv_tcp_init(srv->loop->uv, &c->tcp);
    c->tcp.data = c;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        /* The handle was never given the fd: closing it closes nothing. */
        c->state = BW__CONN_CLOSED;
        c->tr->close(c, false);
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_register(c);
    return 0;
}

bw__conn *bw__conn_attach(bw_http_server *srv, const bw__transport *tr, void *tr_data)
{
    bw__conn *c = bw_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->tr = tr;
    c->tr_data = tr_data;
    conn_register(c);
    return c;
}

void bw__conn_start_reading(bw__conn *c)
{
    if (c->reading || c->state == BW__CONN_CLOSED || c->eof)
        return;
    if (c->tr->read_start(c) == 0)
        c->reading = true;
}

static void stop_reading(bw__conn *c)
{
    if (!c->reading)
        return;
    c->tr->read_stop(c);
    c->reading = false;
}

bool bw__conn_over_output_bound(const bw__conn *c)
{
    return c->out.len + bw__conn_writing_len(c) > c->srv->opts.max_output_buffer;
}

/* The spill buffers, allocated on first use; NULL if memory is out. */
static bw__conn_spill *spill_of(bw__conn *c)
{
    if (c->spill == NULL)
        c->spill = bw_calloc(1, sizeof *c->spill);
    return c->spill;
}

/* ---- Closing ----------------------------------------------------------- */

void bw__conn_closed(bw__conn *c)
{
    if (c->parser.data == c)
        bw__server_return_buf(c->srv, &c->out);
    bw__buf_free(&c->out);
    if (c->spill != NULL) {
        bw__buf_free(&c->spill->writing);
        bw__buf_free(&c->spill->pending_in);
        bw__buf_free(&c->spill->proxy_in);
        bw_free(c->spill);
    }
    bw_free(c->peer_text);
    if (c->parser.data == c) /* registered (an accept can fail before that) */
        bw__server_conn_gone(c->srv, c);
    bw_free(c);
}

/* The requests still in the queue will never be answered. */
static void abort_queue(bw__conn *c)
{
    bw_http_request *r = c->qhead;
    c->qhead = c->qtail = NULL;
    c->inflight = 0;
    while (r != NULL) {
        bw_http_request *next = r->next;
        r->next = NULL;
        if (c->srv->finished_cb != NULL)
            (void)bw_http_request_peer(r); /* for the finished hook, once c is gone */
        bw__request_abort(r);
        r = next;
    }
}

void bw__conn_destroy(bw__conn *c, bool reset)
{
    if (c->state == BW__CONN_CLOSED)
        return;
    c->state = BW__CONN_CLOSED;
    stop_reading(c);
    unqueue_resume(c);
    bw_http_request *parsing = c->parsing;
    c->parsing = NULL;
    if (parsing != NULL && !(parsing->flags & BW__REQ_HEAD_DONE)) {
        /* Never dispatched: no user code knows it. */
        parsing->conn = NULL;
        bw__request_release(parsing);
    } else if (parsing != NULL && (parsing->flags & BW__REQ_FINISHED)) {
        /* Answered, body still arriving: nobody waits for it any more. */
        parsing->flags |= BW__REQ_MSG_DONE;
        bw__server_finalize_later(c->srv, parsing);
    }
    abort_queue(c);
    c->tr->close(c, reset);
}

void bw__conn_shutdown_done(bw__conn *c, int status)
{
    if (status < 0 && c->state != BW__CONN_CLOSED)
        bw__conn_destroy(c, false);
}

/* Shut down our side after the pending output, then read (and discard)
 * until the client closes or the lingering timeout expires. */
static void begin_lingering_close(bw__conn *c)
{
    if (c->state >= BW__CONN_LINGER)
        return;
    if (c->eof) {
        bw__conn_destroy(c, false); /* the client already closed its side */
        return;
    }
    c->state = BW__CONN_LINGER;
    llhttp_pause(&c->parser);
    c->paused = true;
    if (c->tr->shutdown(c) != 0) {
        bw__conn_destroy(c, false);
        return;
    }
    c->deadline = now_ms(c) + c->srv->opts.lingering_timeout_ms;
    bw__conn_start_reading(c);
}

static bool has_pending_in(const bw__conn *c)
{
    return c->spill != NULL && c->spill->pending_in.len > 0;
}

/* Idle: it carried a request, answered everything, and nothing of another
 * has arrived. A connection that never carried a request is not idle: its
 * client connected to send one (RFC 9112 9.3 lets a server close an idle
 * connection, and a client retry on it, only after a response). */
static bool conn_idle(const bw__conn *c)
{
    return c->state == BW__CONN_OPEN && c->requests_begun > 0 && c->parsing == NULL &&
           c->inflight == 0 && c->out.len == 0 && !c->write_pending && !has_pending_in(c);
}

void bw__conn_close_idle(bw__conn *c)
{
    if (!conn_idle(c))
        return;
    uint64_t grace = c->srv->opts.close_grace_ms;
    if (grace == 0 && !c->tr->input_pending(c)) {
        begin_lingering_close(c);
        return;
    }
    c->state = BW__CONN_GRACE;
    c->deadline = now_ms(c) + (grace ? grace : 1);
}

/* Nothing more will be read for this connection: no partial request, no
 * request kept unparsed, no byte waiting in the socket. */
static bool no_more_input(bw__conn *c)
{
    return c->parsing == NULL && !has_pending_in(c) && !c->tr->input_pending(c);
}

static const char ka_line[] = "Connection: keep-alive\r\n";

/* 1 + the offset of the keep-alive line of the head that begins b (a
 * response waiting in its own buffer: send_head writes that line last), or
 * 0 if it has none (it said close). */
static uint32_t find_ka_line(const bw__buf *b)
{
    const char *end = memmem(b->base, b->len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t line = (size_t)(end - b->base) + 2; /* the head's last line ends here */
    if (line < sizeof ka_line - 1 || line > UINT32_MAX - 1 ||
        memcmp(b->base + line - (sizeof ka_line - 1), ka_line, sizeof ka_line - 1) != 0)
        return 0;
    return (uint32_t)(line - (sizeof ka_line - 1)) + 1;
}

/* Rewrite the keep-alive line that begins at at - 1 in b into a close line. */
static void say_close(bw__buf *b, uint32_t at)
{
    static const char close_line[] = "Connection: close\r\n";
    size_t off = at - 1, from = off + sizeof ka_line - 1, to = off + sizeof close_line - 1;
    if (from > b->len || memcmp(b->base + off, ka_line, sizeof ka_line - 1) != 0)
        return; /* cannot happen; never corrupt the output over it */
    memmove(b->base + to, b->base + from, b->len - from);
    memcpy(b->base + off, close_line, sizeof close_line - 1);
    b->len -= from - to;
}

void bw__conn_note_keepalive(bw__conn *c, size_t at)
{
    c->out_ka_at = at < UINT32_MAX ? (uint32_t)at + 1 : 0;
}

/* This connection carries no request after those dispatched. The last
 * response says Connection: close: it will if its head is not written yet,
 * and it is rewritten if it is still in a buffer. Otherwise it went out
 * saying keep-alive and the connection gets a grace read when it is done
 * (maybe_close_when_done). */
static void settle_last(bw__conn *c)
{
    c->close_after = true;
    bw_http_request *r = c->qtail;
    if (c->parsing != NULL && c->parsing != r)
        return; /* a request's head is arriving: it will be the last, and say so */
    if (r != NULL && r != c->qhead) {
        /* Waiting behind an earlier response, in a buffer of its own. */
        uint32_t at = r->res.headers_sent && !r->res.close_after ? find_ka_line(&r->res.pending) : 0;
        if (at != 0) {
            say_close(&r->res.pending, at);
            r->res.close_after = true;
        }
        return;
    }
    /* At the head of the queue (its head not written yet, or in `out`), or
     * already handed over with an empty queue. */
    if (c->out_ka_at != 0) {
        say_close(&c->out, c->out_ka_at);
        c->out_ka_at = 0;
        if (r != NULL)
            r->res.close_after = true;
        else
            c->last_said_close = true;
    }
}

void bw__conn_stop_after_dispatched(bw__conn *c)
{
    if (!c->close_after)
        settle_last(c);
}

bool bw__conn_decide_last(bw__conn *c)
{
    /* Moving: the connection goes on in another process. */
    if (c->wind_down == BW__WIND_MOVE && !c->eof)
        return false;
    /* Winding down: last only if nothing more was read. During a read, the
     * rest of it may hold more requests: decided at its end (execute). */
    if (c->in_feed || !no_more_input(c))
        return false;
    c->close_after = true;
    return true;
}

/* Close at the natural end of the input: an idle connection gets its grace
 * read now, a busy one's last response says close if it still can. */
static void wind_down_now(bw__conn *c)
{
    c->wind_down = BW__WIND_CLOSE;
    if (conn_idle(c)) {
        bw__conn_close_idle(c);
        return;
    }
    if (c->state == BW__CONN_OPEN && !c->in_feed && !c->close_after && c->inflight > 0 &&
        no_more_input(c))
        settle_last(c);
}

void bw__conn_server_closing(bw__conn *c)
{
    if (c->srv->handoff_cb != NULL && !c->no_move) {
        c->wind_down = BW__WIND_MOVE;
        /* Requests in flight, none being parsed: what arrives from now on
         * is kept unparsed, to go with the connection once they are
         * answered (as on_message_complete does for a request parsed
         * while moving). */
        if (c->state == BW__CONN_OPEN && c->parsing == NULL && c->inflight > 0 &&
            !c->close_after && !c->eof)
            c->paused = true;
        bw__conn_try_move(c);
        return;
    }
    wind_down_now(c);
}

/* Output written, nothing in flight: close if we decided to. */
static void maybe_close_when_done(bw__conn *c)
{
    if (c->state != BW__CONN_OPEN || c->inflight > 0 || c->out.len > 0 || c->write_pending)
        return;
    if (c->parsing != NULL && !(c->parsing->flags & BW__REQ_FINISHED)) {
        if (c->eof)
            bw__conn_destroy(c, false); /* a request the client will never finish */
        return;
    }
    if (has_pending_in(c) && !c->close_after) {
        /* Requests read and not parsed yet: resuming serves them, or they
         * go with the connection to another process. */
        if (c->wind_down == BW__WIND_MOVE)
            bw__conn_try_move(c);
        return;
    }
    if (!c->eof && !c->close_after && c->wind_down == BW__WIND_NONE)
        return; /* keep-alive */
    if (c->wind_down == BW__WIND_MOVE && !c->eof && !c->close_after) {
        bw__conn_try_move(c);
        return;
    }
    if (c->eof || (c->close_after && c->last_said_close)) {
        begin_lingering_close(c);
        return;
    }
    /* The last response said keep-alive: the client may be sending the
     * next request right now. It gets the grace read, as an idle one. */
    bw__conn_close_idle(c);
}

/* ---- Writing ----------------------------------------------------------- */

static void output_drained(bw__conn *c)
{
    if (c->qhead != NULL)
        bw__response_drained(&c->qhead->res);
    if (c->state == BW__CONN_OPEN && !c->paused)
        bw__conn_start_reading(c);
    maybe_close_when_done(c);
}

static void reset_deadline(bw__conn *c);

void bw__conn_wrote(bw__conn *c, int status)
{
    c->write_pending = false;
    c->spill->writing.len = 0;
    if (c->spill->writing.cap > 64 * 1024)
        bw__buf_free(&c->spill->writing);
    if (c->state == BW__CONN_CLOSED)
        return;
    if (status < 0) {
        bw__conn_destroy(c, false);
        return;
    }
    reset_deadline(c); /* the send timeout no longer applies */
    bw__conn_flush(c);
}

void bw__conn_flush(bw__conn *c)
{
    if (c->state == BW__CONN_CLOSED)
        return;
    if (c->write_pending)
        return;
    if (c->out.len > 0) {
        c->out_ka_at = 0; /* what goes to the transport cannot be rewritten */
        int n = c->tr->try_write(c, c->out.base, c->out.len);
        if (n >= 0 && (size_t)n == c->out.len) {
            c->out.len = 0;
        } else if (n >= 0 || n == UV_EAGAIN) {
            if (n > 0)
                bw__buf_consume(&c->out, (size_t)n);
            /* Hand the rest to uv_write; new output collects in `out`. */
            bw__conn_spill *sp = spill_of(c);
            if (sp == NULL) {
                bw__conn_destroy(c, true);
                return;
            }
            bw__buf_swap(&c->out, &sp->writing);
            c->out.len = 0;
            if (c->tr->write(c, sp->writing.base, sp->writing.len) != 0) {
                bw__conn_destroy(c, false);
                return;
            }
            c->write_pending = true;
            c->write_started = now_ms(c);
            uint64_t give_up = c->write_started + c->srv->opts.send_timeout_ms;
            if (c->deadline == 0 || c->deadline > give_up)
                c->deadline = give_up;
            if (bw__conn_over_output_bound(c))
                stop_reading(c);
            return;
        } else {
            bw__conn_destroy(c, false); /* EPIPE, ECONNRESET: the client is gone */
            return;
        }
    }
    /* Everything is written: the buffer goes back to the server's pool. */
    bw__server_return_buf(c->srv, &c->out);
    output_drained(c);
}

bw__buf *bw__conn_output_buf(bw__conn *c, bw_http_request *r)
{
    /* The head of the queue writes to the connection; later responses wait
     * in their own buffers until their turn (pipelining order). */
    if (r != c->qhead)
        return &r->res.pending;
    if (c->out.base == NULL)
        bw__server_lend_buf(c->srv, &c->out);
    return &c->out;
}

void bw__conn_output_added(bw__conn *c)
{
    if (bw__conn_over_output_bound(c))
        stop_reading(c);
}

void bw__conn_response_output(bw__conn *c, bw_http_request *r, const void *data, size_t len)
{
    if (c->state == BW__CONN_CLOSED)
        return;
    if (bw__buf_append(bw__conn_output_buf(c, r), data, len) != 0) {
        bw_log(BW_LOG_ERROR, "http: out of memory buffering a response to %s", bw__conn_peer(c));
        bw__conn_destroy(c, true);
        return;
    }
    bw__conn_output_added(c);
}

/* ---- Request queue ----------------------------------------------------- */

static void want_resume(bw__conn *c);

/* Hand finished responses at the head of the queue over to the output. */
static void advance_queue(bw__conn *c)
{
    bw_http_server *srv = c->srv;
    while (c->qhead != NULL && c->qhead->res.ended) {
        bw_http_request *r = c->qhead;
        c->qhead = r->next;
        if (c->qhead == NULL)
            c->qtail = NULL;
        r->next = NULL;
        c->inflight--;
        r->flags |= BW__REQ_FINISHED;
        c->last_said_close = r->res.close_after;
        if (r->flags & BW__REQ_MSG_DONE)
            bw__server_finalize_later(srv, r);
        if (r->res.close_after) {
            /* It said Connection: close (or its framing broke): nothing may
             * follow it on the wire. Normally it is the last dispatched. */
            c->close_after = true;
            abort_queue(c);
            break;
        }
        bw_http_request *next = c->qhead;
        if (next != NULL && next->res.pending.len > 0) {
            if ((c->eof || c->wind_down) && next == c->qtail) {
                uint32_t at = find_ka_line(&next->res.pending);
                if (at != 0)
                    bw__conn_note_keepalive(c, c->out.len + at - 1);
            }
            if (bw__buf_append(&c->out, next->res.pending.base, next->res.pending.len) != 0) {
                bw__conn_destroy(c, true);
                return;
            }
            bw__buf_free(&next->res.pending);
        }
    }
    if (c->inflight == 0 && c->parsing == NULL && !c->close_after)
        c->deadline = now_ms(c) + srv->opts.keepalive_timeout_ms;
    if (c->paused && !c->close_after && c->state == BW__CONN_OPEN &&
        c->inflight < srv->opts.max_pipelined)
        want_resume(c);
}

void bw__conn_response_ended(bw__conn *c, bw_http_request *r)
{
    if (c->state == BW__CONN_CLOSED)
        return;
    if (r == c->qhead)
        advance_queue(c);
    if (!c->in_feed)
        bw__conn_flush(c);
}

/* ---- Parsing ----------------------------------------------------------- */

static void execute(bw__conn *c, const char *data, size_t len);

static void resume_parsing(bw__conn *c)
{
    if (c->wind_down == BW__WIND_MOVE && !c->eof && !c->srv->handoff_blocked) {
        /* What is kept unparsed goes with the connection (while nobody
         * can take it, it is served here meanwhile). */
        bw__conn_try_move(c);
        return;
    }
    if (!c->paused || c->state != BW__CONN_OPEN || c->close_after)
        return;
    c->paused = false;
    llhttp_resume(&c->parser);
    if (c->spill != NULL && c->spill->pending_in.len > 0) {
        c->in_feed = true;
        execute(c, c->spill->pending_in.base, c->spill->pending_in.len);
        c->in_feed = false;
        bw__conn_flush(c);
    }
    if (!c->paused && !bw__conn_over_output_bound(c))
        bw__conn_start_reading(c);
}

/* Resuming runs the parser, which dispatches handlers: never from inside
 * user code. Defer it to the server's check phase of this loop iteration. */
static void want_resume(bw__conn *c)
{
    if (c->in_feed || c->resume_queued)
        return; /* the feed loop resumes when it is done */
    c->resume_queued = true;
    c->resume_next = c->srv->resume_head;
    c->srv->resume_head = c;
    bw__server_wake(c->srv);
}

void bw__conn_resume(bw__conn *c)
{
    c->resume_queued = false;
    c->resume_next = NULL;
    resume_parsing(c);
}

static void unqueue_resume(bw__conn *c)
{
    if (!c->resume_queued)
        return;
    bw__conn **pp = &c->srv->resume_head;
    while (*pp != NULL && *pp != c)
        pp = &(*pp)->resume_next;
    if (*pp == c)
        *pp = c->resume_next;
    c->resume_queued = false;
}

static void execute(bw__conn *c, const char *data, size_t len)
{
    bw__buf *pending = c->spill != NULL ? &c->spill->pending_in : NULL;
    bool from_pending = pending != NULL && pending->len > 0 && data == pending->base;
    const char *end = data + len;
    const char *pos = data;
    bool boundary = false;
    c->srv->exec_base = data;
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) { /* the common case, kept short */
        if (len > 0)
            c->prev_input_lf = end[-1] == '\n';
        if (from_pending)
            pending->len = 0;
        return;
    }
    for (;;) {
        if (e == HPE_PAUSED_UPGRADE) {
            /* bulwark does not switch protocols: the Upgrade header is
             * ignored (RFC 9110 lets a server do so) and parsing goes on. */
            pos = llhttp_get_error_pos(&c->parser);
            llhttp_resume_after_upgrade(&c->parser);
            e = llhttp_execute(&c->parser, pos, (size_t)(end - pos));
            continue;
        }
        if (e != HPE_PAUSED || !c->boundary_pause)
            break;
        /* Winding down, at the end of a message: go on with what follows
         * it in this input, if anything (on_message_complete). */
        c->boundary_pause = false;
        pos = llhttp_get_error_pos(&c->parser);
        boundary = pos == end;
        if (boundary || c->state == BW__CONN_CLOSED || c->inflight >= c->srv->opts.max_pipelined)
            break;
        llhttp_resume(&c->parser);
        e = llhttp_execute(&c->parser, pos, (size_t)(end - pos));
    }
    if (len > 0)
        c->prev_input_lf = end[-1] == '\n';
    if (c->state == BW__CONN_CLOSED)
        return;
    if (e == HPE_OK || boundary) {
        if (from_pending)
            pending->len = 0;
        if (boundary) {
            /* Every request of this input is dispatched: if nothing else has
             * arrived, the last of them is the connection's last. */
            llhttp_resume(&c->parser);
            if (!c->close_after && no_more_input(c))
                settle_last(c);
        }
        return;
    }
    if (e == HPE_PAUSED) {
        pos = llhttp_get_error_pos(&c->parser);
        size_t rest = (size_t)(end - pos);
        c->paused = true;
        if (!from_pending && rest > 0) {
            bw__conn_spill *sp = spill_of(c);
            if (sp == NULL) {
                bw__conn_destroy(c, true);
                return;
            }
            pending = &sp->pending_in;
        }
        if (from_pending) {
            bw__buf_consume(pending, pending->len - rest);
        } else if (rest > 0 && bw__buf_append(pending, pos, rest) != 0) {
            bw__conn_destroy(c, true);
            return;
        }
        /* Keep reading (to see the client go away) but not without bound. */
        if (pending != NULL && pending->len > c->srv->opts.max_head_size)
            stop_reading(c);
        return;
    }
    if (from_pending)
        pending->len = 0;
    protocol_error(c, e);
}

static void feed(bw__conn *c, const char *data, size_t len)
{
    c->in_feed = true;
    if (c->paused) {
        /* Parsing waits (pipelining bound, or no more requests wanted):
         * keep the bytes for later. */
        if (c->close_after) {
            c->in_feed = false;
            return; /* nothing after a Connection: close is read */
        }
        bw__conn_spill *sp = spill_of(c);
        if (sp == NULL || bw__buf_append(&sp->pending_in, data, len) != 0) {
            bw__conn_destroy(c, true);
            return;
        }
        if (sp->pending_in.len > c->srv->opts.max_head_size)
            stop_reading(c);
        c->in_feed = false;
        return;
    }
    if (c->close_after && c->parsing == NULL) {
        c->in_feed = false;
        return; /* the last response is decided: nothing after it is read */
    }
    execute(c, data, len);
    c->in_feed = false;
    if (c->state == BW__CONN_CLOSED)
        return;
    bw__conn_flush(c);
    /* A response may have finished while we were parsing: resume now. */
    if (c->paused && !c->close_after && c->inflight < c->srv->opts.max_pipelined &&
        c->state == BW__CONN_OPEN)
        resume_parsing(c);
}

static void on_eof(bw__conn *c)
{
    c->eof = true;
    stop_reading(c);
    if (c->state == BW__CONN_LINGER || c->state == BW__CONN_GRACE) {
        bw__conn_destroy(c, false);
        return;
    }
    bw_http_request *r = c->parsing;
    if (r != NULL && (r->flags & BW__REQ_HEAD_DONE) && !(r->flags & BW__REQ_FINISHED)) {
        /* The client left in the middle of a request body. */
        r->flags |= BW__REQ_ABORTED;
        bw__conn_destroy(c, false);
        return;
    }
    if (r != NULL) {
        c->parsing = NULL;
        if (r->flags & BW__REQ_FINISHED) {
            /* Answered, the rest of its body never comes: nobody waits. */
            r->flags |= BW__REQ_MSG_DONE;
            bw__server_finalize_later(c->srv, r);
        } else {
            /* A head that will never be complete: no user code knows it. */
            r->conn = NULL;
            bw__request_release(r);
        }
    }
    /* Half-closed (nc -N, HTTP/1.0 tools, some proxies): every request it
     * sent is answered, in order, and the last answer says close. Requests
     * kept unparsed (pipelining bound, or kept to move) are parsed first. */
    if (!has_pending_in(c))
        settle_last(c);
    else if (c->paused && !c->close_after && c->inflight < c->srv->opts.max_pipelined)
        want_resume(c); /* nothing resumes a connection at rest otherwise */
    maybe_close_when_done(c);
}

void bw__conn_input(bw__conn *c, const char *data, ssize_t nread)
{
    if (nread > 0) {
        if (c->state == BW__CONN_LINGER)
            return; /* discarded: we only wait for the client to close */
        if (c->state == BW__CONN_GRACE) {
            /* Requests that arrived just as we closed: serve them; the
             * last of this input answers Connection: close. */
            c->state = BW__CONN_OPEN;
            if (c->paused) {
                /* Paused at the pipelining bound just before the server
                 * closed: the resume it waited for found it in GRACE and
                 * gave up. Nothing is kept unparsed (conn_idle). */
                c->paused = false;
                llhttp_resume(&c->parser);
            }
            c->close_after = false;
            c->wind_down = BW__WIND_CLOSE;
            reset_deadline(c);
        }
        feed(c, data, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        on_eof(c);
        return;
    }
    /* ECONNRESET and friends: the client is gone, and so are its requests. */
    bw__conn_destroy(c, false);
}

/* ---- The PROXY header (proxy_protocol) --------------------------------- */

/* The header is parsed: its peer is the connection's, and the connection
 * reads on as any other. skip: the bytes of data that were header. */
static void proxy_done(bw__conn *c, const bw__proxy_result *r, const char *data, size_t len,
                       size_t skip)
{
    if (r->has_addr) {
        char text[BW__PROXY_PEER_MAX];
        size_t n = bw__proxy_format_peer(r, text, sizeof text);
        c->peer_text = bw_malloc(n + 1);
        if (c->peer_text == NULL) {
            bw_log(BW_LOG_ERROR, "http: out of memory for the PROXY peer of %s: closing",
                   bw__conn_peer(c));
            bw__conn_destroy(c, true);
            return;
        }
        memcpy(c->peer_text, text, n + 1);
    }
    if (c->spill != NULL)
        bw__buf_free(&c->spill->proxy_in);
    stop_reading(c);
    c->tr = &bw__tcp_transport;
    bw__conn_start_reading(c);
    if (len > skip)
        bw__conn_input(c, data + skip, (ssize_t)(len - skip));
    else if (c->wind_down == BW__WIND_MOVE)
        bw__conn_try_move(c); /* it could not move before its header (can_move) */
}

void bw__conn_proxy_input(bw__conn *c, const char *data, ssize_t nread)
{
    if (nread <= 0 || c->state != BW__CONN_OPEN) {
        bw__conn_input(c, data, nread); /* the end, an error: as for any connection */
        return;
    }
    size_t len = (size_t)nread;
    bw__buf *held = c->spill != NULL && c->spill->proxy_in.len > 0 ? &c->spill->proxy_in : NULL;
    size_t before = held != NULL ? held->len : 0;
    const char *at = data;
    size_t avail = len;
    if (held != NULL) {
        /* The header's beginning came before: go on from it. It is never
         * longer than BW__PROXY_MAX, so neither is what is kept. */
        size_t take = len < BW__PROXY_MAX - before ? len : BW__PROXY_MAX - before;
        if (bw__buf_append(held, data, take) != 0) {
            bw__conn_destroy(c, true);
            return;
        }
        at = held->base;
        avail = held->len;
    }
    bw__proxy_result r;
    int st = bw__proxy_parse(at, avail, &r);
    if (st == BW__PROXY_OK && r.consumed > before) {
        /* Every shorter prefix asked for more: the header ends in data. */
        proxy_done(c, &r, data, len, r.consumed - before);
        return;
    }
    if (st == BW__PROXY_MORE) {
        if (held == NULL) {
            bw__conn_spill *sp = spill_of(c);
            if (sp == NULL || bw__buf_append(&sp->proxy_in, data, len) != 0)
                bw__conn_destroy(c, true);
        }
        return; /* the headers timeout bounds the wait */
    }
    /* The specification: a receiver drops the connection, it does not
     * answer it (the bytes may not even be HTTP). */
    bw_log(BW_LOG_WARN, "http: invalid PROXY protocol header from %s: closing", bw__conn_peer(c));
    bw__conn_destroy(c, false);
}

/* ---- Deadlines --------------------------------------------------------- */

/* The deadline that the connection's state calls for (after a write
 * completed, when the send timeout's deadline may have been the nearest). */
static void reset_deadline(bw__conn *c)
{
    if (c->state != BW__CONN_OPEN)
        return; /* grace and lingering keep their own */
    const bw_http_options *o = &c->srv->opts;
    bw_http_request *r = c->parsing;
    if (r != NULL)
        c->deadline = c->head_started +
                      ((r->flags & BW__REQ_HEAD_DONE) ? o->request_timeout_ms : o->headers_timeout_ms);
    else if (c->inflight == 0)
        c->deadline = now_ms(c) + o->keepalive_timeout_ms;
    else
        c->deadline = 0;
}

void bw__conn_sweep(bw__conn *c, uint64_t now)
{
    if (c->write_pending && now >= c->write_started + c->srv->opts.send_timeout_ms) {
        bw_log(BW_LOG_WARN, "http: %s took none of its response for %llu ms: resetting",
               bw__conn_peer(c), (unsigned long long)c->srv->opts.send_timeout_ms);
        bw__conn_destroy(c, true);
        return;
    }
    if (c->write_pending && now < c->deadline) {
        return; /* woken for a send timeout that a completed write made moot */
    }
    c->deadline = 0;
    switch (c->state) {
    case BW__CONN_GRACE:
        if (c->tr->input_pending(c)) {
            /* A request arrived but was not read yet (this sweep may run
             * before the poll phase that reads it): read it first. */
            c->deadline = now + (c->srv->opts.close_grace_ms ? c->srv->opts.close_grace_ms : 1);
            return;
        }
        begin_lingering_close(c);
        return;
    case BW__CONN_LINGER:
        bw__conn_destroy(c, false);
        return;
    case BW__CONN_CLOSED:
        return;
    default:
        break;
    }
    bw_http_request *r = c->parsing;
    if (r == NULL) {
        if (c->inflight == 0 && has_pending_in(c) && !c->close_after) {
            /* Requests kept unparsed (to move with the connection) are not
             * idleness: serve them here. */
            c->deadline = now + c->srv->opts.keepalive_timeout_ms;
            c->wind_down = c->wind_down == BW__WIND_MOVE ? BW__WIND_CLOSE : c->wind_down;
            c->no_move = true;
            want_resume(c);
            return;
        }
        if (c->inflight == 0)
            begin_lingering_close(c); /* keep-alive idle, or never sent a byte */
        return;
    }
    bw_log(BW_LOG_WARN, "http: 408 %s from %s took too long", 
           (r->flags & BW__REQ_HEAD_DONE) ? "request body" : "request head", bw__conn_peer(c));
    c->error_status = 408;
    protocol_error(c, HPE_USER);
}

/* ---- Response timeout -------------------------------------------------- */

static bw_error *response_timeout_error(bw_http_request *r)
{
    bw_error *err = bw_error_new(BW_ETIMEOUT, "no response to %s %s within %llu ms",
                                 bw_http_request_method(r), bw_http_request_target(r),
                                 (unsigned long long)r->srv->opts.response_timeout_ms);
    if (err != NULL)
        bw_error_set_origin(err, BW_ORIGIN_TIMEOUT);
    return err;
}

static void throw_response_timeout(void *arg)
{
    bw_throw(response_timeout_error(arg)); /* NULL: an out-of-memory error instead */
}

typedef struct timeout_report {
    bw_http_request *r;
    bw_error *err;
} timeout_report;

static void call_error_hook(void *arg)
{
    timeout_report *t = arg;
    bw_http_server *srv = t->r->srv;
    srv->opts.on_request_error(t->r, &t->r->res, t->err, srv->opts.request_error_data);
}

/* To the domain that owns the request: its own, or the one the handler
 * added it to (the seed's manual pattern), so the error reaches the same
 * handlers as a fault there would. With neither, the server's hook gets it
 * directly, as from a domain, under a guard of its own. */
static void report_response_timeout(bw_http_request *r)
{
    r->flags |= BW__REQ_ERRORED;
    bw_domain *d = bw_member_owner(&r->member);
    if (d == NULL)
        d = r->domain;
    if (d != NULL) {
        bw_invoke(d, throw_response_timeout, r);
        return;
    }
    timeout_report t = {r, response_timeout_error(r)};
    if (t.err == NULL) {
        bw_log(BW_LOG_ERROR, "http: no memory to report a response timeout: resetting");
        if (r->conn != NULL)
            bw__conn_destroy(r->conn, true);
        return;
    }
    bw_invoke(NULL, call_error_hook, &t);
    bw_error_release(t.err);
}

static bw_http_request *first_late_response(bw__conn *c, uint64_t now)
{
    uint64_t limit = c->srv->opts.response_timeout_ms;
    for (bw_http_request *r = c->qhead; r != NULL; r = r->next)
        if (!(r->flags & (BW__REQ_FINISHED | BW__REQ_TIMED_OUT)) && r->received_ms != 0 &&
            now >= r->received_ms + limit)
            return r;
    return NULL;
}

void bw__conn_sweep_responses(bw__conn *c, uint64_t now)
{
    bw_http_request *r;
    /* Rescan after each report: reporting may end responses (and so change
     * the queue) or close the connection. The flag bounds the loop. */
    while (c->state != BW__CONN_CLOSED && (r = first_late_response(c, now)) != NULL) {
        r->flags |= BW__REQ_TIMED_OUT;
        bw_log(BW_LOG_WARN, "http: %s %s from %s: no response within %llu ms",
               bw_http_request_method(r), bw_http_request_target(r), bw__conn_peer(c),
               (unsigned long long)c->srv->opts.response_timeout_ms);
        r->holds++; /* the report may end the response and close the connection */
        report_response_timeout(r);
        bw__request_release(r);
    }
}

/* Responses go out in the order of this queue (pipelining). */
static void queue_request(bw__conn *c, bw_http_request *r)
{
    if (c->qtail != NULL)
        c->qtail->next = r;
    else
        c->qhead = r;
    c->qtail = r;
    c->out_ka_at = 0; /* the head recorded there is no longer the last */
    c->inflight++;
    c->srv->nrequests++;
}

/* ---- Errors in the input ----------------------------------------------- */

static const char *error_reason(int status)
{
    switch (status) {
    case 408:
        return "timeout";
    case 413:
        return "body too large";
    case 431:
        return "head too large";
    case 417:
        return "unsupported expectation";
    case 503:
        return "no memory for the request";
    case 505:
        return "HTTP version not supported";
    case 414:
        return "request-target too long";
    case 501:
        return "not implemented";
    default:
        return "malformed request";
    }
}

/* token characters (RFC 9110 5.6.2) */
static const unsigned char tchar[256] = {
    ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1,
    ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1,
    ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static void protocol_error(bw__conn *c, llhttp_errno_t e)
{
    int status = c->error_status ? c->error_status : 400;
    if (c->error_status == 0 && e == HPE_INVALID_METHOD) {
        /* A token llhttp does not know is a method this server does not
         * implement (RFC 9110 9.1: 501); anything else there (a leading
         * space, a control) is a malformed request line (400). */
        const char *at = llhttp_get_error_pos(&c->parser);
        if (at != NULL && tchar[(unsigned char)*at])
            status = 501;
    }
    /* llhttp's own reason only when llhttp found the error (not a limit). */
    bool parser_error = c->error_status == 0 && e != HPE_USER;
    const char *detail = parser_error ? llhttp_get_error_reason(&c->parser) : c->error_detail;
    if (status != 408)
        bw_log(BW_LOG_WARN, "http: %d %s from %s%s%s", status, error_reason(status),
               bw__conn_peer(c), detail != NULL ? ": " : "", detail != NULL ? detail : "");
    c->error_status = 0;
    c->error_detail = NULL;
    c->close_after = true;
    c->paused = true;
    stop_reading(c);
    bw_http_request *r = c->parsing;
    c->parsing = NULL;
    if (r != NULL && (r->flags & BW__REQ_HEAD_DONE)) {
        /* The handler already has this request: answer for it if nothing
         * went out yet, otherwise the connection must be reset. */
        r->flags |= BW__REQ_MSG_DONE;
        if (r->flags & BW__REQ_FINISHED) {
            bw__server_finalize_later(c->srv, r);
            maybe_close_when_done(c);
        } else if (!r->res.headers_sent) {
            bw__response_send_error(&r->res, status);
        } else {
            bw__conn_destroy(c, true);
        }
        return;
    }
    if (r == NULL) {
        r = bw__server_request_new(c->srv);
        if (r == NULL) {
            bw__conn_destroy(c, true);
            return;
        }
        bw__request_init(r, c);
    }
    /* A response of the server's own, queued after those in flight (no
     * handler ran: the finished hook does not see it). */
    r->flags |= BW__REQ_HEAD_DONE | BW__REQ_MSG_DONE | BW__REQ_REPORTED;
    r->keep_alive = false;
    queue_request(c, r);
    bw__response_send_error(&r->res, status);
    if (!c->in_feed)
        bw__conn_flush(c);
}

/* ---- llhttp callbacks -------------------------------------------------- */

static bw__conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int head_append(bw__conn *c, const char *at, size_t len)
{
    bw_http_request *r = c->parsing;
    if (r->head.len + len + 1 > c->srv->opts.max_head_size) {
        c->error_status = 431;
        return HPE_USER;
    }
    if (bw__buf_append(&r->head, at, len) != 0) {
        c->error_status = 503;
        return HPE_USER;
    }
    return 0;
}

/* The NUL after a span (target, name, value): the common case inline, the
 * limits and growth in head_append. */
static inline int head_nul(bw__conn *c)
{
    bw__buf *h = &c->parsing->head;
    if (h->len + 2 > c->srv->opts.max_head_size || h->len == h->cap)
        return head_append(c, "", 1);
    h->base[h->len++] = '\0';
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    bw__conn *c = conn_of(p);
    bw_http_request *r = bw__server_request_new(c->srv);
    if (r == NULL) {
        c->error_status = 503;
        return HPE_USER;
    }
    bw__request_init(r, c);
    c->parsing = r;
    /* The first request's clock started at the accept: a client gets one
     * headers timeout for its first head, not one to start and another. */
    if (c->requests_begun++ > 0)
        c->head_started = now_ms(c);
    c->deadline = c->head_started + c->srv->opts.headers_timeout_ms;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    bw__conn *c = conn_of(p);
    int rc = head_append(c, at, len);
    if (rc != 0 && c->error_status == 431)
        c->error_status = 414; /* the target alone is too long (RFC 9112 3) */
    return rc;
}

static int on_url_complete(llhttp_t *p)
{
    bw__conn *c = conn_of(p);
    /* A request line without a version: llhttp takes it for HTTP/0.9 and
     * sets 0.9 before this call (with a version, the version is read after
     * it: what the fields hold then is the previous message's, never 0.9,
     * which gets 505 and closes). An invalid request-line, so 400 (RFC 9112
     * 3), not a version this server lacks. */
    if (BW__UNLIKELY(p->http_minor == 9) && p->http_major == 0) {
        c->error_status = 400;
        c->error_detail = "a request line without an HTTP version";
        return HPE_USER;
    }
    c->parsing->target_len = (uint32_t)c->parsing->head.len;
    return head_nul(c);
}

/* Trailers (the header section after a chunked body) come through the same
 * callbacks as the head, after the handler has it. They are dropped: the
 * head must not grow any more, or every pointer into it (path, query,
 * header values the handler holds) would dangle when it moves. Their size
 * counts against max_head_size, as a head's does. */
static bool in_trailers(const bw__conn *c)
{
    return (c->parsing->flags & BW__REQ_HEAD_DONE) != 0;
}

static int trailer_bytes(bw__conn *c, size_t len)
{
    bw_http_request *r = c->parsing;
    r->trailer_len += len;
    if (r->trailer_len > c->srv->opts.max_head_size) {
        c->error_status = 431;
        return HPE_USER;
    }
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    bw__conn *c = conn_of(p);
    bw_http_request *r = c->parsing;
    if (in_trailers(c))
        return trailer_bytes(c, len);
    if (!r->field_open) {
        /* The first piece of a new name (a name split by the network comes
         * in several pieces). */
        if (r->nheaders == r->capheaders) {
            size_t cap = r->capheaders ? r->capheaders * 2 : 16;
            bw__header *h = bw_realloc(r->headers, cap * sizeof *h);
            if (h == NULL) {
                c->error_status = 503;
                return HPE_USER;
            }
            r->headers = h;
            r->capheaders = cap;
        }
        r->headers[r->nheaders].name = (uint32_t)r->head.len;
        r->field_open = true;
    }
    return head_append(c, at, len);
}

/* A field name must be a token (RFC 9110 5.1). llhttp 8 lets whitespace
 * before the colon through, which RFC 9112 5.1 requires a server to reject
 * with 400: it is a classic smuggling vector between proxies. */

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!tchar[(unsigned char)s[i]])
            return false;
    return true;
}

static int on_header_field_complete(llhttp_t *p)
{
    bw__conn *c = conn_of(p);
    bw_http_request *r = c->parsing;
    if (in_trailers(c))
        return 0;
    uint32_t name = r->headers[r->nheaders].name;
    size_t name_len = r->head.len - name;
    if (!is_token(r->head.base + name, name_len)) {
        c->error_status = 400;
        return HPE_USER;
    }
    r->field_open = false;
    const char *n = r->head.base + name;
    if (name_len == 4) {
        uint32_t w;
        memcpy(&w, n, 4); /* "host" in any case: one compare (ASCII letters only) */
        if ((w | 0x20202020u) == ('h' | 'o' << 8 | 's' << 16 | (uint32_t)'t' << 24) &&
            r->hosts++ == 0)
            r->host = (uint32_t)r->nheaders + 1;
    } else if (name_len == 6 && strncasecmp(n, "expect", 6) == 0) {
        r->expect = (int32_t)r->nheaders;
    } else if (name_len == 17 && strncasecmp(n, "transfer-encoding", 17) == 0) {
        r->te_seen = true;
    }
    int rc = head_nul(c);
    r->headers[r->nheaders].value = (uint32_t)r->head.len;
    r->value_start = (uint32_t)r->head.len;
    return rc;
}

/* llhttp joins obsolete line folding (a header line continued on the next
 * line after whitespace) into one value. RFC 9112 5.2 lets a server reject
 * it with 400, and it has served request smuggling, so bulwark rejects it:
 * a second span of the same value that begins right after a line feed is a
 * fold (a span split by the network begins at the start of a chunk that
 * does not follow a line feed). */
static bool is_fold(const bw__conn *c, const char *at)
{
    if (at > c->srv->exec_base)
        return at[-1] == '\n' || (at[-1] == ' ' || at[-1] == '\t');
    return c->prev_input_lf;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    bw__conn *c = conn_of(p);
    if (in_trailers(c))
        return trailer_bytes(c, len);
    if (c->parsing->head.len > c->parsing->value_start && is_fold(c, at)) {
        c->error_status = 400;
        return HPE_USER;
    }
    return head_append(c, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    bw__conn *c = conn_of(p);
    if (in_trailers(c))
        return 0;
    /* A field value has no trailing whitespace (RFC 9110 5.5; llhttp drops
     * the leading whitespace only). */
    bw__buf *h = &c->parsing->head;
    char last = h->base[h->len - 1]; /* an empty value: the name's NUL */
    if (__builtin_expect(last == ' ' || last == '\t', 0)) {
        while (h->len > c->parsing->value_start &&
               (h->base[h->len - 1] == ' ' || h->base[h->len - 1] == '\t'))
            h->len--;
    }
    int rc = head_nul(c);
    if (rc == 0)
        c->parsing->nheaders++;
    return rc;
}

static void on_request_domain_error(bw_domain *d, bw_error *err, void *arg)
{
    (void)d;
    bw_http_request *r = arg;
    bw_http_server *srv = bw_http_request_server(r);
    r->flags |= BW__REQ_ERRORED;
    srv->opts.on_request_error(r, &r->res, err, srv->opts.request_error_data);
}

static void run_handler(void *arg)
{
    bw_http_request *r = arg;
    bw_http_server *srv = r->conn->srv;
    if (BW__UNLIKELY(srv->opts.request_id_header))
        bw_http_response_set_header(&r->res, "X-Request-Id", bw_http_request_id(r));
    if (r->domain != NULL) {
        if (bw_domain_enter(r->domain) != 0)
            bw_throw(NULL);
        srv->handler(r, &r->res, srv->data);
        bw_domain_exit(r->domain);
    } else {
        srv->handler(r, &r->res, srv->data);
    }
}

/* Queue the request and run its handler. `continue_first`: a request with
 * Expect: 100-continue whose body is still to come, to which 100 Continue
 * goes out (after the responses queued before it) before the handler runs,
 * unless the server defers it to the handler's first read of the body.
 * Inline, so that the common call, with a constant false, pays nothing. */
static inline void dispatch(bw__conn *c, bw_http_request *r, bool continue_first)
{
    bw_http_server *srv = c->srv;
    r->flags |= BW__REQ_HEAD_DONE;
    queue_request(c, r);
    if (continue_first && !srv->opts.defer_continue)
        bw__request_send_continue(r);
    if (srv->opts.domain_per_request) {
        bw_domain *d = bw__domain_alloc();
        if (d == NULL || bw_domain_on_error(d, on_request_domain_error, r) != 0) {
            if (d != NULL)
                bw_domain_release(d);
            bw__response_send_error(&r->res, 503);
            return;
        }
        bw_domain_add(d, &r->member);
        bw_domain_add(d, &r->res.member);
        r->domain = d;
    }
    r->holds++; /* while the handler runs: it may close the connection */
    bw_invoke(srv->member.owner, run_handler, r);
    bw__request_release(r);
}

/* The characters of a Host's reg-name or IPv4address (RFC 3986 3.2.2):
 * unreserved, sub-delims and '%' (checked as pct-encoded below). */
static const unsigned char host_char[256] = {
    ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1,
    ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, ['%'] = 2,
};

static bool is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2); empty is valid (a target
 * without authority). An IP-literal is brackets around hex digits, ':' and
 * '.' (IPv6, IPvFuture's "v" and its sub-delims too). */
static bool valid_host(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (*p == '[') {
        for (p++; *p != ']'; p++)
            if (*p == '\0' || !(is_hex(*p) || *p == ':' || *p == '.' || *p == 'v' || *p == 'V' ||
                                 host_char[*p] == 1))
                return false;
        p++;
    } else {
        for (; host_char[*p]; p++)
            if (host_char[*p] == 2 && !(is_hex(p[1]) && is_hex(p[2])))
                return false;
    }
    if (*p == ':')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    return *p == '\0';
}

/* memcmp(a, b, len) == 0, in two overlapping words for the usual Host
 * ("127.0.0.1:8080", "example.com"): no call. Both are readable for len. */
static inline bool same_bytes(const char *a, const char *b, size_t len)
{
    if (len < 8 || len > 16)
        return memcmp(a, b, len) == 0;
    uint64_t a1, a2, b1, b2;
    memcpy(&a1, a, 8);
    memcpy(&b1, b, 8);
    memcpy(&a2, a + len - 8, 8);
    memcpy(&b2, b + len - 8, 8);
    return ((a1 ^ b1) | (a2 ^ b2)) == 0;
}

/* RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, and for any
 * request with more than one Host line or an invalid Host. A server's
 * clients send it the same Host request after request: the last valid one
 * is remembered, and a Host equal to it is not parsed again. Called before
 * the head grows past the last header value. */
static const char *host_problem(bw_http_server *srv, const bw_http_request *r)
{
    if (r->hosts == 1) {
        size_t i = r->host - 1;
        const char *v = r->head.base + r->headers[i].value;
        size_t end = i + 1 < r->nheaders ? r->headers[i + 1].name : r->head.len;
        size_t len = end - r->headers[i].value - 1; /* its NUL */
        if (len == srv->good_host_len && same_bytes(v, srv->good_host, len))
            return NULL;
        if (!valid_host(v))
            return "invalid Host header";
        if (len < sizeof srv->good_host) {
            memcpy(srv->good_host, v, len);
            srv->good_host_len = (uint8_t)len;
        }
        return NULL;
    }
    if (r->hosts > 1)
        return "more than one Host header";
    return r->version_minor >= 1 ? "no Host header" : NULL;
}

/* A request-target in none of the forms of RFC 9112 3.2 for its method:
 * origin-form ("/p") for any, absolute-form ("http://h/p") for any,
 * asterisk-form ("*") for OPTIONS only, authority-form ("h:port") for
 * CONNECT only. NULL if it is fine. */
static const char *target_problem(const bw_http_request *r, uint8_t method)
{
    const char *t = r->head.base;
    if (method == HTTP_CONNECT)
        return t[0] != '/' && memchr(t, '/', r->target_len) == NULL ? NULL
                                                                    : "CONNECT without an authority-form target";
    if (t[0] == '*')
        return method == HTTP_OPTIONS && r->target_len == 1 ? NULL
                                                            : "asterisk-form target outside OPTIONS *";
    if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0)
        return NULL;
    return "request-target in no valid form";
}

/* Every coding in the request's Transfer-Encoding lines is chunked. Called
 * once llhttp has found chunked as the final coding (it refuses chunked
 * anywhere else), so any other coding here is one bulwark cannot decode.
 * Parameters (";name=value") are skipped up to the next comma; a quoted
 * comma inside one only makes a coding that is not "chunked": refused. */
static bool only_chunked(const bw_http_request *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->head.base + r->headers[i].name, "transfer-encoding") != 0)
            continue;
        const char *v = r->head.base + r->headers[i].value;
        for (;;) {
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            if (*v == '\0')
                break;
            const char *coding = v;
            while (*v != '\0' && *v != ',' && *v != ' ' && *v != '\t' && *v != ';')
                v++;
            if (v - coding != 7 || strncasecmp(coding, "chunked", 7) != 0)
                return false;
            while (*v != '\0' && *v != ',')
                v++;
        }
    }
    return true;
}

/* A Transfer-Encoding line is present (HTTP/1.1): NULL if its codings are
 * the one bulwark decodes, chunked, last and alone. Otherwise what is wrong,
 * with c->error_status set to 501 for a coding it cannot decode (RFC 9112
 * 6.1), left 0 (400) when the final coding is not chunked (6.3: an empty
 * Transfer-Encoding too; llhttp refuses chunked before the last coding). */
__attribute__((noinline, cold)) static const char *te_problem(bw__conn *c, const bw_http_request *r,
                                                              uint16_t flags)
{
    if (!(flags & F_CHUNKED))
        return "Transfer-Encoding whose last coding is not chunked";
    if (only_chunked(r))
        return NULL;
    c->error_status = 501;
    return "a transfer coding other than chunked";
}

static int on_headers_complete(llhttp_t *p)
{
    bw__conn *c = conn_of(p);
    bw_http_request *r = c->parsing;
    bw_http_server *srv = c->srv;
    if (p->http_major != 1) {
        c->error_status = 505;
        return HPE_USER;
    }
    r->version_minor = p->http_minor;
    const char *bad_host = host_problem(srv, r);
    if (bad_host == NULL && r->version_minor == 0 && (p->flags & F_TRANSFER_ENCODING))
        bad_host = "Transfer-Encoding in HTTP/1.0"; /* RFC 9112 6.1: framing is unsure */
    if (bad_host == NULL && r->te_seen)
        bad_host = te_problem(c, r, p->flags);
    if (bad_host == NULL && (r->head.base[0] != '/' || p->method == HTTP_CONNECT)) {
        bad_host = target_problem(r, (uint8_t)p->method);
        if (bad_host == NULL && p->method == HTTP_CONNECT) {
            /* bulwark does not tunnel: a valid CONNECT is a method it does
             * not implement (RFC 9110 9.1: 501), answered here, never by the
             * handler, whose 2xx would go out with framing headers (9.3.6
             * forbids them) on a connection that goes on as HTTP. */
            c->error_status = 501;
            c->error_detail = "CONNECT (no tunnelling)";
            return HPE_USER;
        }
    }
    if (bad_host != NULL) {
        if (c->error_status == 0) /* te_problem's 501 stays */
            c->error_status = 400;
        c->error_detail = bad_host;
        return HPE_USER;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > srv->opts.max_body_size) {
        c->error_status = 413;
        return HPE_USER;
    }
    r->method = (uint8_t)p->method;
    r->keep_alive = llhttp_should_keep_alive(p);
    if (!bw__request_finish_head(r)) {
        c->error_status = 400;
        c->error_detail = "fragment in the request-target"; /* RFC 9112 3.2 */
        return HPE_USER;
    }
    if (r->expect >= 0) {
        const char *expect = r->head.base + r->headers[r->expect].value;
        if (strcasecmp(expect, "100-continue") != 0) {
            c->error_status = 417;
            return HPE_USER;
        }
        if (r->version_minor >= 1) {
            r->flags |= BW__REQ_CONTINUE;
            bool body_follows =
                (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
            c->deadline = c->head_started + srv->opts.request_timeout_ms;
            dispatch(c, r, body_follows);
            return c->state == BW__CONN_CLOSED ? HPE_USER : 0;
        }
    }
    c->deadline = c->head_started + srv->opts.request_timeout_ms;
    dispatch(c, r, false);
    return c->state == BW__CONN_CLOSED ? HPE_USER : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    bw__conn *c = conn_of(p);
    bw_http_request *r = c->parsing;
    r->body_received += len;
    if (r->body_received > c->srv->opts.max_body_size) {
        c->error_status = 413;
        return HPE_USER;
    }
    bw__request_body_data(r, at, len);
    return c->state == BW__CONN_CLOSED ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *p)
{
    bw__conn *c = conn_of(p);
    bw_http_server *srv = c->srv;
    bw_http_request *r = c->parsing;
    c->parsing = NULL;
    r->flags |= BW__REQ_MSG_DONE;
    r->received_ms = now_ms(c); /* the response timeout starts */
    bool keep_alive = r->keep_alive;
    bw__request_body_end(r);
    if (c->state == BW__CONN_CLOSED)
        return HPE_USER;
    if (r->flags & BW__REQ_FINISHED)
        bw__server_finalize_later(srv, r);
    c->deadline = c->inflight == 0 ? now_ms(c) + srv->opts.keepalive_timeout_ms : 0;
    if (!keep_alive || c->close_after) {
        c->close_after = true;
        return HPE_PAUSED; /* no request after this one is read */
    }
    if (c->eof || c->wind_down) {
        /* Moving: what follows is kept unparsed, to go with the connection
         * once this response is out. Closing: execute looks at it. */
        c->boundary_pause = c->eof || c->wind_down != BW__WIND_MOVE;
        return HPE_PAUSED;
    }
    if (c->inflight >= srv->opts.max_pipelined)
        return HPE_PAUSED;
    return 0;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

const llhttp_settings_t *bw__http_parser_settings(void)
{
    return &parser_settings;
}

/* ---- Moving to another process ----------------------------------------- */


static bool parse_state(const void *state, size_t len, bw__state_hdr *h, const char **peer,
                        const char **bytes)
{
    if (state == NULL || len < sizeof *h)
        return false;
    memcpy(h, state, sizeof *h);
    if (h->magic != BW__STATE_MAGIC || h->version != BW__STATE_VERSION || h->peer_len > 64 ||
        len != sizeof *h + h->peer_len + (size_t)h->bytes_len)
        return false;
    *peer = (const char *)state + sizeof *h;
    *bytes = *peer + h->peer_len;
    return true;
}

bool bw__conn_state_valid(const void *state, size_t len)
{
    bw__state_hdr h;
    const char *peer, *bytes;
    return parse_state(state, len, &h, &peer, &bytes);
}

static uint32_t clamp_ms(uint64_t ms)
{
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* The connection's state, in a buffer of *len bytes to bw_free; NULL if it
 * carries more than fits, or memory is out. */
static char *export_state(bw__conn *c, size_t *len)
{
    uint64_t now = now_ms(c);
    const char *peer = bw__conn_peer(c);
    size_t peer_len = strlen(peer);
    size_t blen = has_pending_in(c) ? c->spill->pending_in.len : 0;
    bw__state_hdr h = {
        .magic = BW__STATE_MAGIC,
        .version = BW__STATE_VERSION,
        .peer_len = (uint16_t)(peer_len < 64 ? peer_len : 64),
        .requests_begun = c->requests_begun,
        .head_age_ms = clamp_ms(now > c->head_started ? now - c->head_started : 0),
        .deadline_left_ms = clamp_ms(c->deadline > now ? c->deadline - now : 0),
        .bytes_len = (uint32_t)blen,
    };
    *len = sizeof h + h.peer_len + blen;
    if (*len > BW_HTTP_HANDOFF_STATE_MAX)
        return NULL;
    char *buf = bw_malloc(*len);
    if (buf == NULL)
        return NULL;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, peer, h.peer_len);
    if (blen > 0)
        memcpy(buf + sizeof h + h.peer_len, c->spill->pending_in.base, blen);
    return buf;
}

/* The fallible part of a restore, before the connection is registered:
 * the carried bytes go to its pending input. */
static int restore_bytes(bw__conn *c, const bw__state_hdr *h, const char *bytes)
{
    if (h->bytes_len == 0)
        return 0;
    bw__conn_spill *sp = spill_of(c);
    if (sp == NULL || bw__buf_append(&sp->pending_in, bytes, h->bytes_len) != 0)
        return -ENOMEM;
    return 0;
}

/* Behind a PROXY header, the peer the giver read from it: the header was
 * consumed there (a connection moves only once its header is parsed:
 * can_move), and the socket's own peer is the proxy. */
static int restore_peer(bw__conn *c, const char *peer, size_t len)
{
    c->peer_text = bw_malloc(len + 1);
    if (c->peer_text == NULL)
        return -ENOMEM;
    memcpy(c->peer_text, peer, len);
    c->peer_text[len] = '\0';
    return 0;
}

/* The rest, once registered: its clocks, and what happens next. */
static void restore_clocks(bw__conn *c, const bw__state_hdr *h)
{
    const bw_http_options *o = &c->srv->opts;
    uint64_t now = now_ms(c);
    c->requests_begun = h->requests_begun;
    /* Its clocks go on: a client does not get a fresh timeout because its
     * connection moved (nor lose the one it had). */
    if (h->requests_begun == 0) {
        c->head_started = now > h->head_age_ms ? now - h->head_age_ms : 0;
        c->deadline = c->head_started + o->headers_timeout_ms;
    } else {
        uint64_t left = h->deadline_left_ms < o->keepalive_timeout_ms ? h->deadline_left_ms
                                                                      : o->keepalive_timeout_ms;
        c->deadline = now + (left > 0 ? left : 1);
    }
    if (has_pending_in(c)) {
        /* Parsed first, from the check phase (never inside the caller):
         * anything read meanwhile is appended behind them (feed). */
        c->paused = true;
        want_resume(c);
    } else if (c->wind_down == BW__WIND_MOVE) {
        want_resume(c); /* adopted while closing: it moves on from the check phase */
    } else if (c->wind_down == BW__WIND_CLOSE) {
        wind_down_now(c);
    }
}

int bw__conn_restore(bw__conn *c, const void *state, size_t len)
{
    bw__state_hdr h;
    const char *peer, *bytes;
    if (!parse_state(state, len, &h, &peer, &bytes))
        return BW_EPROTO;
    int rc = restore_bytes(c, &h, bytes);
    if (rc != 0)
        return rc;
    restore_clocks(c, &h);
    return 0;
}

int bw__conn_adopt_state(bw_http_server *srv, int fd, const void *state, size_t len, bool no_move)
{
    bw__state_hdr h;
    const char *peer, *bytes;
    if (!parse_state(state, len, &h, &peer, &bytes))
        return BW_EPROTO;
    if (srv->nconns >= srv->opts.max_connections)
        return BW_ELIMIT;
    bw__conn *c = bw_calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->srv = srv;
    c->tr = &bw__tcp_transport;
    c->no_move = no_move;
    uv_tcp_init(srv->loop->uv, &c->tcp);
    c->tcp.data = c;
    int rc = restore_bytes(c, &h, bytes);
    if (rc == 0 && srv->opts.proxy_protocol)
        rc = restore_peer(c, peer, h.peer_len);
    if (rc == 0)
        rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        /* The handle does not own fd (it was never given it, or refused
         * it): closing the handle leaves fd to the caller. */
        c->state = BW__CONN_CLOSED;
        c->tr->close(c, false);
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_register(c);
    restore_clocks(c, &h);
    return 0;
}

/* Only a connection at rest moves: every response out, no request read in
 * part (a head or a body arriving stays: its bytes were parsed here), not
 * half-closed, not asked to close, and not inside its own read. Nor one
 * whose PROXY header has not come: the state carries a peer, not a header
 * half read (proxy_done offers it again once it is parsed). */
static bool can_move(const bw__conn *c)
{
    return c->wind_down == BW__WIND_MOVE && c->state == BW__CONN_OPEN && !c->in_feed &&
           c->tr != &bw__tcp_proxy_transport &&
           c->parsing == NULL && c->inflight == 0 && c->out.len == 0 && !c->write_pending &&
           !c->eof && !c->close_after;
}

/* It cannot move: close it here, as a server without handoff would. */
static void close_here(bw__conn *c)
{
    c->no_move = true;
    wind_down_now(c);
    if (c->state == BW__CONN_OPEN && c->paused && !c->close_after && has_pending_in(c))
        want_resume(c); /* the requests it kept unparsed are served first */
}

typedef struct handoff_call {
    bw_http_server *srv;
    int fd;
    const void *state;
    size_t len;
    int rc;
} handoff_call;

static void call_handoff(void *arg)
{
    handoff_call *h = arg;
    h->rc = h->srv->handoff_cb(h->srv, h->fd, h->state, h->len, h->srv->handoff_data);
}

void bw__conn_try_move(bw__conn *c)
{
    if (!can_move(c))
        return;
    bw_http_server *srv = c->srv;
    if (srv->handoff_cb == NULL || c->tr->export_fd == NULL) {
        close_here(c);
        return;
    }
    if (srv->handoff_blocked)
        return; /* offered again at bw_http_server_handoff_more */
    size_t len;
    char *state = export_state(c, &len);
    if (state == NULL) {
        bw_log(BW_LOG_WARN, "http: %s cannot move (its state is too large, or memory is out): "
               "closing it here", bw__conn_peer(c));
        close_here(c);
        return;
    }
    int fd = c->tr->export_fd(c);
    if (fd < 0) {
        bw_log(BW_LOG_WARN, "http: %s cannot move: %s: closing it here", bw__conn_peer(c),
               bw_strerror(fd));
        bw_free(state);
        close_here(c);
        return;
    }
    handoff_call h = {srv, fd, state, len, -ECANCELED};
    srv->handoffs_out++; /* the callee may settle it before it returns */
    bw_invoke(srv->member.owner, call_handoff, &h);
    bw_free(state);
    if (h.rc == 0) {
        /* Gone to the callee: only this process's descriptor closes. */
        stop_reading(c);
        bw__conn_destroy(c, false);
        return;
    }
    srv->handoffs_out--;
    close(fd);
    if (h.rc == -EAGAIN) {
        srv->handoff_blocked = true;
        return;
    }
    close_here(c);
}
