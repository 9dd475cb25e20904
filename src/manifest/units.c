/*
 * units.c: the value grammars of manifests: CPU and memory quantities, durations,
 * image references, names, label keys and values, paths and capability grants.
 *
 * Quantities follow Kubernetes where it has an answer, because that is what users
 * already type: CPU is cores ("2", 0.5) or millicores ("100m"); sizes are bytes
 * with decimal (k, M, G, T, P) or binary (Ki, Mi, Gi, Ti, Pi) suffixes, fractions
 * allowed when the result is a whole number of bytes ("1.5Gi").  Where Kubernetes
 * is ambiguous for users coming from Docker we refuse and explain: "K" (1000 or
 * 1024?) and "MB"/"GiB" get a "did you mean" instead of a guess.  Durations are
 * Go's ("1s", "500ms", "1m30s", "2h"), kept in milliseconds; a bare number is
 * refused because nobody can tell seconds from milliseconds by looking at it.
 *
 * The other kinds (Node, Instance) add IP addresses (IPv4 or IPv6, kept in
 * inet_ntop's spelling so that the canonical form is a fixed point) and RFC 3339
 * timestamps (kept as written; only the shape is checked).
 *
 * Each grammar is an mf_unit: a parser from a JSON value to the canonical JSON
 * value plus the "expected ..." phrase that error messages use.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "manifest/mf_int.h"

static void why_set(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t size, const char *fmt, ...)
{
    if (!why || !size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
}

/* "12", "1.5", ".5" at the start of s: the value times 10^9 as an exact integer
 * (nano-units), so "0.1" is not 0.1000000000000000055. */
static int parse_decimal_nano(const char *s, const char **end, __int128 *ret)
{
    const char *p = s;
    __int128 v = 0;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p++ - '0');
        if (v > (__int128)INT64_MAX * 1000)
            return -ERANGE;
        digits++;
    }
    v *= 1000000000;
    if (*p == '.') {
        p++;
        __int128 scale = 100000000;
        while (isdigit((unsigned char)*p)) {
            if (scale == 0)
                return -EDOM; /* finer than a nano-unit */
            v += (*p++ - '0') * scale;
            scale /= 10;
            digits++;
        }
    }
    if (!digits)
        return -EINVAL;
    *end = p;
    *ret = v;
    return 0;
}

/* ---- CPU ------------------------------------------------------------------------- */

#define CPU_MAX_MILLIS (1000000LL * 1000) /* a million cores */

int manifest_parse_cpu(const char *s, int64_t *ret_millis, char *why, size_t why_size)
{
    const char *end;
    __int128 nano;
    if (*s == '-') {
        why_set(why, why_size, "CPU cannot be negative");
        return -SC_E_INVALID;
    }
    int r = parse_decimal_nano(s, &end, &nano);
    if (r == -EINVAL) {
        why_set(why, why_size, "it does not start with a number");
        return -SC_E_INVALID;
    }
    if (r < 0 || nano / 1000000000 > CPU_MAX_MILLIS) {
        why_set(why, why_size, "at most %lld cores", CPU_MAX_MILLIS / 1000);
        return -SC_E_INVALID;
    }
    __int128 millis_nano; /* millicores times 10^9 */
    if (strcmp(end, "m") == 0)
        millis_nano = nano;
    else if (*end == 0)
        millis_nano = nano * 1000;
    else {
        why_set(why, why_size, "unknown unit '%s' (use 'm' for millicores or none for cores)", end);
        return -SC_E_INVALID;
    }
    if (millis_nano % 1000000000) {
        why_set(why, why_size, "the smallest CPU step is 1m (a thousandth of a core)");
        return -SC_E_INVALID;
    }
    int64_t m = (int64_t)(millis_nano / 1000000000);
    if (m == 0) {
        why_set(why, why_size, "CPU must be more than 0");
        return -SC_E_INVALID;
    }
    if (m > CPU_MAX_MILLIS) {
        why_set(why, why_size, "at most %lld cores", CPU_MAX_MILLIS / 1000);
        return -SC_E_INVALID;
    }
    *ret_millis = m;
    return 0;
}

