/*
 * recover.c: sctld's data directory: the snapshot file format ("SCRS" v1 | raft
 * meta | store snapshot), the forked child that writes a snapshot every
 * snapshot_every applied entries, and recovery at start-up, which rebuilds the
 * store and the Raft core from the newest snapshot and the WAL.  A fresh member
 * of the initial cluster writes the bootstrap snapshot here.
 *
 * Invariant 6 (of the server's design block, server_int.h):
 *  6. Recovery = newest snapshot (meta + store) + the WAL's entries after it
 *     (override rule, WAL_REC_SNAPSHOT markers) + newest hard state, then
 *     raft_start, which hands the committed entries out again to apply.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "sctld/server_int.h"
#include "store/snap.h"

#define SNAP_MAGIC 0x53435253u /* "SCRS": raft meta + store snapshot */

void srv_snap_encode(const struct raft_snapshot_meta *m, const uint8_t *store, size_t len,
                     struct sc_buf *out)
{
    sc_buf_put_u32le(out, SNAP_MAGIC);
    sc_buf_put_u32le(out, 1);
    raft_snapshot_meta_encode(m, out);
    sc_buf_put(out, store, len);
}

int srv_snap_decode(const uint8_t *p, size_t n, struct raft_snapshot_meta *m, const uint8_t **store,
                    size_t *len)
{
    struct sc_rd rd = sc_rd_make(p, n);
    uint32_t magic, version;
    if (sc_rd_u32le(&rd, &magic) < 0 || magic != SNAP_MAGIC || sc_rd_u32le(&rd, &version) < 0 ||
        version != 1 || raft_snapshot_meta_decode(&rd, m) < 0)
        return -SC_E_CORRUPT;
    *store = rd.p;
    *len = sc_rd_left(&rd);
    return 0;
}

/* The snapshot child writes through this: 1 MiB at a time, each piece on disk
 * before the next.  Written in one go, tens of megabytes of dirty snapshot sit
 * in the journal transaction that the log's next fdatasync has to commit (ext4
 * data=ordered), and that fdatasync then waits for all of it: the bench saw put
 * p99 jump to 1.5 s.  Paced, the log's syncs slip in between the pieces. */
static ssize_t paced_pwrite(void *ud, int fd, const void *buf, size_t n, off_t off)
{
    size_t chunk = MIN(n, (size_t)1 << 20);
    ssize_t w = pwrite(fd, buf, chunk, off);
    if (w < 0)
        return -errno;
    if (sync_file_range(fd, off, w,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER) < 0)
        return -errno;
    return w;
}

/* The snapshot child exited: if it saved the file, the log below it can go. */
static void on_snap_child(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    int st = 0;
    while (waitpid(s->snap_pid, &st, 0) < 0 && errno == EINTR)
        ;
    event_free(s->snap_ev);
    close(s->snap_pidfd);
    s->snap_ev = NULL;
    s->snap_pid = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        persist_compact_log(&s->persist, s->snap_child_index + 1);
        log_info("msg=\"snapshot saved\" index=%llu", (unsigned long long)s->snap_child_index);
    } else {
        log_warn("msg=\"snapshot child failed; the log keeps every entry\" index=%llu status=%d",
                 (unsigned long long)s->snap_child_index, st);
    }
}

/* Every snapshot_every applied entries: snapshot the store, compact the log.
 *
 * The store is encoded and written by a forked child (Redis' BGSAVE): the child
 * sees the store frozen at this instant through copy-on-write, so the loop pays
 * for a fork (page tables, about a millisecond per 100 MB) instead of encoding
 * and copying tens of megabytes, and the file's fsync never queues behind, or
 * in front of, the log's.  The child touches nothing shared but the snapshot
 * directory and exits with _exit.  The WAL keeps every entry until the child
 * reports the file saved, so a failed child costs nothing but the retry. */
