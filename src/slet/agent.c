/*
 * agent.c: `slet agent`, the node agent: registers the Node, keeps its
 * heartbeat key alive on a lease, lists and watches the node's Assignments and
 * hands each new or removed one to the instance code (agent_cell.c for a real
 * node, agent_sim.c for --simulate N).
 *
 *   slet agent --server URL --name NODE --data-dir DIR [--labels k=v,...]
 *              [--cpu 4] [--memory 8Gi] [--store DIR] [--trust DIR]
 *              [--listen IP:PORT] [--address IP] [--cell-net none|bridge|host]
 *              [--cgroup-parent NAME] [--grace SEC] [--lease-ttl SEC] [--simulate N]
 *   slet --server URL --name NODE --data-dir DIR ...      (the same)
 *
 * Design (one thread, one libevent loop; docs/slet.md)
 *   1. The instance table holds exactly the Assignments of the latest list plus
 *      the watch events after it, and the instances still stopping.  A lost
 *      watch (connection, cut-off, compaction) is followed by a new list, and
 *      whatever the list no longer has is removed: no event is trusted to have
 *      arrived.  A watch cut off with a resume_revision resumes without a list.
 *   2. The list's revision R starts the watch at R+1, so no change between the
 *      two is missed or applied twice (applying twice is harmless anyway: an
 *      ADDED for a known name is ignored).
 *   3. The heartbeat key lives on a lease (--lease-ttl, 1 s) kept alive every
 *      quarter of its TTL; a
 *      keepalive answered 404 means the lease expired: grant a new one and put
 *      the heartbeat(s) again.
 *   4. The state directory is read once, after the first successful list and
 *      before any Cell is made (slet_cell_recover), so a Cell left by an earlier
 *      run is cleaned before its successor starts: never two of one name.
 *
 *   list ──ok──> watching ──stream ends / error──> (backoff) ──> list
 *     └──fail──> (backoff) ──> list             └──resume_revision──> watching
 */
#include "slet/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "net/tls.h"
#include "slet/slet.h"

/* ---- small helpers -------------------------------------------------------------- */

uint64_t slet_hash(const char *s)
{
    return sc_str_hash(s);
}

void slet_iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct slet_inst *slet_inst_find(struct slet_agent *a, const char *name)
{
    for (struct slet_inst *in = u64map_get(&a->insts, slet_hash(name)); in; in = in->hnext)
        if (!strcmp(in->name, name))
            return in;
    return NULL;
}

static void inst_link(struct slet_agent *a, struct slet_inst *in)
{
    uint64_t h = slet_hash(in->name);
    in->hnext = u64map_get(&a->insts, h);
    u64map_put(&a->insts, h, in);
    a->n_insts++;
}

void slet_inst_unlink(struct slet_agent *a, struct slet_inst *in)
{
    uint64_t h = slet_hash(in->name);
    struct slet_inst *head = u64map_get(&a->insts, h), **pp = &head;
    while (*pp && *pp != in)
        pp = &(*pp)->hnext;
    if (!*pp)
        return;
    *pp = in->hnext;
    if (head)
        u64map_put(&a->insts, h, head);
    else
        u64map_del(&a->insts, h);
    a->n_insts--;
}

static int copy_str(char *dst, size_t len, const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) >= len)
        return -SC_E_INVALID;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int slet_assignment_parse(const json_t *obj, struct slet_inst *in)
{
    const json_t *md = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    if (copy_str(in->name, sizeof(in->name), json_object_get(md, "name")) < 0 ||
        copy_str(in->node, sizeof(in->node), json_object_get(spec, "node")) < 0 ||
        copy_str(in->revision, sizeof(in->revision), json_object_get(spec, "revision")) < 0)
        return -SC_E_INVALID;
    if (copy_str(in->deployment, sizeof(in->deployment), json_object_get(spec, "deployment")) < 0)
        in->deployment[0] = '\0';
    return 0;
}

json_t *slet_instance_status(const struct slet_inst *in)
{
    json_t *st = json_pack("{s:s, s:b, s:i}", "phase", in->phase, "ready", in->ready, "restarts",
                           (json_int_t)in->restarts);
    if (in->exit_code >= 0)
        json_object_set_new(st, "exitCode", json_integer(in->exit_code));
    if (in->reason[0])
        json_object_set_new(st, "reason", json_string(in->reason));
    if (in->started_at[0])
        json_object_set_new(st, "startedAt", json_string(in->started_at));
    json_t *addrs = json_array();
    struct cell_status cs;
    if (in->cell) {
        cell_status(in->cell, &cs);
        if (cs.ip[0])
            json_array_append_new(addrs, json_string(cs.ip));
    }
    if (!json_array_size(addrs) && in->a->o.address)
        json_array_append_new(addrs, json_string(in->a->o.address));
    json_object_set_new(st, "addresses", addrs);
    return st;
}

json_t *slet_instance_object(const struct slet_inst *in, bool with_status)
{
    json_t *labels = json_pack("{s:s}", "node", in->node);
    if (in->deployment[0])
        json_object_set_new(labels, "deployment", json_string(in->deployment));
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:o}, s:{s:s, s:s, s:s}}", "apiVersion", "v1", "kind",
                          "Instance", "metadata", "name", in->name, "labels", labels, "spec",
                          "assignment", in->name, "node", in->node, "revision", in->revision);
    if (with_status)
        json_object_set_new(o, "status", slet_instance_status(in));
    return o;
}

