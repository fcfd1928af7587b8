#include "cloud.h"

#include <string.h>

static const char *const names[CLOUD_PROVIDER_COUNT] = {
    [CLOUD_UNKNOWN] = "unknown", [CLOUD_AWS] = "aws",           [CLOUD_GCP] = "gcp",
    [CLOUD_AZURE] = "azure",     [CLOUD_OUTSCALE] = "outscale",
};

const char *cloud_provider_name(enum cloud_provider_id id)
{
    return id < CLOUD_PROVIDER_COUNT ? names[id] : "unknown";
}

enum cloud_provider_id cloud_provider_parse(const char *name)
{
    for (int i = 0; i < CLOUD_PROVIDER_COUNT; i++) {
        if (strcmp(names[i], name) == 0) {
            return (enum cloud_provider_id)i;
        }
    }
    return CLOUD_PROVIDER_COUNT;
}
