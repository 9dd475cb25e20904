/*
 * cell.h: the Cell supervisor interface, backend-neutral.
 *
 * A Cell is SwiftCube's unit of execution (note §1, §5): a process tree over a
 * read-only image root with private scratch, no ambient authority beyond its
 * grants, its own resource domain and, optionally, its own network address.  This
 * header says what a Cell is and how a supervisor drives it; it says nothing about
 * how a backend builds one.  The Linux backend (cell_linux.c) composes namespaces,
 * cgroups, Landlock and seccomp; the `sim` backend (cell_sim.c) fakes Cells in
 * memory so that one process can host thousands of simulated nodes; a SwiftOS
 * backend would map the same calls onto the kernel's native Cells.
 *
 * Event-loop use (libuv habit: the caller owns the loop):
 *   cell_host_new → cell_create → cell_start → poll cell_fd() for readability and
 *   call cell_process() when it is readable or when cell_deadline_usec() passes →
 *   cell_stop → ... → CELL_DEAD → cell_free (which tears down whatever is left).
 * Nothing here blocks except cell_wait(), a convenience for CLIs and tests.  No
 * threads: the Linux backend clones, and a cloned child must not inherit a held
 * malloc lock.
 *
 * Grants are strings, parsed by cell_grant_parse():
 *   fs.read:/PATH     read and execute beneath PATH
 *   fs.write:/PATH    read, write, create and remove beneath PATH
 *   net.listen:PORT   bind a TCP socket to PORT (1..65535)
 *   net.connect:PORT  connect a TCP socket to PORT
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/util.h"

/* Limits that keep one spec from growing the supervisor without bound. */
#define CELL_MAX_ARGS            256
#define CELL_MAX_TMPFS           16
#define CELL_MAX_VOLUMES         16
#define CELL_MAX_GRANTS          64
#define CELL_MAX_SECRETS         32
#define CELL_SECRET_MAX_BYTES    (1u << 20)
#define CELL_NAME_MAX            63
#define CELL_LOG_MIN             1024
#define CELL_LOG_MAX             (16u << 20)
#define CELL_LOG_DEFAULT         (16u << 10)
#define CELL_TMPFS_DEFAULT_BYTES (16ull << 20)

enum cell_state {
    CELL_CREATED,  /* spec validated, resources reserved, no process yet */
    CELL_RUNNING,  /* the process tree exists */
    CELL_STOPPING, /* asked to stop; killed outright when the grace period ends */
    CELL_DEAD,     /* no process left; exit status is known */
};

enum cell_net_mode {
    CELL_NET_NONE,   /* own network namespace with loopback only */
    CELL_NET_BRIDGE, /* own namespace + veth to the node bridge + an address */
    CELL_NET_HOST,   /* the node's network (trusted system Cells only) */
};

enum cell_grant_kind {
    CELL_GRANT_FS_READ,
    CELL_GRANT_FS_WRITE,
    CELL_GRANT_NET_LISTEN,
    CELL_GRANT_NET_CONNECT,
};

struct cell_grant {
    enum cell_grant_kind kind;
    uint16_t port;  /* net.* */
    char path[256]; /* fs.*: absolute, inside the Cell's view */
};

/* A private, size-limited, writable tmpfs at path (inside the Cell). */
struct cell_tmpfs {
    const char *path;
    uint64_t size_bytes; /* 0: CELL_TMPFS_DEFAULT_BYTES */
};

/* A node directory made visible at path; writable only where an fs.write grant
 * covers it and read_only is false. */
struct cell_volume {
    const char *source; /* node path */
    const char *path;   /* path inside the Cell; must exist in the image */
    bool read_only;
};

/* A secret: the file /run/secrets/NAME (NAME of [A-Za-z0-9._-]), readable only
 * by the Cell's uid, on a read-only tmpfs: never on a disk.  /run/secrets must
 * exist in the image unless /run is scratch (then it is made). */
struct cell_secret {
    const char *name;
    const void *data;
    size_t len; /* at most CELL_SECRET_MAX_BYTES */
};

