/*
 * lb_bench.c: time from lb_reconcile() of a changed endpoint set to the load
 * balancer serving the new set, for the nginx and HAProxy providers, next to a
 * raw `nginx -s reload` measured the same way in the same run (issue 6: goals
 * 50 ms on HAProxy, 100 ms on nginx; a raw reload was quoted at about 22 ms).
 *
 * Each trial swaps the whole set between two backends (A -> B -> A ...), starts
 * the clock before the change, and a poller thread (a new connection per GET, as
 * fast as it can) notes when a response first comes from the new backend, while
 * reconcile() runs; "call" is how long reconcile() itself took (it returns only
 * after confirming, and HAProxy's checks its config file after the switch).
 * Medians, p90 and max of N trials.
 * Everything runs on loopback; every process is ended by its PID.
 *
 * Usage: lb_bench [N]   (release build: meson setup build-rel --buildtype=release)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "lb/lb.h"
#include "lbt.h"

static int cmp_u(const void *a, const void *b)
{
    usec_t x = *(const usec_t *)a, y = *(const usec_t *)b;
    return (x > y) - (x < y);
}

/* Polls until the LB answers with `want`; returns the time it first did. */
static usec_t wait_for(int port, const char *want, usec_t t0)
{
    for (;;) {
        char name[64] = "";
        if (lbt_ask(port, name, sizeof name) == 200 && strcmp(name, want) == 0)
            return now_usec(CLOCK_MONOTONIC);
        if (now_usec(CLOCK_MONOTONIC) - t0 > 10 * USEC_PER_SEC) {
            fprintf(stderr, "lb_bench: %s never served on %d\n", want, port);
            exit(1);
        }
    }
}

/* The poller: while `want` is set, GETs through `port` and stamps the first answer
 * from it. */
static struct {
    int port;
    _Atomic(const char *) want;
    _Atomic usec_t seen;
    atomic_bool stop;
} P;

