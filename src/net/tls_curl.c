/*
 * tls_curl.c: the libcurl side of the cluster's mutual TLS, for sctl and slet.
 *
 * A separate library (sc_net_curl) so that a binary that only serves does not
 * map libcurl.  It sets what every cluster request needs: TLS 1.3 only, the
 * cluster CA as the only trust anchor, peer and host verification on, and this
 * client's certificate and key when it has them.
 */
#include "net/tls_curl.h"

int net_tls_curl_setup(CURL *c, const struct net_tls_files *f, struct sc_error *e)
{
    if (!f->ca)
        return sc_error_set(e, -SC_E_INVALID, "tls", "the cluster CA file is required");
    if (!f->cert != !f->key)
        return sc_error_set(e, -SC_E_INVALID, "tls", "a certificate needs its key and back");
    CURLcode r = curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
    if (r == CURLE_OK)
        r = curl_easy_setopt(c, CURLOPT_CAINFO, f->ca);
    if (r == CURLE_OK)
        r = curl_easy_setopt(c, CURLOPT_CAPATH, NULL); /* the system store is not ours */
    if (r == CURLE_OK)
        r = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    if (r == CURLE_OK)
        r = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (r == CURLE_OK && f->cert)
        r = curl_easy_setopt(c, CURLOPT_SSLCERT, f->cert);
    if (r == CURLE_OK && f->cert)
        r = curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    if (r == CURLE_OK && f->key)
        r = curl_easy_setopt(c, CURLOPT_SSLKEY, f->key);
    if (r != CURLE_OK)
        return sc_error_set(e, -ENOTSUP, "tls", "libcurl: %s", curl_easy_strerror(r));
    return 0;
}
