/*
 * test_raft.c: one test per safety rule of Raft (thesis figure 3.2 and the
 * rules around it), each built so that a core breaking the rule fails it, over
 * the in-memory cluster of tests/raft/cluster.h (real cores, encoded messages,
 * a disk that loses what was not persisted).  The cluster checkers (election
 * safety, log matching, leader completeness, state machine safety) run after
 * every step; a seeded random fault schedule exercises them broadly.
 *
 * SC_SEED=N picks the first seed of the random schedules (default 1).
 */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "../raft/cluster.h"

struct t_cl {
    struct cluster c;
    struct sc_buf out;
};

static void t_start(struct t_cl *t, unsigned n, bool pre_vote, bool check_quorum, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    cl_init(&t->c, &t->out, seed);
    struct raft_config cfg;
    raft_config_default(&cfg);
    cfg.pre_vote = pre_vote;
    cfg.check_quorum = check_quorum;
    struct raft_conf conf = {0};
    for (unsigned i = 1; i <= n; i++)
        conf.voters[conf.n_voters++] = i;
    for (unsigned i = 0; i < n; i++)
        cl_add(&t->c, &cfg, &conf);
}

static void t_done(struct t_cl *t)
{
    unsigned v = t->c.violations;
    cl_done(&t->c);
    sc_buf_free(&t->out);
    assert_int_equal(v, 0);
}

static struct raft_status t_status(struct t_cl *t, raft_id_t id)
{
    struct raft_status st;
    raft_get_status(t->c.nodes[id].r, &st);
    return st;
}

static void t_elect(struct t_cl *t, raft_id_t id)
{
    assert_int_equal(raft_campaign(t->c.nodes[id].r), 0);
    cl_stabilize(&t->c);
    assert_int_equal(t_status(t, id).role, RAFT_LEADER);
}

static raft_index_t t_propose(struct t_cl *t, raft_id_t id, const char *s)
{
    raft_index_t idx = 0;
    assert_int_equal(raft_propose(t->c.nodes[id].r, s, strlen(s), &idx), 0);
    return idx;
}

/* Expires the leader lease of the given nodes (check-quorum / pre-vote). */
static void t_expire_lease(struct t_cl *t, const raft_id_t *ids, size_t n)
{
    for (unsigned k = 0; k < 10; k++)
        for (size_t i = 0; i < n; i++)
            raft_tick(t->c.nodes[ids[i]].r);
}

static bool t_output_has(struct t_cl *t, const char *s)
{
    sc_buf_put_u8(&t->out, 0);
    t->out.len--;
    return strstr((const char *)t->out.data, s) != NULL;
}

/* ---- election safety (thesis 3.4) ---------------------------------------------- */

/* Two candidates in the same term, every vote delivered: at most one wins, and a
 * voter never grants two votes in one term. */
static void test_election_safety_one_leader_per_term(void **state)
{
    struct t_cl t;
    t_start(&t, 5, false, false, 1);
    assert_int_equal(raft_campaign(t.c.nodes[1].r), 0);
    assert_int_equal(raft_campaign(t.c.nodes[5].r), 0);
    cl_stabilize(&t.c);
    unsigned leaders = 0;
    for (raft_id_t i = 1; i <= 5; i++)
        leaders += t_status(&t, i).role == RAFT_LEADER;
    assert_true(leaders <= 1);
    /* votes are persisted: a restarted voter does not vote again in its term */
    struct raft_status s3 = t_status(&t, 3);
    assert_true(s3.vote == 1 || s3.vote == 5);
    cl_crash(&t.c, 3);
    cl_boot(&t.c, &t.c.nodes[3]);
    assert_int_equal(t_status(&t, 3).vote, s3.vote);
    t_done(&t);
}

/* The election restriction (thesis 3.6.1): a node missing a committed entry
 * cannot be elected; an up-to-date one can. */
