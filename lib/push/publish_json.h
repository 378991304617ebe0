/* The JSON publish body, parsed without I/O (fuzzed on its own):
 *   {"channel": "c", "data": "...", "event": "e", "id": "dedup"}
 *   {"items": [ {...}, {...} ]}
 * "data" may be any JSON value: a string is taken verbatim, anything else as
 * its compact JSON text. "data_base64" carries bytes that are not text.
 * Pushpin's GRIP items are accepted too: {"channel", "id", "prev-id",
 * "formats": {"http-stream", "http-response", "ws-message"}}; their data for
 * native subscribers is the first of http-stream content, ws-message content
 * and http-response body.
 */
#ifndef SP_PUSH_PUBLISH_JSON_H
#define SP_PUSH_PUBLISH_JSON_H

#include <stddef.h>

#define SP_PUBLISH_MAX_ITEMS 1000

struct sp_publish_item {
    char *channel;
    char *event; /* NULL if absent */
    char *id;    /* de-duplication id, NULL if absent */
    char *data;
    size_t len;
    void *formats; /* GRIP (Pushpin) items: the "formats" object (a json_t *), else NULL */
};

struct sp_publish_batch {
    struct sp_publish_item *items;
    size_t count;
    int single; /* the body was one object, not {"items": [...]} */
};

/* Returns 0 and fills *batch (free with sp_publish_batch_clear), or -1 with a
 * message naming the problem (and the item's index) in err. */
int sp_publish_parse_json(const char *body, size_t len, struct sp_publish_batch *batch, char *err,
                          size_t errlen);
void sp_publish_batch_clear(struct sp_publish_batch *batch);

#endif
