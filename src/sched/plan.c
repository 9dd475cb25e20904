/*
 * plan.c: a Deployment's plan from the stored objects (plan.h for the rules).
 */
#include "sched/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "objects/objects.h"
#include "sched/endpoints.h"
#include "sched/sched.h"

struct sched_pass {
    struct sched_node *nodes; /* sorted by name */
    size_t n;
    struct sched_label *labels; /* every node's, in one array */
    bool *cordoned;             /* spec.unschedulable, per node */
    json_t *node_objs;          /* the Node objects the names and labels point into */
    json_t *by_dep;             /* deployment name -> {name -> Assignment} */
    json_t *all;                /* Assignment name -> Assignment */
    int64_t *saved;             /* cpu_used, mem_used per node at sched_pass_begin */
};

static int node_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sched_node *)a)->name, ((const struct sched_node *)b)->name);
}

static long node_find(const struct sched_pass *p, const char *name)
{
    if (!name)
        return -1;
    struct sched_node key = {.name = name};
    struct sched_node *f = bsearch(&key, p->nodes, p->n, sizeof(key), node_cmp);
    return f ? f - p->nodes : -1;
}

static int64_t int_at(const json_t *o, const char *a, const char *b)
{
    return json_integer_value(json_object_get(json_object_get(o, a), b));
}

static const char *name_of(const json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

struct sched_pass *sched_pass_new(const json_t *nodes, const json_t *ready)
{
    struct sched_pass *p = xcalloc(1, sizeof(*p));
    p->node_objs = json_incref((json_t *)nodes);
    size_t nn = json_array_size(nodes), nl = 0, i;
    const json_t *nd;
    json_array_foreach(nodes, i, nd) nl +=
        json_object_size(json_object_get(json_object_get(nd, "metadata"), "labels"));
    p->nodes = xcalloc(nn ? nn : 1, sizeof(*p->nodes));
    p->labels = xcalloc(nl ? nl : 1, sizeof(*p->labels));
    size_t li = 0;
    json_t *cordon = json_object(); /* names of cordoned nodes, to survive the sort */
    json_array_foreach(nodes, i, nd)
    {
        const char *name = name_of(nd);
        if (!name)
            continue;
        const json_t *spec = json_object_get(nd, "spec");
        struct sched_node *s = &p->nodes[p->n++];
        s->name = name;
        const char *which = json_object_get(spec, "allocatable") ? "allocatable" : "capacity";
        s->cpu_millis = int_at(spec, which, "cpuMillis");
        s->mem_bytes = int_at(spec, which, "memoryBytes");
        s->schedulable = ready && json_object_get(ready, name) &&
                         !json_is_true(json_object_get(spec, "unschedulable")) &&
                         !json_is_true(json_object_get(spec, "drain"));
        s->evacuate = json_is_true(json_object_get(spec, "drain"));
        if (json_is_true(json_object_get(spec, "unschedulable")) ||
            json_is_true(json_object_get(spec, "drain")))
            json_object_set_new(cordon, name, json_true());
        s->labels = &p->labels[li];
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)json_object_get(json_object_get(nd, "metadata"), "labels"), k,
                            v)
        {
            if (json_is_string(v)) {
                p->labels[li++] = (struct sched_label){k, json_string_value(v)};
                s->n_labels++;
            }
        }
    }
    qsort(p->nodes, p->n, sizeof(*p->nodes), node_cmp);
    p->cordoned = xcalloc(p->n ? p->n : 1, sizeof(bool));
    for (size_t k = 0; k < p->n; k++)
        p->cordoned[k] = json_object_get(cordon, p->nodes[k].name) != NULL;
    json_decref(cordon);
    p->saved = xcalloc(2 * (p->n ? p->n : 1), sizeof(int64_t));
    p->by_dep = json_object();
    p->all = json_object();
    return p;
}

/* Adds (sign 1) or takes back (-1) an Assignment's requests on its node. */
static void charge(struct sched_pass *p, const json_t *a, int sign)
{
    const json_t *spec = json_object_get(a, "spec");
    long ni = node_find(p, json_string_value(json_object_get(spec, "node")));
    if (ni >= 0) {
        p->nodes[ni].cpu_used += sign * json_integer_value(json_object_get(spec, "cpuMillis"));
        p->nodes[ni].mem_used += sign * json_integer_value(json_object_get(spec, "memoryBytes"));
    }
}

