/*
 * test_recycle.c: the pure helpers of worker recycling (cluster_recycle.c):
 * the per-worker request threshold (max_requests + a random 0..jitter) and
 * the resident set read from /proc/<pid>/statm. The recycling itself is
 * tests/e2e/test_recycle.py's (M-01..).
 */
#include "bw_test.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "cluster_recycle.h"

BW_TEST(M_20, threshold_is_max_plus_at_most_jitter_and_spreads)
{
    uint64_t state = 12345;
    BW_CHECK_INT_EQ(bw__recycle_threshold(0, 50, &state), 0); /* off */
    BW_CHECK_INT_EQ(bw__recycle_threshold(1000, 0, &state), 1000);
    bool seen[101] = {false};
    size_t distinct = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t t = bw__recycle_threshold(1000, 100, &state);
        BW_CHECK(t >= 1000 && t <= 1100);
        if (!seen[t - 1000]) {
            seen[t - 1000] = true;
            distinct++;
        }
    }
    /* 2000 draws over 101 values: every value comes up (the chance that one
     * does not is below 1e-8), the ends included. */
    BW_CHECK_INT_EQ(distinct, 101);
    BW_CHECK(seen[0] && seen[100]);
    /* A zero state still draws (xorshift has a fixed point at 0). */
    uint64_t zero = 0;
    uint64_t a = bw__recycle_threshold(10, UINT64_MAX - 20, &zero);
    uint64_t b = bw__recycle_threshold(10, UINT64_MAX - 20, &zero);
    BW_CHECK(a != b && zero != 0);
    /* No wrap-around past UINT64_MAX. */
    state = 7;
    for (int i = 0; i < 100; i++)
        BW_CHECK(bw__recycle_threshold(UINT64_MAX - 5, UINT64_MAX, &state) >= UINT64_MAX - 5);
}

BW_TEST(M_21, statm_resident_pages_in_bytes)
{
    uint64_t bytes = 0;
    BW_CHECK(bw__statm_rss("12345 678 90 1 0 2 0\n", 4096, &bytes));
    BW_CHECK_INT_EQ(bytes, 678 * 4096);
    BW_CHECK(bw__statm_rss("1 2", 65536, &bytes));
    BW_CHECK_INT_EQ(bytes, 2 * 65536);
    BW_CHECK(!bw__statm_rss("", 4096, &bytes));
    BW_CHECK(!bw__statm_rss("12345", 4096, &bytes));
    BW_CHECK(!bw__statm_rss("12345 x 3", 4096, &bytes));
    BW_CHECK(!bw__statm_rss("-1 2 3", 4096, &bytes));
    BW_CHECK(!bw__statm_rss("1 99999999999999999999999 3", 4096, &bytes));
    BW_CHECK(!bw__statm_rss("1 9999999999999999 3", 1u << 20, &bytes)); /* bytes overflow */
    /* This process's own, as the primary reads a worker's. */
    char text[256];
    FILE *f = fopen("/proc/self/statm", "r");
    BW_CHECK(f != NULL);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    BW_CHECK(bw__statm_rss(text, (uint64_t)sysconf(_SC_PAGESIZE), &bytes));
    BW_CHECK(bytes > 64 * 1024 && bytes < (uint64_t)1 << 34);
}
