/*
 * validate.c: the one validator: walks a jansson tree against a schema table
 * (schema.c) and builds the canonical object while collecting every error.
 *
 * The walk never stops at the first problem: a bad field is reported and the walk
 * goes on with its siblings, so a user fixes a file in one round.  Only when a
 * whole object was valid do its cross-field checks run (they read the canonical
 * form, where quantities are already integers and defaults are filled in).
 *
 * Positions: the context carries the field path; with a position table (YAML) an
 * error is placed at its path's key or value, or at the nearest ancestor that was
 * written in the file (defaults and shorthands have no position of their own).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "manifest/mf_int.h"

static void vreport(struct mf_ctx *c, bool at_key, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vreport(struct mf_ctx *c, bool at_key, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    unsigned line = 0, col = 0;
    const char *path = mf_path_str(&c->path);
    if (c->pos)
        mf_posmap_find(c->pos, path, at_key, &line, &col);
    mf_error_add(c->errs, c->file, line, col, path, "%s", msg);
    c->nerr++;
}

void mf_report(struct mf_ctx *c, bool at_key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, at_key, fmt, ap);
    va_end(ap);
}

void mf_report_at(struct mf_ctx *c, const char *child, bool at_key, const char *fmt, ...)
{
    size_t old = mf_path_key(&c->path, child);
    va_list ap;
    va_start(ap, fmt);
    vreport(c, at_key, fmt, ap);
    va_end(ap);
    mf_path_pop(&c->path, old);
}

/* ---- what was expected ------------------------------------------------------------ */

static void enum_list(const char *const *e, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; e[i] && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "", e[i]);
}

static void expected(const struct mf_field *f, char *buf, size_t size)
{
    if (f->expect) {
        snprintf(buf, size, "%s", f->expect);
        return;
    }
    if (f->enums) {
        char list[256];
        enum_list(f->enums, list, sizeof(list));
        snprintf(buf, size, "one of %s", list);
        return;
    }
    if (f->unit) {
        snprintf(buf, size, "%s", f->unit->expect);
        if (f->type == MF_MAP)
            snprintf(buf, size, "a mapping");
        return;
    }
    switch (f->type) {
    case MF_STR:
        snprintf(buf, size, "a string");
        break;
    case MF_INT:
        if (f->max == INT64_MAX)
            snprintf(buf, size, "an integer of at least %" PRId64, f->min);
        else
            snprintf(buf, size, "an integer between %" PRId64 " and %" PRId64, f->min, f->max);
        break;
    case MF_BOOL:
        snprintf(buf, size, "true or false");
        break;
    case MF_OBJ:
    case MF_MAP:
        snprintf(buf, size, "a mapping");
        break;
    case MF_LIST:
        snprintf(buf, size, "a list");
        break;
    case MF_PORTREF:
        snprintf(buf, size, "a port number 1..65535 or the name of a declared port");
        break;
    case MF_QTY:
    case MF_ANY:
        snprintf(buf, size, "a value");
        break;
    }
}

static json_t *type_error(struct mf_ctx *c, const struct mf_field *f, const json_t *v,
                          const char *why)
{
    char exp[512], got[96];
    expected(f, exp, sizeof(exp));
    mf_describe(v, got, sizeof(got));
    mf_report(c, false, "expected %s, got %s%s%s", exp, got, why && *why ? ": " : "",
              why ? why : "");
    return NULL;
}

/* ---- unknown fields --------------------------------------------------------------- */

static size_t field_names(const struct mf_field *f, const char **out, size_t max)
{
    size_t n = 0;
    for (int part = 0; part < 2; part++) {
        const struct mf_field *ch = part ? f->more : f->children;
        for (; ch && ch->name && n < max; ch++)
            out[n++] = ch->name;
    }
    return n;
}

/* Where else in the schema a field called key lives, as "ports[]" or
 * "health.readiness" ("" = the top level). */
