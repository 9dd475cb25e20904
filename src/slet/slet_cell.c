/*
 * slet_cell.c: `slet cell run`, one Cell in the foreground, by hand.
 *
 *   slet cell run --root DIR|--image REF [--store DIR] [--name N] [--cpu 100m] [--memory 64Mi]
 * [--pids N]
 *                 [--grant KIND:ARG]... [--tmpfs PATH[:SIZE]]... [--volume SRC:DST[:ro]]...
 *                 [--env K=V]... [--cwd DIR] [--hostname H] [--uid N] [--gid N]
 *                 [--net none|bridge|host] [--grace SEC] [--init]
 *                 [--secret-file NAME=PATH]... -- CMD [ARGS...]
 *
 * Parse → validate (cell_create) → apply (cell_start), then the Cell is driven
 * from a libevent loop exactly as the node agent will drive many: an event on
 * cell_fd(), a timer for cell_deadline_usec(), and SIGINT/SIGTERM turned into
 * cell_stop().  The Cell's output is followed onto stdout; the exit status is
 * the Cell's (128+N when a signal ended it), 125 when it could not start.
 *
 * With --image REF the root is an image of the node's store (slet_image.c): a
 * lease named after the Cell is taken (img_store_acquire) and the store's lock
 * dropped again, so other slet commands can use the store while the Cell runs;
 * the image's manifest gives the defaults for the command, env, working
 * directory and tmpfs paths the command line leaves out; after the Cell is torn
 * down the lease is released (so `slet image rm` refuses the image until then).
 */
#include "slet/slet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cell/cell.h"

struct run_state {
    struct cell *cell;
    struct event_base *base;
    struct event *ev_cell, *ev_timer;
    uint64_t cursor;
    bool stopping;
};

static void follow_log(struct run_state *rs)
{
    char buf[4096];
    uint64_t dropped = 0;
    size_t n;
    while ((n = cell_log_read(rs->cell, &rs->cursor, buf, sizeof(buf), &dropped)) > 0)
        (void)!fwrite(buf, 1, n, stdout);
    if (dropped)
        fprintf(stderr, "slet: %llu log bytes dropped (ring full)\n", (unsigned long long)dropped);
    fflush(stdout);
}

static void arm_deadline(struct run_state *rs)
{
    usec_t d = cell_deadline_usec(rs->cell);
    if (!d)
        return;
    usec_t now = now_usec(CLOCK_MONOTONIC);
    usec_t left = d > now ? d - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(left / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(left % USEC_PER_SEC)};
    evtimer_add(rs->ev_timer, &tv);
}

static void on_cell(evutil_socket_t fd, short what, void *arg)
{
    struct run_state *rs = arg;
    int ev = cell_process(rs->cell);
    follow_log(rs);
    if (ev < 0) {
        fprintf(stderr, "slet: supervising the Cell: %s\n", strerror(-ev));
        event_base_loopbreak(rs->base);
        return;
    }
    struct cell_status st;
    cell_status(rs->cell, &st);
    if (st.state == CELL_DEAD)
        event_base_loopbreak(rs->base);
    else
        arm_deadline(rs);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct run_state *rs = arg;
    if (rs->stopping) { /* second ^C: no more grace */
        cell_kill(rs->cell);
        return;
    }
    rs->stopping = true;
    cell_stop(rs->cell, 0);
    arm_deadline(rs);
}

static int parse_net(const char *s, enum cell_net_mode *m)
{
    if (!strcmp(s, "none"))
        *m = CELL_NET_NONE;
    else if (!strcmp(s, "bridge"))
        *m = CELL_NET_BRIDGE;
    else if (!strcmp(s, "host"))
        *m = CELL_NET_HOST;
    else
        return -SC_E_INVALID;
    return 0;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "slet cell run: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: slet cell run --root DIR|--image REF [--store DIR] [--cpu 100m]\n"
                    "       [--memory 64Mi] [--pids N]\n"
                    "       [--grant fs.read:P|fs.write:P|net.listen:PORT|net.connect:PORT]...\n"
                    "       [--tmpfs PATH[:SIZE]]... [--volume SRC:DST[:ro]]... [--env K=V]...\n"
                    "       [--cwd DIR] [--hostname H] [--uid N] [--gid N] [--name N]\n"
                    "       [--net none|bridge|host] [--grace SEC] [--init]\n"
                    "       [--secret-file NAME=PATH]... -- CMD [ARGS...]\n");
    return 2;
}

