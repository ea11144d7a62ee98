/*
 * http_response.c: the response: status and headers, serialization (with
 * Content-Length when the length is known, chunked when it is not), the
 * server's own error responses, and the default request-error hook.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "http_internal.h"

static void response_member_dispose(bw_member *m);
static const bw__member_ops response_member_ops = {"http-response", response_member_dispose, false};

void bw__response_init(bw_http_response *res, bw_http_request *r)
{
    bw__member_init(&res->member, &response_member_ops);
    res->req = r;
    res->status = 200;
    res->content_length = -1;
    res->nheaders = 0;
    res->head_only = false;
}

void bw__response_reset(bw_http_response *res)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        bw_free(res->headers[i].name);
        bw_free(res->headers[i].value);
    }
    res->nheaders = 0;
    bw__buf_free(&res->pending);
}

const char *bw_http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- Date, cached per second ------------------------------------------- */

static __thread time_t date_second;
static __thread char date_line[64];
static __thread size_t date_len;
static __thread uint64_t date_checked_ms = UINT64_MAX;

/* The Date line, formatted once a second. `loop_ms` is the loop's cached
 * clock: within one millisecond of it the wall clock is not asked again
 * (time() is a vDSO call, no system call, but still the largest part of a
 * head's cost when every request asks). */
static const char *date_header(uint64_t loop_ms, size_t *len)
{
    if (loop_ms == date_checked_ms) {
        *len = date_len;
        return date_line;
    }
    date_checked_ms = loop_ms;
    time_t now = time(NULL);
    if (now != date_second) {
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        struct tm tm;
        gmtime_r(&now, &tm);
        int n = snprintf(date_line, sizeof date_line,
                         "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday],
                         tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        date_len = n > 0 ? (size_t)n : 0;
        date_second = now;
    }
    *len = date_len;
    return date_line;
}

/* ---- Headers ----------------------------------------------------------- */

static bool valid_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch) != NULL)
            return false;
    }
    return true;
}

/* A field value (RFC 9110 5.5): visible characters, SP, HTAB and
 * obs-text; never another control character or DEL (CR and LF above all:
 * they would let a value write headers of its own). */
static bool valid_value(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = bw_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* Headers the server manages itself become state, not stored headers. */
static int managed_header(bw_http_response *res, const char *name, const char *value,
                          bool *handled)
{
    *handled = true;
    if (strcasecmp(name, "content-length") == 0) {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || n < 0)
            return -EINVAL;
        res->content_length = n;
        return 0;
    }
    if (strcasecmp(name, "connection") == 0) {
        if (strcasecmp(value, "close") == 0)
            res->close_after = true;
        return 0;
    }
    if (strcasecmp(name, "transfer-encoding") == 0)
        return -EINVAL; /* the server chooses the framing */
    *handled = false;
    return 0;
}

