/*
 * cluster_relay.c: the primary's side of connection handoff: each batch a
 * retiring worker offers goes to a worker that serves (the newest
 * generation first, round robin), and the receiver's answer goes back to
 * the giver. The protocol and its reasons are in cluster_handoff.c.
 *
 * A batch that finds no worker to take it (a single worker's replacement
 * is still starting, or every sibling drains) is answered -EAGAIN at once:
 * the giver keeps serving those connections and offers them again a few
 * milliseconds later (cluster_handoff.c), so a connection never waits
 * here, unread. A receiver that dies (or loses its channel) before
 * answering has its batches answered -EPIPE on its behalf, after whatever
 * answers it did send are read.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster_internal.h"

typedef struct relay_batch {
    struct relay_batch *next;
    uint32_t id;           /* ours: DELIVER and RESULT carry it */
    bw_worker *giver;      /* NULL once it is gone */
    uint32_t giver_batch;  /* its own id: ANSWER carries it */
    bw_worker *receiver;
    uint64_t since_ns;     /* for the event log */
    char *packet;          /* until delivered: the states (entries point in) */
    bw__ho_msg msg;        /* until delivered, the descriptors are ours */
} relay_batch;

struct bw__relay {
    relay_batch *head;
    uint32_t next_id;
    unsigned rr; /* round robin among the receivers */
    char buf[BW__HO_PACKET_MAX];
};

static bw__relay *relay_of(bw_cluster *c)
{
    if (c->relay == NULL)
        c->relay = bw_calloc(1, sizeof *c->relay);
    return c->relay;
}

static void close_held(relay_batch *b)
{
    for (size_t i = 0; i < b->msg.n; i++) {
        if (b->msg.entries[i].fd >= 0)
            close(b->msg.entries[i].fd);
        b->msg.entries[i].fd = -1;
    }
    bw_free(b->packet);
    b->packet = NULL;
}

static void unlink_batch(bw__relay *r, relay_batch *b)
{
    for (relay_batch **pp = &r->head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            return;
        }
    }
}

/* Tell the giver how its batch went (and the event log). */
static void send_answer(bw_cluster *c, bw_worker *giver, uint32_t giver_batch,
                        const bw_worker *receiver, uint64_t since_ns, size_t n,
                        const int32_t *status)
{
    size_t moved = 0;
    int why = 0;
    for (size_t i = 0; i < n; i++) {
        moved += status[i] == 0;
        if (status[i] != 0)
            why = status[i];
    }
    bw__metrics_handoff(c, moved, n - moved);
    if (giver != NULL && giver->ho_fd >= 0) {
        bw__ho_msg a = {.type = BW__HO_ANSWER, .n = n, .batch = giver_batch};
        memcpy(a.status, status, n * sizeof *status);
        int rc = bw__ho_send(giver->ho_fd, &a);
        if (rc != 0)
            bw_log(BW_LOG_ERROR, "cluster: cannot answer worker %d's handoff: %s", giver->id,
                   bw_strerror(rc));
    }
    char extra[192];
    snprintf(extra, sizeof extra,
             "\"to\": %d, \"count\": %zu, \"moved\": %zu, \"since_ns\": %llu, \"why\": \"%s\"",
             receiver != NULL ? receiver->id : 0, n, moved, (unsigned long long)since_ns,
             why != 0 ? bw_err_name(why) : "");
    bw__cluster_event_line(c, "handoff", giver, extra);
}

/* Answer a batch, and forget it. */
static void answer(bw_cluster *c, relay_batch *b, size_t n, const int32_t *status)
{
    send_answer(c, b->giver, b->giver_batch, b->receiver, b->since_ns, n, status);
    close_held(b);
    unlink_batch(c->relay, b);
    bw_free(b);
}

static void answer_all(bw_cluster *c, relay_batch *b, size_t n, int status)
{
    int32_t st[BW__HO_BATCH];
    for (size_t i = 0; i < n; i++)
        st[i] = status;
    answer(c, b, n, st);
}

