/*
 * kvapi.c: JSON decoding of store requests and JSON encoding of store results
 * (kvapi.h).  Parsing uses jansson, for its line/column errors; output is written
 * by hand into a buffer, because the hot path (a put's reply, a watch event) must
 * cost well under a microsecond.
 */
#include "api/kvapi.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "base/util.h"

/* ---- small helpers ----------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void api_base64_encode(struct sc_buf *out, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    sc_buf_reserve(out, (n + 2) / 3 * 4);
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64chars[v >> 18], *o++ = b64chars[(v >> 12) & 63];
        *o++ = b64chars[(v >> 6) & 63], *o++ = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = b64chars[v >> 18], *o++ = b64chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len = (size_t)(o - (char *)out->data);
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;
    return p ? (int)(p - b64chars) : -1;
}

int api_base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
    if (n % 4)
        return -SC_E_INVALID;
    uint8_t *o = xmalloc(n / 4 * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = b64val(s[i + j])) < 0) {
                free(o);
                return -SC_E_INVALID;
            }
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        o[k++] = (uint8_t)(x >> 16);
        if (pad < 2)
            o[k++] = (uint8_t)(x >> 8);
        if (pad < 1)
            o[k++] = (uint8_t)x;
    }
    *ret = o;
    *ret_len = k;
    return 0;
}

int api_percent_decode(const char *src, size_t n, uint8_t **ret, size_t *ret_len)
{
    uint8_t *o = xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '%') {
            int h, l;
            if (i + 2 >= n || (h = sc_hexval(src[i + 1])) < 0 || (l = sc_hexval(src[i + 2])) < 0) {
                free(o);
                return -SC_E_INVALID;
            }
            o[k++] = (uint8_t)(h << 4 | l);
            i += 2;
        } else if (src[i] == '+') {
            o[k++] = ' ';
        } else {
            o[k++] = (uint8_t)src[i];
        }
    }
    o[k] = 0;
    *ret = o;
    *ret_len = k;
    return 0;
}

/* ---- query strings ------------------------------------------------------------- */

int api_query_parse(const char *qs, struct api_query *q, struct sc_error *e)
{
    *q = (struct api_query){0};
    if (!qs || !*qs)
        return 0;
    size_t total = strlen(qs);
    /* Every decoded name and value fits in the input's length plus terminators. */
    q->storage = xmalloc(total + 2 * API_QUERY_MAX + 2);
    char *w = q->storage;
    const char *p = qs;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg > 0) {
            if (q->n == API_QUERY_MAX) {
                api_query_done(q);
                return sc_error_set(e, -SC_E_INVALID, "query", "more than %d query parameters",
                                    API_QUERY_MAX);
            }
            const char *eq = memchr(p, '=', seg);
            size_t nl = eq ? (size_t)(eq - p) : seg;
            uint8_t *name, *val;
            size_t name_len, val_len;
            if (api_percent_decode(p, nl, &name, &name_len) < 0) {
                api_query_done(q);
                return sc_error_set(e, -SC_E_INVALID, "query", "bad percent-escape in the query");
            }
            if (api_percent_decode(eq ? eq + 1 : p + seg, eq ? seg - nl - 1 : 0, &val, &val_len) <
                0) {
                int r = sc_error_set(e, -SC_E_INVALID, (char *)name,
                                     "bad percent-escape in query parameter %.40s", (char *)name);
                free(name);
                api_query_done(q);
                return r;
            }
            q->kv[q->n].name = w;
            memcpy(w, name, name_len + 1);
            w += name_len + 1;
            q->kv[q->n].value = w;
            q->kv[q->n].value_len = val_len;
            memcpy(w, val, val_len + 1);
            w += val_len + 1;
            q->n++;
            free(name);
            free(val);
        }
        p += seg;
        if (*p == '&')
            p++;
    }
    return 0;
}

void api_query_done(struct api_query *q)
{
    free(q->storage);
    *q = (struct api_query){0};
}

