/*
 * fuzz_peer.c: libFuzzer harness for sctld's peer frame codec
 * (src/sctld/peer_frame.c): what an untrusted peer's bytes can do to it.
 *
 * The first input byte picks a target, the rest is its input:
 *   0  a byte stream cut into frames the way peer.c reads it (peer_frame_size on
 *      the header, then peer_frame_parse on the whole frame): every frame taken
 *      re-encodes to exactly the bytes it came from, its size agrees with the
 *      header, and a refused header is refused whatever follows it;
 *   1  peer_hello_decode: on success the hello re-encodes to bytes that decode
 *      to the same hello (the input's varints may be overlong);
 *   2  the input as a body: encode, then parse gives it back; every strict
 *      prefix needs more bytes; a flipped bit outside the length field is
 *      always refused.
 * Any violated property aborts, which libFuzzer reports as a crash.
 *
 * Run: tests/fuzz/run.sh (short, in CI); longer by hand, e.g.
 *   build-fuzz/tests/fuzz/fuzz_peer -max_total_time=3600 corpus_dir/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "sctld/peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "property violated: %s\n", #cond);                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void target_stream(const uint8_t *p, size_t n)
{
    while (n > 0) {
        long size = peer_frame_size(p, n);
        enum peer_frame_type type;
        const uint8_t *body = NULL;
        size_t len = 0;
        long k = peer_frame_parse(p, n, &type, &body, &len);
        if (size == 0) { /* short header */
            CHECK(n < PEER_FRAME_HDR && k == 0);
            return;
        }
        if (size < 0) { /* a bad header is bad with any continuation */
            CHECK(size == -SC_E_CORRUPT && k == -SC_E_CORRUPT);
            CHECK(peer_frame_size(p, PEER_FRAME_HDR) == -SC_E_CORRUPT);
            return;
        }
        CHECK((size_t)size >= PEER_FRAME_HDR && (size_t)size <= PEER_FRAME_HDR + PEER_MAX_FRAME);
        if (k == 0) {
            CHECK(n < (size_t)size);
            return;
        }
        if (k < 0) { /* whole, but the checksum does not hold */
            CHECK(k == -SC_E_CORRUPT && n >= (size_t)size);
            return;
        }
        CHECK(k == size && body == p + PEER_FRAME_HDR && len == (size_t)k - PEER_FRAME_HDR);
        CHECK(type == PEER_FRAME_HELLO || type == PEER_FRAME_RAFT);
        uint8_t hdr[PEER_FRAME_HDR];
        peer_frame_encode(type, body, len, hdr);
        CHECK(memcmp(hdr, p, PEER_FRAME_HDR) == 0);
        p += k;
        n -= (size_t)k;
    }
}

static void target_hello(const uint8_t *p, size_t n)
{
    struct peer_hello h, h2, h3;
    if (peer_hello_decode(p, n, &h) < 0)
        return;
    CHECK(h.id != 0 && strlen(h.name) < sizeof(h.name) &&
          strlen(h.client_addr) < sizeof(h.client_addr));
    struct sc_buf a = {0}, b = {0};
    peer_hello_encode(&h, &a);
    CHECK(peer_hello_decode(a.data, a.len, &h2) == 0);
    CHECK(h2.id == h.id && strcmp(h2.name, h.name) == 0 &&
          strcmp(h2.client_addr, h.client_addr) == 0);
    peer_hello_encode(&h2, &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    /* decode then stops at the end of what encode wrote */
    sc_buf_put(&a, "trailing", 8);
    CHECK(peer_hello_decode(a.data, a.len, &h3) == 0 && h3.id == h.id);
    sc_buf_free(&a);
    sc_buf_free(&b);
}

static void target_body(const uint8_t *p, size_t n, int raft)
{
    enum peer_frame_type t = raft ? PEER_FRAME_RAFT : PEER_FRAME_HELLO;
    uint8_t *f = malloc(PEER_FRAME_HDR + n + 1);
    peer_frame_encode(t, p, n, f);
    if (n)
        memcpy(f + PEER_FRAME_HDR, p, n);
    size_t total = PEER_FRAME_HDR + n;
    enum peer_frame_type type;
    const uint8_t *body;
    size_t len;
    CHECK(peer_frame_parse(f, total, &type, &body, &len) == (long)total);
    CHECK(type == t && len == n && (n == 0 || memcmp(body, p, n) == 0));
    for (size_t cut = 0; cut < total; cut++)
        CHECK(peer_frame_parse(f, cut, &type, &body, &len) == 0);
    /* flip one bit chosen by the input */
    size_t bit = n ? (p[0] | (size_t)p[n - 1] << 8) % (total * 8) : 0;
    f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    long k = peer_frame_parse(f, total, &type, &body, &len);
    CHECK(k <= 0 || bit < 32); /* only a shorter length can still frame something */
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0:
        target_stream(data + 1, size - 1);
        break;
    case 1:
        target_hello(data + 1, size - 1);
        break;
    default:
        target_body(data + 1, size - 1, data[0] % 4 == 3);
        break;
    }
    return 0;
}
