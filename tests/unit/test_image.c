/*
 * test_image.c: packed bases, signatures and the content store, on real files in
 * a scratch directory: pack -> sign -> add -> acquire gives the same tree; a changed
 * byte, a missing, forged or untrusted signature is refused; two images share the
 * storage of their common files; GC removes what no Cell holds and keeps the rest;
 * hostile archives cannot write outside the image.
 */
#include "harness.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/util.h"
#include "cell/cell.h"
#include "image/image.h"
#include "image/oci.h"
#include "image/registry.h"

struct fx {
    char dir[64];
    char *trust_dir, *priv, *pub, *priv2, *pub2, *store_dir;
    struct img_trust *trust;
    pid_t registry_pid;     /* a docker-registry this test started, ended in teardown */
    struct cell_host *host; /* freed in teardown, so no Cell outlives a failed test */
};

static char *cat(const char *a, const char *b)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", a, b) > 0);
    return p;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    if (flag == FTW_DP || flag == FTW_D)
        chmod(p, 0700);
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *dir, const char *rel, const void *data, size_t len, mode_t mode)
{
    _cleanup_free_ char *p = cat(dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(sc_write_all(fd, data, len), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void mkdir_in(const char *dir, const char *rel, mode_t mode)
{
    _cleanup_free_ char *p = cat(dir, rel);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void symlink_in(const char *dir, const char *rel, const char *target)
{
    _cleanup_free_ char *p = cat(dir, rel);
    assert_int_equal(symlink(target, p), 0);
}

/* A small root filesystem: directories with various modes, an executable, a
 * large file (crosses many BLAKE3 chunks and archive blocks), an empty file,
 * relative and absolute symlinks, a file owned by another uid, and a FIFO that
 * packing must skip.  `variant` changes one file so two trees share the rest. */
static void make_tree(const char *root, int variant)
{
    assert_int_equal(mkdir(root, 0755), 0);
    mkdir_in(root, "bin", 0755);
    mkdir_in(root, "etc", 0755);
    mkdir_in(root, "lib", 0755);
    mkdir_in(root, "tmp", 01777);
    mkdir_in(root, "secret", 0700);
    static const char sh[] = "#!/bin/sh\necho hello\n";
    write_file(root, "bin/tool", sh, sizeof(sh) - 1, 0755);
    size_t big_n = 300 * 1024 + 17;
    _cleanup_free_ uint8_t *big = xmalloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (uint8_t)(i * 31 + i / 1000);
    write_file(root, "lib/libbig.so", big, big_n, 0644);
    write_file(root, "etc/empty", "", 0, 0600);
    char app[64];
    int n = snprintf(app, sizeof(app), "app variant %d\n", variant);
    write_file(root, "bin/app", app, (size_t)n, 0755);
    write_file(root, "secret/key", "k", 1, 0400);
    symlink_in(root, "bin/sh", "tool");
    symlink_in(root, "lib/abs", "/lib/libbig.so");
    if (geteuid() == 0) {
        _cleanup_free_ char *p = cat(root, "etc/owned");
        write_file(root, "etc/owned", "uid 1234\n", 9, 0640);
        assert_int_equal(chown(p, 1234, 4321), 0);
    }
    _cleanup_free_ char *fifo = cat(root, "tmp/fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
}

/* XORs one byte of a file with mask (at < 0: the middle of the file); applying it
 * twice restores the file. */
static void flip_byte(const char *path, off_t at, uint8_t mask)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail_msg("%s: %s", path, strerror(errno));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    if (at < 0)
        at = st.st_size / 2;
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sc-img-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->trust_dir = cat(f->dir, "trusted");
    assert_int_equal(mkdir(f->trust_dir, 0700), 0);
    f->priv = cat(f->dir, "signer.key");
    f->pub = cat(f->trust_dir, "signer.pem");
    f->priv2 = cat(f->dir, "stranger.key");
    f->pub2 = cat(f->dir, "stranger.pem");
    f->store_dir = cat(f->dir, "store");
    struct sc_error e = {0};
    char kid[IMG_KEY_ID_LEN + 1];
    assert_int_equal(img_key_generate(f->priv, f->pub, kid, &e), 0);
    assert_int_equal(strncmp(kid, "ed25519:", 8), 0);
    assert_int_equal(img_key_generate(f->priv2, f->pub2, NULL, &e), 0);
    f->trust = img_trust_new();
    assert_int_equal(img_trust_load_dir(f->trust, f->trust_dir, &e), 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    cell_host_free(f->host);
    if (f->registry_pid > 0) {
        kill(f->registry_pid, SIGTERM);
        waitpid(f->registry_pid, NULL, 0);
    }
    rm_rf(f->dir);
    img_trust_free(f->trust);
    free(f->trust_dir);
    free(f->priv);
    free(f->pub);
    free(f->priv2);
    free(f->pub2);
    free(f->store_dir);
    free(f);
    return 0;
}

/* Packs tree `name` (variant v) and signs it with key priv; returns the paths. */
static void pack_signed(struct fx *f, const char *name, int v, const char *priv, char **ret_pack,
                        char **ret_sig, struct img_id *ret_id)
{
    struct sc_error e = {0};
    _cleanup_free_ char *src = cat(f->dir, name);
    make_tree(src, v);
    char *pack = NULL, *sig = NULL;
    assert_true(asprintf(&pack, "%s/%s.pack", f->dir, name) > 0);
    assert_true(asprintf(&sig, "%s/%s.sig", f->dir, name) > 0);
    struct img_id id;
    if (img_pack(src, pack, NULL, &id, &e) < 0)
        fail_msg("pack: %s", e.msg);
    struct img_sig s;
    if (img_sign_file(priv, pack, sig, &s, &e) < 0)
        fail_msg("sign: %s", e.msg);
    assert_true(img_id_equal(&s.id, &id));
    *ret_pack = pack;
    *ret_sig = sig;
    *ret_id = id;
}

static void pack_is_deterministic(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *src = cat(f->dir, "t");
    _cleanup_free_ char *p1 = cat(f->dir, "a.pack");
    _cleanup_free_ char *p2 = cat(f->dir, "b.pack");
    make_tree(src, 1);
    struct img_id a, b, c;
    assert_int_equal(img_pack(src, p1, NULL, &a, &e), 0);
    assert_int_equal(img_pack(src, p2, NULL, &b, &e), 0);
    assert_true(img_id_equal(&a, &b));
    assert_int_equal(img_id_of_file(p1, &c, &e), 0);
    assert_true(img_id_equal(&a, &c));

    /* The identity string round-trips, and rejects junk. */
    char s[IMG_ID_STR_LEN + 1];
    img_id_format(&a, s);
    assert_int_equal(strncmp(s, "blake3:", 7), 0);
    struct img_id parsed;
    assert_int_equal(img_id_parse(s, &parsed, &e), 0);
    assert_true(img_id_equal(&a, &parsed));
    assert_int_equal(img_id_parse("sha256:00", &parsed, &e), -SC_E_INVALID);
    s[20] = 'x';
    assert_int_equal(img_id_parse(s, &parsed, &e), -SC_E_INVALID);

    /* One changed byte in the tree changes the identity. */
    write_file(src, "bin/app", "app variant 2\n", 14, 0755);
    assert_int_equal(img_pack(src, p2, NULL, &b, &e), 0);
    assert_false(img_id_equal(&a, &b));
    /* So does a changed mode. */
    _cleanup_free_ char *app = cat(src, "bin/app");
    write_file(src, "bin/app", "app variant 1\n", 14, 0755);
    assert_int_equal(img_pack(src, p2, NULL, &b, &e), 0);
    assert_true(img_id_equal(&a, &b));
    assert_int_equal(chmod(app, 0700), 0);
    assert_int_equal(img_pack(src, p2, NULL, &b, &e), 0);
    assert_false(img_id_equal(&a, &b));
}

struct tree_item {
    char path[256];
    struct stat st;
    char link[256];
    uint8_t digest[32];
};

static struct tree_item *items;
static size_t n_items, cap_items;
static size_t prefix_len;

static int collect_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    items = sc_grow(items, &cap_items, n_items + 1, sizeof(*items));
    struct tree_item *it = &items[n_items++];
    memset(it, 0, sizeof(*it));
    snprintf(it->path, sizeof(it->path), "%s", p[prefix_len] ? p + prefix_len : "/");
    it->st = *st;
    if (S_ISLNK(st->st_mode))
        assert_true(readlink(p, it->link, sizeof(it->link) - 1) > 0);
    if (S_ISREG(st->st_mode)) {
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(img_blake3_fd(fd, it->digest, NULL), 0);
        close(fd);
    }
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tree_item *)a)->path, ((const struct tree_item *)b)->path);
}

static struct tree_item *collect(const char *root, size_t *ret_n)
{
    items = NULL, n_items = cap_items = 0;
    prefix_len = strlen(root);
    assert_int_equal(nftw(root, collect_cb, 16, FTW_PHYS), 0);
    qsort(items, n_items, sizeof(*items), item_cmp);
    *ret_n = n_items;
    return items;
}

static void pack_store_tree_roundtrip(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *pack = NULL, *sig = NULL, *root = NULL;
    struct img_id id, added;
    pack_signed(f, "src", 1, f->priv, &pack, &sig, &id);
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    if (img_store_add(s, pack, sig, &added, &e) < 0)
        fail_msg("add: %s", e.msg);
    assert_true(img_id_equal(&id, &added));
    assert_int_equal(img_store_acquire(s, &id, "cell-1", &root, &e), 0);

    _cleanup_free_ char *src = cat(f->dir, "src");
    size_t na, nb;
    _cleanup_free_ struct tree_item *a = collect(src, &na);
    _cleanup_free_ struct tree_item *b = collect(root, &nb);
    /* The FIFO is skipped by packing: everything else is there. */
    assert_int_equal(na, nb + 1);
    size_t j = 0;
    for (size_t i = 0; i < na; i++) {
        if (S_ISFIFO(a[i].st.st_mode))
            continue;
        assert_true(j < nb);
        assert_string_equal(a[i].path, b[j].path);
        if ((a[i].st.st_mode & 07777) != (b[j].st.st_mode & 07777) ||
            (a[i].st.st_mode & S_IFMT) != (b[j].st.st_mode & S_IFMT))
            fail_msg("%s: mode %o != %o", a[i].path, a[i].st.st_mode, b[j].st.st_mode);
        if (!S_ISLNK(a[i].st.st_mode) || geteuid() == 0) {
            assert_int_equal(a[i].st.st_uid, b[j].st.st_uid);
            assert_int_equal(a[i].st.st_gid, b[j].st.st_gid);
        }
        assert_string_equal(a[i].link, b[j].link);
        if (S_ISREG(a[i].st.st_mode)) {
            assert_int_equal(a[i].st.st_size, b[j].st.st_size);
            assert_memory_equal(a[i].digest, b[j].digest, 32);
        }
        j++;
    }
    assert_int_equal(j, nb);

    /* The manifest counted what was packed and what was skipped. */
    struct img_store_info *info = NULL;
    size_t ni = 0;
    assert_int_equal(img_store_list(s, &info, &ni, &e), 0);
    assert_int_equal(ni, 1);
    assert_string_equal(info[0].name, "src");
    assert_int_equal(info[0].files, geteuid() == 0 ? 6 : 5);
    assert_int_equal(info[0].leases, 1);
    free(info);
    img_store_free(s);
}

static void tampered_image_refused(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *pack = NULL, *sig = NULL;
    struct img_id id, added;
    pack_signed(f, "src", 1, f->priv, &pack, &sig, &id);

    /* Flip one byte in the middle of the packed file (inside libbig.so's data). */
    flip_byte(pack, -1, 0x01);

    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    assert_int_equal(img_store_add(s, pack, sig, &added, &e), -EBADMSG);
    assert_non_null(strstr(e.msg, "changed after signing"));
    /* Nothing of it stays in the store. */
    struct img_store_info *info = NULL;
    size_t ni = 9;
    assert_int_equal(img_store_list(s, &info, &ni, &e), 0);
    assert_int_equal(ni, 0);
    free(info);
    _cleanup_free_ char *root = NULL;
    assert_int_equal(img_store_acquire(s, &id, "cell-1", &root, &e), -SC_E_NOT_FOUND);

    /* Restore the byte: the image is accepted again. */
    flip_byte(pack, -1, 0x01);
    if (img_store_add(s, pack, sig, &added, &e) < 0)
        fail_msg("add: %s", e.msg);

    /* A forged signature (one bit of the signature changed) is refused too. */
    struct img_sig sg;
    assert_int_equal(img_sig_read(sig, &sg, &e), 0);
    sg.sig[10] ^= 0x80;
    assert_int_equal(img_sig_write(sig, &sg, &e), 0);
    assert_int_equal(img_store_add(s, pack, sig, &added, &e), -EBADMSG);
    assert_non_null(strstr(e.msg, "does not verify"));
    img_store_free(s);
}

static void unsigned_or_untrusted_refused(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *pack = NULL, *sig = NULL;
    struct img_id id, added;
    pack_signed(f, "src", 1, f->priv2, &pack, &sig, &id); /* signed by a stranger */
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);

    assert_int_equal(img_store_add(s, pack, NULL, &added, &e), -ENOKEY);
    assert_non_null(strstr(e.msg, "unsigned"));

    assert_int_equal(img_store_add(s, pack, sig, &added, &e), -EKEYREJECTED);
    assert_non_null(strstr(e.msg, "not among this node's 1 trusted keys"));

    /* A garbage signature file is an invalid argument, not a crash. */
    write_file(f->dir, "junk.sig", "hello\n", 6, 0644);
    _cleanup_free_ char *junk = cat(f->dir, "junk.sig");
    assert_int_equal(img_store_add(s, pack, junk, &added, &e), -SC_E_INVALID);

    /* Once the stranger's key is trusted, the same files are accepted. */
    struct img_trust *t2 = img_trust_new();
    assert_int_equal(img_trust_add_pem(t2, f->pub, &e), 1);
    assert_int_equal(img_trust_add_pem(t2, f->pub2, &e), 1);
    assert_int_equal(img_trust_add_pem(t2, f->pub2, &e), 0); /* duplicates count once */
    img_store_free(s);
    assert_int_equal(img_store_open(f->store_dir, t2, &s, &e), 0);
    if (img_store_add(s, pack, sig, &added, &e) < 0)
        fail_msg("add: %s", e.msg);
    assert_true(img_id_equal(&id, &added));
    img_store_free(s);
    img_trust_free(t2);
}

