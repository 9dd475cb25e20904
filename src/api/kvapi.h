/*
 * kvapi.h: the JSON face of cubestore, without any server around it.
 *
 * Decoding turns request parts (a path, a query string, a JSON body) into store
 * commands and reads; encoding turns store results into JSON text.  Nothing here
 * touches a socket or the store's state, so every decoder can be fuzzed alone
 * (tests/fuzz/fuzz_api.c) and the server stays a thin dispatcher.
 *
 * Errors name the offending field ("success[1].put.value", "ttl", "rev") and, for
 * bodies that are not JSON, the line and column jansson reports.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/store.h"

/* A decoded request body.  Byte fields of cmd point into memory owned here. */
struct api_body {
    struct store_cmd cmd;
    void *json;      /* the parsed document (jansson), owns the strings */
    uint8_t **owned; /* decoded base64 values */
    size_t nowned;
};
void api_body_done(struct api_body *b);

/* POST /v1/txn body -> a TXN command (validated against l). */
int api_decode_txn(const char *body, size_t len, const struct store_limits *l, struct api_body *ret,
                   struct sc_error *e);
/* POST /v1/leases body {"ttl": N, "id": N?} -> a LEASE_GRANT (id 0 = choose). */
int api_decode_lease_grant(const char *body, size_t len, struct api_body *ret, struct sc_error *e);
/* POST /v1/compact body {"revision": N} -> a COMPACT command. */
int api_decode_compact(const char *body, size_t len, struct api_body *ret, struct sc_error *e);

/* Query strings.  Parsed into a fixed table; values are percent-decoded. */
#define API_QUERY_MAX 16
struct api_query {
    size_t n;
    struct {
        char *name, *value;
        size_t value_len;
    } kv[API_QUERY_MAX];
    char *storage;
};
int api_query_parse(const char *qs, struct api_query *q, struct sc_error *e);
void api_query_done(struct api_query *q);
/* Returns the value or NULL; *len gets its length. */
const char *api_query_get(const struct api_query *q, const char *name, size_t *len);
/* Parses a non-negative integer parameter (def when absent). */
int api_query_int(const struct api_query *q, const char *name, int64_t def, int64_t *ret,
                  struct sc_error *e);
/* A boolean flag: absent, "0" or "false" is false; "", "1" or "true" is true. */
int api_query_bool(const struct api_query *q, const char *name, bool *ret, struct sc_error *e);

/* Percent-decodes src[0..n) into a new buffer (*ret, *ret_len); -SC_E_INVALID on a
 * bad escape. */
int api_percent_decode(const char *src, size_t n, uint8_t **ret, size_t *ret_len);

/* ---- encoding -------------------------------------------------------------- */

/* Appends a JSON string for bytes that are valid UTF-8 (returns 0), or nothing and
 * returns -1 when they are not. */
int api_json_str(struct sc_buf *out, const uint8_t *p, size_t n);
/* Appends `"name":"..."` or, for non-UTF-8 bytes, `"name_base64":"..."`. */
void api_json_bytes_field(struct sc_buf *out, const char *name, const uint8_t *p, size_t n);
void api_json_kv(struct sc_buf *out, const struct store_kv *kv);
/* The body of a store result: {"revision":..,"succeeded":..,"responses":[..]} */
void api_json_txn_result(struct sc_buf *out, const struct store_result *r);
void api_json_range_result(struct sc_buf *out, rev_t rev, const struct store_op_result *r);
/* One watch event line (with the trailing newline). */
void api_json_event(struct sc_buf *out, const struct store_event *ev);
/* {"error":{"code":..,"message":..,"field":..}} for any return code. */
void api_json_error(struct sc_buf *out, int r, const struct sc_error *e);

/* Base64 (RFC 4648, with padding). */
void api_base64_encode(struct sc_buf *out, const uint8_t *p, size_t n);
int api_base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len);
