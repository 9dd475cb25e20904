/*
 * sched.c: placement (see sched.h for the rules and their order).
 *
 * Design.  One call places the missing replicas of one Deployment.
 *
 *   candidates --(group by spread domain)--> one min-heap of nodes per domain,
 *   keyed (replicas of this Deployment on the node, load permille, node index);
 *   domains in a min-heap keyed (replicas of this Deployment in the domain,
 *   first node index of the domain).
 *
 *   place one replica:  d = top domain; pop nodes of d whose top does not fit
 *   (they never will again in this call: usage only grows); if d has none left,
 *   drop d and retry; else assign to d's top node, bump both keys, sift down.
 *
 * Invariants:
 *   1. nodes[] is sorted by name, so "the first by name" is the lowest index and
 *      no string is compared while placing (the caller sorts once per pass).
 *   2. Every heap key only grows during a call, so a sift-down restores order.
 *   3. A node leaves its heap only when the request no longer fits it.
 */
#include "sched/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct domain {
    uint32_t count; /* replicas of this Deployment in the domain */
    uint32_t first; /* lowest node index: the tie-break */
    uint32_t *heap; /* node indexes */
    uint32_t n;
};

struct ctx {
    bool pack; /* spread "none": replicas of the Deployment do not repel each other */
    struct sched_node *nodes;
    const struct sched_request *req;
    uint32_t *per_node;
    struct domain *doms;
};

static uint32_t load_permille(const struct sched_node *nd)
{
    uint64_t c = nd->cpu_millis > 0 ? (uint64_t)nd->cpu_used * 1000 / (uint64_t)nd->cpu_millis : 0;
    uint64_t m = nd->mem_bytes > 0 ? (uint64_t)nd->mem_used * 1000 / (uint64_t)nd->mem_bytes : 0;
    return (uint32_t)(c > m ? c : m);
}

static bool node_less(const struct ctx *c, uint32_t a, uint32_t b)
{
    if (!c->pack && c->per_node[a] != c->per_node[b])
        return c->per_node[a] < c->per_node[b];
    uint32_t la = load_permille(&c->nodes[a]), lb = load_permille(&c->nodes[b]);
    if (la != lb)
        return la < lb;
    return a < b;
}

static bool dom_less(const struct ctx *c, uint32_t a, uint32_t b)
{
    if (c->doms[a].count != c->doms[b].count)
        return c->doms[a].count < c->doms[b].count;
    return c->doms[a].first < c->doms[b].first;
}

typedef bool (*less_fn)(const struct ctx *, uint32_t, uint32_t);

static void sift_down(const struct ctx *c, uint32_t *h, uint32_t n, uint32_t i, less_fn less)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && less(c, h[l], h[m]))
            m = l;
        if (r < n && less(c, h[r], h[m]))
            m = r;
        if (m == i)
            return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heapify(const struct ctx *c, uint32_t *h, uint32_t n, less_fn less)
{
    for (uint32_t i = n / 2; i-- > 0;)
        sift_down(c, h, n, i, less);
}

static void pop(const struct ctx *c, uint32_t *h, uint32_t *n, less_fn less)
{
    h[0] = h[--*n];
    sift_down(c, h, *n, 0, less);
}

static const char *label_of(const struct sched_node *nd, const char *key)
{
    for (size_t i = 0; i < nd->n_labels; i++)
        if (!strcmp(nd->labels[i].key, key))
            return nd->labels[i].value;
    return NULL;
}

/* The first selector term the node does not carry, or NULL if it matches. */
static const struct sched_label *unmatched(const struct sched_node *nd,
                                           const struct sched_request *req)
{
    for (size_t i = 0; i < req->n_selector; i++) {
        const char *v = label_of(nd, req->selector[i].key);
        if (!v || strcmp(v, req->selector[i].value) != 0)
            return &req->selector[i];
    }
    return NULL;
}

static bool fits_cpu(const struct sched_node *nd, const struct sched_request *req)
{
    return nd->cpu_used + req->cpu_millis <= nd->cpu_millis;
}

static bool fits_mem(const struct sched_node *nd, const struct sched_request *req)
{
    return nd->mem_used + req->mem_bytes <= nd->mem_bytes;
}

static bool spread_by_node(const struct sched_request *req)
{
    return !req->spread || !*req->spread || !strcmp(req->spread, "node") ||
           !strcmp(req->spread, "none");
}

/* ---- the reason ------------------------------------------------------------------- */

struct why {
    char text[96];
    uint32_t count;
};

static void why_add(struct why *w, size_t *n, size_t cap, const char *text)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(w[i].text, text)) {
            w[i].count++;
            return;
        }
    if (*n < cap) {
        snprintf(w[*n].text, sizeof(w[*n].text), "%s", text);
        w[(*n)++].count = 1;
    }
}

static int why_cmp(const void *a, const void *b)
{
    const struct why *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->text, y->text);
}

