/*
 * blake3.c: BLAKE3 from the specification (see blake3.h for why it is in-tree).
 *
 * The input is split into 1024-byte chunks; each chunk is compressed block by
 * block (64 bytes) into a chaining value (CV), starting from the key words, with
 * the chunk's index as the counter and CHUNK_START / CHUNK_END on its first and
 * last block.  Chunk CVs are the leaves of a binary tree whose left subtrees are
 * always complete powers of two; a parent node is one compression of left||right.
 * The last node to be compressed (a lone chunk, or the top parent) is the root:
 * it is compressed again with ROOT for each 64-byte output block, its counter
 * being the output block index, which is what makes the output extendable.
 *
 * Lazy merging (spec §5.1.2): after the n-th chunk CV is pushed, as many subtrees
 * are merged as n has trailing zero bits, but the most recent chunk is never
 * finalised until more input arrives, because only then do we know it is not the
 * root.  The stack therefore holds at most one CV per bit of the chunk count.
 *
 * Whole chunks in the middle of a long update are hashed eight at a time by
 * hash_chunks_x8(): the same compression function with each vector lane holding
 * one chunk's state, which the compiler turns into SIMD instructions.
 */
#include "image/blake3.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    CHUNK_START = 1 << 0,
    CHUNK_END = 1 << 1,
    PARENT = 1 << 2,
    ROOT = 1 << 3,
    KEYED_HASH = 1 << 4,
    DERIVE_KEY_CONTEXT = 1 << 5,
    DERIVE_KEY_MATERIAL = 1 << 6,
};

