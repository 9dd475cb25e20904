/* tls_curl.h: libcurl options for the cluster's mutual TLS (see tls_curl.c). */
#pragma once

#include <curl/curl.h>
#include <errno.h>

#include "net/tls.h"

/* Sets CURLOPT_SSLVERSION (TLS 1.3), CAINFO (only the cluster CA), VERIFYPEER,
 * VERIFYHOST and, when f has them, SSLCERT/SSLKEY. -ENOTSUP when this libcurl
 * cannot (no TLS 1.3 backend). */
int net_tls_curl_setup(CURL *c, const struct net_tls_files *f, struct sc_error *e);
