/*
 * tls.c: mutual TLS on sctld's API listener, its Raft peer transport and the
 * writes a follower forwards to the leader (--tls-dir), and the plain-HTTP
 * health listener (--health-listen); issue 7's wiring for controllers.
 *
 * Why: with --tls-dir every API client must show a certificate the cluster CA
 * signed before it can send one byte of HTTP, so a probe that cannot hold a
 * client certificate (a load balancer, a kubelet-style liveness check) gets a
 * second listener that serves nothing but GET /healthz, bound to loopback only.
 *
 * Design.  At start-up, before the API socket is bound:
 *
 *   DIR/ca.crt, ca.key        pki_ca_load_or_create: created on the first start,
 *                             loaded on every later one (the hash is logged)
 *   DIR/controller.crt, .key  pki_ca_ensure_issued for controller:NAME with the
 *                             --listen and --peer-listen hosts and this member's
 *                             own --initial-cluster host (each unless a
 *                             wildcard), localhost, 127.0.0.1, ::1 and the host
 *                             name as SANs: a changed address reissues it
 *   DIR/admin.crt, .key       pki_ca_ensure_issued for the admin (sctl --cert)
 *   DIR/admin.conf            an sctl config naming them and this API (first start)
 *
 * then one server SSL_CTX (TLS 1.3, client certificate REQUIRED, any role the
 * CA signed) becomes the API evhttp's bufferevent factory.  With --peer-listen,
 * two more: a server SSL_CTX for the peer listener and a client one presenting
 * controller.crt, both accepting only a peer whose certificate has the
 * controller role.  The client one dials peers (verifying the host of the
 * member's peer address) and the leader's API when forwarding (verifying the
 * host of its client address).  A controller joining a cluster needs the
 * cluster's ca.crt and ca.key in its DIR before its first start (operator step,
 * docs/operations.md), else it would make a CA of its own and every peer would
 * refuse it.
 *
 * Invariants.
 *   1. With tls_dir set, the API listener is never bound before its evhttp has
 *      the TLS bufferevent callback (srv_tls_start runs before bind_listener and
 *      a failure stops the start), so no request is ever served in plaintext on it.
 *   2. Every handshake refused on it (sent or received fatal alert) is logged once
 *      with the peer address, the refused certificate's CN and the reason.
 *   3. The health listener binds only a loopback address and routes only /healthz.
 *   4. With tls_dir and peer_listen set, every peer socket is a TLS bufferevent
 *      (peer_ops is set before start_peers makes the transport), and a peer
 *      connection carries frames only for the member its verified certificate
 *      names: peer_check compares controller:NAME with the member dialled or the
 *      one its HELLO names (and that member's id with NAME's), else the
 *      transport closes it and the mismatch is logged.
 *   5. With tls_dir set, a forwarded write leaves only over TLS with
 *      controller.crt (forward.c uses tls_client whenever it is set).
 *
 * Not covered yet (issue 7): no per-role authorization (any certificate of the
 * CA may do anything on the API); logs.c still fetches from slet in plain HTTP
 * (slet has no TLS logs server yet).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "net/tls.h"
#include "pki/pki.h"
#include "sctld/server_int.h"

#define TLS_LEAF_VALIDITY (365ull * 24 * 3600) /* renewed at 2/3 by a restart */

/* ud: which context, "api", "peer" (the peer listener) or "client" (dialling a
 * peer or the leader).  side: which end refused, this server or this client. */
void srv_tls_log_refusal(void *ud, const struct net_tls_refusal *r)
{
    log_warn("msg=\"tls handshake refused\" side=%s peer=%s cn=\"%s\" reason=\"%s\" conn=%s",
             r->sent ? "server" : "client", r->peer, r->subject, r->reason, (const char *)ud);
}

/* HOST:PORT (HOST may be [v6]) split into host and port. */
int srv_split_hostport(const char *flag, const char *addr, char *host, size_t hsize, long *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= hsize) {
        log_error("msg=\"%s must be HOST:PORT\" got=\"%s\"", flag, addr);
        return -EINVAL;
    }
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    *port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || *port < 0 || *port > 65535) {
        log_error("msg=\"bad port in %s\" got=\"%s\"", flag, addr);
        return -EINVAL;
    }
    return 0;
}