/* The initialisation vector is SHA-256's (spec §2.2). */
static const uint32_t IV[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                               0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

/* Message word order of each of the 7 rounds: round 0 is the identity and each
 * next round applies the spec's permutation (2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8)
 * to the previous one, so no words are moved at run time. */
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store32(uint8_t *p, uint32_t w)
{
    p[0] = (uint8_t)w;
    p[1] = (uint8_t)(w >> 8);
    p[2] = (uint8_t)(w >> 16);
    p[3] = (uint8_t)(w >> 24);
}

static inline uint32_t rotr32(uint32_t w, unsigned c)
{
    return (w >> c) | (w << (32 - c));
}

/* The quarter-round G (spec §2.2), on state words a, b, c, d with message x, y. */
#define G(v, a, b, c, d, x, y)                                                                     \
    do {                                                                                           \
        v[a] = v[a] + v[b] + (x);                                                                  \
        v[d] = ROTR(v[d] ^ v[a], 16);                                                              \
        v[c] = v[c] + v[d];                                                                        \
        v[b] = ROTR(v[b] ^ v[c], 12);                                                              \
        v[a] = v[a] + v[b] + (y);                                                                  \
        v[d] = ROTR(v[d] ^ v[a], 8);                                                               \
        v[c] = v[c] + v[d];                                                                        \
        v[b] = ROTR(v[b] ^ v[c], 7);                                                               \
    } while (0)

/* One round: the four columns, then the four diagonals. */
#define ROUND(v, m, r)                                                                             \
    do {                                                                                           \
        const uint8_t *s_ = SCHEDULE[r];                                                           \
        G(v, 0, 4, 8, 12, m[s_[0]], m[s_[1]]);                                                     \
        G(v, 1, 5, 9, 13, m[s_[2]], m[s_[3]]);                                                     \
        G(v, 2, 6, 10, 14, m[s_[4]], m[s_[5]]);                                                    \
        G(v, 3, 7, 11, 15, m[s_[6]], m[s_[7]]);                                                    \
        G(v, 0, 5, 10, 15, m[s_[8]], m[s_[9]]);                                                    \
        G(v, 1, 6, 11, 12, m[s_[10]], m[s_[11]]);                                                  \
        G(v, 2, 7, 8, 13, m[s_[12]], m[s_[13]]);                                                   \
        G(v, 3, 4, 9, 14, m[s_[14]], m[s_[15]]);                                                   \
    } while (0)

#define ROTR(w, c) rotr32((w), (c))

/* The compression function (spec §2.2): out gets all 16 words, of which the
 * first 8 are the new chaining value and all 16 are extended output. */
static void compress(const uint32_t cv[8], const uint8_t block[IMG_BLAKE3_BLOCK_LEN],
                     uint8_t block_len, uint64_t counter, uint8_t flags, uint32_t out[16])
{
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = load32(block + 4 * i);
    uint32_t v[16] = {
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        IV[0],
        IV[1],
        IV[2],
        IV[3],
        (uint32_t)counter,
        (uint32_t)(counter >> 32),
        block_len,
        flags,
    };
    for (int r = 0; r < 7; r++)
        ROUND(v, m, r);
    for (int i = 0; i < 8; i++) {
        out[i] = v[i] ^ v[i + 8];
        out[i + 8] = v[i + 8] ^ cv[i];
    }
}

#undef ROTR

/* Whole chunks, many at once (blake3_simd.h).  Eight lanes: x86-64-v4 (AVX-512VL)
 * brings a vector rotate, AVX2 eight 32-bit lanes per register, and the default
 * clone uses SSE2 pairs; the loader picks one.  Sixteen lanes: one 512-bit register
 * per state word, used when the CPU has AVX-512F. */
typedef uint32_t v8u32 __attribute__((vector_size(32)));
/* Scalar loads: measured faster here than 8x8 shuffle transposes and than
 * AVX-512 gather instructions. */
#define SCALAR_LOAD(m, p)                                                                          \
    for (int w_ = 0; w_ < 16; w_++)                                                                \
        for (int l_ = 0; l_ < SIMD_LANES; l_++)                                                    \
    (m)[w_][l_] = load32((p) + (size_t)l_ * IMG_BLAKE3_CHUNK_LEN + 4 * w_)
#define SIMD_LOAD  SCALAR_LOAD
#define SIMD_LANES 8
#define SIMD_VT    v8u32
#define SIMD_FN    hash_chunks_x8
#define SIMD_ATTR  __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#include "image/blake3_simd.h"
#undef SIMD_LANES
#undef SIMD_VT
#undef SIMD_FN
#undef SIMD_ATTR
#undef SIMD_LOAD

#if defined(__x86_64__)
typedef uint32_t v16u32 __attribute__((vector_size(64)));
#define SIMD_LOAD  SCALAR_LOAD
#define SIMD_LANES 16
#define SIMD_VT    v16u32
#define SIMD_FN    hash_chunks_x16
#define SIMD_ATTR  __attribute__((target("arch=x86-64-v4")))
#include "image/blake3_simd.h"
#undef SIMD_LANES
#undef SIMD_VT
#undef SIMD_FN
#undef SIMD_ATTR
#undef SIMD_LOAD

static bool have_avx512(void)
{
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    }
    return v;
}
#else
#define have_avx512() false
static void hash_chunks_x16(const uint8_t *in, const uint32_t key[8], uint64_t counter,
                            uint8_t flags, uint32_t out[16][8])
{
    hash_chunks_x8(in, key, counter, flags, out);
    hash_chunks_x8(in + 8 * IMG_BLAKE3_CHUNK_LEN, key, counter + 8, flags, out + 8);
}
#endif

/* What is left to compress for a node whose kind is not yet known (root or not). */
struct output {
    uint32_t cv[8];
    uint8_t block[IMG_BLAKE3_BLOCK_LEN];
    uint8_t block_len;
    uint64_t counter;
    uint8_t flags;
};

static void output_cv(const struct output *o, uint32_t cv[8])
{
    uint32_t w[16];
    compress(o->cv, o->block, o->block_len, o->counter, o->flags, w);
    memcpy(cv, w, 8 * sizeof(uint32_t));
}

static void output_root_bytes(const struct output *o, uint64_t offset, uint8_t *out, size_t len)
{
    uint64_t block_ctr = offset / IMG_BLAKE3_BLOCK_LEN;
    size_t skip = (size_t)(offset % IMG_BLAKE3_BLOCK_LEN);
    while (len > 0) {
        uint32_t w[16];
        uint8_t bytes[IMG_BLAKE3_BLOCK_LEN];
        compress(o->cv, o->block, o->block_len, block_ctr, o->flags | ROOT, w);
        for (int i = 0; i < 16; i++)
            store32(bytes + 4 * i, w[i]);
        size_t take = IMG_BLAKE3_BLOCK_LEN - skip;
        if (take > len)
            take = len;
        memcpy(out, bytes + skip, take);
        out += take;
        len -= take;
        skip = 0;
        block_ctr++;
    }
}

