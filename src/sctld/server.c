/*
 * server.c: the store server inside sctld, driven by the Raft core.
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
 * Invariants:
 *  1. At most one update is in flight; no raft_* call is made between
 *     raft_ready and raft_advance (events in the meantime are queued, bounded).
 *  2. Nothing is answered before it is committed and applied; an entry is applied
 *     only after it is durable (the update persists before it applies).
 *  3. parked proposals are sorted by index; applying index i resolves every
 *     parked proposal <= i, answering the one with the same (i, term) and failing
 *     the others as lost.
 *  4. A watch stream holds at most watch_buffer_bytes of unsent events (it stops
 *     formatting at the bound and resumes when the socket drains); one that stays
 *     full for watch_stall_usec is cut off with a reason and a resume revision.
 *  5. Lease expiry is only proposed by the leader (a REVOKE through the log),
 *     never applied directly, so every member reaches the same state; a new
 *     leader gives every lease its full TTL again.
 *  6. Recovery = newest snapshot (meta + store) + the WAL's entries after it
 *     (override rule, WAL_REC_SNAPSHOT markers) + newest hard state, then
 *     raft_start, which hands the committed entries out again to apply.
 *  7. Membership: at most one change is in flight (cc_req).  A member's peer
 *     address is a store key, MEMBER_PREFIX + name, written by an entry that
 *     precedes the configuration change adding it, so every member (and every
 *     snapshot) has it before the change applies; sync_peers() makes the peer
 *     transport follow the applied configuration after every configuration
 *     entry, snapshot and restart.  A member that applied a configuration
 *     without itself is `removed` and answers writes with 503.
 */
#include "sctld/server.h"

#include <assert.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <event2/util.h>
#include <jansson.h>

#include "api/kvapi.h"
#include "base/hist.h"
#include "base/log.h"
#include "base/u64map.h"
#include "raft/raft.h"
#include "sctld/peer.h"
#include "sctld/persist.h"
#include "store/snap.h"
#include "store/wal.h"

#define MAX_QUEUED       10000              /* proposals waiting for the next update */
#define PROPOSAL_TIMEOUT (2 * USEC_PER_SEC) /* then 503 "outcome unknown" */
#define SNAP_MAGIC       0x53435253u        /* "SCRS": raft meta + store snapshot */

enum reply_kind {
    R_PUT,
    R_DELETE_KEY,
    R_DELETE_PREFIX,
    R_TXN,
    R_LEASE_GRANT,
    R_LEASE_REVOKE,
    R_COMPACT,
    R_INTERNAL,
    R_MEMBER_ADDR /* the address key written before a member is added */
};

struct proposal {
    uint64_t index, term;       /* 0 while queued for the next update */
    struct evhttp_request *req; /* NULL once the client went away, or internal */
    struct evhttp_connection *conn;
    enum reply_kind kind;
    int64_t lease_id; /* R_INTERNAL revoke: to clear the in-flight mark */
    struct sc_buf payload;
    usec_t start;
    struct proposal *next;
};

struct stream {
    struct srv *srv;
    bool prev_kv;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct store_watch *w;
    usec_t full_since;
    struct stream *prev, *next;
};

/* What we hold for a connection: at most one parked proposal or one stream
 * (HTTP/1.1 answers one request at a time per connection). */
struct conn_state {
    struct proposal *p;
    struct stream *s;
    struct pread *r;
    struct fwd *f;
    bool cc; /* the connection of the pending membership change */
};

/* A write forwarded to the leader (an HTTP reverse proxy hop). */
struct fwd {
    struct srv *srv;
    struct evhttp_request *req; /* the client's; NULL once it went away */
    struct evhttp_connection *conn;
    usec_t start;
};

/* A linearizable read waiting for its ReadIndex (thesis 6.4): served by running
 * the request's handler again once applied >= index. */
struct pread {
    uint64_t ctx;       /* 0 while queued for the next update */
    raft_index_t index; /* known once the read state arrived */
    bool ready;
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    usec_t start;
    struct pread *next;
};

struct srv {
    struct srv_config cfg;
    char wal_dir[4096], snap_dir[4096];
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    struct store *store;
    struct persist persist;
    bool persist_running;
    struct event *wake_ev, *tick_ev, *sigterm_ev, *sigint_ev;
    uint64_t applied_index, snap_index;
    struct proposal *head, *tail; /* parked: handed to raft, sorted by index */
    size_t nparked;
    struct proposal *qhead, *qtail; /* queued: not yet handed to raft */
    size_t nqueued;
    /* Raft */
    struct raft *raft;
    raft_id_t id;
    bool in_flight; /* an update is being executed */
    struct raft_update upd;
    uint64_t upd_seq;
    unsigned ticks_pending, tick_count;
    struct raft_status st;               /* after the last advance */
    struct raft_snapshot_meta snap_meta; /* the latest snapshot; MsgSnap reads its file */
    pid_t snap_pid;                      /* the child writing a snapshot, or 0 */
    int snap_pidfd;
    struct event *snap_ev;
    uint64_t snap_child_index;
    struct event *drive_ev;
    struct pread *reads; /* in arrival order */
    size_t nreads;
    uint64_t read_ctx;
    bool serve_local; /* handle(): the read's index is applied, answer now */
    struct peer_net *net;
    struct sc_buf inbox; /* received raft messages: u32 len + payload each */
    size_t ninbox;
    char client_addr[160]; /* ours, as peers forward to it */
    uint64_t fwd_total, peer_dropped;
    struct u64map conns;
    struct u64map revoking; /* lease ids with a revoke in flight */
    bool compact_in_flight;
    /* Membership changes (invariant 7): at most one in flight, proposed by the
     * leader after the address key of an added member. */
    struct evhttp_request *cc_req;
    struct evhttp_connection *cc_conn;
    struct raft_conf_change cc;
    bool cc_queued;
    uint64_t cc_index, cc_term;
    usec_t cc_start;
    bool removed; /* a configuration without this member was applied */
    struct stream *streams;
    size_t nstreams;
    bool shutting_down, finishing;
    int exit_code;
    struct sc_buf scratch;
    /* Encoded events by revision-log position, shared by every stream without
     * prev_kv: one encoding per event instead of one per watcher. */
    struct {
        uint64_t base;
        size_t n, cap;
        struct {
            uint32_t off, len;
        } * ent;
        struct sc_buf text;
    } fmt;
    usec_t last_compact_check;
    /* metrics */
    struct sc_hist req_hist;
    uint64_t requests, events_sent, cutoffs;
};

void srv_config_default(struct srv_config *c)
{
    *c = (struct srv_config){
        .data_dir = "sctld-data",
        .listen = "127.0.0.1:7400",
        .name = "default",
        .tick_ms = 10,
        .election_ticks = 10,
        .heartbeat_ticks = 1,
        .max_body_bytes = 2u << 20,
        .watch_buffer_bytes = 4u << 20,
        .watch_stall_usec = 5 * USEC_PER_SEC,
        .max_watches = 100000,
        .snapshot_every = 100000,
        .auto_compact_retain = 100000,
        .wal_segment_bytes = 64u << 20,
    };
    store_limits_default(&c->limits);
}

/* ---- replies ----------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Internal Server Error";
    }
}

static void observe(struct srv *s, usec_t start)
{
    s->requests++;
    sc_hist_observe(&s->req_hist, now_usec(CLOCK_MONOTONIC) - start);
}

static void send_json(struct srv *s, struct evhttp_request *req, int status, const struct sc_buf *b)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char rev[24];
    snprintf(rev, sizeof(rev), "%lld", (long long)store_rev(s->store));
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "X-Sc-Revision", rev);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add(out, b->data, b->len);
    evbuffer_add(out, "\n", 1);
    evhttp_send_reply(req, status, reason(status), NULL);
}

static void send_error(struct srv *s, struct evhttp_request *req, int r, const struct sc_error *e)
{
    sc_buf_reset(&s->scratch);
    api_json_error(&s->scratch, r, e);
    send_json(s, req, sc_err_http_status(r), &s->scratch);
}

/* ---- connections ---------------------------------------------------------------- */

static void stream_free(struct srv *s, struct stream *st);

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
    struct srv *s = arg;
    struct conn_state *cs = u64map_del(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs)
        return;
    /* libevent orphans a request whose peer went away mid-reply (its connection
     * becomes NULL) and leaves it to us to finish, which frees it; a request
     * still attached is freed by libevent with the connection. */
    if (cs->p && evhttp_request_get_connection(cs->p->req))
        cs->p->req = NULL; /* the write still happens; nobody is told */
    if (cs->r)
        cs->r->req = NULL;
    if (cs->f)
        cs->f->req = NULL;
    if (cs->cc)
        s->cc_req = NULL; /* the change still happens; nobody is told */
    if (cs->s) {
        if (!evhttp_request_get_connection(cs->s->req))
            evhttp_send_reply_end(cs->s->req);
        stream_free(s, cs->s);
    }
    free(cs);
}

static struct conn_state *conn_state(struct srv *s, struct evhttp_connection *conn)
{
    struct conn_state *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs) {
        cs = xcalloc(1, sizeof(*cs));
        u64map_put(&s->conns, (uint64_t)(uintptr_t)conn, cs);
        evhttp_connection_set_closecb(conn, on_conn_close, s);
    }
    return cs;
}

static void conn_forget(struct srv *s, struct evhttp_connection *conn, struct proposal *p,
                        struct stream *st)
{
    struct conn_state *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs)
        return;
    if (p && cs->p == p)
        cs->p = NULL;
    if (st && cs->s == st)
        cs->s = NULL;
}

/* ---- proposals --------------------------------------------------------------- */

static void drive(struct srv *s);

static void proposal_free(struct proposal *p)
{
    sc_buf_free(&p->payload);
    free(p);
}

/* Queues a command for the next update (invariant 1); drive() hands it to raft. */
static void propose(struct srv *s, struct evhttp_request *req, enum reply_kind kind,
                    const struct store_cmd *cmd, usec_t start)
{
    if (s->nqueued >= MAX_QUEUED) {
        struct sc_error e;
        sc_error_set(&e, -SC_E_NO_QUORUM, NULL,
                     "%zu writes are already waiting for the log; retry later", s->nqueued);
        if (req)
            send_error(s, req, -SC_E_NO_QUORUM, &e);
        return;
    }
    struct proposal *p = xcalloc(1, sizeof(*p));
    p->req = req;
    p->kind = kind;
    p->start = start;
    p->lease_id = cmd->lease_id;
    store_cmd_encode(cmd, &p->payload);
    if (req) {
        p->conn = evhttp_request_get_connection(req);
        conn_state(s, p->conn)->p = p;
    }
    if (s->qtail)
        s->qtail->next = p;
    else
        s->qhead = p;
    s->qtail = p;
    s->nqueued++;
    drive(s);
}

/* Parks p under its (index, term), keeping the list sorted by index. */
static void park(struct srv *s, struct proposal *p)
{
    p->next = NULL;
    if (!s->tail || s->tail->index <= p->index) {
        if (s->tail)
            s->tail->next = p;
        else
            s->head = p;
        s->tail = p;
    } else {
        struct proposal **pp = &s->head;
        while ((*pp)->index <= p->index)
            pp = &(*pp)->next;
        p->next = *pp;
        *pp = p;
    }
    s->nparked++;
}