/* Packs, signs and adds two images that differ in bin/app only. */
static struct img_store *add_two(struct fx *f, struct img_id *a, struct img_id *b)
{
    struct sc_error e = {0};
    _cleanup_free_ char *p1 = NULL, *s1 = NULL, *p2 = NULL, *s2 = NULL;
    struct img_id x;
    pack_signed(f, "one", 1, f->priv, &p1, &s1, a);
    pack_signed(f, "two", 2, f->priv, &p2, &s2, b);
    assert_false(img_id_equal(a, b));
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    if (img_store_add(s, p1, s1, &x, &e) < 0 || img_store_add(s, p2, s2, &x, &e) < 0)
        fail_msg("add: %s", e.msg);
    return s;
}

static void shared_files_share_storage(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *r1 = NULL, *r2 = NULL;
    struct img_id a, b, x;
    struct img_store *s = add_two(f, &a, &b);
    assert_int_equal(img_store_acquire(s, &a, "cell-a", &r1, &e), 0);
    assert_int_equal(img_store_acquire(s, &b, "cell-b", &r2, &e), 0);
    assert_string_not_equal(r1, r2);

    struct stat st1, st2;
    _cleanup_free_ char *big1 = cat(r1, "lib/libbig.so"), *big2 = cat(r2, "lib/libbig.so");
    assert_int_equal(stat(big1, &st1), 0);
    assert_int_equal(stat(big2, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(st1.st_dev, st2.st_dev);
    assert_int_equal(st1.st_nlink, 3); /* the object + one link per image */

    /* The file that differs does not share. */
    _cleanup_free_ char *app1 = cat(r1, "bin/app"), *app2 = cat(r2, "bin/app");
    assert_int_equal(stat(app1, &st1), 0);
    assert_int_equal(stat(app2, &st2), 0);
    assert_int_not_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(st1.st_nlink, 2);

    /* Same content, other mode: a hard link cannot vary the mode, so no sharing.
     * bin/tool (0755) and a 0644 copy in a third image. */
    _cleanup_free_ char *src3 = cat(f->dir, "three");
    make_tree(src3, 1);
    static const char sh[] = "#!/bin/sh\necho hello\n";
    write_file(src3, "bin/tool", sh, sizeof(sh) - 1, 0644);
    _cleanup_free_ char *p3 = cat(f->dir, "three.pack"), *s3 = cat(f->dir, "three.sig");
    struct img_id c;
    _cleanup_free_ char *r3 = NULL;
    assert_int_equal(img_pack(src3, p3, NULL, &c, &e), 0);
    assert_int_equal(img_sign_file(f->priv, p3, s3, NULL, &e), 0);
    assert_int_equal(img_store_add(s, p3, s3, &x, &e), 0);
    assert_int_equal(img_store_acquire(s, &c, "cell-c", &r3, &e), 0);
    _cleanup_free_ char *t1 = cat(r1, "bin/tool"), *t3 = cat(r3, "bin/tool");
    assert_int_equal(stat(t1, &st1), 0);
    assert_int_equal(stat(t3, &st2), 0);
    assert_int_not_equal(st1.st_ino, st2.st_ino);
    assert_int_equal(st2.st_mode & 07777, 0644);
    /* ...while its big library is now shared three ways. */
    _cleanup_free_ char *big3 = cat(r3, "lib/libbig.so");
    assert_int_equal(stat(big3, &st2), 0);
    assert_int_equal(st2.st_nlink, 4);

    /* Adding an image that is already there is idempotent and shares nothing new. */
    assert_int_equal(img_store_add(s, p3, s3, &x, &e), 0);
    assert_int_equal(stat(big3, &st2), 0);
    assert_int_equal(st2.st_nlink, 4);
    img_store_free(s);
}

static void gc_removes_unused_keeps_leased(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *r1 = NULL, *r2 = NULL;
    struct img_id a, b;
    struct img_store *s = add_two(f, &a, &b);
    assert_int_equal(img_store_acquire(s, &a, "cell-a", &r1, &e), 0);
    assert_int_equal(img_store_acquire(s, &a, "cell-a", &r2, &e), 0); /* idempotent */
    assert_string_equal(r1, r2);

    /* Fresh images are kept while younger than min_idle. */
    struct img_gc_stats st;
    assert_int_equal(img_store_gc(s, 3600, &st, &e), 0);
    assert_int_equal(st.images_removed, 0);
    assert_int_equal(st.images_kept, 2);

    /* A leased image cannot be removed by hand either. */
    assert_int_equal(img_store_remove(s, &a, &e), -EBUSY);

    assert_int_equal(img_store_gc(s, 0, &st, &e), 0);
    assert_int_equal(st.images_removed, 1);
    assert_int_equal(st.images_kept, 1);
    assert_int_equal(st.objects_removed, 1); /* bin/app of variant 2; the rest is shared */
    assert_true(st.bytes_freed > 0);
    _cleanup_free_ char *r2b = NULL;
    assert_int_equal(img_store_acquire(s, &b, "cell-b", &r2b, &e), -SC_E_NOT_FOUND);
    _cleanup_free_ char *blob = NULL;
    assert_int_equal(img_store_blob_path(s, &b, &blob, &e), -SC_E_NOT_FOUND);

    /* The leased image is whole. */
    _cleanup_free_ char *big = cat(r1, "lib/libbig.so");
    struct stat bst;
    assert_int_equal(stat(big, &bst), 0);
    assert_int_equal(bst.st_nlink, 2);
    assert_int_equal(bst.st_size, 300 * 1024 + 17);

    /* Leases survive a restart of the agent. */
    img_store_free(s);
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    assert_int_equal(img_store_gc(s, 0, &st, &e), 0);
    assert_int_equal(st.images_removed, 0);

    assert_int_equal(img_store_release(s, &a, "cell-x", &e), -SC_E_NOT_FOUND);
    assert_int_equal(img_store_release(s, &a, "cell-a", &e), 0);
    assert_int_equal(img_store_release(s, &a, "cell-a", &e), -SC_E_NOT_FOUND);
    assert_int_equal(img_store_gc(s, 0, &st, &e), 0);
    assert_int_equal(st.images_removed, 1);
    assert_true(st.objects_removed >= 5);
    assert_int_equal(stat(big, &bst), -1);

    /* Nothing is left: no images, no objects, no blobs. */
    _cleanup_free_ char *objs = cat(f->store_dir, "objects");
    size_t n;
    _cleanup_free_ struct tree_item *left = collect(objs, &n);
    for (size_t i = 0; i < n; i++)
        if (!S_ISDIR(left[i].st.st_mode))
            fail_msg("object left behind: %s", left[i].path);
    _cleanup_free_ char *blobs = cat(f->store_dir, "blobs");
    _cleanup_free_ struct tree_item *lb = collect(blobs, &n);
    assert_int_equal(n, 1); /* the directory itself */
    img_store_free(s);
}

static void verify_finds_changed_objects(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    struct img_id a, b;
    struct img_store *s = add_two(f, &a, &b);
    _cleanup_free_ char *r1 = NULL;
    assert_int_equal(img_store_acquire(s, &a, "cell-a", &r1, &e), 0);
    struct img_verify_stats vs;
    if (img_store_verify(s, &vs, &e) < 0)
        fail_msg("verify: %s", e.msg);
    assert_true(vs.objects >= 7);
    assert_int_equal(vs.objects_bad, 0);
    assert_int_equal(vs.blobs, 2);

    /* A host user (root) changes the mode of a shared file: both images see it. */
    _cleanup_free_ char *big = cat(r1, "lib/libbig.so");
    assert_int_equal(chmod(big, 0666), 0);
    assert_int_equal(img_store_verify(s, &vs, &e), -SC_E_CORRUPT);
    assert_int_equal(vs.objects_bad, 1);
    assert_non_null(strstr(e.msg, "2 images link it"));
    assert_int_equal(chmod(big, 0644), 0);
    assert_int_equal(img_store_verify(s, &vs, &e), 0);

    /* One changed byte of content. */
    flip_byte(big, 4096, 0x20);
    assert_int_equal(img_store_verify(s, &vs, &e), -SC_E_CORRUPT);
    assert_int_equal(vs.objects_bad, 1);
    flip_byte(big, 4096, 0x20);

    /* A kept packed base that rots. */
    _cleanup_free_ char *blob = NULL;
    assert_int_equal(img_store_blob_path(s, &b, &blob, &e), 0);
    flip_byte(blob, 700, 0x10);
    assert_int_equal(img_store_verify(s, &vs, &e), -SC_E_CORRUPT);
    assert_int_equal(vs.objects_bad, 0);
    assert_int_equal(vs.blobs_bad, 1);
    img_store_free(s);
}

static void dropped_blobs_are_reproduced_by_export(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    if (geteuid() != 0)
        skip(); /* without root the store cannot keep owners, so it keeps blobs */
    _cleanup_free_ char *pack = NULL, *sig = NULL;
    struct img_id id, x, got;
    pack_signed(f, "src", 1, f->priv, &pack, &sig, &id); /* has a FIFO: skipped 1 */
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    img_store_set_drop_blobs(s, true);
    assert_int_equal(img_store_add(s, pack, sig, &x, &e), 0);
    _cleanup_free_ char *blob = NULL;
    assert_int_equal(img_store_blob_path(s, &id, &blob, &e), -SC_E_NOT_FOUND);

    /* Export re-packs the tree into the very same bytes: same identity, and the
     * original signature verifies in another store. */
    _cleanup_free_ char *out = cat(f->dir, "exported.pack");
    if (img_store_export(s, &id, out, &e) < 0)
        fail_msg("export: %s", e.msg);
    assert_int_equal(img_id_of_file(out, &got, &e), 0);
    assert_true(img_id_equal(&id, &got));
    _cleanup_free_ char *other = cat(f->dir, "other-store");
    struct img_store *s2;
    assert_int_equal(img_store_open(other, f->trust, &s2, &e), 0);
    assert_int_equal(img_store_add(s2, out, sig, &x, &e), 0);
    /* With its blob kept, export copies it. */
    _cleanup_free_ char *out2 = cat(f->dir, "exported2.pack");
    assert_int_equal(img_store_export(s2, &id, out2, &e), 0);
    assert_int_equal(img_id_of_file(out2, &got, &e), 0);
    assert_true(img_id_equal(&id, &got));
    img_store_free(s2);

    /* A tree changed behind the store's back no longer reproduces its identity. */
    _cleanup_free_ char *root = NULL;
    assert_int_equal(img_store_acquire(s, &id, "cell-1", &root, &e), 0);
    _cleanup_free_ char *app = cat(root, "bin/app");
    flip_byte(app, 0, 0x01);
    assert_int_equal(img_store_export(s, &id, out, &e), -SC_E_CORRUPT);
    assert_int_equal(access(out, F_OK), -1);
    img_store_free(s);

    /* An image with a set-uid file keeps its blob even when dropping. */
    _cleanup_free_ char *src = cat(f->dir, "suid"), *p2 = cat(f->dir, "suid.pack"),
                        *s2p = cat(f->dir, "suid.sig");
    make_tree(src, 3);
    _cleanup_free_ char *tool = cat(src, "bin/tool");
    assert_int_equal(chmod(tool, 04755), 0);
    struct img_id sid;
    assert_int_equal(img_pack(src, p2, NULL, &sid, &e), 0);
    assert_int_equal(img_sign_file(f->priv, p2, s2p, NULL, &e), 0);
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    img_store_set_drop_blobs(s, true);
    assert_int_equal(img_store_add(s, p2, s2p, &x, &e), 0);
    _cleanup_free_ char *kept = NULL;
    assert_int_equal(img_store_blob_path(s, &sid, &kept, &e), 0);
    img_store_free(s);
}

static void store_is_locked_and_holders_checked(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    struct img_store *s, *s2;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) /* flock is per open file: another process must be refused */
        _exit(img_store_open(f->store_dir, f->trust, &s2, &e) == -EBUSY ? 0 : 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    _cleanup_free_ char *pack = NULL, *sig = NULL, *root = NULL;
    struct img_id id, x;
    pack_signed(f, "src", 1, f->priv, &pack, &sig, &id);
    assert_int_equal(img_store_add(s, pack, sig, &x, &e), 0);
    assert_int_equal(img_store_acquire(s, &id, "../escape", &root, &e), -SC_E_INVALID);
    assert_int_equal(img_store_acquire(s, &id, "", &root, &e), -SC_E_INVALID);
    assert_int_equal(img_store_acquire(s, &id, ".hidden", &root, &e), -SC_E_INVALID);
    img_store_free(s);
}

/* Writes a signed "packed base" by hand with the given extra entries. */
struct raw_ent {
    const char *path;
    mode_t mode;
    const char *data; /* file content or symlink target */
};

static void write_raw_pack(const char *path, const struct raw_ent *ents, size_t n,
                           const char *manifest)
{
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    archive_entry_set_pathname(ae, "manifest.json");
    archive_entry_set_mode(ae, AE_IFREG | 0644);
    archive_entry_set_size(ae, (la_int64_t)strlen(manifest));
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, manifest, strlen(manifest)),
                     (la_ssize_t)strlen(manifest));
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, ents[i].path);
        archive_entry_set_mode(ae, ents[i].mode);
        size_t len = S_ISREG(ents[i].mode) && ents[i].data ? strlen(ents[i].data) : 0;
        archive_entry_set_size(ae, (la_int64_t)len);
        if (S_ISLNK(ents[i].mode))
            archive_entry_set_symlink(ae, ents[i].data);
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
    }
    archive_write_close(a);
    archive_write_free(a);
    archive_entry_free(ae);
}

