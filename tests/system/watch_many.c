/*
 * watch_many.c: a thousand watchers see every event exactly once and in order; a
 * stalled watcher is cut off with a reason and resumes losslessly; watches resume
 * across a restart.
 *
 * Phase 1: 1,000 watch streams (one socket each, multiplexed with epoll) on prefix
 * w/ from revision R0+1; four writer threads put 200 keys concurrently.  Every
 * watcher must receive exactly the 200 events, in revision order, with the right
 * keys and values, and nothing more.
 *
 * Phase 2: one more watcher on s/ with a 4 KiB SO_RCVBUF stops reading, while 16
 * healthy watchers on s/ read; a writer puts 32 KiB values under s/ (and now and
 * then a small one under w/) until /metrics counts a cut-off.  sctld runs with a
 * small --watch-buffer-bytes, so the stalled one must end with a watch_too_slow
 * line carrying resume_revision R; the 16 healthy ones and the 1,000 w/ watchers
 * must still receive everything.  The stalled watcher's events plus a new watch
 * from rev=R must be exactly the s/ events: no gap, no duplicate.
 *
 * Phase 3: watcher 0 stops at revision R; more puts and a delete follow; SIGTERM
 * must end every open stream and exit 0; after a restart a watch from R+1 gets
 * exactly the later events, and one from R0+1 the whole w/ history.
 *
 *   watch_many PATH/TO/sctld
 *   SC_WATCHERS=5000 SC_WATCH_PUTS=2000 watch_many build/src/sctld/sctld   (longer)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sysutil.h"

#define NHEALTHY       16
#define BIG_VALUE      (32 * 1024)
#define WATCH_BUFFER   "262144"
#define WATCH_STALL_MS "1000"
#define WATCH_STALL_MS "1000"
#define BIG_MAX        400

enum { EV_PUT = 1, EV_DELETE = 2 };

struct ev {
    int64_t rev;
    int32_t key; /* n of w/k<n> or s/b<n> */
    int32_t type;
};

struct watcher {
    int id;
    struct sys_conn conn;
    struct sys_stream st;
    char prefix; /* 'w' or 's' */
    bool created, ended, may_fail;
    struct ev *evs;
    size_t n, cap;
    char err_code[64];
    int64_t resume_rev;
};

static struct sys_server server;
static int nwatch = 1000, nputs = 200;
static struct watcher *ws; /* nwatch w/ watchers, then NHEALTHY s/ ones */
static size_t nws;
static int epfd = -1;

/* Expected events, filled by writers under mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct ev *exp_w, *exp_s;
static size_t nexp_w, nexp_s, cap_w, cap_s;

static char big_char(int n)
{
    return (char)('A' + n % 26);
}

static void push_ev(struct ev **a, size_t *n, size_t *cap, struct ev e)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *a = realloc(*a, *cap * sizeof(**a));
    }
    (*a)[(*n)++] = e;
}

static int cmp_ev(const void *a, const void *b)
{
    int64_t x = ((const struct ev *)a)->rev, y = ((const struct ev *)b)->rev;
    return x < y ? -1 : x > y;
}

/* ---- writers ---------------------------------------------------------------------- */

static int64_t put(struct sys_conn *c, char prefix, int n, int type)
{
    char path[64], val[64];
    size_t len;
    char *v = val;
    if (prefix == 'w') {
        snprintf(path, sizeof(path), "/v1/kv/w/k%d", n);
        len = (size_t)snprintf(val, sizeof(val), "v%d", n);
    } else {
        snprintf(path, sizeof(path), "/v1/kv/s/b%d", n);
        v = malloc(BIG_VALUE);
        int h = snprintf(v, BIG_VALUE, "b%d:", n);
        memset(v + h, big_char(n), BIG_VALUE - (size_t)h);
        len = BIG_VALUE;
    }
    struct sys_resp r;
    int e = type == EV_PUT ? sys_http(c, "PUT", path, v, len, &r)
                           : sys_http(c, "DELETE", path, NULL, 0, &r);
    if (v != val)
        free(v);
    if (e < 0)
        sys_fail("%s %s: %s", type == EV_PUT ? "PUT" : "DELETE", path, strerror(-e));
    if (r.status != 200 || r.revision <= 0)
        sys_fail("%s %s -> %d (revision header %" PRId64 ") %s", type == EV_PUT ? "PUT" : "DELETE",
                 path, r.status, r.revision, r.body);
    int64_t rev = r.revision;
    sys_resp_free(&r);
    pthread_mutex_lock(&mu);
    if (prefix == 'w')
        push_ev(&exp_w, &nexp_w, &cap_w, (struct ev){rev, n, type});
    else
        push_ev(&exp_s, &nexp_s, &cap_s, (struct ev){rev, n, type});
    pthread_mutex_unlock(&mu);
    return rev;
}

