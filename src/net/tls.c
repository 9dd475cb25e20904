/*
 * tls.c: TLS 1.3 SSL_CTX builders, peer identity, and the libevent glue (see
 * tls.h for the design and the invariants).
 *
 * The role check runs inside OpenSSL's verify callback at depth 0, after the
 * chain itself verified, so a wrong role fails the handshake with a
 * certificate alert exactly like a wrong CA does: the application never sees a
 * connection it would have to remember to refuse.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

static int ssl_err(struct sc_error *e, int r, const char *what, const char *path)
{
    char buf[160] = "unknown OpenSSL error";
    unsigned long code = ERR_peek_last_error();
    if (code)
        ERR_error_string_n(code, buf, sizeof(buf));
    ERR_clear_error();
    return sc_error_set(e, r, "tls", "%s%s%s: %s", what, path ? " " : "", path ? path : "", buf);
}

/* ---- role check and refusal notes ------------------------------------------------------- */

static int role_idx = -1, hook_idx = -1, note_idx = -1, addr_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void idx_init(void)
{
    role_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    hook_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
    note_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
    addr_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

struct refused_hook {
    net_tls_refused_fn fn;
    void *ud;
};

/* Remembers who the refused certificate named, for the alert that follows. */
static void note_subject(SSL *ssl, X509 *leaf, const char *why)
{
    struct pki_identity id;
    char *note = xmalloc(PKI_CN_MAX + 64);
    if (!leaf || pki_identity_from_x509(leaf, &id, NULL) < 0)
        snprintf(id.cn, sizeof(id.cn), "?");
    snprintf(note, PKI_CN_MAX + 64, "%s%s", id.cn, why);
    free(SSL_get_ex_data(ssl, note_idx));
    SSL_set_ex_data(ssl, note_idx, note);
}

static int verify_role(int preverify_ok, X509_STORE_CTX *sctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (!preverify_ok) {
        note_subject(ssl, X509_STORE_CTX_get0_cert(sctx), "");
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(sctx) != 0)
        return 1;
    enum pki_role want =
        (enum pki_role)(intptr_t)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), role_idx);
    struct pki_identity id;
    X509 *leaf = X509_STORE_CTX_get_current_cert(sctx);
    if (want == PKI_ROLE_NONE || (pki_identity_from_x509(leaf, &id, NULL) == 0 && id.role == want))
        return 1;
    char why[48];
    snprintf(why, sizeof(why), ", not a %s", pki_role_name(want));
    note_subject(ssl, leaf, why);
    X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

/* ---- the info callback ------------------------------------------------------------------ */

/* The peer's address, kept from the handshake's start: by the time an alert the
 * peer sent is read, the peer may have closed and getpeername fails. */
static void note_peer(const SSL *ssl, int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (SSL_get_ex_data(ssl, addr_idx) || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    bool v4 = ss.ss_family == AF_INET;
    char host[INET6_ADDRSTRLEN] = "?";
    inet_ntop(ss.ss_family,
              v4 ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
                 : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr,
              host, sizeof(host));
    int port =
        ntohs(v4 ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    char *a = xmalloc(INET6_ADDRSTRLEN + 16);
    snprintf(a, INET6_ADDRSTRLEN + 16, v4 ? "%s:%d" : "[%s]:%d", host, port);
    SSL_set_ex_data((SSL *)ssl, addr_idx, a); /* ex_data is not the SSL's state */
}

/* The refusal hook of ssl's context (NULL: none) and r's peer filled in. */
static const struct refused_hook *refusal_start(const SSL *ssl, bool sent,
                                                struct net_tls_refusal *r)
{
    const struct refused_hook *h = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), hook_idx);
    *r = (struct net_tls_refusal){.sent = sent};
    const char *addr = SSL_get_ex_data(ssl, addr_idx);
    snprintf(r->peer, sizeof(r->peer), "%s", addr ? addr : "?");
    return h;
}

