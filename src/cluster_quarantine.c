/*
 * cluster_quarantine.c: poison requests and abusive clients.
 *
 * The primary counts each retirement (a crash, or a hang: cluster_primary.c
 * reports both) three ways:
 *   - against its exact key ("METHOD /target", query included, or the
 *     crash policy's quarantine_key): poison_threshold crashes within
 *     poison_window_ms quarantine that one input;
 *   - against its group, the router's pattern when a route matched
 *     ("GET /items/:id"), else its path ("GET /slow"): poison_threshold
 *     (at least 2) distinct exact keys crashing within the window quarantine
 *     the whole group, so varying the query or the id does not dodge it;
 *   - against its client's IP address (bw_http_request_peer's, so the PROXY
 *     protocol's behind a proxy): client_fault_budget crashes within
 *     client_fault_window_ms block that client for client_block_ms.
 * Each decision goes to every worker as a QUARANTINE message ("ttl_ms KIND
 * KEY"); a worker forked later copies the table it inherited from the
 * primary's memory. bw_cluster_lift_quarantine and bw_cluster_unblock_client
 * end them early (a LIFT message).
 *
 * The worker keeps the keys in force in one small table (bw__guards); a
 * request looks at `active` only, unless something is in force
 * (cluster_worker.c: before the handler for clients, exact keys and paths;
 * the router's gate for routes, once the pattern is known).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster_internal.h"

/* ---- The primary's side ------------------------------------------------ */

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t now_ms(const bw_cluster *c)
{
    return uv_now(c->loop->uv);
}

/* The entry of kind and key, or a new one (the stalest entry that is not a
 * quarantine in force, when the table is full); NULL if every entry is a
 * quarantine in force. */
static bw__poison *poison_entry(bw_cluster *c, char kind, const char *key)
{
    for (size_t i = 0; i < c->npoison; i++)
        if (c->poison[i].kind == kind && strcmp(c->poison[i].key, key) == 0)
            return &c->poison[i];
    bw__poison *p = NULL;
    if (c->npoison < BW__MAX_POISON) {
        p = &c->poison[c->npoison++];
    } else {
        for (size_t i = 0; i < BW__MAX_POISON; i++) {
            bw__poison *q = &c->poison[i];
            uint64_t last = q->ntimes > 0 ? q->times[q->ntimes - 1] : 0;
            uint64_t plast = p != NULL && p->ntimes > 0 ? p->times[p->ntimes - 1] : 0;
            if (q->until_ms == 0 && (p == NULL || last < plast))
                p = q;
        }
        if (p == NULL)
            return NULL;
    }
    memset(p, 0, sizeof *p);
    p->kind = kind;
    snprintf(p->key, sizeof p->key, "%s", key);
    return p;
}

/* Keep the times (and targets) within the window. */
static size_t prune(uint64_t *times, uint64_t *targets, size_t n, uint64_t now, uint64_t window)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (now - times[i] <= window) {
            times[k] = times[i];
            if (targets != NULL)
                targets[k] = targets[i];
            k++;
        }
    }
    return k;
}

static void broadcast(bw_cluster *c, int type, const char *msg)
{
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        if (w->connected)
            bw__msg_send(w->fd, type, msg, strlen(msg));
}

static void tell_workers(bw_cluster *c, char kind, uint64_t ttl_ms, const char *key)
{
    char msg[BW__REQUEST_TEXT + 40];
    snprintf(msg, sizeof msg, "%llu %c %s", (unsigned long long)ttl_ms, kind, key);
    broadcast(c, BW__MSG_QUARANTINE, msg);
}

static const char *kind_name(char kind)
{
    return kind == BW__Q_EXACT ? "request" : kind == BW__Q_ROUTE ? "route" : "path";
}

