/*
 * cell_linux.h: the pieces of the Linux Cell backend, shared between its files:
 * cgroups (cell_cgroup.c), rtnetlink (cell_netlink.c) and the sandbox applied in
 * the cloned child (cell_sandbox.c).  Nothing here is part of the public
 * interface; cell.h stays free of Linux.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cell/cell_int.h"

/* Writes a whole small file (a cgroup or sysctl knob); -errno on failure. */
int cell_write_str(const char *path, const char *val);

/* ---- cgroups ----------------------------------------------------------------- */

enum cg_ctl { CG_CPU, CG_CPUACCT, CG_MEMORY, CG_PIDS, CG_N };

/* Where each controller lives on this host, decided once from mountinfo. */
struct cg_layout {
    char *v2;         /* <cgroup2 mount>/<own cgroup>/<parent>, or NULL without cgroup2 */
    char *v1[CG_N];   /* <v1 mount>/<own cgroup>/<parent> for controllers found in v1 */
    bool in_v2[CG_N]; /* controller enabled in the v2 hierarchy instead */
};

/* One Cell's cgroups. */
struct cg_cell {
    char *v2;       /* directory, or NULL */
    int v2fd;       /* O_DIRECTORY fd of v2, for CLONE_INTO_CGROUP; -1 if none */
    char *v1[CG_N]; /* directories (may repeat when controllers share a mount) */
    uint64_t oom_base;
};

int cg_layout_discover(struct cg_layout *l, const char *parent, struct sc_error *e);
void cg_layout_done(struct cg_layout *l);
int cg_cell_create(const struct cg_layout *l, struct cg_cell *cg, const char *name,
                   const struct cell_spec_copy *s, struct sc_error *e);
/* The cpu quota (millis per 100 ms; 0 lifts it).  It is set when the Cell's
 * process has exec'd and lifted before each start, not at create: the setup
 * between clone and exec (mounts, Landlock, seccomp, the exec itself) is the
 * supervisor's work, and under a small quota (10m is 1 ms per 100 ms period) it
 * would be throttled to the next period, adding up to 100 ms to a start. */
int cg_cell_cpu(const struct cg_layout *l, const struct cg_cell *cg, uint64_t millis,
                struct sc_error *e);
/* Moves pid into the Cell's v1 cgroups (v2 is joined by CLONE_INTO_CGROUP). */
int cg_cell_attach(const struct cg_cell *cg, pid_t pid, struct sc_error *e);
/* cgroup.kill where v2 has it; returns -EOPNOTSUPP otherwise. */
int cg_cell_kill(const struct cg_cell *cg);
/* Number of processes still in the Cell's cgroups (0 when empty). */
int cg_cell_nprocs(const struct cg_cell *cg);
uint64_t cg_cell_oom_kills(const struct cg_cell *cg);
int cg_cell_usage(const struct cg_cell *cg, struct cell_usage *u);
/* Removes every directory; returns the first error but tries them all. */
int cg_cell_remove(struct cg_cell *cg);

/* ---- rtnetlink --------------------------------------------------------------- */

int nl_open(void);
int nl_link_up(int fd, int ifindex);
int nl_link_del(int fd, int ifindex);
int nl_bridge_add(int fd, const char *name);
int nl_addr_add(int fd, int ifindex, uint32_t addr_be, uint8_t prefix);
int nl_route_default(int fd, uint32_t gw_be);
/* The namespace-wide ("all") forwarding switch of family (AF_INET, AF_INET6):
 * 1 on, 0 off, -errno (-EAFNOSUPPORT without IPv6).  A netlink query: opening
 * /proc/sys/net/... instead walks one dentry per network namespace on the node. */
int nl_forwarding(int fd, int family);
/* A veth pair: host end `host` (up, enslaved to master), peer `peer` created in
 * the network namespace peer_nsfd refers to. */
int nl_veth_add(int fd, const char *host, int master, const char *peer, int peer_nsfd);

/* ---- node networking (cell_net.c) -------------------------------------------- */

#include <net/if.h>

/* A prepared network namespace: eth0 on the bridge, its address, its route. */
struct net_slot {
    int nsfd;    /* the namespace, held open */
    uint32_t ip; /* host order; 0 when the slot is empty */
    char veth[IF_NAMESIZE];
};

struct net_node {
    char bridge[IF_NAMESIZE];
    uint32_t net; /* host order */
    uint8_t prefix;
    int bridge_idx; /* 0 until first use */
    uint8_t *ip_used;
    size_t n_ips, ip_next;
    int nlfd, orig_nsfd;
    struct net_slot *pool;
    size_t n_pool, cap_pool, want_pool;
};

int net_node_init(struct net_node *n, const char *bridge, uint32_t net_be, uint8_t prefix,
                  unsigned pool, struct sc_error *e);