static void writer_open(struct sys_conn *c)
{
    int e = sys_conn_open(c, server.port, 0);
    if (e < 0)
        sys_fail("writer: connect: %s", strerror(-e));
}

static atomic_int next_key;
static atomic_int writers_left;

static void *burst_writer(void *arg)
{
    struct sys_conn c;
    writer_open(&c);
    for (int n; (n = atomic_fetch_add(&next_key, 1)) < nputs;)
        put(&c, 'w', n, EV_PUT);
    sys_conn_close(&c);
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

static int64_t metric(const char *name)
{
    struct sys_resp r;
    if (sys_http1(server.port, "GET", "/metrics", NULL, 0, &r) < 0)
        return -1;
    int64_t v = -1;
    size_t nl = strlen(name);
    for (char *l = r.body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (!strncmp(l, name, nl) && l[nl] == ' ')
            v = (int64_t)strtod(l + nl + 1, NULL);
    sys_resp_free(&r);
    return v;
}

static int64_t cutoffs_before;
static int nbig_puts;

static void *big_writer(void *arg)
{
    struct sys_conn c;
    writer_open(&c);
    int small = 0;
    for (int b = 0; b < BIG_MAX; b++) {
        put(&c, 's', b, EV_PUT);
        nbig_puts = b + 1;
        sys_sleep_ms(10); /* healthy readers must be able to keep up under ASan */
        if (b % 10 == 9) {
            put(&c, 'w', nputs + small++, EV_PUT);
            if (b >= 40 && metric("sc_watch_cutoffs_total") > cutoffs_before)
                break;
        }
    }
    sys_conn_close(&c);
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

/* ---- watchers ------------------------------------------------------------------ */

/* A thousand watchers receive the same event lines: each distinct line is parsed
 * and checked once with jansson, later copies are compared byte for byte with
 * the cached one (so every watcher is still checked exactly). */
#define LINE_CACHE 4096
static struct cached_line {
    char *line;
    size_t n;
    struct ev e;
} line_cache[LINE_CACHE];

static struct cached_line *cache_slot(const char *line, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)line[i]) * 1099511628211ULL;
    return &line_cache[h % LINE_CACHE];
}

static void accept_event(struct watcher *w, struct ev e)
{
    if (w->err_code[0])
        sys_fail("watcher %d: event after its error line", w->id);
    if (w->n && e.rev <= w->evs[w->n - 1].rev)
        sys_fail("watcher %d: revision %" PRId64 " after %" PRId64 ": out of order or duplicate",
                 w->id, e.rev, w->evs[w->n - 1].rev);
    push_ev(&w->evs, &w->n, &w->cap, e);
}

static int on_line(void *ud, char *line, size_t n)
{
    struct watcher *w = ud;
    struct cached_line *cl = cache_slot(line, n);
    if (cl->line && cl->n == n && !memcmp(cl->line, line, n) && cl->e.key / 1000000 == w->prefix) {
        struct ev e = cl->e;
        e.key %= 1000000;
        accept_event(w, e);
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb(line, n, 0, &je);
    if (!j)
        sys_fail("watcher %d: not JSON: %.200s", w->id, line);
    if (json_is_true(json_object_get(j, "created"))) {
        w->created = true;
        json_decref(j);
        return 0;
    }
    if (json_is_true(json_object_get(j, "progress"))) {
        json_decref(j);
        return 0;
    }
    json_t *err = json_object_get(j, "error");
    if (err) {
        const char *code = json_string_value(json_object_get(err, "code"));
        if (!w->may_fail)
            sys_fail("watcher %d (%c/) got an error line: %s", w->id, w->prefix, line);
        snprintf(w->err_code, sizeof(w->err_code), "%s", code ? code : "?");
        json_t *rr = json_object_get(err, "resume_revision");
        w->resume_rev = json_is_integer(rr) ? json_integer_value(rr) : -1;
        if (!json_string_value(json_object_get(err, "message")))
            sys_fail("watcher %d: error line without a message: %s", w->id, line);
        json_decref(j);
        return 0;
    }
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *kv = json_object_get(j, "kv");
    const char *key = json_string_value(json_object_get(kv, "key"));
    int64_t mod = json_integer_value(json_object_get(kv, "mod_revision"));
    struct ev e = {mod, -1, 0};
    if (type && !strcmp(type, "PUT"))
        e.type = EV_PUT;
    else if (type && !strcmp(type, "DELETE"))
        e.type = EV_DELETE;
    char want_prefix[4] = {w->prefix, '/', w->prefix == 'w' ? 'k' : 'b', 0};
    if (!e.type || !key || strncmp(key, want_prefix, 3) || mod <= 0)
        sys_fail("watcher %d: bad event %.300s", w->id, line);
    e.key = atoi(key + 3);
    if (e.type == EV_PUT) {
        json_t *val = json_object_get(kv, "value");
        const char *v = json_string_value(val);
        bool ok = v != NULL;
        if (ok && w->prefix == 'w') {
            char want[32];
            snprintf(want, sizeof(want), "v%d", e.key);
            ok = !strcmp(v, want);
        } else if (ok) {
            char head[32];
            int h = snprintf(head, sizeof(head), "b%d:", e.key);
            ok = json_string_length(val) == BIG_VALUE && !strncmp(v, head, (size_t)h);
            for (size_t k = (size_t)h; ok && k < BIG_VALUE; k++)
                ok = v[k] == big_char(e.key);
        }
        if (!ok)
            sys_fail("watcher %d: event for %s carries a wrong value", w->id, key);
    }
    accept_event(w, e);
    json_decref(j);
    free(cl->line);
    cl->line = malloc(n);
    memcpy(cl->line, line, n);
    cl->n = n;
    cl->e = e;
    cl->e.key += w->prefix * 1000000; /* a line is valid for one prefix only */
    return 0;
}

static void watcher_open(struct watcher *w, int id, char prefix, int64_t rev, int rcvbuf)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->prefix = prefix;
    int e = sys_conn_open(&w->conn, server.port, rcvbuf);
    if (e < 0)
        sys_fail("watcher %d: connect: %s", id, strerror(-e));
    char path[128];
    snprintf(path, sizeof(path), "/v1/kv?prefix=%c/&watch=1&rev=%" PRId64, prefix, rev);
    if ((e = sys_send_request(&w->conn, "GET", path, NULL, 0)) < 0)
        sys_fail("watcher %d: send: %s", id, strerror(-e));
}

static void watcher_close(struct watcher *w)
{
    if (epfd >= 0 && w->conn.fd >= 0)
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->conn.fd, NULL);
    sys_conn_close(&w->conn);
    sys_stream_done(&w->st);
}

