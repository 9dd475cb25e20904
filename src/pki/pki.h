/*
 * pki.h: the cluster's own certificate authority, the certificates it issues,
 * and the bootstrap tokens a node joins with (issue 7).
 *
 * Design.  One CA per cluster signs every certificate directly (no
 * intermediates): controllers, nodes and admins all present a leaf signed by it,
 * and a peer's identity is the leaf's subject:
 *
 *     role        CN                  O                      extKeyUsage
 *     controller  controller:NAME     swiftcube:controllers  serverAuth, clientAuth
 *     node        node:NAME           swiftcube:nodes        clientAuth (+serverAuth with SANs)
 *     admin       admin               swiftcube:admins       clientAuth
 *
 * (Kubernetes does the same with CN=system:node:NAME, O=system:nodes.)  The CA
 * decides every attribute of what it signs: a CSR contributes only its public
 * key, after its self-signature is checked and its CN is the one the caller
 * allows; requested extensions are never copied, so a CSR asking for CA:TRUE
 * still yields a leaf.
 *
 * Keys are ECDSA P-256 with SHA-256 signatures: every TLS 1.3 stack (OpenSSL,
 * libcurl's OpenSSL and GnuTLS builds, Go) accepts it for client certificates,
 * which Ed25519 still is not everywhere.  Material crosses process boundaries as
 * PEM text (files, HTTP bodies); strings returned by this module are malloc'd
 * and the caller frees them, private keys with pki_secret_free (wipes first).
 *
 * Errors: -SC_E_INVALID for malformed input, -EBADMSG for a CSR whose
 * self-signature does not verify, -EACCES for a CSR asking for a name the caller
 * does not allow, -EKEYREJECTED for a certificate not signed by the CA or a
 * pinned hash that does not match, -EKEYEXPIRED for an expired (or not yet
 * valid) certificate, -ENOKEY where a certificate or key is missing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/types.h>

#include "base/err.h"

#define PKI_HASH_PREFIX  "sha256:"
#define PKI_HASH_STR_LEN (7 + 64) /* "sha256:" + 64 hex digits */
#define PKI_NAME_MAX     63       /* a node or controller name, DNS-label like */
#define PKI_CN_MAX       80
#define PKI_BACKDATE_SEC 300 /* notBefore slack for clock skew between hosts */
#define PKI_MAX_SANS     16
#define PKI_CA_VALIDITY  (10ull * 365 * 24 * 3600)
#define PKI_PEM_MAX      (64 * 1024) /* a file or body larger than this is not ours */

enum pki_role {
    PKI_ROLE_NONE = 0, /* also "any" where a role is expected */
    PKI_ROLE_ADMIN,
    PKI_ROLE_NODE,
    PKI_ROLE_CONTROLLER,
};

/* Who a certificate says its holder is. */
struct pki_identity {
    enum pki_role role; /* NONE when CN and O do not follow the scheme above */
    char name[PKI_NAME_MAX + 1];
    char cn[PKI_CN_MAX + 1];
    char org[PKI_CN_MAX + 1];
    time_t not_before, not_after;
};

/* What the CA puts into a certificate: everything, the CSR has no say. */
struct pki_issue {
    enum pki_role role;
    const char *name;              /* ignored for ADMIN */
    bool server;                   /* add serverAuth (controllers always get it) */
    const char *dns[PKI_MAX_SANS]; /* NULL-terminated if shorter */
    const char *ips[PKI_MAX_SANS]; /* IPv4 or IPv6 text */
    time_t not_before;             /* 0: now; the certificate says PKI_BACKDATE_SEC earlier */
    uint64_t validity_sec;         /* notAfter = not_before + validity_sec */
};

struct pki_ca; /* a CA certificate and, on controllers, its private key */

/* ---- names ------------------------------------------------------------------------------ */

/* Fills id->cn/org/name/role for role and name; -SC_E_INVALID for a bad name. */
int pki_identity_make(enum pki_role role, const char *name, struct pki_identity *ret,
                      struct sc_error *e);
/* A name is 1..63 of [a-z0-9.-], starting and ending with [a-z0-9]. */
bool pki_name_valid(const char *name);
const char *pki_role_name(enum pki_role role);
/* Reads CN, O and validity from a certificate (no verification). */
int pki_identity_from_x509(X509 *cert, struct pki_identity *ret, struct sc_error *e);
int pki_identity_from_pem(const char *cert_pem, struct pki_identity *ret, struct sc_error *e);
/* True once two thirds of the certificate's lifetime have passed. */
bool pki_should_renew(const struct pki_identity *id, time_t now);

/* ---- the CA ----------------------------------------------------------------------------- */

int pki_ca_create(const char *cn, uint64_t validity_sec, struct pki_ca **ret, struct sc_error *e);
/* key_path NULL: certificate only (can verify and pin, cannot sign).  The
 * certificate must be a CA (basicConstraints CA:TRUE) and the key must match it. */
int pki_ca_load(const char *cert_path, const char *key_path, struct pki_ca **ret,
                struct sc_error *e);
/* Writes the certificate (0644) and the key (0600), each atomically (temp + rename). */
int pki_ca_save(const struct pki_ca *ca, const char *cert_path, const char *key_path,
                struct sc_error *e);
