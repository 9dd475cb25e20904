/*
 * fuzz_manifest.c: libFuzzer harness for the manifest reader and validator
 * (src/manifest): YAML text and JSON bodies from an untrusted user.
 *
 * The first input byte picks a target, the rest is its input:
 *   0  manifest_load_buffer (YAML)   1  manifest_parse_json (JSON body)
 *   2  the quantity parsers (CPU, size, duration) on the input as one string
 * Properties, any violation aborts:
 *   - a failed load returns -SC_E_INVALID, leaves the set empty and reports at
 *     least one error, each with a message, and never more than the cap;
 *   - a successful load gives canonical objects that validate again, through the
 *     API path, to byte-identical canonical JSON (the fixed point the server
 *     relies on), with kind and name set;
 *   - a parsed quantity formats to a string that parses back to the same number.
 *
 * Run: tests/fuzz/run.sh (short, in CI); longer by hand, e.g.
 *   build-fuzz/tests/fuzz/fuzz_manifest -max_total_time=3600 -dict=... corpus_dir/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_manifest: property violated: %s (%s:%d)\n", #cond, __FILE__,     \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_errors(const struct manifest_errors *errs)
{
    CHECK(errs->n > 0);
    CHECK(errs->n <= MANIFEST_MAX_ERRORS);
    for (size_t i = 0; i < errs->n; i++) {
        CHECK(errs->v[i].msg && errs->v[i].msg[0]);
        CHECK(errs->v[i].path);
        char line[64];
        CHECK(manifest_error_format(&errs->v[i], line, sizeof(line)) > 0);
    }
}

static void check_fixed_point(const json_t *object)
{
    CHECK(json_is_string(json_object_get(object, "kind")));
    CHECK(json_is_string(json_object_get(json_object_get(object, "metadata"), "name")));
    char *once = manifest_dump(object);
    json_t *again = NULL;
    struct manifest_errors errs = {0};
    int r = manifest_parse_json(NULL, once, strlen(once), &again, &errs);
    if (r != 0)
        manifest_errors_print(&errs, stderr);
    CHECK(r == 0);
    char *twice = manifest_dump(again);
    CHECK(strcmp(once, twice) == 0);
    free(once);
    free(twice);
    json_decref(again);
    manifest_errors_done(&errs);
}

static void fuzz_yaml(const char *p, size_t n)
{
    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    int r = manifest_load_buffer("fuzz.yaml", p, n, &set, &errs);
    if (r == 0) {
        CHECK(errs.n == 0 && set.n > 0);
        for (size_t i = 0; i < set.n; i++)
            check_fixed_point(set.docs[i].object);
    } else {
        CHECK(r == -SC_E_INVALID);
        CHECK(set.n == 0 && set.docs == NULL);
        check_errors(&errs);
    }
    manifest_set_done(&set);
    manifest_errors_done(&errs);
}

static void fuzz_json(const char *p, size_t n)
{
    json_t *out = NULL;
    struct manifest_errors errs = {0};
    int r = manifest_parse_json(n & 1 ? "Deployment" : NULL, p, n, &out, &errs);
    if (r == 0) {
        CHECK(errs.n == 0);
        check_fixed_point(out);
        json_decref(out);
    } else {
        CHECK(r == -SC_E_INVALID && out == NULL);
        check_errors(&errs);
        for (size_t i = 0; i < errs.n; i++)
            CHECK(errs.v[i].file == NULL && errs.v[i].line == 0);
    }
    manifest_errors_done(&errs);
}

static void fuzz_quantities(const char *p, size_t n)
{
    char s[64];
    if (n >= sizeof(s) || memchr(p, 0, n))
        return;
    memcpy(s, p, n);
    s[n] = 0;
    char buf[32], why[128];
    int64_t v, back;
    if (manifest_parse_cpu(s, &v, why, sizeof(why)) == 0) {
        CHECK(v > 0);
        manifest_format_cpu(v, buf);
        CHECK(manifest_parse_cpu(buf, &back, NULL, 0) == 0 && back == v);
    }
    if (manifest_parse_size(s, &v, why, sizeof(why)) == 0) {
        CHECK(v >= 0);
        manifest_format_size(v, buf);
        CHECK(manifest_parse_size(buf, &back, NULL, 0) == 0 && back == v);
    }
    if (manifest_parse_duration(s, &v, why, sizeof(why)) == 0) {
        CHECK(v >= 0);
        manifest_format_duration(v, buf);
        CHECK(manifest_parse_duration(buf, &back, NULL, 0) == 0 && back == v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        fuzz_yaml(p, n);
        break;
    case 1:
        fuzz_json(p, n);
        break;
    case 2:
        fuzz_quantities(p, n);
        break;
    }
    return 0;
}
