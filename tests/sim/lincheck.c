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
