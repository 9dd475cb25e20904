/*
 * objects.h: SwiftCube's API objects over cubestore keys: kinds, keys, the
 * metadata the server owns, label selectors.  Pure (no store, no clock: time and
 * the current stored value come in as arguments), so sctld's handlers, the
 * scheduler loop and slet's client share one definition and tests need no server.
 *
 * Keys: one object is one key, `/registry/<plural>/<name>`, its value the object's
 * canonical JSON (manifest_dump: sorted keys, compact).  Like Kubernetes'
 * resourceVersion, `metadata.revision` is not stored: it is the key's mod revision,
 * put in when the object is read (obj_present), and a write that names it is a
 * compare-and-swap on it (409 on mismatch).
 *
 * What the server owns in metadata: `created` (RFC 3339 UTC, set on create, kept
 * after), `generation` (1 on create, +1 whenever spec changes; never for a
 * status-only change), `revision` (read side only).  `status` is owned by the
 * controllers: a user's PUT keeps the stored status, a `/status` write keeps the
 * stored spec (obj_merge).
 *
 * Label selectors (`?selector=` on lists and watches), the Kubernetes equality
 * and set forms:  `app=web`, `app==web`, `tier!=db`, `env in (prod,staging)`,
 * `env notin (dev)`, `gpu` (has the label), `!gpu` (has not), comma-separated
 * and all required.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define OBJ_PREFIX "/registry/"

struct obj_kind {
    const char *plural;      /* path segment and key part: "deployments" */
    const char *kind;        /* "Deployment" */
    bool spec_from_manifest; /* the body is validated by the manifest schema */
    bool has_status;
};

/* The kind named by a path segment ("deployments"), or NULL. */
const struct obj_kind *obj_kind_by_plural(const char *plural, size_t len);
const struct obj_kind *obj_kind_by_name(const char *kind);
/* Every kind, NULL-terminated by plural. */
extern const struct obj_kind obj_kinds[];

/* A valid object name: 1-63 of [a-z0-9-], starting and ending alphanumeric (DNS
 * label), so that it can be a host name, a cgroup and a file name. */
int obj_name_check(const char *name, size_t len, struct sc_error *e);
void obj_key(struct sc_buf *out, const struct obj_kind *k, const char *name);
void obj_prefix(struct sc_buf *out, const struct obj_kind *k);

/* Validates a body for kind k (a JSON text) into a canonical object: the
 * manifest schema for Deployments, the built-in shapes for the other kinds.
 * name (from the path, may be NULL for POST) must match metadata.name when both
 * are given.  Errors name the field ("spec.replicas: ..."). */
int obj_decode(const struct obj_kind *k, const char *name, const char *body, size_t len,
               json_t **ret, struct sc_error *e);

/* The object to store: the canonical new one with server metadata merged from the
 * stored one (NULL when creating).  status_only: a `/status` write (keep stored
 * spec, take new status); else keep stored status.  now_ms stamps `created`. */
json_t *obj_merge(const json_t *stored, json_t *incoming, bool status_only, int64_t now_ms);
/* In place, for an object being created: created = now_ms, generation 1, no
 * revision (what obj_merge does to a copy when nothing is stored). */
void obj_stamp_new(json_t *o, int64_t now_ms);

/* A stored value presented to a reader: parsed, with metadata.revision = mod_rev.
 * NULL if the stored bytes are not a JSON object (never written by us). */
json_t *obj_present(const uint8_t *value, size_t len, int64_t mod_rev);

/* The Revision a Deployment's template belongs to: NAME-HASH, where HASH is 10
 * hex digits of FNV-1a 64 over the canonical spec without `replicas` (Kubernetes'
 * pod-template-hash idea): scaling keeps the Revision, any other spec change
 * makes a new one, and returning to an earlier template finds its Revision again. */
void obj_revision_name(const json_t *deployment, char *out, size_t size);

/* metadata.revision of a body, 0 when absent. */
int64_t obj_revision(const json_t *o);

/* ---- selectors ---------------------------------------------------------------- */

enum obj_sel_op {
    OBJ_SEL_EQ,
    OBJ_SEL_NE,
    OBJ_SEL_IN,
    OBJ_SEL_NOTIN,
    OBJ_SEL_EXISTS,
    OBJ_SEL_ABSENT
};

struct obj_sel_term {
    enum obj_sel_op op;
    char *key;
    char **values;
    size_t nvalues;
};

struct obj_selector {
    struct obj_sel_term *terms;
    size_t n;
};

/* Parses a selector; errors say where ("selector: column 9: expected ')'"). */
int obj_selector_parse(const char *s, struct obj_selector *out, struct sc_error *e);
bool obj_selector_match(const struct obj_selector *sel, const json_t *labels);
void obj_selector_done(struct obj_selector *sel);
