/*
 * lb.c: the generic half of every load-balancer provider: validation, the
 * idempotence check, the rate limit, retries with backoff and the status report.
 * Providers (lb_nginx.c, lb_haproxy.c) only render, apply and confirm; keeping
 * these rules here means every provider behaves the same under a flapping
 * endpoint set or a failing load balancer.
 *
 * Design
 * ------
 * A provider serves one service.  lb.c remembers two hashes of the canonical
 * desired state (the service and its endpoints sorted by address and port):
 * desired_hash (last seen) and applied_hash (last applied and confirmed).
 *
 *              desired == applied
 *     +---------------------------------+
 *     v                                 |
 *  [IN SYNC] --desired changes--> [PENDING] --apply ok--> [IN SYNC]
 *                                  |    ^
 *                       apply fails|    |next_attempt reached (or desired changes)
 *                                  v    |
 *                                [BACKOFF]
 *
 * Invariants
 *  1. The provider's apply hook is called only when desired_hash != applied_hash:
 *     a reconcile of an unchanged set never reloads or touches the LB.
 *  2. desired_generation grows by one each time the desired hash changes, never
 *     otherwise; status.generation is the desired_generation of the last apply
 *     the provider confirmed, so generation == desired_generation <=> IN SYNC.
 *  3. No apply starts before status.next_attempt_usec (CLOCK_MONOTONIC): after a
 *     success that is last_apply + min_interval (the rate limit); after a failure
 *     last_apply + backoff, where backoff doubles from backoff_min up to
 *     backoff_max and returns to backoff_min on success.  A new desired state
 *     lifts a backoff (the change may be the fix) but not the rate limit.
 *  4. One lb_reconcile() makes at most policy.attempts provider calls, sleeping
 *     the backoff between them; a validation error makes none.
 *  5. Every failed call is counted in status.retries (reset on success) and
 *     status.failures (never reset), with its code, message and time; a success
 *     clears last_error but not failures.
 *  6. lb.c never logs and never touches the LB process itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lb/lb.h"

#define DEFAULT_ATTEMPTS    3
#define DEFAULT_BACKOFF_MIN (20 * USEC_PER_MSEC)
#define DEFAULT_BACKOFF_MAX (5 * USEC_PER_SEC)
#define DEFAULT_CONFIRM     (3 * USEC_PER_SEC)

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > LB_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool addr_ok(const char *s)
{
    if (!s[0])
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F') ||
              *c == '.' || *c == ':'))
            return false;
    return true;
}

static bool path_ok(const char *s)
{
    if (s[0] != '/' || strlen(s) > 200)
        return false;
    for (const char *c = s; *c; c++)
        if (*c <= ' ' || *c == '"' || *c == '\'' || *c == ';' || *c == '{' || *c == '}' ||
            *c == '\\' || *c == '#' || *c >= 127)
            return false;
    return true;
}

int lb_validate(const struct lb_service *svc, const struct lb_endpoint *eps, size_t n,
                struct sc_error *e)
{
    if (!svc || !name_ok(svc->name))
        return sc_error_set(e, -SC_E_INVALID, "name", "service name must match [a-z0-9_-]{1,%d}",
                            LB_NAME_MAX);
    if (svc->listen_addr && !addr_ok(svc->listen_addr))
        return sc_error_set(e, -SC_E_INVALID, "listen_addr", "not an IP literal: %s",
                            svc->listen_addr);
    if (svc->listen_port < 1 || svc->listen_port > 65535)
        return sc_error_set(e, -SC_E_INVALID, "listen_port", "port %d out of 1..65535",
                            svc->listen_port);
    if (svc->proto != LB_PROTO_HTTP && svc->proto != LB_PROTO_TCP)
        return sc_error_set(e, -SC_E_INVALID, "proto", "protocol must be http or tcp");
    if (svc->health_path && !path_ok(svc->health_path))
        return sc_error_set(e, -SC_E_INVALID, "health_path",
                            "health path must be /... without "
                            "spaces, quotes, ; { } # or \\");
    if (n > LB_MAX_ENDPOINTS)
        return sc_error_set(e, -SC_E_INVALID, "endpoints", "%zu endpoints, the limit is %d", n,
                            LB_MAX_ENDPOINTS);
    for (size_t i = 0; i < n; i++) {
        const struct lb_endpoint *x = &eps[i];
        if (!memchr(x->addr, 0, sizeof x->addr) || !addr_ok(x->addr))
            return sc_error_set(e, -SC_E_INVALID, "endpoints", "endpoint %zu: bad address", i);
        if (x->port < 1 || x->port > 65535)
            return sc_error_set(e, -SC_E_INVALID, "endpoints", "endpoint %zu: port %d", i, x->port);
        if (x->weight < 0 || x->weight > LB_WEIGHT_MAX)
            return sc_error_set(e, -SC_E_INVALID, "endpoints",
                                "endpoint %zu: weight %d out of 0..%d", i, x->weight,
                                LB_WEIGHT_MAX);
        for (size_t j = 0; j < i; j++)
            if (eps[j].port == x->port && strcmp(eps[j].addr, x->addr) == 0)
                return sc_error_set(e, -SC_E_INVALID, "endpoints", "endpoint %s:%d twice", x->addr,
                                    x->port);
    }
    return 0;
}

static int ep_cmp(const void *a, const void *b)
{
    const struct lb_endpoint *x = a, *y = b;
    int c = strcmp(x->addr, y->addr);
    return c ? c : (x->port > y->port) - (x->port < y->port);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "\1", s ? strlen(s) + 1 : 1);
}

/* The canonical desired state's hash: order of endpoints does not matter. */
static uint64_t desired_hash(const struct lb_service *svc, const struct lb_endpoint *eps, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    h = fnv_str(h, svc->name);
    h = fnv_str(h, svc->listen_addr);
    h = fnv_str(h, svc->health_path);
    int v[2] = {svc->listen_port, (int)svc->proto};
    h = fnv(h, v, sizeof v);
    struct lb_endpoint *s = xmemdup(eps, n * sizeof *eps);
    qsort(s, n, sizeof *s, ep_cmp);
    for (size_t i = 0; i < n; i++) {
        h = fnv_str(h, s[i].addr);
        int w[3] = {s[i].port, s[i].weight, s[i].draining};
        h = fnv(h, w, sizeof w);
    }
    free(s);
    return h ? h : 1;
}

