/*
 * cluster_primary.c: the primary: listening sockets, forking, the channel
 * to each worker, events, and supervision (replacement, start-up backoff and
 * restart intensity, fork ceiling, hang detection, kill deadlines, poison
 * quarantine, graceful shutdown, rolling restart).
 *
 * One periodic timer (every 50 ms) enforces every deadline; SIGCHLD reaps
 * every exited worker with waitpid(pid, WNOHANG), so no zombie is left (and
 * no child the program spawned itself is taken from it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_internal.h"

#define BW__TICK_MS 50
/* The worker's own kill timer (exit 1) should win; the primary's SIGKILL is
 * the failsafe behind it. */
#define BW__KILL_MARGIN_MS 1000

void bw_cluster_options_init(bw_cluster_options *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 2;
    o->backlog = 511;
    o->kill_timeout_ms = 30000;
    o->heartbeat_interval_ms = 1000;
    o->heartbeat_timeout_ms = 10000;
    o->shutdown_timeout_ms = 30000;
    o->restart_intensity = 5;
    o->restart_period_ms = 60000;
    o->backoff_initial_ms = 100;
    o->backoff_max_ms = 10000;
    o->max_forks_per_second = 200;
    o->poison_threshold = 3;
    o->poison_window_ms = 60000;
    o->quarantine_ms = 60000;
    o->client_fault_budget = 5;
    o->client_fault_window_ms = 60000;
    o->client_block_ms = 60000;
    o->client_block_delay_ms = 1000;
    o->handle_signals = true;
    o->handoff = true;
    o->handoff_timeout_ms = 2000;
    o->notify = true;
    o->upgrade_timeout_ms = 60000;
    o->admin_port = 0;
    o->admin_host = "127.0.0.1";
    o->metrics = true;
    o->allow_root = BW_UNSET;
}

static uint64_t now_ms(const bw_cluster *c)
{
    return uv_now(c->loop->uv);
}

/* ---- Events ------------------------------------------------------------ */

static const char *event_name(bw_cluster_event_type t)
{
    static const char *names[] = {"fork",   "online",   "listening", "disconnect", "exit",
                                  "message", "retiring", "hang",      "quarantine",
                                  "recycle", "client_blocked"};
    return (size_t)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* "SIGKILL" for the signals a worker commonly dies of, NULL for others. */
static const char *signal_name(int signo)
{
    switch (signo) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGILL:
        return "SIGILL";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGKILL:
        return "SIGKILL";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGUSR2:
        return "SIGUSR2";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGALRM:
        return "SIGALRM";
    case SIGTERM:
        return "SIGTERM";
    case SIGXCPU:
        return "SIGXCPU";
    default:
        return NULL;
    }
}

/* One JSON line per event, with a system-wide monotonic timestamp so that
 * other processes (a load client) can line up their own clocks with it, and
 * the wall-clock time (RFC 3339, UTC, ms) for a reader lining it up with
 * the log. */
void bw__cluster_event_line(bw_cluster *c, const char *name, const bw_worker *w, const char *extra)
{
    if (c->event_log_fd < 0)
        return;
    char line[512];
    char now[BW__LOG_TIME_LEN + 1];
    uint64_t mono = bw__mono_ns();
    bw__log_time(now);
    int n = snprintf(line, sizeof line,
                     "{\"mono_ns\": %llu, \"time\": \"%s\", \"event\": \"%s\", \"worker\": %d, "
                     "\"pid\": %ld%s%s}\n",
                     (unsigned long long)mono, now, name, w ? w->id : 0,
                     (long)(w ? w->pid : getpid()), extra ? ", " : "", extra ? extra : "");
    if (n > 0 && write(c->event_log_fd, line, (size_t)n) < 0) {
        /* The event log is best effort: a full disk must not stop the primary. */
    }
}

typedef struct event_call {
    bw_cluster *c;
    const bw_cluster_event *ev;
} event_call;

static void run_event_callbacks(void *arg)
{
    event_call *e = arg;
    for (size_t i = 0; i < e->c->nevent_cbs; i++)
        e->c->event_cbs[i].cb(e->c, e->ev, e->c->event_cbs[i].data);
}

static void emit(bw_cluster *c, bw_cluster_event *ev, const char *extra)
{
    bw__cluster_event_line(c, event_name(ev->type), ev->worker, extra);
    if (c->nevent_cbs == 0)
        return;
    event_call e = {c, ev};
    bw_invoke(NULL, run_event_callbacks, &e);
}

void bw__cluster_emit(bw_cluster *c, const bw_cluster_event *ev, const char *extra)
{
    bw_cluster_event copy = *ev;
    emit(c, &copy, extra);
}

static void emit_simple(bw_cluster *c, bw_cluster_event_type type, bw_worker *w)
{
    bw_cluster_event ev = {.type = type, .worker = w, .exit_code = -1};
    emit(c, &ev, NULL);
}