static int put_header(bw_http_response *res, const char *name, const char *value, bool replace)
{
    if (res->headers_sent)
        return BW_ESTATE;
    if (!valid_token(name) || !valid_value(value))
        return -EINVAL;
    bool handled;
    int rc = managed_header(res, name, value, &handled);
    if (handled)
        return rc;
    if (replace) {
        for (size_t i = 0; i < res->nheaders; i++) {
            if (strcasecmp(res->headers[i].name, name) == 0) {
                char *v = dup_str(value);
                if (v == NULL)
                    return -ENOMEM;
                bw_free(res->headers[i].value);
                res->headers[i].value = v;
                return 0;
            }
        }
    }
    if (res->nheaders == res->capheaders) {
        size_t cap = res->capheaders ? res->capheaders * 2 : 8;
        bw__out_header *h = bw_realloc(res->headers, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        res->headers = h;
        res->capheaders = cap;
    }
    char *n = dup_str(name);
    char *v = dup_str(value);
    if (n == NULL || v == NULL) {
        bw_free(n);
        bw_free(v);
        return -ENOMEM;
    }
    res->headers[res->nheaders++] = (bw__out_header){n, v};
    return 0;
}

int bw_http_response_set_header(bw_http_response *res, const char *name, const char *value)
{
    return put_header(res, name, value, true);
}

int bw_http_response_add_header(bw_http_response *res, const char *name, const char *value)
{
    return put_header(res, name, value, false);
}

int bw_http_response_set_status(bw_http_response *res, int status)
{
    if (res->headers_sent)
        return BW_ESTATE;
    /* A final status: 200-599 (RFC 9110 15: three digits, 1xx interim
     * only; bulwark sends 100 Continue itself and no other interim). */
    if (status < 200 || status > 599)
        return -EINVAL;
    res->status = status;
    return 0;
}

int bw_http_response_status(const bw_http_response *res)
{
    return res->status;
}

/* ---- Serialization ----------------------------------------------------- */

static bool no_body_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static int emit(bw_http_response *res, const void *data, size_t len)
{
    bw_http_request *r = res->req;
    if (r->conn == NULL)
        return -EPIPE;
    bw__conn_response_output(r->conn, r, data, len);
    return 0;
}

static void maybe_flush(bw_http_response *res)
{
    bw__conn *c = res->req->conn;
    if (c != NULL && !c->in_feed)
        bw__conn_flush(c);
}

/* Decimal digits of v at the end of buf[24]; returns the first digit.
 * (snprintf costs hundreds of instructions; this is the hot path.) */
static char *u64_digits(uint64_t v, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

static char *put(char *dst, const char *s, size_t n)
{
    memcpy(dst, s, n);
    return dst + n;
}

#define PUT_LITERAL(dst, lit) put((dst), (lit), sizeof(lit) - 1)

/* Decide framing and persistence, then write the head straight into the
 * connection's output. `known_len` is the whole body's length when the
 * response is complete (end before any write), or -1. */
static int send_head(bw_http_response *res, int64_t known_len)
{
    bw_http_request *r = res->req;
    bw__conn *c = r->conn;
    if (c == NULL)
        return -EPIPE;
    res->head_only = r->method == HTTP_HEAD;
    /* Its own request's wish to close (or the handler's, or a request body
     * the client may still be holding back, 100-continue not sent): no
     * request after those dispatched is read. Whether this response says
     * close is decided by whether it is the last (http_conn.c). */
    if (!r->keep_alive || res->close_after ||
        ((r->flags & BW__REQ_CONTINUE) && !(r->flags & BW__REQ_MSG_DONE)))
        bw__conn_stop_after_dispatched(c);
    res->close_after = bw__conn_is_last_response(c, r);

    const char *reason = "OK";
    size_t reason_len = 2;
    if (res->status != 200) { /* the common status skips the lookup */
        reason = bw_http_status_reason(res->status);
        reason_len = strlen(reason);
    }
    size_t dlen;
    const char *date = date_header(uv_now(r->srv->loop->uv), &dlen);
    size_t need = 16 + reason_len + dlen + 64 + 32;
    bool user_date = false;
    for (size_t i = 0; i < res->nheaders; i++) {
        need += strlen(res->headers[i].name) + strlen(res->headers[i].value) + 4;
        if (strcasecmp(res->headers[i].name, "date") == 0)
            user_date = true;
    }
    bw__buf *out = bw__conn_output_buf(c, r);
    if (bw__buf_reserve(out, need) != 0) {
        bw__conn_destroy(c, true);
        return -ENOMEM;
    }
    char *p = out->base + out->len;
    p = PUT_LITERAL(p, "HTTP/1.1 ");
    *p++ = (char)('0' + res->status / 100 % 10);
    *p++ = (char)('0' + res->status / 10 % 10);
    *p++ = (char)('0' + res->status % 10);
    *p++ = ' ';
    if (reason_len == 2)
        p = put(p, reason, 2); /* a constant size: no call to memcpy */
    else
        p = put(p, reason, reason_len);
    p = PUT_LITERAL(p, "\r\n");
    for (size_t i = 0; i < res->nheaders; i++) {
        p = put(p, res->headers[i].name, strlen(res->headers[i].name));
        p = PUT_LITERAL(p, ": ");
        p = put(p, res->headers[i].value, strlen(res->headers[i].value));
        p = PUT_LITERAL(p, "\r\n");
    }
    if (!user_date) {
        /* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n": 37 bytes for every
         * year of four digits; a constant size is copied inline. */
        if (dlen == 37)
            p = put(p, date, 37);
        else
            p = put(p, date, dlen);
    }
    if (!no_body_status(res->status)) {
        int64_t len = res->content_length >= 0 ? res->content_length : known_len;
        if (len >= 0) {
            char digits[24];
            char *d = u64_digits((uint64_t)len, digits + sizeof digits);
            p = PUT_LITERAL(p, "Content-Length: ");
            p = put(p, d, (size_t)(digits + sizeof digits - d));
            p = PUT_LITERAL(p, "\r\n");
            if (res->content_length < 0)
                res->content_length = len;
        } else if (r->version_minor >= 1) {
            res->chunked = true;
            p = PUT_LITERAL(p, "Transfer-Encoding: chunked\r\n");
        } else {
            res->close_after = true; /* HTTP/1.0: the body ends with the connection */
            bw__conn_stop_after_dispatched(c);
        }
    }
    if (res->close_after) {
        p = PUT_LITERAL(p, "Connection: close\r\n\r\n");
    } else {
        /* Winding down, the last so far may still become close. */
        if ((c->eof || c->wind_down) && out == &c->out && r == c->qtail)
            bw__conn_note_keepalive(c, (size_t)(p - out->base));
        p = PUT_LITERAL(p, "Connection: keep-alive\r\n\r\n");
    }
    out->len = (size_t)(p - out->base);
    res->headers_sent = true;
    bw__conn_output_added(c);
    return 0;
}

static int write_body(bw_http_response *res, const void *data, size_t len)
{
    if (len == 0 || res->head_only || no_body_status(res->status))
        return 0;
    if (res->content_length >= 0 && res->body_sent + len > (uint64_t)res->content_length)
        return BW_ELIMIT;
    int rc;
    if (res->chunked) {
        char size_line[24];
        char *q = size_line + sizeof size_line;
        *--q = '\n';
        *--q = '\r';
        size_t v = len;
        do {
            *--q = "0123456789abcdef"[v & 15];
            v >>= 4;
        } while (v != 0);
        rc = emit(res, q, (size_t)(size_line + sizeof size_line - q));
        if (rc == 0)
            rc = emit(res, data, len);
        if (rc == 0)
            rc = emit(res, "\r\n", 2);
    } else {
        rc = emit(res, data, len);
    }
    if (rc == 0)
        res->body_sent += len;
    return rc;
}

int bw_http_response_write(bw_http_response *res, const void *data, size_t len)
{
    if (res->ended)
        return BW_ESTATE;
    if (res->req->conn == NULL)
        return -EPIPE;
    int rc = 0;
    if (!res->headers_sent)
        rc = send_head(res, -1);
    if (rc == 0)
        rc = write_body(res, data, len);
    maybe_flush(res);
    return rc;
}

int bw_http_response_end(bw_http_response *res, const void *data, size_t len)
{
    if (res->ended)
        return BW_ESTATE;
    bw_http_request *r = res->req;
    if (r->conn == NULL) {
        res->ended = true;
        return -EPIPE;
    }
    int rc = 0;
    if (!res->headers_sent)
        rc = send_head(res, (int64_t)len);
    if (rc == 0 && len > 0)
        rc = write_body(res, data, len);
    if (rc == 0 && res->chunked && !res->head_only)
        rc = emit(res, "0\r\n\r\n", 5); /* a HEAD response has no body, nor its end */
    if (res->content_length >= 0 && !res->head_only && !no_body_status(res->status) &&
        res->body_sent != (uint64_t)res->content_length)
        res->close_after = true; /* short body: the connection cannot be reused */
    res->ended = true;
    if (r->conn != NULL)
        bw__conn_response_ended(r->conn, r);
    return rc == BW_ELIMIT ? rc : 0;
}

int bw_http_response_send(bw_http_response *res, int status, const char *content_type,
                          const void *body, size_t len)
{
    int rc = bw_http_response_set_status(res, status);
    if (rc != 0)
        return rc;
    /* Out of memory for the header: answer without it rather than leave the
     * response open (the client would wait forever). */
    int hrc = content_type != NULL ? bw_http_response_set_header(res, "Content-Type", content_type)
                                   : 0;
    rc = bw_http_response_end(res, body, len);
    return rc != 0 ? rc : hrc == -ENOMEM ? 0 : hrc;
}

void bw_http_response_close_connection(bw_http_response *res)
{
    res->close_after = true;
}

void bw_http_response_reset(bw_http_response *res)
{
    bw_http_request *r = res->req;
    res->ended = true;
    if (r->conn != NULL) {
        r->flags |= BW__REQ_RESET;
        bw__conn_destroy(r->conn, true);
    }
}

bool bw_http_response_headers_sent(const bw_http_response *res)
{
    return res->headers_sent;
}

bool bw_http_response_finished(const bw_http_response *res)
{
    return res->ended;
}

bool bw_http_response_needs_drain(const bw_http_response *res)
{
    bw__conn *c = res->req->conn;
    if (c == NULL)
        return false;
    /* A response behind others in the pipeline collects in its own pending
     * buffer until its turn, and that is unsent output too: otherwise a
     * client could make the server hold a whole response in memory by
     * pipelining it behind a slow one. Its drain callback fires once it has
     * reached the head of the queue and the connection's output drained. */
    return c->out.len + bw__conn_writing_len(c) + res->pending.len >
           c->srv->opts.max_output_buffer;
}

void bw_http_response_on_drain(bw_http_response *res, bw_http_drain_cb cb, void *arg)
{
    res->drain_cb = cb;
    res->drain_arg = arg;
}

static void drain_task(void *arg)
{
    bw_http_response *res = arg;
    bw_http_drain_cb cb = res->drain_cb;
    res->drain_cb = NULL;
    cb(res, res->drain_arg);
}

void bw__response_drained(bw_http_response *res)
{
    if (res->drain_cb == NULL || res->ended)
        return;
    bw_http_request *r = res->req;
    r->holds++;
    bw_invoke(r->domain != NULL ? r->domain : r->srv->member.owner, drain_task, res);
    bw__request_release(r);
}

bw_member *bw_http_response_member(bw_http_response *res)
{
    return &res->member;
}

bw_http_request *bw_http_response_request(bw_http_response *res)
{
    return res->req;
}

static void response_member_dispose(bw_member *m)
{
    /* Disposing the domain of an unfinished response: nothing correct can
     * be sent any more, so the client must not take it for a success. */
    bw_http_response *res = BW__CONTAINER_OF(m, bw_http_response, member);
    if (!res->ended)
        bw_http_response_reset(res);
}

/* ---- The server's own responses ---------------------------------------- */

void bw__response_send_error(bw_http_response *res, int status)
{
    if (res->headers_sent || res->ended)
        return;
    bw__response_reset(res);
    res->status = status;
    res->content_length = -1;
    /* No Connection: close of its own: after a parse error the connection
     * reads nothing more anyway (protocol_error), and after a handler's
     * error the requests pipelined behind this one are still answered. */
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", bw_http_status_reason(status));
    bw_http_response_set_header(res, "Content-Type", "text/plain");
    bw_http_response_end(res, body, (size_t)n);
}

size_t bw__response_simple(char *buf, size_t size, int status)
{
    const char *reason = bw_http_status_reason(status);
    int n = snprintf(buf, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason, strlen(reason) + 1, reason);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

void bw_http_default_request_error(bw_http_request *req, bw_http_response *res, bw_error *err,
                                void *data)
{
    (void)data;
    if (bw_log_get_level() <= BW_LOG_ERROR) {
        /* A report symbolizes every frame: not for a message nobody logs. */
        bw__log_request r = bw__log_request_of(req);
        bw__log_error(BW_LOG_ERROR, err, &r, "http: error in request %s %s", r.method, r.target);
    }
    if (res->ended)
        return; /* it was answered before the error: nothing to undo */
    if (!res->headers_sent) {
        /* The connection closes after it (requests pipelined behind it and
         * already dispatched are answered first): in a process that goes
         * on serving, a client that hit an error starts afresh. */
        res->close_after = true;
        bw__response_send_error(res, 500);
    } else {
        bw_http_response_reset(res);
    }
}
