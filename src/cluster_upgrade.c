/*
 * cluster_upgrade.c: replacing the primary's own program without dropping
 * a request (nginx's and unicorn's binary upgrade, on SIGUSR2).
 *
 * The predecessor (the running primary) forks and execs the program file
 * at the path it was started from, which a deploy has replaced, with the
 * listening sockets as systemd would pass them (LISTEN_FDS, from fd 3) and
 * one more descriptor, BW_UPGRADE_FD: a SOCK_SEQPACKET socketpair that
 * speaks the handoff protocol (cluster_handoff.c) plus one message, READY.
 *
 *   successor    forks its workers on the inherited sockets; both
 *                generations accept, so no connection waits on a closed
 *                queue. Once as many workers listen as it keeps, it sends
 *                READY (and, being a successor, leaves READY=1 to the
 *                predecessor, which is the one systemd listens to).
 *   predecessor  on READY: tells systemd MAINPID=successor and READY=1,
 *                then stops speaking to it; stops forking; asks each of its
 *                workers to disconnect. They hand their connections at rest
 *                to the successor (their batches go over the upgrade
 *                channel, the successor's primary routes them to its
 *                workers and their answers come back the same way), serve
 *                what is in flight, and exit; then the predecessor exits 0.
 *
 * Rollback: a successor that exits (or stops answering) before READY, or
 * is not ready within upgrade_timeout_ms (killed then), leaves the
 * predecessor serving as before, with a log line that says why. A
 * successor that dies after it took over, while the predecessor is still
 * draining, makes the predecessor supervise again (its listening sockets
 * are kept until it exits for this).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_internal.h"

extern char **environ;

/* ---- What to exec ------------------------------------------------------ */

/* The command line, from the options or as the kernel recorded it, and
 * argv[0] made absolute against the working directory of the start (not
 * resolved: a deploy that swaps a symlink must be followed). */
static int record_command(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    char *buf = NULL;
    size_t len = 0;
    if (c->opts.upgrade_argv != NULL && c->opts.upgrade_argv[0] != NULL) {
        for (const char *const *a = c->opts.upgrade_argv; *a != NULL; a++)
            len += strlen(*a) + 1;
        buf = bw_malloc(len);
        if (buf == NULL)
            return -ENOMEM;
        size_t off = 0;
        for (const char *const *a = c->opts.upgrade_argv; *a != NULL; a++) {
            size_t n = strlen(*a) + 1;
            memcpy(buf + off, *a, n);
            off += n;
        }
    } else {
        int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        size_t cap = 4096;
        buf = bw_malloc(cap);
        ssize_t r;
        while (buf != NULL && (r = read(fd, buf + len, cap - len)) > 0) {
            len += (size_t)r;
            if (len == cap) {
                char *more = bw_realloc(buf, cap *= 2);
                if (more == NULL)
                    bw_free(buf);
                buf = more;
            }
        }
        close(fd);
        if (buf == NULL)
            return -ENOMEM;
        if (len == 0 || buf[len - 1] != '\0') {
            bw_free(buf);
            return -EINVAL;
        }
    }
    size_t argc = 0;
    for (size_t i = 0; i < len; i++)
        argc += buf[i] == '\0';
    u->argv = bw_calloc(argc + 1, sizeof *u->argv);
    if (u->argv == NULL) {
        bw_free(buf);
        return -ENOMEM;
    }
    u->args = buf;
    for (size_t i = 0, k = 0; i < len; i += strlen(buf + i) + 1)
        u->argv[k++] = buf + i;
    const char *arg0 = u->argv[0];
    if (strchr(arg0, '/') == NULL) {
        u->path = NULL; /* searched in PATH at the upgrade, as the shell did */
    } else if (arg0[0] == '/') {
        u->path = bw_malloc(strlen(arg0) + 1);
        if (u->path != NULL)
            strcpy(u->path, arg0);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return -errno;
        u->path = bw_malloc(strlen(cwd) + strlen(arg0) + 2);
        if (u->path != NULL)
            sprintf(u->path, "%s/%s", cwd, arg0);
    }
    if (strchr(arg0, '/') != NULL && u->path == NULL)
        return -ENOMEM;
    return 0;
}

/* ---- The peer: the other primary, as the relay sees it ----------------- */

