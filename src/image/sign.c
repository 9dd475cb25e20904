/*
 * sign.c: Ed25519 signatures over image identities, and the node's trusted keys.
 *
 * What is signed is the identity, not the bytes: `blake3:<hex>` already commits to
 * every byte of the packed base, so a signature is small, detached, and checkable
 * before the image is unpacked.  The signed message carries a domain-separation
 * prefix ("swiftcube image signature v1\n") so that a key used for images cannot
 * be tricked into signing something that verifies as another kind of object.
 *
 * Keys are plain PEM files (OpenSSL 3, EVP only, no deprecated APIs).  A key is
 * named by its key id, "ed25519:" + 16 hex digits of BLAKE3 of the raw 32-byte
 * public key; a signature says which key made it, so verification looks the key
 * up among the trusted ones and refuses with a distinct error when it is not there.
 *
 *   unsigned                         -> -ENOKEY
 *   identity differs from the signed -> -EBADMSG  (the bytes changed after signing)
 *   signature does not verify        -> -EBADMSG  (forged or corrupted signature)
 *   signer not among trusted keys    -> -EKEYREJECTED
 */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/util.h"

#define SIG_DOMAIN "swiftcube image signature v1\n"

static int ssl_err(struct sc_error *e, int r, const char *what)
{
    char buf[160] = "unknown OpenSSL error";
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, buf, sizeof(buf));
    ERR_clear_error();
    return sc_error_set(e, r, "key", "%s: %s", what, buf);
}

static int key_id_of(EVP_PKEY *k, char out[IMG_KEY_ID_LEN + 1])
{
    uint8_t raw[32];
    size_t len = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != sizeof(raw))
        return -EINVAL;
    uint8_t d[IMG_BLAKE3_OUT_LEN];
    char hex[IMG_BLAKE3_HEX_LEN + 1];
    img_blake3_hash(raw, len, d);
    img_blake3_hex(d, hex);
    snprintf(out, IMG_KEY_ID_LEN + 1, "ed25519:%.16s", hex);
    return 0;
}

static void sig_message(const struct img_id *id, char *out, size_t *len)
{
    char ids[IMG_ID_STR_LEN + 1];
    img_id_format(id, ids);
    *len = (size_t)snprintf(out, 128, "%s%s", SIG_DOMAIN, ids);
}

static FILE *fopen_cloexec(const char *path, const char *mode)
{
    char m[8];
    snprintf(m, sizeof(m), "%se", mode);
    return fopen(path, m);
}

int img_key_generate(const char *priv_pem, const char *pub_pem, char ret_key_id[IMG_KEY_ID_LEN + 1],
                     struct sc_error *e)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k)
        return ssl_err(e, -SC_E_INTERNAL, "generate Ed25519 key");
    int r = 0;
    FILE *f = NULL;
    int fd = open(priv_pem, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = sc_error_set(e, -errno, "key", "create %s: %m", priv_pem);
        goto out;
    }
    f = fdopen(fd, "w");
    if (!f) {
        r = sc_error_set(e, -errno, "key", "fdopen: %m");
        close(fd);
        goto out;
    }
    if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1) {
        r = ssl_err(e, -EIO, priv_pem);
        goto out;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
        r = sc_error_set(e, -errno, "key", "write %s: %m", priv_pem);
        goto out;
    }
    fclose(f);
    f = fopen_cloexec(pub_pem, "w");
    if (!f) {
        r = sc_error_set(e, -errno, "key", "create %s: %m", pub_pem);
        goto out;
    }
    if (PEM_write_PUBKEY(f, k) != 1) {
        r = ssl_err(e, -EIO, pub_pem);
        goto out;
    }
    if (fflush(f) != 0) {
        r = sc_error_set(e, -errno, "key", "write %s: %m", pub_pem);
        goto out;
    }
    if (ret_key_id)
        key_id_of(k, ret_key_id);
out:
    if (f)
        fclose(f);
    EVP_PKEY_free(k);
    return r;
}

