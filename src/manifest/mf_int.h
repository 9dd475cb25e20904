/*
 * mf_int.h: the inside of the manifest library: field paths, the position side
 * table the YAML reader fills, the schema table types and the validator.
 *
 * A field path is built as the reader or validator descends: `.key` for a mapping
 * key that looks like an identifier, `["key"]` for any other key (label keys such
 * as app.kubernetes.io/name contain dots), `[i]` for a sequence item.  The reader
 * and the validator build paths with the same two functions, so a path the
 * validator complains about is found in the side table as the reader stored it.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "manifest/manifest.h"

/* ---- paths ---------------------------------------------------------------------- */

/* Appends a key or an index to a NUL-terminated path in b; returns the old length
 * to give back to mf_path_pop. */
size_t mf_path_key(struct sc_buf *b, const char *key);
size_t mf_path_index(struct sc_buf *b, size_t i);
void mf_path_pop(struct sc_buf *b, size_t len);
const char *mf_path_str(const struct sc_buf *b);

/* ---- positions -------------------------------------------------------------------- */

struct mf_pos {
    char *path;
    unsigned key_line, key_col; /* the key of a mapping entry (= value for items) */
    unsigned line, col;         /* the value */
};

struct mf_posmap {
    struct mf_pos *v;
    size_t n, cap;
};

void mf_posmap_add(struct mf_posmap *m, const char *path, unsigned key_line, unsigned key_col,
                   unsigned line, unsigned col);
/* Position of path (its key when want_key), else of its nearest ancestor that has
 * one; false if none. */
bool mf_posmap_find(const struct mf_posmap *m, const char *path, bool want_key, unsigned *line,
                    unsigned *col);
void mf_posmap_done(struct mf_posmap *m);

/* ---- errors ----------------------------------------------------------------------- */

void mf_error_add(struct manifest_errors *errs, const char *file, unsigned line, unsigned col,
                  const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* ---- the YAML reader -------------------------------------------------------------- */

/* One document as read: a tree and where each of its nodes was. */
struct mf_rawdoc {
    json_t *root; /* NULL for an empty document */
    struct mf_posmap pos;
    unsigned index, line;
};

typedef void (*mf_doc_fn)(void *ud, struct mf_rawdoc *doc);

/* Reads every document of text; calls fn for each complete, well-formed one
 * (fn takes ownership of doc's contents).  Syntax errors go to errs under file;
 * reading stops at the first.  Returns the number of documents read or
 * -SC_E_INVALID. */
int mf_yaml_read(const char *file, const char *text, size_t len, mf_doc_fn fn, void *ud,
                 struct manifest_errors *errs);

/* ---- the schema ------------------------------------------------------------------- */

enum mf_type {
    MF_STR,     /* a string; unit (if any) checks and normalises it */
    MF_INT,     /* an integer within min..max */
    MF_BOOL,    /* true or false */
    MF_QTY,     /* a quantity: unit parses a string or a number into an integer */
    MF_OBJ,     /* a mapping with the fields in children (+ more) */
    MF_LIST,    /* a sequence; children[0] describes an item */
    MF_MAP,     /* a mapping of free keys (checked by key_unit) to children[0] */
    MF_PORTREF, /* a port number or the name of a declared port */
    MF_ANY,     /* anything, not looked into */
};

/* Parses a value v (of any JSON type for MF_QTY, a string for MF_STR); returns a new
 * canonical value or NULL with a reason in why (may stay empty). */
typedef json_t *(*mf_parse_fn)(const json_t *v, char *why, size_t why_size);

struct mf_unit {
    mf_parse_fn parse;
    const char *expect; /* "a CPU quantity like 100m, 0.5 or 2" */
};

struct mf_ctx;
/* A check across the fields of one object, run on its canonical form when every
 * field was valid; reports with mf_report_at. */
typedef void (*mf_check_fn)(struct mf_ctx *c, json_t *obj);

#define MF_REQUIRED 0x1u /* must be present */
#define MF_FILL     0x2u /* absent object: validate {} so its defaults appear */
#define MF_DROP     0x4u /* accepted but not kept in the canonical form */
#define MF_COERCE   0x8u /* MF_STR: an integer or boolean becomes its text */
#define MF_NONEMPTY 0x10u

struct mf_field {
    const char *name;
    enum mf_type type;
    unsigned flags;
    const struct mf_unit *unit;      /* MF_STR / MF_QTY / MF_MAP keys (key_unit) */
    const char *canon;               /* MF_QTY: canonical key ("cpuMillis") */
    const char *const *enums;        /* MF_STR: allowed values, NULL-terminated */
    const struct mf_field *children; /* MF_OBJ fields ({NULL} ends) or the item */
    const struct mf_field *more;     /* MF_OBJ: more fields (compose form) */
    const char *const *unique;       /* MF_LIST of objects: keys unique per list */
    const char *shorthand;           /* MF_OBJ: a string v means {shorthand: v} */
    int64_t min, max;                /* MF_INT / MF_QTY bounds, MF_LIST / MF_MAP sizes */
    const char *def;                 /* default, as JSON text */
    const char *expect;              /* overrides the generated "expected ..." */
    mf_check_fn check;               /* MF_OBJ cross-field check */
};

struct mf_kind {
    const char *name;               /* "Deployment" */
    const struct mf_field *object;  /* kind, apiVersion, metadata, spec, status */
    const struct mf_field *compose; /* the compose-like top level, or NULL */
};

extern const struct mf_kind mf_kinds[];
const struct mf_kind *mf_kind_find(const char *name);

/* ---- the validator ---------------------------------------------------------------- */

struct mf_ctx {
    struct manifest_errors *errs;
    const char *file;            /* NULL for JSON bodies */
    const struct mf_posmap *pos; /* NULL for JSON bodies */
    struct sc_buf path;          /* NUL-terminated */
    const struct mf_field *root; /* the top-level schema, for "belongs under" hints */
    size_t nerr;                 /* errors reported through this context */
};

/* Reports at the current path (its key when at_key), or at a child key of it. */
void mf_report(struct mf_ctx *c, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mf_report_at(struct mf_ctx *c, const char *child, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Validates v against f at the context's current path; a new canonical value or
 * NULL after reporting every problem found. */
json_t *mf_validate(struct mf_ctx *c, const struct mf_field *f, const json_t *v);

/* Validates one document (either shape) into a canonical object of kind (NULL:
 * from the document). */
json_t *mf_validate_doc(struct mf_ctx *c, const char *kind, const json_t *doc);

/* ---- helpers ---------------------------------------------------------------------- */

/* Optimal-string-alignment (Damerau-Levenshtein) distance, capped at cap+1. */
size_t mf_edit_distance(const char *a, const char *b, size_t cap);
/* The candidate closest to word if it is close enough to be a likely typo. */
const char *mf_closest(const char *word, const char *const *cands, size_t n);
/* "'abc'", "-3", "a list", "a mapping", "null" (for error messages). */
void mf_describe(const json_t *v, char *buf, size_t size);

/* Units (units.c). */
extern const struct mf_unit mf_unit_cpu, mf_unit_size, mf_unit_duration, mf_unit_image,
    mf_unit_dns_label, mf_unit_port_name, mf_unit_label_key, mf_unit_label_value, mf_unit_env_name,
    mf_unit_abs_path, mf_unit_http_path, mf_unit_capability, mf_unit_text, mf_unit_ip,
    mf_unit_timestamp, mf_unit_sha256_hex;
