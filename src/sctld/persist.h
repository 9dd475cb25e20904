/*
 * persist.h: the group-commit thread between the event loop and the WAL.
 *
 * The loop never blocks on the disk.  It queues typed WAL records (Raft entries
 * with their term and index, the hard state) and snapshot jobs, then closes the
 * batch with persist_commit(), which returns the batch's sequence number.  One
 * persist thread takes everything queued so far, appends it to the WAL, writes,
 * fdatasyncs once when asked, publishes the highest completed sequence number
 * and wakes the loop through an eventfd.  A sequence number (not a "durable
 * index") is what completes, because a Raft follower may override a suffix of
 * its log: index 7 durable twice means nothing, batch 12 done does.
 *
 * Invariants:
 *  1. Batches complete in submission order; done_seq only grows.
 *  2. A received snapshot (install) queued before a record is on disk before it,
 *     and then its WAL_REC_SNAPSHOT marker is appended.  Local snapshots are
 *     written elsewhere (a forked child of sctld) and, once saved, reported with
 *     persist_compact_log(): only then are WAL segments wholly below them removed.
 *  3. After the first failure every later batch fails: error is sticky.
 *
 * Ownership: the thread alone touches the struct wal and the snapshot files
 * after persist_start(); the loop touches only the queue, under the mutex.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/hist.h"
#include "store/wal.h"

struct persist {
    struct wal *wal;
    char *snap_dir;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    struct sc_buf queue; /* ops: see persist.c */
    uint64_t next_seq;   /* last sequence handed out by persist_commit */
    uint64_t done_seq;   /* every batch <= this is complete */
    int error;           /* first fatal error (negative), then every call fails */
    char error_msg[256];
    bool stop;
    struct sc_hist fsync_hist;
    struct wal_stats wal_stats;
    int wake_fd;         /* eventfd the loop polls */
    uint64_t compact_to; /* under mu; != 0: wal_compact(compact_to) is due */
};

/* Starts the thread over an opened and replayed WAL (ownership passes to it). */
int persist_start(struct persist *p, struct wal *w, const char *snap_dir);
/* Finishes what is queued, stops the thread and closes the WAL. */
void persist_stop(struct persist *p);

/* Queues one record (copying its payload). */
void persist_record(struct persist *p, const struct wal_record *rec);
/* Queues a snapshot received from the leader (payload copied), in order with the
 * records: its file, then a WAL_REC_SNAPSHOT marker. */
void persist_install_snapshot(struct persist *p, uint64_t term, uint64_t index, const uint8_t *data,
                              size_t len);
/* A local snapshot at index - 1 is saved: WAL segments wholly below index may go. */
void persist_compact_log(struct persist *p, uint64_t index);
/* Closes the batch of everything queued so far: it is written, and fdatasynced
 * when sync, before done reaches the returned sequence number. */
uint64_t persist_commit(struct persist *p, bool sync);

/* Reads the completed sequence number and the error (after the wake fd fired). */
uint64_t persist_done(struct persist *p, int *ret_error, char *msg, size_t n);
void persist_stats(struct persist *p, struct sc_hist *fsync, struct wal_stats *st);
