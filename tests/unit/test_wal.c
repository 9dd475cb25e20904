/*
 * test_wal.c: the write-ahead log and snapshot files (src/store/wal.c, snap.c)
 * against a simulated disk that crashes, tears writes and fails calls.
 *
 * Why a simulated disk: the promise of a WAL is about what survives a power cut,
 * which a real file system cannot be made to show on demand.  struct sim_disk
 * implements struct wal_io in memory with two images per file: the page cache
 * (what reads see) and the durable image (what survives).  fdatasync copies the
 * cache to the durable image; a directory fsync makes creations, renames and
 * unlinks in that directory durable.  A crash keeps the durable state plus, for
 * every write since the last fdatasync, any byte PREFIX of it (chosen by a seed
 * or by an exact byte budget), and any prefix of the un-fsynced directory
 * operations.  Any call can also be made to fail with -EIO, once or from then on.
 *
 * The property checked everywhere: recovery hands back exactly the acknowledged
 * records (those whose wal_sync() returned 0), in order, possibly followed by a
 * prefix of the one unacknowledged batch, and nothing else; the log then accepts
 * appends that survive a second crash.  A few tests run on the real POSIX io in
 * temporary directories under /tmp.  `./test_wal measure` prints the latency of
 * append+flush+sync on the real disk (docs/wal.md).
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/util.h"
#include "store/snap.h"
#include "store/wal.h"

/* ---- the simulated disk ------------------------------------------------------ */

enum {
    K_OPEN,
    K_PWRITE,
    K_PREAD,
    K_FDATASYNC,
    K_FTRUNCATE,
    K_FALLOCATE,
    K_FSYNC_DIR,
    K_UNLINK,
    K_RENAME,
    K_LIST,
    K_MAX
};
static const char *const kind_name[K_MAX] = {"open",      "pwrite",    "pread",     "fdatasync",
                                             "ftruncate", "fallocate", "fsync_dir", "unlink",
                                             "rename",    "list"};

enum { OP_WRITE, OP_ALLOC, OP_TRUNC };
struct sim_op {
    int kind;
    uint64_t off, len;
    uint8_t *data;
};

struct sim_inode {
    struct sc_buf durable, cache;
    struct sim_op *ops; /* data operations since the last fdatasync */
    size_t nops, cap;
};

struct sim_name {
    char path[200];
    int ino;
};

enum { NS_CREATE, NS_UNLINK, NS_RENAME };
struct sim_nsop {
    int kind, ino;
    char a[200], b[200];
};

struct sim_names {
    struct sim_name *v;
    size_t n, cap;
};

struct sim_disk {
    struct sim_inode *ino;
    size_t nino, capino;
    struct sim_names cache, durable;
    struct sim_nsop *ns; /* directory operations not yet fsynced, in order */
    size_t nns, capns;
    int fds[64]; /* fd 100+i -> inode, -1 free */
    char dirs[8][200];
    size_t ndirs;

    /* faults */
    uint64_t ops;      /* mutating calls so far */
    uint64_t crash_at; /* the crash_at-th mutating call is where the power goes */
    bool dead;
    int fail_kind; /* -1: none */
    uint64_t fail_nth;
    bool fail_persistent;
    int fail_err;
    bool failed_once; /* the injected failure happened */
    uint64_t count[K_MAX];
    uint64_t rng;
};

static uint64_t rnd(uint64_t *x)
{
    /* xorshift64*: a seed reproduces every choice */
    *x ^= *x >> 12, *x ^= *x << 25, *x ^= *x >> 27;
    return *x * 2685821657736338717ULL;
}

static struct sim_disk *sim_new(void)
{
    struct sim_disk *s = xcalloc(1, sizeof(*s));
    for (size_t i = 0; i < ELEMENTSOF(s->fds); i++)
        s->fds[i] = -1;
    s->fail_kind = -1;
    s->rng = 0x9E3779B97F4A7C15ULL;
    return s;
}

static void inode_clear_ops(struct sim_inode *in)
{
    for (size_t i = 0; i < in->nops; i++)
        free(in->ops[i].data);
    in->nops = 0;
}

static void sim_free(struct sim_disk *s)
{
    for (size_t i = 0; i < s->nino; i++) {
        inode_clear_ops(&s->ino[i]);
        free(s->ino[i].ops);
        sc_buf_free(&s->ino[i].durable);
        sc_buf_free(&s->ino[i].cache);
    }
    free(s->ino);
    free(s->cache.v);
    free(s->durable.v);
    free(s->ns);
    free(s);
}

static void sim_clear_faults(struct sim_disk *s)
{
    s->crash_at = 0;
    s->dead = false;
    s->fail_kind = -1;
    s->failed_once = false;
}

static int names_find(const struct sim_names *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].path, path) == 0)
            return (int)i;
    return -1;
}

static void names_set(struct sim_names *l, const char *path, int ino)
{
    int i = names_find(l, path);
    if (i < 0) {
        l->v = sc_grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
        i = (int)l->n++;
        snprintf(l->v[i].path, sizeof(l->v[i].path), "%s", path);
    }
    l->v[i].ino = ino;
}

static void names_del(struct sim_names *l, const char *path)
{
    int i = names_find(l, path);
    if (i >= 0)
        l->v[i] = l->v[--l->n];
}

static void dir_of(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *sl = strrchr(out, '/');
    if (sl)
        *sl = '\0';
}

static bool dir_exists(const struct sim_disk *s, const char *dir)
{
    for (size_t i = 0; i < s->ndirs; i++)
        if (strcmp(s->dirs[i], dir) == 0)
            return true;
    return false;
}

static void ns_push(struct sim_disk *s, int kind, const char *a, const char *b, int ino)
{
    s->ns = sc_grow(s->ns, &s->capns, s->nns + 1, sizeof(*s->ns));
    struct sim_nsop *o = &s->ns[s->nns++];
    *o = (struct sim_nsop){.kind = kind, .ino = ino};
    snprintf(o->a, sizeof(o->a), "%s", a);
    snprintf(o->b, sizeof(o->b), "%s", b ? b : "");
}

static void ns_apply(struct sim_names *l, const struct sim_nsop *o)
{
    if (o->kind == NS_CREATE)
        names_set(l, o->a, o->ino);
    else if (o->kind == NS_UNLINK)
        names_del(l, o->a);
    else {
        names_del(l, o->a);
        names_set(l, o->b, o->ino);
    }
}

/* Applies one data operation, cut to `keep` bytes for a write, to an image. */
static void img_apply(struct sc_buf *img, const struct sim_op *o, uint64_t keep)
{
    uint64_t end = o->kind == OP_TRUNC ? o->len : o->off + (o->kind == OP_WRITE ? keep : o->len);
    if (o->kind == OP_WRITE && keep == 0)
        return;
    if (o->kind == OP_TRUNC || end > img->len) {
        if (end > img->len) {
            sc_buf_reserve(img, end - img->len);
            memset(img->data + img->len, 0, end - img->len);
        }
        if (o->kind != OP_ALLOC || end > img->len)
            img->len = end;
    }
    if (o->kind == OP_WRITE)
        memcpy(img->data + o->off, o->data, keep);
}

static void inode_op(struct sim_inode *in, int kind, uint64_t off, uint64_t len, const void *data,
                     uint64_t keep)
{
    struct sim_op o = {.kind = kind, .off = off, .len = kind == OP_WRITE ? keep : len};
    if (kind == OP_WRITE)
        o.data = xmemdup(data, keep);
    img_apply(&in->cache, &o, keep);
    in->ops = sc_grow(in->ops, &in->cap, in->nops + 1, sizeof(*in->ops));
    in->ops[in->nops++] = o;
}

/* Fault gate in front of every call: -EIO once dead; the injected failure; and,
 * for calls that change the disk, the crash point. */
static int gate(struct sim_disk *s, int kind, bool mutating, bool *crash_now)
{
    *crash_now = false;
    if (s->dead)
        return -EIO;
    s->count[kind]++;
    if (s->fail_kind == kind &&
        (s->count[kind] == s->fail_nth || (s->fail_persistent && s->count[kind] > s->fail_nth))) {
        s->failed_once = true;
        return s->fail_err;
    }
    if (mutating && ++s->ops == s->crash_at) {
        s->dead = true;
        *crash_now = true;
    }
    return 0;
}

