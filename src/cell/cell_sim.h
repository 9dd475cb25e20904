/*
 * cell_sim.h: controls for the in-memory `sim` Cell backend.
 *
 * Sim Cells have no processes: they exist so that one process can host
 * thousands of simulated nodes for scale tests (like kubemark) and so that node
 * agent logic can be tested deterministically.  A sim Cell whose argv[0] is
 * "true" or "false" exits 0 or 1 at its first cell_process(); any other program
 * runs until stopped, killed, or told to end by the calls below.  A stop is
 * honoured at the next cell_process() unless cell_sim_ignore_term() was set,
 * in which case only the end of the grace period (or cell_kill) ends it.
 */
#pragma once

#include <stdbool.h>

#include "cell/cell.h"

/* The sim "process" exits with code (or dies of signal, when sig > 0). */
int cell_sim_exit(struct cell *c, int code, int sig);
/* The sim "process" is killed by the memory limit. */
int cell_sim_oom(struct cell *c);
/* Appends to the Cell's log as if the program had written it. */
int cell_sim_write_log(struct cell *c, const char *s);
void cell_sim_ignore_term(struct cell *c, bool ignore);
