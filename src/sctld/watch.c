/*
 * watch.c: watch streams of sctld's store server (GET /v1/kv...?watch=1): a
 * chunked reply of newline-delimited JSON events, formatted from the store's
 * watch cursor.  Events are encoded once per revision-log position and shared by
 * every stream without prev_kv, so a thousand watchers cost one encoding.
 *
 * Invariant 4 (of the server's design block, server_int.h):
 *  4. A watch stream holds at most watch_buffer_bytes of unsent events (it stops
 *     formatting at the bound and resumes when the socket drains); one that stays
 *     full for watch_stall_usec is cut off with a reason and a resume revision.
 *
 * A watch stream may stay quiet for hours, so its connection has no read timeout
 * (the client sends nothing after its request; libevent would otherwise cut it
 * after the server's 120 s), and a caught-up stream with nothing unsent gets a
 * progress line {"progress":true,"revision":N} every watch_progress_usec: N is
 * the store's revision, and every event up to N that the watch selects has been
 * sent, so a client may resume from N+1 (etcd's progress notification).  The
 * line also lets a client notice a dead server, and the write lets the kernel
 * notice a dead client (the write timeout and the stall bound end those).
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <stdio.h>

#include "base/log.h"
#include "sctld/server_int.h"

void srv_stream_free(struct srv *s, struct srv_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->nstreams--;
    store_watch_close(s->store, st->w);
    obj_selector_done(&st->sel);
    free(st);
}

/* Ends a stream with a last error line (and a resume revision), then forgets it. */
void srv_stream_end(struct srv *s, struct srv_stream *st, int r, const char *why)
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
    /* the connection may serve more requests: the usual idle timeout again */
    const struct timeval idle = {(time_t)(s->cfg.http_idle_usec / USEC_PER_SEC),
                                 (suseconds_t)(s->cfg.http_idle_usec % USEC_PER_SEC)};
    evhttp_connection_set_timeout_tv(st->conn, &idle);
    evhttp_send_reply_end(st->req);
    srv_conn_forget(s, st->conn, NULL, st);
    srv_stream_free(s, st);
}

static void on_stream_flushed(struct evhttp_connection *conn, void *arg);

static size_t stream_unsent(const struct srv_stream *st)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(st->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

void srv_fmt_reset(struct srv *s)
{
    s->fmt.n = 0;
    s->fmt.base = 0;
    sc_buf_reset(&s->fmt.text);
}

/* An objects watch's line: {"type":"ADDED|MODIFIED|DELETED","revision":R,"object":{...}},
 * or nothing when the object does not match the stream's selector. */
static void encode_obj_event(const struct srv_stream *st, const struct store_event *ev,
                             struct sc_buf *b)
{
    bool del = ev->type == STORE_EVENT_DELETE;
    if (del && !ev->has_prev)
        return;
    const struct store_kv *kv = del ? &ev->prev : &ev->kv;
    json_t *o = obj_present(kv->value, kv->value_len, del ? ev->kv.mod_rev : kv->mod_rev);
    if (!o ||
        !obj_selector_match(&st->sel, json_object_get(json_object_get(o, "metadata"), "labels"))) {
        json_decref(o);
        return;
    }
    const char *type = del ? "DELETED" : kv->version == 1 ? "ADDED" : "MODIFIED";
    json_t *line = json_pack("{s:s, s:I, s:o}", "type", type, "revision",
                             (json_int_t)ev->kv.mod_rev, "object", o);
    char *text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
    sc_buf_put(b, text, strlen(text));
    sc_buf_put_u8(b, '\n');
    free(text);
    json_decref(line);
}

/* Appends the encoding of ev to b, through the shared cache when it can. */
static void encode_event(struct srv *s, const struct srv_stream *st, const struct store_event *ev,
                         struct sc_buf *b)
{
    if (st->okind) {
        encode_obj_event(st, ev, b);
        return;
    }
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
static void pump(struct srv *s, struct srv_stream *st)
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
        st->last_sent = now_usec(CLOCK_MONOTONIC);
    }
    if (r < 0) {
        srv_stream_end(s, st, r, "compaction overtook this watch; resume from a newer revision");
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
    struct srv_stream *st = arg;
    struct srv *s = st->srv;
    /* The stream may have ended since this chunk was queued. */
    struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs || cs->s != st)
        return;
    st->full_since = 0;
    pump(s, st);
}

