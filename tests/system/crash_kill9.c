/*
 * crash_kill9.c: acknowledged writes survive SIGKILL, and nothing unacknowledged
 * appears out of order.
 *
 * Eight client threads, each on its own keep-alive HTTP/1.1 connection, write
 * PUT /v1/kv/c<i>/<seq> for seq = 0, 1, 2, ... and after each acknowledged one
 * PUT /v1/kv/last/c<i> = seq.  At a random moment (from a printed seed) the test
 * SIGKILLs sctld, restarts it on the same data dir and checks, for every client:
 *
 *   1. the keys under c<i>/ are exactly c<i>/0 .. c<i>/m (a prefix, no holes), with
 *      acked <= m <= sent: every write that got its 200 is there, and of the
 *      writes in flight only the oldest ones may have survived;
 *   2. every value is the exact bytes written (values carry their own client,
 *      seq and length, so a torn or misplaced value is caught);
 *   3. mod revisions grow with seq, and last/c<i> = L with acked_last <= L <=
 *      sent_last, L <= m and a later mod revision than c<i>/L: the log kept the
 *      order of writes across keys;
 *   4. the store revision is not below any revision acknowledged before.
 *
 * The data dir is kept across rounds, so later rounds recover logs that already
 * went through earlier crashes.  One round writes ~100 KiB values, so the kill
 * lands in the middle of large WAL records and recovery must cut a torn tail.
 * After the last round sctld gets SIGTERM and must exit 0.
 *
 *   crash_kill9 PATH/TO/sctld                  25 rounds (CI)
 *   SC_CRASH_ROUNDS=500 SC_CRASH_SEED=123 crash_kill9 build/src/sctld/sctld
 *
 * A failure prints the seed and the round; rerun with SC_CRASH_SEED to repeat the
 * kill schedule (thread timing still varies).  SC_KEEP=1 keeps the data dir.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "sysutil.h"

#define NCLIENTS   8
#define BIG_VALUE  (100 * 1024)
#define START_MSEC 60000

struct client {
    int idx;
    int port;
    size_t value_size; /* 0: small values */
    /* Verified state after the last restart. */
    int64_t m; /* c<i>/0..m present */
    int64_t l; /* last/c<i> (-1: absent) */
    /* This round (written by the thread, read after join). */
    int64_t acked_key, sent_key, acked_last, sent_last;
    int64_t max_rev;
    long writes;
    char err[512];
};

static struct sys_server server;
static atomic_bool stop_flag;

/* Values are "c<i>-<seq>-<len>:" then one repeated letter, len bytes in all. */
static char fill_char(int i, int64_t seq)
{
    return (char)('a' + (i * 7 + seq) % 26);
}

static char *make_value(int i, int64_t seq, size_t big, size_t *len)
{
    char head[64];
    size_t want = big ? big : 24 + (size_t)(seq % 40);
    int h = snprintf(head, sizeof(head), "c%d-%" PRId64 "-%zu:", i, seq, want);
    if ((size_t)h > want)
        want = (size_t)h;
    char *v = malloc(want + 1);
    memcpy(v, head, (size_t)h);
    memset(v + h, fill_char(i, seq), want - (size_t)h);
    v[want] = '\0';
    *len = want;
    return v;
}

static bool check_value(int i, int64_t seq, const char *v, size_t len)
{
    int ci, off = 0;
    int64_t s;
    size_t want;
    if (sscanf(v, "c%d-%" SCNd64 "-%zu:%n", &ci, &s, &want, &off) != 3 || off == 0)
        return false;
    if (ci != i || s != seq || want != len)
        return false;
    for (size_t k = (size_t)off; k < len; k++)
        if (v[k] != fill_char(i, seq))
            return false;
    return true;
}

/* One PUT: 1 when acknowledged (200 read in full), 0 when sctld went away under
 * it (expected: we kill it), -1 on any other answer (c->err says which). */
static int put_acked(struct client *c, struct sys_conn *conn, const char *path, const char *v,
                     size_t len)
{
    struct sys_resp r;
    if (sys_http(conn, "PUT", path, v, len, &r) < 0)
        return 0;
    if (r.status != 200) {
        snprintf(c->err, sizeof(c->err), "client %d: PUT %s -> %d %s", c->idx, path, r.status,
                 r.body);
        sys_resp_free(&r);
        return -1;
    }
    if (r.revision > c->max_rev)
        c->max_rev = r.revision;
    sys_resp_free(&r);
    c->writes++;
    return 1;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct sys_conn conn;
    if (sys_conn_open(&conn, c->port, 0) < 0) {
        snprintf(c->err, sizeof(c->err), "client %d: connect failed", c->idx);
        return NULL;
    }
    for (int64_t seq = c->m + 1; !atomic_load(&stop_flag); seq++) {
        char path[128], lastv[32];
        size_t len;
        char *v = make_value(c->idx, seq, c->value_size, &len);
        snprintf(path, sizeof(path), "/v1/kv/c%d/%" PRId64, c->idx, seq);
        c->sent_key = seq;
        int r = put_acked(c, &conn, path, v, len);
        free(v);
        if (r <= 0)
            break;
        c->acked_key = seq;

        snprintf(path, sizeof(path), "/v1/kv/last/c%d", c->idx);
        int vl = snprintf(lastv, sizeof(lastv), "%" PRId64, seq);
        c->sent_last = seq;
        if (put_acked(c, &conn, path, lastv, (size_t)vl) <= 0)
            break;
        c->acked_last = seq;
    }
    sys_conn_close(&conn);
    return NULL;
}

