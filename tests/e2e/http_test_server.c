/*
 * http_test_server: a one-process bulwark HTTP server for the end-to-end
 * tests (tests/e2e/test_http.py). It listens on 127.0.0.1 (and ::1 if
 * LISTEN6=1) on port PORT (default 0: any), prints "listening <port>" once
 * ready, and serves routes that exercise each feature. Limits come from the
 * environment (see options_from_env).
 *
 * Signals: SIGUSR1 starts a graceful close (calling close twice, and
 * printing both statuses); SIGUSR2 closes the idle connections; SIGTERM
 * closes everything at once. When the close callback fires, the program
 * frees the server, checks that the loop closes cleanly and exits 0, so a
 * leak (under ASan) or a stuck handle fails the test.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bulwark.h"

static bw_loop *loop;
static bw_http_server *server;
static uv_signal_t sig_close, sig_idle, sig_all;
static int close_callbacks;

static volatile int *volatile nowhere = NULL;

static long query_num(bw_http_request *req, const char *key, long def)
{
    const char *q = bw_http_request_query(req);
    size_t klen = strlen(key);
    while (q && *q) {
        if (strncmp(q, key, klen) == 0 && q[klen] == '=')
            return atol(q + klen + 1);
        q = strchr(q, '&');
        if (q)
            q++;
    }
    return def;
}

/* ---- Routes ------------------------------------------------------------ */

static void answer_later(bw_timer *t, void *data)
{
    (void)t;
    bw_http_response *res = data;
    bw_http_response_send(res, 200, "text/plain", "slow ok\n", 8);
}

static void fault_in_timer(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    *nowhere = 1; /* SIGSEGV inside the request's domain */
}

static void fault_after_headers(bw_timer *t, void *data)
{
    (void)t;
    bw_http_response *res = data;
    (void)res;
    bw_throwf(-5, "failure after the headers went out");
}

typedef struct echo_state {
    bw_http_response *res;
    size_t total;
} echo_state;

static void echo_chunk(bw_http_request *req, const char *data, size_t len, bool last, void *arg)
{
    (void)req;
    echo_state *st = arg;
    if (len > 0) {
        bw_http_response_write(st->res, data, len);
        st->total += len;
    }
    if (last)
        bw_http_response_end(st->res, NULL, 0);
}

static void echo_whole(bw_http_request *req, const char *body, size_t len, void *arg)
{
    (void)req;
    bw_http_response_send(arg, 200, "application/octet-stream", body, len);
}

/* The head read again once the whole body (and its trailers, if chunked)
 * has arrived. */
static void head_after_body(bw_http_request *req, const char *body, size_t len, void *arg)
{
    (void)body;
    const char *host = bw_http_request_header(req, "host");
    char out[1024];
    int n = snprintf(out, sizeof out, "path=%s query=%s host=%s headers=%zu body=%zu\n",
                     bw_http_request_path(req), bw_http_request_query(req), host ? host : "-",
                     bw_http_request_header_count(req), len);
    bw_http_response_send(arg, 200, "text/plain", out, n > 0 ? (size_t)n : 0);
}

typedef struct big_state {
    long left;
} big_state;

/* Stream a large body, pausing whenever the connection's unsent output is
 * over its bound (bw_http_response_needs_drain) until it drains. */
static void big_continue(bw_http_response *res, void *arg)
{
    big_state *st = arg;
    static char block[16384];
    memset(block, 'x', sizeof block);
    while (st->left > 0 && !bw_http_response_needs_drain(res)) {
        long n = st->left < (long)sizeof block ? st->left : (long)sizeof block;
        bw_http_response_write(res, block, (size_t)n);
        st->left -= n;
    }
    if (st->left > 0)
        bw_http_response_on_drain(res, big_continue, st);
    else
        bw_http_response_end(res, NULL, 0);
}

