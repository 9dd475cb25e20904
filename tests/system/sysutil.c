/*
 * sysutil.c: daemon control and the small HTTP/1.1 client of the system tests
 * (see sysutil.h for why they are our own).
 */
#include "sysutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t sys_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sys_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool sys_failed;

_Noreturn void sys_fail(const char *fmt, ...)
{
    sys_failed = true;
    va_list ap;
    fprintf(stderr, "FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

int sys_tmpdir(char *out, size_t n, const char *tag)
{
    const char *t = getenv("TMPDIR");
    if (snprintf(out, n, "%s/sc-%s-XXXXXX", t && *t ? t : "/tmp", tag) >= (int)n)
        return -ENAMETOOLONG;
    if (!mkdtemp(out)) {
        fprintf(stderr, "mkdtemp %s: %m\n", out);
        return -errno;
    }
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

void sys_rm_rf(const char *dir)
{
    if (dir && *dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int sys_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int sys_raise_nofile(long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if ((long)rl.rlim_cur >= n)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && (long)rl.rlim_max < n) {
        fprintf(stderr, "RLIMIT_NOFILE hard limit %ld < %ld\n", (long)rl.rlim_max, n);
        return -EMFILE;
    }
    rl.rlim_cur = (rlim_t)n;
    return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

/* ---- daemon ------------------------------------------------------------------ */

static pid_t spawn(struct sys_server *s)
{
    char listen[64], *argv[32];
    int n = 0;
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
    argv[n++] = (char *)s->exe;
    argv[n++] = (char *)"--data-dir";
    argv[n++] = s->dir;
    argv[n++] = (char *)"--listen";
    argv[n++] = listen;
    for (int i = 0; s->extra[i] && n < 30; i++)
        argv[n++] = (char *)s->extra[i];
    argv[n] = NULL;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %m\n", argv[0]);
        _exit(127);
    }
    return pid;
}

static struct sys_server *at_exit_server;

static void at_exit_cleanup(void)
{
    struct sys_server *s = at_exit_server;
    int st;
    if (s->pid > 0)
        sys_server_stop(s, SIGKILL, 5000, &st);
    if (sys_failed || getenv("SC_KEEP"))
        fprintf(stderr, "kept for inspection: %s (sctld log: %s)\n", s->top, s->log);
    else
        sys_rm_rf(s->top);
}

int sys_server_setup(struct sys_server *s, const char *exe, const char *tag)
{
    memset(s, 0, sizeof(*s));
    if (!exe)
        sys_fail("usage: %s-test PATH/TO/sctld (or SCTLD=...)", tag);
    int r = sys_tmpdir(s->top, sizeof(s->top), tag);
    if (r < 0)
        return r;
    s->exe = exe;
    snprintf(s->dir, sizeof(s->dir), "%s/data", s->top);
    snprintf(s->log, sizeof(s->log), "%s/sctld.log", s->top);
    at_exit_server = s;
    atexit(at_exit_cleanup);
    return 0;
}

int sys_server_start(struct sys_server *s, int timeout_ms)
{
    if (!s->log[0])
        snprintf(s->log, sizeof(s->log), "%s.log", s->dir);
    for (int attempt = 0; attempt < 3; attempt++) {
        if (!s->port || attempt > 0) {
            int p = sys_free_port();
            if (p < 0)
                return p;
            s->port = p;
        }
        pid_t pid = spawn(s);
        if (pid < 0)
            return (int)pid;
        s->pid = pid;
        uint64_t deadline = sys_now_ms() + (uint64_t)timeout_ms;
        for (;;) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                s->pid = 0;
                fprintf(stderr, "sctld exited during start-up (status 0x%x)\n", st);
                sys_server_dump_log(s);
                break; /* perhaps the port was taken meanwhile: try another */
            }
            struct sys_resp r;
            if (sys_http1(s->port, "GET", "/healthz", NULL, 0, &r) >= 0) {
                int status = r.status;
                sys_resp_free(&r);
                if (status == 200)
                    return 0;
            }
            if (sys_now_ms() > deadline) {
                fprintf(stderr, "sctld did not answer /healthz within %d ms\n", timeout_ms);
                sys_server_dump_log(s);
                int ignored;
                sys_server_stop(s, SIGKILL, 5000, &ignored);
                return -ETIMEDOUT;
            }
            sys_sleep_ms(20);
        }
    }
    return -EADDRINUSE;
}

int sys_server_stop(struct sys_server *s, int sig, int timeout_ms, int *status)
{
    *status = 0;
    if (s->pid <= 0)
        return 0;
    if (kill(s->pid, sig) < 0 && errno != ESRCH)
        return -errno;
    uint64_t deadline = sys_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t w = waitpid(s->pid, status, WNOHANG);
        if (w == s->pid)
            break;
        if (w < 0 && errno != EINTR)
            return -errno;
        if (sys_now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, status, 0);
            s->pid = 0;
            return -ETIMEDOUT;
        }
        sys_sleep_ms(5);
    }
    s->pid = 0;
    return 0;
}

