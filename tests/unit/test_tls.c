/* test_tls.c: real TLS 1.3 handshakes between an evhttp server on 127.0.0.1
 * (src/net glue, in a thread of the test) and libcurl, libevent and plain
 * OpenSSL clients, with certificates from src/pki: who gets in, who is refused,
 * and what identity the server sees. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/bufferevent.h>
#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "base/util.h"
#include "net/tls.h"
#include "net/tls_curl.h"
#include "pki/pki.h"

static char dir[64];

static const char *path(const char *name)
{
    static char buf[8][256];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

/* Issues req from ca into NAME.crt / NAME.key. */
static void issue(struct pki_ca *ca, const char *name, struct pki_issue req)
{
    struct sc_error e = {0};
    char *k = NULL, *c = NULL, f[64];
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    snprintf(f, sizeof(f), "%s.crt", name);
    assert_int_equal(pki_file_write(path(f), c, 0644, &e), 0);
    snprintf(f, sizeof(f), "%s.key", name);
    assert_int_equal(pki_file_write(path(f), k, 0600, &e), 0);
    pki_secret_free(k);
    free(c);
}

/* ca.crt; ctl (controller:ctl-1, 127.0.0.1 + localhost); node (node:n1); admin;
 * expired (node:n1, expired an hour ago); other-ca.crt and alien (node:n1 by it). */
static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sc-test-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct sc_error e = {0};
    struct pki_ca *ca = NULL, *other = NULL;
    assert_int_equal(pki_ca_create("cluster", 0, &ca, &e), 0);
    assert_int_equal(pki_ca_save(ca, path("ca.crt"), path("ca.key"), &e), 0);
    assert_int_equal(pki_ca_create("cluster", 0, &other, &e), 0);
    assert_int_equal(pki_ca_save(other, path("other-ca.crt"), NULL, &e), 0);
    issue(ca, "ctl",
          (struct pki_issue){.role = PKI_ROLE_CONTROLLER,
                             .name = "ctl-1",
                             .dns = {"localhost"},
                             .ips = {"127.0.0.1"},
                             .validity_sec = 3600});
    issue(ca, "node",
          (struct pki_issue){.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600});
    issue(ca, "admin", (struct pki_issue){.role = PKI_ROLE_ADMIN, .validity_sec = 3600});
    issue(ca, "expired",
          (struct pki_issue){.role = PKI_ROLE_NODE,
                             .name = "n1",
                             .not_before = time(NULL) - 7200,
                             .validity_sec = 3600});
    issue(other, "alien",
          (struct pki_issue){.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600});
    pki_ca_free(ca);
    pki_ca_free(other);
    return 0;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static int teardown(void **state)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- the server: evhttp over TLS in a thread -------------------------------------------- */

struct server {
    struct event_base *base;
    struct evhttp *http;
    SSL_CTX *ctx;
    pthread_t thread;
    uint16_t port;
    atomic_int requests;
    pthread_mutex_t mu;  /* guards refusals while the server thread runs */
    char refusals[2048]; /* "SUBJECT|REASON\n" each, from net_tls_on_refused */
};

static void on_refused(void *ud, const struct net_tls_refusal *r)
{
    struct server *s = ud;
    pthread_mutex_lock(&s->mu);
    size_t n = strlen(s->refusals);
    if (strncmp(r->peer, "127.0.0.1:", 10) != 0)
        snprintf(s->refusals + n, sizeof(s->refusals) - n, "bad peer %s %s %s\n", r->peer,
                 r->subject, r->reason);
    else
        snprintf(s->refusals + n, sizeof(s->refusals) - n, "%s|%s\n", r->subject, r->reason);
    pthread_mutex_unlock(&s->mu);
}

/* Waits (at most 10 s) until the server has logged n refusals: an alert the
 * client sent as it hung up may be read after the client's call returned. */
static void wait_refusals(struct server *s, int n)
{
    for (int tries = 0; tries < 1000; tries++) {
        pthread_mutex_lock(&s->mu);
        int lines = 0;
        for (const char *p = s->refusals; (p = strchr(p, '\n')); p++)
            lines++;
        pthread_mutex_unlock(&s->mu);
        if (lines >= n)
            return;
        usleep(10000);
    }
}

/* Takes the next refusal the server logged (after server_stop: the server thread
 * has ended) and checks who and why. */