static void list_headers(bw_http_request *req, bw_http_response *res)
{
    char out[8192];
    size_t n = 0;
    const char *name, *value;
    /* snprintf returns what it would have written: n is clamped, so that
     * more headers than fit truncate the listing instead of overrunning. */
    for (size_t i = 0; bw_http_request_header_at(req, i, &name, &value) && n < sizeof out; i++)
        n += (size_t)snprintf(out + n, sizeof out - n, "%s: %s\n", name, value);
    const char *x = bw_http_request_header(req, "X-TEST");
    const char *x2 = bw_http_request_header_nth(req, "x-test", 1);
    if (n < sizeof out)
        n += (size_t)snprintf(out + n, sizeof out - n, "lookup x-test: %s | second: %s\n",
                              x ? x : "-", x2 ? x2 : "-");
    if (n >= sizeof out)
        n = sizeof out - 1;
    bw_http_response_send(res, 200, "text/plain", out, n);
}

/* The seed's manual pattern, on top of the request's own domain: a domain
 * of the handler's, the request and response added to it, its own error
 * handler. Released when the request's domain ends. */
static void manual_error(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    bw_http_response *res = data;
    char body[256];
    int n = snprintf(body, sizeof body, "manual domain: %s (origin %s)\n", bw_error_message(err),
                     bw_error_origin_name(bw_error_origin_of(err)));
    bw_http_response_close_connection(res);
    bw_http_response_send(res, 500, "text/plain", body, n > 0 ? (size_t)n : 0);
}

static void release_domain(void *d)
{
    bw_domain_release(d);
}

static void manual_hold(bw_http_request *req, bw_http_response *res)
{
    bw_domain *own = bw_http_request_domain(req);
    bw_domain *d = NULL;
    if (own == NULL || bw_domain_new(&d) != 0 || bw_domain_defer(own, release_domain, d) != 0) {
        if (d != NULL)
            bw_domain_release(d);
        bw_http_response_send(res, 503, "text/plain", "no domain\n", 10);
        return;
    }
    bw_domain_on_error(d, manual_error, res);
    bw_domain_add(d, bw_http_request_member(req));
    bw_domain_add(d, bw_http_response_member(res));
    /* ...and, like /hold, never answers. */
}

/* Cleanups of the request's domain that fail once the response went out
 * (issue 12, item 7: they run under guards of their own). */
static void cleanup_throws(void *arg)
{
    (void)arg;
    bw_throwf(-5, "thrown by a cleanup after the response");
}

static void cleanup_faults(void *arg)
{
    (void)arg;
    *nowhere = 3; /* SIGSEGV in a cleanup, outside every callback's guard */
}

static void answer_then_fail_in_cleanup(bw_http_request *req, bw_http_response *res,
                                        bw_task_fn cleanup)
{
    bw_domain *d = bw_http_request_domain(req);
    if (d == NULL || bw_domain_defer(d, cleanup, NULL) != 0) {
        bw_http_response_send(res, 503, "text/plain", "no domain\n", 10);
        return;
    }
    bw_http_response_end(res, "ok", 2);
}

/* /decode/...?...: the decoded path and the first two values of "q"
 * (http.h's decoding accessors), each as its status and value. */
static void answer_decoded(bw_http_request *req, bw_http_response *res)
{
    char body[1024];
    const char *path = "", *q0 = "", *q1 = "";
    int prc = bw_http_request_path_decoded(req, &path);
    int q0rc = bw_http_request_query_param(req, "q", 0, &q0);
    int q1rc = bw_http_request_query_param(req, "q", 1, &q1);
    int n = snprintf(body, sizeof body, "path %s [%s]\nq0 %s [%s]\nq1 %s [%s]\n",
                     bw_err_name(prc), path, bw_err_name(q0rc), q0, bw_err_name(q1rc), q1);
    bw_http_response_send(res, 200, "text/plain", body, (size_t)n);
}

/* FINISHED_LOG=1: the finished hook's view of each request, a line each. */
static void on_finished(bw_http_request *req, const bw_http_finished *f, void *data)
{
    (void)data;
    static const char *outcomes[] = {"answered", "faulted", "reset", "aborted", "quarantined"};
    printf("finished %s %s status=%d bytes=%llu outcome=%s peer-ok=%d\n", f->method, f->target,
           f->status, (unsigned long long)f->body_bytes, outcomes[f->outcome],
           strchr(bw_http_request_peer(req), ':') != NULL);
}

