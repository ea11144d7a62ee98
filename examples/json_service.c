/*
 * json_service: a small JSON API on the router (router.h), served by the
 * crash-safe cluster (cluster.h): what a new service looks like.
 *
 *   GET  /health          {"ok": true}
 *   GET  /items/:id       {"id": "<id>"} (the parameter, decoded)
 *   POST /items           {"created": <bytes of the body>}, 201
 *   GET  /slow?ms=N       answers after N ms (default 100), asynchronously
 *   GET  /static/...      {"file": "<the rest of the path>"} (a wildcard route)
 *   GET  /bug             a deliberate NULL dereference: that request gets
 *                         a 500 (JSON, like every error here), its worker
 *                         retires, and nobody else notices
 *   GET  /bugs/:id        the same bug behind an id: crashes of several ids
 *                         quarantine the route, not each id
 *   anything else         404, or 405 with Allow
 *
 * Environment: PORT (default 8080; 0 picks one), WORKERS (default 2),
 * POISON_THRESHOLD (crashes of one route that quarantine it; default 0:
 * off), QUARANTINE_MS, CLIENT_FAULT_BUDGET (crashes one client address may
 * cause before it is answered 429; default 0: off), CLIENT_BLOCK_MS,
 * BW_EVENT_LOG (the cluster's events as JSON lines).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulwark.h"

static void send_json(bw_http_response *res, int status, const char *json)
{
    bw_http_response_send(res, status, "application/json", json, strlen(json));
}

static void health(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)req;
    (void)data;
    send_json(res, 200, "{\"ok\": true}\n");
}

/* A string as a JSON string's contents: quotes, backslashes and control
 * characters escaped (a route parameter is the client's). */
static void json_escape(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (; *in != '\0' && o + 7 < size; in++) {
        unsigned char ch = (unsigned char)*in;
        if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(out + o, size - o, "\\%c", ch);
        else if (ch < 0x20)
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

static void get_item(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    char id[256], body[320];
    json_escape(bw_http_route_param(req, "id"), id, sizeof id);
    snprintf(body, sizeof body, "{\"id\": \"%s\"}\n", id);
    send_json(res, 200, body);
}

static void on_item_body(bw_http_request *req, const char *body, size_t len, void *arg)
{
    (void)body;
    char out[64];
    snprintf(out, sizeof out, "{\"created\": %zu}\n", len);
    send_json(bw_http_request_response(req), 201, out);
    (void)arg;
}

static void post_item(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)res;
    (void)data;
    bw_http_request_read_body(req, on_item_body, NULL);
}

static void answer_slow(bw_timer *t, void *res)
{
    (void)t;
    send_json(res, 200, "{\"slow\": true}\n");
}

static void slow(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    const char *ms = "100";
    bw_http_request_query_param(req, "ms", 0, &ms);
    bw_timeout(bw_http_request_loop(req), strtoull(ms, NULL, 10), answer_slow, res, NULL);
}

static void static_file(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    char file[256], body[320];
    json_escape(bw_http_route_param(req, "*"), file, sizeof file);
    snprintf(body, sizeof body, "{\"file\": \"%s\"}\n", file);
    send_json(res, 200, body);
}

struct widget {
    int (*render)(void);
};
static struct widget *volatile missing_widget = NULL;

static void bug(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)req;
    (void)res;
    (void)data;
    missing_widget->render(); /* the deliberate bug: a NULL dereference */
}

/* A quarantined route (it crashed POISON_THRESHOLD workers) answers JSON
 * too, with the real time left. */
static void quarantined(bw_http_request *req, bw_http_response *res, uint64_t retry_after_s,
                        void *data)
{
    (void)req;
    (void)data;
    char body[96], retry[24];
    snprintf(body, sizeof body, "{\"error\": \"quarantined\", \"retry_after\": %llu}\n",
             (unsigned long long)retry_after_s);
    snprintf(retry, sizeof retry, "%llu", (unsigned long long)retry_after_s);
    bw_http_response_set_header(res, "Retry-After", retry);
    send_json(res, 503, body);
}

static bw_http_router *router;

static int worker_main(bw_worker_ctx *ctx, void *data)
{
    (void)data;
    bw_loop *loop = bw_worker_ctx_loop(ctx);
    bw_http_server *server;
    int rc = bw_http_server_new(loop, NULL, bw_http_router_handler, router, &server);
    /* Errors answer JSON too: the crash policy's 500 has this body. */
    bw_crash_policy policy = {.body = "{\"error\": \"internal\"}\n",
                              .content_type = "application/json",
                              .on_quarantined = quarantined};
    if (rc == 0)
        rc = bw_worker_ctx_serve_http(ctx, server, &policy);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "json_service: cannot serve: %s", bw_strerror(rc));
        return 1;
    }
    bw_loop_run(loop, UV_RUN_DEFAULT);
    bw_http_server_free(server);
    return bw_loop_free(loop) == 0 ? 0 : 1;
}

int main(void)
{
    int rc = bw_http_router_new(&router);
    struct {
        const char *method, *pattern;
        bw_http_handler handler;
    } routes[] = {
        {"GET", "/health", health},      {"GET", "/items/:id", get_item},
        {"POST", "/items", post_item},   {"GET", "/slow", slow},
        {"GET", "/static/*", static_file}, {"GET", "/bug", bug},
        {"GET", "/bugs/:id", bug},
    };
    for (size_t i = 0; rc == 0 && i < sizeof routes / sizeof routes[0]; i++)
        rc = bw_http_router_add(router, routes[i].method, routes[i].pattern, routes[i].handler,
                                NULL);
    if (rc != 0) {
        fprintf(stderr, "json_service: routes: %s\n", bw_strerror(rc));
        return 1;
    }
    bw_cluster_options o;
    bw_cluster_options_init(&o);
    const char *w = getenv("WORKERS"), *port = getenv("PORT");
    if (w != NULL)
        o.workers = atoi(w);
    /* /bug is hit on purpose, again and again: no quarantine unless asked
     * (POISON_THRESHOLD, QUARANTINE_MS). */
    const char *pt = getenv("POISON_THRESHOLD"), *qm = getenv("QUARANTINE_MS");
    o.poison_threshold = pt != NULL ? atoi(pt) : 0;
    if (qm != NULL)
        o.quarantine_ms = strtoull(qm, NULL, 10);
    const char *fb = getenv("CLIENT_FAULT_BUDGET"), *cb = getenv("CLIENT_BLOCK_MS");
    o.client_fault_budget = fb != NULL ? atoi(fb) : 0;
    if (cb != NULL)
        o.client_block_ms = strtoull(cb, NULL, 10);
    rc = bw_cluster_run(&o, "127.0.0.1", port != NULL ? atoi(port) : 8080, worker_main, NULL);
    bw_http_router_free(router);
    return rc;
}
