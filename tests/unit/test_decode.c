/*
 * test_decode.c: percent-decoding (RFC 3986 2.1) of paths and query
 * strings, and query parameters by name (http_decode.c, behind
 * bw_http_request_path_decoded and bw_http_request_query_param in http.h).
 * The rules are the header's: an invalid escape, %00, and in a path %2F
 * are refused (BW_EPROTO); '+' is a space in a query only; a name without
 * '=' has the empty value; names compare decoded.
 */
#include "bw_test.h"

#include <errno.h>
#include <string.h>

#include "http_decode.h"

/* Decode s; the status, and the result in out. */
static int decode(const char *s, unsigned flags, char *out)
{
    size_t n = 0;
    int rc = bw__pct_decode(s, strlen(s), out, &n, flags);
    if (rc == 0)
        BW_CHECK_INT_EQ((long long)n, (long long)strlen(out));
    return rc;
}

BW_TEST(Z_01, percent_escapes_decode_in_either_case)
{
    char out[64];
    BW_CHECK_INT_EQ(decode("/a%20b%2c%2C%7e", BW__DECODE_PATH, out), 0);
    BW_CHECK_STR_EQ(out, "/a b,,~");
    BW_CHECK_INT_EQ(decode("caf%C3%A9", 0, out), 0);
    BW_CHECK_STR_EQ(out, "caf\xc3\xa9");
    BW_CHECK_INT_EQ(decode("", 0, out), 0);
    BW_CHECK_STR_EQ(out, "");
}

BW_TEST(Z_02, invalid_escapes_nul_and_encoded_slash_are_refused)
{
    char out[64];
    const char *bad[] = {"%", "%2", "a%g0", "%0g", "%%20", "end%", "%00", "a%00b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        BW_CHECK_INT_EQ(decode(bad[i], 0, out), BW_EPROTO);
    /* A slash inside a segment changes the segments: refused in a path,
     * fine in a query. */
    BW_CHECK_INT_EQ(decode("/a%2Fb", BW__DECODE_PATH, out), BW_EPROTO);
    BW_CHECK_INT_EQ(decode("/a%2fb", BW__DECODE_PATH, out), BW_EPROTO);
    BW_CHECK_INT_EQ(decode("a%2Fb", BW__DECODE_PLUS, out), 0);
    BW_CHECK_STR_EQ(out, "a/b");
}

BW_TEST(Z_03, plus_is_a_space_in_a_query_only)
{
    char out[64];
    BW_CHECK_INT_EQ(decode("a+b%2B", BW__DECODE_PLUS, out), 0);
    BW_CHECK_STR_EQ(out, "a b+");
    BW_CHECK_INT_EQ(decode("/a+b", BW__DECODE_PATH, out), 0);
    BW_CHECK_STR_EQ(out, "/a+b");
}

/* The n-th value of name in q, decoded, or the status. */
static int param(const char *q, const char *name, size_t n, char *out)
{
    char scratch[256];
    const char *v;
    size_t len, dlen;
    int rc = bw__query_find(q, name, n, &v, &len, scratch);
    if (rc != 0)
        return rc;
    return bw__pct_decode(v, len, out, &dlen, BW__DECODE_PLUS);
}

BW_TEST(Z_04, query_parameters_by_name)
{
    char out[64];
    BW_CHECK_INT_EQ(param("a=1&b=2", "b", 0, out), 0);
    BW_CHECK_STR_EQ(out, "2");
    BW_CHECK_INT_EQ(param("a=1&b=2", "a", 0, out), 0);
    BW_CHECK_STR_EQ(out, "1");
    BW_CHECK_INT_EQ(param("a=1&b=2", "c", 0, out), -ENOENT);
    /* Repeated names, in order. */
    BW_CHECK_INT_EQ(param("x=1&y=0&x=2", "x", 1, out), 0);
    BW_CHECK_STR_EQ(out, "2");
    BW_CHECK_INT_EQ(param("x=1&y=0&x=2", "x", 2, out), -ENOENT);
    /* A name alone, an empty value, an empty pair, '=' inside a value. */
    BW_CHECK_INT_EQ(param("debug&a=1", "debug", 0, out), 0);
    BW_CHECK_STR_EQ(out, "");
    BW_CHECK_INT_EQ(param("a=&b=1", "a", 0, out), 0);
    BW_CHECK_STR_EQ(out, "");
    BW_CHECK_INT_EQ(param("&&a=1&", "a", 0, out), 0);
    BW_CHECK_STR_EQ(out, "1");
    BW_CHECK_INT_EQ(param("e=a=b", "e", 0, out), 0);
    BW_CHECK_STR_EQ(out, "a=b");
    /* Names compare decoded; values decode '+' and escapes. */
    BW_CHECK_INT_EQ(param("full+name=Ada+Lovelace&caf%C3%A9=1", "full name", 0, out), 0);
    BW_CHECK_STR_EQ(out, "Ada Lovelace");
    BW_CHECK_INT_EQ(param("caf%C3%A9=1", "caf\xc3\xa9", 0, out), 0);
    BW_CHECK_STR_EQ(out, "1");
    /* A bad escape in the value is the value's problem, not a miss. */
    BW_CHECK_INT_EQ(param("a=%zz", "a", 0, out), BW_EPROTO);
    BW_CHECK_INT_EQ(param("", "a", 0, out), -ENOENT);
}

BW_TEST(Z_05, the_number_of_pairs_looked_at_is_bounded)
{
    static char q[BW__QUERY_MAX_PAIRS * 4 + 16];
    size_t o = 0;
    for (int i = 0; i < BW__QUERY_MAX_PAIRS + 1; i++) {
        memcpy(q + o, "a=1&", 4);
        o += 4;
    }
    memcpy(q + o, "z=9", 4);
    char scratch[sizeof q];
    const char *v;
    size_t len;
    BW_CHECK_INT_EQ(bw__query_find(q, "z", 0, &v, &len, scratch), BW_ELIMIT);
    BW_CHECK_INT_EQ(bw__query_find(q, "a", 5, &v, &len, scratch), 0);
}
