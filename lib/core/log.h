/* Structured logging: one JSON object per line.
 *
 * The logger is a value owned by whoever runs the process (cmd/); library
 * modules that need to report something receive a pointer to it. Library
 * code that can return an error does so and leaves the logging to its caller.
 */
#ifndef SP_CORE_LOG_H
#define SP_CORE_LOG_H

#include <stdio.h>

enum sp_log_level {
    SP_LOG_ERROR = 0,
    SP_LOG_WARN,
    SP_LOG_INFO,
    SP_LOG_DEBUG,
};

/* Shared by every worker thread: a line is written whole, and the level
 * may change (a reload) while they log. */
struct sp_log {
    _Atomic(enum sp_log_level) level;
    FILE *out;
};

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 if unknown. */
int sp_log_level_parse(const char *name, enum sp_log_level *out);

/* Writes {"ts":…,"level":…,"event":event,"msg":…} as one line and flushes.
 * Lines above log->level are skipped; a NULL log discards everything. */
void sp_log_write(const struct sp_log *log, enum sp_log_level level, const char *event,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define sp_log_error(log, event, ...) sp_log_write(log, SP_LOG_ERROR, event, __VA_ARGS__)
#define sp_log_warn(log, event, ...) sp_log_write(log, SP_LOG_WARN, event, __VA_ARGS__)
#define sp_log_info(log, event, ...) sp_log_write(log, SP_LOG_INFO, event, __VA_ARGS__)
#define sp_log_debug(log, event, ...) sp_log_write(log, SP_LOG_DEBUG, event, __VA_ARGS__)

#endif
