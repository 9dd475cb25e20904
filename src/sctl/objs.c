/*
 * objs.c: what the object verbs (apply, get, describe, delete, scale) share: the
 * kinds and the words that name them on the command line (kubectl's plural,
 * singular and short names), API paths, lists with a label selector, field
 * getters over the JSON objects of docs/api.md, and kubectl's AGE column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/util.h"
#include "sctl/sctl.h"

const struct sctl_kind sctl_kinds[] = {
    {"deployments", "Deployment", "deployment", "deploy"},
    {"instances", "Instance", "instance", "inst"},
    {"nodes", "Node", "node", "no"},
    {"revisions", "Revision", "revision", "rev"},
    {"assignments", "Assignment", "assignment", "asg"},
    {"endpoints", "Endpoints", "endpoints", "ep"},
    {"tokens", "BootstrapToken", "token", "tok"},
    {NULL, NULL, NULL, NULL},
};

const struct sctl_kind *sctl_kind_find(const char *word)
{
    for (const struct sctl_kind *k = sctl_kinds; word && k->plural; k++)
        if (!strcasecmp(word, k->plural) || !strcasecmp(word, k->singular) ||
            !strcasecmp(word, k->short_name) || !strcasecmp(word, k->kind))
            return k;
    fprintf(stderr, "sctl: no kind '%s'; known: ", word ? word : "");
    for (const struct sctl_kind *k = sctl_kinds; k->plural; k++)
        fprintf(stderr, "%s%s (%s)", k == sctl_kinds ? "" : ", ", k->plural, k->short_name);
    fputc('\n', stderr);
    return NULL;
}

const struct sctl_kind *sctl_kind_by_kind(const char *kind)
{
    for (const struct sctl_kind *k = sctl_kinds; kind && k->plural; k++)
        if (!strcmp(kind, k->kind))
            return k;
    return NULL;
}

void sctl_obj_path(struct sc_buf *b, const struct sctl_kind *k, const char *name)
{
    sc_buf_printf(b, "/v1/%s", k->plural);
    if (name) {
        sc_buf_put_u8(b, '/');
        sc_client_escape(b, name, 0);
    }
    sc_buf_put_u8(b, 0);
}

int sctl_obj_list(struct sctl *s, const struct sctl_kind *k, const char *selector, json_t **items,
                  json_t **answer)
{
    struct sc_buf p = {0};
    sctl_obj_path(&p, k, NULL);
    if (selector && *selector) {
        p.len--; /* the NUL */
        sc_buf_printf(&p, "?selector=");
        sc_client_escape(&p, selector, 0);
        sc_buf_put_u8(&p, 0);
    }
    json_t *list = NULL;
    int code = sctl_call(s, "GET", (const char *)p.data, NULL, &list);
    sc_buf_free(&p);
    if (code == 0) {
        json_t *it = json_object_get(list, "items");
        *items = json_is_array(it) ? json_incref(it) : json_array();
        if (answer)
            *answer = json_incref(list);
    }
    json_decref(list);
    return code;
}

const json_t *sctl_at(const json_t *o, const char *path)
{
    char part[128];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(part, sizeof(part), "%.*s", (int)MIN(n, sizeof(part) - 1), path);
        o = json_object_get(o, part);
        path += n + (path[n] == '.');
    }
    return o;
}

const char *sctl_at_str(const json_t *o, const char *path)
{
    return json_string_value(sctl_at(o, path));
}

long long sctl_at_int(const json_t *o, const char *path)
{
    return (long long)json_integer_value(sctl_at(o, path));
}

void sctl_age(const json_t *o, char out[24])
{
    const char *c = sctl_at_str(o, "metadata.created");
    struct tm tm = {0};
    const char *end = c ? strptime(c, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end) {
        snprintf(out, 24, "<unknown>");
        return;
    }
    long long d = (long long)time(NULL) - (long long)timegm(&tm);
    d = d < 0 ? 0 : d;
    if (d < 120)
        snprintf(out, 24, "%llds", d);
    else if (d < 600)
        snprintf(out, 24, "%lldm%llds", d / 60, d % 60);
    else if (d < 3 * 3600)
        snprintf(out, 24, "%lldm", d / 60);
    else if (d < 8 * 3600)
        snprintf(out, 24, "%lldh%lldm", d / 3600, d / 60 % 60);
    else if (d < 48 * 3600)
        snprintf(out, 24, "%lldh", d / 3600);
    else
        snprintf(out, 24, "%lldd", d / 86400);
}
