/*
 * tls_bench.c: what mutual TLS 1.3 costs an evhttp server (issue 7), as a table.
 *
 * One evhttp server on 127.0.0.1 in a thread (plain, or TLS through src/net with
 * client certificates required), one libcurl client in the main thread, the
 * same handler answering 2 bytes.  Three loops a mode: a new connection for
 * every request with a full handshake (no session resumption), a new
 * connection with resumption allowed (TLS 1.3 tickets),
 * and keep-alive requests on one connection.  Bounded by count and by time.
 *
 *   tls_bench [SECONDS_PER_LOOP]     (default 3)
 *
 * Two clients: plain OpenSSL over blocking sockets with one SSL_CTX (how
 * sctld/slet's libevent clients connect), and libcurl (sctl), which in 7.88
 * builds a new SSL_CTX, and so reloads the CA and key files, per connection.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
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

static void die(const char *what, const struct sc_error *e)
{
    fprintf(stderr, "tls_bench: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static void issue(struct pki_ca *ca, const char *name, struct pki_issue req)
{
    struct sc_error e = {0};
    char *k = NULL, *c = NULL, f[64];
    if (pki_ca_issue(ca, &req, &k, &c, &e) < 0)
        die("issue", &e);
    snprintf(f, sizeof(f), "%s.crt", name);
    pki_file_write(path(f), c, 0644, &e);
    snprintf(f, sizeof(f), "%s.key", name);
    pki_file_write(path(f), k, 0600, &e);
    pki_secret_free(k);
    free(c);
}

struct server {
    struct event_base *base;
    struct evhttp *http;
    SSL_CTX *ctx;
    pthread_t thread;
    uint16_t port;
};

static void ok(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, "ok", 2);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void *server_main(void *arg)
{
    event_base_dispatch(((struct server *)arg)->base);
    return NULL;
}

static void server_start(struct server *s, bool tls)
{
    struct sc_error e = {0};
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    if (tls) {
        struct net_tls_files f = {
            .ca = path("ca.crt"), .cert = path("ctl.crt"), .key = path("ctl.key")};
        if (net_tls_server_ctx_new(&f, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_NONE, &s->ctx, &e) < 0)
            die("server ctx", &e);
        evhttp_set_bevcb(s->http, net_tls_evhttp_bevcb, s->ctx);
    }
    evhttp_set_gencb(s->http, ok, s);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) < 0)
        die("bind", NULL);
    s->port = ntohs(sa.sin_port);
    pthread_create(&s->thread, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
    event_base_loopbreak(s->base);
    pthread_join(s->thread, NULL);
    evhttp_free(s->http);
    event_base_free(s->base);
    SSL_CTX_free(s->ctx);
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    return sz * n;
}

enum loop { NEW_FULL, NEW_RESUME, KEEPALIVE };
enum client { RAW, CURL_CLIENT };

/* ---- the raw client: one SSL_CTX for all connections, as sctld/slet's libevent
 * clients hold one (blocking sockets here, to time the protocol, not a loop) ---- */

static long resumed; /* handshakes the server accepted a ticket for */

struct raw {
    int fd;
    SSL *ssl;
};

static void raw_open(struct raw *c, uint16_t port, SSL_CTX *ctx, SSL_SESSION **sess)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect", NULL);
    c->ssl = NULL;
    if (!ctx)
        return;
    struct sc_error e = {0};
    if (net_tls_client_ssl_new(ctx, "127.0.0.1", &c->ssl, &e) < 0)
        die("ssl", &e);
    SSL_set_fd(c->ssl, c->fd);
    if (sess && *sess)
        SSL_set_session(c->ssl, *sess);
    if (SSL_connect(c->ssl) != 1)
        die("handshake", NULL);
    if (SSL_session_reused(c->ssl))
        resumed++;
}

static void raw_close(struct raw *c, SSL_SESSION **sess)
{
    if (c->ssl) {
        /* close_notify first: OpenSSL marks the session of a connection freed
         * without it as not resumable (ssl_clear_bad_session) */
        SSL_shutdown(c->ssl);
        if (sess && SSL_get0_session(c->ssl) &&
            SSL_SESSION_is_resumable(SSL_get0_session(c->ssl))) {
            SSL_SESSION_free(*sess);
            *sess = SSL_get1_session(c->ssl);
        }
        SSL_free(c->ssl);
    }
    close(c->fd);
}

/* One GET, reading exactly one response (headers + Content-Length: 2). */
static void raw_request(struct raw *c, bool keepalive)
{
    char rq[128];
    int n = snprintf(rq, sizeof(rq), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                     keepalive ? "" : "Connection: close\r\n");
    if ((c->ssl ? SSL_write(c->ssl, rq, n) : (int)write(c->fd, rq, (size_t)n)) != n)
        die("write", NULL);
    char buf[1024];
    size_t got = 0;
    for (;;) {
        int k = c->ssl ? SSL_read(c->ssl, buf + got, (int)(sizeof(buf) - 1 - got))
                       : (int)read(c->fd, buf + got, sizeof(buf) - 1 - got);
        if (k <= 0)
            die("read", NULL);
        got += (size_t)k;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && (size_t)(end + 4 + 2 - buf) <= got)
            break;
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
        die("not 200", NULL);
}