int bw_cluster_on_event(bw_cluster *c, bw_cluster_event_cb cb, void *data)
{
    bw__event_cb *v = bw_realloc(c->event_cbs, (c->nevent_cbs + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    v[c->nevent_cbs++] = (bw__event_cb){cb, data};
    c->event_cbs = v;
    return 0;
}

/* ---- Creating and listening -------------------------------------------- */

static void on_tick(uv_timer_t *t);
static void on_deferred(uv_idle_t *idle);

int bw_cluster_new(bw_loop *loop, const bw_cluster_options *options, bw_worker_main_fn main,
                   void *data, bw_cluster **out)
{
    *out = NULL;
    bw_cluster_options defaults;
    if (options == NULL) {
        bw_cluster_options_init(&defaults);
        options = &defaults;
    }
    if (options->workers < 1 || options->heartbeat_interval_ms == 0 || options->kill_timeout_ms == 0 ||
        options->heartbeat_timeout_ms <= options->heartbeat_interval_ms || main == NULL)
        return -EINVAL;
    bw_cluster *c = bw_calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->opts = *options;
    c->main = main;
    c->main_data = data;
    c->primary_pid = getpid();
    c->next_id = 1;
    c->event_log_fd = -1;
    c->backoff_ms = c->opts.backoff_initial_ms;
    c->fork_tokens = c->opts.max_forks_per_second > 0 ? c->opts.max_forks_per_second : 1e9;
    const char *path = c->opts.event_log != NULL ? c->opts.event_log : getenv("BW_EVENT_LOG");
    if (path != NULL && *path != '\0') {
        c->event_log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (c->event_log_fd < 0) {
            int e = -errno;
            bw_free(c);
            return e;
        }
        snprintf(c->event_log_path, sizeof c->event_log_path, "%s", path);
    }
    int prc = bw__privileges_init(c);
    if (prc != 0) {
        if (c->event_log_fd >= 0)
            close(c->event_log_fd);
        bw_free(c);
        return prc;
    }
    bw__cluster_notify_init(c);
    bw__upgrade_init(c);
    uv_timer_init(loop->uv, &c->tick);
    uv_idle_init(loop->uv, &c->deferred);
    c->tick.data = c;
    c->deferred.data = c;
    c->handles_open = 2;
    /* The tick stays referenced: it keeps the primary's loop turning even
     * when no worker is alive (start-up backoff), until bw_cluster_close. */
    uv_timer_start(&c->tick, on_tick, BW__TICK_MS, BW__TICK_MS);
    *out = c;
    return 0;
}

static int add_listen_fd(bw_cluster *c, int fd)
{
    if (c->nlisten == BW__MAX_LISTENERS)
        return BW_ELIMIT;
    c->listen_fds[c->nlisten++] = fd;
    if (c->port == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            c->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

int bw_cluster_listen(bw_cluster *c, const char *host, int port)
{
    int fd = bw__listen_socket(host, port, c->opts.backlog);
    if (fd < 0)
        return fd;
    int rc = add_listen_fd(c, fd);
    if (rc != 0)
        close(fd);
    return rc;
}

int bw__listen_socket(const char *host, int port, int backlog)
{
    if (host == NULL || strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        len = sizeof *a;
    }
    /* Not CLOEXEC-free on purpose: fork() inherits it anyway, and a program
     * the user execs must not. Non-blocking: workers accept in their loops. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int bw_cluster_listen_inherited(bw_cluster *c)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
        return 0;
    int n = atoi(fds);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (int i = 0; i < n; i++) {
        int fd = 3 + i; /* SD_LISTEN_FDS_START */
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int rc = add_listen_fd(c, fd);
        if (rc != 0)
            return rc;
    }
    return n;
}

int bw_cluster_port(const bw_cluster *c)
{
    return c->port;
}

/* ---- Workers ----------------------------------------------------------- */

/* A worker leaves the public list once it has both disconnected and exited
 * (C-21), so the exit event no longer sees it (C-18). It stays on c->workers
 * until its channel handle is closed and it is freed (maybe_forget). */
static bool is_listed(const bw_worker *w)
{
    return !w->exited || w->connected;
}

size_t bw_cluster_worker_count(const bw_cluster *c)
{
    size_t n = 0;
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        n += is_listed(w);
    return n;
}

bw_worker *bw_cluster_worker_at(const bw_cluster *c, size_t i)
{
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        if (is_listed(w) && i-- == 0)
            return w;
    return NULL;
}

/* A worker of the generation a rolling restart is replacing still counts
 * until it is told to go: the rolling restart replaces it, and supervision
 * must not (it would fork one worker too many whenever its tick fell inside
 * a rolling restart). */
static bool counts_as_capacity(const bw_worker *w)
{
    return !w->exited && !w->retiring && !w->disconnect_sent &&
           w->state != BW_WORKER_DISCONNECTED;
}

/* An old worker that the rolling restart still has to replace (one that
 * retires on its own is replaced by supervision instead). */
bool bw__worker_can_receive(const bw_worker *w)
{
    return w->connected && w->ho_fd >= 0 && w->state == BW_WORKER_LISTENING && !w->exited &&
           !w->retiring && !w->disconnect_sent && !w->hang_reported;
}

static bool awaits_rolling_replacement(const bw_worker *w)
{
    return w->rolling_old && !w->disconnect_sent && !w->exited && !w->retiring;
}

size_t bw_cluster_active_count(const bw_cluster *c)
{
    size_t n = 0;
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        n += counts_as_capacity(w);
    return n;
}

static void unlink_worker(bw_cluster *c, bw_worker *w)
{
    for (bw_worker **pp = &c->workers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

static void worker_free(bw_worker *w)
{
    bw__metrics_forget(w->c, w); /* its counts join the retired ones, once */
    if (w->shm != NULL)
        munmap(w->shm, sizeof *w->shm);
    bw_free(w);
}

static void maybe_forget(bw_cluster *c, bw_worker *w);

void bw__cluster_maybe_forget(bw_cluster *c, bw_worker *w)
{
    maybe_forget(c, w);
}

static void on_poll_closed(uv_handle_t *h)
{
    bw_worker *w = h->data;
    w->poll_open = false;
    maybe_forget(w->c, w);
}

static void check_all_gone(bw_cluster *c);

/* A worker is unlinked and freed once it has both disconnected and exited
 * and its channel handle is closed. */
static void maybe_forget(bw_cluster *c, bw_worker *w)
{
    if (!w->exited || w->connected || w->poll_open || w->ho_poll_open)
        return;
    unlink_worker(c, w);
    worker_free(w);
    check_all_gone(c);
}

static void close_channel(bw_worker *w)
{
    if (!w->connected)
        return;
    w->connected = false;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_poll_closed);
    close(w->fd);
    w->fd = -1;
}

static void on_worker_disconnect(bw_cluster *c, bw_worker *w);
static void on_message(bw_cluster *c, bw_worker *w, const char *msg, size_t len);

static void on_worker_message(void *worker, const char *msg, size_t len)
{
    bw_worker *w = worker;
    on_message(w->c, w, msg, len);
}

static void on_channel(uv_poll_t *p, int status, int events)
{
    bw_worker *w = p->data;
    bw_cluster *c = w->c;
    if (status < 0 || !(events & UV_READABLE)) {
        on_worker_disconnect(c, w);
        return;
    }
    if (!bw__msg_receive(w->fd, &w->connected, on_worker_message, w))
        on_worker_disconnect(c, w); /* EOF or error: the channel is gone */
}

static void flush_stdio(void)
{
    /* Buffered output would be written twice, by the primary and the child. */
    fflush(NULL);
}

static void start_signals(bw_cluster *c);

/* What the primary has open, read just before a fork (see bw__fd_snapshot). */
static void snapshot_fds(bw__fd_snapshot *s)
{
    s->n = 0;
    s->complete = false;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    s->complete = true;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat st;
        if (end == e->d_name || *end != '\0' || fd < 3 || fd == dirfd(d) ||
            fstat((int)fd, &st) != 0)
            continue;
        if (s->n == BW__MAX_FDS) {
            s->complete = false;
            break;
        }
        s->ids[s->n++] = (bw__fd_id){.fd = (int)fd, .dev = st.st_dev, .ino = st.st_ino};
    }
    closedir(d);
}

int bw_cluster_fork(bw_cluster *c, const char *const *env, bw_worker **out)
{
    if (out != NULL)
        *out = NULL;
    if (c->shutting_down)
        return BW_ECLOSING; /* never a new worker in the middle of a shutdown */
    if (!c->signals_on)
        start_signals(c); /* SIGCHLD must be watched before the first child */
    int sv[2], hv[2] = {-1, -1};
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    /* The handoff channel (cluster_handoff.c): a second socketpair, so
     * connections and their descriptors never queue behind messages. */
    if (c->opts.handoff && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, hv) != 0) {
        int e = -errno;
        close(sv[0]);
        close(sv[1]);
        return e;
    }
    bw_worker *w = bw_calloc(1, sizeof *w);
    bw__worker_shm *shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == NULL || shm == MAP_FAILED) {
        bw_free(w);
        if (shm != MAP_FAILED)
            munmap(shm, sizeof *shm);
        close(sv[0]);
        close(sv[1]);
        if (hv[0] >= 0) {
            close(hv[0]);
            close(hv[1]);
        }
        return -ENOMEM;
    }
    w->ho_fd = -1;
    w->c = c;
    w->id = c->next_id++;
    w->shm = shm;
    bw__recycle_plan(c, w);
    w->after_disconnect = BW_UNSET;
    w->exit_code = -1;
    bw__fd_snapshot *fds = bw_malloc(sizeof *fds); /* NULL: the child closes all */
    if (fds != NULL)
        snapshot_fds(fds);
    flush_stdio();
    /* Fork with every signal blocked (as libuv and nginx do): a signal that
     * reached the child before it resets its handlers would run the
     * primary's, which write into the primary's loop through the shared
     * signal pipe. The child unblocks once its handlers are its own. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        if (hv[0] >= 0)
            close(hv[0]);
        bw__worker_child_main(c, w, sv[1], hv[1], env, fds); /* never returns */
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    bw_free(fds);
    if (pid < 0) {
        int e = -fork_errno;
        close(sv[0]);
        close(sv[1]);
        if (hv[0] >= 0) {
            close(hv[0]);
            close(hv[1]);
        }
        worker_free(w);
        c->next_id--;
        return e;
    }
    close(sv[1]);
    if (hv[0] >= 0) {
        close(hv[1]);
        if (bw__relay_open(c, w, hv[0]) != 0)
            close(hv[0]); /* no handoff to or from this one */
    }
    w->pid = pid;
    w->fd = sv[0];
    w->connected = true;
    w->forked_ms = now_ms(c);
    w->last_heartbeat_ms = w->forked_ms;
    uv_poll_init(c->loop->uv, &w->poll, w->fd);
    w->poll.data = w;
    w->poll_open = true;
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_channel);
    w->next = c->workers;
    c->workers = w;
    /* The fork event is emitted from the loop, after this call (C-07). */
    w->fork_event_pending = true;
    uv_idle_start(&c->deferred, on_deferred);
    if (out != NULL)
        *out = w;
    return 0;
}

