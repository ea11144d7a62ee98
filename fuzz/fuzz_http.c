/*
 * fuzz_http: the HTTP request path, bytes in, bytes out, in memory.
 *
 * The input drives one connection of a real server (parsing, limits,
 * pipelining, keep-alive, per-request domains, response writing) through a
 * transport that lives in memory: no socket. Its first byte picks the
 * server's limits and how much of each write the "socket" accepts; the
 * rest is a series of reads, each a length byte and that many bytes, so
 * the request is split at points the fuzzer chooses. A length of 0 lets
 * the loop turn (timers, deferred work, pending writes complete), 254 makes
 * time jump past every deadline (the server's sweep runs: 408s, keep-alive
 * and lingering ends, send timeouts, and, if the first byte turned it on,
 * the response timeout), 255 is the client closing its side. The handler's behaviour comes from the
 * request path: answer at once, stream, answer from a timer, throw before
 * or after the headers, read the body streamed or whole, or never answer.
 *
 * Checks: nothing the sanitizers can see (ASan, UBSan, LSan at the end of
 * each input); everything the server wrote parses as a sequence of
 * HTTP/1.1 responses (llhttp in response mode; skipped when the input made
 * a HEAD request, whose response has no body); and the server closes
 * cleanly at the end (no connection, handle or request left).
 *
 * Built a second time with -DBW_FUZZ_CHUNKED (fuzz_http_chunked): the input
 * then follows a chunked POST head, with small limits, so the fuzzer spends
 * its time on chunk sizes, extensions, trailers and the body and header
 * limits.
 *
 * Built a third time with -DBW_FUZZ_ADOPT (fuzz_http_adopt): the connection
 * arrives as another server gave it away (bw_http_server_adopt), carrying
 * bytes read there and not parsed. After the first byte, a meta byte and
 * a 16-bit little-endian split: that many of the following bytes (at most
 * what there is) are the carried bytes, restored with bw__conn_restore
 * into a freshly attached memory connection; the rest is the usual series
 * of reads. The meta byte picks the clocks the state carries (requests
 * begun, head age, keep-alive time left). A length byte of 253 makes the
 * server begin to close with a handoff callback set: the memory transport
 * can export a descriptor (of /dev/null), so connections at rest are
 * offered; the callback checks the state it is given (it must be one
 * bw__conn_restore takes) and, as the first byte's bit 64 says, takes the
 * connection (settling it at once) or refuses it (-EPIPE: closed here).
 */
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http_internal.h"

typedef struct mem_io {
    bw__conn *conn;
    bool reading;
    bool write_pending;
    bool shutdown_pending;
    bool close_pending;
    bool closed;
    unsigned budget_cycle; /* how much each try_write takes (fuzzer's choice) */
    unsigned tries;
    bw__buf out;
} mem_io;

static mem_io *io_of(bw__conn *c)
{
    return c->tr_data;
}

static int mem_read_start(bw__conn *c)
{
    io_of(c)->reading = true;
    return 0;
}

static void mem_read_stop(bw__conn *c)
{
    io_of(c)->reading = false;
}

static int mem_try_write(bw__conn *c, const char *data, size_t len)
{
    mem_io *io = io_of(c);
    /* Sometimes the whole write fits, sometimes a part, sometimes nothing. */
    unsigned kind = (io->budget_cycle >> (io->tries++ % 8 * 2)) & 3;
    size_t n = kind == 0 ? len : kind == 1 ? len / 2 : kind == 2 ? (len > 7 ? 7 : len) : 0;
    if (n == 0)
        return UV_EAGAIN;
    bw__buf_append(&io->out, data, n);
    return (int)n;
}

static int mem_write(bw__conn *c, const char *data, size_t len)
{
    mem_io *io = io_of(c);
    bw__buf_append(&io->out, data, len);
    io->write_pending = true; /* completes when the loop turns */
    return 0;
}

static int mem_shutdown(bw__conn *c)
{
    io_of(c)->shutdown_pending = true;
    return 0;
}

static void mem_close(bw__conn *c, bool reset)
{
    (void)reset;
    io_of(c)->close_pending = true; /* completes when the loop turns */
}

