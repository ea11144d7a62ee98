/*
 * bulwark-server: the seed's "Much better!" server, written on bulwark.
 *
 * A primary forks WORKERS workers (default 2) that share a listening socket
 * on HOST:PORT (default 127.0.0.1:1337). Each request runs in its own
 * domain. When a request fails, its worker answers it 500, stops
 * accepting, tells the primary (which forks a replacement at once), lets
 * every other request finish, and exits; a kill timer (KILL_TIMEOUT_MS,
 * default 30000) ends it if draining takes too long.
 *
 * Routes:
 *   /                 "ok"
 *   /error            faults asynchronously in a timer callback, as the seed's
 *                     flerb.bark() does (a call through a NULL object)
 *   /throw            bw_throw from the handler
 *   /segv             NULL dereference in the handler
 *   /abort            abort()
 *   /assert           a failed assert()
 *   /fpe              integer division by zero
 *   /stack-overflow   unbounded recursion
 *   /emit-error       an emitter's `error` event with no listener
 *   /callback-error   an error handed to an intercepted callback (ENOENT)
 *   /hang             a busy loop: the callback limit interrupts it (a 500, and
 *                     the worker retires like after a fault); with the limit
 *                     off, the primary's hang detection kills the worker
 *   /cleanup-segv     answers 200, then a cleanup of its domain faults: the
 *                     worker, in doubt, retires gracefully
 *   /pid              the worker's process id (which worker serves a connection)
 *   /slow?ms=N        answers after N ms
 *
 * Other settings: HOST, ERROR_DELAY_MS (the /error timer, default 10),
 * FAIL_AT_START=1 (every worker faults before it listens: shows the
 * primary's crash-loop protection), FAIL_AT_START_IF=<file> (the same for
 * workers started while that file exists: a rolling restart into a
 * generation that cannot start is abandoned),
 * HEARTBEAT_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, SHUTDOWN_TIMEOUT_MS,
 * POISON_THRESHOLD (0 turns quarantine off), QUARANTINE_MS,
 * RESTART_INTENSITY and RESTART_PERIOD_MS (crash-loop protection),
 * MAX_FORKS_PER_SECOND (the ceiling on forks, whatever their cause),
 * RESPONSE_TIMEOUT_MS (a request unanswered this long is an error in its
 * domain, handled like a fault; default 0: off),
 * CALLBACK_LIMIT_MS (a callback busy this long, in CPU time, is interrupted
 * and is an error in its domain, handled like a fault; default 1000; 0: off),
 * KEEP_ON_ERRORS (1: a throw or an unhandled error event costs only its
 * request, a fault still retires the worker; default 0, the seed's policy),
 * HANDOFF (0: a retiring worker closes its idle connections instead of
 * handing them to a sibling; default 1), HANDOFF_TIMEOUT_MS,
 * BW_EVENT_LOG (JSON lines of the primary's events), BW_LOG_LEVEL,
 * BW_LOG_FORMAT (text, the default, or json: one JSON object per line,
 * crash reports included; the library reads it, see bulwark/log.h).
 */
#undef NDEBUG /* /assert needs a live assert() */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulwark.h"

static uint64_t error_delay_ms = 10;

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? strtoull(v, NULL, 10) : def;
}

static long query_ms(bw_http_request *req)
{
    const char *q = strstr(bw_http_request_query(req), "ms=");
    return q != NULL ? atol(q + 3) : 100;
}

/* ---- The faults -------------------------------------------------------- */

typedef struct flerb {
    void (*bark)(struct flerb *self);
} flerb;

static flerb *volatile undefined_flerb = NULL;
static volatile int *volatile nowhere = NULL;
static volatile int zero = 0;
static volatile int hundred = 100; /* gcc turns 1/x into a compare: divide for real */

static void bark_later(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    /* Whoops! */
    undefined_flerb->bark(undefined_flerb);
}

/* Unbounded in practice (the limit is out of reach); the bound only tells
 * the compiler this is not an infinite loop it may reason about. */
static volatile int recursion_limit = 1 << 30;

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth == recursion_limit)
        return 0;
    return recurse(depth + 1) + frame[0];
}

static void on_opened(void *ctx, void *result)
{
    (void)result;
    bw_http_response_end(ctx, "opened?!\n", 9); /* not reached: the file is missing */
}

/* A cleanup of the request's domain that faults: it runs after the
 * response, when the domain is disposed (a test route, like /hang). */
static void faulting_cleanup(void *arg)
{
    (void)arg;
    *nowhere = 2;
}

/* ---- The handler ------------------------------------------------------- */

static void answer_slow(bw_timer *t, void *data)
{
    (void)t;
    bw_http_response_send(data, 200, "text/plain", "slow ok\n", 8);
}

