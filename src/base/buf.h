/*
 * buf.h: a growable byte buffer and the little binary codec every on-disk and
 * on-wire format of SwiftCube is written with (LEB128 varints, fixed little-endian
 * integers, length-prefixed byte strings), plus CRC-32C.
 *
 * Decoding uses a cursor (struct sc_rd) that never reads past its end: every
 * getter returns -SC_E_CORRUPT on truncation, so decoders are safe to fuzz.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct sc_buf {
    uint8_t *data;
    size_t len, cap;
};

void sc_buf_free(struct sc_buf *b);
void sc_buf_reset(struct sc_buf *b);
void sc_buf_reserve(struct sc_buf *b, size_t extra);
void sc_buf_put(struct sc_buf *b, const void *p, size_t n);
void sc_buf_put_u8(struct sc_buf *b, uint8_t v);
void sc_buf_put_u32le(struct sc_buf *b, uint32_t v);
void sc_buf_put_u64le(struct sc_buf *b, uint64_t v);
void sc_buf_put_uvarint(struct sc_buf *b, uint64_t v);
void sc_buf_put_svarint(struct sc_buf *b, int64_t v);
void sc_buf_put_bytes(struct sc_buf *b, const void *p, size_t n); /* uvarint length + bytes */
void sc_buf_printf(struct sc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct sc_rd {
    const uint8_t *p, *end;
};

static inline struct sc_rd sc_rd_make(const void *p, size_t n)
{
    return (struct sc_rd){(const uint8_t *)p, (const uint8_t *)p + n};
}
static inline size_t sc_rd_left(const struct sc_rd *r)
{
    return (size_t)(r->end - r->p);
}
int sc_rd_u8(struct sc_rd *r, uint8_t *v);
int sc_rd_u32le(struct sc_rd *r, uint32_t *v);
int sc_rd_u64le(struct sc_rd *r, uint64_t *v);
int sc_rd_uvarint(struct sc_rd *r, uint64_t *v);
int sc_rd_svarint(struct sc_rd *r, int64_t *v);
/* Borrows a length-prefixed byte string (no copy); max bounds the length. */
int sc_rd_bytes(struct sc_rd *r, const uint8_t **p, size_t *n, size_t max);

static inline void sc_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t sc_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void sc_put_u64le(uint8_t *p, uint64_t v)
{
    sc_put_u32le(p, (uint32_t)v);
    sc_put_u32le(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t sc_get_u64le(const uint8_t *p)
{
    return (uint64_t)sc_get_u32le(p) | (uint64_t)sc_get_u32le(p + 4) << 32;
}

/* CRC-32C (Castagnoli), as used by ext4, iSCSI and etcd's WAL. crc=0 to start. */
uint32_t sc_crc32c(uint32_t crc, const void *p, size_t n);
