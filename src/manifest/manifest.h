/*
 * manifest.h: SwiftCube manifests: YAML files in, validated canonical JSON objects
 * out, and one schema that checks both manifests and JSON API bodies.
 *
 * Why one library: the CLI (sctl apply) and the server (sctld's objects API) must
 * agree on what a Deployment is.  sctl reads YAML (libyaml) and sends the canonical
 * JSON; sctld validates the body again with the same table and stores the same
 * canonical bytes.  Following wireguard-tools' parse -> validate -> apply split,
 * nothing here has a side effect: the caller applies a set only when loading it
 * returned 0, so a set is all-or-nothing.
 *
 * Reading (manifest_load, manifest_load_paths, manifest_load_buffer):
 *   a file (one or more `---`-separated documents), a directory (its *.yaml and
 *   *.yml files, sorted by name, not recursive) or "-" (stdin).  Each document is
 *   converted to a jansson tree; a side table remembers the file:line:column of
 *   every key and value by field path, e.g. `ports[0].container`.  Empty
 *   documents are skipped.  Two document shapes are accepted:
 *     compose-like (the design note's §10):  app: NAME, labels, then spec fields
 *     object-like (what the API stores):     kind, metadata {name, labels}, spec
 *   Both give the same canonical object (docs/manifest.md shows its shape).
 *
 * Validation (manifest_validate_json for API bodies, and inside manifest_load):
 *   one table of fields in schema.c (name, type, required, unit parser, enum values,
 *   children, default).  Every error says what was expected and what was found;
 *   unknown fields get the closest known name; all errors of a set are collected
 *   (up to MANIFEST_MAX_ERRORS).  An error prints as
 *     manifests:  FILE:LINE:COL: PATH: MESSAGE     (web.yaml:3:11: replicas: ...)
 *     API bodies: PATH: MESSAGE                    (spec.replicas: expected ...)
 *
 * Canonical form: quantities become integers under names that carry their unit
 * (cpu: 100m -> cpuMillis: 100, memory: 64Mi -> memoryBytes: 67108864, period: 1s
 * -> periodMs: 1000); the unit strings are not kept.  Defaults are filled in.
 * Validating a canonical object again gives it back unchanged (a fixed point), so
 * an object read from the API can be sent back as it is.  manifest_dump gives the
 * canonical bytes (sorted keys, compact) that the server stores.
 *
 * Errors: functions return 0 or a negative errno / -SC_E_*; -SC_E_INVALID means
 * "see errs".  No function logs; the caller prints errs once.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

#define MANIFEST_MAX_ERRORS     100        /* further errors are counted, not kept */
#define MANIFEST_MAX_FILE_BYTES (4u << 20) /* one manifest file */
#define MANIFEST_MAX_DOCS       1000       /* documents in one set */
#define MANIFEST_MAX_DEPTH      64         /* nesting of mappings and sequences */
#define MANIFEST_MAX_NODES      100000     /* nodes of one document, aliases expanded */
#define MANIFEST_MAX_FILES      1000       /* files of one directory */

/* One problem, with where it is.  file is NULL (and line, col 0) for JSON bodies
 * validated without positions; path is "" for a problem with the whole document
 * (e.g. a YAML syntax error). */
struct manifest_error {
    char *file;
    unsigned line, col; /* 1-based; 0 when unknown */
    char *path;         /* field path, "spec.ports[0].container" */
    char *msg;          /* "expected an integer between 1 and 65535, got 70000" */
};

struct manifest_errors {
    struct manifest_error *v;
    size_t n, cap;
    size_t dropped; /* errors beyond MANIFEST_MAX_ERRORS */
};

/* One valid document of a set. */
struct manifest_doc {
    char *file;       /* as given ("-" is shown as "<stdin>") */
    unsigned index;   /* 0-based document number within file */
    unsigned line;    /* where the document starts (1-based) */
    json_t *object;   /* the canonical object, owned */
    const char *kind; /* borrowed from object: "Deployment" */
    const char *name; /* borrowed from object: metadata.name */
};

struct manifest_set {
    struct manifest_doc *docs;
    size_t n, cap;
};

/* Reads and validates path (a file, a directory or "-").  Returns 0 with *out
 * filled when every document is valid; otherwise -SC_E_INVALID (or -errno when a
 * file could not be read, which is also in errs) with *out empty and every error
 * found in errs.  out and errs must be zeroed (or done) by the caller. */
int manifest_load(const char *path, struct manifest_set *out, struct manifest_errors *errs);
/* The same for several paths (sctl apply -f a.yaml -f dir/): one set, one verdict. */
int manifest_load_paths(const char *const *paths, size_t n, struct manifest_set *out,
                        struct manifest_errors *errs);
/* The same for text already in memory; name is what errors call the file. */
int manifest_load_buffer(const char *name, const char *text, size_t len, struct manifest_set *out,
                         struct manifest_errors *errs);

/* Validates an API body that is already a jansson tree.  kind may be NULL (then
 * the body's "kind" decides) or "Deployment" (then a body without kind is taken as
 * that kind, and another kind is an error).  Both document shapes are accepted.
 * On success *ret is a new canonical object; on failure *ret is untouched and errs
 * names field paths only. */
int manifest_validate_json(const char *kind, const json_t *body, json_t **ret,
                           struct manifest_errors *errs);
/* Parses and validates a JSON body (duplicate keys rejected; a JSON syntax error
 * names line:column of the body). */
int manifest_parse_json(const char *kind, const char *body, size_t len, json_t **ret,
                        struct manifest_errors *errs);

/* The canonical bytes of an object: sorted keys, compact, no trailing newline.
 * The caller frees. */
char *manifest_dump(const json_t *object);

/* Is kind one this library validates?  ("Deployment") */
bool manifest_kind_known(const char *kind);

void manifest_set_done(struct manifest_set *set);
void manifest_errors_done(struct manifest_errors *errs);

/* "FILE:LINE:COL: PATH: MSG" or "PATH: MSG" into buf (truncated, always NUL-
 * terminated); returns the untruncated length like snprintf. */
int manifest_error_format(const struct manifest_error *err, char *buf, size_t size);
/* Every error, one per line, then "... and N more errors" when some were dropped. */
void manifest_errors_print(const struct manifest_errors *errs, FILE *f);

/* Quantity parsers and formatters, shared with the CLI (`sctl scale`, `get -o wide`).
 * The parsers return 0 or -SC_E_INVALID with a reason in why (may be NULL). */
int manifest_parse_cpu(const char *s, int64_t *ret_millis, char *why, size_t why_size);
int manifest_parse_size(const char *s, int64_t *ret_bytes, char *why, size_t why_size);
int manifest_parse_duration(const char *s, int64_t *ret_ms, char *why, size_t why_size);
/* 100 -> "100m", 2000 -> "2"; 67108864 -> "64Mi", 1000 -> "1k"; 1500 -> "1500ms", 90000 -> "90s".
 */
void manifest_format_cpu(int64_t millis, char buf[32]);
void manifest_format_size(int64_t bytes, char buf[32]);
void manifest_format_duration(int64_t ms, char buf[32]);
