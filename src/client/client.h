/*
 * client.h: the one HTTP client of sctld's API, shared by sctl and slet.
 *
 * Why a library: both the CLI and the node agent speak the same REST + NDJSON
 * API, and both will move to mutual TLS with the node-join issue.  Keeping the
 * transport here (libcurl, which both binaries already need for registries)
 * means TLS, timeouts, keep-alive and error decoding are written once.
 *
 * https:// servers get TLS 1.3 with the cluster CA as the only trust anchor and
 * the client's certificate (net_tls_curl_setup); the host name or IP of the URL
 * must be in the server certificate's SANs.
 *
 * Shape: a client holds one libcurl easy handle, so requests on it reuse one
 * keep-alive connection; it is not thread-safe (one per thread).  A request
 * returns 0 whenever the server answered, whatever the status; the status, the
 * body and the decoded error ({"error":{"code","message","field"}}) are in the
 * reply.  A negative return means no answer: -ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH or -EIO, with curl's words in the sc_error.
 *
 * Streams (watches, logs -f) are read line by line through a callback; the
 * callback returns non-zero to end the stream early.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

struct sc_client;

struct sc_client_opts {
    /* http://HOST:PORT or https://HOST:PORT, or several separated by commas (the
     * controllers): a request that cannot have taken effect (no connection, 503
     * for want of a quorum or leader; a GET also after a timeout) is tried on the
     * next one, which then keeps the requests. */
    const char *server;
    /* PEM files for https:// servers (mutual TLS, docs/pki.md): the cluster CA
     * (required with https, the only trust anchor) and this client's certificate
     * and key (both or neither).  Copied; unused for http://. */
    const char *ca, *cert, *key;
    long connect_timeout_ms; /* 0: 3,000 */
    long timeout_ms;         /* a whole request; 0: 30,000; streams have none */
    /* every request of this client may be sent twice (slet's heartbeat): a
     * timeout also moves it to the next server */
    bool idempotent;
};

struct sc_reply {
    long status;        /* HTTP status */
    struct sc_buf body; /* raw body (not NUL-terminated unless text; see sc_reply_text) */
    uint64_t revision;  /* X-Sc-Revision, 0 if absent */
    char code[64];      /* error.code of a JSON error body, "" otherwise */
    char message[512];  /* error.message, or the body's first line for a non-JSON error */
    char field[128];    /* error.field, "" if none */
};

/* Checks the server URL (scheme, host, port) and prepares a handle. */
int sc_client_new(const struct sc_client_opts *o, struct sc_client **out, struct sc_error *e);
void sc_client_free(struct sc_client *c);
/* The server requests go to now (one of the list). */
const char *sc_client_server(const struct sc_client *c);

/* One request.  path starts with '/' and is already escaped (sc_client_escape);
 * body may be NULL.  The reply is reset first; free it with sc_reply_free. */
int sc_client_do(struct sc_client *c, const char *method, const char *path, const void *body,
                 size_t len, struct sc_reply *r, struct sc_error *e);

/* A streaming GET: fn gets every complete line (without '\n') as it arrives.
 * On a non-2xx answer no line is passed and the reply holds the error. */
typedef int (*sc_client_line_fn)(void *arg, const char *line, size_t len);
int sc_client_stream(struct sc_client *c, const char *path, sc_client_line_fn fn, void *arg,
                     struct sc_reply *r, struct sc_error *e);
/* The same for bytes that are not lines (logs): fn gets each piece of a 2xx body
 * as it arrives, returns non-zero to end the stream early (which is then no error). */
typedef int (*sc_client_bytes_fn)(void *arg, const void *data, size_t len);
int sc_client_stream_bytes(struct sc_client *c, const char *path, sc_client_bytes_fn fn, void *arg,
                           struct sc_reply *r, struct sc_error *e);

void sc_reply_free(struct sc_reply *r);
/* The body as a NUL-terminated string (appends a NUL once, not counted in len). */
const char *sc_reply_text(struct sc_reply *r);

/* Percent-encodes s for a path segment or query value ('/' kept when keep_slash). */
void sc_client_escape(struct sc_buf *out, const char *s, int keep_slash);