struct cell_spec {
    const char *name;               /* [a-z0-9-], at most CELL_NAME_MAX; unique per host */
    const char *root;               /* the image root directory (an unpacked tree) */
    const char *const *argv;        /* NULL-terminated; argv[0] is resolved inside the root */
    const char *const *env;         /* NULL-terminated or NULL (then PATH only) */
    const char *cwd;                /* NULL: "/" */
    const char *hostname;           /* NULL: the name */
    uint32_t uid, gid;              /* 0 is refused: Cells never run as root */
    const struct cell_tmpfs *tmpfs; /* NULL with n_tmpfs 0: /tmp and /run */
    size_t n_tmpfs;
    const struct cell_volume *volumes;
    size_t n_volumes;
    const struct cell_secret *secrets;
    size_t n_secrets;
    const char *const *grants; /* strings, see the top of this file */
    size_t n_grants;
    uint64_t cpu_millis;   /* 0: unlimited; 1000 = one CPU */
    uint64_t memory_bytes; /* 0: unlimited */
    uint64_t pids_max;     /* 0: unlimited */
    enum cell_net_mode net;
    usec_t stop_grace_usec; /* 0: 10 s */
    size_t log_bytes;       /* 0: CELL_LOG_DEFAULT */
    /* Run a minimal init as PID 1 that forwards stop signals to the program and
     * reaps orphans; a program killed by signal N then exits the Cell with code
     * 128+N.  Without it the program is PID 1, and a PID 1 without a handler
     * (a shell, most scripts) ignores SIGTERM, so stopping it waits the grace. */
    bool init;
};

/* Node-wide settings for a backend. */
struct cell_host_config {
    const char *backend; /* "linux" or "sim" */
    /* linux: the cgroup under which Cells live, relative to the supervisor's own
     * cgroup in every hierarchy (NULL: "swiftcube") */
    const char *cgroup_parent;
    /* linux, CELL_NET_BRIDGE: bridge name (NULL: "scbr0") and the node's Cell range;
     * the bridge gets the first host address and is created if missing. */
    const char *bridge;
    uint32_t net_addr_be; /* network address, big-endian (NULL: 10.88.0.0) */
    uint8_t net_prefix;   /* 16..30 (0: 24) */
    /* linux: how many bridged-network slots cell_host_prepare() keeps ready, so
     * that cell_create of a bridged Cell takes one instead of making one. */
    unsigned net_pool;
    /* linux: helper processes that make the children of cell_start_async
     * (docs/cell.md); each is busy until its child has exec'd (0: one per
     * CPU; at most 16). */
    unsigned spawners;
};

struct cell_status {
    enum cell_state state;
    int pid;          /* on the node, while running; 0 otherwise */
    int exit_code;    /* when dead and exited normally; -1 otherwise */
    int exit_signal;  /* when dead by a signal; 0 otherwise */
    bool oom_killed;  /* the memory limit killed a process of this Cell */
    bool stop_forced; /* the grace period ended and the Cell was killed */
    unsigned restarts;
    usec_t started_usec, ended_usec; /* CLOCK_MONOTONIC */
    char ip[16];                     /* dotted quad under CELL_NET_BRIDGE */
    /* after cell_start_async: the child's setup failed (then exit_code is 127)
     * and why; cell_start reports the same through its return value instead */
    bool start_failed;
    char start_error[256];
};

struct cell_usage {
    uint64_t cpu_usec;
    uint64_t memory_bytes;
    uint64_t memory_peak_bytes;
    uint64_t pids;
};

/* What cell_process() saw. */
enum {
    CELL_EV_LOG = 1 << 0,     /* new bytes in the log ring */
    CELL_EV_EXIT = 1 << 1,    /* the Cell became CELL_DEAD */
    CELL_EV_STARTED = 1 << 2, /* after cell_start_async: the program was exec'd */
};

struct cell_host;
struct cell;

int cell_host_new(const struct cell_host_config *cfg, struct cell_host **ret, struct sc_error *e);
/* Frees every Cell still attached (tearing each down) and the host; NULL is fine. */
void cell_host_free(struct cell_host *h);
const char *cell_host_backend(const struct cell_host *h);
/* Does slow work ahead of need (tops up the network slot pool).  Call it when
 * idle; never needed for correctness. */
int cell_host_prepare(struct cell_host *h, struct sc_error *e);

int cell_grant_parse(const char *s, struct cell_grant *ret, struct sc_error *e);
/* Parses "100m", "1.5" (CPUs) into millis; "64Mi", "1G", "4096" into bytes. */
int cell_parse_cpu(const char *s, uint64_t *ret_millis);
int cell_parse_bytes(const char *s, uint64_t *ret_bytes);

