/*
 * raftdrv.c: the Raft driver of sctld's store server: feeds the core what the
 * loop collected, executes its updates (persist, send, install, apply, answer,
 * advance) strictly one at a time, and ticks it; also the leader's housekeeping
 * (lease expiry, automatic compaction, timeouts).  It is the one place that
 * calls raft_* while the server runs, which is what makes invariant 1 hold.
 *
 * Design
 * ------
 * One libevent loop serves every connection and drives one struct raft (the pure
 * core of src/raft); one persist thread (persist.h) owns the disk.  A single node
 * is a cluster of one.  A write request becomes a command, is encoded and handed
 * to raft_propose(), which returns its log index; the request is parked under
 * (index, term).  The driver executes the core's updates strictly one at a time,
 * in the order of the update contract (docs/raft.md):
 *
 *   tick / peer msg / proposal / read ──► raft ──► raft_ready ──► update
 *        (queued while an update is in flight: the next update takes them all)
 *   update ──► persist thread: snapshot file, ENTRY + STATE records, fdatasync
 *                                   │ eventfd (batch sequence number done)
 *   update ◄────────────────────────┘
 *     ├─► send msgs to peers
 *     ├─► install snapshot into a fresh store
 *     ├─► store_apply committed entries ─► answer the parked (index, term)
 *     │                                    (other term at index: 503, lost)
 *     ├─► serve read states once applied ≥ read index
 *     └─► raft_advance ─► snapshot every N applied entries, raft_compact
 *
 * Invariants (4 is in watch.c, 6 in recover.c, 7 in members.c):
 *  1. At most one update is in flight; no raft_* call is made between
 *     raft_ready and raft_advance (events in the meantime are queued, bounded).
 *  2. Nothing is answered before it is committed and applied; an entry is applied
 *     only after it is durable (the update persists before it applies).
 *  3. parked proposals are sorted by index (srv_park, pending.c); applying index
 *     i resolves every parked proposal <= i, answering the one with the same
 *     (i, term) and failing the others as lost.
 *  5. Lease expiry is only proposed by the leader (a REVOKE through the log),
 *     never applied directly, so every member reaches the same state; a new
 *     leader gives every lease its full TTL again.
 */
#include <errno.h>
#include <event2/event.h>
#include <unistd.h>

#include "base/log.h"
#include "sctld/server_int.h"
#include "store/snap.h"

#define MAX_INBOX        8192               /* received raft messages waiting for the core */
#define PROPOSAL_TIMEOUT (2 * USEC_PER_SEC) /* then 503 "outcome unknown" */

static void fatal_disk(struct srv *s, int err, const char *msg)
{
    log_error("msg=\"the log cannot be written; stopping\" error=\"%s\" detail=\"%s\"",
              sc_err_message(err), msg);
    struct sc_error e;
    sc_error_set(&e, -SC_E_INTERNAL, NULL, "the write-ahead log failed: %s", msg);
    for (int list = 0; list < 2; list++)
        for (struct srv_proposal *p = list ? s->qhead : s->head; p; p = p->next)
            if (p->req) {
                srv_conn_forget(s, p->conn, p, NULL);
                srv_send_error(s, p->req, -SC_E_INTERNAL, &e);
                p->req = NULL;
            }
    s->exit_code = -EIO;
    event_base_loopbreak(s->base);
}

static void put_hard_state(struct persist *p, const struct raft_hard_state *hs)
{
    uint8_t b[24];
    sc_put_u64le(b, hs->term);
    sc_put_u64le(b + 8, hs->vote);
    sc_put_u64le(b + 16, hs->commit);
    struct wal_record rec = {
        .type = WAL_REC_STATE, .term = hs->term, .index = hs->commit, .data = b, .len = 24};
    persist_record(p, &rec);
}

/* Step 1 of the contract: hands what to persist to the thread.  Returns true
 * when the update must wait for the batch (entries, snapshot or a vote). */
