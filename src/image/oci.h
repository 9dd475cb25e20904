/*
 * oci.h: OCI images in and out of SwiftCube: importing an OCI image layout by
 * flattening its layers once into a packed base (oci.c), and pushing to / pulling
 * from an OCI distribution registry over HTTP with libcurl (registry.c).
 *
 * Our own images travel through a registry as an OCI artifact: a manifest whose
 * config is the packed base's manifest.json and whose one layer is the packed base
 * itself (media type IMG_OCI_PACKED_TYPE), with the BLAKE3 identity and the
 * signature line as manifest annotations.  Any OCI image can also be pulled into
 * an OCI image layout directory and imported.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

#define IMG_SHA256_STR_LEN    (7 + 64) /* "sha256:" + hex */
#define IMG_OCI_PACKED_TYPE   "application/vnd.swiftcube.packed-base.v1.tar"
#define IMG_OCI_CONFIG_TYPE   "application/vnd.swiftcube.image.config.v1+json"
#define IMG_OCI_ANN_IDENTITY  "dev.swiftcube.image.identity"
#define IMG_OCI_ANN_SIGNATURE "dev.swiftcube.image.signature"
#define IMG_OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

/* sha256 digests as OCI writes them ("sha256:<hex>"). */
int img_sha256_fd(int fd, char out[IMG_SHA256_STR_LEN + 1], uint64_t *ret_size);
void img_sha256_mem(const void *data, size_t len, char out[IMG_SHA256_STR_LEN + 1]);
bool img_sha256_valid(const char *digest);

/* What an OCI image config says about running it. */
struct img_oci_config {
    char **argv; /* Entrypoint then Cmd */
    size_t argc;
    char **env;
    size_t n_env;
    char *workdir;
    size_t layers;
};
void img_oci_config_done(struct img_oci_config *c);

/* Applies the layers of image ref (its org.opencontainers.image.ref.name; NULL =
 * the only image, or linux/amd64 of an index) of the OCI image layout at `layout`
 * into directory dest, whiteouts included.  Every blob is checked against its
 * digest.  ret_cfg (optional) gets argv/env/workdir from the image config. */
int img_oci_flatten(const char *layout, const char *ref, const char *dest,
                    struct img_oci_config *ret_cfg, struct sc_error *e);
/* Flattens and packs into `out`; name defaults to ref. */
int img_oci_import(const char *layout, const char *ref, const char *out, const char *name,
                   struct img_id *ret_id, struct sc_error *e);
