/*
 * fuzz_wal.c: libFuzzer harness for the WAL record decoder and for recovery from
 * arbitrary segment and snapshot images (src/store/wal.c, snap.c).
 *
 * Why: replay reads whatever a crash, a bad disk or an operator left in the
 * directory, so every byte of a segment is untrusted input.  The first input
 * byte picks a target, the rest is its input:
 *   0  wal_record_decode: a decoded record re-encodes to exactly the bytes it
 *      was decoded from; "need more" only when the input is shorter than the
 *      header or than the length it declares, or the header is all zeros;
 *   1  one segment image: wal_replay either fails with a message naming the
 *      file, or succeeds; then an appended record survives a flush, sync and a
 *      second replay, which returns the same entries plus the new one;
 *   2  the same with two segments (byte 1 says where to split the image);
 *   3  a snapshot file: snap_load_latest loads exactly the payload that a
 *      valid file carries, or fails / falls back cleanly.
 * All files live in a small in-memory file system (struct wal_io).  Any
 * violated property aborts, which libFuzzer reports as a crash.
 *
 * Run: tests/fuzz/run.sh SECONDS (every harness), or by hand
 *   build-fuzz/tests/fuzz/fuzz_wal -max_total_time=600 CORPUS tests/fuzz/seeds/fuzz_wal
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "store/snap.h"
#include "store/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- an in-memory file system: no durability, just files ---------------------- */

#define MAX_FILES 16
struct mem_file {
    char path[128];
    struct sc_buf data;
    bool used;
};
struct mem_fs {
    struct mem_file f[MAX_FILES];
    int fds[8]; /* fd 10+i -> file index */
};

static struct mem_file *find(struct mem_fs *m, const char *path)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (m->f[i].used && strcmp(m->f[i].path, path) == 0)
            return &m->f[i];
    return NULL;
}

static struct mem_file *add(struct mem_fs *m, const char *path)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (!m->f[i].used) {
            m->f[i].used = true;
            snprintf(m->f[i].path, sizeof(m->f[i].path), "%s", path);
            sc_buf_reset(&m->f[i].data);
            return &m->f[i];
        }
    return NULL;
}

static struct mem_file *by_fd(struct mem_fs *m, int fd)
{
    CHECK(fd >= 10 && fd < 18 && m->fds[fd - 10] >= 0);
    return &m->f[m->fds[fd - 10]];
}

static void grow_to(struct sc_buf *b, uint64_t n)
{
    if (n > b->len) {
        sc_buf_reserve(b, n - b->len);
        memset(b->data + b->len, 0, n - b->len);
        b->len = n;
    }
}

static int m_open(void *ud, const char *path, int flags, mode_t mode)
{
    struct mem_fs *m = ud;
    struct mem_file *f = find(m, path);
    if (!f && !(flags & O_CREAT))
        return -ENOENT;
    if (!f && !(f = add(m, path)))
        return -ENOSPC;
    if (flags & O_TRUNC)
        f->data.len = 0;
    for (int i = 0; i < 8; i++)
        if (m->fds[i] < 0) {
            m->fds[i] = (int)(f - m->f);
            return 10 + i;
        }
    return -EMFILE;
}

static ssize_t m_pwrite(void *ud, int fd, const void *buf, size_t n, off_t off)
{
    struct mem_file *f = by_fd(ud, fd);
    CHECK(off >= 0 && (uint64_t)off + n < (64u << 20));
    grow_to(&f->data, (uint64_t)off + n);
    memcpy(f->data.data + off, buf, n);
    return (ssize_t)n;
}

static ssize_t m_pread(void *ud, int fd, void *buf, size_t n, off_t off)
{
    struct mem_file *f = by_fd(ud, fd);
    if ((uint64_t)off >= f->data.len)
        return 0;
    size_t k = MIN(n, f->data.len - (size_t)off);
    memcpy(buf, f->data.data + off, k);
    return (ssize_t)k;
}

static int m_fdatasync(void *ud, int fd)
{
    by_fd(ud, fd);
    return 0;
}

