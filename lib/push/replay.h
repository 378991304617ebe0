/* The replay store of signed webhooks (Standard Webhooks): every verified
 * webhook-id is remembered, with a fingerprint of the request it signed,
 * for as long as its timestamp could still verify (twice the tolerance:
 * timestamps are accepted that far either side of now). One store per
 * process, in Redis when configured so every replica refuses the same ids.
 */
#ifndef SP_PUSH_REPLAY_H
#define SP_PUSH_REPLAY_H

#include <stddef.h>

#include "core/digest.h"
#include "http/parser.h"

struct sp_push_shared;
struct sp_replays;

enum sp_replay_verdict {
    SP_REPLAY_FIRST,       /* never seen: claimed now */
    SP_REPLAY_RETRY,       /* seen, for the same request (method, target, body) */
    SP_REPLAY_REUSED,      /* seen, for another request: a replay */
    SP_REPLAY_UNAVAILABLE, /* Redis unreachable, or the store is full: retry later */
};

/* The store lives in memory unless the shared part has an engine. NULL on
 * allocation failure. */
struct sp_replays *sp_replays_new(struct sp_push_shared *shared);
/* Claims in flight with Redis still call back (UNAVAILABLE). Accepts NULL. */
void sp_replays_free(struct sp_replays *r);

/* What the signature covers plus what it does not (method, target): the
 * request a webhook-id was first used for. Returns 0, or -1 when libcrypto
 * cannot allocate. */
int sp_replay_fingerprint(const struct sp_http_request *req, const void *body, size_t len,
                          char out[SP_SHA256_HEX]);

typedef void (*sp_replay_done)(void *arg, enum sp_replay_verdict verdict);

/* Claims webhook_id for fingerprint. cb runs exactly once: before this
 * returns in memory, later with Redis. */
void sp_replay_claim(struct sp_replays *r, const char *webhook_id,
                     const char fingerprint[SP_SHA256_HEX], sp_replay_done cb, void *arg);

#endif
