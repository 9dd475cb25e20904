/*
 * logs.c: GET /v1/instances/NAME/logs[?follow=1], an instance's output read
 * through sctld (docs/api.md, "Logs").  The output lives on the node, in the
 * Cell's log ring, and slet serves it at its logs endpoint (docs/slet.md); sctld
 * finds the node in its own store (the Instance's spec.node, else the
 * Assignment's), the endpoint in the Node's status.logs, and relays
 * `<logs>/logs/NAME[?follow=1]` to the client as a chunked reply while the bytes
 * arrive.  It is a read of the local store: any member answers, and a follower
 * forwards nothing.  Users need no route to the nodes, only to sctld, which is
 * also where authentication and RBAC will sit.
 *
 * Design.  A struct srv_logs joins two HTTP exchanges that libevent runs on its
 * own terms: the client's request (server side: ours to answer exactly once,
 * freed by libevent when answered, or by us when libevent orphaned it) and the
 * upstream request to the node (client side: on a connection of our own that
 * nobody else uses, so the proxy owns it whole).
 *
 *            headers 2xx (reply started)        upstream done
 *   WAITING ─────────────────────────> STREAMING ──────────────> reply ended ─┐
 *    │ │ │                               │ │                                  │
 *    │ │ └ upstream failed: 502 JSON     │ └ upstream failed: the client's     │
 *    │ └ headers non-2xx, upstream       │   connection is aborted, so the     ├─> client side
 *    │   done: its status, JSON error    │   client sees a broken stream, not  │   done: reap
 *    │                                   │   a clean end                       │   scheduled
 *    └ client gone (closed, or shutdown) ┴ client gone / sctld shutting down ──┘
 *
 *   reap (an event run from the loop): frees the upstream connection, which frees
 *   a request still on it without calling us, then the proxy.
 *
 * Invariants:
 *  L1. l->req is the client's request while we owe it an answer, NULL after; the
 *      connection table (srv_conn.l) points at l exactly as long.  Every way the
 *      client side ends goes through client_done(), which schedules the reap once.
 *  L2. The upstream connection is freed only by reap() or srv_logs_done(), never
 *      inside a callback of its own (libevent still uses it when the callback
 *      returns; forward.c rule 2).  Freeing it drops its request silently, so no
 *      upstream callback reaches a freed proxy.
 *  L3. Upstream callbacks that arrive after the client side ended change nothing.
 *  L4. At most LOGS_MAX_UNSENT bytes wait for a slow client: above that, reading
 *      from the node pauses until the client's buffer has drained.
 *  L5. At most LOGS_MAX_STREAMS proxies at once (429 beyond).
 *
 * A client that goes away mid-follow is seen at once, also on a quiet stream:
 * libevent keeps reading a GET's connection while we answer, so the peer's FIN
 * fails the connection, which runs on_conn_close (server.c) and so
 * srv_logs_client_gone (tests/system/sctl_logs.bats checks sc_logs_streams going
 * back to 0 after a follower is killed with nothing printed since).  The
 * upstream connection has a 5 s timeout until the node's headers arrive, then,
 * for a follow, none on reads (a quiet instance is not a dead node); the client
 * connection loses its read timeout like a watch's.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/tls.h"
#include "sctld/server_int.h"

#define LOGS_MAX_STREAMS  1024
#define LOGS_MAX_UNSENT   (1u << 20)
#define LOGS_MAX_ERR_BODY 4096
#define LOGS_UPSTREAM_SEC 5 /* up_error_text says "5 s" */

struct srv_logs {
    struct srv *srv;
    struct evhttp_request *req;     /* the client's, while owed an answer (L1) */
    struct evhttp_connection *conn; /* the client's connection (a key of srv.conns) */
    struct evhttp_connection *up;   /* ours to the node (L2) */
    struct event *reap_ev;
    bool follow, started, paused, reaping;
    int status;            /* the node's answer, 0 until its headers */
    int up_err, up_errno;  /* why the upstream request failed: evhttp_request_error + 1, errno */
    usec_t since;          /* when the upstream request was made */
    struct evbuffer *body; /* a non-2xx answer's body, bounded */
    char name[80], node[80], url[160];
    struct srv_logs *prev, *next;
};

/* ---- the client side ------------------------------------------------------------------ */

/* L1: the one way out of the client side. */
static void client_done(struct srv_logs *l)
{
    struct srv *s = l->srv;
    if (l->req) {
        struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)l->conn);
        if (cs && cs->l == l)
            cs->l = NULL;
        l->req = NULL;
    }
    if (!l->reaping) {
        l->reaping = true;
        event_active(l->reap_ev, 0, 0);
    }
}

