/* cloud/gcp/metadata.c: cluster identity from the GCE/GKE metadata server. */
#include "../meta_int.h"

#include "cg_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A reply without Metadata-Flavor: Google did not come from the metadata server (a captive
 * proxy or some other host answered): ignore it. */
static int genuine(long status, struct cg_http_req *req)
{
    const char *flavor = req ? cg_http_req_resp_header(req, "Metadata-Flavor") : NULL;
    return status == 200 && flavor != NULL && strcasecmp(flavor, "Google") == 0;
}

static void on_project(struct meta_batch *b, long status, const char *body, size_t len,
                       struct cg_http_req *req)
{
    if (genuine(status, req)) {
        cloud__meta_set(b, &b->m.account, body, len);
    }
}

static void on_zone(struct meta_batch *b, long status, const char *body, size_t len,
                    struct cg_http_req *req)
{
    if (!genuine(status, req) || body == NULL) {
        return;
    }
    /* "projects/<number>/zones/<zone>" */
    const char *slash = memrchr(body, '/', len);
    const char *z = slash ? slash + 1 : body;
    cloud__meta_set(b, &b->m.zone, z, len - (size_t)(z - body));
}

static void on_cluster_name(struct meta_batch *b, long status, const char *body, size_t len,
                            struct cg_http_req *req)
{
    if (genuine(status, req)) {
        cloud__meta_set(b, &b->m.cluster_name, body, len);
    }
}

static void on_cluster_location(struct meta_batch *b, long status, const char *body, size_t len,
                                struct cg_http_req *req)
{
    if (!genuine(status, req) || body == NULL) {
        return;
    }
    /* A zonal cluster's location is a zone ("europe-west1-b"); its region drops the suffix. */
    size_t n = len;
    while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == ' ')) {
        n--;
    }
    const char *dash = memrchr(body, '-', n);
    if (dash != NULL && (size_t)(body + n - dash) == 2 && dash[1] >= 'a' && dash[1] <= 'z') {
        n = (size_t)(dash - body);
    }
    cloud__meta_set(b, &b->m.region, body, n);
}

int cloud_gcp_metadata_identity(struct cg_http *h, const char *host, cloud_meta_cb *cb, void *data,
                                struct cg_err *err)
{
    char base[300];
    snprintf(base, sizeof(base), "http://%s/computeMetadata/v1", host);
    struct meta_batch *b = cloud__meta_batch_new(h, base, cb, data);
    if (b == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    static const char *const hdrs[] = {"Metadata-Flavor: Google", NULL};
    cloud__meta_get(b, "GET", "/project/project-id", hdrs, on_project);
    cloud__meta_get(b, "GET", "/instance/zone", hdrs, on_zone);
    cloud__meta_get(b, "GET", "/instance/attributes/cluster-name", hdrs, on_cluster_name);
    cloud__meta_get(b, "GET", "/instance/attributes/cluster-location", hdrs, on_cluster_location);
    cloud__meta_release(b);
    return 0;
}
