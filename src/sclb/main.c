/*
 * sclb: the load balancer programmer.  It follows the Endpoints objects of the
 * API (docs/api.md, written by the leader's endpoints loop from the ready
 * instances) and makes one load balancer per exposed port serve exactly their
 * endpoints through src/lb (nginx or HAProxy, the port's `expose.provider`),
 * then reports what it applied in the Endpoints' status.
 *
 *   sclb --server URL --dir DIR [--listen-addr 0.0.0.0] [--provider nginx]
 *
 * Why a process of its own and not a loop inside sctld (docs/lb.md): applying a
 * change blocks (nginx -t, a reload, waiting for the new generation to answer
 * and the old workers to leave: 50-140 ms, seconds when a provider retries);
 * inside sctld that would stall the Raft loop of the leader, whose election
 * timeout is 100-200 ms.  As a client of the API it also runs where the load
 * balancer runs (an edge node), like an ingress controller.
 *
 * Design:
 *  1. List /v1/endpoints, reconcile every object, then watch from the list's
 *     revision + 1; every ADDED/MODIFIED object is reconciled, a DELETED one
 *     stops its load balancer (by PID, through lb_provider_free).  A lost watch
 *     lists again.  A progress line retries what failed (at least every 10 s).
 *  2. Only ports with `expose.via: lb` and a `listen` port are served; others are
 *     reported in status as not served, with the reason.
 *  3. The status is written only when it changes (its own write comes back as a
 *     MODIFIED event and must not loop): {provider, listen, generation (the
 *     Endpoints' metadata.generation it serves), endpoints (count), applied
 *     (RFC 3339), error?, retries, reloads}.  A status write never overwrites a
 *     newer spec: /status keeps the stored spec.
 *  4. One provider per Endpoints object (src/lb serves one service per process);
 *     a change of provider or listen port replaces it.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "client/client.h"
#include "lb/lb.h"

struct served {
    char name[LB_NAME_MAX + 1];
    char provider[16];
    int listen;
    struct lb_provider *p;
    json_t *last_status; /* what we last wrote */
    json_t *obj;         /* the Endpoints object last seen */
    struct served *next;
};

struct sclb {
    struct sc_client *api;   /* requests */
    struct sc_client *watch; /* the stream */
    const char *dir, *listen_addr, *default_provider;
    struct served *all;
    int64_t rev;
    bool failed_any;
};

/* SIGTERM/SIGINT: while the watch waits inside libcurl (a quiet stream hears a
 * progress line only every 10 s) the handler jumps out of it; the curl handle
 * is then never used again, and the load balancers are stopped from main.  At
 * any other moment it only sets quit, which the loop checks. */
static volatile sig_atomic_t quit, in_stream;
static sigjmp_buf stream_jmp;

static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
    if (in_stream) {
        in_stream = 0;
        siglongjmp(stream_jmp, 1);
    }
}

