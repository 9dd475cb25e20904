/*
 * client.c: sctld's API over libcurl (see client.h for the contract).
 *
 * One easy handle per client: libcurl keeps its connection alive between
 * requests, so a CLI verb that issues several requests (apply then watch) or
 * slet's steady stream of status updates pays one TCP handshake.  Errors are
 * decoded here once, so every caller prints the server's own code and field.
 */
#include "client/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "net/tls_curl.h"

#define SC_CLIENT_MAX_SERVERS 7

struct sc_client {
    CURL *curl;
    char *servers[SC_CLIENT_MAX_SERVERS]; /* each without a trailing '/' */
    size_t n, cur;                        /* the one requests go to now */
    long connect_timeout_ms, timeout_ms;
    bool idempotent;
    char *ca, *cert, *key; /* for https:// servers */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool is_https(const char *s)
{
    return strncmp(s, "https://", 8) == 0;
}

/* One http://HOST:PORT or https://HOST:PORT of the list, checked. */
static int check_server(const char *s, size_t len, struct sc_error *e)
{
    size_t sl = len >= 8 && is_https(s) ? 8 : 7;
    if (len < sl || (sl == 7 && strncmp(s, "http://", 7) != 0))
        return sc_error_set(e, -SC_E_INVALID, "server",
                            "server '%.*s' must look like http://HOST:PORT", (int)len, s);
    const char *host = s + sl;
    size_t hl = strcspn(host, "/");
    if (hl > len - sl)
        hl = len - sl;
    const char *colon = memrchr(host, ':', hl);
    if (hl == 0 || !colon || colon[1] < '0' || colon[1] > '9')
        return sc_error_set(e, -SC_E_INVALID, "server",
                            "server '%.*s' must look like http://HOST:PORT", (int)len, s);
    return 0;
}

int sc_client_new(const struct sc_client_opts *o, struct sc_client **out, struct sc_error *e)
{
    const char *s = o->server;
    if (!s || !*s)
        return sc_error_set(e, -SC_E_INVALID, "server",
                            "server '' must look like http://HOST:PORT[,http://HOST:PORT...]");
    size_t n = 0;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        int r = check_server(p, len, e);
        if (r < 0)
            return r;
        if (is_https(p) && (!o->ca || !*o->ca))
            return sc_error_set(e, -SC_E_INVALID, "ca",
                                "server '%.*s' is https: the cluster CA file is needed (ca)",
                                (int)len, p);
        if (is_https(p) && !o->cert != !o->key)
            return sc_error_set(e, -SC_E_INVALID, "cert",
                                "a client certificate needs its key and a key its certificate");
        if (++n > SC_CLIENT_MAX_SERVERS)
            return sc_error_set(e, -SC_E_INVALID, "server", "at most %d servers, got more",
                                SC_CLIENT_MAX_SERVERS);
        p += len + (p[len] == ',');
    }
    pthread_once(&curl_once, curl_init_once);
    struct sc_client *c = xcalloc(1, sizeof(*c));
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        return sc_error_set(e, -ENOMEM, NULL, "curl_easy_init failed");
    }
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        char *one = xcalloc(len + 1, 1);
        memcpy(one, p, len);
        size_t l = strlen(one);
        while (l > 7 && one[l - 1] == '/')
            one[--l] = '\0';
        c->servers[c->n++] = one;
        p += len + (p[len] == ',');
    }
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 3000;
    c->idempotent = o->idempotent;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    c->ca = o->ca ? xstrdup(o->ca) : NULL;
    c->cert = o->cert ? xstrdup(o->cert) : NULL;
    c->key = o->key ? xstrdup(o->key) : NULL;
    *out = c;
    return 0;
}

void sc_client_free(struct sc_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    for (size_t i = 0; i < c->n; i++)
        free(c->servers[i]);
    free(c->ca);
    free(c->cert);
    free(c->key);
    free(c);
}

const char *sc_client_server(const struct sc_client *c)
{
    return c->servers[c->cur];
}

