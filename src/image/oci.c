/*
 * oci.c: importing an existing OCI image (an OCI image layout directory, as
 * written by skopeo, umoci, buildah or img_registry_pull_oci) into a packed base.
 *
 * SwiftCube has no image layers at run time (ARCHITECTURE.md): an OCI image is
 * flattened once, at import.  Its layers are applied in order into one directory
 * with overlay semantics, then the directory is packed like any other root
 * filesystem, so its identity and signature work as for images we build.
 *
 * Layer application follows the OCI image spec, "Applying Changesets":
 *   - `.wh.NAME` deletes NAME of the lower layers; `.wh..wh..opq` empties its
 *     directory of everything the lower layers put there (entries of the same layer
 *     stay);
 *   - an entry replaces whatever was at its path, except that a directory over a
 *     directory only changes the metadata;
 *   - hard links point at paths already extracted.
 * Paths are resolved with openat2(RESOLVE_IN_ROOT), i.e. as inside a chroot of the
 * image: a symlink in a layer can never send a later entry outside the tree.
 * Every blob is checked against its sha256 digest and size before it is used;
 * device nodes are skipped (the Cell brings its own /dev).
 */
#include "image/oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/util.h"
#include "image/img_int.h"

#define OCI_JSON_MAX   (4u << 20)
#define OCI_MAX_LAYERS 128
#define IN_ROOT        (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

/* ---- digests ----------------------------------------------------------------------- */

int img_sha256_fd(int fd, char out[IMG_SHA256_STR_LEN + 1], uint64_t *ret_size)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        sc_oom();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    uint8_t buf[64 << 10];
    uint64_t total = 0;
    int r = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(c, buf, (size_t)n);
        total += (uint64_t)n;
    }
    uint8_t d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(c, d, &dl);
    EVP_MD_CTX_free(c);
    if (r < 0)
        return r;
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
    if (ret_size)
        *ret_size = total;
    return 0;
}

