/*
 * http_decode.h: percent-decoding and query lookup (http_decode.c), for
 * the request accessors and for the tests and fuzz harness, which drive
 * them without a connection. Never installed.
 */
#ifndef BULWARK_HTTP_DECODE_H
#define BULWARK_HTTP_DECODE_H

#include <stddef.h>

#include "internal.h"

enum {
    BW__DECODE_PLUS = 1 << 0, /* '+' is a space (query strings) */
    BW__DECODE_PATH = 1 << 1, /* an encoded '/' is refused (paths) */
};
#define BW__QUERY_MAX_PAIRS 1024
/* Decode len bytes of `in` into out (room for len + 1: decoding never
 * grows), NUL-terminated; *out_len its length. 0, or BW_EPROTO for a '%'
 * without two hex digits, an encoded NUL, or (BW__DECODE_PATH) an encoded
 * '/'. */
BW__HIDDEN int bw__pct_decode(const char *in, size_t len, char *out, size_t *out_len,
                              unsigned flags);
/* The n-th pair of `query` named `name` (decoded names compared): its raw
 * value span. scratch: room for strlen(query) + 1. 0, -ENOENT, or
 * BW_ELIMIT past BW__QUERY_MAX_PAIRS pairs. */
BW__HIDDEN int bw__query_find(const char *query, const char *name, size_t n, const char **value,
                              size_t *value_len, char *scratch);

#endif /* BULWARK_HTTP_DECODE_H */
