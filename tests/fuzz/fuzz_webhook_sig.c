/* Standard Webhooks verification on arbitrary headers and body: the input
 * is "id\ntimestamp\nsignatures\nbody" (the fields a client controls). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "push/webhook_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* Copies the next line of in (up to '\n' or the end) into a new string. */
static char *next_field(const uint8_t **in, size_t *left)
{
    const uint8_t *nl = memchr(*in, '\n', *left);
    size_t n = nl ? (size_t)(nl - *in) : *left;
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    memcpy(s, *in, n);
    s[n] = '\0';
    *in += nl ? n + 1 : n;
    *left -= nl ? n + 1 : n;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    char *id = next_field(&p, &left);
    char *ts = next_field(&p, &left);
    char *sigs = next_field(&p, &left);
    const int64_t now = 1614265330;

    int rc = sp_webhook_verify(SECRET, id, ts, p, left, sigs, now, 300);
    if (rc != SP_WEBHOOK_OK && rc != SP_WEBHOOK_MISSING && rc != SP_WEBHOOK_STALE &&
        rc != SP_WEBHOOK_MISMATCH)
        abort();
    /* Whatever verifies must be what signing those fields gives. */
    if (rc == SP_WEBHOOK_OK) {
        char sig[128];
        if (sp_webhook_sign(SECRET, id, ts, p, left, sig, sizeof(sig)) != 0 ||
            strstr(sigs, sig) == NULL)
            abort();
    }
    free(id);
    free(ts);
    free(sigs);
    return 0;
}
