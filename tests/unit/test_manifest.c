/*
 * test_manifest.c: the manifest library (src/manifest): YAML reading with
 * positions, the one schema for manifests and API bodies, canonical objects.
 *
 * Two corpora drive most of it (tests/manifest/):
 *   good/NAME.yaml  -> its canonical objects must equal good/NAME.json
 *   bad/NAME.yaml   -> loading must fail, the set must stay empty, and the printed
 *                      errors must equal bad/NAME.err (file:line:col: path: message)
 * SC_REWRITE=1 re-records the .json and .err files (then read the diff!).
 * The cases below pin what the corpora cannot: the API-body error format,
 * fixed points, all-or-nothing over directories, stdin, limits.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/util.h"
#include "manifest/manifest.h"

static const char *testdata(void)
{
    const char *d = getenv("SC_TESTDATA");
    return d ? d : "tests";
}

static bool rewriting(void)
{
    const char *r = getenv("SC_REWRITE");
    return r && strcmp(r, "1") == 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *errors_text(const struct manifest_errors *errs)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    manifest_errors_print(errs, m);
    fclose(m);
    return buf;
}

static char *set_text(const struct manifest_set *set)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < set->n; i++)
        json_array_append(arr, set->docs[i].object);
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(arr);
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    memcpy(s + n, "\n", 2);
    return s;
}

/* Names of dir's *.yaml files, sorted. */
static int yaml_only(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".yaml") == 0;
}

/* Compares got with the file at path, or rewrites it; returns 0 when equal. */
static int golden_compare(const char *path, const char *got)
{
    if (rewriting()) {
        spit(path, got);
        return 0;
    }
    char *want = slurp(path);
    int r = want && strcmp(want, got) == 0 ? 0 : -1;
    if (r)
        fprintf(stderr, "%s differs\n--- expected\n%s--- got\n%s", path,
                want ? want : "(missing)\n", got);
    free(want);
    return r;
}

/* ---- the corpora ------------------------------------------------------------------ */

static void good_corpus_matches_golden(void **state)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/manifest", testdata());
    assert_int_equal(chdir(dir), 0); /* errors and docs then name "good/x.yaml" */
    struct dirent **names;
    int n = scandir("good", &names, yaml_only, alphasort);
    assert_true(n >= 4);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[300], golden[300];
        snprintf(path, sizeof(path), "good/%s", names[i]->d_name);
        snprintf(golden, sizeof(golden), "good/%.*s.json", (int)strlen(names[i]->d_name) - 5,
                 names[i]->d_name);
        struct manifest_set set = {0};
        struct manifest_errors errs = {0};
        int r = manifest_load(path, &set, &errs);
        if (r != 0) {
            char *e = errors_text(&errs);
            fprintf(stderr, "%s: unexpected errors:\n%s", path, e);
            free(e);
            failed++;
        } else {
            char *got = set_text(&set);
            failed += golden_compare(golden, got) != 0;
            free(got);
        }
        manifest_set_done(&set);
        manifest_errors_done(&errs);
        free(names[i]);
    }
    free(names);
    /* the note's example as shipped in examples/ */
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load("../../examples/web-api.yaml", &set, &errs), 0);
    char *got = set_text(&set);
    failed += golden_compare("good/web-api.example.json", got) != 0;
    free(got);
    manifest_set_done(&set);
    assert_int_equal(failed, 0);
}

static void bad_corpus_matches_expected_errors(void **state)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/manifest", testdata());
    assert_int_equal(chdir(dir), 0);
    struct dirent **names;
    int n = scandir("bad", &names, yaml_only, alphasort);
    assert_true(n >= 15);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[300], expect[300];
        snprintf(path, sizeof(path), "bad/%s", names[i]->d_name);
        snprintf(expect, sizeof(expect), "bad/%.*s.err", (int)strlen(names[i]->d_name) - 5,
                 names[i]->d_name);
        struct manifest_set set = {0};
        struct manifest_errors errs = {0};
        int r = manifest_load(path, &set, &errs);
        if (r != -SC_E_INVALID || set.n != 0 || set.docs || errs.n == 0) {
            fprintf(stderr, "%s: r=%d docs=%zu errors=%zu: must fail with nothing loaded\n", path,
                    r, set.n, errs.n);
            failed++;
        }
        /* every error names this file and, unless the file as a whole is the problem, a
         * line and a column */
        for (size_t k = 0; k < errs.n; k++) {
            if (!errs.v[k].file || strcmp(errs.v[k].file, path) != 0 ||
                (errs.v[k].line == 0 && strstr(errs.v[k].msg, "no objects") == NULL)) {
                fprintf(stderr, "%s: error %zu lacks file:line:col: %s\n", path, k, errs.v[k].msg);
                failed++;
            }
        }
        char *got = errors_text(&errs);
        failed += golden_compare(expect, got) != 0;
        free(got);
        manifest_set_done(&set);
        manifest_errors_done(&errs);
        free(names[i]);
    }
    free(names);
    assert_int_equal(failed, 0);
}

