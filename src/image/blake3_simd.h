/*
 * blake3_simd.h: the body of the many-chunks-at-once BLAKE3 compression, included by
 * blake3.c once per vector width (a "template" in C): LANES chunks are hashed in
 * parallel, lane l of every vector belonging to chunk l.  Before including,
 * blake3.c defines:
 *   SIMD_LANES  number of chunks (8 or 16), contiguous at in, CHUNK_LEN apart
 *   SIMD_LOAD   (m, p): m[w] lane l = word w of the block at p + l * CHUNK_LEN
 *   SIMD_VT     the vector type (uint32_t with vector_size 4 * SIMD_LANES)
 *   SIMD_FN     the function name
 *   SIMD_ATTR   target attributes (target_clones or target)
 * and has G, ROUND, IV, SCHEDULE, load32 and the flag constants in scope.
 */
#define ROTR(w, c) (((w) >> (c)) | ((w) << (32 - (c))))
#define SPLAT(x)   ((SIMD_VT){0} + (uint32_t)(x))

SIMD_ATTR static void SIMD_FN(const uint8_t *in, const uint32_t key[8], uint64_t counter,
                              uint8_t flags, uint32_t out[SIMD_LANES][8])
{
    SIMD_VT h[8], ctr_lo, ctr_hi;
    for (int w = 0; w < 8; w++)
        h[w] = SPLAT(key[w]);
    for (int l = 0; l < SIMD_LANES; l++) {
        ctr_lo[l] = (uint32_t)(counter + (uint64_t)l);
        ctr_hi[l] = (uint32_t)((counter + (uint64_t)l) >> 32);
    }
    for (int b = 0; b < IMG_BLAKE3_CHUNK_LEN / IMG_BLAKE3_BLOCK_LEN; b++) {
        SIMD_VT m[16];
        SIMD_LOAD(m, in + b * IMG_BLAKE3_BLOCK_LEN);
        uint32_t f = flags;
        if (b == 0)
            f |= CHUNK_START;
        if (b == IMG_BLAKE3_CHUNK_LEN / IMG_BLAKE3_BLOCK_LEN - 1)
            f |= CHUNK_END;
        SIMD_VT v[16] = {0}; /* GCC 12 -O3 warns falsely without the initialiser */
        for (int w = 0; w < 8; w++) {
            v[w] = h[w];
            v[w + 8] = SPLAT(IV[w & 3]);
        }
        v[12] = ctr_lo;
        v[13] = ctr_hi;
        v[14] = SPLAT(IMG_BLAKE3_BLOCK_LEN);
        v[15] = SPLAT(f);
        for (int r = 0; r < 7; r++)
            ROUND(v, m, r);
        for (int w = 0; w < 8; w++)
            h[w] = v[w] ^ v[w + 8];
    }
    for (int l = 0; l < SIMD_LANES; l++)
        for (int w = 0; w < 8; w++)
            out[l][w] = h[w][l];
}

#undef ROTR
#undef SPLAT
