/*
 * slet.h: the node agent's command verbs.  `slet` is a thin main over them
 * (main.c); each verb is usable on its own and parses, validates and only then
 * acts (wireguard-tools habit).
 */
#pragma once

/* `slet cell ...`: run one Cell by hand (slet_cell.c). */
int slet_cell_main(int argc, char **argv);
