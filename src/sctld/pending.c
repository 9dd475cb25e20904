/*
 * pending.c: the requests of sctld's store server that wait on the log.  A write
 * becomes a proposal, queued until the driver (raftdrv.c) hands it to the core,
 * then parked under its (index, term) until that entry is applied (invariant 3
 * of raftdrv.c); a linearizable read waits as a pread for its ReadIndex (thesis
 * 6.4) and is served by running its handler again once applied >= that index.
 * Both lists are bounded, and both answer a client that waited too long.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sctld/server_int.h"

#define MAX_QUEUED 10000 /* proposals waiting for the next update */

void srv_proposal_free(struct srv_proposal *p)
{
    if (p->counter)
        (*p->counter)--;
    if (p->obj)
        free(p->obj->text);
    free(p->obj);
    srv_join_free(p->join);
    sc_buf_free(&p->payload);
    free(p);
}

/* Queues a command for the next update (invariant 1); srv_drive() hands it to raft. */
void srv_propose(struct srv *s, struct evhttp_request *req, enum srv_reply_kind kind,
                 const struct store_cmd *cmd, usec_t start)
{
    srv_propose_ex(s, req, kind, cmd, start);
}

struct srv_proposal *srv_propose_ex(struct srv *s, struct evhttp_request *req,
                                    enum srv_reply_kind kind, const struct store_cmd *cmd,
                                    usec_t start)
{
    if (s->nqueued >= MAX_QUEUED) {
        struct sc_error e;
        sc_error_set(&e, -SC_E_NO_QUORUM, NULL,
                     "%zu writes are already waiting for the log; retry later", s->nqueued);
        if (req)
            srv_send_error(s, req, -SC_E_NO_QUORUM, &e);
        return NULL;
    }
    struct srv_proposal *p = xcalloc(1, sizeof(*p));
    p->req = req;
    p->kind = kind;
    p->start = start;
    p->lease_id = cmd->lease_id;
    store_cmd_encode(cmd, &p->payload);
    if (req) {
        p->conn = evhttp_request_get_connection(req);
        srv_conn_get(s, p->conn)->p = p;
    }
    if (s->qtail)
        s->qtail->next = p;
    else
        s->qhead = p;
    s->qtail = p;
    s->nqueued++;
    srv_drive(s);
    return p;
}

void srv_propose_obj(struct srv *s, struct evhttp_request *req, const struct store_cmd *cmd,
                     struct srv_obj_reply *obj, usec_t start)
{
    struct srv_proposal *p = srv_propose_ex(s, req, R_OBJ, cmd, start);
    if (p) {
        p->obj = obj;
    } else {
        free(obj->text);
        free(obj);
    }
}

/* The answer to an applied object write (docs/api.md, "Objects"). */
static int obj_answer(struct srv *s, const struct srv_proposal *p, const struct store_result *res,
                      struct sc_buf *b)
{
    if (!res->succeeded)
        return 409;
    if (!strcmp(p->obj->result, "deleted")) {
        sc_buf_printf(b, "{\"revision\":%lld,\"deleted\":1}", (long long)res->rev);
        return 200;
    }
    json_t *o = obj_present((const uint8_t *)p->obj->text, strlen(p->obj->text), res->rev);
    json_t *ans = json_pack("{s:I, s:s, s:o}", "revision", (json_int_t)res->rev, "result",
                            p->obj->result, "object", o ? o : json_null());
    char *text = json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS);
    sc_buf_put(b, text, strlen(text));
    free(text);
    json_decref(ans);
    return 200;
}

/* Parks p under its (index, term), keeping the list sorted by index. */
void srv_park(struct srv *s, struct srv_proposal *p)
{
    p->next = NULL;
    if (!s->tail || s->tail->index <= p->index) {
        if (s->tail)
            s->tail->next = p;
        else
            s->head = p;
        s->tail = p;
    } else {
        struct srv_proposal **pp = &s->head;
        while ((*pp)->index <= p->index)
            pp = &(*pp)->next;
        p->next = *pp;
        *pp = p;
    }
    s->nparked++;
}

