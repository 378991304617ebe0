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
    return tap_done();
}
