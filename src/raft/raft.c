/*
 * raft.c: the Raft state machine (Ongaro's thesis, "Consensus: Bridging Theory
 * and Practice", 2014), written after etcd's raft.go as a pure function of its
 * inputs: events come in through raft_tick/raft_step/raft_propose/..., and all
 * effects leave through raft_ready() (see raft.h for the caller's contract).
 *
 * Design block (docs/raft.md explains each item at length).
 *
 * State diagram (which function performs each transition):
 *
 *                 tick: timeout / raft_campaign          majority of pre-votes
 *   +----------+  (pre_vote)  +---------------+  campaign(REAL)  +-----------+
 *   | FOLLOWER |------------->| PRE_CANDIDATE |----------------->| CANDIDATE |
 *   +----------+              +---------------+                  +-----------+
 *     ^  ^  |  tick: timeout / MsgTimeoutNow (no pre-vote)         |  |  ^
 *     |  |  +-------------------------------------------------------+  |  | timeout:
 *     |  |       become_follower: higher term, leader of this term,   |  +-- new term
 *     |  +-------- pre-vote or vote lost ----------------------------+
 *     |                                          majority of votes  |
 *     |  become_follower: higher term, check-quorum   +--------+    |
 *     +-----------------------------------------------| LEADER |<---+ become_leader
 *        failed, removed from the configuration       +--------+
 *
 * Invariants (checked by assertions here and by the cluster checkers of
 * tests/raft after every step):
 *  1. log: ents[k].index == snap_index + 1 + k, terms never decrease along the
 *     log, snap_index <= applied <= commit <= last_index (applied may lag behind
 *     snap_index only while a received snapshot waits in an update);
 *  2. stable <= last_index: entries up to stable were acknowledged persisted by
 *     raft_advance; an entry at or below commit is never truncated (a conflict
 *     there asserts: it would mean a broken safety property, thesis 3.5);
 *  3. term and vote only change together with a reset (become_*), and at most
 *     one vote is granted per term (vote is persisted before the response is
 *     sent: the update contract);
 *  4. commit only advances, and a leader advances it only to an index whose
 *     entry has the current term and is persisted on a majority of every voting
 *     configuration (maybe_commit, thesis 3.6.2 and 4.3);
 *  5. the leader never removes or overwrites its own entries (append only: the
 *     only truncation is in handle_append, which a leader never runs for its term);
 *  6. the configuration in force is the one of the last applied configuration
 *     entry or snapshot (conf_index), and a leader has at most one configuration
 *     entry that is not yet applied (pending_conf_index, thesis 4.1);
 *  7. a read is answered only with a commit index taken after an entry of the
 *     leader's term was committed and confirmed by a quorum heartbeat round whose
 *     start follows the read (ReadIndex, thesis 6.4);
 *  8. a pre-vote or vote from a node that still hears from a leader is ignored
 *     (lease check, thesis 9.6 / 4.2.3), unless it is a leadership transfer.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "raft/raft.h"

/* ---- entry payloads: shared, reference counted -------------------------------- */

struct blob {
    uint32_t refs;
    uint8_t data[];
};

static void ent_init_copy(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    dst->ref = NULL;
    dst->data = NULL;
    if (src->len) {
        struct blob *b = xmalloc(sizeof(*b) + src->len);
        b->refs = 1;
        memcpy(b->data, src->data, src->len);
        dst->ref = b;
        dst->data = b->data;
    }
}

static void ent_ref(struct raft_entry *e)
{
    if (e->ref)
        ((struct blob *)e->ref)->refs++;
}

static void ent_unref(struct raft_entry *e)
{
    struct blob *b = e->ref;
    if (b && --b->refs == 0)
        free(b);
    e->ref = NULL;
}

/* ---- state ------------------------------------------------------------------ */

enum pr_state { PR_PROBE, PR_REPLICATE, PR_SNAPSHOT };

struct progress {
    raft_id_t id;
    raft_index_t match, next;
    enum pr_state state;
    bool probe_sent;    /* probe: one append outstanding, wait for an answer */
    bool recent_active; /* answered since the last check-quorum round */
    raft_index_t pending_snap;
    unsigned snap_ticks;
    raft_index_t infl[RAFT_MAX_INFLIGHT]; /* last index of each append in flight */
    unsigned infl_start, infl_n;
    uint64_t read_ack; /* highest ReadIndex round acknowledged */
};

struct pread {
    uint64_t ctx;
    raft_id_t from;
    raft_index_t index;
    uint64_t round; /* 0: waiting for the first commit of the term */
};

enum campaign_kind { CAMPAIGN_PRE, CAMPAIGN_REAL, CAMPAIGN_TRANSFER };
enum vote_result { VOTE_PENDING, VOTE_WON, VOTE_LOST };

struct raft {
    struct raft_config cfg;
    raft_id_t id;
    bool started;

    /* hard state */
    raft_term_t term;
    raft_id_t vote;
    raft_index_t commit;

    /* log */
    struct raft_entry *ents;
    size_t n_ents, cap_ents;
    struct raft_snapshot_meta snap; /* the newest snapshot: log starts after it */
    raft_index_t stable, applied;
    bool snap_pending; /* a received snapshot waits in an update */
    uint8_t *snap_data;
    size_t snap_len;

    struct raft_conf conf;
    raft_index_t conf_index;

    enum raft_role role;
    raft_id_t lead;
    unsigned election_elapsed, heartbeat_elapsed, randomized_timeout;
    uint64_t rng;

    struct progress prs[RAFT_MAX_MEMBERS];
    size_t n_prs;
    raft_id_t vote_ids[RAFT_MAX_MEMBERS];
    bool vote_granted[RAFT_MAX_MEMBERS];
    size_t n_votes;

    raft_index_t pending_conf_index;
    raft_id_t transferee;
    bool need_bcast;

    struct pread *reads;
    size_t n_reads, cap_reads;
    uint64_t read_round;

    /* outputs */
    struct raft_msg *msgs;
    size_t n_msgs, cap_msgs;
    struct raft_read_state *rs;
    size_t n_rs, cap_rs;
    struct raft_hard_state hs_done; /* last hard state handed out */
    enum raft_role role_done;
    raft_id_t lead_done;

    /* what the update being executed covers (between ready and advance) */
    struct {
        bool active, snap;
        size_t n_msgs, n_rs;
        raft_index_t last_index, applied_to;
        raft_term_t last_term;
    } upd;
};

