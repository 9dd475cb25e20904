/*
 * main.c: slet, the SwiftCube node agent.  For now it offers the by-hand verbs
 * (`slet cell run`, `slet image ...`); the agent loop (join, lease, assignments, probes) arrives
 * with issue 5 over the same Cell library.  A static table of verbs, looked up
 * by name (wireguard-tools habit).
 */
#include <stdio.h>
#include <string.h>

#include "slet/slet.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} verbs[] = {
    {"cell", slet_cell_main,
     "run one Cell in the foreground: slet cell run --root DIR|--image REF -- CMD"},
    {"image", slet_image_main, "the node's image store: pack, sign, import, ls, rm, push, pull"},
};

static int usage(void)
{
    fprintf(stderr, "usage: slet VERB ...\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(stderr, "  %-6s %s\n", verbs[i].name, verbs[i].help);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(argv[1], verbs[i].name))
            return verbs[i].run(argc - 1, argv + 1);
    return usage();
}