/* Reads what is there; returns false once the stream ended (EOF or last chunk). */
static bool watcher_read(struct watcher *w, bool block)
{
    char buf[65536];
    for (;;) {
        ssize_t k = recv(w->conn.fd, buf, sizeof(buf), block ? 0 : MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return !block; /* with block: the 60 s receive timeout */
        if (k <= 0) {
            w->ended = true;
            return false;
        }
        int r = sys_stream_feed(&w->st, buf, (size_t)k, on_line, w);
        if (r < 0)
            sys_fail("watcher %d: bad stream (HTTP %d) near: %.200s", w->id, w->st.status,
                     w->st.hdr ? w->st.hdr : "");
        if (r == 1) {
            w->ended = true;
            return false;
        }
        if (block)
            return true;
    }
}

/* Runs the epoll loop until done() or the deadline. */
static bool pump(bool (*done)(void), unsigned timeout_ms)
{
    uint64_t deadline = sys_now_ms() + timeout_ms;
    struct epoll_event evs[256];
    while (!done()) {
        if (sys_now_ms() > deadline)
            return false;
        int n = epoll_wait(epfd, evs, 256, 50);
        for (int i = 0; i < n; i++) {
            struct watcher *w = evs[i].data.ptr;
            if (!watcher_read(w, false))
                epoll_ctl(epfd, EPOLL_CTL_DEL, w->conn.fd, NULL);
        }
    }
    return true;
}

static size_t batch_lo, batch_hi;
static bool batch_created(void)
{
    for (size_t i = batch_lo; i < batch_hi; i++)
        if (!ws[i].created)
            return false;
    return true;
}

static void add_watchers(size_t lo, size_t hi, char prefix, int64_t rev)
{
    for (size_t b = lo; b < hi; b += 100) {
        batch_lo = b, batch_hi = hi < b + 100 ? hi : b + 100;
        for (size_t i = batch_lo; i < batch_hi; i++) {
            watcher_open(&ws[i], (int)i, prefix, rev, 0);
            fcntl(ws[i].conn.fd, F_SETFL, O_NONBLOCK);
            struct epoll_event e = {.events = EPOLLIN, .data.ptr = &ws[i]};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, ws[i].conn.fd, &e) < 0)
                sys_fail("epoll_ctl: %m");
        }
        if (!pump(batch_created, 60000))
            sys_fail("watchers %zu..%zu not all created within 60 s", batch_lo, batch_hi);
    }
}