static void tracef(struct raft *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tracef(struct raft *r, const char *fmt, ...)
{
    if (!r->cfg.trace)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    r->cfg.trace(r->cfg.trace_ud, line);
}

#define U(x) ((unsigned long long)(x))

/* splitmix64: the only randomness, seeded by the caller */
static uint64_t rng_next(struct raft *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void reset_randomized_timeout(struct raft *r)
{
    r->randomized_timeout = r->cfg.election_ticks + (unsigned)(rng_next(r) % r->cfg.election_ticks);
}

/* ---- log ---------------------------------------------------------------------- */

static raft_index_t last_index(const struct raft *r)
{
    return r->snap.index + r->n_ents;
}

static struct raft_entry *entry_at(const struct raft *r, raft_index_t i)
{
    if (i <= r->snap.index || i > last_index(r))
        return NULL;
    return &r->ents[i - r->snap.index - 1];
}

/* The term of entry i; false if i is compacted (below the snapshot) or beyond. */
static bool term_at(const struct raft *r, raft_index_t i, raft_term_t *t)
{
    if (i == r->snap.index) {
        *t = r->snap.term;
        return true;
    }
    const struct raft_entry *e = entry_at(r, i);
    if (!e)
        return false;
    *t = e->term;
    return true;
}

static raft_term_t last_term(const struct raft *r)
{
    raft_term_t t = 0;
    term_at(r, last_index(r), &t);
    return t;
}

static bool term_is(const struct raft *r, raft_index_t i, raft_term_t t)
{
    raft_term_t x;
    return term_at(r, i, &x) && x == t;
}

static void truncate_from(struct raft *r, raft_index_t i)
{
    while (last_index(r) >= i && r->n_ents)
        ent_unref(&r->ents[--r->n_ents]);
    if (r->stable >= i)
        r->stable = i - 1;
}

/* Appends a copy of e (data copied into a new shared blob, or ref'ed if it has one). */
static void log_append(struct raft *r, const struct raft_entry *e)
{
    assert(e->index == last_index(r) + 1);
    assert(e->term >= last_term(r));
    r->ents = sc_grow(r->ents, &r->cap_ents, r->n_ents + 1, sizeof(*r->ents));
    ent_init_copy(&r->ents[r->n_ents++], e);
}

static void log_drop_prefix(struct raft *r, raft_index_t upto)
{
    size_t k = (size_t)(upto - r->snap.index);
    assert(k <= r->n_ents);
    for (size_t i = 0; i < k; i++)
        ent_unref(&r->ents[i]);
    if (k) {
        memmove(r->ents, r->ents + k, (r->n_ents - k) * sizeof(*r->ents));
        r->n_ents -= k;
    }
}

/* The largest index <= index whose term is <= term (etcd's findConflictByTerm):
 * the point a leader can jump back to in one step (thesis 3.5, fast backtracking). */
static raft_index_t find_conflict_by_term(const struct raft *r, raft_index_t index,
                                          raft_term_t term)
{
    raft_index_t i = MIN(index, last_index(r));
    raft_term_t t;
    while (i > r->snap.index && term_at(r, i, &t) && t > term)
        i--;
    return i;
}

static void commit_to(struct raft *r, raft_index_t c)
{
    c = MIN(c, last_index(r));
    if (c > r->commit)
        r->commit = c;
}

/* ---- outputs ---------------------------------------------------------------- */

static struct raft_msg *out_msg(struct raft *r, enum raft_msg_type type, raft_id_t to)
{
    r->msgs = sc_grow(r->msgs, &r->cap_msgs, r->n_msgs + 1, sizeof(*r->msgs));
    struct raft_msg *m = &r->msgs[r->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
    return m;
}

static void msg_release(struct raft_msg *m)
{
    struct raft_entry *e = (struct raft_entry *)m->entries;
    for (size_t i = 0; i < m->n_entries; i++)
        ent_unref(&e[i]);
    free(e);
    m->entries = NULL;
    m->n_entries = 0;
}

static void out_read(struct raft *r, uint64_t ctx, raft_index_t index, bool failed)
{
    r->rs = sc_grow(r->rs, &r->cap_rs, r->n_rs + 1, sizeof(*r->rs));
    r->rs[r->n_rs++] = (struct raft_read_state){.ctx = ctx, .index = index, .failed = failed};
}

/* ---- progress and quorums ------------------------------------------------------- */

static struct progress *pr_get(struct raft *r, raft_id_t id)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static void pr_reset(struct raft *r, struct progress *pr)
{
    raft_id_t id = pr->id;
    memset(pr, 0, sizeof(*pr));
    pr->id = id;
    pr->next = last_index(r) + 1;
    pr->state = PR_PROBE;
    pr->recent_active = true;
    if (id == r->id) {
        pr->match = r->stable;
        pr->state = PR_REPLICATE;
        pr->read_ack = r->read_round;
    }
}

/* Makes the progress set exactly the members of the configuration. */
static void pr_sync_conf(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs;) {
        if (!raft_conf_has(&r->conf, r->prs[i].id)) {
            if (r->prs[i].id == r->transferee)
                r->transferee = 0;
            r->prs[i] = r->prs[--r->n_prs];
        } else {
            i++;
        }
    }
    const struct raft_conf *c = &r->conf;
    const raft_id_t *lists[4] = {c->voters, c->outgoing, c->learners, c->learners_next};
    uint8_t lens[4] = {c->n_voters, c->n_outgoing, c->n_learners, c->n_learners_next};
    for (int l = 0; l < 4; l++)
        for (uint8_t i = 0; i < lens[l]; i++)
            if (!pr_get(r, lists[l][i])) {
                assert(r->n_prs < RAFT_MAX_MEMBERS);
                struct progress *pr = &r->prs[r->n_prs++];
                pr->id = lists[l][i];
                pr_reset(r, pr);
            }
}

static void infl_reset(struct progress *pr)
{
    pr->infl_start = pr->infl_n = 0;
}

static void infl_add(struct progress *pr, raft_index_t last)
{
    assert(pr->infl_n < RAFT_MAX_INFLIGHT);
    pr->infl[(pr->infl_start + pr->infl_n++) % RAFT_MAX_INFLIGHT] = last;
}

static void infl_free_to(struct progress *pr, raft_index_t to)
{
    while (pr->infl_n && pr->infl[pr->infl_start] <= to) {
        pr->infl_start = (pr->infl_start + 1) % RAFT_MAX_INFLIGHT;
        pr->infl_n--;
    }
}

static void become_probe(struct progress *pr)
{
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    infl_reset(pr);
}

static void become_replicate(struct progress *pr)
{
    pr->state = PR_REPLICATE;
    pr->next = pr->match + 1;
    infl_reset(pr);
}

static bool pr_paused(const struct raft *r, const struct progress *pr)
{
    switch (pr->state) {
    case PR_PROBE:
        return pr->probe_sent;
    case PR_REPLICATE:
        return pr->infl_n >= r->cfg.max_inflight;
    case PR_SNAPSHOT:
        return true;
    }
    return true;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The largest value that a majority of ids has reached; UINT64_MAX for no ids
 * (an empty outgoing configuration constrains nothing). */
static uint64_t majority_value(struct raft *r, const raft_id_t *ids, uint8_t n,
                               uint64_t (*val)(struct raft *, struct progress *))
{
    if (n == 0)
        return UINT64_MAX;
    uint64_t v[RAFT_MAX_MEMBERS];
    for (uint8_t i = 0; i < n; i++) {
        struct progress *pr = pr_get(r, ids[i]);
        v[i] = pr ? val(r, pr) : 0;
    }
    qsort(v, n, sizeof(v[0]), cmp_desc);
    return v[n / 2];
}

/* Joint consensus: a decision needs a majority of both configurations (thesis 4.3). */
static uint64_t quorum_value(struct raft *r, uint64_t (*val)(struct raft *, struct progress *))
{
    uint64_t a = majority_value(r, r->conf.voters, r->conf.n_voters, val);
    uint64_t b = majority_value(r, r->conf.outgoing, r->conf.n_outgoing, val);
    return MIN(a, b);
}

static uint64_t val_match(struct raft *r, struct progress *pr)
{
    return pr->match;
}

static uint64_t val_active(struct raft *r, struct progress *pr)
{
    return pr->id == r->id || pr->recent_active;
}

static uint64_t val_read_ack(struct raft *r, struct progress *pr)
{
    return pr->id == r->id ? r->read_round : pr->read_ack;
}

static enum vote_result majority_result(struct raft *r, const raft_id_t *ids, uint8_t n)
{
    if (n == 0)
        return VOTE_WON;
    unsigned yes = 0, no = 0;
    for (uint8_t i = 0; i < n; i++)
        for (size_t k = 0; k < r->n_votes; k++)
            if (r->vote_ids[k] == ids[i])
                r->vote_granted[k] ? yes++ : no++;
    unsigned q = n / 2u + 1;
    if (yes >= q)
        return VOTE_WON;
    if (n - no < q)
        return VOTE_LOST;
    return VOTE_PENDING;
}

static enum vote_result tally(struct raft *r)
{
    enum vote_result a = majority_result(r, r->conf.voters, r->conf.n_voters);
    enum vote_result b = majority_result(r, r->conf.outgoing, r->conf.n_outgoing);
    if (a == VOTE_LOST || b == VOTE_LOST)
        return VOTE_LOST;
    return a == VOTE_WON && b == VOTE_WON ? VOTE_WON : VOTE_PENDING;
}

static void record_vote(struct raft *r, raft_id_t id, bool granted)
{
    for (size_t k = 0; k < r->n_votes; k++)
        if (r->vote_ids[k] == id)
            return; /* first answer counts */
    if (r->n_votes >= RAFT_MAX_MEMBERS)
        return;
    r->vote_ids[r->n_votes] = id;
    r->vote_granted[r->n_votes++] = granted;
}

static bool promotable(const struct raft *r)
{
    return raft_conf_is_voter(&r->conf, r->id) && !r->snap_pending;
}

/* ---- reads ---------------------------------------------------------------------- */

static void fail_reads(struct raft *r)
{
    for (size_t i = 0; i < r->n_reads; i++) {
        struct pread *p = &r->reads[i];
        if (p->from == r->id) {
            out_read(r, p->ctx, 0, true);
        } else {
            struct raft_msg *m = out_msg(r, RAFT_MSG_READ_INDEX_RESP, p->from);
            m->ctx = p->ctx;
            m->reject = true;
        }
    }
    r->n_reads = 0;
}

static bool committed_in_term(const struct raft *r)
{
    return term_is(r, r->commit, r->term);
}

/* Completes every read whose heartbeat round a quorum acknowledged. */
static void check_reads(struct raft *r)
{
    uint64_t acked = quorum_value(r, val_read_ack);
    size_t k = 0;
    for (size_t i = 0; i < r->n_reads; i++) {
        struct pread *p = &r->reads[i];
        if (p->round == 0 || p->round > acked) {
            r->reads[k++] = *p;
            continue;
        }
        if (p->from == r->id) {
            out_read(r, p->ctx, p->index, false);
        } else {
            struct raft_msg *m = out_msg(r, RAFT_MSG_READ_INDEX_RESP, p->from);
            m->ctx = p->ctx;
            m->index = p->index;
        }
    }
    r->n_reads = k;
}

static void bcast_heartbeat(struct raft *r);

/* Starts a heartbeat round for the reads that wait for one (thesis 6.4 step 3). */
static void start_reads(struct raft *r)
{
    bool any = false;
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].round == 0)
            any = true;
    if (!any || !committed_in_term(r))
        return;
    r->read_round++;
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].round == 0) {
            r->reads[i].round = r->read_round;
            r->reads[i].index = r->commit;
        }
    struct progress *self = pr_get(r, r->id);
    if (self)
        self->read_ack = r->read_round;
    bcast_heartbeat(r);
    check_reads(r);
}