static void quarantine(bw_cluster *c, bw_worker *w, bw__poison *p, size_t count)
{
    uint64_t now = now_ms(c);
    p->until_ms = now + c->opts.quarantine_ms;
    p->until_mono_ns = bw__mono_ns() + c->opts.quarantine_ms * 1000000u;
    if (p->kind == BW__Q_EXACT)
        bw_log(BW_LOG_WARN,
               "cluster: quarantined \"%s\" for %llu ms: it crashed or hung %zu workers within "
               "%llu ms (the last, worker %d); workers answer it 503 meanwhile",
               p->key, (unsigned long long)c->opts.quarantine_ms, count,
               (unsigned long long)c->opts.poison_window_ms, w->id);
    else
        bw_log(BW_LOG_WARN,
               "cluster: quarantined \"%s\" for %llu ms: %zu distinct requests of this %s "
               "crashed or hung workers within %llu ms (the last, worker %d); workers answer "
               "every request of it 503 meanwhile",
               p->key, (unsigned long long)c->opts.quarantine_ms, count, kind_name(p->kind),
               (unsigned long long)c->opts.poison_window_ms, w->id);
    char extra[BW__REQUEST_TEXT + 48];
    int n = snprintf(extra, sizeof extra, "\"kind\": \"%s\", \"key\": \"", kind_name(p->kind));
    for (const char *k = p->key; *k && (size_t)n < sizeof extra - 2; k++)
        extra[n++] = *k == '"' || *k == '\\' || (unsigned char)*k < 32 ? '?' : *k;
    extra[n++] = '"';
    extra[n] = '\0';
    bw_cluster_event ev = {.type = BW_EVENT_QUARANTINE, .worker = w, .data = p->key,
                           .len = strlen(p->key), .exit_code = -1};
    bw__cluster_emit(c, &ev, extra);
    tell_workers(c, p->kind, c->opts.quarantine_ms, p->key);
}

static void count_exact(bw_cluster *c, bw_worker *w, const char *key, uint64_t now)
{
    bw__poison *p = poison_entry(c, BW__Q_EXACT, key);
    if (p == NULL)
        return;
    p->ntimes = prune(p->times, NULL, p->ntimes, now, c->opts.poison_window_ms);
    if (p->ntimes < sizeof p->times / sizeof p->times[0])
        p->times[p->ntimes++] = now;
    if ((int)p->ntimes >= c->opts.poison_threshold && p->until_ms == 0)
        quarantine(c, w, p, p->ntimes);
}

static void count_group(bw_cluster *c, bw_worker *w, char kind, const char *group,
                        const char *key, uint64_t now)
{
    bw__poison *p = poison_entry(c, kind, group);
    if (p == NULL)
        return;
    p->ntimes = prune(p->times, p->targets, p->ntimes, now, c->opts.poison_window_ms);
    size_t cap = sizeof p->times / sizeof p->times[0];
    if (p->ntimes == cap) { /* full: the oldest goes */
        memmove(p->times, p->times + 1, (cap - 1) * sizeof *p->times);
        memmove(p->targets, p->targets + 1, (cap - 1) * sizeof *p->targets);
        p->ntimes--;
    }
    p->times[p->ntimes] = now;
    p->targets[p->ntimes++] = hash_key(key);
    size_t distinct = 0;
    for (size_t i = 0; i < p->ntimes; i++) {
        size_t j = 0;
        while (j < i && p->targets[j] != p->targets[i])
            j++;
        distinct += j == i;
    }
    int need = c->opts.poison_threshold > 2 ? c->opts.poison_threshold : 2;
    if ((int)distinct >= need && p->until_ms == 0)
        quarantine(c, w, p, distinct);
}

static bw__client *client_entry(bw_cluster *c, const char *ip)
{
    for (size_t i = 0; i < c->nclients; i++)
        if (strcmp(c->clients[i].ip, ip) == 0)
            return &c->clients[i];
    bw__client *e = NULL;
    if (c->nclients < BW__MAX_CLIENTS) {
        e = &c->clients[c->nclients++];
    } else {
        for (size_t i = 0; i < BW__MAX_CLIENTS; i++) {
            bw__client *q = &c->clients[i];
            uint64_t last = q->ntimes > 0 ? q->times[q->ntimes - 1] : 0;
            uint64_t elast = e != NULL && e->ntimes > 0 ? e->times[e->ntimes - 1] : 0;
            if (q->until_ms == 0 && (e == NULL || last < elast))
                e = q;
        }
        if (e == NULL)
            return NULL;
    }
    memset(e, 0, sizeof *e);
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    return e;
}