/* For calls that do nothing at all when the power fails on them. */
#define GATE_MUTATING(s, kind)                                                                     \
    do {                                                                                           \
        bool crash_;                                                                               \
        int r_ = gate((s), (kind), true, &crash_);                                                 \
        if (r_ < 0)                                                                                \
            return r_;                                                                             \
        if (crash_)                                                                                \
            return -EIO;                                                                           \
    } while (0)

static struct sim_inode *fd_inode(struct sim_disk *s, int fd)
{
    assert_true(fd >= 100 && fd < 100 + (int)ELEMENTSOF(s->fds));
    assert_true(s->fds[fd - 100] >= 0);
    return &s->ino[s->fds[fd - 100]];
}

static int s_open(void *ud, const char *path, int flags, mode_t mode)
{
    struct sim_disk *s = ud;
    bool crash;
    int r = gate(s, K_OPEN, flags & (O_CREAT | O_TRUNC), &crash);
    if (r < 0)
        return r;
    if (crash)
        return -EIO;
    char dir[200];
    dir_of(path, dir, sizeof(dir));
    if (!dir_exists(s, dir))
        return -ENOENT;
    int i = names_find(&s->cache, path);
    int ino;
    if (i < 0) {
        if (!(flags & O_CREAT))
            return -ENOENT;
        s->ino = sc_grow(s->ino, &s->capino, s->nino + 1, sizeof(*s->ino));
        ino = (int)s->nino++;
        s->ino[ino] = (struct sim_inode){0};
        names_set(&s->cache, path, ino);
        ns_push(s, NS_CREATE, path, NULL, ino);
    } else {
        ino = s->cache.v[i].ino;
    }
    if (flags & O_TRUNC)
        inode_op(&s->ino[ino], OP_TRUNC, 0, 0, NULL, 0);
    for (size_t k = 0; k < ELEMENTSOF(s->fds); k++)
        if (s->fds[k] < 0) {
            s->fds[k] = ino;
            return 100 + (int)k;
        }
    return -EMFILE;
}

static ssize_t s_pwrite(void *ud, int fd, const void *buf, size_t n, off_t off)
{
    struct sim_disk *s = ud;
    bool crash;
    int r = gate(s, K_PWRITE, true, &crash);
    if (r < 0)
        return r;
    struct sim_inode *in = fd_inode(s, fd);
    if (crash) {
        /* The power went during this write: some prefix reached the cache. */
        uint64_t keep = rnd(&s->rng) % (n + 1);
        inode_op(in, OP_WRITE, (uint64_t)off, n, buf, keep);
        return -EIO;
    }
    inode_op(in, OP_WRITE, (uint64_t)off, n, buf, n);
    return (ssize_t)n;
}

static ssize_t s_pread(void *ud, int fd, void *buf, size_t n, off_t off)
{
    struct sim_disk *s = ud;
    bool crash;
    int r = gate(s, K_PREAD, false, &crash);
    if (r < 0)
        return r;
    struct sim_inode *in = fd_inode(s, fd);
    if ((uint64_t)off >= in->cache.len)
        return 0;
    size_t k = MIN(n, in->cache.len - (size_t)off);
    memcpy(buf, in->cache.data + off, k);
    return (ssize_t)k;
}

static int s_fdatasync(void *ud, int fd)
{
    struct sim_disk *s = ud;
    GATE_MUTATING(s, K_FDATASYNC);
    struct sim_inode *in = fd_inode(s, fd);
    sc_buf_reset(&in->durable);
    sc_buf_put(&in->durable, in->cache.data, in->cache.len);
    inode_clear_ops(in);
    return 0;
}

static int s_ftruncate(void *ud, int fd, off_t len)
{
    struct sim_disk *s = ud;
    GATE_MUTATING(s, K_FTRUNCATE);
    inode_op(fd_inode(s, fd), OP_TRUNC, 0, (uint64_t)len, NULL, 0);
    return 0;
}

static int s_fallocate(void *ud, int fd, off_t off, off_t len)
{
    struct sim_disk *s = ud;
    GATE_MUTATING(s, K_FALLOCATE);
    inode_op(fd_inode(s, fd), OP_ALLOC, (uint64_t)off, (uint64_t)len, NULL, 0);
    return 0;
}

static int s_close(void *ud, int fd)
{
    struct sim_disk *s = ud;
    fd_inode(s, fd);
    s->fds[fd - 100] = -1;
    return 0;
}

static int s_fsync_dir(void *ud, const char *dir)
{
    struct sim_disk *s = ud;
    GATE_MUTATING(s, K_FSYNC_DIR);
    size_t keep = 0;
    for (size_t i = 0; i < s->nns; i++) {
        char d[200];
        dir_of(s->ns[i].a, d, sizeof(d));
        if (strcmp(d, dir) == 0)
            ns_apply(&s->durable, &s->ns[i]);
        else
            s->ns[keep++] = s->ns[i];
    }
    s->nns = keep;
    return 0;
}

static int s_unlink(void *ud, const char *path)
{
    struct sim_disk *s = ud;
    GATE_MUTATING(s, K_UNLINK);
    int i = names_find(&s->cache, path);
    if (i < 0)
        return -ENOENT;
    ns_push(s, NS_UNLINK, path, NULL, s->cache.v[i].ino);
    names_del(&s->cache, path);
    return 0;
}

static int s_rename(void *ud, const char *from, const char *to)
{
    struct sim_disk *s = ud;
    GATE_MUTATING(s, K_RENAME);
    int i = names_find(&s->cache, from);
    if (i < 0)
        return -ENOENT;
    int ino = s->cache.v[i].ino;
    ns_push(s, NS_RENAME, from, to, ino);
    names_del(&s->cache, from);
    names_set(&s->cache, to, ino);
    return 0;
}

static int s_mkdir(void *ud, const char *path)
{
    /* Directories are durable at once: the WAL never creates one it then relies
     * on within the same run, so modelling their loss would test nothing here. */
    struct sim_disk *s = ud;
    if (s->dead)
        return -EIO;
    if (!dir_exists(s, path)) {
        assert_true(s->ndirs < ELEMENTSOF(s->dirs));
        snprintf(s->dirs[s->ndirs++], sizeof(s->dirs[0]), "%s", path);
    }
    return 0;
}

static int s_list(void *ud, const char *dir, int (*cb)(void *cbud, const char *name), void *cbud)
{
    struct sim_disk *s = ud;
    bool crash;
    int r = gate(s, K_LIST, false, &crash);
    if (r < 0)
        return r;
    if (!dir_exists(s, dir))
        return -ENOENT;
    for (size_t i = 0; i < s->cache.n; i++) {
        char d[200];
        dir_of(s->cache.v[i].path, d, sizeof(d));
        if (strcmp(d, dir) == 0 && (r = cb(cbud, s->cache.v[i].path + strlen(dir) + 1)) != 0)
            return r;
    }
    return 0;
}

static struct wal_io sim_io(struct sim_disk *s)
{
    return (struct wal_io){
        .open = s_open,
        .pwrite = s_pwrite,
        .pread = s_pread,
        .fdatasync = s_fdatasync,
        .ftruncate = s_ftruncate,
        .fallocate = s_fallocate,
        .close = s_close,
        .ud = s,
        .fsync_dir = s_fsync_dir,
        .unlink = s_unlink,
        .rename = s_rename,
        .mkdir = s_mkdir,
        .list = s_list,
    };
}

/* How a crash treats what was not synced.  random: each write keeps a random
 * prefix (none, all, or a byte count), each size change is kept or not, and a
 * random prefix of the directory operations survives.  Otherwise the writes,
 * in order, keep `budget` bytes between them, and meta/ns say whether size
 * changes and directory operations survive. */
struct crash_mode {
    bool random;
    uint64_t seed;
    uint64_t budget;
    bool meta, ns;
};

