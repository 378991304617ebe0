/* The JSON publish body parser on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "push/publish_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_publish_batch batch;
    char err[256];

    if (sp_publish_parse_json((const char *)data, size, &batch, err, sizeof(err)) == 0) {
        if (batch.count == 0 || batch.count > SP_PUBLISH_MAX_ITEMS)
            abort();
        for (size_t i = 0; i < batch.count; i++) {
            if (batch.items[i].channel == NULL || batch.items[i].data == NULL)
                abort();
        }
        sp_publish_batch_clear(&batch);
    } else if (err[0] == '\0') {
        abort(); /* every refusal says why */
    }
    return 0;
}
