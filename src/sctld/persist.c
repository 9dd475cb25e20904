/* persist.c: the group-commit thread (see persist.h). */
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

static void *run(void *arg)
{
    struct persist *p = arg;
    struct sc_buf batch = {0}, snap = {0};
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->queue.len == 0 && p->snap_index == 0)
            pthread_cond_wait(&p->cv, &p->mu);
        bool stop = p->stop && p->queue.len == 0 && p->snap_index == 0;
        struct sc_buf t = batch;
        batch = p->queue;
        p->queue = t;
        sc_buf_reset(&p->queue);
        uint64_t snap_index = p->snap_index, snap_term = p->snap_term;
        if (snap_index) {
            t = snap;
            snap = p->snap;
            p->snap = t;
            p->snap_index = 0;
        }
        bool failed = p->error != 0;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        if (failed) {
            wake(p);
            continue;
        }

        struct sc_error e = {0};
        uint64_t last = 0;
        int r = 0;
        struct sc_rd rd = sc_rd_make(batch.data, batch.len);
        while (r >= 0 && sc_rd_left(&rd) > 0) {
            uint64_t term, index;
            uint32_t len;
            sc_rd_u64le(&rd, &term);
            sc_rd_u64le(&rd, &index);
            sc_rd_u32le(&rd, &len);
            struct wal_record rec = {
                .type = WAL_REC_ENTRY, .term = term, .index = index, .data = rd.p, .len = len};
            rd.p += len;
            r = wal_append(p->wal, &rec, &e);
            last = index;
        }
        if (r >= 0 && last) {
            usec_t t0 = now_usec(CLOCK_MONOTONIC);
            r = wal_flush(p->wal, &e);
            if (r >= 0)
                r = wal_sync(p->wal, &e);
            usec_t dt = now_usec(CLOCK_MONOTONIC) - t0;
            pthread_mutex_lock(&p->mu);
            sc_hist_observe(&p->fsync_hist, dt);
            pthread_mutex_unlock(&p->mu);
        }
        if (r >= 0 && snap_index) {
            /* The snapshot covers entries <= snap_index, all durable already (the
             * loop applies only durable entries), so older segments can go. */
            r = snap_save(p->snap_dir, NULL, snap_term, snap_index, snap.data, snap.len, 2, &e);
            if (r >= 0)
                r = wal_compact(p->wal, snap_index + 1, &e);
        }
        if (r < 0) {
            fail(p, r, &e);
        } else {
            pthread_mutex_lock(&p->mu);
            if (last)
                p->durable_index = last;
            wal_get_stats(p->wal, &p->wal_stats);
            pthread_mutex_unlock(&p->mu);
        }
        sc_buf_reset(&batch);
        sc_buf_reset(&snap);
        wake(p);
    }
    sc_buf_free(&batch);
    sc_buf_free(&snap);
    return NULL;
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
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    wal_close(p->wal);
    p->wal = NULL;
    close(p->wake_fd);
    sc_buf_free(&p->queue);
    sc_buf_free(&p->snap);
    free(p->snap_dir);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

void persist_append(struct persist *p, uint64_t term, uint64_t index, const uint8_t *payload,
                    size_t len)
{
    pthread_mutex_lock(&p->mu);
    bool was_empty = p->queue.len == 0;
    sc_buf_put_u64le(&p->queue, term);
    sc_buf_put_u64le(&p->queue, index);
    sc_buf_put_u32le(&p->queue, (uint32_t)len);
    sc_buf_put(&p->queue, payload, len);
    if (was_empty)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void persist_snapshot(struct persist *p, uint64_t term, uint64_t index, struct sc_buf *data)
{
    pthread_mutex_lock(&p->mu);
    sc_buf_free(&p->snap);
    p->snap = *data;
    *data = (struct sc_buf){0};
    p->snap_index = index;
    p->snap_term = term;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

uint64_t persist_durable(struct persist *p, int *ret_error, char *msg, size_t n)
{
    uint64_t v;
    pthread_mutex_lock(&p->mu);
    v = p->durable_index;
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
