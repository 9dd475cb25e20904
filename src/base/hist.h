/*
 * hist.h: a fixed-bucket latency histogram, rendered in Prometheus text format.
 * Buckets are powers of two in microseconds (1 us .. ~8 s); observing is a few
 * instructions and never allocates.
 */
#pragma once

#include <stdint.h>

#include "base/buf.h"

#define SC_HIST_BUCKETS 24

struct sc_hist {
    uint64_t bucket[SC_HIST_BUCKETS]; /* bucket[i]: observations <= 2^i us */
    uint64_t inf, count;
    uint64_t sum_usec;
};

void sc_hist_observe(struct sc_hist *h, uint64_t usec);
/* Appends `name_bucket{le=..}`, `name_sum`, `name_count` lines (values in seconds). */
void sc_hist_render(const struct sc_hist *h, const char *name, const char *help, struct sc_buf *out);
/* The smallest bucket bound (us) under which at least q (0..1) of observations fall. */
uint64_t sc_hist_quantile_usec(const struct sc_hist *h, double q);