static void reply_applied(struct srv *s, struct proposal *p, int r, const struct sc_error *e,
                          const struct store_result *res)
{
    struct evhttp_request *req = p->req;
    if (!req)
        return;
    conn_forget(s, p->conn, p, NULL);
    if (r < 0) {
        send_error(s, req, r, e);
        observe(s, p->start);
        return;
    }
    struct sc_buf *b = &s->scratch;
    sc_buf_reset(b);
    switch (p->kind) {
    case R_PUT:
        sc_buf_printf(b, "{\"revision\":%lld", (long long)res->rev);
        if (res->nops && res->ops[0].nkvs) {
            sc_buf_put(b, ",\"prev_kv\":", 11);
            api_json_kv(b, &res->ops[0].kvs[0]);
        }
        sc_buf_put_u8(b, '}');
        break;
    case R_DELETE_KEY:
    case R_DELETE_PREFIX: {
        const struct store_op_result *o = &res->ops[0];
        sc_buf_printf(b, "{\"revision\":%lld,\"deleted\":%lld", (long long)res->rev,
                      (long long)o->count);
        if (o->nkvs) {
            sc_buf_put(b, ",\"prev_kvs\":[", 13);
            for (size_t i = 0; i < o->nkvs; i++) {
                if (i)
                    sc_buf_put_u8(b, ',');
                api_json_kv(b, &o->kvs[i]);
            }
            sc_buf_put_u8(b, ']');
        }
        sc_buf_put_u8(b, '}');
        break;
    }
    case R_TXN:
        api_json_txn_result(b, res);
        break;
    case R_LEASE_GRANT:
        sc_buf_printf(b, "{\"revision\":%lld,\"id\":%lld,\"ttl\":%lld}", (long long)res->rev,
                      (long long)res->lease_id, (long long)res->ttl_sec);
        break;
    case R_LEASE_REVOKE:
        sc_buf_printf(b, "{\"revision\":%lld}", (long long)res->rev);
        break;
    case R_COMPACT:
        sc_buf_printf(b, "{\"revision\":%lld,\"compacted\":%lld}", (long long)res->rev,
                      (long long)store_compact_rev(s->store));
        break;
    case R_INTERNAL:
    case R_MEMBER_ADDR:
        return;
    }
    send_json(s, req, 200, b);
    observe(s, p->start);
}

static void pump_all(struct srv *s);
static void fmt_reset(struct srv *s);
static void maybe_finish_shutdown(struct srv *s);
static void stream_end(struct srv *s, struct stream *st, int r, const char *why);

/* A proposal that will never be applied (or whose fate we stop waiting for). */
static void fail_proposal(struct srv *s, struct proposal *p, int r, const char *why)
{
    if (p->kind == R_INTERNAL) {
        u64map_del(&s->revoking, (uint64_t)p->lease_id);
        s->compact_in_flight = false;
    }
    if (!p->req)
        return;
    struct sc_error e;
    sc_error_set(&e, r, NULL, "%s", why);
    conn_forget(s, p->conn, p, NULL);
    send_error(s, p->req, r, &e);
    observe(s, p->start);
    p->req = NULL;
}

/* ---- snapshots: payload = "SCRS" v1 | raft meta | store snapshot ------------------------ */

static void snap_encode(const struct raft_snapshot_meta *m, const uint8_t *store, size_t len,
                        struct sc_buf *out)
{
    sc_buf_put_u32le(out, SNAP_MAGIC);
    sc_buf_put_u32le(out, 1);
    raft_snapshot_meta_encode(m, out);
    sc_buf_put(out, store, len);
}

static int snap_decode(const uint8_t *p, size_t n, struct raft_snapshot_meta *m,
                       const uint8_t **store, size_t *len)
{
    struct sc_rd rd = sc_rd_make(p, n);
    uint32_t magic, version;
    if (sc_rd_u32le(&rd, &magic) < 0 || magic != SNAP_MAGIC || sc_rd_u32le(&rd, &version) < 0 ||
        version != 1 || raft_snapshot_meta_decode(&rd, m) < 0)
        return -SC_E_CORRUPT;
    *store = rd.p;
    *len = sc_rd_left(&rd);
    return 0;
}

/* The snapshot child writes through this: 1 MiB at a time, each piece on disk
 * before the next.  Written in one go, tens of megabytes of dirty snapshot sit
 * in the journal transaction that the log's next fdatasync has to commit (ext4
 * data=ordered), and that fdatasync then waits for all of it: the bench saw put
 * p99 jump to 1.5 s.  Paced, the log's syncs slip in between the pieces. */
static ssize_t paced_pwrite(void *ud, int fd, const void *buf, size_t n, off_t off)
{
    size_t chunk = MIN(n, (size_t)1 << 20);
    ssize_t w = pwrite(fd, buf, chunk, off);
    if (w < 0)
        return -errno;
    if (sync_file_range(fd, off, w,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER) < 0)
        return -errno;
    return w;
}

/* The snapshot child exited: if it saved the file, the log below it can go. */
static void on_snap_child(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    int st = 0;
    while (waitpid(s->snap_pid, &st, 0) < 0 && errno == EINTR)
        ;
    event_free(s->snap_ev);
    close(s->snap_pidfd);
    s->snap_ev = NULL;
    s->snap_pid = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        persist_compact_log(&s->persist, s->snap_child_index + 1);
        log_info("msg=\"snapshot saved\" index=%llu", (unsigned long long)s->snap_child_index);
    } else {
        log_warn("msg=\"snapshot child failed; the log keeps every entry\" index=%llu status=%d",
                 (unsigned long long)s->snap_child_index, st);
    }
}

/* Every snapshot_every applied entries: snapshot the store, compact the log.
 *
 * The store is encoded and written by a forked child (Redis' BGSAVE): the child
 * sees the store frozen at this instant through copy-on-write, so the loop pays
 * for a fork (page tables, about a millisecond per 100 MB) instead of encoding
 * and copying tens of megabytes, and the file's fsync never queues behind, or
 * in front of, the log's.  The child touches nothing shared but the snapshot
 * directory and exits with _exit.  The WAL keeps every entry until the child
 * reports the file saved, so a failed child costs nothing but the retry. */
static void maybe_snapshot(struct srv *s)
{
    if (s->snap_pid || s->applied_index - s->snap_index < s->cfg.snapshot_every)
        return;
    struct sc_error e = {0};
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    int r = raft_compact(s->raft, s->applied_index, &e);
    if (r < 0) {
        log_warn("msg=\"cannot compact the log\" index=%llu error=\"%s\"",
                 (unsigned long long)s->applied_index, e.msg);
        return;
    }
    raft_get_status(s->raft, &s->st);
    s->snap_meta = s->st.snapshot;
    s->snap_index = s->applied_index;
    usec_t t1 = now_usec(CLOCK_MONOTONIC);
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("msg=\"cannot fork the snapshot writer; the log keeps every entry\" error=\"%s\"",
                 strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Background work: on a small node it must not take the loop's core. */
        (void)!nice(19);
        struct sc_buf file = {0};
        snap_encode(&s->snap_meta, NULL, 0, &file);
        store_snapshot_encode(s->store, &file);
        struct wal_io io = wal_io_posix;
        io.pwrite = paced_pwrite;
        r = snap_save(s->snap_dir, &io, s->snap_meta.term, s->snap_meta.index, file.data, file.len,
                      2, &e);
        if (r < 0)
            log_error("msg=\"snapshot not saved\" error=\"%s\"", e.msg);
        _exit(r < 0 ? 1 : 0);
    }
    s->snap_pid = pid;
    s->snap_child_index = s->snap_meta.index;
    s->snap_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->snap_pidfd < 0) { /* cannot happen on our kernels; wait for it here */
        s->snap_pidfd = -1;
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->snap_pid = 0;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            persist_compact_log(&s->persist, s->snap_child_index + 1);
        return;
    }
    s->snap_ev = event_new(s->base, s->snap_pidfd, EV_READ, on_snap_child, s);
    event_add(s->snap_ev, NULL);
    usec_t t2 = now_usec(CLOCK_MONOTONIC);
    log_info("msg=\"snapshot started\" index=%llu pid=%d compact_us=%llu fork_us=%llu",
             (unsigned long long)s->snap_child_index, (int)pid, (unsigned long long)(t1 - t0),
             (unsigned long long)(t2 - t1));
}

static void fatal_disk(struct srv *s, int err, const char *msg)
{
    log_error("msg=\"the log cannot be written; stopping\" error=\"%s\" detail=\"%s\"",
              sc_err_message(err), msg);
    struct sc_error e;
    sc_error_set(&e, -SC_E_INTERNAL, NULL, "the write-ahead log failed: %s", msg);
    for (int list = 0; list < 2; list++)
        for (struct proposal *p = list ? s->qhead : s->head; p; p = p->next)
            if (p->req) {
                conn_forget(s, p->conn, p, NULL);
                send_error(s, p->req, -SC_E_INTERNAL, &e);
                p->req = NULL;
            }
    s->exit_code = -EIO;
    event_base_loopbreak(s->base);
}

/* ---- the driver: executing raft updates ------------------------------------------------ */

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
        snap_encode(u->snapshot, u->snap_data, u->snap_len, &file);
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

static void cc_applied(struct srv *s, const struct raft_entry *ent);
static void cc_fail(struct srv *s, int r, const char *why);
static void sync_peers(struct srv *s);
static raft_id_t name_id(const char *name);

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
        cc_applied(s, ent);
    while (s->head && s->head->index <= ent->index) {
        struct proposal *p = s->head;
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->nparked--;
        if (p->index == ent->index && p->term == ent->term && is_cmd)
            reply_applied(s, p, r, &e, &res);
        else
            fail_proposal(s, p, -SC_E_NOT_LEADER,
                          "leadership changed before this write was committed; it was not "
                          "applied, retry");
        proposal_free(p);
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
        stream_end(s, s->streams, -SC_E_COMPACTED,
                   "this member installed a snapshot from the leader; resume from "
                   "resume_revision or later");
    store_free(s->store);
    s->store = fresh;
    fmt_reset(s);
    s->applied_index = s->snap_index = u->snapshot->index;
    s->snap_meta = *u->snapshot;
    while (s->head && s->head->index <= u->snapshot->index) {
        struct proposal *p = s->head;
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->nparked--;
        fail_proposal(s, p, -SC_E_NOT_LEADER,
                      "leadership changed before this write was committed; outcome unknown");
        proposal_free(p);
    }
    log_info("msg=\"installed snapshot\" index=%llu term=%llu revision=%lld",
             (unsigned long long)u->snapshot->index, (unsigned long long)u->snapshot->term,
             (long long)store_rev(s->store));
}

static void on_role_change(struct srv *s, enum raft_role old, enum raft_role now_role);
static void serve_reads(struct srv *s, const struct raft_update *u);
static void answer_reads(struct srv *s);
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
                snap_decode(file.data, file.len, &fm, &st, &stlen) == 0 && fm.index != m.snap.index)
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

#define MAX_INBOX 8192

static void on_peer_msg(void *ud, uint64_t from, const uint8_t *payload, size_t len)
{
    struct srv *s = ud;
    if (s->ninbox >= MAX_INBOX) { /* Raft retries what is dropped */
        s->peer_dropped++;
        return;
    }
    sc_buf_put_u32le(&s->inbox, (uint32_t)len);
    sc_buf_put(&s->inbox, payload, len);
    s->ninbox++;
    drive(s);
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
    serve_reads(s, u);
    bool applied = u->n_committed > 0 || u->snapshot;
    bool conf = u->snapshot != NULL;
    for (size_t i = 0; i < u->n_committed; i++)
        conf |= u->committed[i].type == RAFT_ENTRY_CONF;
    enum raft_role old = s->st.role;
    raft_advance(s->raft, u);
    s->in_flight = false;
    raft_get_status(s->raft, &s->st);
    if (old != s->st.role)
        on_role_change(s, old, s->st.role);
    if (conf)
        sync_peers(s);
    if (applied) {
        pump_all(s);
        maybe_snapshot(s);
    }
    answer_reads(s);
}