static double run_raw(const struct server *s, SSL_CTX *ctx, enum loop kind, double secs, long max)
{
    SSL_SESSION *sess = NULL;
    struct raw c;
    usec_t t0 = now_usec(CLOCK_MONOTONIC), end = t0 + (usec_t)(secs * 1e6);
    long n = 0;
    if (kind == KEEPALIVE)
        raw_open(&c, s->port, ctx, NULL);
    while (n < max && now_usec(CLOCK_MONOTONIC) < end) {
        if (kind != KEEPALIVE)
            raw_open(&c, s->port, ctx, &sess);
        raw_request(&c, kind == KEEPALIVE);
        if (kind != KEEPALIVE)
            raw_close(&c, kind == NEW_RESUME ? &sess : NULL);
        n++;
    }
    if (kind == KEEPALIVE)
        raw_close(&c, NULL);
    SSL_SESSION_free(sess);
    return (double)n / ((double)(now_usec(CLOCK_MONOTONIC) - t0) / 1e6);
}

/* ---- the libcurl client, as sctl and slet use it -------------------------------------- */

static double run_curl(const struct server *s, bool tls, enum loop kind, double secs, long max)
{
    CURL *c = curl_easy_init();
    char url[96];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%u/", tls ? "https" : "http", s->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (tls) {
        struct sc_error e = {0};
        struct net_tls_files f = {
            .ca = path("ca.crt"), .cert = path("node.crt"), .key = path("node.key")};
        if (net_tls_curl_setup(c, &f, &e) < 0)
            die("curl", &e);
        curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, kind == NEW_FULL ? 0L : 1L);
    }
    if (kind != KEEPALIVE)
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    usec_t t0 = now_usec(CLOCK_MONOTONIC), end = t0 + (usec_t)(secs * 1e6);
    long n = 0;
    while (n < max && now_usec(CLOCK_MONOTONIC) < end) {
        CURLcode r = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (r != CURLE_OK || status != 200) {
            fprintf(stderr, "tls_bench: request %ld: %s, HTTP %ld\n", n, curl_easy_strerror(r),
                    status);
            exit(1);
        }
        n++;
    }
    double dt = (double)(now_usec(CLOCK_MONOTONIC) - t0) / 1e6;
    curl_easy_cleanup(c);
    return (double)n / dt;
}

static int rm_dir(void)
{
    static const char *files[] = {"ca.crt", "ca.key", "ctl.crt", "ctl.key", "node.crt", "node.key"};
    for (size_t i = 0; i < ELEMENTSOF(files); i++)
        unlink(path(files[i]));
    return rmdir(dir);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    if (secs <= 0 || secs > 60)
        secs = 3.0;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof(dir), "/tmp/sc-tls-bench-XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    struct sc_error e = {0};
    struct pki_ca *ca = NULL;
    if (pki_ca_create("bench", 0, &ca, &e) < 0 ||
        pki_ca_save(ca, path("ca.crt"), path("ca.key"), &e) < 0)
        die("ca", &e);
    issue(
        ca, "ctl",
        (struct pki_issue){
            .role = PKI_ROLE_CONTROLLER, .name = "c1", .ips = {"127.0.0.1"}, .validity_sec = 3600});
    issue(ca, "node",
          (struct pki_issue){.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600});
    pki_ca_free(ca);

    struct net_tls_files cf = {
        .ca = path("ca.crt"), .cert = path("node.crt"), .key = path("node.key")};
    SSL_CTX *cctx = NULL;
    if (net_tls_client_ctx_new(&cf, PKI_ROLE_CONTROLLER, &cctx, &e) < 0)
        die("client ctx", &e);

    static const char *names[] = {"new connection, full handshake", "new connection, resumed",
                                  "keep-alive requests"};
    double rate[2][2][3]; /* [client][tls][loop] */
    for (int tls = 0; tls < 2; tls++) {
        struct server s = {0};
        server_start(&s, tls);
        for (int k = 0; k < 3; k++) {
            long max = k == KEEPALIVE ? 500000 : 100000;
            rate[RAW][tls][k] = run_raw(&s, tls ? cctx : NULL, (enum loop)k, secs, max);
            rate[CURL_CLIENT][tls][k] = run_curl(&s, tls, (enum loop)k, secs, max);
        }
        server_stop(&s);
    }
    printf("%-8s %-32s %12s %12s %8s\n", "client", "loop (one client, 127.0.0.1)", "plain req/s",
           "mTLS req/s", "ratio");
    for (int cl = 0; cl < 2; cl++)
        for (int k = 0; k < 3; k++)
            printf("%-8s %-32s %12.0f %12.0f %8.2f\n", cl == RAW ? "openssl" : "libcurl", names[k],
                   rate[cl][0][k], rate[cl][1][k], rate[cl][1][k] / rate[cl][0][k]);
    printf("openssl client: %ld handshakes resumed a session\n", resumed);
    SSL_CTX_free(cctx);
    curl_global_cleanup();
    return rm_dir() < 0 ? 1 : 0;
}
