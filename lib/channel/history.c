/* The hub's history as clients and the engine see it: cursors parsed and
 * issued, the backlog after a cursor (and whether history before it is
 * gone), and the epoch, sequence and history the Redis engine numbers and
 * resets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel/hub-internal.h"

/* ---- cursors and replay ------------------------------------------------------------------ */

int sp_hub_parse_cursor(const struct sp_hub *hub, const char *text, struct sp_cursor *c)
{
    struct sp_cursor r = {0};

    if (text == NULL || text[0] == '\0') {
        *c = r;
        return 0;
    }
    const char *dash = strrchr(text, '-');
    if (dash == NULL || dash == text || dash[1] == '\0' || strlen(text) >= SP_MSG_ID_MAX)
        return -1;
    char *end;
    errno = 0;
    unsigned long long seq = strtoull(dash + 1, &end, 10);
    if (*end != '\0' || errno != 0 || dash[1] < '0' || dash[1] > '9')
        return -1;
    r.present = true;
    hub_lock(hub);
    r.this_epoch = (size_t)(dash - text) == strlen(hub->epoch) &&
                   memcmp(text, hub->epoch, (size_t)(dash - text)) == 0 && seq <= hub->seq;
    hub_unlock(hub);
    r.seq = r.this_epoch ? seq : 0;
    *c = r;
    return 0;
}

struct sp_cursor sp_hub_now(const struct sp_hub *hub)
{
    hub_lock(hub);
    struct sp_cursor now = {.present = true, .this_epoch = true, .seq = hub->seq};
    hub_unlock(hub);
    return now;
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = sp_msg_seq(*(struct sp_msg *const *)a);
    uint64_t y = sp_msg_seq(*(struct sp_msg *const *)b);
    return x < y ? -1 : x > y;
}

static struct sp_channel *sub_channel(struct sp_sub *sub)
{
    return sub->local ? sub->local->shared : NULL;
}

static int latest(struct sp_sub *const *subs, size_t nsubs, struct sp_msg **out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < nsubs && n < max; i++) {
        const struct sp_channel *ch = sub_channel(subs[i]);
        struct sp_msg *m = ch == NULL     ? NULL
                           : ch->snapshot ? ch->snapshot
                           : ch->count    ? hub_ring_at(ch, ch->count - 1)
                                          : NULL;
        if (m != NULL)
            out[n++] = sp_msg_ref(m);
    }
    if (n > 1)
        qsort(out, n, sizeof(*out), by_seq);
    return (int)n;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (struct sp_channel *const *)a;
    uintptr_t y = (uintptr_t) * (struct sp_channel *const *)b;
    return x < y ? -1 : x > y;
}

/* The channels whose history the subs read, each once: a sub's channel, or
 * every channel its pattern matches. Sets *missed as the cursor finds them:
 * a channel met through a pattern counts as missed only for what it lost,
 * not for having been made after cur. Returns the count, or -1. */
static int gather(struct sp_hub *hub, struct sp_sub *const *subs, size_t nsubs,
                  const struct sp_cursor *cur, struct sp_channel ***out, bool *missed)
{
    size_t n = 0, cap = 0, k = 0;

    *out = NULL;
    for (size_t i = 0; i < nsubs; i++) {
        struct sp_channel *ch = sub_channel(subs[i]);
        if (ch == NULL)
            continue;
        size_t first = n;
        int rc = (ch->flags & CH_PATTERN) ? hub_pattern_channels(hub, ch, out, &n, &cap)
                                          : hub_pattern_channels_add(out, &n, &cap, ch);
        if (rc < 0)
            return -1;
        for (size_t j = first; cur->present && j < n; j++) {
            const struct sp_channel *c = (*out)[j];
            /* A last value replaces what came before: nothing is missed. */
            bool lost = ((ch->flags & CH_PATTERN) == 0 || (c->flags & CH_BIRTH_FLOOR) == 0) &&
                        !hub_options_of(hub, c)->last_value;
            *missed = *missed || (cur->seq < c->floor && lost);
        }
    }
    if (n > 1)
        qsort(*out, n, sizeof(**out), by_address);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || (*out)[k - 1] != (*out)[i])
            (*out)[k++] = (*out)[i];
    return (int)k;
}

static int backlog(struct sp_hub *hub, struct sp_sub *const *subs, size_t nsubs,
                   const struct sp_cursor *cur, struct sp_msg **out, size_t max, bool *missed)
{
    size_t total = 0, n = 0;
    struct sp_channel **chans;
    struct sp_msg **all;
    int nchans = gather(hub, subs, nsubs, cur, &chans, missed);

    if (nchans < 0) {
        free(chans);
        return -1;
    }
    for (int i = 0; i < nchans; i++)
        total += chans[i]->count;
    if (total == 0 || max == 0) {
        free(chans);
        return 0;
    }
    all = malloc(total * sizeof(*all));
    if (all == NULL) {
        free(chans);
        return -1;
    }
    for (int i = 0; i < nchans; i++) {
        const struct sp_channel *ch = chans[i];
        bool value = cur->values && hub_options_of(hub, ch)->last_value;
        for (size_t j = 0; j < ch->count; j++) {
            struct sp_msg *m = hub_ring_at(ch, j);
            if (!cur->present || sp_msg_seq(m) > cur->seq || (value && j == ch->count - 1))
                all[n++] = m;
        }
    }
    free(chans);
    if (nchans > 1)
        qsort(all, n, sizeof(*all), by_seq);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = sp_msg_ref(all[i]);
    free(all);
    return (int)n;
}