static int load_key(const char *path, bool private, EVP_PKEY **ret, struct sc_error *e)
{
    FILE *f = fopen_cloexec(path, "r");
    if (!f)
        return sc_error_set(e, -errno, "key", "open %s: %m", path);
    EVP_PKEY *k =
        private ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k)
        return ssl_err(e, -SC_E_INVALID, path);
    if (!EVP_PKEY_is_a(k, "ED25519")) {
        EVP_PKEY_free(k);
        return sc_error_set(e, -SC_E_INVALID, "key", "%s is not an Ed25519 key", path);
    }
    *ret = k;
    return 0;
}

int img_sign(const char *priv_pem, const struct img_id *id, struct img_sig *ret, struct sc_error *e)
{
    EVP_PKEY *k = NULL;
    int r = load_key(priv_pem, true, &k, e);
    if (r < 0)
        return r;
    char msg[128];
    size_t mlen, slen = sizeof(ret->sig);
    sig_message(id, msg, &mlen);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        sc_oom();
    if (EVP_DigestSignInit(c, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(c, ret->sig, &slen, (const uint8_t *)msg, mlen) != 1 ||
        slen != sizeof(ret->sig))
        r = ssl_err(e, -SC_E_INTERNAL, "sign");
    else {
        ret->id = *id;
        key_id_of(k, ret->key_id);
    }
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    return r;
}

int img_sig_write(const char *path, const struct img_sig *sig, struct sc_error *e)
{
    char ids[IMG_ID_STR_LEN + 1], hex[129];
    img_id_format(&sig->id, ids);
    for (size_t i = 0; i < sizeof(sig->sig); i++)
        snprintf(hex + 2 * i, 3, "%02x", sig->sig[i]);
    char line[320];
    int n = snprintf(line, sizeof(line), "%s %s %s %s\n", IMG_SIG_FORMAT, ids, sig->key_id, hex);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sc_error_set(e, -errno, "sig", "create %s: %m", path);
    int r = sc_write_all(fd, line, (size_t)n);
    if (r < 0)
        return sc_error_set(e, r, "sig", "write %s: %s", path, strerror(-r));
    return 0;
}

int img_sig_decode(const char *text, size_t len, struct img_sig *ret, struct sc_error *e)
{
    char buf[320];
    if (len >= sizeof(buf))
        return sc_error_set(e, -SC_E_INVALID, "sig", "signature file is too long");
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    char fmt[32], ids[IMG_ID_STR_LEN + 8], kid[IMG_KEY_ID_LEN + 8], hex[140];
    char extra;
    if (sscanf(buf, "%31s %71s %31s %139s %c", fmt, ids, kid, hex, &extra) != 4 ||
        strcmp(fmt, IMG_SIG_FORMAT) != 0)
        return sc_error_set(e, -SC_E_INVALID, "sig",
                            "signature must be '%s blake3:<hex> ed25519:<id> <hex>'",
                            IMG_SIG_FORMAT);
    struct img_sig s = {0};
    int r = img_id_parse(ids, &s.id, e);
    if (r < 0)
        return r;
    if (strlen(kid) != IMG_KEY_ID_LEN || strncmp(kid, "ed25519:", 8) != 0)
        return sc_error_set(e, -SC_E_INVALID, "sig", "bad key id '%s'", kid);
    memcpy(s.key_id, kid, IMG_KEY_ID_LEN + 1);
    if (strlen(hex) != 2 * sizeof(s.sig))
        return sc_error_set(e, -SC_E_INVALID, "sig", "signature must be 128 hex digits");
    for (size_t i = 0; i < sizeof(s.sig); i++) {
        unsigned v;
        if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
            sscanf(hex + 2 * i, "%2x", &v) != 1)
            return sc_error_set(e, -SC_E_INVALID, "sig", "signature has a non-hex digit");
        s.sig[i] = (uint8_t)v;
    }
    *ret = s;
    return 0;
}

int img_sig_read(const char *path, struct img_sig *ret, struct sc_error *e)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "sig", "open %s: %m", path);
    char buf[320];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0)
        return sc_error_set(e, -errno, "sig", "read %s: %m", path);
    return img_sig_decode(buf, (size_t)n, ret, e);
}

