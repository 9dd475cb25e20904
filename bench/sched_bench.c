/*
 * sched_bench.c: placement throughput of src/sched alone (no store, no network).
 *
 * For 1,000 and 5,000 nodes (16 cores, 64 GiB each, zones z0..z3, every tenth
 * half busy),
 * places 100,000 instances as 1,000 Deployments of 100 replicas (100m, 64Mi),
 * spread by node and, in a second run, by zone, the way the leader's loop calls
 * sched_place: nodes sorted by name once, then one call per Deployment.  Prints
 * placements per second and the time for all 100,000, next to the published
 * anchors of issue 5 (kube-scheduler 100-1,000 pods/s; Nomad 3,750/s with 5
 * servers), as ratios.  Those are published figures, not run here: neither
 * kube-scheduler nor Nomad is packaged in Debian.
 *
 *   BUILD/bench/sched_bench [DEPLOYMENTS=1000] [REPLICAS=100]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/sched.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct sched_node *)a)->name, ((const struct sched_node *)b)->name);
}

static void run(size_t nnodes, int deployments, int replicas, const char *spread)
{
    static const char *zones[] = {"z0", "z1", "z2", "z3"};
    struct sched_node *n = calloc(nnodes, sizeof(*n));
    struct sched_label *labels = calloc(nnodes, sizeof(*labels));
    char(*names)[32] = calloc(nnodes, sizeof(*names));
    uint32_t *per = calloc(nnodes, sizeof(uint32_t));
    for (size_t i = 0; i < nnodes; i++) {
        snprintf(names[i], sizeof(names[i]), "node-%05zu", (i * 7919) % nnodes);
        labels[i] = (struct sched_label){"zone", zones[i % 4]};
        n[i] = (struct sched_node){.name = names[i],
                                   .cpu_millis = 16000,
                                   .mem_bytes = 64LL << 30,
                                   .labels = &labels[i],
                                   .n_labels = 1,
                                   .schedulable = true};
        if (i % 10 == 0)
            n[i].cpu_used = 8000;
    }
    double t0 = now_s(), c0 = cpu_s();
    qsort(n, nnodes, sizeof(*n), by_name);
    uint64_t placed = 0, unplaced = 0;
    for (int d = 0; d < deployments; d++) {
        memset(per, 0, nnodes * sizeof(uint32_t));
        struct sched_request r = {.count = (uint32_t)replicas,
                                  .cpu_millis = 100,
                                  .mem_bytes = 64LL << 20,
                                  .spread = spread,
                                  .per_node = per};
        struct sched_result res;
        sched_place(n, nnodes, &r, &res);
        placed += res.placed;
        unplaced += r.count - res.placed;
        sched_result_done(&res);
    }
    double el = now_s() - t0, cpu = cpu_s() - c0;
    double rate = (double)placed / el;
    printf("| %5zu | %-5s | %7llu | %5llu | %8.3f | %8.3f | %10.0f | %6.0fx | %6.1fx |\n", nnodes,
           spread, (unsigned long long)placed, (unsigned long long)unplaced, el, cpu, rate,
           rate / 1000.0, rate / 3750.0);
    free(n);
    free(labels);
    free(names);
    free(per);
}

int main(int argc, char **argv)
{
    int deployments = argc > 1 ? atoi(argv[1]) : 1000;
    int replicas = argc > 2 ? atoi(argv[2]) : 100;
    printf("placing %d deployments x %d replicas (100m, 64Mi each)\n\n", deployments, replicas);
    printf("| nodes | spread | placed | unplaced | wall s | cpu s | placements/s | vs kube-sched "
           "1,000/s | vs Nomad 3,750/s |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    size_t sizes[] = {1000, 5000};
    for (size_t i = 0; i < 2; i++) {
        run(sizes[i], deployments, replicas, "node");
        run(sizes[i], deployments, replicas, "zone");
    }
    return 0;
}
