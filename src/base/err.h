/*
 * err.h: the one table of SwiftCube's domain errors.
 *
 * Fallible functions return int: >= 0 is success, a negative errno is a system
 * failure, and a negative SC_E_* value (above the errno range) is a domain error
 * such as "compacted" or "revision mismatch".  This X-macro list is the single
 * place that gives each domain error its name, its default message and its HTTP
 * status; the API layer turns any return code into a JSON error body from it.
 *
 * Human context (which key, which field, which file offset) travels in a
 * caller-provided struct sc_error, never in a global.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

/*    name              http  wire name                message */
#define SC_ERRORS(X)                                                                               \
    X(NOT_FOUND, 404, "not_found", "not found")                                                    \
    X(INVALID, 400, "invalid_argument", "invalid argument")                                        \
    X(COMPACTED, 410, "compacted", "the requested revision has been compacted")                    \
    X(FUTURE_REV, 400, "future_revision", "the requested revision is newer than the store")        \
    X(REV_MISMATCH, 409, "revision_mismatch", "the object changed since it was read")              \
    X(LEASE_NOT_FOUND, 404, "lease_not_found", "no such lease (expired or revoked)")               \
    X(LEASE_EXISTS, 409, "lease_exists", "a lease with this id already exists")                    \
    X(KEY_TOO_LARGE, 413, "key_too_large", "key is larger than the limit")                         \
    X(VALUE_TOO_LARGE, 413, "value_too_large", "value is larger than the limit")                   \
    X(BODY_TOO_LARGE, 413, "body_too_large", "request body is larger than the limit")              \
    X(TOO_MANY_OPS, 400, "too_many_operations", "transaction has more operations than the limit")  \
    X(TOO_MANY_WATCHES, 429, "too_many_watches", "too many watches on this connection")            \
    X(WATCH_SLOW, 500, "watch_too_slow", "watcher could not keep up and was cut off")              \
    X(NO_SPACE, 507, "no_space", "the store is full")                                              \
    X(CORRUPT, 500, "corrupt", "on-disk data is corrupt")                                          \
    X(NOT_LEADER, 503, "not_leader", "this member is not the leader")                              \
    X(NO_QUORUM, 503, "no_quorum", "this member cannot reach a quorum")                            \
    X(SHUTTING_DOWN, 503, "shutting_down", "the server is shutting down")                          \
    X(METHOD, 405, "method_not_allowed", "method not allowed on this path")                        \
    X(INTERNAL, 500, "internal", "internal error")

enum {
    SC_E_BASE = 4096, /* above every errno value */
#define SC_X_ENUM(name, http, wire, msg) SC_E_##name,
    SC_ERRORS(SC_X_ENUM)
#undef SC_X_ENUM
        SC_E_END
};

/* Context for a failure: a message for humans and, where it applies, the field. */
struct sc_error {
    char msg[256];
    char field[64];
};

/* Fills e (if non-NULL) and returns r unchanged, so callers can write
 * `return sc_error_set(e, -SC_E_INVALID, "key", "key must not be empty");`. */
int sc_error_set(struct sc_error *e, int r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sc_error_clear(struct sc_error *e);

const char *sc_err_name(int r);    /* "compacted", "ENOENT"-like "errno_2" for system errors */
const char *sc_err_message(int r); /* default message */
int sc_err_http_status(int r);     /* 500 for system errors */
