/*
 * test_blake3.c: our BLAKE3 against the official test vectors (all three modes,
 * extended output) in ../shared/testdata/blake3/, and against Debian's b3sum on
 * inputs that cross every interesting boundary (block, chunk, the eight-chunk SIMD
 * batch, uneven trees).
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include <jansson.h>

#include "base/util.h"
#include "image/blake3.h"

static char *shared_testdata(const char *rel)
{
    const char *s = getenv("SC_SHARED_TESTDATA");
    char *p = NULL;
    if (s)
        assert_true(asprintf(&p, "%s/%s", s, rel) > 0);
    else {
        const char *t = getenv("SC_TESTDATA");
        assert_non_null(t); /* set by tests/unit/meson.build: <repo>/tests */
        assert_true(asprintf(&p, "%s/../../shared/testdata/%s", t, rel) > 0);
    }
    return p;
}

static uint8_t *unhex(const char *hex, size_t *ret_len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *ret_len = n;
    return out;
}

static uint8_t *vector_input(size_t n)
{
    uint8_t *in = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(i % 251);
    return in;
}

/* Checks one mode: full extended output, the default-length prefix, a seek into
 * the output, and the same digest from input fed in uneven pieces. */
static void check_mode(const struct img_blake3 *init, const uint8_t *in, size_t len,
                       const char *expect_hex, const char *what)
{
    size_t elen;
    _cleanup_free_ uint8_t *expect = unhex(expect_hex, &elen);
    _cleanup_free_ uint8_t *got = xmalloc(elen);

    struct img_blake3 h = *init;
    img_blake3_update(&h, in, len);
    img_blake3_final(&h, got, elen);
    if (memcmp(got, expect, elen) != 0)
        fail_msg("%s len=%zu: extended output differs", what, len);

    uint8_t d32[IMG_BLAKE3_OUT_LEN];
    img_blake3_final(&h, d32, sizeof(d32));
    assert_memory_equal(d32, expect, sizeof(d32));

    uint8_t part[40];
    img_blake3_final_seek(&h, 67, part, sizeof(part));
    assert_memory_equal(part, expect + 67, sizeof(part));

    struct img_blake3 h2 = *init;
    size_t off = 0, step = 1;
    while (off < len) {
        size_t take = MIN(step, len - off);
        img_blake3_update(&h2, in + off, take);
        off += take;
        step = step * 3 + 7;
    }
    img_blake3_final(&h2, got, elen);
    if (memcmp(got, expect, elen) != 0)
        fail_msg("%s len=%zu: output differs when fed in pieces", what, len);
}

static void official_vectors(void **state)
{
    _cleanup_free_ char *path = shared_testdata("blake3/test_vectors.json");
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
    const char *key = json_string_value(json_object_get(root, "key"));
    const char *context = json_string_value(json_object_get(root, "context_string"));
    json_t *cases = json_object_get(root, "cases");
    assert_non_null(key);
    assert_non_null(context);
    assert_int_equal(strlen(key), IMG_BLAKE3_KEY_LEN);
    assert_true(json_array_size(cases) >= 30);

    struct img_blake3 plain, keyed, derive;
    img_blake3_init(&plain);
    img_blake3_init_keyed(&keyed, (const uint8_t *)key);
    img_blake3_init_derive_key(&derive, context);

    size_t i, checked = 0;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        size_t len = (size_t)json_integer_value(json_object_get(c, "input_len"));
        _cleanup_free_ uint8_t *in = vector_input(len);
        check_mode(&plain, in, len, json_string_value(json_object_get(c, "hash")), "hash");
        check_mode(&keyed, in, len, json_string_value(json_object_get(c, "keyed_hash")),
                   "keyed_hash");
        check_mode(&derive, in, len, json_string_value(json_object_get(c, "derive_key")),
                   "derive_key");
        checked++;
    }
    assert_int_equal(checked, json_array_size(cases));
    json_decref(root);
}

/* The one-shot helper and the fd reader agree with the streaming API. */
static void oneshot_and_fd(void **state)
{
    size_t n = 100 * 1024 + 13;
    _cleanup_free_ uint8_t *in = vector_input(n);
    uint8_t a[32], b[32], c[32];
    img_blake3_hash(in, n, a);
    struct img_blake3 h;
    img_blake3_init(&h);
    img_blake3_update(&h, in, 5000);
    img_blake3_update(&h, in + 5000, n - 5000);
    img_blake3_final(&h, b, 32);
    assert_memory_equal(a, b, 32);

    char tmpl[] = "/tmp/sc-b3-XXXXXX";
    int fd = mkostemp(tmpl, O_CLOEXEC);
    assert_true(fd >= 0);
    unlink(tmpl);
    assert_int_equal(sc_write_all(fd, in, n), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    uint64_t size = 0;
    assert_int_equal(img_blake3_fd(fd, c, &size), 0);
    assert_int_equal(size, n);
    assert_memory_equal(a, c, 32);
    close(fd);

    char hex[65];
    img_blake3_hex(a, hex);
    assert_int_equal(strlen(hex), 64);
    /* A changed byte changes the digest. */
    in[n / 2] ^= 1;
    img_blake3_hash(in, n, b);
    assert_memory_not_equal(a, b, 32);
}

/* Runs b3sum on path and returns its hex digest (the test ends the child itself). */
static void run_b3sum(const char *path, char out[65])
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        execlp("b3sum", "b3sum", "--no-names", path, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[128] = {0};
    size_t got = 0;
    ssize_t r;
    while ((r = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    close(p[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("b3sum failed (status %d); is Debian's b3sum installed (scripts/deps.sh)?", st);
    assert_true(got >= 64);
    memcpy(out, buf, 64);
    out[64] = '\0';
}

static void agrees_with_b3sum(void **state)
{
    /* Lengths around blocks, chunks, the 8-chunk batch and uneven trees. */
    static const size_t lens[] = {
        0,    1,    63,   64,    65,    1023,  1024,  1025,  2048,     7168,     8191,
        8192, 8193, 9216, 16385, 25605, 31744, 65536, 65537, 1u << 20, 3u << 20, (5u << 20) + 77};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < ELEMENTSOF(lens); k++) {
        size_t n = lens[k];
        _cleanup_free_ uint8_t *in = xmalloc(n);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = (uint8_t)x;
        }
        char tmpl[] = "/tmp/sc-b3-XXXXXX";
        int fd = mkostemp(tmpl, O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(sc_write_all(fd, in, n), 0);
        close(fd);
        char theirs[65], ours[65];
        uint8_t d[32];
        run_b3sum(tmpl, theirs);
        unlink(tmpl);
        img_blake3_hash(in, n, d);
        img_blake3_hex(d, ours);
        if (strcmp(ours, theirs) != 0)
            fail_msg("len=%zu: ours %s, b3sum %s", n, ours, theirs);
    }
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(official_vectors),
        cmocka_unit_test(oneshot_and_fd),
        cmocka_unit_test(agrees_with_b3sum),
    };
    return sc_test_main(tests, argc, argv);
}