static void count_client(bw_cluster *c, bw_worker *w, const char *ip, uint64_t now)
{
    bw__client *e = client_entry(c, ip);
    if (e == NULL)
        return;
    e->ntimes = prune(e->times, NULL, e->ntimes, now, c->opts.client_fault_window_ms);
    size_t cap = sizeof e->times / sizeof e->times[0];
    if (e->ntimes == cap) {
        memmove(e->times, e->times + 1, (cap - 1) * sizeof *e->times);
        e->ntimes--;
    }
    e->times[e->ntimes++] = now;
    if ((int)e->ntimes < c->opts.client_fault_budget || e->until_ms != 0)
        return;
    e->until_ms = now + c->opts.client_block_ms;
    e->until_mono_ns = bw__mono_ns() + c->opts.client_block_ms * 1000000u;
    c->clients_blocked++;
    bw_log(BW_LOG_WARN,
           "cluster: blocked client %s for %llu ms: its requests crashed %zu workers within "
           "%llu ms (the last, worker %d); workers answer it 429 meanwhile",
           e->ip, (unsigned long long)c->opts.client_block_ms, e->ntimes,
           (unsigned long long)c->opts.client_fault_window_ms, w->id);
    char extra[96];
    snprintf(extra, sizeof extra, "\"client\": \"%s\"", e->ip);
    bw_cluster_event ev = {.type = BW_EVENT_CLIENT_BLOCKED, .worker = w, .data = e->ip,
                           .len = strlen(e->ip), .exit_code = -1};
    bw__cluster_emit(c, &ev, extra);
    tell_workers(c, BW__Q_CLIENT, c->opts.client_block_ms, e->ip);
}

void bw__quarantine_report(bw_cluster *c, bw_worker *w, const char *key, const char *peer_ip,
                           const char *group)
{
    uint64_t now = now_ms(c);
    if (c->opts.poison_threshold > 0 && key[0] != '\0') {
        count_exact(c, w, key, now);
        /* group: "r METHOD /pattern" or "p METHOD /path"; a hang's (empty):
         * the path of its key; outside a request ("-"): none. */
        if (group[0] == BW__Q_ROUTE || group[0] == BW__Q_PATH) {
            if (group[1] == ' ' && group[2] != '\0')
                count_group(c, w, group[0], group + 2, key, now);
        } else if (group[0] == '\0') {
            char path[BW__REQUEST_TEXT];
            snprintf(path, sizeof path, "%.*s", (int)strcspn(key, "?"), key);
            count_group(c, w, BW__Q_PATH, path, key, now);
        }
    }
    if (c->opts.client_fault_budget > 0 && peer_ip[0] != '\0')
        count_client(c, w, peer_ip, now);
}

void bw__quarantine_tick(bw_cluster *c, uint64_t now)
{
    for (size_t i = 0; i < c->npoison; i++)
        if (c->poison[i].until_ms != 0 && now >= c->poison[i].until_ms)
            c->poison[i].until_ms = 0;
    for (size_t i = 0; i < c->nclients; i++)
        if (c->clients[i].until_ms != 0 && now >= c->clients[i].until_ms)
            c->clients[i].until_ms = 0;
}

int bw_cluster_lift_quarantine(bw_cluster *c, const char *key)
{
    if (key != NULL && key[0] == '\0')
        return -EINVAL;
    int lifted = 0;
    size_t k = 0;
    for (size_t i = 0; i < c->npoison; i++) {
        bw__poison *p = &c->poison[i];
        if (key == NULL || strcmp(p->key, key) == 0) {
            if (p->until_ms != 0) {
                lifted++;
                bw_log(BW_LOG_INFO, "cluster: quarantine of \"%s\" lifted", p->key);
            }
            continue; /* dropped, its count with it */
        }
        if (k != i)
            c->poison[k] = *p;
        k++;
    }
    c->npoison = k;
    char msg[BW__REQUEST_TEXT + 4];
    snprintf(msg, sizeof msg, "q%s%s", key != NULL ? " " : "", key != NULL ? key : "");
    broadcast(c, BW__MSG_LIFT, msg);
    return lifted;
}

int bw_cluster_unblock_client(bw_cluster *c, const char *ip)
{
    if (ip != NULL && ip[0] == '\0')
        return -EINVAL;
    int lifted = 0;
    size_t k = 0;
    for (size_t i = 0; i < c->nclients; i++) {
        bw__client *e = &c->clients[i];
        if (ip == NULL || strcmp(e->ip, ip) == 0) {
            if (e->until_ms != 0) {
                lifted++;
                bw_log(BW_LOG_INFO, "cluster: block of client %s lifted", e->ip);
            }
            continue;
        }
        if (k != i)
            c->clients[k] = *e;
        k++;
    }
    c->nclients = k;
    char msg[64];
    snprintf(msg, sizeof msg, "c%s%s", ip != NULL ? " " : "", ip != NULL ? ip : "");
    broadcast(c, BW__MSG_LIFT, msg);
    return lifted;
}

size_t bw_cluster_quarantines_active(const bw_cluster *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->npoison; i++)
        n += c->poison[i].until_ms != 0;
    return n;
}

