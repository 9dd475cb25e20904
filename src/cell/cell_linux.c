/*
 * cell_linux.c: the Linux backend of the Cell supervisor.
 *
 * One Cell start is: cgroups made at create time (limits written once) and,
 * under CELL_NET_BRIDGE, a prepared network slot taken (cell_net.c); then one
 * clone with CLONE_NEWNS|NEWPID|NEWIPC|NEWUTS[|NEWNET]|CLONE_PIDFD, in one of
 * two ways:
 *   - cell_start without init: CLONE_VM|CLONE_VFORK on a stack the host keeps.
 *     The supervisor is suspended until the child execs or exits; the child
 *     joins its own cgroups, builds its sandbox and execs, allocating nothing
 *     (it shares the supervisor's memory).  Fastest: no page tables copied, no
 *     copy-on-write, no hand-off between the two.
 *   - cell_start_async without init: the same vfork-style child, made by a
 *     spawner process (cell_spawn.c) with CLONE_PARENT, so the supervisor
 *     does not block and the Cell is still its child; pid and pidfd arrive
 *     with the spawner's reply.
 *   Init Cells take these paths too: their PID 1 execs the init program
 *   (cell_init.c) from a memfd the host made once.
 *   - without that memfd, or when no spawner can take an async start:
 *     clone3(...|CLONE_INTO_CGROUP)
 *     of a copy whose child waits on a pipe while the parent moves it into the
 *     v1 cgroups, so the supervisor never blocks on the child.
 * The child builds its own sandbox (cell_sandbox.c), joining its slot's
 * namespace if it has one, and execs.  The parent learns "exec happened" from
 * EOF on a close-on-exec error pipe, or reads the child's error message from it.
 * Afterwards everything the supervisor needs is behind one epoll fd per Cell
 * (the pidfd and the log pipe), so a libevent loop can supervise many Cells
 * without threads.
 *
 * Design (backend part; the lifecycle is in cell.c)
 *   1. A Cell's processes all live in its pid namespace: when PID 1 is reaped the
 *      kernel has already killed and reaped the rest, so "reaped" means "no
 *      process left".  cgroup.kill is still sent on kill for belt and braces.
 *   2. Mounts exist only in the Cell's mount namespace, which dies with its last
 *      process; nothing is ever mounted in the node's namespace.
 *   3. A bridged Cell's network namespace (and veth, address) lives from
 *      create to free, across restarts; it is released by cell_free and
 *      dismantled by the kernel asynchronously.  Nothing network-related is
 *      made or deleted on the start/stop path (docs/cell.md has the numbers).
 *   4. cgroups exist from create to free; a restart reuses them, and OOM kills
 *      are counted against the value read at start.
 */
#include "cell/cell_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define VFORK_STACK_BYTES (1u << 20)

/* Under AddressSanitizer a child that leaves through exec or _exit never
 * unpoisons its frames' redzones on the reused vfork stack, which ASan does not
 * know as a stack: clear its shadow before every use. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define VFORK_STACK_RESET(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define VFORK_STACK_RESET(p, n) ((void)0)
#endif

struct linux_host {
    struct cg_layout cg;
    char *vfork_stack; /* for the vfork-style child of synchronous starts */
    void *seccomp;
    int init_fd; /* the init program's memfd, -1 if this kernel would not make one */
    int landlock_abi;
    unsigned cap_last;
    struct net_node net;
    struct spawn_pool spawn; /* cell_start_async's vfork-style starts (cell_spawn.c) */
};

struct linux_cell {
    struct cg_cell cg;
    int pidfd, logfd;
    int errfd;    /* cell_start_async: the child's error pipe until EOF or a report,
                     or the spawner's reply socket until its reply */
    int spawner;  /* 1 + the spawner's index while its reply is pending, else 0 */
    int ev_saved; /* CELL_EV_* taken while waiting for a reply outside process() */
    pid_t pid;
    struct net_slot slot; /* CELL_NET_BRIDGE: from create to free */
    bool cpu_set;         /* the cpu quota is in force (set after each exec) */
};

static int pidfd_signal(int pidfd, int sig)
{
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        return -errno;
    return 0;
}

/* ---- host ---------------------------------------------------------------------- */

