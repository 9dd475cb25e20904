/*
 * cmd_logs.c: `sctl logs INSTANCE [-f]`, an instance's output, read through sctld
 * (GET /v1/instances/NAME/logs[?follow=1], docs/api.md "Logs"), which relays it
 * from the node that runs the instance.  Users reach sctld only, never the nodes.
 *
 * The bytes go to stdout as they arrive, unbuffered (write(2)): a follow shows a
 * line the moment the instance prints it, and nothing is held back that an
 * interrupt could lose.  That is also why the signal handler may simply _exit:
 *
 *   ^C, SIGTERM       the follow ends: exit 0 (following is ended by the user)
 *   stdout closed     (`| head`) SIGPIPE is ignored, write fails with EPIPE, the
 *                     stream is ended: exit 0
 *   server ends it    the instance was removed, or slet or sctld stopped: exit 0
 *   stream broken     the node went away mid-stream (sctld cuts the reply short):
 *                     "the log stream broke", exit 3
 *   errors            as every verb: 4 not found, 3 unavailable (5xx, no
 *                     connection), 1 refused, 2 usage
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "sctl/sctl.h"

static const char logs_usage[] =
    "usage: sctl logs INSTANCE [-f|--follow]\n"
    "       INSTANCE: an instance name (sctl get instances), or instance/NAME\n"
    "       -f: keep printing new output until interrupted or the instance is removed\n";

struct logs_out {
    bool wrote, closed;
};

static int on_bytes(void *arg, const void *data, size_t len)
{
    struct logs_out *o = arg;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            o->closed = true; /* EPIPE (a reader that went away) or worse: stop quietly */
            return 1;
        }
        p += n, len -= (size_t)n;
        o->wrote = true;
    }
    return 0;
}

static void on_interrupt(int sig)
{
    (void)sig;
    _exit(SCTL_EXIT_OK); /* async-signal-safe; stdout is unbuffered, nothing is lost */
}

int sctl_logs_main(struct sctl *s, int argc, char **argv)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool follow = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(logs_usage, stdout);
            return SCTL_EXIT_OK;
        }
        if (c == '?') {
            sctl_usage("logs: unknown option '%s'", argv[optind - 1]);
            fputs(logs_usage, stderr);
            return SCTL_EXIT_USAGE;
        }
        follow = true;
    }
    if (argc - optind != 1) {
        sctl_usage("logs takes one instance, got %d", argc - optind);
        fputs(logs_usage, stderr);
        return SCTL_EXIT_USAGE;
    }
    const char *name = argv[optind];
    const char *slash = strchr(name, '/');
    if (slash) { /* instance/NAME, in any of kubectl's spellings of the kind */
        char kind[32];
        snprintf(kind, sizeof(kind), "%.*s", (int)MIN((size_t)(slash - name), 31), name);
        const struct sctl_kind *k = sctl_kind_find(kind);
        if (!k)
            return SCTL_EXIT_USAGE;
        if (strcmp(k->plural, "instances") != 0)
            return sctl_usage("logs: %s are not instances; use NAME or instance/NAME", k->plural);
        name = slash + 1;
    }
    if (!*name)
        return sctl_usage("logs: the instance name is empty");
    struct sc_client *cl = sctl_client(s);
    if (!cl)
        return SCTL_EXIT_USAGE;
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sc_buf path = {0};
    sc_buf_printf(&path, "/v1/instances/");
    sc_client_escape(&path, name, 0);
    sc_buf_printf(&path, "/logs%s", follow ? "?follow=1" : "");
    sc_buf_put_u8(&path, 0);
    struct logs_out o = {0};
    struct sc_reply r = {0};
    struct sc_error e = {0};
    int rc = sc_client_stream_bytes(cl, (const char *)path.data, on_bytes, &o, &r, &e);
    int code = SCTL_EXIT_OK;
    if (o.closed) {
        code = SCTL_EXIT_OK;
    } else if (rc < 0 && r.status >= 200 && r.status < 300) {
        fprintf(stderr, "sctl: the log stream of %s broke: %s\n", name, e.msg);
        code = SCTL_EXIT_UNAVAILABLE;
    } else if (rc < 0 || r.status < 200 || r.status >= 300) {
        code = sctl_fail(s, rc, &r, &e);
    }
    sc_reply_free(&r);
    sc_buf_free(&path);
    return code;
}
