/*
 * util.h: small helpers every layer uses: allocation that aborts on exhaustion,
 * scope cleanup (systemd's _cleanup_ and TAKE_PTR), clocks and min/max.
 *
 * Allocation failure aborts: like Redis, a control-plane daemon that cannot get
 * memory is better restarted by its supervisor than limping on; every size a peer
 * can grow is bounded elsewhere, so exhaustion means a bug or a misconfiguration.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t usec_t;
#define USEC_PER_SEC  1000000ULL
#define USEC_PER_MSEC 1000ULL
#define NSEC_PER_USEC 1000ULL

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#define _cleanup_(f)  __attribute__((cleanup(f)))
#define _unused_      __attribute__((unused))
#define _noreturn_    __attribute__((noreturn))
#define _likely_(x)   __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

/* Hands a pointer out of a _cleanup_ scope: returns it and clears the variable. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _tp_ = (p);                                                                  \
        (p) = NULL;                                                                                \
        _tp_;                                                                                      \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _tf_ = (fd);                                                                           \
        (fd) = -1;                                                                                 \
        _tf_;                                                                                      \
    })

/* The value of one hexadecimal digit, or -1. */
static inline int sc_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

_noreturn_ void sc_oom(void);

/* FNV-1a of a string, never 0 (so it can key a u64map). */
static inline uint64_t sc_str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ? h : 1;
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (_unlikely_(!p))
        sc_oom();
    return p;
}
static inline void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (_unlikely_(!p))
        sc_oom();
    return p;
}
static inline void *xrealloc(void *o, size_t n)
{
    void *p = realloc(o, n ? n : 1);
    if (_unlikely_(!p))
        sc_oom();
    return p;
}
static inline char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (_unlikely_(!p))
        sc_oom();
    return p;
}
static inline void *xmemdup(const void *s, size_t n)
{
    void *p = xmalloc(n);
    if (n)
        memcpy(p, s, n);
    return p;
}
/* Grows *arr (of *cap elements of size sz) so that it holds at least need. */
void *sc_grow(void *arr, size_t *cap, size_t need, size_t sz);

static inline void freep(void *p)
{
    free(*(void **)p);
}
static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

static inline usec_t now_usec(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / NSEC_PER_USEC;
}

/* Writes all of buf or returns -errno; retries EINTR and short writes. */
int sc_write_all(int fd, const void *buf, size_t len);
/* fsyncs the directory holding path (after a create or rename inside it). */
int sc_fsync_dir(const char *dir);
/* mkdir -p with mode 0700 for missing components. */
int sc_mkdir_p(const char *path);