int sp_hub_backlog(struct sp_hub *hub, struct sp_sub *const *subs, size_t nsubs,
                   const struct sp_cursor *cur, struct sp_msg **out, size_t max, bool *missed)
{
    int n;

    *missed = cur->present && !cur->this_epoch;
    hub_lock(hub);
    if (cur->latest && !cur->present)
        n = latest(subs, nsubs, out, max);
    else
        n = backlog(hub, subs, nsubs, cur, out, max, missed);
    /* Whatever the channel stored so far was the backlog's to give. */
    for (size_t i = 0; n >= 0 && i < nsubs; i++) {
        const struct sp_channel *ch = sub_channel(subs[i]);
        if (ch != NULL)
            subs[i]->seen = ch->serial;
    }
    hub_unlock(hub);
    return n;
}

/* ---- engine-numbered messages --------------------------------------------------------- */

const char *sp_hub_epoch(const struct sp_hub *hub)
{
    return hub->epoch;
}

static void forget_entry(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    hub_forget_history(value);
}

static void note_seq(struct sp_hub *hub, uint64_t seq)
{
    if (seq > hub->seq)
        hub->seq = seq;
}

bool sp_hub_set_epoch(struct sp_hub *hub, const char *epoch, uint64_t seq)
{
    bool changed;

    hub_lock(hub);
    changed = strcmp(hub->epoch, epoch) != 0;
    if (changed) {
        snprintf(hub->epoch, sizeof(hub->epoch), "%s", epoch);
        hub->seq = seq;
        sp_hmap_each(hub->channels, forget_entry, hub);
    } else {
        note_seq(hub, seq);
    }
    hub_unlock(hub);
    return changed;
}

void sp_hub_note_seq(struct sp_hub *hub, uint64_t seq)
{
    hub_lock(hub);
    note_seq(hub, seq);
    hub_unlock(hub);
}

int sp_hub_reset_channel(struct sp_hub *hub, const char *channel, uint64_t floor)
{
    int rc = SP_HUB_OK;

    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, true);
    if (ch == NULL) {
        rc = SP_HUB_NO_MEMORY;
    } else {
        hub_forget_history(ch);
        ch->floor = floor;
        ch->flags &= ~CH_BIRTH_FLOOR;
    }
    hub_unlock(hub);
    return rc;
}

void sp_hub_drop_history(struct sp_hub *hub, const char *channel)
{
    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, false);
    if (ch != NULL)
        hub_forget_history(ch);
    hub_unlock(hub);
}

int sp_hub_inject(struct sp_hub *hub, struct sp_msg *msg, bool deliver)
{
    size_t reached = 0;

    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, sp_msg_channel(msg), true);
    if (ch == NULL) {
        hub_unlock(hub);
        return SP_HUB_NO_MEMORY;
    }
    note_seq(hub, sp_msg_seq(msg));
    hub_store(ch, msg);
    if (deliver) {
        reached = ch->nsubs;
        hub_mail_ports(hub, ch, msg);
    } else {
        ch->serial++; /* stored: a later backlog has it */
    }
    hub_channel_maybe_remove(hub, ch);
    hub_unlock(hub);
    return (int)(reached > INT32_MAX ? INT32_MAX : reached);
}

int sp_hub_inject_pattern(struct sp_hub *hub, const char *pattern, struct sp_msg *msg, bool store)
{
    size_t reached = 0;

    hub_lock(hub);
    struct sp_channel *ch = store ? hub_channel_get(hub, sp_msg_channel(msg), true) : NULL;
    if (ch != NULL) {
        note_seq(hub, sp_msg_seq(msg));
        /* Two patterns over one channel each bring its message. */
        if (ch->count == 0 || sp_msg_seq(hub_ring_at(ch, ch->count - 1)) < sp_msg_seq(msg)) {
            hub_store(ch, msg);
            ch->serial++;
        }
        hub_channel_maybe_remove(hub, ch);
    }
    struct sp_channel *p = hub_channel_get(hub, pattern, false);
    if (p != NULL && (p->flags & CH_PATTERN) && p->nsubs > 0) {
        reached = p->nsubs;
        hub_mail_ports(hub, p, msg);
    }
    hub_unlock(hub);
    return (int)(reached > INT32_MAX ? INT32_MAX : reached);
}

struct drop_under {
    struct sp_hub *hub;
    const char *prefix;
    size_t prefix_len;
    bool (*keep)(void *ctx, const char *channel);
    void *ctx;
};

static void drop_under(const char *name, void *value, void *arg)
{
    struct drop_under *d = arg;
    struct sp_channel *ch = value;

    if ((ch->flags & CH_PATTERN) || strncmp(name, d->prefix, d->prefix_len) != 0 ||
        name[d->prefix_len] == '\0' || d->keep(d->ctx, name))
        return;
    hub_forget_history(ch);
    hub_channel_maybe_remove(d->hub, ch);
}

void sp_hub_drop_histories(struct sp_hub *hub, const char *pattern,
                           bool (*keep)(void *ctx, const char *channel), void *ctx)
{
    struct drop_under d = {hub, pattern, strlen(pattern) - 1, keep, ctx};

    hub_lock(hub);
    sp_hmap_each(hub->channels, drop_under, &d);
    hub_unlock(hub);
}
