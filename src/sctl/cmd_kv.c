/*
 * cmd_kv.c: `sctl kv`, the store's keys by hand (etcdctl's get/put/del/watch):
 * for operators inspecting what the controllers keep, and for scripts.
 *
 *   sctl kv get KEY [--rev N] [--serializable]     the value, raw, on stdout
 *   sctl kv put KEY [VALUE|-] [--lease ID]         VALUE, or stdin when '-' or absent
 *   sctl kv del KEY | --prefix PREFIX              how many were deleted
 *   sctl kv ls [PREFIX] [--limit N] [--rev N]      a table (or -o json)
 *   sctl kv watch [PREFIX] [--rev N]               one line per event until ^C
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "sctl/sctl.h"

static const char kv_usage[] = "usage: sctl kv get KEY [--rev N] [--serializable]\n"
                               "       sctl kv put KEY [VALUE|-] [--lease ID]\n"
                               "       sctl kv del KEY | sctl kv del --prefix PREFIX\n"
                               "       sctl kv ls [PREFIX] [--limit N] [--rev N] [--keys-only]\n"
                               "       sctl kv watch [PREFIX] [--rev N]\n";

struct kv_opts {
    unsigned long long rev, limit, lease;
    bool serializable, prefix, keys_only;
};

/* Parses the options every kv subverb may take; returns the index of the first
 * positional argument (getopt permutes them to the end), or -1. */
static int kv_parse(int argc, char **argv, const char *allowed, struct kv_opts *o)
{
    static const struct option opts[] = {
        {"rev", required_argument, NULL, 'r'},   {"limit", required_argument, NULL, 'l'},
        {"lease", required_argument, NULL, 'L'}, {"serializable", no_argument, NULL, 's'},
        {"prefix", no_argument, NULL, 'p'},      {"keys-only", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},        {0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            sctl_usage("kv %s: %s option '%s'", argv[0], c == ':' ? "missing value for" : "unknown",
                       argv[optind - 1]);
            return -1;
        }
        if (c == 'h') {
            fputs(kv_usage, stdout);
            exit(0);
        }
        if (!strchr(allowed, c)) {
            sctl_usage("kv %s does not take %s", argv[0], argv[optind - 1]);
            return -1;
        }
        if ((c == 'r' && sctl_parse_u64("--rev", optarg, &o->rev) < 0) ||
            (c == 'l' && sctl_parse_u64("--limit", optarg, &o->limit) < 0) ||
            (c == 'L' && sctl_parse_u64("--lease", optarg, &o->lease) < 0))
            return -1;
        o->serializable |= c == 's';
        o->prefix |= c == 'p';
        o->keys_only |= c == 'k';
    }
    return optind;
}

static char *key_path(const char *key)
{
    struct sc_buf b = {0};
    sc_buf_printf(&b, "/v1/kv/");
    sc_client_escape(&b, key, 0);
    sc_buf_put_u8(&b, 0);
    return (char *)b.data;
}

/* The value of a kv object as text, or "<N bytes, base64>" for binary. */
static const char *kv_value(const json_t *kv)
{
    const char *v = json_string_value(json_object_get(kv, "value"));
    return v ? v : json_string_value(json_object_get(kv, "value_base64"));
}

static int kv_get(struct sctl *s, int argc, char **argv)
{
    struct kv_opts o = {0};
    int i = kv_parse(argc, argv, "rs", &o);
    if (i < 0)
        return SCTL_EXIT_USAGE;
    if (argc - i != 1)
        return sctl_usage("usage: sctl kv get KEY [--rev N] [--serializable]");
    char *p = key_path(argv[i]);
    struct sc_buf q = {0};
    sc_buf_printf(&q, "%s%s", p, o.serializable ? "?serializable=1" : "");
    if (o.rev)
        sc_buf_printf(&q, "%crev=%llu", o.serializable ? '&' : '?', o.rev);
    sc_buf_put_u8(&q, 0);
    json_t *j = NULL;
    int code = sctl_call(s, "GET", (const char *)q.data, NULL, &j);
    if (code == 0) {
        json_t *kv = json_object_get(j, "kv");
        if (s->output == SCTL_OUT_JSON) {
            sctl_print_json(j);
        } else {
            printf("%s\n", kv_value(kv));
            if (!json_object_get(kv, "value"))
                fprintf(stderr, "sctl: the value is not UTF-8; shown in base64\n");
        }
    }
    json_decref(j);
    free(p);
    sc_buf_free(&q);
    return code;
}

