/*
 * image.h: SwiftCube images: packed bases, their identities and signatures, and
 * the node's content store that shares them between Cells.
 *
 * A packed base is one file holding a root filesystem plus a small manifest (a
 * deterministic POSIX tar: `manifest.json` first, then the tree under `rootfs/`,
 * sorted, mtime 0, numeric owners only).  Its identity is `blake3:<hex>` of the
 * packed bytes, so packing the same tree twice gives the same identity.  An image
 * is signed with Ed25519 over its identity; a node refuses images that are
 * unsigned, whose bytes do not match the signed identity, or whose signer is not
 * among the node's trusted keys.  The content store unpacks each image once into a
 * tree whose regular files are hard links to content objects keyed by BLAKE3 (plus
 * mode and owner), so identical files of different images share one inode; Cells
 * get the tree's root directory through a lease (img_store_acquire) and bind-mount
 * it read-only.  docs/image.md gives the measurements behind this choice.
 *
 * Every function here is CLI-ready: `slet image pack|sign|ls|rm|gc` map one to one
 * onto img_pack, img_sign_file, img_store_list, img_store_remove, img_store_gc.
 * Errors: negative errno or -SC_E_*; the signature checks use distinct errnos so a
 * caller can tell them apart: -ENOKEY unsigned, -EBADMSG tampered or forged,
 * -EKEYREJECTED signed by an untrusted key.  A message for humans is in *e.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "image/blake3.h"

#define IMG_ID_PREFIX    "blake3:"
#define IMG_ID_STR_LEN   (7 + IMG_BLAKE3_HEX_LEN) /* "blake3:" + 64 hex */
#define IMG_NAME_MAX     127
#define IMG_MAX_WRITABLE 16
#define IMG_MAX_ARGS     64
#define IMG_MAX_ENV      64
#define IMG_STR_MAX      1024        /* one argv/env/path string in the manifest */
#define IMG_MANIFEST_MAX (64u << 10) /* bytes of manifest.json */
#define IMG_MAX_ENTRIES  (1u << 20)  /* entries of one tree */
#define IMG_HOLDER_MAX   127         /* a lease holder name, e.g. a Cell id */
#define IMG_PACK_FORMAT  "swiftcube-packed-base/1"
#define IMG_SIG_FORMAT   "sc-image-sig/1"
#define IMG_KEY_ID_LEN   (8 + 16) /* "ed25519:" + 16 hex of BLAKE3(public key) */

struct img_id {
    uint8_t digest[IMG_BLAKE3_OUT_LEN];
};

/* "blake3:<hex>" into out (IMG_ID_STR_LEN + 1 bytes). */
void img_id_format(const struct img_id *id, char out[IMG_ID_STR_LEN + 1]);
/* Parses "blake3:<hex>" (lower or upper case hex); -SC_E_INVALID otherwise. */
int img_id_parse(const char *s, struct img_id *ret, struct sc_error *e);
bool img_id_equal(const struct img_id *a, const struct img_id *b);

/* ---- manifest ---------------------------------------------------------------------- */

/* What the image says about itself.  Counts are filled by img_pack; the rest is
 * optional run-time defaults for Cells of this image. */
struct img_manifest {
    char name[IMG_NAME_MAX + 1];
    uint64_t files, dirs, symlinks, content_bytes, skipped;
    char *writable[IMG_MAX_WRITABLE]; /* tmpfs paths; default /tmp and /run */
    size_t n_writable;
    char *argv[IMG_MAX_ARGS];
    size_t argc;
    char *env[IMG_MAX_ENV];
    size_t n_env;
    char *workdir; /* NULL = "/" */
};

void img_manifest_done(struct img_manifest *m);
/* Strict decoder with limits (fuzzable alone); *m is valid only on success. */
int img_manifest_decode(const char *json, size_t len, struct img_manifest *m, struct sc_error *e);
/* Encodes deterministically (sorted keys, compact); the caller frees *ret. */
int img_manifest_encode(const struct img_manifest *m, char **ret, size_t *ret_len);

