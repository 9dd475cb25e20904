/*
 * test_cell.c: the Cell supervisor, run for real: every Linux case builds a tiny
 * busybox root tree in a temp dir, starts a Cell over it and looks from both
 * sides (what the program inside saw, what the node sees afterwards).  The
 * in-Cell probe (src/cell/cell_probe.c) reports exact errno names.  Network
 * cases first move the test process into a network namespace of its own, so the
 * bridge and veths they make never touch the node's network.  The sim backend
 * has its own cases at the end.
 *
 * Needs root (namespaces, cgroups); skips (exit 77 in the case) otherwise.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cell/cell.h"
#include "cell/cell_linux.h" /* nl_forwarding, net_config_inside */
#include "cell/cell_sim.h"

#define NOBODY 65534

static char root_dir[64];
static char vol_dir[64];

static void copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    assert_true(in >= 0);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

/* A root tree: busybox (static) + the probe + the mount points a Cell needs. */
static void make_root(void)
{
    if (geteuid() != 0)
        skip();
    snprintf(root_dir, sizeof(root_dir), "/tmp/sc-cell-root-XXXXXX");
    assert_non_null(mkdtemp(root_dir));
    chmod(root_dir, 0755);
    static const char *const dirs[] = {"bin", "tmp", "run", "proc", "dev", "data", "etc"};
    char p[256];
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        snprintf(p, sizeof(p), "%s/%s", root_dir, dirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    snprintf(p, sizeof(p), "%s/bin/busybox", root_dir);
    copy_file("/bin/busybox", p, 0755);
    snprintf(p, sizeof(p), "%s/bin/cell_probe", root_dir);
    copy_file(SC_CELL_PROBE, p, 0755);
    static const char *const applets[] = {"sh",    "true", "false", "cat",     "echo",
                                          "sleep", "ls",   "id",    "hostname"};
    for (size_t i = 0; i < ELEMENTSOF(applets); i++) {
        snprintf(p, sizeof(p), "%s/bin/%s", root_dir, applets[i]);
        assert_int_equal(symlink("busybox", p), 0);
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

static void rm_tree(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Per test process, so concurrent runs of this binary (other build trees) never
 * share or remove each other's cgroup parent. */
static const char *test_cgroup(void)
{
    static char name[48];
    snprintf(name, sizeof(name), "swiftcube-test-%d", (int)getpid());
    return name;
}

/* Where this hybrid host keeps a Cell's cgroup: <mount>/<our cgroup>/<parent>/<name>,
 * our cgroup read from /proc/self/cgroup (ctl "" is the v2 line). */
static void cell_cgroup_dir(char *out, size_t len, const char *mount, const char *ctl,
                            const char *name)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    assert_non_null(f);
    char line[512], own[400] = "";
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        if ((ctl[0] && !strcmp(c1 + 1, ctl)) || (!ctl[0] && c1[1] == '\0')) {
            snprintf(own, sizeof(own), "%s", c2 + 1);
            own[strcspn(own, "\n")] = '\0';
        }
    }
    fclose(f);
    snprintf(out, len, "/sys/fs/cgroup/%s%s/%s/%s", mount, strcmp(own, "/") ? own : "",
             test_cgroup(), name);
}

/* The host of the running case, freed by cleanup() even when an assert fails
 * (cmocka runs teardowns after failures), so no cgroup or Cell outlives it. */
static struct cell_host *g_host;

static void host_done(struct cell_host *h)
{
    if (h == g_host)
        g_host = NULL;
    cell_host_free(h);
}

static struct cell_host *linux_host(void)
{
    struct cell_host_config cfg = {
        .backend = "linux", .cgroup_parent = test_cgroup(), .bridge = "sctbr0"};
    struct cell_host *h = NULL;
    struct sc_error e = {0};
    int r = cell_host_new(&cfg, &h, &e);
    if (r < 0)
        fail_msg("cell_host_new: %d %s", r, e.msg);
    g_host = h;
    return h;
}

static struct cell_spec base_spec(const char *const *argv)
{
    static char name[32];
    snprintf(name, sizeof(name), "t-%d", (int)getpid());
    struct cell_spec s = {
        .name = name,
        .root = root_dir,
        .argv = argv,
        .uid = NOBODY,
        .gid = NOBODY,
        .net = CELL_NET_NONE,
    };
    return s;
}

static struct cell *start(struct cell_host *h, const struct cell_spec *s)
{
    struct cell *c = NULL;
    struct sc_error e = {0};
    int r = cell_create(h, s, &c, &e);
    if (r < 0)
        fail_msg("cell_create: %d %s", r, e.msg);
    r = cell_start(c, &e);
    if (r < 0)
        fail_msg("cell_start: %d %s", r, e.msg);
    return c;
}

/* The whole log ring as a string (the caller frees). */
static char *log_text(struct cell *c)
{
    uint64_t cur = 0;
    size_t cap = CELL_LOG_MAX;
    char *b = xmalloc(cap + 1);
    size_t n = cell_log_read(c, &cur, b, cap, NULL);
    b[n] = '\0';
    return b;
}

/* Runs spec to completion and returns its log; *st gets the final status. */
static char *run(struct cell_host *h, const struct cell_spec *s, struct cell_status *st)
{
    struct cell *c = start(h, s);
    assert_int_equal(cell_wait(c, 10 * USEC_PER_SEC), 0);
    cell_status(c, st);
    char *log = log_text(c);
    cell_free(c);
    return log;
}

static void expect_in(const char *log, const char *want)
{
    if (!strstr(log, want))
        fail_msg("expected \"%s\" in the Cell's output:\n%s", want, log);
}

/* Polls the Cell until its log holds needle (or 10 s pass). */
static bool wait_for_log(struct cell *c, const char *needle)
{
    for (int i = 0; i < 200; i++) {
        char *log = log_text(c);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        struct pollfd p = {.fd = cell_fd(c), .events = POLLIN};
        poll(&p, 1, 50);
        assert_true(cell_process(c) >= 0);
    }
    return false;
}

static void teardown_root(void)
{
    rm_tree(root_dir);
    rm_tree(vol_dir);
    root_dir[0] = vol_dir[0] = '\0';
}

/* ---- Linux: isolation --------------------------------------------------------- */

static void root_is_read_only(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c",
                          "cell_probe write /bin/x; cell_probe write /x; cell_probe write /tmp/x; "
                          "cell_probe id",
                          NULL};
    struct cell_spec s = base_spec(argv);
    struct cell_status st;
    char *log = run(h, &s, &st);
    expect_in(log, "write /bin/x: EROFS");
    expect_in(log, "write /x: EROFS");
    expect_in(log, "write /tmp/x: ok");
    expect_in(log, "uid 65534 gid 65534");
    assert_int_equal(st.exit_code, 0);
    /* and the node's tree is untouched */
    char p[128];
    snprintf(p, sizeof(p), "%s/x", root_dir);
    assert_int_equal(access(p, F_OK), -1);
    free(log);
    host_done(h);
    teardown_root();
}

static void writes_only_where_granted(void **state)
{
    make_root();
    snprintf(vol_dir, sizeof(vol_dir), "/tmp/sc-cell-vol-XXXXXX");
    assert_non_null(mkdtemp(vol_dir));
    char p[128];
    snprintf(p, sizeof(p), "%s/out", vol_dir);
    assert_int_equal(mkdir(p, 0777), 0);
    chmod(p, 0777);
    chmod(vol_dir, 0777); /* so that only Landlock, not permissions, can refuse */
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c", "cell_probe write /data/out/f; cell_probe write /data/f",
                          NULL};
    struct cell_spec s = base_spec(argv);
    struct cell_volume vol = {.source = vol_dir, .path = "/data"};
    const char *grants[] = {"fs.write:/data/out"};
    s.volumes = &vol;
    s.n_volumes = 1;
    s.grants = grants;
    s.n_grants = 1;
    struct cell_status st;
    char *log = run(h, &s, &st);
    expect_in(log, "write /data/out/f: ok");
    expect_in(log, "write /data/f: EACCES");
    snprintf(p, sizeof(p), "%s/out/f", vol_dir);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/f", vol_dir);
    assert_int_equal(access(p, F_OK), -1);
    free(log);
    host_done(h);
    teardown_root();
}

