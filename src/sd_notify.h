/*
 * sd_notify.h: the service manager's notification protocol, client side.
 *
 * systemd (and any manager speaking the same protocol) passes an AF_UNIX
 * datagram socket in NOTIFY_SOCKET: a path, or an abstract name written
 * with a leading '@'. Each state change is one datagram of newline-separated
 * KEY=VALUE assignments (READY=1, RELOADING=1, STOPPING=1, STATUS=...,
 * WATCHDOG=1, MAINPID=...). WATCHDOG_USEC asks for a WATCHDOG=1 at least
 * that often, from the process WATCHDOG_PID names when it is set.
 *
 * The protocol is a few lines of socket code and stable since 2010, so
 * bulwark speaks it itself rather than link libsystemd for one sendto():
 * no new run-time dependency, and the same code on a system without
 * systemd (where NOTIFY_SOCKET is simply absent).
 *
 * Parsing takes the variables' values as arguments, so the rules can be
 * tested without touching the environment.
 */
#ifndef BULWARK_SD_NOTIFY_H
#define BULWARK_SD_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "internal.h"

typedef struct bw__notify {
    int fd;                  /* -1: no manager to tell */
    struct sockaddr_un addr;
    socklen_t addr_len;
    uint64_t watchdog_usec;  /* 0: no watchdog asked for (or not of this pid) */
    int last_error;          /* the last failed send's -errno, logged once */
} bw__notify;

/*
 * Parse NOTIFY_SOCKET (`socket`, may be NULL), WATCHDOG_USEC and
 * WATCHDOG_PID (either may be NULL) for the process `self`, and open the
 * socket. 0 with n->fd -1 when there is no socket to speak to; 0 with the
 * socket open; -EINVAL for a value that is neither an absolute path nor an
 * '@' name, -ENAMETOOLONG for one that does not fit sockaddr_un, or the
 * -errno of socket(). A WATCHDOG_USEC that is not a positive number, or a
 * WATCHDOG_PID naming another process, means no watchdog.
 */
BW__HIDDEN int bw__notify_open(bw__notify *n, const char *socket, const char *watchdog_usec,
                               const char *watchdog_pid, pid_t self);

/* Send one datagram. 0 (also when there is nobody to tell), or -errno. */
BW__HIDDEN int bw__notify_send(bw__notify *n, const char *text);

/* Close the socket; n->fd is -1 after. */
BW__HIDDEN void bw__notify_close(bw__notify *n);

/* CLOCK_MONOTONIC in microseconds: what RELOADING=1 pairs with
 * MONOTONIC_USEC=. */
BW__HIDDEN uint64_t bw__notify_monotonic_usec(void);

#endif /* BULWARK_SD_NOTIFY_H */
