/* buf.c: growable buffer, varint codec and CRC-32C (see buf.h). */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"

void sc_buf_free(struct sc_buf *b)
{
    free(b->data);
    *b = (struct sc_buf){0};
}

void sc_buf_reset(struct sc_buf *b)
{
    b->len = 0;
}

void sc_buf_reserve(struct sc_buf *b, size_t extra)
{
    b->data = sc_grow(b->data, &b->cap, b->len + extra, 1);
}

void sc_buf_put(struct sc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    sc_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void sc_buf_put_u8(struct sc_buf *b, uint8_t v)
{
    sc_buf_put(b, &v, 1);
}

void sc_buf_put_u32le(struct sc_buf *b, uint32_t v)
{
    uint8_t t[4];
    sc_put_u32le(t, v);
    sc_buf_put(b, t, 4);
}

void sc_buf_put_u64le(struct sc_buf *b, uint64_t v)
{
    uint8_t t[8];
    sc_put_u64le(t, v);
    sc_buf_put(b, t, 8);
}

void sc_buf_put_uvarint(struct sc_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    sc_buf_put(b, t, n);
}

void sc_buf_put_svarint(struct sc_buf *b, int64_t v)
{
    sc_buf_put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void sc_buf_put_bytes(struct sc_buf *b, const void *p, size_t n)
{
    sc_buf_put_uvarint(b, n);
    sc_buf_put(b, p, n);
}

void sc_buf_printf(struct sc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sc_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int sc_rd_u8(struct sc_rd *r, uint8_t *v)
{
    if (sc_rd_left(r) < 1)
        return -SC_E_CORRUPT;
    *v = *r->p++;
    return 0;
}

int sc_rd_u32le(struct sc_rd *r, uint32_t *v)
{
    if (sc_rd_left(r) < 4)
        return -SC_E_CORRUPT;
    *v = sc_get_u32le(r->p);
    r->p += 4;
    return 0;
}

int sc_rd_u64le(struct sc_rd *r, uint64_t *v)
{
    if (sc_rd_left(r) < 8)
        return -SC_E_CORRUPT;
    *v = sc_get_u64le(r->p);
    r->p += 8;
    return 0;
}

int sc_rd_uvarint(struct sc_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -SC_E_CORRUPT;
        uint8_t c = *r->p++;
        if (shift == 63 && c > 1)
            return -SC_E_CORRUPT; /* overflows 64 bits */
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -SC_E_CORRUPT;
}

int sc_rd_svarint(struct sc_rd *r, int64_t *v)
{
    uint64_t u;
    int e = sc_rd_uvarint(r, &u);
    if (e < 0)
        return e;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

int sc_rd_bytes(struct sc_rd *r, const uint8_t **p, size_t *n, size_t max)
{
    uint64_t len;
    int e = sc_rd_uvarint(r, &len);
    if (e < 0)
        return e;
    if (len > max || len > sc_rd_left(r))
        return -SC_E_CORRUPT;
    *p = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

/* Table-driven CRC-32C, slicing by 8: ~1.5 GB/s, enough that the WAL is bound by
 * fsync, not by checksums.  The tables are built once, on first use. */
static uint32_t crc_tab[8][256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & -(c & 1));
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t sc_crc32c(uint32_t crc, const void *buf, size_t n)
{
    static int once;
    if (_unlikely_(!__atomic_load_n(&once, __ATOMIC_ACQUIRE))) {
        crc_init();
        __atomic_store_n(&once, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = buf;
    crc = ~crc;
    while (n >= 8) {
        uint64_t w = sc_get_u64le(p) ^ crc;
        crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^ crc_tab[5][(w >> 16) & 0xff] ^
              crc_tab[4][(w >> 24) & 0xff] ^ crc_tab[3][(w >> 32) & 0xff] ^
              crc_tab[2][(w >> 40) & 0xff] ^ crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    return ~crc;
}