/* "0/3 nodes: 2 insufficient memory, 1 not matching zone=eu-central" */
static void explain(const struct sched_node *nodes, size_t n, const struct sched_request *req,
                    char *out, size_t size)
{
    struct why w[16];
    size_t nw = 0, avail = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sched_node *nd = &nodes[i];
        const struct sched_label *u;
        char t[96];
        if (!nd->schedulable) {
            why_add(w, &nw, 16, "not ready");
        } else if ((u = unmatched(nd, req))) {
            snprintf(t, sizeof(t), "not matching %.40s=%.40s", u->key, u->value);
            why_add(w, &nw, 16, t);
        } else {
            bool c = fits_cpu(nd, req), m = fits_mem(nd, req);
            if (!c)
                why_add(w, &nw, 16, "insufficient cpu");
            if (!m)
                why_add(w, &nw, 16, "insufficient memory");
            avail += c && m;
        }
    }
    qsort(w, nw, sizeof(w[0]), why_cmp);
    int len = snprintf(out, size, "%zu/%zu nodes", avail, n);
    for (size_t i = 0; i < nw && len >= 0 && (size_t)len < size; i++)
        len += snprintf(out + len, size - (size_t)len, "%s%u %s", i ? ", " : ": ", w[i].count,
                        w[i].text);
    if (n == 0)
        snprintf(out, size, "0/0 nodes: no node has registered");
}

/* ---- placing --------------------------------------------------------------------- */

int sched_place(struct sched_node *nodes, size_t n, const struct sched_request *req,
                struct sched_result *res)
{
    memset(res, 0, sizeof(*res));
    res->node = xcalloc(req->count ? req->count : 1, sizeof(uint32_t));
    if (req->count == 0)
        return 0;
    struct ctx c = {
        .nodes = nodes, .req = req, .pack = req->spread && !strcmp(req->spread, "none")};
    c.per_node = req->per_node ? req->per_node : xcalloc(n ? n : 1, sizeof(uint32_t));

    /* group the candidates into domains, in node order (so domain order too) */
    uint32_t *dom_of = xmalloc((n ? n : 1) * sizeof(uint32_t));
    uint32_t *dsize = xcalloc(n ? n : 1, sizeof(uint32_t));
    uint32_t nd = 0;
    bool by_node = spread_by_node(req);
    const char **dval = by_node ? NULL : xcalloc(n ? n : 1, sizeof(char *));
    for (uint32_t i = 0; i < n; i++) {
        dom_of[i] = UINT32_MAX;
        if (!nodes[i].schedulable || unmatched(&nodes[i], req) || !fits_cpu(&nodes[i], req) ||
            !fits_mem(&nodes[i], req))
            continue;
        if (by_node) {
            dom_of[i] = 0;
        } else {
            /* label values are few in practice (zones, racks); a linear search keeps
             * this simple, and is bounded by the domains seen so far */
            const char *v = label_of(&nodes[i], req->spread);
            v = v ? v : "";
            uint32_t d = 0;
            while (d < nd && strcmp(dval[d], v) != 0)
                d++;
            if (d == nd)
                dval[nd++] = v;
            dom_of[i] = d;
        }
        if (by_node && nd == 0)
            nd = 1;
        dsize[dom_of[i]]++;
    }
    c.doms = xcalloc(nd ? nd : 1, sizeof(struct domain));
    uint32_t *pool = xmalloc((n ? n : 1) * sizeof(uint32_t)), off = 0;
    for (uint32_t d = 0; d < nd; d++) {
        c.doms[d].heap = pool + off;
        c.doms[d].first = UINT32_MAX;
        off += dsize[d];
    }
    for (uint32_t i = 0; i < n; i++) {
        if (dom_of[i] == UINT32_MAX)
            continue;
        struct domain *d = &c.doms[dom_of[i]];
        d->heap[d->n++] = i;
        d->count += c.per_node[i];
        if (d->first == UINT32_MAX)
            d->first = i;
    }
    uint32_t *dheap = xmalloc((nd ? nd : 1) * sizeof(uint32_t)), ndh = 0;
    for (uint32_t d = 0; d < nd; d++) {
        heapify(&c, c.doms[d].heap, c.doms[d].n, node_less);
        dheap[ndh++] = d;
    }
    heapify(&c, dheap, ndh, dom_less);

    while (res->placed < req->count && ndh > 0) {
        struct domain *d = &c.doms[dheap[0]];
        while (d->n > 0 &&
               (!fits_cpu(&nodes[d->heap[0]], req) || !fits_mem(&nodes[d->heap[0]], req)))
            pop(&c, d->heap, &d->n, node_less);
        if (d->n == 0) {
            pop(&c, dheap, &ndh, dom_less);
            continue;
        }
        uint32_t i = d->heap[0];
        nodes[i].cpu_used += req->cpu_millis;
        nodes[i].mem_used += req->mem_bytes;
        c.per_node[i]++;
        d->count++;
        res->node[res->placed++] = i;
        sift_down(&c, d->heap, d->n, 0, node_less);
        sift_down(&c, dheap, ndh, 0, dom_less);
    }
    if (res->placed < req->count)
        explain(nodes, n, req, res->reason, sizeof(res->reason));

    free(dheap);
    free(pool);
    free(c.doms);
    free(dval);
    free(dsize);
    free(dom_of);
    if (!req->per_node)
        free(c.per_node);
    return 0;
}

void sched_result_done(struct sched_result *res)
{
    free(res->node);
    memset(res, 0, sizeof(*res));
}

/* ---- removing --------------------------------------------------------------------- */

static int victim_cmp(const void *a, const void *b, void *arg)
{
    const struct sched_replica *base = arg;
    const struct sched_replica *x = &base[*(const size_t *)a];
    const struct sched_replica *y = &base[*(const size_t *)b];
    if (x->created_revision != y->created_revision)
        return x->created_revision > y->created_revision ? -1 : 1;
    return strcmp(y->name, x->name);
}

void sched_pick_victims(const struct sched_replica *r, size_t n, size_t *idx)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), victim_cmp, (void *)r);
}