/* The name of a member (its id in hex when unknown). */
static const char *peer_name(struct srv *s, raft_id_t id)
{
    const struct peer_info *p = peer_net_get(s->net, id);
    if (p && p->name[0])
        return p->name;
    static char buf[24];
    snprintf(buf, sizeof(buf), "%llx", (unsigned long long)id);
    return buf;
}

/* ---- linearizable reads ----------------------------------------------------------------- */

static void handle(struct evhttp_request *req, void *arg);

static void read_remove(struct srv *s, struct pread *pr)
{
    struct pread **pp = &s->reads;
    while (*pp != pr)
        pp = &(*pp)->next;
    *pp = pr->next;
    s->nreads--;
    if (pr->req) {
        struct conn_state *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)pr->conn);
        if (cs && cs->r == pr)
            cs->r = NULL;
    }
    free(pr);
}

static void read_fail(struct srv *s, struct pread *pr, int r, const char *why)
{
    if (pr->req) {
        struct sc_error e;
        sc_error_set(&e, r, NULL, "%s", why);
        send_error(s, pr->req, r, &e);
        observe(s, pr->start);
    }
    read_remove(s, pr);
}

/* True when the caller may answer the read now: its ReadIndex is applied, or the
 * client asked for ?serializable=1.  Otherwise the request waits as a pread. */
static bool read_gate(struct srv *s, struct evhttp_request *req, const struct api_query *q)
{
    bool ser = false;
    struct sc_error e = {0};
    if (s->serve_local || api_query_bool(q, "serializable", &ser, &e) < 0 || ser)
        return true;
    if (s->nreads >= RAFT_MAX_READS) {
        sc_error_set(&e, -SC_E_NO_QUORUM, NULL, "%zu reads are already waiting; retry later",
                     s->nreads);
        send_error(s, req, -SC_E_NO_QUORUM, &e);
        return false;
    }
    struct pread *pr = xcalloc(1, sizeof(*pr));
    pr->req = req;
    pr->conn = evhttp_request_get_connection(req);
    pr->start = now_usec(CLOCK_MONOTONIC);
    struct pread **pp = &s->reads;
    while (*pp)
        pp = &(*pp)->next;
    *pp = pr;
    s->nreads++;
    conn_state(s, pr->conn)->r = pr;
    drive(s);
    return false;
}

static void serve_reads(struct srv *s, const struct raft_update *u)
{
    for (size_t i = 0; i < u->n_reads; i++)
        for (struct pread *pr = s->reads; pr; pr = pr->next)
            if (pr->ctx == u->reads[i].ctx && !pr->ready) {
                pr->ready = true;
                pr->index = u->reads[i].failed ? 0 : u->reads[i].index;
                if (u->reads[i].failed)
                    pr->ctx = UINT64_MAX; /* answered below */
                break;
            }
}

/* Answers every read whose index is applied (and fails the refused ones). */
static void answer_reads(struct srv *s)
{
    struct pread *pr = s->reads;
    while (pr) {
        struct pread *next = pr->next;
        if (pr->ready && pr->ctx == UINT64_MAX) {
            read_fail(s, pr, -SC_E_NOT_LEADER,
                      "leadership changed while confirming this read; retry");
        } else if (pr->ready && pr->index <= s->applied_index) {
            struct evhttp_request *req = pr->req;
            read_remove(s, pr);
            if (req) {
                s->serve_local = true;
                handle(req, s);
                s->serve_local = false;
            }
        }
        pr = next;
    }
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
        cc_fail(s, -SC_E_NOT_LEADER,
                "leadership changed before the membership change was committed; its outcome "
                "is unknown, check GET /v1/cluster");
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
        struct proposal *p = s->qhead;
        s->qhead = p->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->nqueued--;
        raft_index_t index = 0;
        int r = raft_propose(s->raft, p->payload.data, p->payload.len, &index);
        if (r < 0) {
            fail_proposal(s, p, r == -EBUSY ? -SC_E_NOT_LEADER : r,
                          r == -EBUSY ? "leadership is being transferred; retry"
                                      : "this member is not the leader; retry");
            proposal_free(p);
            continue;
        }
        raft_get_status(s->raft, &s->st);
        p->index = index;
        p->term = s->st.term;
        park(s, p);
    }
    if (s->cc_queued) { /* after the address key queued before it (invariant 7) */
        s->cc_queued = false;
        raft_index_t index = 0;
        int r = raft_propose_conf_change(s->raft, &s->cc, &index);
        if (r < 0)
            cc_fail(s,
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
    struct pread *pr = s->reads;
    while (pr) {
        struct pread *next = pr->next;
        if (pr->ctx == 0) {
            pr->ctx = ++s->read_ctx;
            int r = raft_read_index(s->raft, pr->ctx);
            if (r < 0)
                read_fail(s, pr, r == -ENOBUFS ? -SC_E_NO_QUORUM : -SC_E_NOT_LEADER,
                          r == -ENOBUFS ? "too many reads are waiting; retry later"
                                        : "no leader is known (election in progress or no "
                                          "quorum reachable); retry");
        }
        pr = next;
    }
}

static void drive(struct srv *s)
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
    maybe_finish_shutdown(s);
}

static void on_drive(evutil_socket_t fd, short what, void *arg)
{
    drive(arg);
}

static void on_durable(evutil_socket_t fd, short what, void *arg)
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
        drive(s);
    }
}

/* ---- watch streams ---------------------------------------------------------- */

static void stream_free(struct srv *s, struct stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->nstreams--;
    store_watch_close(s->store, st->w);
    free(st);
}

/* Ends a stream with a last error line (and a resume revision), then forgets it. */
static void stream_end(struct srv *s, struct stream *st, int r, const char *why)
{
    struct evbuffer *chunk = evbuffer_new();
    if (r) {
        struct sc_buf b = {0};
        struct sc_error e;
        sc_error_set(&e, r, "rev", "%s", why);
        api_json_error(&b, r, &e);
        b.len -= 2; /* reopen the error object to add the resume revision */
        sc_buf_printf(&b, ",\"resume_revision\":%lld}}\n",
                      (long long)store_watch_next_rev(s->store, st->w));
        evbuffer_add(chunk, b.data, b.len);
        sc_buf_free(&b);
        evhttp_send_reply_chunk(st->req, chunk);
    }
    evbuffer_free(chunk);
    evhttp_send_reply_end(st->req);
    conn_forget(s, st->conn, NULL, st);
    stream_free(s, st);
}

static void on_stream_flushed(struct evhttp_connection *conn, void *arg);

static size_t stream_unsent(const struct stream *st)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(st->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void fmt_reset(struct srv *s)
{
    s->fmt.n = 0;
    s->fmt.base = 0;
    sc_buf_reset(&s->fmt.text);
}

/* Appends the encoding of ev to b, through the shared cache when it can. */
static void encode_event(struct srv *s, const struct stream *st, const struct store_event *ev,
                         struct sc_buf *b)
{
    if (st->prev_kv || s->fmt.text.len > (8u << 20)) {
        api_json_event(b, ev);
        return;
    }
    if (s->fmt.n == 0)
        s->fmt.base = ev->pos;
    if (ev->pos < s->fmt.base || ev->pos - s->fmt.base > (1u << 20)) {
        api_json_event(b, ev);
        return;
    }
    size_t i = (size_t)(ev->pos - s->fmt.base);
    if (i >= s->fmt.n) {
        s->fmt.ent = sc_grow(s->fmt.ent, &s->fmt.cap, i + 1, sizeof(*s->fmt.ent));
        memset(&s->fmt.ent[s->fmt.n], 0, (i + 1 - s->fmt.n) * sizeof(*s->fmt.ent));
        s->fmt.n = i + 1;
    }
    if (s->fmt.ent[i].len == 0) {
        size_t off = s->fmt.text.len;
        api_json_event(&s->fmt.text, ev);
        s->fmt.ent[i].off = (uint32_t)off;
        s->fmt.ent[i].len = (uint32_t)(s->fmt.text.len - off);
    }
    sc_buf_put(b, s->fmt.text.data + s->fmt.ent[i].off, s->fmt.ent[i].len);
}

/* Formats events until the stream is caught up or its buffer is full. */
static void pump(struct srv *s, struct stream *st)
{
    size_t unsent = stream_unsent(st), limit = s->cfg.watch_buffer_bytes;
    struct sc_buf *b = &s->scratch;
    sc_buf_reset(b);
    int r = 0;
    size_t n = 0;
    for (;;) {
        if (unsent + b->len >= limit && store_watch_at_boundary(s->store, st->w))
            break;
        struct store_event ev;
        r = store_watch_next(s->store, st->w, &ev);
        if (r <= 0)
            break;
        encode_event(s, st, &ev, b);
        n++;
    }
    if (b->len) {
        struct evbuffer *chunk = evbuffer_new();
        evbuffer_add(chunk, b->data, b->len);
        evhttp_send_reply_chunk_with_cb(st->req, chunk, on_stream_flushed, st);
        evbuffer_free(chunk);
        s->events_sent += n;
    }
    if (r < 0) {
        stream_end(s, st, r, "compaction overtook this watch; resume from a newer revision");
        return;
    }
    if (r > 0 || !store_watch_caught_up(s->store, st->w)) {
        if (!st->full_since)
            st->full_since = now_usec(CLOCK_MONOTONIC);
    } else {
        st->full_since = 0;
    }
}

static void on_stream_flushed(struct evhttp_connection *conn, void *arg)
{
    struct stream *st = arg;
    struct srv *s = st->srv;
    /* The stream may have ended since this chunk was queued. */
    struct conn_state *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs || cs->s != st)
        return;
    st->full_since = 0;
    pump(s, st);
}

static void pump_all(struct srv *s)
{
    fmt_reset(s);
    struct stream *st = s->streams;
    while (st) {
        struct stream *next = st->next; /* pump may end st */
        pump(s, st);
        st = next;
    }
}

static void check_stalled(struct srv *s, usec_t now)
{
    struct stream *st = s->streams;
    while (st) {
        struct stream *next = st->next;
        if (st->full_since && now - st->full_since > s->cfg.watch_stall_usec) {
            char why[200];
            snprintf(why, sizeof(why),
                     "watcher too slow: %zu bytes of events unread for %llu ms (limit %zu bytes); "
                     "resume from resume_revision",
                     stream_unsent(st), (unsigned long long)(now - st->full_since) / 1000,
                     s->cfg.watch_buffer_bytes);
            log_warn("msg=\"watch cut off\" reason=\"%s\"", why);
            s->cutoffs++;
            stream_end(s, st, -SC_E_WATCH_SLOW, why);
        }
        st = next;
    }
}

