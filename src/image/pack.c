/*
 * pack.c: packed bases: identities, the manifest, packing a directory tree into
 * one file and reading such a file back.
 *
 * The format is a POSIX tar (pax restricted) because every tool can inspect it and
 * OCI layers are tars too, but written deterministically so that the identity
 * (BLAKE3 of the bytes) depends only on the tree: `manifest.json` first, then
 * `rootfs/` and every entry below it in byte-wise sorted path order (parents
 * therefore precede children), mtime 0, numeric owners without names, no xattrs,
 * no padding past the last 512-byte record.  The BLAKE3 of the bytes is computed
 * while they are written, so packing reads the tree once and writes the file once.
 *
 * The reader is the only parser of untrusted packed bytes (the store runs it only
 * after the signature check, and it is written to be fuzzed alone): it accepts
 * only regular files, directories and symlinks, relative paths without "." or
 * ".." components, a bounded manifest and a bounded number of entries.
 */
#include "image/image.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/util.h"

/* ---- identities -------------------------------------------------------------------- */

void img_id_format(const struct img_id *id, char out[IMG_ID_STR_LEN + 1])
{
    memcpy(out, IMG_ID_PREFIX, strlen(IMG_ID_PREFIX));
    img_blake3_hex(id->digest, out + strlen(IMG_ID_PREFIX));
}

int img_id_parse(const char *s, struct img_id *ret, struct sc_error *e)
{
    size_t pl = strlen(IMG_ID_PREFIX);
    if (strncmp(s, IMG_ID_PREFIX, pl) != 0 || strlen(s) != IMG_ID_STR_LEN)
        return sc_error_set(e, -SC_E_INVALID, "image",
                            "image id must be blake3:<64 hex>, not '%.80s'", s);
    struct img_id id;
    for (size_t i = 0; i < IMG_BLAKE3_OUT_LEN; i++) {
        int hi = sc_hexval(s[pl + 2 * i]), lo = sc_hexval(s[pl + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return sc_error_set(e, -SC_E_INVALID, "image", "image id has a non-hex digit: '%s'", s);
        id.digest[i] = (uint8_t)(hi << 4 | lo);
    }
    *ret = id;
    return 0;
}

bool img_id_equal(const struct img_id *a, const struct img_id *b)
{
    return memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

int img_id_of_file(const char *path, struct img_id *ret, struct sc_error *e)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "image", "open %s: %m", path);
    int r = img_blake3_fd(fd, ret->digest, NULL);
    if (r < 0)
        return sc_error_set(e, r, "image", "read %s: %s", path, strerror(-r));
    return 0;
}

/* ---- manifest ---------------------------------------------------------------------- */

static void free_strv(char **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(v[i]);
    *n = 0;
}

void img_manifest_done(struct img_manifest *m)
{
    if (!m)
        return;
    free_strv(m->writable, &m->n_writable);
    free_strv(m->argv, &m->argc);
    free_strv(m->env, &m->n_env);
    free(m->workdir);
    memset(m, 0, sizeof(*m));
}

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

int img_manifest_encode(const struct img_manifest *m, char **ret, size_t *ret_len)
{
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string(IMG_PACK_FORMAT));
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "files", json_integer((json_int_t)m->files));
    json_object_set_new(o, "dirs", json_integer((json_int_t)m->dirs));
    json_object_set_new(o, "symlinks", json_integer((json_int_t)m->symlinks));
    json_object_set_new(o, "content_bytes", json_integer((json_int_t)m->content_bytes));
    json_object_set_new(o, "skipped", json_integer((json_int_t)m->skipped));
    json_object_set_new(o, "writable", strv_json(m->writable, m->n_writable));
    json_object_set_new(o, "argv", strv_json(m->argv, m->argc));
    json_object_set_new(o, "env", strv_json(m->env, m->n_env));
    json_object_set_new(o, "workdir", json_string(m->workdir ? m->workdir : "/"));
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -ENOMEM;
    *ret = s;
    *ret_len = strlen(s);
    return 0;
}

