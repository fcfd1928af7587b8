/* credstore: the Kubernetes Secret that holds a credential from the moment it exists until
 * the platform has it, and records whether it was delivered.
 *
 * A new access key is written here before it is reported; a crash between creation and
 * delivery leaves it in the Secret, marked undelivered, and the next run delivers the stored
 * key instead of creating another. The Secret is in the agent's own namespace, labelled
 * app.kubernetes.io/managed-by=cloudgrant, with the non-secret facts as annotations. */
#ifndef CG_CREDSTORE_H
#define CG_CREDSTORE_H

#include "cg_err.h"

struct k8s_client;

#define CREDSTORE_ANN_DELIVERED    "cloudgrant.io/delivered"
#define CREDSTORE_ANN_DELIVERED_AT "cloudgrant.io/delivered-at"
#define CREDSTORE_ANN_KEY_ID       "cloudgrant.io/access-key-id" /* any provider's key id */

/* Everything owned; secret is wiped by credstore_entry_cleanup. */
struct credstore_entry {
    char *provider;
    char *principal;
    char *account;
    char *key_id;
    char *secret;
    char *profile;
    int delivered;
    char *resource_version; /* from a read: makes the next write a compare-and-swap */
};
void credstore_entry_cleanup(struct credstore_entry *e);

struct credstore {
    struct k8s_client *k8s; /* borrowed */
    char *ns;
    char *name;
};

/* name NULL = "cloudgrant-<profile>"; ns NULL = the client's namespace. */
int credstore_init(struct credstore *s, struct k8s_client *k8s, const char *ns, const char *name,
                   const char *profile, struct cg_err *err);
void credstore_cleanup(struct credstore *s);

/* Reads the Secret, running the loop until done. *found = 0 when it does not exist. */
int credstore_read(struct credstore *s, struct credstore_entry *out, int *found,
                   struct cg_err *err);
/* Creates or replaces the Secret with e (delivered flag included), running the loop until
 * done. A concurrent writer (409 on create or on the resourceVersion) is an error: the caller
 * re-reads rather than overwriting a credential it did not see. */
int credstore_write(struct credstore *s, struct credstore_entry *e, struct cg_err *err);
/* Deletes the Secret (offboarding); a Secret already gone is success. */
int credstore_delete(struct credstore *s, struct cg_err *err);
/* Marks the stored credential delivered (a merge patch of the annotations). */
int credstore_mark_delivered(struct credstore *s, struct cg_err *err);

#endif
