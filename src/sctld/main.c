/*
 * main.c: sctld, the SwiftCube control-plane daemon: the store server replicated
 * by Raft (one member, or a cluster); the scheduler and reconcilers join it in
 * later issues.  A thin main: flags in, srv_run out.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "sctld/server.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: sctld [options]\n"
        "  --data-dir DIR              where the log and snapshots live (default ./sctld-data)\n"
        "  --name NAME                 member name (default \"default\")\n"
        "  --peer-listen HOST:PORT     address for Raft peers (needed with --initial-cluster)\n"
        "  --initial-cluster N=H:P,... the initial members and their peer addresses\n"
        "  --join                      start empty; an existing cluster adds this member\n"
        "  --tick-ms N                 Raft tick (default 10)\n"
        "  --election-ticks N          election timeout in ticks, jittered up to 2x (default 10)\n"
        "  --listen HOST:PORT          client address (default 127.0.0.1:7400; port 0 = any free)\n"
        "  --max-value-bytes N         largest value (default 1572864)\n"
        "  --max-body-bytes N          largest request body (default 2097152)\n"
        "  --watch-buffer-bytes N      unsent events one watch may hold (default 4194304)\n"
        "  --watch-stall-ms N          a watch full this long is cut off (default 5000)\n"
        "  --watch-progress-ms N       a quiet watch gets a progress line this often (default "
        "10000)\n"
        "  --http-idle-ms N            an idle HTTP connection is closed after this (default "
        "120000)\n"
        "  --node-grace-ms N           a node NotReady this long has its instances placed "
        "elsewhere (default 500)\n"
        "  --max-watches N             watches the server holds at most (default 100000)\n"
        "  --snapshot-every N          log entries between snapshots (default 100000)\n"
        "  --auto-compact-retain N     revisions kept by automatic compaction, 0 = off (default "
        "100000)\n"
        "  --wal-segment-bytes N       size of one log segment file (default 67108864)\n"
        "  --tls-dir DIR               mutual TLS: the cluster CA and this controller's and\n"
        "                              the admin's certificates live here (made on the first\n"
        "                              start); the API is then HTTPS and every client needs a\n"
        "                              certificate of the CA (sctl: DIR/admin.crt, admin.key).\n"
        "                              With --peer-listen the Raft peers and forwarded writes\n"
        "                              are TLS too; a controller joining a cluster needs its\n"
        "                              ca.crt and ca.key copied into DIR before its first start\n"
        "  --health-listen HOST:PORT   plain-HTTP GET /healthz on a loopback address (default\n"
        "                              none)\n"
        "  --join-listen HOST:PORT     with --tls-dir: HTTPS where nodes join with a bootstrap\n"
        "                              token (slet --join); serves only /v1/cluster/ca and\n"
        "                              /v1/join (default none)\n"
        "  --node-cert-sec N           validity of a node certificate, renewed by slet after\n"
        "                              two thirds of it (default 31536000, a year)\n"
        "  --log-level debug|info|warn|error\n"
        "  --help\n"
        "On start it prints one line `sctld listening on ADDR:PORT` on stdout.\n");
}

static int parse_size(const char *flag, const char *s, unsigned long long min,
                      unsigned long long *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < min || s[0] == '-') {
        fprintf(stderr, "sctld: %s: expected a whole number >= %llu, got \"%s\"\n", flag, min, s);
        return -1;
    }
    *ret = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct srv_config c;
    srv_config_default(&c);
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"name", required_argument, NULL, 'n'},
        {"peer-listen", required_argument, NULL, 'p'},
        {"initial-cluster", required_argument, NULL, 'I'},
        {"join", no_argument, NULL, 'J'},
        {"tick-ms", required_argument, NULL, 'T'},
        {"election-ticks", required_argument, NULL, 'E'},
        {"max-value-bytes", required_argument, NULL, 'V'},
        {"max-body-bytes", required_argument, NULL, 'B'},
        {"watch-buffer-bytes", required_argument, NULL, 'W'},
        {"watch-stall-ms", required_argument, NULL, 'S'},
        {"watch-progress-ms", required_argument, NULL, 'Q'},
        {"node-grace-ms", required_argument, NULL, 'g'},
        {"http-idle-ms", required_argument, NULL, 'H'},
        {"max-watches", required_argument, NULL, 'M'},
        {"snapshot-every", required_argument, NULL, 'P'},
        {"auto-compact-retain", required_argument, NULL, 'C'},
        {"wal-segment-bytes", required_argument, NULL, 'G'},
        {"log-level", required_argument, NULL, 'L'},
        {"tls-dir", required_argument, NULL, 'X'},
        {"health-listen", required_argument, NULL, 'Y'},
        {"join-listen", required_argument, NULL, 'j'},
        {"node-cert-sec", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int o;
    unsigned long long v;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *flag = o == '?' ? "" : opts[0].name;
        for (const struct option *p = opts; p->name; p++)
            if (p->val == o)
                flag = p->name;
        switch (o) {
        case 'd':
            c.data_dir = optarg;
            break;
        case 'l':
            c.listen = optarg;
            break;
        case 'n':
            c.name = optarg;
            break;
        case 'p':
            c.peer_listen = optarg;
            break;
        case 'I':
            c.initial_cluster = optarg;
            break;
        case 'J':
            c.join = true;
            break;
        case 'T':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.tick_ms = (unsigned)MIN(v, 10000ull);
            break;
        case 'E':
            if (parse_size(flag, optarg, 2, &v) < 0)
                return 2;
            c.election_ticks = (unsigned)MIN(v, 100000ull);
            break;
        case 'V':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.limits.max_value_bytes = v;
            break;
        case 'B':
            if (parse_size(flag, optarg, 1024, &v) < 0)
                return 2;
            c.max_body_bytes = v;
            break;
        case 'W':
            if (parse_size(flag, optarg, 1024, &v) < 0)
                return 2;
            c.watch_buffer_bytes = v;
            break;
        case 'S':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.watch_stall_usec = v * 1000;
            break;
        case 'Q':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.watch_progress_usec = v * 1000;
            break;
        case 'g':
            if (parse_size(flag, optarg, 0, &v) < 0)
                return 2;
            c.node_grace_usec = v * 1000;
            break;
        case 'H':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.http_idle_usec = v * 1000;
            break;
        case 'M':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.max_watches = v;
            break;
        case 'P':
            if (parse_size(flag, optarg, 1, &v) < 0)
                return 2;
            c.snapshot_every = v;
            break;
        case 'C':
            if (parse_size(flag, optarg, 0, &v) < 0)
                return 2;
            c.auto_compact_retain = (int64_t)v;
            break;
        case 'G':
            if (parse_size(flag, optarg, 64 * 1024, &v) < 0)
                return 2;
            c.wal_segment_bytes = v;
            break;
        case 'X':
            c.tls_dir = optarg;
            break;
        case 'Y':
            c.health_listen = optarg;
            break;
        case 'j':
            c.join_listen = optarg;
            break;
        case 'K':
            if (parse_size(flag, optarg, 60, &v) < 0)
                return 2;
            c.node_cert_sec = v;
            break;
        case 'L': {
            int l = log_parse_level(optarg);
            if (l < 0) {
                fprintf(stderr,
                        "sctld: --log-level: expected debug, info, warn or error, got \"%s\"\n",
                        optarg);
                return 2;
            }
            log_set_level(l);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sctld: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (c.max_body_bytes < c.limits.max_value_bytes)
        c.max_body_bytes = c.limits.max_value_bytes + 64 * 1024;
    return srv_run(&c) < 0 ? 1 : 0;
}
