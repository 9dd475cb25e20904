/*
 * slet_image.c: `slet image ...`, the node's image store by hand, and the store
 * helpers `slet cell run --image` uses.
 *
 *   slet image keygen PRIV.pem PUB.pem
 *   slet image pack DIR -o FILE [--name N] [--writable P]... [--arg A]... [--env K=V]...
 *                   [--workdir D]
 *   slet image sign FILE --key PRIV.pem [-o SIG]          (SIG defaults to FILE.sig)
 *   slet image import FILE [--sig SIG]                    (SIG defaults to FILE.sig)
 *   slet image import OCI-LAYOUT --key PRIV.pem [--ref R] [--name N]
 *   slet image ls | rm REF | push REF URL | pull URL | gc [--min-idle S] | verify
 *   common: --store DIR (default /var/lib/slet/images), --trust DIR of *.pem
 *           public keys (default /etc/swiftcube/trusted-keys)
 *
 * Each subcommand parses, validates and then calls the src/image function that
 * docs/image.md maps to it; the verification of signatures is the store's
 * (img_store_add), never this file's.  A REF is an identity `blake3:<hex>` or
 * the name of exactly one stored image.  A URL is `http[s]://HOST[:PORT]/REPO[:TAG]`
 * (tag `latest` by default).  Every error names the path, store or URL it is
 * about and the exit status is 1 (2 for usage errors).
 */
#include "slet/slet.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "image/image.h"
#include "image/registry.h"

#define DEFAULT_STORE "/var/lib/slet/images"
#define DEFAULT_TRUST "/etc/swiftcube/trusted-keys"

