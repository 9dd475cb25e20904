/*
 * agent_cell.c: the instances of a real node.  Each Assignment becomes one Cell
 * (src/cell, Linux backend) over an image of the node's store: the Revision's
 * template gives the image, command, env, resources, capabilities and ports;
 * the Cell gets SC_INSTANCE=<name> and PORT=<first declared port>, a private
 * scratch tmpfs (the image's writable paths) that dies with it, and cgroup
 * limits from the resources.  A crashed instance is restarted with exponential
 * backoff; every phase change is written to its Instance object; a removed
 * Assignment's Cell is stopped (SIGTERM, SIGKILL after the grace) and torn down.
 *
 * Design
 *   1. One Cell per instance name, ever: a Cell is made once (cell_create) and
 *      restarted in place (cell_start_async on the dead Cell), and the state
 *      directory of an earlier run is cleaned (slet_cell_recover) before this
 *      run makes its first Cell.
 *   2. restarts counts the starts after the first, across agent restarts (the
 *      state file carries it): a Cell that crashed, and a Cell ended because its
 *      agent ended, are both restarted and both counted.
 *   3. backoff: 100 ms after the first crash, doubling to 10 s; a Cell that was
 *      up 10 s or longer starts over at 100 ms.
 *   4. A state file DATA/instances/NAME.json exists while the instance has a
 *      Cell that was started (pid, its start time, cgroup directories, image,
 *      restarts); it is removed only after the Cell is torn down and the image
 *      lease released.  The Instance object is deleted last.
 *   5. Probes (agent_probe.c) exist only while RUNNING and are stopped before
 *      the Cell is stopped or freed.  A Cell a probe restarts
 *      (slet_cell_restart) stays RUNNING here until its EXIT, which is then
 *      reported with the probe's reason and restarted like a crash.
 *
 *   PENDING ──start──> STARTING ──STARTED──> RUNNING ──EXIT──> BACKOFF ──timer──> STARTING
 *      │  (template or image missing: retry       │                  │
 *      │   with backoff, phase failed)            └──removed──> STOPPING ──EXIT──> (gone)
 *      └──removed──> (gone)                     BACKOFF ──removed──> (gone)
 */
#include "slet/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "slet/slet.h"

struct rev_entry {
    char *name;
    json_t *template; /* spec.template of the Revision */
};

/* ---- the API side --------------------------------------------------------------- */

static void write_status(struct slet_inst *in)
{
    struct slet_agent *a = in->a;
    char path[128];
    struct sc_error e = {0};
    struct sc_reply r = {0};
    int rc = 0;
    bool done = false;
    if (!in->obj_created) {
        /* the usual first write: create it, status included, in one round trip;
         * 409 means it exists (an earlier run of this agent): write the status */
        json_t *o = slet_instance_object(in, true);
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        rc = sc_client_do(a->api, "POST", "/v1/instances", text, strlen(text), &r, &e);
        free(text);
        done = rc < 0 || r.status != 409;
        if (rc >= 0 && r.status >= 200 && r.status < 300)
            in->obj_created = true;
        if (!done) {
            /* it exists: from an earlier run of this agent, or left by the node
             * this Assignment was on before it was placed here (its spec names
             * that node): this node takes it over, then writes the status */
            sc_reply_free(&r);
            o = slet_instance_object(in, false);
            text = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            snprintf(path, sizeof(path), "/v1/instances/%s", in->name);
            rc = sc_client_do(a->api, "PUT", path, text, strlen(text), &r, &e);
            free(text);
            done = rc < 0 || r.status < 200 || r.status >= 300;
        }
    }
    if (!done) {
        sc_reply_free(&r);
        json_t *body = json_pack("{s:o}", "status", slet_instance_status(in));
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        snprintf(path, sizeof(path), "/v1/instances/%s/status", in->name);
        rc = sc_client_do(a->api, "PUT", path, text, strlen(text), &r, &e);
        free(text);
        if (rc >= 0 && r.status >= 200 && r.status < 300)
            in->obj_created = true;
        else if (rc >= 0 && r.status == 404)
            in->obj_created = false; /* deleted meanwhile: created again next time */
    }
    if (rc >= 0 && (r.status < 200 || r.status >= 300))
        rc = sc_error_set(&e, -EPROTO, NULL, "HTTP %ld %s: %s", r.status, r.code, r.message);
    in->dirty = rc < 0;
    if (rc < 0)
        log_warn("msg=\"instance status not written\" instance=%s err=\"%s\"", in->name, e.msg);
    sc_reply_free(&r);
}

