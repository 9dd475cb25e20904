/*
 * raft.h: SwiftCube's Raft core, a pure state machine in the style of etcd's raft
 * and cowsql/raft (docs/raft.md has the design, the state diagram, the invariants
 * and where each rule of the thesis is enforced).
 *
 * The core does no I/O, reads no clock, starts no thread and draws no random
 * number of its own: time comes in as raft_tick(), the network as raft_step(),
 * the client as raft_propose()/raft_read_index()/raft_propose_conf_change()/
 * raft_transfer_leader(), and the election-timeout jitter from a PRNG seeded by
 * raft_config.seed.  Everything the core wants done comes out of raft_ready() as
 * one struct raft_update, which the caller executes in this order:
 *
 *   1. persist the snapshot (if any), the entries (an entry with index i replaces
 *      every entry >= i already stored: WAL override semantics) and then the hard
 *      state, and make them durable;
 *   2. send the messages (only now: votes and acknowledgements promise durability);
 *   3. install the snapshot into the state machine, then apply the committed
 *      entries in order, and serve the read states whose index is applied;
 *   4. call raft_advance(): that is the acknowledgement "persisted up to the last
 *      entry of this update, snapshot persisted, committed entries applied".
 *
 * Between raft_ready() and raft_advance() no other raft_* call may be made on the
 * same struct raft: the update borrows the core's memory.
 *
 * A fresh cluster is bootstrapped by loading the same snapshot meta at index 1,
 * term 1 (the initial configuration, empty state machine) on every initial member;
 * a member joining later starts with nothing loaded and receives a snapshot.  A
 * restart loads what was persisted (raft_load_*) and then calls raft_start().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

typedef uint64_t raft_id_t; /* a member id, never 0 */
typedef uint64_t raft_term_t;
typedef uint64_t raft_index_t;

/* Limits (TigerBeetle's "put a limit on everything"). */
#define RAFT_MAX_MEMBERS     16         /* voters + learners, old and new config */
#define RAFT_MAX_INFLIGHT    256        /* appends in flight per follower */
#define RAFT_MAX_ENTRY_BYTES (8u << 20) /* one proposal (fits a WAL record) */
#define RAFT_MAX_MSG_ENTRIES 65536      /* entries in one decoded message */
#define RAFT_MAX_READS       4096       /* pending ReadIndex requests */
#define RAFT_MAX_SNAP_BYTES  (1u << 30) /* snapshot payload in one decoded message */