/* ---- role changes -------------------------------------------------------------- */

static void abort_transfer(struct raft *r)
{
    if (r->transferee)
        tracef(r, "%llu aborted leadership transfer to %llu", U(r->id), U(r->transferee));
    r->transferee = 0;
}

static void reset(struct raft *r, raft_term_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = 0;
    }
    if (r->role == RAFT_LEADER)
        fail_reads(r);
    r->n_reads = 0;
    r->lead = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    reset_randomized_timeout(r);
    r->transferee = 0;
    r->n_votes = 0;
    r->need_bcast = false;
    for (size_t i = 0; i < r->n_prs; i++)
        pr_reset(r, &r->prs[i]);
    r->pending_conf_index = 0;
}

static void become_follower(struct raft *r, raft_term_t term, raft_id_t lead)
{
    reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->lead = lead;
    tracef(r, "%llu became follower at term %llu", U(r->id), U(term));
}

static void become_pre_candidate(struct raft *r)
{
    assert(r->role != RAFT_LEADER);
    r->role = RAFT_PRE_CANDIDATE;
    r->lead = 0;
    r->n_votes = 0;
    r->election_elapsed = 0;
    reset_randomized_timeout(r);
    tracef(r, "%llu became pre-candidate at term %llu", U(r->id), U(r->term));
}

static void become_candidate(struct raft *r)
{
    assert(r->role != RAFT_LEADER);
    reset(r, r->term + 1);
    r->vote = r->id;
    r->role = RAFT_CANDIDATE;
    tracef(r, "%llu became candidate at term %llu", U(r->id), U(r->term));
}

static void append_new(struct raft *r, enum raft_entry_type type, const void *data, size_t len)
{
    struct raft_entry e = {
        .term = r->term, .index = last_index(r) + 1, .type = type, .data = data, .len = len};
    log_append(r, &e);
    r->need_bcast = true;
}