static int linux_host_init(struct cell_host *h, const struct cell_host_config *cfg,
                           struct sc_error *e)
{
    if (geteuid() != 0)
        return sc_error_set(e, -EPERM, "host", "the Linux Cell backend needs root");
    struct linux_host *lh = xcalloc(1, sizeof(*lh));
    int r = cg_layout_discover(&lh->cg, cfg->cgroup_parent ? cfg->cgroup_parent : "swiftcube", e);
    if (r >= 0)
        r = sandbox_seccomp_build(&lh->seccomp, e);
    if (r < 0) {
        cg_layout_done(&lh->cg);
        free(lh);
        return r;
    }
    lh->landlock_abi = sandbox_landlock_abi();
    lh->vfork_stack = mmap(NULL, VFORK_STACK_BYTES, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (lh->vfork_stack == MAP_FAILED)
        lh->vfork_stack = NULL; /* then every start takes the clone3 path */
    lh->cap_last = 40;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) {
        if (fscanf(f, "%u", &lh->cap_last) != 1)
            lh->cap_last = 40;
        fclose(f);
    }
    r = net_node_init(&lh->net, cfg->bridge, cfg->net_addr_be, cfg->net_prefix, cfg->net_pool, e);
    if (r < 0) {
        free(lh->seccomp);
        cg_layout_done(&lh->cg);
        free(lh);
        return r;
    }
    /* Forked now, before any Cell (and secret) exists; none at all is fine:
     * async starts then clone3 a copy of the supervisor. */
    lh->init_fd = sandbox_init_memfd();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n_spawners = cfg->spawners ? cfg->spawners : ncpu > 0 ? (unsigned)ncpu : 1;
    struct spawn_ctx sctx = {lh->seccomp, lh->landlock_abi, lh->cap_last, lh->init_fd};
    (void)spawn_pool_start(&lh->spawn, n_spawners, &sctx);
    h->impl = lh;
    return 0;
}

static void linux_host_done(struct cell_host *h)
{
    struct linux_host *lh = h->impl;
    spawn_pool_stop(&lh->spawn);
    if (lh->init_fd >= 0)
        close(lh->init_fd);
    net_node_done(&lh->net);
    if (lh->vfork_stack)
        munmap(lh->vfork_stack, VFORK_STACK_BYTES);
    sandbox_seccomp_free(lh->seccomp);
    cg_layout_done(&lh->cg);
    free(lh);
}

static int linux_prepare(struct cell_host *h, struct sc_error *e)
{
    struct linux_host *lh = h->impl;
    return net_node_fill(&lh->net, e);
}

/* ---- create / destroy ------------------------------------------------------------ */

static int linux_create(struct cell *c, struct sc_error *e)
{
    struct linux_host *lh = c->host->impl;
    if (access(c->spec.root, X_OK) < 0)
        return sc_error_set(e, -errno, "root", "image root %s: %m", c->spec.root);
    struct linux_cell *lc = xcalloc(1, sizeof(*lc));
    lc->pidfd = lc->logfd = lc->errfd = -1;
    int r = 0;
    lc->slot.nsfd = -1;
    if (c->spec.net == CELL_NET_BRIDGE) {
        r = net_slot_get(&lh->net, &lc->slot, e);
        if (r < 0)
            goto fail;
        struct in_addr a = {.s_addr = htonl(lc->slot.ip)};
        inet_ntop(AF_INET, &a, c->st.ip, sizeof(c->st.ip));
    }
    r = cg_cell_create(&lh->cg, &lc->cg, c->spec.name, &c->spec, e);
    if (r < 0)
        goto fail;
    c->fd = epoll_create1(EPOLL_CLOEXEC);
    if (c->fd < 0) {
        r = sc_error_set(e, -errno, "epoll", "epoll_create1: %m");
        cg_cell_remove(&lc->cg);
        goto fail;
    }
    c->impl = lc;
    return 0;
fail:
    net_slot_put(&lh->net, &lc->slot);
    free(lc);
    return r;
}

/* What a child whose setup failed writes on the error pipe. */
struct child_error {
    int r;
    char msg[256];
};

