/*
 * bw-http-single: one bulwark process answering `GET /` with "ok", for the
 * throughput and instruction-count benchmarks (bench/http/run, bench/counts).
 * PORT (default 8080); DOMAIN_PER_REQUEST=0 turns the per-request domain
 * off, to measure what it costs. Prints "listening <port>" when ready;
 * SIGINT/SIGTERM close it gracefully.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bulwark.h"

static bw_http_server *server;
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
    if (bw_http_server_new(loop, &o, handler, NULL, &server) != 0 ||
        bw_http_server_listen(server, "127.0.0.1", port ? atoi(port) : 8080) != 0) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    uv_signal_init(bw_loop_uv(loop), &sigint);
    uv_signal_init(bw_loop_uv(loop), &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    printf("listening %d\n", bw_http_server_port(server));
    fflush(stdout);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    bw_http_server_free(server);
    return bw_loop_close(loop) == 0 ? 0 : 1;
}
