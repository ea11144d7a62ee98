/*
 * test_proxy.c: the PROXY protocol header parser (proxy_proto.c): v1 and
 * v2 headers as the specification writes them, the verdicts on bytes that
 * have not all come, and the strictness the specification asks of a
 * receiver (anything else drops the connection).
 */
#include "bw_test.h"

#include <string.h>

#include "proxy_proto.h"

static int parse(const char *s, size_t len, bw__proxy_result *r)
{
    return bw__proxy_parse(s, len, r);
}

static int parse_str(const char *s, bw__proxy_result *r)
{
    return parse(s, strlen(s), r);
}

static const char *peer_of(const bw__proxy_result *r)
{
    static char buf[BW__PROXY_PEER_MAX];
    bw__proxy_format_peer(r, buf, sizeof buf);
    return buf;
}

BW_TEST(Y_01, v1_tcp4_and_tcp6_give_the_source_address_and_the_length)
{
    bw__proxy_result r;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
    BW_CHECK_INT_EQ(parse_str(h, &r), BW__PROXY_OK);
    BW_CHECK_INT_EQ((long long)r.consumed, (long long)(strchr(h, '\n') - h + 1));
    BW_CHECK(r.has_addr && !r.ipv6 && r.version == 1);
    BW_CHECK_STR_EQ(peer_of(&r), "192.0.2.1:56324");
    BW_CHECK_INT_EQ(r.dst_port, 443);
    BW_CHECK_INT_EQ(parse_str("PROXY TCP6 2001:DB8::1 ::1 0 65535\r\n", &r), BW__PROXY_OK);
    BW_CHECK(r.has_addr && r.ipv6);
    BW_CHECK_STR_EQ(peer_of(&r), "2001:db8::1:0");
    BW_CHECK_INT_EQ(r.dst_port, 65535);
}

BW_TEST(Y_02, v1_unknown_keeps_the_socket_peer)
{
    bw__proxy_result r;
    BW_CHECK_INT_EQ(parse_str("PROXY UNKNOWN\r\n", &r), BW__PROXY_OK);
    BW_CHECK(!r.has_addr);
    BW_CHECK_INT_EQ((long long)r.consumed, 15);
    const char *worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    BW_CHECK_INT_EQ((long long)strlen(worst), 107);
    BW_CHECK_INT_EQ(parse_str(worst, &r), BW__PROXY_OK);
    BW_CHECK(!r.has_addr);
}

BW_TEST(Y_03, v1_is_strict)
{
    bw__proxy_result r;
    const char *bad[] = {
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",    /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    /* leading zero in a port */
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",    /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    /* a trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       /* a lone LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx",      /* a lone CR */
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",   /* out of range */
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",       /* three numbers */
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",   /* five */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", /* port out of range */
        "PROXY TCP4 ::1 ::1 1 2\r\n",             /* family mismatch */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",  /* embedded IPv4 */
        "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a field missing */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWNX\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY\r\n",
        "GET / HTTP/1.1\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_str(bad[i], &r) != BW__PROXY_INVALID) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            BW_CHECK(false);
        }
    }
    char longest[120];
    memset(longest, 'x', sizeof longest);
    memcpy(longest, "PROXY UNKNOWN ", 14);
    BW_CHECK_INT_EQ(parse(longest, 106, &r), BW__PROXY_MORE);
    BW_CHECK_INT_EQ(parse(longest, 107, &r), BW__PROXY_INVALID); /* no CRLF in 107 bytes */
}

BW_TEST(Y_04, a_header_that_has_not_all_come_waits)
{
    bw__proxy_result r;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    for (size_t n = 0; n < strlen(h); n++)
        BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_MORE);
    /* ...but a wrong first byte is refused at once. */
    BW_CHECK_INT_EQ(parse("G", 1, &r), BW__PROXY_INVALID);
    BW_CHECK_INT_EQ(parse("PROXX", 5, &r), BW__PROXY_INVALID);
    BW_CHECK_INT_EQ(parse("\r\n\r\n\0\r\nQUIX", 12, &r), BW__PROXY_INVALID);
}

static const char sig[] = "\r\n\r\n\0\r\nQUIT\n";

/* A v2 header: ver_cmd, fam, then the block. */
static size_t v2(char *out, unsigned char ver_cmd, unsigned char fam, const void *block,
                 size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = (char)ver_cmd;
    out[13] = (char)fam;
    out[14] = (char)(blen >> 8);
    out[15] = (char)(blen & 0xff);
    memcpy(out + 16, block, blen);
    return 16 + blen;
}

