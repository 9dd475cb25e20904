/*
 * server.c: the store server inside sctld.
 *
 * Design
 * ------
 * One libevent loop serves every connection; one persist thread (persist.h) owns
 * the disk.  A write request becomes a command, is encoded and numbered with the
 * next log index, queued for the persist thread, and parked as a proposal.  When
 * the thread reports an index durable, the loop applies every parked proposal up
 * to it, in index order, to the store and answers it.  Reads are answered at once
 * from the store, which holds exactly the applied (so acknowledged-or-about-to-be)
 * writes: a single-node linearizable read.
 *
 *   request ──► decode ──► propose(index) ──► queue ─► [persist: write+fdatasync]
 *                                                            │ eventfd
 *   reply ◄── render ◄── store_apply ◄── durable index ◄─────┘
 *                          │
 *                          └──► pump every watch stream
 *
 * Invariants:
 *  1. applied_index <= durable index <= last_index; proposals are parked in index
 *     order and applied exactly once, in that order.
 *  2. Nothing is answered before it is durable; nothing durable is lost: recovery
 *     applies snapshot + every later log entry, in order, with no gap.
 *  3. A watch stream holds at most watch_buffer_bytes of unsent events (it stops
 *     formatting at the bound and resumes when the socket drains); one that stays
 *     full for watch_stall_usec is cut off with a reason and a resume revision.
 *  4. Lease expiry is only proposed (a REVOKE through the log), never applied
 *     directly, so a follower replaying the log reaches the same state.
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
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "api/kvapi.h"
#include "base/hist.h"
#include "base/log.h"
#include "base/u64map.h"
#include "sctld/persist.h"
#include "store/snap.h"
#include "store/wal.h"

#define TERM 1 /* single node: one term forever (the Raft issue replaces this) */

enum reply_kind {
    R_PUT,
    R_DELETE_KEY,
    R_DELETE_PREFIX,
    R_TXN,
    R_LEASE_GRANT,
    R_LEASE_REVOKE,
    R_COMPACT,
    R_INTERNAL
};

struct proposal {
    uint64_t index;
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
    uint64_t last_index, applied_index, snap_index;
    struct proposal *head, *tail;
    size_t nparked;
    struct u64map conns;
    struct u64map revoking; /* lease ids with a revoke in flight */
    bool compact_in_flight;
    struct stream *streams;
    size_t nstreams;
    bool shutting_down;
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

static void propose(struct srv *s, struct evhttp_request *req, enum reply_kind kind,
                    const struct store_cmd *cmd, usec_t start)
{
    struct proposal *p = xcalloc(1, sizeof(*p));
    p->index = ++s->last_index;
    p->req = req;
    p->kind = kind;
    p->start = start;
    p->lease_id = cmd->lease_id;
    store_cmd_encode(cmd, &p->payload);
    persist_append(&s->persist, TERM, p->index, p->payload.data, p->payload.len);
    if (req) {
        p->conn = evhttp_request_get_connection(req);
        conn_state(s, p->conn)->p = p;
    }
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
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
        return;
    }
    send_json(s, req, 200, b);
    observe(s, p->start);
}

static void pump_all(struct srv *s);
static void maybe_finish_shutdown(struct srv *s);

static void maybe_snapshot(struct srv *s)
{
    if (s->applied_index - s->snap_index < s->cfg.snapshot_every)
        return;
    struct sc_buf snap = {0};
    store_snapshot_encode(s->store, &snap);
    persist_snapshot(&s->persist, TERM, s->applied_index, &snap);
    s->snap_index = s->applied_index;
    log_info("msg=\"snapshot queued\" index=%llu", (unsigned long long)s->applied_index);
}

static void fatal_disk(struct srv *s, int err, const char *msg)
{
    log_error("msg=\"the log cannot be written; stopping\" error=\"%s\" detail=\"%s\"",
              sc_err_message(err), msg);
    struct sc_error e;
    sc_error_set(&e, -SC_E_INTERNAL, NULL, "the write-ahead log failed: %s", msg);
    for (struct proposal *p = s->head; p; p = p->next)
        if (p->req) {
            conn_forget(s, p->conn, p, NULL);
            send_error(s, p->req, -SC_E_INTERNAL, &e);
            p->req = NULL;
        }
    s->exit_code = -EIO;
    event_base_loopbreak(s->base);
}

