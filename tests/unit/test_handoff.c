/*
 * test_handoff.c: handing connections from a closing server to another
 * (http.h, "Handing connections to another process"; issue 13).
 *
 * Two servers in one process, on one loop: A gives, B adopts. A's handoff
 * callback calls bw_http_server_adopt(B, dup(fd), state, len) (the dup
 * stands for the descriptor the other process would receive) and settles A
 * with 0, at once or later; or keeps the connection to settle it later.
 * Clients are real loopback TCP sockets of the test, non-blocking, read
 * between turns of the loop (UV_RUN_NOWAIT): the test is a plain script,
 * every wait bounded (WAIT_UNTIL's deadline, and alarm()).
 *
 * Handlers tell the servers apart by the body: "A:/path" or "B:/path".
 */
#include "bw_test.h"
#include "http_state.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bulwark.h"

/* ---- Time, and waiting on the loop ------------------------------------- */

static bw_loop *g_loop;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Under valgrind everything is 20-50 times slower: waits get longer. */
static uint64_t slow_factor(void)
{
    const char *v = getenv("BW_CALLBACK_LIMIT_MS"); /* set for the .valgrind variants */
    return v != NULL ? 10 : 1;
}

static void turn(void)
{
    bw_loop_run(g_loop, UV_RUN_NOWAIT);
    usleep(500);
}

/* Turn the loop for about ms milliseconds. */
static void pump_for(uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (mono_ms() < end)
        turn();
}

#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        uint64_t wu_deadline = mono_ms() + 5000 * slow_factor();                                   \
        while (!(cond)) {                                                                          \
            if (mono_ms() > wu_deadline)                                                           \
                bw_test_fail(__FILE__, __LINE__, "timed out waiting for %s", #cond);               \
            turn();                                                                                \
        }                                                                                          \
    } while (0)

static void test_start(void)
{
    alarm((unsigned)(40 * slow_factor() > 100 ? 100 : 40 * slow_factor()));
    g_loop = bw_test_loop();
}

/* ---- Clients ----------------------------------------------------------- */