static void expect_refusal(struct server *s, const char *subject, const char *reason)
{
    char *nl = strchr(s->refusals, '\n');
    if (!nl)
        fail_msg("no refusal logged; expected %s|%s", subject, reason);
    *nl = '\0';
    char *bar = strchr(s->refusals, '|');
    assert_non_null(bar);
    *bar = '\0';
    assert_string_equal(s->refusals, subject);
    if (!strstr(bar + 1, reason))
        fail_msg("refusal '%s' does not say '%s'", bar + 1, reason);
    memmove(s->refusals, nl + 1, strlen(nl + 1) + 1);
}

/* Answers "CN O ROLE" for a verified client, "none" for one without a certificate. */
static void who(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    atomic_fetch_add(&s->requests, 1);
    struct pki_identity id;
    struct sc_error e = {0};
    struct evbuffer *out = evbuffer_new();
    int r = net_tls_evhttp_identity(req, &id, &e);
    if (strcmp(evhttp_request_get_uri(req), "/nodelay") == 0) {
        struct bufferevent *bev =
            evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
        int v = -1;
        socklen_t vl = sizeof(v);
        getsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &v, &vl);
        evbuffer_add_printf(out, "nodelay %d", v);
    } else if (r == 0)
        evbuffer_add_printf(out, "%s %s %s", id.cn, id.org, pki_role_name(id.role));
    else
        evbuffer_add_printf(out, "none %d", r);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static void server_start(struct server *s, enum net_tls_client_auth auth, enum pki_role role)
{
    struct sc_error e = {0};
    assert_int_equal(evthread_use_pthreads(), 0);
    pthread_mutex_init(&s->mu, NULL);
    signal(SIGPIPE, SIG_IGN); /* as the daemons do: a peer that hangs up is an EPIPE */
    struct net_tls_files f = {
        .ca = path("ca.crt"), .cert = path("ctl.crt"), .key = path("ctl.key")};
    int r = net_tls_server_ctx_new(&f, auth, role, &s->ctx, &e);
    if (r < 0)
        fail_msg("server ctx: %s", e.msg);
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    evhttp_set_bevcb(s->http, net_tls_evhttp_bevcb, s->ctx);
    net_tls_on_refused(s->ctx, on_refused, s);
    evhttp_set_gencb(s->http, who, s);
    evhttp_set_timeout(s->http, 2); /* seconds; also bounds a handshake that never comes */
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    event_base_loopbreak(s->base);
    pthread_join(s->thread, NULL);
    evhttp_free(s->http);
    event_base_loop(s->base, EVLOOP_NONBLOCK); /* runs the freed bufferevents' finalizers */
    event_base_free(s->base);
    SSL_CTX_free(s->ctx);
}

/* ---- the libcurl client ----------------------------------------------------------------- */