/* Loads both files if the certificate exists, else creates and saves a CA:
 * returns 1 when it created one, 0 when it loaded. */
int pki_ca_load_or_create(const char *cert_path, const char *key_path, const char *cn,
                          struct pki_ca **ret, struct sc_error *e);
void pki_ca_free(struct pki_ca *ca);
int pki_ca_cert_pem(const struct pki_ca *ca, char **ret_pem);
X509 *pki_ca_x509(const struct pki_ca *ca); /* borrowed */

/* "sha256:" + hex SHA-256 of the certificate's DER SubjectPublicKeyInfo (kubeadm's
 * discovery-token-ca-cert-hash). */
int pki_ca_hash(const struct pki_ca *ca, char ret[PKI_HASH_STR_LEN + 1]);
int pki_cert_hash(const char *cert_pem, char ret[PKI_HASH_STR_LEN + 1], struct sc_error *e);
/* 0 when cert_pem's key hashes to pinned; -EKEYREJECTED when not; -SC_E_INVALID
 * for a malformed pin or certificate. */
int pki_hash_check(const char *cert_pem, const char *pinned, struct sc_error *e);
/* The same digest as curl's CURLOPT_PINNEDPUBLICKEY wants it: "sha256//BASE64". */
int pki_hash_to_curl_pin(const char *pinned, char *ret, size_t size, struct sc_error *e);

/* ---- issuing ---------------------------------------------------------------------------- */

/* A fresh key and a certificate for it (admin, controllers: the CA side makes both). */
int pki_ca_issue(const struct pki_ca *ca, const struct pki_issue *req, char **ret_key_pem,
                 char **ret_cert_pem, struct sc_error *e);
/* Node side: a fresh key and a CSR for subject id (CN and O). */
int pki_csr_new(const struct pki_identity *id, char **ret_key_pem, char **ret_csr_pem,
                struct sc_error *e);
/* CA side: checks the CSR's self-signature and that its CN is the one req
 * describes, then signs its public key with req's attributes only. */
int pki_ca_sign_csr(const struct pki_ca *ca, const char *csr_pem, const struct pki_issue *req,
                    char **ret_cert_pem, struct sc_error *e);

/* Keeps cert_path/key_path if they still hold a certificate from this CA for
 * req (CN, O, every SAN, serverAuth when wanted, key matches, not due for
 * renewal); otherwise issues a new pair and writes it (key 0600).  Returns 0
 * kept, 1 (re)issued.  For a controller's own certificate and the admin's. */
int pki_ca_ensure_issued(const struct pki_ca *ca, const struct pki_issue *req,
                         const char *cert_path, const char *key_path, struct sc_error *e);

/* Verifies cert_pem against the CA certificate ca_pem at time now (0: the clock)
 * and, if ret, fills the identity.  -EKEYREJECTED, -EKEYEXPIRED as above. */
int pki_cert_verify(const char *ca_pem, const char *cert_pem, time_t now, struct pki_identity *ret,
                    struct sc_error *e);

/* ---- files and secrets ------------------------------------------------------------------ */

/* Writes data to path atomically (temp file, fsync, rename) with the given mode. */
int pki_file_write(const char *path, const char *data, unsigned mode, struct sc_error *e);
/* Reads a whole file of at most PKI_PEM_MAX bytes as a NUL-terminated string. */
int pki_file_read(const char *path, char **ret, struct sc_error *e);
void pki_secret_free(char *s); /* explicit_bzero, then free; NULL is fine */

/* ---- bootstrap tokens (token.c) --------------------------------------------------------- */

#define PKI_TOKEN_ID_LEN     6
#define PKI_TOKEN_SECRET_LEN 16
#define PKI_TOKEN_STR_LEN    (PKI_TOKEN_ID_LEN + 1 + PKI_TOKEN_SECRET_LEN)
#define PKI_TOKEN_HASH_HEX   64

/* What the operator holds: "abcdef.0123456789abcdef" ([a-z0-9]{6}.[a-z0-9]{16}). */
struct pki_token {
    char id[PKI_TOKEN_ID_LEN + 1];
    char secret[PKI_TOKEN_SECRET_LEN + 1];
};
/* What the cluster stores: the id and SHA-256(secret), never the secret. */
struct pki_token_hash {
    char id[PKI_TOKEN_ID_LEN + 1];
    char hash[PKI_TOKEN_HASH_HEX + 1];
};

int pki_token_new(struct pki_token *ret, struct sc_error *e);
void pki_token_format(const struct pki_token *t, char ret[PKI_TOKEN_STR_LEN + 1]);
int pki_token_parse(const char *s, struct pki_token *ret, struct sc_error *e);
void pki_token_hash(const struct pki_token *t, struct pki_token_hash *ret);
/* Validates a stored record read back from the store (id and 64 lowercase hex). */
int pki_token_hash_valid(const struct pki_token_hash *h, struct sc_error *e);
/* 0 when t is the token h was made from; -EACCES otherwise.  The secret's hash
 * is compared in constant time. */
int pki_token_check(const struct pki_token_hash *h, const struct pki_token *t, struct sc_error *e);