/* A number (JSON integer or real, as YAML gives 2 or 0.5) through the string grammar,
 * so 0.1 means exactly 100m. */
static int number_text(const json_t *v, char *buf, size_t size)
{
    if (json_is_integer(v))
        snprintf(buf, size, "%" PRId64, (int64_t)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, size, "%.9f", json_real_value(v));
    else
        return -1;
    return 0;
}

static json_t *parse_cpu(const json_t *v, char *why, size_t why_size)
{
    char num[64];
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s && number_text(v, num, sizeof(num)) == 0)
        s = num;
    if (!s)
        return NULL;
    int64_t m;
    if (json_is_real(v) && json_real_value(v) < 0) {
        why_set(why, why_size, "CPU cannot be negative");
        return NULL;
    }
    return manifest_parse_cpu(s, &m, why, why_size) == 0 ? json_integer(m) : NULL;
}

/* ---- sizes ------------------------------------------------------------------------ */

static const struct {
    const char *suffix;
    int64_t mult;
} size_units[] = {
    {"", 1},
    {"k", 1000LL},
    {"M", 1000LL * 1000},
    {"G", 1000LL * 1000 * 1000},
    {"T", 1000LL * 1000 * 1000 * 1000},
    {"P", 1000LL * 1000 * 1000 * 1000 * 1000},
    {"Ki", 1LL << 10},
    {"Mi", 1LL << 20},
    {"Gi", 1LL << 30},
    {"Ti", 1LL << 40},
    {"Pi", 1LL << 50},
};

/* Words users bring from elsewhere, and what they most likely meant. */
static const struct {
    const char *wrong, *hint;
} size_hints[] = {
    {"K", "'k' (1000) or 'Ki' (1024)"},
    {"Kb", "'k' (1000) or 'Ki' (1024)"},
    {"KB", "'k' (1000) or 'Ki' (1024)"},
    {"kB", "'k' (1000) or 'Ki' (1024)"},
    {"KiB", "'Ki'"},
    {"MB", "'M' (10^6) or 'Mi' (2^20)"},
    {"MiB", "'Mi'"},
    {"m", "'M' (10^6) or 'Mi' (2^20); 'm' would be thousandths of a byte"},
    {"Mb", "'M' (10^6) or 'Mi' (2^20)"},
    {"GB", "'G' (10^9) or 'Gi' (2^30)"},
    {"GiB", "'Gi'"},
    {"g", "'G' (10^9) or 'Gi' (2^30)"},
    {"Gb", "'G' (10^9) or 'Gi' (2^30)"},
    {"TB", "'T' or 'Ti'"},
    {"TiB", "'Ti'"},
    {"B", "no unit (plain bytes)"},
    {"b", "no unit (plain bytes)"},
};

int manifest_parse_size(const char *s, int64_t *ret_bytes, char *why, size_t why_size)
{
    const char *end;
    __int128 nano;
    if (*s == '-') {
        why_set(why, why_size, "a size cannot be negative");
        return -SC_E_INVALID;
    }
    int r = parse_decimal_nano(s, &end, &nano);
    if (r == -EINVAL) {
        why_set(why, why_size, "it does not start with a number");
        return -SC_E_INVALID;
    }
    if (r < 0) {
        why_set(why, why_size, "too large");
        return -SC_E_INVALID;
    }
    for (size_t i = 0; i < ELEMENTSOF(size_units); i++) {
        if (strcmp(end, size_units[i].suffix) != 0)
            continue;
        if (nano > (__int128)INT64_MAX * 1000000000 / size_units[i].mult) {
            why_set(why, why_size, "too large");
            return -SC_E_INVALID;
        }
        __int128 b = nano * size_units[i].mult;
        if (b % 1000000000) {
            why_set(why, why_size, "it is not a whole number of bytes");
            return -SC_E_INVALID;
        }
        b /= 1000000000;
        if (b > INT64_MAX) {
            why_set(why, why_size, "too large");
            return -SC_E_INVALID;
        }
        *ret_bytes = (int64_t)b;
        return 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(size_hints); i++) {
        if (strcmp(end, size_hints[i].wrong) == 0) {
            why_set(why, why_size, "unknown unit '%s', did you mean %s?", end, size_hints[i].hint);
            return -SC_E_INVALID;
        }
    }
    why_set(why, why_size, "unknown unit '%.16s'", end);
    return -SC_E_INVALID;
}

