/*
 * agent_probe.c: the startup, readiness and liveness probes of a real node's
 * instances, run by `slet agent` on its one event loop (docs/slet.md,
 * "Probes").  An http probe is a GET through libevent's HTTP client (2xx and
 * 3xx pass), a tcp probe a non-blocking connect, an exec probe a command run
 * inside the Cell (cell_exec_start: its namespaces, root, cgroups, uid,
 * Landlock and seccomp); each attempt has a timeout, which is a failure.
 * Readiness decides the Instance's `ready`, a failed liveness (or startup)
 * probe restarts the Cell; what a template's `health` means is in probe.c.
 *
 * Where a probe connects: a bridged Cell at its own address, a host-network
 * Cell at 127.0.0.1; a Cell with --cell-net none has only its own loopback, so
 * the socket is made inside its network namespace (the agent's thread enters
 * it with setns for the socket() and connect() calls, and returns at once; a
 * socket keeps the namespace it was made in) and connects to 127.0.0.1 there.
 *
 * Design
 *   1. No probe object exists for a Cell that is not running: slet_probe_start
 *      runs when the Cell has exec'd, slet_probe_stop (which cancels every
 *      attempt: connection freed, socket closed, exec killed) before the Cell
 *      is stopped, restarted or freed, and on its exit.
 *   2. At most one attempt per probe is in flight; the probe's one timer is the
 *      attempt's timeout while it is in flight and the next attempt otherwise.
 *      Attempts start every period from the first (at initialDelay after the
 *      Cell started), or at once when one overran its period.
 *   3. A startup probe gates the others: until it has passed, neither readiness
 *      nor liveness runs; once it passed it never runs again for this Cell.
 *      failureThreshold failures in a row restart the Cell ("startup probe
 *      failed: ...").
 *   4. Readiness starts not ready and becomes ready after successThreshold
 *      successes in a row, not ready after failureThreshold failures in a row
 *      (slet_probe_record).  Without a readiness probe the Cell is ready when
 *      running (and, with a startup probe, when that passed).  While not ready
 *      the reason says why ("readiness probe failed: HTTP 503").
 *   5. Liveness starts alive; failureThreshold failures in a row restart the
 *      Cell through slet_cell_restart ("liveness probe failed: ...", counted in
 *      restarts); the restarted Cell is not ready until readiness passes again.
 *   6. The Instance status is written only when ready or reason change
 *      (slet_cell_set_ready).
 *   7. A completion is handled from an event of its own (ev_done), never inside
 *      libevent's HTTP callback, so the connection can be freed there.
 *   8. Before its first success after a start, a readiness attempt that failed
 *      is retried after 25 ms, doubling up to the period (Kubernetes waits a
 *      whole period): a Cell is ready within milliseconds of its port opening.
 *      Only readiness does this: its failures change nothing until it has
 *      passed once, while startup and liveness failures count toward a
 *      restart and keep their period.
 *
 * Per probe:
 *
 *   (start) ──initialDelay──> WAIT ──timer──> ATTEMPT ──result──> WAIT (next at start+period)
 *                               ^                │
 *                               └──timeout (a failure)─┘
 *   startup passed: the startup probe ends, readiness and liveness start
 *   threshold reached: the state flips (ready / not ready), or the Cell restarts
 *   WAIT/ATTEMPT ──slet_probe_stop──> (gone)
 */
#include "slet/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/http.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "slet/probe.h"

struct slet_probes;

struct probe {
    struct slet_probes *ps;
    enum slet_probe_kind kind;
    struct slet_probe_spec spec;
    struct slet_probe_count cnt;
    unsigned fails;    /* startup: failures in a row */
    bool seen_ok;      /* readiness: has passed since the Cell started */
    usec_t retry_usec; /* readiness before seen_ok: the quick retry */
    bool active, busy;
    usec_t attempt_mono;
    struct event *ev_timer, *ev_done, *ev_io;
    struct evhttp_connection *conn;
    int fd;
    struct cell_exec *x;
    bool ok; /* the finished attempt's result and message */
    char msg[240];
};

struct slet_probes {
    struct slet_inst *in;
    struct probe p[SLET_PROBE_N];
    usec_t start_mono;
    bool startup_passed;
};

/* The agent's own network namespace, to come back to after making a socket in
 * a Cell's; opened once for the life of the process. */
static int self_netns = -1;

static void arm_at(struct probe *p, usec_t when)
{
    usec_t now = now_usec(CLOCK_MONOTONIC), d = when > now ? when - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(d / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(d % USEC_PER_SEC)};
    evtimer_add(p->ev_timer, &tv);
}

