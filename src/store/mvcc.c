/*
 * mvcc.c: cubestore's in-memory multi-version index (store.h).
 *
 * Design
 * ------
 * Keys live in a skip list ordered by bytes (struct key_ent).  Each key holds the
 * array of its revisions (struct rev_ent), oldest first; a delete appends a
 * tombstone.  Values are separate allocations that never move, so a reader may
 * borrow a pointer to one until compaction frees it.
 *
 * Every change appends (key, revision, sub) to the revision log, an array in
 * revision order: the history that watches replay.  A watch is an absolute
 * position in it.
 *
 * Invariants (checked by store_check() in tests):
 *  1. rev >= compact_rev >= 1; every rev_ent has compact-able order:
 *     revs[i].(mod_rev, sub) < revs[i+1].(mod_rev, sub).
 *  2. For each key, the newest entry decides whether it is live at the current
 *     revision; live_keys counts the live ones.
 *  3. A live key whose newest entry has lease L != 0 is in lease L's key array
 *     at index lease_slot, and nowhere else.  Leases exist only in `leases`.
 *  4. The revision log holds exactly one record per rev_ent with mod_rev >=
 *     compact_rev, in (mod_rev, sub) order; log_base counts records trimmed.
 *  5. After compact(c): for each key, entries with mod_rev >= c are kept, plus
 *     the newest entry below c if it is not a tombstone; a key with no entries is
 *     removed from the skip list.
 *
 * Transitions: store_apply() is the only function that changes state; it either
 * refuses a command before changing anything, or applies all of it.
 */
#include <assert.h>
#include <stdio.h>

#include "base/u64map.h"
#include "store/store.h"

#define SKIP_MAX_LEVEL 24

struct rev_ent {
    rev_t mod_rev;
    rev_t create_rev;
    int64_t version; /* 0 for a tombstone */
    int64_t lease;
    uint8_t *value;
    uint32_t value_len;
    uint32_t sub;
    bool tombstone;
};

struct key_ent {
    uint8_t *key;
    uint32_t key_len;
    uint32_t nrevs, cap;
    uint32_t lease_slot;
    struct rev_ent *revs;
    uint8_t level;
    struct key_ent *next[]; /* skip-list forward pointers, `level` of them */
};

struct lease {
    int64_t id, ttl_sec;
    usec_t deadline;
    struct key_ent **keys;
    size_t nkeys, cap;
};

struct log_rec {
    struct key_ent *k;
    rev_t rev;
    uint32_t sub;
};

struct store_watch {
    uint8_t *key;
    size_t key_len;
    bool prefix, prev_kv;
    rev_t start_rev; /* events below it are skipped (a watch may start in the future) */
    uint64_t pos;    /* absolute position in the revision log */
    struct store_watch *prev, *next;
};

struct store {
    struct store_limits limits;
    rev_t rev, compact_rev;
    struct key_ent *head; /* sentinel with SKIP_MAX_LEVEL pointers */
    int level;
    uint64_t rng;
    size_t live_keys, nkeys, bytes;
    struct u64map leases;
    struct log_rec *log;
    size_t log_start, log_len, log_cap; /* records log[log_start .. log_start+log_len) */
    uint64_t log_base;                  /* absolute position of log[log_start] */
    struct store_watch *watches;
    size_t nwatches;
};

/* ---- skip list ------------------------------------------------------------ */

static int keycmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, MIN(an, bn));
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static bool has_prefix(const struct key_ent *k, const uint8_t *p, size_t n)
{
    return k->key_len >= n && memcmp(k->key, p, n) == 0;
}

static int random_level(struct store *s)
{
    /* xorshift64: deterministic, so two replicas build the same shape. */
    int lvl = 1;
    while (lvl < SKIP_MAX_LEVEL) {
        s->rng ^= s->rng << 13;
        s->rng ^= s->rng >> 7;
        s->rng ^= s->rng << 17;
        if ((s->rng & 3) != 0)
            break;
        lvl++;
    }
    return lvl;
}

/* Fills update[] with the last node before key at each level; returns the first
 * node >= key (or NULL). */
static struct key_ent *skip_seek(const struct store *s, const uint8_t *key, size_t n,
                                 struct key_ent **update)
{
    struct key_ent *x = s->head;
    for (int i = s->level - 1; i >= 0; i--) {
        while (x->next[i] && keycmp(x->next[i]->key, x->next[i]->key_len, key, n) < 0)
            x = x->next[i];
        if (update)
            update[i] = x;
    }
    return x->next[0];
}

static struct key_ent *key_find(const struct store *s, const uint8_t *key, size_t n)
{
    struct key_ent *x = skip_seek(s, key, n, NULL);
    if (x && x->key_len == n && memcmp(x->key, key, n) == 0)
        return x;
    return NULL;
}

