/*
 * registry.h: push to and pull from an OCI distribution registry (libcurl).
 *
 * base is the registry's URL without a trailing slash ("http://127.0.0.1:5000",
 * or https with the system's CAs); repo is a repository name ("team/web"); tag a
 * tag or, for pulls, a "sha256:..." manifest digest.  Nothing is trusted because
 * it came from a registry: every blob is checked against its digest, a packed base
 * against the BLAKE3 identity its manifest names, and its signature is checked by
 * the store (img_store_add) like that of any other image.
 */
#pragma once

#include "image/image.h"
#include "image/oci.h"

/* Pushes a packed base (and its signature, if sig_path is not NULL) as repo:tag. */
int img_registry_push(const char *base, const char *repo, const char *tag, const char *packed,
                      const char *sig_path, struct sc_error *e);
/* Pulls repo:tag pushed by img_registry_push into out_packed, and its signature
 * into out_sig.  Returns 1 with a signature, 0 without (out_sig then does not
 * exist), < 0 on error.  *ret_id gets the identity. */
int img_registry_pull(const char *base, const char *repo, const char *tag, const char *out_packed,
                      const char *out_sig, struct img_id *ret_id, struct sc_error *e);

/* Any OCI image: pulls repo:tag (linux/amd64 of an index) into an OCI image layout
 * directory with ref name tag, ready for img_oci_import. */
int img_registry_pull_oci(const char *base, const char *repo, const char *tag, const char *layout,
                          struct sc_error *e);
/* Pushes image ref (NULL = the only one) of an OCI image layout as repo:tag. */
int img_registry_push_oci(const char *base, const char *repo, const char *tag, const char *layout,
                          const char *ref, struct sc_error *e);