static void call_done_cb(bw_cluster *c, bw_cluster_done_cb cb, void *data);

static void on_deferred(uv_idle_t *idle)
{
    bw_cluster *c = idle->data;
    uv_idle_stop(idle);
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->fork_event_pending) {
            w->fork_event_pending = false;
            char extra[48];
            bw_cluster_event ev = {.type = BW_EVENT_FORK, .worker = w, .exit_code = -1};
            emit(c, &ev, bw__recycle_fork_extra(w, extra, sizeof extra));
        }
    }
    if (c->disconnect_done_pending) {
        c->disconnect_done_pending = false;
        /* The shutdown is over: workers forked from now on start a new cycle
         * (C-33), which the old deadline must not kill and a later
         * bw_cluster_disconnect or SIGTERM must still shut down. */
        c->shutting_down = false;
        c->shutdown_deadline_ms = 0;
        bw_cluster_done_cb cb = c->disconnect_cb;
        c->disconnect_cb = NULL;
        if (cb != NULL)
            call_done_cb(c, cb, c->disconnect_data);
    }
}

/* ---- Supervision ------------------------------------------------------- */

/* SIGKILL, remembered: a worker still alive well after it is stuck in the
 * kernel, and supervision is no longer healthy (cluster_notify.c). */
static void kill_now(bw_worker *w)
{
    if (w->sigkill_ms == 0)
        w->sigkill_ms = now_ms(w->c);
    kill(w->pid, SIGKILL);
}

static void give_up(bw_cluster *c, const bw_worker *last);
static void close_listeners(bw_cluster *c);
static void stop_now(bw_cluster *c);
static void begin_shutdown(bw_cluster *c);

static bool fork_allowed(bw_cluster *c)
{
    uint64_t now = now_ms(c);
    if (now < c->next_fork_ms)
        return false; /* start-up backoff */
    if (c->opts.max_forks_per_second <= 0)
        return true;
    /* A token bucket: at most max_forks_per_second, with a burst of as many. */
    double rate = c->opts.max_forks_per_second;
    c->fork_tokens += (double)(now - c->tokens_ms) * rate / 1000.0;
    if (c->fork_tokens > rate)
        c->fork_tokens = rate;
    c->tokens_ms = now;
    if (c->fork_tokens < 1.0)
        return false;
    c->fork_tokens -= 1.0;
    return true;
}

/* Say which worker a new one replaces: the oldest that stopped counting
 * and has no replacement yet (it may be gone from the list already). */
static void log_replacement(bw_cluster *c, bw_worker *fresh, bw_worker *old, const char *why)
{
    if (old == NULL) {
        for (bw_worker *w = c->workers; w != NULL; w = w->next)
            if (w != fresh && !w->replaced && !counts_as_capacity(w) &&
                (old == NULL || w->id < old->id))
                old = w;
    }
    if (old != NULL) {
        old->replaced = true;
        bw_log(BW_LOG_INFO, "cluster: %sworker %d (pid %ld) forked to replace worker %d (pid %ld)",
               why, fresh->id, (long)fresh->pid, old->id, (long)old->pid);
    } else {
        bw_log(BW_LOG_INFO, "cluster: %sworker %d (pid %ld) forked to replace a worker that left",
               why, fresh->id, (long)fresh->pid);
    }
}

bool bw__cluster_fork_allowed(bw_cluster *c)
{
    return fork_allowed(c);
}

/* Keep `workers` workers counting towards capacity. */
static void maintain(bw_cluster *c)
{
    if (!c->supervising || c->shutting_down || c->gave_up)
        return;
    while ((int)bw_cluster_active_count(c) < c->opts.workers && fork_allowed(c)) {
        bw_worker *fresh;
        int rc = bw_cluster_fork(c, NULL, &fresh);
        if (rc != 0) {
            bw_log(BW_LOG_ERROR, "cluster: fork failed: %s", bw_strerror(rc));
            c->next_fork_ms = now_ms(c) + c->backoff_ms;
            break;
        }
        /* The first `workers` forks start the cluster; the rest replace. */
        if (c->maintained++ >= c->opts.workers)
            log_replacement(c, fresh, NULL, "");
    }
}

