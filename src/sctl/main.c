/*
 * main.c: sctl, the SwiftCube command line.  A static table of verbs looked up
 * by name (wireguard-tools habit); global flags may stand anywhere before `--`
 * (kubectl habit); the server comes from --server, else $SCTL_SERVER, else the
 * config file ($SCTL_CONFIG, ~/.config/sctl/config, /etc/swiftcube/sctl.conf:
 * `server = URL` lines), else http://127.0.0.1:7400.  An https:// server takes
 * the cluster CA and the client's certificate and key from --ca/--cert/--key,
 * else from the config file's `ca =`, `cert =`, `key =`.  Everything the verbs share
 * (requests that print the server's errors, exit codes, tables) lives here.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "manifest/manifest.h"
#include "sctl/sctl.h"

static int verb_version(struct sctl *s, int argc, char **argv);
static int verb_completion(struct sctl *s, int argc, char **argv);
static int verb_help(struct sctl *s, int argc, char **argv);

static const struct sctl_verb verbs[] = {
    {"apply", sctl_apply_main, "-f FILE|DIR|- [--wait]", "create or update objects from manifests"},
    {"get", sctl_get_main, "KIND [NAME] [-l SEL]", "list objects as a table (-o wide|json|yaml)"},
    {"describe", sctl_describe_main, "KIND [NAME]", "an object in detail, with related objects"},
    {"delete", sctl_delete_main, "KIND NAME... | -f FILE", "delete objects"},
    {"scale", sctl_scale_main, "[deployment] NAME --replicas N", "set a Deployment's replicas"},
    {"logs", sctl_logs_main, "INSTANCE [-f]", "an instance's output (-f: follow it)"},
    {"rollout", sctl_rollout_main, "status|history|undo NAME", "follow, list or undo rollouts"},
    {"nodes", sctl_nodes_main, "cordon|uncordon|drain NODE", "take nodes out of scheduling"},
    {"token", sctl_token_main, "create|list|revoke ...", "bootstrap tokens for joining nodes"},
    {"kv", sctl_kv_main, "get|put|del|ls|watch ...", "read and write keys of the store"},
    {"member", sctl_member_main, "list|add|promote|remove ...", "the controllers of the cluster"},
    {"version", verb_version, "", "versions of sctl and of the server"},
    {"completion", verb_completion, "bash", "print a shell completion script"},
    {"help", verb_help, "[VERB]", "this text, or a verb's"},
};
#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

int sctl_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return SCTL_EXIT_USAGE;
}

static void print_usage(FILE *f)
{
    fprintf(f, "usage: sctl [--server URL] [--ca FILE --cert FILE --key FILE] "
               "[-o table|wide|json|yaml|name]\n            VERB ARGS...\n\nverbs:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(f, "  %-10s %-32s %s\n", verbs[i].name, verbs[i].args, verbs[i].help);
    fprintf(f, "\nexit codes: 0 ok, 1 refused (4xx), 2 usage, 3 unavailable, 4 not found\n");
}

/* ---- requests ---------------------------------------------------------------------- */

struct sc_client *sctl_client(struct sctl *s)
{
    if (s->client)
        return s->client;
    struct sc_error e = {0};
    struct sc_client_opts o = {.server = s->server, .ca = s->ca, .cert = s->cert, .key = s->key};
    if (sc_client_new(&o, &s->client, &e) < 0) {
        fprintf(stderr, "sctl: %s (from %s)\n", e.msg, s->server_from);
        return NULL;
    }
    return s->client;
}

int sctl_fail(struct sctl *s, int rc, const struct sc_reply *r, const struct sc_error *e)
{
    if (rc < 0) {
        fprintf(stderr, "sctl: cannot reach %s: %s\n", s->server, e->msg);
        return SCTL_EXIT_UNAVAILABLE;
    }
    fprintf(stderr, "sctl: %s", r->message[0] ? r->message : "request failed");
    if (r->field[0])
        fprintf(stderr, " (field %s)", r->field);
    fprintf(stderr, " [%ld %s]\n", r->status, r->code);
    if (r->status == 404)
        return SCTL_EXIT_NOT_FOUND;
    return r->status >= 400 && r->status < 500 ? SCTL_EXIT_REFUSED : SCTL_EXIT_UNAVAILABLE;
}

