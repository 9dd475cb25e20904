/*
 * lincheck.h: a linearizability checker for the simulator's client histories
 * (Wing & Gong's search with Lowe's memoization, as in Porcupine), over a
 * key/value model with put, get, delete and compare-and-swap.
 *
 * Every operation touches one key, so the history is checked key by key (a
 * history is linearizable iff each key's sub-history is: linearizability is
 * local, Herlihy & Wing 1990), which keeps the search small.  An operation
 * whose outcome the client never learned (timeout, lost answer) has an
 * infinite return time and an unconstrained output: it may take effect at any
 * point after its invocation, or never (placing it last is the same thing).
 *
 * Users: the simulator (sim.c) checks its clients' histories; lincheck_main.c
 * (the `lincheck` program) checks history files recorded by the system tests
 * against real sctld processes with the same search.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lin_kind { LIN_PUT = 1, LIN_GET, LIN_DEL, LIN_CAS };

/* Values are small integers; 0 means "no such key". */
struct lin_op {
    enum lin_kind kind;
    uint32_t key;
    int64_t arg;       /* PUT, CAS: the value written */
    int64_t expect;    /* CAS: the value compared with (0: the key is absent) */
    uint64_t call;     /* invocation time (unique, increasing) */
    uint64_t ret;      /* response time; ignored when unknown */
    bool unknown;      /* outcome not known: may take effect any time after call */
    int64_t out_value; /* GET: value read; CAS failed: value seen */
    bool out_ok;       /* CAS: swapped; DEL: deleted a key */
    uint64_t tag;      /* caller's id (printed in reports) */
};

struct lin_report {
    bool ok;          /* linearizable (or the search gave up) */
    bool gave_up;     /* a key's search exceeded the state budget */
    uint32_t bad_key; /* the first non-linearizable key */
    size_t n_keys, max_ops_per_key;
    uint64_t states; /* memoized states explored */
};

/* Checks ops[0..n) (in any order).  max_states bounds the memo of one key
 * (0: 1,000,000); a key over it is reported as gave_up, not as a failure. */
void lin_check(const struct lin_op *ops, size_t n, uint64_t max_states, struct lin_report *rep);

/* Applies op to state v as the model does; returns false when op's recorded
 * output is impossible from v.  *next gets the state after op. */
bool lin_model_step(int64_t v, const struct lin_op *op, int64_t *next);

/* Shrinks a non-linearizable history of ONE key to a small failing core: on
 * return keep[0..n) marks a subset that is still not linearizable and from
 * which no operation can be removed without it becoming linearizable
 * (delta debugging: a failing prefix in call order, then chunks, then single
 * operations), where removing an operation also removes nothing another kept
 * operation read: the writers of every value a kept read returned stay (a
 * core of one read of a value "nobody wrote" would explain nothing).  Returns the number
 * kept, or 0 when ops[0..n) is linearizable (or too big to decide) to begin
 * with.  Each trial is one lin_check with max_states; a trial that gives up
 * counts as linearizable, so the result is always a proven violation. */
size_t lin_minimize(const struct lin_op *ops, size_t n, uint64_t max_states, bool *keep);

/* Marks in drop[0..n) the unknown-outcome puts that cannot matter: on a key
 * with only puts and gets (no delete or compare-and-swap), a put whose value
 * no operation returned.  In any linearization the next operation on its key
 * after it is a put (a get would have returned its value), so removing it
 * keeps the rest valid; and a history without it is linearizable with it (it
 * takes effect never).  The verdict is the same; the search is not
 * exponential in such puts, which a failed check would otherwise explore in
 * every combination.  Returns how many were marked (drop[] is only set). */
size_t lin_prune_unread(const struct lin_op *ops, size_t n, bool *drop);