int lb_provider_new(const struct lb_provider_ops *ops, const struct lb_options *opt,
                    struct lb_provider **ret, struct sc_error *e)
{
    if (!opt || !opt->dir || !opt->dir[0])
        return sc_error_set(e, -SC_E_INVALID, "dir", "a provider needs its own directory");
    int r = sc_mkdir_p(opt->dir);
    if (r < 0)
        return sc_error_set(e, r, "dir", "cannot create %s: %s", opt->dir, strerror(-r));
    struct lb_provider *p = xcalloc(1, sizeof *p);
    p->ops = ops;
    p->opt = *opt;
    p->opt.dir = xstrdup(opt->dir);
    p->opt.exe = opt->exe ? xstrdup(opt->exe) : NULL;
    struct lb_policy *pol = &p->opt.policy;
    if (!pol->attempts)
        pol->attempts = DEFAULT_ATTEMPTS;
    if (!pol->backoff_min_usec)
        pol->backoff_min_usec = DEFAULT_BACKOFF_MIN;
    if (!pol->backoff_max_usec)
        pol->backoff_max_usec = DEFAULT_BACKOFF_MAX;
    if (!p->opt.confirm_timeout_usec)
        p->opt.confirm_timeout_usec = DEFAULT_CONFIRM;
    p->backoff_usec = pol->backoff_min_usec;
    r = ops->init(p, e);
    if (r < 0) {
        free((char *)p->opt.dir);
        free((char *)p->opt.exe);
        free(p);
        return r;
    }
    *ret = p;
    return 0;
}

