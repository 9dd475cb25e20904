/*
 * cell_cgroup.c: a Cell's resource domain as cgroups, on hosts with cgroup v1,
 * v2 or both.
 *
 * The hierarchies are found in /proc/self/mountinfo and each controller is used
 * where it is actually bound: on hybrid hosts (our VMs) cpu, memory and pids are
 * v1-only while the v2 hierarchy still offers cgroup.kill, cgroup.events and
 * CLONE_INTO_CGROUP; on pure v2 hosts everything is v2.  Cell cgroups live under
 * the supervisor's own cgroup (plus a parent name) in every hierarchy, so the
 * node agent's own limits and accounting enclose its Cells.
 */
#include "cell/cell_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const ctl_names[CG_N] = {"cpu", "cpuacct", "memory", "pids"};

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int r = n < 0 ? -errno : (int)n;
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return r;
}

int cell_write_str(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = sc_write_all(fd, val, strlen(val));
    close(fd);
    return r;
}

static int write_file(const char *dir, const char *file, const char *val)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return cell_write_str(path, val);
}

static int read_u64(const char *dir, const char *file, uint64_t *v)
{
    char path[PATH_MAX], buf[64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int r = read_file(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    if (!strncmp(buf, "max", 3)) {
        *v = UINT64_MAX;
        return 0;
    }
    *v = strtoull(buf, NULL, 10);
    return 0;
}

/* Value of "key N" in a flat keyed file (memory.events, cpu.stat, oom_control). */
static int read_key(const char *dir, const char *file, const char *key, uint64_t *v)
{
    char path[PATH_MAX], buf[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int r = read_file(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    size_t kl = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, kl) && l[kl] == ' ') {
            *v = strtoull(l + kl + 1, NULL, 10);
            return 0;
        }
    return -ENOENT;
}

static bool word_in(const char *list, const char *word, char sep)
{
    size_t wl = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, sep);
        size_t l = end ? (size_t)(end - p) : strlen(p);
        while (l && (p[l - 1] == '\n' || p[l - 1] == ' '))
            l--;
        if (l == wl && !strncmp(p, word, wl))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Our own cgroup path in the hierarchy whose /proc/self/cgroup controller field
 * matches (v2: the "0::" line). */
static int own_path(const char *ctl, char *out, size_t len)
{
    char buf[4096];
    int r = read_file("/proc/self/cgroup", buf, sizeof(buf));
    if (r < 0)
        return r;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        char *c1 = strchr(l, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        bool match = ctl ? word_in(c1 + 1, ctl, ',') : (c1[1] == '\0' && !strncmp(l, "0", 1));
        if (match) {
            snprintf(out, len, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
            return 0;
        }
    }
    return -ENOENT;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = xmalloc(n);
    snprintf(s, n, "%s%s/%s", a, b, c);
    return s;
}

int cg_layout_discover(struct cg_layout *l, const char *parent, struct sc_error *e)
{
    memset(l, 0, sizeof(*l));
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return sc_error_set(e, -errno, "cgroup", "open /proc/self/mountinfo: %m");
    char line[4096], own[1024];
    char *v1mount[CG_N] = {0}, *v2mount = NULL;
    while (fgets(line, sizeof(line), f)) {
        /* id parent maj:min root mountpoint opts ... - fstype source superopts */
        char *dash = strstr(line, " - ");
        if (!dash)
            continue;
        char mnt[1024], fstype[32], src[64], sopts[1024];
        if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
            sscanf(dash + 3, "%31s %63s %1023s", fstype, src, sopts) != 3)
            continue;
        if (!strcmp(fstype, "cgroup2") && !v2mount)
            v2mount = xstrdup(mnt);
        else if (!strcmp(fstype, "cgroup"))
            for (int c = 0; c < CG_N; c++)
                if (!v1mount[c] && word_in(sopts, ctl_names[c], ','))
                    v1mount[c] = xstrdup(mnt);
    }
    fclose(f);
    if (v2mount && own_path(NULL, own, sizeof(own)) == 0) {
        char *base = join3(v2mount, own, "");
        base[strlen(base) - 1] = '\0';
        char path[PATH_MAX], ctls[512] = "";
        snprintf(path, sizeof(path), "%s/cgroup.controllers", base);
        (void)read_file(path, ctls, sizeof(ctls));
        for (int c = 0; c < CG_N; c++)
            /* cpuacct has no v2 controller: cpu.stat's usage_usec is always there */
            l->in_v2[c] = c == CG_CPUACCT ? !v1mount[c] : word_in(ctls, ctl_names[c], ' ');
        l->v2 = join3(base, "", parent);
        free(base);
    }
    for (int c = 0; c < CG_N; c++) {
        if (v1mount[c] && !l->in_v2[c] && own_path(ctl_names[c], own, sizeof(own)) == 0)
            l->v1[c] = join3(v1mount[c], own, parent);
        free(v1mount[c]);
    }
    free(v2mount);
    /* Parents exist once per host; enabling v2 controllers is best effort (the
     * supervisor's own cgroup may hold processes, which v2 forbids for
     * subtree_control), and a limit that cannot be set fails cell_create. */
    if (l->v2) {
        if (mkdir(l->v2, 0755) < 0 && errno != EEXIST)
            return sc_error_set(e, -errno, "cgroup", "mkdir %s: %m", l->v2);
        for (int c = 0; c < CG_N; c++)
            if (l->in_v2[c] && c != CG_CPUACCT) {
                char plus[32];
                snprintf(plus, sizeof(plus), "+%s", ctl_names[c]);
                (void)write_file(l->v2, "cgroup.subtree_control", plus);
            }
    }
    for (int c = 0; c < CG_N; c++)
        if (l->v1[c] && mkdir(l->v1[c], 0755) < 0 && errno != EEXIST)
            return sc_error_set(e, -errno, "cgroup", "mkdir %s: %m", l->v1[c]);
    return 0;
}

void cg_layout_done(struct cg_layout *l)
{
    /* The parents are shared with other supervisors on the node: rmdir removes
     * them only when no Cell is left in them, which is what we want. */
    if (l->v2)
        (void)rmdir(l->v2);
    for (int c = 0; c < CG_N; c++)
        if (l->v1[c])
            (void)rmdir(l->v1[c]);
    free(l->v2);
    for (int c = 0; c < CG_N; c++)
        free(l->v1[c]);
    memset(l, 0, sizeof(*l));
}

static const char *ctl_dir(const struct cg_cell *cg, enum cg_ctl c, bool v2)
{
    return v2 ? cg->v2 : cg->v1[c];
}

/* Writes one limit into the hierarchy its controller lives in.  cpu is in
 * millis (quota per 100 ms period), memory in bytes, pids a count. */
static int set_limit(const struct cg_layout *l, const struct cg_cell *cg, enum cg_ctl c,
                     uint64_t value, struct sc_error *e)
{
    bool v2 = l->in_v2[c];
    const char *d = ctl_dir(cg, c, v2);
    if (!d)
        return sc_error_set(e, -EOPNOTSUPP, ctl_names[c], "no %s controller on this host",
                            ctl_names[c]);
    char v[64];
    int r;
    snprintf(v, sizeof(v), "%" PRIu64, c == CG_CPU ? value * 100 : value);
    if (c == CG_CPU && v2) {
        snprintf(v, sizeof(v), "%" PRIu64 " 100000", value * 100);
        r = write_file(d, "cpu.max", v);
    } else if (c == CG_CPU) {
        r = write_file(d, "cpu.cfs_period_us", "100000");
        if (r >= 0)
            r = write_file(d, "cpu.cfs_quota_us", v);
    } else if (c == CG_MEMORY) {
        r = write_file(d, v2 ? "memory.max" : "memory.limit_in_bytes", v);
        /* swap would turn an OOM kill into thrashing; absent without swap accounting */
        if (r >= 0)
            (void)write_file(d, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes",
                             v2 ? "0" : v);
    } else {
        r = write_file(d, "pids.max", v);
    }
    if (r < 0)
        return sc_error_set(e, r, ctl_names[c], "set the %s limit in %s: %s", ctl_names[c], d,
                            strerror(-r));
    return 0;
}

/* mkdir dir inside parent; another supervisor sharing the parent removes it
 * when its last Cell goes (cg_layout_done), so make the parent again if needed. */
static int mkdir_under(const char *parent, const char *dir)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (mkdir(dir, 0755) == 0 || errno == EEXIST)
            return 0;
        if (errno != ENOENT)
            return -1;
        if (mkdir(parent, 0755) < 0 && errno != EEXIST)
            return -1;
    }
    errno = ENOENT;
    return -1;
}

