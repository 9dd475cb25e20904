/*
 * blake3.h: BLAKE3, written in-tree from its specification.
 *
 * Image identities are `blake3:<hex>` of the packed bytes and the content store
 * keys file objects by BLAKE3 (ARCHITECTURE.md "Images").  Debian packages no
 * BLAKE3 library, so this is our own implementation of the published spec
 * (O'Connor, Aumasson, Neves, Wilcox-O'Hearn, "BLAKE3", 2020): the compression
 * function, chunk chaining, the binary tree of chunk chaining values with lazy
 * merging, the three modes (hash, keyed_hash, derive_key) and extendable output.
 * It is checked against the official test vectors and against Debian's b3sum.
 *
 * Speed: whole chunks are hashed eight at a time with GCC vector extensions (one
 * lane per chunk, compiled for AVX2 and for baseline SSE2 and picked at load time);
 * partial chunks and parent nodes use the one-block portable path.
 *
 * A hasher is a plain value: copy it to fork a hash, finalise as often as needed.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define IMG_BLAKE3_OUT_LEN   32
#define IMG_BLAKE3_KEY_LEN   32
#define IMG_BLAKE3_BLOCK_LEN 64
#define IMG_BLAKE3_CHUNK_LEN 1024
#define IMG_BLAKE3_HEX_LEN   (2 * IMG_BLAKE3_OUT_LEN)
/* 2^64 bytes of input are at most 2^54 chunks: the stack never holds more. */
#define IMG_BLAKE3_MAX_DEPTH 54

struct img_blake3_chunk {
    uint32_t cv[8];
    uint64_t counter; /* index of this chunk in the input */
    uint8_t buf[IMG_BLAKE3_BLOCK_LEN];
    uint8_t buf_len;
    uint8_t blocks_compressed;
};

struct img_blake3 {
    uint32_t key[8];
    uint8_t flags; /* mode flags: 0, KEYED_HASH or DERIVE_KEY_MATERIAL */
    uint8_t stack_len;
    struct img_blake3_chunk chunk;
    uint32_t stack[IMG_BLAKE3_MAX_DEPTH][8]; /* chaining values of complete subtrees */
};

void img_blake3_init(struct img_blake3 *h);
void img_blake3_init_keyed(struct img_blake3 *h, const uint8_t key[IMG_BLAKE3_KEY_LEN]);
/* derive_key mode: context is a hard-coded, globally unique, application string. */
void img_blake3_init_derive_key(struct img_blake3 *h, const char *context);
void img_blake3_update(struct img_blake3 *h, const void *data, size_t len);
/* Extendable output: writes out_len bytes starting at output offset 0.  Does not
 * change h, so more input may follow. */
void img_blake3_final(const struct img_blake3 *h, uint8_t *out, size_t out_len);
/* Same, starting at output byte `offset` (the XOF is seekable). */
void img_blake3_final_seek(const struct img_blake3 *h, uint64_t offset, uint8_t *out,
                           size_t out_len);

/* One-shot default-length hash. */
void img_blake3_hash(const void *data, size_t len, uint8_t out[IMG_BLAKE3_OUT_LEN]);
/* Lower-case hex of a 32-byte digest, NUL-terminated (out holds 65 bytes). */
void img_blake3_hex(const uint8_t digest[IMG_BLAKE3_OUT_LEN], char out[IMG_BLAKE3_HEX_LEN + 1]);
/* Hashes everything readable from fd (from its current offset to EOF).
 * Returns 0 or -errno; *ret_size (if non-NULL) gets the byte count. */
int img_blake3_fd(int fd, uint8_t out[IMG_BLAKE3_OUT_LEN], uint64_t *ret_size);
