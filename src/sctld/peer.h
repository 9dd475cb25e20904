/*
 * peer.h: the Raft peer transport of sctld: length-prefixed, versioned,
 * CRC-32C-checksummed binary frames over TCP.
 *
 * Each member keeps one outbound connection per peer (it only sends on it) and
 * accepts inbound connections (it only receives on them).  A frame is
 *
 *     u32 body length | u8 version (1) | u8 type | u32 crc32c(body) | body
 *
 * (little-endian).  Type HELLO opens every outbound connection: u64 sender id,
 * then the sender's name and client (HTTP) address as uvarint-prefixed bytes,
 * so members learn where to forward client writes.  Type RAFT carries one
 * raft_msg_encode() payload.  A bad length, version or checksum closes the
 * connection (the sender reconnects; Raft retries whatever was lost).
 *
 * Design block:
 *  1. A peer's outbound connection is DOWN, CONNECTING or UP:
 *
 *        DOWN --timer--> CONNECTING --connected--> UP (hello sent first)
 *          ^                  |                     |
 *          +------error-------+--------error--------+   backoff doubles from
 *                                                        50 ms to 2 s, +-25%
 *                                                        jitter (seeded PRNG)
 *  2. Sending never blocks and never grows without bound: a frame for a peer that
 *     is not UP, or whose output holds more than PEER_MAX_QUEUED bytes, is dropped.
 *  3. A received frame is handed to the callback only when whole and its
 *     checksum holds; frames over PEER_MAX_FRAME are refused.
 *  4. Socket setup goes through peer_sock_ops: plain TCP, or (sctld --tls-dir)
 *     mutual TLS under the cluster CA, without touching framing or the state
 *     machine.  When ops->check is set, no frame is sent on an outbound
 *     connection and no RAFT frame is delivered from an inbound one until check
 *     accepted the connection for the member it speaks for: the member dialled
 *     (outbound, once connected, i.e. after the TLS handshake) or the one its
 *     HELLO names (inbound).  A refused connection is closed; an outbound one
 *     is retried with backoff as after any error.
 *  5. An inbound connection that has not delivered a valid, accepted HELLO
 *     within PEER_HELLO_TIMEOUT_SEC is closed (a client that connects and never
 *     completes the handshake holds nothing for long).
 */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEER_MAX_MEMBERS       16
#define PEER_MAX_FRAME         ((1u << 30) + (1u << 20)) /* a snapshot plus its message */
#define PEER_MAX_QUEUED        (64u << 20)
#define PEER_VERSION           1
#define PEER_HELLO_TIMEOUT_SEC 10

enum peer_frame_type { PEER_FRAME_HELLO = 1, PEER_FRAME_RAFT = 2 };

struct bufferevent;

/* How sockets become bufferevents (plain TCP, or mutual TLS) and which member a
 * connection may speak for.  wrap: fd is a fresh non-blocking socket, connected
 * later by the transport when !accepted, and host the dialled peer's host (an
 * IP literal or a name, for the TLS host check; NULL when accepted).  check
 * (optional): 0 to accept a connection for member id/name, < 0 to close it
 * (invariant 4); it may log, the transport does not. */
struct peer_sock_ops {
    struct bufferevent *(*wrap)(void *ud, struct event_base *base, int fd, bool accepted,
                                const char *host);
    int (*check)(void *ud, struct bufferevent *bev, bool accepted, uint64_t id, const char *name);
    void *ud;
};
extern const struct peer_sock_ops peer_sock_plain;

struct peer_info {
    uint64_t id;
    char name[64];
    char peer_addr[128];   /* HOST:PORT */
    char client_addr[128]; /* learned from its hello; "" until then */
    bool up;               /* outbound connection established */
};

struct peer_net;

typedef void (*peer_recv_fn)(void *ud, uint64_t from, const uint8_t *payload, size_t len);

int peer_net_new(struct event_base *base, const struct peer_sock_ops *ops, uint64_t self_id,
                 const char *self_name, const char *client_addr, uint64_t seed, peer_recv_fn recv,
                 void *ud, struct peer_net **ret);
void peer_net_free(struct peer_net *n);
/* Listens for peers on HOST:PORT. */
int peer_net_listen(struct peer_net *n, const char *addr);
/* Adds (or updates the address of) a peer and starts connecting to it. */
int peer_net_add(struct peer_net *n, uint64_t id, const char *name, const char *peer_addr);
void peer_net_remove(struct peer_net *n, uint64_t id);
/* Queues one RAFT frame for a peer; returns false when it was dropped. */
bool peer_net_send(struct peer_net *n, uint64_t to, const uint8_t *payload, size_t len);
/* The peer's view, or NULL if unknown. */
const struct peer_info *peer_net_get(const struct peer_net *n, uint64_t id);
size_t peer_net_list(const struct peer_net *n, const struct peer_info **out, size_t max);

/* Frame codec (peer_frame.c: pure, no sockets; tested alone and fuzzed). */
#define PEER_FRAME_HDR 10 /* u32 length | u8 version | u8 type | u32 crc32c */

/* Fills hdr for a frame carrying body[0..len). */
void peer_frame_encode(enum peer_frame_type type, const uint8_t *body, size_t len,
                       uint8_t hdr[PEER_FRAME_HDR]);
/* From the header alone: the bytes the whole frame takes (> 0), 0 when fewer than
 * PEER_FRAME_HDR bytes are given, -SC_E_CORRUPT for a length over PEER_MAX_FRAME,
 * another version or an unknown type. */
long peer_frame_size(const uint8_t *p, size_t n);
/* The bytes a whole frame at p takes (> 0, with type, body and len set), 0 when
 * more bytes are needed, or -SC_E_CORRUPT (bad header or checksum).  Bytes after
 * the frame are not looked at. */
long peer_frame_parse(const uint8_t *p, size_t n, enum peer_frame_type *type, const uint8_t **body,
                      size_t *len);

/* The HELLO body: u64 id, then name and client address as uvarint-prefixed bytes. */
struct peer_hello {
    uint64_t id; /* never 0 */
    char name[64];
    char client_addr[128];
};
struct sc_buf;
void peer_hello_encode(const struct peer_hello *h, struct sc_buf *out);
/* 0, or -SC_E_CORRUPT: short, id 0, name over 63 or address over 127 bytes. */
int peer_hello_decode(const uint8_t *body, size_t len, struct peer_hello *h);
