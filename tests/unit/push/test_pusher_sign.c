/* Pusher's signatures with the vectors of its own documentation (checked
 * with openssl; see the research notes §3.3 and §3.8): channel auth for
 * private and presence channels, sign-in, and a signed API request, with
 * every way a request can be wrong. */
#include "push/pusher_sign.h"

#include <stdio.h>
#include <string.h>

#include "../tap.h"

#define KEY "278d425bdf160c739803"
#define SECRET "7ad3773142a6692b25b8"

static struct sp_slice S(const char *s) {
    return (struct sp_slice){s, strlen(s)};
}

static void
test_channel_auth(void)
{
    const char *presence_data = "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Pusher\"}}";

    ok(sp_pusher_channel_auth_valid(
           KEY, SECRET, "1234.1234", "private-foobar", NULL,
           KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"),
       "the documented private-channel auth is valid");
    ok(!sp_pusher_channel_auth_valid(
           KEY, SECRET, "1234.1235", "private-foobar", NULL,
           KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"),
       "for another socket it is not (replayed auth)");
    ok(!sp_pusher_channel_auth_valid(
           KEY, SECRET, "1234.1234", "private-foobaz", NULL,
           KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"),
       "nor for another channel");
    ok(!sp_pusher_channel_auth_valid(
           "otherkey", SECRET, "1234.1234", "private-foobar", NULL,
           KEY ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"),
       "nor under another key");
    ok(!sp_pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", NULL,
                                     KEY ":58df8b0c"),
       "a truncated signature is not valid");
    ok(!sp_pusher_channel_auth_valid(KEY, SECRET, "1234.1234", "private-foobar", NULL, NULL),
       "nor a missing one");
    ok(sp_pusher_channel_auth_valid(
           KEY, SECRET, "1234.1234", "presence-foobar", presence_data,
           KEY ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"),
       "the presence auth covers channel_data");
    ok(!sp_pusher_channel_auth_valid(
           KEY, SECRET, "1234.1234", "presence-foobar",
           "{\"user_id\":11,\"user_info\":{\"name\":\"Mr. Pusher\"}}",
           KEY ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"),
       "another user_id under the same auth is not valid");
    ok(sp_pusher_user_auth_valid(
           KEY, SECRET, "1234.1234", "{\"id\":\"12345\"}",
           KEY ":4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"),
       "the documented sign-in auth is valid");
}

static void test_request(void)
{
    static const char body[] =
        "{\"name\":\"foo\",\"channels\":[\"project-3\"],\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}";
    static const char query[] = "auth_key=" KEY "&auth_timestamp=1353088179&auth_version=1.0"
                                "&body_md5=ec365a775a4cd0599faeb73354201b6f"
                                "&auth_signature="
                                "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
    const char *why = NULL;
    char text[512];
    char q[512];

    int n = sp_pusher_string_to_sign(S("POST"), S("/apps/3/events"), S(query), text, sizeof(text));
    ok(n > 0, "the string to sign");
    is_str(text,
           "POST\n/apps/3/events\nauth_key=" KEY "&auth_timestamp=1353088179&auth_version=1.0"
           "&body_md5=ec365a775a4cd0599faeb73354201b6f",
           "is the documented one");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S(query), body,
                                   sizeof(body) - 1, 1353088179 + 10, 600, &why),
           SP_PUSHER_REQUEST_OK, "the documented request is valid");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S(query), body,
                                   sizeof(body) - 1, 1353088179 + 601, 600, &why),
           SP_PUSHER_REQUEST_STALE, "601 s later it is stale");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S(query), body,
                                   sizeof(body) - 1, 1353088179 - 601, 600, &why),
           SP_PUSHER_REQUEST_STALE, "and from 601 s ahead too");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/4/events"), S(query), body,
                                   sizeof(body) - 1, 1353088179, 600, &why),
           SP_PUSHER_REQUEST_BAD_SIGNATURE, "another path: bad signature");
    is_int(sp_pusher_request_check(KEY, SECRET, S("PUT"), S("/apps/3/events"), S(query), body,
                                   sizeof(body) - 1, 1353088179, 600, &why),
           SP_PUSHER_REQUEST_BAD_SIGNATURE, "another method: bad signature");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S(query), "{}", 2,
                                   1353088179, 600, &why),
           SP_PUSHER_REQUEST_BODY_MD5, "another body: body_md5 refuses it");
    is_int(sp_pusher_request_check("otherkey", SECRET, S("POST"), S("/apps/3/events"), S(query),
                                   body, sizeof(body) - 1, 1353088179, 600, &why),
           SP_PUSHER_REQUEST_UNKNOWN_KEY, "an unknown auth_key");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"),
                                   S("auth_key=" KEY "&auth_timestamp=1353088179"), NULL, 0,
                                   1353088179, 600, &why),
           SP_PUSHER_REQUEST_UNSIGNED, "no auth_signature: unsigned");

    /* Names in any case and order, values percent-encoded, sign the same. */
    snprintf(q, sizeof(q),
             "Body_MD5=ec365a775a4cd0599faeb73354201b6f&auth_version=1%%2E0"
             "&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
             "&AUTH_TIMESTAMP=1353088179&auth_key=" KEY);
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S(q), body,
                                   sizeof(body) - 1, 1353088179, 600, &why),
           SP_PUSHER_REQUEST_OK, "names folded and sorted, values decoded");
    snprintf(q, sizeof(q), "%s&auth_key=%s", query, KEY);
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S(q), body,
                                   sizeof(body) - 1, 1353088179, 600, &why),
           SP_PUSHER_REQUEST_BAD_QUERY, "a parameter given twice is refused");
    is_int(sp_pusher_request_check(KEY, SECRET, S("POST"), S("/apps/3/events"), S("auth_key=%zz"),
                                   NULL, 0, 1353088179, 600, &why),
           SP_PUSHER_REQUEST_BAD_QUERY, "a bad escape is refused");
}

int main(void)
{
    test_channel_auth();
    test_request();
    return tap_done();
}
