/*
 * cluster_test_app: a primary and its workers for the end-to-end tests of
 * the cluster's C behaviours (tests/e2e/test_cluster_behaviours.py).
 *
 *     cluster_test_app SCENARIO
 *
 * The primary runs a bw_cluster on its own loop, listening on 127.0.0.1
 * port 0 (PORTS=2: two sockets), and plays the scenario: it forks workers
 * (each told what to do by MODE in its environment), reacts to events, and
 * prints one line per event:
 *
 *     event NAME id=1 pid=123 state=listening connected=1 dead=0 ead=unset
 *           code=-1 signal=0 workers=1 listed=1 alive=1
 *           [address=... family=4 port=...] [data=...]
 *
 * (ead: exitedAfterDisconnect; workers: bw_cluster_worker_count at that
 * moment; listed: whether this worker is among them; alive: whether its pid
 * still exists.) Workers print lines that
 * begin with "worker ID". Every line is one write(2), so lines of different
 * processes never interleave. SIGUSR1 to the primary triggers the
 * scenario's step that the test controls (most often bw_cluster_disconnect).
 *
 * The primary ends by disconnecting what is left, closing the cluster and
 * the loop (so ASan sees any leak), printing "primary done", and exiting 0;
 * a few scenarios end otherwise on purpose (C-20, D-81).
 *
 * It includes cluster_internal.h for the raw channel (malformed messages
 * for C-11, a raw channel close for C-27).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bulwark.h"
#include "cluster_internal.h"

extern char **environ;

/* ---- Output ------------------------------------------------------------- */

static void say(const char *fmt, ...) BW_PRINTF(1, 2);

static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDOUT_FILENO, line, (size_t)n); /* one line, one write */
    (void)w;
}

static const char *state_name(bw_worker_state s)
{
    static const char *names[] = {"none", "online", "listening", "disconnected", "dead"};
    return (size_t)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static const char *ead_name(bw_tristate t)
{
    return t == BW_UNSET ? "unset" : t == BW_YES ? "yes" : "no";
}

static bool pid_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}

/* A hash of the environment, to show that a worker's is the primary's
 * (MODE, which the primary gives each worker on purpose, left out). */
static unsigned env_hash(void)
{
    unsigned h = 2166136261u;
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, "MODE=", 5) == 0)
            continue;
        for (const char *p = *e; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ '\n') * 16777619u;
    }
    return h;
}

/* ======================================================================== */
/* ---- The worker side ---------------------------------------------------- */
/* ======================================================================== */

typedef struct wstate {
    bw_worker_ctx *ctx;
    bw_loop *loop;
    int id;
    bw_http_server *servers[8]; /* freed after the loop */
    size_t nservers;
    bw_http_server *own[8]; /* listening on ports of their own: closed at disconnect */
    size_t nown;
    int exit_code;
    int disconnect_cbs;
    uv_tcp_t hold; /* C-26: an outgoing connection */
    uv_connect_t hold_req;
} wstate;

static wstate W;

#define wsay(fmt, ...) say("worker %d " fmt, W.id, __VA_ARGS__)

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : def;
}

static void answer_later(bw_timer *t, void *data)
{
    (void)t;
    wsay("answered %s", "/hold");
    bw_http_response_send(data, 200, "text/plain", "held\n", 5);
}

static void answer_slow(bw_timer *t, void *data)
{
    (void)t;
    wsay("answered %s", "/slow");
    bw_http_response_send(data, 200, "text/plain", "slow ok\n", 8);
}

static uint64_t query_ms(bw_http_request *req, uint64_t def)
{
    const char *q = strstr(bw_http_request_query(req), "ms=");
    return q ? (uint64_t)atol(q + 3) : def;
}

static void handle(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)data;
    const char *path = bw_http_request_path(req);
    if (strcmp(path, "/slow") == 0) {
        /* Answered after ?ms= (P-NN: in flight when the worker retires). */
        wsay("slow started ms=%llu", (unsigned long long)query_ms(req, 300));
        bw_timeout(bw_http_request_loop(req), query_ms(req, 300), answer_slow, res, NULL);
        return;
    }
    if (strcmp(path, "/never") == 0) {
        wsay("never answers %s", path); /* a drain with this in flight never ends */
        return;
    }
    if (strcmp(path, "/throw") == 0)
        bw_throwf(-EIO, "thrown in request %s", path);
    if (strcmp(path, "/lift") == 0) {
        /* M-04: ask the primary to lift the quarantine of the query's key
         * ('+' for a space: "/lift?GET+/throw?a=1"), or of all. */
        char msg[300];
        int n = snprintf(msg, sizeof msg, "lift %s", bw_http_request_query(req));
        for (char *p = msg + 5; *p; p++)
            if (*p == '+')
                *p = ' ';
        bw_worker_ctx_send(W.ctx, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        bw_http_response_send(res, 200, "text/plain", "asked\n", 6);
        return;
    }
    if (strcmp(path, "/hold") == 0) {
        /* C-41: tell the primary a request is in flight; answer later. */
        static const char msg[] = "holding";
        bw_worker_ctx_send(W.ctx, msg, sizeof msg - 1);
        bw_timeout(bw_http_request_loop(req), query_ms(req, 300), answer_later, res, NULL);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "echo %d", W.id);
    bw_http_response_send(res, 200, "text/plain", body, (size_t)n);
}

static bw_http_server *new_server_with(const bw_http_options *o)
{
    bw_http_server *srv;
    int rc = W.nservers < sizeof W.servers / sizeof W.servers[0]
                 ? bw_http_server_new(W.loop, o, handle, NULL, &srv)
                 : BW_ELIMIT;
    if (rc != 0) {
        wsay("cannot create a server: %s", bw_err_name(rc));
        _exit(70);
    }
    W.servers[W.nservers++] = srv;
    return srv;
}

static bw_http_server *new_server(void)
{
    return new_server_with(NULL);
}

/* Serve on the inherited sockets (announces `listening`). */
static int serve(void)
{
    int rc = bw_worker_ctx_serve_http(W.ctx, new_server(), NULL);
    wsay("serve rc=%s", rc == 0 ? "0" : bw_err_name(rc));
    return rc;
}

static void on_own_closed(bw_http_server *srv, int status, void *data)
{
    (void)data;
    wsay("own server closed status=%d port=%d", status, bw_http_server_port(srv));
}

static void close_own_servers(void)
{
    for (size_t i = 0; i < W.nown; i++)
        bw_http_server_close(W.own[i], on_own_closed, NULL);
    W.nown = 0;
}

static void on_hold_closed(uv_handle_t *h)
{
    (void)h;
    wsay("hold connection %s", "closed");
}

static void on_disconnect_exit_timer(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    W.exit_code = (int)env_long("DISCONNECT_EXIT", 0);
    wsay("chooses exit code %d", W.exit_code);
}

static void worker_on_disconnect(bw_worker_ctx *ctx, void *data)
{
    (void)data;
    W.disconnect_cbs++;
    size_t conns = 0;
    bool listening = false;
    for (size_t i = 0; i < W.nservers; i++) {
        conns += bw_http_server_connection_count(W.servers[i]);
        listening |= bw_http_server_is_listening(W.servers[i]);
    }
    wsay("disconnect-cb connected=%d connections=%zu listening=%d", bw_worker_ctx_is_connected(ctx),
         conns, listening);
    /* C-24, C-27: the worker decides its own exit code after a graceful
     * disconnect (10 ms later, as in Node's test). */
    if (getenv("DISCONNECT_EXIT") != NULL)
        bw_timeout(W.loop, 10, on_disconnect_exit_timer, NULL, NULL);
    close_own_servers();
    if (getenv("DISCONNECT_THROW") != NULL) {
        wsay("disconnect-cb %s", "throws");
        bw_throwf(-EIO, "thrown from the disconnect callback");
    }
}