int cg_cell_create(const struct cg_layout *l, struct cg_cell *cg, const char *name,
                   const struct cell_spec_copy *s, struct sc_error *e)
{
    memset(cg, 0, sizeof(*cg));
    cg->v2fd = -1;
    int r;
    if (l->v2) {
        cg->v2 = join3(l->v2, "", name);
        if (mkdir_under(l->v2, cg->v2) < 0) {
            r = sc_error_set(e, -errno, "cgroup", "mkdir %s: %m", cg->v2);
            goto fail;
        }
        cg->v2fd = open(cg->v2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg->v2fd < 0) {
            r = sc_error_set(e, -errno, "cgroup", "open %s: %m", cg->v2);
            goto fail;
        }
    }
    for (int c = 0; c < CG_N; c++) {
        if (!l->v1[c])
            continue;
        cg->v1[c] = join3(l->v1[c], "", name);
        if (mkdir_under(l->v1[c], cg->v1[c]) < 0) {
            r = sc_error_set(e, -errno, "cgroup", "mkdir %s: %m", cg->v1[c]);
            goto fail;
        }
    }
    /* the cpu quota waits for the exec (cg_cell_cpu): see cell_linux.h */
    if (s->cpu_millis && !ctl_dir(cg, CG_CPU, l->in_v2[CG_CPU])) {
        r = sc_error_set(e, -EOPNOTSUPP, "cpu", "no cpu controller on this host");
        goto fail;
    }
    if ((s->memory_bytes && (r = set_limit(l, cg, CG_MEMORY, s->memory_bytes, e)) < 0) ||
        (s->pids_max && (r = set_limit(l, cg, CG_PIDS, s->pids_max, e)) < 0))
        goto fail;
    return 0;
fail:
    cg_cell_remove(cg);
    return r;
}