static bool update_persist(struct srv *s, const struct raft_update *u)
{
    bool wait = false;
    if (u->snapshot) {
        struct sc_buf file = {0};
        srv_snap_encode(u->snapshot, u->snap_data, u->snap_len, &file);
        persist_install_snapshot(&s->persist, u->snapshot->term, u->snapshot->index, file.data,
                                 file.len);
        sc_buf_free(&file);
        wait = true;
    }
    for (size_t i = 0; i < u->n_entries; i++) {
        const struct raft_entry *ent = &u->entries[i];
        /* the payload's first byte tells a configuration change from a command */
        struct sc_buf b = {0};
        sc_buf_put_u8(&b, (uint8_t)ent->type);
        sc_buf_put(&b, ent->data, ent->len);
        struct wal_record rec = {.type = WAL_REC_ENTRY,
                                 .term = ent->term,
                                 .index = ent->index,
                                 .data = b.data,
                                 .len = b.len};
        persist_record(&s->persist, &rec);
        sc_buf_free(&b);
        wait = true;
    }
    if (u->hard_changed)
        put_hard_state(&s->persist, &u->hard);
    if (wait || u->must_sync) {
        s->upd_seq = persist_commit(&s->persist, u->must_sync || wait);
        return true;
    }
    if (u->hard_changed) /* only the commit index moved: no need to wait for it */
        persist_commit(&s->persist, false);
    return false;
}

static void apply_entry(struct srv *s, const struct raft_entry *ent, usec_t now)
{
    struct store_result res = {0};
    struct sc_error e = {0};
    struct store_cmd cmd;
    int r = 0;
    bool is_cmd = ent->type == RAFT_ENTRY_NORMAL && ent->len > 0;
    if (is_cmd) {
        r = store_cmd_decode(ent->data, ent->len, &cmd);
        if (r < 0) {
            log_error("msg=\"committed entry does not decode; skipped\" index=%llu",
                      (unsigned long long)ent->index);
            is_cmd = false;
        } else {
            r = store_apply(s->store, &cmd, now, &res, &e);
            if (cmd.type == STORE_CMD_LEASE_REVOKE)
                u64map_del(&s->revoking, (uint64_t)cmd.lease_id);
            if (cmd.type == STORE_CMD_COMPACT)
                s->compact_in_flight = false;
        }
    }
    s->applied_index = ent->index;
    if (ent->type == RAFT_ENTRY_CONF)
        srv_cc_applied(s, ent);
    while (s->head && s->head->index <= ent->index) {
        struct srv_proposal *p = s->head;
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->nparked--;
        if (p->index == ent->index && p->term == ent->term && is_cmd)
            srv_reply_applied(s, p, r, &e, &res);
        else
            srv_fail_proposal(s, p, -SC_E_NOT_LEADER,
                              "leadership changed before this write was committed; it was not "
                              "applied, retry");
        srv_proposal_free(p);
    }
    if (is_cmd) {
        store_result_done(&res);
        store_cmd_done(&cmd);
    }
}

static void install_snapshot(struct srv *s, const struct raft_update *u, usec_t now)
{
    struct store *fresh = store_new(&s->cfg.limits);
    struct sc_error e = {0};
    int r = store_snapshot_decode(fresh, u->snap_data, u->snap_len, now, &e);
    if (r < 0) {
        /* The leader's snapshot is committed state: we cannot continue without it. */
        log_error("msg=\"received snapshot does not load\" index=%llu error=\"%s\"",
                  (unsigned long long)u->snapshot->index, e.msg);
        store_free(fresh);
        fatal_disk(s, r, "received snapshot does not load");
        return;
    }
    while (s->streams)
        srv_stream_end(s, s->streams, -SC_E_COMPACTED,
                       "this member installed a snapshot from the leader; resume from "
                       "resume_revision or later");
    srv_sched_forget(s);
    store_free(s->store);
    s->store = fresh;
    srv_fmt_reset(s);
    s->applied_index = s->snap_index = u->snapshot->index;
    s->snap_meta = *u->snapshot;
    while (s->head && s->head->index <= u->snapshot->index) {
        struct srv_proposal *p = s->head;
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->nparked--;
        srv_fail_proposal(s, p, -SC_E_NOT_LEADER,
                          "leadership changed before this write was committed; outcome unknown");
        srv_proposal_free(p);
    }
    log_info("msg=\"installed snapshot\" index=%llu term=%llu revision=%lld",
             (unsigned long long)u->snapshot->index, (unsigned long long)u->snapshot->term,
             (long long)store_rev(s->store));
}

