/*
 * http.c: the HTTP front of sctld: one table of routes (methods + path -> handler)
 * and the router that walks it, plus /healthz and /metrics.  The router decides
 * before any handler runs whether a request is a write (a route marked `write`,
 * any method but GET): a follower forwards writes to the leader (forward.c) and a
 * removed member refuses them.  A new kind of object is one more row, e.g.
 * {"/v1/deployments", ROUTE_EXACT, ...} and {"/v1/deployments/", ROUTE_UNDER, ...}.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

#include "sctld/server_int.h"

int srv_body_of(struct srv *s, struct evhttp_request *req, char **ret, size_t *len,
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

bool srv_writable(struct srv *s, struct evhttp_request *req)
{
    if (!s->shutting_down)
        return true;
    struct sc_error e;
    sc_error_set(&e, -SC_E_SHUTTING_DOWN, NULL, "sctld is shutting down; retry on another member");
    srv_send_error(s, req, -SC_E_SHUTTING_DOWN, &e);
    return false;
}

static void handle_metrics(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
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
                  "# TYPE sc_raft_last_index gauge\nsc_raft_last_index %llu\n"
                  "# TYPE sc_forward_total counter\nsc_forward_total %llu\n"
                  "# TYPE sc_forward_connections_opened_total counter\n"
                  "sc_forward_connections_opened_total %llu\n"
                  "# TYPE sc_forward_connections gauge\nsc_forward_connections %zu\n"
                  "# TYPE sc_logs_streams gauge\nsc_logs_streams %zu\n"
                  "# TYPE sc_logs_streams_total counter\nsc_logs_streams_total %llu\n",
                  (unsigned long long)s->st.term, (unsigned long long)s->st.leader,
                  s->st.role == RAFT_LEADER, (unsigned long long)s->st.commit,
                  (unsigned long long)s->st.last_index, (unsigned long long)s->fwd_total,
                  (unsigned long long)s->fwd_conns_opened, s->fwd_pool.n, s->nlogs,
                  (unsigned long long)s->logs_total);
    sc_buf_printf(&b,
                  "# TYPE sc_sched_passes_total counter\nsc_sched_passes_total %llu\n"
                  "# TYPE sc_sched_assignments_created_total counter\n"
                  "sc_sched_assignments_created_total %llu\n"
                  "# TYPE sc_sched_assignments_removed_total counter\n"
                  "sc_sched_assignments_removed_total %llu\n"
                  "# TYPE sc_sched_view_seconds_total counter\nsc_sched_view_seconds_total %.6f\n"
                  "# TYPE sc_sched_plan_seconds_total counter\nsc_sched_plan_seconds_total %.6f\n",
                  (unsigned long long)s->sched_passes, (unsigned long long)s->sched_created,
                  (unsigned long long)s->sched_removed, (double)s->sched_view_usec / 1e6,
                  (double)s->sched_plan_usec / 1e6);
    if (s->st.role == RAFT_LEADER && !s->in_flight) {
        struct raft_progress_info pi[RAFT_MAX_MEMBERS];
        size_t n = raft_get_progress(s->raft, pi, RAFT_MAX_MEMBERS);
        sc_buf_printf(&b, "# TYPE sc_raft_peer_match_lag gauge\n");
        for (size_t i = 0; i < n; i++)
            if (pi[i].id != s->id)
                sc_buf_printf(
                    &b, "sc_raft_peer_match_lag{peer=\"%s\"} %llu\n", srv_peer_name(s, pi[i].id),
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

static void handle_healthz(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    sc_buf_reset(&s->scratch);
    sc_buf_printf(&s->scratch, "{\"status\":\"%s\",\"revision\":%lld}",
                  s->shutting_down ? "shutting_down" : "ok", (long long)store_rev(s->store));
    srv_send_json(s, req, s->shutting_down ? 503 : 200, &s->scratch);
}

/* The plain-HTTP health listener (--health-listen): GET /healthz and nothing else. */
void srv_handle_health(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    struct sc_error e = {0};
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?");
    if (plen != 8 || memcmp(uri, "/healthz", 8) != 0)
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_NOT_FOUND, "path",
                                           "this listener serves only /healthz; the API is HTTPS"),
                              &e);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        return srv_send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use GET"), &e);
    handle_healthz(s, req, NULL);
}

/* ---- the routing table ---------------------------------------------------------------- */

enum route_match {
    ROUTE_EXACT, /* the path is `path` */
    ROUTE_UNDER, /* the path starts with `path` (which ends in '/') and goes on */
    ROUTE_NAMED, /* `path` with one '*' standing for one non-empty segment, given as rest */
};

struct route {
    const char *path;
    enum route_match match;
    unsigned methods;  /* EVHTTP_REQ_* mask; 0: every method (the handler answers 405) */
    bool write;        /* its non-GET requests change state: forwarded by a follower */
    srv_handler_fn fn; /* gets the path after `path` in srv_call.rest */
    const char *allow; /* the 405 message for other methods; NULL: "use M1, M2 or M3" */
};

