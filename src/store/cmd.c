/*
 * cmd.c: validation and the binary log encoding of store commands (store.h).
 *
 * The encoding is what every log record of the store holds, so it is versioned
 * and decoded defensively: counts are bounded by the bytes left, strings by the
 * limits, and any malformation is -SC_E_CORRUPT (the WAL already checked the
 * CRC, so a bad command here means a bug or a hostile peer, not a torn write).
 *
 *   cmd  := u8 version(1) u8 type body
 *   TXN  := uvarint ncmp cmp* uvarint nsucc op* uvarint nfail op*
 *   cmp  := bytes key u8 target u8 op svarint num bytes value
 *   op   := u8 type u8 flags bytes key
 *           [PUT: bytes value svarint lease] [GET: svarint rev svarint limit]
 *   LEASE_GRANT := svarint id svarint ttl     LEASE_REVOKE := svarint id
 *   COMPACT := svarint rev
 */
#include <stdio.h>

#include "store/store.h"

#define CMD_VERSION      1
#define MAX_DECODE_ITEMS 65536

enum { F_PREFIX = 1, F_PREV = 2, F_COUNT = 4, F_KEYS = 8 };

void store_limits_default(struct store_limits *l)
{
    l->max_key_bytes = STORE_DEFAULT_MAX_KEY;
    l->max_value_bytes = STORE_DEFAULT_MAX_VALUE;
    l->max_txn_ops = STORE_DEFAULT_MAX_OPS;
}

static int validate_key(const uint8_t *key, size_t n, bool prefix, const struct store_limits *l,
                        const char *field, struct sc_error *e)
{
    if (n == 0 && !prefix)
        return sc_error_set(e, -SC_E_INVALID, field, "%s: key must not be empty", field);
    if (n > l->max_key_bytes)
        return sc_error_set(e, -SC_E_KEY_TOO_LARGE, field, "%s: key is %zu bytes, the limit is %zu",
                            field, n, l->max_key_bytes);
    (void)key;
    return 0;
}

static int validate_op(const struct store_op *op, const struct store_limits *l, const char *field,
                       struct sc_error *e)
{
    char f[64];
    snprintf(f, sizeof(f), "%s.key", field);
    int r = validate_key(op->key, op->key_len, op->prefix, l, f, e);
    if (r < 0)
        return r;
    switch (op->type) {
    case STORE_OP_PUT:
        if (op->prefix)
            return sc_error_set(e, -SC_E_INVALID, field, "%s: a put cannot take a prefix", field);
        if (op->value_len > l->max_value_bytes)
            return sc_error_set(e, -SC_E_VALUE_TOO_LARGE, field,
                                "%s: value is %zu bytes, the limit is %zu", field, op->value_len,
                                l->max_value_bytes);
        if (op->lease < 0)
            return sc_error_set(e, -SC_E_INVALID, field, "%s: lease id must not be negative",
                                field);
        return 0;
    case STORE_OP_DELETE:
        return 0;
    case STORE_OP_GET:
        if (op->rev < 0)
            return sc_error_set(e, -SC_E_INVALID, field, "%s: revision must not be negative",
                                field);
        if (op->limit < 0)
            return sc_error_set(e, -SC_E_INVALID, field, "%s: limit must not be negative", field);
        return 0;
    }
    return sc_error_set(e, -SC_E_INVALID, field, "%s: unknown operation", field);
}

