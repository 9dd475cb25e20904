/*
 * store.c: the node's content store: each image once, shared by all its Cells.
 *
 * An image is verified (BLAKE3 of the bytes against an Ed25519 signature by a
 * trusted key) and then unpacked once into a directory tree whose regular files are
 * hard links to content objects.  An object is named by BLAKE3 of its content plus
 * the metadata a hard link cannot vary (permission bits and numeric owner), so the
 * same file in two images is one inode, one set of disk blocks and one set of
 * page-cache pages.  A Cell gets the tree's root by a lease and bind-mounts it
 * read-only; nothing is mounted per image and nothing runs in the Cell start path.
 * docs/image.md has the measurement against file-backed EROFS that chose this.
 *
 * Layout under the store root (mode 0700, so host users cannot reach the shared
 * inodes; a Cell sees only its read-only bind mount):
 *
 *   lock                        flock: one process owns the store
 *   blobs/<hex>.pack            the verified packed base (a cache when dropping, see 6)
 *   objects/<xx>/<hex>-<mode>-<uid>-<gid>   content objects (link count = users + 1)
 *   images/<hex>/rootfs/        the unpacked tree handed to Cells
 *   images/<hex>/manifest.json  images/<hex>/signature
 *   images/<hex>/leases/<holder>   one empty file per holder (a Cell id)
 *   tmp/                        work in progress of this process only
 *
 * Design (SQLite-style):
 *
 *   1. images/<hex> appears only by one rename, after its tree, manifest,
 *      signature and blob are complete and syncfs() made them durable.  A crash
 *      leaves either no image or a whole one.
 *   2. An object's name is the BLAKE3 of the content it was given before the rename
 *      that named it, and its content never changes (the store never writes to an
 *      object after naming it; Cells see it read-only).  After a crash an object
 *      may be incomplete only if no finished image links it (invariant 1 synced
 *      every linked one), i.e. its link count is 1; such objects are removed at
 *      open and by every GC.
 *   3. An image with at least one lease file is never removed.  Leases are files,
 *      so they survive a restart of the agent, which re-acquires or releases them.
 *   4. tmp/ belongs to the lock holder; it is emptied at open.
 *   5. The last-use time of an image is the mtime of its leases/ directory, which
 *      every acquire and release changes and every add refreshes.
 *   6. A published image's blob is either kept or, with drop_blobs and a tree that
 *      holds everything the packed format holds, deleted; img_store_export then
 *      re-packs the tree and checks that the identity is reproduced.
 *
 *   image states (per identity), and the function that moves each arrow:
 *
 *     absent --img_store_add (copy+hash, verify, unpack, syncfs, rename)--> idle
 *     idle --img_store_acquire--> leased --img_store_release (last)--> idle
 *     idle --img_store_gc (idle >= min) / img_store_remove--> absent
 *     leased --img_store_remove--> -EBUSY (unchanged)
 *
 * No threads: one img_store is driven by one thread of the agent.
 */
#include "image/image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "base/util.h"
#include "image/img_int.h"

struct img_store {
    char *root;
    int root_fd;
    int lock_fd;
    const struct img_trust *trust;
    bool drop_blobs;
};

int img_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
    struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC, .resolve = resolve};
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

static int openat2_beneath(int dirfd, const char *path, int flags)
{
    return img_openat2(dirfd, path, flags,
                       RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                           RESOLVE_NO_XDEV);
}

DIR *img_opendir_at(int at, const char *name, int *ret_err)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        *ret_err = -errno;
        if (fd >= 0)
            close(fd);
    }
    return d;
}

int img_empty_dir_at(int at, const char *name)
{
    int r = 0;
    DIR *d = img_opendir_at(at, name, &r);
    if (!d)
        return r;
    (void)fchmod(dirfd(d), 0700); /* an image may hold read-only directories */
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            int q = img_rm_rf_at(dirfd(d), de->d_name);
            if (q < 0 && r == 0)
                r = q;
        }
    closedir(d);
    return r;
}

