/* A program built against the installed packages (tests/e2e/test_packages.py):
 * it prints bulwark's version, runs a timer on a bulwark loop, and calls
 * libuv directly, which the package must make available (bulwark.pc's
 * Requires, the CMake target's link interface). */
#include <stdio.h>
#include <string.h>

#include <bulwark.h>

static int fired;

static void on_timer(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    fired = 1;
}

int main(void)
{
    bw_loop *loop;
    if (bw_loop_new(&loop) != 0 || bw_timeout(loop, 1, on_timer, NULL, NULL) != 0)
        return 1;
    bw_loop_run(loop, UV_RUN_DEFAULT);
    if (bw_loop_free(loop) != 0)
        return 1;
    printf("bulwark %s, libuv %s, timer %s\n", bw_version(), uv_version_string(),
           fired ? "fired" : "did not fire");
    return fired ? 0 : 1;
}