static void only_granted_port_binds(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {
        "sh", "-c", "cell_probe bind 8080; cell_probe bind 8081; cell_probe connect 8080", NULL};
    struct cell_spec s = base_spec(argv);
    const char *grants[] = {"net.listen:8080"};
    s.grants = grants;
    s.n_grants = 1;
    struct cell_status st;
    char *log = run(h, &s, &st);
    expect_in(log, "bind 8080: ok");
    expect_in(log, "bind 8081: EACCES");
    expect_in(log, "connect 8080: EACCES"); /* no net.connect grant */
    free(log);
    host_done(h);
    teardown_root();
}

/* Runs argv inside c through cell_exec_start until it ends (10 s at most). */
static struct cell_exec_result exec_in(struct cell *c, const char *const *argv)
{
    struct cell_exec *x = NULL;
    struct sc_error e = {0};
    int r = cell_exec_start(c, argv, &x, &e);
    if (r < 0)
        fail_msg("cell_exec_start: %d %s", r, e.msg);
    struct cell_exec_result res;
    for (int i = 0; i < 200 && (r = cell_exec_process(x, &res)) == 0; i++) {
        struct pollfd p = {.fd = cell_exec_fd(x), .events = POLLIN};
        poll(&p, 1, 50);
    }
    assert_int_equal(r, 1);
    cell_exec_free(x);
    return res;
}

/* cell_exec_start: a command joins the running Cell as its program runs. */
static void exec_runs_inside_the_cell(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"cell_probe", "sleep", "30", NULL};
    struct cell_spec s = base_spec(argv);
    s.hostname = "inside";
    const char *grants[] = {"net.listen:8080"};
    s.grants = grants;
    s.n_grants = 1;
    struct cell *c = start(h, &s);
    const char *cmd[] = {"sh", "-c",
                         "cell_probe id; hostname; cell_probe ps; cell_probe write /x; "
                         "cell_probe write /tmp/y; cell_probe bind 8081; cell_probe bind 8080; "
                         "cell_probe mount; exit 3",
                         NULL};
    struct cell_exec_result res = exec_in(c, cmd);
    assert_int_equal(res.exit_code, 3);
    expect_in(res.output, "uid 65534 gid 65534"); /* the Cell's identity */
    expect_in(res.output, "inside\n");            /* its uts namespace */
    expect_in(res.output, "count 3\n");           /* its pids: PID 1, sh, ps */
    expect_in(res.output, "pids: 1 ");
    expect_in(res.output, "write /x: EROFS");   /* its read-only root */
    expect_in(res.output, "write /tmp/y: ok");  /* its scratch */
    expect_in(res.output, "bind 8081: EACCES"); /* its Landlock grants */
    expect_in(res.output, "bind 8080: ok");
    expect_in(res.output, "mount /tmp: EPERM"); /* no capabilities */
    /* a missing program: 127 and why */
    const char *nope[] = {"/nope", NULL};
    res = exec_in(c, nope);
    assert_int_equal(res.exit_code, 127);
    expect_in(res.output, "exec /nope");
    /* freed while it runs (a probe's timeout): it ends, the Cell does not */
    const char *slow[] = {"cell_probe", "sleep", "30", NULL};
    struct cell_exec *x = NULL;
    struct sc_error e = {0};
    assert_int_equal(cell_exec_start(c, slow, &x, &e), 0);
    usleep(100 * 1000);
    cell_exec_free(x);
    struct cell_usage u = {0};
    for (int i = 0; i < 100; i++) {
        assert_int_equal(cell_usage(c, &u), 0);
        if (u.pids == 1)
            break;
        usleep(20 * 1000);
    }
    assert_int_equal(u.pids, 1);
    struct cell_status st;
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_RUNNING);
    cell_free(c);
    /* not running: refused */
    c = NULL;
    assert_int_equal(cell_create(h, &s, &c, &e), 0);
    assert_int_equal(cell_exec_start(c, slow, &x, &e), -ESRCH);
    cell_free(c);
    host_done(h);
    teardown_root();
}

static void host_processes_are_invisible(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c", "cell_probe ps; hostname", NULL};
    struct cell_spec s = base_spec(argv);
    s.hostname = "inside";
    struct cell_status st;
    char *log = run(h, &s, &st);
    /* sh is PID 1 and the probe its child: nothing of the node's */
    expect_in(log, "count 2\n");
    expect_in(log, "pids: 1 ");
    expect_in(log, "inside\n");
    free(log);
    host_done(h);
    teardown_root();
}

