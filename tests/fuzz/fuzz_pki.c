/*
 * fuzz_pki.c: libFuzzer harness for what src/pki reads from a joining node or an
 * operator: bootstrap tokens, CSRs (signed by the CA), certificates, CA pins.
 *
 * The first input byte picks a target, the rest is its input:
 *   0  pki_token_parse: an accepted token is exactly [a-z0-9]{6}.[a-z0-9]{16} and
 *      formats back to the same string; its hash checks against itself;
 *   1  pki_ca_sign_csr over the input as a DER CSR (wrapped in PEM): whatever is
 *      accepted yields a certificate that verifies against the CA, is not a CA,
 *      and names exactly node:n1 / swiftcube:nodes, whatever the CSR asked for;
 *   2  pki_identity_from_pem over the input as a DER certificate: no crash; a
 *      role other than NONE means CN and O follow the naming scheme;
 *   3  pki_hash_check with the input as the pin: accepted only for the CA's own
 *      hash (in either case of hex digits).
 * Any violated property aborts, which libFuzzer reports as a crash.
 *
 * Run: tests/fuzz/run.sh SECONDS, or by hand
 *   build-fuzz/tests/fuzz/fuzz_pki -max_total_time=600 CORPUS tests/fuzz/seeds/fuzz_pki
 */
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pki/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_pki: %s:%d: %s\n", __FILE__, __LINE__, #x);                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct pki_ca *ca;
static char *ca_pem;
static char ca_hash[PKI_HASH_STR_LEN + 1];

static void init(void)
{
    if (ca)
        return;
    CHECK(pki_ca_create("fuzz", 0, &ca, NULL) == 0);
    CHECK(pki_ca_cert_pem(ca, &ca_pem) == 0);
    CHECK(pki_ca_hash(ca, ca_hash) == 0);
}

/* DER bytes as a PEM block of the given type. */
static char *pem_wrap(const char *type, const uint8_t *der, size_t n)
{
    size_t b64 = 4 * ((n + 2) / 3);
    char *out = malloc(b64 + b64 / 64 + 128);
    CHECK(out);
    size_t o = (size_t)sprintf(out, "-----BEGIN %s-----\n", type);
    for (size_t i = 0; i < n; i += 48) {
        size_t k = n - i < 48 ? n - i : 48;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, der + i, (int)k);
        out[o++] = '\n';
    }
    sprintf(out + o, "-----END %s-----\n", type);
    return out;
}

static void token(const uint8_t *d, size_t n)
{
    char s[64];
    if (n >= sizeof(s))
        return;
    memcpy(s, d, n);
    s[n] = '\0';
    struct pki_token t;
    if (pki_token_parse(s, &t, NULL) < 0)
        return;
    n = strlen(s); /* the input may carry a NUL: the parser sees a C string */
    CHECK(n == PKI_TOKEN_STR_LEN && s[6] == '.');
    for (size_t i = 0; i < n; i++)
        CHECK(i == 6 || islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]));
    char back[PKI_TOKEN_STR_LEN + 1];
    pki_token_format(&t, back);
    CHECK(strcmp(back, s) == 0);
    struct pki_token_hash h;
    pki_token_hash(&t, &h);
    CHECK(pki_token_check(&h, &t, NULL) == 0);
}

static void csr(const uint8_t *d, size_t n)
{
    char *pem = pem_wrap("CERTIFICATE REQUEST", d, n), *cert = NULL;
    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600};
    if (pki_ca_sign_csr(ca, pem, &req, &cert, NULL) == 0) {
        struct pki_identity id;
        CHECK(pki_cert_verify(ca_pem, cert, 0, &id, NULL) == 0);
        CHECK(id.role == PKI_ROLE_NODE && strcmp(id.cn, "node:n1") == 0 &&
              strcmp(id.org, "swiftcube:nodes") == 0);
        BIO *b = BIO_new_mem_buf(cert, -1);
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        BIO_free(b);
        CHECK(x && X509_check_ca(x) == 0);
        CHECK(X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) == NULL);
        X509_free(x);
        free(cert);
    }
    free(pem);
}

static void cert(const uint8_t *d, size_t n)
{
    char *pem = pem_wrap("CERTIFICATE", d, n);
    struct pki_identity id;
    if (pki_identity_from_pem(pem, &id, NULL) == 0 && id.role != PKI_ROLE_NONE) {
        CHECK(strchr(id.cn, ':') || id.role == PKI_ROLE_ADMIN);
        CHECK(strncmp(id.org, "swiftcube:", 10) == 0);
        CHECK(id.role == PKI_ROLE_ADMIN ? id.name[0] == '\0' : pki_name_valid(id.name));
    }
    free(pem);
}

static void pin(const uint8_t *d, size_t n)
{
    char s[128];
    if (n >= sizeof(s))
        return;
    memcpy(s, d, n);
    s[n] = '\0';
    if (pki_hash_check(ca_pem, s, NULL) == 0)
        CHECK(strcasecmp(s, ca_hash) == 0 && strncmp(s, "sha256:", 7) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    init();
    switch (data[0] % 4) {
    case 0:
        token(data + 1, size - 1);
        break;
    case 1:
        csr(data + 1, size - 1);
        break;
    case 2:
        cert(data + 1, size - 1);
        break;
    case 3:
        pin(data + 1, size - 1);
        break;
    }
    if (ERR_peek_error())
        ERR_print_errors_fp(stderr);
    CHECK(ERR_peek_error() == 0); /* no failure leaves OpenSSL errors queued */
    return 0;
}
