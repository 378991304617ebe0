/* JSON Web Tokens: RFC 7515's HS256 example, and tokens signed here with
 * OpenSSL (RS256, ES256) for every way a token can be wrong: alg none, an
 * HS256 token "signed" with the RSA public key's PEM (key confusion), a
 * foreign key, a tampered payload, expiry and nbf with a leeway, iss and
 * aud, kid selection in a JWK Set. */
#include "core/jwt.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"

#define NOW 1700000000ULL

static const struct sp_jwt_check check_now = {NOW, 30, NULL, NULL};

static void b64url(const unsigned char *data, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (i + 1 < len ? (unsigned)data[i + 1] << 8 : 0) |
                     (i + 2 < len ? data[i + 2] : 0);
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

/* header.payload.signature, signed with secret (HS256) or pkey. */
static char *mint(const char *header, const char *payload, const char *secret, EVP_PKEY *pkey)
{
    char *token = malloc(8192), sig64[600];
    unsigned char sig[512];
    size_t sig_len = sizeof(sig);

    b64url((const unsigned char *)header, strlen(header), token);
    strcat(token, ".");
    b64url((const unsigned char *)payload, strlen(payload), token + strlen(token));
    if (secret != NULL) {
        unsigned len = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)token, strlen(token), sig,
             &len);
        sig_len = len;
    } else if (pkey != NULL) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey);
        EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)token, strlen(token));
        EVP_MD_CTX_free(ctx);
        if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) { /* DER to r || s */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sig_len = 64;
        }
    } else {
        sig_len = 0;
    }
    b64url(sig, sig_len, sig64);
    strcat(token, ".");
    strcat(token, sig64);
    return token;
}

static char *pem_of(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *pem;

    PEM_write_bio_PUBKEY(bio, pkey);
    long len = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    BIO_free(bio);
    return pem;
}

static int verify(const struct sp_jwt_keys *keys, const char *token,
                  const struct sp_jwt_check *check)
{
    json_t *claims = NULL;
    int rc = sp_jwt_verify(keys, token, strlen(token), check, &claims);
    ok((rc == SP_JWT_OK) == (claims != NULL), "claims exactly when valid (%s)",
       sp_jwt_error_name(rc));
    json_decref(claims);
    return rc;
}

static void test_rfc7515_hs256(void)
{
    /* RFC 7515 A.1: the key's bytes, the token, valid before its exp (1300819380). */
    static const unsigned char key[] = {
        3,   35,  53, 75,  43,  15, 165, 188, 131, 126, 6,   101, 119, 123, 166, 143,
        90,  179, 40, 230, 240, 84, 201, 40,  169, 15,  132, 178, 210, 80,  46,  191,
        211, 251, 90, 146, 210, 6,  71,  239, 150, 138, 180, 195, 119, 98,  61,  34,
        61,  46,  33, 114, 5,   46, 79,  8,   192, 205, 154, 245, 103, 208, 128, 163};
    const char *token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
                        "bS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    struct sp_jwt_keys *keys = sp_jwt_keys_new();
    struct sp_jwt_check before = {1300819000, 0, "joe", NULL}, after = {1300819400, 0, NULL, NULL};
    json_t *claims = NULL;

    sp_jwt_keys_add_secret(keys, (const char *)key, sizeof(key));
    is_int(sp_jwt_verify(keys, token, strlen(token), &before, &claims), SP_JWT_OK,
           "RFC 7515 A.1 verifies");
    ok(json_is_true(json_object_get(claims, "http://example.com/is_root")), "and its claims read");
    json_decref(claims);
    is_int(verify(keys, token, &after), SP_JWT_EXPIRED, "after its exp it is expired");
    before.issuer = "someone else";
    is_int(verify(keys, token, &before), SP_JWT_ISSUER, "another issuer is refused");
    sp_jwt_keys_free(keys);
}

