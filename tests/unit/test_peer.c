/*
 * test_peer.c: sctld's Raft peer transport (src/sctld/peer.h): the frame codec
 * alone (round trip, every truncation, bad version, type, checksum and length,
 * the HELLO body), then two real transports on loopback in one event loop: a
 * RAFT frame delivered with its sender's id, the client address learned from a
 * hello that came before the peer was added, connections that send a bad
 * frame (checksum, length, version, RAFT before HELLO) closed by the receiver,
 * and peer_sock_ops.check (invariant 4): an inbound HELLO for a member the check
 * refuses closes the connection before its RAFT frame is delivered, an outbound
 * connection to a refused member never comes up (and wrap is given the dialled
 * host), an accepted one does.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/util.h"
#include "sctld/peer.h"

/* hdr + body of one frame in a fresh buffer */
static struct sc_buf frame(enum peer_frame_type type, const uint8_t *body, size_t len)
{
    struct sc_buf b = {0};
    uint8_t hdr[PEER_FRAME_HDR];
    peer_frame_encode(type, body, len, hdr);
    sc_buf_put(&b, hdr, sizeof(hdr));
    sc_buf_put(&b, body, len);
    return b;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

static void frame_round_trip(void **state)
{
    static const size_t sizes[] = {0, 1, 9, 10, 11, 255, 4096, 70000};
    for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
        for (int t = PEER_FRAME_HELLO; t <= PEER_FRAME_RAFT; t++) {
            uint8_t *body = xmalloc(sizes[i] + 1);
            pattern(body, sizes[i], (unsigned)i);
            struct sc_buf b = frame((enum peer_frame_type)t, body, sizes[i]);
            /* a second frame right behind: parse takes the first only */
            struct sc_buf next = frame(PEER_FRAME_RAFT, (const uint8_t *)"zz", 2);
            sc_buf_put(&b, next.data, next.len);
            assert_int_equal(b.data[4], PEER_VERSION);
            assert_int_equal(peer_frame_size(b.data, b.len), PEER_FRAME_HDR + sizes[i]);
            enum peer_frame_type type = 0;
            const uint8_t *got = NULL;
            size_t len = 99;
            long k = peer_frame_parse(b.data, b.len, &type, &got, &len);
            assert_int_equal(k, PEER_FRAME_HDR + sizes[i]);
            assert_int_equal(type, t);
            assert_int_equal(len, sizes[i]);
            assert_ptr_equal(got, b.data + PEER_FRAME_HDR);
            if (sizes[i])
                assert_memory_equal(got, body, sizes[i]);
            /* and the one behind it */
            k = peer_frame_parse(b.data + k, b.len - (size_t)k, &type, &got, &len);
            assert_int_equal(k, PEER_FRAME_HDR + 2);
            assert_int_equal(type, PEER_FRAME_RAFT);
            assert_memory_equal(got, "zz", 2);
            sc_buf_free(&b);
            sc_buf_free(&next);
            free(body);
        }
}

static void frame_every_truncation_needs_more(void **state)
{
    uint8_t body[300];
    pattern(body, sizeof(body), 3);
    struct sc_buf b = frame(PEER_FRAME_RAFT, body, sizeof(body));
    for (size_t n = 0; n < b.len; n++) {
        enum peer_frame_type type = 0;
        const uint8_t *got = NULL;
        size_t len = 0;
        assert_int_equal(peer_frame_parse(b.data, n, &type, &got, &len), 0);
        assert_null(got); /* nothing is set before the frame is whole */
        assert_int_equal(peer_frame_size(b.data, n), n < PEER_FRAME_HDR ? 0 : (long)b.len);
    }
    sc_buf_free(&b);
}

static void frame_bad_version_and_type(void **state)
{
    struct sc_buf b = frame(PEER_FRAME_RAFT, (const uint8_t *)"abc", 3);
    enum peer_frame_type type;
    const uint8_t *got;
    size_t len;
    static const uint8_t versions[] = {0, PEER_VERSION + 1, 0x80, 0xff};
    for (size_t i = 0; i < ELEMENTSOF(versions); i++) {
        uint8_t c[PEER_FRAME_HDR + 3];
        memcpy(c, b.data, sizeof(c));
        c[4] = versions[i];
        /* refused from the header alone, whole frame or not */
        assert_int_equal(peer_frame_size(c, PEER_FRAME_HDR), -SC_E_CORRUPT);
        assert_int_equal(peer_frame_parse(c, sizeof(c), &type, &got, &len), -SC_E_CORRUPT);
        assert_int_equal(peer_frame_parse(c, PEER_FRAME_HDR, &type, &got, &len), -SC_E_CORRUPT);
    }
    static const uint8_t types[] = {0, 3, 0xff};
    for (size_t i = 0; i < ELEMENTSOF(types); i++) {
        uint8_t c[PEER_FRAME_HDR + 3];
        memcpy(c, b.data, sizeof(c));
        c[5] = types[i];
        assert_int_equal(peer_frame_parse(c, sizeof(c), &type, &got, &len), -SC_E_CORRUPT);
    }
    sc_buf_free(&b);
}

static void frame_bad_crc(void **state)
{
    uint8_t body[64];
    pattern(body, sizeof(body), 5);
    struct sc_buf b = frame(PEER_FRAME_RAFT, body, sizeof(body));
    enum peer_frame_type type;
    const uint8_t *got;
    size_t len;
    /* every single-bit flip in the checksum or the body is caught */
    for (size_t byte = 6; byte < b.len; byte++)
        for (int bit = 0; bit < 8; bit++) {
            b.data[byte] ^= (uint8_t)(1u << bit);
            assert_int_equal(peer_frame_parse(b.data, b.len, &type, &got, &len), -SC_E_CORRUPT);
            b.data[byte] ^= (uint8_t)(1u << bit);
        }
    /* a flipped length bit never yields a frame: too long waits, too short fails */
    for (int bit = 0; bit < 32; bit++) {
        sc_put_u32le(b.data, (uint32_t)sizeof(body) ^ (1u << bit));
        long k = peer_frame_parse(b.data, b.len, &type, &got, &len);
        assert_true(k == 0 || k == -SC_E_CORRUPT);
    }
    sc_put_u32le(b.data, (uint32_t)sizeof(body));
    assert_int_equal(peer_frame_parse(b.data, b.len, &type, &got, &len), (long)b.len);
    sc_buf_free(&b);
}

static void frame_oversize_length(void **state)
{
    uint8_t hdr[PEER_FRAME_HDR];
    enum peer_frame_type type;
    const uint8_t *got;
    size_t len;
    peer_frame_encode(PEER_FRAME_RAFT, NULL, 0, hdr);
    /* the largest frame allowed: only waits for its body */
    sc_put_u32le(hdr, PEER_MAX_FRAME);
    assert_int_equal(peer_frame_size(hdr, sizeof(hdr)), (long)PEER_FRAME_HDR + PEER_MAX_FRAME);
    assert_int_equal(peer_frame_parse(hdr, sizeof(hdr), &type, &got, &len), 0);
    /* one byte more, or any absurd length, is refused before any body arrives */
    static const uint32_t bad[] = {PEER_MAX_FRAME + 1, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        sc_put_u32le(hdr, bad[i]);
        assert_int_equal(peer_frame_size(hdr, sizeof(hdr)), -SC_E_CORRUPT);
        assert_int_equal(peer_frame_parse(hdr, sizeof(hdr), &type, &got, &len), -SC_E_CORRUPT);
    }
}

static void hello_round_trip_and_limits(void **state)
{
    struct peer_hello h = {.id = 0x1234567890abcdefull}, got;
    snprintf(h.name, sizeof(h.name), "c1");
    snprintf(h.client_addr, sizeof(h.client_addr), "10.77.0.1:7400");
    struct sc_buf b = {0};
    peer_hello_encode(&h, &b);
    memset(&got, 0x55, sizeof(got));
    assert_int_equal(peer_hello_decode(b.data, b.len, &got), 0);
    assert_int_equal(got.id, h.id);
    assert_string_equal(got.name, "c1");
    assert_string_equal(got.client_addr, "10.77.0.1:7400");
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(peer_hello_decode(b.data, n, &got), -SC_E_CORRUPT);
    sc_buf_free(&b);

    /* the longest name and address fit; one byte more does not */
    memset(h.name, 'n', 63);
    h.name[63] = '\0';
    memset(h.client_addr, 'a', 127);
    h.client_addr[127] = '\0';
    peer_hello_encode(&h, &b);
    assert_int_equal(peer_hello_decode(b.data, b.len, &got), 0);
    assert_int_equal(strlen(got.name), 63);
    assert_int_equal(strlen(got.client_addr), 127);
    sc_buf_reset(&b);
    char name[65];
    memset(name, 'n', 64);
    sc_buf_put_u64le(&b, 7);
    sc_buf_put_bytes(&b, name, 64);
    sc_buf_put_bytes(&b, "x:1", 3);
    assert_int_equal(peer_hello_decode(b.data, b.len, &got), -SC_E_CORRUPT);
    /* id 0 is nobody */
    sc_buf_reset(&b);
    struct peer_hello zero = {.id = 0, .name = "z", .client_addr = "x:1"};
    peer_hello_encode(&zero, &b);
    assert_int_equal(peer_hello_decode(b.data, b.len, &got), -SC_E_CORRUPT);
    sc_buf_free(&b);
}

/* ---- two transports on loopback ------------------------------------------------------ */

struct inbox {
    int n;
    uint64_t from;
    uint8_t data[64];
    size_t len;
};

static void on_recv(void *ud, uint64_t from, const uint8_t *payload, size_t len)
{
    struct inbox *in = ud;
    in->n++;
    in->from = from;
    in->len = MIN(len, sizeof(in->data));
    memcpy(in->data, payload, in->len);
}

/* Runs the loop for 10 ms; false once `end` has passed. */
static bool spin(struct event_base *base, usec_t end)
{
    struct timeval tv = {0, 10000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    return now_usec(CLOCK_MONOTONIC) < end;
}

/* A free loopback port: bound to port 0, read back, released (the transport
 * binds it again at once; its listener sets SO_REUSEADDR). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static struct peer_net *net(struct event_base *base, uint64_t id, const char *name,
                            const char *client, struct inbox *in, int *port)
{
    struct peer_net *n = NULL;
    char addr[64];
    assert_int_equal(peer_net_new(base, NULL, id, name, client, id, on_recv, in, &n), 0);
    *port = free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", *port);
    assert_int_equal(peer_net_listen(n, addr), 0);
    return n;
}

static void transport_delivers_and_learns_early_hello(void **state)
{
    struct event_base *base = event_base_new();
    struct inbox ia = {0}, ib = {0};
    int port_a, port_b;
    struct peer_net *a = net(base, 1, "a", "127.0.0.1:1111", &ia, &port_a);
    struct peer_net *b = net(base, 2, "b", "127.0.0.1:2222", &ib, &port_b);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_b);
    assert_int_equal(peer_net_add(a, 2, "b", addr), 0);
    assert_false(peer_net_send(a, 2, (const uint8_t *)"x", 1)); /* not up yet: dropped */
    const struct peer_info *pb = peer_net_get(a, 2);
    assert_non_null(pb);
    usec_t end = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
    while (!pb->up && spin(base, end))
        ;
    assert_true(pb->up);
    assert_true(peer_net_send(a, 2, (const uint8_t *)"append 7", 8));
    while (ib.n == 0 && spin(base, end))
        ;
    assert_int_equal(ib.n, 1);
    assert_int_equal(ib.from, 1);
    assert_int_equal(ib.len, 8);
    assert_memory_equal(ib.data, "append 7", 8);
    assert_int_equal(ia.n, 0); /* outbound connections only send */
    /* b learns a's client address from the hello that came before a was added */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_a);
    assert_int_equal(peer_net_add(b, 1, "a", addr), 0);
    const struct peer_info *pa = peer_net_get(b, 1);
    assert_non_null(pa);
    assert_string_equal(pa->client_addr, "127.0.0.1:1111");
    peer_net_remove(a, 2);
    assert_null(peer_net_get(a, 2));
    peer_net_free(a);
    peer_net_free(b);
    event_base_free(base);
}

