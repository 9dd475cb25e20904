/*
 * cell_sandbox.c: what the cloned child does to itself between the clone and
 * execve, in this order, each step needing the privilege the next one drops:
 *
 *   1. network: under CELL_NET_BRIDGE join the slot the host prepared (eth0,
 *      address, route: cell_net.c); under CELL_NET_NONE bring up the loopback
 *      of the namespace the clone made; forwarding off.
 *   2. a cgroup namespace rooted at the Cell's cgroups (we are in them already,
 *      so the Cell sees itself at "/").
 *   3. the root view with the new mount API: the image tree cloned with
 *      open_tree(OPEN_TREE_CLONE|AT_RECURSIVE), made read-only, nosuid and nodev
 *      recursively by mount_setattr(AT_RECURSIVE), attached over itself; tmpfs
 *      scratch, /run/secrets, /proc and a minimal /dev from fsopen/fsmount;
 *      volumes bound; then pivot_root and the old root detached.
 *   4. hostname; the capability bounding set dropped, groups cleared, the
 *      unprivileged uid/gid taken, all capability sets cleared, no_new_privs.
 *   5. Landlock from the grants, then the seccomp filter the host built once;
 *      then exec the program, or the init program (cell_init.c) from the host's
 *      memfd, which forks and execs the program (or, without the memfd, the
 *      same init loop in this process).
 *
 * It may run in the supervisor's own memory (the vfork-style start of
 * cell_linux.c, the supervisor suspended): so nothing here allocates or changes
 * process-wide libc state (no malloc, setenv, stdio); stack buffers only.  It
 * reports failure to the caller, which sends the message over the error pipe.
 */
#include "cell/cell_linux.h"
#include "cell/cell_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Landlock ABI 4..6 (the build host's headers stop at ABI 2; the values are
 * kernel ABI and never change). */
#define LL_FS_TRUNCATE         (1ULL << 14)
#define LL_FS_IOCTL_DEV        (1ULL << 15)
#define LL_NET_BIND_TCP        (1ULL << 0)
#define LL_NET_CONNECT_TCP     (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LL_SCOPE_SIGNAL        (1ULL << 1)
#define LL_RULE_PATH_BENEATH   1
#define LL_RULE_NET_PORT       2

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};
struct ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
struct ll_net_port {
    uint64_t allowed_access;
    uint64_t port;
};

#define LL_READ                                                                                    \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FILE_ONLY                                                                               \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

static uint64_t ll_fs_all(int abi)
{
    uint64_t all = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2)
        all |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        all |= LL_FS_TRUNCATE;
    if (abi >= 5)
        all |= LL_FS_IOCTL_DEV;
    return all;
}

int sandbox_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static int ll_add_path(int rs, const char *path, uint64_t access, uint64_t handled,
                       struct sc_error *e)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "grants", "landlock: open %s: %m", path);
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        access &= LL_FILE_ONLY;
    struct ll_path_beneath pb = {.allowed_access = access & handled, .parent_fd = fd};
    int r = 0;
    if (syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
        r = sc_error_set(e, -errno, "grants", "landlock: rule for %s: %m", path);
    close(fd);
    return r;
}