static void mem_peer(bw__conn *c, char *buf, size_t size)
{
    (void)c;
    snprintf(buf, size, "memory:0");
}

/* Every input byte is handed over as it is fed: nothing waits unread. */
static bool mem_input_pending(bw__conn *c)
{
    (void)c;
    return false;
}

#ifdef BW_FUZZ_ADOPT
/* The connection can move: a descriptor stands for its socket. */
static int mem_export_fd(bw__conn *c)
{
    (void)c;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    return fd >= 0 ? fd : -1;
}
#define MEM_EXPORT_FD mem_export_fd
#else
#define MEM_EXPORT_FD NULL
#endif

static const bw__transport mem_transport = {
    mem_read_start, mem_read_stop, mem_try_write, mem_write, mem_shutdown, mem_close, mem_peer,
    mem_input_pending, MEM_EXPORT_FD,
};

/* Complete what the transport promised, as a socket would, later. */
static void complete(mem_io *io)
{
    if (io->closed)
        return;
    if (io->close_pending) {
        io->closed = true;
        bw__conn_closed(io->conn);
        return;
    }
    if (io->write_pending) {
        io->write_pending = false;
        bw__conn_wrote(io->conn, 0);
    }
    if (io->shutdown_pending && !io->write_pending) {
        io->shutdown_pending = false;
        bw__conn_shutdown_done(io->conn, 0);
    }
}

/* ---- The handler ------------------------------------------------------- */

static bool saw_head;

static void on_timer_answer(bw_timer *t, void *data)
{
    (void)t;
    bw_http_response_send(data, 200, "text/plain", "later\n", 6);
}

static void on_timer_throw(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    bw_throwf(-5, "thrown in a request's timer");
}

static void on_chunk(bw_http_request *req, const char *data, size_t len, bool last, void *arg)
{
    (void)req;
    bw_http_response *res = arg;
    if (len > 0)
        bw_http_response_write(res, data, len < 64 ? len : 64);
    if (last)
        bw_http_response_end(res, NULL, 0);
}

static void on_whole(bw_http_request *req, const char *body, size_t len, void *arg)
{
    (void)req;
    bw_http_response_send(arg, 200, NULL, body, len < 128 ? len : 128);
}

static void handler(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    if (strcmp(bw_http_request_method(req), "HEAD") == 0)
        saw_head = true;
    const char *path = bw_http_request_path(req);
    char mode = path[0] == '/' ? path[1] : 0;
    bw_loop *loop = bw_http_request_loop(req);
    switch (mode) {
    case 's': /* stream */
        bw_http_response_write(res, "a", 1);
        bw_http_response_write(res, "bc", 2);
        bw_http_response_end(res, "d", 1);
        break;
    case 't': /* later */
        bw_timeout(loop, 0, on_timer_answer, res, NULL);
        break;
    case 'f': /* fail before anything went out */
        bw_throwf(-22, "thrown by the handler");
    case 'g': /* fail after the headers went out */
        bw_http_response_write(res, "partial", 7);
        bw_timeout(loop, 0, on_timer_throw, NULL, NULL);
        break;
    case 'b': /* body, streamed */
        bw_http_request_on_body(req, on_chunk, res);
        break;
    case 'w': /* body, whole */
        bw_http_request_read_body(req, on_whole, res);
        break;
    case 'n': /* never answers: only closing the connection, or the response
               * timeout, ends it */
        break;
    case 'p': /* starts the response and never ends it */
        bw_http_response_write(res, "partial", 7);
        break;
    case 'c':
        bw_http_response_close_connection(res);
        bw_http_response_end(res, "bye", 3);
        break;
    default:
        bw_http_response_end(res, "ok", 2);
        break;
    }
}

/* ---- Checking what the server wrote ------------------------------------ */

static unsigned responses_parsed;

static int on_response_complete(llhttp_t *p)
{
    (void)p;
    responses_parsed++;
    return 0;
}