static int m_ftruncate(void *ud, int fd, off_t len)
{
    struct mem_file *f = by_fd(ud, fd);
    grow_to(&f->data, (uint64_t)len);
    f->data.len = (size_t)len;
    return 0;
}

static int m_fallocate(void *ud, int fd, off_t off, off_t len)
{
    grow_to(&by_fd(ud, fd)->data, (uint64_t)(off + len));
    return 0;
}

static int m_close(void *ud, int fd)
{
    struct mem_fs *m = ud;
    by_fd(m, fd);
    m->fds[fd - 10] = -1;
    return 0;
}

static int m_fsync_dir(void *ud, const char *dir)
{
    return 0;
}

static int m_unlink(void *ud, const char *path)
{
    struct mem_file *f = find(ud, path);
    if (!f)
        return -ENOENT;
    f->used = false;
    return 0;
}

static int m_rename(void *ud, const char *from, const char *to)
{
    struct mem_fs *m = ud;
    struct mem_file *f = find(m, from), *t = find(m, to);
    if (!f)
        return -ENOENT;
    if (t)
        t->used = false;
    snprintf(f->path, sizeof(f->path), "%s", to);
    return 0;
}

static int m_mkdir(void *ud, const char *path)
{
    return 0;
}

static int m_list(void *ud, const char *dir, int (*cb)(void *cbud, const char *name), void *cbud)
{
    struct mem_fs *m = ud;
    size_t n = strlen(dir);
    for (int i = 0; i < MAX_FILES; i++)
        if (m->f[i].used && strncmp(m->f[i].path, dir, n) == 0 && m->f[i].path[n] == '/') {
            int r = cb(cbud, m->f[i].path + n + 1);
            if (r)
                return r;
        }
    return 0;
}

static struct mem_fs fs;
static const struct wal_io io = {
    .open = m_open,
    .pwrite = m_pwrite,
    .pread = m_pread,
    .fdatasync = m_fdatasync,
    .ftruncate = m_ftruncate,
    .fallocate = m_fallocate,
    .close = m_close,
    .ud = &fs,
    .fsync_dir = m_fsync_dir,
    .unlink = m_unlink,
    .rename = m_rename,
    .mkdir = m_mkdir,
    .list = m_list,
};

static void fs_reset(void)
{
    for (int i = 0; i < MAX_FILES; i++) {
        sc_buf_free(&fs.f[i].data);
        fs.f[i].used = false;
    }
    for (int i = 0; i < 8; i++)
        fs.fds[i] = -1;
}

/* ---- targets ------------------------------------------------------------------ */

static void fuzz_decode(const uint8_t *p, size_t n)
{
    struct wal_record r;
    ssize_t k = wal_record_decode(p, n, &r);
    if (k > 0) {
        CHECK((size_t)k <= n && (size_t)k == WAL_REC_HEADER_BYTES + r.len);
        CHECK(r.type >= WAL_REC_ENTRY && r.type <= WAL_REC_SNAPSHOT);
        struct sc_buf b = {0};
        wal_record_encode(&r, &b);
        CHECK(b.len == (size_t)k && memcmp(b.data, p, b.len) == 0);
        sc_buf_free(&b);
    } else if (k == 0) {
        bool zero = true;
        for (size_t i = 0; i < WAL_REC_HEADER_BYTES && i < n; i++)
            zero = zero && p[i] == 0;
        CHECK(n < WAL_REC_HEADER_BYTES || zero || sc_get_u32le(p + 4) > n - WAL_REC_HEADER_BYTES);
    } else {
        CHECK(k == -SC_E_CORRUPT);
    }
}

/* The ENTRY records a replay hands out, as one byte string (index, term, data). */
static int collect(void *ud, const struct wal_record *r)
{
    struct sc_buf *b = ud;
    CHECK(r->len <= WAL_MAX_RECORD_BYTES);
    CHECK(r->type >= WAL_REC_ENTRY && r->type <= WAL_REC_SNAPSHOT);
    if (r->type == WAL_REC_ENTRY) {
        sc_buf_put_u64le(b, r->index);
        sc_buf_put_u64le(b, r->term);
        sc_buf_put_bytes(b, r->data, r->len);
    }
    return 0;
}

