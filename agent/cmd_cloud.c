/* agent/cmd_cloud.c: the session and identity a cloud command starts from, and which cloud
 * it acts on. */
#include "cmd.h"

#include "cg_http.h"
#include "cg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_base_open(struct cmd_base *b, uv_loop_t *loop, const struct cg_options *o,
                  cg_getenv_fn *getenv_fn, struct cg_err *err)
{
    memset(b, 0, sizeof(*b));
    int rc = cg_session_open_on(&b->s, loop, o, getenv_fn, err);
    if (rc < 0) {
        return cg_err_wrap(err, "cannot load the Kubernetes configuration");
    }
    if (o->cloud_ca != NULL) {
        /* a private CA for every cloud API (a TLS-inspecting proxy, a private cloud); the
         * Kubernetes API and the report endpoint keep their own */
        char *pem = NULL;
        size_t len = 0;
        rc = cg_file_read(o->cloud_ca, 1 << 20, &pem, &len, err);
        if (rc == 0) {
            rc = cg_http_set_default_ca(b->s.http, pem, len, err);
        }
        free(pem);
        if (rc < 0) {
            cg_err_wrap(err, "--cloud-ca");
            cg_session_close(&b->s);
            return CG_EINVAL;
        }
    }
    struct cg_identity_opts io = {
        .provider = o->provider,
        .cluster_name = o->cluster_name,
        .region = o->region,
        .no_metadata = o->no_metadata,
        .in_cluster = b->s.in_cluster,
        .getenv = getenv_fn,
    };
    rc = cg_identity_resolve(b->s.http, b->s.k8s, &io, &b->id, err);
    if (rc < 0) {
        cg_err_wrap(err, "cannot read the cluster identity");
        return CG_EIO; /* the configuration was valid; reaching the cluster failed: exit 1 */
    }
    b->id_ok = 1;
    return 0;
}

void cmd_base_close(struct cmd_base *b)
{
    cg_session_close(&b->s);
    if (b->id_ok) {
        cg_identity_cleanup(&b->id);
        b->id_ok = 0;
    }
}

int cg_cmd_cloud_on(uv_loop_t *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                    struct cg_run_stats *stats, struct cg_err *err)
{
    if (o->profile == NULL) {
        cg_err_set(err, CG_EINVAL,
                   "'%s' needs --profile NAME|PATH (built-in: node-autoscaler, platform-access)",
                   cg_command_name(o->command));
        return CG_EXIT_USAGE;
    }
    struct cmd_base b;
    int rc = cmd_base_open(&b, loop, o, getenv_fn, err);
    int code;
    if (rc == 0 && stats != NULL) {
        snprintf(stats->provider, sizeof(stats->provider), "%s", b.id.k8s.provider);
    }
    if (rc < 0) {
        code = rc == CG_EINVAL || rc == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
    } else if (strcmp(b.id.k8s.provider, "gcp") == 0) {
        code = cg_cmd_gcp_run(&b, o, getenv_fn, stats, err);
    } else if (strcmp(b.id.k8s.provider, "aws") == 0) {
        code = cg_cmd_aws_run(&b, o, getenv_fn, stats, err);
    } else if (strcmp(b.id.k8s.provider, "azure") == 0) {
        code = cg_cmd_azure_run(&b, o, getenv_fn, stats, err);
    } else if (strcmp(b.id.k8s.provider, "outscale") == 0) {
        code = cg_cmd_outscale_run(&b, o, getenv_fn, stats, err);
    } else {
        cg_err_set(err, CG_EINVAL,
                   "the cluster runs on '%s', and this version manages AWS, GCP, Azure and "
                   "OUTSCALE identities only; pass --provider aws|gcp|azure|outscale if the "
                   "cluster is on one of them after all",
                   b.id.k8s.provider);
        code = CG_EXIT_USAGE;
    }
    cmd_base_close(&b);
    return code;
}
