/*
 * test_sched.c: placement rules, one case per rule of sched.h (filter, fit,
 * spread by node and by label, tie-breaks, reasons, newest-first removal), and a
 * randomized property test: everything placed fits, as many replicas are placed
 * as the free capacity allows, and no node that still has room holds two fewer
 * replicas than a node that received one.
 *
 * plan.h's incremental pass: a pass kept current by adds, removes and readiness
 * changes plans exactly what a pass built afresh from the same objects plans,
 * and sched_pass_end undoes the tentative usage of the plans made since begin.
 */
#include "harness.h"

#include <stdlib.h>

#include "sched/endpoints.h"
#include "sched/plan.h"
#include "sched/sched.h"

#define GiB (1024LL * 1024 * 1024)
#define MiB (1024LL * 1024)

static struct sched_node node(const char *name, int64_t cpu, int64_t mem,
                              const struct sched_label *l, size_t nl)
{
    return (struct sched_node){.name = name,
                               .cpu_millis = cpu,
                               .mem_bytes = mem,
                               .labels = l,
                               .n_labels = nl,
                               .schedulable = true};
}

static void test_spread_over_nodes_then_first_by_name(void **state)
{
    (void)state;
    struct sched_node n[3] = {node("a", 4000, 4 * GiB, NULL, 0), node("b", 4000, 4 * GiB, NULL, 0),
                              node("c", 4000, 4 * GiB, NULL, 0)};
    uint32_t per[3] = {0};
    struct sched_request r = {
        .count = 4, .cpu_millis = 100, .mem_bytes = 64 * MiB, .per_node = per};
    struct sched_result res;
    sched_place(n, 3, &r, &res);
    assert_int_equal(res.placed, 4);
    assert_string_equal(res.reason, "");
    assert_int_equal(res.node[0], 0);
    assert_int_equal(res.node[1], 1);
    assert_int_equal(res.node[2], 2);
    assert_int_equal(res.node[3], 0); /* all equal again: the first by name */
    assert_int_equal(per[0], 2);
    assert_int_equal(n[0].cpu_used, 200);
    assert_int_equal(n[0].mem_used, 128 * MiB);
    sched_result_done(&res);
}

static void test_existing_replicas_and_load_steer(void **state)
{
    (void)state;
    struct sched_node n[3] = {node("a", 4000, 4 * GiB, NULL, 0), node("b", 4000, 4 * GiB, NULL, 0),
                              node("c", 4000, 4 * GiB, NULL, 0)};
    n[1].cpu_used = 3000; /* b is busy with others' work */
    uint32_t per[3] = {1, 0, 0};
    struct sched_request r = {.count = 2, .cpu_millis = 100, .mem_bytes = MiB, .per_node = per};
    struct sched_result res;
    sched_place(n, 3, &r, &res);
    assert_int_equal(res.placed, 2);
    assert_int_equal(res.node[0], 2); /* b and c hold none; c is less loaded */
    assert_int_equal(res.node[1], 1); /* then b, the only one still at zero */
    sched_result_done(&res);
}

static void test_fit_filter_and_reason(void **state)
{
    (void)state;
    struct sched_label eu[] = {{"zone", "eu-central"}}, us[] = {{"zone", "us-east"}};
    struct sched_node n[3] = {node("a", 4000, 256 * MiB, eu, 1), node("b", 4000, 128 * MiB, eu, 1),
                              node("c", 4000, 8 * GiB, us, 1)};
    struct sched_label sel[] = {{"zone", "eu-central"}};
    struct sched_request r = {
        .count = 1, .cpu_millis = 100, .mem_bytes = GiB, .selector = sel, .n_selector = 1};
    struct sched_result res;
    sched_place(n, 3, &r, &res);
    assert_int_equal(res.placed, 0);
    assert_string_equal(res.reason,
                        "0/3 nodes: 2 insufficient memory, 1 not matching zone=eu-central");
    assert_int_equal(n[2].mem_used, 0);
    sched_result_done(&res);

    /* partly placeable: two fit on a, then it is full */
    r.mem_bytes = 100 * MiB;
    r.count = 4;
    sched_place(n, 3, &r, &res);
    assert_int_equal(res.placed, 3); /* a takes 2, b takes 1 */
    assert_string_equal(res.reason,
                        "0/3 nodes: 2 insufficient memory, 1 not matching zone=eu-central");
    sched_result_done(&res);
}

