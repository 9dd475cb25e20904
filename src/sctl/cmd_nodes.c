/*
 * cmd_nodes.c: `sctl nodes cordon|uncordon|drain NODE` (docs/sctl.md,
 * docs/operations.md).
 *
 *   cordon NODE      spec.unschedulable: nothing new is placed there; what runs
 *                    there stays.
 *   uncordon NODE    clears spec.unschedulable and spec.drain.
 *   drain NODE [--timeout 5m] [--no-wait]
 *                    spec.drain (which also makes it unschedulable): the scheduler
 *                    replaces the node's Assignments like those of an old revision,
 *                    a new one placed elsewhere and ready before the old one is
 *                    drained from its load balancer and stopped (each Deployment's
 *                    maxSurge/maxUnavailable).  Waits until no Assignment is left on
 *                    the node: exit 0, or 3 at the timeout (with what is left).
 * Each change is a compare-and-swap on the Node's revision as read, retried once
 * on a conflict (slet and the operator both write Nodes).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sctl/sctl.h"

static const char nodes_usage[] = "usage: sctl nodes cordon|uncordon NODE\n"
                                  "       sctl nodes drain NODE [--timeout DURATION] [--no-wait]\n";

/* Sets (or clears) the spec flags of NODE; prints "node/NODE WHAT". */
static int node_set(struct sctl *s, const char *name, bool cordon, bool drain, const char *what)
{
    struct sc_buf p = {0};
    sctl_obj_path(&p, sctl_kind_by_kind("Node"), name);
    int code = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        json_t *n = NULL;
        if ((code = sctl_call(s, "GET", (const char *)p.data, NULL, &n)) != 0)
            break;
        json_t *spec = json_object_get(n, "spec");
        if (cordon)
            json_object_set_new(spec, "unschedulable", json_true());
        else
            json_object_del(spec, "unschedulable");
        if (drain)
            json_object_set_new(spec, "drain", json_true());
        else
            json_object_del(spec, "drain");
        json_object_del(n, "status");
        char *body = json_dumps(n, JSON_COMPACT);
        long status;
        json_t *ans = NULL;
        code = sctl_call_status(s, "PUT", (const char *)p.data, body, &ans, attempt == 0 ? 409 : 0,
                                &status);
        free(body);
        json_decref(n);
        if (code == 0) {
            const char *res = json_string_value(json_object_get(ans, "result"));
            printf("node/%s %s%s\n", name, what,
                   res && !strcmp(res, "unchanged") ? " (unchanged)" : "");
        }
        json_decref(ans);
        if (status != 409)
            break;
    }
    sc_buf_free(&p);
    return code;
}

static int nodes_cordon(struct sctl *s, int argc, char **argv)
{
    if (argc != 2)
        return sctl_usage("usage: sctl nodes %s NODE", argv[0]);
    return !strcmp(argv[0], "cordon") ? node_set(s, argv[1], true, false, "cordoned")
                                      : node_set(s, argv[1], false, false, "uncordoned");
}

static int nodes_drain(struct sctl *s, int argc, char **argv)
{
    int64_t timeout_ms = 300000;
    bool no_wait = false;
    int code = sctl_timeout_opts(argc, argv, "nodes drain", "no-wait", &timeout_ms, &no_wait);
    if (code)
        return code;
    if (argc - optind != 1)
        return sctl_usage("usage: sctl nodes drain NODE [--timeout DURATION] [--no-wait]");
    const char *name = argv[optind];
    code = node_set(s, name, true, true, "draining");
    if (code || no_wait)
        return code;
    char sel[160];
    snprintf(sel, sizeof(sel), "node=%s", name);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t last = (size_t)-1;
    for (;;) {
        json_t *items = NULL;
        if ((code = sctl_obj_list(s, sctl_kind_by_kind("Assignment"), sel, &items, NULL)) != 0)
            return code;
        size_t n = json_array_size(items);
        if (n != last)
            printf("node/%s: %zu assignment%s left\n", name, n, n == 1 ? "" : "s");
        fflush(stdout);
        last = n;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double ms =
            (double)(now.tv_sec - t0.tv_sec) * 1e3 + (double)(now.tv_nsec - t0.tv_nsec) / 1e6;
        if (n == 0) {
            json_decref(items);
            printf("node/%s drained\n", name);
            return 0;
        }
        if (ms >= (double)timeout_ms) {
            fprintf(stderr, "sctl: timed out after %.0fs: node/%s still has", ms / 1000, name);
            size_t i;
            json_t *a;
            json_array_foreach(items, i, a) fprintf(stderr, " %s", sctl_at_str(a, "metadata.name"));
            fprintf(stderr, "\n");
            json_decref(items);
            return SCTL_EXIT_UNAVAILABLE;
        }
        json_decref(items);
        usleep(200 * 1000);
    }
}

int sctl_nodes_main(struct sctl *s, int argc, char **argv)
{
    static const struct sctl_verb sub[] = {
        {"cordon", nodes_cordon}, {"uncordon", nodes_cordon}, {"drain", nodes_drain}};
    return sctl_subverb(s, argc, argv, sub, sizeof(sub) / sizeof(sub[0]), nodes_usage);
}
