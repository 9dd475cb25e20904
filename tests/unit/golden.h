/*
 * golden.h: a small data-driven test runner in the style of etcd's datadriven
 * package.  A script file holds blocks:
 *
 *     command arg arg      <- one or more input lines
 *     ----
 *     expected output      <- until a blank line
 *
 * The runner feeds each block's input to a callback, compares the output with
 * the expected text and reports the first difference with its line number.  With
 * SC_REWRITE=1 in the environment it rewrites the file with the actual outputs
 * instead (re-recording), so a deliberate change of behaviour is one command.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* Runs one block: input (NUL-terminated, lines joined by '\n'), appends output. */
typedef void (*golden_fn)(void *ud, const char *input, struct sc_buf *out);

/* Returns 0 when every block matched (or the file was rewritten), -1 otherwise
 * after printing the difference to stderr. */
static inline int golden_run(const char *path, golden_fn fn, void *ud)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "golden: cannot open %s\n", path);
        return -1;
    }
    struct sc_buf rewritten = {0}, input = {0}, expect = {0}, out = {0};
    char line[8192];
    int lineno = 0, rc = 0, block_line = 0;
    bool rewrite = getenv("SC_REWRITE") && strcmp(getenv("SC_REWRITE"), "1") == 0;
    enum { IDLE, INPUT, EXPECT } st = IDLE;
    for (;;) {
        char *got = fgets(line, sizeof(line), f);
        if (got)
            lineno++;
        bool blank = got && (line[0] == '\n' || line[0] == '\0');
        if (st == EXPECT && (!got || blank)) {
            sc_buf_reset(&out);
            sc_buf_put_u8(&input, 0);
            fn(ud, (const char *)input.data, &out);
            if (out.len && out.data[out.len - 1] != '\n')
                sc_buf_put_u8(&out, '\n');
            sc_buf_put(&rewritten, out.data, out.len);
            if (!rewrite && (out.len != expect.len || memcmp(out.data, expect.data, out.len))) {
                fprintf(stderr, "golden: %s:%d: output differs\n--- expected\n%.*s--- got\n%.*s",
                        path, block_line, (int)expect.len, (char *)expect.data, (int)out.len,
                        (char *)out.data);
                rc = -1;
            }
            sc_buf_reset(&input);
            sc_buf_reset(&expect);
            st = IDLE;
        }
        if (!got)
            break;
        if (st == IDLE) {
            sc_buf_put(&rewritten, line, strlen(line));
            if (blank || line[0] == '#')
                continue;
            st = INPUT;
            block_line = lineno;
        }
        if (st == INPUT) {
            if (strcmp(line, "----\n") == 0) {
                if (input.len && input.data[input.len - 1] == '\n')
                    input.len--;
                sc_buf_put(&rewritten, line, strlen(line));
                st = EXPECT;
                continue;
            }
            if (input.len)
                sc_buf_put(&rewritten, line, strlen(line));
            sc_buf_put(&input, line, strlen(line));
            continue;
        }
        if (st == EXPECT)
            sc_buf_put(&expect, line, strlen(line));
    }
    fclose(f);
    if (rewrite) {
        FILE *w = fopen(path, "we");
        if (!w || fwrite(rewritten.data, 1, rewritten.len, w) != rewritten.len || fclose(w)) {
            fprintf(stderr, "golden: cannot rewrite %s\n", path);
            rc = -1;
        }
    }
    sc_buf_free(&rewritten);
    sc_buf_free(&input);
    sc_buf_free(&expect);
    sc_buf_free(&out);
    return rc;
}
