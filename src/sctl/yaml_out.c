/*
 * yaml_out.c: JSON to YAML through libyaml's emitter (yaml_out.h says why).
 *
 * Styles: mappings and sequences in block style, empty ones in flow style ({} and
 * []); integers, reals, booleans and null plain; a string plain unless a YAML 1.2
 * (or 1.1) reader could take it for something else, then double-quoted.  libyaml
 * itself falls back to quoting when a plain scalar is impossible (": ", "#", a
 * leading indicator, a line break), so the output always reads back as the same
 * strings.
 */
#include "sctl/yaml_out.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Could a plain scalar s be read as anything but this string?  Conservative: any
 * leading digit, sign, dot or '~', and the words of YAML 1.1's booleans and null. */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {"null", "true", "false", "yes", "no",
                                        "on",   "off",  "y",     "n",   NULL};
    if (!*s || strchr("0123456789+-.~", *s))
        return true;
    for (size_t i = 0; words[i]; i++)
        if (!strcasecmp(s, words[i]))
            return true;
    return false;
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) ? 0 : -EIO; /* the emitter frees ev either way */
}

static int scalar(yaml_emitter_t *em, const char *text, bool quote)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                      quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                            : YAML_PLAIN_SCALAR_STYLE))
        return -ENOMEM;
    return emit(em, &ev);
}

static int node(yaml_emitter_t *em, const json_t *v, int depth);

/* The keys first printed at the top of an object and inside its metadata. */
static const char *const top_order[] = {"kind", "apiVersion", "metadata", "spec", "status", NULL};
static const char *const meta_order[] = {"name", "labels", NULL};

static int entry(yaml_emitter_t *em, const char *key, const json_t *val, int depth)
{
    int r = scalar(em, key, needs_quotes(key));
    return r < 0 ? r : node(em, val, depth + 1);
}

static bool in_list(const char *const *list, const char *key)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], key))
            return true;
    return false;
}

static int mapping(yaml_emitter_t *em, const json_t *v, int depth, const char *const *order)
{
    yaml_event_t ev;
    bool empty = json_object_size(v) == 0;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                        empty ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    int r = emit(em, &ev);
    for (size_t i = 0; r == 0 && order && order[i]; i++) {
        const json_t *val = json_object_get(v, order[i]);
        if (val)
            r = entry(em, order[i], val, depth);
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        if (r == 0 && !in_list(order, key))
            r = entry(em, key, val, depth);
    }
    if (r == 0) {
        yaml_mapping_end_event_initialize(&ev);
        r = emit(em, &ev);
    }
    return r;
}

static int node(yaml_emitter_t *em, const json_t *v, int depth)
{
    char num[64];
    yaml_event_t ev;
    int r;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return mapping(em, v, depth,
                       depth == 0                                         ? top_order
                       : depth == 1 && json_object_get(v, "name") != NULL ? meta_order
                                                                          : NULL);
    case JSON_ARRAY: {
        bool empty = json_array_size(v) == 0;
        yaml_sequence_start_event_initialize(
            &ev, NULL, NULL, 1, empty ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        if ((r = emit(em, &ev)) < 0)
            return r;
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) if ((r = node(em, item, depth + 1)) < 0) return r;
        yaml_sequence_end_event_initialize(&ev);
        return emit(em, &ev);
    }
    case JSON_STRING:
        return scalar(em, json_string_value(v), needs_quotes(json_string_value(v)));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return scalar(em, num, false);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        if (!strpbrk(num, ".eEn")) /* 1.0 must not come back as the integer 1 */
            strcat(num, ".0");
        return scalar(em, num, false);
    case JSON_TRUE:
        return scalar(em, "true", false);
    case JSON_FALSE:
        return scalar(em, "false", false);
    case JSON_NULL:
        return scalar(em, "null", false);
    }
    return -EINVAL;
}

static int write_docs(FILE *f, const json_t *const *docs, size_t n, int depth)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em))
        return -ENOMEM;
    yaml_emitter_set_output_file(&em, f);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_indent(&em, 2);
    yaml_emitter_set_width(&em, -1); /* never fold long strings */
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    int r = emit(&em, &ev);
    for (size_t i = 0; r == 0 && i < n; i++) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, i == 0);
        if ((r = emit(&em, &ev)) < 0)
            break;
        if ((r = node(&em, docs[i], depth)) < 0)
            break;
        yaml_document_end_event_initialize(&ev, 1);
        r = emit(&em, &ev);
    }
    if (r == 0) {
        yaml_stream_end_event_initialize(&ev);
        r = emit(&em, &ev);
    }
    if (r == 0 && !yaml_emitter_flush(&em))
        r = -EIO;
    yaml_emitter_delete(&em);
    return r;
}

int sctl_yaml_write(FILE *f, const json_t *const *docs, size_t n)
{
    return write_docs(f, docs, n, 0);
}

int sctl_yaml_write_indented(FILE *f, const json_t *v, int indent)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return -errno;
    int r = write_docs(m, &v, 1, 2); /* no reordering below the top */
    fclose(m);
    if (r == 0) {
        for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (!strncmp(line, "...", 3) && (!line[3] || line[3] == '\n'))
                continue; /* the end marker libyaml writes after a lone scalar */
            fprintf(f, "%*s%.*s\n", indent, "", nl ? (int)(nl - line) : (int)strlen(line), line);
        }
    }
    free(buf);
    return r;
}
