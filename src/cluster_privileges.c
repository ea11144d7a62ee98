/*
 * cluster_privileges.c: the workers' user and group (cluster.h,
 * "Privileges"), the root policy, and the primary's pid file.
 *
 * The names are looked up once, in the primary (bw_cluster_new): a forked
 * child should not go through NSS (files opened, perhaps a daemon asked),
 * and a bad name is a configuration error best reported before anything
 * starts. The worker only makes system calls: setgroups, setgid, setuid,
 * in that order (each needs the privilege the next one drops), then checks
 * that they took and that root cannot be had back.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cluster_internal.h"

#define BW__MAX_GROUPS 1024

/* A number as a whole string (an id), or -1. */
static long long numeric_id(const char *s)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > 0xfffffffeULL)
        return -1;
    return (long long)v;
}

static int lookup_user(const char *name, struct passwd *pw, char *buf, size_t size,
                       bool *found)
{
    struct passwd *res = NULL;
    long long id = numeric_id(name);
    int rc = id >= 0 ? getpwuid_r((uid_t)id, pw, buf, size, &res)
                     : getpwnam_r(name, pw, buf, size, &res);
    *found = res != NULL;
    if (rc != 0)
        return -rc;
    if (res == NULL && id < 0)
        return -ENOENT;
    return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
    long long id = numeric_id(name);
    if (id >= 0) {
        *gid = (gid_t)id;
        return 0;
    }
    char buf[16384];
    struct group gr, *res = NULL;
    int rc = getgrnam_r(name, &gr, buf, sizeof buf, &res);
    if (rc != 0)
        return -rc;
    if (res == NULL)
        return -ENOENT;
    *gid = gr.gr_gid;
    return 0;
}

int bw__privileges_init(bw_cluster *c)
{
    const char *user = c->opts.user != NULL && *c->opts.user ? c->opts.user : NULL;
    const char *group = c->opts.group != NULL && *c->opts.group ? c->opts.group : NULL;
    /* No user: the workers keep the primary's uid, root's perhaps (a group
     * alone changes only their gid). */
    if (user == NULL && geteuid() == 0 && c->opts.allow_root != BW_YES) {
        if (c->opts.allow_root == BW_NO) {
            bw_log(BW_LOG_FATAL, "cluster: refusing to run workers as root: the primary runs as "
                   "root and no user is set (set `user`, or allow_root to run them as root)");
            return -EPERM;
        }
        bw_log(BW_LOG_WARN, "cluster: workers run as root (the primary does, and no user is "
               "set): set `user` to drop their privileges, or allow_root to silence this");
    }
    if (user == NULL && group == NULL)
        return 0;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    bool have_entry = false;
    struct passwd pw;
    char buf[16384];
    if (user != NULL) {
        int rc = lookup_user(user, &pw, buf, sizeof buf, &have_entry);
        if (rc != 0) {
            bw_log(BW_LOG_FATAL, "cluster: no user \"%s\" for the workers: %s", user,
                   bw_strerror(rc));
            return rc;
        }
        if (have_entry) {
            uid = pw.pw_uid;
            gid = pw.pw_gid;
        } else {
            uid = (uid_t)numeric_id(user);
            if (group == NULL) {
                bw_log(BW_LOG_FATAL, "cluster: user id %s has no entry in the user database: "
                       "set the workers' group too", user);
                return -EINVAL;
            }
        }
    }
    if (group != NULL) {
        int rc = lookup_group(group, &gid);
        if (rc != 0) {
            bw_log(BW_LOG_FATAL, "cluster: no group \"%s\" for the workers: %s", group,
                   bw_strerror(rc));
            return rc;
        }
    }
    /* Supplementary groups: the user's (as login does, initgroups), else
     * only the group. With an explicit group, the user's list keeps its
     * other groups and the primary group is the one given. */
    gid_t *groups = bw_malloc(BW__MAX_GROUPS * sizeof *groups);
    if (groups == NULL)
        return -ENOMEM;
    int n = 1;
    groups[0] = gid;
    if (have_entry) {
        n = BW__MAX_GROUPS;
        if (getgrouplist(pw.pw_name, gid, groups, &n) < 0) {
            bw_free(groups);
            bw_log(BW_LOG_FATAL, "cluster: user \"%s\" is in more than %d groups", user,
                   BW__MAX_GROUPS);
            return -EINVAL;
        }
    }
    c->run_groups = groups;
    c->nrun_groups = n;
    c->run_uid = uid;
    c->run_gid = gid;
    c->drop_privileges = true;
    snprintf(c->run_user, sizeof c->run_user, "%s", user != NULL ? user : "(unchanged)");
    bw_log(BW_LOG_INFO, "cluster: workers run as user %s (uid %ld), group %ld, %d group(s)",
           c->run_user, (long)uid, (long)gid, n);
    return 0;
}

void bw__privileges_free(bw_cluster *c)
{
    bw_free(c->run_groups);
    c->run_groups = NULL;
}