enum raft_role { RAFT_FOLLOWER, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

enum raft_entry_type { RAFT_ENTRY_NORMAL = 0, RAFT_ENTRY_CONF = 1 };

/* One log entry.  In an update, data points into the core (valid until
 * raft_advance); `ref` is the core's, callers leave it alone (NULL in entries
 * they build themselves). */
struct raft_entry {
    raft_term_t term;
    raft_index_t index;
    enum raft_entry_type type;
    const uint8_t *data;
    size_t len;
    void *ref;
};

/* A configuration.  voters is the incoming (or only) majority; outgoing is
 * non-empty only in a joint configuration (thesis 4.3): decisions then need a
 * majority of both.  learners_next are outgoing voters that become learners when
 * the joint configuration is left. */
struct raft_conf {
    uint8_t n_voters, n_outgoing, n_learners, n_learners_next;
    bool auto_leave; /* the leader leaves the joint config by itself */
    raft_id_t voters[RAFT_MAX_MEMBERS], outgoing[RAFT_MAX_MEMBERS];
    raft_id_t learners[RAFT_MAX_MEMBERS], learners_next[RAFT_MAX_MEMBERS];
};

struct raft_snapshot_meta {
    raft_index_t index; /* last entry the snapshot covers */
    raft_term_t term;   /* its term */
    struct raft_conf conf;
};

struct raft_hard_state {
    raft_term_t term;
    raft_id_t vote;
    raft_index_t commit;
};

/* Membership change, the payload of a RAFT_ENTRY_CONF entry.  Zero items means
 * "leave the joint configuration".  AUTO makes a simple change when at most one
 * voter changes and otherwise enters a joint configuration left automatically;
 * JOINT_IMPLICIT always enters joint and leaves automatically; JOINT_EXPLICIT
 * enters joint and waits for the caller to propose the empty change. */
enum raft_cc_type { RAFT_CC_ADD_VOTER = 1, RAFT_CC_ADD_LEARNER = 2, RAFT_CC_REMOVE = 3 };
enum raft_cc_transition {
    RAFT_CC_AUTO = 0,
    RAFT_CC_JOINT_IMPLICIT = 1,
    RAFT_CC_JOINT_EXPLICIT = 2
};
struct raft_cc_item {
    enum raft_cc_type type;
    raft_id_t id;
};
struct raft_conf_change {
    enum raft_cc_transition transition;
    uint8_t n;
    struct raft_cc_item items[RAFT_MAX_MEMBERS];
};
void raft_cc_encode(const struct raft_conf_change *cc, struct sc_buf *out);
int raft_cc_decode(const uint8_t *p, size_t n, struct raft_conf_change *cc);
/* Computes the configuration after cc (etcd's confchange rules); -EINVAL with
 * nothing changed if cc is not allowed on `in`. */
int raft_conf_apply(const struct raft_conf *in, const struct raft_conf_change *cc,
                    struct raft_conf *out);
bool raft_conf_is_voter(const struct raft_conf *c, raft_id_t id); /* incoming or outgoing */
bool raft_conf_has(const struct raft_conf *c, raft_id_t id);      /* any role */
bool raft_conf_equal(const struct raft_conf *a, const struct raft_conf *b);
bool raft_conf_valid(const struct raft_conf *c); /* the shape a decoded conf must have */

/* ---- messages ---------------------------------------------------------- */

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,     /* index/log_term: previous entry; entries; commit */
    RAFT_MSG_APPEND_RESP,    /* index: last matching entry, or rejected index + hints */
    RAFT_MSG_VOTE,           /* index/log_term: candidate's last entry */
    RAFT_MSG_VOTE_RESP,      /* reject */
    RAFT_MSG_PRE_VOTE,       /* term: the term the candidate would campaign in */
    RAFT_MSG_PRE_VOTE_RESP,  /* reject */
    RAFT_MSG_HEARTBEAT,      /* commit; ctx: ReadIndex round */
    RAFT_MSG_HEARTBEAT_RESP, /* ctx echoed */
    RAFT_MSG_SNAP,           /* snap meta; snap_data attached by the caller */
    RAFT_MSG_TIMEOUT_NOW,    /* leadership transfer: campaign now */
    RAFT_MSG_READ_INDEX,     /* follower -> leader: ctx */
    RAFT_MSG_READ_INDEX_RESP /* leader -> follower: ctx, index (reject: failed) */
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_READ_INDEX_RESP

/* A message.  The core never fills snap_data: the transport attaches the bytes of
 * the snapshot named by snap (the caller's snapshot file) before sending. */
struct raft_msg {
    enum raft_msg_type type;
    raft_id_t from, to;
    raft_term_t term;
    raft_term_t log_term;
    raft_index_t index;
    raft_index_t commit;
    bool reject;
    bool transfer; /* VOTE/PRE_VOTE from a leadership transfer: ignores leases */
    raft_index_t hint_index;
    raft_term_t hint_term;
    uint64_t ctx;
    const struct raft_entry *entries;
    size_t n_entries;
    struct raft_snapshot_meta snap;
    const uint8_t *snap_data;
    size_t snap_len;
};

/* The snapshot meta (index, term, configuration) as MsgSnap carries it; also
 * what sctld writes at the head of its snapshot files.  Decoding reads from a
 * cursor and fails with -SC_E_CORRUPT. */
struct sc_rd;
void raft_snapshot_meta_encode(const struct raft_snapshot_meta *m, struct sc_buf *out);
int raft_snapshot_meta_decode(struct sc_rd *rd, struct raft_snapshot_meta *m);

/* Compact binary encoding (no framing or checksum: the transport's job). */
void raft_msg_encode(const struct raft_msg *m, struct sc_buf *out);
/* Decodes a whole buffer; data and snap_data borrow from p, entries is allocated:
 * release with raft_msg_done().  -SC_E_CORRUPT on any malformed input. */
int raft_msg_decode(const uint8_t *p, size_t n, struct raft_msg *m);
void raft_msg_done(struct raft_msg *m);

/* Human-readable forms (golden tests, debug logs). */
const char *raft_msg_type_name(enum raft_msg_type t);
const char *raft_role_name(enum raft_role r);
void raft_entry_format(const struct raft_entry *e, struct sc_buf *out);
void raft_msg_format(const struct raft_msg *m, struct sc_buf *out);
void raft_conf_format(const struct raft_conf *c, struct sc_buf *out);

/* ---- the core ------------------------------------------------------------ */

struct raft_config {
    raft_id_t id;
    unsigned election_ticks;  /* base election timeout; jitter up to 2x; default 10 */
    unsigned heartbeat_ticks; /* default 1 */
    uint64_t seed;            /* election jitter */
    size_t max_msg_bytes;     /* entry bytes per append (at least one entry); 1 MiB */
    unsigned max_inflight;    /* appends in flight per follower; default 64 */
    bool pre_vote;            /* thesis 9.6 */
    bool check_quorum;        /* thesis 6.2: leader steps down without a quorum */
    /* Optional decision trace ("1 became leader at term 2"), for tests and logs. */
    void (*trace)(void *ud, const char *line);
    void *trace_ud;
};
void raft_config_default(struct raft_config *c);

struct raft_read_state {
    uint64_t ctx;
    raft_index_t index; /* serve the read once applied >= index */
    bool failed;        /* leadership was lost: answer "retry/unavailable" */
};

struct raft_update {
    bool soft_changed;
    enum raft_role role;
    raft_id_t leader;
    raft_term_t term;