/* Deletes this node's Instance object NAME, unless it is another node's now (an
 * Assignment of that name placed elsewhere while this node was lost): read,
 * then deleted only at the revision read. */
static void delete_instance(struct slet_agent *a, const char *name)
{
    char path[192];
    struct sc_error e = {0};
    struct sc_reply r = {0};
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    int rc = sc_client_do(a->api, "GET", path, NULL, 0, &r, &e);
    if (rc < 0 || r.status != 200) {
        sc_reply_free(&r);
        return; /* gone already, or unreadable: the next recovery sweeps it */
    }
    json_t *o = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    const char *node = json_string_value(json_object_get(json_object_get(o, "spec"), "node"));
    json_int_t rev =
        json_integer_value(json_object_get(json_object_get(o, "metadata"), "revision"));
    bool mine = node && !strcmp(node, a->nodes[0]);
    if (!mine)
        log_info("msg=\"instance object left to its new node\" instance=%s node=%s", name,
                 node ? node : "?");
    json_decref(o); /* node points into it */
    if (!mine) {
        sc_reply_free(&r);
        return;
    }
    snprintf(path, sizeof(path), "/v1/instances/%s?revision=%lld", name, (long long)rev);
    rc = sc_client_do(a->api, "DELETE", path, NULL, 0, &r, &e);
    if (rc >= 0 && r.status == 409)
        r.status = 404; /* taken over meanwhile: not ours to delete */
    if (rc < 0 || (r.status != 200 && r.status != 404))
        log_warn("msg=\"instance not deleted\" instance=%s err=\"%s\" status=%ld", name,
                 rc < 0 ? e.msg : r.message, r.status);
    sc_reply_free(&r);
}

void slet_cell_retry_status(struct slet_agent *a)
{
    uint64_t k;
    void *v;
    for (size_t it = 0; u64map_next(&a->insts, &it, &k, &v);)
        for (struct slet_inst *in = v; in; in = in->hnext)
            if (in->dirty)
                write_status(in);
}

void slet_cell_set_ready(struct slet_inst *in, bool ready, const char *reason)
{
    if (in->ready == ready && !strcmp(in->reason, reason))
        return;
    in->ready = ready;
    snprintf(in->reason, sizeof(in->reason), "%s", reason);
    write_status(in);
}

/* The Revision's template, fetched once per revision (revisions are immutable). */
static const json_t *get_template(struct slet_agent *a, const char *rev, struct sc_error *e)
{
    uint64_t h = slet_hash(rev);
    struct rev_entry *re = u64map_get(&a->revs, h);
    if (re && !strcmp(re->name, rev))
        return re->template;
    char path[160];
    snprintf(path, sizeof(path), "/v1/revisions/%s", rev);
    struct sc_reply r = {0};
    int rc = sc_client_do(a->api, "GET", path, NULL, 0, &r, e);
    json_t *o = NULL;
    if (rc >= 0 && r.status != 200)
        rc = sc_error_set(e, r.status == 404 ? -SC_E_NOT_FOUND : -EPROTO, NULL,
                          "revision %s: HTTP %ld %s", rev, r.status, r.message);
    if (rc >= 0)
        o = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    sc_reply_free(&r);
    json_t *t = json_object_get(json_object_get(o, "spec"), "template");
    if (rc >= 0 && !json_is_object(t))
        rc = sc_error_set(e, -EPROTO, NULL, "revision %s has no spec.template", rev);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    if (!re) {
        re = xcalloc(1, sizeof(*re));
        u64map_put(&a->revs, h, re);
    } else {
        free(re->name);
        json_decref(re->template);
    }
    re->name = xstrdup(rev);
    re->template = json_incref(t);
    json_decref(o);
    return re->template;
}