static size_t want_w, want_s; /* events each w/ and s/ watcher must reach */
static bool all_have(void)
{
    if (atomic_load(&writers_left) > 0)
        return false;
    for (size_t i = 0; i < nws; i++) {
        if (ws[i].conn.fd < 0)
            continue;
        if (ws[i].n < (ws[i].prefix == 'w' ? want_w : want_s))
            return false;
    }
    return true;
}
static bool never(void)
{
    return false;
}

static void check_events(const char *who, int id, const struct ev *got, size_t ngot,
                         const struct ev *want, size_t nwant)
{
    if (ngot != nwant)
        sys_fail("%s %d: %zu events, want %zu", who, id, ngot, nwant);
    for (size_t k = 0; k < nwant; k++)
        if (got[k].rev != want[k].rev || got[k].key != want[k].key || got[k].type != want[k].type)
            sys_fail("%s %d: event %zu is (rev %" PRId64 ", key %d, type %d), want (rev %" PRId64
                     ", key %d, type %d)",
                     who, id, k, got[k].rev, got[k].key, got[k].type, want[k].rev, want[k].key,
                     want[k].type);
}

static void check_all(size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        if (ws[i].conn.fd < 0)
            continue;
        if (ws[i].prefix == 'w')
            check_events("watcher", (int)i, ws[i].evs, ws[i].n, exp_w, nexp_w);
        else
            check_events("watcher", (int)i, ws[i].evs, ws[i].n, exp_s, nexp_s);
    }
}

