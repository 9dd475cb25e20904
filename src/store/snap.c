/*
 * snap.c: snapshot files (snap.h).
 *
 * Why it looks like this: a snapshot replaces a prefix of the log, so a half
 * written one must never be mistaken for a whole one, and a damaged one must not
 * strand the node when an older snapshot plus the log still describe the state.
 *
 * Design
 * ------
 * Save: write DIR/<name>.snap.tmp (O_TRUNC), fdatasync it, close, rename it to
 * DIR/<name>.snap, fsync DIR; only then remove older snapshots beyond `keep`
 * and stale .tmp files, and fsync DIR again.
 *
 *   tmp written ──fdatasync──> tmp durable ──rename + fsync DIR──> snapshot durable
 *        │ crash: tmp ignored by load, removed by the next save
 *
 * Invariants:
 *  1. A file named *.snap was durable (data fdatasync'ed) before it got that
 *     name, so a crash leaves every *.snap either whole or, after media damage,
 *     failing its checksum, never silently half-written.
 *  2. Older snapshots are removed only after the new one is durable under its
 *     final name (and the directory fsync'ed), so at every instant at least one
 *     whole snapshot exists once one was saved.
 *  3. Load never writes.
 */
#include "store/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#include "base/util.h"

#define SNAP_MAGIC   0x4e534353u /* "SCSN" little-endian */
#define SNAP_VERSION 1
#define NAME_LEN     (16 + 1 + 16 + 5) /* %016x-%016x.snap */

struct snap_name {
    uint64_t term, index;
    bool tmp;
    char name[NAME_LEN + 5];
};

struct snap_list {
    struct snap_name *v;
    size_t n, cap;
};

static int collect(void *ud, const char *name)
{
    struct snap_list *l = ud;
    unsigned long long term, index;
    int used = 0;
    size_t len = strlen(name);
    if (len != NAME_LEN && len != NAME_LEN + 4)
        return 0;
    if (sscanf(name, "%16llx-%16llx.snap%n", &term, &index, &used) != 2 || used != NAME_LEN)
        return 0;
    bool tmp = len == NAME_LEN + 4;
    if (tmp && strcmp(name + NAME_LEN, ".tmp") != 0)
        return 0;
    l->v = sc_grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
    struct snap_name *s = &l->v[l->n++];
    *s = (struct snap_name){.term = term, .index = index, .tmp = tmp};
    snprintf(s->name, sizeof(s->name), "%s", name);
    return 0;
}

/* Newest first: by index, then term. */
static int newest_first(const void *a, const void *b)
{
    const struct snap_name *x = a, *y = b;
    if (x->index != y->index)
        return x->index > y->index ? -1 : 1;
    if (x->term != y->term)
        return x->term > y->term ? -1 : 1;
    return 0;
}

static int list_sorted(const struct wal_io *io, const char *dir, struct snap_list *l)
{
    int r = io->list(io->ud, dir, collect, l);
    if (r < 0)
        return r;
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), newest_first);
    return 0;
}

int snap_save(const char *dir, const struct wal_io *io, uint64_t term, uint64_t index,
              const uint8_t *data, size_t len, unsigned keep, struct sc_error *e)
{
    io = io ? io : &wal_io_posix;
    if (!dir || !*dir || strlen(dir) > 3000)
        return sc_error_set(e, -EINVAL, "dir", "bad snapshot directory");
    if (keep == 0)
        keep = 1;
    int r = io->mkdir(io->ud, dir);
    if (r < 0)
        return sc_error_set(e, r, "dir", "%s: mkdir: %s", dir, strerror(-r));

    char path[4096], tmp[4096 + 8];
    snprintf(path, sizeof(path), "%s/%016" PRIx64 "-%016" PRIx64 ".snap", dir, term, index);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);

    uint8_t h[SNAP_HEADER_BYTES];
    sc_put_u32le(h, SNAP_MAGIC);
    sc_put_u32le(h + 4, SNAP_VERSION);
    sc_put_u64le(h + 8, term);
    sc_put_u64le(h + 16, index);
    sc_put_u64le(h + 24, len);
    sc_put_u32le(h + 32, sc_crc32c(sc_crc32c(0, h, 32), data, len));

    int fd = io->open(io->ud, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return sc_error_set(e, fd, "snapshot", "%s: create: %s", tmp, strerror(-fd));
    r = wal_io_write_all(io, fd, h, sizeof(h), 0);
    if (r >= 0)
        r = wal_io_write_all(io, fd, data, len, sizeof(h));
    if (r < 0) {
        io->close(io->ud, fd);
        (void)io->unlink(io->ud, tmp);
        return sc_error_set(e, r, "snapshot", "%s: write: %s", tmp, strerror(-r));
    }
    r = io->fdatasync(io->ud, fd);
    io->close(io->ud, fd);
    if (r < 0) {
        (void)io->unlink(io->ud, tmp);
        return sc_error_set(e, r, "snapshot", "%s: fdatasync: %s", tmp, strerror(-r));
    }
    r = io->rename(io->ud, tmp, path);
    if (r < 0) {
        (void)io->unlink(io->ud, tmp);
        return sc_error_set(e, r, "snapshot", "rename %s to %s: %s", tmp, path, strerror(-r));
    }
    r = io->fsync_dir(io->ud, dir);
    if (r < 0)
        return sc_error_set(e, r, "snapshot", "%s: fsync of the directory: %s", dir, strerror(-r));

    /* Invariant 2: the new snapshot is durable; trim the old ones. */
    struct snap_list l = {0};
    r = list_sorted(io, dir, &l);
    if (r < 0) {
        free(l.v);
        return sc_error_set(e, r, "snapshot", "%s: list: %s", dir, strerror(-r));
    }
    unsigned kept = 0;
    bool removed = false;
    for (size_t i = 0; i < l.n; i++) {
        if (!l.v[i].tmp && kept < keep) {
            kept++;
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, l.v[i].name);
        int k = io->unlink(io->ud, path);
        if (k < 0 && k != -ENOENT && r == 0)
            r = sc_error_set(e, k, "snapshot", "%s: unlink: %s", path, strerror(-k));
        removed = true;
    }
    free(l.v);
    if (removed) {
        int k = io->fsync_dir(io->ud, dir);
        if (k < 0 && r == 0)
            r = sc_error_set(e, k, "snapshot", "%s: fsync of the directory: %s", dir, strerror(-k));
    }
    return r;
}