/* The next server of the list takes the requests (a new connection). */
static void next_server(struct sc_client *c)
{
    c->cur = (c->cur + 1) % c->n;
}

/* Try the request on the next server?  Only when it cannot have taken effect:
 * no connection was made, or the server refused it for want of a quorum or
 * leader (503); a GET also after a timeout.  Otherwise it stays where it is. */
static bool try_next(const struct sc_client *c, int rc, const struct sc_reply *r,
                     const char *method)
{
    if (c->n < 2)
        return false;
    if (rc == -ECONNREFUSED || rc == -EHOSTUNREACH)
        return true;
    if (rc == -ETIMEDOUT || rc == -EIO)
        return c->idempotent || !strcmp(method, "GET");
    return rc == 0 && r->status == 503;
}

void sc_reply_free(struct sc_reply *r)
{
    sc_buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

const char *sc_reply_text(struct sc_reply *r)
{
    sc_buf_reserve(&r->body, 1);
    r->body.data[r->body.len] = '\0';
    return (const char *)r->body.data;
}

void sc_client_escape(struct sc_buf *out, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/')) {
            sc_buf_put_u8(out, ch);
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            sc_buf_put(out, enc, 3);
        }
    }
}

/* ---- receiving ------------------------------------------------------------------ */

struct rx {
    struct sc_reply *r;
    sc_client_line_fn fn; /* NULL: collect the whole body */
    void *arg;
    sc_client_bytes_fn bytes; /* raw pieces of a 2xx body instead (fn NULL) */
    CURL *curl;
    struct sc_buf line; /* partial line of a stream */
    int stopped;
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct rx *x = arg;
    size_t len = size * n;
    static const char name[] = "x-sc-revision:";
    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0)
        x->r->revision = strtoull(p + sizeof(name) - 1, NULL, 10);
    return len;
}