static void test_election_restriction(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    t_elect(&t, 1);
    raft_id_t three = 3;
    cl_partition(&t.c, &three, 1);
    t_propose(&t, 1, "committed");
    cl_stabilize(&t.c);
    assert_true(t_status(&t, 1).commit >= 3);
    cl_heal(&t.c);
    cl_crash(&t.c, 1);
    assert_int_equal(raft_campaign(t.c.nodes[3].r), 0);
    cl_stabilize(&t.c);
    assert_int_not_equal(t_status(&t, 3).role, RAFT_LEADER);
    assert_int_equal(raft_campaign(t.c.nodes[2].r), 0);
    cl_stabilize(&t.c);
    assert_int_equal(t_status(&t, 2).role, RAFT_LEADER);
    t_done(&t);
}

/* ---- leader append-only (thesis 3.5) -------------------------------------------- */

/* A leader never overwrites or deletes its entries, whatever it receives: here an
 * append from a stale leader of an older term with conflicting entries. */
static void test_leader_append_only(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    t_elect(&t, 1);
    t_propose(&t, 1, "a");
    cl_stabilize(&t.c);
    struct raft *l = t.c.nodes[1].r;
    struct raft_status before = t_status(&t, 1);
    struct raft_entry fake[2] = {
        {.term = 1, .index = 2, .data = (const uint8_t *)"x", .len = 1},
        {.term = 1, .index = 3, .data = (const uint8_t *)"y", .len = 1},
    };
    struct raft_msg m = {.type = RAFT_MSG_APPEND,
                         .from = 2,
                         .to = 1,
                         .term = before.term, /* same term: a second leader cannot exist */
                         .log_term = 1,
                         .index = 1,
                         .entries = fake,
                         .n_entries = 2};
    assert_int_equal(raft_step(l, &m), 0);
    m.term = before.term - 1; /* an older leader */
    assert_int_equal(raft_step(l, &m), 0);
    struct raft_status after = t_status(&t, 1);
    assert_int_equal(after.role, RAFT_LEADER);
    assert_int_equal(after.last_index, before.last_index);
    const struct raft_entry *e = raft_entry_at(l, 3);
    assert_non_null(e);
    assert_int_equal(e->len, 1);
    assert_memory_equal(e->data, "a", 1);
    t_done(&t);
}

/* ---- log matching (thesis 3.5) --------------------------------------------------- */

/* The consistency check: an append whose previous entry does not match is
 * rejected with a hint and changes nothing; a matching one truncates only the
 * conflicting uncommitted suffix. */
static void test_log_matching_consistency_check(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    t_elect(&t, 1);
    cl_stabilize(&t.c);
    struct raft *f = t.c.nodes[2].r;
    struct raft_status st = t_status(&t, 2);
    struct raft_entry e1 = {.term = st.term, .index = 5, .data = (const uint8_t *)"z", .len = 1};
    struct raft_msg m = {.type = RAFT_MSG_APPEND,
                         .from = 1,
                         .to = 2,
                         .term = st.term,
                         .log_term = st.term,
                         .index = 4, /* beyond its log */
                         .entries = &e1,
                         .n_entries = 1};
    assert_int_equal(raft_step(f, &m), 0);
    assert_int_equal(t_status(&t, 2).last_index, st.last_index);
    struct raft_update u;
    raft_ready(f, &u);
    bool rejected = false;
    for (size_t i = 0; i < u.n_msgs; i++)
        if (u.msgs[i].type == RAFT_MSG_APPEND_RESP && u.msgs[i].reject) {
            rejected = true;
            assert_int_equal(u.msgs[i].hint_index, st.last_index);
        }
    assert_true(rejected);
    raft_advance(f, &u);
    t_done(&t);
}

/* ---- leader completeness (thesis 3.6) ------------------------------------------- */

static void test_leader_completeness(void **state)
{
    struct t_cl t;
    t_start(&t, 5, true, true, 1);
    t_elect(&t, 1);
    raft_index_t idx = t_propose(&t, 1, "durable");
    cl_stabilize(&t.c);
    assert_true(t_status(&t, 1).commit >= idx);
    /* the old leader and one follower go away; the rest elect a new leader */
    cl_crash(&t.c, 1);
    cl_crash(&t.c, 2);
    raft_id_t rest[] = {3, 4, 5};
    t_expire_lease(&t, rest, 3);
    cl_stabilize(&t.c);
    raft_id_t l = cl_leader(&t.c);
    if (!l) {
        assert_int_equal(raft_campaign(t.c.nodes[4].r), 0);
        cl_stabilize(&t.c);
        l = cl_leader(&t.c);
    }
    assert_true(l >= 3);
    const struct raft_entry *e = raft_entry_at(t.c.nodes[l].r, idx);
    assert_non_null(e);
    assert_memory_equal(e->data, "durable", 7);
    t_done(&t);
}