int bw_cluster_start(bw_cluster *c)
{
    if (c->nlisten == 0)
        bw_log(BW_LOG_WARN, "cluster: starting workers with no listening socket");
    int rc = bw__pid_file_write(c);
    if (rc == 0)
        rc = bw__metrics_start(c);
    if (rc != 0)
        return rc;
    c->supervising = true;
    maintain(c);
    if (bw__cluster_notify_start(c))
        c->handles_open++;
    bw__cluster_notify_update(c);
    return 0;
}

/* A worker died (or lost its channel) before it ever listened. */
static void startup_failure(bw_cluster *c, bw_worker *w)
{
    uint64_t now = now_ms(c);
    c->failures[c->nfailures++ % 64] = now;
    size_t recent = 0;
    size_t n = c->nfailures < 64 ? c->nfailures : 64;
    for (size_t i = 0; i < n; i++)
        if (now - c->failures[i] <= c->opts.restart_period_ms)
            recent++;
    if ((int)recent > c->opts.restart_intensity) {
        give_up(c, w);
        return;
    }
    bw_log(BW_LOG_WARN,
           "cluster: worker %d (pid %ld) died before listening (%s %d%s); restarting in %llu ms",
           w->id, (long)w->pid, w->term_signal ? "signal" : "exit code",
           w->term_signal ? w->term_signal : w->exit_code,
           bw__worker_failure_hint(w),
           (unsigned long long)c->backoff_ms);
    c->next_fork_ms = now + c->backoff_ms;
    c->backoff_ms *= 2;
    if (c->backoff_ms > c->opts.backoff_max_ms)
        c->backoff_ms = c->opts.backoff_max_ms;
}

static void give_up(bw_cluster *c, const bw_worker *last)
{
    if (c->gave_up)
        return;
    c->gave_up = true;
    c->exit_status = 2;
    bw_log(BW_LOG_FATAL,
           "cluster: giving up: more than %d workers died before listening within %llu ms "
           "(the last, worker %d, %s %d%s); not forking again",
           c->opts.restart_intensity, (unsigned long long)c->opts.restart_period_ms, last->id,
           last->term_signal ? "by signal" : "with exit code",
           last->term_signal ? last->term_signal : last->exit_code,
           bw__worker_failure_hint(last));
    bw__cluster_event_line(c, "giveup", last, NULL);
    begin_shutdown(c);
    /* The primary is going to exit, as after SIGTERM: its copies of the
     * listening sockets go now, so that once the workers have served their
     * queues and closed theirs, a new client is refused at connect (a load
     * balancer retries elsewhere) rather than queued on a socket nobody
     * accepts from again and reset when the primary exits. */
    close_listeners(c);
}

/* A rolling restart's new worker died before listening: stop the restart
 * rather than fork on (a new generation that cannot start must not replace
 * one that serves, nor storm). The old workers keep serving; a later
 * SIGHUP starts over. */
static void end_rolling_restart(bw_cluster *c)
{
    c->rolling = false;
    c->rolling_new = NULL;
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        w->rolling_old = false;
    bw__cluster_notify_update(c);
}

static void abandon_rolling_restart(bw_cluster *c, bw_worker *dead)
{
    bw_log(BW_LOG_ERROR,
           "cluster: rolling restart abandoned: new worker %d (pid %ld) died before listening; "
           "the old workers keep serving",
           dead->id, (long)dead->pid);
    end_rolling_restart(c);
}

static int rolling_next(bw_cluster *c);

/* A worker stops counting: its channel closed or it exited, whichever
 * comes first. Accounted for once (a start-up failure must not count twice). */
static void on_worker_gone(bw_cluster *c, bw_worker *w)
{
    if (w->gone)
        return;
    w->gone = true;
    /* Crash-loop protection is supervision's: workers forked by hand
     * (bw_cluster_fork alone) are the caller's to restart or not. */
    if (c->supervising && !w->was_listening && !w->disconnect_sent && !c->shutting_down)
        startup_failure(c, w);
    else if (w->was_listening)
        c->backoff_ms = c->opts.backoff_initial_ms;
    bw__recycle_gone(c, w);
    if (c->rolling && w == c->rolling_new && !w->was_listening)
        abandon_rolling_restart(c, w);
    else if (c->rolling && w->rolling_old)
        rolling_next(c);
    maintain(c);
    bw__cluster_notify_update(c);
}

static void on_worker_disconnect(bw_cluster *c, bw_worker *w)
{
    if (!w->connected)
        return;
    close_channel(w);
    bw__relay_worker_gone(c, w);
    if (w->after_disconnect == BW_UNSET)
        w->after_disconnect = w->disconnect_sent ? BW_YES : BW_NO;
    /* Even when the exit was reaped first: the disconnect event always reads
     * `disconnected`, and the exit event that follows reads `dead` (C-16). */
    w->state = BW_WORKER_DISCONNECTED;
    emit_simple(c, BW_EVENT_DISCONNECT, w);
    if (!w->exited && w->kill_deadline_ms == 0)
        w->kill_deadline_ms = now_ms(c) + c->opts.kill_timeout_ms + BW__KILL_MARGIN_MS;
    on_worker_gone(c, w);
}

static void on_worker_exit(bw_cluster *c, bw_worker *w, int status)
{
    w->exited = true;
    bw__relay_worker_gone(c, w);
    if (WIFEXITED(status)) {
        w->exit_code = WEXITSTATUS(status);
        w->term_signal = 0;
    } else if (WIFSIGNALED(status)) {
        w->exit_code = -1;
        w->term_signal = WTERMSIG(status);
    }
    if (w->after_disconnect == BW_UNSET)
        w->after_disconnect = w->disconnect_sent ? BW_YES : BW_NO;
    bool was_connected = w->connected;
    char extra[128];
    const char *signame = w->term_signal != 0 ? signal_name(w->term_signal) : NULL;
    snprintf(extra, sizeof extra,
             "\"code\": %d, \"signal\": %d%s%s%s, \"after_disconnect\": %s", w->exit_code,
             w->term_signal, signame ? ", \"signal_name\": \"" : "", signame ? signame : "",
             signame ? "\"" : "", w->after_disconnect == BW_YES ? "true" : "false");
    if (w->term_signal != 0)
        bw_log(BW_LOG_INFO, "cluster: worker %d (pid %ld) was killed by signal %d (%s)", w->id,
               (long)w->pid, w->term_signal, signame ? signame : "?");
    else
        bw_log(BW_LOG_INFO, "cluster: worker %d (pid %ld) exited with code %d", w->id,
               (long)w->pid, w->exit_code);
    /* The channel usually reports EOF first; if not, the disconnect is
     * implied by the exit (C-16: either order, each event once). */
    if (was_connected)
        on_worker_disconnect(c, w);
    w->state = BW_WORKER_DEAD;
    bw__metrics_exit(c, w);
    bw_cluster_event ev = {.type = BW_EVENT_EXIT, .worker = w, .exit_code = w->exit_code,
                           .term_signal = w->term_signal};
    emit(c, &ev, extra);
    if (!was_connected)
        on_worker_gone(c, w);
    maybe_forget(c, w);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    bw_cluster *c = h->data;
    bw__upgrade_reap(c); /* a new primary of ours (SIGUSR2) */
    /* Our workers only: waitpid(-1) would also reap the children the program
     * spawns itself (uv_spawn), whose exit callbacks would then never come. */
    bw_worker *next;
    for (bw_worker *w = c->workers; w != NULL; w = next) {
        next = w->next; /* on_worker_exit may free w, and only w */
        int status;
        if (!w->exited && waitpid(w->pid, &status, WNOHANG) == w->pid)
            on_worker_exit(c, w, status);
    }
}

