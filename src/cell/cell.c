/*
 * cell.c: the backend-neutral half of the Cell supervisor: spec validation and
 * copying, grant and quantity parsing, the lifecycle state machine, the stop
 * deadline and the bounded log ring.  Backends (cell_linux.c, cell_sim.c) only
 * make and unmake the real thing, so every backend shares one lifecycle.
 *
 * Design
 * ======
 *
 *              cell_create              cell_start
 *   (nothing) ------------> CREATED ----------------> RUNNING
 *                                                    |   |
 *                             cell_stop (SIGTERM,    |   | last process gone
 *                             arm deadline)          v   | (cell_process)
 *                                               STOPPING |
 *                deadline passed (cell_process)  |       |
 *                -> cell_kill, stop_forced       v       v
 *                                                  DEAD  ----cell_start----> RUNNING
 *                                                            (restarts += 1)
 *
 *   cell_free from any state: kill whatever lives, then ops->destroy.
 *
 * Invariants
 *   1. st.state only changes here (cell_start, cell_stop, cell_mark_dead); a
 *      backend reports death through cell_mark_dead() exactly once per run.
 *   2. deadline != 0 iff state == STOPPING and the forced kill has not been sent.
 *   3. A spec is validated completely before any backend side effect (parse →
 *      validate → apply, wireguard-tools habit): cell_create fails with nothing
 *      reserved, and the copied spec never changes afterwards.
 *   4. The log ring holds at most ring_cap bytes; ring_end only grows, so a
 *      reader's cursor is an absolute offset and never aliases newer data.
 *   5. A Cell is on its host's list from create until free; cell_host_free frees
 *      every Cell still listed.
 */
#include "cell/cell_int.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cell_ops *backend_by_name(const char *name)
{
    if (!name || !strcmp(name, "linux"))
        return &cell_linux_ops;
    if (!strcmp(name, "sim"))
        return &cell_sim_ops;
    return NULL;
}

int cell_host_new(const struct cell_host_config *cfg, struct cell_host **ret, struct sc_error *e)
{
    struct cell_host_config none = {0};
    if (!cfg)
        cfg = &none;
    const struct cell_ops *ops = backend_by_name(cfg->backend);
    if (!ops)
        return sc_error_set(e, -SC_E_INVALID, "backend", "unknown Cell backend \"%s\"",
                            cfg->backend);
    struct cell_host *h = xcalloc(1, sizeof(*h));
    h->ops = ops;
    int r = ops->host_init(h, cfg, e);
    if (r < 0) {
        free(h);
        return r;
    }
    *ret = h;
    return 0;
}

void cell_host_free(struct cell_host *h)
{
    if (!h)
        return;
    while (h->n_cells > 0)
        cell_free(h->cells[h->n_cells - 1]);
    free(h->cells);
    u64map_done(&h->by_name);
    h->ops->host_done(h);
    free(h);
}

const char *cell_host_backend(const struct cell_host *h)
{
    return h->ops->name;
}

int cell_host_prepare(struct cell_host *h, struct sc_error *e)
{
    return h->ops->prepare(h, e);
}

const char *cell_state_name(enum cell_state s)
{
    switch (s) {
    case CELL_CREATED:
        return "created";
    case CELL_RUNNING:
        return "running";
    case CELL_STOPPING:
        return "stopping";
    case CELL_DEAD:
        return "dead";
    }
    return "?";
}

/* ---- parsing ---------------------------------------------------------------- */

