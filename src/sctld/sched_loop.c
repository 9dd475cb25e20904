/*
 * sched_loop.c: the scheduler loop, run by the leader from housekeeping.
 *
 * Level-triggered: whenever the store's revision moved since the last pass and
 * no pass of ours is still in the log, read Nodes, heartbeats, Deployments,
 * Assignments and Instances from the applied state, plan every Deployment
 * (src/sched/plan.h) and propose one transaction per Deployment that has changes
 * or a new status.  Each transaction compares the Deployment's revision and the
 * revision of every Assignment it removes, so a plan made from a state that has
 * since moved fails as a whole and the next pass plans again; a new leader
 * simply starts passing (nothing lives outside the store).  Assignments and
 * Revisions of Deployments that no longer exist are deleted the same way.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "manifest/manifest.h"
#include "sched/plan.h"
#include "sctld/server_int.h"

/* Every object of kind plural, presented, as a JSON array. */
static json_t *read_all(struct srv *s, const char *plural)
{
    const struct obj_kind *k = obj_kind_by_plural(plural, strlen(plural));
    struct sc_buf prefix = {0};
    obj_prefix(&prefix, k);
    struct store_op op = {
        .type = STORE_OP_GET, .key = prefix.data, .key_len = prefix.len, .prefix = true};
    struct store_op_result res;
    struct sc_error e;
    json_t *out = json_array();
    if (store_read(s->store, &op, &res, &e) == 0) {
        for (size_t i = 0; i < res.nkvs; i++) {
            json_t *o = obj_present(res.kvs[i].value, res.kvs[i].value_len, res.kvs[i].mod_rev);
            if (o)
                json_array_append_new(out, o);
        }
        free(res.kvs);
    }
    sc_buf_free(&prefix);
    return out;
}

/* Names of the nodes whose heartbeat key exists, as a JSON object used as a set. */
static json_t *read_ready(struct srv *s)
{
    static const char prefix[] = OBJ_PREFIX "heartbeats/";
    struct store_op op = {.type = STORE_OP_GET,
                          .key = (const uint8_t *)prefix,
                          .key_len = sizeof(prefix) - 1,
                          .prefix = true,
                          .keys_only = true};
    struct store_op_result res;
    struct sc_error e;
    json_t *set = json_object();
    if (store_read(s->store, &op, &res, &e) == 0) {
        for (size_t i = 0; i < res.nkvs; i++) {
            char name[80];
            snprintf(name, sizeof(name), "%.*s", (int)(res.kvs[i].key_len - (sizeof(prefix) - 1)),
                     (const char *)res.kvs[i].key + sizeof(prefix) - 1);
            json_object_set_new(set, name, json_true());
        }
        free(res.kvs);
    }
    return set;
}