/* ---- Routes that try the response API's validations (tests/e2e/
 * test_conformance.py): each reports the status the call returned. ---- */

/* /api-status?code=N[&stream=1]: set_status(N); if refused, 200 with
 * "set_status=<name>"; if accepted, the body "body" (written, then ended,
 * with stream=1: the length unknown when the head goes out). */
static void api_status(bw_http_request *req, bw_http_response *res)
{
    int rc = bw_http_response_set_status(res, (int)query_num(req, "code", 200));
    if (rc != 0) {
        char out[64];
        int n = snprintf(out, sizeof out, "set_status=%s\n", bw_err_name(rc));
        bw_http_response_send(res, 200, "text/plain", out, n > 0 ? (size_t)n : 0);
    } else if (query_num(req, "stream", 0)) {
        bw_http_response_write(res, "body", 4);
        bw_http_response_end(res, NULL, 0);
    } else {
        bw_http_response_end(res, "body", 4);
    }
}

/* /api-header?case=N: one set_header (or add_header) call from the table;
 * the body says what it returned ("set_header=<name>"). */
static const struct {
    const char *name, *value;
    bool add;
} api_header_cases[] = {
    {"X-Ok", "fine", false},                       /* 0: a valid header */
    {"X-Bad", "a\r\nX-Injected: 1", false},        /* 1: CRLF in the value */
    {"X-Bad", "a\nX-Injected: 1", false},          /* 2: LF in the value */
    {"X-Bad", "a\rX-Injected: 1", false},          /* 3: CR in the value */
    {"X-Bad", "a\x01" "b", false},                 /* 4: a CTL in the value */
    {"X-Bad", "a\x7f" "b", false},                 /* 5: DEL in the value */
    {"X Bad", "v", false},                         /* 6: SP in the name */
    {"X-Bad:", "v", false},                        /* 7: a colon in the name */
    {"", "v", false},                              /* 8: an empty name */
    {"Transfer-Encoding", "chunked", false},       /* 9: framing is the server's */
    {"Content-Length", "abc", false},              /* 10: not a number */
    {"Content-Length", "-1", false},               /* 11: negative */
    {"X-Obs", "caf\xc3\xa9", false},               /* 12: obs-text: allowed */
    {"X\x80", "v", false},                         /* 13: obs-text in the name */
    {"X-Tab", "a\tb", false},                      /* 14: HTAB inside: allowed */
    {"X-Bad", "a\r\nX-Injected: 1", true},         /* 15: add_header, CRLF */
    {"Transfer-Encoding", "gzip", true},           /* 16: add_header, framing */
    {"Content-Length", "5, 6", false},             /* 17: a list */
};

static void api_header(bw_http_request *req, bw_http_response *res)
{
    long i = query_num(req, "case", 0);
    if (i < 0 || (size_t)i >= sizeof api_header_cases / sizeof api_header_cases[0]) {
        bw_http_response_send(res, 404, "text/plain", "no such case\n", 13);
        return;
    }
    int rc = api_header_cases[i].add
                 ? bw_http_response_add_header(res, api_header_cases[i].name,
                                               api_header_cases[i].value)
                 : bw_http_response_set_header(res, api_header_cases[i].name,
                                               api_header_cases[i].value);
    char out[64];
    int n = snprintf(out, sizeof out, "set_header=%s\n", bw_err_name(rc));
    /* A Content-Length the call accepted would frame this body: the real
     * length replaces it. */
    if (rc == 0 && strcasecmp(api_header_cases[i].name, "Content-Length") == 0) {
        char len[24];
        snprintf(len, sizeof len, "%d", n > 0 ? n : 0);
        bw_http_response_set_header(res, "Content-Length", len);
    }
    bw_http_response_send(res, 200, "text/plain", out, n > 0 ? (size_t)n : 0);
}

