/* identity: the cluster identity that every command starts from (design.md, "identity"). */
#ifndef CG_AGENT_IDENTITY_H
#define CG_AGENT_IDENTITY_H

#include "cg_err.h"
#include "k8s_identity.h"

#include <stdio.h>

struct cg_http;
struct k8s_client;

struct cg_identity_opts {
    const char *provider;     /* --provider: the user's word wins over detection */
    const char *cluster_name; /* --cluster-name */
    const char *region;       /* --region */
    int no_metadata;
    int in_cluster; /* the agent runs on one of the cluster's nodes */
    const char *(*getenv)(const char *name);
};

struct cg_identity {
    struct k8s_identity k8s;
};

/* Reads the identity (Kubernetes API, then the metadata service) running the loop until
 * done. On success *out is filled and must be cleaned up by the caller. */
int cg_identity_resolve(struct cg_http *http, struct k8s_client *client,
                        const struct cg_identity_opts *opts, struct cg_identity *out,
                        struct cg_err *err);
void cg_identity_cleanup(struct cg_identity *id);

/* {"cluster":{"id","name","provider","region","account","kubernetesVersion","server"}} with
 * null for unknown fields; a new string the caller frees, NULL on ENOMEM. */
char *cg_identity_json(const struct cg_identity *id);
void cg_identity_print_text(const struct cg_identity *id, FILE *out);

#endif
