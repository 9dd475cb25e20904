/*
 * objects.c: kinds, keys, server-owned metadata and label selectors (objects.h).
 */
#include "objects/objects.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "manifest/manifest.h"

const struct obj_kind obj_kinds[] = {
    {"deployments", "Deployment", true, true},  {"revisions", "Revision", true, false},
    {"assignments", "Assignment", true, false}, {"nodes", "Node", true, true},
    {"instances", "Instance", true, true},      {"endpoints", "Endpoints", true, true},
    {"tokens", "BootstrapToken", true, true},
    {NULL, NULL, false, false},
};

const struct obj_kind *obj_kind_by_plural(const char *plural, size_t len)
{
    for (const struct obj_kind *k = obj_kinds; k->plural; k++)
        if (strlen(k->plural) == len && !memcmp(k->plural, plural, len))
            return k;
    return NULL;
}

const struct obj_kind *obj_kind_by_name(const char *kind)
{
    for (const struct obj_kind *k = obj_kinds; kind && k->plural; k++)
        if (!strcmp(k->kind, kind))
            return k;
    return NULL;
}

int obj_name_check(const char *name, size_t len, struct sc_error *e)
{
    if (len == 0 || len > 63)
        return sc_error_set(e, -SC_E_INVALID, "metadata.name",
                            "a name has 1 to 63 characters, this one %zu", len);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < len))
            return sc_error_set(e, -SC_E_INVALID, "metadata.name",
                                "'%.*s': a name is lower-case letters, digits and '-' "
                                "(not first or last); character %zu is '%c'",
                                (int)len, name, i + 1, c);
    }
    return 0;
}

void obj_prefix(struct sc_buf *out, const struct obj_kind *k)
{
    sc_buf_printf(out, OBJ_PREFIX "%s/", k->plural);
}

void obj_key(struct sc_buf *out, const struct obj_kind *k, const char *name)
{
    sc_buf_printf(out, OBJ_PREFIX "%s/%s", k->plural, name);
}

int obj_decode(const struct obj_kind *k, const char *name, const char *body, size_t len,
               json_t **ret, struct sc_error *e)
{
    struct manifest_errors errs = {0};
    json_t *o = NULL;
    int r = manifest_parse_json(k->kind, body, len, &o, &errs);
    if (r < 0) {
        if (errs.n > 0) {
            char msg[sizeof(e->msg)];
            manifest_error_format(&errs.v[0], msg, sizeof(msg));
            sc_error_set(e, -SC_E_INVALID, errs.v[0].path, "%s%s", msg,
                         errs.n + errs.dropped > 1 ? " (and more)" : "");
        } else {
            sc_error_set(e, r, NULL, "the body is not a valid %s", k->kind);
        }
        manifest_errors_done(&errs);
        return r < 0 ? r : -SC_E_INVALID;
    }
    manifest_errors_done(&errs);
    const char *have = json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
    if (name && have && strcmp(name, have) != 0) {
        sc_error_set(e, -SC_E_INVALID, "metadata.name",
                     "metadata.name is '%s' but the path names '%s'", have, name);
        json_decref(o);
        return -SC_E_INVALID;
    }
    if (!have) {
        json_decref(o);
        return sc_error_set(e, -SC_E_INVALID, "metadata.name", "metadata.name is required");
    }
    if ((r = obj_name_check(have, strlen(have), e)) < 0) {
        json_decref(o);
        return r;
    }
    *ret = o;
    return 0;
}

static void format_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void obj_stamp_new(json_t *o, int64_t now_ms)
{
    json_t *md = json_object_get(o, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(o, "metadata", md);
    }
    json_object_del(md, "revision");
    char ts[32];
    format_time(now_ms, ts);
    json_object_set_new(md, "created", json_string(ts));
    json_object_set_new(md, "generation", json_integer(1));
}