static void send_coded(struct srv_logs *l, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void send_coded(struct srv_logs *l, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->req)
        srv_send_coded(l->srv, l->req, status, code, msg);
    client_done(l);
}

/* The client's connection closed (on_conn_close), or was aborted by us. */
void srv_logs_client_gone(struct srv *s, struct srv_logs *l)
{
    /* libevent orphans a request whose connection failed mid-reply and leaves it
     * to us to finish, which frees it; one still attached goes with the connection. */
    if (l->req && !evhttp_request_get_connection(l->req))
        evhttp_send_reply_end(l->req);
    client_done(l);
}

/* The upstream broke after the reply started: there is no status left to change,
 * so the client's connection is cut (no last chunk) and the client sees an error. */
static void abort_client(struct srv_logs *l)
{
    if (!l->req)
        return;
    log_warn("msg=\"log stream from the node broke\" instance=%s node=%s url=%s", l->name, l->node,
             l->url);
    evhttp_connection_free(l->conn); /* on_conn_close -> srv_logs_client_gone */
    client_done(l);                  /* in case the table no longer knew the connection */
}

/* L4: the client's buffer drained: read from the node again. */
static void on_client_flushed(struct evhttp_connection *conn, void *arg)
{
    struct srv_logs *l = arg;
    struct srv *s = l->srv;
    struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs || cs->l != l || !l->paused)
        return;
    l->paused = false;
    bufferevent_enable(evhttp_connection_get_bufferevent(l->up), EV_READ);
}

static size_t client_unsent(struct srv_logs *l)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(l->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* ---- the upstream side ---------------------------------------------------------------- */

static int on_up_headers(struct evhttp_request *res, void *arg)
{
    struct srv_logs *l = arg;
    l->status = evhttp_request_get_response_code(res);
    if (!l->req || l->status < 200 || l->status >= 300)
        return 0;    /* L3; an error body is gathered and answered at the end */
    if (l->follow) { /* a quiet instance is not a dead node: no read timeout now */
        const struct timeval wtv = {LOGS_UPSTREAM_SEC, 0};
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(l->up), NULL, &wtv);
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(l->req);
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(res), "Content-Type");
    evhttp_add_header(out, "Content-Type", ct ? ct : "text/plain; charset=utf-8");
    evhttp_add_header(out, "X-Sc-Node", l->node);
    evhttp_send_reply_start(l->req, 200, "OK");
    l->started = true;
    return 0;
}

static void on_up_chunk(struct evhttp_request *res, void *arg)
{
    struct srv_logs *l = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(res);
    if (!l->req)
        return; /* L3 */
    if (!l->started) {
        size_t room = LOGS_MAX_ERR_BODY - MIN(evbuffer_get_length(l->body), LOGS_MAX_ERR_BODY);
        evbuffer_remove_buffer(in, l->body, MIN(room, evbuffer_get_length(in)));
        return;
    }
    evhttp_send_reply_chunk_with_cb(l->req, in, on_client_flushed, l);
    if (!l->paused && client_unsent(l) > LOGS_MAX_UNSENT) {
        l->paused = true;
        bufferevent_disable(evhttp_connection_get_bufferevent(l->up), EV_READ);
    }
}

/* Called before on_up_done(NULL) when the request failed: remember why. */
static void on_up_error(enum evhttp_request_error err, void *arg)
{
    struct srv_logs *l = arg;
    l->up_err = (int)err + 1;
    l->up_errno = EVUTIL_SOCKET_ERROR();
}

static const char *up_error_text(const struct srv_logs *l)
{
    /* a failed connect reaches on_up_done with a request that has no status and
     * no error callback (libevent's connect cleanup), and errno is gone by then */
    if (!l->up_err)
        return now_usec(CLOCK_MONOTONIC) - l->since >= LOGS_UPSTREAM_SEC * USEC_PER_SEC - 100000
                   ? "no connection within 5 s"
                   : "connection refused or the address is unreachable";
    if (l->up_err == EVREQ_HTTP_TIMEOUT + 1)
        return "no answer within 5 s";
    if (l->up_errno == ECONNRESET)
        return strerror(l->up_errno);
    return l->up_err == EVREQ_HTTP_EOF + 1 ? "the connection closed without an answer"
                                           : "the answer was not HTTP";
}