const char *api_query_get(const struct api_query *q, const char *name, size_t *len)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->kv[i].name, name) == 0) {
            if (len)
                *len = q->kv[i].value_len;
            return q->kv[i].value;
        }
    return NULL;
}

int api_query_int(const struct api_query *q, const char *name, int64_t def, int64_t *ret,
                  struct sc_error *e)
{
    size_t n;
    const char *v = api_query_get(q, name, &n);
    if (!v) {
        *ret = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (n == 0 || end != v + n || errno || x < 0)
        return sc_error_set(e, -SC_E_INVALID, name,
                            "%s must be a non-negative integer, got \"%.40s\"", name, v);
    *ret = x;
    return 0;
}

int api_query_bool(const struct api_query *q, const char *name, bool *ret, struct sc_error *e)
{
    const char *v = api_query_get(q, name, NULL);
    if (!v)
        *ret = false;
    else if (!*v || !strcmp(v, "1") || !strcmp(v, "true"))
        *ret = true;
    else if (!strcmp(v, "0") || !strcmp(v, "false"))
        *ret = false;
    else
        return sc_error_set(e, -SC_E_INVALID, name, "%s must be 1, 0, true or false", name);
    return 0;
}

/* ---- JSON bodies ------------------------------------------------------------ */

void api_body_done(struct api_body *b)
{
    free(b->cmd.cmps);
    free(b->cmd.success);
    free(b->cmd.failure);
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    free(b->owned);
    json_decref(b->json);
    *b = (struct api_body){0};
}

static int load(const char *body, size_t len, struct api_body *b, struct sc_error *e)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return sc_error_set(e, -SC_E_INVALID, "body",
                            "body is not valid JSON: %s at line %d column %d", je.text, je.line,
                            je.column);
    b->json = j;
    if (!json_is_object(j))
        return sc_error_set(e, -SC_E_INVALID, "body", "body must be a JSON object");
    return 0;
}

/* Only the listed members may appear: a typo is an error, not a silent default. */
static int check_members(json_t *o, const char *const *allowed, const char *where,
                         struct sc_error *e)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, k) == 0;
        if (!ok)
            return sc_error_set(e, -SC_E_INVALID, where, "%s%sunknown field \"%.60s\"", where,
                                *where ? ": " : "", k);
    }
    return 0;
}

static int get_int(json_t *o, const char *name, const char *where, int64_t *ret, bool required,
                   struct sc_error *e)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        if (required)
            return sc_error_set(e, -SC_E_INVALID, where, "%s is required", where);
        return 0;
    }
    if (!json_is_integer(v))
        return sc_error_set(e, -SC_E_INVALID, where, "%s must be an integer", where);
    *ret = json_integer_value(v);
    return 0;
}

static int get_bool(json_t *o, const char *name, const char *where, bool *ret, struct sc_error *e)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return sc_error_set(e, -SC_E_INVALID, where, "%s must be true or false", where);
    *ret = json_is_true(v);
    return 0;
}

/* A byte string given as "NAME" (text) or "NAME_base64". */
static int get_bytes(struct api_body *b, json_t *o, const char *name, const char *where,
                     const uint8_t **p, size_t *n, bool required, struct sc_error *e)
{
    char b64name[32];
    snprintf(b64name, sizeof(b64name), "%s_base64", name);
    json_t *t = json_object_get(o, name), *x = json_object_get(o, b64name);
    if (t && x)
        return sc_error_set(e, -SC_E_INVALID, where, "%s: give %s or %s, not both", where, name,
                            b64name);
    if (t) {
        if (!json_is_string(t))
            return sc_error_set(e, -SC_E_INVALID, where, "%s.%s must be a string", where, name);
        *p = (const uint8_t *)json_string_value(t);
        *n = json_string_length(t);
        return 0;
    }
    if (x) {
        uint8_t *d;
        size_t dn;
        if (!json_is_string(x) ||
            api_base64_decode(json_string_value(x), json_string_length(x), &d, &dn) < 0)
            return sc_error_set(e, -SC_E_INVALID, where, "%s.%s must be base64", where, b64name);
        b->owned = xrealloc(b->owned, (b->nowned + 1) * sizeof(*b->owned));
        b->owned[b->nowned++] = d;
        *p = d;
        *n = dn;
        return 0;
    }
    if (required)
        return sc_error_set(e, -SC_E_INVALID, where, "%s.%s is required", where, name);
    *p = (const uint8_t *)"";
    *n = 0;
    return 0;
}

