/*
 * kvbench.c: the C half of bench/kv_vs_etcd.sh, which compares sctld with etcd.
 *
 * wrk measures request/response throughput and latency, but it cannot hold 1,000
 * long-lived watch streams, time the moment an event reaches each of them, or stop
 * after exactly N distinct writes.  This program does those three jobs with plain
 * non-blocking sockets and one epoll loop.  A put is timestamped just before it is
 * sent; an event's arrival is the kernel's receive timestamp of the watcher's socket
 * (SO_TIMESTAMPNS), so the time this one-threaded client needs to get round to 1,000
 * sockets is not charged to the server.  The time the client read it is reported too
 * (`user_*`).  Both are CLOCK_REALTIME, the clock of SO_TIMESTAMPNS:
 *
 *   kvbench port N                      print N free loopback TCP ports
 *   kvbench load  SYS HOST:PORT COUNT CONNS
 *                                       put COUNT distinct keys r%015d (16 B keys,
 *                                       256 B values) over CONNS keep-alive connections
 *   kvbench watch SYS HOST:PORT WATCHERS PUTS INTERVAL_MS
 *                                       open WATCHERS watch streams on prefix "w", then
 *                                       put keys w%015d one at a time (INTERVAL_MS apart)
 *                                       and time put-sent -> event-arrived at every watcher
 *
 * SYS is `sctld` (PUT /v1/kv/KEY with the raw value; GET /v1/kv?prefix=w&watch=1, an
 * NDJSON chunked stream, docs/api.md) or `etcd` (the v3 gRPC gateway: POST /v3/kv/put
 * and POST /v3/watch with base64 keys and values, a chunked stream of JSON lines).
 * Each mode ends with one `RESULT key=value ...` line that the driver parses; any
 * failed request, lost, duplicated or out-of-order event makes the exit status 1.
 *
 * This is a benchmark program, never a test: meson builds it, `meson test` does not
 * run it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEY_BYTES   16
#define VALUE_BYTES 256
#define READ_CHUNK  65536

enum sys { SYS_SCTLD, SYS_ETCD };
enum role { ROLE_WATCH, ROLE_WRITER, ROLE_LOADER };
enum hstate { H_HEAD, H_BODY_LEN, H_CHUNK_SIZE, H_CHUNK_DATA, H_CHUNK_CRLF, H_TRAILER };

/* A byte queue: live bytes are p[off .. off+len). */
struct bq {
    char *p;
    size_t off, len, cap;
};

struct conn {
    int fd;
    enum role role;
    int idx;
    struct bq in;   /* raw bytes from the socket */
    struct bq body; /* decoded body of the response being read */
    enum hstate st;
    int status;
    size_t need; /* bytes left in the body (H_BODY_LEN) or chunk (H_CHUNK_DATA) */
    bool closed;
    /* watcher */
    bool created;
    long next_seq;
    /* loader */
    bool busy;
};

struct bench {
    enum sys sys;
    struct sockaddr_in addr;
    char host[64];
    int ep;
    int64_t now;      /* usec, CLOCK_REALTIME: kernel arrival of the bytes just read */
    int64_t now_user; /* usec, CLOCK_REALTIME: when this process read them */
    char value[VALUE_BYTES + 1];
    char value_b64[((VALUE_BYTES + 2) / 3) * 4 + 1];
    int failures; /* failed requests, closed streams, bad events */
    /* watch */
    struct conn *watchers;
    int nwatchers, created;
    long nputs;
    int64_t *put_sent;     /* per put sequence number */
    double *lat_usec;      /* every delivery: kernel arrival - put sent */
    double *lat_user_usec; /* every delivery: read by this process - put sent */
    long deliveries;       /* == number of samples in lat_usec */
    long order_errors;     /* a watcher saw a sequence number other than the next */
    struct conn writer;
    /* load */
    struct conn *loaders;
    long load_next, load_done, load_count;
};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static int64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void bq_append(struct bq *b, const void *d, size_t n)
{
    if (b->off + b->len + n > b->cap) {
        if (b->off) {
            memmove(b->p, b->p + b->off, b->len);
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + n)
                cap *= 2;
            b->p = realloc(b->p, cap);
            if (!b->p)
                die("out of memory");
            b->cap = cap;
        }
    }
    memcpy(b->p + b->off + b->len, d, n);
    b->len += n;
}

