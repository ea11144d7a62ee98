/*
 * test_notify.c: the client side of the service manager's notification
 * protocol (sd_notify.c): which NOTIFY_SOCKET, WATCHDOG_USEC and
 * WATCHDOG_PID values are accepted, and that a datagram reaches a socket
 * bound at the path or the abstract name given. The protocol as the primary
 * speaks it is tests/e2e/test_systemd.py's.
 */
#include "bw_test.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd_notify.h"

BW_TEST(N_10, no_socket_means_nobody_to_tell)
{
    bw__notify n;
    BW_CHECK_INT_EQ(bw__notify_open(&n, NULL, "1000", NULL, getpid()), 0);
    BW_CHECK_INT_EQ(n.fd, -1);
    BW_CHECK_INT_EQ((long long)n.watchdog_usec, 0);
    BW_CHECK_INT_EQ(bw__notify_send(&n, "READY=1"), 0);
    BW_CHECK_INT_EQ(bw__notify_open(&n, "", NULL, NULL, getpid()), 0);
    BW_CHECK_INT_EQ(n.fd, -1);
    bw__notify_close(&n);
}

BW_TEST(N_11, only_absolute_paths_and_abstract_names)
{
    bw__notify n;
    BW_CHECK_INT_EQ(bw__notify_open(&n, "run/notify", NULL, NULL, getpid()), -EINVAL);
    BW_CHECK_INT_EQ(n.fd, -1);
    BW_CHECK_INT_EQ(bw__notify_open(&n, "./x", NULL, NULL, getpid()), -EINVAL);
    char longer[200];
    memset(longer, 'a', sizeof longer - 1);
    longer[0] = '/';
    longer[sizeof longer - 1] = '\0';
    BW_CHECK_INT_EQ(bw__notify_open(&n, longer, NULL, NULL, getpid()), -ENAMETOOLONG);
    BW_CHECK_INT_EQ(n.fd, -1);
}

BW_TEST(N_12, watchdog_only_for_a_positive_number_and_this_pid)
{
    struct {
        const char *usec, *pid;
        long long want;
    } cases[] = {
        {"200000", NULL, 200000}, {"1", NULL, 1},       {"0", NULL, 0},
        {"-5", NULL, 0},          {" 5", NULL, 0},      {"5x", NULL, 0},
        {"", NULL, 0},            {NULL, NULL, 0},      {"99999999999999999999", NULL, 0},
        {"500", "self", 500},     {"500", "1", 0},      {"500", "", 0},
        {"500", "x", 0},
    };
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bw__notify n;
        const char *pid = cases[i].pid != NULL && strcmp(cases[i].pid, "self") == 0 ? self
                                                                                     : cases[i].pid;
        BW_CHECK_INT_EQ(bw__notify_open(&n, "@bulwark-n12", cases[i].usec, pid, getpid()), 0);
        if ((long long)n.watchdog_usec != cases[i].want)
            bw_test_fail(__FILE__, __LINE__, "WATCHDOG_USEC=%s WATCHDOG_PID=%s: %llu, want %lld",
                         cases[i].usec ? cases[i].usec : "(unset)", pid ? pid : "(unset)",
                         (unsigned long long)n.watchdog_usec, cases[i].want);
        bw__notify_close(&n);
    }
}

/* A manager's end: a datagram socket bound at `name` (path or @name). */
static int bind_manager(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    BW_CHECK(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(a.sun_path, name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        a.sun_path[0] = '\0';
    else
        alen++;
    BW_CHECK_INT_EQ(bind(fd, (struct sockaddr *)&a, alen), 0);
    return fd;
}

static void check_delivery(const char *name)
{
    int manager = bind_manager(name);
    bw__notify n;
    BW_CHECK_INT_EQ(bw__notify_open(&n, name, NULL, NULL, getpid()), 0);
    BW_CHECK(n.fd >= 0);
    BW_CHECK_INT_EQ(bw__notify_send(&n, "READY=1\nSTATUS=serving"), 0);
    char got[64] = {0};
    BW_CHECK_INT_EQ(recv(manager, got, sizeof got - 1, 0), 22);
    BW_CHECK_STR_EQ(got, "READY=1\nSTATUS=serving");
    bw__notify_close(&n);
    BW_CHECK_INT_EQ(n.fd, -1);
    close(manager);
}

BW_TEST(N_13, a_datagram_reaches_a_path_and_an_abstract_name)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/bulwark-n13-%ld.sock", (long)getpid());
    unlink(path);
    check_delivery(path);
    unlink(path);
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@bulwark-n13-%ld", (long)getpid());
    check_delivery(abstract);
}

BW_TEST(N_14, a_manager_gone_is_a_status_not_a_signal)
{
    /* Nobody bound at the name: the send fails with a status (no SIGPIPE,
     * nothing raised); the primary logs it once and goes on. */
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@bulwark-n14-nobody-%ld", (long)getpid());
    bw__notify n;
    BW_CHECK_INT_EQ(bw__notify_open(&n, abstract, NULL, NULL, getpid()), 0);
    BW_CHECK_INT_EQ(bw__notify_send(&n, "WATCHDOG=1"), -ECONNREFUSED);
    bw__notify_close(&n);
}