static bool path_ok(const char *p)
{
    if (!p || p[0] != '/' || strlen(p) >= 256)
        return false;
    /* no "..", no empty components except the root itself */
    for (const char *s = p; *s; s++) {
        if (s[0] == '/' && s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
            return false;
        if (s[0] == '/' && s[1] == '/')
            return false;
    }
    return true;
}

int cell_grant_parse(const char *s, struct cell_grant *ret, struct sc_error *e)
{
    static const struct {
        const char *prefix;
        enum cell_grant_kind kind;
    } kinds[] = {
        {"fs.read:", CELL_GRANT_FS_READ},
        {"fs.write:", CELL_GRANT_FS_WRITE},
        {"net.listen:", CELL_GRANT_NET_LISTEN},
        {"net.connect:", CELL_GRANT_NET_CONNECT},
    };
    struct cell_grant g = {0};
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(s, kinds[i].prefix, n) != 0)
            continue;
        const char *v = s + n;
        g.kind = kinds[i].kind;
        if (g.kind == CELL_GRANT_FS_READ || g.kind == CELL_GRANT_FS_WRITE) {
            if (!path_ok(v))
                return sc_error_set(e, -SC_E_INVALID, "grants",
                                    "grant \"%s\": path must be absolute, without \"..\"", s);
            snprintf(g.path, sizeof(g.path), "%s", v);
        } else {
            char *end;
            errno = 0;
            unsigned long port = strtoul(v, &end, 10);
            if (!isdigit((unsigned char)*v) || *end || errno || port < 1 || port > 65535)
                return sc_error_set(e, -SC_E_INVALID, "grants",
                                    "grant \"%s\": port must be 1..65535", s);
            g.port = (uint16_t)port;
        }
        *ret = g;
        return 0;
    }
    return sc_error_set(e, -SC_E_INVALID, "grants",
                        "grant \"%s\": expected fs.read:PATH, fs.write:PATH, net.listen:PORT "
                        "or net.connect:PORT",
                        s);
}

/* "1.5" → 1500, "250m" → 250 (Kubernetes' CPU quantity). */
int cell_parse_cpu(const char *s, uint64_t *ret_millis)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -SC_E_INVALID;
    errno = 0;
    if (s[strlen(s) - 1] == 'm') {
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end != 'm' || end[1] || v == 0)
            return -SC_E_INVALID;
        *ret_millis = v;
        return 0;
    }
    double d = strtod(s, &end);
    if (errno || *end || d <= 0 || d > 1e6)
        return -SC_E_INVALID;
    *ret_millis = (uint64_t)(d * 1000 + 0.5);
    return *ret_millis ? 0 : -SC_E_INVALID;
}

int cell_parse_bytes(const char *s, uint64_t *ret_bytes)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"Ki", 1ull << 10},   {"Mi", 1ull << 20}, {"Gi", 1ull << 30},
        {"Ti", 1ull << 40},   {"K", 1000ull},     {"M", 1000000ull},
        {"G", 1000000000ull}, {"k", 1000ull},     {"", 1},
    };
    char *end;
    if (!s || !isdigit((unsigned char)*s))
        return -SC_E_INVALID;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -SC_E_INVALID;
    for (size_t i = 0; i < ELEMENTSOF(units); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mult)
            return -SC_E_INVALID;
        *ret_bytes = v * units[i].mult;
        return 0;
    }
    return -SC_E_INVALID;
}

/* ---- spec validation and copy ---------------------------------------------- */

