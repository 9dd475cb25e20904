/*
 * cmd_rollout.c: `sctl rollout status|history|undo` for a Deployment
 * (docs/rollout.md, docs/sctl.md).
 *
 *   status NAME [--timeout 10m] [--no-follow]
 *       follows status.rollout until the rollout is complete (exit 0), rolled
 *       back or failed (exit 1, with the reason) or the timeout (exit 3); a live
 *       line on a terminal, a line per change otherwise.  It polls the
 *       Deployment and its Assignments every 200 ms.
 *   history NAME
 *       the Deployment's Revisions, oldest first, the one followed marked.
 *   undo NAME [--to-revision REV]
 *       puts the template of an earlier Revision back into the spec (REV: a
 *       Revision's name, its hash suffix or its generation; default: the one
 *       the current rollout came from, else the newest older one), keeping
 *       replicas; a compare-and-swap on the revision read, like scale.
 *   promote NAME [--full]
 *       a paused canary step moves on to the next (--full: past all of them,
 *       straight to the rolling update to the end).
 *   pause NAME / resume NAME
 *       holds the rollout where it is (nothing old leaves, nothing new comes,
 *       the deadline stops) and lets it go on.
 *   abort NAME
 *       back to the revision the rollout came from, at once.
 * promote, pause, resume and abort write a flag into status.rollout through
 * /status, a compare-and-swap on the revision read; the scheduler loop acts.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "manifest/manifest.h"
#include "sctl/sctl.h"

static const char rollout_usage[] =
    "usage: sctl rollout status NAME [--timeout DURATION] [--no-follow]\n"
    "       sctl rollout history NAME\n"
    "       sctl rollout undo NAME [--to-revision REVISION]\n"
    "       sctl rollout promote NAME [--full]\n"
    "       sctl rollout pause|resume|abort NAME\n";

static const char *str_or(const char *v, const char *dflt)
{
    return v ? v : dflt;
}

/* NAME or deployment/NAME */
static const char *dep_name(const char *arg)
{
    return !strncmp(arg, "deployment/", 11) ? arg + 11 : arg;
}

static int get_deployment(struct sctl *s, const char *name, json_t **out)
{
    struct sc_buf p = {0};
    sctl_obj_path(&p, sctl_kind_by_kind("Deployment"), name);
    int code = sctl_call(s, "GET", (const char *)p.data, NULL, out);
    sc_buf_free(&p);
    return code;
}

/* The Deployment's Revisions, oldest (lowest generation) first. */
static int revisions_of(struct sctl *s, const char *name, json_t **items)
{
    char sel[160];
    snprintf(sel, sizeof(sel), "deployment=%s", name);
    int code = sctl_obj_list(s, sctl_kind_by_kind("Revision"), sel, items, NULL);
    if (code)
        return code;
    /* insertion sort by spec.generation: a handful of items */
    size_t n = json_array_size(*items);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(*items, j - 1), *b = json_array_get(*items, j);
            if (sctl_at_int(a, "spec.generation") <= sctl_at_int(b, "spec.generation"))
                break;
            json_incref(a);
            json_array_set(*items, j - 1, b);
            json_array_set_new(*items, j, a);
        }
    return 0;
}

/* The Deployment and its Revisions (both or neither). */
static int get_with_revisions(struct sctl *s, const char *name, json_t **d, json_t **revs)
{
    int code = get_deployment(s, name, d);
    if (!code && (code = revisions_of(s, name, revs)) != 0) {
        json_decref(*d);
        *d = NULL;
    }
    return code;
}

