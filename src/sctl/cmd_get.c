/*
 * cmd_get.c: `sctl get` and `sctl describe`, the objects of docs/api.md read back
 * the way kubectl shows them.
 *
 *   sctl get KIND [NAME...] [-l SELECTOR]     a table; -o wide adds columns,
 *                                             -o json the server's JSON, -o yaml
 *                                             documents that `sctl apply -f` reads,
 *                                             -o name KIND/NAME lines (completion)
 *   sctl describe KIND [NAME...] [-l SEL]     every field, readable, and for a
 *                                             Deployment or a Node the Assignments
 *                                             and Instances that belong to it
 *
 * KIND is a plural, singular or short name (deployments, deployment, deploy; inst,
 * no, rev, asg).  A node is READY while its heartbeat key /registry/heartbeats/NAME
 * exists (the scheduler's own rule, docs/api.md); one keys-only list reads them all.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "manifest/manifest.h"
#include "sctl/sctl.h"
#include "sctl/yaml_out.h"

#define NONE "<none>"

static const char get_usage[] =
    "usage: sctl get KIND [NAME...] [-l SELECTOR] [-o wide|json|yaml|name]\n"
    "       KIND: deployments (deploy), instances (inst), nodes (no), revisions (rev),\n"
    "             assignments (asg), endpoints (ep); singular forms work too\n"
    "       SELECTOR: app=web, tier!=db, 'env in (prod,staging)', gpu, !gpu (comma = and)\n";
static const char describe_usage[] = "usage: sctl describe KIND [NAME...] [-l SELECTOR]\n";

/* Parses -l/--selector; returns the index of the first positional argument or -1. */
static int parse_sel(int argc, char **argv, const char *usage, const char **sel)
{
    static const struct option opts[] = {
        {"selector", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":l:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            exit(0);
        }
        if (c == '?' || c == ':') {
            sctl_usage("%s: %s option '%s'", argv[0], c == ':' ? "missing value for" : "unknown",
                       argv[optind - 1]);
            fputs(usage, stderr);
            return -1;
        }
        *sel = optarg;
    }
    return optind;
}

static void labels_text(const json_t *o, char *buf, size_t size)
{
    const char *k;
    json_t *v;
    size_t off = 0;
    buf[0] = 0;
    json_object_foreach((json_t *)sctl_at(o, "metadata.labels"), k, v)
    {
        if (off < size)
            off += (size_t)snprintf(buf + off, size - off, "%s%s=%s", off ? "," : "", k,
                                    json_string_value(v) ? json_string_value(v) : "");
    }
    if (!buf[0])
        snprintf(buf, size, NONE);
}

static void join_strings(const json_t *arr, char *buf, size_t size)
{
    size_t off = 0, i;
    json_t *v;
    buf[0] = 0;
    json_array_foreach(arr, i, v) if (off < size) off +=
        (size_t)snprintf(buf + off, size - off, "%s%s", i ? "," : "",
                         json_string_value(v) ? json_string_value(v) : "");
    if (!buf[0])
        snprintf(buf, size, NONE);
}

static const char *str_or_none(const char *s)
{
    return s && *s ? s : NONE;
}

/* The names of the nodes whose heartbeat key exists, as an object used as a set. */
static int heartbeats(struct sctl *s, json_t **set)
{
    static const char prefix[] = "/registry/heartbeats/";
    struct sc_buf p = {0};
    sc_buf_printf(&p, "/v1/kv?keys_only=1&prefix=");
    sc_client_escape(&p, prefix, 0);
    sc_buf_put_u8(&p, 0);
    json_t *j = NULL;
    int code = sctl_call(s, "GET", (const char *)p.data, NULL, &j);
    sc_buf_free(&p);
    if (code)
        return code;
    *set = json_object();
    size_t i;
    json_t *kv;
    json_array_foreach(json_object_get(j, "kvs"), i, kv)
    {
        const char *key = json_string_value(json_object_get(kv, "key"));
        if (key && !strncmp(key, prefix, sizeof(prefix) - 1))
            json_object_set_new(*set, key + sizeof(prefix) - 1, json_true());
    }
    json_decref(j);
    return 0;
}

