/*
 * cluster_recycle.h: the pure helpers of worker recycling
 * (cluster_recycle.c), apart so that tests/unit/test_recycle.c can reach
 * them without the cluster's structures.
 */
#ifndef BULWARK_CLUSTER_RECYCLE_H
#define BULWARK_CLUSTER_RECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* A worker's request threshold: max + a uniform 0..jitter drawn from a
 * xorshift state (0 if max is 0; saturates at UINT64_MAX). */
BW__HIDDEN uint64_t bw__recycle_threshold(uint64_t max, uint64_t jitter, uint64_t *state);
/* The resident bytes in a /proc/<pid>/statm text ("size resident ..." in
 * pages); false if malformed or out of range. */
BW__HIDDEN bool bw__statm_rss(const char *text, uint64_t page_size, uint64_t *bytes);

#endif /* BULWARK_CLUSTER_RECYCLE_H */
