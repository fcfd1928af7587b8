/* aws_creds: the standard AWS credential chain, in the SDKs' order (botocore
 * create_credential_resolver): environment, web identity (IRSA), shared config/credentials
 * files with AWS_PROFILE, the container provider (EKS Pod Identity / ECS), IMDSv2.
 * Credentials are cached and refreshed five minutes before they expire. */
#ifndef CG_AWS_CREDS_H
#define CG_AWS_CREDS_H

#include "aws_sigv4.h"

struct cg_http;
struct aws_creds_provider;

/* Where the chain looks: injected so tests control every input. */
struct aws_env {
    const char *(*getenv)(const char *name); /* NULL = getenv(3) */
    const char *home;                        /* for ~/.aws; NULL = $HOME */
    /* Endpoints; NULL = the standard ones (after the AWS_* override variables). */
    const char *sts_endpoint;  /* base URL for AssumeRoleWithWebIdentity */
    const char *imds_endpoint; /* http://169.254.169.254 */
    long imds_timeout_ms;      /* 0 = 1000 */
};

int aws_creds_chain_new(struct aws_creds_provider **out, struct cg_http *h,
                        const struct aws_env *env, struct cg_err *err);
void aws_creds_provider_free(struct aws_creds_provider *p);

/* Delivers current credentials (borrowed for the callback: copy to keep). Calls made while a
 * refresh is in flight wait for it. 0: cb runs exactly once from the loop. <0: err filled.
 * A chain with no source fails with CG_EAUTH and a message listing what was tried. */
typedef void aws_creds_cb(const struct aws_credentials *creds, const struct cg_err *err,
                          void *data);
int aws_creds_get(struct aws_creds_provider *p, aws_creds_cb *cb, void *data, struct cg_err *err);
/* Forgets cached credentials (after an ExpiredToken answer). */
void aws_creds_invalidate(struct aws_creds_provider *p);

/* The region from AWS_REGION, AWS_DEFAULT_REGION or the profile; NULL when none (new
 * string, caller frees). */
char *aws_env_region(const struct aws_env *env);

#endif
