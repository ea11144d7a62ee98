/*
 * alloc_test_server: an HTTP server whose allocator fails on demand, for
 * the allocation-failure test (tests/e2e/test_alloc.py), as SQLite does.
 *
 * The allocator counts the allocations made after the server is "armed"
 * (GET /arm arms it, for the next request: the warm path; COLD=1 arms it
 * before the first connection: the cold path); with FAIL_AT=N the Nth of them
 * fails, and with MODE=persist every one after it too. FAIL_AT=0 only
 * counts. GET /work is the request path under test: request memory from
 * the arena, a timer, a 10 KB response. Every failure must end in a clean
 * 500 or 503, or a closed connection: never a crash, a hang or a leak.
 *
 * It prints "listening <port>"; SIGTERM closes gracefully, then it prints
 * "allocations <count> failed <count>" and exits 0 if the loop closed
 * cleanly (under ASan, LeakSanitizer checks the rest at exit).
 */
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulwark.h"

static bw_http_server *server;
static uv_signal_t sigterm;

static bool armed;
static unsigned long counted, failed;
static unsigned long fail_at;
static bool persist;

static bool should_fail(void)
{
    if (!armed)
        return false;
    counted++;
    if (getenv("TRACE_ALLOC") != NULL) {
        /* Which call site made allocation number `counted` (for debugging). */
        void *frames[6];
        int n = backtrace(frames, 6);
        fprintf(stderr, "allocation %lu:\n", counted);
        backtrace_symbols_fd(frames + 2, n - 2, 2);
    }
    if (fail_at != 0 && (counted == fail_at || (persist && counted > fail_at))) {
        failed++;
        return true;
    }
    return false;
}

static void *test_malloc(size_t size, void *ctx)
{
    (void)ctx;
    return should_fail() ? NULL : malloc(size);
}

static void *test_realloc(void *ptr, size_t size, void *ctx)
{
    (void)ctx;
    return should_fail() ? NULL : realloc(ptr, size);
}

static void test_free(void *ptr, void *ctx)
{
    (void)ctx;
    free(ptr);
}

static void answer(bw_timer *t, void *data)
{
    (void)t;
    static char body[10240];
    memset(body, 'x', sizeof body);
    bw_http_response_send(data, 200, "text/plain", body, sizeof body);
}

static void handler(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    const char *path = bw_http_request_path(req);
    if (strcmp(path, "/arm") == 0) {
        bw_http_response_end(res, "armed", 5);
        armed = true; /* counting starts now: the tail of this request is on the path too */
        return;
    }
    if (strcmp(path, "/work") != 0) {
        bw_http_response_send(res, 404, NULL, NULL, 0);
        return;
    }
    /* A handler that copes with its own allocations failing. */
    char *scratch = bw_http_request_alloc(req, 256);
    if (scratch == NULL) {
        bw_http_response_send(res, 503, "text/plain", "no memory\n", 10);
        return;
    }
    strcpy(scratch, "request memory");
    if (bw_timeout(bw_http_request_loop(req), 1, answer, res, NULL) != 0)
        bw_http_response_send(res, 503, "text/plain", "no memory\n", 10);
}

static void on_closed(bw_http_server *s, int status, void *data)
{
    (void)s;
    (void)status;
    (void)data;
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_term(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    bw_http_server_close_all_connections(server);
    bw_http_server_close(server, on_closed, NULL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    const char *v = getenv("FAIL_AT");
    fail_at = v ? strtoul(v, NULL, 10) : 0;
    v = getenv("MODE");
    persist = v != NULL && strcmp(v, "persist") == 0;
    static const bw_allocator a = {test_malloc, test_realloc, test_free, NULL};
    bw_set_allocator(&a);
    bw_loop *loop;
    if (bw_loop_new(&loop) != 0)
        return 1;
    bw_http_options o;
    bw_http_options_init(&o);
    o.lingering_timeout_ms = 500;
    if (bw_http_server_new(loop, &o, handler, NULL, &server) != 0 ||
        bw_http_server_listen(server, "127.0.0.1", 0) != 0)
        return 1;
    uv_signal_init(bw_loop_uv(loop), &sigterm);
    uv_signal_start(&sigterm, on_term, SIGTERM);
    printf("listening %d\n", bw_http_server_port(server));
    if (getenv("COLD") != NULL)
        armed = true;
    bw_loop_run(loop, UV_RUN_DEFAULT);
    armed = false; /* tear-down itself must not be failed */
    int rc = bw_http_server_free(server);
    int lc = bw_loop_free(loop);
    printf("allocations %lu failed %lu free=%s loop=%s\n", counted, failed, bw_err_name(rc),
           bw_err_name(lc));
    return rc == 0 && lc == 0 ? 0 : 3;
}