static int decode_op(struct api_body *b, json_t *o, const char *where, struct store_op *op,
                     struct sc_error *e)
{
    static const char *const put_f[] = {"key",   "key_base64", "value", "value_base64",
                                        "lease", "prev_kv",    NULL};
    static const char *const del_f[] = {"key", "key_base64", "prefix", "prev_kv", NULL};
    static const char *const get_f[] = {"key",   "key_base64", "prefix",    "rev",
                                        "limit", "count_only", "keys_only", NULL};
    char f[96];
    if (!json_is_object(o) || json_object_size(o) != 1)
        return sc_error_set(e, -SC_E_INVALID, where,
                            "%s must be an object with one of put, delete or get", where);
    const char *kind = json_object_iter_key(json_object_iter(o));
    json_t *a = json_object_iter_value(json_object_iter(o));
    snprintf(f, sizeof(f), "%s.%s", where, kind);
    if (!json_is_object(a))
        return sc_error_set(e, -SC_E_INVALID, f, "%s must be an object", f);
    *op = (struct store_op){0};
    int r;
    if (strcmp(kind, "put") == 0) {
        op->type = STORE_OP_PUT;
        if ((r = check_members(a, put_f, f, e)) < 0 ||
            (r = get_bytes(b, a, "value", f, &op->value, &op->value_len, true, e)) < 0 ||
            (r = get_int(a, "lease", f, &op->lease, false, e)) < 0)
            return r;
    } else if (strcmp(kind, "delete") == 0) {
        op->type = STORE_OP_DELETE;
        if ((r = check_members(a, del_f, f, e)) < 0 ||
            (r = get_bool(a, "prefix", f, &op->prefix, e)) < 0)
            return r;
    } else if (strcmp(kind, "get") == 0) {
        op->type = STORE_OP_GET;
        if ((r = check_members(a, get_f, f, e)) < 0 ||
            (r = get_bool(a, "prefix", f, &op->prefix, e)) < 0 ||
            (r = get_int(a, "rev", f, &op->rev, false, e)) < 0 ||
            (r = get_int(a, "limit", f, &op->limit, false, e)) < 0 ||
            (r = get_bool(a, "count_only", f, &op->count_only, e)) < 0 ||
            (r = get_bool(a, "keys_only", f, &op->keys_only, e)) < 0)
            return r;
    } else {
        return sc_error_set(e, -SC_E_INVALID, where,
                            "%s: unknown operation \"%.40s\" (put, delete, get)", where, kind);
    }
    if ((r = get_bool(a, "prev_kv", f, &op->prev_kv, e)) < 0 ||
        (r = get_bytes(b, a, "key", f, &op->key, &op->key_len, true, e)) < 0)
        return r;
    return 0;
}

static int decode_ops(struct api_body *b, json_t *root, const char *name, struct store_op **ops,
                      size_t *n, size_t max, struct sc_error *e)
{
    json_t *arr = json_object_get(root, name);
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return sc_error_set(e, -SC_E_INVALID, name, "%s must be an array", name);
    if (json_array_size(arr) > max)
        return sc_error_set(e, -SC_E_TOO_MANY_OPS, name, "%s has %zu operations, the limit is %zu",
                            name, json_array_size(arr), max);
    *ops = xcalloc(json_array_size(arr), sizeof(**ops));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char f[48];
        snprintf(f, sizeof(f), "%s[%zu]", name, i);
        int r = decode_op(b, json_array_get(arr, i), f, &(*ops)[i], e);
        if (r < 0)
            return r;
        (*n)++;
    }
    return 0;
}