/* ---- Messages ---------------------------------------------------------- */

static void on_message(bw_cluster *c, bw_worker *w, const char *msg, size_t len)
{
    const char *payload = msg + 1;
    size_t plen = len - 1;
    switch (msg[0]) {
    case BW__MSG_ONLINE:
        if (w->state == BW_WORKER_NONE) {
            w->state = BW_WORKER_ONLINE;
            emit_simple(c, BW_EVENT_ONLINE, w);
        }
        return;
    case BW__MSG_LISTENING: {
        char address[64];
        int family = 0, port = 0;
        if (sscanf(payload, "%63s %d %d", address, &family, &port) != 3)
            return; /* malformed: ignored (C-11) */
        w->state = BW_WORKER_LISTENING;
        w->was_listening = true;
        w->last_heartbeat_ms = now_ms(c);
        c->backoff_ms = c->opts.backoff_initial_ms;
        bw_cluster_event ev = {.type = BW_EVENT_LISTENING, .worker = w, .address = address,
                               .family = family, .port = port, .exit_code = -1};
        char extra[128];
        snprintf(extra, sizeof extra, "\"address\": \"%s\", \"port\": %d", address, port);
        emit(c, &ev, extra);
        bw__metrics_listening(c, w);
        bw__cluster_notify_update(c);
        bw__recycle_listening(c, w); /* a recycled worker's replacement: the old one drains */
        if (c->rolling && w == c->rolling_new) {
            /* The new one listens: now the old one may drain. */
            c->rolling_new = NULL;
            for (bw_worker *o = c->workers; o != NULL; o = o->next) {
                if (awaits_rolling_replacement(o)) {
                    bw_worker_disconnect(o);
                    break;
                }
            }
        }
        return;
    }
    case BW__MSG_HEARTBEAT:
        w->last_heartbeat_ms = now_ms(c);
        return;
    case BW__MSG_RETIRING: {
        if (w->retiring)
            return;
        /* "kill_ms KEY\nPEER_IP\nGROUP": the worker's own kill timer fires
         * after kill_ms; the primary's deadline is that plus the margin, so
         * the worker's failsafe, whatever its policy says, always comes
         * first. The rest is for the quarantine (cluster_quarantine.c). */
        unsigned long long kill_ms;
        int skip = 0;
        if (sscanf(payload, "%llu %n", &kill_ms, &skip) != 1 || skip == 0)
            return; /* malformed: ignored (C-11) */
        char key[BW__REQUEST_TEXT], peer[48] = "", group[BW__REQUEST_TEXT + 4] = "";
        payload += skip;
        size_t klen = strcspn(payload, "\n");
        snprintf(key, sizeof key, "%.*s", (int)klen, payload);
        if (payload[klen] == '\n') {
            const char *p2 = payload + klen + 1;
            size_t plen2 = strcspn(p2, "\n");
            snprintf(peer, sizeof peer, "%.*s", (int)plen2, p2);
            if (p2[plen2] == '\n')
                snprintf(group, sizeof group, "%s", p2 + plen2 + 1);
        }
        payload = key;
        plen = strlen(key);
        w->retiring = true;
        bw__metrics_retiring(c, w);
        w->kill_deadline_ms = now_ms(c) + kill_ms + BW__KILL_MARGIN_MS;
        bw_cluster_event ev = {.type = BW_EVENT_RETIRING, .worker = w, .data = payload,
                               .len = plen, .exit_code = -1};
        char extra[BW__REQUEST_TEXT + 32];
        snprintf(extra, sizeof extra, "\"request\": \"%.200s\"", payload);
        for (char *p = extra; *p; p++)
            if (*p == '\\' || (unsigned char)*p < 32)
                *p = '?';
        emit(c, &ev, extra);
        bw__quarantine_report(c, w, key, peer, group);
        maintain(c); /* capacity returns while the old one drains */
        bw__cluster_notify_update(c);
        return;
    }
    case BW__MSG_DISCONNECTING:
        w->after_disconnect = BW_YES;
        w->disconnect_sent = true;
        bw__metrics_draining(c, w);
        if (w->kill_deadline_ms == 0)
            w->kill_deadline_ms = now_ms(c) + c->opts.kill_timeout_ms + BW__KILL_MARGIN_MS;
        bw__msg_send(w->fd, BW__MSG_ACK, NULL, 0);
        maintain(c);
        bw__cluster_notify_update(c);
        return;
    case BW__MSG_FAILED:
        bw__worker_failed(w, payload, plen);
        return;
    case BW__MSG_USER: {
        bw_cluster_event ev = {.type = BW_EVENT_MESSAGE, .worker = w, .data = payload,
                               .len = plen, .exit_code = -1};
        emit(c, &ev, NULL);
        return;
    }
    default:
        return; /* unknown: ignored (C-11) */
    }
}

/* ---- The periodic tick: deadlines -------------------------------------- */

/* A hung worker: the last resort, for a loop the callback limit could not
 * interrupt (or with the limit off). Its last request counts towards the
 * quarantine like a crash, the replacement is forked first (capacity comes
 * back before the kill, and it starts with any quarantine this decided),
 * then the hung one is killed. */