/* The table of kind k for items; hb (nodes only) is the heartbeat set. */
static void table_of(const struct sctl_kind *k, const json_t *items, bool wide, const json_t *hb,
                     struct sctl_table *t)
{
    const char *kind = k->kind;
    if (!strcmp(kind, "Deployment"))
        wide ? sctl_table_row(t, 7, "NAME", "READY", "ASSIGNED", "AGE", "GENERATION", "IMAGE",
                              "UNSCHEDULABLE")
             : sctl_table_row(t, 4, "NAME", "READY", "ASSIGNED", "AGE");
    else if (!strcmp(kind, "Instance"))
        wide ? sctl_table_row(t, 8, "NAME", "NODE", "PHASE", "READY", "RESTARTS", "AGE", "ADDRESS",
                              "REVISION")
             : sctl_table_row(t, 6, "NAME", "NODE", "PHASE", "READY", "RESTARTS", "AGE");
    else if (!strcmp(kind, "Node"))
        wide ? sctl_table_row(t, 8, "NAME", "READY", "CPU", "MEMORY", "AGE", "SCHEDULABLE",
                              "ADDRESSES", "LABELS")
             : sctl_table_row(t, 5, "NAME", "READY", "CPU", "MEMORY", "AGE");
    else if (!strcmp(kind, "Revision"))
        wide ? sctl_table_row(t, 5, "NAME", "DEPLOYMENT", "GENERATION", "AGE", "IMAGE")
             : sctl_table_row(t, 4, "NAME", "DEPLOYMENT", "GENERATION", "AGE");
    else if (!strcmp(kind, "Endpoints"))
        wide ? sctl_table_row(t, 6, "NAME", "DEPLOYMENT", "EXPOSE", "ENDPOINTS", "AGE", "ADDRESSES")
             : sctl_table_row(t, 5, "NAME", "DEPLOYMENT", "EXPOSE", "ENDPOINTS", "AGE");
    else
        wide ? sctl_table_row(t, 8, "NAME", "DEPLOYMENT", "NODE", "GENERATION", "AGE", "REVISION",
                              "CPU", "MEMORY")
             : sctl_table_row(t, 5, "NAME", "DEPLOYMENT", "NODE", "GENERATION", "AGE");
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        char age[24], a[64], b[64], c[64], d[64], list[512];
        const char *name = sctl_at_str(o, "metadata.name");
        sctl_age(o, age);
        if (!strcmp(kind, "Deployment")) {
            snprintf(a, sizeof(a), "%lld/%lld", sctl_at_int(o, "status.ready"),
                     sctl_at_int(o, "spec.replicas"));
            snprintf(b, sizeof(b), "%lld", sctl_at_int(o, "status.assigned"));
            snprintf(c, sizeof(c), "%lld/%lld", sctl_at_int(o, "status.observedGeneration"),
                     sctl_at_int(o, "metadata.generation"));
            wide ? sctl_table_row(t, 7, name, a, b, age, c, sctl_at_str(o, "spec.image"),
                                  str_or_none(sctl_at_str(o, "status.unschedulable")))
                 : sctl_table_row(t, 4, name, a, b, age);
        } else if (!strcmp(kind, "Instance")) {
            bool has = sctl_at(o, "status") != NULL;
            snprintf(a, sizeof(a), "%s",
                     !has                                       ? NONE
                     : json_is_true(sctl_at(o, "status.ready")) ? "true"
                                                                : "false");
            snprintf(b, sizeof(b), "%lld", sctl_at_int(o, "status.restarts"));
            join_strings(sctl_at(o, "status.addresses"), list, sizeof(list));
            const char *phase = str_or_none(sctl_at_str(o, "status.phase"));
            wide ? sctl_table_row(t, 8, name, sctl_at_str(o, "spec.node"), phase, a, b, age, list,
                                  sctl_at_str(o, "spec.revision"))
                 : sctl_table_row(t, 6, name, sctl_at_str(o, "spec.node"), phase, a, b, age);
        } else if (!strcmp(kind, "Node")) {
            const char *which = sctl_at(o, "spec.allocatable") ? "allocatable" : "capacity";
            char path[64];
            snprintf(path, sizeof(path), "spec.%s.cpuMillis", which);
            manifest_format_cpu(sctl_at_int(o, path), a);
            snprintf(path, sizeof(path), "spec.%s.memoryBytes", which);
            manifest_format_size(sctl_at_int(o, path), b);
            const char *ready = json_object_get(hb, name ? name : "") ? "true" : "false";
            if (wide) {
                char labels[512];
                labels_text(o, labels, sizeof(labels));
                join_strings(sctl_at(o, "spec.addresses"), list, sizeof(list));
                sctl_table_row(t, 8, name, ready, a, b, age,
                               json_is_true(sctl_at(o, "spec.unschedulable")) ? "false" : "true",
                               list, labels);
            } else {
                sctl_table_row(t, 5, name, ready, a, b, age);
            }
        } else if (!strcmp(kind, "Endpoints")) {
            const char *prov = sctl_at_str(o, "spec.expose.provider");
            long long listen = sctl_at_int(o, "spec.expose.listen");
            snprintf(a, sizeof(a), "%s%s%s", str_or_none(sctl_at_str(o, "spec.expose.via")),
                     prov ? "/" : "", prov ? prov : "");
            if (listen)
                snprintf(a + strlen(a), sizeof(a) - strlen(a), ":%lld", listen);
            const json_t *eps = sctl_at(o, "spec.endpoints");
            snprintf(b, sizeof(b), "%zu", json_array_size(eps));
            size_t j, at = 0;
            const json_t *ep;
            list[0] = 0;
            json_array_foreach(eps, j, ep)
            {
                int w = snprintf(list + at, sizeof(list) - at, "%s%s:%lld", j ? "," : "",
                                 json_string_value(json_object_get(ep, "address")),
                                 (long long)json_integer_value(json_object_get(ep, "port")));
                if (w < 0 || (size_t)w >= sizeof(list) - at) {
                    snprintf(list + (at < sizeof(list) - 4 ? at : sizeof(list) - 4), 4, "...");
                    break;
                }
                at += (size_t)w;
            }
            wide ? sctl_table_row(t, 6, name, sctl_at_str(o, "spec.deployment"), a, b, age,
                                  list[0] ? list : NONE)
                 : sctl_table_row(t, 5, name, sctl_at_str(o, "spec.deployment"), a, b, age);
        } else if (!strcmp(kind, "Revision")) {
            snprintf(a, sizeof(a), "%lld", sctl_at_int(o, "spec.generation"));
            wide ? sctl_table_row(t, 5, name, sctl_at_str(o, "spec.deployment"), a, age,
                                  sctl_at_str(o, "spec.template.image"))
                 : sctl_table_row(t, 4, name, sctl_at_str(o, "spec.deployment"), a, age);
        } else {
            snprintf(a, sizeof(a), "%lld", sctl_at_int(o, "spec.generation"));
            manifest_format_cpu(sctl_at_int(o, "spec.cpuMillis"), c);
            manifest_format_size(sctl_at_int(o, "spec.memoryBytes"), d);
            wide ? sctl_table_row(t, 8, name, sctl_at_str(o, "spec.deployment"),
                                  sctl_at_str(o, "spec.node"), a, age,
                                  sctl_at_str(o, "spec.revision"), c, d)
                 : sctl_table_row(t, 5, name, sctl_at_str(o, "spec.deployment"),
                                  sctl_at_str(o, "spec.node"), a, age);
        }
    }
}