int sctl_call_status(struct sctl *s, const char *method, const char *path, const char *body,
                     json_t **out, long quiet, long *status)
{
    if (status)
        *status = 0;
    struct sc_client *c = sctl_client(s);
    if (!c)
        return SCTL_EXIT_USAGE;
    struct sc_reply r = {0};
    struct sc_error e = {0};
    int rc = sc_client_do(c, method, path, body, body ? strlen(body) : 0, &r, &e);
    int code = SCTL_EXIT_OK;
    if (rc >= 0 && status)
        *status = r.status;
    if (rc >= 0 && quiet && r.status == quiet) {
        code = r.status == 404                     ? SCTL_EXIT_NOT_FOUND
               : r.status >= 400 && r.status < 500 ? SCTL_EXIT_REFUSED
                                                   : SCTL_EXIT_UNAVAILABLE;
    } else if (rc < 0 || r.status < 200 || r.status >= 300) {
        code = sctl_fail(s, rc, &r, &e);
    } else if (out) {
        json_error_t je;
        *out = json_loadb((const char *)r.body.data, r.body.len, 0, &je);
        if (!*out) {
            fprintf(stderr, "sctl: the server's answer is not JSON: %s (line %d column %d)\n",
                    je.text, je.line, je.column);
            code = SCTL_EXIT_UNAVAILABLE;
        }
    }
    sc_reply_free(&r);
    return code;
}

int sctl_call(struct sctl *s, const char *method, const char *path, const char *body, json_t **out)
{
    return sctl_call_status(s, method, path, body, out, 0, NULL);
}

void sctl_print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
}

int sctl_parse_u64(const char *opt, const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!v || !*v || !isdigit((unsigned char)*v) ||
        (*out = strtoull(v, &end, 10), errno != 0 || *end != '\0')) {
        sctl_usage("%s wants a non-negative integer, got '%s'", opt, v ? v : "");
        return -1;
    }
    return 0;
}

int sctl_timeout_opts(int argc, char **argv, const char *verb, const char *flag,
                      int64_t *timeout_ms, bool *flag_set)
{
    const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {flag, no_argument, NULL, 'f'},
        {0},
    };
    char why[128];
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 't' && manifest_parse_duration(optarg, timeout_ms, why, sizeof(why)) < 0)
            return sctl_usage("--timeout wants a duration like 60s or 5m, got '%s': %s", optarg,
                              why);
        else if (c == 'f')
            *flag_set = true;
        else if (c != 't')
            return sctl_usage("%s: %s option '%s'", verb,
                              c == ':' ? "missing value for" : "unknown", argv[optind - 1]);
    }
    return 0;
}

int sctl_subverb(struct sctl *s, int argc, char **argv, const struct sctl_verb *sub, size_t n,
                 const char *usage)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SCTL_EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[1], sub[i].name))
            return sub[i].run(s, argc - 1, argv + 1);
    sctl_usage("%s has no subverb '%s'", argv[0], argv[1]);
    fputs(usage, stderr);
    return SCTL_EXIT_USAGE;
}

/* ---- tables ---------------------------------------------------------------------- */

void sctl_table_row(struct sctl_table *t, size_t ncols, ...)
{
    if (t->nrows == 0)
        t->ncols = ncols;
    assert(ncols == t->ncols);
    t->cells = sc_grow(t->cells, &t->cap, (t->nrows + 1) * ncols, sizeof(char *));
    va_list ap;
    va_start(ap, ncols);
    for (size_t i = 0; i < ncols; i++) {
        const char *c = va_arg(ap, const char *);
        t->cells[t->nrows * ncols + i] = xstrdup(c ? c : "");
    }
    va_end(ap);
    t->nrows++;
}

void sctl_table_print(struct sctl_table *t)
{
    size_t *w = xcalloc(t->ncols ? t->ncols : 1, sizeof(size_t));
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t l = strlen(t->cells[r * t->ncols + c]);
            w[c] = l > w[c] ? l : w[c];
        }
    for (size_t r = 0; r < t->nrows; r++) {
        printf("%*s", t->indent, "");
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                printf("%s\n", cell);
            else
                printf("%-*s  ", (int)w[c], cell);
            free(t->cells[r * t->ncols + c]);
        }
    }
    free(w);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* ---- configuration --------------------------------------------------------------- */

/* The config file's keys, in the order of struct config_vals. */
static const char *const config_keys[] = {"server", "ca", "cert", "key"};
enum { CFG_SERVER, CFG_CA, CFG_CERT, CFG_KEY, CFG_N };

