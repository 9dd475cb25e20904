/*
 * agent_cg.c: the cgroup directories of Cells, seen from the agent.
 *
 * Why here and not in src/cell: the Cell library removes a Cell's cgroups when
 * the Cell is freed, but a supervisor that was killed cannot free anything, and
 * its Cells' directories stay behind (docs/cell.md, "left").  The agent records
 * each Cell's directories in its state file (from /proc/PID/cgroup, mapped to
 * mount points through /proc/self/mountinfo) and, after a restart, empties and
 * removes them, then sweeps its own cgroup parent for anything else.
 */
#include "slet/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct hier {
    char mount[PATH_MAX];
    char root[PATH_MAX];
    char opts[600]; /* super options: controllers of a v1 hierarchy */
    bool v2;
};

static size_t read_hiers(struct hier *h, size_t max)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return 0;
    char line[4096];
    size_t n = 0;
    while (n < max && fgets(line, sizeof(line), f)) {
        char root[PATH_MAX], mnt[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
            continue;
        char *dash = strstr(line, " - ");
        if (!dash)
            continue;
        char fstype[32], src[256], opts[512];
        if (sscanf(dash + 3, "%31s %255s %511s", fstype, src, opts) != 3)
            continue;
        bool v2 = !strcmp(fstype, "cgroup2");
        if (!v2 && strcmp(fstype, "cgroup") != 0)
            continue;
        h[n].v2 = v2;
        snprintf(h[n].mount, sizeof(h[n].mount), "%s", mnt);
        snprintf(h[n].root, sizeof(h[n].root), "%s", root);
        snprintf(h[n].opts, sizeof(h[n].opts), ",%s,", opts);
        n++;
    }
    fclose(f);
    return n;
}

/* Does the v1 hierarchy h bind exactly the controllers of ctrls ("cpu,cpuacct")? */
static bool binds(const struct hier *h, const char *ctrls)
{
    if (h->v2 || !*ctrls)
        return false;
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", ctrls);
    for (char *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        char pat[80];
        snprintf(pat, sizeof(pat), ",%s,", c);
        if (!strstr(h->opts, pat))
            return false;
    }
    return true;
}

/* The directory of cgroup path p in hierarchy h, or -1 if h does not show it. */
static int dir_of(const struct hier *h, const char *p, char out[PATH_MAX])
{
    size_t rl = strlen(h->root);
    if (strcmp(h->root, "/") != 0) {
        if (strncmp(p, h->root, rl) != 0 || (p[rl] && p[rl] != '/'))
            return -1;
        p += rl;
    }
    snprintf(out, PATH_MAX, "%s%s", h->mount, p);
    return 0;
}

/* Calls fn(dir) for every hierarchy directory of /proc/PID/cgroup lines. */
static int for_each_dir(int pid, void (*fn)(void *arg, const char *dir), void *arg)
{
    struct hier h[32];
    size_t nh = read_hiers(h, ELEMENTSOF(h));
    char path[64], line[4096];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1, *cgpath = c2 + 1;
        for (size_t i = 0; i < nh; i++) {
            char dir[PATH_MAX];
            bool match = (!*ctrls && h[i].v2) || binds(&h[i], ctrls);
            if (match && dir_of(&h[i], cgpath, dir) >= 0) {
                fn(arg, dir);
                break;
            }
        }
    }
    fclose(f);
    return 0;
}

struct collect {
    const char *name;
    struct sc_buf *out;
};

static void collect_dir(void *arg, const char *dir)
{
    struct collect *c = arg;
    const char *base = strrchr(dir, '/');
    if (!base || strcmp(base + 1, c->name) != 0)
        return;
    if (c->out->len)
        sc_buf_put_u8(c->out, '\n');
    sc_buf_put(c->out, dir, strlen(dir));
}

int slet_cg_dirs_of_pid(int pid, const char *name, struct sc_buf *out)
{
    struct collect c = {.name = name, .out = out};
    return for_each_dir(pid, collect_dir, &c);
}

static int kill_procs(const char *dir)
{
    char path[PATH_MAX + 16], line[32];
    snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        int r = write(fd, "1", 1) == 1 ? 0 : -errno;
        close(fd);
        if (r == 0)
            return 0;
    }
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        int pid = atoi(line);
        if (pid > 0 && kill(pid, SIGKILL) == 0)
            n++;
    }
    fclose(f);
    return n;
}

int slet_cg_remove_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    for (int i = 0; i < 300; i++) { /* 3 s for the killed to be reaped */
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -errno;
        (void)kill_procs(dir);
        usleep(10 * 1000);
    }
    return -EBUSY;
}

struct sweep {
    const char *parent;
    bool (*keep)(void *arg, const char *name);
    void *arg;
    int removed;
};

static void sweep_dir(void *arg, const char *own)
{
    struct sweep *s = arg;
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s/%s", strcmp(own, "/") ? own : "", s->parent);
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        if (s->keep(s->arg, de->d_name))
            continue;
        char dir[PATH_MAX + 300];
        snprintf(dir, sizeof(dir), "%s/%s", parent, de->d_name);
        if (slet_cg_remove_dir(dir) == 0)
            s->removed++;
    }
    closedir(d);
    (void)rmdir(parent); /* the Cell library makes it again when needed */
}

int slet_cg_sweep(const char *parent, bool (*keep)(void *arg, const char *name), void *arg)
{
    struct sweep s = {.parent = parent, .keep = keep, .arg = arg};
    int r = for_each_dir(getpid(), sweep_dir, &s);
    return r < 0 ? r : s.removed;
}