int slet_store_open(const char *root, const char *trust_dir, bool need_trust, struct slet_store *ss,
                    struct sc_error *e)
{
    memset(ss, 0, sizeof(*ss));
    root = root ? root : DEFAULT_STORE;
    char cwd[PATH_MAX] = "";
    if (root[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        return sc_error_set(e, -errno, "store", "store %s: cannot get the working directory: %s",
                            root, strerror(errno));
    if (snprintf(ss->root, sizeof(ss->root), "%s%s%s", cwd, cwd[0] ? "/" : "", root) >=
        (int)sizeof(ss->root))
        return sc_error_set(e, -ENAMETOOLONG, "store", "store path %s is too long", root);
    trust_dir = trust_dir ? trust_dir : DEFAULT_TRUST;
    ss->trust = img_trust_new();
    struct stat st;
    int r = 0;
    if (stat(trust_dir, &st) == 0)
        r = img_trust_load_dir(ss->trust, trust_dir, e);
    else if (need_trust)
        r = sc_error_set(e, -errno, "trust", "trusted keys directory %s: %s (--trust DIR)",
                         trust_dir, strerror(errno));
    if (r >= 0 && need_trust && img_trust_count(ss->trust) == 0)
        r = sc_error_set(e, -ENOKEY, "trust",
                         "no trusted public keys (*.pem) in %s, so no image can be accepted "
                         "(--trust DIR)",
                         trust_dir);
    /* The store is locked by one process at a time: wait a little for another slet. */
    for (int i = 0; r >= 0 && i < 50; i++) {
        r = img_store_open(ss->root, ss->trust, &ss->store, e);
        if (r != -EBUSY)
            break;
        usleep(100 * 1000);
    }
    if (r < 0) {
        img_trust_free(ss->trust);
        ss->trust = NULL;
    }
    return r;
}

void slet_store_close(struct slet_store *ss)
{
    img_store_free(ss->store);
    img_trust_free(ss->trust);
    ss->store = NULL;
    ss->trust = NULL;
}

int slet_image_resolve(struct slet_store *ss, const char *ref, struct img_id *ret,
                       struct sc_error *e)
{
    /* A manifest's NAME@blake3:HEX names the image by its digest alone. */
    const char *at = strstr(ref, "@blake3:");
    if (at)
        ref = at + 1;
    bool digest = !strncmp(ref, "blake3:", 7);
    if (digest && strlen(ref) == IMG_ID_STR_LEN)
        return img_id_parse(ref, ret, e);
    if (digest && strlen(ref) < 7 + 4)
        return sc_error_set(e, -SC_E_INVALID, "ref",
                            "image digest \"%s\" is too short (at least 4 hex digits)", ref);
    /* A name, or an abbreviated digest (as git and docker resolve short ids); a
     * NAME[:TAG] or HOST/PATH/NAME[:TAG] reference also matches a stored NAME. */
    char base[IMG_NAME_MAX + 1] = "";
    if (!digest) {
        const char *slash = strrchr(ref, '/');
        snprintf(base, sizeof(base), "%s", slash ? slash + 1 : ref);
        base[strcspn(base, ":")] = '\0';
    }
    struct img_store_info *infos = NULL;
    size_t n = 0, found = 0, found_base = 0;
    struct img_id by_base = {0};
    int r = img_store_list(ss->store, &infos, &n, e);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        char idstr[IMG_ID_STR_LEN + 1];
        img_id_format(&infos[i].id, idstr);
        if (digest ? !strncasecmp(idstr, ref, strlen(ref)) : !strcmp(infos[i].name, ref)) {
            *ret = infos[i].id;
            found++;
        } else if (!digest && !strcmp(infos[i].name, base)) {
            by_base = infos[i].id;
            found_base++;
        }
    }
    free(infos);
    if (found == 0 && found_base == 1) {
        *ret = by_base;
        found = 1;
    }
    if (found == 0 && found_base > 1)
        return sc_error_set(e, -SC_E_INVALID, "ref",
                            "%zu images are named \"%s\" in store %s; use its full blake3: "
                            "identity, or remove the others (slet image rm)",
                            found_base, base, ss->root);
    if (found == 0)
        return sc_error_set(e, -SC_E_NOT_FOUND, "ref",
                            "no image %s \"%s\" in store %s (a REF is blake3:<hex> or a name; "
                            "see slet image ls)",
                            digest ? "with digest" : "named", ref, ss->root);
    if (found > 1)
        return sc_error_set(e, -SC_E_INVALID, "ref",
                            "%zu images %s \"%s\" in store %s; use its full blake3: identity",
                            found, digest ? "match" : "are named", ref, ss->root);
    return 0;
}

/* ---- the subcommands -------------------------------------------------------------- */

struct image_args {
    const char *store, *trust, *out, *key, *sig, *name, *ref, *workdir;
    const char *writable[IMG_MAX_WRITABLE + 1], *argv[IMG_MAX_ARGS + 1], *env[IMG_MAX_ENV + 1];
    size_t n_writable, argc, n_env;
    int64_t min_idle;
    char **pos; /* positional arguments */
    int n_pos;
};

static const char usage_text[] =
    "usage: slet image keygen PRIV.pem PUB.pem\n"
    "       slet image pack DIR -o FILE [--name N] [--writable P]... [--arg A]...\n"
    "                       [--env K=V]... [--workdir D]\n"
    "       slet image sign FILE --key PRIV.pem [-o SIG]\n"
    "       slet image import FILE [--sig SIG] | OCI-LAYOUT --key PRIV.pem [--ref R] [--name N]\n"
    "       slet image ls | rm REF | push REF URL | pull URL | gc [--min-idle S] | verify\n"
    "       common: --store DIR (" DEFAULT_STORE "), --trust DIR (" DEFAULT_TRUST ")\n"
    "       REF: blake3:<hex> or an image name; URL: http[s]://HOST[:PORT]/REPO[:TAG]\n";

__attribute__((format(printf, 2, 3))) static int usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "slet image %s: ", verb);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

