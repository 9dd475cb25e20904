/*
 * test_sctl_yaml.c: the YAML writer of `sctl get -o yaml` (src/sctl/yaml_out.c).
 *
 * What it must guarantee is that its output loads again through src/manifest as
 * the same object, so `sctl get deployment web -o yaml > web.yaml` can be edited
 * and applied.  The round trips here go through the real reader (manifest_load_
 * buffer) with strings chosen to break a naive writer: ones a YAML reader would
 * take for numbers, booleans or null, YAML indicators, line breaks, quotes,
 * non-ASCII text.
 */
#include "harness.h"

#include <stdlib.h>

#include "manifest/manifest.h"
#include "sctl/yaml_out.h"

static char *yaml_of(const json_t *const *docs, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_int_equal(sctl_yaml_write(m, docs, n), 0);
    fclose(m);
    return buf;
}

/* Loads text as a manifest set; asserts it is valid. */
static void load_ok(const char *text, struct manifest_set *set)
{
    struct manifest_errors errs = {0};
    int r = manifest_load_buffer("out.yaml", text, strlen(text), set, &errs);
    if (r != 0) {
        manifest_errors_print(&errs, stderr);
        fprintf(stderr, "--- the YAML was:\n%s", text);
    }
    assert_int_equal(r, 0);
    manifest_errors_done(&errs);
}

static const char *const tricky[] = {
    "true",
    "False",
    "007",
    "1.5",
    "0x10",
    "1e3",
    "",
    "null",
    "~",
    "yes",
    "off",
    "-dash",
    "a: b",
    "# not a comment",
    "[x]",
    "{y}",
    "multi\nline\n",
    "quote\"s and 'single'",
    "ünïcode ✓",
    "  spaces  ",
    "*star",
    "&amp",
    "!bang",
    "%pct",
    "@at",
    "`tick",
    "tab\there",
    "trailing:",
    "key: value # comment",
};

static void deployment_round_trips_through_the_manifest_reader(void **state)
{
    char path[512];
    const char *td = getenv("SC_TESTDATA");
    snprintf(path, sizeof(path), "%s/../examples/web-api.yaml", td ? td : "tests");
    struct manifest_set set = {0}, back = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load(path, &set, &errs), 0);
    json_t *o = json_deep_copy(set.docs[0].object);
    /* what a GET adds: server metadata and a status */
    json_t *md = json_object_get(o, "metadata");
    json_object_set_new(md, "revision", json_integer(42));
    json_object_set_new(md, "generation", json_integer(3));
    json_object_set_new(md, "created", json_string("2024-05-01T12:00:00Z"));
    json_t *labels = json_object();
    json_object_set_new(labels, "v-true", json_string("true"));
    json_object_set_new(labels, "v-num", json_string("007"));
    json_object_set_new(labels, "v-float", json_string("1.5"));
    json_object_set_new(labels, "v-yes", json_string("yes"));
    json_object_set_new(labels, "example.com/tier", json_string("front"));
    json_object_set_new(md, "labels", labels);
    json_t *env = json_object_get(json_object_get(o, "spec"), "env");
    for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
        char name[16];
        snprintf(name, sizeof(name), "V%zu", i);
        json_object_set_new(env, name, json_string(tricky[i]));
    }
    json_object_set_new(o, "status",
                        json_pack("{s:i, s:i, s:i, s:i, s:s}", "observedGeneration", 3, "replicas",
                                  4, "assigned", 2, "ready", 1, "unschedulable",
                                  "0/3 nodes: 2 insufficient memory, 1 not matching zone=eu"));
    const json_t *docs[] = {o};
    char *text = yaml_of(docs, 1);
    load_ok(text, &back);
    assert_int_equal(back.n, 1);
    char *want = manifest_dump(o), *got = manifest_dump(back.docs[0].object);
    assert_string_equal(got, want);
    /* kind and metadata come first, as kubectl prints them */
    assert_true(
        strncmp(text, "kind: Deployment\napiVersion: v1\nmetadata:\n  name: web-api\n", 57) == 0);
    free(want);
    free(got);
    free(text);
    json_decref(o);
    manifest_set_done(&set);
    manifest_set_done(&back);
}

static void a_list_is_one_document_per_object(void **state)
{
    json_t *a = json_pack("{s:s, s:{s:s}, s:{s:s}}", "kind", "Deployment", "metadata", "name", "a",
                          "spec", "image", "web:1");
    json_t *b = json_pack("{s:s, s:{s:s}, s:{s:s, s:i}}", "kind", "Deployment", "metadata", "name",
                          "b", "spec", "image", "web:2", "replicas", 3);
    const json_t *docs[] = {a, b};
    char *text = yaml_of(docs, 2);
    assert_non_null(strstr(text, "\n---\n"));
    struct manifest_set set = {0};
    load_ok(text, &set);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.docs[0].name, "a");
    assert_string_equal(set.docs[1].name, "b");
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(set.docs[1].object, "spec"), "replicas")),
                     3);
    manifest_set_done(&set);
    free(text);
    json_decref(a);
    json_decref(b);
}

static void scalars_are_quoted_only_when_ambiguous(void **state)
{
    json_t *o = json_loads("{\"a\":\"true\",\"b\":\"007\",\"c\":\"web:1\",\"d\":1,\"e\":true,"
                           "\"f\":null,\"g\":[],\"h\":{},\"i\":1.0,\"j\":\"\",\"k\":[\"x\",2]}",
                           0, NULL);
    const json_t *docs[] = {o};
    char *text = yaml_of(docs, 1);
    assert_string_equal(text, "a: \"true\"\n"
                              "b: \"007\"\n"
                              "c: web:1\n"
                              "d: 1\n"
                              "e: true\n"
                              "f: null\n"
                              "g: []\n"
                              "h: {}\n"
                              "i: 1.0\n"
                              "j: \"\"\n"
                              "k:\n"
                              "- x\n"
                              "- 2\n");
    free(text);
    json_decref(o);
}

static void indented_blocks_for_describe(void **state)
{
    json_t *o =
        json_loads("{\"image\":\"web:1\",\"env\":{\"A\":\"1\"}}", JSON_PRESERVE_ORDER, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_int_equal(sctl_yaml_write_indented(m, o, 2), 0);
    json_t *s = json_string("plain");
    assert_int_equal(sctl_yaml_write_indented(m, s, 4), 0);
    fclose(m);
    assert_string_equal(buf, "  image: web:1\n  env:\n    A: \"1\"\n    plain\n");
    free(buf);
    json_decref(o);
    json_decref(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(deployment_round_trips_through_the_manifest_reader),
    cmocka_unit_test(a_list_is_one_document_per_object),
    cmocka_unit_test(scalars_are_quoted_only_when_ambiguous),
    cmocka_unit_test(indented_blocks_for_describe),
};

int main(int argc, char **argv)
{
    return sc_test_main(tests, argc, argv);
}