typedef struct client {
    int fd;
    char buf[65536];
    size_t len;
    bool eof;    /* read returned 0: a clean close */
    int err;     /* errno of a failed read (ECONNRESET: a reset) */
} client;

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    BW_CHECK(fl >= 0);
    BW_CHECK_INT_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static void client_connect(client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BW_CHECK(c->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Loopback: the kernel completes the handshake before the accept. */
    BW_CHECK_INT_EQ(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblock(c->fd);
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    BW_CHECK_INT_EQ(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    return ntohs(a.sin_port);
}

static void client_send(client *c, const char *s)
{
    size_t n = strlen(s), off = 0;
    uint64_t deadline = mono_ms() + 5000 * slow_factor();
    while (off < n) {
        ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        BW_CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        BW_CHECK(mono_ms() < deadline);
        turn();
    }
}

/* Read what arrived (never blocks). */
static void client_read(client *c)
{
    while (!c->eof && c->err == 0 && c->len < sizeof c->buf - 1) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            c->buf[c->len] = 0;
        } else if (r == 0) {
            c->eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            c->err = errno;
        }
    }
}

static void client_close(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* One parsed response (the servers here always send a Content-Length). */
typedef struct resp {
    int status;
    bool keepalive;
    bool close;
    char body[256];
} resp;

/* A whole response at the front of c's buffer: parsed, consumed, true. */
static bool take_response(client *c, resp *r)
{
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL)
        return false;
    size_t head_len = (size_t)(end - c->buf) + 4;
    char head[4096];
    BW_CHECK(head_len < sizeof head);
    memcpy(head, c->buf, head_len);
    head[head_len] = 0;
    for (char *p = head; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    char *cl = strstr(head, "\r\ncontent-length:");
    BW_CHECK(cl != NULL);
    size_t blen = strtoul(cl + 17, NULL, 10);
    if (c->len < head_len + blen)
        return false;
    memset(r, 0, sizeof *r);
    BW_CHECK(sscanf(head, "http/1.1 %d", &r->status) == 1);
    r->keepalive = strstr(head, "\r\nconnection: keep-alive") != NULL;
    r->close = strstr(head, "\r\nconnection: close") != NULL;
    BW_CHECK(blen < sizeof r->body);
    memcpy(r->body, c->buf + head_len, blen);
    r->body[blen] = 0;
    memmove(c->buf, c->buf + head_len + blen, c->len - head_len - blen);
    c->len -= head_len + blen;
    c->buf[c->len] = 0;
    return true;
}

static bool got_response(client *c, resp *r)
{
    client_read(c);
    return take_response(c, r);
}

#define WAIT_RESPONSE(c, r) WAIT_UNTIL(got_response((c), (r)))

static bool client_closed(client *c)
{
    client_read(c);
    return c->eof || c->err != 0;
}

/* A response with the given body, and whether it kept the connection. */
static void expect_response(client *c, const char *body, bool keepalive)
{
    resp r;
    WAIT_RESPONSE(c, &r);
    BW_CHECK_INT_EQ(r.status, 200);
    BW_CHECK_STR_EQ(r.body, body);
    if (keepalive)
        BW_CHECK(r.keepalive && !r.close);
    else
        BW_CHECK(r.close);
}

/* Nothing arrives (no response, no close) for ms milliseconds. */
static void expect_quiet(client *c, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        turn();
        client_read(c);
        BW_CHECK_INT_EQ(c->len, 0);
        BW_CHECK(!c->eof && c->err == 0);
    }
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- Servers ----------------------------------------------------------- */

typedef struct side {
    char tag; /* 'A' or 'B': the first byte of every body */
    bw_http_server *srv;
    int requests;
    int slow_started;
    bool closed;
    char events[64]; /* the order things happened in (shared by both sides) */
} side;

static char g_events[128];

static void note(char e)
{
    size_t n = strlen(g_events);
    if (n + 1 < sizeof g_events)
        g_events[n] = e;
}

static void answer(bw_http_response *res, char tag, const char *path)
{
    char body[128];
    int n = snprintf(body, sizeof body, "%c:%s", tag, path);
    bw_http_response_send(res, 200, "text/plain", body, (size_t)n);
}

static void on_slow(bw_timer *t, void *data)
{
    (void)t;
    answer(data, 'A', "/slow");
}

static void handler(bw_http_request *req, bw_http_response *res, void *data)
{
    side *sd = data;
    sd->requests++;
    const char *path = bw_http_request_path(req);
    if (strcmp(path, "/slow") == 0) {
        sd->slow_started++;
        bw_timeout(bw_http_request_loop(req), 150, on_slow, res, NULL);
        return;
    }
    answer(res, sd->tag, path);
}

static void on_closed(bw_http_server *s, int status, void *data)
{
    (void)s;
    (void)status;
    side *sd = data;
    sd->closed = true;
    note(sd->tag == 'A' ? 'C' : 'D');
}

static void side_start(side *sd, char tag, const bw_http_options *o)
{
    memset(sd, 0, sizeof *sd);
    sd->tag = tag;
    BW_CHECK_INT_EQ(bw_http_server_new(g_loop, o, handler, sd, &sd->srv), 0);
    BW_CHECK_INT_EQ(bw_http_server_listen(sd->srv, "127.0.0.1", 0), 0);
}

static int side_port(side *sd)
{
    return bw_http_server_port(sd->srv);
}

/* Close (if still open) and free; then the loop must end clean. */
static void side_finish(side *sd)
{
    if (!sd->closed) {
        int rc = bw_http_server_close(sd->srv, on_closed, sd);
        BW_CHECK(rc == 0 || rc == BW_ECLOSING);
        WAIT_UNTIL(sd->closed);
    }
    BW_CHECK_INT_EQ(bw_http_server_free(sd->srv), 0);
}

static void close_a(side *a)
{
    BW_CHECK_INT_EQ(bw_http_server_close(a->srv, on_closed, a), 0);
}

/* ---- The handoff callback ---------------------------------------------- */

enum { GIVE_ADOPT_SETTLE = 0, GIVE_ADOPT_LATER = 1, GIVE_KEEP = 2 };

typedef struct given {
    int fd;
    char *state;
    size_t len;
    bool adopted; /* B adopted it already: settle with 0 */
} given;

static struct {
    side *b;
    int mode;       /* GIVE_* */
    int eagain;     /* answer -EAGAIN this many times first */
    int calls;
    int adopt_rc;   /* B's answer, last time */
    given g[8];
    int ng;
} H;

static void handoff_reset(side *b, int mode)
{
    memset(&H, 0, sizeof H);
    H.b = b;
    H.mode = mode;
    g_events[0] = 0;
}

static int adopt_into_b(int fd, const void *state, size_t len)
{
    int d = dup(fd); /* what the other process would have received */
    BW_CHECK(d >= 0);
    H.adopt_rc = bw_http_server_adopt(H.b->srv, d, state, len);
    if (H.adopt_rc != 0)
        close(d);
    return H.adopt_rc;
}

static int on_handoff(bw_http_server *s, int fd, const void *state, size_t len, void *data)
{
    (void)data;
    H.calls++;
    note('h');
    BW_CHECK(len > 0 && len <= BW_HTTP_HANDOFF_STATE_MAX);
    BW_CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    BW_CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    if (H.eagain > 0) {
        H.eagain--;
        return -EAGAIN;
    }
    if (H.mode == GIVE_ADOPT_SETTLE) {
        int rc = adopt_into_b(fd, state, len);
        if (rc != 0)
            return rc;
        note('s');
        BW_CHECK_INT_EQ(bw_http_server_handoff_settle(s, fd, state, len, 0), 0);
        return 0;
    }
    BW_CHECK(H.ng < 8);
    given *g = &H.g[H.ng++];
    g->fd = fd;
    g->len = len;
    g->state = malloc(len);
    BW_CHECK(g->state != NULL);
    memcpy(g->state, state, len);
    if (H.mode == GIVE_ADOPT_LATER) {
        BW_CHECK_INT_EQ(adopt_into_b(fd, state, len), 0);
        g->adopted = true;
    }
    return 0;
}

static void settle(bw_http_server *a, given *g, int status)
{
    note('s');
    BW_CHECK_INT_EQ(bw_http_server_handoff_settle(a, g->fd, g->state, g->len, status), 0);
    free(g->state);
    g->state = NULL;
}

static void handoff_done(void)
{
    for (int i = 0; i < H.ng; i++)
        free(H.g[i].state);
    H.ng = 0;
}

static void options(bw_http_options *o)
{
    bw_http_options_init(o);
    o->close_grace_ms = 300;
}

/* ---- Cases ------------------------------------------------------------- */

/* An idle keep-alive connection moves; the client sees nothing of it. */
BW_TEST(V_01, an_idle_keepalive_connection_moves_to_the_adopter)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_LATER);
    BW_CHECK_INT_EQ(bw_http_server_set_handoff(a.srv, on_handoff, NULL), 0);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, GET("/one"));
    expect_response(&c, "A:/one", true);

    close_a(&a);
    WAIT_UNTIL(H.calls == 1);
    BW_CHECK_INT_EQ(H.ng, 1);
    BW_CHECK(H.g[0].adopted);
    WAIT_UNTIL(bw_http_server_connection_count(a.srv) == 0);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(b.srv), 1);
    /* A's close waits for the settle. */
    pump_for(100);
    BW_CHECK(!a.closed);

    /* The same socket, now served by B; a request sent before the settle
     * is answered too. */
    client_send(&c, GET("/two"));
    expect_response(&c, "B:/two", true);
    BW_CHECK(!a.closed);
    settle(a.srv, &H.g[0], 0);
    WAIT_UNTIL(a.closed);
    BW_CHECK_STR_EQ(g_events, "hsC");
    BW_CHECK_INT_EQ(a.requests, 1);

    client_send(&c, GET("/three"));
    expect_response(&c, "B:/three", true);
    BW_CHECK_INT_EQ(b.requests, 2);
    BW_CHECK_INT_EQ(c.len, 0); /* nothing else arrived */
    BW_CHECK(!c.eof && c.err == 0);

    client_close(&c);
    handoff_done();
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* Three pipelined requests, the first slow; A (max_pipelined 1) has not
 * parsed the other two when it closes: they go with the connection and B
 * answers them, in order. Every response says keep-alive. */