static void report_tick(void *data)
{
    (void)data;
    wsay("next-tick disconnect-cbs=%d", W.disconnect_cbs);
}

static void worker_disconnect_now(void)
{
    wsay("calls %s", "disconnect");
    int rc = bw_worker_ctx_disconnect(W.ctx);
    wsay("disconnect returned rc=%d disconnect-cbs=%d", rc, W.disconnect_cbs);
    bw_next_tick(W.loop, report_tick, NULL);
}

static void worker_on_message(bw_worker_ctx *ctx, const void *msg, size_t len, void *data)
{
    (void)data;
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)(len < 200 ? len : 200), (const char *)msg);
    wsay("got message data=%s", text);
    if (strcmp(text, "disconnect") == 0) {
        worker_disconnect_now();
    } else if (strcmp(text, "ping") == 0) {
        int rc = bw_worker_ctx_send(ctx, "pong", 4);
        wsay("sent pong rc=%d", rc);
    } else if (strcmp(text, "throw") == 0) {
        wsay("message-cb %s", "throws");
        bw_throwf(-EIO, "thrown from the message callback");
    } else if (strcmp(text, "fault") == 0) {
        wsay("message-cb %s", "faults");
        volatile int *null = NULL;
        *null = 1; /* SIGSEGV (a test marked @no_asan) */
    } else if (strncmp(text, "echo:", 5) == 0) {
        char reply[300];
        int n = snprintf(reply, sizeof reply, "reply:%s", text + 5);
        int rc = bw_worker_ctx_send(ctx, reply, (size_t)n);
        wsay("sent reply rc=%d", rc);
    }
}

/* A file the primary holds open when it forks (C-01): a worker must not. */
static int marker_fd = -1;
static struct stat marker_st;

static bool is_seqpacket(int fd)
{
    int type;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

/* The worker's end of the message channel, found as the process's first
 * SOCK_SEQPACKET socket (the worker's bw_worker_ctx is opaque; the
 * handoff channel is created after it, so it has the higher number). */
static int channel_fd(void)
{
    for (int fd = 3; fd < 1024; fd++)
        if (is_seqpacket(fd))
            return fd;
    return -1;
}

/* What the worker inherited of the primary's descriptors: channels (its
 * own are two: messages and handoff) and the marker file. */
static void report_inherited(void)
{
    int channels = 0;
    for (int fd = 3; fd < 1024; fd++)
        channels += is_seqpacket(fd);
    struct stat st;
    bool marker = marker_fd >= 0 && fstat(marker_fd, &st) == 0 && st.st_dev == marker_st.st_dev &&
                  st.st_ino == marker_st.st_ino;
    wsay("channels=%d marker-open=%d", channels, marker);
}

/* ---- Worker modes (MODE in the worker's environment) -------------------
 * Each returns an exit status to end at once, or -1 to run the loop. */

static int mode_serve(void)
{
    return serve() == 0 ? -1 : 1;
}

static int mode_serve2(void)
{
    /* C-05: two servers on the inherited socket(s). */
    if (serve() != 0 || serve() != 0)
        return 1;
    return -1;
}

static int mode_noserve(void)
{
    return -1; /* online, never listening: the channel keeps the loop alive */
}

static int mode_exit_now(void)
{
    return (int)env_long("EXIT_CODE", 0);
}

static void exit_by_itself(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    int code = (int)env_long("EXIT_CODE", 0);
    wsay("exits by itself with %d", code);
    _exit(code); /* the process ends abruptly: no disconnect protocol */
}

static int mode_serve_exit(void)
{
    if (serve() != 0)
        return 1;
    bw_timeout(W.loop, 1, exit_by_itself, NULL, NULL);
    return -1;
}

static int mode_busy(void)
{
    wsay("busy %s", "forever");
    bw_worker_ctx_send(W.ctx, "busy", 4); /* the primary kills it then */
    for (volatile unsigned long i = 0;; i++) {
    }
    return 0;
}

/* C-01: run this program as "probe" with libuv's uv_spawn. */
static int spawn_probe(bw_loop *l, uv_process_t *probe, uv_exit_cb cb)
{
    static char exe[] = "/proc/self/exe", arg1[] = "probe";
    char *args[] = {exe, arg1, NULL};
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = exe;
    o.args = args;
    o.exit_cb = cb;
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 1},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    o.stdio = stdio;
    o.stdio_count = 3;
    return uv_spawn(bw_loop_uv(l), probe, &o);
}

static void on_probe_exit(uv_process_t *p, int64_t status, int signo)
{
    wsay("probe exited status=%lld signal=%d", (long long)status, signo);
    uv_close((uv_handle_t *)p, NULL);
    worker_disconnect_now();
}

/* C-01: what the worker sees of itself, and a program it spawns (with
 * libuv's uv_spawn) is not a worker. */
static int mode_env(void)
{
    static uv_process_t probe;
    wsay("is_worker=%d connected=%d env=%08x", bw_cluster_is_worker(),
         bw_worker_ctx_is_connected(W.ctx), env_hash());
    report_inherited();
    int rc = spawn_probe(W.loop, &probe, on_probe_exit);
    wsay("spawn rc=%d", rc);
    if (rc != 0)
        worker_disconnect_now();
    return -1;
}

static int mode_print_env(void)
{
    const char *x = getenv("X"), *y = getenv("Y");
    wsay("X=%s Y=%s", x ? x : "(unset)", y ? y : "(unset)");
    return 0;
}

static void disconnect_soon(void *data)
{
    (void)data;
    worker_disconnect_now();
}

static int mode_self_disconnect(void)
{
    if (serve() != 0)
        return 1;
    bw_next_tick(W.loop, disconnect_soon, NULL);
    return -1;
}

static void raw_close(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    int fd = channel_fd();
    wsay("raw channel close fd=%d", fd);
    shutdown(fd, SHUT_RDWR);
}

static int mode_raw_close(void)
{
    if (serve() != 0)
        return 1;
    bw_timeout(W.loop, 1, raw_close, NULL, NULL);
    return -1;
}

static void hold_on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    static char space[256];
    *buf = uv_buf_init(space, sizeof space);
}

static void hold_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n >= 0)
        return;
    wsay("hold connection read %s", uv_err_name((int)n));
    uv_close((uv_handle_t *)s, on_hold_closed);
}

static void hold_on_connect(uv_connect_t *req, int status)
{
    wsay("hold connection connect status=%d", status);
    if (status == 0)
        uv_read_start(req->handle, hold_on_alloc, hold_on_read);
    else
        uv_close((uv_handle_t *)req->handle, on_hold_closed);
}

/* C-26: serve, and hold a connection to the test (HOLD_PORT). */
static int mode_hold_tcp(void)
{
    if (serve() != 0)
        return 1;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", (int)env_long("HOLD_PORT", 0), &a);
    uv_tcp_init(bw_loop_uv(W.loop), &W.hold);
    uv_tcp_connect(&W.hold_req, &W.hold, (const struct sockaddr *)&a, hold_on_connect);
    return -1;
}

