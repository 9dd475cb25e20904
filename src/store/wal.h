/*
 * wal.h: the write-ahead log.  It is also the Raft log (issue "Raft"): every
 * record carries a term and an index, so there is never a second log.
 *
 * On disk: a directory of segment files named %016llx-%016llx.wal (sequence
 * number, index of the first entry the segment may hold), each preallocated to
 * segment_bytes so that fdatasync never has to update the file size.  A segment
 * is a header (magic, version, sequence) and then records:
 *
 *     u32 crc32c    over everything after this field
 *     u32 length    of the payload
 *     u8  type      WAL_REC_*
 *     u64 term
 *     u64 index
 *     ... payload (length bytes)
 *
 * The header is WAL_SEG_HEADER_BYTES: 8 bytes magic "SCWALSEG", u32 version (1),
 * u32 crc32c, u64 sequence, u64 first index, u32 carried length, u32 zero; then
 * `carried length` bytes of records copied from older segments (see below).  The
 * crc32c covers the other header bytes and the carried records.  All integers
 * are little-endian (docs/wal.md has the details).
 *
 * Replay hands records to the caller in file order.  An ENTRY record with index i
 * overrides every entry >= i seen before it (how Raft truncates a conflicting
 * suffix: it appends, it never rewrites); the caller keeps the newest.  The
 * newest STATE and SNAPSHOT records are copied to the start of every new
 * segment, so that wal_compact() never removes the only copy of the hard state.
 *
 * Crash rules (what recovery guarantees):
 *  - a record is acknowledged only after wal_sync() returned 0 for it;
 *  - a torn tail (the last record of the last segment cut short or failing its
 *    checksum, with nothing valid after it) is truncated away and replay succeeds;
 *  - a bad record with a valid record after it, or in a segment that is not the
 *    last, is corruption: replay fails with -SC_E_CORRUPT and the message names
 *    the file and the byte offset.
 *
 * All I/O goes through struct wal_io so that tests can fail or tear any write or
 * sync.  The WAL is single-threaded: one thread owns a struct wal.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

struct sc_buf;

enum wal_rec_type {
    WAL_REC_ENTRY = 1,    /* a log entry: payload is an encoded command */
    WAL_REC_STATE = 2,    /* Raft hard state: payload = term, vote, commit */
    WAL_REC_SNAPSHOT = 3, /* a snapshot was taken at (term, index); payload empty */
};

#define WAL_REC_HEADER_BYTES 25
#define WAL_SEG_HEADER_BYTES 40
#define WAL_MAX_RECORD_BYTES (8u << 20) /* bigger payloads are refused */

struct wal_record {
    enum wal_rec_type type;
    uint64_t term, index;
    const uint8_t *data;
    size_t len;
};

/* The system calls the WAL and the snapshot files make, replaceable for fault
 * injection.  Each returns >= 0 or a negative errno (never -1 + errno); pwrite and
 * pread may be short.  The directory hooks (after `ud`) exist because a crash
 * can lose a file creation, rename or unlink that no directory fsync covered:
 * the test disk models that too.  `list` calls cb once per name in dir (not "."
 * or ".."), stops when cb returns non-zero and returns that, and returns -ENOENT
 * when dir does not exist; `mkdir` creates one directory (parents must exist)
 * and returns 0 when it already exists. */
struct wal_io {
    int (*open)(void *ud, const char *path, int flags, mode_t mode);
    ssize_t (*pwrite)(void *ud, int fd, const void *buf, size_t n, off_t off);
    ssize_t (*pread)(void *ud, int fd, void *buf, size_t n, off_t off);
    int (*fdatasync)(void *ud, int fd);
    int (*ftruncate)(void *ud, int fd, off_t len);
    int (*fallocate)(void *ud, int fd, off_t off, off_t len);
    int (*close)(void *ud, int fd);
    void *ud;
    int (*fsync_dir)(void *ud, const char *dir);
    int (*unlink)(void *ud, const char *path);
    int (*rename)(void *ud, const char *from, const char *to);
    int (*mkdir)(void *ud, const char *path);
    int (*list)(void *ud, const char *dir, int (*cb)(void *cbud, const char *name), void *cbud);
};
extern const struct wal_io wal_io_posix;
/* Helpers over an io for wal.c and snap.c: the whole of n bytes at off (short
 * writes continued), and the whole file appended to out. */