static struct key_ent *key_get_or_add(struct store *s, const uint8_t *key, size_t n)
{
    struct key_ent *update[SKIP_MAX_LEVEL];
    struct key_ent *x = skip_seek(s, key, n, update);
    if (x && x->key_len == n && memcmp(x->key, key, n) == 0)
        return x;
    int lvl = random_level(s);
    for (int i = s->level; i < lvl; i++)
        update[i] = s->head;
    if (lvl > s->level)
        s->level = lvl;
    x = xcalloc(1, sizeof(*x) + (size_t)lvl * sizeof(x->next[0]));
    x->key = xmemdup(key, n);
    x->key_len = (uint32_t)n;
    x->level = (uint8_t)lvl;
    for (int i = 0; i < lvl; i++) {
        x->next[i] = update[i]->next[i];
        update[i]->next[i] = x;
    }
    s->nkeys++;
    s->bytes += n + sizeof(*x);
    return x;
}

static void key_free(struct key_ent *k)
{
    for (uint32_t i = 0; i < k->nrevs; i++)
        free(k->revs[i].value);
    free(k->revs);
    free(k->key);
    free(k);
}

/* Unlinks k (found again by key) from the skip list and frees it. */
static void key_remove(struct store *s, struct key_ent *k)
{
    struct key_ent *update[SKIP_MAX_LEVEL];
    struct key_ent *x = skip_seek(s, k->key, k->key_len, update);
    assert(x == k);
    for (int i = 0; i < s->level; i++) {
        if (update[i]->next[i] != k)
            break;
        update[i]->next[i] = k->next[i];
    }
    while (s->level > 1 && !s->head->next[s->level - 1])
        s->level--;
    s->nkeys--;
    s->bytes -= k->key_len + sizeof(*k);
    key_free(k);
}

static struct rev_ent *key_latest(const struct key_ent *k)
{
    return k->nrevs ? &k->revs[k->nrevs - 1] : NULL;
}

static bool key_live(const struct key_ent *k)
{
    const struct rev_ent *r = key_latest(k);
    return r && !r->tombstone;
}

