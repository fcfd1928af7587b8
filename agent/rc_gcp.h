/* rc_gcp: converge a GCP service account on what a profile says.
 *
 * Order follows what GCP allows on a fresh project: the profile's APIs are enabled first
 * (IAM and Resource Manager may themselves be disabled), then the state is read in one round
 * of parallel calls (service account, custom roles, the project's IAM policy, keys, the
 * service account's own IAM policy), compared with the profile, and, when asked to, changed:
 * service account and custom roles together, then the project bindings (read-modify-write
 * with the etag, re-read and re-applied on a conflict, conditional and other parties'
 * bindings preserved), the key or the keyless grants.
 * Only a service account whose description mentions cloudgrant is changed or deleted. */
#ifndef CG_RC_GCP_H
#define CG_RC_GCP_H

#include "cg_err.h"
#include "profile.h"
#include "rc.h"
#include "rc_aws.h" /* enum rc_mode */

#include <jansson.h>
#include <stddef.h>

struct cg_http;
struct gcp_rest;

struct rc_gcp_opts {
    enum rc_mode mode;
    struct gcp_rest *api; /* borrowed */
    const struct profile_gcp *want;
    const char *profile_name;
    const char *project; /* project id */
    /* The key id the platform already has (from the delivery record), NULL when none: a live
     * key that is not this one was never handed over and is replaced. */
    const char *delivered_key_id;
    int key_record_known; /* 0: no delivery record at all (check cannot judge keys) */
};

struct rc_gcp_result {
    struct rc_list entries;   /* plan actions, drift, or the changes made */
    struct rc_list resources; /* the identity as it stands afterwards (apply) */
    char *email;              /* the service account's email */
    char *key_id;             /* a key created by this run */
    char *key_file;           /* its key file JSON: secret, wipe with cg_secret_free */
    char **stale_keys;        /* live keys other than the one handed over: deleted by the
                                 caller once the new key is delivered */
    size_t stale_count;
    int critical_path; /* phases of dependent writes */
};

/* Runs the reconcile to completion on h's loop. Returns 0 (result filled; in apply mode a
 * partial failure still fills what was done and returns the first error) or <0 with err. */
int rc_gcp_run(struct cg_http *h, const struct rc_gcp_opts *o, struct rc_gcp_result *res,
               struct cg_err *err);
void rc_gcp_result_cleanup(struct rc_gcp_result *r);

/* Deletes one user-managed key of the service account (rotate, stale keys). */
int rc_gcp_delete_key(struct cg_http *h, struct gcp_rest *api, const char *project,
                      const char *email, const char *key_id, struct cg_err *err);
/* Creates a key (rotate): key_id and key_file (secret) are the caller's. */
int rc_gcp_create_key(struct cg_http *h, struct gcp_rest *api, const char *project,
                      const char *email, char **key_id, char **key_file, struct cg_err *err);

/* Pure helpers, exposed for tests. */
/* Applies the wanted bindings of `member` to a policy in place: each role in `roles` gets an
 * unconditional binding with member; the member is removed from every other unconditional
 * binding it is in (when `prune`), and "deleted:<member>?uid=..." leftovers are removed.
 * Conditional bindings and other members are never touched. Returns 1 if it changed, 0 if
 * not, <0 on ENOMEM. */
int rc_gcp_policy_apply(json_t *policy, const char *member, const char *const *roles, size_t nroles,
                        int prune);

#endif
