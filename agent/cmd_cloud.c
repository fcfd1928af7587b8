/* agent/cmd_cloud.c: which cloud a command acts on. */
#include "cmd.h"

#include "identity.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* The provider from --provider, else from the nodes alone (their providerID says it; no
 * metadata call is needed for that). *out is static. */
static int provider_of(uv_loop_t *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                       const char **out, struct cg_err *err)
{
    static const char *const known[] = {"aws", "gcp", "azure", "outscale"};
    const char *p = o->provider;
    struct cg_session s;
    struct cg_identity id;
    int resolved = 0;
    if (p == NULL) {
        int rc = cg_session_open_on(&s, loop, o, getenv_fn, err);
        if (rc < 0) {
            cg_err_wrap(err, "cannot load the Kubernetes configuration");
            return rc;
        }
        struct cg_identity_opts io = {
            .no_metadata = 1, .in_cluster = s.in_cluster, .getenv = getenv_fn};
        rc = cg_identity_resolve(s.http, s.k8s, &io, &id, err);
        cg_session_close(&s);
        if (rc < 0) {
            cg_err_wrap(err, "cannot read the cluster identity");
            return CG_EIO;
        }
        p = id.k8s.provider;
        resolved = 1;
    }
    *out = "unknown";
    for (size_t i = 0; p != NULL && i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(p, known[i]) == 0) {
            *out = known[i];
        }
    }
    if (resolved) {
        cg_identity_cleanup(&id);
    }
    return 0;
}

int cg_cmd_cloud_on(uv_loop_t *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                    struct cg_run_stats *stats, struct cg_err *err)
{
    const char *provider = NULL;
    int rc = provider_of(loop, o, getenv_fn, &provider, err);
    if (rc < 0) {
        return rc == CG_EINVAL || rc == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
    }
    if (strcmp(provider, "gcp") == 0) {
        return cg_cmd_gcp_on(loop, o, getenv_fn, stats, err);
    }
    if (strcmp(provider, "aws") == 0) {
        return cg_cmd_aws_on(loop, o, getenv_fn, stats, err);
    }
    cg_err_set(err, CG_EINVAL,
               "the cluster runs on '%s', and this version manages AWS and GCP identities only; "
               "pass --provider aws|gcp if the cluster is on one of them after all",
               provider);
    return CG_EXIT_USAGE;
}
