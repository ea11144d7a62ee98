/*
 * http_request.c: the request: its head (target, path, query, headers),
 * its body (streamed or buffered), the client going away, and its life.
 *
 * Holds: one for the server, from the first byte until the request is
 * finalized (response finished and message parsed, or the connection gone);
 * one per user bw_http_request_hold. The struct is recycled when the last
 * hold goes.
 */
#include <errno.h>
#include <strings.h>

#include "http_internal.h"

static void request_member_dispose(bw_member *m);
static const bw__member_ops request_member_ops = {"http-request", request_member_dispose, false};

void bw__request_init(bw_http_request *r, bw__conn *c)
{
    /* Keep the buffers of a recycled struct; reset everything else. */
    bw__buf head = r->head;
    bw__header *headers = r->headers;
    size_t capheaders = r->capheaders;
    bw__out_header *out_headers = r->res.headers;
    size_t cap_out = r->res.capheaders;
    memset(r, 0, sizeof *r);
    r->head = head;
    r->head.len = 0;
    r->headers = headers;
    r->capheaders = capheaders;
    r->expect = -1;
    r->res.headers = out_headers;
    r->res.capheaders = cap_out;
    bw__member_init(&r->member, &request_member_ops);
    r->conn = c;
    r->srv = c->srv;
    r->holds = 1;
    bw__response_init(&r->res, r);
}

/* Where the path begins in an absolute-form target ("http://host/p?q",
 * RFC 9112 3.2.2: a server MUST accept it; the path is what follows the
 * authority), or 0 for any other form. *empty: no path at all ("/"). */
static size_t absolute_path_at(const char *t, size_t len, bool *empty)
{
    *empty = false;
    size_t scheme = strncasecmp(t, "http://", 7) == 0 ? 7 : strncasecmp(t, "https://", 8) == 0 ? 8 : 0;
    if (scheme == 0 || len < scheme)
        return 0;
    size_t i = scheme;
    while (i < len && t[i] != '/' && t[i] != '?')
        i++;
    *empty = i == len || t[i] == '?';
    return i;
}

/* Copy the path (what follows `skip` bytes of the target; "/" if
 * empty_path) and the query out of the target, each with its NUL. Inline:
 * the origin-form call (0, false) is the request path's. */
static inline void copy_path_query(bw_http_request *r, size_t skip, bool empty_path)
{
    const char *target = r->head.base;
    const char *q = memchr(target + skip, '?', r->target_len - skip);
    size_t q_off = q != NULL ? (size_t)(q - target) : r->target_len;
    size_t path_len = q_off - skip;
    size_t query_len = q != NULL ? r->target_len - q_off - 1 : 0;
    size_t path_off = r->head.len;
    /* Copies with their own NUL after the headers; the head buffer does not
     * change after this, so pointers into it stay valid. */
    if (bw__buf_reserve(&r->head, path_len + query_len + 3) != 0) {
        r->path = r->query = (char *)"";
        return;
    }
    target = r->head.base; /* it may have moved */
    if (empty_path)
        bw__buf_append(&r->head, "/", 1); /* "http://host" asks for "/" */
    else
        bw__buf_append(&r->head, target + skip, path_len);
    bw__buf_append(&r->head, "", 1);
    size_t query_off = r->head.len;
    if (q != NULL)
        bw__buf_append(&r->head, target + q_off + 1, query_len);
    bw__buf_append(&r->head, "", 1);
    r->path = r->head.base + path_off;
    r->query = r->head.base + query_off;
}

bool bw__request_finish_head(bw_http_request *r)
{
    const char *target = r->head.base;
    if (r->target_len == 1) {
        /* "/" (or "*"): the path is the target itself, with its NUL, and
         * the query that NUL; nothing to copy or scan. */
        r->path = r->head.base;
        r->query = r->head.base + 1;
        return true;
    }
    /* A fragment is no part of a request-target (RFC 9112 3.2: origin-form
     * = absolute-path [ "?" query ], and so for the other forms). */
    if (memchr(target, '#', r->target_len) != NULL)
        return false;
    if (target[0] == '/' || target[0] == '*') {
        copy_path_query(r, 0, false);
        return true;
    }
    bool empty_path;
    size_t skip = absolute_path_at(target, r->target_len, &empty_path);
    copy_path_query(r, skip, skip != 0 && empty_path);
    return true;
}