static bool is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Adds v to a NULL-terminated SAN list unless it is there or the list is full. */
static void san_add(const char **list, const char *v)
{
    size_t i = 0;
    for (; i < PKI_MAX_SANS - 1 && list[i]; i++)
        if (!strcmp(list[i], v))
            return;
    if (i < PKI_MAX_SANS - 1)
        list[i] = v;
}

static int issue_pair(const struct pki_ca *ca, const struct pki_issue *req, const char *dir,
                      const char *base)
{
    char crt[4096], key[4096];
    snprintf(crt, sizeof(crt), "%s/%s.crt", dir, base);
    snprintf(key, sizeof(key), "%s/%s.key", dir, base);
    struct sc_error e = {0};
    int r = pki_ca_ensure_issued(ca, req, crt, key, &e);
    if (r < 0)
        log_error("msg=\"cannot issue a certificate\" file=%s error=\"%s\"", crt, e.msg);
    else
        log_info("msg=\"certificate %s\" file=%s", r ? "issued" : "kept", crt);
    return r;
}

/* A SAN for a host this controller is reached at, unless it is a wildcard. */
static void san_add_host(struct pki_issue *req, const char *host)
{
    if (*host && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
        san_add(is_ip(host) ? req->ips : req->dns, host);
}

/* This member's own peer address in --initial-cluster (what the others dial):
 * its host into host, or "" when it is not listed. */
static int own_cluster_host(const struct srv *s, char *host, size_t hsize)
{
    host[0] = '\0';
    if (!s->cfg.initial_cluster)
        return 0;
    char *list = xstrdup(s->cfg.initial_cluster), *save = NULL;
    int r = 0;
    long port;
    for (char *it = strtok_r(list, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (eq && (size_t)(eq - it) == strlen(s->cfg.name) &&
            !strncmp(it, s->cfg.name, (size_t)(eq - it))) {
            r = srv_split_hostport("--initial-cluster", eq + 1, host, hsize, &port);
            break;
        }
    }
    free(list);
    return r;
}

/* The CA, this controller's certificate and the admin's, in cfg.tls_dir; host,
 * phost, ichost: the --listen, --peer-listen and own --initial-cluster hosts
 * ("" when not given). */
/* DIR/admin.conf, an sctl config for the operator (sctl --config-less use:
 * SCTL_CONFIG=DIR/admin.conf), written once: an operator's edits are kept. */
static void write_admin_conf(struct srv *s, const char *host)
{
    char path[4096], text[4096 + 512];
    snprintf(path, sizeof(path), "%s/admin.conf", s->cfg.tls_dir);
    const char *port = strrchr(s->cfg.listen, ':');
    if (access(path, F_OK) == 0 || !port || !strcmp(port, ":0"))
        return;
    bool wildcard = !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
    bool v6 = strchr(host, ':') != NULL;
    snprintf(text, sizeof(text),
             "# sctl config for this cluster's admin, written by sctld --tls-dir on its first\n"
             "# start: export SCTL_CONFIG=%s (relative paths are relative to this file)\n"
             "server = https://%s%s%s%s\nca = ca.crt\ncert = admin.crt\nkey = admin.key\n",
             path, v6 && !wildcard ? "[" : "", wildcard ? "127.0.0.1" : host,
             v6 && !wildcard ? "]" : "", port);
    struct sc_error e = {0};
    if (pki_file_write(path, text, 0600, &e) < 0)
        log_warn("msg=\"cannot write the sctl config\" file=%s error=\"%s\"", path, e.msg);
    else
        log_info("msg=\"sctl config written\" file=%s", path);
}

static int ensure_files(struct srv *s, const char *host, const char *phost, const char *ichost)
{
    const char *dir = s->cfg.tls_dir;
    char crt[4096], key[4096];
    int r = sc_mkdir_p(dir);
    if (r < 0) {
        log_error("msg=\"cannot create --tls-dir\" dir=%s error=\"%s\"", dir, strerror(-r));
        return r;
    }
    snprintf(crt, sizeof(crt), "%s/ca.crt", dir);
    snprintf(key, sizeof(key), "%s/ca.key", dir);
    struct pki_ca *ca = NULL;
    struct sc_error e = {0};
    int created = pki_ca_load_or_create(crt, key, "swiftcube-ca", &ca, &e);
    if (created < 0) {
        log_error("msg=\"cannot load or create the cluster CA\" cert=%s error=\"%s\"", crt, e.msg);
        return created;
    }
    char hash[PKI_HASH_STR_LEN + 1] = "";
    pki_ca_hash(ca, hash);
    log_info("msg=\"cluster CA %s\" cert=%s ca_hash=%s", created ? "created" : "loaded", crt, hash);
    char hostname[256] = "";
    if (gethostname(hostname, sizeof(hostname) - 1) < 0 || !pki_name_valid(hostname))
        hostname[0] = '\0';
    struct pki_issue ctl = {.role = PKI_ROLE_CONTROLLER,
                            .name = s->cfg.name,
                            .server = true,
                            .validity_sec = TLS_LEAF_VALIDITY};
    san_add_host(&ctl, host);
    san_add_host(&ctl, phost);
    san_add_host(&ctl, ichost);
    san_add(ctl.dns, "localhost");
    if (hostname[0])
        san_add(ctl.dns, hostname);
    san_add(ctl.ips, "127.0.0.1");
    san_add(ctl.ips, "::1");
    struct pki_issue admin = {.role = PKI_ROLE_ADMIN, .validity_sec = TLS_LEAF_VALIDITY};
    if ((r = issue_pair(ca, &ctl, dir, "controller")) >= 0)
        r = issue_pair(ca, &admin, dir, "admin");
    pki_ca_free(ca);
    if (r >= 0)
        write_admin_conf(s, host);
    return r;
}

/* ---- the peer transport ------------------------------------------------------------------ */

static struct bufferevent *peer_wrap(void *ud, struct event_base *base, int fd, bool accepted,
                                     const char *host)
{
    struct srv *s = ud;
    return net_tls_bev_new(base, accepted ? s->peer_tls : s->tls_client, fd, accepted, host);
}

/* "ADDR:PORT" of the other end of fd. */
static void peer_name_of(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char a[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(buf, size, "%s:%d", a, port);
}

/* Invariant 4: the verified certificate must be controller:NAME of the member
 * the connection speaks for (the one dialled, or the one its HELLO names). */
static int peer_check(void *ud, struct bufferevent *bev, bool accepted, uint64_t id,
                      const char *name)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    struct pki_identity pid = {0};
    struct sc_error e = {0};
    char addr[INET6_ADDRSTRLEN + 8];
    peer_name_of(bufferevent_getfd(bev), addr, sizeof(addr));
    const char *shown = pki_name_valid(name) ? name : "(not a valid name)";
    int r = ssl ? net_tls_peer_identity(ssl, &pid, &e)
                : sc_error_set(&e, -ENOTCONN, "tls", "not a TLS connection");
    if (r < 0) {
        log_warn("msg=\"peer connection refused\" side=%s peer=%s member=%s reason=\"%s\"",
                 accepted ? "server" : "client", addr, shown, e.msg);
        return r;
    }
    if (pid.role != PKI_ROLE_CONTROLLER || strcmp(pid.name, name) != 0 || srv_name_id(name) != id) {
        log_warn("msg=\"peer certificate does not match the member\" side=%s peer=%s "
                 "member=%s cn=\"%s\"",
                 accepted ? "server" : "client", addr, shown, pid.cn);
        return -EKEYREJECTED;
    }
    log_debug("msg=\"peer connection verified\" side=%s peer=%s member=%s",
              accepted ? "server" : "client", addr, name);
    return 0;
}

/* The peer listener's context and the client one (peers, forwarded writes). */
static int peer_tls_start(struct srv *s, const struct net_tls_files *f)
{
    struct sc_error e = {0};
    int r =
        net_tls_server_ctx_new(f, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_CONTROLLER, &s->peer_tls, &e);
    if (r >= 0)
        r = net_tls_client_ctx_new(f, PKI_ROLE_CONTROLLER, &s->tls_client, &e);
    if (r < 0) {
        log_error("msg=\"cannot make the peer TLS contexts\" error=\"%s\"", e.msg);
        return r;
    }
    net_tls_on_refused(s->peer_tls, srv_tls_log_refusal, (void *)"peer");
    net_tls_on_refused(s->tls_client, srv_tls_log_refusal, (void *)"client");
    s->peer_ops = (struct peer_sock_ops){.wrap = peer_wrap, .check = peer_check, .ud = s};
    log_info("msg=\"peer transport and forwarded writes are TLS, controller certificates "
             "required\"");
    return 0;
}

int srv_tls_start(struct srv *s)
{
    if (!s->cfg.tls_dir)
        return 0;
    if (!pki_name_valid(s->cfg.name)) {
        log_error("msg=\"with --tls-dir, --name must be 1-63 of [a-z0-9.-] (it is the "
                  "certificate's controller:NAME)\" name=\"%s\"",
                  s->cfg.name);
        return -EINVAL;
    }
    /* every address is checked before anything is written */
    char host[256], phost[256] = "", ichost[256];
    long port;
    int r = srv_split_hostport("--listen", s->cfg.listen, host, sizeof(host), &port);
    if (r >= 0 && s->cfg.peer_listen)
        r = srv_split_hostport("--peer-listen", s->cfg.peer_listen, phost, sizeof(phost), &port);
    if (r < 0 || (r = own_cluster_host(s, ichost, sizeof(ichost))) < 0 ||
        (r = ensure_files(s, host, phost, ichost)) < 0)
        return r;
    char ca[4096], crt[4096], key[4096];
    snprintf(ca, sizeof(ca), "%s/ca.crt", s->cfg.tls_dir);
    snprintf(crt, sizeof(crt), "%s/controller.crt", s->cfg.tls_dir);
    snprintf(key, sizeof(key), "%s/controller.key", s->cfg.tls_dir);
    struct net_tls_files f = {.ca = ca, .cert = crt, .key = key};
    struct sc_error e = {0};
    if ((r = net_tls_server_ctx_new(&f, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE, &s->tls, &e)) < 0) {
        log_error("msg=\"cannot make the TLS context\" error=\"%s\"", e.msg);
        return r;
    }
    net_tls_on_refused(s->tls, srv_tls_log_refusal, (void *)"api");
    evhttp_set_bevcb(s->http, net_tls_evhttp_bevcb, s->tls);
    log_info("msg=\"API listener is HTTPS, client certificates required\" dir=%s", s->cfg.tls_dir);
    return s->cfg.peer_listen ? peer_tls_start(s, &f) : 0;
}

int srv_health_start(struct srv *s)
{
    if (!s->cfg.health_listen)
        return 0;
    char host[256];
    long port;
    int r = srv_split_hostport("--health-listen", s->cfg.health_listen, host, sizeof(host), &port);
    if (r < 0)
        return r;
    if (!is_loopback(host)) {
        log_error("msg=\"--health-listen must be a loopback address (127.0.0.0/8 or ::1)\" "
                  "got=\"%s\"",
                  s->cfg.health_listen);
        return -EINVAL;
    }
    s->health_http = evhttp_new(s->base);
    evhttp_set_allowed_methods(s->health_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                   EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                                   EVHTTP_REQ_PATCH);
    const struct timeval idle = {10, 0};
    evhttp_set_timeout_tv(s->health_http, &idle);
    evhttp_set_gencb(s->health_http, srv_handle_health, s);
    if (evhttp_bind_socket(s->health_http, host, (uint16_t)port) < 0) {
        log_error("msg=\"cannot listen for health checks\" addr=%s error=\"%s\"",
                  s->cfg.health_listen, strerror(errno));
        return -EADDRINUSE;
    }
    log_info("msg=\"health listener (plain HTTP, GET /healthz only)\" addr=%s",
             s->cfg.health_listen);
    return 0;
}

void srv_tls_done(struct srv *s)
{
    if (s->health_http)
        evhttp_free(s->health_http);
    s->health_http = NULL;
    if (s->tls) {
        /* libevent finalizes freed SSL bufferevents in the loop (docs/pki.md) */
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        SSL_CTX_free(s->tls);
    }
    SSL_CTX_free(s->peer_tls); /* NULL is fine */
    SSL_CTX_free(s->tls_client);
    s->tls = s->peer_tls = s->tls_client = NULL;
}
