/*
 * test_store.c: cubestore's MVCC semantics.
 *
 * Golden scripts (tests/golden/store/NAME.txt) drive the store through a tiny
 * command language and compare every answer; SC_REWRITE=1 re-records them.  A
 * model-based test then runs thousands of random operations against both the
 * store and a naive reference (a full copy of the key space per revision) and
 * compares every read, at every revision still held, plus a snapshot round trip.
 *
 * Script commands (each checks every invariant afterwards):
 *   put KEY VALUE [lease=ID] [prev]          del KEY [prefix] [prev]
 *   get KEY [prefix] [rev=N] [limit=N] [count] [keys]
 *   txn  + lines `cmp version|create|mod|lease|value(KEY) =|!=|<|> X`,
 *          `then OP...`, `else OP...` (OP is put/del/get as above)
 *   grant ID TTL [at=SEC]    keepalive ID at=SEC    revoke ID    expire at=SEC
 *   compact REV              watch NAME KEY [prefix] [rev=N] [prev]
 *   events NAME              unwatch NAME           reload (snapshot round trip)
 */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "base/util.h"
#include "golden.h"
#include "store/store.h"

struct env {
    struct store *s;
    struct store_limits lim;
    struct {
        char name[32];
        struct store_watch *w;
    } watches[16];
};

static void print_kv(struct sc_buf *out, const char *indent, const struct store_kv *kv)
{
    sc_buf_printf(out, "%s%.*s", indent, (int)kv->key_len, (const char *)kv->key);
    if (kv->value)
        sc_buf_printf(out, "=%.*s", (int)kv->value_len, (const char *)kv->value);
    sc_buf_printf(out, " create=%lld mod=%lld ver=%lld", (long long)kv->create_rev,
                  (long long)kv->mod_rev, (long long)kv->version);
    if (kv->lease)
        sc_buf_printf(out, " lease=%lld", (long long)kv->lease);
    sc_buf_printf(out, "\n");
}

static void print_op_result(struct sc_buf *out, const struct store_op_result *r)
{
    switch (r->type) {
    case STORE_OP_GET:
        for (size_t i = 0; i < r->nkvs; i++)
            print_kv(out, "  ", &r->kvs[i]);
        sc_buf_printf(out, "  count=%lld%s\n", (long long)r->count, r->more ? " more" : "");
        break;
    case STORE_OP_PUT:
        for (size_t i = 0; i < r->nkvs; i++)
            print_kv(out, "  prev ", &r->kvs[i]);
        break;
    case STORE_OP_DELETE:
        sc_buf_printf(out, "  deleted=%lld\n", (long long)r->count);
        for (size_t i = 0; i < r->nkvs; i++)
            print_kv(out, "  prev ", &r->kvs[i]);
        break;
    }
}

static void print_err(struct sc_buf *out, int r, const struct sc_error *e)
{
    sc_buf_printf(out, "error %s: %s\n", sc_err_name(r), e->msg[0] ? e->msg : sc_err_message(r));
}

static int64_t arg_num(char **tok, int n, const char *name, int64_t def)
{
    size_t l = strlen(name);
    for (int i = 0; i < n; i++)
        if (strncmp(tok[i], name, l) == 0 && tok[i][l] == '=')
            return strtoll(tok[i] + l + 1, NULL, 10);
    return def;
}

static bool arg_flag(char **tok, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(tok[i], name) == 0)
            return true;
    return false;
}

static int split(char *line, char **tok, int max)
{
    int n = 0;
    for (char *p = strtok(line, " \t"); p && n < max; p = strtok(NULL, " \t"))
        tok[n++] = p;
    return n;
}