/* C-11: malformed messages to the primary, then serve as usual. */
static int mode_bogus(void)
{
    int fd = channel_fd();
    char big[BW__MSG_MAX + 100];
    memset(big, 'L', sizeof big);
    struct {
        const char *what;
        const void *p;
        size_t n;
    } frames[] = {
        {"empty", "", 0},
        {"unknown type", "Zzz", 3},
        {"listening without fields", "L", 1},
        {"listening with garbage", "Lgarbage", 8},
        {"listening without a port", "L127.0.0.1 4", 12},
        {"oversized", big, sizeof big},
        {"ack from a worker", "a", 1},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        ssize_t n = send(fd, frames[i].p, frames[i].n, MSG_NOSIGNAL);
        wsay("sent bogus frame (%s) n=%zd", frames[i].what, n);
    }
    return mode_serve();
}

/* C-40: a worker that began to disconnect may not start serving again. */
static int mode_serve_after_disconnect(void)
{
    if (serve() != 0)
        return 1;
    worker_disconnect_now();
    int rc = bw_worker_ctx_serve_http(W.ctx, new_server(), NULL);
    wsay("serve after disconnect rc=%s", rc == 0 ? "0" : bw_err_name(rc));
    return -1;
}

/* ---- C-42: listen failures ---------------------------------------------- */

static bw_http_server *l42_first, *l42_retry;
static int l42_port;

static int listen_own(bw_http_server *srv, int port, const char *what)
{
    int rc = bw_http_server_listen(srv, "127.0.0.1", port);
    wsay("listen %s port=%d rc=%s", what, port, rc == 0 ? "0" : bw_err_name(rc));
    return rc;
}

static void l42_retry_closed(bw_http_server *srv, int status, void *data)
{
    (void)srv;
    (void)status;
    (void)data;
    worker_disconnect_now();
}

static void l42_first_closed(bw_http_server *srv, int status, void *data)
{
    (void)srv;
    (void)status;
    (void)data;
    /* The port is free again: the same server now listens on it. */
    if (listen_own(l42_retry, l42_port, "retry-after-free") == 0)
        bw_http_server_close(l42_retry, l42_retry_closed, NULL);
}

static void l42_failed_closed(bw_http_server *srv, int status, void *data)
{
    (void)srv;
    (void)status;
    (void)data;
}

static int mode_listen_errors(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(bw_worker_ctx_listen_fd(W.ctx, 0), (struct sockaddr *)&a, &len);
    int primary_port = ntohs(a.sin_port);
    /* The primary's port. */
    bw_http_server *clash = new_server();
    if (listen_own(clash, primary_port, "primary-port") == 0)
        return 1;
    bw_http_server_close(clash, l42_failed_closed, NULL);
    /* A port this worker holds already. */
    l42_first = new_server();
    if (listen_own(l42_first, 0, "first") != 0)
        return 1;
    l42_port = bw_http_server_port(l42_first);
    l42_retry = new_server();
    if (listen_own(l42_retry, l42_port, "same-port-twice") == 0)
        return 1;
    bw_http_server_close(l42_first, l42_first_closed, NULL);
    return -1;
}

/* ---- C-43: a throw from a listen error handler, after disconnect() ------ */

static void worker_uncaught(bw_error *err, void *data)
{
    (void)data;
    wsay("uncaught handler: %s", bw_error_message(err));
}

static void on_listen_error(void *data)
{
    int rc = (int)(intptr_t)data;
    wsay("listen error handler: %s", bw_err_name(rc));
    worker_disconnect_now();
    bw_throwf(rc, "thrown from the listen error handler");
}

static int mode_ipc_throw(void)
{
    bw_on_uncaught(worker_uncaught, NULL);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(bw_worker_ctx_listen_fd(W.ctx, 0), (struct sockaddr *)&a, &len);
    bw_http_server *srv = new_server();
    int rc = listen_own(srv, ntohs(a.sin_port), "primary-port");
    if (rc == 0)
        return 1;
    bw_http_server_close(srv, l42_failed_closed, NULL);
    /* The error handler runs as a callback of its own, as Node's 'error'. */
    bw_next_tick(W.loop, on_listen_error, (void *)(intptr_t)rc);
    return -1;
}

/* ---- C-44: close a server and listen again ------------------------------ */

static int restarts;

static void restart_next(bw_http_server *srv, int status, void *data);

static void restart_step(void)
{
    /* Rounds 0-2: a port of its own (0, then the same fixed port);
     * rounds 3-5: the inherited socket, announced to the primary. */
    static int fixed_port;
    int round = restarts++;
    if (round < 3) {
        bw_http_server *srv = new_server();
        if (listen_own(srv, fixed_port, round == 0 ? "own-port0" : "own-fixed") != 0)
            _exit(1);
        fixed_port = bw_http_server_port(srv);
        bw_http_server_close(srv, restart_next, NULL);
    } else if (round < 6) {
        if (serve() != 0)
            _exit(1);
        bw_http_server_close(W.servers[W.nservers - 1], restart_next, NULL);
    } else {
        worker_disconnect_now();
    }
}

static void restart_next(bw_http_server *srv, int status, void *data)
{
    (void)srv;
    (void)data;
    wsay("server closed status=%d round=%d", status, restarts - 1);
    restart_step();
}

static int mode_server_restart(void)
{
    restart_step();
    return -1;
}

/* ---- C-45: a listen with no port ----------------------------------------- */

static int mode_own_port0(void)
{
    bw_http_server *srv = new_server();
    if (listen_own(srv, 0, "own-no-port") != 0)
        return 1;
    wsay("own port=%d", bw_http_server_port(srv));
    W.own[W.nown++] = srv;
    return mode_serve();
}

/* ---- D-19: bw_domain_run before listening --------------------------------- */

static void *nothing(void *arg)
{
    return arg;
}

static void *serve_in_domain(void *arg)
{
    (void)arg;
    serve();
    return NULL;
}

static int mode_domain_listen(void)
{
    bw_domain *d;
    if (bw_domain_new(&d) != 0)
        return 70;
    bw_domain_run(d, nothing, NULL); /* Node's d.run(() => {}) */
    if (serve() != 0)
        return 1;
    /* And a server started inside a domain's run reports listening too. */
    bw_domain_run(d, serve_in_domain, NULL);
    bw_domain_release(d);
    return -1;
}

/* ---- P-NN: the crash policy's options, the user's hook ------------------- */

static char user_hook_data[] = "the hook's data";

/* USER_HOOK=json answers the error itself; USER_HOOK=silent only looks
 * (the policy's 500 must follow); USER_HOOK=throw throws (the same). */
static void user_error_hook(bw_http_request *req, bw_http_response *res, bw_error *err,
                            void *data)
{
    (void)req;
    wsay("user error hook: %s data-ok=%d", bw_error_message(err), data == user_hook_data);
    if (strcmp(getenv("USER_HOOK"), "silent") == 0)
        return;
    if (strcmp(getenv("USER_HOOK"), "throw") == 0)
        bw_throwf(-EIO, "thrown from the user's error hook");
    static const char body[] = "{\"error\":\"custom\"}";
    bw_http_response_send(res, 500, "application/json", body, sizeof body - 1);
}

/* Serve with a bw_crash_policy from the environment (POLICY_KILL_MS,
 * POLICY_BODY, POLICY_CT), and the user's own request-error hook when
 * USER_HOOK is set (user_error_hook). */
