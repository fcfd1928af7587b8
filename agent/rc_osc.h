/* rc_osc: converge an OUTSCALE EIM user, its policy, the policy's link to the user and its
 * access key on what a profile says (protocols.md 4.2).
 *
 * The user and the policy live under the EIM path PROFILE_OSC_PATH ("/cloudgrant/"): that is
 * how cloudgrant knows they are its own. A user or policy of the same name elsewhere is
 * refused, never adopted or changed. The policy is changed by a new default version (the old
 * ones deleted first, so there are never more than two); links to the user other than the
 * profile's policy are drift. The access key is exactly one, made by cloudgrant and handed
 * over, with an expiry date from the profile, capped by the account's API access policy
 * (MaxAccessKeyExpirationSeconds) when it has one. A key is removed in the two steps the API
 * requires for an EIM user: set INACTIVE, then deleted.
 *
 * Reads come in two rounds (the user, the policies and the account's access policy; then the
 * user's links and keys and the policy's document), writes in up to three phases: the user
 * and the policy; the link and the key; the removal of stale keys (only when no new key is
 * made: a new key is handed over first, and the caller removes what it replaces). */
#ifndef CG_RC_OSC_H
#define CG_RC_OSC_H

#include "cg_err.h"
#include "profile.h"
#include "rc.h"
#include "rc_aws.h" /* enum rc_mode */

#include <stddef.h>
#include <stdint.h>

struct cg_http;
struct osc_api;

struct rc_osc_opts {
    enum rc_mode mode;
    struct osc_api *api; /* borrowed */
    const struct profile_outscale *want;
    const char *profile_name;
    /* The key the platform already has (the delivery record's key id), NULL when none: a key
     * that is not this one was never handed over and is replaced. */
    const char *delivered_key_id;
    int key_record_known; /* 0: no delivery record at all (check cannot judge keys) */
    int64_t now;          /* wall clock, seconds: key age and expiry */
};

struct rc_osc_result {
    struct rc_list entries;   /* plan actions, drift, or the changes made */
    struct rc_list resources; /* the identity as it stands afterwards (apply) */
    char *user_id;            /* NULL when there is no user */
    char *policy_orn;         /* NULL when there is no policy */
    char *key_id;             /* an access key created by this run */
    char *secret;             /* its secret key: wipe with cg_secret_free */
    char *key_expiration;     /* its expiry (ISO 8601), NULL when it never expires */
    char **stale_keys;        /* keys other than the one handed over: removed by the caller
                                 once the new one is delivered */
    size_t stale_count;
    long max_key_seconds; /* the account's cap on key lifetimes (0: none), as read */
    int critical_path;    /* phases of dependent calls, reads included */
};

/* Runs the reconcile to completion on h's loop. Returns 0 (result filled; in apply mode a
 * partial failure still fills what was done and returns the first error) or <0 with err. */
int rc_osc_run(struct cg_http *h, const struct rc_osc_opts *o, struct rc_osc_result *res,
               struct cg_err *err);
void rc_osc_result_cleanup(struct rc_osc_result *r);

/* Makes an access key for the profile's user (rotate), with the expiry the profile and
 * max_key_seconds give: key_id, secret (wipe) and expiration (NULL: none) are the caller's. */
int rc_osc_add_key(struct cg_http *h, const struct rc_osc_opts *o, long max_key_seconds,
                   char **key_id, char **secret, char **expiration, struct cg_err *err);
/* Removes one access key of the profile's user: INACTIVE, then deleted. One already gone is
 * success. */
int rc_osc_remove_key(struct cg_http *h, const struct rc_osc_opts *o, const char *key_id,
                      struct cg_err *err);

/* Pure helper, exposed for tests: the expiry to give a new key, epoch seconds (0: none), from
 * the profile's lifetime and the account's cap (0: none). A capped expiry keeps 10 minutes
 * short of the cap, so clock skew cannot push it over. */
int64_t rc_osc_key_expiry(int64_t now, long lifetime_days, long max_key_seconds);
/* The renewal window, in seconds, for a key living `lifetime` seconds: renew_days, but never
 * more than a third of the lifetime (a cap of one day must not make every run a rotation). */
int64_t rc_osc_renew_window(int64_t lifetime, long renew_days);

#endif