void net_node_done(struct net_node *n);
/* A slot from the pool, or a new one made now. */
int net_slot_get(struct net_node *n, struct net_slot *ret, struct sc_error *e);
/* Releases the slot's namespace and address; the slot becomes empty. */
void net_slot_put(struct net_node *n, struct net_slot *s);
/* Tops the pool up to its size. */
int net_node_fill(struct net_node *n, struct sc_error *e);
/* Run inside a fresh namespace: lo up; with_eth0: address, up, default route;
 * forwarding off. */
int net_config_inside(bool with_eth0, uint32_t ip_be, uint8_t prefix, uint32_t gw_be,
                      struct sc_error *e);

/* ---- the sandbox ------------------------------------------------------------- */

/* Everything the child needs, prepared by the parent before clone3 so that the
 * child allocates as little as possible. */
struct sandbox_plan {
    const struct cell_spec_copy *spec;
    const void *seccomp_prog; /* struct sock_fprog *, shared by all Cells */
    int landlock_abi;
    unsigned cap_last;
    int netns_fd; /* CELL_NET_BRIDGE: the prepared slot to join; -1 otherwise */
    int init_fd;  /* the init program's memfd (execveat), or -1: init runs in-process */
};

/* The init program (cell_init.c, built static), embedded by cell_init_blob.c. */
extern const unsigned char cell_init_blob[];
extern const size_t cell_init_blob_len;
/* A sealed, executable memfd holding it; -errno if this kernel will not. */
int sandbox_init_memfd(void);

/* Runs in the child after the parent released it; returns only on failure, with
 * a message in e. */
int sandbox_enter(const struct sandbox_plan *p, struct sc_error *e);
/* Runs in the grandchild of cell_exec_start (cell_linux.c), which has joined
 * the Cell's namespaces (so "/" is the Cell's root) and cgroups: drops to the
 * Cell's uid/gid with no capabilities and no_new_privs, applies its Landlock
 * grants and seccomp filter, and execs argv with the Cell's env in its cwd.
 * Returns only on failure, with a message in e. */
int sandbox_exec(const struct sandbox_plan *p, char *const argv[], struct sc_error *e);
/* Builds the seccomp filter once per host: returns a malloc'd struct sock_fprog. */
int sandbox_seccomp_build(void **ret, struct sc_error *e);
void sandbox_seccomp_free(void *prog);
int sandbox_landlock_abi(void);

/* ---- the child (cell_linux.c) -------------------------------------------------- */

/* Makes the vfork-style child on stack: clone(CLONE_VM|CLONE_VFORK|flags); it
 * joins cg's cgroups, builds its sandbox from plan with logfd as stdout/stderr
 * and execs, or writes its error to errfd and exits 127.  Returns its pid once
 * it exec'd or exited (*pidfd set when flags hold CLONE_PIDFD), or -1 with errno. */
long linux_clone_vfork(char *stack, size_t size, uint64_t flags, const struct sandbox_plan *plan,
                       const struct cg_cell *cg, int errfd, int logfd, int *pidfd);
/* Reads what a child wrote on its error pipe: 0 for EOF (it exec'd), or the
 * child's negative error with its message in msg. */
int linux_child_report(int errfd, char *msg, size_t len);

/* ---- spawners (cell_spawn.c) ----------------------------------------------------- */

/* What every start shares, copied into the spawners when they are forked. */
struct spawn_ctx {
    const void *seccomp_prog;
    int landlock_abi;
    unsigned cap_last;
    int init_fd; /* kept open in the spawners */
};

struct spawn_pool {
    struct spawn_ctx ctx;
    pid_t *pid;
    int *sock; /* -1 once that spawner is known dead */
    unsigned *inflight;
    size_t n;
};

/* Forks n spawners (at most 16); returns how many run (0: async starts clone3). */
int spawn_pool_start(struct spawn_pool *p, unsigned n, const struct spawn_ctx *ctx);
void spawn_pool_stop(struct spawn_pool *p);
/* Sends one start to the least busy spawner: the child gets logfd as stdout and
 * stderr, and joins netns_fd if >= 0.  On success *ret_replyfd is where the
 * reply arrives (spawn_reply_read) and *ret_idx goes back to spawn_done.
 * -E2BIG for a spec too large to send (the caller starts it itself). */
int spawn_request(struct spawn_pool *p, const struct cell_spec_copy *s, const struct cg_cell *cg,
                  uint64_t flags, int logfd, int netns_fd, int *ret_replyfd, int *ret_idx);
void spawn_done(struct spawn_pool *p, int idx);
/* Reads a reply (flags: MSG_DONTWAIT or 0): -EAGAIN if none yet; otherwise
 * *ret_pid > 0 and *ret_pidfd when a child exists, and 0 if it exec'd or a
 * negative error with msg (the child's, the spawner's, or its death). */
int spawn_reply_read(int replyfd, int flags, int *ret_pid, int *ret_pidfd, char *msg, size_t len);