static void privileged_operations_fail(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c",
                          "cell_probe mount; cell_probe sleep 30 & sleep 0.1; "
                          "cell_probe ptrace $!; kill $!; cell_probe caps; cell_probe modload; "
                          "cell_probe userns",
                          NULL};
    struct cell_spec s = base_spec(argv);
    struct cell_status st;
    char *log = run(h, &s, &st);
    expect_in(log, "mount /tmp: EPERM");
    expect_in(log, "ptrace ");
    assert_null(strstr(log, "ptrace 2: ok"));
    assert_non_null(strstr(log, ": EPERM\ncapset"));
    expect_in(log, "capset sys_admin: EPERM");
    expect_in(log, "ambient sys_admin: EPERM");
    expect_in(log, "setuid 0: EPERM");
    expect_in(log, "CapInh:\t0000000000000000");
    expect_in(log, "CapPrm:\t0000000000000000");
    expect_in(log, "CapEff:\t0000000000000000");
    expect_in(log, "CapBnd:\t0000000000000000");
    expect_in(log, "CapAmb:\t0000000000000000");
    expect_in(log, "NoNewPrivs:\t1");
    expect_in(log, "Seccomp:\t2");
    expect_in(log, "init_module : EPERM");
    expect_in(log, "finit_module : EPERM");
    /* unprivileged user namespaces work on this node; only the filter stops them */
    expect_in(log, "unshare user: EPERM");
    free(log);
    host_done(h);
    teardown_root();
}

static void nothing_leaks_in_from_the_supervisor(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    /* a careless supervisor: an fd without O_CLOEXEC, SIGPIPE and SIGCHLD ignored,
     * SIGUSR1 blocked; the Cell must neither inherit any of it nor hang us */
    int leak = open("/proc/self/status", O_RDONLY);
    assert_true(dup2(leak, 40) == 40);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel: status is lost */
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, NULL);
    const char *argv[] = {"cell_probe", "inherited", NULL};
    struct cell_spec s = base_spec(argv);
    const char *env[] = {"PATH=/bin", "CELL_ONLY=1", NULL};
    s.env = env;
    char *path_before = xstrdup(getenv("PATH"));
    struct cell_status st;
    char *log = run(h, &s, &st);
    /* and nothing leaks out: the vfork-style child shared our memory */
    assert_string_equal(getenv("PATH"), path_before);
    assert_null(getenv("CELL_ONLY"));
    free(path_before);
    expect_in(log, "fds: 0 1 2\n");
    expect_in(log, "SigIgn:\t0000000000000000");
    expect_in(log, "SigBlk:\t0000000000000000");
    free(log);
    close(leak);
    close(40);
    host_done(h);
    teardown_root();
}

static void secrets_are_private_read_only_files(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c",
                          "cat /run/secrets/db-password; echo; ls -ln /run/secrets; "
                          "cell_probe write /run/secrets/db-password; "
                          "cell_probe write /run/secrets/new; grep ' /run/secrets ' /proc/mounts",
                          NULL};
    struct cell_spec s = base_spec(argv);
    struct cell_secret sec[] = {{"db-password", "s3cr3t", 6}, {"api.key", "k", 1}};
    s.secrets = sec;
    s.n_secrets = 2;
    struct cell_status st;
    char *log = run(h, &s, &st);
    expect_in(log, "s3cr3t\n");
    expect_in(log, "-r--------    1 65534    65534            6");
    expect_in(log, "write /run/secrets/db-password: EACCES"); /* mode 0400 */
    expect_in(log, "write /run/secrets/new: EROFS");
    expect_in(log, " /run/secrets tmpfs ro,");
    free(log);
    /* names that could escape the directory are refused */
    struct cell_secret bad[] = {{"../etc", "x", 1}};
    s.secrets = bad;
    s.n_secrets = 1;
    struct cell *c = NULL;
    struct sc_error e = {0};
    assert_int_equal(cell_create(h, &s, &c, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "secrets");
    host_done(h);
    teardown_root();
}

/* ---- Linux: limits ------------------------------------------------------------ */

static void memory_hog_is_oom_killed(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *hog[] = {"cell_probe", "hog", "256", NULL};
    struct cell_spec s = base_spec(hog);
    s.memory_bytes = 32ull << 20;
    struct cell_status st;
    char *log = run(h, &s, &st);
    assert_int_equal(st.state, CELL_DEAD);
    assert_int_equal(st.exit_signal, SIGKILL);
    assert_true(st.oom_killed);
    assert_null(strstr(log, "survived"));
    free(log);
    /* the same program under its limit survives and is not reported as OOM */
    const char *small[] = {"cell_probe", "hog", "8", NULL};
    s.argv = small;
    log = run(h, &s, &st);
    expect_in(log, "hog 8: survived");
    assert_int_equal(st.exit_code, 0);
    assert_false(st.oom_killed);
    free(log);
    host_done(h);
    teardown_root();
}

static void fork_bomb_stops_at_pids_limit(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"cell_probe", "forkbomb", NULL};
    struct cell_spec s = base_spec(argv);
    s.pids_max = 16;
    struct cell_status st;
    char *log = run(h, &s, &st);
    /* PID 1 itself is one of the 16 */
    expect_in(log, "forks 15: EAGAIN");
    free(log);
    host_done(h);
    teardown_root();
}

static void limits_and_usage_read_back(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c", "cell_probe hog 12; cell_probe sleep 30 & wait", NULL};
    struct cell_spec s = base_spec(argv);
    s.memory_bytes = 64ull << 20;
    s.cpu_millis = 250;
    s.pids_max = 32;
    struct cell *c = start(h, &s);
    assert_true(wait_for_log(c, "sleeping"));
    struct cell_usage u;
    assert_int_equal(cell_usage(c, &u), 0);
    assert_true(u.memory_peak_bytes >= 12ull << 20);
    assert_true(u.memory_peak_bytes <= 64ull << 20);
    assert_int_equal(u.pids, 2); /* sh + the probe */
    assert_true(u.cpu_usec > 0);
    char p[256], buf[64] = "";
    cell_cgroup_dir(p, sizeof(p) - 20, "cpu", "cpu", s.name);
    strcat(p, "/cpu.cfs_quota_us");
    FILE *f = fopen(p, "r");
    if (access("/sys/fs/cgroup/cpu/cgroup.procs", F_OK) == 0) /* cpu in v1, as on our VMs */
        assert_non_null(f);
    if (f) {
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        assert_string_equal(buf, "25000\n");
    }
    cell_free(c);
    host_done(h);
    teardown_root();
}