static void report_hang(bw_cluster *c, bw_worker *w, uint64_t silent_ms)
{
    char last[BW__REQUEST_TEXT];
    memcpy(last, w->shm->last_request, sizeof last);
    last[sizeof last - 1] = '\0';
    bw_cluster_event ev = {.type = BW_EVENT_HANG, .worker = w, .data = last, .len = strlen(last),
                           .exit_code = -1};
    char extra[BW__REQUEST_TEXT + 32];
    snprintf(extra, sizeof extra, "\"request\": \"%.200s\"", last);
    for (char *p = extra; *p; p++)
        if (*p == '\\' || (unsigned char)*p < 32)
            *p = '?';
    emit(c, &ev, extra);
    w->hang_reported = true;
    w->retiring = true;
    bw__metrics_retiring(c, w);
    /* Its exact key and its path (the route is not known to the primary;
     * nor is the client: a hang is not charged to one). */
    bw__quarantine_report(c, w, last, "", "");
    bw_worker *newest = c->workers;
    maintain(c);
    char replaced[64] = "no replacement yet (fork backoff or ceiling)";
    if (c->workers != newest)
        snprintf(replaced, sizeof replaced, "replacement worker %d (pid %ld) forked",
                 c->workers->id, (long)c->workers->pid);
    bw_log(BW_LOG_ERROR,
           "cluster: worker %d (pid %ld) hung: no heartbeat for %llu ms; last request "
           "dispatched: %s; %s; killing it (SIGKILL)",
           w->id, (long)w->pid, (unsigned long long)silent_ms, last[0] ? last : "(none)",
           replaced);
    kill_now(w);
}

static void on_tick(uv_timer_t *t)
{
    bw_cluster *c = t->data;
    uint64_t now = now_ms(c);
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->exited)
            continue;
        if (w->kill_deadline_ms != 0 && now >= w->kill_deadline_ms) {
            bw_log(BW_LOG_WARN,
                   "cluster: worker %d (pid %ld) still alive %llu ms after it began to drain; "
                   "killing it",
                   w->id, (long)w->pid, (unsigned long long)c->opts.kill_timeout_ms);
            bw__cluster_event_line(c, "kill", w, NULL);
            kill_now(w);
            w->kill_deadline_ms = 0;
            continue;
        }
        bool watched = w->connected && !w->hang_reported && !w->retiring && !w->disconnect_sent;
        uint64_t silent = now - w->last_heartbeat_ms;
        if (watched && silent > c->opts.heartbeat_timeout_ms)
            report_hang(c, w, silent);
    }
    if (c->shutting_down && c->shutdown_deadline_ms != 0 && now >= c->shutdown_deadline_ms) {
        for (bw_worker *w = c->workers; w != NULL; w = w->next) {
            if (!w->exited) {
                bw_log(BW_LOG_WARN, "cluster: shutdown deadline: killing worker %d (pid %ld)",
                       w->id, (long)w->pid);
                kill_now(w);
            }
        }
        c->shutdown_deadline_ms = 0;
    }
    bw__quarantine_tick(c, now);
    bw__upgrade_tick(c, now);
    if (c->stop_at_ms != 0 && now >= c->stop_at_ms && !c->shutting_down)
        stop_now(c); /* drain_delay_ms is over */
    bw__recycle_tick(c, now);
    maintain(c);
    bw__cluster_notify_update(c); /* forks and hangs of this tick */
}

/* ---- Disconnect, shutdown, rolling restart ----------------------------- */

bool bw__receiver_may_come(const bw_cluster *c, const bw_worker *giver)
{
    if (c->supervising && !c->shutting_down && !c->gave_up)
        return true; /* a replacement is forked, or will be */
    if (bw__upgrade_receiver((bw_cluster *)c) != NULL)
        return true; /* a new primary takes them */
    for (const bw_worker *w = c->workers; w != NULL; w = w->next)
        if (w != giver && w->connected && w->ho_fd >= 0 && !w->exited && !w->retiring &&
            !w->disconnect_sent && !w->hang_reported)
            return true;
    return false;
}

int bw_worker_disconnect(bw_worker *w)
{
    if (!w->connected || w->disconnect_sent)
        return 0;
    w->disconnect_sent = true;
    w->after_disconnect = BW_YES;
    bw__metrics_draining(w->c, w);
    w->kill_deadline_ms = now_ms(w->c) + w->c->opts.kill_timeout_ms + BW__KILL_MARGIN_MS;
    /* "stay": no worker could take its connections (none other, and no
     * supervision to fork one): they close there, saying so at once. */
    bool stay = !bw__receiver_may_come(w->c, w);
    bw__msg_send(w->fd, BW__MSG_DISCONNECT, stay ? "stay" : NULL, stay ? 4 : 0);
    return 0;
}

int bw_worker_kill(bw_worker *w, int sig)
{
    if (w->exited)
        return -ESRCH;
    return kill(w->pid, sig != 0 ? sig : SIGTERM) == 0 ? 0 : -errno;
}

int bw_worker_send(bw_worker *w, const void *msg, size_t len)
{
    return bw__msg_send(w->connected ? w->fd : -1, BW__MSG_USER, msg, len);
}

static void check_all_gone(bw_cluster *c)
{
    if (!c->shutting_down || c->workers != NULL || c->disconnect_done_pending)
        return;
    c->disconnect_done_pending = true;
    uv_idle_start(&c->deferred, on_deferred);
}

/* Every worker drains; each also serves the connections queued on the
 * listeners before it closes them (BW__MSG_SHUTDOWN), so a client that
 * connects during the shutdown is served or, once the last worker closed
 * the listeners, refused at connect, never accepted and then reset. */
static void begin_shutdown(bw_cluster *c)
{
    c->shutting_down = true;
    c->supervising = false; /* no replacement after the shutdown either */
    c->rolling = false;
    c->shutdown_deadline_ms = now_ms(c) + c->opts.shutdown_timeout_ms;
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (w->exited || !w->connected || w->disconnect_sent)
            continue;
        w->disconnect_sent = true;
        w->after_disconnect = BW_YES;
        bw__metrics_draining(c, w);
        w->kill_deadline_ms = now_ms(c) + c->opts.kill_timeout_ms + BW__KILL_MARGIN_MS;
        bw__msg_send(w->fd, BW__MSG_SHUTDOWN, NULL, 0);
    }
    bw__cluster_notify_update(c);
    check_all_gone(c);
}

/* The primary is going to exit: its copies of the listening sockets go
 * first, so that the workers' are the last and the sockets close (new
 * clients are refused) once every worker has served its queue. Sockets
 * from systemd stay open in systemd, which queues clients for the next
 * start. */
static void close_listeners(bw_cluster *c)
{
    for (size_t i = 0; i < c->nlisten; i++)
        close(c->listen_fds[i]);
    c->nlisten = 0;
}

/* The upgrade's new primary is ready: this one stops supervising and asks
 * each worker to disconnect: their connections at rest go to the new
 * primary's workers (cluster_upgrade.c), the rest are served here, then
 * they exit, and so does this primary (the shutdown's completion). The
 * listening sockets stay open here until then, so that supervision can
 * come back if the new primary dies meanwhile (bw__cluster_resume). */
