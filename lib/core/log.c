#include "core/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int sp_log_level_parse(const char *name, enum sp_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum sp_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void format_timestamp(char *buf, size_t size)
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void sp_log_write(const struct sp_log *log, enum sp_log_level level, const char *event,
                  const char *fmt, ...)
{
    char msg[1024];
    char ts[40];
    va_list ap;

    if (log == NULL || log->out == NULL || level > log->level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    format_timestamp(ts, sizeof(ts));

    json_t *line = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "event",
                             event, "msg", msg);
    if (line == NULL)
        return;
    /* json_dumps escapes control characters, so a hostile value cannot forge a line. */
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (text == NULL)
        return;
    flockfile(log->out); /* one line at a time, whichever worker writes */
    fputs(text, log->out);
    fputc('\n', log->out);
    fflush(log->out);
    funlockfile(log->out);
    free(text);
}