void lb_provider_free(struct lb_provider *p)
{
    if (!p)
        return;
    p->ops->stop(p);
    p->ops->done(p);
    free((char *)p->opt.dir);
    free((char *)p->opt.exe);
    free(p);
}

static void sleep_usec(usec_t u)
{
    struct timespec ts = {.tv_sec = (time_t)(u / USEC_PER_SEC),
                          .tv_nsec = (long)(u % USEC_PER_SEC) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int lb_reconcile(struct lb_provider *p, const struct lb_service *svc, const struct lb_endpoint *eps,
                 size_t n, struct lb_status *st, struct sc_error *e)
{
    struct lb_status *s = &p->status;
    const struct lb_policy *pol = &p->opt.policy;
    int r = lb_validate(svc, eps, n, e);
    if (r >= 0 && p->service[0] && strcmp(p->service, svc->name) != 0)
        r = sc_error_set(e, -SC_E_INVALID, "name", "this provider serves service %s, not %s",
                         p->service, svc->name);
    if (r < 0) {
        if (st)
            *st = *s;
        return r; /* invariant 4: no provider call */
    }

    uint64_t h = desired_hash(svc, eps, n);
    if (h != p->desired_hash) { /* invariant 2 */
        p->desired_hash = h;
        s->desired_generation++;
        if (s->last_error) /* invariant 3: a new desired state lifts the backoff */
            s->next_attempt_usec = p->last_apply_usec + pol->min_interval_usec;
    }
    if (h == p->applied_hash) { /* invariant 1 */
        if (st)
            *st = *s;
        return 0;
    }
    usec_t now = now_usec(CLOCK_MONOTONIC);
    if (now < s->next_attempt_usec) {
        if (st)
            *st = *s;
        return sc_error_set(e, -EAGAIN, NULL, "next attempt in %llu ms%s%s",
                            (unsigned long long)(s->next_attempt_usec - now) / 1000,
                            s->last_error ? " after: " : " (rate limit)",
                            s->last_error ? s->last_error_msg : "");
    }
    snprintf(p->service, sizeof p->service, "%s", svc->name);

    usec_t wait = 0;
    for (unsigned a = 0; a < pol->attempts; a++) {
        if (a > 0)
            sleep_usec(wait);
        struct lb_apply_result res = {0};
        struct sc_error pe = {0};
        r = p->ops->apply(p, svc, eps, n, s->desired_generation, &res, &pe);
        p->last_apply_usec = now_usec(CLOCK_MONOTONIC);
        if (res.reloaded)
            s->reloads++;
        if (r >= 0) {
            if (res.runtime_update)
                s->runtime_updates++;
            p->applied_hash = h;
            p->backoff_usec = pol->backoff_min_usec;
            s->generation = s->desired_generation;
            s->applied_usec = now_usec(CLOCK_REALTIME);
            s->last_error = 0;
            s->last_error_msg[0] = 0;
            s->retries = 0;
            s->next_attempt_usec = p->last_apply_usec + pol->min_interval_usec;
            if (st)
                *st = *s;
            return 1;
        }
        s->retries++;
        s->failures++;
        s->last_error = r;
        snprintf(s->last_error_msg, sizeof s->last_error_msg, "%s: %.200s", p->ops->name,
                 pe.msg[0] ? pe.msg : sc_err_message(r));
        s->last_error_usec = now_usec(CLOCK_REALTIME);
        wait = p->backoff_usec;
        s->next_attempt_usec = p->last_apply_usec + wait;
        p->backoff_usec = MIN(wait * 2, pol->backoff_max_usec);
    }
    if (st)
        *st = *s;
    return sc_error_set(e, r, NULL, "%s", s->last_error_msg);
}