void srv_maybe_snapshot(struct srv *s)
{
    if (s->snap_pid || s->applied_index - s->snap_index < s->cfg.snapshot_every)
        return;
    struct sc_error e = {0};
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    int r = raft_compact(s->raft, s->applied_index, &e);
    if (r < 0) {
        log_warn("msg=\"cannot compact the log\" index=%llu error=\"%s\"",
                 (unsigned long long)s->applied_index, e.msg);
        return;
    }
    raft_get_status(s->raft, &s->st);
    s->snap_meta = s->st.snapshot;
    s->snap_index = s->applied_index;
    usec_t t1 = now_usec(CLOCK_MONOTONIC);
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("msg=\"cannot fork the snapshot writer; the log keeps every entry\" error=\"%s\"",
                 strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Background work: on a small node it must not take the loop's core. */
        (void)!nice(19);
        struct sc_buf file = {0};
        srv_snap_encode(&s->snap_meta, NULL, 0, &file);
        store_snapshot_encode(s->store, &file);
        struct wal_io io = wal_io_posix;
        io.pwrite = paced_pwrite;
        r = snap_save(s->snap_dir, &io, s->snap_meta.term, s->snap_meta.index, file.data, file.len,
                      2, &e);
        if (r < 0)
            log_error("msg=\"snapshot not saved\" error=\"%s\"", e.msg);
        _exit(r < 0 ? 1 : 0);
    }
    s->snap_pid = pid;
    s->snap_child_index = s->snap_meta.index;
    s->snap_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->snap_pidfd < 0) { /* cannot happen on our kernels; wait for it here */
        s->snap_pidfd = -1;
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->snap_pid = 0;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            persist_compact_log(&s->persist, s->snap_child_index + 1);
        return;
    }
    s->snap_ev = event_new(s->base, s->snap_pidfd, EV_READ, on_snap_child, s);
    event_add(s->snap_ev, NULL);
    usec_t t2 = now_usec(CLOCK_MONOTONIC);
    log_info("msg=\"snapshot started\" index=%llu pid=%d compact_us=%llu fork_us=%llu",
             (unsigned long long)s->snap_child_index, (int)pid, (unsigned long long)(t1 - t0),
             (unsigned long long)(t2 - t1));
}

/* ---- recovery ----------------------------------------------------------------------- */

struct wal_ent {
    raft_term_t term;
    raft_index_t index;
    uint8_t *data; /* type byte + payload */
    size_t len;
};

struct replay_ctx {
    struct wal_ent *v;
    size_t n, cap;
    bool has_hs;
    struct raft_hard_state hs;
    struct sc_error *e;
};

static void ents_truncate(struct replay_ctx *c, size_t n)
{
    while (c->n > n)
        free(c->v[--c->n].data);
}

/* Rebuilds the log as the core last knew it: an entry with index i overrides
 * every entry >= i; a WAL_REC_SNAPSHOT marker (a snapshot received from the
 * leader) drops every entry that does not continue it. */
static int replay_one(void *ud, const struct wal_record *rec)
{
    struct replay_ctx *c = ud;
    if (rec->type == WAL_REC_STATE) {
        if (rec->len != 24)
            return sc_error_set(c->e, -SC_E_CORRUPT, "wal", "hard state record of %zu bytes",
                                rec->len);
        c->has_hs = true;
        c->hs.term = sc_get_u64le(rec->data);
        c->hs.vote = sc_get_u64le(rec->data + 8);
        c->hs.commit = sc_get_u64le(rec->data + 16);
        return 0;
    }
    if (rec->type == WAL_REC_SNAPSHOT) {
        size_t k = 0;
        while (k < c->n && c->v[k].index < rec->index)
            k++;
        bool keep = (k < c->n && c->v[k].index == rec->index && c->v[k].term == rec->term) ||
                    (c->n && c->v[0].index == rec->index + 1);
        if (!keep)
            ents_truncate(c, 0);
        return 0;
    }
    if (rec->type != WAL_REC_ENTRY)
        return 0;
    if (rec->len < 1)
        return sc_error_set(c->e, -SC_E_CORRUPT, "wal", "entry %llu has no type byte",
                            (unsigned long long)rec->index);
    if (c->n && (rec->index > c->v[c->n - 1].index + 1 || rec->index < c->v[0].index))
        ents_truncate(c, 0); /* the older ones lie below a snapshot: raft checks the gap */
    else if (c->n)
        ents_truncate(c, (size_t)(rec->index - c->v[0].index));
    c->v = sc_grow(c->v, &c->cap, c->n + 1, sizeof(*c->v));
    c->v[c->n++] = (struct wal_ent){.term = rec->term,
                                    .index = rec->index,
                                    .data = xmemdup(rec->data, rec->len),
                                    .len = rec->len};
    return 0;
}

