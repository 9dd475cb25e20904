/*
 * pki.c: the cluster CA, certificate issuing, CSR signing, pinning and
 * verification (see pki.h for the naming scheme and the error codes).
 *
 * OpenSSL 3, EVP and X509 APIs only.  Every certificate is built here from a
 * struct pki_issue by one function, build_cert(): the CA path and the CSR path
 * differ only in where the public key comes from, so a CSR cannot smuggle in an
 * extension, a subject attribute or a validity period.  Serial numbers are 128
 * random bits (RFC 5280 allows up to 20 octets), so two controllers sharing a CA
 * never need to coordinate a counter.
 */
#include "pki/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/util.h"
#include "pki/pki_int.h"

static int ssl_err(struct sc_error *e, int r, const char *what)
{
    char buf[160] = "unknown OpenSSL error";
    unsigned long code = ERR_peek_last_error();
    if (code)
        ERR_error_string_n(code, buf, sizeof(buf));
    ERR_clear_error();
    return sc_error_set(e, r, "pki", "%s: %s", what, buf);
}

struct pki_ca {
    X509 *cert;
    EVP_PKEY *key; /* NULL: verify-only */
};

/* ---- names ------------------------------------------------------------------------------ */

static const struct {
    const char *cn_prefix, *org, *name;
} roles[] = {
    [PKI_ROLE_NONE] = {NULL, NULL, "none"},
    [PKI_ROLE_ADMIN] = {"admin", "swiftcube:admins", "admin"},
    [PKI_ROLE_NODE] = {"node:", "swiftcube:nodes", "node"},
    [PKI_ROLE_CONTROLLER] = {"controller:", "swiftcube:controllers", "controller"},
};

const char *pki_role_name(enum pki_role role)
{
    return (unsigned)role < ELEMENTSOF(roles) ? roles[role].name : "none";
}

static bool alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool pki_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > PKI_NAME_MAX || !alnum_lower(name[0]) || !alnum_lower(name[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_lower(name[i]) && name[i] != '-' && name[i] != '.')
            return false;
    return true;
}

int pki_identity_make(enum pki_role role, const char *name, struct pki_identity *ret,
                      struct sc_error *e)
{
    struct pki_identity id = {.role = role};
    if (role == PKI_ROLE_ADMIN) {
        snprintf(id.cn, sizeof(id.cn), "admin");
    } else if (role == PKI_ROLE_NODE || role == PKI_ROLE_CONTROLLER) {
        if (!pki_name_valid(name))
            return sc_error_set(e, -SC_E_INVALID, "name",
                                "name '%s' must be 1-%d of [a-z0-9.-], starting and ending "
                                "with a letter or digit",
                                name ? name : "", PKI_NAME_MAX);
        snprintf(id.name, sizeof(id.name), "%s", name);
        snprintf(id.cn, sizeof(id.cn), "%s%s", roles[role].cn_prefix, name);
    } else {
        return sc_error_set(e, -SC_E_INVALID, "role", "no such role");
    }
    snprintf(id.org, sizeof(id.org), "%s", roles[role].org);
    *ret = id;
    return 0;
}

/* The single value of nid in name as UTF-8; -ENOENT when absent, -SC_E_INVALID when
 * repeated, too long or carrying a NUL. */
static int name_get(const X509_NAME *name, int nid, char *out, size_t size)
{
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0)
        return -ENOENT;
    if (X509_NAME_get_index_by_NID(name, nid, i) >= 0)
        return -SC_E_INVALID;
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (n < 0)
        return -SC_E_INVALID;
    int r = ((size_t)n >= size || strlen((char *)u) != (size_t)n) ? -SC_E_INVALID : 0;
    if (r == 0)
        memcpy(out, u, (size_t)n + 1);
    OPENSSL_free(u);
    return r;
}

static time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm = {0};
    return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

/* The role the subject claims, when CN and O agree with the scheme. */
static void identity_classify(struct pki_identity *id)
{
    id->role = PKI_ROLE_NONE;
    id->name[0] = '\0';
    for (size_t r = PKI_ROLE_ADMIN; r < ELEMENTSOF(roles); r++) {
        if (strcmp(id->org, roles[r].org) != 0)
            continue;
        size_t pl = strlen(roles[r].cn_prefix);
        if (r == PKI_ROLE_ADMIN) {
            if (strcmp(id->cn, "admin") == 0)
                id->role = r;
        } else if (strncmp(id->cn, roles[r].cn_prefix, pl) == 0 && pki_name_valid(id->cn + pl)) {
            id->role = r;
            memcpy(id->name, id->cn + pl, strlen(id->cn + pl) + 1); /* valid: <= 63 */
        }
    }
}

