/*
 * server.c: the store server inside sctld: start-up (recovery, the Raft core,
 * the HTTP listener, the peer transport), replies, the table of client
 * connections and what each holds, signals and a clean shutdown.  The rest lives
 * by seam in the files listed in server_int.h, which also indexes the design
 * block (its invariants sit with the code that keeps them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "sctld/server_int.h"

const char *srv_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Internal Server Error";
    }
}

void srv_observe(struct srv *s, usec_t start)
{
    s->requests++;
    sc_hist_observe(&s->req_hist, now_usec(CLOCK_MONOTONIC) - start);
}

void srv_send_json(struct srv *s, struct evhttp_request *req, int status, const struct sc_buf *b)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char rev[24];
    snprintf(rev, sizeof(rev), "%lld", (long long)store_rev(s->store));
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "X-Sc-Revision", rev);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add(out, b->data, b->len);
    evbuffer_add(out, "\n", 1);
    evhttp_send_reply(req, status, srv_reason(status), NULL);
}

void srv_send_error(struct srv *s, struct evhttp_request *req, int r, const struct sc_error *e)
{
    sc_buf_reset(&s->scratch);
    api_json_error(&s->scratch, r, e);
    srv_send_json(s, req, sc_err_http_status(r), &s->scratch);
}

void srv_json_str(struct sc_buf *b, const char *v)
{
    sc_buf_put_u8(b, '"');
    for (const char *p = v; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            sc_buf_printf(b, "\\u%04x", (unsigned char)*p);
        else
            sc_buf_put_u8(b, (uint8_t)*p);
    sc_buf_put_u8(b, '"');
}

/* A 4xx/5xx with our own error code (the shared table has no "conflict"). */
void srv_send_coded(struct srv *s, struct evhttp_request *req, int status, const char *code,
                    const char *msg)
{
    struct sc_buf *b = &s->scratch;
    sc_buf_reset(b);
    sc_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    srv_json_str(b, msg);
    sc_buf_put(b, "}}", 2);
    srv_send_json(s, req, status, b);
}

/* ---- connections -------------------------------------------------------------------- */

void srv_peer_of(struct evhttp_request *req, char *out, size_t size)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, &addr, &port);
    snprintf(out, size, "%s:%u", addr ? addr : "?", (unsigned)port);
}

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
    struct srv *s = arg;
    struct srv_conn *cs = u64map_del(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs)
        return;
    /* libevent orphans a request whose peer went away mid-reply (its connection
     * becomes NULL) and leaves it to us to finish, which frees it; a request
     * still attached is freed by libevent with the connection. */
    if (cs->p && evhttp_request_get_connection(cs->p->req))
        cs->p->req = NULL; /* the write still happens; nobody is told */
    if (cs->r)
        cs->r->req = NULL;
    if (cs->f)
        cs->f->req = NULL;
    if (cs->l)
        srv_logs_client_gone(s, cs->l);
    if (cs->cc)
        s->cc_req = NULL; /* the change still happens; nobody is told */
    if (cs->s) {
        if (!evhttp_request_get_connection(cs->s->req))
            evhttp_send_reply_end(cs->s->req);
        srv_stream_free(s, cs->s);
    }
    free(cs);
}

struct srv_conn *srv_conn_get(struct srv *s, struct evhttp_connection *conn)
{
    struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs) {
        cs = xcalloc(1, sizeof(*cs));
        u64map_put(&s->conns, (uint64_t)(uintptr_t)conn, cs);
        evhttp_connection_set_closecb(conn, on_conn_close, s);
    }
    return cs;
}

void srv_conn_forget(struct srv *s, struct evhttp_connection *conn, struct srv_proposal *p,
                     struct srv_stream *st)
{
    struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)conn);
    if (!cs)
        return;
    if (p && cs->p == p)
        cs->p = NULL;
    if (st && cs->s == st)
        cs->s = NULL;
}

/* ---- signals, shutdown -------------------------------------------------------------- */

void srv_maybe_finish_shutdown(struct srv *s)
{
    if (!s->shutting_down || s->in_flight)
        return;
    for (int list = 0; list < 2; list++)
        for (struct srv_proposal *p = list ? s->qhead : s->head; p; p = p->next)
            if (p->req)
                return;
    if (s->finishing)
        return;
    s->finishing = true;
    bool had_streams = s->streams != NULL || s->logs != NULL;
    srv_logs_end_all(s);
    while (s->streams)
        srv_stream_end(s, s->streams, -SC_E_SHUTTING_DOWN,
                       "sctld is shutting down; resume elsewhere");
    while (s->reads)
        srv_read_fail(s, s->reads, -SC_E_SHUTTING_DOWN, "sctld is shutting down; retry elsewhere");
    /* Give the loop a moment to flush the last lines (or to see the peers gone),
     * so that every connection is closed by libevent itself. */
    struct timeval grace = {0, had_streams ? 200 * 1000 : 0};
    event_base_loopexit(s->base, &grace);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct srv *s = arg;
    if (s->shutting_down)
        return;
    log_info("msg=\"shutting down\" signal=%d parked=%zu watches=%zu", (int)sig, s->nparked,
             s->nstreams);
    s->shutting_down = true;
    if (s->listener) {
        evhttp_del_accept_socket(s->http, s->listener);
        s->listener = NULL;
    }
    srv_maybe_finish_shutdown(s);
}

