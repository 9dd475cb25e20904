/*
 * cell_sim.c: the `sim` Cell backend: the whole lifecycle of cell.h with no
 * kernel objects, a few dozen bytes per Cell, and every state change caused by
 * an explicit call, so a simulation driven by a seed replays exactly.
 *
 * Design
 *   1. Nothing changes state on its own: exits, OOM kills and honoured stops are
 *      recorded as "pending" and applied by the next cell_process(), as a real
 *      backend would notice them on its next poll.
 *   2. Usage is a pure function of the spec and state (a running Cell uses one
 *      pid and a quarter of its memory limit), so tests can assert it.
 */
#include "cell/cell_sim.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cell/cell_int.h"

struct sim_cell {
    bool pending, ignore_term, oom, started_pending;
    int code, sig;
    uint64_t runs;
};

static int sim_host_init(struct cell_host *h, const struct cell_host_config *cfg,
                         struct sc_error *e)
{
    h->impl = NULL;
    return 0;
}

static void sim_host_done(struct cell_host *h)
{
}

static int sim_prepare(struct cell_host *h, struct sc_error *e)
{
    return 0;
}

static int sim_create(struct cell *c, struct sc_error *e)
{
    c->impl = xcalloc(1, sizeof(struct sim_cell));
    return 0;
}

static int sim_start(struct cell *c, struct sc_error *e)
{
    struct sim_cell *sc = c->impl;
    const char *prog = strrchr(c->spec.argv[0], '/');
    prog = prog ? prog + 1 : c->spec.argv[0];
    sc->pending = false;
    sc->oom = false;
    if (!strcmp(prog, "true") || !strcmp(prog, "false")) {
        sc->pending = true;
        sc->code = prog[0] == 'f';
        sc->sig = 0;
    }
    sc->runs++;
    sc->started_pending = c->start_async; /* reported by the next cell_process */
    c->st.pid = (int)sc->runs;            /* a stand-in: distinct per run */
    return 0;
}

static int sim_term(struct cell *c)
{
    struct sim_cell *sc = c->impl;
    if (!sc->ignore_term && !sc->pending) {
        sc->pending = true;
        sc->code = -1;
        sc->sig = SIGTERM;
    }
    return 0;
}

static int sim_kill(struct cell *c)
{
    struct sim_cell *sc = c->impl;
    sc->pending = true;
    sc->code = -1;
    sc->sig = SIGKILL;
    /* like the kernel, a kill takes effect without waiting for the next poll */
    c->st.oom_killed = sc->oom;
    cell_mark_dead(c, -1, SIGKILL);
    sc->pending = false;
    return 0;
}

static int sim_process(struct cell *c)
{
    struct sim_cell *sc = c->impl;
    int ev = sc->started_pending ? CELL_EV_STARTED : 0;
    sc->started_pending = false;
    if (!sc->pending)
        return ev;
    sc->pending = false;
    c->st.oom_killed = sc->oom;
    cell_mark_dead(c, sc->code, sc->sig);
    return ev | CELL_EV_EXIT;
}

static int sim_usage(const struct cell *c, struct cell_usage *u)
{
    bool live = c->st.state == CELL_RUNNING || c->st.state == CELL_STOPPING;
    u->pids = live ? 1 : 0;
    u->memory_bytes = live ? c->spec.memory_bytes / 4 : 0;
    u->memory_peak_bytes = c->spec.memory_bytes / 4;
    u->cpu_usec = 0;
    return 0;
}

static void sim_destroy(struct cell *c)
{
    free(c->impl);
    c->impl = NULL;
}

static int sim_check(struct cell *c)
{
    if (c->host->ops != &cell_sim_ops)
        return -EINVAL;
    if (c->st.state != CELL_RUNNING && c->st.state != CELL_STOPPING)
        return -ESRCH;
    return 0;
}

int cell_sim_exit(struct cell *c, int code, int sig)
{
    int r = sim_check(c);
    if (r < 0)
        return r;
    struct sim_cell *sc = c->impl;
    sc->pending = true;
    sc->code = sig > 0 ? -1 : code;
    sc->sig = sig > 0 ? sig : 0;
    return 0;
}

int cell_sim_oom(struct cell *c)
{
    int r = cell_sim_exit(c, -1, SIGKILL);
    if (r >= 0)
        ((struct sim_cell *)c->impl)->oom = true;
    return r;
}

int cell_sim_write_log(struct cell *c, const char *s)
{
    int r = sim_check(c);
    if (r < 0)
        return r;
    cell_log_append(c, s, strlen(s));
    return 0;
}

void cell_sim_ignore_term(struct cell *c, bool ignore)
{
    if (c->host->ops == &cell_sim_ops)
        ((struct sim_cell *)c->impl)->ignore_term = ignore;
}

const struct cell_ops cell_sim_ops = {
    .name = "sim",
    .host_init = sim_host_init,
    .host_done = sim_host_done,
    .prepare = sim_prepare,
    .create = sim_create,
    .start = sim_start,
    .term = sim_term,
    .kill = sim_kill,
    .process = sim_process,
    .usage = sim_usage,
    .destroy = sim_destroy,
};
