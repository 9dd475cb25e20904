/*
 * agent.h: the node agent's internals, shared by its files (not a public API).
 *
 *   agent.c       options, the event loop, registration, the lease and heartbeat,
 *                 the list+watch of Assignments, the instance table
 *   agent_cell.c  real instances: Revision template -> image -> Cell, restarts
 *                 with backoff, Instance status, removal, the state directory
 *                 and what happens to Cells found there after a restart
 *   agent_cg.c    the cgroup directories of Cells: found from a pid, swept
 *   agent_sim.c   --simulate N: many nodes, sim Cells, statuses in batches
 *   agent_logs.c  the logs endpoint (GET /logs/NAME[?follow=1], /instances)
 *   agent_probe.c startup, readiness and liveness probes (http, tcp, exec)
 *
 * One thread, one libevent loop.  The watch stream is read by libevent's HTTP
 * client (no thread, so nothing holds a malloc lock while the Cell library
 * clones); short requests (registration, keepalive, status writes) go through
 * the shared libcurl client synchronously: they are loopback round trips, and a
 * status write is at most one per phase change.  docs/slet.md has the rules.
 */
#pragma once

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/u64map.h"
#include "base/util.h"
#include "cell/cell.h"
#include "client/client.h"
#include "image/image.h"

#define SLET_NAME_MAX 63
/* The heartbeat lease: its TTL (--lease-ttl) and a keepalive every quarter of it,
 * so that three lost keepalives in a row still keep the node Ready.  With
 * sctld's --node-grace-ms (500 ms) a dead node's instances are placed elsewhere
 * 2-2.6 s after it died (docs/operations.md, "Node lifecycle and timeouts").
 * 1 s was tried: on a loaded 2-core VM a follower that lost its leader for 1.6 s
 * made a healthy node lose its instances. */
#define SLET_LEASE_TTL_SEC 2
#define SLET_BACKOFF_MIN_USEC   (100 * USEC_PER_MSEC)
#define SLET_BACKOFF_MAX_USEC   (10 * USEC_PER_SEC)
#define SLET_BACKOFF_RESET_USEC (10 * USEC_PER_SEC) /* up this long: backoff starts over */
#define SLET_TXN_OPS            128                 /* sctld's per-transaction limit */
#define SLET_SIM_SHARDS         16                  /* --simulate: status writers in flight */
#define SLET_LOG_RING           (64u << 10)

enum slet_inst_state {
    INST_PENDING,  /* known, no Cell yet (template, image, or waiting to retry) */
    INST_STARTING, /* cell_start_async issued, not exec'd yet */
    INST_RUNNING,  /* exec'd */
    INST_BACKOFF,  /* dead; restart timer armed */
    INST_STOPPING, /* Assignment gone: stop asked, waiting for the Cell to die */
};

struct slet_follow; /* a logs?follow=1 client (agent_logs.c) */
struct slet_probes; /* a running Cell's probes (agent_probe.c) */

/* One Assignment bound to this node (or, with --simulate, to one of its nodes). */
struct slet_inst {
    struct slet_inst *hnext; /* hash chain in slet_agent.insts */
    struct slet_agent *a;
    char name[SLET_NAME_MAX + 1];
    char node[SLET_NAME_MAX + 1];
    char deployment[SLET_NAME_MAX + 1];
    char revision[SLET_NAME_MAX + 1 + 16];
    enum slet_inst_state st;
    bool seen;        /* present in the latest list (re-list sweeps the others) */
    bool obj_created; /* the Instance object exists on the server */
    bool dirty;       /* the last status write failed: retry */
    struct cell *cell;
    struct event *ev_cell, *ev_timer;
    struct img_id img;
    bool img_held;
    unsigned restarts;
    usec_t backoff_usec, started_mono;
    /* the reported status */
    char phase[12];
    bool ready;
    int exit_code; /* -1: none */
    char reason[320];
    char started_at[32];
    struct slet_follow *followers;
    struct slet_probes *probes;
    char restart_reason[320]; /* why the agent is restarting the Cell (a probe) */
};