/* ---- machine facts -------------------------------------------------------------- */

static uint64_t mem_total_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %" SCNu64 " kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* The first non-loopback IPv4 address, else 127.0.0.1. */
static void first_address(char out[INET_ADDRSTRLEN])
{
    struct ifaddrs *ifa = NULL;
    snprintf(out, INET_ADDRSTRLEN, "127.0.0.1");
    if (getifaddrs(&ifa) < 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && strcmp(i->ifa_name, "lo") != 0) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out,
                      INET_ADDRSTRLEN);
            break;
        }
    freeifaddrs(ifa);
}

/* ---- registration, lease, heartbeat ------------------------------------------- */

static void schedule_relist(struct slet_agent *a, bool resume);

/* HOST:PORT of the controller the client talks to now (one of --server's list,
 * sc_client_new checked the form), for libevent's connections (the watch). */
static const char *after_scheme(const char *url)
{
    const char *p = strstr(url, "://");
    return p ? p + 3 : url;
}

static void server_addr(struct slet_agent *a)
{
    snprintf(a->host_port, sizeof(a->host_port), "%s", after_scheme(sc_client_server(a->api)));
    a->host_port[strcspn(a->host_port, "/")] = '\0';
    snprintf(a->server_host, sizeof(a->server_host), "%s", a->host_port);
    char *colon = strrchr(a->server_host, ':');
    *colon = '\0';
    a->server_port = atoi(colon + 1);
}

static int client_call(struct sc_client *c, const char *method, const char *path, json_t *body,
                       struct sc_reply *r, struct sc_error *e)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = sc_client_do(c, method, path, text, text ? strlen(text) : 0, r, e);
    free(text);
    if (rc >= 0 && (r->status < 200 || r->status >= 300))
        rc = sc_error_set(e, r->status == 404 ? -SC_E_NOT_FOUND : -EPROTO, r->field,
                          "%s %s: HTTP %ld %s: %s", method, path, r->status, r->code, r->message);
    return rc;
}

static int api_call(struct slet_agent *a, const char *method, const char *path, json_t *body,
                    struct sc_reply *r, struct sc_error *e)
{
    return client_call(a->api, method, path, body, r, e);
}

json_t *slet_node_object(struct slet_agent *a, const char *node)
{
    uint64_t cpu =
        a->o.cpu_millis ? a->o.cpu_millis : (uint64_t)sysconf(_SC_NPROCESSORS_ONLN) * 1000;
    uint64_t mem = a->o.memory_bytes ? a->o.memory_bytes : mem_total_bytes();
    /* What the agent and the node's own processes need: 100m and 5 % of memory
     * (at most 256 MiB), kept out of what the scheduler may hand out. */
    uint64_t cpu_res = a->o.simulate ? 0 : MIN(cpu / 10, 100);
    uint64_t mem_res = a->o.simulate ? 0 : MIN(mem / 20, 256ull << 20);
    json_t *labels = json_object();
    if (a->o.labels) {
        char *dup = xstrdup(a->o.labels), *save = NULL;
        for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                json_object_set_new(labels, kv, json_string(eq + 1));
            }
        }
        free(dup);
    }
    json_t *spec = json_pack(
        "{s:[s], s:{s:I, s:I}, s:{s:I, s:I}}", "addresses", a->o.address, "capacity", "cpuMillis",
        (json_int_t)cpu, "memoryBytes", (json_int_t)mem, "allocatable", "cpuMillis",
        (json_int_t)(cpu - cpu_res), "memoryBytes", (json_int_t)(mem - mem_res));
    return json_pack("{s:s, s:s, s:{s:s, s:o}, s:o}", "apiVersion", "v1", "kind", "Node",
                     "metadata", "name", node, "labels", labels, "spec", spec);
}

static int register_node(struct slet_agent *a, const char *node, struct sc_error *e)
{
    if (a->o.simulate)
        return slet_sim_register(a, e);
    json_t *o = slet_node_object(a, node);
    char path[128];
    snprintf(path, sizeof(path), "/v1/nodes/%s", node);
    struct sc_reply r = {0};
    int rc = api_call(a, "PUT", path, o, &r, e);
    json_decref(o);
    if (rc >= 0 && a->logs_url[0]) {
        /* The logs endpoint is the agent's to report, like a kubelet's port:
         * Node status.logs (the Node schema keeps status as it is given). */
        o = json_pack("{s:{s:s}}", "status", "logs", a->logs_url);
        snprintf(path, sizeof(path), "/v1/nodes/%s/status", node);
        rc = api_call(a, "PUT", path, o, &r, e);
        json_decref(o);
    }
    sc_reply_free(&r);
    return rc;
}

static void heartbeat_path(struct sc_buf *b, const char *node)
{
    char key[128];
    snprintf(key, sizeof(key), "/registry/heartbeats/%s", node);
    sc_buf_reset(b);
    sc_buf_printf(b, "/v1/kv/");
    sc_client_escape(b, key, 0);
}