static bool find_home(const struct mf_field *f, const char *key, struct sc_buf *where, int depth)
{
    if (depth > 8)
        return false;
    for (int part = 0; part < 2; part++)
        for (const struct mf_field *ch = part ? f->more : f->children; ch && ch->name; ch++)
            if (strcmp(ch->name, key) == 0)
                return true;
    for (int part = 0; part < 2; part++) {
        for (const struct mf_field *ch = part ? f->more : f->children; ch && ch->name; ch++) {
            size_t old = where->len;
            const struct mf_field *obj = NULL;
            if (ch->type == MF_OBJ) {
                mf_path_key(where, ch->name);
                obj = ch;
            } else if (ch->type == MF_LIST && ch->children->type == MF_OBJ) {
                mf_path_key(where, ch->name);
                sc_buf_put(where, "[]", 2);
                mf_path_pop(where, where->len);
                obj = ch->children;
            }
            if (obj && find_home(obj, key, where, depth + 1))
                return true;
            mf_path_pop(where, old);
        }
    }
    return false;
}

static void unknown_field(struct mf_ctx *c, const struct mf_field *f, const char *key)
{
    const char *names[64];
    size_t n = field_names(f, names, ELEMENTSOF(names));
    const char *near = mf_closest(key, names, n);
    size_t old = mf_path_key(&c->path, key);
    struct sc_buf where = {0};
    mf_path_pop(&where, 0);
    if (near) {
        mf_report(c, true, "unknown field '%s', did you mean '%s'?", key, near);
    } else if (c->root && find_home(c->root, key, &where, 0)) {
        mf_report(c, true, "unknown field '%s' here; '%s' belongs %s%s (check the indentation)",
                  key, key, where.len ? "under " : "at the top level", mf_path_str(&where));
    } else {
        char list[512];
        size_t off = 0;
        list[0] = 0;
        for (size_t i = 0; i < n && off < sizeof(list); i++)
            off +=
                (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", names[i]);
        mf_report(c, true, "unknown field '%s' (known fields: %s)", key, list);
    }
    sc_buf_free(&where);
    mf_path_pop(&c->path, old);
}

/* ---- scalars ---------------------------------------------------------------------- */

static json_t *check_str(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    char text[32];
    const char *s = json_string_value(v);
    if (!s && (f->flags & MF_COERCE)) {
        if (json_is_integer(v)) {
            snprintf(text, sizeof(text), "%" PRId64, (int64_t)json_integer_value(v));
            s = text;
        } else if (json_is_boolean(v)) {
            s = json_is_true(v) ? "true" : "false";
        }
    }
    if (!s && (f->flags & MF_COERCE) && json_is_real(v))
        return type_error(c, f, v, "put the number in quotes");
    if (!s)
        return type_error(c, f, v, NULL);
    if (f->enums) {
        for (size_t i = 0; f->enums[i]; i++)
            if (strcmp(f->enums[i], s) == 0)
                return json_string(s);
        size_t n = 0;
        while (f->enums[n])
            n++;
        const char *near = mf_closest(s, f->enums, n);
        char hint[96] = "";
        if (near)
            snprintf(hint, sizeof(hint), "did you mean '%s'?", near);
        return type_error(c, f, v, hint);
    }
    if (f->unit) {
        char why[256] = "";
        json_t *sv = json_string(s);
        json_t *out = f->unit->parse(sv, why, sizeof(why));
        json_decref(sv);
        return out ? out : type_error(c, f, v, why);
    }
    return json_string(s);
}

static json_t *check_qty(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    char why[256] = "";
    json_t *out = f->unit->parse(v, why, sizeof(why));
    if (!out)
        return type_error(c, f, v, why);
    int64_t x = json_integer_value(out);
    if (x < f->min || x > f->max) {
        json_decref(out);
        char lim[96];
        snprintf(lim, sizeof(lim), "%s is %s than the %s of %" PRId64, f->canon,
                 x < f->min ? "less" : "more", x < f->min ? "minimum" : "maximum",
                 x < f->min ? f->min : f->max);
        (void)snprintf(why, sizeof(why), "%" PRId64 " %s", x, lim);
        return type_error(c, f, v, lim);
    }
    return out;
}

/* The canonical key of a quantity given directly (a fixed point: cpuMillis: 100). */
static json_t *check_canon(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
        char got[96];
        mf_describe(v, got, sizeof(got));
        mf_report(c, false, "expected an integer between %" PRId64 " and %" PRId64 ", got %s",
                  f->min, f->max, got);
        return NULL;
    }
    return json_integer(json_integer_value(v));
}

/* ---- containers ------------------------------------------------------------------- */