/* First match wins: a path may have one row per method (or set of methods). */
static const struct route routes[] = {
    {"/v1/kv/", ROUTE_UNDER, 0, true, srv_http_kv, NULL},
    {"/v1/kv", ROUTE_EXACT, 0, true, srv_http_kv, NULL},
    {"/v1/txn", ROUTE_EXACT, EVHTTP_REQ_POST, true, srv_http_txn, NULL},
    {"/v1/leases", ROUTE_EXACT, EVHTTP_REQ_POST, true, srv_http_lease_grant, NULL},
    {"/v1/leases/", ROUTE_UNDER, 0, true, srv_http_lease, NULL},
    {"/v1/compact", ROUTE_EXACT, EVHTTP_REQ_POST, true, srv_http_compact, NULL},
    {"/v1/cluster", ROUTE_EXACT, EVHTTP_REQ_GET, false, srv_http_cluster,
     "use GET (changes: /v1/cluster/members)"},
    {"/v1/cluster/members", ROUTE_EXACT, 0, true, srv_http_members, NULL},
    {"/v1/cluster/members/", ROUTE_UNDER, 0, true, srv_http_members, NULL},
    {"/healthz", ROUTE_EXACT, EVHTTP_REQ_GET, false, handle_healthz, NULL},
    /* signs with the CA key every controller holds: no log entry, no forwarding */
    {"/v1/renew", ROUTE_EXACT, EVHTTP_REQ_POST, false, srv_http_renew, NULL},
    {"/metrics", ROUTE_EXACT, EVHTTP_REQ_GET, false, handle_metrics, NULL},
    /* an object's subresource served here rather than by http_obj.c (logs.c) */
    {"/v1/instances/*/logs", ROUTE_NAMED, EVHTTP_REQ_GET, false, srv_http_logs, NULL},
    /* last: every other /v1/<kind>[/<name>] is an object path (http_obj.c) */
    {"/v1/", ROUTE_UNDER, 0, true, srv_http_obj, NULL},
};

/* Whether path[0..plen) matches r; *rest and *rlen get what the handler sees. */
static bool route_matches(const struct route *r, const char *path, size_t plen, const char **rest,
                          size_t *rlen)
{
    size_t n = strlen(r->path);
    *rest = path + MIN(n, plen);
    *rlen = plen - MIN(n, plen);
    if (r->match == ROUTE_EXACT)
        return plen == n && memcmp(path, r->path, n) == 0;
    if (r->match == ROUTE_UNDER)
        return plen > n && memcmp(path, r->path, n) == 0;
    const char *star = strchr(r->path, '*');
    size_t pre = (size_t)(star - r->path), suf = n - pre - 1;
    if (plen <= n - 1 || memcmp(path, r->path, pre) != 0 ||
        memcmp(path + plen - suf, star + 1, suf) != 0)
        return false;
    *rest = path + pre;
    *rlen = plen - pre - suf;
    return memchr(*rest, '/', *rlen) == NULL;
}

/* "use GET", "use GET or DELETE", "use GET, PUT or DELETE" */
static void allow_message(unsigned methods, char *buf, size_t size)
{
    static const struct {
        unsigned m;
        const char *name;
    } names[] = {{EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_PUT, "PUT"},
                 {EVHTTP_REQ_POST, "POST"},     {EVHTTP_REQ_PATCH, "PATCH"},
                 {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_HEAD, "HEAD"}};
    size_t total = 0, k = 0, off = 0;
    for (size_t i = 0; i < ELEMENTSOF(names); i++)
        total += (methods & names[i].m) != 0;
    off += (size_t)snprintf(buf, size, "use");
    for (size_t i = 0; i < ELEMENTSOF(names) && off < size; i++)
        if (methods & names[i].m) {
            k++;
            off += (size_t)snprintf(buf + off, size - off, "%s %s",
                                    k == 1       ? ""
                                    : k == total ? " or"
                                                 : ",",
                                    names[i].name);
        }
}

/* Every request: query, route, write gate (removed member, follower), method,
 * handler.  Also runs a second time for a read whose ReadIndex is applied. */
void srv_handle(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    usec_t start = now_usec(CLOCK_MONOTONIC);
    struct sc_error e = {0};
    const char *uri = evhttp_request_get_uri(req);
    const char *qm = strchr(uri, '?');
    size_t plen = qm ? (size_t)(qm - uri) : strlen(uri);
    if (!srv_authorize(s, req, uri, plen)) /* mutual TLS: the certificate's role (authz.c) */
        return;
    struct api_query q;
    int r = api_query_parse(qm ? qm + 1 : NULL, &q, &e);
    if (r < 0)
        return srv_send_error(s, req, r, &e);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const struct route *hit = NULL, *first = NULL;
    unsigned methods = 0;
    const char *rest = NULL;
    size_t rlen = 0;
    for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
        const struct route *rt = &routes[i];
        if (!route_matches(rt, uri, plen, &rest, &rlen))
            continue;
        if (first && strcmp(first->path, rt->path) != 0)
            break; /* a more general row (the /v1/ catch-all) never takes a known path */
        if (!first)
            first = rt;
        methods |= rt->methods;
        if (!rt->methods || (rt->methods & m)) {
            hit = rt;
            break;
        }
    }
    const struct route *rt = hit ? hit : first;
    bool write = rt && rt->write && m != EVHTTP_REQ_GET;
    if (write && s->removed) {
        srv_send_error(s, req,
                       sc_error_set(&e, -SC_E_NOT_LEADER, NULL,
                                    "this member was removed from the cluster; use another member"),
                       &e);
    } else if (write && s->st.role != RAFT_LEADER && s->net && !s->shutting_down) {
        srv_forward(s, req, start);
    } else if (!rt) {
        srv_send_error(s, req,
                       sc_error_set(&e, -SC_E_NOT_FOUND, "path", "no such path: %.*s",
                                    (int)MIN(plen, 200), uri),
                       &e);
    } else if (!hit) {
        char allow[80];
        if (first->allow)
            snprintf(allow, sizeof(allow), "%s", first->allow);
        else
            allow_message(methods, allow, sizeof(allow));
        srv_send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "%s", allow), &e);
    } else {
        struct srv_call c = {.rest = rest, .rlen = rlen, .q = &q, .start = start};
        hit->fn(s, req, &c);
    }
    api_query_done(&q);
}
