/*
 * http_router.c: the router of router.h, a tree of path segments.
 *
 * Each node has its literal children in an open-addressing hash table
 * (FNV-1a of the segment), at most one parameter child and one wildcard
 * child, and the routes (method, handler) that end there. Matching walks
 * the raw path once, preferring literal, then parameter, then wildcard at
 * each level, backing up when a branch dead-ends; the walk visits at most
 * BW__ROUTE_VISITS nodes, so a pathological route set cannot make one
 * request expensive.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bulwark/router.h"
#include "http_decode.h"
#include "http_internal.h"
#include "internal.h"

#define BW__ROUTE_PARAMS 16
#define BW__ROUTE_VISITS 256
#define BW__ROUTE_DEPTH 64

typedef struct route_entry {
    char *method; /* "*": any */
    bw_http_handler handler;
    void *data;
} route_entry;

typedef struct node node;
struct node {
    char *segment; /* a literal child's segment */
    size_t seglen;
    uint32_t hash;
    node **children; /* literal children, open addressing; NULL slots */
    size_t nchildren, capchildren;
    node *param;
    char *param_name;
    node *wild;
    route_entry *routes;
    size_t nroutes;
    char *pattern; /* the pattern that ends here (for bw_http_request_route) */
};

struct bw_http_router {
    node root;
    bw_http_handler fallback;
    void *fallback_data;
};

/* The parameters of a match, as the request keeps them (its arena). */
typedef struct route_params {
    size_t n;
    const char *names[BW__ROUTE_PARAMS];
    const char *values[BW__ROUTE_PARAMS];
} route_params;

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = bw_malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int bw_http_router_new(bw_http_router **out)
{
    *out = bw_calloc(1, sizeof **out);
    return *out != NULL ? 0 : -ENOMEM;
}

static node *find_literal(const node *n, const char *seg, size_t len, uint32_t h)
{
    if (n->capchildren == 0)
        return NULL;
    size_t mask = n->capchildren - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        node *c = n->children[i];
        if (c == NULL)
            return NULL;
        if (c->hash == h && c->seglen == len && memcmp(c->segment, seg, len) == 0)
            return c;
    }
}

static int insert_child(node *n, node *c)
{
    if ((n->nchildren + 1) * 2 > n->capchildren) {
        size_t cap = n->capchildren ? n->capchildren * 2 : 4;
        node **t = bw_calloc(cap, sizeof *t);
        if (t == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < n->capchildren; i++) {
            node *o = n->children[i];
            if (o == NULL)
                continue;
            size_t j = o->hash & (cap - 1);
            while (t[j] != NULL)
                j = (j + 1) & (cap - 1);
            t[j] = o;
        }
        bw_free(n->children);
        n->children = t;
        n->capchildren = cap;
    }
    size_t j = c->hash & (n->capchildren - 1);
    while (n->children[j] != NULL)
        j = (j + 1) & (n->capchildren - 1);
    n->children[j] = c;
    n->nchildren++;
    return 0;
}

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

/* The node for one pattern segment under n, created if need be. */
static int child_for(node *n, const char *seg, size_t len, bool last, node **out)
{
    if (len == 1 && seg[0] == '*') {
        if (!last)
            return -EINVAL;
        if (n->wild == NULL && (n->wild = bw_calloc(1, sizeof *n->wild)) == NULL)
            return -ENOMEM;
        *out = n->wild;
        return 0;
    }
    if (len > 0 && seg[0] == ':') {
        if (len == 1)
            return -EINVAL;
        if (n->param != NULL) {
            if (strlen(n->param_name) != len - 1 || memcmp(n->param_name, seg + 1, len - 1) != 0)
                return BW_EBUSY; /* two names for one place */
            *out = n->param;
            return 0;
        }
        node *c = bw_calloc(1, sizeof *c);
        char *name = dup_n(seg + 1, len - 1);
        if (c == NULL || name == NULL) {
            bw_free(c);
            bw_free(name);
            return -ENOMEM;
        }
        n->param = c;
        n->param_name = name;
        *out = c;
        return 0;
    }
    uint32_t h = fnv1a(seg, len);
    node *c = find_literal(n, seg, len, h);
    if (c == NULL) {
        c = bw_calloc(1, sizeof *c);
        char *s = dup_n(seg, len);
        if (c != NULL) {
            c->segment = s;
            c->seglen = len;
            c->hash = h; /* before the insertion, which places it by hash */
        }
        if (c == NULL || s == NULL || insert_child(n, c) != 0) {
            bw_free(c);
            bw_free(s);
            return -ENOMEM;
        }
    }
    *out = c;
    return 0;
}