static int kv_put(struct sctl *s, int argc, char **argv)
{
    struct kv_opts o = {0};
    int i = kv_parse(argc, argv, "L", &o);
    if (i < 0)
        return SCTL_EXIT_USAGE;
    if (argc - i < 1 || argc - i > 2)
        return sctl_usage("usage: sctl kv put KEY [VALUE|-] [--lease ID]");
    struct sc_buf val = {0};
    if (argc - i == 2 && strcmp(argv[i + 1], "-") != 0) {
        sc_buf_put(&val, argv[i + 1], strlen(argv[i + 1]));
    } else {
        char tmp[65536];
        size_t n;
        while ((n = fread(tmp, 1, sizeof(tmp), stdin)) > 0)
            sc_buf_put(&val, tmp, n);
    }
    char *p = key_path(argv[i]);
    struct sc_buf q = {0};
    sc_buf_printf(&q, "%s", p);
    if (o.lease)
        sc_buf_printf(&q, "?lease=%llu", o.lease);
    sc_buf_put_u8(&q, 0);
    struct sc_client *c = sctl_client(s);
    int code = SCTL_EXIT_USAGE;
    if (c) {
        struct sc_reply r = {0};
        struct sc_error e = {0};
        int rc = sc_client_do(c, "PUT", (const char *)q.data, val.data ? (char *)val.data : "",
                              val.len, &r, &e);
        if (rc < 0 || r.status != 200) {
            code = sctl_fail(s, rc, &r, &e);
        } else {
            code = 0;
            if (s->output == SCTL_OUT_JSON)
                printf("%s\n", sc_reply_text(&r));
            else
                printf("OK revision %llu\n", (unsigned long long)r.revision);
        }
        sc_reply_free(&r);
    }
    free(p);
    sc_buf_free(&q);
    sc_buf_free(&val);
    return code;
}

static int kv_del(struct sctl *s, int argc, char **argv)
{
    struct kv_opts o = {0};
    int i = kv_parse(argc, argv, "p", &o);
    if (i < 0)
        return SCTL_EXIT_USAGE;
    if (argc - i != 1)
        return sctl_usage("usage: sctl kv del KEY | sctl kv del --prefix PREFIX");
    struct sc_buf q = {0};
    if (o.prefix) {
        sc_buf_printf(&q, "/v1/kv?prefix=");
        sc_client_escape(&q, argv[i], 0);
    } else {
        char *p = key_path(argv[i]);
        sc_buf_printf(&q, "%s", p);
        free(p);
    }
    sc_buf_put_u8(&q, 0);
    json_t *j = NULL;
    int code = sctl_call(s, "DELETE", (const char *)q.data, NULL, &j);
    if (code == 0) {
        json_int_t n = json_integer_value(json_object_get(j, "deleted"));
        if (s->output == SCTL_OUT_JSON)
            sctl_print_json(j);
        else
            printf("deleted %lld\n", (long long)n);
        if (n == 0 && !o.prefix) {
            fprintf(stderr, "sctl: key '%s' not found\n", argv[i]);
            code = SCTL_EXIT_NOT_FOUND;
        }
    }
    json_decref(j);
    sc_buf_free(&q);
    return code;
}

