/*
 * test_objects.c: label selectors (every form, and errors that name the column),
 * object names, the server-owned metadata through create, spec update, status
 * update and no-op update, and decoding of an API body into a canonical
 * Deployment with field-path errors.
 */
#include "harness.h"

#include "objects/objects.h"

static bool sel_match(const char *sel, const char *labels_json)
{
    struct obj_selector s;
    struct sc_error e = {0};
    assert_int_equal(obj_selector_parse(sel, &s, &e), 0);
    json_t *l = json_loads(labels_json, 0, NULL);
    bool m = obj_selector_match(&s, l);
    json_decref(l);
    obj_selector_done(&s);
    return m;
}

static void test_selector_forms(void **state)
{
    (void)state;
    const char *web = "{\"app\":\"web\",\"tier\":\"front\",\"env\":\"prod\"}";
    assert_true(sel_match("", web));
    assert_true(sel_match("app=web", web));
    assert_true(sel_match("app==web", web));
    assert_false(sel_match("app=api", web));
    assert_true(sel_match("app=web, tier!=db", web));
    assert_false(sel_match("app=web,tier!=front", web));
    assert_true(sel_match("env in (prod, staging)", web));
    assert_false(sel_match("env notin (prod)", web));
    assert_true(sel_match("env notin (dev),gpu notin (yes)", web)); /* missing label: not in */
    assert_true(sel_match("tier", web));
    assert_false(sel_match("gpu", web));
    assert_true(sel_match("!gpu", web));
    assert_false(sel_match("!app", web));
    assert_true(sel_match("app.kubernetes.io/name!=x", web));
    assert_false(sel_match("app=web", "{}"));
}

static void test_selector_errors(void **state)
{
    (void)state;
    struct {
        const char *sel, *msg;
    } bad[] = {
        {"app=web,", "column 9: expected a label key, found the end"},
        {"env in prod", "column 8: expected '(' after 'in'"},
        {"env in (a b)", "column 11: expected ',' or ')'"},
        {"app=web tier=x", "column 9: expected ',' or the end"},
        {"=web", "column 1: expected a label key, found another character"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct obj_selector s;
        struct sc_error e = {0};
        assert_int_equal(obj_selector_parse(bad[i].sel, &s, &e), -SC_E_INVALID);
        assert_string_equal(e.field, "selector");
        assert_string_equal(e.msg, bad[i].msg);
    }
}

static void test_names_and_kinds(void **state)
{
    (void)state;
    struct sc_error e = {0};
    assert_int_equal(obj_name_check("web-1", 5, &e), 0);
    assert_int_equal(obj_name_check("Web", 3, &e), -SC_E_INVALID);
    assert_int_equal(obj_name_check("-web", 4, &e), -SC_E_INVALID);
    assert_int_equal(obj_name_check("web-", 4, &e), -SC_E_INVALID);
    assert_int_equal(obj_name_check("", 0, &e), -SC_E_INVALID);
    char long_name[65];
    memset(long_name, 'a', 64);
    assert_int_equal(obj_name_check(long_name, 64, &e), -SC_E_INVALID);
    assert_non_null(obj_kind_by_plural("deployments", 11));
    assert_null(obj_kind_by_plural("deployment", 10));
    assert_string_equal(obj_kind_by_name("Deployment")->plural, "deployments");
    struct sc_buf b = {0};
    obj_key(&b, obj_kind_by_name("Node"), "n1");
    sc_buf_put_u8(&b, 0);
    assert_string_equal((char *)b.data, "/registry/nodes/n1");
    sc_buf_free(&b);
}

static json_t *j(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_merge_metadata(void **state)
{
    (void)state;
    json_t *v1 = j("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"revision\":9},"
                   "\"spec\":{\"replicas\":2}}");
    json_t *s1 = obj_merge(NULL, v1, false, 86400000);
    json_t *md = json_object_get(s1, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "created")), "1970-01-02T00:00:00Z");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 1);
    assert_null(json_object_get(md, "revision"));

    /* a controller writes status: spec and generation stay */
    json_t *st = j("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
                   "\"spec\":{\"replicas\":99},\"status\":{\"ready\":2}}");
    json_t *s2 = obj_merge(s1, st, true, 999999999);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s2, "spec"), "replicas")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s2, "status"), "ready")),
                     2);
    md = json_object_get(s2, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "name")), "web");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 1);
    assert_string_equal(json_string_value(json_object_get(md, "created")), "1970-01-02T00:00:00Z");

    /* the user re-applies the same spec: no new generation, status kept */
    json_t *s3 = obj_merge(s2, v1, false, 999999999);
    md = json_object_get(s3, "metadata");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 1);
    assert_non_null(json_object_get(s3, "status"));

    /* a new spec: generation 2, status still the controller's */
    json_t *v2 =
        j("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},\"spec\":{\"replicas\":3},"
          "\"status\":{\"ready\":77}}");
    json_t *s4 = obj_merge(s3, v2, false, 999999999);
    md = json_object_get(s4, "metadata");
    assert_int_equal(json_integer_value(json_object_get(md, "generation")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s4, "status"), "ready")),
                     2);

    const char *stored = "{\"metadata\":{\"name\":\"web\"}}";
    json_t *p = obj_present((const uint8_t *)stored, strlen(stored), 42);
    assert_int_equal(obj_revision(p), 42);
    assert_null(obj_present((const uint8_t *)"[1]", 3, 1));
    json_decref(p);
    json_decref(v1);
    json_decref(v2);
    json_decref(st);
    json_decref(s1);
    json_decref(s2);
    json_decref(s3);
    json_decref(s4);
}

static void test_decode_deployment(void **state)
{
    (void)state;
    const struct obj_kind *k = obj_kind_by_name("Deployment");
    const char *ok = "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
                     "\"spec\":{\"image\":\"hello:1.0\",\"replicas\":4,"
                     "\"resources\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"}}}";
    json_t *o = NULL;
    struct sc_error e = {0};
    assert_int_equal(obj_decode(k, "web", ok, strlen(ok), &o, &e), 0);
    json_t *res = json_object_get(json_object_get(o, "spec"), "resources");
    assert_int_equal(json_integer_value(json_object_get(res, "cpuMillis")), 100);
    assert_int_equal(json_integer_value(json_object_get(res, "memoryBytes")), 64 << 20);
    json_decref(o);

    assert_int_equal(obj_decode(k, "api", ok, strlen(ok), &o, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "metadata.name");

    const char *neg = "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
                      "\"spec\":{\"image\":\"hello:1.0\",\"replicas\":-3}}";
    assert_int_equal(obj_decode(k, "web", neg, strlen(neg), &o, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "spec.replicas");
    assert_non_null(strstr(e.msg, "non-negative"));

    assert_int_equal(obj_decode(k, "web", "{\"kind\":", 8, &o, &e), -SC_E_INVALID);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selector_forms),    cmocka_unit_test(test_selector_errors),
        cmocka_unit_test(test_names_and_kinds),   cmocka_unit_test(test_merge_metadata),
        cmocka_unit_test(test_decode_deployment),
    };
    return sc_test_main(tests, argc, argv);
}