/* ---- the current-term commit rule (thesis 3.6.2, figure 8) ---------------------- */

static void test_figure8_commit_only_current_term(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    for (raft_id_t i = 1; i <= 3; i++) { /* every non-empty entry travels alone */
        cl_crash(&t.c, i);
        t.c.nodes[i].cfg.max_msg_bytes = 1;
        cl_boot(&t.c, &t.c.nodes[i]);
    }
    t_elect(&t, 1);
    /* (a) 1 (term 2) stores "old" at index 3, alone */
    raft_id_t one = 1;
    cl_partition(&t.c, &one, 1);
    raft_index_t old = t_propose(&t, 1, "old");
    cl_stabilize(&t.c);
    cl_heal(&t.c);
    cl_crash(&t.c, 1);
    /* (b) 2 wins term 3 with 3's vote; its no-op 3/3 stays on 2 */
    assert_int_equal(raft_campaign(t.c.nodes[2].r), 0);
    cl_process_ready(&t.c, 2);
    cl_deliver(&t.c, NULL, 0);
    cl_process_ready(&t.c, 3);
    cl_deliver(&t.c, NULL, 0);
    assert_int_equal(t_status(&t, 2).role, RAFT_LEADER);
    cl_process_ready(&t.c, 2);
    while (t.c.n_net)
        cl_drop_at(&t.c, 0);
    cl_crash(&t.c, 2);
    /* (c) 1 restarts and wins term 4 (3 voted for 2 in term 3: second try) */
    cl_boot(&t.c, &t.c.nodes[1]);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(raft_campaign(t.c.nodes[1].r), 0);
        cl_process_ready(&t.c, 1);
        cl_deliver(&t.c, NULL, 0);
        cl_process_ready(&t.c, 3);
        cl_deliver(&t.c, NULL, 0);
    }
    assert_int_equal(t_status(&t, 1).role, RAFT_LEADER);
    assert_int_equal(t_status(&t, 1).term, 4);
    /* its probe at 3 is rejected by 3, then "old" goes alone and is acked */
    for (int k = 0; k < 5; k++) {
        const struct raft_entry *e = raft_entry_at(t.c.nodes[3].r, old);
        if (e && e->term == 2)
            break;
        cl_process_ready(&t.c, 1);
        cl_deliver(&t.c, NULL, 0);
        cl_process_ready(&t.c, 3);
        cl_deliver(&t.c, NULL, 0);
    }
    const struct raft_entry *e3 = raft_entry_at(t.c.nodes[3].r, old);
    assert_non_null(e3);
    assert_int_equal(e3->term, 2);
    assert_int_equal(t_status(&t, 3).last_index, old); /* not the term-4 no-op */
    cl_process_ready(&t.c, 3);
    cl_deliver(&t.c, NULL, 0); /* 3's ack of index 3 reaches 1 */
    /* a majority (1 and 3) stores 2/3 "old", but it is not committed by counting */
    assert_int_equal(t_status(&t, 1).commit, old - 1);
    /* once the term-4 no-op reaches 3, both commit (indirectly, thesis 3.6.2) */
    cl_stabilize(&t.c);
    assert_int_equal(t_status(&t, 1).commit, old + 1);
    t_done(&t);
}

/* ---- state machine safety (thesis 3.6.3) and a random fault schedule -------- */

static uint64_t t_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Random ticks, deliveries, drops, partitions, crashes, restarts, proposals,
 * compactions and reads; the checkers run after every step.  Then everything
 * heals and the cluster must converge: a leader, one state machine. */