/* Checks one file image; NULL when it is whole, else why not. */
static const char *check(const struct sc_buf *b, const struct snap_name *n)
{
    if (b->len < SNAP_HEADER_BYTES)
        return "shorter than the header";
    const uint8_t *h = b->data;
    if (sc_get_u32le(h) != SNAP_MAGIC)
        return "bad magic";
    if (sc_get_u32le(h + 4) != SNAP_VERSION)
        return "unsupported version";
    if (sc_get_u64le(h + 24) != b->len - SNAP_HEADER_BYTES)
        return "length does not match the file size";
    if (sc_crc32c(sc_crc32c(0, h, 32), h + SNAP_HEADER_BYTES, b->len - SNAP_HEADER_BYTES) !=
        sc_get_u32le(h + 32))
        return "checksum mismatch";
    if (sc_get_u64le(h + 8) != n->term || sc_get_u64le(h + 16) != n->index)
        return "term/index do not match the file name";
    return NULL;
}

int snap_load_latest(const char *dir, const struct wal_io *io, uint64_t *ret_term,
                     uint64_t *ret_index, struct sc_buf *data, struct sc_error *e)
{
    io = io ? io : &wal_io_posix;
    sc_error_clear(e);
    struct snap_list l = {0};
    int r = list_sorted(io, dir, &l);
    if (r == -ENOENT) {
        free(l.v);
        return 0;
    }
    if (r < 0) {
        free(l.v);
        return sc_error_set(e, r, "snapshot", "%s: list: %s", dir, strerror(-r));
    }
    char damaged[300] = "";
    size_t ndamaged = 0;
    struct sc_buf b = {0};
    r = 0;
    for (size_t i = 0; i < l.n && r == 0; i++) {
        if (l.v[i].tmp)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, l.v[i].name);
        int fd = io->open(io->ud, path, O_RDONLY, 0);
        if (fd < 0) {
            r = sc_error_set(e, fd, "snapshot", "%s: open: %s", path, strerror(-fd));
            break;
        }
        sc_buf_reset(&b);
        int k = wal_io_read_all(io, fd, &b);
        io->close(io->ud, fd);
        if (k < 0) {
            r = sc_error_set(e, k, "snapshot", "%s: read: %s", path, strerror(-k));
            break;
        }
        const char *why = check(&b, &l.v[i]);
        if (why) {
            if (!ndamaged++)
                snprintf(damaged, sizeof(damaged), "%.200s (%s)", path, why);
            continue;
        }
        sc_buf_reset(data);
        sc_buf_put(data, b.data + SNAP_HEADER_BYTES, b.len - SNAP_HEADER_BYTES);
        *ret_term = l.v[i].term;
        *ret_index = l.v[i].index;
        if (ndamaged)
            sc_error_set(e, 0, "snapshot",
                         "damaged snapshot %s skipped (%zu in all); loaded the older %s", damaged,
                         ndamaged, l.v[i].name);
        r = 1;
    }
    if (r == 0 && ndamaged)
        r = sc_error_set(e, -SC_E_CORRUPT, "snapshot", "every snapshot is damaged, newest: %s",
                         damaged);
    sc_buf_free(&b);
    free(l.v);
    return r;
}