static void become_leader(struct raft *r)
{
    assert(r->role == RAFT_CANDIDATE);
    reset(r, r->term);
    r->role = RAFT_LEADER;
    r->lead = r->id;
    /* a configuration entry may be in the uncommitted tail: no new change before
     * everything up to here is applied (thesis 4.1) */
    r->pending_conf_index = last_index(r);
    /* the no-op of the new term: it commits the earlier entries (thesis 3.6.2)
     * and enables reads (thesis 6.4 step 1) */
    append_new(r, RAFT_ENTRY_NORMAL, NULL, 0);
    tracef(r, "%llu became leader at term %llu", U(r->id), U(r->term));
}

static bool has_unapplied_conf(const struct raft *r)
{
    for (raft_index_t i = MAX(r->applied, r->conf_index) + 1; i <= r->commit; i++) {
        const struct raft_entry *e = entry_at(r, i);
        if (e && e->type == RAFT_ENTRY_CONF)
            return true;
    }
    return false;
}

static void campaign(struct raft *r, enum campaign_kind kind)
{
    if (!promotable(r)) {
        tracef(r, "%llu is not a voter and cannot campaign", U(r->id));
        return;
    }
    if (has_unapplied_conf(r)) {
        tracef(r, "%llu cannot campaign at term %llu: configuration changes to apply", U(r->id),
               U(r->term));
        return;
    }
    raft_term_t vote_term;
    enum raft_msg_type type;
    if (kind == CAMPAIGN_PRE) {
        become_pre_candidate(r);
        vote_term = r->term + 1;
        type = RAFT_MSG_PRE_VOTE;
    } else {
        become_candidate(r);
        vote_term = r->term;
        type = RAFT_MSG_VOTE;
    }
    record_vote(r, r->id, true);
    if (tally(r) == VOTE_WON) { /* a single voter */
        if (kind == CAMPAIGN_PRE)
            campaign(r, CAMPAIGN_REAL);
        else
            become_leader(r);
        return;
    }
    const struct raft_conf *c = &r->conf;
    raft_id_t ids[2 * RAFT_MAX_MEMBERS];
    size_t n = 0;
    for (uint8_t i = 0; i < c->n_voters; i++)
        ids[n++] = c->voters[i];
    for (uint8_t i = 0; i < c->n_outgoing; i++) {
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup |= ids[k] == c->outgoing[i];
        if (!dup)
            ids[n++] = c->outgoing[i];
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == r->id)
            continue;
        struct raft_msg *m = out_msg(r, type, ids[i]);
        m->term = vote_term;
        m->index = last_index(r);
        m->log_term = last_term(r);
        m->transfer = kind == CAMPAIGN_TRANSFER;
        tracef(r, "%llu [logterm: %llu, index: %llu] sent %s request to %llu at term %llu",
               U(r->id), U(m->log_term), U(m->index), raft_msg_type_name(type), U(ids[i]),
               U(vote_term));
    }
}

/* ---- replication (leader) -------------------------------------------------------- */

static bool send_snapshot(struct raft *r, struct progress *pr)
{
    struct raft_msg *m = out_msg(r, RAFT_MSG_SNAP, pr->id);
    m->snap = r->snap;
    pr->state = PR_SNAPSHOT;
    pr->pending_snap = r->snap.index;
    pr->snap_ticks = 0;
    infl_reset(pr);
    tracef(r, "%llu sent snapshot at index %llu to %llu (its next index %llu is compacted)",
           U(r->id), U(r->snap.index), U(pr->id), U(pr->next));
    return true;
}

/* Sends the next batch to pr (thesis 3.5; batching by max_msg_bytes, pipelining
 * by the inflight window, thesis 10.2.2).  Returns true when entries or a
 * snapshot went out, so that callers can loop until the window is full. */
static bool send_append(struct raft *r, struct progress *pr, bool send_if_empty)
{
    if (pr->id == r->id || pr_paused(r, pr))
        return false;
    raft_index_t prev = pr->next - 1;
    raft_term_t prev_term;
    if (!term_at(r, prev, &prev_term))
        return send_snapshot(r, pr);
    raft_index_t last = last_index(r), i = pr->next;
    size_t bytes = 0;
    for (; i <= last; i++) {
        size_t len = entry_at(r, i)->len;
        if (i > pr->next && bytes + len > r->cfg.max_msg_bytes)
            break;
        bytes += len;
    }
    size_t n = (size_t)(i - pr->next);
    if (!n && !send_if_empty)
        return false;
    struct raft_msg *m = out_msg(r, RAFT_MSG_APPEND, pr->id);
    m->index = prev;
    m->log_term = prev_term;
    m->commit = r->commit;
    if (n) {
        struct raft_entry *ents = xmalloc(n * sizeof(*ents));
        memcpy(ents, entry_at(r, pr->next), n * sizeof(*ents));
        for (size_t k = 0; k < n; k++)
            ent_ref(&ents[k]);
        m->entries = ents;
        m->n_entries = n;
    }
    if (pr->state == PR_REPLICATE && n) {
        pr->next += n;
        infl_add(pr, pr->next - 1);
    } else if (pr->state == PR_PROBE) {
        pr->probe_sent = true;
    }
    return n > 0;
}

static void send_all(struct raft *r, struct progress *pr, bool send_if_empty)
{
    if (send_append(r, pr, send_if_empty) || send_if_empty)
        while (send_append(r, pr, false))
            ;
}

static void bcast_append(struct raft *r, bool send_if_empty)
{
    for (size_t i = 0; i < r->n_prs; i++)
        send_all(r, &r->prs[i], send_if_empty);
}

static void bcast_heartbeat(struct raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->id)
            continue;
        struct raft_msg *m = out_msg(r, RAFT_MSG_HEARTBEAT, pr->id);
        m->commit = MIN(pr->match, r->commit);
        m->ctx = r->read_round;
    }
}

/* Commits the largest index a quorum has persisted, but only if its entry has the
 * current term: older entries are committed indirectly (thesis 3.6.2, figure 8). */
static bool maybe_commit(struct raft *r)
{
    raft_index_t q = quorum_value(r, val_match);
    if (q == UINT64_MAX || q <= r->commit || !term_is(r, q, r->term))
        return false;
    bool first = !committed_in_term(r);
    r->commit = q;
    if (first)
        start_reads(r);
    return true;
}

static void send_timeout_now(struct raft *r, raft_id_t to)
{
    out_msg(r, RAFT_MSG_TIMEOUT_NOW, to);
    tracef(r, "%llu sent MsgTimeoutNow to %llu", U(r->id), U(to));
}

