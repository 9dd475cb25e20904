/* persist.c: the group-commit thread (see persist.h).
 *
 * The queue is a byte string of operations, in order:
 *   'R' u8 type, u64 term, u64 index, u32 len, payload     a WAL record
 *   'S' u8 install, u64 term, u64 index, u64 len, payload  a snapshot file
 *   'E' u8 sync, u64 seq                                   end of a batch
 * (host-endian u64 through sc_buf_put_u64le: it never leaves the process). */
#include "sctld/persist.h"

#include <errno.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/util.h"
#include "store/snap.h"

static void fail(struct persist *p, int r, const struct sc_error *e)
{
    pthread_mutex_lock(&p->mu);
    if (!p->error) {
        p->error = r < 0 ? r : -EIO;
        snprintf(p->error_msg, sizeof(p->error_msg), "%s", e && e->msg[0] ? e->msg : "WAL failure");
    }
    pthread_mutex_unlock(&p->mu);
}

static void wake(struct persist *p)
{
    uint64_t one = 1;
    (void)!write(p->wake_fd, &one, sizeof(one));
}

/* Executes one swapped-out queue; returns the last batch completed (0: none). */
static int run_ops(struct persist *p, const struct sc_buf *ops, uint64_t *ret_seq,
                   struct sc_error *e)
{
    struct sc_rd rd = sc_rd_make(ops->data, ops->len);
    int r = 0;
    while (r >= 0 && sc_rd_left(&rd) > 0) {
        uint8_t op, flag;
        uint64_t term = 0, index = 0, seq = 0, len64 = 0;
        uint32_t len = 0;
        sc_rd_u8(&rd, &op);
        if (op == 'R') {
            sc_rd_u8(&rd, &flag);
            sc_rd_u64le(&rd, &term);
            sc_rd_u64le(&rd, &index);
            sc_rd_u32le(&rd, &len);
            struct wal_record rec = {
                .type = flag, .term = term, .index = index, .data = rd.p, .len = len};
            rd.p += len;
            r = wal_append(p->wal, &rec, e);
        } else if (op == 'S') {
            sc_rd_u8(&rd, &flag);
            sc_rd_u64le(&rd, &term);
            sc_rd_u64le(&rd, &index);
            sc_rd_u64le(&rd, &len64);
            const uint8_t *data = rd.p;
            rd.p += len64;
            /* Only received snapshots travel here (local ones are written by a
             * forked child of sctld, see maybe_snapshot in server.c). */
            r = snap_save(p->snap_dir, NULL, term, index, data, len64, 2, e);
            if (r >= 0 && flag) {
                struct wal_record m = {.type = WAL_REC_SNAPSHOT, .term = term, .index = index};
                r = wal_append(p->wal, &m, e);
            }
        } else {
            sc_rd_u8(&rd, &flag);
            sc_rd_u64le(&rd, &seq);
            usec_t t0 = now_usec(CLOCK_MONOTONIC);
            r = wal_flush(p->wal, e);
            if (r >= 0 && flag) {
                r = wal_sync(p->wal, e);
                usec_t dt = now_usec(CLOCK_MONOTONIC) - t0;
                pthread_mutex_lock(&p->mu);
                sc_hist_observe(&p->fsync_hist, dt);
                pthread_mutex_unlock(&p->mu);
            }
            if (r >= 0)
                *ret_seq = seq;
        }
    }
    return r;
}

static void *run(void *arg)
{
    struct persist *p = arg;
    struct sc_buf batch = {0};
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->queue.len == 0 && p->compact_to == 0)
            pthread_cond_wait(&p->cv, &p->mu);
        bool stop = p->stop && p->queue.len == 0;
        struct sc_buf t = batch;
        batch = p->queue;
        p->queue = t;
        sc_buf_reset(&p->queue);
        uint64_t compact_to = p->compact_to;
        p->compact_to = 0;
        bool failed = p->error != 0;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        if (failed) {
            wake(p);
            continue;
        }
        struct sc_error e = {0};
        uint64_t seq = 0;
        int r = 0;
        if (compact_to)
            r = wal_compact(p->wal, compact_to, &e);
        if (r >= 0)
            r = run_ops(p, &batch, &seq, &e);
        if (r < 0) {
            fail(p, r, &e);
        } else {
            pthread_mutex_lock(&p->mu);
            if (seq)
                p->done_seq = seq;
            wal_get_stats(p->wal, &p->wal_stats);
            pthread_mutex_unlock(&p->mu);
        }
        sc_buf_reset(&batch);
        wake(p);
    }
    sc_buf_free(&batch);
    return NULL;
}

static void persist_stop_thread(struct persist *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
}

int persist_start(struct persist *p, struct wal *w, const char *snap_dir)
{
    *p = (struct persist){.wal = w, .snap_dir = xstrdup(snap_dir)};
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake_fd < 0)
        return -errno;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    wal_get_stats(w, &p->wal_stats);
    int r = pthread_create(&p->thread, NULL, run, p);
    if (r) {
        close(p->wake_fd);
        return -r;
    }
    return 0;
}

void persist_stop(struct persist *p)
{
    persist_stop_thread(p);
    wal_close(p->wal);
    p->wal = NULL;
    close(p->wake_fd);
    sc_buf_free(&p->queue);
    free(p->snap_dir);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

void persist_record(struct persist *p, const struct wal_record *rec)
{
    pthread_mutex_lock(&p->mu);
    sc_buf_put_u8(&p->queue, 'R');
    sc_buf_put_u8(&p->queue, (uint8_t)rec->type);
    sc_buf_put_u64le(&p->queue, rec->term);
    sc_buf_put_u64le(&p->queue, rec->index);
    sc_buf_put_u32le(&p->queue, (uint32_t)rec->len);
    sc_buf_put(&p->queue, rec->data, rec->len);
    pthread_mutex_unlock(&p->mu);
}

void persist_install_snapshot(struct persist *p, uint64_t term, uint64_t index, const uint8_t *data,
                              size_t len)
{
    pthread_mutex_lock(&p->mu);
    sc_buf_put_u8(&p->queue, 'S');
    sc_buf_put_u8(&p->queue, 1);
    sc_buf_put_u64le(&p->queue, term);
    sc_buf_put_u64le(&p->queue, index);
    sc_buf_put_u64le(&p->queue, len);
    sc_buf_put(&p->queue, data, len);
    pthread_mutex_unlock(&p->mu);
}

void persist_compact_log(struct persist *p, uint64_t index)
{
    pthread_mutex_lock(&p->mu);
    if (index > p->compact_to)
        p->compact_to = index;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

uint64_t persist_commit(struct persist *p, bool sync)
{
    pthread_mutex_lock(&p->mu);
    uint64_t seq = ++p->next_seq;
    sc_buf_put_u8(&p->queue, 'E');
    sc_buf_put_u8(&p->queue, sync);
    sc_buf_put_u64le(&p->queue, seq);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return seq;
}

uint64_t persist_done(struct persist *p, int *ret_error, char *msg, size_t n)
{
    uint64_t v;
    pthread_mutex_lock(&p->mu);
    v = p->done_seq;
    if (ret_error)
        *ret_error = p->error;
    if (msg && n)
        snprintf(msg, n, "%s", p->error_msg);
    pthread_mutex_unlock(&p->mu);
    return v;
}

void persist_stats(struct persist *p, struct sc_hist *fsync, struct wal_stats *st)
{
    pthread_mutex_lock(&p->mu);
    *fsync = p->fsync_hist;
    *st = p->wal_stats;
    pthread_mutex_unlock(&p->mu);
}
