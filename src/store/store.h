/*
 * store.h: cubestore, the embedded MVCC key/value store (seed note section 3, SC0).
 *
 * This header is the pure part of the store: an in-memory multi-version index,
 * transactions, leases and the watch cursor.  It does no I/O and reads no clock;
 * durability lives in wal.h/snap.h and is driven by the caller (sctld, and later
 * the Raft log), which feeds committed commands to store_apply() in log order.
 *
 * Every change is a command (struct store_cmd): it is validated, encoded into a
 * log record, made durable, and only then applied.  Applying is deterministic:
 * the same commands in the same order give the same state on every replica.  The
 * single exception is lease expiry time, which is leader-local by design (see
 * "Leases" below) and comes in as the `now` argument.
 *
 * Revisions.  The store has one global revision, 1 when empty.  Each command that
 * changes at least one key takes the next main revision; the changes inside it are
 * numbered by a sub-revision.  Every key remembers, per revision, its value, its
 * create revision, its mod revision and its version (number of puts since create).
 *
 * Compaction.  store_apply(COMPACT c) forgets what is needed only to read at
 * revisions below c: reads and watches below c then fail with -SC_E_COMPACTED.
 *
 * Leases.  A lease has an id and a TTL; keys put with it are deleted (with delete
 * events, at a new revision) when it is revoked.  Expiry is not applied here: the
 * store only tracks deadlines (store_lease_keepalive, store_lease_expired), and
 * the caller proposes a LEASE_REVOKE command for each expired lease, so that with
 * Raft only the leader decides expiry and the decision is replicated.  Deadlines
 * are not persisted: after a restart (or a leader change) every lease gets its
 * full TTL again, as in etcd.
 *
 * Watch.  Every applied change is appended to an in-memory revision log.  A watch
 * is a cursor into it: it holds no copy of events, so a slow watcher costs no
 * memory here; the transport bounds what it has formatted but not yet sent.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/util.h"

typedef int64_t rev_t;

/* Limits.  Like etcd: 1.5 MiB values; keys up to 4 KiB; 128 operations per txn. */
struct store_limits {
    size_t max_key_bytes;
    size_t max_value_bytes;
    size_t max_txn_ops;
};
#define STORE_DEFAULT_MAX_KEY   4096
#define STORE_DEFAULT_MAX_VALUE (3 * 512 * 1024)
#define STORE_DEFAULT_MAX_OPS   128
void store_limits_default(struct store_limits *l);

/* One revision of one key, as readers see it.  Pointers are borrowed from the
 * store and stay valid until the next store_apply() of a COMPACT command. */
struct store_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    rev_t create_rev, mod_rev;
    int64_t version;
    int64_t lease;
};

/* ---- commands ---------------------------------------------------------- */

enum store_op_type { STORE_OP_GET = 1, STORE_OP_PUT = 2, STORE_OP_DELETE = 3 };

/* A key operation.  Byte fields are borrowed from whoever built the command
 * (a decoded log record, a parsed request). */
struct store_op {
    enum store_op_type type;
    const uint8_t *key;
    size_t key_len;
    bool prefix;          /* GET/DELETE: every key starting with key */
    const uint8_t *value; /* PUT */
    size_t value_len;
    int64_t lease;   /* PUT: 0 = none */
    bool prev_kv;    /* PUT/DELETE: return the previous value */
    rev_t rev;       /* GET: read at this revision, 0 = current */
    int64_t limit;   /* GET: at most this many keys, 0 = no limit */
    bool count_only; /* GET: only count */
    bool keys_only;  /* GET: leave values out */
};

enum store_cmp_target {
    STORE_CMP_VERSION = 1,
    STORE_CMP_CREATE = 2,
    STORE_CMP_MOD = 3,
    STORE_CMP_VALUE = 4,
    STORE_CMP_LEASE = 5,
};
enum store_cmp_op { STORE_CMP_EQ = 1, STORE_CMP_NE = 2, STORE_CMP_LT = 3, STORE_CMP_GT = 4 };

/* A comparison on one key; a missing key has version, create, mod and lease 0
 * and an empty value. */
struct store_cmp {
    const uint8_t *key;
    size_t key_len;
    enum store_cmp_target target;
    enum store_cmp_op op;
    int64_t num;          /* VERSION, CREATE, MOD, LEASE */
    const uint8_t *value; /* VALUE */
    size_t value_len;
};

enum store_cmd_type {
    STORE_CMD_TXN = 1, /* also a plain put or delete: a txn with one op */
    STORE_CMD_LEASE_GRANT = 2,
    STORE_CMD_LEASE_REVOKE = 3,
    STORE_CMD_COMPACT = 4,
};

struct store_cmd {
    enum store_cmd_type type;
    /* TXN: if every compare holds, run success[], else failure[], in order; a
     * later op sees what an earlier op of the same txn wrote. */
    struct store_cmp *cmps;
    size_t ncmps;
    struct store_op *success, *failure;
    size_t nsuccess, nfailure;
    /* LEASE_GRANT / LEASE_REVOKE */
    int64_t lease_id;
    int64_t ttl_sec;
    /* COMPACT */
    rev_t compact_rev;
};

/* Checks a command against the limits without touching any store.  Fills e with
 * the offending field ("success[2].key", "ttl", ...). */
int store_cmd_validate(const struct store_cmd *c, const struct store_limits *l, struct sc_error *e);

