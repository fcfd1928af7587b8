/* handover: how a credential reaches the platform, the same for every provider.
 *
 * A new credential is first written to the credential Secret (credstore), marked undelivered;
 * then it goes out through the channels the user configured (the platform's report endpoint,
 * sealed when there is a seal key, and --credentials-out); only when a channel took it is the
 * Secret marked delivered. A crash anywhere in between leaves the credential in the Secret for
 * the next run to hand over, so nothing is lost and no second credential is made.
 * The providers build the credential document (what the platform needs to act); this module
 * never looks inside it except to wipe it. */
#ifndef CG_HANDOVER_H
#define CG_HANDOVER_H

#include "cg_err.h"
#include "credstore.h"
#include "identity.h"
#include "options.h"
#include "rc.h"
#include "report.h"

#include <jansson.h>
#include <stdint.h>

struct cg_http;
struct cg_seal_key;
struct lease;
struct k8s_client;

struct handover {
    const struct cg_options *o;   /* borrowed */
    struct cg_http *http;         /* borrowed */
    const struct cg_identity *id; /* borrowed */
    const char *profile;          /* borrowed profile name; set once the profile is loaded */
    int64_t started_at;
    struct report_config report;
    int report_on;
    struct cg_seal_key *seal;
    struct credstore store;
    int store_open;
    int store_ready;               /* the Secret was read: `stored` is what it holds */
    struct credstore_entry stored; /* owned */
    int stored_found;
    struct lease *lease; /* held while the run works on the credential; NULL when none */
};

/* The report endpoint (--report-url and its token) and the seal key. CG_EINVAL for bad
 * options. */
int handover_open(struct handover *h, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                  struct cg_http *http, const struct cg_identity *id, int64_t started_at,
                  struct cg_err *err);
/* The credential Secret for `profile` (--secret-name/--secret-namespace; CG_EINVAL when they
 * are unusable), and reading what it holds into `stored`. */
int handover_store_open(struct handover *h, struct k8s_client *k8s, const char *profile,
                        struct cg_err *err);
int handover_store_read(struct handover *h, struct cg_err *err);
/* Takes the Lease named like the credential Secret, in its namespace (lease.h), so that two
 * runs never work on one credential at once: after handover_store_open, before the first
 * read of the cloud. --lease-duration (default 30s) is how long it lasts without renewal; a
 * run waits up to ten times that for another to finish; 0 takes no Lease. */
int handover_lock(struct handover *h, struct cg_err *err);
/* Gives the Lease up; call before the session (and its Kubernetes client) closes. */
void handover_unlock(struct handover *h);
void handover_close(struct handover *h);

/* Whether a credential handed over would reach anyone (the platform or a file). */
int handover_has_channel(const struct handover *h);

/* Writes a new credential to the Secret, undelivered, replacing what was there. */
int handover_store_new(struct handover *h, const char *provider, const char *principal,
                       const char *account, const char *key_id, const char *secret,
                       struct cg_err *err);

/* Sends a report of `kind` about `entries` (drift: they are drift entries) with `cred` (the
 * credential document, sealed here when there is a seal key; NULL for none) and, when
 * `file_doc` is given and --credentials-out is set, writes file_doc there (0600, atomically).
 * `key_id` names the credential in the Idempotency-Key, so a re-delivery after a crash is
 * the same report; NULL for reports without a new credential. error: the failure message of a
 * failed run, or NULL. Returns 0 when every channel accepted. */
int handover_send(struct handover *h, const char *kind, const struct rc_list *entries, int drift,
                  const char *error, json_t *cred, json_t *file_doc, const char *key_id,
                  struct cg_err *err);

/* Marks the stored credential delivered, when a channel exists (a plain `check` has none and
 * leaves the credential owed). *delivered says whether it was marked. */
int handover_mark_delivered(struct handover *h, int *delivered, struct cg_err *err);

/* Wipes the string values of a credential document in place (before json_decref). */
void handover_wipe_json(json_t *doc);

#endif
