/*
 * http_decode.c: percent-decoding of request paths and query strings
 * (RFC 3986 2.1), and query parameters by name
 * (application/x-www-form-urlencoded: '&' between pairs, '=' between name
 * and value, '+' for a space). Pure functions on bytes, so the fuzz
 * harness drives them without a connection (fuzz/fuzz_decode.c); the
 * request accessors (http.h) put their results in the request's arena.
 */
#include <errno.h>
#include <string.h>

#include "http_decode.h"
#include "bulwark/status.h"

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int bw__pct_decode(const char *in, size_t len, char *out, size_t *out_len, unsigned flags)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch == '+' && (flags & BW__DECODE_PLUS)) {
            out[o++] = ' ';
            continue;
        }
        if (ch != '%') {
            out[o++] = (char)ch;
            continue;
        }
        if (len - i < 3)
            return BW_EPROTO; /* a '%' too close to the end for its two digits */
        int h = hex_value((unsigned char)in[i + 1]), l = hex_value((unsigned char)in[i + 2]);
        if (h < 0 || l < 0)
            return BW_EPROTO; /* '%' not followed by two hex digits */
        unsigned char v = (unsigned char)(h << 4 | l);
        if (v == '\0')
            return BW_EPROTO; /* %00 would cut the string short for every C caller */
        if (v == '/' && (flags & BW__DECODE_PATH))
            return BW_EPROTO; /* %2F: a '/' inside a segment would change the segments */
        out[o++] = (char)v;
        i += 2;
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

/* The n-th pair of a query whose name equals `name` (raw: compared after
 * decoding both), as raw spans. false if there is no such pair. A name
 * alone ("?flag") has an empty value. */
int bw__query_find(const char *query, const char *name, size_t n, const char **value,
                   size_t *value_len, char *scratch)
{
    size_t name_len = strlen(name);
    const char *p = query;
    size_t pairs = 0;
    while (*p != '\0') {
        if (++pairs > BW__QUERY_MAX_PAIRS)
            return BW_ELIMIT;
        const char *end = strchr(p, '&');
        size_t pair_len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', pair_len);
        size_t raw_name_len = eq != NULL ? (size_t)(eq - p) : pair_len;
        size_t decoded_len;
        int rc = bw__pct_decode(p, raw_name_len, scratch, &decoded_len, BW__DECODE_PLUS);
        if (rc == 0 && decoded_len == name_len && memcmp(scratch, name, name_len) == 0 &&
            n-- == 0) {
            *value = eq != NULL ? eq + 1 : p + pair_len;
            *value_len = eq != NULL ? pair_len - raw_name_len - 1 : 0;
            return 0;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return -ENOENT;
}
