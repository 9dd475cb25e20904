/*
 * raft_golden.c: golden interaction scripts for the Raft core, in the style of
 * etcd raft's interaction tests (testdata/NAME.txt).  Each script drives an
 * in-memory cluster (cluster.h) with commands and compares the full trace of
 * decisions, updates and messages with the expected text; the cluster checkers
 * run after every step and any violation fails the test even when re-recording.
 *
 * Re-record after a deliberate change of behaviour (then review the diff):
 *   SC_REWRITE=1 SC_TESTDATA=$PWD/tests BUILD/tests/raft/test_raft_golden
 *
 * Commands (IDs are node numbers from 1):
 *   add-nodes N [voters=1,2,3] [learners=4] [join] [prevote=false]
 *             [checkquorum=false] [election=T] [heartbeat=T] [max-msg-bytes=B]
 *             [inflight=K]            N new nodes; bootstrapped with the given
 *                                     configuration (default: the new nodes as
 *                                     voters) unless `join` (empty, gets a snapshot)
 *   campaign ID                       raft_campaign
 *   tick-election ID...               election_ticks ticks, interleaved
 *   tick-heartbeat ID...              heartbeat_ticks ticks, interleaved
 *   tick ID... n=K                    K ticks, interleaved
 *   process-ready ID...               execute one update each (persist, send, apply)
 *   deliver-msgs [ID...]              deliver queued messages to these nodes (all)
 *   drop [FROM TO]                    discard queued messages (all, or FROM->TO)
 *   partition ID...                   cut the listed nodes off from the others
 *   heal                              restore every link
 *   stabilize                         process-ready and deliver until quiet
 *   propose ID DATA                   raft_propose
 *   propose-conf-change ID [joint|explicit] [v4] [l5] [r3]   (none: leave joint)
 *   read-index ID CTX                 raft_read_index
 *   transfer-leadership FROM TO       raft_transfer_leader
 *   compact ID INDEX                  snapshot the state machine at INDEX, raft_compact
 *   crash ID / restart ID             lose everything not persisted / reload the disk
 *   log-level none|info               decision trace of the cores on or off
 *   raft-state                        role, term, leader, commit, applied of each node
 *   raft-log ID                       the node's log (in memory)
 *   status ID                         configuration and the leader's progress map
 *   applied ID                        the node's state machine
 */
#include "../unit/harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>

#include "../unit/golden.h"
#include "base/util.h"
#include "cluster.h"

struct env {
    struct cluster c;
    struct sc_buf *out;
};

#define MAX_ARGS 32

/* "EBUSY" for errno values, the domain name ("not_leader") otherwise. */
static const char *err_name(int r)
{
    if (r < 0 && -r < SC_E_BASE && strerrorname_np(-r))
        return strerrorname_np(-r);
    return sc_err_name(r);
}

static int split(char *line, char **argv)
{
    int n = 0;
    for (char *t = strtok(line, " \t"); t && n < MAX_ARGS; t = strtok(NULL, " \t"))
        argv[n++] = t;
    return n;
}

static uint64_t num(const char *s)
{
    return strtoull(s, NULL, 10);
}

static size_t parse_ids(const char *s, raft_id_t *ids, size_t max)
{
    size_t n = 0;
    while (*s && n < max) {
        char *end;
        ids[n++] = strtoull(s, &end, 10);
        if (*end != ',')
            break;
        s = end + 1;
    }
    return n;
}

static raft_id_t node_arg(struct env *env, const char *s)
{
    raft_id_t id = num(s);
    if (id < 1 || id > env->c.n) {
        sc_buf_printf(env->out, "no such node %s\n", s);
        return 0;
    }
    return id;
}

