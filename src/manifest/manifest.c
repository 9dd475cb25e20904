/*
 * manifest.c: manifest sets: files, directories and stdin in; one verdict out.
 *
 * A set is everything one `sctl apply` names.  Every document of every file is
 * read and validated even after an error, so the user sees all problems at once;
 * then the set is checked as a whole (no two objects of one kind with one name).
 * Only a set without a single error is returned: all-or-nothing is decided here,
 * before anything is applied.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "manifest/mf_int.h"

/* Where an object's name was written, to point at the second of two objects with
 * the same kind and name. */
struct seen {
    char *kind, *name, *file;
    unsigned line, col;
};

struct loader {
    struct manifest_set *set;
    struct manifest_errors *errs;
    const char *file;
    size_t ndocs; /* non-empty documents read */
    struct seen *seen;
    size_t nseen, seen_cap;
};

static void set_add(struct manifest_set *set, const char *file, const struct mf_rawdoc *d,
                    json_t *object)
{
    set->docs = sc_grow(set->docs, &set->cap, set->n + 1, sizeof(*set->docs));
    struct manifest_doc *doc = &set->docs[set->n++];
    doc->file = xstrdup(file);
    doc->index = d->index;
    doc->line = d->line;
    doc->object = object;
    doc->kind = json_string_value(json_object_get(object, "kind"));
    doc->name = json_string_value(json_object_get(json_object_get(object, "metadata"), "name"));
}

static void check_duplicate(struct loader *l, const struct mf_rawdoc *d, json_t *object)
{
    const char *kind = json_string_value(json_object_get(object, "kind"));
    const char *name =
        json_string_value(json_object_get(json_object_get(object, "metadata"), "name"));
    const char *path = json_object_get(d->root, "app") ? "app" : "metadata.name";
    unsigned line = 0, col = 0;
    mf_posmap_find(&d->pos, path, false, &line, &col);
    for (size_t i = 0; i < l->nseen; i++) {
        struct seen *s = &l->seen[i];
        if (strcmp(s->kind, kind) == 0 && strcmp(s->name, name) == 0) {
            mf_error_add(l->errs, l->file, line, col, path,
                         "%s '%s' is defined twice; the first is at %s:%u:%u", kind, name, s->file,
                         s->line, s->col);
            return;
        }
    }
    l->seen = sc_grow(l->seen, &l->seen_cap, l->nseen + 1, sizeof(*l->seen));
    l->seen[l->nseen++] = (struct seen){xstrdup(kind), xstrdup(name), xstrdup(l->file), line, col};
}

static bool error_after(const struct manifest_error *x, const struct manifest_error *y)
{
    return x->line > y->line || (x->line == y->line && x->col > y->col);
}

/* Errors of one document in the order of the text, not of the schema; insertion
 * sort because it is stable and a document rarely has more than a few errors. */
static void sort_errors(struct manifest_errors *errs, size_t from)
{
    for (size_t i = from + 1; i < errs->n; i++) {
        struct manifest_error e = errs->v[i];
        size_t j = i;
        for (; j > from && error_after(&errs->v[j - 1], &e); j--)
            errs->v[j] = errs->v[j - 1];
        errs->v[j] = e;
    }
}

static void on_doc(void *ud, struct mf_rawdoc *d)
{
    struct loader *l = ud;
    if (!d->root || json_is_null(d->root))
        return; /* an empty document (a stray `---`, only comments) */
    l->ndocs++;
    struct mf_ctx c = {.errs = l->errs, .file = l->file, .pos = &d->pos};
    mf_path_pop(&c.path, 0);
    size_t before = l->errs->n;
    json_t *object = mf_validate_doc(&c, NULL, d->root);
    sc_buf_free(&c.path);
    sort_errors(l->errs, before);
    if (!object)
        return;
    check_duplicate(l, d, object);
    set_add(l->set, l->file, d, object);
}

static int load_text(struct loader *l, const char *name, const char *text, size_t len)
{
    l->file = name;
    return mf_yaml_read(name, text, len, on_doc, l, l->errs);
}

/* Reads all of fd (at most MANIFEST_MAX_FILE_BYTES). */
static int read_all(int fd, char **ret, size_t *ret_len)
{
    size_t len = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        buf = sc_grow(buf, &cap, len + 65536, 1);
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int r = -errno;
            free(buf);
            return r;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MANIFEST_MAX_FILE_BYTES) {
            free(buf);
            return -EFBIG;
        }
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

static int load_fd(struct loader *l, const char *name, int fd)
{
    char *text = NULL;
    size_t len = 0;
    int r = read_all(fd, &text, &len);
    if (r == -EFBIG) {
        mf_error_add(l->errs, name, 0, 0, "", "larger than the limit of %u bytes",
                     MANIFEST_MAX_FILE_BYTES);
        return -SC_E_INVALID;
    }
    if (r < 0) {
        mf_error_add(l->errs, name, 0, 0, "", "cannot read: %s", strerror(-r));
        return r;
    }
    r = load_text(l, name, text, len);
    free(text);
    return r;
}