/* The members named by --initial-cluster (or just this one). */
static int initial_conf(struct srv *s, struct raft_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    if (!s->cfg.initial_cluster || !*s->cfg.initial_cluster) {
        conf->voters[conf->n_voters++] = s->id;
        return 0;
    }
    bool self = false;
    char *list = xstrdup(s->cfg.initial_cluster), *save = NULL;
    for (char *it = strtok_r(list, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (!eq || conf->n_voters >= RAFT_MAX_MEMBERS) {
            log_error("msg=\"--initial-cluster: expected NAME=HOST:PORT,...\" got=\"%s\"", it);
            free(list);
            return -EINVAL;
        }
        *eq = '\0';
        conf->voters[conf->n_voters++] = srv_name_id(it);
        self |= strcmp(it, s->cfg.name) == 0;
    }
    free(list);
    if (!self) {
        log_error("msg=\"--initial-cluster does not name this member\" name=%s", s->cfg.name);
        return -EINVAL;
    }
    /* A configuration lists its ids sorted, without repeats (raft_conf_valid). */
    for (uint8_t i = 1; i < conf->n_voters; i++)
        for (uint8_t k = i; k > 0 && conf->voters[k - 1] > conf->voters[k]; k--) {
            raft_id_t t = conf->voters[k];
            conf->voters[k] = conf->voters[k - 1];
            conf->voters[k - 1] = t;
        }
    for (uint8_t i = 1; i < conf->n_voters; i++)
        if (conf->voters[i] == conf->voters[i - 1]) {
            log_error("msg=\"--initial-cluster names a member twice\"");
            return -EINVAL;
        }
    return 0;
}

static void raft_trace(void *ud, const char *line)
{
    log_debug("msg=\"raft\" trace=\"%s\"", line);
}

int srv_recover(struct srv *s, struct wal **ret_wal)
{
    struct sc_error e = {0};
    int r;
    snprintf(s->wal_dir, sizeof(s->wal_dir), "%s/wal", s->cfg.data_dir);
    snprintf(s->snap_dir, sizeof(s->snap_dir), "%s/snap", s->cfg.data_dir);
    if ((r = sc_mkdir_p(s->wal_dir)) < 0 || (r = sc_mkdir_p(s->snap_dir)) < 0) {
        log_error("msg=\"cannot create the data directory\" dir=%s error=\"%s\"", s->cfg.data_dir,
                  strerror(-r));
        return r;
    }
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    struct sc_buf snap = {0};
    uint64_t sterm = 0, sindex = 0;
    r = snap_load_latest(s->snap_dir, &wal_io_posix, &sterm, &sindex, &snap, &e);
    if (r < 0) {
        log_error("msg=\"cannot load the snapshot\" error=\"%s\"", e.msg);
        return r;
    }
    if (e.msg[0])
        log_warn("msg=\"snapshot fallback\" detail=\"%s\"", e.msg);
    bool have_snap = r == 1;
    struct wal_options wo = {.segment_bytes = s->cfg.wal_segment_bytes, .io = &wal_io_posix};
    struct wal *w;
    if ((r = wal_open(s->wal_dir, &wo, &w, &e)) < 0) {
        log_error("msg=\"cannot open the log\" error=\"%s\"", e.msg);
        sc_buf_free(&snap);
        return r;
    }
    struct replay_ctx c = {.e = &e};
    if ((r = wal_replay(w, replay_one, &c, &e)) < 0) {
        log_error("msg=\"log replay failed; refusing to start\" error=\"%s\"", e.msg);
        goto fail;
    }
    if (!have_snap && c.n == 0 && !c.has_hs && !s->cfg.join) {
        /* A fresh member of the initial cluster: every initial member writes the
         * same bootstrap snapshot (index 1, term 1, the initial voters). */
        struct raft_snapshot_meta m = {.index = 1, .term = 1};
        if ((r = initial_conf(s, &m.conf)) < 0)
            goto fail;
        struct store *empty = store_new(&s->cfg.limits);
        struct sc_buf st = {0};
        store_snapshot_encode(empty, &st);
        store_free(empty);
        srv_snap_encode(&m, st.data, st.len, &snap);
        sc_buf_free(&st);
        if ((r = snap_save(s->snap_dir, NULL, 1, 1, snap.data, snap.len, 2, &e)) < 0) {
            log_error("msg=\"cannot write the bootstrap snapshot\" error=\"%s\"", e.msg);
            goto fail;
        }
        have_snap = true;
        log_info("msg=\"bootstrapped a new cluster\" voters=%u", m.conf.n_voters);
    }
    struct raft_config rc;
    raft_config_default(&rc);
    rc.id = s->id;
    rc.election_ticks = s->cfg.election_ticks;
    rc.heartbeat_ticks = s->cfg.heartbeat_ticks;
    rc.pre_vote = true;
    rc.check_quorum = true;
    rc.trace = raft_trace;
    if (getrandom(&rc.seed, sizeof(rc.seed), 0) != sizeof(rc.seed))
        rc.seed = now_usec(CLOCK_REALTIME);
    if ((r = raft_new(&rc, &s->raft, &e)) < 0)
        goto fail;
    if (have_snap) {
        const uint8_t *st;
        size_t stlen;
        if ((r = srv_snap_decode(snap.data, snap.len, &s->snap_meta, &st, &stlen)) < 0) {
            sc_error_set(&e, r, "snapshot",
                         "the newest snapshot has no Raft metadata (a data directory from "
                         "before Raft?)");
            goto fail;
        }
        if ((r = store_snapshot_decode(s->store, st, stlen, t0, &e)) < 0 ||
            (r = raft_load_snapshot(s->raft, &s->snap_meta, &e)) < 0)
            goto fail;
    }
    size_t k = 0;
    while (k < c.n && c.v[k].index < s->snap_meta.index)
        k++;
    if (k < c.n && c.v[k].index == s->snap_meta.index && c.v[k].term != s->snap_meta.term)
        k = c.n; /* stale entries of a log the snapshot replaced */
    for (; k < c.n; k++) {
        struct raft_entry ent = {.term = c.v[k].term,
                                 .index = c.v[k].index,
                                 .type = c.v[k].data[0],
                                 .data = c.v[k].data + 1,
                                 .len = c.v[k].len - 1};
        if ((r = raft_load_entry(s->raft, &ent, &e)) < 0)
            goto fail;
    }
    if (c.has_hs && (r = raft_load_hard_state(s->raft, &c.hs, &e)) < 0)
        goto fail;
    if ((r = raft_start(s->raft, &e)) < 0)
        goto fail;
    raft_get_status(s->raft, &s->st);
    s->applied_index = s->snap_index = s->snap_meta.index;
    log_info("msg=\"recovered\" snapshot_index=%llu last_index=%llu commit=%llu term=%llu "
             "revision=%lld ms=%llu",
             (unsigned long long)s->snap_meta.index, (unsigned long long)s->st.last_index,
             (unsigned long long)s->st.commit, (unsigned long long)s->st.term,
             (long long)store_rev(s->store),
             (unsigned long long)(now_usec(CLOCK_MONOTONIC) - t0) / 1000);
    ents_truncate(&c, 0);
    free(c.v);
    sc_buf_free(&snap);
    *ret_wal = w;
    return 0;
fail:
    if (e.msg[0])
        log_error("msg=\"recovery failed; refusing to start\" error=\"%s\"", e.msg);
    ents_truncate(&c, 0);
    free(c.v);
    sc_buf_free(&snap);
    wal_close(w);
    return r < 0 ? r : -SC_E_CORRUPT;
}
