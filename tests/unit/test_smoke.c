/* A first smoke test of the harness and the library. */
#include "bw_test.h"

static int calls;
static void handler(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)data;
    (void)err;
    calls++;
}

static void boom(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    bw_throwf(-22, "boom");
}

static void *start(void *arg)
{
    bw_timeout(arg, 1, boom, NULL, NULL);
    return NULL;
}

BW_TEST(X_01, smoke_timer_throw_reaches_domain)
{
    bw_loop *loop = bw_test_loop();
    bw_domain *d = bw_test_domain();
    bw_domain_on_error(d, handler, NULL);
    bw_domain_run(d, start, loop);
    bw_test_loop_finish(loop);
    BW_CHECK_INT_EQ(calls, 1);
    bw_domain_release(d);
}
