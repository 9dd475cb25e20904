/*
 * plan.h: the scheduler loop's decisions as a pure function of the objects.
 *
 * The leader's loop (sctld) lists Nodes, the node heartbeat keys, Deployments and
 * Assignments, builds a pass (sched_pass_new), asks for each Deployment's plan
 * (sched_plan_deployment) and writes it in one transaction guarded by the
 * Deployment's revision and the revisions of the Assignments it removes.  If any
 * of them moved, the transaction fails and the next pass plans again from what
 * is stored: the loop is level-triggered, so a lost race or a crashed leader
 * costs one pass, never a duplicate.
 *
 * Shapes (docs/api.md, "Objects"):
 *   Assignment  metadata {name: REVISION-K, labels {deployment, node}},
 *               spec {deployment, revision (obj_revision_name: DEPLOYMENT-HASH),
 *                     generation, node, cpuMillis, memoryBytes}
 *   Deployment status {observedGeneration, replicas, assigned, unschedulable?}
 *
 * Decisions for one Deployment whose template is Revision V, with R replicas:
 *   1. Assignments of another Revision, or on a Node that no longer exists, are
 *      removed (issue 6 brings rolling replacement; until then an update is a
 *      recreate; scaling alone keeps V and touches nothing else);
 *   2. of Revision V, the newest beyond R are removed (sched_pick_victims);
 *   3. the missing ones are placed by sched_place (filter, fit, spread) and named
 *      with the lowest free K;
 *   4. at most SCHED_PLAN_MAX_OPS changes per plan, so that its transaction (a
 *      compare and a delete per removal, a put per creation, the Deployment's
 *      compare and status) stays within the store's 128 compares plus
 *      operations; the next pass does the rest.
 * Capacity freed by removals is available to placements of the same pass.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_PLAN_MAX_OPS 60

struct sched_pass;

/* nodes: the Node objects; ready: names of Nodes whose heartbeat is live (a JSON
 * object used as a set, may be NULL = none ready); assignments: every Assignment
 * object (for usage).  Borrowed; keep them alive while the pass lives. */
struct sched_pass *sched_pass_new(const json_t *nodes, const json_t *ready,
                                  const json_t *assignments);
void sched_pass_free(struct sched_pass *p);

struct sched_plan {
    json_t *create; /* Assignment objects to store */
    json_t *remove; /* [{"name", "revision"}]: Assignments to delete if unchanged */
    json_t *status; /* the Deployment's new status */
    int changes;    /* json_array_size(create) + json_array_size(remove) */
};

/* Plans one Deployment (as read, with metadata.generation); updates the pass's
 * usage as if the plan were applied.  Free the plan with sched_plan_done. */
void sched_plan_deployment(struct sched_pass *p, const json_t *deployment, struct sched_plan *out);
void sched_plan_done(struct sched_plan *plan);