int pki_identity_from_x509(X509 *cert, struct pki_identity *ret, struct sc_error *e)
{
    struct pki_identity id = {0};
    const X509_NAME *subj = X509_get_subject_name(cert);
    int r = name_get(subj, NID_commonName, id.cn, sizeof(id.cn));
    if (r < 0)
        ERR_clear_error();
    if (r < 0)
        return sc_error_set(e, -SC_E_INVALID, "cert",
                            "certificate subject needs exactly one CN of at most %d bytes",
                            PKI_CN_MAX);
    r = name_get(subj, NID_organizationName, id.org, sizeof(id.org));
    if (r < 0)
        ERR_clear_error();
    if (r < 0 && r != -ENOENT)
        return sc_error_set(e, -SC_E_INVALID, "cert", "certificate has a malformed O");
    identity_classify(&id);
    id.not_before = asn1_time(X509_get0_notBefore(cert));
    id.not_after = asn1_time(X509_get0_notAfter(cert));
    *ret = id;
    return 0;
}

int pki_pem_to_x509(const char *pem, X509 **ret, struct sc_error *e)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b)
        sc_oom();
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!x)
        return ssl_err(e, -SC_E_INVALID, "read PEM certificate");
    *ret = x;
    return 0;
}

int pki_identity_from_pem(const char *cert_pem, struct pki_identity *ret, struct sc_error *e)
{
    X509 *x = NULL;
    int r = pki_pem_to_x509(cert_pem, &x, e);
    if (r < 0)
        return r;
    r = pki_identity_from_x509(x, ret, e);
    X509_free(x);
    return r;
}

bool pki_should_renew(const struct pki_identity *id, time_t now)
{
    time_t life = id->not_after - id->not_before;
    return now >= id->not_before + life / 3 * 2;
}

/* ---- PEM in memory ---------------------------------------------------------------------- */

static char *bio_to_string(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

static int x509_to_pem(X509 *x, char **ret)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || PEM_write_bio_X509(b, x) != 1)
        sc_oom();
    *ret = bio_to_string(b);
    BIO_free(b);
    return 0;
}

static int key_to_pem(EVP_PKEY *k, char **ret)
{
    BIO *b = BIO_new(BIO_s_secmem());
    if (!b || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1)
        sc_oom();
    *ret = bio_to_string(b);
    BIO_free(b); /* a secmem BIO clears its buffer */
    return 0;
}

static int key_new(EVP_PKEY **ret, struct sc_error *e)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!k)
        return ssl_err(e, -SC_E_INTERNAL, "generate P-256 key");
    *ret = k;
    return 0;
}

/* ECDSA and RSA CAs sign with SHA-256; an Ed25519 one (an operator's) with none. */
static const EVP_MD *sign_md(EVP_PKEY *k)
{
    return EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448") ? NULL : EVP_sha256();
}

/* ---- building certificates -------------------------------------------------------------- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX c;
    X509V3_set_ctx(&c, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &c, nid, value);
    if (!ext)
        return -SC_E_INTERNAL;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -SC_E_INTERNAL;
}

static bool dns_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_lower(s[i]) && s[i] != '-' && s[i] != '.' && !(s[i] == '*' && i == 0))
            return false;
    return true;
}

/* subjectAltName built as GENERAL_NAMEs, not as a config string, so that no name
 * can inject another entry with a comma. */
static int add_sans(X509 *x, const struct pki_issue *req, struct sc_error *e)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int r = 0;
    for (size_t i = 0; i < PKI_MAX_SANS && req->dns[i] && r == 0; i++) {
        if (!dns_valid(req->dns[i])) {
            r = sc_error_set(e, -SC_E_INVALID, "dns", "'%s' is not a DNS name", req->dns[i]);
            break;
        }
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ASN1_STRING_set(s, req->dns[i], -1);
        GENERAL_NAME *g = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        sk_GENERAL_NAME_push(gens, g);
    }
    for (size_t i = 0; i < PKI_MAX_SANS && req->ips[i] && r == 0; i++) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(req->ips[i]);
        if (!ip) {
            ERR_clear_error();
            r = sc_error_set(e, -SC_E_INVALID, "ip", "'%s' is not an IP address", req->ips[i]);
            break;
        }
        GENERAL_NAME *g = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        sk_GENERAL_NAME_push(gens, g);
    }
    if (r == 0 && sk_GENERAL_NAME_num(gens) > 0 &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
        r = ssl_err(e, -SC_E_INTERNAL, "subjectAltName");
    GENERAL_NAMES_free(gens);
    return r;
}