static void parent_output(const uint32_t left[8], const uint32_t right[8], const uint32_t key[8],
                          uint8_t flags, struct output *o)
{
    memcpy(o->cv, key, sizeof(o->cv));
    for (int i = 0; i < 8; i++) {
        store32(o->block + 4 * i, left[i]);
        store32(o->block + 32 + 4 * i, right[i]);
    }
    o->block_len = IMG_BLAKE3_BLOCK_LEN;
    o->counter = 0;
    o->flags = flags | PARENT;
}

static void chunk_reset(struct img_blake3_chunk *c, const uint32_t key[8], uint64_t counter)
{
    memcpy(c->cv, key, sizeof(c->cv));
    c->counter = counter;
    c->buf_len = 0;
    c->blocks_compressed = 0;
}

static size_t chunk_len(const struct img_blake3_chunk *c)
{
    return (size_t)c->blocks_compressed * IMG_BLAKE3_BLOCK_LEN + c->buf_len;
}

static uint8_t chunk_start_flag(const struct img_blake3_chunk *c)
{
    return c->blocks_compressed == 0 ? CHUNK_START : 0;
}

/* Adds at most the rest of one chunk.  A full block is compressed only when more
 * input follows it, because the chunk's last block needs CHUNK_END. */
static void chunk_update(struct img_blake3_chunk *c, uint8_t flags, const uint8_t *in, size_t len)
{
    while (len > 0) {
        if (c->buf_len == IMG_BLAKE3_BLOCK_LEN) {
            uint32_t w[16];
            compress(c->cv, c->buf, IMG_BLAKE3_BLOCK_LEN, c->counter, flags | chunk_start_flag(c),
                     w);
            memcpy(c->cv, w, sizeof(c->cv));
            c->blocks_compressed++;
            c->buf_len = 0;
        }
        size_t take = IMG_BLAKE3_BLOCK_LEN - c->buf_len;
        if (take > len)
            take = len;
        memcpy(c->buf + c->buf_len, in, take);
        c->buf_len = (uint8_t)(c->buf_len + take);
        in += take;
        len -= take;
    }
}

static void chunk_output(const struct img_blake3_chunk *c, uint8_t flags, struct output *o)
{
    memcpy(o->cv, c->cv, sizeof(o->cv));
    memset(o->block, 0, sizeof(o->block));
    memcpy(o->block, c->buf, c->buf_len);
    o->block_len = c->buf_len;
    o->counter = c->counter;
    o->flags = flags | chunk_start_flag(c) | CHUNK_END;
}

/* Pushes the CV of a finished chunk; total_chunks counts it.  Merges one pair of
 * subtrees per trailing zero bit of total_chunks (lazy merging, spec §5.1.2). */
static void push_chunk_cv(struct img_blake3 *h, const uint32_t chunk_cv[8], uint64_t total_chunks)
{
    uint32_t cv[8];
    memcpy(cv, chunk_cv, sizeof(cv));
    while ((total_chunks & 1) == 0) {
        struct output o;
        h->stack_len--;
        parent_output(h->stack[h->stack_len], cv, h->key, h->flags, &o);
        output_cv(&o, cv);
        total_chunks >>= 1;
    }
    memcpy(h->stack[h->stack_len], cv, sizeof(cv));
    h->stack_len++;
}

static void init_with(struct img_blake3 *h, const uint32_t key[8], uint8_t flags)
{
    memcpy(h->key, key, sizeof(h->key));
    h->flags = flags;
    h->stack_len = 0;
    chunk_reset(&h->chunk, key, 0);
}

void img_blake3_init(struct img_blake3 *h)
{
    init_with(h, IV, 0);
}

void img_blake3_init_keyed(struct img_blake3 *h, const uint8_t key[IMG_BLAKE3_KEY_LEN])
{
    uint32_t k[8];
    for (int i = 0; i < 8; i++)
        k[i] = load32(key + 4 * i);
    init_with(h, k, KEYED_HASH);
}

void img_blake3_init_derive_key(struct img_blake3 *h, const char *context)
{
    struct img_blake3 ctx;
    uint8_t ctx_key[IMG_BLAKE3_KEY_LEN];
    init_with(&ctx, IV, DERIVE_KEY_CONTEXT);
    img_blake3_update(&ctx, context, strlen(context));
    img_blake3_final(&ctx, ctx_key, sizeof(ctx_key));
    uint32_t k[8];
    for (int i = 0; i < 8; i++)
        k[i] = load32(ctx_key + 4 * i);
    init_with(h, k, DERIVE_KEY_MATERIAL);
}