static int apply_landlock(const struct sandbox_plan *p, struct sc_error *e)
{
    int abi = p->landlock_abi;
    if (abi < 1)
        return sc_error_set(e, -EOPNOTSUPP, "grants", "Landlock is not available");
    const struct cell_spec_copy *s = p->spec;
    struct ll_ruleset_attr ra = {.handled_access_fs = ll_fs_all(abi)};
    size_t ra_size = sizeof(ra.handled_access_fs);
    if (abi >= 4) {
        ra.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        ra_size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        ra.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        ra_size = sizeof(ra);
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &ra, ra_size, 0);
    if (rs < 0)
        return sc_error_set(e, -errno, "grants", "landlock_create_ruleset: %m");
    uint64_t all = ra.handled_access_fs;
    /* The image is the Cell's own code: readable and executable everywhere. */
    int r = ll_add_path(rs, "/", LL_READ, all, e);
    /* Device nodes: read, write, truncate (a shell's "> /dev/null") and ioctl. */
    if (r >= 0)
        r = ll_add_path(rs, "/dev",
                        LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                            LL_FS_TRUNCATE | LL_FS_IOCTL_DEV,
                        all, e);
    /* Declared scratch is writable by declaration. */
    for (size_t i = 0; r >= 0 && i < s->n_tmpfs; i++)
        r = ll_add_path(rs, s->tmpfs[i].path, all, all, e);
    for (size_t i = 0; r >= 0 && i < s->n_grants; i++) {
        const struct cell_grant *g = &s->grants[i];
        if (g->kind == CELL_GRANT_FS_READ)
            r = ll_add_path(rs, g->path, LL_READ, all, e);
        else if (g->kind == CELL_GRANT_FS_WRITE)
            r = ll_add_path(rs, g->path, all, all, e);
        else if (abi >= 4) {
            struct ll_net_port np = {.allowed_access = g->kind == CELL_GRANT_NET_LISTEN
                                                           ? LL_NET_BIND_TCP
                                                           : LL_NET_CONNECT_TCP,
                                     .port = g->port};
            if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) < 0)
                r = sc_error_set(e, -errno, "grants", "landlock: port rule %u: %m", g->port);
        } else {
            r = sc_error_set(e, -EOPNOTSUPP, "grants",
                             "net grants need Landlock ABI 4 (this kernel has %d)", abi);
        }
    }
    if (r >= 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        r = sc_error_set(e, -errno, "grants", "landlock_restrict_self: %m");
    close(rs);
    return r;
}

/* ---- seccomp ------------------------------------------------------------------- */