/* Prints "slet image VERB WHERE: message" and returns 1. */
int slet_image_lease_take(struct slet_image_lease *il, const char *store_dir, const char *trust_dir,
                          const char *ref, const char *holder, struct sc_error *e)
{
    struct slet_store ss;
    il->store_dir = store_dir;
    il->trust_dir = trust_dir;
    snprintf(il->holder, sizeof(il->holder), "%s", holder);
    int r = slet_store_open(store_dir, trust_dir, false, &ss, e);
    if (r < 0)
        return r;
    r = slet_image_resolve(&ss, ref, &il->id, e);
    if (r >= 0)
        r = img_store_acquire(ss.store, &il->id, holder, &il->root, e);
    slet_store_close(&ss); /* the lease (a file) outlives the lock */
    if (r < 0)
        return r;
    /* The manifest sits beside the tree: .../images/<hex>/{rootfs,manifest.json}. */
    char path[PATH_MAX], *buf = xmalloc(IMG_MANIFEST_MAX + 1);
    snprintf(path, sizeof(path), "%s/../manifest.json", il->root);
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, IMG_MANIFEST_MAX + 1, f) : 0;
    if (!f)
        r = sc_error_set(e, -errno, NULL, "cannot read %s: %s", path, strerror(errno));
    else
        r = img_manifest_decode(buf, n, &il->manifest, e);
    if (f)
        fclose(f);
    free(buf);
    if (r < 0) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%s", e->msg);
        sc_error_set(e, r, NULL, "manifest %s: %s", path, msg);
        img_manifest_done(&il->manifest);
        il->manifest = (struct img_manifest){0};
        struct sc_error e2 = {0};
        if (slet_store_open(store_dir, trust_dir, false, &ss, &e2) >= 0) {
            img_store_release(ss.store, &il->id, il->holder, &e2);
            slet_store_close(&ss);
        }
        free(il->root);
        il->root = NULL;
    }
    return r;
}

void slet_image_lease_drop(struct slet_image_lease *il)
{
    if (!il->root)
        return;
    struct slet_store ss;
    struct sc_error e = {0};
    int r = slet_store_open(il->store_dir, il->trust_dir, false, &ss, &e);
    if (r >= 0) {
        r = img_store_release(ss.store, &il->id, il->holder, &e);
        slet_store_close(&ss);
    }
    if (r < 0)
        fprintf(stderr, "slet: releasing image lease %s: %s\n", il->holder, e.msg);
    img_manifest_done(&il->manifest);
    free(il->root);
    il->root = NULL;
}

static int fail(const char *verb, const char *where, int r, const struct sc_error *e)
{
    fprintf(stderr, "slet image %s %s: %s\n", verb, where,
            e->msg[0] ? e->msg : (r <= -SC_E_BASE ? sc_err_message(r) : strerror(-r)));
    return 1;
}

static int add_str(const char **arr, size_t *n, size_t max, const char *s)
{
    if (*n == max)
        return -1;
    arr[(*n)++] = s;
    arr[*n] = NULL;
    return 0;
}

