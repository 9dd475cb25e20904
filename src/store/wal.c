/*
 * wal.c: cubestore's write-ahead log (wal.h), which is also the Raft log.
 *
 * Why it looks like this: the log is the only thing that makes an acknowledged
 * write survive a crash, so every rule below exists to make "what survives" a
 * precise statement that the fault-injection tests (tests/unit/test_wal.c) check
 * against a simulated disk that tears writes and forgets unsynced data.
 *
 * Design
 * ------
 * Segments are files %016llx-%016llx.wal (sequence, first index) in one
 * directory.  A segment is created whole before any record goes into it: open,
 * fallocate to segment_bytes (so that fdatasync never has to change the file
 * size), header + copies of the newest STATE and SNAPSHOT records written and
 * fdatasync'ed, then the directory fsync'ed.  Records are appended behind that.
 *
 *   appends ──> buf (memory) ──wal_flush──> page cache ──wal_sync──> durable
 *                                  │ segment full: fdatasync it, create the next
 *
 * Invariants:
 *  1. Every segment but the last was fdatasync'ed after its last record was
 *     written and before the next segment was created; so only the last segment
 *     can hold unsynced (tearable) bytes.
 *  2. A segment's header and carried records are durable, and its directory entry
 *     is durable, before the first appended record is written into it.
 *  3. Segment sequence numbers on disk are contiguous; wal_compact() removes the
 *     oldest ones first and never the current (last) one.
 *  4. Within the last segment, everything after the append offset `off` is zero,
 *     except bytes flushed since the last sync.  Each wal_flush() rewrites all of
 *     the segment's unsynced bytes (kept in `unsynced`) plus the new ones in one
 *     write, so any mix of surviving prefixes of those writes is a prefix of the
 *     last one.  wal_replay() restores the zero tail by zeroing a torn tail
 *     durably.
 *  5. A record is acknowledged only after wal_sync() returned 0 with it flushed.
 *  6. After any failed fdatasync or directory fsync the log is `failed`: every
 *     later call returns the same error (the page cache state is unknown).
 *
 * States of a struct wal:
 *
 *   wal_open ──> OPENED ──wal_replay──> READY ──(sync error)──> FAILED
 *                               │ corrupt            ▲  wal_append/flush/sync/compact
 *                               └──> error, stays OPENED (caller closes)
 *
 * Replay decides "torn" against "corrupt" per segment: records are decoded from
 * the header on; at the first position X that does not decode, Z is the end of
 * the last non-zero byte in the file.  Z <= X is a clean end.  Otherwise the
 * bytes [X, Z) are searched for any record that decodes with a good checksum:
 * one found means a damaged record with a valid record behind it (corruption);
 * none found is a torn tail, legal only in the last segment (invariant 1).
 */
#include "store/wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/util.h"

#define SEG_MAGIC      "SCWALSEG"
#define SEG_VERSION    1
#define DEFAULT_SEG    (64u << 20)
#define MIN_SEG        256u
#define READ_CHUNK_MIN (16u << 10)
#define READ_CHUNK_MAX (8u << 20)

/* ---- POSIX io ------------------------------------------------------------ */