/* ---- Linux: lifecycle --------------------------------------------------------- */

/* The cpu quota is in force once the process has exec'd, and lifted while a
 * Cell is only created: a 10m quota (1 ms per 100 ms) must not throttle the
 * setup between clone and exec (cg_cell_cpu in cell_linux.h). */
static void cpu_quota_follows_the_exec(void **state)
{
    (void)state;
    make_root();
    if (access("/sys/fs/cgroup/cpu/cgroup.procs", F_OK) != 0) /* cpu in v1, as on our VMs */
        skip();
    struct cell_host *h = linux_host();
    const char *argv[] = {"cell_probe", "sleep", "30", NULL};
    struct cell_spec s = base_spec(argv);
    s.cpu_millis = 10;
    struct cell *c = NULL;
    struct sc_error e = {0};
    assert_int_equal(cell_create(h, &s, &c, &e), 0);
    char p[256];
    cell_cgroup_dir(p, sizeof(p) - 20, "cpu", "cpu", s.name);
    strcat(p, "/cpu.cfs_quota_us");
    char buf[64] = "";
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "-1\n");
    for (int run = 0; run < 2; run++) { /* the first start, and a restart */
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(cell_start(c, &e), 0);
        usec_t took = now_usec(CLOCK_MONOTONIC) - t0;
        f = fopen(p, "r");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        assert_string_equal(buf, "1000\n");
        print_message("# start %d with a 10m quota: %.1f ms\n", run, (double)took / 1000);
        assert_int_equal(cell_stop(c, USEC_PER_SEC), 0);
        assert_int_equal(cell_wait(c, 10 * USEC_PER_SEC), 0);
    }
    cell_free(c);
    host_done(h);
    teardown_root();
}

static void sigterm_ignored_then_killed_after_grace(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"cell_probe", "ignore-term", NULL};
    struct cell_spec s = base_spec(argv);
    struct cell *c = start(h, &s);
    assert_true(wait_for_log(c, "ignoring"));
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    assert_int_equal(cell_stop(c, 300 * USEC_PER_MSEC), 0);
    struct cell_status st;
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_STOPPING);
    assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
    usec_t took = now_usec(CLOCK_MONOTONIC) - t0;
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_DEAD);
    assert_true(st.stop_forced);
    assert_int_equal(st.exit_signal, SIGKILL);
    assert_true(took >= 300 * USEC_PER_MSEC);
    assert_true(took < 2 * USEC_PER_SEC);

    cell_free(c);
    host_done(h);
    teardown_root();
}

static void polite_stop_and_restart(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"cell_probe", "sleep", "30", NULL};
    struct cell_spec s = base_spec(argv);
    struct cell *c = start(h, &s);
    struct cell_status st;
    for (unsigned run = 0; run < 2; run++) {
        if (run == 1) {
            struct sc_error e = {0};
            assert_int_equal(cell_start(c, &e), 0);
        }
        assert_true(wait_for_log(c, run == 0 ? "sleeping" : "sleeping\nsleeping"));
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        cell_stop(c, 5 * USEC_PER_SEC);
        assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 < USEC_PER_SEC);
        cell_status(c, &st);
        assert_false(st.stop_forced);
        assert_int_equal(st.exit_code, 0);
        assert_int_equal(st.restarts, run);
    }
    cell_free(c);
    host_done(h);
    teardown_root();
}

static void init_forwards_sigterm(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sleep", "30", NULL}; /* no SIGTERM handler */
    struct cell_spec s = base_spec(argv);
    struct cell_status st;
    for (int with_init = 0; with_init < 2; with_init++) {
        s.init = with_init;
        struct cell *c = start(h, &s);
        usleep(100 * 1000);
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        cell_stop(c, 400 * USEC_PER_MSEC);
        assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
        usec_t took = now_usec(CLOCK_MONOTONIC) - t0;
        cell_status(c, &st);
        if (with_init) { /* forwarded: ends at once, status 128+SIGTERM */
            assert_false(st.stop_forced);
            assert_int_equal(st.exit_code, 128 + SIGTERM);
            assert_true(took < 300 * USEC_PER_MSEC);
        } else { /* PID 1 without a handler ignores SIGTERM */
            assert_true(st.stop_forced);
            assert_int_equal(st.exit_signal, SIGKILL);
            assert_true(took >= 400 * USEC_PER_MSEC);
        }
        cell_free(c);
    }
    /* PID 1 is the init program, exec'd from the host's memfd (so init Cells
     * take the vfork-style start too); the program is its child, PID 2 */
    const char *who[] = {"sh", "-c", "ls -l /proc/1/exe; echo pid $$", NULL};
    s.argv = who;
    char *log = run(h, &s, &st);
    assert_int_equal(st.exit_code, 0);
    expect_in(log, "memfd:cell-init");
    expect_in(log, "pid 2\n");
    free(log);
    /* a SIGTERM sent the moment the start is reported is not lost: the init
     * program is exec'd with the stop signals already blocked (unblocked and
     * without a handler, PID 1 would drop it and wait out the grace) */
    const char *sleeper[] = {"sleep", "30", NULL};
    s.argv = sleeper;
    for (int i = 0; i < 5; i++) {
        struct cell *c = NULL;
        struct sc_error e = {0};
        assert_int_equal(cell_create(h, &s, &c, &e), 0);
        assert_int_equal(cell_start_async(c, &e), 0);
        usec_t until = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
        int ev = 0;
        while (!(ev & CELL_EV_STARTED) && now_usec(CLOCK_MONOTONIC) < until) {
            struct pollfd p = {.fd = cell_fd(c), .events = POLLIN};
            assert_true(poll(&p, 1, 1000) >= 0);
            ev |= cell_process(c);
        }
        assert_true(ev & CELL_EV_STARTED);
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        cell_stop(c, 3 * USEC_PER_SEC);
        assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
        cell_status(c, &st);
        assert_false(st.stop_forced);
        assert_int_equal(st.exit_code, 128 + SIGTERM);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 < USEC_PER_SEC);
        cell_free(c);
    }
    /* an init Cell still reports a missing program, as its exit status */
    const char *missing[] = {"/bin/nope", NULL};
    s.argv = missing;
    log = run(h, &s, &st);
    assert_int_equal(st.exit_code, 127);
    expect_in(log, "exec /bin/nope");
    free(log);
    host_done(h);
    teardown_root();
}

