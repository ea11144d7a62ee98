/*
 * cluster_recycle.c: recycling workers past a limit (cluster.h,
 * "Recycling and limits"): max_requests with its jitter, and max_memory_mb.
 *
 * The primary decides, from its tick: it reads the dispatched count each
 * worker keeps in the page they share (the worker's request path already
 * writes it for the hang report) and, at most once a second, each worker's
 * resident set from /proc/<pid>/statm. A worker past a limit is marked due
 * and replaced the way a rolling restart replaces a worker: the
 * replacement is forked first, and the old worker is told to disconnect
 * (it drains, handing its connections off) only once the replacement
 * listens. One at a time, like the rolling restart. A rolling restart that
 * begins takes over: it replaces every worker anyway, and a replacement of
 * ours that does not listen yet would be one worker too many in its
 * generation, so that one is told to go (bw__recycle_rolling_begins).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster_internal.h"

#define BW__RSS_EVERY_MS 1000

/* ---- Pure helpers ------------------------------------------------------ */

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s != 0 ? *s : 0x9e3779b97f4a7c15u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

uint64_t bw__recycle_threshold(uint64_t max, uint64_t jitter, uint64_t *state)
{
    if (max == 0)
        return 0;
    uint64_t extra = 0;
    if (jitter > 0)
        extra = jitter == UINT64_MAX ? xorshift64(state) : xorshift64(state) % (jitter + 1);
    return max + extra < max ? UINT64_MAX : max + extra;
}

/* "size resident shared text lib data dt": pages. */
bool bw__statm_rss(const char *text, uint64_t page_size, uint64_t *bytes)
{
    const char *p = text;
    uint64_t field[2];
    for (int i = 0; i < 2; i++) {
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (UINT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        if (*p != ' ' && *p != '\n' && *p != '\0')
            return false;
        field[i] = v;
    }
    if (page_size != 0 && field[1] > UINT64_MAX / page_size)
        return false;
    *bytes = field[1] * page_size;
    return true;
}

/* ---- The primary's side ------------------------------------------------ */

void bw__recycle_plan(bw_cluster *c, bw_worker *w)
{
    if (c->opts.max_requests == 0)
        return;
    if (c->recycle_rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c->recycle_rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
                         ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)c;
    }
    w->recycle_at =
        bw__recycle_threshold(c->opts.max_requests, c->opts.max_requests_jitter, &c->recycle_rng);
}

const char *bw__recycle_fork_extra(const bw_worker *w, char *buf, size_t size)
{
    if (w->recycle_at == 0)
        return NULL;
    snprintf(buf, size, "\"max_requests\": %" PRIu64, w->recycle_at);
    return buf;
}

/* A worker that serves and may be recycled: listening, told nothing yet,
 * not retiring (supervision replaces those), not part of a rolling
 * restart's old generation. */
static bool recyclable(const bw_worker *w)
{
    return w->connected && w->state == BW_WORKER_LISTENING && !w->exited && !w->retiring &&
           !w->disconnect_sent && !w->hang_reported && !w->rolling_old;
}

static bool read_rss(pid_t pid, uint64_t *bytes)
{
    char path[48], text[256];
    snprintf(path, sizeof path, "/proc/%ld/statm", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return false;
    text[n] = '\0';
    long page = sysconf(_SC_PAGESIZE);
    return bw__statm_rss(text, page > 0 ? (uint64_t)page : 4096, bytes);
}

static void mark_due(bw_cluster *c, bw_worker *w, const char *reason, const char *why,
                     const char *extra)
{
    w->recycle_due = true;
    bw_log(BW_LOG_INFO, "cluster: recycling worker %d (pid %ld): %s; its replacement starts "
           "first, then it drains", w->id, (long)w->pid, why);
    bw_cluster_event ev = {.type = BW_EVENT_RECYCLE, .worker = w, .data = reason,
                           .len = strlen(reason), .exit_code = -1};
    char line[256];
    snprintf(line, sizeof line, "\"reason\": \"%s\", %s", reason, extra);
    bw__cluster_emit(c, &ev, line);
}

/* Fork the replacement of the next worker due, unless one is on its way. */
static void recycle_next(bw_cluster *c)
{
    if (c->recycle_new != NULL || c->rolling)
        return;
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (!w->recycle_due || !recyclable(w))
            continue;
        if (!bw__cluster_fork_allowed(c))
            return; /* the next tick tries again */
        bw_worker *fresh;
        int rc = bw_cluster_fork(c, NULL, &fresh);
        if (rc != 0) {
            bw_log(BW_LOG_ERROR, "cluster: recycling worker %d: fork failed: %s; it keeps "
                   "serving", w->id, bw_strerror(rc));
            c->next_fork_ms = uv_now(c->loop->uv) + c->backoff_ms;
            return;
        }
        c->recycle_new = fresh;
        c->recycle_old = w;
        return;
    }
}

