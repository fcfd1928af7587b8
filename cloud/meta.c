/* cloud/meta.c: the shared part of the metadata-service lookups. */
#include "meta_int.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Off the cloud, 169.254.169.254 never answers; a pod behind an IMDS hop limit of 1 gets no
 * reply either. A second is what the SDKs allow before falling through. */
long cloud_meta_attempt_timeout_ms = 1000;

void cloud_meta_cleanup(struct cloud_meta *m)
{
    free(m->account);
    free(m->region);
    free(m->zone);
    free(m->cluster_name);
    memset(m, 0, sizeof(*m));
}

struct meta_batch *cloud__meta_batch_new(struct cg_http *h, const char *base, cloud_meta_cb *cb,
                                         void *data)
{
    struct meta_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->base = strdup(base);
    if (b->base == NULL) {
        free(b);
        return NULL;
    }
    size_t n = strlen(b->base);
    while (n > 0 && b->base[n - 1] == '/') {
        b->base[--n] = '\0';
    }
    b->h = h;
    b->cb = cb;
    b->data = data;
    b->pending = 1;
    return b;
}

void cloud__meta_release(struct meta_batch *b)
{
    if (--b->pending > 0) {
        return;
    }
    b->cb(&b->m, b->err.code ? &b->err : NULL, b->data);
    cloud_meta_cleanup(&b->m);
    cg_secret_free(b->token);
    free(b->base);
    free(b);
}

struct meta_read {
    struct meta_batch *b;
    meta_body_cb *on_body;
};

static void on_done(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct meta_read *r = data;
    struct meta_batch *b = r->b;
    if (err != NULL) {
        CG_LOG(CG_LOG_DEBUG, "cloud", "metadata: %s", err->msg);
        if (b->err.code == 0) {
            b->err = *err;
        }
        r->on_body(b, 0, NULL, 0, req);
    } else {
        size_t len = 0;
        const char *body = cg_http_req_body(req, &len);
        r->on_body(b, cg_http_req_status(req), body, len, req);
    }
    free(r);
    cloud__meta_release(b);
}

void cloud__meta_get(struct meta_batch *b, const char *method, const char *path,
                     const char *const *headers, meta_body_cb *on_body)
{
    struct cg_err err = {0};
    struct meta_read *r = calloc(1, sizeof(*r));
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", b->base, path);
    struct cg_http_req *req = r ? cg_http_req_new(method, url) : NULL;
    int rc = req ? 0 : CG_ENOMEM;
    for (size_t i = 0; rc == 0 && headers != NULL && headers[i] != NULL; i++) {
        const char *colon = strchr(headers[i], ':');
        char name[128];
        size_t nl = colon ? (size_t)(colon - headers[i]) : 0;
        if (nl == 0 || nl >= sizeof(name)) {
            rc = CG_EINVAL;
            break;
        }
        memcpy(name, headers[i], nl);
        name[nl] = '\0';
        rc = cg_http_req_header(req, name, colon + 1 + (colon[1] == ' '));
    }
    if (rc == 0) {
        cg_http_req_set_attempt_timeout(req, cloud_meta_attempt_timeout_ms);
        cg_http_req_set_connect_timeout(req, cloud_meta_attempt_timeout_ms);
        cg_http_req_set_timeout(req, 3 * cloud_meta_attempt_timeout_ms);
        cg_http_req_set_max_attempts(req, 2);
        cg_http_req_set_max_body(req, 64 * 1024);
        /* The metadata address is link-local: never send it through a proxy. */
        rc = cg_http_req_set_proxy(req, "");
    }
    if (rc == 0) {
        r->b = b;
        r->on_body = on_body;
        b->pending++;
        rc = cg_http_submit(b->h, req, on_done, r, &err);
        if (rc < 0) {
            b->pending--;
        }
    } else {
        cg_err_set(&err, rc, "cannot build metadata request: %s", cg_errc_str(rc));
    }
    if (rc < 0) {
        cg_http_req_free(req);
        free(r);
        if (b->err.code == 0) {
            b->err = err;
        }
    }
}

void cloud__meta_set(struct meta_batch *b, char **field, const char *body, size_t len)
{
    if (*field != NULL || body == NULL) {
        return;
    }
    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' ')) {
        len--;
    }
    if (len == 0 || len > 256 || memchr(body, '\n', len) != NULL) {
        return; /* not a single value: not what we asked for */
    }
    *field = strndup(body, len);
    (void)b;
}