/* A file path from the config file: a relative one is relative to the file. */
static char *config_path_value(const char *cfg_path, const char *v)
{
    const char *slash = strrchr(cfg_path, '/');
    if (v[0] == '/' || !slash)
        return xstrdup(v);
    size_t dl = (size_t)(slash - cfg_path) + 1, vl = strlen(v);
    char *out = xcalloc(dl + vl + 1, 1);
    memcpy(out, cfg_path, dl);
    memcpy(out + dl, v, vl);
    return out;
}

/* Reads `key = value` lines (config_keys) from a config file into vals; 0 if
 * absent, 1 if it has a server, 2 if it exists without one, -1 on error. */
static int read_config(const char *path, char *vals[CFG_N])
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : (fprintf(stderr, "sctl: %s: %s\n", path, strerror(errno)), -1);
    char line[1024];
    int lineno = 0, found = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        char *k_end = eq ? eq : p + strlen(p);
        while (k_end > p && isspace((unsigned char)k_end[-1]))
            k_end--;
        size_t kl = (size_t)(k_end - p);
        if (!eq || kl == 0) {
            fprintf(stderr, "sctl: %s:%d:1: expected 'key = value'\n", path, lineno);
            rc = -1;
            break;
        }
        char *v = eq + 1;
        while (isspace((unsigned char)*v))
            v++;
        v[strcspn(v, "\r\n")] = '\0';
        for (size_t l = strlen(v); l > 0 && isspace((unsigned char)v[l - 1]);)
            v[--l] = '\0';
        size_t k = 0;
        while (k < CFG_N && !(strlen(config_keys[k]) == kl && !strncmp(p, config_keys[k], kl)))
            k++;
        if (k == CFG_N) {
            fprintf(stderr,
                    "sctl: %s:%d:1: unknown setting '%.*s' (known: server, ca, cert, key)\n", path,
                    lineno, (int)kl, p);
            rc = -1;
            break;
        }
        free(vals[k]);
        vals[k] = k == CFG_SERVER ? xstrdup(v) : config_path_value(path, v);
        found |= k == CFG_SERVER;
    }
    fclose(f);
    return rc < 0 ? rc : found ? 1 : 2;
}

/* The config files to read, in order ($SCTL_CONFIG alone when it is set). */
static size_t config_paths(const char *paths[2])
{
    static char path[4096];
    const char *cfg = getenv("SCTL_CONFIG");
    const char *home = getenv("HOME");
    size_t n = 0;
    if (cfg && *cfg) {
        paths[n++] = cfg;
    } else {
        if (home && *home) {
            snprintf(path, sizeof(path), "%s/.config/sctl/config", home);
            paths[n++] = path;
        }
        paths[n++] = "/etc/swiftcube/sctl.conf";
    }
    return n;
}

static int resolve_server(struct sctl *s, const char *flag, char *owned[CFG_N])
{
    const char *paths[2] = {0};
    size_t n = config_paths(paths);
    const char *cfg = getenv("SCTL_CONFIG");
    const char *env = getenv("SCTL_SERVER");
    bool from_file = false;
    if (flag) {
        s->server = flag, s->server_from = "--server";
    } else if (env && *env) {
        s->server = env, s->server_from = "$SCTL_SERVER";
    } else {
        for (size_t i = 0; i < n && !s->server; i++) {
            int r = read_config(paths[i], owned);
            if (r < 0)
                return -1;
            if (r == 1) {
                s->server = owned[CFG_SERVER], s->server_from = paths[i], from_file = true;
            } else if (cfg && *cfg) {
                fprintf(stderr, "sctl: $SCTL_CONFIG names %s, which does not exist\n", cfg);
                return -1;
            } else {
                for (size_t k = 0; k < CFG_N; k++) /* settings come from one file */
                    free(owned[k]), owned[k] = NULL;
            }
        }
        if (!s->server)
            s->server = "http://127.0.0.1:7400", s->server_from = "the default";
    }
    /* An https:// server given by flag or environment still finds its files in
     * the first config file there is, unless the flags name all three. */
    if (!from_file && strstr(s->server, "https://") && !(s->ca && s->cert && s->key))
        for (size_t i = 0; i < n; i++) {
            int r = read_config(paths[i], owned);
            if (r < 0)
                return -1;
            if (r > 0)
                break;
        }
    if (!s->ca)
        s->ca = owned[CFG_CA];
    if (!s->cert)
        s->cert = owned[CFG_CERT];
    if (!s->key)
        s->key = owned[CFG_KEY];
    return 0;
}