/* "3/4 updated, 2 available, 1 old, 1 draining" from the Assignments and Instances. */
static int progress_line(struct sctl *s, const char *name, const json_t *d, char *out, size_t size)
{
    char sel[160];
    snprintf(sel, sizeof(sel), "deployment=%s", name);
    json_t *asg = NULL, *insts = NULL;
    int code = sctl_obj_list(s, sctl_kind_by_kind("Assignment"), sel, &asg, NULL);
    if (!code)
        code = sctl_obj_list(s, sctl_kind_by_kind("Instance"), sel, &insts, NULL);
    if (code) {
        json_decref(asg);
        return code;
    }
    const char *target = sctl_at_str(d, "status.rollout.revision");
    long long updated = 0, old = 0, draining = 0, avail = 0;
    size_t i;
    json_t *a;
    json_array_foreach(asg, i, a)
    {
        bool mine = target && !strcmp(str_or(sctl_at_str(a, "spec.revision"), ""), target);
        if (json_is_true(sctl_at(a, "spec.draining")))
            draining++;
        else if (mine)
            updated++;
        else
            old++;
    }
    json_array_foreach(insts, i, a)
    {
        if (target && !strcmp(str_or(sctl_at_str(a, "spec.revision"), ""), target) &&
            json_is_true(sctl_at(a, "status.ready")))
            avail++;
    }
    const char *phase = str_or(sctl_at_str(d, "status.rollout.phase"), "pending");
    int n = snprintf(out, size, "%s %s: %lld/%lld updated, %lld ready, %lld old, %lld draining",
                     str_or(target, "?"), phase, updated, sctl_at_int(d, "spec.replicas"), avail,
                     old, draining);
    /* a canary on its way: which step, at what share of the traffic */
    const json_t *steps = sctl_at(d, "spec.update.steps");
    long long nsteps = steps ? (long long)json_array_size(steps) : 1;
    long long step = sctl_at_int(d, "status.rollout.step");
    bool moving = !strcmp(phase, "progressing") || !strcmp(phase, "paused");
    if (n > 0 && (size_t)n < size && moving && old > 0 && step < nsteps &&
        !strcmp(str_or(sctl_at_str(d, "spec.update.strategy"), ""), "canary")) {
        json_int_t w =
            steps
                ? json_integer_value(json_object_get(json_array_get(steps, (size_t)step), "weight"))
                : (sctl_at(d, "spec.update.canaryWeight")
                       ? sctl_at_int(d, "spec.update.canaryWeight")
                       : 10);
        n += snprintf(out + n, size - (size_t)n, ", canary step %lld/%lld at %lld%%", step + 1,
                      nsteps, (long long)w);
    }
    if (n > 0 && (size_t)n < size && moving &&
        json_is_true(sctl_at(d, "status.rollout.pausedByUser")))
        snprintf(out + n, size - (size_t)n, " (paused by the user: sctl rollout resume)");
    json_decref(asg);
    json_decref(insts);
    return 0;
}

