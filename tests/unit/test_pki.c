/* test_pki.c: the cluster CA, issuing, CSR signing, pins, expiry and bootstrap
 * tokens of src/pki, checked with OpenSSL's own parsers and the openssl CLI. */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/util.h"
#include "pki/pki.h"

static char dir[64];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sc-test-pki-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static const char *path(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

static X509 *x509_of(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static struct pki_ca *new_ca(const char *cn)
{
    struct pki_ca *ca = NULL;
    struct sc_error e = {0};
    assert_int_equal(pki_ca_create(cn, 0, &ca, &e), 0);
    return ca;
}

static char *ca_pem(const struct pki_ca *ca)
{
    char *p = NULL;
    assert_int_equal(pki_ca_cert_pem(ca, &p), 0);
    return p;
}

/* Runs cmd and returns its first output line (trimmed). */
static void run_line(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)size, f));
    assert_int_equal(pclose(f), 0);
    out[strcspn(out, "\n")] = '\0';
}

/* ---- CA --------------------------------------------------------------------------------- */

static void ca_save_load_round_trip(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("swiftcube test CA");
    assert_int_equal(pki_ca_save(ca, path("ca.crt"), path("ca.key"), &e), 0);
    struct stat st;
    assert_int_equal(stat(path("ca.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    struct pki_ca *back = NULL;
    assert_int_equal(pki_ca_load(path("ca.crt"), path("ca.key"), &back, &e), 0);
    char h1[PKI_HASH_STR_LEN + 1], h2[PKI_HASH_STR_LEN + 1];
    pki_ca_hash(ca, h1);
    pki_ca_hash(back, h2);
    assert_string_equal(h1, h2);
    X509 *x = pki_ca_x509(back);
    assert_int_equal(X509_check_ca(x), 1);
    assert_true(X509_get_extension_flags(x) & EXFLAG_SS);
    /* about ten years */
    struct pki_identity id;
    assert_int_equal(pki_identity_from_x509(x, &id, &e), 0);
    assert_true(id.not_after - id.not_before > 9 * 365 * 86400L);
    assert_string_equal(id.cn, "swiftcube test CA");

    /* The loaded CA signs certificates that verify against the saved one. */
    char *k = NULL, *c = NULL, *pem = ca_pem(ca);
    struct pki_issue req = {.role = PKI_ROLE_ADMIN, .validity_sec = 3600};
    assert_int_equal(pki_ca_issue(back, &req, &k, &c, &e), 0);
    assert_int_equal(pki_cert_verify(pem, c, 0, &id, &e), 0);
    assert_int_equal(id.role, PKI_ROLE_ADMIN);

    /* Another CA's key does not load with this certificate. */
    struct pki_ca *other = new_ca("other");
    assert_int_equal(pki_ca_save(other, path("o.crt"), path("o.key"), &e), 0);
    struct pki_ca *bad = NULL;
    assert_int_equal(pki_ca_load(path("ca.crt"), path("o.key"), &bad, &e), -SC_E_INVALID);
    assert_null(bad);
    /* A leaf is not a CA. */
    assert_int_equal(pki_file_write(path("leaf.crt"), c, 0644, &e), 0);
    assert_int_equal(pki_ca_load(path("leaf.crt"), NULL, &bad, &e), -SC_E_INVALID);
    /* Certificate only: verifies, cannot sign. */
    struct pki_ca *ro = NULL;
    assert_int_equal(pki_ca_load(path("ca.crt"), NULL, &ro, &e), 0);
    char *k2 = NULL, *c2 = NULL;
    assert_int_equal(pki_ca_issue(ro, &req, &k2, &c2, &e), -ENOKEY);

    pki_secret_free(k);
    free(c);
    free(pem);
    pki_ca_free(ca);
    pki_ca_free(back);
    pki_ca_free(other);
    pki_ca_free(ro);
}

static void ca_load_or_create_creates_once(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *a = NULL, *b = NULL;
    assert_int_equal(pki_ca_load_or_create(path("c.crt"), path("c.key"), "cluster", &a, &e), 1);
    assert_int_equal(pki_ca_load_or_create(path("c.crt"), path("c.key"), "cluster", &b, &e), 0);
    char h1[PKI_HASH_STR_LEN + 1], h2[PKI_HASH_STR_LEN + 1];
    pki_ca_hash(a, h1);
    pki_ca_hash(b, h2);
    assert_string_equal(h1, h2);
    pki_ca_free(a);
    pki_ca_free(b);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* A CA the operator made with the openssl CLI (P-256 root, RSA intermediate under
 * it): loads, issues, and what it issues passes `openssl verify`. */
static void operator_ca_from_openssl_cli(void **state)
{
    struct sc_error e = {0};
    assert_int_equal(pki_file_write(path("ca.ext"),
                                    "basicConstraints=critical,CA:TRUE\n"
                                    "keyUsage=critical,keyCertSign,cRLSign\n",
                                    0644, &e),
                     0);
    assert_int_equal(sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                        "-nodes -keyout root.key -out root.crt -days 30 -subj /CN=op-root "
                        "-addext basicConstraints=critical,CA:TRUE "
                        "-addext keyUsage=critical,keyCertSign 2>/dev/null",
                        dir),
                     0);
    assert_int_equal(sh("cd %s && openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr "
                        "-subj /CN=op-cluster 2>/dev/null && openssl x509 -req -in int.csr "
                        "-CA root.crt -CAkey root.key -set_serial 7 -days 30 -extfile ca.ext "
                        "-out int.crt 2>/dev/null",
                        dir),
                     0);
    static const char *names[] = {"root", "int"};
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        char crt[64], key[64];
        snprintf(crt, sizeof(crt), "%s.crt", names[i]);
        snprintf(key, sizeof(key), "%s.key", names[i]);
        struct pki_ca *ca = NULL;
        assert_int_equal(pki_ca_load(path(crt), path(key), &ca, &e), 0);
        struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 600};
        char *k = NULL, *c = NULL, *pem = NULL;
        assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
        assert_int_equal(pki_file_write(path("leaf.crt"), c, 0644, &e), 0);
        assert_int_equal(pki_file_read(path(crt), &pem, &e), 0);
        struct pki_identity id;
        assert_int_equal(pki_cert_verify(pem, c, 0, &id, &e), 0);
        assert_string_equal(id.cn, "node:n1");
        /* the CLI agrees: against this CA as the anchor, and, for the
         * intermediate, along the full chain to the operator's root */
        assert_int_equal(sh("openssl verify -partial_chain -purpose sslclient -CAfile %s %s "
                            ">/dev/null 2>&1",
                            path(crt), path("leaf.crt")),
                         0);
        assert_int_equal(sh("openssl verify -CAfile %s -untrusted %s %s >/dev/null 2>&1",
                            path("root.crt"), path("int.crt"), path("leaf.crt")),
                         0);
        pki_secret_free(k);
        free(c);
        free(pem);
        pki_ca_free(ca);
    }
}

/* ---- pins ------------------------------------------------------------------------------- */

static void ca_hash_matches_openssl_cli_and_pins(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("pin");
    char *pem = ca_pem(ca);
    assert_int_equal(pki_file_write(path("pin.crt"), pem, 0644, &e), 0);
    char h[PKI_HASH_STR_LEN + 1], cli[256], cmd[512];
    pki_ca_hash(ca, h);
    /* kubeadm's documented recipe for --discovery-token-ca-cert-hash */
    snprintf(cmd, sizeof(cmd),
             "openssl x509 -pubkey -noout -in %s | openssl pkey -pubin -outform der "
             "| openssl dgst -sha256 -hex | sed 's/^.* //'",
             path("pin.crt"));
    run_line(cmd, cli, sizeof(cli));
    assert_string_equal(h + 7, cli);
    assert_memory_equal(h, "sha256:", 7);

    assert_int_equal(pki_hash_check(pem, h, &e), 0);
    /* hex digits of either case */
    char up[PKI_HASH_STR_LEN + 1];
    for (size_t i = 0; i <= PKI_HASH_STR_LEN; i++)
        up[i] = i < 7 ? h[i] : (char)toupper((unsigned char)h[i]);
    assert_int_equal(pki_hash_check(pem, up, &e), 0);
    /* one digit off */
    char off[PKI_HASH_STR_LEN + 1];
    memcpy(off, h, sizeof(off));
    off[PKI_HASH_STR_LEN - 1] = off[PKI_HASH_STR_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(pki_hash_check(pem, off, &e), -EKEYREJECTED);
    /* another CA's certificate against this pin */
    struct pki_ca *other = new_ca("pin");
    char *opem = ca_pem(other);
    assert_int_equal(pki_hash_check(opem, h, &e), -EKEYREJECTED);
    assert_non_null(strstr(e.msg, "does not match"));
    /* malformed pins */
    assert_int_equal(pki_hash_check(pem, h + 7, &e), -SC_E_INVALID);
    assert_int_equal(pki_hash_check(pem, "sha256:abc", &e), -SC_E_INVALID);
    off[10] = 'g';
    assert_int_equal(pki_hash_check(pem, off, &e), -SC_E_INVALID);

    /* curl's pin form is base64 of the same digest */
    char pin[128];
    assert_int_equal(pki_hash_to_curl_pin(h, pin, sizeof(pin), &e), 0);
    snprintf(cmd, sizeof(cmd),
             "openssl x509 -pubkey -noout -in %s | openssl pkey -pubin -outform der "
             "| openssl dgst -sha256 -binary | openssl base64 -A",
             path("pin.crt"));
    run_line(cmd, cli, sizeof(cli));
    assert_memory_equal(pin, "sha256//", 8);
    assert_string_equal(pin + 8, cli);

    free(pem);
    free(opem);
    pki_ca_free(ca);
    pki_ca_free(other);
}

/* ---- issuing ---------------------------------------------------------------------------- */

static void controller_cert_has_sans_and_both_usages(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c");
    struct pki_issue req = {.role = PKI_ROLE_CONTROLLER,
                            .name = "ctl-1",
                            .dns = {"ctl-1.cluster.local", "localhost"},
                            .ips = {"127.0.0.1", "fd00::1"},
                            .validity_sec = 86400};
    char *k1 = NULL, *c1 = NULL, *k2 = NULL, *c2 = NULL;
    assert_int_equal(pki_ca_issue(ca, &req, &k1, &c1, &e), 0);
    assert_int_equal(pki_ca_issue(ca, &req, &k2, &c2, &e), 0);
    X509 *x = x509_of(c1), *y = x509_of(c2);
    assert_int_equal(X509_check_host(x, "ctl-1.cluster.local", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "ctl-2.cluster.local", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "fd00::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.2", 0), 0);
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
    /* the key handed out is the certificate's */
    BIO *b = BIO_new_mem_buf(k1, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(X509_check_private_key(y, k), 0);
    assert_true(EVP_PKEY_is_a(k, "EC"));
    /* serials: random, about 128 bits, different */
    const ASN1_INTEGER *s1 = X509_get0_serialNumber(x), *s2 = X509_get0_serialNumber(y);
    assert_int_not_equal(ASN1_INTEGER_cmp(s1, s2), 0);
    BIGNUM *bn = ASN1_INTEGER_to_BN(s1, NULL);
    assert_true(BN_num_bits(bn) > 100 && BN_num_bits(bn) <= 128);
    BN_free(bn);

    struct pki_identity id;
    char *pem = ca_pem(ca);
    assert_int_equal(pki_cert_verify(pem, c1, 0, &id, &e), 0);
    assert_int_equal(id.role, PKI_ROLE_CONTROLLER);
    assert_string_equal(id.name, "ctl-1");
    assert_string_equal(id.cn, "controller:ctl-1");
    assert_string_equal(id.org, "swiftcube:controllers");
    assert_true(id.not_after - id.not_before == 86400 + PKI_BACKDATE_SEC);

    EVP_PKEY_free(k);
    X509_free(x);
    X509_free(y);
    pki_secret_free(k1);
    pki_secret_free(k2);
    free(c1);
    free(c2);
    free(pem);
    pki_ca_free(ca);
}

static void node_cert_is_client_only_unless_asked(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c");
    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 600};
    char *k = NULL, *c = NULL;
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    X509 *x = x509_of(c);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 0);
    X509_free(x);
    pki_secret_free(k);
    free(c);
    req.server = true;
    req.ips[0] = "10.0.0.7";
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    x = x509_of(c);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.7", 0), 1);
    X509_free(x);
    pki_secret_free(k);
    free(c);
    pki_ca_free(ca);
}

static void bad_names_and_sans_are_refused(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c");
    char *k = NULL, *c = NULL;
    static const char *bad_names[] = {"",
                                      "Node1",
                                      "-a",
                                      "a-",
                                      "a,b",
                                      "a/b",
                                      "a b",
                                      "n:1",
                                      "0123456789012345678901234567890123456789012345678901234567"
                                      "890123"};
    for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
        struct pki_issue req = {.role = PKI_ROLE_NODE, .name = bad_names[i], .validity_sec = 60};
        assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), -SC_E_INVALID);
    }
    assert_true(pki_name_valid("n-1.rack2"));
    /* a comma cannot inject a second subjectAltName */
    struct pki_issue req = {.role = PKI_ROLE_CONTROLLER,
                            .name = "c1",
                            .dns = {"a.example,DNS:evil.example"},
                            .validity_sec = 60};
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), -SC_E_INVALID);
    struct pki_issue req2 = {
        .role = PKI_ROLE_CONTROLLER, .name = "c1", .ips = {"999.1.1.1"}, .validity_sec = 60};
    assert_int_equal(pki_ca_issue(ca, &req2, &k, &c, &e), -SC_E_INVALID);
    struct pki_issue req3 = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 0};
    assert_int_equal(pki_ca_issue(ca, &req3, &k, &c, &e), -SC_E_INVALID);
    pki_ca_free(ca);
}