/* A secret file's bytes (malloc'd, wiped by the caller), or NULL. */
static char *read_secret(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = xmalloc(CELL_SECRET_MAX_BYTES + 1);
    size_t n = fread(buf, 1, CELL_SECRET_MAX_BYTES + 1, f);
    fclose(f);
    if (n > CELL_SECRET_MAX_BYTES) {
        explicit_bzero(buf, CELL_SECRET_MAX_BYTES + 1);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int cell_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},     {"name", required_argument, NULL, 'n'},
        {"cpu", required_argument, NULL, 'c'},      {"memory", required_argument, NULL, 'm'},
        {"pids", required_argument, NULL, 'p'},     {"grant", required_argument, NULL, 'g'},
        {"tmpfs", required_argument, NULL, 't'},    {"volume", required_argument, NULL, 'v'},
        {"env", required_argument, NULL, 'e'},      {"cwd", required_argument, NULL, 'w'},
        {"hostname", required_argument, NULL, 'H'}, {"uid", required_argument, NULL, 'u'},
        {"gid", required_argument, NULL, 'G'},      {"net", optional_argument, NULL, 'N'},
        {"grace", required_argument, NULL, 'T'},    {"bridge", required_argument, NULL, 'B'},
        {"init", no_argument, NULL, 'I'},           {"secret-file", required_argument, NULL, 'S'},
        {"image", required_argument, NULL, 'M'},    {"store", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},           {0},
    };
    const char *image_ref = NULL, *store_dir = NULL;
    struct cell_spec s = {.uid = 65534, .gid = 65534, .net = CELL_NET_NONE};
    struct cell_host_config hc = {.backend = "linux"};
    const char *grants[CELL_MAX_GRANTS], *env[CELL_MAX_ARGS + 1];
    struct cell_tmpfs tmpfs[CELL_MAX_TMPFS];
    struct cell_volume vols[CELL_MAX_VOLUMES];
    struct cell_secret secrets[CELL_MAX_SECRETS];
    char *secret_data[CELL_MAX_SECRETS] = {0};
    size_t n_env = 0;
    char name[32];
    snprintf(name, sizeof(name), "run-%d", (int)getpid());
    s.name = name;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (o) {
        case 'r':
            s.root = optarg;
            break;
        case 'n':
            s.name = optarg;
            break;
        case 'c':
            if (cell_parse_cpu(optarg, &s.cpu_millis) < 0)
                return usage_error("bad --cpu \"%s\" (100m, 0.5, 2)", optarg);
            break;
        case 'm':
            if (cell_parse_bytes(optarg, &s.memory_bytes) < 0)
                return usage_error("bad --memory \"%s\" (64Mi, 1Gi, 500M)", optarg);
            break;
        case 'p':
            if (sscanf(optarg, "%" SCNu64, &s.pids_max) != 1 || s.pids_max == 0)
                return usage_error("bad --pids \"%s\"", optarg);
            break;
        case 'g':
            if (s.n_grants == CELL_MAX_GRANTS)
                return usage_error("too many grants at \"%s\"", optarg);
            grants[s.n_grants++] = optarg;
            break;
        case 't': {
            if (s.n_tmpfs == CELL_MAX_TMPFS)
                return usage_error("too many tmpfs at \"%s\"", optarg);
            struct cell_tmpfs *t = &tmpfs[s.n_tmpfs++];
            char *colon = strchr(optarg, ':');
            t->path = optarg;
            t->size_bytes = 0;
            if (colon) {
                *colon = '\0';
                if (cell_parse_bytes(colon + 1, &t->size_bytes) < 0)
                    return usage_error("bad tmpfs size \"%s\"", colon + 1);
            }
            break;
        }
        case 'v': {
            if (s.n_volumes == CELL_MAX_VOLUMES)
                return usage_error("too many volumes at \"%s\"", optarg);
            struct cell_volume *v = &vols[s.n_volumes++];
            char *dst = strchr(optarg, ':');
            if (!dst)
                return usage_error("bad --volume \"%s\" (SRC:DST[:ro])", optarg);
            *dst++ = '\0';
            char *mode = strchr(dst, ':');
            v->read_only = false;
            if (mode) {
                *mode++ = '\0';
                if (strcmp(mode, "ro") != 0)
                    return usage_error("bad volume mode \"%s\" (only ro)", mode);
                v->read_only = true;
            }
            v->source = optarg;
            v->path = dst;
            break;
        }
        case 'e':
            if (n_env == CELL_MAX_ARGS || !strchr(optarg, '='))
                return usage_error("bad --env \"%s\" (K=V)", optarg);
            env[n_env++] = optarg;
            break;
        case 'w':
            s.cwd = optarg;
            break;
        case 'H':
            s.hostname = optarg;
            break;
        case 'u':
            s.uid = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'G':
            s.gid = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'N':
            if (parse_net(optarg ? optarg : "bridge", &s.net) < 0)
                return usage_error("bad --net \"%s\" (none, bridge, host)", optarg);
            break;
        case 'T':
            s.stop_grace_usec = (usec_t)(strtod(optarg, NULL) * USEC_PER_SEC);
            break;
        case 'B':
            hc.bridge = optarg;
            break;
        case 'I':
            s.init = true;
            break;
        case 'M':
            image_ref = optarg;
            break;
        case 'D':
            store_dir = optarg;
            break;
        case 'S': {
            char *eq = strchr(optarg, '=');
            if (!eq || s.n_secrets == CELL_MAX_SECRETS)
                return usage_error("bad --secret-file \"%s\" (NAME=PATH)", optarg);
            *eq = '\0';
            struct cell_secret *sec = &secrets[s.n_secrets];
            sec->name = optarg;
            sec->data = secret_data[s.n_secrets] = read_secret(eq + 1, &sec->len);
            if (!sec->data)
                return usage_error("cannot read secret file \"%s\" (at most 1 MiB)", eq + 1);
            s.n_secrets++;
            break;
        }
        default:
            return usage_error("%s", "see usage");
        }
    }
    if (!s.root == !image_ref)
        return usage_error("%s", "exactly one of --root DIR and --image REF is required");
    struct slet_image_lease il = {0};
    if (image_ref) {
        struct sc_error ie = {0};
        if (slet_image_lease_take(&il, store_dir, NULL, image_ref, s.name, &ie) < 0) {
            fprintf(stderr, "slet: cell %s: image %s: %s\n", s.name, image_ref, ie.msg);
            return 125;
        }
        s.root = il.root;
        const struct img_manifest *m = &il.manifest;
        if (optind >= argc && m->argc)
            s.argv = (const char *const *)m->argv;
        if (!n_env)
            for (size_t i = 0; i < m->n_env && n_env < CELL_MAX_ARGS; i++)
                env[n_env++] = m->env[i];
        if (!s.cwd)
            s.cwd = m->workdir;
        for (size_t i = 0; !s.n_tmpfs && i < m->n_writable && i < CELL_MAX_TMPFS; i++)
            tmpfs[i] = (struct cell_tmpfs){.path = m->writable[i]};
        if (!s.n_tmpfs)
            s.n_tmpfs = m->n_writable < CELL_MAX_TMPFS ? m->n_writable : CELL_MAX_TMPFS;
    }
    if (optind < argc)
        s.argv = (const char *const *)&argv[optind];
    if (!s.argv) {
        slet_image_lease_drop(&il);
        return usage_error("%s", "no command after -- (and the image names none)");
    }
    s.grants = grants;
    s.tmpfs = s.n_tmpfs ? tmpfs : NULL;
    s.volumes = vols;
    s.secrets = secrets;
    if (n_env) {
        bool has_path = false;
        for (size_t i = 0; i < n_env; i++)
            has_path |= !strncmp(env[i], "PATH=", 5);
        if (!has_path && n_env < CELL_MAX_ARGS)
            env[n_env++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        env[n_env] = NULL;
        s.env = env;
    }

    struct sc_error e = {0};
    struct cell_host *h = NULL;
    struct cell *c = NULL;
    int r = cell_host_new(&hc, &h, &e);
    if (r >= 0)
        r = cell_create(h, &s, &c, &e);
    for (size_t i = 0; i < s.n_secrets; i++) { /* the Cell holds its own copy now */
        explicit_bzero(secret_data[i], secrets[i].len);
        free(secret_data[i]);
    }
    if (r >= 0)
        r = cell_start(c, &e);
    if (r < 0) {
        fprintf(stderr, "slet: cell %s: %s\n", s.name, e.msg[0] ? e.msg : strerror(-r));
        cell_host_free(h);
        slet_image_lease_drop(&il);
        return 125;
    }
    struct cell_status st;
    cell_status(c, &st);
    if (st.ip[0])
        fprintf(stderr, "slet: cell %s pid %d ip %s\n", s.name, st.pid, st.ip);

    struct run_state rs = {.cell = c, .base = event_base_new()};
    rs.ev_cell = event_new(rs.base, cell_fd(c), EV_READ | EV_PERSIST, on_cell, &rs);
    rs.ev_timer = evtimer_new(rs.base, on_cell, &rs);
    struct event *sig_int = evsignal_new(rs.base, SIGINT, on_signal, &rs);
    struct event *sig_term = evsignal_new(rs.base, SIGTERM, on_signal, &rs);
    event_add(rs.ev_cell, NULL);
    event_add(sig_int, NULL);
    event_add(sig_term, NULL);
    on_cell(-1, 0, &rs); /* it may be done already */
    cell_status(c, &st);
    if (st.state != CELL_DEAD)
        event_base_dispatch(rs.base);
    follow_log(&rs);
    cell_status(c, &st);
    event_free(sig_int);
    event_free(sig_term);
    event_free(rs.ev_timer);
    event_free(rs.ev_cell);
    event_base_free(rs.base);
    int code = st.exit_signal ? 128 + st.exit_signal : st.exit_code;
    if (st.oom_killed)
        fprintf(stderr, "slet: cell %s was OOM-killed at its memory limit\n", s.name);
    if (st.stop_forced)
        fprintf(stderr, "slet: cell %s ignored SIGTERM and was killed after the grace period\n",
                s.name);
    cell_host_free(h); /* tears the Cell down */
    slet_image_lease_drop(&il);
    return code < 0 ? 125 : code;
}

int slet_cell_main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "run"))
        return cell_run(argc - 1, argv + 1);
    fprintf(stderr, "usage: slet cell run ... -- CMD [ARGS...]\n");
    return 2;
}
