/*
 * lincheck.c: the linearizability search of lincheck.h.
 *
 * Algorithm (Lowe, "Testing for linearizability", 2017; Porcupine's checker):
 * the history of one key becomes a doubly linked list of call and return
 * events in time order.  The search walks the list: at a call it tries to
 * linearize that operation now (the model accepts its output from the current
 * state) and, if the pair (set of linearized operations, model state) was not
 * seen before, lifts the call and its return out of the list and restarts from
 * the head; at a return whose call is still in the list no order works from
 * here, so it backtracks (pops the last linearized operation and re-inserts
 * it).  The list empties exactly when a linearization exists.  The memo
 * (a hash set of bitset + state) makes the search polynomial in practice.
 */
#include "lincheck.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

bool lin_model_step(int64_t v, const struct lin_op *op, int64_t *next)
{
    switch (op->kind) {
    case LIN_PUT:
        *next = op->arg;
        return true;
    case LIN_GET:
        *next = v;
        return op->unknown || op->out_value == v;
    case LIN_DEL:
        *next = 0;
        return op->unknown || op->out_ok == (v != 0);
    case LIN_CAS: {
        bool hit = v == op->expect;
        *next = hit ? op->arg : v;
        return op->unknown || (op->out_ok == hit && (hit || op->out_value == v));
    }
    }
    return false;
}

struct ev {
    bool is_call;
    size_t op; /* index into the key's op list */
    uint64_t time;
    struct ev *match, *prev, *next;
};

struct memo {
    uint64_t *slots; /* n_words bitset words + 1 state word per slot; empty: state slot tag 0 */
    uint8_t *used;
    size_t cap, n, words;
};

static uint64_t memo_hash(const uint64_t *bits, size_t words, int64_t state)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)state * 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < words; i++) {
        h ^= bits[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

static void memo_grow(struct memo *m);

/* Returns true if (bits, state) was new (and inserts it). */
static bool memo_insert(struct memo *m, const uint64_t *bits, int64_t state)
{
    if ((m->n + 1) * 2 > m->cap)
        memo_grow(m);
    size_t stride = m->words + 1;
    size_t i = memo_hash(bits, m->words, state) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        uint64_t *s = m->slots + i * stride;
        if (!m->used[i]) {
            memcpy(s, bits, m->words * sizeof(*bits));
            s[m->words] = (uint64_t)state;
            m->used[i] = 1;
            m->n++;
            return true;
        }
        if (s[m->words] == (uint64_t)state && !memcmp(s, bits, m->words * sizeof(*bits)))
            return false;
    }
}

static void memo_grow(struct memo *m)
{
    struct memo old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->n = 0;
    m->slots = xcalloc(m->cap, (m->words + 1) * sizeof(uint64_t));
    m->used = xcalloc(m->cap, 1);
    for (size_t i = 0; i < old.cap; i++)
        if (old.used[i])
            memo_insert(m, old.slots + i * (m->words + 1),
                        (int64_t)old.slots[i * (m->words + 1) + m->words]);
    free(old.slots);
    free(old.used);
}

static int ev_cmp(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->is_call != y->is_call)
        return x->is_call ? -1 : 1; /* calls first at equal times */
    return x->op < y->op ? -1 : x->op > y->op;
}

