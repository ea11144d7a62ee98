/*
 * cluster_handoff.c: moving a retiring worker's connections to a sibling
 * (the worker's side), and the wire format both sides share.
 *
 * The path goes through the primary (cluster_relay.c): a worker that
 * closes its servers offers each connection at rest (http.h,
 * bw_http_server_set_handoff) to the primary, in batches, over a
 * SOCK_SEQPACKET socketpair of its own (the handoff channel; the message
 * channel stays small and text-only). The primary delivers each batch to
 * a worker that serves, which adopts the connections and says which it
 * took; the primary passes that back. Through the primary, because only
 * it knows which workers serve and of which generation, it sees a worker
 * die first (and can fail what was delivered to it), and it can hold a
 * batch while a replacement starts (a single worker's own replacement is
 * its only sibling). The cost, one more hop per batch, is off the request
 * path: nothing here runs unless a worker retires.
 *
 * A connection is in exactly one worker at any instant: the giver keeps
 * its descriptor (reading nothing) until the answer comes; a connection
 * the receiver took is then closed in the giver (the socket lives on in
 * the receiver), one it did not take is taken back and closed gracefully,
 * as without handoff. The receiver adopts, answers, and only then parses
 * what the connection carried (from its check phase), so a receiver that
 * dies before answering has read nothing from the sockets it was given.
 *
 * Bounds: HO_BATCH connections and HO_PAYLOAD_MAX bytes per message (one
 * packet, descriptors attached with SCM_RIGHTS); HO_WINDOW batches
 * unanswered per worker (the rest wait in the server, which offers them
 * again as answers come: bw_http_server_handoff_more), so the descriptors
 * in flight stay far below any process's limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster_internal.h"

/* ---- Wire format ------------------------------------------------------- */

int bw__ho_send(int fd, const bw__ho_msg *m)
{
    char buf[BW__HO_PACKET_MAX];
    bw__ho_hdr h = {.type = m->type, .n = (uint16_t)m->n, .batch = m->batch};
    size_t off = sizeof h;
    if (m->n > BW__HO_BATCH)
        return -EMSGSIZE;
    if (m->type == BW__HO_OFFER || m->type == BW__HO_DELIVER) {
        for (size_t i = 0; i < m->n; i++) {
            bw__ho_entry_hdr e = {.server = m->entries[i].server,
                                  .len = (uint32_t)m->entries[i].len};
            memcpy(buf + off, &e, sizeof e);
            off += sizeof e;
        }
        for (size_t i = 0; i < m->n; i++) {
            if (off + m->entries[i].len > sizeof buf)
                return -EMSGSIZE;
            memcpy(buf + off, m->entries[i].state, m->entries[i].len);
            off += m->entries[i].len;
        }
    } else {
        for (size_t i = 0; i < m->n; i++) {
            int32_t st = m->status[i];
            memcpy(buf + off, &st, sizeof st);
            off += sizeof st;
        }
    }
    memcpy(buf, &h, sizeof h);
    struct iovec iov = {.iov_base = buf, .iov_len = off};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        char space[CMSG_SPACE(sizeof(int) * BW__HO_BATCH)];
        struct cmsghdr align;
    } ctl;
    bool fds = m->type == BW__HO_OFFER || m->type == BW__HO_DELIVER;
    if (fds && m->n > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->n);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * m->n);
        for (size_t i = 0; i < m->n; i++)
            memcpy(CMSG_DATA(cm) + i * sizeof(int), &m->entries[i].fd, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

/* Every descriptor a message brought, closed (a message refused whole). */
static void close_received(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int bw__ho_recv(int fd, char *buf, size_t size, bw__ho_msg *m)
{
    union {
        char space[CMSG_SPACE(sizeof(int) * BW__HO_BATCH)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = size};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
                        .msg_controllen = sizeof ctl.space};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int fds[BW__HO_BATCH];
    size_t nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int f;
            memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
            if (nfds < BW__HO_BATCH)
                fds[nfds++] = f;
            else
                close(f);
        }
    }
    if (n == 0) {
        close_received(fds, nfds);
        return 0; /* end of stream (or an empty packet: malformed either way) */
    }
    memset(m, 0, sizeof *m);
    bw__ho_hdr h;
    if ((size_t)n < sizeof h) {
        close_received(fds, nfds);
        return BW_EPROTO;
    }
    memcpy(&h, buf, sizeof h);
    m->type = h.type;
    m->n = h.n;
    m->batch = h.batch;
    size_t off = sizeof h;
    if (m->n > BW__HO_BATCH) {
        close_received(fds, nfds);
        return BW_EPROTO;
    }
    if (h.type == BW__HO_OFFER || h.type == BW__HO_DELIVER) {
        if (off + m->n * sizeof(bw__ho_entry_hdr) > (size_t)n) {
            close_received(fds, nfds);
            return BW_EPROTO;
        }
        size_t data = off + m->n * sizeof(bw__ho_entry_hdr);
        for (size_t i = 0; i < m->n; i++) {
            bw__ho_entry_hdr e;
            memcpy(&e, buf + off + i * sizeof e, sizeof e);
            if (e.len > (size_t)n - data) {
                close_received(fds, nfds);
                return BW_EPROTO;
            }
            m->entries[i].server = e.server;
            m->entries[i].state = buf + data;
            m->entries[i].len = e.len;
            m->entries[i].fd = i < nfds ? fds[i] : -1;
            data += e.len;
        }
        for (size_t i = m->n; i < nfds; i++)
            close(fds[i]); /* more descriptors than entries: not ours to keep */
        /* Fewer descriptors than entries: the receiver's descriptor limit
         * (MSG_CTRUNC), or a malformed message. The entries without one
         * are refused; the others are still good. */
        m->truncated = (mh.msg_flags & MSG_CTRUNC) != 0 || nfds < m->n;
        return 1;
    }
    close_received(fds, nfds);
    if (h.type == BW__HO_READY)
        return m->n == 0 ? 1 : BW_EPROTO;
    if (h.type != BW__HO_RESULT && h.type != BW__HO_ANSWER)
        return BW_EPROTO;
    if (off + m->n * sizeof(int32_t) > (size_t)n)
        return BW_EPROTO;
    for (size_t i = 0; i < m->n; i++)
        memcpy(&m->status[i], buf + off + i * sizeof(int32_t), sizeof(int32_t));
    return 1;
}