static void bq_consume(struct bq *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

static char *bq_data(struct bq *b)
{
    return b->p + b->off;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(const unsigned char *s, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = 0;
}

/* Decodes at most cap bytes; returns the length, or -1 on a bad character. */
static int b64_decode(const char *s, size_t n, char *out, size_t cap)
{
    uint32_t v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *c = strchr(b64_alphabet, s[i]);
        if (!c || !s[i])
            return -1;
        v = v << 6 | (uint32_t)(c - b64_alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    return (int)o;
}

/* ---- sockets ---------------------------------------------------------------- */

static void parse_addr(struct bench *b, const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof b->host)
        die("expected HOST:PORT, got \"%s\"", hostport);
    memcpy(b->host, hostport, (size_t)(colon - hostport));
    b->host[colon - hostport] = 0;
    memset(&b->addr, 0, sizeof b->addr);
    b->addr.sin_family = AF_INET;
    b->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, b->host, &b->addr.sin_addr) != 1)
        die("expected an IPv4 address, got \"%s\"", b->host);
}

static void conn_open(struct bench *b, struct conn *c, enum role role, int idx)
{
    memset(c, 0, sizeof *c);
    c->role = role;
    c->idx = idx;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (role == ROLE_WATCH && setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
        die("SO_TIMESTAMPNS: %s", strerror(errno));
    /* A blocking connect: loopback answers at once, and callers open in batches
     * below the server's listen backlog. */
    if (connect(c->fd, (struct sockaddr *)&b->addr, sizeof b->addr) < 0)
        die("connect %s:%d: %s", b->host, ntohs(b->addr.sin_port), strerror(errno));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Requests are small (< 1 KiB) and sent with at most one outstanding per
 * connection, so a full send buffer means a stuck server: wait for it briefly. */
static void send_all(struct conn *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
            if (poll(&pf, 1, 5000) <= 0)
                die("send: server does not read");
            continue;
        }
        if (w < 0)
            die("send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* A 16-byte key: one tag letter and 15 digits (i < 10^15). */
static void make_key(char key[32], char tag, long i)
{
    snprintf(key, 32, "%c%015lu", tag, (unsigned long)i % 1000000000000000UL);
}

static void send_put(struct bench *b, struct conn *c, const char *key)
{
    char req[2048];
    int n;
    if (b->sys == SYS_SCTLD) {
        n = snprintf(req, sizeof req,
                     "PUT /v1/kv/%s HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s",
                     key, b->host, VALUE_BYTES, b->value);
    } else {
        char key64[32], body[1024];
        b64_encode((const unsigned char *)key, KEY_BYTES, key64);
        int bn =
            snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", key64, b->value_b64);
        n = snprintf(req, sizeof req,
                     "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     b->host, bn, body);
    }
    send_all(c, req, (size_t)n);
}

static void send_watch(struct bench *b, struct conn *c)
{
    char req[1024];
    int n;
    if (b->sys == SYS_SCTLD) {
        n = snprintf(req, sizeof req, "GET /v1/kv?prefix=w&watch=1 HTTP/1.1\r\nHost: %s\r\n\r\n",
                     b->host);
    } else {
        /* prefix "w": key "w" (dw==), range_end "x" (eA==) */
        const char *body = "{\"create_request\":{\"key\":\"dw==\",\"range_end\":\"eA==\"}}";
        n = snprintf(req, sizeof req,
                     "POST /v3/watch HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     b->host, strlen(body), body);
    }
    send_all(c, req, (size_t)n);
}

/* ---- HTTP responses ---------------------------------------------------------- */

static void on_response(struct bench *b, struct conn *c);
static void on_line(struct bench *b, struct conn *c, char *line, size_t n);

static const char *memfind(const char *h, size_t hn, const char *needle)
{
    return memmem(h, hn, needle, strlen(needle));
}

/* Case-insensitive header lookup in the head (status line + headers). */
static const char *header_value(const char *head, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p && p < head + n;) {
        const char *eol = memfind(p, (size_t)(head + n - p), "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

static void stream_lines(struct bench *b, struct conn *c)
{
    char *nl;
    while ((nl = memchr(bq_data(&c->body), '\n', c->body.len))) {
        size_t n = (size_t)(nl - bq_data(&c->body));
        *nl = 0;
        on_line(b, c, bq_data(&c->body), n);
        bq_consume(&c->body, n + 1);
    }
}

/* Parses as much of c->in as is complete; calls on_response per full response and
 * on_line per newline-terminated line of a watch stream. */
static void conn_parse(struct bench *b, struct conn *c)
{
    for (;;) {
        char *d = bq_data(&c->in);
        switch (c->st) {
        case H_HEAD: {
            const char *end = memfind(d, c->in.len, "\r\n\r\n");
            if (!end) {
                if (c->in.len > 65536)
                    die("response head too large");
                return;
            }
            size_t hn = (size_t)(end - d) + 4;
            if (hn < 12 || strncmp(d, "HTTP/1.", 7))
                die("not an HTTP response: %.40s", d);
            c->status = atoi(d + 9);
            const char *te = header_value(d, hn, "Transfer-Encoding");
            const char *cl = header_value(d, hn, "Content-Length");
            c->body.off = c->body.len = 0;
            if (te && strncasecmp(te, "chunked", 7) == 0) {
                c->st = H_CHUNK_SIZE;
            } else {
                c->need = cl ? strtoul(cl, NULL, 10) : 0;
                c->st = H_BODY_LEN;
            }
            bq_consume(&c->in, hn);
            break;
        }
        case H_BODY_LEN: {
            size_t take = c->need < c->in.len ? c->need : c->in.len;
            bq_append(&c->body, d, take);
            bq_consume(&c->in, take);
            c->need -= take;
            if (c->need)
                return;
            c->st = H_HEAD;
            on_response(b, c);
            break;
        }
        case H_CHUNK_SIZE: {
            const char *eol = memfind(d, c->in.len, "\r\n");
            if (!eol)
                return;
            c->need = strtoul(d, NULL, 16);
            bq_consume(&c->in, (size_t)(eol - d) + 2);
            c->st = c->need ? H_CHUNK_DATA : H_TRAILER;
            break;
        }
        case H_CHUNK_DATA: {
            if (!c->in.len)
                return;
            size_t take = c->need < c->in.len ? c->need : c->in.len;
            bq_append(&c->body, d, take);
            bq_consume(&c->in, take);
            c->need -= take;
            if (c->role == ROLE_WATCH)
                stream_lines(b, c);
            if (c->need)
                return;
            c->st = H_CHUNK_CRLF;
            break;
        }
        case H_CHUNK_CRLF:
            if (c->in.len < 2)
                return;
            bq_consume(&c->in, 2);
            c->st = H_CHUNK_SIZE;
            break;
        case H_TRAILER: {
            const char *eol = memfind(d, c->in.len, "\r\n");
            if (!eol)
                return;
            bool last = eol == d;
            bq_consume(&c->in, (size_t)(eol - d) + 2);
            if (last) {
                c->st = H_HEAD;
                on_response(b, c);
            }
            break;
        }
        }
    }
}

static void conn_read(struct bench *b, struct conn *c)
{
    char buf[READ_CHUNK];
    for (;;) {
        union {
            char buf[CMSG_SPACE(sizeof(struct timespec))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (c->role == ROLE_WATCH) {
            m.msg_control = ctl.buf;
            m.msg_controllen = sizeof ctl.buf;
        }
        ssize_t r = recvmsg(c->fd, &m, 0);
        if (r < 0 && errno == EAGAIN)
            return;
        b->now = b->now_user = now_usec();
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                b->now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
            }
        }
        if (r <= 0) {
            if (c->role != ROLE_WATCH)
                die("client %d: connection closed by the server", c->idx);
            if (!c->closed) {
                fprintf(stderr, "kvbench: watcher %d: connection closed by the server\n", c->idx);
                b->failures++;
            }
            c->closed = true;
            epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL);
            return;
        }
        bq_append(&c->in, buf, (size_t)r);
        conn_parse(b, c);
    }
}

/* Runs the loop until done(b) or the deadline (usec); returns done(b). */
static bool pump(struct bench *b, bool (*done)(struct bench *), int64_t deadline)
{
    struct epoll_event evs[256];
    while (!(done && done(b))) {
        int64_t left = deadline - now_usec();
        if (left <= 0)
            break;
        int n = epoll_wait(b->ep, evs, 256, (int)((left + 999) / 1000));
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            conn_read(b, evs[i].data.ptr);
    }
    return done && done(b);
}

/* ---- watch mode -------------------------------------------------------------- */

/* Finds `"name"` followed by optional blanks and a colon; returns what follows. */
static char *json_after(char *p, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", name);
    while ((p = strstr(p, pat))) {
        p += strlen(pat);
        while (*p == ' ')
            p++;
        if (*p == ':') {
            p++;
            while (*p == ' ')
                p++;
            return p;
        }
    }
    return NULL;
}

static void watch_event(struct bench *b, struct conn *c, const char *key, int klen)
{
    if (klen != KEY_BYTES || key[0] != 'w') {
        fprintf(stderr, "kvbench: watcher %d: unexpected key \"%.*s\"\n", c->idx, klen, key);
        b->failures++;
        return;
    }
    long seq = strtol(key + 1, NULL, 10);
    if (seq < 0 || seq >= b->nputs) {
        b->failures++;
        return;
    }
    if (seq != c->next_seq) {
        if (b->order_errors < 5)
            fprintf(stderr, "kvbench: watcher %d: got event %ld, expected %ld\n", c->idx, seq,
                    c->next_seq);
        b->order_errors++;
    }
    c->next_seq = seq + 1;
    if (b->deliveries < (long)b->nwatchers * b->nputs) {
        b->lat_usec[b->deliveries] = (double)(b->now - b->put_sent[seq]);
        b->lat_user_usec[b->deliveries++] = (double)(b->now_user - b->put_sent[seq]);
    }
}

static void on_line(struct bench *b, struct conn *c, char *line, size_t n)
{
    if (n == 0)
        return;
    char *v;
    if (!c->created) {
        if ((v = json_after(line, "created")) && strncmp(v, "true", 4) == 0) {
            c->created = true;
            b->created++;
            return;
        }
    }
    if (strstr(line, "\"error\"") || strstr(line, "\"canceled\":true")) {
        fprintf(stderr, "kvbench: watcher %d: %s\n", c->idx, line);
        b->failures++;
        return;
    }
    /* sctld: one event per line, {"type":"PUT","kv":{"key":"w...",...}}.  etcd: one
     * message per line, {"result":{"header":{...},"events":[{"kv":{"key":"<b64>",...}},
     * ...]}}, possibly several events; the header has no "key". */
    for (char *p = line; (p = json_after(p, "key"));) {
        if (*p != '"')
            continue;
        char *s = ++p, *e = strchr(s, '"');
        if (!e)
            break;
        p = e + 1;
        if (b->sys == SYS_SCTLD) {
            watch_event(b, c, s, (int)(e - s));
        } else {
            char key[64];
            int kn = b64_decode(s, (size_t)(e - s), key, sizeof key);
            watch_event(b, c, key, kn);
        }
    }
}

static void on_response(struct bench *b, struct conn *c)
{
    if (c->status < 200 || c->status > 299) {
        fprintf(stderr, "kvbench: HTTP %d: %.*s\n", c->status, (int)c->body.len, bq_data(&c->body));
        b->failures++;
    }
    if (c->role == ROLE_WATCH) {
        /* a watch stream never ends on its own */
        fprintf(stderr, "kvbench: watcher %d: stream ended\n", c->idx);
        b->failures++;
        c->closed = true;
        return;
    }
    c->busy = false;
    if (c->role == ROLE_LOADER) {
        b->load_done++;
        if (b->load_next < b->load_count) {
            char key[32];
            make_key(key, 'r', b->load_next++);
            c->busy = true;
            send_put(b, c, key);
        }
    }
}

static bool all_created(struct bench *b)
{
    return b->created == b->nwatchers;
}
static bool writer_idle(struct bench *b)
{
    return !b->writer.busy;
}
static bool all_delivered(struct bench *b)
{
    return b->deliveries >= (long)b->nwatchers * b->nputs;
}
static bool all_loaded(struct bench *b)
{
    return b->load_done >= b->load_count;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return a < c ? -1 : a > c;
}

static double pct(const double *v, long n, double q)
{
    if (n == 0)
        return 0;
    long i = (long)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static int run_watch(struct bench *b, int nwatchers, long nputs, int interval_ms)
{
    b->nwatchers = nwatchers;
    b->nputs = nputs;
    b->watchers = calloc((size_t)nwatchers, sizeof *b->watchers);
    b->put_sent = calloc((size_t)nputs, sizeof *b->put_sent);
    b->lat_usec = calloc((size_t)nwatchers * (size_t)nputs, sizeof *b->lat_usec);
    b->lat_user_usec = calloc((size_t)nwatchers * (size_t)nputs, sizeof *b->lat_user_usec);
    if (!b->watchers || !b->put_sent || !b->lat_usec || !b->lat_user_usec)
        die("out of memory");
    int64_t t_open = now_usec();
    /* batches of 50 stay under the listen backlog (128 for libevent's evhttp) */
    for (int i = 0; i < nwatchers; i += 50) {
        int end = i + 50 < nwatchers ? i + 50 : nwatchers;
        for (int j = i; j < end; j++) {
            conn_open(b, &b->watchers[j], ROLE_WATCH, j);
            send_watch(b, &b->watchers[j]);
        }
        b->nwatchers = end; /* all_created() waits for this batch */
        if (!pump(b, all_created, now_usec() + 10000000))
            die("only %d of %d watches created after 10 s", b->created, end);
    }
    double open_ms = (double)(now_usec() - t_open) / 1000;
    conn_open(b, &b->writer, ROLE_WRITER, 0);
    pump(b, NULL, now_usec() + 200000); /* let the streams settle */

    double *ack = calloc((size_t)nputs, sizeof *ack);
    for (long i = 0; i < nputs; i++) {
        char key[32];
        make_key(key, 'w', i);
        b->writer.busy = true;
        b->put_sent[i] = now_usec();
        send_put(b, &b->writer, key);
        if (!pump(b, writer_idle, now_usec() + 10000000))
            die("put %ld not acknowledged after 10 s", i);
        ack[i] = (double)(b->now - b->put_sent[i]);
        pump(b, NULL, now_usec() + interval_ms * 1000);
    }
    bool complete = pump(b, all_delivered, now_usec() + 10000000);
    long expected = (long)nwatchers * nputs;
    long n = b->deliveries;
    qsort(b->lat_usec, (size_t)n, sizeof *b->lat_usec, cmp_double);
    qsort(b->lat_user_usec, (size_t)n, sizeof *b->lat_user_usec, cmp_double);
    qsort(ack, (size_t)nputs, sizeof *ack, cmp_double);
    printf("RESULT watchers=%d puts=%ld deliveries=%ld expected=%ld order_errors=%ld "
           "failures=%d open_ms=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "user_p50_ms=%.3f user_p99_ms=%.3f put_ack_p50_ms=%.3f put_ack_p99_ms=%.3f\n",
           nwatchers, nputs, n, expected, b->order_errors, b->failures, open_ms,
           pct(b->lat_usec, n, 0.50) / 1000, pct(b->lat_usec, n, 0.90) / 1000,
           pct(b->lat_usec, n, 0.99) / 1000, n ? b->lat_usec[n - 1] / 1000 : 0,
           pct(b->lat_user_usec, n, 0.50) / 1000, pct(b->lat_user_usec, n, 0.99) / 1000,
           pct(ack, nputs, 0.5) / 1000, pct(ack, nputs, 0.99) / 1000);
    free(ack);
    return complete && !b->order_errors && !b->failures ? 0 : 1;
}

/* ---- load mode --------------------------------------------------------------- */

static int run_load(struct bench *b, long count, int nconns)
{
    b->load_count = count;
    b->loaders = calloc((size_t)nconns, sizeof *b->loaders);
    if (!b->loaders)
        die("out of memory");
    int64_t t0 = now_usec();
    for (int i = 0; i < nconns; i++) {
        conn_open(b, &b->loaders[i], ROLE_LOADER, i);
        if (b->load_next < count) {
            char key[32];
            make_key(key, 'r', b->load_next++);
            b->loaders[i].busy = true;
            send_put(b, &b->loaders[i], key);
        }
    }
    bool done = pump(b, all_loaded, now_usec() + 300000000);
    double secs = (double)(now_usec() - t0) / 1e6;
    printf("RESULT keys=%ld secs=%.2f puts_per_sec=%.0f failures=%d\n", b->load_done, secs,
           (double)b->load_done / secs, b->failures);
    return done && !b->failures ? 0 : 1;
}

/* ---- port mode --------------------------------------------------------------- */

static int run_port(int n)
{
    int fds[16];
    if (n < 1 || n > 16)
        die("port: 1..16 ports");
    for (int i = 0; i < n; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &al) < 0)
            die("port: %s", strerror(errno));
        printf("%s%d", i ? " " : "", ntohs(a.sin_port));
    }
    printf("\n");
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: kvbench port N\n"
                    "       kvbench load  sctld|etcd HOST:PORT COUNT CONNS\n"
                    "       kvbench watch sctld|etcd HOST:PORT WATCHERS PUTS INTERVAL_MS\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "port") == 0)
        return run_port(atoi(argv[2]));
    if (argc < 4)
        usage();
    struct bench b = {0};
    if (strcmp(argv[2], "sctld") == 0)
        b.sys = SYS_SCTLD;
    else if (strcmp(argv[2], "etcd") == 0)
        b.sys = SYS_ETCD;
    else
        usage();
    parse_addr(&b, argv[3]);
    memset(b.value, 'v', VALUE_BYTES);
    b64_encode((const unsigned char *)b.value, VALUE_BYTES, b.value_b64);
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    if (b.ep < 0)
        die("epoll_create1: %s", strerror(errno));
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "load") == 0 && argc == 6)
        return run_load(&b, atol(argv[4]), atoi(argv[5]));
    if (strcmp(argv[1], "watch") == 0 && argc == 7)
        return run_watch(&b, atoi(argv[4]), atol(argv[5]), atoi(argv[6]));
    usage();
}