static int open_peer(bw_cluster *c, int fd, pid_t pid)
{
    bw_worker *old = c->upgrade.peer;
    if (old != NULL) {
        if (old->ho_poll_open)
            return BW_ESTATE; /* the last one's channel is still closing */
        bw_free(old);
        c->upgrade.peer = NULL;
    }
    bw_worker *p = bw_calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->c = c;
    p->id = 0; /* never a worker's id */
    p->pid = pid;
    p->fd = -1;
    p->ho_fd = -1;
    p->connected = true;
    p->state = BW_WORKER_LISTENING;
    p->after_disconnect = BW_UNSET;
    int rc = bw__relay_open(c, p, fd);
    if (rc != 0) {
        bw_free(p);
        return rc;
    }
    c->upgrade.peer = p;
    return 0;
}

static void close_peer(bw_cluster *c)
{
    bw_worker *p = c->upgrade.peer;
    if (p == NULL)
        return;
    bw__relay_worker_gone(c, p); /* answers what it had, closes the channel */
    p->connected = false;
}

bool bw__upgrade_is_peer(const bw_cluster *c, const bw_worker *w)
{
    return w != NULL && w == c->upgrade.peer;
}

bw_worker *bw__upgrade_receiver(bw_cluster *c)
{
    bw_worker *p = c->upgrade.peer;
    return c->upgrade.handing_over && p != NULL && p->ho_fd >= 0 ? p : NULL;
}

/* ---- Start-up: are we a successor? ------------------------------------- */

int bw__upgrade_init(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    memset(u, 0, sizeof *u);
    const char *fd_text = getenv("BW_UPGRADE_FD");
    if (fd_text != NULL) {
        char *end;
        long fd = strtol(fd_text, &end, 10);
        unsetenv("BW_UPGRADE_FD");
        if (*end == '\0' && fd >= 3 && fd < INT_MAX && fcntl((int)fd, F_GETFD) >= 0) {
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
            fcntl((int)fd, F_SETFL, fcntl((int)fd, F_GETFL) | O_NONBLOCK);
            if (open_peer(c, (int)fd, getppid()) == 0) {
                u->successor = true;
                bw_log(BW_LOG_INFO, "cluster: started by an upgrade of primary %ld",
                       (long)getppid());
            } else {
                close((int)fd);
            }
        } else {
            bw_log(BW_LOG_WARN, "cluster: BW_UPGRADE_FD=%s is not an open descriptor: "
                   "starting as a fresh primary", fd_text);
        }
    }
    int rc = record_command(c);
    if (rc != 0)
        bw_log(BW_LOG_WARN, "cluster: cannot record the command line (%s): SIGUSR2 upgrades "
               "will fail", bw_strerror(rc));
    return 0;
}

void bw__upgrade_ready(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    if (!u->successor || u->ready_sent || u->peer == NULL || u->peer->ho_fd < 0)
        return;
    u->ready_sent = true;
    bw__ho_msg m = {.type = BW__HO_READY};
    int rc = bw__ho_send(u->peer->ho_fd, &m);
    if (rc != 0)
        bw_log(BW_LOG_ERROR, "cluster: cannot tell the old primary that this one is ready: %s",
               bw_strerror(rc));
}

/* ---- The predecessor's side -------------------------------------------- */

/* "NAME=" followed by room for a pid, filled in by the child. */
#define PID_ROOM 24

static void put_pid(char *dst, pid_t pid)
{
    char digits[PID_ROOM];
    size_t n = 0;
    unsigned long v = (unsigned long)pid;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0 && n < sizeof digits - 1);
    while (n > 0)
        *dst++ = digits[--n];
    *dst = '\0';
}