static void random_schedule(uint64_t seed, unsigned steps)
{
    struct t_cl t;
    t_start(&t, 5, true, true, seed);
    t.c.out = NULL;
    uint64_t rs = seed;
    char data[32];
    for (unsigned s = 0; s < steps; s++) {
        raft_id_t id = 1 + t_rand(&rs) % 5;
        unsigned a = t_rand(&rs) % 100;
        struct cl_node *n = &t.c.nodes[id];
        if (a < 35) {
            cl_tick(&t.c, id, 1);
        } else if (a < 55) {
            cl_process_ready(&t.c, id);
        } else if (a < 75) {
            if (t.c.n_net && t_rand(&rs) % 8 == 0)
                cl_drop_at(&t.c, t_rand(&rs) % t.c.n_net);
            cl_deliver(&t.c, &id, 1);
        } else if (a < 84) {
            raft_id_t l = cl_leader(&t.c);
            snprintf(data, sizeof(data), "v%u", s);
            if (l)
                raft_propose(t.c.nodes[l].r, data, strlen(data), NULL);
        } else if (a < 87) {
            raft_id_t side[2] = {id, 1 + t_rand(&rs) % 5};
            cl_heal(&t.c);
            cl_partition(&t.c, side, 2);
        } else if (a < 90) {
            cl_heal(&t.c);
        } else if (a < 92) {
            cl_crash(&t.c, id);
        } else if (a < 95) {
            if (!n->up)
                cl_boot(&t.c, n);
        } else if (a < 97) {
            if (n->up) {
                struct raft_status st;
                raft_get_status(n->r, &st);
                if (st.applied > st.snapshot.index + 4)
                    cl_compact(&t.c, id, st.applied - 2, NULL);
            }
        } else if (n->up) {
            raft_read_index(n->r, s);
        }
        cl_check(&t.c);
    }
    /* heal everything: the cluster must make progress again */
    cl_heal(&t.c);
    for (raft_id_t i = 1; i <= 5; i++)
        if (!t.c.nodes[i].up)
            cl_boot(&t.c, &t.c.nodes[i]);
    raft_id_t l = 0;
    for (int round = 0; round < 200 && !l; round++) {
        for (raft_id_t i = 1; i <= 5; i++)
            cl_tick(&t.c, i, 1);
        cl_stabilize(&t.c);
        l = cl_leader(&t.c);
    }
    assert_int_not_equal(l, 0);
    raft_index_t last = t_propose(&t, l, "final");
    for (int round = 0; round < 5; round++) {
        cl_stabilize(&t.c);
        for (raft_id_t i = 1; i <= 5; i++)
            cl_tick(&t.c, i, 1);
    }
    cl_stabilize(&t.c);
    for (raft_id_t i = 1; i <= 5; i++) {
        struct cl_node *n = &t.c.nodes[i];
        if (n->sm_index < last)
            fprintf(stderr, "seed %llu: node %llu applied %llu < %llu\n", (unsigned long long)seed,
                    (unsigned long long)i, (unsigned long long)n->sm_index,
                    (unsigned long long)last);
        assert_true(n->sm_index >= last);
    }
    if (t.c.violations)
        fprintf(stderr, "seed %llu: %u violations\n", (unsigned long long)seed, t.c.violations);
    t_done(&t);
}

static void test_state_machine_safety_random_faults(void **state)
{
    const char *env = getenv("SC_SEED");
    uint64_t first = env ? strtoull(env, NULL, 10) : 1;
    for (uint64_t seed = first; seed < first + 40; seed++)
        random_schedule(seed, 400);
}

/* ---- pre-vote (thesis 9.6) ------------------------------------------------------ */

static void test_prevote_does_not_disrupt_stable_leader(void **state)
{
    struct t_cl t;
    t_start(&t, 3, true, false, 1);
    t_elect(&t, 1);
    raft_term_t term = t_status(&t, 1).term;
    raft_id_t three = 3;
    cl_partition(&t.c, &three, 1);
    for (int k = 0; k < 100; k++) {
        raft_tick(t.c.nodes[3].r);
        cl_stabilize(&t.c);
    }
    assert_int_equal(t_status(&t, 3).term, term); /* never raised alone */
    cl_heal(&t.c);
    raft_tick(t.c.nodes[1].r);
    cl_stabilize(&t.c);
    assert_int_equal(t_status(&t, 1).role, RAFT_LEADER);
    assert_int_equal(t_status(&t, 1).term, term);
    assert_int_equal(t_status(&t, 3).leader, 1);
    t_done(&t);
}

/* ---- check-quorum (thesis 6.2) -------------------------------------------------- */

