/*
 * http_kv.c: the store's own API in sctld (docs/api.md): keys (/v1/kv/KEY and
 * /v1/kv?prefix=P: get, put, delete, watch), transactions (/v1/txn), leases
 * (/v1/leases[/ID[/keepalive]]) and compaction (/v1/compact).  Each handler
 * validates the request completely, then either answers a read (after its
 * ReadIndex, pending.c) or proposes one command (pending.c), so nothing is
 * changed by a request that gets an error.  Routed by the table in http.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sctld/server_int.h"

/* /v1/kv/KEY (c->rest is the escaped key) and /v1/kv?prefix=P */
void srv_http_kv(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    const struct api_query *q = c->q;
    usec_t start = c->start;
    bool has_key = c->rlen > 0;
    struct sc_error e = {0};
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    _cleanup_free_ uint8_t *key = NULL;
    size_t klen = 0;
    int r;
    bool prefix = false;
    if (has_key) {
        if (api_percent_decode(c->rest, c->rlen, &key, &klen) < 0)
            return srv_send_error(
                s, req, sc_error_set(&e, -SC_E_INVALID, "key", "bad percent-escape in the key"),
                &e);
    } else {
        size_t pl;
        const char *p = api_query_get(q, "prefix", &pl);
        if (!p)
            return srv_send_error(
                s, req,
                sc_error_set(&e, -SC_E_INVALID, "prefix", "give a key (/v1/kv/KEY) or ?prefix=P"),
                &e);
        key = xmemdup(p, pl + 1);
        klen = pl;
        prefix = true;
    }
    if (klen > s->cfg.limits.max_key_bytes)
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_KEY_TOO_LARGE, "key",
                                           "key is %zu bytes, the limit is %zu", klen,
                                           s->cfg.limits.max_key_bytes),
                              &e);
    bool watch = false, prev = false;
    if ((r = api_query_bool(q, "watch", &watch, &e)) < 0 ||
        (r = api_query_bool(q, "prev_kv", &prev, &e)) < 0)
        return srv_send_error(s, req, r, &e);

    if (m == EVHTTP_REQ_GET && watch)
        return srv_start_watch(s, req, key, klen, prefix, q);
    if (m == EVHTTP_REQ_GET) {
        if (!srv_read_gate(s, req, q))
            return;
        struct store_op op = {.type = STORE_OP_GET, .key = key, .key_len = klen, .prefix = prefix};
        if ((r = api_query_int(q, "rev", 0, &op.rev, &e)) < 0 ||
            (r = api_query_int(q, "limit", 0, &op.limit, &e)) < 0 ||
            (r = api_query_bool(q, "count_only", &op.count_only, &e)) < 0 ||
            (r = api_query_bool(q, "keys_only", &op.keys_only, &e)) < 0)
            return srv_send_error(s, req, r, &e);
        struct store_op_result res;
        r = store_read(s->store, &op, &res, &e);
        if (r < 0)
            return srv_send_error(s, req, r, &e);
        sc_buf_reset(&s->scratch);
        if (prefix) {
            api_json_range_result(&s->scratch, store_rev(s->store), &res);
        } else if (res.nkvs == 0) {
            free(res.kvs);
            sc_error_set(&e, -SC_E_NOT_FOUND, "key", "key \"%.*s\" not found", (int)MIN(klen, 200),
                         (const char *)key);
            return srv_send_error(s, req, -SC_E_NOT_FOUND, &e);
        } else {
            sc_buf_printf(&s->scratch,
                          "{\"revision\":%lld,\"kv\":", (long long)store_rev(s->store));
            api_json_kv(&s->scratch, &res.kvs[0]);
            sc_buf_put_u8(&s->scratch, '}');
        }
        free(res.kvs);
        srv_send_json(s, req, 200, &s->scratch);
        srv_observe(s, start);
        return;
    }
    if (!srv_writable(s, req))
        return;
    if (m == EVHTTP_REQ_PUT && has_key) {
        char *body = NULL;
        size_t blen = 0;
        if ((r = srv_body_of(s, req, &body, &blen, &e)) < 0)
            return srv_send_error(s, req, r, &e);
        struct store_op op = {.type = STORE_OP_PUT,
                              .key = key,
                              .key_len = klen,
                              .value = (const uint8_t *)body,
                              .value_len = blen,
                              .prev_kv = prev};
        if ((r = api_query_int(q, "lease", 0, &op.lease, &e)) < 0)
            return srv_send_error(s, req, r, &e);
        struct store_cmd cmd = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        if ((r = store_cmd_validate(&cmd, &s->cfg.limits, &e)) < 0) {
            /* Name the request's own fields, not the internal txn's. */
            if (r == -SC_E_VALUE_TOO_LARGE)
                sc_error_set(&e, r, "value", "value is %zu bytes, the limit is %zu", blen,
                             s->cfg.limits.max_value_bytes);
            return srv_send_error(s, req, r, &e);
        }
        if (op.lease && !store_lease_exists(s->store, op.lease))
            return srv_send_error(s, req,
                                  sc_error_set(&e, -SC_E_LEASE_NOT_FOUND, "lease",
                                               "lease %lld does not exist", (long long)op.lease),
                                  &e);
        return srv_propose(s, req, R_PUT, &cmd, start);
    }
    if (m == EVHTTP_REQ_DELETE) {
        struct store_op op = {.type = STORE_OP_DELETE,
                              .key = key,
                              .key_len = klen,
                              .prefix = prefix,
                              .prev_kv = prev};
        struct store_cmd cmd = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        if ((r = store_cmd_validate(&cmd, &s->cfg.limits, &e)) < 0)
            return srv_send_error(s, req, r, &e);
        return srv_propose(s, req, prefix ? R_DELETE_PREFIX : R_DELETE_KEY, &cmd, start);
    }
    sc_error_set(&e, -SC_E_METHOD, "method",
                 has_key ? "use GET, PUT or DELETE on /v1/kv/KEY"
                         : "use GET or DELETE on /v1/kv?prefix=P");
    srv_send_error(s, req, -SC_E_METHOD, &e);
}