static void check_output(const bw__buf *out)
{
    if (saw_head)
        return; /* a HEAD response has no body: a response parser cannot know */
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_complete = on_response_complete;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &st);
    responses_parsed = 0;
    llhttp_errno_t e = out->len ? llhttp_execute(&p, out->base, out->len) : HPE_OK;
    if (e != HPE_OK && e != HPE_PAUSED_UPGRADE) {
        fprintf(stderr, "fuzz_http: the server wrote an invalid response: %s\n%.*s\n",
                llhttp_errno_name(e), (int)(out->len < 2000 ? out->len : 2000), out->base);
        fuzz_crash("invalid response");
    }
}

/* ---- A connection that arrives with a state (BW_FUZZ_ADOPT) ----------- */

#ifdef BW_FUZZ_ADOPT
/* The state's framing: src/http_state.h, shared with http_conn.c. */
#include "http_state.h"
typedef bw__state_hdr fuzz_state_hdr;

static const char fuzz_peer[] = "127.0.0.1:4242";

static uint32_t pick_ms(unsigned k)
{
    static const uint32_t ms[] = {0, 1, 30000, UINT32_MAX};
    return ms[k & 3];
}

/* A state with `carried` bytes, in a buffer to free(). */
static char *make_state(uint8_t meta, const uint8_t *carried, size_t n, size_t *len)
{
    fuzz_state_hdr h = {
        .magic = BW__STATE_MAGIC,
        .version = BW__STATE_VERSION,
        .peer_len = (uint16_t)(sizeof fuzz_peer - 1),
        .requests_begun = (meta & 1) ? (meta & 2 ? UINT32_MAX : 1) : 0,
        .head_age_ms = pick_ms(meta >> 2),
        .deadline_left_ms = pick_ms(meta >> 4),
        .bytes_len = (uint32_t)n,
    };
    *len = sizeof h + h.peer_len + n;
    char *st = malloc(*len);
    if (st == NULL)
        return NULL;
    memcpy(st, &h, sizeof h);
    memcpy(st + sizeof h, fuzz_peer, h.peer_len);
    if (n > 0)
        memcpy(st + sizeof h + h.peer_len, carried, n);
    return st;
}

static bool take_handoff; /* the first byte's bit 64 */

static int on_handoff(bw_http_server *s, int fd, const void *state, size_t len, void *data)
{
    (void)data;
    if (fd < 0 || !bw__conn_state_valid(state, len))
        fuzz_crash("a handoff gave a state that restore refuses");
    if (len > BW_HTTP_HANDOFF_STATE_MAX)
        fuzz_crash("a handoff gave a state larger than BW_HTTP_HANDOFF_STATE_MAX");
    if (!take_handoff)
        return -EPIPE;
    if (bw_http_server_handoff_settle(s, fd, state, len, 0) != 0)
        fuzz_crash("settle refused");
    return 0;
}
#endif

/* ---- One input --------------------------------------------------------- */

static void on_server_closed(bw_http_server *s, int status, void *data)
{
    (void)s;
    (void)status;
    *(bool *)data = true;
}

/* What the server's periodic sweep does when every deadline has passed
 * (http_server.c's on_sweep, with a clock far ahead). */
static void time_jumps(bw_http_server *srv, mem_io *io)
{
    uint64_t later = uv_now(srv->loop->uv) + 24ull * 3600 * 1000;
    bw__conn *c = io->conn;
    if (io->closed || c->state == BW__CONN_CLOSED)
        return;
    if (srv->opts.response_timeout_ms != 0 && c->inflight > 0)
        bw__conn_sweep_responses(c, later);
    if (!io->closed && c->state != BW__CONN_CLOSED && c->deadline != 0)
        bw__conn_sweep(c, later);
}

#ifdef BW_FUZZ_CHUNKED
static const char prefix[] = "POST /b HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n";
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup_once();
    static int dump_output = -1;
    if (dump_output < 0)
        dump_output = getenv("FUZZ_HTTP_DUMP") != NULL;
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    saw_head = false;
#ifdef BW_FUZZ_ADOPT
    if (size < 3)
        return 0;
    uint8_t meta = data[0];
    size_t carried = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (carried > size)
        carried = size;
    size_t state_len;
    char *state = make_state(meta, data, carried, &state_len);
    if (state == NULL)
        return 0;
    data += carried;
    size -= carried;
    take_handoff = (ctl & 64) != 0;
    bool server_closing = false;