BW_TEST(Y_05, v2_proxy_tcp4_and_tcp6)
{
    bw__proxy_result r;
    char h[256];
    const unsigned char a4[] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};
    size_t n = v2(h, 0x21, 0x11, a4, sizeof a4);
    memcpy(h + n, "GET", 3);
    BW_CHECK_INT_EQ(parse(h, n + 3, &r), BW__PROXY_OK);
    BW_CHECK_INT_EQ((long long)r.consumed, 28);
    BW_CHECK(r.has_addr && !r.ipv6 && r.version == 2);
    BW_CHECK_STR_EQ(peer_of(&r), "192.0.2.1:56324");
    for (size_t k = 0; k < n; k++)
        BW_CHECK_INT_EQ(parse(h, k, &r), BW__PROXY_MORE);
    unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8};
    a6[15] = 1;
    a6[32] = 0x30, a6[33] = 0x39;
    n = v2(h, 0x21, 0x21, a6, sizeof a6);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_OK);
    BW_CHECK(r.has_addr && r.ipv6);
    BW_CHECK_STR_EQ(peer_of(&r), "2001:db8::1:12345");
}

BW_TEST(Y_06, v2_local_unspec_and_unix_keep_the_socket_peer)
{
    bw__proxy_result r;
    char h[512];
    size_t n = v2(h, 0x20, 0x00, "", 0);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_OK);
    BW_CHECK(!r.has_addr);
    BW_CHECK_INT_EQ((long long)r.consumed, 16);
    /* LOCAL with an address block: skipped, whatever it says. */
    const unsigned char a4[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    n = v2(h, 0x20, 0x11, a4, sizeof a4);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_OK);
    BW_CHECK(!r.has_addr);
    n = v2(h, 0x21, 0x00, "junk", 4);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_OK);
    BW_CHECK(!r.has_addr);
    char un[216] = "/run/a.sock";
    n = v2(h, 0x21, 0x31, un, sizeof un);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_OK);
    BW_CHECK(!r.has_addr);
}

BW_TEST(Y_07, v2_tlvs_are_skipped_but_must_be_framed)
{
    bw__proxy_result r;
    char h[256];
    unsigned char b[32] = {127, 0, 0, 1, 127, 0, 0, 1, 0x30, 0x39, 0, 80,
                           0x04, 0x00, 0x02, 'o', 'k', 0x01, 0x00, 0x00};
    size_t n = v2(h, 0x21, 0x11, b, 20);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_OK);
    BW_CHECK_INT_EQ((long long)r.consumed, 36);
    BW_CHECK_STR_EQ(peer_of(&r), "127.0.0.1:12345");
    n = v2(h, 0x21, 0x11, b, 19); /* the second TLV cut */
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_INVALID);
    b[14] = 9; /* a TLV longer than the block */
    n = v2(h, 0x21, 0x11, b, 20);
    BW_CHECK_INT_EQ(parse(h, n, &r), BW__PROXY_INVALID);
}

BW_TEST(Y_08, v2_is_strict)
{
    bw__proxy_result r;
    char h[2048];
    const unsigned char a4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    BW_CHECK_INT_EQ(parse(h, v2(h, 0x11, 0x11, a4, 12), &r), BW__PROXY_INVALID); /* version 1 */
    BW_CHECK_INT_EQ(parse(h, v2(h, 0x22, 0x11, a4, 12), &r), BW__PROXY_INVALID); /* command 2 */
    BW_CHECK_INT_EQ(parse(h, v2(h, 0x21, 0x41, a4, 12), &r), BW__PROXY_INVALID); /* family 4 */
    BW_CHECK_INT_EQ(parse(h, v2(h, 0x21, 0x13, a4, 12), &r), BW__PROXY_INVALID); /* proto 3 */
    BW_CHECK_INT_EQ(parse(h, v2(h, 0x21, 0x11, a4, 11), &r), BW__PROXY_INVALID); /* short */
    BW_CHECK_INT_EQ(parse(h, v2(h, 0x21, 0x21, a4, 12), &r), BW__PROXY_INVALID);
    /* Longer than BW__PROXY_MAX: refused from its 16 bytes, not waited for. */
    char big[BW__PROXY_MAX];
    memset(big, 0, sizeof big);
    v2(h, 0x21, 0x00, big, sizeof big);
    BW_CHECK_INT_EQ(parse(h, 16, &r), BW__PROXY_INVALID);
    v2(h, 0x21, 0x00, big, BW__PROXY_MAX - 16);
    BW_CHECK_INT_EQ(parse(h, BW__PROXY_MAX - 1, &r), BW__PROXY_MORE);
    BW_CHECK_INT_EQ(parse(h, BW__PROXY_MAX, &r), BW__PROXY_OK);
}