int cg_cell_cpu(const struct cg_layout *l, const struct cg_cell *cg, uint64_t millis,
                struct sc_error *e)
{
    if (millis)
        return set_limit(l, cg, CG_CPU, millis, e);
    bool v2 = l->in_v2[CG_CPU];
    const char *d = ctl_dir(cg, CG_CPU, v2);
    if (!d)
        return 0;
    int r = v2 ? write_file(d, "cpu.max", "max 100000") : write_file(d, "cpu.cfs_quota_us", "-1");
    return r < 0 ? sc_error_set(e, r, "cpu", "lift the cpu quota in %s: %s", d, strerror(-r)) : 0;
}

int cg_cell_attach(const struct cg_cell *cg, pid_t pid, struct sc_error *e)
{
    char v[32];
    snprintf(v, sizeof(v), "%d", (int)pid);
    for (int c = 0; c < CG_N; c++) {
        if (!cg->v1[c])
            continue;
        bool dup = false;
        for (int k = 0; k < c; k++)
            dup |= cg->v1[k] && !strcmp(cg->v1[k], cg->v1[c]);
        if (dup)
            continue;
        int r = write_file(cg->v1[c], "cgroup.procs", v);
        if (r < 0)
            return sc_error_set(e, r, "cgroup", "join %s: %s", cg->v1[c], strerror(-r));
    }
    return 0;
}

int cg_cell_kill(const struct cg_cell *cg)
{
    if (!cg->v2)
        return -EOPNOTSUPP;
    return write_file(cg->v2, "cgroup.kill", "1");
}

static int count_procs(const char *dir)
{
    char path[PATH_MAX], buf[4096];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    int r = read_file(path, buf, sizeof(buf));
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    int n = 0;
    for (char *p = buf; *p; p++)
        n += *p == '\n';
    return n;
}

int cg_cell_nprocs(const struct cg_cell *cg)
{
    int n = 0;
    if (cg->v2)
        n = MAX(n, count_procs(cg->v2));
    for (int c = 0; c < CG_N; c++)
        if (cg->v1[c])
            n = MAX(n, count_procs(cg->v1[c]));
    return n;
}

uint64_t cg_cell_oom_kills(const struct cg_cell *cg)
{
    uint64_t v = 0;
    if (cg->v1[CG_MEMORY] && read_key(cg->v1[CG_MEMORY], "memory.oom_control", "oom_kill", &v) == 0)
        return v;
    if (cg->v2 && read_key(cg->v2, "memory.events", "oom_kill", &v) == 0)
        return v;
    return 0;
}

int cg_cell_usage(const struct cg_cell *cg, struct cell_usage *u)
{
    uint64_t v;
    if (cg->v2 && read_key(cg->v2, "cpu.stat", "usage_usec", &v) == 0)
        u->cpu_usec = v;
    else if (cg->v1[CG_CPUACCT] && read_u64(cg->v1[CG_CPUACCT], "cpuacct.usage", &v) == 0)
        u->cpu_usec = v / 1000;
    if (cg->v1[CG_MEMORY]) {
        if (read_u64(cg->v1[CG_MEMORY], "memory.usage_in_bytes", &v) == 0)
            u->memory_bytes = v;
        if (read_u64(cg->v1[CG_MEMORY], "memory.max_usage_in_bytes", &v) == 0)
            u->memory_peak_bytes = v;
    } else if (cg->v2) {
        if (read_u64(cg->v2, "memory.current", &v) == 0)
            u->memory_bytes = v;
        if (read_u64(cg->v2, "memory.peak", &v) == 0)
            u->memory_peak_bytes = v;
    }
    if (cg->v1[CG_PIDS] && read_u64(cg->v1[CG_PIDS], "pids.current", &v) == 0)
        u->pids = v;
    else if (cg->v2 && read_u64(cg->v2, "pids.current", &v) == 0)
        u->pids = v;
    else
        u->pids = (uint64_t)MAX(cg_cell_nprocs(cg), 0);
    return 0;
}

static int rmdir_retry(const char *dir)
{
    /* A just-reaped task may still be leaving its cgroups for a few µs. */
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -errno;
        usleep(500);
    }
    return -EBUSY;
}

int cg_cell_remove(struct cg_cell *cg)
{
    int r = 0, k;
    if (cg->v2fd >= 0)
        close(cg->v2fd);
    cg->v2fd = -1;
    if (cg->v2) {
        k = rmdir_retry(cg->v2);
        r = r ? r : k;
        free(cg->v2);
        cg->v2 = NULL;
    }
    for (int c = 0; c < CG_N; c++) {
        if (!cg->v1[c])
            continue;
        k = rmdir_retry(cg->v1[c]);
        r = r ? r : k;
        free(cg->v1[c]);
        cg->v1[c] = NULL;
    }
    return r;
}