static void on_durable(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v))
        ;
    int err;
    char msg[256];
    uint64_t durable = persist_durable(&s->persist, &err, msg, sizeof(msg));
    if (err) {
        fatal_disk(s, err, msg);
        return;
    }
    usec_t now = now_usec(CLOCK_MONOTONIC);
    bool any = false;
    while (s->head && s->head->index <= durable) {
        struct proposal *p = s->head;
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->nparked--;
        struct store_cmd cmd;
        struct store_result res = {0};
        struct sc_error e = {0};
        int r = store_cmd_decode(p->payload.data, p->payload.len, &cmd);
        assert(r == 0);
        r = store_apply(s->store, &cmd, now, &res, &e);
        s->applied_index = p->index;
        if (cmd.type == STORE_CMD_LEASE_REVOKE)
            u64map_del(&s->revoking, (uint64_t)cmd.lease_id);
        if (cmd.type == STORE_CMD_COMPACT)
            s->compact_in_flight = false;
        reply_applied(s, p, r, &e, &res);
        store_result_done(&res);
        store_cmd_done(&cmd);
        sc_buf_free(&p->payload);
        free(p);
        any = true;
    }
    if (any) {
        pump_all(s);
        maybe_snapshot(s);
    }
    maybe_finish_shutdown(s);
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
                x = now_usec(CLOCK_REALTIME) ^ s->last_index;
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

static void handle_lease(struct srv *s, struct evhttp_request *req, const char *rest, usec_t start)
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
    if (PATH_UNDER("/v1/kv/"))
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
        handle_lease(s, req, rest, start);
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

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    usec_t now = now_usec(CLOCK_MONOTONIC);
    if (!s->shutting_down) {
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
    check_stalled(s, now);
}

static void maybe_finish_shutdown(struct srv *s)
{
    if (!s->shutting_down || s->head)
        return;
    bool had_streams = s->streams != NULL;
    while (s->streams)
        stream_end(s, s->streams, -SC_E_SHUTTING_DOWN, "sctld is shutting down; resume elsewhere");
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

struct replay_ctx {
    struct srv *s;
    uint64_t applied;
    struct sc_error *e;
    usec_t now;
};

static int replay_one(void *ud, const struct wal_record *rec)
{
    struct replay_ctx *c = ud;
    if (rec->type != WAL_REC_ENTRY || rec->index <= c->applied)
        return 0; /* covered by the snapshot */
    if (rec->index != c->applied + 1)
        return sc_error_set(c->e, -SC_E_CORRUPT, "wal",
                            "gap in the log: expected entry %llu, found %llu",
                            (unsigned long long)c->applied + 1, (unsigned long long)rec->index);
    struct store_cmd cmd;
    int r = store_cmd_decode(rec->data, rec->len, &cmd);
    if (r < 0)
        return sc_error_set(c->e, r, "wal", "entry %llu does not decode as a store command",
                            (unsigned long long)rec->index);
    struct store_result res;
    struct sc_error ignored;
    /* A command refused when first applied is refused again, identically. */
    (void)store_apply(c->s->store, &cmd, c->now, &res, &ignored);
    store_result_done(&res);
    store_cmd_done(&cmd);
    c->applied = rec->index;
    return 0;
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
    if (r == 1) {
        r = store_snapshot_decode(s->store, snap.data, snap.len, t0, &e);
        sc_buf_free(&snap);
        if (r < 0) {
            log_error("msg=\"snapshot does not load\" index=%llu error=\"%s\"",
                      (unsigned long long)sindex, e.msg);
            return r;
        }
    }
    struct wal_options wo = {.segment_bytes = s->cfg.wal_segment_bytes, .io = &wal_io_posix};
    struct wal *w;
    if ((r = wal_open(s->wal_dir, &wo, &w, &e)) < 0) {
        log_error("msg=\"cannot open the log\" error=\"%s\"", e.msg);
        return r;
    }
    struct replay_ctx c = {.s = s, .applied = sindex, .e = &e, .now = t0};
    if ((r = wal_replay(w, replay_one, &c, &e)) < 0) {
        log_error("msg=\"log replay failed; refusing to start\" error=\"%s\"", e.msg);
        wal_close(w);
        return r;
    }
    s->applied_index = s->last_index = c.applied;
    s->snap_index = sindex;
    log_info(
        "msg=\"recovered\" snapshot_index=%llu applied_index=%llu revision=%lld keys=%zu ms=%llu",
        (unsigned long long)sindex, (unsigned long long)c.applied, (long long)store_rev(s->store),
        store_key_count(s->store), (unsigned long long)(now_usec(CLOCK_MONOTONIC) - t0) / 1000);
    *ret_wal = w;
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
    printf("sctld listening on %s:%d\n", addr, bound);
    fflush(stdout);
    log_info("msg=\"listening\" addr=%s:%d data_dir=%s", addr, bound, s->cfg.data_dir);
    return 0;
}

int srv_run(const struct srv_config *cfg)
{
    struct srv *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
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
    if ((r = bind_listener(s)) < 0)
        goto out;
    s->wake_ev = event_new(s->base, s->persist.wake_fd, EV_READ | EV_PERSIST, on_durable, s);
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sigint_ev = evsignal_new(s->base, SIGINT, on_signal, s);
    struct timeval tick = {0, 100 * 1000};
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
    if (s->persist_running)
        persist_stop(&s->persist);
    while (s->head) {
        struct proposal *p = s->head;
        s->head = p->next;
        sc_buf_free(&p->payload);
        free(p);
    }
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
