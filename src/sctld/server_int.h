/*
 * server_int.h: what the files of sctld's store server share: the server state
 * (struct srv), the requests it holds while they wait (proposals, reads, watch
 * streams, forwarded writes) and the functions one file calls in another.  Only
 * the .c files of src/sctld include it; server.h is the public face (srv_run).
 *
 * The server is one libevent loop around one struct raft, split by seam:
 *
 *   server.c   replies, the connection table, start-up (srv_run), shutdown
 *   http.c     the routing table (method + path -> handler), /healthz, /metrics
 *   http_kv.c  /v1/kv, /v1/txn, /v1/leases, /v1/compact
 *   raftdrv.c  the Raft driver: updates persisted, sent, applied; ticks, housekeeping
 *   pending.c  requests waiting on the log: parked proposals, ReadIndex reads
 *   watch.c    watch streams (bounded buffers, slow-watcher cut-off)
 *   forward.c  writes relayed by a follower to the leader, over pooled connections
 *   logs.c     /v1/instances/NAME/logs: an instance's output relayed from its node
 *   members.c  /v1/cluster, membership changes, the peer table following the log
 *   recover.c  snapshot files (format, the forked writer) and recovery at start-up
 *   tls.c      --tls-dir: the CA and certificates, HTTPS on the API listener; --health-listen
 *   join.c     --join-listen: bootstrap-token joins; POST /v1/renew
 *   authz.c    what a certificate's role may do on the API listener
 *
 * The design block is split the same way; its invariants keep their numbers:
 *  1-3, 5  raftdrv.c (one update in flight; durable before applied; parked
 *          proposals by index; lease expiry only through the leader's log)
 *  4       watch.c (a stream's unsent bytes are bounded, a stalled one is cut off)
 *  6       recover.c (recovery = snapshot + WAL after it + hard state)
 *  7       members.c (one membership change at a time; addresses through the log)
 */
#pragma once

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/kvapi.h"
#include "base/buf.h"
#include "base/hist.h"
#include "base/u64map.h"
#include "objects/objects.h"
#include "raft/raft.h"
#include "sctld/peer.h"
#include "sctld/persist.h"
#include "sctld/server.h"
#include "store/store.h"
#include "store/wal.h"

enum srv_reply_kind {
    R_PUT,
    R_DELETE_KEY,
    R_DELETE_PREFIX,
    R_TXN,
    R_LEASE_GRANT,
    R_LEASE_REVOKE,
    R_COMPACT,
    R_INTERNAL,
    R_MEMBER_ADDR, /* the address key written before a member is added */
    R_OBJ,         /* an object write (http_obj.c): srv_proposal.obj says how to answer */
    R_SCHED,       /* a scheduler loop transaction (sched_loop.c), no client */
    R_JOIN         /* a bootstrap token's use (join.c): the certificate once applied */
};

/* How to answer an object write once applied: the stored text (its metadata.
 * revision becomes the new revision) and "created"/"updated"/"deleted". */
struct srv_obj_reply {
    char *text;
    const char *result;
};

struct srv_proposal {
    uint64_t index, term;       /* 0 while queued for the next update */
    struct evhttp_request *req; /* NULL once the client went away, or internal */
    struct evhttp_connection *conn;
    enum srv_reply_kind kind;
    int64_t lease_id; /* R_INTERNAL revoke: to clear the in-flight mark */
    struct sc_buf payload;
    usec_t start;
    struct srv_obj_reply *obj; /* R_OBJ */
    unsigned *counter;         /* decremented when the proposal is freed (R_SCHED) */
    struct srv_join *join;     /* R_JOIN: the node and its CSR (join.c) */
    struct srv_proposal *next;
};

struct srv_stream {
    struct srv *srv;
    bool prev_kv;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct store_watch *w;
    const struct obj_kind *okind; /* an objects watch: events as whole objects */
    struct obj_selector sel;      /* ... filtered by labels */
    usec_t full_since;
    usec_t last_sent; /* when a line last went out (progress lines keep quiet streams alive) */
    struct srv_stream *prev, *next;
};

