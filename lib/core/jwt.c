#include "core/jwt.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"

#define KID_MAX 128
#define TOKEN_MAX 16384 /* far above any real token; bounds the decoding */

enum alg { HS256, RS256, ES256, ALG_NONE };

struct key {
    enum alg alg;
    char kid[KID_MAX]; /* "" when the key has none */
    EVP_PKEY *pkey;    /* RS256, ES256 */
    unsigned char *secret;
    size_t secret_len;
};

struct sp_jwt_keys {
    struct key *items;
    size_t count;
};

const char *sp_jwt_error_name(int err)
{
    switch (err) {
    case SP_JWT_OK:
        return "ok";
    case SP_JWT_MALFORMED:
        return "malformed";
    case SP_JWT_ALGORITHM:
        return "algorithm";
    case SP_JWT_NO_KEY:
        return "no_key";
    case SP_JWT_SIGNATURE:
        return "signature";
    case SP_JWT_EXPIRED:
        return "expired";
    case SP_JWT_NOT_YET:
        return "not_yet_valid";
    case SP_JWT_ISSUER:
        return "issuer";
    default:
        return "audience";
    }
}

/* ---- keys -------------------------------------------------------------------------------- */

struct sp_jwt_keys *sp_jwt_keys_new(void)
{
    return calloc(1, sizeof(struct sp_jwt_keys));
}

void sp_jwt_keys_free(struct sp_jwt_keys *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->count; i++) {
        EVP_PKEY_free(keys->items[i].pkey);
        if (keys->items[i].secret != NULL)
            OPENSSL_clear_free(keys->items[i].secret, keys->items[i].secret_len);
    }
    free(keys->items);
    free(keys);
}

size_t sp_jwt_keys_count(const struct sp_jwt_keys *keys)
{
    return keys->count;
}

static struct key *key_add(struct sp_jwt_keys *keys)
{
    struct key *grown = realloc(keys->items, (keys->count + 1) * sizeof(*grown));

    if (grown == NULL)
        return NULL;
    keys->items = grown;
    memset(&grown[keys->count], 0, sizeof(*grown));
    return &grown[keys->count++];
}

int sp_jwt_keys_add_secret(struct sp_jwt_keys *keys, const char *secret, size_t len)
{
    unsigned char *copy = OPENSSL_malloc(len ? len : 1);
    struct key *k = copy ? key_add(keys) : NULL;

    if (k == NULL) {
        OPENSSL_free(copy);
        return -1;
    }
    memcpy(copy, secret, len);
    k->alg = HS256;
    k->secret = copy;
    k->secret_len = len;
    return 0;
}

/* The algorithm a public key serves: RS256 for RSA of 2048 bits or more,
 * ES256 for P-256; else ALG_NONE. */
static enum alg key_alg(EVP_PKEY *pkey)
{
    char group[32];

    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA)
        return EVP_PKEY_get_bits(pkey) >= 2048 ? RS256 : ALG_NONE;
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC &&
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) == 1 &&
        strcmp(group, "prime256v1") == 0)
        return ES256;
    return ALG_NONE;
}

/* Takes pkey. */
static int add_public(struct sp_jwt_keys *keys, EVP_PKEY *pkey, const char *kid, const char **why)
{
    enum alg alg = key_alg(pkey);
    struct key *k = alg != ALG_NONE ? key_add(keys) : NULL;

    if (k == NULL) {
        *why = alg == ALG_NONE ? "a key that is neither RSA of 2048 bits or more nor EC P-256"
                               : "out of memory";
        EVP_PKEY_free(pkey);
        return -1;
    }
    k->alg = alg;
    k->pkey = pkey;
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
    return 0;
}

int sp_jwt_keys_add_pem(struct sp_jwt_keys *keys, const char *pem, const char **why)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey;
    int added = 0;

    if (bio == NULL) {
        *why = "out of memory";
        return -1;
    }
    while ((pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL) {
        if (add_public(keys, pkey, NULL, why) < 0) {
            added = -1;
            break;
        }
        added++;
    }
    ERR_clear_error(); /* the end of the PEM text reads as an error */
    BIO_free(bio);
    if (added == 0) {
        *why = "no PEM public key (-----BEGIN PUBLIC KEY-----)";
        return -1;
    }
    return added;
}

