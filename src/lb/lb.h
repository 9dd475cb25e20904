/*
 * lb.h: the backend-neutral load-balancer provider interface (issue 6, item 3).
 *
 * The control plane knows, for each exposed service, the set of ready endpoints it
 * wants traffic to reach.  lb_reconcile() makes one load balancer serve exactly that
 * set: it ensures the listener, the backend pool with weights and a health check,
 * and reports what it did in a status struct the caller can publish.  The call is
 * idempotent (the same desired state twice does nothing, no reload), rate-limited
 * and retried with backoff; those rules live once in lb.c, so a provider (one file
 * each, an ops table) only has to render, apply and CONFIRM a change.  Confirming
 * matters: a zero exit of `nginx -s reload` does not prove the new configuration is
 * serving (a port clash leaves the old one running), so every provider reads the
 * state back from the running load balancer before it reports success.
 *
 * Each provider declares its capabilities (weights, atomic switch, drain without a
 * reload, a switch-time estimate) so that rollouts can use the best it offers.
 *
 * Scope: one provider instance drives one load-balancer process it starts itself
 * (prefix directory, pid, logs under the directory it is given) and serves one
 * service; several services per process are left for later (docs/lb.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/util.h"

#define LB_MAX_ENDPOINTS 1024
#define LB_WEIGHT_MAX    256
#define LB_NAME_MAX      63

enum lb_proto {
    LB_PROTO_HTTP,
    LB_PROTO_TCP,
};

/* What clients connect to.  All strings are borrowed for the call. */
struct lb_service {
    const char *name;        /* [a-z0-9_-]{1,63}: names the upstream/backend */
    const char *listen_addr; /* NULL: 0.0.0.0 */
    int listen_port;
    enum lb_proto proto;
    const char *health_path; /* http: GET this path; NULL or tcp: a TCP connect check */
};

/* One desired backend.  Weight 0 (or draining) takes no new requests. */
struct lb_endpoint {
    char addr[64]; /* IPv4 or IPv6 literal */
    int port;
    int weight;    /* 0..LB_WEIGHT_MAX */
    bool draining; /* keep existing connections, send nothing new */
};

/* What a provider can do (declared in its ops table). */
struct lb_caps {
    bool weights;              /* weighted split of new requests */
    bool atomic_switch;        /* a whole new set takes over at one instant */
    bool drain_without_reload; /* draining changes no process */
    bool tcp;                  /* LB_PROTO_TCP services */
    bool active_health_check;  /* the LB itself probes endpoints */
    usec_t switch_usec;        /* typical reconcile-to-serving time, measured (docs/lb.md) */
};

/* The state of one service on one load balancer, filled by lb_reconcile(). */
struct lb_status {
    uint64_t desired_generation; /* bumped each time the desired state differs */
    uint64_t generation;         /* the last generation applied AND confirmed */
    usec_t applied_usec;         /* CLOCK_REALTIME of that confirmation */
    int last_error;              /* 0 after a success, else the last attempt's code */
    char last_error_msg[256];
    usec_t last_error_usec;   /* CLOCK_REALTIME */
    unsigned retries;         /* failed attempts since the last success */
    uint64_t failures;        /* failed attempts ever (a recovered error stays counted) */
    usec_t next_attempt_usec; /* CLOCK_MONOTONIC before which no attempt is made; 0: now */
    uint64_t reloads;         /* process reloads or starts this provider performed */
    uint64_t runtime_updates; /* changes applied without a reload */
};

/* Retry and rate limits (lb.c).  Zeros mean the defaults below. */
struct lb_policy {
    unsigned attempts;        /* per lb_reconcile() call; default 3 */
    usec_t backoff_min_usec;  /* default 20 ms, doubled per failure */
    usec_t backoff_max_usec;  /* default 5 s */
    usec_t min_interval_usec; /* between two applies; default 0 (no limit) */
};

struct lb_options {
    const char *dir; /* the provider's own directory: config, pid, sockets, logs */
    const char *exe; /* the LB binary; NULL: "nginx" / "haproxy" from PATH */
    struct lb_policy policy;
    usec_t confirm_timeout_usec; /* how long to wait for a change to show; default 3 s */
};

/* What an apply did, filled by the provider. */
struct lb_apply_result {
    bool reloaded;       /* a process was started or reloaded */
    bool runtime_update; /* changed through a runtime API, no reload */
};

struct lb_provider;

/*
 * A provider: one file, one designated-initialiser table (STYLE.md).  The hooks are
 * called from lb.c only, from the single thread that owns the lb_provider.
 *   init   allocates the provider's private state (p->priv); no process yet.
 *   apply  makes the LB serve (svc, eps) and tags it with `generation`; starts the
 *          LB process if it is not running; MUST confirm from the running process
 *          before returning >= 0, and on failure leave the previous configuration
 *          both running and on disk.  Called only when the desired state changed
 *          or the last apply failed.
 *   stop   ends the process it started, by PID; frees nothing.
 *   done   frees p->priv.
 *   pid    the master process's PID, or 0 (tests and benchmarks use it).
 */
