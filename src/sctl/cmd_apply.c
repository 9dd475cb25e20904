/*
 * cmd_apply.c: `sctl apply -f FILE|DIR|- [-f ...] [--wait [--timeout 60s]]`.
 *
 * Parse -> validate -> apply, as wireguard-tools does: every path is read and
 * checked by src/manifest first (manifest_load_paths), and if any document of the
 * set is invalid every error is printed as FILE:LINE:COL: PATH: MESSAGE and sctl
 * exits 2 without sending anything.  Then each object is PUT, in the order read,
 * as its canonical JSON to /v1/<kind>/<name>, and kubectl's words are printed
 * from the server's answer: created, configured (the server's "updated") or
 * unchanged.  A refused object is reported and the others are still applied
 * (exit 1); an unreachable server stops the run (exit 3).
 *
 * --wait follows each applied Deployment until the scheduler has seen its
 * generation (status.observedGeneration == metadata.generation) and exactly
 * spec.replicas Instances exist, all of the current template's Revision
 * (obj_revision_name: scaling keeps it, any other change makes a new one) and ready;
 * or until the timeout (exit 3, naming what is missing).  It polls every 50 ms
 * over the one keep-alive connection.  On a terminal one live line is rewritten
 * (\r); otherwise a line is printed per change, so logs stay readable.  A reason
 * in status.unschedulable is printed whenever it changes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "manifest/manifest.h"
#include "objects/objects.h"
#include "sctl/sctl.h"

static const char apply_usage[] =
    "usage: sctl apply -f FILE|DIR|- [-f ...] [--wait [--timeout DURATION]]\n"
    "       a DIR applies its *.yaml and *.yml files; - reads stdin; nothing is sent\n"
    "       unless every document is valid; --wait (default timeout 60s) follows the\n"
    "       applied Deployments until all their instances are ready\n";

#define POLL_MS 50

struct waited {
    char *name;
    char state[512];
    char unschedulable[512];
    bool done;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads one Deployment's progress into w; returns an exit code (0 while fine). */
static int progress(struct sctl *s, struct waited *w)
{
    const struct sctl_kind *dk = sctl_kind_by_kind("Deployment");
    struct sc_buf p = {0};
    sctl_obj_path(&p, dk, w->name);
    json_t *d = NULL, *insts = NULL;
    int code = sctl_call(s, "GET", (const char *)p.data, NULL, &d);
    sc_buf_free(&p);
    char sel[128];
    snprintf(sel, sizeof(sel), "deployment=%s", w->name);
    if (code == 0)
        code = sctl_obj_list(s, sctl_kind_by_kind("Instance"), sel, &insts, NULL);
    if (code == 0) {
        long long gen = sctl_at_int(d, "metadata.generation");
        long long seen = sctl_at_int(d, "status.observedGeneration");
        long long want = sctl_at_int(d, "spec.replicas");
        char rev[128]; /* the Revision of the current template (docs/api.md) */
        obj_revision_name(d, rev, sizeof(rev));
        long long ready = 0, total = (long long)json_array_size(insts), old = 0;
        size_t i;
        json_t *in;
        json_array_foreach(insts, i, in)
        {
            const char *r = sctl_at_str(in, "spec.revision");
            if (!r || strcmp(r, rev) != 0)
                old++;
            else if (json_is_true(sctl_at(in, "status.ready")))
                ready++;
        }
        int n = snprintf(w->state, sizeof(w->state), "%lld/%lld ready", ready, want);
        if (old > 0 && n > 0 && (size_t)n < sizeof(w->state))
            n += snprintf(w->state + n, sizeof(w->state) - (size_t)n, ", %lld of an older revision",
                          old);
        if (seen < gen && n > 0 && (size_t)n < sizeof(w->state))
            snprintf(w->state + n, sizeof(w->state) - (size_t)n,
                     ", generation %lld not yet seen by the scheduler", gen);
        w->done = seen >= gen && ready == want && total == want;
        const char *why = sctl_at_str(d, "status.unschedulable");
        if (why && strcmp(why, w->unschedulable) != 0)
            printf("%sdeployment/%s: unschedulable: %s\n", isatty(STDOUT_FILENO) ? "\r\033[K" : "",
                   w->name, why);
        snprintf(w->unschedulable, sizeof(w->unschedulable), "%s", why ? why : "");
    }
    json_decref(d);
    json_decref(insts);
    return code;
}

