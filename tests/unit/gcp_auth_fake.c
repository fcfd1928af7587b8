/* gcp_auth_fake: see gcp_auth_fake.h. */
#include "gcp_auth_fake.h"

#include "cg_http.h"

#include <stdio.h>
#include <stdlib.h>

struct pending {
    struct gcp_auth *a;
    gcp_token_cb *cb;
    void *data;
};

int gcp_key_file_parse(struct gcp_key_file *out, const char *json, size_t len, const char *source,
                       struct cg_err *err)
{
    return cg_err_set(err, CG_EINVAL, "gcp_auth_fake: no key files");
}

void gcp_key_file_cleanup(struct gcp_key_file *k)
{
}

int gcp_jwt_assertion(const struct gcp_key_file *k, const char *scope, int64_t now, char **out,
                      struct cg_err *err)
{
    return cg_err_set(err, CG_EINVAL, "gcp_auth_fake: no assertions");
}

int gcp_auth_new(struct gcp_auth **out, struct cg_http *h, const struct gcp_auth_env *env,
                 struct cg_err *err)
{
    struct gcp_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    a->http = h;
    a->generation = 1;
    *out = a;
    return 0;
}

void gcp_auth_free(struct gcp_auth *a)
{
    free(a);
}

const char *gcp_auth_project_hint(const struct gcp_auth *a)
{
    return "fake-project";
}

const char *gcp_auth_email(const struct gcp_auth *a)
{
    return NULL;
}

const char *gcp_auth_source(const struct gcp_auth *a)
{
    return "fake";
}

static void fire(void *data, int canceled)
{
    struct pending *p = data;
    struct gcp_auth *a = p->a;
    struct cg_err err = {0};
    char token[64];
    if (canceled) {
        cg_err_set(&err, CG_ECANCELED, "cancelled");
        p->cb(NULL, &err, p->data);
    } else if (a->fail_later) {
        cg_err_set(&err, CG_EAUTH, "GCP token from fake: invalid_grant: refused");
        p->cb(NULL, &err, p->data);
    } else if (a->token != NULL) {
        p->cb(a->token, NULL, p->data);
    } else {
        snprintf(token, sizeof(token), "fake-token-%d", a->generation);
        p->cb(token, NULL, p->data);
    }
    free(p);
}

int gcp_auth_get_token(struct gcp_auth *a, gcp_token_cb *cb, void *data, struct cg_err *err)
{
    a->gets++;
    if (a->fail_now) {
        return cg_err_set(err, CG_EAUTH, "GCP token: no credentials (fake)");
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    p->a = a;
    p->cb = cb;
    p->data = data;
    int rc = cg_http_after(a->http, 0, fire, p);
    if (rc < 0) {
        free(p);
        return cg_err_set(err, rc, "%s", cg_errc_str(rc));
    }
    return 0;
}

void gcp_auth_invalidate(struct gcp_auth *a)
{
    a->invalidations++;
    a->generation++;
}