static int decode_cmp(struct api_body *b, json_t *o, const char *where, struct store_cmp *c,
                      struct sc_error *e)
{
    static const char *const cmp_f[] = {"key",   "key_base64",   "target", "result",
                                        "value", "value_base64", NULL};
    static const char *const targets[] = {NULL, "version", "create", "mod", "value", "lease"};
    static const char *const results[] = {NULL, "=", "!=", "<", ">"};
    if (!json_is_object(o))
        return sc_error_set(e, -SC_E_INVALID, where, "%s must be an object", where);
    int r = check_members(o, cmp_f, where, e);
    if (r < 0)
        return r;
    *c = (struct store_cmp){0};
    if ((r = get_bytes(b, o, "key", where, &c->key, &c->key_len, true, e)) < 0)
        return r;
    const char *t = json_string_value(json_object_get(o, "target"));
    const char *res = json_string_value(json_object_get(o, "result"));
    for (int i = 1; i <= 5 && t; i++)
        if (strcmp(t, targets[i]) == 0)
            c->target = i;
    for (int i = 1; i <= 4 && res; i++)
        if (strcmp(res, results[i]) == 0)
            c->op = i;
    if (!c->target)
        return sc_error_set(e, -SC_E_INVALID, where,
                            "%s.target must be one of version, create, mod, value, lease", where);
    if (!c->op)
        return sc_error_set(e, -SC_E_INVALID, where, "%s.result must be one of =, !=, <, >", where);
    if (c->target == STORE_CMP_VALUE)
        return get_bytes(b, o, "value", where, &c->value, &c->value_len, true, e);
    return get_int(o, "value", where, &c->num, true, e);
}

int api_decode_txn(const char *body, size_t len, const struct store_limits *l, struct api_body *b,
                   struct sc_error *e)
{
    static const char *const txn_f[] = {"compare", "success", "failure", NULL};
    *b = (struct api_body){0};
    b->cmd.type = STORE_CMD_TXN;
    int r = load(body, len, b, e);
    if (r < 0)
        goto fail;
    json_t *root = b->json;
    if ((r = check_members(root, txn_f, "", e)) < 0)
        goto fail;
    json_t *cmps = json_object_get(root, "compare");
    if (cmps) {
        if (!json_is_array(cmps)) {
            r = sc_error_set(e, -SC_E_INVALID, "compare", "compare must be an array");
            goto fail;
        }
        if (json_array_size(cmps) > l->max_txn_ops) {
            r = sc_error_set(e, -SC_E_TOO_MANY_OPS, "compare",
                             "compare has %zu entries, the limit is %zu", json_array_size(cmps),
                             l->max_txn_ops);
            goto fail;
        }
        b->cmd.cmps = xcalloc(json_array_size(cmps), sizeof(*b->cmd.cmps));
        for (size_t i = 0; i < json_array_size(cmps); i++) {
            char f[48];
            snprintf(f, sizeof(f), "compare[%zu]", i);
            if ((r = decode_cmp(b, json_array_get(cmps, i), f, &b->cmd.cmps[i], e)) < 0)
                goto fail;
            b->cmd.ncmps++;
        }
    }
    if ((r = decode_ops(b, root, "success", &b->cmd.success, &b->cmd.nsuccess, l->max_txn_ops, e)) <
            0 ||
        (r = decode_ops(b, root, "failure", &b->cmd.failure, &b->cmd.nfailure, l->max_txn_ops, e)) <
            0)
        goto fail;
    if ((r = store_cmd_validate(&b->cmd, l, e)) < 0)
        goto fail;
    return 0;
fail:
    api_body_done(b);
    return r;
}