int store_cmd_validate(const struct store_cmd *c, const struct store_limits *l, struct sc_error *e)
{
    char f[64];
    switch (c->type) {
    case STORE_CMD_TXN:
        if (c->ncmps + c->nsuccess + c->nfailure > l->max_txn_ops)
            return sc_error_set(e, -SC_E_TOO_MANY_OPS, "success",
                                "transaction has %zu compares and operations, the limit is %zu",
                                c->ncmps + c->nsuccess + c->nfailure, l->max_txn_ops);
        for (size_t i = 0; i < c->ncmps; i++) {
            const struct store_cmp *cmp = &c->cmps[i];
            snprintf(f, sizeof(f), "compare[%zu].key", i);
            int r = validate_key(cmp->key, cmp->key_len, false, l, f, e);
            if (r < 0)
                return r;
            snprintf(f, sizeof(f), "compare[%zu]", i);
            if (cmp->target < STORE_CMP_VERSION || cmp->target > STORE_CMP_LEASE)
                return sc_error_set(e, -SC_E_INVALID, f, "%s: unknown target", f);
            if (cmp->op < STORE_CMP_EQ || cmp->op > STORE_CMP_GT)
                return sc_error_set(e, -SC_E_INVALID, f, "%s: unknown comparison", f);
            if (cmp->value_len > l->max_value_bytes)
                return sc_error_set(e, -SC_E_VALUE_TOO_LARGE, f, "%s: value is too large", f);
        }
        for (size_t i = 0; i < c->nsuccess; i++) {
            snprintf(f, sizeof(f), "success[%zu]", i);
            int r = validate_op(&c->success[i], l, f, e);
            if (r < 0)
                return r;
        }
        for (size_t i = 0; i < c->nfailure; i++) {
            snprintf(f, sizeof(f), "failure[%zu]", i);
            int r = validate_op(&c->failure[i], l, f, e);
            if (r < 0)
                return r;
        }
        return 0;
    case STORE_CMD_LEASE_GRANT:
        if (c->lease_id <= 0)
            return sc_error_set(e, -SC_E_INVALID, "id", "lease id must be positive");
        if (c->ttl_sec <= 0 || c->ttl_sec > 365LL * 24 * 3600)
            return sc_error_set(e, -SC_E_INVALID, "ttl",
                                "ttl must be between 1 second and one year, got %lld",
                                (long long)c->ttl_sec);
        return 0;
    case STORE_CMD_LEASE_REVOKE:
        if (c->lease_id <= 0)
            return sc_error_set(e, -SC_E_INVALID, "id", "lease id must be positive");
        return 0;
    case STORE_CMD_COMPACT:
        if (c->compact_rev <= 0)
            return sc_error_set(e, -SC_E_INVALID, "revision",
                                "compaction revision must be positive");
        return 0;
    }
    return sc_error_set(e, -SC_E_INVALID, "type", "unknown command type %d", (int)c->type);
}

static void put_op(struct sc_buf *b, const struct store_op *op)
{
    sc_buf_put_u8(b, (uint8_t)op->type);
    sc_buf_put_u8(b, (uint8_t)((op->prefix ? F_PREFIX : 0) | (op->prev_kv ? F_PREV : 0) |
                               (op->count_only ? F_COUNT : 0) | (op->keys_only ? F_KEYS : 0)));
    sc_buf_put_bytes(b, op->key, op->key_len);
    if (op->type == STORE_OP_PUT) {
        sc_buf_put_bytes(b, op->value, op->value_len);
        sc_buf_put_svarint(b, op->lease);
    } else if (op->type == STORE_OP_GET) {
        sc_buf_put_svarint(b, op->rev);
        sc_buf_put_svarint(b, op->limit);
    }
}

void store_cmd_encode(const struct store_cmd *c, struct sc_buf *b)
{
    sc_buf_put_u8(b, CMD_VERSION);
    sc_buf_put_u8(b, (uint8_t)c->type);
    switch (c->type) {
    case STORE_CMD_TXN:
        sc_buf_put_uvarint(b, c->ncmps);
        for (size_t i = 0; i < c->ncmps; i++) {
            const struct store_cmp *cmp = &c->cmps[i];
            sc_buf_put_bytes(b, cmp->key, cmp->key_len);
            sc_buf_put_u8(b, (uint8_t)cmp->target);
            sc_buf_put_u8(b, (uint8_t)cmp->op);
            sc_buf_put_svarint(b, cmp->num);
            sc_buf_put_bytes(b, cmp->value, cmp->value_len);
        }
        sc_buf_put_uvarint(b, c->nsuccess);
        for (size_t i = 0; i < c->nsuccess; i++)
            put_op(b, &c->success[i]);
        sc_buf_put_uvarint(b, c->nfailure);
        for (size_t i = 0; i < c->nfailure; i++)
            put_op(b, &c->failure[i]);
        break;
    case STORE_CMD_LEASE_GRANT:
        sc_buf_put_svarint(b, c->lease_id);
        sc_buf_put_svarint(b, c->ttl_sec);
        break;
    case STORE_CMD_LEASE_REVOKE:
        sc_buf_put_svarint(b, c->lease_id);
        break;
    case STORE_CMD_COMPACT:
        sc_buf_put_svarint(b, c->compact_rev);
        break;
    }
}

/* Reads a count and allocates that many zeroed elements; each element takes at
 * least min_bytes, so a count larger than the bytes left is corrupt. */
