/*
 * cell_spawn.c: spawners, the small helper processes that start Cells for
 * cell_start_async the cheap way.
 *
 * Why: the cheapest start is a vfork-style clone (CLONE_VM|CLONE_VFORK): no
 * page tables copied, no copy-on-write faults, no copied address space torn
 * down again at exec.  It suspends the caller until the child execs, which
 * cell_start may afford but cell_start_async may not: the supervisor must go on
 * supervising.  A clone3 copy instead cost about three times the CPU per start
 * (docs/cell.md), and that grows with the supervisor: its memory, and its fd
 * table, which every clone copies and every exec closes again (4 fds per
 * running Cell, so quadratic in the number of Cells).  So the host forks a few
 * spawners when it is made, before any Cell exists (one per CPU by default;
 * four per CPU, to overlap the children's waits in the kernel, measured no
 * better: docs/cell.md); each closes
 * every fd but its socket.  An async start sends a spawner the flattened plan
 * (the spec and the cgroup paths in one buffer, pointers as offsets) with the
 * log pipe, a reply socket and the slot's network namespace as SCM_RIGHTS; the
 * spawner makes the vfork-style child with CLONE_PARENT, so the Cell is the
 * supervisor's own child (its pidfd waits, SIGCHLD goes to the supervisor),
 * waits out the exec, and replies with the pid, the pidfd and the child's
 * error, if any.  Blocking is the spawner's job; K spawners overlap K set-ups.
 *
 * Design
 *   1. A spawner owns nothing of the supervisor: it closes every inherited fd
 *      but its socket, wipes each request after use (it may hold secrets), and
 *      dies with the supervisor (PDEATHSIG, or EOF on its socket).
 *   2. Each request gets exactly one reply on its own reply socket, or EOF there
 *      if the spawner died: a supervisor waiting for a reply always wakes.
 *   3. A Cell is never a spawner's child (CLONE_PARENT): no Cell dies with a
 *      spawner, and the supervisor reaps every Cell itself.
 *   4. inflight[i] counts requests sent to spawner i and not yet answered; a
 *      request goes to the spawner with the fewest.
 */
#include "cell/cell_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_MAGIC       0x5343656cu /* "SCel" */
#define SPAWN_MAX_REQUEST (64u << 10) /* larger specs (big secrets) take the clone3 path */
#define SPAWN_STACK_BYTES (1u << 20)
#define SPAWN_MAX         16

/* A request: this header at offset 0, then every string and array it points
 * to; each pointer holds an offset into the request (0 = NULL). */
struct spawn_req {
    uint32_t magic, len;
    uint64_t clone_flags;
    uint32_t has_netns; /* fds: log pipe, reply socket[, network namespace] */
    struct cell_spec_copy spec;
    char *cg_v2, *cg_v1[CG_N];
};

struct spawn_reply {
    int r;   /* 0: exec'd; < 0: the child's setup failed (it exits 127) or clone did */
    int pid; /* > 0 when a child exists; its pidfd rides along as SCM_RIGHTS */
    char msg[256];
};

/* ---- flattening ------------------------------------------------------------------ */

struct blob {
    char *p;
    size_t len, cap;
};

static uintptr_t blob_put(struct blob *b, const void *src, size_t n)
{
    size_t off = (b->len + 7) & ~(size_t)7;
    if (off + n > b->cap) {
        b->cap = MAX(b->cap * 2, off + n + 1024);
        b->p = xrealloc(b->p, b->cap);
    }
    memset(b->p + b->len, 0, off - b->len);
    if (n)
        memcpy(b->p + off, src, n);
    b->len = off + n;
    return off;
}

/* A pointer-sized field holding an offset. */
#define AS_PTR(off) ((void *)(uintptr_t)(off))

static void *put_str(struct blob *b, const char *s)
{
    return s ? AS_PTR(blob_put(b, s, strlen(s) + 1)) : NULL;
}

static void *put_strv(struct blob *b, char **v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    uintptr_t *offs = xcalloc(n + 1, sizeof(*offs));
    for (size_t i = 0; i < n; i++)
        offs[i] = (uintptr_t)put_str(b, v[i]);
    void *r = AS_PTR(blob_put(b, offs, (n + 1) * sizeof(*offs)));
    free(offs);
    return r;
}

