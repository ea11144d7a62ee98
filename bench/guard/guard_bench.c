/*
 * bw-guard-bench: the cost of a guarded callback.
 *
 * Compares, in the same run, N direct calls of a small function against N
 * calls through bw_invoke(d, fn, arg) (guard armed with sigsetjmp, domain
 * entered and exited, next-tick queue checked). Prints nanoseconds per call
 * for each and the difference. Run it under `strace -c -f` with two values
 * of N to see that the number of system calls does not grow with N.
 *
 * usage: bw-guard-bench [N] [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bulwark.h"

static volatile unsigned long sink;

/* Not inlined: both loops pay for a real call. */
__attribute__((noinline)) static void work(void *arg)
{
    sink += (unsigned long)(uintptr_t)arg;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double direct(long n)
{
    void (*volatile fn)(void *) = work;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        fn((void *)1);
    return (now_ns() - t0) / (double)n;
}

static double guarded(bw_domain *d, long n)
{
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        bw_invoke(d, work, (void *)1);
    return (now_ns() - t0) / (double)n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000L;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || rounds <= 0 || rounds > 64)
        return 2;
    bw_loop *loop;
    if (bw_loop_new(&loop) != 0)
        return 1;
    bw_domain *d;
    if (bw_domain_new(&d) != 0)
        return 1;
    double dir[64], grd[64];
    for (int r = 0; r < rounds; r++) {
        dir[r] = direct(n);
        grd[r] = guarded(d, n);
    }
    qsort(dir, (size_t)rounds, sizeof dir[0], cmp);
    qsort(grd, (size_t)rounds, sizeof grd[0], cmp);
    double md = dir[rounds / 2], mg = grd[rounds / 2];
    printf("calls per round: %ld, rounds: %d (medians)\n", n, rounds);
    printf("direct call:            %6.2f ns\n", md);
    printf("bw_invoke (guard+domain): %6.2f ns\n", mg);
    printf("guard overhead:         %6.2f ns per call\n", mg - md);
    bw_domain_release(d);
    bw_loop_free(loop);
    return 0;
}