/* The cpu quota follows the exec (cg_cell_cpu in cell_linux.h).  Writing an
 * existing cgroup file does not fail in practice; if it did, the Cell would run
 * without its cpu cap rather than not at all, and the next start tries again. */
static void cpu_after_exec(struct cell *c, struct linux_cell *lc)
{
    struct linux_host *lh = c->host->impl;
    struct sc_error e;
    if (c->spec.cpu_millis && !lc->cpu_set &&
        cg_cell_cpu(&lh->cg, &lc->cg, c->spec.cpu_millis, &e) == 0)
        lc->cpu_set = true;
}

/* A spawner's reply, if there is one yet: the Cell's pid and pidfd, and
 * whether it exec'd.  Without a child (clone failed, the spawner died) the
 * Cell is dead at once: exit 127, start_failed. */
static int spawn_replied(struct cell *c, struct linux_cell *lc)
{
    struct linux_host *lh = c->host->impl;
    int pid, pidfd;
    char msg[sizeof(c->st.start_error)];
    int r = spawn_reply_read(lc->errfd, MSG_DONTWAIT, &pid, &pidfd, msg, sizeof(msg));
    if (r == -EAGAIN || r == -EWOULDBLOCK)
        return 0;
    spawn_done(&lh->spawn, lc->spawner - 1);
    lc->spawner = 0;
    epoll_ctl(c->fd, EPOLL_CTL_DEL, lc->errfd, NULL);
    close(lc->errfd);
    lc->errfd = -1;
    if (r < 0) {
        c->st.start_failed = true;
        snprintf(c->st.start_error, sizeof(c->st.start_error), "%s", msg);
    }
    if (pid <= 0) {
        (void)cg_cell_kill(&lc->cg); /* in case a child exists that we never heard of */
        cell_mark_dead(c, 127, 0);
        return CELL_EV_EXIT;
    }
    lc->pidfd = pidfd;
    lc->pid = pid;
    c->st.pid = pid;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = pidfd};
    epoll_ctl(c->fd, EPOLL_CTL_ADD, pidfd, &ev);
    if (r < 0)
        return 0; /* a failed child exits 127: reaped as usual */
    cpu_after_exec(c, lc);
    return CELL_EV_STARTED;
}

/* Before anything acts on the process: a start still with its spawner is
 * waited for (a few milliseconds), its events kept for the next process(). */