/* Cancels the attempt in flight, if any. */
static void attempt_cancel(struct probe *p)
{
    if (p->conn)
        evhttp_connection_free(p->conn); /* frees its request without a callback */
    p->conn = NULL;
    if (p->ev_io)
        event_free(p->ev_io);
    p->ev_io = NULL;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    cell_exec_free(p->x); /* kills the command if it still runs */
    p->x = NULL;
    event_del(p->ev_done);
    p->busy = false;
}

/* The attempt ended with ok/msg: handled from ev_done (invariant 7). */
static void finish(struct probe *p, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(struct probe *p, bool ok, const char *fmt, ...)
{
    p->ok = ok;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
    event_active(p->ev_done, EV_TIMEOUT, 0);
}

/* ---- the Cell's address ------------------------------------------------------------- */

/* Runs make(p, ip) where a socket to the Cell must be made: in the Cell's
 * network namespace for --cell-net none. */
static int in_cell_net(struct probe *p, int (*make)(struct probe *, const char *ip), char *err,
                       size_t len)
{
    struct slet_inst *in = p->ps->in;
    struct cell_status cs;
    cell_status(in->cell, &cs);
    if (in->a->o.net == CELL_NET_BRIDGE) {
        if (!cs.ip[0]) {
            snprintf(err, len, "the Cell has no address");
            return -EADDRNOTAVAIL;
        }
        return make(p, cs.ip);
    }
    if (in->a->o.net == CELL_NET_HOST)
        return make(p, "127.0.0.1");
    /* none: the Cell's own loopback, from inside its namespace.  The Cell's
     * init is our child and not reaped before its exit is handled on this
     * loop, so its pid names it here. */
    if (self_netns < 0 &&
        (self_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, len, "open the agent's network namespace: %s", strerror(errno));
        return -errno;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", cs.pid);
    int ns = cs.pid > 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
        int r = -errno;
        snprintf(err, len, "enter the Cell's network namespace: %s", strerror(errno));
        if (ns >= 0)
            close(ns);
        return r;
    }
    int r = make(p, "127.0.0.1");
    if (setns(self_netns, CLONE_NEWNET) < 0) { /* cannot happen to root; if it did, stop */
        log_error("msg=\"cannot return to the agent's network namespace\" err=\"%s\"",
                  strerror(errno));
        abort();
    }
    close(ns);
    return r;
}

/* ---- http ------------------------------------------------------------------------------ */

static void on_http_error(enum evhttp_request_error err, void *arg)
{
    struct probe *p = arg;
    switch (err) {
    case EVREQ_HTTP_TIMEOUT:
        finish(p, false, "HTTP timeout");
        break;
    case EVREQ_HTTP_EOF:
        finish(p, false, "HTTP connection refused or closed before a response");
        break;
    case EVREQ_HTTP_INVALID_HEADER:
        finish(p, false, "HTTP invalid response");
        break;
    default:
        finish(p, false, "HTTP request failed (%d)", (int)err);
        break;
    }
}

static void on_http_done(struct evhttp_request *req, void *arg)
{
    struct probe *p = arg;
    if (!req || p->ev_done == NULL || event_pending(p->ev_done, EV_TIMEOUT, NULL))
        return; /* the error callback has decided already */
    int code = evhttp_request_get_response_code(req);
    if (code == 0)
        finish(p, false, "HTTP connection refused or closed before a response");
    else
        finish(p, code >= 200 && code < 400, "HTTP %d", code);
}

static int http_make(struct probe *p, const char *ip)
{
    p->conn =
        evhttp_connection_base_new(p->ps->in->a->base, NULL, ip, (unsigned short)p->spec.port);
    if (!p->conn)
        return -ENOMEM;
    evhttp_connection_set_retries(p->conn, 0);
    struct timeval tv = {.tv_sec = (time_t)(p->spec.timeout_usec / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(p->spec.timeout_usec % USEC_PER_SEC)};
    evhttp_connection_set_timeout_tv(p->conn, &tv);
    struct evhttp_request *req = evhttp_request_new(on_http_done, p);
    evhttp_request_set_error_cb(req, on_http_error);
    char host[80];
    snprintf(host, sizeof(host), "%s:%d", ip, p->spec.port);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "User-Agent", "slet-probe/1");
    evhttp_add_header(h, "Connection", "close");
    /* the socket is made (and the connect started) here, in this namespace */
    if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, p->spec.path) < 0) {
        evhttp_request_free(req); /* libevent 2.1 leaves a request it could not send */
        return -EIO;
    }
    return 0;
}

/* ---- tcp ------------------------------------------------------------------------------- */

static void on_tcp(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        finish(p, false, "tcp connect to port %d: %s", p->spec.port, strerror(err));
    else
        finish(p, true, "tcp connect to port %d", p->spec.port);
}