static void flatten(struct blob *b, const struct cell_spec_copy *s, const struct cg_cell *cg,
                    uint64_t flags, bool netns)
{
    struct spawn_req h = {.magic = SPAWN_MAGIC, .clone_flags = flags, .has_netns = netns};
    (void)blob_put(b, &h, sizeof(h)); /* reserved; written last */
    h.spec = *s;
    h.spec.name = put_str(b, s->name);
    h.spec.root = put_str(b, s->root);
    h.spec.cwd = put_str(b, s->cwd);
    h.spec.hostname = put_str(b, s->hostname);
    h.spec.argv = put_strv(b, s->argv);
    h.spec.env = put_strv(b, s->env);
    struct cell_tmpfs *t = xcalloc(s->n_tmpfs + 1, sizeof(*t));
    for (size_t i = 0; i < s->n_tmpfs; i++)
        t[i] = (struct cell_tmpfs){put_str(b, s->tmpfs[i].path), s->tmpfs[i].size_bytes};
    h.spec.tmpfs = s->n_tmpfs ? AS_PTR(blob_put(b, t, s->n_tmpfs * sizeof(*t))) : NULL;
    free(t);
    struct cell_volume *v = xcalloc(s->n_volumes + 1, sizeof(*v));
    for (size_t i = 0; i < s->n_volumes; i++)
        v[i] = (struct cell_volume){put_str(b, s->volumes[i].source),
                                    put_str(b, s->volumes[i].path), s->volumes[i].read_only};
    h.spec.volumes = s->n_volumes ? AS_PTR(blob_put(b, v, s->n_volumes * sizeof(*v))) : NULL;
    free(v);
    h.spec.grants =
        s->n_grants ? AS_PTR(blob_put(b, s->grants, s->n_grants * sizeof(*s->grants))) : NULL;
    struct cell_secret *k = xcalloc(s->n_secrets + 1, sizeof(*k));
    for (size_t i = 0; i < s->n_secrets; i++)
        k[i] = (struct cell_secret){put_str(b, s->secrets[i].name),
                                    AS_PTR(blob_put(b, s->secrets[i].data, s->secrets[i].len)),
                                    s->secrets[i].len};
    h.spec.secrets = s->n_secrets ? AS_PTR(blob_put(b, k, s->n_secrets * sizeof(*k))) : NULL;
    explicit_bzero(k, (s->n_secrets + 1) * sizeof(*k));
    free(k);
    h.cg_v2 = put_str(b, cg->v2);
    for (int c = 0; c < CG_N; c++)
        h.cg_v1[c] = put_str(b, cg->v1[c]);
    h.len = (uint32_t)MIN(b->len, (size_t)UINT32_MAX);
    memcpy(b->p, &h, sizeof(h));
}

/* Turns the offsets of a received request back into pointers; -EBADMSG if one
 * points outside it.  The buffer holds one zero byte past len. */
#define FIX(f)                                                                                     \
    do {                                                                                           \
        uintptr_t o_ = (uintptr_t)(f);                                                             \
        if (o_ >= len)                                                                             \
            return -EBADMSG;                                                                       \
        (f) = o_ ? (void *)(base + o_) : NULL;                                                     \
    } while (0)

static int fix_strv(char *base, size_t len, char **v)
{
    for (size_t i = 0; v && (char *)&v[i + 1] <= base + len && v[i]; i++)
        FIX(v[i]);
    return 0;
}

static int unflatten(char *base, size_t len)
{
    struct spawn_req *h = (struct spawn_req *)(void *)base;
    if (len < sizeof(*h) || h->magic != SPAWN_MAGIC || h->len != len)
        return -EBADMSG;
    struct cell_spec_copy *s = &h->spec;
    FIX(s->name);
    FIX(s->root);
    FIX(s->cwd);
    FIX(s->hostname);
    FIX(s->argv);
    FIX(s->env);
    FIX(s->tmpfs);
    FIX(s->volumes);
    FIX(s->grants);
    FIX(s->secrets);
    if (fix_strv(base, len, s->argv) < 0 || fix_strv(base, len, s->env) < 0)
        return -EBADMSG;
    for (size_t i = 0; i < s->n_tmpfs; i++)
        FIX(s->tmpfs[i].path);
    for (size_t i = 0; i < s->n_volumes; i++) {
        FIX(s->volumes[i].source);
        FIX(s->volumes[i].path);
    }
    for (size_t i = 0; i < s->n_secrets; i++) {
        FIX(s->secrets[i].name);
        FIX(s->secrets[i].data);
    }
    FIX(h->cg_v2);
    for (int c = 0; c < CG_N; c++)
        FIX(h->cg_v1[c]);
    return 0;
}

/* ---- messages with fds ------------------------------------------------------------ */