static int set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int r = -SC_E_INTERNAL;
    if (bn && BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        r = 0;
    BN_free(bn);
    return r;
}

static int set_subject(X509_NAME *n, const char *cn, const char *org)
{
    if (org && X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1,
                                          0) != 1)
        return -SC_E_INTERNAL;
    if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) !=
        1)
        return -SC_E_INTERNAL;
    return 0;
}

/* The one place a certificate is made.  ca NULL: self-signed CA for key. */
static int build_cert(const struct pki_ca *ca, EVP_PKEY *pub, EVP_PKEY *self_key, const char *cn,
                      const char *org, const struct pki_issue *req, X509 **ret, struct sc_error *e)
{
    if (req->validity_sec == 0 || req->validity_sec > 100ull * 365 * 24 * 3600)
        return sc_error_set(e, -SC_E_INVALID, "validity", "validity must be 1 s to 100 years");
    X509 *x = X509_new();
    if (!x)
        sc_oom();
    X509 *issuer = ca ? ca->cert : x;
    EVP_PKEY *signer = ca ? ca->key : self_key;
    time_t start = req->not_before ? req->not_before : time(NULL);
    int r = 0;
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) < 0 ||
        !X509_time_adj_ex(X509_getm_notBefore(x), 0, -PKI_BACKDATE_SEC, &start) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)req->validity_sec, &start) ||
        X509_set_pubkey(x, pub) != 1 || set_subject(X509_get_subject_name(x), cn, org) < 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(issuer)) != 1) {
        r = ssl_err(e, -SC_E_INTERNAL, "build certificate");
        goto out;
    }
    /* a leaf never outlives its CA (it could not verify past it anyway) */
    if (ca && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca->cert)) > 0 &&
        X509_set1_notAfter(x, X509_get0_notAfter(ca->cert)) != 1) {
        r = ssl_err(e, -SC_E_INTERNAL, "clamp notAfter");
        goto out;
    }
    bool is_ca = !ca;
    bool server = req->server || req->role == PKI_ROLE_CONTROLLER;
    if (add_ext(x, issuer, NID_basic_constraints,
                is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") ||
        add_ext(x, issuer, NID_key_usage,
                is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") ||
        add_ext(x, issuer, NID_subject_key_identifier, "hash") ||
        (!is_ca && add_ext(x, issuer, NID_authority_key_identifier, "keyid:always")) ||
        (!is_ca &&
         add_ext(x, issuer, NID_ext_key_usage, server ? "serverAuth,clientAuth" : "clientAuth"))) {
        r = ssl_err(e, -SC_E_INTERNAL, "certificate extensions");
        goto out;
    }
    if (!is_ca && (r = add_sans(x, req, e)) < 0)
        goto out;
    if (X509_sign(x, signer, sign_md(signer)) <= 0) {
        r = ssl_err(e, -SC_E_INTERNAL, "sign certificate");
        goto out;
    }
    *ret = TAKE_PTR(x);
out:
    X509_free(x);
    return r;
}

/* ---- the CA ----------------------------------------------------------------------------- */

int pki_ca_create(const char *cn, uint64_t validity_sec, struct pki_ca **ret, struct sc_error *e)
{
    if (!cn || !*cn || strlen(cn) > PKI_CN_MAX)
        return sc_error_set(e, -SC_E_INVALID, "cn", "CA name must be 1-%d bytes", PKI_CN_MAX);
    EVP_PKEY *k = NULL;
    int r = key_new(&k, e);
    if (r < 0)
        return r;
    struct pki_issue req = {.validity_sec = validity_sec ? validity_sec : PKI_CA_VALIDITY};
    X509 *x = NULL;
    r = build_cert(NULL, k, k, cn, "swiftcube", &req, &x, e);
    if (r < 0) {
        EVP_PKEY_free(k);
        return r;
    }
    struct pki_ca *ca = xcalloc(1, sizeof(*ca));
    ca->cert = x;
    ca->key = k;
    *ret = ca;
    return 0;
}

void pki_ca_free(struct pki_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

X509 *pki_ca_x509(const struct pki_ca *ca)
{
    return ca->cert;
}

int pki_ca_cert_pem(const struct pki_ca *ca, char **ret_pem)
{
    return x509_to_pem(ca->cert, ret_pem);
}

int pki_pem_to_key(const char *pem, EVP_PKEY **ret, struct sc_error *e)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b)
        sc_oom();
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k)
        return ssl_err(e, -SC_E_INVALID, "read PEM private key");
    *ret = k;
    return 0;
}