struct lb_provider_ops {
    const char *name;
    struct lb_caps caps;
    int (*init)(struct lb_provider *p, struct sc_error *e);
    int (*apply)(struct lb_provider *p, const struct lb_service *svc, const struct lb_endpoint *eps,
                 size_t n, uint64_t generation, struct lb_apply_result *res, struct sc_error *e);
    void (*stop)(struct lb_provider *p);
    void (*done)(struct lb_provider *p);
    pid_t (*pid)(const struct lb_provider *p);
};

extern const struct lb_provider_ops lb_nginx_ops;
extern const struct lb_provider_ops lb_haproxy_ops;

struct lb_provider {
    const struct lb_provider_ops *ops;
    struct lb_options opt; /* dir and exe are owned copies */
    void *priv;            /* the provider's state */

    /* lb.c's state (see the design block in lb.c) */
    char service[LB_NAME_MAX + 1]; /* the one service this provider serves, "" before */
    uint64_t desired_hash;         /* of the last desired state seen */
    uint64_t applied_hash;         /* of the last state applied and confirmed, 0 none */
    usec_t last_apply_usec;        /* CLOCK_MONOTONIC of the last provider call */
    usec_t backoff_usec;           /* the next wait after a failure */
    struct lb_status status;
};

/* Makes a provider (no process is started until the first reconcile). */
int lb_provider_new(const struct lb_provider_ops *ops, const struct lb_options *opt,
                    struct lb_provider **ret, struct sc_error *e);
/* Stops the process the provider started (by PID) and frees it.  NULL is fine. */
void lb_provider_free(struct lb_provider *p);

/*
 * Makes the provider serve exactly `eps` for `svc`.  Returns 1 when a change was
 * applied and confirmed, 0 when nothing had changed (no provider call, no reload),
 * -EAGAIN when the rate limit or a backoff delays the attempt (st->next_attempt_usec
 * says until when; call again), or the provider's error after `attempts` tries.  *st
 * always receives the service's status (also on failure).
 */
int lb_reconcile(struct lb_provider *p, const struct lb_service *svc, const struct lb_endpoint *eps,
                 size_t n, struct lb_status *st, struct sc_error *e);

/* Checks a service and an endpoint set (names, ports, weights, duplicates). */
int lb_validate(const struct lb_service *svc, const struct lb_endpoint *eps, size_t n,
                struct sc_error *e);

/* ---- helpers shared by the providers (lb_util.c) ---------------------------- */

/* Runs argv (exe from PATH) to completion with stdout+stderr captured into out
 * (NUL-terminated, truncated to n).  Returns the exit status (>= 0) or -errno. */
int lb_run(char *const argv[], char *out, size_t n);
/* Starts argv with stdout/stderr appended to log_path; returns the PID or -errno. */
pid_t lb_spawn(char *const argv[], const char *log_path);
/* SIGTERM to pid, waits up to timeout_ms, then SIGKILL.  Reaps it. */
void lb_kill_wait(pid_t pid, int timeout_ms);
/* true while pid (our child) has not exited; reaps it if it has. */
bool lb_child_alive(pid_t pid);
/* Writes data to path atomically (tmp + rename). */
int lb_write_file(const char *path, const char *data, size_t len);
/* Reads a whole file (NUL-terminated) into *ret (malloc'd). */
int lb_read_file(const char *path, char **ret, size_t *len);
/* One HTTP/1.0 GET to addr:port with a fresh connection; the body into body (n).
 * Returns the status code or -errno. */
int lb_http_get(const char *addr, int port, const char *path, char *body, size_t n, int timeout_ms);
/* The PIDs of pid's children, sorted, into out (up to n); returns how many. */
size_t lb_children(pid_t pid, pid_t *out, size_t n);
/* Waits until every pid has exited (or is a zombie), or CLOCK_MONOTONIC deadline. */
bool lb_wait_gone(const pid_t *pids, size_t n, usec_t deadline);
/* addr:port, an IPv6 literal in brackets. */
const char *lb_hostport(char *out, size_t n, const char *addr, int port);
/* The size of a file, 0 if it does not exist. */
off_t lb_file_size(const char *path);
/* Polls GET path on 127.0.0.1:ctl_port (a new connection each time) until its body
 * reads gen: 0; -ESRCH when *master exited (then *master = 0); -ETIMEDOUT.  *seen
 * gets the last generation read. */
int lb_confirm_marker(int ctl_port, const char *path, uint64_t gen, pid_t *master,
                      usec_t timeout_usec, uint64_t *seen);
/* The first and the last line of log after offset `from` that contain one of tags
 * (NULL-terminated), as "first; last", into out. */
void lb_log_reason(const char *log, off_t from, const char *const *tags, char *out, size_t n);
/* A loopback TCP port that was free a moment ago. */
int lb_free_port(void);
