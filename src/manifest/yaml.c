/*
 * yaml.c: YAML text -> jansson trees, one per document, with the position of
 * every node in a side table.
 *
 * Why events, not libyaml's document loader: the loader builds its own node graph
 * and expands aliases without a limit (the "billion laughs"); walking the event
 * stream builds the jansson tree directly, records each key's and value's mark
 * under its field path as it goes, rejects duplicate keys at the second one, and
 * counts nodes (aliases included) against MANIFEST_MAX_NODES.
 *
 * Plain scalars are resolved with the YAML 1.2 core schema: null/~/empty, true/
 * false, decimal/0x/0o integers and decimal floats; everything else is a string
 * (so `yes`, `on` and `0.5.1` stay strings, and `100m` is a string for the unit
 * parser).  Quoted scalars are always strings.  The standard tags !!str, !!int,
 * !!float, !!bool, !!null, !!map and !!seq are honoured; other tags are errors.
 * Anchors may be referred to by aliases after their node is complete (no
 * recursive structures); merge keys (<<) are not supported.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/util.h"
#include "manifest/mf_int.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
    json_t *node; /* the mapping or sequence being filled (borrowed) */
    char *key;    /* mapping: the key waiting for its value */
    unsigned key_line, key_col;
    size_t path_len; /* path length before this node's own component */
    size_t index;    /* sequence: next item's index */
    char *anchor;    /* registered when the node ends */
};

struct anchor {
    char *name;
    json_t *node;
};

struct reader {
    const char *file;
    struct manifest_errors *errs;
    struct sc_buf path;
    struct frame stack[MANIFEST_MAX_DEPTH + 1];
    size_t depth;
    struct mf_rawdoc doc;
    bool in_doc;
    size_t nodes;
    struct anchor *anchors;
    size_t nanchors, anchors_cap;
    bool failed;
};

static void fail(struct reader *r, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct reader *r, const yaml_mark_t *m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mf_error_add(r->errs, r->file, (unsigned)m->line + 1, (unsigned)m->column + 1,
                 mf_path_str(&r->path), "%s", msg);
    r->failed = true;
}

static void anchors_clear(struct reader *r)
{
    for (size_t i = 0; i < r->nanchors; i++) {
        free(r->anchors[i].name);
        json_decref(r->anchors[i].node);
    }
    r->nanchors = 0;
}

static void doc_clear(struct reader *r)
{
    for (size_t i = 0; i < r->depth; i++) {
        free(r->stack[i].key);
        free(r->stack[i].anchor);
    }
    r->depth = 0;
    json_decref(r->doc.root);
    mf_posmap_done(&r->doc.pos);
    memset(&r->doc, 0, sizeof(r->doc));
    anchors_clear(r);
    r->nodes = 0;
    r->in_doc = false;
    mf_path_pop(&r->path, 0);
}

static bool is_tag(const char *tag, const char *name)
{
    return tag && strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0 &&
           strcmp(tag + strlen(TAG_PREFIX), name) == 0;
}

static bool all_digits(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* YAML 1.2 core schema integer; 1 = it is one (in *v), 0 = not an integer,
 * -1 = an integer out of range. */
static int resolve_int(const char *s, int64_t *v)
{
    int base = 10;
    const char *d = s;
    if (s[0] == '0' && s[1] == 'x')
        base = 16, d = s + 2;
    else if (s[0] == '0' && s[1] == 'o')
        base = 8, d = s + 2;
    else if (*d == '-' || *d == '+')
        d++;
    if (!all_digits(d, base == 16  ? "0123456789abcdefABCDEF"
                       : base == 8 ? "01234567"
                                   : "0123456789"))
        return 0;
    errno = 0;
    char *end;
    long long x = strtoll(base == 10 ? s : d, &end, base);
    if (errno == ERANGE || *end)
        return -1;
    *v = x;
    return 1;
}

static bool resolve_float(const char *s, double *v)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t digits = strspn(p, "0123456789");
    p += digits;
    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        digits += frac;
        p += 1 + frac;
    }
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        size_t ex = strspn(p, "0123456789");
        if (!ex)
            return false;
        p += ex;
    }
    if (*p)
        return false;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return !*end && errno != ERANGE;
}