void bw__cluster_hand_over(bw_cluster *c)
{
    c->shutting_down = true; /* no fork from now on, and completion ends the run */
    c->supervising = false;
    c->rolling = false;
    c->shutdown_deadline_ms = now_ms(c) + c->opts.shutdown_timeout_ms;
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        if (!w->exited && w->connected)
            bw_worker_disconnect(w);
    check_all_gone(c);
}

void bw__cluster_resume(bw_cluster *c)
{
    if (!c->shutting_down || c->disconnect_done_pending)
        return; /* already done draining: the run ends anyway */
    c->shutting_down = false;
    c->shutdown_deadline_ms = 0;
    c->supervising = true;
    maintain(c);
}

int bw_cluster_disconnect(bw_cluster *c, bw_cluster_done_cb cb, void *data)
{
    c->disconnect_cb = cb;
    c->disconnect_data = data;
    begin_shutdown(c);
    return 0;
}

/* The next step of a rolling restart: fork the replacement of the next old
 * worker, unless one is on its way; end the restart when every old worker
 * is gone. */
static int rolling_next(bw_cluster *c)
{
    if (c->rolling_new != NULL && !c->rolling_new->gone)
        return 0; /* one at a time: wait for the current replacement */
    for (bw_worker *w = c->workers; w != NULL; w = w->next) {
        if (awaits_rolling_replacement(w)) {
            bw_worker *fresh;
            int rc = bw_cluster_fork(c, NULL, &fresh);
            if (rc != 0) {
                bw_log(BW_LOG_ERROR,
                       "cluster: rolling restart abandoned: fork failed: %s; the old workers "
                       "keep serving", bw_strerror(rc));
                end_rolling_restart(c);
                return rc;
            }
            c->rolling_new = fresh;
            log_replacement(c, fresh, w, "rolling restart: ");
            return 0;
        }
    }
    /* Every old worker is replaced (or draining). `gone`, not `exited`: this
     * runs when the last one's departure is accounted for, which may be its
     * channel closing before its exit is reaped, and it runs only once. */
    bool draining = false;
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        draining |= w->rolling_old && !w->gone;
    if (!draining) {
        c->rolling = false;
        bw_log(BW_LOG_INFO, "cluster: rolling restart done");
        bw__cluster_notify_update(c);
    }
    return 0;
}

int bw_cluster_rolling_restart(bw_cluster *c)
{
    if (c->shutting_down || c->gave_up)
        return BW_ESTATE;
    if (c->rolling)
        return 0; /* one restart at a time; it already covers every worker */
    /* Mark the current generation; each is replaced in turn. */
    bw__recycle_rolling_begins(c);
    c->rolling = true;
    for (bw_worker *w = c->workers; w != NULL; w = w->next)
        if (counts_as_capacity(w))
            w->rolling_old = true;
    bw_log(BW_LOG_INFO, "cluster: rolling restart begins");
    bw__cluster_notify_update(c);
    return rolling_next(c);
}

/* ---- Signals ----------------------------------------------------------- */

static void stop_now(bw_cluster *c)
{
    c->stop_at_ms = 0;
    bw_log(BW_LOG_INFO, "cluster: graceful shutdown of %zu worker(s), deadline %llu ms",
           bw_cluster_worker_count(c), (unsigned long long)c->opts.shutdown_timeout_ms);
    bw__upgrade_abandon(c); /* a new primary on its way stops too */
    begin_shutdown(c);
    close_listeners(c);
}

static void on_term(uv_signal_t *h, int signum)
{
    bw_cluster *c = h->data;
    if (c->shutting_down)
        return;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (c->stop_at_ms != 0) {
        bw_log(BW_LOG_INFO, "cluster: %s again: the drain begins now", name);
        stop_now(c);
        return;
    }
    if (c->opts.drain_delay_ms != 0) {
        /* Out of the load balancer's rotation first: /readyz says 503 and
         * systemd hears STOPPING, while every worker serves on as before. */
        c->stop_at_ms = now_ms(c) + c->opts.drain_delay_ms;
        bw_log(BW_LOG_INFO, "cluster: %s: not ready any more; the drain begins in %llu ms "
               "(drain_delay_ms)", name, (unsigned long long)c->opts.drain_delay_ms);
        bw__cluster_notify_stopping(c);
        return;
    }
    bw_log(BW_LOG_INFO, "cluster: %s", name);
    stop_now(c);
}

static void on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    bw_cluster_rolling_restart(h->data);
}

/* SIGUSR1, as nginx: reopen the log files (logrotate moved them). The
 * primary's is the event log; an access log reopens itself when its file
 * is replaced (access_log.h). */
static void on_usr1(uv_signal_t *h, int signum)
{
    (void)signum;
    bw_cluster *c = h->data;
    if (c->event_log_path[0] == '\0')
        return;
    int fd = open(c->event_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        bw_log(BW_LOG_ERROR, "cluster: SIGUSR1: cannot reopen %s: %s", c->event_log_path,
               bw_strerror(-errno));
        return;
    }
    dup2(fd, c->event_log_fd); /* the same descriptor number: workers hold none */
    close(fd);
    bw_log(BW_LOG_INFO, "cluster: SIGUSR1: event log %s reopened", c->event_log_path);
}

static void on_usr2(uv_signal_t *h, int signum)
{
    (void)signum;
    int rc = bw__upgrade_begin(h->data);
    if (rc != 0 && rc != BW_ESTATE && rc != BW_ECLOSING)
        bw_log(BW_LOG_ERROR, "cluster: SIGUSR2: cannot start the new primary: %s",
               bw_strerror(rc));
}

static void start_signals(bw_cluster *c)
{
    uv_signal_init(c->loop->uv, &c->sigchld);
    c->sigchld.data = c;
    uv_signal_start(&c->sigchld, on_sigchld, SIGCHLD);
    uv_unref((uv_handle_t *)&c->sigchld);
    c->handles_open++;
    if (c->opts.handle_signals) {
        uv_signal_init(c->loop->uv, &c->sigterm);
        uv_signal_init(c->loop->uv, &c->sigint);
        uv_signal_init(c->loop->uv, &c->sighup);
        uv_signal_init(c->loop->uv, &c->sigusr2);
        uv_signal_init(c->loop->uv, &c->sigusr1);
        c->sigterm.data = c->sigint.data = c->sighup.data = c->sigusr2.data = c;
        c->sigusr1.data = c;
        uv_signal_start(&c->sigterm, on_term, SIGTERM);
        uv_signal_start(&c->sigint, on_term, SIGINT);
        uv_signal_start(&c->sighup, on_hup, SIGHUP);
        uv_signal_start(&c->sigusr2, on_usr2, SIGUSR2);
        uv_signal_start(&c->sigusr1, on_usr1, SIGUSR1);
        uv_unref((uv_handle_t *)&c->sigterm);
        uv_unref((uv_handle_t *)&c->sigint);
        uv_unref((uv_handle_t *)&c->sighup);
        uv_unref((uv_handle_t *)&c->sigusr2);
        uv_unref((uv_handle_t *)&c->sigusr1);
        c->handles_open += 5;
    }
    c->signals_on = true;
}