static void test_not_ready_and_cpu(void **state)
{
    (void)state;
    struct sched_node n[3] = {node("a", 500, GiB, NULL, 0), node("b", 4000, GiB, NULL, 0),
                              node("c", 100, 16 * MiB, NULL, 0)};
    n[1].schedulable = false;
    struct sched_request r = {.count = 2, .cpu_millis = 300, .mem_bytes = 32 * MiB};
    struct sched_result res;
    sched_place(n, 3, &r, &res);
    assert_int_equal(res.placed, 1);
    assert_int_equal(res.node[0], 0);
    assert_string_equal(res.reason,
                        "0/3 nodes: 2 insufficient cpu, 1 insufficient memory, 1 not ready");
    sched_result_done(&res);
    sched_place(n, 0, &r, &res);
    assert_string_equal(res.reason, "0/0 nodes: no node has registered");
    sched_result_done(&res);
}

static void test_spread_by_label(void **state)
{
    (void)state;
    struct sched_label z1[] = {{"zone", "z1"}}, z2[] = {{"zone", "z2"}};
    struct sched_node n[4] = {node("a", 4000, GiB, z1, 1), node("b", 4000, GiB, z1, 1),
                              node("c", 4000, GiB, z2, 1), node("d", 4000, GiB, NULL, 0)};
    uint32_t per[4] = {0};
    struct sched_request r = {
        .count = 6, .cpu_millis = 10, .mem_bytes = MiB, .spread = "zone", .per_node = per};
    struct sched_result res;
    sched_place(n, 4, &r, &res);
    assert_int_equal(res.placed, 6);
    /* three domains z1 {a,b}, z2 {c}, "" {d}: two replicas each */
    assert_int_equal(per[0] + per[1], 2);
    assert_int_equal(per[0], 1);
    assert_int_equal(per[2], 2);
    assert_int_equal(per[3], 2);
    /* order: z1 (first node a), z2, "", then z1 again on b */
    assert_int_equal(res.node[0], 0);
    assert_int_equal(res.node[1], 2);
    assert_int_equal(res.node[2], 3);
    assert_int_equal(res.node[3], 1);
    sched_result_done(&res);
}

static void test_spread_none_packs_by_load(void **state)
{
    (void)state;
    struct sched_node n[2] = {node("a", 4000, GiB, NULL, 0), node("b", 4000, GiB, NULL, 0)};
    n[0].cpu_used = 400; /* a is 10% busy; b holds two replicas already but is idle */
    uint32_t per[2] = {0, 2};
    struct sched_request r = {.count = 1, .cpu_millis = 100, .mem_bytes = MiB, .per_node = per};
    struct sched_result res;
    sched_place(n, 2, &r, &res);
    assert_int_equal(res.node[0], 0); /* spread by node: a, which has none */
    sched_result_done(&res);
    r.spread = "none";
    sched_place(n, 2, &r, &res);
    assert_int_equal(res.node[0], 1); /* no spread: b, the least loaded */
    sched_result_done(&res);
}

static void test_victims_newest_first(void **state)
{
    (void)state;
    struct sched_replica r[4] = {{"web-a", 10}, {"web-b", 30}, {"web-c", 20}, {"web-d", 30}};
    size_t idx[4];
    sched_pick_victims(r, 4, idx);
    assert_int_equal(idx[0], 3); /* revision 30, and d after b by name */
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 2);
    assert_int_equal(idx[3], 0);
}