/* ---- the note's example ----------------------------------------------------------- */

static json_t *load_one(const char *path)
{
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    int r = manifest_load(path, &set, &errs);
    if (r != 0)
        manifest_errors_print(&errs, stderr);
    assert_int_equal(r, 0);
    assert_int_equal(set.n, 1);
    json_t *o = json_incref(set.docs[0].object);
    manifest_set_done(&set);
    manifest_errors_done(&errs);
    return o;
}

static int64_t at_int(json_t *o, const char *path)
{
    json_t *v = o;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
        v = tok[0] >= '0' && tok[0] <= '9' ? json_array_get(v, (size_t)atoi(tok))
                                           : json_object_get(v, tok);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void note_example_loads_with_every_quantity_normalised(void **state)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/../examples/web-api.yaml", testdata());
    json_t *o = load_one(path);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "Deployment");
    json_t *spec = json_object_get(o, "spec");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "metadata"), "name")),
                        "web-api");
    assert_string_equal(json_string_value(json_object_get(spec, "image")),
                        "registry.local/web-api@blake3:9f2c");
    assert_int_equal(at_int(spec, "replicas"), 4);
    assert_int_equal(at_int(spec, "resources.cpuMillis"), 100);
    assert_int_equal(at_int(spec, "resources.memoryBytes"), 64 << 20);
    assert_int_equal(at_int(spec, "volumes.0.sizeBytes"), 1 << 30);
    assert_int_equal(at_int(spec, "health.readiness.periodMs"), 1000);
    assert_int_equal(at_int(spec, "health.liveness.periodMs"), 5000);
    assert_int_equal(at_int(spec, "ports.0.expose.listen"), 443);
    assert_int_equal(at_int(spec, "update.maxSurge"), 1);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(spec, "placement"), "nodeSelector"), "zone")),
        "eu-central");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(spec, "secrets"), 0), "name")),
                        "db-password");
    json_decref(o);
}

/* The canonical form validates to itself, through the API path too. */
static void canonical_form_is_a_fixed_point(void **state)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/manifest/good", testdata());
    assert_int_equal(chdir(dir), 0);
    struct dirent **names;
    int n = scandir(".", &names, yaml_only, alphasort);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        struct manifest_set set = {0};
        struct manifest_errors errs = {0};
        assert_int_equal(manifest_load(names[i]->d_name, &set, &errs), 0);
        for (size_t d = 0; d < set.n; d++) {
            char *once = manifest_dump(set.docs[d].object);
            json_t *again = NULL;
            assert_int_equal(manifest_parse_json(NULL, once, strlen(once), &again, &errs), 0);
            char *twice = manifest_dump(again);
            assert_string_equal(once, twice);
            free(once);
            free(twice);
            json_decref(again);
        }
        manifest_set_done(&set);
        manifest_errors_done(&errs);
        free(names[i]);
    }
    free(names);
}

static void compose_and_object_forms_agree(void **state)
{
    const char *compose = "app: web\n"
                          "labels: { tier: front }\n"
                          "image: web:1\n"
                          "resources: { cpu: 2, memory: 1Gi }\n";
    const char *object = "kind: Deployment\n"
                         "metadata: { name: web, labels: { tier: front } }\n"
                         "spec:\n"
                         "  image: web:1\n"
                         "  resources: { cpu: 2000m, memoryBytes: 1073741824 }\n";
    struct manifest_set a = {0}, b = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load_buffer("a", compose, strlen(compose), &a, &errs), 0);
    assert_int_equal(manifest_load_buffer("b", object, strlen(object), &b, &errs), 0);
    char *da = manifest_dump(a.docs[0].object), *db = manifest_dump(b.docs[0].object);
    assert_string_equal(da, db);
    assert_non_null(strstr(da, "\"cpuMillis\":2000"));
    free(da);
    free(db);
    manifest_set_done(&a);
    manifest_set_done(&b);
    manifest_errors_done(&errs);
}

/* ---- API bodies ------------------------------------------------------------------- */