/* ---- Closing ----------------------------------------------------------- */

/* The user's done callbacks run under a guard, as the event callbacks do:
 * an error in one is routed like a throw there (to the domain active when
 * it runs; with none, the process-level uncaught handling, C-20). */
typedef struct done_call {
    bw_cluster *c;
    bw_cluster_done_cb cb;
    void *data;
} done_call;

static void run_done_cb(void *arg)
{
    done_call *d = arg;
    d->cb(d->c, d->data);
}

static void call_done_cb(bw_cluster *c, bw_cluster_done_cb cb, void *data)
{
    done_call d = {c, cb, data};
    bw_invoke(NULL, run_done_cb, &d);
}

void bw__cluster_handle_closed(bw_cluster *c)
{
    if (--c->handles_open > 0)
        return;
    if (c->close_cb != NULL)
        call_done_cb(c, c->close_cb, c->close_data);
}

static void on_handle_closed(uv_handle_t *h)
{
    bw__cluster_handle_closed(h->data);
}

int bw_cluster_close(bw_cluster *c, bw_cluster_done_cb cb, void *data)
{
    if (c->workers != NULL)
        return BW_EBUSY;
    c->close_cb = cb;
    c->close_data = data;
    close_listeners(c);
    bw__upgrade_close(c);
    if (bw__metrics_close(c))
        c->handles_open++;
    uv_close((uv_handle_t *)&c->tick, on_handle_closed);
    uv_close((uv_handle_t *)&c->deferred, on_handle_closed);
    if (c->watchdog_open) {
        uv_close((uv_handle_t *)&c->watchdog, on_handle_closed);
        c->watchdog_open = false;
    }
    if (c->signals_on) {
        uv_close((uv_handle_t *)&c->sigchld, on_handle_closed);
        if (c->opts.handle_signals) {
            uv_close((uv_handle_t *)&c->sigterm, on_handle_closed);
            uv_close((uv_handle_t *)&c->sigint, on_handle_closed);
            uv_close((uv_handle_t *)&c->sighup, on_handle_closed);
            uv_close((uv_handle_t *)&c->sigusr2, on_handle_closed);
            uv_close((uv_handle_t *)&c->sigusr1, on_handle_closed);
        }
    }
    return 0;
}

void bw_cluster_free(bw_cluster *c)
{
    if (c == NULL)
        return;
    if (c->event_log_fd >= 0)
        close(c->event_log_fd);
    bw__pid_file_remove(c);
    bw__privileges_free(c);
    bw__notify_close(&c->notify);
    bw__relay_free(c);
    bw__upgrade_free(c);
    bw__metrics_free(c);
    bw_free(c->event_cbs);
    bw_free(c);
}

int bw_cluster_exit_status(const bw_cluster *c)
{
    return c->exit_status;
}

/* ---- Worker accessors (primary side) ----------------------------------- */

int bw_worker_id(const bw_worker *w)
{
    return w->id;
}

pid_t bw_worker_pid(const bw_worker *w)
{
    return w->pid;
}

bw_worker_state bw_worker_state_of(const bw_worker *w)
{
    return w->state;
}

bool bw_worker_is_connected(const bw_worker *w)
{
    return w->connected;
}

bool bw_worker_is_dead(const bw_worker *w)
{
    return w->exited;
}

bw_tristate bw_worker_exited_after_disconnect(const bw_worker *w)
{
    return w->after_disconnect;
}

/* ---- The whole primary in one call ------------------------------------- */

typedef struct run_state {
    bool closed;
} run_state;

static void on_run_closed(bw_cluster *c, void *data)
{
    (void)c;
    ((run_state *)data)->closed = true;
}

/* Every worker is gone after a shutdown (a signal, or giving up): close the
 * cluster, which ends the loop. Closing a signal watcher puts its signal
 * back to the default action, which for these four ends the process: a
 * second SIGTERM (a second Ctrl-C, a script that signals twice) would kill
 * a primary that is done and about to exit 0. The shutdown has begun, so
 * from here on they are ignored; blocked across the close so that none
 * lands in between. */
static void on_all_gone(bw_cluster *c, void *data)
{
    static const int late[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    sigset_t set, old;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof late / sizeof late[0]; i++)
        sigaddset(&set, late[i]);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    bw_cluster_close(c, on_run_closed, data);
    if (c->opts.handle_signals)
        for (size_t i = 0; i < sizeof late / sizeof late[0]; i++)
            signal(late[i], SIG_IGN); /* also drops one that came meanwhile */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int bw_cluster_run(const bw_cluster_options *options, const char *host, int port,
                   bw_worker_main_fn main, void *data)
{
    signal(SIGPIPE, SIG_IGN);
    bw_loop *loop;
    int rc = bw_loop_new(&loop);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "cluster: no event loop: %s", bw_strerror(rc));
        return 1;
    }
    bw_cluster *c;
    rc = bw_cluster_new(loop, options, main, data, &c);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "cluster: %s", bw_strerror(rc));
        return 1;
    }
    rc = bw_cluster_listen_inherited(c);
    if (rc == 0)
        rc = bw_cluster_listen(c, host, port);
    else if (rc > 0)
        rc = 0;
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "cluster: cannot listen on %s:%d: %s", host ? host : "127.0.0.1",
               port, bw_strerror(rc));
        return 1;
    }
    run_state s = {false};
    c->disconnect_cb = on_all_gone;
    c->disconnect_data = &s;
    start_signals(c);
    bw_log(BW_LOG_INFO, "cluster: primary %ld listening on port %d, %d worker(s)",
           (long)getpid(), c->port, c->opts.workers);
    rc = bw_cluster_start(c);
    if (rc != 0) {
        bw_log(BW_LOG_FATAL, "cluster: cannot start (pid file %s, admin port %d): %s",
               c->opts.pid_file ? c->opts.pid_file : "none", c->opts.admin_port, bw_strerror(rc));
        return 1;
    }
    /* The loop ends once the cluster is closed (shutdown or giving up). */
    bw_loop_run(loop, UV_RUN_DEFAULT);
    int status = s.closed ? bw_cluster_exit_status(c) : 1;
    bw_cluster_free(c);
    bw_loop_free(loop);
    bw_log(BW_LOG_INFO, "cluster: primary exits with status %d", status);
    return status;
}