/* Parses `put|del|get ...` tokens into op; returns 0 or -1. */
static int parse_op(char **tok, int n, struct store_op *op)
{
    *op = (struct store_op){0};
    if (n < 2)
        return -1;
    op->key = (const uint8_t *)tok[1];
    op->key_len = strcmp(tok[1], "\"\"") == 0 ? 0 : strlen(tok[1]);
    op->prefix = arg_flag(tok, n, "prefix");
    op->prev_kv = arg_flag(tok, n, "prev");
    if (strcmp(tok[0], "put") == 0) {
        if (n < 3)
            return -1;
        op->type = STORE_OP_PUT;
        op->value = (const uint8_t *)tok[2];
        op->value_len = strlen(tok[2]);
        op->lease = arg_num(tok, n, "lease", 0);
    } else if (strcmp(tok[0], "del") == 0) {
        op->type = STORE_OP_DELETE;
    } else if (strcmp(tok[0], "get") == 0) {
        op->type = STORE_OP_GET;
        op->rev = arg_num(tok, n, "rev", 0);
        op->limit = arg_num(tok, n, "limit", 0);
        op->count_only = arg_flag(tok, n, "count");
        op->keys_only = arg_flag(tok, n, "keys");
    } else {
        return -1;
    }
    return 0;
}

static void apply_and_print(struct env *env, struct store_cmd *c, usec_t now, struct sc_buf *out)
{
    struct sc_error e = {0};
    int r = store_cmd_validate(c, &env->lim, &e);
    /* Every command goes through its log encoding, as in the server. */
    struct sc_buf enc = {0};
    struct store_cmd dec = {0};
    if (r >= 0) {
        store_cmd_encode(c, &enc);
        r = store_cmd_decode(enc.data, enc.len, &dec);
        if (r < 0)
            sc_buf_printf(out, "BUG: encoded command does not decode\n");
    }
    struct store_result res = {0};
    if (r >= 0)
        r = store_apply(env->s, &dec, now, &res, &e);
    if (r < 0) {
        print_err(out, r, &e);
    } else {
        sc_buf_printf(out, "rev=%lld", (long long)res.rev);
        if (c->type == STORE_CMD_TXN && c->ncmps)
            sc_buf_printf(out, " %s", res.succeeded ? "succeeded" : "failed");
        if (c->type == STORE_CMD_LEASE_GRANT)
            sc_buf_printf(out, " lease=%lld ttl=%lld", (long long)res.lease_id,
                          (long long)res.ttl_sec);
        sc_buf_printf(out, "\n");
        for (size_t i = 0; i < res.nops; i++)
            print_op_result(out, &res.ops[i]);
    }
    store_result_done(&res);
    store_cmd_done(&dec);
    sc_buf_free(&enc);
}

static struct store_watch **find_watch(struct env *env, const char *name, bool create)
{
    for (size_t i = 0; i < ELEMENTSOF(env->watches); i++)
        if (env->watches[i].w && strcmp(env->watches[i].name, name) == 0)
            return &env->watches[i].w;
    if (!create)
        return NULL;
    for (size_t i = 0; i < ELEMENTSOF(env->watches); i++)
        if (!env->watches[i].w) {
            snprintf(env->watches[i].name, sizeof(env->watches[i].name), "%s", name);
            return &env->watches[i].w;
        }
    return NULL;
}

static int cmp_parse(char *spec, char *opstr, char *val, struct store_cmp *c)
{
    static const char *targets[] = {NULL, "version", "create", "mod", "value", "lease"};
    char *lp = strchr(spec, '('), *rp = strrchr(spec, ')');
    if (!lp || !rp)
        return -1;
    *lp = *rp = '\0';
    *c = (struct store_cmp){0};
    for (int t = 1; t <= 5; t++)
        if (strcmp(spec, targets[t]) == 0)
            c->target = t;
    c->key = (const uint8_t *)(lp + 1);
    c->key_len = strlen(lp + 1);
    c->op = strcmp(opstr, "=") == 0    ? STORE_CMP_EQ
            : strcmp(opstr, "!=") == 0 ? STORE_CMP_NE
            : strcmp(opstr, "<") == 0  ? STORE_CMP_LT
            : strcmp(opstr, ">") == 0  ? STORE_CMP_GT
                                       : 0;
    if (c->target == STORE_CMP_VALUE) {
        c->value = (const uint8_t *)val;
        c->value_len = strlen(val);
    } else {
        c->num = strtoll(val, NULL, 10);
    }
    return c->target && c->op ? 0 : -1;
}

