/*
 * sched.h: placement, the pure part of the scheduler loop.
 *
 * The leader's scheduler loop (sctld) reads Deployments, Nodes and Assignments from
 * the store, asks this module where new replicas go or which to remove, and writes
 * the answer back with compare-on-revision.  Everything here is a function of its
 * inputs: no store, no clock, no randomness, so the same cluster state always gives
 * the same placement (tests and the simulator rely on it) and it can be measured
 * alone (bench/sched_bench.c).
 *
 * Placing one Deployment's missing replicas (sched_place):
 *   1. filter: a node is a candidate when it is schedulable (ready, not cordoned)
 *      and carries every label of the nodeSelector;
 *   2. fit: the replica's cpu and memory requests fit in allocatable minus what is
 *      already assigned there (cpu_used/mem_used, updated in place as replicas land,
 *      so several Deployments placed in a row see each other);
 *   3. spread: among the fitting candidates, the replica goes to the spread domain
 *      (the node itself, or the value of a node label such as `zone`) that holds the
 *      fewest replicas of this Deployment, then to the node there with the fewest,
 *      then the least loaded (highest of cpu and memory share), then the first by
 *      name.  A node without the spread label is its own domain "".  Spread
 *      "none" drops the first two keys: the least loaded node wins.
 *   Each replica costs O(log nodes) (a heap per domain; domains are scanned, which
 *   is one heap when spreading by node).
 *
 * A replica that fits nowhere is reported with the reason per node, aggregated the
 * way operators know from kube-scheduler:
 *   "0/3 nodes: 2 insufficient memory, 1 not matching zone=eu-central"
 *
 * Removing (sched_pick_victims): scaling down removes the newest replicas first
 * (highest creation revision, then name), so the oldest, warmest instances stay.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched_label {
    const char *key, *value;
};

struct sched_node {
    const char *name;
    int64_t cpu_millis, mem_bytes; /* allocatable */
    int64_t cpu_used, mem_used;    /* already assigned; sched_place adds to them */
    const struct sched_label *labels;
    size_t n_labels;
    bool schedulable; /* ready and not cordoned */
    bool lost;        /* NotReady past the grace period: its Assignments are placed again */
    bool evacuate;    /* being drained (spec.drain): its Assignments move off, gracefully */
};

struct sched_request {
    uint32_t count;                /* replicas to place now */
    int64_t cpu_millis, mem_bytes; /* requests of one replica */
    const struct sched_label *selector;
    size_t n_selector;
    const char *spread; /* "node" (or NULL), "none", or a node label key */
    /* replicas of this Deployment already on each node (index as in nodes[]);
     * NULL when there are none.  sched_place adds the ones it places. */
    uint32_t *per_node;
};

struct sched_result {
    uint32_t placed;
    uint32_t *node;   /* placed entries: indexes into nodes[], in placement order */
    char reason[256]; /* why the rest could not be placed; "" when all were */
};

/* Places req->count replicas onto nodes[0..n).  Always succeeds (returns 0);
 * what could not be placed is res->count - res->placed, explained by res->reason.
 * res->node is allocated (free with sched_result_done). */
int sched_place(struct sched_node *nodes, size_t n, const struct sched_request *req,
                struct sched_result *res);
void sched_result_done(struct sched_result *res);

/* An existing replica, for choosing what to remove. */
struct sched_replica {
    const char *name;
    uint64_t created_revision;
};
/* Orders idx[0..n) (indexes into r[]) so that the first k are the ones to remove
 * when scaling down by k: newest first. */
void sched_pick_victims(const struct sched_replica *r, size_t n, size_t *idx);