int img_sign_file(const char *priv_pem, const char *packed, const char *sig_out,
                  struct img_sig *ret, struct sc_error *e)
{
    struct img_id id;
    struct img_sig s;
    int r = img_id_of_file(packed, &id, e);
    if (r < 0)
        return r;
    if ((r = img_sign(priv_pem, &id, &s, e)) < 0)
        return r;
    if ((r = img_sig_write(sig_out, &s, e)) < 0)
        return r;
    if (ret)
        *ret = s;
    return 0;
}

/* ---- trust ------------------------------------------------------------------------- */

struct img_trust_key {
    char id[IMG_KEY_ID_LEN + 1];
    EVP_PKEY *pkey;
};

struct img_trust {
    struct img_trust_key *v;
    size_t n, cap;
};

struct img_trust *img_trust_new(void)
{
    return xcalloc(1, sizeof(struct img_trust));
}

void img_trust_free(struct img_trust *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        EVP_PKEY_free(t->v[i].pkey);
    free(t->v);
    free(t);
}

size_t img_trust_count(const struct img_trust *t)
{
    return t ? t->n : 0;
}

int img_trust_add_pem(struct img_trust *t, const char *pub_pem, struct sc_error *e)
{
    EVP_PKEY *k = NULL;
    int r = load_key(pub_pem, false, &k, e);
    if (r < 0)
        return r;
    char id[IMG_KEY_ID_LEN + 1];
    if (key_id_of(k, id) < 0) {
        EVP_PKEY_free(k);
        return sc_error_set(e, -SC_E_INVALID, "key", "%s: no raw Ed25519 public key", pub_pem);
    }
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].id, id) == 0) {
            EVP_PKEY_free(k);
            return 0;
        }
    t->v = sc_grow(t->v, &t->cap, t->n + 1, sizeof(*t->v));
    memcpy(t->v[t->n].id, id, sizeof(id));
    t->v[t->n++].pkey = k;
    return 1;
}

int img_trust_load_dir(struct img_trust *t, const char *dir, struct sc_error *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return sc_error_set(e, -errno, "trust", "open %s: %m", dir);
    int added = 0, r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".pem") != 0)
            continue;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
            sc_oom();
        if ((r = img_trust_add_pem(t, p, e)) < 0)
            break;
        added += r;
    }
    closedir(d);
    return r < 0 ? r : added;
}

int img_verify(const struct img_trust *t, const struct img_id *id, const struct img_sig *sig,
               struct sc_error *e)
{
    char ids[IMG_ID_STR_LEN + 1];
    img_id_format(id, ids);
    if (!sig)
        return sc_error_set(e, -ENOKEY, "signature",
                            "image %s is unsigned; this node runs only signed images", ids);
    if (!img_id_equal(id, &sig->id)) {
        char sids[IMG_ID_STR_LEN + 1];
        img_id_format(&sig->id, sids);
        return sc_error_set(e, -EBADMSG, "signature",
                            "image content is %s but the signature is for %s: the image was "
                            "changed after signing (or the wrong signature was given)",
                            ids, sids);
    }
    const struct img_trust_key *k = NULL;
    for (size_t i = 0; t && i < t->n && !k; i++)
        if (strcmp(t->v[i].id, sig->key_id) == 0)
            k = &t->v[i];
    if (!k)
        return sc_error_set(e, -EKEYREJECTED, "signature",
                            "image %s is signed by key %s, which is not among this node's %zu "
                            "trusted keys",
                            ids, sig->key_id, img_trust_count(t));
    char msg[128];
    size_t mlen;
    sig_message(id, msg, &mlen);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        sc_oom();
    int ok = EVP_DigestVerifyInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(c, sig->sig, sizeof(sig->sig), (const uint8_t *)msg, mlen) == 1;
    EVP_MD_CTX_free(c);
    ERR_clear_error();
    if (!ok)
        return sc_error_set(e, -EBADMSG, "signature",
                            "the signature on image %s by key %s does not verify (forged or "
                            "corrupted signature)",
                            ids, sig->key_id);
    return 0;
}