static void start_watch(struct srv *s, struct evhttp_request *req, const uint8_t *key, size_t klen,
                        bool prefix, const struct api_query *q)
{
    struct sc_error e = {0};
    int64_t rev;
    bool prev;
    int r;
    if ((r = api_query_int(q, "rev", 0, &rev, &e)) < 0 ||
        (r = api_query_bool(q, "prev_kv", &prev, &e)) < 0)
        return send_error(s, req, r, &e);
    if (s->nstreams >= s->cfg.max_watches) {
        sc_error_set(&e, -SC_E_TOO_MANY_WATCHES, "watch", "the server holds %zu watches, its limit",
                     s->nstreams);
        return send_error(s, req, -SC_E_TOO_MANY_WATCHES, &e);
    }
    struct store_watch *w;
    r = store_watch_open(s->store, key, klen, prefix, rev, prev, &w, &e);
    if (r < 0)
        return send_error(s, req, r, &e);
    struct stream *st = xcalloc(1, sizeof(*st));
    st->srv = s;
    st->req = req;
    st->conn = evhttp_request_get_connection(req);
    st->w = w;
    st->prev_kv = prev;
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    conn_state(s, st->conn)->s = st;

    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char rv[24];
    snprintf(rv, sizeof(rv), "%lld", (long long)store_rev(s->store));
    evhttp_add_header(h, "Content-Type", "application/x-ndjson");
    evhttp_add_header(h, "X-Sc-Revision", rv);
    evhttp_send_reply_start(req, 200, "OK");
    struct evbuffer *chunk = evbuffer_new();
    evbuffer_add_printf(chunk, "{\"created\":true,\"revision\":%lld}\n",
                        (long long)store_rev(s->store));
    evhttp_send_reply_chunk(req, chunk);
    evbuffer_free(chunk);
    pump(s, st);
}

/* ---- handlers --------------------------------------------------------------- */

static int body_of(struct srv *s, struct evhttp_request *req, char **ret, size_t *len,
                   struct sc_error *e)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > s->cfg.max_body_bytes)
        return sc_error_set(e, -SC_E_BODY_TOO_LARGE, "body", "body is %zu bytes, the limit is %zu",
                            n, s->cfg.max_body_bytes);
    *ret = (char *)evbuffer_pullup(in, -1);
    if (!*ret)
        *ret = "";
    *len = n;
    return 0;
}

static bool writable(struct srv *s, struct evhttp_request *req)
{
    if (!s->shutting_down)
        return true;
    struct sc_error e;
    sc_error_set(&e, -SC_E_SHUTTING_DOWN, NULL, "sctld is shutting down; retry on another member");
    send_error(s, req, -SC_E_SHUTTING_DOWN, &e);
    return false;
}

static void handle_kv(struct srv *s, struct evhttp_request *req, const char *rawkey, size_t rawlen,
                      bool has_key, const struct api_query *q, usec_t start)
{
    struct sc_error e = {0};
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    _cleanup_free_ uint8_t *key = NULL;
    size_t klen = 0;
    int r;
    bool prefix = false;
    if (has_key) {
        if (api_percent_decode(rawkey, rawlen, &key, &klen) < 0)
            return send_error(
                s, req, sc_error_set(&e, -SC_E_INVALID, "key", "bad percent-escape in the key"),
                &e);
    } else {
        size_t pl;
        const char *p = api_query_get(q, "prefix", &pl);
        if (!p)
            return send_error(
                s, req,
                sc_error_set(&e, -SC_E_INVALID, "prefix", "give a key (/v1/kv/KEY) or ?prefix=P"),
                &e);
        key = xmemdup(p, pl + 1);
        klen = pl;
        prefix = true;
    }
    if (klen > s->cfg.limits.max_key_bytes)
        return send_error(s, req,
                          sc_error_set(&e, -SC_E_KEY_TOO_LARGE, "key",
                                       "key is %zu bytes, the limit is %zu", klen,
                                       s->cfg.limits.max_key_bytes),
                          &e);
    bool watch = false, prev = false;
    if ((r = api_query_bool(q, "watch", &watch, &e)) < 0 ||
        (r = api_query_bool(q, "prev_kv", &prev, &e)) < 0)
        return send_error(s, req, r, &e);

    if (m == EVHTTP_REQ_GET && watch)
        return start_watch(s, req, key, klen, prefix, q);
    if (m == EVHTTP_REQ_GET) {
        if (!read_gate(s, req, q))
            return;
        struct store_op op = {.type = STORE_OP_GET, .key = key, .key_len = klen, .prefix = prefix};
        if ((r = api_query_int(q, "rev", 0, &op.rev, &e)) < 0 ||
            (r = api_query_int(q, "limit", 0, &op.limit, &e)) < 0 ||
            (r = api_query_bool(q, "count_only", &op.count_only, &e)) < 0 ||
            (r = api_query_bool(q, "keys_only", &op.keys_only, &e)) < 0)
            return send_error(s, req, r, &e);
        struct store_op_result res;
        r = store_read(s->store, &op, &res, &e);
        if (r < 0)
            return send_error(s, req, r, &e);
        sc_buf_reset(&s->scratch);
        if (prefix) {
            api_json_range_result(&s->scratch, store_rev(s->store), &res);
        } else if (res.nkvs == 0) {
            free(res.kvs);
            sc_error_set(&e, -SC_E_NOT_FOUND, "key", "key \"%.*s\" not found", (int)MIN(klen, 200),
                         (const char *)key);
            return send_error(s, req, -SC_E_NOT_FOUND, &e);
        } else {
            sc_buf_printf(&s->scratch,
                          "{\"revision\":%lld,\"kv\":", (long long)store_rev(s->store));
            api_json_kv(&s->scratch, &res.kvs[0]);
            sc_buf_put_u8(&s->scratch, '}');
        }
        free(res.kvs);
        send_json(s, req, 200, &s->scratch);
        observe(s, start);
        return;
    }
    if (!writable(s, req))
        return;
    if (m == EVHTTP_REQ_PUT && has_key) {
        char *body = NULL;
        size_t blen = 0;
        if ((r = body_of(s, req, &body, &blen, &e)) < 0)
            return send_error(s, req, r, &e);
        struct store_op op = {.type = STORE_OP_PUT,
                              .key = key,
                              .key_len = klen,
                              .value = (const uint8_t *)body,
                              .value_len = blen,
                              .prev_kv = prev};
        if ((r = api_query_int(q, "lease", 0, &op.lease, &e)) < 0)
            return send_error(s, req, r, &e);
        struct store_cmd cmd = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        if ((r = store_cmd_validate(&cmd, &s->cfg.limits, &e)) < 0) {
            /* Name the request's own fields, not the internal txn's. */
            if (r == -SC_E_VALUE_TOO_LARGE)
                sc_error_set(&e, r, "value", "value is %zu bytes, the limit is %zu", blen,
                             s->cfg.limits.max_value_bytes);
            return send_error(s, req, r, &e);
        }
        if (op.lease && !store_lease_exists(s->store, op.lease))
            return send_error(s, req,
                              sc_error_set(&e, -SC_E_LEASE_NOT_FOUND, "lease",
                                           "lease %lld does not exist", (long long)op.lease),
                              &e);
        return propose(s, req, R_PUT, &cmd, start);
    }
    if (m == EVHTTP_REQ_DELETE) {
        struct store_op op = {.type = STORE_OP_DELETE,
                              .key = key,
                              .key_len = klen,
                              .prefix = prefix,
                              .prev_kv = prev};
        struct store_cmd cmd = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        if ((r = store_cmd_validate(&cmd, &s->cfg.limits, &e)) < 0)
            return send_error(s, req, r, &e);
        return propose(s, req, prefix ? R_DELETE_PREFIX : R_DELETE_KEY, &cmd, start);
    }
    sc_error_set(&e, -SC_E_METHOD, "method",
                 has_key ? "use GET, PUT or DELETE on /v1/kv/KEY"
                         : "use GET or DELETE on /v1/kv?prefix=P");
    send_error(s, req, -SC_E_METHOD, &e);
}

static void handle_body_cmd(struct srv *s, struct evhttp_request *req, enum reply_kind kind,
                            usec_t start)
{
    struct sc_error e = {0};
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
        return send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use POST"), &e);
    if (!writable(s, req))
        return;
    char *body = NULL;
    size_t len = 0;
    int r = body_of(s, req, &body, &len, &e);
    if (r < 0)
        return send_error(s, req, r, &e);
    struct api_body b;
    if (kind == R_TXN)
        r = api_decode_txn(body, len, &s->cfg.limits, &b, &e);
    else if (kind == R_LEASE_GRANT)
        r = api_decode_lease_grant(body, len, &b, &e);
    else
        r = api_decode_compact(body, len, &b, &e);
    if (r < 0)
        return send_error(s, req, r, &e);
    if (kind == R_LEASE_GRANT && b.cmd.lease_id == 0) {
        do {
            uint64_t x = 0;
            if (getrandom(&x, sizeof(x), 0) != sizeof(x))
                x = now_usec(CLOCK_REALTIME) ^ s->applied_index;
            b.cmd.lease_id = (int64_t)(x >> 1);
        } while (b.cmd.lease_id == 0 || store_lease_exists(s->store, b.cmd.lease_id));
    }
    if (kind == R_COMPACT && (b.cmd.compact_rev <= store_compact_rev(s->store) ||
                              b.cmd.compact_rev > store_rev(s->store))) {
        r = b.cmd.compact_rev > store_rev(s->store) ? -SC_E_FUTURE_REV : -SC_E_COMPACTED;
        sc_error_set(&e, r, "revision",
                     "cannot compact to %lld: compacted up to %lld, current %lld",
                     (long long)b.cmd.compact_rev, (long long)store_compact_rev(s->store),
                     (long long)store_rev(s->store));
        api_body_done(&b);
        return send_error(s, req, r, &e);
    }
    propose(s, req, kind, &b.cmd, start);
    api_body_done(&b);
}

static void handle_lease(struct srv *s, struct evhttp_request *req, const char *rest,
                         const struct api_query *q, usec_t start)
{
    struct sc_error e = {0};
    char *end;
    errno = 0;
    long long id = strtoll(rest, &end, 10);
    if (end == rest || errno || id <= 0 || (*end && strcmp(end, "/keepalive") != 0))
        return send_error(s, req,
                          sc_error_set(&e, -SC_E_INVALID, "id",
                                       "expected /v1/leases/ID or /v1/leases/ID/keepalive"),
                          &e);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    usec_t now = now_usec(CLOCK_MONOTONIC);
    int64_t ttl, left;
    int r;
    if (*end) { /* keepalive */
        if (m != EVHTTP_REQ_POST)
            return send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use POST"), &e);
        if (s->st.role != RAFT_LEADER) /* deadlines live on the leader (invariant 5) */
            return send_error(
                s, req,
                sc_error_set(&e, -SC_E_NOT_LEADER, NULL, "this member is not the leader; retry"),
                &e);
        if ((r = store_lease_keepalive(s->store, id, now, &ttl)) < 0)
            return send_error(s, req, sc_error_set(&e, r, "id", "lease %lld does not exist", id),
                              &e);
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch, "{\"revision\":%lld,\"id\":%lld,\"ttl\":%lld}",
                      (long long)store_rev(s->store), id, (long long)ttl);
        send_json(s, req, 200, &s->scratch);
        return observe(s, start);
    }
    if (m == EVHTTP_REQ_GET) {
        if (!read_gate(s, req, q))
            return;
        if ((r = store_lease_info(s->store, id, now, &left, &ttl)) < 0)
            return send_error(s, req, sc_error_set(&e, r, "id", "lease %lld does not exist", id),
                              &e);
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch,
                      "{\"revision\":%lld,\"id\":%lld,\"ttl\":%lld,\"remaining\":%lld}",
                      (long long)store_rev(s->store), id, (long long)ttl, (long long)left);
        send_json(s, req, 200, &s->scratch);
        return observe(s, start);
    }
    if (m == EVHTTP_REQ_DELETE) {
        if (!writable(s, req))
            return;
        if (!store_lease_exists(s->store, id))
            return send_error(
                s, req,
                sc_error_set(&e, -SC_E_LEASE_NOT_FOUND, "id", "lease %lld does not exist", id), &e);
        struct store_cmd cmd = {.type = STORE_CMD_LEASE_REVOKE, .lease_id = id};
        return propose(s, req, R_LEASE_REVOKE, &cmd, start);
    }
    send_error(s, req,
               sc_error_set(&e, -SC_E_METHOD, "method", "use GET or DELETE, or POST .../keepalive"),
               &e);
}