/* The jansson value of a scalar event, or NULL after reporting. */
static json_t *scalar_value(struct reader *r, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (memchr(s, 0, len)) {
        fail(r, &ev->start_mark, "NUL characters are not allowed in values");
        return NULL;
    }
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && strcmp(tag, "!") == 0)
        tag = NULL, plain = false;
    if (tag && !is_tag(tag, "str") && !is_tag(tag, "int") && !is_tag(tag, "float") &&
        !is_tag(tag, "bool") && !is_tag(tag, "null")) {
        fail(r, &ev->start_mark,
             "unsupported tag '%s' (only !!str, !!int, !!float, !!bool, !!null)", tag);
        return NULL;
    }
    if (is_tag(tag, "str") || (!tag && !plain)) {
        json_t *j = json_stringn(s, len);
        if (!j)
            fail(r, &ev->start_mark, "the value is not valid UTF-8");
        return j;
    }
    bool any = !tag;
    if ((any || is_tag(tag, "null")) && (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") ||
                                         !strcmp(s, "Null") || !strcmp(s, "NULL")))
        return json_null();
    if (any || is_tag(tag, "bool")) {
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            return json_true();
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            return json_false();
    }
    if (any || is_tag(tag, "int")) {
        int64_t v;
        int k = resolve_int(s, &v);
        if (k > 0)
            return json_integer(v);
        if (k < 0) {
            fail(r, &ev->start_mark, "integer %s is out of range (at most %" PRId64 ")", s,
                 INT64_MAX);
            return NULL;
        }
    }
    if (any || is_tag(tag, "float")) {
        double d;
        if (resolve_float(s, &d))
            return json_real(d);
    }
    if (any) {
        json_t *j = json_stringn(s, len);
        if (!j)
            fail(r, &ev->start_mark, "the value is not valid UTF-8");
        return j;
    }
    fail(r, &ev->start_mark, "'%s' is not a valid %s", s, tag + strlen(TAG_PREFIX));
    return NULL;
}

static unsigned count_nodes(const json_t *j)
{
    unsigned n = 1;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) n += count_nodes(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) n += count_nodes(v);
    }
    return n;
}

/* Places a node (stolen) into the current container and records its position.
 * With keep_path the node's path component stays appended (for a mapping or
 * sequence whose children follow) and *old_len says where to cut it off. */
static bool attach(struct reader *r, json_t *node, const yaml_mark_t *m, bool keep_path,
                   size_t *old_len)
{
    unsigned line = (unsigned)m->line + 1, col = (unsigned)m->column + 1;
    size_t old = r->path.len;
    if (old_len)
        *old_len = old;
    if (++r->nodes > MANIFEST_MAX_NODES) {
        json_decref(node);
        fail(r, m, "the document has more than %u nodes", MANIFEST_MAX_NODES);
        return false;
    }
    if (r->depth == 0) {
        r->doc.root = node;
        r->doc.line = line; /* where the content starts, not the `---` */
        mf_posmap_add(&r->doc.pos, "", line, col, line, col);
        return true;
    }
    struct frame *f = &r->stack[r->depth - 1];
    if (json_is_array(f->node)) {
        mf_path_index(&r->path, f->index++);
        mf_posmap_add(&r->doc.pos, mf_path_str(&r->path), line, col, line, col);
        json_array_append_new(f->node, node);
    } else {
        mf_path_key(&r->path, f->key);
        mf_posmap_add(&r->doc.pos, mf_path_str(&r->path), f->key_line, f->key_col, line, col);
        json_object_set_new(f->node, f->key, node);
        free(f->key);
        f->key = NULL;
    }
    if (!keep_path)
        mf_path_pop(&r->path, old);
    return true;
}