#endif

    bw_loop *loop;
    if (bw_loop_new(&loop) != 0)
        return 0;
    bw_http_options o;
    bw_http_options_init(&o);
#ifdef BW_FUZZ_CHUNKED
    o.max_head_size = 256;
    o.max_body_size = 1024;
#else
    o.max_head_size = (ctl & 1) ? 512 : 16 * 1024;
    o.max_body_size = (ctl & 2) ? 64 : 64 * 1024;
#endif
    o.max_pipelined = (ctl & 4) ? 2 : 16;
    o.max_output_buffer = (ctl & 8) ? 64 : 1024 * 1024;
    o.response_timeout_ms = (ctl & 16) ? 1000 : 0;
    bw_http_server *srv;
    if (bw_http_server_new(loop, &o, handler, NULL, &srv) != 0)
        fuzz_crash("no server");
    bw__server_start_unlistened(srv);
    mem_io io;
    memset(&io, 0, sizeof io);
    io.budget_cycle = (unsigned)ctl * 2654435761u;
    io.conn = bw__conn_attach(srv, &mem_transport, &io);
    if (io.conn == NULL)
        fuzz_crash("no connection");
#ifdef BW_FUZZ_CHUNKED
    bw__conn_input(io.conn, prefix, (ssize_t)(sizeof prefix - 1));
#endif
#ifdef BW_FUZZ_ADOPT
    if (bw__conn_restore(io.conn, state, state_len) != 0)
        fuzz_crash("restore refused a valid state");
    free(state);
    bw_http_server_set_handoff(srv, on_handoff, NULL);
    bool closed = false;
#endif
    size_t pos = 0;
    while (pos < size && !io.closed) {
        uint8_t len = data[pos++];
        if (len == 0) {
            bw_loop_run(loop, UV_RUN_NOWAIT);
            complete(&io);
        } else if (len == 255) {
            if (!io.close_pending)
                bw__conn_input(io.conn, NULL, UV_EOF);
        } else if (len == 254) {
            time_jumps(srv, &io);
#ifdef BW_FUZZ_ADOPT
        } else if (len == 253) {
            if (!server_closing && bw_http_server_close(srv, on_server_closed, &closed) != 0)
                fuzz_crash("server close refused");
            server_closing = true;
#endif
        } else {
            size_t n = len <= size - pos ? len : size - pos;
            if (!io.close_pending && io.reading)
                bw__conn_input(io.conn, (const char *)data + pos, (ssize_t)n);
            pos += n;
        }
        complete(&io);
    }
    /* Let everything settle, then close it all down. */
    for (int i = 0; i < 4 && !io.closed; i++) {
        bw_loop_run(loop, UV_RUN_NOWAIT);
        complete(&io);
    }
    check_output(&io.out);
    if (dump_output) /* FUZZ_HTTP_DUMP=1: see what an input made the server write */
        fprintf(stderr, "---- server wrote %zu bytes:\n%.*s\n----\n", io.out.len, (int)io.out.len,
                io.out.base);
    if (!io.closed) {
        bw_http_server_close_all_connections(srv);
        complete(&io);
    }
#ifdef BW_FUZZ_ADOPT
    if (!server_closing && bw_http_server_close(srv, on_server_closed, &closed) != 0)
        fuzz_crash("server close refused");
#else
    bool closed = false;
    if (bw_http_server_close(srv, on_server_closed, &closed) != 0)
        fuzz_crash("server close refused");
#endif
    for (int i = 0; i < 100 && !closed; i++)
        bw_loop_run(loop, UV_RUN_NOWAIT);
    if (!closed || bw_http_server_free(srv) != 0) {
        fuzz_crash("the server did not close");
    }
    bw_loop_run(loop, UV_RUN_DEFAULT);
    if (bw_loop_free(loop) != 0) {
        fuzz_crash("a handle was left open");
    }
    bw__buf_free(&io.out);
    return 0;
}