/* ---- start-up ----------------------------------------------------------------------- */

static int bind_listener(struct srv *s)
{
    char host[256];
    const char *colon = strrchr(s->cfg.listen, ':');
    if (!colon || colon == s->cfg.listen || (size_t)(colon - s->cfg.listen) >= sizeof(host)) {
        log_error("msg=\"--listen must be HOST:PORT\" got=\"%s\"", s->cfg.listen);
        return -EINVAL;
    }
    memcpy(host, s->cfg.listen, (size_t)(colon - s->cfg.listen));
    host[colon - s->cfg.listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        log_error("msg=\"bad port in --listen\" got=\"%s\"", s->cfg.listen);
        return -EINVAL;
    }
    s->listener = evhttp_bind_socket_with_handle(s->http, host, (uint16_t)port);
    if (!s->listener) {
        log_error("msg=\"cannot listen\" addr=%s error=\"%s\"", s->cfg.listen, strerror(errno));
        return -EADDRINUSE;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->listener);
    char addr[INET6_ADDRSTRLEN] = "?";
    int bound = (int)port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
            bound = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
            bound = ntohs(in6->sin6_port);
        }
    }
    /* One line on stdout that tools and tests can wait for. */
    snprintf(s->client_addr, sizeof(s->client_addr), "%s:%d", addr, bound);
    printf("sctld listening on %s:%d\n", addr, bound);
    fflush(stdout);
    log_info("msg=\"listening\" addr=%s:%d data_dir=%s", addr, bound, s->cfg.data_dir);
    return 0;
}

/* The peer transport, when --peer-listen is given: peers from --initial-cluster. */
static int start_peers(struct srv *s)
{
    if (!s->cfg.peer_listen)
        return 0;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = now_usec(CLOCK_REALTIME);
    /* --tls-dir: srv_tls_start made the TLS contexts and peer_ops (tls.c invariant 4) */
    peer_net_new(s->base, s->peer_tls ? &s->peer_ops : NULL, s->id, s->cfg.name, s->client_addr,
                 seed, srv_on_peer_msg, s, &s->net);
    int r = peer_net_listen(s->net, s->cfg.peer_listen);
    if (r < 0) {
        log_error("msg=\"cannot listen for peers\" addr=%s error=\"%s\"", s->cfg.peer_listen,
                  strerror(-r));
        return r;
    }
    char *list = xstrdup(s->cfg.initial_cluster ? s->cfg.initial_cluster : ""), *save = NULL;
    for (char *it = strtok_r(list, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(it, s->cfg.name) == 0)
            continue;
        if ((r = peer_net_add(s->net, srv_name_id(it), it, eq + 1)) < 0) {
            log_error("msg=\"bad peer address in --initial-cluster\" peer=%s addr=%s", it, eq + 1);
            free(list);
            return r;
        }
    }
    free(list);
    log_info("msg=\"peer transport listening\" addr=%s", s->cfg.peer_listen);
    return 0;
}

/* Before the loop runs: waits for the update in flight (start-up only). */
static void wait_idle(struct srv *s)
{
    while (s->in_flight && !s->exit_code) {
        struct pollfd pfd = {.fd = s->persist.wake_fd, .events = POLLIN};
        poll(&pfd, 1, 1000);
        srv_on_durable(s->persist.wake_fd, EV_READ, s);
    }
}

void srv_config_default(struct srv_config *c)
{
    *c = (struct srv_config){
        .data_dir = "sctld-data",
        .listen = "127.0.0.1:7400",
        .name = "default",
        .tick_ms = 10,
        .election_ticks = 10,
        .heartbeat_ticks = 1,
        .max_body_bytes = 2u << 20,
        .watch_buffer_bytes = 4u << 20,
        .watch_stall_usec = 5 * USEC_PER_SEC,
        .http_idle_usec = 120 * USEC_PER_SEC,
        .watch_progress_usec = 10 * USEC_PER_SEC,
        .node_grace_usec = 500 * USEC_PER_MSEC,
        .node_cert_sec = 365ull * 24 * 3600,
        .max_watches = 100000,
        .snapshot_every = 100000,
        .auto_compact_retain = 100000,
        .wal_segment_bytes = 64u << 20,
    };
    store_limits_default(&c->limits);
}

