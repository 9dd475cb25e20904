/*
 * authz.c: who may do what on the API listener once it is mutual TLS
 * (--tls-dir).  The identity is the client certificate's (net_tls_evhttp_identity,
 * docs/pki.md "Identities"); a request over plain HTTP (no --tls-dir) is not
 * checked here, as before.
 *
 *   admin, controller   everything; but a write a follower forwards for a node
 *                       carries X-Sc-On-Behalf-Of: node:NAME and the leader
 *                       authorizes it as that node (the checks that read the
 *                       store run there: a follower's store may not have applied
 *                       the node's previous write yet)
 *   node:NAME           object reads, except BootstrapTokens (and no /v1/kv but
 *                       its heartbeat key: the raw store holds the tokens too);
 *                       and the writes its slet makes, for itself only
 *                       (Kubernetes' NodeRestriction):
 *                         PUT /v1/nodes/NAME[/status]
 *                         PUT|POST /v1/instances[/X] whose spec.node is NAME and
 *                           whose Assignment (the Instance's namesake) is on NAME
 *                         PUT /v1/instances/X/status, DELETE /v1/instances/X of
 *                           an Instance stored with spec.node NAME
 *                         PUT|DELETE /v1/kv/%2Fregistry%2Fheartbeats%2FNAME
 *                         POST /v1/leases, /v1/leases/ID (its heartbeat lease)
 *                         POST /v1/renew (its own certificate, join.c)
 *   anything else       403 (a certificate of the CA with no role of ours)
 *
 * A refusal is a 403 naming the identity and what it may not do, logged once
 * with the peer address.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/tls.h"
#include "pki/pki.h"
#include "sctld/server_int.h"

static bool starts(const char *p, size_t n, const char *pre)
{
    size_t k = strlen(pre);
    return n >= k && !memcmp(p, pre, k);
}

static bool equals(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && !memcmp(p, s, n);
}

/* The stored object's spec.node, or "" when there is none. */
static void stored_node(struct srv *s, const char *kind, const char *name, size_t nlen, char *out,
                        size_t size)
{
    out[0] = '\0';
    char nm[80];
    if (nlen == 0 || nlen >= sizeof(nm))
        return;
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    struct sc_buf key = {0};
    obj_key(&key, obj_kind_by_name(kind), nm);
    sc_buf_put_u8(&key, 0);
    int64_t mod;
    json_t *o = srv_obj_load(s, (const char *)key.data, &mod);
    const char *n = json_string_value(json_object_get(json_object_get(o, "spec"), "node"));
    snprintf(out, size, "%s", n ? n : "");
    json_decref(o);
    sc_buf_free(&key);
}

/* A node's write of an Instance: see the table above. */
static bool instance_write_ok(struct srv *s, struct evhttp_request *req, enum evhttp_cmd_type m,
                              const char *rest, size_t rlen, const char *node)
{
    const char *slash = memchr(rest, '/', rlen);
    size_t nlen = slash ? (size_t)(slash - rest) : rlen;
    bool status = slash && equals(slash, rlen - nlen, "/status");
    if (slash && !status)
        return false;
    char have[80];
    if (status || m == EVHTTP_REQ_DELETE) {
        stored_node(s, "Instance", rest, nlen, have, sizeof(have));
        return !have[0] || !strcmp(have, node); /* absent: the handler answers 404 */
    }
    /* a whole object: it names this node, and so does its Assignment */
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > s->cfg.max_body_bytes)
        return true; /* the handler refuses it as too large */
    json_t *o = json_loadb((const char *)evbuffer_pullup(in, -1), n, 0, NULL);
    const json_t *spec = json_object_get(o, "spec");
    const char *claims = json_string_value(json_object_get(spec, "node"));
    const char *asg = json_string_value(json_object_get(spec, "assignment"));
    const char *name = json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
    /* an Instance is named after its Assignment: the path's (or a POST's) name is it */
    bool named = asg && (nlen ? equals(rest, nlen, asg) : name && !strcmp(name, asg));
    bool ok = claims && !strcmp(claims, node) && named;
    if (ok) {
        stored_node(s, "Assignment", asg, strlen(asg), have, sizeof(have));
        ok = !strcmp(have, node);
    }
    json_decref(o);
    return ok;
}

