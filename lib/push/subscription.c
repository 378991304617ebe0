#include <stdlib.h>
#include <string.h>

#include "push/push-internal.h"

struct entry {
    struct sp_sub sub; /* first: the hub hands back &sub */
    struct sp_subscription *parent;
};

struct sp_subscription {
    struct sp_push *push;
    sp_subscription_deliver deliver;
    sp_subscription_deleted deleted;
    void *owner;
    size_t count;
    struct entry entries[];
};

static void on_deliver(struct sp_sub *sub, struct sp_msg *msg)
{
    struct sp_subscription *s = ((struct entry *)sub)->parent;
    s->deliver(s->owner, msg);
}

static void on_deleted(struct sp_sub *sub)
{
    struct sp_subscription *s = ((struct entry *)sub)->parent;
    s->deleted(s->owner);
}

static const struct sp_sub_ops entry_ops = {on_deliver, on_deleted};

/* Splits spec at commas into names (pointing into copy), merging repeats. */
static int split_channels(char *copy, char **names, size_t max, size_t *count)
{
    size_t n = 0;

    for (char *save, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], tok) == 0;
        if (seen)
            continue;
        if (n == max || !sp_hub_channel_name_valid(tok, strlen(tok)))
            return SP_HUB_BAD_CHANNEL;
        names[n++] = tok;
    }
    if (n == 0)
        return SP_HUB_BAD_CHANNEL;
    *count = n;
    return 0;
}

int sp_subscription_open(struct sp_push *push, const char *spec, sp_subscription_deliver deliver,
                         sp_subscription_deleted deleted, void *owner, struct sp_subscription **out)
{
    size_t max = push->config->limits.max_channels_per_connection;
    char *names[256];
    size_t count;
    char *copy = strdup(spec);
    int rc;

    if (copy == NULL)
        return SP_HUB_NO_MEMORY;
    rc = split_channels(copy, names, max < 256 ? max : 256, &count);
    if (rc < 0)
        goto done;
    struct sp_subscription *s = calloc(1, sizeof(*s) + count * sizeof(struct entry));
    if (s == NULL) {
        rc = SP_HUB_NO_MEMORY;
        goto done;
    }
    *s = (struct sp_subscription){push, deliver, deleted, owner, 0};
    for (size_t i = 0; i < count; i++) {
        s->entries[i].parent = s;
        rc = sp_hub_subscribe(push->hub, &s->entries[i].sub, names[i], &entry_ops);
        if (rc < 0) {
            sp_subscription_close(s);
            goto done;
        }
        s->count++;
    }
    *out = s;
    rc = 0;
done:
    free(copy);
    return rc;
}

void sp_subscription_close(struct sp_subscription *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        sp_hub_unsubscribe(s->push->hub, &s->entries[i].sub);
    free(s);
}

int sp_subscription_backlog(struct sp_subscription *s, const struct sp_cursor *cur,
                            struct sp_msg **out, size_t max, bool *missed)
{
    struct sp_sub *subs[256];

    for (size_t i = 0; i < s->count; i++)
        subs[i] = &s->entries[i].sub;
    int n = sp_hub_backlog(s->push->hub, subs, s->count, cur, out, max, missed);
    if (n >= 0 && *missed)
        s->push->stats.missed_history++;
    return n;
}

void sp_subscription_position(struct sp_subscription *s, struct sp_msg *const *backlog, int n,
                              char out[SP_MSG_ID_MAX])
{
    uint64_t seq = n > 0 ? sp_msg_seq(backlog[0]) - 1 : sp_hub_now(s->push->hub).seq;
    sp_hub_format_id(s->push->hub, seq, out);
}