static void hostile_archives_cannot_escape(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    static const char man[] =
        "{\"argv\":[],\"content_bytes\":1,\"dirs\":0,\"env\":[],\"files\":1,\"format\":"
        "\"swiftcube-packed-base/1\",\"name\":\"evil\",\"skipped\":0,\"symlinks\":1,"
        "\"workdir\":\"/\",\"writable\":[]}";
    _cleanup_free_ char *outside = cat(f->dir, "outside");
    assert_int_equal(mkdir(outside, 0755), 0);
    const struct raw_ent through_link[] = {
        {"rootfs/", AE_IFDIR | 0755, NULL},
        {"rootfs/link", AE_IFLNK | 0777, outside},
        {"rootfs/link/pwned", AE_IFREG | 0644, "x"},
    };
    const struct raw_ent dotdot[] = {
        {"rootfs/", AE_IFDIR | 0755, NULL},
        {"rootfs/../pwned", AE_IFREG | 0644, "x"},
    };
    const struct raw_ent absolute[] = {
        {"rootfs/", AE_IFDIR | 0755, NULL},
        {"/pwned", AE_IFREG | 0644, "x"},
    };
    const struct raw_ent device[] = {
        {"rootfs/", AE_IFDIR | 0755, NULL},
        {"rootfs/dev-null", AE_IFCHR | 0666, NULL},
    };
    const struct raw_ent dup[] = {
        {"rootfs/", AE_IFDIR | 0755, NULL},
        {"rootfs/a", AE_IFLNK | 0777, "b"},
        {"rootfs/a", AE_IFREG | 0644, "x"},
    };
    const struct {
        const struct raw_ent *e;
        size_t n;
    } cases[] = {
        {through_link, ELEMENTSOF(through_link)},
        {dotdot, ELEMENTSOF(dotdot)},
        {absolute, ELEMENTSOF(absolute)},
        {device, ELEMENTSOF(device)},
        {dup, ELEMENTSOF(dup)},
    };
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    _cleanup_free_ char *pack = cat(f->dir, "evil.pack"), *sig = cat(f->dir, "evil.sig");
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        write_raw_pack(pack, cases[i].e, cases[i].n, man);
        assert_int_equal(img_sign_file(f->priv, pack, sig, NULL, &e), 0);
        struct img_id x;
        int r = img_store_add(s, pack, sig, &x, &e);
        if (r != -SC_E_CORRUPT)
            fail_msg("case %zu: add returned %d (%s), want corrupt", i, r, e.msg);
    }
    _cleanup_free_ char *pw = cat(outside, "pwned"), *pw2 = cat(f->dir, "pwned");
    assert_int_equal(access(pw, F_OK), -1);
    assert_int_equal(access(pw2, F_OK), -1);
    assert_int_equal(access("/pwned", F_OK), -1);
    /* A well-formed hand-made archive with the same manifest is accepted, which
     * shows the cases above fail for their hostile entry and nothing else. */
    const struct raw_ent good[] = {
        {"rootfs/", AE_IFDIR | 0755, NULL},
        {"rootfs/link", AE_IFLNK | 0777, outside},
        {"rootfs/f", AE_IFREG | 0644, "x"},
    };
    write_raw_pack(pack, good, ELEMENTSOF(good), man);
    assert_int_equal(img_sign_file(f->priv, pack, sig, NULL, &e), 0);
    struct img_id x;
    if (img_store_add(s, pack, sig, &x, &e) < 0)
        fail_msg("good archive refused: %s", e.msg);
    img_store_free(s);
}

