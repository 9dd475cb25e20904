/*
 * main.c: the command line of the deterministic simulator (docs/sim.md).
 *
 *   sim [--first S] [--seeds N] [--steps K]    run seeds S..S+N-1 (default 1, 100, 300)
 *   sim --seed N [-v]                          one seed; -v prints the whole trace
 *   sim --bug skip|double|stale-read|no-sync   replica 1 is broken on purpose
 *   sim --selftest                             shows that the checkers fail: known
 *                                              non-linearizable histories, and each
 *                                              broken replica caught within a few seeds
 *
 * A failing seed prints the command that replays it.  The wall clock is read
 * only to report seeds per second; it never reaches the simulation.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "lincheck.h"
#include "sim.h"

static const char *bug_names[] = {"none", "skip", "double", "stale-read", "no-sync"};
static const char *argv0 = "sim";
static volatile uint64_t current_seed;
static unsigned current_steps;

static void on_abort(int sig)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf),
                     "\nsim: seed %llu ABORTED (assertion or sanitizer)\n  replay: %s --seed %llu "
                     "--steps %u -v\n",
                     (unsigned long long)current_seed, argv0, (unsigned long long)current_seed,
                     current_steps);
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        _exit(3);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void replay_hint(uint64_t seed, unsigned steps, enum sim_bug bug)
{
    fprintf(stderr, "  replay: %s --seed %llu --steps %u%s%s -v\n", argv0, (unsigned long long)seed,
            steps, bug ? " --bug " : "", bug ? bug_names[bug] : "");
}

/* ---- self test: the checkers can fail ---------------------------------------------------- */

static struct lin_op op(enum lin_kind k, uint32_t key, int64_t arg, uint64_t call, uint64_t ret,
                        int64_t out, bool ok)
{
    return (struct lin_op){.kind = k,
                           .key = key,
                           .arg = arg,
                           .call = call,
                           .ret = ret,
                           .out_value = out,
                           .out_ok = ok};
}

static int expect_lin(const char *name, const struct lin_op *ops, size_t n, bool want)
{
    struct lin_report rep;
    lin_check(ops, n, 0, &rep);
    printf("%s lincheck %s: %s (states %llu)\n", rep.ok == want ? "ok  " : "FAIL", name,
           rep.ok ? "linearizable" : "not linearizable", (unsigned long long)rep.states);
    return rep.ok == want ? 0 : 1;
}

static int selftest_lincheck(void)
{
    int bad = 0;
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 2, 0, 0), op(LIN_GET, 0, 0, 3, 4, 1, 0)};
        bad += expect_lin("sequential put then get", h, 2, true);
    }
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 2, 0, 0), op(LIN_GET, 0, 0, 3, 4, 0, 0)};
        bad += expect_lin("stale read after a completed put", h, 2, false);
    }
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 4, 0, 0), op(LIN_GET, 0, 0, 2, 3, 0, 0),
                             op(LIN_GET, 0, 0, 5, 6, 1, 0)};
        bad += expect_lin("read concurrent with a put sees either", h, 3, true);
    }
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 4, 0, 0), op(LIN_GET, 0, 0, 2, 3, 1, 0),
                             op(LIN_GET, 0, 0, 5, 6, 0, 0)};
        bad += expect_lin("value goes back after it was seen", h, 3, false);
    }
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 0, 0, 0), op(LIN_GET, 0, 0, 2, 3, 0, 0),
                             op(LIN_GET, 0, 0, 4, 5, 1, 0), op(LIN_GET, 0, 0, 6, 7, 1, 0)};
        h[0].unknown = true;
        bad += expect_lin("unknown put takes effect late", h, 4, true);
        h[3].out_value = 0;
        bad += expect_lin("unknown put takes effect twice", h, 4, false);
    }
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 2, 0, 0), op(LIN_CAS, 0, 2, 3, 4, 0, true),
                             op(LIN_CAS, 0, 3, 5, 6, 0, true)};
        h[1].expect = 1;
        h[2].expect = 1;
        bad += expect_lin("two compare-and-swaps from the same value", h, 3, false);
        h[2].out_ok = false;
        h[2].out_value = 2;
        bad += expect_lin("second compare-and-swap fails and sees 2", h, 3, true);
    }
    {
        struct lin_op h[] = {op(LIN_PUT, 0, 1, 1, 2, 0, 0), op(LIN_DEL, 0, 0, 3, 4, 0, true),
                             op(LIN_DEL, 0, 0, 5, 6, 0, true)};
        bad += expect_lin("two deletes both delete", h, 3, false);
    }
    {
        /* key 1 is fine, key 2 is a lost write: the checker names key 2 */
        struct lin_op h[] = {op(LIN_PUT, 1, 5, 1, 2, 0, 0), op(LIN_GET, 1, 0, 3, 4, 5, 0),
                             op(LIN_PUT, 2, 6, 5, 6, 0, 0), op(LIN_PUT, 2, 7, 7, 8, 0, 0),
                             op(LIN_GET, 2, 0, 9, 10, 6, 0)};
        struct lin_report rep;
        lin_check(h, 5, 0, &rep);
        bool good = !rep.ok && rep.bad_key == 2;
        printf("%s lincheck names the bad key: %u\n", good ? "ok  " : "FAIL", rep.bad_key);
        bad += !good;
    }
    {
        /* many concurrent writers and readers, linearizable by construction:
         * each op takes effect at a point inside its interval */
        uint64_t r = 42;
        enum { N = 60 };
        struct lin_op h[N];
        int64_t v = 0;
        for (int i = 0; i < N; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t point = 100 + 10 * (uint64_t)i;
            h[i] = op((r >> 33) % 2 ? LIN_PUT : LIN_GET, 0, i + 1, point - 1 - (r >> 40) % 50,
                      point + 1 + (r >> 20) % 50, 0, 0);
            if (h[i].kind == LIN_PUT)
                v = h[i].arg;
            else
                h[i].out_value = v;
        }
        bad += expect_lin("60 overlapping ops, linearizable by construction", h, N, true);
        for (int i = N - 1; i >= 0; i--)
            if (h[i].kind == LIN_GET) {
                h[i].out_value = 999; /* a value nobody wrote */
                break;
            }
        bad += expect_lin("the same with a read of a value nobody wrote", h, N, false);
    }
    return bad;
}