static int mode_policy(void)
{
    bw_http_options o;
    bw_http_options_init(&o);
    if (getenv("USER_HOOK") != NULL) {
        o.on_request_error = user_error_hook;
        o.request_error_data = user_hook_data;
    }
    bw_crash_policy policy = {.kill_timeout_ms = (uint64_t)env_long("POLICY_KILL_MS", 0),
                              .body = getenv("POLICY_BODY"),
                              .content_type = getenv("POLICY_CT")};
    int rc = bw_worker_ctx_serve_http(W.ctx, new_server_with(&o), &policy);
    wsay("serve rc=%s", rc == 0 ? "0" : bw_err_name(rc));
    return rc == 0 ? -1 : 1;
}

/* ---- P-NN: a throw from a server's close callback, in a domain ---------- */

static bw_domain *close_domain;

static void close_domain_error(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)data;
    wsay("domain error handler: %s", bw_error_message(err));
    worker_disconnect_now();
}

static void close_cb_throws(bw_http_server *srv, int status, void *data)
{
    (void)srv;
    (void)data;
    wsay("close-cb status=%d in-domain=%d throws", status, bw_domain_active() == close_domain);
    bw_throwf(-EIO, "thrown from the close callback");
}

static void *listen_and_close(void *arg)
{
    (void)arg;
    bw_http_server *srv = new_server(); /* bound to the active domain */
    if (listen_own(srv, 0, "own-in-domain") == 0)
        bw_http_server_close(srv, close_cb_throws, NULL);
    return NULL;
}

static int mode_close_throws(void)
{
    if (bw_domain_new(&close_domain) != 0 || bw_domain_on_error(close_domain, close_domain_error, NULL) != 0)
        return 70;
    bw_domain_run(close_domain, listen_and_close, NULL);
    return -1;
}

typedef struct wmode {
    const char *name;
    int (*start)(void);
} wmode;

static const wmode wmodes[] = {
    {"serve", mode_serve},
    {"serve2", mode_serve2},
    {"noserve", mode_noserve},
    {"exit-now", mode_exit_now},
    {"serve-exit", mode_serve_exit},
    {"busy", mode_busy},
    {"env", mode_env},
    {"print-env", mode_print_env},
    {"self-disconnect", mode_self_disconnect},
    {"raw-close", mode_raw_close},
    {"hold-tcp", mode_hold_tcp},
    {"bogus", mode_bogus},
    {"serve-after-disconnect", mode_serve_after_disconnect},
    {"listen-errors", mode_listen_errors},
    {"ipc-throw", mode_ipc_throw},
    {"server-restart", mode_server_restart},
    {"own-port0", mode_own_port0},
    {"domain-listen", mode_domain_listen},
    {"policy", mode_policy},
    {"close-throws", mode_close_throws},
};

static int worker_finish(void)
{
    /* C-22: disconnecting again once disconnected does nothing. */
    wsay("disconnect-after-end rc=%d", bw_worker_ctx_disconnect(W.ctx));
    for (size_t i = 0; i < W.nservers; i++) {
        int rc = bw_http_server_free(W.servers[i]);
        if (rc != 0)
            wsay("server %zu not freed: %s", i, bw_err_name(rc));
    }
    if (close_domain != NULL)
        bw_domain_release(close_domain);
    int rc = bw_loop_free(W.loop);
    wsay("ends status=%d loop-close=%s", W.exit_code, rc == 0 ? "0" : bw_err_name(rc));
    return rc == 0 ? W.exit_code : 99;
}

static int worker_main(bw_worker_ctx *ctx, void *data)
{
    (void)data;
    W.ctx = ctx;
    W.loop = bw_worker_ctx_loop(ctx);
    W.id = bw_worker_ctx_id(ctx);
    bw_worker_ctx_on_message(ctx, worker_on_message, NULL);
    bw_worker_ctx_on_disconnect(ctx, worker_on_disconnect, NULL);
    const char *mode = getenv("MODE");
    if (mode == NULL)
        mode = "serve";
    wsay("starts pid=%d mode=%s connected=%d", (int)getpid(), mode,
         bw_worker_ctx_is_connected(ctx));
    for (size_t i = 0; i < sizeof wmodes / sizeof wmodes[0]; i++) {
        if (strcmp(wmodes[i].name, mode) != 0)
            continue;
        int rc = wmodes[i].start();
        if (rc >= 0)
            return rc;
        bw_loop_run(W.loop, UV_RUN_DEFAULT);
        return worker_finish();
    }
    wsay("unknown mode %s", mode);
    return 64;
}

/* ======================================================================== */
/* ---- The primary side --------------------------------------------------- */
/* ======================================================================== */

typedef struct scenario {
    const char *name;
    void (*start)(void);
    void (*on_event)(const bw_cluster_event *ev); /* after the event's line */
    void (*on_usr1)(void);
    bool late_listener; /* C-07: the event callback is added by start() */
    bool mapped_loop;   /* C-01: see mapped_loop() */
} scenario;

static const scenario *S;
static bw_loop *loop;
static bw_cluster *cluster;
static uv_signal_t sigusr1;
static bool finishing, closed;
static int counts[16];       /* events by type */
static int expect_exits;     /* finish after this many exit events (0: scenario decides) */
static int expect_listening; /* on_all_listening after this many listening events */
static void (*on_all_listening)(void);
static int cycle; /* C-33 */

#define MAX_IDS 64
static bw_worker *by_id[MAX_IDS];