static void test_random_properties(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int round = 0; round < 300; round++) {
        size_t nn = (size_t)(rand_r(&seed) % 40);
        struct sched_node n[40];
        uint32_t per[40];
        int64_t cap_total = 0;
        struct sched_request r = {.count = (uint32_t)(rand_r(&seed) % 60),
                                  .cpu_millis = 1 + rand_r(&seed) % 500,
                                  .mem_bytes = (1 + rand_r(&seed) % 512) * MiB,
                                  .per_node = per};
        for (size_t i = 0; i < nn; i++) {
            n[i] = node("n", rand_r(&seed) % 4000, (rand_r(&seed) % 4096) * MiB, NULL, 0);
            n[i].cpu_used = n[i].cpu_millis ? rand_r(&seed) % n[i].cpu_millis : 0;
            n[i].schedulable = rand_r(&seed) % 8 != 0;
            per[i] = (uint32_t)(rand_r(&seed) % 3);
            int64_t c = (n[i].cpu_millis - n[i].cpu_used) / r.cpu_millis;
            int64_t m = (n[i].mem_bytes - n[i].mem_used) / r.mem_bytes;
            cap_total += n[i].schedulable ? (c < m ? c : m) : 0;
        }
        uint32_t before[40];
        memcpy(before, per, sizeof(per));
        struct sched_result res;
        sched_place(n, nn, &r, &res);
        int64_t want = cap_total < r.count ? cap_total : r.count;
        assert_int_equal(res.placed, want);
        assert_true((res.placed < r.count) == (res.reason[0] != '\0'));
        for (size_t i = 0; i < nn; i++) {
            assert_true(n[i].cpu_used <= n[i].cpu_millis || per[i] == before[i]);
            assert_true(n[i].mem_used <= n[i].mem_bytes || per[i] == before[i]);
            assert_true(n[i].schedulable || per[i] == before[i]);
        }
        for (size_t j = 0; j < nn; j++) {
            bool room = n[j].schedulable && n[j].cpu_used + r.cpu_millis <= n[j].cpu_millis &&
                        n[j].mem_used + r.mem_bytes <= n[j].mem_bytes;
            for (size_t i = 0; room && i < nn; i++)
                if (per[i] > before[i])
                    assert_true(per[i] - 1 <= per[j]);
        }
        sched_result_done(&res);
    }
}