    bool hard_changed;
    struct raft_hard_state hard;

    const struct raft_snapshot_meta *snapshot; /* to persist and install, or NULL */
    const uint8_t *snap_data;
    size_t snap_len;

    const struct raft_entry *entries; /* to persist (may override a suffix) */
    size_t n_entries;
    const struct raft_msg *msgs; /* to send after persisting */
    size_t n_msgs;
    const struct raft_entry *committed; /* to apply */
    size_t n_committed;
    const struct raft_read_state *reads;
    size_t n_reads;
    bool must_sync; /* hard state or entries changed: fsync before sending */
};

struct raft_progress_info {
    raft_id_t id;
    raft_index_t match, next;
    const char *state; /* "probe", "replicate", "snapshot" */
    bool recent_active, learner;
    unsigned inflight;
};

struct raft_status {
    raft_id_t id, leader, vote;
    raft_term_t term;
    enum raft_role role;
    raft_index_t commit, applied, first_index, last_index, stable_index;
    struct raft_snapshot_meta snapshot;
    struct raft_conf conf;
    raft_id_t transferee;
};

struct raft;

int raft_new(const struct raft_config *c, struct raft **ret, struct sc_error *e);
void raft_free(struct raft *r);

/* Restoring persisted state, before raft_start(), in any order the WAL replays:
 * an entry at or below the loaded snapshot is ignored, an entry with index i
 * replaces every loaded entry >= i, a gap is -SC_E_CORRUPT, a snapshot past the
 * loaded entries (or not matching them) drops them. */
int raft_load_snapshot(struct raft *r, const struct raft_snapshot_meta *m, struct sc_error *e);
int raft_load_entry(struct raft *r, const struct raft_entry *ent, struct sc_error *e);
int raft_load_hard_state(struct raft *r, const struct raft_hard_state *hs, struct sc_error *e);
/* Validates what was loaded (commit within the log) and starts as a follower.
 * Committed entries after the snapshot are handed out again to re-apply. */
int raft_start(struct raft *r, struct sc_error *e);

void raft_tick(struct raft *r);
/* A message from the network; messages for another id, of unknown type or from
 * a stale term are dropped (returns 0: dropping is normal in Raft). */
int raft_step(struct raft *r, const struct raft_msg *m);
/* Leader only: -SC_E_NOT_LEADER elsewhere, -EBUSY during a leadership transfer,
 * -SC_E_VALUE_TOO_LARGE over RAFT_MAX_ENTRY_BYTES.  *ret_index (optional) is the
 * entry's index: it is committed when an update hands it out to apply. */
int raft_propose(struct raft *r, const void *data, size_t len, raft_index_t *ret_index);
/* Leader only; -EBUSY while an earlier change is not applied; -EINVAL if the
 * change is not allowed on the current configuration. */
int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             raft_index_t *ret_index);
/* Linearizable read (thesis 6.4): a raft_read_state with this ctx appears in a
 * later update; on a follower the request is forwarded to the leader.
 * -SC_E_NOT_LEADER when no leader is known, -ENOBUFS over RAFT_MAX_READS. */
int raft_read_index(struct raft *r, uint64_t ctx);
/* Leader only (thesis 3.10); aborted after an election timeout. */
int raft_transfer_leader(struct raft *r, raft_id_t to);
/* Starts an election now (pre-vote first if configured), as a timeout would. */
int raft_campaign(struct raft *r);
/* The caller took a snapshot of the state machine at index (<= applied, with no
 * configuration change applied after it): the log up to index is dropped and
 * lagging followers get that snapshot (thesis 5.1). */
int raft_compact(struct raft *r, raft_index_t index, struct sc_error *e);

bool raft_has_update(const struct raft *r);
void raft_ready(struct raft *r, struct raft_update *u);
void raft_advance(struct raft *r, struct raft_update *u);

/* Read-only views (metrics, tests, the simulator's checkers). */
void raft_get_status(const struct raft *r, struct raft_status *st);
/* Leader: fills up to max peers (itself included); returns how many. */
size_t raft_get_progress(const struct raft *r, struct raft_progress_info *out, size_t max);
raft_index_t raft_first_index(const struct raft *r);
raft_index_t raft_last_index(const struct raft *r);
/* The entry at index, or NULL if compacted or beyond the log. */
const struct raft_entry *raft_entry_at(const struct raft *r, raft_index_t index);