struct slet_opts {
    const char *server, *name, *data_dir, *store_dir, *trust_dir, *listen, *labels;
    const char *cgroup_parent, *address, *bridge;
    uint32_t cell_net_be; /* --cell-range: the bridge's network (0: 10.88.0.0) */
    uint8_t cell_prefix;  /* ... and its prefix length (0: 24) */
    enum cell_net_mode net;
    uint64_t cpu_millis, memory_bytes; /* 0: detected */
    unsigned simulate;                 /* 0: a real node */
    usec_t grace_usec;
    unsigned lease_ttl_sec; /* the heartbeat lease's TTL */
    /* mutual TLS (agent_join.c): --join URL[,URL] --token ID.SECRET --ca-hash sha256:H,
     * and where the files live (--pki-dir, default DATA/pki) */
    const char *join, *token, *ca_hash, *pki_dir;
};

/* The node's certificate files (agent_join.c). */
struct slet_pki {
    char dir[3000], ca[3100], cert[3100], key[3100];
};

struct slet_agent {
    struct slet_opts o;
    struct event_base *base;
    struct sc_client *api; /* synchronous requests */
    struct cell_host *host;
    char host_port[128]; /* of the server: HOST and PORT for evhttp */
    bool tls;            /* https:// servers: node.crt for every request and the watch */
    struct slet_pki pki;
    struct ssl_ctx_st *watch_tls; /* the watch's client context (controllers only) */
    struct ssl_ctx_st *logs_tls;  /* the logs endpoint's server context (controllers only) */
    char server_host[128];
    int server_port;
    char logs_url[96]; /* http://IP:PORT of the logs endpoint, "" if none */
    /* lease and heartbeat */
    int64_t lease_id;
    struct event *ev_keepalive;
    /* a real node's heartbeat runs on a thread of its own with its own client,
     * so that nothing the loop blocks on (a Cell start, a slow status write)
     * delays it past the lease's TTL */
    struct sc_client *hb_api;
    pthread_t hb_thread;
    bool hb_started;
    atomic_bool hb_quit;
    /* the watch */
    struct evhttp_connection *watch_conn;
    struct evhttp_request *watch_req;
    struct sc_buf watch_line;
    uint64_t watch_rev; /* next revision the watch must deliver */
    bool listed;        /* a list has been taken since the last loss */
    struct event *ev_relist;
    usec_t relist_backoff_usec;
    /* instances */
    struct u64map insts; /* hash(name) -> chain of struct slet_inst */
    size_t n_insts;
    /* nodes (one, or --simulate N) */
    char **nodes;
    size_t n_nodes;
    struct u64map node_set; /* hash(node name) -> (void *)1 */
    /* --simulate: pending writes, flushed in transactions, one connection per
     * shard (by instance name) so that one key's writes stay in order */
    struct slet_sim_shard {
        struct slet_agent *a;
        struct sc_buf *ops; /* JSON ops, one string per op */
        size_t n, cap;
        size_t n_sending; /* ops[0..n_sending) are in the request in flight */
        struct evhttp_connection *conn;
    } sim[SLET_SIM_SHARDS];
    struct event *ev_sim_flush;
    uint64_t sim_acked, sim_removed;
    /* real instances: Revision templates by name, restarts carried over from
     * an earlier run (hash of name -> restarts) */
    struct u64map revs, carried;
    char inst_dir[2048];
    /* logs endpoint */
    struct evhttp *http;
    struct event *ev_sigint, *ev_sigterm;
    bool quitting;
};

/* agent.c */
uint64_t slet_hash(const char *s);
struct slet_inst *slet_inst_find(struct slet_agent *a, const char *name);
void slet_inst_unlink(struct slet_agent *a, struct slet_inst *in);
/* Fills name, node, deployment and revision from an Assignment object; < 0 if
 * it lacks them. */
int slet_assignment_parse(const json_t *obj, struct slet_inst *in);
void slet_iso_now(char out[32]);
/* "metadata" of an Instance object for inst in (labels deployment + node). */
json_t *slet_instance_object(const struct slet_inst *in, bool with_status);
json_t *slet_instance_status(const struct slet_inst *in);
/* The Node object this agent registers for node (capacity, allocatable,
 * addresses, labels). */
