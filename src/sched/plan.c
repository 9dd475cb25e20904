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
                         !json_is_true(json_object_get(spec, "unschedulable"));
        if (json_is_true(json_object_get(spec, "unschedulable")))
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
    size_t n_mine = json_object_size(mine);
    const char *an;
    const json_t **cur = xcalloc(n_mine ? n_mine : 1, sizeof(*cur));
    size_t ncur = 0;
    uint32_t *per = xcalloc(p->n ? p->n : 1, sizeof(uint32_t));
    const json_t *a;
    json_object_foreach((json_t *)mine, an, a)
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