BW_TEST(V_02, pipelined_bytes_travel_with_the_connection)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    bw_http_options oa = o;
    oa.max_pipelined = 1;
    side_start(&a, 'A', &oa);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, GET("/slow") GET("/2") GET("/3"));
    WAIT_UNTIL(a.slow_started == 1);
    pump_for(20);
    close_a(&a);
    /* In flight: nothing moves until its response is out. */
    BW_CHECK_INT_EQ(H.calls, 0);

    expect_response(&c, "A:/slow", true);
    expect_response(&c, "B:/2", true);
    expect_response(&c, "B:/3", true);
    BW_CHECK_INT_EQ(H.calls, 1);
    BW_CHECK_INT_EQ(a.requests, 1);
    BW_CHECK_INT_EQ(b.requests, 2);
    WAIT_UNTIL(a.closed);
    BW_CHECK_STR_EQ(g_events, "hsC");

    /* And it goes on, on B. */
    client_send(&c, GET("/4"));
    expect_response(&c, "B:/4", true);

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* The same with the default pipelining bound, the pipelined requests sent
 * while the first is in flight and A is already closing: A reads them and
 * does not parse them; B answers them. */
BW_TEST(V_02b, requests_sent_during_the_close_travel_unparsed)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, GET("/slow"));
    WAIT_UNTIL(a.slow_started == 1);
    close_a(&a);
    client_send(&c, GET("/2") GET("/3"));
    expect_response(&c, "A:/slow", true);
    expect_response(&c, "B:/2", true);
    expect_response(&c, "B:/3", true);
    BW_CHECK_INT_EQ(a.requests, 1);
    BW_CHECK_INT_EQ(b.requests, 2);
    WAIT_UNTIL(a.closed);
    BW_CHECK_STR_EQ(g_events, "hsC");

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* Half a request head when A closes: served by A first, then moved. */
BW_TEST(V_03, a_partial_head_is_served_where_it_is_then_moves)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, "GET /half HTTP/1.1\r\nHo");
    WAIT_UNTIL(bw_http_server_connection_count(a.srv) == 1);
    pump_for(50);
    close_a(&a);
    pump_for(100);
    BW_CHECK_INT_EQ(H.calls, 0);
    BW_CHECK(!a.closed);

    client_send(&c, "st: t\r\n\r\n");
    expect_response(&c, "A:/half", true);
    WAIT_UNTIL(H.calls == 1);
    WAIT_UNTIL(a.closed);
    client_send(&c, GET("/next"));
    expect_response(&c, "B:/next", true);

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* A body arriving when A closes: the request is served by A, then the
 * connection moves. */