static struct served *find(struct sclb *b, const char *name)
{
    for (struct served *s = b->all; s; s = s->next)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

static void forget(struct sclb *b, const char *name)
{
    for (struct served **pp = &b->all; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) {
            struct served *s = *pp;
            *pp = s->next;
            /* logged first: name may point into s (or into s->obj) */
            log_info("msg=\"stopped serving\" endpoints=%s", name);
            lb_provider_free(s->p); /* stops its process by PID */
            json_decref(s->last_status);
            json_decref(s->obj);
            free(s);
            return;
        }
}

static void iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes status (consumed) unless it equals the last one written. */
static void write_status(struct sclb *b, struct served *s, const char *name, json_t *st)
{
    json_t **last = s ? &s->last_status : NULL;
    if (last && *last && json_equal(*last, st)) {
        json_decref(st);
        return;
    }
    json_t *body = json_pack("{s:O}", "status", st);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct sc_buf p = {0};
    sc_buf_printf(&p, "/v1/endpoints/");
    sc_client_escape(&p, name, 0);
    sc_buf_printf(&p, "/status");
    sc_buf_put_u8(&p, 0);
    struct sc_reply r = {0};
    struct sc_error e = {0};
    int rc = sc_client_do(b->api, "PUT", (const char *)p.data, text, strlen(text), &r, &e);
    if (rc < 0 || r.status != 200)
        log_warn("msg=\"status not written\" endpoints=%s err=\"%s\"", name,
                 rc < 0 ? e.msg : r.message);
    else if (last) {
        json_decref(*last);
        *last = json_incref(st);
    }
    sc_reply_free(&r);
    sc_buf_free(&p);
    free(text);
    json_decref(st);
}

/* Serves one Endpoints object (rule 2-4). */
static void reconcile(struct sclb *b, json_t *o)
{
    const char *name = json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
    const json_t *spec = json_object_get(o, "spec");
    const json_t *ex = json_object_get(spec, "expose");
    if (!name)
        return;
    const char *via = json_string_value(json_object_get(ex, "via"));
    const char *prov = json_string_value(json_object_get(ex, "provider"));
    int listen = (int)json_integer_value(json_object_get(ex, "listen"));
    prov = prov ? prov : b->default_provider;
    struct served *s = find(b, name);
    if (!via || strcmp(via, "lb") != 0 || !listen ||
        (strcmp(prov, "nginx") != 0 && strcmp(prov, "haproxy") != 0)) {
        if (s)
            forget(b, name);
        char why[160];
        snprintf(why, sizeof(why), "%s",
                 !via || strcmp(via, "lb") ? "expose.via is not lb"
                 : !listen                 ? "expose.listen is not set"
                                           : "provider not served by sclb (nginx, haproxy)");
        json_t *st = json_pack("{s:b, s:s}", "served", 0, "error", why);
        struct served tmp = {0};
        write_status(b, s ? NULL : &tmp, name, st);
        json_decref(tmp.last_status);
        return;
    }
    if (s && (strcmp(s->provider, prov) != 0 || s->listen != listen)) {
        forget(b, name); /* rule 4: a new provider or port is a new load balancer */
        s = NULL;
    }
    struct sc_error e = {0};
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        snprintf(s->name, sizeof(s->name), "%s", name);
        snprintf(s->provider, sizeof(s->provider), "%s", prov);
        s->listen = listen;
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", b->dir, name);
        struct lb_options opt = {.dir = dir};
        if (lb_provider_new(!strcmp(prov, "haproxy") ? &lb_haproxy_ops : &lb_nginx_ops, &opt, &s->p,
                            &e) < 0) {
            log_error("msg=\"provider not made\" endpoints=%s err=\"%s\"", name, e.msg);
            free(s);
            return;
        }
        s->next = b->all;
        b->all = s;
    }
    json_t *was = s->obj; /* o may be s->obj itself (a retry) */
    s->obj = json_incref(o);
    json_decref(was);
    const json_t *list = json_object_get(spec, "endpoints");
    bool truncated = false;
    size_t n = json_array_size(list), k = 0;
    struct lb_endpoint *eps = xcalloc(n ? n : 1, sizeof(*eps));
    size_t i;
    const json_t *ep;
    json_array_foreach(list, i, ep)
    {
        const char *addr = json_string_value(json_object_get(ep, "address"));
        if (!addr)
            continue;
        if (k >= LB_MAX_ENDPOINTS) { /* said in the status below, not dropped silently */
            log_warn("msg=\"too many endpoints\" endpoints=%s n=%zu served=%d", name, n,
                     LB_MAX_ENDPOINTS);
            truncated = true;
            break;
        }
        snprintf(eps[k].addr, sizeof(eps[k].addr), "%s", addr);
        eps[k].port = (int)json_integer_value(json_object_get(ep, "port"));
        eps[k].weight = json_is_integer(json_object_get(ep, "weight"))
                            ? (int)json_integer_value(json_object_get(ep, "weight"))
                            : 100;
        eps[k].draining = json_is_true(json_object_get(ep, "draining"));
        k++;
    }
    const char *proto = json_string_value(json_object_get(ex, "protocol"));
    struct lb_service svc = {
        .name = name,
        .listen_addr = b->listen_addr,
        .listen_port = listen,
        .proto = proto && !strcmp(proto, "http") ? LB_PROTO_HTTP : LB_PROTO_TCP,
    };
    struct lb_status st = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = lb_reconcile(s->p, &svc, eps, k, &st, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(eps);
    if (r < 0 && r != -EAGAIN) {
        b->failed_any = true;
        log_warn("msg=\"not applied\" endpoints=%s err=\"%s\"", name, e.msg);
    } else if (r == 1) {
        log_info("msg=\"applied\" endpoints=%s endpoints_n=%zu generation=%llu call_ms=%.1f", name,
                 k, (unsigned long long)st.generation,
                 (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    } else if (r == -EAGAIN) {
        b->failed_any = true; /* backing off: tried again at the next event or progress line */
    }
    /* rule 3: what is served, from which spec generation */
    json_t *out = json_pack("{s:b, s:s, s:i, s:I, s:I, s:I, s:I}", "served", r >= 0, "provider",
                            prov, "listen", listen, "endpoints", (json_int_t)k, "lbGeneration",
                            (json_int_t)st.generation, "retries", (json_int_t)st.retries, "reloads",
                            (json_int_t)st.reloads);
    if (r >= 0 && truncated) {
        char why[160];
        snprintf(why, sizeof(why),
                 "%zu endpoints; a load balancer takes at most %d: the first %zu are served", n,
                 LB_MAX_ENDPOINTS, k);
        json_object_set_new(out, "error", json_string(why));
    }
    if (r >= 0) {
        json_object_set(out, "generation",
                        json_object_get(json_object_get(o, "metadata"), "generation"));
        char ts[32];
        iso_now(ts);
        if (r == 1 || !s->last_status || !json_object_get(s->last_status, "applied"))
            json_object_set_new(out, "applied", json_string(ts));
        else
            json_object_set(out, "applied", json_object_get(s->last_status, "applied"));
    } else {
        json_object_set_new(out, "error",
                            json_string(st.last_error_msg[0] ? st.last_error_msg : e.msg));
        if (s->last_status && json_object_get(s->last_status, "generation"))
            json_object_set(out, "generation", json_object_get(s->last_status, "generation"));
    }
    write_status(b, s, name, out);
}

/* The list: reconcile all, forget what is no longer there; the revision to watch from. */
static int list_all(struct sclb *b)
{
    struct sc_reply r = {0};
    struct sc_error e = {0};
    int rc = sc_client_do(b->api, "GET", "/v1/endpoints", NULL, 0, &r, &e);
    if (rc < 0 || r.status != 200) {
        log_warn("msg=\"list failed\" err=\"%s\"", rc < 0 ? e.msg : r.message);
        sc_reply_free(&r);
        return -1;
    }
    json_t *j = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    sc_reply_free(&r);
    b->rev = json_integer_value(json_object_get(j, "revision"));
    json_t *items = json_object_get(j, "items");
    for (struct served *s = b->all, *next; s; s = next) {
        next = s->next;
        bool present = false;
        size_t i;
        json_t *o;
        json_array_foreach(items, i, o) present |= !strcmp(
            s->name, json_string_value(json_object_get(json_object_get(o, "metadata"), "name")));
        if (!present)
            forget(b, s->name);
    }
    size_t i;
    json_t *o;
    b->failed_any = false;
    json_array_foreach(items, i, o) reconcile(b, o);
    json_decref(j);
    return 0;
}

static int on_line(void *arg, const char *line, size_t len)
{
    struct sclb *b = arg;
    in_stream = 0; /* our own code from here: a signal only sets quit */
    if (quit)
        return 1;
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!j)
        return 0;
    json_int_t rev = json_integer_value(json_object_get(j, "revision"));
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *o = json_object_get(j, "object");
    if (json_object_get(j, "error")) {
        json_decref(j);
        return 1; /* ended by the server: list again */
    }
    if (type && !strcmp(type, "DELETED")) {
        forget(b, json_string_value(json_object_get(json_object_get(o, "metadata"), "name")));
    } else if (type) {
        log_debug("msg=\"event\" type=%s generation=%lld", type,
                  (long long)json_integer_value(
                      json_object_get(json_object_get(o, "metadata"), "generation")));
        reconcile(b, o);
    } else if (json_object_get(j, "progress") && b->failed_any) {
        /* retry what failed: every object we serve, once */
        b->failed_any = false;
        /* each with a reference of its own: reconcile may replace s and its obj */
        json_t *objs = json_array();
        for (struct served *s = b->all; s; s = s->next)
            if (s->obj)
                json_array_append(objs, s->obj);
        size_t i;
        json_t *o2;
        json_array_foreach(objs, i, o2) reconcile(b, o2);
        json_decref(objs);
    }
    if (rev > b->rev)
        b->rev = rev;
    json_decref(j);
    if (quit)
        return 1;
    in_stream = 1; /* back to waiting in libcurl */
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"listen-addr", required_argument, NULL, 'l'},
        {"provider", required_argument, NULL, 'p'},
        {"log-level", required_argument, NULL, 'L'},
        {"ca", required_argument, NULL, 'a'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct sclb b = {.listen_addr = NULL, .default_provider = "nginx"};
    const char *server = getenv("SCTL_SERVER");
    const char *ca = NULL, *cert = NULL, *key = NULL; /* https:// controllers (mutual TLS) */
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            server = optarg;
            break;
        case 'd':
            b.dir = optarg;
            break;
        case 'l':
            b.listen_addr = optarg;
            break;
        case 'p':
            b.default_provider = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'L': {
            int l = log_parse_level(optarg);
            if (l < 0) {
                fprintf(stderr, "sclb: --log-level: debug, info, warn or error\n");
                return 2;
            }
            log_set_level((enum log_level)l);
            break;
        }
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: sclb --server URL --dir DIR [--listen-addr IP] [--provider "
                    "nginx|haproxy] [--log-level L]\n"
                    "            [--ca FILE --cert FILE --key FILE]   (https:// controllers)\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!server || !b.dir) {
        fprintf(stderr, "sclb: --server and --dir are required\n");
        return 2;
    }
    if (strcmp(b.default_provider, "nginx") != 0 && strcmp(b.default_provider, "haproxy") != 0) {
        fprintf(stderr, "sclb: --provider: nginx or haproxy, got '%s'\n", b.default_provider);
        return 2;
    }
    struct sc_error e = {0};
    if (!strncmp(server, "https://", 8) && (!ca || !cert || !key)) {
        fprintf(stderr, "sclb: an https:// server needs --ca, --cert and --key (the cluster "
                        "CA and a certificate it signed)\n");
        return 2;
    }
    struct sc_client_opts co = {.server = server, .ca = ca, .cert = cert, .key = key};
    if (sc_client_new(&co, &b.api, &e) < 0 || sc_client_new(&co, &b.watch, &e) < 0) {
        fprintf(stderr, "sclb: %s\n", e.msg);
        return 2;
    }
    if (sc_mkdir_p(b.dir) < 0) {
        fprintf(stderr, "sclb: cannot make %s\n", b.dir);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("msg=\"started\" server=%s dir=%s", server, b.dir);
    volatile bool jumped = false;
    while (!quit) {
        if (list_all(&b) < 0) {
            sleep(1);
            continue;
        }
        char path[96];
        snprintf(path, sizeof(path), "/v1/endpoints?watch=1&rev=%lld", (long long)b.rev + 1);
        struct sc_reply r = {0};
        if (sigsetjmp(stream_jmp, 1) == 0) {
            in_stream = 1;
            if (!quit)
                (void)sc_client_stream(b.watch, path, on_line, &b, &r, &e);
            in_stream = 0;
            sc_reply_free(&r);
        } else {
            jumped = true; /* out of libcurl by the signal: the watch handle is abandoned */
        }
        if (!quit)
            usleep(100 * 1000);
    }
    while (b.all)
        forget(&b, b.all->name);
    sc_client_free(b.api);
    if (!jumped)
        sc_client_free(b.watch);
    log_info("msg=\"stopped\"");
    return 0;
}
