/* pki_int.h: what pki.c shares with the other files of src/pki (not for callers). */
#pragma once

#include "pki/pki.h"

/* PEM text to an OpenSSL object; -SC_E_INVALID with OpenSSL's reason in e. */
int pki_pem_to_x509(const char *pem, X509 **ret, struct sc_error *e);
int pki_pem_to_key(const char *pem, EVP_PKEY **ret, struct sc_error *e);