static void cert_from_other_ca_fails_verification(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("cluster"), *other = new_ca("cluster"); /* same name, other key */
    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 600};
    char *k = NULL, *c = NULL, *pem = ca_pem(ca);
    assert_int_equal(pki_ca_issue(other, &req, &k, &c, &e), 0);
    struct pki_identity id = {.role = PKI_ROLE_ADMIN};
    assert_int_equal(pki_cert_verify(pem, c, 0, &id, &e), -EKEYREJECTED);
    assert_int_equal(id.role, PKI_ROLE_ADMIN); /* untouched on failure */
    assert_non_null(strstr(e.msg, "does not verify"));
    pki_secret_free(k);
    free(c);
    free(pem);
    pki_ca_free(ca);
    pki_ca_free(other);
}

static void expired_and_not_yet_valid_are_detected(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c"); /* valid from now - PKI_BACKDATE_SEC */
    char *pem = ca_pem(ca), *k = NULL, *c = NULL;
    time_t now = time(NULL);
    struct pki_issue req = {
        .role = PKI_ROLE_NODE, .name = "n1", .not_before = now - 200, .validity_sec = 100};
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    assert_int_equal(pki_cert_verify(pem, c, 0, NULL, &e), -EKEYEXPIRED);
    assert_non_null(strstr(e.msg, "expired"));
    /* the same certificate was fine 150 s ago */
    assert_int_equal(pki_cert_verify(pem, c, now - 150, NULL, &e), 0);
    pki_secret_free(k);
    free(c);
    /* one that starts in an hour is not valid yet */
    req.not_before = now + 3600;
    req.validity_sec = 3600;
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    assert_int_equal(pki_cert_verify(pem, c, 0, NULL, &e), -EKEYEXPIRED);
    assert_non_null(strstr(e.msg, "not yet valid"));
    pki_secret_free(k);
    free(c);
    /* a one-second certificate is expired two seconds later */
    struct pki_issue one = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 1};
    assert_int_equal(pki_ca_issue(ca, &one, &k, &c, &e), 0);
    assert_int_equal(pki_cert_verify(pem, c, now + 2, NULL, &e), -EKEYEXPIRED);
    assert_int_equal(pki_cert_verify(pem, c, now, NULL, &e), 0);
    struct pki_identity id;
    assert_int_equal(pki_identity_from_pem(c, &id, &e), 0);
    assert_true(id.not_after <= now + 2 && id.not_after >= now);
    pki_secret_free(k);
    free(c);
    free(pem);
    pki_ca_free(ca);
}