static int selftest_bugs(unsigned steps)
{
    int bad = 0;
    for (enum sim_bug b = SIM_BUG_SKIP; b <= SIM_BUG_NO_SYNC; b++) {
        uint64_t caught = 0;
        struct sim_result res;
        for (uint64_t seed = 1; seed <= 200 && !caught; seed++) {
            struct sim_opts o = {.seed = seed, .steps = steps, .bug = b};
            current_seed = seed;
            sim_run(&o, &res);
            if (res.failed)
                caught = seed;
        }
        /* no-sync is caught by the convergence check: the leader ignores the
         * rejects of a follower that forgot entries it acknowledged (as etcd does) */
        printf("%s broken replica '%s': %s", caught ? "ok  " : "FAIL", bug_names[b],
               caught ? "caught at seed " : "not caught in 200 seeds");
        if (caught)
            printf("%llu (%s)", (unsigned long long)caught, res.why);
        printf("\n");
        bad += !caught;
    }
    return bad;
}

int main(int argc, char **argv)
{
    argv0 = argv[0];
    uint64_t first = 1, seeds = 100;
    unsigned steps = 300;
    bool verbose = false, selftest = false;
    enum sim_bug bug = SIM_BUG_NONE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v) {
            first = strtoull(v, NULL, 10), seeds = 1, i++;
        } else if (!strcmp(a, "--first") && v) {
            first = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--seeds") && v) {
            seeds = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--steps") && v) {
            steps = (unsigned)strtoul(v, NULL, 10), i++;
        } else if (!strcmp(a, "-v")) {
            verbose = true;
        } else if (!strcmp(a, "--selftest")) {
            selftest = true;
        } else if (!strcmp(a, "--bug") && v) {
            bug = SIM_BUG_NONE;
            for (size_t b = 1; b < ELEMENTSOF(bug_names); b++)
                if (!strcmp(v, bug_names[b]))
                    bug = (enum sim_bug)b;
            if (!bug) {
                fprintf(stderr, "sim: unknown bug '%s'\n", v);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--first S] [--seeds N] [--steps K] [--seed N] [-v] "
                    "[--bug skip|double|stale-read|no-sync] [--selftest]\n",
                    argv[0]);
            return 2;
        }
    }
    current_steps = steps;
    signal(SIGABRT, on_abort);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (selftest) {
        int bad = selftest_lincheck() + selftest_bugs(steps);
        printf("sim selftest: %s\n", bad ? "FAILED" : "ok");
        return bad ? 1 : 0;
    }

    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    uint64_t failed = 0, ops = 0, unknown = 0, crashes = 0, torn = 0, installs = 0, confs = 0,
             leaders = 0, gave_up = 0, events = 0;
    for (uint64_t seed = first; seed < first + seeds; seed++) {
        struct sim_opts o = {.seed = seed, .steps = steps, .verbose = verbose, .bug = bug};
        struct sim_result res;
        current_seed = seed;
        sim_run(&o, &res);
        ops += res.ops, unknown += res.ops_unknown, crashes += res.crashes, torn += res.torn;
        installs += res.snap_installs, confs += res.conf_changes, leaders += res.leaders;
        gave_up += res.lin_gave_up, events += res.events;
        if (res.failed) {
            failed++;
            fprintf(stderr, "sim: seed %llu FAILED: %s\n", (unsigned long long)seed, res.why);
            replay_hint(seed, steps, bug);
            if (failed >= 10) {
                fprintf(stderr, "sim: stopping after 10 failed seeds\n");
                break;
            }
        }
    }
    double secs = (double)(now_usec(CLOCK_MONOTONIC) - t0) / 1e6;
    printf("sim: seeds %llu..%llu (%u steps): %llu failed; %llu client ops checked (%llu unknown "
           "outcome), %llu events, %llu leaders, %llu crashes (%llu lost unsynced bytes), %llu "
           "snapshot installs, %llu conf changes, %llu histories too big to check; %.1f s, %.1f "
           "seeds/s\n",
           (unsigned long long)first, (unsigned long long)(first + seeds - 1), steps,
           (unsigned long long)failed, (unsigned long long)ops, (unsigned long long)unknown,
           (unsigned long long)events, (unsigned long long)leaders, (unsigned long long)crashes,
           (unsigned long long)torn, (unsigned long long)installs, (unsigned long long)confs,
           (unsigned long long)gave_up, secs, secs > 0 ? (double)seeds / secs : 0.0);
    return failed ? 1 : 0;
}
