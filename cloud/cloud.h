/* cloud: per-provider code. Each provider lives in its own folder (aws/, gcp/, azure/,
 * outscale/) with its auth and its resources; this header holds what they share. */
#ifndef CG_CLOUD_H
#define CG_CLOUD_H

enum cloud_provider_id {
    CLOUD_UNKNOWN = 0,
    CLOUD_AWS,
    CLOUD_GCP,
    CLOUD_AZURE,
    CLOUD_OUTSCALE,
    CLOUD_PROVIDER_COUNT
};

/* "aws", "gcp", "azure", "outscale", "unknown" */
const char *cloud_provider_name(enum cloud_provider_id id);
/* Returns CLOUD_PROVIDER_COUNT when the name is not one of the above. */
enum cloud_provider_id cloud_provider_parse(const char *name);

#endif
