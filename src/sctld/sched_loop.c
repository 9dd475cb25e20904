/*
 * sched_loop.c: the scheduler loop, run by the leader on every tick.
 *
 * Level-triggered and incremental.  The leader keeps a view of what the
 * scheduler reads (Nodes, the heartbeat keys, Deployments, Assignments, which
 * Instances are ready, Revisions), built by one read of the store when it
 * becomes leader and then kept current from a watch cursor on /registry/, so
 * that a pass costs what changed, not the size of the cluster: 100,000
 * Assignments are parsed once, not once per pass.  A change marks the
 * Deployments it concerns dirty; a pass plans the dirty ones (src/sched/plan.h)
 * and proposes one transaction per Deployment that has changes or a new status.
 * Each transaction compares the Deployment's revision and the revision of every
 * Assignment it removes, so a plan made from a state that has since moved fails
 * as a whole; the change that moved it arrives through the cursor and marks the
 * Deployment dirty again.  Assignments and Revisions of Deployments that no
 * longer exist are deleted the same way.  A new leader builds its view afresh
 * (nothing lives outside the store).
 *
 * Invariants:
 *  1. The view equals the store at store_watch_next_rev(w) - 1 once drained: it
 *     is built from one read at revision R with the cursor opened at R + 1, and
 *     every event is applied in order; a cursor overtaken by compaction, a
 *     snapshot install or a lost leadership drops the view (srv_sched_forget).
 *  2. A pass runs only when no scheduler transaction is in flight, so it never
 *     plans around its own unapplied writes; plans of one pass see each other
 *     through the pass's tentative usage (sched_pass_begin/_end).
 *  3. A Deployment stays dirty after a pass that proposed anything for it or
 *     left replicas unplaced; it leaves the set only when a plan finds nothing
 *     to do.  So a transaction lost to a timeout is planned again, and a pass is
 *     forced every second while anything is dirty, even if nothing moved.
 *
 *   (not leader) --elected--> build view --drain cursor--> pass --...
 *        ^                                                   |
 *        +---- stepped down / compacted / snapshot: forget <-+
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "manifest/manifest.h"
#include "sched/endpoints.h"
#include "sched/plan.h"
#include "sctld/server_int.h"

struct sched_view {
    struct store_watch *w;
    json_t *nodes; /* Node name -> Node */
    json_t *ready; /* Node name -> true: its heartbeat key exists */
    /* Node name -> since when (monotonic usec, this leader's clock) it is NotReady;
     * past cfg.node_grace_usec it is lost (its Assignments are placed again) */
    json_t *down, *lost;
    json_t *deps;     /* Deployment name -> Deployment */
    json_t *asg;      /* Assignment name -> Assignment */
    json_t *revs;     /* Revision name -> its deployment's name */
    json_t *inst;     /* Instance name -> its deployment's name, for ready ones */
    json_t *ready_at; /* Instance name -> when this view saw it become ready (ms) */
    json_t *rollouts; /* Deployment name -> "any" | "count": a rollout in progress */
    usec_t last_rollout_scan;
    json_t *nready; /* deployment name -> ready Instances */
    json_t *dirty;  /* deployment names to plan (or to clean up after) */
    json_t *sdirty; /* deployment names whose status.ready is to be brought up to date */
    json_t *wrote;  /* deployment name -> the status this leader last proposed for it */
    /* endpoints (src/sched/endpoints.h): for Deployments that expose a port,
     * their ready Instances {deployment: {instance: {node, address, revision}}};
     * the stored Endpoints objects by name; Deployments whose Endpoints are due */
    json_t *ready_ep, *eps, *epdirty;
    json_t *eps_of;    /* deployment name -> {Endpoints name -> object}: the same objects */
    json_t *ep_rescan; /* newly exposed Deployments: read their Instances in the pass */
    /* Assignments this leader proposed since its last pass: name -> {text, obj}.
     * When the write comes back through the cursor with the same bytes, the
     * object is taken instead of parsed again (most of the view's cost at
     * 100,000 Assignments).  Emptied before each pass plans: by then every
     * proposal of the previous pass has been applied and drained. */
    json_t *proposed;
    struct sched_pass *pass;
    bool nodes_changed, all_dirty;
    usec_t last_pass;
};