static void manifest_decoder_is_strict(void **state)
{
    struct sc_error e = {0};
    struct img_manifest m = {0};
    snprintf(m.name, sizeof(m.name), "web");
    m.files = 3;
    m.writable[m.n_writable++] = xstrdup("/tmp");
    m.argv[m.argc++] = xstrdup("/bin/web");
    m.argv[m.argc++] = xstrdup("--port=8080");
    m.env[m.n_env++] = xstrdup("A=1");
    m.workdir = xstrdup("/srv");
    char *js;
    size_t len;
    assert_int_equal(img_manifest_encode(&m, &js, &len), 0);
    struct img_manifest d;
    assert_int_equal(img_manifest_decode(js, len, &d, &e), 0);
    assert_string_equal(d.name, "web");
    assert_int_equal(d.files, 3);
    assert_int_equal(d.argc, 2);
    assert_string_equal(d.argv[1], "--port=8080");
    assert_string_equal(d.workdir, "/srv");
    img_manifest_done(&d);
    free(js);
    img_manifest_done(&m);

    static const char *const bad[] = {
        "[]",
        "{\"format\":\"other/1\"}",
        "{\"argv\":[],\"content_bytes\":0,\"dirs\":0,\"env\":[],\"files\":0,\"format\":"
        "\"swiftcube-packed-base/1\",\"name\":\"x\",\"skipped\":0,\"symlinks\":0,\"workdir\":"
        "\"/\",\"writable\":[],\"surprise\":1}",
        "{\"argv\":[],\"content_bytes\":0,\"dirs\":0,\"env\":[],\"files\":-1,\"format\":"
        "\"swiftcube-packed-base/1\",\"name\":\"x\",\"skipped\":0,\"symlinks\":0,\"workdir\":"
        "\"/\",\"writable\":[]}",
        "{\"argv\":[],\"content_bytes\":0,\"dirs\":0,\"env\":[],\"files\":0,\"format\":"
        "\"swiftcube-packed-base/1\",\"name\":\"x\",\"skipped\":0,\"symlinks\":0,\"workdir\":"
        "\"/\",\"writable\":[\"relative\"]}",
        "{\"format\":",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        e.msg[0] = '\0';
        if (img_manifest_decode(bad[i], strlen(bad[i]), &d, &e) != -SC_E_INVALID)
            fail_msg("bad manifest %zu accepted", i);
        assert_true(e.msg[0] != '\0');
    }
}