static void report_alert(const SSL *ssl, bool sent, int alert)
{
    struct net_tls_refusal r;
    const struct refused_hook *h = refusal_start(ssl, sent, &r);
    if (!h)
        return;
    const char *note = SSL_get_ex_data(ssl, note_idx);
    snprintf(r.subject, sizeof(r.subject), "%s", note ? note : "");
    long v = SSL_get_verify_result(ssl);
    /* OpenSSL 3.0 has no name for TLS 1.3's certificate_required (116) */
    const char *desc =
        (alert & 0xff) == 116 ? "certificate required" : SSL_alert_desc_string_long(alert);
    snprintf(r.reason, sizeof(r.reason), "%s alert '%s'%s%s", sent ? "sent" : "received", desc,
             v != X509_V_OK ? ": " : "", v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
    h->fn(h->ud, &r);
}

/* A handshake that failed before any alert could be sent. */
static void report_plain(const SSL *ssl, const char *why)
{
    struct net_tls_refusal r;
    const struct refused_hook *h = refusal_start(ssl, true, &r);
    if (!h)
        return;
    snprintf(r.reason, sizeof(r.reason), "%s", why);
    h->fn(h->ud, &r);
}

/* libevent writes each evbuffer chunk as its own TLS record, so a response is
 * often two or three small segments; with Nagle on, the second waits for the
 * peer's delayed ACK (40 ms on Linux).  Every TLS socket gets TCP_NODELAY once
 * its handshake starts, the first moment the SSL knows its fd.  Fatal alerts,
 * sent or received, go to the refusal hook. */
static void info_cb(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_HANDSHAKE_START) && SSL_in_before(ssl)) {
        /* a new connection; an SSL that evhttp reuses after SSL_clear keeps its
         * ex_data, so the last connection's notes go here */
        SSL *s = (SSL *)ssl; /* ex_data is not the SSL's state */
        free(SSL_get_ex_data(s, note_idx));
        free(SSL_get_ex_data(s, addr_idx));
        SSL_set_ex_data(s, note_idx, NULL);
        SSL_set_ex_data(s, addr_idx, NULL);
        int fd = SSL_get_fd(ssl), one = 1;
        if (fd >= 0) {
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            note_peer(ssl, fd);
        }
    }
    if ((where & SSL_CB_ALERT) && strcmp(SSL_alert_type_string(ret), "F") == 0)
        report_alert(ssl, where & SSL_CB_WRITE, ret);
    /* plain HTTP (or any non-TLS bytes) to a TLS port: OpenSSL fails the
     * handshake without an alert, so it is reported from here */
    if (where == SSL_CB_ACCEPT_EXIT && ret <= 0) {
        unsigned long err = ERR_peek_error();
        int reason = ERR_GET_REASON(err);
        if (err && ERR_GET_LIB(err) == ERR_LIB_SSL &&
            (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_WRONG_VERSION_NUMBER))
            report_plain(ssl, reason == SSL_R_HTTP_REQUEST ? "plain HTTP sent to a TLS port"
                                                           : "not TLS (wrong version number)");
    }
}

void net_tls_on_refused(SSL_CTX *ctx, net_tls_refused_fn fn, void *ud)
{
    pthread_once(&idx_once, idx_init);
    struct refused_hook *h = NULL;
    if (fn) {
        h = xmalloc(sizeof(*h));
        *h = (struct refused_hook){fn, ud};
    }
    free(SSL_CTX_get_ex_data(ctx, hook_idx));
    SSL_CTX_set_ex_data(ctx, hook_idx, h);
}

/* ---- contexts --------------------------------------------------------------------------- */

/* What servers and clients share: TLS 1.3 only, the CA, the verify callback, and
 * this side's certificate when it has one. */
static int ctx_common(SSL_CTX *ctx, const struct net_tls_files *f, enum pki_role peer_role,
                      int verify_mode, struct sc_error *e)
{
    pthread_once(&idx_once, idx_init);
    if (!f->ca)
        return sc_error_set(e, -SC_E_INVALID, "tls", "the cluster CA file is required");
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ex_data(ctx, role_idx, (void *)(intptr_t)peer_role) != 1)
        return ssl_err(e, -SC_E_INTERNAL, "configure", NULL);
    if (SSL_CTX_load_verify_file(ctx, f->ca) != 1)
        return ssl_err(e, -SC_E_INVALID, "load CA", f->ca);
    /* A peer that closes without close_notify (libevent's clients and servers
     * do) is an EOF, not a "decode error" alert: HTTP and the peer frames carry
     * their own lengths, so a truncation is still caught a layer up. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* the cluster CA is the trust anchor even when an operator's root signed it */
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(ctx, verify_mode, verify_role);
    SSL_CTX_set_info_callback(ctx, info_cb);
    if (!f->cert != !f->key)
        return sc_error_set(e, -SC_E_INVALID, "tls", "a certificate needs its key and back");
    if (!f->cert)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
        return ssl_err(e, -SC_E_INVALID, "load certificate", f->cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1)
        return ssl_err(e, -SC_E_INVALID, "load key", f->key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ssl_err(e, -SC_E_INVALID, "key does not match certificate", f->cert);
    return 0;
}