/* The node's answer is complete (res), or the request failed (res NULL). */
static void on_up_done(struct evhttp_request *res, void *arg)
{
    struct srv_logs *l = arg;
    if (!l->req)
        return; /* L3 */
    if (res && l->started) {
        evhttp_send_reply_end(l->req);
        client_done(l);
    } else if (l->started) {
        abort_client(l);
    } else if (!res || !l->status) {
        send_coded(l, 502, "bad_gateway", "cannot reach node %s's logs endpoint %s: %s", l->node,
                   l->url, up_error_text(l));
    } else {
        /* the node's own error, e.g. 404 when it runs no Cell by that name (yet) */
        json_error_t je;
        size_t n = evbuffer_get_length(l->body);
        json_t *j = json_loadb((const char *)evbuffer_pullup(l->body, -1), n, 0, &je);
        json_t *eo = json_object_get(j, "error");
        const char *code = json_string_value(json_object_get(eo, "code"));
        const char *msg = json_string_value(json_object_get(eo, "message"));
        send_coded(l, l->status, code ? code : "node_error", "node %s (%s): %s", l->node, l->url,
                   msg ? msg : "answered HTTP error");
        json_decref(j);
    }
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void logs_free(struct srv *s, struct srv_logs *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        s->logs = l->next;
    if (l->next)
        l->next->prev = l->prev;
    s->nlogs--;
    if (l->up)
        evhttp_connection_free(l->up); /* drops its request without calling us (L2) */
    event_free(l->reap_ev);
    evbuffer_free(l->body);
    free(l);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct srv_logs *l = arg;
    logs_free(l->srv, l);
}

/* At shutdown: every stream ends (its reply closed), the reaps follow in the loop. */
void srv_logs_end_all(struct srv *s)
{
    for (struct srv_logs *l = s->logs; l; l = l->next) {
        if (!l->req)
            continue;
        if (l->started) {
            evhttp_send_reply_end(l->req);
            client_done(l);
        } else {
            send_coded(l, 503, "shutting_down", "sctld is shutting down; retry elsewhere");
        }
    }
}

/* At exit, after evhttp_free (whose close callbacks ended every client side). */
void srv_logs_done(struct srv *s)
{
    while (s->logs)
        logs_free(s, s->logs);
}

/* ---- the request ---------------------------------------------------------------------- */

/* The value of key as an object, or NULL. */
static json_t *load(struct srv *s, const char *kind, const char *name)
{
    struct sc_buf key = {0};
    obj_key(&key, obj_kind_by_name(kind), name);
    struct store_op op = {.type = STORE_OP_GET, .key = key.data, .key_len = key.len};
    struct store_op_result res = {0};
    struct sc_error e;
    json_t *o = NULL;
    if (store_read(s->store, &op, &res, &e) >= 0 && res.nkvs > 0)
        o = obj_present(res.kvs[0].value, res.kvs[0].value_len, res.kvs[0].mod_rev);
    free(res.kvs);
    sc_buf_free(&key);
    return o;
}

static const char *str_at(const json_t *o, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(o, a), b));
}

/* Fills l->node and l->url from the store; answers the client and returns false
 * when it cannot. */
static bool find_endpoint(struct srv *s, struct evhttp_request *req, struct srv_logs *l)
{
    char msg[300];
    json_t *inst = load(s, "Instance", l->name);
    json_t *asg = inst ? NULL : load(s, "Assignment", l->name);
    const char *node = str_at(inst ? inst : asg, "spec", "node");
    bool ok = false;
    if (!inst && !asg) {
        snprintf(msg, sizeof(msg), "instance %s does not exist", l->name);
        srv_send_coded(s, req, 404, "not_found", msg);
    } else if (!node || !*node) {
        snprintf(msg, sizeof(msg), "instance %s is not placed on a node yet", l->name);
        srv_send_coded(s, req, 503, "unavailable", msg);
    } else {
        snprintf(l->node, sizeof(l->node), "%s", node);
        json_t *n = load(s, "Node", node);
        const char *url = str_at(n, "status", "logs");
        if (!n)
            snprintf(msg, sizeof(msg), "instance %s is on node %s, which is not registered",
                     l->name, node);
        else if (!url || !*url)
            snprintf(msg, sizeof(msg),
                     "node %s has no logs endpoint (its status.logs is empty: is slet running "
                     "with --listen?)",
                     node);
        else
            ok = true;
        if (ok)
            snprintf(l->url, sizeof(l->url), "%s", url);
        else
            srv_send_coded(s, req, 503, "unavailable", msg);
        json_decref(n);
    }
    json_decref(inst);
    json_decref(asg);
    return ok;
}