void img_blake3_update(struct img_blake3 *h, const void *data, size_t len)
{
    const uint8_t *in = data;
    while (len > 0) {
        /* A full chunk with more input behind it is not the root: finish it. */
        if (chunk_len(&h->chunk) == IMG_BLAKE3_CHUNK_LEN) {
            struct output o;
            uint32_t cv[8];
            chunk_output(&h->chunk, h->flags, &o);
            output_cv(&o, cv);
            uint64_t total = h->chunk.counter + 1;
            push_chunk_cv(h, cv, total);
            chunk_reset(&h->chunk, h->key, total);
        }
        /* At a chunk boundary, hash runs of sixteen or eight whole chunks that are
         * surely not the last one (at least one byte stays for the buffered chunk). */
        if (chunk_len(&h->chunk) == 0) {
            while (len > 8 * IMG_BLAKE3_CHUNK_LEN) {
                size_t lanes = len > 16 * IMG_BLAKE3_CHUNK_LEN && have_avx512() ? 16 : 8;
                uint32_t cvs[16][8];
                if (lanes == 16)
                    hash_chunks_x16(in, h->key, h->chunk.counter, h->flags, cvs);
                else
                    hash_chunks_x8(in, h->key, h->chunk.counter, h->flags, cvs);
                for (size_t i = 0; i < lanes; i++)
                    push_chunk_cv(h, cvs[i], h->chunk.counter + i + 1);
                chunk_reset(&h->chunk, h->key, h->chunk.counter + lanes);
                in += lanes * IMG_BLAKE3_CHUNK_LEN;
                len -= lanes * IMG_BLAKE3_CHUNK_LEN;
            }
        }
        size_t take = IMG_BLAKE3_CHUNK_LEN - chunk_len(&h->chunk);
        if (take > len)
            take = len;
        chunk_update(&h->chunk, h->flags, in, take);
        in += take;
        len -= take;
    }
}

void img_blake3_final_seek(const struct img_blake3 *h, uint64_t offset, uint8_t *out,
                           size_t out_len)
{
    struct output o;
    chunk_output(&h->chunk, h->flags, &o);
    /* Fold the stack from the newest subtree to the oldest; the last fold is the
     * root (or the lone chunk is, when there is no stack). */
    for (size_t i = h->stack_len; i > 0; i--) {
        uint32_t right[8];
        output_cv(&o, right);
        parent_output(h->stack[i - 1], right, h->key, h->flags, &o);
    }
    output_root_bytes(&o, offset, out, out_len);
}

void img_blake3_final(const struct img_blake3 *h, uint8_t *out, size_t out_len)
{
    img_blake3_final_seek(h, 0, out, out_len);
}

void img_blake3_hash(const void *data, size_t len, uint8_t out[IMG_BLAKE3_OUT_LEN])
{
    struct img_blake3 h;
    img_blake3_init(&h);
    img_blake3_update(&h, data, len);
    img_blake3_final(&h, out, IMG_BLAKE3_OUT_LEN);
}

void img_blake3_hex(const uint8_t digest[IMG_BLAKE3_OUT_LEN], char out[IMG_BLAKE3_HEX_LEN + 1])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < IMG_BLAKE3_OUT_LEN; i++) {
        out[2 * i] = hx[digest[i] >> 4];
        out[2 * i + 1] = hx[digest[i] & 15];
    }
    out[IMG_BLAKE3_HEX_LEN] = '\0';
}

int img_blake3_fd(int fd, uint8_t out[IMG_BLAKE3_OUT_LEN], uint64_t *ret_size)
{
    enum { BUF = 256 << 10 };
    uint8_t *buf = malloc(BUF);
    if (!buf)
        return -ENOMEM;
    struct img_blake3 h;
    uint64_t total = 0;
    img_blake3_init(&h);
    for (;;) {
        ssize_t n = read(fd, buf, BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            free(buf);
            return r;
        }
        if (n == 0)
            break;
        img_blake3_update(&h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    free(buf);
    img_blake3_final(&h, out, IMG_BLAKE3_OUT_LEN);
    if (ret_size)
        *ret_size = total;
    return 0;
}
