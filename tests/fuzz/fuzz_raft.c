/*
 * fuzz_raft.c: libFuzzer harness for the Raft message codec (src/raft/raft_msg.c)
 * and for the core's handling of whatever a peer may send.
 *
 * The first input byte picks a target, the rest is its input:
 *   0  raft_msg_decode: on success, encode -> decode -> encode must give the
 *      same bytes (a fixed point: the input's varints may be overlong);
 *   1  raft_cc_decode: on success decode(encode(change)) re-encodes to the same
 *      bytes, never longer than the input (varints may be overlong), and
 *      raft_conf_apply on a 3-voter configuration either refuses it or yields a
 *      configuration with at least one voter;
 *   2  a stream of length-prefixed (u16 LE) messages stepped into a core (member
 *      1 of a bootstrapped 3-voter cluster, ticked between messages), with every
 *      update executed: no input may crash or trip an assertion of the core.
 * Any violated property aborts, which libFuzzer reports as a crash.
 *
 * Run: tests/fuzz/run.sh (short, in CI); longer by hand, e.g.
 *   build-fuzz/tests/fuzz/fuzz_raft -max_total_time=3600 corpus_dir/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "raft/raft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "property violated: %s\n", #cond);                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void target_msg(const uint8_t *p, size_t n)
{
    struct raft_msg m, m2;
    if (raft_msg_decode(p, n, &m) < 0)
        return;
    struct sc_buf a = {0}, b = {0};
    raft_msg_encode(&m, &a);
    CHECK(raft_msg_decode(a.data, a.len, &m2) == 0);
    raft_msg_encode(&m2, &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    raft_msg_done(&m);
    raft_msg_done(&m2);
    sc_buf_free(&a);
    sc_buf_free(&b);
}

static void target_cc(const uint8_t *p, size_t n)
{
    struct raft_conf_change cc;
    if (raft_cc_decode(p, n, &cc) < 0)
        return;
    struct raft_conf_change cc2;
    struct sc_buf a = {0}, b = {0};
    raft_cc_encode(&cc, &a);
    CHECK(raft_cc_decode(a.data, a.len, &cc2) == 0);
    raft_cc_encode(&cc2, &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0 && a.len <= n);
    sc_buf_free(&a);
    sc_buf_free(&b);
    struct raft_conf c = {.n_voters = 3, .voters = {1, 2, 3}}, out;
    if (raft_conf_apply(&c, &cc, &out) == 0)
        CHECK(out.n_voters > 0);
}

static void drain(struct raft *r)
{
    struct raft_update u;
    while (raft_has_update(r)) {
        raft_ready(r, &u);
        raft_advance(r, &u);
    }
}

static void target_core(const uint8_t *p, size_t n)
{
    struct raft_config cfg;
    raft_config_default(&cfg);
    cfg.id = 1;
    struct raft *r;
    struct sc_error e;
    CHECK(raft_new(&cfg, &r, &e) == 0);
    struct raft_snapshot_meta sm = {
        .index = 1, .term = 1, .conf = {.n_voters = 3, .voters = {1, 2, 3}}};
    CHECK(raft_load_snapshot(r, &sm, &e) == 0);
    CHECK(raft_start(r, &e) == 0);
    while (n >= 2) {
        size_t len = (size_t)p[0] | (size_t)p[1] << 8;
        p += 2, n -= 2;
        len = len < n ? len : n;
        struct raft_msg m;
        if (raft_msg_decode(p, len, &m) == 0) {
            m.to = 1;
            raft_step(r, &m);
            raft_msg_done(&m);
        }
        p += len, n -= len;
        raft_tick(r);
        if (len & 1)
            raft_propose(r, "x", 1, NULL);
        drain(r);
    }
    raft_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        target_msg(data + 1, size - 1);
        break;
    case 1:
        target_cc(data + 1, size - 1);
        break;
    case 2:
        target_core(data + 1, size - 1);
        break;
    }
    return 0;
}