/* A scalar (or alias) in key position of the current mapping. */
static bool take_key(struct reader *r, const yaml_event_t *ev)
{
    struct frame *f = &r->stack[r->depth - 1];
    if (ev->type != YAML_SCALAR_EVENT) {
        fail(r, &ev->start_mark, "mapping keys must be plain strings, not %s",
             ev->type == YAML_ALIAS_EVENT ? "aliases" : "mappings or sequences");
        return false;
    }
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(s, 0, len) || !json_is_object(f->node)) {
        fail(r, &ev->start_mark, "NUL characters are not allowed in keys");
        return false;
    }
    if (json_object_get(f->node, s)) {
        unsigned l = 0, c = 0;
        size_t old = mf_path_key(&r->path, s);
        mf_posmap_find(&r->doc.pos, mf_path_str(&r->path), true, &l, &c);
        mf_path_pop(&r->path, old);
        char where[48] = "";
        if (l)
            snprintf(where, sizeof(where), " (first at line %u column %u)", l, c);
        mf_path_key(&r->path, s);
        fail(r, &ev->start_mark, "duplicate key '%s'%s", s, where);
        return false;
    }
    json_t *probe = json_stringn(s, len); /* keys must be UTF-8 like values */
    if (!probe) {
        fail(r, &ev->start_mark, "the key is not valid UTF-8");
        return false;
    }
    json_decref(probe);
    f->key = xstrdup(s);
    f->key_line = (unsigned)ev->start_mark.line + 1;
    f->key_col = (unsigned)ev->start_mark.column + 1;
    return true;
}

static bool key_expected(const struct reader *r)
{
    return r->depth > 0 && json_is_object(r->stack[r->depth - 1].node) &&
           !r->stack[r->depth - 1].key;
}

static void register_anchor(struct reader *r, const char *name, json_t *node)
{
    r->anchors = sc_grow(r->anchors, &r->anchors_cap, r->nanchors + 1, sizeof(*r->anchors));
    r->anchors[r->nanchors].name = xstrdup(name);
    r->anchors[r->nanchors].node = json_incref(node);
    r->nanchors++;
}

static bool on_start(struct reader *r, const yaml_event_t *ev, bool mapping)
{
    const char *tag = mapping ? (const char *)ev->data.mapping_start.tag
                              : (const char *)ev->data.sequence_start.tag;
    const char *anchor = mapping ? (const char *)ev->data.mapping_start.anchor
                                 : (const char *)ev->data.sequence_start.anchor;
    if (tag && strcmp(tag, "!") != 0 && !is_tag(tag, mapping ? "map" : "seq")) {
        fail(r, &ev->start_mark, "unsupported tag '%s' on a %s", tag,
             mapping ? "mapping" : "sequence");
        return false;
    }
    if (r->depth >= MANIFEST_MAX_DEPTH) {
        fail(r, &ev->start_mark, "nesting is deeper than %d levels", MANIFEST_MAX_DEPTH);
        return false;
    }
    json_t *node = mapping ? json_object() : json_array();
    size_t path_len;
    if (!attach(r, node, &ev->start_mark, true, &path_len))
        return false;
    struct frame *f = &r->stack[r->depth++];
    memset(f, 0, sizeof(*f));
    f->node = node;
    f->path_len = path_len;
    f->anchor = anchor ? xstrdup(anchor) : NULL;
    return true;
}

static bool on_end(struct reader *r)
{
    struct frame *f = &r->stack[--r->depth];
    if (f->anchor)
        register_anchor(r, f->anchor, f->node);
    free(f->anchor);
    free(f->key);
    mf_path_pop(&r->path, f->path_len);
    return true;
}

static bool on_alias(struct reader *r, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    for (size_t i = r->nanchors; i-- > 0;) {
        if (strcmp(r->anchors[i].name, name) != 0)
            continue;
        unsigned extra = count_nodes(r->anchors[i].node);
        if (r->nodes + extra > MANIFEST_MAX_NODES) {
            fail(r, &ev->start_mark, "alias *%s makes the document larger than %u nodes", name,
                 MANIFEST_MAX_NODES);
            return false;
        }
        r->nodes += extra - 1; /* attach() counts one */
        return attach(r, json_deep_copy(r->anchors[i].node), &ev->start_mark, false, NULL);
    }
    fail(r, &ev->start_mark, "alias *%s refers to no complete anchor before it", name);
    return false;
}

