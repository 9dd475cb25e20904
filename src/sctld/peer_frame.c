/*
 * peer_frame.c: the pure codec of the Raft peer transport (peer.h has the frame
 * layout): frame headers and the HELLO body.  No sockets and no event loop, so
 * the unit tests (tests/unit/test_peer.c) and the fuzzer (tests/fuzz/fuzz_peer.c)
 * take it alone; peer.c moves the bytes.
 */
#include "sctld/peer.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"

void peer_frame_encode(enum peer_frame_type type, const uint8_t *body, size_t len,
                       uint8_t hdr[PEER_FRAME_HDR])
{
    sc_put_u32le(hdr, (uint32_t)len);
    hdr[4] = PEER_VERSION;
    hdr[5] = (uint8_t)type;
    sc_put_u32le(hdr + 6, sc_crc32c(0, body, len));
}

long peer_frame_size(const uint8_t *p, size_t n)
{
    if (n < PEER_FRAME_HDR)
        return 0;
    uint32_t l = sc_get_u32le(p);
    if (l > PEER_MAX_FRAME || p[4] != PEER_VERSION ||
        (p[5] != PEER_FRAME_HELLO && p[5] != PEER_FRAME_RAFT))
        return -SC_E_CORRUPT;
    return (long)(PEER_FRAME_HDR + (size_t)l);
}

long peer_frame_parse(const uint8_t *p, size_t n, enum peer_frame_type *type, const uint8_t **body,
                      size_t *len)
{
    long k = peer_frame_size(p, n);
    if (k <= 0 || n < (size_t)k)
        return k < 0 ? k : 0;
    size_t l = (size_t)k - PEER_FRAME_HDR;
    if (sc_crc32c(0, p + PEER_FRAME_HDR, l) != sc_get_u32le(p + 6))
        return -SC_E_CORRUPT;
    *type = p[5];
    *body = p + PEER_FRAME_HDR;
    *len = l;
    return k;
}

void peer_hello_encode(const struct peer_hello *h, struct sc_buf *out)
{
    sc_buf_put_u64le(out, h->id);
    sc_buf_put_bytes(out, h->name, strlen(h->name));
    sc_buf_put_bytes(out, h->client_addr, strlen(h->client_addr));
}

int peer_hello_decode(const uint8_t *body, size_t len, struct peer_hello *h)
{
    struct sc_rd rd = sc_rd_make(body, len);
    uint64_t id;
    const uint8_t *name, *addr;
    size_t nl, al;
    if (sc_rd_u64le(&rd, &id) < 0 || sc_rd_bytes(&rd, &name, &nl, sizeof(h->name) - 1) < 0 ||
        sc_rd_bytes(&rd, &addr, &al, sizeof(h->client_addr) - 1) < 0 || id == 0)
        return -SC_E_CORRUPT;
    h->id = id;
    snprintf(h->name, sizeof(h->name), "%.*s", (int)nl, (const char *)name);
    snprintf(h->client_addr, sizeof(h->client_addr), "%.*s", (int)al, (const char *)addr);
    return 0;
}