/* ---- The worker's side ------------------------------------------------- */

/* A connection given away and not yet answered for. */
typedef struct ho_item {
    bw_http_server *srv;
    uint8_t server; /* its index among the worker's servers */
    int fd;
    char *state;
    size_t len;
} ho_item;

typedef struct ho_batch {
    uint32_t id;
    size_t n;
    size_t bytes;
    bool sent;
    ho_item items[BW__HO_BATCH];
} ho_batch;

struct bw__ho_worker {
    int fd;
    uv_poll_t poll;
    bool open;
    bool want_write;
    uv_idle_t flusher; /* sends a partial batch once this loop iteration's moves are done */
    bool flush_queued;
    uint32_t next_id;
    ho_batch *batches[BW__HO_WINDOW + 1]; /* sent (answer pending), then the one being filled */
    size_t nbatches;
    bw_http_server *servers[BW__HO_SERVERS];
    size_t nservers;
    uint64_t moved, refused, taken;
    uint64_t timeout_ms;  /* how long connections are offered before they close here */
    uint64_t giving_until; /* loop ms; 0: not giving yet */
    bool gave_up;
    uv_timer_t retry;     /* offers again what nobody could take */
    /* Answers for adopted batches the channel could not take at once: they
     * must reach the primary (until they do, the giver holds copies of
     * sockets this worker reads). */
    bw__ho_msg *unsent[BW__HO_WINDOW * 4];
    size_t nunsent;
    uint64_t retry_ms;
    bw_loop *loop;
    char buf[BW__HO_PACKET_MAX];
};

static void on_retry(uv_timer_t *t);

/* Nobody took some: offer them again soon (a replacement is starting, or
 * a sibling is busy), backing off, until the time given is up. */
static void retry_later(bw__ho_worker *w)
{
    if (uv_is_active((uv_handle_t *)&w->retry))
        return;
    w->retry_ms = w->retry_ms == 0 ? 2 : w->retry_ms * 2 > 50 ? 50 : w->retry_ms * 2;
    uv_timer_start(&w->retry, on_retry, w->retry_ms, 0);
}

