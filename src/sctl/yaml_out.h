/*
 * yaml_out.h: JSON objects written as YAML, for `sctl get -o yaml` and the readable
 * parts of `sctl describe`.
 *
 * Why its own small module: what `get -o yaml` prints must load again with
 * `sctl apply -f` (src/manifest reads YAML 1.2 core-schema scalars), so a string
 * that a YAML reader would take for a number, a boolean or null ("007", "true",
 * "1.5", "", "~", "yes") is double-quoted, and everything else is plain block
 * style, as kubectl prints.  libyaml's emitter does the escaping and the layout;
 * this file only decides styles and the order of an object's first keys (kind,
 * apiVersion, metadata, spec, status; name and labels first in metadata).
 */
#pragma once

#include <jansson.h>
#include <stdio.h>

/* Writes the n JSON values of docs as YAML documents to f (the second and later
 * ones after a `---` line).  Returns 0, or -EIO when the emitter failed. */
int sctl_yaml_write(FILE *f, const json_t *const *docs, size_t n);

/* One value, every line prefixed with indent spaces and no document markers
 * (describe's nested blocks).  Scalars print on one line. */
int sctl_yaml_write_indented(FILE *f, const json_t *v, int indent);