static const char *event_name(bw_cluster_event_type t)
{
    static const char *names[] = {"fork",    "online",   "listening", "disconnect", "exit",
                                  "message", "retiring", "hang",      "quarantine",
                                  "client_blocked"};
    return (size_t)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static bool is_listed(const bw_worker *w)
{
    for (size_t i = 0; i < bw_cluster_worker_count(cluster); i++)
        if (bw_cluster_worker_at(cluster, i) == w)
            return true;
    return false;
}

static void print_event(const bw_cluster_event *ev)
{
    bw_worker *w = ev->worker;
    char extra[600] = "";
    if (ev->type == BW_EVENT_LISTENING)
        snprintf(extra, sizeof extra, " address=%s family=%d port=%d", ev->address, ev->family,
                 ev->port);
    else if (ev->type == BW_EVENT_MESSAGE || ev->type == BW_EVENT_RETIRING)
        snprintf(extra, sizeof extra, " data=%.*s", (int)(ev->len < 500 ? ev->len : 500), ev->data);
    say("event %s id=%d pid=%d state=%s connected=%d dead=%d ead=%s code=%d signal=%d "
        "workers=%zu listed=%d alive=%d%s",
        event_name(ev->type), bw_worker_id(w), (int)bw_worker_pid(w),
        state_name(bw_worker_state_of(w)), bw_worker_is_connected(w), bw_worker_is_dead(w),
        ead_name(bw_worker_exited_after_disconnect(w)), ev->exit_code, ev->term_signal,
        bw_cluster_worker_count(cluster), is_listed(w), pid_alive(bw_worker_pid(w)), extra);
}

static void finish(void);

static void on_event(bw_cluster *c, const bw_cluster_event *ev, void *data)
{
    (void)c;
    (void)data;
    print_event(ev);
    counts[ev->type]++;
    if (S->on_event != NULL)
        S->on_event(ev);
    if (ev->type == BW_EVENT_LISTENING && counts[BW_EVENT_LISTENING] == expect_listening &&
        on_all_listening != NULL)
        on_all_listening();
    if (ev->type == BW_EVENT_EXIT && counts[BW_EVENT_EXIT] == expect_exits)
        finish();
}

static bw_worker *fork_worker(const char *mode, const char *const *extra)
{
    const char *env[16];
    char m[64];
    size_t n = 0;
    snprintf(m, sizeof m, "MODE=%s", mode);
    env[n++] = m;
    for (; extra != NULL && *extra != NULL && n < 15; extra++)
        env[n++] = *extra;
    env[n] = NULL;
    bw_worker *w = NULL;
    int rc = bw_cluster_fork(cluster, env, &w);
    if (rc != 0) {
        say("primary fork failed: %s", bw_err_name(rc));
        return NULL;
    }
    say("forked id=%d pid=%d state=%s connected=%d dead=%d ead=%s workers=%zu listed=%d "
        "fork-events=%d",
        bw_worker_id(w), (int)bw_worker_pid(w), state_name(bw_worker_state_of(w)),
        bw_worker_is_connected(w), bw_worker_is_dead(w),
        ead_name(bw_worker_exited_after_disconnect(w)), bw_cluster_worker_count(cluster),
        is_listed(w), counts[BW_EVENT_FORK]);
    if (bw_worker_id(w) < MAX_IDS)
        by_id[bw_worker_id(w)] = w;
    return w;
}

/* ---- Ending ------------------------------------------------------------- */

static void on_closed(bw_cluster *c, void *data)
{
    (void)c;
    (void)data;
    closed = true;
    if (marker_fd >= 0)
        close(marker_fd);
    if (getenv("CLOSE_CB_THROWS") != NULL) { /* P-13 */
        say("primary close-cb %s", "throws");
        bw_throwf(-EIO, "thrown from the close done callback");
    }
}

static void on_all_gone(bw_cluster *c, void *data)
{
    (void)data;
    say("primary all gone workers=%zu", bw_cluster_worker_count(c));
    uv_close((uv_handle_t *)&sigusr1, NULL);
    int rc = bw_cluster_close(c, on_closed, NULL);
    if (rc != 0)
        say("primary close failed: %s", bw_err_name(rc));
}

/* Disconnect whatever is left, then close everything. */
static void finish(void)
{
    if (finishing)
        return;
    finishing = true;
    say("primary finishing workers=%zu", bw_cluster_worker_count(cluster));
    bw_cluster_disconnect(cluster, on_all_gone, NULL);
}

/* ---- Scenarios ---------------------------------------------------------- */

/* C-01, C-13, C-14, C-15: two workers look at themselves and spawn a probe. */
static void on_primary_probe_exit(uv_process_t *p, int64_t status, int signo)
{
    say("primary probe exited status=%lld signal=%d", (long long)status, signo);
    uv_close((uv_handle_t *)p, NULL);
}

static void basic_start(void)
{
    say("primary env=%08x is_worker=%d", env_hash(), bw_cluster_is_worker());
    marker_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    fstat(marker_fd, &marker_st);
    say("primary marker fd=%d", marker_fd);
    fork_worker("env", NULL);
    fork_worker("env", NULL);
    /* The primary's own child is not the cluster's to reap. */
    static uv_process_t probe;
    say("primary spawn rc=%d", spawn_probe(loop, &probe, on_primary_probe_exit));
    expect_exits = 2;
}

/* C-02, C-03, C-04, C-37: kill (default signal) on listening. */
static void kill_on_listening_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        int rc = bw_worker_kill(ev->worker, 0);
        say("primary kill rc=%d port=%d", rc, bw_cluster_port(cluster));
    }
}

static void one_worker_start(void)
{
    fork_worker("serve", NULL);
    expect_exits = 1;
}

/* C-05 */
static void two_servers_start(void)
{
    fork_worker("serve2", NULL);
    fork_worker("serve2", NULL);
    expect_listening = 4;
    on_all_listening = finish;
}

/* C-06 */
static void fork_env_start(void)
{
    setenv("X", "old", 1);
    static const char *const env[] = {"X=new", "Y=custom", NULL};
    fork_worker("print-env", env);
    fork_worker("print-env", NULL);
    const char *y = getenv("Y");
    say("primary X=%s Y=%s", getenv("X"), y ? y : "(unset)");
    expect_exits = 2;
}

/* C-07 */
static void fork_async_start(void)
{
    fork_worker("serve", NULL);
    say("primary fork returned fork-events=%d", counts[BW_EVENT_FORK]);
    bw_cluster_on_event(cluster, on_event, NULL);
    say("primary listener added");
    expect_listening = 1;
    on_all_listening = finish;
}

/* C-08, C-09 */
static void messages_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        static const char msg[] = "echo:hello-from-primary";
        int rc = bw_worker_send(ev->worker, msg, sizeof msg - 1);
        say("primary send rc=%d", rc);
    } else if (ev->type == BW_EVENT_MESSAGE) {
        finish();
    }
}

/* C-11: bogus frames both ways, then the worker still answers and exits 0. */
static void bogus_start(void)
{
    fork_worker("bogus", NULL);
    expect_exits = 1;
}

static void bogus_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        int fd = ev->worker->fd; /* raw channel access (cluster_internal.h) */
        static const char *const frames[] = {
            "a", "", "Zzz", "q", "qgarbage", "q5", "qnot-a-number GET /"};
        for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
            ssize_t n = send(fd, frames[i], strlen(frames[i]), MSG_NOSIGNAL);
            say("primary sent bogus frame %zu n=%zd", i, n);
        }
        int rc = bw_worker_send(ev->worker, "ping", 4);
        say("primary send ping rc=%d", rc);
    }
}

/* C-14: one worker disconnected by the primary, one by itself. */
static void connected_start(void)
{
    fork_worker("serve", NULL);
    fork_worker("self-disconnect", NULL);
    expect_exits = 2;
}

static void disconnect_first_on_listening(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING && bw_worker_id(ev->worker) == 1) {
        int rc = bw_worker_disconnect(ev->worker);
        say("primary disconnect rc=%d workers=%zu", rc, bw_cluster_worker_count(cluster));
    }
}

/* C-16 */
static void exit_self_start(void)
{
    static const char *const env[] = {"EXIT_CODE=42", NULL};
    fork_worker("serve-exit", env);
    expect_exits = 1;
}

/* C-18 */
static void primary_kill_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        int rc = bw_worker_kill(ev->worker, SIGKILL);
        say("primary kill rc=%d", rc);
    }
}

/* C-19 */
static void busy_start(void)
{
    fork_worker("busy", NULL);
    expect_exits = 1;
}

static void kill_when_busy(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_MESSAGE) {
        int rc = bw_worker_kill(ev->worker, 0);
        say("primary kill rc=%d", rc);
    }
}

/* C-20: the primary throws, uncaught, once every worker listens. */
static void primary_throws(void)
{
    say("primary throws %s", "now");
    bw_throwf(-EINVAL, "accidental error in the primary");
}

static void primary_throws_start(void)
{
    fork_worker("serve", NULL);
    fork_worker("serve", NULL);
    expect_listening = 2;
    on_all_listening = primary_throws;
}

static void exit_now(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    say("primary exits %s", "0");
    exit(0);
}

static void exit_soon(void)
{
    bw_timeout(loop, 100, exit_now, NULL, NULL);
}

static void primary_exits_start(void)
{
    fork_worker("serve", NULL);
    expect_listening = 1;
    on_all_listening = exit_soon;
}

