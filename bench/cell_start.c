/*
 * cell_start.c: how long a Cell start costs: spec → /bin/true exited and torn
 * down (cell_create + cell_start + wait + cell_free), for each network mode,
 * against plain fork+exec of the same binary and, when installed, `crun run` and
 * `runc run` of an OCI bundle over the same root with the same namespaces and a
 * read-only root.  Prints a table of medians, p90s, CPU per run and ratios, and
 * the load average before and after (the numbers mean little on a busy node).
 *
 *   bench_cell_start [N [M [cells]]]  (N runs per row, default 200; with M, also
 *                      start M long-running Cells at once, then stop them all, in
 *                      three variants; "cells" skips crun and runc; needs root)
 *
 * The process first moves into a network namespace of its own, so the bridge
 * and veths it makes never touch the node's network.  The root tree is busybox
 * (Debian's busybox-static) in a temp dir, made and removed by this program.
 * crun and runc run in a private mount namespace without the cgroup2 mount
 * (crun refuses hybrid hosts otherwise), with limits in the v1 controllers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "cell/cell.h"

extern char **environ;

static char root_dir[64] = "/tmp/sc-bench-XXXXXX";
static char rootfs[128];

static int cmp_u64(const void *a, const void *b)
{
    usec_t x = *(const usec_t *)a, y = *(const usec_t *)b;
    return x < y ? -1 : x > y;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
    if (in < 0 || (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755)) < 0)
        return -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            return -1;
    close(in);
    close(out);
    return 0;
}

static int make_root(void)
{
    if (!mkdtemp(root_dir))
        return -1;
    chmod(root_dir, 0755);
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", root_dir);
    mkdir(rootfs, 0755);
    static const char *const dirs[] = {"bin", "tmp", "run", "proc", "dev", "sys", "etc"};
    char p[256];
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        snprintf(p, sizeof(p), "%s/%s", rootfs, dirs[i]);
        mkdir(p, 0755);
    }
    snprintf(p, sizeof(p), "%s/bin/busybox", rootfs);
    if (copy_file("/bin/busybox", p) < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/bin/sleep", rootfs);
    if (symlink("busybox", p) < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/bin/true", rootfs);
    return symlink("busybox", p);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

struct row {
    const char *name;
    usec_t median, p90;
    int ok;
    double cpu_ms; /* CPU per run: this process and every reaped child (Cells, runtimes) */
};

static double helpers_cpu_usec(void);

/* CPU time of this process, every child it reaped (and theirs) and the host's
 * spawners, in µs. */
static double cpu_usec(void)
{
    struct rusage s, c;
    getrusage(RUSAGE_SELF, &s);
    getrusage(RUSAGE_CHILDREN, &c);
    return (double)(s.ru_utime.tv_sec + s.ru_stime.tv_sec + c.ru_utime.tv_sec + c.ru_stime.tv_sec) *
               1e6 +
           (double)(s.ru_utime.tv_usec + s.ru_stime.tv_usec + c.ru_utime.tv_usec +
                    c.ru_stime.tv_usec) +
           helpers_cpu_usec();
}

/* The hosts' helper processes (spawners: children of ours while no Cell
 * runs), found after each cell_host_new; their CPU is the Cells' too. */
static pid_t helpers[16];
static int n_helpers;

static void find_helpers(void)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    n_helpers = 0;
    while (d && (de = readdir(d)) && n_helpers < (int)ELEMENTSOF(helpers)) {
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        int pid, ppid;
        if (fgets(buf, sizeof(buf), f) && strrchr(buf, ')') &&
            sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid) == 1 && ppid == getpid() &&
            sscanf(buf, "%d", &pid) == 1)
            helpers[n_helpers++] = pid;
        fclose(f);
    }
    if (d)
        closedir(d);
}

static double helpers_cpu_usec(void)
{
    double t = 0;
    for (int i = 0; i < n_helpers; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)helpers[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        unsigned long long ut, st;
        if (fgets(buf, sizeof(buf), f) && strrchr(buf, ')') &&
            sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &ut, &st) == 2)
            t += (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    return t;
}

/* Busy CPU time of the whole node from /proc/stat (everything but idle,
 * iowait and steal), in µs: kernel workers included (a network namespace is
 * dismantled by one), and so is everyone else's load on a shared machine. */
static double node_busy_usec(void)
{
    FILE *f = fopen("/proc/stat", "re");
    unsigned long long v[10] = {0};
    if (!f)
        return 0;
    int k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (k < 8)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6]) * 1e6 / (double)hz;
}

