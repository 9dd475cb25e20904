/*
 * snap.h: snapshot files.  A snapshot is the whole store state at a log position
 * (term, index), written as DIR/%016llx-%016llx.snap (term, index; DIR is the
 * `dir` argument, conventionally DATA/snap, created if missing) through a
 * temporary file, fsync, rename and a directory fsync, so that a crash leaves
 * either the old or the new snapshot, never half of one.  The file is
 * magic | version | term | index | length | crc32c | payload: u32 magic "SCSN",
 * u32 version 1, u64 term, u64 index, u64 length, u32 crc32c over the 32 bytes
 * before it and the payload; little-endian (SNAP_HEADER_BYTES = 36).  Files are
 * ordered by index, then term.  io may be NULL for &wal_io_posix.
 *
 * Loading picks the newest snapshot whose checksum holds; a damaged newest file
 * is reported (with its name) and the next older one is used.  Older snapshots
 * beyond `keep` (at least 1) are removed after a successful save, with stale
 * temporary files.  A damaged newest file makes snap_load_latest() succeed with
 * the older one and say so in e->msg (e->field "snapshot"); when every snapshot
 * is damaged it fails with -SC_E_CORRUPT.
 *
 * snap_save() returns 0 only when the new snapshot is durable and the old ones
 * are gone.  A failure after the rename (directory fsync, cleanup) still returns
 * the error although the new snapshot may already be the one that loads: on any
 * error the caller must not compact the log up to it.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/wal.h"

#define SNAP_HEADER_BYTES 36

int snap_save(const char *dir, const struct wal_io *io, uint64_t term, uint64_t index,
              const uint8_t *data, size_t len, unsigned keep, struct sc_error *e);
/* Returns 1 and fills term, index and data (caller frees with sc_buf_free) when a
 * snapshot exists, 0 when none does, negative on error. */
int snap_load_latest(const char *dir, const struct wal_io *io, uint64_t *ret_term,
                     uint64_t *ret_index, struct sc_buf *data, struct sc_error *e);