static void leaf_never_outlives_its_ca(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = NULL;
    assert_int_equal(pki_ca_create("short", 3600, &ca, &e), 0);
    struct pki_identity cid, lid;
    assert_int_equal(pki_identity_from_x509(pki_ca_x509(ca), &cid, &e), 0);
    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 86400};
    char *k = NULL, *c = NULL;
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    assert_int_equal(pki_identity_from_pem(c, &lid, &e), 0);
    assert_true(lid.not_after == cid.not_after);
    pki_secret_free(k);
    free(c);
    req.validity_sec = 600; /* shorter than the CA: untouched */
    assert_int_equal(pki_ca_issue(ca, &req, &k, &c, &e), 0);
    assert_int_equal(pki_identity_from_pem(c, &lid, &e), 0);
    assert_true(lid.not_after < cid.not_after);
    assert_true(lid.not_after - lid.not_before == 600 + PKI_BACKDATE_SEC);
    pki_secret_free(k);
    free(c);
    pki_ca_free(ca);
}

static void should_renew_at_two_thirds(void **state)
{
    struct pki_identity id = {.not_before = 1000, .not_after = 1300};
    assert_false(pki_should_renew(&id, 1000));
    assert_false(pki_should_renew(&id, 1199));
    assert_true(pki_should_renew(&id, 1200));
    assert_true(pki_should_renew(&id, 5000));
}

