/*
 * router.h: method + path routing on top of bw_http_handler.
 *
 * Patterns are paths whose segments are literal ("/items"), a named
 * parameter (":id", one whole segment), or, last, a wildcard ("*", the
 * rest of the path, empty included; its value is the parameter "*").
 * A literal segment wins over a parameter, which wins over a wildcard, at
 * each level. Matching walks the request's raw path segment by segment
 * down a tree whose children are found by hash: its cost grows with the
 * path's length, not with the number of routes.
 *
 * The router's handler (bw_http_router_handler, given to
 * bw_http_server_new or bw_http_server_set_handler with the router as its
 * data):
 *   - a matching route for the method runs its handler, with the pattern
 *     recorded on the request (bw_http_request_route) and the parameters
 *     by name (bw_http_route_param, percent-decoded);
 *   - HEAD is served by the GET route when there is no HEAD route (the
 *     server sends no body for HEAD);
 *   - OPTIONS with no OPTIONS route is answered 204 with Allow;
 *   - a path that matches with other methods only: 405 with Allow;
 *   - no match: 404 (or the fallback handler, bw_http_router_set_fallback);
 *   - a parameter with an invalid escape (or %00): 400.
 *
 * Threads: build the router before serving; afterwards it is only read,
 * and may be shared by the servers of one process.
 */
#ifndef BULWARK_ROUTER_H
#define BULWARK_ROUTER_H

#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bw_http_router bw_http_router;

/* A router with no route. 0 or -ENOMEM. */
BW_EXTERN int bw_http_router_new(bw_http_router **out);

/*
 * Route `method` ("GET", "POST", ... any token; "*" for every method) and
 * `pattern` to handler(req, res, data). The strings are copied. 0;
 * -EINVAL (a pattern not starting with '/', an empty parameter name, a
 * wildcard not last, a method that is not a token); BW_EBUSY (the same
 * method and pattern, or a parameter of another name at the same place,
 * already routed); -ENOMEM.
 */
BW_EXTERN int bw_http_router_add(bw_http_router *r, const char *method, const char *pattern,
                                 bw_http_handler handler, void *data);

/* What runs when no route matches the path (default: a 404). */
BW_EXTERN void bw_http_router_set_fallback(bw_http_router *r, bw_http_handler handler,
                                           void *data);

/* The bw_http_handler that routes; its data is the router. */
BW_EXTERN void bw_http_router_handler(bw_http_request *req, bw_http_response *res, void *router);

/* The value of the route parameter `name` ("id" for ":id", "*" for the
 * wildcard), percent-decoded, valid as long as the request; NULL if the
 * matched route has no such parameter (or no route matched). */
BW_EXTERN const char *bw_http_route_param(const bw_http_request *req, const char *name);

/* Free a router no server uses any more. */
BW_EXTERN void bw_http_router_free(bw_http_router *r);

#ifdef __cplusplus
}
#endif
#endif /* BULWARK_ROUTER_H */