/* The entry visible at revision rev (NULL if absent or deleted then). */
static const struct rev_ent *key_at(const struct key_ent *k, rev_t rev)
{
    /* Binary search for the last entry with mod_rev <= rev. */
    uint32_t lo = 0, hi = k->nrevs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (k->revs[mid].mod_rev <= rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct rev_ent *r = &k->revs[lo - 1];
    return r->tombstone ? NULL : r;
}

static void kv_fill(struct store_kv *kv, const struct key_ent *k, const struct rev_ent *r,
                    bool keys_only)
{
    *kv = (struct store_kv){
        .key = k->key,
        .key_len = k->key_len,
        .value = keys_only ? NULL : r->value,
        .value_len = keys_only ? 0 : r->value_len,
        .create_rev = r->create_rev,
        .mod_rev = r->mod_rev,
        .version = r->version,
        .lease = r->lease,
    };
}

/* ---- revision log ---------------------------------------------------------- */

static void log_push(struct store *s, struct key_ent *k, rev_t rev, uint32_t sub)
{
    if (s->log_start + s->log_len == s->log_cap && s->log_start > s->log_len) {
        memmove(s->log, s->log + s->log_start, s->log_len * sizeof(*s->log));
        s->log_start = 0;
    }
    s->log = sc_grow(s->log, &s->log_cap, s->log_start + s->log_len + 1, sizeof(*s->log));
    s->log[s->log_start + s->log_len++] = (struct log_rec){k, rev, sub};
}

/* First absolute log position whose revision is >= rev. */
static uint64_t log_seek(const struct store *s, rev_t rev)
{
    size_t lo = 0, hi = s->log_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->log[s->log_start + mid].rev < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return s->log_base + lo;
}

/* ---- leases --------------------------------------------------------------- */

static void lease_attach(struct store *s, struct key_ent *k, int64_t id)
{
    struct lease *l = u64map_get(&s->leases, (uint64_t)id);
    assert(l);
    l->keys = sc_grow(l->keys, &l->cap, l->nkeys + 1, sizeof(*l->keys));
    k->lease_slot = (uint32_t)l->nkeys;
    l->keys[l->nkeys++] = k;
}

static void lease_detach(struct store *s, struct key_ent *k, int64_t id)
{
    struct lease *l = u64map_get(&s->leases, (uint64_t)id);
    if (!l)
        return;
    assert(k->lease_slot < l->nkeys && l->keys[k->lease_slot] == k);
    struct key_ent *last = l->keys[--l->nkeys];
    l->keys[k->lease_slot] = last;
    last->lease_slot = k->lease_slot;
}

static void lease_free(struct lease *l)
{
    if (!l)
        return;
    free(l->keys);
    free(l);
}

/* ---- life ------------------------------------------------------------------ */

struct store *store_new(const struct store_limits *l)
{
    struct store *s = xcalloc(1, sizeof(*s));
    if (l)
        s->limits = *l;
    else
        store_limits_default(&s->limits);
    s->rev = 1;
    s->compact_rev = 1;
    s->head = xcalloc(1, sizeof(*s->head) + SKIP_MAX_LEVEL * sizeof(s->head->next[0]));
    s->level = 1;
    s->rng = 0x9E3779B97F4A7C15ULL;
    return s;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    struct key_ent *k = s->head->next[0];
    while (k) {
        struct key_ent *n = k->next[0];
        key_free(k);
        k = n;
    }
    free(s->head);
    uint64_t id;
    void *v;
    for (size_t i = 0; u64map_next(&s->leases, &i, &id, &v);)
        lease_free(v);
    u64map_done(&s->leases);
    free(s->log);
    while (s->watches)
        store_watch_close(s, s->watches);
    free(s);
}

rev_t store_rev(const struct store *s)
{
    return s->rev;
}
rev_t store_compact_rev(const struct store *s)
{
    return s->compact_rev;
}
size_t store_key_count(const struct store *s)
{
    return s->live_keys;
}
size_t store_bytes(const struct store *s)
{
    return s->bytes;
}
size_t store_lease_count(const struct store *s)
{
    return s->leases.len;
}
size_t store_watch_count(const struct store *s)
{
    return s->nwatches;
}
const struct store_limits *store_get_limits(const struct store *s)
{
    return &s->limits;
}

/* ---- results --------------------------------------------------------------- */

static struct store_kv *res_push(struct store_op_result *r, size_t *cap)
{
    r->kvs = sc_grow(r->kvs, cap, r->nkvs + 1, sizeof(*r->kvs));
    return &r->kvs[r->nkvs++];
}

void store_result_done(struct store_result *r)
{
    for (size_t i = 0; i < r->nops; i++)
        free(r->ops[i].kvs);
    free(r->ops);
    r->ops = NULL;
    r->nops = 0;
}

/* ---- reads ----------------------------------------------------------------- */

static int range(const struct store *s, const struct store_op *op, rev_t at,
                 struct store_op_result *res)
{
    size_t cap = 0;
    res->type = STORE_OP_GET;
    if (!op->prefix) {
        const struct key_ent *k = key_find(s, op->key, op->key_len);
        const struct rev_ent *r = k ? key_at(k, at) : NULL;
        if (r) {
            res->count = 1;
            if (!op->count_only)
                kv_fill(res_push(res, &cap), k, r, op->keys_only);
        }
        return 0;
    }
    for (struct key_ent *k = skip_seek(s, op->key, op->key_len, NULL);
         k && has_prefix(k, op->key, op->key_len); k = k->next[0]) {
        const struct rev_ent *r = key_at(k, at);
        if (!r)
            continue;
        res->count++;
        if (op->count_only)
            continue;
        if (op->limit > 0 && (int64_t)res->nkvs >= op->limit) {
            res->more = true;
            continue;
        }
        kv_fill(res_push(res, &cap), k, r, op->keys_only);
    }
    return 0;
}

int store_read(struct store *s, const struct store_op *op, struct store_op_result *res,
               struct sc_error *e)
{
    *res = (struct store_op_result){0};
    if (op->type != STORE_OP_GET)
        return sc_error_set(e, -SC_E_INVALID, "type", "a read must be a get");
    rev_t at = op->rev ? op->rev : s->rev;
    if (at < s->compact_rev)
        return sc_error_set(e, -SC_E_COMPACTED, "revision",
                            "revision %lld is compacted; the oldest readable is %lld",
                            (long long)at, (long long)s->compact_rev);
    if (at > s->rev)
        return sc_error_set(e, -SC_E_FUTURE_REV, "revision",
                            "revision %lld is newer than the store's %lld", (long long)at,
                            (long long)s->rev);
    return range(s, op, at, res);
}

/* ---- writes ---------------------------------------------------------------- */

struct txn_ctx {
    struct store *s;
    rev_t rev;    /* the revision this command writes at */
    uint32_t sub; /* changes so far */
};

static void add_rev(struct txn_ctx *t, struct key_ent *k, struct rev_ent *ne)
{
    ne->mod_rev = t->rev;
    ne->sub = t->sub++;
    if (k->nrevs == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 2;
        k->revs = xrealloc(k->revs, k->cap * sizeof(*k->revs));
    }
    k->revs[k->nrevs++] = *ne;
    t->s->bytes += sizeof(*ne) + ne->value_len;
    log_push(t->s, k, ne->mod_rev, ne->sub);
}

static void do_put(struct txn_ctx *t, const struct store_op *op, struct store_op_result *res)
{
    struct store *s = t->s;
    struct key_ent *k = key_get_or_add(s, op->key, op->key_len);
    struct rev_ent *prev = key_latest(k);
    bool was_live = prev && !prev->tombstone;
    size_t cap = 0;
    res->type = STORE_OP_PUT;
    if (was_live && op->prev_kv)
        kv_fill(res_push(res, &cap), k, prev, false);
    if (was_live && prev->lease)
        lease_detach(s, k, prev->lease);
    struct rev_ent ne = {
        .create_rev = was_live ? prev->create_rev : t->rev,
        .version = was_live ? prev->version + 1 : 1,
        .lease = op->lease,
        .value = xmemdup(op->value, op->value_len),
        .value_len = (uint32_t)op->value_len,
    };
    add_rev(t, k, &ne);
    if (!was_live)
        s->live_keys++;
    if (op->lease)
        lease_attach(s, k, op->lease);
}

static void delete_key(struct txn_ctx *t, struct key_ent *k, bool prev_kv,
                       struct store_op_result *res, size_t *cap)
{
    struct rev_ent *prev = key_latest(k);
    if (prev_kv)
        kv_fill(res_push(res, cap), k, prev, false);
    if (prev->lease)
        lease_detach(t->s, k, prev->lease);
    struct rev_ent ne = {.tombstone = true};
    add_rev(t, k, &ne);
    t->s->live_keys--;
    res->count++;
}

static void do_delete(struct txn_ctx *t, const struct store_op *op, struct store_op_result *res)
{
    size_t cap = 0;
    res->type = STORE_OP_DELETE;
    if (!op->prefix) {
        struct key_ent *k = key_find(t->s, op->key, op->key_len);
        if (k && key_live(k))
            delete_key(t, k, op->prev_kv, res, &cap);
        return;
    }
    for (struct key_ent *k = skip_seek(t->s, op->key, op->key_len, NULL);
         k && has_prefix(k, op->key, op->key_len); k = k->next[0])
        if (key_live(k))
            delete_key(t, k, op->prev_kv, res, &cap);
}

static bool cmp_holds(const struct store *s, const struct store_cmp *c)
{
    const struct key_ent *k = key_find(s, c->key, c->key_len);
    const struct rev_ent *r = k && key_live(k) ? key_latest(k) : NULL;
    int d;
    if (c->target == STORE_CMP_VALUE) {
        const uint8_t *v = r ? r->value : (const uint8_t *)"";
        size_t n = r ? r->value_len : 0;
        d = keycmp(v, n, c->value, c->value_len);
    } else {
        int64_t have = 0;
        if (r) {
            switch (c->target) {
            case STORE_CMP_VERSION:
                have = r->version;
                break;
            case STORE_CMP_CREATE:
                have = r->create_rev;
                break;
            case STORE_CMP_MOD:
                have = r->mod_rev;
                break;
            case STORE_CMP_LEASE:
                have = r->lease;
                break;
            default:
                return false;
            }
        }
        d = have < c->num ? -1 : have > c->num;
    }
    switch (c->op) {
    case STORE_CMP_EQ:
        return d == 0;
    case STORE_CMP_NE:
        return d != 0;
    case STORE_CMP_LT:
        return d < 0;
    case STORE_CMP_GT:
        return d > 0;
    }
    return false;
}

static int apply_txn(struct store *s, const struct store_cmd *c, struct store_result *res,
                     struct sc_error *e)
{
    bool ok = true;
    for (size_t i = 0; i < c->ncmps && ok; i++)
        ok = cmp_holds(s, &c->cmps[i]);
    const struct store_op *ops = ok ? c->success : c->failure;
    size_t nops = ok ? c->nsuccess : c->nfailure;

    /* Refuse before changing anything: every lease must exist, every read be
     * at a readable revision. */
    for (size_t i = 0; i < nops; i++) {
        const struct store_op *op = &ops[i];
        if (op->type == STORE_OP_PUT && op->lease && !u64map_get(&s->leases, (uint64_t)op->lease))
            return sc_error_set(e, -SC_E_LEASE_NOT_FOUND, "lease", "lease %lld does not exist",
                                (long long)op->lease);
        if (op->type == STORE_OP_GET && op->rev && (op->rev < s->compact_rev || op->rev > s->rev))
            return sc_error_set(e, op->rev < s->compact_rev ? -SC_E_COMPACTED : -SC_E_FUTURE_REV,
                                "revision",
                                "revision %lld is not readable (compacted %lld, current %lld)",
                                (long long)op->rev, (long long)s->compact_rev, (long long)s->rev);
        if (op->type < STORE_OP_GET || op->type > STORE_OP_DELETE)
            return sc_error_set(e, -SC_E_INVALID, "type", "unknown operation");
    }

    struct txn_ctx t = {.s = s, .rev = s->rev + 1};
    res->succeeded = ok;
    res->ops = nops ? xcalloc(nops, sizeof(*res->ops)) : NULL;
    res->nops = nops;
    for (size_t i = 0; i < nops; i++) {
        const struct store_op *op = &ops[i];
        switch (op->type) {
        case STORE_OP_PUT:
            do_put(&t, op, &res->ops[i]);
            break;
        case STORE_OP_DELETE:
            do_delete(&t, op, &res->ops[i]);
            break;
        case STORE_OP_GET:
            /* Sees earlier writes of this txn: they are already in the index. */
            range(s, op, op->rev ? op->rev : t.rev, &res->ops[i]);
            break;
        }
    }
    if (t.sub > 0)
        s->rev = t.rev;
    return 0;
}

static int apply_revoke(struct store *s, int64_t id, struct store_result *res, struct sc_error *e)
{
    struct lease *l = u64map_del(&s->leases, (uint64_t)id);
    if (!l)
        return sc_error_set(e, -SC_E_LEASE_NOT_FOUND, "id", "lease %lld does not exist",
                            (long long)id);
    struct txn_ctx t = {.s = s, .rev = s->rev + 1};
    /* Delete in key order so that every replica logs the same sub order. */
    struct key_ent **keys = l->keys;
    for (size_t i = 1; i < l->nkeys; i++) {
        struct key_ent *x = keys[i];
        size_t j = i;
        for (; j > 0 && keycmp(keys[j - 1]->key, keys[j - 1]->key_len, x->key, x->key_len) > 0; j--)
            keys[j] = keys[j - 1];
        keys[j] = x;
    }
    for (size_t i = 0; i < l->nkeys; i++) {
        struct rev_ent ne = {.tombstone = true};
        add_rev(&t, keys[i], &ne);
        s->live_keys--;
    }
    if (t.sub > 0)
        s->rev = t.rev;
    res->lease_id = id;
    lease_free(l);
    return 0;
}

static void apply_compact(struct store *s, rev_t c)
{
    struct key_ent *k = s->head->next[0];
    while (k) {
        struct key_ent *next = k->next[0];
        /* j = number of entries below c; keep revs[j-1] if it is a value. */
        uint32_t j = 0;
        while (j < k->nrevs && k->revs[j].mod_rev < c)
            j++;
        uint32_t from = j;
        if (j > 0 && !k->revs[j - 1].tombstone)
            from = j - 1;
        for (uint32_t i = 0; i < from; i++) {
            s->bytes -= sizeof(k->revs[i]) + k->revs[i].value_len;
            free(k->revs[i].value);
        }
        if (from > 0) {
            memmove(k->revs, k->revs + from, (k->nrevs - from) * sizeof(*k->revs));
            k->nrevs -= from;
        }
        if (k->nrevs == 0)
            key_remove(s, k);
        k = next;
    }
    /* Trim the revision log below c. */
    size_t drop = 0;
    while (drop < s->log_len && s->log[s->log_start + drop].rev < c)
        drop++;
    s->log_start += drop;
    s->log_len -= drop;
    s->log_base += drop;
    if (s->log_len == 0)
        s->log_start = 0;
    s->compact_rev = c;
}

int store_apply(struct store *s, const struct store_cmd *c, usec_t now, struct store_result *res,
                struct sc_error *e)
{
    *res = (struct store_result){0};
    int r = 0;
    switch (c->type) {
    case STORE_CMD_TXN:
        r = apply_txn(s, c, res, e);
        break;
    case STORE_CMD_LEASE_GRANT:
        if (c->lease_id <= 0 || c->ttl_sec <= 0)
            return sc_error_set(e, -SC_E_INVALID, "ttl", "lease id and ttl must be positive");
        if (u64map_get(&s->leases, (uint64_t)c->lease_id))
            return sc_error_set(e, -SC_E_LEASE_EXISTS, "id", "lease %lld already exists",
                                (long long)c->lease_id);
        struct lease *l = xcalloc(1, sizeof(*l));
        l->id = c->lease_id;
        l->ttl_sec = c->ttl_sec;
        l->deadline = now + (usec_t)c->ttl_sec * USEC_PER_SEC;
        u64map_put(&s->leases, (uint64_t)l->id, l);
        res->lease_id = l->id;
        res->ttl_sec = l->ttl_sec;
        break;
    case STORE_CMD_LEASE_REVOKE:
        r = apply_revoke(s, c->lease_id, res, e);
        break;
    case STORE_CMD_COMPACT:
        if (c->compact_rev <= s->compact_rev)
            return sc_error_set(e, -SC_E_COMPACTED, "revision",
                                "revision %lld is already compacted (compacted up to %lld)",
                                (long long)c->compact_rev, (long long)s->compact_rev);
        if (c->compact_rev > s->rev)
            return sc_error_set(e, -SC_E_FUTURE_REV, "revision",
                                "cannot compact to %lld: the store is at %lld",
                                (long long)c->compact_rev, (long long)s->rev);
        apply_compact(s, c->compact_rev);
        break;
    default:
        return sc_error_set(e, -SC_E_INVALID, "type", "unknown command type %d", (int)c->type);
    }
    res->rev = s->rev;
    return r;
}

/* ---- lease deadlines ---------------------------------------------------------- */

bool store_lease_exists(const struct store *s, int64_t id)
{
    return id > 0 && u64map_get(&s->leases, (uint64_t)id) != NULL;
}

int store_lease_keepalive(struct store *s, int64_t id, usec_t now, int64_t *ret_ttl)
{
    struct lease *l = id > 0 ? u64map_get(&s->leases, (uint64_t)id) : NULL;
    if (!l)
        return -SC_E_LEASE_NOT_FOUND;
    l->deadline = now + (usec_t)l->ttl_sec * USEC_PER_SEC;
    if (ret_ttl)
        *ret_ttl = l->ttl_sec;
    return 0;
}

int store_lease_info(const struct store *s, int64_t id, usec_t now, int64_t *ret_left,
                     int64_t *ret_ttl)
{
    const struct lease *l = id > 0 ? u64map_get(&s->leases, (uint64_t)id) : NULL;
    if (!l)
        return -SC_E_LEASE_NOT_FOUND;
    if (ret_left)
        *ret_left = l->deadline > now
                        ? (int64_t)((l->deadline - now + USEC_PER_SEC - 1) / USEC_PER_SEC)
                        : 0;
    if (ret_ttl)
        *ret_ttl = l->ttl_sec;
    return 0;
}

void store_lease_refresh_all(struct store *s, usec_t now)
{
    uint64_t id;
    void *v;
    for (size_t i = 0; u64map_next(&s->leases, &i, &id, &v);) {
        struct lease *l = v;
        l->deadline = now + (usec_t)l->ttl_sec * USEC_PER_SEC;
    }
}

size_t store_lease_expired(const struct store *s, usec_t now, int64_t *ids, size_t max)
{
    size_t n = 0;
    uint64_t id;
    void *v;
    for (size_t i = 0; n < max && u64map_next(&s->leases, &i, &id, &v);)
        if (((struct lease *)v)->deadline <= now)
            ids[n++] = (int64_t)id;
    return n;
}

/* ---- watch ----------------------------------------------------------------- */

int store_watch_open(struct store *s, const uint8_t *key, size_t key_len, bool prefix,
                     rev_t start_rev, bool prev_kv, struct store_watch **ret, struct sc_error *e)
{
    if (key_len > s->limits.max_key_bytes)
        return sc_error_set(e, -SC_E_KEY_TOO_LARGE, "key", "key is %zu bytes, the limit is %zu",
                            key_len, s->limits.max_key_bytes);
    if (key_len == 0 && !prefix)
        return sc_error_set(e, -SC_E_INVALID, "key", "key must not be empty");
    if (start_rev < 0)
        return sc_error_set(e, -SC_E_INVALID, "rev", "revision must not be negative");
    if (start_rev > 0 && start_rev < s->compact_rev)
        return sc_error_set(e, -SC_E_COMPACTED, "rev",
                            "revision %lld is compacted; watch from %lld or later",
                            (long long)start_rev, (long long)s->compact_rev);
    struct store_watch *w = xcalloc(1, sizeof(*w));
    w->key = xmemdup(key, key_len);
    w->key_len = key_len;
    w->prefix = prefix;
    w->prev_kv = prev_kv;
    w->start_rev = start_rev;
    w->pos = start_rev > 0 ? log_seek(s, start_rev) : s->log_base + s->log_len;
    w->next = s->watches;
    if (s->watches)
        s->watches->prev = w;
    s->watches = w;
    s->nwatches++;
    *ret = w;
    return 0;
}

static bool watch_matches(const struct store_watch *w, const struct key_ent *k)
{
    if (w->prefix)
        return has_prefix(k, w->key, w->key_len);
    return k->key_len == w->key_len && memcmp(k->key, w->key, w->key_len) == 0;
}

/* The index of the entry (rev, sub) in k->revs. */
static uint32_t key_find_rev(const struct key_ent *k, rev_t rev, uint32_t sub)
{
    uint32_t lo = 0, hi = k->nrevs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct rev_ent *r = &k->revs[mid];
        if (r->mod_rev < rev || (r->mod_rev == rev && r->sub < sub))
            lo = mid + 1;
        else
            hi = mid;
    }
    assert(lo < k->nrevs && k->revs[lo].mod_rev == rev && k->revs[lo].sub == sub);
    return lo;
}

