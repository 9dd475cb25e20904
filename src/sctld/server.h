/*
 * server.h: sctld's store server: HTTP/1.1 + JSON over libevent in front of
 * cubestore, replicated by the Raft core with a durable log and group commit
 * (docs/api.md, docs/store.md, docs/raft.md "sctld integration").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "store/store.h"

struct srv_config {
    const char *data_dir;
    const char *listen;          /* HOST:PORT; port 0 picks a free one */
    const char *name;            /* member name; its Raft id is a hash of it */
    const char *peer_listen;     /* HOST:PORT for Raft peers; NULL: no peers */
    const char *initial_cluster; /* NAME=HOST:PORT,... (peer addresses); NULL: just us */
    bool join;                   /* start empty: an existing cluster adds us */
    unsigned tick_ms;            /* Raft tick */
    unsigned election_ticks, heartbeat_ticks;
    struct store_limits limits;
    size_t max_body_bytes;
    usec_t http_idle_usec;      /* a connection idle this long is closed (watch streams excepted) */
    size_t watch_buffer_bytes;  /* unsent events a watch may hold */
    usec_t watch_stall_usec;    /* ... for this long while full, then it is cut off */
    usec_t watch_progress_usec; /* a caught-up, quiet watch gets a progress line this often */
    usec_t node_grace_usec;     /* NotReady this long: a node's Assignments are placed again */
    size_t max_watches;
    uint64_t snapshot_every;     /* entries between snapshots */
    int64_t auto_compact_retain; /* revisions kept by automatic compaction, 0 = off */
    size_t wal_segment_bytes;
    const char *tls_dir; /* CA + certificates; the API is HTTPS with client certs; NULL: HTTP */
    const char *health_listen; /* loopback HOST:PORT serving plain GET /healthz; NULL: none */
    const char *join_listen;   /* HOST:PORT where nodes join with a token (needs tls_dir) */
    uint64_t node_cert_sec;    /* validity of a node certificate (join, renew) */
};

void srv_config_default(struct srv_config *c);
/* Recovers the store from data_dir, serves until SIGTERM/SIGINT, shuts down
 * cleanly.  Returns 0 after a clean shutdown, negative on a fatal error (logged). */
int srv_run(const struct srv_config *c);
