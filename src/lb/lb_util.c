/*
 * lb_util.c: process and socket helpers the load-balancer providers share:
 * running `nginx -t` with its output captured, starting and ending an LB master by
 * its PID, atomic config writes, and a one-shot HTTP GET used to read the
 * generation marker back from a running LB.  Kept apart from lb.c so that the
 * generic reconcile rules stay free of process handling.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "lb/lb.h"

int lb_run(char *const argv[], char *out, size_t n)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(pfd[0]);
        close(pfd[1]);
        return r;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    char sink[512];
    for (;;) {
        char *dst = out && len + 1 < n ? out + len : sink;
        size_t room = out && len + 1 < n ? n - 1 - len : sizeof sink;
        ssize_t k = read(pfd[0], dst, room);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (dst != sink)
            len += (size_t)k;
    }
    close(pfd[0]);
    if (out && n)
        out[len] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

pid_t lb_spawn(char *const argv[], const char *log_path)
{
    int lfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lfd < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(lfd);
        return r;
    }
    if (pid == 0) {
        int nfd = open("/dev/null", O_RDONLY);
        if (nfd >= 0)
            dup2(nfd, 0);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(lfd);
    return pid;
}

bool lb_child_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == 0)
        return true;
    if (r < 0 && errno == ECHILD) /* not our child: ask the kernel */
        return kill(pid, 0) == 0;
    return false;
}

void lb_kill_wait(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < timeout_ms; i += 5) {
        if (!lb_child_alive(pid))
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int lb_write_file(const char *path, const char *data, size_t len)
{
    char tmp[1024];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* whole or not at all (the rename), but not fsync'd: a load balancer's file
     * is rendered again from the API when sclb starts, and the fsync cost 1-7 ms
     * of every switch (measured on this VM's disk) */
    int r = sc_write_all(fd, data, len);
    close(fd);
    if (r >= 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

int lb_read_file(const char *path, char **ret, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *b = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            b = xrealloc(b, cap *= 2);
        ssize_t k = read(fd, b + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int r = -errno;
            close(fd);
            free(b);
            return r;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    b[n] = 0;
    *ret = b;
    if (len)
        *len = n;
    return 0;
}

static int connect_to(const char *addr, int port, int timeout_ms)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else
        return -EINVAL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        int r = -errno;
        close(fd);
        return r;
    }
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int k = poll(&pf, 1, timeout_ms);
    int err = 0;
    socklen_t el = sizeof err;
    if (k <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        close(fd);
        return k == 0 ? -ETIMEDOUT : -(err ? err : ECONNREFUSED);
    }
    return fd;
}

int lb_http_get(const char *addr, int port, const char *path, char *body, size_t n, int timeout_ms)
{
    int fd = connect_to(addr, port, timeout_ms);
    if (fd < 0)
        return fd;
    char req[512];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: lb\r\n\r\n", path);
    if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        close(fd);
        return -EIO;
    }
    char buf[8192];
    size_t len = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int k = poll(&pf, 1, timeout_ms);
        if (k <= 0) {
            close(fd);
            return k == 0 ? -ETIMEDOUT : -errno;
        }
        ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int r = -errno;
            close(fd);
            return r;
        }
        if (got == 0 || (len += (size_t)got) == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = 0;
    int status;
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1)
        return -EPROTO;
    const char *b = strstr(buf, "\r\n\r\n");
    if (body && n) {
        snprintf(body, n, "%s", b ? b + 4 : "");
    }
    return status;
}

int lb_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int pid_cmp(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

size_t lb_children(pid_t pid, pid_t *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t k = 0;
    int v;
    while (k < n && fscanf(f, "%d", &v) == 1)
        out[k++] = v;
    fclose(f);
    qsort(out, k, sizeof *out, pid_cmp);
    return k;
}

/* Gone: no such process, or a zombie its parent has not reaped yet. */
static bool gone(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return true;
    bool z = false;
    if (fgets(buf, sizeof buf, f)) {
        char *rp = strrchr(buf, ')');
        z = rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
    }
    fclose(f);
    return z;
}

bool lb_wait_gone(const pid_t *pids, size_t n, usec_t deadline)
{
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !gone(pids[i]);
        if (!left)
            return true;
        if (now_usec(CLOCK_MONOTONIC) >= deadline)
            return false;
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

const char *lb_hostport(char *out, size_t n, const char *addr, int port)
{
    snprintf(out, n, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
    return out;
}

off_t lb_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

int lb_confirm_marker(int ctl_port, const char *path, uint64_t gen, pid_t *master,
                      usec_t timeout_usec, uint64_t *seen)
{
    usec_t end = now_usec(CLOCK_MONOTONIC) + timeout_usec;
    *seen = 0;
    for (;;) {
        char body[64];
        if (lb_http_get("127.0.0.1", ctl_port, path, body, sizeof body, 1000) == 200) {
            *seen = strtoull(body, NULL, 10);
            if (*seen == gen)
                return 0;
        }
        if (!lb_child_alive(*master)) {
            *master = 0;
            return -ESRCH;
        }
        if (now_usec(CLOCK_MONOTONIC) > end)
            return -ETIMEDOUT;
        /* 3 ms: a tighter loop of new connections slows the reload it waits for
         * (measured on 2 cores: 187 -> 112 ms end to end with 0.5 ms) */
        struct timespec ts = {0, 3000000};
        nanosleep(&ts, NULL);
    }
}

void lb_log_reason(const char *log, off_t from, const char *const *tags, char *out, size_t n)
{
    out[0] = 0;
    _cleanup_free_ char *t = NULL;
    size_t len;
    if (lb_read_file(log, &t, &len) < 0 || (size_t)from > len)
        return;
    char *line = t + from, *first = NULL, *last = NULL;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        for (const char *const *g = tags; *g; g++)
            if (strstr(line, *g)) {
                first = first ? first : line;
                last = line;
                break;
            }
        line = nl ? nl + 1 : NULL;
    }
    if (first) { /* the first says why (bind() ... failed (98: ...)), the last what followed */
        char *t1 = strchr(first, '['), *t2 = strchr(last, '[');
        snprintf(out, n, "%.180s%s%.100s", t1 ? t1 : first, last != first ? "; " : "",
                 last != first ? (t2 ? t2 : last) : "");
    }
}
