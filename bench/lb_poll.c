/*
 * lb_poll.c: a client loop for the rollout benchmark that is fast enough to time
 * a load balancer's switch.  `curl` in a shell loop costs a process per request
 * (30-130 ms here), and only one request in four reaches the instance being
 * taken out, so the switch could only be bounded to a few hundred ms.  This
 * makes one HTTP/1.0 GET per new connection to 127.0.0.1:PORT every INTERVAL_MS,
 * and prints per request `EPOCH_SECONDS FIRST_LINE_OF_BODY` (or `EPOCH ERR
 * reason`), the format bench/rollout_bench.sh reads, until STOP_FILE exists.
 *
 * Usage: lb_poll PORT STOP_FILE [INTERVAL_MS]   (stdout: one line per request)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET on a new connection: the body's first line into out, or -errno. */
static int get_once(int port, char *out, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET / HTTP/1.0\r\nHost: lb\r\n\r\n";
    char buf[4096];
    size_t len = 0;
    int r = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
        r = -errno;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0) {
            r = -errno;
            goto out;
        }
        if (n == 0 || (len += (size_t)n) == sizeof(buf) - 1)
            break;
    }
    buf[len] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !body || atoi(buf + 9) != 200) {
        r = -EPROTO;
        goto out;
    }
    body += 4;
    body[strcspn(body, "\r\n")] = 0;
    snprintf(out, size, "%s", body);
out:
    close(fd);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lb_poll PORT STOP_FILE [INTERVAL_MS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long interval_ms = argc > 3 ? atol(argv[3]) : 2;
    char line[512];
    while (access(argv[2], F_OK) != 0) {
        int r = get_once(port, line, sizeof(line));
        if (r < 0)
            printf("%.6f ERR %s\n", epoch(), strerror(-r));
        else
            printf("%.6f %s\n", epoch(), line);
        fflush(stdout);
        struct timespec ts = {.tv_sec = interval_ms / 1000,
                              .tv_nsec = (interval_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
