/*
 * registry.c: push to and pull from an OCI distribution registry over libcurl.
 *
 * The protocol is the OCI distribution spec's small core: HEAD a blob to skip
 * uploading it twice, POST /v2/<repo>/blobs/uploads/ then PUT the bytes to the
 * returned Location with ?digest=, PUT /v2/<repo>/manifests/<tag>, and GET for
 * manifests and blobs.  Everything fetched is checked against its sha256 digest
 * before it is used, and a packed base additionally against the BLAKE3 identity
 * its manifest announces; signatures are still verified by the store, never here.
 *
 * Our images are pushed as OCI artifacts (see oci.h); any OCI image can be pulled
 * into an OCI image layout directory and imported with img_oci_import.  Responses
 * held in memory (manifests, configs, errors) are bounded; blobs stream to files.
 * libcurl is used only here, so only the tools that move images pay its footprint.
 */
#include "image/registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/util.h"
#include "image/img_int.h"

#define MEM_MAX (4u << 20)
#define ACCEPT_MANIFESTS                                                                           \
    "Accept: application/vnd.oci.image.manifest.v1+json, "                                         \
    "application/vnd.oci.image.index.v1+json, "                                                    \
    "application/vnd.docker.distribution.manifest.v2+json, "                                       \
    "application/vnd.docker.distribution.manifest.list.v2+json"

struct http_resp {
    long status;
    char *body; /* bounded, NUL-terminated */
    size_t len;
    bool too_big;
    char location[2048];
    char content_type[128];
    /* streaming a body to a file while hashing it */
    int out_fd;
    EVP_MD_CTX *sha;
    uint64_t written;
    int write_err;
};

static void resp_done(struct http_resp *r)
{
    free(r->body);
    if (r->sha)
        EVP_MD_CTX_free(r->sha);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct http_resp *r = ud;
    size_t len = sz * n;
    if (r->out_fd >= 0) {
        int q = sc_write_all(r->out_fd, p, len);
        if (q < 0) {
            r->write_err = q;
            return 0;
        }
        EVP_DigestUpdate(r->sha, p, len);
        r->written += len;
        return len;
    }
    if (r->len + len > MEM_MAX) {
        r->too_big = true;
        return 0;
    }
    r->body = xrealloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0)
        return;
    const char *v = line + nl;
    size_t vl = len - nl;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= outsz)
        vl = outsz - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct http_resp *r = ud;
    size_t len = sz * n;
    header_value(p, len, "Location:", r->location, sizeof(r->location));
    header_value(p, len, "Content-Type:", r->content_type, sizeof(r->content_type));
    return len;
}

struct http_req {
    const char *method; /* GET, HEAD, POST, PUT */
    const char *url;
    const char *content_type;
    const char *accept;
    const void *body; /* in memory */
    size_t body_len;
    int body_fd; /* or streamed from a file (>= 0) */
    uint64_t body_fd_len;
};

static size_t on_read_fd(char *buf, size_t sz, size_t n, void *ud)
{
    int fd = *(int *)ud;
    ssize_t r;
    while ((r = read(fd, buf, sz * n)) < 0 && errno == EINTR)
        ;
    return r < 0 ? CURL_READFUNC_ABORT : (size_t)r;
}

static int http(const struct http_req *q, struct http_resp *r, struct sc_error *e)
{
    static bool inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = true;
    }
    CURL *c = curl_easy_init();
    if (!c)
        sc_oom();
    struct curl_slist *hdrs = NULL;
    char ct[200];
    if (q->content_type) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", q->content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    if (q->accept)
        hdrs = curl_slist_append(hdrs, q->accept);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(q->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L); /* blobs may redirect to storage */
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    } else if (strcmp(q->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(q->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
    } else if (strcmp(q->method, "PUT") == 0) {
        if (q->body_fd >= 0) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read_fd);
            curl_easy_setopt(c, CURLOPT_READDATA, (void *)&q->body_fd);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_fd_len);
        } else {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        }
    }
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (r->write_err)
        return sc_error_set(e, r->write_err, "registry", "write: %s", strerror(-r->write_err));
    if (r->too_big)
        return sc_error_set(e, -SC_E_BODY_TOO_LARGE, "registry",
                            "%s %s: response larger than %u bytes", q->method, q->url, MEM_MAX);
    if (cc != CURLE_OK)
        return sc_error_set(e, -EIO, "registry", "%s %s: %s", q->method, q->url,
                            curl_easy_strerror(cc));
    return 0;
}