struct reply {
    CURLcode rc;
    long status;
    char body[256];
    size_t len;
    char err[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t k = MIN(sz * n, sizeof(r->body) - 1 - r->len);
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return sz * n;
}

/* GET https://HOST:port/who as the client whose files are ca, cert/key (NULL: none);
 * tls12 forces a TLS 1.2-only client. */
static struct reply get_path(const struct server *s, const char *host, const char *ca,
                             const char *cert, bool tls12, const char *upath)
{
    struct reply r = {0};
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[128], res[128], kf[64];
    snprintf(url, sizeof(url), "https://%s:%u%s", host, s->port, upath);
    struct curl_slist *resolve = NULL;
    if (strcmp(host, "127.0.0.1") != 0) { /* names resolve to loopback, nothing else */
        snprintf(res, sizeof(res), "%s:%u:127.0.0.1", host, s->port);
        resolve = curl_slist_append(NULL, res);
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    }
    struct sc_error e = {0};
    char cf[64];
    snprintf(cf, sizeof(cf), "%s.crt", cert ? cert : "");
    snprintf(kf, sizeof(kf), "%s.key", cert ? cert : "");
    struct net_tls_files f = {
        .ca = path(ca), .cert = cert ? path(cf) : NULL, .key = cert ? path(kf) : NULL};
    assert_int_equal(net_tls_curl_setup(c, &f, &e), 0);
    if (tls12)
        curl_easy_setopt(c, CURLOPT_SSLVERSION,
                         (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r.err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    return r;
}

static struct reply get(const struct server *s, const char *host, const char *ca, const char *cert,
                        bool tls12)
{
    return get_path(s, host, ca, cert, tls12, "/who");
}

static void expect_ok(struct reply r, const char *body)
{
    if (r.rc != CURLE_OK)
        fail_msg("curl: %s (%s)", curl_easy_strerror(r.rc), r.err);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, body);
}

static void expect_refused(struct reply r)
{
    if (r.rc == CURLE_OK)
        fail_msg("expected a refused handshake, got HTTP %ld '%s'", r.status, r.body);
    assert_int_equal(r.status, 0);
}

/* ---- cases ------------------------------------------------------------------------------ */

static void valid_client_cert_gets_200_and_identity(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    expect_ok(get(&s, "127.0.0.1", "ca.crt", "node", false), "node:n1 swiftcube:nodes node");
    expect_ok(get(&s, "127.0.0.1", "ca.crt", "admin", false), "admin swiftcube:admins admin");
    /* the server certificate also names localhost */
    expect_ok(get(&s, "localhost", "ca.crt", "node", false), "node:n1 swiftcube:nodes node");
    assert_int_equal(atomic_load(&s.requests), 3);
    server_stop(&s);
    assert_string_equal(s.refusals, "");
}

/* libevent writes a response as several TLS records: without TCP_NODELAY the
 * later ones wait for the client's delayed ACK (40 ms a request). */
static void server_sockets_have_nodelay(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    expect_ok(get_path(&s, "127.0.0.1", "ca.crt", "node", false, "/nodelay"), "nodelay 1");
    server_stop(&s);
    assert_string_equal(s.refusals, "");
}

static void no_client_cert_is_refused(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    expect_refused(get(&s, "127.0.0.1", "ca.crt", NULL, false));
    expect_ok(get(&s, "127.0.0.1", "ca.crt", "node", false), "node:n1 swiftcube:nodes node");
    assert_int_equal(atomic_load(&s.requests), 1);
    wait_refusals(&s, 1);
    server_stop(&s);
    expect_refusal(&s, "", "sent alert 'certificate required'");
    assert_string_equal(s.refusals, "");
}

static void client_cert_from_other_ca_is_refused(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    expect_refused(get(&s, "127.0.0.1", "ca.crt", "alien", false));
    assert_int_equal(atomic_load(&s.requests), 0);
    wait_refusals(&s, 1);
    server_stop(&s);
    expect_refusal(&s, "node:n1",
                   "sent alert 'unknown CA': unable to get local issuer certificate");
    assert_string_equal(s.refusals, "");
}

static void expired_client_cert_is_refused(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    expect_refused(get(&s, "127.0.0.1", "ca.crt", "expired", false));
    assert_int_equal(atomic_load(&s.requests), 0);
    wait_refusals(&s, 1);
    server_stop(&s);
    expect_refusal(&s, "node:n1", "sent alert 'certificate expired': certificate has expired");
    assert_string_equal(s.refusals, "");
}

static void tls12_only_client_is_refused(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    struct reply r = get(&s, "127.0.0.1", "ca.crt", "node", true);
    expect_refused(r);
    assert_int_equal(r.rc, CURLE_SSL_CONNECT_ERROR);
    assert_int_equal(atomic_load(&s.requests), 0);
    wait_refusals(&s, 1);
    server_stop(&s);
    expect_refusal(&s, "", "sent alert 'protocol version'");
    assert_string_equal(s.refusals, "");
}

static void client_refuses_wrong_ca_or_name(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    struct reply r = get(&s, "127.0.0.1", "other-ca.crt", "node", false);
    expect_refused(r);
    assert_int_equal(r.rc, CURLE_PEER_FAILED_VERIFICATION);
    /* right CA, but the certificate does not name this host */
    r = get(&s, "ctl-2.example", "ca.crt", "node", false);
    expect_refused(r);
    assert_int_equal(r.rc, CURLE_PEER_FAILED_VERIFICATION);
    assert_int_equal(atomic_load(&s.requests), 0);
    wait_refusals(&s, 1);
    server_stop(&s);
    /* curl checks the name after the handshake and just hangs up: one alert */
    expect_refusal(&s, "", "received alert 'unknown CA'");
    assert_string_equal(s.refusals, "");
}

static void join_endpoint_takes_clients_without_cert(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_OPTIONAL, PKI_ROLE_NONE);
    char none[32];
    snprintf(none, sizeof(none), "none %d", -ENOKEY);
    expect_ok(get(&s, "127.0.0.1", "ca.crt", NULL, false), none);
    expect_ok(get(&s, "127.0.0.1", "ca.crt", "node", false), "node:n1 swiftcube:nodes node");
    /* a certificate that is shown must still verify */
    expect_refused(get(&s, "127.0.0.1", "ca.crt", "alien", false));
    expect_refused(get(&s, "127.0.0.1", "ca.crt", "expired", false));
    assert_int_equal(atomic_load(&s.requests), 2);
    wait_refusals(&s, 2);
    server_stop(&s);
    expect_refusal(&s, "node:n1", "unknown CA");
    expect_refusal(&s, "node:n1", "certificate has expired");
    assert_string_equal(s.refusals, "");
}

static void peer_listener_takes_only_controllers(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_CONTROLLER);
    expect_refused(get(&s, "127.0.0.1", "ca.crt", "node", false));
    expect_refused(get(&s, "127.0.0.1", "ca.crt", "admin", false));
    expect_ok(get(&s, "127.0.0.1", "ca.crt", "ctl", false),
              "controller:ctl-1 swiftcube:controllers controller");
    assert_int_equal(atomic_load(&s.requests), 1);
    wait_refusals(&s, 2);
    server_stop(&s);
    expect_refusal(&s, "node:n1, not a controller", "sent alert");
    expect_refusal(&s, "admin, not a controller", "sent alert");
    assert_string_equal(s.refusals, "");
}

