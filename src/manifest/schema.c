/*
 * schema.c: THE description of SwiftCube's object kinds, as one table per kind.
 *
 * Every rule about what a Deployment may contain lives here and nowhere else:
 * the YAML manifests of `sctl apply` and the JSON bodies of the objects API are
 * both checked by validate.c walking these tables.  A row says a field's name,
 * its type, whether it is required, its unit parser (CPU, sizes, durations, image
 * references, names...), its allowed values, its children and its default.
 * What the table cannot say (a probe needs exactly one of http/tcp/exec; a
 * persistent volume needs a size; a named probe port must be declared) is in the
 * small check functions next to it.  docs/manifest.md documents the result.
 *
 * Fields whose machinery arrives with later issues (secrets, volumes, expose,
 * health, update, placement) are validated and kept now, so a manifest written
 * today keeps meaning the same thing when that machinery lands.
 */
#include <inttypes.h>
#include <string.h>

#include "base/util.h"
#include "manifest/mf_int.h"

#define END                                                                                        \
    {                                                                                              \
        NULL                                                                                       \
    }

/* ---- cross-field checks ----------------------------------------------------------- */

static bool port_declared(json_t *spec, const char *name)
{
    json_t *ports = json_object_get(spec, "ports"), *p;
    size_t i;
    json_array_foreach(ports, i, p)
    {
        const char *pn = json_string_value(json_object_get(p, "name"));
        if (pn && strcmp(pn, name) == 0)
            return true;
    }
    return false;
}

/* The spec as a whole: probe ports that name a port must name a declared one. */
static void check_spec(struct mf_ctx *c, json_t *spec)
{
    json_t *health = json_object_get(spec, "health");
    const char *k;
    json_t *probe;
    json_object_foreach(health, k, probe)
    {
        json_t *port = json_object_get(probe, "port");
        if (json_is_string(port) && !port_declared(spec, json_string_value(port))) {
            size_t old = mf_path_key(&c->path, "health");
            size_t old2 = mf_path_key(&c->path, k);
            mf_report_at(c, "port", false,
                         "no port named '%s' in ports (name one of them or give a number)",
                         json_string_value(port));
            mf_path_pop(&c->path, old2);
            mf_path_pop(&c->path, old);
        }
    }
}

static void check_probe(struct mf_ctx *c, json_t *probe)
{
    static const char *const kinds[] = {"http", "tcp", "exec"};
    size_t n = 0;
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
        n += json_object_get(probe, kinds[i]) != NULL;
    if (n != 1) {
        mf_report(c, false, "expected exactly one of http, tcp or exec, got %zu", n);
        return;
    }
    if (json_object_get(probe, "http") && !json_object_get(probe, "port"))
        mf_report(c, false, "an http probe needs a port (a number or a port name)");
    if (json_object_get(probe, "tcp") && json_object_get(probe, "port"))
        mf_report_at(c, "port", true, "a tcp probe names its port in 'tcp'; remove 'port'");
}

static void check_volume(struct mf_ctx *c, json_t *vol)
{
    if (json_is_true(json_object_get(vol, "persistent")) && !json_object_get(vol, "sizeBytes"))
        mf_report(c, false, "a persistent volume needs a size (e.g. size: 1Gi)");
}