static void finish(struct row *r, usec_t *t, int n, int ok, double cpu0)
{
    r->cpu_ms = n ? (cpu_usec() - cpu0) / 1000 / n : 0;
    qsort(t, (size_t)n, sizeof(*t), cmp_u64);
    r->median = n ? t[n / 2] : 0;
    r->p90 = n ? t[n * 9 / 10] : 0;
    r->ok = ok;
}

/* warm: refill the network slot pool before each run, outside the timing */
static void bench_cell(struct cell_host *h, enum cell_net_mode net, bool warm, int n, struct row *r)
{
    usec_t *t = xcalloc((size_t)n, sizeof(*t));
    const char *argv[] = {"/bin/true", NULL};
    int ok = 0;
    double cpu0 = cpu_usec();
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "b%d%d-%d", (int)net, (int)warm, i);
        struct cell_spec s = {.name = name,
                              .root = rootfs,
                              .argv = argv,
                              .uid = 65534,
                              .gid = 65534,
                              .net = net,
                              .memory_bytes = 64 << 20,
                              .pids_max = 64,
                              .cpu_millis = 1000};
        struct sc_error e = {0};
        struct cell *c = NULL;
        if (warm && cell_host_prepare(h, &e) < 0) /* counted in the CPU, not the time */
            fprintf(stderr, "%s: prepare: %s\n", r->name, e.msg);
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        int rc = cell_create(h, &s, &c, &e);
        if (rc >= 0)
            rc = cell_start(c, &e);
        if (rc >= 0)
            rc = cell_wait(c, 5 * USEC_PER_SEC);
        struct cell_status st = {0};
        if (c)
            cell_status(c, &st);
        cell_free(c);
        t[i] = now_usec(CLOCK_MONOTONIC) - t0;
        if (rc < 0 && i == 0)
            fprintf(stderr, "%s: %s\n", r->name, e.msg);
        ok += rc >= 0 && st.exit_code == 0;
    }
    finish(r, t, n, ok, cpu0);
    free(t);
}

static int run_cmd(char *const argv[])
{
    pid_t pid;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (rc != 0)
        return -rc;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void bench_argv(char *const argv[], int n, struct row *r)
{
    usec_t *t = xcalloc((size_t)n, sizeof(*t));
    int ok = 0;
    double cpu0 = cpu_usec();
    for (int i = 0; i < n; i++) {
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        ok += run_cmd(argv) == 0;
        t[i] = now_usec(CLOCK_MONOTONIC) - t0;
    }
    finish(r, t, n, ok, cpu0);
    free(t);
}

/* An OCI bundle equivalent to a Cell: the same namespaces, read-only root,
 * /proc, a tmpfs /tmp and /dev, no capabilities, no_new_privs, uid 65534. */
static int write_oci_config(void)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/config.json", root_dir);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f, "{\"ociVersion\":\"1.0.2\",\"process\":{\"terminal\":false,"
               "\"user\":{\"uid\":65534,\"gid\":65534},\"args\":[\"/bin/true\"],"
               "\"env\":[\"PATH=/bin\"],\"cwd\":\"/\",\"capabilities\":{},"
               "\"noNewPrivileges\":true},"
               "\"root\":{\"path\":\"rootfs\",\"readonly\":true},\"hostname\":\"b\","
               "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
               "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
               "\"options\":[\"nosuid\",\"mode=755\",\"size=64k\"]},"
               "{\"destination\":\"/tmp\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
               "\"options\":[\"nosuid\",\"nodev\",\"size=16m\"]},"
               "{\"destination\":\"/run\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
               "\"options\":[\"nosuid\",\"nodev\",\"size=16m\"]}],"
               "\"linux\":{\"resources\":{\"memory\":{\"limit\":67108864},\"pids\":{\"limit\":64},"
               "\"cpu\":{\"quota\":100000,\"period\":100000}},"
               "\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},"
               "{\"type\":\"uts\"},{\"type\":\"mount\"},{\"type\":\"cgroup\"}]}}\n");
    return fclose(f);
}