BW_TEST(V_03b, a_body_in_progress_is_served_where_it_is_then_moves)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, "POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    WAIT_UNTIL(a.requests == 1);
    close_a(&a);
    /* The handler answered at once, before the body ended: the response is
     * out, but the body is still arriving: it stays. */
    pump_for(100);
    BW_CHECK_INT_EQ(H.calls, 0);
    client_send(&c, "56789");
    expect_response(&c, "A:/post", true);
    WAIT_UNTIL(H.calls == 1);
    WAIT_UNTIL(a.closed);
    client_send(&c, GET("/next"));
    expect_response(&c, "B:/next", true);

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* -EAGAIN from the callback: the connection stays (and is served) until
 * bw_http_server_handoff_more offers it again. */
BW_TEST(V_04, eagain_then_handoff_more_moves_it)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    H.eagain = 1;
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, GET("/one"));
    expect_response(&c, "A:/one", true);
    close_a(&a);
    WAIT_UNTIL(H.calls == 1);
    expect_quiet(&c, 400); /* longer than close_grace_ms: it is not closed either */
    BW_CHECK_INT_EQ(H.calls, 1);
    BW_CHECK(!a.closed);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(a.srv), 1);

    /* Served where it is meanwhile, keep-alive; not offered again. */
    client_send(&c, GET("/two"));
    expect_response(&c, "A:/two", true);
    pump_for(50);
    BW_CHECK_INT_EQ(H.calls, 1);

    bw_http_server_handoff_more(a.srv);
    WAIT_UNTIL(H.calls == 2);
    WAIT_UNTIL(a.closed);
    BW_CHECK_STR_EQ(g_events, "hhsC");
    client_send(&c, GET("/three"));
    expect_response(&c, "B:/three", true);

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

static given *given_for(const client *c)
{
    char port[16];
    snprintf(port, sizeof port, ":%d", local_port(c->fd));
    for (int i = 0; i < H.ng; i++) {
        /* The state carries the peer's address as text. */
        if (H.g[i].state != NULL && memmem(H.g[i].state, H.g[i].len, port, strlen(port)) != NULL)
            return &H.g[i];
    }
    bw_test_fail(__FILE__, __LINE__, "no connection given for the client on %s", port);
}

/* Taken, then settled -EAGAIN (taken back: served, offered again at
 * handoff_more) or -EPIPE (closed by A gracefully). */