static const char *name_of_json(const json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static json_t *mk_node(int i, int64_t cpu)
{
    return json_pack("{s:s, s:{s:s+}, s:{s:{s:I, s:I}}}", "kind", "Node", "metadata", "name", "n",
                     i == 0   ? "0"
                     : i == 1 ? "1"
                     : i == 2 ? "2"
                              : "3",
                     "spec", "allocatable", "cpuMillis", (json_int_t)cpu, "memoryBytes",
                     (json_int_t)(4 * GiB));
}

static json_t *mk_dep(const char *name, int replicas)
{
    return json_pack("{s:s, s:{s:s, s:i, s:i}, s:{s:s, s:i, s:{s:i, s:I}}}", "kind", "Deployment",
                     "metadata", "name", name, "generation", 1, "revision", 7, "spec", "image", "x",
                     "replicas", replicas, "resources", "cpuMillis", 100, "memoryBytes",
                     (json_int_t)(64 * MiB));
}

/* The plan's creates and removes as one comparable string. */
static char *plan_text(struct sched_pass *p, const json_t *d)
{
    struct sched_plan plan;
    sched_pass_begin(p);
    sched_plan_deployment(p, d, NULL, &plan);
    sched_pass_end(p);
    json_t *both = json_pack("{s:O, s:O, s:O}", "create", plan.create, "remove", plan.remove,
                             "status", plan.status);
    char *s = json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(both);
    sched_plan_done(&plan);
    return s;
}

static void test_incremental_pass_equals_fresh(void **state)
{
    (void)state;
    srand(7);
    json_t *nodes = json_array(), *ready = json_object();
    for (int i = 0; i < 4; i++) {
        json_array_append_new(nodes, mk_node(i, 1000));
        json_object_set_new(ready,
                            json_string_value(json_object_get(
                                json_object_get(json_array_get(nodes, i), "metadata"), "name")),
                            json_true());
    }
    struct sched_pass *live = sched_pass_new(nodes, ready);
    json_t *stored = json_object(); /* name -> Assignment, what the store would hold */
    json_t *d = mk_dep("web", 12);
    for (int round = 0; round < 40; round++) {
        /* apply the plan as the store would, and sometimes drop an Assignment */
        struct sched_plan plan;
        sched_pass_begin(live);
        sched_plan_deployment(live, d, NULL, &plan);
        sched_pass_end(live);
        size_t j;
        json_t *x;
        json_array_foreach(plan.create, j, x)
        {
            json_t *a = json_deep_copy(x);
            json_object_set_new(json_object_get(a, "metadata"), "revision",
                                json_integer(100 + round * 100 + (json_int_t)j));
            json_object_set(stored, name_of_json(a), a);
            sched_pass_add(live, a);
            json_decref(a);
        }
        json_array_foreach(plan.remove, j, x)
        {
            const char *gone = json_string_value(json_object_get(x, "name"));
            sched_pass_remove(live, gone);
            json_object_del(stored, gone);
        }
        if (rand() % 3 == 0 && json_object_size(stored)) {
            const char *k = json_object_iter_key(json_object_iter(stored));
            char name[128];
            snprintf(name, sizeof(name), "%s", k);
            sched_pass_remove(live, name);
            json_object_del(stored, name);
        }
        if (round == 20) { /* node 3 stops heartbeating */
            json_object_del(ready, "n3");
            sched_pass_set_ready(live, "n3", false);
        }
        if (round == 30)
            json_object_set_new(json_object_get(d, "spec"), "replicas", json_integer(5));
        sched_plan_done(&plan);
        /* the same plan from a pass built afresh from what is stored */
        struct sched_pass *fresh = sched_pass_new(nodes, ready);
        const char *k;
        json_t *a;
        json_object_foreach(stored, k, a) sched_pass_add(fresh, a);
        assert_int_equal(sched_pass_assignments(fresh), sched_pass_assignments(live));
        char *t1 = plan_text(live, d), *t2 = plan_text(fresh, d);
        assert_string_equal(t1, t2);
        free(t1);
        free(t2);
        sched_pass_free(fresh);
    }
    /* converged: 5 replicas, none on the node that is not ready */
    assert_int_equal(json_object_size(stored), 5);
    const char *k;
    json_t *a;
    json_object_foreach(stored, k, a) assert_string_not_equal(
        json_string_value(json_object_get(json_object_get(a, "spec"), "node")), "n3");
    /* usage: with 5 x 100m on the 3 ready nodes of 1000m, a Deployment asking
     * 1000m per replica finds no node while they are counted, and all three
     * once they are removed */
    json_t *big = mk_dep("big", 3);
    json_object_set_new(json_object_get(json_object_get(big, "spec"), "resources"), "cpuMillis",
                        json_integer(1000));
    struct sched_plan plan;
    sched_plan_deployment(live, big, NULL, &plan);
    assert_true(json_array_size(plan.create) < 3);
    sched_plan_done(&plan);
    json_t *names = json_array();
    json_object_foreach(stored, k, a) json_array_append_new(names, json_string(k));
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) sched_pass_remove(live, json_string_value(n));
    sched_plan_deployment(live, big, NULL, &plan);
    assert_int_equal(json_array_size(plan.create), 3);
    sched_plan_done(&plan);
    json_decref(names);
    json_decref(big);
    json_decref(d);
    json_decref(stored);
    sched_pass_free(live);
    json_decref(ready);
    json_decref(nodes);
}

/* endpoints.h: one object per exposed port, ready instances with an address
 * only, sorted, weights from status.rollout.weights by revision. */