/* ---- state files ------------------------------------------------------------------- */

static void state_path(const struct slet_agent *a, const char *name, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s.json", a->inst_dir, name);
}

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot, which
 * tells a recycled pid from the recorded process. */
static uint64_t pid_start_time(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long long v = 0;
    /* after ") ": state(3) ... starttime(22) is the 20th field */
    char *save = NULL, *tok = strtok_r(p + 2, " ", &save);
    for (int i = 3; tok && i < 22; i++)
        tok = strtok_r(NULL, " ", &save);
    if (tok)
        v = strtoull(tok, NULL, 10);
    return v;
}

static void write_state(struct slet_inst *in)
{
    struct slet_agent *a = in->a;
    struct cell_status cs;
    cell_status(in->cell, &cs);
    char img[IMG_ID_STR_LEN + 1];
    img_id_format(&in->img, img);
    struct sc_buf cg = {0};
    json_t *dirs = json_array();
    if (cs.pid > 0 && slet_cg_dirs_of_pid(cs.pid, in->name, &cg) >= 0) {
        sc_buf_put_u8(&cg, 0);
        char *save = NULL;
        for (char *d = strtok_r((char *)cg.data, "\n", &save); d; d = strtok_r(NULL, "\n", &save))
            json_array_append_new(dirs, json_string(d));
    }
    sc_buf_free(&cg);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:o, s:i, s:s}", "name", in->name, "node",
                  in->node, "deployment", in->deployment, "revision", in->revision, "image", img,
                  "pid", cs.pid, "pidStart", (json_int_t)(cs.pid > 0 ? pid_start_time(cs.pid) : 0),
                  "cgroups", dirs, "restarts", (int)in->restarts, "startedAt", in->started_at);
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    state_path(a, in->name, path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(o, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0)
        log_warn("msg=\"state file not written\" path=%s err=\"%s\"", path, strerror(errno));
    json_decref(o);
}

static void release_image(struct slet_agent *a, const struct img_id *id, const char *holder)
{
    struct slet_store ss;
    struct sc_error e = {0};
    int r = slet_store_open(a->o.store_dir, a->o.trust_dir, false, &ss, &e);
    if (r >= 0) {
        r = img_store_release(ss.store, id, holder, &e);
        slet_store_close(&ss);
    }
    if (r < 0 && r != -SC_E_NOT_FOUND)
        log_warn("msg=\"image lease not released\" holder=%s err=\"%s\"", holder, e.msg);
}

/* ---- building the Cell --------------------------------------------------------- */

struct strv {
    char **v;
    size_t n, cap;
};

static void strv_add(struct strv *s, char *owned)
{
    s->v = sc_grow(s->v, &s->cap, s->n + 2, sizeof(*s->v));
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
}

static void strv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (struct strv){0};
}

/* Sets NAME=value, replacing an earlier NAME. */
static void env_set(struct strv *env, const char *name, const char *value)
{
    size_t nl = strlen(name);
    char *kv = xmalloc(nl + strlen(value) + 2);
    sprintf(kv, "%s=%s", name, value);
    for (size_t i = 0; i < env->n; i++)
        if (!strncmp(env->v[i], name, nl) && env->v[i][nl] == '=') {
            free(env->v[i]);
            env->v[i] = kv;
            return;
        }
    strv_add(env, kv);
}