int bw_http_router_add(bw_http_router *r, const char *method, const char *pattern,
                       bw_http_handler handler, void *data)
{
    if (r == NULL || method == NULL || pattern == NULL || handler == NULL || pattern[0] != '/' ||
        !is_token(method))
        return -EINVAL;
    node *n = &r->root;
    const char *p = pattern + 1;
    if (*pattern == '/' && pattern[1] == '\0')
        p = NULL; /* "/": the root itself */
    while (p != NULL) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        int rc = child_for(n, p, len, slash == NULL, &n);
        if (rc != 0)
            return rc;
        p = slash != NULL ? slash + 1 : NULL;
    }
    for (size_t i = 0; i < n->nroutes; i++)
        if (strcmp(n->routes[i].method, method) == 0)
            return BW_EBUSY;
    if (n->pattern == NULL && (n->pattern = dup_n(pattern, strlen(pattern))) == NULL)
        return -ENOMEM;
    route_entry *v = bw_realloc(n->routes, (n->nroutes + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    n->routes = v;
    char *m = dup_n(method, strlen(method));
    if (m == NULL)
        return -ENOMEM;
    n->routes[n->nroutes++] = (route_entry){m, handler, data};
    return 0;
}

void bw_http_router_set_fallback(bw_http_router *r, bw_http_handler handler, void *data)
{
    r->fallback = handler;
    r->fallback_data = data;
}

typedef struct match {
    const char *names[BW__ROUTE_PARAMS];
    const char *raw[BW__ROUTE_PARAMS]; /* into the path */
    size_t lens[BW__ROUTE_PARAMS];
    size_t n;
    int visits;
} match;

/* The node where `path` (after a '/') ends under n, or NULL. */
static node *walk(node *n, const char *path, match *m, int depth)
{
    if (++m->visits > BW__ROUTE_VISITS || depth > BW__ROUTE_DEPTH)
        return NULL;
    if (path == NULL) {
        if (n->nroutes > 0)
            return n;
        if (n->wild == NULL || n->wild->nroutes == 0 || m->n == BW__ROUTE_PARAMS)
            return NULL;
        size_t k = m->n++; /* a wildcard route, with nothing left: "" */
        m->names[k] = "*";
        m->raw[k] = "";
        m->lens[k] = 0;
        return n->wild;
    }
    const char *slash = strchr(path, '/');
    size_t len = slash != NULL ? (size_t)(slash - path) : strlen(path);
    const char *next = slash != NULL ? slash + 1 : NULL;
    node *c = find_literal(n, path, len, fnv1a(path, len));
    if (c != NULL) {
        node *end = walk(c, next, m, depth + 1);
        if (end != NULL)
            return end;
    }
    if (n->param != NULL && len > 0 && m->n < BW__ROUTE_PARAMS) {
        size_t k = m->n++;
        m->names[k] = n->param_name;
        m->raw[k] = path;
        m->lens[k] = len;
        node *end = walk(n->param, next, m, depth + 1);
        if (end != NULL)
            return end;
        m->n = k;
    }
    if (n->wild != NULL && n->wild->nroutes > 0 && m->n < BW__ROUTE_PARAMS) {
        size_t k = m->n++;
        m->names[k] = "*";
        m->raw[k] = path;
        m->lens[k] = strlen(path);
        return n->wild;
    }
    return NULL;
}

static const route_entry *route_for(const node *n, const char *method)
{
    const route_entry *any = NULL;
    for (size_t i = 0; i < n->nroutes; i++) {
        if (strcmp(n->routes[i].method, method) == 0)
            return &n->routes[i];
        if (n->routes[i].method[0] == '*')
            any = &n->routes[i];
    }
    return any;
}

/* "GET, HEAD, POST, OPTIONS": what the node's routes allow. */
static void allow_list(const node *n, char *out, size_t size)
{
    size_t o = 0;
    bool get = false, head = false, options = false;
    out[0] = '\0';
    for (size_t i = 0; i < n->nroutes && o < size; i++) {
        const char *m = n->routes[i].method;
        get |= strcmp(m, "GET") == 0;
        head |= strcmp(m, "HEAD") == 0;
        options |= strcmp(m, "OPTIONS") == 0;
        o += (size_t)snprintf(out + o, size - o, "%s%s", o ? ", " : "", m);
    }
    if (get && !head && o < size)
        o += (size_t)snprintf(out + o, size - o, ", HEAD");
    if (!options && o < size)
        snprintf(out + o, size - o, "%sOPTIONS", o ? ", " : "");
}

static void answer(bw_http_response *res, int status, const char *allow)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", bw_http_status_reason(status));
    if (allow != NULL)
        bw_http_response_set_header(res, "Allow", allow);
    if (status == 204)
        n = 0;
    bw_http_response_send(res, status, n ? "text/plain" : NULL, body, (size_t)n);
}