static void cmd_add_nodes(struct env *env, int argc, char **argv)
{
    struct cluster *c = &env->c;
    unsigned n = argc > 1 ? (unsigned)num(argv[1]) : 1;
    struct raft_config cfg;
    raft_config_default(&cfg);
    cfg.election_ticks = 10;
    struct raft_conf conf = {0};
    bool join = false, voters_given = false;
    for (int i = 2; i < argc; i++) {
        raft_id_t ids[RAFT_MAX_MEMBERS];
        if (strncmp(argv[i], "voters=", 7) == 0) {
            size_t k = parse_ids(argv[i] + 7, ids, RAFT_MAX_MEMBERS);
            for (size_t j = 0; j < k; j++)
                conf.voters[conf.n_voters++] = ids[j];
            voters_given = true;
        } else if (strncmp(argv[i], "learners=", 9) == 0) {
            size_t k = parse_ids(argv[i] + 9, ids, RAFT_MAX_MEMBERS);
            for (size_t j = 0; j < k; j++)
                conf.learners[conf.n_learners++] = ids[j];
        } else if (strcmp(argv[i], "join") == 0) {
            join = true;
        } else if (strcmp(argv[i], "prevote=false") == 0) {
            cfg.pre_vote = false;
        } else if (strcmp(argv[i], "checkquorum=false") == 0) {
            cfg.check_quorum = false;
        } else if (strncmp(argv[i], "election=", 9) == 0) {
            cfg.election_ticks = (unsigned)num(argv[i] + 9);
        } else if (strncmp(argv[i], "heartbeat=", 10) == 0) {
            cfg.heartbeat_ticks = (unsigned)num(argv[i] + 10);
        } else if (strncmp(argv[i], "max-msg-bytes=", 14) == 0) {
            cfg.max_msg_bytes = num(argv[i] + 14);
        } else if (strncmp(argv[i], "inflight=", 9) == 0) {
            cfg.max_inflight = (unsigned)num(argv[i] + 9);
        } else {
            sc_buf_printf(env->out, "unknown argument %s\n", argv[i]);
            return;
        }
    }
    if (!voters_given)
        for (unsigned i = 1; i <= n; i++)
            conf.voters[conf.n_voters++] = c->n + i;
    for (unsigned i = 0; i < n; i++)
        cl_add(c, &cfg, join ? NULL : &conf);
}

static void cmd_raft_state(struct env *env)
{
    for (size_t i = 1; i <= env->c.n; i++) {
        struct cl_node *n = &env->c.nodes[i];
        if (!n->up) {
            sc_buf_printf(env->out, "%zu: down\n", i);
            continue;
        }
        struct raft_status st;
        raft_get_status(n->r, &st);
        const char *kind = raft_conf_is_voter(&st.conf, st.id) ? "Voter"
                           : raft_conf_has(&st.conf, st.id)    ? "Learner"
                                                               : "NonMember";
        sc_buf_printf(env->out, "%zu: %s (%s) Term:%llu Lead:%llu Commit:%llu Applied:%llu\n", i,
                      raft_role_name(st.role), kind, (unsigned long long)st.term,
                      (unsigned long long)st.leader, (unsigned long long)st.commit,
                      (unsigned long long)st.applied);
    }
}

static struct raft *live_node(struct env *env, raft_id_t id)
{
    struct raft *r = cl_raft(&env->c, id);
    if (!r)
        sc_buf_printf(env->out, "%llu is down\n", (unsigned long long)id);
    return r;
}

static void cmd_raft_log(struct env *env, raft_id_t id)
{
    struct raft *r = live_node(env, id);
    if (!r)
        return;
    struct raft_status st;
    raft_get_status(r, &st);
    if (st.first_index > st.last_index)
        sc_buf_printf(env->out, "log is empty: first index=%llu, last index=%llu\n",
                      (unsigned long long)st.first_index, (unsigned long long)st.last_index);
    struct sc_buf b = {0};
    for (raft_index_t i = st.first_index; i <= st.last_index; i++) {
        sc_buf_reset(&b);
        raft_entry_format(raft_entry_at(r, i), &b);
        sc_buf_printf(env->out, "%.*s\n", (int)b.len, (char *)b.data);
    }
    sc_buf_free(&b);
}

static void cmd_status(struct env *env, raft_id_t id)
{
    struct raft *r = live_node(env, id);
    if (!r)
        return;
    struct raft_status st;
    raft_get_status(r, &st);
    sc_buf_printf(env->out, "conf: ");
    raft_conf_format(&st.conf, env->out);
    sc_buf_printf(env->out, "\nsnapshot: %llu/%llu\n", (unsigned long long)st.snapshot.term,
                  (unsigned long long)st.snapshot.index);
    struct raft_progress_info pi[RAFT_MAX_MEMBERS];
    size_t n = raft_get_progress(r, pi, RAFT_MAX_MEMBERS);
    /* stable order for the golden file */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (pi[j].id < pi[i].id) {
                struct raft_progress_info t = pi[i];
                pi[i] = pi[j];
                pi[j] = t;
            }
    for (size_t i = 0; i < n; i++)
        sc_buf_printf(env->out, "%llu: %s match=%llu next=%llu%s%s inflight=%u\n",
                      (unsigned long long)pi[i].id, pi[i].state, (unsigned long long)pi[i].match,
                      (unsigned long long)pi[i].next, pi[i].learner ? " learner" : "",
                      pi[i].recent_active ? " active" : "", pi[i].inflight);
}

static void cmd_applied(struct env *env, raft_id_t id)
{
    struct cl_node *n = &env->c.nodes[id];
    struct sc_buf b = {0};
    sc_buf_printf(env->out, "applied index %llu\n", (unsigned long long)n->sm_index);
    for (size_t i = 0; i < n->sm.n; i++) {
        struct raft_entry e = cl_ent_view(&n->sm.v[i]);
        sc_buf_reset(&b);
        raft_entry_format(&e, &b);
        sc_buf_printf(env->out, "%.*s\n", (int)b.len, (char *)b.data);
    }
    sc_buf_free(&b);
}