/* Connects a raw socket to the transport, sends bytes; returns the fd. */
static int raw_send(int port, const struct sc_buf *bytes)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, bytes->data, bytes->len, MSG_NOSIGNAL), (ssize_t)bytes->len);
    return fd;
}

/* Runs the loop until the receiver closed fd (1) or 5 s passed (0). */
static int closed_by_peer(struct event_base *base, int fd)
{
    usec_t end = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
    while (spin(base, end)) {
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
    }
    return 0;
}

static void transport_closes_on_bad_frames(void **state)
{
    struct event_base *base = event_base_new();
    struct inbox ib = {0};
    int port;
    struct peer_net *b = net(base, 2, "b", "127.0.0.1:2222", &ib, &port);
    struct peer_hello h = {.id = 9, .name = "x", .client_addr = "127.0.0.1:9"};
    struct sc_buf hb = {0};
    peer_hello_encode(&h, &hb);
    struct sc_buf hello = frame(PEER_FRAME_HELLO, hb.data, hb.len);
    struct sc_buf good = frame(PEER_FRAME_RAFT, (const uint8_t *)"ok", 2);

    for (int kind = 0; kind < 4; kind++) {
        struct sc_buf bytes = {0};
        if (kind != 3) /* 3: a RAFT frame without a HELLO first */
            sc_buf_put(&bytes, hello.data, hello.len);
        sc_buf_put(&bytes, good.data, good.len);
        struct sc_buf bad = frame(PEER_FRAME_RAFT, (const uint8_t *)"bad", 3);
        if (kind == 0)
            bad.data[PEER_FRAME_HDR] ^= 1; /* checksum no longer holds */
        else if (kind == 1)
            sc_put_u32le(bad.data, PEER_MAX_FRAME + 1); /* no body follows: refused at once */
        else if (kind == 2)
            bad.data[4] = PEER_VERSION + 1;
        sc_buf_put(&bytes, bad.data, kind == 1 ? PEER_FRAME_HDR : bad.len);
        ib.n = 0;
        int fd = raw_send(port, &bytes);
        assert_int_equal(closed_by_peer(base, fd), 1);
        /* the good frame before the bad one got through, the bad one did not */
        assert_int_equal(ib.n, kind == 3 ? 0 : 1);
        if (kind != 3) {
            assert_int_equal(ib.from, 9);
            assert_memory_equal(ib.data, "ok", 2);
        }
        close(fd);
        sc_buf_free(&bad);
        sc_buf_free(&bytes);
    }
    sc_buf_free(&hb);
    sc_buf_free(&hello);
    sc_buf_free(&good);
    peer_net_free(b);
    event_base_free(base);
}