static bool time_is_up(const bw__ho_worker *w)
{
    return w->gave_up || (w->giving_until != 0 && uv_now(w->loop->uv) >= w->giving_until);
}

/* Each connection of b: moved (status 0), offered again later (any
 * refusal, while the time given lasts), or closed here. status NULL: the
 * channel is gone. */
static void settle_batch(bw__ho_worker *w, ho_batch *b, const int32_t *status)
{
    bool again = status != NULL && !time_is_up(w);
    for (size_t i = 0; i < b->n; i++) {
        ho_item *it = &b->items[i];
        int st = status != NULL ? status[i] : -EPIPE;
        if (st == 0)
            w->moved++;
        else if (again && st != -ENOENT) /* -ENOENT: no worker can come to take it */
            st = -EAGAIN;
        else
            w->refused++;
        if (st == -EAGAIN)
            retry_later(w);
        bw_http_server_handoff_settle(it->srv, it->fd, it->state, it->len, st);
        bw_free(it->state);
    }
}

static void remove_batch(bw__ho_worker *w, size_t i)
{
    bw_free(w->batches[i]);
    memmove(&w->batches[i], &w->batches[i + 1], (w->nbatches - i - 1) * sizeof w->batches[0]);
    w->nbatches--;
}

static void offer_more(bw__ho_worker *w)
{
    for (size_t i = 0; i < w->nservers; i++)
        if (w->servers[i] != NULL)
            bw_http_server_handoff_more(w->servers[i]);
}

static void on_retry(uv_timer_t *t)
{
    bw__ho_worker *w = t->data;
    if (time_is_up(w) && !w->gave_up) {
        w->gave_up = true;
        size_t left = 0;
        for (size_t i = 0; i < w->nservers; i++)
            if (w->servers[i] != NULL)
                left += bw_http_server_connection_count(w->servers[i]);
        bw_log(BW_LOG_WARN, "worker: no sibling took its connections within %llu ms: the %zu "
               "left close gracefully here", (unsigned long long)w->timeout_ms, left);
        bw__ho_worker_stop_giving(w);
    }
    offer_more(w);
}

/* Every batch fails: the channel is gone. */
static void fail_all(bw__ho_worker *w, int status)
{
    int32_t st[BW__HO_BATCH];
    for (size_t i = 0; i < BW__HO_BATCH; i++)
        st[i] = status;
    while (w->nbatches > 0) {
        ho_batch *b = w->batches[0];
        settle_batch(w, b, b->n > 0 ? st : NULL);
        remove_batch(w, 0);
    }
}

static void update_poll(bw__ho_worker *w);

/* Send the batches not sent yet (the one being filled included). */
static void send_pending(bw__ho_worker *w)
{
    w->want_write = false;
    while (w->nunsent > 0 && w->open) {
        int rc = bw__ho_send(w->fd, w->unsent[0]);
        if (rc == -EAGAIN) {
            w->want_write = true;
            update_poll(w);
            return; /* answers first: offers wait behind them */
        }
        bw_free(w->unsent[0]);
        memmove(&w->unsent[0], &w->unsent[1], (w->nunsent - 1) * sizeof w->unsent[0]);
        w->nunsent--;
    }
    for (size_t i = 0; i < w->nbatches; i++) {
        ho_batch *b = w->batches[i];
        if (b->sent || b->n == 0)
            continue;
        bw__ho_msg m = {.type = BW__HO_OFFER, .n = b->n, .batch = b->id};
        for (size_t k = 0; k < b->n; k++)
            m.entries[k] = (bw__ho_entry){.server = b->items[k].server, .fd = b->items[k].fd,
                                          .state = b->items[k].state, .len = b->items[k].len};
        int rc = w->open ? bw__ho_send(w->fd, &m) : -EPIPE;
        if (rc == -EAGAIN) {
            w->want_write = true; /* the primary is behind: when it can take more */
            break;
        }
        if (rc != 0) {
            int32_t st[BW__HO_BATCH];
            for (size_t k = 0; k < b->n; k++)
                st[k] = rc;
            settle_batch(w, b, st);
            remove_batch(w, i--);
            continue;
        }
        b->sent = true;
    }
    update_poll(w);
}

