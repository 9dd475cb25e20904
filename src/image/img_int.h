/*
 * img_int.h: helpers shared by the files of src/image (not part of its API).
 *
 * Directory-relative file operations that never follow a symlink out of the tree
 * they work on: the store's unpacker and the OCI layer flattener both create and
 * remove entries named by untrusted archives.
 */
#pragma once

#include <dirent.h>
#include <stdint.h>

/* openat2() with O_CLOEXEC and the given RESOLVE_* flags; -errno on failure. */
int img_openat2(int dirfd, const char *path, int flags, uint64_t resolve);
/* Opens directory name below at (never through a symlink) as a DIR stream;
 * NULL with *ret_err = -errno on failure. */
DIR *img_opendir_at(int at, const char *name, int *ret_err);
/* Removes everything inside directory name, keeping the directory. */
int img_empty_dir_at(int at, const char *name);
/* Removes name (below at) and everything under it, never following symlinks. */
int img_rm_rf_at(int at, const char *name);