static void handler(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    const char *path = bw_http_request_path(req);
    bw_loop *l = bw_http_request_loop(req);
    if (strcmp(bw_http_request_method(req), "CONNECT") == 0) {
        /* A 2xx to CONNECT, with Content-Length: 0: the server answers
         * CONNECT 501 itself (it does not tunnel), so this must never run
         * (test_Q_05 in test_conformance.py). */
        bw_http_response_end(res, NULL, 0);
    } else if (strcmp(path, "/") == 0) {
        bw_http_response_end(res, "ok", 2);
    } else if (strncmp(path, "/decode", 7) == 0) {
        answer_decoded(req, res);
    } else if (strcmp(path, "/api-status") == 0) {
        api_status(req, res);
    } else if (strcmp(path, "/api-header") == 0) {
        api_header(req, res);
    } else if (strcmp(path, "/slow") == 0) {
        bw_timeout(l, (uint64_t)query_num(req, "ms", 100), answer_later, res, NULL);
    } else if (strcmp(path, "/segv-timer") == 0) {
        bw_timeout(l, 1, fault_in_timer, NULL, NULL);
    } else if (strcmp(path, "/throw") == 0) {
        bw_throwf(-22, "thrown by the handler");
    } else if (strcmp(path, "/segv") == 0) {
        *nowhere = 1;
    } else if (strcmp(path, "/cleanup-throw") == 0) {
        answer_then_fail_in_cleanup(req, res, cleanup_throws);
    } else if (strcmp(path, "/cleanup-segv") == 0) {
        answer_then_fail_in_cleanup(req, res, cleanup_faults);
    } else if (strcmp(path, "/headers-then-fault") == 0) {
        bw_http_response_set_header(res, "Content-Length", "100");
        bw_http_response_write(res, "partial", 7);
        bw_timeout(l, 1, fault_after_headers, res, NULL);
    } else if (strcmp(path, "/echo") == 0) {
        echo_state *st = bw_http_request_alloc(req, sizeof *st);
        st->res = res;
        st->total = 0;
        bw_http_request_on_body(req, echo_chunk, st);
    } else if (strcmp(path, "/echo-whole") == 0) {
        bw_http_request_read_body(req, echo_whole, res);
    } else if (strcmp(path, "/head-after-body") == 0) {
        bw_http_request_read_body(req, head_after_body, res);
    } else if (strcmp(path, "/chunked") == 0) {
        long pieces = query_num(req, "n", 3);
        for (long i = 0; i < pieces; i++) {
            char piece[32];
            int k = snprintf(piece, sizeof piece, "piece %ld\n", i);
            bw_http_response_write(res, piece, (size_t)k);
        }
        bw_http_response_end(res, NULL, 0);
    } else if (strcmp(path, "/big") == 0) {
        big_state *st = bw_http_request_alloc(req, sizeof *st);
        st->left = query_num(req, "bytes", 1 << 20);
        char len[32];
        snprintf(len, sizeof len, "%ld", st->left);
        bw_http_response_set_header(res, "Content-Length", len);
        big_continue(res, st);
    } else if (strcmp(path, "/headers") == 0) {
        list_headers(req, res);
    } else if (strcmp(path, "/close") == 0) {
        bw_http_response_close_connection(res);
        bw_http_response_end(res, "bye", 3);
    } else if (strcmp(path, "/hold") == 0) {
        /* Never answered by the handler: only a close can end it. */
    } else if (strcmp(path, "/manual-hold") == 0) {
        manual_hold(req, res);
    } else if (strcmp(path, "/stall") == 0) {
        /* Starts a chunked body and never ends it. */
        bw_http_response_write(res, "partial", 7);
    } else {
        bw_http_response_send(res, 404, "text/plain", "not found\n", 10);
    }
}

/* ---- Set-up and tear-down ---------------------------------------------- */

static uint64_t env_num(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    return v != NULL && *v ? strtoull(v, NULL, 10) : def;
}