static void sim_crash(struct sim_disk *s, struct crash_mode m)
{
    uint64_t x = m.seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < ELEMENTSOF(s->fds); i++)
        s->fds[i] = -1;
    for (size_t i = 0; i < s->nino; i++) {
        struct sim_inode *in = &s->ino[i];
        struct sc_buf img = {0};
        sc_buf_put(&img, in->durable.data, in->durable.len);
        for (size_t k = 0; k < in->nops; k++) {
            const struct sim_op *o = &in->ops[k];
            if (o->kind == OP_WRITE) {
                uint64_t keep;
                if (m.random) {
                    uint64_t c = rnd(&x) % 3;
                    keep = c == 0 ? 0 : c == 1 ? o->len : rnd(&x) % (o->len + 1);
                } else {
                    keep = MIN(m.budget, o->len);
                    m.budget -= keep;
                }
                img_apply(&img, o, keep);
            } else if (m.random ? rnd(&x) % 2 : m.meta) {
                img_apply(&img, o, 0);
            }
        }
        inode_clear_ops(in);
        sc_buf_free(&in->durable);
        sc_buf_reset(&in->cache);
        sc_buf_put(&in->cache, img.data, img.len);
        in->durable = img;
    }
    size_t keep = m.random ? (size_t)(rnd(&x) % (s->nns + 1)) : m.ns ? s->nns : 0;
    for (size_t i = 0; i < keep; i++)
        ns_apply(&s->durable, &s->ns[i]);
    s->nns = 0;
    s->cache.n = 0;
    for (size_t i = 0; i < s->durable.n; i++)
        names_set(&s->cache, s->durable.v[i].path, s->durable.v[i].ino);
    sim_clear_faults(s);
}

/* The durable image of a file (after a crash it is also the cache). */
static struct sim_inode *sim_file(struct sim_disk *s, const char *path)
{
    int i = names_find(&s->cache, path);
    return i < 0 ? NULL : &s->ino[s->cache.v[i].ino];
}

/* The WAL segment files in the simulated directory, by name (= by sequence). */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sim_name *)a)->path, ((const struct sim_name *)b)->path);
}

static size_t sim_segments(struct sim_disk *s, const char *dir, char out[][200], size_t max)
{
    struct sim_names l = {0};
    for (size_t i = 0; i < s->cache.n; i++) {
        char d[200];
        dir_of(s->cache.v[i].path, d, sizeof(d));
        const char *p = s->cache.v[i].path;
        if (strcmp(d, dir) == 0 && strlen(p) > 4 && strcmp(p + strlen(p) - 4, ".wal") == 0)
            names_set(&l, p, s->cache.v[i].ino);
    }
    qsort(l.v, l.n, sizeof(*l.v), name_cmp);
    size_t n = MIN(l.n, max);
    for (size_t i = 0; i < n; i++)
        memcpy(out[i], l.v[i].path, 200);
    free(l.v);
    return n;
}

/* ---- the workload ------------------------------------------------------------ */

#define WDIR "/sim/wal"
#define SDIR "/sim/snap"

/* Record i (i >= 1) is fully determined by i, so a replayed record can be checked
 * byte by byte: "nothing else" means no record that was never written. */
static size_t payload_len(uint64_t i)
{
    return (size_t)((i * 37) % 301);
}
static uint8_t payload_byte(uint64_t i, size_t j)
{
    return (uint8_t)(i * 131 + j * 7 + (j >> 3));
}
static uint64_t term_of(uint64_t i)
{
    return 1 + i / 64;
}

static int append_entry(struct wal *w, uint64_t i, struct sc_error *e)
{
    uint8_t p[301];
    size_t n = payload_len(i);
    for (size_t j = 0; j < n; j++)
        p[j] = payload_byte(i, j);
    struct wal_record r = {
        .type = WAL_REC_ENTRY, .term = term_of(i), .index = i, .data = p, .len = n};
    return wal_append(w, &r, e);
}

struct seen {
    uint64_t *idx;
    size_t n, cap;
    uint64_t states, last_state;
    char bad[200];
};

static int collect(void *ud, const struct wal_record *r)
{
    struct seen *s = ud;
    if (r->type == WAL_REC_STATE) {
        s->states++;
        s->last_state = r->len >= 8 ? sc_get_u64le(r->data) : 0;
        return 0;
    }
    if (r->type != WAL_REC_ENTRY)
        return 0;
    uint64_t i = r->index;
    bool ok = i >= 1 && r->term == term_of(i) && r->len == payload_len(i);
    for (size_t j = 0; ok && j < r->len; j++)
        ok = r->data[j] == payload_byte(i, j);
    if (!ok && !s->bad[0])
        snprintf(s->bad, sizeof(s->bad), "record #%zu (index %" PRIu64 ") is not what was written",
                 s->n, i);
    s->idx = sc_grow(s->idx, &s->cap, s->n + 1, sizeof(*s->idx));
    s->idx[s->n++] = i;
    return 0;
}

/* What the client knows: records up to `acked` were acknowledged; records up to
 * `written` were appended (the rest of the unacknowledged batch). */
struct client {
    struct wal *w;
    uint64_t acked, written;
    size_t batches_ok;
    bool sync_failed;
    bool flush_each; /* flush after every append: several writes per sync */
};

/* Appends `count` records from c->written + 1 in batches (sizes cycle through a
 * pattern); each batch is append*, flush (retried up to 3 times on failure,
 * like a server whose disk hiccups), sync.  Stops at the first error it cannot
 * get past.  Checks that a failed sync makes the log refuse everything. */
static void client_run(struct client *c, uint64_t count, const unsigned *pattern, size_t npattern)
{
    struct sc_error e;
    uint64_t end = c->written + count;
    for (size_t b = 0; c->written < end; b++) {
        unsigned n = pattern[b % npattern];
        bool ok = true;
        for (unsigned k = 0; k < n && c->written < end && ok; k++) {
            ok = append_entry(c->w, c->written + 1, &e) == 0;
            if (ok)
                c->written++;
            if (ok && c->flush_each)
                (void)wal_flush(c->w, &e); /* a failure is retried below */
        }
        if (!ok)
            return;
        int r = -1;
        for (int attempt = 0; attempt < 4 && r < 0; attempt++) {
            r = wal_flush(c->w, &e);
            struct wal_stats st;
            wal_get_stats(c->w, &st);
            if (r < 0 && st.failed)
                break;
        }
        if (r < 0)
            return;
        r = wal_sync(c->w, &e);
        if (r < 0) {
            c->sync_failed = true;
            /* fsync errors are not retryable: everything after fails too. */
            assert_true(wal_sync(c->w, &e) < 0);
            assert_true(wal_flush(c->w, &e) < 0);
            assert_true(append_entry(c->w, c->written + 1, &e) < 0);
            struct wal_stats st;
            wal_get_stats(c->w, &st);
            assert_true(st.failed);
            return;
        }
        c->acked = c->written;
        c->batches_ok++;
    }
}

/* Opens and replays; on success checks the recovered prefix property. */
static int recover(struct wal_io *io, size_t seg, struct wal **ret, struct seen *s,
                   struct sc_error *e)
{
    struct wal_options o = {.segment_bytes = seg, .io = io};
    *s = (struct seen){0};
    int r = wal_open(WDIR, &o, ret, e);
    if (r < 0)
        return r;
    r = wal_replay(*ret, collect, s, e);
    if (r < 0) {
        wal_close(*ret);
        *ret = NULL;
    }
    return r;
}

static void check_prefix(const struct seen *s, uint64_t acked, uint64_t written, const char *ctx)
{
    if (s->bad[0])
        fail_msg("%s: %s", ctx, s->bad);
    for (size_t j = 0; j < s->n; j++)
        if (s->idx[j] != j + 1)
            fail_msg("%s: record #%zu has index %" PRIu64 ", expected %zu", ctx, j, s->idx[j],
                     j + 1);
    if (s->n < acked || s->n > written)
        fail_msg("%s: recovered %zu records; acknowledged %" PRIu64 ", written %" PRIu64, ctx, s->n,
                 acked, written);
}

static const unsigned batches[] = {1, 3, 7, 2, 5, 1, 4};

struct scenario {
    size_t seg;
    uint64_t records;
    uint64_t crash_at; /* 0: none */
    int fail_kind;     /* -1: none */
    uint64_t fail_nth;
    bool persistent;
    bool fault_in_recovery; /* the fault hits the first recovery, not the workload */
    bool flush_each;
    struct crash_mode crash;
};

struct outcome {
    uint64_t ops; /* mutating calls the workload made */
    uint64_t count[K_MAX];
    bool failure_happened;
};

/* One life of a node: workload with a fault, crash, recovery (checked), more
 * appends, another crash, recovery (checked again). */