static void handle_append_resp(struct raft *r, const struct raft_msg *m)
{
    struct progress *pr = pr_get(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    if (m->reject) {
        raft_index_t hint = m->hint_index;
        if (m->hint_term > 0)
            hint = find_conflict_by_term(r, m->hint_index, m->hint_term);
        bool decreased = false;
        if (pr->state == PR_REPLICATE) {
            if (m->index > pr->match) {
                become_probe(pr);
                decreased = true;
            }
        } else if (pr->next - 1 == m->index) {
            pr->next = MAX(MIN(m->index, hint + 1), pr->match + 1);
            pr->probe_sent = false;
            decreased = true;
        }
        if (decreased) {
            tracef(r, "%llu rejected by %llu at %llu, next index %llu", U(r->id), U(m->from),
                   U(m->index), U(pr->next));
            send_all(r, pr, true);
        }
        return;
    }
    if (pr->match >= m->index) {
        if (pr->state == PR_PROBE && pr->probe_sent && pr->match == m->index) {
            pr->probe_sent = false; /* answer to an empty probe */
            send_all(r, pr, false);
        }
        return;
    }
    bool was_paused = pr_paused(r, pr);
    pr->match = m->index;
    pr->next = MAX(pr->next, m->index + 1);
    pr->probe_sent = false;
    if (pr->state == PR_PROBE)
        become_replicate(pr);
    else if (pr->state == PR_SNAPSHOT && pr->match >= pr->pending_snap)
        become_replicate(pr);
    else if (pr->state == PR_REPLICATE)
        infl_free_to(pr, m->index);
    if (maybe_commit(r))
        bcast_append(r, true);
    else
        send_all(r, pr, was_paused); /* a paused follower may not know the commit */
    if (m->from == r->transferee && pr->match == last_index(r)) {
        tracef(r, "%llu: transferee %llu is up to date", U(r->id), U(m->from));
        send_timeout_now(r, m->from);
    }
}

static void handle_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct progress *pr = pr_get(r, m->from);
    if (!pr)
        return;
    pr->recent_active = true;
    pr->probe_sent = false;
    if (pr->state == PR_REPLICATE && pr->infl_n >= r->cfg.max_inflight)
        pr->infl_start = (pr->infl_start + 1) % RAFT_MAX_INFLIGHT, pr->infl_n--;
    if (pr->match < last_index(r))
        send_all(r, pr, true);
    if (m->ctx > pr->read_ack) {
        pr->read_ack = m->ctx;
        check_reads(r);
    }
}

static int leader_read(struct raft *r, uint64_t ctx, raft_id_t from)
{
    if (r->n_reads >= RAFT_MAX_READS) {
        if (from == r->id)
            return -ENOBUFS;
        struct raft_msg *m = out_msg(r, RAFT_MSG_READ_INDEX_RESP, from);
        m->ctx = ctx;
        m->reject = true;
        return 0;
    }
    r->reads = sc_grow(r->reads, &r->cap_reads, r->n_reads + 1, sizeof(*r->reads));
    r->reads[r->n_reads++] = (struct pread){.ctx = ctx, .from = from};
    start_reads(r); /* waits for the first commit of the term otherwise */
    return 0;
}

/* ---- follower side -------------------------------------------------------------- */

static void handle_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *resp;
    if (m->index < r->commit) {
        resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
        resp->index = r->commit;
        return;
    }
    if (!term_is(r, m->index, m->log_term)) {
        /* log matching failed: tell the leader where our log can match (thesis 3.5) */
        raft_index_t hint = MIN(m->index, last_index(r));
        hint = find_conflict_by_term(r, hint, m->log_term);
        raft_term_t ht = 0;
        term_at(r, hint, &ht);
        resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
        resp->index = m->index;
        resp->reject = true;
        resp->hint_index = hint;
        resp->hint_term = ht;
        tracef(r, "%llu rejected MsgApp [logterm: %llu, index: %llu] from %llu", U(r->id),
               U(m->log_term), U(m->index), U(m->from));
        return;
    }
    for (size_t k = 0; k < m->n_entries; k++) {
        const struct raft_entry *e = &m->entries[k];
        raft_index_t idx = m->index + 1 + k;
        if (idx <= last_index(r)) {
            if (term_is(r, idx, e->term))
                continue;
            /* a conflicting suffix: never a committed entry (invariant 2) */
            assert(idx > r->commit);
            tracef(r, "%llu truncated its log from index %llu", U(r->id), U(idx));
            truncate_from(r, idx);
        }
        struct raft_entry c = *e;
        c.index = idx;
        log_append(r, &c);
    }
    raft_index_t last_new = m->index + m->n_entries;
    commit_to(r, MIN(m->commit, last_new));
    resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
    resp->index = last_new;
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    commit_to(r, m->commit);
    struct raft_msg *resp = out_msg(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp->ctx = m->ctx;
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    const struct raft_snapshot_meta *s = &m->snap;
    struct raft_msg *resp;
    if (s->index <= r->commit) {
        resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
        resp->index = r->commit;
        return;
    }
    if (term_is(r, s->index, s->term)) {
        /* we have the entry: fast-forward the commit index instead (thesis 5.1) */
        commit_to(r, s->index);
        resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
        resp->index = s->index;
        return;
    }
    tracef(r, "%llu restoring snapshot at index %llu term %llu", U(r->id), U(s->index), U(s->term));
    truncate_from(r, r->snap.index + 1);
    r->snap = *s;
    r->stable = s->index;
    r->commit = s->index;
    r->conf = s->conf;
    r->conf_index = s->index;
    pr_sync_conf(r);
    free(r->snap_data);
    r->snap_data = xmemdup(m->snap_data, m->snap_len);
    r->snap_len = m->snap_len;
    r->snap_pending = true;
    resp = out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
    resp->index = s->index;
}

/* ---- step ---------------------------------------------------------------------- */

static void handle_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    bool can_vote =
        r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
    raft_term_t lt = last_term(r);
    /* the election restriction (thesis 3.6.1): only a candidate whose log is at
     * least as up-to-date as ours gets our vote */
    bool up_to_date = m->log_term > lt || (m->log_term == lt && m->index >= last_index(r));
    struct raft_msg *resp;
    if (can_vote && up_to_date) {
        resp = out_msg(r, pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
        resp->term = m->term;
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
        tracef(r, "%llu cast %s for %llu at term %llu", U(r->id), raft_msg_type_name(m->type),
               U(m->from), U(m->term));
    } else {
        resp = out_msg(r, pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
        resp->reject = true;
        tracef(r, "%llu rejected %s from %llu at term %llu", U(r->id), raft_msg_type_name(m->type),
               U(m->from), U(m->term));
    }
}

static void step_candidate(struct raft *r, const struct raft_msg *m)
{
    enum raft_msg_type want =
        r->role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAP:
        become_follower(r, m->term, m->from); /* a leader exists in this term */
        if (m->type == RAFT_MSG_APPEND)
            handle_append(r, m);
        else if (m->type == RAFT_MSG_HEARTBEAT)
            handle_heartbeat(r, m);
        else
            handle_snapshot(r, m);
        return;
    default:
        break;
    }
    if (m->type != want)
        return;
    record_vote(r, m->from, !m->reject);
    switch (tally(r)) {
    case VOTE_WON:
        if (r->role == RAFT_PRE_CANDIDATE) {
            campaign(r, CAMPAIGN_REAL);
        } else {
            become_leader(r);
            bcast_append(r, true);
        }
        break;
    case VOTE_LOST:
        become_follower(r, r->term, 0);
        break;
    case VOTE_PENDING:
        break;
    }
}