static int px_open(void *ud, const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

static ssize_t px_pwrite(void *ud, int fd, const void *buf, size_t n, off_t off)
{
    for (;;) {
        ssize_t r = pwrite(fd, buf, n, off);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t px_pread(void *ud, int fd, void *buf, size_t n, off_t off)
{
    for (;;) {
        ssize_t r = pread(fd, buf, n, off);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

static int px_fdatasync(void *ud, int fd)
{
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_ftruncate(void *ud, int fd, off_t len)
{
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int px_fallocate(void *ud, int fd, off_t off, off_t len)
{
    /* posix_fallocate falls back to writing zeros where fallocate(2) is missing. */
    return -posix_fallocate(fd, off, len);
}

static int px_close(void *ud, int fd)
{
    return close(fd) < 0 ? -errno : 0;
}

static int px_fsync_dir(void *ud, const char *dir)
{
    return sc_fsync_dir(dir);
}

static int px_unlink(void *ud, const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int px_rename(void *ud, const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int px_mkdir(void *ud, const char *path)
{
    return sc_mkdir_p(path);
}

static int px_list(void *ud, const char *dir, int (*cb)(void *cbud, const char *name), void *cbud)
{
    DIR *d = opendir(dir); /* glibc opens it O_CLOEXEC */
    if (!d)
        return -errno;
    int r = 0;
    struct dirent *de;
    errno = 0;
    while (r == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        r = cb(cbud, de->d_name);
        errno = 0;
    }
    if (r == 0 && errno != 0)
        r = -errno;
    closedir(d);
    return r;
}

const struct wal_io wal_io_posix = {
    .open = px_open,
    .pwrite = px_pwrite,
    .pread = px_pread,
    .fdatasync = px_fdatasync,
    .ftruncate = px_ftruncate,
    .fallocate = px_fallocate,
    .close = px_close,
    .fsync_dir = px_fsync_dir,
    .unlink = px_unlink,
    .rename = px_rename,
    .mkdir = px_mkdir,
    .list = px_list,
};

/* ---- records ------------------------------------------------------------- */

void wal_record_encode(const struct wal_record *r, struct sc_buf *out)
{
    assert(r->len <= WAL_MAX_RECORD_BYTES);
    sc_buf_reserve(out, WAL_REC_HEADER_BYTES + r->len);
    uint8_t *h = out->data + out->len;
    sc_put_u32le(h + 4, (uint32_t)r->len);
    h[8] = (uint8_t)r->type;
    sc_put_u64le(h + 9, r->term);
    sc_put_u64le(h + 17, r->index);
    if (r->len)
        memcpy(h + WAL_REC_HEADER_BYTES, r->data, r->len);
    sc_put_u32le(h, sc_crc32c(0, h + 4, WAL_REC_HEADER_BYTES - 4 + r->len));
    out->len += WAL_REC_HEADER_BYTES + r->len;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

ssize_t wal_record_decode(const uint8_t *buf, size_t len, struct wal_record *r)
{
    if (len < WAL_REC_HEADER_BYTES)
        return 0;
    if (all_zero(buf, WAL_REC_HEADER_BYTES))
        return 0; /* preallocated space */
    uint8_t type = buf[8];
    if (type < WAL_REC_ENTRY || type > WAL_REC_SNAPSHOT)
        return -SC_E_CORRUPT;
    uint32_t n = sc_get_u32le(buf + 4);
    if (n > WAL_MAX_RECORD_BYTES)
        return -SC_E_CORRUPT;
    if (len - WAL_REC_HEADER_BYTES < n)
        return 0;
    if (sc_crc32c(0, buf + 4, WAL_REC_HEADER_BYTES - 4 + n) != sc_get_u32le(buf))
        return -SC_E_CORRUPT;
    *r = (struct wal_record){
        .type = (enum wal_rec_type)type,
        .term = sc_get_u64le(buf + 9),
        .index = sc_get_u64le(buf + 17),
        .data = buf + WAL_REC_HEADER_BYTES,
        .len = n,
    };
    return (ssize_t)(WAL_REC_HEADER_BYTES + n);
}

/* ---- the log ------------------------------------------------------------- */

struct wal_seg {
    uint64_t seq, first_index;
    uint64_t max_entry; /* highest ENTRY index written into it */
    bool has_entry;
    uint64_t size; /* bytes allocated on disk */
};

/* One buffered record: where it ends in buf, and what wal_flush must know. */
struct wal_pend {
    size_t end;
    uint64_t index;
    uint8_t type;
};

struct wal {
    char *dir;
    const struct wal_io *io;
    size_t segment_bytes;

    struct wal_seg *segs;
    size_t nsegs, segs_cap;
    int fd;                 /* the last segment, open read-write after replay */
    uint64_t off;           /* append offset in it */
    uint64_t data_at;       /* where its appended records start (after header + carried) */
    struct sc_buf unsynced; /* a copy of the bytes [off - unsynced.len, off) not yet synced */
    bool replayed;
    int failed;
    char failed_msg[200];

    struct sc_buf buf; /* encoded, not yet flushed */
    struct wal_pend *pend;
    size_t npend, pend_cap, pdone; /* pend[0, pdone) are written */

    struct sc_buf carry_state, carry_snap; /* newest STATE / SNAPSHOT record written */
    uint64_t last_index;                   /* newest ENTRY index written */
    struct wal_stats st;
};

static void seg_path(const struct wal *w, uint64_t seq, uint64_t first, char *out, size_t n)
{
    snprintf(out, n, "%s/%016" PRIx64 "-%016" PRIx64 ".wal", w->dir, seq, first);
}

/* Marks the log failed (invariant 6) and fills e; returns r. */
static int fail(struct wal *w, int r, struct sc_error *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct wal *w, int r, struct sc_error *e, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    w->failed = r;
    snprintf(w->failed_msg, sizeof(w->failed_msg), "%s: %s", what, strerror(-r));
    return sc_error_set(e, r, "wal", "%s", w->failed_msg);
}

static int check_usable(const struct wal *w, struct sc_error *e)
{
    if (w->failed)
        return sc_error_set(e, w->failed, "wal",
                            "the log failed earlier and refuses further use (%s); restart to "
                            "recover from disk",
                            w->failed_msg);
    if (!w->replayed)
        return sc_error_set(e, -EINVAL, "wal", "wal_replay() must run before using the log");
    return 0;
}

int wal_io_write_all(const struct wal_io *io, int fd, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = io->pwrite(io->ud, fd, p, n, (off_t)off);
        if (k < 0)
            return (int)k;
        if (k == 0)
            return -EIO;
        p += k, n -= (size_t)k, off += (uint64_t)k;
    }
    return 0;
}

int wal_io_read_all(const struct wal_io *io, int fd, struct sc_buf *out)
{
    size_t start = out->len;
    for (;;) {
        /* Reads grow with the file: few calls for 64 MiB, small buffers for tiny files. */
        size_t want = MIN(MAX(out->len - start, (size_t)READ_CHUNK_MIN), (size_t)READ_CHUNK_MAX);
        sc_buf_reserve(out, want);
        ssize_t k = io->pread(io->ud, fd, out->data + out->len, want, (off_t)(out->len - start));
        if (k < 0)
            return (int)k;
        if (k == 0)
            return 0;
        out->len += (size_t)k;
    }
}

static int write_all(struct wal *w, int fd, const uint8_t *p, size_t n, uint64_t off)
{
    return wal_io_write_all(w->io, fd, p, n, off);
}

/* Builds header + carried records into out (invariant 2 makes them one unit). */
static void build_header(struct wal *w, uint64_t seq, uint64_t first, struct sc_buf *out)
{
    size_t carried = w->carry_snap.len + w->carry_state.len;
    sc_buf_reset(out);
    sc_buf_reserve(out, WAL_SEG_HEADER_BYTES + carried);
    uint8_t *h = out->data;
    memset(h, 0, WAL_SEG_HEADER_BYTES);
    memcpy(h, SEG_MAGIC, 8);
    sc_put_u32le(h + 8, SEG_VERSION);
    sc_put_u64le(h + 16, seq);
    sc_put_u64le(h + 24, first);
    sc_put_u32le(h + 32, (uint32_t)carried);
    out->len = WAL_SEG_HEADER_BYTES;
    sc_buf_put(out, w->carry_snap.data, w->carry_snap.len);
    sc_buf_put(out, w->carry_state.data, w->carry_state.len);
    uint32_t c = sc_crc32c(0, out->data, 12);
    c = sc_crc32c(c, out->data + 16, out->len - 16);
    sc_put_u32le(out->data + 12, c);
}

/* Checks a segment's header; returns NULL and the offset of the first appended
 * record in *ret_data_at, or why it is bad. */
static const char *check_header(const uint8_t *h, size_t len, uint64_t seq, uint64_t first,
                                size_t *ret_data_at)
{
    if (len < WAL_SEG_HEADER_BYTES)
        return "file shorter than the segment header";
    if (memcmp(h, SEG_MAGIC, 8) != 0)
        return "bad magic";
    uint32_t carried = sc_get_u32le(h + 32);
    if (carried > 2 * (WAL_REC_HEADER_BYTES + WAL_MAX_RECORD_BYTES) ||
        len - WAL_SEG_HEADER_BYTES < carried)
        return "bad carried-records length";
    uint32_t c = sc_crc32c(0, h, 12);
    if (sc_crc32c(c, h + 16, WAL_SEG_HEADER_BYTES - 16 + carried) != sc_get_u32le(h + 12))
        return "header checksum mismatch";
    if (sc_get_u32le(h + 8) != SEG_VERSION)
        return "unsupported version";
    if (sc_get_u64le(h + 16) != seq || sc_get_u64le(h + 24) != first)
        return "header does not match the file name";
    *ret_data_at = WAL_SEG_HEADER_BYTES + carried;
    return NULL;
}

/* Creates (or re-creates, truncating) segment seq and makes header, carried
 * records and the directory entry durable (invariant 2).  On success *ret_fd is
 * open read-write and *ret_off is where records go. */
static int seg_create(struct wal *w, uint64_t seq, uint64_t first, int *ret_fd, uint64_t *ret_off,
                      struct sc_error *e)
{
    char path[4096];
    seg_path(w, seq, first, path, sizeof(path));
    int fd = w->io->open(w->io->ud, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return sc_error_set(e, fd, "wal", "%s: create segment: %s", path, strerror(-fd));
    int r = w->io->fallocate(w->io->ud, fd, 0, (off_t)w->segment_bytes);
    if (r < 0) {
        sc_error_set(e, r, "wal", "%s: preallocate %zu bytes: %s", path, w->segment_bytes,
                     strerror(-r));
        goto undo;
    }
    struct sc_buf h = {0};
    build_header(w, seq, first, &h);
    r = write_all(w, fd, h.data, h.len, 0);
    uint64_t off = h.len;
    sc_buf_free(&h);
    if (r < 0) {
        sc_error_set(e, r, "wal", "%s: write segment header: %s", path, strerror(-r));
        goto undo;
    }
    r = w->io->fdatasync(w->io->ud, fd);
    if (r < 0) {
        w->io->close(w->io->ud, fd);
        return fail(w, r, e, "%s: fdatasync of new segment", path);
    }
    r = w->io->fsync_dir(w->io->ud, w->dir);
    if (r < 0) {
        w->io->close(w->io->ud, fd);
        return fail(w, r, e, "%s: fsync of the directory", w->dir);
    }
    *ret_fd = fd;
    *ret_off = off;
    return 0;
undo:
    /* Nothing refers to the file yet; a retry truncates it, a crash leaves a last
     * segment with a bad header, which replay re-creates. */
    w->io->close(w->io->ud, fd);
    (void)w->io->unlink(w->io->ud, path);
    return r;
}

static void segs_push(struct wal *w, uint64_t seq, uint64_t first, uint64_t size)
{
    w->segs = sc_grow(w->segs, &w->segs_cap, w->nsegs + 1, sizeof(*w->segs));
    w->segs[w->nsegs++] = (struct wal_seg){.seq = seq, .first_index = first, .size = size};
}

int wal_open(const char *dir, const struct wal_options *o, struct wal **ret, struct sc_error *e)
{
    const struct wal_io *io = o && o->io ? o->io : &wal_io_posix;
    size_t seg = o && o->segment_bytes ? o->segment_bytes : DEFAULT_SEG;
    if (seg < MIN_SEG)
        return sc_error_set(e, -EINVAL, "segment_bytes", "segment_bytes %zu is below %u", seg,
                            MIN_SEG);
    if (!dir || !*dir || strlen(dir) > 3000)
        return sc_error_set(e, -EINVAL, "dir", "bad WAL directory");
    int r = io->mkdir(io->ud, dir);
    if (r < 0)
        return sc_error_set(e, r, "dir", "%s: mkdir: %s", dir, strerror(-r));
    struct wal *w = xcalloc(1, sizeof(*w));
    w->dir = xstrdup(dir);
    w->io = io;
    w->segment_bytes = seg;
    w->fd = -1;
    *ret = w;
    return 0;
}

void wal_close(struct wal *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        w->io->close(w->io->ud, w->fd);
    sc_buf_free(&w->buf);
    sc_buf_free(&w->unsynced);
    sc_buf_free(&w->carry_state);
    sc_buf_free(&w->carry_snap);
    free(w->pend);
    free(w->segs);
    free(w->dir);
    free(w);
}

/* ---- replay -------------------------------------------------------------- */

struct name_list {
    struct wal_seg *v;
    size_t n, cap;
};

static int collect_name(void *ud, const char *name)
{
    struct name_list *l = ud;
    unsigned long long seq, first;
    int used = 0;
    if (strlen(name) != 16 + 1 + 16 + 4 ||
        sscanf(name, "%16llx-%16llx.wal%n", &seq, &first, &used) != 2 || used != 37)
        return 0; /* not ours */
    l->v = sc_grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
    l->v[l->n++] = (struct wal_seg){.seq = seq, .first_index = first};
    return 0;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct wal_seg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static size_t nonzero_end(const uint8_t *p, size_t n)
{
    while (n > 0 && (n % 8) != 0 && p[n - 1] == 0)
        n--;
    while (n >= 8 && sc_get_u64le(p + n - 8) == 0)
        n -= 8;
    while (n > 0 && p[n - 1] == 0)
        n--;
    return n;
}

/* Records carried into new segments: the newest STATE and SNAPSHOT. */
static void note_written(struct wal *w, const uint8_t *rec, size_t n, uint8_t type, uint64_t index,
                         struct wal_seg *seg)
{
    if (type == WAL_REC_ENTRY) {
        if (!seg->has_entry || index > seg->max_entry)
            seg->max_entry = index;
        seg->has_entry = true;
        w->last_index = index;
    } else {
        struct sc_buf *c = type == WAL_REC_STATE ? &w->carry_state : &w->carry_snap;
        sc_buf_reset(c);
        sc_buf_put(c, rec, n);
    }
}

static int zero_range(struct wal *w, int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[65536];
    while (from < to) {
        size_t n = (size_t)MIN(to - from, (uint64_t)sizeof(zeros));
        int r = write_all(w, fd, zeros, n, from);
        if (r < 0)
            return r;
        from += n;
    }
    return 0;
}

/* Replays one segment: returns 0 with *ret_end (the append offset) set, or < 0. */
static int replay_seg(struct wal *w, size_t i, const struct sc_buf *b, int fd,
                      int (*cb)(void *ud, const struct wal_record *r), void *ud, uint64_t *ret_end,
                      struct sc_error *e)
{
    struct wal_seg *s = &w->segs[i];
    bool last = i + 1 == w->nsegs;
    char path[4096];
    seg_path(w, s->seq, s->first_index, path, sizeof(path));

    size_t data_at = 0;
    const char *why = check_header(b->data, b->len, s->seq, s->first_index, &data_at);
    if (why) {
        /* A crash while the last segment was being created leaves a prefix of
         * the header write (invariant 2: no record can be behind it), and replay
         * of the older segments tells exactly what that write was. */
        size_t z = nonzero_end(b->data, b->len);
        struct sc_buf want = {0};
        build_header(w, s->seq, s->first_index, &want);
        bool torn_create = last && z <= want.len && memcmp(b->data, want.data, z) == 0;
        sc_buf_free(&want);
        if (!torn_create)
            return sc_error_set(e, -SC_E_CORRUPT, "wal",
                                "%s: corrupt segment header at offset 0: %s", path, why);
        *ret_end = UINT64_MAX; /* wal_replay() makes it again */
        return 0;
    }
    /* The carried records are checked by the header checksum; a record that
     * does not decode there is corruption even in the last segment. */
    size_t pos = WAL_SEG_HEADER_BYTES;
    w->data_at = data_at; /* the last segment's value is the one kept */
    for (;;) {
        struct wal_record rec;
        ssize_t n = wal_record_decode(b->data + pos, b->len - pos, &rec);
        if (n <= 0 || (pos < data_at && pos + (size_t)n > data_at)) {
            if (pos < data_at)
                return sc_error_set(e, -SC_E_CORRUPT, "wal",
                                    "%s: corrupt carried record at offset %zu", path, pos);
            break;
        }
        note_written(w, b->data + pos, (size_t)n, (uint8_t)rec.type, rec.index, s);
        int r = cb ? cb(ud, &rec) : 0;
        if (r < 0) {
            /* Keep the caller's reason, add where it happened. */
            char reason[sizeof(e->msg)] = "";
            if (e)
                snprintf(reason, sizeof(reason), "%s", e->msg);
            return sc_error_set(e, r, "wal", "%s: record at offset %zu (index %" PRIu64 "): %s",
                                path, pos, rec.index, reason[0] ? reason : "refused by the caller");
        }
        pos += (size_t)n;
    }
    size_t z = nonzero_end(b->data, b->len);
    if (z > pos) {
        for (size_t y = pos + 1; y + WAL_REC_HEADER_BYTES <= z; y++) {
            struct wal_record rec;
            if (wal_record_decode(b->data + y, b->len - y, &rec) > 0)
                return sc_error_set(e, -SC_E_CORRUPT, "wal",
                                    "%s: corrupt record at offset %zu (a valid record follows at "
                                    "offset %zu)",
                                    path, pos, y);
        }
        if (!last)
            return sc_error_set(e, -SC_E_CORRUPT, "wal",
                                "%s: corrupt record at offset %zu of a sealed segment", path, pos);
        /* Torn tail: zero it durably so invariant 4 holds again. */
        int r = zero_range(w, fd, pos, z);
        if (r < 0)
            return sc_error_set(e, r, "wal", "%s: zeroing torn tail at offset %zu: %s", path, pos,
                                strerror(-r));
        r = w->io->fdatasync(w->io->ud, fd);
        if (r < 0)
            return fail(w, r, e, "%s: fdatasync after zeroing the torn tail", path);
        w->st.torn_bytes += z - pos;
    }
    *ret_end = pos;
    return 0;
}

int wal_replay(struct wal *w, int (*cb)(void *ud, const struct wal_record *r), void *ud,
               struct sc_error *e)
{
    if (w->failed)
        return check_usable(w, e);
    if (w->replayed)
        return sc_error_set(e, -EINVAL, "wal", "wal_replay() called twice");
    sc_error_clear(e); /* so a message seen after cb failed is cb's own */
    struct name_list l = {0};
    int r = w->io->list(w->io->ud, w->dir, collect_name, &l);
    if (r < 0) {
        free(l.v);
        return sc_error_set(e, r, "wal", "%s: list: %s", w->dir, strerror(-r));
    }
    if (l.n > 1)
        qsort(l.v, l.n, sizeof(*l.v), seg_cmp);
    for (size_t i = 1; i < l.n; i++)
        if (l.v[i].seq != l.v[i - 1].seq + 1) {
            r = sc_error_set(e, -SC_E_CORRUPT, "wal",
                             "%s: segment sequence jumps from %" PRIu64 " to %" PRIu64
                             " (a segment file is missing)",
                             w->dir, l.v[i - 1].seq, l.v[i].seq);
            free(l.v);
            return r;
        }
    free(w->segs);
    w->segs = l.v, w->nsegs = l.n, w->segs_cap = l.cap;
    sc_buf_reset(&w->carry_state);
    sc_buf_reset(&w->carry_snap);
    w->st.torn_bytes = 0;

    struct sc_buf b = {0};
    uint64_t end = UINT64_MAX;
    int fd = -1;
    for (size_t i = 0; i < w->nsegs; i++) {
        char path[4096];
        seg_path(w, w->segs[i].seq, w->segs[i].first_index, path, sizeof(path));
        bool last = i + 1 == w->nsegs;
        fd = w->io->open(w->io->ud, path, last ? O_RDWR : O_RDONLY, 0);
        if (fd < 0) {
            r = sc_error_set(e, fd, "wal", "%s: open: %s", path, strerror(-fd));
            goto out;
        }
        sc_buf_reset(&b);
        r = wal_io_read_all(w->io, fd, &b);
        if (r < 0) {
            sc_error_set(e, r, "wal", "%s: read: %s", path, strerror(-r));
            goto out;
        }
        w->segs[i].size = MAX((uint64_t)b.len, (uint64_t)w->segment_bytes);
        r = replay_seg(w, i, &b, fd, cb, ud, &end, e);
        if (r < 0)
            goto out;
        if (!last) {
            w->io->close(w->io->ud, fd);
            fd = -1;
        }
    }
    if (end == UINT64_MAX) {
        /* No segment, or the last one never got its header: (re)create it. */
        if (fd >= 0)
            w->io->close(w->io->ud, fd);
        fd = -1;
        uint64_t seq = w->nsegs ? w->segs[w->nsegs - 1].seq : 0;
        uint64_t first = w->nsegs ? w->segs[w->nsegs - 1].first_index : 1;
        r = seg_create(w, seq, first, &fd, &end, e);
        if (r < 0)
            goto out;
        if (!w->nsegs)
            segs_push(w, seq, first, w->segment_bytes);
        w->data_at = end;
    } else {
        if (b.len < w->segment_bytes) {
            /* The preallocation did not survive (a crash before its sync). */
            r = w->io->fallocate(w->io->ud, fd, 0, (off_t)w->segment_bytes);
            if (r < 0) {
                sc_error_set(e, r, "wal", "%s: preallocate: %s", w->dir, strerror(-r));
                goto out;
            }
        }
        /* A process that died without a power cut may have left flushed but
         * unsynced records in the page cache, which replay just accepted:
         * make them durable before writing behind them (invariant 4). */
        r = w->io->fdatasync(w->io->ud, fd);
        if (r < 0) {
            fail(w, r, e, "%s: fdatasync of the last segment", w->dir);
            goto out;
        }
    }
    w->fd = TAKE_FD(fd);
    w->off = end;
    w->replayed = true;
    r = 0;
out:
    if (fd >= 0)
        w->io->close(w->io->ud, fd);
    sc_buf_free(&b);
    return r;
}

/* ---- append, flush, sync ------------------------------------------------- */

int wal_append(struct wal *w, const struct wal_record *r, struct sc_error *e)
{
    int k = check_usable(w, e);
    if (k < 0)
        return k;
    if (r->type < WAL_REC_ENTRY || r->type > WAL_REC_SNAPSHOT)
        return sc_error_set(e, -EINVAL, "type", "unknown WAL record type %d", (int)r->type);
    if (r->len > WAL_MAX_RECORD_BYTES)
        return sc_error_set(e, -SC_E_VALUE_TOO_LARGE, "record",
                            "WAL record of %zu bytes is larger than the limit of %u bytes", r->len,
                            WAL_MAX_RECORD_BYTES);
    if (w->buf.len + WAL_REC_HEADER_BYTES + r->len > WAL_MAX_BUFFERED_BYTES)
        return sc_error_set(e, -ENOBUFS, "wal",
                            "%zu bytes buffered: flush before appending more (limit %u)",
                            w->buf.len, WAL_MAX_BUFFERED_BYTES);
    wal_record_encode(r, &w->buf);
    w->pend = sc_grow(w->pend, &w->pend_cap, w->npend + 1, sizeof(*w->pend));
    w->pend[w->npend++] = (struct wal_pend){.end = w->buf.len, .index = r->index, .type = r->type};
    return 0;
}

/* Seals the current segment (fdatasync, invariant 1) and starts the next. */
static int rotate(struct wal *w, struct sc_error *e)
{
    struct wal_seg *cur = &w->segs[w->nsegs - 1];
    int r = w->io->fdatasync(w->io->ud, w->fd);
    if (r < 0) {
        char path[4096];
        seg_path(w, cur->seq, cur->first_index, path, sizeof(path));
        return fail(w, r, e, "%s: fdatasync of a full segment", path);
    }
    w->st.syncs++;
    sc_buf_reset(&w->unsynced);
    const struct wal_pend *next = &w->pend[w->pdone];
    uint64_t first = next->type == WAL_REC_ENTRY ? next->index : w->last_index + 1;
    int fd;
    uint64_t off;
    r = seg_create(w, cur->seq + 1, first, &fd, &off, e);
    if (r < 0)
        return r;
    w->io->close(w->io->ud, w->fd);
    w->fd = fd;
    w->off = w->data_at = off;
    segs_push(w, cur->seq + 1, first, w->segment_bytes);
    return 0;
}

int wal_flush(struct wal *w, struct sc_error *e)
{
    int r = check_usable(w, e);
    if (r < 0)
        return r;
    while (w->pdone < w->npend) {
        size_t start = w->pdone ? w->pend[w->pdone - 1].end : 0;
        size_t k = w->pdone;
        while (k < w->npend && w->off + (w->pend[k].end - start) <= w->segment_bytes)
            k++;
        if (k == w->pdone) {
            if (w->off > w->data_at) {
                r = rotate(w, e);
                if (r < 0)
                    return r;
                continue;
            }
            k++; /* larger than a whole segment: it goes alone, growing the file */
        }
        size_t end = w->pend[k - 1].end;
        /* Invariant 4: one write covers everything unsynced in this segment, so
         * whatever prefix of whichever write survives a crash, the segment holds
         * a prefix of the records, never a hole followed by records. */
        size_t prev = w->unsynced.len;
        sc_buf_put(&w->unsynced, w->buf.data + start, end - start);
        r = write_all(w, w->fd, w->unsynced.data, w->unsynced.len, w->off - prev);
        if (r < 0) {
            w->unsynced.len = prev;
            struct wal_seg *s = &w->segs[w->nsegs - 1];
            char path[4096];
            seg_path(w, s->seq, s->first_index, path, sizeof(path));
            return sc_error_set(e, r, "wal", "%s: write at offset %" PRIu64 ": %s", path, w->off,
                                strerror(-r));
        }
        struct wal_seg *s = &w->segs[w->nsegs - 1];
        for (size_t i = w->pdone; i < k; i++) {
            size_t b0 = i ? w->pend[i - 1].end : 0;
            note_written(w, w->buf.data + b0, w->pend[i].end - b0, w->pend[i].type,
                         w->pend[i].index, s);
        }
        w->off += end - start;
        s->size = MAX(s->size, w->off);
        w->st.bytes_written += w->unsynced.len;
        w->st.records_written += k - w->pdone;
        w->pdone = k;
    }
    sc_buf_reset(&w->buf);
    w->npend = w->pdone = 0;
    return 0;
}

int wal_sync(struct wal *w, struct sc_error *e)
{
    int r = check_usable(w, e);
    if (r < 0)
        return r;
    if (w->unsynced.len == 0)
        return 0; /* nothing flushed since the last sync (older segments are sealed) */
    r = w->io->fdatasync(w->io->ud, w->fd);
    if (r < 0) {
        struct wal_seg *s = &w->segs[w->nsegs - 1];
        char path[4096];
        seg_path(w, s->seq, s->first_index, path, sizeof(path));
        return fail(w, r, e, "%s: fdatasync", path);
    }
    w->st.syncs++;
    sc_buf_reset(&w->unsynced);
    return 0;
}

int wal_compact(struct wal *w, uint64_t index, struct sc_error *e)
{
    int r = check_usable(w, e);
    if (r < 0)
        return r;
    size_t n = 0;
    while (n + 1 < w->nsegs && (!w->segs[n].has_entry || w->segs[n].max_entry < index)) {
        char path[4096];
        seg_path(w, w->segs[n].seq, w->segs[n].first_index, path, sizeof(path));
        r = w->io->unlink(w->io->ud, path);
        if (r < 0 && r != -ENOENT) {
            sc_error_set(e, r, "wal", "%s: unlink: %s", path, strerror(-r));
            break;
        }
        n++;
    }
    if (n > 0) {
        memmove(w->segs, w->segs + n, (w->nsegs - n) * sizeof(*w->segs));
        w->nsegs -= n;
        int k = w->io->fsync_dir(w->io->ud, w->dir);
        if (k < 0)
            return fail(w, k, e, "%s: fsync of the directory after compaction", w->dir);
    }
    return r < 0 ? r : (int)n;
}

void wal_get_stats(const struct wal *w, struct wal_stats *st)
{
    *st = w->st;
    st->segments = w->nsegs;
    st->disk_bytes = 0;
    for (size_t i = 0; i < w->nsegs; i++)
        st->disk_bytes += w->segs[i].size;
    st->failed = w->failed != 0;
}
