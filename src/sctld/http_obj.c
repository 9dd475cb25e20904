/*
 * http_obj.c: the objects API (docs/api.md, "Objects"): /v1/<kind>[/<name>[/status]]
 * for Deployments, Revisions, Assignments, Nodes and Instances, stored one key
 * each under /registry/ (src/objects).  Lists filter by label selector; watches
 * stream ADDED/MODIFIED/DELETED with whole objects (watch.c); writes are one
 * transaction guarded by the key's mod revision, so a PUT that names
 * metadata.revision is a compare-and-swap and two writers never interleave.
 *
 * A write is validated completely and merged with the stored object (server-owned
 * metadata, status kept apart from spec) before anything is proposed; a refused
 * body changes nothing.  A Deployment write whose template (spec without
 * replicas) has no Revision yet stores it, named DEPLOYMENT-HASH
 * (obj_revision_name), in the same transaction, so an Assignment never names a
 * Revision that does not exist.
 */
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"
#include "sctld/server_int.h"

/* The stored value of key, or NULL; presented with its mod revision. */
json_t *srv_obj_load(struct srv *s, const char *key, int64_t *mod)
{
    struct store_op op = {
        .type = STORE_OP_GET, .key = (const uint8_t *)key, .key_len = strlen(key)};
    struct store_op_result res;
    struct sc_error e;
    *mod = 0;
    if (store_read(s->store, &op, &res, &e) < 0 || res.nkvs == 0) {
        free(res.kvs);
        return NULL;
    }
    *mod = res.kvs[0].mod_rev;
    json_t *o = obj_present(res.kvs[0].value, res.kvs[0].value_len, *mod);
    free(res.kvs);
    return o;
}

static void send_obj_json(struct srv *s, struct evhttp_request *req, int status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    sc_buf_reset(&s->scratch);
    sc_buf_put(&s->scratch, text, strlen(text));
    free(text);
    srv_send_json(s, req, status, &s->scratch);
}

static void list(struct srv *s, struct evhttp_request *req, const struct obj_kind *k,
                 const struct obj_selector *sel, usec_t start)
{
    struct sc_buf prefix = {0};
    obj_prefix(&prefix, k);
    struct store_op op = {
        .type = STORE_OP_GET, .key = prefix.data, .key_len = prefix.len, .prefix = true};
    struct store_op_result res;
    struct sc_error e = {0};
    int r = store_read(s->store, &op, &res, &e);
    sc_buf_free(&prefix);
    if (r < 0)
        return srv_send_error(s, req, r, &e);
    json_t *items = json_array();
    for (size_t i = 0; i < res.nkvs; i++) {
        json_t *o = obj_present(res.kvs[i].value, res.kvs[i].value_len, res.kvs[i].mod_rev);
        if (o && obj_selector_match(sel, json_object_get(json_object_get(o, "metadata"), "labels")))
            json_array_append(items, o);
        json_decref(o);
    }
    free(res.kvs);
    char kind[64];
    snprintf(kind, sizeof(kind), "%sList", k->kind);
    json_t *out = json_pack("{s:s, s:I, s:o}", "kind", kind, "revision",
                            (json_int_t)store_rev(s->store), "items", items);
    send_obj_json(s, req, 200, out);
    json_decref(out);
    srv_observe(s, start);
}