static json_t *get_json(const char *path, int *status)
{
    struct sys_resp r;
    int e = sys_http1(server.port, "GET", path, NULL, 0, &r);
    if (e < 0)
        sys_fail("GET %s: %s", path, strerror(-e));
    *status = r.status;
    json_error_t je;
    json_t *j = json_loadb(r.body, r.body_len, 0, &je);
    if (!j)
        sys_fail("GET %s -> %d: not JSON (%s): %.200s", path, r.status, je.text, r.body);
    sys_resp_free(&r);
    return j;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct seen {
    int64_t seq, mod;
};
static int cmp_seen(const void *a, const void *b)
{
    return cmp_i64(&((const struct seen *)a)->seq, &((const struct seen *)b)->seq);
}

/* Checks the store against what the clients know; updates c->m and c->l. */
static void verify(struct client *cl, int round, int64_t min_rev, int64_t *ret_rev)
{
    int status;
    json_t *h = get_json("/healthz", &status);
    int64_t rev = json_integer_value(json_object_get(h, "revision"));
    json_decref(h);
    if (status != 200 || rev < min_rev)
        sys_fail("round %d: after restart revision %" PRId64 " < %" PRId64
                 " acknowledged before the kill (status %d)",
                 round, rev, min_rev, status);
    *ret_rev = rev;

    for (int i = 0; i < NCLIENTS; i++) {
        struct client *c = &cl[i];
        char path[128];
        snprintf(path, sizeof(path), "/v1/kv?prefix=c%d/", i);
        json_t *j = get_json(path, &status);
        json_t *kvs = json_object_get(j, "kvs");
        if (status != 200 || !json_is_array(kvs))
            sys_fail("round %d: GET %s -> %d", round, path, status);
        if (json_is_true(json_object_get(j, "more")))
            sys_fail("round %d: GET %s answered more=true without a limit", round, path);
        size_t n = json_array_size(kvs);
        struct seen *s = calloc(n + 1, sizeof(*s));
        for (size_t k = 0; k < n; k++) {
            json_t *kv = json_array_get(kvs, k);
            const char *key = json_string_value(json_object_get(kv, "key"));
            json_t *val = json_object_get(kv, "value");
            int ci, off = 0;
            if (!key || sscanf(key, "c%d/%" SCNd64 "%n", &ci, &s[k].seq, &off) != 2 || key[off] ||
                ci != i)
                sys_fail("round %d: unexpected key %s under c%d/", round, key ? key : "?", i);
            if (!json_is_string(val) ||
                !check_value(i, s[k].seq, json_string_value(val), json_string_length(val)))
                sys_fail("round %d: key %s has a wrong value (%.60s... %zu bytes)", round, key,
                         json_string_value(val) ? json_string_value(val) : "(not a string)",
                         json_string_length(val));
            s[k].mod = json_integer_value(json_object_get(kv, "mod_revision"));
        }
        qsort(s, n, sizeof(*s), cmp_seen);
        for (size_t k = 0; k < n; k++) {
            if (s[k].seq != (int64_t)k)
                sys_fail("round %d: client %d: keys are not a prefix: position %zu holds "
                         "seq %" PRId64 " (acked %" PRId64 ", sent %" PRId64 ")",
                         round, i, k, s[k].seq, c->acked_key, c->sent_key);
            if (k && s[k].mod <= s[k - 1].mod)
                sys_fail("round %d: client %d: c%d/%zu has mod_revision %" PRId64 " <= %" PRId64
                         " of the seq before it",
                         round, i, i, k, s[k].mod, s[k - 1].mod);
        }
        int64_t m = (int64_t)n - 1;
        if (m < c->acked_key)
            sys_fail("round %d: client %d LOST acknowledged writes: present up to %" PRId64
                     ", acknowledged up to %" PRId64,
                     round, i, m, c->acked_key);
        if (m > c->sent_key)
            sys_fail("round %d: client %d: present up to %" PRId64 " but only sent up to %" PRId64,
                     round, i, m, c->sent_key);

        snprintf(path, sizeof(path), "/v1/kv/last/c%d", i);
        json_t *lj = get_json(path, &status);
        int64_t l = -1, lmod = 0;
        if (status == 200) {
            json_t *kv = json_object_get(lj, "kv");
            const char *v = json_string_value(json_object_get(kv, "value"));
            l = v ? strtoll(v, NULL, 10) : -2;
            lmod = json_integer_value(json_object_get(kv, "mod_revision"));
        } else if (status != 404)
            sys_fail("round %d: GET %s -> %d", round, path, status);
        if (l < c->acked_last || l > c->sent_last || l > m)
            sys_fail("round %d: client %d: last=%" PRId64 " but acked_last %" PRId64
                     ", sent_last %" PRId64 ", keys present up to %" PRId64,
                     round, i, l, c->acked_last, c->sent_last, m);
        if (l >= 0 && lmod <= s[l].mod)
            sys_fail("round %d: client %d: last/c%d=%" PRId64 " at revision %" PRId64
                     " is not after c%d/%" PRId64 " at %" PRId64,
                     round, i, i, l, lmod, i, l, s[l].mod);
        json_decref(lj);
        json_decref(j);
        free(s);
        c->m = m;
        c->l = l;
    }
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: the kill schedule comes only from the seed */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    int rounds = getenv("SC_CRASH_ROUNDS") ? atoi(getenv("SC_CRASH_ROUNDS")) : 25;
    uint64_t seed = getenv("SC_CRASH_SEED") ? strtoull(getenv("SC_CRASH_SEED"), NULL, 0)
                                            : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16;
    printf("crash_kill9: seed %" PRIu64 ", %d rounds (SC_CRASH_SEED=%" PRIu64
           " to repeat the schedule)\n",
           seed, rounds, seed);
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    uint64_t rng = seed;

    if (sys_server_setup(&server, argc > 1 ? argv[1] : getenv("SCTLD"), "crash") < 0)
        return 1;
    /* 1 MiB segments: the log rolls over many times, so kills also land around
     * segment creation, and recovery does not scan a 64 MiB preallocated file. */
    server.extra[0] = "--wal-segment-bytes";
    server.extra[1] = "1048576";

    struct client cl[NCLIENTS];
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < NCLIENTS; i++)
        cl[i].idx = i, cl[i].m = -1, cl[i].l = -1;

    int64_t max_acked_rev = 0, rev_after = 0;
    long total_writes = 0;
    uint64_t t0 = sys_now_ms();
    int big_round = rounds / 2;
    for (int round = 0; round <= rounds; round++) {
        uint64_t t_verify = 0;
        uint64_t t_start = sys_now_ms();
        if (sys_server_start(&server, START_MSEC) < 0)
            sys_fail("round %d: sctld did not start (seed %" PRIu64 ")", round, seed);
        if (round > 0) {
            t_verify = sys_now_ms();
            verify(cl, round, max_acked_rev, &rev_after);
            t_verify = sys_now_ms() - t_verify;
            if (rev_after < max_acked_rev)
                sys_fail("round %d: revision went backwards", round);
        }
        if (round == rounds)
            break;

        bool big = round == big_round;
        /* Small rounds: kill after 5..300 ms of load; the big round: 30..600 ms. */
        unsigned delay =
            big ? 30 + (unsigned)(rng_next(&rng) % 570) : 5 + (unsigned)(rng_next(&rng) % 295);
        atomic_store(&stop_flag, false);
        pthread_t th[NCLIENTS];
        for (int i = 0; i < NCLIENTS; i++) {
            struct client *c = &cl[i];
            c->port = server.port;
            c->value_size = big ? BIG_VALUE : 0;
            c->acked_key = c->sent_key = c->m;
            c->acked_last = c->sent_last = c->l;
            c->writes = 0;
            c->err[0] = '\0';
            if (pthread_create(&th[i], NULL, client_main, c) != 0)
                sys_fail("pthread_create");
        }
        sys_sleep_ms(delay);
        int st;
        pid_t victim = server.pid;
        if (kill(victim, 0) < 0 || waitpid(victim, &st, WNOHANG) == victim)
            sys_fail("round %d: sctld died by itself before the kill", round);
        if (sys_server_stop(&server, SIGKILL, 10000, &st) < 0 || !WIFSIGNALED(st) ||
            WTERMSIG(st) != SIGKILL)
            sys_fail("round %d: sctld (pid %d) did not die of our SIGKILL (status 0x%x)", round,
                     (int)victim, st);
        atomic_store(&stop_flag, true);
        long writes = 0;
        for (int i = 0; i < NCLIENTS; i++) {
            pthread_join(th[i], NULL);
            if (cl[i].err[0]) {
                sys_server_dump_log(&server);
                sys_fail("round %d: %s", round, cl[i].err);
            }
            if (cl[i].max_rev > max_acked_rev)
                max_acked_rev = cl[i].max_rev;
            writes += cl[i].writes;
        }
        total_writes += writes;
        printf("round %d: %s values, killed after %u ms, %ld acknowledged writes (round %" PRIu64
               " ms, verify %" PRIu64 " ms)\n",
               round, big ? "100 KiB" : "small", delay, writes, sys_now_ms() - t_start, t_verify);
        fflush(stdout);
    }

    int st;
    if (sys_server_stop(&server, SIGTERM, 20000, &st) < 0)
        sys_fail("sctld did not exit within 20 s of SIGTERM");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        sys_server_dump_log(&server);
        sys_fail("sctld exited with status 0x%x after SIGTERM, want exit 0", st);
    }
    printf("crash_kill9: ok: %d rounds, %ld acknowledged writes, final revision %" PRId64
           ", %.1f s\n",
           rounds, total_writes, rev_after, (double)(sys_now_ms() - t0) / 1000.0);
    return 0;
}
