/*
 * agent_logs.c: the node's logs endpoint, so that `sctl logs` (through sctld)
 * can read an instance's output where it lives: in its Cell's log ring.
 *
 *   GET /logs/NAME            the ring as it is now (text/plain)
 *   GET /logs/NAME?follow=1   the ring, then new output as it arrives (chunked),
 *                             until the client goes or the instance is removed
 *   GET /instances            this node's instances: name, phase, pid, restarts
 *   GET /healthz              {"status":"ok"}
 *
 * Listens on --listen IP:PORT (port 0 picks one); the address goes into the
 * Node's spec.logs and the heartbeat value (docs/slet.md).  Plain HTTP on the
 * node's address until the node-join issue brings mutual TLS.  Followers are
 * bounded: 64 per instance.
 */
#include "slet/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/tls.h"

#define MAX_FOLLOWERS 64

struct slet_follow {
    struct slet_follow *next;
    struct slet_inst *in;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    uint64_t cursor;
};

static size_t n_followers(const struct slet_inst *in)
{
    size_t n = 0;
    for (const struct slet_follow *f = in->followers; f; f = f->next)
        n++;
    return n;
}

static void follow_unlink(struct slet_follow *f)
{
    struct slet_follow **pp = &f->in->followers;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
}

static void on_follower_closed(struct evhttp_connection *conn, void *arg)
{
    struct slet_follow *f = arg;
    follow_unlink(f);
    free(f);
}

/* Copies the ring from *cursor on into out. */
static void read_ring(struct slet_inst *in, uint64_t *cursor, struct evbuffer *out)
{
    char buf[8192];
    size_t n;
    uint64_t dropped = 0;
    if (!in->cell)
        return;
    while ((n = cell_log_read(in->cell, cursor, buf, sizeof(buf), &dropped)) > 0)
        evbuffer_add(out, buf, n);
}

void slet_logs_notify(struct slet_inst *in)
{
    for (struct slet_follow *f = in->followers; f; f = f->next) {
        struct evbuffer *b = evbuffer_new();
        read_ring(in, &f->cursor, b);
        if (evbuffer_get_length(b))
            evhttp_send_reply_chunk(f->req, b);
        evbuffer_free(b);
    }
}

void slet_logs_detach(struct slet_inst *in)
{
    while (in->followers) {
        struct slet_follow *f = in->followers;
        in->followers = f->next;
        evhttp_connection_set_closecb(f->conn, NULL, NULL);
        evhttp_send_reply_end(f->req);
        free(f);
    }
}

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static void send_text(struct evhttp_request *req, int code, const char *reason, const char *fmt,
                      ...)
{
    struct evbuffer *b = evbuffer_new();
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(b, fmt, ap);
    va_end(ap);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void serve_instances(struct slet_agent *a, struct evhttp_request *req)
{
    json_t *arr = json_array();
    uint64_t k;
    void *v;
    for (size_t it = 0; u64map_next(&a->insts, &it, &k, &v);)
        for (struct slet_inst *in = v; in; in = in->hnext) {
            struct cell_status cs = {0};
            if (in->cell)
                cell_status(in->cell, &cs);
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:i, s:i}", "name", in->name, "node", in->node,
                               "phase", in->phase, "pid",
                               cs.state == CELL_RUNNING || cs.state == CELL_STOPPING ? cs.pid : 0,
                               "restarts", (int)in->restarts));
        }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    send_text(req, 200, "OK", "%s\n", s);
    free(s);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct slet_agent *a = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        send_text(req, 405, "Method Not Allowed",
                  "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"GET only\"}}\n");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    if (path && !strcmp(path, "/healthz")) {
        send_text(req, 200, "OK", "{\"status\":\"ok\"}\n");
        return;
    }
    if (path && !strcmp(path, "/instances")) {
        serve_instances(a, req);
        return;
    }
    if (!path || strncmp(path, "/logs/", 6) != 0) {
        send_text(req, 404, "Not Found",
                  "{\"error\":{\"code\":\"not_found\",\"message\":\"paths: /logs/NAME, "
                  "/instances, /healthz\"}}\n");
        return;
    }
    const char *name = path + 6;
    struct slet_inst *in = slet_inst_find(a, name);
    if (!in || !in->cell) {
        send_text(req, 404, "Not Found",
                  "{\"error\":{\"code\":\"not_found\",\"message\":\"no instance %.63s with a "
                  "Cell on this node\"}}\n",
                  strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(name) ? name
                                                                                        : "?");
        return;
    }
    bool follow = query && (strstr(query, "follow=1") || strstr(query, "follow=true"));
    uint64_t cursor = 0;
    struct evbuffer *b = evbuffer_new();
    read_ring(in, &cursor, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    if (!follow) {
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    if (n_followers(in) >= MAX_FOLLOWERS) {
        evbuffer_free(b);
        send_text(req, 429, "Too Many Requests",
                  "{\"error\":{\"code\":\"too_many_followers\",\"message\":\"at most %d "
                  "followers per instance\"}}\n",
                  MAX_FOLLOWERS);
        return;
    }
    struct slet_follow *f = xcalloc(1, sizeof(*f));
    f->in = in;
    f->req = req;
    f->conn = evhttp_request_get_connection(req);
    f->cursor = cursor;
    f->next = in->followers;
    in->followers = f;
    evhttp_connection_set_closecb(f->conn, on_follower_closed, f);
    evhttp_send_reply_start(req, 200, "OK");
    if (evbuffer_get_length(b))
        evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

int slet_logs_start(struct slet_agent *a, struct sc_error *e)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", a->o.listen);
    char *colon = strrchr(host, ':');
    if (!colon)
        return sc_error_set(e, -SC_E_INVALID, "listen", "--listen %s: expected IP:PORT",
                            a->o.listen);
    *colon = '\0';
    int port = atoi(colon + 1);
    a->http = evhttp_new(a->base);
    if (a->tls) {
        /* mutual TLS: the node certificate (its IP SANs name --address and the
         * --listen host), and only controllers may fetch logs */
        struct net_tls_files f = {.ca = a->pki.ca, .cert = a->pki.cert, .key = a->pki.key};
        int r = net_tls_server_ctx_new(&f, NET_TLS_CLIENT_REQUIRED, PKI_ROLE_CONTROLLER,
                                       &a->logs_tls, e);
        if (r < 0)
            return r;
        evhttp_set_bevcb(a->http, net_tls_evhttp_bevcb, a->logs_tls);
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(a->http, host, (uint16_t)port);
    if (!bs)
        return sc_error_set(e, -EADDRINUSE, "listen", "cannot listen on %s", a->o.listen);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl) == 0)
        port = ntohs(sin.sin_port);
    /* 0.0.0.0 is no address to give others: use the node's */
    snprintf(a->logs_url, sizeof(a->logs_url), "%s://%s:%d", a->tls ? "https" : "http",
             strcmp(host, "0.0.0.0") ? host : a->o.address, port);
    evhttp_set_gencb(a->http, on_request, a);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    return 0;
}

void slet_logs_stop(struct slet_agent *a)
{
    uint64_t k;
    void *v;
    for (size_t it = 0; u64map_next(&a->insts, &it, &k, &v);)
        for (struct slet_inst *in = v; in; in = in->hnext)
            slet_logs_detach(in);
    if (a->http)
        evhttp_free(a->http);
    a->http = NULL; /* logs_tls is freed at the agent's end (agent.c) */
}