/* Step 2 of the contract: hands every message to the peer transport (MsgSnap
 * gets the bytes of the snapshot it names attached). */
static void send_msgs(struct srv *s, const struct raft_update *u)
{
    struct sc_buf b = {0}, file = {0};
    const uint8_t *st = NULL;
    size_t stlen = 0;
    for (size_t i = 0; i < u->n_msgs; i++) {
        struct raft_msg m = u->msgs[i];
        if (m.type == RAFT_MSG_SNAP) {
            /* Read once per update from the snapshot file: lagging followers are
             * rare, and keeping a store-sized copy in memory for them is not. */
            struct raft_snapshot_meta fm = {0};
            uint64_t ft, fi;
            struct sc_error e = {0};
            if (!st && snap_load_latest(s->snap_dir, &wal_io_posix, &ft, &fi, &file, &e) == 1 &&
                srv_snap_decode(file.data, file.len, &fm, &st, &stlen) == 0 &&
                fm.index != m.snap.index)
                st = NULL;
            if (!st) {
                log_warn("msg=\"snapshot to send is not on disk yet; skipped\" index=%llu",
                         (unsigned long long)m.snap.index);
                sc_buf_reset(&file);
                continue;
            }
            m.snap_data = st;
            m.snap_len = stlen;
        }
        sc_buf_reset(&b);
        raft_msg_encode(&m, &b);
        if (!s->net || !peer_net_send(s->net, m.to, b.data, b.len))
            s->peer_dropped++;
    }
    sc_buf_free(&b);
    sc_buf_free(&file);
}

void srv_on_peer_msg(void *ud, uint64_t from, const uint8_t *payload, size_t len)
{
    struct srv *s = ud;
    if (s->ninbox >= MAX_INBOX) { /* Raft retries what is dropped */
        s->peer_dropped++;
        return;
    }
    sc_buf_put_u32le(&s->inbox, (uint32_t)len);
    sc_buf_put(&s->inbox, payload, len);
    s->ninbox++;
    srv_drive(s);
}

static void on_role_change(struct srv *s, enum raft_role old, enum raft_role now_role)
{
    log_info("msg=\"role changed\" from=%s to=%s term=%llu leader=%llx", raft_role_name(old),
             raft_role_name(now_role), (unsigned long long)s->st.term,
             (unsigned long long)s->st.leader);
    if (now_role == RAFT_LEADER) {
        /* Deadlines are leader-local: the new leader gives every lease its full TTL
         * (invariant 5), so no lease expires early because leadership moved. */
        store_lease_refresh_all(s->store, now_usec(CLOCK_MONOTONIC));
        u64map_done(&s->revoking);
        s->compact_in_flight = false;
    }
    if (old == RAFT_LEADER && s->cc_req)
        srv_cc_fail(s, -SC_E_NOT_LEADER,
                    "leadership changed before the membership change was committed; its outcome "
                    "is unknown, check GET /v1/cluster");
}