/* ---- OCI layouts, built here from a tiny rootfs (no network, no tools) ------------- */

struct tar_ent {
    const char *path;
    mode_t mode;      /* AE_IF* | perm */
    const char *data; /* content, symlink target, or hard link target (AE_IFREG + link) */
    bool hardlink;
};

/* A layer tar (gzip-compressed when gz) in memory. */
static uint8_t *make_tar(const struct tar_ent *ents, size_t n, bool gz, size_t *ret_len)
{
    size_t cap = 1 << 20, used = 0;
    uint8_t *buf = xmalloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (gz)
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, ents[i].path);
        archive_entry_set_mode(ae, ents[i].mode);
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        size_t len = 0;
        if (ents[i].hardlink) {
            archive_entry_set_hardlink(ae, ents[i].data);
            archive_entry_set_size(ae, 0);
        } else if (S_ISLNK(ents[i].mode)) {
            archive_entry_set_symlink(ae, ents[i].data);
        } else if (S_ISREG(ents[i].mode)) {
            len = ents[i].data ? strlen(ents[i].data) : 0;
            archive_entry_set_size(ae, (la_int64_t)len);
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    archive_entry_free(ae);
    *ret_len = used;
    return buf;
}

/* Stores a blob in layout/blobs/sha256 and returns its descriptor fields. */
static void put_blob(const char *layout, const void *data, size_t len,
                     char digest[IMG_SHA256_STR_LEN + 1])
{
    img_sha256_mem(data, len, digest);
    _cleanup_free_ char *p = NULL;
    assert_true(asprintf(&p, "%s/blobs/sha256/%s", layout, digest + 7) > 0);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(sc_write_all(fd, data, len), 0);
    close(fd);
}

static char *desc_json(const char *media, const char *digest, size_t size)
{
    char *s;
    assert_true(asprintf(&s, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}", media, digest,
                         size) > 0);
    return s;
}

/* Writes an OCI image layout with the given layers, tagged "v1"; returns the
 * digest of the first layer blob (tests corrupt it). */
static void make_layout(const char *layout, const struct tar_ent *const *layers,
                        const size_t *n_ents, size_t n_layers,
                        char first_layer[IMG_SHA256_STR_LEN + 1])
{
    _cleanup_free_ char *blobs = NULL;
    assert_true(asprintf(&blobs, "%s/blobs/sha256", layout) > 0);
    assert_int_equal(sc_mkdir_p(blobs), 0);
    write_file(layout, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30, 0644);
    char *ldesc[8] = {0};
    for (size_t i = 0; i < n_layers; i++) {
        size_t len;
        bool gz = i % 2 == 0;
        _cleanup_free_ uint8_t *tar = make_tar(layers[i], n_ents[i], gz, &len);
        char d[IMG_SHA256_STR_LEN + 1];
        put_blob(layout, tar, len, d);
        if (i == 0)
            memcpy(first_layer, d, sizeof(d));
        ldesc[i] = desc_json(gz ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                : "application/vnd.oci.image.layer.v1.tar",
                             d, len);
    }
    static const char cfg[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/bin/app\"],"
        "\"Cmd\":[\"--port\",\"80\"],\"Env\":[\"PATH=/bin\"],\"WorkingDir\":\"/srv\"},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    char cd[IMG_SHA256_STR_LEN + 1], md[IMG_SHA256_STR_LEN + 1];
    put_blob(layout, cfg, sizeof(cfg) - 1, cd);
    _cleanup_free_ char *cdesc =
        desc_json("application/vnd.oci.image.config.v1+json", cd, sizeof(cfg) - 1);
    _cleanup_free_ char *man = NULL;
    assert_true(
        asprintf(&man,
                 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[%s%s%s]}",
                 IMG_OCI_MANIFEST_TYPE, cdesc, ldesc[0], n_layers > 1 ? "," : "",
                 n_layers > 1 ? ldesc[1] : "") > 0);
    put_blob(layout, man, strlen(man), md);
    _cleanup_free_ char *index = NULL;
    assert_true(
        asprintf(&index,
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
                 "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}",
                 IMG_OCI_MANIFEST_TYPE, md, strlen(man)) > 0);
    write_file(layout, "index.json", index, strlen(index), 0644);
    for (size_t i = 0; i < n_layers; i++)
        free(ldesc[i]);
}

static const struct tar_ent oci_lower[] = {
    {"./", AE_IFDIR | 0755, NULL, false},
    {"./etc/", AE_IFDIR | 0755, NULL, false},
    {"./etc/os-release", AE_IFREG | 0644, "base\n", false},
    {"./etc/remove-me", AE_IFREG | 0644, "gone\n", false},
    {"./etc/keep-me", AE_IFREG | 0600, "kept\n", false},
    {"./opt/", AE_IFDIR | 0755, NULL, false},
    {"./opt/old1", AE_IFREG | 0644, "old\n", false},
    {"./opt/sub/", AE_IFDIR | 0755, NULL, false},
    {"./opt/sub/old2", AE_IFREG | 0644, "old\n", false},
    {"./var/", AE_IFDIR | 0755, NULL, false},
    {"./var/cache/", AE_IFDIR | 0755, NULL, false},
    {"./var/cache/x", AE_IFREG | 0644, "x\n", false},
    {"./usr/", AE_IFDIR | 0755, NULL, false},
    {"./usr/hard", AE_IFREG | 0755, "#!/bin/sh\n", false},
    {"./usr/hardlink", AE_IFREG | 0755, "usr/hard", true},
    {"./lib", AE_IFLNK | 0777, "usr", false},
    {"./dev-null", AE_IFCHR | 0666, NULL, false},
};
static const struct tar_ent oci_upper[] = {
    {"etc/.wh.remove-me", AE_IFREG | 0644, "", false},
    {"etc/os-release", AE_IFREG | 0644, "v2\n", false},
    {"opt/new", AE_IFREG | 0644, "new\n", false},
    {"opt/.wh..wh..opq", AE_IFREG | 0644, "", false},
    {"var/cache", AE_IFLNK | 0777, "/tmp", false},
    {"srv/", AE_IFDIR | 0750, NULL, false},
};

static void read_small(const char *root, const char *rel, char *out, size_t n)
{
    _cleanup_free_ char *p = cat(root, rel);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("%s: %s", rel, strerror(errno));
    ssize_t got = read(fd, out, n - 1);
    assert_true(got >= 0);
    out[got] = '\0';
    close(fd);
}