/* Anonymous resident memory of this process, from /proc/self/status (kB). */
static long rss_anon_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* Open fds of this process (one directory read, not a probe per number). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n - 3; /* ".", "..", and the directory's own fd */
}

/* Starts m long-running Cells at once (cell_start_async returns once the process
 * exists; their set-ups overlap on the node's cores), waits on one poll loop
 * until every program has exec'd, then stops them all together and waits for
 * every death: starts/s, stops/s, CPU per Cell and the supervisor's memory per
 * running Cell.  CPU: the supervisor's own (getrusage SELF) and the Cells' whole
 * lives (RUSAGE_CHILDREN once all are reaped: clone to death, init included,
 * the part before a Cell joined its cgroups too); the node-wide busy time adds
 * kernel workers (namespace dismantling) and, on a shared machine, others. */
static void bench_many(struct cell_host *h, int m, enum cell_net_mode net, bool init,
                       const char *label)
{
    struct cell **cs = xcalloc((size_t)m, sizeof(*cs));
    const char *argv[] = {"/bin/sleep", "3600", NULL};
    long kb0 = rss_anon_kb();
    int fds0 = count_fds(), started = 0;
    struct rusage ru0, ru1, ch0, ch2;
    getrusage(RUSAGE_SELF, &ru0);
    getrusage(RUSAGE_CHILDREN, &ch0);
    double node0 = node_busy_usec(), sp0 = helpers_cpu_usec();
    struct sc_error e = {0};
    if (net == CELL_NET_BRIDGE && cell_host_prepare(h, &e) < 0)
        fprintf(stderr, "many: prepare: %s\n", e.msg);
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    for (int i = 0; i < m; i++) {
        char name[32];
        snprintf(name, sizeof(name), "many-%d", i);
        struct cell_spec s = {.name = name,
                              .root = rootfs,
                              .argv = argv,
                              .uid = 65534,
                              .gid = 65534,
                              .net = net,
                              .memory_bytes = 16 << 20,
                              .pids_max = 8,
                              .cpu_millis = 1000,
                              .init = init};
        if (cell_create(h, &s, &cs[i], &e) < 0 || cell_start_async(cs[i], &e) < 0) {
            fprintf(stderr, "many: Cell %d: %s\n", i, e.msg);
            break;
        }
        started++;
    }
    struct pollfd *p = xcalloc((size_t)m, sizeof(*p));
    bool *up = xcalloc((size_t)m, sizeof(*up));
    int n_up = 0, n_failed = 0;
    while (n_up + n_failed < started) {
        for (int i = 0; i < started; i++)
            p[i] = (struct pollfd){.fd = up[i] ? -1 : cell_fd(cs[i]), .events = POLLIN};
        if (poll(p, (nfds_t)started, 5000) <= 0)
            break;
        for (int i = 0; i < started; i++)
            if (p[i].revents && (cell_process(cs[i]) & CELL_EV_STARTED)) {
                up[i] = true;
                struct cell_status st;
                cell_status(cs[i], &st);
                if (st.start_failed && n_failed++ == 0)
                    fprintf(stderr, "many: Cell %d: %s\n", i, st.start_error);
                n_up += !st.start_failed;
            }
    }
    usec_t t1 = now_usec(CLOCK_MONOTONIC);
    getrusage(RUSAGE_SELF, &ru1);
    double sp1 = helpers_cpu_usec();
    long kb1 = rss_anon_kb();
    int fds1 = count_fds();
    /* without init, sleep is PID 1 and ignores SIGTERM: kill it */
    for (int i = 0; i < started; i++)
        (void)(init ? cell_stop(cs[i], 5 * USEC_PER_SEC) : cell_kill(cs[i]));
    int dead = 0;
    while (dead < started) {
        for (int i = 0; i < started; i++)
            p[i] = (struct pollfd){.fd = cell_fd(cs[i]), .events = POLLIN};
        if (poll(p, (nfds_t)started, 10000) <= 0)
            break;
        for (int i = 0; i < started; i++)
            if (p[i].revents && (cell_process(cs[i]) & CELL_EV_EXIT))
                dead++;
    }
    for (int i = 0; i < started; i++)
        cell_free(cs[i]);
    usec_t t2 = now_usec(CLOCK_MONOTONIC);
    struct rusage ru2;
    getrusage(RUSAGE_SELF, &ru2);
    getrusage(RUSAGE_CHILDREN, &ch2);
    double node2 = node_busy_usec(), sp2 = helpers_cpu_usec();
#define TV(a) ((double)((a).tv_sec) * 1e6 + (double)((a).tv_usec))
#define RU(a) (TV((a).ru_utime) + TV((a).ru_stime))
    printf("\n%d long-running Cells (%s%s, limits%s), started at once (cell_start_async): "
           "all exec'd in %.0f ms (%.0f starts/s); all %s and torn down in %.0f ms "
           "(%.0f stops/s); %d exec'd, %d failed, %d died\n",
           started,
           net == CELL_NET_BRIDGE ? "netns + veth + IP"
           : net == CELL_NET_NONE ? "own netns"
                                  : "node network",
           init ? ", init" : "", label, (double)(t1 - t0) / 1000, started * 1e6 / (double)(t1 - t0),
           init ? "stopped (SIGTERM)" : "killed", (double)(t2 - t1) / 1000,
           started * 1e6 / (double)(t2 - t1), n_up, n_failed, dead);
    if (started) {
        double sup1 = RU(ru1) - RU(ru0) + sp1 - sp0, sup2 = RU(ru2) - RU(ru0) + sp2 - sp0;
        double cells = RU(ch2) - RU(ch0);
        printf("CPU per Cell: supervisor + spawners %.2f ms to start them (%.2f ms incl. stop "
               "+ teardown; spawners %.2f), the Cells' processes %.2f ms (clone to death); "
               "total %.2f ms = %.0f starts/s per core; node-wide busy %.2f ms (with kernel "
               "workers and everyone else's load)\n",
               sup1 / 1000 / started, sup2 / 1000 / started, (sp2 - sp0) / 1000 / started,
               cells / 1000 / started, (sup2 + cells) / 1000 / started,
               started * 1e6 / (sup2 + cells), (node2 - node0) / 1000 / started);
        printf("supervisor memory per running Cell: %.1f KiB anonymous RSS, %.1f fds\n",
               (double)(kb1 - kb0) / started, (double)(fds1 - fds0) / started);
    }
#undef RU
#undef TV
    free(up);
    free(p);
    free(cs);
}