json_t *obj_merge(const json_t *stored, json_t *incoming, bool status_only, int64_t now_ms)
{
    if (status_only && stored) { /* the stored object, with the new status */
        json_t *o = json_deep_copy(stored);
        json_object_del(json_object_get(o, "metadata"), "revision");
        json_t *status = json_object_get(incoming, "status");
        if (status)
            json_object_set(o, "status", status);
        else
            json_object_del(o, "status");
        return o;
    }
    json_t *o = json_deep_copy(incoming);
    if (!stored) {
        obj_stamp_new(o, now_ms);
        if (status_only)
            json_object_del(o, "spec");
        return o;
    }
    json_t *md = json_object_get(o, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(o, "metadata", md);
    }
    json_object_del(md, "revision"); /* never stored: it is the key's mod revision */
    const json_t *smd = json_object_get(stored, "metadata");
    json_t *created = json_object_get(smd, "created");
    if (created)
        json_object_set(md, "created", created);
    int64_t gen = json_integer_value(json_object_get(smd, "generation"));
    json_t *status = json_object_get(stored, "status");
    if (status)
        json_object_set(o, "status", status);
    else
        json_object_del(o, "status");
    if (!json_equal(json_object_get(stored, "spec"), json_object_get(o, "spec")))
        gen++;
    json_object_set_new(md, "generation", json_integer(gen > 0 ? gen : 1));
    return o;
}

json_t *obj_present(const uint8_t *value, size_t len, int64_t mod_rev)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)value, len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    json_t *md = json_object_get(o, "metadata");
    if (json_is_object(md))
        json_object_set_new(md, "revision", json_integer(mod_rev));
    return o;
}

void obj_revision_name(const json_t *d, char *out, size_t size)
{
    json_t *t = json_deep_copy(json_object_get(d, "spec"));
    if (!t)
        t = json_object();
    json_object_del(t, "replicas");
    char *text = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = text; c && *c; c++)
        h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    free(text);
    json_decref(t);
    const char *name = json_string_value(json_object_get(json_object_get(d, "metadata"), "name"));
    snprintf(out, size, "%s-%010llx", name ? name : "", (unsigned long long)(h & 0xffffffffffull));
}

int64_t obj_revision(const json_t *o)
{
    return json_integer_value(json_object_get(json_object_get(o, "metadata"), "revision"));
}

/* ---- selectors ----------------------------------------------------------------- */

struct lex {
    const char *s, *p;
};

static void skip_ws(struct lex *l)
{
    while (*l->p == ' ' || *l->p == '\t')
        l->p++;
}

static bool label_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '/';
}

/* A key or value word; NULL (and an error) if none is here. */
static char *word(struct lex *l, const char *what, struct sc_error *e)
{
    skip_ws(l);
    const char *st = l->p;
    while (label_char(*l->p))
        l->p++;
    if (l->p == st) {
        sc_error_set(e, -SC_E_INVALID, "selector", "column %zu: expected %s, found %s",
                     (size_t)(st - l->s) + 1, what, *st ? "another character" : "the end");
        return NULL;
    }
    char *w = xmalloc((size_t)(l->p - st) + 1);
    memcpy(w, st, (size_t)(l->p - st));
    w[l->p - st] = '\0';
    return w;
}

static bool keyword(struct lex *l, const char *kw)
{
    skip_ws(l);
    size_t n = strlen(kw);
    if (strncmp(l->p, kw, n) == 0 && !label_char(l->p[n])) {
        l->p += n;
        return true;
    }
    return false;
}

