/*
 * fuzz_proxy: the PROXY protocol header parser (proxy_proto.c) on
 * arbitrary bytes. Checked beyond "no crash":
 *   - a header found is no longer than the input nor BW__PROXY_MAX, and
 *     every shorter prefix of it asks for more bytes (the bytes that come
 *     one by one from a socket reach the same verdict as all at once);
 *   - an invalid input stays invalid whatever follows it, and an input
 *     that asks for more is shorter than BW__PROXY_MAX;
 *   - a header found with an address formats it within its bounds.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bw__proxy_result r, again;
    int st = bw__proxy_parse(data, size, &r);
    if (st == BW__PROXY_MORE && size >= BW__PROXY_MAX)
        fuzz_crash("asks for more beyond the longest header");
    if (st == BW__PROXY_OK) {
        if (r.consumed == 0 || r.consumed > size || r.consumed > BW__PROXY_MAX)
            fuzz_crash("a header longer than its input");
        for (size_t n = 0; n < r.consumed; n++)
            if (bw__proxy_parse(data, n, &again) != BW__PROXY_MORE)
                fuzz_crash("a prefix of a header is not asked to wait");
        if (bw__proxy_parse(data, r.consumed, &again) != BW__PROXY_OK ||
            again.consumed != r.consumed || again.has_addr != r.has_addr)
            fuzz_crash("the header alone reads differently");
        if (r.has_addr) {
            char peer[BW__PROXY_PEER_MAX];
            size_t n = bw__proxy_format_peer(&r, peer, sizeof peer);
            if (n == 0 || n >= sizeof peer || strlen(peer) != n)
                fuzz_crash("a peer that does not fit");
        }
    }
    if (st == BW__PROXY_INVALID) {
        /* Invalid from some prefix on: no longer input makes it valid. */
        size_t n = 0;
        while (n < size && bw__proxy_parse(data, n, &again) == BW__PROXY_MORE)
            n++;
        if (bw__proxy_parse(data, n, &again) != BW__PROXY_INVALID)
            fuzz_crash("a verdict that changes with the bytes after it");
    }
    return 0;
}
