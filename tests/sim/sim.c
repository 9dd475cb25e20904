/*
 * sim.c: one seed of the deterministic simulator (sim.h, docs/sim.md).
 *
 * Design block.
 *
 * World.  Up to SIM_MAX_ID replicas, each a real struct raft, a real struct
 * store and a simulated disk; simulated clients; one event queue ordered by
 * (virtual time, sequence number).  Every choice comes from one splitmix64
 * stream seeded by the seed, so a seed replays exactly.
 *
 * Disk (per replica).  The write-ahead log is a byte string of real WAL
 * records (wal_record_encode: crc32c, type, term, index, payload) with a
 * `synced` mark; snapshot files are written atomically (as sctld does: temp
 * file, fsync, rename) and named by a SNAPSHOT record in the log.  Executing an
 * update appends SNAPSHOT, ENTRY and STATE records and moves `synced` to the end
 * when must_sync (or by chance when not).  A crash keeps the synced bytes plus
 * any prefix of the unsynced ones, sometimes followed by garbage: a torn tail.
 * A restart replays the records in file order through raft_load_* (stopping at
 * the first record that fails to decode, as wal_replay truncates a torn tail),
 * rebuilds the store from the snapshot file and lets raft_start hand out the
 * committed entries again.
 *
 * Update execution (the raft.h contract).  persist -> [crash point 0: torn
 * write] -> fsync if must_sync -> [1] -> send -> [2] -> install snapshot, apply,
 * serve reads -> [3] -> raft_advance.
 *
 * Invariants checked after every event (any violation fails the seed):
 *  1. election safety, log matching, leader completeness (tests/raft/cluster.h);
 *  2. state machine safety: every replica applies, at each index, the entry
 *     every other replica applied there, contiguously (cl_note_applied);
 *  3. equal stores at equal applied index: the hash of store_snapshot_encode
 *     after applying index i (or installing a snapshot at i) is the same on
 *     every replica, also after a restart re-applies the log;
 *  4. a client request is in the log at most once (no entry applied twice);
 *  5. at the end: the client history is linearizable (lincheck.h), and after
 *     healing everything the members converge (liveness).
 */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../raft/cluster.h"
#include "base/buf.h"
#include "base/util.h"
#include "lincheck.h"
#include "raft/raft.h"
#include "store/store.h"
#include "store/wal.h"

#define SIM_MAX_ID  9
#define TICK_USEC   10000
#define MAX_KEYS    6
#define OP_TIMEOUT  (40 * TICK_USEC)
#define CALM_STEPS  150
#define QUIET_STEPS 40 /* at the end of the calm phase: no new client ops */
#define MAX_CLIENTS 4

/* ---- PRNG ------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- types ------------------------------------------------------------------ */

struct snapfile {
    struct raft_snapshot_meta meta;
    struct sc_buf data; /* store_snapshot_encode */
};

enum pend_kind { PEND_WRITE, PEND_READ_WAIT, PEND_READ_INDEX };

struct pend {
    uint64_t req;
    enum pend_kind kind;
    raft_index_t index;
};

struct node {
    raft_id_t id;
    bool exists, up;
    uint32_t incarnation;
    struct raft *r;
    struct raft_config cfg;
    struct store *st;
    raft_index_t applied;
    raft_index_t conf_idx; /* index of the proposal that added or removed it */
    /* disk */
    struct sc_buf wal;
    size_t synced;
    struct snapfile *snaps;
    size_t n_snaps, cap_snaps;
    /* client requests waiting here */
    struct pend *pend;
    size_t n_pend, cap_pend;
    bool crash_next; /* crash inside the next update */
    /* bug injection */
    unsigned bug_count;
};

enum ev_kind { EV_TICK, EV_MSG, EV_REQ, EV_RESP, EV_CLIENT, EV_RESTART, EV_HEAL };

enum resp_status { RESP_OK, RESP_RETRY };

struct ev {
    usec_t at;
    uint64_t seq;
    enum ev_kind kind;
    raft_id_t from, to;
    uint32_t incarnation;
    uint32_t client;
    uint64_t req, op;
    enum resp_status status;
    raft_id_t hint;
    int64_t value;
    bool ok;
    struct sc_buf frame;
};

struct req {
    uint32_t client;
    size_t op;
    raft_index_t applied_at; /* invariant 4 */
};

enum op_state { OP_PENDING, OP_DONE, OP_DROPPED };

struct client {
    raft_id_t guess;
    bool busy;
    size_t op;
    uint64_t req;
    usec_t deadline;
    int64_t seen[MAX_KEYS];
};

struct sim {
    struct sim_opts o;
    struct sim_result *res;
    uint64_t rng;
    usec_t now;
    uint64_t seq, lclock;
    struct node nodes[SIM_MAX_ID + 1];
    raft_id_t next_id;
    struct cluster cl;        /* the checkers of tests/raft/cluster.h */
    struct sc_buf violations; /* cl_violation's lines */
    /* queue: binary heap */
    struct ev *heap;
    size_t n_heap, cap_heap;
    /* network */
    bool cut[SIM_MAX_ID + 1][SIM_MAX_ID + 1];
    bool partitioned;
    /* knobs drawn from the seed (swarm testing: every seed its own mix) */
    unsigned p_drop, p_dup, p_slow, p_partition, p_crash, p_midcrash, p_compact, p_conf, p_transfer,
        p_campaign, p_sync_anyway, p_lose_unsynced, p_store_compact, p_leader_crash;
    unsigned n_keys, n_clients;
    bool faults, clients_on;
    /* clients and history */
    struct client clients[MAX_CLIENTS];
    struct lin_op *ops;
    enum op_state *op_state;
    size_t n_ops, cap_ops, cap_op_state;
    struct req *reqs;
    size_t n_reqs, cap_reqs;
    /* store hash after applying each index (invariant 3) */
    uint64_t *hash_at;
    size_t cap_hash;
};

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rnd(struct sim *s)
{
    return splitmix(&s->rng);
}
static uint64_t rnd_below(struct sim *s, uint64_t n)
{
    return n ? rnd(s) % n : 0;
}
static bool chance(struct sim *s, unsigned per_mille)
{
    return rnd_below(s, 1000) < per_mille;
}