static ssize_t send_fds(int sock, const void *p, size_t n, const int *fds, size_t nfds)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t r;
    while ((r = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return r;
}

/* Receives one message and up to 4 fds (close-on-exec). */
static ssize_t recv_fds(int sock, void *p, size_t n, int *fds, size_t *nfds, int flags)
{
    struct iovec iov = {.iov_base = p, .iov_len = n};
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t r;
    while ((r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | flags)) < 0 && errno == EINTR)
        ;
    *nfds = 0;
    if (r < 0)
        return r;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (*nfds < 4)
                    fds[(*nfds)++] = fd;
                else
                    close(fd);
            }
        }
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        errno = EMSGSIZE;
        return -1;
    }
    return r;
}

/* ---- the spawner process ------------------------------------------------------------ */

static void serve(const struct spawn_ctx *ctx, char *stack, char *buf, size_t len, const int *fds,
                  size_t nfds)
{
    struct spawn_reply rep = {0};
    int replyfd = nfds > 1 ? fds[1] : -1;
    struct spawn_req *h = (struct spawn_req *)(void *)buf;
    int r = unflatten(buf, len);
    if (r >= 0 && nfds != 2u + (h->has_netns != 0))
        r = -EBADMSG;
    if (r < 0) {
        rep.r = r;
        snprintf(rep.msg, sizeof(rep.msg), "spawner: malformed request");
        if (replyfd >= 0)
            (void)send_fds(replyfd, &rep, sizeof(rep), NULL, 0);
        return;
    }
    struct cg_cell cg = {.v2 = h->cg_v2, .v2fd = -1};
    memcpy(cg.v1, h->cg_v1, sizeof(cg.v1));
    struct sandbox_plan plan = {
        .spec = &h->spec,
        .seccomp_prog = ctx->seccomp_prog,
        .landlock_abi = ctx->landlock_abi,
        .cap_last = ctx->cap_last,
        .netns_fd = h->has_netns ? fds[2] : -1,
        .init_fd = ctx->init_fd,
    };
    int errp[2];
    int pidfd = -1;
    if (pipe2(errp, O_CLOEXEC) < 0) {
        rep.r = -errno;
        snprintf(rep.msg, sizeof(rep.msg), "spawner: pipe2: %m");
    } else {
        long pid = linux_clone_vfork(stack, SPAWN_STACK_BYTES, h->clone_flags | CLONE_PARENT, &plan,
                                     &cg, errp[1], fds[0], &pidfd);
        int err = errno;
        close(errp[1]);
        if (pid < 0) {
            rep.r = -err;
            snprintf(rep.msg, sizeof(rep.msg), "clone: %s", strerror(err));
        } else {
            rep.pid = (int)pid;
            rep.r = linux_child_report(errp[0], rep.msg, sizeof(rep.msg));
        }
        close(errp[0]);
    }
    (void)send_fds(replyfd, &rep, sizeof(rep), &pidfd, pidfd >= 0);
    if (pidfd >= 0)
        close(pidfd);
}