static void run_scenario(const struct scenario *sc, struct outcome *out)
{
    char ctx[160];
    snprintf(ctx, sizeof(ctx), "seg=%zu crash_at=%" PRIu64 " fail=%s#%" PRIu64 "%s%s seed=%" PRIu64,
             sc->seg, sc->crash_at, sc->fail_kind >= 0 ? kind_name[sc->fail_kind] : "-",
             sc->fail_nth, sc->persistent ? " persistent" : "",
             sc->fault_in_recovery ? " in-recovery" : "", sc->crash.seed);
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    if (!sc->fault_in_recovery) {
        d->crash_at = sc->crash_at;
        d->fail_kind = sc->fail_kind;
        d->fail_nth = sc->fail_nth;
        d->fail_persistent = sc->persistent;
        d->fail_err = sc->fail_kind == K_FALLOCATE ? -ENOSPC : -EIO;
    }
    struct client c = {.flush_each = sc->flush_each};
    struct wal_options o = {.segment_bytes = sc->seg, .io = &io};
    assert_int_equal(wal_open(WDIR, &o, &c.w, &e), 0);
    if (wal_replay(c.w, NULL, NULL, &e) == 0) {
        client_run(&c, sc->records, batches, ELEMENTSOF(batches));
        /* And a batch flushed but never synced: the crash may tear it. */
        for (int k = 0; k < 5 && append_entry(c.w, c.written + 1, &e) == 0; k++) {
            c.written++;
            if (c.flush_each)
                (void)wal_flush(c.w, &e);
        }
        (void)wal_flush(c.w, &e);
    }
    if (out) {
        out->ops = d->ops;
        memcpy(out->count, d->count, sizeof(d->count));
        out->failure_happened = d->failed_once;
    }
    wal_close(c.w);
    sim_crash(d, sc->crash);

    struct seen s;
    struct wal *w = NULL;
    if (sc->fault_in_recovery) {
        d->fail_kind = sc->fail_kind;
        d->fail_nth = sc->fail_nth;
        d->fail_persistent = sc->persistent;
        d->fail_err = -EIO;
        d->crash_at = sc->crash_at;
        memset(d->count, 0, sizeof(d->count));
        d->ops = 0;
        int r = recover(&io, sc->seg, &w, &s, &e);
        if (r == 0)
            check_prefix(&s, c.acked, c.written, ctx);
        free(s.idx);
        wal_close(w);
        if (out)
            out->failure_happened = d->failed_once;
        /* Whatever the failed recovery did, it must not have cost a record. */
        sim_crash(d, (struct crash_mode){.random = true, .seed = sc->crash.seed + 7});
    }
    int r = recover(&io, sc->seg, &w, &s, &e);
    if (r < 0)
        fail_msg("%s: recovery failed: %d %s", ctx, r, e.msg);
    check_prefix(&s, c.acked, c.written, ctx);

    /* Life goes on: appends after recovery work and survive the next crash. */
    struct client c2 = {.w = w, .acked = s.n, .written = s.n};
    client_run(&c2, 17, batches, ELEMENTSOF(batches));
    if (c2.acked != s.n + 17)
        fail_msg("%s: appends after recovery failed", ctx);
    free(s.idx);
    wal_close(w);
    sim_crash(d, (struct crash_mode){.random = true, .seed = sc->crash.seed + 1});
    r = recover(&io, sc->seg, &w, &s, &e);
    if (r < 0)
        fail_msg("%s: second recovery failed: %d %s", ctx, r, e.msg);
    check_prefix(&s, c2.acked, c2.acked, ctx);
    free(s.idx);
    wal_close(w);
    sim_free(d);
}

/* ---- tests ------------------------------------------------------------------- */

static void record_codec(void **state)
{
    uint8_t p[300];
    for (size_t j = 0; j < sizeof(p); j++)
        p[j] = (uint8_t)(j * 13);
    struct wal_record in = {.type = WAL_REC_ENTRY, .term = 7, .index = 1234, .data = p, .len = 300};
    struct sc_buf b = {0};
    wal_record_encode(&in, &b);
    assert_int_equal(b.len, WAL_REC_HEADER_BYTES + 300);
    struct wal_record out;
    assert_int_equal(wal_record_decode(b.data, b.len, &out), (ssize_t)b.len);
    assert_int_equal(out.type, WAL_REC_ENTRY);
    assert_int_equal(out.term, 7);
    assert_int_equal(out.index, 1234);
    assert_int_equal(out.len, 300);
    assert_memory_equal(out.data, p, 300);
    /* Every strict prefix is "need more", never a record. */
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(wal_record_decode(b.data, cut, &out), 0);
    /* Every single-byte change is caught. */
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x21;
        ssize_t r = wal_record_decode(b.data, b.len, &out);
        assert_true(r == -SC_E_CORRUPT || r == 0);
        b.data[i] ^= 0x21;
    }
    /* Zeros are preallocated space; a bad type or an oversized length is corrupt. */
    uint8_t z[64] = {0};
    assert_int_equal(wal_record_decode(z, sizeof(z), &out), 0);
    z[8] = 9;
    assert_int_equal(wal_record_decode(z, sizeof(z), &out), -SC_E_CORRUPT);
    z[8] = WAL_REC_ENTRY;
    sc_put_u32le(z + 4, WAL_MAX_RECORD_BYTES + 1);
    assert_int_equal(wal_record_decode(z, sizeof(z), &out), -SC_E_CORRUPT);
    sc_buf_free(&b);
}

/* The unsynced batch torn at every record boundary and at offsets inside each
 * record (header bytes, payload bytes, the last byte). */
static void torn_tail_every_offset(void **state)
{
    for (size_t seg = 4096; seg <= 65536; seg *= 16) {
        /* Find the byte layout of the unsynced batch. */
        struct sim_disk *probe = sim_new();
        struct wal_io pio = sim_io(probe);
        struct client pc = {0};
        struct wal_options o = {.segment_bytes = seg, .io = &pio};
        struct sc_error e = {0};
        assert_int_equal(wal_open(WDIR, &o, &pc.w, &e), 0);
        assert_int_equal(wal_replay(pc.w, NULL, NULL, &e), 0);
        client_run(&pc, 10, batches, ELEMENTSOF(batches));
        assert_int_equal(pc.acked, 10);
        struct wal_stats st0, st1;
        wal_get_stats(pc.w, &st0);
        for (uint64_t i = 11; i <= 16; i++)
            assert_int_equal(append_entry(pc.w, i, &e), 0);
        assert_int_equal(wal_flush(pc.w, &e), 0);
        wal_get_stats(pc.w, &st1);
        wal_close(pc.w);
        sim_free(probe);
        uint64_t total = st1.bytes_written - st0.bytes_written;

        uint64_t cuts[256];
        size_t ncuts = 0;
        uint64_t at = 0;
        for (uint64_t i = 11; i <= 16; i++) {
            uint64_t len = WAL_REC_HEADER_BYTES + payload_len(i);
            const uint64_t inside[] = {0, 1, 4, 12, 24, 25, 26, len / 2, len - 1};
            for (size_t k = 0; k < ELEMENTSOF(inside); k++)
                if (inside[k] < len)
                    cuts[ncuts++] = at + inside[k];
            at += len;
        }
        assert_int_equal(at, total);
        cuts[ncuts++] = total;

        for (size_t k = 0; k < ncuts; k++) {
            struct sim_disk *d = sim_new();
            struct wal_io io = sim_io(d);
            struct client c = {0};
            o.io = &io;
            assert_int_equal(wal_open(WDIR, &o, &c.w, &e), 0);
            assert_int_equal(wal_replay(c.w, NULL, NULL, &e), 0);
            client_run(&c, 10, batches, ELEMENTSOF(batches));
            for (uint64_t i = 11; i <= 16; i++)
                assert_int_equal(append_entry(c.w, i, &e), 0);
            assert_int_equal(wal_flush(c.w, &e), 0);
            c.written = 16;
            wal_close(c.w);
            sim_crash(d, (struct crash_mode){.budget = cuts[k], .meta = true, .ns = true});

            struct seen s;
            struct wal *w;
            int r = recover(&io, seg, &w, &s, &e);
            if (r < 0)
                fail_msg("cut %" PRIu64 ": %s", cuts[k], e.msg);
            check_prefix(&s, 10, 16, "torn tail");
            /* Exactly the records wholly inside the kept prefix come back. */
            uint64_t whole = 10, acc = 0;
            for (uint64_t i = 11; i <= 16; i++) {
                acc += WAL_REC_HEADER_BYTES + payload_len(i);
                if (acc <= cuts[k])
                    whole = i;
            }
            assert_int_equal(s.n, whole);
            struct wal_stats st;
            wal_get_stats(w, &st);
            assert_true(st.torn_bytes <= cuts[k]);
            /* Appends go right after the last good record and survive. */
            struct client c2 = {.w = w, .acked = s.n, .written = s.n};
            client_run(&c2, 9, batches, ELEMENTSOF(batches));
            assert_int_equal(c2.acked, s.n + 9);
            free(s.idx);
            wal_close(w);
            sim_crash(d, (struct crash_mode){.random = true, .seed = k});
            assert_int_equal(recover(&io, seg, &w, &s, &e), 0);
            check_prefix(&s, c2.acked, c2.acked, "after torn tail");
            free(s.idx);
            wal_close(w);
            sim_free(d);
        }
    }
}