/* ---- packing ----------------------------------------------------------------------- */

struct img_pack_opts {
    const char *name;                     /* manifest name; default: basename of src */
    const char *const *writable;          /* NULL-terminated; NULL = {"/tmp", "/run"} */
    const char *const *argv, *const *env; /* NULL-terminated or NULL */
    const char *workdir;
    uint64_t extra_skipped; /* added to the manifest's count (re-packing a stored tree) */
};

/* Packs the directory tree at src into the file out (written atomically: a
 * temporary beside it, then rename).  Regular files, directories and symlinks are
 * kept with mode and numeric owner; device nodes, sockets and FIFOs are skipped
 * (the Cell brings its own /dev) and counted in the manifest; hard links inside
 * src become separate files (the store deduplicates them again).  Extended
 * attributes are not kept.  *ret_id gets the identity of the packed bytes. */
int img_pack(const char *src, const char *out, const struct img_pack_opts *opts,
             struct img_id *ret_id, struct sc_error *e);

/* Identity of an existing packed file. */
int img_id_of_file(const char *path, struct img_id *ret, struct sc_error *e);

/* Reading a packed base: the manifest first, then each tree entry with its path
 * checked (relative, no "." or ".." component, no empty component), its type one
 * of regular file, directory or symlink, and the count bounded. */
struct img_reader;
struct img_entry {
    const char *path; /* relative to the root, "." for the root itself */
    mode_t mode;      /* S_IFREG/S_IFDIR/S_IFLNK | permission bits */
    uid_t uid;
    gid_t gid;
    uint64_t size;
    const char *link; /* symlink target */
};
int img_reader_open(int fd, struct img_reader **ret, struct img_manifest *ret_manifest,
                    struct sc_error *e);
/* 1 = *ent filled, 0 = end of archive, < 0 = error.  ent's strings live until the
 * next call. */
int img_reader_next(struct img_reader *r, struct img_entry *ent, struct sc_error *e);
/* Reads the current regular file's content: > 0 bytes, 0 at its end, < 0 error. */
ssize_t img_reader_data(struct img_reader *r, void *buf, size_t len, struct sc_error *e);
void img_reader_free(struct img_reader *r);

/* ---- signatures -------------------------------------------------------------------- */

struct img_sig {
    struct img_id id;                /* the identity that was signed */
    char key_id[IMG_KEY_ID_LEN + 1]; /* "ed25519:<16 hex>" */
    uint8_t sig[64];
};

/* Writes a new Ed25519 key pair as PEM: private (mode 0600, must not exist yet)
 * and public.  ret_key_id (optional) gets its key id. */
int img_key_generate(const char *priv_pem, const char *pub_pem, char ret_key_id[IMG_KEY_ID_LEN + 1],
                     struct sc_error *e);
/* Signs id with the private key in priv_pem. */
int img_sign(const char *priv_pem, const struct img_id *id, struct img_sig *ret,
             struct sc_error *e);
/* Signature files are one line: "sc-image-sig/1 blake3:<hex> ed25519:<id> <hex sig>". */
int img_sig_write(const char *path, const struct img_sig *sig, struct sc_error *e);
int img_sig_read(const char *path, struct img_sig *ret, struct sc_error *e);
int img_sig_decode(const char *text, size_t len, struct img_sig *ret, struct sc_error *e);
/* Convenience for the CLI: identity of packed, signature written to sig_out. */
int img_sign_file(const char *priv_pem, const char *packed, const char *sig_out,
                  struct img_sig *ret, struct sc_error *e);

