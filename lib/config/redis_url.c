/* redis.url: the forms a Redis address takes. */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *text, unsigned *port)
{
    char *end;
    unsigned long n = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || n == 0 || n > 65535)
        return -1;
    *port = (unsigned)n;
    return 0;
}

int sp_config_parse_redis_url(const char *text, char **host, unsigned *port, char **user,
                              char **password, long *db, bool *tls, char *err, size_t errlen)
{
    char *copy = strdup(text);
    char *rest, *at, *slash, *colon;

    *host = *user = *password = NULL;
    *port = 6379;
    *db = -1;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rest = copy;
    *tls = strncmp(rest, "rediss://", 9) == 0;
    if (strncmp(rest, "redis://", 8) == 0 || *tls) {
        rest += *tls ? 9 : 8;
        slash = strchr(rest, '/');
        if (slash != NULL) {
            char *end;
            *slash = '\0';
            *db = slash[1] ? strtol(slash + 1, &end, 10) : -1;
            if (slash[1] &&
                (*end != '\0' || *db < 0 || *db > 1000 || slash[1] < '0' || slash[1] > '9'))
                goto bad;
        }
        at = strrchr(rest, '@');
        if (at != NULL) {
            *at = '\0';
            colon = strchr(rest, ':');
            if (colon != NULL) {
                *colon = '\0';
                *password = strdup(colon + 1);
            }
            if (rest[0] != '\0')
                *user = strdup(rest);
            rest = at + 1;
        }
    } else if (strstr(rest, "://") != NULL) {
        snprintf(err, errlen, "redis.url '%s': only redis:// and rediss:// (TLS) URLs", text);
        goto fail;
    }
    if (rest[0] == '[') { /* [v6]:port */
        char *close = strchr(rest, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            goto bad;
        *close = '\0';
        if (close[1] == ':' && parse_port(close + 2, port) < 0)
            goto bad;
        rest++;
    } else if ((colon = strrchr(rest, ':')) != NULL) {
        *colon = '\0';
        if (parse_port(colon + 1, port) < 0)
            goto bad;
    }
    if (rest[0] == '\0' || strpbrk(rest, " /@?#") != NULL)
        goto bad;
    *host = strdup(rest);
    if (*host == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    free(copy);
    return 0;
bad:
    snprintf(err, errlen,
             "redis.url '%s' must be host[:port] or redis[s]://[[user]:password@]host[:port][/db]",
             text);
fail:
    free(*host);
    free(*user);
    free(*password);
    *host = *user = *password = NULL;
    free(copy);
    return -1;
}