/* C-21: one worker disconnected by the primary, one killed. */
static void membership_all_listening(void)
{
    int rc = bw_worker_disconnect(by_id[1]);
    say("primary disconnect rc=%d listed=%d", rc, is_listed(by_id[1]));
    rc = bw_worker_kill(by_id[2], SIGKILL);
    say("primary kill rc=%d listed=%d", rc, is_listed(by_id[2]));
}

static void membership_start(void)
{
    fork_worker("serve", NULL);
    fork_worker("serve", NULL);
    expect_listening = 2;
    on_all_listening = membership_all_listening;
    expect_exits = 2;
}

/* C-22, C-38 (worker side) */
static void self_disconnect_start(void)
{
    fork_worker("self-disconnect", NULL);
    expect_exits = 1;
}

/* C-23 */
static void destroy_in_disconnect_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_DISCONNECT) {
        int rc1 = bw_worker_disconnect(ev->worker);
        int rc2 = bw_worker_kill(ev->worker, SIGTERM);
        say("primary destroy in disconnect: disconnect rc=%d kill rc=%d", rc1, rc2);
    }
}

/* C-24 */
static void disconnect_42_start(void)
{
    static const char *const env[] = {"DISCONNECT_EXIT=42", NULL};
    fork_worker("serve", env);
    expect_exits = 1;
}

static void disconnect_on_listening(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        int rc = bw_worker_disconnect(ev->worker);
        say("primary disconnect rc=%d", rc);
    }
}

/* C-25: the worker disconnects while the primary is stopped: its
 * disconnect completes only once the primary runs again and acknowledges. */
static void ack_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        int rc = bw_worker_send(ev->worker, "disconnect", 10);
        say("primary told the worker to disconnect rc=%d; stopping", rc);
        raise(SIGSTOP); /* the test sends SIGCONT */
        say("primary %s", "continues");
    }
}

/* C-26 */
static void no_exit_start(void)
{
    fork_worker("hold-tcp", NULL);
    expect_exits = 1;
}

/* C-27: worker 1 is disconnected, worker 2's channel is cut. */
static void forced_exit_start(void)
{
    static const char *const env[] = {"DISCONNECT_EXIT=42", NULL};
    fork_worker("serve", env);
    fork_worker("serve", env);
    expect_exits = 2;
}

static void forced_exit_event(const bw_cluster_event *ev)
{
    if (ev->type != BW_EVENT_LISTENING)
        return;
    if (bw_worker_id(ev->worker) == 1) {
        int rc = bw_worker_disconnect(ev->worker);
        say("primary disconnect rc=%d", rc);
    } else {
        int rc = shutdown(ev->worker->fd, SHUT_RDWR); /* the raw channel */
        say("primary raw channel close rc=%d", rc);
    }
}

/* C-28 */
static void raw_close_start(void)
{
    fork_worker("raw-close", NULL);
    expect_exits = 1;
}

/* C-29 */
static void disconnect_all_done(bw_cluster *c, void *data)
{
    (void)data;
    say("primary disconnect-cb workers=%zu exits=%d", bw_cluster_worker_count(c),
        counts[BW_EVENT_EXIT]);
    finish();
}

static void disconnect_all_now(void)
{
    int rc = bw_cluster_disconnect(cluster, disconnect_all_done, NULL);
    say("primary cluster disconnect rc=%d", rc);
}

static void disconnect_all_start(void)
{
    for (int i = 0; i < 3; i++)
        fork_worker("serve", NULL);
    expect_listening = 3;
    on_all_listening = disconnect_all_now;
}

/* C-30 */
static void disconnect_none_start(void)
{
    disconnect_all_now();
    say("primary cluster disconnect %s", "returned");
}

/* C-31 */
static void disconnect_skip_start(void)
{
    fork_worker("serve", NULL);
    fork_worker("serve", NULL);
    expect_listening = 2;
    on_all_listening = NULL;
}

static void disconnect_skip_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING && counts[BW_EVENT_LISTENING] == 2) {
        int rc = bw_worker_disconnect(by_id[1]);
        say("primary disconnect rc=%d", rc);
    } else if (ev->type == BW_EVENT_DISCONNECT && bw_worker_id(ev->worker) == 1) {
        disconnect_all_now();
    }
}

/* C-32 */
static void disconnect_early_start(void)
{
    fork_worker("serve", NULL);
    disconnect_all_now();
}

/* C-33: 8 workers on 2 sockets; disconnect (with a 300 ms shutdown
 * deadline); fork the next cycle at once, whose workers then live past the
 * first cycle's deadline before the test uses them. */
static void cycle_fork(void)
{
    cycle++;
    say("primary cycle %d begins", cycle);
    for (int i = 0; i < 8; i++)
        fork_worker("serve", NULL);
    expect_listening = counts[BW_EVENT_LISTENING] + 16;
}

static void cycle_say_ready(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    say("primary cycle %d ready workers=%zu", cycle, bw_cluster_worker_count(cluster));
}

static void cycle_ready(void)
{
    bw_timeout(loop, cycle == 1 ? 0 : 600, cycle_say_ready, NULL, NULL);
}

static void cycle_done(bw_cluster *c, void *data)
{
    (void)data;
    say("primary cycle %d done workers=%zu", cycle, bw_cluster_worker_count(c));
    if (cycle == 2)
        finish();
    else
        cycle_fork();
}

static void cycles_start(void)
{
    cycle_fork();
    on_all_listening = cycle_ready;
}

static void cycles_usr1(void)
{
    int rc = bw_cluster_disconnect(cluster, cycle_done, NULL);
    say("primary cycle %d disconnect rc=%d", cycle, rc);
}

/* C-34 A: fork worker 2 while worker 1 disconnects; disconnect 2 at online. */
static void race_a_start(void)
{
    fork_worker("serve", NULL);
    expect_exits = 2;
}

static void race_a_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING && bw_worker_id(ev->worker) == 1) {
        say("primary disconnect rc=%d", bw_worker_disconnect(ev->worker));
        fork_worker("serve", NULL);
    } else if (ev->type == BW_EVENT_ONLINE && bw_worker_id(ev->worker) == 2) {
        say("primary disconnect rc=%d", bw_worker_disconnect(ev->worker));
    }
}

/* C-34 B: all told at once, alternately by the primary and by themselves;
 * on every disconnect the primary sends to every worker still listed. */
#define RACE_B_WORKERS 6

static void race_b_all_listening(void)
{
    for (int id = 1; id <= RACE_B_WORKERS; id++) {
        int rc =
            id % 2 ? bw_worker_disconnect(by_id[id]) : bw_worker_send(by_id[id], "disconnect", 10);
        say("primary told %d rc=%d", id, rc);
    }
}

static void race_b_start(void)
{
    for (int i = 0; i < RACE_B_WORKERS; i++)
        fork_worker("serve", NULL);
    expect_listening = RACE_B_WORKERS;
    on_all_listening = race_b_all_listening;
    expect_exits = RACE_B_WORKERS;
}

static void race_b_event(const bw_cluster_event *ev)
{
    if (ev->type != BW_EVENT_DISCONNECT)
        return;
    for (size_t i = 0; i < bw_cluster_worker_count(cluster); i++) {
        bw_worker *w = bw_cluster_worker_at(cluster, i);
        int rc = bw_worker_send(w, "echo:late", 9);
        say("primary send-to id=%d rc=%d", bw_worker_id(w), rc);
    }
}

