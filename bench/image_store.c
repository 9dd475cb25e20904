/*
 * image_store.c: the measurement behind the image store's design (docs/image.md):
 * a tree unpacked once with files hard-linked across images by BLAKE3, against a
 * file-backed EROFS image per image (mkfs.erofs, mounted straight from its file).
 *
 *   bench_image_store SRC_ROOTFS [WORKDIR]      (root; WORKDIR default /tmp)
 *
 * Two images are made from SRC: A = SRC, B = SRC with one extra file (an
 * application layer on a shared base).  For each design it prints the time to
 * bring both images onto the node, the disk they take together, the cost of
 * giving one Cell its read-only root (the per-start work), and the time to read
 * every file once the cache is warm.  Also BLAKE3 throughput against b3sum.
 * A benchmark prints a table; it is never a timed test (STYLE.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "image/image.h"

#define ITER 200

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(null, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void die(const char *what, const struct sc_error *e)
{
    fprintf(stderr, "bench_image_store: %s: %s\n", what, e ? e->msg : strerror(errno));
    exit(1);
}

/* Disk blocks of distinct inodes under a path (hard links counted once). */
static struct {
    ino_t *v;
    size_t n, cap;
    uint64_t bytes;
    uint64_t files;
} du;

static int du_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    for (size_t i = 0; i < du.n; i++)
        if (du.v[i] == st->st_ino)
            return 0;
    du.v = sc_grow(du.v, &du.cap, du.n + 1, sizeof(*du.v));
    du.v[du.n++] = st->st_ino;
    du.bytes += (uint64_t)st->st_blocks * 512;
    if (S_ISREG(st->st_mode))
        du.files++;
    return 0;
}

static uint64_t disk_usage(const char *const *paths, size_t n)
{
    du.n = 0;
    du.bytes = 0;
    du.files = 0;
    for (size_t i = 0; i < n; i++)
        nftw(paths[i], du_cb, 32, FTW_PHYS);
    return du.bytes;
}

static uint64_t read_bytes;
static uint8_t rbuf[1 << 16];
static int read_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    while ((n = read(fd, rbuf, sizeof(rbuf))) > 0)
        read_bytes += (uint64_t)n;
    close(fd);
    return 0;
}

static double read_all(const char *root)
{
    read_bytes = 0;
    nftw(root, read_cb, 32, FTW_PHYS); /* warm the cache */
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        read_bytes = 0;
        double t = now_s();
        nftw(root, read_cb, 32, FTW_PHYS);
        best = MIN(best, now_s() - t);
    }
    return best;
}

/* Per-Cell cost of a read-only root, split into start (make the detached
 * read-only mount) and teardown (close: the kernel frees the mount). */
struct root_cost {
    double start, teardown;
};