int img_rm_rf_at(int at, const char *name)
{
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(at, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    int r = img_empty_dir_at(at, name);
    if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
        r = -errno;
    return r;
}

static void image_dir(const struct img_id *id, char out[8 + IMG_BLAKE3_HEX_LEN])
{
    memcpy(out, "images/", 7);
    img_blake3_hex(id->digest, out + 7);
}

/* ---- content objects --------------------------------------------------------------- */

typedef int (*object_fn)(int dirfd, const char *name, const struct stat *st, void *ctx);

/* Calls fn for every content object; stops at the first error fn returns. */
static int for_each_object(struct img_store *s, object_fn fn, void *ctx)
{
    int r = 0;
    DIR *d = img_opendir_at(s->root_fd, "objects", &r);
    if (!d)
        return r;
    struct dirent *de;
    while (r >= 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        int ignored;
        DIR *sd = img_opendir_at(dirfd(d), de->d_name, &ignored);
        if (!sd)
            continue;
        struct dirent *oe;
        while (r >= 0 && (oe = readdir(sd))) {
            struct stat ost;
            if (oe->d_name[0] != '.' &&
                fstatat(dirfd(sd), oe->d_name, &ost, AT_SYMLINK_NOFOLLOW) == 0)
                r = fn(dirfd(sd), oe->d_name, &ost, ctx);
        }
        closedir(sd);
    }
    closedir(d);
    return r;
}

static int sweep_one(int dirfd, const char *name, const struct stat *st, void *ctx)
{
    struct img_gc_stats *gs = ctx;
    if (st->st_nlink > 1)
        return 0;
    if (unlinkat(dirfd, name, 0) < 0)
        return -errno;
    if (gs) {
        gs->objects_removed++;
        gs->bytes_freed += (uint64_t)st->st_size;
    }
    return 0;
}

/* Removes every object no image links any more (link count 1: the object's own). */
static int sweep_objects(struct img_store *s, struct img_gc_stats *st)
{
    return for_each_object(s, sweep_one, st);
}

struct unpack {
    struct img_store *s;
    int tmp_fd;    /* <root>/tmp */
    int rootfs_fd; /* the tree being built */
    char *parent;  /* cached parent directory path and fd */
    int parent_fd;
    uint8_t *buf;
    size_t buf_len;
    struct dir_meta {
        char *path;
        mode_t mode;
        uid_t uid;
        gid_t gid;
    } * dirs;
    size_t n_dirs, cap_dirs;
    uint64_t files, symlinks, content_bytes;
    bool lossy; /* the tree cannot reproduce the packed bytes (set-id bits dropped) */
};

static int parent_fd(struct unpack *u, const char *path, const char **ret_base, struct sc_error *e)
{
    const char *slash = strrchr(path, '/');
    _cleanup_free_ char *parent = slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
    if (!parent)
        sc_oom();
    *ret_base = slash ? slash + 1 : path;
    if (u->parent && strcmp(u->parent, parent) == 0)
        return u->parent_fd;
    if (u->parent_fd >= 0)
        close(u->parent_fd);
    free(u->parent);
    u->parent = NULL;
    u->parent_fd = openat2_beneath(u->rootfs_fd, parent, O_PATH | O_DIRECTORY);
    if (u->parent_fd < 0)
        return sc_error_set(e, -SC_E_CORRUPT, "image",
                            "packed base: parent of '%.80s' is missing or not a directory", path);
    u->parent = TAKE_PTR(parent);
    return u->parent_fd;
}

static int link_proc_fd(int fd, int dirfd, const char *name)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, p, dirfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* Writes the current file's content into an anonymous temporary while hashing it,
 * then links the tree entry to the object with the same key, creating the object
 * from the temporary if it is new. */
static int put_file(struct unpack *u, struct img_reader *rd, const struct img_entry *ent, int pfd,
                    const char *base, struct sc_error *e)
{
    _cleanup_close_ int fd = openat(u->tmp_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return sc_error_set(e, -errno, "store", "create temporary object: %m");
    struct img_blake3 h;
    img_blake3_init(&h);
    uint64_t got = 0;
    for (;;) {
        ssize_t n = img_reader_data(rd, u->buf, u->buf_len, e);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        int r = sc_write_all(fd, u->buf, (size_t)n);
        if (r < 0)
            return sc_error_set(e, r, "store", "write object: %s", strerror(-r));
        img_blake3_update(&h, u->buf, (size_t)n);
        got += (uint64_t)n;
    }
    if (got != ent->size)
        return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: '%.80s' is truncated",
                            ent->path);
    u->files++;
    u->content_bytes += got;

    uint8_t d[IMG_BLAKE3_OUT_LEN];
    char hex[IMG_BLAKE3_HEX_LEN + 1], key[IMG_BLAKE3_HEX_LEN + 48], sub[3];
    img_blake3_final(&h, d, sizeof(d));
    img_blake3_hex(d, hex);
    /* setuid/setgid are dropped: Cells run with no_new_privs, and the store must
     * not hold set-id binaries for host users either. */
    mode_t perm = ent->mode & 01777;
    if (ent->mode & 06000)
        u->lossy = true;
    snprintf(key, sizeof(key), "%s-%04o-%u-%u", hex, (unsigned)perm, (unsigned)ent->uid,
             (unsigned)ent->gid);
    memcpy(sub, hex, 2);
    sub[2] = '\0';

    _cleanup_close_ int objdir = -1;
    char opath[16];
    snprintf(opath, sizeof(opath), "objects/%s", sub);
    if (mkdirat(u->s->root_fd, opath, 0700) < 0 && errno != EEXIST)
        return sc_error_set(e, -errno, "store", "mkdir %s: %m", opath);
    objdir = openat(u->s->root_fd, opath, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (objdir < 0)
        return sc_error_set(e, -errno, "store", "open %s: %m", opath);

    struct stat ost;
    if (fstatat(objdir, key, &ost, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            return sc_error_set(e, -errno, "store", "stat object %s: %m", key);
        if ((geteuid() == 0 && fchown(fd, ent->uid, ent->gid) < 0) || fchmod(fd, perm) < 0)
            return sc_error_set(e, -errno, "store", "object %s: chown/chmod: %m", key);
        int r = link_proc_fd(fd, objdir, key);
        if (r < 0 && r != -EEXIST)
            return sc_error_set(e, r, "store", "link object %s: %s", key, strerror(-r));
    }
    if (linkat(objdir, key, pfd, base, 0) == 0)
        return 0;
    if (errno == EEXIST)
        return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: duplicate entry '%.80s'",
                            ent->path);
    if (errno != EMLINK)
        return sc_error_set(e, -errno, "store", "link %s: %m", ent->path);
    /* The object has as many links as the filesystem allows: this entry gets its
     * own copy (the temporary), losing only the sharing. */
    if ((geteuid() == 0 && fchown(fd, ent->uid, ent->gid) < 0) || fchmod(fd, perm) < 0)
        return sc_error_set(e, -errno, "store", "%s: chown/chmod: %m", ent->path);
    int r = link_proc_fd(fd, pfd, base);
    return r < 0 ? sc_error_set(e, r, "store", "link %s: %s", ent->path, strerror(-r)) : 0;
}

static int put_entry(struct unpack *u, struct img_reader *rd, const struct img_entry *ent,
                     struct sc_error *e)
{
    if (S_ISDIR(ent->mode)) {
        if (strcmp(ent->path, ".") != 0) {
            const char *base;
            int pfd = parent_fd(u, ent->path, &base, e);
            if (pfd < 0)
                return pfd;
            if (mkdirat(pfd, base, 0700) < 0)
                return sc_error_set(e, errno == EEXIST ? -SC_E_CORRUPT : -errno, "image",
                                    "mkdir '%.80s': %m", ent->path);
        }
        /* Modes and owners are applied at the end, when nothing more is created. */
        u->dirs = sc_grow(u->dirs, &u->cap_dirs, u->n_dirs + 1, sizeof(*u->dirs));
        u->dirs[u->n_dirs++] =
            (struct dir_meta){xstrdup(ent->path), ent->mode & 07777, ent->uid, ent->gid};
        return 0;
    }
    const char *base;
    int pfd = parent_fd(u, ent->path, &base, e);
    if (pfd < 0)
        return pfd;
    if (S_ISLNK(ent->mode)) {
        if (symlinkat(ent->link, pfd, base) < 0)
            return sc_error_set(e, errno == EEXIST ? -SC_E_CORRUPT : -errno, "image",
                                "symlink '%.80s': %m", ent->path);
        if (geteuid() == 0 && fchownat(pfd, base, ent->uid, ent->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return sc_error_set(e, -errno, "store", "chown '%.80s': %m", ent->path);
        u->symlinks++;
        return 0;
    }
    return put_file(u, rd, ent, pfd, base, e);
}

static int apply_dir_meta(struct unpack *u, struct sc_error *e)
{
    for (size_t i = u->n_dirs; i > 0; i--) {
        const struct dir_meta *m = &u->dirs[i - 1];
        _cleanup_close_ int fd = openat2_beneath(u->rootfs_fd, m->path, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
            return sc_error_set(e, fd, "store", "open '%.80s': %s", m->path, strerror(-fd));
        if ((geteuid() == 0 && fchown(fd, m->uid, m->gid) < 0) || fchmod(fd, m->mode) < 0)
            return sc_error_set(e, -errno, "store", "chown/chmod '%.80s': %m", m->path);
    }
    return 0;
}

static void unpack_done(struct unpack *u)
{
    if (u->parent_fd >= 0)
        close(u->parent_fd);
    if (u->rootfs_fd >= 0)
        close(u->rootfs_fd);
    if (u->tmp_fd >= 0)
        close(u->tmp_fd);
    free(u->parent);
    free(u->buf);
    for (size_t i = 0; i < u->n_dirs; i++)
        free(u->dirs[i].path);
    free(u->dirs);
}

/* Unpacks the verified blob (fd) into tmp/<work>/rootfs and writes the manifest. */
static int unpack(struct img_store *s, int blob_fd, const char *work, bool *ret_lossy,
                  struct sc_error *e)
{
    struct unpack u = {.s = s, .tmp_fd = -1, .rootfs_fd = -1, .parent_fd = -1};
    struct img_reader *rd = NULL;
    struct img_manifest m = {0};
    char *mj = NULL;
    int r;
    u.tmp_fd = openat(s->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int mfd = -1;
    _cleanup_close_ int wfd = openat(s->root_fd, work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (u.tmp_fd < 0 || wfd < 0) {
        r = sc_error_set(e, -errno, "store", "open %s: %m", work);
        goto out;
    }
    if (mkdirat(wfd, "rootfs", 0700) < 0 || mkdirat(wfd, "leases", 0700) < 0) {
        r = sc_error_set(e, -errno, "store", "mkdir in %s: %m", work);
        goto out;
    }
    u.rootfs_fd = openat(wfd, "rootfs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (u.rootfs_fd < 0) {
        r = sc_error_set(e, -errno, "store", "open rootfs: %m");
        goto out;
    }
    u.buf_len = 128 << 10;
    u.buf = xmalloc(u.buf_len);
    if (lseek(blob_fd, 0, SEEK_SET) < 0) {
        r = sc_error_set(e, -errno, "store", "seek: %m");
        goto out;
    }
    if ((r = img_reader_open(blob_fd, &rd, &m, e)) < 0)
        goto out;
    struct img_entry ent;
    while ((r = img_reader_next(rd, &ent, e)) > 0)
        if ((r = put_entry(&u, rd, &ent, e)) < 0)
            goto out;
    if (r < 0)
        goto out;
    if (u.files != m.files || u.symlinks != m.symlinks || u.n_dirs != m.dirs + 1 ||
        u.content_bytes != m.content_bytes) {
        r = sc_error_set(e, -SC_E_CORRUPT, "image",
                         "packed base: the tree does not match its manifest's counts");
        goto out;
    }
    if ((r = apply_dir_meta(&u, e)) < 0)
        goto out;
    size_t mlen;
    if ((r = img_manifest_encode(&m, &mj, &mlen)) < 0)
        goto out;
    mfd = openat(wfd, "manifest.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (mfd < 0 || (r = sc_write_all(mfd, mj, mlen)) < 0) {
        r = sc_error_set(e, mfd < 0 ? -errno : r, "store", "write manifest.json");
        goto out;
    }
    *ret_lossy = u.lossy || geteuid() != 0;
    r = 0;
out:
    free(mj);
    img_manifest_done(&m);
    img_reader_free(rd);
    unpack_done(&u);
    return r;
}

/* ---- the store --------------------------------------------------------------------- */

int img_store_open(const char *root, const struct img_trust *trust, struct img_store **ret,
                   struct sc_error *e)
{
    int r = sc_mkdir_p(root);
    if (r < 0)
        return sc_error_set(e, r, "store", "mkdir %s: %s", root, strerror(-r));
    struct img_store *s = xcalloc(1, sizeof(*s));
    s->root = xstrdup(root);
    s->lock_fd = -1;
    s->trust = trust;
    s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        r = sc_error_set(e, -errno, "store", "open %s: %m", root);
        goto fail;
    }
    (void)fchmod(s->root_fd, 0700);
    s->lock_fd = openat(s->root_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        r = sc_error_set(e, -errno, "store", "open %s/lock: %m", root);
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = sc_error_set(e, errno == EWOULDBLOCK ? -EBUSY : -errno, "store",
                         "image store %s is in use by another process", root);
        goto fail;
    }
    static const char *const sub[] = {"blobs", "objects", "images", "tmp"};
    for (size_t i = 0; i < ELEMENTSOF(sub); i++)
        if (mkdirat(s->root_fd, sub[i], 0700) < 0 && errno != EEXIST) {
            r = sc_error_set(e, -errno, "store", "mkdir %s/%s: %m", root, sub[i]);
            goto fail;
        }
    /* Invariants 2 and 4: forget unfinished work of a crashed run. */
    if ((r = img_empty_dir_at(s->root_fd, "tmp")) < 0 || (r = sweep_objects(s, NULL)) < 0) {
        r = sc_error_set(e, r, "store", "clean %s: %s", root, strerror(-r));
        goto fail;
    }
    *ret = s;
    return 0;
fail:
    img_store_free(s);
    return r;
}

void img_store_free(struct img_store *s)
{
    if (!s)
        return;
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s->root);
    free(s);
}

/* Copies src into the store's tmp/ while hashing it; *ret_name is the path
 * relative to the root. */
static int copy_in(struct img_store *s, const char *src, struct img_id *ret_id, char **ret_name,
                   int *ret_fd, struct sc_error *e)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sc_error_set(e, -errno, "image", "open %s: %m", src);
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/tmp/blob-XXXXXX", s->root) < 0)
        sc_oom();
    int out = mkostemp(path, O_CLOEXEC);
    if (out < 0)
        return sc_error_set(e, -errno, "store", "create %s: %m", path);
    enum { BUF = 256 << 10 };
    _cleanup_free_ uint8_t *buf = xmalloc(BUF);
    struct img_blake3 h;
    img_blake3_init(&h);
    int r = 0;
    for (;;) {
        ssize_t n = read(in, buf, BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = sc_error_set(e, -errno, "image", "read %s: %m", src);
            break;
        }
        if (n == 0)
            break;
        img_blake3_update(&h, buf, (size_t)n);
        if ((r = sc_write_all(out, buf, (size_t)n)) < 0) {
            r = sc_error_set(e, r, "store", "write %s: %s", path, strerror(-r));
            break;
        }
    }
    if (r < 0) {
        unlink(path);
        close(out);
        return r;
    }
    (void)fchmod(out, 0600);
    img_blake3_final(&h, ret_id->digest, IMG_BLAKE3_OUT_LEN);
    *ret_name = xstrdup(path + strlen(s->root) + 1);
    *ret_fd = out;
    return 0;
}

int img_store_add(struct img_store *s, const char *packed, const char *sig_path,
                  struct img_id *ret_id, struct sc_error *e)
{
    struct img_sig sig;
    int r;
    if (sig_path && (r = img_sig_read(sig_path, &sig, e)) < 0)
        return r;
    if (!sig_path) {
        /* Refuse before copying anything; the identity makes the message useful. */
        struct img_id id;
        if ((r = img_id_of_file(packed, &id, e)) < 0)
            return r;
        return img_verify(s->trust, &id, NULL, e);
    }
    struct img_id id;
    _cleanup_free_ char *blob_tmp = NULL;
    _cleanup_close_ int blob_fd = -1;
    if ((r = copy_in(s, packed, &id, &blob_tmp, &blob_fd, e)) < 0)
        return r;
    char dir[8 + IMG_BLAKE3_HEX_LEN], hex[IMG_BLAKE3_HEX_LEN + 1];
    char *work = NULL, *sig_in_work = NULL;
    image_dir(&id, dir);
    img_blake3_hex(id.digest, hex);
    if ((r = img_verify(s->trust, &id, &sig, e)) < 0)
        goto out;
    struct stat st;
    if (fstatat(s->root_fd, dir, &st, 0) == 0) {
        /* Already here (invariant 1 says whole): just mark it as used now. */
        char leases[sizeof(dir) + 8];
        snprintf(leases, sizeof(leases), "%s/leases", dir);
        (void)utimensat(s->root_fd, leases, NULL, 0);
        goto done;
    }
    if (asprintf(&work, "%s/tmp/img-XXXXXX", s->root) < 0)
        sc_oom();
    if (!mkdtemp(work)) {
        r = sc_error_set(e, -errno, "store", "mkdtemp %s: %m", work);
        goto out;
    }
    const char *wrel = work + strlen(s->root) + 1;
    bool lossy = true;
    if ((r = unpack(s, blob_fd, wrel, &lossy, e)) < 0)
        goto out;
    if (asprintf(&sig_in_work, "%s/signature", work) < 0)
        sc_oom();
    if ((r = img_sig_write(sig_in_work, &sig, e)) < 0)
        goto out;
    char blob[IMG_BLAKE3_HEX_LEN + 16];
    snprintf(blob, sizeof(blob), "blobs/%s.pack", hex);
    if (renameat(s->root_fd, blob_tmp, s->root_fd, blob) < 0) {
        r = sc_error_set(e, -errno, "store", "rename blob: %m");
        goto out;
    }
    free(blob_tmp);
    blob_tmp = NULL;
    /* Invariant 1: everything durable, then one rename publishes the image. */
    if (syncfs(s->root_fd) < 0) {
        r = sc_error_set(e, -errno, "store", "syncfs %s: %m", s->root);
        goto out;
    }
    if (renameat(s->root_fd, wrel, s->root_fd, dir) < 0) {
        r = sc_error_set(e, -errno, "store", "publish %s: %m", dir);
        goto out;
    }
    if (s->drop_blobs && !lossy)
        (void)unlinkat(s->root_fd, blob, 0); /* a cache from now on: export re-packs */
    r = sc_fsync_dir(s->root);
    if (r >= 0) {
        _cleanup_free_ char *images = NULL;
        if (asprintf(&images, "%s/images", s->root) < 0)
            sc_oom();
        r = sc_fsync_dir(images);
    }
    if (r < 0) {
        r = sc_error_set(e, r, "store", "fsync: %s", strerror(-r));
        goto out;
    }
done:
    r = 0;
    *ret_id = id;
out:
    if (blob_tmp)
        unlinkat(s->root_fd, blob_tmp, 0);
    if (work) {
        img_rm_rf_at(AT_FDCWD, work);
        free(work);
    }
    free(sig_in_work);
    return r;
}

static int holder_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > IMG_HOLDER_MAX || h[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':' || c == '@'))
            return 0;
    }
    return 1;
}

static int lease_path(struct img_store *s, const struct img_id *id, const char *holder,
                      char out[PATH_MAX], struct sc_error *e)
{
    char dir[8 + IMG_BLAKE3_HEX_LEN], ids[IMG_ID_STR_LEN + 1];
    image_dir(id, dir);
    if (!holder_ok(holder))
        return sc_error_set(e, -SC_E_INVALID, "holder",
                            "lease holder must be 1..%d of [A-Za-z0-9._:@-], not starting "
                            "with '.'",
                            IMG_HOLDER_MAX);
    struct stat st;
    if (fstatat(s->root_fd, dir, &st, 0) < 0) {
        img_id_format(id, ids);
        return sc_error_set(e, -SC_E_NOT_FOUND, "image", "image %s is not in the store", ids);
    }
    snprintf(out, PATH_MAX, "%s/leases/%s", dir, holder);
    return 0;
}

int img_store_acquire(struct img_store *s, const struct img_id *id, const char *holder,
                      char **ret_root, struct sc_error *e)
{
    char lp[PATH_MAX];
    int r = lease_path(s, id, holder, lp, e);
    if (r < 0)
        return r;
    int fd = openat(s->root_fd, lp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sc_error_set(e, -errno, "store", "create lease %s: %m", lp);
    close(fd);
    char hex[IMG_BLAKE3_HEX_LEN + 1];
    img_blake3_hex(id->digest, hex);
    char *root = NULL;
    if (asprintf(&root, "%s/images/%s/rootfs", s->root, hex) < 0)
        sc_oom();
    *ret_root = root;
    return 0;
}

int img_store_release(struct img_store *s, const struct img_id *id, const char *holder,
                      struct sc_error *e)
{
    char lp[PATH_MAX];
    int r = lease_path(s, id, holder, lp, e);
    if (r < 0)
        return r;
    if (unlinkat(s->root_fd, lp, 0) < 0)
        return sc_error_set(e, errno == ENOENT ? -SC_E_NOT_FOUND : -errno, "holder",
                            "%s holds no lease on this image", holder);
    return 0;
}

/* Number of leases and seconds since the last use (invariant 5). */
static int image_usage(struct img_store *s, const char *dir, size_t *ret_leases, int64_t *ret_idle)
{
    char lp[sizeof("images/") + IMG_BLAKE3_HEX_LEN + 8];
    snprintf(lp, sizeof(lp), "%s/leases", dir);
    int r = 0;
    DIR *d = img_opendir_at(s->root_fd, lp, &r);
    if (!d)
        return r;
    struct stat st;
    if (fstat(dirfd(d), &st) < 0) {
        r = -errno;
        closedir(d);
        return r;
    }
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *ret_leases = n;
    *ret_idle = (int64_t)now.tv_sec - (int64_t)st.st_mtim.tv_sec;
    return 0;
}

/* Invariant 1 in reverse: one rename hides the image, then it is deleted. */
static int drop_image(struct img_store *s, const char *hex, struct img_gc_stats *st)
{
    char dir[8 + IMG_BLAKE3_HEX_LEN], gone[16 + IMG_BLAKE3_HEX_LEN], blob[IMG_BLAKE3_HEX_LEN + 16];
    snprintf(dir, sizeof(dir), "images/%s", hex);
    snprintf(gone, sizeof(gone), "tmp/gone-%s", hex);
    snprintf(blob, sizeof(blob), "blobs/%s.pack", hex);
    if (renameat(s->root_fd, dir, s->root_fd, gone) < 0)
        return -errno;
    struct stat bst;
    if (st && fstatat(s->root_fd, blob, &bst, 0) == 0)
        st->bytes_freed += (uint64_t)bst.st_size;
    if (unlinkat(s->root_fd, blob, 0) < 0 && errno != ENOENT)
        return -errno;
    if (st)
        st->images_removed++;
    return img_rm_rf_at(s->root_fd, gone);
}

typedef int (*image_fn)(struct img_store *s, const char *hex, void *ctx);

static int for_each_image(struct img_store *s, image_fn fn, void *ctx)
{
    int r = 0;
    DIR *d = img_opendir_at(s->root_fd, "images", &r);
    if (!d)
        return r;
    /* Collect first: fn may rename entries away. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strlen(de->d_name) == IMG_BLAKE3_HEX_LEN) {
            names = sc_grow(names, &cap, n + 1, sizeof(*names));
            names[n++] = xstrdup(de->d_name);
        }
    closedir(d);
    r = 0;
    for (size_t i = 0; i < n; i++) {
        if (r >= 0)
            r = fn(s, names[i], ctx);
        free(names[i]);
    }
    free(names);
    return r;
}

struct gc_ctx {
    int64_t min_idle;
    struct img_gc_stats *st;
};

static int gc_one(struct img_store *s, const char *hex, void *p)
{
    struct gc_ctx *g = p;
    char dir[8 + IMG_BLAKE3_HEX_LEN];
    snprintf(dir, sizeof(dir), "images/%s", hex);
    size_t leases;
    int64_t idle;
    if (image_usage(s, dir, &leases, &idle) < 0 || leases > 0 || idle < g->min_idle) {
        g->st->images_kept++;
        return 0;
    }
    return drop_image(s, hex, g->st);
}

/* Blobs whose image never got published (a crash between the two renames). */
static int sweep_blobs(struct img_store *s)
{
    int r = 0;
    DIR *d = img_opendir_at(s->root_fd, "blobs", &r);
    if (!d)
        return r;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strlen(de->d_name) != IMG_BLAKE3_HEX_LEN + 5)
            continue;
        char dir[8 + IMG_BLAKE3_HEX_LEN];
        snprintf(dir, sizeof(dir), "images/%.64s", de->d_name);
        struct stat st;
        if (fstatat(s->root_fd, dir, &st, 0) < 0 && errno == ENOENT)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    return 0;
}

int img_store_gc(struct img_store *s, int64_t min_idle_sec, struct img_gc_stats *ret,
                 struct sc_error *e)
{
    struct img_gc_stats st = {0};
    struct gc_ctx g = {min_idle_sec, &st};
    int r = for_each_image(s, gc_one, &g);
    if (r >= 0)
        r = sweep_blobs(s);
    if (r >= 0)
        r = sweep_objects(s, &st);
    if (r < 0)
        return sc_error_set(e, r, "store", "gc %s: %s", s->root, strerror(-r));
    if (ret)
        *ret = st;
    return 0;
}

int img_store_remove(struct img_store *s, const struct img_id *id, struct sc_error *e)
{
    char dir[8 + IMG_BLAKE3_HEX_LEN], hex[IMG_BLAKE3_HEX_LEN + 1], ids[IMG_ID_STR_LEN + 1];
    image_dir(id, dir);
    img_blake3_hex(id->digest, hex);
    img_id_format(id, ids);
    size_t leases;
    int64_t idle;
    if (image_usage(s, dir, &leases, &idle) < 0)
        return sc_error_set(e, -SC_E_NOT_FOUND, "image", "image %s is not in the store", ids);
    if (leases > 0)
        return sc_error_set(e, -EBUSY, "image", "image %s is in use (%zu leases)", ids, leases);
    int r = drop_image(s, hex, NULL);
    if (r >= 0)
        r = sweep_objects(s, NULL);
    return r < 0 ? sc_error_set(e, r, "store", "remove %s: %s", ids, strerror(-r)) : 0;
}

struct list_ctx {
    struct img_store_info *v;
    size_t n, cap;
};

static int list_one(struct img_store *s, const char *hex, void *p)
{
    struct list_ctx *l = p;
    struct img_store_info info = {0};
    char dir[8 + IMG_BLAKE3_HEX_LEN], ids[IMG_ID_STR_LEN + 1];
    snprintf(dir, sizeof(dir), "images/%s", hex);
    snprintf(ids, sizeof(ids), "%s%s", IMG_ID_PREFIX, hex);
    if (img_id_parse(ids, &info.id, NULL) < 0 ||
        image_usage(s, dir, &info.leases, &info.idle_sec) < 0)
        return 0;
    char mp[sizeof(dir) + 16];
    snprintf(mp, sizeof(mp), "%s/manifest.json", dir);
    _cleanup_close_ int fd = openat(s->root_fd, mp, O_RDONLY | O_CLOEXEC);
    char buf[IMG_MANIFEST_MAX];
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    struct img_manifest m;
    if (n > 0 && img_manifest_decode(buf, (size_t)n, &m, NULL) == 0) {
        memcpy(info.name, m.name, sizeof(info.name));
        info.files = m.files;
        info.content_bytes = m.content_bytes;
        img_manifest_done(&m);
    }
    l->v = sc_grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
    l->v[l->n++] = info;
    return 0;
}

int img_store_list(struct img_store *s, struct img_store_info **ret, size_t *ret_n,
                   struct sc_error *e)
{
    struct list_ctx l = {0};
    int r = for_each_image(s, list_one, &l);
    if (r < 0) {
        free(l.v);
        return sc_error_set(e, r, "store", "list %s: %s", s->root, strerror(-r));
    }
    *ret = l.v;
    *ret_n = l.n;
    return 0;
}

int img_store_blob_path(struct img_store *s, const struct img_id *id, char **ret,
                        struct sc_error *e)
{
    char hex[IMG_BLAKE3_HEX_LEN + 1], ids[IMG_ID_STR_LEN + 1];
    img_blake3_hex(id->digest, hex);
    char *p = NULL;
    if (asprintf(&p, "%s/blobs/%s.pack", s->root, hex) < 0)
        sc_oom();
    if (access(p, F_OK) < 0) {
        free(p);
        img_id_format(id, ids);
        return sc_error_set(e, -SC_E_NOT_FOUND, "image", "image %s is not in the store", ids);
    }
    *ret = p;
    return 0;
}

/* ---- verification ------------------------------------------------------------------ */

struct verify_ctx {
    struct img_verify_stats *st;
    struct sc_error *e;
};

static int verify_one(int dirfd, const char *name, const struct stat *st, void *p)
{
    struct verify_ctx *v = p;
    v->st->objects++;
    char hex[IMG_BLAKE3_HEX_LEN + 1];
    unsigned mode, uid, gid;
    char tail;
    if (sscanf(name, "%64[0-9a-f]-%o-%u-%u%c", hex, &mode, &uid, &gid, &tail) != 4 ||
        strlen(hex) != IMG_BLAKE3_HEX_LEN)
        return 0; /* not an object name: nothing to compare with */
    bool bad = !S_ISREG(st->st_mode) || (st->st_mode & 07777) != mode ||
               (geteuid() == 0 && (st->st_uid != uid || st->st_gid != gid));
    if (!bad) {
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        uint8_t d[IMG_BLAKE3_OUT_LEN];
        char got[IMG_BLAKE3_HEX_LEN + 1];
        if (fd < 0)
            return -errno;
        int r = img_blake3_fd(fd, d, NULL);
        close(fd);
        if (r < 0)
            return r;
        img_blake3_hex(d, got);
        bad = strcmp(got, hex) != 0;
    }
    if (bad) {
        if (v->st->objects_bad++ == 0)
            sc_error_set(v->e, -SC_E_CORRUPT, "store",
                         "content object %s does not match its name (content, mode or owner "
                         "changed; %ju images link it)",
                         name, (uintmax_t)(st->st_nlink - 1));
    } else
        v->st->bytes += (uint64_t)st->st_size;
    return 0;
}

struct blob_ctx {
    struct img_verify_stats *st;
    struct sc_error *e;
};

static int verify_blob(struct img_store *s, const char *hex, void *p)
{
    struct blob_ctx *v = p;
    char blob[IMG_BLAKE3_HEX_LEN + 16];
    snprintf(blob, sizeof(blob), "blobs/%s.pack", hex);
    int fd = openat(s->root_fd, blob, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0; /* a blob may be dropped; the tree is what Cells use */
    uint8_t d[IMG_BLAKE3_OUT_LEN];
    char got[IMG_BLAKE3_HEX_LEN + 1];
    int r = img_blake3_fd(fd, d, NULL);
    close(fd);
    if (r < 0)
        return r;
    v->st->blobs++;
    img_blake3_hex(d, got);
    if (strcmp(got, hex) != 0 && v->st->blobs_bad++ == 0 && v->st->objects_bad == 0)
        sc_error_set(v->e, -SC_E_CORRUPT, "store", "packed base %s has identity blake3:%s", blob,
                     got);
    return 0;
}

int img_store_verify(struct img_store *s, struct img_verify_stats *ret, struct sc_error *e)
{
    struct img_verify_stats st = {0};
    struct verify_ctx v = {&st, e};
    int r = for_each_object(s, verify_one, &v);
    struct blob_ctx b = {&st, e};
    if (r >= 0)
        r = for_each_image(s, verify_blob, &b);
    if (r < 0)
        return sc_error_set(e, r, "store", "verify %s: %s", s->root, strerror(-r));
    if (ret)
        *ret = st;
    return st.objects_bad || st.blobs_bad ? -SC_E_CORRUPT : 0;
}

/* ---- export ------------------------------------------------------------------------ */

void img_store_set_drop_blobs(struct img_store *s, bool drop)
{
    s->drop_blobs = drop;
}

static int copy_file_to(int in, const char *out, struct sc_error *e)
{
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.XXXXXX", out) < 0)
        sc_oom();
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "out", "create %s: %m", tmp);
    int r = 0;
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, fd, NULL, 1 << 30, 0);
        if (n < 0) {
            r = sc_error_set(e, -errno, "out", "copy to %s: %m", tmp);
            break;
        }
        if (n == 0)
            break;
    }
    if (r >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, out) < 0))
        r = sc_error_set(e, -errno, "out", "write %s: %m", out);
    close(fd);
    if (r < 0)
        unlink(tmp);
    return r;
}

