/*
 * lincheck_main.c: `lincheck`, the simulator's linearizability checker
 * (lincheck.c, the same code) as a program over a history file, so that the
 * client histories of the system tests against real sctld processes
 * (tests/system/raft_netns.sh, raft_members.sh) get the same verdict as the
 * simulator's.  Format and examples: docs/sim.md, "lincheck: histories from
 * real processes".
 *
 *   lincheck [--max-states N] [-q] HISTORY
 *
 * One operation per line (blank lines, '#' lines and " #..." tails ignored):
 *
 *   CLIENT CALL RET put KEY VALUE ok [REV] | fail | unknown
 *   CLIENT CALL RET get KEY ok VALUE|- [MOD_REV] | fail | unknown
 *   CLIENT CALL RET del KEY ok 0|1 [REV] | fail | unknown
 *
 * CALL and RET are integer times from one clock (ns), RET may be '-' for an
 * unknown outcome.  ok: the answer is known (a get's '-' is "not found");
 * fail: definitely not applied (refused, never sent); unknown: may have been
 * applied at any time after CALL, or never (a timeout, a 503).  Failed and
 * unknown reads constrain nothing and are dropped; a failed write is dropped;
 * an unknown write is kept with an open-ended return and any output (unless
 * nobody read its value: lin_prune_unread, which keeps the verdict).
 *
 * Beyond the per-key search, revisions (when given) are checked as sctld's
 * store defines them: every acknowledged write has its own revision, a write
 * acknowledged before another was invoked has the smaller one, and a read
 * that returns a value returns the revision its put was acknowledged with
 * (a del's REV counts only when it deleted something).
 *
 * Prints "linearizable" and exits 0; prints the violation with a minimal
 * failing set of operations (their lines) and exits 1; exits 2 on a bad file
 * or when a key's search exceeds --max-states (not decided, never "passed").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "lincheck.h"

/* An interned string table: names keys and values by small integers (the
 * model's values; 0 stays "absent"). */
struct names {
    char **s;
    size_t n, cap;
};

static uint32_t name_id(struct names *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++) /* histories are small: linear is fine */
        if (!strcmp(t->s[i], s))
            return (uint32_t)i + 1;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->s = xrealloc(t->s, t->cap * sizeof(*t->s));
    }
    t->s[t->n++] = xstrdup(s);
    return (uint32_t)t->n;
}

static void names_free(struct names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
}

/* One parsed line, kept for the report. */
struct hist_op {
    struct lin_op op; /* op.tag: index into the hist_op array */
    unsigned line;    /* 1-based line in the file */
    char *text;       /* the line as written */
    uint32_t client;  /* interned client name */
    bool dropped;     /* constrains nothing (failed, or an unknown read) */
    bool has_rev;     /* ok put/del with REV, ok get of a value with MOD_REV */
    uint64_t rev;
};

struct history {
    struct hist_op *ops;
    size_t n, cap;
    struct names keys, values, clients;
};

static void history_free(struct history *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->ops[i].text);
    free(h->ops);
    names_free(&h->keys);
    names_free(&h->values);
    names_free(&h->clients);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Parses one non-comment line into h (tokens already split); returns NULL or
 * what is wrong with it. */
static const char *parse_op(struct history *h, char **tok, int nt, struct hist_op *o)
{
    if (nt < 6)
        return "too few fields";
    o->client = name_id(&h->clients, tok[0]);
    if (!parse_u64(tok[1], &o->op.call))
        return "CALL is not a non-negative integer";
    bool ret_known = parse_u64(tok[2], &o->op.ret);
    if (!ret_known && strcmp(tok[2], "-"))
        return "RET is neither an integer nor '-'";
    o->op.key = name_id(&h->keys, tok[4]);
    const char *verb = tok[3];
    int oi; /* index of the outcome token */
    if (!strcmp(verb, "put")) {
        o->op.kind = LIN_PUT;
        if (!strcmp(tok[5], "-"))
            return "a put's VALUE may not be '-'";
        o->op.arg = name_id(&h->values, tok[5]);
        oi = 6;
    } else if (!strcmp(verb, "get")) {
        o->op.kind = LIN_GET;
        oi = 5;
    } else if (!strcmp(verb, "del")) {
        o->op.kind = LIN_DEL;
        oi = 5;
    } else {
        return "the operation is not put, get or del";
    }
    if (oi >= nt)
        return "no outcome (ok, fail or unknown)";
    const char *outcome = tok[oi];
    int extra = nt - oi - 1;
    if (!strcmp(outcome, "fail") || !strcmp(outcome, "unknown")) {
        if (extra)
            return "fields after fail/unknown";
        if (!strcmp(outcome, "fail") || o->op.kind != LIN_PUT) {
            /* definitely not applied, or a read/delete whose effect nobody saw:
             * an unknown delete could still matter, keep it as unknown */
            o->dropped = !(o->op.kind == LIN_DEL && !strcmp(outcome, "unknown"));
        }
        o->op.unknown = true;
        return NULL;
    }
    if (strcmp(outcome, "ok"))
        return "the outcome is not ok, fail or unknown";
    if (!ret_known)
        return "an ok operation needs RET";
    if (o->op.ret < o->op.call)
        return "RET is before CALL";
    const char *rev = NULL;
    if (o->op.kind == LIN_PUT) {
        if (extra > 1)
            return "fields after REV";
        rev = extra ? tok[oi + 1] : NULL;
    } else {
        if (extra < 1)
            return o->op.kind == LIN_GET ? "an ok get needs VALUE or '-'"
                                         : "an ok del needs 0 or 1";
        if (extra > 2)
            return "fields after the revision";
        const char *res = tok[oi + 1];
        if (o->op.kind == LIN_GET) {
            o->op.out_value = strcmp(res, "-") ? name_id(&h->values, res) : 0;
            if (!o->op.out_value && extra == 2)
                return "a not-found get has no MOD_REV";
        } else if (!strcmp(res, "0") || !strcmp(res, "1")) {
            o->op.out_ok = res[0] == '1';
        } else {
            return "a del's result is not 0 or 1";
        }
        rev = extra == 2 ? tok[oi + 2] : NULL;
    }
    if (rev) {
        if (!parse_u64(rev, &o->rev))
            return "the revision is not an integer";
        o->has_rev = true;
    }
    return NULL;
}