static void identity_needs_cn_and_org_to_agree(void **state)
{
    struct sc_error e = {0};
    /* a self-made certificate with CN node:x but the admins' O */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 60);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"swiftcube:admins", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"node:x", -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    struct pki_identity id;
    assert_int_equal(pki_identity_from_x509(x, &id, &e), 0);
    assert_string_equal(id.cn, "node:x");
    assert_int_equal(id.role, PKI_ROLE_NONE);
    assert_string_equal(id.name, "");
    /* a second CN makes the subject ambiguous: refused */
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"admin", -1, -1, 0);
    assert_int_equal(pki_identity_from_x509(x, &id, &e), -SC_E_INVALID);
    X509_free(x);
    EVP_PKEY_free(k);

    assert_int_equal(pki_identity_make(PKI_ROLE_NODE, "w7", &id, &e), 0);
    assert_string_equal(id.cn, "node:w7");
    assert_string_equal(id.org, "swiftcube:nodes");
    assert_int_equal(pki_identity_make(PKI_ROLE_ADMIN, NULL, &id, &e), 0);
    assert_string_equal(id.cn, "admin");
    assert_int_equal(pki_identity_make(PKI_ROLE_NONE, "x", &id, &e), -SC_E_INVALID);
}

/* ---- CSRs ------------------------------------------------------------------------------- */