int pki_ca_load(const char *cert_path, const char *key_path, struct pki_ca **ret,
                struct sc_error *e)
{
    char *pem = NULL, *kpem = NULL;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int r = pki_file_read(cert_path, &pem, e);
    if (r < 0)
        return r;
    if ((r = pki_pem_to_x509(pem, &x, e)) < 0)
        goto out;
    if (X509_check_ca(x) < 1) {
        r = sc_error_set(e, -SC_E_INVALID, "ca", "%s is not a CA certificate", cert_path);
        goto out;
    }
    if (key_path) {
        if ((r = pki_file_read(key_path, &kpem, e)) < 0 || (r = pki_pem_to_key(kpem, &k, e)) < 0)
            goto out;
        if (X509_check_private_key(x, k) != 1) {
            r = ssl_err(e, -SC_E_INVALID, "CA key does not match the CA certificate");
            goto out;
        }
    }
    struct pki_ca *ca = xcalloc(1, sizeof(*ca));
    ca->cert = TAKE_PTR(x);
    ca->key = TAKE_PTR(k);
    *ret = ca;
out:
    free(pem);
    pki_secret_free(kpem);
    X509_free(x);
    EVP_PKEY_free(k);
    return r;
}

int pki_ca_save(const struct pki_ca *ca, const char *cert_path, const char *key_path,
                struct sc_error *e)
{
    char *pem = NULL;
    int r = 0;
    if (key_path) {
        if (!ca->key)
            return sc_error_set(e, -ENOKEY, "ca", "this CA has no private key to save");
        key_to_pem(ca->key, &pem);
        r = pki_file_write(key_path, pem, 0600, e);
        pki_secret_free(pem);
        if (r < 0)
            return r;
    }
    x509_to_pem(ca->cert, &pem);
    r = pki_file_write(cert_path, pem, 0644, e);
    free(pem);
    return r;
}

int pki_ca_load_or_create(const char *cert_path, const char *key_path, const char *cn,
                          struct pki_ca **ret, struct sc_error *e)
{
    if (access(cert_path, F_OK) == 0)
        return pki_ca_load(cert_path, key_path, ret, e);
    if (errno != ENOENT)
        return sc_error_set(e, -errno, "ca", "%s: %m", cert_path);
    struct pki_ca *ca = NULL;
    int r = pki_ca_create(cn, 0, &ca, e);
    if (r < 0)
        return r;
    if ((r = pki_ca_save(ca, cert_path, key_path, e)) < 0) {
        pki_ca_free(ca);
        return r;
    }
    *ret = ca;
    return 1;
}

/* ---- pinning ---------------------------------------------------------------------------- */

static int spki_sha256(X509 *x, uint8_t d[32])
{
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n <= 0)
        return -SC_E_INTERNAL;
    unsigned dl = 32;
    int ok = EVP_Digest(der, (size_t)n, d, &dl, EVP_sha256(), NULL);
    OPENSSL_free(der);
    return ok == 1 ? 0 : -SC_E_INTERNAL;
}