static void step_follower(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->lead = m->from;
        handle_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        handle_heartbeat(r, m);
        break;
    case RAFT_MSG_SNAP:
        r->election_elapsed = 0;
        r->lead = m->from;
        handle_snapshot(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        tracef(r, "%llu received MsgTimeoutNow from %llu and starts an election", U(r->id),
               U(m->from));
        campaign(r, CAMPAIGN_TRANSFER);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        out_read(r, m->ctx, m->index, m->reject);
        break;
    default:
        break;
    }
}

static void step_leader(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        handle_append_resp(r, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        handle_heartbeat_resp(r, m);
        break;
    case RAFT_MSG_READ_INDEX:
        leader_read(r, m->ctx, m->from);
        break;
    default:
        break;
    }
}

static bool in_lease(const struct raft *r)
{
    return (r->cfg.check_quorum || r->cfg.pre_vote) && r->lead != 0 &&
           r->election_elapsed < r->cfg.election_ticks;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    assert(!r->upd.active);
    if (m->to != r->id || m->from == 0 || m->from == r->id || m->type < RAFT_MSG_APPEND ||
        m->type > RAFT_MSG_TYPE_MAX)
        return 0;
    /* what an honest peer cannot send is refused before it reaches an assertion */
    raft_term_t prev = m->log_term;
    for (size_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->index != m->index + 1 + i || e->term < prev || e->term > m->term ||
            e->len > RAFT_MAX_ENTRY_BYTES)
            return -EINVAL;
        prev = e->term;
    }
    if (m->type == RAFT_MSG_SNAP && (m->snap.conf.n_voters == 0 || m->snap.term > m->term))
        return -EINVAL;
    bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE;
    if (m->term > r->term) {
        if (vote_req && !m->transfer && in_lease(r)) {
            /* thesis 4.2.3: a server that hears from a leader ignores candidates, so
             * a removed or partitioned server cannot disrupt a working cluster */
            tracef(r, "%llu ignored %s from %llu at term %llu: lease not expired", U(r->id),
                   raft_msg_type_name(m->type), U(m->from), U(m->term));
            return 0;
        }
        if (m->type == RAFT_MSG_PRE_VOTE || (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject)) {
            /* pre-votes never change terms (thesis 9.6) */
        } else {
            bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                               m->type == RAFT_MSG_SNAP;
            tracef(r, "%llu received %s with higher term %llu from %llu", U(r->id),
                   raft_msg_type_name(m->type), U(m->term), U(m->from));
            become_follower(r, m->term, from_leader ? m->from : 0);
        }
    } else if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* a stale leader learns the new term and steps down */
            out_msg(r, RAFT_MSG_APPEND_RESP, m->from);
        } else if (m->type == RAFT_MSG_PRE_VOTE) {
            struct raft_msg *resp = out_msg(r, RAFT_MSG_PRE_VOTE_RESP, m->from);
            resp->reject = true;
        }
        return 0;
    }
    if (vote_req) {
        handle_vote(r, m);
        return 0;
    }
    switch (r->role) {
    case RAFT_FOLLOWER:
        step_follower(r, m);
        break;
    case RAFT_PRE_CANDIDATE:
    case RAFT_CANDIDATE:
        step_candidate(r, m);
        break;
    case RAFT_LEADER:
        step_leader(r, m);
        break;
    }
    return 0;
}

/* ---- tick -------------------------------------------------------------------- */

static bool quorum_active(struct raft *r)
{
    return quorum_value(r, val_active) >= 1;
}

void raft_tick(struct raft *r)
{
    assert(!r->upd.active);
    if (r->role != RAFT_LEADER) {
        r->election_elapsed++;
        if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
            r->election_elapsed = 0;
            campaign(r, r->cfg.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_REAL);
        }
        return;
    }
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (size_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        /* a snapshot that got lost is sent again after an election timeout */
        if (pr->state == PR_SNAPSHOT && ++pr->snap_ticks >= r->cfg.election_ticks)
            become_probe(pr);
    }
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            /* thesis 6.2: a leader that cannot reach a quorum within an election
             * timeout steps down, so clients go elsewhere */
            if (!quorum_active(r)) {
                tracef(r, "%llu stepped down to follower since quorum is not active", U(r->id));
                become_follower(r, r->term, 0);
                return;
            }
            for (size_t i = 0; i < r->n_prs; i++)
                r->prs[i].recent_active = r->prs[i].id == r->id;
        }
        abort_transfer(r);
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        bcast_heartbeat(r);
    }
}

/* ---- client requests --------------------------------------------------------- */

int raft_propose(struct raft *r, const void *data, size_t len, raft_index_t *ret_index)
{
    assert(!r->upd.active);
    if (r->role != RAFT_LEADER)
        return -SC_E_NOT_LEADER;
    if (r->transferee)
        return -EBUSY;
    if (len > RAFT_MAX_ENTRY_BYTES)
        return -SC_E_VALUE_TOO_LARGE;
    append_new(r, RAFT_ENTRY_NORMAL, data, len);
    if (ret_index)
        *ret_index = last_index(r);
    return 0;
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             raft_index_t *ret_index)
{
    assert(!r->upd.active);
    if (r->role != RAFT_LEADER)
        return -SC_E_NOT_LEADER;
    if (r->transferee || r->pending_conf_index > r->applied)
        return -EBUSY;
    struct raft_conf next;
    int ret = raft_conf_apply(&r->conf, cc, &next);
    if (ret < 0)
        return ret;
    struct sc_buf b = {0};
    raft_cc_encode(cc, &b);
    append_new(r, RAFT_ENTRY_CONF, b.data, b.len);
    sc_buf_free(&b);
    r->pending_conf_index = last_index(r);
    if (ret_index)
        *ret_index = last_index(r);
    return 0;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    assert(!r->upd.active);
    if (r->role == RAFT_LEADER)
        return leader_read(r, ctx, r->id);
    if (r->role != RAFT_FOLLOWER || r->lead == 0)
        return -SC_E_NOT_LEADER;
    struct raft_msg *m = out_msg(r, RAFT_MSG_READ_INDEX, r->lead);
    m->ctx = ctx;
    return 0;
}