static int history_read(FILE *f, const char *path, struct history *h)
{
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int r = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        char *hash = strstr(p, " #"); /* a trailing comment: "... unknown # http=503" */
        if (hash)
            *hash = 0;
        char *copy = xstrdup(p), *tok[16], *save = NULL;
        int nt = 0;
        for (char *t = strtok_r(p, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
            if (nt < (int)ELEMENTSOF(tok))
                tok[nt++] = t;
            else
                nt = (int)ELEMENTSOF(tok) + 1;
        struct hist_op o = {.line = lineno, .text = copy};
        const char *why = nt > (int)ELEMENTSOF(tok) ? "too many fields" : parse_op(h, tok, nt, &o);
        if (why) {
            fprintf(stderr, "lincheck: %s:%u: %s: %s\n", path, lineno, why, copy);
            free(copy);
            r = -EINVAL;
            continue;
        }
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 256;
            h->ops = xrealloc(h->ops, h->cap * sizeof(*h->ops));
        }
        o.op.tag = h->n;
        h->ops[h->n++] = o;
    }
    free(line);
    return r;
}

/* A client has one operation outstanding at a time: overlapping operations of
 * one client mean the recording is broken (the verdict would be meaningless). */
static int check_clients(const struct history *h, const char *path)
{
    for (size_t i = 0; i < h->n; i++)
        for (size_t j = i + 1; j < h->n; j++) {
            const struct hist_op *a = &h->ops[i], *b = &h->ops[j];
            if (a->client != b->client || a->op.unknown || b->op.unknown)
                continue;
            if (a->op.call < b->op.ret && b->op.call < a->op.ret) {
                fprintf(stderr,
                        "lincheck: %s: client %s has overlapping operations (lines %u, %u)\n", path,
                        h->clients.s[a->client - 1], a->line, b->line);
                return -EINVAL;
            }
        }
    return 0;
}

static void print_op(const struct hist_op *o)
{
    printf("  line %u: %s\n", o->line, o->text);
}

static int ret_cmp(const void *a, const void *b)
{
    const struct hist_op *x = *(const struct hist_op *const *)a,
                         *y = *(const struct hist_op *const *)b;
    return x->op.ret < y->op.ret ? -1 : x->op.ret > y->op.ret;
}

static int call_cmp(const void *a, const void *b)
{
    const struct hist_op *x = *(const struct hist_op *const *)a,
                         *y = *(const struct hist_op *const *)b;
    return x->op.call < y->op.call ? -1 : x->op.call > y->op.call;
}

/* The revision rules of the file comment; returns the number of violations
 * printed (at most one of each kind). */
