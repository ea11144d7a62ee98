/*
 * bw-http-single: one bulwark process answering `GET /` with "ok", for the
 * throughput and instruction-count benchmarks (bench/http/run, bench/counts).
 * PORT (default 8080); DOMAIN_PER_REQUEST=0 turns the per-request domain
 * off, to measure what it costs; METRICS=1 keeps the metrics counters
 * (bw_http_server_count_into); ROUTES=N serves `/` through a router
 * (router.h) holding N routes (`/` and N - 1 others: literal, with a
 * parameter, with a wildcard), to measure what routing costs. Prints "listening <port>" when ready;
 * SIGINT/SIGTERM close it gracefully.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulwark.h"

static bw_http_server *server;
static bw_http_router *router;
static uv_signal_t sigint, sigterm;

static void handler(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)req;
    (void)data;
    bw_http_response_end(res, "ok", 2);
}

static void on_closed(bw_http_server *s, int status, void *data)
{
    (void)s;
    (void)status;
    (void)data;
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    bw_http_server_close(server, on_closed, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    bw_loop *loop;
    if (bw_loop_new(&loop) != 0)
        return 1;
    bw_http_options o;
    bw_http_options_init(&o);
    const char *dpr = getenv("DOMAIN_PER_REQUEST");
    o.domain_per_request = dpr == NULL || atoi(dpr) != 0;
    const char *port = getenv("PORT");
    const char *routes = getenv("ROUTES");
    int nroutes = routes != NULL ? atoi(routes) : 0;
    if (nroutes > 0) {
        if (bw_http_router_new(&router) != 0 || bw_http_router_add(router, "GET", "/", handler, NULL))
            return 1;
        for (int i = 1; i < nroutes; i++) {
            char pattern[64];
            if (i % 3 == 0)
                snprintf(pattern, sizeof pattern, "/api/r%d", i);
            else if (i % 3 == 1)
                snprintf(pattern, sizeof pattern, "/items%d/:id", i);
            else
                snprintf(pattern, sizeof pattern, "/static%d/*", i);
            if (bw_http_router_add(router, i % 2 ? "GET" : "POST", pattern, handler, NULL) != 0)
                return 1;
        }
    }
    if (bw_http_server_new(loop, &o, router != NULL ? bw_http_router_handler : handler, router,
                           &server) != 0 ||
        bw_http_server_listen(server, "127.0.0.1", port ? atoi(port) : 8080) != 0) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    uv_signal_init(bw_loop_uv(loop), &sigint);
    uv_signal_init(bw_loop_uv(loop), &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    /* METRICS=1: the counters a cluster worker keeps (cluster.h, metrics),
     * to measure what they cost. */
    static bw_http_stats stats;
    const char *metrics = getenv("METRICS");
    if (metrics != NULL && atoi(metrics) != 0)
        bw_http_server_count_into(server, &stats);
    /* ACCESS_LOG=FILE: an access log (access_log.h) in ACCESS_LOG_FORMAT
     * (combined or json), to measure its cost and its system calls. */
    bw_access_log *access = NULL;
    const char *access_path = getenv("ACCESS_LOG");
    if (access_path != NULL && *access_path != '\0') {
        const char *format = getenv("ACCESS_LOG_FORMAT");
        if (bw_access_log_new(loop, access_path,
                              format != NULL && strcmp(format, "json") == 0 ? BW_ACCESS_LOG_JSON
                                                                            : BW_ACCESS_LOG_COMBINED,
                              &access) != 0)
            return 1;
        bw_http_server_on_finished(server, bw_access_log_finished, access);
    }
    printf("listening %d\n", bw_http_server_port(server));
    fflush(stdout);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    if (access != NULL) {
        bw_access_log_free(access);
        bw_loop_run(loop, UV_RUN_DEFAULT);
    }
    bw_http_server_free(server);
    bw_http_router_free(router);
    return bw_loop_free(loop) == 0 ? 0 : 1;
}