int raft_transfer_leader(struct raft *r, raft_id_t to)
{
    assert(!r->upd.active);
    if (r->role != RAFT_LEADER)
        return -SC_E_NOT_LEADER;
    if (to == r->id || r->transferee == to)
        return 0;
    struct progress *pr = pr_get(r, to);
    if (!pr || !raft_conf_is_voter(&r->conf, to))
        return -EINVAL;
    abort_transfer(r);
    r->transferee = to;
    r->election_elapsed = 0; /* the transfer must finish within an election timeout */
    tracef(r, "%llu starts leadership transfer to %llu", U(r->id), U(to));
    if (pr->match == last_index(r))
        send_timeout_now(r, to);
    else
        send_all(r, pr, true);
    return 0;
}

int raft_campaign(struct raft *r)
{
    assert(!r->upd.active);
    if (r->role == RAFT_LEADER)
        return 0;
    if (!promotable(r))
        return -EINVAL;
    campaign(r, r->cfg.pre_vote ? CAMPAIGN_PRE : CAMPAIGN_REAL);
    return 0;
}

int raft_compact(struct raft *r, raft_index_t index, struct sc_error *e)
{
    assert(!r->upd.active);
    if (index <= r->snap.index)
        return 0;
    if (index > r->applied)
        return sc_error_set(e, -EINVAL, "index", "cannot compact past the applied index %llu",
                            U(r->applied));
    if (index < r->conf_index)
        return sc_error_set(e, -EINVAL, "index",
                            "a configuration change was applied at %llu, after %llu",
                            U(r->conf_index), U(index));
    raft_term_t t = 0;
    term_at(r, index, &t);
    log_drop_prefix(r, index);
    r->snap.index = index;
    r->snap.term = t;
    r->snap.conf = r->conf;
    return 0;
}

/* ---- update / advance ----------------------------------------------------------- */

static void apply_conf_entry(struct raft *r, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    struct raft_conf next;
    r->conf_index = e->index;
    if (raft_cc_decode(e->data, e->len, &cc) < 0 || raft_conf_apply(&r->conf, &cc, &next) < 0) {
        /* refused identically on every replica: the entry is a no-op */
        tracef(r, "%llu ignored invalid configuration change at %llu", U(r->id), U(e->index));
        return;
    }
    r->conf = next;
    pr_sync_conf(r);
    struct sc_buf b = {0};
    raft_conf_format(&r->conf, &b);
    tracef(r, "%llu switched to configuration %.*s", U(r->id), (int)b.len, (char *)b.data);
    sc_buf_free(&b);
}

static raft_index_t ready_entries_from(const struct raft *r)
{
    return MAX(r->stable, r->snap.index) + 1;
}

static raft_index_t committed_from(const struct raft *r)
{
    return MAX(r->applied, r->snap.index) + 1;
}

static raft_index_t committed_to(const struct raft *r)
{
    return MIN(r->commit, last_index(r));
}

bool raft_has_update(const struct raft *r)
{
    return r->role != r->role_done || r->lead != r->lead_done || r->term != r->hs_done.term ||
           r->vote != r->hs_done.vote || r->commit != r->hs_done.commit || r->snap_pending ||
           ready_entries_from(r) <= last_index(r) || r->n_msgs || r->n_rs ||
           committed_from(r) <= committed_to(r) || (r->need_bcast && r->role == RAFT_LEADER);
}

void raft_ready(struct raft *r, struct raft_update *u)
{
    assert(!r->upd.active);
    if (r->need_bcast && r->role == RAFT_LEADER)
        bcast_append(r, false);
    r->need_bcast = false;
    memset(u, 0, sizeof(*u));
    u->role = r->role;
    u->leader = r->lead;
    u->term = r->term;
    u->soft_changed = r->role != r->role_done || r->lead != r->lead_done;
    u->hard = (struct raft_hard_state){.term = r->term, .vote = r->vote, .commit = r->commit};
    u->hard_changed = memcmp(&u->hard, &r->hs_done, sizeof(u->hard)) != 0;
    u->must_sync = r->term != r->hs_done.term || r->vote != r->hs_done.vote;
    if (r->snap_pending) {
        u->snapshot = &r->snap;
        u->snap_data = r->snap_data;
        u->snap_len = r->snap_len;
        u->must_sync = true;
    }
    raft_index_t from = ready_entries_from(r), last = last_index(r);
    if (from <= last) {
        u->entries = entry_at(r, from);
        u->n_entries = (size_t)(last - from + 1);
        u->must_sync = true;
    }
    raft_index_t clo = committed_from(r), chi = committed_to(r);
    if (clo <= chi) {
        u->committed = entry_at(r, clo);
        u->n_committed = (size_t)(chi - clo + 1);
    }
    u->msgs = r->msgs;
    u->n_msgs = r->n_msgs;
    u->reads = r->rs;
    u->n_reads = r->n_rs;
    r->upd.active = true;
    r->upd.snap = r->snap_pending;
    r->upd.n_msgs = r->n_msgs;
    r->upd.n_rs = r->n_rs;
    r->upd.last_index = last;
    r->upd.last_term = last_term(r);
    r->upd.applied_to = clo <= chi ? chi : r->applied;
}

void raft_advance(struct raft *r, struct raft_update *u)
{
    assert(r->upd.active);
    r->upd.active = false;
    for (size_t i = 0; i < r->upd.n_msgs; i++)
        msg_release(&r->msgs[i]);
    if (r->upd.n_msgs) {
        memmove(r->msgs, r->msgs + r->upd.n_msgs, (r->n_msgs - r->upd.n_msgs) * sizeof(*r->msgs));
        r->n_msgs -= r->upd.n_msgs;
    }
    if (r->upd.n_rs) {
        memmove(r->rs, r->rs + r->upd.n_rs, (r->n_rs - r->upd.n_rs) * sizeof(*r->rs));
        r->n_rs -= r->upd.n_rs;
    }
    r->hs_done = u->hard;
    r->role_done = u->role;
    r->lead_done = u->leader;
    if (r->upd.snap) {
        r->snap_pending = false;
        free(r->snap_data);
        r->snap_data = NULL;
        r->snap_len = 0;
        r->applied = MAX(r->applied, r->snap.index);
    }
    if (term_is(r, r->upd.last_index, r->upd.last_term))
        r->stable = MAX(r->stable, r->upd.last_index);
    bool conf_changed = false;
    for (size_t i = 0; i < u->n_committed; i++) {
        const struct raft_entry *e = &u->committed[i];
        if (e->type == RAFT_ENTRY_CONF && e->index > r->conf_index) {
            apply_conf_entry(r, e);
            conf_changed = true;
        }
    }
    r->applied = MAX(r->applied, r->upd.applied_to);
    memset(u, 0, sizeof(*u));
    if (r->role != RAFT_LEADER)
        return;
    if (!raft_conf_is_voter(&r->conf, r->id)) {
        tracef(r, "%llu is no longer a voter and steps down", U(r->id));
        become_follower(r, r->term, 0);
        return;
    }
    struct progress *self = pr_get(r, r->id);
    if (self && r->stable > self->match)
        self->match = r->stable, self->next = r->stable + 1;
    /* a new configuration may commit more (other majorities) and has new
     * members to start replicating to */
    if (maybe_commit(r) || conf_changed)
        bcast_append(r, true);
    /* thesis 4.3: the leader leaves the joint configuration once it is in force */
    if (r->conf.n_outgoing && r->conf.auto_leave && r->applied >= r->pending_conf_index &&
        !r->transferee) {
        struct raft_conf_change leave = {0};
        if (raft_propose_conf_change(r, &leave, NULL) == 0)
            tracef(r, "%llu proposed leaving the joint configuration", U(r->id));
    }
}