int net_tls_server_ctx_new(const struct net_tls_files *f, enum net_tls_client_auth auth,
                           enum pki_role peer_role, SSL_CTX **ret, struct sc_error *e)
{
    if (!f->cert || !f->key)
        return sc_error_set(e, -SC_E_INVALID, "tls", "a TLS server needs a certificate and key");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        sc_oom();
    int mode =
        SSL_VERIFY_PEER | (auth == NET_TLS_CLIENT_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    int r = ctx_common(ctx, f, peer_role, mode, e);
    if (r == 0) {
        /* Tells clients which CA to pick a certificate for, and lets sessions
         * with a client certificate resume. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->ca);
        if (!names)
            r = ssl_err(e, -SC_E_INVALID, "read CA names", f->ca);
        else
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (r == 0 && SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"swiftcube", 9) != 1)
        r = ssl_err(e, -SC_E_INTERNAL, "session id context", NULL);
    if (r < 0) {
        SSL_CTX_free(ctx);
        return r;
    }
    *ret = ctx;
    return 0;
}

int net_tls_client_ctx_new(const struct net_tls_files *f, enum pki_role peer_role, SSL_CTX **ret,
                           struct sc_error *e)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        sc_oom();
    int r = ctx_common(ctx, f, peer_role, SSL_VERIFY_PEER, e);
    if (r < 0) {
        SSL_CTX_free(ctx);
        return r;
    }
    *ret = ctx;
    return 0;
}

int net_tls_client_ssl_new(SSL_CTX *ctx, const char *host, SSL **ret, struct sc_error *e)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        sc_oom();
    int r = 0;
    if (host) {
        uint8_t addr[16];
        bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
                                   X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
               : (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1))
            r = ssl_err(e, -SC_E_INVALID, "server name", host);
    }
    if (r < 0) {
        SSL_free(ssl);
        return r;
    }
    *ret = ssl;
    return 0;
}

int net_tls_peer_identity(SSL *ssl, struct pki_identity *ret, struct sc_error *e)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (!x)
        return sc_error_set(e, -ENOKEY, "tls", "the peer showed no certificate");
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        return sc_error_set(e, -EKEYREJECTED, "tls", "the peer's certificate did not verify: %s",
                            X509_verify_cert_error_string(v));
    return pki_identity_from_x509(x, ret, e);
}

/* ---- libevent --------------------------------------------------------------------------- */

struct bufferevent *net_tls_bev_new(struct event_base *base, SSL_CTX *ctx, int fd, bool accepted,
                                    const char *host)
{
    SSL *ssl = NULL;
    if (accepted) {
        ssl = SSL_new(ctx);
        if (!ssl)
            sc_oom();
    } else if (net_tls_client_ssl_new(ctx, host, &ssl, NULL) < 0) {
        return NULL;
    }
    /* No BEV_OPT_DEFER_CALLBACKS: with it, an SSL bufferevent that evhttp frees
     * while the loop is stopping was never finalized (LeakSanitizer, libevent 2.1.12). */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, accepted ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        sc_oom();  /* invariant 1: never hand evhttp a NULL (it would go plaintext) */
    if (!accepted) /* HTTP servers may close without close_notify after a response */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

struct bufferevent *net_tls_evhttp_bevcb(struct event_base *base, void *ssl_ctx)
{
    return net_tls_bev_new(base, ssl_ctx, -1, true, NULL);
}

int net_tls_evhttp_identity(struct evhttp_request *req, struct pki_identity *ret,
                            struct sc_error *e)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl)
        return sc_error_set(e, -ENOTCONN, "tls", "the request did not arrive over TLS");
    return net_tls_peer_identity(ssl, ret, e);
}

struct evhttp_connection *net_tls_evhttp_connection_new(struct event_base *base, SSL_CTX *ctx,
                                                        const char *host, uint16_t port,
                                                        struct sc_error *e)
{
    struct bufferevent *bev = net_tls_bev_new(base, ctx, -1, false, host);
    if (!bev) {
        sc_error_set(e, -SC_E_INVALID, "tls", "cannot verify server name '%s'", host);
        return NULL;
    }
    struct evhttp_connection *c =
        evhttp_connection_base_bufferevent_new(base, NULL, bev, host, port);
    if (!c) {
        bufferevent_free(bev);
        sc_error_set(e, -ENOMEM, "tls", "evhttp connection to %s:%u", host, port);
    }
    return c;
}
