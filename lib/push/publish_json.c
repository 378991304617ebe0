#include "push/publish_json.h"

#include "core/base64.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *copy_string(json_t *v)
{
    return strndup(json_string_value(v), json_string_length(v));
}

/* The content of one GRIP format: "content"/"body" text or "-bin" base64. */
static int grip_content(json_t *fmt, const char *name, char **out, size_t *len)
{
    char bin[32];
    json_t *text = json_object_get(fmt, name);
    snprintf(bin, sizeof(bin), "%s-bin", name);
    json_t *b64 = json_object_get(fmt, bin);

    if (json_is_string(text)) {
        *out = copy_string(text);
        *len = json_string_length(text);
        return *out ? 0 : -1;
    }
    if (json_is_string(b64))
        return sp_base64_decode(json_string_value(b64), json_string_length(b64), out, len);
    return 1; /* absent */
}

static int parse_grip_item(json_t *obj, json_t *formats, struct sp_publish_item *item,
                           const char *where, char *err, size_t errlen)
{
    static const struct {
        const char *format;
        const char *field;
    } order[] = {{"http-stream", "content"}, {"ws-message", "content"}, {"http-response", "body"}};
    const char *key;
    json_t *v;

    json_object_foreach(formats, key, v)
    {
        if (strcmp(key, "http-stream") != 0 && strcmp(key, "http-response") != 0 &&
            strcmp(key, "ws-message") != 0) {
            snprintf(err, errlen, "%s: unsupported GRIP format \"%.40s\"", where, key);
            return -1;
        }
        if (!json_is_object(v)) {
            snprintf(err, errlen, "%s: GRIP format \"%s\" must be an object", where, key);
            return -1;
        }
    }
    item->channel = copy_string(json_object_get(obj, "channel"));
    if (json_object_get(obj, "id"))
        item->id = copy_string(json_object_get(obj, "id"));
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && item->data == NULL; i++) {
        json_t *fmt = json_object_get(formats, order[i].format);
        if (fmt != NULL && grip_content(fmt, order[i].field, &item->data, &item->len) < 0) {
            snprintf(err, errlen, "%s: bad %s %s", where, order[i].format, order[i].field);
            return -1;
        }
    }
    if (item->data == NULL && (item->data = strdup("")) == NULL)
        return -1;
    item->formats = json_incref(formats);
    return item->channel ? 0 : -1;
}

static int parse_item(json_t *obj, struct sp_publish_item *item, const char *where, char *err,
                      size_t errlen)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%s must be an object", where);
        return -1;
    }
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "channel") == 0 || strcmp(key, "event") == 0 || strcmp(key, "id") == 0 ||
            strcmp(key, "data_base64") == 0 || strcmp(key, "prev-id") == 0) {
            if (!json_is_string(v)) {
                snprintf(err, errlen, "%s: \"%s\" must be a string", where, key);
                return -1;
            }
        } else if (strcmp(key, "formats") == 0) {
            if (!json_is_object(v)) {
                snprintf(err, errlen, "%s: \"formats\" must be an object", where);
                return -1;
            }
        } else if (strcmp(key, "data") != 0) {
            snprintf(err, errlen, "%s: unknown key \"%.40s\"", where, key);
            return -1;
        }
    }
    json_t *channel = json_object_get(obj, "channel");
    json_t *data = json_object_get(obj, "data");
    json_t *b64 = json_object_get(obj, "data_base64");
    json_t *formats = json_object_get(obj, "formats");
    if (channel == NULL) {
        snprintf(err, errlen, "%s: \"channel\" is required", where);
        return -1;
    }
    if (formats != NULL && data == NULL && b64 == NULL)
        return parse_grip_item(obj, formats, item, where, err, errlen);
    if ((data == NULL) == (b64 == NULL)) {
        snprintf(err, errlen, "%s: give exactly one of \"data\" and \"data_base64\"", where);
        return -1;
    }
    item->channel = copy_string(channel);
    if (json_object_get(obj, "event"))
        item->event = copy_string(json_object_get(obj, "event"));
    if (json_object_get(obj, "id"))
        item->id = copy_string(json_object_get(obj, "id"));
    if (b64 != NULL) {
        if (sp_base64_decode(json_string_value(b64), json_string_length(b64), &item->data,
                             &item->len) < 0) {
            snprintf(err, errlen, "%s: \"data_base64\" is not base64", where);
            return -1;
        }
    } else if (json_is_string(data)) {
        item->data = copy_string(data);
        item->len = json_string_length(data);
    } else {
        item->data = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        item->len = item->data ? strlen(item->data) : 0;
    }
    if (item->channel == NULL || item->data == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int sp_publish_parse_json(const char *body, size_t len, struct sp_publish_batch *batch, char *err,
                          size_t errlen)
{
    json_error_t jerr;
    struct sp_publish_batch b = {0};
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    char where[48];

    if (root == NULL) {
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -1;
    }
    json_t *items = json_is_object(root) ? json_object_get(root, "items") : NULL;
    if (items != NULL) {
        if (!json_is_array(items) || json_object_size(root) != 1) {
            snprintf(err, errlen, "\"items\" must be an array and the only key");
            goto fail;
        }
        if (json_array_size(items) == 0 || json_array_size(items) > SP_PUBLISH_MAX_ITEMS) {
            snprintf(err, errlen, "\"items\" must hold 1 to %d messages", SP_PUBLISH_MAX_ITEMS);
            goto fail;
        }
        b.count = json_array_size(items);
    } else {
        b.single = 1;
        b.count = 1;
    }
    b.items = calloc(b.count, sizeof(*b.items));
    if (b.items == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < b.count; i++) {
        snprintf(where, sizeof(where), b.single ? "the body" : "items[%zu]", i);
        if (parse_item(b.single ? root : json_array_get(items, i), &b.items[i], where, err,
                       errlen) < 0)
            goto fail;
    }
    json_decref(root);
    *batch = b;
    return 0;

fail:
    json_decref(root);
    sp_publish_batch_clear(&b);
    return -1;
}

void sp_publish_batch_clear(struct sp_publish_batch *b)
{
    for (size_t i = 0; b->items != NULL && i < b->count; i++) {
        free(b->items[i].channel);
        free(b->items[i].event);
        free(b->items[i].id);
        free(b->items[i].data);
        json_decref(b->items[i].formats);
    }
    free(b->items);
    memset(b, 0, sizeof(*b));
}