/* The power fails at every mutating call of a workload that rotates through
 * many small segments; the interrupted write keeps a random prefix, and the
 * crash keeps random prefixes of everything unsynced.  Once with one flush per
 * sync (group commit), once with a flush after every append. */
static void crash_at_every_io(void **state)
{
    static const size_t segs[] = {512, 1500};
    for (size_t si = 0; si < ELEMENTSOF(segs); si++)
        for (int fe = 0; fe <= 1; fe++) {
            struct scenario sc = {.seg = segs[si],
                                  .records = 60,
                                  .fail_kind = -1,
                                  .flush_each = fe,
                                  .crash = {.random = true, .seed = 1}};
            struct outcome out;
            run_scenario(&sc, &out);
            assert_true(out.count[K_FALLOCATE] > 5); /* it did rotate, many times */
            for (uint64_t at = 1; at <= out.ops + 1; at++)
                for (uint64_t seed = 1; seed <= 3; seed++) {
                    sc.crash_at = at;
                    sc.crash.seed = at * 10 + seed;
                    run_scenario(&sc, NULL);
                }
        }
}

/* Crashes in the middle of recovery itself (zeroing a torn tail, re-creating a
 * half-made segment): the next recovery still gives the same guarantee. */
static void crash_during_recovery(void **state)
{
    for (uint64_t wl = 1; wl <= 40; wl++)
        for (uint64_t at = 1; at <= 6; at++) {
            struct scenario sc = {.seg = 700,
                                  .records = 30,
                                  .fail_kind = -1,
                                  .crash_at = at,
                                  .fault_in_recovery = true,
                                  .crash = {.random = true, .seed = wl * 100 + at}};
            run_scenario(&sc, NULL);
        }
}

/* Each call kind fails once (transient) or from then on (persistent) at its
 * n-th use, for every n the workload reaches. */
static void io_errors(void **state)
{
    static const int kinds[] = {K_OPEN,      K_PWRITE, K_FDATASYNC, K_FALLOCATE,
                                K_FSYNC_DIR, K_PREAD,  K_LIST};
    struct scenario base = {
        .seg = 900, .records = 50, .fail_kind = -1, .crash = {.random = true, .seed = 5}};
    struct outcome clean;
    run_scenario(&base, &clean);
    for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
        uint64_t uses = clean.count[kinds[k]];
        for (uint64_t nth = 1; nth <= MAX(uses, 3); nth++)
            for (int persistent = 0; persistent <= 1; persistent++)
                for (int in_rec = 0; in_rec <= 1; in_rec++) {
                    struct scenario sc = base;
                    sc.fail_kind = kinds[k];
                    sc.fail_nth = nth;
                    sc.persistent = persistent;
                    sc.fault_in_recovery = in_rec;
                    sc.crash.seed = nth * 4 + (uint64_t)persistent * 2 + (uint64_t)in_rec;
                    struct outcome out;
                    run_scenario(&sc, &out);
                    if (!in_rec && nth <= uses)
                        assert_true(out.failure_happened);
                }
    }
}

/* A failed fdatasync is fatal even when the disk recovers: the log refuses
 * every later call, and after a restart only what was acknowledged is there. */
static void failed_sync_is_fatal(void **state)
{
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    struct client c = {0};
    struct wal_options o = {.segment_bytes = 1 << 16, .io = &io};
    assert_int_equal(wal_open(WDIR, &o, &c.w, &e), 0);
    assert_int_equal(wal_replay(c.w, NULL, NULL, &e), 0);
    client_run(&c, 20, batches, ELEMENTSOF(batches));
    assert_int_equal(c.acked, 20);
    /* A sync with nothing flushed since the last one costs no system call. */
    uint64_t syncs = d->count[K_FDATASYNC];
    assert_int_equal(wal_sync(c.w, &e), 0);
    assert_int_equal(d->count[K_FDATASYNC], syncs);
    d->fail_kind = K_FDATASYNC;
    d->fail_nth = d->count[K_FDATASYNC] + 1;
    d->fail_err = -EIO;
    for (uint64_t i = 21; i <= 25; i++)
        assert_int_equal(append_entry(c.w, i, &e), 0);
    assert_int_equal(wal_flush(c.w, &e), 0);
    assert_int_equal(wal_sync(c.w, &e), -EIO);
    assert_non_null(strstr(e.msg, "fdatasync"));
    assert_non_null(strstr(e.msg, WDIR "/"));
    /* The fault was transient, the refusal is not. */
    assert_int_equal(wal_sync(c.w, &e), -EIO);
    assert_non_null(strstr(e.msg, "failed earlier"));
    assert_int_equal(append_entry(c.w, 26, &e), -EIO);
    assert_int_equal(wal_flush(c.w, &e), -EIO);
    assert_int_equal(wal_compact(c.w, 5, &e), -EIO);
    struct wal_stats st;
    wal_get_stats(c.w, &st);
    assert_true(st.failed);
    wal_close(c.w);
    sim_crash(d, (struct crash_mode){.random = true, .seed = 3});
    struct seen s;
    struct wal *w;
    assert_int_equal(recover(&io, 1 << 16, &w, &s, &e), 0);
    check_prefix(&s, 20, 25, "after failed sync");
    free(s.idx);
    wal_close(w);
    sim_free(d);
}

/* Writes `n` acknowledged records with small segments; returns the disk. */
static struct sim_disk *write_log(size_t seg, uint64_t n)
{
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    struct client c = {0};
    struct wal_options o = {.segment_bytes = seg, .io = &io};
    assert_int_equal(wal_open(WDIR, &o, &c.w, &e), 0);
    assert_int_equal(wal_replay(c.w, NULL, NULL, &e), 0);
    client_run(&c, n, batches, ELEMENTSOF(batches));
    assert_int_equal(c.acked, n);
    wal_close(c.w);
    sim_crash(d, (struct crash_mode){.random = true, .seed = 9});
    return d;
}

/* Offsets where records start in a segment image. */
static size_t record_starts(const struct sc_buf *img, size_t *out, size_t max)
{
    size_t pos = WAL_SEG_HEADER_BYTES + sc_get_u32le(img->data + 32), n = 0;
    struct wal_record r;
    ssize_t k;
    while (n < max && (k = wal_record_decode(img->data + pos, img->len - pos, &r)) > 0) {
        out[n++] = pos;
        pos += (size_t)k;
    }
    out[n] = pos;
    return n;
}

/* One damaged byte anywhere but in the last record of the last segment is an
 * error naming the file and the offset of the damaged record. */