static int rd_array(struct sc_rd *r, size_t elem, size_t min_bytes, void **ret, size_t *n)
{
    uint64_t cnt;
    int e = sc_rd_uvarint(r, &cnt);
    if (e < 0)
        return e;
    if (cnt > MAX_DECODE_ITEMS || cnt * min_bytes > sc_rd_left(r))
        return -SC_E_CORRUPT;
    *ret = cnt ? xcalloc((size_t)cnt, elem) : NULL;
    *n = (size_t)cnt;
    return 0;
}

static int get_op(struct sc_rd *r, struct store_op *op)
{
    uint8_t type, flags;
    int e;
    if ((e = sc_rd_u8(r, &type)) < 0 || (e = sc_rd_u8(r, &flags)) < 0)
        return e;
    if (type < STORE_OP_GET || type > STORE_OP_DELETE || (flags & ~0xf))
        return -SC_E_CORRUPT;
    op->type = type;
    op->prefix = flags & F_PREFIX;
    op->prev_kv = flags & F_PREV;
    op->count_only = flags & F_COUNT;
    op->keys_only = flags & F_KEYS;
    if ((e = sc_rd_bytes(r, &op->key, &op->key_len, SIZE_MAX)) < 0)
        return e;
    if (type == STORE_OP_PUT) {
        if ((e = sc_rd_bytes(r, &op->value, &op->value_len, SIZE_MAX)) < 0 ||
            (e = sc_rd_svarint(r, &op->lease)) < 0)
            return e;
    } else if (type == STORE_OP_GET) {
        if ((e = sc_rd_svarint(r, &op->rev)) < 0 || (e = sc_rd_svarint(r, &op->limit)) < 0)
            return e;
    }
    return 0;
}

static int decode(struct sc_rd *r, struct store_cmd *c)
{
    uint8_t ver, type;
    int e;
    if ((e = sc_rd_u8(r, &ver)) < 0 || (e = sc_rd_u8(r, &type)) < 0)
        return e;
    if (ver != CMD_VERSION)
        return -SC_E_CORRUPT;
    c->type = type;
    switch (type) {
    case STORE_CMD_TXN:
        if ((e = rd_array(r, sizeof(*c->cmps), 5, (void **)&c->cmps, &c->ncmps)) < 0)
            return e;
        for (size_t i = 0; i < c->ncmps; i++) {
            struct store_cmp *cmp = &c->cmps[i];
            uint8_t t, o;
            if ((e = sc_rd_bytes(r, &cmp->key, &cmp->key_len, SIZE_MAX)) < 0 ||
                (e = sc_rd_u8(r, &t)) < 0 || (e = sc_rd_u8(r, &o)) < 0 ||
                (e = sc_rd_svarint(r, &cmp->num)) < 0 ||
                (e = sc_rd_bytes(r, &cmp->value, &cmp->value_len, SIZE_MAX)) < 0)
                return e;
            cmp->target = t;
            cmp->op = o;
        }
        if ((e = rd_array(r, sizeof(*c->success), 3, (void **)&c->success, &c->nsuccess)) < 0)
            return e;
        for (size_t i = 0; i < c->nsuccess; i++)
            if ((e = get_op(r, &c->success[i])) < 0)
                return e;
        if ((e = rd_array(r, sizeof(*c->failure), 3, (void **)&c->failure, &c->nfailure)) < 0)
            return e;
        for (size_t i = 0; i < c->nfailure; i++)
            if ((e = get_op(r, &c->failure[i])) < 0)
                return e;
        return 0;
    case STORE_CMD_LEASE_GRANT:
        if ((e = sc_rd_svarint(r, &c->lease_id)) < 0 || (e = sc_rd_svarint(r, &c->ttl_sec)) < 0)
            return e;
        return 0;
    case STORE_CMD_LEASE_REVOKE:
        return sc_rd_svarint(r, &c->lease_id);
    case STORE_CMD_COMPACT:
        return sc_rd_svarint(r, &c->compact_rev);
    }
    return -SC_E_CORRUPT;
}

int store_cmd_decode(const uint8_t *data, size_t len, struct store_cmd *ret)
{
    struct sc_rd r = sc_rd_make(data, len);
    struct store_cmd c = {0};
    int e = decode(&r, &c);
    if (e == 0 && sc_rd_left(&r) != 0)
        e = -SC_E_CORRUPT; /* trailing garbage */
    if (e < 0) {
        store_cmd_done(&c);
        return e;
    }
    *ret = c;
    return 0;
}

void store_cmd_done(struct store_cmd *c)
{
    free(c->cmps);
    free(c->success);
    free(c->failure);
    c->cmps = NULL;
    c->success = c->failure = NULL;
    c->ncmps = c->nsuccess = c->nfailure = 0;
}