static void handle_metrics(struct srv *s, struct evhttp_request *req)
{
    struct sc_buf b = {0};
    struct sc_hist fsync;
    struct wal_stats ws;
    persist_stats(&s->persist, &fsync, &ws);
    sc_buf_printf(&b,
                  "# TYPE sc_store_revision gauge\nsc_store_revision %lld\n"
                  "# TYPE sc_store_compact_revision gauge\nsc_store_compact_revision %lld\n"
                  "# TYPE sc_store_keys gauge\nsc_store_keys %zu\n"
                  "# TYPE sc_store_leases gauge\nsc_store_leases %zu\n"
                  "# TYPE sc_store_bytes gauge\nsc_store_bytes %zu\n"
                  "# TYPE sc_watchers gauge\nsc_watchers %zu\n"
                  "# TYPE sc_raft_applied_index gauge\nsc_raft_applied_index %llu\n"
                  "# TYPE sc_wal_bytes_written_total counter\nsc_wal_bytes_written_total %llu\n"
                  "# TYPE sc_wal_syncs_total counter\nsc_wal_syncs_total %llu\n"
                  "# TYPE sc_wal_segments gauge\nsc_wal_segments %llu\n"
                  "# TYPE sc_wal_disk_bytes gauge\nsc_wal_disk_bytes %llu\n"
                  "# TYPE sc_http_requests_total counter\nsc_http_requests_total %llu\n"
                  "# TYPE sc_watch_events_sent_total counter\nsc_watch_events_sent_total %llu\n"
                  "# TYPE sc_watch_cutoffs_total counter\nsc_watch_cutoffs_total %llu\n",
                  (long long)store_rev(s->store), (long long)store_compact_rev(s->store),
                  store_key_count(s->store), store_lease_count(s->store), store_bytes(s->store),
                  s->nstreams, (unsigned long long)s->applied_index,
                  (unsigned long long)ws.bytes_written, (unsigned long long)ws.syncs,
                  (unsigned long long)ws.segments, (unsigned long long)ws.disk_bytes,
                  (unsigned long long)s->requests, (unsigned long long)s->events_sent,
                  (unsigned long long)s->cutoffs);
    sc_buf_printf(&b,
                  "# TYPE sc_raft_term gauge\nsc_raft_term %llu\n"
                  "# TYPE sc_raft_leader gauge\nsc_raft_leader %llu\n"
                  "# TYPE sc_raft_is_leader gauge\nsc_raft_is_leader %d\n"
                  "# TYPE sc_raft_commit_index gauge\nsc_raft_commit_index %llu\n"
                  "# TYPE sc_raft_last_index gauge\nsc_raft_last_index %llu\n",
                  (unsigned long long)s->st.term, (unsigned long long)s->st.leader,
                  s->st.role == RAFT_LEADER, (unsigned long long)s->st.commit,
                  (unsigned long long)s->st.last_index);
    if (s->st.role == RAFT_LEADER && !s->in_flight) {
        struct raft_progress_info pi[RAFT_MAX_MEMBERS];
        size_t n = raft_get_progress(s->raft, pi, RAFT_MAX_MEMBERS);
        sc_buf_printf(&b, "# TYPE sc_raft_peer_match_lag gauge\n");
        for (size_t i = 0; i < n; i++)
            if (pi[i].id != s->id)
                sc_buf_printf(
                    &b, "sc_raft_peer_match_lag{peer=\"%s\"} %llu\n", peer_name(s, pi[i].id),
                    (unsigned long long)(s->st.last_index - MIN(pi[i].match, s->st.last_index)));
    }
    sc_hist_render(&fsync, "sc_wal_fsync_duration_seconds", "WAL write+fdatasync time per batch",
                   &b);
    sc_hist_render(&s->req_hist, "sc_http_request_duration_seconds", "request time to reply", &b);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char rev[24];
    snprintf(rev, sizeof(rev), "%lld", (long long)store_rev(s->store));
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4");
    evhttp_add_header(h, "X-Sc-Revision", rev);
    evbuffer_add(evhttp_request_get_output_buffer(req), b.data, b.len);
    evhttp_send_reply(req, 200, "OK", NULL);
    sc_buf_free(&b);
}

/* ---- cluster: forwarding and membership view ------------------------------------------- */

static void fwd_done(struct evhttp_request *res, void *arg)
{
    struct fwd *f = arg;
    struct srv *s = f->srv;
    struct evhttp_request *req = f->req;
    if (req) {
        struct conn_state *cs =
            u64map_get(&s->conns, (uint64_t)(uintptr_t)evhttp_request_get_connection(req));
        if (cs && cs->f == f)
            cs->f = NULL;
        int code = res ? evhttp_request_get_response_code(res) : 0;
        if (code == 0) {
            struct sc_error e;
            sc_error_set(&e, -SC_E_NO_QUORUM, NULL,
                         "the leader did not answer the forwarded request; its outcome is "
                         "unknown, retry");
            send_error(s, req, -SC_E_NO_QUORUM, &e);
        } else {
            struct evkeyvalq *in = evhttp_request_get_input_headers(res);
            struct evkeyvalq *out = evhttp_request_get_output_headers(req);
            const char *ct = evhttp_find_header(in, "Content-Type");
            const char *rev = evhttp_find_header(in, "X-Sc-Revision");
            evhttp_add_header(out, "Content-Type", ct ? ct : "application/json");
            if (rev)
                evhttp_add_header(out, "X-Sc-Revision", rev);
            evbuffer_add_buffer(evhttp_request_get_output_buffer(req),
                                evhttp_request_get_input_buffer(res));
            evhttp_send_reply(req, code, reason(code), NULL);
        }
        observe(s, f->start);
    }
    free(f);
}

/* Any member accepts any write: a follower relays it to the leader's client
 * address (learned from the leader's hello frame), once: X-Sc-Forwarded stops loops. */
static void forward(struct srv *s, struct evhttp_request *req, usec_t start)
{
    struct sc_error e = {0};
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const struct peer_info *li = s->st.leader ? peer_net_get(s->net, s->st.leader) : NULL;
    if (!s->st.leader)
        return send_error(s, req,
                          sc_error_set(&e, -SC_E_NO_QUORUM, NULL,
                                       "no leader is known: an election is in progress or this "
                                       "member cannot reach a quorum; retry"),
                          &e);
    if (evhttp_find_header(h, "X-Sc-Forwarded") || !li || !li->client_addr[0])
        return send_error(s, req,
                          sc_error_set(&e, -SC_E_NOT_LEADER, NULL,
                                       "this member is not the leader and cannot forward to it "
                                       "(leader %llx, address %s); retry",
                                       (unsigned long long)s->st.leader,
                                       li && li->client_addr[0] ? li->client_addr : "unknown"),
                          &e);
    char host[128];
    const char *colon = strrchr(li->client_addr, ':');
    size_t hl = colon ? (size_t)(colon - li->client_addr) : 0;
    if (!colon || hl >= sizeof(host))
        return send_error(s, req, sc_error_set(&e, -SC_E_NOT_LEADER, NULL, "bad leader address"),
                          &e);
    memcpy(host, li->client_addr, hl);
    host[hl] = '\0';
    struct fwd *f = xcalloc(1, sizeof(*f));
    f->srv = s;
    f->req = req;
    f->start = start;
    f->conn = evhttp_connection_base_new(s->base, NULL, host, (uint16_t)atoi(colon + 1));
    evhttp_connection_set_timeout(f->conn, 2);
    struct evhttp_request *out = evhttp_request_new(fwd_done, f);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(out);
    evhttp_add_header(oh, "Host", li->client_addr);
    evhttp_add_header(oh, "X-Sc-Forwarded", s->cfg.name);
    const char *ct = evhttp_find_header(h, "Content-Type");
    if (ct)
        evhttp_add_header(oh, "Content-Type", ct);
    evbuffer_add_buffer(evhttp_request_get_output_buffer(out),
                        evhttp_request_get_input_buffer(req));
    conn_state(s, evhttp_request_get_connection(req))->f = f;
    s->fwd_total++;
    if (evhttp_make_request(f->conn, out, evhttp_request_get_command(req),
                            evhttp_request_get_uri(req)) < 0)
        return; /* libevent already called fwd_done(NULL) */
    evhttp_connection_free_on_completion(f->conn);
}

static void json_str(struct sc_buf *b, const char *v)
{
    sc_buf_put_u8(b, '"');
    for (const char *p = v; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            sc_buf_printf(b, "\\u%04x", (unsigned char)*p);
        else
            sc_buf_put_u8(b, (uint8_t)*p);
    sc_buf_put_u8(b, '"');
}

static void cluster_member(struct srv *s, struct sc_buf *b, raft_id_t id, const char *role,
                           const struct raft_progress_info *pi, size_t npi, bool *first)
{
    const struct peer_info *p = peer_net_get(s->net, id);
    bool self = id == s->id;
    sc_buf_printf(b, "%s{\"id\":\"%llx\",\"name\":", *first ? "" : ",", (unsigned long long)id);
    json_str(b, self ? s->cfg.name : p ? p->name : "");
    sc_buf_put(b, ",\"peer\":", 8);
    json_str(b, self ? (s->cfg.peer_listen ? s->cfg.peer_listen : "") : p ? p->peer_addr : "");
    sc_buf_put(b, ",\"client\":", 10);
    json_str(b, self ? s->client_addr : p ? p->client_addr : "");
    sc_buf_printf(b, ",\"role\":\"%s\",\"leader\":%s", role, id == s->st.leader ? "true" : "false");
    for (size_t i = 0; i < npi; i++)
        if (pi[i].id == id)
            sc_buf_printf(b, ",\"match\":%llu", (unsigned long long)pi[i].match);
    sc_buf_put_u8(b, '}');
    *first = false;
}

static void handle_cluster(struct srv *s, struct evhttp_request *req)
{
    struct sc_error e = {0};
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        return send_error(
            s, req,
            sc_error_set(&e, -SC_E_METHOD, "method", "use GET (changes: /v1/cluster/members)"), &e);
    struct raft_progress_info pi[2 * RAFT_MAX_MEMBERS];
    size_t npi = s->st.role == RAFT_LEADER && !s->in_flight
                     ? raft_get_progress(s->raft, pi, ELEMENTSOF(pi))
                     : 0;
    struct sc_buf *b = &s->scratch;
    sc_buf_reset(b);
    sc_buf_printf(
        b, "{\"revision\":%lld,\"term\":%llu,\"leader\":\"%llx\",\"self\":\"%llx\",\"members\":[",
        (long long)store_rev(s->store), (unsigned long long)s->st.term,
        (unsigned long long)s->st.leader, (unsigned long long)s->id);
    const struct raft_conf *c = &s->st.conf;
    bool first = true;
    for (uint8_t i = 0; i < c->n_voters; i++)
        cluster_member(s, b, c->voters[i], "voter", pi, npi, &first);
    for (uint8_t i = 0; i < c->n_outgoing; i++) {
        bool dup = false;
        for (uint8_t k = 0; k < c->n_voters; k++)
            dup |= c->voters[k] == c->outgoing[i];
        if (!dup)
            cluster_member(s, b, c->outgoing[i], "voter", pi, npi, &first);
    }
    for (uint8_t i = 0; i < c->n_learners; i++)
        cluster_member(s, b, c->learners[i], "learner", pi, npi, &first);
    sc_buf_put(b, "]}", 2);
    send_json(s, req, 200, b);
}

/* ---- membership (invariant 7) ------------------------------------------------ */

#define MEMBER_PREFIX "/_cluster/members/"

/* A 4xx/5xx with our own error code (the shared table has no "conflict"). */
static void send_coded(struct srv *s, struct evhttp_request *req, int status, const char *code,
                       const char *msg)
{
    struct sc_buf *b = &s->scratch;
    sc_buf_reset(b);
    sc_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    json_str(b, msg);
    sc_buf_put(b, "}}", 2);
    send_json(s, req, status, b);
}

static void cc_reply(struct srv *s, int status, const char *code, const char *msg)
{
    struct evhttp_request *req = s->cc_req;
    s->cc_req = NULL;
    s->cc_queued = false;
    s->cc_index = s->cc_term = 0;
    if (!req)
        return;
    struct conn_state *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)s->cc_conn);
    if (cs)
        cs->cc = false;
    if (status == 200) {
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch, "{\"index\":%llu}", (unsigned long long)s->applied_index);
        send_json(s, req, 200, &s->scratch);
    } else {
        send_coded(s, req, status, code, msg);
    }
    observe(s, s->cc_start);
}