/* ---- small verbs ------------------------------------------------------------------- */

static int verb_version(struct sctl *s, int argc, char **argv)
{
    if (argc > 1)
        return sctl_usage("version takes no arguments");
    json_t *h = NULL, *cl = NULL;
    printf("sctl    %s\n", SC_VERSION);
    int code = sctl_call(s, "GET", "/healthz", NULL, &h);
    if (code == 0)
        code = sctl_call(s, "GET", "/v1/cluster", NULL, &cl);
    if (code == 0) {
        const char *leader = "none";
        json_t *m;
        size_t i;
        json_array_foreach(json_object_get(cl, "members"), i, m)
        {
            if (json_is_true(json_object_get(m, "leader")))
                leader = json_string_value(json_object_get(m, "name"));
        }
        json_t *v = json_object_get(h, "version");
        printf("server  %s at %s: revision %lld, %zu members, leader %s\n",
               json_is_string(v) ? json_string_value(v) : "(unknown version)", s->server,
               (long long)json_integer_value(json_object_get(h, "revision")),
               json_array_size(json_object_get(cl, "members")), leader ? leader : "?");
    }
    json_decref(h);
    json_decref(cl);
    return code;
}

static int verb_help(struct sctl *s, int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < N_VERBS; i++)
            if (!strcmp(argv[1], verbs[i].name) && verbs[i].run != verb_help) {
                char *h[] = {argv[1], "--help", NULL};
                return verbs[i].run(s, 2, h);
            }
        return sctl_usage("no verb '%s'; see 'sctl help'", argv[1]);
    }
    print_usage(stdout);
    return 0;
}

static int verb_completion(struct sctl *s, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "bash") != 0)
        return sctl_usage("usage: sctl completion bash   (then: source <(sctl completion bash))");
    printf("# bash completion for sctl: source <(sctl completion bash)\n"
           "_sctl() {\n"
           "  local cur=${COMP_WORDS[COMP_CWORD]} verb=${COMP_WORDS[1]} verbs='");
    for (size_t i = 0; i < N_VERBS; i++)
        printf("%s%s", i ? " " : "", verbs[i].name);
    printf(
        "'\n"
        "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
        "    COMPREPLY=($(compgen -W \"$verbs\" -- \"$cur\")); return\n"
        "  fi\n"
        "  local kinds='deployments instances nodes revisions assignments endpoints'\n"
        "  case $verb in\n"
        "    apply|delete) case ${COMP_WORDS[COMP_CWORD-1]} in\n"
        "        -f) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
        "        *) if [ \"$verb\" = delete ] && [ \"$COMP_CWORD\" -eq 2 ]; then\n"
        "             COMPREPLY=($(compgen -W \"$kinds -f\" -- \"$cur\"))\n"
        "           elif [ \"$verb\" = delete ]; then\n"
        "             COMPREPLY=($(compgen -W \"$(sctl get \"${COMP_WORDS[2]}\" -o name "
        "2>/dev/null |"
        " sed 's,.*/,,')\" -- \"$cur\"))\n"
        "           else COMPREPLY=($(compgen -W '-f --wait --timeout' -- \"$cur\")); fi ;;\n"
        "      esac ;;\n"
        "    get|describe) if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
        "        COMPREPLY=($(compgen -W \"$kinds\" -- \"$cur\"))\n"
        "      elif [ \"$COMP_CWORD\" -eq 3 ]; then\n"
        "        COMPREPLY=($(compgen -W \"$(sctl get \"${COMP_WORDS[2]}\" -o name 2>/dev/null |"
        " sed 's,.*/,,')\" -- \"$cur\"))\n"
        "      fi ;;\n"
        "    scale) if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
        "        COMPREPLY=($(compgen -W \"deployment $(sctl get deployments -o name 2>/dev/null |"
        " sed 's,.*/,,')\" -- \"$cur\"))\n"
        "      else COMPREPLY=($(compgen -W '--replicas' -- \"$cur\")); fi ;;\n"
        "    logs) if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W '-f --follow' -- \"$cur\"))\n"
        "      else COMPREPLY=($(compgen -W \"$(sctl get instances -o name 2>/dev/null |"
        " sed 's,.*/,,')\" -- \"$cur\")); fi ;;\n"
        "    kv) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W 'get put del ls watch' -- "
        "\"$cur\")) ;;\n"
        "    member) if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
        "        COMPREPLY=($(compgen -W 'list add promote remove' -- \"$cur\"))\n"
        "      elif [ \"$COMP_CWORD\" -eq 3 ] && [ \"${COMP_WORDS[2]}\" != add ]; then\n"
        "        COMPREPLY=($(compgen -W \"$(sctl member list -o json 2>/dev/null |"
        " sed -n 's/.*\"name\": \"\\([^\"]*\\)\".*/\\1/p')\" -- \"$cur\"))\n"
        "      fi ;;\n"
        "    completion) COMPREPLY=($(compgen -W bash -- \"$cur\")) ;;\n"
        "    help) COMPREPLY=($(compgen -W \"$verbs\" -- \"$cur\")) ;;\n"
        "  esac\n"
        "}\n"
        "complete -F _sctl sctl\n");
    return 0;
}