#define DIR_ "/f/wal"

static void fuzz_segments(const uint8_t *p, size_t n, size_t split, size_t seg)
{
    fs_reset();
    char path[128];
    snprintf(path, sizeof(path), DIR_ "/%016x-%016x.wal", 0, 1);
    sc_buf_put(&add(&fs, path)->data, p, MIN(split, n));
    if (split < n) {
        snprintf(path, sizeof(path), DIR_ "/%016x-%016x.wal", 1, 1);
        sc_buf_put(&add(&fs, path)->data, p + split, n - split);
    }
    struct wal_options o = {.segment_bytes = seg, .io = &io};
    struct sc_error e = {0};
    struct wal *w;
    CHECK(wal_open(DIR_, &o, &w, &e) == 0);
    struct sc_buf first = {0}, second = {0};
    int r = wal_replay(w, collect, &first, &e);
    if (r < 0) {
        CHECK(r == -SC_E_CORRUPT);
        CHECK(strstr(e.msg, DIR_ "/") != NULL && strstr(e.msg, "offset") != NULL);
        wal_close(w);
        sc_buf_free(&first);
        return;
    }
    uint8_t payload[40];
    memset(payload, 0x5a, sizeof(payload));
    struct wal_record rec = {.type = WAL_REC_ENTRY,
                             .term = 77,
                             .index = 1u << 30,
                             .data = payload,
                             .len = sizeof(payload)};
    CHECK(wal_append(w, &rec, &e) == 0);
    CHECK(wal_flush(w, &e) == 0);
    CHECK(wal_sync(w, &e) == 0);
    wal_close(w);
    sc_buf_put_u64le(&first, rec.index);
    sc_buf_put_u64le(&first, rec.term);
    sc_buf_put_bytes(&first, rec.data, rec.len);

    CHECK(wal_open(DIR_, &o, &w, &e) == 0);
    r = wal_replay(w, collect, &second, &e);
    if (r != 0)
        fprintf(stderr, "second replay: %d %s\n", r, e.msg);
    CHECK(r == 0);
    struct wal_stats st;
    wal_get_stats(w, &st);
    CHECK(st.torn_bytes == 0); /* the first replay left a clean tail */
    CHECK(second.len == first.len && memcmp(first.data, second.data, first.len) == 0);
    wal_close(w);
    sc_buf_free(&first);
    sc_buf_free(&second);
}

static void fuzz_snapshot(const uint8_t *p, size_t n)
{
    fs_reset();
    /* The name claims (term 1, index 2); a valid older snapshot sits beside it. */
    const uint8_t old[] = "older";
    struct sc_error e = {0};
    CHECK(snap_save("/f/snap", &io, 1, 1, old, sizeof(old), 5, &e) == 0);
    sc_buf_put(&add(&fs, "/f/snap/0000000000000001-0000000000000002.snap")->data, p, n);
    uint64_t term = 0, index = 0;
    struct sc_buf got = {0};
    int r = snap_load_latest("/f/snap", &io, &term, &index, &got, &e);
    CHECK(r == 1);
    if (index == 2) {
        CHECK(n >= SNAP_HEADER_BYTES && got.len == n - SNAP_HEADER_BYTES);
        CHECK(got.len == 0 || memcmp(got.data, p + SNAP_HEADER_BYTES, got.len) == 0);
        CHECK(e.msg[0] == '\0');
    } else {
        CHECK(index == 1 && got.len == sizeof(old) && memcmp(got.data, old, sizeof(old)) == 0);
        CHECK(strstr(e.msg, "0000000000000002.snap") != NULL);
    }
    sc_buf_free(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    size_t seg = 256 + (size_t)data[1] * 16;
    switch (data[0] % 4) {
    case 0:
        fuzz_decode(data + 1, size - 1);
        break;
    case 1:
        fuzz_segments(p, n, n, seg);
        break;
    case 2:
        fuzz_segments(p, n, (size_t)data[1] * 8, seg);
        break;
    case 3:
        fuzz_snapshot(data + 1, size - 1);
        break;
    }
    fs_reset();
    return 0;
}
