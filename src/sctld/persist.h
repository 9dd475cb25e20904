/*
 * persist.h: the group-commit thread between the event loop and the WAL.
 *
 * The loop never blocks on the disk.  It queues log entries (and snapshot jobs);
 * one persist thread takes everything queued so far, appends it to the WAL,
 * writes and fdatasyncs once, publishes the highest durable index and wakes the
 * loop through an eventfd.  While one fsync runs, the next batch gathers: that is
 * the group commit, and the loop keeps parsing requests meanwhile.
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
    struct sc_buf queue; /* records: u64 term, u64 index, u32 len, payload */
    struct sc_buf snap;  /* a snapshot job (payload) if snap_index != 0 */
    uint64_t snap_index, snap_term;
    uint64_t durable_index; /* every entry <= this is on disk */
    int error;              /* first fatal error (negative), then every call fails */
    char error_msg[256];
    bool stop;
    struct sc_hist fsync_hist;
    struct wal_stats wal_stats;
    int wake_fd; /* eventfd the loop polls */
};

/* Starts the thread over an opened and replayed WAL (ownership passes to it). */
int persist_start(struct persist *p, struct wal *w, const char *snap_dir);
/* Finishes what is queued, stops the thread and closes the WAL. */
void persist_stop(struct persist *p);

/* Queues one entry (copying payload). */
void persist_append(struct persist *p, uint64_t term, uint64_t index, const uint8_t *payload,
                    size_t len);
/* Queues a snapshot of the state after `index` (taking the buffer's contents);
 * once saved, WAL segments below it are removed. */
void persist_snapshot(struct persist *p, uint64_t term, uint64_t index, struct sc_buf *data);

/* Reads the durable index and error (after the wake fd fired, or any time). */
uint64_t persist_durable(struct persist *p, int *ret_error, char *msg, size_t n);
void persist_stats(struct persist *p, struct sc_hist *fsync, struct wal_stats *st);