/* Binary encoding of a command, as stored in a log record.  Decoding borrows byte
 * fields from data and allocates the arrays; free them with store_cmd_done(). */
void store_cmd_encode(const struct store_cmd *c, struct sc_buf *out);
int store_cmd_decode(const uint8_t *data, size_t len, struct store_cmd *ret);
void store_cmd_done(struct store_cmd *c);

/* ---- results ----------------------------------------------------------- */

struct store_op_result {
    enum store_op_type type;
    struct store_kv *kvs; /* GET: the keys; PUT/DELETE: previous values if asked */
    size_t nkvs;
    int64_t count; /* GET: keys matching (before limit); DELETE: keys deleted */
    bool more;     /* GET: limit cut the list */
};

struct store_result {
    rev_t rev;      /* store revision after the command */
    bool succeeded; /* TXN: which branch ran */
    struct store_op_result *ops;
    size_t nops;
    int64_t lease_id, ttl_sec; /* LEASE_GRANT */
};
void store_result_done(struct store_result *r);

/* ---- the store --------------------------------------------------------- */

struct store;

struct store *store_new(const struct store_limits *l);
void store_free(struct store *s);

rev_t store_rev(const struct store *s);
rev_t store_compact_rev(const struct store *s);
size_t store_key_count(const struct store *s); /* live keys at the current revision */
const struct store_limits *store_get_limits(const struct store *s);

/* Applies one committed command.  Returns 0 and fills res, or a negative error
 * when the command is refused as a whole (e.g. -SC_E_LEASE_NOT_FOUND for a put
 * with an unknown lease, -SC_E_COMPACTED for a compaction at or below the
 * current one): a refused command changes nothing.  now is only used for the
 * deadline of a granted lease. */
int store_apply(struct store *s, const struct store_cmd *c, usec_t now, struct store_result *res,
                struct sc_error *e);

/* A read outside the log (a GET op), at op->rev or the current revision. */
int store_read(struct store *s, const struct store_op *op, struct store_op_result *res,
               struct sc_error *e);

/* ---- leases -------------------------------------------------------------- */

bool store_lease_exists(const struct store *s, int64_t id);
/* Pushes the deadline of a lease to now + ttl; returns the TTL. */
int store_lease_keepalive(struct store *s, int64_t id, usec_t now, int64_t *ret_ttl);
/* Seconds left (rounded up) and the TTL of a lease. */
int store_lease_info(const struct store *s, int64_t id, usec_t now, int64_t *ret_left,
                     int64_t *ret_ttl);
/* Gives every lease its full TTL from now (a new Raft leader does this: deadlines
 * are leader-local, so no lease expires early because leadership moved). */
void store_lease_refresh_all(struct store *s, usec_t now);
/* Writes up to max ids of leases whose deadline is <= now; returns how many. */
size_t store_lease_expired(const struct store *s, usec_t now, int64_t *ids, size_t max);
size_t store_lease_count(const struct store *s);

/* ---- watch --------------------------------------------------------------- */

enum store_event_type { STORE_EVENT_PUT = 1, STORE_EVENT_DELETE = 2 };

struct store_event {
    enum store_event_type type;
    struct store_kv kv;   /* DELETE: key, mod_rev = revision of the delete */
    struct store_kv prev; /* valid if has_prev */
    bool has_prev;
    uint64_t pos; /* the event's position in the revision log: the same change has
                   * the same pos for every watch, so a caller may cache its encoding */
};

struct store_watch;

/* Opens a watch on key (or every key under it when prefix) delivering events of
 * revision >= start_rev (0 = from the next revision).  -SC_E_COMPACTED if
 * start_rev is below the compaction revision. */
int store_watch_open(struct store *s, const uint8_t *key, size_t key_len, bool prefix,
                     rev_t start_rev, bool prev_kv, struct store_watch **ret, struct sc_error *e);
/* Returns 1 and the next event, 0 when the watch has caught up, or
 * -SC_E_COMPACTED when compaction overtook it.  Pointers in ev are valid until
 * the next store_apply(). */
int store_watch_next(struct store *s, struct store_watch *w, struct store_event *ev);
/* The revision of the next change the watch has not looked at yet: a watch
 * resumed from it misses nothing (and repeats nothing if the caller stopped at
 * a revision boundary, see store_watch_at_boundary). */
rev_t store_watch_next_rev(const struct store *s, const struct store_watch *w);
/* True when the next change belongs to a later revision than the last one
 * looked at, so stopping here splits no multi-key revision. */
bool store_watch_at_boundary(const struct store *s, const struct store_watch *w);
/* True when the watch has seen every event the store holds. */
bool store_watch_caught_up(const struct store *s, const struct store_watch *w);
void store_watch_close(struct store *s, struct store_watch *w);
size_t store_watch_count(const struct store *s);

/* ---- snapshots ------------------------------------------------------------- */

/* Serialises the whole state (every key revision still held, leases, revisions). */
void store_snapshot_encode(const struct store *s, struct sc_buf *out);
/* Replaces the state of an empty store with a snapshot; lease deadlines become
 * now + TTL. */
int store_snapshot_decode(struct store *s, const uint8_t *data, size_t len, usec_t now,
                          struct sc_error *e);

/* Checks every invariant of the design block in mvcc.c; 0 or -1 with a reason. */
int store_check(const struct store *s, char *why, size_t n);

/* Bytes of memory held by keys and values (for /metrics). */
size_t store_bytes(const struct store *s);