/* What we hold for a connection: at most one parked proposal or one stream
 * (HTTP/1.1 answers one request at a time per connection). */
struct srv_conn {
    struct srv_proposal *p;
    struct srv_stream *s;
    struct srv_pread *r;
    struct srv_fwd *f;
    struct srv_logs *l; /* a log stream relayed from a node (logs.c) */
    bool cc;            /* the connection of the pending membership change */
};

/* A write forwarded to the leader (an HTTP reverse proxy hop). */
struct srv_fwd {
    struct srv *srv;
    struct evhttp_request *req; /* the client's; NULL once it went away */
    struct srv_fwd_conn *pc;    /* the pooled connection it travels on */
    usec_t start;
};

/* A keep-alive connection to the leader for forwarded writes (forward.c). */
struct srv_fwd_conn {
    struct evhttp_connection *conn;
    struct srv_fwd *busy; /* the request on it; NULL when idle */
    bool stale;           /* freed once idle: failed, or to a former leader */
    bool idle_counted;    /* idle and counted in fwd_pool.nidle */
    struct srv_fwd_conn *next;
};

/* A linearizable read waiting for its ReadIndex (thesis 6.4): served by running
 * the request's handler again once applied >= index. */
struct srv_pread {
    uint64_t ctx;       /* 0 while queued for the next update */
    raft_index_t index; /* known once the read state arrived */
    bool ready;
    struct evhttp_request *req; /* NULL once the client went away */
    struct evhttp_connection *conn;
    usec_t start;
    struct srv_pread *next;
};

struct srv {
    struct srv_config cfg;
    char wal_dir[4096], snap_dir[4096];
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    struct ssl_ctx_st *tls; /* --tls-dir: the API listener's SSL_CTX (tls.c) */
    /* --tls-dir with --peer-listen (tls.c): the peer listener's SSL_CTX and the
     * client one (controller.crt, peer must be a controller) for dialling peers
     * and forwarding writes to the leader; peer_ops wraps peer sockets in them */
    struct ssl_ctx_st *peer_tls, *tls_client;
    struct peer_sock_ops peer_ops;
    struct evhttp *health_http;  /* --health-listen: plain GET /healthz (tls.c) */
    struct pki_ca *join_ca;      /* --tls-dir: the CA with its key, signs node certs (join.c) */
    struct ssl_ctx_st *join_tls; /* --join-listen: client certificate optional */
    struct evhttp *join_http;
    struct ssl_ctx_st *logs_tls; /* logs.c: client context for nodes' HTTPS logs endpoints */
    struct store *store;
    struct persist persist;
    bool persist_running;
    struct event *wake_ev, *tick_ev, *sigterm_ev, *sigint_ev;
    uint64_t applied_index, snap_index;
    struct srv_proposal *head, *tail; /* parked: handed to raft, sorted by index */
    size_t nparked;
    struct srv_proposal *qhead, *qtail; /* queued: not yet handed to raft */
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
    struct srv_pread *reads; /* in arrival order */
    size_t nreads;
    uint64_t read_ctx;
    bool serve_local; /* handle(): the read's index is applied, answer now */
    struct peer_net *net;
    struct sc_buf inbox; /* received raft messages: u32 len + payload each */
    size_t ninbox;
    char client_addr[160]; /* ours, as peers forward to it */
    uint64_t fwd_total, peer_dropped;
    struct {
        raft_id_t leader; /* every connection goes to it, at addr */
        char addr[128];
        struct srv_fwd_conn *conns;
        size_t n, nidle;
    } fwd_pool;
    uint64_t fwd_conns_opened;
    struct srv_logs *logs; /* log streams relayed from nodes (logs.c) */
    size_t nlogs;
    uint64_t logs_total;
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
    struct srv_stream *streams;
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
    /* the scheduler loop (sched_loop.c): transactions in flight, revision planned at */
    unsigned sched_in_flight;
    int64_t sched_rev;
    struct sched_view *sched_view; /* the leader's incremental view, NULL otherwise */
    uint64_t sched_passes, sched_created, sched_removed;
    usec_t sched_view_usec, sched_plan_usec; /* time following the store, time planning */
    /* metrics */
    struct sc_hist req_hist;
    uint64_t requests, events_sent, cutoffs;
};