/* The objects named (or the list, filtered by sel) into *items; *list_answer gets
 * the server's list object when no name was given.  Stops at the first failure,
 * after printing it (a missing name is exit 4, as kubectl's NotFound). */
static int fetch(struct sctl *s, const struct sctl_kind *k, char **names, int n, const char *sel,
                 json_t **items, json_t **list_answer)
{
    *items = NULL;
    if (list_answer)
        *list_answer = NULL;
    struct sc_buf p = {0};
    int code = 0;
    if (n == 0) {
        code = sctl_obj_list(s, k, sel, items, list_answer);
    } else {
        *items = json_array();
        for (int i = 0; i < n && code == 0; i++) {
            json_t *o = NULL;
            sc_buf_reset(&p);
            sctl_obj_path(&p, k, names[i]);
            code = sctl_call(s, "GET", (const char *)p.data, NULL, &o);
            if (code == 0)
                json_array_append_new(*items, o);
        }
        if (code) {
            json_decref(*items);
            *items = NULL;
        }
    }
    sc_buf_free(&p);
    return code;
}

/* `VERB KIND [NAME...] [-l SEL]`: the arguments, then fetch(); -1 for a usage error
 * (printed), else fetch's exit code. */
static int fetch_args(struct sctl *s, int argc, char **argv, const char *usage,
                      const struct sctl_kind **k, json_t **items, json_t **answer)
{
    const char *sel = NULL;
    int i = parse_sel(argc, argv, usage, &sel);
    if (i < 0)
        return -1;
    if (i >= argc) {
        fputs(usage, stderr);
        return -1;
    }
    if (!(*k = sctl_kind_find(argv[i])))
        return -1;
    int n = argc - i - 1;
    if (n > 0 && sel) {
        sctl_usage("%s: give names or a selector (-l), not both", argv[0]);
        return -1;
    }
    return fetch(s, *k, argv + i + 1, n, sel, items, answer);
}

