/*
 * proxy_proto.h: the PROXY protocol header (versions 1 and 2) that a load
 * balancer sends before the client's bytes, so that the server learns the
 * real client's address (https://www.haproxy.org/download/2.6/doc/
 * proxy-protocol.txt). A pure function over a byte buffer: no transport,
 * no allocation, no log; http_conn.c feeds it the first bytes of a
 * connection (bw_http_options.proxy_protocol), fuzz/fuzz_proxy.c and
 * tests/unit/test_proxy.c feed it anything. Never installed.
 *
 * Strict, as the specification asks of a receiver: anything that does not
 * match it exactly is invalid, and the connection is dropped.
 *   v1  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", "PROXY TCP6 ...",
 *       "PROXY UNKNOWN[ anything]\r\n"; at most 107 bytes with the CRLF;
 *       single spaces; IPv4 as four decimal numbers without leading zeros,
 *       IPv6 as hexadecimal groups and colons (no embedded IPv4); ports
 *       0..65535 without leading zeros; the family must match the address.
 *   v2  the 12-byte signature, version 2, command LOCAL or PROXY, a known
 *       family and transport, a length that covers the family's address
 *       block, then TLVs (skipped, but their framing must fill the length
 *       exactly); at most BW__PROXY_MAX bytes in all.
 * LOCAL (v2, the proxy's own health check), UNKNOWN (v1), and v2's UNSPEC
 * or AF_UNIX families carry no usable client address: the result says so
 * (has_addr false) and the caller keeps the socket's own peer.
 */
#ifndef BULWARK_PROXY_PROTO_H
#define BULWARK_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* The longest header accepted (v2 with TLVs; v1 is at most 107 bytes). */
#define BW__PROXY_MAX 1024
/* Enough for "ffff:...:ffff:65535" and its NUL. */
#define BW__PROXY_PEER_MAX 48

enum bw__proxy_status {
    BW__PROXY_INVALID = -1, /* not a PROXY header: drop the connection */
    BW__PROXY_MORE = 0,     /* a valid beginning: wait for more bytes */
    BW__PROXY_OK = 1,       /* a whole header, `consumed` bytes long */
};

typedef struct bw__proxy_result {
    size_t consumed;   /* the header's length: the client's bytes follow it */
    uint8_t version;   /* 1 or 2 */
    bool has_addr;     /* false: LOCAL, UNKNOWN, UNSPEC, AF_UNIX: use the socket's */
    bool ipv6;         /* the addresses below are IPv6 (else IPv4, in the first 4 bytes) */
    uint8_t src[16];   /* network byte order */
    uint8_t dst[16];
    uint16_t src_port; /* host byte order */
    uint16_t dst_port;
} bw__proxy_result;

/* Parse the header at the start of buf[0..len). BW__PROXY_OK fills *out;
 * BW__PROXY_MORE: every byte so far is a valid beginning and fewer than
 * BW__PROXY_MAX have come (call again with more); BW__PROXY_INVALID: drop
 * the connection. Never reads beyond len. */
BW__HIDDEN int bw__proxy_parse(const void *buf, size_t len, bw__proxy_result *out);

/* The source address of r (has_addr) as "address:port", the form the
 * server uses for a socket's peer ("192.0.2.1:5000", "2001:db8::1:5000"),
 * into out (at least BW__PROXY_PEER_MAX bytes). Its length. */
BW__HIDDEN size_t bw__proxy_format_peer(const bw__proxy_result *r, char *out, size_t size);

#endif /* BULWARK_PROXY_PROTO_H */