static void tracef(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tracef(struct sim *s, const char *fmt, ...)
{
    if (!s->o.verbose)
        return;
    va_list ap;
    printf("%7.2f ", (double)s->now / 1000.0);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cl_violation(&s->cl, "%s", buf);
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h | 1; /* 0 means unknown */
}

static void mirror(struct sim *s, struct node *n)
{
    s->cl.nodes[n->id].up = n->up;
    s->cl.nodes[n->id].r = n->up ? n->r : NULL;
}

/* ---- event queue -------------------------------------------------------------- */

static bool ev_before(const struct ev *a, const struct ev *b)
{
    return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static void push(struct sim *s, struct ev *e)
{
    e->seq = s->seq++;
    s->heap = sc_grow(s->heap, &s->cap_heap, s->n_heap + 1, sizeof(*s->heap));
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(e, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = *e;
}

static struct ev pop(struct sim *s)
{
    struct ev top = s->heap[0];
    struct ev last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && ev_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!ev_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap)
        s->heap[i] = last;
    return top;
}

/* Network latency: mostly 0.5-3 ms, sometimes up to 60 ms (reordering). */
static usec_t latency(struct sim *s)
{
    usec_t d = 500 + rnd_below(s, 2500);
    if (chance(s, s->p_slow))
        d += rnd_below(s, 60000);
    return d;
}

/* ---- disk ------------------------------------------------------------------------ */

static void wal_put(struct node *n, enum wal_rec_type t, uint64_t term, uint64_t index,
                    const void *p, size_t len)
{
    struct wal_record rec = {.type = t, .term = term, .index = index, .data = p, .len = len};
    wal_record_encode(&rec, &n->wal);
}

static void wal_put_entry(struct node *n, const struct raft_entry *e)
{
    struct sc_buf b = {0};
    sc_buf_put_u8(&b, (uint8_t)e->type);
    sc_buf_put(&b, e->data, e->len);
    wal_put(n, WAL_REC_ENTRY, e->term, e->index, b.data, b.len);
    sc_buf_free(&b);
}

static void wal_put_state(struct node *n, const struct raft_hard_state *hs)
{
    struct sc_buf b = {0};
    sc_buf_put_uvarint(&b, hs->vote);
    sc_buf_put_uvarint(&b, hs->commit);
    wal_put(n, WAL_REC_STATE, hs->term, 0, b.data, b.len);
    sc_buf_free(&b);
}

static struct snapfile *snap_find(struct node *n, raft_index_t index)
{
    for (size_t i = 0; i < n->n_snaps; i++)
        if (n->snaps[i].meta.index == index)
            return &n->snaps[i];
    return NULL;
}

/* Writes a snapshot file atomically and durably (temp, fsync, rename, dir fsync). */
static void snap_write(struct node *n, const struct raft_snapshot_meta *m, const void *p,
                       size_t len)
{
    struct snapfile *f = snap_find(n, m->index);
    if (!f) {
        n->snaps = sc_grow(n->snaps, &n->cap_snaps, n->n_snaps + 1, sizeof(*n->snaps));
        f = &n->snaps[n->n_snaps++];
        memset(f, 0, sizeof(*f));
    }
    f->meta = *m;
    sc_buf_reset(&f->data);
    sc_buf_put(&f->data, p, len);
    wal_put(n, WAL_REC_SNAPSHOT, m->term, m->index, NULL, 0);
}

static void snaps_gc(struct node *n, raft_index_t keep_from)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_snaps; i++) {
        if (n->snaps[i].meta.index >= keep_from)
            n->snaps[k++] = n->snaps[i];
        else
            sc_buf_free(&n->snaps[i].data);
    }
    n->n_snaps = k;
}

/* A crash: the synced bytes survive, then any prefix of the rest, perhaps
 * followed by junk (a torn sector). */
static void disk_crash(struct sim *s, struct node *n)
{
    size_t unsynced = n->wal.len - n->synced;
    size_t keep = n->synced + (size_t)rnd_below(s, unsynced + 1);
    if (!chance(s, n->id == 1 && s->o.bug == SIM_BUG_NO_SYNC ? 1000 : s->p_lose_unsynced))
        keep = n->wal.len; /* the page cache made it to disk */
    if (keep < n->wal.len)
        s->res->torn++;
    n->wal.len = keep;
    if (unsynced && chance(s, 500)) {
        size_t junk = 1 + (size_t)rnd_below(s, 40);
        for (size_t i = 0; i < junk; i++)
            sc_buf_put_u8(&n->wal, (uint8_t)rnd(s));
    }
}

/* Folds the log into its effective content (what raft_load_* keeps) and
 * rewrites it: what the WAL does when it carries the newest SNAPSHOT and STATE
 * records into a new segment and removes the old ones.  Only when synced. */
static void disk_rotate(struct sim *s, struct node *n)
{
    struct span {
        size_t off, len;
        uint64_t index;
    } *ents = NULL;
    size_t n_ents = 0, cap = 0;
    size_t snap_off = 0, snap_len = 0, state_off = 0, state_len = 0;
    uint64_t snap_index = 0, snap_term = 0;
    size_t off = 0;
    while (off < n->wal.len) {
        struct wal_record rec;
        ssize_t k = wal_record_decode(n->wal.data + off, n->wal.len - off, &rec);
        if (k <= 0)
            break;
        if (rec.type == WAL_REC_ENTRY) {
            while (n_ents && ents[n_ents - 1].index >= rec.index)
                n_ents--;
            ents = sc_grow(ents, &cap, n_ents + 1, sizeof(*ents));
            ents[n_ents++] = (struct span){off, (size_t)k, rec.index};
        } else if (rec.type == WAL_REC_STATE) {
            state_off = off, state_len = (size_t)k;
        } else if (rec.type == WAL_REC_SNAPSHOT) {
            snap_off = off, snap_len = (size_t)k;
            snap_index = rec.index, snap_term = rec.term;
            /* entries at or below the snapshot go; the rest stays only if the
             * log matches the snapshot at its index */
            size_t j = 0;
            bool match = false;
            for (size_t i = 0; i < n_ents; i++) {
                if (ents[i].index == snap_index) {
                    struct wal_record er;
                    wal_record_decode(n->wal.data + ents[i].off, ents[i].len, &er);
                    match = er.term == snap_term;
                }
                if (ents[i].index > snap_index)
                    ents[j++] = ents[i];
            }
            n_ents = match ? j : 0;
        }
        off += (size_t)k;
    }
    struct sc_buf out = {0};
    sc_buf_put(&out, n->wal.data + snap_off, snap_len);
    for (size_t i = 0; i < n_ents; i++)
        sc_buf_put(&out, n->wal.data + ents[i].off, ents[i].len);
    sc_buf_put(&out, n->wal.data + state_off, state_len);
    sc_buf_free(&n->wal);
    n->wal = out;
    n->synced = n->wal.len;
    snaps_gc(n, snap_index);
    free(ents);
    tracef(s, "n%" PRIu64 " wal rotated: snapshot %" PRIu64 ", %zu entries, %zu bytes", n->id,
           snap_index, n_ents, n->wal.len);
}

/* ---- the store ------------------------------------------------------------------ */

static uint64_t store_hash(struct store *st)
{
    struct sc_buf b = {0};
    store_snapshot_encode(st, &b);
    uint64_t h = fnv(b.data, b.len);
    sc_buf_free(&b);
    return h;
}

static void check_hash(struct sim *s, struct node *n, raft_index_t index)
{
    uint64_t h = store_hash(n->st);
    if (index >= s->cap_hash) {
        size_t old = s->cap_hash;
        s->hash_at = sc_grow(s->hash_at, &s->cap_hash, index + 1, sizeof(*s->hash_at));
        memset(s->hash_at + old, 0, (s->cap_hash - old) * sizeof(*s->hash_at));
    }
    if (!s->hash_at[index])
        s->hash_at[index] = h;
    else if (s->hash_at[index] != h)
        fail(s,
             "store divergence: n%" PRIu64 " store at applied index %" PRIu64
             " differs from another replica's at the same index",
             n->id, index);
    char why[200];
    if (store_check(n->st, why, sizeof(why)) < 0)
        fail(s, "n%" PRIu64 " store_check: %s", n->id, why);
}

static void key_name(char *buf, size_t n, uint32_t key)
{
    snprintf(buf, n, "k%u", key);
}