static int count_lines_with(const char *file, const char *needle)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += !needle || strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void enter_own_netns(void)
{
    assert_int_equal(unshare(CLONE_NEWNET), 0);
    int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY);
    assert_true(fd >= 0);
    /* New namespaces copy IPv4 forwarding from the initial namespace, not from
     * this one; so the Cell's "0" below proves the write only on nodes that
     * forward (ours do not).  Setting it here still shows the Cell is not us. */
    assert_int_equal(write(fd, "1", 1), 1);
    close(fd);
}

static char forwarding_file(const char *path)
{
    char c = '?';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && read(fd, &c, 1) != 1)
        c = '?';
    if (fd >= 0)
        close(fd);
    return c;
}

/* What a Cell's namespace set-up does where forwarding is on: the netlink
 * query sees it and the switch goes off, for IPv4 and (when present) IPv6.
 * The Cell cases cannot show this on our nodes, whose new namespaces start
 * with forwarding off. */
static void forwarding_is_switched_off_where_it_was_on(void **state)
{
    static const char *const v6 = "/proc/sys/net/ipv6/conf/all/forwarding";
    if (geteuid() != 0)
        skip();
    enter_own_netns(); /* ipv4 forwarding 1 here */
    bool has_v6 = access(v6, F_OK) == 0;
    if (has_v6) {
        int fd = open(v6, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "1", 1), 1);
        close(fd);
    }
    int nl = nl_open();
    assert_true(nl >= 0);
    assert_int_equal(nl_forwarding(nl, AF_INET), 1);
    if (has_v6)
        assert_int_equal(nl_forwarding(nl, AF_INET6), 1);
    struct sc_error e = {0};
    assert_int_equal(net_config_inside(false, 0, 0, 0, &e), 0);
    assert_int_equal(nl_forwarding(nl, AF_INET), 0);
    assert_int_equal(forwarding_file("/proc/sys/net/ipv4/ip_forward"), '0');
    if (has_v6) {
        assert_int_equal(nl_forwarding(nl, AF_INET6), 0);
        assert_int_equal(forwarding_file(v6), '0');
    }
    /* already off: nothing to write, still 0 */
    assert_int_equal(net_config_inside(false, 0, 0, 0, &e), 0);
    assert_int_equal(forwarding_file("/proc/sys/net/ipv4/ip_forward"), '0');
    close(nl);
}

static void nothing_remains_after_stop(void **state)
{
    make_root();
    enter_own_netns();
    int mounts_before = count_lines_with("/proc/self/mountinfo", NULL);
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c",
                          "cell_probe sleep & cell_probe sleep & cell_probe sleep & wait", NULL};
    struct cell_spec s = base_spec(argv);
    s.net = CELL_NET_BRIDGE;
    s.pids_max = 10;
    s.memory_bytes = 64 << 20;
    struct cell *c = start(h, &s);
    usleep(200 * 1000);
    /* what the node sees of the Cell */
    char dirs[3][256];
    cell_cgroup_dir(dirs[0], sizeof(dirs[0]), "unified", "", s.name);
    cell_cgroup_dir(dirs[1], sizeof(dirs[1]), "pids", "pids", s.name);
    cell_cgroup_dir(dirs[2], sizeof(dirs[2]), "memory", "memory", s.name);
    for (int i = 0; i < 3; i++)
        if (access(dirs[i], F_OK) != 0)
            fail_msg("the Cell's cgroup %s should exist while it runs", dirs[i]);
    char procs[300];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", dirs[1]);
    int pids[16], n = 0;
    FILE *f = fopen(procs, "r");
    assert_non_null(f);
    while (n < 16 && fscanf(f, "%d", &pids[n]) == 1)
        n++;
    fclose(f);
    assert_int_equal(n, 4); /* sh + three probes */
    struct cell_status st;
    cell_status(c, &st);
    char veth[IF_NAMESIZE];
    struct in_addr ip;
    assert_int_equal(inet_pton(AF_INET, st.ip, &ip), 1);
    snprintf(veth, sizeof(veth), "scv%x", ntohl(ip.s_addr));
    assert_true(if_nametoindex(veth) > 0);

    cell_stop(c, 200 * USEC_PER_MSEC); /* sh as PID 1 ignores SIGTERM: forced */
    assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
    cell_free(c);

    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], 0) == -1 && errno == ESRCH, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(access(dirs[i], F_OK), -1);
    /* the veth pair dies with the Cell's network namespace, which the kernel
     * dismantles asynchronously (cell_linux.c, invariant 3): give it 3 s */
    for (int i = 0; i < 300 && if_nametoindex(veth) > 0; i++)
        usleep(10 * 1000);
    assert_int_equal(if_nametoindex(veth), 0);
    assert_int_equal(count_lines_with("/proc/self/mountinfo", NULL), mounts_before);
    assert_int_equal(count_lines_with("/proc/self/mountinfo", root_dir), 0);
    host_done(h);
    teardown_root();
}

/* ---- Linux: networking ------------------------------------------------------- */

static void bridged_cell_is_reachable_and_does_not_forward(void **state)
{
    make_root();
    enter_own_netns();
    /* the node side listens on the bridge address for the Cell's connect */
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c",
                          "cat /proc/sys/net/ipv4/ip_forward; cell_probe connect 9000 10.88.0.1; "
                          "cell_probe connect 9001 10.88.0.1; cell_probe serve 8080",
                          NULL};
    struct cell_spec s = base_spec(argv);
    s.net = CELL_NET_BRIDGE;
    const char *grants[] = {"net.listen:8080", "net.connect:9000"};
    s.grants = grants;
    s.n_grants = 2;
    struct cell *c = NULL;
    struct sc_error e = {0};
    assert_int_equal(cell_create(h, &s, &c, &e), 0); /* creates the bridge */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9000)};
    inet_pton(AF_INET, "10.88.0.1", &a.sin_addr);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 4), 0);
    int r = cell_start(c, &e);
    if (r < 0)
        fail_msg("start: %s", e.msg);
    struct cell_status st;
    cell_status(c, &st);
    assert_string_equal(st.ip, "10.88.0.2");
    assert_true(wait_for_log(c, "serve 8080"));
    char *log = log_text(c);
    expect_in(log, "0\nconnect 9000: ok");
    expect_in(log, "connect 9001: EACCES");
    expect_in(log, "serve 8080: ok");
    free(log);
    int cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(8080)};
    inet_pton(AF_INET, "10.88.0.2", &b.sin_addr);
    assert_int_equal(connect(cs, (struct sockaddr *)&b, sizeof(b)), 0);
    char buf[64] = "";
    assert_int_equal(read(cs, buf, sizeof(buf) - 1), 20);
    assert_string_equal(buf, "hello from the cell\n");
    close(cs);
    close(ls);
    assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
    cell_status(c, &st);
    assert_int_equal(st.exit_code, 0);
    cell_free(c);
    host_done(h);
    teardown_root();
}