static const char *name_of(const json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

/* The transaction under construction: keys and values live until it is proposed. */
struct txn {
    struct store_cmp cmps[128];
    struct store_op ops[128];
    size_t ncmps, nops;
    struct sc_buf bufs[256];
    size_t nbufs;
};

static struct sc_buf *tx_buf(struct txn *t)
{
    assert(t->nbufs < ELEMENTSOF(t->bufs));
    struct sc_buf *b = &t->bufs[t->nbufs++];
    memset(b, 0, sizeof(*b));
    return b;
}

static void tx_remove(struct txn *t, const char *plural, const char *name, int64_t rev)
{
    struct sc_buf *k = tx_buf(t);
    obj_key(k, obj_kind_by_plural(plural, strlen(plural)), name);
    t->cmps[t->ncmps++] = (struct store_cmp){
        .key = k->data, .key_len = k->len, .target = STORE_CMP_MOD, .op = STORE_CMP_EQ, .num = rev};
    t->ops[t->nops++] =
        (struct store_op){.type = STORE_OP_DELETE, .key = k->data, .key_len = k->len};
}

static void tx_put(struct txn *t, const char *plural, const json_t *o)
{
    if (!name_of(o))
        return;
    struct sc_buf *k = tx_buf(t), *v = tx_buf(t);
    obj_key(k, obj_kind_by_plural(plural, strlen(plural)), name_of(o));
    char *text = manifest_dump(o);
    sc_buf_put(v, text, strlen(text));
    free(text);
    t->ops[t->nops++] = (struct store_op){.type = STORE_OP_PUT,
                                          .key = k->data,
                                          .key_len = k->len,
                                          .value = v->data,
                                          .value_len = v->len};
}

static void tx_propose(struct srv *s, struct txn *t)
{
    struct store_cmd cmd = {.type = STORE_CMD_TXN,
                            .cmps = t->cmps,
                            .ncmps = t->ncmps,
                            .success = t->ops,
                            .nsuccess = t->nops};
    struct sc_error e;
    if (t->nops > 0 && store_cmd_validate(&cmd, &s->cfg.limits, &e) == 0) {
        struct srv_proposal *p = srv_propose_ex(s, NULL, R_SCHED, &cmd, now_usec(CLOCK_MONOTONIC));
        if (p) {
            p->counter = &s->sched_in_flight;
            s->sched_in_flight++;
        }
    } else if (t->nops > 0) {
        log_error("msg=\"scheduler transaction refused\" reason=\"%s\"", e.msg);
    }
    for (size_t i = 0; i < t->nbufs; i++)
        sc_buf_free(&t->bufs[i]);
    memset(t, 0, sizeof(*t));
}

/* Instances of deployment dep that report ready. */
static json_int_t count_ready(const json_t *instances, const char *dep)
{
    json_int_t n = 0;
    size_t i;
    const json_t *in;
    json_array_foreach(instances, i, in)
    {
        const json_t *labels = json_object_get(json_object_get(in, "metadata"), "labels");
        const char *d = json_string_value(json_object_get(labels, "deployment"));
        if (d && !strcmp(d, dep) &&
            json_is_true(json_object_get(json_object_get(in, "status"), "ready")))
            n++;
    }
    return n;
}

/* Deletes, a transaction at a time, the objects of plural whose deployment
 * (spec.deployment) is not in deps. */
static void collect_orphans(struct srv *s, const json_t *objs, const char *plural,
                            const json_t *deps, struct txn *t)
{
    size_t i;
    const json_t *o;
    json_array_foreach(objs, i, o)
    {
        const char *d =
            json_string_value(json_object_get(json_object_get(o, "spec"), "deployment"));
        if (!d || json_object_get(deps, d))
            continue;
        tx_remove(t, plural, name_of(o),
                  json_integer_value(json_object_get(json_object_get(o, "metadata"), "revision")));
        s->sched_removed++;
        if (t->nops >= 60)
            tx_propose(s, t);
    }
}

void srv_sched_pass(struct srv *s)
{
    if (s->st.role != RAFT_LEADER || s->shutting_down || s->sched_in_flight ||
        store_rev(s->store) == s->sched_rev)
        return;
    s->sched_rev = store_rev(s->store);
    s->sched_passes++;
    json_t *nodes = read_all(s, "nodes"), *deps = read_all(s, "deployments");
    json_t *asg = read_all(s, "assignments"), *insts = read_all(s, "instances");
    json_t *revs = read_all(s, "revisions"), *ready = read_ready(s);
    json_t *dep_names = json_object();
    struct sched_pass *pass = sched_pass_new(nodes, ready, asg);
    struct txn *t = xcalloc(1, sizeof(*t));
    size_t i;
    const json_t *d;
    json_array_foreach(deps, i, d)
    {
        json_object_set_new(dep_names, name_of(d), json_true());
        struct sched_plan plan;
        sched_plan_deployment(pass, d, &plan);
        json_object_set_new(plan.status, "ready", json_integer(count_ready(insts, name_of(d))));
        bool new_status = !json_equal(json_object_get(d, "status"), plan.status);
        if (plan.changes > 0 || new_status) {
            int64_t drev =
                json_integer_value(json_object_get(json_object_get(d, "metadata"), "revision"));
            struct sc_buf *k = tx_buf(t);
            obj_key(k, obj_kind_by_name("Deployment"), name_of(d));
            t->cmps[t->ncmps++] = (struct store_cmp){.key = k->data,
                                                     .key_len = k->len,
                                                     .target = STORE_CMP_MOD,
                                                     .op = STORE_CMP_EQ,
                                                     .num = drev};
            size_t j;
            const json_t *x;
            json_array_foreach(plan.remove, j, x)
                tx_remove(t, "assignments", json_string_value(json_object_get(x, "name")),
                          json_integer_value(json_object_get(x, "revision")));
            int64_t now_ms = (int64_t)(now_usec(CLOCK_REALTIME) / 1000);
            json_array_foreach(plan.create, j, x)
            {
                json_t *stamped = obj_merge(NULL, (json_t *)x, false, now_ms); /* created */
                tx_put(t, "assignments", stamped);
                json_decref(stamped);
            }
            if (new_status) {
                json_t *st = json_pack("{s:O}", "status", plan.status);
                json_t *merged = obj_merge(d, st, true, 0);
                tx_put(t, "deployments", merged);
                json_decref(merged);
                json_decref(st);
            }
            s->sched_created += json_array_size(plan.create);
            s->sched_removed += json_array_size(plan.remove);
            tx_propose(s, t);
        }
        sched_plan_done(&plan);
    }
    collect_orphans(s, asg, "assignments", dep_names, t);
    collect_orphans(s, revs, "revisions", dep_names, t);
    tx_propose(s, t);
    free(t);
    sched_pass_free(pass);
    json_decref(dep_names);
    json_decref(ready);
    json_decref(revs);
    json_decref(insts);
    json_decref(asg);
    json_decref(deps);
    json_decref(nodes);
}
