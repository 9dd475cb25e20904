/*
 * tls_put.c: put throughput of one sctld through the shared API client
 * (src/client, libcurl), over http:// or over https:// with a client
 * certificate, so the cost of mutual TLS on the API listener is measured with
 * the client sctl and slet use (issue 7: "TLS costs at most 15 % of put
 * throughput").  kvbench and wrk cannot: kvbench speaks plain sockets and wrk
 * cannot present a client certificate.
 *
 * Each of N threads owns one sc_client (one keep-alive connection) and PUTs
 * 16-byte keys with 256-byte values for D seconds; it prints one table row:
 * requests, errors, puts/s, and the p50/p99 latency of a put.
 *
 *   tls_put URL THREADS SECONDS [CA CERT KEY]
 *   e.g. tls_put https://127.0.0.1:7400 16 10 pki/ca.crt pki/admin.crt pki/admin.key
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "client/client.h"

#define MAX_SAMPLES (1 << 20)

struct worker {
    pthread_t tid;
    int id;
    struct sc_client_opts o;
    double end;
    unsigned long ok, errors;
    double *lat; /* seconds per put */
    size_t nlat;
};

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct sc_client *c = NULL;
    struct sc_error e = {0};
    if (sc_client_new(&w->o, &c, &e) < 0) {
        fprintf(stderr, "tls_put: %s\n", e.msg);
        w->errors++;
        return NULL;
    }
    char value[256];
    memset(value, 'v', sizeof(value));
    struct sc_reply r = {0};
    for (unsigned long i = 0; now_sec() < w->end; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/kv/b%02d-%09lu", w->id % 100, i % 1000000000ul);
        double t0 = now_sec();
        int rc = sc_client_do(c, "PUT", path, value, sizeof(value), &r, &e);
        double dt = now_sec() - t0;
        if (rc < 0 || r.status != 200) {
            if (w->errors++ == 0)
                fprintf(stderr, "tls_put: %s\n", rc < 0 ? e.msg : r.message);
            continue;
        }
        w->ok++;
        if (w->nlat < MAX_SAMPLES)
            w->lat[w->nlat++] = dt;
    }
    sc_reply_free(&r);
    sc_client_free(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 7) {
        fprintf(stderr, "usage: tls_put URL THREADS SECONDS [CA CERT KEY]\n");
        return 2;
    }
    int n = atoi(argv[2]);
    double secs = atof(argv[3]);
    if (n < 1 || n > 256 || secs <= 0) {
        fprintf(stderr, "tls_put: THREADS 1..256, SECONDS > 0\n");
        return 2;
    }
    struct worker *w = xcalloc((size_t)n, sizeof(*w));
    double start = now_sec();
    for (int i = 0; i < n; i++) {
        w[i].id = i;
        w[i].o = (struct sc_client_opts){.server = argv[1], .timeout_ms = 30000};
        if (argc == 7)
            w[i].o.ca = argv[4], w[i].o.cert = argv[5], w[i].o.key = argv[6];
        w[i].end = start + secs;
        w[i].lat = xcalloc(MAX_SAMPLES, sizeof(double));
        pthread_create(&w[i].tid, NULL, run, &w[i]);
    }
    unsigned long ok = 0, errors = 0;
    size_t nlat = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].tid, NULL);
        ok += w[i].ok, errors += w[i].errors, nlat += w[i].nlat;
    }
    double wall = now_sec() - start;
    double *all = xcalloc(nlat + 1, sizeof(double));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, w[i].lat, w[i].nlat * sizeof(double));
        k += w[i].nlat;
        free(w[i].lat);
    }
    qsort(all, nlat, sizeof(double), cmp_double);
    double p50 = nlat ? all[nlat / 2] : 0, p99 = nlat ? all[(size_t)((double)nlat * 0.99)] : 0;
    printf("| url | threads | s | puts | errors | puts/s | p50 ms | p99 ms |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    printf("| %s | %d | %.1f | %lu | %lu | %.0f | %.2f | %.2f |\n", argv[1], n, wall, ok, errors,
           (double)ok / wall, p50 * 1e3, p99 * 1e3);
    free(all);
    free(w);
    return errors ? 1 : 0;
}