static void test_check_quorum_steps_down(void **state)
{
    struct t_cl t;
    t_start(&t, 3, true, true, 1);
    t_elect(&t, 1);
    raft_id_t one = 1;
    cl_partition(&t.c, &one, 1);
    for (int k = 0; k < 20 && t_status(&t, 1).role == RAFT_LEADER; k++) {
        raft_tick(t.c.nodes[1].r);
        cl_stabilize(&t.c);
    }
    assert_int_equal(t_status(&t, 1).role, RAFT_FOLLOWER);
    assert_int_equal(raft_propose(t.c.nodes[1].r, "x", 1, NULL), -SC_E_NOT_LEADER);
    t_done(&t);
}

/* ---- ReadIndex (thesis 6.4) ------------------------------------------------------ */

/* A deposed leader that does not know it (no check-quorum) never answers a read,
 * while the new leader commits writes it would miss. */
static void test_read_index_not_served_by_deposed_leader(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    t_elect(&t, 1);
    raft_id_t one = 1;
    cl_partition(&t.c, &one, 1);
    assert_int_equal(raft_campaign(t.c.nodes[2].r), 0);
    cl_stabilize(&t.c);
    assert_int_equal(t_status(&t, 2).role, RAFT_LEADER);
    t_propose(&t, 2, "newer");
    cl_stabilize(&t.c);
    assert_int_equal(t_status(&t, 1).role, RAFT_LEADER); /* still believes it */
    sc_buf_reset(&t.out);
    assert_int_equal(raft_read_index(t.c.nodes[1].r, 77), 0);
    for (int k = 0; k < 30; k++) {
        raft_tick(t.c.nodes[1].r);
        cl_stabilize(&t.c);
    }
    assert_false(t_output_has(&t, "ReadState Ctx:77"));
    /* the real leader answers, with an index covering the newer write */
    assert_int_equal(raft_read_index(t.c.nodes[2].r, 78), 0);
    cl_stabilize(&t.c);
    assert_true(t_output_has(&t, "ReadState Ctx:78 Index:4"));
    t_done(&t);
}

/* A new leader answers reads only after an entry of its term is committed. */
static void test_read_index_waits_for_term_commit(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    raft_campaign(t.c.nodes[1].r);
    cl_process_ready(&t.c, 1);
    cl_deliver(&t.c, NULL, 0);
    cl_process_ready(&t.c, 2);
    cl_process_ready(&t.c, 3);
    cl_deliver(&t.c, NULL, 0);
    assert_int_equal(t_status(&t, 1).role, RAFT_LEADER);
    assert_int_equal(raft_read_index(t.c.nodes[1].r, 5), 0);
    sc_buf_reset(&t.out);
    cl_process_ready(&t.c, 1);
    assert_false(t_output_has(&t, "ReadState"));
    cl_stabilize(&t.c);
    assert_true(t_output_has(&t, "ReadState Ctx:5 Index:2"));
    t_done(&t);
}

/* ---- joint consensus (thesis 4.3) ------------------------------------------------ */