static void run_block(void *ud, const char *input, struct sc_buf *out)
{
    struct env *env = ud;
    char *text = xstrdup(input);
    char *save = NULL;
    char *first = strtok_r(text, "\n", &save);
    char *tok[32];
    char *line1 = xstrdup(first ? first : "");
    int n = split(line1, tok, 32);
    usec_t now = (usec_t)arg_num(tok, n, "at", 0) * USEC_PER_SEC;
    struct sc_error e = {0};
    struct store_cmd c = {0};

    if (n == 0) {
        sc_buf_printf(out, "empty block\n");
    } else if (strcmp(tok[0], "put") == 0 || strcmp(tok[0], "del") == 0) {
        struct store_op op;
        if (parse_op(tok, n, &op) < 0) {
            sc_buf_printf(out, "bad op\n");
        } else {
            c = (struct store_cmd){.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
            apply_and_print(env, &c, now, out);
        }
    } else if (strcmp(tok[0], "get") == 0) {
        struct store_op op;
        struct store_op_result res;
        parse_op(tok, n, &op);
        int r = store_read(env->s, &op, &res, &e);
        if (r < 0)
            print_err(out, r, &e);
        else
            print_op_result(out, &res);
        free(res.kvs);
    } else if (strcmp(tok[0], "txn") == 0) {
        struct store_cmp cmps[16];
        struct store_op succ[16], fail[16];
        char *owned[48];
        size_t nown = 0;
        c = (struct store_cmd){
            .type = STORE_CMD_TXN, .cmps = cmps, .success = succ, .failure = fail};
        bool bad = false;
        for (char *l = strtok_r(NULL, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char *lc = owned[nown++] = xstrdup(l);
            char *t[32];
            int m = split(lc, t, 32);
            if (m >= 4 && strcmp(t[0], "cmp") == 0)
                bad |= cmp_parse(t[1], t[2], t[3], &cmps[c.ncmps++]) < 0;
            else if (m >= 2 && strcmp(t[0], "then") == 0)
                bad |= parse_op(t + 1, m - 1, &succ[c.nsuccess++]) < 0;
            else if (m >= 2 && strcmp(t[0], "else") == 0)
                bad |= parse_op(t + 1, m - 1, &fail[c.nfailure++]) < 0;
            else
                bad = true;
        }
        if (bad)
            sc_buf_printf(out, "bad txn\n");
        else
            apply_and_print(env, &c, now, out);
        while (nown)
            free(owned[--nown]);
    } else if (strcmp(tok[0], "grant") == 0 && n >= 3) {
        c = (struct store_cmd){.type = STORE_CMD_LEASE_GRANT,
                               .lease_id = strtoll(tok[1], NULL, 10),
                               .ttl_sec = strtoll(tok[2], NULL, 10)};
        apply_and_print(env, &c, now, out);
    } else if (strcmp(tok[0], "revoke") == 0 && n >= 2) {
        c = (struct store_cmd){.type = STORE_CMD_LEASE_REVOKE,
                               .lease_id = strtoll(tok[1], NULL, 10)};
        apply_and_print(env, &c, now, out);
    } else if (strcmp(tok[0], "keepalive") == 0 && n >= 2) {
        int64_t ttl;
        int r = store_lease_keepalive(env->s, strtoll(tok[1], NULL, 10), now, &ttl);
        if (r < 0)
            print_err(out, r, &e);
        else
            sc_buf_printf(out, "ttl=%lld\n", (long long)ttl);
    } else if (strcmp(tok[0], "expire") == 0) {
        /* What sctld does each tick: revoke every lease past its deadline. */
        int64_t ids[64];
        size_t k = store_lease_expired(env->s, now, ids, 64);
        for (size_t i = 0; i < k; i++)
            for (size_t j = i + 1; j < k; j++)
                if (ids[j] < ids[i]) {
                    int64_t t = ids[i];
                    ids[i] = ids[j];
                    ids[j] = t;
                }
        if (k == 0)
            sc_buf_printf(out, "none expired\n");
        for (size_t i = 0; i < k; i++) {
            sc_buf_printf(out, "expired %lld: ", (long long)ids[i]);
            c = (struct store_cmd){.type = STORE_CMD_LEASE_REVOKE, .lease_id = ids[i]};
            apply_and_print(env, &c, now, out);
        }
    } else if (strcmp(tok[0], "compact") == 0 && n >= 2) {
        c = (struct store_cmd){.type = STORE_CMD_COMPACT, .compact_rev = strtoll(tok[1], NULL, 10)};
        apply_and_print(env, &c, now, out);
    } else if (strcmp(tok[0], "watch") == 0 && n >= 3) {
        struct store_watch **slot = find_watch(env, tok[1], true);
        const char *key = strcmp(tok[2], "\"\"") == 0 ? "" : tok[2];
        int r =
            store_watch_open(env->s, (const uint8_t *)key, strlen(key), arg_flag(tok, n, "prefix"),
                             arg_num(tok, n, "rev", 0), arg_flag(tok, n, "prev"), slot, &e);
        if (r < 0)
            print_err(out, r, &e);
        else
            sc_buf_printf(out, "ok next=%lld\n", (long long)store_watch_next_rev(env->s, *slot));
    } else if (strcmp(tok[0], "events") == 0 && n >= 2) {
        struct store_watch **slot = find_watch(env, tok[1], false);
        struct store_event ev;
        int r = 0, k = 0;
        while (slot && (r = store_watch_next(env->s, *slot, &ev)) > 0) {
            k++;
            sc_buf_printf(out, "%s ", ev.type == STORE_EVENT_PUT ? "PUT" : "DELETE");
            if (ev.type == STORE_EVENT_PUT)
                print_kv(out, "", &ev.kv);
            else
                sc_buf_printf(out, "%.*s mod=%lld\n", (int)ev.kv.key_len, (const char *)ev.kv.key,
                              (long long)ev.kv.mod_rev);
            if (ev.has_prev)
                print_kv(out, "  prev ", &ev.prev);
        }
        if (!slot)
            sc_buf_printf(out, "no such watch\n");
        else if (r < 0)
            print_err(out, r, &e);
        else
            sc_buf_printf(out, "%d events, next=%lld\n", k,
                          (long long)store_watch_next_rev(env->s, *slot));
    } else if (strcmp(tok[0], "unwatch") == 0 && n >= 2) {
        struct store_watch **slot = find_watch(env, tok[1], false);
        if (slot) {
            store_watch_close(env->s, *slot);
            *slot = NULL;
        }
        sc_buf_printf(out, slot ? "ok\n" : "no such watch\n");
    } else if (strcmp(tok[0], "reload") == 0) {
        struct sc_buf snap = {0};
        store_snapshot_encode(env->s, &snap);
        struct store *fresh = store_new(&env->lim);
        int r = store_snapshot_decode(fresh, snap.data, snap.len, now, &e);
        if (r < 0) {
            print_err(out, r, &e);
            store_free(fresh);
        } else {
            for (size_t i = 0; i < ELEMENTSOF(env->watches); i++)
                env->watches[i].w = NULL; /* freed with the old store */
            store_free(env->s);
            env->s = fresh;
            sc_buf_printf(out, "reloaded %zu bytes rev=%lld compact=%lld keys=%zu leases=%zu\n",
                          snap.len, (long long)store_rev(fresh),
                          (long long)store_compact_rev(fresh), store_key_count(fresh),
                          store_lease_count(fresh));
        }
        sc_buf_free(&snap);
    } else {
        sc_buf_printf(out, "unknown command %s\n", tok[0]);
    }
    char why[200];
    if (store_check(env->s, why, sizeof(why)) < 0)
        sc_buf_printf(out, "INVARIANT BROKEN: %s\n", why);
    free(line1);
    free(text);
}

static void run_golden(const char *name)
{
    const char *dir = getenv("SC_TESTDATA");
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof(path), "%s/golden/store/%s.txt", dir, name);
    struct env env = {0};
    store_limits_default(&env.lim);
    env.lim.max_key_bytes = 64; /* small limits so the scripts can hit them */
    env.lim.max_value_bytes = 64;
    env.lim.max_txn_ops = 8;
    env.s = store_new(&env.lim);
    int r = golden_run(path, run_block, &env);
    store_free(env.s);
    assert_int_equal(r, 0);
}

static void golden_kv(void **state)
{
    run_golden("kv");
}
static void golden_txn(void **state)
{
    run_golden("txn");
}
static void golden_compact(void **state)
{
    run_golden("compact");
}
static void golden_lease(void **state)
{
    run_golden("lease");
}
static void golden_watch(void **state)
{
    run_golden("watch");
}

/* ---- model-based random test ----------------------------------------------- */

#define MKEYS 24
#define MREVS 4000

/* The model: for each revision, the value (or absent) of each of MKEYS keys. */
struct model {
    int16_t val[MREVS][MKEYS]; /* -1 absent, else value number */
    int64_t create[MREVS][MKEYS], mod[MREVS][MKEYS], ver[MREVS][MKEYS];
    int64_t rev;
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void model_compare_at(struct store *s, struct model *m, int64_t rev)
{
    for (int k = 0; k < MKEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%02d", k);
        struct store_op op = {
            .type = STORE_OP_GET, .key = (const uint8_t *)key, .key_len = 3, .rev = rev};
        struct store_op_result res;
        assert_int_equal(store_read(s, &op, &res, NULL), 0);
        int16_t want = m->val[rev][k];
        if (want < 0) {
            assert_int_equal(res.nkvs, 0);
        } else {
            assert_int_equal(res.nkvs, 1);
            char v[16];
            int vl = snprintf(v, sizeof(v), "v%d", want);
            assert_int_equal(res.kvs[0].value_len, vl);
            assert_memory_equal(res.kvs[0].value, v, (size_t)vl);
            assert_int_equal(res.kvs[0].mod_rev, m->mod[rev][k]);
            assert_int_equal(res.kvs[0].create_rev, m->create[rev][k]);
            assert_int_equal(res.kvs[0].version, m->ver[rev][k]);
        }
        free(res.kvs);
    }
    /* A prefix read counts the same keys. */
    struct store_op all = {.type = STORE_OP_GET,
                           .key = (const uint8_t *)"k",
                           .key_len = 1,
                           .prefix = true,
                           .rev = rev,
                           .count_only = true};
    struct store_op_result res;
    assert_int_equal(store_read(s, &all, &res, NULL), 0);
    int64_t live = 0;
    for (int k = 0; k < MKEYS; k++)
        live += m->val[rev][k] >= 0;
    assert_int_equal(res.count, live);
}

static void model_random_ops(void **state)
{
    struct model *m = calloc(1, sizeof(*m));
    struct store *s = store_new(NULL);
    uint64_t seed = 0x5eed1234abcdULL;
    if (getenv("SC_SEED"))
        seed = strtoull(getenv("SC_SEED"), NULL, 0);
    fprintf(stderr, "seed=0x%llx\n", (unsigned long long)seed);
    memset(m->val[1], 0xff, sizeof(m->val[1]));
    m->rev = 1;
    int64_t compacted = 1;
    struct store_watch *w;
    assert_int_equal(store_watch_open(s, (const uint8_t *)"k", 1, true, 1, false, &w, NULL), 0);
    int64_t seen_rev = 0;
    int64_t seen_sub_keys = 0;
    while (m->rev < MREVS - 2) {
        uint64_t x = rng_next(&seed);
        int k = (int)(x % MKEYS);
        char key[16], val[16];
        snprintf(key, sizeof(key), "k%02d", k);
        int vnum = (int)((x >> 8) % 1000);
        snprintf(val, sizeof(val), "v%d", vnum);
        struct store_op op = {.key = (const uint8_t *)key, .key_len = 3};
        int kind = (int)((x >> 20) % 10);
        if (kind < 6) {
            op.type = STORE_OP_PUT;
            op.value = (const uint8_t *)val;
            op.value_len = strlen(val);
        } else if (kind < 9) {
            op.type = STORE_OP_DELETE;
            op.prefix = kind == 8; /* prefix delete of "k0x" group */
            op.key_len = op.prefix ? 2 : 3;
        } else {
            /* compact somewhere in the held history */
            int64_t c = compacted + (int64_t)((x >> 32) % (uint64_t)(m->rev - compacted + 1));
            struct store_cmd cc = {.type = STORE_CMD_COMPACT, .compact_rev = c};
            struct store_result res;
            int r = store_apply(s, &cc, 0, &res, NULL);
            if (c <= compacted) {
                assert_int_equal(r, -SC_E_COMPACTED);
            } else {
                assert_int_equal(r, 0);
                compacted = c;
            }
            continue;
        }
        struct store_cmd c = {.type = STORE_CMD_TXN, .success = &op, .nsuccess = 1};
        struct store_result res;
        assert_int_equal(store_apply(s, &c, 0, &res, NULL), 0);
        /* Update the model. */
        int64_t nr = m->rev + 1;
        memcpy(m->val[nr], m->val[m->rev], sizeof(m->val[0]));
        memcpy(m->create[nr], m->create[m->rev], sizeof(m->create[0]));
        memcpy(m->mod[nr], m->mod[m->rev], sizeof(m->mod[0]));
        memcpy(m->ver[nr], m->ver[m->rev], sizeof(m->ver[0]));
        bool changed = false;
        for (int j = 0; j < MKEYS; j++) {
            char kj[16];
            snprintf(kj, sizeof(kj), "k%02d", j);
            if (memcmp(kj, op.key, op.key_len) != 0)
                continue;
            if (op.type == STORE_OP_PUT) {
                bool live = m->val[nr][j] >= 0;
                m->create[nr][j] = live ? m->create[nr][j] : nr;
                m->ver[nr][j] = live ? m->ver[nr][j] + 1 : 1;
                m->val[nr][j] = (int16_t)vnum;
                m->mod[nr][j] = nr;
                changed = true;
            } else if (m->val[nr][j] >= 0) {
                m->val[nr][j] = -1;
                changed = true;
            }
        }
        if (changed)
            m->rev = nr;
        assert_int_equal(store_rev(s), m->rev);
        store_result_done(&res);
        /* Every so often, compare every readable revision. */
        if ((x >> 40) % 50 == 0)
            for (int64_t r = compacted; r <= m->rev; r += 1 + (int64_t)(rng_next(&seed) % 7))
                model_compare_at(s, m, r);
        /* Drain the watch: events arrive in revision order. */
        struct store_event ev;
        int wr;
        while ((wr = store_watch_next(s, w, &ev)) > 0) {
            assert_true(ev.kv.mod_rev >= seen_rev);
            if (ev.kv.mod_rev == seen_rev)
                seen_sub_keys++;
            seen_rev = ev.kv.mod_rev;
        }
        assert_int_equal(wr, 0);
        char why[200];
        if (store_check(s, why, sizeof(why)) < 0)
            fail_msg("invariant: %s", why);
    }
    model_compare_at(s, m, m->rev);
    /* Snapshot round trip keeps every readable revision. */
    struct sc_buf snap = {0};
    store_snapshot_encode(s, &snap);
    struct store *t = store_new(NULL);
    assert_int_equal(store_snapshot_decode(t, snap.data, snap.len, 0, NULL), 0);
    assert_int_equal(store_rev(t), m->rev);
    for (int64_t r = compacted; r <= m->rev; r++)
        model_compare_at(t, m, r);
    /* ... and re-encodes to the same bytes. */
    struct sc_buf snap2 = {0};
    store_snapshot_encode(t, &snap2);
    assert_int_equal(snap.len, snap2.len);
    assert_memory_equal(snap.data, snap2.data, snap.len);
    /* Every strict prefix of the snapshot is refused, never crashes. */
    for (size_t cut = 0; cut < snap.len; cut += 1 + snap.len / 300) {
        struct store *u = store_new(NULL);
        struct sc_error e;
        assert_int_equal(store_snapshot_decode(u, snap.data, cut, 0, &e), -SC_E_CORRUPT);
        store_free(u);
    }
    sc_buf_free(&snap);
    sc_buf_free(&snap2);
    store_free(t);
    store_watch_close(s, w);
    store_free(s);
    free(m);
}

static void cmd_codec_rejects_garbage(void **state)
{
    struct store_op ops[2] = {
        {.type = STORE_OP_PUT,
         .key = (const uint8_t *)"a",
         .key_len = 1,
         .value = (const uint8_t *)"xyz",
         .value_len = 3,
         .lease = 7,
         .prev_kv = true},
        {.type = STORE_OP_GET,
         .key = (const uint8_t *)"b",
         .key_len = 1,
         .prefix = true,
         .rev = 5,
         .limit = 3},
    };
    struct store_cmp cmp = {.key = (const uint8_t *)"a",
                            .key_len = 1,
                            .target = STORE_CMP_MOD,
                            .op = STORE_CMP_LT,
                            .num = 9};
    struct store_cmd c = {.type = STORE_CMD_TXN,
                          .cmps = &cmp,
                          .ncmps = 1,
                          .success = ops,
                          .nsuccess = 2,
                          .failure = ops,
                          .nfailure = 1};
    struct sc_buf b = {0};
    store_cmd_encode(&c, &b);
    struct store_cmd d;
    assert_int_equal(store_cmd_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.nsuccess, 2);
    assert_int_equal(d.success[0].lease, 7);
    assert_true(d.success[0].prev_kv);
    assert_int_equal(d.success[1].limit, 3);
    assert_int_equal(d.cmps[0].num, 9);
    store_cmd_done(&d);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(store_cmd_decode(b.data, cut, &d), -SC_E_CORRUPT);
    sc_buf_put_u8(&b, 0);
    assert_int_equal(store_cmd_decode(b.data, b.len, &d), -SC_E_CORRUPT); /* trailing byte */
    sc_buf_free(&b);
}

/* A new Raft leader refreshes every deadline: nothing expires before now + TTL. */
static void lease_refresh_all_gives_full_ttl(void **state)
{
    struct store_limits l;
    store_limits_default(&l);
    struct store *s = store_new(&l);
    struct store_result res;
    struct sc_error e;
    for (int64_t id = 1; id <= 3; id++) {
        struct store_cmd c = {.type = STORE_CMD_LEASE_GRANT, .lease_id = id, .ttl_sec = id * 10};
        assert_int_equal(store_apply(s, &c, 0, &res, &e), 0);
        store_result_done(&res);
    }
    int64_t ids[8];
    usec_t later = 100 * USEC_PER_SEC;
    assert_int_equal(store_lease_expired(s, later, ids, 8), 3);
    store_lease_refresh_all(s, later);
    assert_int_equal(store_lease_expired(s, later + 10 * USEC_PER_SEC - 1, ids, 8), 0);
    assert_int_equal(store_lease_expired(s, later + 10 * USEC_PER_SEC, ids, 8), 1);
    assert_int_equal(ids[0], 1);
    int64_t left, ttl;
    assert_int_equal(store_lease_info(s, 3, later, &left, &ttl), 0);
    assert_int_equal(left, 30);
    store_free(s);
}

/* Every Raft member bootstraps from the snapshot of an empty store. */
static void empty_store_snapshot_round_trip(void **state)
{
    struct store_limits l;
    store_limits_default(&l);
    struct store *a = store_new(&l), *b = store_new(&l);
    struct sc_buf buf = {0};
    struct sc_error e;
    store_snapshot_encode(a, &buf);
    assert_int_equal(store_snapshot_decode(b, buf.data, buf.len, 0, &e), 0);
    assert_int_equal(store_rev(b), 1);
    assert_int_equal(store_key_count(b), 0);
    sc_buf_free(&buf);
    store_free(a);
    store_free(b);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_kv),
        cmocka_unit_test(golden_txn),
        cmocka_unit_test(golden_compact),
        cmocka_unit_test(golden_lease),
        cmocka_unit_test(golden_watch),
        cmocka_unit_test(model_random_ops),
        cmocka_unit_test(cmd_codec_rejects_garbage),
        cmocka_unit_test(lease_refresh_all_gives_full_ttl),
        cmocka_unit_test(empty_store_snapshot_round_trip),
    };
    return sc_test_main(tests, argc, argv);
}