static void network_slots_are_prepared_and_kept_across_restarts(void **state)
{
    make_root();
    enter_own_netns();
    struct cell_host_config cfg = {
        .backend = "linux", .cgroup_parent = test_cgroup(), .bridge = "sctbr1", .net_pool = 2};
    struct cell_host *h = NULL;
    struct sc_error e = {0};
    assert_int_equal(cell_host_new(&cfg, &h, &e), 0);
    g_host = h;
    assert_int_equal(if_nametoindex("sctbr1"), 0); /* nothing until needed */
    assert_int_equal(cell_host_prepare(h, &e), 0);
    /* two namespaces are ready, each with its veth on the bridge */
    assert_true(if_nametoindex("scva580002") > 0);
    assert_true(if_nametoindex("scva580003") > 0);
    const char *argv[] = {"sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; ip -4 -o addr show eth0",
                          NULL};
    struct cell_spec s = base_spec(argv);
    s.net = CELL_NET_BRIDGE;
    struct cell *c = NULL;
    assert_int_equal(cell_create(h, &s, &c, &e), 0);
    struct cell_status st;
    cell_status(c, &st);
    const char *ip = strcmp(st.ip, "10.88.0.3") == 0 ? "10.88.0.3" : "10.88.0.2";
    assert_string_equal(st.ip, ip); /* taken from the pool */
    for (int run = 0; run < 2; run++) {
        assert_int_equal(cell_start(c, &e), 0);
        assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
        cell_status(c, &st);
        assert_int_equal(st.exit_code, 0);
        assert_string_equal(st.ip, ip); /* the restart kept its address */
    }
    char *log = log_text(c);
    char want[64];
    snprintf(want, sizeof(want), "0\n2: eth0    inet %s/24", ip);
    expect_in(log, want);
    free(log);
    /* the pool is not refilled behind our back; a second Cell makes its own slot */
    cell_free(c);
    host_done(h);
    for (int i = 0; i < 300 && (if_nametoindex("scva580002") || if_nametoindex("scva580003")); i++)
        usleep(10 * 1000);
    assert_int_equal(if_nametoindex("scva580002"), 0);
    assert_int_equal(if_nametoindex("scva580003"), 0);
    teardown_root();
}

/* ---- Linux: logs, errors, many Cells ---------------------------------------- */

static void log_ring_is_bounded_and_followable(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"sh", "-c",
                          "echo out; echo err >&2; i=0; while [ $i -lt 300 ]; do "
                          "echo line-$i; i=$((i+1)); done; echo last",
                          NULL};
    struct cell_spec s = base_spec(argv);
    s.log_bytes = 1024;
    struct cell *c = start(h, &s);
    assert_int_equal(cell_wait(c, 5 * USEC_PER_SEC), 0);
    uint64_t cur = 0, dropped = 0;
    char buf[4096];
    size_t n = cell_log_read(c, &cur, buf, sizeof(buf) - 1, &dropped);
    buf[n] = '\0';
    assert_int_equal(n, 1024);
    assert_true(dropped > 0);
    assert_int_equal(cur, cell_log_end(c));
    assert_int_equal(dropped + n, cell_log_end(c));
    assert_non_null(strstr(buf, "line-299\nlast\n"));
    assert_null(strstr(buf, "out\nerr\n"));
    cell_free(c);

    /* unbounded by default size: stdout and stderr both land in order */
    s.log_bytes = 0;
    const char *two[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    s.argv = two;
    struct cell_status st;
    char *log = run(h, &s, &st);
    assert_string_equal(log, "out\nerr\n");
    free(log);
    host_done(h);
    teardown_root();
}

static void bad_specs_are_refused_before_anything_runs(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    const char *argv[] = {"true", NULL};
    struct cell_spec s = base_spec(argv);
    struct cell *c = NULL;
    struct sc_error e = {0};
    s.uid = 0;
    assert_int_equal(cell_create(h, &s, &c, &e), -SC_E_INVALID);
    s.uid = NOBODY;
    const char *bad[] = {"net.listen:99999"};
    s.grants = bad;
    s.n_grants = 1;
    assert_int_equal(cell_create(h, &s, &c, &e), -SC_E_INVALID);
    assert_string_equal(e.field, "grants");
    s.n_grants = 0;
    s.root = "/nonexistent-root";
    assert_int_equal(cell_create(h, &s, &c, &e), -ENOENT);
    s.root = root_dir;
    /* a missing program fails cell_start with the child's message */
    const char *missing[] = {"/bin/nope", NULL};
    s.argv = missing;
    assert_int_equal(cell_create(h, &s, &c, &e), 0);
    assert_int_equal(cell_start(c, &e), -ENOENT);
    expect_in(e.msg, "exec /bin/nope");
    struct cell_status st;
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_CREATED);
    /* an fs grant for a path absent from the image is an error, not a silent no-op */
    cell_free(c);
    const char *absent[] = {"fs.read:/absent"};
    s.argv = argv;
    s.grants = absent;
    s.n_grants = 1;
    assert_int_equal(cell_create(h, &s, &c, &e), 0);
    assert_int_equal(cell_start(c, &e), -ENOENT);
    expect_in(e.msg, "/absent");
    cell_free(c);
    host_done(h);
    teardown_root();
}