/* ---- Head -------------------------------------------------------------- */

const char *bw_http_request_method(const bw_http_request *req)
{
    return llhttp_method_name((llhttp_method_t)req->method);
}

const char *bw_http_request_target(const bw_http_request *req)
{
    return req->head.base;
}

int bw_http_request_path_decoded(bw_http_request *req, const char **out)
{
    size_t len = strlen(req->path), n;
    char *buf = bw_http_request_alloc(req, len + 1);
    if (buf == NULL)
        return -ENOMEM;
    int rc = bw__pct_decode(req->path, len, buf, &n, BW__DECODE_PATH);
    if (rc == 0)
        *out = buf;
    return rc;
}

int bw_http_request_query_param(bw_http_request *req, const char *name, size_t n,
                                const char **out)
{
    size_t qlen = strlen(req->query);
    char *scratch = bw_http_request_alloc(req, qlen + 1);
    if (scratch == NULL)
        return -ENOMEM;
    const char *value;
    size_t vlen;
    int rc = bw__query_find(req->query, name, n, &value, &vlen, scratch);
    if (rc != 0)
        return rc;
    /* The scratch space is free again: the value decodes into it. */
    size_t dlen;
    rc = bw__pct_decode(value, vlen, scratch, &dlen, BW__DECODE_PLUS);
    if (rc == 0)
        *out = scratch;
    return rc;
}

void bw_http_request_set_outcome(bw_http_request *req, bw_http_outcome outcome)
{
    if (outcome == BW_HTTP_QUARANTINED)
        req->flags |= BW__REQ_QUARANTINED;
}

const char *bw_http_request_route(const bw_http_request *req)
{
    return req->route;
}

void bw_http_request_set_route(bw_http_request *req, const char *pattern, void *state)
{
    req->route = pattern;
    req->route_state = state;
}

void *bw_http_request_route_state(const bw_http_request *req)
{
    return req->route_state;
}

const char *bw_http_request_path(const bw_http_request *req)
{
    return req->path;
}

const char *bw_http_request_query(const bw_http_request *req)
{
    return req->query;
}

int bw_http_request_version_minor(const bw_http_request *req)
{
    return req->version_minor > 1 ? 1 : req->version_minor; /* 1.2-1.9 are 1.1 */
}

const char *bw_http_request_header_nth(const bw_http_request *req, const char *name, size_t n)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->head.base + req->headers[i].name, name) == 0 && n-- == 0)
            return req->head.base + req->headers[i].value;
    }
    return NULL;
}

const char *bw_http_request_header(const bw_http_request *req, const char *name)
{
    return bw_http_request_header_nth(req, name, 0);
}

size_t bw_http_request_header_count(const bw_http_request *req)
{
    return req->nheaders;
}

bool bw_http_request_header_at(const bw_http_request *req, size_t i, const char **name,
                               const char **value)
{
    if (i >= req->nheaders)
        return false;
    if (name != NULL)
        *name = req->head.base + req->headers[i].name;
    if (value != NULL)
        *value = req->head.base + req->headers[i].value;
    return true;
}

/* ---- Body -------------------------------------------------------------- */

typedef struct body_call {
    bw_http_request *r;
    const char *data;
    size_t len;
    bool last;
} body_call;

static void body_task(void *arg)
{
    body_call *b = arg;
    bw_http_request *r = b->r;
    if (r->body_cb != NULL)
        r->body_cb(r, b->data, b->len, b->last, r->body_arg);
    else if (b->last && r->body_done_cb != NULL)
        r->body_done_cb(r, b->data, b->len, r->body_arg);
}

/* Call the user's body reader inside the request's domain, under a guard. */
static void deliver(bw_http_request *r, const char *data, size_t len, bool last)
{
    body_call b = {r, data, len, last};
    r->holds++;
    bw_invoke(r->domain != NULL ? r->domain : r->srv->member.owner, body_task, &b);
    bw__request_release(r);
}