static void json_body_errors_name_field_paths_only(void **state)
{
    const char *body = "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
                       "\"spec\":{\"image\":\"web:1\",\"replicas\":-3,\"replcas\":2,"
                       "\"ports\":[{\"container\":70000}]}}";
    json_t *out = NULL;
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_parse_json("Deployment", body, strlen(body), &out, &errs),
                     -SC_E_INVALID);
    assert_null(out);
    char *text = errors_text(&errs);
    assert_string_equal(text,
                        "spec.replcas: unknown field 'replcas', did you mean 'replicas'?\n"
                        "spec.replicas: expected a non-negative integer, got -3\n"
                        "spec.ports[0].container: expected a port number 1..65535, got 70000\n");
    assert_null(errs.v[0].file);
    assert_int_equal(errs.v[0].line, 0);
    free(text);
    manifest_errors_done(&errs);
}

static void json_body_kind_comes_from_the_path(void **state)
{
    struct manifest_errors errs = {0};
    json_t *out = NULL;
    /* the route names the kind: the body need not */
    const char *body = "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"image\":\"web:1\"}}";
    assert_int_equal(manifest_parse_json("Deployment", body, strlen(body), &out, &errs), 0);
    assert_string_equal(json_string_value(json_object_get(out, "kind")), "Deployment");
    json_decref(out);
    /* ... but without a route it must */
    assert_int_equal(manifest_parse_json(NULL, body, strlen(body), &out, &errs), -SC_E_INVALID);
    assert_string_equal(errs.v[0].msg, "missing required field 'kind' (e.g. kind: Deployment)");
    manifest_errors_done(&errs);
    /* a body of another kind on this route */
    const char *other = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n\"}}";
    assert_int_equal(manifest_parse_json("Deployment", other, strlen(other), &out, &errs),
                     -SC_E_INVALID);
    assert_string_equal(errs.v[0].path, "kind");
    assert_non_null(strstr(errs.v[0].msg, "expected kind 'Deployment' here, got 'Node'"));
    manifest_errors_done(&errs);
    /* JSON syntax and duplicate keys */
    assert_int_equal(manifest_parse_json("Deployment", "{\"a\":1,\"a\":2}", 13, &out, &errs),
                     -SC_E_INVALID);
    assert_non_null(strstr(errs.v[0].msg, "duplicate"));
    manifest_errors_done(&errs);
    assert_int_equal(manifest_parse_json("Deployment", "{\n\"a\":", 6, &out, &errs), -SC_E_INVALID);
    assert_non_null(strstr(errs.v[0].msg, "invalid JSON at line 2"));
    manifest_errors_done(&errs);
}

static void status_is_validated_and_kept(void **state)
{
    /* kept, so that a controller's `PUT .../status` body carries it; the server
     * keeps the stored status on a user's PUT (objects.h) */
    const char *body =
        "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"revision\":7,"
        "\"generation\":3,\"created\":\"2024-05-01T12:00:00Z\"},"
        "\"spec\":{\"image\":\"web:1\"},\"status\":{\"observedGeneration\":3,\"replicas\":4,"
        "\"assigned\":2,\"ready\":1,\"unschedulable\":\"0/3 nodes: 3 insufficient memory\"}}";
    json_t *out = NULL;
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_parse_json(NULL, body, strlen(body), &out, &errs), 0);
    assert_int_equal(at_int(out, "status.ready"), 1);
    assert_int_equal(at_int(out, "status.assigned"), 2);
    assert_int_equal(at_int(out, "metadata.revision"), 7);
    assert_int_equal(at_int(out, "metadata.generation"), 3);
    json_decref(out);
    const char *bad = "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
                      "\"spec\":{\"image\":\"web:1\"},\"status\":{\"redy\":3}}";
    assert_int_equal(manifest_parse_json(NULL, bad, strlen(bad), &out, &errs), -SC_E_INVALID);
    assert_string_equal(errs.v[0].path, "status.redy");
    assert_string_equal(errs.v[0].msg, "unknown field 'redy', did you mean 'ready'?");
    manifest_errors_done(&errs);
}

/* ---- the controllers' kinds --------------------------------------------------------- */

/* Parses body as kind; asserts it is valid and a fixed point; returns the object. */
static json_t *valid_body(const char *kind, const char *body)
{
    json_t *out = NULL, *again = NULL;
    struct manifest_errors errs = {0};
    int r = manifest_parse_json(kind, body, strlen(body), &out, &errs);
    if (r != 0) {
        char *e = errors_text(&errs);
        fprintf(stderr, "%s: unexpected errors:\n%s", kind, e);
        free(e);
    }
    assert_int_equal(r, 0);
    char *d1 = manifest_dump(out);
    assert_int_equal(manifest_parse_json(kind, d1, strlen(d1), &again, &errs), 0);
    char *d2 = manifest_dump(again);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    json_decref(again);
    manifest_errors_done(&errs);
    return out;
}