/* C-35: disconnect both workers while a client is connected. */
static void two_workers_start(void)
{
    fork_worker("serve", NULL);
    fork_worker("serve", NULL);
}

static void usr1_disconnect_all(void)
{
    disconnect_all_now();
}

/* C-36: the seed's pattern: on disconnect, fork a replacement. */
static void replace_start(void)
{
    static const char *const exit3[] = {"EXIT_CODE=3", NULL};
    fork_worker("serve", NULL);
    fork_worker("serve-exit", exit3);
    fork_worker("serve", NULL);
    expect_listening = 0;
}

static void replace_event(const bw_cluster_event *ev)
{
    int id = bw_worker_id(ev->worker);
    if (ev->type == BW_EVENT_LISTENING && id == 1)
        say("primary disconnect rc=%d", bw_worker_disconnect(ev->worker));
    else if (ev->type == BW_EVENT_LISTENING && id == 3)
        say("primary kill rc=%d", bw_worker_kill(ev->worker, SIGKILL));
    else if (ev->type == BW_EVENT_LISTENING && id > 3 && counts[BW_EVENT_LISTENING] == 6)
        finish(); /* the three replacements listen */
    if (ev->type == BW_EVENT_DISCONNECT && !finishing) {
        bw_worker *fresh = fork_worker("serve", NULL);
        say("primary replaced %d with %d", id, fresh ? bw_worker_id(fresh) : -1);
    }
}

/* C-38: disconnected by the primary, and by itself. */
static void ead_true_start(void)
{
    fork_worker("serve", NULL);
    fork_worker("self-disconnect", NULL);
    expect_exits = 2;
}

/* C-39: six workers end by themselves or by signals, none after listening. */
static void ead_false_start(void)
{
    static const char *const exit5[] = {"EXIT_CODE=5", NULL};
    fork_worker("exit-now", exit5); /* 1 */
    fork_worker("exit-now", exit5); /* 2 */
    fork_worker("noserve", NULL);   /* 3: kill(pid, SIGKILL) at online */
    fork_worker("noserve", NULL);   /* 4: the same */
    fork_worker("noserve", NULL);   /* 5: bw_worker_kill(SIGTERM) at online */
    fork_worker("noserve", NULL);   /* 6: the same */
    expect_exits = 6;
}

static void ead_false_event(const bw_cluster_event *ev)
{
    int id = bw_worker_id(ev->worker);
    if (ev->type != BW_EVENT_ONLINE)
        return;
    if (id == 3 || id == 4)
        say("primary kill(pid) rc=%d", kill(bw_worker_pid(ev->worker), SIGKILL));
    else if (id >= 5)
        say("primary kill rc=%d", bw_worker_kill(ev->worker, SIGTERM));
}

/* C-40 */
static void no_listen_after_disconnect_start(void)
{
    fork_worker("serve-after-disconnect", NULL);
    expect_exits = 1;
}

/* C-41: a request in flight; the primary disconnects the worker. */
static void wait_server_close_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_MESSAGE) {
        int rc = bw_worker_disconnect(ev->worker);
        say("primary disconnect rc=%d", rc);
    }
}

/* C-42, C-43, C-44, D-19 */
static void mode_start(const char *mode)
{
    fork_worker(mode, NULL);
    expect_exits = 1;
}

static void listen_errors_start(void)
{
    mode_start("listen-errors");
}

static void ipc_throw_start(void)
{
    mode_start("ipc-throw");
}

static void server_restart_start(void)
{
    mode_start("server-restart");
}

static void listen_port0_start(void)
{
    fork_worker("own-port0", NULL);
}

static void domain_listen_start(void)
{
    fork_worker("domain-listen", NULL);
    expect_listening = 2;
    on_all_listening = finish;
}

/* D-81: an uncaught handler that exits 42, installed before forking; then
 * the primary throws from a callback (a throw outside any callback is fatal
 * by design, guard.h). */
static void exit_42(void *data)
{
    (void)data;
    say("primary exits %s", "42");
    exit(42);
}

static void primary_uncaught(bw_error *err, void *data)
{
    (void)data;
    say("primary uncaught handler: %s", bw_error_message(err));
    bw_next_tick(loop, exit_42, NULL);
}

static void throw_now(void *data)
{
    (void)data;
    primary_throws();
}

static void uncaught_42_listening(void)
{
    bw_next_tick(loop, throw_now, NULL);
}

static void uncaught_42_start(void)
{
    bw_on_uncaught(primary_uncaught, NULL);
    fork_worker("serve", NULL);
    expect_listening = 1;
    on_all_listening = uncaught_42_listening;
}

/* P-NN: supervised (bw_cluster_start) workers of MODE, from the primary's
 * environment; SIGUSR1 sends USR1_MESSAGE to the first listed worker. */
static void supervised_start(void)
{
    int rc = bw_cluster_start(cluster);
    say("primary start rc=%d", rc);
    expect_exits = 1;
}

/* M-04: supervision until the test kills the primary; a worker asks for
 * a lift ("lift KEY", "lift " for all). */
static void lift_start(void)
{
    int rc = bw_cluster_start(cluster);
    say("primary start rc=%d", rc);
}

static void lift_event(const bw_cluster_event *ev)
{
    if (ev->type != BW_EVENT_MESSAGE || ev->len < 5 || memcmp(ev->data, "lift ", 5) != 0)
        return;
    char key[300];
    snprintf(key, sizeof key, "%.*s", (int)(ev->len - 5), ev->data + 5);
    int n = bw_cluster_lift_quarantine(cluster, key[0] != '\0' ? key : NULL);
    say("primary lifted key=%s n=%d active=%zu", key[0] != '\0' ? key : "(all)", n,
        bw_cluster_quarantines_active(cluster));
}

static void send_usr1_message(void)
{
    const char *m = getenv("USR1_MESSAGE");
    if (m == NULL)
        m = "ping";
    bw_worker *w = bw_cluster_worker_count(cluster) > 0 ? bw_cluster_worker_at(cluster, 0) : NULL;
    int rc = w != NULL ? bw_worker_send(w, m, strlen(m)) : BW_ENOTRUNNING;
    say("primary sent %s to %d rc=%d", m, w != NULL ? bw_worker_id(w) : -1, rc);
}

/* P-NN: kill_timeout_ms 0 is refused; then nothing else to do. */
static void kill_timeout_zero_start(void)
{
    bw_cluster_options o;
    bw_cluster_options_init(&o);
    o.kill_timeout_ms = 0;
    bw_cluster *c = NULL;
    int rc = bw_cluster_new(loop, &o, worker_main, NULL, &c);
    say("primary new with kill_timeout_ms=0 rc=%d", rc);
    if (rc == 0)
        _exit(3); /* accepted: the test sees why at once (a second cluster on this loop) */
    finish();
}

/* P-NN: a worker whose disconnect callback throws. */
static void disconnect_throw_start(void)
{
    static const char *const env[] = {"DISCONNECT_THROW=1", NULL};
    fork_worker("serve", env);
    expect_exits = 1;
}

/* P-NN: bw_cluster_disconnect's done callback throws in the primary. */
static void done_cb_throws(bw_cluster *c, void *data)
{
    (void)c;
    (void)data;
    say("primary done-cb %s", "throws");
    bw_throwf(-EIO, "thrown from the disconnect done callback");
}

static void done_throws_start(void)
{
    fork_worker("serve", NULL); /* no finish(): its own disconnect would take the callback's place */
}

