/*
 * cell_init.c: the optional PID 1 of init Cells (spec.init), as a program of
 * its own: `cell-init PROGRAM ARGS...` with the Cell's environment.
 *
 * Why a program: an init that is our code running on in the cloned child never
 * execs, so its Cell could not take the vfork-style start (the supervisor or
 * spawner is suspended until the child execs) and had to clone a copy of the
 * supervisor instead, at about twice the CPU.  Built static (any image can run
 * it, whatever its libc) and without the sanitizers, embedded in the library
 * (cell_init_blob.c, generated), put into a sealed memfd once per host and
 * exec'd with execveat as the last step of the sandbox: seccomp, Landlock, the
 * uid and no_new_privs are already in place, so it runs exactly as the program
 * would.  It starts the program with posix_spawnp (vfork-style) and then runs
 * cell_init_wait (cell_exec.h), the same loop as the in-process fallback.
 */
#include "cell_exec.h"

#include <spawn.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc < 2) {
        dprintf(2, "usage: cell-init PROGRAM [ARGS...]\n");
        return 127;
    }
    sigset_t set, none;
    cell_init_sigset(&set);
    sigprocmask(SIG_BLOCK, &set, NULL); /* the sandbox blocked them already */
    /* posix_spawnp: a vfork-style child (no copy of us), PATH from our
     * environment, which is the Cell's; the program gets an empty mask. */
    sigemptyset(&none);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    pid_t child;
    int r = posix_spawnp(&child, argv[1], NULL, &at, argv + 1, environ);
    posix_spawnattr_destroy(&at);
    if (r != 0) {
        dprintf(2, "cell init: exec %s: %s\n", argv[1], strerror(r));
        return 127;
    }
    cell_init_wait(child);
}