static json_t *parse_size(const json_t *v, char *why, size_t why_size)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) {
            why_set(why, why_size, "a size cannot be negative");
            return NULL;
        }
        return json_integer(json_integer_value(v));
    }
    if (json_is_real(v)) {
        why_set(why, why_size, "not a whole number of bytes");
        return NULL;
    }
    if (!json_is_string(v))
        return NULL;
    int64_t b;
    return manifest_parse_size(json_string_value(v), &b, why, why_size) == 0 ? json_integer(b)
                                                                             : NULL;
}

/* ---- durations -------------------------------------------------------------------- */

int manifest_parse_duration(const char *s, int64_t *ret_ms, char *why, size_t why_size)
{
    static const struct {
        const char *unit;
        int64_t nanos;
    } units[] = {
        /* longest first so "ms" is not read as "m" then "s" */
        {"ms", 1000000LL},          {"us", 1000LL},           {"ns", 1LL},
        {"h", 3600LL * 1000000000}, {"m", 60LL * 1000000000}, {"s", 1000000000LL},
    };
    if (*s == '-') {
        why_set(why, why_size, "a duration cannot be negative");
        return -SC_E_INVALID;
    }
    if (!*s) {
        why_set(why, why_size, "it is empty");
        return -SC_E_INVALID;
    }
    __int128 total = 0; /* nanoseconds times 10^9 */
    const char *p = s;
    while (*p) {
        __int128 nano;
        const char *end;
        int r = parse_decimal_nano(p, &end, &nano);
        if (r == -EINVAL) {
            why_set(why, why_size, "expected a number at '%.16s'", p);
            return -SC_E_INVALID;
        }
        if (r < 0) {
            why_set(why, why_size, "too long");
            return -SC_E_INVALID;
        }
        size_t u = 0;
        for (; u < ELEMENTSOF(units); u++)
            if (strncmp(end, units[u].unit, strlen(units[u].unit)) == 0)
                break;
        if (u == ELEMENTSOF(units)) {
            if (*end)
                why_set(why, why_size, "unknown unit '%.8s' (use h, m, s, ms)", end);
            else
                why_set(why, why_size, "a number needs a unit, e.g. %ss or %sms", s, s);
            return -SC_E_INVALID;
        }
        const __int128 limit = (__int128)INT64_MAX * 1000000 * 1000000000;
        if (nano > (limit - total) / units[u].nanos) {
            why_set(why, why_size, "too long");
            return -SC_E_INVALID;
        }
        total += nano * units[u].nanos;
        p = end + strlen(units[u].unit);
    }
    __int128 per_ms = (__int128)1000000 * 1000000000;
    if (total % per_ms) {
        why_set(why, why_size, "the smallest step is 1ms");
        return -SC_E_INVALID;
    }
    *ret_ms = (int64_t)(total / per_ms);
    return 0;
}

static json_t *parse_duration(const json_t *v, char *why, size_t why_size)
{
    if (json_is_integer(v) || json_is_real(v)) {
        char num[64];
        number_text(v, num, sizeof(num));
        why_set(why, why_size, "a number needs a unit, e.g. %ss or %sms",
                json_is_integer(v) ? num : "1", json_is_integer(v) ? num : "500");
        return NULL;
    }
    if (!json_is_string(v))
        return NULL;
    int64_t ms;
    return manifest_parse_duration(json_string_value(v), &ms, why, why_size) == 0 ? json_integer(ms)
                                                                                  : NULL;
}

/* ---- formatting ------------------------------------------------------------------- */

void manifest_format_cpu(int64_t millis, char buf[32])
{
    if (millis % 1000 == 0)
        snprintf(buf, 32, "%" PRId64, millis / 1000);
    else
        snprintf(buf, 32, "%" PRId64 "m", millis);
}