static void test_endpoints_from_ready_instances(void **state)
{
    (void)state;
    json_t *d = json_loads(
        "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},\"spec\":{\"ports\":["
        "{\"name\":\"http\",\"container\":8080,\"expose\":{\"via\":\"lb\",\"listen\":80}},"
        "{\"container\":9000,\"protocol\":\"udp\",\"expose\":{\"via\":\"service\"}},"
        "{\"name\":\"metrics\",\"container\":9100}]},"
        "\"status\":{\"rollout\":{\"weights\":{\"web-new\":10}}}}",
        0, NULL);
    assert_non_null(d);
    json_t *in_ready = json_loads("{\"spec\":{\"node\":\"n1\",\"revision\":\"web-new\"},"
                                  "\"status\":{\"ready\":true,\"addresses\":[\"10.0.0.2\"]}}",
                                  0, NULL);
    json_t *in_unready = json_loads("{\"spec\":{\"node\":\"n1\",\"revision\":\"web-old\"},"
                                    "\"status\":{\"ready\":false,\"addresses\":[\"10.0.0.3\"]}}",
                                    0, NULL);
    json_t *in_noaddr = json_loads("{\"spec\":{\"node\":\"n1\",\"revision\":\"web-old\"},"
                                   "\"status\":{\"ready\":true}}",
                                   0, NULL);
    assert_null(sched_endpoint_of(in_unready));
    assert_null(sched_endpoint_of(in_noaddr));
    json_t *ready = json_object();
    json_object_set_new(ready, "web-z", sched_endpoint_of(in_ready));
    json_object_set_new(
        ready, "web-a",
        json_pack("{s:s, s:s, s:s}", "node", "n2", "address", "10.0.0.9", "revision", "web-old"));
    json_t *eps = sched_endpoints(d, ready);
    assert_int_equal(json_object_size(eps), 2);
    const json_t *http = json_object_get(eps, "web-http"), *udp = json_object_get(eps, "web-9000");
    assert_non_null(http);
    assert_non_null(udp);
    char *text = json_dumps(json_object_get(http, "spec"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        text, "{\"deployment\":\"web\",\"endpoints\":["
              "{\"address\":\"10.0.0.9\",\"draining\":false,\"instance\":\"web-a\",\"node\":\"n2\",\"port\":8080,"
              "\"revision\":\"web-old\",\"weight\":100},"
              "{\"address\":\"10.0.0.2\",\"draining\":false,\"instance\":\"web-z\",\"node\":\"n1\",\"port\":8080,"
              "\"revision\":\"web-new\",\"weight\":10}],"
              "\"expose\":{\"listen\":80,\"via\":\"lb\"},"
              "\"port\":{\"container\":8080,\"name\":\"http\",\"protocol\":\"tcp\"}}");
    free(text);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(udp, "spec"), "port"), "protocol")),
                        "udp");
    json_decref(eps);
    /* no exposed port: no Endpoints */
    json_t *plain = json_loads("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"ports\":"
                               "[{\"container\":80}]}}",
                               0, NULL);
    eps = sched_endpoints(plain, ready);
    assert_int_equal(json_object_size(eps), 0);
    json_decref(eps);
    json_decref(plain);
    json_decref(ready);
    json_decref(in_ready);
    json_decref(in_unready);
    json_decref(in_noaddr);
    json_decref(d);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_over_nodes_then_first_by_name),
        cmocka_unit_test(test_existing_replicas_and_load_steer),
        cmocka_unit_test(test_fit_filter_and_reason),
        cmocka_unit_test(test_not_ready_and_cpu),
        cmocka_unit_test(test_spread_by_label),
        cmocka_unit_test(test_spread_none_packs_by_load),
        cmocka_unit_test(test_victims_newest_first),
        cmocka_unit_test(test_random_properties),
        cmocka_unit_test(test_incremental_pass_equals_fresh),
        cmocka_unit_test(test_endpoints_from_ready_instances),
    };
    return sc_test_main(tests, argc, argv);
}