static int term_parse(struct lex *l, struct obj_sel_term *t, struct sc_error *e)
{
    skip_ws(l);
    if (*l->p == '!') {
        l->p++;
        t->op = OBJ_SEL_ABSENT;
        return (t->key = word(l, "a label key after '!'", e)) ? 0 : -SC_E_INVALID;
    }
    if (!(t->key = word(l, "a label key", e)))
        return -SC_E_INVALID;
    skip_ws(l);
    if (l->p[0] == '=' || (l->p[0] == '!' && l->p[1] == '=')) {
        t->op = l->p[0] == '=' ? OBJ_SEL_EQ : OBJ_SEL_NE;
        l->p += l->p[0] == '!' ? 2 : (l->p[1] == '=' ? 2 : 1);
        t->values = xcalloc(1, sizeof(char *));
        t->nvalues = 1;
        /* an empty value is allowed: `app=` selects an empty label */
        skip_ws(l);
        if (!label_char(*l->p)) {
            t->values[0] = xstrdup("");
            return 0;
        }
        return (t->values[0] = word(l, "a label value", e)) ? 0 : -SC_E_INVALID;
    }
    bool in = keyword(l, "in"), notin = !in && keyword(l, "notin");
    if (!in && !notin) {
        t->op = OBJ_SEL_EXISTS;
        return 0;
    }
    t->op = in ? OBJ_SEL_IN : OBJ_SEL_NOTIN;
    skip_ws(l);
    if (*l->p != '(')
        return sc_error_set(e, -SC_E_INVALID, "selector", "column %zu: expected '(' after '%s'",
                            (size_t)(l->p - l->s) + 1, in ? "in" : "notin");
    l->p++;
    for (;;) {
        char *v = word(l, "a label value", e);
        if (!v)
            return -SC_E_INVALID;
        t->values = xrealloc(t->values, (t->nvalues + 1) * sizeof(char *));
        t->values[t->nvalues++] = v;
        skip_ws(l);
        if (*l->p == ',') {
            l->p++;
            continue;
        }
        if (*l->p == ')') {
            l->p++;
            return 0;
        }
        return sc_error_set(e, -SC_E_INVALID, "selector", "column %zu: expected ',' or ')'",
                            (size_t)(l->p - l->s) + 1);
    }
}

int obj_selector_parse(const char *s, struct obj_selector *out, struct sc_error *e)
{
    memset(out, 0, sizeof(*out));
    struct lex l = {s, s};
    skip_ws(&l);
    if (!*l.p)
        return 0; /* the empty selector matches everything */
    for (;;) {
        out->terms = xrealloc(out->terms, (out->n + 1) * sizeof(*out->terms));
        struct obj_sel_term *t = &out->terms[out->n++];
        memset(t, 0, sizeof(*t));
        int r = term_parse(&l, t, e);
        if (r < 0) {
            obj_selector_done(out);
            return r;
        }
        skip_ws(&l);
        if (*l.p == '\0')
            return 0;
        if (*l.p != ',') {
            sc_error_set(e, -SC_E_INVALID, "selector", "column %zu: expected ',' or the end",
                         (size_t)(l.p - l.s) + 1);
            obj_selector_done(out);
            return -SC_E_INVALID;
        }
        l.p++;
    }
}

bool obj_selector_match(const struct obj_selector *sel, const json_t *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        const struct obj_sel_term *t = &sel->terms[i];
        const char *v = json_string_value(json_object_get(labels, t->key));
        bool in = false;
        for (size_t j = 0; v && j < t->nvalues; j++)
            in |= !strcmp(v, t->values[j]);
        bool ok;
        switch (t->op) {
        case OBJ_SEL_EQ:
        case OBJ_SEL_IN:
            ok = in;
            break;
        case OBJ_SEL_NE:
        case OBJ_SEL_NOTIN:
            ok = !in; /* like Kubernetes: a missing label is "not equal" */
            break;
        case OBJ_SEL_EXISTS:
            ok = v != NULL;
            break;
        default:
            ok = v == NULL;
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

void obj_selector_done(struct obj_selector *sel)
{
    for (size_t i = 0; i < sel->n; i++) {
        free(sel->terms[i].key);
        for (size_t j = 0; j < sel->terms[i].nvalues; j++)
            free(sel->terms[i].values[j]);
        free(sel->terms[i].values);
    }
    free(sel->terms);
    memset(sel, 0, sizeof(*sel));
}