static void cmd_compact(struct env *env, raft_id_t id, raft_index_t index)
{
    struct sc_error e = {0};
    int r = cl_compact(&env->c, id, index, &e);
    if (r < 0)
        sc_buf_printf(env->out, "compact: %s (%s)\n", err_name(r), e.msg);
    else
        cmd_raft_log(env, id);
}

static void cmd_conf_change(struct env *env, raft_id_t id, int argc, char **argv)
{
    struct raft_conf_change cc = {0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "joint") == 0) {
            cc.transition = RAFT_CC_JOINT_IMPLICIT;
            continue;
        }
        if (strcmp(argv[i], "explicit") == 0) {
            cc.transition = RAFT_CC_JOINT_EXPLICIT;
            continue;
        }
        enum raft_cc_type t = argv[i][0] == 'v'   ? RAFT_CC_ADD_VOTER
                              : argv[i][0] == 'l' ? RAFT_CC_ADD_LEARNER
                                                  : RAFT_CC_REMOVE;
        if (cc.n < RAFT_MAX_MEMBERS)
            cc.items[cc.n++] = (struct raft_cc_item){.type = t, .id = num(argv[i] + 1)};
    }
    int r = raft_propose_conf_change(env->c.nodes[id].r, &cc, NULL);
    if (r < 0)
        sc_buf_printf(env->out, "propose-conf-change: %s\n", err_name(r));
}

static void run_line(struct env *env, char *line)
{
    struct cluster *c = &env->c;
    char *argv[MAX_ARGS];
    int argc = split(line, argv);
    if (argc == 0)
        return;
    const char *cmd = argv[0];
    raft_id_t ids[CL_MAX_NODES];
    size_t n_ids = 0;
    int r = 0;
    if (strcmp(cmd, "add-nodes") == 0) {
        cmd_add_nodes(env, argc, argv);
    } else if (strcmp(cmd, "log-level") == 0 && argc == 2) {
        c->trace = strcmp(argv[1], "none") != 0;
        sc_buf_printf(env->out, "ok\n");
    } else if (strcmp(cmd, "raft-state") == 0) {
        cmd_raft_state(env);
    } else if (strcmp(cmd, "stabilize") == 0) {
        cl_stabilize(c);
    } else if (strcmp(cmd, "heal") == 0) {
        cl_heal(c);
        sc_buf_printf(env->out, "ok\n");
    } else if (strcmp(cmd, "drop") == 0) {
        raft_id_t from = argc == 3 ? num(argv[1]) : 0, to = argc == 3 ? num(argv[2]) : 0;
        for (size_t i = 0; i < c->n_net;) {
            if (from && (c->net[i].from != from || c->net[i].to != to)) {
                i++;
                continue;
            }
            cl_print_frame(c, &c->net[i], " DROPPED");
            cl_drop_at(c, i);
        }
    } else if (strcmp(cmd, "deliver-msgs") == 0 || strcmp(cmd, "partition") == 0 ||
               strcmp(cmd, "process-ready") == 0 || strcmp(cmd, "tick-election") == 0 ||
               strcmp(cmd, "tick-heartbeat") == 0 || strcmp(cmd, "tick") == 0) {
        unsigned ticks = 0;
        for (int i = 1; i < argc; i++) {
            if (strncmp(argv[i], "n=", 2) == 0)
                ticks = (unsigned)num(argv[i] + 2);
            else if ((ids[n_ids] = node_arg(env, argv[i])) != 0)
                n_ids++;
        }
        if (strcmp(cmd, "deliver-msgs") == 0) {
            cl_deliver(c, ids, n_ids);
        } else if (strcmp(cmd, "partition") == 0) {
            cl_partition(c, ids, n_ids);
            sc_buf_printf(env->out, "ok\n");
        } else if (strcmp(cmd, "process-ready") == 0) {
            for (size_t i = 0; i < n_ids; i++)
                if (!cl_process_ready(c, ids[i]))
                    sc_buf_printf(env->out, "> %llu no Ready\n", (unsigned long long)ids[i]);
        } else {
            unsigned max = 0;
            for (size_t i = 0; i < n_ids; i++) {
                struct cl_node *nd = &c->nodes[ids[i]];
                unsigned t = strcmp(cmd, "tick-election") == 0    ? nd->cfg.election_ticks
                             : strcmp(cmd, "tick-heartbeat") == 0 ? nd->cfg.heartbeat_ticks
                                                                  : ticks;
                max = MAX(max, t);
            }
            for (unsigned k = 0; k < max; k++)
                for (size_t i = 0; i < n_ids; i++)
                    cl_tick(c, ids[i], 1);
            if (!c->trace)
                sc_buf_printf(env->out, "ok\n");
        }
    } else if (argc >= 2) {
        raft_id_t id = node_arg(env, argv[1]);
        if (!id)
            return;
        struct raft *rf = cl_raft(c, id);
        if (strcmp(cmd, "restart") == 0) {
            if (rf)
                sc_buf_printf(env->out, "%llu is up\n", (unsigned long long)id);
            else
                cl_boot(c, &c->nodes[id]);
            return;
        }
        if (!rf) {
            sc_buf_printf(env->out, "%llu is down\n", (unsigned long long)id);
            return;
        }
        if (strcmp(cmd, "campaign") == 0) {
            r = raft_campaign(rf);
        } else if (strcmp(cmd, "propose") == 0 && argc == 3) {
            r = raft_propose(rf, argv[2], strlen(argv[2]), NULL);
        } else if (strcmp(cmd, "propose-conf-change") == 0) {
            cmd_conf_change(env, id, argc, argv);
        } else if (strcmp(cmd, "read-index") == 0 && argc == 3) {
            r = raft_read_index(rf, num(argv[2]));
        } else if (strcmp(cmd, "transfer-leadership") == 0 && argc == 3) {
            r = raft_transfer_leader(rf, num(argv[2]));
        } else if (strcmp(cmd, "compact") == 0 && argc == 3) {
            cmd_compact(env, id, num(argv[2]));
        } else if (strcmp(cmd, "crash") == 0) {
            cl_crash(c, id);
            sc_buf_printf(env->out, "ok\n");
        } else if (strcmp(cmd, "raft-log") == 0) {
            cmd_raft_log(env, id);
        } else if (strcmp(cmd, "status") == 0) {
            cmd_status(env, id);
        } else if (strcmp(cmd, "applied") == 0) {
            cmd_applied(env, id);
        } else {
            sc_buf_printf(env->out, "unknown command %s\n", cmd);
        }
        if (r < 0)
            sc_buf_printf(env->out, "%s: %s\n", cmd, err_name(r));
    } else {
        sc_buf_printf(env->out, "unknown command %s\n", cmd);
    }
}