/* One routed request: what the router parsed, handed to a route's handler. */
struct srv_call {
    const char *rest; /* the path after the route's prefix ("" for an exact route) */
    size_t rlen;
    const struct api_query *q;
    usec_t start;
};
typedef void (*srv_handler_fn)(struct srv *s, struct evhttp_request *req, const struct srv_call *c);

/* server.c: replies and the connection table */
const char *srv_reason(int status);
void srv_observe(struct srv *s, usec_t start);
void srv_send_json(struct srv *s, struct evhttp_request *req, int status, const struct sc_buf *b);
void srv_send_error(struct srv *s, struct evhttp_request *req, int r, const struct sc_error *e);
/* A 4xx/5xx with our own error code (the shared table has no "conflict"). */
void srv_send_coded(struct srv *s, struct evhttp_request *req, int status, const char *code,
                    const char *msg);
void srv_json_str(struct sc_buf *b, const char *v);
/* "ADDR:PORT" of the request's peer ("?:0" when it went away). */
void srv_peer_of(struct evhttp_request *req, char *out, size_t size);
struct srv_conn *srv_conn_get(struct srv *s, struct evhttp_connection *conn);
void srv_conn_forget(struct srv *s, struct evhttp_connection *conn, struct srv_proposal *p,
                     struct srv_stream *st);
void srv_maybe_finish_shutdown(struct srv *s);

/* http.c: the router and what handlers share */
void srv_handle(struct evhttp_request *req, void *arg);
int srv_body_of(struct srv *s, struct evhttp_request *req, char **ret, size_t *len,
                struct sc_error *e);
bool srv_writable(struct srv *s, struct evhttp_request *req);
/* The health listener's only route: GET /healthz (tls.c binds it). */
void srv_handle_health(struct evhttp_request *req, void *arg);