static const struct mf_field *find_field(const struct mf_field *f, const char *key, bool *canon)
{
    for (int part = 0; part < 2; part++) {
        for (const struct mf_field *ch = part ? f->more : f->children; ch && ch->name; ch++) {
            if (strcmp(ch->name, key) == 0) {
                *canon = false;
                return ch;
            }
            if (ch->canon && strcmp(ch->canon, key) == 0) {
                *canon = true;
                return ch;
            }
        }
    }
    return NULL;
}

static json_t *check_field(struct mf_ctx *c, const struct mf_field *ch, const json_t *in, bool *bad)
{
    json_t *val = json_object_get(in, ch->name);
    json_t *cval = ch->canon ? json_object_get(in, ch->canon) : NULL;
    /* `env:` with nothing after it (or only comments) means "not given" */
    if (json_is_null(val) && !(ch->flags & MF_REQUIRED))
        val = NULL;
    if (json_is_null(cval) && !(ch->flags & MF_REQUIRED))
        cval = NULL;
    if (val && cval) {
        mf_report_at(c, ch->canon, true, "give either '%s' or '%s', not both", ch->name, ch->canon);
        *bad = true;
        return NULL;
    }
    json_t *r = NULL;
    if (val || cval) {
        size_t old = mf_path_key(&c->path, val ? ch->name : ch->canon);
        r = val ? mf_validate(c, ch, val) : check_canon(c, ch, cval);
        mf_path_pop(&c->path, old);
        if (!r)
            *bad = true;
    } else if (ch->flags & MF_REQUIRED) {
        char exp[512];
        expected(ch, exp, sizeof(exp));
        mf_report(c, false, "missing required field '%s' (%s)", ch->name, exp);
        *bad = true;
    } else if (ch->def) {
        r = json_loads(ch->def, JSON_DECODE_ANY, NULL);
    } else if (ch->flags & MF_FILL) {
        json_t *empty = json_object();
        size_t old = mf_path_key(&c->path, ch->name);
        r = mf_validate(c, ch, empty);
        mf_path_pop(&c->path, old);
        json_decref(empty);
        if (!r)
            *bad = true;
    }
    return r;
}

static json_t *check_obj(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    json_t *tmp = NULL;
    if (json_is_string(v) && f->shorthand) {
        tmp = json_object();
        json_object_set(tmp, f->shorthand, (json_t *)v);
        v = tmp;
    }
    if (!json_is_object(v)) {
        const char *names[64];
        size_t n = field_names(f, names, ELEMENTSOF(names));
        char exp[512];
        size_t off = (size_t)snprintf(exp, sizeof(exp), "a mapping with fields ");
        for (size_t i = 0; i < n && off < sizeof(exp); i++)
            off += (size_t)snprintf(exp + off, sizeof(exp) - off, "%s%s", i ? ", " : "", names[i]);
        char got[96];
        mf_describe(v, got, sizeof(got));
        if (f->shorthand)
            mf_report(c, false, "expected a %s or %s, got %s", f->shorthand, exp, got);
        else
            mf_report(c, false, "expected %s, got %s", exp, got);
        return NULL;
    }
    bool bad = false;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        bool canon;
        if (!find_field(f, key, &canon)) {
            unknown_field(c, f, key);
            bad = true;
        }
    }
    json_t *out = json_object();
    for (int part = 0; part < 2; part++) {
        for (const struct mf_field *ch = part ? f->more : f->children; ch && ch->name; ch++) {
            json_t *r = check_field(c, ch, v, &bad);
            if (r && !(ch->flags & MF_DROP))
                json_object_set_new(out, ch->canon ? ch->canon : ch->name, r);
            else
                json_decref(r);
        }
    }
    json_decref(tmp);
    if (!bad && f->check) {
        size_t before = c->nerr;
        f->check(c, out);
        bad = c->nerr != before;
    }
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Items of a list of objects must differ in each of f->unique's keys. */
static bool check_unique(struct mf_ctx *c, const struct mf_field *f, json_t *out)
{
    bool ok = true;
    for (size_t u = 0; f->unique && f->unique[u]; u++) {
        const char *key = f->unique[u];
        for (size_t i = 0; i < json_array_size(out); i++) {
            json_t *a = json_object_get(json_array_get(out, i), key); /* NULL for a bad item */
            if (!a)
                continue;
            for (size_t j = 0; j < i; j++) {
                if (!json_equal(a, json_object_get(json_array_get(out, j), key)))
                    continue;
                char got[96];
                mf_describe(a, got, sizeof(got));
                size_t old = mf_path_index(&c->path, i);
                mf_report_at(c, key, false, "duplicate %s %s (also in item %zu)", key, got, j);
                mf_path_pop(&c->path, old);
                ok = false;
                break;
            }
        }
    }
    return ok;
}

