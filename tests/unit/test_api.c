/* test_api.c: request decoding and response encoding of the store API (src/api). */
#include "harness.h"

#include "api/kvapi.h"
#include "base/util.h"

static struct store_limits lim(void)
{
    struct store_limits l;
    store_limits_default(&l);
    l.max_txn_ops = 4;
    return l;
}

static char *str(struct sc_buf *b)
{
    sc_buf_put_u8(b, 0);
    b->len--;
    return (char *)b->data;
}

static void txn_decodes_every_operation(void **state)
{
    const char *body =
        "{\"compare\":[{\"key\":\"a\",\"target\":\"mod\",\"result\":\"<\",\"value\":5},"
        "{\"key\":\"b\",\"target\":\"value\",\"result\":\"=\",\"value_base64\":\"AAE=\"}],"
        "\"success\":[{\"put\":{\"key\":\"a\",\"value\":\"x\",\"lease\":3,\"prev_kv\":true}},"
        "{\"delete\":{\"key\":\"p/\",\"prefix\":true}}],"
        "\"failure\":[{\"get\":{\"key\":\"a\",\"rev\":2,\"limit\":1,\"keys_only\":true}}]}";
    struct store_limits l = lim();
    l.max_txn_ops = 5; /* two compares and three operations */
    struct api_body b;
    struct sc_error e = {0};
    assert_int_equal(api_decode_txn(body, strlen(body), &l, &b, &e), 0);
    assert_int_equal(b.cmd.ncmps, 2);
    assert_int_equal(b.cmd.cmps[0].target, STORE_CMP_MOD);
    assert_int_equal(b.cmd.cmps[0].op, STORE_CMP_LT);
    assert_int_equal(b.cmd.cmps[0].num, 5);
    assert_int_equal(b.cmd.cmps[1].value_len, 2);
    assert_memory_equal(b.cmd.cmps[1].value, "\0\1", 2);
    assert_int_equal(b.cmd.nsuccess, 2);
    assert_int_equal(b.cmd.success[0].lease, 3);
    assert_true(b.cmd.success[0].prev_kv);
    assert_true(b.cmd.success[1].prefix);
    assert_int_equal(b.cmd.failure[0].rev, 2);
    assert_true(b.cmd.failure[0].keys_only);
    api_body_done(&b);
}

/* Each bad body fails with the named field and a message that says what. */
static void txn_errors_name_the_field(void **state)
{
    static const struct {
        const char *body, *field, *msg_part;
        int code;
    } cases[] = {
        {"{\"success\":[{\"put\":{\"key\":\"a\"}}]", "body", "line 1", -SC_E_INVALID},
        {"[1]", "body", "JSON object", -SC_E_INVALID},
        {"{\"sucess\":[]}", "", "unknown field \"sucess\"", -SC_E_INVALID},
        {"{\"success\":[{\"put\":{\"key\":\"a\"}}]}", "success[0].put", "value is required",
         -SC_E_INVALID},
        {"{\"success\":[{\"put\":{\"key\":\"a\",\"value\":1}}]}", "success[0].put",
         "must be a string", -SC_E_INVALID},
        {"{\"success\":[{\"frob\":{}}]}", "success[0]", "unknown operation", -SC_E_INVALID},
        {"{\"success\":[{\"get\":{\"key\":\"a\",\"limit\":\"x\"}}]}", "success[0].get", "integer",
         -SC_E_INVALID},
        {"{\"compare\":[{\"key\":\"a\",\"target\":\"mod\",\"result\":\"~\",\"value\":1}]}",
         "compare[0]", "result", -SC_E_INVALID},
        {"{\"success\":[{\"put\":{\"key\":\"\",\"value\":\"v\"}}]}", "success[0].key", "empty",
         -SC_E_INVALID},
        {"{\"success\":[{\"get\":{\"key\":\"a\"}},{\"get\":{\"key\":\"a\"}},{\"get\":{\"key\":"
         "\"a\"}},"
         "{\"get\":{\"key\":\"a\"}},{\"get\":{\"key\":\"a\"}}]}",
         "success", "limit is 4", -SC_E_TOO_MANY_OPS},
        {"{\"success\":[{\"put\":{\"key\":\"a\",\"value_base64\":\"!!\"}}]}", "success[0].put",
         "base64", -SC_E_INVALID},
    };
    struct store_limits l = lim();
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        struct api_body b;
        struct sc_error e = {0};
        int r = api_decode_txn(cases[i].body, strlen(cases[i].body), &l, &b, &e);
        if (r != cases[i].code || strcmp(e.field, cases[i].field) ||
            !strstr(e.msg, cases[i].msg_part))
            fail_msg("case %zu: r=%d field=\"%s\" msg=\"%s\"", i, r, e.field, e.msg);
    }
}

