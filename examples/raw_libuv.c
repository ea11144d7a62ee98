/*
 * raw_libuv: running your own libuv callbacks inside a domain.
 *
 * bulwark wraps timers, emitters and a few fs requests, but any libuv
 * handle of your own can join a domain too. The pattern:
 *
 *   1. Keep the domain with the handle (here in the handle's context, and
 *      as a bw_resource so that disposing the domain closes the handle).
 *   2. In the libuv callback, pack the arguments and call bw_invoke(d, fn,
 *      &args): fn runs under a guard, inside d. A fault or bw_throw in fn
 *      reaches d's error handler; libuv's own frames are never unwound.
 *
 * Here a uv_idle_t handle runs three times; the third run divides by zero.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bulwark.h"

typedef struct counter {
    uv_idle_t idle;
    bw_domain *domain;
    bw_resource *resource;
    int runs;
} counter;

static volatile int zero = 0;

static void on_closed(uv_handle_t *h)
{
    printf("the idle handle is closed\n");
    free(h->data);
}

static void close_counter(void *ptr)
{
    counter *c = ptr;
    uv_idle_stop(&c->idle);
    uv_close((uv_handle_t *)&c->idle, on_closed);
}

/* The body of the callback: runs inside the domain, under a guard. */
static void count_once(void *arg)
{
    counter *c = arg;
    c->runs++;
    printf("run %d, active domain is the counter's: %s\n", c->runs,
           bw_domain_active() == c->domain ? "yes" : "no");
    if (c->runs == 3)
        printf("%d\n", 10 / zero); /* SIGFPE */
}

/* The raw libuv callback: hand over to bw_invoke. */
static void on_idle(uv_idle_t *idle)
{
    counter *c = idle->data;
    bw_invoke(c->domain, count_once, c);
}

static void on_error(bw_domain *d, bw_error *err, void *data)
{
    (void)data;
    printf("domain caught: %s (origin %s)\n", bw_error_message(err),
           bw_error_origin_name(bw_error_origin_of(err)));
    /* Disposing the domain closes its members: the idle handle. */
    bw_domain_dispose(d);
}

int main(void)
{
    bw_loop *loop;
    if (bw_loop_new(&loop) != 0)
        return 1;
    counter *c = calloc(1, sizeof *c);
    if (c == NULL || bw_domain_new(&c->domain) != 0)
        return 1;
    bw_domain_on_error(c->domain, on_error, NULL);
    uv_idle_init(bw_loop_uv(loop), &c->idle);
    c->idle.data = c;
    if (bw_resource_new(c, close_counter, &c->resource) != 0)
        return 1;
    bw_domain_add(c->domain, bw_resource_member(c->resource));
    uv_idle_start(&c->idle, on_idle);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    bw_resource_free(c->resource);
    bw_domain_release(c->domain);
    return bw_loop_free(loop) == 0 ? 0 : 1;
}
