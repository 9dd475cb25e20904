/*
 * sysutil.h: what every system test needs to drive a real sctld: temporary data
 * directories, a free loopback port, starting and ending the daemon by its PID,
 * and a minimal blocking HTTP/1.1 client (keep-alive, Content-Length and chunked
 * bodies) plus an incremental parser for chunked watch streams.
 *
 * The client is deliberately our own few hundred lines rather than libcurl: the
 * tests must see exactly which bytes arrived before a SIGKILL (an acknowledged
 * write is one whose full 200 response was read), and the watch tests multiplex a
 * thousand streams over epoll, which wants a push parser.
 *
 * Every helper prints what went wrong to stderr and returns a negative value;
 * the tests turn that into a failure with context (seed, round, client).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the daemon ------------------------------------------------------------ */

struct sys_server {
    const char *exe;      /* path of sctld */
    char top[200];        /* the test's temp dir: data/ and sctld.log inside */
    char dir[256];        /* data dir (created by sys_tmpdir) */
    char log[300];        /* sctld's stderr and stdout are appended here */
    const char *extra[8]; /* extra arguments, NULL-terminated */
    int port;             /* chosen at the first start, kept across restarts */
    pid_t pid;            /* 0 when not running */
};

/* Makes a fresh directory $TMPDIR/sc-<tag>-XXXXXX into out. */
int sys_tmpdir(char *out, size_t n, const char *tag);
/* rm -rf of a directory this test created. */
void sys_rm_rf(const char *dir);
/* A loopback TCP port that was free a moment ago (bind port 0, read, close). */
int sys_free_port(void);
/* Raises RLIMIT_NOFILE to at least n (for the test and the sctld it forks). */
int sys_raise_nofile(long n);

/* Makes the test's temp dir and fills exe, top, dir and log; at exit, sctld is
 * killed if still running and the dir removed, unless the test failed or
 * SC_KEEP=1 (then its path is printed). */
int sys_server_setup(struct sys_server *s, const char *exe, const char *tag);
/* Starts sctld on s->dir and s->port (choosing the port on first start) and waits
 * until /healthz answers 200, up to timeout_ms. */
int sys_server_start(struct sys_server *s, int timeout_ms);
/* Sends sig to s->pid and waits for it up to timeout_ms (then SIGKILLs it and
 * returns -ETIMEDOUT); *status gets the wait status. */
int sys_server_stop(struct sys_server *s, int sig, int timeout_ms, int *status);
/* Prints the last lines of the daemon's log to stderr. */
void sys_server_dump_log(const struct sys_server *s);

/* ---- HTTP client ----------------------------------------------------------- */

struct sys_conn {
    int fd;
    char *buf; /* bytes received and not yet consumed: buf[off..len) */
    size_t len, cap, off;
};

struct sys_resp {
    int status;
    int64_t revision; /* X-Sc-Revision, -1 if absent */
    char *body;       /* NUL-terminated */
    size_t body_len;
};

/* Connects to 127.0.0.1:port (blocking, 60 s receive timeout).  rcvbuf > 0 sets
 * SO_RCVBUF before connecting. */
int sys_conn_open(struct sys_conn *c, int port, int rcvbuf);
void sys_conn_close(struct sys_conn *c);
/* Writes one request (Content-Length body when body != NULL). */
int sys_send_request(struct sys_conn *c, const char *method, const char *path, const void *body,
                     size_t len);
/* Reads one full response: status line, headers, body. -ECONNRESET when the peer
 * closed before the response was complete. */
int sys_read_response(struct sys_conn *c, struct sys_resp *r);
/* Both of the above. */
int sys_http(struct sys_conn *c, const char *method, const char *path, const void *body, size_t len,
             struct sys_resp *r);
/* One request on a new connection. */
int sys_http1(int port, const char *method, const char *path, const void *body, size_t len,
              struct sys_resp *r);
void sys_resp_free(struct sys_resp *r);

/* ---- chunked newline-delimited stream (watch) ------------------------------ */

enum sys_stream_state {
    SYS_ST_HEADERS,
    SYS_ST_SIZE,
    SYS_ST_DATA,
    SYS_ST_DATA_CRLF,
    SYS_ST_DONE,
    SYS_ST_ERROR
};

struct sys_stream {
    enum sys_stream_state st;
    int status;
    char *hdr; /* header bytes, then the size line */
    size_t hdr_len, hdr_cap;
    size_t chunk_left;
    char *line; /* the incomplete line */
    size_t line_len, line_cap;
};

typedef int (*sys_line_fn)(void *ud, char *line, size_t n);

/* Feeds received bytes; calls fn for each complete line (without '\n').  Returns
 * 1 when the final chunk arrived, 0 for more, negative on a protocol error or when
 * fn returned negative. */
int sys_stream_feed(struct sys_stream *s, const char *p, size_t n, sys_line_fn fn, void *ud);
void sys_stream_done(struct sys_stream *s);

/* ---- misc ------------------------------------------------------------------ */

uint64_t sys_now_ms(void);
void sys_sleep_ms(unsigned ms);
/* Fatal test failure: prints, sets sys_failed and exits 1 (the caller's atexit
 * hooks stop sctld and keep its data dir for inspection). */
extern bool sys_failed;
_Noreturn void sys_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