void sched_pass_remove(struct sched_pass *p, const char *name)
{
    json_t *a = name ? json_object_get(p->all, name) : NULL;
    if (!a)
        return;
    charge(p, a, -1);
    const char *dep = json_string_value(json_object_get(json_object_get(a, "spec"), "deployment"));
    json_t *mine = dep ? json_object_get(p->by_dep, dep) : NULL;
    if (mine) {
        json_object_del(mine, name);
        if (json_object_size(mine) == 0)
            json_object_del(p->by_dep, dep);
    }
    json_object_del(p->all, name); /* drops a's last reference held here */
}

void sched_pass_add(struct sched_pass *p, json_t *a)
{
    const char *name = name_of(a);
    const char *dep = json_string_value(json_object_get(json_object_get(a, "spec"), "deployment"));
    if (!name || !dep)
        return;
    sched_pass_remove(p, name);
    json_t *mine = json_object_get(p->by_dep, dep);
    if (!mine)
        json_object_set_new(p->by_dep, dep, mine = json_object());
    json_object_set(mine, name, a);
    json_object_set(p->all, name, a);
    charge(p, a, 1);
}

void sched_pass_set_ready(struct sched_pass *p, const char *node, bool ready)
{
    long ni = node_find(p, node);
    if (ni >= 0)
        p->nodes[ni].schedulable = ready && !p->cordoned[ni];
}

void sched_pass_set_lost(struct sched_pass *p, const char *node, bool lost)
{
    long ni = node_find(p, node);
    if (ni >= 0)
        p->nodes[ni].lost = lost;
}

size_t sched_pass_assignments(const struct sched_pass *p)
{
    return json_object_size(p->all);
}

const json_t *sched_pass_of(const struct sched_pass *p, const char *deployment)
{
    return deployment ? json_object_get(p->by_dep, deployment) : NULL;
}

void sched_pass_begin(struct sched_pass *p)
{
    for (size_t k = 0; k < p->n; k++) {
        p->saved[2 * k] = p->nodes[k].cpu_used;
        p->saved[2 * k + 1] = p->nodes[k].mem_used;
    }
}

void sched_pass_end(struct sched_pass *p)
{
    for (size_t k = 0; k < p->n; k++) {
        p->nodes[k].cpu_used = p->saved[2 * k];
        p->nodes[k].mem_used = p->saved[2 * k + 1];
    }
}

void sched_pass_free(struct sched_pass *p)
{
    if (!p)
        return;
    json_decref(p->by_dep);
    json_decref(p->all);
    json_decref(p->node_objs);
    free(p->saved);
    free(p->cordoned);
    free(p->labels);
    free(p->nodes);
    free(p);
}

void sched_plan_done(struct sched_plan *plan)
{
    json_decref(plan->create);
    json_decref(plan->remove);
    json_decref(plan->drain);
    json_decref(plan->status);
    memset(plan, 0, sizeof(*plan));
}

static void release(struct sched_pass *p, const json_t *a)
{
    charge(p, a, -1);
}

static void add_remove(struct sched_plan *out, const json_t *a)
{
    const json_t *md = json_object_get(a, "metadata");
    json_array_append_new(out->remove,
                          json_pack("{s:O, s:I}", "name", json_object_get(md, "name"), "revision",
                                    json_integer_value(json_object_get(md, "revision"))));
    out->changes++;
}

/* Is the Assignment's instance available: ready, for minReadySeconds? */
static bool plan_available(const struct sched_plan_ctx *ctx, const json_t *a)
{
    const char *name = name_of(a);
    if (!ctx || !ctx->ready || !name)
        return false;
    const json_t *r = json_object_get(ctx->ready, name);
    if (!r)
        return false;
    int64_t since = json_integer_value(r);
    return !ctx->min_ready_ms || !since || ctx->now_ms - since >= ctx->min_ready_ms;
}

/* Is a draining Assignment's instance out of every load balancer pool (see
 * SCHED_DRAIN_* in plan.h)? keep_ms: blue-green's keepOld, a longer minimum. */