void sys_server_dump_log(const struct sys_server *s)
{
    FILE *f = fopen(s->log, "re");
    if (!f)
        return;
    /* Keep the last 40 lines in a ring. */
    char lines[40][512];
    int n = 0;
    while (fgets(lines[n % 40], sizeof(lines[0]), f))
        n++;
    fclose(f);
    fprintf(stderr, "---- last lines of %s ----\n", s->log);
    for (int i = n > 40 ? n - 40 : 0; i < n; i++)
        fputs(lines[i % 40], stderr);
    fprintf(stderr, "----\n");
}

/* ---- HTTP client ------------------------------------------------------------- */

int sys_conn_open(struct sys_conn *c, int port, int rcvbuf)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {60, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int r = -errno;
        close(c->fd);
        c->fd = -1;
        return r;
    }
    return 0;
}

void sys_conn_close(struct sys_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = c->off = 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n) {
        ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        q += w, n -= (size_t)w;
    }
    return 0;
}

int sys_send_request(struct sys_conn *c, const char *method, const char *path, const void *body,
                     size_t len)
{
    char hdr[1024];
    int h;
    if (body)
        h = snprintf(hdr, sizeof(hdr),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n", method,
                     path, len);
    else
        h = snprintf(hdr, sizeof(hdr), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    if (h < 0 || h >= (int)sizeof(hdr))
        return -ENAMETOOLONG;
    int r = write_all(c->fd, hdr, (size_t)h);
    if (r >= 0 && body && len)
        r = write_all(c->fd, body, len);
    return r;
}

/* Reads more bytes into c->buf; 0 on EOF, -errno on error. */
static ssize_t fill(struct sys_conn *c)
{
    if (c->off && c->off == c->len)
        c->off = c->len = 0;
    if (c->cap - c->len < 65536) {
        if (c->off) {
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off, c->off = 0;
        }
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf)
                abort();
        }
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        c->len += (size_t)n;
        return n;
    }
}

/* Returns a pointer to the next line (terminated by CRLF, which is replaced by
 * NULs) or NULL with *r set. */
static char *read_line(struct sys_conn *c, int *r)
{
    for (;;) {
        char *s = c->buf ? c->buf + c->off : NULL;
        char *e = s ? memmem(s, c->len - c->off, "\r\n", 2) : NULL;
        if (e) {
            e[0] = e[1] = '\0';
            c->off = (size_t)(e + 2 - c->buf);
            return s;
        }
        ssize_t n = fill(c);
        if (n <= 0) {
            *r = n == 0 ? -ECONNRESET : (int)n;
            return NULL;
        }
    }
}

static int read_exact(struct sys_conn *c, char *dst, size_t n)
{
    while (c->len - c->off < n) {
        ssize_t k = fill(c);
        if (k <= 0)
            return k == 0 ? -ECONNRESET : (int)k;
    }
    memcpy(dst, c->buf + c->off, n);
    c->off += n;
    return 0;
}

void sys_resp_free(struct sys_resp *r)
{
    free(r->body);
    r->body = NULL;
}

static void body_append(struct sys_resp *r, size_t *cap, size_t n)
{
    if (r->body_len + n + 1 > *cap) {
        *cap = (r->body_len + n + 1) * 2;
        r->body = realloc(r->body, *cap);
        if (!r->body)
            abort();
    }
}

int sys_read_response(struct sys_conn *c, struct sys_resp *r)
{
    int err = 0;
    memset(r, 0, sizeof(*r));
    r->revision = -1;
    char *line = read_line(c, &err);
    if (!line)
        return err;
    if (sscanf(line, "HTTP/1.%*d %d", &r->status) != 1)
        return -EPROTO;
    long long clen = -1;
    bool chunked = false;
    for (;;) {
        line = read_line(c, &err);
        if (!line)
            return err;
        if (!*line)
            break;
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = atoll(line + 15);
        else if (!strncasecmp(line, "X-Sc-Revision:", 14))
            r->revision = atoll(line + 14);
        else if (!strncasecmp(line, "Transfer-Encoding:", 18) && strcasestr(line, "chunked"))
            chunked = true;
    }
    size_t cap = 0;
    body_append(r, &cap, 0);
    if (chunked) {
        for (;;) {
            line = read_line(c, &err);
            if (!line)
                goto fail;
            size_t n = strtoul(line, NULL, 16);
            if (n == 0) {
                line = read_line(c, &err); /* the empty trailer line */
                if (!line)
                    goto fail;
                break;
            }
            body_append(r, &cap, n);
            if ((err = read_exact(c, r->body + r->body_len, n)) < 0)
                goto fail;
            r->body_len += n;
            line = read_line(c, &err);
            if (!line)
                goto fail;
        }
    } else if (clen >= 0) {
        body_append(r, &cap, (size_t)clen);
        if ((err = read_exact(c, r->body, (size_t)clen)) < 0)
            goto fail;
        r->body_len = (size_t)clen;
    }
    r->body[r->body_len] = '\0';
    return 0;
fail:
    sys_resp_free(r);
    return err;
}