static bool is_2xx(CURL *curl)
{
    long st = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &st);
    return st >= 200 && st < 300;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct rx *x = arg;
    size_t len = size * n;
    if (x->bytes && is_2xx(x->curl)) {
        if (x->bytes(x->arg, p, len)) {
            x->stopped = 1;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (!x->fn) {
        sc_buf_put(&x->r->body, p, len);
        return len;
    }
    sc_buf_put(&x->line, p, len);
    size_t start = 0;
    for (size_t i = 0; i < x->line.len; i++) {
        if (x->line.data[i] != '\n')
            continue;
        x->line.data[i] = '\0';
        if (x->fn(x->arg, (const char *)x->line.data + start, i - start)) {
            x->stopped = 1;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        start = i + 1;
    }
    memmove(x->line.data, x->line.data + start, x->line.len - start);
    x->line.len -= start;
    return len;
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

/* Fills code/message/field from {"error":{...}}, or the first line of a text body. */
static void decode_error(struct sc_reply *r)
{
    if (r->status >= 200 && r->status < 300)
        return;
    json_error_t je;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
    json_t *err = root ? json_object_get(root, "error") : NULL;
    if (json_is_object(err)) {
        copy_str(r->code, sizeof(r->code), json_string_value(json_object_get(err, "code")));
        copy_str(r->message, sizeof(r->message),
                 json_string_value(json_object_get(err, "message")));
        copy_str(r->field, sizeof(r->field), json_string_value(json_object_get(err, "field")));
    } else {
        const char *t = sc_reply_text(r);
        size_t l = strcspn(t, "\r\n");
        snprintf(r->message, sizeof(r->message), "%.*s", (int)(l < 400 ? l : 400), t);
        snprintf(r->code, sizeof(r->code), "http_%ld", r->status);
    }
    json_decref(root);
}

static int curl_errno(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    default:
        return -EIO;
    }
}

static int perform(struct sc_client *c, const char *method, const char *path, const void *body,
                   size_t len, struct rx *x, struct sc_error *e)
{
    CURL *h = c->curl;
    struct sc_buf url = {0};
    sc_buf_printf(&url, "%s%s", sc_client_server(c), path);
    sc_buf_put_u8(&url, 0);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, (const char *)url.data);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    if (!x->fn && !x->bytes)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sctl/" SC_VERSION);
    char errbuf[CURL_ERROR_SIZE] = "";
    if (is_https(sc_client_server(c))) {
        struct net_tls_files f = {.ca = c->ca, .cert = c->cert, .key = c->key};
        int tr = net_tls_curl_setup(h, &f, e);
        if (tr < 0) {
            sc_buf_free(&url);
            return tr;
        }
        /* curl's detail ("SSL certificate problem: ...") says why a handshake failed */
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    if (body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (!strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    } else if (!strcmp(method, "DELETE") || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->r->status);
    int rc = 0;
    if (cc != CURLE_OK && !(x->stopped && cc == CURLE_WRITE_ERROR)) {
        /* a server that wants a client certificate just ends the handshake */
        bool hint =
            is_https(sc_client_server(c)) && !c->cert &&
            (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR);
        rc = sc_error_set(e, curl_errno(cc), "server", "%s %s: %s%s", method,
                          (const char *)url.data, errbuf[0] ? errbuf : curl_easy_strerror(cc),
                          hint ? " (no client certificate was given: --cert, --key)" : "");
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL); /* errbuf ends here */
    sc_buf_free(&url);
    return rc;
}

int sc_client_do(struct sc_client *c, const char *method, const char *path, const void *body,
                 size_t len, struct sc_reply *r, struct sc_error *e)
{
    int rc = 0;
    for (size_t tries = 0; tries < c->n; tries++) {
        sc_reply_free(r);
        struct rx x = {.r = r};
        rc = perform(c, method, path, body, len, &x, e);
        if (rc == 0)
            decode_error(r);
        if (!try_next(c, rc, r, method))
            return rc;
        next_server(c);
    }
    return rc;
}

/* Stream state: lines go to the caller only while the answer is 2xx. */
struct stream_arg {
    struct rx x;
    struct sc_client *c;
    sc_client_line_fn user;
    void *user_arg;
};

static int stream_line(void *arg, const char *line, size_t len)
{
    struct stream_arg *s = arg;
    if (!is_2xx(s->c->curl)) { /* keep the error body whole for decode_error */
        sc_buf_put(&s->x.r->body, line, len);
        sc_buf_put_u8(&s->x.r->body, '\n');
        return 0;
    }
    return s->user(s->user_arg, line, len);
}

int sc_client_stream(struct sc_client *c, const char *path, sc_client_line_fn fn, void *arg,
                     struct sc_reply *r, struct sc_error *e)
{
    sc_reply_free(r);
    struct stream_arg s = {.c = c, .user = fn, .user_arg = arg};
    s.x.r = r;
    s.x.fn = stream_line;
    s.x.arg = &s;
    int rc = perform(c, "GET", path, NULL, 0, &s.x, e);
    for (size_t tries = 1; tries < c->n && (rc == -ECONNREFUSED || rc == -EHOSTUNREACH); tries++) {
        next_server(c); /* nothing was streamed: no connection was made */
        rc = perform(c, "GET", path, NULL, 0, &s.x, e);
    }
    if (rc == 0 && s.x.line.len) { /* a last line without '\n' */
        if (r->status >= 200 && r->status < 300 && !s.x.stopped) {
            sc_buf_put_u8(&s.x.line, 0);
            fn(arg, (const char *)s.x.line.data, s.x.line.len - 1);
        } else {
            sc_buf_put(&r->body, s.x.line.data, s.x.line.len);
        }
    }
    sc_buf_free(&s.x.line);
    if (rc == 0)
        decode_error(r);
    return rc;
}

int sc_client_stream_bytes(struct sc_client *c, const char *path, sc_client_bytes_fn fn, void *arg,
                           struct sc_reply *r, struct sc_error *e)
{
    sc_reply_free(r);
    struct rx x = {.r = r, .bytes = fn, .arg = arg, .curl = c->curl};
    int rc = perform(c, "GET", path, NULL, 0, &x, e);
    if (rc == 0)
        decode_error(r);
    return rc;
}
