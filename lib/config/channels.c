/* The channel options a route gives the names it owns, and the routes
 * whose options an earlier route's template shadows (--check-config's
 * warning). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

struct sp_channel_options sp_route_channels(const struct sp_config *c,
                                            const struct sp_route_config *r)
{
    struct sp_channel_options o = {c->channels.history, c->channels.history_ttl_ms,
                                   c->channels.max_message_size, false};

    if (r->has_poll || !r->subscribe.channels.set)
        return o;
    if (r->subscribe.channels.history != SP_UNSET)
        o.history = r->subscribe.channels.history;
    if (r->subscribe.channels.history_ttl_ms != SP_UNSET)
        o.history_ttl_ms = r->subscribe.channels.history_ttl_ms;
    if (r->subscribe.channels.max_message_size != SP_UNSET)
        o.max_message_size = r->subscribe.channels.max_message_size;
    o.last_value = r->subscribe.channels.last_value;
    return o;
}

/* A name template makes: its captures as "x". */
static void sample_name(const char *tmpl, char *out, size_t size)
{
    size_t n = 0;

    for (const char *t = tmpl; *t != '\0' && n + 2 < size; t++) {
        if (*t == '{' && strchr(t, '}') != NULL) {
            t = strchr(t, '}');
            out[n++] = 'x';
        } else {
            out[n++] = *t;
        }
    }
    out[n] = '\0';
}

static bool makes(const char *tmpl, const char *name)
{
    struct sp_tmpl *t;
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    char err[256];

    if (sp_tmpl_compile(tmpl, &t, err, sizeof(err)) < 0)
        return false;
    bool yes = sp_tmpl_match(t, name, strlen(name), caps);
    sp_tmpl_free(t);
    return yes;
}

static bool options_differ(struct sp_channel_options a, struct sp_channel_options b)
{
    return a.history != b.history || a.history_ttl_ms != b.history_ttl_ms ||
           a.max_message_size != b.max_message_size || a.last_value != b.last_value;
}

size_t sp_config_channel_overlaps(const struct sp_config *c,
                                  void (*warn)(void *ctx, const char *text), void *ctx)
{
    char a[512], b[512], text[1024];
    size_t count = 0;

    for (size_t j = 0; j < c->nroutes; j++) {
        const struct sp_route_config *later = &c->routes[j];
        /* Only a route's own options can be silently not applied. */
        if (!later->has_subscribe || later->has_poll || !later->subscribe.channels.set)
            continue;
        for (size_t i = 0; i < j; i++) {
            const struct sp_route_config *first = &c->routes[i];
            if (!first->has_subscribe || first->has_poll ||
                !options_differ(sp_route_channels(c, first), sp_route_channels(c, later)))
                continue;
            sample_name(first->subscribe.channel, a, sizeof(a));
            sample_name(later->subscribe.channel, b, sizeof(b));
            if (!makes(first->subscribe.channel, b) && !makes(later->subscribe.channel, a))
                continue;
            snprintf(text, sizeof(text),
                     "%u:%u: warning: the channels of route %s (subscribe.channel '%s') can also "
                     "be made by "
                     "the earlier route %s at line %u ('%s'), whose channel options differ: a name "
                     "belongs to the first route that makes it, so the earlier one's apply",
                     later->line, later->col, later->path, later->subscribe.channel, first->path,
                     first->line, first->subscribe.channel);
            warn(ctx, text);
            count++;
            break;
        }
    }
    return count;
}
