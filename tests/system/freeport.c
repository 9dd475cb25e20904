/*
 * freeport.c: prints a loopback TCP port that was free a moment ago (bound to
 * port 0 and released), for shell tests that must start sctld on their own port
 * (tests/system/api_doc.bats) without guessing.
 */
#include <stdio.h>
#include <string.h>

#include "sysutil.h"

int main(void)
{
    int p = sys_free_port();
    if (p < 0) {
        fprintf(stderr, "freeport: %s\n", strerror(-p));
        return 1;
    }
    printf("%d\n", p);
    return 0;
}