static int64_t parse_value(const uint8_t *p, size_t n)
{
    char b[32];
    if (n == 0 || n >= sizeof(b) || p[0] != 'v')
        return -1;
    memcpy(b, p + 1, n - 1);
    b[n - 1] = 0;
    return strtoll(b, NULL, 10);
}

/* The store command of a write op, with the request id in front (the envelope
 * sctld puts around a command so that the replica holding the request answers). */
static void encode_write(const struct lin_op *op, uint64_t req, struct sc_buf *out)
{
    char key[16], val[32], exp[32];
    key_name(key, sizeof(key), op->key);
    snprintf(val, sizeof(val), "v%" PRId64, op->arg);
    snprintf(exp, sizeof(exp), "v%" PRId64, op->expect);
    struct store_op put = {.type = STORE_OP_PUT,
                           .key = (const uint8_t *)key,
                           .key_len = strlen(key),
                           .value = (const uint8_t *)val,
                           .value_len = strlen(val)};
    struct store_op del = {.type = STORE_OP_DELETE, .key = put.key, .key_len = put.key_len};
    struct store_op get = {.type = STORE_OP_GET, .key = put.key, .key_len = put.key_len};
    struct store_cmp cmp = {.key = put.key, .key_len = put.key_len, .op = STORE_CMP_EQ};
    if (op->expect == 0) {
        cmp.target = STORE_CMP_VERSION;
        cmp.num = 0;
    } else {
        cmp.target = STORE_CMP_VALUE;
        cmp.value = (const uint8_t *)exp;
        cmp.value_len = strlen(exp);
    }
    struct store_cmd c = {.type = STORE_CMD_TXN};
    if (op->kind == LIN_PUT) {
        c.success = &put, c.nsuccess = 1;
    } else if (op->kind == LIN_DEL) {
        c.success = &del, c.nsuccess = 1;
    } else {
        c.cmps = &cmp, c.ncmps = 1;
        c.success = &put, c.nsuccess = 1;
        c.failure = &get, c.nfailure = 1;
    }
    sc_buf_put_u64le(out, req);
    store_cmd_encode(&c, out);
}

/* ---- clients ------------------------------------------------------------------------ */

static void respond(struct sim *s, struct node *n, uint64_t req, enum resp_status st, int64_t value,
                    bool ok)
{
    struct ev e = {.kind = EV_RESP,
                   .at = s->now + latency(s),
                   .from = n->id,
                   .req = req,
                   .status = st,
                   .value = value,
                   .ok = ok};
    if (req < s->n_reqs)
        e.client = s->reqs[req].client;
    if (n->up) {
        struct raft_status rs;
        raft_get_status(n->r, &rs);
        e.hint = rs.leader;
    }
    if (chance(s, s->p_drop)) {
        tracef(s, "n%" PRIu64 " answer to req %" PRIu64 " lost", n->id, req);
        return;
    }
    push(s, &e);
}

static void pend_add(struct node *n, uint64_t req, enum pend_kind k, raft_index_t idx)
{
    n->pend = sc_grow(n->pend, &n->cap_pend, n->n_pend + 1, sizeof(*n->pend));
    n->pend[n->n_pend++] = (struct pend){req, k, idx};
}

static void pend_del(struct node *n, size_t i)
{
    n->pend[i] = n->pend[--n->n_pend];
}

static void serve_read(struct sim *s, struct node *n, uint64_t req)
{
    const struct lin_op *op = &s->ops[s->reqs[req].op];
    char key[16];
    key_name(key, sizeof(key), op->key);
    struct store_op get = {
        .type = STORE_OP_GET, .key = (const uint8_t *)key, .key_len = strlen(key)};
    struct store_op_result res = {0};
    struct sc_error e = {0};
    int64_t v = 0;
    if (store_read(n->st, &get, &res, &e) < 0) {
        fail(s, "n%" PRIu64 " store_read: %s", n->id, e.msg);
        return;
    }
    if (res.nkvs)
        v = parse_value(res.kvs[0].value, res.kvs[0].value_len);
    free(res.kvs);
    tracef(s, "n%" PRIu64 " read req %" PRIu64 " %s = %" PRId64 " at applied %" PRIu64, n->id, req,
           key, v, n->applied);
    respond(s, n, req, RESP_OK, v, true);
}

static void serve_ready_reads(struct sim *s, struct node *n)
{
    for (size_t i = 0; i < n->n_pend;) {
        struct pend p = n->pend[i];
        if (p.kind == PEND_READ_INDEX && p.index <= n->applied) {
            pend_del(n, i);
            serve_read(s, n, p.req);
        } else {
            i++;
        }
    }
}

/* ---- applying ------------------------------------------------------------------------- */

static void apply_normal(struct sim *s, struct node *n, const struct raft_entry *ent)
{
    if (ent->len < 8)
        return; /* the leader's empty entry */
    uint64_t req = sc_get_u64le(ent->data);
    struct store_cmd c;
    if (store_cmd_decode(ent->data + 8, ent->len - 8, &c) < 0) {
        fail(s, "n%" PRIu64 " undecodable command at %" PRIu64, n->id, ent->index);
        return;
    }
    if (req < s->n_reqs) {
        struct req *q = &s->reqs[req];
        if (q->applied_at && q->applied_at != ent->index)
            fail(s, "request %" PRIu64 " is in the log twice (at %" PRIu64 " and %" PRIu64 ")", req,
                 q->applied_at, ent->index);
        q->applied_at = ent->index;
    }
    unsigned times = 1;
    if (n->id == 1 && s->o.bug == SIM_BUG_SKIP && ++n->bug_count == 5)
        times = 0;
    if (n->id == 1 && s->o.bug == SIM_BUG_DOUBLE && ++n->bug_count == 5)
        times = 2;
    struct store_result res = {0};
    int r = 0;
    struct sc_error e = {0};
    for (unsigned t = 0; t < times; t++) {
        store_result_done(&res);
        memset(&res, 0, sizeof(res));
        r = store_apply(n->st, &c, 0, &res, &e);
    }
    bool compact = c.type == STORE_CMD_COMPACT;
    store_cmd_done(&c);
    if (r < 0 && compact) {
        /* refused identically on every replica (the store-hash check sees to it) */
        tracef(s, "n%" PRIu64 " refused compaction at %" PRIu64 ": %s", n->id, ent->index, e.msg);
        return;
    }
    if (r < 0) {
        fail(s, "n%" PRIu64 " store_apply at %" PRIu64 ": %s", n->id, ent->index, e.msg);
        return;
    }
    for (size_t i = 0; i < n->n_pend; i++) {
        if (n->pend[i].req != req || n->pend[i].kind != PEND_WRITE)
            continue;
        pend_del(n, i);
        const struct lin_op *op = &s->ops[s->reqs[req].op];
        int64_t v = 0;
        bool ok = true;
        if (op->kind == LIN_DEL && res.nops)
            ok = res.ops[0].count > 0;
        if (op->kind == LIN_CAS) {
            ok = res.succeeded;
            if (!ok && res.nops && res.ops[0].nkvs)
                v = parse_value(res.ops[0].kvs[0].value, res.ops[0].kvs[0].value_len);
        }
        respond(s, n, req, RESP_OK, v, ok);
        break;
    }
    store_result_done(&res);
}

/* ---- replicas ----------------------------------------------------------------------- */

