/*
 * test_router.c: what bw_http_router_add accepts and refuses (router.h).
 * Matching itself runs through real requests: tests/e2e/test_router.py.
 */
#include "bw_test.h"

#include <errno.h>

#include "bulwark.h"

static void t_handler(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)req;
    (void)res;
    (void)data;
}

BW_TEST(T_10, router_add_validates_patterns_and_methods)
{
    bw_http_router *r = NULL;
    BW_CHECK_INT_EQ(bw_http_router_new(&r), 0);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/", t_handler, NULL), 0);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/items/:id", t_handler, NULL), 0);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "DELETE", "/items/:id", t_handler, NULL), 0);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "*", "/any", t_handler, NULL), 0);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/static/*", t_handler, NULL), 0);
    /* Refused: no leading '/', an empty parameter name, a wildcard not
     * last, a method that is not a token, no handler. */
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "items", t_handler, NULL), -EINVAL);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/a/:", t_handler, NULL), -EINVAL);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/a/*/b", t_handler, NULL), -EINVAL);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "G T", "/a", t_handler, NULL), -EINVAL);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "", "/a", t_handler, NULL), -EINVAL);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/a", NULL, NULL), -EINVAL);
    /* Taken: the same method and pattern; another name at a parameter's
     * place. */
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/items/:id", t_handler, NULL), BW_EBUSY);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/items/:key/x", t_handler, NULL), BW_EBUSY);
    BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", "/items/:id/x", t_handler, NULL), 0);
    bw_http_router_free(r);
    bw_http_router_free(NULL);
}

BW_TEST(T_11, many_routes_build_and_free)
{
    bw_http_router *r = NULL;
    BW_CHECK_INT_EQ(bw_http_router_new(&r), 0);
    for (int i = 0; i < 2000; i++) {
        char p[64];
        snprintf(p, sizeof p, "/r%d/:id/s%d", i % 97, i);
        BW_CHECK_INT_EQ(bw_http_router_add(r, "GET", p, t_handler, NULL), 0);
    }
    bw_http_router_free(r);
}