static char **strv_copy(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **out = xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void spec_copy_free(struct cell_spec_copy *s)
{
    free(s->name);
    free(s->root);
    free(s->cwd);
    free(s->hostname);
    strv_free(s->argv);
    strv_free(s->env);
    for (size_t i = 0; i < s->n_tmpfs; i++)
        free((char *)s->tmpfs[i].path);
    free(s->tmpfs);
    for (size_t i = 0; i < s->n_volumes; i++) {
        free((char *)s->volumes[i].source);
        free((char *)s->volumes[i].path);
    }
    free(s->volumes);
    for (size_t i = 0; i < s->n_secrets; i++) {
        free((char *)s->secrets[i].name);
        explicit_bzero((void *)s->secrets[i].data, s->secrets[i].len);
        free((void *)s->secrets[i].data);
    }
    free(s->secrets);
    free(s->grants);
    memset(s, 0, sizeof(*s));
}

static int spec_validate(const struct cell_host *h, const struct cell_spec *s, struct sc_error *e)
{
    if (!s->name || !*s->name || strlen(s->name) > CELL_NAME_MAX)
        return sc_error_set(e, -SC_E_INVALID, "name", "name must be 1..%d characters",
                            CELL_NAME_MAX);
    for (const char *p = s->name; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
            return sc_error_set(e, -SC_E_INVALID, "name",
                                "name \"%s\" may hold only a-z, 0-9 and '-'", s->name);
    for (struct cell *o = u64map_get(&h->by_name, sc_str_hash(s->name)); o; o = o->name_next)
        if (!strcmp(o->spec.name, s->name))
            return sc_error_set(e, -EEXIST, "name", "a Cell named \"%s\" exists", s->name);
    if (!s->root || s->root[0] != '/')
        return sc_error_set(e, -SC_E_INVALID, "root", "root must be an absolute directory");
    size_t argc = 0;
    while (s->argv && s->argv[argc])
        argc++;
    if (argc == 0 || argc > CELL_MAX_ARGS)
        return sc_error_set(e, -SC_E_INVALID, "argv", "argv must hold 1..%d words", CELL_MAX_ARGS);
    if (s->cwd && !path_ok(s->cwd))
        return sc_error_set(e, -SC_E_INVALID, "cwd", "cwd must be an absolute path");
    if (s->uid == 0 || s->gid == 0)
        return sc_error_set(e, -SC_E_INVALID, "uid", "Cells never run as uid or gid 0");
    if (s->n_tmpfs > CELL_MAX_TMPFS || s->n_volumes > CELL_MAX_VOLUMES ||
        s->n_grants > CELL_MAX_GRANTS)
        return sc_error_set(e, -SC_E_INVALID, "spec", "at most %d tmpfs, %d volumes and %d grants",
                            CELL_MAX_TMPFS, CELL_MAX_VOLUMES, CELL_MAX_GRANTS);
    for (size_t i = 0; i < s->n_tmpfs; i++)
        if (!path_ok(s->tmpfs[i].path) || !strcmp(s->tmpfs[i].path, "/"))
            return sc_error_set(e, -SC_E_INVALID, "tmpfs",
                                "tmpfs path must be absolute and not \"/\"");
    for (size_t i = 0; i < s->n_volumes; i++)
        if (!s->volumes[i].source || s->volumes[i].source[0] != '/' ||
            !path_ok(s->volumes[i].path) || !strcmp(s->volumes[i].path, "/"))
            return sc_error_set(e, -SC_E_INVALID, "volumes",
                                "volume source and path must be absolute, path not \"/\"");
    if (s->n_secrets > CELL_MAX_SECRETS)
        return sc_error_set(e, -SC_E_INVALID, "secrets", "at most %d secrets", CELL_MAX_SECRETS);
    for (size_t i = 0; i < s->n_secrets; i++) {
        const char *n = s->secrets[i].name;
        bool ok = n && *n && strlen(n) <= 63 && strcmp(n, ".") && strcmp(n, "..");
        for (const char *p = n; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
        if (!ok)
            return sc_error_set(e, -SC_E_INVALID, "secrets",
                                "secret name must be 1..63 of [A-Za-z0-9._-], not . or ..");
        if (s->secrets[i].len > CELL_SECRET_MAX_BYTES || (s->secrets[i].len && !s->secrets[i].data))
            return sc_error_set(e, -SC_E_INVALID, "secrets", "secret \"%s\" is over %u bytes", n,
                                CELL_SECRET_MAX_BYTES);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(s->secrets[k].name, n))
                return sc_error_set(e, -SC_E_INVALID, "secrets", "secret \"%s\" appears twice", n);
    }
    for (size_t i = 0; i < s->n_grants; i++) {
        struct cell_grant g;
        int r = cell_grant_parse(s->grants[i], &g, e);
        if (r < 0)
            return r;
    }
    if (s->log_bytes && (s->log_bytes < CELL_LOG_MIN || s->log_bytes > CELL_LOG_MAX))
        return sc_error_set(e, -SC_E_INVALID, "log_bytes", "log ring must be %u..%u bytes",
                            CELL_LOG_MIN, CELL_LOG_MAX);
    if (s->net > CELL_NET_HOST)
        return sc_error_set(e, -SC_E_INVALID, "net", "unknown network mode");
    return 0;
}

static void spec_copy(struct cell_spec_copy *d, const struct cell_spec *s)
{
    static const char *const default_env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    static const struct cell_tmpfs default_tmpfs[] = {{"/tmp", 0}, {"/run", 0}};

    d->name = xstrdup(s->name);
    d->root = xstrdup(s->root);
    d->cwd = xstrdup(s->cwd ? s->cwd : "/");
    d->hostname = xstrdup(s->hostname ? s->hostname : s->name);
    d->argv = strv_copy(s->argv);
    d->env = strv_copy(s->env ? s->env : default_env);
    d->uid = s->uid;
    d->gid = s->gid;
    const struct cell_tmpfs *t = s->tmpfs;
    size_t nt = s->n_tmpfs;
    if (!t && nt == 0) {
        t = default_tmpfs;
        nt = ELEMENTSOF(default_tmpfs);
    }
    d->tmpfs = xcalloc(nt, sizeof(*d->tmpfs));
    d->n_tmpfs = nt;
    for (size_t i = 0; i < nt; i++) {
        d->tmpfs[i].path = xstrdup(t[i].path);
        d->tmpfs[i].size_bytes = t[i].size_bytes ? t[i].size_bytes : CELL_TMPFS_DEFAULT_BYTES;
    }
    d->volumes = xcalloc(s->n_volumes, sizeof(*d->volumes));
    d->n_volumes = s->n_volumes;
    for (size_t i = 0; i < s->n_volumes; i++) {
        d->volumes[i].source = xstrdup(s->volumes[i].source);
        d->volumes[i].path = xstrdup(s->volumes[i].path);
        d->volumes[i].read_only = s->volumes[i].read_only;
    }
    d->secrets = xcalloc(s->n_secrets, sizeof(*d->secrets));
    d->n_secrets = s->n_secrets;
    for (size_t i = 0; i < s->n_secrets; i++) {
        d->secrets[i].name = xstrdup(s->secrets[i].name);
        d->secrets[i].data = xmemdup(s->secrets[i].data, s->secrets[i].len);
        d->secrets[i].len = s->secrets[i].len;
    }
    d->grants = xcalloc(s->n_grants, sizeof(*d->grants));
    d->n_grants = s->n_grants;
    for (size_t i = 0; i < s->n_grants; i++) {
        int r = cell_grant_parse(s->grants[i], &d->grants[i], NULL);
        assert(r == 0); /* spec_validate parsed it already */
        (void)r;
    }
    d->cpu_millis = s->cpu_millis;
    d->memory_bytes = s->memory_bytes;
    d->pids_max = s->pids_max;
    d->net = s->net;
    d->stop_grace_usec = s->stop_grace_usec ? s->stop_grace_usec : 10 * USEC_PER_SEC;
    d->init = s->init;
}

int cell_create(struct cell_host *h, const struct cell_spec *spec, struct cell **ret,
                struct sc_error *e)
{
    int r = spec_validate(h, spec, e);
    if (r < 0)
        return r;
    struct cell *c = xcalloc(1, sizeof(*c));
    c->host = h;
    c->fd = -1;
    spec_copy(&c->spec, spec);
    c->ring_cap = spec->log_bytes ? spec->log_bytes : CELL_LOG_DEFAULT;
    c->st.state = CELL_CREATED;
    c->st.exit_code = -1;
    r = h->ops->create(c, e);
    if (r < 0) {
        spec_copy_free(&c->spec);
        free(c);
        return r;
    }
    h->cells = sc_grow(h->cells, &h->cap_cells, h->n_cells + 1, sizeof(*h->cells));
    c->host_idx = h->n_cells;
    h->cells[h->n_cells++] = c;
    uint64_t hash = sc_str_hash(c->spec.name);
    c->name_next = u64map_get(&h->by_name, hash);
    u64map_put(&h->by_name, hash, c);
    *ret = c;
    return 0;
}

static int start(struct cell *c, bool async, struct sc_error *e)
{
    if (c->st.state == CELL_RUNNING || c->st.state == CELL_STOPPING)
        return sc_error_set(e, -EBUSY, "state", "Cell \"%s\" is %s", c->spec.name,
                            cell_state_name(c->st.state));
    bool restart = c->st.state == CELL_DEAD;
    struct cell_status keep = c->st;
    c->st.exit_code = -1;
    c->st.exit_signal = 0;
    c->st.oom_killed = false;
    c->st.stop_forced = false;
    c->st.ended_usec = 0;
    c->st.start_failed = false;
    c->st.start_error[0] = '\0';
    c->start_async = async;
    int r = c->host->ops->start(c, e);
    if (r < 0) {
        c->st = keep;
        return r;
    }
    if (restart)
        c->st.restarts++;
    c->st.state = CELL_RUNNING;
    c->st.started_usec = now_usec(CLOCK_MONOTONIC);
    return 0;
}

int cell_start(struct cell *c, struct sc_error *e)
{
    return start(c, false, e);
}

int cell_start_async(struct cell *c, struct sc_error *e)
{
    return start(c, true, e);
}

int cell_stop(struct cell *c, usec_t grace_usec)
{
    if (c->st.state != CELL_RUNNING)
        return 0;
    c->st.state = CELL_STOPPING;
    c->deadline = now_usec(CLOCK_MONOTONIC) + (grace_usec ? grace_usec : c->spec.stop_grace_usec);
    int r = c->host->ops->term(c);
    return r == -ESRCH ? 0 : r;
}

int cell_kill(struct cell *c)
{
    if (c->st.state != CELL_RUNNING && c->st.state != CELL_STOPPING)
        return 0;
    c->deadline = 0;
    return c->host->ops->kill(c);
}

int cell_fd(const struct cell *c)
{
    return c->fd;
}

usec_t cell_deadline_usec(const struct cell *c)
{
    return c->deadline;
}

int cell_process(struct cell *c)
{
    int ev = 0;
    if (c->st.state == CELL_RUNNING || c->st.state == CELL_STOPPING) {
        ev = c->host->ops->process(c);
        if (ev < 0)
            return ev;
    }
    if (c->st.state == CELL_STOPPING && c->deadline && now_usec(CLOCK_MONOTONIC) >= c->deadline) {
        c->st.stop_forced = true;
        int r = cell_kill(c);
        if (r < 0)
            return r;
    }
    return ev;
}

int cell_wait(struct cell *c, usec_t timeout_usec)
{
    usec_t until = timeout_usec ? now_usec(CLOCK_MONOTONIC) + timeout_usec : 0;
    for (;;) {
        int r = cell_process(c);
        if (r < 0)
            return r;
        if (c->st.state == CELL_DEAD || c->st.state == CELL_CREATED)
            return 0;
        usec_t now = now_usec(CLOCK_MONOTONIC);
        if (until && now >= until)
            return -ETIMEDOUT;
        usec_t wake = until;
        if (c->deadline && (!wake || c->deadline < wake))
            wake = c->deadline;
        int ms = wake ? (int)MIN((wake - now + 999) / 1000, (usec_t)INT_MAX) : 100;
        if (c->fd < 0) {
            /* a backend without an fd changes state only when told to */
            if (!wake)
                return -ETIMEDOUT;
            usleep((useconds_t)MIN((usec_t)ms * 1000, (usec_t)100000));
            continue;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            return -errno;
    }
}

void cell_status(const struct cell *c, struct cell_status *ret)
{
    *ret = c->st;
}

int cell_usage(const struct cell *c, struct cell_usage *ret)
{
    memset(ret, 0, sizeof(*ret));
    return c->host->ops->usage(c, ret);
}

const char *cell_name(const struct cell *c)
{
    return c->spec.name;
}

void cell_mark_dead(struct cell *c, int exit_code, int exit_signal)
{
    c->st.state = CELL_DEAD;
    c->st.exit_code = exit_code;
    c->st.exit_signal = exit_signal;
    c->st.pid = 0;
    c->st.ended_usec = now_usec(CLOCK_MONOTONIC);
    c->deadline = 0;
}

/* ---- log ring ---------------------------------------------------------------- */

void cell_log_append(struct cell *c, const void *p, size_t n)
{
    if (!c->ring)
        c->ring = xmalloc(c->ring_cap);
    const char *s = p;
    if (n > c->ring_cap) { /* only the newest ring_cap bytes can survive */
        c->ring_end += n - c->ring_cap;
        s += n - c->ring_cap;
        n = c->ring_cap;
    }
    size_t at = (size_t)(c->ring_end % c->ring_cap);
    size_t first = MIN(n, c->ring_cap - at);
    memcpy(c->ring + at, s, first);
    memcpy(c->ring, s + first, n - first);
    c->ring_end += n;
}

size_t cell_log_read(const struct cell *c, uint64_t *cursor, void *buf, size_t len,
                     uint64_t *dropped)
{
    uint64_t oldest = c->ring_end > c->ring_cap ? c->ring_end - c->ring_cap : 0;
    if (*cursor < oldest) {
        if (dropped)
            *dropped += oldest - *cursor;
        *cursor = oldest;
    }
    if (*cursor > c->ring_end)
        *cursor = c->ring_end;
    size_t n = (size_t)MIN((uint64_t)len, c->ring_end - *cursor);
    size_t at = (size_t)(*cursor % c->ring_cap);
    size_t first = MIN(n, c->ring_cap - at);
    char *out = buf;
    if (n) {
        memcpy(out, c->ring + at, first);
        memcpy(out + first, c->ring, n - first);
    }
    *cursor += n;
    return n;
}

uint64_t cell_log_end(const struct cell *c)
{
    return c->ring_end;
}

void cell_free(struct cell *c)
{
    if (!c)
        return;
    struct cell_host *h = c->host;
    if (c->st.state == CELL_RUNNING || c->st.state == CELL_STOPPING)
        (void)h->ops->kill(c);
    h->ops->destroy(c);
    h->cells[c->host_idx] = h->cells[--h->n_cells];
    h->cells[c->host_idx]->host_idx = c->host_idx;
    uint64_t hash = sc_str_hash(c->spec.name);
    struct cell *head = u64map_get(&h->by_name, hash);
    if (head == c) {
        if (c->name_next)
            u64map_put(&h->by_name, hash, c->name_next);
        else
            u64map_del(&h->by_name, hash);
    } else {
        for (struct cell *o = head; o; o = o->name_next)
            if (o->name_next == c) {
                o->name_next = c->name_next;
                break;
            }
    }
    spec_copy_free(&c->spec);
    free(c->ring);
    free(c);
}

/* ---- exec ---------------------------------------------------------------------------- */

int cell_exec_start(struct cell *c, const char *const *argv, struct cell_exec **ret,
                    struct sc_error *e)
{
    size_t n = 0;
    while (argv && argv[n])
        n++;
    if (!n || n > CELL_MAX_ARGS)
        return sc_error_set(e, -EINVAL, "argv", "exec needs 1..%d arguments", CELL_MAX_ARGS);
    if (!c->host->ops->exec_start)
        return sc_error_set(e, -EOPNOTSUPP, "exec", "the %s backend cannot exec in a Cell",
                            c->host->ops->name);
    if (c->st.state != CELL_RUNNING)
        return sc_error_set(e, -ESRCH, "exec", "Cell %s is %s, not running", c->spec.name,
                            cell_state_name(c->st.state));
    return c->host->ops->exec_start(c, argv, ret, e);
}

int cell_exec_fd(const struct cell_exec *x)
{
    return x->fd;
}

int cell_exec_process(struct cell_exec *x, struct cell_exec_result *ret)
{
    return x->ops->exec_process(x, ret);
}

void cell_exec_free(struct cell_exec *x)
{
    if (x)
        x->ops->exec_free(x);
}
