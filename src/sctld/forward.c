/*
 * forward.c: any sctld member accepts any write: a follower relays it to the
 * leader's client address (learned from the leader's hello frame, peer.h) as an
 * HTTP reverse-proxy hop, once: the X-Sc-Forwarded header stops loops.  The
 * leader's answer (status, body, revision) goes back to the client unchanged; a
 * leader that does not answer within 2 s gets the client a 503 "outcome unknown".
 * With --tls-dir the hop is HTTPS: the follower presents its controller.crt and
 * verifies the leader's certificate (controller role, the host of its client
 * address) with s->tls_client (tls.c).
 *
 * The hops travel over a pool of keep-alive connections to the current leader:
 * one connection carries one forwarded request at a time (so concurrent writes
 * still reach the leader together and share its group commit), and an idle one
 * is taken before a new one is opened.  Measured in docs/raft.md: opening a
 * connection per write cost a follower 40% of its one-client throughput (data on
 * tmpfs, where the disk hides nothing) and left a socket per write in TIME_WAIT.
 *
 * Pool rules:
 *  1. Every connection in the pool is to pool.leader at pool.addr; when the
 *     leader (or its address) changes, the pool is dropped: idle connections are
 *     freed at once, busy ones are marked stale and freed once their request is
 *     answered.
 *  2. A connection is never freed from inside its own request callback (libevent
 *     is still using it there): fwd_done only marks it idle or stale, and stale
 *     idle connections are freed at the next srv_forward, leader change or exit.
 *  3. A connection whose request failed (no answer, refused, timed out) is
 *     stale: the next write opens a fresh one rather than trust it.
 *  4. At most FWD_MAX_IDLE idle connections are kept; beyond that a finished
 *     connection is stale.  Busy ones are bounded by the client connections,
 *     each of which has at most one request in flight.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/tls.h"
#include "sctld/server_int.h"

#define FWD_MAX_IDLE 64

/* Frees every connection that is not busy and is stale (rule 2). */
static void pool_reap(struct srv *s)
{
    struct srv_fwd_conn **pp = &s->fwd_pool.conns;
    while (*pp) {
        struct srv_fwd_conn *c = *pp;
        if (c->busy || !c->stale) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        evhttp_connection_free(c->conn);
        free(c);
        s->fwd_pool.n--;
    }
}

/* Rule 1: a pool holds connections to one leader only. */
void srv_forward_drop_pool(struct srv *s)
{
    for (struct srv_fwd_conn *c = s->fwd_pool.conns; c; c = c->next) {
        if (c->idle_counted)
            s->fwd_pool.nidle--;
        c->idle_counted = false;
        c->stale = true;
    }
    s->fwd_pool.leader = 0;
    s->fwd_pool.addr[0] = '\0';
    pool_reap(s);
}

void srv_forward_done(struct srv *s)
{
    srv_forward_drop_pool(s);
    /* What is left was busy: its requests are freed with it, unanswered (the
     * clients' connections are already gone at exit). */
    while (s->fwd_pool.conns) {
        struct srv_fwd_conn *c = s->fwd_pool.conns;
        s->fwd_pool.conns = c->next;
        evhttp_connection_free(c->conn);
        free(c->busy);
        free(c);
    }
    s->fwd_pool.n = 0;
}

/* An idle connection to the leader, or a new one (NULL when a TLS connection
 * cannot be made for host, with e filled). */
static struct srv_fwd_conn *pool_take(struct srv *s, const char *host, uint16_t port,
                                      struct sc_error *e)
{
    for (struct srv_fwd_conn *c = s->fwd_pool.conns; c; c = c->next)
        if (!c->busy && !c->stale) {
            c->idle_counted = false;
            s->fwd_pool.nidle--;
            return c;
        }
    struct evhttp_connection *conn =
        s->tls_client ? net_tls_evhttp_connection_new(s->base, s->tls_client, host, port, e)
                      : evhttp_connection_base_new(s->base, NULL, host, port);
    if (!conn)
        return NULL;
    struct srv_fwd_conn *c = xcalloc(1, sizeof(*c));
    c->conn = conn;
    evhttp_connection_set_timeout(c->conn, 2);
    c->next = s->fwd_pool.conns;
    s->fwd_pool.conns = c;
    s->fwd_pool.n++;
    s->fwd_conns_opened++;
    return c;
}