static void run_block(void *ud, const char *input, struct sc_buf *out)
{
    struct env *env = ud;
    env->out = out;
    env->c.out = out;
    char *copy = xstrdup(input);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        run_line(env, line);
    free(copy);
    cl_check(&env->c);
    if (out->len == 0)
        sc_buf_printf(out, "ok\n");
}

static void run_script(const char *name)
{
    const char *dir = getenv("SC_TESTDATA");
    char path[4096];
    snprintf(path, sizeof(path), "%s/raft/testdata/%s.txt", dir ? dir : "tests", name);
    struct env env;
    memset(&env, 0, sizeof(env));
    cl_init(&env.c, NULL, 1);
    int r = golden_run(path, run_block, &env);
    unsigned violations = env.c.violations;
    cl_done(&env.c);
    assert_int_equal(violations, 0);
    assert_int_equal(r, 0);
}

#define SCRIPTS(X)                                                                                 \
    X(election)                                                                                    \
    X(election_5)                                                                                  \
    X(prevote)                                                                                     \
    X(checkquorum)                                                                                 \
    X(replication)                                                                                 \
    X(backtrack)                                                                                   \
    X(snapshot)                                                                                    \
    X(figure8)                                                                                     \
    X(confchange)                                                                                  \
    X(transfer)                                                                                    \
    X(read_index)                                                                                  \
    X(crash_restart)

#define X_TEST(name)                                                                               \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        run_script(#name);                                                                         \
    }
SCRIPTS(X_TEST)
#undef X_TEST

/* Every script in testdata must be listed above (a forgotten one never runs). */
static void test_all_scripts_listed(void **state)
{
    static const char *const names[] = {
#define X_NAME(name) #name ".txt",
        SCRIPTS(X_NAME)
#undef X_NAME
    };
    const char *dir = getenv("SC_TESTDATA");
    char path[4096];
    snprintf(path, sizeof(path), "%s/raft/testdata", dir ? dir : "tests");
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 4, ".txt") != 0)
            continue;
        bool found = false;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
            found |= strcmp(names[i], de->d_name) == 0;
        if (!found)
            fprintf(stderr, "unlisted script %s\n", de->d_name);
        assert_true(found);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
#define X_ENTRY(name) cmocka_unit_test(test_##name),
        SCRIPTS(X_ENTRY)
#undef X_ENTRY
            cmocka_unit_test(test_all_scripts_listed),
    };
    return sc_test_main(tests, argc, argv);
}
