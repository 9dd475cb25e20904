/* test_slet_probe.c: the pure part of slet's probes (src/slet/probe.c): a
 * template's health read with Kubernetes' defaults and port names resolved,
 * and the consecutive-result threshold rule. */
#include "harness.h"

#include <string.h>

#include "slet/probe.h"

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    assert_non_null(o);
    return o;
}

static void defaults_and_names(void **state)
{
    json_t *t = load("{\"ports\":[{\"name\":\"web\",\"container\":8080}],"
                     "\"health\":{\"readiness\":{\"http\":\"/healthz\",\"port\":\"web\"},"
                     "\"liveness\":{\"tcp\":9000,\"periodMs\":200,\"timeoutMs\":50,"
                     "\"initialDelayMs\":3000,\"failureThreshold\":5,\"successThreshold\":4},"
                     "\"startup\":{\"exec\":[\"/bin/check\",\"-q\"]}}}");
    struct slet_probe_spec s[SLET_PROBE_N];
    struct sc_error e = {0};
    assert_int_equal(slet_probe_parse(t, s, &e), 0);
    const struct slet_probe_spec *rd = &s[SLET_PROBE_READINESS], *lv = &s[SLET_PROBE_LIVENESS],
                                 *su = &s[SLET_PROBE_STARTUP];
    assert_true(rd->set);
    assert_int_equal(rd->type, SLET_PROBE_HTTP);
    assert_string_equal(rd->path, "/healthz");
    assert_int_equal(rd->port, 8080);
    assert_int_equal(rd->period_usec, 10 * USEC_PER_SEC);
    assert_int_equal(rd->timeout_usec, 1 * USEC_PER_SEC);
    assert_int_equal(rd->initial_delay_usec, 0);
    assert_int_equal(rd->failure_threshold, 3);
    assert_int_equal(rd->success_threshold, 1);
    assert_int_equal(lv->type, SLET_PROBE_TCP);
    assert_int_equal(lv->port, 9000);
    assert_int_equal(lv->period_usec, 200 * USEC_PER_MSEC);
    assert_int_equal(lv->timeout_usec, 50 * USEC_PER_MSEC);
    assert_int_equal(lv->initial_delay_usec, 3 * USEC_PER_SEC);
    assert_int_equal(lv->failure_threshold, 5);
    assert_int_equal(lv->success_threshold, 1); /* forced for liveness */
    assert_int_equal(su->type, SLET_PROBE_EXEC);
    assert_string_equal(su->argv[0], "/bin/check");
    assert_string_equal(su->argv[1], "-q");
    assert_null(su->argv[2]);
    for (int k = 0; k < SLET_PROBE_N; k++)
        slet_probe_spec_done(&s[k]);
    json_decref(t);
}

static void absent_and_invalid(void **state)
{
    struct slet_probe_spec s[SLET_PROBE_N];
    struct sc_error e = {0};
    json_t *t = load("{\"image\":\"x\"}");
    assert_int_equal(slet_probe_parse(t, s, &e), 0);
    for (int k = 0; k < SLET_PROBE_N; k++)
        assert_false(s[k].set);
    json_decref(t);
    t = load("{\"health\":{\"readiness\":{\"http\":\"/h\",\"port\":\"nope\"}}}");
    assert_true(slet_probe_parse(t, s, &e) < 0);
    assert_non_null(strstr(e.msg, "no port named 'nope'"));
    json_decref(t);
    t = load("{\"health\":{\"liveness\":{\"http\":\"/h\",\"tcp\":80,\"port\":80}}}");
    assert_true(slet_probe_parse(t, s, &e) < 0);
    json_decref(t);
    t = load("{\"health\":{\"readiness\":{\"tcp\":80},\"liveness\":{\"tcp\":80,\"periodMs\":5}}}");
    assert_true(slet_probe_parse(t, s, &e) < 0); /* the readiness argv-free spec is freed too */
    assert_non_null(strstr(e.msg, "periodMs"));
    json_decref(t);
}

/* Readiness with success 2 / failure 3, from not ready. */
static void thresholds(void **state)
{
    struct slet_probe_count c = {.ok = false};
    assert_false(slet_probe_record(&c, true, 2, 3));  /* one success is not enough */
    assert_false(slet_probe_record(&c, false, 2, 3)); /* a failure resets the run */
    assert_false(slet_probe_record(&c, true, 2, 3));
    assert_true(slet_probe_record(&c, true, 2, 3)); /* two in a row: ready */
    assert_true(c.ok);
    assert_false(slet_probe_record(&c, false, 2, 3));
    assert_false(slet_probe_record(&c, false, 2, 3));
    assert_false(slet_probe_record(&c, true, 2, 3)); /* not three in a row */
    assert_true(c.ok);
    assert_false(slet_probe_record(&c, false, 2, 3));
    assert_false(slet_probe_record(&c, false, 2, 3));
    assert_true(slet_probe_record(&c, false, 2, 3)); /* three in a row: not ready */
    assert_false(c.ok);
    assert_false(slet_probe_record(&c, false, 2, 3)); /* stays, no flip reported */
    /* thresholds of 1 flip at once both ways */
    struct slet_probe_count l = {.ok = true};
    assert_true(slet_probe_record(&l, false, 1, 1));
    assert_true(slet_probe_record(&l, true, 1, 1));
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_names),
        cmocka_unit_test(absent_and_invalid),
        cmocka_unit_test(thresholds),
    };
    return sc_test_main(tests, argc, argv);
}