static void corrupt_middle_is_an_error(void **state)
{
    const size_t seg = 1200;
    struct sim_disk *d = write_log(seg, 40);
    struct wal_io io = sim_io(d);
    char names[64][200];
    size_t nseg = sim_segments(d, WDIR, names, 64);
    assert_true(nseg >= 4);
    size_t checked = 0;
    for (size_t si = 0; si < nseg; si++) {
        struct sim_inode *in = sim_file(d, names[si]);
        size_t starts[64];
        size_t nrec = record_starts(&in->durable, starts, 63);
        assert_true(nrec >= 1);
        bool last = si + 1 == nseg;
        /* Candidate bytes: the segment header, then a few in each record. */
        for (size_t r = 0; r <= nrec; r++) {
            size_t from = r == 0 ? 0 : starts[r - 1];
            size_t to = r == 0 ? WAL_SEG_HEADER_BYTES : starts[r];
            if (last && r == nrec)
                continue; /* the last record of the log: indistinguishable from a torn write */
            const size_t picks[] = {from, from + 4, from + 8, from + 20, (from + to) / 2, to - 1};
            for (size_t p = 0; p < ELEMENTSOF(picks); p++) {
                size_t off = picks[p];
                if (off >= to)
                    continue;
                in->durable.data[off] ^= 0x40;
                in->cache.data[off] ^= 0x40;
                struct seen s;
                struct wal *w;
                struct sc_error e = {0};
                int rr = recover(&io, seg, &w, &s, &e);
                if (rr != -SC_E_CORRUPT)
                    fail_msg("byte %zu of %s: replay returned %d (%s)", off, names[si], rr, e.msg);
                assert_non_null(strstr(e.msg, names[si]));
                char want[64];
                snprintf(want, sizeof(want), "offset %zu", r == 0 ? (size_t)0 : from);
                if (!strstr(e.msg, want))
                    fail_msg("byte %zu: message \"%s\" lacks \"%s\"", off, e.msg, want);
                free(s.idx);
                in->durable.data[off] ^= 0x40;
                in->cache.data[off] ^= 0x40;
                checked++;
            }
        }
    }
    assert_true(checked > 100);
    /* The last record of the log damaged: treated as torn, the rest is there. */
    struct sim_inode *in = sim_file(d, names[nseg - 1]);
    size_t starts[64];
    size_t nrec = record_starts(&in->durable, starts, 63);
    in->durable.data[starts[nrec - 1] + 30] ^= 1;
    in->cache.data[starts[nrec - 1] + 30] ^= 1;
    struct seen s;
    struct wal *w;
    struct sc_error e = {0};
    assert_int_equal(recover(&io, seg, &w, &s, &e), 0);
    check_prefix(&s, 39, 39, "last record damaged");
    assert_int_equal(s.n, 39);
    free(s.idx);
    wal_close(w);
    /* A missing segment in the middle. */
    assert_int_equal(s_unlink(d, names[1]), 0);
    assert_int_equal(recover(&io, seg, &w, &s, &e), -SC_E_CORRUPT);
    assert_non_null(strstr(e.msg, "missing"));
    free(s.idx);
    sim_free(d);
}

static void oversized_records(void **state)
{
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    struct wal *w;
    struct wal_options o = {.segment_bytes = 4096, .io = &io};
    assert_int_equal(wal_open(WDIR, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, NULL, NULL, &e), 0);
    size_t big = WAL_MAX_RECORD_BYTES + 1;
    uint8_t *p = xcalloc(1, big);
    struct wal_record r = {.type = WAL_REC_ENTRY, .term = 1, .index = 1, .data = p, .len = big};
    assert_int_equal(wal_append(w, &r, &e), -SC_E_VALUE_TOO_LARGE);
    assert_non_null(strstr(e.msg, "larger than the limit"));
    /* A record bigger than a segment (but under the limit) gets one of its own. */
    r.len = 10000;
    for (size_t j = 0; j < r.len; j++)
        p[j] = (uint8_t)j;
    assert_int_equal(append_entry(w, 1, &e), 0);
    r.index = 2;
    assert_int_equal(wal_append(w, &r, &e), 0);
    assert_int_equal(append_entry(w, 3, &e), 0);
    assert_int_equal(wal_flush(w, &e), 0);
    assert_int_equal(wal_sync(w, &e), 0);
    r.type = 0;
    assert_int_equal(wal_append(w, &r, &e), -EINVAL);
    struct wal_stats st;
    wal_get_stats(w, &st);
    assert_int_equal(st.segments, 3);
    assert_int_equal(st.records_written, 3);
    wal_close(w);
    sim_crash(d, (struct crash_mode){.random = true, .seed = 1});
    assert_int_equal(wal_open(WDIR, &o, &w, &e), 0);
    struct seen s = {0};
    assert_int_equal(wal_replay(w, collect, &s, &e), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.idx[1], 2);
    free(s.idx);
    wal_close(w);
    free(p);
    sim_free(d);
}

static int refuse_index_5(void *ud, const struct wal_record *r)
{
    if (r->type == WAL_REC_ENTRY && r->index == 5)
        return sc_error_set(ud, -SC_E_INVALID, "cmd", "entry 5 does not decode");
    return 0;
}

/* A callback's error stops replay; its message survives, with the place. */
static void replay_callback_error(void **state)
{
    struct sim_disk *d = write_log(4096, 10);
    struct wal_io io = sim_io(d);
    struct wal_options o = {.segment_bytes = 4096, .io = &io};
    struct sc_error e;
    snprintf(e.msg, sizeof(e.msg), "stale message");
    struct wal *w;
    assert_int_equal(wal_open(WDIR, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, refuse_index_5, &e, &e), -SC_E_INVALID);
    assert_non_null(strstr(e.msg, "entry 5 does not decode"));
    assert_non_null(strstr(e.msg, WDIR "/0000000000000000-0000000000000001.wal"));
    assert_non_null(strstr(e.msg, "index 5"));
    assert_null(strstr(e.msg, "stale"));
    wal_close(w);
    sim_free(d);
}

static int append_state(struct wal *w, uint64_t commit, struct sc_error *e)
{
    uint8_t p[24];
    sc_put_u64le(p, commit);
    sc_put_u64le(p + 8, 1);
    sc_put_u64le(p + 16, 2);
    struct wal_record r = {.type = WAL_REC_STATE, .term = term_of(commit), .data = p, .len = 24};
    return wal_append(w, &r, e);
}

/* Segments that hold only entries below the index go, oldest first; the newest
 * hard state survives because every segment starts with a copy of it. */
static void compaction(void **state)
{
    const size_t seg = 600;
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    struct wal *w;
    struct wal_options o = {.segment_bytes = seg, .io = &io};
    assert_int_equal(wal_open(WDIR, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, NULL, NULL, &e), 0);
    for (uint64_t i = 1; i <= 100; i++) {
        assert_int_equal(append_entry(w, i, &e), 0);
        if (i % 10 == 0)
            assert_int_equal(append_state(w, i, &e), 0);
        if (i % 3 == 0) {
            assert_int_equal(wal_flush(w, &e), 0);
            assert_int_equal(wal_sync(w, &e), 0);
        }
    }
    /* The last state record, then many entries: it must survive compaction. */
    for (uint64_t i = 101; i <= 140; i++)
        assert_int_equal(append_entry(w, i, &e), 0);
    assert_int_equal(wal_flush(w, &e), 0);
    assert_int_equal(wal_sync(w, &e), 0);
    struct wal_stats st;
    wal_get_stats(w, &st);
    uint64_t before = st.segments;
    assert_true(before > 20);
    assert_int_equal(st.disk_bytes, before * seg);

    int n = wal_compact(w, 50, &e);
    assert_true(n > 0);
    wal_get_stats(w, &st);
    assert_int_equal(st.segments, before - (uint64_t)n);
    wal_close(w);
    sim_crash(d, (struct crash_mode){.random = true, .seed = 2});

    struct seen s;
    assert_int_equal(recover(&io, seg, &w, &s, &e), 0);
    /* Everything from 50 on is there, contiguous; a few below may be too. */
    assert_true(s.n > 0 && s.idx[0] <= 50 && s.idx[0] > 1);
    for (size_t j = 1; j < s.n; j++)
        assert_int_equal(s.idx[j], s.idx[j - 1] + 1);
    assert_int_equal(s.idx[s.n - 1], 140);
    assert_int_equal(s.last_state, 100);
    free(s.idx);

    /* Compacting past the end keeps the current segment, and the hard state. */
    n = wal_compact(w, UINT64_MAX, &e);
    assert_true(n > 0);
    wal_get_stats(w, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(wal_compact(w, UINT64_MAX, &e), 0);
    wal_close(w);
    sim_crash(d, (struct crash_mode){.random = true, .seed = 4});
    assert_int_equal(recover(&io, seg, &w, &s, &e), 0);
    assert_int_equal(s.last_state, 100);
    assert_true(s.states >= 1);
    assert_true(s.n >= 1 && s.idx[s.n - 1] == 140);
    free(s.idx);
    wal_close(w);
    sim_free(d);
}

/* The power fails at every call of a compaction: what remains is a contiguous
 * run of segments that replays, with every entry >= the index. */
static void crash_during_compaction(void **state)
{
    const size_t seg = 600;
    for (uint64_t at = 1; at <= 12; at++) {
        struct sim_disk *d = write_log(seg, 80);
        struct wal_io io = sim_io(d);
        struct sc_error e = {0};
        struct seen s;
        struct wal *w;
        assert_int_equal(recover(&io, seg, &w, &s, &e), 0);
        free(s.idx);
        d->ops = 0;
        d->crash_at = at;
        (void)wal_compact(w, 60, &e);
        wal_close(w);
        sim_crash(d, (struct crash_mode){.random = true, .seed = at});
        assert_int_equal(recover(&io, seg, &w, &s, &e), 0);
        assert_true(s.n > 0 && s.idx[0] <= 60);
        for (size_t j = 1; j < s.n; j++)
            assert_int_equal(s.idx[j], s.idx[j - 1] + 1);
        assert_int_equal(s.idx[s.n - 1], 80);
        free(s.idx);
        wal_close(w);
        sim_free(d);
    }
}

/* ---- snapshots ----------------------------------------------------------------- */

static void snap_data(uint64_t index, struct sc_buf *b)
{
    sc_buf_reset(b);
    for (size_t j = 0; j < 1000 + index; j++)
        sc_buf_put_u8(b, (uint8_t)(index * 7 + j));
}

static size_t count_suffix(struct sim_disk *d, const char *dir, const char *suffix)
{
    size_t n = 0;
    for (size_t i = 0; i < d->cache.n; i++) {
        const char *p = d->cache.v[i].path;
        if (strncmp(p, dir, strlen(dir)) == 0 && strlen(p) > strlen(suffix) &&
            strcmp(p + strlen(p) - strlen(suffix), suffix) == 0)
            n++;
    }
    return n;
}

static void snapshot_save_load_keep(void **state)
{
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    struct sc_buf b = {0}, got = {0};
    uint64_t term = 0, index = 0;
    assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 0);
    for (uint64_t i = 10; i <= 50; i += 10) {
        snap_data(i, &b);
        assert_int_equal(snap_save(SDIR, &io, 2, i, b.data, b.len, 2, &e), 0);
    }
    assert_int_equal(count_suffix(d, SDIR, ".snap"), 2);
    sim_crash(d, (struct crash_mode){.random = true, .seed = 1});
    assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 1);
    assert_int_equal(term, 2);
    assert_int_equal(index, 50);
    assert_string_equal(e.msg, "");
    snap_data(50, &b);
    assert_int_equal(got.len, b.len);
    assert_memory_equal(got.data, b.data, b.len);
    /* Empty snapshots are fine too. */
    assert_int_equal(snap_save(SDIR, &io, 3, 60, NULL, 0, 1, &e), 0);
    assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 1);
    assert_int_equal(index, 60);
    assert_int_equal(got.len, 0);
    assert_int_equal(count_suffix(d, SDIR, ".snap"), 1);
    sc_buf_free(&b);
    sc_buf_free(&got);
    sim_free(d);
}