static void await_spawn(struct cell *c, struct linux_cell *lc)
{
    while (lc->spawner) { /* invariant 2 of cell_spawn.c: a reply or EOF comes */
        struct pollfd p = {.fd = lc->errfd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
        lc->ev_saved |= spawn_replied(c, lc);
    }
}

/* cell_start_async: EOF on the error pipe means exec happened; a report
 * means setup failed (the child then exits 127 and is reaped as usual). */
static int check_started(struct cell *c, struct linux_cell *lc)
{
    if (lc->errfd < 0)
        return 0;
    if (lc->spawner)
        return spawn_replied(c, lc);
    struct child_error ce;
    ssize_t n = read(lc->errfd, &ce, sizeof(ce));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    int ev = 0;
    if (n == (ssize_t)sizeof(ce)) {
        c->st.start_failed = true;
        snprintf(c->st.start_error, sizeof(c->st.start_error), "%s", ce.msg);
    } else if (n == 0) {
        ev = CELL_EV_STARTED;
        cpu_after_exec(c, lc);
    } else {
        c->st.start_failed = true;
        snprintf(c->st.start_error, sizeof(c->st.start_error), "short report from the child");
    }
    epoll_ctl(c->fd, EPOLL_CTL_DEL, lc->errfd, NULL);
    close(lc->errfd);
    lc->errfd = -1;
    return ev;
}

/* Drains the log pipe; returns true if bytes arrived. */
static bool drain_log(struct cell *c, struct linux_cell *lc)
{
    bool got = false;
    char buf[4096];
    while (lc->logfd >= 0) {
        ssize_t n = read(lc->logfd, buf, sizeof(buf));
        if (n > 0) {
            cell_log_append(c, buf, (size_t)n);
            got = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) { /* every writer is gone */
            epoll_ctl(c->fd, EPOLL_CTL_DEL, lc->logfd, NULL);
            close(lc->logfd);
            lc->logfd = -1;
        }
        break;
    }
    return got;
}

/* Collects PID 1 if it has exited (blocking when wait is true). */
static bool reap(struct cell *c, bool wait)
{
    struct linux_cell *lc = c->impl;
    if (lc->spawner)
        return false; /* the process is not ours to see yet */
    if (lc->pidfd < 0)
        return true;
    siginfo_t si = {0};
    int flags = WEXITED | (wait ? 0 : WNOHANG);
    while (waitid((idtype_t)P_PIDFD, (id_t)lc->pidfd, &si, flags) < 0) {
        if (errno == ECHILD) { /* SIGCHLD ignored by the caller: reaped, status lost */
            si.si_pid = lc->pid;
            si.si_code = CLD_EXITED;
            si.si_status = -1;
            break;
        }
        if (errno != EINTR)
            return false;
    }
    if (si.si_pid == 0)
        return false;
    drain_log(c, lc);
    if (lc->logfd >= 0) { /* a writer might survive only outside the pid ns: never */
        epoll_ctl(c->fd, EPOLL_CTL_DEL, lc->logfd, NULL);
        close(lc->logfd);
        lc->logfd = -1;
    }
    (void)check_started(c, lc); /* a report written just before the exit */
    epoll_ctl(c->fd, EPOLL_CTL_DEL, lc->pidfd, NULL);
    close(lc->pidfd);
    lc->pidfd = -1;
    lc->pid = 0;
    c->st.oom_killed = cg_cell_oom_kills(&lc->cg) > lc->cg.oom_base;
    if (si.si_code == CLD_EXITED)
        cell_mark_dead(c, si.si_status, 0);
    else
        cell_mark_dead(c, -1, si.si_status);
    return true;
}

static void linux_destroy(struct cell *c)
{
    struct linux_cell *lc = c->impl;
    struct linux_host *lh = c->host->impl;
    if (!lc)
        return;
    await_spawn(c, lc);
    if (lc->pidfd >= 0) {
        (void)cg_cell_kill(&lc->cg);
        (void)pidfd_signal(lc->pidfd, SIGKILL);
        reap(c, true);
    }
    (void)cg_cell_remove(&lc->cg);
    net_slot_put(&lh->net, &lc->slot);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(lc);
    c->impl = NULL;
}

/* ---- start ------------------------------------------------------------------------- */

/* The child's way out.  Not _exit: a call to a noreturn function makes
 * AddressSanitizer inspect the stack, which on the vfork stack it does not
 * know and complains about; exit_group is the same system call. */
static void child_exit(int code)
{
    syscall(SYS_exit_group, code); /* never returns; no loop, or the compiler infers noreturn */
}

static void child_main(const struct sandbox_plan *plan, int syncfd, int errfd, int logfd)
{
    struct sc_error e = {0};
    char b;
    int r;
    if (syncfd >= 0 && read(syncfd, &b, 1) != 1)
        child_exit(126); /* the parent gave up on us */
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) {
        r = sc_error_set(&e, -errno, "stdio", "stdio: %m");
        goto fail;
    }
    /* Dispositions set to "ignore" and blocked signals survive execve: the
     * supervisor's (SIGPIPE ignored, a libevent mask) must not leak in. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Whatever the supervisor had open (libevent's fds, other Cells' pipes) stays
     * out of the Cell even if someone forgot O_CLOEXEC. */
    (void)syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    r = sandbox_enter(plan, &e);
fail : {
    struct child_error ce = {.r = r};
    snprintf(ce.msg, sizeof(ce.msg), "%s", e.msg);
    (void)!write(errfd, &ce, sizeof(ce));
    child_exit(127);
}
}

struct vfork_arg {
    const struct sandbox_plan *plan;
    const struct cg_cell *cg;
    int errfd, logfd;
};

/* The vfork-style child: it shares the supervisor's memory while the
 * supervisor is suspended until it execs or exits, so it joins its own cgroups
 * ("0" is "me") and then allocates nothing (exec_path, no setenv). */
