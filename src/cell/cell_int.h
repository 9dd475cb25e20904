/*
 * cell_int.h: what the backend-neutral core (cell.c) shares with the backends.
 *
 * The core owns the copied spec, the lifecycle state, the stop deadline and the
 * log ring; a backend owns whatever makes a Cell real (processes, cgroups,
 * mounts, links) behind a designated-initialiser ops table (HAProxy habit), one
 * table per backend, chosen by name in cell_host_new().
 */
#pragma once

#include "base/u64map.h"
#include "cell/cell.h"

struct cell_ops {
    const char *name;
    int (*host_init)(struct cell_host *h, const struct cell_host_config *cfg, struct sc_error *e);
    void (*host_done)(struct cell_host *h);
    /* Work ahead of need (a pool of network slots); may be slow, never required. */
    int (*prepare)(struct cell_host *h, struct sc_error *e);
    /* Reserve what the Cell needs; on failure nothing is left behind. */
    int (*create)(struct cell *c, struct sc_error *e);
    /* Make the process tree; on success the backend has set pid and fd. */
    int (*start)(struct cell *c, struct sc_error *e);
    /* Ask politely (SIGTERM). */
    int (*term)(struct cell *c);
    /* End every process now; the Cell becomes DEAD through process()/reap. */
    int (*kill)(struct cell *c);
    /* Readability or deadline: return CELL_EV_* or -errno. */
    int (*process)(struct cell *c);
    int (*usage)(const struct cell *c, struct cell_usage *u);
    /* Undo create() and anything start() left; the process is already gone. */
    void (*destroy)(struct cell *c);
    /* cell_exec_*: run a command inside the running Cell (NULL: unsupported). */
    int (*exec_start)(struct cell *c, const char *const *argv, struct cell_exec **ret,
                      struct sc_error *e);
    int (*exec_process)(struct cell_exec *x, struct cell_exec_result *ret);
    void (*exec_free)(struct cell_exec *x);
};

/* What every backend's exec starts with (its own struct may extend it). */
struct cell_exec {
    const struct cell_ops *ops;
    int fd; /* what cell_exec_fd() returns */
};

extern const struct cell_ops cell_linux_ops;
extern const struct cell_ops cell_sim_ops;

struct cell_host {
    const struct cell_ops *ops;
    void *impl;
    struct cell **cells; /* cells[c->host_idx] == c */
    size_t n_cells, cap_cells;
    struct u64map by_name; /* sc_str_hash(name) -> first Cell of that hash (name_next) */
};

/* The spec as copied by cell_create(): every string owned by the Cell. */
struct cell_spec_copy {
    char *name, *root, *cwd, *hostname;
    char **argv, **env; /* NULL-terminated */
    uint32_t uid, gid;
    struct cell_tmpfs *tmpfs; /* path strings owned */
    size_t n_tmpfs;
    struct cell_volume *volumes; /* source, path owned */
    size_t n_volumes;
    struct cell_grant *grants;
    size_t n_grants;
    struct cell_secret *secrets; /* name and data owned; data wiped on free */
    size_t n_secrets;
    uint64_t cpu_millis, memory_bytes, pids_max;
    enum cell_net_mode net;
    usec_t stop_grace_usec;
    bool init;
};

struct cell {
    struct cell_host *host;
    size_t host_idx;        /* where it sits in host->cells */
    struct cell *name_next; /* next Cell whose name has the same hash */
    void *impl;
    struct cell_spec_copy spec;
    struct cell_status st;
    int fd;           /* what cell_fd() returns */
    usec_t deadline;  /* end of the grace period while STOPPING, else 0 */
    bool start_async; /* the current ops->start must not wait for the exec */
    /* log ring: ring[off % cap] holds byte off for off in [end - min(end,cap), end) */
    char *ring;
    size_t ring_cap;
    uint64_t ring_end;
};

void cell_log_append(struct cell *c, const void *p, size_t n);
/* Backends call this exactly once per run when the last process is gone. */
void cell_mark_dead(struct cell *c, int exit_code, int exit_signal);