void bw__recycle_tick(bw_cluster *c, uint64_t now)
{
    if (!c->supervising || c->shutting_down || c->gave_up || c->rolling)
        return;
    bool rss_due = c->opts.max_memory_mb > 0 && now - c->rss_checked_ms >= BW__RSS_EVERY_MS;
    if (rss_due)
        c->rss_checked_ms = now;
    if (c->opts.max_requests == 0 && !rss_due)
        return;
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->recycle_due || !recyclable(w) || w == c->recycle_new)
            continue;
        uint64_t served = w->shm->dispatched;
        if (w->recycle_at != 0 && served >= w->recycle_at) {
            char why[96], extra[96];
            snprintf(why, sizeof why, "%" PRIu64 " requests dispatched, its threshold %" PRIu64,
                     served, w->recycle_at);
            snprintf(extra, sizeof extra, "\"requests\": %" PRIu64 ", \"threshold\": %" PRIu64,
                     served, w->recycle_at);
            mark_due(c, w, "max_requests", why, extra);
            continue;
        }
        uint64_t rss;
        uint64_t limit = c->opts.max_memory_mb * 1024 * 1024;
        if (rss_due && read_rss(w->pid, &rss) && rss > limit) {
            char why[96], extra[96];
            snprintf(why, sizeof why, "resident memory %" PRIu64 " KiB over the limit of %" PRIu64
                     " MiB", rss / 1024, c->opts.max_memory_mb);
            snprintf(extra, sizeof extra, "\"rss_kb\": %" PRIu64 ", \"limit_kb\": %" PRIu64,
                     rss / 1024, limit / 1024);
            mark_due(c, w, "max_memory", why, extra);
        }
    }
    recycle_next(c);
}

void bw__recycle_listening(bw_cluster *c, bw_worker *w)
{
    if (w != c->recycle_new)
        return;
    bw_worker *old = c->recycle_old;
    c->recycle_new = NULL;
    c->recycle_old = NULL;
    if (old != NULL && recyclable(old)) {
        bw_log(BW_LOG_INFO, "cluster: worker %d (pid %ld) listens in place of worker %d "
               "(pid %ld), which drains now", w->id, (long)w->pid, old->id, (long)old->pid);
        old->recycled = true; /* bulwark_worker_exits_total{reason="recycle"} */
        bw_worker_disconnect(old);
    }
    recycle_next(c);
}

void bw__recycle_gone(bw_cluster *c, bw_worker *w)
{
    if (w == c->recycle_old)
        c->recycle_old = NULL; /* it went on its own: its replacement stays, as any worker */
    if (w == c->recycle_new) {
        c->recycle_new = NULL;
        if (c->recycle_old != NULL && !w->was_listening)
            bw_log(BW_LOG_WARN, "cluster: recycling worker %d postponed: its replacement, worker "
                   "%d, died before listening; it keeps serving", c->recycle_old->id, w->id);
        c->recycle_old = NULL; /* still due: the tick retries, after the start-up backoff */
    }
}

void bw__recycle_rolling_begins(bw_cluster *c)
{
    bw_worker *fresh = c->recycle_new;
    bw_worker *old = c->recycle_old;
    c->recycle_new = NULL;
    c->recycle_old = NULL;
    if (fresh != NULL && !fresh->exited && !fresh->disconnect_sent) {
        bw_log(BW_LOG_INFO, "cluster: the rolling restart takes over recycling worker %d: "
               "its replacement, worker %d, which does not listen yet, leaves",
               old != NULL ? old->id : 0, fresh->id);
        bw_worker_disconnect(fresh);
    }
}