/* GET /v1/kv?prefix=P: whether P lies under /registry/heartbeats/. */
static bool heartbeat_prefix(struct evhttp_request *req)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (!query || evhttp_parse_query_str(query, &q) < 0)
        return false;
    const char *p = evhttp_find_header(&q, "prefix");
    bool ok = p && !strncmp(p, "/registry/heartbeats/", 21);
    evhttp_clear_headers(&q);
    return ok;
}

static bool node_may(struct srv *s, struct evhttp_request *req, const char *path, size_t plen,
                     const char *node)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char want[160];
    if (starts(path, plen, "/v1/tokens"))
        return false; /* not even to read: the hashes are nobody's business */
    if (starts(path, plen, "/v1/kv")) {
        /* the raw store holds the tokens too: its own heartbeat key, and reads of
         * the heartbeats (sctl get nodes lists them for READY) */
        snprintf(want, sizeof(want), "/v1/kv/%%2Fregistry%%2Fheartbeats%%2F%s", node);
        if (equals(path, plen, want))
            return true;
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD)
            return false;
        if (starts(path, plen, "/v1/kv/%2Fregistry%2Fheartbeats%2F"))
            return true;
        return equals(path, plen, "/v1/kv") && heartbeat_prefix(req);
    }
    if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
        return true;
    snprintf(want, sizeof(want), "/v1/nodes/%s", node);
    if (m == EVHTTP_REQ_PUT &&
        (equals(path, plen, want) ||
         (starts(path, plen, want) && equals(path + strlen(want), plen - strlen(want), "/status"))))
        return true;
    if (starts(path, plen, "/v1/instances/") || equals(path, plen, "/v1/instances")) {
        if (s->st.role != RAFT_LEADER && s->net)
            return true; /* forwarded with the node's name: the leader decides */
        return instance_write_ok(s, req, m, path + 14, plen > 14 ? plen - 14 : 0, node);
    }
    if (equals(path, plen, "/v1/leases") || starts(path, plen, "/v1/leases/"))
        return m == EVHTTP_REQ_POST || m == EVHTTP_REQ_PUT;
    return equals(path, plen, "/v1/renew") && m == EVHTTP_REQ_POST;
}

bool srv_authorize(struct srv *s, struct evhttp_request *req, const char *path, size_t plen)
{
    if (!s->tls)
        return true;
    struct pki_identity id = {0};
    struct sc_error e = {0};
    const char *why = NULL;
    char msg[400];
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    if (net_tls_evhttp_identity(req, &id, &e) < 0) {
        snprintf(msg, sizeof(msg), "no verified client certificate: %s", e.msg);
        why = msg;
    } else if (id.role == PKI_ROLE_CONTROLLER && evhttp_find_header(h, "X-Sc-Forwarded") &&
               evhttp_find_header(h, SRV_ON_BEHALF_OF)) {
        /* a follower's hop for a node: authorized as that node */
        const char *obo = evhttp_find_header(h, SRV_ON_BEHALF_OF);
        struct pki_identity node = {0};
        if (strncmp(obo, "node:", 5) != 0 ||
            pki_identity_make(PKI_ROLE_NODE, obo + 5, &node, &e) < 0) {
            snprintf(msg, sizeof(msg), "bad %s '%.80s'", SRV_ON_BEHALF_OF, obo);
            why = msg;
        } else {
            id = node;
        }
    } else if (id.role == PKI_ROLE_ADMIN || id.role == PKI_ROLE_CONTROLLER) {
        return true;
    }
    if (why) {
        /* refused above */
    } else if (id.role == PKI_ROLE_NODE) {
        if (node_may(s, req, path, plen, id.name))
            return true;
        snprintf(msg, sizeof(msg),
                 "node %s may not %s %.*s (a node writes only its own Node, heartbeat, "
                 "leases and the Instances of its Assignments)",
                 id.name, evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "read" : "change",
                 (int)(plen > 200 ? 200 : plen), path);
        why = msg;
    } else {
        snprintf(msg, sizeof(msg), "certificate '%s' has no role here (admin, controller or node)",
                 id.cn);
        why = msg;
    }
    char peer[80];
    srv_peer_of(req, peer, sizeof(peer));
    log_warn("msg=\"request refused\" peer=%s cn=\"%s\" reason=\"%s\"", peer, id.cn, why);
    srv_send_coded(s, req, 403, "forbidden", why);
    return false;
}