void img_sha256_mem(const void *data, size_t len, char out[IMG_SHA256_STR_LEN + 1])
{
    uint8_t d[32];
    unsigned dl = 0;
    EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

/* "sha256:<64 lower hex>" only: the digest becomes a file name. */
bool img_sha256_valid(const char *digest)
{
    if (!digest || strlen(digest) != IMG_SHA256_STR_LEN || strncmp(digest, "sha256:", 7) != 0)
        return false;
    for (const char *p = digest + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- layout reading ---------------------------------------------------------------- */

/* Opens blob `digest` of the layout after checking its digest and size. */
static int open_blob(int layout_fd, const char *digest, int64_t size, struct sc_error *e)
{
    if (!img_sha256_valid(digest))
        return sc_error_set(e, -SC_E_INVALID, "oci", "unsupported digest '%.80s'",
                            digest ? digest : "");
    char path[96];
    snprintf(path, sizeof(path), "blobs/sha256/%s", digest + 7);
    int fd = openat(layout_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "oci", "blob %s: %m", digest);
    char got[IMG_SHA256_STR_LEN + 1];
    uint64_t n;
    int r = img_sha256_fd(fd, got, &n);
    if (r < 0 || strcmp(got, digest) != 0 || (size >= 0 && (uint64_t)size != n)) {
        close(fd);
        return sc_error_set(e, r < 0 ? r : -SC_E_CORRUPT, "oci",
                            "blob %s does not match its digest or size", digest);
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        r = -errno;
        close(fd);
        return sc_error_set(e, r, "oci", "seek: %s", strerror(-r));
    }
    return fd;
}

static json_t *load_json_fd(int fd, const char *what, struct sc_error *e)
{
    _cleanup_free_ char *buf = xmalloc(OCI_JSON_MAX);
    size_t got = 0;
    ssize_t n;
    while (got < OCI_JSON_MAX && (n = read(fd, buf + got, OCI_JSON_MAX - got)) > 0)
        got += (size_t)n;
    if (got >= OCI_JSON_MAX) {
        sc_error_set(e, -SC_E_INVALID, "oci", "%s is larger than %u bytes", what, OCI_JSON_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf, got, 0, &jerr);
    if (!j || !json_is_object(j)) {
        sc_error_set(e, -SC_E_INVALID, "oci", "%s: %s (line %d)", what,
                     j ? "not a JSON object" : jerr.text, jerr.line);
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *load_blob_json(int layout_fd, json_t *desc, const char *what, struct sc_error *e)
{
    const char *digest = json_string_value(json_object_get(desc, "digest"));
    json_t *sz = json_object_get(desc, "size");
    int fd = open_blob(layout_fd, digest, json_is_integer(sz) ? json_integer_value(sz) : -1, e);
    if (fd < 0)
        return NULL;
    json_t *j = load_json_fd(fd, what, e);
    close(fd);
    return j;
}

static bool is_index(const char *mt)
{
    return mt && (strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
                  strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
}

/* Picks the descriptor for ref (by org.opencontainers.image.ref.name) or, with
 * ref NULL, the only one; in a nested index, the linux/amd64 entry. */
static json_t *pick(json_t *index, const char *ref, struct sc_error *e)
{
    json_t *ms = json_object_get(index, "manifests");
    if (!json_is_array(ms) || json_array_size(ms) == 0) {
        sc_error_set(e, -SC_E_INVALID, "oci", "index has no manifests");
        return NULL;
    }
    size_t i;
    json_t *d;
    json_array_foreach(ms, i, d)
    {
        const char *name = json_string_value(json_object_get(json_object_get(d, "annotations"),
                                                             "org.opencontainers.image.ref.name"));
        json_t *plat = json_object_get(d, "platform");
        const char *os = json_string_value(json_object_get(plat, "os"));
        const char *arch = json_string_value(json_object_get(plat, "architecture"));
        if (ref && name && strcmp(name, ref) == 0)
            return d;
        if (!ref && plat && os && arch && strcmp(os, "linux") == 0 && strcmp(arch, "amd64") == 0)
            return d;
    }
    if (!ref && json_array_size(ms) == 1)
        return json_array_get(ms, 0);
    sc_error_set(e, -SC_E_NOT_FOUND, "oci", "no manifest for '%s' in the index",
                 ref ? ref : "(the only one)");
    return NULL;
}

/* ---- layer application ------------------------------------------------------------- */

struct strset {
    char **v;
    size_t n, cap;
};

static void strset_add(struct strset *s, const char *x)
{
    s->v = sc_grow(s->v, &s->cap, s->n + 1, sizeof(*s->v));
    s->v[s->n++] = xstrdup(x);
}

static bool strset_has(const struct strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return true;
    return false;
}

static void strset_clear(struct strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

/* Normalises a layer path: strips "./" and "/" prefixes and a trailing "/";
 * refuses ".." components.  "" is the root. */
static int norm_path(const char *in, char *out, size_t outsz)
{
    while (in[0] == '.' && in[1] == '/')
        in += 2;
    while (*in == '/')
        in++;
    if (strcmp(in, ".") == 0)
        in = "";
    size_t n = strlen(in);
    if (n >= outsz)
        return -ENAMETOOLONG;
    memcpy(out, in, n + 1);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    for (const char *c = out; *c;) {
        const char *end = strchrnul(c, '/');
        size_t l = (size_t)(end - c);
        if (l == 0 || (l == 2 && c[0] == '.' && c[1] == '.') || (l == 1 && c[0] == '.'))
            return -EINVAL;
        c = *end ? end + 1 : end;
    }
    return 0;
}

struct flatten {
    int root_fd;
    struct strset layer_paths; /* created by the current layer (opaque dirs keep them) */
    uint64_t skipped;
};

/* Opens the parent of path (resolved inside the root); *ret_base is the last name. */
static int parent_of(struct flatten *f, char *path, const char **ret_base)
{
    char *slash = strrchr(path, '/');
    if (!slash) {
        *ret_base = path;
        int fd = fcntl(f->root_fd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? -errno : fd;
    }
    *slash = '\0';
    int fd = img_openat2(f->root_fd, path, O_PATH | O_DIRECTORY, IN_ROOT);
    *slash = '/';
    *ret_base = slash + 1;
    return fd;
}

static int apply_whiteout(struct flatten *f, const char *path, const char *base, int pfd,
                          struct sc_error *e)
{
    if (strcmp(base, ".wh..wh..opq") == 0) {
        /* Opaque: drop what lower layers put in this directory. */
        size_t plen = (size_t)(base - path);
        int r = 0;
        DIR *d = img_opendir_at(pfd, ".", &r);
        if (!d)
            return sc_error_set(e, r, "oci", "opaque %s: %s", path, strerror(-r));
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            _cleanup_free_ char *child = NULL;
            if (asprintf(&child, "%.*s%s", (int)plen, path, de->d_name) < 0)
                sc_oom();
            if (!strset_has(&f->layer_paths, child) && (r = img_rm_rf_at(dirfd(d), de->d_name)) < 0)
                break;
        }
        closedir(d);
        return r < 0 ? sc_error_set(e, r, "oci", "opaque %s: %s", path, strerror(-r)) : 0;
    }
    const char *victim = base + 4;
    if (!victim[0] || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
        return sc_error_set(e, -SC_E_CORRUPT, "oci", "bad whiteout '%.80s'", path);
    int r = img_rm_rf_at(pfd, victim);
    return r < 0 ? sc_error_set(e, r, "oci", "whiteout %s: %s", path, strerror(-r)) : 0;
}

static int apply_entry(struct flatten *f, struct archive *a, struct archive_entry *ae,
                       struct sc_error *e)
{
    char path[PATH_MAX];
    const char *raw = archive_entry_pathname(ae);
    if (!raw || norm_path(raw, path, sizeof(path)) < 0)
        return sc_error_set(e, -SC_E_CORRUPT, "oci", "layer entry with a bad path '%.80s'",
                            raw ? raw : "");
    mode_t type = archive_entry_filetype(ae);
    mode_t perm = archive_entry_perm(ae) & 07777;
    uid_t uid = (uid_t)archive_entry_uid(ae);
    gid_t gid = (gid_t)archive_entry_gid(ae);
    bool root = geteuid() == 0;
    if (!path[0]) { /* the root directory itself */
        if (type == AE_IFDIR &&
            (fchmod(f->root_fd, perm) < 0 || (root && fchown(f->root_fd, uid, gid) < 0)))
            return sc_error_set(e, -errno, "oci", "chmod root: %m");
        return 0;
    }
    const char *base;
    _cleanup_close_ int pfd = parent_of(f, path, &base);
    if (pfd < 0)
        return sc_error_set(e, -SC_E_CORRUPT, "oci", "parent of '%.80s' is missing: %s", path,
                            strerror(-pfd));
    if (strncmp(base, ".wh.", 4) == 0)
        return apply_whiteout(f, path, base, pfd, e);
    strset_add(&f->layer_paths, path);

    struct stat old;
    bool exists = fstatat(pfd, base, &old, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !(type == AE_IFDIR && S_ISDIR(old.st_mode))) {
        int r = img_rm_rf_at(pfd, base);
        if (r < 0)
            return sc_error_set(e, r, "oci", "replace %s: %s", path, strerror(-r));
        exists = false;
    }
    const char *hl = archive_entry_hardlink(ae);
    if (hl) {
        char target[PATH_MAX];
        if (norm_path(hl, target, sizeof(target)) < 0 || !target[0])
            return sc_error_set(e, -SC_E_CORRUPT, "oci", "bad hard link target '%.80s'", hl);
        _cleanup_close_ int tfd = img_openat2(f->root_fd, target, O_PATH | O_NOFOLLOW, IN_ROOT);
        if (tfd < 0)
            return sc_error_set(e, -SC_E_CORRUPT, "oci", "hard link %s -> missing %s", path,
                                target);
        char p[64];
        snprintf(p, sizeof(p), "/proc/self/fd/%d", tfd);
        if (linkat(AT_FDCWD, p, pfd, base, AT_SYMLINK_FOLLOW) < 0)
            return sc_error_set(e, -errno, "oci", "link %s: %m", path);
        return 0;
    }
    switch (type) {
    case AE_IFDIR:
        if (!exists && mkdirat(pfd, base, 0700) < 0)
            return sc_error_set(e, -errno, "oci", "mkdir %s: %m", path);
        {
            _cleanup_close_ int dfd =
                openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (dfd < 0 || (root && fchown(dfd, uid, gid) < 0) || fchmod(dfd, perm) < 0)
                return sc_error_set(e, -errno, "oci", "dir %s: %m", path);
        }
        return 0;
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(ae);
        if (!target || symlinkat(target, pfd, base) < 0)
            return sc_error_set(e, -errno, "oci", "symlink %s: %m", path);
        if (root && fchownat(pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            return sc_error_set(e, -errno, "oci", "chown %s: %m", path);
        return 0;
    }
    case AE_IFREG: {
        _cleanup_close_ int fd =
            openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return sc_error_set(e, -errno, "oci", "create %s: %m", path);
        const void *buf;
        size_t len;
        la_int64_t off;
        int rc;
        while ((rc = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
            if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
                return sc_error_set(e, -errno, "oci", "write %s: %m", path);
        }
        if (rc != ARCHIVE_EOF)
            return sc_error_set(e, -SC_E_CORRUPT, "oci", "layer data of %s: %s", path,
                                archive_error_string(a));
        if (ftruncate(fd, archive_entry_size(ae)) < 0 || (root && fchown(fd, uid, gid) < 0) ||
            fchmod(fd, perm) < 0)
            return sc_error_set(e, -errno, "oci", "file %s: %m", path);
        return 0;
    }
    default:
        f->skipped++; /* devices, FIFOs, sockets */
        return 0;
    }
}

static int apply_layer(struct flatten *f, int fd, const char *digest, struct sc_error *e)
{
    struct archive *a = archive_read_new();
    if (!a)
        sc_oom();
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    int r = 0;
    strset_clear(&f->layer_paths);
    if (archive_read_open_fd(a, fd, 64 << 10) != ARCHIVE_OK) {
        r = sc_error_set(e, -SC_E_CORRUPT, "oci", "layer %s: %s", digest, archive_error_string(a));
        goto out;
    }
    struct archive_entry *ae;
    int rc;
    while ((rc = archive_read_next_header(a, &ae)) == ARCHIVE_OK)
        if ((r = apply_entry(f, a, ae, e)) < 0)
            goto out;
    if (rc != ARCHIVE_EOF)
        r = sc_error_set(e, -SC_E_CORRUPT, "oci", "layer %s: %s", digest, archive_error_string(a));
out:
    archive_read_free(a);
    return r;
}

/* ---- import ------------------------------------------------------------------------ */

static void strv_from_json(json_t *a, char ***v, size_t *n, size_t max)
{
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        if (json_is_string(x) && *n < max) {
            *v = xrealloc(*v, (*n + 1) * sizeof(**v));
            (*v)[(*n)++] = xstrdup(json_string_value(x));
        }
    }
}

int img_oci_flatten(const char *layout, const char *ref, const char *dest,
                    struct img_oci_config *ret_cfg, struct sc_error *e)
{
    _cleanup_close_ int lfd = open(layout, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0)
        return sc_error_set(e, -errno, "oci", "open %s: %m", layout);
    struct flatten f = {.root_fd = -1};
    json_t *index = NULL, *man = NULL, *nested = NULL, *cfg = NULL;
    int r;
    {
        _cleanup_close_ int ifd = openat(lfd, "index.json", O_RDONLY | O_CLOEXEC);
        if (ifd < 0) {
            r = sc_error_set(e, -errno, "oci", "%s/index.json: %m (not an OCI image layout?)",
                             layout);
            goto out;
        }
        if (!(index = load_json_fd(ifd, "index.json", e))) {
            r = -SC_E_INVALID;
            goto out;
        }
    }
    json_t *d = pick(index, ref, e);
    if (!d) {
        r = -SC_E_NOT_FOUND;
        goto out;
    }
    if (is_index(json_string_value(json_object_get(d, "mediaType")))) {
        if (!(nested = load_blob_json(lfd, d, "nested index", e)) || !(d = pick(nested, NULL, e))) {
            r = -SC_E_INVALID;
            goto out;
        }
    }
    if (!(man = load_blob_json(lfd, d, "manifest", e))) {
        r = -SC_E_INVALID;
        goto out;
    }
    json_t *layers = json_object_get(man, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > OCI_MAX_LAYERS) {
        r = sc_error_set(e, -SC_E_INVALID, "oci", "manifest: layers must be an array of at most %d",
                         OCI_MAX_LAYERS);
        goto out;
    }
    if (ret_cfg) {
        memset(ret_cfg, 0, sizeof(*ret_cfg));
        if ((cfg = load_blob_json(lfd, json_object_get(man, "config"), "config", e))) {
            json_t *c = json_object_get(cfg, "config");
            strv_from_json(json_object_get(c, "Entrypoint"), &ret_cfg->argv, &ret_cfg->argc,
                           IMG_MAX_ARGS);
            strv_from_json(json_object_get(c, "Cmd"), &ret_cfg->argv, &ret_cfg->argc, IMG_MAX_ARGS);
            strv_from_json(json_object_get(c, "Env"), &ret_cfg->env, &ret_cfg->n_env, IMG_MAX_ENV);
            const char *wd = json_string_value(json_object_get(c, "WorkingDir"));
            if (wd && wd[0] == '/')
                ret_cfg->workdir = xstrdup(wd);
        }
    }
    if (mkdir(dest, 0755) < 0 && errno != EEXIST) {
        r = sc_error_set(e, -errno, "oci", "mkdir %s: %m", dest);
        goto out;
    }
    f.root_fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f.root_fd < 0) {
        r = sc_error_set(e, -errno, "oci", "open %s: %m", dest);
        goto out;
    }
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *digest = json_string_value(json_object_get(l, "digest"));
        json_t *sz = json_object_get(l, "size");
        int fd = open_blob(lfd, digest, json_is_integer(sz) ? json_integer_value(sz) : -1, e);
        if (fd < 0) {
            r = fd;
            goto out;
        }
        r = apply_layer(&f, fd, digest, e);
        close(fd);
        if (r < 0)
            goto out;
    }
    if (ret_cfg)
        ret_cfg->layers = json_array_size(layers);
    r = 0;
out:
    if (r < 0 && ret_cfg)
        img_oci_config_done(ret_cfg);
    if (f.root_fd >= 0)
        close(f.root_fd);
    strset_clear(&f.layer_paths);
    free(f.layer_paths.v);
    json_decref(index);
    json_decref(nested);
    json_decref(man);
    json_decref(cfg);
    return r;
}

void img_oci_config_done(struct img_oci_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->argc; i++)
        free(c->argv[i]);
    for (size_t i = 0; i < c->n_env; i++)
        free(c->env[i]);
    free(c->argv);
    free(c->env);
    free(c->workdir);
    memset(c, 0, sizeof(*c));
}

int img_oci_import(const char *layout, const char *ref, const char *out, const char *name,
                   struct img_id *ret_id, struct sc_error *e)
{
    /* Flatten beside the output: same file system, and not a small /tmp tmpfs. */
    _cleanup_free_ char *tmpl = NULL;
    if (asprintf(&tmpl, "%s.flat.XXXXXX", out) < 0)
        sc_oom();
    if (!mkdtemp(tmpl))
        return sc_error_set(e, -errno, "oci", "mkdtemp %s: %m", tmpl);
    _cleanup_free_ char *dest = NULL;
    if (asprintf(&dest, "%s/rootfs", tmpl) < 0)
        sc_oom();
    struct img_oci_config cfg;
    int r = img_oci_flatten(layout, ref, dest, &cfg, e);
    if (r >= 0) {
        /* NULL-terminated views for img_pack. */
        const char *argv[IMG_MAX_ARGS + 1] = {0}, *env[IMG_MAX_ENV + 1] = {0};
        for (size_t i = 0; i < cfg.argc; i++)
            argv[i] = cfg.argv[i];
        for (size_t i = 0; i < cfg.n_env; i++)
            env[i] = cfg.env[i];
        struct img_pack_opts o = {
            .name = name ? name : (ref ? ref : "oci-import"),
            .argv = cfg.argc ? argv : NULL,
            .env = cfg.n_env ? env : NULL,
            .workdir = cfg.workdir,
        };
        r = img_pack(dest, out, &o, ret_id, e);
        img_oci_config_done(&cfg);
    }
    img_rm_rf_at(AT_FDCWD, tmpl);
    return r;
}
