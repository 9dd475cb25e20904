/*
 * endpoints.c: a Deployment's Endpoints objects from its ready Instances
 * (endpoints.h for the rules).
 */
#include "sched/endpoints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

json_t *sched_endpoint_of(const json_t *in)
{
    const json_t *st = json_object_get(in, "status");
    const char *addr = json_string_value(json_array_get(json_object_get(st, "addresses"), 0));
    const json_t *spec = json_object_get(in, "spec");
    if (!json_is_true(json_object_get(st, "ready")) || !addr)
        return NULL;
    const char *node = json_string_value(json_object_get(spec, "node"));
    const char *rev = json_string_value(json_object_get(spec, "revision"));
    return json_pack("{s:s, s:s, s:s}", "node", node ? node : "", "address", addr, "revision",
                     rev ? rev : "");
}

bool sched_exposes(const json_t *d)
{
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(json_object_get(d, "spec"), "ports"), i, p)
    {
        if (json_is_object(json_object_get(p, "expose")))
            return true;
    }
    return false;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *sched_endpoints(const json_t *d, const json_t *ready)
{
    json_t *out = json_object();
    const char *dep = json_string_value(json_object_get(json_object_get(d, "metadata"), "name"));
    const json_t *ports = json_object_get(json_object_get(d, "spec"), "ports");
    const json_t *weights =
        json_object_get(json_object_get(json_object_get(d, "status"), "rollout"), "weights");
    if (!dep)
        return out;
    /* instance names, sorted: the list's order is part of its bytes */
    size_t n = json_object_size(ready), k = 0;
    const char **names = xcalloc(n ? n : 1, sizeof(*names));
    const char *iname;
    json_t *iv;
    json_object_foreach((json_t *)ready, iname, iv) names[k++] = iname;
    qsort(names, n, sizeof(*names), str_cmp);
    size_t i;
    const json_t *p;
    json_array_foreach(ports, i, p)
    {
        const json_t *expose = json_object_get(p, "expose");
        if (!json_is_object(expose))
            continue;
        const char *pname = json_string_value(json_object_get(p, "name"));
        json_int_t cport = json_integer_value(json_object_get(p, "container"));
        char name[160];
        if (pname)
            snprintf(name, sizeof(name), "%s-%s", dep, pname);
        else
            snprintf(name, sizeof(name), "%s-%lld", dep, (long long)cport);
        json_t *port = json_pack("{s:I, s:s}", "container", cport, "protocol",
                                 json_string_value(json_object_get(p, "protocol"))
                                     ? json_string_value(json_object_get(p, "protocol"))
                                     : "tcp");
        if (pname)
            json_object_set_new(port, "name", json_string(pname));
        json_t *list = json_array();
        for (size_t j = 0; j < n; j++) {
            const json_t *e = json_object_get(ready, names[j]);
            const char *rev = json_string_value(json_object_get(e, "revision"));
            const json_t *w = rev ? json_object_get(weights, rev) : NULL;
            json_array_append_new(
                list,
                json_pack("{s:s, s:O, s:O, s:I, s:O, s:I, s:b}", "instance", names[j], "node",
                          json_object_get(e, "node"), "address", json_object_get(e, "address"),
                          "port", cport, "revision", json_object_get(e, "revision"), "weight",
                          json_is_integer(w) ? json_integer_value(w) : (json_int_t)100, "draining",
                          0));
        }
        json_object_set_new(out, name,
                            json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s, s:o, s:O, s:o}}",
                                      "kind", "Endpoints", "apiVersion", "v1", "metadata", "name",
                                      name, "labels", "deployment", dep, "spec", "deployment", dep,
                                      "port", port, "expose", expose, "endpoints", list));
    }
    free(names);
    return out;
}