static int tcp_make(struct probe *p, const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->spec.port)};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return -EINVAL;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0)
        return -errno;
    if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        return -errno;
    p->ev_io = event_new(p->ps->in->a->base, p->fd, EV_WRITE, on_tcp, p);
    event_add(p->ev_io, NULL);
    return 0;
}

/* ---- exec ------------------------------------------------------------------------------ */

static void on_exec(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    struct cell_exec_result res;
    int r = cell_exec_process(p->x, &res);
    if (r == 0)
        return;
    event_del(p->ev_io);
    if (r < 0) {
        finish(p, false, "exec %s: %s", p->spec.argv[0], strerror(-r));
        return;
    }
    char *nl = strchr(res.output, '\n');
    if (nl)
        *nl = '\0';
    if (res.exit_code == 0)
        finish(p, true, "exit code 0");
    else if (res.exit_signal)
        finish(p, false, "exec %s: killed by signal %d%s%.160s", p->spec.argv[0], res.exit_signal,
               res.output[0] ? ": " : "", res.output);
    else
        finish(p, false, "exec %s: exit code %d%s%.160s", p->spec.argv[0], res.exit_code,
               res.output[0] ? ": " : "", res.output);
}

static int exec_begin(struct probe *p, char *err, size_t len)
{
    struct sc_error e = {0};
    int r = cell_exec_start(p->ps->in->cell, (const char *const *)p->spec.argv, &p->x, &e);
    if (r < 0) {
        snprintf(err, len, "%s", e.msg);
        return r;
    }
    p->ev_io = event_new(p->ps->in->a->base, cell_exec_fd(p->x), EV_READ | EV_PERSIST, on_exec, p);
    event_add(p->ev_io, NULL);
    return 0;
}

/* ---- attempts and results ---------------------------------------------------------------- */

static void attempt_start(struct probe *p)
{
    char err[sizeof(((struct sc_error *)0)->msg)] = "";
    int r;
    p->busy = true;
    p->attempt_mono = now_usec(CLOCK_MONOTONIC);
    switch (p->spec.type) {
    case SLET_PROBE_HTTP:
        r = in_cell_net(p, http_make, err, sizeof(err));
        break;
    case SLET_PROBE_TCP:
        r = in_cell_net(p, tcp_make, err, sizeof(err));
        break;
    default:
        r = exec_begin(p, err, sizeof(err));
        break;
    }
    if (r < 0) {
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        finish(p, false, "%s", err);
        return;
    }
    arm_at(p, p->attempt_mono + p->spec.timeout_usec); /* the timeout (invariant 2) */
}

static void probe_begin(struct probe *p, usec_t first)
{
    p->active = true;
    arm_at(p, MAX(first, p->ps->start_mono + p->spec.initial_delay_usec));
}

static void probe_end(struct probe *p)
{
    attempt_cancel(p);
    evtimer_del(p->ev_timer);
    p->active = false;
}

static void set_reason_ready(struct slet_probes *ps)
{
    struct probe *rd = &ps->p[SLET_PROBE_READINESS];
    if (!ps->startup_passed)
        slet_cell_set_ready(ps->in, false, "startup probe has not passed yet");
    else if (!rd->spec.set || rd->cnt.ok)
        slet_cell_set_ready(ps->in, true, "");
    else
        slet_cell_set_ready(ps->in, false, "readiness probe has not passed yet");
}