int api_decode_lease_grant(const char *body, size_t len, struct api_body *b, struct sc_error *e)
{
    static const char *const f[] = {"ttl", "id", NULL};
    *b = (struct api_body){0};
    b->cmd.type = STORE_CMD_LEASE_GRANT;
    int r;
    if ((r = load(body, len, b, e)) < 0 || (r = check_members(b->json, f, "", e)) < 0 ||
        (r = get_int(b->json, "ttl", "ttl", &b->cmd.ttl_sec, true, e)) < 0 ||
        (r = get_int(b->json, "id", "id", &b->cmd.lease_id, false, e)) < 0)
        goto fail;
    if (b->cmd.lease_id < 0) {
        r = sc_error_set(e, -SC_E_INVALID, "id", "lease id must be positive");
        goto fail;
    }
    if (b->cmd.ttl_sec <= 0 || b->cmd.ttl_sec > 365LL * 24 * 3600) {
        r = sc_error_set(e, -SC_E_INVALID, "ttl", "ttl must be between 1 second and one year");
        goto fail;
    }
    return 0;
fail:
    api_body_done(b);
    return r;
}

int api_decode_compact(const char *body, size_t len, struct api_body *b, struct sc_error *e)
{
    static const char *const f[] = {"revision", NULL};
    *b = (struct api_body){0};
    b->cmd.type = STORE_CMD_COMPACT;
    int r;
    if ((r = load(body, len, b, e)) < 0 || (r = check_members(b->json, f, "", e)) < 0 ||
        (r = get_int(b->json, "revision", "revision", &b->cmd.compact_rev, true, e)) < 0)
        goto fail;
    if (b->cmd.compact_rev <= 0) {
        r = sc_error_set(e, -SC_E_INVALID, "revision", "revision must be positive");
        goto fail;
    }
    return 0;
fail:
    api_body_done(b);
    return r;
}