static void check_update(struct mf_ctx *c, json_t *u)
{
    const char *strategy = json_string_value(json_object_get(u, "strategy"));
    if (strategy && strcmp(strategy, "rolling") == 0 &&
        json_integer_value(json_object_get(u, "maxSurge")) == 0 &&
        json_integer_value(json_object_get(u, "maxUnavailable")) == 0)
        mf_report(c, false,
                  "a rolling update needs maxSurge or maxUnavailable above 0, or it can never "
                  "make progress");
    if (strategy && strcmp(strategy, "canary") != 0 && json_object_get(u, "canaryWeight"))
        mf_report_at(c, "canaryWeight", true, "canaryWeight applies only to strategy: canary");
    if (strategy && strcmp(strategy, "canary") != 0 && json_object_get(u, "steps"))
        mf_report_at(c, "steps", true, "steps apply only to strategy: canary");
    if (json_object_get(u, "steps") && json_object_get(u, "canaryWeight"))
        mf_report_at(c, "canaryWeight", true,
                     "give either canaryWeight (one step, paused until promoted) or steps, "
                     "not both");
    if (strategy && strcmp(strategy, "blue-green") != 0 && json_object_get(u, "keepOldMs"))
        mf_report_at(c, "keepOld", true, "keepOld applies only to strategy: blue-green");
    /* each step sends more traffic to the new revision than the one before */
    const json_t *steps = json_object_get(u, "steps");
    for (size_t i = 1; i < json_array_size(steps); i++) {
        json_int_t w0 = json_integer_value(json_object_get(json_array_get(steps, i - 1), "weight"));
        json_int_t w1 = json_integer_value(json_object_get(json_array_get(steps, i), "weight"));
        if (w1 <= w0) {
            size_t o1 = mf_path_key(&c->path, "steps"), o2 = mf_path_index(&c->path, i);
            mf_report_at(c, "weight", false,
                         "each canary step needs a higher weight than the one before (%lld after "
                         "%lld)",
                         (long long)w1, (long long)w0);
            mf_path_pop(&c->path, o2);
            mf_path_pop(&c->path, o1);
        }
    }
}

/* ---- Deployment ------------------------------------------------------------------- */

static const char *const proto_enum[] = {"tcp", "udp", NULL};
static const char *const via_enum[] = {"lb", "service", NULL};
static const char *const provider_enum[] = {"nginx", "haproxy", "hetzner", "aws", NULL};
static const char *const expose_proto_enum[] = {"http", "https", "tcp", "udp", NULL};
static const char *const strategy_enum[] = {"rolling", "blue-green", "canary", NULL};
static const char *const spread_enum[] = {"node", "none", NULL};

static const struct mf_field expose_fields[] = {
    {"via", MF_STR, MF_REQUIRED, .enums = via_enum},
    {"provider", MF_STR, 0, .enums = provider_enum},
    {"listen", MF_INT, 0, .min = 1, .max = 65535, .expect = "a port number 1..65535"},
    {"protocol", MF_STR, 0, .enums = expose_proto_enum, .def = "\"tcp\""},
    END,
};

static const struct mf_field port_fields[] = {
    {"name", MF_STR, 0, &mf_unit_port_name},
    {"container", MF_INT, MF_REQUIRED, .min = 1, .max = 65535, .expect = "a port number 1..65535"},
    {"protocol", MF_STR, 0, .enums = proto_enum, .def = "\"tcp\""},
    {"expose", MF_OBJ, 0, .children = expose_fields},
    END,
};
static const char *const port_unique[] = {"name", "container", NULL};

