/*
 * join.c: how a node gets its certificate.  A join listener (--join-listen) for
 * nodes that have nothing but a bootstrap token, and POST /v1/renew on the API
 * listener for nodes whose certificate is due.
 *
 * Why a second listener: the API listener requires a client certificate on the
 * handshake, which a joining node cannot have yet.  Rather than make the API's
 * client certificate optional and rely on every handler checking for one, the
 * join listener serves exactly two paths and nothing else:
 *
 *   GET  /v1/cluster/ca   the CA certificate (PEM).  The node trusts nothing yet;
 *                         it checks the CA against the hash it was given
 *                         (slet --ca-hash sha256:H) before it trusts it.
 *   POST /v1/join         Authorization: Bearer ID.SECRET, body
 *                         {"name": NODE, "csr": PEM, "addresses": [IP...]}
 *                         -> {"cert": PEM, "ca": PEM}: node:NODE, signed by the CA
 *
 * The token is a BootstrapToken object (/registry/tokens/ID, sctl token create):
 * the secret's SHA-256, an expiry, how many joins it allows, and in its status
 * how many it had.  A join is checked on the leader (its store, then a
 * transaction guarded by the token's mod revision that counts the use), and the
 * certificate is signed only once that transaction is applied: a single-use
 * token admits one node even when two race, and a revoked (deleted) token
 * admits none after the delete is applied.  A follower answers 503 (the client
 * tries another controller).
 *
 * POST /v1/renew {"csr": PEM, "addresses": [...]} on the API listener (mutual TLS)
 * signs a new certificate for exactly the identity the caller's certificate
 * shows; it needs no log entry, so any controller answers it.
 *
 * Invariants.
 *   1. A certificate is handed out for a token only after the transaction that
 *      counted that use was applied with its compare holding (it is signed
 *      before, so a CSR that cannot be signed costs no use).
 *   2. Every refusal is answered with a 4xx and a message that names the token
 *      by id (never the secret), and logged once with the peer address.
 *   3. Only controllers hold the CA key; the key is loaded at start-up from
 *      --tls-dir and never leaves the process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "net/tls.h"
#include "pki/pki.h"
#include "sctld/server_int.h"

#define JOIN_MAX_ADDRS 8

/* What a join waits for while its use of the token goes through the log. */
struct srv_join {
    char token_id[PKI_TOKEN_ID_LEN + 1];
    char name[PKI_NAME_MAX + 1];
    char *csr;
    char *cert; /* signed before the use is proposed (a bad CSR costs no use), sent after */
    char addrs[JOIN_MAX_ADDRS][64];
    size_t naddrs;
    char peer[80];
};

void srv_join_free(struct srv_join *j)
{
    if (!j)
        return;
    free(j->csr);
    free(j->cert);
    free(j);
}

/* A refusal: answered with status/code/msg and logged with the peer (invariant 2). */
static void refuse(struct srv *s, struct evhttp_request *req, int status, const char *code,
                   const char *what, const char *msg)
{
    char peer[80];
    srv_peer_of(req, peer, sizeof(peer));
    log_warn("msg=\"%s refused\" peer=%s status=%d reason=\"%s\"", what, peer, status, msg);
    srv_send_coded(s, req, status, code, msg);
}

static int ca_pem_of(struct srv *s, char **ret)
{
    return pki_ca_cert_pem(s->join_ca, ret);
}

/* {"name"?, "csr", "addresses"?} from the body into j; a message on error. */
static int parse_body(struct srv *s, struct evhttp_request *req, bool want_name, struct srv_join *j,
                      char *msg, size_t size)
{
    char *body;
    size_t len;
    struct sc_error e = {0};
    if (srv_body_of(s, req, &body, &len, &e) < 0) {
        snprintf(msg, size, "%s", e.msg);
        return -1;
    }
    json_error_t je;
    json_t *o = json_loadb(body, len, 0, &je);
    if (!json_is_object(o)) {
        snprintf(msg, size, "body: not a JSON object (line %d column %d: %s)", je.line, je.column,
                 je.text);
        json_decref(o);
        return -1;
    }
    int r = -1;
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *csr = json_string_value(json_object_get(o, "csr"));
    json_t *addrs = json_object_get(o, "addresses");
    if (want_name && !name) {
        snprintf(msg, size, "name: required (the node's name)");
    } else if (want_name && (!pki_name_valid(name) || obj_name_check(name, strlen(name), &e) < 0)) {
        snprintf(msg, size, "name: '%.63s' is not a node name (1-63 of [a-z0-9-])", name);
    } else if (!csr || !*csr) {
        snprintf(msg, size, "csr: required (a PEM certificate request)");
    } else if (addrs && (!json_is_array(addrs) || json_array_size(addrs) > JOIN_MAX_ADDRS)) {
        snprintf(msg, size, "addresses: a list of at most %d IP addresses", JOIN_MAX_ADDRS);
    } else {
        r = 0;
        size_t i;
        json_t *a;
        json_array_foreach(addrs, i, a)
        {
            const char *ip = json_string_value(a);
            unsigned char buf[16];
            if (!ip || (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)) {
                snprintf(msg, size, "addresses[%zu]: not an IP address", i);
                r = -1;
                break;
            }
            snprintf(j->addrs[j->naddrs++], sizeof(j->addrs[0]), "%s", ip);
        }
        if (r == 0) {
            if (want_name)
                snprintf(j->name, sizeof(j->name), "%s", name);
            j->csr = xstrdup(csr);
        }
    }
    json_decref(o);
    return r;
}