static void test_joint_consensus_needs_both_majorities(void **state)
{
    struct t_cl t;
    t_start(&t, 3, false, false, 1);
    struct raft_config cfg;
    raft_config_default(&cfg);
    cfg.pre_vote = cfg.check_quorum = false;
    cl_add(&t.c, &cfg, NULL); /* 4 */
    cl_add(&t.c, &cfg, NULL); /* 5 */
    t_elect(&t, 1);
    struct raft_conf_change cc = {
        .transition = RAFT_CC_JOINT_EXPLICIT,
        .n = 3,
        .items = {{RAFT_CC_ADD_VOTER, 4}, {RAFT_CC_ADD_VOTER, 5}, {RAFT_CC_REMOVE, 3}}};
    assert_int_equal(raft_propose_conf_change(t.c.nodes[1].r, &cc, NULL), 0);
    cl_stabilize(&t.c);
    raft_tick(t.c.nodes[1].r);
    cl_stabilize(&t.c);
    struct raft_status st = t_status(&t, 1);
    assert_int_equal(st.conf.n_outgoing, 3); /* joint: (1 2 4 5)&&(1 2 3) */
    assert_int_equal(st.conf.n_voters, 4);
    /* cut 2 and 3: the new majority (1 4 5) acks, the old one (1 2 3) cannot */
    raft_id_t cut[] = {2, 3};
    cl_partition(&t.c, cut, 2);
    raft_index_t idx = t_propose(&t, 1, "joint");
    cl_stabilize(&t.c);
    assert_true(t_status(&t, 4).last_index >= idx);
    assert_true(t_status(&t, 1).commit < idx);
    /* an election in the joint config needs both majorities too */
    raft_id_t side[] = {4, 5};
    cl_heal(&t.c);
    cl_partition(&t.c, side, 2);
    assert_int_equal(raft_campaign(t.c.nodes[4].r), 0);
    cl_stabilize(&t.c);
    assert_int_not_equal(t_status(&t, 4).role, RAFT_LEADER);
    /* healed, the old majority acknowledges and the entry commits */
    cl_heal(&t.c);
    for (int k = 0; k < 30 && t_status(&t, 1).commit < idx; k++) {
        for (raft_id_t i = 1; i <= 5; i++)
            raft_tick(t.c.nodes[i].r);
        cl_stabilize(&t.c);
    }
    raft_id_t l = cl_leader(&t.c);
    assert_int_not_equal(l, 0);
    assert_true(t_status(&t, l).commit >= idx);
    t_done(&t);
}

static void test_conf_change_rules(void **state)
{
    struct raft_conf c = {.n_voters = 3, .voters = {1, 2, 3}}, out;
    struct raft_conf_change two = {.n = 2, .items = {{RAFT_CC_ADD_VOTER, 4}, {RAFT_CC_REMOVE, 1}}};
    assert_int_equal(raft_conf_apply(&c, &two, &out), 0); /* AUTO: two voters -> joint */
    assert_int_equal(out.n_outgoing, 3);
    assert_true(out.auto_leave);
    assert_int_equal(raft_conf_apply(&out, &two, &out), -EINVAL); /* not while joint */
    struct raft_conf_change leave = {0};
    assert_int_equal(raft_conf_apply(&c, &leave, &out), -EINVAL); /* not joint */
    struct raft_conf_change demote = {
        .transition = RAFT_CC_JOINT_EXPLICIT, .n = 1, .items = {{RAFT_CC_ADD_LEARNER, 3}}};
    assert_int_equal(raft_conf_apply(&c, &demote, &out), 0);
    assert_int_equal(out.n_learners_next, 1); /* votes in the old half until left */
    assert_true(raft_conf_is_voter(&out, 3));
    assert_int_equal(raft_conf_apply(&out, &leave, &out), 0);
    assert_false(raft_conf_is_voter(&out, 3));
    assert_int_equal(out.n_learners, 1);
    struct raft_conf_change empty_voters = {.n = 1, .items = {{RAFT_CC_REMOVE, 1}}};
    struct raft_conf one = {.n_voters = 1, .voters = {1}};
    assert_int_equal(raft_conf_apply(&one, &empty_voters, &out), -EINVAL);
}

/* ---- leadership transfer (thesis 3.10) ------------------------------------------ */

static void test_transfer_leadership(void **state)
{
    struct t_cl t;
    t_start(&t, 3, true, true, 1);
    t_elect(&t, 1);
    t_propose(&t, 1, "a");
    assert_int_equal(raft_transfer_leader(t.c.nodes[1].r, 3), 0);
    assert_int_equal(raft_propose(t.c.nodes[1].r, "b", 1, NULL), -EBUSY);
    cl_stabilize(&t.c);
    assert_int_equal(t_status(&t, 3).role, RAFT_LEADER);
    assert_int_equal(t_status(&t, 1).leader, 3);
    t_done(&t);
}

/* ---- snapshots (thesis 5.1) ------------------------------------------------------ */