/* ---- life cycle ---------------------------------------------------------------- */

void raft_config_default(struct raft_config *c)
{
    memset(c, 0, sizeof(*c));
    c->election_ticks = 10;
    c->heartbeat_ticks = 1;
    c->max_msg_bytes = 1u << 20;
    c->max_inflight = 64;
    c->pre_vote = true;
    c->check_quorum = true;
}

int raft_new(const struct raft_config *c, struct raft **ret, struct sc_error *e)
{
    if (c->id == 0)
        return sc_error_set(e, -EINVAL, "id", "the member id must not be 0");
    if (c->election_ticks == 0 || c->heartbeat_ticks == 0 ||
        c->heartbeat_ticks >= c->election_ticks)
        return sc_error_set(e, -EINVAL, "election_ticks",
                            "need 0 < heartbeat_ticks < election_ticks");
    if (c->max_inflight == 0 || c->max_inflight > RAFT_MAX_INFLIGHT)
        return sc_error_set(e, -EINVAL, "max_inflight", "max_inflight must be 1..%d",
                            RAFT_MAX_INFLIGHT);
    struct raft *r = xcalloc(1, sizeof(*r));
    r->cfg = *c;
    r->id = c->id;
    r->rng = c->seed ^ (c->id * 0x9e3779b97f4a7c15ULL);
    r->role = r->role_done = RAFT_FOLLOWER;
    reset_randomized_timeout(r);
    *ret = r;
    return 0;
}

void raft_free(struct raft *r)
{
    if (!r)
        return;
    truncate_from(r, r->snap.index + 1);
    free(r->ents);
    for (size_t i = 0; i < r->n_msgs; i++)
        msg_release(&r->msgs[i]);
    free(r->msgs);
    free(r->rs);
    free(r->reads);
    free(r->snap_data);
    free(r);
}

int raft_load_snapshot(struct raft *r, const struct raft_snapshot_meta *m, struct sc_error *e)
{
    if (r->started)
        return sc_error_set(e, -EBUSY, NULL, "raft already started");
    if (m->index < r->snap.index)
        return 0; /* an older snapshot record */
    if (term_is(r, m->index, m->term))
        log_drop_prefix(r, m->index);
    else
        truncate_from(r, r->snap.index + 1);
    r->snap = *m;
    r->conf = m->conf;
    r->conf_index = m->index;
    r->commit = MAX(r->commit, m->index);
    r->applied = m->index;
    r->stable = last_index(r);
    return 0;
}

int raft_load_entry(struct raft *r, const struct raft_entry *ent, struct sc_error *e)
{
    if (r->started)
        return sc_error_set(e, -EBUSY, NULL, "raft already started");
    if (ent->index <= r->snap.index)
        return 0;
    if (ent->index > last_index(r) + 1)
        return sc_error_set(e, -SC_E_CORRUPT, NULL, "log gap: entry %llu after %llu", U(ent->index),
                            U(last_index(r)));
    truncate_from(r, ent->index);
    if (ent->term < last_term(r))
        return sc_error_set(e, -SC_E_CORRUPT, NULL, "entry %llu has term %llu below %llu",
                            U(ent->index), U(ent->term), U(last_term(r)));
    log_append(r, ent);
    r->stable = last_index(r);
    return 0;
}

int raft_load_hard_state(struct raft *r, const struct raft_hard_state *hs, struct sc_error *e)
{
    if (r->started)
        return sc_error_set(e, -EBUSY, NULL, "raft already started");
    r->term = hs->term;
    r->vote = hs->vote;
    r->commit = MAX(hs->commit, r->snap.index);
    return 0;
}

int raft_start(struct raft *r, struct sc_error *e)
{
    if (r->started)
        return sc_error_set(e, -EBUSY, NULL, "raft already started");
    if (r->commit > last_index(r))
        return sc_error_set(e, -SC_E_CORRUPT, NULL,
                            "hard state commit %llu is beyond the last log index %llu",
                            U(r->commit), U(last_index(r)));
    r->hs_done = (struct raft_hard_state){.term = r->term, .vote = r->vote, .commit = r->commit};
    if (r->term < last_term(r)) /* a bootstrap snapshot: persisted with the next update */
        r->term = last_term(r);
    /* committed configuration changes are in force at once; the entries are
     * handed out again for the state machine, which re-applies them */
    for (raft_index_t i = r->snap.index + 1; i <= r->commit; i++) {
        const struct raft_entry *ent = entry_at(r, i);
        if (ent->type == RAFT_ENTRY_CONF)
            apply_conf_entry(r, ent);
    }
    pr_sync_conf(r);
    r->applied = r->snap.index;
    r->started = true;
    tracef(r, "%llu started at term %llu, commit %llu, last index %llu", U(r->id), U(r->term),
           U(r->commit), U(last_index(r)));
    return 0;
}

/* ---- views ---------------------------------------------------------------------- */

void raft_get_status(const struct raft *r, struct raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = r->id;
    st->leader = r->lead;
    st->vote = r->vote;
    st->term = r->term;
    st->role = r->role;
    st->commit = r->commit;
    st->applied = r->applied;
    st->first_index = r->snap.index + 1;
    st->last_index = last_index(r);
    st->stable_index = r->stable;
    st->snapshot = r->snap;
    st->conf = r->conf;
    st->transferee = r->transferee;
}

size_t raft_get_progress(const struct raft *r, struct raft_progress_info *out, size_t max)
{
    static const char *const names[] = {"probe", "replicate", "snapshot"};
    if (r->role != RAFT_LEADER)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < r->n_prs && n < max; i++) {
        const struct progress *pr = &r->prs[i];
        out[n++] = (struct raft_progress_info){
            .id = pr->id,
            .match = pr->match,
            .next = pr->next,
            .state = names[pr->state],
            .recent_active = pr->recent_active,
            .learner = !raft_conf_is_voter(&r->conf, pr->id),
            .inflight = pr->infl_n,
        };
    }
    return n;
}

raft_index_t raft_first_index(const struct raft *r)
{
    return r->snap.index + 1;
}

raft_index_t raft_last_index(const struct raft *r)
{
    return last_index(r);
}

const struct raft_entry *raft_entry_at(const struct raft *r, raft_index_t index)
{
    return entry_at(r, index);
}
