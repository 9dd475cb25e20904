/*
 * ensure.c: keep a certificate the CA side issues for itself fresh on disk.
 *
 * A controller calls this on every start (and may on a timer) for its own
 * serving certificate and for the operator's admin certificate: the files are
 * kept when they still describe what the caller wants, and rewritten otherwise.
 * "Still describe" means: both files read, the key is the certificate's, the
 * certificate verifies against this CA now, has the wanted CN and O, every wanted
 * DNS name and IP, serverAuth when wanted, and is not past two thirds of its
 * life.  So a new listen address, a CA rotation, an expiring certificate or a
 * lost key all lead to a new pair, and nothing else does.  The key is written
 * before the certificate (both atomically), so a crash in between leaves a pair
 * that does not match, which the next call repairs.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "pki/pki_int.h"

static bool pair_matches(const struct pki_issue *req, const char *cert_pem, const char *key_pem)
{
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    bool ok = pki_pem_to_x509(cert_pem, &x, NULL) == 0 && pki_pem_to_key(key_pem, &k, NULL) == 0 &&
              X509_check_private_key(x, k) == 1;
    for (size_t i = 0; ok && i < PKI_MAX_SANS && req->dns[i]; i++)
        ok = X509_check_host(x, req->dns[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
    for (size_t i = 0; ok && i < PKI_MAX_SANS && req->ips[i]; i++)
        ok = X509_check_ip_asc(x, req->ips[i], 0) == 1;
    if (ok && (req->server || req->role == PKI_ROLE_CONTROLLER))
        ok = X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return ok;
}

static bool still_good(const struct pki_ca *ca, const struct pki_issue *req,
                       const struct pki_identity *want, const char *cert_path, const char *key_path,
                       time_t now)
{
    char *cert = NULL, *key = NULL, *ca_pem = NULL;
    struct pki_identity id;
    bool ok = pki_file_read(cert_path, &cert, NULL) == 0 &&
              pki_file_read(key_path, &key, NULL) == 0 && pki_ca_cert_pem(ca, &ca_pem) == 0 &&
              pki_cert_verify(ca_pem, cert, now, &id, NULL) == 0 && strcmp(id.cn, want->cn) == 0 &&
              strcmp(id.org, want->org) == 0 && !pki_should_renew(&id, now) &&
              pair_matches(req, cert, key);
    free(cert);
    free(ca_pem);
    pki_secret_free(key);
    return ok;
}

int pki_ca_ensure_issued(const struct pki_ca *ca, const struct pki_issue *req,
                         const char *cert_path, const char *key_path, struct sc_error *e)
{
    struct pki_identity want;
    int r = pki_identity_make(req->role, req->name, &want, e);
    if (r < 0)
        return r;
    if (still_good(ca, req, &want, cert_path, key_path, time(NULL)))
        return 0;
    char *key = NULL, *cert = NULL;
    if ((r = pki_ca_issue(ca, req, &key, &cert, e)) < 0)
        return r;
    r = pki_file_write(key_path, key, 0600, e);
    if (r == 0)
        r = pki_file_write(cert_path, cert, 0644, e);
    pki_secret_free(key);
    free(cert);
    return r < 0 ? r : 1;
}
