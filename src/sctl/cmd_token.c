/*
 * cmd_token.c: `sctl token create|list|revoke` (docs/sctl.md, docs/operations.md):
 * the bootstrap tokens a node joins with (`slet --join URL --token T --ca-hash H`).
 *
 *   create [--ttl DURATION] [--uses N] [--description TEXT]
 *       draws a token `id.secret` here (pki_token_new: kubeadm's format, about 82
 *       bits of secret) and stores a BootstrapToken object named by the id with
 *       only the secret's SHA-256, its expiry (default 24h; 0 = never) and how many
 *       joins it admits (default 1; 0 = any number until it expires).  Prints the
 *       token, once: it is stored nowhere in the clear.  The write is a create
 *       (POST), so an id drawn twice fails instead of replacing.
 *   list
 *       ID, USES (used/allowed), EXPIRES, STATE (valid, expired, used), DESCRIPTION.
 *   revoke ID...
 *       deletes the tokens: a join that arrives after the delete is applied fails.
 */
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "manifest/manifest.h"
#include "pki/pki.h"
#include "sctl/sctl.h"

static const char token_usage[] =
    "usage: sctl token create [--ttl DURATION] [--uses N] [--description TEXT]\n"
    "       sctl token list\n"
    "       sctl token revoke ID...\n";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int token_create(struct sctl *s, int argc, char **argv)
{
    const struct option opts[] = {
        {"ttl", required_argument, NULL, 't'},
        {"uses", required_argument, NULL, 'u'},
        {"description", required_argument, NULL, 'd'},
        {0},
    };
    int64_t ttl_ms = 24 * 3600 * 1000LL;
    unsigned long long uses = 1;
    const char *desc = NULL;
    char why[128];
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 't') {
            if (!strcmp(optarg, "0"))
                ttl_ms = 0;
            else if (manifest_parse_duration(optarg, &ttl_ms, why, sizeof(why)) < 0)
                return sctl_usage("--ttl wants a duration like 1h or 30m (0: never expires), "
                                  "got '%s': %s",
                                  optarg, why);
        } else if (c == 'u') {
            if (sctl_parse_u64("--uses", optarg, &uses) < 0)
                return SCTL_EXIT_USAGE;
            if (uses > 1000000)
                return sctl_usage("--uses is at most 1000000 (0: any number), got %llu", uses);
        } else if (c == 'd') {
            desc = optarg;
        } else {
            return sctl_usage("token create: %s option '%s'",
                              c == ':' ? "missing value for" : "unknown", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return sctl_usage("token create takes no operands, got '%s'", argv[optind]);
    struct pki_token t;
    struct sc_error e = {0};
    if (pki_token_new(&t, &e) < 0) {
        fprintf(stderr, "sctl: %s\n", e.msg);
        return SCTL_EXIT_UNAVAILABLE;
    }
    struct pki_token_hash h;
    pki_token_hash(&t, &h);
    json_t *spec =
        json_pack("{s:s, s:I, s:I}", "secretHash", h.hash, "expiresMs",
                  (json_int_t)(ttl_ms ? now_ms() + ttl_ms : 0), "maxUses", (json_int_t)uses);
    if (desc)
        json_object_set_new(spec, "description", json_string(desc));
    json_t *o = json_pack("{s:s, s:s, s:{s:s}, s:o}", "kind", "BootstrapToken", "apiVersion", "v1",
                          "metadata", "name", t.id, "spec", spec);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int code = sctl_call(s, "POST", "/v1/tokens", body, NULL); /* a create: 409 if taken */
    free(body);
    if (code == 0) {
        char str[PKI_TOKEN_STR_LEN + 1];
        pki_token_format(&t, str);
        printf("%s\n", str);
    }
    OPENSSL_cleanse(&t, sizeof(t));
    return code;
}

static void format_ms(int64_t ms, char *out, size_t size)
{
    if (ms <= 0) {
        snprintf(out, size, "never");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int token_list(struct sctl *s, int argc, char **argv)
{
    if (argc != 1)
        return sctl_usage("token list takes no operands");
    json_t *items = NULL;
    int code = sctl_obj_list(s, sctl_kind_by_kind("BootstrapToken"), NULL, &items, NULL);
    if (code != 0)
        return code;
    if (s->output == SCTL_OUT_JSON) {
        sctl_print_json(items);
        json_decref(items);
        return 0;
    }
    struct sctl_table t = {0};
    sctl_table_row(&t, 5, "ID", "USES", "EXPIRES", "STATE", "DESCRIPTION");
    size_t i;
    json_t *o;
    int64_t now = now_ms();
    json_array_foreach(items, i, o)
    {
        long long used = sctl_at_int(o, "status.used"), max = sctl_at_int(o, "spec.maxUses");
        long long exp = sctl_at_int(o, "spec.expiresMs");
        char uses[48], expires[32];
        if (max > 0)
            snprintf(uses, sizeof(uses), "%lld/%lld", used, max);
        else
            snprintf(uses, sizeof(uses), "%lld/any", used);
        format_ms(exp, expires, sizeof(expires));
        const char *state = exp > 0 && now >= exp    ? "expired"
                            : max > 0 && used >= max ? "used"
                                                     : "valid";
        const char *desc = sctl_at_str(o, "spec.description");
        sctl_table_row(&t, 5, sctl_at_str(o, "metadata.name"), uses, expires, state,
                       desc ? desc : "");
    }
    sctl_table_print(&t);
    json_decref(items);
    return 0;
}

static int token_revoke(struct sctl *s, int argc, char **argv)
{
    if (argc < 2)
        return sctl_usage("usage: sctl token revoke ID...");
    int worst = 0;
    for (int i = 1; i < argc; i++) {
        char path[128];
        if (strlen(argv[i]) != PKI_TOKEN_ID_LEN || strchr(argv[i], '.')) {
            fprintf(stderr, "sctl: '%s' is not a token id (the %d characters before the '.')\n",
                    argv[i], PKI_TOKEN_ID_LEN);
            worst = worst ? worst : SCTL_EXIT_USAGE;
            continue;
        }
        snprintf(path, sizeof(path), "/v1/tokens/%s", argv[i]);
        int code = sctl_call(s, "DELETE", path, NULL, NULL);
        if (code == 0)
            printf("token/%s revoked\n", argv[i]);
        else if (!worst)
            worst = code;
    }
    return worst;
}

int sctl_token_main(struct sctl *s, int argc, char **argv)
{
    static const struct sctl_verb sub[] = {
        {"create", token_create}, {"list", token_list}, {"revoke", token_revoke}};
    return sctl_subverb(s, argc, argv, sub, sizeof(sub) / sizeof(sub[0]), token_usage);
}