/* NULL-terminated view of a manifest list, for img_pack_opts. */
static const char **strv_view(char *const *v, size_t n)
{
    const char **a = xcalloc(n + 1, sizeof(*a));
    for (size_t i = 0; i < n; i++)
        a[i] = v[i];
    return a;
}

int img_store_export(struct img_store *s, const struct img_id *id, const char *out,
                     struct sc_error *e)
{
    char hex[IMG_BLAKE3_HEX_LEN + 1], ids[IMG_ID_STR_LEN + 1], p[IMG_BLAKE3_HEX_LEN + 32];
    img_blake3_hex(id->digest, hex);
    img_id_format(id, ids);
    snprintf(p, sizeof(p), "blobs/%s.pack", hex);
    _cleanup_close_ int bfd = openat(s->root_fd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (bfd >= 0)
        return copy_file_to(bfd, out, e);

    snprintf(p, sizeof(p), "images/%s/manifest.json", hex);
    _cleanup_close_ int mfd = openat(s->root_fd, p, O_RDONLY | O_CLOEXEC);
    if (mfd < 0)
        return sc_error_set(e, -SC_E_NOT_FOUND, "image", "image %s is not in the store", ids);
    _cleanup_free_ char *mj = xmalloc(IMG_MANIFEST_MAX);
    ssize_t n = read(mfd, mj, IMG_MANIFEST_MAX);
    struct img_manifest m;
    int r = n < 0 ? -errno : img_manifest_decode(mj, (size_t)n, &m, e);
    if (r < 0)
        return sc_error_set(e, r, "image", "%s: unreadable manifest", ids);
    _cleanup_free_ const char **writable = strv_view(m.writable, m.n_writable);
    _cleanup_free_ const char **argv = strv_view(m.argv, m.argc);
    _cleanup_free_ const char **env = strv_view(m.env, m.n_env);
    struct img_pack_opts o = {.name = m.name,
                              .writable = writable,
                              .argv = argv,
                              .env = env,
                              .workdir = m.workdir,
                              .extra_skipped = m.skipped};
    _cleanup_free_ char *rootfs = NULL;
    if (asprintf(&rootfs, "%s/images/%s/rootfs", s->root, hex) < 0)
        sc_oom();
    struct img_id got;
    r = img_pack(rootfs, out, &o, &got, e);
    img_manifest_done(&m);
    if (r < 0)
        return r;
    if (!img_id_equal(&got, id)) {
        unlink(out);
        return sc_error_set(e, -SC_E_CORRUPT, "image",
                            "re-packing the tree of %s does not reproduce it (was it changed? "
                            "see img_store_verify)",
                            ids);
    }
    return 0;
}