static void raft_trace(void *ud, const char *line)
{
    struct sim *s = ud;
    tracef(s, "  raft: %s", line);
}

static void node_boot(struct sim *s, struct node *n)
{
    struct sc_error e = {0};
    int r = raft_new(&n->cfg, &n->r, &e);
    if (r < 0) {
        fail(s, "raft_new: %s", e.msg);
        return;
    }
    size_t off = 0;
    while (off < n->wal.len) {
        struct wal_record rec;
        ssize_t k = wal_record_decode(n->wal.data + off, n->wal.len - off, &rec);
        if (k <= 0)
            break; /* torn tail: truncated, as wal_replay does */
        if (rec.type == WAL_REC_SNAPSHOT) {
            struct snapfile *f = snap_find(n, rec.index);
            if (!f || f->meta.term != rec.term)
                fail(s, "n%" PRIu64 " snapshot file %" PRIu64 " missing", n->id, rec.index);
            else if ((r = raft_load_snapshot(n->r, &f->meta, &e)) < 0)
                fail(s, "n%" PRIu64 " raft_load_snapshot: %s", n->id, e.msg);
        } else if (rec.type == WAL_REC_ENTRY) {
            struct raft_entry ent = {.term = rec.term,
                                     .index = rec.index,
                                     .type = rec.len ? rec.data[0] : 0,
                                     .data = rec.len > 1 ? rec.data + 1 : NULL,
                                     .len = rec.len ? rec.len - 1 : 0};
            if ((r = raft_load_entry(n->r, &ent, &e)) < 0)
                fail(s, "n%" PRIu64 " raft_load_entry %" PRIu64 ": %s", n->id, rec.index, e.msg);
        } else if (rec.type == WAL_REC_STATE) {
            struct sc_rd rd = sc_rd_make(rec.data, rec.len);
            struct raft_hard_state hs = {.term = rec.term};
            if (sc_rd_uvarint(&rd, &hs.vote) < 0 || sc_rd_uvarint(&rd, &hs.commit) < 0)
                fail(s, "n%" PRIu64 " bad state record", n->id);
            else if ((r = raft_load_hard_state(n->r, &hs, &e)) < 0)
                fail(s, "n%" PRIu64 " raft_load_hard_state: %s", n->id, e.msg);
        }
        off += (size_t)k;
    }
    if (off < n->wal.len)
        tracef(s, "n%" PRIu64 " replay truncated a torn tail of %zu bytes", n->id,
               n->wal.len - off);
    n->wal.len = off;
    n->synced = off;
    if ((r = raft_start(n->r, &e)) < 0)
        fail(s, "n%" PRIu64 " raft_start: %s", n->id, e.msg);
    struct raft_status st;
    raft_get_status(n->r, &st);
    n->st = store_new(NULL);
    n->applied = 0;
    if (st.snapshot.index) {
        struct snapfile *f = snap_find(n, st.snapshot.index);
        if (!f)
            fail(s, "n%" PRIu64 " no snapshot file for %" PRIu64, n->id, st.snapshot.index);
        else if (store_snapshot_decode(n->st, f->data.data, f->data.len, 0, &e) < 0)
            fail(s, "n%" PRIu64 " store_snapshot_decode: %s", n->id, e.msg);
        n->applied = st.snapshot.index;
        check_hash(s, n, n->applied);
    }
    n->up = true;
    n->incarnation++;
    mirror(s, n);
    struct ev t = {.kind = EV_TICK,
                   .at = s->now + 1 + rnd_below(s, TICK_USEC),
                   .to = n->id,
                   .incarnation = n->incarnation};
    push(s, &t);
    tracef(s,
           "n%" PRIu64 " started: term %" PRIu64 " commit %" PRIu64 " last %" PRIu64
           " snapshot %" PRIu64,
           n->id, st.term, st.commit, st.last_index, st.snapshot.index);
}

static void node_crash(struct sim *s, struct node *n)
{
    if (!n->up)
        return;
    raft_free(n->r);
    n->r = NULL;
    store_free(n->st);
    n->st = NULL;
    n->up = false;
    n->n_pend = 0;
    disk_crash(s, n);
    mirror(s, n);
    s->res->crashes++;
    struct ev r = {
        .kind = EV_RESTART, .at = s->now + (1 + rnd_below(s, 50)) * TICK_USEC, .to = n->id};
    push(s, &r);
    tracef(s, "n%" PRIu64 " CRASHED (wal %zu bytes, %zu synced)", n->id, n->wal.len, n->synced);
}

static void node_create(struct sim *s, raft_id_t id, const struct raft_conf *conf, unsigned seedmix)
{
    struct node *n = &s->nodes[id];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->exists = true;
    raft_config_default(&n->cfg);
    n->cfg.id = id;
    n->cfg.seed = s->o.seed * 31 + id + seedmix;
    n->cfg.pre_vote = true;
    n->cfg.check_quorum = true;
    /* sometimes one entry per append: old-term entries then travel without the
     * new leader's entry behind them (the figure 8 schedule needs that) */
    n->cfg.max_msg_bytes = chance(s, 300) ? 1 : 1024 + rnd_below(s, 4096);
    n->cfg.max_inflight = 1 + (unsigned)rnd_below(s, 8);
    n->cfg.trace = raft_trace;
    n->cfg.trace_ud = s;
    if (conf) {
        struct raft_snapshot_meta m = {.index = 1, .term = 1, .conf = *conf};
        struct store *empty = store_new(NULL);
        struct sc_buf b = {0};
        store_snapshot_encode(empty, &b);
        store_free(empty);
        snap_write(n, &m, b.data, b.len);
        sc_buf_free(&b);
        n->synced = n->wal.len;
    }
    node_boot(s, n);
}

static void node_destroy(struct sim *s, struct node *n)
{
    if (n->up) {
        raft_free(n->r);
        store_free(n->st);
    }
    n->up = false;
    n->exists = false;
    mirror(s, n);
    sc_buf_free(&n->wal);
    snaps_gc(n, UINT64_MAX);
    free(n->snaps);
    free(n->pend);
    n->snaps = NULL, n->pend = NULL;
    n->n_snaps = n->cap_snaps = n->n_pend = n->cap_pend = 0;
}

static void send_msg(struct sim *s, struct node *n, const struct raft_msg *m)
{
    struct raft_msg copy = *m;
    if (m->type == RAFT_MSG_SNAP) {
        struct snapfile *f = snap_find(n, m->snap.index);
        if (!f) {
            fail(s, "n%" PRIu64 " sends snapshot %" PRIu64 " it has no file for", n->id,
                 m->snap.index);
            return;
        }
        copy.snap_data = f->data.data;
        copy.snap_len = f->data.len;
    }
    if (s->o.verbose) {
        struct sc_buf b = {0};
        raft_msg_format(m, &b);
        tracef(s, "send %.*s", (int)b.len, (char *)b.data);
        sc_buf_free(&b);
    }
    if (s->faults && chance(s, s->p_drop)) {
        tracef(s, "  dropped");
        return;
    }
    unsigned copies = s->faults && chance(s, s->p_dup) ? 2 : 1;
    for (unsigned k = 0; k < copies; k++) {
        struct ev e = {.kind = EV_MSG, .at = s->now + latency(s), .from = n->id, .to = m->to};
        raft_msg_encode(&copy, &e.frame);
        push(s, &e);
    }
}