/* Parses body as kind; asserts it fails and that the errors read exactly want. */
static void invalid_body(const char *kind, const char *body, const char *want)
{
    json_t *out = NULL;
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_parse_json(kind, body, strlen(body), &out, &errs), -SC_E_INVALID);
    assert_null(out);
    char *text = errors_text(&errs);
    assert_string_equal(text, want);
    free(text);
    manifest_errors_done(&errs);
}

static const char *at_str(json_t *o, const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(json_object_get(o, a), b);
    return json_string_value(c ? json_object_get(v, c) : v);
}

static void revision_is_a_deployment_template(void **state)
{
    json_t *o = valid_body("Revision", "{\"metadata\":{\"name\":\"web-9f2c01ab34\","
                                       "\"generation\":1},"
                                       "\"spec\":{\"deployment\":\"web\",\"generation\":2,"
                                       "\"template\":{\"image\":\"web:1\","
                                       "\"resources\":{\"cpuMillis\":100}}}}");
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "Revision");
    assert_int_equal(at_int(o, "spec.template.resources.cpuMillis"), 100);
    /* the template gets a Deployment spec's defaults, except replicas: a template is
     * the spec without them (scaling keeps the Revision, docs/api.md) */
    assert_string_equal(at_str(json_object_get(o, "spec"), "template", "placement", "spread"),
                        "node");
    assert_null(
        json_object_get(json_object_get(json_object_get(o, "spec"), "template"), "replicas"));
    json_decref(o);
    invalid_body("Revision",
                 "{\"metadata\":{\"name\":\"web-2\"},\"spec\":{\"deployment\":\"web\","
                 "\"generation\":0,\"template\":{\"image\":\"web:1\",\"replicas\":2,"
                 "\"ports\":[{\"container\":0}]}}}",
                 "spec.generation: expected an integer of at least 1, got 0\n"
                 "spec.template.replicas: unknown field 'replicas' (known fields: image, command, "
                 "env, resources, ports, secrets, volumes, health, capabilities, placement, "
                 "update)\n"
                 "spec.template.ports[0].container: expected a port number 1..65535, got 0\n");
    invalid_body("Revision",
                 "{\"metadata\":{\"name\":\"web-2\"},\"spec\":{\"deployment\":\"web\"}}",
                 "spec: missing required field 'generation' (an integer of at least 1)\n"
                 "spec: missing required field 'template' (a mapping)\n");
}

static void assignment_shape(void **state)
{
    json_t *o =
        valid_body("Assignment", "{\"kind\":\"Assignment\",\"metadata\":{\"name\":\"web-2-0\","
                                 "\"labels\":{\"deployment\":\"web\",\"node\":\"n1\"}},"
                                 "\"spec\":{\"deployment\":\"web\",\"revision\":\"web-2\","
                                 "\"generation\":2,\"node\":\"n1\",\"memoryBytes\":67108864}}");
    assert_int_equal(at_int(o, "spec.cpuMillis"), 0); /* no request: 0, written out */
    assert_int_equal(at_int(o, "spec.memoryBytes"), 64 << 20);
    assert_string_equal(at_str(o, "metadata", "labels", "node"), "n1");
    json_decref(o);
    invalid_body("Assignment",
                 "{\"metadata\":{\"name\":\"web-2-0\"},\"spec\":{\"deployment\":\"web\","
                 "\"revision\":2,\"generation\":2,\"node\":\"N1\",\"cpu\":\"100m\"}}",
                 "spec.cpu: unknown field 'cpu' (known fields: deployment, revision, generation, "
                 "node, cpuMillis, memoryBytes, draining, drainingSinceMs, drainMs)\n"
                 "spec.revision: expected the name of a Revision, got 2\n"
                 "spec.node: expected the name of a Node, got 'N1': "
                 "upper-case letters are not allowed\n");
}