/* POST /v1/txn, /v1/leases, /v1/compact: a JSON body that becomes one command
 * (the routing table admits POST only). */
static void body_cmd(struct srv *s, struct evhttp_request *req, enum srv_reply_kind kind,
                     usec_t start)
{
    struct sc_error e = {0};
    if (!srv_writable(s, req))
        return;
    char *body = NULL;
    size_t len = 0;
    int r = srv_body_of(s, req, &body, &len, &e);
    if (r < 0)
        return srv_send_error(s, req, r, &e);
    struct api_body b;
    if (kind == R_TXN)
        r = api_decode_txn(body, len, &s->cfg.limits, &b, &e);
    else if (kind == R_LEASE_GRANT)
        r = api_decode_lease_grant(body, len, &b, &e);
    else
        r = api_decode_compact(body, len, &b, &e);
    if (r < 0)
        return srv_send_error(s, req, r, &e);
    if (kind == R_LEASE_GRANT && b.cmd.lease_id == 0) {
        do {
            uint64_t x = 0;
            if (getrandom(&x, sizeof(x), 0) != sizeof(x))
                x = now_usec(CLOCK_REALTIME) ^ s->applied_index;
            /* 53 bits: every JSON reader (JavaScript, jq) holds the id exactly */
            b.cmd.lease_id = (int64_t)(x >> 11);
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
        return srv_send_error(s, req, r, &e);
    }
    srv_propose(s, req, kind, &b.cmd, start);
    api_body_done(&b);
}

void srv_http_txn(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    body_cmd(s, req, R_TXN, c->start);
}

void srv_http_lease_grant(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    body_cmd(s, req, R_LEASE_GRANT, c->start);
}

void srv_http_compact(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    body_cmd(s, req, R_COMPACT, c->start);
}

/* /v1/leases/ID and /v1/leases/ID/keepalive (c->rest: "ID[/keepalive]") */
void srv_http_lease(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    const struct api_query *q = c->q;
    usec_t start = c->start;
    char rest[64];
    snprintf(rest, sizeof(rest), "%.*s", (int)MIN(c->rlen, 63), c->rest);
    struct sc_error e = {0};
    char *end;
    errno = 0;
    long long id = strtoll(rest, &end, 10);
    if (end == rest || errno || id <= 0 || (*end && strcmp(end, "/keepalive") != 0))
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_INVALID, "id",
                                           "expected /v1/leases/ID or /v1/leases/ID/keepalive"),
                              &e);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    usec_t now = now_usec(CLOCK_MONOTONIC);
    int64_t ttl, left;
    int r;
    if (*end) { /* keepalive */
        if (m != EVHTTP_REQ_POST)
            return srv_send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use POST"), &e);
        if (s->st.role != RAFT_LEADER) /* deadlines live on the leader (invariant 5) */
            return srv_send_error(
                s, req,
                sc_error_set(&e, -SC_E_NOT_LEADER, NULL, "this member is not the leader; retry"),
                &e);
        if ((r = store_lease_keepalive(s->store, id, now, &ttl)) < 0)
            return srv_send_error(s, req,
                                  sc_error_set(&e, r, "id", "lease %lld does not exist", id), &e);
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch, "{\"revision\":%lld,\"id\":%lld,\"ttl\":%lld}",
                      (long long)store_rev(s->store), id, (long long)ttl);
        srv_send_json(s, req, 200, &s->scratch);
        return srv_observe(s, start);
    }
    if (m == EVHTTP_REQ_GET) {
        if (!srv_read_gate(s, req, q))
            return;
        if ((r = store_lease_info(s->store, id, now, &left, &ttl)) < 0)
            return srv_send_error(s, req,
                                  sc_error_set(&e, r, "id", "lease %lld does not exist", id), &e);
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch,
                      "{\"revision\":%lld,\"id\":%lld,\"ttl\":%lld,\"remaining\":%lld}",
                      (long long)store_rev(s->store), id, (long long)ttl, (long long)left);
        srv_send_json(s, req, 200, &s->scratch);
        return srv_observe(s, start);
    }
    if (m == EVHTTP_REQ_DELETE) {
        if (!srv_writable(s, req))
            return;
        if (!store_lease_exists(s->store, id))
            return srv_send_error(
                s, req,
                sc_error_set(&e, -SC_E_LEASE_NOT_FOUND, "id", "lease %lld does not exist", id), &e);
        struct store_cmd cmd = {.type = STORE_CMD_LEASE_REVOKE, .lease_id = id};
        return srv_propose(s, req, R_LEASE_REVOKE, &cmd, start);
    }
    srv_send_error(
        s, req,
        sc_error_set(&e, -SC_E_METHOD, "method", "use GET or DELETE, or POST .../keepalive"), &e);
}