static int rollout_status(struct sctl *s, int argc, char **argv)
{
    int64_t timeout_ms = 600000;
    bool no_follow = false;
    int code =
        sctl_timeout_opts(argc, argv, "rollout status", "no-follow", &timeout_ms, &no_follow);
    if (code)
        return code;
    bool follow = !no_follow;
    if (argc - optind != 1)
        return sctl_usage("usage: sctl rollout status NAME [--timeout DURATION] [--no-follow]");
    const char *name = dep_name(argv[optind]);
    bool tty = isatty(STDOUT_FILENO);
    char line[512] = "", last[512] = "";
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        json_t *d = NULL;
        code = get_deployment(s, name, &d);
        if (!code)
            code = progress_line(s, name, d, line, sizeof(line));
        if (code) {
            json_decref(d);
            return code;
        }
        /* the phase speaks of this spec only once the scheduler has seen it */
        bool seen =
            sctl_at_int(d, "status.observedGeneration") >= sctl_at_int(d, "metadata.generation");
        const char *phase = seen ? str_or(sctl_at_str(d, "status.rollout.phase"), "") : "";
        if (!seen)
            snprintf(line, sizeof(line), "generation %lld not yet seen by the scheduler",
                     sctl_at_int(d, "metadata.generation"));
        bool done = !strcmp(phase, "complete") || !strcmp(phase, "rolled-back") ||
                    !strcmp(phase, "failed") || !strcmp(phase, "paused");
        if (strcmp(line, last) != 0 || done || !follow) {
            printf("%sdeployment/%s: %s%s", tty ? "\r\033[K" : "", name, line,
                   tty && !done && follow ? "" : "\n");
            fflush(stdout);
            snprintf(last, sizeof(last), "%s", line);
        }
        if (done || !follow) {
            int rc = 0;
            if (!strcmp(phase, "rolled-back") || !strcmp(phase, "failed")) {
                fprintf(stderr, "sctl: deployment/%s %s: %s\n", name, phase,
                        str_or(sctl_at_str(d, "status.rollout.reason"), "no reason given"));
                rc = SCTL_EXIT_REFUSED;
            }
            json_decref(d);
            return rc;
        }
        json_decref(d);
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el * 1000 >= (double)timeout_ms) {
            if (tty)
                printf("\n");
            fprintf(stderr, "sctl: timed out after %.0fs: deployment/%s: %s\n", el, name, line);
            return SCTL_EXIT_UNAVAILABLE;
        }
        struct timespec nap = {0, 200 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

static int rollout_history(struct sctl *s, int argc, char **argv)
{
    if (argc != 2)
        return sctl_usage("usage: sctl rollout history NAME");
    const char *name = dep_name(argv[1]);
    json_t *d = NULL, *revs = NULL;
    int code = get_with_revisions(s, name, &d, &revs);
    if (code)
        return code;
    const char *cur = sctl_at_str(d, "status.rollout.revision");
    struct sctl_table t = {0};
    sctl_table_row(&t, 5, "REVISION", "GENERATION", "AGE", "IMAGE", "FOLLOWED");
    size_t i;
    json_t *r;
    json_array_foreach(revs, i, r)
    {
        char gen[24], age[24];
        const char *rn = sctl_at_str(r, "metadata.name");
        snprintf(gen, sizeof(gen), "%lld", sctl_at_int(r, "spec.generation"));
        sctl_age(r, age);
        sctl_table_row(&t, 5, rn, gen, age, str_or(sctl_at_str(r, "spec.template.image"), "-"),
                       cur && rn && !strcmp(cur, rn) ? "*" : "");
    }
    sctl_table_print(&t);
    json_decref(revs);
    json_decref(d);
    return 0;
}

static int rollout_undo(struct sctl *s, int argc, char **argv)
{
    static const struct option opts[] = {{"to-revision", required_argument, NULL, 'r'}, {0}};
    const char *to = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'r')
            to = optarg;
        else
            return sctl_usage("rollout undo: %s option '%s'",
                              c == ':' ? "missing value for" : "unknown", argv[optind - 1]);
    }
    if (argc - optind != 1)
        return sctl_usage("usage: sctl rollout undo NAME [--to-revision REVISION]");
    const char *name = dep_name(argv[optind]);
    json_t *d = NULL, *revs = NULL;
    int code = get_with_revisions(s, name, &d, &revs);
    if (code)
        return code;
    const char *cur = sctl_at_str(d, "status.rollout.revision");
    const char *from = sctl_at_str(d, "status.rollout.from");
    const json_t *pick = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(revs, i, r)
    {
        const char *rn = str_or(sctl_at_str(r, "metadata.name"), "");
        char gen[24];
        snprintf(gen, sizeof(gen), "%lld", sctl_at_int(r, "spec.generation"));
        size_t nl = strlen(name);
        if (to     ? (!strcmp(rn, to) || !strcmp(gen, to) ||
                  (!strncmp(rn, name, nl) && rn[nl] == '-' && !strcmp(rn + nl + 1, to)))
            : from ? !strcmp(rn, from)
                   : !(cur && !strcmp(rn, cur)))
            pick = r; /* without --to-revision or from: the newest one not followed */
    }
    if (!pick) {
        fprintf(stderr, "sctl: deployment/%s: %s\n", name,
                to ? "no such revision (see sctl rollout history)"
                   : "no earlier revision to undo to");
        json_decref(revs);
        json_decref(d);
        return SCTL_EXIT_NOT_FOUND;
    }
    /* the old template, with today's replicas; metadata.revision makes it a CAS */
    json_t *spec = json_deep_copy(sctl_at(pick, "spec.template"));
    json_object_set(spec, "replicas", json_object_get(json_object_get(d, "spec"), "replicas"));
    json_object_set_new(d, "spec", spec);
    json_object_del(d, "status");
    char *body = json_dumps(d, JSON_COMPACT);
    struct sc_buf p = {0};
    sctl_obj_path(&p, sctl_kind_by_kind("Deployment"), name);
    json_t *ans = NULL;
    code = sctl_call(s, "PUT", (const char *)p.data, body, &ans);
    if (!code)
        printf("deployment/%s rolled back to %s%s\n", name, sctl_at_str(pick, "metadata.name"),
               !strcmp(str_or(json_string_value(json_object_get(ans, "result")), ""), "unchanged")
                   ? " (unchanged)"
                   : "");
    json_decref(ans);
    sc_buf_free(&p);
    free(body);
    json_decref(revs);
    json_decref(d);
    return code;
}

