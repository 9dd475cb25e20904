/*
 * fuzz_image.c: libFuzzer harness for the decoders of src/image that read bytes a
 * registry, a disk or an operator hands a node: the packed-base reader, the image
 * manifest, the signature line, and (as a differential check) BLAKE3 streaming.
 *
 * The first input byte picks a target, the rest is its input:
 *   0  img_manifest_decode: an accepted manifest re-encodes to a fixed point
 *      (decode(encode(m)) encodes to the same bytes);
 *   1  img_sig_decode: an accepted signature line is written and read back to
 *      the same identity, key id and signature bytes;
 *   2  img_reader over arbitrary bytes (a memfd): every entry it returns has a
 *      relative path without "." or ".." components and a known type, its data
 *      reads without error up to at most the declared size, and it never crashes;
 *   3  BLAKE3: the digest of the input in one call equals the digest of the same
 *      input fed in pieces whose sizes come from the input itself, and a seek into
 *      the extended output equals the same bytes of a longer output.
 * Any violated property aborts, which libFuzzer reports as a crash.
 *
 * Run: tests/fuzz/run.sh SECONDS, or by hand
 *   build-fuzz/tests/fuzz/fuzz_image -max_total_time=600 CORPUS tests/fuzz/seeds/fuzz_image
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/blake3.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_image: %s:%d: %s\n", __FILE__, __LINE__, #x);                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void manifest(const uint8_t *d, size_t n)
{
    struct img_manifest m, m2;
    if (img_manifest_decode((const char *)d, n, &m, NULL) < 0)
        return;
    char *a, *b;
    size_t al, bl;
    CHECK(img_manifest_encode(&m, &a, &al) == 0);
    CHECK(img_manifest_decode(a, al, &m2, NULL) == 0);
    CHECK(img_manifest_encode(&m2, &b, &bl) == 0);
    CHECK(al == bl && memcmp(a, b, al) == 0);
    free(a);
    free(b);
    img_manifest_done(&m);
    img_manifest_done(&m2);
}

static void signature(const uint8_t *d, size_t n)
{
    struct img_sig s, s2;
    if (img_sig_decode((const char *)d, n, &s, NULL) < 0)
        return;
    char path[] = "/tmp/sc-fuzz-sig-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(img_sig_write(path, &s, NULL) == 0);
    CHECK(img_sig_read(path, &s2, NULL) == 0);
    unlink(path);
    CHECK(img_id_equal(&s.id, &s2.id));
    CHECK(strcmp(s.key_id, s2.key_id) == 0);
    CHECK(memcmp(s.sig, s2.sig, sizeof(s.sig)) == 0);
}

static void reader(const uint8_t *d, size_t n)
{
    int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(write(fd, d, n) == (ssize_t)n);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    struct img_reader *r;
    struct img_manifest m;
    if (img_reader_open(fd, &r, &m, NULL) == 0) {
        struct img_entry ent;
        uint8_t buf[4096];
        while (img_reader_next(r, &ent, NULL) == 1) {
            CHECK(S_ISREG(ent.mode) || S_ISDIR(ent.mode) || S_ISLNK(ent.mode));
            CHECK(ent.path[0] != '/' && ent.path[0] != '\0');
            if (strcmp(ent.path, ".") != 0) {
                CHECK(strstr(ent.path, "//") == NULL);
                CHECK(strncmp(ent.path, "../", 3) != 0 && strcmp(ent.path, "..") != 0);
                CHECK(strstr(ent.path, "/../") == NULL && strstr(ent.path, "/./") == NULL);
                size_t l = strlen(ent.path);
                CHECK(!(l >= 3 && strcmp(ent.path + l - 3, "/..") == 0));
            }
            uint64_t got = 0;
            ssize_t k;
            while ((k = img_reader_data(r, buf, sizeof(buf), NULL)) > 0)
                got += (uint64_t)k;
            if (k == 0 && S_ISREG(ent.mode))
                CHECK(got <= ent.size);
            if (k < 0)
                break;
        }
        img_reader_free(r);
        img_manifest_done(&m);
    }
    close(fd);
}

static void blake3(const uint8_t *d, size_t n)
{
    uint8_t one[IMG_BLAKE3_OUT_LEN], pieces[IMG_BLAKE3_OUT_LEN];
    img_blake3_hash(d, n, one);
    struct img_blake3 h;
    img_blake3_init(&h);
    size_t off = 0, i = 0;
    while (off < n) {
        size_t step = 1 + (size_t)d[i++ % n] * 37;
        if (step > n - off)
            step = n - off;
        img_blake3_update(&h, d + off, step);
        off += step;
    }
    img_blake3_final(&h, pieces, sizeof(pieces));
    CHECK(memcmp(one, pieces, sizeof(one)) == 0);
    uint8_t longer[200], seek[50];
    img_blake3_final(&h, longer, sizeof(longer));
    CHECK(memcmp(longer, one, sizeof(one)) == 0);
    uint64_t at = n ? d[0] % 150 : 0;
    img_blake3_final_seek(&h, at, seek, sizeof(seek));
    CHECK(memcmp(seek, longer + at, sizeof(seek)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0:
        manifest(d, n);
        break;
    case 1:
        signature(d, n);
        break;
    case 2:
        reader(d, n);
        break;
    default:
        blake3(d, n);
        break;
    }
    return 0;
}