/* The next worker to take a batch from `giver`: one of the newest
 * generation if any serves, in turn. */
static bw_worker *pick_receiver(bw_cluster *c, const bw_worker *giver)
{
    bw__relay *r = c->relay;
    /* Handing over to a new primary (cluster_upgrade.c): everything goes
     * there; this primary's workers all drain. */
    bw_worker *successor = bw__upgrade_receiver(c);
    if (successor != NULL && successor != giver)
        return successor;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        for (bw_worker *w = c->workers; w != NULL; w = w->next)
            n += w != giver && bw__worker_can_receive(w) && (pass == 1 || !w->rolling_old);
        if (n == 0)
            continue;
        size_t k = r->rr++ % n;
        for (bw_worker *w = c->workers; w != NULL; w = w->next)
            if (w != giver && bw__worker_can_receive(w) && (pass == 1 || !w->rolling_old) &&
                k-- == 0)
                return w;
    }
    return NULL;
}

/* Deliver a waiting batch if a worker can take it. */
static void route(bw_cluster *c, relay_batch *b)
{
    bw_worker *to = pick_receiver(c, b->giver);
    if (to == NULL) {
        /* Nobody now: the giver keeps them a while, unless nobody can come. */
        answer_all(c, b, b->msg.n, bw__receiver_may_come(c, b->giver) ? -EAGAIN : -ENOENT);
        return;
    }
    bw__ho_msg d = b->msg;
    d.type = BW__HO_DELIVER;
    d.batch = b->id;
    int rc = bw__ho_send(to->ho_fd, &d);
    if (rc != 0) {
        answer_all(c, b, b->msg.n, -EAGAIN); /* full, or going away */
        return;
    }
    /* The message holds the descriptors now: ours go. */
    close_held(b);
    b->receiver = to;
}

static void on_offer(bw_cluster *c, bw_worker *w, const bw__ho_msg *m, size_t len)
{
    bw__relay *r = c->relay;
    relay_batch *b = bw_calloc(1, sizeof *b);
    char *packet = b != NULL ? bw_malloc(len) : NULL;
    if (b == NULL || packet == NULL || m->truncated) {
        /* Out of memory, or the primary's own descriptor limit: refused
         * whole (the giver still holds every connection). */
        for (size_t i = 0; i < m->n; i++)
            if (m->entries[i].fd >= 0)
                close(m->entries[i].fd);
        int32_t st[BW__HO_BATCH];
        for (size_t i = 0; i < m->n; i++)
            st[i] = m->truncated ? -EMFILE : -ENOMEM;
        send_answer(c, w, m->batch, NULL, bw__mono_ns(), m->n, st);
        bw_free(b);
        bw_free(packet);
        return;
    }
    memcpy(packet, r->buf, len);
    b->id = ++r->next_id;
    b->giver = w;
    b->giver_batch = m->batch;
    b->since_ns = bw__mono_ns();
    b->packet = packet;
    b->msg = *m;
    for (size_t i = 0; i < m->n; i++)
        b->msg.entries[i].state = packet + (m->entries[i].state - r->buf);
    b->next = r->head;
    r->head = b;
    route(c, b);
}

static void on_result(bw_cluster *c, bw_worker *w, const bw__ho_msg *m)
{
    for (relay_batch *b = c->relay->head; b != NULL; b = b->next) {
        if (b->id == m->batch && b->receiver == w) {
            if (m->n == b->msg.n)
                answer(c, b, m->n, m->status);
            return;
        }
    }
}

/* Read what a worker sent on its handoff channel. false: the channel is
 * gone. */