static int check_revisions(const struct history *h)
{
    int bad = 0;
    size_t nw = 0;
    const struct hist_op **w = xcalloc(h->n ? h->n : 1, sizeof(*w));
    for (size_t i = 0; i < h->n; i++) {
        const struct hist_op *o = &h->ops[i];
        /* a delete that deleted nothing writes nothing: its REV is just the
         * store's current revision */
        if (o->has_rev && !o->op.unknown &&
            (o->op.kind == LIN_PUT || (o->op.kind == LIN_DEL && o->op.out_ok)))
            w[nw++] = o;
    }
    /* 1. distinct revisions, and a read's MOD_REV is its put's REV */
    const struct hist_op **by_rev = xcalloc(nw ? nw : 1, sizeof(*by_rev));
    for (size_t i = 0; i < nw && !bad; i++)
        for (size_t j = i + 1; j < nw; j++)
            if (w[i]->rev == w[j]->rev) {
                printf("two acknowledged writes have revision %" PRIu64 ":\n", w[i]->rev);
                print_op(w[i]);
                print_op(w[j]);
                bad++;
                break;
            }
    for (size_t i = 0; i < h->n; i++) {
        const struct hist_op *g = &h->ops[i];
        if (g->op.kind != LIN_GET || g->op.unknown || !g->has_rev)
            continue;
        for (size_t j = 0; j < nw; j++) {
            const struct hist_op *p = w[j];
            if (p->op.kind == LIN_PUT && p->op.key == g->op.key && p->op.arg == g->op.out_value &&
                p->rev != g->rev) {
                printf("a read returned a value with mod revision %" PRIu64
                       ", its put was acknowledged with revision %" PRIu64 ":\n",
                       g->rev, p->rev);
                print_op(p);
                print_op(g);
                bad++;
                i = h->n;
                break;
            }
        }
    }
    /* 2. real-time order: sweeping writes by invocation, the acknowledged
     * write with the highest revision among those returned before it */
    const struct hist_op **by_ret = xcalloc(nw ? nw : 1, sizeof(*by_ret));
    memcpy(by_ret, w, nw * sizeof(*w));
    memcpy(by_rev, w, nw * sizeof(*w));
    qsort(by_ret, nw, sizeof(*by_ret), ret_cmp);
    qsort(by_rev, nw, sizeof(*by_rev), call_cmp); /* by_rev reused: by invocation */
    const struct hist_op *max = NULL;
    for (size_t i = 0, k = 0; i < nw; i++) {
        const struct hist_op *b = by_rev[i];
        for (; k < nw && by_ret[k]->op.ret < b->op.call; k++)
            if (!max || by_ret[k]->rev > max->rev)
                max = by_ret[k];
        if (max && max->rev >= b->rev) {
            printf("a write acknowledged before another was invoked has a revision not below "
                   "it (%" PRIu64 " >= %" PRIu64 "):\n",
                   max->rev, b->rev);
            print_op(max);
            print_op(b);
            bad++;
            break;
        }
    }
    free(by_ret);
    free(by_rev);
    free(w);
    return bad;
}

int main(int argc, char **argv)
{
    uint64_t max_states = 0;
    bool quiet = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-states") && i + 1 < argc &&
            parse_u64(argv[i + 1], &max_states)) {
            i++;
        } else if (!strcmp(argv[i], "-q")) {
            quiet = true;
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: %s [--max-states N] [-q] HISTORY   (format: docs/sim.md)\n",
                argv[0]);
        return 2;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "lincheck: %s: %s\n", path, strerror(errno));
        return 2;
    }
    struct history h = {0};
    int r = history_read(f, path, &h);
    fclose(f);
    if (r >= 0)
        r = check_clients(&h, path);
    if (r < 0) {
        history_free(&h);
        return 2;
    }

    size_t n = 0, n_unknown = 0;
    struct lin_op *ops = xcalloc(h.n ? h.n : 1, sizeof(*ops));
    for (size_t i = 0; i < h.n; i++)
        if (!h.ops[i].dropped) {
            ops[n++] = h.ops[i].op;
            n_unknown += h.ops[i].op.unknown;
        }
    /* unknown puts nobody read cannot change the verdict (lincheck.h) */
    bool *drop = xcalloc(n ? n : 1, sizeof(*drop));
    size_t n_pruned = lin_prune_unread(ops, n, drop), m0 = 0;
    for (size_t i = 0; i < n; i++)
        if (!drop[i])
            ops[m0++] = ops[i];
    n = m0;
    free(drop);
    struct lin_report rep;
    lin_check(ops, n, max_states, &rep);
    int bad_revs = check_revisions(&h);
    int rc = 0;
    if (!rep.ok) {
        /* the bad key's operations, shrunk to a core that still fails */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (ops[i].key == rep.bad_key)
                ops[m++] = ops[i];
        bool *keep = xcalloc(m, sizeof(*keep));
        size_t kept = lin_minimize(ops, m, max_states, keep);
        printf("not linearizable: key %s (%zu operations); ", h.keys.s[rep.bad_key - 1], m);
        if (kept) {
            printf("no order of these %zu, each taking effect between its call and its return "
                   "(never, or any time after its call, when unknown), explains their results:\n",
                   kept);
            /* in call order */
            const struct hist_op **core = xcalloc(kept, sizeof(*core));
            size_t c = 0;
            for (size_t i = 0; i < m; i++)
                if (keep[i])
                    core[c++] = &h.ops[ops[i].tag];
            qsort(core, c, sizeof(*core), call_cmp);
            for (size_t i = 0; i < c; i++)
                print_op(core[i]);
            free(core);
        } else {
            printf("the violation did not shrink within --max-states\n");
        }
        free(keep);
        rc = 1;
    } else if (rep.gave_up) {
        printf("undecided: a key's search exceeded %" PRIu64 " states (--max-states)\n",
               max_states ? max_states : 1000000);
        rc = 2;
    }
    if (bad_revs)
        rc = 1;
    if (!rc)
        printf("linearizable\n");
    if (!quiet)
        fprintf(stderr,
                "lincheck: %s: %zu operations (%zu checked, %zu unknown outcome of which %zu "
                "never read and left out), %zu keys, at most %zu per key, %" PRIu64 " states\n",
                path, h.n, n, n_unknown, n_pruned, rep.n_keys, rep.max_ops_per_key, rep.states);
    free(ops);
    history_free(&h);
    return rc;
}