/* Opens the connection and sends the request to the node; false after answering. */
static bool start_upstream(struct srv *s, struct evhttp_request *req, struct srv_logs *l)
{
    char msg[800];
    struct evhttp_uri *u = evhttp_uri_parse(l->url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    int port = u ? evhttp_uri_get_port(u) : -1;
    bool https = scheme && !strcmp(scheme, "https");
    if (!scheme || (strcmp(scheme, "http") != 0 && !https) || !host || !*host || port <= 0 ||
        (https && !s->logs_tls)) {
        evhttp_uri_free(u);
        snprintf(msg, sizeof(msg), "node %s's logs endpoint '%s' is not %s", l->node, l->url,
                 s->logs_tls ? "http(s)://IP:PORT" : "http://IP:PORT (no --tls-dir here)");
        srv_send_coded(s, req, 502, "bad_gateway", msg);
        return false;
    }
    char hostport[160];
    snprintf(hostport, sizeof(hostport), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    struct sc_error e = {0};
    /* https: the node's certificate must be a node's and name this IP (tls.h) */
    l->up = https ? net_tls_evhttp_connection_new(s->base, s->logs_tls, host, (uint16_t)port, &e)
                  : evhttp_connection_base_new(s->base, NULL, host, (uint16_t)port);
    evhttp_uri_free(u);
    if (!l->up) {
        snprintf(msg, sizeof(msg), "cannot open a connection to node %s at %s%s%s", l->node, l->url,
                 e.msg[0] ? ": " : "", e.msg);
        srv_send_coded(s, req, 502, "bad_gateway", msg);
        return false;
    }
    evhttp_connection_set_timeout(l->up, LOGS_UPSTREAM_SEC);
    struct evhttp_request *out = evhttp_request_new(on_up_done, l);
    evhttp_request_set_header_cb(out, on_up_headers);
    evhttp_request_set_chunked_cb(out, on_up_chunk);
    evhttp_request_set_error_cb(out, on_up_error);
    evhttp_add_header(evhttp_request_get_output_headers(out), "Host", hostport);
    struct sc_buf path = {0};
    sc_buf_printf(&path, "/logs/%s%s", l->name, l->follow ? "?follow=1" : "");
    sc_buf_put_u8(&path, 0);
    /* libevent answers most failures through on_up_done (later, or before
     * returning); one it refuses outright (no socket) it takes off the connection
     * without freeing or answering: both are ours then. */
    l->since = now_usec(CLOCK_MONOTONIC);
    int r = evhttp_make_request(l->up, out, EVHTTP_REQ_GET, (const char *)path.data);
    sc_buf_free(&path);
    if (r < 0 && l->req) {
        evhttp_request_free(out);
        send_coded(l, 502, "bad_gateway", "cannot connect to node %s's logs endpoint %s: %s",
                   l->node, l->url, strerror(errno));
    }
    return true;
}

/* GET /v1/instances/NAME/logs: c->rest is NAME. */
void srv_http_logs(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    struct sc_error e = {0};
    bool follow;
    int r = obj_name_check(c->rest, c->rlen, &e);
    if (r < 0 || (r = api_query_bool(c->q, "follow", &follow, &e)) < 0)
        return srv_send_error(s, req, r, &e);
    if (s->shutting_down) {
        srv_writable(s, req); /* answers 503 shutting_down */
        return;
    }
    if (s->nlogs >= LOGS_MAX_STREAMS) {
        char msg[120];
        snprintf(msg, sizeof(msg), "the server relays %zu log streams, its limit", s->nlogs);
        return srv_send_coded(s, req, 429, "too_many_streams", msg);
    }
    struct srv_logs *l = xcalloc(1, sizeof(*l));
    l->srv = s;
    l->follow = follow;
    snprintf(l->name, sizeof(l->name), "%.*s", (int)c->rlen, c->rest);
    if (!find_endpoint(s, req, l)) {
        free(l);
        return;
    }
    l->body = evbuffer_new();
    l->reap_ev = event_new(s->base, -1, 0, on_reap, l);
    l->req = req;
    l->conn = evhttp_request_get_connection(req);
    l->next = s->logs;
    if (s->logs)
        s->logs->prev = l;
    s->logs = l;
    s->nlogs++;
    s->logs_total++;
    srv_conn_get(s, l->conn)->l = l;
    if (follow) { /* the client sends nothing while it follows: no read timeout (watch.c) */
        const struct timeval wtv = {(time_t)(s->cfg.http_idle_usec / USEC_PER_SEC),
                                    (suseconds_t)(s->cfg.http_idle_usec % USEC_PER_SEC)};
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(l->conn), NULL, &wtv);
    }
    if (!start_upstream(s, req, l))
        client_done(l);
    srv_observe(s, c->start);
}