/* Validates and copies spec (the caller's memory may go away) and reserves what
 * the Cell needs before it can run (cgroups, an address).  No process yet. */
int cell_create(struct cell_host *h, const struct cell_spec *spec, struct cell **ret,
                struct sc_error *e);
/* CREATED or DEAD → RUNNING.  From DEAD this is a restart and counts one. */
int cell_start(struct cell *c, struct sc_error *e);
/* The same without waiting for the child to set itself up: returns once the
 * start is under way (RUNNING; on Linux handed to a spawner process, or the
 * process exists).  cell_process() later reports CELL_EV_STARTED (from then
 * on the status has the pid), or, if setup failed, start_failed +
 * start_error in the status and CELL_EV_EXIT.  Stopping or freeing a Cell
 * whose start is still under way first waits for it (milliseconds).  Lets one
 * supervisor overlap many starts. */
int cell_start_async(struct cell *c, struct sc_error *e);
/* RUNNING → STOPPING: asks the Cell to end (SIGTERM on Linux) and arms the grace
 * deadline (0: the spec's).  Idempotent; on a DEAD Cell it does nothing. */
int cell_stop(struct cell *c, usec_t grace_usec);
/* Ends every process now, whatever the state. */
int cell_kill(struct cell *c);

/* The fd to poll for readability (-1 when the backend has none, as in sim). */
int cell_fd(const struct cell *c);
/* The CLOCK_MONOTONIC time at which cell_process() must run even without
 * readability (the end of a grace period), or 0 for none. */
usec_t cell_deadline_usec(const struct cell *c);
/* Drains logs, notices exit, enforces the deadline.  Never blocks.  Returns a
 * CELL_EV_* mask or a negative errno. */
int cell_process(struct cell *c);
/* Blocks until DEAD or timeout (0: forever), calling cell_process().  Returns 0
 * when dead, -ETIMEDOUT otherwise. */
int cell_wait(struct cell *c, usec_t timeout_usec);

void cell_status(const struct cell *c, struct cell_status *ret);
int cell_usage(const struct cell *c, struct cell_usage *ret);
const char *cell_name(const struct cell *c);
const char *cell_state_name(enum cell_state s);

/* Copies log bytes from *cursor on into buf; advances *cursor.  The ring keeps the
 * last log_bytes; a cursor that fell behind is moved to the oldest byte and the
 * skipped count is added to *dropped (may be NULL).  Returns bytes copied. */
size_t cell_log_read(const struct cell *c, uint64_t *cursor, void *buf, size_t len,
                     uint64_t *dropped);
/* The cursor one past the newest byte (follow from here). */
uint64_t cell_log_end(const struct cell *c);

/* Tears down (kills, unmounts, removes cgroups and links) and frees; NULL is fine. */
void cell_free(struct cell *c);

/* ---- a command run inside a running Cell (exec probes) ----------------------------
 * cell_exec_start runs argv in the Cell as its program runs: its namespaces
 * (mount, pid, ipc, uts, cgroup, and net unless CELL_NET_HOST), its root, its
 * cgroups, its uid/gid with no capabilities and no_new_privs, its Landlock
 * grants and seccomp filter, its env and cwd.  It does not block: poll
 * cell_exec_fd() for readability and call cell_exec_process() until it returns
 * 1; cell_exec_free() ends the command (SIGKILL) if it still runs, so a
 * timeout is "free it".  Free every exec of a Cell before the Cell is stopped
 * again or freed.  Backends without it (sim) return -EOPNOTSUPP. */
#define CELL_EXEC_OUTPUT 512 /* bytes of output kept (stdout and stderr, merged) */

struct cell_exec_result {
    int exit_code;   /* when it exited; -1 if a signal ended it */
    int exit_signal; /* 0 unless a signal ended it */
    size_t output_len;
    char output[CELL_EXEC_OUTPUT + 1]; /* the first output bytes, NUL-terminated */
};

struct cell_exec;

int cell_exec_start(struct cell *c, const char *const *argv, struct cell_exec **ret,
                    struct sc_error *e);
int cell_exec_fd(const struct cell_exec *x);
/* Drains output, notices the end: 1 when done (then *ret is filled), 0 if not
 * yet, a negative errno on failure. */
int cell_exec_process(struct cell_exec *x, struct cell_exec_result *ret);
/* Ends the command if it still runs (SIGKILL), reaps it, frees; NULL is fine. */
void cell_exec_free(struct cell_exec *x);