/* peer_sock_ops.check (invariant 4): plain sockets, a check that accepts only
 * member "good" and records what it was asked and which host wrap was given. */
struct checker {
    int calls;
    bool accepted;
    uint64_t id;
    char name[64], host[64];
};

static struct bufferevent *rec_wrap(void *ud, struct event_base *base, int fd, bool accepted,
                                    const char *host)
{
    struct checker *c = ud;
    if (!accepted)
        snprintf(c->host, sizeof(c->host), "%s", host ? host : "(null)");
    return peer_sock_plain.wrap(NULL, base, fd, accepted, host);
}

static int only_good(void *ud, struct bufferevent *bev, bool accepted, uint64_t id,
                     const char *name)
{
    struct checker *c = ud;
    c->calls++;
    c->accepted = accepted;
    c->id = id;
    snprintf(c->name, sizeof(c->name), "%s", name);
    return strcmp(name, "good") == 0 ? 0 : -EKEYREJECTED;
}

static void transport_check_ties_connections_to_members(void **state)
{
    struct event_base *base = event_base_new();
    struct checker ck = {0};
    const struct peer_sock_ops ops = {.wrap = rec_wrap, .check = only_good, .ud = &ck};
    struct inbox ib = {0}, ia = {0};
    struct peer_net *b = NULL, *a = NULL;
    assert_int_equal(peer_net_new(base, &ops, 2, "b", "127.0.0.1:2222", 2, on_recv, &ib, &b), 0);
    int port = free_port();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(peer_net_listen(b, addr), 0);
    struct sc_buf good = frame(PEER_FRAME_RAFT, (const uint8_t *)"ok", 2);
    for (int refused = 1; refused >= 0; refused--) {
        struct peer_hello h = {.id = 9, .client_addr = "127.0.0.1:9"};
        snprintf(h.name, sizeof(h.name), "%s", refused ? "evil" : "good");
        struct sc_buf hb = {0}, bytes = {0};
        peer_hello_encode(&h, &hb);
        struct sc_buf hello = frame(PEER_FRAME_HELLO, hb.data, hb.len);
        sc_buf_put(&bytes, hello.data, hello.len);
        sc_buf_put(&bytes, good.data, good.len);
        ck.calls = ib.n = 0;
        int fd = raw_send(port, &bytes);
        if (refused) { /* closed, its RAFT frame never delivered */
            assert_int_equal(closed_by_peer(base, fd), 1);
            assert_int_equal(ib.n, 0);
        } else {
            usec_t end = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
            while (ib.n == 0 && spin(base, end))
                ;
            assert_int_equal(ib.n, 1);
            assert_int_equal(ib.from, 9);
        }
        assert_int_equal(ck.calls, 1);
        assert_true(ck.accepted);
        assert_int_equal(ck.id, 9);
        assert_string_equal(ck.name, h.name);
        close(fd);
        sc_buf_free(&hb);
        sc_buf_free(&hello);
        sc_buf_free(&bytes);
    }
    /* outbound: a dials b under the name "bad": never up, retried, nothing sent */
    struct checker ca = {0};
    const struct peer_sock_ops aops = {.wrap = rec_wrap, .check = only_good, .ud = &ca};
    assert_int_equal(peer_net_new(base, &aops, 1, "good", "127.0.0.1:1111", 1, on_recv, &ia, &a),
                     0);
    assert_int_equal(peer_net_add(a, 2, "bad", addr), 0);
    usec_t end = now_usec(CLOCK_MONOTONIC) + 1 * USEC_PER_SEC;
    const struct peer_info *pb = peer_net_get(a, 2);
    while (ca.calls < 2 && spin(base, end)) /* refused, then retried after the backoff */
        assert_false(pb->up);
    assert_true(ca.calls >= 2);
    assert_false(ca.accepted);
    assert_int_equal(ca.id, 2);
    assert_string_equal(ca.name, "bad");
    assert_string_equal(ca.host, "127.0.0.1");
    assert_false(peer_net_send(a, 2, (const uint8_t *)"x", 1));
    /* the same member under its accepted name comes up and delivers */
    peer_net_remove(a, 2);
    ib.n = 0;
    assert_int_equal(peer_net_add(a, 2, "good", addr), 0);
    pb = peer_net_get(a, 2);
    end = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
    while (!pb->up && spin(base, end))
        ;
    assert_true(pb->up);
    assert_true(peer_net_send(a, 2, (const uint8_t *)"hi", 2));
    while (ib.n == 0 && spin(base, end))
        ;
    assert_int_equal(ib.n, 1); /* a's hello names "good": b's check lets it in */
    assert_int_equal(ib.from, 1);
    assert_string_equal(ck.name, "good");
    sc_buf_free(&good);
    peer_net_free(a);
    peer_net_free(b);
    event_base_free(base);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_round_trip),
        cmocka_unit_test(frame_every_truncation_needs_more),
        cmocka_unit_test(frame_bad_version_and_type),
        cmocka_unit_test(frame_bad_crc),
        cmocka_unit_test(frame_oversize_length),
        cmocka_unit_test(hello_round_trip_and_limits),
        cmocka_unit_test(transport_delivers_and_learns_early_hello),
        cmocka_unit_test(transport_closes_on_bad_frames),
        cmocka_unit_test(transport_check_ties_connections_to_members),
    };
    return sc_test_main(tests, argc, argv);
}