json_t *slet_node_object(struct slet_agent *a, const char *node);

/* agent_cell.c: real instances */
int slet_cell_setup(struct slet_agent *a, struct sc_error *e);
void slet_cell_add(struct slet_agent *a, struct slet_inst *in);
void slet_cell_remove(struct slet_agent *a, struct slet_inst *in);
/* Reads the state directory after the first list and before any Cell of this
 * run exists: every Cell an earlier run left is ended and its cgroups removed;
 * those no longer in `assigned` (hash of name -> 1) also lose their Instance
 * object, image lease and state file; those still assigned keep their restart
 * count for their successor.  Returns how many were found. */
int slet_cell_recover(struct slet_agent *a, const struct u64map *assigned);
/* Status writes that failed are retried (from the keepalive timer). */
void slet_cell_retry_status(struct slet_agent *a);
/* Agent exit: every Cell torn down, state files kept. */
void slet_cell_shutdown(struct slet_agent *a);

/* For the probes: sets ready and reason, writing the status if either changed. */
void slet_cell_set_ready(struct slet_inst *in, bool ready, const char *reason);
/* For the probes: stops the running Cell (probes first, then SIGTERM and the
 * grace) so that it is restarted; its exit is reported with reason. */
void slet_cell_restart(struct slet_inst *in, const char *reason);

/* agent_probe.c: startup, readiness and liveness probes of real Cells */
/* The Cell of in has exec'd: starts the probes of template.health.  Returns
 * whether the instance is ready now (no readiness or startup probe); if not,
 * in->reason says what it waits for. */
bool slet_probe_start(struct slet_inst *in, const json_t *template);
/* Cancels every attempt (an exec is killed) and frees the probes; idempotent. */
void slet_probe_stop(struct slet_inst *in);

/* agent_cg.c: cgroup directories */
/* The cgroup directories of pid whose last component is name (one per
 * hierarchy), as absolute paths joined by '\n' into out. */
int slet_cg_dirs_of_pid(int pid, const char *name, struct sc_buf *out);
/* Kills every process in dir (cgroup.kill or cgroup.procs) and removes it;
 * 0 when gone (or never there). */
int slet_cg_remove_dir(const char *dir);
/* Every Cell cgroup under `parent` (relative to this process's cgroups) whose
 * name keep() rejects is emptied and removed; returns how many. */
int slet_cg_sweep(const char *parent, bool (*keep)(void *arg, const char *name), void *arg);

/* agent_sim.c */
void slet_sim_add(struct slet_agent *a, struct slet_inst *in);
void slet_sim_remove(struct slet_agent *a, struct slet_inst *in);
/* Sends what is pending (one transaction in flight per shard); at exit, sync
 * finishes it all with blocking requests. */
void slet_sim_flush(struct slet_agent *a, bool sync);
size_t slet_sim_pending(const struct slet_agent *a);
void slet_sim_done(struct slet_agent *a);
int slet_sim_heartbeats(struct slet_agent *a, struct sc_error *e);
/* Writes every simulated Node object, SLET_TXN_OPS per transaction. */
int slet_sim_register(struct slet_agent *a, struct sc_error *e);

/* agent_logs.c */
int slet_logs_start(struct slet_agent *a, struct sc_error *e);
void slet_logs_stop(struct slet_agent *a);
/* New bytes in in's ring: pass them to its followers. */
void slet_logs_notify(struct slet_inst *in);
/* The instance goes away: end its followers' streams. */
void slet_logs_detach(struct slet_inst *in);

/* agent_join.c: the node certificate (join before the agent starts, renewal from
 * the heartbeat thread: 1 renewed, 0 not due, negative on error). */
void slet_pki_paths(const struct slet_agent *a, struct slet_pki *p);
int slet_join(const struct slet_agent *a, struct sc_error *e);
int slet_renew_if_due(struct slet_agent *a, struct sc_client *c, struct sc_error *e);
