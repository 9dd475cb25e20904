/*
 * members.c: sctld's cluster membership: GET /v1/cluster (the applied
 * configuration with names, addresses and progress), the membership changes of
 * POST /v1/cluster/members, .../NAME/promote and DELETE .../NAME, and the peer
 * transport following the applied configuration.  Member ids are a hash of the
 * member name.
 *
 * Invariant 7 (of the server's design block, server_int.h):
 *  7. Membership: at most one change is in flight (cc_req).  A member's peer
 *     address is a store key, MEMBER_PREFIX + name, written by an entry that
 *     precedes the configuration change adding it, so every member (and every
 *     snapshot) has it before the change applies; srv_sync_peers() makes the peer
 *     transport follow the applied configuration after every configuration
 *     entry, snapshot and restart.  A member that applied a configuration
 *     without itself is `removed` and answers writes with 503.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "sctld/server_int.h"

#define MEMBER_PREFIX "/_cluster/members/"

/* A nonzero 64-bit id from the member name (FNV-1a, then a finaliser). */
raft_id_t srv_name_id(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* The name of a member (its id in hex when unknown). */
const char *srv_peer_name(struct srv *s, raft_id_t id)
{
    const struct peer_info *p = peer_net_get(s->net, id);
    if (p && p->name[0])
        return p->name;
    static char buf[24];
    snprintf(buf, sizeof(buf), "%llx", (unsigned long long)id);
    return buf;
}

static void cluster_member(struct srv *s, struct sc_buf *b, raft_id_t id, const char *role,
                           const struct raft_progress_info *pi, size_t npi, bool *first)
{
    const struct peer_info *p = peer_net_get(s->net, id);
    bool self = id == s->id;
    sc_buf_printf(b, "%s{\"id\":\"%llx\",\"name\":", *first ? "" : ",", (unsigned long long)id);
    srv_json_str(b, self ? s->cfg.name : p ? p->name : "");
    sc_buf_put(b, ",\"peer\":", 8);
    srv_json_str(b, self ? (s->cfg.peer_listen ? s->cfg.peer_listen : "") : p ? p->peer_addr : "");
    sc_buf_put(b, ",\"client\":", 10);
    srv_json_str(b, self ? s->client_addr : p ? p->client_addr : "");
    sc_buf_printf(b, ",\"role\":\"%s\",\"leader\":%s", role, id == s->st.leader ? "true" : "false");
    for (size_t i = 0; i < npi; i++)
        if (pi[i].id == id)
            sc_buf_printf(b, ",\"match\":%llu", (unsigned long long)pi[i].match);
    sc_buf_put_u8(b, '}');
    *first = false;
}

/* GET /v1/cluster (the routing table admits GET only) */
void srv_http_cluster(struct srv *s, struct evhttp_request *req, const struct srv_call *call)
{
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
    srv_send_json(s, req, 200, b);
}

/* ---- membership changes: one at a time (invariant 7) -------------------------------- */

static void cc_reply(struct srv *s, int status, const char *code, const char *msg)
{
    struct evhttp_request *req = s->cc_req;
    s->cc_req = NULL;
    s->cc_queued = false;
    s->cc_index = s->cc_term = 0;
    if (!req)
        return;
    struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)s->cc_conn);
    if (cs)
        cs->cc = false;
    if (status == 200) {
        sc_buf_reset(&s->scratch);
        sc_buf_printf(&s->scratch, "{\"index\":%llu}", (unsigned long long)s->applied_index);
        srv_send_json(s, req, 200, &s->scratch);
    } else {
        srv_send_coded(s, req, status, code, msg);
    }
    srv_observe(s, s->cc_start);
}

void srv_cc_fail(struct srv *s, int r, const char *why)
{
    if (r == -SC_E_REV_MISMATCH)
        cc_reply(s, 409, "change_in_progress", why);
    else
        cc_reply(s, sc_err_http_status(r), sc_err_name(r), why);
}

void srv_cc_applied(struct srv *s, const struct raft_entry *ent)
{
    if (!s->cc_req || !s->cc_index || ent->index != s->cc_index)
        return;
    if (ent->term == s->cc_term)
        cc_reply(s, 200, NULL, NULL);
    else
        srv_cc_fail(s, -SC_E_NOT_LEADER,
                    "leadership changed before the membership change was committed; it was not "
                    "applied, retry");
}

/* ---- the peer table follows the applied configuration ------------------------------- */

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
void srv_sync_peers(struct srv *s)
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
            raft_id_t id = srv_name_id(name);
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