static int hash_of(X509 *x, char ret[PKI_HASH_STR_LEN + 1])
{
    uint8_t d[32];
    int r = spki_sha256(x, d);
    if (r < 0)
        return r;
    memcpy(ret, PKI_HASH_PREFIX, 7);
    for (size_t i = 0; i < 32; i++)
        snprintf(ret + 7 + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int pki_ca_hash(const struct pki_ca *ca, char ret[PKI_HASH_STR_LEN + 1])
{
    return hash_of(ca->cert, ret);
}

int pki_cert_hash(const char *cert_pem, char ret[PKI_HASH_STR_LEN + 1], struct sc_error *e)
{
    X509 *x = NULL;
    int r = pki_pem_to_x509(cert_pem, &x, e);
    if (r < 0)
        return r;
    r = hash_of(x, ret);
    X509_free(x);
    return r;
}

/* Parses "sha256:" + 64 hex digits (either case) into the digest. */
static int pin_parse(const char *pinned, uint8_t d[32], struct sc_error *e)
{
    if (!pinned || strncmp(pinned, PKI_HASH_PREFIX, 7) != 0 || strlen(pinned) != PKI_HASH_STR_LEN)
        return sc_error_set(e, -SC_E_INVALID, "ca-hash",
                            "CA hash must be 'sha256:' followed by 64 hex digits");
    for (size_t i = 0; i < 32; i++) {
        int hi = sc_hexval(pinned[7 + 2 * i]), lo = sc_hexval(pinned[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return sc_error_set(e, -SC_E_INVALID, "ca-hash", "CA hash has a non-hex digit");
        d[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int pki_hash_check(const char *cert_pem, const char *pinned, struct sc_error *e)
{
    uint8_t want[32], got[32];
    int r = pin_parse(pinned, want, e);
    if (r < 0)
        return r;
    X509 *x = NULL;
    if ((r = pki_pem_to_x509(cert_pem, &x, e)) < 0)
        return r;
    r = spki_sha256(x, got);
    X509_free(x);
    if (r < 0)
        return sc_error_set(e, r, "ca-hash", "cannot hash the certificate's public key");
    if (CRYPTO_memcmp(want, got, 32) != 0)
        return sc_error_set(e, -EKEYREJECTED, "ca-hash",
                            "the cluster CA's public key does not match the pinned hash");
    return 0;
}

int pki_hash_to_curl_pin(const char *pinned, char *ret, size_t size, struct sc_error *e)
{
    uint8_t d[32];
    int r = pin_parse(pinned, d, e);
    if (r < 0)
        return r;
    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, d, 32);
    if (snprintf(ret, size, "sha256//%.*s", n, b64) >= (int)size)
        return sc_error_set(e, -ENOBUFS, "ca-hash", "pin buffer too small");
    return 0;
}

/* ---- issuing ---------------------------------------------------------------------------- */

static int issue_for(const struct pki_ca *ca, EVP_PKEY *pub, const struct pki_issue *req,
                     char **ret_cert_pem, struct sc_error *e)
{
    if (!ca->key)
        return sc_error_set(e, -ENOKEY, "ca", "this CA has no private key (not a controller?)");
    struct pki_identity id;
    int r = pki_identity_make(req->role, req->name, &id, e);
    if (r < 0)
        return r;
    X509 *x = NULL;
    if ((r = build_cert(ca, pub, NULL, id.cn, id.org, req, &x, e)) < 0)
        return r;
    x509_to_pem(x, ret_cert_pem);
    X509_free(x);
    return 0;
}

int pki_ca_issue(const struct pki_ca *ca, const struct pki_issue *req, char **ret_key_pem,
                 char **ret_cert_pem, struct sc_error *e)
{
    EVP_PKEY *k = NULL;
    int r = key_new(&k, e);
    if (r < 0)
        return r;
    char *cert = NULL;
    if ((r = issue_for(ca, k, req, &cert, e)) == 0) {
        key_to_pem(k, ret_key_pem);
        *ret_cert_pem = cert;
    }
    EVP_PKEY_free(k);
    return r;
}

int pki_csr_new(const struct pki_identity *id, char **ret_key_pem, char **ret_csr_pem,
                struct sc_error *e)
{
    EVP_PKEY *k = NULL;
    int r = key_new(&k, e);
    if (r < 0)
        return r;
    X509_REQ *q = X509_REQ_new();
    BIO *b = BIO_new(BIO_s_mem());
    if (!q || !b)
        sc_oom();
    if (X509_REQ_set_version(q, 0) != 1 || X509_REQ_set_pubkey(q, k) != 1 ||
        set_subject(X509_REQ_get_subject_name(q), id->cn, id->org[0] ? id->org : NULL) < 0 ||
        X509_REQ_sign(q, k, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(b, q) != 1) {
        r = ssl_err(e, -SC_E_INTERNAL, "make CSR");
    } else {
        *ret_csr_pem = bio_to_string(b);
        key_to_pem(k, ret_key_pem);
    }
    BIO_free(b);
    X509_REQ_free(q);
    EVP_PKEY_free(k);
    return r;
}

/* The CSR key must be what we issue: ECDSA on P-256. */
static bool key_acceptable(EVP_PKEY *k)
{
    char group[32];
    return EVP_PKEY_is_a(k, "EC") &&
           EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                          NULL) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

int pki_ca_sign_csr(const struct pki_ca *ca, const char *csr_pem, const struct pki_issue *req,
                    char **ret_cert_pem, struct sc_error *e)
{
    struct pki_identity want;
    int r = pki_identity_make(req->role, req->name, &want, e);
    if (r < 0)
        return r;
    BIO *b = BIO_new_mem_buf(csr_pem, -1);
    if (!b)
        sc_oom();
    X509_REQ *q = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!q)
        return ssl_err(e, -SC_E_INVALID, "read PEM CSR");
    EVP_PKEY *pub = X509_REQ_get0_pubkey(q);
    char cn[PKI_CN_MAX + 1];
    if (!pub || !key_acceptable(pub)) {
        r = sc_error_set(e, -SC_E_INVALID, "csr", "CSR key must be ECDSA P-256");
    } else if (X509_REQ_verify(q, pub) != 1) {
        r = ssl_err(e, -EBADMSG, "CSR self-signature does not verify");
    } else if (name_get(X509_REQ_get_subject_name(q), NID_commonName, cn, sizeof(cn)) < 0) {
        r = sc_error_set(e, -SC_E_INVALID, "csr", "CSR subject needs exactly one CN");
    } else if (strcmp(cn, want.cn) != 0) {
        r = sc_error_set(e, -EACCES, "csr", "CSR asks for '%s' but this request may only get '%s'",
                         cn, want.cn);
    } else {
        r = issue_for(ca, pub, req, ret_cert_pem, e);
    }
    X509_REQ_free(q);
    if (r < 0)
        ERR_clear_error(); /* a bad key or name leaves OpenSSL's queue dirty */
    return r;
}

int pki_cert_verify(const char *ca_pem, const char *cert_pem, time_t now, struct pki_identity *ret,
                    struct sc_error *e)
{
    X509 *ca = NULL, *x = NULL;
    int r = pki_pem_to_x509(ca_pem, &ca, e);
    if (r < 0)
        return r;
    if ((r = pki_pem_to_x509(cert_pem, &x, e)) < 0) {
        X509_free(ca);
        return r;
    }
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *c = X509_STORE_CTX_new();
    if (!st || !c || X509_STORE_add_cert(st, ca) != 1 || X509_STORE_CTX_init(c, st, x, NULL) != 1)
        sc_oom();
    /* The cluster CA is the trust anchor even when an operator's root signed it. */
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(c), X509_V_FLAG_PARTIAL_CHAIN);
    if (now)
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(c), now);
    if (X509_verify_cert(c) != 1) {
        int v = X509_STORE_CTX_get_error(c);
        bool expired = v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID;
        r = sc_error_set(e, expired ? -EKEYEXPIRED : -EKEYREJECTED, "cert",
                         "certificate does not verify against the cluster CA: %s",
                         X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (ret) {
        r = pki_identity_from_x509(x, ret, e);
    }
    X509_STORE_CTX_free(c);
    X509_STORE_free(st);
    X509_free(x);
    X509_free(ca);
    return r;
}

/* ---- files and secrets ------------------------------------------------------------------ */

int pki_file_write(const char *path, const char *data, unsigned mode, struct sc_error *e)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return sc_error_set(e, -ENAMETOOLONG, "path", "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return sc_error_set(e, -errno, "path", "create %s: %m", tmp);
    int r = fchmod(fd, mode) < 0 ? -errno : 0; /* whatever the umask or an old file said */
    if (r == 0)
        r = sc_write_all(fd, data, strlen(data));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return sc_error_set(e, r, "path", "write %s: %s", path, strerror(-r));
    }
    return 0;
}

int pki_file_read(const char *path, char **ret, struct sc_error *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "path", "open %s: %m", path);
    char *buf = xmalloc(PKI_PEM_MAX + 1);
    size_t n = 0;
    int r = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, PKI_PEM_MAX + 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = sc_error_set(e, -errno, "path", "read %s: %m", path);
            break;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n > PKI_PEM_MAX) {
            r = sc_error_set(e, -EFBIG, "path", "%s is larger than %d bytes", path, PKI_PEM_MAX);
            break;
        }
    }
    close(fd);
    if (r < 0) {
        explicit_bzero(buf, n);
        free(buf);
        return r;
    }
    buf[n] = '\0';
    *ret = buf;
    return 0;
}

void pki_secret_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}