static void lift(struct ev *call)
{
    call->prev->next = call->next;
    if (call->next)
        call->next->prev = call->prev;
    struct ev *r = call->match;
    r->prev->next = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void unlift(struct ev *call)
{
    struct ev *r = call->match;
    r->prev->next = r;
    if (r->next)
        r->next->prev = r;
    call->prev->next = call;
    if (call->next)
        call->next->prev = call;
}

/* 1: linearizable, 0: not, -1: gave up. */
static int check_key(const struct lin_op *const *ops, size_t n, uint64_t max_states,
                     uint64_t *states)
{
    struct ev *evs = xcalloc(2 * n, sizeof(*evs));
    for (size_t i = 0; i < n; i++) {
        evs[2 * i] = (struct ev){.is_call = true, .op = i, .time = ops[i]->call};
        evs[2 * i + 1] = (struct ev){
            .is_call = false, .op = i, .time = ops[i]->unknown ? UINT64_MAX : ops[i]->ret};
    }
    qsort(evs, 2 * n, sizeof(*evs), ev_cmp);
    struct ev **call_of = xcalloc(n, sizeof(*call_of)), **ret_of = xcalloc(n, sizeof(*ret_of));
    for (size_t i = 0; i < 2 * n; i++)
        (evs[i].is_call ? call_of : ret_of)[evs[i].op] = &evs[i];
    for (size_t i = 0; i < n; i++) {
        call_of[i]->match = ret_of[i];
        ret_of[i]->match = call_of[i];
    }
    struct ev head = {0};
    struct ev *prev = &head;
    for (size_t i = 0; i < 2 * n; i++) {
        evs[i].prev = prev;
        prev->next = &evs[i];
        prev = &evs[i];
    }

    size_t words = (n + 63) / 64;
    uint64_t *bits = xcalloc(words ? words : 1, sizeof(*bits));
    struct memo memo = {.words = words};
    struct frame {
        struct ev *call;
        int64_t state;
    } *stack = xcalloc(n ? n : 1, sizeof(*stack));
    size_t sp = 0;
    int64_t state = 0;
    int result = 1;
    struct ev *e = head.next;
    while (head.next) {
        if (memo.n > max_states) {
            result = -1;
            break;
        }
        if (e->is_call) {
            int64_t next;
            const struct lin_op *op = ops[e->op];
            if (lin_model_step(state, op, &next)) {
                bits[e->op / 64] |= 1ULL << (e->op % 64);
                if (memo_insert(&memo, bits, next)) {
                    stack[sp++] = (struct frame){e, state};
                    state = next;
                    lift(e);
                    e = head.next;
                    continue;
                }
                bits[e->op / 64] &= ~(1ULL << (e->op % 64));
            }
            e = e->next;
        } else {
            if (sp == 0) {
                result = 0;
                break;
            }
            struct frame f = stack[--sp];
            state = f.state;
            bits[f.call->op / 64] &= ~(1ULL << (f.call->op % 64));
            unlift(f.call);
            e = f.call->next;
        }
    }
    *states += memo.n;
    free(stack);
    free(memo.slots);
    free(memo.used);
    free(bits);
    free(call_of);
    free(ret_of);
    free(evs);
    return result;
}

static int key_cmp(const void *a, const void *b)
{
    const struct lin_op *x = *(const struct lin_op *const *)a,
                        *y = *(const struct lin_op *const *)b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->call < y->call ? -1 : x->call > y->call;
}

void lin_check(const struct lin_op *ops, size_t n, uint64_t max_states, struct lin_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->ok = true;
    if (!max_states)
        max_states = 1000000;
    const struct lin_op **by_key = xcalloc(n ? n : 1, sizeof(*by_key));
    for (size_t i = 0; i < n; i++)
        by_key[i] = &ops[i];
    qsort(by_key, n, sizeof(*by_key), key_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && by_key[j]->key == by_key[i]->key)
            j++;
        rep->n_keys++;
        rep->max_ops_per_key = MAX(rep->max_ops_per_key, j - i);
        int r = check_key(by_key + i, j - i, max_states, &rep->states);
        if (r < 0)
            rep->gave_up = true;
        if (r == 0 && rep->ok) {
            rep->ok = false;
            rep->bad_key = by_key[i]->key;
        }
        i = j;
    }
    free(by_key);
}

/* true when the kept subset is proven not linearizable */
static bool subset_fails(const struct lin_op *ops, size_t n, const bool *keep, uint64_t max_states,
                         struct lin_op *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            scratch[m++] = ops[i];
    struct lin_report rep;
    lin_check(scratch, m, max_states, &rep);
    return !rep.ok && !rep.gave_up;
}

