/*
 * lbt.c: backends, client and directories for the load-balancer tests and
 * benchmark (lbt.h).  The backend is a poll loop in a forked child, so a test
 * can start a dozen of them in milliseconds and end each by its PID.
 */
#include "lbt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb/lb.h"

#define MAXC 512

_noreturn_ static void serve(int lfd, const char *name, int ready_fd)
{
    struct pollfd pf[MAXC + 1];
    char *buf[MAXC + 1];
    size_t len[MAXC + 1];
    int n = 1;
    pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    close(ready_fd);
    char resp[256];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n"
                      "%s\n",
                      strlen(name) + 1, name);
    for (;;) {
        if (poll(pf, (nfds_t)n, -1) < 0)
            continue;
        if ((pf[0].revents & POLLIN) && n <= MAXC) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                pf[n] = (struct pollfd){.fd = c, .events = POLLIN};
                buf[n] = malloc(4096);
                len[n] = 0;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!pf[i].revents)
                continue;
            ssize_t k = read(pf[i].fd, buf[i] + len[i], 4095 - len[i]);
            bool drop = k <= 0;
            if (!drop) {
                len[i] += (size_t)k;
                buf[i][len[i]] = 0;
                char *end;
                while (!drop && (end = strstr(buf[i], "\r\n\r\n"))) {
                    bool close_it = strstr(buf[i], "HTTP/1.0") != NULL ||
                                    strcasestr(buf[i], "connection: close") != NULL;
                    if (send(pf[i].fd, resp, (size_t)rl, MSG_NOSIGNAL) != rl || close_it)
                        drop = true;
                    size_t used = (size_t)(end + 4 - buf[i]);
                    memmove(buf[i], end + 4, len[i] - used + 1);
                    len[i] -= used;
                }
                if (len[i] >= 4095)
                    drop = true;
            }
            if (drop) {
                close(pf[i].fd);
                free(buf[i]);
                pf[i] = pf[n - 1];
                buf[i] = buf[n - 1];
                len[i] = len[n - 1];
                n--;
                i--;
            }
        }
    }
}

pid_t lbt_backend_start(const char *name, int port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return -errno;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 512) < 0) {
        int r = -errno;
        close(lfd);
        return r;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        int r = -errno;
        close(lfd);
        return r;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        serve(lfd, name, p[1]);
    }
    close(p[1]);
    close(lfd);
    char c;
    if (pid < 0 || read(p[0], &c, 1) != 1) {
        close(p[0]);
        if (pid > 0)
            lbt_backend_stop(pid);
        return pid < 0 ? -errno : -EIO;
    }
    close(p[0]);
    return pid;
}

void lbt_backend_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int lbt_ask(int port, char *name, size_t n)
{
    int r = lb_http_get("127.0.0.1", port, "/", name, n, 2000);
    if (r >= 0 && n) {
        char *nl = strchr(name, '\n');
        if (nl)
            *nl = 0;
    }
    return r;
}

int lbt_tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/sc-lb-XXXXXX");
    return mkdtemp(out) ? 0 : -errno;
}

void lbt_rm_rf(const char *dir)
{
    if (!dir[0] || strncmp(dir, "/tmp/sc-lb-", 11) != 0)
        return;
    char *argv[] = {"rm", "-rf", (char *)dir, NULL};
    lb_run(argv, NULL, 0);
}
