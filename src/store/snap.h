/*
 * snap.h: snapshot files.  A snapshot is the whole store state at a log position
 * (term, index), written as snap/%016llx-%016llx.snap (term, index) through a
 * temporary file, fsync, rename and a directory fsync, so that a crash leaves
 * either the old or the new snapshot, never half of one.  The file is
 * magic | version | term | index | length | crc32c | payload.
 *
 * Loading picks the newest snapshot whose checksum holds; a damaged newest file
 * is reported (with its name) and the next older one is used.  Older snapshots
 * beyond `keep` are removed after a successful save.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/wal.h"

int snap_save(const char *dir, const struct wal_io *io, uint64_t term, uint64_t index,
              const uint8_t *data, size_t len, unsigned keep, struct sc_error *e);
/* Returns 1 and fills term, index and data (caller frees with sc_buf_free) when a
 * snapshot exists, 0 when none does, negative on error. */
int snap_load_latest(const char *dir, const struct wal_io *io, uint64_t *ret_term,
                     uint64_t *ret_index, struct sc_buf *data, struct sc_error *e);
