/* err.c: names, messages and HTTP statuses of the domain error table (err.h). */
#include "base/err.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *wire, *msg;
    int http;
} table[] = {
#define SC_X_ROW(name, http_, wire_, msg_) [SC_E_##name - SC_E_BASE - 1] = {wire_, msg_, http_},
    SC_ERRORS(SC_X_ROW)
#undef SC_X_ROW
};

static int domain_index(int r)
{
    int c = r < 0 ? -r : r;
    if (c > SC_E_BASE && c < SC_E_END)
        return c - SC_E_BASE - 1;
    return -1;
}

int sc_error_set(struct sc_error *e, int r, const char *field, const char *fmt, ...)
{
    if (!e)
        return r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    return r;
}

void sc_error_clear(struct sc_error *e)
{
    if (e)
        e->msg[0] = e->field[0] = '\0';
}

const char *sc_err_name(int r)
{
    int i = domain_index(r);
    if (i >= 0)
        return table[i].wire;
    return "system_error";
}

const char *sc_err_message(int r)
{
    int i = domain_index(r);
    if (i >= 0)
        return table[i].msg;
    return strerror(r < 0 ? -r : r);
}

int sc_err_http_status(int r)
{
    int i = domain_index(r);
    if (i >= 0)
        return table[i].http;
    return 500;
}
