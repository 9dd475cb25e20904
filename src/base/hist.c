/* hist.c: power-of-two latency histogram (see hist.h). */
#include "base/hist.h"

void sc_hist_observe(struct sc_hist *h, uint64_t usec)
{
    h->count++;
    h->sum_usec += usec;
    for (int i = 0; i < SC_HIST_BUCKETS; i++) {
        if (usec <= (1ULL << i)) {
            h->bucket[i]++;
            return;
        }
    }
    h->inf++;
}

void sc_hist_render(const struct sc_hist *h, const char *name, const char *help, struct sc_buf *out)
{
    sc_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SC_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        sc_buf_printf(out, "%s_bucket{le=\"%.6f\"} %llu\n", name, (double)(1ULL << i) / 1e6,
                      (unsigned long long)cum);
    }
    sc_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    sc_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, (double)h->sum_usec / 1e6, name,
                  (unsigned long long)h->count);
}

uint64_t sc_hist_quantile_usec(const struct sc_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.5), cum = 0;
    if (want == 0)
        want = 1;
    for (int i = 0; i < SC_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        if (cum >= want)
            return 1ULL << i;
    }
    return UINT64_MAX;
}