/* ---- the libevent client ---------------------------------------------------------------- */

struct evreq {
    struct event_base *base;
    int status;
    char body[256];
};

static void on_done(struct evhttp_request *req, void *arg)
{
    struct evreq *q = arg;
    q->status = req ? evhttp_request_get_response_code(req) : -1;
    if (req && evhttp_request_get_input_buffer(req)) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = MIN(evbuffer_get_length(in), sizeof(q->body) - 1);
        evbuffer_remove(in, q->body, n);
        q->body[n] = '\0';
    }
    event_base_loopexit(q->base, NULL);
}

static struct evreq ev_get(struct event_base *base, struct evhttp_connection *c, bool close)
{
    struct evreq q = {.base = base};
    struct evhttp_request *req = evhttp_request_new(on_done, &q);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    if (close)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    assert_int_equal(evhttp_make_request(c, req, EVHTTP_REQ_GET, "/who"), 0);
    struct timeval tv = {10, 0};
    event_base_loopexit(base, &tv); /* a hang fails the test instead of stalling it */
    event_base_dispatch(base);
    return q;
}

static void evhttp_client_over_tls(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    struct sc_error e = {0};
    struct net_tls_files f = {
        .ca = path("ca.crt"), .cert = path("node.crt"), .key = path("node.key")};
    SSL_CTX *ctx = NULL, *wrong_role = NULL;
    assert_int_equal(net_tls_client_ctx_new(&f, PKI_ROLE_CONTROLLER, &ctx, &e), 0);
    assert_int_equal(net_tls_client_ctx_new(&f, PKI_ROLE_NODE, &wrong_role, &e), 0);
    struct event_base *base = event_base_new();

    struct evhttp_connection *c = net_tls_evhttp_connection_new(base, ctx, "127.0.0.1", s.port, &e);
    assert_non_null(c);
    struct evreq q = ev_get(base, c, false);
    assert_int_equal(q.status, 200);
    assert_string_equal(q.body, "node:n1 swiftcube:nodes node");
    /* kept alive, then closed by the server, then reconnected with a fresh handshake */
    q = ev_get(base, c, true);
    assert_int_equal(q.status, 200);
    q = ev_get(base, c, false);
    assert_int_equal(q.status, 200);
    assert_string_equal(q.body, "node:n1 swiftcube:nodes node");
    evhttp_connection_free(c);

    /* a client that expects a node on the other end refuses the controller */
    c = net_tls_evhttp_connection_new(base, wrong_role, "127.0.0.1", s.port, &e);
    q = ev_get(base, c, false);
    assert_true(q.status <= 0);
    evhttp_connection_free(c);
    assert_int_equal(atomic_load(&s.requests), 3);

    event_base_free(base);
    SSL_CTX_free(ctx);
    SSL_CTX_free(wrong_role);
    wait_refusals(&s, 1);
    server_stop(&s);
    expect_refusal(&s, "", "received alert 'handshake failure'");
    assert_string_equal(s.refusals, "");
}

/* ---- a plain OpenSSL client: the server's identity as the client sees it ---------------- */

static int ssl_dial(const struct server *s, SSL_CTX *ctx, const char *host, SSL **ret)
{
    struct sc_error e = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = NULL;
    assert_int_equal(net_tls_client_ssl_new(ctx, host, &ssl, &e), 0);
    SSL_set_fd(ssl, fd);
    int r = SSL_connect(ssl);
    ERR_clear_error();
    *ret = ssl;
    return r;
}