static int status_err(const char *what, const struct http_resp *r, struct sc_error *e)
{
    int code = r->status == 404 ? -SC_E_NOT_FOUND : -EIO;
    return sc_error_set(e, code, "registry", "%s: HTTP %ld: %.200s", what, r->status,
                        r->body ? r->body : "");
}

static bool repo_ok(const char *repo)
{
    /* The distribution spec's name grammar, loosely: lower-case components. */
    if (!*repo || strlen(repo) > 255 || repo[0] == '/' || strstr(repo, ".."))
        return false;
    for (const char *p = repo; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' || *p == '.' ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static bool tag_ok(const char *tag)
{
    size_t n = strlen(tag);
    if (n == 0 || n > 128)
        return false;
    for (const char *p = tag; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == ':'))
            return false;
    return true;
}

static int check_names(const char *repo, const char *tag, struct sc_error *e)
{
    if (!repo_ok(repo))
        return sc_error_set(e, -SC_E_INVALID, "repo", "bad repository name '%.80s'", repo);
    if (!tag_ok(tag))
        return sc_error_set(e, -SC_E_INVALID, "tag", "bad tag or digest '%.80s'", tag);
    return 0;
}

/* ---- blobs ------------------------------------------------------------------------- */

static int blob_exists(const char *base, const char *repo, const char *digest, bool *ret,
                       struct sc_error *e)
{
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "%s/v2/%s/blobs/%s", base, repo, digest) < 0)
        sc_oom();
    struct http_resp r = {.out_fd = -1};
    struct http_req q = {.method = "HEAD", .url = url, .body_fd = -1};
    int rc = http(&q, &r, e);
    if (rc >= 0) {
        if (r.status == 200)
            *ret = true;
        else if (r.status == 404)
            *ret = false;
        else
            rc = status_err("HEAD blob", &r, e);
    }
    resp_done(&r);
    return rc;
}

/* Uploads one blob, from memory (data) or from fd, unless the registry has it. */
static int push_blob(const char *base, const char *repo, const char *digest, const void *data,
                     size_t len, int fd, uint64_t fd_len, struct sc_error *e)
{
    bool have = false;
    int rc = blob_exists(base, repo, digest, &have, e);
    if (rc < 0 || have)
        return rc;
    _cleanup_free_ char *url = NULL, *put = NULL;
    if (asprintf(&url, "%s/v2/%s/blobs/uploads/", base, repo) < 0)
        sc_oom();
    struct http_resp r = {.out_fd = -1};
    struct http_req q = {.method = "POST", .url = url, .body_fd = -1};
    if ((rc = http(&q, &r, e)) < 0)
        goto out;
    if (r.status != 202 || !r.location[0]) {
        rc = status_err("start upload", &r, e);
        goto out;
    }
    const char *sep = strchr(r.location, '?') ? "&" : "?";
    if (r.location[0] == '/') {
        if (asprintf(&put, "%s%s%sdigest=%s", base, r.location, sep, digest) < 0)
            sc_oom();
    } else if (asprintf(&put, "%s%sdigest=%s", r.location, sep, digest) < 0)
        sc_oom();
    resp_done(&r);
    r = (struct http_resp){.out_fd = -1};
    struct http_req pq = {.method = "PUT",
                          .url = put,
                          .content_type = "application/octet-stream",
                          .body = data,
                          .body_len = len,
                          .body_fd = fd,
                          .body_fd_len = fd_len};
    if ((rc = http(&pq, &r, e)) < 0)
        goto out;
    if (r.status != 201)
        rc = status_err("upload blob", &r, e);
out:
    resp_done(&r);
    return rc;
}

static int push_blob_file(const char *base, const char *repo, const char *path,
                          char digest[IMG_SHA256_STR_LEN + 1], uint64_t *ret_size,
                          struct sc_error *e)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "registry", "open %s: %m", path);
    int rc = img_sha256_fd(fd, digest, ret_size);
    if (rc < 0)
        return sc_error_set(e, rc, "registry", "read %s: %s", path, strerror(-rc));
    if (lseek(fd, 0, SEEK_SET) < 0)
        return sc_error_set(e, -errno, "registry", "seek %s: %m", path);
    return push_blob(base, repo, digest, NULL, 0, fd, *ret_size, e);
}