static const struct mf_field secret_fields[] = {
    {"name", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    END,
};
static const char *const name_unique[] = {"name", NULL};

static const struct mf_field volume_fields[] = {
    {"name", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    {"mount", MF_STR, MF_REQUIRED, &mf_unit_abs_path},
    {"persistent", MF_BOOL, 0, .def = "false"},
    {"size", MF_QTY, 0, &mf_unit_size, .canon = "sizeBytes", .min = 1, .max = INT64_MAX},
    END,
};
static const char *const volume_unique[] = {"name", "mount", NULL};

static const struct mf_field argv_item = {"", MF_STR, 0, &mf_unit_text};

static const struct mf_field probe_fields[] = {
    {"http", MF_STR, 0, &mf_unit_http_path},
    {"tcp", MF_INT, 0, .min = 1, .max = 65535, .expect = "a port number 1..65535"},
    {"exec", MF_LIST, MF_NONEMPTY, .children = &argv_item, .max = 64},
    {"port", MF_PORTREF, 0},
    {"period", MF_QTY, 0, &mf_unit_duration, .canon = "periodMs", .min = 100, .max = 3600 * 1000,
     .def = "10000"},
    {"timeout", MF_QTY, 0, &mf_unit_duration, .canon = "timeoutMs", .min = 1, .max = 3600 * 1000,
     .def = "1000"},
    {"initialDelay", MF_QTY, 0, &mf_unit_duration, .canon = "initialDelayMs", .min = 0,
     .max = 3600 * 1000, .def = "0"},
    {"failureThreshold", MF_INT, 0, .min = 1, .max = 1000, .def = "3"},
    {"successThreshold", MF_INT, 0, .min = 1, .max = 1000, .def = "1"},
    END,
};

static const struct mf_field health_fields[] = {
    {"readiness", MF_OBJ, 0, .children = probe_fields, .check = check_probe},
    {"liveness", MF_OBJ, 0, .children = probe_fields, .check = check_probe},
    {"startup", MF_OBJ, 0, .children = probe_fields, .check = check_probe},
    END,
};

static const struct mf_field resources_fields[] = {
    {"cpu", MF_QTY, 0, &mf_unit_cpu, .canon = "cpuMillis", .min = 1, .max = 1000000000},
    {"memory", MF_QTY, 0, &mf_unit_size, .canon = "memoryBytes", .min = 4096, .max = INT64_MAX},
    END,
};

/* a canary step: the new revision's share of the traffic, then a pause of a
 * duration or (no pause) until `sctl rollout promote` */
static const struct mf_field step_fields[] = {
    {"weight", MF_INT, MF_REQUIRED, .min = 1, .max = 99, .expect = "a percentage 1..99"},
    {"pause", MF_QTY, 0, &mf_unit_duration, .canon = "pauseMs", .min = 0,
     .max = 7 * 24 * 3600 * 1000LL},
    END,
};
static const struct mf_field step_item = {"", MF_OBJ, 0, .children = step_fields};

static const struct mf_field update_fields[] = {
    {"strategy", MF_STR, 0, .enums = strategy_enum, .def = "\"rolling\""},
    {"maxSurge", MF_INT, 0, .min = 0, .max = 100000, .def = "1",
     .expect = "a non-negative number of instances"},
    {"maxUnavailable", MF_INT, 0, .min = 0, .max = 100000, .def = "0",
     .expect = "a non-negative number of instances"},
    {"canaryWeight", MF_INT, 0, .min = 1, .max = 99, .expect = "a percentage 1..99"},
    {"steps", MF_LIST, MF_NONEMPTY, .children = &step_item, .max = 16},
    {"keepOld", MF_QTY, 0, &mf_unit_duration, .canon = "keepOldMs", .min = 0,
     .max = 24 * 3600 * 1000},
    {"progressDeadline", MF_QTY, 0, &mf_unit_duration, .canon = "progressDeadlineMs", .min = 1000,
     .max = 24 * 3600 * 1000, .def = "600000"},
    {"minReady", MF_QTY, 0, &mf_unit_duration, .canon = "minReadyMs", .min = 0, .max = 3600 * 1000,
     .def = "0"},
    END,
};

static const struct mf_field label_value = {"", MF_STR, MF_COERCE, &mf_unit_label_value};

static const struct mf_field placement_fields[] = {
    {"spread", MF_STR, 0, .enums = spread_enum, .def = "\"node\""},
    {"nodeSelector", MF_MAP, 0, &mf_unit_label_key, .children = &label_value, .max = 64},
    END,
};

static const struct mf_field env_value = {"", MF_STR, MF_COERCE, &mf_unit_text};
static const struct mf_field capability_item = {"", MF_STR, 0, &mf_unit_capability};
static const struct mf_field port_item = {"", MF_OBJ, 0, .children = port_fields};
static const struct mf_field secret_item = {"", MF_OBJ, 0, .children = secret_fields,
                                            .shorthand = "name"};
static const struct mf_field volume_item = {"", MF_OBJ, 0, .children = volume_fields,
                                            .check = check_volume};

/* A Deployment's spec is its replicas plus its template; a Revision keeps the
 * template alone (docs/api.md: scaling does not make a new Revision). */
#define REPLICAS_FIELD                                                                             \
    {                                                                                              \
        "replicas", MF_INT, 0, .min = 0, .max = 100000, .def = "1",                                \
                               .expect = "a non-negative integer"                                  \
    }

static const struct mf_field replicas_fields[] = {
    REPLICAS_FIELD,
    END,
};

static const struct mf_field template_fields[] = {
    {"image", MF_STR, MF_REQUIRED, &mf_unit_image},
    {"command", MF_LIST, MF_NONEMPTY, .children = &argv_item, .max = 256},
    {"env", MF_MAP, 0, &mf_unit_env_name, .children = &env_value, .max = 256},
    {"resources", MF_OBJ, 0, .children = resources_fields},
    {"ports", MF_LIST, 0, .children = &port_item, .unique = port_unique, .max = 64},
    {"secrets", MF_LIST, 0, .children = &secret_item, .unique = name_unique, .max = 32},
    {"volumes", MF_LIST, 0, .children = &volume_item, .unique = volume_unique, .max = 16},
    {"health", MF_OBJ, 0, .children = health_fields},
    {"capabilities", MF_LIST, 0, .children = &capability_item, .max = 64},
    {"placement", MF_OBJ, MF_FILL, .children = placement_fields},
    {"update", MF_OBJ, MF_FILL, .children = update_fields, .check = check_update},
    END,
};

static const char *const deployment_kind_enum[] = {"Deployment", NULL};
static const char *const api_version_enum[] = {"v1", NULL};
static const struct mf_field labels_field = {"", MF_STR, MF_COERCE, &mf_unit_label_value};

static const struct mf_field metadata_fields[] = {
    {"name", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    {"labels", MF_MAP, 0, &mf_unit_label_key, .children = &labels_field, .max = 64},
    /* set by the server; accepted so that an object read from the API can be sent back */
    {"revision", MF_INT, 0, .min = 0, .max = INT64_MAX, .expect = "a non-negative integer"},
    {"created", MF_STR, 0, &mf_unit_text},
    {"generation", MF_INT, 0, .min = 0, .max = INT64_MAX, .expect = "a non-negative integer"},
    END,
};

/* status.rollout: the scheduler loop's record of the rollout (docs/rollout.md) */
static const char *const rollout_phase_enum[] = {"progressing", "paused", "complete",
                                                 "rolled-back", "failed", NULL};
static const struct mf_field weight_value = {"",       MF_INT,     0,
                                             .min = 0, .max = 256, .expect = "a weight 0..256"};
static const struct mf_field rollout_fields[] = {
    {"revision", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Revision"},
    {"phase", MF_STR, MF_REQUIRED, .enums = rollout_phase_enum},
    {"startedMs", MF_INT, 0, .min = 0, .max = INT64_MAX},
    {"from", MF_STR, 0, &mf_unit_dns_label, .expect = "the name of a Revision"},
    {"rolledBackFrom", MF_STR, 0, &mf_unit_dns_label, .expect = "the name of a Revision"},
    {"reason", MF_STR, 0, &mf_unit_text},
    {"weights", MF_MAP, 0, &mf_unit_dns_label, .children = &weight_value, .max = 64},
    {"step", MF_INT, 0, .min = 0, .max = 16},                   /* the canary step (from 0) */
    {"stepReachedMs", MF_INT, 0, .min = 0, .max = INT64_MAX},   /* its instances up */
    {"progressSinceMs", MF_INT, 0, .min = 0, .max = INT64_MAX}, /* deadline counts from */
    /* set by `sctl rollout promote|pause|resume|abort` through /status */
    {"promoted", MF_BOOL, 0},
    {"promoteFull", MF_BOOL, 0},
    {"pausedByUser", MF_BOOL, 0},
    {"aborted", MF_BOOL, 0},
    END,
};

static const struct mf_field deployment_status_fields[] = {
    {"rollout", MF_OBJ, 0, .children = rollout_fields},
    {"observedGeneration", MF_INT, 0, .min = 0, .max = INT64_MAX},
    {"replicas", MF_INT, 0, .min = 0, .max = INT64_MAX},
    {"assigned", MF_INT, 0, .min = 0, .max = INT64_MAX},
    {"ready", MF_INT, 0, .min = 0, .max = INT64_MAX},
    {"unschedulable", MF_STR, 0, &mf_unit_text},
    END,
};

static const struct mf_field deployment_object_fields[] = {
    {"kind", MF_STR, MF_REQUIRED, .enums = deployment_kind_enum},
    {"apiVersion", MF_STR, 0, .enums = api_version_enum, .def = "\"v1\""},
    {"metadata", MF_OBJ, MF_REQUIRED, .children = metadata_fields},
    {"spec", MF_OBJ, MF_REQUIRED, .children = replicas_fields, .more = template_fields,
     .check = check_spec},
    {"status", MF_OBJ, 0, .children = deployment_status_fields},
    END,
};

/* The compose-like form: app, labels (and optionally kind) beside the spec fields. */
static const struct mf_field deployment_compose_head[] = {
    {"app", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    {"kind", MF_STR, 0, .enums = deployment_kind_enum},
    {"labels", MF_MAP, 0, &mf_unit_label_key, .children = &labels_field, .max = 64},
    REPLICAS_FIELD,
    END,
};

static const struct mf_field deployment_object = {"", MF_OBJ, 0,
                                                  .children = deployment_object_fields};
static const struct mf_field deployment_compose = {"",
                                                   MF_OBJ,
                                                   0,
                                                   .children = deployment_compose_head,
                                                   .more = template_fields,
                                                   .check = check_spec};

/* ---- the kinds the controllers write ------------------------------------------------
 *
 * Revisions, Assignments, Nodes and Instances are written by sctld, its scheduler
 * loop and slet, not by people, so they have the object form only, and their
 * quantities are already the canonical integers (cpuMillis, memoryBytes): there
 * is no unit string to read.  Their shapes are those of docs/api.md, "Objects". */

#define OBJECT_HEAD(kind_enum)                                                                     \
    {"kind", MF_STR, MF_REQUIRED, .enums = kind_enum},                                             \
        {"apiVersion", MF_STR, 0, .enums = api_version_enum, .def = "\"v1\""},                     \
    {                                                                                              \
        "metadata", MF_OBJ, MF_REQUIRED, .children = metadata_fields                               \
    }

static const char *const revision_kind_enum[] = {"Revision", NULL};
static const struct mf_field revision_spec_fields[] = {
    {"deployment", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    {"generation", MF_INT, MF_REQUIRED, .min = 1, .max = INT64_MAX},
    {"template", MF_OBJ, MF_REQUIRED, .children = template_fields, .check = check_spec},
    END,
};
static const struct mf_field revision_object_fields[] = {
    OBJECT_HEAD(revision_kind_enum),
    {"spec", MF_OBJ, MF_REQUIRED, .children = revision_spec_fields},
    END,
};

static const char *const assignment_kind_enum[] = {"Assignment", NULL};
static const struct mf_field assignment_spec_fields[] = {
    {"deployment", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    {"revision", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Revision"},
    {"generation", MF_INT, MF_REQUIRED, .min = 1, .max = INT64_MAX},
    {"node", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Node"},
    {"cpuMillis", MF_INT, 0, .min = 0, .max = 1000000000, .def = "0"},
    {"memoryBytes", MF_INT, 0, .min = 0, .max = INT64_MAX, .def = "0"},
    /* set by a rollout: out of its load balancer's pool, removed once drained */
    {"draining", MF_BOOL, 0},
    {"drainingSinceMs", MF_INT, 0, .min = 0, .max = INT64_MAX},
    /* blue-green's keepOld: drained but kept this long, for a fast way back */
    {"drainMs", MF_INT, 0, .min = 0, .max = INT64_MAX},
    END,
};
static const struct mf_field assignment_object_fields[] = {
    OBJECT_HEAD(assignment_kind_enum),
    {"spec", MF_OBJ, MF_REQUIRED, .children = assignment_spec_fields},
    END,
};

static const char *const node_kind_enum[] = {"Node", NULL};
static const struct mf_field ip_item = {"", MF_STR, 0, &mf_unit_ip};
static const struct mf_field node_resources_fields[] = {
    {"cpuMillis", MF_INT, MF_REQUIRED, .min = 0, .max = 1000000000},
    {"memoryBytes", MF_INT, MF_REQUIRED, .min = 0, .max = INT64_MAX},
    END,
};
static const struct mf_field node_spec_fields[] = {
    {"addresses", MF_LIST, 0, .children = &ip_item, .max = 64},
    {"capacity", MF_OBJ, MF_REQUIRED, .children = node_resources_fields},
    {"allocatable", MF_OBJ, 0, .children = node_resources_fields},
    {"unschedulable", MF_BOOL, 0},
    /* sctl nodes drain: its Assignments are replaced elsewhere, gracefully */
    {"drain", MF_BOOL, 0},
    END,
};
static const struct mf_field node_object_fields[] = {
    OBJECT_HEAD(node_kind_enum),
    {"spec", MF_OBJ, MF_REQUIRED, .children = node_spec_fields},
    /* reserved for conditions (the node-join issue); kept, not looked into */
    {"status", MF_ANY, 0},
    END,
};

static const char *const instance_kind_enum[] = {"Instance", NULL};
static const char *const phase_enum[] = {"pending", "running", "exited", "failed", NULL};
static const struct mf_field instance_spec_fields[] = {
    {"assignment", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of an Assignment"},
    {"node", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Node"},
    {"revision", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Revision"},
    END,
};
static const struct mf_field instance_status_fields[] = {
    {"phase", MF_STR, MF_REQUIRED, .enums = phase_enum},
    {"ready", MF_BOOL, 0, .def = "false"},
    {"restarts", MF_INT, 0, .min = 0, .max = INT64_MAX, .def = "0"},
    {"exitCode", MF_INT, 0, .min = 0, .max = 255,
     .expect = "an exit status 0..255 (128 + N for a process killed by signal N)"},
    {"reason", MF_STR, 0, &mf_unit_text},
    {"addresses", MF_LIST, 0, .children = &ip_item, .max = 64},
    {"startedAt", MF_STR, 0, &mf_unit_timestamp},
    END,
};
static const struct mf_field instance_object_fields[] = {
    OBJECT_HEAD(instance_kind_enum),
    {"spec", MF_OBJ, MF_REQUIRED, .children = instance_spec_fields},
    {"status", MF_OBJ, 0, .children = instance_status_fields},
    END,
};

/* Endpoints: one per exposed port of a Deployment, written by the leader's
 * endpoints loop (sched_loop.c) from the ready Instances; read by the load
 * balancer programmer.  status is the programmer's (what it applied, errors). */
static const char *const endpoints_kind_enum[] = {"Endpoints", NULL};
static const struct mf_field endpoint_port_fields[] = {
    {"name", MF_STR, 0, &mf_unit_port_name},
    {"container", MF_INT, MF_REQUIRED, .min = 1, .max = 65535, .expect = "a port number 1..65535"},
    {"protocol", MF_STR, 0, .enums = proto_enum, .def = "\"tcp\""},
    END,
};
static const struct mf_field endpoint_fields[] = {
    {"instance", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of an Instance"},
    {"node", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Node"},
    {"address", MF_STR, MF_REQUIRED, &mf_unit_ip},
    {"port", MF_INT, MF_REQUIRED, .min = 1, .max = 65535, .expect = "a port number 1..65535"},
    {"revision", MF_STR, MF_REQUIRED, &mf_unit_dns_label, .expect = "the name of a Revision"},
    {"weight", MF_INT, 0, .min = 0, .max = 256, .def = "100", .expect = "a weight 0..256"},
    {"draining", MF_BOOL, 0, .def = "false"},
    END,
};
static const struct mf_field endpoint_item = {"", MF_OBJ, 0, .children = endpoint_fields};
static const char *const endpoint_unique[] = {"instance", NULL};
static const struct mf_field endpoints_spec_fields[] = {
    {"deployment", MF_STR, MF_REQUIRED, &mf_unit_dns_label},
    {"port", MF_OBJ, MF_REQUIRED, .children = endpoint_port_fields},
    {"expose", MF_OBJ, MF_REQUIRED, .children = expose_fields},
    {"endpoints", MF_LIST, 0, .children = &endpoint_item, .unique = endpoint_unique, .max = 100000},
    END,
};
static const struct mf_field endpoints_object_fields[] = {
    OBJECT_HEAD(endpoints_kind_enum),
    {"spec", MF_OBJ, MF_REQUIRED, .children = endpoints_spec_fields},
    {"status", MF_ANY, 0},
    END,
};
static const struct mf_field endpoints_object = {"", MF_OBJ, 0,
                                                 .children = endpoints_object_fields};

/* BootstrapToken: a node's one credential before it has a certificate (sctl token
 * create; POST /v1/join on the join listener).  The name is the token's id, the
 * secret is stored only as its SHA-256; status is the join endpoint's count. */
static const char *const token_kind_enum[] = {"BootstrapToken", NULL};
static const struct mf_field token_spec_fields[] = {
    {"secretHash", MF_STR, MF_REQUIRED, &mf_unit_sha256_hex},
    /* Unix time in ms after which it is refused; 0 = never */
    {"expiresMs", MF_INT, 0, .min = 0, .max = INT64_MAX, .def = "0"},
    /* joins it allows; 0 = any number until it expires */
    {"maxUses", MF_INT, 0, .min = 0, .max = 1000000, .def = "1"},
    {"description", MF_STR, 0, &mf_unit_text},
    END,
};
static const struct mf_field token_status_fields[] = {
    {"used", MF_INT, 0, .min = 0, .max = INT64_MAX, .def = "0"},
    {"lastUsedMs", MF_INT, 0, .min = 0, .max = INT64_MAX},
    {"lastNode", MF_STR, 0, &mf_unit_dns_label},
    END,
};
static const struct mf_field token_object_fields[] = {
    OBJECT_HEAD(token_kind_enum),
    {"spec", MF_OBJ, MF_REQUIRED, .children = token_spec_fields},
    {"status", MF_OBJ, 0, .children = token_status_fields},
    END,
};
static const struct mf_field token_object = {"", MF_OBJ, 0, .children = token_object_fields};

static const struct mf_field revision_object = {"", MF_OBJ, 0, .children = revision_object_fields};
static const struct mf_field assignment_object = {"", MF_OBJ, 0,
                                                  .children = assignment_object_fields};
static const struct mf_field node_object = {"", MF_OBJ, 0, .children = node_object_fields};
static const struct mf_field instance_object = {"", MF_OBJ, 0, .children = instance_object_fields};

const struct mf_kind mf_kinds[] = {
    {"Deployment", &deployment_object, &deployment_compose},
    {"Revision", &revision_object, NULL},
    {"Assignment", &assignment_object, NULL},
    {"Node", &node_object, NULL},
    {"Instance", &instance_object, NULL},
    {"Endpoints", &endpoints_object, NULL},
    {"BootstrapToken", &token_object, NULL},
    {NULL, NULL, NULL},
};

const struct mf_kind *mf_kind_find(const char *name)
{
    for (const struct mf_kind *k = mf_kinds; name && k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

bool manifest_kind_known(const char *kind)
{
    return mf_kind_find(kind) != NULL;
}
