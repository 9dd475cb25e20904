/*
 * log.h: structured key=value log lines for the daemons and the CLI.
 *
 * Libraries do not log; they return an error and fill a struct sc_error, and the
 * caller logs once.  The level is checked before the arguments are evaluated
 * (Redis' serverLog habit), so a disabled debug line costs one compare.
 */
#pragma once

#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

extern enum log_level log_max_level;

void log_set_level(enum log_level l);
int log_parse_level(const char *s); /* -1 if unknown */
void log_emit(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(l, ...)                                                                             \
    do {                                                                                           \
        if ((l) >= log_max_level)                                                                  \
            log_emit((l), __VA_ARGS__);                                                            \
    } while (0)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
