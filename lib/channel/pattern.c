/* Pattern subscriptions: "orders.42.*" receives what is published to every
 * channel whose name begins "orders.42." and goes on.
 *
 * A pattern is an entry of the hub's channel map like any channel (its
 * subscribers counted per port, mailed in order), with no history of its
 * own. To find the patterns a publish matches without looking at them all,
 * the hub keeps a segment trie of their prefixes: one node per prefix that
 * ends in a separator, keyed by its whole path ("orders.", "orders.42."),
 * counting the patterns at or under it. A publish walks its channel's name
 * one segment at a time and stops at the first path no pattern has, so a
 * channel under no pattern costs one lookup (none when its name has no
 * separator, or when there are no patterns), whatever their number. */
#include <stdlib.h>
#include <string.h>

#include "channel/hub-internal.h"

struct pattern_node {
    uint32_t below;             /* patterns ending at this node or under it */
    struct sp_channel *pattern; /* the one ending here, or NULL */
    char path[];
};

static bool is_separator(char c)
{
    return c == '.' || c == ':' || c == '-';
}

bool sp_hub_pattern_valid(const char *name, size_t len)
{
    return len >= 2 && len <= SP_CHANNEL_MAX && name[len - 1] == '*' &&
           is_separator(name[len - 2]) && name[0] != '#' &&
           sp_hub_channel_name_valid(name, len - 1);
}

bool sp_hub_subscription_name_valid(const char *name, size_t len)
{
    return sp_hub_channel_name_valid(name, len) || sp_hub_pattern_valid(name, len);
}

/* The first n bytes of name, as a key. */
static const char *path_of(const char *name, size_t n, char path[SP_CHANNEL_MAX + 1])
{
    memcpy(path, name, n);
    path[n] = '\0';
    return path;
}

/* Counts ch out of the nodes of its prefix before position end. */
static void release_path(struct sp_hub *hub, const struct sp_channel *ch, size_t end)
{
    char path[SP_CHANNEL_MAX + 1];

    for (size_t i = 0; i < end; i++) {
        if (!is_separator(ch->name[i]))
            continue;
        struct pattern_node *n = sp_hmap_get(hub->patterns, path_of(ch->name, i + 1, path));
        if (n == NULL)
            continue;
        if (n->pattern == ch)
            n->pattern = NULL;
        if (--n->below == 0) {
            sp_hmap_del(hub->patterns, n->path);
            free(n);
        }
    }
}

int hub_pattern_add(struct sp_hub *hub, struct sp_channel *ch)
{
    char path[SP_CHANNEL_MAX + 1];
    size_t len = strlen(ch->name) - 1; /* the prefix: without the '*' */

    for (size_t i = 0; i < len; i++) {
        if (!is_separator(ch->name[i]))
            continue;
        struct pattern_node *n = sp_hmap_get(hub->patterns, path_of(ch->name, i + 1, path));
        if (n == NULL) {
            n = calloc(1, sizeof(*n) + i + 2);
            if (n == NULL || sp_hmap_put(hub->patterns, memcpy(n->path, path, i + 2), n) < 0) {
                free(n);
                release_path(hub, ch, i);
                return -1;
            }
        }
        n->below++;
        if (i + 1 == len)
            n->pattern = ch;
    }
    ch->flags |= CH_PATTERN;
    return 0;
}

void hub_pattern_remove(struct sp_hub *hub, struct sp_channel *ch)
{
    if (ch->flags & CH_PATTERN)
        release_path(hub, ch, strlen(ch->name) - 1);
}

size_t hub_mail_patterns(struct sp_hub *hub, struct sp_msg *m)
{
    const char *name = sp_msg_channel(m);
    char path[SP_CHANNEL_MAX + 1];
    size_t reached = 0;

    if (sp_hmap_count(hub->patterns) == 0)
        return 0;
    /* A pattern needs one more character after its prefix. */
    for (size_t i = 0; name[i] != '\0' && name[i + 1] != '\0'; i++) {
        if (!is_separator(name[i]))
            continue;
        struct pattern_node *n = sp_hmap_get(hub->patterns, path_of(name, i + 1, path));
        if (n == NULL)
            break;
        if (n->pattern != NULL && n->pattern->nsubs > 0) {
            hub_mail_ports(hub, n->pattern, m);
            reached += n->pattern->nsubs;
        }
    }
    return reached;
}

struct matches {
    const char *prefix;
    size_t prefix_len;
    struct sp_channel ***out;
    size_t *n, *cap;
    int rc;
};

int hub_pattern_channels_add(struct sp_channel ***out, size_t *n, size_t *cap,
                             struct sp_channel *ch)
{
    if (*n == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 16;
        struct sp_channel **grown = realloc(*out, grown_cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        *out = grown;
        *cap = grown_cap;
    }
    (*out)[(*n)++] = ch;
    return 0;
}

static void add_match(const char *name, void *value, void *arg)
{
    struct matches *mt = arg;
    struct sp_channel *ch = value;

    if ((ch->flags & CH_PATTERN) || strncmp(name, mt->prefix, mt->prefix_len) != 0 ||
        name[mt->prefix_len] == '\0' || mt->rc < 0)
        return;
    mt->rc = hub_pattern_channels_add(mt->out, mt->n, mt->cap, ch);
}

int hub_pattern_channels(struct sp_hub *hub, const struct sp_channel *pattern,
                         struct sp_channel ***out, size_t *n, size_t *cap)
{
    struct matches mt = {pattern->name, strlen(pattern->name) - 1, out, n, cap, 0};

    sp_hmap_each(hub->channels, add_match, &mt);
    return mt.rc;
}

static void free_node(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    free(value);
}

void hub_patterns_free(struct sp_hub *hub)
{
    if (hub->patterns != NULL)
        sp_hmap_each(hub->patterns, free_node, NULL);
    sp_hmap_free(hub->patterns);
}