/* The Revision object of a Deployment's template (obj_revision_name). */
static json_t *revision_of(const json_t *d)
{
    const json_t *md = json_object_get(d, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    json_int_t gen = json_integer_value(json_object_get(md, "generation"));
    char rname[160];
    obj_revision_name(d, rname, sizeof(rname));
    json_t *spec = json_deep_copy(json_object_get(d, "spec"));
    json_object_del(spec, "replicas");
    return json_pack("{s:s, s:s, s:{s:s, s:{s:s}, s:O}, s:{s:s, s:I, s:o}}", "kind", "Revision",
                     "apiVersion", "v1", "metadata", "name", rname, "labels", "deployment", name,
                     "created", json_object_get(md, "created"), "spec", "deployment", name,
                     "generation", gen, "template", spec);
}

/* Strips what differs between two presentations of the same stored object. */
static bool same_object(const json_t *a, const json_t *b)
{
    json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
    json_object_del(json_object_get(x, "metadata"), "revision");
    json_object_del(json_object_get(y, "metadata"), "revision");
    bool eq = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

/* Proposes ops on the object at key (NUL-terminated in the buffer) as one
 * transaction, guarded by its mod revision when guard is set; text is the stored
 * object for the answer (taken), result what the answer calls the write. */
static void propose(struct srv *s, struct evhttp_request *req, const struct sc_buf *key,
                    struct store_op *ops, size_t nops, bool guard, int64_t mod, char *text,
                    const char *result, usec_t start)
{
    struct store_cmp cmp = {.key = key->data,
                            .key_len = key->len - 1,
                            .target = STORE_CMP_MOD,
                            .op = STORE_CMP_EQ,
                            .num = mod};
    struct store_cmd cmd = {.type = STORE_CMD_TXN,
                            .cmps = &cmp,
                            .ncmps = guard ? 1 : 0,
                            .success = ops,
                            .nsuccess = nops};
    struct sc_error e = {0};
    int r = store_cmd_validate(&cmd, &s->cfg.limits, &e);
    if (r < 0) {
        free(text);
        return srv_send_error(s, req, r, &e);
    }
    struct srv_obj_reply *o = xcalloc(1, sizeof(*o));
    o->text = text;
    o->result = result;
    srv_propose_obj(s, req, &cmd, o, start);
}

/* PUT /v1/K/NAME, PUT /v1/K/NAME/status, POST /v1/K.  A plain PUT (no
 * metadata.revision) is last-write-wins in the log, as documented, so a status
 * write landing between our read and our apply cannot turn it into a spurious
 * 409; what that costs is at most a status the next scheduler pass writes again.
 * A PUT naming a revision, a POST (the name must still be free) and a /status
 * write (it carries the stored spec, which must not overwrite a newer one) stay
 * compare-and-swaps on the key's mod revision.  A DELETE likewise compares only
 * when it names ?revision=. */
static void write_obj(struct srv *s, struct evhttp_request *req, const struct obj_kind *k,
                      const char *name, bool create_only, bool status_only, usec_t start)
{
    struct sc_error e = {0};
    char *body;
    size_t blen;
    int r = srv_body_of(s, req, &body, &blen, &e);
    if (r < 0)
        return srv_send_error(s, req, r, &e);
    json_t *in = NULL;
    if (status_only) {
        json_error_t je;
        in = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(in) || !json_is_object(json_object_get(in, "status"))) {
            json_decref(in);
            return srv_send_error(
                s, req,
                sc_error_set(&e, -SC_E_INVALID, "status", "a status write is {\"status\": {...}}"),
                &e);
        }
    } else if ((r = obj_decode(k, name, body, blen, &in, &e)) < 0) {
        return srv_send_error(s, req, r, &e);
    }
    char nm[80];
    snprintf(nm, sizeof(nm), "%s",
             name ? name
                  : json_string_value(json_object_get(json_object_get(in, "metadata"), "name")));
    struct sc_buf key = {0};
    obj_key(&key, k, nm);
    sc_buf_put_u8(&key, 0);
    int64_t mod;
    json_t *cur = srv_obj_load(s, (const char *)key.data, &mod);
    int64_t want = obj_revision(in);
    const char *fail = NULL;
    int code = 0;
    if (create_only && cur)
        fail = "already_exists", code = 409;
    else if (status_only && !cur)
        fail = "not_found", code = 404;
    else if (want && want != mod)
        fail = "revision_mismatch", code = 409;
    if (fail) {
        char msg[200];
        if (code == 404)
            snprintf(msg, sizeof(msg), "%s %s does not exist", k->kind, nm);
        else if (create_only)
            snprintf(msg, sizeof(msg), "%s %s already exists", k->kind, nm);
        else
            snprintf(msg, sizeof(msg), "%s %s is at revision %lld, not %lld (read it again)",
                     k->kind, nm, (long long)mod, (long long)want);
        srv_send_coded(s, req, code, fail, msg);
        goto out;
    }
    json_t *merged = obj_merge(cur, in, status_only, (int64_t)(now_usec(CLOCK_REALTIME) / 1000));
    if (status_only) { /* the new status is checked by the kind's schema, like any body */
        struct manifest_errors errs = {0};
        json_t *canon = NULL;
        if (manifest_validate_json(k->kind, merged, &canon, &errs) < 0) {
            char msg[sizeof(e.msg)] = "the status does not fit the kind's schema";
            if (errs.n > 0)
                manifest_error_format(&errs.v[0], msg, sizeof(msg));
            sc_error_set(&e, -SC_E_INVALID, errs.n > 0 ? errs.v[0].path : "status", "%s", msg);
            manifest_errors_done(&errs);
            json_decref(merged);
            srv_send_error(s, req, -SC_E_INVALID, &e);
            goto out;
        }
        manifest_errors_done(&errs);
        json_decref(merged);
        merged = canon;
    }
    if (cur && same_object(cur, merged)) {
        json_t *ans = json_pack("{s:I, s:s, s:O}", "revision", (json_int_t)store_rev(s->store),
                                "result", "unchanged", "object", cur);
        send_obj_json(s, req, 200, ans);
        json_decref(ans);
        json_decref(merged);
        srv_observe(s, start);
        goto out;
    }
    char *text = manifest_dump(merged);
    char *rev_text = NULL;
    struct sc_buf rkey = {0};
    struct store_op ops[2] = {{.type = STORE_OP_PUT,
                               .key = key.data,
                               .key_len = key.len - 1,
                               .value = (const uint8_t *)text,
                               .value_len = strlen(text)}};
    size_t nops = 1;
    if (!strcmp(k->kind, "Deployment") && !status_only) {
        /* its template's Revision, unless stored already (scaling, or a template seen before) */
        json_t *rv = revision_of(merged);
        obj_key(&rkey, obj_kind_by_name("Revision"),
                json_string_value(json_object_get(json_object_get(rv, "metadata"), "name")));
        sc_buf_put_u8(&rkey, 0);
        int64_t rmod;
        json_t *have = srv_obj_load(s, (const char *)rkey.data, &rmod);
        if (!have) {
            rev_text = manifest_dump(rv);
            ops[nops++] = (struct store_op){.type = STORE_OP_PUT,
                                            .key = rkey.data,
                                            .key_len = rkey.len - 1,
                                            .value = (const uint8_t *)rev_text,
                                            .value_len = strlen(rev_text)};
        }
        json_decref(have);
        json_decref(rv);
    }
    propose(s, req, &key, ops, nops, want || create_only || status_only, mod, xstrdup(text),
            cur ? "updated" : "created", start);
    free(text);
    free(rev_text);
    sc_buf_free(&rkey);
    json_decref(merged);
out:
    json_decref(cur);
    json_decref(in);
    sc_buf_free(&key);
}

static void delete_obj(struct srv *s, struct evhttp_request *req, const struct obj_kind *k,
                       const char *name, const struct api_query *q, usec_t start)
{
    struct sc_error e = {0};
    int64_t want;
    int r = api_query_int(q, "revision", 0, &want, &e);
    if (r < 0)
        return srv_send_error(s, req, r, &e);
    struct sc_buf key = {0};
    obj_key(&key, k, name);
    sc_buf_put_u8(&key, 0);
    int64_t mod;
    json_t *cur = srv_obj_load(s, (const char *)key.data, &mod);
    char msg[200];
    if (!cur) {
        snprintf(msg, sizeof(msg), "%s %s does not exist", k->kind, name);
        srv_send_coded(s, req, 404, "not_found", msg);
    } else if (want && want != mod) {
        snprintf(msg, sizeof(msg), "%s %s is at revision %lld, not %lld", k->kind, name,
                 (long long)mod, (long long)want);
        srv_send_coded(s, req, 409, "revision_mismatch", msg);
    } else {
        struct store_op op = {.type = STORE_OP_DELETE, .key = key.data, .key_len = key.len - 1};
        propose(s, req, &key, &op, 1, want != 0, mod, NULL, "deleted", start);
    }
    json_decref(cur);
    sc_buf_free(&key);
}

/* /v1/<plural>[/<name>[/status]]: c->rest is everything after "/v1/". */
void srv_http_obj(struct srv *s, struct evhttp_request *req, const struct srv_call *c)
{
    struct sc_error e = {0};
    const char *p = c->rest, *end = c->rest + c->rlen;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t plen = slash ? (size_t)(slash - p) : (size_t)(end - p);
    const struct obj_kind *k = obj_kind_by_plural(p, plen);
    if (!k)
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_NOT_FOUND, "path",
                                           "no such path: /v1/%.*s (kinds: deployments, "
                                           "revisions, assignments, nodes, instances)",
                                           (int)MIN(c->rlen, 100), c->rest),
                              &e);
    char name[80] = "";
    bool status = false;
    if (slash) {
        const char *n = slash + 1;
        const char *s2 = memchr(n, '/', (size_t)(end - n));
        size_t nl = s2 ? (size_t)(s2 - n) : (size_t)(end - n);
        if (s2) {
            if ((size_t)(end - s2) != 7 || memcmp(s2, "/status", 7) != 0 || !k->has_status)
                return srv_send_error(s, req,
                                      sc_error_set(&e, -SC_E_NOT_FOUND, "path",
                                                   "no such path: /v1/%.*s", (int)MIN(c->rlen, 100),
                                                   c->rest),
                                      &e);
            status = true;
        }
        int r = obj_name_check(n, nl, &e);
        if (r < 0)
            return srv_send_error(s, req, r, &e);
        snprintf(name, sizeof(name), "%.*s", (int)nl, n);
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_GET && !status) {
        bool watch = false;
        size_t sl = 0;
        const char *sel_text = api_query_get(c->q, "selector", &sl);
        struct obj_selector sel;
        int r;
        if ((r = api_query_bool(c->q, "watch", &watch, &e)) < 0 ||
            (r = obj_selector_parse(sel_text ? sel_text : "", &sel, &e)) < 0)
            return srv_send_error(s, req, r, &e);
        if (watch) {
            struct sc_buf key = {0};
            if (name[0])
                obj_key(&key, k, name);
            else
                obj_prefix(&key, k);
            srv_start_obj_watch(s, req, key.data, key.len, !name[0], k, &sel, c->q);
            sc_buf_free(&key);
            return; /* the stream owns sel */
        }
        if (!srv_read_gate(s, req, c->q)) {
            obj_selector_done(&sel);
            return;
        }
        if (!name[0]) {
            list(s, req, k, &sel, c->start);
        } else {
            struct sc_buf key = {0};
            obj_key(&key, k, name);
            sc_buf_put_u8(&key, 0);
            int64_t mod;
            json_t *o = srv_obj_load(s, (const char *)key.data, &mod);
            if (o) {
                send_obj_json(s, req, 200, o);
                srv_observe(s, c->start);
            } else {
                char msg[160];
                snprintf(msg, sizeof(msg), "%s %s does not exist", k->kind, name);
                srv_send_coded(s, req, 404, "not_found", msg);
            }
            json_decref(o);
            sc_buf_free(&key);
        }
        obj_selector_done(&sel);
        return;
    }
    if (!strcmp(k->plural, "revisions") || !strcmp(k->plural, "assignments")) {
        sc_error_set(&e, -SC_E_METHOD, "method", "use GET: %s are written by the %s", k->plural,
                     k->plural[0] == 'r' ? "server with each new Deployment generation"
                                         : "scheduler");
        return srv_send_error(s, req, -SC_E_METHOD, &e);
    }
    if (!srv_writable(s, req))
        return;
    if (m == EVHTTP_REQ_PUT && name[0])
        return write_obj(s, req, k, name, false, status, c->start);
    if (m == EVHTTP_REQ_POST && !name[0])
        return write_obj(s, req, k, NULL, true, false, c->start);
    if (m == EVHTTP_REQ_DELETE && name[0] && !status)
        return delete_obj(s, req, k, name, c->q, c->start);
    sc_error_set(&e, -SC_E_METHOD, "method",
                 status    ? "use PUT on /v1/%s/NAME/status"
                 : name[0] ? "use GET, PUT or DELETE on /v1/%s/NAME"
                           : "use GET or POST on /v1/%s",
                 k->plural);
    srv_send_error(s, req, -SC_E_METHOD, &e);
}