void srv_reply_applied(struct srv *s, struct srv_proposal *p, int r, const struct sc_error *e,
                       const struct store_result *res)
{
    struct evhttp_request *req = p->req;
    if (!req)
        return;
    srv_conn_forget(s, p->conn, p, NULL);
    if (r < 0) {
        srv_send_error(s, req, r, e);
        srv_observe(s, p->start);
        return;
    }
    struct sc_buf *b = &s->scratch;
    sc_buf_reset(b);
    switch (p->kind) {
    case R_PUT:
        sc_buf_printf(b, "{\"revision\":%lld", (long long)res->rev);
        if (res->nops && res->ops[0].nkvs) {
            sc_buf_put(b, ",\"prev_kv\":", 11);
            api_json_kv(b, &res->ops[0].kvs[0]);
        }
        sc_buf_put_u8(b, '}');
        break;
    case R_DELETE_KEY:
    case R_DELETE_PREFIX: {
        const struct store_op_result *o = &res->ops[0];
        sc_buf_printf(b, "{\"revision\":%lld,\"deleted\":%lld", (long long)res->rev,
                      (long long)o->count);
        if (o->nkvs) {
            sc_buf_put(b, ",\"prev_kvs\":[", 13);
            for (size_t i = 0; i < o->nkvs; i++) {
                if (i)
                    sc_buf_put_u8(b, ',');
                api_json_kv(b, &o->kvs[i]);
            }
            sc_buf_put_u8(b, ']');
        }
        sc_buf_put_u8(b, '}');
        break;
    }
    case R_TXN:
        api_json_txn_result(b, res);
        break;
    case R_LEASE_GRANT:
        sc_buf_printf(b, "{\"revision\":%lld,\"id\":%lld,\"ttl\":%lld}", (long long)res->rev,
                      (long long)res->lease_id, (long long)res->ttl_sec);
        break;
    case R_LEASE_REVOKE:
        sc_buf_printf(b, "{\"revision\":%lld}", (long long)res->rev);
        break;
    case R_COMPACT:
        sc_buf_printf(b, "{\"revision\":%lld,\"compacted\":%lld}", (long long)res->rev,
                      (long long)store_compact_rev(s->store));
        break;
    case R_OBJ:
        if (obj_answer(s, p, res, b) == 409) {
            srv_send_coded(s, req, 409, "revision_mismatch",
                           "the object changed while this write was in flight; read it again");
            srv_observe(s, p->start);
            return;
        }
        break;
    case R_JOIN:
        srv_join_applied(s, p, res);
        srv_observe(s, p->start);
        return;
    case R_INTERNAL:
    case R_MEMBER_ADDR:
    case R_SCHED:
        return;
    }
    srv_send_json(s, req, 200, b);
    srv_observe(s, p->start);
}

/* A proposal that will never be applied (or whose fate we stop waiting for). */
void srv_fail_proposal(struct srv *s, struct srv_proposal *p, int r, const char *why)
{
    if (p->kind == R_INTERNAL) {
        u64map_del(&s->revoking, (uint64_t)p->lease_id);
        s->compact_in_flight = false;
    }
    if (!p->req)
        return;
    struct sc_error e;
    sc_error_set(&e, r, NULL, "%s", why);
    srv_conn_forget(s, p->conn, p, NULL);
    srv_send_error(s, p->req, r, &e);
    srv_observe(s, p->start);
    p->req = NULL;
}

/* ---- linearizable reads ------------------------------------------------------------- */

static void read_remove(struct srv *s, struct srv_pread *pr)
{
    struct srv_pread **pp = &s->reads;
    while (*pp != pr)
        pp = &(*pp)->next;
    *pp = pr->next;
    s->nreads--;
    if (pr->req) {
        struct srv_conn *cs = u64map_get(&s->conns, (uint64_t)(uintptr_t)pr->conn);
        if (cs && cs->r == pr)
            cs->r = NULL;
    }
    free(pr);
}

void srv_read_fail(struct srv *s, struct srv_pread *pr, int r, const char *why)
{
    if (pr->req) {
        struct sc_error e;
        sc_error_set(&e, r, NULL, "%s", why);
        srv_send_error(s, pr->req, r, &e);
        srv_observe(s, pr->start);
    }
    read_remove(s, pr);
}

/* True when the caller may answer the read now: its ReadIndex is applied, or the
 * client asked for ?serializable=1.  Otherwise the request waits as a pread. */
bool srv_read_gate(struct srv *s, struct evhttp_request *req, const struct api_query *q)
{
    bool ser = false;
    struct sc_error e = {0};
    if (s->serve_local || api_query_bool(q, "serializable", &ser, &e) < 0 || ser)
        return true;
    if (s->nreads >= RAFT_MAX_READS) {
        sc_error_set(&e, -SC_E_NO_QUORUM, NULL, "%zu reads are already waiting; retry later",
                     s->nreads);
        srv_send_error(s, req, -SC_E_NO_QUORUM, &e);
        return false;
    }
    struct srv_pread *pr = xcalloc(1, sizeof(*pr));
    pr->req = req;
    pr->conn = evhttp_request_get_connection(req);
    pr->start = now_usec(CLOCK_MONOTONIC);
    struct srv_pread **pp = &s->reads;
    while (*pp)
        pp = &(*pp)->next;
    *pp = pr;
    s->nreads++;
    srv_conn_get(s, pr->conn)->r = pr;
    srv_drive(s);
    return false;
}

void srv_serve_reads(struct srv *s, const struct raft_update *u)
{
    for (size_t i = 0; i < u->n_reads; i++)
        for (struct srv_pread *pr = s->reads; pr; pr = pr->next)
            if (pr->ctx == u->reads[i].ctx && !pr->ready) {
                pr->ready = true;
                pr->index = u->reads[i].failed ? 0 : u->reads[i].index;
                if (u->reads[i].failed)
                    pr->ctx = UINT64_MAX; /* answered below */
                break;
            }
}

/* Answers every read whose index is applied (and fails the refused ones). */
void srv_answer_reads(struct srv *s)
{
    struct srv_pread *pr = s->reads;
    while (pr) {
        struct srv_pread *next = pr->next;
        if (pr->ready && pr->ctx == UINT64_MAX) {
            srv_read_fail(s, pr, -SC_E_NOT_LEADER,
                          "leadership changed while confirming this read; retry");
        } else if (pr->ready && pr->index <= s->applied_index) {
            struct evhttp_request *req = pr->req;
            read_remove(s, pr);
            if (req) {
                s->serve_local = true;
                srv_handle(req, s);
                s->serve_local = false;
            }
        }
        pr = next;
    }
}