/* Steps 2-4 of the contract, once the update is durable. */
static void update_finish(struct srv *s)
{
    struct raft_update *u = &s->upd;
    usec_t now = now_usec(CLOCK_MONOTONIC);
    send_msgs(s, u);
    if (u->snapshot)
        install_snapshot(s, u, now);
    for (size_t i = 0; i < u->n_committed; i++)
        apply_entry(s, &u->committed[i], now);
    srv_serve_reads(s, u);
    bool applied = u->n_committed > 0 || u->snapshot;
    bool conf = u->snapshot != NULL;
    for (size_t i = 0; i < u->n_committed; i++)
        conf |= u->committed[i].type == RAFT_ENTRY_CONF;
    enum raft_role old = s->st.role;
    uint64_t old_leader = s->st.leader;
    raft_advance(s->raft, u);
    s->in_flight = false;
    raft_get_status(s->raft, &s->st);
    if (old != s->st.role)
        on_role_change(s, old, s->st.role);
    if (old_leader != s->st.leader) {
        /* reads whose ReadIndex went to the former leader would wait out their
         * 2 s for an answer that never comes (a leader killed): asked again of
         * the new one (a late answer to the old context matches nothing) */
        for (struct srv_pread *pr = s->reads; pr; pr = pr->next)
            if (!pr->ready && pr->ctx != UINT64_MAX)
                pr->ctx = 0;
    }
    if (s->fwd_pool.leader && s->fwd_pool.leader != s->st.leader)
        srv_forward_drop_pool(s); /* its connections go to a former leader */
    if (conf)
        srv_sync_peers(s);
    if (applied) {
        srv_pump_all(s);
        srv_maybe_snapshot(s);
    }
    srv_answer_reads(s);
}

/* Feeds what was queued while an update was in flight into the core. */
static void feed(struct srv *s)
{
    for (; s->ticks_pending; s->ticks_pending--)
        raft_tick(s->raft);
    struct sc_rd rd = sc_rd_make(s->inbox.data, s->inbox.len);
    while (sc_rd_left(&rd) > 0) {
        uint32_t len;
        sc_rd_u32le(&rd, &len);
        struct raft_msg m;
        if (raft_msg_decode(rd.p, len, &m) == 0) {
            raft_step(s->raft, &m);
            raft_msg_done(&m);
        } else {
            log_warn("msg=\"undecodable raft message dropped\" bytes=%u", len);
        }
        rd.p += len;
    }
    sc_buf_reset(&s->inbox);
    s->ninbox = 0;
    while (s->qhead) {
        struct srv_proposal *p = s->qhead;
        s->qhead = p->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->nqueued--;
        raft_index_t index = 0;
        int r = raft_propose(s->raft, p->payload.data, p->payload.len, &index);
        if (r < 0) {
            srv_fail_proposal(s, p, r == -EBUSY ? -SC_E_NOT_LEADER : r,
                              r == -EBUSY ? "leadership is being transferred; retry"
                                          : "this member is not the leader; retry");
            srv_proposal_free(p);
            continue;
        }
        raft_get_status(s->raft, &s->st);
        p->index = index;
        p->term = s->st.term;
        srv_park(s, p);
    }
    if (s->cc_queued) { /* after the address key queued before it (invariant 7) */
        s->cc_queued = false;
        raft_index_t index = 0;
        int r = raft_propose_conf_change(s->raft, &s->cc, &index);
        if (r < 0)
            srv_cc_fail(s,
                        r == -EBUSY    ? -SC_E_REV_MISMATCH
                        : r == -EINVAL ? -SC_E_INVALID
                                       : r,
                        r == -EBUSY    ? "another membership change is in progress; retry when it "
                                         "is applied"
                        : r == -EINVAL ? "the change is not allowed on the current configuration"
                                       : "this member is not the leader; retry");
        else {
            raft_get_status(s->raft, &s->st);
            s->cc_index = index;
            s->cc_term = s->st.term;
        }
    }
    struct srv_pread *pr = s->reads;
    while (pr) {
        struct srv_pread *next = pr->next;
        if (pr->ctx == 0) {
            pr->ctx = ++s->read_ctx;
            int r = raft_read_index(s->raft, pr->ctx);
            if (r < 0)
                srv_read_fail(s, pr, r == -ENOBUFS ? -SC_E_NO_QUORUM : -SC_E_NOT_LEADER,
                              r == -ENOBUFS ? "too many reads are waiting; retry later"
                                            : "no leader is known (election in progress or no "
                                              "quorum reachable); retry");
        }
        pr = next;
    }
}