static int kv_ls(struct sctl *s, int argc, char **argv)
{
    struct kv_opts o = {0};
    int i = kv_parse(argc, argv, "rlsk", &o);
    if (i < 0)
        return SCTL_EXIT_USAGE;
    if (argc - i > 1)
        return sctl_usage("usage: sctl kv ls [PREFIX] [--limit N] [--rev N] [--keys-only]");
    struct sc_buf q = {0};
    sc_buf_printf(&q, "/v1/kv?prefix=");
    sc_client_escape(&q, argc - i == 1 ? argv[i] : "", 0);
    if (o.limit)
        sc_buf_printf(&q, "&limit=%llu", o.limit);
    if (o.rev)
        sc_buf_printf(&q, "&rev=%llu", o.rev);
    if (o.serializable)
        sc_buf_printf(&q, "&serializable=1");
    if (o.keys_only)
        sc_buf_printf(&q, "&keys_only=1");
    sc_buf_put_u8(&q, 0);
    json_t *j = NULL;
    int code = sctl_call(s, "GET", (const char *)q.data, NULL, &j);
    if (code == 0 && s->output == SCTL_OUT_JSON) {
        sctl_print_json(j);
    } else if (code == 0) {
        struct sctl_table t = {0};
        bool wide = s->output == SCTL_OUT_WIDE;
        if (wide)
            sctl_table_row(&t, 6, "KEY", "VERSION", "CREATED", "MODIFIED", "LEASE", "VALUE");
        else
            sctl_table_row(&t, 3, "KEY", "MODIFIED", "VALUE");
        json_t *kv;
        size_t k;
        json_array_foreach(json_object_get(j, "kvs"), k, kv)
        {
            char ver[24], cre[24], mod[24], lease[24], val[64];
            snprintf(ver, sizeof(ver), "%lld",
                     (long long)json_integer_value(json_object_get(kv, "version")));
            snprintf(cre, sizeof(cre), "%lld",
                     (long long)json_integer_value(json_object_get(kv, "create_revision")));
            snprintf(mod, sizeof(mod), "%lld",
                     (long long)json_integer_value(json_object_get(kv, "mod_revision")));
            snprintf(lease, sizeof(lease), "%lld",
                     (long long)json_integer_value(json_object_get(kv, "lease")));
            const char *v = kv_value(kv);
            v = v ? v : "";
            size_t vl = strcspn(v, "\n");
            snprintf(val, sizeof(val), "%.*s%s", (int)(vl > 48 ? 48 : vl), v,
                     vl > 48 || v[vl] ? "..." : "");
            const char *key = json_string_value(json_object_get(kv, "key"));
            if (wide)
                sctl_table_row(&t, 6, key, ver, cre, mod, lease, val);
            else
                sctl_table_row(&t, 3, key, mod, val);
        }
        sctl_table_print(&t);
        if (json_is_true(json_object_get(j, "more")))
            fprintf(stderr, "sctl: more keys follow (raise --limit)\n");
    }
    json_decref(j);
    sc_buf_free(&q);
    return code;
}

struct watch_ctx {
    struct sctl *s;
    int code;
};

static int watch_line(void *arg, const char *line, size_t len)
{
    struct watch_ctx *w = arg;
    if (w->s->output == SCTL_OUT_JSON) {
        printf("%.*s\n", (int)len, line);
        fflush(stdout);
        return 0;
    }
    json_error_t je;
    json_t *ev = json_loadb(line, len, 0, &je);
    if (!ev)
        return 0;
    json_t *err = json_object_get(ev, "error");
    if (err) {
        fprintf(stderr, "sctl: watch ended: %s (resume with --rev %lld)\n",
                json_string_value(json_object_get(err, "message")),
                (long long)json_integer_value(json_object_get(err, "resume_revision")));
        w->code = SCTL_EXIT_UNAVAILABLE;
    } else if (json_object_get(ev, "type")) {
        json_t *kv = json_object_get(ev, "kv");
        const char *v = kv_value(kv);
        printf("%s %s %lld %s\n", json_string_value(json_object_get(ev, "type")),
               json_string_value(json_object_get(kv, "key")),
               (long long)json_integer_value(json_object_get(kv, "mod_revision")), v ? v : "");
        fflush(stdout);
    }
    json_decref(ev);
    return 0;
}

static int kv_watch(struct sctl *s, int argc, char **argv)
{
    struct kv_opts o = {0};
    int i = kv_parse(argc, argv, "r", &o);
    if (i < 0)
        return SCTL_EXIT_USAGE;
    if (argc - i > 1)
        return sctl_usage("usage: sctl kv watch [PREFIX] [--rev N]");
    struct sc_client *c = sctl_client(s);
    if (!c)
        return SCTL_EXIT_USAGE;
    struct sc_buf q = {0};
    sc_buf_printf(&q, "/v1/kv?watch=1&prefix=");
    sc_client_escape(&q, argc - i == 1 ? argv[i] : "", 0);
    if (o.rev)
        sc_buf_printf(&q, "&rev=%llu", o.rev);
    sc_buf_put_u8(&q, 0);
    struct watch_ctx w = {.s = s};
    struct sc_reply r = {0};
    struct sc_error e = {0};
    int rc = sc_client_stream(c, (const char *)q.data, watch_line, &w, &r, &e);
    int code = w.code;
    if (rc < 0 || r.status != 200)
        code = sctl_fail(s, rc, &r, &e);
    else if (!code) /* the server ended the stream: it is shutting down */
        code = SCTL_EXIT_UNAVAILABLE, fprintf(stderr, "sctl: the server ended the watch\n");
    sc_reply_free(&r);
    sc_buf_free(&q);
    return code;
}

int sctl_kv_main(struct sctl *s, int argc, char **argv)
{
    static const struct sctl_verb sub[] = {
        {"get", kv_get}, {"put", kv_put}, {"del", kv_del}, {"ls", kv_ls}, {"watch", kv_watch}};
    return sctl_subverb(s, argc, argv, sub, sizeof(sub) / sizeof(sub[0]), kv_usage);
}