static void node_shape(void **state)
{
    json_t *o =
        valid_body("Node", "{\"metadata\":{\"name\":\"n1\",\"labels\":{\"zone\":\"eu\"}},"
                           "\"spec\":{\"addresses\":[\"10.0.0.5\",\"fd00:0:0::5\"],"
                           "\"capacity\":{\"cpuMillis\":4000,\"memoryBytes\":8589934592},"
                           "\"allocatable\":{\"cpuMillis\":3500,\"memoryBytes\":8000000000},"
                           "\"unschedulable\":false},\"status\":{\"conditions\":[]}}");
    /* IPv6 in inet_ntop's spelling, so that the canonical form is a fixed point */
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(o, "spec"), "addresses"), 1)),
                        "fd00::5");
    assert_int_equal(at_int(o, "spec.allocatable.cpuMillis"), 3500);
    json_decref(o);
    invalid_body("Node",
                 "{\"metadata\":{\"name\":\"n1\"},\"spec\":{\"addresses\":[\"10.0.0.500\"],"
                 "\"capacity\":{\"cpuMillis\":-1,\"memoryBytes\":1},\"allocatable\":{}}}",
                 "spec.addresses[0]: expected an IP address like 10.0.0.5 or fd00::5, got "
                 "'10.0.0.500': not an IPv4 address\n"
                 "spec.capacity.cpuMillis: expected an integer between 0 and 1000000000, got -1\n"
                 "spec.allocatable: missing required field 'cpuMillis' (an integer between 0 and "
                 "1000000000)\n"
                 "spec.allocatable: missing required field 'memoryBytes' (an integer of at least "
                 "0)\n");
    invalid_body("Node", "{\"metadata\":{\"name\":\"n1\"},\"spec\":{}}",
                 "spec: missing required field 'capacity' (a mapping)\n");
}

static void instance_shape(void **state)
{
    json_t *o =
        valid_body("Instance", "{\"metadata\":{\"name\":\"web-2-0\"},\"spec\":{\"assignment\":"
                               "\"web-2-0\",\"node\":\"n1\",\"revision\":\"web-2\"},"
                               "\"status\":{\"phase\":\"running\",\"addresses\":[\"10.88.0.2\"],"
                               "\"startedAt\":\"2024-05-01T12:00:00.125+02:00\"}}");
    assert_false(json_is_true(json_object_get(json_object_get(o, "status"), "ready")));
    assert_int_equal(at_int(o, "status.restarts"), 0);
    json_decref(o);
    /* no status yet: none is made up */
    o = valid_body("Instance", "{\"metadata\":{\"name\":\"web-2-0\"},\"spec\":{\"assignment\":"
                               "\"web-2-0\",\"node\":\"n1\",\"revision\":\"web-2\"}}");
    assert_null(json_object_get(o, "status"));
    json_decref(o);
    invalid_body("Instance",
                 "{\"metadata\":{\"name\":\"web-2-0\"},\"spec\":{\"assignment\":\"web-2-0\","
                 "\"node\":\"n1\",\"revision\":\"web-2\"},\"status\":{\"phase\":\"runing\","
                 "\"ready\":\"true\",\"restarts\":-1,\"exitCode\":300,"
                 "\"startedAt\":\"yesterday\"}}",
                 "status.phase: expected one of pending, running, exited, failed, got 'runing': "
                 "did you mean 'running'?\n"
                 "status.ready: expected true or false, got 'true': remove the quotes (a quoted "
                 "value is a string)\n"
                 "status.restarts: expected an integer of at least 0, got -1\n"
                 "status.exitCode: expected an exit status 0..255 (128 + N for a process killed by "
                 "signal N), got 300\n"
                 "status.startedAt: expected an RFC 3339 time like 2024-05-01T12:00:00Z, got "
                 "'yesterday': not an RFC 3339 time\n");
    /* on the Instance route, another kind is refused */
    invalid_body("Instance", "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}",
                 "kind: expected kind 'Instance' here, got 'Node'\n");
}

/* The controllers' kinds in a YAML file get file:line:col like Deployments, and have
 * no compose form. */
static void other_kinds_in_yaml_have_positions(void **state)
{
    const char *text = "kind: Node\n"
                       "metadata: { name: n1 }\n"
                       "spec:\n"
                       "  capacity: { cpuMillis: 1000, memoryBytes: 1Gi }\n"
                       "---\n"
                       "kind: Instance\n"
                       "app: web\n";
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load_buffer("n.yaml", text, strlen(text), &set, &errs),
                     -SC_E_INVALID);
    assert_int_equal(set.n, 0);
    char *got = errors_text(&errs);
    assert_string_equal(got, "n.yaml:4:45: spec.capacity.memoryBytes: expected an integer of at "
                             "least 0, got '1Gi'\n"
                             "n.yaml:6:1: missing required field 'metadata' (a mapping)\n"
                             "n.yaml:6:1: missing required field 'spec' (a mapping)\n"
                             "n.yaml:7:1: app: unknown field 'app' (known fields: kind, "
                             "apiVersion, metadata, spec, status)\n");
    free(got);
    manifest_errors_done(&errs);
}

