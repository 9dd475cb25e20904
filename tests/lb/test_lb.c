/*
 * test_lb.c: the load-balancer providers against REAL nginx and HAProxy processes
 * on loopback ports, with real HTTP backends forked by the test (lbt.c).  Each
 * case runs in its own process (harness.h); its teardown ends every process the
 * case started by PID (the LB through lb_provider_free, the backends by kill),
 * also when an assertion failed.
 *
 * What they prove: a reconcile brings up the listener and requests reach every
 * endpoint and never a removed one; weights split 1,000 requests 90/10 within 3%;
 * a draining endpoint gets no new request; an unchanged reconcile does not reload
 * (the master's workers keep their PIDs); an nginx reload that cannot take effect
 * (its new port held by the test) is detected and reported, and the old config
 * stays live on disk and in service; provider errors are retried with backoff
 * and surfaced in status; HAProxy changes servers, weights and drain without a
 * reload, grows its slots with one, recovers from its stats socket vanishing,
 * and a restart from its config file serves the same set.
 *
 * Needs nginx, nginx's stream module and haproxy (scripts/deps.sh); a case whose
 * binary is missing is skipped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "harness.h"
#include "lb/lb.h"
#include "lbt.h"

#define MAXB 8

struct fx {
    char dir[64];
    struct lb_provider *p;
    pid_t backend[MAXB];
    char name[MAXB][16];
    int port[MAXB];
    struct lb_endpoint ep[MAXB];
    int listen_port;
    int held_fd;
    pid_t extra_pid; /* an LB process the test started itself */
};
static struct fx F;

static bool have(const char *exe)
{
    char *argv[] = {"sh", "-c", NULL, NULL};
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null", exe);
    argv[2] = cmd;
    return lb_run(argv, NULL, 0) == 0;
}

static void start_fx(const struct lb_provider_ops *ops, int nb, const struct lb_policy *pol)
{
    if (!have(ops->name))
        skip();
    memset(&F, 0, sizeof F);
    F.held_fd = -1;
    assert_int_equal(lbt_tmpdir(F.dir, sizeof F.dir), 0);
    struct lb_options o = {.dir = F.dir, .confirm_timeout_usec = 3 * USEC_PER_SEC};
    if (pol)
        o.policy = *pol;
    struct sc_error e = {0};
    int r = lb_provider_new(ops, &o, &F.p, &e);
    if (r < 0)
        fail_msg("lb_provider_new: %s", e.msg);
    for (int i = 0; i < nb; i++) {
        snprintf(F.name[i], sizeof F.name[i], "b%d", i);
        F.port[i] = lb_free_port();
        assert_true(F.port[i] > 0);
        F.backend[i] = lbt_backend_start(F.name[i], F.port[i]);
        assert_true(F.backend[i] > 0);
        snprintf(F.ep[i].addr, sizeof F.ep[i].addr, "127.0.0.1");
        F.ep[i].port = F.port[i];
        F.ep[i].weight = 1;
    }
    F.listen_port = lb_free_port();
    assert_true(F.listen_port > 0);
}

static int teardown(void **state)
{
    lb_provider_free(F.p); /* ends the LB by its PID */
    F.p = NULL;
    if (F.extra_pid > 0)
        lb_kill_wait(F.extra_pid, 3000);
    for (int i = 0; i < MAXB; i++)
        lbt_backend_stop(F.backend[i]);
    if (F.held_fd >= 0)
        close(F.held_fd);
    if (getenv("SC_KEEP"))
        fprintf(stderr, "kept %s\n", F.dir);
    else
        lbt_rm_rf(F.dir);
    return 0;
}

static struct lb_service svc_http(int port)
{
    return (struct lb_service){.name = "web",
                               .listen_addr = "127.0.0.1",
                               .listen_port = port,
                               .proto = LB_PROTO_HTTP,
                               .health_path = "/healthz"};
}

static int reconcile(const struct lb_service *s, const struct lb_endpoint *eps, size_t n,
                     struct lb_status *st)
{
    struct sc_error e = {0};
    int r = lb_reconcile(F.p, s, eps, n, st, &e);
    if (r < 0)
        fprintf(stderr, "lb_reconcile: %d %s\n", r, e.msg);
    return r;
}

/* Sends n requests through the LB; counts per backend index (-1: other/failed). */
static void count(int port, int n, int *hits, int *failed)
{
    *failed = 0;
    for (int i = 0; i < MAXB; i++)
        hits[i] = 0;
    for (int k = 0; k < n; k++) {
        char name[64] = "";
        int r = lbt_ask(port, name, sizeof name);
        int who = -1;
        for (int i = 0; i < MAXB && r == 200; i++)
            if (F.name[i][0] && strcmp(name, F.name[i]) == 0)
                who = i;
        if (who < 0)
            (*failed)++;
        else
            hits[who]++;
    }
}

