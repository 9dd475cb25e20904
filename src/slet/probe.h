/*
 * probe.h: the pure part of slet's health probes (probe.c): a Deployment
 * template's `health` read into probe specs, and the Kubernetes threshold rule
 * that turns a stream of attempt results into a state.  No clock, socket or
 * event here, so the unit tests (tests/unit/test_slet_probe.c) run it alone;
 * agent_probe.c runs the probes on the agent's loop.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "base/err.h"
#include "base/util.h"

#define SLET_PROBE_ARGS 64 /* the manifest's limit for exec */

enum slet_probe_kind {
    SLET_PROBE_STARTUP,
    SLET_PROBE_READINESS,
    SLET_PROBE_LIVENESS,
    SLET_PROBE_N
};
enum slet_probe_type { SLET_PROBE_HTTP, SLET_PROBE_TCP, SLET_PROBE_EXEC };

/* One probe as the template gives it, defaults filled in (Kubernetes' own:
 * period 10 s, timeout 1 s, initial delay 0, failure threshold 3, success
 * threshold 1; success threshold forced to 1 for liveness and startup). */
struct slet_probe_spec {
    bool set; /* configured */
    enum slet_probe_type type;
    char path[256];                  /* http: the request path */
    int port;                        /* http, tcp */
    char *argv[SLET_PROBE_ARGS + 1]; /* exec: owned, NULL-terminated */
    usec_t period_usec, timeout_usec, initial_delay_usec;
    unsigned failure_threshold, success_threshold;
};

const char *slet_probe_kind_name(enum slet_probe_kind k);

/* Reads template.health (startup, readiness, liveness) into specs[SLET_PROBE_N];
 * a port given by name is looked up in template.ports[].name.  Absent probes
 * have set = false.  On error nothing needs freeing. */
int slet_probe_parse(const json_t *template, struct slet_probe_spec specs[SLET_PROBE_N],
                     struct sc_error *e);
void slet_probe_spec_done(struct slet_probe_spec *s);

/* Consecutive-result counting: the state flips to success after
 * success_threshold successes in a row and to failure after failure_threshold
 * failures in a row; results that agree with the state reset the other run. */
struct slet_probe_count {
    bool ok;      /* the current state */
    unsigned run; /* consecutive results against the state */
};

/* Records one attempt; returns true when the state flipped. */
bool slet_probe_record(struct slet_probe_count *c, bool success, unsigned success_threshold,
                       unsigned failure_threshold);