/* A flag set (or cleared) in status.rollout, written through /status with the
 * revision read (a compare-and-swap); the scheduler loop acts on it. */
static int rollout_flag(struct sctl *s, const char *name, const char *flag, bool set,
                        const char *done)
{
    json_t *d = NULL;
    int code = get_deployment(s, name, &d);
    if (code)
        return code;
    const char *phase = str_or(sctl_at_str(d, "status.rollout.phase"), "");
    if (strcmp(phase, "progressing") != 0 && strcmp(phase, "paused") != 0) {
        fprintf(stderr, "sctl: deployment/%s: no rollout in progress (phase %s)\n", name,
                *phase ? phase : "none");
        json_decref(d);
        return SCTL_EXIT_REFUSED;
    }
    json_t *st = json_deep_copy(json_object_get(d, "status"));
    if (set)
        json_object_set_new(json_object_get(st, "rollout"), flag, json_true());
    else
        json_object_del(json_object_get(st, "rollout"), flag);
    json_t *body = json_pack("{s:{s:O}, s:o}", "metadata", "revision",
                             sctl_at(d, "metadata.revision"), "status", st);
    char *text = json_dumps(body, JSON_COMPACT);
    struct sc_buf p = {0};
    sctl_obj_path(&p, sctl_kind_by_kind("Deployment"), name);
    p.len--; /* past the NUL it ends with */
    sc_buf_printf(&p, "/status");
    sc_buf_put_u8(&p, 0);
    code = sctl_call(s, "PUT", (const char *)p.data, text, NULL);
    if (!code)
        printf("deployment/%s %s\n", name, done);
    sc_buf_free(&p);
    free(text);
    json_decref(body);
    json_decref(d);
    return code;
}

static int rollout_promote(struct sctl *s, int argc, char **argv)
{
    bool full = argc == 3 && !strcmp(argv[2], "--full");
    if (argc != 2 && !full)
        return sctl_usage("usage: sctl rollout promote NAME [--full]");
    return rollout_flag(s, dep_name(argv[1]), full ? "promoteFull" : "promoted", true,
                        full ? "promoted past every canary step" : "promoted");
}

static int rollout_simple(int argc, char **argv, const char **name)
{
    if (argc != 2)
        return sctl_usage("usage: sctl rollout %s NAME", argv[0]);
    *name = dep_name(argv[1]);
    return 0;
}

static int rollout_abort(struct sctl *s, int argc, char **argv)
{
    const char *name = NULL;
    int code = rollout_simple(argc, argv, &name);
    return code ? code : rollout_flag(s, name, "aborted", true, "aborted: rolling back");
}

static int rollout_pause(struct sctl *s, int argc, char **argv)
{
    const char *name = NULL;
    int code = rollout_simple(argc, argv, &name);
    return code ? code : rollout_flag(s, name, "pausedByUser", true, "paused");
}

static int rollout_resume(struct sctl *s, int argc, char **argv)
{
    const char *name = NULL;
    int code = rollout_simple(argc, argv, &name);
    return code ? code : rollout_flag(s, name, "pausedByUser", false, "resumed");
}

int sctl_rollout_main(struct sctl *s, int argc, char **argv)
{
    static const struct sctl_verb sub[] = {{"status", rollout_status}, {"history", rollout_history},
                                           {"undo", rollout_undo},     {"promote", rollout_promote},
                                           {"pause", rollout_pause},   {"resume", rollout_resume},
                                           {"abort", rollout_abort}};
    return sctl_subverb(s, argc, argv, sub, sizeof(sub) / sizeof(sub[0]), rollout_usage);
}