static int yaml_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    if (d->d_name[0] == '.')
        return 0;
    return (n > 5 && strcmp(d->d_name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(d->d_name + n - 4, ".yml") == 0);
}

static int load_path(struct loader *l, const char *path)
{
    if (strcmp(path, "-") == 0)
        return load_fd(l, "<stdin>", STDIN_FILENO);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        mf_error_add(l->errs, path, 0, 0, "", "cannot open: %s", strerror(errno));
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        mf_error_add(l->errs, path, 0, 0, "", "cannot stat: %s", strerror(errno));
        return r;
    }
    if (!S_ISDIR(st.st_mode))
        return load_fd(l, path, fd);
    struct dirent **names = NULL;
    int n = scandir(path, &names, yaml_filter, alphasort);
    if (n < 0) {
        int r = -errno;
        mf_error_add(l->errs, path, 0, 0, "", "cannot list: %s", strerror(errno));
        return r;
    }
    int rc = 0;
    if (n == 0) {
        mf_error_add(l->errs, path, 0, 0, "", "no *.yaml or *.yml files in this directory");
        rc = -SC_E_INVALID;
    } else if (n > (int)MANIFEST_MAX_FILES) {
        mf_error_add(l->errs, path, 0, 0, "", "more than %u manifest files", MANIFEST_MAX_FILES);
        rc = -SC_E_INVALID;
    }
    size_t len = strlen(path);
    for (int i = 0; i < n; i++) {
        if (n <= (int)MANIFEST_MAX_FILES) {
            char *p = NULL;
            if (asprintf(&p, "%s%s%s", path, len && path[len - 1] == '/' ? "" : "/",
                         names[i]->d_name) < 0)
                sc_oom();
            int r = load_path(l, p);
            if (r < 0 && (rc == 0 || rc == -SC_E_INVALID))
                rc = r;
            free(p);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int finish(struct loader *l, struct manifest_set *out, size_t nerr_before, int rc,
                  const char *first)
{
    if (rc >= 0 && l->ndocs == 0 && l->errs->n == nerr_before && !l->errs->dropped)
        mf_error_add(l->errs, first, 0, 0, "", "no objects found (every document is empty)");
    for (size_t i = 0; i < l->nseen; i++) {
        free(l->seen[i].kind);
        free(l->seen[i].name);
        free(l->seen[i].file);
    }
    free(l->seen);
    if (l->errs->n == nerr_before && !l->errs->dropped)
        return 0;
    manifest_set_done(out);
    return rc < 0 && rc != -SC_E_INVALID ? rc : -SC_E_INVALID;
}

int manifest_load_paths(const char *const *paths, size_t n, struct manifest_set *out,
                        struct manifest_errors *errs)
{
    struct loader l = {.set = out, .errs = errs};
    size_t before = errs->n;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = load_path(&l, paths[i]);
        if (r < 0 && (rc == 0 || rc == -SC_E_INVALID))
            rc = r;
    }
    return finish(&l, out, before, rc, n ? paths[0] : "-");
}

int manifest_load(const char *path, struct manifest_set *out, struct manifest_errors *errs)
{
    return manifest_load_paths(&path, 1, out, errs);
}

int manifest_load_buffer(const char *name, const char *text, size_t len, struct manifest_set *out,
                         struct manifest_errors *errs)
{
    struct loader l = {.set = out, .errs = errs};
    size_t before = errs->n;
    int rc = load_text(&l, name, text, len);
    return finish(&l, out, before, rc, name);
}

void manifest_set_done(struct manifest_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        free(set->docs[i].file);
        json_decref(set->docs[i].object);
    }
    free(set->docs);
    memset(set, 0, sizeof(*set));
}

/* ---- JSON bodies ------------------------------------------------------------------ */

int manifest_validate_json(const char *kind, const json_t *body, json_t **ret,
                           struct manifest_errors *errs)
{
    struct mf_ctx c = {.errs = errs};
    mf_path_pop(&c.path, 0);
    json_t *out = mf_validate_doc(&c, kind, body);
    sc_buf_free(&c.path);
    if (!out)
        return -SC_E_INVALID;
    *ret = out;
    return 0;
}

int manifest_parse_json(const char *kind, const char *body, size_t len, json_t **ret,
                        struct manifest_errors *errs)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        mf_error_add(errs, NULL, 0, 0, "", "invalid JSON at line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        return -SC_E_INVALID;
    }
    int r = manifest_validate_json(kind, j, ret, errs);
    json_decref(j);
    return r;
}

char *manifest_dump(const json_t *object)
{
    char *s = json_dumps(object, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        sc_oom();
    return s;
}
