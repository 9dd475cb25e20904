/*
 * token.c: bootstrap tokens in kubeadm's format, "id.secret" with
 * id = [a-z0-9]{6} and secret = [a-z0-9]{16} (about 82 bits of secret).
 *
 * The id is public (it names the token in `sctl token list` and logs); the
 * secret is shown once, at creation, and the cluster keeps only its SHA-256, so
 * a copy of the store or a backup does not let anyone join a node.  Checking a
 * presented token hashes its secret and compares the digests with CRYPTO_memcmp,
 * so the time taken says nothing about how many leading characters were right.
 * Characters come from RAND_bytes by rejection sampling (bytes >= 252 are
 * redrawn), so each of the 36 symbols is equally likely.
 * Expiry, usage limits and revocation are the store's business, not this file's.
 */
#include "pki/pki.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>

#include "base/util.h"

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

static int random_chars(char *out, size_t n)
{
    while (n > 0) {
        uint8_t b[32];
        if (RAND_bytes(b, sizeof(b)) != 1)
            return -SC_E_INTERNAL;
        for (size_t i = 0; i < sizeof(b) && n > 0; i++)
            if (b[i] < 252) { /* 252 = 7 * 36: larger bytes would bias the first symbols */
                *out++ = alphabet[b[i] % 36];
                n--;
            }
        explicit_bzero(b, sizeof(b));
    }
    return 0;
}

int pki_token_new(struct pki_token *ret, struct sc_error *e)
{
    struct pki_token t = {0};
    if (random_chars(t.id, PKI_TOKEN_ID_LEN) < 0 ||
        random_chars(t.secret, PKI_TOKEN_SECRET_LEN) < 0)
        return sc_error_set(e, -SC_E_INTERNAL, "token", "the random generator failed");
    *ret = t;
    explicit_bzero(&t, sizeof(t));
    return 0;
}

void pki_token_format(const struct pki_token *t, char ret[PKI_TOKEN_STR_LEN + 1])
{
    snprintf(ret, PKI_TOKEN_STR_LEN + 1, "%s.%s", t->id, t->secret);
}

static bool chars_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

int pki_token_parse(const char *s, struct pki_token *ret, struct sc_error *e)
{
    static const char want[] = "a token is 6 characters, a dot and 16 characters, all [a-z0-9] "
                               "(like abcdef.0123456789abcdef)";
    size_t n = s ? strlen(s) : 0;
    if (n != PKI_TOKEN_STR_LEN || s[PKI_TOKEN_ID_LEN] != '.')
        return sc_error_set(e, -SC_E_INVALID, "token", "%s; this one has %zu characters%s", want, n,
                            n == PKI_TOKEN_STR_LEN ? " but no dot after the sixth" : "");
    if (!chars_valid(s, PKI_TOKEN_ID_LEN))
        return sc_error_set(e, -SC_E_INVALID, "token", "token id: %s", want);
    if (!chars_valid(s + PKI_TOKEN_ID_LEN + 1, PKI_TOKEN_SECRET_LEN))
        return sc_error_set(e, -SC_E_INVALID, "token", "token secret: %s", want);
    memcpy(ret->id, s, PKI_TOKEN_ID_LEN);
    ret->id[PKI_TOKEN_ID_LEN] = '\0';
    memcpy(ret->secret, s + PKI_TOKEN_ID_LEN + 1, PKI_TOKEN_SECRET_LEN);
    ret->secret[PKI_TOKEN_SECRET_LEN] = '\0';
    return 0;
}

static void secret_digest(const char *secret, uint8_t d[32])
{
    unsigned dl = 32;
    if (EVP_Digest(secret, strlen(secret), d, &dl, EVP_sha256(), NULL) != 1)
        sc_oom(); /* SHA-256 of 16 bytes fails only without memory */
}

void pki_token_hash(const struct pki_token *t, struct pki_token_hash *ret)
{
    uint8_t d[32];
    secret_digest(t->secret, d);
    snprintf(ret->id, sizeof(ret->id), "%s", t->id);
    for (size_t i = 0; i < 32; i++)
        snprintf(ret->hash + 2 * i, 3, "%02x", d[i]);
}

int pki_token_hash_valid(const struct pki_token_hash *h, struct sc_error *e)
{
    if (strnlen(h->id, sizeof(h->id)) != PKI_TOKEN_ID_LEN || !chars_valid(h->id, PKI_TOKEN_ID_LEN))
        return sc_error_set(e, -SC_E_INVALID, "token", "stored token id must be [a-z0-9]{6}");
    if (strnlen(h->hash, sizeof(h->hash)) != PKI_TOKEN_HASH_HEX)
        return sc_error_set(e, -SC_E_INVALID, "token", "stored token hash must be 64 hex digits");
    for (size_t i = 0; i < PKI_TOKEN_HASH_HEX; i++)
        if (sc_hexval(h->hash[i]) < 0 || (h->hash[i] >= 'A' && h->hash[i] <= 'F'))
            return sc_error_set(e, -SC_E_INVALID, "token",
                                "stored token hash must be lowercase hex");
    return 0;
}

int pki_token_check(const struct pki_token_hash *h, const struct pki_token *t, struct sc_error *e)
{
    int r = pki_token_hash_valid(h, e);
    if (r < 0)
        return r;
    struct pki_token_hash got;
    pki_token_hash(t, &got);
    /* Both the id and the digest are compared whole, whatever differs first. */
    int diff = CRYPTO_memcmp(h->id, got.id, PKI_TOKEN_ID_LEN) |
               CRYPTO_memcmp(h->hash, got.hash, PKI_TOKEN_HASH_HEX);
    explicit_bzero(&got, sizeof(got));
    if (diff)
        return sc_error_set(e, -EACCES, "token", "token %s is not valid", t->id);
    return 0;
}