/* ---- every endpoint, never a removed one ----------------------------------- */

static void serves_every_endpoint(const struct lb_provider_ops *ops)
{
    start_fx(ops, 3, NULL);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 3, &st), 1);
    assert_int_equal(st.generation, 1);
    assert_int_equal(st.last_error, 0);
    assert_true(ops->pid(F.p) > 0);
    int hits[MAXB], failed;
    count(F.listen_port, 300, hits, &failed);
    assert_int_equal(failed, 0);
    for (int i = 0; i < 3; i++)
        assert_true(hits[i] >= 90); /* round robin: 100 each */

    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1); /* b2 removed */
    assert_int_equal(st.generation, 2);
    count(F.listen_port, 200, hits, &failed);
    assert_int_equal(failed, 0);
    assert_int_equal(hits[2], 0);
    assert_true(hits[0] >= 90 && hits[1] >= 90);

    assert_int_equal(reconcile(&s, &F.ep[2], 1, &st), 1); /* only b2 */
    count(F.listen_port, 50, hits, &failed);
    assert_int_equal(failed, 0);
    assert_int_equal(hits[2], 50);
}
static void nginx_serves_every_endpoint(void **state)
{
    serves_every_endpoint(&lb_nginx_ops);
}
static void haproxy_serves_every_endpoint(void **state)
{
    serves_every_endpoint(&lb_haproxy_ops);
    struct lb_status st;
    struct lb_service s = svc_http(F.listen_port);
    assert_int_equal(reconcile(&s, &F.ep[2], 1, &st), 0);
    assert_int_equal(st.reloads, 1); /* the start; every change went through the runtime API */
    assert_int_equal(st.runtime_updates, 2);
}

/* ---- weights ------------------------------------------------------------------ */

static void weights_split(const struct lb_provider_ops *ops)
{
    start_fx(ops, 2, NULL);
    F.ep[0].weight = 90;
    F.ep[1].weight = 10;
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    int hits[MAXB], failed;
    count(F.listen_port, 1000, hits, &failed);
    fprintf(stderr, "%s 90/10: %d/%d failed %d\n", ops->name, hits[0], hits[1], failed);
    assert_int_equal(failed, 0);
    assert_in_range(hits[1], 70, 130); /* 10% +- 3% of 1,000 */
    assert_in_range(hits[0], 870, 930);

    F.ep[0].weight = 50; /* and back to even */
    F.ep[1].weight = 50;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    /* HAProxy's roundrobin lets a server whose weight grew catch up first (measured:
     * 351/649 over the first 1,000 after 90/10 -> 50/50, then 500/500), so the split
     * is checked over the second 1,000 requests; docs/lb.md */
    count(F.listen_port, 1000, hits, &failed);
    fprintf(stderr, "%s 50/50: %d/%d failed %d\n", ops->name, hits[0], hits[1], failed);
    assert_int_equal(failed, 0);
    count(F.listen_port, 1000, hits, &failed);
    fprintf(stderr, "%s 50/50 again: %d/%d failed %d\n", ops->name, hits[0], hits[1], failed);
    assert_int_equal(failed, 0);
    assert_in_range(hits[1], 470, 530);
}
static void nginx_weights_split(void **state)
{
    weights_split(&lb_nginx_ops);
}
static void haproxy_weights_split(void **state)
{
    weights_split(&lb_haproxy_ops);
}

/* ---- drain ----------------------------------------------------------------- */

static void drain(const struct lb_provider_ops *ops)
{
    start_fx(ops, 2, NULL);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    int hits[MAXB], failed;
    count(F.listen_port, 100, hits, &failed);
    assert_true(hits[1] >= 40);
    F.ep[1].draining = true;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    count(F.listen_port, 200, hits, &failed);
    assert_int_equal(failed, 0);
    assert_int_equal(hits[1], 0);
    assert_int_equal(hits[0], 200);
    F.ep[1].draining = false; /* back in */
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    count(F.listen_port, 100, hits, &failed);
    assert_true(hits[1] >= 40);
}
static void nginx_drain(void **state)
{
    drain(&lb_nginx_ops);
}
static void haproxy_drain_without_reload(void **state)
{
    drain(&lb_haproxy_ops);
    assert_int_equal(F.p->status.reloads, 1);
}

/* ---- idempotence: nothing changed, nothing reloaded ------------------------------ */

