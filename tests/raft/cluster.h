/*
 * cluster.h: an in-memory cluster of Raft cores for tests (the golden runner in
 * tests/raft and tests/unit/test_raft.c).  Header-only so that both test trees
 * can use it without a library between them.
 *
 * Each node is a real struct raft plus what a real server would keep: a "disk"
 * (hard state, snapshot meta and data, persisted entries, written only when an
 * update is executed) and a state machine (the list of applied entries; its
 * snapshot is that list encoded).  The network is a queue of encoded messages
 * (every message goes through raft_msg_encode/decode) delivered on command;
 * links can be cut.  Crashing a node throws away the core and everything not
 * persisted; restarting it loads the disk back through raft_load_*.
 *
 * After every command cl_check() verifies the safety properties of the thesis
 * (figure 3.2) over the whole cluster: election safety (one leader per term),
 * log matching (same index and term => same entry and same prefix), leader
 * completeness (a leader holds every entry committed before its term) and state
 * machine safety (no two nodes apply different entries at one index).  A
 * violation is printed into the output and counted.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "raft/raft.h"

#define CL_MAX_NODES 9

struct cl_ent {
    raft_term_t term;
    raft_index_t index;
    enum raft_entry_type type;
    struct sc_buf data;
};

struct cl_ents {
    struct cl_ent *v;
    size_t n, cap;
};

struct cl_node {
    raft_id_t id;
    bool exists, up;
    struct raft *r;
    struct raft_config cfg;
    /* disk */
    bool has_hs, has_snap;
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    struct sc_buf snap_data;
    struct cl_ents log; /* persisted entries after the snapshot */
    /* state machine: every applied entry, in index order from 1 */
    struct cl_ents sm;
    raft_index_t sm_index; /* last applied index */
};

struct cl_msg {
    raft_id_t from, to;
    struct sc_buf frame;
};

struct cl_commit {
    raft_term_t term, commit_term;
    enum raft_entry_type type;
    struct sc_buf data;
    bool known;
};

struct cluster {
    struct cl_node nodes[CL_MAX_NODES + 1]; /* by id, 1-based */
    size_t n;
    struct cl_msg *net;
    size_t n_net, cap_net;
    bool cut[CL_MAX_NODES + 1][CL_MAX_NODES + 1];
    struct sc_buf *out; /* where traces go; NULL = quiet */
    bool trace;
    /* checkers */
    raft_id_t *leader_of_term; /* by term */
    size_t cap_terms;
    struct cl_commit *committed; /* by index */
    size_t cap_committed;
    unsigned violations;
    uint64_t seed;
};