static void test_snapshot_catch_up(void **state)
{
    struct t_cl t;
    t_start(&t, 3, true, true, 1);
    t_elect(&t, 1);
    cl_crash(&t.c, 3);
    for (int i = 0; i < 20; i++) {
        char b[16];
        snprintf(b, sizeof(b), "e%d", i);
        t_propose(&t, 1, b);
        cl_stabilize(&t.c);
    }
    raft_index_t applied = t_status(&t, 1).applied;
    assert_int_equal(cl_compact(&t.c, 1, applied, NULL), 0);
    assert_int_equal(raft_first_index(t.c.nodes[1].r), applied + 1);
    cl_boot(&t.c, &t.c.nodes[3]);
    raft_tick(t.c.nodes[1].r);
    cl_stabilize(&t.c);
    assert_true(t_output_has(&t, "MsgSnap"));
    assert_int_equal(t.c.nodes[3].sm_index, applied);
    assert_int_equal(t.c.nodes[3].sm.n, t.c.nodes[1].sm.n);
    t_done(&t);
}

/* ---- restart, codec ----------------------------------------------------------- */

static void test_load_override_and_gap(void **state)
{
    struct raft_config cfg;
    raft_config_default(&cfg);
    cfg.id = 1;
    struct raft *r;
    struct sc_error e;
    assert_int_equal(raft_new(&cfg, &r, &e), 0);
    struct raft_snapshot_meta sm = {.index = 1, .term = 1, .conf = {.n_voters = 1, .voters = {1}}};
    assert_int_equal(raft_load_snapshot(r, &sm, &e), 0);
    struct raft_entry a = {.term = 2, .index = 2}, b = {.term = 2, .index = 3},
                      c = {.term = 3, .index = 3}, gap = {.term = 3, .index = 9};
    assert_int_equal(raft_load_entry(r, &a, &e), 0);
    assert_int_equal(raft_load_entry(r, &b, &e), 0);
    assert_int_equal(raft_load_entry(r, &c, &e), 0); /* replaces 2/3 */
    assert_int_equal(raft_entry_at(r, 3)->term, 3);
    assert_int_equal(raft_last_index(r), 3);
    assert_int_equal(raft_load_entry(r, &gap, &e), -SC_E_CORRUPT);
    struct raft_hard_state hs = {.term = 3, .vote = 1, .commit = 7};
    assert_int_equal(raft_load_hard_state(r, &hs, &e), 0);
    assert_int_equal(raft_start(r, &e), -SC_E_CORRUPT); /* commit beyond the log */
    raft_free(r);
}

static void test_single_node(void **state)
{
    struct t_cl t;
    t_start(&t, 1, true, true, 1);
    for (int k = 0; k < 20 && t_status(&t, 1).role != RAFT_LEADER; k++) {
        raft_tick(t.c.nodes[1].r);
        cl_stabilize(&t.c);
    }
    assert_int_equal(t_status(&t, 1).role, RAFT_LEADER);
    raft_index_t idx = t_propose(&t, 1, "solo");
    cl_stabilize(&t.c);
    assert_int_equal(t.c.nodes[1].sm_index, idx);
    assert_int_equal(raft_read_index(t.c.nodes[1].r, 3), 0);
    cl_stabilize(&t.c);
    assert_true(t_output_has(&t, "ReadState Ctx:3 Index:3"));
    t_done(&t);
}

static void test_msg_codec(void **state)
{
    struct raft_entry ents[2] = {
        {.term = 5,
         .index = 8,
         .type = RAFT_ENTRY_NORMAL,
         .data = (const uint8_t *)"abc",
         .len = 3},
        {.term = 6, .index = 9, .type = RAFT_ENTRY_CONF, .data = (const uint8_t *)"\0\0", .len = 2},
    };
    struct raft_msg m = {.type = RAFT_MSG_APPEND,
                         .from = 1,
                         .to = 300,
                         .term = 6,
                         .log_term = 5,
                         .index = 7,
                         .commit = 6,
                         .reject = true,
                         .hint_index = 4,
                         .hint_term = 3,
                         .ctx = 1ULL << 60,
                         .entries = ents,
                         .n_entries = 2};
    for (int type = RAFT_MSG_APPEND; type <= RAFT_MSG_TYPE_MAX; type++) {
        m.type = type;
        m.snap = (struct raft_snapshot_meta){
            .index = 99,
            .term = 4,
            .conf = {.n_voters = 2, .voters = {1, 2}, .n_learners = 1, .learners = {7}}};
        m.snap_data = (const uint8_t *)"snapshot";
        m.snap_len = type == RAFT_MSG_SNAP ? 8 : 0;
        struct sc_buf b = {0}, b2 = {0};
        raft_msg_encode(&m, &b);
        struct raft_msg d;
        assert_int_equal(raft_msg_decode(b.data, b.len, &d), 0);
        raft_msg_encode(&d, &b2);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.data, b2.data, b.len);
        assert_int_equal(d.n_entries, 2);
        assert_int_equal(d.entries[1].index, 9);
        assert_int_equal(d.entries[1].type, RAFT_ENTRY_CONF);
        raft_msg_done(&d);
        for (size_t cut = 0; cut < b.len; cut++) /* every truncation is refused */
            assert_int_equal(raft_msg_decode(b.data, cut, &d), -SC_E_CORRUPT);
        sc_buf_free(&b);
        sc_buf_free(&b2);
    }
}