static void print_load(const char *when)
{
    char buf[128] = "?";
    FILE *f = fopen("/proc/loadavg", "re");
    if (f) {
        if (!fgets(buf, sizeof(buf), f))
            snprintf(buf, sizeof(buf), "?\n");
        fclose(f);
    }
    printf("load average %s: %s", when, buf);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (n < 5)
        n = 5;
    if (geteuid() != 0) {
        fprintf(stderr, "bench_cell_start: needs root\n");
        return 77;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        perror("unshare(CLONE_NEWNET)");
        return 1;
    }
    print_load("before");
    if (make_root() < 0) {
        perror("make root");
        return 1;
    }
    struct cell_host *h = NULL;
    struct sc_error e = {0};
    struct cell_host_config cfg = {
        .backend = "linux",
        .cgroup_parent = "swiftcube-bench",
        .net_pool = 1,
        .net_prefix = 20}; /* 4,093 Cell addresses: room for 1,000 bridged Cells at once */
    if (cell_host_new(&cfg, &h, &e) < 0) {
        fprintf(stderr, "cell_host_new: %s\n", e.msg);
        return 1;
    }
    find_helpers();
    struct row rows[8] = {
        {.name = "fork+exec /bin/true (no isolation)"},
        {.name = "Cell, node network (no netns)"},
        {.name = "Cell, own netns, loopback only"},
        {.name = "Cell, netns + veth + bridge + IP (full)"},
        {.name = "  same, network slot from a warm pool"},
        {.name = "crun run (same isolation, netns lo only)"},
        {.name = "runc run (same isolation, netns lo only)"},
    };
    int nrows = 5;
    char truepath[200];
    snprintf(truepath, sizeof(truepath), "%s/bin/busybox", rootfs);
    char *const plain[] = {truepath, "true", NULL};
    bench_argv(plain, n, &rows[0]);
    bench_cell(h, CELL_NET_HOST, false, n, &rows[1]);
    bench_cell(h, CELL_NET_NONE, false, n, &rows[2]);
    bench_cell(h, CELL_NET_BRIDGE, false, n, &rows[3]);
    bench_cell(h, CELL_NET_BRIDGE, true, n, &rows[4]);
    int many = argc > 2 ? atoi(argv[2]) : 0;
    if (many > 0) {
        struct rlimit rl = {.rlim_cur = 65536, .rlim_max = 65536};
        setrlimit(RLIMIT_NOFILE, &rl);
        bench_many(h, many, CELL_NET_NONE, false, "");
        bench_many(h, many, CELL_NET_NONE, true, "");
        bench_many(h, many, CELL_NET_BRIDGE, false, "");
        /* the same with four spawners per CPU instead of the default one */
        struct cell_host *h1 = NULL;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        struct cell_host_config cfg1 = {.backend = "linux",
                                        .cgroup_parent = "swiftcube-bench",
                                        .spawners = 4 * (ncpu > 0 ? (unsigned)ncpu : 1)};
        if (cell_host_new(&cfg1, &h1, &e) == 0) {
            find_helpers(); /* now both hosts' spawners; no Cell runs */
            bench_many(h1, many, CELL_NET_NONE, false, ", 4 spawners per CPU");
            cell_host_free(h1);
        }
    }
    cell_host_free(h);

    /* crun refuses hybrid cgroup hosts unless it cannot see the v2 mount: give
     * both runtimes a private mount namespace without it (our Cells are done). */
    bool runtimes = !(argc > 3 && !strcmp(argv[3], "cells"));
    bool hide_ok = runtimes && unshare(CLONE_NEWNS) == 0 &&
                   mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    if (hide_ok)
        (void)umount2("/sys/fs/cgroup/unified", MNT_DETACH);
    if (hide_ok && write_oci_config() == 0) {
        static const char *const rts[] = {"/usr/bin/crun", "/usr/sbin/runc"};
        for (int k = 0; k < 2; k++) {
            if (access(rts[k], X_OK) < 0) {
                rows[5 + k].ok = -1;
                continue;
            }
            char id[32];
            snprintf(id, sizeof(id), "scbench%d", (int)getpid());
            char *const rargv[] = {(char *)rts[k], "run", "--bundle", root_dir, id, NULL};
            bench_argv(rargv, n, &rows[5 + k]);
        }
        nrows = 7;
    }

    printf("Cell start, spec -> /bin/true exited and torn down, %d runs each\n\n", n);
    printf("| %-42s | %10s | %10s | %10s | %8s | %s |\n", "what", "median ms", "p90 ms",
           "CPU ms/run", "ok", "x fork+exec");
    printf("|%s|%s|%s|%s|%s|%s|\n", "--------------------------------------------", "------------",
           "------------", "------------", "----------", "------------");
    for (int i = 0; i < nrows; i++) {
        struct row *r = &rows[i];
        if (r->ok < 0) {
            printf("| %-42s | %10s | %10s | %10s | %8s | %11s |\n", r->name, "-", "-", "-",
                   "absent", "-");
            continue;
        }
        printf("| %-42s | %10.3f | %10.3f | %10.3f | %4d/%-3d | %11.1f |\n", r->name,
               (double)r->median / 1000, (double)r->p90 / 1000, r->cpu_ms, r->ok, n,
               rows[0].median ? (double)r->median / (double)rows[0].median : 0);
    }
    printf("\n");
    for (int k = 5; k < nrows; k++)
        if (rows[k].ok > 0)
            printf("full Cell vs %s: %.1fx faster (slot made inline), %.1fx (warm pool)\n",
                   k == 5 ? "crun run" : "runc run",
                   (double)rows[k].median / (double)rows[3].median,
                   (double)rows[k].median / (double)rows[4].median);
    nftw(root_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    print_load("after");
    return 0;
}
