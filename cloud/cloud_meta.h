/* cloud_meta: what a cloud's instance metadata service says about the machine we run on, for
 * the cluster identity. Every lookup is short (about a second per attempt) because off the
 * cloud the link-local address does not answer at all, and every field it cannot learn stays
 * NULL. Endpoints are passed in (the agent reads the override variables). */
#ifndef CG_CLOUD_META_H
#define CG_CLOUD_META_H

#include "../agent/core/cg_err.h"

struct cg_http;

struct cloud_meta {
    char *account; /* AWS account ID, GCP project ID, Azure subscription ID */
    char *region;
    char *zone;
    char *cluster_name;
};

void cloud_meta_cleanup(struct cloud_meta *m);

/* err is set when the service could not be reached or refused us; m holds what was learnt
 * (possibly nothing) and is cleaned up by the callee after the callback returns. */
typedef void cloud_meta_cb(const struct cloud_meta *m, const struct cg_err *err, void *data);

/* AWS (and Outscale's EC2-compatible server): IMDSv2 token, instance identity document,
 * placement, and the eks:cluster-name instance tag when instance tags are exposed.
 * endpoint: base URL, e.g. "http://169.254.169.254". */
int cloud_aws_imds_identity(struct cg_http *h, const char *endpoint, cloud_meta_cb *cb, void *data,
                            struct cg_err *err);

/* GCE/GKE metadata server: project-id, zone, cluster-name and cluster-location attributes.
 * host: "metadata.google.internal" or GCE_METADATA_HOST's host[:port]. */
int cloud_gcp_metadata_identity(struct cg_http *h, const char *host, cloud_meta_cb *cb, void *data,
                                struct cg_err *err);

/* Azure IMDS instance document: subscription, location, AKS cluster-name tag.
 * endpoint: base URL, e.g. "http://169.254.169.254". */
int cloud_azure_imds_identity(struct cg_http *h, const char *endpoint, cloud_meta_cb *cb,
                              void *data, struct cg_err *err);

/* Timeouts used for every metadata call (milliseconds): exposed so tests can shorten them. */
extern long cloud_meta_attempt_timeout_ms;

#endif