/* The heartbeat value: who and where the node's logs are. */
static char *heartbeat_value(struct slet_agent *a, const char *node)
{
    json_t *v = json_pack("{s:s, s:s}", "node", node, "logs", a->logs_url);
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static int put_heartbeats(struct slet_agent *a, struct sc_client *c, struct sc_error *e)
{
    if (a->o.simulate)
        return slet_sim_heartbeats(a, e);
    struct sc_buf p = {0};
    heartbeat_path(&p, a->nodes[0]);
    sc_buf_printf(&p, "?lease=%" PRId64, a->lease_id);
    sc_buf_put_u8(&p, 0);
    char *v = heartbeat_value(a, a->nodes[0]);
    struct sc_reply r = {0};
    int rc = sc_client_do(c, "PUT", (const char *)p.data, v, strlen(v), &r, e);
    if (rc >= 0 && r.status != 200)
        rc = sc_error_set(e, -EPROTO, NULL, "heartbeat: HTTP %ld %s", r.status, r.message);
    sc_reply_free(&r);
    sc_buf_free(&p);
    free(v);
    return rc;
}

static int grant_lease(struct slet_agent *a, struct sc_client *c, struct sc_error *e)
{
    json_t *body = json_pack("{s:i}", "ttl", (json_int_t)a->o.lease_ttl_sec);
    struct sc_reply r = {0};
    int rc = client_call(c, "POST", "/v1/leases", body, &r, e);
    json_decref(body);
    if (rc >= 0) {
        json_t *j = json_loads(sc_reply_text(&r), 0, NULL);
        a->lease_id = json_integer_value(json_object_get(j, "id"));
        json_decref(j);
        if (!a->lease_id)
            rc = sc_error_set(e, -EPROTO, NULL, "lease grant: no id in %s", sc_reply_text(&r));
    }
    sc_reply_free(&r);
    if (rc >= 0)
        rc = put_heartbeats(a, c, e);
    return rc;
}

/* One heartbeat through client c: keep the lease alive, or grant a new one and
 * put the heartbeat key(s) again when it is gone (or there is none yet). */
static void heartbeat_once(struct slet_agent *a, struct sc_client *c)
{
    struct sc_error e = {0};
    int rc = 0;
    if (!a->lease_id) {
        rc = grant_lease(a, c, &e);
    } else {
        char path[96];
        snprintf(path, sizeof(path), "/v1/leases/%" PRId64 "/keepalive", a->lease_id);
        struct sc_reply r = {0};
        rc = sc_client_do(c, "POST", path, NULL, 0, &r, &e);
        if (rc >= 0 && r.status == 404) {
            log_warn("msg=\"lease lost, granting a new one\" lease=%" PRId64, a->lease_id);
            a->lease_id = 0;
            rc = grant_lease(a, c, &e);
        } else if (rc >= 0 && r.status != 200) {
            rc = sc_error_set(&e, -EPROTO, NULL, "keepalive: HTTP %ld %s", r.status, r.message);
        }
        sc_reply_free(&r);
    }
    if (rc < 0)
        log_warn("msg=\"heartbeat failed\" err=\"%s\"", e.msg);
}

/* A real node's heartbeat thread: a keepalive every quarter of the TTL, on its
 * own client; it alone touches a->lease_id while it runs. */
static void *heartbeat_thread(void *arg)
{
    struct slet_agent *a = arg;
    usec_t every = a->o.lease_ttl_sec * USEC_PER_SEC / 4, renew_checked = 0;
    while (!atomic_load(&a->hb_quit)) {
        usec_t t0 = now_usec(CLOCK_MONOTONIC);
        heartbeat_once(a, a->hb_api);
        /* the node certificate: renewed once 2/3 of its lifetime passed (checked
         * every 10 s; a failure is retried at the next check) */
        if (a->tls && t0 - renew_checked >= 10 * USEC_PER_SEC) {
            struct sc_error e = {0};
            renew_checked = t0;
            if (slet_renew_if_due(a, a->hb_api, &e) < 0)
                log_warn("msg=\"renewing the node certificate failed\" error=\"%s\"", e.msg);
        }
        while (!atomic_load(&a->hb_quit) && now_usec(CLOCK_MONOTONIC) - t0 < every) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct slet_agent *a = arg;
    if (a->o.simulate)
        heartbeat_once(a, a->api);
    /* the client moved to another controller: the watch follows it */
    char now_at[sizeof(a->host_port)];
    snprintf(now_at, sizeof(now_at), "%s", after_scheme(sc_client_server(a->api)));
    now_at[strcspn(now_at, "/")] = '\0';
    if (a->listed && strcmp(now_at, a->host_port) != 0) {
        log_info("msg=\"following another controller\" server=%s", now_at);
        schedule_relist(a, true);
    }
    if (!a->o.simulate) /* a status write that failed earlier is retried here */
        slet_cell_retry_status(a);
    usec_t every = a->o.lease_ttl_sec * USEC_PER_SEC / 4;
    struct timeval tv = {.tv_sec = (time_t)(every / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(every % USEC_PER_SEC)};
    evtimer_add(a->ev_keepalive, &tv);
}

/* ---- list + watch ------------------------------------------------------------------ */

static bool node_is_ours(struct slet_agent *a, const char *node)
{
    return u64map_get(&a->node_set, slet_hash(node)) != NULL &&
           (a->o.simulate || !strcmp(node, a->nodes[0]));
}

/* An Assignment that is (still) ours. */
static void ensure_inst(struct slet_agent *a, const json_t *obj)
{
    struct slet_inst tmp = {0};
    if (slet_assignment_parse(obj, &tmp) < 0) {
        log_warn("msg=\"ignoring an Assignment without name, node or revision\"");
        return;
    }
    if (!node_is_ours(a, tmp.node))
        return;
    struct slet_inst *in = slet_inst_find(a, tmp.name);
    if (in) {
        in->seen = true;
        return;
    }
    in = xcalloc(1, sizeof(*in));
    *in = tmp;
    in->a = a;
    in->seen = true;
    in->exit_code = -1;
    snprintf(in->phase, sizeof(in->phase), "pending");
    inst_link(a, in);
    if (a->o.simulate)
        slet_sim_add(a, in);
    else
        slet_cell_add(a, in);
}

static void drop_inst(struct slet_agent *a, const char *name)
{
    struct slet_inst *in = slet_inst_find(a, name);
    if (!in)
        return;
    if (a->o.simulate)
        slet_sim_remove(a, in);
    else
        slet_cell_remove(a, in);
}

static void schedule_relist(struct slet_agent *a, bool resume)
{
    if (!resume)
        a->listed = false;
    usec_t d = resume ? 0 : a->relist_backoff_usec;
    a->relist_backoff_usec =
        MIN(MAX(a->relist_backoff_usec * 2, 100 * USEC_PER_MSEC), 5 * USEC_PER_SEC);
    struct timeval tv = {.tv_sec = (time_t)(d / USEC_PER_SEC),
                         .tv_usec = (suseconds_t)(d % USEC_PER_SEC)};
    evtimer_add(a->ev_relist, &tv);
}

static void watch_line(struct slet_agent *a, const char *line, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    if (!j) {
        log_warn("msg=\"unreadable watch line\" err=\"%s\"", je.text);
        return;
    }
    const json_t *err = json_object_get(j, "error");
    if (err) {
        json_int_t resume = json_integer_value(json_object_get(err, "resume_revision"));
        const char *code = json_string_value(json_object_get(err, "code"));
        log_warn("msg=\"watch ended by the server\" code=%s resume=%lld", code ? code : "?",
                 (long long)resume);
        if (resume > 0 && (!code || strcmp(code, "compacted") != 0)) {
            a->watch_rev = (uint64_t)resume;
            a->relist_backoff_usec = 0;
        } else {
            a->listed = false;
        }
    } else if (json_object_get(j, "created")) {
        a->relist_backoff_usec = 0; /* a watch that got going resets the backoff */
    } else if (json_object_get(j, "progress")) {
        /* everything up to this revision was sent: a resume may start after it */
        json_int_t rev = json_integer_value(json_object_get(j, "revision"));
        if (rev > 0 && (uint64_t)rev >= a->watch_rev)
            a->watch_rev = (uint64_t)rev + 1;
    } else {
        const char *type = json_string_value(json_object_get(j, "type"));
        const json_t *obj = json_object_get(j, "object");
        json_int_t rev = json_integer_value(json_object_get(j, "revision"));
        if (rev > 0 && (uint64_t)rev >= a->watch_rev)
            a->watch_rev = (uint64_t)rev + 1;
        if (type && !strcmp(type, "DELETED")) {
            const char *name =
                json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
            if (name)
                drop_inst(a, name);
        } else if (type) {
            ensure_inst(a, obj);
        }
    }
    json_decref(j);
}

static void watch_chunk(struct evhttp_request *req, void *arg)
{
    struct slet_agent *a = arg;
    if (evhttp_request_get_response_code(req) != 200)
        return; /* the error body is read in watch_done */
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n;
    while ((n = evbuffer_get_length(in)) > 0) {
        sc_buf_reserve(&a->watch_line, n);
        int got = evbuffer_remove(in, a->watch_line.data + a->watch_line.len, n);
        if (got <= 0)
            break;
        a->watch_line.len += (size_t)got;
    }
    size_t start = 0;
    for (size_t i = 0; i < a->watch_line.len; i++)
        if (a->watch_line.data[i] == '\n') {
            if (i > start)
                watch_line(a, (const char *)a->watch_line.data + start, i - start);
            start = i + 1;
        }
    memmove(a->watch_line.data, a->watch_line.data + start, a->watch_line.len - start);
    a->watch_line.len -= start;
    if (a->o.simulate && slet_sim_pending(a))
        event_active(a->ev_sim_flush, EV_TIMEOUT, 0);
}

static void watch_done(struct evhttp_request *req, void *arg)
{
    struct slet_agent *a = arg;
    a->watch_req = NULL;
    if (a->quitting)
        return;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code != 200)
        log_warn("msg=\"watch failed\" status=%d", code);
    else
        log_info("msg=\"watch ended\" next_rev=%" PRIu64, a->watch_rev);
    if (code == 410)
        a->listed = false;
    schedule_relist(a, a->listed && code == 200);
}

static void watch_error(enum evhttp_request_error err, void *arg)
{
    struct slet_agent *a = arg;
    a->watch_req = NULL;
    if (a->quitting)
        return;
    log_warn("msg=\"watch connection lost\" err=%d", (int)err);
    schedule_relist(a, false);
}

static void selector_query(struct slet_agent *a, struct sc_buf *b)
{
    if (a->o.simulate)
        return; /* one watch of all Assignments, filtered here by node */
    char sel[96];
    snprintf(sel, sizeof(sel), "node=%s", a->nodes[0]);
    sc_buf_printf(b, "selector=");
    sc_client_escape(b, sel, 0);
}

static int watch_start(struct slet_agent *a)
{
    server_addr(a); /* the controller the requests go to now */
    if (a->watch_conn)
        evhttp_connection_free(a->watch_conn);
    if (a->tls) {
        /* a fresh context for each watch: it loads node.crt as renewed since */
        struct sc_error e = {0};
        struct net_tls_files wf = {.ca = a->pki.ca, .cert = a->pki.cert, .key = a->pki.key};
        SSL_CTX *fresh = NULL;
        if (net_tls_client_ctx_new(&wf, PKI_ROLE_CONTROLLER, &fresh, &e) == 0) {
            SSL_CTX_free(a->watch_tls); /* a connection still using it holds a reference */
            a->watch_tls = fresh;
        } else {
            log_warn("msg=\"cannot reload the node certificate\" error=\"%s\"", e.msg);
        }
        a->watch_conn = net_tls_evhttp_connection_new(a->base, a->watch_tls, a->server_host,
                                                      (uint16_t)a->server_port, &e);
        if (!a->watch_conn)
            log_warn("msg=\"cannot open the watch\" error=\"%s\"", e.msg);
    } else {
        a->watch_conn = evhttp_connection_base_new(a->base, NULL, a->server_host,
                                                   (unsigned short)a->server_port);
    }
    if (!a->watch_conn)
        return -ENOMEM;
    /* sctld sends a progress line on a quiet watch every 10 s: 45 s of silence
     * means a dead server or a cut path, and the watch is started afresh */
    struct timeval tv = {.tv_sec = 45};
    evhttp_connection_set_timeout_tv(a->watch_conn, &tv);
    struct evhttp_request *req = evhttp_request_new(watch_done, a);
    evhttp_request_set_chunked_cb(req, watch_chunk);
    evhttp_request_set_error_cb(req, watch_error);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", a->host_port);
    struct sc_buf p = {0};
    sc_buf_printf(&p, "/v1/assignments?watch=1&rev=%" PRIu64 "&", a->watch_rev);
    selector_query(a, &p);
    sc_buf_put_u8(&p, 0);
    a->watch_line.len = 0;
    int r = evhttp_make_request(a->watch_conn, req, EVHTTP_REQ_GET, (const char *)p.data);
    sc_buf_free(&p);
    if (r < 0)
        return -EIO;
    a->watch_req = req;
    return 0;
}

/* Lists the Assignments, reconciles the table with them, starts the watch. */
static int relist(struct slet_agent *a, struct sc_error *e)
{
    struct sc_buf p = {0};
    sc_buf_printf(&p, "/v1/assignments?");
    selector_query(a, &p);
    sc_buf_put_u8(&p, 0);
    struct sc_reply r = {0};
    int rc = api_call(a, "GET", (const char *)p.data, NULL, &r, e);
    sc_buf_free(&p);
    json_t *list = NULL;
    if (rc >= 0) {
        json_error_t je;
        list = json_loadb((const char *)r.body.data, r.body.len, 0, &je);
        if (!json_is_array(json_object_get(list, "items")))
            rc = sc_error_set(e, -EPROTO, NULL, "assignment list: %s", je.text);
    }
    sc_reply_free(&r);
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    const json_t *items = json_object_get(list, "items");
    if (!a->host) {
        if (!a->o.simulate) {
            /* Before any Cell of this run exists: end what an earlier run left. */
            struct u64map assigned = {0};
            for (size_t i = 0; i < json_array_size(items); i++) {
                struct slet_inst tmp = {0};
                if (slet_assignment_parse(json_array_get(items, i), &tmp) >= 0 &&
                    node_is_ours(a, tmp.node))
                    u64map_put(&assigned, slet_hash(tmp.name), (void *)1);
            }
            slet_cell_recover(a, &assigned);
            u64map_done(&assigned);
        }
        struct cell_host_config hc = {.backend = a->o.simulate ? "sim" : "linux",
                                      .cgroup_parent = a->o.cgroup_parent,
                                      .bridge = a->o.bridge,
                                      .net_addr_be = a->o.cell_net_be,
                                      .net_prefix = a->o.cell_prefix};
        if ((rc = cell_host_new(&hc, &a->host, e)) < 0) {
            json_decref(list);
            return rc;
        }
    }
    /* mark, then sweep what the list no longer has */
    struct slet_inst **all = xcalloc(a->n_insts + 1, sizeof(*all));
    size_t n = 0;
    uint64_t k;
    void *v;
    for (size_t it = 0; u64map_next(&a->insts, &it, &k, &v);)
        for (struct slet_inst *in = v; in; in = in->hnext) {
            in->seen = false;
            all[n++] = in;
        }
    /* what the list still has is marked first, so that what it lost (moved
     * away while this node was cut off, their generation stale) is stopped
     * before anything new starts */
    for (size_t i = 0; i < json_array_size(items); i++) {
        const char *nm = json_string_value(
            json_object_get(json_object_get(json_array_get(items, i), "metadata"), "name"));
        struct slet_inst *in = nm ? slet_inst_find(a, nm) : NULL;
        if (in && node_is_ours(a, in->node))
            in->seen = true;
    }
    for (size_t i = 0; i < n; i++)
        if (!all[i]->seen && all[i]->st != INST_STOPPING)
            drop_inst(a, all[i]->name);
    for (size_t i = 0; i < json_array_size(items); i++)
        ensure_inst(a, json_array_get(items, i));
    free(all);
    a->watch_rev = (uint64_t)json_integer_value(json_object_get(list, "revision")) + 1;
    json_decref(list);
    a->listed = true;
    log_info("msg=\"listed assignments\" instances=%zu watch_from=%" PRIu64, a->n_insts,
             a->watch_rev);
    if (a->o.simulate && slet_sim_pending(a))
        event_active(a->ev_sim_flush, EV_TIMEOUT, 0);
    return 0;
}

static void on_relist(evutil_socket_t fd, short what, void *arg)
{
    struct slet_agent *a = arg;
    struct sc_error e = {0};
    int rc = 0;
    if (!a->listed)
        rc = relist(a, &e);
    if (rc >= 0)
        rc = watch_start(a);
    if (rc < 0) {
        char why[sizeof(e.msg)]; /* a copy: gcc -O3 takes the ternary for a dangling pointer */
        snprintf(why, sizeof(why), "%s", e.msg[0] ? e.msg : strerror(-rc));
        log_warn("msg=\"listing assignments failed\" err=\"%s\"", why);
        schedule_relist(a, false);
    }
}

/* ---- main ---------------------------------------------------------------------- */

static void on_quit(evutil_socket_t sig, short what, void *arg)
{
    struct slet_agent *a = arg;
    log_info("msg=\"stopping\" signal=%d", (int)sig);
    a->quitting = true;
    event_base_loopbreak(a->base);
}

static const char usage_text[] =
    "usage: slet agent --server URL --name NODE --data-dir DIR [--labels k=v,...]\n"
    "                  [--cpu 4] [--memory 8Gi] [--store DIR] [--trust DIR]\n"
    "                  [--listen IP:PORT] [--address IP] [--cell-net none|bridge|host]\n"
    "                  [--bridge NAME] [--cell-range CIDR] [--cgroup-parent NAME]\n"
    "                  [--grace SEC] [--lease-ttl SEC] [--simulate N]\n"
    "                  [--join URL[,URL] --token ID.SECRET --ca-hash sha256:HEX]\n"
    "                  [--pki-dir DIR]   (https:// servers: DIR/ca.crt, node.crt, node.key;\n"
    "                                     default DATA/pki)\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "slet agent: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

static int parse_opts(int argc, char **argv, struct slet_opts *o)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'},
        {"data-dir", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"cpu", required_argument, NULL, 'c'},
        {"memory", required_argument, NULL, 'm'},
        {"store", required_argument, NULL, 'S'},
        {"trust", required_argument, NULL, 'T'},
        {"listen", required_argument, NULL, 'L'},
        {"address", required_argument, NULL, 'A'},
        {"cell-net", required_argument, NULL, 'N'},
        {"cgroup-parent", required_argument, NULL, 'C'},
        {"grace", required_argument, NULL, 'g'},
        {"lease-ttl", required_argument, NULL, 'E'},
        {"simulate", required_argument, NULL, 'M'},
        {"bridge", required_argument, NULL, 'B'},
        {"log-level", required_argument, NULL, 'v'},
        {"cell-range", required_argument, NULL, 'R'},
        {"join", required_argument, NULL, 'J'},
        {"token", required_argument, NULL, 'K'},
        {"ca-hash", required_argument, NULL, 'H'},
        {"pki-dir", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    *o = (struct slet_opts){
        .net = CELL_NET_NONE, .grace_usec = 10 * USEC_PER_SEC, .lease_ttl_sec = SLET_LEASE_TTL_SEC};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->server = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'd':
            o->data_dir = optarg;
            break;
        case 'l':
            o->labels = optarg;
            break;
        case 'c':
            if (cell_parse_cpu(optarg, &o->cpu_millis) < 0 || !o->cpu_millis)
                return usage_error("bad --cpu \"%s\" (4, 500m)", optarg);
            break;
        case 'm':
            if (cell_parse_bytes(optarg, &o->memory_bytes) < 0 || !o->memory_bytes)
                return usage_error("bad --memory \"%s\" (8Gi, 512Mi)", optarg);
            break;
        case 'S':
            o->store_dir = optarg;
            break;
        case 'T':
            o->trust_dir = optarg;
            break;
        case 'L':
            o->listen = optarg;
            break;
        case 'A':
            o->address = optarg;
            break;
        case 'N':
            if (!strcmp(optarg, "none"))
                o->net = CELL_NET_NONE;
            else if (!strcmp(optarg, "bridge"))
                o->net = CELL_NET_BRIDGE;
            else if (!strcmp(optarg, "host"))
                o->net = CELL_NET_HOST;
            else
                return usage_error("bad --cell-net \"%s\" (none, bridge, host)", optarg);
            break;
        case 'C':
            o->cgroup_parent = optarg;
            break;
        case 'g':
            o->grace_usec = (usec_t)(strtod(optarg, NULL) * USEC_PER_SEC);
            break;
        case 'E': {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end || n == 0 || n > 3600)
                return usage_error("bad --lease-ttl \"%s\" (1..3600 seconds)", optarg);
            o->lease_ttl_sec = (unsigned)n;
            break;
        }
        case 'M': {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end || n == 0 || n > 100000)
                return usage_error("bad --simulate \"%s\" (1..100000 nodes)", optarg);
            o->simulate = (unsigned)n;
            break;
        }
        case 'B':
            o->bridge = optarg;
            break;
        case 'J':
            o->join = optarg;
            break;
        case 'K':
            o->token = optarg;
            break;
        case 'H':
            o->ca_hash = optarg;
            break;
        case 'P':
            o->pki_dir = optarg;
            break;
        case 'R': { /* 10.89.0.0/24: the Cells' addresses on the bridge */
            char ip[32];
            unsigned prefix = 0;
            struct in_addr a4;
            if (sscanf(optarg, "%31[0-9.]/%u", ip, &prefix) != 2 || prefix < 16 || prefix > 30 ||
                inet_pton(AF_INET, ip, &a4) != 1)
                return usage_error("bad --cell-range \"%s\" (an IPv4 network /16../30, like "
                                   "10.88.0.0/24)",
                                   optarg);
            uint32_t mask = htonl(~0u << (32 - prefix));
            if (a4.s_addr & ~mask)
                return usage_error("--cell-range \"%s\": host bits are set (the network is %s/%u?)",
                                   optarg, inet_ntoa((struct in_addr){a4.s_addr & mask}), prefix);
            o->cell_net_be = a4.s_addr;
            o->cell_prefix = (uint8_t)prefix;
            break;
        }
        case 'v': {
            int l = log_parse_level(optarg);
            if (l < 0)
                return usage_error("bad --log-level \"%s\"", optarg);
            log_set_level((enum log_level)l);
            break;
        }
        default:
            return usage_error("%s", "see usage");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!o->server || !o->name || !o->data_dir)
        return usage_error("%s", "--server, --name and --data-dir are required");
    if (o->join && (!o->token || !o->ca_hash))
        return usage_error("%s", "--join needs --token ID.SECRET and --ca-hash sha256:HEX "
                                 "(both printed for the operator: sctl token create, and the "
                                 "controller's log line 'cluster CA ... ca_hash=')");
    if ((o->token || o->ca_hash) && !o->join)
        return usage_error("%s", "--token and --ca-hash go with --join URL");
    bool https = !strncmp(o->server, "https://", 8);
    if (o->simulate && (https || o->join))
        return usage_error("%s", "--simulate speaks plain HTTP (no --join, no https://)");
    size_t nl = strlen(o->name);
    bool ok = nl > 0 && nl <= (o->simulate ? 56 : SLET_NAME_MAX) && o->name[0] != '-' &&
              o->name[nl - 1] != '-';
    for (size_t i = 0; ok && i < nl; i++)
        ok = (o->name[i] >= 'a' && o->name[i] <= 'z') || (o->name[i] >= '0' && o->name[i] <= '9') ||
             o->name[i] == '-';
    if (!ok)
        return usage_error("--name \"%s\": a DNS label (a-z, 0-9, '-', at most 63)", o->name);
    return 0;
}