void bw__request_body_data(bw_http_request *r, const char *data, size_t len)
{
    if (r->flags & (BW__REQ_FINISHED | BW__REQ_ABORTED))
        return; /* answered already: the rest of the body is read and dropped */
    if (r->body_cb != NULL) {
        deliver(r, data, len, false);
        return;
    }
    if (bw__buf_append(&r->body, data, len) != 0) {
        bw_log(BW_LOG_ERROR, "http: out of memory buffering a request body");
        r->flags |= BW__REQ_ABORTED;
    }
}

void bw__request_body_end(bw_http_request *r)
{
    if (r->flags & (BW__REQ_FINISHED | BW__REQ_ABORTED))
        return;
    if (r->body_cb != NULL)
        deliver(r, NULL, 0, true);
    else if (r->body_done_cb != NULL)
        deliver(r, r->body.base, r->body.len, true);
}

void bw__request_send_continue(bw_http_request *r)
{
    if (!(r->flags & BW__REQ_CONTINUE) || r->res.headers_sent || r->conn == NULL)
        return;
    r->flags &= ~(uint32_t)BW__REQ_CONTINUE;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    bw__conn_response_output(r->conn, r, msg, sizeof msg - 1);
    if (!r->conn->in_feed)
        bw__conn_flush(r->conn);
}

/* Buffered body that arrived before the reader was set, delivered after
 * the current callback (a callback never runs inside the call that set it). */
static void deliver_buffered(void *arg)
{
    bw_http_request *r = arg;
    if (!(r->flags & (BW__REQ_FINISHED | BW__REQ_ABORTED))) {
        if (r->body_cb != NULL) {
            if (r->body.len > 0)
                r->body_cb(r, r->body.base, r->body.len, false, r->body_arg);
            if (r->flags & BW__REQ_MSG_DONE)
                r->body_cb(r, NULL, 0, true, r->body_arg);
        } else if (r->body_done_cb != NULL && (r->flags & BW__REQ_MSG_DONE)) {
            r->body_done_cb(r, r->body.base, r->body.len, r->body_arg);
        }
    }
    bw__request_release(r);
}

static int set_reader(bw_http_request *r, bw_http_body_cb cb, bw_http_body_done_cb done,
                      void *arg)
{
    if (r->body_cb != NULL || r->body_done_cb != NULL)
        return BW_ESTATE;
    r->body_cb = cb;
    r->body_done_cb = done;
    r->body_arg = arg;
    bw__request_send_continue(r);
    bool have_buffered = r->body.len > 0 || (r->flags & BW__REQ_MSG_DONE);
    if (have_buffered) {
        r->holds++;
        int rc = bw_next_tick(r->srv->loop, deliver_buffered, r);
        if (rc != 0) {
            r->holds--;
            return rc;
        }
    }
    return 0;
}

int bw_http_request_on_body(bw_http_request *req, bw_http_body_cb cb, void *arg)
{
    return set_reader(req, cb, NULL, arg);
}

int bw_http_request_read_body(bw_http_request *req, bw_http_body_done_cb cb, void *arg)
{
    return set_reader(req, NULL, cb, arg);
}

/* ---- Abort ------------------------------------------------------------- */

static void abort_task(void *arg)
{
    bw_http_request *r = arg;
    if (r->abort_cb != NULL)
        r->abort_cb(r, r->abort_arg);
}

void bw__request_abort(bw_http_request *r)
{
    r->flags |= BW__REQ_ABORTED | BW__REQ_MSG_DONE;
    r->conn = NULL;
    r->res.ended = true; /* nothing more can be sent */
    if (r->abort_cb != NULL) {
        r->holds++;
        bw_invoke(r->domain != NULL ? r->domain : r->srv->member.owner, abort_task, r);
        bw__request_release(r);
    }
    bw__server_finalize_later(r->srv, r);
}

bool bw_http_request_aborted(const bw_http_request *req)
{
    return (req->flags & BW__REQ_ABORTED) != 0;
}

void bw_http_request_on_abort(bw_http_request *req, bw_http_abort_cb cb, void *arg)
{
    req->abort_cb = cb;
    req->abort_arg = arg;
}

/* ---- Life -------------------------------------------------------------- */

void bw__request_dispose_domain(bw_http_request *r)
{
    bw_domain *d = r->domain;
    if (d == NULL)
        return;
    r->domain = NULL;
    bw_domain_dispose(d);
    bw_domain_release(d);
}

