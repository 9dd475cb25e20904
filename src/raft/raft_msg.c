/*
 * raft_msg.c: the stateless parts of the Raft core: membership changes (their
 * encoding and etcd's confchange rules for simple and joint changes), the
 * binary encoding of messages, and the human-readable forms that golden tests
 * compare.  Decoders never trust their input (they are fuzzed: tests/fuzz).
 *
 * Message encoding, version 1 (integers are LEB128 uvarints unless noted):
 *   u8 version=1, u8 type, from, to, term, log_term, index, commit,
 *   u8 flags (1 reject, 2 transfer), hint_index, hint_term, ctx,
 *   n_entries, then per entry: u8 type, term, bytes data (index = index+1+k),
 *   and for RAFT_MSG_SNAP: snap index, snap term, conf, bytes snap_data.
 *   conf: u8 auto_leave, then four id lists (count, ids).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "raft/raft.h"

/* ---- id lists ------------------------------------------------------------ */

static bool ids_has(const raft_id_t *ids, uint8_t n, raft_id_t id)
{
    for (uint8_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static bool ids_add(raft_id_t *ids, uint8_t *n, raft_id_t id)
{
    if (ids_has(ids, *n, id))
        return true;
    if (*n >= RAFT_MAX_MEMBERS)
        return false;
    /* kept sorted so that configurations compare and print canonically */
    uint8_t i = *n;
    while (i > 0 && ids[i - 1] > id) {
        ids[i] = ids[i - 1];
        i--;
    }
    ids[i] = id;
    (*n)++;
    return true;
}

static void ids_del(raft_id_t *ids, uint8_t *n, raft_id_t id)
{
    for (uint8_t i = 0; i < *n; i++)
        if (ids[i] == id) {
            memmove(ids + i, ids + i + 1, (size_t)(*n - i - 1) * sizeof(*ids));
            (*n)--;
            return;
        }
}

static bool ids_equal(const raft_id_t *a, uint8_t na, const raft_id_t *b, uint8_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

bool raft_conf_is_voter(const struct raft_conf *c, raft_id_t id)
{
    return ids_has(c->voters, c->n_voters, id) || ids_has(c->outgoing, c->n_outgoing, id);
}

bool raft_conf_has(const struct raft_conf *c, raft_id_t id)
{
    return raft_conf_is_voter(c, id) || ids_has(c->learners, c->n_learners, id) ||
           ids_has(c->learners_next, c->n_learners_next, id);
}

bool raft_conf_equal(const struct raft_conf *a, const struct raft_conf *b)
{
    return a->auto_leave == b->auto_leave &&
           ids_equal(a->voters, a->n_voters, b->voters, b->n_voters) &&
           ids_equal(a->outgoing, a->n_outgoing, b->outgoing, b->n_outgoing) &&
           ids_equal(a->learners, a->n_learners, b->learners, b->n_learners) &&
           ids_equal(a->learners_next, a->n_learners_next, b->learners_next, b->n_learners_next);
}

/* ---- membership changes ---------------------------------------------------- */

void raft_cc_encode(const struct raft_conf_change *cc, struct sc_buf *out)
{
    sc_buf_put_u8(out, (uint8_t)cc->transition);
    sc_buf_put_uvarint(out, cc->n);
    for (uint8_t i = 0; i < cc->n; i++) {
        sc_buf_put_u8(out, (uint8_t)cc->items[i].type);
        sc_buf_put_uvarint(out, cc->items[i].id);
    }
}

int raft_cc_decode(const uint8_t *p, size_t n, struct raft_conf_change *cc)
{
    if (n == 0) /* also: no pointer arithmetic on a NULL payload */
        return -SC_E_CORRUPT;
    struct sc_rd rd = sc_rd_make(p, n);
    uint8_t t;
    uint64_t cnt;
    memset(cc, 0, sizeof(*cc));
    if (sc_rd_u8(&rd, &t) < 0 || t > RAFT_CC_JOINT_EXPLICIT || sc_rd_uvarint(&rd, &cnt) < 0 ||
        cnt > RAFT_MAX_MEMBERS)
        return -SC_E_CORRUPT;
    cc->transition = t;
    cc->n = (uint8_t)cnt;
    for (uint8_t i = 0; i < cc->n; i++) {
        uint64_t id;
        if (sc_rd_u8(&rd, &t) < 0 || t < RAFT_CC_ADD_VOTER || t > RAFT_CC_REMOVE ||
            sc_rd_uvarint(&rd, &id) < 0 || id == 0)
            return -SC_E_CORRUPT;
        cc->items[i].type = t;
        cc->items[i].id = id;
    }
    return sc_rd_left(&rd) ? -SC_E_CORRUPT : 0;
}

static bool apply_items(struct raft_conf *c, const struct raft_conf_change *cc)
{
    for (uint8_t i = 0; i < cc->n; i++) {
        raft_id_t id = cc->items[i].id;
        switch (cc->items[i].type) {
        case RAFT_CC_ADD_VOTER:
            ids_del(c->learners, &c->n_learners, id);
            ids_del(c->learners_next, &c->n_learners_next, id);
            if (!ids_add(c->voters, &c->n_voters, id))
                return false;
            break;
        case RAFT_CC_ADD_LEARNER:
            ids_del(c->voters, &c->n_voters, id);
            /* an outgoing voter keeps voting in the old majority until the joint
             * configuration is left: it becomes a learner only then */
            if (ids_has(c->outgoing, c->n_outgoing, id)) {
                if (!ids_add(c->learners_next, &c->n_learners_next, id))
                    return false;
            } else if (!ids_add(c->learners, &c->n_learners, id)) {
                return false;
            }
            break;
        case RAFT_CC_REMOVE:
            ids_del(c->voters, &c->n_voters, id);
            ids_del(c->learners, &c->n_learners, id);
            ids_del(c->learners_next, &c->n_learners_next, id);
            break;
        default:
            return false;
        }
    }
    return true;
}

static unsigned member_count(const struct raft_conf *c)
{
    raft_id_t all[4 * RAFT_MAX_MEMBERS];
    uint8_t n = 0;
    const raft_id_t *lists[4] = {c->voters, c->outgoing, c->learners, c->learners_next};
    uint8_t lens[4] = {c->n_voters, c->n_outgoing, c->n_learners, c->n_learners_next};
    for (int l = 0; l < 4; l++)
        for (uint8_t i = 0; i < lens[l]; i++)
            if (!ids_has(all, n, lists[l][i]))
                all[n++] = lists[l][i];
    return n;
}

/* What a configuration read from a peer or a file must satisfy before the core
 * takes it: every list sorted without repeats (the form ids_add keeps), at least
 * one voter, learners apart from both voter sets, learners_next only while joint,
 * drawn from the outgoing voters and not incoming ones, at most RAFT_MAX_MEMBERS
 * distinct ids in all.  The core sizes its progress table by the last rule. */
static bool ids_sorted(const raft_id_t *ids, uint8_t n)
{
    for (uint8_t i = 1; i < n; i++)
        if (ids[i - 1] >= ids[i])
            return false;
    return true;
}

bool raft_conf_valid(const struct raft_conf *c)
{
    if (c->n_voters == 0 || !ids_sorted(c->voters, c->n_voters) ||
        !ids_sorted(c->outgoing, c->n_outgoing) || !ids_sorted(c->learners, c->n_learners) ||
        !ids_sorted(c->learners_next, c->n_learners_next))
        return false;
    if (c->n_outgoing == 0 && (c->n_learners_next > 0 || c->auto_leave))
        return false;
    for (uint8_t i = 0; i < c->n_learners; i++)
        if (raft_conf_is_voter(c, c->learners[i]))
            return false;
    for (uint8_t i = 0; i < c->n_learners_next; i++)
        if (ids_has(c->voters, c->n_voters, c->learners_next[i]) ||
            !ids_has(c->outgoing, c->n_outgoing, c->learners_next[i]))
            return false;
    return member_count(c) <= RAFT_MAX_MEMBERS;
}

int raft_conf_apply(const struct raft_conf *in, const struct raft_conf_change *cc,
                    struct raft_conf *out)
{
    struct raft_conf c = *in;
    bool joint = in->n_outgoing > 0;
    if (cc->n == 0) { /* leave joint */
        if (!joint)
            return -EINVAL;
        for (uint8_t i = 0; i < c.n_learners_next; i++)
            ids_add(c.learners, &c.n_learners, c.learners_next[i]);
        c.n_learners_next = 0;
        c.n_outgoing = 0;
        c.auto_leave = false;
    } else {
        if (joint)
            return -EINVAL; /* thesis 4.3: one configuration change at a time */
        if (cc->transition == RAFT_CC_AUTO) {
            if (!apply_items(&c, cc))
                return -EINVAL;
            /* a simple change may alter at most one voter (thesis 4.1) */
            unsigned diff = 0;
            for (uint8_t i = 0; i < c.n_voters; i++)
                diff += !ids_has(in->voters, in->n_voters, c.voters[i]);
            for (uint8_t i = 0; i < in->n_voters; i++)
                diff += !ids_has(c.voters, c.n_voters, in->voters[i]);
            if (diff > 1) { /* enter joint instead, left automatically */
                c = *in;
                memcpy(c.outgoing, in->voters, sizeof(c.outgoing));
                c.n_outgoing = in->n_voters;
                c.auto_leave = true;
                if (!apply_items(&c, cc))
                    return -EINVAL;
            }
        } else {
            memcpy(c.outgoing, in->voters, sizeof(c.outgoing));
            c.n_outgoing = in->n_voters;
            c.auto_leave = cc->transition == RAFT_CC_JOINT_IMPLICIT;
            if (!apply_items(&c, cc))
                return -EINVAL;
        }
    }
    if (!raft_conf_valid(&c))
        return -EINVAL;
    *out = c;
    return 0;
}

/* ---- message codec --------------------------------------------------------- */

static void put_ids(struct sc_buf *b, const raft_id_t *ids, uint8_t n)
{
    sc_buf_put_uvarint(b, n);
    for (uint8_t i = 0; i < n; i++)
        sc_buf_put_uvarint(b, ids[i]);
}

static int get_ids(struct sc_rd *rd, raft_id_t *ids, uint8_t *n)
{
    uint64_t cnt;
    if (sc_rd_uvarint(rd, &cnt) < 0 || cnt > RAFT_MAX_MEMBERS)
        return -SC_E_CORRUPT;
    *n = (uint8_t)cnt;
    for (uint8_t i = 0; i < *n; i++)
        if (sc_rd_uvarint(rd, &ids[i]) < 0 || ids[i] == 0)
            return -SC_E_CORRUPT;
    return 0;
}

void raft_snapshot_meta_encode(const struct raft_snapshot_meta *m, struct sc_buf *out)
{
    const struct raft_conf *c = &m->conf;
    sc_buf_put_uvarint(out, m->index);
    sc_buf_put_uvarint(out, m->term);
    sc_buf_put_u8(out, c->auto_leave);
    put_ids(out, c->voters, c->n_voters);
    put_ids(out, c->outgoing, c->n_outgoing);
    put_ids(out, c->learners, c->n_learners);
    put_ids(out, c->learners_next, c->n_learners_next);
}

int raft_snapshot_meta_decode(struct sc_rd *rd, struct raft_snapshot_meta *m)
{
    struct raft_conf *c = &m->conf;
    uint8_t al;
    memset(m, 0, sizeof(*m));
    if (sc_rd_uvarint(rd, &m->index) < 0 || sc_rd_uvarint(rd, &m->term) < 0 ||
        sc_rd_u8(rd, &al) < 0 || al > 1 || get_ids(rd, c->voters, &c->n_voters) < 0 ||
        get_ids(rd, c->outgoing, &c->n_outgoing) < 0 ||
        get_ids(rd, c->learners, &c->n_learners) < 0 ||
        get_ids(rd, c->learners_next, &c->n_learners_next) < 0)
        return -SC_E_CORRUPT;
    c->auto_leave = al;
    if (!raft_conf_valid(c))
        return -SC_E_CORRUPT;
    return 0;
}

void raft_msg_encode(const struct raft_msg *m, struct sc_buf *out)
{
    sc_buf_put_u8(out, 1);
    sc_buf_put_u8(out, (uint8_t)m->type);
    sc_buf_put_uvarint(out, m->from);
    sc_buf_put_uvarint(out, m->to);
    sc_buf_put_uvarint(out, m->term);
    sc_buf_put_uvarint(out, m->log_term);
    sc_buf_put_uvarint(out, m->index);
    sc_buf_put_uvarint(out, m->commit);
    sc_buf_put_u8(out, (uint8_t)((m->reject ? 1 : 0) | (m->transfer ? 2 : 0)));
    sc_buf_put_uvarint(out, m->hint_index);
    sc_buf_put_uvarint(out, m->hint_term);
    sc_buf_put_uvarint(out, m->ctx);
    sc_buf_put_uvarint(out, m->n_entries);
    for (size_t i = 0; i < m->n_entries; i++) {
        sc_buf_put_u8(out, (uint8_t)m->entries[i].type);
        sc_buf_put_uvarint(out, m->entries[i].term);
        sc_buf_put_bytes(out, m->entries[i].data, m->entries[i].len);
    }
    if (m->type == RAFT_MSG_SNAP) {
        raft_snapshot_meta_encode(&m->snap, out);
        sc_buf_put_bytes(out, m->snap_data, m->snap_len);
    }
}

void raft_msg_done(struct raft_msg *m)
{
    free((void *)m->entries);
    m->entries = NULL;
    m->n_entries = 0;
}

int raft_msg_decode(const uint8_t *p, size_t n, struct raft_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (n == 0)
        return -SC_E_CORRUPT;
    struct sc_rd rd = sc_rd_make(p, n);
    uint8_t ver, type, flags;
    uint64_t cnt;
    if (sc_rd_u8(&rd, &ver) < 0 || ver != 1 || sc_rd_u8(&rd, &type) < 0 || type < 1 ||
        type > RAFT_MSG_TYPE_MAX)
        return -SC_E_CORRUPT;
    m->type = type;
    if (sc_rd_uvarint(&rd, &m->from) < 0 || sc_rd_uvarint(&rd, &m->to) < 0 ||
        sc_rd_uvarint(&rd, &m->term) < 0 || sc_rd_uvarint(&rd, &m->log_term) < 0 ||
        sc_rd_uvarint(&rd, &m->index) < 0 || sc_rd_uvarint(&rd, &m->commit) < 0 ||
        sc_rd_u8(&rd, &flags) < 0 || flags > 3 || sc_rd_uvarint(&rd, &m->hint_index) < 0 ||
        sc_rd_uvarint(&rd, &m->hint_term) < 0 || sc_rd_uvarint(&rd, &m->ctx) < 0 ||
        sc_rd_uvarint(&rd, &cnt) < 0)
        return -SC_E_CORRUPT;
    m->reject = flags & 1;
    m->transfer = flags & 2;
    /* each entry takes at least 3 bytes: bound the allocation by the input */
    if (cnt > RAFT_MAX_MSG_ENTRIES || cnt > sc_rd_left(&rd) / 3 ||
        (cnt && m->index > UINT64_MAX - cnt))
        return -SC_E_CORRUPT;
    if (cnt) {
        struct raft_entry *ents = xcalloc(cnt, sizeof(*ents));
        m->entries = ents;
        m->n_entries = cnt;
        for (size_t i = 0; i < cnt; i++) {
            uint8_t et;
            if (sc_rd_u8(&rd, &et) < 0 || et > RAFT_ENTRY_CONF ||
                sc_rd_uvarint(&rd, &ents[i].term) < 0 ||
                sc_rd_bytes(&rd, &ents[i].data, &ents[i].len, RAFT_MAX_ENTRY_BYTES) < 0) {
                raft_msg_done(m);
                return -SC_E_CORRUPT;
            }
            ents[i].type = et;
            ents[i].index = m->index + 1 + i;
        }
    }
    if (m->type == RAFT_MSG_SNAP) {
        if (raft_snapshot_meta_decode(&rd, &m->snap) < 0 ||
            sc_rd_bytes(&rd, &m->snap_data, &m->snap_len, RAFT_MAX_SNAP_BYTES) < 0) {
            raft_msg_done(m);
            return -SC_E_CORRUPT;
        }
    }
    if (sc_rd_left(&rd)) {
        raft_msg_done(m);
        return -SC_E_CORRUPT;
    }
    return 0;
}

/* ---- human-readable forms ---------------------------------------------------- */

const char *raft_msg_type_name(enum raft_msg_type t)
{
    static const char *const names[] = {
        [RAFT_MSG_APPEND] = "MsgApp",
        [RAFT_MSG_APPEND_RESP] = "MsgAppResp",
        [RAFT_MSG_VOTE] = "MsgVote",
        [RAFT_MSG_VOTE_RESP] = "MsgVoteResp",
        [RAFT_MSG_PRE_VOTE] = "MsgPreVote",
        [RAFT_MSG_PRE_VOTE_RESP] = "MsgPreVoteResp",
        [RAFT_MSG_HEARTBEAT] = "MsgHeartbeat",
        [RAFT_MSG_HEARTBEAT_RESP] = "MsgHeartbeatResp",
        [RAFT_MSG_SNAP] = "MsgSnap",
        [RAFT_MSG_TIMEOUT_NOW] = "MsgTimeoutNow",
        [RAFT_MSG_READ_INDEX] = "MsgReadIndex",
        [RAFT_MSG_READ_INDEX_RESP] = "MsgReadIndexResp",
    };
    return (unsigned)t < ELEMENTSOF(names) && names[t] ? names[t] : "MsgUnknown";
}

const char *raft_role_name(enum raft_role r)
{
    switch (r) {
    case RAFT_FOLLOWER:
        return "StateFollower";
    case RAFT_PRE_CANDIDATE:
        return "StatePreCandidate";
    case RAFT_CANDIDATE:
        return "StateCandidate";
    case RAFT_LEADER:
        return "StateLeader";
    }
    return "StateUnknown";
}

static void format_cc(const struct raft_conf_change *cc, struct sc_buf *out)
{
    static const char *const tr[] = {"", " joint", " joint-explicit"};
    if (cc->n == 0) {
        sc_buf_printf(out, "leave-joint");
        return;
    }
    for (uint8_t i = 0; i < cc->n; i++)
        sc_buf_printf(out, "%s%c%llu", i ? " " : "", "?vlr"[cc->items[i].type],
                      (unsigned long long)cc -> items[i].id);
    sc_buf_printf(out, "%s", tr[cc->transition]);
}

void raft_entry_format(const struct raft_entry *e, struct sc_buf *out)
{
    sc_buf_printf(out, "%llu/%llu ", (unsigned long long)e->term, (unsigned long long)e->index);
    if (e->type == RAFT_ENTRY_CONF) {
        struct raft_conf_change cc;
        sc_buf_printf(out, "EntryConfChange ");
        if (raft_cc_decode(e->data, e->len, &cc) == 0)
            format_cc(&cc, out);
        else
            sc_buf_printf(out, "<corrupt>");
        return;
    }
    sc_buf_printf(out, "EntryNormal \"");
    for (size_t i = 0; i < e->len; i++) {
        uint8_t c = e->data[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            sc_buf_put_u8(out, c);
        else
            sc_buf_printf(out, "\\x%02x", c);
    }
    sc_buf_printf(out, "\"");
}

static void format_ids(struct sc_buf *out, const raft_id_t *ids, uint8_t n)
{
    sc_buf_printf(out, "(");
    for (uint8_t i = 0; i < n; i++)
        sc_buf_printf(out, "%s%llu", i ? " " : "", (unsigned long long)ids[i]);
    sc_buf_printf(out, ")");
}

void raft_conf_format(const struct raft_conf *c, struct sc_buf *out)
{
    sc_buf_printf(out, "voters=");
    format_ids(out, c->voters, c->n_voters);
    if (c->n_outgoing) {
        sc_buf_printf(out, "&&");
        format_ids(out, c->outgoing, c->n_outgoing);
    }
    if (c->n_learners) {
        sc_buf_printf(out, " learners=");
        format_ids(out, c->learners, c->n_learners);
    }
    if (c->n_learners_next) {
        sc_buf_printf(out, " learners_next=");
        format_ids(out, c->learners_next, c->n_learners_next);
    }
    if (c->auto_leave)
        sc_buf_printf(out, " autoleave");
}

void raft_msg_format(const struct raft_msg *m, struct sc_buf *out)
{
    sc_buf_printf(out, "%llu->%llu %s Term:%llu", (unsigned long long)m->from,
                  (unsigned long long)m->to, raft_msg_type_name(m->type),
                  (unsigned long long)m->term);
    switch (m->type) {
    case RAFT_MSG_APPEND:
        sc_buf_printf(out, " Log:%llu/%llu Commit:%llu", (unsigned long long)m->log_term,
                      (unsigned long long)m->index, (unsigned long long)m->commit);
        if (m->n_entries) {
            sc_buf_printf(out, " Entries:[");
            for (size_t i = 0; i < m->n_entries; i++) {
                if (i)
                    sc_buf_printf(out, ", ");
                raft_entry_format(&m->entries[i], out);
            }
            sc_buf_printf(out, "]");
        }
        break;
    case RAFT_MSG_APPEND_RESP:
        if (m->reject)
            sc_buf_printf(out, " Rejected (Hint: %llu/%llu) Index:%llu",
                          (unsigned long long)m->hint_term, (unsigned long long)m->hint_index,
                          (unsigned long long)m->index);
        else
            sc_buf_printf(out, " Index:%llu", (unsigned long long)m->index);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        sc_buf_printf(out, " Log:%llu/%llu%s", (unsigned long long)m->log_term,
                      (unsigned long long)m->index, m->transfer ? " Transfer" : "");
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        sc_buf_printf(out, "%s", m->reject ? " Rejected" : "");
        break;
    case RAFT_MSG_HEARTBEAT:
        sc_buf_printf(out, " Commit:%llu", (unsigned long long)m->commit);
        __attribute__((fallthrough));
    case RAFT_MSG_HEARTBEAT_RESP:
        if (m->ctx)
            sc_buf_printf(out, " Round:%llu", (unsigned long long)m->ctx);
        break;
    case RAFT_MSG_SNAP:
        sc_buf_printf(out, " Snapshot: Index:%llu Term:%llu ", (unsigned long long)m->snap.index,
                      (unsigned long long)m->snap.term);
        raft_conf_format(&m->snap.conf, out);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    case RAFT_MSG_READ_INDEX:
        sc_buf_printf(out, " Ctx:%llu", (unsigned long long)m->ctx);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        sc_buf_printf(out, " Ctx:%llu Index:%llu%s", (unsigned long long)m->ctx,
                      (unsigned long long)m->index, m->reject ? " Rejected" : "");
        break;
    }
}
