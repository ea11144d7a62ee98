/*
 * proxy_proto.c: the PROXY protocol header parser (proxy_proto.h).
 * Written from the specification's text; every rule it states for a
 * receiver is checked here, in order, over bytes that may not all have
 * arrived yet.
 */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

#define V1_MAX 107 /* the worst case, CRLF included */

/* ---- Version 1 --------------------------------------------------------- */

/* A decimal number in [0, max] without leading zeros, s[0..n). */
static bool decimal(const char *s, size_t n, unsigned max, unsigned *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool ipv4_text(const char *s, size_t n, uint8_t out[4])
{
    size_t at = 0;
    for (int part = 0; part < 4; part++) {
        size_t end = at;
        while (end < n && s[end] != '.')
            end++;
        unsigned v;
        if (!decimal(s + at, end - at, 255, &v) || end - at > 3)
            return false;
        out[part] = (uint8_t)v;
        if (part < 3 && end == n)
            return false; /* fewer than four numbers */
        at = end + 1;
    }
    return at == n + 1; /* nothing after the fourth */
}

static bool ipv6_text(const char *s, size_t n, uint8_t out[16])
{
    char tmp[40];
    if (n < 2 || n > 39)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
        if (!hex && ch != ':')
            return false; /* no embedded IPv4, no zone, no brackets */
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, out) == 1;
}

/* The next space-separated field of line[*at..n): its start and length.
 * Exactly one space separates fields; the last one ends the line. */
static bool field(const char *line, size_t n, size_t *at, const char **f, size_t *flen, bool last)
{
    size_t start = *at, end = start;
    while (end < n && line[end] != ' ')
        end++;
    if (end == start || (last ? end != n : end == n))
        return false;
    *f = line + start;
    *flen = end - start;
    *at = end + 1;
    return true;
}

/* A whole v1 line, line[0..n) without its CRLF. */
static bool v1_line(const char *line, size_t n, bw__proxy_result *out)
{
    size_t at = sizeof v1_sig - 1;
    if (n - at == 7 && memcmp(line + at, "UNKNOWN", 7) == 0)
        return true;
    if (n - at > 7 && memcmp(line + at, "UNKNOWN ", 8) == 0)
        return true; /* the rest is to be ignored */
    const char *f[5];
    size_t fl[5];
    for (int i = 0; i < 5; i++)
        if (!field(line, n, &at, &f[i], &fl[i], i == 4))
            return false;
    bool v6;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        v6 = false;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        v6 = true;
    else
        return false;
    bool ok = v6 ? ipv6_text(f[1], fl[1], out->src) && ipv6_text(f[2], fl[2], out->dst)
                 : ipv4_text(f[1], fl[1], out->src) && ipv4_text(f[2], fl[2], out->dst);
    unsigned sp, dp;
    if (!ok || !decimal(f[3], fl[3], 65535, &sp) || !decimal(f[4], fl[4], 65535, &dp))
        return false;
    out->has_addr = true;
    out->ipv6 = v6;
    out->src_port = (uint16_t)sp;
    out->dst_port = (uint16_t)dp;
    return true;
}

static int parse_v1(const char *p, size_t len, bw__proxy_result *out)
{
    size_t scan = len < V1_MAX ? len : V1_MAX;
    for (size_t i = 0; i < scan; i++) {
        if (p[i] == '\n')
            return BW__PROXY_INVALID; /* a lone LF */
        if (p[i] != '\r')
            continue;
        if (i + 1 == len)
            return BW__PROXY_MORE;
        if (p[i + 1] != '\n')
            return BW__PROXY_INVALID; /* a lone CR */
        out->version = 1;
        out->consumed = i + 2;
        return v1_line(p, i, out) ? BW__PROXY_OK : BW__PROXY_INVALID;
    }
    return len < V1_MAX ? BW__PROXY_MORE : BW__PROXY_INVALID;
}

/* ---- Version 2 --------------------------------------------------------- */

static int parse_v2(const uint8_t *p, size_t len, bw__proxy_result *out)
{
    if (len < 16)
        return BW__PROXY_MORE;
    uint8_t ver = p[12] >> 4, cmd = p[12] & 0x0F, fam = p[13] >> 4, proto = p[13] & 0x0F;
    size_t body = (size_t)p[14] << 8 | p[15];
    if (ver != 2 || cmd > 1 || fam > 3 || proto > 2)
        return BW__PROXY_INVALID;
    if (16 + body > BW__PROXY_MAX)
        return BW__PROXY_INVALID;
    size_t addr_len = 0;
    if (fam != 0 && proto != 0)
        addr_len = fam == 1 ? 12 : fam == 2 ? 36 : 216;
    if (body < addr_len)
        return BW__PROXY_INVALID; /* too short for its own family */
    if (len < 16 + body)
        return BW__PROXY_MORE;
    /* Behind a known address block, TLVs, which must fill the rest
     * exactly. (UNSPEC's block has no known layout: it is skipped.) */
    if (addr_len > 0) {
        size_t at = 16 + addr_len, end = 16 + body;
        while (at < end) {
            if (end - at < 3)
                return BW__PROXY_INVALID;
            size_t vlen = (size_t)p[at + 1] << 8 | p[at + 2];
            if (end - at - 3 < vlen)
                return BW__PROXY_INVALID;
            at += 3 + vlen;
        }
    }
    out->version = 2;
    out->consumed = 16 + body;
    if (cmd == 0 || addr_len == 0 || fam == 3)
        return BW__PROXY_OK; /* LOCAL, UNSPEC, AF_UNIX: the socket's own peer */
    const uint8_t *a = p + 16;
    size_t alen = fam == 1 ? 4 : 16;
    memcpy(out->src, a, alen);
    memcpy(out->dst, a + alen, alen);
    out->src_port = (uint16_t)(a[2 * alen] << 8 | a[2 * alen + 1]);
    out->dst_port = (uint16_t)(a[2 * alen + 2] << 8 | a[2 * alen + 3]);
    out->ipv6 = fam == 2;
    out->has_addr = true;
    return BW__PROXY_OK;
}

/* ---- Either ------------------------------------------------------------ */

int bw__proxy_parse(const void *buf, size_t len, bw__proxy_result *out)
{
    const uint8_t *p = buf;
    memset(out, 0, sizeof *out);
    if (len == 0)
        return BW__PROXY_MORE;
    /* Which one, from as few bytes as have come: a first byte that begins
     * neither signature is refused at once. */
    if (p[0] == v2_sig[0]) {
        size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
        if (memcmp(p, v2_sig, n) != 0)
            return BW__PROXY_INVALID;
        return parse_v2(p, len, out);
    }
    size_t n = len < sizeof v1_sig - 1 ? len : sizeof v1_sig - 1;
    if (memcmp(p, v1_sig, n) != 0)
        return BW__PROXY_INVALID;
    return parse_v1((const char *)p, len, out);
}

size_t bw__proxy_format_peer(const bw__proxy_result *r, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (inet_ntop(r->ipv6 ? AF_INET6 : AF_INET, r->src, ip, sizeof ip) == NULL)
        strcpy(ip, "?");
    int n = snprintf(out, size, "%s:%u", ip, (unsigned)r->src_port);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}