/* http_kv.c: route handlers */
void srv_http_kv(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_http_txn(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_http_lease_grant(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_http_lease(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_http_compact(struct srv *s, struct evhttp_request *req, const struct srv_call *c);

/* raftdrv.c */
void srv_drive(struct srv *s);
void srv_on_drive(evutil_socket_t fd, short what, void *arg);
void srv_on_durable(evutil_socket_t fd, short what, void *arg);
void srv_on_tick(evutil_socket_t fd, short what, void *arg);
void srv_on_peer_msg(void *ud, uint64_t from, const uint8_t *payload, size_t len);

/* pending.c */
void srv_proposal_free(struct srv_proposal *p);
void srv_propose(struct srv *s, struct evhttp_request *req, enum srv_reply_kind kind,
                 const struct store_cmd *cmd, usec_t start);
/* The same, giving the queued proposal (NULL when refused, already answered). */
struct srv_proposal *srv_propose_ex(struct srv *s, struct evhttp_request *req,
                                    enum srv_reply_kind kind, const struct store_cmd *cmd,
                                    usec_t start);
/* An object write: takes obj (freed with the proposal, or now if refused). */
void srv_propose_obj(struct srv *s, struct evhttp_request *req, const struct store_cmd *cmd,
                     struct srv_obj_reply *obj, usec_t start);
void srv_park(struct srv *s, struct srv_proposal *p);
void srv_reply_applied(struct srv *s, struct srv_proposal *p, int r, const struct sc_error *e,
                       const struct store_result *res);
void srv_fail_proposal(struct srv *s, struct srv_proposal *p, int r, const char *why);
bool srv_read_gate(struct srv *s, struct evhttp_request *req, const struct api_query *q);
void srv_read_fail(struct srv *s, struct srv_pread *pr, int r, const char *why);
void srv_serve_reads(struct srv *s, const struct raft_update *u);
void srv_answer_reads(struct srv *s);

/* watch.c */
void srv_start_watch(struct srv *s, struct evhttp_request *req, const uint8_t *key, size_t klen,
                     bool prefix, const struct api_query *q);
/* An objects watch of kind k; takes sel (freed with the stream, or now on error). */
void srv_start_obj_watch(struct srv *s, struct evhttp_request *req, const uint8_t *key, size_t klen,
                         bool prefix, const struct obj_kind *k, struct obj_selector *sel,
                         const struct api_query *q);
void srv_stream_end(struct srv *s, struct srv_stream *st, int r, const char *why);
void srv_stream_free(struct srv *s, struct srv_stream *st);
void srv_pump_all(struct srv *s);
void srv_fmt_reset(struct srv *s);
void srv_check_stalled(struct srv *s, usec_t now);
void srv_watch_progress(struct srv *s, usec_t now);

/* http_obj.c: /v1/<kind>[/<name>[/status]]; srv_obj_load: the object stored at
 * key (NUL-terminated), presented with its metadata.revision, or NULL */
json_t *srv_obj_load(struct srv *s, const char *key, int64_t *mod);
void srv_http_obj(struct srv *s, struct evhttp_request *req, const struct srv_call *c);

/* sched_loop.c: the leader's scheduler loop, run from housekeeping */
void srv_sched_pass(struct srv *s);
/* Drops the scheduler's view (before the store it follows goes away). */
void srv_sched_forget(struct srv *s);

/* forward.c */
void srv_forward(struct srv *s, struct evhttp_request *req, usec_t start);
void srv_forward_drop_pool(struct srv *s); /* the leader changed */
void srv_forward_done(struct srv *s);      /* at exit, after evhttp_free */

/* logs.c */
void srv_http_logs(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_logs_client_gone(struct srv *s, struct srv_logs *l); /* from on_conn_close */
void srv_logs_end_all(struct srv *s);                         /* at shutdown */
void srv_logs_done(struct srv *s);                            /* at exit, after evhttp_free */

/* members.c */
raft_id_t srv_name_id(const char *name);
const char *srv_peer_name(struct srv *s, raft_id_t id);
void srv_http_cluster(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_http_members(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
void srv_cc_applied(struct srv *s, const struct raft_entry *ent);
void srv_cc_fail(struct srv *s, int r, const char *why);
void srv_sync_peers(struct srv *s);

/* recover.c */
void srv_snap_encode(const struct raft_snapshot_meta *m, const uint8_t *store, size_t len,
                     struct sc_buf *out);
int srv_snap_decode(const uint8_t *p, size_t n, struct raft_snapshot_meta *m, const uint8_t **store,
                    size_t *len);
void srv_maybe_snapshot(struct srv *s);
int srv_recover(struct srv *s, struct wal **ret_wal);

/* tls.c: --tls-dir (before the API socket is bound), --health-listen, their teardown
 * (after evhttp_free(s->http), before event_base_free) */
int srv_tls_start(struct srv *s);
/* HOST:PORT (HOST may be [v6]) into host and port; logs what is wrong with flag. */
int srv_split_hostport(const char *flag, const char *addr, char *host, size_t hsize, long *port);
/* net_tls_on_refused's hook for every TLS context of sctld; ud: the listener's
 * name for the log ("api", "peer", "client", "join"). */
struct net_tls_refusal;
void srv_tls_log_refusal(void *ud, const struct net_tls_refusal *r);
/* The header a follower adds to a node's forwarded write: the node's CN, which the
 * leader authorizes (only on a hop from a controller certificate). */
#define SRV_ON_BEHALF_OF "X-Sc-On-Behalf-Of"
/* authz.c: false (answered 403) when the request's certificate may not do this */
bool srv_authorize(struct srv *s, struct evhttp_request *req, const char *path, size_t plen);
/* join.c: the join listener, POST /v1/renew, the token use applied */
struct srv_join;
int srv_join_start(struct srv *s);
void srv_join_done(struct srv *s);
void srv_join_free(struct srv_join *j);
void srv_join_applied(struct srv *s, struct srv_proposal *p, const struct store_result *res);
void srv_http_renew(struct srv *s, struct evhttp_request *req, const struct srv_call *c);
int srv_health_start(struct srv *s);
void srv_tls_done(struct srv *s);
