/* rc_azure: converge an Azure app registration, its service principal, its credential and its
 * role assignments on what a profile says.
 *
 * The app registration is found and made through its uniqueName, derived from the
 * subscription, the profile and the display name: an upsert (PATCH with Prefer:
 * create-if-missing) is idempotent, so a retried or re-run creation can never make a second
 * app with the same name. Its tags carry "cloudgrant", which is what allows changing or
 * deleting it.
 *
 * Reads come in dependent rounds (the app, then its service principal and federated
 * credentials, then the principal's role assignments), writes in three: the app and the
 * custom role definition; the service principal and the credential (a client secret through
 * addPassword, or a federated identity credential); the role assignments, named by a UUIDv5
 * of (scope, role, principal) so a rerun PUTs the same names, and retried while a new
 * principal replicates to ARM. */
#ifndef CG_RC_AZURE_H
#define CG_RC_AZURE_H

#include "cg_err.h"
#include "profile.h"
#include "rc.h"
#include "rc_aws.h" /* enum rc_mode */

#include <stddef.h>
#include <stdint.h>

struct cg_http;
struct azure_rest;

struct rc_azure_opts {
    enum rc_mode mode;
    struct azure_rest *api; /* borrowed */
    const struct profile_azure *want;
    const char *profile_name;
    const char *subscription;
    /* The cluster's resource groups (the AKS resource's and its node resource group), for
     * the clusterResourceGroups scope; NULL when unknown. */
    const char *cluster_group;
    const char *node_group;
    /* The secret the platform already has (the delivery record's key id), NULL when none: a
     * secret that is not this one was never handed over and is replaced. */
    const char *delivered_key_id;
    int key_record_known; /* 0: no delivery record at all (check cannot judge secrets) */
    int64_t now;          /* wall clock, seconds: secret expiry */
};

struct rc_azure_result {
    struct rc_list entries;   /* plan actions, drift, or the changes made */
    struct rc_list resources; /* the identity as it stands afterwards (apply) */
    char *app_name;           /* the display name */
    char *client_id;          /* appId; NULL when there is no app */
    char *app_object_id;
    char *principal_id; /* the service principal's object id */
    char *key_id;       /* a client secret created by this run */
    char *secret;       /* its secretText: wipe with cg_secret_free */
    char *secret_end;   /* its endDateTime */
    char **stale_keys;  /* secrets other than the one handed over: removed by the caller
                           once the new one is delivered */
    size_t stale_count;
    int critical_path; /* phases of dependent writes */
};

/* Runs the reconcile to completion on h's loop. Returns 0 (result filled; in apply mode a
 * partial failure still fills what was done and returns the first error) or <0 with err. */
int rc_azure_run(struct cg_http *h, const struct rc_azure_opts *o, struct rc_azure_result *res,
                 struct cg_err *err);
void rc_azure_result_cleanup(struct rc_azure_result *r);

/* Adds a client secret to the app (rotate): key_id, secret (wipe) and end are the caller's. */
int rc_azure_add_secret(struct cg_http *h, const struct rc_azure_opts *o, const char *app_object_id,
                        char **key_id, char **secret, char **end, struct cg_err *err);
/* Removes one client secret of the app (rotate, stale secrets); one already gone is success. */
int rc_azure_remove_secret(struct cg_http *h, const struct rc_azure_opts *o,
                           const char *app_object_id, const char *key_id, struct cg_err *err);

/* Pure helpers, exposed for tests. */
/* A name-based UUID (RFC 4122 version 5, SHA-1) of `text` in cloudgrant's namespace, lower
 * case, into out (37 bytes). The same text always gives the same GUID. */
void rc_azure_uuid5(const char *text, char out[37]);
/* The app's uniqueName: "cloudgrant-" and 24 hex digits of SHA-1(subscription|profile|name). */
void rc_azure_unique_name(const char *subscription, const char *profile, const char *name,
                          char out[40]);

#endif