int store_watch_next(struct store *s, struct store_watch *w, struct store_event *ev)
{
    if (w->pos < s->log_base)
        return -SC_E_COMPACTED;
    uint64_t end = s->log_base + s->log_len;
    while (w->pos < end) {
        const struct log_rec *lr = &s->log[s->log_start + (w->pos - s->log_base)];
        w->pos++;
        if (lr->rev < w->start_rev || !watch_matches(w, lr->k))
            continue;
        uint32_t i = key_find_rev(lr->k, lr->rev, lr->sub);
        const struct rev_ent *r = &lr->k->revs[i];
        *ev = (struct store_event){.pos = w->pos - 1};
        if (r->tombstone) {
            ev->type = STORE_EVENT_DELETE;
            ev->kv = (struct store_kv){
                .key = lr->k->key, .key_len = lr->k->key_len, .mod_rev = r->mod_rev};
        } else {
            ev->type = STORE_EVENT_PUT;
            kv_fill(&ev->kv, lr->k, r, false);
        }
        if (w->prev_kv && i > 0 && !lr->k->revs[i - 1].tombstone) {
            kv_fill(&ev->prev, lr->k, &lr->k->revs[i - 1], false);
            ev->has_prev = true;
        }
        return 1;
    }
    return 0;
}

rev_t store_watch_next_rev(const struct store *s, const struct store_watch *w)
{
    rev_t next = s->rev + 1;
    if (w->pos >= s->log_base && w->pos < s->log_base + s->log_len)
        next = s->log[s->log_start + (w->pos - s->log_base)].rev;
    return MAX(next, w->start_rev);
}

