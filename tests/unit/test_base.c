/* test_base.c: the codec, CRC-32C, error table and histogram of src/base. */
#include "harness.h"

#include <errno.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hist.h"
#include "base/u64map.h"
#include "base/util.h"

static void crc32c_known_vectors(void **state)
{
    /* RFC 3720 B.4 check value and the all-zero 32-byte vector. */
    assert_int_equal(sc_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(sc_crc32c(0, zeros, 32), 0x8A9136AAu);
    /* Incremental equals one-shot. */
    uint32_t c = sc_crc32c(0, "1234", 4);
    assert_int_equal(sc_crc32c(c, "56789", 5), 0xE3069283u);
}

static void varint_roundtrip_and_truncation(void **state)
{
    static const uint64_t u[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
    static const int64_t s[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
    struct sc_buf b = {0};
    for (size_t i = 0; i < ELEMENTSOF(u); i++)
        sc_buf_put_uvarint(&b, u[i]);
    for (size_t i = 0; i < ELEMENTSOF(s); i++)
        sc_buf_put_svarint(&b, s[i]);
    sc_buf_put_bytes(&b, "hello", 5);

    struct sc_rd r = sc_rd_make(b.data, b.len);
    for (size_t i = 0; i < ELEMENTSOF(u); i++) {
        uint64_t v;
        assert_int_equal(sc_rd_uvarint(&r, &v), 0);
        assert_int_equal(v, u[i]);
    }
    for (size_t i = 0; i < ELEMENTSOF(s); i++) {
        int64_t v;
        assert_int_equal(sc_rd_svarint(&r, &v), 0);
        assert_int_equal(v, s[i]);
    }
    const uint8_t *p;
    size_t n;
    assert_int_equal(sc_rd_bytes(&r, &p, &n, 100), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(sc_rd_left(&r), 0);

    /* Every strict prefix of an encoding fails cleanly. */
    for (size_t cut = 0; cut < b.len; cut++) {
        struct sc_rd t = sc_rd_make(b.data, cut);
        int err = 0;
        uint64_t v;
        int64_t sv;
        for (size_t i = 0; i < ELEMENTSOF(u) && !err; i++)
            err = sc_rd_uvarint(&t, &v);
        for (size_t i = 0; i < ELEMENTSOF(s) && !err; i++)
            err = sc_rd_svarint(&t, &sv);
        if (!err)
            err = sc_rd_bytes(&t, &p, &n, 100);
        assert_int_equal(err, -SC_E_CORRUPT);
    }
    /* A length above the caller's bound is refused. */
    struct sc_rd t = sc_rd_make(b.data, b.len);
    t.p = b.data + b.len - 6;
    assert_int_equal(sc_rd_bytes(&t, &p, &n, 4), -SC_E_CORRUPT);
    /* An 11-byte varint overflows. */
    uint8_t big[11];
    memset(big, 0xff, sizeof(big));
    struct sc_rd o = sc_rd_make(big, sizeof(big));
    uint64_t v;
    assert_int_equal(sc_rd_uvarint(&o, &v), -SC_E_CORRUPT);
    sc_buf_free(&b);
}

static void error_table(void **state)
{
    assert_string_equal(sc_err_name(-SC_E_COMPACTED), "compacted");
    assert_int_equal(sc_err_http_status(-SC_E_COMPACTED), 410);
    assert_int_equal(sc_err_http_status(-SC_E_NOT_FOUND), 404);
    assert_int_equal(sc_err_http_status(-SC_E_VALUE_TOO_LARGE), 413);
    assert_int_equal(sc_err_http_status(-EIO), 500);
    assert_string_equal(sc_err_message(-ENOENT), strerror(ENOENT));
    struct sc_error e;
    assert_int_equal(sc_error_set(&e, -SC_E_INVALID, "key", "bad %d", 7), -SC_E_INVALID);
    assert_string_equal(e.msg, "bad 7");
    assert_string_equal(e.field, "key");
    /* Every row has a name and a 4xx/5xx status. */
    for (int c = SC_E_BASE + 1; c < SC_E_END; c++) {
        assert_true(strlen(sc_err_name(-c)) > 0);
        assert_in_range(sc_err_http_status(-c), 400, 599);
    }
}

static void histogram_quantiles(void **state)
{
    struct sc_hist h = {0};
    for (int i = 0; i < 99; i++)
        sc_hist_observe(&h, 100);
    sc_hist_observe(&h, 5000);
    assert_int_equal(h.count, 100);
    assert_int_equal(sc_hist_quantile_usec(&h, 0.5), 128);
    assert_int_equal(sc_hist_quantile_usec(&h, 1.0), 8192);
    struct sc_buf out = {0};
    sc_hist_render(&h, "x_seconds", "help", &out);
    sc_buf_put_u8(&out, 0);
    assert_non_null(strstr((char *)out.data, "x_seconds_count 100\n"));
    assert_non_null(strstr((char *)out.data, "x_seconds_bucket{le=\"+Inf\"} 100\n"));
    sc_buf_free(&out);
}

/* Random inserts and deletes against a plain array; small key range so probe
 * runs collide and backward-shift deletion is exercised. */
static void u64map_matches_reference(void **state)
{
    enum { N = 512 };
    static void *ref[N];
    struct u64map m = {0};
    uint64_t x = 88172645463325252ULL;
    for (int step = 0; step < 200000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t k = 1 + x % (N - 1);
        void *v = (void *)(uintptr_t)(x | 1);
        if ((x >> 40) % 3) {
            u64map_put(&m, k, v);
            ref[k] = v;
        } else {
            assert_ptr_equal(u64map_del(&m, k), ref[k]);
            ref[k] = NULL;
        }
        if (step % 997 == 0) {
            size_t live = 0;
            for (uint64_t i = 1; i < N; i++) {
                assert_ptr_equal(u64map_get(&m, i), ref[i]);
                live += ref[i] != NULL;
            }
            assert_int_equal(m.len, live);
            size_t seen = 0;
            uint64_t key;
            void *val;
            for (size_t it = 0; u64map_next(&m, &it, &key, &val);) {
                assert_ptr_equal(val, ref[key]);
                seen++;
            }
            assert_int_equal(seen, live);
        }
    }
    assert_null(u64map_get(&m, 0));
    u64map_done(&m);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_known_vectors),
        cmocka_unit_test(varint_roundtrip_and_truncation),
        cmocka_unit_test(error_table),
        cmocka_unit_test(histogram_quantiles),
        cmocka_unit_test(u64map_matches_reference),
    };
    return sc_test_main(tests, argc, argv);
}