/* In the worker, right after fork. Only system calls and bw_log. */
void bw__privileges_drop(const bw_cluster *c, int worker_id, int channel_fd)
{
    if (!c->drop_privileges)
        return;
    uid_t uid = c->run_uid;
    gid_t gid = c->run_gid;
    const char *step = NULL;
    int err = 0;
    bool already = getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid;
    /* An unprivileged primary may "drop" to what it is already; setgroups
     * would fail there (EPERM) for nothing. */
    if (!(already && geteuid() != 0)) {
        if (setgroups((size_t)c->nrun_groups, c->run_groups) != 0)
            step = "setgroups", err = -errno;
        else if (setgid(gid) != 0)
            step = "setgid", err = -errno;
        else if (setuid(uid) != 0)
            step = "setuid", err = -errno;
    }
    if (step == NULL && (getuid() != uid || geteuid() != uid || getgid() != gid ||
                         getegid() != gid))
        step = "checking the ids", err = BW_ESTATE;
    if (step == NULL && uid != 0 && setuid(0) == 0)
        step = "checking that root is out of reach (setuid(0) succeeded)", err = BW_ESTATE;
    if (step == NULL && gid != 0 && uid != 0 && setgid(0) == 0)
        step = "checking that group root is out of reach (setgid(0) succeeded)", err = BW_ESTATE;
    if (step != NULL) {
        bw_log(BW_LOG_FATAL, "worker %d: cannot drop privileges to user %s (uid %ld, gid %ld): "
               "%s: %s; exiting with status %d", worker_id, c->run_user, (long)uid, (long)gid,
               step, bw_strerror(err), BW_EXIT_PRIVILEGES);
        char why[160];
        int n = snprintf(why, sizeof why, "cannot drop privileges to user %s: %s: %s",
                         c->run_user, step, bw_strerror(err));
        bw__msg_send(channel_fd, BW__MSG_FAILED, why,
                     n < 0 ? 0 : (size_t)n < sizeof why ? (size_t)n : sizeof why - 1);
        _exit(BW_EXIT_PRIVILEGES);
    }
    /* A change of credentials clears the parent-death signal: set it again,
     * and make sure the primary did not die meanwhile. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != c->primary_pid)
        _exit(0);
}

void bw__worker_failed(bw_worker *w, const char *why, size_t len)
{
    char text[160];
    snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1), why);
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 32)
            *p = '?';
    snprintf(w->failure, sizeof w->failure, "; it reported: %s", text);
}

const char *bw__worker_failure_hint(const bw_worker *w)
{
    if (w->failure[0] != '\0')
        return w->failure;
    if (w->term_signal == 0 && w->exit_code == BW_EXIT_PRIVILEGES)
        return "; it could not drop its privileges";
    return "";
}

/* ---- The pid file ------------------------------------------------------ */

/* Write `pid` into `path` atomically (a temporary file renamed over it). */
static int write_pid(const char *path, pid_t pid)
{
    size_t len = strlen(path);
    char *tmp = bw_malloc(len + 32);
    if (tmp == NULL)
        return -ENOMEM;
    snprintf(tmp, len + 32, "%s.%ld.tmp", path, (long)getpid());
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)pid);
    int rc = 0;
    errno = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
    } else {
        if (write(fd, text, (size_t)n) != n)
            rc = errno != 0 ? -errno : -EIO;
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -errno;
        if (rc != 0)
            unlink(tmp);
    }
    bw_free(tmp);
    return rc;
}

int bw__pid_file_write(bw_cluster *c)
{
    const char *path = c->opts.pid_file;
    if (path == NULL || *path == '\0')
        return 0;
    size_t len = strlen(path);
    char *copy = bw_malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, path, len + 1);
    /* A new primary started by an upgrade is not the service's yet: its
     * predecessor writes its pid at the handover (bw__pid_file_hand_over),
     * so that a failed upgrade leaves the file naming the primary that
     * still serves. */
    int rc = c->upgrade.successor ? 0 : write_pid(copy, getpid());
    if (rc != 0) {
        bw_free(copy);
        return rc;
    }
    bw_free(c->pid_file);
    c->pid_file = copy;
    return 0;
}

void bw__pid_file_hand_over(bw_cluster *c, pid_t successor)
{
    if (c->pid_file == NULL)
        return;
    int rc = write_pid(c->pid_file, successor);
    if (rc != 0)
        bw_log(BW_LOG_ERROR, "cluster: cannot write the new primary's pid %ld into %s: %s",
               (long)successor, c->pid_file, bw_strerror(rc));
}

void bw__pid_file_remove(bw_cluster *c)
{
    if (c->pid_file == NULL)
        return;
    char text[32] = {0};
    int fd = open(c->pid_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        /* Ours only: a successor may have written its own meanwhile. */
        if (n > 0 && atol(text) == (long)getpid() && getpid() == c->primary_pid)
            unlink(c->pid_file);
    }
    bw_free(c->pid_file);
    c->pid_file = NULL;
}
