/*
 * http_transport.c: the TCP transport of HTTP connections (libuv), and the
 * refusal of connections the server cannot take.
 *
 * Every read lands in the server's one shared buffer: a read is parsed
 * completely before the next one, and only input kept across a pause is
 * copied (the connection's pending_in).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "http_internal.h"

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    bw__conn *c = h->data;
    buf->base = c->srv->readbuf;
    buf->len = BW__READBUF_SIZE;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    bw__conn_input(stream->data, buf->base, nread);
}

static int tcp_read_start(bw__conn *c)
{
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Before the PROXY header: the same buffer, another destination. */
static void on_proxy_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    bw__conn_proxy_input(stream->data, buf->base, nread);
}

static int tcp_proxy_read_start(bw__conn *c)
{
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_proxy_read);
}

static void tcp_read_stop(bw__conn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
}

/* The write and shutdown requests are needed only when a write cannot
 * complete at once, and at close: allocated then, not kept in every idle
 * connection (they are most of its size). */
typedef struct tcp_reqs {
    uv_write_t wreq;
    uv_shutdown_t sreq;
} tcp_reqs;

static tcp_reqs *reqs_of(bw__conn *c)
{
    if (c->tr_data == NULL)
        c->tr_data = bw_calloc(1, sizeof(tcp_reqs));
    return c->tr_data;
}

/* libuv counts a buffer's length in an unsigned int and a write's result
 * in an int: larger output goes in pieces of this size. */
#define BW__WRITE_PIECE ((size_t)1 << 30)

static int tcp_try_write(bw__conn *c, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)(len < BW__WRITE_PIECE ? len : BW__WRITE_PIECE));
    return uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

static void on_write(uv_write_t *req, int status)
{
    bw__conn_wrote(req->data, status);
}

static int tcp_write(bw__conn *c, const char *data, size_t len)
{
    tcp_reqs *r = reqs_of(c);
    if (r == NULL)
        return UV_ENOMEM;
    /* uv_write copies the array of buffers: it may live on this stack. */
    uv_buf_t small[4], *bufs = small;
    size_t n = (len + BW__WRITE_PIECE - 1) / BW__WRITE_PIECE;
    if (n > sizeof small / sizeof small[0]) {
        bufs = bw_malloc(n * sizeof *bufs);
        if (bufs == NULL)
            return UV_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t off = i * BW__WRITE_PIECE;
        size_t piece = len - off < BW__WRITE_PIECE ? len - off : BW__WRITE_PIECE;
        bufs[i] = uv_buf_init((char *)data + off, (unsigned)piece);
    }
    r->wreq.data = c;
    int rc = uv_write(&r->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_write);
    if (bufs != small)
        bw_free(bufs);
    return rc;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    bw__conn_shutdown_done(req->data, status);
}

static int tcp_shutdown(bw__conn *c)
{
    tcp_reqs *r = reqs_of(c);
    if (r == NULL)
        return UV_ENOMEM;
    r->sreq.data = c;
    return uv_shutdown(&r->sreq, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_closed(uv_handle_t *h)
{
    bw__conn *c = h->data;
    bw_free(c->tr_data); /* libuv completed (or cancelled) every request */
    c->tr_data = NULL;
    bw__conn_closed(c);
}

static void tcp_close(bw__conn *c, bool reset)
{
    if (reset)
        uv_tcp_close_reset(&c->tcp, on_closed);
    else
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void tcp_peer(bw__conn *c, char *out, size_t size)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(out, size, "%s:%d", ip, port);
}

static bool tcp_input_pending(bw__conn *c)
{
    uv_os_fd_t fd;
    int n = 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, FIONREAD, &n) != 0)
        return false;
    return n > 0;
}

static int tcp_export_fd(bw__conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return -EBADF;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    return copy >= 0 ? copy : -errno;
}

const bw__transport bw__tcp_transport = {
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .try_write = tcp_try_write,
    .write = tcp_write,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer = tcp_peer,
    .input_pending = tcp_input_pending,
    .export_fd = tcp_export_fd,
};

/* A transport of its own rather than a test in on_read: the option costs
 * the connections that do not use it nothing, per read or per request. */
const bw__transport bw__tcp_proxy_transport = {
    .read_start = tcp_proxy_read_start,
    .read_stop = tcp_read_stop,
    .try_write = tcp_try_write,
    .write = tcp_write,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer = tcp_peer,
    .input_pending = tcp_input_pending,
    .export_fd = tcp_export_fd,
};

/* ---- Refusing ---------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h)
{
    bw_http_server *srv = h->data;
    if (h != (uv_handle_t *)&srv->spare) {
        bw_free(h);
        return;
    }
    srv->spare_busy = false;
    uv_stream_t *waiting = srv->spare_waiting;
    srv->spare_waiting = NULL;
    if (waiting != NULL)
        bw__tcp_refuse(srv, waiting); /* the connection that waited for the spare */
    else if (srv->closing)
        bw__server_wake(srv);
}

/* Discard what the client has sent already (a bounded amount, without
 * waiting): closing a socket with unread input resets it instead of sending
 * a FIN, and the reset can destroy the 503 in the client's receive buffer.
 * Input still on its way (the rest of a large upload) can still meet a
 * reset: a refusal does not linger, so that refused connections hold
 * nothing beyond the limit. */
static void discard_input(bw_http_server *srv, uv_tcp_t *t)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)t, &fd) != 0)
        return;
    for (int i = 0; i < 4; i++)
        if (recv(fd, srv->readbuf, BW__READBUF_SIZE, MSG_DONTWAIT) <= 0)
            return;
}

/* At the connection limit (or out of memory): answer 503 and close at once.
 * Out of memory, the connection is accepted into the server's one spare
 * handle: a connection libuv offered must be accepted, or libuv stops
 * polling the listener, and the client would wait forever. */
void bw__tcp_refuse(bw_http_server *srv, uv_stream_t *listener)
{
    uv_tcp_t *t = bw_malloc(sizeof *t);
    if (t == NULL) {
        if (srv->spare_busy) {
            srv->spare_waiting = listener;
            return;
        }
        t = &srv->spare;
        srv->spare_busy = true;
    }
    uv_tcp_init(srv->loop->uv, t);
    t->data = srv;
    if (uv_accept(listener, (uv_stream_t *)t) == 0) {
        discard_input(srv, t);
        char msg[256];
        size_t n = bw__response_simple(msg, sizeof msg, 503);
        uv_buf_t b = uv_buf_init(msg, (unsigned)n);
        uv_try_write((uv_stream_t *)t, &b, 1);
    }
    uv_close((uv_handle_t *)t, on_refused_closed);
    bw__server_log_refusal(srv);
}