static int vfork_child(void *arg)
{
    const struct vfork_arg *v = arg;
    struct sc_error e = {0};
    int r = cg_cell_attach(v->cg, 0, &e);
    if (r >= 0 && v->cg->v2) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/cgroup.procs", v->cg->v2);
        r = cell_write_str(path, "0");
        if (r < 0)
            sc_error_set(&e, r, "cgroup", "join %s: %s", v->cg->v2, strerror(-r));
    }
    if (r < 0) {
        struct child_error ce = {.r = r};
        snprintf(ce.msg, sizeof(ce.msg), "%s", e.msg);
        (void)!write(v->errfd, &ce, sizeof(ce));
        child_exit(127);
    }
    child_main(v->plan, -1, v->errfd, v->logfd);
    return 0; /* not reached: child_main execs or exits */
}

long linux_clone_vfork(char *stack, size_t size, uint64_t flags, const struct sandbox_plan *plan,
                       const struct cg_cell *cg, int errfd, int logfd, int *pidfd)
{
    struct vfork_arg va = {plan, cg, errfd, logfd};
    VFORK_STACK_RESET(stack, size);
    return clone(vfork_child, stack + size, (int)(flags | CLONE_VM | CLONE_VFORK | SIGCHLD), &va,
                 pidfd);
}

int linux_child_report(int errfd, char *msg, size_t len)
{
    struct child_error ce;
    ssize_t n;
    while ((n = read(errfd, &ce, sizeof(ce))) < 0 && errno == EINTR)
        ;
    if (n == 0)
        return 0;
    if (n == (ssize_t)sizeof(ce)) {
        ce.msg[sizeof(ce.msg) - 1] = '\0';
        snprintf(msg, len, "%s", ce.msg);
        return ce.r < 0 ? ce.r : -EIO;
    }
    snprintf(msg, len, "short report from the Cell child");
    return -EIO;
}

/* cell_start_async through a spawner (cell_spawn.c): the log pipe is ours from
 * now on, the pid and pidfd arrive with the reply (spawn_replied).  -E2BIG,
 * -ENOSYS or a dead spawner: the caller starts the Cell itself. */
static int start_spawned(struct cell *c, uint64_t flags, int netns_fd)
{
    struct linux_host *lh = c->host->impl;
    struct linux_cell *lc = c->impl;
    int logp[2];
    if (pipe2(logp, O_CLOEXEC) < 0)
        return -errno;
    int replyfd, idx;
    int r = spawn_request(&lh->spawn, &c->spec, &lc->cg, flags, logp[1], netns_fd, &replyfd, &idx);
    close(logp[1]);
    if (r < 0) {
        close(logp[0]);
        return r;
    }
    lc->errfd = replyfd;
    lc->spawner = idx + 1;
    lc->logfd = logp[0];
    fcntl(lc->logfd, F_SETFL, O_NONBLOCK);
    fcntl(lc->errfd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lc->errfd};
    epoll_ctl(c->fd, EPOLL_CTL_ADD, lc->errfd, &ev);
    ev.data.fd = lc->logfd;
    epoll_ctl(c->fd, EPOLL_CTL_ADD, lc->logfd, &ev);
    c->st.pid = 0; /* known with the reply */
    return 0;
}