int slet_agent_main(int argc, char **argv)
{
    struct slet_agent a = {0};
    if (parse_opts(argc, argv, &a.o) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    static char addr[INET_ADDRSTRLEN];
    if (!a.o.address) {
        first_address(addr);
        a.o.address = addr;
    }
    char cgparent[96];
    if (!a.o.cgroup_parent) {
        snprintf(cgparent, sizeof(cgparent), "slet-%s", a.o.name);
        a.o.cgroup_parent = cgparent;
    }
    struct sc_error e = {0};
    int rc = sc_mkdir_p(a.o.data_dir);
    if (rc < 0) {
        fprintf(stderr, "slet agent: data dir %s: %s\n", a.o.data_dir, strerror(-rc));
        return 1;
    }
    slet_pki_paths(&a, &a.pki);
    a.tls = !strncmp(a.o.server, "https://", 8);
    if (a.o.join) {
        if ((rc = slet_join(&a, &e)) < 0) {
            fprintf(stderr, "slet agent: join: %s\n", e.msg);
            return 1;
        }
    }
    if (a.tls) {
        struct net_tls_files wf = {.ca = a.pki.ca, .cert = a.pki.cert, .key = a.pki.key};
        if ((rc = net_tls_client_ctx_new(&wf, PKI_ROLE_CONTROLLER, &a.watch_tls, &e)) < 0) {
            fprintf(stderr, "slet agent: TLS (%s): %s\n", a.pki.dir, e.msg);
            return 1;
        }
    }
    struct sc_client_opts co = {.server = a.o.server,
                                .connect_timeout_ms = 1000,
                                .timeout_ms = 30000,
                                .ca = a.tls ? a.pki.ca : NULL,
                                .cert = a.tls ? a.pki.cert : NULL,
                                .key = a.tls ? a.pki.key : NULL};
    if ((rc = sc_client_new(&co, &a.api, &e)) < 0) {
        fprintf(stderr, "slet agent: %s\n", e.msg);
        return 2;
    }
    /* the heartbeat's: a keepalive stuck on one controller (a forward to a leader
     * that went away, a connection that died in a partition) is sent to the
     * next one after half the TTL, while the lease still holds */
    struct sc_client_opts hbo = {.server = a.o.server,
                                 .connect_timeout_ms = 300,
                                 .timeout_ms = (long)a.o.lease_ttl_sec * 500,
                                 .idempotent = true,
                                 .ca = co.ca,
                                 .cert = co.cert,
                                 .key = co.key};
    if (!a.o.simulate && (rc = sc_client_new(&hbo, &a.hb_api, &e)) < 0) {
        fprintf(stderr, "slet agent: %s\n", e.msg);
        return 2;
    }
    server_addr(&a);

    /* the node names: NODE, or NODE-0 .. NODE-(N-1) */
    a.n_nodes = a.o.simulate ? a.o.simulate : 1;
    a.nodes = xcalloc(a.n_nodes, sizeof(*a.nodes));
    for (size_t i = 0; i < a.n_nodes; i++) {
        char nm[96];
        if (a.o.simulate)
            snprintf(nm, sizeof(nm), "%s-%zu", a.o.name, i);
        else
            snprintf(nm, sizeof(nm), "%s", a.o.name);
        a.nodes[i] = xstrdup(nm);
        u64map_put(&a.node_set, slet_hash(nm), (void *)1);
    }

    a.base = event_base_new();
    a.ev_keepalive = evtimer_new(a.base, on_keepalive, &a);
    a.ev_relist = evtimer_new(a.base, on_relist, &a);
    a.ev_sigint = evsignal_new(a.base, SIGINT, on_quit, &a);
    a.ev_sigterm = evsignal_new(a.base, SIGTERM, on_quit, &a);
    if (!a.o.simulate && (rc = slet_cell_setup(&a, &e)) < 0) {
        fprintf(stderr, "slet agent: %s\n", e.msg);
        return 1;
    }
    if (a.o.listen && (rc = slet_logs_start(&a, &e)) < 0) {
        fprintf(stderr, "slet agent: logs endpoint %s: %s\n", a.o.listen, e.msg);
        return 1;
    }

    /* Register (retried until the server answers) */
    usec_t t0 = now_usec(CLOCK_MONOTONIC);
    for (size_t i = 0; i < a.n_nodes;) {
        rc = register_node(&a, a.nodes[i], &e);
        if (rc >= 0) {
            i = a.o.simulate ? a.n_nodes : i + 1; /* --simulate: all at once */
            continue;
        }
        log_warn("msg=\"registering the node failed, retrying\" node=%s err=\"%s\"", a.nodes[i],
                 e.msg);
        if (rc != -ECONNREFUSED && rc != -ETIMEDOUT && rc != -EHOSTUNREACH && rc != -EIO &&
            rc != -EPROTO) {
            fprintf(stderr, "slet agent: %s\n", e.msg);
            return 1;
        }
        sleep(1);
    }
    log_info("msg=\"registered\" nodes=%zu ms=%llu address=%s logs=%s", a.n_nodes,
             (unsigned long long)((now_usec(CLOCK_MONOTONIC) - t0) / 1000), a.o.address,
             a.logs_url[0] ? a.logs_url : "-");
    /* Signals end the loop from here on; until now (registration retries, no
     * Cell yet) their default action ends the agent. */
    event_add(a.ev_sigint, NULL);
    event_add(a.ev_sigterm, NULL);
    if (!a.o.simulate) {
        /* the first heartbeat here (the node is Ready before its first list),
         * then the thread keeps it */
        heartbeat_once(&a, a.hb_api);
        if (pthread_create(&a.hb_thread, NULL, heartbeat_thread, &a) != 0) {
            fprintf(stderr, "slet agent: cannot start the heartbeat thread\n");
            return 1;
        }
        a.hb_started = true;
    }
    on_keepalive(-1, 0, &a); /* --simulate: grants the lease and puts the heartbeats */
    on_relist(-1, 0, &a);

    event_base_dispatch(a.base);

    /* Shutdown: Cells are torn down (they would die with us anyway, docs/slet.md);
     * state files and Instance objects stay for the next run to pick up. */
    a.quitting = true;
    if (a.hb_started) {
        atomic_store(&a.hb_quit, true);
        pthread_join(a.hb_thread, NULL);
    }
    if (a.watch_conn)
        evhttp_connection_free(a.watch_conn);
    a.watch_conn = NULL;
    slet_logs_stop(&a);
    if (a.o.simulate)
        slet_sim_flush(&a, true);
    else
        slet_cell_shutdown(&a);
    uint64_t k;
    void *v;
    for (size_t it = 0; u64map_next(&a.insts, &it, &k, &v);)
        for (struct slet_inst *in = v, *next; in; in = next) {
            next = in->hnext;
            free(in);
        }
    u64map_done(&a.insts);
    cell_host_free(a.host);
    if (a.lease_id && !a.o.simulate) {
        /* keep the lease: a restart within its TTL keeps the node schedulable */
    }
    for (size_t i = 0; i < a.n_nodes; i++)
        free(a.nodes[i]);
    free(a.nodes);
    u64map_done(&a.node_set);
    sc_buf_free(&a.watch_line);
    slet_sim_done(&a);
    if (a.ev_sim_flush)
        event_free(a.ev_sim_flush);
    event_free(a.ev_keepalive);
    event_free(a.ev_relist);
    event_free(a.ev_sigint);
    event_free(a.ev_sigterm);
    if (a.watch_tls || a.logs_tls) {
        /* libevent finalizes freed SSL bufferevents in the loop; run it once now
         * that no timer or Cell of ours is left to fire */
        event_base_loop(a.base, EVLOOP_NONBLOCK);
        SSL_CTX_free(a.watch_tls);
        SSL_CTX_free(a.logs_tls);
    }
    event_base_free(a.base);
    sc_client_free(a.api);
    sc_client_free(a.hb_api);
    return 0;
}