static void unchanged_no_reload(const struct lb_provider_ops *ops)
{
    start_fx(ops, 3, NULL);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 3, &st), 1);
    pid_t master = ops->pid(F.p), w1[16], w2[16];
    size_t n1 = lb_children(master, w1, 16);
    assert_true(n1 >= 1);
    uint64_t reloads = st.reloads;
    struct lb_endpoint rev[3] = {F.ep[2], F.ep[0], F.ep[1]}; /* same set, other order */
    for (int i = 0; i < 5; i++)
        assert_int_equal(reconcile(&s, i % 2 ? rev : F.ep, 3, &st), 0);
    assert_int_equal(st.reloads, reloads);
    assert_int_equal(st.generation, 1);
    assert_int_equal(st.desired_generation, 1);
    assert_int_equal(ops->pid(F.p), master);
    size_t n2 = lb_children(master, w2, 16);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++)
        assert_int_equal(w1[i], w2[i]);
    /* and a change does reload nginx (new workers), as a control */
    F.ep[0].weight = 3;
    assert_int_equal(reconcile(&s, F.ep, 3, &st), 1);
    if (ops == &lb_nginx_ops) {
        usleep(300000); /* the old worker exits gracefully */
        n2 = lb_children(master, w2, 16);
        assert_true(n2 >= 1);
        for (size_t i = 0; i < n2; i++)
            for (size_t j = 0; j < n1; j++)
                assert_int_not_equal(w1[j], w2[i]);
    }
}
static void nginx_unchanged_no_reload(void **state)
{
    unchanged_no_reload(&lb_nginx_ops);
}
static void haproxy_unchanged_no_reload(void **state)
{
    unchanged_no_reload(&lb_haproxy_ops);
}

/* ---- an nginx reload that cannot take effect ---------------------------------- */

static int hold_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    return fd;
}

static void nginx_reload_port_clash_detected(void **state)
{
    struct lb_policy pol = {.attempts = 1, .backoff_min_usec = 10 * USEC_PER_MSEC};
    start_fx(&lb_nginx_ops, 2, &pol);
    F.p->opt.confirm_timeout_usec = 4 * USEC_PER_SEC; /* nginx retries bind() for 2.5 s */
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    int p2 = lb_free_port();
    F.held_fd = hold_port(p2);
    struct lb_service s2 = svc_http(p2);
    struct sc_error e = {0};
    int r = lb_reconcile(F.p, &s2, F.ep, 2, &st, &e);
    fprintf(stderr, "clash: %d %s\n", r, st.last_error_msg);
    assert_int_equal(r, -EADDRINUSE);
    assert_int_equal(st.last_error, -EADDRINUSE);
    assert_non_null(strstr(st.last_error_msg, "did not take effect"));
    assert_non_null(strstr(st.last_error_msg, "Address already in use"));
    assert_int_equal(st.generation, 1);
    assert_int_equal(st.desired_generation, 2);
    assert_true(st.last_error_usec > 0);
    /* the old config is still the live one, on disk and in service */
    char path[128], *conf = NULL, want[64];
    snprintf(path, sizeof path, "%s/nginx.conf", F.dir);
    assert_int_equal(lb_read_file(path, &conf, NULL), 0);
    snprintf(want, sizeof want, "listen 127.0.0.1:%d;", F.listen_port);
    assert_non_null(strstr(conf, want));
    assert_non_null(strstr(conf, "generation 1:"));
    free(conf);
    int hits[MAXB], failed;
    count(F.listen_port, 20, hits, &failed);
    assert_int_equal(failed, 0);
    /* the port freed, the next attempt (after the backoff) takes effect */
    close(F.held_fd);
    F.held_fd = -1;
    usleep(50000);
    assert_int_equal(reconcile(&s2, F.ep, 2, &st), 1);
    assert_int_equal(st.generation, 2);
    assert_int_equal(st.last_error, 0);
    count(p2, 20, hits, &failed);
    assert_int_equal(failed, 0);
}

/* ---- provider errors: retried with backoff, surfaced, recovered ------------------- */