void bw_http_router_handler(bw_http_request *req, bw_http_response *res, void *router)
{
    bw_http_router *r = router;
    const char *path = bw_http_request_path(req);
    match m;
    m.n = 0;
    m.visits = 0;
    node *end = path[0] == '/' ? walk(&r->root, path[1] != '\0' ? path + 1 : NULL, &m, 0) : NULL;
    if (end == NULL) {
        if (r->fallback != NULL) {
            r->fallback(req, res, r->fallback_data);
            return;
        }
        answer(res, 404, NULL);
        return;
    }
    const char *method = bw_http_request_method(req);
    const route_entry *e = route_for(end, method);
    if (e == NULL && strcmp(method, "HEAD") == 0)
        e = route_for(end, "GET");
    if (e == NULL) {
        char allow[256];
        allow_list(end, allow, sizeof allow);
        answer(res, strcmp(method, "OPTIONS") == 0 ? 204 : 405, allow);
        return;
    }
    route_params *rp = NULL;
    if (m.n > 0) {
        rp = bw_http_request_alloc(req, sizeof *rp);
        if (rp == NULL) {
            answer(res, 503, NULL);
            return;
        }
        rp->n = m.n;
        for (size_t i = 0; i < m.n; i++) {
            char *v = bw_http_request_alloc(req, m.lens[i] + 1);
            size_t dlen;
            if (v == NULL) {
                answer(res, 503, NULL);
                return;
            }
            if (bw__pct_decode(m.raw[i], m.lens[i], v, &dlen, 0) != 0) {
                answer(res, 400, NULL);
                return;
            }
            rp->names[i] = m.names[i];
            rp->values[i] = v;
        }
    }
    bw_http_request_set_route(req, end->pattern, rp);
    bw_http_server *srv = req->srv;
    if (srv->route_gate != NULL && srv->route_gate(req, res, srv->route_gate_data))
        return; /* a quarantined route (cluster_quarantine.c) */
    e->handler(req, res, e->data);
}

const char *bw_http_route_param(const bw_http_request *req, const char *name)
{
    const route_params *rp = bw_http_request_route_state(req);
    if (rp == NULL)
        return NULL;
    for (size_t i = 0; i < rp->n; i++)
        if (strcmp(rp->names[i], name) == 0)
            return rp->values[i];
    return NULL;
}

static void free_node(node *n)
{
    for (size_t i = 0; i < n->capchildren; i++)
        if (n->children[i] != NULL) {
            free_node(n->children[i]);
            bw_free(n->children[i]);
        }
    bw_free(n->children);
    if (n->param != NULL) {
        free_node(n->param);
        bw_free(n->param);
    }
    if (n->wild != NULL) {
        free_node(n->wild);
        bw_free(n->wild);
    }
    for (size_t i = 0; i < n->nroutes; i++)
        bw_free(n->routes[i].method);
    bw_free(n->routes);
    bw_free(n->param_name);
    bw_free(n->segment);
    bw_free(n->pattern);
}

void bw_http_router_free(bw_http_router *r)
{
    if (r == NULL)
        return;
    free_node(&r->root);
    bw_free(r);
}