void srv_drive(struct srv *s)
{
    if (!s->raft || s->exit_code)
        return;
    for (int round = 0; !s->in_flight; round++) {
        if (round == 64) { /* let the loop breathe, then continue */
            event_active(s->drive_ev, EV_TIMEOUT, 0);
            return;
        }
        feed(s);
        if (!raft_has_update(s->raft))
            break;
        raft_ready(s->raft, &s->upd);
        s->in_flight = true;
        if (update_persist(s, &s->upd))
            break;
        update_finish(s);
    }
    srv_maybe_finish_shutdown(s);
}

void srv_on_drive(evutil_socket_t fd, short what, void *arg)
{
    srv_drive(arg);
}

void srv_on_durable(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v))
        ;
    int err;
    char msg[256];
    uint64_t done = persist_done(&s->persist, &err, msg, sizeof(msg));
    if (err) {
        fatal_disk(s, err, msg);
        return;
    }
    if (s->in_flight && done >= s->upd_seq) {
        update_finish(s);
        srv_drive(s);
    }
}

/* ---- ticks and housekeeping --------------------------------------------------------- */

/* Housekeeping every 100 ms: lease expiry and compaction (leader only), proposal
 * and read timeouts, stalled watches. */
static void housekeeping(struct srv *s, usec_t now)
{
    if (!s->shutting_down && s->st.role == RAFT_LEADER) {
        /* Lease expiry: propose a revoke for each expired lease, once. */
        int64_t ids[256];
        size_t n = store_lease_expired(s->store, now, ids, ELEMENTSOF(ids));
        for (size_t i = 0; i < n; i++) {
            if (u64map_get(&s->revoking, (uint64_t)ids[i]))
                continue;
            u64map_put(&s->revoking, (uint64_t)ids[i], (void *)1);
            struct store_cmd cmd = {.type = STORE_CMD_LEASE_REVOKE, .lease_id = ids[i]};
            srv_propose(s, NULL, R_INTERNAL, &cmd, now);
        }
        /* Automatic compaction keeps the last auto_compact_retain revisions. */
        if (s->cfg.auto_compact_retain > 0 && !s->compact_in_flight &&
            now - s->last_compact_check > USEC_PER_SEC) {
            s->last_compact_check = now;
            rev_t target = store_rev(s->store) - s->cfg.auto_compact_retain;
            if (target > store_compact_rev(s->store)) {
                struct store_cmd cmd = {.type = STORE_CMD_COMPACT, .compact_rev = target};
                s->compact_in_flight = true;
                srv_propose(s, NULL, R_INTERNAL, &cmd, now);
            }
        }
    }
    for (struct srv_proposal *p = s->head; p; p = p->next)
        if (p->req && now - p->start > PROPOSAL_TIMEOUT)
            srv_fail_proposal(s, p, -SC_E_NO_QUORUM,
                              "the write was not committed within 2 s (no quorum reachable?); its "
                              "outcome is unknown");
    struct srv_pread *pr = s->reads;
    while (pr) {
        struct srv_pread *next = pr->next;
        if (now - pr->start > PROPOSAL_TIMEOUT)
            srv_read_fail(s, pr, -SC_E_NO_QUORUM,
                          "the read could not be confirmed by a quorum within 2 s; retry");
        pr = next;
    }
    srv_check_stalled(s, now);
    srv_watch_progress(s, now);
}

void srv_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    s->ticks_pending++;
    srv_drive(s);
    srv_sched_pass(s); /* every tick: a quiet pass only drains the view's cursor */
    unsigned every = MAX(1u, 100u / MAX(1u, s->cfg.tick_ms));
    if (++s->tick_count % every == 0) {
        housekeeping(s, now_usec(CLOCK_MONOTONIC));
        srv_maybe_finish_shutdown(s);
    }
}