static void *poller(void *arg)
{
    while (!atomic_load(&P.stop)) {
        const char *w = atomic_load(&P.want);
        char name[64] = "";
        if (!w || lbt_ask(P.port, name, sizeof name) != 200) {
            if (!w) {
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (strcmp(name, w) == 0 && atomic_load(&P.want) == w) {
            atomic_store(&P.seen, now_usec(CLOCK_MONOTONIC));
            atomic_store(&P.want, NULL);
        }
    }
    return NULL;
}

/* Arms the poller for `want`, runs nothing, returns when it saw it. */
static usec_t seen_after(usec_t t0)
{
    while (atomic_load(&P.want))
        if (now_usec(CLOCK_MONOTONIC) - t0 > 10 * USEC_PER_SEC) {
            fprintf(stderr, "lb_bench: the new set was never served\n");
            exit(1);
        } else {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    return atomic_load(&P.seen) - t0;
}

static void report(const char *what, usec_t *serve, usec_t *call, int n)
{
    qsort(serve, (size_t)n, sizeof *serve, cmp_u);
    printf("%-28s %8.2f %8.2f %8.2f", what, serve[n / 2] / 1000.0, serve[n * 9 / 10] / 1000.0,
           serve[n - 1] / 1000.0);
    if (call) {
        qsort(call, (size_t)n, sizeof *call, cmp_u);
        printf(" %10.2f\n", call[n / 2] / 1000.0);
    } else
        printf(" %10s\n", "-");
}

static void bench_provider(const struct lb_provider_ops *ops, int n, int pa, int pb)
{
    char dir[64];
    if (lbt_tmpdir(dir, sizeof dir) < 0)
        exit(1);
    struct lb_options o = {.dir = dir};
    struct lb_provider *p;
    struct sc_error e = {0};
    if (lb_provider_new(ops, &o, &p, &e) < 0) {
        fprintf(stderr, "lb_bench: %s\n", e.msg);
        exit(1);
    }
    int lport = lb_free_port();
    struct lb_service svc = {.name = "bench",
                             .listen_addr = "127.0.0.1",
                             .listen_port = lport,
                             .proto = LB_PROTO_HTTP,
                             .health_path = "/healthz"};
    struct lb_endpoint ep[2] = {{"127.0.0.1", pa, 1, false}, {"127.0.0.1", pb, 1, false}};
    struct lb_status st;
    if (lb_reconcile(p, &svc, &ep[0], 1, &st, &e) < 0) {
        fprintf(stderr, "lb_bench: %s\n", e.msg);
        exit(1);
    }
    wait_for(lport, "A", now_usec(CLOCK_MONOTONIC));
    usec_t *serve = calloc((size_t)n, sizeof *serve), *call = calloc((size_t)n, sizeof *call);
    for (int i = 0; i < n; i++) {
        int to = (i + 1) % 2; /* A -> B -> A ... */
        P.port = lport;
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        atomic_store(&P.want, to ? "B" : "A");
        if (lb_reconcile(p, &svc, &ep[to], 1, &st, &e) != 1) {
            fprintf(stderr, "lb_bench: %s\n", e.msg);
            exit(1);
        }
        usec_t t1 = now_usec(CLOCK_MONOTONIC);
        serve[i] = seen_after(t0);
        call[i] = t1 - t0;
    }
    char what[64];
    snprintf(what, sizeof what, "%s reconcile (%llu reloads)", ops->name,
             (unsigned long long)st.reloads);
    report(what, serve, call, n);
    free(serve);
    free(call);
    lb_provider_free(p);
    lbt_rm_rf(dir);
}

/* A hand-written nginx config switched with `nginx -s reload`, no confirmation. */
static void bench_raw_nginx(int n, int pa, int pb)
{
    char dir[64], conf[128], pre[80], log[128];
    if (lbt_tmpdir(dir, sizeof dir) < 0)
        exit(1);
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    snprintf(pre, sizeof pre, "%s/", dir);
    snprintf(log, sizeof log, "%s/error.log", dir);
    int lport = lb_free_port();
    char text[1024];
    pid_t master = 0;
    usec_t *serve = calloc((size_t)n, sizeof *serve);
    for (int i = -1; i < n; i++) {
        int to = (i + 1) % 2;
        int len =
            snprintf(text, sizeof text,
                     "daemon off; worker_processes 1; pid %s/nginx.pid; error_log %s;\n"
                     "events {}\nhttp { access_log off; client_body_temp_path %s;\n"
                     "proxy_temp_path %s; upstream u { server 127.0.0.1:%d; }\n"
                     "server { listen 127.0.0.1:%d; location / { proxy_pass http://u; } } }\n",
                     dir, log, dir, dir, to ? pb : pa, lport);
        P.port = lport;
        pid_t old[16];
        size_t nold = master > 0 ? lb_children(master, old, 16) : 0;
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        if (i >= 0)
            atomic_store(&P.want, to ? "B" : "A");
        if (lb_write_file(conf, text, (size_t)len) < 0)
            exit(1);
        if (master == 0) {
            char *argv[] = {"nginx", "-p", pre, "-c", conf, "-e", log, NULL};
            master = lb_spawn(argv, log);
        } else {
            char *argv[] = {"nginx", "-p", pre, "-c", conf, "-e", log, "-s", "reload", NULL};
            if (lb_run(argv, NULL, 0) != 0)
                exit(1);
        }
        if (i >= 0)
            serve[i] = seen_after(t0);
        else
            wait_for(lport, "A", t0);
        /* an old worker still accepting would answer the next trial with the set it
         * switches back to: let this trial's old workers go first */
        lb_wait_gone(old, nold, now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC);
    }
    report("raw nginx -s reload", serve, NULL, n);
    free(serve);
    lb_kill_wait(master, 3000);
    lbt_rm_rf(dir);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 30;
    if (n < 1)
        n = 1;
    signal(SIGPIPE, SIG_IGN);
    int pa = lb_free_port(), pb = lb_free_port();
    pid_t a = lbt_backend_start("A", pa), b = lbt_backend_start("B", pb);
    if (a < 0 || b < 0) {
        fprintf(stderr, "lb_bench: backends did not start\n");
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, poller, NULL);
    printf("endpoint change -> new set served, %d trials (ms)\n", n);
    printf("%-28s %8s %8s %8s %10s\n", "", "median", "p90", "max", "call med");
    bench_raw_nginx(n, pa, pb);
    bench_provider(&lb_nginx_ops, n, pa, pb);
    bench_provider(&lb_haproxy_ops, n, pa, pb);
    atomic_store(&P.stop, true);
    pthread_join(th, NULL);
    lbt_backend_stop(a);
    lbt_backend_stop(b);
    return 0;
}