/* Signs j's CSR as node:NAME into j->cert; a refusal is answered (false). */
static bool sign(struct srv *s, struct evhttp_request *req, struct srv_join *j, const char *what)
{
    struct pki_issue iss = {.role = PKI_ROLE_NODE,
                            .name = j->name,
                            .server = true, /* slet serves logs to controllers */
                            .validity_sec = s->cfg.node_cert_sec};
    for (size_t i = 0; i < j->naddrs && i < PKI_MAX_SANS - 1; i++)
        iss.ips[i] = j->addrs[i];
    struct sc_error e = {0};
    int r = pki_ca_sign_csr(s->join_ca, j->csr, &iss, &j->cert, &e);
    if (r < 0) {
        refuse(s, req, r == -EACCES ? 403 : 400, "bad_csr", what, e.msg);
        return false;
    }
    return true;
}

/* Answers {"cert", "ca"} with j's signed certificate. */
static void answer(struct srv *s, struct evhttp_request *req, const struct srv_join *j,
                   const char *what)
{
    const char *cert = j->cert;
    char *ca = NULL;
    ca_pem_of(s, &ca);
    json_t *ans = json_pack("{s:s, s:s}", "cert", cert, "ca", ca ? ca : "");
    char *text = json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS);
    sc_buf_reset(&s->scratch);
    sc_buf_put(&s->scratch, text, strlen(text));
    srv_send_json(s, req, 200, &s->scratch);
    char peer[80];
    srv_peer_of(req, peer, sizeof(peer));
    log_info("msg=\"certificate signed\" for=%s node=%s peer=%s valid_sec=%llu", what, j->name,
             peer, (unsigned long long)s->cfg.node_cert_sec);
    free(text);
    json_decref(ans);
    free(ca);
}