static int parse_args(const char *verb, int argc, char **argv, struct image_args *a)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},   {"trust", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},  {"key", required_argument, NULL, 'k'},
        {"sig", required_argument, NULL, 'S'},     {"name", required_argument, NULL, 'n'},
        {"ref", required_argument, NULL, 'R'},     {"writable", required_argument, NULL, 'w'},
        {"arg", required_argument, NULL, 'a'},     {"env", required_argument, NULL, 'e'},
        {"workdir", required_argument, NULL, 'W'}, {"min-idle", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},          {0},
    };
    const char **str_opts[128] = {
        ['s'] = &a->store, ['t'] = &a->trust, ['o'] = &a->out, ['k'] = &a->key,
        ['S'] = &a->sig,   ['n'] = &a->name,  ['R'] = &a->ref, ['W'] = &a->workdir,
    };
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        if (o > 0 && o < 128 && str_opts[o]) {
            *str_opts[o] = optarg;
            continue;
        }
        switch (o) {
        case 'w':
            if (add_str(a->writable, &a->n_writable, IMG_MAX_WRITABLE, optarg) < 0)
                return usage_error(verb, "more than %d --writable", IMG_MAX_WRITABLE);
            break;
        case 'a':
            if (add_str(a->argv, &a->argc, IMG_MAX_ARGS, optarg) < 0)
                return usage_error(verb, "more than %d --arg", IMG_MAX_ARGS);
            break;
        case 'e':
            if (!strchr(optarg, '=') || add_str(a->env, &a->n_env, IMG_MAX_ENV, optarg) < 0)
                return usage_error(verb, "bad --env \"%s\" (K=V, at most %d)", optarg, IMG_MAX_ENV);
            break;
        case 'i': {
            char *end;
            a->min_idle = strtoll(optarg, &end, 10);
            if (*end || a->min_idle < 0)
                return usage_error(verb, "bad --min-idle \"%s\" (seconds)", optarg);
            break;
        }
        default:
            return usage_error(verb, "%s", "see usage");
        }
    }
    a->pos = argv + optind;
    a->n_pos = argc - optind;
    return 0;
}

/* A temporary directory for files on their way into or out of the store. */
#define TMP_DIR_MAX 256
static int tmp_dir(char out[TMP_DIR_MAX], struct sc_error *e)
{
    const char *t = getenv("TMPDIR");
    if (snprintf(out, TMP_DIR_MAX, "%s/slet-image-XXXXXX", t && *t ? t : "/tmp") >= TMP_DIR_MAX)
        return sc_error_set(e, -ENAMETOOLONG, NULL, "TMPDIR %s is too long", t);
    if (!mkdtemp(out))
        return sc_error_set(e, -errno, NULL, "cannot make a temporary directory %s: %s", out,
                            strerror(errno));
    return 0;
}

static void tmp_dir_remove(const char *dir, const char *const *files)
{
    char p[PATH_MAX];
    for (size_t i = 0; files[i]; i++) {
        if (snprintf(p, sizeof(p), "%s/%s", dir, files[i]) < (int)sizeof(p))
            unlink(p);
    }
    rmdir(dir);
}

static int cmd_keygen(struct image_args *a, struct slet_store *ss)
{
    struct sc_error e = {0};
    char key_id[IMG_KEY_ID_LEN + 1];
    int r = img_key_generate(a->pos[0], a->pos[1], key_id, &e);
    if (r < 0)
        return fail("keygen", a->pos[0], r, &e);
    printf("%s\n", key_id);
    return 0;
}

static int cmd_pack(struct image_args *a, struct slet_store *ss)
{
    if (!a->out)
        return usage_error("pack", "%s", "needs DIR and -o FILE");
    struct img_pack_opts po = {
        .name = a->name,
        .writable = a->n_writable ? a->writable : NULL,
        .argv = a->argc ? a->argv : NULL,
        .env = a->n_env ? a->env : NULL,
        .workdir = a->workdir,
    };
    struct sc_error e = {0};
    struct img_id id;
    int r = img_pack(a->pos[0], a->out, &po, &id, &e);
    if (r < 0)
        return fail("pack", a->pos[0], r, &e);
    char s[IMG_ID_STR_LEN + 1];
    img_id_format(&id, s);
    printf("%s\n", s);
    return 0;
}

static int cmd_sign(struct image_args *a, struct slet_store *ss)
{
    if (!a->key)
        return usage_error("sign", "%s", "needs FILE and --key PRIV.pem");
    char sig[PATH_MAX];
    if (snprintf(sig, sizeof(sig), "%s.sig", a->pos[0]) >= (int)sizeof(sig))
        return usage_error("sign", "%s", "FILE path too long");
    struct sc_error e = {0};
    struct img_sig out;
    int r = img_sign_file(a->key, a->pos[0], a->out ? a->out : sig, &out, &e);
    if (r < 0)
        return fail("sign", a->pos[0], r, &e);
    char s[IMG_ID_STR_LEN + 1];
    img_id_format(&out.id, s);
    printf("%s %s %s\n", s, out.key_id, a->out ? a->out : sig);
    return 0;
}