/* A snapshot's configuration comes from a peer or a file: one the core could not
 * hold (too many members, repeats, a learner that also votes) is refused whole. */
static void test_snapshot_conf_shape_checked(void **state)
{
    (void)state;
    struct {
        struct raft_conf c;
        bool ok;
    } cases[] = {
        {{.n_voters = 3, .voters = {1, 2, 3}}, true},
        {{.n_voters = 0}, false},
        {{.n_voters = 2, .voters = {2, 1}}, false},
        {{.n_voters = 2, .voters = {1, 1}}, false},
        {{.n_voters = 2, .voters = {1, 2}, .n_learners = 1, .learners = {2}}, false},
        {{.n_voters = 1, .voters = {1}, .n_learners_next = 1, .learners_next = {2}}, false},
        {{.n_voters = 1, .voters = {1}, .n_outgoing = 2, .outgoing = {1, 2},
          .n_learners_next = 1, .learners_next = {2}}, true},
        {{.n_voters = 1, .voters = {1}, .auto_leave = true}, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct raft_snapshot_meta m = {.index = 5, .term = 2, .conf = cases[i].c}, d;
        struct sc_buf b = {0};
        raft_snapshot_meta_encode(&m, &b);
        struct sc_rd rd = sc_rd_make(b.data, b.len);
        assert_int_equal(raft_snapshot_meta_decode(&rd, &d), cases[i].ok ? 0 : -SC_E_CORRUPT);
        sc_buf_free(&b);
    }
    /* 16 voters and 16 other outgoing ones: 32 distinct members */
    struct raft_snapshot_meta m = {.index = 5, .term = 2}, d;
    m.conf.n_voters = m.conf.n_outgoing = RAFT_MAX_MEMBERS;
    for (raft_id_t i = 0; i < RAFT_MAX_MEMBERS; i++) {
        m.conf.voters[i] = i + 1;
        m.conf.outgoing[i] = RAFT_MAX_MEMBERS + i + 1;
    }
    struct sc_buf b = {0};
    raft_snapshot_meta_encode(&m, &b);
    struct sc_rd rd = sc_rd_make(b.data, b.len);
    assert_int_equal(raft_snapshot_meta_decode(&rd, &d), -SC_E_CORRUPT);
    sc_buf_free(&b);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election_safety_one_leader_per_term),
        cmocka_unit_test(test_election_restriction),
        cmocka_unit_test(test_leader_append_only),
        cmocka_unit_test(test_log_matching_consistency_check),
        cmocka_unit_test(test_leader_completeness),
        cmocka_unit_test(test_figure8_commit_only_current_term),
        cmocka_unit_test(test_state_machine_safety_random_faults),
        cmocka_unit_test(test_prevote_does_not_disrupt_stable_leader),
        cmocka_unit_test(test_check_quorum_steps_down),
        cmocka_unit_test(test_read_index_not_served_by_deposed_leader),
        cmocka_unit_test(test_read_index_waits_for_term_commit),
        cmocka_unit_test(test_joint_consensus_needs_both_majorities),
        cmocka_unit_test(test_conf_change_rules),
        cmocka_unit_test(test_transfer_leadership),
        cmocka_unit_test(test_snapshot_catch_up),
        cmocka_unit_test(test_load_override_and_gap),
        cmocka_unit_test(test_single_node),
        cmocka_unit_test(test_msg_codec),
        cmocka_unit_test(test_snapshot_conf_shape_checked),
    };
    return sc_test_main(tests, argc, argv);
}