static const char *name_of(const json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static const char *spec_str(const json_t *o, const char *field)
{
    return json_string_value(json_object_get(json_object_get(o, "spec"), field));
}

/* name -> o in map, or name gone from it when o is NULL (a deletion) */
static void map_set(json_t *map, const char *name, json_t *o)
{
    if (o)
        json_object_set(map, name, o);
    else
        json_object_del(map, name);
}

static void view_free(struct srv *s, struct sched_view *v)
{
    if (!v)
        return;
    if (v->w)
        store_watch_close(s->store, v->w);
    sched_pass_free(v->pass);
    json_decref(v->nodes);
    json_decref(v->ready);
    json_decref(v->down);
    json_decref(v->lost);
    json_decref(v->deps);
    json_decref(v->asg);
    json_decref(v->revs);
    json_decref(v->inst);
    json_decref(v->ready_at);
    json_decref(v->rollouts);
    json_decref(v->nready);
    json_decref(v->dirty);
    json_decref(v->sdirty);
    json_decref(v->wrote);
    json_decref(v->ready_ep);
    json_decref(v->eps);
    json_decref(v->eps_of);
    json_decref(v->epdirty);
    json_decref(v->ep_rescan);
    json_decref(v->proposed);
    free(v);
}

void srv_sched_forget(struct srv *s)
{
    view_free(s, s->sched_view);
    s->sched_view = NULL;
}

/* The endpoint view of one Instance (in NULL: gone); dep is its deployment's
 * name if it is ready, old_dep the one it was ready in. */
static void set_endpoint(struct sched_view *v, const char *name, const json_t *in, const char *dep,
                         const char *old_dep)
{
    if (old_dep && (!dep || strcmp(old_dep, dep) != 0)) {
        json_t *m = json_object_get(v->ready_ep, old_dep);
        if (m && json_object_get(m, name)) {
            json_object_del(m, name);
            json_object_set_new(v->epdirty, old_dep, json_true());
        }
    }
    if (!dep || !sched_exposes(json_object_get(v->deps, dep)))
        return;
    json_t *e = sched_endpoint_of(in);
    json_t *m = json_object_get(v->ready_ep, dep);
    if (!m)
        json_object_set_new(v->ready_ep, dep, m = json_object());
    if (!e) {
        if (json_object_get(m, name)) {
            json_object_del(m, name);
            json_object_set_new(v->epdirty, dep, json_true());
        }
        return;
    }
    if (!json_equal(e, json_object_get(m, name))) {
        json_object_set(m, name, e);
        json_object_set_new(v->epdirty, dep, json_true());
    }
    json_decref(e);
}

/* A ready count changed: a Deployment whose rollout waits on readiness is
 * planned again ("any": old revisions or draining ones remain; "count": it only
 * waits for all its replicas to be ready). */
static void rollout_touch(struct sched_view *v, const char *dep)
{
    const char *need = json_string_value(json_object_get(v->rollouts, dep));
    if (!need)
        return;
    const json_t *d = json_object_get(v->deps, dep);
    if (!strcmp(need, "any") ||
        json_integer_value(json_object_get(v->nready, dep)) >=
            json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")))
        json_object_set_new(v->dirty, dep, json_true());
}

static void set_instance(struct sched_view *v, const char *name, const json_t *in)
{
    const json_t *was = json_object_get(v->inst, name);
    const char *old_dep = json_string_value(was);
    const char *dep = NULL;
    if (in && json_is_true(json_object_get(json_object_get(in, "status"), "ready")))
        dep = json_string_value(json_object_get(
            json_object_get(json_object_get(in, "metadata"), "labels"), "deployment"));
    set_endpoint(v, name, in, dep, old_dep);
    if (old_dep && dep && !strcmp(old_dep, dep))
        return;
    if (old_dep) {
        json_t *n = json_object_get(v->nready, old_dep);
        json_integer_set(n, json_integer_value(n) - 1);
        json_object_set_new(v->sdirty, old_dep, json_true());
        rollout_touch(v, old_dep);
        json_object_del(v->ready_at, name);
        json_object_del(v->inst, name); /* old_dep dies here */
    }
    if (dep) {
        json_t *n = json_object_get(v->nready, dep);
        if (!n)
            json_object_set_new(v->nready, dep, n = json_integer(0));
        json_integer_set(n, json_integer_value(n) + 1);
        json_object_set_new(v->inst, name, json_string(dep));
        json_object_set_new(v->ready_at, name,
                            json_integer((json_int_t)(now_usec(CLOCK_REALTIME) / 1000)));
        json_object_set_new(v->sdirty, dep, json_true());
        rollout_touch(v, dep);
    }
}

static void set_assignment(struct sched_view *v, const char *name, json_t *a)
{
    const json_t *old = json_object_get(v->asg, name);
    const char *d = old ? spec_str(old, "deployment") : NULL;
    if (d)
        json_object_set_new(v->dirty, d, json_true());
    /* draining or gone: its endpoint leaves the pool */
    if (d && sched_exposes(json_object_get(v->deps, d)))
        json_object_set_new(v->epdirty, d, json_true());
    if (v->pass)
        sched_pass_remove(v->pass, name);
    json_object_del(v->asg, name);
    if (!a)
        return;
    json_object_set(v->asg, name, a);
    if (v->pass)
        sched_pass_add(v->pass, a);
    if ((d = spec_str(a, "deployment")))
        json_object_set_new(v->dirty, d, json_true());
}

/* What a Node contributes to placement: its spec and labels (a status write by
 * its agent changes neither, and costs no rebuild of the pass). */
static bool node_same(const json_t *a, const json_t *b)
{
    return a && b && json_equal(json_object_get(a, "spec"), json_object_get(b, "spec")) &&
           json_equal(json_object_get(json_object_get(a, "metadata"), "labels"),
                      json_object_get(json_object_get(b, "metadata"), "labels"));
}

/* One stored object (value NULL: deleted) into the view. */
static void view_apply(struct sched_view *v, const uint8_t *key, size_t klen, const uint8_t *value,
                       size_t vlen, int64_t mod_rev)
{
    static const char pre[] = OBJ_PREFIX;
    if (klen <= sizeof(pre) - 1 || memcmp(key, pre, sizeof(pre) - 1) != 0)
        return;
    const char *rest = (const char *)key + sizeof(pre) - 1;
    size_t rlen = klen - (sizeof(pre) - 1);
    const char *slash = memchr(rest, '/', rlen);
    if (!slash)
        return;
    size_t plen = (size_t)(slash - rest);
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(rlen - plen - 1), slash + 1);
#define IS(p) (plen == sizeof(p) - 1 && !memcmp(rest, p, plen))
    if (IS("heartbeats")) {
        if (value) {
            json_object_set_new(v->ready, name, json_true());
            json_object_del(v->down, name);
            if (json_object_get(v->lost, name))
                log_info("msg=\"node ready again\" node=%s", name);
            json_object_del(v->lost, name);
        } else {
            json_object_del(v->ready, name);
            json_object_set_new(v->down, name, json_integer((json_int_t)now_usec(CLOCK_MONOTONIC)));
            log_info("msg=\"node not ready\" node=%s reason=\"heartbeat lease expired\"", name);
        }
        if (v->pass) {
            sched_pass_set_ready(v->pass, name, value != NULL);
            sched_pass_set_lost(v->pass, name, false);
        }
        v->all_dirty = true;
        return;
    }
    if (!IS("nodes") && !IS("deployments") && !IS("assignments") && !IS("instances") &&
        !IS("revisions") && !IS("endpoints"))
        return;
    json_t *o = NULL;
    const json_t *mine = IS("assignments") && value ? json_object_get(v->proposed, name) : NULL;
    const char *text = json_string_value(json_object_get(mine, "text"));
    if (text && strlen(text) == vlen && !memcmp(text, value, vlen)) {
        o = json_incref(json_object_get(mine, "obj")); /* what obj_present would give */
        json_object_set_new(json_object_get(o, "metadata"), "revision", json_integer(mod_rev));
    } else if (value) {
        o = obj_present(value, vlen, mod_rev);
    }
    if (mine)
        json_object_del(v->proposed, name);
    if (value && !o)
        return; /* not an object (written through the key API): not ours to read */
    if (IS("nodes")) {
        if (!node_same(json_object_get(v->nodes, name), o)) {
            v->nodes_changed = true;
            v->all_dirty = true;
        }
        map_set(v->nodes, name, o);
    } else if (IS("deployments")) {
        /* our own status write plans nothing; a new spec, or a status someone
         * else wrote (through /status), is planned (and the status restored) */
        const json_t *old = json_object_get(v->deps, name);
        if (!old || !o || !json_equal(json_object_get(old, "spec"), json_object_get(o, "spec")) ||
            !json_equal(json_object_get(o, "status"), json_object_get(v->wrote, name)))
            json_object_set_new(v->dirty, name, json_true());
        if (!o)
            json_object_del(v->wrote, name);
        bool was_exposed = sched_exposes(old), is_exposed = sched_exposes(o);
        if (was_exposed || is_exposed)
            json_object_set_new(v->epdirty, name, json_true());
        if (is_exposed && !was_exposed)
            json_object_set_new(v->ep_rescan, name, json_true()); /* its ready Instances */
        if (!is_exposed)
            json_object_del(v->ready_ep, name);
        map_set(v->deps, name, o);
    } else if (IS("endpoints")) {
        const json_t *old = json_object_get(v->eps, name);
        const char *d = spec_str(o ? o : old, "deployment");
        if (d) /* ours come back, the programmer's status, or someone's edit */
            json_object_set_new(v->epdirty, d, json_true());
        if (d && json_object_get(v->rollouts, d)) /* a drain may be confirmed */
            json_object_set_new(v->dirty, d, json_true());
        /* the per-Deployment index; old (held by v->eps) outlives od until map_set */
        const char *od = old ? spec_str(old, "deployment") : NULL;
        json_t *of = od ? json_object_get(v->eps_of, od) : NULL;
        if (of) {
            json_object_del(of, name);
            if (json_object_size(of) == 0)
                json_object_del(v->eps_of, od);
        }
        map_set(v->eps, name, o); /* d and od may point into old: used before this */
        const char *nd = o ? spec_str(o, "deployment") : NULL;
        if (nd) {
            if (!(of = json_object_get(v->eps_of, nd)))
                json_object_set_new(v->eps_of, nd, of = json_object());
            json_object_set(of, name, o);
        }
    } else if (IS("assignments")) {
        set_assignment(v, name, o);
    } else if (IS("instances")) {
        set_instance(v, name, o);
    } else {
        const char *d = o ? spec_str(o, "deployment") : NULL;
        if (d) {
            json_object_set_new(v->revs, name, json_string(d));
            if (!json_object_get(v->deps, d))
                json_object_set_new(v->dirty, d, json_true());
        } else {
            json_object_del(v->revs, name);
        }
    }
#undef IS
    json_decref(o);
}

static struct sched_pass *pass_build(struct sched_view *v)
{
    json_t *arr = json_array();
    const char *k;
    json_t *o;
    json_object_foreach(v->nodes, k, o) json_array_append(arr, o);
    struct sched_pass *p = sched_pass_new(arr, v->ready);
    json_decref(arr);
    json_object_foreach(v->lost, k, o) sched_pass_set_lost(p, k, true);
    json_object_foreach(v->asg, k, o) sched_pass_add(p, o);
    return p;
}

/* The view from one read of the store, and a cursor from the next revision. */
static struct sched_view *view_build(struct srv *s)
{
    struct sched_view *v = xcalloc(1, sizeof(*v));
    v->nodes = json_object();
    v->ready = json_object();
    v->down = json_object();
    v->lost = json_object();
    v->deps = json_object();
    v->asg = json_object();
    v->revs = json_object();
    v->inst = json_object();
    v->ready_at = json_object();
    v->rollouts = json_object();
    v->nready = json_object();
    v->dirty = json_object();
    v->sdirty = json_object();
    v->wrote = json_object();
    v->ready_ep = json_object();
    v->eps = json_object();
    v->eps_of = json_object();
    v->epdirty = json_object();
    v->ep_rescan = json_object();
    v->proposed = json_object();
    static const char prefix[] = OBJ_PREFIX;
    struct store_op op = {.type = STORE_OP_GET,
                          .key = (const uint8_t *)prefix,
                          .key_len = sizeof(prefix) - 1,
                          .prefix = true};
    struct store_op_result res;
    struct sc_error e;
    if (store_read(s->store, &op, &res, &e) == 0) {
        for (size_t i = 0; i < res.nkvs; i++)
            view_apply(v, res.kvs[i].key, res.kvs[i].key_len, res.kvs[i].value,
                       res.kvs[i].value_len, res.kvs[i].mod_rev);
        free(res.kvs);
    }
    /* the read had every Instance after the Deployments (key order): nothing to
     * read again; every exposed Deployment's Endpoints are checked once */
    json_object_clear(v->ep_rescan);
    if (store_watch_open(s->store, op.key, op.key_len, true, store_rev(s->store) + 1, false, &v->w,
                         &e) < 0) {
        log_error("msg=\"scheduler cannot follow the store\" reason=\"%s\"", e.msg);
        view_free(s, v);
        return NULL;
    }
    /* a node without a heartbeat gets the whole grace period from this leader's
     * start: a new leader never moves instances at once */
    const char *k;
    json_t *o;
    usec_t now = now_usec(CLOCK_MONOTONIC);
    json_object_foreach(v->nodes, k, o) if (!json_object_get(v->ready, k))
        json_object_set_new(v->down, k, json_integer((json_int_t)now));
    v->pass = pass_build(v);
    v->nodes_changed = false;
    v->all_dirty = true;
    return v;
}

/* Applies the changes since the last drain; false if the view must be rebuilt. */
static bool view_drain(struct srv *s, struct sched_view *v)
{
    struct store_event ev;
    int r;
    while ((r = store_watch_next(s->store, v->w, &ev)) > 0)
        view_apply(v, ev.kv.key, ev.kv.key_len, ev.type == STORE_EVENT_DELETE ? NULL : ev.kv.value,
                   ev.kv.value_len, ev.kv.mod_rev);
    return r == 0;
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

/* The transaction goes through only if object plural/name is still at mod
 * revision rev (0: must not exist); returns its key. */
static struct sc_buf *tx_guard(struct txn *t, const char *plural, const char *name, int64_t rev)
{
    struct sc_buf *k = tx_buf(t);
    obj_key(k, obj_kind_by_plural(plural, strlen(plural)), name);
    t->cmps[t->ncmps++] = (struct store_cmp){
        .key = k->data, .key_len = k->len, .target = STORE_CMP_MOD, .op = STORE_CMP_EQ, .num = rev};
    return k;
}

/* metadata.revision of an object as read (its key's mod revision), 0 for NULL */
static int64_t rev_of(const json_t *o)
{
    return json_integer_value(json_object_get(json_object_get(o, "metadata"), "revision"));
}

static void tx_remove(struct txn *t, const char *plural, const char *name, int64_t rev)
{
    struct sc_buf *k = tx_guard(t, plural, name, rev);
    t->ops[t->nops++] =
        (struct store_op){.type = STORE_OP_DELETE, .key = k->data, .key_len = k->len};
}

/* remember (may be NULL): name -> {text, obj}, so that the view can take this
 * object back when the write comes through the cursor instead of parsing it */
static void tx_put(struct txn *t, const char *plural, json_t *o, json_t *remember)
{
    if (!name_of(o))
        return;
    struct sc_buf *k = tx_buf(t), *v = tx_buf(t);
    obj_key(k, obj_kind_by_plural(plural, strlen(plural)), name_of(o));
    char *text = manifest_dump(o);
    sc_buf_put(v, text, strlen(text));
    if (remember)
        json_object_set_new(remember, name_of(o), json_pack("{s:s, s:O}", "text", text, "obj", o));
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

/* Removes what is left of a Deployment that no longer exists: its Assignments
 * and Revisions, a transaction per 60, each guarded by the object's revision. */
static bool collect_orphans(struct srv *s, struct sched_view *v, const char *dep, struct txn *t)
{
    uint64_t before = s->sched_removed;
    const char *k;
    json_t *o;
    json_object_foreach((json_t *)sched_pass_of(v->pass, dep), k, o)
    {
        tx_remove(t, "assignments", k, rev_of(o));
        s->sched_removed++;
        if (t->nops >= 60)
            tx_propose(s, t);
    }
    struct sc_buf key = {0};
    json_object_foreach(v->revs, k, o)
    {
        if (strcmp(json_string_value(o), dep) != 0)
            continue;
        /* a Revision is immutable: its mod revision is its create revision */
        obj_key(&key, obj_kind_by_plural("revisions", 9), k);
        struct store_op op = {.type = STORE_OP_GET, .key = key.data, .key_len = key.len};
        struct store_op_result res;
        struct sc_error e;
        if (store_read(s->store, &op, &res, &e) == 0) {
            if (res.nkvs == 1)
                tx_remove(t, "revisions", k, res.kvs[0].mod_rev);
            free(res.kvs);
        }
        sc_buf_reset(&key);
        s->sched_removed++;
        if (t->nops >= 60)
            tx_propose(s, t);
    }
    sc_buf_free(&key);
    tx_propose(s, t);
    return s->sched_removed != before;
}

/* Plans one Deployment and proposes its transaction; true if it must be planned
 * again (it proposed something or left replicas unplaced). */
static bool plan_one(struct srv *s, struct sched_view *v, const json_t *d, struct txn *t)
{
    struct sched_plan plan;
    int64_t now_ms = (int64_t)(now_usec(CLOCK_REALTIME) / 1000);
    const json_t *upd = json_object_get(json_object_get(d, "spec"), "update");
    struct sched_plan_ctx ctx = {
        .ready = v->ready_at,
        .now_ms = now_ms,
        .min_ready_ms = json_integer_value(json_object_get(upd, "minReadyMs")),
    };
    /* its Endpoints as stored: the drain of an instance ends when the load
     * balancer programmer has served them without it */
    ctx.endpoints = json_object_get(v->eps_of, name_of(d));
    sched_plan_deployment(v->pass, d, &ctx, &plan);
    const char *phase =
        json_string_value(json_object_get(json_object_get(plan.status, "rollout"), "phase"));
    if (plan.rolling || plan.waiting)
        json_object_set_new(v->rollouts, name_of(d), json_string("any"));
    else if (phase && !strcmp(phase, "progressing"))
        json_object_set_new(v->rollouts, name_of(d), json_string("count"));
    else
        json_object_del(v->rollouts, name_of(d));
    json_object_set_new(plan.status, "ready",
                        json_integer(json_integer_value(json_object_get(v->nready, name_of(d)))));
    bool new_status = !json_equal(json_object_get(d, "status"), plan.status);
    bool again = plan.changes > 0 || new_status || json_object_get(plan.status, "unschedulable");
    if (plan.changes > 0 || new_status) {
        tx_guard(t, "deployments", name_of(d), rev_of(d));
        size_t j;
        const json_t *x;
        json_array_foreach(plan.remove, j, x)
            tx_remove(t, "assignments", json_string_value(json_object_get(x, "name")),
                      json_integer_value(json_object_get(x, "revision")));
        json_array_foreach(plan.drain, j, x)
        {
            /* marked draining, if it is still as the plan saw it */
            tx_guard(t, "assignments", name_of(x), rev_of(x));
            json_t *stored = json_object_get(v->asg, name_of(x));
            json_t *merged = obj_merge(stored, (json_t *)x, false, now_ms);
            tx_put(t, "assignments", merged, NULL);
            json_decref(merged);
        }
        json_array_foreach(plan.create, j, x)
        {
            obj_stamp_new((json_t *)x, now_ms); /* the plan's own object: no copy */
            tx_put(t, "assignments", (json_t *)x, v->proposed);
        }
        if (new_status) {
            json_object_set(v->wrote, name_of(d), plan.status);
            json_t *st = json_pack("{s:O}", "status", plan.status);
            json_t *merged = obj_merge((json_t *)d, st, true, 0);
            tx_put(t, "deployments", merged, NULL);
            json_decref(merged);
            json_decref(st);
        }
        s->sched_created += json_array_size(plan.create);
        s->sched_removed += json_array_size(plan.remove);
        tx_propose(s, t);
    }
    sched_plan_done(&plan);
    return again;
}

/* Brings a Deployment's status.ready up to date without planning it; true if
 * it proposed a write (kept for the next pass, like plan_one). */
static bool status_one(struct srv *s, struct sched_view *v, const json_t *d, struct txn *t)
{
    const json_t *cur = json_object_get(d, "status");
    if (!json_is_object(cur))
        return false; /* never planned: it is in dirty and gets its status there */
    json_t *st = json_deep_copy(cur);
    json_object_set_new(st, "ready",
                        json_integer(json_integer_value(json_object_get(v->nready, name_of(d)))));
    bool changed = !json_equal(cur, st);
    if (changed) {
        json_object_set(v->wrote, name_of(d), st);
        tx_guard(t, "deployments", name_of(d), rev_of(d));
        json_t *wrap = json_pack("{s:O}", "status", st);
        json_t *merged = obj_merge((json_t *)d, wrap, true, 0);
        tx_put(t, "deployments", merged, NULL);
        json_decref(merged);
        json_decref(wrap);
        tx_propose(s, t);
    }
    json_decref(st);
    return changed;
}

/* A Deployment that starts exposing a port: its ready Instances, read once
 * from the store (rare; the cursor keeps them from then on). */
static void ep_rescan(struct srv *s, struct sched_view *v, const char *dep)
{
    static const char prefix[] = OBJ_PREFIX "instances/";
    struct store_op op = {.type = STORE_OP_GET,
                          .key = (const uint8_t *)prefix,
                          .key_len = sizeof(prefix) - 1,
                          .prefix = true};
    struct store_op_result res;
    struct sc_error e;
    if (store_read(s->store, &op, &res, &e) < 0)
        return;
    for (size_t i = 0; i < res.nkvs; i++) {
        json_t *in = obj_present(res.kvs[i].value, res.kvs[i].value_len, res.kvs[i].mod_rev);
        const json_t *labels = json_object_get(json_object_get(in, "metadata"), "labels");
        const char *d = json_string_value(json_object_get(labels, "deployment"));
        const char *name =
            json_string_value(json_object_get(json_object_get(in, "metadata"), "name"));
        if (d && name && !strcmp(d, dep) &&
            json_is_true(json_object_get(json_object_get(in, "status"), "ready")))
            set_endpoint(v, name, in, dep, NULL);
        json_decref(in);
    }
    free(res.kvs);
}

/* Brings a Deployment's Endpoints objects to what sched_endpoints says: puts
 * the changed ones and deletes those it no longer has, in one transaction
 * guarded by each stored object's revision (0: must not exist). */
static bool endpoints_one(struct srv *s, struct sched_view *v, const char *dep, struct txn *t)
{
    bool wrote = false;
    const json_t *d = json_object_get(v->deps, dep);
    /* an instance is an endpoint while its Assignment exists and is not
     * draining: a removed or draining one is out, ready or not */
    json_t *ready = json_object();
    const char *ik;
    json_t *iv;
    json_object_foreach(json_object_get(v->ready_ep, dep), ik, iv)
    {
        const json_t *a = json_object_get(v->asg, ik);
        if (a && !json_is_true(json_object_get(json_object_get(a, "spec"), "draining")))
            json_object_set(ready, ik, iv);
    }
    json_t *want = d ? sched_endpoints(d, ready) : json_object();
    json_decref(ready);
    int64_t now_ms = (int64_t)(now_usec(CLOCK_REALTIME) / 1000);
    const char *k;
    json_t *o;
    json_object_foreach(want, k, o)
    {
        const json_t *have = json_object_get(v->eps, k);
        if (have && json_equal(json_object_get(have, "spec"), json_object_get(o, "spec")) &&
            json_equal(json_object_get(json_object_get(have, "metadata"), "labels"),
                       json_object_get(json_object_get(o, "metadata"), "labels")))
            continue;
        tx_guard(t, "endpoints", k, rev_of(have));
        json_t *merged = obj_merge(have, o, false, now_ms); /* keeps the programmer's status */
        tx_put(t, "endpoints", merged, NULL);
        wrote = true;
        json_decref(merged);
        if (t->nops >= 60)
            tx_propose(s, t);
    }
    json_object_foreach(json_object_get(v->eps_of, dep), k, o)
    {
        if (json_object_get(want, k))
            continue;
        tx_remove(t, "endpoints", k, rev_of(o));
        wrote = true;
        if (t->nops >= 60)
            tx_propose(s, t);
    }
    tx_propose(s, t);
    json_decref(want);
    return wrote; /* kept dirty: the next pass checks that it landed (invariant 3) */
}

void srv_sched_pass(struct srv *s)
{
    if (s->st.role != RAFT_LEADER || s->shutting_down) {
        if (s->sched_view)
            srv_sched_forget(s);
        return;
    }
    if (!s->sched_view && !(s->sched_view = view_build(s)))
        return;
    struct sched_view *v = s->sched_view;
    usec_t t_drain = now_usec(CLOCK_MONOTONIC);
    bool drained = view_drain(s, v);
    s->sched_view_usec += now_usec(CLOCK_MONOTONIC) - t_drain;
    if (!drained) {
        log_warn("msg=\"scheduler view overtaken by compaction; reading the store again\"");
        srv_sched_forget(s);
        return;
    }
    if (s->sched_in_flight)
        return;
    usec_t now = now_usec(CLOCK_MONOTONIC);
    bool moved = false;
    /* nodes NotReady past the grace period: their Assignments are placed again */
    const char *dk;
    json_t *dv;
    void *tmp;
    json_object_foreach_safe(v->down, tmp, dk, dv)
    {
        if (now - (usec_t)json_integer_value(dv) < s->cfg.node_grace_usec)
            continue;
        if (json_object_get(v->nodes, dk)) {
            log_warn("msg=\"node lost: placing its instances elsewhere\" node=%s grace_ms=%llu", dk,
                     (unsigned long long)(s->cfg.node_grace_usec / 1000));
            json_object_set_new(v->lost, dk, json_true());
            sched_pass_set_lost(v->pass, dk, true);
            v->all_dirty = true;
            moved = true;
        }
        json_object_del(v->down, dk);
    }
    moved = moved || store_rev(s->store) != s->sched_rev;
    size_t pending = json_object_size(v->dirty) + json_object_size(v->sdirty) +
                     json_object_size(v->epdirty) + json_object_size(v->rollouts);
    if (!moved && (pending == 0 || now - v->last_pass < USEC_PER_SEC))
        return;
    s->sched_rev = store_rev(s->store);
    v->last_pass = now;
    if (now - v->last_rollout_scan >= USEC_PER_SEC) {
        /* rollouts: deadlines and drain windows are checked once a second */
        v->last_rollout_scan = now;
        const char *rk;
        json_t *rv;
        json_object_foreach(v->rollouts, rk, rv) json_object_set_new(v->dirty, rk, json_true());
    }
    if (v->nodes_changed) {
        sched_pass_free(v->pass);
        v->pass = pass_build(v);
        v->nodes_changed = false;
    }
    if (v->all_dirty) {
        const char *k;
        json_t *o;
        json_object_foreach(v->deps, k, o) json_object_set_new(v->dirty, k, json_true());
        v->all_dirty = false;
    }
    if (json_object_size(v->dirty) + json_object_size(v->sdirty) + json_object_size(v->epdirty) ==
        0)
        return;
    s->sched_passes++;
    json_object_clear(v->proposed);
    struct txn *t = xcalloc(1, sizeof(*t));
    json_t *again = json_object();
    sched_pass_begin(v->pass);
    const char *k;
    json_t *o;
    json_object_foreach(v->dirty, k, o)
    {
        const json_t *d = json_object_get(v->deps, k);
        if (d) {
            if (plan_one(s, v, d, t))
                json_object_set_new(again, k, json_true());
        } else if (collect_orphans(s, v, k, t)) {
            json_object_set_new(again, k, json_true());
        }
    }
    sched_pass_end(v->pass);
    /* ready counts that changed where nothing was planned: the status alone */
    json_t *sagain = json_object();
    json_object_foreach(v->sdirty, k, o)
    {
        const json_t *d = json_object_get(v->deps, k);
        if (d && !json_object_get(v->dirty, k) && status_one(s, v, d, t))
            json_object_set_new(sagain, k, json_true());
    }
    json_decref(v->sdirty);
    v->sdirty = sagain;
    /* Endpoints: ready Instances of exposing Deployments, after the plans */
    json_object_foreach(v->ep_rescan, k, o) ep_rescan(s, v, k);
    json_object_clear(v->ep_rescan);
    json_t *epagain = json_object();
    json_object_foreach(v->epdirty, k, o) if (endpoints_one(s, v, k, t))
        json_object_set_new(epagain, k, json_true());
    json_decref(v->epdirty);
    v->epdirty = epagain;
    json_decref(v->dirty);
    v->dirty = again;
    free(t);
    s->sched_plan_usec += now_usec(CLOCK_MONOTONIC) - now;
}
