/*
 * u64map.h: an open-addressing hash map from nonzero 64-bit ids to pointers
 * (leases by id, later Raft peers and connections by id).  Linear probing with
 * backward-shift deletion, so there are no tombstones and lookups stay short.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct u64map_slot {
    uint64_t key; /* 0 = empty */
    void *val;
};

struct u64map {
    struct u64map_slot *slots;
    size_t cap, len; /* cap is a power of two, or 0 */
};

void u64map_done(struct u64map *m);
void *u64map_get(const struct u64map *m, uint64_t key);
/* Inserts or replaces; key must not be 0. */
void u64map_put(struct u64map *m, uint64_t key, void *val);
/* Removes and returns the value, or NULL. */
void *u64map_del(struct u64map *m, uint64_t key);

/* Iteration: for (size_t i = 0; u64map_next(m, &i, &k, &v);) ... (no changes inside) */
int u64map_next(const struct u64map *m, size_t *iter, uint64_t *key, void **val);