static inline void cl_printf(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void cl_printf(struct cluster *c, const char *fmt, ...)
{
    if (!c->out)
        return;
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sc_buf_put(c->out, buf, (size_t)MIN(n, (int)sizeof(buf) - 1));
}

static inline void cl_violation(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void cl_violation(struct cluster *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    c->violations++;
    fprintf(stderr, "VIOLATION: %s\n", buf);
    cl_printf(c, "VIOLATION: %s\n", buf);
}

/* ---- entry lists ---------------------------------------------------------- */

static inline void cl_ents_truncate(struct cl_ents *l, size_t n)
{
    while (l->n > n)
        sc_buf_free(&l->v[--l->n].data);
}

static inline void cl_ents_push(struct cl_ents *l, raft_term_t term, raft_index_t index,
                                enum raft_entry_type type, const void *data, size_t len)
{
    l->v = sc_grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
    struct cl_ent *e = &l->v[l->n++];
    memset(e, 0, sizeof(*e));
    e->term = term;
    e->index = index;
    e->type = type;
    sc_buf_put(&e->data, data, len);
}

static inline struct raft_entry cl_ent_view(const struct cl_ent *s)
{
    return (struct raft_entry){.term = s->term,
                               .index = s->index,
                               .type = s->type,
                               .data = s->data.data,
                               .len = s->data.len};
}

static inline void cl_ents_free(struct cl_ents *l)
{
    cl_ents_truncate(l, 0);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* The state machine's snapshot: its applied entries up to index, encoded. */
static inline void cl_sm_encode(const struct cl_ents *sm, raft_index_t index, struct sc_buf *out)
{
    size_t n = 0;
    while (n < sm->n && sm->v[n].index <= index)
        n++;
    sc_buf_put_uvarint(out, n);
    for (size_t i = 0; i < n; i++) {
        sc_buf_put_uvarint(out, sm->v[i].index);
        sc_buf_put_uvarint(out, sm->v[i].term);
        sc_buf_put_u8(out, (uint8_t)sm->v[i].type);
        sc_buf_put_bytes(out, sm->v[i].data.data, sm->v[i].data.len);
    }
}

static inline int cl_sm_decode(const uint8_t *p, size_t len, struct cl_ents *sm)
{
    struct sc_rd rd = sc_rd_make(p, len);
    uint64_t n;
    cl_ents_truncate(sm, 0);
    if (sc_rd_uvarint(&rd, &n) < 0)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t idx, term;
        uint8_t t;
        const uint8_t *d;
        size_t dl;
        if (sc_rd_uvarint(&rd, &idx) < 0 || sc_rd_uvarint(&rd, &term) < 0 ||
            sc_rd_u8(&rd, &t) < 0 || sc_rd_bytes(&rd, &d, &dl, 1u << 30) < 0)
            return -1;
        cl_ents_push(sm, term, idx, t, d, dl);
    }
    return 0;
}

/* ---- checkers ------------------------------------------------------------- */

static inline struct cl_commit *cl_committed_at(struct cluster *c, raft_index_t i)
{
    if (i >= c->cap_committed) {
        size_t old = c->cap_committed;
        c->committed = sc_grow(c->committed, &c->cap_committed, i + 1, sizeof(*c->committed));
        memset(c->committed + old, 0, (c->cap_committed - old) * sizeof(*c->committed));
    }
    return &c->committed[i];
}

/* State machine safety: every node applies the same entry at an index. */
static inline void cl_note_applied(struct cluster *c, raft_id_t id, raft_term_t now_term,
                                   raft_index_t index, raft_term_t term, enum raft_entry_type type,
                                   const uint8_t *data, size_t len)
{
    struct cl_commit *k = cl_committed_at(c, index);
    if (!k->known) {
        k->known = true;
        k->term = term;
        k->type = type;
        k->commit_term = now_term;
        sc_buf_put(&k->data, data, len);
        return;
    }
    if (k->term != term || k->type != type || k->data.len != len ||
        (len && memcmp(k->data.data, data, len)))
        cl_violation(c, "state machine safety: node %llu applied %llu/%llu, another node %llu/%llu",
                     (unsigned long long)id, (unsigned long long)term, (unsigned long long)index,
                     (unsigned long long)k->term, (unsigned long long)index);
    if (now_term < k->commit_term)
        k->commit_term = now_term;
}

static inline bool cl_ent_same(const struct raft_entry *a, const struct raft_entry *b)
{
    return a->term == b->term && a->type == b->type && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static inline void cl_check(struct cluster *c)
{
    for (size_t i = 1; i <= c->n; i++) {
        struct cl_node *a = &c->nodes[i];
        if (!a->up)
            continue;
        struct raft_status sa;
        raft_get_status(a->r, &sa);
        if (sa.commit > sa.last_index || sa.applied > sa.commit)
            cl_violation(c, "node %zu: applied %llu commit %llu last %llu out of order", i,
                         (unsigned long long)sa.applied, (unsigned long long)sa.commit,
                         (unsigned long long)sa.last_index);
        if (sa.role == RAFT_LEADER) {
            /* election safety (thesis 3.4) */
            if (sa.term >= c->cap_terms) {
                size_t old = c->cap_terms;
                c->leader_of_term =
                    sc_grow(c->leader_of_term, &c->cap_terms, sa.term + 1, sizeof(raft_id_t));
                memset(c->leader_of_term + old, 0, (c->cap_terms - old) * sizeof(raft_id_t));
            }
            raft_id_t *l = &c->leader_of_term[sa.term];
            if (*l && *l != sa.id)
                cl_violation(c, "election safety: %llu and %llu both lead term %llu",
                             (unsigned long long)*l, (unsigned long long)sa.id,
                             (unsigned long long)sa.term);
            *l = sa.id;
            /* leader completeness (thesis 3.6): entries committed in earlier terms */
            for (raft_index_t x = sa.first_index; x < c->cap_committed; x++) {
                struct cl_commit *k = &c->committed[x];
                if (!k->known || k->commit_term >= sa.term)
                    continue;
                const struct raft_entry *e = raft_entry_at(a->r, x);
                if (!e || e->term != k->term)
                    cl_violation(c,
                                 "leader completeness: leader %llu of term %llu lacks committed "
                                 "%llu/%llu",
                                 (unsigned long long)sa.id, (unsigned long long)sa.term,
                                 (unsigned long long)k->term, (unsigned long long)x);
            }
        }
        /* log matching (thesis 3.5) with every other live node */
        for (size_t j = i + 1; j <= c->n; j++) {
            struct cl_node *b = &c->nodes[j];
            if (!b->up)
                continue;
            struct raft_status sb;
            raft_get_status(b->r, &sb);
            raft_index_t lo = MAX(sa.first_index, sb.first_index);
            raft_index_t hi = MIN(sa.last_index, sb.last_index);
            raft_index_t top = 0;
            for (raft_index_t x = hi; x >= lo && x > 0; x--)
                if (raft_entry_at(a->r, x)->term == raft_entry_at(b->r, x)->term) {
                    top = x;
                    break;
                }
            for (raft_index_t x = lo; x <= top; x++)
                if (!cl_ent_same(raft_entry_at(a->r, x), raft_entry_at(b->r, x))) {
                    cl_violation(c,
                                 "log matching: nodes %zu and %zu agree at %llu but differ at %llu",
                                 i, j, (unsigned long long)top, (unsigned long long)x);
                    break;
                }
        }
    }
}

/* ---- nodes ---------------------------------------------------------------- */

static inline void cl_trace_hook(void *ud, const char *line)
{
    struct cluster *c = ud;
    if (c->trace)
        cl_printf(c, "INFO %s\n", line);
}

static inline void cl_fail(struct cluster *c, const char *what, int r, struct sc_error *e)
{
    cl_violation(c, "%s failed: %s %s", what, sc_err_name(r), e ? e->msg : "");
}

/* Creates the core of node n from its disk. */
static inline void cl_boot(struct cluster *c, struct cl_node *n)
{
    struct sc_error e = {0};
    int r = raft_new(&n->cfg, &n->r, &e);
    if (r < 0) {
        cl_fail(c, "raft_new", r, &e);
        return;
    }
    if (n->has_snap && (r = raft_load_snapshot(n->r, &n->snap, &e)) < 0)
        cl_fail(c, "raft_load_snapshot", r, &e);
    for (size_t i = 0; i < n->log.n; i++) {
        struct raft_entry ent = cl_ent_view(&n->log.v[i]);
        if ((r = raft_load_entry(n->r, &ent, &e)) < 0)
            cl_fail(c, "raft_load_entry", r, &e);
    }
    if (n->has_hs && (r = raft_load_hard_state(n->r, &n->hs, &e)) < 0)
        cl_fail(c, "raft_load_hard_state", r, &e);
    if ((r = raft_start(n->r, &e)) < 0)
        cl_fail(c, "raft_start", r, &e);
    /* the state machine restarts from the snapshot; the log is re-applied */
    if (n->has_snap)
        cl_sm_decode(n->snap_data.data, n->snap_data.len, &n->sm);
    else
        cl_ents_truncate(&n->sm, 0);
    n->sm_index = n->has_snap ? n->snap.index : 0;
    n->up = true;
}

/* Adds a node with this config; conf != NULL bootstraps it with the snapshot
 * (index 1, term 1, conf) that every initial member shares. */
static inline raft_id_t cl_add(struct cluster *c, const struct raft_config *cfg,
                               const struct raft_conf *conf)
{
    if (c->n >= CL_MAX_NODES)
        return 0;
    struct cl_node *n = &c->nodes[++c->n];
    memset(n, 0, sizeof(*n));
    n->id = c->n;
    n->exists = true;
    n->cfg = *cfg;
    n->cfg.id = n->id;
    n->cfg.seed = c->seed;
    n->cfg.trace = cl_trace_hook;
    n->cfg.trace_ud = c;
    if (conf) {
        n->has_snap = true;
        n->snap = (struct raft_snapshot_meta){.index = 1, .term = 1, .conf = *conf};
        struct cl_ents empty = {0};
        cl_sm_encode(&empty, 0, &n->snap_data);
    }
    cl_boot(c, n);
    return n->id;
}

static inline void cl_init(struct cluster *c, struct sc_buf *out, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->out = out;
    c->seed = seed;
}

static inline void cl_crash(struct cluster *c, raft_id_t id)
{
    struct cl_node *n = &c->nodes[id];
    if (!n->up)
        return;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
}

static inline void cl_done(struct cluster *c)
{
    for (size_t i = 1; i <= c->n; i++) {
        struct cl_node *n = &c->nodes[i];
        cl_crash(c, n->id);
        cl_ents_free(&n->log);
        cl_ents_free(&n->sm);
        sc_buf_free(&n->snap_data);
    }
    for (size_t i = 0; i < c->n_net; i++)
        sc_buf_free(&c->net[i].frame);
    free(c->net);
    for (size_t i = 0; i < c->cap_committed; i++)
        sc_buf_free(&c->committed[i].data);
    free(c->committed);
    free(c->leader_of_term);
}

static inline struct raft *cl_raft(struct cluster *c, raft_id_t id)
{
    return id >= 1 && id <= c->n && c->nodes[id].up ? c->nodes[id].r : NULL;
}

/* ---- executing an update (what a server does) ------------------------------ */

static inline void cl_persist(struct cl_node *n, const struct raft_update *u)
{
    if (u->snapshot) {
        n->has_snap = true;
        n->snap = *u->snapshot;
        sc_buf_reset(&n->snap_data);
        sc_buf_put(&n->snap_data, u->snap_data, u->snap_len);
        cl_ents_truncate(&n->log, 0);
    }
    for (size_t i = 0; i < u->n_entries; i++) {
        const struct raft_entry *e = &u->entries[i];
        size_t k = 0; /* WAL semantics: index i overrides every entry >= i */
        while (k < n->log.n && n->log.v[k].index < e->index)
            k++;
        cl_ents_truncate(&n->log, k);
        cl_ents_push(&n->log, e->term, e->index, e->type, e->data, e->len);
    }
    if (u->hard_changed) {
        n->has_hs = true;
        n->hs = u->hard;
    }
}

static inline void cl_send(struct cluster *c, struct cl_node *n, const struct raft_msg *m)
{
    struct raft_msg copy = *m;
    if (m->type == RAFT_MSG_SNAP) {
        /* the transport attaches the snapshot file the message names */
        if (!n->has_snap || n->snap.index != m->snap.index)
            cl_violation(c, "node %llu sends a snapshot at %llu it does not have",
                         (unsigned long long)n->id, (unsigned long long)m->snap.index);
        copy.snap_data = n->snap_data.data;
        copy.snap_len = n->snap_data.len;
    }
    c->net = sc_grow(c->net, &c->cap_net, c->n_net + 1, sizeof(*c->net));
    struct cl_msg *q = &c->net[c->n_net++];
    memset(q, 0, sizeof(*q));
    q->from = m->from;
    q->to = m->to;
    raft_msg_encode(&copy, &q->frame);
}

static inline void cl_print_update(struct cluster *c, raft_id_t id, const struct raft_update *u)
{
    struct sc_buf b = {0};
    cl_printf(c, "> %llu handling Ready\n", (unsigned long long)id);
    if (u->soft_changed)
        cl_printf(c, "  State:%s Lead:%llu\n", raft_role_name(u->role),
                  (unsigned long long)u->leader);
    if (u->hard_changed)
        cl_printf(c, "  HardState Term:%llu Vote:%llu Commit:%llu\n",
                  (unsigned long long)u->hard.term, (unsigned long long)u->hard.vote,
                  (unsigned long long)u->hard.commit);
    if (u->snapshot) {
        raft_conf_format(&u->snapshot->conf, &b);
        cl_printf(c, "  Snapshot Index:%llu Term:%llu %.*s\n",
                  (unsigned long long)u->snapshot->index, (unsigned long long)u->snapshot->term,
                  (int)b.len, (char *)b.data);
    }
    if (u->n_entries)
        cl_printf(c, "  Entries:\n");
    for (size_t i = 0; i < u->n_entries; i++) {
        sc_buf_reset(&b);
        raft_entry_format(&u->entries[i], &b);
        cl_printf(c, "  %.*s\n", (int)b.len, (char *)b.data);
    }
    if (u->n_msgs)
        cl_printf(c, "  Messages:\n");
    for (size_t i = 0; i < u->n_msgs; i++) {
        sc_buf_reset(&b);
        raft_msg_format(&u->msgs[i], &b);
        cl_printf(c, "  %.*s\n", (int)b.len, (char *)b.data);
    }
    if (u->n_committed)
        cl_printf(c, "  CommittedEntries:\n");
    for (size_t i = 0; i < u->n_committed; i++) {
        sc_buf_reset(&b);
        raft_entry_format(&u->committed[i], &b);
        cl_printf(c, "  %.*s\n", (int)b.len, (char *)b.data);
    }
    for (size_t i = 0; i < u->n_reads; i++)
        cl_printf(c, "  ReadState Ctx:%llu Index:%llu%s\n", (unsigned long long)u->reads[i].ctx,
                  (unsigned long long)u->reads[i].index, u->reads[i].failed ? " Failed" : "");
    sc_buf_free(&b);
}

/* Executes one update of node id: persist, send, apply, advance.  Returns false
 * when the node had nothing to do. */
static inline bool cl_process_ready(struct cluster *c, raft_id_t id)
{
    struct cl_node *n = &c->nodes[id];
    if (!n->up || !raft_has_update(n->r))
        return false;
    struct raft_update u;
    raft_ready(n->r, &u);
    cl_print_update(c, id, &u);
    cl_persist(n, &u);
    for (size_t i = 0; i < u.n_msgs; i++)
        cl_send(c, n, &u.msgs[i]);
    struct raft_status st;
    raft_get_status(n->r, &st);
    if (u.snapshot) {
        if (cl_sm_decode(u.snap_data, u.snap_len, &n->sm) < 0)
            cl_violation(c, "node %llu: undecodable snapshot", (unsigned long long)id);
        n->sm_index = u.snapshot->index;
        for (size_t i = 0; i < n->sm.n; i++)
            cl_note_applied(c, id, st.term, n->sm.v[i].index, n->sm.v[i].term, n->sm.v[i].type,
                            n->sm.v[i].data.data, n->sm.v[i].data.len);
    }
    for (size_t i = 0; i < u.n_committed; i++) {
        const struct raft_entry *e = &u.committed[i];
        if (e->index != n->sm_index + 1)
            cl_violation(c, "node %llu applies %llu, expected %llu", (unsigned long long)id,
                         (unsigned long long)e->index, (unsigned long long)n->sm_index + 1);
        n->sm_index = e->index;
        cl_ents_push(&n->sm, e->term, e->index, e->type, e->data, e->len);
        cl_note_applied(c, id, st.term, e->index, e->term, e->type, e->data, e->len);
    }
    raft_advance(n->r, &u);
    return true;
}

/* Snapshots the state machine of node id at index (what a server does: write the
 * snapshot file, raft_compact, then drop WAL entries below it). */
static inline int cl_compact(struct cluster *c, raft_id_t id, raft_index_t index,
                             struct sc_error *e)
{
    struct cl_node *n = &c->nodes[id];
    if (!n->up)
        return -ENODEV;
    int r = raft_compact(n->r, index, e);
    if (r < 0)
        return r;
    struct raft_status st;
    raft_get_status(n->r, &st);
    n->has_snap = true;
    n->snap = st.snapshot;
    sc_buf_reset(&n->snap_data);
    cl_sm_encode(&n->sm, st.snapshot.index, &n->snap_data);
    size_t k = 0;
    while (k < n->log.n && n->log.v[k].index <= st.snapshot.index)
        k++;
    for (size_t i = 0; i < k; i++)
        sc_buf_free(&n->log.v[i].data);
    if (k) {
        memmove(n->log.v, n->log.v + k, (n->log.n - k) * sizeof(*n->log.v));
        n->log.n -= k;
    }
    return 0;
}

/* ---- network ------------------------------------------------------------------ */

static inline void cl_drop_at(struct cluster *c, size_t i)
{
    sc_buf_free(&c->net[i].frame);
    memmove(c->net + i, c->net + i + 1, (c->n_net - i - 1) * sizeof(*c->net));
    c->n_net--;
}

static inline void cl_print_frame(struct cluster *c, const struct cl_msg *q, const char *suffix)
{
    struct raft_msg m;
    if (raft_msg_decode(q->frame.data, q->frame.len, &m) < 0) {
        cl_violation(c, "undecodable message");
        return;
    }
    struct sc_buf b = {0};
    raft_msg_format(&m, &b);
    cl_printf(c, "%.*s%s\n", (int)b.len, (char *)b.data, suffix);
    sc_buf_free(&b);
    raft_msg_done(&m);
}

/* Delivers every queued message to the listed nodes (all when n_ids is 0), in
 * queue order.  Returns how many were taken off the queue. */
static inline size_t cl_deliver(struct cluster *c, const raft_id_t *ids, size_t n_ids)
{
    size_t done = 0;
    for (size_t i = 0; i < c->n_net;) {
        struct cl_msg q = c->net[i];
        bool want = n_ids == 0;
        for (size_t k = 0; k < n_ids; k++)
            want |= ids[k] == q.to;
        if (!want) {
            i++;
            continue;
        }
        memmove(c->net + i, c->net + i + 1, (c->n_net - i - 1) * sizeof(*c->net));
        c->n_net--;
        done++;
        struct cl_node *n = q.to <= c->n ? &c->nodes[q.to] : NULL;
        if (c->cut[q.from][q.to] || !n || !n->up) {
            cl_print_frame(c, &q, n && n->up ? " DROPPED (partition)" : " DROPPED (down)");
            sc_buf_free(&q.frame);
            continue;
        }
        cl_print_frame(c, &q, "");
        struct raft_msg m;
        if (raft_msg_decode(q.frame.data, q.frame.len, &m) == 0) {
            int r = raft_step(n->r, &m);
            if (r < 0)
                cl_printf(c, "step failed: %s\n", sc_err_name(r));
            raft_msg_done(&m);
        }
        sc_buf_free(&q.frame);
        cl_check(c);
    }
    return done;
}

/* Processes every update and delivers every message until nothing moves. */
static inline void cl_stabilize(struct cluster *c)
{
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        for (size_t i = 1; i <= c->n; i++)
            if (cl_process_ready(c, i)) {
                moved = true;
                cl_check(c);
            }
        if (c->n_net) {
            cl_deliver(c, NULL, 0);
            moved = true;
        }
        if (!moved)
            return;
    }
    cl_violation(c, "stabilize did not settle in 1000 rounds");
}

/* Cuts every link between the listed nodes and the others. */
static inline void cl_partition(struct cluster *c, const raft_id_t *ids, size_t n_ids)
{
    bool in[CL_MAX_NODES + 1] = {0};
    for (size_t k = 0; k < n_ids; k++)
        if (ids[k] <= CL_MAX_NODES)
            in[ids[k]] = true;
    for (size_t a = 1; a <= CL_MAX_NODES; a++)
        for (size_t b = 1; b <= CL_MAX_NODES; b++)
            if (in[a] != in[b])
                c->cut[a][b] = true;
}

static inline void cl_heal(struct cluster *c)
{
    memset(c->cut, 0, sizeof(c->cut));
}

/* The unique live leader with the highest term, or 0. */
static inline raft_id_t cl_leader(struct cluster *c)
{
    raft_id_t best = 0;
    raft_term_t bt = 0;
    for (size_t i = 1; i <= c->n; i++) {
        struct raft_status st;
        if (!c->nodes[i].up)
            continue;
        raft_get_status(c->nodes[i].r, &st);
        if (st.role == RAFT_LEADER && st.term >= bt)
            best = i, bt = st.term;
    }
    return best;
}

static inline void cl_tick(struct cluster *c, raft_id_t id, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        if (c->nodes[id].up) {
            raft_tick(c->nodes[id].r);
            cl_check(c);
        }
}