static void oci_layout_imports_with_whiteouts(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *layout = cat(f->dir, "layout");
    const struct tar_ent *layers[] = {oci_lower, oci_upper};
    const size_t ns[] = {ELEMENTSOF(oci_lower), ELEMENTSOF(oci_upper)};
    char first[IMG_SHA256_STR_LEN + 1];
    make_layout(layout, layers, ns, 2, first);

    _cleanup_free_ char *pack = cat(f->dir, "oci.pack"), *sig = cat(f->dir, "oci.sig");
    struct img_id id, x;
    if (img_oci_import(layout, "v1", pack, NULL, &id, &e) < 0)
        fail_msg("import: %s", e.msg);
    assert_int_equal(img_sign_file(f->priv, pack, sig, NULL, &e), 0);
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    if (img_store_add(s, pack, sig, &x, &e) < 0)
        fail_msg("add: %s", e.msg);
    _cleanup_free_ char *root = NULL;
    assert_int_equal(img_store_acquire(s, &id, "cell-oci", &root, &e), 0);

    char buf[64];
    read_small(root, "etc/os-release", buf, sizeof(buf));
    assert_string_equal(buf, "v2\n"); /* upper layer wins */
    read_small(root, "etc/keep-me", buf, sizeof(buf));
    assert_string_equal(buf, "kept\n");
    read_small(root, "opt/new", buf, sizeof(buf)); /* same layer as the opaque marker */
    assert_string_equal(buf, "new\n");
    /* var/cache/x is gone because var/cache became a symlink (checked below);
     * looking it up through root would follow that link onto the host's /tmp. */
    const char *gone[] = {"etc/remove-me", "opt/old1",          "opt/sub",
                          "dev-null",      "etc/.wh.remove-me", "opt/.wh..wh..opq"};
    for (size_t i = 0; i < ELEMENTSOF(gone); i++) {
        _cleanup_free_ char *p = cat(root, gone[i]);
        struct stat st;
        if (lstat(p, &st) == 0)
            fail_msg("%s should not exist after flattening", gone[i]);
    }
    struct stat st;
    _cleanup_free_ char *cache = cat(root, "var/cache"), *hl = cat(root, "usr/hardlink"),
                        *srv = cat(root, "srv"), *lib = cat(root, "lib");
    assert_int_equal(lstat(cache, &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* a symlink replaced a directory */
    assert_int_equal(lstat(lib, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    read_small(root, "usr/hardlink", buf, sizeof(buf));
    assert_string_equal(buf, "#!/bin/sh\n");
    assert_int_equal(stat(hl, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(stat(srv, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);

    /* The image config became the manifest's run defaults. */
    _cleanup_free_ char *mpath = NULL;
    char hex[IMG_BLAKE3_HEX_LEN + 1];
    img_blake3_hex(id.digest, hex);
    assert_true(asprintf(&mpath, "images/%s/manifest.json", hex) > 0);
    char mj[4096];
    read_small(f->store_dir, mpath, mj, sizeof(mj));
    struct img_manifest m;
    assert_int_equal(img_manifest_decode(mj, strlen(mj), &m, &e), 0);
    assert_int_equal(m.argc, 3);
    assert_string_equal(m.argv[0], "/bin/app");
    assert_string_equal(m.argv[2], "80");
    assert_string_equal(m.env[0], "PATH=/bin");
    assert_string_equal(m.workdir, "/srv");
    assert_string_equal(m.name, "v1");
    assert_int_equal(m.skipped, 0); /* the device was skipped while flattening */
    img_manifest_done(&m);
    img_store_free(s);

    /* Importing the same layout again gives the same identity. */
    struct img_id again;
    assert_int_equal(img_oci_import(layout, "v1", pack, NULL, &again, &e), 0);
    assert_true(img_id_equal(&id, &again));
    /* An unknown tag is a clear not-found. */
    assert_int_equal(img_oci_import(layout, "v9", pack, NULL, &again, &e), -SC_E_NOT_FOUND);

    /* A layer blob that does not match its digest is refused. */
    _cleanup_free_ char *bp = NULL;
    assert_true(asprintf(&bp, "%s/blobs/sha256/%s", layout, first + 7) > 0);
    flip_byte(bp, 20, 0x40);
    assert_int_equal(img_oci_import(layout, "v1", pack, NULL, &again, &e), -SC_E_CORRUPT);
    assert_non_null(strstr(e.msg, "does not match its digest"));
}

static void oci_layers_cannot_escape(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *outside = cat(f->dir, "outside");
    assert_int_equal(mkdir(outside, 0755), 0);
    const struct tar_ent lower[] = {
        {"./", AE_IFDIR | 0755, NULL, false},
        {"escape", AE_IFLNK | 0777, outside, false},
        {"rel", AE_IFLNK | 0777, "../../../../../../..", false},
    };
    const struct tar_ent through_abs[] = {{"escape/pwned", AE_IFREG | 0644, "x", false}};
    const struct tar_ent through_rel[] = {{"rel/pwned", AE_IFREG | 0644, "x", false}};
    const struct tar_ent dotdot[] = {{"../pwned", AE_IFREG | 0644, "x", false}};
    /* A whiteout of ".." at the top would remove the directory above the tree. */
    const struct tar_ent wh_dotdot[] = {{".wh...", AE_IFREG | 0644, "", false}};
    const struct tar_ent *cases[] = {through_abs, through_rel, dotdot, wh_dotdot};
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *layout = NULL, *dest = NULL;
        assert_true(asprintf(&layout, "%s/l%zu", f->dir, i) > 0);
        assert_true(asprintf(&dest, "%s/d%zu", f->dir, i) > 0);
        const struct tar_ent *layers[] = {lower, cases[i]};
        const size_t ns[] = {ELEMENTSOF(lower), 1};
        char first[IMG_SHA256_STR_LEN + 1];
        make_layout(layout, layers, ns, 2, first);
        int r = img_oci_flatten(layout, "v1", dest, NULL, &e);
        if (i == 1) {
            /* "../../.." resolves as in a chroot: to the tree's own root. */
            _cleanup_free_ char *in = cat(dest, "pwned");
            assert_int_equal(r, 0);
            assert_int_equal(access(in, F_OK), 0);
        } else if (r >= 0)
            fail_msg("hostile layer %zu was accepted", i);
        /* Nothing was written outside the tree, and the tree's parent survived. */
        assert_int_equal(access(outside, F_OK), 0);
        _cleanup_free_ char *pw = cat(outside, "pwned"), *pw2 = cat(f->dir, "pwned");
        assert_int_equal(access(pw, F_OK), -1);
        assert_int_equal(access(pw2, F_OK), -1);
        assert_int_equal(access("/pwned", F_OK), -1);
    }
}

/* ---- a real registry on loopback (Debian's docker-registry) ------------------------ */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* Starts docker-registry on 127.0.0.1:<free port> with storage in the fixture's
 * directory; teardown ends it by its PID.  Returns the base URL. */
static char *start_registry(struct fx *f)
{
    if (access("/usr/bin/docker-registry", X_OK) < 0)
        fail_msg("docker-registry is not installed (scripts/deps.sh installs it)");
    int port = free_port();
    _cleanup_free_ char *cfg = cat(f->dir, "registry.yml"), *data = cat(f->dir, "registry-data"),
                        *log = cat(f->dir, "registry.log");
    char body[1024];
    int n = snprintf(body, sizeof(body),
                     "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                     "    rootdirectory: %s\n  delete:\n    enabled: true\n"
                     "http:\n  addr: 127.0.0.1:%d\n",
                     data, port);
    write_file(f->dir, "registry.yml", body, (size_t)n, 0644);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/bin/docker-registry", "docker-registry", "serve", cfg, (char *)NULL);
        _exit(127);
    }
    f->registry_pid = pid;
    /* Ready when it accepts connections (at most 10 s). */
    for (int i = 0; i < 1000; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(s);
        if (ok) {
            char *base;
            assert_true(asprintf(&base, "http://127.0.0.1:%d", port) > 0);
            return base;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            f->registry_pid = 0;
            fail_msg("docker-registry exited (see %s)", log);
        }
        usleep(10000);
    }
    fail_msg("docker-registry did not start listening on port %d", port);
    return NULL;
}

static void registry_push_pull_signed_image(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *base = start_registry(f);
    _cleanup_free_ char *pack = NULL, *sig = NULL;
    struct img_id id, got, x;
    pack_signed(f, "src", 1, f->priv, &pack, &sig, &id);
    if (img_registry_push(base, "swiftcube/src", "v1", pack, sig, &e) < 0)
        fail_msg("push: %s", e.msg);
    assert_int_equal(img_registry_push(base, "swiftcube/src", "unsigned", pack, NULL, &e), 0);
    /* Pushing again uploads nothing new and still succeeds. */
    assert_int_equal(img_registry_push(base, "swiftcube/src", "v1", pack, sig, &e), 0);

    _cleanup_free_ char *p2 = cat(f->dir, "pulled.pack"), *s2 = cat(f->dir, "pulled.sig");
    int r = img_registry_pull(base, "swiftcube/src", "v1", p2, s2, &got, &e);
    if (r != 1)
        fail_msg("pull: %d %s", r, e.msg);
    assert_true(img_id_equal(&id, &got));
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    if (img_store_add(s, p2, s2, &x, &e) < 0)
        fail_msg("add pulled: %s", e.msg);
    assert_true(img_id_equal(&id, &x));

    /* The unsigned tag arrives without a signature and the store refuses it. */
    assert_int_equal(img_registry_pull(base, "swiftcube/src", "unsigned", p2, s2, &got, &e), 0);
    assert_int_equal(access(s2, F_OK), -1);
    assert_int_equal(img_store_add(s, p2, NULL, &x, &e), -ENOKEY);
    img_store_free(s);

    _cleanup_free_ char *p3 = cat(f->dir, "nope.pack");
    assert_int_equal(img_registry_pull(base, "swiftcube/src", "v404", p3, NULL, &got, &e),
                     -SC_E_NOT_FOUND);
    assert_int_equal(img_registry_pull(base, "../etc", "v1", p3, NULL, &got, &e), -SC_E_INVALID);

    /* A blob changed inside the registry's storage is caught by its digest. */
    char d[IMG_SHA256_STR_LEN + 1];
    int fd = open(pack, O_RDONLY | O_CLOEXEC);
    assert_int_equal(img_sha256_fd(fd, d, NULL), 0);
    close(fd);
    _cleanup_free_ char *blob = NULL;
    assert_true(asprintf(&blob, "%s/registry-data/docker/registry/v2/blobs/sha256/%.2s/%s/data",
                         f->dir, d + 7, d + 7) > 0);
    flip_byte(blob, 1000, 0x01);
    assert_int_equal(img_registry_pull(base, "swiftcube/src", "v1", p3, NULL, &got, &e),
                     -SC_E_CORRUPT);
    assert_int_equal(access(p3, F_OK), -1);
}

static void registry_oci_image_imports(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *base = start_registry(f);
    _cleanup_free_ char *layout = cat(f->dir, "layout"), *layout2 = cat(f->dir, "layout2");
    const struct tar_ent *layers[] = {oci_lower, oci_upper};
    const size_t ns[] = {ELEMENTSOF(oci_lower), ELEMENTSOF(oci_upper)};
    char first[IMG_SHA256_STR_LEN + 1];
    make_layout(layout, layers, ns, 2, first);
    if (img_registry_push_oci(base, "library/tiny", "1.0", layout, "v1", &e) < 0)
        fail_msg("push oci: %s", e.msg);
    if (img_registry_pull_oci(base, "library/tiny", "1.0", layout2, &e) < 0)
        fail_msg("pull oci: %s", e.msg);

    /* The pulled image flattens to the same packed base as the original layout. */
    _cleanup_free_ char *pa = cat(f->dir, "a.pack"), *pb = cat(f->dir, "b.pack"),
                        *sb = cat(f->dir, "b.sig");
    struct img_id a, b, x;
    assert_int_equal(img_oci_import(layout, "v1", pa, "tiny", &a, &e), 0);
    if (img_oci_import(layout2, "1.0", pb, "tiny", &b, &e) < 0)
        fail_msg("import pulled: %s", e.msg);
    assert_true(img_id_equal(&a, &b));
    assert_int_equal(img_sign_file(f->priv, pb, sb, NULL, &e), 0);
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    assert_int_equal(img_store_add(s, pb, sb, &x, &e), 0);
    _cleanup_free_ char *root = NULL;
    assert_int_equal(img_store_acquire(s, &b, "cell-tiny", &root, &e), 0);
    char buf[64];
    read_small(root, "etc/os-release", buf, sizeof(buf));
    assert_string_equal(buf, "v2\n");
    img_store_free(s);

    _cleanup_free_ char *layout3 = cat(f->dir, "layout3");
    assert_int_equal(img_registry_pull_oci(base, "library/tiny", "2.0", layout3, &e),
                     -SC_E_NOT_FOUND);
}

/* ---- the whole path: OCI image -> registry -> import -> store -> a running Cell --- */

/* A layer with a busybox root filesystem (the static binary from the host, its
 * applets as symlinks, the mount points a Cell needs), gzip-compressed. */
static uint8_t *busybox_layer(size_t *ret_len)
{
    int fd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("/bin/busybox: %s (busybox-static, scripts/deps.sh)", strerror(errno));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    _cleanup_free_ uint8_t *bb = xmalloc((size_t)st.st_size);
    assert_int_equal(read(fd, bb, (size_t)st.st_size), st.st_size);
    close(fd);
    size_t cap = (size_t)st.st_size * 2 + (1 << 20), used = 0;
    uint8_t *buf = xmalloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    static const char *const dirs[] = {"./", "bin/", "etc/", "tmp/", "run/", "proc/", "dev/"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, dirs[i]);
        archive_entry_set_mode(ae, AE_IFDIR | (strcmp(dirs[i], "tmp/") ? 0755 : 01777));
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    }
    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, "bin/busybox");
    archive_entry_set_mode(ae, AE_IFREG | 0755);
    archive_entry_set_size(ae, st.st_size);
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, bb, (size_t)st.st_size), st.st_size);
    static const char *const applets[] = {"bin/sh", "bin/cat", "bin/echo", "bin/true"};
    for (size_t i = 0; i < ELEMENTSOF(applets); i++) {
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, applets[i]);
        archive_entry_set_mode(ae, AE_IFLNK | 0777);
        archive_entry_set_symlink(ae, "busybox");
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    }
    static const char rel[] = "NAME=oci-busybox\n";
    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, "etc/os-release");
    archive_entry_set_mode(ae, AE_IFREG | 0644);
    archive_entry_set_size(ae, sizeof(rel) - 1);
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, rel, sizeof(rel) - 1), (la_ssize_t)sizeof(rel) - 1);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    archive_entry_free(ae);
    *ret_len = used;
    return buf;
}