static void spawner_main(int sock, pid_t parent, const struct spawn_ctx *ctx)
{
    /* invariant 1: nothing of the supervisor's, and gone with it */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
        _exit(0);
    struct spawn_ctx c = *ctx;
    if (sock != 3 && c.init_fd == 3) { /* move the memfd out of the way first */
        c.init_fd = fcntl(3, F_DUPFD_CLOEXEC, 5);
        if (c.init_fd < 0)
            _exit(1);
    }
    if (sock != 3) {
        if (dup3(sock, 3, O_CLOEXEC) < 0)
            _exit(1);
        sock = 3;
    }
    if (c.init_fd >= 0 && c.init_fd != 4) {
        if (dup3(c.init_fd, 4, O_CLOEXEC) < 0)
            _exit(1);
        c.init_fd = 4;
    }
    (void)syscall(SYS_close_range, 5, ~0U, 0);
    ctx = &c;
    char *stack = mmap(NULL, SPAWN_STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    char *buf = malloc(SPAWN_MAX_REQUEST + 1);
    if (stack == MAP_FAILED || !buf)
        _exit(1);
    for (;;) {
        int fds[4];
        size_t nfds;
        ssize_t n = recv_fds(sock, buf, SPAWN_MAX_REQUEST, fds, &nfds, 0);
        if (n == 0 || (n < 0 && errno != EMSGSIZE))
            _exit(0); /* the supervisor closed us, or is gone */
        if (n > 0) {
            buf[n] = '\0';
            serve(ctx, stack, buf, (size_t)n, fds, nfds);
            explicit_bzero(buf, (size_t)n);
        }
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
    }
}

/* ---- the supervisor's side ------------------------------------------------------------ */

int spawn_pool_start(struct spawn_pool *p, unsigned n, const struct spawn_ctx *ctx)
{
    memset(p, 0, sizeof(*p));
    p->ctx = *ctx;
    n = MIN(MAX(n, 1u), (unsigned)SPAWN_MAX);
    p->pid = xcalloc(n, sizeof(*p->pid));
    p->sock = xcalloc(n, sizeof(*p->sock));
    p->inflight = xcalloc(n, sizeof(*p->inflight));
    pid_t self = getpid();
    for (unsigned i = 0; i < n; i++) {
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
            break;
        /* a deep queue: many starts at once must not block the supervisor */
        int big = 8 << 20;
        (void)setsockopt(sp[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
        (void)setsockopt(sp[1], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
        pid_t pid = fork();
        if (pid < 0) {
            close(sp[0]);
            close(sp[1]);
            break;
        }
        if (pid == 0) {
            close(sp[0]);
            spawner_main(sp[1], self, &p->ctx);
        }
        close(sp[1]);
        p->pid[p->n] = pid;
        p->sock[p->n] = sp[0];
        p->n++;
    }
    return (int)p->n;
}

void spawn_pool_stop(struct spawn_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        close(p->sock[i]); /* EOF: it exits by itself; the kill only makes it sure */
        (void)kill(p->pid[i], SIGKILL);
        while (waitpid(p->pid[i], NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free(p->pid);
    free(p->sock);
    free(p->inflight);
    memset(p, 0, sizeof(*p));
}

int spawn_request(struct spawn_pool *p, const struct cell_spec_copy *s, const struct cg_cell *cg,
                  uint64_t flags, int logfd, int netns_fd, int *ret_replyfd, int *ret_idx)
{
    if (!p->n)
        return -ENOSYS;
    struct blob b = {0};
    flatten(&b, s, cg, flags, netns_fd >= 0);
    int r = 0;
    if (b.len > SPAWN_MAX_REQUEST) {
        r = -E2BIG;
        goto out;
    }
    int rp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0) {
        r = -errno;
        goto out;
    }
    size_t best = 0;
    for (size_t i = 1; i < p->n; i++)
        if (p->sock[i] >= 0 && (p->sock[best] < 0 || p->inflight[i] < p->inflight[best]))
            best = i;
    int fds[3] = {logfd, rp[1], netns_fd};
    if (p->sock[best] < 0 || send_fds(p->sock[best], b.p, b.len, fds, netns_fd >= 0 ? 3 : 2) < 0) {
        r = p->sock[best] < 0 ? -EPIPE : -errno;
        if (p->sock[best] >= 0 && (errno == EPIPE || errno == ECONNRESET)) {
            close(p->sock[best]); /* that spawner is gone; the others serve */
            p->sock[best] = -1;
        }
        close(rp[0]);
        close(rp[1]);
        goto out;
    }
    close(rp[1]);
    p->inflight[best]++;
    *ret_replyfd = rp[0];
    *ret_idx = (int)best;
out:
    explicit_bzero(b.p, b.len);
    free(b.p);
    return r;
}

void spawn_done(struct spawn_pool *p, int idx)
{
    if (idx >= 0 && (size_t)idx < p->n && p->inflight[idx] > 0)
        p->inflight[idx]--;
}

int spawn_reply_read(int replyfd, int flags, int *ret_pid, int *ret_pidfd, char *msg, size_t len)
{
    struct spawn_reply rep;
    int fds[4];
    size_t nfds;
    *ret_pid = 0;
    *ret_pidfd = -1;
    ssize_t n = recv_fds(replyfd, &rep, sizeof(rep), fds, &nfds, flags);
    if (n < 0)
        return -errno;
    for (size_t i = 1; i < nfds; i++)
        close(fds[i]);
    if (n == 0) { /* invariant 2: the spawner died before answering */
        snprintf(msg, len, "the spawner died before the Cell started");
        return -ECHILD;
    }
    if (n != (ssize_t)sizeof(rep) || (rep.pid > 0) != (nfds > 0)) {
        if (nfds)
            close(fds[0]);
        snprintf(msg, len, "malformed reply from the spawner");
        return -EBADMSG;
    }
    *ret_pid = rep.pid;
    *ret_pidfd = nfds ? fds[0] : -1;
    rep.msg[sizeof(rep.msg) - 1] = '\0';
    snprintf(msg, len, "%s", rep.msg);
    return rep.r;
}