/* ---- encoding ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0. Overlongs, surrogates and
 * code points above U+10FFFF are invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int api_json_str(struct sc_buf *out, const uint8_t *p, size_t n)
{
    size_t start = out->len;
    sc_buf_reserve(out, n + 2);
    out->data[out->len++] = '"';
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            size_t j = i;
            while (j < n && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' && p[j] < 0x80)
                j++;
            sc_buf_put(out, p + i, j - i);
            i = j;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_seq(p + i, n - i);
            if (!l) {
                out->len = start;
                return -1;
            }
            sc_buf_put(out, p + i, l);
            i += l;
            continue;
        }
        switch (c) {
        case '"':
            sc_buf_put(out, "\\\"", 2);
            break;
        case '\\':
            sc_buf_put(out, "\\\\", 2);
            break;
        case '\n':
            sc_buf_put(out, "\\n", 2);
            break;
        case '\t':
            sc_buf_put(out, "\\t", 2);
            break;
        case '\r':
            sc_buf_put(out, "\\r", 2);
            break;
        default:
            sc_buf_printf(out, "\\u%04x", c);
        }
        i++;
    }
    sc_buf_put_u8(out, '"');
    return 0;
}

void api_json_bytes_field(struct sc_buf *out, const char *name, const uint8_t *p, size_t n)
{
    sc_buf_printf(out, "\"%s\":", name);
    if (api_json_str(out, p, n) == 0)
        return;
    out->len -= strlen(name) + 3;
    sc_buf_printf(out, "\"%s_base64\":\"", name);
    api_base64_encode(out, p, n);
    sc_buf_put_u8(out, '"');
}

void api_json_kv(struct sc_buf *out, const struct store_kv *kv)
{
    sc_buf_put_u8(out, '{');
    api_json_bytes_field(out, "key", kv->key, kv->key_len);
    if (kv->value) {
        sc_buf_put_u8(out, ',');
        api_json_bytes_field(out, "value", kv->value, kv->value_len);
    }
    sc_buf_printf(
        out, ",\"create_revision\":%lld,\"mod_revision\":%lld,\"version\":%lld,\"lease\":%lld}",
        (long long)kv->create_rev, (long long)kv->mod_rev, (long long)kv->version,
        (long long)kv->lease);
}

static void kv_list(struct sc_buf *out, const char *name, const struct store_op_result *r)
{
    sc_buf_printf(out, "\"%s\":[", name);
    for (size_t i = 0; i < r->nkvs; i++) {
        if (i)
            sc_buf_put_u8(out, ',');
        api_json_kv(out, &r->kvs[i]);
    }
    sc_buf_put_u8(out, ']');
}

static void range_fields(struct sc_buf *out, const struct store_op_result *r)
{
    sc_buf_printf(out, "\"count\":%lld,\"more\":%s,", (long long)r->count,
                  r->more ? "true" : "false");
    kv_list(out, "kvs", r);
}

void api_json_range_result(struct sc_buf *out, rev_t rev, const struct store_op_result *r)
{
    sc_buf_printf(out, "{\"revision\":%lld,", (long long)rev);
    range_fields(out, r);
    sc_buf_put_u8(out, '}');
}

void api_json_txn_result(struct sc_buf *out, const struct store_result *r)
{
    sc_buf_printf(out, "{\"revision\":%lld,\"succeeded\":%s,\"responses\":[", (long long)r->rev,
                  r->succeeded ? "true" : "false");
    for (size_t i = 0; i < r->nops; i++) {
        const struct store_op_result *o = &r->ops[i];
        if (i)
            sc_buf_put_u8(out, ',');
        switch (o->type) {
        case STORE_OP_GET:
            sc_buf_put(out, "{\"get\":{", 8);
            range_fields(out, o);
            break;
        case STORE_OP_PUT:
            sc_buf_put(out, "{\"put\":{", 8);
            if (o->nkvs) {
                sc_buf_put(out, "\"prev_kv\":", 10);
                api_json_kv(out, &o->kvs[0]);
            }
            break;
        case STORE_OP_DELETE:
            sc_buf_printf(out, "{\"delete\":{\"deleted\":%lld", (long long)o->count);
            if (o->nkvs) {
                sc_buf_put_u8(out, ',');
                kv_list(out, "prev_kvs", o);
            }
            break;
        }
        sc_buf_put(out, "}}", 2);
    }
    sc_buf_put(out, "]}", 2);
}

void api_json_event(struct sc_buf *out, const struct store_event *ev)
{
    if (ev->type == STORE_EVENT_PUT) {
        sc_buf_put(out, "{\"type\":\"PUT\",\"kv\":", 19);
        api_json_kv(out, &ev->kv);
    } else {
        sc_buf_put(out, "{\"type\":\"DELETE\",\"kv\":{", 23);
        api_json_bytes_field(out, "key", ev->kv.key, ev->kv.key_len);
        sc_buf_printf(out, ",\"mod_revision\":%lld}", (long long)ev->kv.mod_rev);
    }
    if (ev->has_prev) {
        sc_buf_put(out, ",\"prev_kv\":", 11);
        api_json_kv(out, &ev->prev);
    }
    sc_buf_put(out, "}\n", 2);
}

void api_json_error(struct sc_buf *out, int r, const struct sc_error *e)
{
    const char *msg = e && e->msg[0] ? e->msg : sc_err_message(r);
    sc_buf_printf(out, "{\"error\":{\"code\":\"%s\",\"message\":", sc_err_name(r));
    if (api_json_str(out, (const uint8_t *)msg, strlen(msg)) < 0)
        sc_buf_put(out, "\"\"", 2);
    if (e && e->field[0]) {
        sc_buf_put(out, ",\"field\":", 9);
        if (api_json_str(out, (const uint8_t *)e->field, strlen(e->field)) < 0)
            sc_buf_put(out, "\"\"", 2);
    }
    sc_buf_put(out, "}}", 2);
}
