/*
 * test_sched.c: placement rules, one case per rule of sched.h (filter, fit,
 * spread by node and by label, tie-breaks, reasons, newest-first removal), and a
 * randomized property test: everything placed fits, as many replicas are placed
 * as the free capacity allows, and no node that still has room holds two fewer
 * replicas than a node that received one.
 */
#include "harness.h"

#include <stdlib.h>

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
    };
    return sc_test_main(tests, argc, argv);
}