static int call_order_cmp(const void *a, const void *b, void *arg)
{
    const struct lin_op *ops = arg;
    const struct lin_op *x = &ops[*(const size_t *)a], *y = &ops[*(const size_t *)b];
    if (x->call != y->call)
        return x->call < y->call ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* The value an operation's result shows it read (0: none): a get's value, a
 * failed CAS's value, a successful CAS's expected value. */
static int64_t read_value(const struct lin_op *op)
{
    if (op->unknown)
        return 0;
    if (op->kind == LIN_GET || (op->kind == LIN_CAS && !op->out_ok))
        return op->out_value;
    if (op->kind == LIN_CAS)
        return op->expect;
    return 0;
}

static bool writes_value(const struct lin_op *op, int64_t v)
{
    return (op->kind == LIN_PUT || (op->kind == LIN_CAS && (op->out_ok || op->unknown))) &&
           op->arg == v;
}

/* Who wrote what each operation read: dep_of[i]..dep_of[i+1] index deps[]. */
struct deps {
    size_t *start, *list;
};

static void deps_build(const struct lin_op *ops, size_t n, struct deps *d)
{
    d->start = xcalloc(n + 1, sizeof(*d->start));
    size_t cap = n ? n : 1, len = 0;
    d->list = xcalloc(cap, sizeof(*d->list));
    for (size_t i = 0; i < n; i++) {
        d->start[i] = len;
        int64_t v = read_value(&ops[i]);
        for (size_t j = 0; v && j < n; j++) {
            if (j == i || !writes_value(&ops[j], v))
                continue;
            if (len == cap)
                d->list = xrealloc(d->list, (cap *= 2) * sizeof(*d->list));
            d->list[len++] = j;
        }
    }
    d->start[n] = len;
}

/* Adds to keep[] the writers of every value a kept operation read, so that a
 * shrunk history never "fails" only because a read's writer was cut away. */
static void deps_close(const struct deps *d, size_t n, bool *keep, size_t *work)
{
    size_t top = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            work[top++] = i;
    while (top) {
        size_t i = work[--top];
        for (size_t k = d->start[i]; k < d->start[i + 1]; k++)
            if (!keep[d->list[k]]) {
                keep[d->list[k]] = true;
                work[top++] = d->list[k];
            }
    }
}

size_t lin_minimize(const struct lin_op *ops, size_t n, uint64_t max_states, bool *keep)
{
    for (size_t i = 0; i < n; i++)
        keep[i] = true;
    struct lin_op *scratch = xcalloc(n ? n : 1, sizeof(*scratch));
    if (!subset_fails(ops, n, keep, max_states, scratch)) {
        free(scratch);
        return 0;
    }
    /* 1. a short failing prefix in invocation order (bisection keeping a
     *    failing upper bound: prefixes are not monotone in general, but the
     *    bound always fails) */
    size_t *by_call = xcalloc(n, sizeof(*by_call));
    for (size_t i = 0; i < n; i++)
        by_call[i] = i;
    qsort_r(by_call, n, sizeof(*by_call), call_order_cmp, (void *)ops);
    bool *trial = xcalloc(n, sizeof(*trial));
    size_t *work = xcalloc(n, sizeof(*work));
    struct deps d;
    deps_build(ops, n, &d);
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        memset(trial, 0, n * sizeof(*trial));
        for (size_t i = 0; i < mid; i++)
            trial[by_call[i]] = true;
        deps_close(&d, n, trial, work);
        if (subset_fails(ops, n, trial, max_states, scratch))
            hi = mid;
        else
            lo = mid;
    }
    memset(keep, 0, n * sizeof(*keep));
    for (size_t i = 0; i < hi; i++)
        keep[by_call[i]] = true;
    deps_close(&d, n, keep, work);
    /* 2. delta debugging: drop chunks of halving size, newest first, then
     *    single operations until none can go */
    bool changed = true;
    for (size_t chunk = hi / 2 ? hi / 2 : 1; changed; chunk = chunk > 1 ? chunk / 2 : 1) {
        changed = chunk > 1;
        for (size_t end = hi; end > 0;) {
            size_t start = end > chunk ? end - chunk : 0;
            bool any = false;
            memcpy(trial, keep, n * sizeof(*keep));
            for (size_t i = start; i < end; i++) {
                any |= trial[by_call[i]];
                trial[by_call[i]] = false;
            }
            deps_close(&d, n, trial, work);
            if (any && memcmp(trial, keep, n * sizeof(*keep)) &&
                subset_fails(ops, n, trial, max_states, scratch)) {
                memcpy(keep, trial, n * sizeof(*keep));
                changed = true;
            }
            end = start;
        }
    }
    free(d.start);
    free(d.list);
    free(work);
    free(trial);
    free(by_call);
    free(scratch);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += keep[i];
    return kept;
}

static int key_value_cmp(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

size_t lin_prune_unread(const struct lin_op *ops, size_t n, bool *drop)
{
    /* (key, value) pairs: value 0 marks a key with a delete or CAS; others are
     * values some operation returned */
    int64_t(*seen)[2] = xcalloc(n ? n : 1, sizeof(*seen));
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lin_op *op = &ops[i];
        int64_t v = op->kind == LIN_DEL || op->kind == LIN_CAS ? 0 : read_value(op);
        if (op->kind != LIN_PUT && (v || op->kind != LIN_GET)) {
            seen[ns][0] = op->key;
            seen[ns++][1] = v;
        }
    }
    qsort(seen, ns, sizeof(*seen), key_value_cmp);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lin_op *op = &ops[i];
        if (op->kind != LIN_PUT || !op->unknown)
            continue;
        int64_t k0[2] = {op->key, 0}, kv[2] = {op->key, op->arg};
        if (bsearch(k0, seen, ns, sizeof(*seen), key_value_cmp) ||
            bsearch(kv, seen, ns, sizeof(*seen), key_value_cmp))
            continue;
        drop[i] = true;
        dropped++;
    }
    free(seen);
    return dropped;
}