/* The node's trusted public keys. */
struct img_trust;
struct img_trust *img_trust_new(void);
void img_trust_free(struct img_trust *t);
/* Adds one PEM public key (Ed25519 only). */
int img_trust_add_pem(struct img_trust *t, const char *pub_pem, struct sc_error *e);
/* Adds every *.pem in dir; returns how many were added. */
int img_trust_load_dir(struct img_trust *t, const char *dir, struct sc_error *e);
size_t img_trust_count(const struct img_trust *t);
/* Checks that sig (NULL = unsigned) is a valid signature by a trusted key over
 * exactly the identity id.  -ENOKEY, -EBADMSG or -EKEYREJECTED with a message. */
int img_verify(const struct img_trust *t, const struct img_id *id, const struct img_sig *sig,
               struct sc_error *e);

/* ---- the content store ------------------------------------------------------------- */

struct img_store;

/* Opens (creating if needed) the store at root and takes its lock (-EBUSY if
 * another process holds it).  Unfinished work of a crashed run is removed.  The
 * store keeps a reference to trust; it must outlive the store. */
int img_store_open(const char *root, const struct img_trust *trust, struct img_store **ret,
                   struct sc_error *e);
void img_store_free(struct img_store *s);

/* Verifies and adds a packed base.  sig_path NULL means unsigned (refused).
 * Idempotent: adding an image already present only re-verifies it. */
int img_store_add(struct img_store *s, const char *packed, const char *sig_path,
                  struct img_id *ret_id, struct sc_error *e);
/* Takes a lease on an image for holder (idempotent per holder) and returns the
 * root directory to hand to the Cell; the caller frees *ret_root. */
int img_store_acquire(struct img_store *s, const struct img_id *id, const char *holder,
                      char **ret_root, struct sc_error *e);
/* Drops holder's lease; -SC_E_NOT_FOUND if it held none. */
int img_store_release(struct img_store *s, const struct img_id *id, const char *holder,
                      struct sc_error *e);

struct img_store_info {
    struct img_id id;
    char name[IMG_NAME_MAX + 1];
    uint64_t files, content_bytes;
    size_t leases;
    int64_t idle_sec; /* since the last add, acquire or release */
};
/* Lists the images; the caller frees *ret. */
int img_store_list(struct img_store *s, struct img_store_info **ret, size_t *ret_n,
                   struct sc_error *e);
/* Removes one image now; -EBUSY while it has leases. */
int img_store_remove(struct img_store *s, const struct img_id *id, struct sc_error *e);

struct img_gc_stats {
    size_t images_removed, images_kept, objects_removed;
    uint64_t bytes_freed;
};
/* Removes every image without leases that has been idle at least min_idle_sec,
 * then every content object no image links any more. */
int img_store_gc(struct img_store *s, int64_t min_idle_sec, struct img_gc_stats *ret,
                 struct sc_error *e);
struct img_verify_stats {
    size_t objects, objects_bad, blobs, blobs_bad;
    uint64_t bytes; /* of good objects */
};
/* Re-hashes every content object against its name (and checks its mode and
 * owner) and every kept packed base against its identity: a disk that rots or a
 * host user who edits a shared file is found here.  -SC_E_CORRUPT (with the first
 * bad object in *e) if anything differs; nothing is changed. */
int img_store_verify(struct img_store *s, struct img_verify_stats *ret, struct sc_error *e);
/* Whether packed bases are deleted once their tree is published (default: kept).
 * Dropping halves the disk an image takes; img_store_export then re-packs the tree,
 * which reproduces the identity because packing is deterministic.  A blob is kept
 * anyway when its tree cannot reproduce it (set-id bits were dropped, or the store
 * does not run as root and so could not keep owners). */
void img_store_set_drop_blobs(struct img_store *s, bool drop);
/* Writes image id's packed base to out: the kept blob, or a re-pack of its tree
 * checked to have the same identity (-SC_E_CORRUPT if it does not). */
int img_store_export(struct img_store *s, const struct img_id *id, const char *out,
                     struct sc_error *e);
/* Path of the packed base kept for image id (for push); the caller frees it. */
int img_store_blob_path(struct img_store *s, const struct img_id *id, char **ret,
                        struct sc_error *e);