static void cc_fail(struct srv *s, int r, const char *why)
{
    if (r == -SC_E_REV_MISMATCH)
        cc_reply(s, 409, "change_in_progress", why);
    else
        cc_reply(s, sc_err_http_status(r), sc_err_name(r), why);
}

static void cc_applied(struct srv *s, const struct raft_entry *ent)
{
    if (!s->cc_req || !s->cc_index || ent->index != s->cc_index)
        return;
    if (ent->term == s->cc_term)
        cc_reply(s, 200, NULL, NULL);
    else
        cc_fail(s, -SC_E_NOT_LEADER,
                "leadership changed before the membership change was committed; it was not "
                "applied, retry");
}

/* Drops the transport's peers that are not in the applied configuration. */
static void prune_peers(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    if (s->in_flight) { /* no raft_* call while an update is out (invariant 1) */
        event_base_once(s->base, -1, EV_TIMEOUT, prune_peers, s, &(struct timeval){0, 100000});
        return;
    }
    raft_get_status(s->raft, &s->st);
    const struct raft_conf *c = &s->st.conf;
    if (!s->net || (!c->n_voters && !c->n_outgoing && !c->n_learners))
        return;
    const struct peer_info *list[PEER_MAX_MEMBERS];
    size_t n = peer_net_list(s->net, list, PEER_MAX_MEMBERS);
    raft_id_t gone[PEER_MAX_MEMBERS];
    size_t ngone = 0;
    for (size_t i = 0; i < n; i++)
        if (!raft_conf_has(c, list[i]->id))
            gone[ngone++] = list[i]->id;
    for (size_t i = 0; i < ngone; i++) {
        log_info("msg=\"peer removed\" id=%llx", (unsigned long long)gone[i]);
        peer_net_remove(s->net, gone[i]);
    }
}

/* Makes the peer transport follow the applied configuration: members with an
 * address key that the transport lacks are added, peers no longer in the
 * configuration are dropped a second later by prune_peers (initial members
 * keep their --initial-cluster
 * address). */
static void sync_peers(struct srv *s)
{
    raft_get_status(s->raft, &s->st);
    const struct raft_conf *c = &s->st.conf;
    if (!c->n_voters && !c->n_outgoing && !c->n_learners)
        return; /* a joining member before its first snapshot */
    s->removed = !raft_conf_has(c, s->id);
    if (!s->net)
        return;
    struct store_op op = {.type = STORE_OP_GET,
                          .key = (const uint8_t *)MEMBER_PREFIX,
                          .key_len = sizeof(MEMBER_PREFIX) - 1,
                          .prefix = true};
    struct store_op_result res = {0};
    struct sc_error e = {0};
    if (store_read(s->store, &op, &res, &e) == 0) {
        for (size_t i = 0; i < res.nkvs; i++) {
            const struct store_kv *kv = &res.kvs[i];
            char name[64], addr[128];
            size_t nl = kv->key_len - (sizeof(MEMBER_PREFIX) - 1);
            if (nl == 0 || nl >= sizeof(name) || kv->value_len >= sizeof(addr))
                continue;
            memcpy(name, kv->key + sizeof(MEMBER_PREFIX) - 1, nl);
            name[nl] = '\0';
            memcpy(addr, kv->value, kv->value_len);
            addr[kv->value_len] = '\0';
            raft_id_t id = name_id(name);
            if (id != s->id && raft_conf_has(c, id) && !peer_net_get(s->net, id)) {
                log_info("msg=\"peer added\" name=%s addr=%s", name, addr);
                peer_net_add(s->net, id, name, addr);
            }
        }
    }
    free(res.kvs);
    /* Dropped a second later: the messages of this very update (the append that
     * tells a removed member its removal committed) must leave first. */
    event_base_once(s->base, -1, EV_TIMEOUT, prune_peers, s, &(struct timeval){1, 0});
}

static bool member_name_ok(const char *n, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '-' && n[i] != '_' && n[i] != '.')
            return false;
    return true;
}

/* {"name":"c4","peer":"HOST:PORT","learner":true}: name[64], addr[128]. */
static int decode_member(const char *body, size_t len, char *name, char *addr, bool *learner,
                         struct sc_error *e)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    int r = 0;
    const char *k;
    json_t *v, *n, *p, *l;
    if (!json_is_object(j)) {
        r = sc_error_set(e, -SC_E_INVALID, "body", "body must be a JSON object");
        goto out;
    }
    json_object_foreach(j, k, v) if (strcmp(k, "name") && strcmp(k, "peer") && strcmp(k, "learner"))
    {
        r = sc_error_set(e, -SC_E_INVALID, k, "unknown field %s (name, peer, learner)", k);
        goto out;
    }
    n = json_object_get(j, "name");
    p = json_object_get(j, "peer");
    l = json_object_get(j, "learner");
    if (!json_is_string(n) || !member_name_ok(json_string_value(n), json_string_length(n))) {
        r = sc_error_set(e, -SC_E_INVALID, "name",
                         "name must be 1-63 characters of A-Z a-z 0-9 . _ -");
        goto out;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (!json_is_string(p) || json_string_length(p) >= 128 ||
        evutil_parse_sockaddr_port(json_string_value(p), (struct sockaddr *)&ss, &sl) < 0 ||
        !strchr(json_string_value(p), ':') ||
        (ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                 : ((struct sockaddr_in6 *)&ss)->sin6_port) == 0) {
        r = sc_error_set(e, -SC_E_INVALID, "peer",
                         "peer must be the member's peer address, IP:PORT (e.g. 10.0.0.4:7410)");
        goto out;
    }
    if (l && !json_is_boolean(l)) {
        r = sc_error_set(e, -SC_E_INVALID, "learner", "learner must be true or false");
        goto out;
    }
    *learner = !l || json_is_true(l);
    snprintf(name, 64, "%s", json_string_value(n));
    snprintf(addr, 128, "%s", json_string_value(p));
out:
    json_decref(j);
    return r;
}

/* POST /v1/cluster/members, POST /v1/cluster/members/NAME/promote,
 * DELETE /v1/cluster/members/NAME: validated here, on the leader, then one
 * conf change through the log (an added member's address key first). */
static void handle_members(struct srv *s, struct evhttp_request *req, const char *rest, size_t rlen,
                           usec_t start)
{
    struct sc_error e = {0};
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char name[64] = "", addr[128] = "";
    bool learner = true, add = rlen == 0;
    struct raft_conf_change cc = {.transition = RAFT_CC_AUTO, .n = 1};
    if (!writable(s, req))
        return;
    if (add) {
        if (m != EVHTTP_REQ_POST)
            return send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use POST"), &e);
        char *body = NULL;
        size_t len = 0;
        int r = body_of(s, req, &body, &len, &e);
        if (r < 0)
            return send_error(s, req, r, &e);
        if ((r = decode_member(body, len, name, addr, &learner, &e)) < 0)
            return send_error(s, req, r, &e);
    } else {
        const char *n = rest + 1, *slash = memchr(n, '/', rlen - 1);
        size_t nl = slash ? (size_t)(slash - n) : rlen - 1;
        bool promote =
            slash && (size_t)(rest + rlen - slash) == 8 && memcmp(slash, "/promote", 8) == 0;
        if (rest[0] != '/' || (slash && !promote) || !member_name_ok(n, nl))
            return send_error(s, req,
                              sc_error_set(&e, -SC_E_NOT_FOUND, "path",
                                           "use /v1/cluster/members/NAME or .../NAME/promote"),
                              &e);
        if (promote ? m != EVHTTP_REQ_POST : m != EVHTTP_REQ_DELETE)
            return send_error(
                s, req,
                sc_error_set(&e, -SC_E_METHOD, "method", "use %s", promote ? "POST" : "DELETE"),
                &e);
        memcpy(name, n, nl);
        name[nl] = '\0';
        cc.items[0].type = promote ? RAFT_CC_ADD_VOTER : RAFT_CC_REMOVE;
    }
    if (s->st.role != RAFT_LEADER) /* a single member without --peer-listen */
        return send_error(
            s, req,
            sc_error_set(&e, -SC_E_NOT_LEADER, NULL, "this member is not the leader; retry"), &e);
    if (s->cc_req || s->cc_queued || s->st.conf.n_outgoing)
        return send_coded(s, req, 409, "change_in_progress",
                          "another membership change is in progress; retry when it is applied");
    raft_id_t id = name_id(name);
    const struct raft_conf *c = &s->st.conf;
    bool member = raft_conf_has(c, id), voter = raft_conf_is_voter(c, id);
    char msg[200];
    if (add && member) {
        snprintf(msg, sizeof(msg), "a member named %s already exists", name);
        return send_coded(s, req, 409, "member_exists", msg);
    }
    if (!add && !member) {
        snprintf(msg, sizeof(msg), "no member named %s", name);
        return send_coded(s, req, 404, "member_not_found", msg);
    }
    if (!add && cc.items[0].type == RAFT_CC_ADD_VOTER && voter) {
        snprintf(msg, sizeof(msg), "%s is already a voter", name);
        return send_coded(s, req, 409, "already_voter", msg);
    }
    if (cc.items[0].type == RAFT_CC_REMOVE && voter && c->n_voters <= 1)
        return send_coded(s, req, 409, "last_voter", "cannot remove the last voter");
    if (add)
        cc.items[0].type = learner ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER;
    cc.items[0].id = id;
    s->cc = cc;
    s->cc_req = req;
    s->cc_conn = evhttp_request_get_connection(req);
    s->cc_start = start;
    s->cc_queued = true;
    conn_state(s, s->cc_conn)->cc = true;
    if (add) {
        char key[sizeof(MEMBER_PREFIX) + 64];
        snprintf(key, sizeof(key), MEMBER_PREFIX "%s", name);
        struct store_op op = {.type = STORE_OP_PUT,
                              .key = (const uint8_t *)key,
                              .key_len = strlen(key),
                              .value = (const uint8_t *)addr,
                              .value_len = strlen(addr)};
        struct store_cmd cmd = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        propose(s, NULL, R_MEMBER_ADDR, &cmd, start);
    } else {
        drive(s);
    }
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    usec_t start = now_usec(CLOCK_MONOTONIC);
    struct sc_error e = {0};
    const char *uri = evhttp_request_get_uri(req);
    const char *qm = strchr(uri, '?');
    size_t plen = qm ? (size_t)(qm - uri) : strlen(uri);
    struct api_query q;
    int r = api_query_parse(qm ? qm + 1 : NULL, &q, &e);
    if (r < 0)
        return send_error(s, req, r, &e);
#define PATH_IS(lit)    (plen == sizeof(lit) - 1 && memcmp(uri, lit, plen) == 0)
#define PATH_UNDER(lit) (plen > sizeof(lit) - 1 && memcmp(uri, lit, sizeof(lit) - 1) == 0)
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    bool write = m != EVHTTP_REQ_GET &&
                 (PATH_UNDER("/v1/kv/") || PATH_IS("/v1/kv") || PATH_IS("/v1/txn") ||
                  PATH_IS("/v1/leases") || PATH_UNDER("/v1/leases/") || PATH_IS("/v1/compact") ||
                  PATH_IS("/v1/cluster/members") || PATH_UNDER("/v1/cluster/members/"));
    if (write && s->removed) {
        send_error(s, req,
                   sc_error_set(&e, -SC_E_NOT_LEADER, NULL,
                                "this member was removed from the cluster; use another member"),
                   &e);
        api_query_done(&q);
        return;
    }
    if (write && s->st.role != RAFT_LEADER && s->net && !s->shutting_down) {
        forward(s, req, start);
        api_query_done(&q);
        return;
    }
    if (PATH_IS("/v1/cluster"))
        handle_cluster(s, req);
    else if (PATH_IS("/v1/cluster/members") || PATH_UNDER("/v1/cluster/members/"))
        handle_members(s, req, uri + 19, plen - 19, start);
    else if (PATH_UNDER("/v1/kv/"))
        handle_kv(s, req, uri + 7, plen - 7, true, &q, start);
    else if (PATH_IS("/v1/kv"))
        handle_kv(s, req, NULL, 0, false, &q, start);
    else if (PATH_IS("/v1/txn"))
        handle_body_cmd(s, req, R_TXN, start);
    else if (PATH_IS("/v1/leases"))
        handle_body_cmd(s, req, R_LEASE_GRANT, start);
    else if (PATH_UNDER("/v1/leases/")) {
        char rest[64];
        snprintf(rest, sizeof(rest), "%.*s", (int)MIN(plen - 11, 63), uri + 11);
        handle_lease(s, req, rest, &q, start);
    } else if (PATH_IS("/v1/compact"))
        handle_body_cmd(s, req, R_COMPACT, start);
    else if ((PATH_IS("/healthz") || PATH_IS("/metrics")) &&
             evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use GET"), &e);
    else if (PATH_IS("/healthz")) {
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch, "{\"status\":\"%s\",\"revision\":%lld}",
                      s->shutting_down ? "shutting_down" : "ok", (long long)store_rev(s->store));
        send_json(s, req, s->shutting_down ? 503 : 200, &s->scratch);
    } else if (PATH_IS("/metrics"))
        handle_metrics(s, req);
    else
        send_error(s, req,
                   sc_error_set(&e, -SC_E_NOT_FOUND, "path", "no such path: %.*s",
                                (int)MIN(plen, 200), uri),
                   &e);
#undef PATH_IS
#undef PATH_UNDER
    api_query_done(&q);
}

