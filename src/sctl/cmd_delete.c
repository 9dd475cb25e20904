/*
 * cmd_delete.c: `sctl delete` and `sctl scale`, the two verbs that change one
 * object by name.
 *
 *   sctl delete KIND NAME...          DELETE /v1/<kind>/NAME for each; a missing
 *                                     one is reported and the exit code is 4
 *   sctl delete -f FILE|DIR|- ...     the objects a manifest set names (validated
 *                                     first, exit 2 if invalid, as for apply)
 *   sctl scale [deployment] NAME --replicas N
 *                                     GET, set spec.replicas, PUT with the
 *                                     metadata.revision just read, so a concurrent
 *                                     change is never overwritten; on 409 read
 *                                     again and retry once
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "manifest/manifest.h"
#include "sctl/sctl.h"

static const char delete_usage[] = "usage: sctl delete KIND NAME...\n"
                                   "       sctl delete -f FILE|DIR|- [-f ...]\n";
static const char scale_usage[] = "usage: sctl scale [deployment] NAME --replicas N\n";

/* DELETE one object; prints "kind/name deleted" or why not.  Returns an exit code. */
static int delete_one(struct sctl *s, const struct sctl_kind *k, const char *name)
{
    struct sc_buf p = {0};
    sctl_obj_path(&p, k, name);
    long status;
    int code = sctl_call_status(s, "DELETE", (const char *)p.data, NULL, NULL, 404, &status);
    sc_buf_free(&p);
    if (code == 0)
        printf("%s/%s deleted\n", k->singular, name);
    else if (status == 404)
        fprintf(stderr, "sctl: %s/%s not found\n", k->singular, name);
    return code;
}

int sctl_delete_main(struct sctl *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char **paths = xcalloc((size_t)argc + 1, sizeof(*paths));
    size_t npaths = 0;
    optind = 1;
    opterr = 0;
    int c, code = 0;
    while (!code && (c = getopt_long(argc, argv, ":f:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(delete_usage, stdout);
            free(paths);
            return 0;
        }
        if (c == 'f')
            paths[npaths++] = optarg;
        else
            code = sctl_usage("delete: %s option '%s'", c == ':' ? "missing value for" : "unknown",
                              argv[optind - 1]);
    }
    if (!code && npaths == 0 && argc - optind < 2)
        code = sctl_usage("delete needs KIND NAME... or -f FILE");
    if (!code && npaths > 0 && optind < argc)
        code = sctl_usage("delete: give -f or KIND NAME..., not both");
    if (code) {
        fputs(delete_usage, stderr);
        free(paths);
        return code;
    }
    if (npaths > 0) {
        struct manifest_set set = {0};
        struct manifest_errors errs = {0};
        if (manifest_load_paths(paths, npaths, &set, &errs) < 0) {
            manifest_errors_print(&errs, stderr);
            fprintf(stderr, "sctl: nothing was deleted\n");
            code = SCTL_EXIT_USAGE;
        }
        for (size_t i = 0; i < set.n; i++) {
            const struct sctl_kind *k = sctl_kind_by_kind(set.docs[i].kind);
            int r = k ? delete_one(s, k, set.docs[i].name) : SCTL_EXIT_REFUSED;
            code = code ? code : r;
            if (r == SCTL_EXIT_UNAVAILABLE)
                break;
        }
        manifest_set_done(&set);
        manifest_errors_done(&errs);
    } else {
        const struct sctl_kind *k = sctl_kind_find(argv[optind]);
        if (!k)
            code = SCTL_EXIT_USAGE;
        for (int i = optind + 1; k && i < argc; i++) {
            int r = delete_one(s, k, argv[i]);
            code = code ? code : r;
            if (r == SCTL_EXIT_UNAVAILABLE)
                break;
        }
    }
    free(paths);
    return code;
}

int sctl_scale_main(struct sctl *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"replicas", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    unsigned long long replicas = 0;
    bool have = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(scale_usage, stdout);
            return 0;
        }
        if (c == 'r') {
            if (sctl_parse_u64("--replicas", optarg, &replicas) < 0)
                return SCTL_EXIT_USAGE;
            have = true;
        } else {
            sctl_usage("scale: %s option '%s'", c == ':' ? "missing value for" : "unknown",
                       argv[optind - 1]);
            fputs(scale_usage, stderr);
            return SCTL_EXIT_USAGE;
        }
    }
    /* NAME, deployment NAME, or deployment/NAME */
    const char *name = NULL;
    int n = argc - optind;
    if (n == 2 && sctl_kind_by_kind("Deployment") == sctl_kind_find(argv[optind]))
        name = argv[optind + 1];
    else if (n == 1 && !strncmp(argv[optind], "deployment/", 11))
        name = argv[optind] + 11;
    else if (n == 1 && !strchr(argv[optind], '/'))
        name = argv[optind];
    if (!name || !have) {
        sctl_usage(!have ? "scale needs --replicas N" : "scale takes one Deployment's name");
        fputs(scale_usage, stderr);
        return SCTL_EXIT_USAGE;
    }
    if (replicas > 100000)
        return sctl_usage("--replicas: at most 100000, got %llu", replicas);
    struct sc_buf p = {0};
    sctl_obj_path(&p, sctl_kind_by_kind("Deployment"), name);
    int code = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        json_t *d = NULL;
        if ((code = sctl_call(s, "GET", (const char *)p.data, NULL, &d)) != 0)
            break;
        json_t *spec = json_object_get(d, "spec");
        long long was = (long long)json_integer_value(json_object_get(spec, "replicas"));
        json_object_set_new(spec, "replicas", json_integer((json_int_t)replicas));
        json_object_del(d, "status");
        char *body = json_dumps(d, JSON_COMPACT);
        long status;
        json_t *ans = NULL;
        /* metadata.revision is in d as read: the PUT is a compare-and-swap */
        code = sctl_call_status(s, "PUT", (const char *)p.data, body, &ans, attempt == 0 ? 409 : 0,
                                &status);
        free(body);
        json_decref(d);
        if (code == 0) {
            const char *res = json_string_value(json_object_get(ans, "result"));
            printf("deployment/%s scaled (%lld -> %llu)%s\n", name, was, replicas,
                   res && !strcmp(res, "unchanged") ? ", unchanged" : "");
        }
        json_decref(ans);
        if (status != 409)
            break;
    }
    sc_buf_free(&p);
    return code;
}
