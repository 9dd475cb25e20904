/*
 * agent_join.c: a node's certificate.  `slet --join URL --token T --ca-hash
 * sha256:H` gets one from a controller's join listener before the agent starts;
 * the heartbeat thread renews it (POST /v1/renew) once two thirds of its
 * lifetime have passed.  Files, in --pki-dir (default DATA/pki):
 *
 *   ca.crt     the cluster CA, trusted only after its key matched the pinned hash
 *   node.key   this node's private key (0600), made here, never sent
 *   node.crt   node:NAME, signed by the CA
 *
 * The join, step by step (docs/pki.md, "Join endpoint"):
 *   1. GET URL/v1/cluster/ca without verifying the server (nothing is trusted
 *      yet), then pki_hash_check against --ca-hash: a man in the middle can hand
 *      out only a CA whose key does not match the pin, and is refused here.
 *   2. A fresh key and a CSR for node:NAME (pki_csr_new).
 *   3. POST URL/v1/join with the token as a Bearer credential, now verifying the
 *      server against that CA; the answer is the certificate.
 * A node that already holds a certificate from the pinned CA for its name skips
 * the join (a restart does not spend a token).  URL may be a comma-separated list
 * of controllers' join listeners: a 503 (a follower) or no answer moves to the next;
 * a 409 (two joins counted the same use of a multi-use token at once) is retried.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "net/tls_curl.h"
#include "pki/pki.h"
#include "slet/agent.h"

struct body {
    struct sc_buf b;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct body *bd = ud;
    if (bd->b.len + sz * n > PKI_PEM_MAX * 4)
        return 0;
    sc_buf_put(&bd->b, p, sz * n);
    return sz * n;
}

/* One request; *status 0 when there was no answer (e says why). */
static int request(const char *url, const struct net_tls_files *f, const char *bearer,
                   const char *body, long *status, struct sc_buf *out, struct sc_error *e)
{
    CURL *c = curl_easy_init();
    if (!c)
        return sc_error_set(e, -ENOMEM, NULL, "curl_easy_init failed");
    char errbuf[CURL_ERROR_SIZE] = "";
    struct body bd = {0};
    struct curl_slist *h = NULL;
    int r = 0;
    if (f) {
        if ((r = net_tls_curl_setup(c, f, e)) < 0)
            goto out;
    } else { /* step 1: nothing to verify with yet; the pin checks what comes back */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
    }
    char auth[128];
    if (bearer) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bd);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cr = curl_easy_perform(c);
    *status = 0;
    if (cr != CURLE_OK) {
        r = sc_error_set(e, -ECONNREFUSED, NULL, "%s: %s", url,
                         errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    sc_buf_put_u8(&bd.b, 0);
    bd.b.len--;
    *out = bd.b;
    bd.b = (struct sc_buf){0};
out:
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    sc_buf_free(&bd.b);
    return r;
}

/* The server's error message from a JSON error body, or the body itself. */
static void error_text(const struct sc_buf *b, char *out, size_t size)
{
    json_t *o = json_loadb((const char *)b->data, b->len, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    snprintf(out, size, "%s", m ? m : b->len ? (const char *)b->data : "(empty body)");
    json_decref(o);
}

void slet_pki_paths(const struct slet_agent *a, struct slet_pki *p)
{
    char dir[3000];
    if (a->o.pki_dir)
        snprintf(dir, sizeof(dir), "%s", a->o.pki_dir);
    else
        snprintf(dir, sizeof(dir), "%s/pki", a->o.data_dir);
    snprintf(p->dir, sizeof(p->dir), "%s", dir);
    snprintf(p->ca, sizeof(p->ca), "%s/ca.crt", dir);
    snprintf(p->cert, sizeof(p->cert), "%s/node.crt", dir);
    snprintf(p->key, sizeof(p->key), "%s/node.key", dir);
}

/* True when node.crt is this node's, from the CA in ca.crt, and not expired. */
static bool have_cert(const struct slet_pki *p, const char *name)
{
    char *ca = NULL, *cert = NULL;
    struct sc_error e = {0};
    struct pki_identity id;
    bool ok = pki_file_read(p->ca, &ca, &e) >= 0 && pki_file_read(p->cert, &cert, &e) >= 0 &&
              access(p->key, R_OK) == 0 && pki_cert_verify(ca, cert, 0, &id, &e) >= 0 &&
              id.role == PKI_ROLE_NODE && !strcmp(id.name, name);
    free(ca);
    free(cert);
    return ok;
}

/* A key and a CSR for node:NAME, the request body with them, the key to keep.
 * The addresses the certificate names: --address and the --listen host (the logs
 * endpoint controllers connect to), when it is a specific one. */
static int csr_body(const struct slet_agent *a, bool with_name, char **key_pem, char **body,
                    struct sc_error *e)
{
    const char *name = a->o.name, *address = a->o.address;
    char lhost[64] = "";
    if (a->o.listen) {
        snprintf(lhost, sizeof(lhost), "%s", a->o.listen);
        char *colon = strrchr(lhost, ':');
        if (colon)
            *colon = '\0';
        if (!strcmp(lhost, "0.0.0.0") || (address && !strcmp(lhost, address)))
            lhost[0] = '\0';
    }
    struct pki_identity id;
    char *csr = NULL;
    int r = pki_identity_make(PKI_ROLE_NODE, name, &id, e);
    if (r < 0 || (r = pki_csr_new(&id, key_pem, &csr, e)) < 0)
        return r;
    json_t *o = json_pack("{s:s}", "csr", csr);
    if (with_name)
        json_object_set_new(o, "name", json_string(name));
    json_t *addrs = json_array();
    if (address && *address)
        json_array_append_new(addrs, json_string(address));
    if (lhost[0])
        json_array_append_new(addrs, json_string(lhost));
    json_object_set_new(o, "addresses", addrs);
    *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(csr);
    return 0;
}

/* Saves the key and the certificate from a {"cert": PEM} answer. */
static int save_pair(const struct slet_pki *p, const char *key_pem, const struct sc_buf *ans,
                     struct sc_error *e)
{
    json_t *o = json_loadb((const char *)ans->data, ans->len, 0, NULL);
    const char *cert = json_string_value(json_object_get(o, "cert"));
    int r;
    if (!cert)
        r = sc_error_set(e, -EPROTO, NULL, "the answer has no certificate");
    else if ((r = pki_file_write(p->key, key_pem, 0600, e)) >= 0)
        r = pki_file_write(p->cert, cert, 0644, e);
    json_decref(o);
    return r;
}

static int join_one(const struct slet_agent *a, const struct slet_pki *p, const char *base,
                    long *status, struct sc_error *e)
{
    char url[512];
    struct sc_buf ans = {0};
    /* 1. the CA, checked against the pin */
    snprintf(url, sizeof(url), "%s/v1/cluster/ca", base);
    int r = request(url, NULL, NULL, NULL, status, &ans, e);
    if (r < 0)
        return r;
    if (*status != 200) {
        char m[256];
        error_text(&ans, m, sizeof(m));
        sc_buf_free(&ans);
        return sc_error_set(e, -EPROTO, NULL, "%s: HTTP %ld: %s", url, *status, m);
    }
    if ((r = pki_hash_check((const char *)ans.data, a->o.ca_hash, e)) < 0) {
        sc_buf_free(&ans);
        if (r == -EKEYREJECTED)
            sc_error_set(e, r, NULL,
                         "%s: the CA it serves does not match --ca-hash %s: refusing to trust it",
                         base, a->o.ca_hash);
        *status = 0;
        return r;
    }
    r = pki_file_write(p->ca, (const char *)ans.data, 0644, e);
    sc_buf_free(&ans);
    if (r < 0)
        return r;
    /* 2, 3. the CSR, authenticated by the token, to a server verified by that CA */
    char *key = NULL, *body = NULL;
    if ((r = csr_body(a, true, &key, &body, e)) < 0)
        return r;
    snprintf(url, sizeof(url), "%s/v1/join", base);
    struct net_tls_files f = {.ca = p->ca};
    r = request(url, &f, a->o.token, body, status, &ans, e);
    free(body);
    if (r >= 0 && *status != 200) {
        char m[512];
        error_text(&ans, m, sizeof(m));
        r = sc_error_set(e, *status == 503 ? -EAGAIN : -EACCES, NULL, "%s: HTTP %ld: %s", url,
                         *status, m);
    } else if (r >= 0) {
        r = save_pair(p, key, &ans, e);
    }
    pki_secret_free(key);
    sc_buf_free(&ans);
    return r;
}

int slet_join(const struct slet_agent *a, struct sc_error *e)
{
    struct slet_pki p;
    slet_pki_paths(a, &p);
    int r = sc_mkdir_p(p.dir);
    if (r < 0)
        return sc_error_set(e, r, NULL, "--pki-dir %s: %s", p.dir, strerror(-r));
    chmod(p.dir, 0700);
    if (have_cert(&p, a->o.name)) {
        char *ca = NULL;
        bool same = pki_file_read(p.ca, &ca, e) >= 0 && pki_hash_check(ca, a->o.ca_hash, e) == 0;
        free(ca);
        if (same) {
            log_info("msg=\"node certificate kept\" file=%s", p.cert);
            return 0;
        }
    }
    char list[1024];
    snprintf(list, sizeof(list), "%s", a->o.join);
    srandom((unsigned)getpid() ^ (unsigned)time(NULL)); /* the 409 retries' jitter */
    for (int round = 0; round < 30; round++) {
        char *save = NULL;
        for (char *u = strtok_r(list, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
            long status = 0;
            r = join_one(a, &p, u, &status, e);
            /* 409: another node's join used the same token at the same moment (a
             * multi-use token); the leader is right here, so again at once */
            for (int again = 0; r < 0 && status == 409 && again < 10; again++) {
                struct timespec ts = {0, (50 + (long)(random() % 100)) * 1000 * 1000};
                nanosleep(&ts, NULL);
                r = join_one(a, &p, u, &status, e);
            }
            if (r >= 0) {
                log_info("msg=\"joined\" server=%s cert=%s", u, p.cert);
                return 0;
            }
            log_warn("msg=\"join failed\" server=%s error=\"%s\"", u, e->msg);
            if (status != 0 && status != 503)
                return r; /* refused: another controller would say the same */
            if (r == -EKEYREJECTED)
                return r;
        }
        snprintf(list, sizeof(list), "%s", a->o.join);
        sleep(1);
    }
    return r;
}

int slet_renew_if_due(struct slet_agent *a, struct sc_client *c, struct sc_error *e)
{
    struct slet_pki p;
    slet_pki_paths(a, &p);
    char *cert = NULL;
    struct pki_identity id;
    int r = pki_file_read(p.cert, &cert, e);
    if (r < 0)
        return r;
    r = pki_identity_from_pem(cert, &id, e);
    free(cert);
    if (r < 0 || !pki_should_renew(&id, time(NULL)))
        return r < 0 ? r : 0;
    char *key = NULL, *body = NULL;
    if ((r = csr_body(a, false, &key, &body, e)) < 0)
        return r;
    struct sc_reply rep = {0};
    r = sc_client_do(c, "POST", "/v1/renew", body, strlen(body), &rep, e);
    free(body);
    if (r >= 0 && rep.status != 200) {
        char m[512];
        error_text(&rep.body, m, sizeof(m));
        r = sc_error_set(e, -EACCES, NULL, "POST /v1/renew: HTTP %ld: %s", rep.status, m);
    } else if (r >= 0 && (r = save_pair(&p, key, &rep.body, e)) >= 0) {
        log_info("msg=\"node certificate renewed\" file=%s", p.cert);
        r = 1;
    }
    pki_secret_free(key);
    sc_reply_free(&rep);
    return r;
}