/* The power fails at every call of a save: the old snapshot or the new one
 * loads, whole, never anything else; the next save cleans up. */
static void snapshot_crash_during_save(void **state)
{
    struct sc_buf a = {0}, b = {0}, got = {0};
    snap_data(100, &a);
    snap_data(200, &b);
    for (uint64_t at = 1; at <= 12; at++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            struct sim_disk *d = sim_new();
            struct wal_io io = sim_io(d);
            struct sc_error e = {0};
            assert_int_equal(snap_save(SDIR, &io, 1, 100, a.data, a.len, 1, &e), 0);
            d->ops = 0;
            d->crash_at = at;
            (void)snap_save(SDIR, &io, 1, 200, b.data, b.len, 1, &e);
            sim_crash(d, (struct crash_mode){.random = true, .seed = at * 10 + seed});
            uint64_t term, index;
            int r = snap_load_latest(SDIR, &io, &term, &index, &got, &e);
            if (r != 1)
                fail_msg("crash at %" PRIu64 ": load returned %d (%s)", at, r, e.msg);
            assert_string_equal(e.msg, "");
            const struct sc_buf *want = index == 100 ? &a : &b;
            assert_true(index == 100 || index == 200);
            assert_int_equal(got.len, want->len);
            assert_memory_equal(got.data, want->data, want->len);
            /* The next save leaves one snapshot and no temporary file. */
            assert_int_equal(snap_save(SDIR, &io, 1, 300, a.data, a.len, 1, &e), 0);
            assert_int_equal(count_suffix(d, SDIR, ".snap"), 1);
            assert_int_equal(count_suffix(d, SDIR, ".tmp"), 0);
            sim_free(d);
        }
    sc_buf_free(&a);
    sc_buf_free(&b);
    sc_buf_free(&got);
}

/* Each call of a save fails once or from then on: the save reports it, the old
 * (or the new, if it got durably in place) snapshot loads whole, and once the
 * disk is well again a save works and cleans up. */
static void snapshot_io_errors(void **state)
{
    static const int kinds[] = {K_OPEN,      K_PWRITE, K_FDATASYNC, K_RENAME,
                                K_FSYNC_DIR, K_LIST,   K_UNLINK};
    struct sc_buf a = {0}, b = {0}, got = {0};
    snap_data(100, &a);
    snap_data(200, &b);
    size_t failures = 0;
    for (size_t k = 0; k < ELEMENTSOF(kinds); k++)
        for (uint64_t nth = 1; nth <= 2; nth++)
            for (int persistent = 0; persistent <= 1; persistent++) {
                struct sim_disk *d = sim_new();
                struct wal_io io = sim_io(d);
                struct sc_error e = {0};
                assert_int_equal(snap_save(SDIR, &io, 1, 100, a.data, a.len, 1, &e), 0);
                memset(d->count, 0, sizeof(d->count));
                d->fail_kind = kinds[k];
                d->fail_nth = nth;
                d->fail_persistent = persistent;
                d->fail_err = -EIO;
                int r = snap_save(SDIR, &io, 1, 200, b.data, b.len, 1, &e);
                if (d->failed_once) {
                    failures++;
                    assert_int_equal(r, -EIO);
                    assert_true(strlen(e.msg) > 0);
                } else {
                    assert_int_equal(r, 0);
                }
                sim_clear_faults(d);
                uint64_t term, index;
                assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 1);
                assert_true(index == 100 || index == 200);
                const struct sc_buf *want = index == 100 ? &a : &b;
                assert_int_equal(got.len, want->len);
                assert_memory_equal(got.data, want->data, want->len);
                sim_crash(d, (struct crash_mode){.random = true, .seed = nth + 2 * k});
                assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 1);
                assert_true(index == 100 || index == 200);
                assert_int_equal(snap_save(SDIR, &io, 1, 300, a.data, a.len, 1, &e), 0);
                assert_int_equal(count_suffix(d, SDIR, ".snap"), 1);
                assert_int_equal(count_suffix(d, SDIR, ".tmp"), 0);
                sim_free(d);
            }
    assert_true(failures >= ELEMENTSOF(kinds) * 2);
    sc_buf_free(&a);
    sc_buf_free(&b);
    sc_buf_free(&got);
}

static void snapshot_damaged_newest(void **state)
{
    struct sim_disk *d = sim_new();
    struct wal_io io = sim_io(d);
    struct sc_error e = {0};
    struct sc_buf b = {0}, got = {0};
    snap_data(10, &b);
    assert_int_equal(snap_save(SDIR, &io, 1, 10, b.data, b.len, 3, &e), 0);
    snap_data(20, &b);
    assert_int_equal(snap_save(SDIR, &io, 1, 20, b.data, b.len, 3, &e), 0);
    const char *newest = SDIR "/0000000000000001-0000000000000014.snap";
    const char *older = SDIR "/0000000000000001-000000000000000a.snap";
    struct sim_inode *in = sim_file(d, newest);
    assert_non_null(in);
    in->cache.data[500] ^= 0x10;
    uint64_t term, index;
    assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 1);
    assert_int_equal(index, 10);
    assert_non_null(strstr(e.msg, newest));
    assert_non_null(strstr(e.msg, "checksum"));
    snap_data(10, &b);
    assert_memory_equal(got.data, b.data, b.len);
    /* A truncated newest file is skipped the same way. */
    in->cache.data[500] ^= 0x10;
    in->cache.len -= 7;
    assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), 1);
    assert_int_equal(index, 10);
    assert_non_null(strstr(e.msg, "length"));
    /* Every snapshot damaged: an error, not an empty store. */
    sim_file(d, older)->cache.data[3] ^= 1;
    assert_int_equal(snap_load_latest(SDIR, &io, &term, &index, &got, &e), -SC_E_CORRUPT);
    assert_non_null(strstr(e.msg, newest));
    sc_buf_free(&b);
    sc_buf_free(&got);
    sim_free(d);
}

