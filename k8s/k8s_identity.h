/* k8s_identity: what the Kubernetes API alone says about the cluster.
 *
 * id is the UID of namespace kube-system; version comes from /version; provider, region,
 * account and name come from the nodes' spec.providerID and well-known labels. A field that
 * the cluster does not reveal stays NULL: nothing is guessed. */
#ifndef CG_K8S_IDENTITY_H
#define CG_K8S_IDENTITY_H

#include "../agent/core/cg_err.h"

#include <jansson.h>

struct k8s_client;

struct k8s_identity {
    char *id;
    char *name;
    char *provider; /* "aws", "gcp", "azure", "outscale" or "unknown" */
    char *region;
    char *account;
    char *version; /* gitVersion, e.g. "v1.29.3-eks-adc7111" */
    char *server;
    /* Hints for enrichment from the cloud's metadata service. */
    char *zone;
    char *node_resource_group; /* AKS */
    int nodes_seen;
};

void k8s_identity_cleanup(struct k8s_identity *id);

/* Fills provider, region, account, name, zone and node_resource_group from a NodeList's
 * items (pure; exposed for tests and the fuzzer). Fields already set are kept. Returns 0 or
 * CG_ENOMEM. */
int k8s_identity_from_nodes(struct k8s_identity *id, json_t *items);

/* Reads /version, namespace kube-system and the node list (paginated) in parallel. done runs
 * once, from the loop (or before this returns 0 when none of the reads could be sent).
 * A 403 or 404 on one of them leaves its fields NULL (logged as a warning: the service
 * account may not be allowed to list nodes); any other failure fails the whole call.
 * `id` is filled on success and must be cleaned up by the caller in any case. */
/* The callback may take fields out of id (leaving NULL behind); the rest is freed after it. */
typedef void k8s_identity_cb(struct k8s_identity *id, const struct cg_err *err, void *data);
int k8s_identity_fetch(struct k8s_client *c, k8s_identity_cb *done, void *data, struct cg_err *err);

#endif