/* Executes one update (the raft.h contract), with an optional crash inside. */
static bool process_ready(struct sim *s, struct node *n)
{
    if (!n->up || !raft_has_update(n->r))
        return false;
    struct raft_update u;
    raft_ready(n->r, &u);
    bool crash = s->faults && (n->crash_next || chance(s, s->p_midcrash));
    int crash_at = crash ? (int)rnd_below(s, 4) : -1;
    n->crash_next = false;

    /* 1. persist */
    if (u.snapshot)
        snap_write(n, u.snapshot, u.snap_data, u.snap_len);
    for (size_t i = 0; i < u.n_entries; i++)
        wal_put_entry(n, &u.entries[i]);
    if (u.hard_changed)
        wal_put_state(n, &u.hard);
    if (crash_at == 0) {
        tracef(s, "n%" PRIu64 " crashes while persisting", n->id);
        raft_advance(n->r, &u); /* only to release the update; the core is thrown away */
        node_crash(s, n);
        return true;
    }
    bool nosync = n->id == 1 && s->o.bug == SIM_BUG_NO_SYNC;
    if ((u.must_sync && !nosync) || (!nosync && chance(s, s->p_sync_anyway)))
        n->synced = n->wal.len;
    if (crash_at == 1) {
        tracef(s, "n%" PRIu64 " crashes before sending", n->id);
        raft_advance(n->r, &u);
        node_crash(s, n);
        return true;
    }
    /* 2. send */
    for (size_t i = 0; i < u.n_msgs; i++)
        send_msg(s, n, &u.msgs[i]);
    if (crash_at == 2) {
        tracef(s, "n%" PRIu64 " crashes before applying", n->id);
        raft_advance(n->r, &u);
        node_crash(s, n);
        return true;
    }
    /* 3. install, apply, reads */
    struct raft_status rs;
    raft_get_status(n->r, &rs);
    if (u.snapshot) {
        struct sc_error e = {0};
        store_free(n->st);
        n->st = store_new(NULL);
        if (store_snapshot_decode(n->st, u.snap_data, u.snap_len, 0, &e) < 0)
            fail(s, "n%" PRIu64 " installs an undecodable snapshot: %s", n->id, e.msg);
        n->applied = u.snapshot->index;
        check_hash(s, n, n->applied);
        s->res->snap_installs++;
        tracef(s, "n%" PRIu64 " installed snapshot %" PRIu64, n->id, n->applied);
    }
    for (size_t i = 0; i < u.n_committed; i++) {
        const struct raft_entry *ent = &u.committed[i];
        if (ent->index != n->applied + 1)
            fail(s, "n%" PRIu64 " applies %" PRIu64 ", expected %" PRIu64, n->id, ent->index,
                 n->applied + 1);
        if (ent->type == RAFT_ENTRY_NORMAL)
            apply_normal(s, n, ent);
        n->applied = ent->index;
        cl_note_applied(&s->cl, n->id, rs.term, ent->index, ent->term, ent->type, ent->data,
                        ent->len);
        check_hash(s, n, n->applied);
    }
    for (size_t i = 0; i < u.n_reads; i++) {
        const struct raft_read_state *rd = &u.reads[i];
        for (size_t k = 0; k < n->n_pend; k++) {
            if (n->pend[k].req != rd->ctx || n->pend[k].kind != PEND_READ_WAIT)
                continue;
            if (rd->failed) {
                pend_del(n, k);
                respond(s, n, rd->ctx, RESP_RETRY, 0, false);
            } else {
                n->pend[k].kind = PEND_READ_INDEX;
                n->pend[k].index = rd->index;
            }
            break;
        }
    }
    serve_ready_reads(s, n);
    if (crash_at == 3) {
        tracef(s, "n%" PRIu64 " crashes before advancing", n->id);
        raft_advance(n->r, &u);
        node_crash(s, n);
        return true;
    }
    /* leaders die right after committing: the schedules of thesis figure 3.7 */
    if (s->faults && u.n_committed && rs.role == RAFT_LEADER && chance(s, s->p_leader_crash))
        n->crash_next = true;
    raft_advance(n->r, &u);
    return true;
}

static void process_all(struct sim *s)
{
    for (int round = 0; round < 100; round++) {
        bool moved = false;
        for (raft_id_t id = 1; id <= SIM_MAX_ID; id++)
            if (s->nodes[id].exists && process_ready(s, &s->nodes[id]))
                moved = true;
        if (!moved)
            return;
    }
    fail(s, "updates did not settle in 100 rounds");
}

/* ---- client requests at a replica ------------------------------------------------------ */

static void handle_req(struct sim *s, struct ev *e)
{
    struct node *n = &s->nodes[e->to];
    if (!n->exists || !n->up) {
        if (n->exists || e->to < s->next_id) {
            /* connection refused: nothing happened, the client may retry at once */
            struct node dead = {.id = e->to};
            respond(s, &dead, e->req, RESP_RETRY, 0, false);
        }
        return;
    }
    const struct lin_op *op = &s->ops[s->reqs[e->req].op];
    tracef(s, "n%" PRIu64 " gets req %" PRIu64 " (op %zu kind %d key %u)", n->id, e->req,
           s->reqs[e->req].op, op->kind, op->key);
    if (op->kind == LIN_GET) {
        if (n->id == 1 && s->o.bug == SIM_BUG_STALE_READ) {
            serve_read(s, n, e->req);
            return;
        }
        int r = raft_read_index(n->r, e->req);
        if (r < 0) {
            respond(s, n, e->req, RESP_RETRY, 0, false);
            return;
        }
        pend_add(n, e->req, PEND_READ_WAIT, 0);
        return;
    }
    struct sc_buf b = {0};
    encode_write(op, e->req, &b);
    raft_index_t idx = 0;
    int r = raft_propose(n->r, b.data, b.len, &idx);
    sc_buf_free(&b);
    if (r < 0) {
        respond(s, n, e->req, RESP_RETRY, 0, false);
        return;
    }
    tracef(s, "n%" PRIu64 " proposed req %" PRIu64 " at %" PRIu64, n->id, e->req, idx);
    pend_add(n, e->req, PEND_WRITE, idx);
}

/* ---- clients ----------------------------------------------------------------------------- */

static raft_id_t random_node(struct sim *s)
{
    raft_id_t ids[SIM_MAX_ID];
    size_t k = 0;
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++)
        if (s->nodes[id].exists)
            ids[k++] = id;
    return k ? ids[rnd_below(s, k)] : 1;
}

static void client_send(struct sim *s, uint32_t ci)
{
    struct client *c = &s->clients[ci];
    s->reqs = sc_grow(s->reqs, &s->cap_reqs, s->n_reqs + 1, sizeof(*s->reqs));
    uint64_t req = s->n_reqs++;
    s->reqs[req] = (struct req){.client = ci, .op = c->op};
    c->req = req;
    raft_id_t to = c->guess ? c->guess : random_node(s);
    if (s->ops[c->op].kind == LIN_GET && chance(s, 300))
        to = random_node(s); /* ReadIndex through a follower */
    tracef(s, "client %u sends req %" PRIu64 " (op %zu) to n%" PRIu64, ci, req, c->op, to);
    if (chance(s, s->p_drop))
        return; /* lost on the way: the client times out */
    struct ev e = {.kind = EV_REQ, .at = s->now + latency(s), .to = to, .req = req};
    push(s, &e);
}