static void on_flush(uv_idle_t *idle)
{
    bw__ho_worker *w = idle->data;
    uv_idle_stop(idle);
    w->flush_queued = false;
    send_pending(w);
}

/* The server's handoff callback: the connection joins the batch being
 * filled; a full batch goes at once, a partial one at the next turn of
 * the loop (all the moves of one close go in as few packets as fit). */
static int on_handoff(bw_http_server *srv, int fd, const void *state, size_t len, void *data)
{
    bw__ho_worker *w = data;
    if (!w->open)
        return -EPIPE;
    if (w->giving_until == 0)
        w->giving_until = uv_now(w->loop->uv) + w->timeout_ms;
    size_t idx = 0;
    while (idx < w->nservers && w->servers[idx] != srv)
        idx++;
    if (idx == w->nservers)
        return -EINVAL;
    ho_batch *b = w->nbatches > 0 ? w->batches[w->nbatches - 1] : NULL;
    if (b != NULL && (b->sent || b->n == BW__HO_BATCH || b->bytes + len > BW__HO_PAYLOAD_MAX))
        b = NULL;
    if (b == NULL) {
        size_t unanswered = 0;
        for (size_t i = 0; i < w->nbatches; i++)
            unanswered += w->batches[i]->sent || w->batches[i]->n > 0;
        if (unanswered >= BW__HO_WINDOW)
            return -EAGAIN;
        b = bw_calloc(1, sizeof *b);
        if (b == NULL)
            return -ENOMEM;
        b->id = ++w->next_id;
        w->batches[w->nbatches++] = b;
    }
    char *copy = bw_malloc(len);
    if (copy == NULL) {
        if (b->n == 0)
            remove_batch(w, w->nbatches - 1);
        return -ENOMEM;
    }
    memcpy(copy, state, len);
    b->items[b->n++] = (ho_item){.srv = srv, .server = (uint8_t)idx, .fd = fd, .state = copy,
                                 .len = len};
    b->bytes += len;
    if (b->n == BW__HO_BATCH) {
        send_pending(w);
    } else if (!w->flush_queued) {
        w->flush_queued = true;
        uv_idle_start(&w->flusher, on_flush);
    }
    return 0;
}

/* The primary's answer for one of our batches. */
static void on_answer(bw__ho_worker *w, const bw__ho_msg *m)
{
    for (size_t i = 0; i < w->nbatches; i++) {
        ho_batch *b = w->batches[i];
        if (!b->sent || b->id != m->batch)
            continue;
        if (m->n != b->n)
            return; /* malformed: the batch stays, and fails with the channel */
        bool all_moved = true;
        for (size_t k = 0; k < b->n; k++)
            all_moved &= m->status[k] == 0;
        settle_batch(w, b, m->status);
        remove_batch(w, i);
        if (all_moved) {
            w->retry_ms = 0;
            offer_more(w); /* the window has room: the next ones go now */
        }
        return;
    }
}

/* A batch from a retiring sibling: adopt what we can, answer at once
 * (before anything is read from those sockets here). */
static void on_delivery(bw__ho_worker *w, const bw__ho_msg *m)
{
    bw__ho_msg a = {.type = BW__HO_RESULT, .n = m->n, .batch = m->batch};
    for (size_t i = 0; i < m->n; i++) {
        const bw__ho_entry *e = &m->entries[i];
        int rc = -EMFILE; /* no descriptor came: our descriptor limit */
        if (e->fd >= 0) {
            bw_http_server *srv = e->server < w->nservers ? w->servers[e->server] : NULL;
            for (size_t k = 0; srv == NULL && k < w->nservers; k++)
                srv = w->servers[k];
            rc = srv != NULL ? bw_http_server_adopt(srv, e->fd, e->state, e->len) : BW_ENOTRUNNING;
            if (rc != 0)
                close(e->fd); /* ours only: the giver still has it, and takes it back */
            else
                w->taken++;
        }
        a.status[i] = rc;
    }
    int rc = w->nunsent > 0 ? -EAGAIN : bw__ho_send(w->fd, &a);
    if (rc == -EAGAIN) {
        bw__ho_msg *copy = w->nunsent < sizeof w->unsent / sizeof w->unsent[0]
                               ? bw_malloc(sizeof *copy) : NULL;
        if (copy != NULL) {
            *copy = a;
            w->unsent[w->nunsent++] = copy;
            w->want_write = true;
            update_poll(w);
            return;
        }
    }
    if (rc != 0)
        bw_log(BW_LOG_ERROR, "worker: cannot answer a handoff (%s)", bw_strerror(rc));
}

