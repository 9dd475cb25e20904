/*
 * tls.c: mutual TLS on sctld's API listener (--tls-dir) and the plain-HTTP
 * health listener (--health-listen); issue 7's first wiring step.
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
 *                             --listen host, localhost, 127.0.0.1, ::1 and the
 *                             host name as SANs
 *   DIR/admin.crt, .key       pki_ca_ensure_issued for the admin (sctl --cert)
 *
 * then one server SSL_CTX (TLS 1.3, client certificate REQUIRED, any role the
 * CA signed) becomes the API evhttp's bufferevent factory.
 *
 * Invariants.
 *   1. With tls_dir set, the API listener is never bound before its evhttp has
 *      the TLS bufferevent callback (srv_tls_start runs before bind_listener and
 *      a failure stops the start), so no request is ever served in plaintext on it.
 *   2. Every handshake refused on it (sent or received fatal alert) is logged once
 *      with the peer address, the refused certificate's CN and the reason.
 *   3. The health listener binds only a loopback address and routes only /healthz.
 *
 * Not covered yet (issue 7): the Raft peer transport and forward.c (a follower
 * forwards writes in plain HTTP), so --tls-dir refuses --peer-listen; no
 * per-role authorization (any certificate of the CA may do anything); logs.c
 * still fetches from slet in plain HTTP.
 */
#include <arpa/inet.h>
#include <errno.h>
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

static void log_refusal(void *ud, const struct net_tls_refusal *r)
{
    (void)ud;
    log_warn("msg=\"tls handshake refused\" side=%s peer=%s cn=\"%s\" reason=\"%s\"",
             r->sent ? "server" : "client", r->peer, r->subject, r->reason);
}

/* HOST:PORT (HOST may be [v6]) split into host and port. */
static int split_hostport(const char *flag, const char *addr, char *host, size_t hsize, long *port)
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

/* The CA, this controller's certificate and the admin's, in cfg.tls_dir. */
static int ensure_files(struct srv *s, char *host)
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
    bool wildcard = !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
    if (!wildcard)
        san_add(is_ip(host) ? ctl.ips : ctl.dns, host);
    san_add(ctl.dns, "localhost");
    if (hostname[0])
        san_add(ctl.dns, hostname);
    san_add(ctl.ips, "127.0.0.1");
    san_add(ctl.ips, "::1");
    struct pki_issue admin = {.role = PKI_ROLE_ADMIN, .validity_sec = TLS_LEAF_VALIDITY};
    if ((r = issue_pair(ca, &ctl, dir, "controller")) >= 0)
        r = issue_pair(ca, &admin, dir, "admin");
    pki_ca_free(ca);
    return r;
}

int srv_tls_start(struct srv *s)
{
    if (!s->cfg.tls_dir)
        return 0;
    if (s->cfg.peer_listen) {
        log_error("msg=\"--tls-dir does not cover the Raft peers and forwarded writes yet "
                  "(issue 7); use it without --peer-listen\"");
        return -EINVAL;
    }
    if (!pki_name_valid(s->cfg.name)) {
        log_error("msg=\"with --tls-dir, --name must be 1-63 of [a-z0-9.-] (it is the "
                  "certificate's controller:NAME)\" name=\"%s\"",
                  s->cfg.name);
        return -EINVAL;
    }
    char host[256];
    long port;
    int r = split_hostport("--listen", s->cfg.listen, host, sizeof(host), &port);
    if (r < 0 || (r = ensure_files(s, host)) < 0)
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
    net_tls_on_refused(s->tls, log_refusal, s);
    evhttp_set_bevcb(s->http, net_tls_evhttp_bevcb, s->tls);
    log_info("msg=\"API listener is HTTPS, client certificates required\" dir=%s", s->cfg.tls_dir);
    return 0;
}

int srv_health_start(struct srv *s)
{
    if (!s->cfg.health_listen)
        return 0;
    char host[256];
    long port;
    int r = split_hostport("--health-listen", s->cfg.health_listen, host, sizeof(host), &port);
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
    s->tls = NULL;
}