BW_TEST(V_05, settle_eagain_takes_back_and_settle_error_closes_gracefully)
{
    test_start();
    bw_http_options o;
    options(&o);
    o.close_grace_ms = 500;
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_KEEP);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c1, c2;
    client_connect(&c1, side_port(&a));
    client_connect(&c2, side_port(&a));
    client_send(&c1, GET("/c1"));
    client_send(&c2, GET("/c2"));
    expect_response(&c1, "A:/c1", true);
    expect_response(&c2, "A:/c2", true);

    close_a(&a);
    WAIT_UNTIL(H.calls == 2);
    WAIT_UNTIL(bw_http_server_connection_count(a.srv) == 0);
    given *g1 = given_for(&c1), *g2 = given_for(&c2);
    pump_for(50);
    BW_CHECK(!a.closed);

    /* -EPIPE: A takes c2 back and closes it as without a handoff: the
     * grace read answers a request sent meanwhile, then a clean close. */
    client_send(&c2, GET("/grace"));
    settle(a.srv, g2, -EPIPE);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(a.srv), 1);
    resp r;
    WAIT_RESPONSE(&c2, &r);
    BW_CHECK_STR_EQ(r.body, "A:/grace");
    BW_CHECK(r.close);
    WAIT_UNTIL(client_closed(&c2));
    BW_CHECK(c2.eof);
    BW_CHECK_INT_EQ(c2.err, 0);
    BW_CHECK_INT_EQ(c2.len, 0);
    BW_CHECK_INT_EQ(H.calls, 2); /* never offered again */
    client_close(&c2); /* A lingers until the client closes too */
    WAIT_UNTIL(bw_http_server_connection_count(a.srv) == 0);
    pump_for(50);
    BW_CHECK(!a.closed); /* c1 is not settled */

    /* -EAGAIN: A takes c1 back; it is served there, keep-alive. */
    settle(a.srv, g1, -EAGAIN);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(a.srv), 1);
    client_send(&c1, GET("/back"));
    expect_response(&c1, "A:/back", true);
    pump_for(50);
    BW_CHECK_INT_EQ(H.calls, 2);
    BW_CHECK(!a.closed);

    /* Offered again: moves to B this time. */
    H.mode = GIVE_ADOPT_SETTLE;
    bw_http_server_handoff_more(a.srv);
    WAIT_UNTIL(H.calls == 3);
    WAIT_UNTIL(a.closed);
    BW_CHECK_STR_EQ(g_events, "hhsshsC");
    client_send(&c1, GET("/moved"));
    expect_response(&c1, "B:/moved", true);

    /* A settle with none outstanding. */
    BW_CHECK_INT_EQ(bw_http_server_handoff_settle(a.srv, -1, NULL, 0, 0), -EINVAL);

    client_close(&c1);
    client_close(&c2);
    handoff_done();
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* ---- V-06: what adopt refuses ----------------------------------------- */

/* The state's framing: src/http_state.h, shared with http_conn.c. */
typedef bw__state_hdr state_hdr;

/* A connected loopback pair of the test's own: [0] the end given to
 * adopt, [1] its peer. */
static void tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BW_CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    BW_CHECK_INT_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    BW_CHECK_INT_EQ(listen(l, 1), 0);
    BW_CHECK_INT_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BW_CHECK(sv[1] >= 0);
    BW_CHECK_INT_EQ(connect(sv[1], (struct sockaddr *)&a, sizeof a), 0);
    sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    BW_CHECK(sv[0] >= 0);
    close(l);
}

/* fd refused: still open, still the caller's, still carrying bytes both
 * ways, nothing read from it. */
static void check_untouched(int sv[2])
{
    BW_CHECK(fcntl(sv[0], F_GETFD) != -1);
    pump_for(5);
    char b[8];
    BW_CHECK_INT_EQ(write(sv[1], "ping", 4), 4);
    struct pollfd p = {sv[0], POLLIN, 0};
    BW_CHECK_INT_EQ(poll(&p, 1, 1000), 1);
    BW_CHECK_INT_EQ(read(sv[0], b, sizeof b), 4);
    BW_CHECK(memcmp(b, "ping", 4) == 0);
    BW_CHECK_INT_EQ(write(sv[0], "pong", 4), 4);
    BW_CHECK_INT_EQ(read(sv[1], b, sizeof b), 4);
    BW_CHECK(memcmp(b, "pong", 4) == 0);
}

/* A real given state: c, connected to A, asks /one; then A closes and
 * gives c away, kept (GIVE_KEEP) for the test to adopt or settle. */
