/* agent/identity.c: `cloudgrant identity`: the cluster's identity from the Kubernetes API,
 * completed by the cloud's metadata service when the agent runs inside that cloud. */
#include "identity.h"

#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cloud_meta.h"
#include "k8s_client.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

struct identity_run {
    struct cg_identity *out;
    struct cg_err err;
    const struct cg_identity_opts *opts;
    struct cg_http *http;
};

void cg_identity_cleanup(struct cg_identity *id)
{
    k8s_identity_cleanup(&id->k8s);
}

/* Metadata describes the machine we run on. It completes the cluster's identity only when
 * that machine is a node of the cluster (in-cluster), or when the user pointed us at a
 * metadata endpoint explicitly; a laptop on EC2 must not lend its account to a GKE cluster. */
static const char *metadata_endpoint(const struct cg_identity_opts *o, const char *provider,
                                     int in_cluster)
{
    if (o->no_metadata || provider == NULL) {
        return NULL;
    }
    const char *ep = NULL;
    const char *dflt = NULL;
    if (strcmp(provider, "aws") == 0 || strcmp(provider, "outscale") == 0) {
        const char *disabled = o->getenv("AWS_EC2_METADATA_DISABLED");
        if (disabled != NULL && strcasecmp(disabled, "true") == 0) {
            return NULL;
        }
        ep = o->getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
        dflt = "http://169.254.169.254";
    } else if (strcmp(provider, "gcp") == 0) {
        ep = o->getenv("GCE_METADATA_HOST");
        dflt = "metadata.google.internal";
    } else if (strcmp(provider, "azure") == 0) {
        ep = o->getenv("CLOUDGRANT_AZURE_IMDS_URL");
        dflt = "http://169.254.169.254";
    } else {
        return NULL;
    }
    if (ep != NULL && ep[0] != '\0') {
        return ep;
    }
    return in_cluster ? dflt : NULL;
}

/* Keeps the cluster's own word where it has one; metadata fills the gaps. A disagreement
 * is reported, not resolved by guessing. */
static void merge(char **field, const char *meta, const char *what)
{
    if (meta == NULL) {
        return;
    }
    if (*field == NULL) {
        *field = strdup(meta);
    } else if (strcmp(*field, meta) != 0) {
        CG_LOG(CG_LOG_WARN, "identity",
               "the nodes say %s '%s' but the metadata service says '%s'; keeping '%s'", what,
               *field, meta, *field);
    }
}

static void on_meta(const struct cloud_meta *m, const struct cg_err *err, void *data)
{
    struct identity_run *run = data;
    struct k8s_identity *id = &run->out->k8s;
    if (err != NULL) {
        CG_LOG(CG_LOG_INFO, "identity", "metadata service: %s", err->msg);
    }
    merge(&id->account, m->account, "account");
    merge(&id->region, m->region, "region");
    merge(&id->name, m->cluster_name, "cluster name");
    merge(&id->zone, m->zone, "zone");
}

static void on_k8s(struct k8s_identity *kid, const struct cg_err *err, void *data)
{
    struct identity_run *run = data;
    if (err != NULL) {
        run->err = *err;
        return;
    }
    /* take every field */
    run->out->k8s = *kid;
    memset(kid, 0, sizeof(*kid));

    const struct cg_identity_opts *o = run->opts;
    struct k8s_identity *id = &run->out->k8s;
    if (o->provider != NULL) {
        free(id->provider);
        id->provider = strdup(o->provider);
    }
    const char *ep = metadata_endpoint(o, id->provider, o->in_cluster);
    if (ep == NULL) {
        return;
    }
    struct cg_err e = {0};
    int rc;
    if (strcmp(id->provider, "gcp") == 0) {
        rc = cloud_gcp_metadata_identity(run->http, ep, on_meta, run, &e);
    } else if (strcmp(id->provider, "azure") == 0) {
        rc = cloud_azure_imds_identity(run->http, ep, on_meta, run, &e);
    } else {
        rc = cloud_aws_imds_identity(run->http, ep, on_meta, run, &e);
    }
    if (rc < 0) {
        CG_LOG(CG_LOG_INFO, "identity", "metadata service: %s", e.msg);
    }
}

static int set_override(char **field, const char *v, struct cg_err *err)
{
    if (v == NULL) {
        return 0;
    }
    free(*field);
    *field = strdup(v);
    return *field ? 0 : cg_err_set(err, CG_ENOMEM, "out of memory");
}

int cg_identity_resolve(struct cg_http *http, struct k8s_client *client,
                        const struct cg_identity_opts *opts, struct cg_identity *out,
                        struct cg_err *err)
{
    memset(out, 0, sizeof(*out));
    struct identity_run run = {.out = out, .opts = opts, .http = http};
    int rc = k8s_identity_fetch(client, on_k8s, &run, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_run(http);
    if (run.err.code != 0) {
        *err = run.err;
        cg_identity_cleanup(out);
        return err->code;
    }
    struct k8s_identity *id = &out->k8s;
    rc = set_override(&id->name, opts->cluster_name, err);
    if (rc == 0) {
        rc = set_override(&id->region, opts->region, err);
    }
    if (rc == 0 && id->provider == NULL) {
        rc = set_override(&id->provider, "unknown", err);
    }
    if (rc < 0) {
        cg_identity_cleanup(out);
    }
    return rc;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *cg_identity_json(const struct cg_identity *identity)
{
    const struct k8s_identity *id = &identity->k8s;
    json_t *cluster = json_object();
    if (cluster == NULL) {
        return NULL;
    }
    json_object_set_new(cluster, "id", str_or_null(id->id));
    json_object_set_new(cluster, "name", str_or_null(id->name));
    json_object_set_new(cluster, "provider", str_or_null(id->provider));
    json_object_set_new(cluster, "region", str_or_null(id->region));
    json_object_set_new(cluster, "account", str_or_null(id->account));
    json_object_set_new(cluster, "kubernetesVersion", str_or_null(id->version));
    json_object_set_new(cluster, "server", str_or_null(id->server));
    json_t *root = json_pack("{s:o}", "cluster", cluster);
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return s;
}

void cg_identity_print_text(const struct cg_identity *identity, FILE *out)
{
    const struct k8s_identity *id = &identity->k8s;
    const struct {
        const char *label;
        const char *value;
    } rows[] = {
        {"cluster id", id->id}, {"name", id->name},       {"provider", id->provider},
        {"region", id->region}, {"account", id->account}, {"kubernetes version", id->version},
        {"server", id->server},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        fprintf(out, "%-20s %s\n", rows[i].label, rows[i].value ? rows[i].value : "(unknown)");
    }
}