/* ---- main -------------------------------------------------------------------------- */

/* Takes the global flags out of argv wherever they stand (up to `--`). */
static int take_globals(int *argc, char **argv, const char **server, struct sctl *s,
                        enum sctl_output *out)
{
    int w = 0;
    bool rest = false;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (rest || a[0] != '-') {
            argv[w++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            rest = true;
            argv[w++] = argv[i];
            continue;
        }
        bool is_server = !strncmp(a, "--server", 8) && (a[8] == '\0' || a[8] == '=');
        bool is_out = !strcmp(a, "-o") || !strncmp(a, "-o=", 3) ||
                      (!strncmp(a, "--output", 8) && (a[8] == '\0' || a[8] == '='));
        static const char *const tls_flags[] = {"--ca", "--cert", "--key"};
        const char **tls_dst[] = {&s->ca, &s->cert, &s->key};
        int tls = -1;
        for (int k = 0; k < 3; k++) {
            size_t fl = strlen(tls_flags[k]);
            if (!strncmp(a, tls_flags[k], fl) && (a[fl] == '\0' || a[fl] == '='))
                tls = k;
        }
        if (!is_server && !is_out && tls < 0) {
            argv[w++] = argv[i];
            continue;
        }
        const char *eq = strchr(a, '=');
        if (eq)
            v = eq + 1;
        else if (i + 1 < *argc)
            v = argv[++i];
        else
            return sctl_usage("%s needs a value", a);
        if (tls >= 0) {
            *tls_dst[tls] = v;
        } else if (is_server) {
            *server = v;
        } else if (!strcmp(v, "table")) {
            *out = SCTL_OUT_TABLE;
        } else if (!strcmp(v, "wide")) {
            *out = SCTL_OUT_WIDE;
        } else if (!strcmp(v, "json")) {
            *out = SCTL_OUT_JSON;
        } else if (!strcmp(v, "yaml")) {
            *out = SCTL_OUT_YAML;
        } else if (!strcmp(v, "name")) {
            *out = SCTL_OUT_NAME;
        } else {
            return sctl_usage("-o wants table, wide, json, yaml or name, got '%s'", v);
        }
    }
    argv[w] = NULL;
    *argc = w;
    return 0;
}

int main(int argc, char **argv)
{
    struct sctl s = {.output = SCTL_OUT_TABLE};
    const char *server_flag = NULL;
    argc--, argv++;
    int code = take_globals(&argc, argv, &server_flag, &s, &s.output);
    if (code)
        return code;
    if (argc == 0) {
        print_usage(stderr);
        return SCTL_EXIT_USAGE;
    }
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[0], "--version")) {
        printf("sctl %s\n", SC_VERSION);
        return 0;
    }
    const struct sctl_verb *verb = NULL;
    for (size_t i = 0; i < N_VERBS; i++)
        if (!strcmp(argv[0], verbs[i].name))
            verb = &verbs[i];
    if (!verb) {
        fprintf(stderr, "sctl: no verb '%s'\n\n", argv[0]);
        print_usage(stderr);
        return SCTL_EXIT_USAGE;
    }
    char *owned[CFG_N] = {0};
    code = resolve_server(&s, server_flag, owned) < 0 ? SCTL_EXIT_USAGE : verb->run(&s, argc, argv);
    sc_client_free(s.client);
    for (size_t k = 0; k < CFG_N; k++)
        free(owned[k]);
    return code;
}