static given *give_one_away(side *a, side *b, client *c)
{
    handoff_reset(b, GIVE_KEEP);
    bw_http_server_set_handoff(a->srv, on_handoff, NULL);
    client_connect(c, side_port(a));
    client_send(c, GET("/one"));
    expect_response(c, "A:/one", true);
    close_a(a);
    WAIT_UNTIL(H.ng == 1);
    return &H.g[0];
}

static void adopt_refused(bw_http_server *s, int sv[2], const void *st, size_t len, int want)
{
    BW_CHECK_INT_EQ(bw_http_server_adopt(s, sv[0], st, len), want);
    check_untouched(sv);
}

BW_TEST(V_06, adopt_refuses_a_bad_state_a_full_server_and_a_stopped_one)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    client c; /* a real state to corrupt */
    given *g = give_one_away(&a, &b, &c);
    state_hdr h;
    BW_CHECK(g->len >= sizeof h);
    memcpy(&h, g->state, sizeof h);
    BW_CHECK_INT_EQ(h.magic, 0x31435742u);
    BW_CHECK_INT_EQ(h.version, 1);
    BW_CHECK_INT_EQ(h.requests_begun, 1);
    BW_CHECK_INT_EQ(g->len, sizeof h + h.peer_len + h.bytes_len);

    int sv[2];
    tcp_pair(sv);
    char *bad = malloc(g->len + 1);
    BW_CHECK(bad != NULL);
    /* Every byte of the framing (magic, version, peer length, bytes
     * length) flipped, one at a time. */
    static const size_t framing[] = {0, 1, 2, 3, 4, 5, 6, 7, 20, 21, 22, 23};
    for (size_t i = 0; i < sizeof framing / sizeof framing[0]; i++) {
        memcpy(bad, g->state, g->len);
        bad[framing[i]] ^= (char)0xff;
        adopt_refused(b.srv, sv, bad, g->len, BW_EPROTO);
        bad[framing[i]] ^= (char)0x01; /* and a single bit */
        bad[framing[i]] ^= (char)0xff;
        adopt_refused(b.srv, sv, bad, g->len, BW_EPROTO);
    }
    /* Truncated, extended, empty, NULL. */
    memcpy(bad, g->state, g->len);
    bad[g->len] = 'x';
    for (size_t n = 0; n < g->len; n++)
        adopt_refused(b.srv, sv, bad, n, BW_EPROTO);
    adopt_refused(b.srv, sv, bad, g->len + 1, BW_EPROTO);
    adopt_refused(b.srv, sv, NULL, 0, BW_EPROTO);
    adopt_refused(b.srv, sv, NULL, g->len, BW_EPROTO);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(b.srv), 0);

    /* max_connections reached. */
    bw_http_options of = o;
    of.max_connections = 1;
    side f;
    side_start(&f, 'F', &of);
    client cf;
    client_connect(&cf, side_port(&f));
    client_send(&cf, GET("/full"));
    expect_response(&cf, "F:/full", true);
    adopt_refused(f.srv, sv, g->state, g->len, BW_ELIMIT);

    /* A server never started, and one closed. */
    bw_http_server *never;
    BW_CHECK_INT_EQ(bw_http_server_new(g_loop, &o, handler, &f, &never), 0);
    adopt_refused(never, sv, g->state, g->len, BW_ENOTRUNNING);
    BW_CHECK_INT_EQ(bw_http_server_free(never), 0);
    client_close(&cf);
    BW_CHECK_INT_EQ(bw_http_server_close(f.srv, on_closed, &f), 0);
    WAIT_UNTIL(f.closed);
    adopt_refused(f.srv, sv, g->state, g->len, BW_ENOTRUNNING);
    BW_CHECK_INT_EQ(bw_http_server_free(f.srv), 0);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(b.srv), 0);

    /* The good state still works: B adopts A's connection. */
    int d = dup(g->fd);
    BW_CHECK_INT_EQ(bw_http_server_adopt(b.srv, d, g->state, g->len), 0);
    settle(a.srv, g, 0);
    WAIT_UNTIL(a.closed);
    client_send(&c, GET("/two"));
    expect_response(&c, "B:/two", true);

    free(bad);
    close(sv[0]);
    close(sv[1]);
    client_close(&c);
    handoff_done();
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* ---- V-07: the clocks travel ------------------------------------------- */

/* A connection that never sent a request, moved 150 ms after its accept,
 * is closed by B at the headers timeout counted from the accept (300 ms),
 * not from the move (450 ms). */