static void many_cells_started_async_on_one_poll_loop(void **state)
{
    make_root();
    struct cell_host *h = linux_host();
    enum { N = 8 };
    struct cell *cs[N];
    char names[N][16];
    const char *argv[] = {"sh", "-c", "echo hi; sleep 0.2", NULL};
    const char *bad[] = {"/bin/nope", NULL};
    /* started without waiting for each child's setup; the last one cannot exec */
    for (int i = 0; i < N; i++) {
        struct cell_spec s = base_spec(i == N - 1 ? bad : argv);
        s.init = i == 0; /* an init Cell goes through a spawner too */
        snprintf(names[i], sizeof(names[i]), "m%d-%d", i, (int)getpid() % 10000);
        s.name = names[i];
        struct sc_error e = {0};
        assert_int_equal(cell_create(h, &s, &cs[i], &e), 0);
        assert_int_equal(cell_start_async(cs[i], &e), 0);
    }
    int dead = 0, started = 0;
    usec_t until = now_usec(CLOCK_MONOTONIC) + 5 * USEC_PER_SEC;
    while (dead < N && now_usec(CLOCK_MONOTONIC) < until) {
        struct pollfd p[N];
        for (int i = 0; i < N; i++)
            p[i] = (struct pollfd){.fd = cell_fd(cs[i]), .events = POLLIN};
        assert_true(poll(p, N, 1000) >= 0);
        for (int i = 0; i < N; i++)
            if (p[i].revents) {
                int ev = cell_process(cs[i]);
                assert_true(ev >= 0);
                started += (ev & CELL_EV_STARTED) != 0;
                dead += (ev & CELL_EV_EXIT) != 0;
            }
    }
    assert_int_equal(dead, N);
    assert_int_equal(started, N - 1);
    for (int i = 0; i < N - 1; i++) {
        char *log = log_text(cs[i]);
        assert_string_equal(log, "hi\n");
        free(log);
        struct cell_status st;
        cell_status(cs[i], &st);
        assert_false(st.start_failed);
        assert_int_equal(st.exit_code, 0);
    }
    struct cell_status st;
    cell_status(cs[N - 1], &st);
    assert_true(st.start_failed);
    assert_int_equal(st.exit_code, 127);
    expect_in(st.start_error, "exec /bin/nope");
    for (int i = 0; i < N; i++)
        cell_free(cs[i]);
    /* Freed (or stopped) while their starts are still with a spawner: the
     * free waits for the start and then tears everything down; nothing of
     * them remains (their pids are only known to the spawner's reply, so
     * check the cgroups, which hold every process). */
    const char *sleeper[] = {"sleep", "30", NULL};
    char dirs[N][2][512];
    for (int i = 0; i < N; i++) {
        struct cell_spec s = base_spec(sleeper);
        snprintf(names[i], sizeof(names[i]), "q%d-%d", i, (int)getpid() % 10000);
        s.name = names[i];
        struct sc_error e = {0};
        assert_int_equal(cell_create(h, &s, &cs[i], &e), 0);
        assert_int_equal(cell_start_async(cs[i], &e), 0);
        cell_cgroup_dir(dirs[i][0], sizeof(dirs[i][0]), "unified", "", s.name);
        cell_cgroup_dir(dirs[i][1], sizeof(dirs[i][1]), "pids", "pids", s.name);
    }
    for (int i = 0; i < N; i++) {
        if (i % 2)
            assert_int_equal(cell_stop(cs[i], 5 * USEC_PER_SEC), 0); /* waits, SIGTERM */
        cell_free(cs[i]);
        assert_int_equal(access(dirs[i][0], F_OK), -1);
        assert_int_equal(access(dirs[i][1], F_OK), -1);
    }
    host_done(h);
    teardown_root();
}

/* ---- sim backend --------------------------------------------------------------- */

static struct cell_host *sim_host(void)
{
    struct cell_host_config cfg = {.backend = "sim"};
    struct cell_host *h = NULL;
    assert_int_equal(cell_host_new(&cfg, &h, NULL), 0);
    assert_string_equal(cell_host_backend(h), "sim");
    return h;
}

static void sim_lifecycle(void **state)
{
    struct cell_host *h = sim_host();
    const char *argv[] = {"/bin/true", NULL};
    struct cell_spec s = {
        .name = "s1", .root = "/img", .argv = argv, .uid = 1, .gid = 1, .memory_bytes = 1 << 20};
    struct cell *c;
    assert_int_equal(cell_create(h, &s, &c, NULL), 0);
    assert_int_equal(cell_fd(c), -1);
    struct cell_status st;
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_CREATED);
    assert_int_equal(cell_start(c, NULL), 0);
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_RUNNING);
    assert_int_equal(cell_process(c), CELL_EV_EXIT);
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_DEAD);
    assert_int_equal(st.exit_code, 0);
    assert_int_equal(cell_start(c, NULL), 0);
    assert_int_equal(cell_wait(c, USEC_PER_SEC), 0);
    cell_status(c, &st);
    assert_int_equal(st.restarts, 1);
    /* a second Cell with the same name is refused */
    struct cell *d;
    struct sc_error e = {0};
    assert_int_equal(cell_create(h, &s, &d, &e), -EEXIST);
    cell_host_free(h);
}

/* The host's name index stays true while Cells come and go in any order: a
 * freed name can be used again, a live one cannot, at 20,000 Cells. */
static void sim_names_index(void **state)
{
    (void)state;
    struct cell_host *h = sim_host();
    const char *argv[] = {"/app", NULL};
    enum { N = 20000 };
    struct cell **cs = calloc(N, sizeof(*cs));
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "c-%d", i);
        struct cell_spec s = {.name = name, .root = "/", .argv = argv, .uid = 1, .gid = 1};
        assert_int_equal(cell_create(h, &s, &cs[i], NULL), 0);
    }
    srand(3);
    for (int i = 0; i < N; i += 1 + rand() % 3) { /* free about half, scattered */
        cell_free(cs[i]);
        cs[i] = NULL;
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "c-%d", i);
        struct cell_spec s = {.name = name, .root = "/", .argv = argv, .uid = 1, .gid = 1};
        struct cell *c = NULL;
        int r = cell_create(h, &s, &c, NULL);
        if (cs[i]) {
            assert_int_equal(r, -EEXIST);
        } else {
            assert_int_equal(r, 0);
            cs[i] = c;
        }
    }
    for (int i = N - 1; i >= 0; i -= 2)
        cell_free(cs[i]);
    free(cs);
    cell_host_free(h); /* frees the rest */
}