static bool drain(bw_cluster *c, bw_worker *w, int max)
{
    bw__relay *r = relay_of(c);
    if (r == NULL)
        return true;
    for (int i = 0; i < max && w->ho_fd >= 0; i++) {
        bw__ho_msg m;
        int rc = bw__ho_recv(w->ho_fd, r->buf, sizeof r->buf, &m);
        if (rc == -EAGAIN)
            return true;
        if (rc == BW_EPROTO)
            continue;
        if (rc <= 0)
            return false;
        /* The packet's length, for a waiting copy: up to the last state. */
        size_t len = sizeof r->buf;
        if (m.n > 0 && (m.type == BW__HO_OFFER))
            len = (size_t)(m.entries[m.n - 1].state + m.entries[m.n - 1].len - r->buf);
        /* From the other primary (cluster_upgrade.c), a DELIVER is an offer
         * of its workers' connections to ours, an ANSWER what ours did with
         * those we delivered; READY, the new primary serves. */
        uint8_t type = m.type;
        if (bw__upgrade_is_peer(c, w)) {
            if (type == BW__HO_DELIVER) {
                type = BW__HO_OFFER;
                if (m.n > 0)
                    len = (size_t)(m.entries[m.n - 1].state + m.entries[m.n - 1].len - r->buf);
            } else if (type == BW__HO_ANSWER) {
                type = BW__HO_RESULT;
            } else if (type == BW__HO_READY) {
                bw__upgrade_on_ready(c);
                continue;
            }
        }
        if (type == BW__HO_OFFER)
            on_offer(c, w, &m, len);
        else if (type == BW__HO_RESULT)
            on_result(c, w, &m);
        else
            for (size_t k = 0; k < m.n; k++)
                if (m.entries[k].fd >= 0 && m.type == BW__HO_DELIVER)
                    close(m.entries[k].fd);
    }
    return true;
}

static void on_ho_closed(uv_handle_t *h)
{
    bw_worker *w = h->data;
    w->ho_poll_open = false;
    if (!bw__upgrade_is_peer(w->c, w)) /* the peer is the upgrade's to free */
        bw__cluster_maybe_forget(w->c, w);
}

static void close_ho(bw_worker *w)
{
    if (w->ho_fd < 0)
        return;
    uv_poll_stop(&w->ho_poll);
    uv_close((uv_handle_t *)&w->ho_poll, on_ho_closed);
    close(w->ho_fd);
    w->ho_fd = -1;
}

static void on_ho_channel(uv_poll_t *p, int status, int events)
{
    bw_worker *w = p->data;
    (void)events;
    if (status < 0 || !drain(w->c, w, 16))
        bw__relay_worker_gone(w->c, w);
}

int bw__relay_open(bw_cluster *c, bw_worker *w, int fd)
{
    if (relay_of(c) == NULL)
        return -ENOMEM;
    w->ho_fd = fd;
    uv_poll_init(c->loop->uv, &w->ho_poll, fd);
    w->ho_poll.data = w;
    w->ho_poll_open = true;
    uv_poll_start(&w->ho_poll, UV_READABLE | UV_DISCONNECT, on_ho_channel);
    uv_unref((uv_handle_t *)&w->ho_poll);
    return 0;
}

void bw__relay_worker_gone(bw_cluster *c, bw_worker *w)
{
    if (c->relay == NULL || w->ho_fd < 0)
        return;
    /* Answers it sent before it went count: they say what it adopted. */
    drain(c, w, 1 << 20);
    relay_batch *next;
    for (relay_batch *b = c->relay->head; b != NULL; b = next) {
        next = b->next;
        if (b->receiver == w) {
            answer_all(c, b, b->msg.n, -EPIPE);
        } else if (b->giver == w) {
            b->giver = NULL; /* the receiver's answer goes nowhere */
        }
    }
    close_ho(w);
    if (bw__upgrade_is_peer(c, w))
        bw__upgrade_peer_gone(c);
}

void bw__relay_free(bw_cluster *c)
{
    if (c->relay == NULL)
        return;
    while (c->relay->head != NULL) {
        relay_batch *b = c->relay->head;
        c->relay->head = b->next;
        close_held(b);
        bw_free(b);
    }
    bw_free(c->relay);
    c->relay = NULL;
}