static void oci_image_from_registry_runs_in_a_cell(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    if (geteuid() != 0)
        skip();
    /* An OCI layout whose one layer is busybox; the config names the program. */
    _cleanup_free_ char *layout = cat(f->dir, "bb"), *blobs = cat(layout, "blobs/sha256");
    assert_int_equal(sc_mkdir_p(blobs), 0);
    write_file(layout, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30, 0644);
    size_t llen;
    _cleanup_free_ uint8_t *layer = busybox_layer(&llen);
    char ld[IMG_SHA256_STR_LEN + 1], cd[IMG_SHA256_STR_LEN + 1], md[IMG_SHA256_STR_LEN + 1];
    put_blob(layout, layer, llen, ld);
    static const char cfg[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{"
                              "\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hello from "
                              "$(cat /etc/os-release) in $PWD\"],\"WorkingDir\":\"/tmp\"}}";
    put_blob(layout, cfg, sizeof(cfg) - 1, cd);
    _cleanup_free_ char *cdesc = desc_json("application/vnd.oci.image.config.v1+json", cd,
                                           sizeof(cfg) - 1),
                        *ldesc = desc_json("application/vnd.oci.image.layer.v1.tar+gzip", ld, llen),
                        *man = NULL, *index = NULL;
    assert_true(asprintf(&man,
                         "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,"
                         "\"layers\":[%s]}",
                         IMG_OCI_MANIFEST_TYPE, cdesc, ldesc) > 0);
    put_blob(layout, man, strlen(man), md);
    assert_true(asprintf(&index,
                         "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\","
                         "\"digest\":\"%s\",\"size\":%zu}]}",
                         IMG_OCI_MANIFEST_TYPE, md, strlen(man)) > 0);
    write_file(layout, "index.json", index, strlen(index), 0644);

    /* Through the registry and back, imported, signed, stored. */
    _cleanup_free_ char *base = start_registry(f);
    _cleanup_free_ char *pulled = cat(f->dir, "bb-pulled"), *pack = cat(f->dir, "bb.pack"),
                        *sig = cat(f->dir, "bb.sig");
    if (img_registry_push_oci(base, "library/busybox", "stable", layout, NULL, &e) < 0 ||
        img_registry_pull_oci(base, "library/busybox", "stable", pulled, &e) < 0)
        fail_msg("registry: %s", e.msg);
    struct img_id id, x;
    if (img_oci_import(pulled, "stable", pack, "busybox", &id, &e) < 0)
        fail_msg("import: %s", e.msg);
    assert_int_equal(img_sign_file(f->priv, pack, sig, NULL, &e), 0);
    struct img_store *s;
    assert_int_equal(img_store_open(f->store_dir, f->trust, &s, &e), 0);
    assert_int_equal(img_store_add(s, pack, sig, &x, &e), 0);
    _cleanup_free_ char *root = NULL;
    assert_int_equal(img_store_acquire(s, &id, "cell-bb", &root, &e), 0);
    /* The store dir is 0700; the Cell reaches its root through a bind mount. */

    /* The Cell runs what the image config says, as nobody, over the stored tree. */
    _cleanup_free_ char *mpath = NULL;
    char hex[IMG_BLAKE3_HEX_LEN + 1], mj[4096];
    img_blake3_hex(id.digest, hex);
    assert_true(asprintf(&mpath, "images/%s/manifest.json", hex) > 0);
    read_small(f->store_dir, mpath, mj, sizeof(mj));
    struct img_manifest m;
    assert_int_equal(img_manifest_decode(mj, strlen(mj), &m, &e), 0);
    assert_int_equal(m.argc, 3);
    const char *argv[4] = {m.argv[0], m.argv[1], m.argv[2], NULL};
    char cg[48], name[32];
    snprintf(cg, sizeof(cg), "swiftcube-imgtest-%d", (int)getpid());
    snprintf(name, sizeof(name), "img-%d", (int)getpid());
    struct cell_host_config hc = {.backend = "linux", .cgroup_parent = cg};
    if (cell_host_new(&hc, &f->host, &e) < 0)
        fail_msg("cell_host_new: %s", e.msg);
    struct cell_spec spec = {.name = name,
                             .root = root,
                             .argv = argv,
                             .cwd = m.workdir,
                             .uid = 65534,
                             .gid = 65534,
                             .net = CELL_NET_NONE};
    struct cell *c = NULL;
    if (cell_create(f->host, &spec, &c, &e) < 0 || cell_start(c, &e) < 0)
        fail_msg("cell: %s", e.msg);
    assert_int_equal(cell_wait(c, 10 * USEC_PER_SEC), 0);
    struct cell_status st;
    cell_status(c, &st);
    char log[4096];
    uint64_t cur = 0;
    size_t n = cell_log_read(c, &cur, log, sizeof(log) - 1, NULL);
    log[n] = '\0';
    if (st.exit_code != 0 || !strstr(log, "hello from NAME=oci-busybox in /tmp"))
        fail_msg("Cell exit %d, log:\n%s", st.exit_code, log);
    cell_free(c);
    img_manifest_done(&m);

    /* The Cell is gone: its lease goes, and GC takes the image. */
    assert_int_equal(img_store_release(s, &id, "cell-bb", &e), 0);
    struct img_gc_stats gs;
    assert_int_equal(img_store_gc(s, 0, &gs, &e), 0);
    assert_int_equal(gs.images_removed, 1);
    img_store_free(s);
}

/* ---- interop: an image layout written by a real tool (umoci) ------------------------ */

static void run_tool(const char *const argv[])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(null, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s %s failed (status %d); is umoci installed (scripts/deps.sh)?", argv[0],
                 argv[1], st);
}

static void oci_layout_from_umoci_imports(void **state)
{
    struct fx *f = *state;
    struct sc_error e = {0};
    _cleanup_free_ char *layout = cat(f->dir, "umoci"), *bundle = cat(f->dir, "bundle"),
                        *image = NULL, *rootfs = cat(bundle, "rootfs"), *dest = cat(f->dir, "flat");
    assert_true(asprintf(&image, "%s:web", layout) > 0);
    run_tool((const char *const[]){"umoci", "init", "--layout", layout, NULL});
    run_tool((const char *const[]){"umoci", "new", "--image", image, NULL});
    run_tool((const char *const[]){"umoci", "unpack", "--image", image, bundle, NULL});
    /* Layer 1: a small tree with busybox. */
    mkdir_in(rootfs, "etc", 0755);
    mkdir_in(rootfs, "bin", 0755);
    write_file(rootfs, "etc/a", "one\n", 4, 0644);
    write_file(rootfs, "etc/b", "two\n", 4, 0600);
    int fd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat bst;
    assert_int_equal(fstat(fd, &bst), 0);
    _cleanup_free_ uint8_t *bb = xmalloc((size_t)bst.st_size);
    assert_int_equal(read(fd, bb, (size_t)bst.st_size), bst.st_size);
    close(fd);
    write_file(rootfs, "bin/busybox", bb, (size_t)bst.st_size, 0755);
    symlink_in(rootfs, "bin/sh", "busybox");
    run_tool((const char *const[]){"umoci", "repack", "--image", image, bundle, NULL});
    /* Layer 2, from a fresh unpack: a deletion (umoci writes a whiteout) and a new file. */
    _cleanup_free_ char *bundle2 = cat(f->dir, "bundle2"), *rootfs2 = cat(bundle2, "rootfs");
    run_tool((const char *const[]){"umoci", "unpack", "--image", image, bundle2, NULL});
    _cleanup_free_ char *a = cat(rootfs2, "etc/a");
    assert_int_equal(unlink(a), 0);
    write_file(rootfs2, "etc/c", "three\n", 6, 0644);
    run_tool((const char *const[]){"umoci", "repack", "--image", image, bundle2, NULL});
    run_tool((const char *const[]){"umoci", "config", "--image", image,
                                   "--config.entrypoint=/bin/sh", "--config.cmd=-c",
                                   "--config.cmd=echo hi", "--config.workingdir=/etc", NULL});

    struct img_oci_config cfg;
    if (img_oci_flatten(layout, "web", dest, &cfg, &e) < 0)
        fail_msg("flatten: %s", e.msg);
    assert_int_equal(cfg.layers, 2);
    assert_int_equal(cfg.argc, 3);
    assert_string_equal(cfg.argv[0], "/bin/sh");
    assert_string_equal(cfg.argv[2], "echo hi");
    assert_string_equal(cfg.workdir, "/etc");
    img_oci_config_done(&cfg);
    char buf[16];
    read_small(dest, "etc/b", buf, sizeof(buf));
    assert_string_equal(buf, "two\n");
    read_small(dest, "etc/c", buf, sizeof(buf));
    assert_string_equal(buf, "three\n");
    _cleanup_free_ char *fa = cat(dest, "etc/a"), *fb = cat(dest, "etc/b"),
                        *fbb = cat(dest, "bin/busybox"), *fsh = cat(dest, "bin/sh");
    struct stat st;
    assert_int_equal(lstat(fa, &st), -1); /* removed by layer 2's whiteout */
    assert_int_equal(stat(fb, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(fbb, &st), 0);
    assert_int_equal(st.st_size, bst.st_size);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(lstat(fsh, &st), 0);
    assert_true(S_ISLNK(st.st_mode));

    /* And the same layout imports into a packed base whose identity is stable. */
    _cleanup_free_ char *p1 = cat(f->dir, "w1.pack"), *p2 = cat(f->dir, "w2.pack");
    struct img_id i1, i2;
    assert_int_equal(img_oci_import(layout, "web", p1, NULL, &i1, &e), 0);
    assert_int_equal(img_oci_import(layout, "web", p2, NULL, &i2, &e), 0);
    assert_true(img_id_equal(&i1, &i2));
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pack_is_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(pack_store_tree_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(tampered_image_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unsigned_or_untrusted_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(shared_files_share_storage, setup, teardown),
        cmocka_unit_test_setup_teardown(gc_removes_unused_keeps_leased, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_finds_changed_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(dropped_blobs_are_reproduced_by_export, setup, teardown),
        cmocka_unit_test_setup_teardown(store_is_locked_and_holders_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_archives_cannot_escape, setup, teardown),
        cmocka_unit_test(manifest_decoder_is_strict),
        cmocka_unit_test_setup_teardown(oci_layout_imports_with_whiteouts, setup, teardown),
        cmocka_unit_test_setup_teardown(oci_layers_cannot_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(oci_layout_from_umoci_imports, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_push_pull_signed_image, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_oci_image_imports, setup, teardown),
        cmocka_unit_test_setup_teardown(oci_image_from_registry_runs_in_a_cell, setup, teardown),
    };
    return sc_test_main(tests, argc, argv);
}