static json_t *check_list(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    if (!json_is_array(v)) {
        char item[480], got[96];
        const struct mf_field *it = f->children;
        if (it->type == MF_OBJ) {
            const char *names[64];
            size_t n = field_names(it, names, ELEMENTSOF(names)), off = 0;
            off +=
                (size_t)snprintf(item, sizeof(item), "%s%smappings with fields ",
                                 it->shorthand ? it->shorthand : "", it->shorthand ? "s or " : "");
            for (size_t i = 0; i < n && off < sizeof(item); i++)
                off += (size_t)snprintf(item + off, sizeof(item) - off, "%s%s", i ? ", " : "",
                                        names[i]);
        } else {
            expected(it, item, sizeof(item));
        }
        mf_describe(v, got, sizeof(got));
        mf_report(c, false, "expected a list of %s, got %s", item, got);
        return NULL;
    }
    size_t n = json_array_size(v);
    if ((f->flags & MF_NONEMPTY) && n == 0) {
        mf_report(c, false, "expected at least one item, got an empty list");
        return NULL;
    }
    if (f->max && n > (size_t)f->max) {
        mf_report(c, false, "expected at most %" PRId64 " items, got %zu", f->max, n);
        return NULL;
    }
    bool bad = false;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t old = mf_path_index(&c->path, i);
        json_t *r = mf_validate(c, f->children, json_array_get(v, i));
        mf_path_pop(&c->path, old);
        if (!r)
            bad = true;
        /* a bad item keeps its place (as null) so the others are still compared */
        json_array_append_new(out, r ? r : json_null());
    }
    if (!check_unique(c, f, out) || bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static json_t *check_map(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    if (!json_is_object(v)) {
        char got[96];
        mf_describe(v, got, sizeof(got));
        mf_report(c, false, "expected a mapping of %s to values, got %s",
                  f->unit ? f->unit->expect : "names", got);
        return NULL;
    }
    if (f->max && json_object_size(v) > (size_t)f->max) {
        mf_report(c, false, "expected at most %" PRId64 " entries, got %zu", f->max,
                  json_object_size(v));
        return NULL;
    }
    bool bad = false;
    json_t *out = json_object();
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = mf_path_key(&c->path, key);
        if (f->unit) {
            char why[256] = "";
            json_t *k = json_string(key);
            json_t *ok = f->unit->parse(k, why, sizeof(why));
            if (!ok) {
                mf_report(c, true, "expected the key to be %s, got '%s'%s%s", f->unit->expect, key,
                          *why ? ": " : "", why);
                bad = true;
            }
            json_decref(ok);
            json_decref(k);
        }
        json_t *r = mf_validate(c, f->children, val);
        mf_path_pop(&c->path, old);
        if (r)
            json_object_set_new(out, key, r);
        else
            bad = true;
    }
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static json_t *check_portref(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t p = json_integer_value(v);
        if (p >= 1 && p <= 65535)
            return json_integer(p);
        return type_error(c, f, v, NULL);
    }
    if (json_is_string(v)) {
        char why[256] = "";
        json_t *out = mf_unit_port_name.parse(v, why, sizeof(why));
        return out ? out : type_error(c, f, v, why);
    }
    return type_error(c, f, v, NULL);
}

/* "4" for an integer or "true" for a boolean: the quotes made it a string. */
static const char *quoted_hint(const json_t *v, const char *digits)
{
    const char *s = json_string_value(v);
    if (!s || !*s)
        return NULL;
    bool looks =
        digits ? strspn(s, digits) == strlen(s) : strcmp(s, "true") == 0 || strcmp(s, "false") == 0;
    if (looks)
        return "remove the quotes (a quoted value is a string)";
    if (!digits && (strcasecmp(s, "yes") == 0 || strcasecmp(s, "no") == 0 ||
                    strcasecmp(s, "on") == 0 || strcasecmp(s, "off") == 0))
        return "YAML 1.2 reads yes/no/on/off as strings; write true or false";
    return NULL;
}

