/*
 * tls.h: TLS 1.3 contexts for the cluster's mutual TLS, and the glue that puts
 * them under libevent (evhttp servers and clients, raw bufferevents) and libcurl.
 *
 * Design.  One SSL_CTX per role and listener, built once at start from PEM files
 * the PKI wrote (src/pki): the cluster CA, this process's certificate and key.
 *
 *   server, NET_TLS_CLIENT_REQUIRED  every API and peer listener: a client
 *                                    without a certificate signed by the CA never
 *                                    completes the handshake
 *   server, NET_TLS_CLIENT_OPTIONAL  the join endpoint: a node without a
 *                                    certificate yet may connect (it shows a
 *                                    bootstrap token instead); one that shows a
 *                                    certificate must still show a valid one
 *   client                           verifies the server against the CA and the
 *                                    host name or IP it dialled; presents its
 *                                    own certificate when it has one
 *
 * Only TLS 1.3 is offered or accepted.  A context may also require the peer's
 * leaf to carry a role (pki.h's CN/O scheme): the Raft peer listener accepts
 * only controller:NAME, whatever the CA signed, so a node certificate cannot
 * pose as a controller.  Identity is read from the verified peer certificate of
 * each connection (net_tls_peer_identity); nothing is cached across connections.
 *
 * Invariants.
 *   1. A bufferevent this module makes for a server is never plaintext: if it
 *      cannot make the SSL object it aborts (evhttp would fall back to a plain
 *      socket on NULL).
 *   2. A peer identity is returned only when the handshake verified the chain
 *      (SSL_get_verify_result == X509_V_OK) and a certificate was presented.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "base/err.h"
#include "pki/pki.h"

struct bufferevent;
struct event_base;
struct evhttp_connection;
struct evhttp_request;

/* PEM file paths; cert and key are optional for a client. */
struct net_tls_files {
    const char *ca;
    const char *cert;
    const char *key;
};

enum net_tls_client_auth {
    NET_TLS_CLIENT_REQUIRED = 0,
    NET_TLS_CLIENT_OPTIONAL,
};

/* peer_role: PKI_ROLE_NONE accepts any certificate the CA signed; any other role
 * makes the handshake fail unless the peer's leaf has it. */
int net_tls_server_ctx_new(const struct net_tls_files *f, enum net_tls_client_auth auth,
                           enum pki_role peer_role, SSL_CTX **ret, struct sc_error *e);
int net_tls_client_ctx_new(const struct net_tls_files *f, enum pki_role peer_role, SSL_CTX **ret,
                           struct sc_error *e);

/* A client SSL that verifies host (a DNS name, or an IPv4/IPv6 literal checked
 * against the IP SANs) and sends it as SNI when it is a name.  host NULL: only
 * the chain and the role are checked (Raft peers, identified by role and name). */
int net_tls_client_ssl_new(SSL_CTX *ctx, const char *host, SSL **ret, struct sc_error *e);

/* The verified peer's identity: -ENOKEY when it showed no certificate,
 * -EKEYREJECTED when verification did not succeed. */
int net_tls_peer_identity(SSL *ssl, struct pki_identity *ret, struct sc_error *e);

/* A handshake that ended with a fatal alert: sent (this side refused the peer) or
 * received (the peer refused this side). */
struct net_tls_refusal {
    bool sent;
    char peer[64];                 /* "ADDR:PORT" */
    char subject[PKI_CN_MAX + 64]; /* the refused certificate's CN (+ ", not a ROLE"), or "" */
    char reason[192];              /* "sent alert 'certificate required'", + the verify error */
};
typedef void (*net_tls_refused_fn)(void *ud, const struct net_tls_refusal *r);
/* Calls fn (on the thread running the handshake) for every fatal alert on
 * connections of ctx, so the daemon can log each refusal once.  fn NULL: none. */
void net_tls_on_refused(SSL_CTX *ctx, net_tls_refused_fn fn, void *ud);

/* ---- libevent --------------------------------------------------------------------------- */

/* For evhttp_set_bevcb(http, net_tls_evhttp_bevcb, server_ctx). */
struct bufferevent *net_tls_evhttp_bevcb(struct event_base *base, void *ssl_ctx);
/* The identity behind a request on a TLS evhttp server (as net_tls_peer_identity);
 * -ENOTCONN when the request did not come over TLS. */
int net_tls_evhttp_identity(struct evhttp_request *req, struct pki_identity *ret,
                            struct sc_error *e);
/* An evhttp client connection to host:port over TLS (evhttp_connection_base_new's
 * TLS twin).  NULL on failure, with e filled. */
struct evhttp_connection *net_tls_evhttp_connection_new(struct event_base *base, SSL_CTX *ctx,
                                                        const char *host, uint16_t port,
                                                        struct sc_error *e);
/* A bufferevent over fd (-1: connect later with bufferevent_socket_connect):
 * accepting side when accepted, else connecting (host as net_tls_client_ssl_new).
 * Fits peer_sock_ops.wrap. */
struct bufferevent *net_tls_bev_new(struct event_base *base, SSL_CTX *ctx, int fd, bool accepted,
                                    const char *host);