/* The shortest exact spelling; binary suffixes win ties (memory is usually binary). */
void manifest_format_size(int64_t bytes, char buf[32])
{
    snprintf(buf, 32, "%" PRId64, bytes);
    for (int binary = 1; binary >= 0; binary--) {
        for (size_t i = 1; i < ELEMENTSOF(size_units); i++) {
            if ((size_units[i].suffix[1] == 'i') != binary || bytes == 0 ||
                bytes % size_units[i].mult != 0)
                continue;
            char alt[32];
            snprintf(alt, sizeof(alt), "%" PRId64 "%s", bytes / size_units[i].mult,
                     size_units[i].suffix);
            if (strlen(alt) < strlen(buf))
                memcpy(buf, alt, strlen(alt) + 1);
        }
    }
}

void manifest_format_duration(int64_t ms, char buf[32])
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, 32, "%" PRId64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, 32, "%" PRId64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, 32, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, 32, "%" PRId64 "ms", ms);
}

/* ---- names ------------------------------------------------------------------------ */

/* RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most max characters. */
static bool dns_label_ok(const char *s, size_t max, char *why, size_t why_size)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        why_set(why, why_size, n ? "longer than %zu characters" : "it is empty", max);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (isupper((unsigned char)c)) {
            why_set(why, why_size, "upper-case letters are not allowed");
            return false;
        }
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) {
            why_set(why, why_size, "'%c' is not allowed", c);
            return false;
        }
    }
    if (s[0] == '-' || s[n - 1] == '-') {
        why_set(why, why_size, "it must start and end with a letter or digit");
        return false;
    }
    return true;
}

static json_t *parse_dns_label(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    return dns_label_ok(s, 63, why, why_size) ? json_string(s) : NULL;
}

static json_t *parse_port_name(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    if (!dns_label_ok(s, 15, why, why_size))
        return NULL;
    if (strspn(s, "0123456789-") == strlen(s)) {
        why_set(why, why_size, "it needs at least one letter");
        return NULL;
    }
    return json_string(s);
}

/* A label name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63. */
static bool label_name_ok(const char *s, size_t n, bool allow_empty, char *why, size_t why_size)
{
    if (n == 0) {
        if (!allow_empty)
            why_set(why, why_size, "it is empty");
        return allow_empty;
    }
    if (n > 63) {
        why_set(why, why_size, "longer than 63 characters");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.') {
            why_set(why, why_size, "'%c' is not allowed", c);
            return false;
        }
    }
    if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) {
        why_set(why, why_size, "it must start and end with a letter or digit");
        return false;
    }
    return true;
}

static json_t *parse_label_key(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    const char *slash = strchr(s, '/');
    if (slash) {
        size_t plen = (size_t)(slash - s);
        if (plen == 0 || plen > 253) {
            why_set(why, why_size, "the prefix before '/' must be a DNS name");
            return NULL;
        }
        for (const char *p = s; p < slash; p++) {
            if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-' &&
                *p != '.') {
                why_set(why, why_size, "the prefix before '/' must be a lower-case DNS name");
                return NULL;
            }
        }
        s = slash + 1;
    }
    return label_name_ok(s, strlen(s), false, why, why_size) ? json_string(json_string_value(v))
                                                             : NULL;
}

static json_t *parse_label_value(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    return label_name_ok(s, strlen(s), true, why, why_size) ? json_string(s) : NULL;
}

static json_t *parse_env_name(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    if (!*s || isdigit((unsigned char)s[0])) {
        why_set(why, why_size, *s ? "it must not start with a digit" : "it is empty");
        return NULL;
    }
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_') {
            why_set(why, why_size, "'%c' is not allowed", *p);
            return NULL;
        }
    }
    if (strlen(s) > 255) {
        why_set(why, why_size, "longer than 255 characters");
        return NULL;
    }
    return json_string(s);
}

static bool abs_path_ok(const char *s, size_t max, char *why, size_t why_size)
{
    if (s[0] != '/') {
        why_set(why, why_size, "it must start with '/'");
        return false;
    }
    if (strlen(s) > max) {
        why_set(why, why_size, "longer than %zu characters", max);
        return false;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            why_set(why, why_size, "control characters are not allowed");
            return false;
        }
        if (p[0] == '.' && p[1] == '.' && p[-1] == '/' && (p[2] == '/' || p[2] == 0)) {
            why_set(why, why_size, "'..' is not allowed");
            return false;
        }
    }
    return true;
}

