/*
 * test_listen_fd.c: bw_http_server_listen_fd owns the descriptor in every
 * case (http.h): when the call fails, the fd is closed at once, exactly
 * once. "Exactly once" is checked by opening a descriptor afterwards that
 * reuses the number and showing that nothing (the server's close, its
 * free, the loop's close) closes it later.
 */
#include "bw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bulwark.h"

static void u_handler(bw_http_request *req, bw_http_response *res, void *data)
{
    (void)req;
    (void)data;
    bw_http_response_send(res, 200, "text/plain", "ok", 2);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* listen_fd(fd) fails with a status; fd is closed once: a descriptor that
 * takes its number survives the server's close and free and the loop's. */
static void check_owned_once(bw_loop *loop, bw_http_server *srv, int fd)
{
    int rc = bw_http_server_listen_fd(srv, fd);
    BW_CHECK(rc < 0);
    errno = 0;
    BW_CHECK(!fd_open(fd));
    BW_CHECK_INT_EQ(errno, EBADF);
    int reuse = open("/dev/null", O_RDONLY | O_CLOEXEC);
    BW_CHECK_INT_EQ(reuse, fd); /* the lowest free number: the one just closed */
    bw_http_server_close(srv, NULL, NULL); /* BW_ENOTRUNNING if it never listened */
    BW_CHECK_INT_EQ(bw_loop_run(loop, UV_RUN_DEFAULT), 0);
    BW_CHECK(fd_open(reuse));
    BW_CHECK_INT_EQ(bw_http_server_free(srv), 0);
    BW_CHECK_INT_EQ(bw_loop_free(loop), 0);
    BW_CHECK(fd_open(reuse)); /* no second close of the number, ever */
    close(reuse);
}

static bw_http_server *u_server(bw_loop **loop)
{
    BW_CHECK_INT_EQ(bw_loop_new(loop), 0);
    bw_http_server *srv = NULL;
    BW_CHECK_INT_EQ(bw_http_server_new(*loop, NULL, u_handler, NULL, &srv), 0);
    return srv;
}

/* A UDP socket: uv_tcp_open takes it, listen(2) refuses it. */
BW_TEST(U_01, listen_fd_on_a_udp_socket_fails_and_closes_it_once)
{
    bw_loop *loop;
    bw_http_server *srv = u_server(&loop);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    BW_CHECK(fd >= 0);
    check_owned_once(loop, srv, fd);
}

/* Not a socket at all (a pipe's read end). */
BW_TEST(U_02, listen_fd_on_a_non_socket_fails_and_closes_it_once)
{
    bw_loop *loop;
    bw_http_server *srv = u_server(&loop);
    int p[2];
    BW_CHECK_INT_EQ(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    check_owned_once(loop, srv, p[0]);
}

/* A server that is closing takes no listener: the fd is closed all the
 * same (it leaked before). */
BW_TEST(U_03, listen_fd_on_a_closing_server_closes_the_fd)
{
    bw_loop *loop;
    bw_http_server *srv = u_server(&loop);
    BW_CHECK_INT_EQ(bw_http_server_listen(srv, "127.0.0.1", 0), 0);
    BW_CHECK_INT_EQ(bw_http_server_close(srv, NULL, NULL), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BW_CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    BW_CHECK_INT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    BW_CHECK_INT_EQ(listen(fd, 8), 0);
    BW_CHECK_INT_EQ(bw_http_server_listen_fd(srv, fd), BW_ENOTRUNNING);
    BW_CHECK(!fd_open(fd));
    int reuse = open("/dev/null", O_RDONLY | O_CLOEXEC);
    BW_CHECK_INT_EQ(reuse, fd);
    BW_CHECK_INT_EQ(bw_loop_run(loop, UV_RUN_DEFAULT), 0);
    BW_CHECK_INT_EQ(bw_http_server_free(srv), 0);
    BW_CHECK_INT_EQ(bw_loop_free(loop), 0);
    BW_CHECK(fd_open(reuse));
    close(reuse);
}