/* Handles a finished attempt (invariant 7); may restart the Cell, after which
 * nothing of ps may be touched. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    struct slet_probes *ps = p->ps;
    struct slet_inst *in = ps->in;
    const char *kind = slet_probe_kind_name(p->kind);
    bool ok = p->ok;
    attempt_cancel(p);
    evtimer_del(p->ev_timer);
    usec_t next = p->attempt_mono + p->spec.period_usec;
    char reason[320];
    snprintf(reason, sizeof(reason), "%s probe failed: %s", kind, p->msg);
    if (!ok)
        log_debug("msg=\"probe failed\" instance=%s probe=%s err=\"%s\"", in->name, kind, p->msg);
    switch (p->kind) {
    case SLET_PROBE_STARTUP:
        if (ok) {
            probe_end(p);
            ps->startup_passed = true;
            log_info("msg=\"startup probe passed\" instance=%s", in->name);
            for (int k = SLET_PROBE_READINESS; k < SLET_PROBE_N; k++)
                if (ps->p[k].spec.set)
                    probe_begin(&ps->p[k], now_usec(CLOCK_MONOTONIC));
            set_reason_ready(ps);
            return;
        }
        if (++p->fails >= p->spec.failure_threshold) {
            log_info("msg=\"restarting\" instance=%s reason=\"%s\"", in->name, reason);
            slet_cell_restart(in, reason); /* frees ps (invariant 1) */
            return;
        }
        break;
    case SLET_PROBE_READINESS: {
        /* Until its first success a failed attempt is retried sooner, 25 ms
         * doubling up to the period, so that a Cell becomes ready about when
         * its port opens rather than one period later (invariant 8). */
        if (ok)
            p->seen_ok = true;
        if (!ok && !p->seen_ok) {
            p->retry_usec = p->retry_usec ? MIN(p->retry_usec * 2, p->spec.period_usec)
                                          : MIN(25 * USEC_PER_MSEC, p->spec.period_usec);
            next = MIN(next, p->attempt_mono + p->retry_usec);
        }
        bool flipped =
            slet_probe_record(&p->cnt, ok, p->spec.success_threshold, p->spec.failure_threshold);
        if (flipped)
            log_info("msg=\"readiness changed\" instance=%s ready=%s%s%s", in->name,
                     p->cnt.ok ? "true" : "false", ok ? "" : " reason=", ok ? "" : p->msg);
        if (p->cnt.ok)
            slet_cell_set_ready(in, true, "");
        else if (!ok)
            slet_cell_set_ready(in, false, reason);
        break;
    }
    case SLET_PROBE_LIVENESS:
        if (slet_probe_record(&p->cnt, ok, 1, p->spec.failure_threshold) && !p->cnt.ok) {
            log_info("msg=\"restarting\" instance=%s reason=\"%s\"", in->name, reason);
            slet_cell_restart(in, reason); /* frees ps (invariant 1) */
            return;
        }
        break;
    default:
        break;
    }
    arm_at(p, next);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    if (!p->busy) {
        attempt_start(p);
        return;
    }
    if (event_pending(p->ev_done, EV_TIMEOUT, NULL))
        return; /* finished just now: on_done follows */
    attempt_cancel(p);
    p->busy = true;
    finish(p, false, "timed out after %llu ms",
           (unsigned long long)(p->spec.timeout_usec / USEC_PER_MSEC));
}

/* ---- the agent's side ------------------------------------------------------------------- */

bool slet_probe_start(struct slet_inst *in, const json_t *template)
{
    slet_probe_stop(in);
    struct slet_probe_spec specs[SLET_PROBE_N];
    struct sc_error e = {0};
    if (!template || slet_probe_parse(template, specs, &e) < 0) {
        if (template) {
            log_warn("msg=\"probes not run\" instance=%s err=\"%s\"", in->name, e.msg);
            snprintf(in->reason, sizeof(in->reason), "invalid probe: %s", e.msg);
            return false;
        }
        return true;
    }
    if (!specs[SLET_PROBE_STARTUP].set && !specs[SLET_PROBE_READINESS].set &&
        !specs[SLET_PROBE_LIVENESS].set)
        return true; /* no probes: running is ready */
    struct slet_probes *ps = xcalloc(1, sizeof(*ps));
    ps->in = in;
    ps->start_mono = now_usec(CLOCK_MONOTONIC);
    ps->startup_passed = !specs[SLET_PROBE_STARTUP].set;
    for (int k = 0; k < SLET_PROBE_N; k++) {
        struct probe *p = &ps->p[k];
        p->ps = ps;
        p->kind = (enum slet_probe_kind)k;
        p->spec = specs[k];
        p->fd = -1;
        p->cnt.ok = k == SLET_PROBE_LIVENESS; /* alive until shown otherwise */
        p->ev_timer = evtimer_new(in->a->base, on_timer, p);
        p->ev_done = event_new(in->a->base, -1, 0, on_done, p);
    }
    in->probes = ps;
    if (!ps->startup_passed)
        probe_begin(&ps->p[SLET_PROBE_STARTUP], ps->start_mono);
    else
        for (int k = SLET_PROBE_READINESS; k < SLET_PROBE_N; k++)
            if (ps->p[k].spec.set)
                probe_begin(&ps->p[k], ps->start_mono);
    bool ready = ps->startup_passed && !specs[SLET_PROBE_READINESS].set;
    if (!ready)
        snprintf(in->reason, sizeof(in->reason), "%s probe has not passed yet",
                 ps->startup_passed ? "readiness" : "startup");
    return ready;
}

void slet_probe_stop(struct slet_inst *in)
{
    struct slet_probes *ps = in->probes;
    if (!ps)
        return;
    for (int k = 0; k < SLET_PROBE_N; k++) {
        struct probe *p = &ps->p[k];
        probe_end(p);
        event_free(p->ev_timer);
        event_free(p->ev_done);
        slet_probe_spec_done(&p->spec);
    }
    free(ps);
    in->probes = NULL;
}
