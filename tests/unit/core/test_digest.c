#include "core/digest.h"

#include "../tap.h"

int main(void)
{
    char a[SP_SHA256_HEX], b[SP_SHA256_HEX];

    sp_sha256_hex("abc", 3, a);
    is_str(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "SHA-256 of abc (FIPS 180-2 vector)");

    struct sp_digest *d = sp_digest_new();
    sp_digest_field(d, "a", 1);
    sp_digest_field(d, "bc", 2);
    sp_digest_finish(d, a);
    d = sp_digest_new();
    sp_digest_field(d, "ab", 2);
    sp_digest_field(d, "c", 1);
    sp_digest_finish(d, b);
    ok(strcmp(a, b) != 0, "fields are length-prefixed: a+bc is not ab+c");

    d = sp_digest_new();
    sp_digest_field(d, NULL, 0);
    sp_digest_finish(d, a);
    d = sp_digest_new();
    sp_digest_field(d, "", 0);
    sp_digest_finish(d, b);
    ok(strcmp(a, b) != 0, "an absent field is not an empty one");
    is_int(strlen(a), 64, "64 hex digits");

    /* Pusher's documented vectors (research notes, checked with openssl). */
    static const char secret[] = "7ad3773142a6692b25b8";
    static const char priv[] = "1234.1234:private-foobar";
    const struct sp_hmac_part one[] = {{priv, sizeof(priv) - 1}};
    ok(sp_hmac_sha256_hex(secret, sizeof(secret) - 1, one, 1, a) == 0, "HMAC-SHA256");
    is_str(a, "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
           "Pusher's private-channel vector");
    const struct sp_hmac_part parts[] = {{"1234.1234", 9}, {":", 1}, {"private-foobar", 14}};
    sp_hmac_sha256_hex(secret, sizeof(secret) - 1, parts, 3, b);
    is_str(b, a, "the same from parts");
    static const char body[] = "{\"name\":\"foo\",\"channels\":[\"project-3\"],"
                               "\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}";
    char md5[SP_MD5_HEX];
    sp_md5_hex(body, sizeof(body) - 1, md5);
    is_str(md5, "ec365a775a4cd0599faeb73354201b6f", "MD5 of Pusher's worked API body");
    ok(sp_hex_equal(a, b, 64), "equal signatures compare equal");
    b[10] ^= 1;
    ok(!sp_hex_equal(a, b, 64), "one digit off: not equal");
    ok(!sp_hex_equal(a, "58df", 64), "a short one: not equal");
    return tap_done();
}