static int decode_strv(json_t *a, const char *field, char **v, size_t *n, size_t max, bool absolute,
                       struct sc_error *e)
{
    if (!json_is_array(a))
        return sc_error_set(e, -SC_E_INVALID, field, "manifest: %s must be an array", field);
    if (json_array_size(a) > max)
        return sc_error_set(e, -SC_E_INVALID, field, "manifest: %s has more than %zu items", field,
                            max);
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        const char *s = json_string_value(x);
        if (!s || strlen(s) > IMG_STR_MAX || (absolute && s[0] != '/'))
            return sc_error_set(e, -SC_E_INVALID, field,
                                "manifest: %s[%zu] must be a%s string of at most %d bytes", field,
                                i, absolute ? "n absolute path" : "", IMG_STR_MAX);
        v[(*n)++] = xstrdup(s);
    }
    return 0;
}

static int decode_count(json_t *o, const char *field, uint64_t *ret, struct sc_error *e)
{
    json_t *x = json_object_get(o, field);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return sc_error_set(e, -SC_E_INVALID, field, "manifest: %s must be a count", field);
    *ret = (uint64_t)json_integer_value(x);
    return 0;
}

int img_manifest_decode(const char *json, size_t len, struct img_manifest *m, struct sc_error *e)
{
    static const char *const known[] = {"format",   "name",          "files",   "dirs",
                                        "symlinks", "content_bytes", "skipped", "writable",
                                        "argv",     "env",           "workdir"};
    memset(m, 0, sizeof(*m));
    if (len > IMG_MANIFEST_MAX)
        return sc_error_set(e, -SC_E_INVALID, "manifest", "manifest is larger than %u bytes",
                            IMG_MANIFEST_MAX);
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return sc_error_set(e, -SC_E_INVALID, "manifest", "manifest: %s at line %d column %d",
                            jerr.text, jerr.line, jerr.column);
    int r = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(o)) {
        r = sc_error_set(e, -SC_E_INVALID, "manifest", "manifest must be a JSON object");
        goto out;
    }
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
            ok |= strcmp(k, known[i]) == 0;
        if (!ok) {
            r = sc_error_set(e, -SC_E_INVALID, k, "manifest: unknown field '%.64s'", k);
            goto out;
        }
    }
    const char *fmt = json_string_value(json_object_get(o, "format"));
    if (!fmt || strcmp(fmt, IMG_PACK_FORMAT) != 0) {
        r = sc_error_set(e, -SC_E_INVALID, "format", "manifest: format must be %s",
                         IMG_PACK_FORMAT);
        goto out;
    }
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || strlen(name) > IMG_NAME_MAX) {
        r = sc_error_set(e, -SC_E_INVALID, "name",
                         "manifest: name must be a string of at most %d bytes", IMG_NAME_MAX);
        goto out;
    }
    snprintf(m->name, sizeof(m->name), "%s", name);
    if ((r = decode_count(o, "files", &m->files, e)) < 0 ||
        (r = decode_count(o, "dirs", &m->dirs, e)) < 0 ||
        (r = decode_count(o, "symlinks", &m->symlinks, e)) < 0 ||
        (r = decode_count(o, "content_bytes", &m->content_bytes, e)) < 0 ||
        (r = decode_count(o, "skipped", &m->skipped, e)) < 0)
        goto out;
    if ((r = decode_strv(json_object_get(o, "writable"), "writable", m->writable, &m->n_writable,
                         IMG_MAX_WRITABLE, true, e)) < 0 ||
        (r = decode_strv(json_object_get(o, "argv"), "argv", m->argv, &m->argc, IMG_MAX_ARGS, false,
                         e)) < 0 ||
        (r = decode_strv(json_object_get(o, "env"), "env", m->env, &m->n_env, IMG_MAX_ENV, false,
                         e)) < 0)
        goto out;
    const char *wd = json_string_value(json_object_get(o, "workdir"));
    if (!wd || wd[0] != '/' || strlen(wd) > IMG_STR_MAX) {
        r = sc_error_set(e, -SC_E_INVALID, "workdir", "manifest: workdir must be an absolute path");
        goto out;
    }
    m->workdir = xstrdup(wd);