static bool drain_done(const struct sched_plan_ctx *ctx, const char *name, int64_t since,
                       int64_t keep_ms, int64_t now_ms)
{
    bool programmed = false, confirmed = true;
    const char *k;
    const json_t *ep;
    json_object_foreach((json_t *)(ctx ? ctx->endpoints : NULL), k, ep)
    {
        const json_t *st = json_object_get(ep, "status");
        if (!json_object_get(st, "served"))
            continue; /* no programmer has reported on this one */
        programmed = true;
        bool listed = false;
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(json_object_get(ep, "spec"), "endpoints"), i, e)
            listed |=
            name && !strcmp(json_string_value(json_object_get(e, "instance")) ?: "", name);
        if (listed || !json_is_true(json_object_get(st, "served")) ||
            int_at(ep, "status", "generation") < int_at(ep, "metadata", "generation"))
            confirmed = false;
    }
    if (keep_ms > 0 && now_ms < since + keep_ms)
        return false;
    if (!programmed)
        return now_ms >= since + SCHED_DRAIN_MS;
    return now_ms >= since + SCHED_DRAIN_MIN_MS &&
           (confirmed || now_ms >= since + SCHED_DRAIN_MAX_MS);
}

/* An Assignment leaves: behind a load balancer it is first marked draining
 * (its endpoint leaves the pool while its Cell still runs) and removed once
 * drained (step 1 of a later plan); otherwise it is removed now. */
static void retire(struct sched_pass *p, struct sched_plan *out, const json_t *a, bool exposed,
                   int64_t now_ms, int64_t keep_ms)
{
    if (!exposed) {
        add_remove(out, a);
        release(p, a);
        return;
    }
    json_t *x = json_deep_copy(a);
    json_t *spec = json_object_get(x, "spec");
    json_object_set_new(spec, "draining", json_true());
    json_object_set_new(spec, "drainingSinceMs", json_integer(now_ms));
    if (keep_ms > SCHED_DRAIN_MS)
        json_object_set_new(spec, "drainMs", json_integer(keep_ms));
    json_array_append_new(out->drain, x);
    out->changes++;
    out->waiting = true;
}

/* The rollout goes back to the revision it came from (or fails without one). */
static void roll_back(json_t *rollout, const char *revname, const char *from, const char *why)
{
    json_object_set_new(rollout, "reason", json_string(why));
    json_object_del(rollout, "weights");
    if (!from || !strcmp(from, revname)) {
        json_object_set_new(rollout, "phase", json_string("failed"));
        return;
    }
    json_object_set_new(rollout, "phase", json_string("rolled-back"));
    json_object_set_new(rollout, "rolledBackFrom", json_string(revname));
    json_object_set_new(rollout, "revision", json_string(from));
    json_object_del(rollout, "from");
}

