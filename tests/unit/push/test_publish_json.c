#include "push/publish_json.h"

#include <jansson.h>
#include <string.h>

#include "../tap.h"

static int parse(const char *body, struct sp_publish_batch *b, char *err)
{
    return sp_publish_parse_json(body, strlen(body), b, err, 256);
}

int main(void)
{
    struct sp_publish_batch b;
    char err[256];

    ok(parse("{\"channel\":\"c\",\"data\":\"hi\",\"event\":\"e\",\"id\":\"x1\"}", &b, err) == 0,
       "one message");
    ok(b.single && b.count == 1 && strcmp(b.items[0].channel, "c") == 0 &&
           strcmp(b.items[0].data, "hi") == 0 && strcmp(b.items[0].event, "e") == 0 &&
           strcmp(b.items[0].id, "x1") == 0,
       "its fields");
    sp_publish_batch_clear(&b);

    ok(parse("{\"channel\":\"c\",\"data\":{\"n\": [1, 2]}}", &b, err) == 0 &&
           strcmp(b.items[0].data, "{\"n\":[1,2]}") == 0,
       "data that is JSON goes out as its compact text");
    sp_publish_batch_clear(&b);

    ok(parse("{\"channel\":\"c\",\"data_base64\":\"AAH/\"}", &b, err) == 0 && b.items[0].len == 3 &&
           memcmp(b.items[0].data, "\0\1\xff", 3) == 0,
       "data_base64 carries bytes");
    sp_publish_batch_clear(&b);

    ok(parse("{\"items\":[{\"channel\":\"a\",\"data\":\"1\"},{\"channel\":\"b\",\"data\":\"2\"}]}",
             &b, err) == 0 &&
           !b.single && b.count == 2 && strcmp(b.items[1].channel, "b") == 0,
       "a batch, in order");
    sp_publish_batch_clear(&b);

    ok(parse("{\"items\":[{\"channel\":\"g\",\"formats\":{\"http-stream\":{\"content\":\"s\"}}}]}",
             &b, err) == 0 &&
           b.items[0].formats != NULL && strcmp(b.items[0].data, "s") == 0,
       "a Pushpin item: formats kept, the stream content as data");
    sp_publish_batch_clear(&b);

    static const struct {
        const char *body, *says;
    } bad[] = {
        {"", "JSON"},
        {"[1]", "object"},
        {"{\"data\":\"x\"}", "channel"},
        {"{\"channel\":\"c\"}", "data"},
        {"{\"channel\":\"c\",\"data\":\"x\",\"colour\":1}", "colour"},
        {"{\"channel\":\"c\",\"data_base64\":\"!!\"}", "base64"},
        {"{\"items\":[]}", "items"},
        {"{\"items\":[{\"channel\":\"a\",\"data\":\"1\"},{\"data\":\"2\"}]}", "items[1]"},
        {"{\"channel\":7,\"data\":\"x\"}", "channel"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].body, &b, err);
        ok(rc < 0 && strstr(err, bad[i].says) != NULL, "refused, naming '%s': %s", bad[i].says,
           rc < 0 ? err : "(accepted)");
    }
    return tap_done();
}