/* Downloads blob digest into path (atomically), checking digest and size. */
static int pull_blob(const char *base, const char *repo, const char *digest, int64_t size,
                     const char *path, struct sc_error *e)
{
    if (!img_sha256_valid(digest))
        return sc_error_set(e, -SC_E_INVALID, "registry", "unsupported digest '%.80s'",
                            digest ? digest : "");
    _cleanup_free_ char *url = NULL, *tmp = NULL;
    if (asprintf(&url, "%s/v2/%s/blobs/%s", base, repo, digest) < 0 ||
        asprintf(&tmp, "%s.part.XXXXXX", path) < 0)
        sc_oom();
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(e, -errno, "registry", "create %s: %m", tmp);
    struct http_resp r = {.out_fd = fd, .sha = EVP_MD_CTX_new()};
    if (!r.sha)
        sc_oom();
    EVP_DigestInit_ex(r.sha, EVP_sha256(), NULL);
    struct http_req q = {.method = "GET", .url = url, .body_fd = -1};
    int rc = http(&q, &r, e);
    if (rc >= 0 && r.status != 200)
        rc = status_err("GET blob", &r, e);
    if (rc >= 0) {
        uint8_t d[32];
        unsigned dl = 0;
        char got[IMG_SHA256_STR_LEN + 1];
        EVP_DigestFinal_ex(r.sha, d, &dl);
        memcpy(got, "sha256:", 7);
        for (int i = 0; i < 32; i++)
            snprintf(got + 7 + 2 * i, 3, "%02x", d[i]);
        if (strcmp(got, digest) != 0 || (size >= 0 && (uint64_t)size != r.written))
            rc = sc_error_set(e, -SC_E_CORRUPT, "registry",
                              "blob %s from the registry does not match its digest", digest);
    }
    if (rc >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0))
        rc = sc_error_set(e, -errno, "registry", "write %s: %m", path);
    close(fd);
    if (rc < 0)
        unlink(tmp);
    resp_done(&r);
    return rc;
}

/* ---- manifests --------------------------------------------------------------------- */

static int put_manifest(const char *base, const char *repo, const char *tag, const char *media,
                        const char *body, size_t len, struct sc_error *e)
{
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "%s/v2/%s/manifests/%s", base, repo, tag) < 0)
        sc_oom();
    struct http_resp r = {.out_fd = -1};
    struct http_req q = {.method = "PUT",
                         .url = url,
                         .content_type = media,
                         .body = body,
                         .body_len = len,
                         .body_fd = -1};
    int rc = http(&q, &r, e);
    if (rc >= 0 && r.status != 201)
        rc = status_err("PUT manifest", &r, e);
    resp_done(&r);
    return rc;
}

/* GETs a manifest (or index) by tag or digest; *ret_body is the exact bytes. */
static int get_manifest(const char *base, const char *repo, const char *ref, char **ret_body,
                        size_t *ret_len, char ret_type[128], struct sc_error *e)
{
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "%s/v2/%s/manifests/%s", base, repo, ref) < 0)
        sc_oom();
    struct http_resp r = {.out_fd = -1};
    struct http_req q = {.method = "GET", .url = url, .accept = ACCEPT_MANIFESTS, .body_fd = -1};
    int rc = http(&q, &r, e);
    if (rc >= 0 && r.status != 200)
        rc = status_err("GET manifest", &r, e);
    if (rc >= 0 && img_sha256_valid(ref)) { /* fetched by digest: check it */
        char d[IMG_SHA256_STR_LEN + 1];
        img_sha256_mem(r.body ? r.body : "", r.len, d);
        if (strcmp(d, ref) != 0)
            rc = sc_error_set(e, -SC_E_CORRUPT, "registry", "manifest %s does not match", ref);
    }
    if (rc >= 0) {
        *ret_body = r.body ? TAKE_PTR(r.body) : xstrdup("");
        *ret_len = r.len;
        snprintf(ret_type, 128, "%s", r.content_type);
    }
    resp_done(&r);
    return rc;
}

static json_t *desc(const char *media, const char *digest, uint64_t size)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", media, "digest", digest, "size",
                     (json_int_t)size);
}

/* ---- our images -------------------------------------------------------------------- */

