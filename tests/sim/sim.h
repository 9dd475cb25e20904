/*
 * sim.h: the deterministic simulator of tests/sim (docs/sim.md).  One call runs
 * one seed: 3 or 5 replicas of the real Raft core (src/raft) and the real store
 * (src/store) over a simulated network, disk and clock, with faults and
 * clients drawn from the seed, checked after every event and, at the end, for
 * linearizability.  Nothing else is nondeterministic: no wall clock, no
 * thread, no file, no address-dependent ordering.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Deliberately broken replicas, to show that the checkers can fail. */
enum sim_bug {
    SIM_BUG_NONE = 0,
    SIM_BUG_SKIP,       /* replica 1 skips applying one store command */
    SIM_BUG_DOUBLE,     /* replica 1 applies one store command twice */
    SIM_BUG_STALE_READ, /* replica 1 answers reads from its store without ReadIndex */
    SIM_BUG_NO_SYNC,    /* replica 1 ignores must_sync: a crash loses acknowledged writes */
};

struct sim_opts {
    uint64_t seed;
    unsigned steps; /* fault phase, in ticks of 10 ms simulated time */
    bool verbose;   /* trace every event to stdout */
    enum sim_bug bug;
};

struct sim_result {
    bool failed;
    char why[512]; /* first violation */
    uint64_t ops, ops_unknown, events, crashes, torn, snap_installs, conf_changes, leaders;
    uint64_t lin_states;
    bool lin_gave_up;
};

/* Runs one seed; deterministic in opts. */
void sim_run(const struct sim_opts *opts, struct sim_result *res);