static json_t *parse_abs_path(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    return abs_path_ok(s, 255, why, why_size) ? json_string(s) : NULL;
}

static json_t *parse_http_path(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    if (s[0] != '/') {
        why_set(why, why_size, "it must start with '/'");
        return NULL;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            why_set(why, why_size, "spaces and control characters are not allowed");
            return NULL;
        }
    }
    if (strlen(s) > 1024) {
        why_set(why, why_size, "longer than 1024 characters");
        return NULL;
    }
    return json_string(s);
}

/* fs.read:/PATH, fs.write:/PATH, net.listen:PORT, net.connect:PORT (docs/cell.md). */
static json_t *parse_capability(const json_t *v, char *why, size_t why_size)
{
    static const char *const kinds[] = {"fs.read", "fs.write", "net.listen", "net.connect"};
    const char *s = json_string_value(v);
    const char *colon = strchr(s, ':');
    char kind[32];
    snprintf(kind, sizeof(kind), "%.*s", colon ? (int)MIN((size_t)(colon - s), 31) : 31, s);
    size_t k = 0;
    for (; k < ELEMENTSOF(kinds); k++)
        if (strcmp(kind, kinds[k]) == 0)
            break;
    if (k == ELEMENTSOF(kinds)) {
        const char *near = mf_closest(kind, kinds, ELEMENTSOF(kinds));
        if (near)
            why_set(why, why_size, "unknown capability '%s', did you mean '%s'?", kind, near);
        else
            why_set(why, why_size, "unknown capability '%s'", kind);
        return NULL;
    }
    if (!colon || !colon[1]) {
        why_set(why, why_size, "'%s' needs %s after ':'", kind, k < 2 ? "a path" : "a port");
        return NULL;
    }
    const char *arg = colon + 1;
    if (k < 2)
        return abs_path_ok(arg, 255, why, why_size) ? json_string(s) : NULL;
    char *end;
    errno = 0;
    unsigned long port = strtoul(arg, &end, 10);
    if (!isdigit((unsigned char)*arg) || *end || errno || port < 1 || port > 65535) {
        why_set(why, why_size, "the port must be 1..65535");
        return NULL;
    }
    return json_string(s);
}

static json_t *parse_text(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    if (strlen(s) > 32768) {
        why_set(why, why_size, "longer than 32768 bytes");
        return NULL;
    }
    return json_string(s);
}

/* A SHA-256 digest in lower-case hex (a bootstrap token's stored secret hash). */
static json_t *parse_sha256_hex(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    if (strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64) {
        why_set(why, why_size, "not 64 lower-case hex digits");
        return NULL;
    }
    return json_string(s);
}

/* ---- image references ------------------------------------------------------------- */

/* One repository path component: [a-z0-9]+([._-][a-z0-9]+)*. */
static bool repo_component_ok(const char *s, size_t n)
{
    if (n == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (islower((unsigned char)c) || isdigit((unsigned char)c))
            continue;
        if ((c == '.' || c == '_' || c == '-') && i + 1 < n && isalnum((unsigned char)s[i + 1]))
            continue;
        return false;
    }
    return true;
}

