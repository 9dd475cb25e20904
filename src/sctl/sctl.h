/*
 * sctl.h: what the verbs of sctl share: the connection, the output format, the
 * exit codes, request helpers that print the server's errors the one same way,
 * and an aligned-table printer.
 *
 * Exit codes (scripts rely on them; docs/sctl.md lists them):
 *   0 success, 1 refused by the server (4xx other than 404: invalid, conflict),
 *   2 usage error (bad flags or arguments; nothing was sent), 3 unavailable (no
 *   connection, timeout, 5xx such as no quorum), 4 not found (404).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "client/client.h"

enum {
    SCTL_EXIT_OK = 0,
    SCTL_EXIT_REFUSED = 1,
    SCTL_EXIT_USAGE = 2,
    SCTL_EXIT_UNAVAILABLE = 3,
    SCTL_EXIT_NOT_FOUND = 4,
};

/* -o: json prints the server's JSON; yaml and name are for objects (get, apply). */
enum sctl_output { SCTL_OUT_TABLE, SCTL_OUT_WIDE, SCTL_OUT_JSON, SCTL_OUT_YAML, SCTL_OUT_NAME };

struct sctl {
    const char *server; /* resolved: --server, $SCTL_SERVER, config file, default */
    const char *server_from;
    const char *ca, *cert, *key; /* https://: --ca/--cert/--key, else the config file's */
    enum sctl_output output;
    struct sc_client *client; /* opened on first use */
};

/* One verb (a row of the table in main.c). */
struct sctl_verb {
    const char *name;
    int (*run)(struct sctl *s, int argc, char **argv);
    const char *args;
    const char *help;
};

/* Prints "sctl: ..." to stderr and returns SCTL_EXIT_USAGE. */
int sctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sends a request; on a 2xx answer stores the decoded JSON body in *out (may be
 * NULL to ignore it) and returns 0; otherwise prints the error and returns the
 * exit code for it. */
int sctl_call(struct sctl *s, const char *method, const char *path, const char *body, json_t **out);
/* The same, but an answer with HTTP status quiet is not printed (the caller
 * handles it: a 409 to retry, a 404 to report its own way); *status gets the HTTP
 * status, 0 when there was no answer. */
int sctl_call_status(struct sctl *s, const char *method, const char *path, const char *body,
                     json_t **out, long quiet, long *status);
/* For streams: a client, opened on first use; NULL after printing why. */
struct sc_client *sctl_client(struct sctl *s);
/* The exit code and message for a failed request or non-2xx reply. */
int sctl_fail(struct sctl *s, int rc, const struct sc_reply *r, const struct sc_error *e);

/* Runs the subverb argv[1] of the verb argv[0] from a table (args/help unused). */
/* Parses `--timeout DURATION` and one boolean `--FLAG` (e.g. "no-wait") from
 * argv (getopt_long: optind is where the operands start); 0 or a usage exit code. */
int sctl_timeout_opts(int argc, char **argv, const char *verb, const char *flag,
                      int64_t *timeout_ms, bool *flag_set);
int sctl_subverb(struct sctl *s, int argc, char **argv, const struct sctl_verb *sub, size_t n,
                 const char *usage);

/* Prints JSON pretty, with a newline. */
void sctl_print_json(const json_t *j);

/* An aligned table: add the header, then rows, then print (upper-case header,
 * two spaces between columns, like kubectl). */
struct sctl_table {
    int indent; /* spaces before every row (describe's nested tables) */
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, row-major; row 0 is the header */
};
void sctl_table_row(struct sctl_table *t, size_t ncols, ...); /* const char * cells */
void sctl_table_print(struct sctl_table *t);

/* Parses an unsigned decimal option value; returns -1 (after printing) if bad. */
int sctl_parse_u64(const char *opt, const char *v, unsigned long long *out);

/* ---- objects (objs.c): the kinds of docs/api.md "Objects" ---------------------- */

struct sctl_kind {
    const char *plural;   /* "deployments": the API path and the canonical CLI word */
    const char *kind;     /* "Deployment" */
    const char *singular; /* "deployment": kubectl-style "deployment/web" */
    const char *short_name;
};
extern const struct sctl_kind sctl_kinds[]; /* ends with a NULL plural */

/* The kind a CLI word names (plural, singular, short name or Kind, any case), or
 * NULL after printing the known words. */
const struct sctl_kind *sctl_kind_find(const char *word);
const struct sctl_kind *sctl_kind_by_kind(const char *kind);
/* "/v1/deployments/web" (name escaped; NULL name: the list), NUL-terminated. */
void sctl_obj_path(struct sc_buf *b, const struct sctl_kind *k, const char *name);
/* Lists kind k (selector may be NULL) into *items (a new array reference) and, when
 * answer is not NULL, the server's whole list object into *answer. */
int sctl_obj_list(struct sctl *s, const struct sctl_kind *k, const char *selector, json_t **items,
                  json_t **answer);

/* Dotted-path getters ("status.ready"; NULL/0 when absent). */
const json_t *sctl_at(const json_t *o, const char *path);
const char *sctl_at_str(const json_t *o, const char *path);
long long sctl_at_int(const json_t *o, const char *path);
/* kubectl's AGE from metadata.created ("45s", "3m20s", "5h", "12d"; "<unknown>"). */
void sctl_age(const json_t *o, char out[24]);

int sctl_kv_main(struct sctl *s, int argc, char **argv);
int sctl_member_main(struct sctl *s, int argc, char **argv);
int sctl_apply_main(struct sctl *s, int argc, char **argv);
int sctl_get_main(struct sctl *s, int argc, char **argv);
int sctl_describe_main(struct sctl *s, int argc, char **argv);
int sctl_delete_main(struct sctl *s, int argc, char **argv);
int sctl_scale_main(struct sctl *s, int argc, char **argv);
int sctl_logs_main(struct sctl *s, int argc, char **argv);
int sctl_rollout_main(struct sctl *s, int argc, char **argv);
int sctl_nodes_main(struct sctl *s, int argc, char **argv);
int sctl_token_main(struct sctl *s, int argc, char **argv);
