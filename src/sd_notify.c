/*
 * sd_notify.c: the service manager's notification protocol (sd_notify.h).
 */
#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A decimal number that fills the whole string, with no sign or space. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

int bw__notify_open(bw__notify *n, const char *socket_name, const char *watchdog_usec,
                    const char *watchdog_pid, pid_t self)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    if (socket_name == NULL || socket_name[0] == '\0')
        return 0;
    size_t len = strlen(socket_name);
    if (socket_name[0] != '/' && socket_name[0] != '@')
        return -EINVAL;
    if (len >= sizeof n->addr.sun_path)
        return -ENAMETOOLONG;
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, socket_name, len);
    /* An abstract name: a leading NUL, and the length says where it ends. */
    if (socket_name[0] == '@')
        n->addr.sun_path[0] = '\0';
    n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                              (socket_name[0] == '/' ? 1 : 0));
    uint64_t usec, pid;
    if (parse_u64(watchdog_usec, &usec) && usec > 0 &&
        (watchdog_pid == NULL || (parse_u64(watchdog_pid, &pid) && pid == (uint64_t)self)))
        n->watchdog_usec = usec;
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        int rc = -errno;
        n->watchdog_usec = 0;
        return rc;
    }
    return 0;
}

int bw__notify_send(bw__notify *n, const char *text)
{
    if (n->fd < 0)
        return 0;
    /* MSG_NOSIGNAL: the manager going away must not kill the primary. */
    ssize_t r;
    do
        r = sendto(n->fd, text, strlen(text), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
                   n->addr_len);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

void bw__notify_close(bw__notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}

uint64_t bw__notify_monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