static bool env_dropped(const char *e)
{
    static const char *const names[] = {"LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=",
                                        "BW_UPGRADE_FD=", "BW_ADMIN_FD=", "WATCHDOG_PID="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(e, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

int bw__upgrade_begin(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    if (u->successor_pid != 0) {
        bw_log(BW_LOG_WARN, "cluster: SIGUSR2: an upgrade (pid %ld) is already under way",
               (long)u->successor_pid);
        return BW_ESTATE;
    }
    if (c->shutting_down || c->gave_up || u->handing_over) {
        bw_log(BW_LOG_WARN, "cluster: SIGUSR2: not upgrading while shutting down");
        return BW_ECLOSING;
    }
    if (u->argv == NULL) {
        bw_log(BW_LOG_ERROR, "cluster: SIGUSR2: no command line recorded: cannot upgrade");
        return BW_ESTATE;
    }
    if (c->nlisten == 0) {
        bw_log(BW_LOG_ERROR, "cluster: SIGUSR2: no listening socket to hand over");
        return BW_ESTATE;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    /* The environment, made before the fork (the child may not allocate). */
    size_t n = 0;
    for (char **e = environ; *e != NULL; e++)
        n++;
    char **envp = bw_calloc(n + 6, sizeof *envp);
    char listen_fds[32], listen_pid[16 + PID_ROOM], upgrade_fd[32], watchdog_pid[16 + PID_ROOM];
    char admin_fd_env[32];
    int admin_fd = bw__metrics_admin_fd(c); /* the admin listener goes along (-1: none) */
    if (envp == NULL) {
        close(sv[0]);
        close(sv[1]);
        return -ENOMEM;
    }
    size_t k = 0;
    for (char **e = environ; *e != NULL; e++)
        if (!env_dropped(*e))
            envp[k++] = *e;
    int child_fd = 3 + (int)c->nlisten;
    snprintf(listen_fds, sizeof listen_fds, "LISTEN_FDS=%zu", c->nlisten);
    snprintf(upgrade_fd, sizeof upgrade_fd, "BW_UPGRADE_FD=%d", child_fd);
    strcpy(listen_pid, "LISTEN_PID=");
    strcpy(watchdog_pid, "WATCHDOG_PID=");
    envp[k++] = listen_fds;
    envp[k++] = listen_pid;
    envp[k++] = upgrade_fd;
    if (admin_fd >= 0) {
        snprintf(admin_fd_env, sizeof admin_fd_env, "BW_ADMIN_FD=%d", child_fd + 1);
        envp[k++] = admin_fd_env;
    }
    if (getenv("WATCHDOG_USEC") != NULL)
        envp[k++] = watchdog_pid; /* systemd names the main process: it will be this one */
    envp[k] = NULL;
    fflush(stdout);
    fflush(stderr);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls until the exec. Move the
         * descriptors above every target first, then into place (a target
         * may be one of the sources). */
        int high = child_fd + 2;
        int moved[BW__MAX_LISTENERS + 2];
        size_t nmoved = 0;
        for (size_t i = 0; i < c->nlisten; i++)
            moved[nmoved++] = fcntl(c->listen_fds[i], F_DUPFD_CLOEXEC, high);
        moved[nmoved++] = fcntl(sv[1], F_DUPFD_CLOEXEC, high);
        if (admin_fd >= 0)
            moved[nmoved++] = fcntl(admin_fd, F_DUPFD_CLOEXEC, high);
        for (size_t i = 0; i < nmoved; i++)
            if (moved[i] < 0 || dup2(moved[i], 3 + (int)i) < 0)
                _exit(126);
        put_pid(listen_pid + strlen("LISTEN_PID="), getpid());
        put_pid(watchdog_pid + strlen("WATCHDOG_PID="), getpid());
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (u->path != NULL)
            execve(u->path, u->argv, envp);
        else
            execvpe(u->argv[0], u->argv, envp);
        _exit(127);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    bw_free(envp);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -fork_errno;
    }
    int rc = open_peer(c, sv[0], pid);
    if (rc != 0) {
        close(sv[0]);
        kill(pid, SIGKILL);
        return rc;
    }
    u->successor_pid = pid;
    u->deadline_ms = uv_now(c->loop->uv) + c->opts.upgrade_timeout_ms;
    bw_log(BW_LOG_INFO, "cluster: SIGUSR2: upgrading: started %s as pid %ld; the old "
           "primary serves until it is ready (%llu ms at most)",
           u->path != NULL ? u->path : u->argv[0], (long)pid,
           (unsigned long long)c->opts.upgrade_timeout_ms);
    char extra[64];
    snprintf(extra, sizeof extra, "\"successor\": %ld", (long)pid);
    bw__cluster_event_line(c, "upgrade", NULL, extra);
    return 0;
}

static void roll_back(bw_cluster *c, const char *why)
{
    bw__upgrade *u = &c->upgrade;
    bw_log(BW_LOG_ERROR, "cluster: upgrade failed: %s; the old primary keeps serving", why);
    char extra[160];
    snprintf(extra, sizeof extra, "\"successor\": %ld, \"why\": \"%s\"", (long)u->successor_pid,
             why);
    bw__cluster_event_line(c, "upgrade_failed", NULL, extra);
    close_peer(c);
    u->deadline_ms = 0;
    u->channel_lost = false;
    u->failed_pid = u->successor_pid; /* reaped later; kept apart from workers */
    u->successor_pid = 0;
}

void bw__upgrade_abandon(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    if (u->successor_pid == 0 || u->handing_over)
        return; /* none, or it is the service already */
    /* A stop asked for in the middle of an upgrade stops the service, the
     * new primary included: it drains what its workers took, as this one
     * does (SIGTERM, not SIGKILL). */
    char why[96];
    snprintf(why, sizeof why, "the service is stopping: the new primary (pid %ld) is told to "
             "stop too", (long)u->successor_pid);
    kill(u->successor_pid, SIGTERM);
    roll_back(c, why);
}

void bw__upgrade_on_ready(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    if (u->successor_pid == 0 || u->handing_over)
        return;
    u->handing_over = true;
    u->deadline_ms = 0;
    bw_log(BW_LOG_INFO, "cluster: upgrade: new primary %ld is ready: handing over and draining "
           "%zu worker(s)", (long)u->successor_pid, bw_cluster_worker_count(c));
    char extra[64];
    snprintf(extra, sizeof extra, "\"successor\": %ld", (long)u->successor_pid);
    bw__cluster_event_line(c, "upgrade_ready", NULL, extra);
    bw__cluster_notify_hand_over(c, u->successor_pid);
    bw__pid_file_hand_over(c, u->successor_pid);
    bw__metrics_hand_over(c);
    bw__cluster_hand_over(c);
}

bool bw__upgrade_reap(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    int status;
    if (u->failed_pid != 0 && waitpid(u->failed_pid, &status, WNOHANG) == u->failed_pid)
        u->failed_pid = 0;
    if (u->successor_pid == 0 || waitpid(u->successor_pid, &status, WNOHANG) != u->successor_pid)
        return false;
    char why[128];
    if (WIFEXITED(status))
        snprintf(why, sizeof why, "the new primary (pid %ld) exited with status %d",
                 (long)u->successor_pid, WEXITSTATUS(status));
    else
        snprintf(why, sizeof why, "the new primary (pid %ld) was killed by signal %d",
                 (long)u->successor_pid, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (!u->handing_over) {
        snprintf(why + strlen(why), sizeof why - strlen(why), " before it was ready");
        roll_back(c, why);
        u->failed_pid = 0; /* already reaped */
        return true;
    }
    /* It took over and died while we drain: serve again. */
    bw_log(BW_LOG_ERROR, "cluster: upgrade: %s after it took over; the old primary supervises "
           "again", why);
    u->handing_over = false;
    u->successor_pid = 0;
    close_peer(c);
    bw__cluster_resume(c);
    return true;
}

void bw__upgrade_tick(bw_cluster *c, uint64_t now)
{
    bw__upgrade *u = &c->upgrade;
    if (u->successor_pid != 0 && !u->handing_over && u->deadline_ms != 0 && now >= u->deadline_ms) {
        char why[128];
        if (u->channel_lost)
            snprintf(why, sizeof why, "the new primary (pid %ld) closed its channel before it "
                     "was ready, and did not exit: killed", (long)u->successor_pid);
        else
            snprintf(why, sizeof why, "the new primary (pid %ld) was not ready within %llu ms: "
                     "killed", (long)u->successor_pid,
                     (unsigned long long)c->opts.upgrade_timeout_ms);
        kill(u->successor_pid, SIGKILL); /* its workers die with it (PDEATHSIG) */
        roll_back(c, why);
    }
}

/* The channel closed before READY: the successor is dying (its exit,
 * reaped soon, says why) or lost it (it can never be ready: killed after a
 * second, unless its exit comes first). */
#define BW__CHANNEL_GRACE_MS 1000

void bw__upgrade_peer_gone(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    if (u->successor_pid != 0 && !u->handing_over && !u->channel_lost) {
        u->channel_lost = true;
        uint64_t soon = uv_now(c->loop->uv) + BW__CHANNEL_GRACE_MS;
        if (u->deadline_ms == 0 || soon < u->deadline_ms)
            u->deadline_ms = soon;
    }
}

void bw__upgrade_close(bw_cluster *c)
{
    close_peer(c);
}

void bw__upgrade_free(bw_cluster *c)
{
    bw__upgrade *u = &c->upgrade;
    bw_free(u->peer);
    u->peer = NULL;
    bw_free(u->argv);
    bw_free(u->args);
    bw_free(u->path);
}