static bool on_event(struct reader *r, const yaml_event_t *ev, mf_doc_fn fn, void *ud,
                     unsigned *ndocs)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        doc_clear(r);
        r->in_doc = true;
        r->doc.index = *ndocs;
        r->doc.line = (unsigned)ev->start_mark.line + 1;
        return true;
    case YAML_DOCUMENT_END_EVENT: {
        struct mf_rawdoc d = r->doc;
        memset(&r->doc, 0, sizeof(r->doc));
        (*ndocs)++;
        anchors_clear(r);
        r->in_doc = false;
        fn(ud, &d);
        json_decref(d.root);
        mf_posmap_done(&d.pos);
        return true;
    }
    case YAML_SCALAR_EVENT: {
        if (key_expected(r))
            return take_key(r, ev);
        json_t *v = scalar_value(r, ev);
        if (!v)
            return false;
        if (ev->data.scalar.anchor)
            register_anchor(r, (const char *)ev->data.scalar.anchor, v);
        return attach(r, v, &ev->start_mark, false, NULL);
    }
    case YAML_ALIAS_EVENT:
        if (key_expected(r))
            return take_key(r, ev);
        return on_alias(r, ev);
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        if (key_expected(r))
            return take_key(r, ev);
        return on_start(r, ev, ev->type == YAML_MAPPING_START_EVENT);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        return on_end(r);
    default:
        return true;
    }
}

/* libyaml's reader errors carry a byte offset, not a mark. */
static yaml_mark_t mark_of_offset(const char *text, size_t len, size_t off)
{
    yaml_mark_t m = {0};
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n')
            m.line++, m.column = 0;
        else if (((unsigned char)text[i] & 0xC0) != 0x80)
            m.column++;
    }
    return m;
}

static void syntax_error(struct reader *r, const yaml_parser_t *p, const char *text, size_t len)
{
    mf_path_pop(&r->path, 0); /* a syntax error is about text, not a field */
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t m = mark_of_offset(text, len, p->problem_offset);
        fail(r, &m, "cannot read the file: %s", p->problem ? p->problem : "unknown problem");
        return;
    }
    if (p->error == YAML_MEMORY_ERROR)
        sc_oom();
    char ctx[160] = "";
    if (p->context)
        snprintf(ctx, sizeof(ctx), " (%s at line %zu column %zu)", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    const char *hint = "";
    if (p->problem_mark.index < len && text[p->problem_mark.index] == '\t')
        hint = "; YAML does not allow tabs for indentation, use spaces";
    fail(r, &p->problem_mark, "YAML syntax error: %s%s%s", p->problem ? p->problem : "unknown", ctx,
         hint);
}

int mf_yaml_read(const char *file, const char *text, size_t len, mf_doc_fn fn, void *ud,
                 struct manifest_errors *errs)
{
    struct reader r = {.file = file, .errs = errs};
    mf_path_pop(&r.path, 0);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        sc_oom();
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    unsigned ndocs = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&r, &p, text, len);
            break;
        }
        bool done = ev.type == YAML_STREAM_END_EVENT;
        bool ok = on_event(&r, &ev, fn, ud, &ndocs);
        yaml_event_delete(&ev);
        if (done || !ok)
            break;
        if (ndocs >= MANIFEST_MAX_DOCS && !r.in_doc) {
            yaml_mark_t m = p.mark;
            fail(&r, &m, "more than %u documents", MANIFEST_MAX_DOCS);
            break;
        }
    }
    yaml_parser_delete(&p);
    doc_clear(&r);
    free(r.anchors);
    sc_buf_free(&r.path);
    return r.failed ? -SC_E_INVALID : (int)ndocs;
}