static void client_start(struct sim *s, uint32_t ci)
{
    struct client *c = &s->clients[ci];
    s->ops = sc_grow(s->ops, &s->cap_ops, s->n_ops + 1, sizeof(*s->ops));
    s->op_state = sc_grow(s->op_state, &s->cap_op_state, s->n_ops + 1, sizeof(*s->op_state));
    size_t oi = s->n_ops++;
    struct lin_op *op = &s->ops[oi];
    memset(op, 0, sizeof(*op));
    s->op_state[oi] = OP_PENDING;
    op->key = (uint32_t)rnd_below(s, s->n_keys);
    op->tag = oi;
    unsigned k = (unsigned)rnd_below(s, 100);
    op->kind = k < 35 ? LIN_PUT : k < 60 ? LIN_GET : k < 72 ? LIN_DEL : LIN_CAS;
    op->arg = (int64_t)oi + 1;
    if (op->kind == LIN_CAS)
        op->expect = chance(s, 700) ? c->seen[op->key] : (int64_t)rnd_below(s, oi + 1);
    op->call = ++s->lclock;
    c->busy = true;
    c->op = oi;
    c->deadline = s->now + OP_TIMEOUT;
    struct ev t = {.kind = EV_CLIENT, .at = c->deadline, .client = ci, .op = oi};
    push(s, &t);
    client_send(s, ci);
}

static void client_next(struct sim *s, uint32_t ci)
{
    struct ev t = {.kind = EV_CLIENT,
                   .at = s->now + 1000 + rnd_below(s, 3 * TICK_USEC),
                   .client = ci,
                   .op = UINT64_MAX};
    push(s, &t);
}

static void handle_client(struct sim *s, struct ev *e)
{
    struct client *c = &s->clients[e->client];
    if (e->op != UINT64_MAX) { /* the deadline of op */
        if (!c->busy || c->op != e->op)
            return;
        struct lin_op *op = &s->ops[c->op];
        if (op->kind == LIN_GET) {
            s->op_state[c->op] = OP_DROPPED; /* a read with no answer constrains nothing */
        } else {
            op->unknown = true;
            s->op_state[c->op] = OP_DONE;
            s->res->ops_unknown++;
        }
        tracef(s, "client %u op %zu timed out (%s)", e->client, c->op,
               op->kind == LIN_GET ? "dropped" : "outcome unknown");
        c->busy = false;
        c->guess = 0;
        client_next(s, e->client);
        return;
    }
    if (c->busy)
        return;
    if (!s->clients_on) {
        client_next(s, e->client);
        return;
    }
    client_start(s, e->client);
}

static void handle_resp(struct sim *s, struct ev *e)
{
    struct client *c = &s->clients[e->client];
    if (!c->busy || c->req != e->req)
        return; /* an answer to an earlier attempt */
    if (e->status == RESP_RETRY) {
        c->guess = e->hint && e->hint != e->from ? e->hint : random_node(s);
        tracef(s, "client %u: retry op %zu at n%" PRIu64, e->client, c->op, c->guess);
        /* nothing happened: the same op is sent again (its invocation stays) */
        client_send(s, e->client);
        return;
    }
    struct lin_op *op = &s->ops[c->op];
    op->ret = ++s->lclock;
    op->out_value = e->value;
    op->out_ok = e->ok;
    if (op->kind == LIN_GET || (op->kind == LIN_CAS && !e->ok))
        c->seen[op->key] = e->value;
    if (op->kind == LIN_PUT || (op->kind == LIN_CAS && e->ok))
        c->seen[op->key] = op->arg;
    s->op_state[c->op] = OP_DONE;
    c->guess = e->from;
    c->busy = false;
    tracef(s, "client %u op %zu done: value %" PRId64 " ok %d", e->client, c->op, e->value, e->ok);
    client_next(s, e->client);
}

/* ---- faults --------------------------------------------------------------------------------- */

static struct node *leader(struct sim *s)
{
    struct node *best = NULL;
    raft_term_t bt = 0;
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++) {
        struct node *n = &s->nodes[id];
        if (!n->exists || !n->up)
            continue;
        struct raft_status st;
        raft_get_status(n->r, &st);
        if (st.role == RAFT_LEADER && st.term >= bt)
            best = n, bt = st.term;
    }
    return best;
}

static void heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    s->partitioned = false;
    tracef(s, "network healed");
}

static void fault_partition(struct sim *s)
{
    raft_id_t ids[SIM_MAX_ID];
    size_t k = 0;
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++)
        if (s->nodes[id].exists)
            ids[k++] = id;
    if (k < 2)
        return;
    bool side[SIM_MAX_ID + 1] = {0};
    size_t n_minor = 1 + (size_t)rnd_below(s, k / 2);
    for (size_t i = 0; i < n_minor; i++)
        side[ids[rnd_below(s, k)]] = true;
    bool one_way = chance(s, 200);
    for (raft_id_t a = 1; a <= SIM_MAX_ID; a++)
        for (raft_id_t b = 1; b <= SIM_MAX_ID; b++)
            if (side[a] != side[b] && (!one_way || side[a]))
                s->cut[a][b] = true;
    s->partitioned = true;
    if (s->o.verbose) {
        char buf[64] = {0};
        for (raft_id_t a = 1; a <= SIM_MAX_ID; a++)
            if (side[a])
                snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " n%" PRIu64, a);
        tracef(s, "PARTITION%s:%s | rest", one_way ? " (one way, outgoing cut)" : "", buf);
    }
    struct ev h = {.kind = EV_HEAL, .at = s->now + (5 + rnd_below(s, 60)) * TICK_USEC};
    push(s, &h);
}

/* The leader and its status, when its configuration is not joint. */
static struct node *stable_leader(struct sim *s, struct raft_status *st)
{
    struct node *l = leader(s);
    if (!l)
        return NULL;
    raft_get_status(l->r, st);
    return st->conf.n_outgoing ? NULL : l;
}

static void fault_conf(struct sim *s)
{
    struct raft_status st;
    struct node *l = stable_leader(s, &st);
    if (!l)
        return;
    struct raft_conf_change cc = {.transition = RAFT_CC_AUTO};
    unsigned members = st.conf.n_voters + st.conf.n_learners;
    unsigned what = (unsigned)rnd_below(s, 4);
    raft_id_t created = 0;
    if (what == 0 && members < 7 && s->next_id <= SIM_MAX_ID) {
        created = s->next_id;
        cc.n = 1;
        cc.items[0] = (struct raft_cc_item){RAFT_CC_ADD_LEARNER, created};
    } else if (what == 1 && st.conf.n_learners) {
        cc.n = 1;
        cc.items[0] = (struct raft_cc_item){RAFT_CC_ADD_VOTER,
                                            st.conf.learners[rnd_below(s, st.conf.n_learners)]};
    } else if (what == 2 && st.conf.n_voters >= 4) {
        cc.n = 1;
        cc.items[0] =
            (struct raft_cc_item){RAFT_CC_REMOVE, st.conf.voters[rnd_below(s, st.conf.n_voters)]};
    } else if (what == 3 && st.conf.n_learners && st.conf.n_voters >= 3) {
        cc.transition = RAFT_CC_JOINT_IMPLICIT;
        cc.n = 2;
        cc.items[0] = (struct raft_cc_item){RAFT_CC_ADD_VOTER,
                                            st.conf.learners[rnd_below(s, st.conf.n_learners)]};
        cc.items[1] =
            (struct raft_cc_item){RAFT_CC_REMOVE, st.conf.voters[rnd_below(s, st.conf.n_voters)]};
    } else {
        return;
    }
    raft_index_t idx = 0;
    int r = raft_propose_conf_change(l->r, &cc, &idx);
    tracef(s, "n%" PRIu64 " proposes conf change %d (%u items: %d %" PRIu64 ") -> %d at %" PRIu64,
           l->id, what, cc.n, cc.items[0].type, cc.items[0].id, r, idx);
    if (r < 0)
        return;
    s->res->conf_changes++;
    for (unsigned i = 0; i < cc.n; i++)
        if (s->nodes[cc.items[i].id].exists)
            s->nodes[cc.items[i].id].conf_idx = idx;
    if (created) {
        s->next_id++;
        node_create(s, created, NULL, 0);
        s->nodes[created].conf_idx = idx;
    }
}

