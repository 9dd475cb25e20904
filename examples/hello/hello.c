/*
 * hello.c: the example web app of SwiftCube's main job, a tiny HTTP server.
 *
 * It is what `scripts/run.sh` packs into a signed image and deploys with four
 * replicas (examples/hello/hello.yaml): one statically linked file, so the image
 * is that file alone and a Cell starts it in milliseconds.  It answers
 *   GET /          "hello from INSTANCE (pid P, request N)"
 *   GET /healthz   "ok" (the readiness and liveness probe of the manifest), or
 *                  503 "unhealthy" while it is made unhealthy (below)
 *   GET /fail      makes it unhealthy; GET /recover healthy again (tests of probes)
 *   anything else  404
 * on $PORT (default 8080), one connection at a time, and exits 0 on SIGTERM.
 * INSTANCE is $SC_INSTANCE (set by slet), else the host name.  For probe tests:
 * HELLO_UNHEALTHY=1 starts it unhealthy, HELLO_HEALTHY_AFTER=SEC keeps /healthz
 * at 503 for SEC seconds after the start (a slow start).  `hello check [PORT]`
 * is a client for exec probes: GET /healthz on 127.0.0.1:PORT (default $PORT),
 * exit 0 on 200, else 1 with what it got.
 *
 *   cc -O2 -static -o hello examples/hello/hello.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void reply(int fd, int status, const char *reason, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, strlen(body));
    if (write(fd, head, (size_t)n) == n)
        (void)!write(fd, body, strlen(body));
}

/* `hello check [PORT]`: the exec probe's client. */
static int check(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        printf("check: connect 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
    char resp[256] = "";
    ssize_t n = write(fd, req, sizeof(req) - 1) == sizeof(req) - 1 ? read(fd, resp, 255) : -1;
    close(fd);
    if (n > 0)
        resp[n] = '\0';
    char *eol = strpbrk(resp, "\r\n");
    if (eol)
        *eol = '\0';
    if (!strncmp(resp, "HTTP/1.1 200", 12))
        return 0;
    printf("check: %s\n", n > 0 ? resp : "no response");
    return 1;
}

int main(int argc, char **argv)
{
    const char *port_s = getenv("PORT");
    int port = port_s ? atoi(port_s) : 8080;
    if (argc > 1 && !strcmp(argv[1], "check"))
        return check(argc > 2 ? atoi(argv[2]) : port);
    int healthy = !getenv("HELLO_UNHEALTHY") || strcmp(getenv("HELLO_UNHEALTHY"), "1");
    const char *after_s = getenv("HELLO_HEALTHY_AFTER");
    time_t healthy_at = time(NULL) + (after_s ? atoi(after_s) : 0);
    char host[128] = "unknown";
    const char *inst = getenv("SC_INSTANCE");
    if (!inst) {
        gethostname(host, sizeof(host) - 1);
        inst = host;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                             .sin6_addr = IN6ADDR_ANY_INIT};
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 128) < 0) {
        fprintf(stderr, "hello: cannot listen on port %d: %s\n", port, strerror(errno));
        return 1;
    }
    fprintf(stderr, "hello: %s listening on port %d\n", inst, port);
    unsigned long requests = 0;
    while (!stop) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        char req[2048];
        ssize_t n = read(fd, req, sizeof(req) - 1);
        if (n > 0) {
            req[n] = '\0';
            requests++;
            if (!strncmp(req, "GET /healthz ", 13)) {
                if (healthy && time(NULL) >= healthy_at)
                    reply(fd, 200, "OK", "ok\n");
                else
                    reply(fd, 503, "Service Unavailable", "unhealthy\n");
            } else if (!strncmp(req, "GET /fail ", 10) || !strncmp(req, "GET /recover ", 13)) {
                healthy = req[5] == 'r';
                reply(fd, 200, "OK", "ok\n");
            } else if (!strncmp(req, "GET / ", 6)) {
                char body[256];
                snprintf(body, sizeof(body), "hello from %s (pid %d, request %lu)\n", inst,
                         (int)getpid(), requests);
                reply(fd, 200, "OK", body);
            } else {
                reply(fd, 404, "Not Found", "not found\n");
            }
        }
        close(fd);
    }
    fprintf(stderr, "hello: %s stopping after %lu requests\n", inst, requests);
    return 0;
}