static void sim_stop_grace_oom_and_logs(void **state)
{
    struct cell_host *h = sim_host();
    const char *argv[] = {"server", NULL};
    struct cell_spec s = {
        .name = "s2", .root = "/img", .argv = argv, .uid = 1, .gid = 1, .memory_bytes = 4 << 20};
    struct cell *c;
    assert_int_equal(cell_create(h, &s, &c, NULL), 0);
    assert_int_equal(cell_start(c, NULL), 0);
    assert_int_equal(cell_process(c), 0); /* a server keeps running */
    struct cell_usage u;
    cell_usage(c, &u);
    assert_int_equal(u.pids, 1);
    assert_int_equal(u.memory_bytes, 1 << 20);
    assert_int_equal(cell_sim_write_log(c, "hello\n"), 0);
    uint64_t cur = 0;
    char buf[16] = "";
    assert_int_equal(cell_log_read(c, &cur, buf, sizeof(buf), NULL), 6);
    assert_string_equal(buf, "hello\n");
    /* stop honoured */
    cell_stop(c, 0);
    assert_int_equal(cell_process(c), CELL_EV_EXIT);
    struct cell_status st;
    cell_status(c, &st);
    assert_int_equal(st.exit_signal, SIGTERM);
    assert_false(st.stop_forced);
    /* stop ignored: only the deadline ends it */
    cell_sim_ignore_term(c, true);
    assert_int_equal(cell_start(c, NULL), 0);
    cell_stop(c, 20 * USEC_PER_MSEC);
    assert_int_equal(cell_process(c), 0);
    cell_status(c, &st);
    assert_int_equal(st.state, CELL_STOPPING);
    assert_int_equal(cell_wait(c, USEC_PER_SEC), 0);
    cell_status(c, &st);
    assert_true(st.stop_forced);
    assert_int_equal(st.exit_signal, SIGKILL);
    /* OOM, after an asynchronous start */
    assert_int_equal(cell_start_async(c, NULL), 0);
    assert_int_equal(cell_process(c), CELL_EV_STARTED);
    assert_int_equal(cell_sim_oom(c), 0);
    assert_int_equal(cell_process(c), CELL_EV_EXIT);
    cell_status(c, &st);
    assert_true(st.oom_killed);
    assert_int_equal(st.restarts, 2);
    cell_host_free(h);
}

static void sim_scales_to_thousands(void **state)
{
    struct cell_host *h = sim_host();
    enum { N = 5000 };
    const char *argv[] = {"server", NULL};
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        struct cell_spec s = {.name = name, .root = "/img", .argv = argv, .uid = 1, .gid = 1};
        struct cell *c;
        assert_int_equal(cell_create(h, &s, &c, NULL), 0);
        assert_int_equal(cell_start(c, NULL), 0);
    }
    cell_host_free(h);
}

static void quantities_and_grants_parse(void **state)
{
    uint64_t v;
    assert_int_equal(cell_parse_cpu("100m", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(cell_parse_cpu("1.5", &v), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(cell_parse_cpu("-1", &v), -SC_E_INVALID);
    assert_int_equal(cell_parse_cpu("10x", &v), -SC_E_INVALID);
    assert_int_equal(cell_parse_bytes("64Mi", &v), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(cell_parse_bytes("1G", &v), 0);
    assert_int_equal(v, 1000000000ull);
    assert_int_equal(cell_parse_bytes("12Qi", &v), -SC_E_INVALID);
    assert_int_equal(cell_parse_bytes("99999999999999Ti", &v), -SC_E_INVALID);
    struct cell_grant g;
    assert_int_equal(cell_grant_parse("net.listen:8080", &g, NULL), 0);
    assert_int_equal(g.kind, CELL_GRANT_NET_LISTEN);
    assert_int_equal(g.port, 8080);
    assert_int_equal(cell_grant_parse("fs.write:/data", &g, NULL), 0);
    assert_string_equal(g.path, "/data");
    assert_int_equal(cell_grant_parse("fs.write:data", &g, NULL), -SC_E_INVALID);
    assert_int_equal(cell_grant_parse("fs.read:/a/../b", &g, NULL), -SC_E_INVALID);
    assert_int_equal(cell_grant_parse("net.connect:0", &g, NULL), -SC_E_INVALID);
    assert_int_equal(cell_grant_parse("net.connect:80x", &g, NULL), -SC_E_INVALID);
    assert_int_equal(cell_grant_parse("sys.admin", &g, NULL), -SC_E_INVALID);
}

static int cleanup(void **state)
{
    cell_host_free(g_host);
    g_host = NULL;
    teardown_root();
    return 0;
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(root_is_read_only, cleanup),
        cmocka_unit_test_teardown(writes_only_where_granted, cleanup),
        cmocka_unit_test_teardown(only_granted_port_binds, cleanup),
        cmocka_unit_test_teardown(host_processes_are_invisible, cleanup),
        cmocka_unit_test_teardown(privileged_operations_fail, cleanup),
        cmocka_unit_test_teardown(nothing_leaks_in_from_the_supervisor, cleanup),
        cmocka_unit_test_teardown(secrets_are_private_read_only_files, cleanup),
        cmocka_unit_test_teardown(memory_hog_is_oom_killed, cleanup),
        cmocka_unit_test_teardown(fork_bomb_stops_at_pids_limit, cleanup),
        cmocka_unit_test_teardown(limits_and_usage_read_back, cleanup),
        cmocka_unit_test_teardown(cpu_quota_follows_the_exec, cleanup),
        cmocka_unit_test_teardown(sigterm_ignored_then_killed_after_grace, cleanup),
        cmocka_unit_test_teardown(polite_stop_and_restart, cleanup),
        cmocka_unit_test_teardown(init_forwards_sigterm, cleanup),
        cmocka_unit_test_teardown(nothing_remains_after_stop, cleanup),
        cmocka_unit_test_teardown(bridged_cell_is_reachable_and_does_not_forward, cleanup),
        cmocka_unit_test_teardown(network_slots_are_prepared_and_kept_across_restarts, cleanup),
        cmocka_unit_test_teardown(log_ring_is_bounded_and_followable, cleanup),
        cmocka_unit_test_teardown(bad_specs_are_refused_before_anything_runs, cleanup),
        cmocka_unit_test_teardown(many_cells_started_async_on_one_poll_loop, cleanup),
        cmocka_unit_test(forwarding_is_switched_off_where_it_was_on),
        cmocka_unit_test(exec_runs_inside_the_cell),
        cmocka_unit_test(sim_lifecycle),
        cmocka_unit_test(sim_names_index),
        cmocka_unit_test(sim_stop_grace_oom_and_logs),
        cmocka_unit_test(sim_scales_to_thousands),
        cmocka_unit_test(quantities_and_grants_parse),
    };
    return sc_test_main(tests, argc, argv);
}