bool store_watch_caught_up(const struct store *s, const struct store_watch *w)
{
    return w->pos >= s->log_base + s->log_len;
}

void store_watch_close(struct store *s, struct store_watch *w)
{
    if (!w)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    s->nwatches--;
    free(w->key);
    free(w);
}

bool store_watch_at_boundary(const struct store *s, const struct store_watch *w)
{
    if (w->pos <= s->log_base || w->pos >= s->log_base + s->log_len)
        return true;
    size_t i = s->log_start + (w->pos - s->log_base);
    return s->log[i].rev != s->log[i - 1].rev;
}

/* ---- snapshots ------------------------------------------------------------- */

#define SNAP_MAGIC   0x4e534353u /* "SCSN" */
#define SNAP_VERSION 1

void store_snapshot_encode(const struct store *s, struct sc_buf *b)
{
    sc_buf_put_u32le(b, SNAP_MAGIC);
    sc_buf_put_u8(b, SNAP_VERSION);
    sc_buf_put_svarint(b, s->rev);
    sc_buf_put_svarint(b, s->compact_rev);
    sc_buf_put_uvarint(b, s->nkeys);
    for (const struct key_ent *k = s->head->next[0]; k; k = k->next[0]) {
        sc_buf_put_bytes(b, k->key, k->key_len);
        sc_buf_put_uvarint(b, k->nrevs);
        for (uint32_t i = 0; i < k->nrevs; i++) {
            const struct rev_ent *r = &k->revs[i];
            sc_buf_put_svarint(b, r->mod_rev);
            sc_buf_put_uvarint(b, r->sub);
            sc_buf_put_u8(b, r->tombstone);
            if (r->tombstone)
                continue;
            sc_buf_put_svarint(b, r->create_rev);
            sc_buf_put_svarint(b, r->version);
            sc_buf_put_svarint(b, r->lease);
            sc_buf_put_bytes(b, r->value, r->value_len);
        }
    }
    sc_buf_put_uvarint(b, s->leases.len);
    uint64_t id;
    void *v;
    for (size_t i = 0; u64map_next(&s->leases, &i, &id, &v);) {
        sc_buf_put_svarint(b, (int64_t)id);
        sc_buf_put_svarint(b, ((struct lease *)v)->ttl_sec);
    }
}

