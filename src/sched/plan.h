/*
 * plan.h: the scheduler loop's decisions as a pure function of the objects.
 *
 * The leader's loop (sctld) keeps a pass (sched_pass_new) for as long as it
 * leads: the Nodes, which of them are ready, and every Assignment, kept current
 * from the store's changes (sched_pass_add / _remove / _set_ready), so that a
 * pass costs what changed, not the size of the cluster.  For each Deployment
 * that needs it the loop asks for a plan (sched_plan_deployment, between
 * sched_pass_begin and sched_pass_end) and writes it in one transaction guarded
 * by the Deployment's revision and the revisions of the Assignments it removes.  If any
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
 * Decisions for one Deployment whose template is Revision V, with R replicas
 * (the rollout rules in docs/rollout.md):
 *   1. Assignments on a Node that no longer exists, or that is lost (NotReady
 *      past the grace period, sched_pass_set_lost), are removed at once;
 *      Assignments of another Revision, or on a Node being drained (spec.drain),
 *      are replaced as the strategy allows (surge, availability, drain from the
 *      load balancer before removal); scaling alone keeps V;
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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_PLAN_MAX_OPS 60

struct sched_pass;

/* nodes: the Node objects (a JSON array); ready: names of Nodes whose heartbeat
 * is live (a JSON object used as a set, may be NULL = none ready).  The pass
 * holds its own references.  A change of the Nodes' set or specs means a new
 * pass (with the Assignments added again); readiness changes in place. */
struct sched_pass *sched_pass_new(const json_t *nodes, const json_t *ready);
void sched_pass_free(struct sched_pass *p);
/* An Assignment as stored (presented, with metadata.revision): it belongs to its
 * Deployment and uses its node's capacity.  Adding a name again replaces it. */
void sched_pass_add(struct sched_pass *p, json_t *assignment);
/* Forgets the Assignment of that name (and frees its node's capacity). */
void sched_pass_remove(struct sched_pass *p, const char *name);
void sched_pass_set_ready(struct sched_pass *p, const char *node, bool ready);
/* A Node NotReady for longer than the grace period is lost: its Assignments are
 * removed and placed elsewhere (their instances may still run there: the node's
 * slet stops them when it comes back, or fences itself, docs/operations.md). */
void sched_pass_set_lost(struct sched_pass *p, const char *node, bool lost);
size_t sched_pass_assignments(const struct sched_pass *p);
/* The Assignments of one Deployment: {name: Assignment}, borrowed, or NULL. */
const json_t *sched_pass_of(const struct sched_pass *p, const char *deployment);
/* Plans made between begin and end change the nodes' usage as if they were
 * applied (so the Deployments planned in one round see each other); end undoes
 * that, because what really lands comes back through sched_pass_add. */
void sched_pass_begin(struct sched_pass *p);
void sched_pass_end(struct sched_pass *p);

struct sched_plan {
    json_t *create; /* Assignment objects to store */
    json_t *remove; /* [{"name", "revision"}]: Assignments to delete if unchanged */
    json_t *drain;  /* Assignment objects to store again, marked draining (guarded
                       by their metadata.revision) */
    json_t *status; /* the Deployment's new status */
    int changes;    /* create + remove + drain */
    bool waiting;   /* something is draining: plan again when its time is up */
    bool rolling;   /* Assignments of another revision remain (a rollout goes on) */
};

/* What a plan reads besides the objects: the instances that are ready (a JSON
 * object {name: ready since, ms}; NULL = none), the time, and minReady in ms (an
 * instance counts as available once it has been ready that long). */
struct sched_plan_ctx {
    const json_t *ready;
    int64_t now_ms;
    int64_t min_ready_ms;
    /* the Deployment's Endpoints objects as stored ({name: object}, with the
     * load balancer programmer's status), or NULL: see SCHED_DRAIN_* */
    const json_t *endpoints;
};

/* How long an Assignment stays draining (out of its load balancer's pool, Cell
 * still running) before it is removed and its Cell stopped:
 *   - no load balancer programmer has ever reported on the Deployment's
 *     Endpoints (no status.served): SCHED_DRAIN_MS, there is nothing to confirm;
 *   - otherwise until every Endpoints object is served at its current generation
 *     without the instance (sclb confirmed the pool without it), but at least
 *     SCHED_DRAIN_MIN_MS (requests under way finish) and at most
 *     SCHED_DRAIN_MAX_MS (a programmer that died does not hold a rollout forever). */
#define SCHED_DRAIN_MS     2000
#define SCHED_DRAIN_MIN_MS 1000
#define SCHED_DRAIN_MAX_MS 30000

/* Plans one Deployment (as read, with metadata.generation); updates the pass's
 * usage as if the plan were applied.  Free the plan with sched_plan_done. */
void sched_plan_deployment(struct sched_pass *p, const json_t *deployment,
                           const struct sched_plan_ctx *ctx, struct sched_plan *out);
void sched_plan_done(struct sched_plan *plan);