/* A blocking watch that must deliver exactly want[0..nwant) and then nothing. */
static void watch_exactly(const char *who, char prefix, int64_t rev, const struct ev *want,
                          size_t nwant)
{
    struct watcher w;
    watcher_open(&w, -1, prefix, rev, 0);
    uint64_t deadline = sys_now_ms() + 60000;
    while (w.n < nwant && sys_now_ms() < deadline && watcher_read(&w, true))
        ;
    /* Anything extra would show up quickly: give it 300 ms. */
    struct timeval tv = {0, 300000};
    setsockopt(w.conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (!w.ended)
        watcher_read(&w, true);
    check_events(who, 0, w.evs, w.n, want, nwant);
    watcher_close(&w);
    free(w.evs);
}

static int64_t healthz_rev(void)
{
    struct sys_resp r;
    if (sys_http1(server.port, "GET", "/healthz", NULL, 0, &r) < 0 || r.status != 200)
        sys_fail("healthz");
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    int64_t rev = json_integer_value(json_object_get(j, "revision"));
    json_decref(j);
    sys_resp_free(&r);
    if (rev <= 0)
        sys_fail("healthz without a revision");
    return rev;
}

int main(int argc, char **argv)
{
    if (getenv("SC_WATCHERS"))
        nwatch = atoi(getenv("SC_WATCHERS"));
    if (getenv("SC_WATCH_PUTS"))
        nputs = atoi(getenv("SC_WATCH_PUTS"));
    signal(SIGPIPE, SIG_IGN);
    if (sys_raise_nofile(nwatch + NHEALTHY + 256) < 0)
        sys_fail("cannot raise RLIMIT_NOFILE for %d watchers", nwatch);
    if (sys_server_setup(&server, argc > 1 ? argv[1] : getenv("SCTLD"), "watch") < 0)
        return 1;
    server.extra[0] = "--watch-buffer-bytes";
    server.extra[1] = WATCH_BUFFER;
    server.extra[2] = "--watch-stall-ms";
    server.extra[3] = WATCH_STALL_MS;
    if (sys_server_start(&server, 60000) < 0)
        sys_fail("sctld did not start");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    uint64_t t0 = sys_now_ms();

    /* Phase 1: a burst to 1,000 watchers. */
    nws = (size_t)nwatch + NHEALTHY;
    ws = calloc(nws, sizeof(*ws));
    for (size_t i = 0; i < nws; i++)
        ws[i].conn.fd = -1;
    int64_t r0 = healthz_rev();
    add_watchers(0, (size_t)nwatch, 'w', r0 + 1);
    printf("phase 1: %d watchers created in %.1f s\n", nwatch,
           (double)(sys_now_ms() - t0) / 1000.0);
    atomic_store(&writers_left, 4);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, burst_writer, NULL);
    want_w = (size_t)nputs;
    bool ok = pump(all_have, 120000);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (!ok)
        sys_fail("phase 1: not every watcher got %d events within 120 s", nputs);
    pump(never, 200); /* duplicates or strays would arrive now */
    qsort(exp_w, nexp_w, sizeof(*exp_w), cmp_ev);
    check_all(0, (size_t)nwatch);
    printf("phase 1: %d watchers x %d events, exactly once and in order (%.1f s)\n", nwatch, nputs,
           (double)(sys_now_ms() - t0) / 1000.0);
    fflush(stdout);

    /* Phase 2: a stalled watcher among healthy ones. */
    int64_t r1 = healthz_rev();
    cutoffs_before = metric("sc_watch_cutoffs_total");
    struct watcher stalled;
    watcher_open(&stalled, -2, 's', r1 + 1, 4096);
    stalled.may_fail = true;
    while (!stalled.created)
        if (!watcher_read(&stalled, true))
            sys_fail("stalled watcher: stream ended before created");
    add_watchers((size_t)nwatch, nws, 's', r1 + 1);
    atomic_store(&writers_left, 1);
    pthread_create(&th[0], NULL, big_writer, NULL);
    want_s = BIG_MAX + 1; /* until the writer is done; then the real count */
    while (atomic_load(&writers_left) > 0)
        pump(never, 50);
    pthread_join(th[0], NULL);
    want_w = nexp_w;
    want_s = nexp_s;
    if (!pump(all_have, 120000))
        sys_fail("phase 2: healthy watchers did not get every event within 120 s");
    pump(never, 200);
    qsort(exp_w, nexp_w, sizeof(*exp_w), cmp_ev);
    qsort(exp_s, nexp_s, sizeof(*exp_s), cmp_ev);
    check_all(0, nws);
    /* Now read the stalled one to its end. */
    while (watcher_read(&stalled, true))
        ;
    if (strcmp(stalled.err_code, "watch_too_slow") != 0)
        sys_fail("stalled watcher after %d puts of %d bytes: stream ended with %s, want "
                 "watch_too_slow (%zu events read)",
                 nbig_puts, BIG_VALUE, stalled.err_code[0] ? stalled.err_code : "no error line",
                 stalled.n);
    if (stalled.n > nexp_s)
        sys_fail("stalled watcher got more events than were written");
    check_events("stalled watcher (before cut-off)", 0, stalled.evs, stalled.n, exp_s, stalled.n);
    int64_t last = stalled.n ? stalled.evs[stalled.n - 1].rev : r1;
    int64_t first_missing = stalled.n < nexp_s ? exp_s[stalled.n].rev : INT64_MAX;
    if (stalled.resume_rev <= last || stalled.resume_rev > first_missing)
        sys_fail("stalled watcher: resume_revision %" PRId64 " but it saw up to %" PRId64
                 " and missed from %" PRId64 " on",
                 stalled.resume_rev, last, first_missing);
    watch_exactly("resumed stalled watcher", 's', stalled.resume_rev, exp_s + stalled.n,
                  nexp_s - stalled.n);
    printf("phase 2: stalled watcher cut off after %zu of %zu events (%d puts of %d B), "
           "resumed from %" PRId64 " losslessly; %zu healthy watchers got all (%.1f s)\n",
           stalled.n, nexp_s, nbig_puts, BIG_VALUE, stalled.resume_rev, nws - 1,
           (double)(sys_now_ms() - t0) / 1000.0);
    fflush(stdout);
    watcher_close(&stalled);
    free(stalled.evs);

    /* Phase 3: resume across a restart. */
    int64_t seen = ws[0].evs[ws[0].n - 1].rev;
    size_t nseen = nexp_w;
    watcher_close(&ws[0]);
    struct sys_conn c;
    if (sys_conn_open(&c, server.port, 0) < 0)
        sys_fail("connect");
    for (int k = 0; k < 10; k++)
        put(&c, 'w', 100000 + k, EV_PUT);
    put(&c, 'w', 0, EV_DELETE);
    sys_conn_close(&c);
    want_w = nexp_w;
    if (!pump(all_have, 60000))
        sys_fail("phase 3: watchers did not get the last events");
    check_all(1, nws);
    int64_t healthz_after_all = healthz_rev() + 1;
    size_t shut_lines = 0;
    for (size_t i = 1; i < nws; i++)
        ws[i].may_fail = true; /* SIGTERM may end streams with shutting_down */
    int st;
    uint64_t ts = sys_now_ms();
    if (sys_server_stop(&server, SIGTERM, 30000, &st) < 0)
        sys_fail("sctld did not exit within 30 s of SIGTERM with %zu open watches", nws - 1);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        sys_server_dump_log(&server);
        sys_fail("sctld exited with status 0x%x after SIGTERM, want 0", st);
    }
    printf("phase 3: SIGTERM with %zu open watches: exit 0 in %" PRIu64 " ms\n", nws - 1,
           sys_now_ms() - ts);
    for (size_t i = 1; i < nws; i++) {
        /* sctld is gone, so every byte and the FIN are already queued here. */
        if (!ws[i].ended && watcher_read(&ws[i], false))
            sys_fail("watcher %zu still open after sctld exited", i);
        if (ws[i].err_code[0]) {
            int64_t lastrev = ws[i].n ? ws[i].evs[ws[i].n - 1].rev : 0;
            if (strcmp(ws[i].err_code, "shutting_down") != 0 || ws[i].resume_rev <= lastrev ||
                ws[i].resume_rev > healthz_after_all)
                sys_fail("watcher %zu: at SIGTERM got error %s with resume_revision %" PRId64
                         " (last event %" PRId64 ", store at %" PRId64 ")",
                         i, ws[i].err_code, ws[i].resume_rev, lastrev, healthz_after_all);
            shut_lines++;
        }
        watcher_close(&ws[i]);
    }
    printf("phase 3: every stream ended, %zu with a shutting_down line and a valid resume "
           "revision\n",
           shut_lines);
    if (sys_server_start(&server, 60000) < 0)
        sys_fail("sctld did not restart");
    watch_exactly("watcher resumed after restart", 'w', seen + 1, exp_w + nseen, nexp_w - nseen);
    watch_exactly("watcher replaying all history after restart", 'w', r0 + 1, exp_w, nexp_w);
    if (sys_server_stop(&server, SIGTERM, 30000, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        sys_fail("sctld did not exit 0 on SIGTERM (status 0x%x)", st);
    printf("watch_many: ok (%.1f s)\n", (double)(sys_now_ms() - t0) / 1000.0);
    for (size_t i = 0; i < nws; i++)
        free(ws[i].evs);
    free(ws);
    free(exp_w);
    free(exp_s);
    close(epfd);
    return 0;
}
