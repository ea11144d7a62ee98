/*
 * cluster_channel.c: the primary-worker channel: one message per
 * SOCK_SEQPACKET packet (a type byte and a payload), sent and received the
 * same way on both sides.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cluster_internal.h"

uint64_t bw__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bw__msg_send(int fd, int type, const void *payload, size_t len)
{
    char buf[BW__MSG_MAX];
    if (fd < 0)
        return -EPIPE;
    if (len > sizeof buf - 1)
        return -EMSGSIZE;
    buf[0] = (char)type;
    if (len > 0)
        memcpy(buf + 1, payload, len);
    ssize_t n;
    do
        n = send(fd, buf, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

/* recv() returns 0 both at the end of the stream and for an empty packet; a
 * hang-up is the one that leaves the socket shut down for reading. */
bool bw__msg_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) != 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

bool bw__msg_receive(int fd, const bool *connected, bw__msg_fn on_msg, void *ctx)
{
    char buf[BW__MSG_MAX + 1];
    /* A bounded batch: a chatty peer cannot keep the loop to itself. */
    for (int i = 0; i < 64 && *connected; i++) {
        ssize_t n = recv(fd, buf, BW__MSG_MAX, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = '\0';
            on_msg(ctx, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        /* 0 is also what an empty packet reads as: malformed, ignored (C-11). */
        if (n == 0 && !bw__msg_hung_up(fd))
            continue;
        return false;
    }
    return true;
}