static void test_public_keys(void)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    char *rsa_pem = pem_of(rsa), *ec_pem = pem_of(ec);
    char payload[256];
    const char *why = NULL;
    struct sp_jwt_keys *keys = sp_jwt_keys_new();

    is_int(sp_jwt_keys_add_pem(keys, rsa_pem, &why), 1, "an RSA PEM public key is added");
    is_int(sp_jwt_keys_add_pem(keys, ec_pem, &why), 1, "and a P-256 one");
    is_int(sp_jwt_keys_add_pem(keys, "not a key", &why), -1, "text that is not PEM is refused");
    snprintf(payload, sizeof(payload), "{\"sub\":\"u1\",\"exp\":%llu,\"channels\":[\"a\"]}",
             NOW + 60);

    char *t = mint("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload, NULL, rsa);
    is_int(verify(keys, t, &check_now), SP_JWT_OK, "RS256 verifies with the RSA key");
    /* Another base64url letter, never an invalid one: XOR could give ',' or '[' from '-' or 'Z'. */
    char *flip = t + strlen(t) - 3;
    *flip = *flip == 'A' ? 'B' : 'A';
    is_int(verify(keys, t, &check_now), SP_JWT_SIGNATURE, "a changed signature does not");
    free(t);
    t = mint("{\"alg\":\"ES256\"}", payload, NULL, ec);
    is_int(verify(keys, t, &check_now), SP_JWT_OK, "ES256 verifies with the P-256 key");
    free(t);
    t = mint("{\"alg\":\"ES256\"}", payload, NULL, other);
    is_int(verify(keys, t, &check_now), SP_JWT_SIGNATURE, "ES256 from another key does not");
    free(t);
    /* Key confusion: HS256 with the public key's PEM as the HMAC secret. */
    t = mint("{\"alg\":\"HS256\"}", payload, rsa_pem, NULL);
    is_int(verify(keys, t, &check_now), SP_JWT_NO_KEY, "an HS256 token never meets a public key");
    free(t);
    t = mint("{\"alg\":\"none\"}", payload, NULL, NULL);
    is_int(verify(keys, t, &check_now), SP_JWT_ALGORITHM, "alg none is refused");
    free(t);
    t = mint("{\"alg\":\"RS512\"}", payload, NULL, rsa);
    is_int(verify(keys, t, &check_now), SP_JWT_ALGORITHM, "an algorithm not served is refused");
    free(t);
    /* A payload swapped under a valid signature. */
    char *good = mint("{\"alg\":\"RS256\"}", payload, NULL, rsa);
    char *evil = mint("{\"alg\":\"RS256\"}", "{\"sub\":\"admin\",\"exp\":9999999999}", NULL, rsa);
    char spliced[8192];
    char *g1 = strchr(good, '.'), *e1 = strchr(evil, '.'), *e2 = strchr(e1 + 1, '.');
    snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(g1 - good), good, (int)(e2 - e1), e1,
             strrchr(good, '.'));
    is_int(verify(keys, spliced, &check_now), SP_JWT_SIGNATURE, "a spliced payload is refused");
    free(good);
    free(evil);
    sp_jwt_keys_free(keys);
    free(rsa_pem);
    free(ec_pem);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other);
}

