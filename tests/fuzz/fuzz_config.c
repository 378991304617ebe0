/* The YAML loader and the configuration walker on arbitrary documents. */
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *no_env(const char *name, void *ctx)
{
    (void)ctx;
    return name[0] == 'A' ? "value" : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_diags diags = {0};
    struct sp_config *config = NULL;

    if (sp_config_parse("fuzz.yaml", (const char *)data, size, no_env, NULL, &config, &diags) ==
        0) {
        if (config == NULL || diags.count != 0)
            abort(); /* success means a config and no complaints */
    } else if (config != NULL || diags.count == 0) {
        abort(); /* failure means no config and at least one reason */
    }
    sp_config_release(config);
    sp_diags_clear(&diags);
    return 0;
}