static int linux_start(struct cell *c, struct sc_error *e)
{
    struct linux_host *lh = c->host->impl;
    struct linux_cell *lc = c->impl;
    int syncp[2] = {-1, -1}, errp[2] = {-1, -1}, logp[2] = {-1, -1};
    int r;
    struct sandbox_plan plan = {
        .spec = &c->spec,
        .seccomp_prog = lh->seccomp,
        .landlock_abi = lh->landlock_abi,
        .cap_last = lh->cap_last,
        .netns_fd = c->spec.net == CELL_NET_BRIDGE ? lc->slot.nsfd : -1,
        .init_fd = lh->init_fd,
    };
    /* An init Cell execs the init program when the host has its memfd, so
     * it can take the vfork-style paths like any other. */
    bool execs = !c->spec.init || lh->init_fd >= 0;
    lc->cg.oom_base = cg_cell_oom_kills(&lc->cg);
    if (lc->cpu_set) { /* a restart: the setup runs unthrottled again */
        if ((r = cg_cell_cpu(&lh->cg, &lc->cg, 0, e)) < 0)
            return r;
        lc->cpu_set = false;
    }
    uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
    if (c->spec.net == CELL_NET_NONE)
        flags |= CLONE_NEWNET; /* bridged Cells join their prepared slot instead */
    int pidfd = -1;
    struct clone_args ca = {
        .flags = flags,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    if (lc->cg.v2fd >= 0) {
        ca.flags |= CLONE_INTO_CGROUP;
        ca.cgroup = (uint64_t)lc->cg.v2fd;
    }
    /* Async starts without init go to a spawner, which can afford to block. */
    if (c->start_async && execs && start_spawned(c, flags | CLONE_PIDFD, plan.netns_fd) == 0) {
        r = 0;
        goto out;
    }
    if (pipe2(syncp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(logp, O_CLOEXEC) < 0) {
        r = sc_error_set(e, -errno, "start", "pipe2: %m");
        goto out;
    }
    /* Synchronous starts take the vfork path: no page tables to copy, no
     * copy-on-write faults, no hand-off between parent and child (the
     * supervisor waits for the exec anyway).  An in-process init never execs,
     * and an async start no spawner took must not block: those clone3 a copy. */
    bool vf = !c->start_async && execs && lh->vfork_stack;
    long pid;
    if (vf) {
        pid = linux_clone_vfork(lh->vfork_stack, VFORK_STACK_BYTES, flags, &plan, &lc->cg, errp[1],
                                logp[1], &pidfd);
    } else {
        pid = syscall(SYS_clone3, &ca, sizeof(ca));
    }
    if (pid < 0) {
        r = sc_error_set(e, -errno, "start", "%s: %m", vf ? "clone" : "clone3");
        goto out;
    }
    if (pid == 0) {
        close(syncp[1]);
        close(errp[0]);
        close(logp[0]);
        child_main(&plan, syncp[0], errp[1], logp[1]);
    }
    close(syncp[0]);
    close(errp[1]);
    close(logp[1]);
    syncp[0] = errp[1] = logp[1] = -1;
    lc->pidfd = pidfd;
    lc->pid = (pid_t)pid;
    r = vf ? 0 : cg_cell_attach(&lc->cg, (pid_t)pid, e);
    if (r >= 0 && !vf && write(syncp[1], "g", 1) != 1)
        r = sc_error_set(e, -errno, "start", "release the child: %m");
    if (r >= 0 && c->start_async) {
        lc->errfd = TAKE_FD(errp[0]);
        fcntl(lc->errfd, F_SETFL, O_NONBLOCK);
        struct epoll_event eev = {.events = EPOLLIN, .data.fd = lc->errfd};
        epoll_ctl(c->fd, EPOLL_CTL_ADD, lc->errfd, &eev);
    } else if (r >= 0) {
        char msg[256];
        r = linux_child_report(errp[0], msg, sizeof(msg));
        if (r < 0)
            sc_error_set(e, r, "start", "%s", msg);
        else
            cpu_after_exec(c, lc);
    }
    if (r < 0) {
        (void)pidfd_signal(pidfd, SIGKILL);
        siginfo_t si;
        while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        close(pidfd);
        lc->pidfd = -1;
        lc->pid = 0;
        goto out;
    }
    lc->logfd = TAKE_FD(logp[0]);
    fcntl(lc->logfd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = lc->pidfd;
    epoll_ctl(c->fd, EPOLL_CTL_ADD, lc->pidfd, &ev);
    ev.data.fd = lc->logfd;
    epoll_ctl(c->fd, EPOLL_CTL_ADD, lc->logfd, &ev);
    c->st.pid = (int)pid;
    r = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (syncp[i] >= 0)
            close(syncp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
        if (logp[i] >= 0)
            close(logp[i]);
    }
    return r;
}

/* ---- running --------------------------------------------------------------------- */

static int linux_term(struct cell *c)
{
    struct linux_cell *lc = c->impl;
    await_spawn(c, lc);
    return lc->pidfd >= 0 ? pidfd_signal(lc->pidfd, SIGTERM) : -ESRCH;
}

static int linux_kill(struct cell *c)
{
    struct linux_cell *lc = c->impl;
    await_spawn(c, lc);
    if (lc->pidfd < 0)
        return 0;
    (void)cg_cell_kill(&lc->cg);
    int r = pidfd_signal(lc->pidfd, SIGKILL);
    return r == -ESRCH ? 0 : r;
}

static int linux_process(struct cell *c)
{
    struct linux_cell *lc = c->impl;
    int ev = lc->ev_saved | check_started(c, lc);
    lc->ev_saved = 0;
    if (drain_log(c, lc))
        ev |= CELL_EV_LOG;
    if (reap(c, false))
        ev |= CELL_EV_EXIT;
    return ev;
}

static int linux_usage(const struct cell *c, struct cell_usage *u)
{
    const struct linux_cell *lc = c->impl;
    return cg_cell_usage(&lc->cg, u);
}

/* ---- exec inside a running Cell ----------------------------------------------------
 *
 *   supervisor --clone3(CLONE_INTO_CGROUP, CLONE_PIDFD)--> helper
 *     helper: joins the v1 cgroups, setns(the Cell's pidfd, mnt|pid|ipc|uts|
 *             cgroup[|net]) (now "/" is the Cell's root), forks
 *       grandchild: PID n in the Cell's pid namespace; sandbox_exec(): the
 *             Cell's uid/gid, no capabilities, no_new_privs, parent-death
 *             signal, Landlock, seccomp, exec argv
 *     helper: waits for it, exits with its status (128+N for signal N)
 *
 * The helper stays outside the pid namespace (setns with CLONE_NEWPID moves
 * only its children), so the supervisor sees it as an ordinary child behind a
 * pidfd; killing it kills the grandchild through the parent-death signal.
 * Output (stdout and stderr merged) goes to one pipe, of which the first
 * CELL_EXEC_OUTPUT bytes are kept and the rest drained and dropped. */
struct linux_exec {
    struct cell_exec x; /* first: x.fd is an epoll fd over pidfd and outfd */
    int pidfd, outfd;
    bool done;
    struct cell_exec_result res;
};

static void exec_helper(struct cell *c, char *const argv[], int outfd)
{
    struct linux_host *lh = c->host->impl;
    struct linux_cell *lc = c->impl;
    struct sc_error e = {0};
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
        child_exit(126);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    (void)syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int r = cg_cell_attach(&lc->cg, 0, &e);
    if (r >= 0 && lc->cg.v2 && lc->cg.v2fd < 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/cgroup.procs", lc->cg.v2);
        if ((r = cell_write_str(path, "0")) < 0)
            sc_error_set(&e, r, "cgroup", "join %s: %s", lc->cg.v2, strerror(-r));
    }
    int ns = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (c->spec.net != CELL_NET_HOST)
        ns |= CLONE_NEWNET;
    if (r >= 0 && setns(lc->pidfd, ns) < 0)
        r = sc_error_set(&e, -errno, "exec", "join the Cell's namespaces: %m");
    struct clone_args ca = {.exit_signal = SIGCHLD};
    long pid = r >= 0 ? syscall(SYS_clone3, &ca, sizeof(ca)) : -1;
    if (r >= 0 && pid < 0)
        r = sc_error_set(&e, -errno, "exec", "clone3: %m");
    if (r < 0) {
        dprintf(2, "cell exec: %s\n", e.msg);
        child_exit(126);
    }
    if (pid == 0) {
        struct sandbox_plan plan = {
            .spec = &c->spec,
            .seccomp_prog = lh->seccomp,
            .landlock_abi = lh->landlock_abi,
            .cap_last = lh->cap_last,
            .netns_fd = -1,
            .init_fd = -1,
        };
        r = sandbox_exec(&plan, argv, &e);
        dprintf(2, "cell exec: %s\n", e.msg);
        child_exit(127);
    }
    int st;
    while (waitpid((pid_t)pid, &st, 0) < 0)
        if (errno != EINTR)
            child_exit(126);
    child_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static int linux_exec_start(struct cell *c, const char *const *argv, struct cell_exec **ret,
                            struct sc_error *e)
{
    struct linux_cell *lc = c->impl;
    await_spawn(c, lc);
    if (lc->pidfd < 0)
        return sc_error_set(e, -ESRCH, "exec", "Cell %s has no process", c->spec.name);
    int outp[2];
    if (pipe2(outp, O_CLOEXEC) < 0)
        return sc_error_set(e, -errno, "exec", "pipe2: %m");
    int pidfd = -1;
    struct clone_args ca = {
        .flags = CLONE_PIDFD,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    if (lc->cg.v2fd >= 0) {
        ca.flags |= CLONE_INTO_CGROUP;
        ca.cgroup = (uint64_t)lc->cg.v2fd;
    }
    long pid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid == 0) {
        close(outp[0]);
        exec_helper(c, (char *const *)argv, outp[1]);
    }
    int err = errno;
    close(outp[1]);
    if (pid < 0) {
        close(outp[0]);
        return sc_error_set(e, -err, "exec", "clone3: %s", strerror(err));
    }
    struct linux_exec *lx = xcalloc(1, sizeof(*lx));
    lx->x.ops = &cell_linux_ops;
    lx->pidfd = pidfd;
    lx->outfd = outp[0];
    fcntl(lx->outfd, F_SETFL, O_NONBLOCK);
    lx->x.fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = pidfd};
    if (lx->x.fd < 0 || epoll_ctl(lx->x.fd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
        int r = sc_error_set(e, -errno, "exec", "epoll: %m");
        cell_exec_free(&lx->x);
        return r;
    }
    ev.data.fd = lx->outfd;
    epoll_ctl(lx->x.fd, EPOLL_CTL_ADD, lx->outfd, &ev);
    *ret = &lx->x;
    return 0;
}

static void exec_drain(struct linux_exec *lx)
{
    char buf[4096];
    while (lx->outfd >= 0) {
        ssize_t n = read(lx->outfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0) { /* every writer gone */
                epoll_ctl(lx->x.fd, EPOLL_CTL_DEL, lx->outfd, NULL);
                close(lx->outfd);
                lx->outfd = -1;
            }
            return;
        }
        size_t keep = MIN((size_t)n, CELL_EXEC_OUTPUT - lx->res.output_len);
        memcpy(lx->res.output + lx->res.output_len, buf, keep);
        lx->res.output_len += keep;
    }
}

static int linux_exec_process(struct cell_exec *x, struct cell_exec_result *ret)
{
    struct linux_exec *lx = (struct linux_exec *)x;
    if (!lx->done) {
        exec_drain(lx);
        siginfo_t si = {0};
        if (waitid((idtype_t)P_PIDFD, (id_t)lx->pidfd, &si, WEXITED | WNOHANG) < 0)
            return errno == EINTR ? 0 : -errno;
        if (si.si_pid == 0)
            return 0;
        exec_drain(lx); /* what it wrote just before the end */
        lx->done = true;
        lx->res.exit_code = si.si_code == CLD_EXITED ? si.si_status : -1;
        lx->res.exit_signal = si.si_code == CLD_EXITED ? 0 : si.si_status;
        lx->res.output[lx->res.output_len] = '\0';
        epoll_ctl(x->fd, EPOLL_CTL_DEL, lx->pidfd, NULL);
    }
    *ret = lx->res;
    return 1;
}

static void linux_exec_free(struct cell_exec *x)
{
    struct linux_exec *lx = (struct linux_exec *)x;
    if (!lx->done && lx->pidfd >= 0) {
        (void)pidfd_signal(lx->pidfd, SIGKILL);
        siginfo_t si;
        while (waitid((idtype_t)P_PIDFD, (id_t)lx->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
    }
    if (lx->pidfd >= 0)
        close(lx->pidfd);
    if (lx->outfd >= 0)
        close(lx->outfd);
    if (x->fd >= 0)
        close(x->fd);
    free(lx);
}

const struct cell_ops cell_linux_ops = {
    .name = "linux",
    .host_init = linux_host_init,
    .host_done = linux_host_done,
    .prepare = linux_prepare,
    .create = linux_create,
    .start = linux_start,
    .term = linux_term,
    .kill = linux_kill,
    .process = linux_process,
    .usage = linux_usage,
    .destroy = linux_destroy,
    .exec_start = linux_exec_start,
    .exec_process = linux_exec_process,
    .exec_free = linux_exec_free,
};