/* Shuts down members that the leader's applied configuration no longer has. */
static void decommission(struct sim *s)
{
    struct raft_status st;
    struct node *l = stable_leader(s, &st);
    if (!l)
        return;
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++) {
        struct node *n = &s->nodes[id];
        if (!n->exists || raft_conf_has(&st.conf, id) || st.applied < n->conf_idx || !n->conf_idx)
            continue;
        tracef(s, "n%" PRIu64 " decommissioned (not in the configuration of leader n%" PRIu64 ")",
               id, l->id);
        node_destroy(s, n);
    }
}

static void fault_compact(struct sim *s, struct node *n)
{
    struct raft_status st;
    raft_get_status(n->r, &st);
    if (st.applied != n->applied || st.applied <= st.snapshot.index)
        return;
    struct sc_buf b = {0};
    store_snapshot_encode(n->st, &b);
    struct sc_error e = {0};
    if (raft_compact(n->r, st.applied, &e) < 0) {
        sc_buf_free(&b);
        return;
    }
    raft_get_status(n->r, &st);
    snap_write(n, &st.snapshot, b.data, b.len);
    sc_buf_free(&b);
    n->synced = n->wal.len; /* the snapshot record is synced before segments go */
    tracef(s, "n%" PRIu64 " snapshot at %" PRIu64, n->id, st.snapshot.index);
    disk_rotate(s, n);
}

/* The leader proposes a store COMPACT command (as sctld's --auto-compact-retain
 * does) a few revisions back; a compaction at or below the current one is refused
 * by store_apply, identically everywhere. */
static void store_compaction(struct sim *s)
{
    struct node *l = leader(s);
    if (!l)
        return;
    rev_t rev = store_rev(l->st) - (rev_t)rnd_below(s, 6);
    struct store_cmd c = {.type = STORE_CMD_COMPACT, .compact_rev = rev < 1 ? 1 : rev};
    struct sc_buf b = {0};
    sc_buf_put_u64le(&b, UINT64_MAX); /* no client request */
    store_cmd_encode(&c, &b);
    raft_index_t idx = 0;
    int r = raft_propose(l->r, b.data, b.len, &idx);
    sc_buf_free(&b);
    tracef(s, "n%" PRIu64 " proposes store compaction at revision %lld -> %d at %" PRIu64, l->id,
           (long long)c.compact_rev, r, idx);
}

static void inject_faults(struct sim *s)
{
    if (!s->partitioned && chance(s, s->p_partition))
        fault_partition(s);
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++) {
        struct node *n = &s->nodes[id];
        if (!n->exists || !n->up)
            continue;
        bool nosync = id == 1 && s->o.bug == SIM_BUG_NO_SYNC;
        if (chance(s, nosync ? 30 : s->p_crash)) {
            if (chance(s, 500)) {
                n->crash_next = true; /* torn writes need a crash inside an update */
                continue;
            }
            node_crash(s, n);
            continue;
        }
        if (chance(s, s->p_compact))
            fault_compact(s, n);
        if (chance(s, s->p_campaign)) {
            tracef(s, "n%" PRIu64 " campaigns", id);
            raft_campaign(n->r);
        }
    }
    if (chance(s, s->p_conf))
        fault_conf(s);
    if (chance(s, s->p_store_compact))
        store_compaction(s);
    if (chance(s, s->p_transfer)) {
        struct node *l = leader(s);
        if (l) {
            raft_id_t to = random_node(s);
            tracef(s, "n%" PRIu64 " transfers leadership to n%" PRIu64, l->id, to);
            raft_transfer_leader(l->r, to);
        }
    }
}

/* ---- the event loop ----------------------------------------------------------------------- */

static void handle(struct sim *s, struct ev *e)
{
    s->res->events++;
    switch (e->kind) {
    case EV_TICK: {
        struct node *n = &s->nodes[e->to];
        if (!n->exists || !n->up || n->incarnation != e->incarnation)
            return;
        raft_tick(n->r);
        /* clock skew: each replica's tick period is within +-20% */
        e->at = s->now + TICK_USEC * 8 / 10 + rnd_below(s, TICK_USEC * 4 / 10);
        push(s, e);
        return;
    }
    case EV_MSG: {
        struct node *n = &s->nodes[e->to];
        bool cut = s->cut[e->from][e->to];
        struct raft_msg m;
        if (raft_msg_decode(e->frame.data, e->frame.len, &m) < 0) {
            fail(s, "undecodable frame");
            break;
        }
        if (s->o.verbose) {
            struct sc_buf b = {0};
            raft_msg_format(&m, &b);
            tracef(s, "recv %.*s%s", (int)b.len, (char *)b.data,
                   cut      ? " DROPPED (partition)"
                   : !n->up ? " DROPPED (down)"
                            : "");
            sc_buf_free(&b);
        }
        if (!cut && n->exists && n->up)
            raft_step(n->r, &m);
        raft_msg_done(&m);
        break;
    }
    case EV_REQ:
        handle_req(s, e);
        break;
    case EV_RESP:
        handle_resp(s, e);
        break;
    case EV_CLIENT:
        handle_client(s, e);
        break;
    case EV_RESTART: {
        struct node *n = &s->nodes[e->to];
        if (n->exists && !n->up) {
            tracef(s, "n%" PRIu64 " restarts", n->id);
            node_boot(s, n);
        }
        break;
    }
    case EV_HEAL:
        heal(s);
        break;
    }
    sc_buf_free(&e->frame);
}