static void lease_and_compact_bodies(void **state)
{
    struct api_body b;
    struct sc_error e = {0};
    assert_int_equal(api_decode_lease_grant("{\"ttl\":10}", 10, &b, &e), 0);
    assert_int_equal(b.cmd.ttl_sec, 10);
    assert_int_equal(b.cmd.lease_id, 0);
    api_body_done(&b);
    assert_int_equal(api_decode_lease_grant("{\"ttl\":0}", 9, &b, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "ttl");
    assert_int_equal(api_decode_lease_grant("{}", 2, &b, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "ttl");
    assert_int_equal(api_decode_compact("{\"revision\":7}", 14, &b, &e), 0);
    assert_int_equal(b.cmd.compact_rev, 7);
    api_body_done(&b);
    assert_int_equal(api_decode_compact("{\"revision\":-1}", 15, &b, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "revision");
}

static void query_and_percent(void **state)
{
    struct api_query q;
    struct sc_error e = {0};
    assert_int_equal(api_query_parse("prefix=a%2Fb&watch&rev=12&x=1+2", &q, &e), 0);
    size_t n;
    assert_string_equal(api_query_get(&q, "prefix", &n), "a/b");
    assert_int_equal(n, 3);
    bool w;
    assert_int_equal(api_query_bool(&q, "watch", &w, &e), 0);
    assert_true(w);
    int64_t rev;
    assert_int_equal(api_query_int(&q, "rev", 0, &rev, &e), 0);
    assert_int_equal(rev, 12);
    assert_string_equal(api_query_get(&q, "x", NULL), "1 2");
    assert_int_equal(api_query_int(&q, "x", 0, &rev, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "x");
    api_query_done(&q);
    assert_int_equal(api_query_parse("a=%4", &q, &e), -SC_E_INVALID);
    assert_int_equal(api_query_parse("a=%zz", &q, &e), -SC_E_INVALID);
    uint8_t *d;
    assert_int_equal(api_percent_decode("%00%ff", 6, &d, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], 0xff);
    free(d);
}

static void json_encoding(void **state)
{
    struct sc_buf b = {0};
    assert_int_equal(api_json_str(&b, (const uint8_t *)"a\"\\\n\x01\xc3\xa9", 7), 0);
    assert_string_equal(str(&b), "\"a\\\"\\\\\\n\\u0001\xc3\xa9\"");
    sc_buf_reset(&b);
    /* Invalid UTF-8 (a lone continuation byte, an overlong, a surrogate) is refused. */
    assert_int_equal(api_json_str(&b, (const uint8_t *)"\x80", 1), -1);
    assert_int_equal(api_json_str(&b, (const uint8_t *)"\xc0\xaf", 2), -1);
    assert_int_equal(api_json_str(&b, (const uint8_t *)"\xed\xa0\x80", 3), -1);
    assert_int_equal(b.len, 0);
    api_json_bytes_field(&b, "value", (const uint8_t *)"\xff\x00", 2);
    assert_string_equal(str(&b), "\"value_base64\":\"/wA=\"");
    sc_buf_reset(&b);
    struct store_kv kv = {.key = (const uint8_t *)"k",
                          .key_len = 1,
                          .value = (const uint8_t *)"v",
                          .value_len = 1,
                          .create_rev = 2,
                          .mod_rev = 3,
                          .version = 2};
    api_json_kv(&b, &kv);
    assert_string_equal(str(&b), "{\"key\":\"k\",\"value\":\"v\",\"create_revision\":2,"
                                 "\"mod_revision\":3,\"version\":2,\"lease\":0}");
    sc_buf_reset(&b);
    struct sc_error e;
    sc_error_set(&e, -SC_E_COMPACTED, "rev", "gone \"now\"");
    api_json_error(&b, -SC_E_COMPACTED, &e);
    assert_string_equal(str(&b),
                        "{\"error\":{\"code\":\"compacted\",\"message\":\"gone \\\"now\\\"\","
                        "\"field\":\"rev\"}}");
    sc_buf_free(&b);
}

static void base64_roundtrip(void **state)
{
    uint8_t data[64];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(data); n++) {
        struct sc_buf b = {0};
        api_base64_encode(&b, data, n);
        assert_int_equal(b.len, (n + 2) / 3 * 4);
        uint8_t *d;
        size_t dn;
        assert_int_equal(api_base64_decode((const char *)b.data, b.len, &d, &dn), 0);
        assert_int_equal(dn, n);
        assert_memory_equal(d, data, n);
        free(d);
        sc_buf_free(&b);
    }
    uint8_t *d;
    size_t dn;
    assert_int_equal(api_base64_decode("QQ=", 3, &d, &dn), -SC_E_INVALID);
    assert_int_equal(api_base64_decode("Q=QQ", 4, &d, &dn), -SC_E_INVALID);
    assert_int_equal(api_base64_decode("QUJD", 4, &d, &dn), 0);
    assert_memory_equal(d, "ABC", 3);
    free(d);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(txn_decodes_every_operation),
        cmocka_unit_test(txn_errors_name_the_field),
        cmocka_unit_test(lease_and_compact_bodies),
        cmocka_unit_test(query_and_percent),
        cmocka_unit_test(json_encoding),
        cmocka_unit_test(base64_roundtrip),
    };
    return sc_test_main(tests, argc, argv);
}