static void nginx_errors_retried_and_surfaced(void **state)
{
    struct lb_policy pol = {.attempts = 3, .backoff_min_usec = 20 * USEC_PER_MSEC};
    start_fx(&lb_nginx_ops, 1, &pol);
    struct lb_service s = svc_http(F.listen_port);
    s.listen_addr = "192.0.2.1"; /* not on this host: nginx cannot bind it */
    struct lb_status st;
    struct sc_error e = {0};
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    int r = lb_reconcile(F.p, &s, F.ep, 1, &st, &e);
    usec_t took = now_usec(CLOCK_MONOTONIC) - t0;
    fprintf(stderr, "bad addr: %d %s (%llu ms)\n", r, st.last_error_msg,
            (unsigned long long)took / 1000);
    assert_true(r < 0);
    assert_int_equal(st.retries, 3);
    assert_int_equal(st.failures, 3);
    assert_int_equal(st.generation, 0);
    assert_non_null(strstr(st.last_error_msg, "Cannot assign requested address"));
    assert_true(took >= 60 * USEC_PER_MSEC); /* slept 20 + 40 between the 3 attempts */
    assert_int_equal(lb_nginx_ops.pid(F.p), 0);
    /* at once again: the backoff (80 ms now) holds it back without an attempt */
    assert_int_equal(lb_reconcile(F.p, &s, F.ep, 1, &st, &e), -EAGAIN);
    assert_int_equal(st.failures, 3);
    assert_true(st.next_attempt_usec > now_usec(CLOCK_MONOTONIC));
    usleep(100000);
    assert_true(lb_reconcile(F.p, &s, F.ep, 1, &st, &e) < 0);
    assert_int_equal(st.retries, 6);
    /* a new desired state (the fix) is tried at once, and succeeds */
    s.listen_addr = "127.0.0.1";
    assert_int_equal(reconcile(&s, F.ep, 1, &st), 1);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.failures, 6);
    assert_int_equal(st.last_error, 0);
    assert_int_equal(st.generation, st.desired_generation);
    int hits[MAXB], failed;
    count(F.listen_port, 10, hits, &failed);
    assert_int_equal(hits[0], 10);
}

static void haproxy_socket_gone_recovers(void **state)
{
    struct lb_policy pol = {.attempts = 1, .backoff_min_usec = 20 * USEC_PER_MSEC};
    start_fx(&lb_haproxy_ops, 3, &pol);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/admin.sock", F.dir);
    assert_int_equal(unlink(sock), 0);
    struct sc_error e = {0};
    assert_true(lb_reconcile(F.p, &s, F.ep, 3, &st, &e) < 0);
    fprintf(stderr, "socket gone: %s\n", st.last_error_msg);
    assert_non_null(strstr(st.last_error_msg, "stats socket"));
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.generation, 1);
    usleep(30000);
    assert_int_equal(reconcile(&s, F.ep, 3, &st), 1); /* reloads, rebinding the socket */
    assert_int_equal(st.last_error, 0);
    assert_int_equal(st.failures, 1);
    assert_true(st.reloads >= 2);
    int hits[MAXB], failed;
    count(F.listen_port, 90, hits, &failed);
    assert_int_equal(failed, 0);
    assert_true(hits[2] >= 25);
    /* and the runtime API works again: drain b0 without a reload */
    uint64_t reloads = st.reloads;
    F.ep[0].draining = true;
    assert_int_equal(reconcile(&s, F.ep, 3, &st), 1);
    assert_int_equal(st.reloads, reloads);
    count(F.listen_port, 40, hits, &failed);
    assert_int_equal(hits[0], 0);
}

/* ---- HAProxy: slots grow with one reload; a restart from the file loses nothing -- */

static void haproxy_slots_grow(void **state)
{
    start_fx(&lb_haproxy_ops, 6, NULL);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    assert_int_equal(reconcile(&s, F.ep, 4, &st), 1); /* fits the 4 slots */
    assert_int_equal(st.reloads, 1);
    assert_int_equal(reconcile(&s, F.ep, 6, &st), 1); /* 8 slots: one reload */
    assert_int_equal(st.reloads, 2);
    int hits[MAXB], failed;
    count(F.listen_port, 120, hits, &failed);
    assert_int_equal(failed, 0);
    for (int i = 0; i < 6; i++)
        assert_true(hits[i] >= 15);
}