BW_TEST(V_07, the_headers_timeout_counts_from_the_first_accept)
{
    test_start();
    bw_http_options o;
    options(&o);
    o.headers_timeout_ms = 300 * slow_factor();
    o.close_grace_ms = 100; /* the sweep runs every 25 ms */
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    uint64_t t0 = mono_ms();
    client c;
    client_connect(&c, side_port(&a));
    WAIT_UNTIL(bw_http_server_connection_count(a.srv) == 1);
    while (mono_ms() - t0 < 150 * slow_factor())
        turn();
    close_a(&a);
    BW_CHECK_INT_EQ(H.calls, 1);
    BW_CHECK_INT_EQ(bw_http_server_connection_count(b.srv), 1);
    uint64_t moved = mono_ms() - t0;
    WAIT_UNTIL(client_closed(&c));
    uint64_t closed = mono_ms() - t0;
    fprintf(stderr, "moved at %llu ms, closed at %llu ms\n", (unsigned long long)moved,
            (unsigned long long)closed);
    BW_CHECK(closed >= 250 * slow_factor());
    BW_CHECK(closed < 420 * slow_factor());
    BW_CHECK_INT_EQ(c.len, 0); /* silently: no 408 for a connection that sent nothing */
    client_close(&c);
    WAIT_UNTIL(bw_http_server_connection_count(b.srv) == 0);

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* A connection that carried a request keeps the keep-alive time it had
 * left: idle 200 ms on A, then moved, it is closed by B at 400 ms from its
 * response, not 600. */
BW_TEST(V_07b, the_keepalive_time_left_travels)
{
    test_start();
    bw_http_options o;
    options(&o);
    o.keepalive_timeout_ms = 400 * slow_factor();
    o.close_grace_ms = 100; /* the sweep runs every 25 ms */
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, GET("/one"));
    expect_response(&c, "A:/one", true);
    uint64_t t0 = mono_ms();
    pump_for(200 * slow_factor());
    close_a(&a);
    BW_CHECK_INT_EQ(H.calls, 1);
    WAIT_UNTIL(client_closed(&c));
    uint64_t closed = mono_ms() - t0;
    fprintf(stderr, "closed %llu ms after the response\n", (unsigned long long)closed);
    BW_CHECK(closed >= 330 * slow_factor());
    BW_CHECK(closed < 550 * slow_factor());
    BW_CHECK_INT_EQ(c.len, 0);

    client_close(&c);
    side_finish(&a);
    side_finish(&b);
    bw_test_loop_finish(g_loop);
}

/* No handoff callback: the close is as it was (grace read, then a clean
 * close; a busy connection's response says Connection: close). */
BW_TEST(V_08, a_server_without_handoff_closes_as_before)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a;
    side_start(&a, 'A', &o);
    g_events[0] = 0;

    client idle, busy;
    client_connect(&idle, side_port(&a));
    client_connect(&busy, side_port(&a));
    client_send(&idle, GET("/idle"));
    expect_response(&idle, "A:/idle", true);
    client_send(&busy, GET("/slow"));
    WAIT_UNTIL(a.slow_started == 1);
    close_a(&a);
    expect_response(&busy, "A:/slow", false);
    WAIT_UNTIL(client_closed(&idle));
    WAIT_UNTIL(client_closed(&busy));
    BW_CHECK(idle.eof && idle.err == 0 && idle.len == 0);
    BW_CHECK(busy.eof && busy.err == 0 && busy.len == 0);
    client_close(&idle); /* the server lingers until the clients close */
    client_close(&busy);
    WAIT_UNTIL(a.closed);
    BW_CHECK_STR_EQ(g_events, "C");

    client_close(&idle);
    client_close(&busy);
    side_finish(&a);
    bw_test_loop_finish(g_loop);
}

/* The moment a close completes: a server with no connection left closes
 * its own handles, and its callback comes a loop turn later. A connection
 * adopted in between (in a cluster, a sibling's handoff that crossed this
 * worker's retirement) was registered in a server about to end, and its
 * wake-up restarted a handle being closed: that worker's loop never ended,
 * and what it had been given was closed under its clients. Now it is
 * refused, the fd untouched; a close not yet completing still adopts
 * (V-09), and then serves what it took. */
/* B's own handoff, as a retiring worker's: it keeps what it is given
 * (the fd and a copy of the state) until the test settles it. */
static struct {
    int fd;
    char *state;
    size_t len;
    int n;
} kept;