static int64_t int_or(const json_t *o, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* K of an assignment named DEP-GEN-K, or -1. */
static long ordinal(const char *name, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (!name || strncmp(name, prefix, pl) != 0 || !name[pl])
        return -1;
    char *end;
    long k = strtol(name + pl, &end, 10);
    return *end ? -1 : k;
}

void sched_plan_deployment(struct sched_pass *p, const json_t *d, const struct sched_plan_ctx *ctx,
                           struct sched_plan *out)
{
    memset(out, 0, sizeof(*out));
    out->create = json_array();
    out->remove = json_array();
    out->drain = json_array();
    int64_t now_ms = ctx ? ctx->now_ms : 0;
    const char *dep = name_of(d);
    const json_t *spec = json_object_get(d, "spec");
    int64_t gen = int_at(d, "metadata", "generation");
    gen = gen > 0 ? gen : 1;
    int64_t want = json_integer_value(json_object_get(spec, "replicas"));
    const json_t *res = json_object_get(spec, "resources");
    int64_t cpu = json_integer_value(json_object_get(res, "cpuMillis"));
    int64_t mem = json_integer_value(json_object_get(res, "memoryBytes"));
    const json_t *placement = json_object_get(spec, "placement");
    char revname[128], prefix[140];
    obj_revision_name(d, revname, sizeof(revname));
    /* the rollout (docs/rollout.md): which revision the Assignments follow */
    const json_t *ro = json_object_get(json_object_get(d, "status"), "rollout");
    const char *ro_rev = json_string_value(json_object_get(ro, "revision"));
    const char *ro_from = json_string_value(json_object_get(ro, "from"));
    const char *ro_back = json_string_value(json_object_get(ro, "rolledBackFrom"));
    json_t *rollout;
    if (ro_back && !strcmp(ro_back, revname) && ro_rev) {
        rollout = json_deep_copy(ro); /* rolled back: stays so until the spec changes */
        snprintf(revname, sizeof(revname), "%s", ro_rev);
    } else if (ro_rev && !strcmp(ro_rev, revname)) {
        rollout = json_deep_copy(ro); /* the rollout under way (or done) */
    } else {
        rollout = json_pack("{s:s, s:s, s:I}", "revision", revname, "phase", "progressing",
                            "startedMs", (json_int_t)now_ms);
        if (ro_rev) /* what it rolls back to if this one never becomes available */
            json_object_set_new(rollout, "from", json_string(ro_rev));
        ro_from = ro_rev;
    }
    snprintf(prefix, sizeof(prefix), "%s-", revname);

    /* 1. gather: the target revision's, the other revisions', the draining ones;
     *    Assignments on vanished nodes go at once (nothing is left to drain) */
    const json_t *mine = dep ? json_object_get(p->by_dep, dep) : NULL;
    size_t n_mine = json_object_size(mine);
    const char *an;
    const json_t **cur = xcalloc(n_mine ? n_mine : 1, sizeof(*cur));
    const json_t **old = xcalloc(n_mine ? n_mine : 1, sizeof(*old));
    size_t ncur = 0, nold = 0, nold_rev = 0, ndraining = 0, nkept = 0, nrevived = 0;
    const json_t **keptv = xcalloc(n_mine ? n_mine : 1, sizeof(*keptv));
    uint32_t *per = xcalloc(p->n ? p->n : 1, sizeof(uint32_t));
    const json_t *a;
    bool exposed = sched_exposes(d);
    json_object_foreach((json_t *)mine, an, a)
    {
        const json_t *as = json_object_get(a, "spec");
        long ni = node_find(p, json_string_value(json_object_get(as, "node")));
        const char *arev = json_string_value(json_object_get(as, "revision"));
        if (ni < 0 || p->nodes[ni].lost) { /* nothing is left there to drain */
            if (out->changes < SCHED_PLAN_MAX_OPS) {
                add_remove(out, a);
                release(p, a);
            }
            continue;
        }
        if (json_is_true(json_object_get(as, "draining"))) {
            /* drained long enough: the load balancer has let it go (blue-green's
             * keepOld keeps it running longer, out of the pool) */
            int64_t since = json_integer_value(json_object_get(as, "drainingSinceMs"));
            if (!exposed || drain_done(ctx, an, since, int_or(as, "drainMs", 0), now_ms)) {
                if (out->changes < SCHED_PLAN_MAX_OPS) {
                    add_remove(out, a);
                    release(p, a);
                }
                continue;
            }
            out->waiting = true;
            if (int_or(as, "drainMs", 0) == 0 || now_ms < since + SCHED_DRAIN_MS)
                ndraining++;
            else if (arev && !strcmp(arev, revname)) /* kept, and wanted again */
                keptv[nkept++] = a;
            /* drained and kept (keepOld): outside the rollout's budget */
            continue;
        }
        if (!arev || strcmp(arev, revname) != 0) {
            old[nold++] = a;
            nold_rev++;
            continue;
        }
        if (p->nodes[ni].evacuate) { /* sctl nodes drain: replaced like an old revision */
            old[nold++] = a;
            continue;
        }
        cur[ncur++] = a;
        per[ni]++;
    }
    /* the rollout returned to a revision whose instances are still kept: they
     * come back into the pool instead of new ones being placed */
    for (size_t k = 0; k < nkept && (int64_t)ncur < want && out->changes < SCHED_PLAN_MAX_OPS;
         k++) {
        json_t *x = json_deep_copy(keptv[k]);
        json_t *xs = json_object_get(x, "spec");
        json_object_del(xs, "draining");
        json_object_del(xs, "drainingSinceMs");
        json_object_del(xs, "drainMs");
        json_array_append_new(out->drain, x);
        out->changes++;
        nrevived++;
        cur[ncur++] = keptv[k];
        per[node_find(p, json_string_value(json_object_get(json_object_get(x, "spec"), "node")))]++;
    }
    size_t ready_cur = 0, ready_old = 0;
    for (size_t k = 0; k < ncur; k++)
        ready_cur += plan_available(ctx, cur[k]);
    for (size_t k = 0; k < nold; k++)
        ready_old += plan_available(ctx, old[k]);

    /* 2. too many of the target revision: the newest go */
    if ((int64_t)ncur > want) {
        struct sched_replica *r = xcalloc(ncur, sizeof(*r));
        size_t *idx = xcalloc(ncur, sizeof(*idx));
        for (size_t k = 0; k < ncur; k++)
            r[k] = (struct sched_replica){name_of(cur[k]),
                                          (uint64_t)int_at(cur[k], "metadata", "revision")};
        sched_pick_victims(r, ncur, idx);
        size_t drop = ncur - (size_t)want, kept = 0;
        bool *gone = xcalloc(ncur, sizeof(bool));
        for (size_t k = 0; k < drop && out->changes < SCHED_PLAN_MAX_OPS; k++) {
            if (plan_available(ctx, cur[idx[k]]))
                ready_cur--;
            retire(p, out, cur[idx[k]], exposed, now_ms, 0);
            gone[idx[k]] = true;
        }
        for (size_t k = 0; k < ncur; k++)
            if (!gone[k])
                cur[kept++] = cur[k];
        ncur = kept;
        free(gone);
        free(idx);
        free(r);
    }

    /* 3a. a rollout: the other revisions' Assignments go as the strategy allows.
     *   rolling: never more than replicas + maxSurge in all, never fewer than
     *     replicas - maxUnavailable available; the unavailable old ones first;
     *   blue-green: the old ones go all at once when the target revision is
     *     fully available (the switch), none before. */
    const json_t *upd = json_object_get(spec, "update");
    const char *strategy = json_string_value(json_object_get(upd, "strategy"));
    bool bluegreen = strategy && !strcmp(strategy, "blue-green");
    int64_t keep_old = int_or(upd, "keepOldMs", 0);
    const char *ph0 = json_string_value(json_object_get(rollout, "phase"));
    bool in_progress = ph0 && (!strcmp(ph0, "progressing") || !strcmp(ph0, "paused"));
    /* `sctl rollout pause`: nothing old leaves and nothing new comes until resume */
    bool user_paused = in_progress && json_is_true(json_object_get(rollout, "pausedByUser"));
    /* canary: steps of a few new instances beside the whole old set, each
     * step's weight % of the traffic by endpoint weights, paused for its
     * duration or until promoted; after the last step a rolling update */
    const json_t *steps = json_object_get(upd, "steps");
    int64_t nsteps = steps ? (int64_t)json_array_size(steps) : 1;
    int64_t step = int_or(rollout, "step", 0);
    bool canary = strategy && !strcmp(strategy, "canary") && nold_rev > 0 && in_progress;
    if (canary && !user_paused) {
        const json_t *st = json_array_get(steps, (size_t)step);
        int64_t reached = int_or(rollout, "stepReachedMs", 0);
        int64_t pause_ms = steps ? int_or(st, "pauseMs", -1) : -1;
        int64_t was = step;
        if (json_is_true(json_object_get(rollout, "promoteFull")))
            step = nsteps;
        else if (json_is_true(json_object_get(rollout, "promoted")))
            step++;
        else if (reached && pause_ms >= 0 && now_ms >= reached + pause_ms)
            step++;
        json_object_del(rollout, "promoted");
        json_object_del(rollout, "promoteFull");
        if (step != was) {
            json_object_del(rollout, "stepReachedMs");
            json_object_set_new(rollout, "progressSinceMs", json_integer(now_ms));
        }
        json_object_set_new(rollout, "step", json_integer(step < nsteps ? step : nsteps));
    }
    canary = canary && step < nsteps;
    int64_t cw = steps ? int_or(json_array_get(steps, (size_t)step), "weight", 10)
                       : int_or(upd, "canaryWeight", 10);
    int64_t ccount = (want * cw + 99) / 100;
    ccount = ccount < 1 ? 1 : ccount > want ? want : ccount;
    int64_t surge = json_is_integer(json_object_get(upd, "maxSurge"))
                        ? json_integer_value(json_object_get(upd, "maxSurge"))
                        : 1;
    int64_t unavail = json_integer_value(json_object_get(upd, "maxUnavailable"));
    int64_t min_avail = want - unavail > 0 ? want - unavail : 0;
    if (bluegreen) {
        surge = want; /* the whole new set next to the old one */
        min_avail = want;
    }
    if (canary)
        surge = ccount;
    if (nold > 0 && !canary && !user_paused) {
        for (int pass_ready = 0; pass_ready < 2; pass_ready++)
            for (size_t k = 0; k < nold && out->changes < SCHED_PLAN_MAX_OPS; k++) {
                if (!old[k])
                    continue;
                bool avail = plan_available(ctx, old[k]);
                if (avail != (pass_ready == 1))
                    continue;
                if (avail) {
                    if (bluegreen ? ready_cur < (size_t)want
                                  : (int64_t)(ready_cur + ready_old) - 1 < min_avail)
                        break;
                    ready_old--;
                }
                retire(p, out, old[k], exposed, now_ms, bluegreen ? keep_old : 0);
                old[k] = NULL;
            }
        size_t left = 0;
        for (size_t k = 0; k < nold; k++)
            left += old[k] != NULL;
        nold = left;
    }
    out->rolling = nold > 0;

    /* the room a rollout leaves for new ones: replicas + maxSurge in all */
    size_t nretired = json_array_size(out->drain) - nrevived;
    int64_t in_all = (int64_t)(ncur + nold + ndraining + nretired);
    int64_t cap_total = want + surge;
    /* 3. too few: place the missing ones, within what this plan may still change
     *    and, during a rollout, within replicas + maxSurge in all */
    int64_t missing = (canary ? ccount : want) - (int64_t)ncur;
    if (nold + ndraining + nretired > 0 && missing > cap_total - in_all)
        missing = cap_total - in_all;
    if (user_paused && nold > 0)
        missing = 0;
    int64_t room = SCHED_PLAN_MAX_OPS - out->changes;
    const char *reason = NULL;
    struct sched_result placed = {0};
    if (missing > 0 && room > 0) {
        const json_t *sel = json_object_get(placement, "nodeSelector");
        size_t nsel = json_object_size(sel), si = 0;
        struct sched_label *selector = xcalloc(nsel ? nsel : 1, sizeof(*selector));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)sel, k, v) selector[si++] =
            (struct sched_label){k, json_string_value(v)};
        struct sched_request rq = {.count = (uint32_t)(missing < room ? missing : room),
                                   .cpu_millis = cpu,
                                   .mem_bytes = mem,
                                   .selector = selector,
                                   .n_selector = si,
                                   .spread =
                                       json_string_value(json_object_get(placement, "spread")),
                                   .per_node = per};
        sched_place(p->nodes, p->n, &rq, &placed);
        if (placed.reason[0])
            reason = placed.reason;
        /* names: the lowest free K */
        size_t nused = ncur + placed.placed;
        bool *used = xcalloc(nused + 1, sizeof(bool));
        for (size_t c = 0; c < ncur; c++) {
            long o = ordinal(name_of(cur[c]), prefix);
            if (o >= 0 && (size_t)o <= nused)
                used[o] = true;
        }
        size_t next = 0;
        char aname[160];
        for (uint32_t c = 0; c < placed.placed; c++) {
            while (used[next])
                next++;
            used[next] = true;
            snprintf(aname, sizeof(aname), "%s%zu", prefix, next);
            json_array_append_new(
                out->create,
                json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s}}, s:{s:s, s:s, s:I, s:s, s:I, s:I}}",
                          "kind", "Assignment", "apiVersion", "v1", "metadata", "name", aname,
                          "labels", "deployment", dep, "node", p->nodes[placed.node[c]].name,
                          "spec", "deployment", dep, "revision", revname, "generation",
                          (json_int_t)gen, "node", p->nodes[placed.node[c]].name, "cpuMillis",
                          (json_int_t)cpu, "memoryBytes", (json_int_t)mem));
            out->changes++;
        }
        ncur += placed.placed;
        free(used);
        free(selector);
    }

    out->status = json_pack("{s:I, s:I, s:I}", "observedGeneration", (json_int_t)gen, "replicas",
                            (json_int_t)want, "assigned", (json_int_t)ncur);
    /* the rollout's phase: complete when nothing else remains and the target is
     * fully available; past progressDeadline, back to the revision it came from */
    const char *phase = json_string_value(json_object_get(rollout, "phase"));
    int64_t deadline = int_or(upd, "progressDeadlineMs", 600000);
    /* the deadline counts from the start, a canary step's end or a resume */
    int64_t since = int_or(rollout, "startedMs", 0);
    if (int_or(rollout, "progressSinceMs", 0) > since)
        since = int_or(rollout, "progressSinceMs", 0);
    if (json_is_true(json_object_get(rollout, "aborted")) && in_progress && ro_from &&
        strcmp(ro_from, revname) != 0) {
        roll_back(rollout, revname, ro_from, "aborted by the user");
        json_object_del(rollout, "aborted");
        phase = NULL;
    }
    json_object_del(rollout, "weights");
    if (canary && phase) {
        /* per-endpoint weights giving the new revision cw % of the traffic:
         * n_new * wn / (n_new * wn + n_old * wo) = cw / 100 */
        int64_t wn = cw * (int64_t)nold, wo = (100 - cw) * (int64_t)(ncur ? ncur : 1);
        while (wn > 256 || wo > 256) {
            wn = (wn + 1) / 2;
            wo = (wo + 1) / 2;
        }
        json_t *w = json_object();
        json_object_set_new(w, revname, json_integer(wn));
        for (size_t k = 0; k < nold; k++) {
            const char *orev = old[k] ? json_string_value(json_object_get(
                                            json_object_get(old[k], "spec"), "revision"))
                                      : NULL;
            if (orev && strcmp(orev, revname) != 0)
                json_object_set_new(w, orev, json_integer(wo));
        }
        json_object_set_new(rollout, "weights", w);
        int64_t reached = int_or(rollout, "stepReachedMs", 0);
        if ((int64_t)ready_cur >= ccount) {
            /* the step's instances are up: its pause runs (a duration, or until
             * promote or abort) */
            if (!reached)
                json_object_set_new(rollout, "stepReachedMs", json_integer(now_ms));
            json_object_set_new(rollout, "phase", json_string("paused"));
            phase = NULL;
        } else if (reached) {
            /* a canary instance stopped being available during its step */
            char why[256];
            snprintf(why, sizeof(why),
                     "canary step %lld (weight %lld%%) failed: %zu/%lld canary instances "
                     "available",
                     (long long)step + 1, (long long)cw, ready_cur, (long long)ccount);
            roll_back(rollout, revname, ro_from, why);
            phase = NULL;
        }
    }
    if (phase && user_paused) {
        json_object_set_new(rollout, "phase", json_string("paused"));
        phase = NULL;
    }
    if (phase && !strcmp(phase, "paused")) { /* resumed, or the canary promoted */
        json_object_set_new(rollout, "phase", json_string(phase = "progressing"));
        json_object_set_new(rollout, "progressSinceMs", json_integer(now_ms));
        since = now_ms;
    }
    if (phase && !strcmp(phase, "progressing")) {
        if (!out->rolling && ndraining == 0 && nretired == 0 && (int64_t)ready_cur >= want) {
            json_object_set_new(rollout, "phase", json_string("complete"));
        } else if (ctx && now_ms - since > deadline) {
            char why[256];
            snprintf(why, sizeof(why),
                     "revision %s: %zu/%lld available after %llds (progressDeadline)", revname,
                     ready_cur, (long long)want, (long long)(deadline / 1000));
            roll_back(rollout, revname, ro_from, why);
        }
    }
    json_object_set_new(out->status, "rollout", rollout);
    if (reason)
        json_object_set_new(out->status, "unschedulable", json_string(reason));
    sched_result_done(&placed);
    free(per);
    free(keptv);
    free(old);
    free(cur);
}