/* ---- POST/DELETE /v1/cluster/members ------------------------------------------------ */

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
void srv_http_members(struct srv *s, struct evhttp_request *req, const struct srv_call *call)
{
    const char *rest = call->rest; /* "" (add) or "NAME[/promote]" */
    size_t rlen = call->rlen;
    usec_t start = call->start;
    struct sc_error e = {0};
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char name[64] = "", addr[128] = "";
    bool learner = true, add = rlen == 0;
    struct raft_conf_change cc = {.transition = RAFT_CC_AUTO, .n = 1};
    if (!srv_writable(s, req))
        return;
    if (add) {
        if (m != EVHTTP_REQ_POST)
            return srv_send_error(s, req, sc_error_set(&e, -SC_E_METHOD, "method", "use POST"), &e);
        char *body = NULL;
        size_t len = 0;
        int r = srv_body_of(s, req, &body, &len, &e);
        if (r < 0)
            return srv_send_error(s, req, r, &e);
        if ((r = decode_member(body, len, name, addr, &learner, &e)) < 0)
            return srv_send_error(s, req, r, &e);
    } else {
        const char *n = rest, *slash = memchr(n, '/', rlen);
        size_t nl = slash ? (size_t)(slash - n) : rlen;
        bool promote =
            slash && (size_t)(rest + rlen - slash) == 8 && memcmp(slash, "/promote", 8) == 0;
        if ((slash && !promote) || !member_name_ok(n, nl))
            return srv_send_error(s, req,
                                  sc_error_set(&e, -SC_E_NOT_FOUND, "path",
                                               "use /v1/cluster/members/NAME or .../NAME/promote"),
                                  &e);
        if (promote ? m != EVHTTP_REQ_POST : m != EVHTTP_REQ_DELETE)
            return srv_send_error(
                s, req,
                sc_error_set(&e, -SC_E_METHOD, "method", "use %s", promote ? "POST" : "DELETE"),
                &e);
        memcpy(name, n, nl);
        name[nl] = '\0';
        cc.items[0].type = promote ? RAFT_CC_ADD_VOTER : RAFT_CC_REMOVE;
    }
    if (s->st.role != RAFT_LEADER) /* a single member without --peer-listen */
        return srv_send_error(
            s, req,
            sc_error_set(&e, -SC_E_NOT_LEADER, NULL, "this member is not the leader; retry"), &e);
    if (s->cc_req || s->cc_queued || s->st.conf.n_outgoing)
        return srv_send_coded(s, req, 409, "change_in_progress",
                              "another membership change is in progress; retry when it is applied");
    raft_id_t id = srv_name_id(name);
    const struct raft_conf *c = &s->st.conf;
    bool member = raft_conf_has(c, id), voter = raft_conf_is_voter(c, id);
    char msg[200];
    if (add && member) {
        snprintf(msg, sizeof(msg), "a member named %s already exists", name);
        return srv_send_coded(s, req, 409, "member_exists", msg);
    }
    if (!add && !member) {
        snprintf(msg, sizeof(msg), "no member named %s", name);
        return srv_send_coded(s, req, 404, "member_not_found", msg);
    }
    if (!add && cc.items[0].type == RAFT_CC_ADD_VOTER && voter) {
        snprintf(msg, sizeof(msg), "%s is already a voter", name);
        return srv_send_coded(s, req, 409, "already_voter", msg);
    }
    if (cc.items[0].type == RAFT_CC_REMOVE && voter && c->n_voters <= 1)
        return srv_send_coded(s, req, 409, "last_voter", "cannot remove the last voter");
    if (add)
        cc.items[0].type = learner ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER;
    cc.items[0].id = id;
    s->cc = cc;
    s->cc_req = req;
    s->cc_conn = evhttp_request_get_connection(req);
    s->cc_start = start;
    s->cc_queued = true;
    srv_conn_get(s, s->cc_conn)->cc = true;
    if (add) {
        char key[sizeof(MEMBER_PREFIX) + 64];
        snprintf(key, sizeof(key), MEMBER_PREFIX "%s", name);
        struct store_op op = {.type = STORE_OP_PUT,
                              .key = (const uint8_t *)key,
                              .key_len = strlen(key),
                              .value = (const uint8_t *)addr,
                              .value_len = strlen(addr)};
        struct store_cmd cmd = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        srv_propose(s, NULL, R_MEMBER_ADDR, &cmd, start);
    } else {
        srv_drive(s);
    }
}