/* ---- sets ------------------------------------------------------------------------- */

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/sc-manifest-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void write_in(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    spit(path, text);
}

static void remove_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
            unlink(path); /* .hidden.yaml too, or the rmdir below fails */
        free(names[i]);
    }
    free(names);
    rmdir(dir);
}

static void directory_is_read_sorted_and_yaml_only(void **state)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    write_in(dir, "b.yaml", "app: bee\nimage: b:1\n---\napp: bee2\nimage: b:2\n");
    write_in(dir, "a.yml", "app: ant\nimage: a:1\n");
    write_in(dir, "c.txt", "this is not yaml: [\n");
    write_in(dir, ".hidden.yaml", "app: hidden\nimage: h:1\n");
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load(dir, &set, &errs), 0);
    assert_int_equal(set.n, 3);
    assert_string_equal(set.docs[0].name, "ant");
    assert_string_equal(set.docs[1].name, "bee");
    assert_string_equal(set.docs[2].name, "bee2");
    assert_int_equal(set.docs[2].index, 1);
    assert_int_equal(set.docs[2].line, 4);
    char want[128];
    snprintf(want, sizeof(want), "%s/b.yaml", dir);
    assert_string_equal(set.docs[1].file, want);
    manifest_set_done(&set);
    remove_dir(dir);
}

/* One bad file in a directory: nothing of the set is returned, every error is. */
static void one_bad_file_fails_the_whole_set(void **state)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    write_in(dir, "1-good.yaml", "app: good\nimage: g:1\n");
    write_in(dir, "2-bad.yaml", "app: bad\nimage: b:1\nreplicas: -1\n");
    write_in(dir, "3-worse.yaml", "app: worse\nimage: [\n");
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load(dir, &set, &errs), -SC_E_INVALID);
    assert_int_equal(set.n, 0);
    assert_null(set.docs);
    assert_int_equal(errs.n, 2);
    assert_non_null(strstr(errs.v[0].file, "2-bad.yaml"));
    assert_int_equal(errs.v[0].line, 3);
    assert_non_null(strstr(errs.v[1].file, "3-worse.yaml"));
    manifest_errors_done(&errs);
    remove_dir(dir);
}

static void several_paths_share_one_verdict_and_one_namespace(void **state)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    write_in(dir, "a.yaml", "app: web\nimage: w:1\n");
    write_in(dir, "b.yaml", "\n\napp: web\nimage: w:2\n");
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/a.yaml", dir);
    snprintf(b, sizeof(b), "%s/b.yaml", dir);
    const char *paths[] = {a, b};
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load_paths(paths, 2, &set, &errs), -SC_E_INVALID);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].file, b);
    assert_int_equal(errs.v[0].line, 3);
    assert_int_equal(errs.v[0].col, 6);
    char want[300];
    snprintf(want, sizeof(want), "Deployment 'web' is defined twice; the first is at %s:1:6", a);
    assert_string_equal(errs.v[0].msg, want);
    manifest_errors_done(&errs);
    remove_dir(dir);
}

static void stdin_is_read_for_dash(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    const char *text = "app: piped\nimage: p:1\nreplicas: 2\n";
    assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
    close(p[1]);
    assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
    close(p[0]);
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load("-", &set, &errs), 0);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.docs[0].file, "<stdin>");
    assert_string_equal(set.docs[0].name, "piped");
    manifest_set_done(&set);
}

static void missing_file_is_an_errno_with_the_file_named(void **state)
{
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load("/nonexistent/web.yaml", &set, &errs), -ENOENT);
    assert_int_equal(errs.n, 1);
    char line[256];
    manifest_error_format(&errs.v[0], line, sizeof(line));
    assert_string_equal(line, "/nonexistent/web.yaml: cannot open: No such file or directory");
    manifest_errors_done(&errs);
}

/* ---- limits ----------------------------------------------------------------------- */

static void errors_are_capped_and_counted(void **state)
{
    struct sc_buf b = {0};
    sc_buf_printf(&b, "app: web\nimage: w:1\n");
    for (int i = 0; i < 150; i++)
        sc_buf_printf(&b, "unknown%d: 1\n", i);
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load_buffer("big", (char *)b.data, b.len, &set, &errs),
                     -SC_E_INVALID);
    assert_int_equal(errs.n, MANIFEST_MAX_ERRORS);
    assert_int_equal(errs.dropped, 50);
    char *text = errors_text(&errs);
    assert_non_null(strstr(text, "... and 50 more errors\n"));
    free(text);
    manifest_errors_done(&errs);
    sc_buf_free(&b);
}