/* ---- timers, signals, shutdown -------------------------------------------------- */

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
            propose(s, NULL, R_INTERNAL, &cmd, now);
        }
        /* Automatic compaction keeps the last auto_compact_retain revisions. */
        if (s->cfg.auto_compact_retain > 0 && !s->compact_in_flight &&
            now - s->last_compact_check > USEC_PER_SEC) {
            s->last_compact_check = now;
            rev_t target = store_rev(s->store) - s->cfg.auto_compact_retain;
            if (target > store_compact_rev(s->store)) {
                struct store_cmd cmd = {.type = STORE_CMD_COMPACT, .compact_rev = target};
                s->compact_in_flight = true;
                propose(s, NULL, R_INTERNAL, &cmd, now);
            }
        }
    }
    for (struct proposal *p = s->head; p; p = p->next)
        if (p->req && now - p->start > PROPOSAL_TIMEOUT)
            fail_proposal(s, p, -SC_E_NO_QUORUM,
                          "the write was not committed within 2 s (no quorum reachable?); its "
                          "outcome is unknown");
    struct pread *pr = s->reads;
    while (pr) {
        struct pread *next = pr->next;
        if (now - pr->start > PROPOSAL_TIMEOUT)
            read_fail(s, pr, -SC_E_NO_QUORUM,
                      "the read could not be confirmed by a quorum within 2 s; retry");
        pr = next;
    }
    check_stalled(s, now);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    s->ticks_pending++;
    drive(s);
    unsigned every = MAX(1u, 100u / MAX(1u, s->cfg.tick_ms));
    if (++s->tick_count % every == 0) {
        housekeeping(s, now_usec(CLOCK_MONOTONIC));
        maybe_finish_shutdown(s);
    }
}

static void maybe_finish_shutdown(struct srv *s)
{
    if (!s->shutting_down || s->in_flight)
        return;
    for (int list = 0; list < 2; list++)
        for (struct proposal *p = list ? s->qhead : s->head; p; p = p->next)
            if (p->req)
                return;
    if (s->finishing)
        return;
    s->finishing = true;
    bool had_streams = s->streams != NULL;
    while (s->streams)
        stream_end(s, s->streams, -SC_E_SHUTTING_DOWN, "sctld is shutting down; resume elsewhere");
    while (s->reads)
        read_fail(s, s->reads, -SC_E_SHUTTING_DOWN, "sctld is shutting down; retry elsewhere");
    /* Give the loop a moment to flush the last lines (or to see the peers gone),
     * so that every connection is closed by libevent itself. */
    struct timeval grace = {0, had_streams ? 200 * 1000 : 0};
    event_base_loopexit(s->base, &grace);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct srv *s = arg;
    if (s->shutting_down)
        return;
    log_info("msg=\"shutting down\" signal=%d parked=%zu watches=%zu", (int)sig, s->nparked,
             s->nstreams);
    s->shutting_down = true;
    if (s->listener) {
        evhttp_del_accept_socket(s->http, s->listener);
        s->listener = NULL;
    }
    maybe_finish_shutdown(s);
}

/* ---- recovery ------------------------------------------------------------------- */

struct wal_ent {
    raft_term_t term;
    raft_index_t index;
    uint8_t *data; /* type byte + payload */
    size_t len;
};

struct replay_ctx {
    struct wal_ent *v;
    size_t n, cap;
    bool has_hs;
    struct raft_hard_state hs;
    struct sc_error *e;
};

static void ents_truncate(struct replay_ctx *c, size_t n)
{
    while (c->n > n)
        free(c->v[--c->n].data);
}

/* Rebuilds the log as the core last knew it: an entry with index i overrides
 * every entry >= i; a WAL_REC_SNAPSHOT marker (a snapshot received from the
 * leader) drops every entry that does not continue it. */
static int replay_one(void *ud, const struct wal_record *rec)
{
    struct replay_ctx *c = ud;
    if (rec->type == WAL_REC_STATE) {
        if (rec->len != 24)
            return sc_error_set(c->e, -SC_E_CORRUPT, "wal", "hard state record of %zu bytes",
                                rec->len);
        c->has_hs = true;
        c->hs.term = sc_get_u64le(rec->data);
        c->hs.vote = sc_get_u64le(rec->data + 8);
        c->hs.commit = sc_get_u64le(rec->data + 16);
        return 0;
    }
    if (rec->type == WAL_REC_SNAPSHOT) {
        size_t k = 0;
        while (k < c->n && c->v[k].index < rec->index)
            k++;
        bool keep = (k < c->n && c->v[k].index == rec->index && c->v[k].term == rec->term) ||
                    (c->n && c->v[0].index == rec->index + 1);
        if (!keep)
            ents_truncate(c, 0);
        return 0;
    }
    if (rec->type != WAL_REC_ENTRY)
        return 0;
    if (rec->len < 1)
        return sc_error_set(c->e, -SC_E_CORRUPT, "wal", "entry %llu has no type byte",
                            (unsigned long long)rec->index);
    if (c->n && (rec->index > c->v[c->n - 1].index + 1 || rec->index < c->v[0].index))
        ents_truncate(c, 0); /* the older ones lie below a snapshot: raft checks the gap */
    else if (c->n)
        ents_truncate(c, (size_t)(rec->index - c->v[0].index));
    c->v = sc_grow(c->v, &c->cap, c->n + 1, sizeof(*c->v));
    c->v[c->n++] = (struct wal_ent){.term = rec->term,
                                    .index = rec->index,
                                    .data = xmemdup(rec->data, rec->len),
                                    .len = rec->len};
    return 0;
}

/* The members named by --initial-cluster (or just this one). */
static int initial_conf(struct srv *s, struct raft_conf *conf);
static raft_id_t name_id(const char *name);

static void raft_trace(void *ud, const char *line)
{
    log_debug("msg=\"raft\" trace=\"%s\"", line);
}