/* A registry host: host[:port], letters, digits, '.', '-'. */
static bool host_ok(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n;
    if (hn == 0)
        return false;
    for (size_t i = 0; i < hn; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
            return false;
    if (colon) {
        size_t pn = n - hn - 1;
        if (pn == 0 || pn > 5)
            return false;
        for (size_t i = 0; i < pn; i++)
            if (!isdigit((unsigned char)colon[1 + i]))
                return false;
    }
    return true;
}

#define DIGEST_HEX 64
#define DIGEST_MIN 4

/*
 * REF := DIGEST | NAME [':' TAG] ['@' DIGEST]
 * DIGEST := 'blake3:' HEX{4,64} ['…' | '...']      (fewer than 64: an abbreviation
 *                                                   the server resolves, as git does)
 * NAME := [HOST '/'] COMPONENT ('/' COMPONENT)*    (HOST: has '.' or ':' or is localhost)
 * Canonical: hex in lower case, the abbreviation mark dropped.
 */
static json_t *parse_image(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    if (n == 0 || n > 512) {
        why_set(why, why_size, n ? "longer than 512 characters" : "it is empty");
        return NULL;
    }
    struct sc_buf out = {0};
    const char *at = strchr(s, '@');
    const char *digest = NULL;
    size_t name_len = n;
    if (at)
        digest = at + 1, name_len = (size_t)(at - s);
    else if (strncmp(s, "blake3:", 7) == 0 || strncmp(s, "sha256:", 7) == 0)
        digest = s, name_len = 0;
    json_t *ret = NULL;
    if (name_len) {
        /* NAME [':' TAG]: the tag is after the last '/' */
        const char *last_slash = memrchr(s, '/', name_len);
        const char *tag = memchr(last_slash ? last_slash : s, ':',
                                 name_len - (size_t)(last_slash ? last_slash - s : 0));
        size_t repo_len = tag ? (size_t)(tag - s) : name_len;
        if (tag) {
            size_t tn = name_len - repo_len - 1;
            if (tn == 0 || tn > 128 || !(isalnum((unsigned char)tag[1]) || tag[1] == '_')) {
                why_set(why, why_size, "the tag after ':' must be 1..128 of A-Z a-z 0-9 _ . -");
                goto out;
            }
            for (size_t i = 1; i <= tn; i++) {
                char c = tag[i];
                if (!isalnum((unsigned char)c) && c != '_' && c != '.' && c != '-') {
                    why_set(why, why_size, "'%c' is not allowed in a tag", c);
                    goto out;
                }
            }
        }
        const char *p = s, *end = s + repo_len;
        bool first = true;
        while (p <= end) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            size_t cn = slash ? (size_t)(slash - p) : (size_t)(end - p);
            bool is_host = first && slash &&
                           (memchr(p, '.', cn) || memchr(p, ':', cn) ||
                            (cn == 9 && memcmp(p, "localhost", 9) == 0));
            if (is_host ? !host_ok(p, cn) : !repo_component_ok(p, cn)) {
                why_set(why, why_size,
                        is_host ? "'%.*s' is not a registry host[:port]"
                                : "'%.*s' is not a repository name (lower-case letters, digits, "
                                  "and . _ - between them)",
                        (int)MIN(cn, 64), p);
                goto out;
            }
            first = false;
            if (!slash)
                break;
            p = slash + 1;
        }
        sc_buf_put(&out, s, name_len);
    }
    if (digest) {
        if (strncmp(digest, "sha256:", 7) == 0) {
            why_set(why, why_size,
                    "images are identified by BLAKE3 (blake3:<hex>), not sha256; import OCI "
                    "images with `sctl image import`");
            goto out;
        }
        if (strncmp(digest, "blake3:", 7) != 0) {
            why_set(why, why_size, "the digest after '@' must start with 'blake3:'");
            goto out;
        }
        const char *hex = digest + 7;
        size_t hn = strspn(hex, "0123456789abcdefABCDEF");
        const char *rest = hex + hn;
        bool abbrev_mark = strcmp(rest, "\xe2\x80\xa6") == 0 || strcmp(rest, "...") == 0;
        if (*rest && !abbrev_mark) {
            why_set(why, why_size, "'%.4s' is not a hexadecimal digit of the digest", rest);
            goto out;
        }
        if (hn > DIGEST_HEX || hn < DIGEST_MIN || (abbrev_mark && hn == DIGEST_HEX)) {
            why_set(why, why_size,
                    "a BLAKE3 digest has %d hex digits (at least %d when abbreviated), not %zu",
                    DIGEST_HEX, DIGEST_MIN, hn);
            goto out;
        }
        if (name_len)
            sc_buf_put_u8(&out, '@');
        sc_buf_put(&out, "blake3:", 7);
        for (size_t i = 0; i < hn; i++)
            sc_buf_put_u8(&out, (uint8_t)tolower((unsigned char)hex[i]));
    }
    ret = json_stringn((const char *)out.data, out.len);
out:
    sc_buf_free(&out);
    return ret;
}