static int wait_ready(struct sctl *s, struct waited *w, size_t n, double timeout_s)
{
    bool tty = isatty(STDOUT_FILENO);
    double start = now_s();
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < n; i++) {
            if (w[i].done)
                continue;
            char before[sizeof(w[i].state)];
            snprintf(before, sizeof(before), "%s", w[i].state);
            int code = progress(s, &w[i]);
            if (code)
                return code;
            all &= w[i].done;
            if (!tty && strcmp(before, w[i].state) != 0)
                printf("deployment/%s: %s\n", w[i].name, w[i].state);
        }
        double el = now_s() - start;
        if (tty) {
            printf("\r\033[Kwaiting %.1fs:", el);
            for (size_t i = 0; i < n; i++)
                printf("%s %s %s", i ? "," : "", w[i].name, w[i].state);
            if (all) {
                printf("\r\033[K");
                for (size_t i = 0; i < n; i++)
                    printf("deployment/%s: %s\n", w[i].name, w[i].state);
            }
        }
        fflush(stdout);
        if (all) {
            printf("ready in %.2fs\n", el);
            return SCTL_EXIT_OK;
        }
        if (el >= timeout_s) {
            if (tty)
                printf("\n");
            fflush(stdout);
            for (size_t i = 0; i < n; i++)
                if (!w[i].done)
                    fprintf(stderr, "sctl: timed out after %.0fs: deployment/%s: %s%s%s\n",
                            timeout_s, w[i].name, w[i].state, w[i].unschedulable[0] ? "; " : "",
                            w[i].unschedulable);
            return SCTL_EXIT_UNAVAILABLE;
        }
        usleep(POLL_MS * 1000);
    }
}

int sctl_apply_main(struct sctl *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"wait", no_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char **paths = xcalloc((size_t)argc + 1, sizeof(*paths));
    size_t npaths = 0;
    bool wait = false;
    int64_t timeout_ms = 60000;
    optind = 1;
    opterr = 0;
    int c, code = 0;
    while ((c = getopt_long(argc, argv, ":f:h", opts, NULL)) != -1) {
        char why[160] = "";
        if (c == 'h') {
            fputs(apply_usage, stdout);
            free(paths);
            return 0;
        } else if (c == 'f') {
            paths[npaths++] = optarg;
        } else if (c == 'w') {
            wait = true;
        } else if (c == 't' && manifest_parse_duration(optarg, &timeout_ms, why, sizeof(why)) < 0) {
            code =
                sctl_usage("--timeout wants a duration like 60s or 2m, got '%s': %s", optarg, why);
        } else if (c == '?' || c == ':') {
            code = sctl_usage("apply: %s option '%s'", c == ':' ? "missing value for" : "unknown",
                              argv[optind - 1]);
        }
        if (code)
            break;
    }
    if (!code && optind < argc)
        code = sctl_usage("apply: unexpected argument '%s' (files go after -f)", argv[optind]);
    else if (!code && npaths == 0)
        code = sctl_usage("apply needs -f FILE, DIR or -");
    if (code == SCTL_EXIT_USAGE)
        fputs(apply_usage, stderr);
    if (code) {
        free(paths);
        return code;
    }

    struct manifest_set set = {0};
    struct manifest_errors errs = {0};
    if (manifest_load_paths(paths, npaths, &set, &errs) < 0) {
        manifest_errors_print(&errs, stderr);
        fprintf(stderr, "sctl: nothing was applied\n");
        manifest_errors_done(&errs);
        free(paths);
        return SCTL_EXIT_USAGE;
    }
    manifest_errors_done(&errs);

    struct waited *w = xcalloc(set.n ? set.n : 1, sizeof(*w));
    size_t nw = 0;
    json_t *answers = json_array();
    struct sc_buf p = {0};
    for (size_t i = 0; i < set.n; i++) {
        const struct manifest_doc *doc = &set.docs[i];
        const struct sctl_kind *k = sctl_kind_by_kind(doc->kind);
        if (!k) { /* a kind the manifest library knows and sctl does not: a bug */
            fprintf(stderr, "sctl: %s: no API path for kind %s\n", doc->file, doc->kind);
            code = code ? code : SCTL_EXIT_REFUSED;
            continue;
        }
        sc_buf_reset(&p);
        sctl_obj_path(&p, k, doc->name);
        char *body = manifest_dump(doc->object);
        json_t *ans = NULL;
        int r = sctl_call(s, "PUT", (const char *)p.data, body, &ans);
        free(body);
        if (r) {
            code = code ? code : r;
            if (r == SCTL_EXIT_UNAVAILABLE || r == SCTL_EXIT_USAGE)
                break;
            continue;
        }
        const char *res = json_string_value(json_object_get(ans, "result"));
        if (s->output == SCTL_OUT_JSON)
            json_array_append(answers, ans);
        else if (s->output == SCTL_OUT_NAME)
            printf("%s/%s\n", k->singular, doc->name);
        else
            printf("%s/%s %s\n", k->singular, doc->name,
                   !res                      ? "applied"
                   : !strcmp(res, "updated") ? "configured"
                                             : res);
        if (!strcmp(k->kind, "Deployment"))
            w[nw++].name = xstrdup(doc->name);
        json_decref(ans);
    }
    if (s->output == SCTL_OUT_JSON)
        sctl_print_json(answers);
    fflush(stdout);
    if (wait && code == 0 && nw > 0)
        code = wait_ready(s, w, nw, (double)timeout_ms / 1000.0);
    for (size_t i = 0; i < nw; i++)
        free(w[i].name);
    free(w);
    json_decref(answers);
    sc_buf_free(&p);
    manifest_set_done(&set);
    free(paths);
    return code;
}