out:
    json_decref(o);
    if (r < 0)
        img_manifest_done(m);
    return r;
}

/* ---- packing ----------------------------------------------------------------------- */

struct pack_ent {
    char *path; /* relative to src, no leading "./" */
    struct stat st;
    char *link;
};

struct pack_walk {
    struct pack_ent *v;
    size_t n, cap;
    uint64_t skipped;
};

static int walk(int dirfd, const char *rel, struct pack_walk *w, struct sc_error *e)
{
    int dfd = dup(dirfd);
    if (dfd < 0)
        return sc_error_set(e, -errno, "src", "dup: %m");
    DIR *d = fdopendir(dfd);
    if (!d) {
        int r = -errno;
        close(dfd);
        return sc_error_set(e, r, "src", "opendir %s: %s", rel, strerror(-r));
    }
    int r = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (w->n >= IMG_MAX_ENTRIES) {
            r = sc_error_set(e, -E2BIG, "src", "more than %u entries", IMG_MAX_ENTRIES);
            break;
        }
        struct pack_ent ent = {0};
        if (asprintf(&ent.path, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) < 0)
            sc_oom();
        if (strlen(ent.path) >= PATH_MAX - 16) {
            r = sc_error_set(e, -ENAMETOOLONG, "src", "path too long: %.80s...", ent.path);
            free(ent.path);
            break;
        }
        if (fstatat(dirfd, de->d_name, &ent.st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = sc_error_set(e, -errno, "src", "stat %s: %m", ent.path);
            free(ent.path);
            break;
        }
        mode_t t = ent.st.st_mode & S_IFMT;
        if (t != S_IFREG && t != S_IFDIR && t != S_IFLNK) {
            w->skipped++;
            free(ent.path);
            continue;
        }
        if (t == S_IFLNK) {
            char buf[PATH_MAX];
            ssize_t n = readlinkat(dirfd, de->d_name, buf, sizeof(buf) - 1);
            if (n < 0) {
                r = sc_error_set(e, -errno, "src", "readlink %s: %m", ent.path);
                free(ent.path);
                break;
            }
            buf[n] = '\0';
            ent.link = xstrdup(buf);
        }
        w->v = sc_grow(w->v, &w->cap, w->n + 1, sizeof(*w->v));
        w->v[w->n++] = ent;
        if (t == S_IFDIR) {
            _cleanup_close_ int sub =
                openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                r = sc_error_set(e, -errno, "src", "open %s: %m", ent.path);
                break;
            }
            if ((r = walk(sub, ent.path, w, e)) < 0)
                break;
        }
    }
    if (r == 0 && errno != 0)
        r = sc_error_set(e, -errno, "src", "readdir %s: %m", rel);
    closedir(d);
    return r;
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pack_ent *)a)->path, ((const struct pack_ent *)b)->path);
}

struct pack_sink {
    int fd;
    struct img_blake3 hash;
    int err;
};

static la_ssize_t sink_write(struct archive *a, void *p, const void *buf, size_t len)
{
    struct pack_sink *s = p;
    int r = sc_write_all(s->fd, buf, len);
    if (r < 0) {
        s->err = r;
        archive_set_error(a, -r, "write: %s", strerror(-r));
        return -1;
    }
    img_blake3_update(&s->hash, buf, len);
    return (la_ssize_t)len;
}