/* An IPv4 or IPv6 address, in inet_ntop's spelling ("::1", not "0:0:0:0:0:0:0:1"). */
static json_t *parse_ip(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    unsigned char bin[16];
    char out[INET6_ADDRSTRLEN];
    int af = strchr(s, ':') ? AF_INET6 : AF_INET;
    if (strlen(s) >= sizeof(out) || inet_pton(af, s, bin) != 1) {
        why_set(why, why_size, "not an IPv%d address", af == AF_INET6 ? 6 : 4);
        return NULL;
    }
    inet_ntop(af, bin, out, sizeof(out));
    return json_string(out);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* RFC 3339: 2024-05-01T12:00:00Z, with optional fraction and a Z or +hh:mm offset. */
static json_t *parse_timestamp(const json_t *v, char *why, size_t why_size)
{
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    bool ok = n >= 20 && n <= 40 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) &&
              s[7] == '-' && digits(s + 8, 2) && (s[10] == 'T' || s[10] == 't') &&
              digits(s + 11, 2) && s[13] == ':' && digits(s + 14, 2) && s[16] == ':' &&
              digits(s + 17, 2);
    const char *p = s + 19;
    if (ok && *p == '.') {
        size_t f = strspn(p + 1, "0123456789");
        ok = f > 0 && f <= 9;
        p += 1 + f;
    }
    if (ok)
        ok = ((*p == 'Z' || *p == 'z') && p[1] == '\0') ||
             ((*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
              p[6] == '\0');
    if (ok) {
        int mon = atoi(s + 5), day = atoi(s + 8), h = atoi(s + 11), mi = atoi(s + 14),
            sec = atoi(s + 17);
        ok = mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && h <= 23 && mi <= 59 && sec <= 60;
    }
    if (!ok) {
        why_set(why, why_size, "not an RFC 3339 time");
        return NULL;
    }
    return json_string(s);
}

const struct mf_unit mf_unit_cpu = {parse_cpu, "a CPU quantity like 100m, 0.5 or 2 (cores)"};
const struct mf_unit mf_unit_size = {
    parse_size, "a size like 64Mi, 1Gi or 512k (suffixes k M G T P, Ki Mi Gi Ti Pi; none = bytes)"};
const struct mf_unit mf_unit_duration = {parse_duration, "a duration like 1s, 500ms or 1m30s"};
const struct mf_unit mf_unit_image = {
    parse_image, "an image reference: blake3:<hex>, NAME@blake3:<hex> or NAME[:TAG]"};
const struct mf_unit mf_unit_dns_label = {
    parse_dns_label, "a name of lower-case letters, digits and '-' (at most 63, like web-api)"};
const struct mf_unit mf_unit_port_name = {
    parse_port_name, "a port name of lower-case letters, digits and '-' (at most 15, like http)"};
const struct mf_unit mf_unit_label_key = {
    parse_label_key, "a label key like app or example.com/tier (letters, digits, - _ .)"};
const struct mf_unit mf_unit_label_value = {
    parse_label_value, "a label value of at most 63 letters, digits and - _ ."};
const struct mf_unit mf_unit_env_name = {
    parse_env_name,
    "an environment variable name (letters, digits, '_'; not starting with a digit)"};
const struct mf_unit mf_unit_abs_path = {parse_abs_path, "an absolute path like /data"};
const struct mf_unit mf_unit_http_path = {parse_http_path, "an HTTP path like /healthz"};
const struct mf_unit mf_unit_capability = {
    parse_capability, "a capability: fs.read:/PATH, fs.write:/PATH, net.listen:PORT or "
                      "net.connect:PORT"};
const struct mf_unit mf_unit_text = {parse_text, "a string"};
const struct mf_unit mf_unit_ip = {parse_ip, "an IP address like 10.0.0.5 or fd00::5"};
const struct mf_unit mf_unit_sha256_hex = {parse_sha256_hex,
                                           "a SHA-256 digest as 64 lower-case hex digits"};
const struct mf_unit mf_unit_timestamp = {parse_timestamp,
                                          "an RFC 3339 time like 2024-05-01T12:00:00Z"};
