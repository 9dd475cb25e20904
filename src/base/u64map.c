/* u64map.c: linear-probing id map (see u64map.h). */
#include "base/u64map.h"

#include <assert.h>

#include "base/util.h"

static size_t hash(uint64_t k, size_t mask)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & mask;
}

void u64map_done(struct u64map *m)
{
    free(m->slots);
    *m = (struct u64map){0};
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash(key, mask);; i = (i + 1) & mask) {
        if (m->slots[i].key == key)
            return m->slots[i].val;
        if (m->slots[i].key == 0)
            return NULL;
    }
}

static void rehash(struct u64map *m, size_t cap)
{
    struct u64map_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->slots = xcalloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->len = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            u64map_put(m, old[i].key, old[i].val);
    free(old);
}

void u64map_put(struct u64map *m, uint64_t key, void *val)
{
    assert(key != 0);
    if ((m->len + 1) * 4 > m->cap * 3)
        rehash(m, m->cap ? m->cap * 2 : 16);
    size_t mask = m->cap - 1;
    for (size_t i = hash(key, mask);; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {
            m->slots[i].val = val;
            return;
        }
        if (m->slots[i].key == 0) {
            m->slots[i] = (struct u64map_slot){key, val};
            m->len++;
            return;
        }
    }
}

void *u64map_del(struct u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t mask = m->cap - 1, i = hash(key, mask);
    while (m->slots[i].key != key) {
        if (m->slots[i].key == 0)
            return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->slots[i].val;
    /* Backward-shift: move later members of the probe run into the hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t want = hash(m->slots[j].key, mask);
        /* j may move to i if its home is not in (i, j] (cyclically). */
        if ((j > i && (want <= i || want > j)) || (j < i && (want <= i && want > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (struct u64map_slot){0};
    m->len--;
    return val;
}

int u64map_next(const struct u64map *m, size_t *iter, uint64_t *key, void **val)
{
    for (; *iter < m->cap; (*iter)++) {
        if (m->slots[*iter].key) {
            *key = m->slots[*iter].key;
            *val = m->slots[*iter].val;
            (*iter)++;
            return 1;
        }
    }
    return 0;
}