static void csr_signed_for_the_allowed_name(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c");
    char *pem = ca_pem(ca), *key = NULL, *csr = NULL, *cert = NULL;
    struct pki_identity me;
    assert_int_equal(pki_identity_make(PKI_ROLE_NODE, "n1", &me, &e), 0);
    assert_int_equal(pki_csr_new(&me, &key, &csr, &e), 0);
    assert_non_null(strstr(csr, "BEGIN CERTIFICATE REQUEST"));
    assert_non_null(strstr(key, "PRIVATE KEY"));
    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600};
    assert_int_equal(pki_ca_sign_csr(ca, csr, &req, &cert, &e), 0);
    struct pki_identity id;
    assert_int_equal(pki_cert_verify(pem, cert, 0, &id, &e), 0);
    assert_int_equal(id.role, PKI_ROLE_NODE);
    assert_string_equal(id.name, "n1");
    /* the certificate is for the node's own key */
    X509 *x = x509_of(cert);
    BIO *b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_int_equal(X509_check_private_key(x, k), 1);
    EVP_PKEY_free(k);
    X509_free(x);

    /* refused: the CSR names another node, or asks to be admin */
    struct pki_issue n2 = {.role = PKI_ROLE_NODE, .name = "n2", .validity_sec = 3600};
    char *c2 = NULL;
    assert_int_equal(pki_ca_sign_csr(ca, csr, &n2, &c2, &e), -EACCES);
    assert_non_null(strstr(e.msg, "node:n1"));
    assert_null(c2);
    struct pki_identity adm;
    char *akey = NULL, *acsr = NULL;
    pki_identity_make(PKI_ROLE_ADMIN, NULL, &adm, &e);
    assert_int_equal(pki_csr_new(&adm, &akey, &acsr, &e), 0);
    assert_int_equal(pki_ca_sign_csr(ca, acsr, &req, &c2, &e), -EACCES);
    /* garbage is not a CSR */
    assert_int_equal(
        pki_ca_sign_csr(ca, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", &req, &c2, &e),
        -SC_E_INVALID);

    pki_secret_free(key);
    pki_secret_free(akey);
    free(csr);
    free(acsr);
    free(cert);
    free(pem);
    pki_ca_free(ca);
}