uint64_t bw_cluster_clients_blocked(const bw_cluster *c)
{
    return c->clients_blocked;
}

size_t bw_cluster_clients_blocked_now(const bw_cluster *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nclients; i++)
        n += c->clients[i].until_ms != 0;
    return n;
}

/* ---- The worker's side ------------------------------------------------- */

static void recount(bw__guards *g)
{
    g->nroute = g->nclient = 0;
    for (size_t i = 0; i < g->active; i++) {
        g->nroute += g->g[i].kind == BW__Q_ROUTE;
        g->nclient += g->g[i].kind == BW__Q_CLIENT;
    }
}

static void add_until(bw__guards *g, char kind, uint64_t until, const char *key)
{
    bw__qentry *slot = NULL;
    for (size_t i = 0; i < g->active && slot == NULL; i++)
        if (g->g[i].kind == kind && strcmp(g->g[i].key, key) == 0)
            slot = &g->g[i];
    if (slot == NULL && g->active < BW__MAX_GUARDS)
        slot = &g->g[g->active++];
    for (size_t i = 0; i < g->active && slot == NULL; i++) /* full: the soonest to end goes */
        if (slot == NULL || g->g[i].until_mono_ns < slot->until_mono_ns)
            slot = &g->g[i];
    slot->kind = kind;
    snprintf(slot->key, sizeof slot->key, "%s", key);
    slot->until_mono_ns = until;
    slot->logged = false;
    recount(g);
}

void bw__guards_init(bw__guards *g, const bw_cluster *c)
{
    memset(g, 0, sizeof *g);
    uint64_t now = bw__mono_ns();
    for (size_t i = 0; i < c->npoison; i++)
        if (c->poison[i].until_ms != 0 && c->poison[i].until_mono_ns > now)
            add_until(g, c->poison[i].kind, c->poison[i].until_mono_ns, c->poison[i].key);
    for (size_t i = 0; i < c->nclients; i++)
        if (c->clients[i].until_ms != 0 && c->clients[i].until_mono_ns > now)
            add_until(g, BW__Q_CLIENT, c->clients[i].until_mono_ns, c->clients[i].ip);
}

void bw__guards_add(bw__guards *g, char kind, uint64_t ttl_ms, const char *key)
{
    if (key[0] == '\0' || (kind != BW__Q_EXACT && kind != BW__Q_PATH &&
                           kind != BW__Q_ROUTE && kind != BW__Q_CLIENT))
        return; /* malformed: ignored (C-11) */
    add_until(g, kind, bw__mono_ns() + ttl_ms * 1000000u, key);
}

void bw__guards_lift(bw__guards *g, const char *payload)
{
    bool clients = payload[0] == 'c';
    if (payload[0] != 'c' && payload[0] != 'q')
        return;
    const char *key = payload[1] == ' ' ? payload + 2 : NULL;
    size_t k = 0;
    for (size_t i = 0; i < g->active; i++) {
        bool client = g->g[i].kind == BW__Q_CLIENT;
        if (client == clients && (key == NULL || strcmp(g->g[i].key, key) == 0))
            continue;
        if (k != i)
            g->g[k] = g->g[i];
        k++;
    }
    g->active = k;
    recount(g);
}

void bw__guards_prune(bw__guards *g)
{
    bw__guards_find(g, 0, "", 0); /* kind 0 matches nothing */
}

bw__qentry *bw__guards_find(bw__guards *g, char kind, const char *key, size_t n)
{
    uint64_t now = bw__mono_ns();
    size_t k = 0;
    bool pruned = false;
    bw__qentry *found = NULL;
    for (size_t i = 0; i < g->active; i++) {
        if (g->g[i].until_mono_ns <= now) {
            pruned = true;
            continue;
        }
        if (k != i)
            g->g[k] = g->g[i];
        if (found == NULL && g->g[k].kind == kind && strncmp(g->g[k].key, key, n) == 0 &&
            g->g[k].key[n] == '\0')
            found = &g->g[k];
        k++;
    }
    g->active = k;
    if (pruned)
        recount(g);
    return found;
}

size_t bw__peer_ip(const char *peer, char *out, size_t size)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon != NULL ? (size_t)(colon - peer) : strlen(peer);
    if (peer[0] == '[' && n >= 2 && peer[n - 1] == ']') { /* "[::1]:5000", should it come */
        peer++;
        n -= 2;
    }
    if (n == 0 || n >= size || (n == 1 && peer[0] == '?')) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out, peer, n);
    out[n] = '\0';
    return n;
}