int sctl_get_main(struct sctl *s, int argc, char **argv)
{
    const struct sctl_kind *k;
    json_t *items = NULL, *answer = NULL, *hb = NULL;
    int code = fetch_args(s, argc, argv, get_usage, &k, &items, &answer);
    if (code < 0)
        return SCTL_EXIT_USAGE;
    if (code == 0 && !strcmp(k->kind, "Node") &&
        (s->output == SCTL_OUT_TABLE || s->output == SCTL_OUT_WIDE))
        code = heartbeats(s, &hb);
    if (code == 0) {
        size_t j;
        json_t *o;
        switch (s->output) {
        case SCTL_OUT_JSON:
            sctl_print_json(answer                        ? answer
                            : json_array_size(items) == 1 ? json_array_get(items, 0)
                                                          : items);
            break;
        case SCTL_OUT_YAML: {
            size_t m = json_array_size(items);
            const json_t **docs = xcalloc(m ? m : 1, sizeof(*docs));
            for (j = 0; j < m; j++)
                docs[j] = json_array_get(items, j);
            if (sctl_yaml_write(stdout, docs, m) < 0) {
                fprintf(stderr, "sctl: cannot write YAML\n");
                code = SCTL_EXIT_UNAVAILABLE;
            }
            free(docs);
            break;
        }
        case SCTL_OUT_NAME:
            json_array_foreach(items, j, o)
                printf("%s/%s\n", k->singular, sctl_at_str(o, "metadata.name"));
            break;
        default:
            if (json_array_size(items) == 0) {
                fprintf(stderr, "No %s found.\n", k->plural);
            } else {
                struct sctl_table t = {0};
                table_of(k, items, s->output == SCTL_OUT_WIDE, hb, &t);
                sctl_table_print(&t);
            }
        }
    }
    json_decref(hb);
    json_decref(items);
    json_decref(answer);
    return code;
}

/* ---- describe --------------------------------------------------------------------- */

static void describe_related(struct sctl *s, const char *title, const char *plural,
                             const char *selector)
{
    const struct sctl_kind *k = sctl_kind_find(plural);
    json_t *items = NULL;
    if (sctl_obj_list(s, k, selector, &items, NULL) != 0)
        return;
    printf("%s:\n", title);
    if (json_array_size(items) == 0) {
        printf("  " NONE "\n");
    } else {
        struct sctl_table t = {.indent = 2};
        table_of(k, items, false, NULL, &t);
        sctl_table_print(&t);
    }
    json_decref(items);
}

static void describe_one(struct sctl *s, const struct sctl_kind *k, const json_t *o,
                         const json_t *hb)
{
    char labels[1024], age[24];
    const char *name = sctl_at_str(o, "metadata.name");
    labels_text(o, labels, sizeof(labels));
    sctl_age(o, age);
    printf("Name:         %s\n", name);
    printf("Kind:         %s\n", k->kind);
    printf("Labels:       %s\n", labels);
    printf("Created:      %s (%s ago)\n", str_or_none(sctl_at_str(o, "metadata.created")), age);
    printf("Generation:   %lld\n", sctl_at_int(o, "metadata.generation"));
    printf("Revision:     %lld\n", sctl_at_int(o, "metadata.revision"));
    if (!strcmp(k->kind, "Node"))
        printf("Ready:        %s (heartbeat key /registry/heartbeats/%s %s)\n",
               json_object_get(hb, name) ? "true" : "false", name,
               json_object_get(hb, name) ? "present" : "absent");
    const char *why = sctl_at_str(o, "status.unschedulable");
    if (why)
        printf("Unschedulable: %s\n", why);
    if (sctl_at(o, "spec")) {
        printf("Spec:\n");
        sctl_yaml_write_indented(stdout, sctl_at(o, "spec"), 2);
    }
    if (sctl_at(o, "status")) {
        printf("Status:\n");
        sctl_yaml_write_indented(stdout, sctl_at(o, "status"), 2);
    }
    char sel[128];
    if (!strcmp(k->kind, "Deployment") || !strcmp(k->kind, "Node")) {
        snprintf(sel, sizeof(sel), "%s=%s", k->singular, name);
        describe_related(s, "Assignments", "assignments", sel);
        describe_related(s, "Instances", "instances", sel);
    }
}

int sctl_describe_main(struct sctl *s, int argc, char **argv)
{
    const struct sctl_kind *k;
    json_t *items = NULL, *hb = NULL;
    int code = fetch_args(s, argc, argv, describe_usage, &k, &items, NULL);
    if (code < 0)
        return SCTL_EXIT_USAGE;
    if (code == 0 && !strcmp(k->kind, "Node"))
        code = heartbeats(s, &hb);
    if (code == 0 && s->output == SCTL_OUT_JSON) {
        sctl_print_json(items);
    } else if (code == 0) {
        size_t j;
        json_t *o;
        json_array_foreach(items, j, o)
        {
            if (j)
                printf("\n");
            describe_one(s, k, o, hb);
        }
        if (json_array_size(items) == 0)
            fprintf(stderr, "No %s found.\n", k->plural);
    }
    json_decref(hb);
    json_decref(items);
    return code;
}
