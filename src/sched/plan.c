/*
 * plan.c: a Deployment's plan from the stored objects (plan.h for the rules).
 */
#include "sched/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "objects/objects.h"
#include "sched/sched.h"

struct sched_pass {
    struct sched_node *nodes; /* sorted by name */
    size_t n;
    struct sched_label *labels; /* every node's, in one array */
    json_t *by_dep;             /* deployment name -> [Assignment] (borrowed items) */
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

struct sched_pass *sched_pass_new(const json_t *nodes, const json_t *ready,
                                  const json_t *assignments)
{
    struct sched_pass *p = xcalloc(1, sizeof(*p));
    size_t nn = json_array_size(nodes), nl = 0, i;
    const json_t *nd;
    json_array_foreach(nodes, i, nd) nl +=
        json_object_size(json_object_get(json_object_get(nd, "metadata"), "labels"));
    p->nodes = xcalloc(nn ? nn : 1, sizeof(*p->nodes));
    p->labels = xcalloc(nl ? nl : 1, sizeof(*p->labels));
    size_t li = 0;
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
                         !json_is_true(json_object_get(spec, "unschedulable"));
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
    p->by_dep = json_object();
    const json_t *a;
    json_array_foreach(assignments, i, a)
    {
        const json_t *spec = json_object_get(a, "spec");
        const char *dep = json_string_value(json_object_get(spec, "deployment"));
        if (!dep)
            continue;
        json_t *list = json_object_get(p->by_dep, dep);
        if (!list)
            json_object_set_new(p->by_dep, dep, list = json_array());
        json_array_append(list, (json_t *)a);
        long ni = node_find(p, json_string_value(json_object_get(spec, "node")));
        if (ni >= 0) {
            p->nodes[ni].cpu_used += json_integer_value(json_object_get(spec, "cpuMillis"));
            p->nodes[ni].mem_used += json_integer_value(json_object_get(spec, "memoryBytes"));
        }
    }
    return p;
}

void sched_pass_free(struct sched_pass *p)
{
    if (!p)
        return;
    json_decref(p->by_dep);
    free(p->labels);
    free(p->nodes);
    free(p);
}

void sched_plan_done(struct sched_plan *plan)
{
    json_decref(plan->create);
    json_decref(plan->remove);
    json_decref(plan->status);
    memset(plan, 0, sizeof(*plan));
}

static void release(struct sched_pass *p, const json_t *a)
{
    const json_t *spec = json_object_get(a, "spec");
    long ni = node_find(p, json_string_value(json_object_get(spec, "node")));
    if (ni >= 0) {
        p->nodes[ni].cpu_used -= json_integer_value(json_object_get(spec, "cpuMillis"));
        p->nodes[ni].mem_used -= json_integer_value(json_object_get(spec, "memoryBytes"));
    }
}

static void add_remove(struct sched_plan *out, const json_t *a)
{
    const json_t *md = json_object_get(a, "metadata");
    json_array_append_new(out->remove,
                          json_pack("{s:O, s:I}", "name", json_object_get(md, "name"), "revision",
                                    json_integer_value(json_object_get(md, "revision"))));
    out->changes++;
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

void sched_plan_deployment(struct sched_pass *p, const json_t *d, struct sched_plan *out)
{
    memset(out, 0, sizeof(*out));
    out->create = json_array();
    out->remove = json_array();
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
    snprintf(prefix, sizeof(prefix), "%s-", revname);

    /* 1. older generations and vanished nodes go; 2. gather the current ones */
    const json_t *mine = dep ? json_object_get(p->by_dep, dep) : NULL;
    size_t n_mine = json_array_size(mine), i;
    const json_t **cur = xcalloc(n_mine ? n_mine : 1, sizeof(*cur));
    size_t ncur = 0;
    uint32_t *per = xcalloc(p->n ? p->n : 1, sizeof(uint32_t));
    const json_t *a;
    json_array_foreach(mine, i, a)
    {
        const json_t *as = json_object_get(a, "spec");
        long ni = node_find(p, json_string_value(json_object_get(as, "node")));
        const char *arev = json_string_value(json_object_get(as, "revision"));
        bool old = !arev || strcmp(arev, revname) != 0;
        if (old || ni < 0) {
            if (out->changes < SCHED_PLAN_MAX_OPS) {
                add_remove(out, a);
                release(p, a);
            }
            continue;
        }
        cur[ncur++] = a;
        per[ni]++;
    }

    /* 2. too many: the newest go */
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
            add_remove(out, cur[idx[k]]);
            release(p, cur[idx[k]]);
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

    /* 3. too few: place the missing ones, within what this plan may still change */
    int64_t missing = want - (int64_t)ncur;
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
    if (reason)
        json_object_set_new(out->status, "unschedulable", json_string(reason));
    sched_result_done(&placed);
    free(per);
    free(cur);
}
