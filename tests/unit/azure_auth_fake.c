/* azure_auth_fake: see azure_auth_fake.h. */
#include "azure_auth_fake.h"

#include "cg_http.h"

#include <stdio.h>
#include <stdlib.h>

struct pending {
    struct azure_auth *a;
    enum azure_resource res;
    azure_token_cb *cb;
    void *data;
};

int azure_auth_new(struct azure_auth **out, struct cg_http *h, const struct azure_auth_env *env,
                   struct cg_err *err)
{
    struct azure_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    a->http = h;
    for (int r = 0; r < AZURE_RESOURCE_COUNT; r++) {
        a->generation[r] = 1;
    }
    *out = a;
    return 0;
}

void azure_auth_free(struct azure_auth *a)
{
    free(a);
}

const char *azure_auth_source(const struct azure_auth *a)
{
    return "fake";
}

const char *azure_auth_tenant(const struct azure_auth *a)
{
    return "fake-tenant";
}

int azure_auth_parse_answer(const char *body, size_t len, long status, char **token,
                            int64_t *expires_in, struct cg_err *err)
{
    return cg_err_set(err, CG_EINVAL, "azure_auth_fake: no answers");
}

static void fire(void *data, int canceled)
{
    struct pending *p = data;
    struct azure_auth *a = p->a;
    struct cg_err err = {0};
    char token[64];
    if (canceled) {
        cg_err_set(&err, CG_ECANCELED, "cancelled");
        p->cb(NULL, &err, p->data);
    } else if (a->fail_later) {
        cg_err_set(&err, CG_EAUTH,
                   "Azure token (fake) for %s: invalid_client: AADSTS7000215: Invalid client "
                   "secret provided.",
                   p->res == AZURE_GRAPH ? "Graph" : "ARM");
        p->cb(NULL, &err, p->data);
    } else if (a->token != NULL) {
        p->cb(a->token, NULL, p->data);
    } else {
        snprintf(token, sizeof(token), "fake-%s-%d", p->res == AZURE_GRAPH ? "graph" : "arm",
                 a->generation[p->res]);
        p->cb(token, NULL, p->data);
    }
    free(p);
}

int azure_auth_get_token(struct azure_auth *a, enum azure_resource res, azure_token_cb *cb,
                         void *data, struct cg_err *err)
{
    a->gets[res]++;
    if (a->fail_now) {
        return cg_err_set(err, CG_EAUTH, "Azure token: no credentials (fake)");
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    p->a = a;
    p->res = res;
    p->cb = cb;
    p->data = data;
    int rc = cg_http_after(a->http, 0, fire, p);
    if (rc < 0) {
        free(p);
        return cg_err_set(err, rc, "%s", cg_errc_str(rc));
    }
    return 0;
}

void azure_auth_invalidate(struct azure_auth *a, enum azure_resource res)
{
    a->invalidations[res]++;
    a->generation[res]++;
}
