/*
 * probe.c: the pure part of slet's health probes (see probe.h): reading a
 * template's `health` into specs with Kubernetes' defaults, and the rule that
 * turns consecutive attempt results into a probe's state.  agent_probe.c runs
 * the attempts; this file decides nothing about time or I/O.
 *
 * The manifest (src/manifest/schema.c) has validated the shape and stores the
 * canonical names (periodMs, timeoutMs, initialDelayMs); the short names are
 * read too, as numbers of milliseconds, so that a template written by hand
 * through the API means the same.
 */
#include "slet/probe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[SLET_PROBE_N] = {"startup", "readiness", "liveness"};

const char *slet_probe_kind_name(enum slet_probe_kind k)
{
    return k < SLET_PROBE_N ? kind_names[k] : "?";
}

void slet_probe_spec_done(struct slet_probe_spec *s)
{
    for (size_t i = 0; i < SLET_PROBE_ARGS && s->argv[i]; i++)
        free(s->argv[i]);
    memset(s, 0, sizeof(*s));
}

/* A duration field in milliseconds: the canonical name or the short one. */
static int get_ms(const json_t *p, const char *canon, const char *shortname, json_int_t def,
                  json_int_t min, usec_t *ret, const char *kind, struct sc_error *e)
{
    const json_t *v = json_object_get(p, canon);
    if (!v)
        v = json_object_get(p, shortname);
    json_int_t ms = v ? json_integer_value(v) : def;
    if ((v && !json_is_integer(v)) || ms < min || ms > 3600 * 1000)
        return sc_error_set(e, -SC_E_INVALID, kind, "health.%s.%s must be %lld..3600000 ms", kind,
                            canon, (long long)min);
    *ret = (usec_t)ms * USEC_PER_MSEC;
    return 0;
}

static int get_count(const json_t *p, const char *name, json_int_t def, unsigned *ret,
                     const char *kind, struct sc_error *e)
{
    const json_t *v = json_object_get(p, name);
    json_int_t n = v ? json_integer_value(v) : def;
    if ((v && !json_is_integer(v)) || n < 1 || n > 1000)
        return sc_error_set(e, -SC_E_INVALID, kind, "health.%s.%s must be 1..1000", kind, name);
    *ret = (unsigned)n;
    return 0;
}

/* A probe port: a number, or the name of a declared port (its container port). */
static int resolve_port(const json_t *template, const json_t *v, int *ret, const char *kind,
                        struct sc_error *e)
{
    if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535) {
        *ret = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        size_t i;
        const json_t *p;
        json_array_foreach(json_object_get(template, "ports"), i, p)
        {
            const char *name = json_string_value(json_object_get(p, "name"));
            json_int_t c = json_integer_value(json_object_get(p, "container"));
            if (name && !strcmp(name, json_string_value(v)) && c >= 1 && c <= 65535) {
                *ret = (int)c;
                return 0;
            }
        }
        return sc_error_set(e, -SC_E_INVALID, kind, "health.%s.port: no port named '%s'", kind,
                            json_string_value(v));
    }
    return sc_error_set(e, -SC_E_INVALID, kind,
                        "health.%s: a port (1..65535 or a declared port's name) is needed", kind);
}

static int parse_one(const json_t *template, const json_t *p, enum slet_probe_kind k,
                     struct slet_probe_spec *s, struct sc_error *e)
{
    const char *kind = kind_names[k];
    const json_t *http = json_object_get(p, "http"), *tcp = json_object_get(p, "tcp"),
                 *exec = json_object_get(p, "exec");
    int r;
    if (!json_is_object(p) || (!!http + !!tcp + !!exec) != 1)
        return sc_error_set(e, -SC_E_INVALID, kind,
                            "health.%s needs exactly one of http, tcp, exec", kind);
    if (http) {
        const char *path = json_string_value(http);
        if (!path || path[0] != '/' || strlen(path) >= sizeof(s->path))
            return sc_error_set(e, -SC_E_INVALID, kind, "health.%s.http must be a path", kind);
        s->type = SLET_PROBE_HTTP;
        snprintf(s->path, sizeof(s->path), "%s", path);
        if ((r = resolve_port(template, json_object_get(p, "port"), &s->port, kind, e)) < 0)
            return r;
    } else if (tcp) {
        s->type = SLET_PROBE_TCP;
        if ((r = resolve_port(template, tcp, &s->port, kind, e)) < 0)
            return r;
    } else {
        size_t n = json_array_size(exec), i;
        const json_t *a;
        if (!n || n > SLET_PROBE_ARGS)
            return sc_error_set(e, -SC_E_INVALID, kind, "health.%s.exec needs 1..%d arguments",
                                kind, SLET_PROBE_ARGS);
        json_array_foreach(exec, i, a) if (!json_is_string(a)) return sc_error_set(
            e, -SC_E_INVALID, kind, "health.%s.exec[%zu] must be a string", kind, i);
        s->type = SLET_PROBE_EXEC;
        json_array_foreach(exec, i, a) s->argv[i] = xstrdup(json_string_value(a));
    }
    if ((r = get_ms(p, "periodMs", "period", 10000, 100, &s->period_usec, kind, e)) < 0 ||
        (r = get_ms(p, "timeoutMs", "timeout", 1000, 1, &s->timeout_usec, kind, e)) < 0 ||
        (r = get_ms(p, "initialDelayMs", "initialDelay", 0, 0, &s->initial_delay_usec, kind, e)) <
            0 ||
        (r = get_count(p, "failureThreshold", 3, &s->failure_threshold, kind, e)) < 0 ||
        (r = get_count(p, "successThreshold", 1, &s->success_threshold, kind, e)) < 0)
        return r;
    if (k != SLET_PROBE_READINESS)
        s->success_threshold = 1; /* as Kubernetes requires for liveness and startup */
    s->set = true;
    return 0;
}

int slet_probe_parse(const json_t *template, struct slet_probe_spec specs[SLET_PROBE_N],
                     struct sc_error *e)
{
    const json_t *health = json_object_get(template, "health");
    memset(specs, 0, sizeof(*specs) * SLET_PROBE_N);
    if (health && !json_is_object(health))
        return sc_error_set(e, -SC_E_INVALID, "health", "health must be an object");
    for (int k = 0; k < SLET_PROBE_N; k++) {
        const json_t *p = json_object_get(health, kind_names[k]);
        if (!p || json_is_null(p))
            continue;
        int r = parse_one(template, p, (enum slet_probe_kind)k, &specs[k], e);
        if (r < 0) {
            for (int j = 0; j <= k; j++)
                slet_probe_spec_done(&specs[j]);
            return r;
        }
    }
    return 0;
}

bool slet_probe_record(struct slet_probe_count *c, bool success, unsigned success_threshold,
                       unsigned failure_threshold)
{
    if (success == c->ok) {
        c->run = 0;
        return false;
    }
    if (++c->run < (success ? success_threshold : failure_threshold))
        return false;
    c->ok = success;
    c->run = 0;
    return true;
}
