/*
 * timer_fault: a domain catches a NULL dereference in a timer callback,
 * and the loop goes on.
 *
 * A domain is entered, a timer is started inside it (so the timer is bound
 * to the domain), and the timer's callback dereferences NULL. The fault is
 * caught by the guard around the callback and routed to the domain's error
 * handler, which prints the crash report. A second timer, started outside
 * any domain, fires afterwards: the loop kept running.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bulwark.h"

static volatile int *volatile nowhere = NULL;

static void on_error(bw_domain *d, bw_error *err, void *data)
{
    (void)d;
    (void)data;
    char report[4096];
    bw_error_format(err, report, sizeof report);
    printf("the domain caught:\n%s\n", report);
}

static void faulty_callback(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    printf("timer in the domain: dereferencing NULL...\n");
    *nowhere = 42; /* SIGSEGV */
    printf("never printed\n");
}

static void later_callback(bw_timer *t, void *data)
{
    (void)t;
    (void)data;
    printf("a later timer fired: the loop went on after the fault\n");
}

static void *start(void *arg)
{
    bw_loop *loop = arg;
    bw_timeout(loop, 10, faulty_callback, NULL, NULL);
    return NULL;
}

int main(void)
{
    bw_loop *loop;
    if (bw_loop_new(&loop) != 0)
        return 1;
    bw_domain *d;
    if (bw_domain_new(&d) != 0)
        return 1;
    bw_domain_set_name(d, "example");
    bw_domain_on_error(d, on_error, NULL);
    bw_domain_run(d, start, loop); /* the timer is bound to d */
    bw_timeout(loop, 50, later_callback, NULL, NULL);
    bw_loop_run(loop, UV_RUN_DEFAULT);
    bw_domain_release(d);
    int rc = bw_loop_free(loop);
    printf("loop closed: %s\n", bw_strerror(rc));
    return rc == 0 ? 0 : 1;
}