static int recover(struct srv *s, struct wal **ret_wal)
{
    struct sc_error e = {0};
    int r;
    snprintf(s->wal_dir, sizeof(s->wal_dir), "%s/wal", s->cfg.data_dir);
    snprintf(s->snap_dir, sizeof(s->snap_dir), "%s/snap", s->cfg.data_dir);
    if ((r = sc_mkdir_p(s->wal_dir)) < 0 || (r = sc_mkdir_p(s->snap_dir)) < 0) {
        log_error("msg=\"cannot create the data directory\" dir=%s error=\"%s\"", s->cfg.data_dir,
                  strerror(-r));
        return r;
    }
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    struct sc_buf snap = {0};
    uint64_t sterm = 0, sindex = 0;
    r = snap_load_latest(s->snap_dir, &wal_io_posix, &sterm, &sindex, &snap, &e);
    if (r < 0) {
        log_error("msg=\"cannot load the snapshot\" error=\"%s\"", e.msg);
        return r;
    }
    if (e.msg[0])
        log_warn("msg=\"snapshot fallback\" detail=\"%s\"", e.msg);
    bool have_snap = r == 1;
    struct wal_options wo = {.segment_bytes = s->cfg.wal_segment_bytes, .io = &wal_io_posix};
    struct wal *w;
    if ((r = wal_open(s->wal_dir, &wo, &w, &e)) < 0) {
        log_error("msg=\"cannot open the log\" error=\"%s\"", e.msg);
        sc_buf_free(&snap);
        return r;
    }
    struct replay_ctx c = {.e = &e};
    if ((r = wal_replay(w, replay_one, &c, &e)) < 0) {
        log_error("msg=\"log replay failed; refusing to start\" error=\"%s\"", e.msg);
        goto fail;
    }
    if (!have_snap && c.n == 0 && !c.has_hs && !s->cfg.join) {
        /* A fresh member of the initial cluster: every initial member writes the
         * same bootstrap snapshot (index 1, term 1, the initial voters). */
        struct raft_snapshot_meta m = {.index = 1, .term = 1};
        if ((r = initial_conf(s, &m.conf)) < 0)
            goto fail;
        struct store *empty = store_new(&s->cfg.limits);
        struct sc_buf st = {0};
        store_snapshot_encode(empty, &st);
        store_free(empty);
        snap_encode(&m, st.data, st.len, &snap);
        sc_buf_free(&st);
        if ((r = snap_save(s->snap_dir, NULL, 1, 1, snap.data, snap.len, 2, &e)) < 0) {
            log_error("msg=\"cannot write the bootstrap snapshot\" error=\"%s\"", e.msg);
            goto fail;
        }
        have_snap = true;
        log_info("msg=\"bootstrapped a new cluster\" voters=%u", m.conf.n_voters);
    }
    struct raft_config rc;
    raft_config_default(&rc);
    rc.id = s->id;
    rc.election_ticks = s->cfg.election_ticks;
    rc.heartbeat_ticks = s->cfg.heartbeat_ticks;
    rc.pre_vote = true;
    rc.check_quorum = true;
    rc.trace = raft_trace;
    if (getrandom(&rc.seed, sizeof(rc.seed), 0) != sizeof(rc.seed))
        rc.seed = now_usec(CLOCK_REALTIME);
    if ((r = raft_new(&rc, &s->raft, &e)) < 0)
        goto fail;
    if (have_snap) {
        const uint8_t *st;
        size_t stlen;
        if ((r = snap_decode(snap.data, snap.len, &s->snap_meta, &st, &stlen)) < 0) {
            sc_error_set(&e, r, "snapshot",
                         "the newest snapshot has no Raft metadata (a data directory from "
                         "before Raft?)");
            goto fail;
        }
        if ((r = store_snapshot_decode(s->store, st, stlen, t0, &e)) < 0 ||
            (r = raft_load_snapshot(s->raft, &s->snap_meta, &e)) < 0)
            goto fail;
    }
    size_t k = 0;
    while (k < c.n && c.v[k].index < s->snap_meta.index)
        k++;
    if (k < c.n && c.v[k].index == s->snap_meta.index && c.v[k].term != s->snap_meta.term)
        k = c.n; /* stale entries of a log the snapshot replaced */
    for (; k < c.n; k++) {
        struct raft_entry ent = {.term = c.v[k].term,
                                 .index = c.v[k].index,
                                 .type = c.v[k].data[0],
                                 .data = c.v[k].data + 1,
                                 .len = c.v[k].len - 1};
        if ((r = raft_load_entry(s->raft, &ent, &e)) < 0)
            goto fail;
    }
    if (c.has_hs && (r = raft_load_hard_state(s->raft, &c.hs, &e)) < 0)
        goto fail;
    if ((r = raft_start(s->raft, &e)) < 0)
        goto fail;
    raft_get_status(s->raft, &s->st);
    s->applied_index = s->snap_index = s->snap_meta.index;
    log_info("msg=\"recovered\" snapshot_index=%llu last_index=%llu commit=%llu term=%llu "
             "revision=%lld ms=%llu",
             (unsigned long long)s->snap_meta.index, (unsigned long long)s->st.last_index,
             (unsigned long long)s->st.commit, (unsigned long long)s->st.term,
             (long long)store_rev(s->store),
             (unsigned long long)(now_usec(CLOCK_MONOTONIC) - t0) / 1000);
    ents_truncate(&c, 0);
    free(c.v);
    sc_buf_free(&snap);
    *ret_wal = w;
    return 0;
fail:
    if (e.msg[0])
        log_error("msg=\"recovery failed; refusing to start\" error=\"%s\"", e.msg);
    ents_truncate(&c, 0);
    free(c.v);
    sc_buf_free(&snap);
    wal_close(w);
    return r < 0 ? r : -SC_E_CORRUPT;
}

/* A nonzero 64-bit id from the member name (FNV-1a, then a finaliser). */
static raft_id_t name_id(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

static int initial_conf(struct srv *s, struct raft_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    if (!s->cfg.initial_cluster || !*s->cfg.initial_cluster) {
        conf->voters[conf->n_voters++] = s->id;
        return 0;
    }
    bool self = false;
    char *list = xstrdup(s->cfg.initial_cluster), *save = NULL;
    for (char *it = strtok_r(list, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (!eq || conf->n_voters >= RAFT_MAX_MEMBERS) {
            log_error("msg=\"--initial-cluster: expected NAME=HOST:PORT,...\" got=\"%s\"", it);
            free(list);
            return -EINVAL;
        }
        *eq = '\0';
        conf->voters[conf->n_voters++] = name_id(it);
        self |= strcmp(it, s->cfg.name) == 0;
    }
    free(list);
    if (!self) {
        log_error("msg=\"--initial-cluster does not name this member\" name=%s", s->cfg.name);
        return -EINVAL;
    }
    return 0;
}

static int bind_listener(struct srv *s)
{
    char host[256];
    const char *colon = strrchr(s->cfg.listen, ':');
    if (!colon || colon == s->cfg.listen || (size_t)(colon - s->cfg.listen) >= sizeof(host)) {
        log_error("msg=\"--listen must be HOST:PORT\" got=\"%s\"", s->cfg.listen);
        return -EINVAL;
    }
    memcpy(host, s->cfg.listen, (size_t)(colon - s->cfg.listen));
    host[colon - s->cfg.listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        log_error("msg=\"bad port in --listen\" got=\"%s\"", s->cfg.listen);
        return -EINVAL;
    }
    s->listener = evhttp_bind_socket_with_handle(s->http, host, (uint16_t)port);
    if (!s->listener) {
        log_error("msg=\"cannot listen\" addr=%s error=\"%s\"", s->cfg.listen, strerror(errno));
        return -EADDRINUSE;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->listener);
    char addr[INET6_ADDRSTRLEN] = "?";
    int bound = (int)port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
            bound = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
            bound = ntohs(in6->sin6_port);
        }
    }
    /* One line on stdout that tools and tests can wait for. */
    snprintf(s->client_addr, sizeof(s->client_addr), "%s:%d", addr, bound);
    printf("sctld listening on %s:%d\n", addr, bound);
    fflush(stdout);
    log_info("msg=\"listening\" addr=%s:%d data_dir=%s", addr, bound, s->cfg.data_dir);
    return 0;
}

/* The peer transport, when --peer-listen is given: peers from --initial-cluster. */
static int start_peers(struct srv *s)
{
    if (!s->cfg.peer_listen)
        return 0;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = now_usec(CLOCK_REALTIME);
    peer_net_new(s->base, NULL, s->id, s->cfg.name, s->client_addr, seed, on_peer_msg, s, &s->net);
    int r = peer_net_listen(s->net, s->cfg.peer_listen);
    if (r < 0) {
        log_error("msg=\"cannot listen for peers\" addr=%s error=\"%s\"", s->cfg.peer_listen,
                  strerror(-r));
        return r;
    }
    char *list = xstrdup(s->cfg.initial_cluster ? s->cfg.initial_cluster : ""), *save = NULL;
    for (char *it = strtok_r(list, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(it, s->cfg.name) == 0)
            continue;
        if ((r = peer_net_add(s->net, name_id(it), it, eq + 1)) < 0) {
            log_error("msg=\"bad peer address in --initial-cluster\" peer=%s addr=%s", it, eq + 1);
            free(list);
            return r;
        }
    }
    free(list);
    log_info("msg=\"peer transport listening\" addr=%s", s->cfg.peer_listen);
    return 0;
}

/* Before the loop runs: waits for the update in flight (start-up only). */
static void wait_idle(struct srv *s)
{
    while (s->in_flight && !s->exit_code) {
        struct pollfd pfd = {.fd = s->persist.wake_fd, .events = POLLIN};
        poll(&pfd, 1, 1000);
        on_durable(s->persist.wake_fd, EV_READ, s);
    }
}

int srv_run(const struct srv_config *cfg)
{
    struct srv *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->id = name_id(cfg->name);
    s->store = store_new(&cfg->limits);
    struct wal *w = NULL;
    int r = recover(s, &w);
    if (r < 0)
        goto out;
    if ((r = persist_start(&s->persist, w, s->snap_dir)) < 0) {
        wal_close(w);
        log_error("msg=\"cannot start the persist thread\" error=\"%s\"", strerror(-r));
        goto out;
    }
    s->persist_running = true;
    signal(SIGPIPE, SIG_IGN);
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    /* Every method reaches our handler, so a wrong one gets our 405 JSON rather
     * than libevent's 501 page. */
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    /* libevent 2.1 answers a body over its own limit with an HTML 413 and has no
     * hook to change that page: give it 1 MiB of slack so that bodies just over
     * our limit get our JSON error (body_of), and only absurd ones get libevent's. */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)(s->cfg.max_body_bytes + (1u << 20)));
    evhttp_set_max_headers_size(s->http, 64 * 1024);
    evhttp_set_timeout(s->http, 120);
    evhttp_set_gencb(s->http, handle, s);
    s->drive_ev = event_new(s->base, -1, 0, on_drive, s);
    /* Re-apply what the log holds as committed; a sole voter elects itself before
     * it listens, so that the first request finds a leader. */
    drive(s);
    wait_idle(s);
    if (s->st.conf.n_voters == 1 && s->st.conf.voters[0] == s->id && !s->st.conf.n_outgoing) {
        raft_campaign(s->raft);
        drive(s);
        wait_idle(s);
    }
    if (s->exit_code) {
        r = s->exit_code;
        goto out;
    }
    if ((r = bind_listener(s)) < 0 || (r = start_peers(s)) < 0)
        goto out;
    sync_peers(s); /* members added after --initial-cluster, from their address keys */
    s->wake_ev = event_new(s->base, s->persist.wake_fd, EV_READ | EV_PERSIST, on_durable, s);
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sigint_ev = evsignal_new(s->base, SIGINT, on_signal, s);
    struct timeval tick = {s->cfg.tick_ms / 1000, (s->cfg.tick_ms % 1000) * 1000};
    event_add(s->wake_ev, NULL);
    event_add(s->tick_ev, &tick);
    event_add(s->sigterm_ev, NULL);
    event_add(s->sigint_ev, NULL);
    event_base_dispatch(s->base);
    r = s->exit_code;
    log_info("msg=\"stopped\" revision=%lld applied_index=%llu", (long long)store_rev(s->store),
             (unsigned long long)s->applied_index);
out:
    if (s->http)
        evhttp_free(s->http); /* runs the close callbacks: frees every conn_state */
    while (s->streams)
        stream_free(s, s->streams);
    peer_net_free(s->net);
    s->net = NULL;
    sc_buf_free(&s->inbox);
    if (s->snap_pid) { /* let the snapshot child finish: its file is consistent */
        int st;
        while (waitpid(s->snap_pid, &st, 0) < 0 && errno == EINTR)
            ;
        event_free(s->snap_ev);
        close(s->snap_pidfd);
        s->snap_pid = 0;
    }
    if (s->persist_running)
        persist_stop(&s->persist);
    for (int list = 0; list < 2; list++) {
        struct proposal *p = list ? s->qhead : s->head;
        while (p) {
            struct proposal *next = p->next;
            proposal_free(p);
            p = next;
        }
    }
    while (s->reads) {
        struct pread *next = s->reads->next;
        free(s->reads);
        s->reads = next;
    }
    if (s->raft)
        raft_free(s->raft);
    if (s->drive_ev)
        event_free(s->drive_ev);
    uint64_t k;
    void *v;
    for (size_t i = 0; u64map_next(&s->conns, &i, &k, &v);)
        free(v);
    u64map_done(&s->conns);
    u64map_done(&s->revoking);
    if (s->wake_ev)
        event_free(s->wake_ev);
    if (s->tick_ev)
        event_free(s->tick_ev);
    if (s->sigterm_ev)
        event_free(s->sigterm_ev);
    if (s->sigint_ev)
        event_free(s->sigint_ev);
    if (s->base)
        event_base_free(s->base);
    store_free(s->store);
    sc_buf_free(&s->scratch);
    sc_buf_free(&s->fmt.text);
    free(s->fmt.ent);
    free(s);
    return r;
}