/* ---- the real disk ------------------------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static int rm_tmpdir(void **state)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
    return 0;
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sc-wal-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void posix_wal(void **state)
{
    make_tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/data/wal", tmpdir);
    struct sc_error e = {0};
    struct wal_options o = {.segment_bytes = 16384};
    struct client c = {0};
    assert_int_equal(wal_open(dir, &o, &c.w, &e), 0);
    assert_int_equal(wal_replay(c.w, NULL, NULL, &e), 0);
    client_run(&c, 400, batches, ELEMENTSOF(batches));
    assert_int_equal(c.acked, 400);
    struct wal_stats st;
    wal_get_stats(c.w, &st);
    assert_true(st.segments > 3);
    wal_close(c.w);

    struct wal *w;
    struct seen s = {0};
    assert_int_equal(wal_open(dir, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, collect, &s, &e), 0);
    check_prefix(&s, 400, 400, "posix");
    assert_int_equal(s.n, 400);
    free(s.idx);
    /* Flush one more record without sync, then cut it in half with ftruncate
     * semantics: overwrite its second half with zeros. */
    assert_int_equal(append_entry(w, 401, &e), 0);
    assert_int_equal(wal_flush(w, &e), 0);
    wal_get_stats(w, &st);
    wal_close(w);
    char path[400] = "";
    {
        DIR *dd = opendir(dir);
        assert_non_null(dd);
        struct dirent *de;
        char best[256] = "";
        while ((de = readdir(dd)))
            if (strstr(de->d_name, ".wal") && strcmp(de->d_name, best) > 0)
                snprintf(best, sizeof(best), "%s", de->d_name);
        closedir(dd);
        snprintf(path, sizeof(path), "%s/%s", dir, best);
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    /* Find the record of index 401 and zero its second half. */
    struct sc_buf img = {0};
    assert_int_equal(wal_io_read_all(&wal_io_posix, fd, &img), 0);
    size_t starts[128];
    size_t n = record_starts(&img, starts, 127);
    assert_true(n >= 1);
    size_t rec = starts[n - 1], len = starts[n] - rec;
    static const uint8_t zeros[400];
    assert_int_equal(pwrite(fd, zeros, len / 2, (off_t)(rec + len - len / 2)), (ssize_t)(len / 2));
    close(fd);
    s = (struct seen){0};
    assert_int_equal(wal_open(dir, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, collect, &s, &e), 0);
    assert_int_equal(s.n, 400);
    wal_get_stats(w, &st);
    assert_true(st.torn_bytes > 0);
    free(s.idx);
    /* Appends continue right there and survive. */
    struct client c2 = {.w = w, .acked = 400, .written = 400};
    client_run(&c2, 50, batches, ELEMENTSOF(batches));
    assert_int_equal(c2.acked, 450);
    wal_close(w);
    s = (struct seen){0};
    assert_int_equal(wal_open(dir, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, collect, &s, &e), 0);
    check_prefix(&s, 450, 450, "posix after torn");
    wal_close(w);
    free(s.idx);

    /* One byte flipped in the middle of the first segment. */
    snprintf(path, sizeof(path), "%s/%016x-%016x.wal", dir, 0, 1);
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 3000), 1);
    byte ^= 0x80;
    assert_int_equal(pwrite(fd, &byte, 1, 3000), 1);
    close(fd);
    s = (struct seen){0};
    assert_int_equal(wal_open(dir, &o, &w, &e), 0);
    assert_int_equal(wal_replay(w, collect, &s, &e), -SC_E_CORRUPT);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "offset"));
    wal_close(w);
    free(s.idx);
    sc_buf_free(&img);
}

static void posix_snapshot(void **state)
{
    make_tmpdir();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/data/snap", tmpdir);
    char parent[128];
    snprintf(parent, sizeof(parent), "%s/data", tmpdir);
    assert_int_equal(mkdir(parent, 0700), 0);
    struct sc_error e = {0};
    struct sc_buf b = {0}, got = {0};
    uint64_t term, index;
    assert_int_equal(snap_load_latest(dir, NULL, &term, &index, &got, &e), 0);
    for (uint64_t i = 1; i <= 4; i++) {
        snap_data(i, &b);
        assert_int_equal(snap_save(dir, NULL, 1, i, b.data, b.len, 2, &e), 0);
    }
    assert_int_equal(snap_load_latest(dir, NULL, &term, &index, &got, &e), 1);
    assert_int_equal(index, 4);
    assert_memory_equal(got.data, b.data, b.len);
    size_t n = 0;
    DIR *dd = opendir(dir);
    struct dirent *de;
    while ((de = readdir(dd)))
        n += de->d_name[0] != '.';
    closedir(dd);
    assert_int_equal(n, 2);
    sc_buf_free(&b);
    sc_buf_free(&got);
}

static double median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* Latency of append+flush+sync on the real disk under /tmp: one 300-byte record,
 * and a group commit of 64.  Prints, asserts only that the records are there. */
static void measure(void **state)
{
    make_tmpdir();
    struct sc_error e = {0};
    struct wal *w;
    assert_int_equal(wal_open(tmpdir, NULL, &w, &e), 0);
    assert_int_equal(wal_replay(w, NULL, NULL, &e), 0);
    uint8_t p[300];
    memset(p, 0xab, sizeof(p));
    enum { N1 = 200, NB = 50 };
    double one[N1], batch[NB];
    uint64_t idx = 0;
    for (int k = 0; k < N1; k++) {
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        struct wal_record r = {
            .type = WAL_REC_ENTRY, .term = 1, .index = ++idx, .data = p, .len = sizeof(p)};
        assert_int_equal(wal_append(w, &r, &e), 0);
        assert_int_equal(wal_flush(w, &e), 0);
        assert_int_equal(wal_sync(w, &e), 0);
        one[k] = (double)(now_usec(CLOCK_MONOTONIC) - t0);
    }
    for (int k = 0; k < NB; k++) {
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        for (int j = 0; j < 64; j++) {
            struct wal_record r = {
                .type = WAL_REC_ENTRY, .term = 1, .index = ++idx, .data = p, .len = sizeof(p)};
            assert_int_equal(wal_append(w, &r, &e), 0);
        }
        assert_int_equal(wal_flush(w, &e), 0);
        assert_int_equal(wal_sync(w, &e), 0);
        batch[k] = (double)(now_usec(CLOCK_MONOTONIC) - t0);
    }
    wal_close(w);
    struct seen s = {0};
    assert_int_equal(wal_open(tmpdir, NULL, &w, &e), 0);
    assert_int_equal(wal_replay(w, collect, &s, &e), 0);
    assert_int_equal(s.n, idx);
    free(s.idx);
    wal_close(w);
    double m1 = median(one, N1), mb = median(batch, NB);
    fprintf(stderr,
            "# measure (%s, ext4 expected): 1 x 300 B append+flush+sync median %.0f us, "
            "p90 %.0f us; 64 x 300 B batch median %.0f us (%.1f us/record)\n",
            tmpdir, m1, one[N1 * 9 / 10], mb, mb / 64);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_codec),
        cmocka_unit_test(torn_tail_every_offset),
        cmocka_unit_test(crash_at_every_io),
        cmocka_unit_test(crash_during_recovery),
        cmocka_unit_test(io_errors),
        cmocka_unit_test(failed_sync_is_fatal),
        cmocka_unit_test(corrupt_middle_is_an_error),
        cmocka_unit_test(oversized_records),
        cmocka_unit_test(replay_callback_error),
        cmocka_unit_test(compaction),
        cmocka_unit_test(crash_during_compaction),
        cmocka_unit_test(snapshot_save_load_keep),
        cmocka_unit_test(snapshot_crash_during_save),
        cmocka_unit_test(snapshot_io_errors),
        cmocka_unit_test(snapshot_damaged_newest),
        cmocka_unit_test_teardown(posix_wal, rm_tmpdir),
        cmocka_unit_test_teardown(posix_snapshot, rm_tmpdir),
        cmocka_unit_test_teardown(measure, rm_tmpdir),
    };
    return sc_test_main(tests, argc, argv);
}