static void fwd_done(struct evhttp_request *res, void *arg)
{
    struct srv_fwd *f = arg;
    struct srv *s = f->srv;
    struct evhttp_request *req = f->req;
    int code = res ? evhttp_request_get_response_code(res) : 0;
    if (req) {
        struct srv_conn *cs =
            u64map_get(&s->conns, (uint64_t)(uintptr_t)evhttp_request_get_connection(req));
        if (cs && cs->f == f)
            cs->f = NULL;
        if (code == 0) {
            struct sc_error e;
            sc_error_set(&e, -SC_E_NO_QUORUM, NULL,
                         "the leader did not answer the forwarded request; its outcome is "
                         "unknown, retry");
            srv_send_error(s, req, -SC_E_NO_QUORUM, &e);
        } else {
            struct evkeyvalq *in = evhttp_request_get_input_headers(res);
            struct evkeyvalq *out = evhttp_request_get_output_headers(req);
            const char *ct = evhttp_find_header(in, "Content-Type");
            const char *rev = evhttp_find_header(in, "X-Sc-Revision");
            evhttp_add_header(out, "Content-Type", ct ? ct : "application/json");
            if (rev)
                evhttp_add_header(out, "X-Sc-Revision", rev);
            evbuffer_add_buffer(evhttp_request_get_output_buffer(req),
                                evhttp_request_get_input_buffer(res));
            evhttp_send_reply(req, code, srv_reason(code), NULL);
        }
        srv_observe(s, f->start);
    }
    /* Rules 2-4, last: while busy nothing frees the connection. */
    struct srv_fwd_conn *c = f->pc;
    c->busy = NULL;
    if (code == 0 || c->stale || s->fwd_pool.nidle >= FWD_MAX_IDLE) {
        c->stale = true;
    } else {
        c->idle_counted = true;
        s->fwd_pool.nidle++;
    }
    free(f);
}

void srv_forward(struct srv *s, struct evhttp_request *req, usec_t start)
{
    struct sc_error e = {0};
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const struct peer_info *li = s->st.leader ? peer_net_get(s->net, s->st.leader) : NULL;
    if (!s->st.leader)
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_NO_QUORUM, NULL,
                                           "no leader is known: an election is in progress or this "
                                           "member cannot reach a quorum; retry"),
                              &e);
    if (evhttp_find_header(h, "X-Sc-Forwarded") || !li || !li->client_addr[0])
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_NOT_LEADER, NULL,
                                           "this member is not the leader and cannot forward to it "
                                           "(leader %llx, address %s); retry",
                                           (unsigned long long)s->st.leader,
                                           li && li->client_addr[0] ? li->client_addr : "unknown"),
                              &e);
    char host[128];
    const char *colon = strrchr(li->client_addr, ':');
    size_t hl = colon ? (size_t)(colon - li->client_addr) : 0;
    if (!colon || hl >= sizeof(host))
        return srv_send_error(s, req,
                              sc_error_set(&e, -SC_E_NOT_LEADER, NULL, "bad leader address"), &e);
    memcpy(host, li->client_addr, hl);
    host[hl] = '\0';
    if (s->fwd_pool.leader != s->st.leader || strcmp(s->fwd_pool.addr, li->client_addr) != 0) {
        srv_forward_drop_pool(s);
        s->fwd_pool.leader = s->st.leader;
        snprintf(s->fwd_pool.addr, sizeof(s->fwd_pool.addr), "%s", li->client_addr);
    }
    pool_reap(s);
    struct srv_fwd_conn *pc0 = pool_take(s, host, (uint16_t)atoi(colon + 1), &e);
    if (!pc0) {
        log_warn("msg=\"cannot connect to the leader\" addr=%s error=\"%s\"", li->client_addr,
                 e.msg);
        struct sc_error e2 = {0};
        return srv_send_error(s, req,
                              sc_error_set(&e2, -SC_E_NOT_LEADER, NULL,
                                           "cannot forward to the leader at %s: %s; retry",
                                           li->client_addr, e.msg),
                              &e2);
    }
    struct srv_fwd *f = xcalloc(1, sizeof(*f));
    f->srv = s;
    f->req = req;
    f->start = start;
    f->pc = pc0;
    f->pc->busy = f;
    struct evhttp_request *out = evhttp_request_new(fwd_done, f);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(out);
    evhttp_add_header(oh, "Host", li->client_addr);
    evhttp_add_header(oh, "X-Sc-Forwarded", s->cfg.name);
    /* a node's write: the leader authorizes it as that node (authz.c), with its
     * own store (ours may not have applied the node's previous write yet) */
    struct pki_identity who;
    struct sc_error ie = {0};
    if (s->tls && net_tls_evhttp_identity(req, &who, &ie) == 0 && who.role == PKI_ROLE_NODE)
        evhttp_add_header(oh, SRV_ON_BEHALF_OF, who.cn);
    const char *ct = evhttp_find_header(h, "Content-Type");
    if (ct)
        evhttp_add_header(oh, "Content-Type", ct);
    evbuffer_add_buffer(evhttp_request_get_output_buffer(out),
                        evhttp_request_get_input_buffer(req));
    srv_conn_get(s, evhttp_request_get_connection(req))->f = f;
    s->fwd_total++;
    struct srv_fwd_conn *pc = f->pc;
    /* libevent answers most failures through fwd_done, even before returning;
     * one it refuses outright (no socket) it does not: answer the client here. */
    if (evhttp_make_request(pc->conn, out, evhttp_request_get_command(req),
                            evhttp_request_get_uri(req)) < 0 &&
        pc->busy)
        fwd_done(NULL, pc->busy);
}
