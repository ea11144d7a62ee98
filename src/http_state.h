/*
 * http_state.h: the framing of the state a connection carries to another
 * process's server (bw_http_server_set_handoff / bw_http_server_adopt): a
 * fixed header, the peer's address as text, then the bytes read and not
 * parsed. Both ends are the same machine, in practice the same build:
 * native byte order; the magic and the version refuse anything else.
 * Shared by http_conn.c, which writes and reads it, and the tests and fuzz
 * harness, which forge it. Never installed.
 */
#ifndef BULWARK_HTTP_STATE_H
#define BULWARK_HTTP_STATE_H

#include <stdint.h>

#define BW__STATE_MAGIC 0x31435742u /* "BWC1" */
#define BW__STATE_VERSION 1

typedef struct bw__state_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t peer_len;
    uint32_t requests_begun;
    uint32_t head_age_ms;      /* since the current head's clock started (no request yet) */
    uint32_t deadline_left_ms; /* left on its timeout (keep-alive, or headers) */
    uint32_t bytes_len;
} bw__state_hdr;

#endif /* BULWARK_HTTP_STATE_H */