static void ssl_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
}

static void client_sees_server_identity(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE);
    struct sc_error e = {0};
    struct net_tls_files f = {
        .ca = path("ca.crt"), .cert = path("admin.crt"), .key = path("admin.key")};
    SSL_CTX *ctx = NULL;
    assert_int_equal(net_tls_client_ctx_new(&f, PKI_ROLE_NONE, &ctx, &e), 0);
    SSL *ssl = NULL;
    assert_int_equal(ssl_dial(&s, ctx, "127.0.0.1", &ssl), 1);
    assert_string_equal(SSL_get_version(ssl), "TLSv1.3");
    struct pki_identity id;
    assert_int_equal(net_tls_peer_identity(ssl, &id, &e), 0);
    assert_int_equal(id.role, PKI_ROLE_CONTROLLER);
    assert_string_equal(id.name, "ctl-1");
    static const char rq[] = "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(SSL_write(ssl, rq, sizeof(rq) - 1), (int)sizeof(rq) - 1);
    char buf[1024];
    size_t n = 0;
    int k;
    while (n < sizeof(buf) - 1 && (k = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n))) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    assert_non_null(strstr(buf, "200 OK"));
    assert_non_null(strstr(buf, "admin swiftcube:admins admin"));
    ssl_close(ssl);

    /* dialled 127.0.0.1 but expecting 127.0.0.2: the IP SAN does not match */
    assert_true(ssl_dial(&s, ctx, "127.0.0.2", &ssl) != 1);
    assert_int_equal(SSL_get_verify_result(ssl), X509_V_ERR_IP_ADDRESS_MISMATCH);
    ssl_close(ssl);
    SSL_CTX_free(ctx);
    wait_refusals(&s, 1);
    server_stop(&s);
    expect_refusal(&s, "", "received alert 'bad certificate'");
    assert_string_equal(s.refusals, "");
}

/* A client that connects and never starts the handshake (a slow-loris on the
 * join port) is dropped by the server's timeout, not kept forever. */
static void silent_client_is_dropped(void **state)
{
    struct server s = {0};
    server_start(&s, NET_TLS_CLIENT_OPTIONAL, PKI_ROLE_NONE);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {15, 0}; /* far past the server's 2 s */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c;
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    ssize_t n = read(fd, &c, 1);
    if (n != 0)
        fail_msg("expected the server to close the connection, read gave %zd (%m)", n);
    assert_true(now_usec(CLOCK_MONOTONIC) - t0 < 14 * USEC_PER_SEC);
    close(fd);
    server_stop(&s);
    assert_int_equal(atomic_load(&s.requests), 0);
}

static void contexts_refuse_bad_files(void **state)
{
    struct sc_error e = {0};
    SSL_CTX *ctx = NULL;
    struct net_tls_files nokey = {.ca = path("ca.crt"), .cert = path("ctl.crt")};
    assert_int_equal(net_tls_server_ctx_new(&nokey, NET_TLS_CLIENT_REQUIRED, 0, &ctx, &e),
                     -SC_E_INVALID);
    struct net_tls_files mismatch = {
        .ca = path("ca.crt"), .cert = path("ctl.crt"), .key = path("node.key")};
    assert_int_equal(net_tls_server_ctx_new(&mismatch, NET_TLS_CLIENT_REQUIRED, 0, &ctx, &e),
                     -SC_E_INVALID);
    assert_non_null(strstr(e.msg, "node.key"));
    assert_non_null(strstr(e.msg, "mismatch"));
    struct net_tls_files noca = {.ca = path("missing.crt")};
    assert_int_equal(net_tls_client_ctx_new(&noca, 0, &ctx, &e), -SC_E_INVALID);
    assert_null(ctx);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(valid_client_cert_gets_200_and_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(server_sockets_have_nodelay, setup, teardown),
        cmocka_unit_test_setup_teardown(no_client_cert_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(client_cert_from_other_ca_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_client_cert_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(tls12_only_client_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(client_refuses_wrong_ca_or_name, setup, teardown),
        cmocka_unit_test_setup_teardown(join_endpoint_takes_clients_without_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_listener_takes_only_controllers, setup, teardown),
        cmocka_unit_test_setup_teardown(evhttp_client_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(client_sees_server_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_client_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(contexts_refuse_bad_files, setup, teardown),
    };
    return sc_test_main(tests, argc, argv);
}