static void options_from_env(bw_http_options *o)
{
    bw_http_options_init(o);
    o->max_head_size = env_num("MAX_HEAD", o->max_head_size);
    o->max_body_size = env_num("MAX_BODY", o->max_body_size);
    o->headers_timeout_ms = env_num("HEADERS_TIMEOUT_MS", o->headers_timeout_ms);
    o->request_timeout_ms = env_num("REQUEST_TIMEOUT_MS", o->request_timeout_ms);
    o->keepalive_timeout_ms = env_num("KEEPALIVE_MS", o->keepalive_timeout_ms);
    o->max_connections = env_num("MAX_CONNS", o->max_connections);
    o->max_output_buffer = env_num("MAX_OUTPUT", o->max_output_buffer);
    o->close_grace_ms = env_num("GRACE_MS", o->close_grace_ms);
    o->lingering_timeout_ms = env_num("LINGER_MS", o->lingering_timeout_ms);
    o->send_timeout_ms = env_num("SEND_TIMEOUT_MS", o->send_timeout_ms);
    o->response_timeout_ms = env_num("RESPONSE_TIMEOUT_MS", o->response_timeout_ms);
    o->domain_per_request = env_num("DOMAIN_PER_REQUEST", 1) != 0;
    o->defer_continue = env_num("DEFER_CONTINUE", 0) != 0;
    o->proxy_protocol = env_num("PROXY_PROTOCOL", 0) != 0;
}

static void on_closed(bw_http_server *s, int status, void *data)
{
    (void)s;
    (void)data;
    close_callbacks++;
    printf("close-callback status=%d count=%d\n", status, close_callbacks);
    printf("after-close close=%s\n", bw_err_name(bw_http_server_close(server, on_closed, NULL)));
    /* A late signal from the test must not end the process. Closing a
     * watcher puts its signal back to the default action (termination), so
     * the three are blocked from before the closes until they are ignored;
     * ignoring a signal also discards one that arrived meanwhile. */
    sigset_t late, old;
    sigemptyset(&late);
    sigaddset(&late, SIGUSR1);
    sigaddset(&late, SIGUSR2);
    sigaddset(&late, SIGTERM);
    sigprocmask(SIG_BLOCK, &late, &old);
    uv_close((uv_handle_t *)&sig_close, NULL);
    uv_close((uv_handle_t *)&sig_idle, NULL);
    uv_close((uv_handle_t *)&sig_all, NULL);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void on_sig_close(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    int first = bw_http_server_close(server, on_closed, NULL);
    int second = bw_http_server_close(server, on_closed, NULL);
    printf("close first=%s second=%s connections=%zu\n", bw_err_name(first), bw_err_name(second),
           bw_http_server_connection_count(server));
}

static void on_sig_idle(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    bw_http_server_close_idle_connections(server);
    printf("closed idle connections\n");
}

static void on_sig_all(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    bw_http_server_close_all_connections(server);
    int rc = bw_http_server_close(server, on_closed, NULL);
    printf("close-all close=%s\n", bw_err_name(rc));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (bw_loop_new(&loop) != 0)
        return 1;
    bw_http_options o;
    options_from_env(&o);
    int rc = bw_http_server_new(loop, &o, handler, NULL, &server);
    if (rc == 0 && env_num("FINISHED_LOG", 0))
        rc = bw_http_server_on_finished(server, on_finished, NULL);
    if (rc == 0)
        rc = bw_http_server_listen(server, "127.0.0.1", (int)env_num("PORT", 0));
    if (rc == 0 && env_num("LISTEN6", 0))
        rc = bw_http_server_listen(server, "::1", bw_http_server_port(server));
    if (rc != 0) {
        fprintf(stderr, "listen: %s\n", bw_strerror(rc));
        return 1;
    }
    uv_signal_init(bw_loop_uv(loop), &sig_close);
    uv_signal_init(bw_loop_uv(loop), &sig_idle);
    uv_signal_init(bw_loop_uv(loop), &sig_all);
    uv_signal_start(&sig_close, on_sig_close, SIGUSR1);
    uv_signal_start(&sig_idle, on_sig_idle, SIGUSR2);
    uv_signal_start(&sig_all, on_sig_all, SIGTERM);
    printf("listening %d\n", bw_http_server_port(server));
    bw_loop_run(loop, UV_RUN_DEFAULT);
    rc = bw_http_server_free(server);
    int lc = bw_loop_free(loop);
    printf("exit free=%s loop=%s\n", bw_err_name(rc), bw_err_name(lc));
    return rc == 0 && lc == 0 ? 0 : 3;
}