int img_registry_push(const char *base, const char *repo, const char *tag, const char *packed,
                      const char *sig_path, struct sc_error *e)
{
    int rc = check_names(repo, tag, e);
    if (rc < 0)
        return rc;
    /* The manifest of the packed base becomes the artifact's config. */
    struct img_manifest m = {0};
    struct img_reader *rd = NULL;
    struct img_id id;
    char *cfg = NULL, *man = NULL;
    json_t *j = NULL;
    {
        _cleanup_close_ int fd = open(packed, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return sc_error_set(e, -errno, "registry", "open %s: %m", packed);
        if ((rc = img_reader_open(fd, &rd, &m, e)) < 0)
            return rc;
        img_reader_free(rd);
    }
    size_t cfg_len;
    if ((rc = img_manifest_encode(&m, &cfg, &cfg_len)) < 0 ||
        (rc = img_id_of_file(packed, &id, e)) < 0)
        goto out;
    char ids[IMG_ID_STR_LEN + 1], cfg_d[IMG_SHA256_STR_LEN + 1], pk_d[IMG_SHA256_STR_LEN + 1];
    img_id_format(&id, ids);
    char sigline[320] = "";
    if (sig_path) {
        struct img_sig s;
        if ((rc = img_sig_read(sig_path, &s, e)) < 0)
            goto out;
        _cleanup_close_ int sfd = open(sig_path, O_RDONLY | O_CLOEXEC);
        ssize_t n = sfd >= 0 ? read(sfd, sigline, sizeof(sigline) - 1) : -1;
        if (n <= 0) {
            rc = sc_error_set(e, -EIO, "registry", "read %s", sig_path);
            goto out;
        }
        sigline[n] = '\0';
        sigline[strcspn(sigline, "\n")] = '\0';
    }
    img_sha256_mem(cfg, cfg_len, cfg_d);
    if ((rc = push_blob(base, repo, cfg_d, cfg, cfg_len, -1, 0, e)) < 0)
        goto out;
    uint64_t pk_size;
    if ((rc = push_blob_file(base, repo, packed, pk_d, &pk_size, e)) < 0)
        goto out;
    json_t *layer = desc(IMG_OCI_PACKED_TYPE, pk_d, pk_size);
    json_object_set_new(layer, "annotations", json_pack("{s:s}", IMG_OCI_ANN_IDENTITY, ids));
    json_t *ann = json_pack("{s:s}", IMG_OCI_ANN_IDENTITY, ids);
    if (sigline[0])
        json_object_set_new(ann, IMG_OCI_ANN_SIGNATURE, json_string(sigline));
    j = json_pack("{s:i, s:s, s:s, s:o, s:[o], s:o}", "schemaVersion", 2, "mediaType",
                  IMG_OCI_MANIFEST_TYPE, "artifactType", IMG_OCI_PACKED_TYPE, "config",
                  desc(IMG_OCI_CONFIG_TYPE, cfg_d, cfg_len), "layers", layer, "annotations", ann);
    man = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    if (!man)
        sc_oom();
    rc = put_manifest(base, repo, tag, IMG_OCI_MANIFEST_TYPE, man, strlen(man), e);
out:
    json_decref(j);
    free(man);
    free(cfg);
    img_manifest_done(&m);
    return rc;
}

int img_registry_pull(const char *base, const char *repo, const char *tag, const char *out_packed,
                      const char *out_sig, struct img_id *ret_id, struct sc_error *e)
{
    int rc = check_names(repo, tag, e);
    if (rc < 0)
        return rc;
    char *body = NULL, type[128];
    size_t len;
    if ((rc = get_manifest(base, repo, tag, &body, &len, type, e)) < 0)
        return rc;
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    free(body);
    json_t *layer = json_array_get(json_object_get(j, "layers"), 0);
    const char *media = json_string_value(json_object_get(layer, "mediaType"));
    const char *digest = json_string_value(json_object_get(layer, "digest"));
    json_t *ann = json_object_get(j, "annotations");
    const char *ids = json_string_value(json_object_get(ann, IMG_OCI_ANN_IDENTITY));
    const char *sigline = json_string_value(json_object_get(ann, IMG_OCI_ANN_SIGNATURE));
    json_t *size = json_object_get(layer, "size");
    struct img_id want, got;
    if (!j || !media || strcmp(media, IMG_OCI_PACKED_TYPE) != 0 || !ids ||
        img_id_parse(ids, &want, NULL) < 0) {
        rc = sc_error_set(e, -SC_E_INVALID, "registry",
                          "%s:%s is not a SwiftCube image (use img_registry_pull_oci + import)",
                          repo, tag);
        goto out;
    }
    if ((rc = pull_blob(base, repo, digest, json_is_integer(size) ? json_integer_value(size) : -1,
                        out_packed, e)) < 0)
        goto out;
    if ((rc = img_id_of_file(out_packed, &got, e)) < 0)
        goto out;
    if (!img_id_equal(&want, &got)) {
        rc = sc_error_set(e, -EBADMSG, "registry",
                          "%s:%s: packed base does not have the identity %s its manifest names",
                          repo, tag, ids);
        unlink(out_packed);
        goto out;
    }
    rc = 0;
    if (out_sig) {
        unlink(out_sig);
        if (sigline) {
            struct img_sig s;
            if ((rc = img_sig_decode(sigline, strlen(sigline), &s, e)) < 0 ||
                (rc = img_sig_write(out_sig, &s, e)) < 0)
                goto out;
            rc = 1;
        }
    }
    if (ret_id)
        *ret_id = got;
out:
    json_decref(j);
    return rc;
}

/* ---- any OCI image ----------------------------------------------------------------- */

static int write_all_at(int dirfd, const char *name, const void *data, size_t len,
                        struct sc_error *e)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sc_error_set(e, -errno, "oci", "create %s: %m", name);
    int rc = sc_write_all(fd, data, len);
    return rc < 0 ? sc_error_set(e, rc, "oci", "write %s: %s", name, strerror(-rc)) : 0;
}