int sandbox_seccomp_build(void **ret, struct sc_error *e)
{
    /* What a Cell never needs and what has a history of kernel exploits or of
     * reaching outside the Cell.  Most already fail without capabilities; the
     * filter is the second wall, and it is the only wall for the unprivileged
     * ones (unshare/clone of a user namespace, userfaultfd, keyrings, bpf). */
    static const char *const deny[] = {
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "chroot",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "open_tree",
        "move_mount",
        "mount_setattr",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "reboot",
        "swapon",
        "swapoff",
        "setns",
        "unshare",
        "keyctl",
        "add_key",
        "request_key",
        "acct",
        "quotactl",
        "open_by_handle_at",
        "name_to_handle_at",
        "lookup_dcookie",
        "iopl",
        "ioperm",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "syslog",
        "vhangup",
        "nfsservctl",
        "uselib",
        "personality",
        "fanotify_init",
    };
    static const uint64_t ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return sc_error_set(e, -ENOMEM, "seccomp", "seccomp_init failed");
    int r = 0;
    for (size_t i = 0; r >= 0 && i < ELEMENTSOF(deny); i++) {
        int nr = seccomp_syscall_resolve_name(deny[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    /* clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc
     * fall back to clone, whose namespace flags the filter can see. */
    if (r >= 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    for (size_t i = 0; r >= 0 && i < ELEMENTSOF(ns_flags); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
    if (r < 0) {
        seccomp_release(ctx);
        return sc_error_set(e, r, "seccomp", "seccomp_rule_add: %s", strerror(-r));
    }
    int mfd = memfd_create("cell-seccomp", MFD_CLOEXEC);
    if (mfd < 0) {
        seccomp_release(ctx);
        return sc_error_set(e, -errno, "seccomp", "memfd_create: %m");
    }
    r = seccomp_export_bpf(ctx, mfd);
    seccomp_release(ctx);
    off_t len = lseek(mfd, 0, SEEK_END);
    if (r < 0 || len <= 0 || len % (off_t)sizeof(struct sock_filter)) {
        close(mfd);
        return sc_error_set(e, r < 0 ? r : -EIO, "seccomp", "seccomp_export_bpf failed");
    }
    struct sock_fprog *prog = xmalloc(sizeof(*prog) + (size_t)len);
    prog->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
    prog->filter = (struct sock_filter *)(prog + 1);
    ssize_t n = pread(mfd, prog->filter, (size_t)len, 0);
    close(mfd);
    if (n != len) {
        free(prog);
        return sc_error_set(e, -EIO, "seccomp", "reading the exported filter failed");
    }
    *ret = prog;
    return 0;
}

void sandbox_seccomp_free(void *prog)
{
    free(prog);
}

/* ---- capabilities and identity ------------------------------------------------- */

static int drop_privileges(const struct sandbox_plan *p, struct sc_error *e)
{
    const struct cell_spec_copy *s = p->spec;
    for (unsigned cap = 0; cap <= p->cap_last; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return sc_error_set(e, -errno, "caps", "drop capability %u from bounding set: %m", cap);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return sc_error_set(e, -errno, "caps", "clear ambient capabilities: %m");
    if (setgroups(0, NULL) < 0)
        return sc_error_set(e, -errno, "gid", "setgroups: %m");
    if (setresgid(s->gid, s->gid, s->gid) < 0)
        return sc_error_set(e, -errno, "gid", "setresgid %u: %m", s->gid);
    if (setresuid(s->uid, s->uid, s->uid) < 0)
        return sc_error_set(e, -errno, "uid", "setresuid %u: %m", s->uid);
    /* uid 0 → non-zero cleared permitted and effective; clear inheritable too. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {0};
    if (syscall(SYS_capset, &hdr, data) < 0)
        return sc_error_set(e, -errno, "caps", "capset: %m");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sc_error_set(e, -errno, "caps", "no_new_privs: %m");
    return 0;
}

/* ---- mounts ---------------------------------------------------------------------- */

static int fs_new(const char *type, const char *const *opts, unsigned attrs, struct sc_error *e)
{
    int fd = fsopen(type, FSOPEN_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "mounts", "fsopen %s: %m", type);
    for (size_t i = 0; opts && opts[i]; i += 2)
        if (fsconfig(fd, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0) < 0) {
            int r = sc_error_set(e, -errno, "mounts", "%s option %s=%s: %m", type, opts[i],
                                 opts[i + 1]);
            close(fd);
            return r;
        }
    if (fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int r = sc_error_set(e, -errno, "mounts", "create %s: %m", type);
        close(fd);
        return r;
    }
    int mfd = fsmount(fd, FSMOUNT_CLOEXEC, attrs);
    int r = mfd < 0 ? sc_error_set(e, -errno, "mounts", "fsmount %s: %m", type) : mfd;
    close(fd);
    return r;
}

static int attach(int mfd, const char *root, const char *path, struct sc_error *e)
{
    char at[PATH_MAX];
    snprintf(at, sizeof(at), "%s%s", root, path);
    int r = 0;
    if (move_mount(mfd, "", AT_FDCWD, at, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        r = sc_error_set(e, -errno, "mounts", "attach at %s (it must exist in the image): %m",
                         path);
    close(mfd);
    return r;
}

static int bind_clone(const char *src, const char *root, const char *path, unsigned attr_set,
                      struct sc_error *e)
{
    int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return sc_error_set(e, -errno, "mounts", "open_tree %s: %m", src);
    if (attr_set) {
        struct mount_attr a = {.attr_set = attr_set, .propagation = MS_PRIVATE};
        if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0) {
            int r = sc_error_set(e, -errno, "mounts", "mount_setattr %s: %m", src);
            close(fd);
            return r;
        }
    }
    return attach(fd, root, path, e);
}

static int make_dev(const char *root, struct sc_error *e)
{
    static const char *const devtmp[] = {"size", "64k", "mode", "755", "nr_inodes", "64", NULL};
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {
        {"fd", "/proc/self/fd"},
        {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"},
        {"stderr", "/proc/self/fd/2"},
    };
    int mfd = fs_new("tmpfs", devtmp, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, e);
    if (mfd < 0)
        return mfd;
    int r = attach(mfd, root, "/dev", e);
    if (r < 0)
        return r;
    char path[PATH_MAX];
    for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
        snprintf(path, sizeof(path), "%s/dev/%s", root, nodes[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0)
            return sc_error_set(e, -errno, "mounts", "create %s: %m", path);
        close(fd);
        char src[32];
        snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
        snprintf(path, sizeof(path), "/dev/%s", nodes[i]);
        r = bind_clone(src, root, path, 0, e);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < ELEMENTSOF(links); i++) {
        snprintf(path, sizeof(path), "%s/dev/%s", root, links[i][0]);
        if (symlink(links[i][1], path) < 0)
            return sc_error_set(e, -errno, "mounts", "symlink %s: %m", path);
    }
    snprintf(path, sizeof(path), "%s/dev", root);
    struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(AT_FDCWD, path, 0, &a, sizeof(a)) < 0)
        return sc_error_set(e, -errno, "mounts", "read-only /dev: %m");
    return 0;
}

/* /run/secrets: a small tmpfs owned by the Cell's uid, one 0400 file per
 * secret, then read-only.  Written before pivot_root, by the still-privileged
 * child; the data never touches a disk. */
static int make_secrets(const struct cell_spec_copy *s, const char *root, struct sc_error *e)
{
    char path[PATH_MAX], size[32], uid[16], gid[16];
    size_t total = 0;
    for (size_t i = 0; i < s->n_secrets; i++)
        total += s->secrets[i].len + 4096;
    snprintf(size, sizeof(size), "%zu", total + 65536);
    snprintf(uid, sizeof(uid), "%u", s->uid);
    snprintf(gid, sizeof(gid), "%u", s->gid);
    snprintf(path, sizeof(path), "%s/run/secrets", root);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return sc_error_set(e, -errno, "secrets",
                            "/run/secrets must exist in the image or /run be scratch: %m");
    const char *opts[] = {"size", size, "mode", "0500", "uid", uid, "gid", gid, NULL};
    int mfd = fs_new("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e);
    if (mfd < 0)
        return mfd;
    int r = attach(mfd, root, "/run/secrets", e);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->n_secrets; i++) {
        snprintf(path, sizeof(path), "%s/run/secrets/%s", root, s->secrets[i].name);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        if (fd < 0)
            return sc_error_set(e, -errno, "secrets", "create secret %s: %m", s->secrets[i].name);
        r = sc_write_all(fd, s->secrets[i].data, s->secrets[i].len);
        if (r >= 0 && fchown(fd, s->uid, s->gid) < 0)
            r = -errno;
        close(fd);
        if (r < 0)
            return sc_error_set(e, r, "secrets", "write secret %s: %s", s->secrets[i].name,
                                strerror(-r));
    }
    snprintf(path, sizeof(path), "%s/run/secrets", root);
    struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(AT_FDCWD, path, 0, &a, sizeof(a)) < 0)
        return sc_error_set(e, -errno, "secrets", "read-only /run/secrets: %m");
    return 0;
}

static int make_root(const struct sandbox_plan *p, struct sc_error *e)
{
    const struct cell_spec_copy *s = p->spec;
    const char *root = s->root;
    /* Nothing we do below may propagate back to the node. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return sc_error_set(e, -errno, "mounts", "make / private: %m");
    int r = bind_clone(root, "", root, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, e);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->n_tmpfs; i++) {
        char size[32], inodes[32], uid[16], gid[16];
        snprintf(size, sizeof(size), "%llu", (unsigned long long)s->tmpfs[i].size_bytes);
        snprintf(inodes, sizeof(inodes), "%llu",
                 (unsigned long long)MAX(s->tmpfs[i].size_bytes / 8192, 1024ull));
        snprintf(uid, sizeof(uid), "%u", s->uid);
        snprintf(gid, sizeof(gid), "%u", s->gid);
        bool tmp = !strcmp(s->tmpfs[i].path, "/tmp");
        const char *opts[] = {"size", size, "nr_inodes", inodes, "mode", tmp ? "1777" : "0755",
                              "uid",  uid,  "gid",       gid,    NULL};
        int mfd = fs_new("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, e);
        if (mfd < 0)
            return mfd;
        r = attach(mfd, root, s->tmpfs[i].path, e);
        if (r < 0)
            return r;
    }
    if (s->n_secrets && (r = make_secrets(s, root, e)) < 0)
        return r;
    for (size_t i = 0; i < s->n_volumes; i++) {
        unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if (s->volumes[i].read_only)
            attrs |= MOUNT_ATTR_RDONLY;
        r = bind_clone(s->volumes[i].source, root, s->volumes[i].path, attrs, e);
        if (r < 0)
            return r;
    }
    int mfd = fs_new("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e);
    if (mfd < 0)
        return mfd;
    r = attach(mfd, root, "/proc", e);
    if (r < 0)
        return r;
    r = make_dev(root, e);
    if (r < 0)
        return r;
    if (chdir(root) < 0)
        return sc_error_set(e, -errno, "mounts", "chdir %s: %m", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return sc_error_set(e, -errno, "mounts", "pivot_root: %m");
    if (umount2(".", MNT_DETACH) < 0)
        return sc_error_set(e, -errno, "mounts", "detach the old root: %m");
    if (chdir("/") < 0)
        return sc_error_set(e, -errno, "mounts", "chdir /: %m");
    return 0;
}

/* ---- network --------------------------------------------------------------------- */

static int setup_net(const struct sandbox_plan *p, struct sc_error *e)
{
    if (p->netns_fd >= 0) { /* a prepared slot: configured already, just join it */
        if (setns(p->netns_fd, CLONE_NEWNET) < 0)
            return sc_error_set(e, -errno, "net", "join the Cell's network namespace: %m");
        return 0;
    }
    return net_config_inside(false, 0, 0, 0, e); /* our own, loopback only */
}

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

int sandbox_init_memfd(void)
{
    /* MFD_EXEC: executable even where vm.memfd_noexec=1; kernels before 6.3
     * do not know it (EINVAL) and make every memfd executable anyway. */
    if (cell_init_blob_len == 0)
        return -ENOEXEC; /* not built for this architecture */
    int fd = memfd_create("cell-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("cell-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int r = sc_write_all(fd, cell_init_blob, cell_init_blob_len);
    if (r >= 0 && fchmod(fd, 0555) < 0)
        r = -errno;
    if (r >= 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        r = -errno;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* Step 4's identity and steps 5's walls, shared by the Cell's PID 1 and by a
 * command exec'd into a running Cell (sandbox_exec). */
static int lock_down(const struct sandbox_plan *p, struct sc_error *e)
{
    int r;
    if ((r = drop_privileges(p, e)) < 0)
        return r;
    /* A Cell never outlives its supervisor (PID 1's death empties the pid
     * namespace), an exec'd command never its parent.  Set after setresuid,
     * which would have cleared it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return sc_error_set(e, -errno, "start", "parent-death signal: %m");
    if ((r = apply_landlock(p, e)) < 0)
        return r;
    if (chdir(p->spec->cwd) < 0)
        return sc_error_set(e, -errno, "cwd", "chdir %s: %m", p->spec->cwd);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p->seccomp_prog, 0, 0) < 0)
        return sc_error_set(e, -errno, "seccomp", "install the seccomp filter: %m");
    return 0;
}

int sandbox_enter(const struct sandbox_plan *p, struct sc_error *e)
{
    const struct cell_spec_copy *s = p->spec;
    int r;
    if (s->net != CELL_NET_HOST && (r = setup_net(p, e)) < 0)
        return r;
    if (unshare(CLONE_NEWCGROUP) < 0)
        return sc_error_set(e, -errno, "cgroup", "cgroup namespace: %m");
    if ((r = make_root(p, e)) < 0)
        return r;
    if (sethostname(s->hostname, strlen(s->hostname)) < 0)
        return sc_error_set(e, -errno, "hostname", "sethostname: %m");
    if ((r = lock_down(p, e)) < 0)
        return r;
    if (s->init) {
        sigset_t set;
        cell_init_sigset(&set);
        sigprocmask(SIG_BLOCK, &set, NULL);
    }
    if (s->init && p->init_fd >= 0) {
        /* the init program (cell_init.c), from the host's memfd */
        char *iargv[CELL_MAX_ARGS + 2] = {"cell-init"};
        for (size_t i = 0; s->argv[i] && i < CELL_MAX_ARGS; i++)
            iargv[i + 1] = s->argv[i];
        syscall(SYS_execveat, p->init_fd, "", iargv, s->env, AT_EMPTY_PATH);
        return sc_error_set(e, -errno, "init", "exec the init program: %m");
    }
    if (s->init) { /* no memfd: the same init in this process */
        pid_t child = fork();
        if (child < 0)
            return sc_error_set(e, -errno, "init", "fork: %m");
        if (child == 0) {
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            r = cell_exec_path(s->argv, s->env);
            /* the exec error can no longer reach the supervisor as a start error */
            dprintf(2, "cell init: exec %s: %s\n", s->argv[0], strerror(-r));
            _exit(127);
        }
        /* The error pipe closes on a successful exec only; this init never
         * execs, so close it now: the start succeeded once the fork did. */
        (void)syscall(SYS_close_range, 3, ~0U, 0);
        cell_init_wait(child);
    }
    r = cell_exec_path(s->argv, s->env);
    return sc_error_set(e, r, "argv", "exec %s: %s", s->argv[0], strerror(-r));
}

int sandbox_exec(const struct sandbox_plan *p, char *const argv[], struct sc_error *e)
{
    int r = lock_down(p, e); /* its parent is the helper the supervisor kills at a timeout */
    if (r < 0)
        return r;
    r = cell_exec_path(argv, p->spec->env);
    return sc_error_set(e, r, "argv", "exec %s: %s", argv[0], strerror(-r));
}
