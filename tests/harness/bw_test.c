/*
 * bw_test.c: the harness's main, checks and child-process helpers.
 */
#include "bw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const bw_test_case __start_bw_tests[];
extern const bw_test_case __stop_bw_tests[];

void bw_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

bw_loop *bw_test_loop(void)
{
    bw_loop *loop = NULL;
    int rc = bw_loop_new(&loop);
    if (rc != 0)
        bw_test_fail(__FILE__, __LINE__, "bw_loop_new: %s", bw_strerror(rc));
    return loop;
}

static void made(const char *file, int line, const char *what, int rc)
{
    if (rc != 0)
        bw_test_fail(file, line, "%s: %s", what, bw_strerror(rc));
}

bw_domain *bw_test__domain(const char *file, int line)
{
    bw_domain *d;
    made(file, line, "bw_domain_new", bw_domain_new(&d));
    return d;
}

bw_emitter *bw_test__emitter(const char *file, int line)
{
    bw_emitter *e;
    made(file, line, "bw_emitter_new", bw_emitter_new(&e));
    return e;
}

bw_bound *bw_test__bind(const char *file, int line, bw_domain *d, bw_bound_fn fn, void *ctx)
{
    bw_bound *b;
    made(file, line, "bw_domain_bind", bw_domain_bind(d, fn, ctx, &b));
    return b;
}

bw_bound *bw_test__intercept(const char *file, int line, bw_domain *d, bw_intercept_fn fn,
                             void *ctx)
{
    bw_bound *b;
    made(file, line, "bw_domain_intercept", bw_domain_intercept(d, fn, ctx, &b));
    return b;
}

bw_resource *bw_test__resource(const char *file, int line, void *ptr, bw_resource_close_fn close)
{
    bw_resource *r;
    made(file, line, "bw_resource_new", bw_resource_new(ptr, close, &r));
    return r;
}

void bw_test_loop_finish(bw_loop *loop)
{
    bw_loop_run(loop, UV_RUN_DEFAULT);
    int rc = bw_loop_free(loop);
    if (rc != 0)
        bw_test_fail(__FILE__, __LINE__, "the loop did not close cleanly: %s", bw_strerror(rc));
}

void bw_test_main(bw_task_fn fn, void *arg)
{
    bw_invoke(NULL, fn, arg);
}

static void no_cores(void)
{
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bw_test_child bw_test_fork(void (*fn)(void *), void *arg, int timeout_s)
{
    bw_test_child c = {0};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        bw_test_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        bw_test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        no_cores();
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        setvbuf(stdout, NULL, _IONBF, 0);
        fn(arg);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    c.out = malloc(cap);
    double deadline = now_s() + timeout_s;
    for (;;) {
        int left_ms = (int)((deadline - now_s()) * 1000);
        if (left_ms <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            c.out[len] = '\0';
            bw_test_fail(__FILE__, __LINE__, "child timed out after %ds; output:\n%s", timeout_s,
                         c.out);
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int r = poll(&p, 1, left_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        if (len + 1024 >= cap) {
            cap *= 2;
            c.out = realloc(c.out, cap);
        }
        ssize_t n = read(fds[0], c.out + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    c.out[len] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status)) {
        c.exited = true;
        c.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        c.signaled = true;
        c.sig = WTERMSIG(status);
    }
    return c;
}

void bw_test_child_free(bw_test_child *c)
{
    free(c->out);
    c->out = NULL;
}

static int list_tests(void)
{
    for (const bw_test_case *tc = __start_bw_tests; tc < __stop_bw_tests; tc++)
        printf("%s_%s\n", tc->id, tc->name);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s --list | ID_name\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "--list") == 0)
        return list_tests();
    no_cores();
    /* Unbuffered output: a check ends the process with _exit. */
    setvbuf(stdout, NULL, _IONBF, 0);
    for (const bw_test_case *tc = __start_bw_tests; tc < __stop_bw_tests; tc++) {
        char full[256];
        snprintf(full, sizeof full, "%s_%s", tc->id, tc->name);
        if (strcmp(full, argv[1]) == 0) {
            tc->fn();
            printf("PASS %s\n", full);
            return 0;
        }
    }
    fprintf(stderr, "no such test: %s\n", argv[1]);
    return 2;
}
