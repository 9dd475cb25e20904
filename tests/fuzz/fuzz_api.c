/*
 * fuzz_api.c: libFuzzer harness for the API request decoding of src/api/kvapi.h,
 * plus the encoders whose output a client must be able to decode back.
 *
 * The first input byte picks a target, the rest is its input:
 *   0  api_decode_txn      a txn body; on success the command must pass
 *                          store_cmd_validate and survive store_cmd_encode ->
 *                          store_cmd_decode -> store_cmd_encode byte for byte;
 *   1  api_decode_lease_grant, 2 api_decode_compact
 *                          on failure the error must be a 4xx with a message
 *                          (a bad body is the client's fault, never a 500);
 *   3  api_query_parse     then every parsed name is found by api_query_get and
 *                          the int/bool getters of the names the server reads;
 *   4  api_percent_decode  output never longer than the input;
 *   5  base64              encode(input) decodes back to the input, and decoding
 *                          the input itself never crashes;
 *   6  api_json_str / api_json_bytes_field
 *                          the hand-written JSON must parse (jansson) and give
 *                          back exactly the input bytes (text or base64).
 * Any violated property aborts, which libFuzzer reports as a crash.
 *
 * Run: tests/fuzz/run.sh (short, in CI); longer by hand, e.g.
 *   BUILD/tests/fuzz/fuzz_api -max_total_time=3600 corpus_dir/
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kvapi.h"
#include "base/buf.h"
#include "base/err.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_api: property violated: %s (%s:%d)\n", #cond, __FILE__,          \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_client_error(int r, const struct sc_error *e)
{
    CHECK(r < 0);
    int http = sc_err_http_status(r);
    CHECK(http == 400 || http == 413);
    CHECK(e->msg[0] != '\0');
    CHECK(memchr(e->msg, '\0', sizeof(e->msg)) != NULL);
    CHECK(memchr(e->field, '\0', sizeof(e->field)) != NULL);
}

static void fuzz_txn(const char *p, size_t n)
{
    struct store_limits l;
    store_limits_default(&l);
    struct api_body b = {0};
    struct sc_error e = {0};
    int r = api_decode_txn(p, n, &l, &b, &e);
    if (r < 0) {
        check_client_error(r, &e);
    } else {
        struct sc_error e2 = {0};
        CHECK(b.cmd.type == STORE_CMD_TXN);
        CHECK(store_cmd_validate(&b.cmd, &l, &e2) >= 0);
        struct sc_buf a = {0}, c = {0};
        store_cmd_encode(&b.cmd, &a);
        struct store_cmd d;
        memset(&d, 0, sizeof(d));
        CHECK(store_cmd_decode(a.data, a.len, &d) >= 0);
        store_cmd_encode(&d, &c);
        CHECK(a.len == c.len && memcmp(a.data, c.data, a.len) == 0);
        store_cmd_done(&d);
        sc_buf_free(&a);
        sc_buf_free(&c);
    }
    api_body_done(&b);
}

static void fuzz_lease_compact(int which, const char *p, size_t n)
{
    struct api_body b = {0};
    struct sc_error e = {0};
    int r = which == 1 ? api_decode_lease_grant(p, n, &b, &e) : api_decode_compact(p, n, &b, &e);
    if (r < 0)
        check_client_error(r, &e);
    else if (which == 1)
        CHECK(b.cmd.type == STORE_CMD_LEASE_GRANT && b.cmd.ttl_sec > 0);
    else
        CHECK(b.cmd.type == STORE_CMD_COMPACT);
    api_body_done(&b);
}

static void fuzz_query(const char *p, size_t n)
{
    char *qs = malloc(n + 1);
    memcpy(qs, p, n);
    qs[n] = '\0';
    struct api_query q;
    memset(&q, 0, sizeof(q));
    struct sc_error e = {0};
    int r = api_query_parse(qs, &q, &e);
    if (r < 0) {
        check_client_error(r, &e);
    } else {
        CHECK(q.n <= API_QUERY_MAX);
        for (size_t i = 0; i < q.n; i++) {
            size_t len;
            CHECK(q.kv[i].name != NULL);
            CHECK(api_query_get(&q, q.kv[i].name, &len) != NULL);
        }
        static const char *const names[] = {"rev",   "limit",      "prefix",    "watch",
                                            "lease", "count_only", "keys_only", "prev_kv"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            int64_t v;
            bool bv;
            struct sc_error e2 = {0};
            if (api_query_int(&q, names[i], 0, &v, &e2) >= 0)
                CHECK(v >= 0);
            else
                check_client_error(-SC_E_INVALID, &e2);
            memset(&e2, 0, sizeof(e2));
            (void)api_query_bool(&q, names[i], &bv, &e2);
        }
    }
    api_query_done(&q);
    free(qs);
}

static void fuzz_percent(const char *p, size_t n)
{
    uint8_t *out = NULL;
    size_t len = 0;
    if (api_percent_decode(p, n, &out, &len) >= 0)
        CHECK(len <= n);
    free(out);
}

static void fuzz_base64(const uint8_t *p, size_t n)
{
    struct sc_buf enc = {0};
    api_base64_encode(&enc, p, n);
    CHECK(enc.len == (n + 2) / 3 * 4);
    uint8_t *dec = NULL;
    size_t len = 0;
    CHECK(api_base64_decode((const char *)enc.data, enc.len, &dec, &len) >= 0);
    CHECK(len == n && (n == 0 || memcmp(dec, p, n) == 0));
    free(dec);
    dec = NULL;
    if (api_base64_decode((const char *)p, n, &dec, &len) >= 0)
        CHECK(len <= n);
    free(dec);
    sc_buf_free(&enc);
}

static void fuzz_json_out(const uint8_t *p, size_t n)
{
    struct sc_buf out = {0};
    if (api_json_str(&out, p, n) == 0) {
        json_error_t je;
        json_t *j =
            json_loadb((const char *)out.data, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        CHECK(j && json_is_string(j));
        CHECK(json_string_length(j) == n && memcmp(json_string_value(j), p, n) == 0);
        json_decref(j);
    } else {
        CHECK(out.len == 0);
    }
    sc_buf_reset(&out);
    sc_buf_put(&out, "{", 1);
    api_json_bytes_field(&out, "value", p, n);
    sc_buf_put(&out, "}", 1);
    json_error_t je;
    json_t *j = json_loadb((const char *)out.data, out.len, JSON_ALLOW_NUL, &je);
    CHECK(j != NULL);
    json_t *v = json_object_get(j, "value");
    json_t *v64 = json_object_get(j, "value_base64");
    CHECK((v != NULL) != (v64 != NULL));
    if (v) {
        CHECK(json_string_length(v) == n && memcmp(json_string_value(v), p, n) == 0);
    } else {
        uint8_t *dec = NULL;
        size_t len = 0;
        CHECK(api_base64_decode(json_string_value(v64), json_string_length(v64), &dec, &len) >= 0);
        CHECK(len == n && (n == 0 || memcmp(dec, p, n) == 0));
        free(dec);
    }
    json_decref(j);
    sc_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 7) {
    case 0:
        fuzz_txn((const char *)p, n);
        break;
    case 1:
    case 2:
        fuzz_lease_compact(data[0] % 7, (const char *)p, n);
        break;
    case 3:
        fuzz_query((const char *)p, n);
        break;
    case 4:
        fuzz_percent((const char *)p, n);
        break;
    case 5:
        fuzz_base64(p, n);
        break;
    case 6:
        fuzz_json_out(p, n);
        break;
    }
    return 0;
}