void bw__request_release(bw_http_request *r)
{
    if (--r->holds > 0)
        return;
    bw_http_server *srv = r->srv;
    bw__member_unbind(&r->member);
    bw__member_unbind(&r->res.member);
    bw__request_dispose_domain(r);
    if (r->flags & BW__REQ_HEAD_DONE)
        srv->nrequests--;
    bw__arena_free_all(&r->arena);
    bw__buf_free(&r->body);
    bw__response_reset(&r->res);
    bw__server_request_recycle(srv, r);
}

void bw_http_request_hold(bw_http_request *req)
{
    req->holds++;
}

void bw_http_request_release(bw_http_request *req)
{
    bw__request_release(req);
}

static void request_member_dispose(bw_member *m)
{
    /* The request's domain is going: stop delivering its body. */
    bw_http_request *r = BW__CONTAINER_OF(m, bw_http_request, member);
    r->body_cb = NULL;
    r->body_done_cb = NULL;
    r->abort_cb = NULL;
}

void *bw_http_request_alloc(bw_http_request *req, size_t size)
{
    return bw__arena_alloc(&req->arena, size);
}

bw_domain *bw_http_request_domain(const bw_http_request *req)
{
    return req->domain;
}

bw_http_server *bw_http_request_server(const bw_http_request *req)
{
    return req->srv;
}

bw_loop *bw_http_request_loop(const bw_http_request *req)
{
    return req->srv->loop;
}

const char *bw_http_request_peer(const bw_http_request *req)
{
    if (req->peer != NULL)
        return req->peer; /* asked before its connection went */
    if (req->conn == NULL)
        return "?";
    /* Kept in the request's memory once asked for. */
    bw_http_request *r = (bw_http_request *)req;
    if (r->peer == NULL) {
        const char *text = bw__conn_peer_keep(r->conn);
        size_t n = strlen(text) + 1;
        r->peer = bw__arena_alloc(&r->arena, n);
        if (r->peer == NULL)
            return "?";
        memcpy(r->peer, text, n);
    }
    return r->peer;
}

/* X-Request-Id values kept: 1-64 of these (and nothing that could break
 * a log line or a header). */
static bool valid_request_id(const char *v)
{
    size_t n = 0;
    for (; v[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)v[n];
        bool ok = (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
                  ch == '-' || ch == '_' || ch == '.' || ch == ':' || ch == '+' || ch == '/' ||
                  ch == '=';
        if (!ok || n == 64)
            return false;
    }
    return n > 0;
}

const char *bw_http_request_id(bw_http_request *req)
{
    if (req->id != NULL)
        return req->id;
    const char *given = bw_http_request_header(req, "x-request-id");
    if (given != NULL && valid_request_id(given)) {
        req->id = given; /* in the head, which lives as long as the request */
        return req->id;
    }
    char id[40];
    memcpy(id, req->srv->id_prefix, 16);
    id[16] = '-';
    char digits[16];
    size_t k = sizeof digits;
    uint64_t seq = ++req->srv->id_seq;
    do
        digits[--k] = "0123456789abcdef"[seq & 15];
    while ((seq >>= 4) != 0);
    size_t n = 17 + sizeof digits - k;
    memcpy(id + 17, digits + k, sizeof digits - k);
    id[n] = '\0';
    char *kept = bw__arena_alloc(&req->arena, n + 1);
    if (kept == NULL)
        return "-"; /* out of memory: no id, not a crash */
    memcpy(kept, id, n + 1);
    req->id = kept;
    return kept;
}

bw__log_request bw__log_request_of(const bw_http_request *req)
{
    const char *peer = req->peer != NULL ? req->peer : req->conn != NULL ? bw__conn_peer(req->conn)
                                                                          : "?";
    return (bw__log_request){bw_http_request_method(req), bw_http_request_target(req), req->route,
                             peer, req->id};
}

void bw_http_request_set_data(bw_http_request *req, void *data)
{
    req->data = data;
}

void *bw_http_request_data(const bw_http_request *req)
{
    return req->data;
}

bw_member *bw_http_request_member(bw_http_request *req)
{
    return &req->member;
}

bw_http_response *bw_http_request_response(bw_http_request *req)
{
    return &req->res;
}