static int log_rec_cmp(const void *a, const void *b)
{
    const struct log_rec *x = a, *y = b;
    if (x->rev != y->rev)
        return x->rev < y->rev ? -1 : 1;
    return x->sub < y->sub ? -1 : x->sub > y->sub;
}

#define SNAP_CORRUPT(what)                                                                         \
    sc_error_set(e, -SC_E_CORRUPT, "snapshot", "snapshot is corrupt: %s at byte %zu", what,        \
                 (size_t)(r.p - data))

int store_snapshot_decode(struct store *s, const uint8_t *data, size_t len, usec_t now,
                          struct sc_error *e)
{
    assert(s->nkeys == 0 && s->rev == 1);
    struct sc_rd r = sc_rd_make(data, len);
    uint32_t magic;
    uint8_t ver;
    int64_t rev, crev;
    uint64_t nkeys;
    if (sc_rd_u32le(&r, &magic) < 0 || magic != SNAP_MAGIC || sc_rd_u8(&r, &ver) < 0 ||
        ver != SNAP_VERSION)
        return SNAP_CORRUPT("bad magic or version");
    if (sc_rd_svarint(&r, &rev) < 0 || sc_rd_svarint(&r, &crev) < 0 || crev < 1 || rev < crev ||
        sc_rd_uvarint(&r, &nkeys) < 0 || nkeys > sc_rd_left(&r))
        return SNAP_CORRUPT("bad header");
    s->rev = rev;
    s->compact_rev = crev;
    const uint8_t *prev_key = NULL;
    size_t prev_len = 0;
    for (uint64_t i = 0; i < nkeys; i++) {
        const uint8_t *key;
        size_t klen;
        uint64_t nrevs;
        if (sc_rd_bytes(&r, &key, &klen, s->limits.max_key_bytes) < 0 || klen == 0 ||
            sc_rd_uvarint(&r, &nrevs) < 0 || nrevs == 0 || nrevs > sc_rd_left(&r) ||
            nrevs > UINT32_MAX / 2)
            return SNAP_CORRUPT("bad key");
        if (prev_key && keycmp(prev_key, prev_len, key, klen) >= 0)
            return SNAP_CORRUPT("keys out of order");
        prev_key = key;
        prev_len = klen;
        struct key_ent *k = key_get_or_add(s, key, klen);
        k->cap = (uint32_t)nrevs;
        k->revs = xcalloc((size_t)nrevs, sizeof(*k->revs));
        for (uint64_t j = 0; j < nrevs; j++) {
            struct rev_ent *re = &k->revs[j];
            uint64_t sub;
            uint8_t tomb;
            if (sc_rd_svarint(&r, &re->mod_rev) < 0 || sc_rd_uvarint(&r, &sub) < 0 ||
                sub > UINT32_MAX || sc_rd_u8(&r, &tomb) < 0 || tomb > 1 || re->mod_rev < 1 ||
                re->mod_rev > rev)
                return SNAP_CORRUPT("bad revision");
            re->sub = (uint32_t)sub;
            re->tombstone = tomb;
            if (j > 0 &&
                log_rec_cmp(&(struct log_rec){NULL, k->revs[j - 1].mod_rev, k->revs[j - 1].sub},
                            &(struct log_rec){NULL, re->mod_rev, re->sub}) >= 0)
                return SNAP_CORRUPT("revisions out of order");
            k->nrevs++;
            if (!tomb) {
                const uint8_t *val;
                size_t vlen;
                if (sc_rd_svarint(&r, &re->create_rev) < 0 || sc_rd_svarint(&r, &re->version) < 0 ||
                    sc_rd_svarint(&r, &re->lease) < 0 ||
                    sc_rd_bytes(&r, &val, &vlen, s->limits.max_value_bytes) < 0 || re->lease < 0 ||
                    re->version < 1)
                    return SNAP_CORRUPT("bad value");
                re->value = xmemdup(val, vlen);
                re->value_len = (uint32_t)vlen;
            }
            s->bytes += sizeof(*re) + re->value_len;
            if (re->mod_rev >= crev)
                log_push(s, k, re->mod_rev, re->sub);
        }
        if (key_live(k))
            s->live_keys++;
    }
    uint64_t nleases;
    if (sc_rd_uvarint(&r, &nleases) < 0 || nleases > sc_rd_left(&r))
        return SNAP_CORRUPT("bad lease count");
    for (uint64_t i = 0; i < nleases; i++) {
        int64_t id, ttl;
        if (sc_rd_svarint(&r, &id) < 0 || sc_rd_svarint(&r, &ttl) < 0 || id <= 0 || ttl <= 0 ||
            u64map_get(&s->leases, (uint64_t)id))
            return SNAP_CORRUPT("bad lease");
        struct lease *l = xcalloc(1, sizeof(*l));
        l->id = id;
        l->ttl_sec = ttl;
        l->deadline = now + (usec_t)ttl * USEC_PER_SEC;
        u64map_put(&s->leases, (uint64_t)id, l);
    }
    if (sc_rd_left(&r) != 0)
        return SNAP_CORRUPT("trailing bytes");
    for (struct key_ent *k = s->head->next[0]; k; k = k->next[0]) {
        const struct rev_ent *re = key_latest(k);
        if (re->tombstone || !re->lease)
            continue;
        if (!u64map_get(&s->leases, (uint64_t)re->lease))
            return SNAP_CORRUPT("key attached to a missing lease");
        lease_attach(s, k, re->lease);
    }
    if (s->log_len) /* an empty store's log is NULL: qsort(NULL, 0) is undefined */
        qsort(s->log + s->log_start, s->log_len, sizeof(*s->log), log_rec_cmp);
    return 0;
}