static void done_throws_event(const bw_cluster_event *ev)
{
    if (ev->type == BW_EVENT_LISTENING) {
        int rc = bw_cluster_disconnect(cluster, done_cb_throws, NULL);
        say("primary cluster disconnect rc=%d", rc);
    }
}

static void close_throws_start(void)
{
    mode_start("close-throws");
}

static const scenario scenarios[] = {
    {"basic", basic_start, NULL, NULL, false, true},
    {"kill-on-listening", one_worker_start, kill_on_listening_event, NULL, false, false},
    {"two-servers", two_servers_start, NULL, NULL, false, false},
    {"fork-env", fork_env_start, NULL, NULL, false, false},
    {"fork-async", fork_async_start, NULL, NULL, true, false},
    {"messages", one_worker_start, messages_event, NULL, false, false},
    {"bogus", bogus_start, bogus_event, usr1_disconnect_all, false, false},
    {"connected", connected_start, disconnect_first_on_listening, NULL, false, false},
    {"exit-self", exit_self_start, NULL, NULL, false, false},
    {"external-kill", one_worker_start, NULL, NULL, false, false},
    {"primary-kill", one_worker_start, primary_kill_event, NULL, false, false},
    {"busy", busy_start, kill_when_busy, NULL, false, false},
    {"primary-throws", primary_throws_start, NULL, NULL, false, false},
    {"primary-exits", primary_exits_start, NULL, NULL, false, false},
    {"membership", membership_start, NULL, NULL, false, false},
    {"worker-destroy", self_disconnect_start, NULL, NULL, false, false},
    {"destroy-in-disconnect", self_disconnect_start, destroy_in_disconnect_event, NULL, false,
     false},
    {"disconnect-42", disconnect_42_start, disconnect_on_listening, NULL, false, false},
    {"ack", one_worker_start, ack_event, NULL, false, false},
    {"no-exit", no_exit_start, disconnect_on_listening, NULL, false, false},
    {"forced-exit", forced_exit_start, forced_exit_event, NULL, false, false},
    {"raw-close", raw_close_start, NULL, NULL, false, false},
    {"disconnect-all", disconnect_all_start, NULL, NULL, false, false},
    {"disconnect-none", disconnect_none_start, NULL, NULL, false, false},
    {"disconnect-skip", disconnect_skip_start, disconnect_skip_event, NULL, false, false},
    {"disconnect-early", disconnect_early_start, NULL, NULL, false, false},
    {"cycles", cycles_start, NULL, cycles_usr1, false, false},
    {"race-a", race_a_start, race_a_event, NULL, false, false},
    {"race-b", race_b_start, race_b_event, NULL, false, false},
    {"client-open", two_workers_start, NULL, usr1_disconnect_all, false, false},
    {"replace", replace_start, replace_event, NULL, false, false},
    {"ead-true", ead_true_start, disconnect_first_on_listening, NULL, false, false},
    {"ead-false", ead_false_start, ead_false_event, NULL, false, false},
    {"no-listen-after-disconnect", no_listen_after_disconnect_start, NULL, NULL, false, false},
    {"wait-server-close", one_worker_start, wait_server_close_event, NULL, false, false},
    {"listen-errors", listen_errors_start, NULL, NULL, false, false},
    {"ipc-throw", ipc_throw_start, NULL, NULL, false, false},
    {"server-restart", server_restart_start, NULL, NULL, false, false},
    {"listen-port0", listen_port0_start, NULL, usr1_disconnect_all, false, false},
    {"domain-listen", domain_listen_start, NULL, NULL, false, false},
    {"uncaught-42", uncaught_42_start, NULL, NULL, false, false},
    {"supervised", supervised_start, NULL, send_usr1_message, false, false},
    {"quarantine-lift", lift_start, lift_event, NULL, false, false},
    {"kill-timeout-zero", kill_timeout_zero_start, NULL, NULL, false, false},
    {"disconnect-cb-throws", disconnect_throw_start, disconnect_on_listening, NULL, false, false},
    {"done-cb-throws", done_throws_start, done_throws_event, NULL, false, false},
    {"close-cb-throws", close_throws_start, NULL, NULL, false, false},
};

static void on_usr1(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    say("primary got %s", "SIGUSR1");
    if (S->on_usr1 != NULL)
        S->on_usr1();
}

/* C-01: the primary's libuv loop lies in a mapping of its own, above the
 * heap and so above the cluster: libuv then hands SIGCHLD to the cluster's
 * watcher before its own child watcher, and a cluster that reaped every
 * child would take the status of the primary's probe. (Only where the
 * primary closes its loop: LeakSanitizer does not look into the mapping.) */
static uv_loop_t *mapped_loop(void)
{
    void *p =
        mmap(NULL, sizeof(uv_loop_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || uv_loop_init(p) != 0)
        return NULL;
    return p;
}

static int run_primary(void)
{
    uv_loop_t *uv = S->mapped_loop ? mapped_loop() : NULL;
    int rc = uv != NULL ? bw_loop_wrap(uv, &loop) : bw_loop_new(&loop);
    if (rc != 0)
        return 70;
    bw_cluster_options o;
    bw_cluster_options_init(&o);
    o.workers = 1; /* no supervision (bw_cluster_start is never called) */
    o.kill_timeout_ms = (uint64_t)env_long("KILL_TIMEOUT_MS", 5000);
    o.shutdown_timeout_ms = (uint64_t)env_long("SHUTDOWN_TIMEOUT_MS", 5000);
    o.poison_threshold = (int)env_long("POISON_THRESHOLD", 0);
    o.quarantine_ms = (uint64_t)env_long("QUARANTINE_MS", 60000);
    o.client_fault_budget = 0;
    rc = bw_cluster_new(loop, &o, worker_main, NULL, &cluster);
    if (rc != 0)
        return 70;
    for (long i = 0; i < env_long("PORTS", 1); i++) {
        rc = bw_cluster_listen(cluster, "127.0.0.1", 0);
        if (rc != 0)
            return 70;
        int fd = cluster->listen_fds[i];
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        getsockname(fd, (struct sockaddr *)&a, &len);
        say("primary socket %ld port=%d", i, ntohs(a.sin_port));
    }
    say("primary pid=%d port=%d scenario=%s", (int)getpid(), bw_cluster_port(cluster), S->name);
    if (!S->late_listener)
        bw_cluster_on_event(cluster, on_event, NULL);
    uv_signal_init(bw_loop_uv(loop), &sigusr1);
    uv_signal_start(&sigusr1, on_usr1, SIGUSR1);
    uv_unref((uv_handle_t *)&sigusr1);
    S->start();
    bw_loop_run(loop, UV_RUN_DEFAULT);
    int status = bw_cluster_exit_status(cluster);
    bw_cluster_free(cluster);
    rc = bw_loop_free(loop);
    if (rc == 0 && uv != NULL) {
        rc = uv_loop_close(uv);
        munmap(uv, sizeof *uv);
    }
    say("primary done closed=%d exit_status=%d loop-close=%s", closed, status,
        rc == 0 ? "0" : bw_err_name(rc));
    return closed && rc == 0 ? status : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "probe") == 0) {
        /* Spawned by a worker (C-01): not a worker itself. */
        say("probe pid=%d is_worker=%d env=%08x", (int)getpid(), bw_cluster_is_worker(),
            env_hash());
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: cluster_test_app SCENARIO\n");
        return 64;
    }
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, argv[1]) == 0)
            S = &scenarios[i];
    if (S == NULL) {
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    return run_primary();
}