int srv_run(const struct srv_config *cfg)
{
    struct srv *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->id = srv_name_id(cfg->name);
    s->store = store_new(&cfg->limits);
    struct wal *w = NULL;
    int r = srv_recover(s, &w);
    if (r < 0)
        goto out;
    if ((r = persist_start(&s->persist, w, s->snap_dir)) < 0) {
        wal_close(w);
        log_error("msg=\"cannot start the persist thread\" error=\"%s\"", strerror(-r));
        goto out;
    }
    s->persist_running = true;
    signal(SIGPIPE, SIG_IGN);
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    /* Every method reaches our handler, so a wrong one gets our 405 JSON rather
     * than libevent's 501 page. */
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    /* libevent 2.1 answers a body over its own limit with an HTML 413 and has no
     * hook to change that page: give it 1 MiB of slack so that bodies just over
     * our limit get our JSON error (srv_body_of), and only absurd ones get libevent's. */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)(s->cfg.max_body_bytes + (1u << 20)));
    evhttp_set_max_headers_size(s->http, 64 * 1024);
    const struct timeval idle = {(time_t)(s->cfg.http_idle_usec / USEC_PER_SEC),
                                 (suseconds_t)(s->cfg.http_idle_usec % USEC_PER_SEC)};
    evhttp_set_timeout_tv(s->http, &idle);
    evhttp_set_gencb(s->http, srv_handle, s);
    s->drive_ev = event_new(s->base, -1, 0, srv_on_drive, s);
    /* Re-apply what the log holds as committed; a sole voter elects itself before
     * it listens, so that the first request finds a leader. */
    srv_drive(s);
    wait_idle(s);
    if (s->st.conf.n_voters == 1 && s->st.conf.voters[0] == s->id && !s->st.conf.n_outgoing) {
        raft_campaign(s->raft);
        srv_drive(s);
        wait_idle(s);
    }
    if (s->exit_code) {
        r = s->exit_code;
        goto out;
    }
    if ((r = srv_tls_start(s)) < 0 || (r = bind_listener(s)) < 0 || (r = srv_health_start(s)) < 0 ||
        (r = srv_join_start(s)) < 0 || (r = start_peers(s)) < 0)
        goto out;
    srv_sync_peers(s); /* members added after --initial-cluster, from their address keys */
    s->wake_ev = event_new(s->base, s->persist.wake_fd, EV_READ | EV_PERSIST, srv_on_durable, s);
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, srv_on_tick, s);
    s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sigint_ev = evsignal_new(s->base, SIGINT, on_signal, s);
    struct timeval tick = {s->cfg.tick_ms / 1000, (s->cfg.tick_ms % 1000) * 1000};
    event_add(s->wake_ev, NULL);
    event_add(s->tick_ev, &tick);
    event_add(s->sigterm_ev, NULL);
    event_add(s->sigint_ev, NULL);
    event_base_dispatch(s->base);
    r = s->exit_code;
    log_info("msg=\"stopped\" revision=%lld applied_index=%llu", (long long)store_rev(s->store),
             (unsigned long long)s->applied_index);
out:
    if (s->http)
        evhttp_free(s->http); /* runs the close callbacks: frees every conn_state */
    srv_forward_done(s);      /* the pool's connections, after their clients' */
    srv_logs_done(s);         /* the log streams' connections to nodes, likewise */
    while (s->streams)
        srv_stream_free(s, s->streams);
    peer_net_free(s->net);
    s->net = NULL;
    sc_buf_free(&s->inbox);
    if (s->snap_pid) { /* let the snapshot child finish: its file is consistent */
        int st;
        while (waitpid(s->snap_pid, &st, 0) < 0 && errno == EINTR)
            ;
        event_free(s->snap_ev);
        close(s->snap_pidfd);
        s->snap_pid = 0;
    }
    if (s->persist_running)
        persist_stop(&s->persist);
    for (int list = 0; list < 2; list++) {
        struct srv_proposal *p = list ? s->qhead : s->head;
        while (p) {
            struct srv_proposal *next = p->next;
            srv_proposal_free(p);
            p = next;
        }
    }
    while (s->reads) {
        struct srv_pread *next = s->reads->next;
        free(s->reads);
        s->reads = next;
    }
    if (s->raft)
        raft_free(s->raft);
    if (s->drive_ev)
        event_free(s->drive_ev);
    uint64_t k;
    void *v;
    for (size_t i = 0; u64map_next(&s->conns, &i, &k, &v);)
        free(v);
    u64map_done(&s->conns);
    u64map_done(&s->revoking);
    if (s->wake_ev)
        event_free(s->wake_ev);
    if (s->tick_ev)
        event_free(s->tick_ev);
    if (s->sigterm_ev)
        event_free(s->sigterm_ev);
    if (s->sigint_ev)
        event_free(s->sigint_ev);
    srv_join_done(s);
    srv_tls_done(s); /* the health listener; freed SSL bufferevents finalized in the loop */
    if (s->base)
        event_base_free(s->base);
    srv_sched_forget(s);
    store_free(s->store);
    sc_buf_free(&s->scratch);
    sc_buf_free(&s->fmt.text);
    free(s->fmt.ent);
    free(s);
    return r;
}
