/* rc_aws: converge an AWS IAM user or role on what a profile says.
 *
 * Reads the actual state in two round trips (everything about the user or role at once,
 * tolerating NoSuchEntity; then the customer policies' default versions), compares it with
 * the profile, and, when asked to, applies the difference as a dependency graph. Only
 * principals and policies tagged managed-by=cloudgrant are ever changed or deleted. */
#ifndef CG_RC_AWS_H
#define CG_RC_AWS_H

#include "cg_err.h"
#include "profile.h"
#include "rc.h"

struct cg_http;
struct aws_query_client;

enum rc_mode {
    RC_MODE_PLAN = 0, /* list what onboard would do; no mutating call */
    RC_MODE_CHECK,    /* list drift; no mutating call */
    RC_MODE_APPLY,    /* onboard / check --fix: converge */
    RC_MODE_OFFBOARD, /* delete what cloudgrant created */
};

struct rc_aws_opts {
    enum rc_mode mode;
    struct aws_query_client *iam; /* borrowed */
    const struct profile_aws *want;
    const char *account;   /* 12 digits, from GetCallerIdentity */
    const char *partition; /* "aws", "aws-cn", "aws-us-gov" */
    const char *cluster_id;
    /* The access key id the platform already has (from the delivery record), NULL when
     * none: a live key that is not this one was never handed over and is replaced. */
    const char *delivered_key_id;
    int key_record_known; /* 0: no delivery record at all (check cannot judge keys) */
};

struct rc_aws_result {
    struct rc_list entries;   /* plan actions, drift, or the changes made */
    struct rc_list resources; /* the identity as it stands afterwards (apply) */
    char *principal_arn;
    char *access_key_id;     /* a key created by this run */
    char *secret_access_key; /* its secret: wipe with cg_secret_free */
    int critical_path;       /* longest chain of dependent writes */
    unsigned writes;         /* mutating calls made */
};

/* Runs the reconcile to completion on h's loop. Returns 0 (result filled; in apply mode a
 * partial failure still fills what was done and returns the first error) or <0 with err. */
int rc_aws_run(struct cg_http *h, const struct rc_aws_opts *o, struct rc_aws_result *res,
               struct cg_err *err);
void rc_aws_result_cleanup(struct rc_aws_result *r);

#endif