/* The leader's check of a token, then the guarded transaction that counts the use. */
static void join(struct srv *s, struct evhttp_request *req)
{
    char msg[512];
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return refuse(s, req, 401, "unauthorized", "join",
                      "POST /v1/join needs 'Authorization: Bearer ID.SECRET' (a token from "
                      "sctl token create)");
    struct pki_token t;
    struct sc_error e = {0};
    if (pki_token_parse(auth + 7, &t, &e) < 0)
        return refuse(s, req, 401, "unauthorized", "join", e.msg);
    struct srv_join *j = xcalloc(1, sizeof(*j));
    snprintf(j->token_id, sizeof(j->token_id), "%s", t.id);
    if (parse_body(s, req, true, j, msg, sizeof(msg)) < 0) {
        srv_join_free(j);
        return refuse(s, req, 400, "invalid", "join", msg);
    }
    if (s->st.role != RAFT_LEADER || s->shutting_down) {
        srv_join_free(j);
        char peer[80];
        srv_peer_of(req, peer, sizeof(peer));
        log_info("msg=\"join sent elsewhere: not the leader\" peer=%s", peer);
        return srv_send_coded(s, req, 503, "not_leader",
                              "this controller is not the leader; join through another one");
    }
    /* the stored token */
    struct sc_buf key = {0};
    obj_key(&key, obj_kind_by_name("BootstrapToken"), t.id);
    sc_buf_put_u8(&key, 0); /* key.len - 1 bytes of key, then a NUL */
    int64_t mod = 0;
    json_t *tok = srv_obj_load(s, (const char *)key.data, &mod);
    /* metadata.revision is presented, never stored */
    json_object_del(json_object_get(tok, "metadata"), "revision");
    const char *why = NULL;
    json_t *spec = json_object_get(tok, "spec"), *st = json_object_get(tok, "status");
    struct pki_token_hash h = {0};
    snprintf(h.id, sizeof(h.id), "%s", t.id);
    snprintf(h.hash, sizeof(h.hash), "%s",
             json_string_value(json_object_get(spec, "secretHash")) ?: "");
    int64_t now_ms = (int64_t)(now_usec(CLOCK_REALTIME) / 1000);
    json_int_t expires = json_integer_value(json_object_get(spec, "expiresMs"));
    json_int_t max_uses = json_integer_value(json_object_get(spec, "maxUses"));
    json_int_t used = json_integer_value(json_object_get(st, "used"));
    if (!tok) {
        snprintf(msg, sizeof(msg), "token %s: no such token (never created, or revoked)", t.id);
        why = msg;
    } else if (pki_token_check(&h, &t, &e) < 0) {
        snprintf(msg, sizeof(msg), "token %s: wrong secret", t.id);
        why = msg;
    } else if (expires > 0 && now_ms >= expires) {
        time_t at = (time_t)(expires / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&at, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(msg, sizeof(msg), "token %s expired at %s", t.id, when);
        why = msg;
    } else if (max_uses > 0 && used >= max_uses) {
        snprintf(msg, sizeof(msg), "token %s was already used %lld of %lld times", t.id,
                 (long long)used, (long long)max_uses);
        why = msg;
    }
    OPENSSL_cleanse(&t, sizeof(t)); /* the secret is not needed any more */
    if (why || !sign(s, req, j, "join")) {
        json_decref(tok);
        sc_buf_free(&key);
        srv_join_free(j);
        if (why)
            refuse(s, req, 401, "unauthorized", "join", why);
        return;
    }
    /* count the use: the token as stored, status.used + 1, guarded by its revision */
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(tok, "status", st);
    }
    json_object_set_new(st, "used", json_integer(used + 1));
    json_object_set_new(st, "lastUsedMs", json_integer(now_ms));
    json_object_set_new(st, "lastNode", json_string(j->name));
    char *text = json_dumps(tok, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(tok);
    struct store_cmp cmp = {.key = key.data,
                            .key_len = key.len - 1,
                            .target = STORE_CMP_MOD,
                            .op = STORE_CMP_EQ,
                            .num = mod};
    struct store_op put = {.type = STORE_OP_PUT,
                           .key = key.data,
                           .key_len = key.len - 1,
                           .value = (const uint8_t *)text,
                           .value_len = strlen(text)};
    struct store_cmd cmd = {
        .type = STORE_CMD_TXN, .cmps = &cmp, .ncmps = 1, .success = &put, .nsuccess = 1};
    srv_peer_of(req, j->peer, sizeof(j->peer));
    struct srv_proposal *p =
        srv_propose_ex(s, req, R_JOIN, &cmd, now_usec(CLOCK_MONOTONIC)); /* answers if refused */
    if (p)
        p->join = j;
    else
        srv_join_free(j);
    free(text);
    sc_buf_free(&key);
}

/* Invariant 1: the use is counted; now the certificate. */
void srv_join_applied(struct srv *s, struct srv_proposal *p, const struct store_result *res)
{
    if (!res->succeeded) {
        log_warn("msg=\"join refused\" peer=%s token=%s reason=\"the token changed meanwhile\"",
                 p->join->peer, p->join->token_id);
        srv_send_coded(s, p->req, 409, "conflict",
                       "the token was used or changed at the same time; try again");
        return;
    }
    log_info("msg=\"token used\" token=%s node=%s peer=%s", p->join->token_id, p->join->name,
             p->join->peer);
    answer(s, p->req, p->join, "join");
}

static void handle_join_listener(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!strcmp(uri, "/v1/cluster/ca")) {
        if (m != EVHTTP_REQ_GET)
            return srv_send_coded(s, req, 405, "method_not_allowed", "use GET");
        char *pem = NULL;
        if (ca_pem_of(s, &pem) < 0 || !pem)
            return srv_send_coded(s, req, 500, "internal", "cannot encode the CA certificate");
        struct evbuffer *out = evhttp_request_get_output_buffer(req);
        evbuffer_add(out, pem, strlen(pem));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/x-pem-file");
        evhttp_send_reply(req, 200, "OK", NULL);
        free(pem);
        return;
    }
    if (!strcmp(uri, "/v1/join")) {
        if (m != EVHTTP_REQ_POST)
            return srv_send_coded(s, req, 405, "method_not_allowed", "use POST");
        return join(s, req);
    }
    srv_send_coded(s, req, 404, "not_found",
                   "the join listener serves only GET /v1/cluster/ca and POST /v1/join");
}