/* base64url without padding, as JOSE writes it; NULL when text is not. */
static unsigned char *b64url_decode(const char *text, size_t len, size_t *out_len)
{
    char *std = malloc(len + 4), *out = NULL;
    size_t n = 0;

    if (std == NULL || len > TOKEN_MAX)
        goto done;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '+' || c == '/' || c == '=')
            goto done;
        std[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (n % 4 != 0)
        std[n++] = '=';
    if (sp_base64_decode(std, n, &out, out_len) < 0)
        out = NULL;
done:
    free(std);
    return (unsigned char *)out;
}

static unsigned char *jwk_bytes(json_t *jwk, const char *name, size_t *len)
{
    const char *text = json_string_value(json_object_get(jwk, name));
    return text ? b64url_decode(text, strlen(text), len) : NULL;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_jwk(json_t *jwk)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = jwk_bytes(jwk, "n", &nlen), *e = jwk_bytes(jwk, "e", &elen);
    BIGNUM *bn_n = n ? BN_bin2bn(n, (int)nlen, NULL) : NULL;
    BIGNUM *bn_e = e ? BN_bin2bn(e, (int)elen, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;

    if (bld != NULL && bn_n != NULL && bn_e != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *ec_jwk(json_t *jwk)
{
    size_t xlen = 0, ylen = 0;
    unsigned char *x = jwk_bytes(jwk, "x", &xlen), *y = jwk_bytes(jwk, "y", &ylen);
    unsigned char point[65] = {0x04}; /* uncompressed: 04 || x || y */
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;

    if (bld != NULL && x != NULL && y != NULL && xlen == 32 && ylen == 32 &&
        json_is_string(json_object_get(jwk, "crv")) &&
        strcmp(json_string_value(json_object_get(jwk, "crv")), "P-256") == 0) {
        memcpy(point + 1, x, 32);
        memcpy(point + 33, y, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ==
                1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ==
                1)
            pkey = from_params("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

/* A JWK for verifying signatures: no "use" or "sig", its "alg" (when
 * given) the one its type serves. */
static bool jwk_for_signing(json_t *jwk, const char *kty)
{
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));

    if (use != NULL && strcmp(use, "sig") != 0)
        return false;
    return alg == NULL || strcmp(alg, strcmp(kty, "RSA") == 0 ? "RS256" : "ES256") == 0;
}

int sp_jwt_keys_add_jwks(struct sp_jwt_keys *keys, const char *json, size_t len, const char **why)
{
    json_t *doc = json_loadb(json, len, 0, NULL), *jwk;
    json_t *list = json_object_get(doc, "keys");
    size_t i;
    int added = 0;

    if (!json_is_array(list)) {
        json_decref(doc);
        *why = "not a JWK Set ({\"keys\": [...]})";
        return -1;
    }
    json_array_foreach(list, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        EVP_PKEY *pkey = NULL;
        if (kty != NULL && strcmp(kty, "RSA") == 0 && jwk_for_signing(jwk, kty))
            pkey = rsa_jwk(jwk);
        else if (kty != NULL && strcmp(kty, "EC") == 0 && jwk_for_signing(jwk, kty))
            pkey = ec_jwk(jwk);
        if (pkey != NULL && add_public(keys, pkey, kid, why) == 0)
            added++;
    }
    json_decref(doc);
    return added;
}

/* ---- verifying ------------------------------------------------------------------------- */

static enum alg alg_named(const char *name)
{
    if (name == NULL)
        return ALG_NONE;
    if (strcmp(name, "HS256") == 0)
        return HS256;
    if (strcmp(name, "RS256") == 0)
        return RS256;
    if (strcmp(name, "ES256") == 0)
        return ES256;
    return ALG_NONE; /* "none" among them */
}

static bool hs256_valid(const struct key *k, const char *input, size_t len,
                        const unsigned char *sig, size_t sig_len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;

    if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input, len, md,
             &md_len) == NULL)
        return false;
    return sig_len == md_len && CRYPTO_memcmp(sig, md, md_len) == 0;
}

/* ES256 signs r || s, 32 bytes each; OpenSSL verifies DER. */
static unsigned char *es256_der(const unsigned char *sig, size_t sig_len, int *der_len)
{
    ECDSA_SIG *es = sig_len == 64 ? ECDSA_SIG_new() : NULL;
    BIGNUM *r = es ? BN_bin2bn(sig, 32, NULL) : NULL,
           *s = es ? BN_bin2bn(sig + 32, 32, NULL) : NULL;
    unsigned char *der = NULL;

    if (r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them */
        *der_len = i2d_ECDSA_SIG(es, &der);
        if (*der_len <= 0)
            der = NULL;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

static bool public_valid(const struct key *k, const char *input, size_t len,
                         const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    int der_len = 0;
    bool ok = false;

    if (k->alg == ES256) {
        if ((der = es256_der(sig, sig_len, &der_len)) == NULL)
            goto done;
        sig = der;
        sig_len = (size_t)der_len;
    }
    ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, len) == 1;
done:
    ERR_clear_error();
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Tries the keys of alg: of the token's kid when it names one. */
static int signature_check(const struct sp_jwt_keys *keys, enum alg alg, const char *kid,
                           const char *input, size_t len, const unsigned char *sig, size_t sig_len)
{
    bool kid_known = false, tried = false;

    for (size_t i = 0; kid != NULL && i < keys->count; i++)
        kid_known =
            kid_known || (keys->items[i].alg == alg && strcmp(keys->items[i].kid, kid) == 0);
    for (size_t i = 0; i < keys->count; i++) {
        const struct key *k = &keys->items[i];
        /* A kid this set lacks is for a key it does not hold (one rotated
         * in at the issuer): only keys without a kid are tried then. */
        if (k->alg != alg || (kid_known && strcmp(k->kid, kid) != 0) ||
            (kid != NULL && !kid_known && k->kid[0] != '\0'))
            continue;
        tried = true;
        if (alg == HS256 ? hs256_valid(k, input, len, sig, sig_len)
                         : public_valid(k, input, len, sig, sig_len))
            return SP_JWT_OK;
    }
    return tried ? SP_JWT_SIGNATURE : SP_JWT_NO_KEY;
}

static bool audience_holds(json_t *aud, const char *want)
{
    size_t i;
    json_t *one;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, one)
    {
        if (json_is_string(one) && strcmp(json_string_value(one), want) == 0)
            return true;
    }
    return false;
}

static int claims_check(json_t *claims, const struct sp_jwt_check *c)
{
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    json_t *iat = json_object_get(claims, "iat");
    double now = (double)c->now_s, leeway = (double)c->leeway_s;
    const char *iss = json_string_value(json_object_get(claims, "iss"));

    if (!json_is_number(exp) || now > json_number_value(exp) + leeway)
        return SP_JWT_EXPIRED;
    if ((nbf != NULL && (!json_is_number(nbf) || now + leeway < json_number_value(nbf))) ||
        (iat != NULL && (!json_is_number(iat) || now + leeway < json_number_value(iat))))
        return SP_JWT_NOT_YET;
    if (c->issuer != NULL && (iss == NULL || strcmp(iss, c->issuer) != 0))
        return SP_JWT_ISSUER;
    if (c->audience != NULL && !audience_holds(json_object_get(claims, "aud"), c->audience))
        return SP_JWT_AUDIENCE;
    return SP_JWT_OK;
}

static json_t *json_part(const char *text, size_t len)
{
    size_t n = 0;
    unsigned char *raw = b64url_decode(text, len, &n);
    json_t *doc = raw ? json_loadb((const char *)raw, n, 0, NULL) : NULL;

    free(raw);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

int sp_jwt_verify(const struct sp_jwt_keys *keys, const char *token, size_t len,
                  const struct sp_jwt_check *check, json_t **claims)
{
    const char *dot1 = len <= TOKEN_MAX ? memchr(token, '.', len) : NULL;
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    json_t *header = NULL, *payload = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int rc = SP_JWT_MALFORMED;

    *claims = NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        goto done;
    header = json_part(token, (size_t)(dot1 - token));
    payload = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    sig = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
    if (header == NULL || payload == NULL || sig == NULL)
        goto done;
    enum alg alg = alg_named(json_string_value(json_object_get(header, "alg")));
    json_t *kid = json_object_get(header, "kid");
    if (alg == ALG_NONE || (kid != NULL && !json_is_string(kid)) ||
        json_object_get(header, "crit") != NULL) {
        rc = SP_JWT_ALGORITHM;
        goto done;
    }
    rc = signature_check(keys, alg, json_string_value(kid), token, (size_t)(dot2 - token), sig,
                         sig_len);
    if (rc == SP_JWT_OK)
        rc = claims_check(payload, check);
    if (rc == SP_JWT_OK) {
        *claims = payload;
        payload = NULL;
    }
done:
    json_decref(header);
    json_decref(payload);
    free(sig);
    return rc;
}