static void close_channel(bw__ho_worker *w)
{
    if (!w->open)
        return;
    w->open = false;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, NULL);
    close(w->fd);
    w->fd = -1;
    while (w->nunsent > 0)
        bw_free(w->unsent[--w->nunsent]);
    fail_all(w, -EPIPE);
}

static void on_channel(uv_poll_t *p, int status, int events)
{
    bw__ho_worker *w = p->data;
    if (status < 0) {
        close_channel(w);
        return;
    }
    if (events & UV_WRITABLE)
        send_pending(w);
    /* A bounded number per turn: a receiver's other clients are served
     * between batches, however many connections come. */
    for (int i = 0; i < 4 && w->open && (events & (UV_READABLE | UV_DISCONNECT)); i++) {
        bw__ho_msg m;
        int rc = bw__ho_recv(w->fd, w->buf, sizeof w->buf, &m);
        if (rc == -EAGAIN)
            break;
        if (rc == 0 || (rc < 0 && rc != BW_EPROTO)) {
            close_channel(w);
            return;
        }
        if (rc == BW_EPROTO)
            continue; /* malformed: ignored (its descriptors are closed) */
        if (m.type == BW__HO_DELIVER)
            on_delivery(w, &m);
        else if (m.type == BW__HO_ANSWER)
            on_answer(w, &m);
        else
            for (size_t k = 0; k < m.n; k++)
                if (m.entries[k].fd >= 0 && (m.type == BW__HO_OFFER))
                    close(m.entries[k].fd);
    }
}

static void update_poll(bw__ho_worker *w)
{
    if (w->open)
        uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT | (w->want_write ? UV_WRITABLE : 0),
                      on_channel);
}

bw__ho_worker *bw__ho_worker_new(bw_loop *loop, int fd, uint64_t timeout_ms)
{
    bw__ho_worker *w = bw_calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->fd = fd;
    w->loop = loop;
    w->timeout_ms = timeout_ms;
    uv_timer_init(loop->uv, &w->retry);
    w->retry.data = w;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uv_poll_init(loop->uv, &w->poll, fd);
    w->poll.data = w;
    uv_idle_init(loop->uv, &w->flusher);
    w->flusher.data = w;
    w->open = true;
    update_poll(w);
    /* The channel never keeps the loop alive: servers and the message
     * channel do. */
    uv_unref((uv_handle_t *)&w->poll);
    return w;
}

int bw__ho_worker_add_server(bw__ho_worker *w, bw_http_server *srv, bool give)
{
    if (w->nservers == BW__HO_SERVERS)
        return BW_ELIMIT;
    w->servers[w->nservers++] = srv;
    return give ? bw_http_server_set_handoff(srv, on_handoff, w) : 0;
}

void bw__ho_worker_stop_giving(bw__ho_worker *w)
{
    for (size_t i = 0; i < w->nservers; i++)
        if (w->servers[i] != NULL)
            bw_http_server_set_handoff(w->servers[i], NULL, NULL);
}

void bw__ho_worker_server_gone(bw__ho_worker *w, bw_http_server *srv)
{
    for (size_t i = 0; i < w->nservers; i++)
        if (w->servers[i] == srv)
            w->servers[i] = NULL;
}

void bw__ho_worker_close(bw__ho_worker *w)
{
    close_channel(w);
    if (!uv_is_closing((uv_handle_t *)&w->flusher)) {
        uv_close((uv_handle_t *)&w->flusher, NULL);
        uv_close((uv_handle_t *)&w->retry, NULL);
    }
}

void bw__ho_worker_stats(const bw__ho_worker *w, uint64_t *moved, uint64_t *refused,
                         uint64_t *taken)
{
    *moved = w->moved;
    *refused = w->refused;
    *taken = w->taken;
}