static void test_times_and_audience(void)
{
    struct sp_jwt_keys *keys = sp_jwt_keys_new();
    struct sp_jwt_check c = check_now;
    char payload[256];
    char *t;

    sp_jwt_keys_add_secret(keys, "s3cret", 6);
#define HS(fmt, ...)                                                                               \
    (snprintf(payload, sizeof(payload), fmt, __VA_ARGS__),                                         \
     t = mint("{\"alg\":\"HS256\"}", payload, "s3cret", NULL))
    HS("{\"exp\":%llu}", NOW - 20);
    is_int(verify(keys, t, &c), SP_JWT_OK, "expired 20 s ago is within a 30 s leeway");
    free(t);
    HS("{\"exp\":%llu}", NOW - 31);
    is_int(verify(keys, t, &c), SP_JWT_EXPIRED, "31 s ago is not");
    free(t);
    HS("{\"sub\":\"%s\"}", "no exp");
    is_int(verify(keys, t, &c), SP_JWT_EXPIRED, "a token without exp is refused");
    free(t);
    HS("{\"exp\":%llu,\"nbf\":%llu}", NOW + 100, NOW + 60);
    is_int(verify(keys, t, &c), SP_JWT_NOT_YET, "nbf a minute ahead is not yet valid");
    free(t);
    HS("{\"exp\":%llu,\"iat\":%llu}", NOW + 100, NOW + 60);
    is_int(verify(keys, t, &c), SP_JWT_NOT_YET, "nor is one issued in the future");
    free(t);
    c.audience = "sidepush";
    HS("{\"exp\":%llu,\"aud\":\"%s\"}", NOW + 100, "sidepush");
    is_int(verify(keys, t, &c), SP_JWT_OK, "aud as a string");
    free(t);
    HS("{\"exp\":%llu,\"aud\":[\"x\",\"%s\"]}", NOW + 100, "sidepush");
    is_int(verify(keys, t, &c), SP_JWT_OK, "aud as an array holding it");
    free(t);
    HS("{\"exp\":%llu,\"aud\":\"%s\"}", NOW + 100, "another");
    is_int(verify(keys, t, &c), SP_JWT_AUDIENCE, "another audience is refused");
    free(t);
    HS("{\"exp\":%llu}", NOW + 100);
    is_int(verify(keys, t, &c), SP_JWT_AUDIENCE, "and so is none");
    free(t);
#undef HS
    const char *bad[] = {"", "a.b", "a.b.c.d", "!!.eyJ9.x", "e30.e30.", "e30.W10.e30"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(verify(keys, bad[i], &c) < 0, "'%s' is refused", bad[i]);
    sp_jwt_keys_free(keys);
}

static void jwk_of(EVP_PKEY *pkey, const char *kid, char *out, size_t size)
{
    char x[64], y[64];
    unsigned char buf[65];
    size_t len = 0;

    EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &len);
    b64url(buf + 1, 32, x);
    b64url(buf + 33, 32, y);
    snprintf(out, size,
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"use\":\"sig\",\"x\":\"%s\",\"y\":"
             "\"%s\"}",
             kid, x, y);
}

static void test_jwks(void)
{
    EVP_PKEY *one = EVP_EC_gen("P-256"), *two = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(2048);
    char a[512], b[512], jwks[2048], payload[128], n[400], e[16];
    const char *why = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    unsigned char raw[300];

    jwk_of(one, "k1", a, sizeof(a));
    jwk_of(two, "k2", b, sizeof(b));
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &bn_n);
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &bn_e);
    b64url(raw, (size_t)BN_bn2bin(bn_n, raw), n);
    b64url(raw, (size_t)BN_bn2bin(bn_e, raw), e);
    snprintf(
        jwks, sizeof(jwks),
        "{\"keys\":[%s,%s,{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\",\"n\":\"%s\","
        "\"e\":\"%s\"},{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},{\"kty\":\"EC\",\"use\":\"enc\"}]}",
        a, b, n, e);
    struct sp_jwt_keys *keys = sp_jwt_keys_new();
    is_int(sp_jwt_keys_add_jwks(keys, jwks, strlen(jwks), &why), 3,
           "a JWK Set's two P-256 keys and its RSA key are added; oct and enc keys are not");
    is_int(sp_jwt_keys_add_jwks(keys, "[]", 2, &why), -1,
           "a document that is not a set is refused");
    snprintf(payload, sizeof(payload), "{\"exp\":%llu}", NOW + 60);
    char *t = mint("{\"alg\":\"ES256\",\"kid\":\"k2\"}", payload, NULL, two);
    is_int(verify(keys, t, &check_now), SP_JWT_OK, "a token with kid k2 verifies with k2");
    free(t);
    t = mint("{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload, NULL, two);
    is_int(verify(keys, t, &check_now), SP_JWT_SIGNATURE, "signed by k2 but naming k1: refused");
    free(t);
    t = mint("{\"alg\":\"RS256\",\"kid\":\"r1\"}", payload, NULL, rsa);
    is_int(verify(keys, t, &check_now), SP_JWT_OK, "the RSA key from its n and e verifies RS256");
    free(t);
    t = mint("{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload, "secret", NULL);
    is_int(verify(keys, t, &check_now), SP_JWT_NO_KEY, "the oct key was never taken as a secret");
    free(t);
    sp_jwt_keys_free(keys);
    BN_free(bn_n);
    BN_free(bn_e);
    EVP_PKEY_free(one);
    EVP_PKEY_free(two);
    EVP_PKEY_free(rsa);
}

int main(void)
{
    test_rfc7515_hs256();
    test_public_keys();
    test_times_and_audience();
    test_jwks();
    return tap_done();
}