/* Adds packed (+ sig, may be NULL) to the store and prints the identity. */
static int add_to_store(const char *verb, const char *what, const struct image_args *a,
                        const char *packed, const char *sig)
{
    struct slet_store ss;
    struct sc_error e = {0};
    int r = slet_store_open(a->store, a->trust, true, &ss, &e);
    if (r < 0) /* the message names the store or the trust directory */
        return fail(verb, what, r, &e);
    struct img_id id;
    r = img_store_add(ss.store, packed, sig, &id, &e);
    slet_store_close(&ss);
    if (r < 0)
        return fail(verb, what, r, &e);
    char s[IMG_ID_STR_LEN + 1];
    img_id_format(&id, s);
    printf("%s\n", s);
    return 0;
}

static int cmd_import(struct image_args *a, struct slet_store *ss)
{
    const char *src = a->pos[0];
    struct stat st;
    if (stat(src, &st) < 0) {
        fprintf(stderr, "slet image import %s: %s\n", src, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        char sig[PATH_MAX];
        if (snprintf(sig, sizeof(sig), "%s.sig", src) >= (int)sizeof(sig))
            return usage_error("import", "%s", "FILE path too long");
        const char *sp = a->sig ? a->sig : (access(sig, F_OK) == 0 ? sig : NULL);
        if (a->key)
            return usage_error("import", "%s",
                               "--key is for OCI layouts; sign FILE with "
                               "slet image sign");
        return add_to_store("import", src, a, src, sp);
    }
    /* An OCI layout: flatten, pack, and sign with the importer's key. */
    if (!a->key)
        return usage_error("import",
                           "OCI layout %s is not signed: give --key PRIV.pem to sign "
                           "it as you import it",
                           src);
    char dir[TMP_DIR_MAX], packed[PATH_MAX], sig[PATH_MAX];
    struct sc_error e = {0};
    int r = tmp_dir(dir, &e);
    if (r < 0)
        return fail("import", src, r, &e);
    snprintf(packed, sizeof(packed), "%s/image.pack", dir);
    snprintf(sig, sizeof(sig), "%s/image.pack.sig", dir);
    struct img_id id;
    struct img_sig s;
    r = img_oci_import(src, a->ref, packed, a->name, &id, &e);
    int code = r < 0 ? fail("import", src, r, &e) : 0;
    if (!code && (r = img_sign_file(a->key, packed, sig, &s, &e)) < 0)
        code = fail("import", a->key, r, &e);
    if (!code)
        code = add_to_store("import", src, a, packed, sig);
    tmp_dir_remove(dir, (const char *const[]){"image.pack", "image.pack.sig", NULL});
    return code;
}

static int cmd_ls(struct image_args *a, struct slet_store *ss)
{
    struct sc_error e = {0};
    const char *where = ss->root;
    struct img_store_info *infos = NULL;
    size_t n = 0;
    int r = img_store_list(ss->store, &infos, &n, &e);
    if (r < 0)
        return fail("ls", where, r, &e);
    printf("%-71s %-20s %8s %12s %6s %8s\n", "ID", "NAME", "FILES", "BYTES", "LEASES", "IDLE");
    for (size_t i = 0; i < n; i++) {
        char s[IMG_ID_STR_LEN + 1];
        img_id_format(&infos[i].id, s);
        printf("%-71s %-20s %8" PRIu64 " %12" PRIu64 " %6zu %7" PRId64 "s\n", s, infos[i].name,
               infos[i].files, infos[i].content_bytes, infos[i].leases, infos[i].idle_sec);
    }
    free(infos);
    return 0;
}

static int cmd_rm(struct image_args *a, struct slet_store *ss)
{
    struct sc_error e = {0};
    struct img_id id;
    int r = slet_image_resolve(ss, a->pos[0], &id, &e);
    if (r >= 0)
        r = img_store_remove(ss->store, &id, &e);
    if (r == -EBUSY && !e.msg[0])
        sc_error_set(&e, r, NULL, "image is in use by a Cell (it has leases)");
    return r < 0 ? fail("rm", a->pos[0], r, &e) : 0;
}

/* Splits "http[s]://HOST[:PORT]/REPO[:TAG]" into base, repo and tag (in buf). */
static int parse_url(const char *url, char *buf, size_t len, const char **base, const char **repo,
                     const char **tag, struct sc_error *e)
{
    const char *scheme_end = strstr(url, "://");
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return sc_error_set(e, -SC_E_INVALID, "url",
                            "registry URL must start with http:// or "
                            "https:// (http[s]://HOST[:PORT]/REPO[:TAG])");
    if ((size_t)snprintf(buf, len, "%s", url) >= len)
        return sc_error_set(e, -SC_E_INVALID, "url", "registry URL is too long");
    char *slash = strchr(buf + (scheme_end - url) + 3, '/');
    if (!slash || !slash[1])
        return sc_error_set(e, -SC_E_INVALID, "url",
                            "registry URL names no repository "
                            "(http[s]://HOST[:PORT]/REPO[:TAG])");
    *slash = '\0';
    *base = buf;
    *repo = slash + 1;
    char *colon = strrchr(slash + 1, ':');
    *tag = "latest";
    if (colon && !strchr(colon, '/')) {
        *colon = '\0';
        *tag = colon + 1;
    }
    return 0;
}

static int cmd_push(struct image_args *a, struct slet_store *ss)
{
    const char *url = a->pos[1], *base, *repo, *tag;
    char buf[1024], dir[TMP_DIR_MAX] = "", packed[PATH_MAX], sig[PATH_MAX];
    struct sc_error e = {0};
    int r = parse_url(url, buf, sizeof(buf), &base, &repo, &tag, &e);
    if (r < 0)
        return fail("push", url, r, &e);
    struct img_id id;
    char *blob = NULL, ids[IMG_ID_STR_LEN + 1];
    int code = 0;
    r = slet_image_resolve(ss, a->pos[0], &id, &e);
    if (r < 0) {
        code = fail("push", a->pos[0], r, &e);
        goto out;
    }
    img_id_format(&id, ids);
    /* The stored signature, beside the image's tree (docs/image.md, layout). */
    if (snprintf(sig, sizeof(sig), "%s/images/%s/signature", ss->root, ids + 7) >= (int)sizeof(sig))
        sig[0] = '\0';
    if (img_store_blob_path(ss->store, &id, &blob, &e) < 0 || access(blob, R_OK) < 0) {
        /* Blob dropped: re-pack the tree (same bytes, checked by the store). */
        if ((r = tmp_dir(dir, &e)) < 0 ||
            (snprintf(packed, sizeof(packed), "%s/image.pack", dir),
             (r = img_store_export(ss->store, &id, packed, &e)) < 0)) {
            code = fail("push", ids, r, &e);
            goto out;
        }
    } else {
        snprintf(packed, sizeof(packed), "%s", blob);
    }
    r = img_registry_push(base, repo, tag, packed, access(sig, R_OK) == 0 ? sig : NULL, &e);
    if (r < 0)
        code = fail("push", url, r, &e);
    else
        printf("%s %s/%s:%s\n", ids, base, repo, tag);
out:
    if (dir[0])
        tmp_dir_remove(dir, (const char *const[]){"image.pack", NULL});
    free(blob);
    return code;
}

static int cmd_pull(struct image_args *a, struct slet_store *ss)
{
    const char *url = a->pos[0], *base, *repo, *tag;
    char buf[1024], dir[TMP_DIR_MAX], packed[PATH_MAX], sig[PATH_MAX];
    struct sc_error e = {0};
    int r = parse_url(url, buf, sizeof(buf), &base, &repo, &tag, &e);
    if (r < 0 || (r = tmp_dir(dir, &e)) < 0)
        return fail("pull", url, r, &e);
    snprintf(packed, sizeof(packed), "%s/image.pack", dir);
    snprintf(sig, sizeof(sig), "%s/image.pack.sig", dir);
    struct img_id id;
    r = img_registry_pull(base, repo, tag, packed, sig, &id, &e);
    int code = r < 0 ? fail("pull", url, r, &e)
                     : add_to_store("pull", url, a, packed, r == 1 ? sig : NULL);
    tmp_dir_remove(dir, (const char *const[]){"image.pack", "image.pack.sig", NULL});
    return code;
}

static int cmd_gc(struct image_args *a, struct slet_store *ss)
{
    struct sc_error e = {0};
    const char *where = ss->root;
    struct img_gc_stats st = {0};
    int r = img_store_gc(ss->store, a->min_idle, &st, &e);
    if (r < 0)
        return fail("gc", where, r, &e);
    printf("removed %zu images, %zu objects, %" PRIu64 " bytes; kept %zu images\n",
           st.images_removed, st.objects_removed, st.bytes_freed, st.images_kept);
    return 0;
}

static int cmd_verify(struct image_args *a, struct slet_store *ss)
{
    struct sc_error e = {0};
    const char *where = ss->root;
    struct img_verify_stats st = {0};
    int r = img_store_verify(ss->store, &st, &e);
    printf("%zu objects (%zu bad), %zu packed bases (%zu bad), %" PRIu64 " bytes\n", st.objects,
           st.objects_bad, st.blobs, st.blobs_bad, st.bytes);
    return r < 0 ? fail("verify", where, r, &e) : 0;
}

int slet_image_main(int argc, char **argv)
{
    /* n_pos: how many positional arguments; store: opened (without requiring
     * trusted keys) around the command; import and pull open it themselves. */
    static const struct {
        const char *name;
        int (*run)(struct image_args *a, struct slet_store *ss);
        int n_pos;
        const char *pos;
        bool store;
    } cmds[] = {
        {"keygen", cmd_keygen, 2, "PRIV.pem PUB.pem", false},
        {"pack", cmd_pack, 1, "DIR", false},
        {"sign", cmd_sign, 1, "FILE", false},
        {"import", cmd_import, 1, "FILE or OCI-LAYOUT", false},
        {"ls", cmd_ls, 0, "no arguments", true},
        {"rm", cmd_rm, 1, "REF", true},
        {"push", cmd_push, 2, "REF URL", true},
        {"pull", cmd_pull, 1, "URL", false},
        {"gc", cmd_gc, 0, "no arguments", true},
        {"verify", cmd_verify, 0, "no arguments", true},
    };
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        struct image_args a = {0};
        int r = parse_args(cmds[i].name, argc - 1, argv + 1, &a);
        if (r)
            return r;
        if (a.n_pos != cmds[i].n_pos)
            return usage_error(cmds[i].name, "expected %s, got %d argument(s)", cmds[i].pos,
                               a.n_pos);
        struct slet_store ss = {0};
        struct sc_error e = {0};
        if (cmds[i].store && (r = slet_store_open(a.store, a.trust, false, &ss, &e)) < 0)
            return fail(cmds[i].name, a.store ? a.store : DEFAULT_STORE, r, &e);
        r = cmds[i].run(&a, &ss);
        if (cmds[i].store)
            slet_store_close(&ss);
        return r;
    }
    fprintf(stderr, "slet image: unknown subcommand \"%s\"\n%s", argv[1], usage_text);
    return 2;
}