json_t *mf_validate(struct mf_ctx *c, const struct mf_field *f, const json_t *v)
{
    switch (f->type) {
    case MF_STR:
        return check_str(c, f, v);
    case MF_INT:
        if (!json_is_integer(v) || json_integer_value(v) < f->min || json_integer_value(v) > f->max)
            return type_error(c, f, v, quoted_hint(v, "0123456789"));
        return json_integer(json_integer_value(v));
    case MF_BOOL:
        if (!json_is_boolean(v))
            return type_error(c, f, v, quoted_hint(v, NULL));
        return json_boolean(json_is_true(v));
    case MF_QTY:
        return check_qty(c, f, v);
    case MF_OBJ:
        return check_obj(c, f, v);
    case MF_LIST:
        return check_list(c, f, v);
    case MF_MAP:
        return check_map(c, f, v);
    case MF_PORTREF:
        return check_portref(c, f, v);
    case MF_ANY:
        return json_deep_copy(v);
    }
    return NULL;
}

/* ---- documents -------------------------------------------------------------------- */

/* The compose form's flat result, rearranged into kind/metadata/spec. */
static json_t *from_compose(const char *kind, json_t *flat)
{
    json_t *obj = json_object(), *meta = json_object(), *spec = json_object();
    json_object_set_new(obj, "kind", json_string(kind));
    json_object_set_new(obj, "apiVersion", json_string("v1"));
    const char *key;
    json_t *val;
    json_object_foreach(flat, key, val)
    {
        if (strcmp(key, "app") == 0)
            json_object_set(meta, "name", val);
        else if (strcmp(key, "labels") == 0)
            json_object_set(meta, "labels", val);
        else if (strcmp(key, "kind") != 0)
            json_object_set(spec, key, val);
    }
    json_object_set_new(obj, "metadata", meta);
    json_object_set_new(obj, "spec", spec);
    return obj;
}

json_t *mf_validate_doc(struct mf_ctx *c, const char *kind, const json_t *doc)
{
    if (!json_is_object(doc)) {
        char got[96];
        mf_describe(doc, got, sizeof(got));
        mf_report(c, false,
                  "expected a mapping at the top of the document (app: ... or kind: ...), "
                  "got %s",
                  got);
        return NULL;
    }
    json_t *jk = json_object_get(doc, "kind");
    const char *doc_kind = json_string_value(jk);
    if (jk && !doc_kind) {
        mf_report_at(c, "kind", false, "expected a kind name such as Deployment");
        return NULL;
    }
    if (kind && doc_kind && strcmp(kind, doc_kind) != 0) {
        mf_report_at(c, "kind", false, "expected kind '%s' here, got '%s'", kind, doc_kind);
        return NULL;
    }
    const char *want = doc_kind ? doc_kind : kind ? kind : "Deployment";
    const struct mf_kind *k = mf_kind_find(want);
    if (!k) {
        const char *names[17];
        size_t n = 0;
        for (const struct mf_kind *x = mf_kinds; x->name && n < ELEMENTSOF(names) - 1; x++)
            names[n++] = x->name;
        names[n] = NULL;
        const char *near = mf_closest(want, names, n);
        char list[256];
        enum_list(names, list, sizeof(list));
        mf_report_at(c, "kind", false, "unknown kind '%s'%s%s%s (known kinds: %s)", want,
                     near ? ", did you mean '" : "", near ? near : "", near ? "'?" : "", list);
        return NULL;
    }
    bool object_form =
        json_object_get(doc, "metadata") || json_object_get(doc, "spec") || !k->compose;
    if (object_form && !doc_kind && !kind) {
        mf_report(c, false, "missing required field 'kind' (e.g. kind: Deployment)");
        return NULL;
    }
    if (object_form) {
        c->root = k->object;
        json_t *in = (json_t *)doc, *tmp = NULL;
        if (!doc_kind) {
            /* the API path names the kind; the body need not repeat it */
            tmp = json_copy((json_t *)doc);
            json_object_set_new(tmp, "kind", json_string(want));
            in = tmp;
        }
        json_t *out = mf_validate(c, k->object, in);
        json_decref(tmp);
        return out;
    }
    c->root = k->compose;
    json_t *flat = mf_validate(c, k->compose, doc);
    if (!flat)
        return NULL;
    json_t *out = from_compose(k->name, flat);
    json_decref(flat);
    return out;
}