int wal_io_write_all(const struct wal_io *io, int fd, const void *buf, size_t n, uint64_t off);
int wal_io_read_all(const struct wal_io *io, int fd, struct sc_buf *out);

struct wal_options {
    size_t segment_bytes;    /* default 64 MiB */
    const struct wal_io *io; /* default &wal_io_posix */
};

struct wal_stats {
    uint64_t bytes_written; /* handed to pwrite since open (rewrites included) */
    uint64_t syncs;
    uint64_t segments;        /* files in the directory */
    uint64_t disk_bytes;      /* their allocated size */
    uint64_t records_written; /* since open */
    uint64_t torn_bytes;      /* torn tail zeroed by the last wal_replay() */
    bool failed;              /* a sync failed: the log refuses everything */
};

struct wal;

/* Opens (creating if needed) the log in dir.  Call wal_replay() before appending. */
int wal_open(const char *dir, const struct wal_options *o, struct wal **ret, struct sc_error *e);
void wal_close(struct wal *w);

/* Reads every record in order, calling cb for each (a negative return from cb
 * stops replay and is returned); truncates a torn tail; positions the log for
 * appending.  wal_compact() removes whole segments only, so entries below its
 * index may still be handed out: the caller skips those its snapshot covers. */
int wal_replay(struct wal *w, int (*cb)(void *ud, const struct wal_record *r), void *ud,
               struct sc_error *e);

/* Buffers a record in memory (copying its payload).  A payload over
 * WAL_MAX_RECORD_BYTES is refused with -SC_E_VALUE_TOO_LARGE, and more than
 * WAL_MAX_BUFFERED_BYTES unflushed with -ENOBUFS. */
#define WAL_MAX_BUFFERED_BYTES (64u << 20)
int wal_append(struct wal *w, const struct wal_record *r, struct sc_error *e);
/* Writes everything buffered to the segment files (rotating as needed: a full
 * segment is synced before the next one is started).  No fsync of the tail.
 * Group commit is the caller's job: many appends, one flush, one sync.  Several
 * flushes between two syncs are correct too (each rewrites the segment's
 * unsynced bytes in one write, so a crash still leaves a prefix), only slower.
 * A failed write leaves the records buffered: wal_flush() may be retried. */
int wal_flush(struct wal *w, struct sc_error *e);
/* fdatasync of the current segment: every flushed record is durable when it
 * returns 0 (no system call when nothing was flushed since the last sync).  A failed sync is fatal
 * for the log (no retry: the page cache state is unknown, see the PostgreSQL fsync discussion);
 * later calls fail too. */
int wal_sync(struct wal *w, struct sc_error *e);
/* Removes whole segments that hold only entries below index (after a snapshot at
 * index - 1 or later is durable), oldest first, never the current one; then
 * fsyncs the directory.  Returns the number of segments removed. */
int wal_compact(struct wal *w, uint64_t index, struct sc_error *e);

void wal_get_stats(const struct wal *w, struct wal_stats *st);

/* Decodes one record from buf (used by replay, exposed for the fuzzer and tests):
 * returns bytes consumed (> 0), 0 if buf holds only a prefix of a record (or
 * zeros: preallocated space), or -SC_E_CORRUPT if the record is malformed. */
ssize_t wal_record_decode(const uint8_t *buf, size_t len, struct wal_record *r);
/* Encodes one record (header + payload) at the end of out. */
void wal_record_encode(const struct wal_record *r, struct sc_buf *out);
