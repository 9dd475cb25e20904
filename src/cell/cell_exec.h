/*
 * cell_exec.h: the last things a Cell's PID 1 does in the sandbox
 * (cell_sandbox.c): finding the program on the Cell's own PATH and execing it,
 * and, for init Cells without the init program's memfd, the init loop.  The
 * init program (cell_init.c) does the same without libc and follows these
 * rules; keep the two in step.
 */
#pragma once

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* execvpe without its two problems here: it searches the caller's PATH, not
 * envp's, and setting PATH would allocate and change the environment of the
 * supervisor, whose memory a vfork-style child shares.  Returns -errno. */
static inline int cell_exec_path(char *const argv[], char *const envp[])
{
    const char *file = argv[0];
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return -errno;
    }
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (size_t i = 0; envp[i]; i++)
        if (!strncmp(envp[i], "PATH=", 5))
            path = envp[i] + 5;
    int r = -ENOENT;
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        char full[PATH_MAX];
        int n = snprintf(full, sizeof(full), "%.*s/%s", (int)(end - p), p, file);
        if (n > 0 && (size_t)n < sizeof(full)) {
            execve(full, argv, envp);
            if (errno == EACCES)
                r = -EACCES; /* remembered, like execvp: a later ENOENT does not hide it */
            else if (errno != ENOENT && errno != ENOTDIR)
                return -errno;
        }
        if (!*end)
            return r;
        p = end;
    }
}

/* The optional PID 1 runs the program as its child.  The stop signals and
 * SIGCHLD are blocked before the program exists (blocked, a signal is queued
 * even for an init, where an unhandled one would be dropped; the block also
 * survives the exec of the init program, so no SIGTERM is lost in between)
 * and taken with sigwaitinfo: stop signals are forwarded, SIGCHLD reaps. */
static inline void cell_init_sigset(sigset_t *set)
{
    static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
        sigaddset(set, fwd[i]);
    sigaddset(set, SIGCHLD);
}

/* The init loop, with the program started as child and the signals of
 * cell_init_sigset blocked: when the program is gone init exits with its
 * status (128+N for signal N), and the kernel ends whatever is left in the
 * namespace.  Never returns. */
static inline void cell_init_wait(pid_t child)
{
    sigset_t set;
    cell_init_sigset(&set);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
            if (pid == child)
                _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
}