void srv_pump_all(struct srv *s)
{
    srv_fmt_reset(s);
    struct srv_stream *st = s->streams;
    while (st) {
        struct srv_stream *next = st->next; /* pump may end st */
        pump(s, st);
        st = next;
    }
}

void srv_check_stalled(struct srv *s, usec_t now)
{
    struct srv_stream *st = s->streams;
    while (st) {
        struct srv_stream *next = st->next;
        if (st->full_since && now - st->full_since > s->cfg.watch_stall_usec) {
            char why[200];
            snprintf(why, sizeof(why),
                     "watcher too slow: %zu bytes of events unread for %llu ms (limit %zu bytes); "
                     "resume from resume_revision",
                     stream_unsent(st), (unsigned long long)(now - st->full_since) / 1000,
                     s->cfg.watch_buffer_bytes);
            log_warn("msg=\"watch cut off\" reason=\"%s\"", why);
            s->cutoffs++;
            srv_stream_end(s, st, -SC_E_WATCH_SLOW, why);
        }
        st = next;
    }
}

void srv_watch_progress(struct srv *s, usec_t now)
{
    if (!s->cfg.watch_progress_usec)
        return;
    for (struct srv_stream *st = s->streams; st; st = st->next) {
        if (now - st->last_sent < s->cfg.watch_progress_usec || st->full_since ||
            stream_unsent(st) || !store_watch_caught_up(s->store, st->w))
            continue;
        struct evbuffer *chunk = evbuffer_new();
        evbuffer_add_printf(chunk, "{\"progress\":true,\"revision\":%lld}\n",
                            (long long)store_rev(s->store));
        evhttp_send_reply_chunk(st->req, chunk);
        evbuffer_free(chunk);
        st->last_sent = now;
    }
}

static void start_watch(struct srv *s, struct evhttp_request *req, const uint8_t *key, size_t klen,
                        bool prefix, const struct obj_kind *k, struct obj_selector *sel,
                        const struct api_query *q)
{
    struct sc_error e = {0};
    int64_t rev;
    bool prev;
    int r;
    if ((r = api_query_int(q, "rev", 0, &rev, &e)) < 0 ||
        (r = api_query_bool(q, "prev_kv", &prev, &e)) < 0) {
        if (sel)
            obj_selector_done(sel);
        return srv_send_error(s, req, r, &e);
    }
    if (s->nstreams >= s->cfg.max_watches) {
        if (sel)
            obj_selector_done(sel);
        sc_error_set(&e, -SC_E_TOO_MANY_WATCHES, "watch", "the server holds %zu watches, its limit",
                     s->nstreams);
        return srv_send_error(s, req, -SC_E_TOO_MANY_WATCHES, &e);
    }
    struct store_watch *w;
    /* an objects watch needs the previous value: DELETED carries the last state */
    r = store_watch_open(s->store, key, klen, prefix, rev, prev || k, &w, &e);
    if (r < 0) {
        if (sel)
            obj_selector_done(sel);
        return srv_send_error(s, req, r, &e);
    }
    struct srv_stream *st = xcalloc(1, sizeof(*st));
    st->srv = s;
    st->req = req;
    st->conn = evhttp_request_get_connection(req);
    st->w = w;
    st->prev_kv = prev;
    st->okind = k;
    if (sel)
        st->sel = *sel;
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    srv_conn_get(s, st->conn)->s = st;
    st->last_sent = now_usec(CLOCK_MONOTONIC);
    /* no read timeout on a stream (see the top of the file); keep the write one */
    const struct timeval wtv = {(time_t)(s->cfg.http_idle_usec / USEC_PER_SEC),
                                (suseconds_t)(s->cfg.http_idle_usec % USEC_PER_SEC)};
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(st->conn), NULL, &wtv);

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

void srv_start_watch(struct srv *s, struct evhttp_request *req, const uint8_t *key, size_t klen,
                     bool prefix, const struct api_query *q)
{
    start_watch(s, req, key, klen, prefix, NULL, NULL, q);
}

void srv_start_obj_watch(struct srv *s, struct evhttp_request *req, const uint8_t *key, size_t klen,
                         bool prefix, const struct obj_kind *k, struct obj_selector *sel,
                         const struct api_query *q)
{
    start_watch(s, req, key, klen, prefix, k, sel, q);
}