/* POST /v1/renew on the API listener: a new certificate for the caller's own name. */
void srv_http_renew(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    (void)c;
    if (!s->join_ca)
        return srv_send_coded(s, req, 404, "not_found",
                              "no certificates here: sctld runs without --tls-dir");
    struct pki_identity id;
    struct sc_error e = {0};
    if (net_tls_evhttp_identity(req, &id, &e) < 0)
        return refuse(s, req, 401, "unauthorized", "renew", e.msg);
    if (id.role != PKI_ROLE_NODE)
        return refuse(s, req, 403, "forbidden", "renew",
                      "only node certificates are renewed here (controllers and admins get "
                      "theirs at a controller's start)");
    struct srv_join j = {0};
    char msg[512];
    if (parse_body(s, req, false, &j, msg, sizeof(msg)) < 0) {
        free(j.csr);
        return refuse(s, req, 400, "invalid", "renew", msg);
    }
    snprintf(j.name, sizeof(j.name), "%s", id.name);
    if (sign(s, req, &j, "renew"))
        answer(s, req, &j, "renew");
    free(j.csr);
    free(j.cert);
}

/* At start-up with --tls-dir: the CA for signing, logs.c's client context, and
 * the join listener when --join-listen is set. */
int srv_join_start(struct srv *s)
{
    if (!s->cfg.tls_dir) {
        if (s->cfg.join_listen) {
            log_error("msg=\"--join-listen needs --tls-dir (it hands out certificates)\"");
            return -EINVAL;
        }
        return 0;
    }
    char ca[4096], cakey[4096], crt[4096], key[4096];
    snprintf(ca, sizeof(ca), "%s/ca.crt", s->cfg.tls_dir);
    snprintf(cakey, sizeof(cakey), "%s/ca.key", s->cfg.tls_dir);
    snprintf(crt, sizeof(crt), "%s/controller.crt", s->cfg.tls_dir);
    snprintf(key, sizeof(key), "%s/controller.key", s->cfg.tls_dir);
    struct sc_error e = {0};
    int r = pki_ca_load(ca, cakey, &s->join_ca, &e);
    if (r < 0) {
        log_error("msg=\"cannot load the CA to sign node certificates\" error=\"%s\"", e.msg);
        return r;
    }
    /* logs.c's client context for nodes' HTTPS logs endpoints: controller.crt,
     * and the server must show a node certificate for the IP dialled */
    struct net_tls_files lf = {.ca = ca, .cert = crt, .key = key};
    if ((r = net_tls_client_ctx_new(&lf, PKI_ROLE_NODE, &s->logs_tls, &e)) < 0) {
        log_error("msg=\"cannot make the logs client TLS context\" error=\"%s\"", e.msg);
        return r;
    }
    if (!s->cfg.join_listen)
        return 0;
    char host[256];
    long port;
    if ((r = srv_split_hostport("--join-listen", s->cfg.join_listen, host, sizeof(host), &port)) <
        0)
        return r;
    struct net_tls_files f = {.ca = ca, .cert = crt, .key = key};
    if ((r = net_tls_server_ctx_new(&f, NET_TLS_CLIENT_OPTIONAL, PKI_ROLE_NONE, &s->join_tls, &e)) <
        0) {
        log_error("msg=\"cannot make the join listener's TLS context\" error=\"%s\"", e.msg);
        return r;
    }
    net_tls_on_refused(s->join_tls, srv_tls_log_refusal, (void *)"join");
    s->join_http = evhttp_new(s->base);
    evhttp_set_allowed_methods(s->join_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                 EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                                 EVHTTP_REQ_PATCH);
    const struct timeval idle = {10, 0};
    evhttp_set_timeout_tv(s->join_http, &idle);
    evhttp_set_max_body_size(s->join_http, 64 * 1024);
    evhttp_set_bevcb(s->join_http, net_tls_evhttp_bevcb, s->join_tls);
    evhttp_set_gencb(s->join_http, handle_join_listener, s);
    if (evhttp_bind_socket(s->join_http, host, (uint16_t)port) < 0) {
        log_error("msg=\"cannot listen for joining nodes\" addr=%s error=\"%s\"",
                  s->cfg.join_listen, strerror(errno));
        return -EADDRINUSE;
    }
    log_info("msg=\"join listener (HTTPS, bootstrap tokens)\" addr=%s", s->cfg.join_listen);
    return 0;
}

void srv_join_done(struct srv *s)
{
    if (s->join_http)
        evhttp_free(s->join_http);
    s->join_http = NULL;
    if (s->join_tls) {
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        SSL_CTX_free(s->join_tls);
    }
    s->join_tls = NULL;
    pki_ca_free(s->join_ca);
    s->join_ca = NULL;
    SSL_CTX_free(s->logs_tls);
    s->logs_tls = NULL;
}