static void deep_nesting_is_refused(void **state)
{
    struct sc_buf b = {0};
    sc_buf_printf(&b, "app: web\nimage: w:1\nenv: ");
    for (int i = 0; i < 200; i++)
        sc_buf_put_u8(&b, '[');
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    assert_int_equal(manifest_load_buffer("deep", (char *)b.data, b.len, &set, &errs),
                     -SC_E_INVALID);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.v[0].msg, "nesting is deeper than 64 levels"));
    manifest_errors_done(&errs);
    sc_buf_free(&b);
}

/* ---- quantities ------------------------------------------------------------------- */

static void quantities_parse_exactly_and_format_back(void **state)
{
    static const struct {
        const char *s;
        int64_t v;
    } cpu[] = {{"100m", 100}, {"0.5", 500}, {"2", 2000}, {"1.001", 1001}, {"0.1", 100}},
      size[] = {{"64Mi", 64 << 20},   {"1Gi", 1 << 30}, {"512k", 512000},
                {"1.5Gi", 3LL << 29}, {"7", 7},         {"2T", 2000000000000LL},
                {"1Pi", 1LL << 50}},
      dur[] = {{"1s", 1000},    {"500ms", 500}, {"1m30s", 90000},
               {"2h", 7200000}, {"1.5s", 1500}, {"1000us", 1}};
    char why[128];
    int64_t v;
    for (size_t i = 0; i < ELEMENTSOF(cpu); i++) {
        assert_int_equal(manifest_parse_cpu(cpu[i].s, &v, why, sizeof(why)), 0);
        assert_int_equal(v, cpu[i].v);
    }
    for (size_t i = 0; i < ELEMENTSOF(size); i++) {
        assert_int_equal(manifest_parse_size(size[i].s, &v, why, sizeof(why)), 0);
        assert_int_equal(v, size[i].v);
    }
    for (size_t i = 0; i < ELEMENTSOF(dur); i++) {
        assert_int_equal(manifest_parse_duration(dur[i].s, &v, why, sizeof(why)), 0);
        assert_int_equal(v, dur[i].v);
    }
    static const char *const bad_size[] = {"",
                                           "Mi",
                                           "1.5",
                                           "9223372036854775808",
                                           "16Ei",
                                           "10000000000Pi",
                                           "1e3",
                                           "1 Mi",
                                           "9999999999999999999999999999.5Pi"};
    for (size_t i = 0; i < ELEMENTSOF(bad_size); i++)
        assert_int_equal(manifest_parse_size(bad_size[i], &v, why, sizeof(why)), -SC_E_INVALID);
    static const char *const bad_dur[] = {
        "",
        "1",
        "s",
        "1x",
        "-1s",
        "1.0001ms",
        "58m58m000000007677230164176710307m58m" /* fuzz: int128 overflow */};
    for (size_t i = 0; i < ELEMENTSOF(bad_dur); i++)
        assert_int_equal(manifest_parse_duration(bad_dur[i], &v, why, sizeof(why)), -SC_E_INVALID);
    char buf[32];
    manifest_format_cpu(100, buf);
    assert_string_equal(buf, "100m");
    manifest_format_cpu(2000, buf);
    assert_string_equal(buf, "2");
    manifest_format_size(64 << 20, buf);
    assert_string_equal(buf, "64Mi");
    manifest_format_size(512000, buf);
    assert_string_equal(buf, "512k");
    manifest_format_size(1000001, buf);
    assert_string_equal(buf, "1000001");
    manifest_format_duration(90000, buf);
    assert_string_equal(buf, "90s");
    manifest_format_duration(7200000, buf);
    assert_string_equal(buf, "2h");
    manifest_format_duration(1500, buf);
    assert_string_equal(buf, "1500ms");
    /* whatever the formatter writes, the parser reads back to the same number */
    for (int64_t x = 1; x < (1LL << 40); x = x * 3 + 1) {
        int64_t back;
        manifest_format_size(x, buf);
        assert_int_equal(manifest_parse_size(buf, &back, NULL, 0), 0);
        assert_int_equal(back, x);
        manifest_format_cpu(x % 1000000000 + 1, buf);
        assert_int_equal(manifest_parse_cpu(buf, &back, NULL, 0), 0);
        assert_int_equal(back, x % 1000000000 + 1);
        manifest_format_duration(x, buf);
        assert_int_equal(manifest_parse_duration(buf, &back, NULL, 0), 0);
        assert_int_equal(back, x);
    }
}