static void draw_knobs(struct sim *s)
{
    /* per mille per event; zero for some seeds so that each fault is also seen alone */
    s->p_drop = chance(s, 800) ? (unsigned)rnd_below(s, 120) : 0;
    s->p_dup = chance(s, 600) ? (unsigned)rnd_below(s, 60) : 0;
    s->p_slow = chance(s, 700) ? (unsigned)rnd_below(s, 150) : 0;
    s->p_partition = chance(s, 700) ? (unsigned)rnd_below(s, 40) : 0;
    s->p_crash = chance(s, 700) ? (unsigned)rnd_below(s, 8) : 0;
    s->p_leader_crash = chance(s, 300) ? (unsigned)rnd_below(s, 200) : 0;
    if (chance(s, 150)) /* crash storms: leaders come and go within a few ticks */
        s->p_crash = 20 + (unsigned)rnd_below(s, 40);
    s->p_midcrash = chance(s, 500) ? (unsigned)rnd_below(s, 6) : 0;
    s->p_compact = chance(s, 800) ? (unsigned)rnd_below(s, 40) : 0;
    s->p_conf = chance(s, 600) ? (unsigned)rnd_below(s, 40) : 0;
    s->p_transfer = chance(s, 400) ? (unsigned)rnd_below(s, 15) : 0;
    s->p_campaign = chance(s, 400) ? (unsigned)rnd_below(s, 5) : 0;
    s->p_store_compact = chance(s, 500) ? (unsigned)rnd_below(s, 30) : 0;
    s->p_sync_anyway = (unsigned)rnd_below(s, 300);
    s->p_lose_unsynced = 300 + (unsigned)rnd_below(s, 701);
    s->n_keys = 1 + (unsigned)rnd_below(s, MAX_KEYS);
    s->n_clients = 1 + (unsigned)rnd_below(s, MAX_CLIENTS);
}

static void check_convergence(struct sim *s)
{
    struct node *l = leader(s);
    if (!l) {
        fail(s, "liveness: no leader after %d calm ticks", CALM_STEPS);
        return;
    }
    struct raft_status ls;
    raft_get_status(l->r, &ls);
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++) {
        struct node *n = &s->nodes[id];
        if (!n->exists || !raft_conf_has(&ls.conf, id))
            continue;
        if (!n->up || n->applied != l->applied)
            fail(s,
                 "liveness: n%" PRIu64 " applied %" PRIu64 ", leader n%" PRIu64 " %" PRIu64
                 " after %d calm ticks",
                 id, n->applied, l->id, l->applied, CALM_STEPS);
    }
}

static void check_history(struct sim *s)
{
    static const char *const kind_names[] = {"?", "put", "get", "del", "cas"};
    size_t n = 0;
    struct lin_op *h = xcalloc(s->n_ops ? s->n_ops : 1, sizeof(*h));
    for (size_t i = 0; i < s->n_ops; i++) {
        if (s->op_state[i] == OP_DROPPED)
            continue;
        if (s->op_state[i] == OP_PENDING) {
            if (s->ops[i].kind == LIN_GET)
                continue;
            s->ops[i].unknown = true;
            s->res->ops_unknown++;
        }
        h[n++] = s->ops[i];
    }
    s->res->ops = n;
    struct lin_report rep;
    lin_check(h, n, 0, &rep);
    s->res->lin_states = rep.states;
    s->res->lin_gave_up = rep.gave_up;
    if (!rep.ok) {
        fail(s, "linearizability: the history of key k%u has no linearization", rep.bad_key);
        if (s->o.verbose)
            for (size_t i = 0; i < n; i++)
                if (h[i].key == rep.bad_key)
                    printf("  op %" PRIu64 " %s call %" PRIu64 " ret %" PRIu64 "%s arg %" PRId64
                           " expect %" PRId64 " -> value %" PRId64 " ok %d\n",
                           h[i].tag, kind_names[h[i].kind], h[i].call, h[i].ret,
                           h[i].unknown ? " (unknown)" : "", h[i].arg, h[i].expect, h[i].out_value,
                           h[i].out_ok);
    }
    free(h);
}

void sim_run(const struct sim_opts *opts, struct sim_result *res)
{
    struct sim *s = xcalloc(1, sizeof(*s));
    memset(res, 0, sizeof(*res));
    s->o = *opts;
    s->res = res;
    s->rng = opts->seed ^ 0x5C0FFEE5EEDULL;
    cl_init(&s->cl, &s->violations, opts->seed);
    s->cl.n = SIM_MAX_ID;
    draw_knobs(s);
    unsigned n0 = chance(s, 700) ? 3 : 5;
    struct raft_conf conf = {0};
    for (unsigned i = 1; i <= n0; i++)
        conf.voters[conf.n_voters++] = i;
    s->next_id = n0 + 1;
    tracef(s,
           "seed %" PRIu64 ": %u replicas, %u clients, %u keys; per mille: drop %u dup %u slow "
           "%u partition %u crash %u midcrash %u compact %u conf %u transfer %u",
           opts->seed, n0, s->n_clients, s->n_keys, s->p_drop, s->p_dup, s->p_slow, s->p_partition,
           s->p_crash, s->p_midcrash, s->p_compact, s->p_conf, s->p_transfer);
    for (raft_id_t id = 1; id <= n0; id++)
        node_create(s, id, &conf, 0);
    s->faults = true;
    s->clients_on = true;
    for (uint32_t c = 0; c < s->n_clients; c++)
        client_next(s, c);

    unsigned total = opts->steps + CALM_STEPS;
    for (unsigned step = 0; step < total && !s->cl.violations; step++) {
        if (step < opts->steps && s->faults) {
            inject_faults(s);
            process_all(s);
            cl_check(&s->cl);
        }
        if (step == opts->steps) {
            /* calm phase: heal, restart everyone, no faults */
            s->faults = false;
            heal(s);
            for (raft_id_t id = 1; id <= SIM_MAX_ID; id++)
                if (s->nodes[id].exists && !s->nodes[id].up)
                    node_boot(s, &s->nodes[id]);
        }
        if (step == total - QUIET_STEPS)
            s->clients_on = false;
        decommission(s);
        usec_t end = (usec_t)(step + 1) * TICK_USEC;
        while (s->n_heap && s->heap[0].at <= end && !s->cl.violations) {
            struct ev e = pop(s);
            s->now = e.at;
            if (e.kind == EV_HEAL && !s->faults) {
                continue;
            }
            handle(s, &e);
            process_all(s);
            cl_check(&s->cl);
        }
        s->now = end;
        struct node *l = leader(s);
        if (l && s->o.verbose && step % 50 == 0)
            tracef(s, "step %u: leader n%" PRIu64, step, l->id);
    }
    if (!s->cl.violations)
        check_convergence(s);
    if (!s->cl.violations)
        check_history(s);
    for (size_t t = 0; t < s->cl.cap_terms; t++)
        res->leaders += s->cl.leader_of_term[t] != 0;

    res->failed = s->cl.violations > 0;
    if (res->failed) {
        const char *v = (const char *)s->violations.data;
        const char *nl = memchr(v, '\n', s->violations.len);
        int len = (int)(nl ? (size_t)(nl - v) : s->violations.len);
        snprintf(res->why, sizeof(res->why), "%.*s", len, v);
    }
    sc_buf_free(&s->violations);

    /* tear down */
    for (raft_id_t id = 1; id <= SIM_MAX_ID; id++)
        if (s->nodes[id].exists)
            node_destroy(s, &s->nodes[id]);
    while (s->n_heap) {
        struct ev e = pop(s);
        sc_buf_free(&e.frame);
    }
    free(s->heap);
    for (size_t i = 0; i < s->cl.cap_committed; i++)
        sc_buf_free(&s->cl.committed[i].data);
    free(s->cl.committed);
    free(s->cl.leader_of_term);
    free(s->ops);
    free(s->op_state);
    free(s->reqs);
    free(s->hash_at);
    free(s);
}