static int arch_err(struct archive *a, struct sc_error *e, const char *what)
{
    int en = archive_errno(a);
    return sc_error_set(e, en > 0 ? -en : -SC_E_INTERNAL, "archive", "%s: %s", what,
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

/* Writes one header (and for a regular file its content, read from srcfd). */
static int put_entry(struct archive *a, struct archive_entry *ae, int srcfd,
                     const struct pack_ent *pe, uint8_t *buf, size_t buf_len, struct sc_error *e)
{
    if (archive_write_header(a, ae) != ARCHIVE_OK)
        return arch_err(a, e, pe->path);
    if (!S_ISREG(pe->st.st_mode))
        return 0;
    _cleanup_close_ int fd = openat(srcfd, pe->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "src", "open %s: %m", pe->path);
    uint64_t done = 0;
    for (;;) {
        ssize_t n = read(fd, buf, buf_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sc_error_set(e, -errno, "src", "read %s: %m", pe->path);
        if (n == 0)
            break;
        if (done + (uint64_t)n > (uint64_t)pe->st.st_size)
            break;
        if (archive_write_data(a, buf, (size_t)n) != n)
            return arch_err(a, e, pe->path);
        done += (uint64_t)n;
    }
    if (done != (uint64_t)pe->st.st_size)
        return sc_error_set(e, -ESTALE, "src", "%s changed size while it was packed", pe->path);
    return 0;
}

static void fill_entry(struct archive_entry *ae, const char *path, const struct stat *st,
                       const char *link)
{
    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, path);
    archive_entry_set_mode(ae, st->st_mode);
    archive_entry_set_uid(ae, st->st_uid);
    archive_entry_set_gid(ae, st->st_gid);
    archive_entry_set_mtime(ae, 0, 0);
    if (S_ISREG(st->st_mode))
        archive_entry_set_size(ae, st->st_size);
    else
        archive_entry_set_size(ae, 0);
    if (link)
        archive_entry_set_symlink(ae, link);
}

static void set_strv(char **v, size_t *n, size_t max, const char *const *src)
{
    for (; src && *src && *n < max; src++)
        v[(*n)++] = xstrdup(*src);
}

int img_pack(const char *src, const char *out, const struct img_pack_opts *opts,
             struct img_id *ret_id, struct sc_error *e)
{
    static const char *const default_writable[] = {"/tmp", "/run", NULL};
    struct img_pack_opts o = opts ? *opts : (struct img_pack_opts){0};
    _cleanup_close_ int srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srcfd < 0)
        return sc_error_set(e, -errno, "src", "open %s: %m", src);
    struct stat root_st;
    if (fstat(srcfd, &root_st) < 0)
        return sc_error_set(e, -errno, "src", "stat %s: %m", src);

    struct pack_walk w = {0};
    struct img_manifest m = {0};
    struct archive *a = NULL;
    struct archive_entry *ae = NULL;
    char *tmp = NULL, *mjson = NULL;
    uint8_t *buf = NULL;
    enum { COPY_BUF = 128 << 10 };
    struct pack_sink sink = {.fd = -1};
    int r = walk(srcfd, "", &w, e);
    if (r < 0)
        goto out;
    qsort(w.v, w.n, sizeof(*w.v), ent_cmp);

    const char *base = strrchr(src, '/');
    base = base && base[1] ? base + 1 : src;
    snprintf(m.name, sizeof(m.name), "%s", o.name ? o.name : base);
    for (size_t i = 0; i < w.n; i++) {
        if (S_ISREG(w.v[i].st.st_mode)) {
            m.files++;
            m.content_bytes += (uint64_t)w.v[i].st.st_size;
        } else if (S_ISDIR(w.v[i].st.st_mode))
            m.dirs++;
        else
            m.symlinks++;
    }
    m.skipped = w.skipped + o.extra_skipped;
    set_strv(m.writable, &m.n_writable, IMG_MAX_WRITABLE,
             o.writable ? o.writable : default_writable);
    set_strv(m.argv, &m.argc, IMG_MAX_ARGS, o.argv);
    set_strv(m.env, &m.n_env, IMG_MAX_ENV, o.env);
    m.workdir = o.workdir ? xstrdup(o.workdir) : NULL;
    size_t mlen;
    if ((r = img_manifest_encode(&m, &mjson, &mlen)) < 0)
        goto out;

    if (asprintf(&tmp, "%s.tmp.XXXXXX", out) < 0)
        sc_oom();
    sink.fd = mkostemp(tmp, O_CLOEXEC);
    if (sink.fd < 0) {
        r = sc_error_set(e, -errno, "out", "create %s: %m", tmp);
        free(tmp), tmp = NULL;
        goto out;
    }
    (void)fchmod(sink.fd, 0644);
    img_blake3_init(&sink.hash);
    a = archive_write_new();
    ae = archive_entry_new();
    if (!a || !ae)
        sc_oom();
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 512) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, &sink, NULL, sink_write, NULL) != ARCHIVE_OK) {
        r = arch_err(a, e, "archive setup");
        goto out;
    }
    /* The manifest entry, then the root, then the sorted tree. */
    struct stat mst = {.st_mode = S_IFREG | 0644, .st_size = (off_t)mlen};
    fill_entry(ae, "manifest.json", &mst, NULL);
    if (archive_write_header(a, ae) != ARCHIVE_OK ||
        archive_write_data(a, mjson, mlen) != (la_ssize_t)mlen) {
        r = arch_err(a, e, "manifest.json");
        goto out;
    }
    fill_entry(ae, "rootfs/", &root_st, NULL);
    if (archive_write_header(a, ae) != ARCHIVE_OK) {
        r = arch_err(a, e, "rootfs/");
        goto out;
    }
    buf = xmalloc(COPY_BUF);
    for (size_t i = 0; i < w.n; i++) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "rootfs/%s%s", w.v[i].path, S_ISDIR(w.v[i].st.st_mode) ? "/" : "") < 0)
            sc_oom();
        fill_entry(ae, p, &w.v[i].st, w.v[i].link);
        if ((r = put_entry(a, ae, srcfd, &w.v[i], buf, COPY_BUF, e)) < 0)
            goto out;
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        r = sink.err ? sc_error_set(e, sink.err, "out", "write %s: %s", tmp, strerror(-sink.err))
                     : arch_err(a, e, "close");
        goto out;
    }
    if (fsync(sink.fd) < 0 || rename(tmp, out) < 0) {
        r = sc_error_set(e, -errno, "out", "write %s: %m", out);
        goto out;
    }
    free(tmp), tmp = NULL;
    img_blake3_final(&sink.hash, ret_id->digest, IMG_BLAKE3_OUT_LEN);
    r = 0;
