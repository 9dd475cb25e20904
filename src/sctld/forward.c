/*
 * forward.c: any sctld member accepts any write: a follower relays it to the
 * leader's client address (learned from the leader's hello frame, peer.h) as an
 * HTTP reverse-proxy hop, once: the X-Sc-Forwarded header stops loops.  The
 * leader's answer (status, body, revision) goes back to the client unchanged; a
 * leader that does not answer within 2 s gets the client a 503 "outcome unknown".
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "sctld/server_int.h"

static void fwd_done(struct evhttp_request *res, void *arg)
{
    struct srv_fwd *f = arg;
    struct srv *s = f->srv;
    struct evhttp_request *req = f->req;
    if (req) {
        struct srv_conn *cs =
            u64map_get(&s->conns, (uint64_t)(uintptr_t)evhttp_request_get_connection(req));
        if (cs && cs->f == f)
            cs->f = NULL;
        int code = res ? evhttp_request_get_response_code(res) : 0;
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
    free(f);
}

/* Any member accepts any write: a follower relays it to the leader's client
 * address (learned from the leader's hello frame), once: X-Sc-Forwarded stops loops. */
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
    struct srv_fwd *f = xcalloc(1, sizeof(*f));
    f->srv = s;
    f->req = req;
    f->start = start;
    f->conn = evhttp_connection_base_new(s->base, NULL, host, (uint16_t)atoi(colon + 1));
    evhttp_connection_set_timeout(f->conn, 2);
    struct evhttp_request *out = evhttp_request_new(fwd_done, f);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(out);
    evhttp_add_header(oh, "Host", li->client_addr);
    evhttp_add_header(oh, "X-Sc-Forwarded", s->cfg.name);
    const char *ct = evhttp_find_header(h, "Content-Type");
    if (ct)
        evhttp_add_header(oh, "Content-Type", ct);
    evbuffer_add_buffer(evhttp_request_get_output_buffer(out),
                        evhttp_request_get_input_buffer(req));
    srv_conn_get(s, evhttp_request_get_connection(req))->f = f;
    s->fwd_total++;
    if (evhttp_make_request(f->conn, out, evhttp_request_get_command(req),
                            evhttp_request_get_uri(req)) < 0)
        return; /* libevent already called fwd_done(NULL) */
    evhttp_connection_free_on_completion(f->conn);
}