/* A CSR made by hand: subject, optional CA:TRUE + SAN request, signer may differ. */
static char *hand_csr(EVP_PKEY *pub, EVP_PKEY *signer, const char *cn, const char *org, bool ask_ca)
{
    X509_REQ *q = X509_REQ_new();
    X509_REQ_set_version(q, 0);
    X509_REQ_set_pubkey(q, pub);
    X509_NAME *n = X509_REQ_get_subject_name(q);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    if (ask_ca) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        sk_X509_EXTENSION_push(
            exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE"));
        sk_X509_EXTENSION_push(
            exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:evil.example"));
        sk_X509_EXTENSION_push(
            exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "critical,keyCertSign"));
        assert_int_equal(X509_REQ_add_extensions(q, exts), 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    assert_true(X509_REQ_sign(q, signer, EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256()) >
                0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, q);
    char *p = NULL;
    long len = BIO_get_mem_data(b, &p);
    char *s = xmalloc((size_t)len + 1);
    memcpy(s, p, (size_t)len);
    s[len] = '\0';
    BIO_free(b);
    X509_REQ_free(q);
    return s;
}

static void csr_extensions_are_not_copied(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c");
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *csr = hand_csr(k, k, "node:n1", "swiftcube:admins", true);
    /* the request really carries the extensions */
    BIO *b = BIO_new_mem_buf(csr, -1);
    X509_REQ *q = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    STACK_OF(X509_EXTENSION) *asked = X509_REQ_get_extensions(q);
    assert_int_equal(sk_X509_EXTENSION_num(asked), 3);
    sk_X509_EXTENSION_pop_free(asked, X509_EXTENSION_free);
    X509_REQ_free(q);

    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600};
    char *cert = NULL, *pem = ca_pem(ca);
    assert_int_equal(pki_ca_sign_csr(ca, csr, &req, &cert, &e), 0);
    X509 *x = x509_of(cert);
    assert_int_equal(X509_check_ca(x), 0);
    assert_int_equal(X509_check_host(x, "evil.example", 0, 0, NULL), 0);
    assert_null(X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL));
    assert_false(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
    struct pki_identity id;
    assert_int_equal(pki_cert_verify(pem, cert, 0, &id, &e), 0);
    assert_string_equal(id.org, "swiftcube:nodes"); /* O is the CA's choice too */
    assert_int_equal(id.role, PKI_ROLE_NODE);
    X509_free(x);
    EVP_PKEY_free(k);
    free(csr);
    free(cert);
    free(pem);
    pki_ca_free(ca);
}

static void csr_with_bad_signature_or_key_is_refused(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c");
    EVP_PKEY *a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    struct pki_issue req = {.role = PKI_ROLE_NODE, .name = "n1", .validity_sec = 3600};
    char *cert = NULL;
    /* key a in the request, signed by b: a proof of possession of nothing */
    char *csr = hand_csr(a, b, "node:n1", "swiftcube:nodes", false);
    assert_int_equal(pki_ca_sign_csr(ca, csr, &req, &cert, &e), -EBADMSG);
    free(csr);
    csr = hand_csr(ed, ed, "node:n1", "swiftcube:nodes", false);
    assert_int_equal(pki_ca_sign_csr(ca, csr, &req, &cert, &e), -SC_E_INVALID);
    free(csr);
    /* the control: the same path with a's own signature works */
    csr = hand_csr(a, a, "node:n1", "swiftcube:nodes", false);
    assert_int_equal(pki_ca_sign_csr(ca, csr, &req, &cert, &e), 0);
    free(csr);
    free(cert);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(ed);
    pki_ca_free(ca);
}

static char *slurp(const char *p)
{
    char *s = NULL;
    struct sc_error e = {0};
    assert_int_equal(pki_file_read(p, &s, &e), 0);
    return s;
}

static void ensure_issued_keeps_fresh_pairs_and_replaces_stale_ones(void **state)
{
    struct sc_error e = {0};
    struct pki_ca *ca = new_ca("c"), *other = new_ca("c");
    const char *crt = path("ctl.crt"), *key = path("ctl.key");
    struct pki_issue req = {
        .role = PKI_ROLE_CONTROLLER, .name = "c1", .ips = {"127.0.0.1"}, .validity_sec = 3600};
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 1);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *a = slurp(crt), *b = NULL, *pem = ca_pem(ca);
    struct pki_identity id;
    assert_int_equal(pki_cert_verify(pem, a, 0, &id, &e), 0);
    assert_string_equal(id.cn, "controller:c1");
    /* unchanged wish: kept, byte for byte */
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 0);
    b = slurp(crt);
    assert_string_equal(a, b);
    free(b);
    /* a new address: reissued, and the new one has both */
    req.ips[1] = "10.0.0.2";
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 1);
    b = slurp(crt);
    X509 *x = x509_of(b);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.2", 0), 1);
    X509_free(x);
    free(b);
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 0);
    /* the key lost or replaced: reissued */
    char *k2 = NULL, *c2 = NULL;
    assert_int_equal(pki_ca_issue(ca, &req, &k2, &c2, &e), 0);
    assert_int_equal(pki_file_write(key, k2, 0600, &e), 0);
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 1);
    assert_int_equal(unlink(key), 0);
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 1);
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 0);
    /* another CA now: reissued by it */
    assert_int_equal(pki_ca_ensure_issued(other, &req, crt, key, &e), 1);
    assert_int_equal(pki_ca_ensure_issued(other, &req, crt, key, &e), 0);
    /* past two thirds of its life: reissued */
    pki_secret_free(k2);
    free(c2);
    struct pki_issue old = req;
    old.not_before = time(NULL) - 3000;
    assert_int_equal(pki_ca_issue(ca, &old, &k2, &c2, &e), 0);
    assert_int_equal(pki_file_write(key, k2, 0600, &e), 0);
    assert_int_equal(pki_file_write(crt, c2, 0644, &e), 0);
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 1);
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 0);
    /* another identity in the files: reissued */
    req.name = "c2";
    assert_int_equal(pki_ca_ensure_issued(ca, &req, crt, key, &e), 1);
    pki_secret_free(k2);
    free(c2);
    free(a);
    free(pem);
    pki_ca_free(ca);
    pki_ca_free(other);
}

