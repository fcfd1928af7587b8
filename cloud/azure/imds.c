/* cloud/azure/imds.c: cluster identity from the Azure instance metadata service. */
#include "../meta_int.h"

#include "cg_http.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void on_instance(struct meta_batch *b, long status, const char *body, size_t len,
                        struct cg_http_req *req)
{
    if (status != 200 || body == NULL) {
        return;
    }
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *compute = json_object_get(doc, "compute");
    const char *sub = json_string_value(json_object_get(compute, "subscriptionId"));
    const char *loc = json_string_value(json_object_get(compute, "location"));
    const char *zone = json_string_value(json_object_get(compute, "zone"));
    cloud__meta_set(b, &b->m.account, sub, sub ? strlen(sub) : 0);
    cloud__meta_set(b, &b->m.region, loc, loc ? strlen(loc) : 0);
    if (zone != NULL && zone[0] != '\0' && loc != NULL) {
        /* IMDS gives the zone number ("1"); the node label form is "<region>-<n>" */
        char z[128];
        int n = snprintf(z, sizeof(z), "%s-%s", loc, zone);
        cloud__meta_set(b, &b->m.zone, z, n > 0 ? (size_t)n : 0);
    }
    /* Some AKS node pools carry the managed cluster's name as a VM tag; most do not, and then
     * the name stays unknown (the node resource group's tags in ARM are authoritative). */
    size_t i;
    json_t *tag;
    json_array_foreach(json_object_get(compute, "tagsList"), i, tag)
    {
        const char *name = json_string_value(json_object_get(tag, "name"));
        const char *value = json_string_value(json_object_get(tag, "value"));
        if (name != NULL && value != NULL && strcmp(name, "aks-managed-cluster-name") == 0) {
            cloud__meta_set(b, &b->m.cluster_name, value, strlen(value));
        }
    }
    json_decref(doc);
}

int cloud_azure_imds_identity(struct cg_http *h, const char *endpoint, cloud_meta_cb *cb,
                              void *data, struct cg_err *err)
{
    struct meta_batch *b = cloud__meta_batch_new(h, endpoint, cb, data);
    if (b == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    static const char *const hdrs[] = {"Metadata: true", NULL};
    cloud__meta_get(b, "GET", "/metadata/instance?api-version=2021-02-01", hdrs, on_instance);
    cloud__meta_release(b);
    return 0;
}