static void haproxy_restart_from_file(void **state)
{
    start_fx(&lb_haproxy_ops, 4, NULL);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    assert_int_equal(reconcile(&s, F.ep, 3, &st), 1);
    /* runtime only: b0 out, b3 in, b1 weighted 3, b2 draining */
    struct lb_endpoint now[3] = {F.ep[1], F.ep[2], F.ep[3]};
    now[0].weight = 3;
    now[1].draining = true;
    assert_int_equal(reconcile(&s, now, 3, &st), 1);
    assert_int_equal(st.reloads, 1);
    lb_haproxy_ops.stop(F.p); /* ended by its PID */
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%s/haproxy.cfg", F.dir);
    char log[128];
    snprintf(log, sizeof log, "%s/restart.log", F.dir);
    char *argv[] = {"haproxy", "-W", "-db", "-f", cfg, NULL};
    F.extra_pid = lb_spawn(argv, log);
    assert_true(F.extra_pid > 0);
    int hits[MAXB] = {0}, failed = 0;
    for (int i = 0; i < 200; i++) { /* until it listens */
        char name[32];
        if (lbt_ask(F.listen_port, name, sizeof name) == 200)
            break;
        usleep(10000);
    }
    count(F.listen_port, 400, hits, &failed);
    assert_int_equal(failed, 0);
    assert_int_equal(hits[0], 0);       /* removed */
    assert_int_equal(hits[2], 0);       /* draining */
    assert_in_range(hits[1], 290, 310); /* 3 : 1 */
    assert_in_range(hits[3], 90, 110);
}

/* ---- tcp (stream) services ----------------------------------------------------- */

static void tcp_service(const struct lb_provider_ops *ops)
{
    start_fx(ops, 2, NULL);
    struct lb_service s = {.name = "db",
                           .listen_addr = "127.0.0.1",
                           .listen_port = F.listen_port,
                           .proto = LB_PROTO_TCP};
    struct lb_status st;
    if (ops == &lb_nginx_ops && access("/usr/lib/nginx/modules/ngx_stream_module.so", R_OK) < 0)
        skip();
    assert_int_equal(reconcile(&s, F.ep, 2, &st), 1);
    int hits[MAXB], failed;
    count(F.listen_port, 100, hits, &failed);
    assert_int_equal(failed, 0);
    assert_true(hits[0] >= 40 && hits[1] >= 40);
    assert_int_equal(reconcile(&s, F.ep, 1, &st), 1);
    count(F.listen_port, 50, hits, &failed);
    assert_int_equal(hits[0], 50);
}
static void nginx_tcp_service(void **state)
{
    tcp_service(&lb_nginx_ops);
}
static void haproxy_tcp_service(void **state)
{
    tcp_service(&lb_haproxy_ops);
}

/* ---- validation: nothing starts for a bad desired state ------------------------- */

static void invalid_desired_state_starts_nothing(void **state)
{
    start_fx(&lb_nginx_ops, 1, NULL);
    struct lb_service s = svc_http(F.listen_port);
    struct lb_status st;
    struct sc_error e = {0};
    F.ep[0].weight = 257;
    assert_int_equal(lb_reconcile(F.p, &s, F.ep, 1, &st, &e), -SC_E_INVALID);
    assert_non_null(strstr(e.msg, "weight 257"));
    F.ep[0].weight = 1;
    s.health_path = "/x; return 200";
    assert_int_equal(lb_reconcile(F.p, &s, F.ep, 1, &st, &e), -SC_E_INVALID);
    s = svc_http(F.listen_port);
    s.name = "Web Site";
    assert_int_equal(lb_reconcile(F.p, &s, F.ep, 1, &st, &e), -SC_E_INVALID);
    struct lb_endpoint two[2] = {F.ep[0], F.ep[0]};
    s = svc_http(F.listen_port);
    assert_int_equal(lb_reconcile(F.p, &s, two, 2, &st, &e), -SC_E_INVALID);
    assert_int_equal(lb_nginx_ops.pid(F.p), 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.desired_generation, 0);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(invalid_desired_state_starts_nothing, teardown),
        cmocka_unit_test_teardown(nginx_serves_every_endpoint, teardown),
        cmocka_unit_test_teardown(haproxy_serves_every_endpoint, teardown),
        cmocka_unit_test_teardown(nginx_weights_split, teardown),
        cmocka_unit_test_teardown(haproxy_weights_split, teardown),
        cmocka_unit_test_teardown(nginx_drain, teardown),
        cmocka_unit_test_teardown(haproxy_drain_without_reload, teardown),
        cmocka_unit_test_teardown(nginx_unchanged_no_reload, teardown),
        cmocka_unit_test_teardown(haproxy_unchanged_no_reload, teardown),
        cmocka_unit_test_teardown(nginx_reload_port_clash_detected, teardown),
        cmocka_unit_test_teardown(nginx_errors_retried_and_surfaced, teardown),
        cmocka_unit_test_teardown(haproxy_socket_gone_recovers, teardown),
        cmocka_unit_test_teardown(haproxy_slots_grow, teardown),
        cmocka_unit_test_teardown(haproxy_restart_from_file, teardown),
        cmocka_unit_test_teardown(nginx_tcp_service, teardown),
        cmocka_unit_test_teardown(haproxy_tcp_service, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return sc_test_main(tests, argc, argv);
}