/* ---- files ------------------------------------------------------------------------------ */

static void key_files_are_0600_whatever_the_umask(void **state)
{
    struct sc_error e = {0};
    umask(0);
    assert_int_equal(pki_file_write(path("k"), "old", 0644, &e), 0);
    assert_int_equal(pki_file_write(path("k"), "secret", 0600, &e), 0);
    struct stat st;
    assert_int_equal(stat(path("k"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *s = NULL;
    assert_int_equal(pki_file_read(path("k"), &s, &e), 0);
    assert_string_equal(s, "secret");
    pki_secret_free(s);
    assert_int_equal(pki_file_read(path("missing"), &s, &e), -ENOENT);
    /* a file larger than any PEM we make is refused */
    char *big = xmalloc(PKI_PEM_MAX + 2);
    memset(big, 'a', PKI_PEM_MAX + 1);
    big[PKI_PEM_MAX + 1] = '\0';
    assert_int_equal(pki_file_write(path("big"), big, 0644, &e), 0);
    assert_int_equal(pki_file_read(path("big"), &s, &e), -EFBIG);
    free(big);
}

/* ---- tokens ----------------------------------------------------------------------------- */

static void token_format_and_randomness(void **state)
{
    struct sc_error e = {0};
    int seen[256] = {0};
    char prev[PKI_TOKEN_STR_LEN + 1] = "";
    for (int i = 0; i < 2000; i++) {
        struct pki_token t;
        assert_int_equal(pki_token_new(&t, &e), 0);
        char s[PKI_TOKEN_STR_LEN + 1];
        pki_token_format(&t, s);
        assert_int_equal(strlen(s), 23);
        assert_int_equal(s[6], '.');
        for (int j = 0; j < 23; j++)
            if (j != 6) {
                assert_true((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= '0' && s[j] <= '9'));
                seen[(unsigned char)s[j]]++;
            }
        assert_string_not_equal(s, prev);
        memcpy(prev, s, sizeof(prev));
        struct pki_token back;
        assert_int_equal(pki_token_parse(s, &back, &e), 0);
        assert_string_equal(back.id, t.id);
        assert_string_equal(back.secret, t.secret);
    }
    /* 44,000 symbols over 36: each about 1,222 times; a stuck or biased one shows */
    for (const char *c = "abcdefghijklmnopqrstuvwxyz0123456789"; *c; c++)
        assert_in_range(seen[(unsigned char)*c], 1000, 1450);
}

static void token_parse_errors(void **state)
{
    struct sc_error e = {0};
    struct pki_token t;
    static const char *bad[] = {
        "",
        "abcdef.0123456789abcde",   /* short */
        "abcdef.0123456789abcdef0", /* long */
        "abcdef00123456789abcdef",  /* no dot */
        "Abcdef.0123456789abcdef",  /* upper case id */
        "abcdef.0123456789abcdeF",  /* upper case secret */
        "abc-ef.0123456789abcdef",
        "abcdef.01234567 9abcdef",
        "abcdef:0123456789abcdef",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        e.msg[0] = '\0';
        assert_int_equal(pki_token_parse(bad[i], &t, &e), -SC_E_INVALID);
        assert_non_null(strstr(e.msg, "[a-z0-9]"));
    }
    assert_int_equal(pki_token_parse(NULL, &t, &e), -SC_E_INVALID);
    assert_int_equal(pki_token_parse("abcdef.0123456789abcdef", &t, &e), 0);
}

static void token_hash_and_check(void **state)
{
    struct sc_error e = {0};
    struct pki_token t;
    assert_int_equal(pki_token_parse("abcdef.0123456789abcdef", &t, &e), 0);
    struct pki_token_hash h;
    pki_token_hash(&t, &h);
    assert_string_equal(h.id, "abcdef");
    /* printf %s 0123456789abcdef | sha256sum */
    assert_string_equal(h.hash, "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f");
    assert_int_equal(pki_token_hash_valid(&h, &e), 0);
    assert_int_equal(pki_token_check(&h, &t, &e), 0);

    struct pki_token wrong;
    assert_int_equal(pki_token_parse("abcdef.0123456789abcdee", &wrong, &e), 0);
    assert_int_equal(pki_token_check(&h, &wrong, &e), -EACCES);
    assert_non_null(strstr(e.msg, "abcdef"));
    assert_null(strstr(e.msg, "0123456789")); /* the secret is never echoed */
    assert_int_equal(pki_token_parse("abcdeg.0123456789abcdef", &wrong, &e), 0);
    assert_int_equal(pki_token_check(&h, &wrong, &e), -EACCES);

    struct pki_token_hash broken = h;
    broken.hash[3] = 'X';
    assert_int_equal(pki_token_hash_valid(&broken, &e), -SC_E_INVALID);
    assert_int_equal(pki_token_check(&broken, &t, &e), -SC_E_INVALID);
    broken = h;
    broken.hash[3] = 'F';
    assert_int_equal(pki_token_check(&broken, &t, &e), -SC_E_INVALID);
    broken = h;
    broken.hash[63] = '\0';
    assert_int_equal(pki_token_check(&broken, &t, &e), -SC_E_INVALID);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ca_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_load_or_create_creates_once, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_hash_matches_openssl_cli_and_pins, setup, teardown),
        cmocka_unit_test_setup_teardown(operator_ca_from_openssl_cli, setup, teardown),
        cmocka_unit_test(controller_cert_has_sans_and_both_usages),
        cmocka_unit_test(node_cert_is_client_only_unless_asked),
        cmocka_unit_test(bad_names_and_sans_are_refused),
        cmocka_unit_test(cert_from_other_ca_fails_verification),
        cmocka_unit_test(expired_and_not_yet_valid_are_detected),
        cmocka_unit_test(leaf_never_outlives_its_ca),
        cmocka_unit_test(should_renew_at_two_thirds),
        cmocka_unit_test(identity_needs_cn_and_org_to_agree),
        cmocka_unit_test(csr_signed_for_the_allowed_name),
        cmocka_unit_test(csr_extensions_are_not_copied),
        cmocka_unit_test(csr_with_bad_signature_or_key_is_refused),
        cmocka_unit_test_setup_teardown(ensure_issued_keeps_fresh_pairs_and_replaces_stale_ones,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(key_files_are_0600_whatever_the_umask, setup, teardown),
        cmocka_unit_test(token_format_and_randomness),
        cmocka_unit_test(token_parse_errors),
        cmocka_unit_test(token_hash_and_check),
    };
    return sc_test_main(tests, argc, argv);
}