static void handle_request(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    const char *path = bw_http_request_path(req);
    bw_loop *loop = bw_http_request_loop(req);
    if (strcmp(path, "/error") == 0) {
        /* We do some async stuff, and then... */
        bw_timeout(loop, error_delay_ms, bark_later, NULL, NULL);
    } else if (strcmp(path, "/throw") == 0) {
        bw_throwf(-EINVAL, "thrown by the /throw handler");
    } else if (strcmp(path, "/segv") == 0) {
        *nowhere = 1;
    } else if (strcmp(path, "/abort") == 0) {
        abort();
    } else if (strcmp(path, "/assert") == 0) {
        assert(zero == 1 && "the /assert route asserts something false");
    } else if (strcmp(path, "/fpe") == 0) {
        bw_http_response_end(res, NULL, (size_t)(hundred / zero));
    } else if (strcmp(path, "/stack-overflow") == 0) {
        bw_http_response_end(res, NULL, (size_t)recurse(0));
    } else if (strcmp(path, "/emit-error") == 0) {
        bw_emitter *e; /* bound to the request's domain */
        if (bw_emitter_new(&e) != 0)
            bw_throwf(-ENOMEM, "no memory for the emitter");
        bw_emitter_emit_error(e, bw_error_new(-EIO, "an emitter failed, and nobody listened"));
        bw_emitter_free(e);
    } else if (strcmp(path, "/callback-error") == 0) {
        bw_bound *cb;
        int rc = bw_domain_intercept(bw_http_request_domain(req), on_opened, res, &cb);
        if (rc != 0)
            bw_throwf(rc, "bw_domain_intercept: %s", bw_strerror(rc));
        bw_fs_open(loop, "/nonexistent/bulwark/callback-error", 0, 0, bw_bound_callback,
                   bw_bound_once(cb));
    } else if (strcmp(path, "/hang") == 0) {
        for (volatile unsigned long i = 0;; i++) {
        }
    } else if (strcmp(path, "/cleanup-segv") == 0) {
        bw_domain_defer(bw_http_request_domain(req), faulting_cleanup, NULL);
        bw_http_response_send(res, 200, "text/plain", "ok", 2);
    } else if (strcmp(path, "/pid") == 0) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        bw_http_response_send(res, 200, "text/plain", pid, (size_t)n);
    } else if (strcmp(path, "/slow") == 0) {
        bw_timeout(loop, (uint64_t)query_ms(req), answer_slow, res, NULL);
    } else {
        bw_http_response_end(res, "ok", 2);
    }
}

/* ---- Worker and primary ------------------------------------------------ */

static int worker_main(bw_worker_ctx *ctx, void *data)
{
    (void)data;
    const char *fail_if = getenv("FAIL_AT_START_IF");
    if (env_u64("FAIL_AT_START", 0) != 0 || (fail_if != NULL && access(fail_if, F_OK) == 0))
        *nowhere = 1; /* dies of SIGSEGV before listening */
    bw_loop *loop = bw_worker_ctx_loop(ctx);
    bw_http_options opts;
    bw_http_options_init(&opts);
    opts.response_timeout_ms = env_u64("RESPONSE_TIMEOUT_MS", opts.response_timeout_ms);
    bw_http_server *server;
    /* KEEP_ON_ERRORS=1: a throw or an error event costs its request only
     * (cluster.h, bw_crash_policy.keep_on_errors); faults still retire. */
    bw_crash_policy policy = {.keep_on_errors = env_u64("KEEP_ON_ERRORS", 0) != 0};
    int rc = bw_http_server_new(loop, &opts, handle_request, NULL, &server);
    if (rc == 0)
        rc = bw_worker_ctx_serve_http(ctx, server, &policy);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "worker %d: cannot serve: %s", bw_worker_ctx_id(ctx),
               bw_strerror(rc));
        return 1;
    }
    bw_loop_run(loop, UV_RUN_DEFAULT);
    bw_http_server_free(server);
    return bw_loop_free(loop) == 0 ? 0 : 1;
}

int main(void)
{
    bw_cluster_options o;
    bw_cluster_options_init(&o);
    o.workers = (int)env_u64("WORKERS", 2);
    o.kill_timeout_ms = env_u64("KILL_TIMEOUT_MS", o.kill_timeout_ms);
    o.heartbeat_timeout_ms = env_u64("HEARTBEAT_TIMEOUT_MS", o.heartbeat_timeout_ms);
    o.heartbeat_interval_ms = env_u64("HEARTBEAT_INTERVAL_MS", o.heartbeat_interval_ms);
    o.shutdown_timeout_ms = env_u64("SHUTDOWN_TIMEOUT_MS", o.shutdown_timeout_ms);
    o.poison_threshold = (int)env_u64("POISON_THRESHOLD", (uint64_t)o.poison_threshold);
    o.quarantine_ms = env_u64("QUARANTINE_MS", o.quarantine_ms);
    o.restart_intensity = (int)env_u64("RESTART_INTENSITY", (uint64_t)o.restart_intensity);
    o.restart_period_ms = env_u64("RESTART_PERIOD_MS", o.restart_period_ms);
    o.max_forks_per_second = (int)env_u64("MAX_FORKS_PER_SECOND", (uint64_t)o.max_forks_per_second);
    o.handoff = env_u64("HANDOFF", 1) != 0;
    o.handoff_timeout_ms = env_u64("HANDOFF_TIMEOUT_MS", o.handoff_timeout_ms);
    error_delay_ms = env_u64("ERROR_DELAY_MS", error_delay_ms);
    /* Process-wide, inherited by the workers. */
    if (getenv("CALLBACK_LIMIT_MS") != NULL)
        bw_guard_set_callback_limit(env_u64("CALLBACK_LIMIT_MS", 0));
    const char *host = getenv("HOST");
    return bw_cluster_run(&o, host != NULL ? host : "127.0.0.1", (int)env_u64("PORT", 1337),
                          worker_main, NULL);
}