static void image_references(void **state)
{
    static const struct {
        const char *in, *canon; /* canon NULL: refused */
    } cases[] = {
        {"web", "web"},
        {"web:1.0", "web:1.0"},
        {"team/web:v2", "team/web:v2"},
        {"localhost:5000/web", "localhost:5000/web"},
        {"registry.local/web-api@blake3:9f2c\xe2\x80\xa6", "registry.local/web-api@blake3:9f2c"},
        {"web@blake3:ABCD...", "web@blake3:abcd"},
        {"web:1@blake3:abcd", "web:1@blake3:abcd"},
        {"blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        {"Web", NULL},
        {"web@", NULL},
        {"web@blake3:", NULL},
        {"web@blake3:abc", NULL},
        {"web@blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef...", NULL},
        {"web@sha256:abcd", NULL},
        {"team//web", NULL},
        {"web:-x", NULL},
        {"-web", NULL},
        {"web..x", NULL},
        {"bad host!/web", NULL},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char text[256];
        snprintf(text, sizeof(text), "app: web\nimage: \"%s\"\n", cases[i].in);
        struct manifest_set set = {0};
        struct manifest_errors errs = {0};
        int r = manifest_load_buffer("img", text, strlen(text), &set, &errs);
        if (cases[i].canon) {
            if (r != 0)
                manifest_errors_print(&errs, stderr);
            assert_int_equal(r, 0);
            assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(set.docs[0].object, "spec"), "image")),
                                cases[i].canon);
        } else {
            if (r == 0)
                fprintf(stderr, "accepted: %s\n", cases[i].in);
            assert_int_equal(r, -SC_E_INVALID);
            assert_string_equal(errs.v[0].path, "image");
            assert_int_equal(errs.v[0].line, 2);
        }
        manifest_set_done(&set);
        manifest_errors_done(&errs);
    }
}

/* YAML 1.2 core schema: what a plain scalar becomes. */
static void scalars_resolve_like_yaml_1_2(void **state)
{
    const char *text = "app: web\n"
                       "image: web:1\n"
                       "replicas: 0o17\n"
                       "env: { A: yes, B: 010, C: 'true', D: !!str 12, E: -0x1, F: ~x }\n";
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    int r = manifest_load_buffer("s", text, strlen(text), &set, &errs);
    if (r)
        manifest_errors_print(&errs, stderr);
    assert_int_equal(r, 0);
    json_t *spec = json_object_get(set.docs[0].object, "spec");
    assert_int_equal(at_int(spec, "replicas"), 15);
    json_t *env = json_object_get(spec, "env");
    assert_string_equal(json_string_value(json_object_get(env, "A")), "yes");
    assert_string_equal(json_string_value(json_object_get(env, "B")), "10"); /* decimal 010 */
    assert_string_equal(json_string_value(json_object_get(env, "C")), "true");
    assert_string_equal(json_string_value(json_object_get(env, "D")), "12");
    assert_string_equal(json_string_value(json_object_get(env, "E")), "-0x1");
    assert_string_equal(json_string_value(json_object_get(env, "F")), "~x");
    manifest_set_done(&set);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(good_corpus_matches_golden),
    cmocka_unit_test(bad_corpus_matches_expected_errors),
    cmocka_unit_test(note_example_loads_with_every_quantity_normalised),
    cmocka_unit_test(canonical_form_is_a_fixed_point),
    cmocka_unit_test(compose_and_object_forms_agree),
    cmocka_unit_test(json_body_errors_name_field_paths_only),
    cmocka_unit_test(json_body_kind_comes_from_the_path),
    cmocka_unit_test(status_is_validated_and_kept),
    cmocka_unit_test(revision_is_a_deployment_template),
    cmocka_unit_test(assignment_shape),
    cmocka_unit_test(node_shape),
    cmocka_unit_test(instance_shape),
    cmocka_unit_test(other_kinds_in_yaml_have_positions),
    cmocka_unit_test(directory_is_read_sorted_and_yaml_only),
    cmocka_unit_test(one_bad_file_fails_the_whole_set),
    cmocka_unit_test(several_paths_share_one_verdict_and_one_namespace),
    cmocka_unit_test(stdin_is_read_for_dash),
    cmocka_unit_test(missing_file_is_an_errno_with_the_file_named),
    cmocka_unit_test(errors_are_capped_and_counted),
    cmocka_unit_test(deep_nesting_is_refused),
    cmocka_unit_test(quantities_parse_exactly_and_format_back),
    cmocka_unit_test(image_references),
    cmocka_unit_test(scalars_resolve_like_yaml_1_2),
};

int main(int argc, char **argv)
{
    return sc_test_main(tests, argc, argv);
}