static int tree_root_fd(const char *root)
{
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, root,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return -1;
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static struct root_cost root_cost(int (*make)(const char *), const char *arg)
{
    static int fds[ITER];
    double t = now_s();
    for (int i = 0; i < ITER; i++)
        if ((fds[i] = make(arg)) < 0)
            die("make a read-only root", NULL);
    double t2 = now_s();
    for (int i = 0; i < ITER; i++)
        close(fds[i]);
    double t3 = now_s();
    return (struct root_cost){(t2 - t) / ITER, (t3 - t2) / ITER};
}

/* The EROFS alternative per Cell: a new read-only superblock from the file. */
static int erofs_mount_fd(const char *file)
{
    int fs = (int)syscall(SYS_fsopen, "erofs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", file, 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        close(fs);
        return -1;
    }
    int m = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
    close(fs);
    return m;
}

static double blake3_mb_s(void)
{
    size_t n = 256u << 20;
    uint8_t *b = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7 + (i >> 12));
    uint8_t d[32];
    double best = 1e9;
    for (int k = 0; k < 5; k++) {
        struct timespec a, c;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        img_blake3_hash(b, n, d);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
        double t = (double)(c.tv_sec - a.tv_sec) + (double)(c.tv_nsec - a.tv_nsec) / 1e9;
        if (t < best)
            best = t;
    }
    free(b);
    return (double)n / best / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SRC_ROOTFS [WORKDIR]\n", argv[0]);
        return 2;
    }
    const char *src = argv[1];
    char work[256];
    snprintf(work, sizeof(work), "%s/sc-bench-image-XXXXXX", argc > 2 ? argv[2] : "/tmp");
    if (!mkdtemp(work))
        die("mkdtemp", NULL);
    char b_src[300], extra[340], key[300], pub[300], store[300];
    snprintf(b_src, sizeof(b_src), "%s/b", work);
    snprintf(key, sizeof(key), "%s/k.pem", work);
    snprintf(pub, sizeof(pub), "%s/k.pub", work);
    snprintf(store, sizeof(store), "%s/store", work);
    char *cp[] = {"cp", "-a", (char *)src, b_src, NULL};
    if (run(cp) < 0)
        die("cp -a", NULL);
    snprintf(extra, sizeof(extra), "%s/app.bin", b_src);
    FILE *f = fopen(extra, "we");
    for (int i = 0; i < 100000; i++)
        fprintf(f, "application layer line %d\n", i);
    fclose(f);

    struct sc_error e = {0};
    struct img_trust *trust = img_trust_new();
    if (img_key_generate(key, pub, NULL, &e) < 0 || img_trust_add_pem(trust, pub, &e) < 0)
        die("key", &e);
    struct img_store *s;
    if (img_store_open(store, trust, &s, &e) < 0)
        die("store", &e);

    const char *srcs[2] = {src, b_src};
    struct img_id ids[2];
    double t_pack = 0, t_add = 0, t_mkfs = 0;
    char packs[2][320], sigs[2][320], erofs[2][320];
    char *roots[2];
    for (int i = 0; i < 2; i++) {
        snprintf(packs[i], sizeof(packs[i]), "%s/%c.pack", work, 'a' + i);
        snprintf(sigs[i], sizeof(sigs[i]), "%s/%c.sig", work, 'a' + i);
        snprintf(erofs[i], sizeof(erofs[i]), "%s/%c.erofs", work, 'a' + i);
        double t = now_s();
        if (img_pack(srcs[i], packs[i], NULL, &ids[i], &e) < 0)
            die("pack", &e);
        t_pack += now_s() - t;
        if (img_sign_file(key, packs[i], sigs[i], NULL, &e) < 0)
            die("sign", &e);
        struct img_id x;
        t = now_s();
        if (img_store_add(s, packs[i], sigs[i], &x, &e) < 0)
            die("add", &e);
        t_add += now_s() - t;
        if (img_store_acquire(s, &ids[i], "bench", &roots[i], &e) < 0)
            die("acquire", &e);
        char *mk_owned[] = {"mkfs.erofs", "-T0", erofs[i], (char *)srcs[i], NULL};
        t = now_s();
        if (run(mk_owned) < 0)
            die("mkfs.erofs (is erofs-utils installed?)", NULL);
        t_mkfs += now_s() - t;
    }

    char trees_p[340], objs_p[340], blobs_p[340];
    snprintf(trees_p, sizeof(trees_p), "%s/images", store);
    snprintf(objs_p, sizeof(objs_p), "%s/objects", store);
    snprintf(blobs_p, sizeof(blobs_p), "%s/blobs", store);
    const char *tree_paths[] = {trees_p, objs_p};
    uint64_t du_trees = disk_usage(tree_paths, 2);
    const char *blob_paths[] = {blobs_p};
    uint64_t du_blobs = disk_usage(blob_paths, 1);
    const char *src_paths[] = {src, b_src};
    uint64_t du_src = disk_usage(src_paths, 2);
    uint64_t files = du.files;
    const char *erofs_paths[] = {erofs[0], erofs[1]};
    uint64_t du_erofs = disk_usage(erofs_paths, 2);

    struct root_cost bind_cost = root_cost(tree_root_fd, roots[0]);
    struct root_cost mount_cost = root_cost(erofs_mount_fd, erofs[0]);

    /* Warm read of every file of image A: the tree vs the mounted EROFS. */
    /* Both read through a mount point at the same depth, as a Cell sees them. */
    char mnt_tree[340];
    snprintf(mnt_tree, sizeof(mnt_tree), "%s/mt", work);
    mkdir(mnt_tree, 0700);
    int tm = tree_root_fd(roots[0]);
    if (tm < 0 || syscall(SYS_move_mount, tm, "", AT_FDCWD, mnt_tree, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("bind the tree", NULL);
    close(tm);
    double rd_tree = read_all(mnt_tree);
    umount2(mnt_tree, MNT_DETACH);
    char mnt[340];
    snprintf(mnt, sizeof(mnt), "%s/me", work);
    mkdir(mnt, 0700);
    int m = erofs_mount_fd(erofs[0]);
    if (m < 0 || syscall(SYS_move_mount, m, "", AT_FDCWD, mnt, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("mount erofs", NULL);
    close(m);
    double rd_erofs = read_all(mnt);
    uint64_t rd_bytes = read_bytes;
    umount2(mnt, MNT_DETACH);

    printf("image store: two images (A = %s, B = A + one 2.7 MB file), %llu files in both sources\n",
           src, (unsigned long long)files);
    printf("%-44s %14s %14s\n", "", "hardlink tree", "EROFS file");
    printf("%-44s %11.0f ms %11.0f ms\n", "bring both images onto the node", t_add * 1e3,
           t_mkfs * 1e3);
    printf("%-44s %11.1f MB %11.1f MB\n", "disk for both images (sources: see below)",
           du_trees / 1e6, du_erofs / 1e6);
    printf("%-44s %11.1f us %11.1f us\n", "per Cell start: make the read-only root",
           bind_cost.start * 1e6, mount_cost.start * 1e6);
    printf("%-44s %11.1f us %11.1f us\n", "per Cell stop: release it", bind_cost.teardown * 1e6,
           mount_cost.teardown * 1e6);
    printf("%-44s %11.1f ms %11.1f ms\n", "read all files of A, warm cache (best of 5)",
           rd_tree * 1e3, rd_erofs * 1e3);
    printf(
        "\nsources on disk: %.1f MB; packed bases kept in blobs/: %.1f MB; pack (both): %.0f ms; "
        "read per pass: %.1f MB\n",
        du_src / 1e6, du_blobs / 1e6, t_pack * 1e3, rd_bytes / 1e6);
    printf("BLAKE3 (ours, one core, in memory): %.0f MB/s\n", blake3_mb_s());

    img_store_release(s, &ids[0], "bench", NULL);
    img_store_release(s, &ids[1], "bench", NULL);
    free(roots[0]);
    free(roots[1]);
    img_store_free(s);
    img_trust_free(trust);
    char *rm[] = {"rm", "-rf", work, NULL};
    run(rm);
    return 0;
}
