/* Internal to cloud/: a batch of metadata reads whose last completion reports the result. */
#ifndef CG_CLOUD_META_INT_H
#define CG_CLOUD_META_INT_H

#include "cloud_meta.h"

#include <stddef.h>

struct cg_http_req;
struct meta_batch;

/* Called with the response of one read (status 0 and body NULL when none arrived). */
typedef void meta_body_cb(struct meta_batch *b, long status, const char *body, size_t len,
                          struct cg_http_req *req);

struct meta_batch {
    struct cg_http *h;
    struct cloud_meta m;
    struct cg_err err; /* first failure */
    int pending;
    cloud_meta_cb *cb;
    void *data;
    char *base;  /* endpoint base URL */
    char *token; /* IMDSv2 session token: secret */
};

/* Creates a batch holding one reference; the caller releases it after submitting reads. */
struct meta_batch *cloud__meta_batch_new(struct cg_http *h, const char *base, cloud_meta_cb *cb,
                                         void *data);
/* Sends method base+path with headers ("Name: value", NULL-terminated). On a submit failure
 * the error is recorded and the callback is not called. */
void cloud__meta_get(struct meta_batch *b, const char *method, const char *path,
                     const char *const *headers, meta_body_cb *on_body);
/* Drops a reference; the last one reports to the caller and frees the batch. */
void cloud__meta_release(struct meta_batch *b);
/* Copies a response body, trimmed, into *field unless it is set already. */
void cloud__meta_set(struct meta_batch *b, char **field, const char *body, size_t len);

#endif