static int keep_handoff(bw_http_server *s, int fd, const void *state, size_t len, void *data)
{
    (void)s;
    (void)data;
    if (kept.n > 0)
        return -EAGAIN;
    kept.fd = fd;
    kept.state = malloc(len);
    BW_CHECK(kept.state != NULL);
    memcpy(kept.state, state, len);
    kept.len = len;
    kept.n = 1;
    return 0;
}

BW_TEST(V_10, adopt_refused_while_the_close_completes)
{
    test_start();
    bw_http_options o;
    options(&o);
    side a, b;
    side_start(&a, 'A', &o);
    side_start(&b, 'B', &o);
    client c;
    given *g = give_one_away(&a, &b, &c);

    memset(&kept, 0, sizeof kept);
    bw_http_server_set_handoff(b.srv, keep_handoff, NULL); /* B retires too */
    BW_CHECK_INT_EQ(bw_http_server_close(b.srv, on_closed, &b), 0);
    int refused = 0;
    bool adopted = false;
    while (!b.closed && !adopted) {
        bw_loop_run(g_loop, UV_RUN_NOWAIT); /* one turn at a time: the window is one turn */
        if (b.closed)
            break;
        int d = dup(g->fd);
        BW_CHECK(d >= 0);
        int rc = bw_http_server_adopt(b.srv, d, g->state, g->len);
        if (rc == 0) { /* still closing, not completing: B hands it on in turn */
            adopted = true;
            settle(a.srv, g, 0);
            WAIT_UNTIL(kept.n == 1);
            BW_CHECK_INT_EQ(bw_http_server_handoff_settle(b.srv, kept.fd, kept.state, kept.len,
                                                          -ENOENT), 0);
            free(kept.state);
            break;
        }
        BW_CHECK_INT_EQ(rc, BW_ENOTRUNNING);
        BW_CHECK(fcntl(d, F_GETFD) != -1); /* still the caller's */
        close(d);
        refused++;
    }
    if (!adopted)
        settle(a.srv, g, -ENOENT); /* nobody took it: A closes it gracefully */
    WAIT_UNTIL(client_closed(&c));
    BW_CHECK(c.eof && c.err == 0 && c.len == 0); /* a FIN, not a reset */
    client_close(&c);
    WAIT_UNTIL(a.closed && b.closed);
    BW_CHECK(refused >= 1 || adopted);
    BW_CHECK_INT_EQ(bw_http_server_free(a.srv), 0);
    BW_CHECK_INT_EQ(bw_http_server_free(b.srv), 0);
    /* Nothing left counted active: the loop ends by itself. */
    pump_for(20);
    BW_CHECK_INT_EQ(uv_loop_alive(bw_loop_uv(g_loop)), 0);
    bw_test_loop_finish(g_loop);
}

/* Adopted by a server that is itself closing (without a handoff callback):
 * the carried requests are served there, the last response says close. */
BW_TEST(V_09, a_closing_adopter_serves_the_carried_requests_then_closes)
{
    test_start();
    bw_http_options o;
    options(&o);
    o.close_grace_ms = 1000;
    side a, b;
    bw_http_options oa = o;
    oa.max_pipelined = 1;
    side_start(&a, 'A', &oa);
    side_start(&b, 'B', &o);
    handoff_reset(&b, GIVE_ADOPT_SETTLE);
    bw_http_server_set_handoff(a.srv, on_handoff, NULL);

    client hold; /* keeps B's close from completing */
    client_connect(&hold, side_port(&b));
    WAIT_UNTIL(bw_http_server_connection_count(b.srv) == 1);
    client c;
    client_connect(&c, side_port(&a));
    client_send(&c, GET("/slow") GET("/2") GET("/3"));
    WAIT_UNTIL(a.slow_started == 1);
    BW_CHECK_INT_EQ(bw_http_server_close(b.srv, on_closed, &b), 0);
    close_a(&a);
    expect_response(&c, "A:/slow", true);
    expect_response(&c, "B:/2", true);
    expect_response(&c, "B:/3", false);
    WAIT_UNTIL(client_closed(&c));
    BW_CHECK(c.eof && c.err == 0 && c.len == 0);
    BW_CHECK_INT_EQ(H.adopt_rc, 0);
    client_close(&c);
    client_close(&hold);
    WAIT_UNTIL(a.closed && b.closed);
    BW_CHECK_INT_EQ(bw_http_server_free(a.srv), 0);
    BW_CHECK_INT_EQ(bw_http_server_free(b.srv), 0);
    bw_test_loop_finish(g_loop);
}