static int inst_prepare(struct slet_inst *in, struct sc_error *e)
{
    struct slet_agent *a = in->a;
    const json_t *t = get_template(a, in->revision, e);
    if (!t)
        return -SC_E_NOT_FOUND;
    const char *image = json_string_value(json_object_get(t, "image"));
    if (!image)
        return sc_error_set(e, -SC_E_INVALID, "image", "revision %s has no image", in->revision);
    struct slet_image_lease il = {0};
    int r = slet_image_lease_take(&il, a->o.store_dir, a->o.trust_dir, image, in->name, e);
    if (r < 0)
        return r;
    in->img = il.id;
    in->img_held = true;
    const struct img_manifest *m = &il.manifest;

    struct strv argv = {0}, env = {0}, grants = {0};
    const json_t *cmd = json_object_get(t, "command"), *v;
    size_t i;
    const char *key;
    if (json_array_size(cmd))
        json_array_foreach(cmd, i, v) strv_add(&argv, xstrdup(json_string_value(v)));
    else
        for (i = 0; i < m->argc; i++)
            strv_add(&argv, xstrdup(m->argv[i]));
    env_set(&env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (i = 0; i < m->n_env; i++) {
        char *eq = strchr(m->env[i], '=');
        if (eq) {
            char *k = strndup(m->env[i], (size_t)(eq - m->env[i]));
            env_set(&env, k, eq + 1);
            free(k);
        }
    }
    json_object_foreach(json_object_get(t, "env"), key, v) if (json_is_string(v))
        env_set(&env, key, json_string_value(v));
    env_set(&env, "SC_INSTANCE", in->name);
    json_array_foreach(json_object_get(t, "capabilities"), i, v) if (json_is_string(v))
        strv_add(&grants, xstrdup(json_string_value(v)));
    /* A declared port may be listened on: the grant is implied by the port. */
    json_array_foreach(json_object_get(t, "ports"), i, v)
    {
        json_int_t port = json_integer_value(json_object_get(v, "container"));
        if (port <= 0)
            continue;
        char g[32], ps[16];
        snprintf(g, sizeof(g), "net.listen:%d", (int)port);
        bool have = false;
        for (size_t k = 0; k < grants.n; k++)
            have |= !strcmp(grants.v[k], g);
        if (!have)
            strv_add(&grants, xstrdup(g));
        if (i == 0) {
            snprintf(ps, sizeof(ps), "%d", (int)port);
            env_set(&env, "PORT", ps);
        }
    }
    struct cell_tmpfs tmpfs[CELL_MAX_TMPFS];
    size_t n_tmpfs = MIN(m->n_writable, (size_t)CELL_MAX_TMPFS);
    for (i = 0; i < n_tmpfs; i++)
        tmpfs[i] = (struct cell_tmpfs){.path = m->writable[i]};
    const json_t *res = json_object_get(t, "resources");
    struct cell_spec s = {
        .name = in->name,
        .root = il.root,
        .argv = (const char *const *)argv.v,
        .env = (const char *const *)env.v,
        .cwd = m->workdir,
        .uid = 65534,
        .gid = 65534,
        .tmpfs = n_tmpfs ? tmpfs : NULL,
        .n_tmpfs = n_tmpfs,
        .grants = (const char *const *)grants.v,
        .n_grants = grants.n,
        .cpu_millis = (uint64_t)json_integer_value(json_object_get(res, "cpuMillis")),
        .memory_bytes = (uint64_t)json_integer_value(json_object_get(res, "memoryBytes")),
        .net = a->o.net,
        .stop_grace_usec = a->o.grace_usec,
        .log_bytes = SLET_LOG_RING,
        .init = true,
    };
    if (!argv.n)
        r = sc_error_set(e, -SC_E_INVALID, "command",
                         "neither the revision nor image %s names a command", image);
    else
        r = cell_create(a->host, &s, &in->cell, e);
    strv_free(&argv);
    strv_free(&env);
    strv_free(&grants);
    img_manifest_done(&il.manifest);
    free(il.root);
    return r;
}

/* ---- the lifecycle ------------------------------------------------------------------ */

static void arm(struct slet_inst *in, usec_t d)
{
    struct timeval tv = {.tv_sec = (time_t)(d / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(d % USEC_PER_SEC)};
    evtimer_add(in->ev_timer, &tv);
}

static void arm_deadline(struct slet_inst *in)
{
    usec_t d = in->cell ? cell_deadline_usec(in->cell) : 0, now = now_usec(CLOCK_MONOTONIC);
    if (d)
        arm(in, d > now ? d - now : 0);
}

static void next_backoff(struct slet_inst *in)
{
    usec_t up = now_usec(CLOCK_MONOTONIC) - in->started_mono;
    if (!in->backoff_usec || (in->started_mono && up >= SLET_BACKOFF_RESET_USEC))
        in->backoff_usec = SLET_BACKOFF_MIN_USEC;
    else
        in->backoff_usec = MIN(in->backoff_usec * 2, SLET_BACKOFF_MAX_USEC);
}

static void inst_finish(struct slet_inst *in);
static void on_cell_event(evutil_socket_t fd, short what, void *arg);

static void inst_start(struct slet_inst *in)
{
    struct slet_agent *a = in->a;
    struct sc_error e = {0};
    int r = 0;
    bool restart = in->st == INST_BACKOFF;
    if (!in->cell) {
        r = inst_prepare(in, &e);
        if (r >= 0 && cell_fd(in->cell) >= 0) {
            in->ev_cell =
                event_new(a->base, cell_fd(in->cell), EV_READ | EV_PERSIST, on_cell_event, in);
            event_add(in->ev_cell, NULL);
        }
    }
    if (r >= 0)
        r = cell_start_async(in->cell, &e);
    if (r < 0) {
        log_warn("msg=\"instance not started\" instance=%s err=\"%s\"", in->name, e.msg);
        snprintf(in->phase, sizeof(in->phase), "failed");
        snprintf(in->reason, sizeof(in->reason), "%s", e.msg);
        in->ready = false;
        in->started_mono = 0;
        next_backoff(in);
        in->st = in->cell ? INST_BACKOFF : INST_PENDING;
        write_status(in);
        arm(in, in->backoff_usec);
        return;
    }
    if (restart)
        in->restarts++;
    in->st = INST_STARTING;
    in->started_mono = now_usec(CLOCK_MONOTONIC);
}

static void inst_exited(struct slet_inst *in)
{
    struct cell_status cs;
    cell_status(in->cell, &cs);
    slet_probe_stop(in);
    if (in->st == INST_STOPPING) {
        inst_finish(in);
        return;
    }
    in->ready = false;
    if (cs.start_failed) {
        in->exit_code = 127;
        snprintf(in->reason, sizeof(in->reason), "start failed: %s", cs.start_error);
    } else if (cs.oom_killed) {
        in->exit_code = 128 + SIGKILL;
        snprintf(in->reason, sizeof(in->reason), "OOMKilled");
    } else if (cs.exit_signal) {
        in->exit_code = 128 + cs.exit_signal;
        snprintf(in->reason, sizeof(in->reason), "killed by signal %d", cs.exit_signal);
    } else {
        in->exit_code = cs.exit_code;
        snprintf(in->reason, sizeof(in->reason), "exited with code %d", cs.exit_code);
    }
    snprintf(in->phase, sizeof(in->phase), in->exit_code == 0 ? "exited" : "failed");
    if (in->restart_reason[0]) { /* stopped by the agent for a probe */
        snprintf(in->reason, sizeof(in->reason), "%s", in->restart_reason);
        snprintf(in->phase, sizeof(in->phase), "failed");
        in->restart_reason[0] = '\0';
    }
    next_backoff(in);
    in->st = INST_BACKOFF;
    log_info("msg=\"instance ended\" instance=%s reason=\"%s\" restart_in_ms=%llu", in->name,
             in->reason, (unsigned long long)(in->backoff_usec / 1000));
    write_status(in);
    arm(in, in->backoff_usec);
}

static void on_cell_event(evutil_socket_t fd, short what, void *arg)
{
    struct slet_inst *in = arg;
    int ev = cell_process(in->cell);
    if (ev < 0) {
        log_warn("msg=\"supervising a Cell failed\" instance=%s err=\"%s\"", in->name,
                 strerror(-ev));
        return;
    }
    if (ev & CELL_EV_LOG)
        slet_logs_notify(in);
    if ((ev & CELL_EV_STARTED) && in->st == INST_STARTING) {
        struct cell_status cs;
        cell_status(in->cell, &cs);
        in->st = INST_RUNNING;
        snprintf(in->phase, sizeof(in->phase), "running");
        in->exit_code = -1;
        in->reason[0] = '\0';
        struct sc_error e = {0};
        in->ready = slet_probe_start(in, get_template(in->a, in->revision, &e));
        slet_iso_now(in->started_at);
        log_info("msg=\"instance running\" instance=%s pid=%d restarts=%u", in->name, cs.pid,
                 in->restarts);
        write_state(in);
        write_status(in);
    }
    if (ev & CELL_EV_EXIT)
        inst_exited(in);
    else if (in->st == INST_STOPPING || in->st == INST_RUNNING)
        arm_deadline(in); /* RUNNING: stopped by slet_cell_restart */
}

static void on_inst_timer(evutil_socket_t fd, short what, void *arg)
{
    struct slet_inst *in = arg;
    if (in->st == INST_STOPPING || in->st == INST_RUNNING)
        on_cell_event(-1, 0, in); /* the grace deadline */
    else if (in->st == INST_BACKOFF || in->st == INST_PENDING)
        inst_start(in);
}

static void inst_free_cell(struct slet_inst *in)
{
    slet_probe_stop(in);
    slet_logs_detach(in);
    if (in->ev_cell)
        event_free(in->ev_cell);
    if (in->ev_timer)
        event_free(in->ev_timer);
    in->ev_cell = in->ev_timer = NULL;
    cell_free(in->cell); /* kills what is left, removes its cgroups */
    in->cell = NULL;
}

static void inst_finish(struct slet_inst *in)
{
    struct slet_agent *a = in->a;
    inst_free_cell(in);
    if (in->img_held)
        release_image(a, &in->img, in->name);
    char path[PATH_MAX];
    state_path(a, in->name, path);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("msg=\"state file not removed\" path=%s err=\"%s\"", path, strerror(errno));
    delete_instance(a, in->name);
    log_info("msg=\"instance removed\" instance=%s", in->name);
    slet_inst_unlink(a, in);
    free(in);
}

void slet_cell_restart(struct slet_inst *in, const char *reason)
{
    if (in->st != INST_RUNNING)
        return;
    slet_probe_stop(in);
    snprintf(in->restart_reason, sizeof(in->restart_reason), "%s", reason);
    cell_stop(in->cell, in->a->o.grace_usec);
    arm_deadline(in);
}

void slet_cell_add(struct slet_agent *a, struct slet_inst *in)
{
    in->restarts = (unsigned)(uintptr_t)u64map_del(&a->carried, slet_hash(in->name));
    in->ev_timer = evtimer_new(a->base, on_inst_timer, in);
    in->st = INST_PENDING;
    log_info("msg=\"instance assigned\" instance=%s revision=%s", in->name, in->revision);
    inst_start(in);
}

void slet_cell_remove(struct slet_agent *a, struct slet_inst *in)
{
    switch (in->st) {
    case INST_STARTING:
    case INST_RUNNING:
        slet_probe_stop(in);
        in->st = INST_STOPPING;
        evtimer_del(in->ev_timer);
        cell_stop(in->cell, a->o.grace_usec);
        arm_deadline(in);
        log_info("msg=\"instance stopping\" instance=%s", in->name);
        break;
    case INST_STOPPING:
        break;
    case INST_PENDING:
    case INST_BACKOFF:
        inst_finish(in);
        break;
    }
}

void slet_cell_shutdown(struct slet_agent *a)
{
    uint64_t k;
    void *v;
    for (size_t it = 0; u64map_next(&a->insts, &it, &k, &v);)
        for (struct slet_inst *in = v; in; in = in->hnext)
            inst_free_cell(in);
    for (size_t it = 0; u64map_next(&a->revs, &it, &k, &v);) {
        struct rev_entry *re = v;
        free(re->name);
        json_decref(re->template);
        free(re);
    }
    u64map_done(&a->revs);
    u64map_done(&a->carried);
}

int slet_cell_setup(struct slet_agent *a, struct sc_error *e)
{
    snprintf(a->inst_dir, sizeof(a->inst_dir), "%s/instances", a->o.data_dir);
    int r = sc_mkdir_p(a->inst_dir);
    if (r < 0)
        return sc_error_set(e, r, "data-dir", "%s: %s", a->inst_dir, strerror(-r));
    return 0;
}

/* ---- after a restart of the agent ------------------------------------------------- */

static bool keep_none(void *arg, const char *name)
{
    return false;
}

/* Ends the recorded process if it is still the recorded one (pid + start time). */
static void end_recorded(int pid, uint64_t start)
{
    if (pid <= 0 || !start || pid_start_time(pid) != start)
        return;
    int fd = pidfd_open(pid, 0);
    if (fd < 0)
        return;
    if (pid_start_time(pid) == start && pidfd_send_signal(fd, SIGKILL, NULL, 0) == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        (void)poll(&p, 1, 2000);
    }
    close(fd);
}

int slet_cell_recover(struct slet_agent *a, const struct u64map *assigned)
{
    DIR *d = opendir(a->inst_dir);
    int found = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", a->inst_dir, de->d_name);
        json_t *o = json_load_file(path, 0, NULL);
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name) {
            log_warn("msg=\"unreadable state file removed\" path=%s", path);
            unlink(path);
            json_decref(o);
            continue;
        }
        found++;
        end_recorded((int)json_integer_value(json_object_get(o, "pid")),
                     (uint64_t)json_integer_value(json_object_get(o, "pidStart")));
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(o, "cgroups"), i, v)
        {
            const char *dir = json_string_value(v);
            if (dir && slet_cg_remove_dir(dir) < 0)
                log_warn("msg=\"leftover cgroup not removed\" dir=%s", dir);
        }
        unsigned restarts = (unsigned)json_integer_value(json_object_get(o, "restarts"));
        bool still = u64map_get(assigned, slet_hash(name)) != NULL;
        if (still) {
            u64map_put(&a->carried, slet_hash(name), (void *)(uintptr_t)(restarts + 1));
        } else {
            struct img_id id;
            const char *img = json_string_value(json_object_get(o, "image"));
            if (img && img_id_parse(img, &id, NULL) >= 0)
                release_image(a, &id, name);
            delete_instance(a, name);
        }
        log_info("msg=\"leftover instance from an earlier run\" instance=%s action=%s", name,
                 still ? "restart" : "cleaned");
        unlink(path);
        json_decref(o);
    }
    if (d)
        closedir(d);
    /* No Cell of this run exists yet: every cgroup under our parent is a leftover. */
    int swept = slet_cg_sweep(a->o.cgroup_parent, keep_none, NULL);
    if (swept > 0)
        log_info("msg=\"leftover cgroups removed\" count=%d", swept);
    /* Instance objects of this node that no Assignment backs (an earlier run
     * ended between deleting a state file and the object). */
    char path[256];
    snprintf(path, sizeof(path), "/v1/instances?selector=node%%3D%s", a->nodes[0]);
    struct sc_reply r = {0};
    struct sc_error e = {0};
    if (sc_client_do(a->api, "GET", path, NULL, 0, &r, &e) >= 0 && r.status == 200) {
        json_t *list = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(list, "items"), i, v)
        {
            const char *name =
                json_string_value(json_object_get(json_object_get(v, "metadata"), "name"));
            if (name && !u64map_get(assigned, slet_hash(name)))
                delete_instance(a, name);
        }
        json_decref(list);
    }
    sc_reply_free(&r);
    return found;
}
