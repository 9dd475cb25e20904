/*
 * lbt.h: what the load-balancer tests and benchmark need around a real nginx or
 * HAProxy: small HTTP backends that answer their own name (forked from the test,
 * ended by PID), a client that asks the LB which backend served a request, and
 * a private temporary directory.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Forks a backend on 127.0.0.1:port answering every request with "name\n"
 * (HTTP/1.1, keep-alive).  Returns its PID once it listens, or -errno. */
pid_t lbt_backend_start(const char *name, int port);
/* Ends a backend by its PID (SIGKILL, reaped). */
void lbt_backend_stop(pid_t pid);
/* One GET / through 127.0.0.1:port on a new connection; the backend's name
 * (without the newline) into name.  Returns the HTTP status or -errno. */
int lbt_ask(int port, char *name, size_t n);
/* mkdtemp under /tmp (short: HAProxy's unix socket path must fit 108 bytes). */
int lbt_tmpdir(char *out, size_t n);
void lbt_rm_rf(const char *dir);