/* ---- self-check (tests) ---------------------------------------------------- */

int store_check(const struct store *s, char *why, size_t n)
{
#define FAIL(...) return (snprintf(why, n, __VA_ARGS__), -1)
    if (s->compact_rev < 1 || s->rev < s->compact_rev)
        FAIL("revisions: rev %lld compact %lld", (long long)s->rev, (long long)s->compact_rev);
    size_t live = 0, nkeys = 0, logged = 0;
    const struct key_ent *prev = NULL;
    for (const struct key_ent *k = s->head->next[0]; k; k = k->next[0]) {
        nkeys++;
        if (prev && keycmp(prev->key, prev->key_len, k->key, k->key_len) >= 0)
            FAIL("skip list out of order at key %zu", nkeys);
        prev = k;
        if (k->nrevs == 0)
            FAIL("key with no revisions");
        for (uint32_t i = 0; i < k->nrevs; i++) {
            const struct rev_ent *r = &k->revs[i];
            if (r->mod_rev > s->rev)
                FAIL("entry above the store revision");
            if (i > 0 && (k->revs[i - 1].mod_rev > r->mod_rev ||
                          (k->revs[i - 1].mod_rev == r->mod_rev && k->revs[i - 1].sub >= r->sub)))
                FAIL("entries out of order");
            if (r->mod_rev >= s->compact_rev)
                logged++;
            if (r->mod_rev < s->compact_rev && i + 1 < k->nrevs &&
                k->revs[i + 1].mod_rev < s->compact_rev)
                FAIL("entry kept below the compaction revision");
        }
        const struct rev_ent *last = key_latest(k);
        if (!last->tombstone) {
            live++;
            if (last->lease) {
                const struct lease *l = u64map_get(&s->leases, (uint64_t)last->lease);
                if (!l || k->lease_slot >= l->nkeys || l->keys[k->lease_slot] != k)
                    FAIL("live key not in its lease");
            }
        }
    }
    if (live != s->live_keys || nkeys != s->nkeys)
        FAIL("counts: live %zu/%zu keys %zu/%zu", live, s->live_keys, nkeys, s->nkeys);
    if (logged != s->log_len)
        FAIL("revision log holds %zu records for %zu entries", s->log_len, logged);
    for (size_t i = 1; i < s->log_len; i++)
        if (log_rec_cmp(&s->log[s->log_start + i - 1], &s->log[s->log_start + i]) >= 0)
            FAIL("revision log out of order at %zu", i);
    uint64_t id;
    void *v;
    for (size_t i = 0; u64map_next(&s->leases, &i, &id, &v);) {
        const struct lease *l = v;
        for (size_t j = 0; j < l->nkeys; j++) {
            const struct rev_ent *r = key_latest(l->keys[j]);
            if (r->tombstone || r->lease != l->id || l->keys[j]->lease_slot != j)
                FAIL("lease %lld holds a key that is not attached", (long long)l->id);
        }
    }
    return 0;
#undef FAIL
}
