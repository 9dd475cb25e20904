/*
 * main.c: slet, the SwiftCube node agent: `slet agent` (or `slet --server ...`
 * with no verb, as the issue writes it) runs the agent loop (agent.c); the
 * by-hand verbs `slet cell run` and `slet image ...` drive the same Cell and
 * image libraries.  A static table of verbs, looked up by name (wireguard-tools
 * habit).
 */
#include <stdio.h>
#include <string.h>

#include "slet/slet.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} verbs[] = {
    {"agent", slet_agent_main,
     "the node agent: slet agent --server URL --name NODE --data-dir DIR [--simulate N]"},
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
    if (!strncmp(argv[1], "--", 2) && strcmp(argv[1], "--help") != 0)
        return slet_agent_main(argc, argv); /* `slet --server URL --name NODE ...` */
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(argv[1], verbs[i].name))
            return verbs[i].run(argc - 1, argv + 1);
    return usage();
}