int sys_http(struct sys_conn *c, const char *method, const char *path, const void *body, size_t len,
             struct sys_resp *r)
{
    memset(r, 0, sizeof(*r));
    int e = sys_send_request(c, method, path, body, len);
    if (e < 0)
        return e;
    return sys_read_response(c, r);
}

int sys_http1(int port, const char *method, const char *path, const void *body, size_t len,
              struct sys_resp *r)
{
    struct sys_conn c;
    memset(r, 0, sizeof(*r));
    int e = sys_conn_open(&c, port, 0);
    if (e < 0)
        return e;
    e = sys_http(&c, method, path, body, len, r);
    sys_conn_close(&c);
    return e;
}

/* ---- chunked stream ------------------------------------------------------------ */

static void grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    *cap = need * 2 > 256 ? need * 2 : 256;
    *p = realloc(*p, *cap);
    if (!*p)
        abort();
}

static int hdr_push(struct sys_stream *s, char ch)
{
    if (s->hdr_len > 65536)
        return -EPROTO;
    grow(&s->hdr, &s->hdr_cap, s->hdr_len + 2);
    s->hdr[s->hdr_len++] = ch;
    s->hdr[s->hdr_len] = '\0';
    return 0;
}

static int parse_headers(struct sys_stream *s)
{
    if (sscanf(s->hdr, "HTTP/1.%*d %d", &s->status) != 1)
        return -EPROTO;
    if (s->status != 200)
        return -EPROTO; /* the caller reads the status */
    if (!strcasestr(s->hdr, "Transfer-Encoding: chunked"))
        return -EPROTO;
    return 0;
}

int sys_stream_feed(struct sys_stream *s, const char *p, size_t n, sys_line_fn fn, void *ud)
{
    size_t i = 0;
    while (i < n) {
        switch (s->st) {
        case SYS_ST_HEADERS:
            if (hdr_push(s, p[i++]) < 0)
                return s->st = SYS_ST_ERROR, -EPROTO;
            if (s->hdr_len >= 4 && !memcmp(s->hdr + s->hdr_len - 4, "\r\n\r\n", 4)) {
                if (parse_headers(s) < 0)
                    return s->st = SYS_ST_ERROR, -EPROTO;
                s->hdr_len = 0;
                s->st = SYS_ST_SIZE;
            }
            break;
        case SYS_ST_SIZE:
            if (hdr_push(s, p[i++]) < 0)
                return s->st = SYS_ST_ERROR, -EPROTO;
            if (s->hdr_len >= 2 && !memcmp(s->hdr + s->hdr_len - 2, "\r\n", 2)) {
                if (s->hdr_len == 2) { /* the CRLF after the last chunk's trailer */
                    s->hdr_len = 0;
                    break;
                }
                char *end;
                unsigned long k = strtoul(s->hdr, &end, 16);
                if (end == s->hdr)
                    return s->st = SYS_ST_ERROR, -EPROTO;
                s->hdr_len = 0;
                if (k == 0) {
                    s->st = SYS_ST_DONE;
                    return 1;
                }
                s->chunk_left = k;
                s->st = SYS_ST_DATA;
            }
            break;
        case SYS_ST_DATA: {
            size_t k = n - i < s->chunk_left ? n - i : s->chunk_left;
            const char *q = p + i, *end = p + i + k;
            while (q < end) {
                const char *nl = memchr(q, '\n', (size_t)(end - q));
                size_t take = (size_t)((nl ? nl : end) - q);
                grow(&s->line, &s->line_cap, s->line_len + take + 1);
                memcpy(s->line + s->line_len, q, take);
                s->line_len += take;
                q += take;
                if (nl) {
                    s->line[s->line_len] = '\0';
                    int r = fn(ud, s->line, s->line_len);
                    s->line_len = 0;
                    q++;
                    if (r < 0)
                        return s->st = SYS_ST_ERROR, r;
                }
            }
            i += k;
            s->chunk_left -= k;
            if (!s->chunk_left)
                s->st = SYS_ST_DATA_CRLF, s->hdr_len = 0;
            break;
        }
        case SYS_ST_DATA_CRLF:
            if (hdr_push(s, p[i++]) < 0)
                return s->st = SYS_ST_ERROR, -EPROTO;
            if (s->hdr_len == 2) {
                if (memcmp(s->hdr, "\r\n", 2))
                    return s->st = SYS_ST_ERROR, -EPROTO;
                s->hdr_len = 0;
                s->st = SYS_ST_SIZE;
            }
            break;
        case SYS_ST_DONE:
            return 1;
        case SYS_ST_ERROR:
            return -EPROTO;
        }
    }
    return s->st == SYS_ST_DONE ? 1 : 0;
}

void sys_stream_done(struct sys_stream *s)
{
    free(s->hdr);
    free(s->line);
    memset(s, 0, sizeof(*s));
}
