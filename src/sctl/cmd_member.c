/*
 * cmd_member.c: `sctl member`, the controllers of the cluster (etcdctl member):
 *
 *   sctl member list                     NAME ID ROLE LEADER PEER CLIENT (-o json: /v1/cluster)
 *   sctl member add NAME PEER [--voter]  a learner unless --voter; start it with --join first
 *   sctl member promote NAME             learner -> voter
 *   sctl member remove NAME              voter or learner, the leader included
 *
 * Every change goes through any member (forwarded to the leader) and returns once
 * it is committed and applied; the server's refusals (409 change_in_progress,
 * last_voter, ...) are printed as they come.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "sctl/sctl.h"

static const char member_usage[] = "usage: sctl member list\n"
                                   "       sctl member add NAME PEER_HOST:PORT [--voter]\n"
                                   "       sctl member promote NAME\n"
                                   "       sctl member remove NAME\n";

static int member_list(struct sctl *s, int argc, char **argv)
{
    if (argc != 1)
        return sctl_usage("usage: sctl member list");
    json_t *j = NULL;
    int code = sctl_call(s, "GET", "/v1/cluster", NULL, &j);
    if (code == 0 && s->output == SCTL_OUT_JSON) {
        sctl_print_json(j);
    } else if (code == 0) {
        struct sctl_table t = {0};
        bool wide = s->output == SCTL_OUT_WIDE;
        if (wide)
            sctl_table_row(&t, 7, "NAME", "ID", "ROLE", "LEADER", "PEER", "CLIENT", "MATCH");
        else
            sctl_table_row(&t, 5, "NAME", "ROLE", "LEADER", "PEER", "CLIENT");
        json_t *m;
        size_t i;
        json_array_foreach(json_object_get(j, "members"), i, m)
        {
            char match[24] = "";
            json_t *mi = json_object_get(m, "match");
            if (mi)
                snprintf(match, sizeof(match), "%lld", (long long)json_integer_value(mi));
            const char *leader = json_is_true(json_object_get(m, "leader")) ? "*" : "";
#define F(k) json_string_value(json_object_get(m, k))
            if (wide)
                sctl_table_row(&t, 7, F("name"), F("id"), F("role"), leader, F("peer"), F("client"),
                               match);
            else
                sctl_table_row(&t, 5, F("name"), F("role"), leader, F("peer"), F("client"));
#undef F
        }
        sctl_table_print(&t);
    }
    json_decref(j);
    return code;
}

/* Prints what a change did: "<verb> NAME (log index N)". */
static int member_change(struct sctl *s, const char *method, const char *path, const char *body,
                         const char *what, const char *name)
{
    json_t *j = NULL;
    int code = sctl_call(s, method, path, body, &j);
    if (code == 0) {
        if (s->output == SCTL_OUT_JSON)
            sctl_print_json(j);
        else
            printf("%s %s (log index %lld)\n", what, name,
                   (long long)json_integer_value(json_object_get(j, "index")));
    }
    json_decref(j);
    return code;
}

static char *member_path(const char *name, const char *suffix)
{
    struct sc_buf b = {0};
    sc_buf_printf(&b, "/v1/cluster/members/");
    sc_client_escape(&b, name, 0);
    sc_buf_printf(&b, "%s", suffix);
    sc_buf_put_u8(&b, 0);
    return (char *)b.data;
}

static int member_add(struct sctl *s, int argc, char **argv)
{
    static const struct option opts[] = {{"voter", no_argument, NULL, 'v'}, {0}};
    bool voter = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c != 'v')
            return sctl_usage("member add: unknown option '%s'", argv[optind - 1]);
        voter = true;
    }
    if (argc - optind != 2)
        return sctl_usage("usage: sctl member add NAME PEER_HOST:PORT [--voter]");
    json_t *body = json_pack("{s:s, s:s, s:b}", "name", argv[optind], "peer", argv[optind + 1],
                             "learner", !voter);
    char *text = json_dumps(body, JSON_COMPACT);
    int code = member_change(s, "POST", "/v1/cluster/members", text,
                             voter ? "added voter" : "added learner", argv[optind]);
    free(text);
    json_decref(body);
    return code;
}

static int member_promote(struct sctl *s, int argc, char **argv)
{
    if (argc != 2)
        return sctl_usage("usage: sctl member promote NAME");
    char *p = member_path(argv[1], "/promote");
    int code = member_change(s, "POST", p, NULL, "promoted", argv[1]);
    free(p);
    return code;
}

static int member_remove(struct sctl *s, int argc, char **argv)
{
    if (argc != 2)
        return sctl_usage("usage: sctl member remove NAME");
    char *p = member_path(argv[1], "");
    int code = member_change(s, "DELETE", p, NULL, "removed", argv[1]);
    free(p);
    return code;
}

int sctl_member_main(struct sctl *s, int argc, char **argv)
{
    static const struct sctl_verb sub[] = {{"list", member_list},
                                           {"add", member_add},
                                           {"promote", member_promote},
                                           {"remove", member_remove}};
    return sctl_subverb(s, argc, argv, sub, sizeof(sub) / sizeof(sub[0]), member_usage);
}
