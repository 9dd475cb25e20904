/*
 * util.c: the small pieces the reader and the validator share: field paths, the
 * position side table, the error list and its printing, "did you mean" by edit
 * distance, and short descriptions of values for error messages.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "manifest/mf_int.h"

/* ---- paths ------------------------------------------------------------------------ */

static void path_terminate(struct sc_buf *b)
{
    sc_buf_reserve(b, 1);
    b->data[b->len] = 0;
}

static bool ident_like(const char *k)
{
    if (!*k)
        return false;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

size_t mf_path_key(struct sc_buf *b, const char *key)
{
    size_t old = b->len;
    if (ident_like(key)) {
        if (b->len)
            sc_buf_put_u8(b, '.');
        sc_buf_put(b, key, strlen(key));
    } else {
        sc_buf_put(b, "[\"", 2);
        for (const char *p = key; *p; p++) {
            if (*p == '"' || *p == '\\')
                sc_buf_put_u8(b, '\\');
            sc_buf_put_u8(b, (uint8_t)*p);
        }
        sc_buf_put(b, "\"]", 2);
    }
    path_terminate(b);
    return old;
}

size_t mf_path_index(struct sc_buf *b, size_t i)
{
    size_t old = b->len;
    sc_buf_printf(b, "[%zu]", i);
    path_terminate(b);
    return old;
}

void mf_path_pop(struct sc_buf *b, size_t len)
{
    b->len = len;
    path_terminate(b);
}

const char *mf_path_str(const struct sc_buf *b)
{
    return b->data ? (const char *)b->data : "";
}

/* ---- positions -------------------------------------------------------------------- */

void mf_posmap_add(struct mf_posmap *m, const char *path, unsigned key_line, unsigned key_col,
                   unsigned line, unsigned col)
{
    m->v = sc_grow(m->v, &m->cap, m->n + 1, sizeof(*m->v));
    m->v[m->n++] = (struct mf_pos){xstrdup(path), key_line, key_col, line, col};
}

/* The parent of a path: "a.b[0]" -> "a.b", "a.b" -> "a", "a" -> "", "[\"x.y\"]" -> "".
 * Returns the new length; only ever called on paths the reader built. */
static size_t parent_len(const char *p, size_t len)
{
    if (len == 0)
        return 0;
    if (p[len - 1] == ']') {
        /* find the matching '[' outside quotes, scanning forward */
        size_t open = 0;
        bool q = false;
        for (size_t i = 0; i < len; i++) {
            if (q) {
                if (p[i] == '\\')
                    i++;
                else if (p[i] == '"')
                    q = false;
            } else if (p[i] == '"')
                q = true;
            else if (p[i] == '[')
                open = i;
        }
        return open;
    }
    size_t i = len;
    while (i > 0 && p[i - 1] != '.' && p[i - 1] != ']')
        i--;
    if (i > 0 && p[i - 1] == '.')
        i--;
    return i;
}

bool mf_posmap_find(const struct mf_posmap *m, const char *path, bool want_key, unsigned *line,
                    unsigned *col)
{
    if (!m)
        return false;
    size_t len = strlen(path);
    for (;;) {
        for (size_t i = 0; i < m->n; i++) {
            if (strlen(m->v[i].path) == len && memcmp(m->v[i].path, path, len) == 0) {
                *line = want_key ? m->v[i].key_line : m->v[i].line;
                *col = want_key ? m->v[i].key_col : m->v[i].col;
                return true;
            }
        }
        if (len == 0)
            return false;
        len = parent_len(path, len);
        want_key = false;
    }
}

void mf_posmap_done(struct mf_posmap *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].path);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* ---- errors ----------------------------------------------------------------------- */

void mf_error_add(struct manifest_errors *errs, const char *file, unsigned line, unsigned col,
                  const char *path, const char *fmt, ...)
{
    if (errs->n >= MANIFEST_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    errs->v = sc_grow(errs->v, &errs->cap, errs->n + 1, sizeof(*errs->v));
    errs->v[errs->n++] = (struct manifest_error){
        .file = file ? xstrdup(file) : NULL,
        .line = file ? line : 0,
        .col = file ? col : 0,
        .path = xstrdup(path ? path : ""),
        .msg = xstrdup(msg),
    };
}

void manifest_errors_done(struct manifest_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->v[i].file);
        free(errs->v[i].path);
        free(errs->v[i].msg);
    }
    free(errs->v);
    memset(errs, 0, sizeof(*errs));
}

int manifest_error_format(const struct manifest_error *err, char *buf, size_t size)
{
    char where[512] = "";
    if (err->file && err->line)
        snprintf(where, sizeof(where), "%s:%u:%u: ", err->file, err->line, err->col);
    else if (err->file)
        snprintf(where, sizeof(where), "%s: ", err->file);
    return snprintf(buf, size, "%s%s%s%s", where, err->path, *err->path ? ": " : "", err->msg);
}

void manifest_errors_print(const struct manifest_errors *errs, FILE *f)
{
    for (size_t i = 0; i < errs->n; i++) {
        char line[2048];
        manifest_error_format(&errs->v[i], line, sizeof(line));
        fprintf(f, "%s\n", line);
    }
    if (errs->dropped)
        fprintf(f, "... and %zu more error%s\n", errs->dropped, errs->dropped == 1 ? "" : "s");
}

/* ---- suggestions ------------------------------------------------------------------ */

size_t mf_edit_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            /* case differences cost nothing: "NodeSelector" is "nodeSelector" */
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t v = MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
            v = MIN(v, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    }
    return MIN(d[la][lb], cap + 1);
}

const char *mf_closest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    size_t cap = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = cap + 1;
    for (size_t i = 0; i < n; i++) {
        size_t d = mf_edit_distance(word, cands[i], cap);
        /* "containerPort" for "container": a known name plus a suffix */
        size_t cl = strlen(cands[i]);
        if (d > cap && cl >= 4 && len > cl && strncasecmp(word, cands[i], cl) == 0)
            d = cap;
        /* a short word is only "close" when the candidate shares its first letter */
        if (d < best_d &&
            (len > 3 || tolower((unsigned char)word[0]) == tolower((unsigned char)cands[i][0]))) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

void mf_describe(const json_t *v, char *buf, size_t size)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        snprintf(buf, size, "a mapping");
        break;
    case JSON_ARRAY:
        snprintf(buf, size, "a list");
        break;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        if (n > 40)
            snprintf(buf, size, "'%.37s...'", s);
        else
            snprintf(buf, size, "'%s'", s);
        break;
    }
    case JSON_INTEGER:
        snprintf(buf, size, "%" PRId64, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, size, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, size, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, size, "false");
        break;
    case JSON_NULL:
        snprintf(buf, size, "null (nothing)");
        break;
    }
}