static bool is_index_type(const char *t)
{
    return t && (strstr(t, "image.index") || strstr(t, "manifest.list"));
}

int img_registry_pull_oci(const char *base, const char *repo, const char *tag, const char *layout,
                          struct sc_error *e)
{
    int rc = check_names(repo, tag, e);
    if (rc < 0)
        return rc;
    char *body = NULL, type[128];
    size_t len;
    json_t *j = NULL;
    _cleanup_free_ char *blobs = NULL;
    if (asprintf(&blobs, "%s/blobs/sha256", layout) < 0)
        sc_oom();
    if ((rc = sc_mkdir_p(blobs)) < 0)
        return sc_error_set(e, rc, "oci", "mkdir %s: %s", blobs, strerror(-rc));
    _cleanup_close_ int lfd = open(layout, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0)
        return sc_error_set(e, -errno, "oci", "open %s: %m", layout);
    if ((rc = get_manifest(base, repo, tag, &body, &len, type, e)) < 0)
        return rc;
    json_error_t jerr;
    if (is_index_type(type)) {
        /* A multi-platform index: take linux/amd64. */
        j = json_loadb(body, len, 0, &jerr);
        size_t i;
        json_t *d;
        const char *pick = NULL;
        json_array_foreach(json_object_get(j, "manifests"), i, d)
        {
            json_t *p = json_object_get(d, "platform");
            const char *os = json_string_value(json_object_get(p, "os"));
            const char *arch = json_string_value(json_object_get(p, "architecture"));
            if (os && arch && !strcmp(os, "linux") && !strcmp(arch, "amd64"))
                pick = json_string_value(json_object_get(d, "digest"));
        }
        free(body);
        body = NULL;
        if (!pick || !img_sha256_valid(pick)) {
            rc = sc_error_set(e, -SC_E_NOT_FOUND, "oci", "%s:%s has no linux/amd64 image", repo,
                              tag);
            goto out;
        }
        _cleanup_free_ char *pd = xstrdup(pick);
        json_decref(j);
        j = NULL;
        if ((rc = get_manifest(base, repo, pd, &body, &len, type, e)) < 0)
            goto out;
    }
    j = json_loadb(body, len, 0, &jerr);
    if (!j) {
        rc = sc_error_set(e, -SC_E_INVALID, "oci", "manifest: %s", jerr.text);
        goto out;
    }
    /* Config and layers into the layout, each checked against its digest. */
    json_t *all = json_array();
    json_array_append(all, json_object_get(j, "config"));
    json_array_extend(all, json_object_get(j, "layers"));
    size_t i;
    json_t *d;
    json_array_foreach(all, i, d)
    {
        const char *dg = json_string_value(json_object_get(d, "digest"));
        json_t *sz = json_object_get(d, "size");
        if (!img_sha256_valid(dg)) {
            rc = sc_error_set(e, -SC_E_INVALID, "oci", "unsupported digest in manifest");
            break;
        }
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", blobs, dg + 7) < 0)
            sc_oom();
        if ((rc = pull_blob(base, repo, dg, json_is_integer(sz) ? json_integer_value(sz) : -1, p,
                            e)) < 0)
            break;
    }
    json_decref(all);
    if (rc < 0)
        goto out;
    char md[IMG_SHA256_STR_LEN + 1], name[96];
    img_sha256_mem(body, len, md);
    snprintf(name, sizeof(name), "blobs/sha256/%s", md + 7);
    if ((rc = write_all_at(lfd, name, body, len, e)) < 0)
        goto out;
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    json_t *index =
        json_pack("{s:i, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "manifests",
                  "mediaType", mt ? mt : IMG_OCI_MANIFEST_TYPE, "digest", md, "size",
                  (json_int_t)len, "annotations", "org.opencontainers.image.ref.name", tag);
    char *is = json_dumps(index, JSON_COMPACT);
    json_decref(index);
    static const char layout_file[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    rc = write_all_at(lfd, "oci-layout", layout_file, sizeof(layout_file) - 1, e);
    if (rc >= 0)
        rc = write_all_at(lfd, "index.json", is, strlen(is), e);
    free(is);
out:
    free(body);
    json_decref(j);
    return rc;
}

int img_registry_push_oci(const char *base, const char *repo, const char *tag, const char *layout,
                          const char *ref, struct sc_error *e)
{
    int rc = check_names(repo, tag, e);
    if (rc < 0)
        return rc;
    json_error_t jerr;
    _cleanup_free_ char *ipath = NULL;
    if (asprintf(&ipath, "%s/index.json", layout) < 0)
        sc_oom();
    json_t *index = json_load_file(ipath, 0, &jerr);
    if (!index)
        return sc_error_set(e, -SC_E_INVALID, "oci", "%s: %s", ipath, jerr.text);
    json_t *pick = NULL, *d, *man = NULL;
    size_t i;
    json_array_foreach(json_object_get(index, "manifests"), i, d)
    {
        const char *n = json_string_value(json_object_get(json_object_get(d, "annotations"),
                                                          "org.opencontainers.image.ref.name"));
        if (!ref || (n && strcmp(n, ref) == 0))
            pick = d;
    }
    const char *md = json_string_value(json_object_get(pick, "digest"));
    const char *mt = json_string_value(json_object_get(pick, "mediaType"));
    char *body = NULL;
    size_t len = 0;
    if (!pick || !img_sha256_valid(md)) {
        rc = sc_error_set(e, -SC_E_NOT_FOUND, "oci", "no image '%s' in %s", ref ? ref : "", layout);
        goto out;
    }
    {
        _cleanup_free_ char *mp = NULL;
        if (asprintf(&mp, "%s/blobs/sha256/%s", layout, md + 7) < 0)
            sc_oom();
        FILE *f = fopen(mp, "re");
        if (!f) {
            rc = sc_error_set(e, -errno, "oci", "open %s: %m", mp);
            goto out;
        }
        body = xmalloc(MEM_MAX);
        len = fread(body, 1, MEM_MAX, f);
        fclose(f);
    }
    char check[IMG_SHA256_STR_LEN + 1];
    img_sha256_mem(body, len, check);
    if (strcmp(check, md) != 0 || !(man = json_loadb(body, len, 0, &jerr))) {
        rc = sc_error_set(e, -SC_E_CORRUPT, "oci", "manifest %s is corrupt", md);
        goto out;
    }
    json_t *all = json_array();
    json_array_append(all, json_object_get(man, "config"));
    json_array_extend(all, json_object_get(man, "layers"));
    json_array_foreach(all, i, d)
    {
        const char *dg = json_string_value(json_object_get(d, "digest"));
        if (!img_sha256_valid(dg)) {
            rc = sc_error_set(e, -SC_E_INVALID, "oci", "unsupported digest in manifest");
            break;
        }
        _cleanup_free_ char *bp = NULL;
        char got[IMG_SHA256_STR_LEN + 1];
        uint64_t sz;
        if (asprintf(&bp, "%s/blobs/sha256/%s", layout, dg + 7) < 0)
            sc_oom();
        if ((rc = push_blob_file(base, repo, bp, got, &sz, e)) < 0)
            break;
        if (strcmp(got, dg) != 0) {
            rc = sc_error_set(e, -SC_E_CORRUPT, "oci", "blob %s is corrupt", dg);
            break;
        }
    }
    json_decref(all);
    if (rc >= 0)
        rc = put_manifest(base, repo, tag, mt ? mt : IMG_OCI_MANIFEST_TYPE, body, len, e);
out:
    free(body);
    json_decref(man);
    json_decref(index);
    return rc;
}