out:
    if (a)
        archive_write_free(a);
    archive_entry_free(ae);
    if (sink.fd >= 0)
        close(sink.fd);
    if (tmp)
        unlink(tmp);
    free(tmp);
    free(mjson);
    free(buf);
    img_manifest_done(&m);
    for (size_t i = 0; i < w.n; i++) {
        free(w.v[i].path);
        free(w.v[i].link);
    }
    free(w.v);
    return r;
}

/* ---- reading ----------------------------------------------------------------------- */

struct img_reader {
    struct archive *a;
    char *path;
    char *link;
    size_t entries;
    bool root_seen;
};

void img_reader_free(struct img_reader *r)
{
    if (!r)
        return;
    archive_read_free(r->a);
    free(r->path);
    free(r->link);
    free(r);
}

static int rd_err(struct img_reader *r, struct sc_error *e, const char *what)
{
    const char *s = archive_error_string(r->a);
    return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: %s: %s", what,
                        s ? s : "truncated or malformed");
}

/* A path below the root: no leading '/', no empty, "." or ".." component. */
static bool path_ok(const char *p)
{
    if (!*p || *p == '/' || strlen(p) >= PATH_MAX - 16)
        return false;
    for (const char *c = p; *c;) {
        const char *end = strchrnul(c, '/');
        size_t n = (size_t)(end - c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c = *end ? end + 1 : end;
    }
    return true;
}

int img_reader_open(int fd, struct img_reader **ret, struct img_manifest *ret_manifest,
                    struct sc_error *e)
{
    struct img_reader *r = xcalloc(1, sizeof(*r));
    r->a = archive_read_new();
    if (!r->a)
        sc_oom();
    /* tar only: no compression filters, no other formats to attack. */
    archive_read_support_format_tar(r->a);
    int rc = 0;
    struct archive_entry *ae;
    _cleanup_free_ char *mj = NULL;
    if (archive_read_open_fd(r->a, fd, 64 << 10) != ARCHIVE_OK) {
        rc = rd_err(r, e, "open");
        goto fail;
    }
    if (archive_read_next_header(r->a, &ae) != ARCHIVE_OK) {
        rc = rd_err(r, e, "first entry");
        goto fail;
    }
    const char *p = archive_entry_pathname(ae);
    if (!p || strcmp(p, "manifest.json") != 0 || archive_entry_filetype(ae) != AE_IFREG ||
        archive_entry_size(ae) < 0 || archive_entry_size(ae) > (la_int64_t)IMG_MANIFEST_MAX) {
        rc = sc_error_set(e, -SC_E_CORRUPT, "image",
                          "packed base: the first entry must be manifest.json (at most %u bytes)",
                          IMG_MANIFEST_MAX);
        goto fail;
    }
    size_t mlen = (size_t)archive_entry_size(ae);
    mj = xmalloc(mlen + 1);
    size_t got = 0;
    while (got < mlen) {
        la_ssize_t n = archive_read_data(r->a, mj + got, mlen - got);
        if (n <= 0) {
            rc = rd_err(r, e, "manifest.json");
            goto fail;
        }
        got += (size_t)n;
    }
    if ((rc = img_manifest_decode(mj, mlen, ret_manifest, e)) < 0)
        goto fail;
    *ret = r;
    return 0;
fail:
    img_reader_free(r);
    return rc;
}

int img_reader_next(struct img_reader *r, struct img_entry *ent, struct sc_error *e)
{
    struct archive_entry *ae;
    int rc = archive_read_next_header(r->a, &ae);
    if (rc == ARCHIVE_EOF) {
        if (!r->root_seen)
            return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base has no rootfs/ entry");
        return 0;
    }
    if (rc != ARCHIVE_OK)
        return rd_err(r, e, "entry header");
    if (++r->entries > IMG_MAX_ENTRIES + 1)
        return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base has more than %u entries",
                            IMG_MAX_ENTRIES);
    const char *p = archive_entry_pathname(ae);
    if (!p || strncmp(p, "rootfs/", 7) != 0)
        return sc_error_set(e, -SC_E_CORRUPT, "image",
                            "packed base: entry '%.80s' is outside rootfs/", p ? p : "");
    free(r->path);
    r->path = xstrdup(p + 7);
    size_t n = strlen(r->path);
    unsigned type = archive_entry_filetype(ae);
    if (n > 0 && r->path[n - 1] == '/' && type == AE_IFDIR)
        r->path[--n] = '\0';
    if (archive_entry_hardlink(ae))
        return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: hard link entry '%.80s'", p);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
        return sc_error_set(e, -SC_E_CORRUPT, "image",
                            "packed base: '%.80s' is not a file, directory or symlink", p);
    memset(ent, 0, sizeof(*ent));
    if (n == 0) {
        if (type != AE_IFDIR || r->root_seen)
            return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: bad rootfs/ entry");
        r->root_seen = true;
        ent->path = ".";
    } else {
        if (!r->root_seen)
            return sc_error_set(e, -SC_E_CORRUPT, "image",
                                "packed base: rootfs/ must precede its entries");
        if (!path_ok(r->path))
            return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: bad path '%.80s'", p);
        ent->path = r->path;
    }
    ent->mode = (mode_t)(archive_entry_mode(ae) & (S_IFMT | 07777));
    ent->uid = (uid_t)archive_entry_uid(ae);
    ent->gid = (gid_t)archive_entry_gid(ae);
    la_int64_t size = archive_entry_size(ae);
    if (type == AE_IFREG && size < 0)
        return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: '%.80s' has no size", p);
    ent->size = type == AE_IFREG ? (uint64_t)size : 0;
    if (type == AE_IFLNK) {
        const char *l = archive_entry_symlink(ae);
        if (!l || !*l || strlen(l) >= PATH_MAX)
            return sc_error_set(e, -SC_E_CORRUPT, "image", "packed base: bad symlink '%.80s'", p);
        free(r->link);
        r->link = xstrdup(l);
        ent->link = r->link;
    }
    return 1;
}

ssize_t img_reader_data(struct img_reader *r, void *buf, size_t len, struct sc_error *e)
{
    la_ssize_t n = archive_read_data(r->a, buf, len);
    if (n < 0)
        return rd_err(r, e, "file data");
    return (ssize_t)n;
}
