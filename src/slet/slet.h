/*
 * slet.h: the node agent's command verbs.  `slet` is a thin main over them
 * (main.c); each verb is usable on its own and parses, validates and only then
 * acts (wireguard-tools habit).
 */
#pragma once

#include <stdbool.h>

#include "base/err.h"
#include "image/image.h"

/* `slet cell ...`: run one Cell by hand (slet_cell.c). */
int slet_cell_main(int argc, char **argv);
/* `slet image ...`: the node's image store by hand (slet_image.c). */
int slet_image_main(int argc, char **argv);

/* The image store with its trusted keys (slet_image.c), shared by `slet image`
 * and `slet cell run --image`. */
struct slet_store {
    char root[4096]; /* absolute, so the roots it hands to Cells are too */
    struct img_trust *trust;
    struct img_store *store;
};
/* Opens the store at root (NULL = /var/lib/slet/images) with the *.pem keys of
 * trust_dir (NULL = /etc/swiftcube/trusted-keys; a missing directory is an error
 * only when need_trust, i.e. for commands that add images).  Waits up to 5 s for
 * another process's lock. */
int slet_store_open(const char *root, const char *trust_dir, bool need_trust, struct slet_store *ss,
                    struct sc_error *e);
void slet_store_close(struct slet_store *ss);
/* A REF: "blake3:<hex>" (or a prefix of at least 4 hex digits matching exactly
 * one image), NAME@blake3:<hex>, or the name of exactly one stored image (a
 * NAME:TAG or HOST/PATH/NAME reference also matches a stored NAME). */
int slet_image_resolve(struct slet_store *ss, const char *ref, struct img_id *ret,
                       struct sc_error *e);

/* A lease on a stored image for one holder (a Cell), with the image's manifest:
 * taken with the store locked only for the moment (so other slet commands work
 * while the Cell runs), released after the Cell is torn down. */
struct slet_image_lease {
    const char *store_dir, *trust_dir; /* borrowed; NULL = the defaults */
    struct img_id id;
    char holder[IMG_HOLDER_MAX + 1];
    char *root; /* the tree to hand to the Cell; NULL when no lease is held */
    struct img_manifest manifest;
};
int slet_image_lease_take(struct slet_image_lease *il, const char *store_dir, const char *trust_dir,
                          const char *ref, const char *holder, struct sc_error *e);
/* Releases the lease, if one was taken; a failure is only reported on stderr. */
void slet_image_lease_drop(struct slet_image_lease *il);

/* `slet agent ...` (or `slet --server ...`): the node agent (agent.c). */
int slet_agent_main(int argc, char **argv);
