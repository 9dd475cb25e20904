/*
 * harness.h: how every unit-test binary runs its cmocka tests.
 *
 * Each test runs in its own forked process (a crash, a leak or a corrupted heap
 * in one test cannot hide in another), and the parent prints TAP so that meson
 * counts and names every case.  `./test_x NAME` runs only the tests whose name
 * contains NAME, in-process, for gdb.
 *
 * Usage:  static const struct CMUnitTest tests[] = { cmocka_unit_test(a), ... };
 *         int main(int argc, char **argv) { return sc_test_main(tests, argc, argv); }
 */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define sc_test_main(tests, argc, argv)                                                            \
    sc_test_run_all((tests), sizeof(tests) / sizeof((tests)[0]), (argc), (argv))

static inline int sc_test_run_all(const struct CMUnitTest *tests, size_t n, int argc, char **argv)
{
    if (argc > 1) {
        int failed = 0;
        for (size_t i = 0; i < n; i++)
            if (strstr(tests[i].name, argv[1]))
                failed += _cmocka_run_group_tests(tests[i].name, &tests[i], 1, NULL, NULL);
        return failed ? 1 : 0;
    }
    printf("1..%zu\n", n);
    fflush(stdout);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            dup2(2, 1); /* cmocka's chatter goes to stderr, TAP stays clean */
            int f = _cmocka_run_group_tests(tests[i].name, &tests[i], 1, NULL, NULL);
            fflush(NULL);
            _exit(f ? 1 : 0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0)
            ;
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!ok)
            failed++;
        printf("%sok %zu - %s", ok ? "" : "not ", i + 1, tests[i].name);
        if (WIFSIGNALED(st))
            printf(" (killed by signal %d)", WTERMSIG(st));
        printf("\n");
        fflush(stdout);
    }
    return failed ? 1 : 0;
}
