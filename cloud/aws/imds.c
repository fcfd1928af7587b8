/* cloud/aws/imds.c: cluster identity from the EC2 instance metadata service (IMDSv2). */
#include "../meta_int.h"

#include "cg_buf.h"
#include "cg_http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Instance tags that EKS puts on its nodes; IMDS exposes them only when the launch template
 * enables instance metadata tags. */
static const char *const cluster_tags[] = {"eks:cluster-name", "aws:eks:cluster-name"};

static void token_headers(struct meta_batch *b, char *buf, size_t len, const char *hdrs[2])
{
    snprintf(buf, len, "X-aws-ec2-metadata-token: %s", b->token);
    hdrs[0] = buf;
    hdrs[1] = NULL;
}

static void on_identity_doc(struct meta_batch *b, long status, const char *body, size_t len,
                            struct cg_http_req *req)
{
    if (status != 200) {
        return;
    }
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *acct = json_string_value(json_object_get(doc, "accountId"));
    const char *region = json_string_value(json_object_get(doc, "region"));
    const char *az = json_string_value(json_object_get(doc, "availabilityZone"));
    cloud__meta_set(b, &b->m.account, acct, acct ? strlen(acct) : 0);
    cloud__meta_set(b, &b->m.region, region, region ? strlen(region) : 0);
    cloud__meta_set(b, &b->m.zone, az, az ? strlen(az) : 0);
    json_decref(doc);
}

static void on_region(struct meta_batch *b, long status, const char *body, size_t len,
                      struct cg_http_req *req)
{
    if (status == 200) {
        cloud__meta_set(b, &b->m.region, body, len);
    }
}

static void on_tag_value(struct meta_batch *b, long status, const char *body, size_t len,
                         struct cg_http_req *req)
{
    if (status == 200) {
        cloud__meta_set(b, &b->m.cluster_name, body, len);
    }
}

static void on_tag_list(struct meta_batch *b, long status, const char *body, size_t len,
                        struct cg_http_req *req)
{
    if (status != 200 || body == NULL) {
        return; /* 404: instance tags are not exposed in metadata */
    }
    for (size_t i = 0; i < sizeof(cluster_tags) / sizeof(cluster_tags[0]); i++) {
        const char *t = cluster_tags[i];
        size_t tl = strlen(t);
        for (const char *p = body; p != NULL && p < body + len;) {
            const char *e = memchr(p, '\n', (size_t)(body + len - p));
            size_t l = e ? (size_t)(e - p) : (size_t)(body + len - p);
            if (l == tl && memcmp(p, t, tl) == 0) {
                char path[256], hb[4200];
                const char *hdrs[2];
                snprintf(path, sizeof(path), "/latest/meta-data/tags/instance/%s", t);
                token_headers(b, hb, sizeof(hb), hdrs);
                cloud__meta_get(b, "GET", path, hdrs, on_tag_value);
                cg_wipe(hb, sizeof(hb));
                return;
            }
            p = e ? e + 1 : NULL;
        }
    }
}

static void on_token(struct meta_batch *b, long status, const char *body, size_t len,
                     struct cg_http_req *req)
{
    /* 403/404/405 mean IMDSv2 is unavailable here; no answer means we are not on EC2 (or the
     * hop limit drops the reply to a pod). Either way the fields stay unknown. */
    if (status != 200 || body == NULL || len == 0 || len > 4096) {
        return;
    }
    b->token = strndup(body, len);
    if (b->token == NULL) {
        return;
    }
    char hb[4200];
    const char *hdrs[2];
    token_headers(b, hb, sizeof(hb), hdrs);
    cloud__meta_get(b, "GET", "/latest/dynamic/instance-identity/document", hdrs, on_identity_doc);
    cloud__meta_get(b, "GET", "/latest/meta-data/placement/region", hdrs, on_region);
    cloud__meta_get(b, "GET", "/latest/meta-data/tags/instance", hdrs, on_tag_list);
    cg_wipe(hb, sizeof(hb));
}

int cloud_aws_imds_identity(struct cg_http *h, const char *endpoint, cloud_meta_cb *cb, void *data,
                            struct cg_err *err)
{
    struct meta_batch *b = cloud__meta_batch_new(h, endpoint, cb, data);
    if (b == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    static const char *const hdrs[] = {"X-aws-ec2-metadata-token-ttl-seconds: 300", NULL};
    cloud__meta_get(b, "PUT", "/latest/api/token", hdrs, on_token);
    cloud__meta_release(b);
    return 0;
}
