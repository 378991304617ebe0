#include "push/webhook_sig.h"

#include <stdint.h>

#include "../tap.h"

/* Known-answer vector of the Standard Webhooks reference libraries
 * (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go). */
#define KAT_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define KAT_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define KAT_TS "1614265330"
#define KAT_BODY "{\"test\": 2432232314}"
#define KAT_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

int main(void)
{
    char sig[128];
    const int64_t now = 1614265330;

    ok(sp_webhook_sign(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), sig, sizeof(sig)) ==
           0,
       "sign");
    is_str(sig, KAT_SIG, "signature matches the reference vector");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG, now,
                             300),
           SP_WEBHOOK_OK, "verify the reference vector");
    is_int(sp_webhook_verify("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", KAT_ID, KAT_TS, KAT_BODY,
                             strlen(KAT_BODY), KAT_SIG, now, 300),
           SP_WEBHOOK_OK, "the whsec_ prefix is optional");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY),
                             "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " KAT_SIG, now, 300),
           SP_WEBHOOK_OK, "one of several signatures matches");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY),
                             "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", now, 300),
           SP_WEBHOOK_MISMATCH, "only v1 signatures count");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, "{\"test\": 1}", 11, KAT_SIG, now, 300),
           SP_WEBHOOK_MISMATCH, "another body does not verify");
    is_int(sp_webhook_verify(KAT_SECRET, "msg_other", KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG,
                             now, 300),
           SP_WEBHOOK_MISMATCH, "another id does not verify");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG,
                             now + 301, 300),
           SP_WEBHOOK_STALE, "too old");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG,
                             now - 301, 300),
           SP_WEBHOOK_STALE, "too far in the future");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, "soon", KAT_BODY, strlen(KAT_BODY), KAT_SIG, now,
                             300),
           SP_WEBHOOK_STALE, "a timestamp that is not a number");
    is_int(
        sp_webhook_verify(KAT_SECRET, NULL, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG, now, 300),
        SP_WEBHOOK_MISSING, "missing id");
    is_int(
        sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), NULL, now, 300),
        SP_WEBHOOK_MISSING, "missing signature");
    is_int(sp_webhook_verify("whsec_!!!!", KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG, now,
                             300),
           SP_WEBHOOK_BAD_SECRET, "a secret that is not base64");
    is_int(
        sp_webhook_verify("whsec_", KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG, now, 300),
        SP_WEBHOOK_BAD_SECRET, "an empty secret");
    /* Extreme timestamps are refused, never overflow (the UBSan build
     * aborted on INT64_MIN before this was fixed). */
    static const char *const extreme[] = {
        "-9223372036854775808", "9223372036854775807", "18446744073709551615",
        "99999999999999999999", "+1614265330",         " 1614265330",
        "1614265330 ",          "-1614265330",         ""};
    for (size_t i = 0; i < sizeof(extreme) / sizeof(extreme[0]); i++)
        is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, extreme[i], KAT_BODY, strlen(KAT_BODY),
                                 KAT_SIG, now, 300),
               SP_WEBHOOK_STALE, "timestamp '%s' is refused", extreme[i]);
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG,
                             INT64_MIN, UINT64_MAX / 2),
           SP_WEBHOOK_STALE, "a clock before 1970 is no match");
    is_int(sp_webhook_verify(KAT_SECRET, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), KAT_SIG,
                             INT64_MAX, UINT64_MAX),
           SP_WEBHOOK_OK, "the widest tolerance accepts without overflow");
    return tap_done();
}
