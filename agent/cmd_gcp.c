/* agent/cmd_gcp.c: plan, onboard, check [--fix], rotate and offboard on GCP. */
#include "cmd.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cmd_flow.h"
#include "cmd_out.h"
#include "gcp/gcp_auth.h"
#include "gcp/gcp_rest.h"
#include "handover.h"
#include "identity.h"
#include "profile.h"
#include "rc_gcp.h"
#include "session.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

struct gcp_ctx {
    const struct cg_options *o;
    cg_getenv_fn *getenv_fn;
    struct cmd_base *b; /* the session and the identity; borrowed */
    struct gcp_auth *auth;
    struct gcp_rest *api;
    struct profile *profile;
    const char *project; /* borrowed from the identity or the key file */
    struct handover ho;
    int64_t started_at;
};

static const char *env_default(const char *name)
{
    return getenv(name);
}

static int setup(struct gcp_ctx *c, struct cg_err *err)
{
    const struct cg_options *o = c->o;
    int rc;
    struct gcp_auth_env ae = {
        .getenv = c->getenv_fn == env_default ? NULL : c->getenv_fn,
        .no_metadata = o->no_metadata,
    };
    rc = gcp_auth_new(&c->auth, c->b->s.http, &ae, err);
    if (rc < 0) {
        return rc;
    }
    /* The project is the cluster's (from its nodes); a key file's project stands in when the
     * cluster does not tell. */
    c->project = c->b->id.k8s.account ? c->b->id.k8s.account : gcp_auth_project_hint(c->auth);
    if (c->project == NULL) {
        return cg_err_set(err, CG_EINVAL,
                          "cannot tell which GCP project to work in: the nodes do not name it "
                          "and the credentials carry none; run where the nodes are GKE nodes, "
                          "or use a service-account key file that names its project_id");
    }
    if (c->b->id.k8s.account == NULL) {
        c->b->id.k8s.account = strdup(c->project);
        c->project = c->b->id.k8s.account;
    }
    struct gcp_rest_config rcfg = {
        .getenv = c->getenv_fn == env_default ? NULL : c->getenv_fn,
        .allow_insecure_http = o->allow_insecure_http,
    };
    rc = gcp_rest_new(&c->api, c->b->s.http, c->auth, &rcfg, err);
    if (rc < 0) {
        return rc;
    }
    rc = handover_open(&c->ho, o, c->getenv_fn, c->b->s.http, &c->b->id, c->started_at, err);
    if (rc < 0) {
        return rc;
    }
    const struct k8s_identity *id = &c->b->id.k8s;
    struct profile_vars vars = {
        .cluster_name = id->name,
        .cluster_id = id->id,
        .cluster_region = id->region,
        .cloud_account = c->project,
    };
    struct profile_overrides ov = {
        .gcp_credential = o->gcp_credential,
        .gcp_impersonator = o->gcp_impersonator,
    };
    rc = profile_load(&c->profile, o->profile, cmd_profiles_dir(o), &vars, &ov, err);
    if (rc == 0) {
        rc = profile_require(c->profile, "gcp", err);
    }
    return rc;
}

static void teardown(struct gcp_ctx *c)
{
    gcp_rest_free(c->api);
    if (c->b->s.http != NULL) {
        cg_session_close(&c->b->s);
    }
    gcp_auth_free(c->auth);
    handover_close(&c->ho);
    profile_free(c->profile);
}

static int run_mode(void *ctx, enum rc_mode mode, void *res, struct cg_err *err)
{
    struct gcp_ctx *c = ctx;
    struct rc_gcp_opts ro = {
        .mode = mode,
        .api = c->api,
        .want = &c->profile->gcp,
        .profile_name = c->profile->name,
        .project = c->project,
        .delivered_key_id = c->ho.stored_found ? c->ho.stored.key_id : NULL,
        .key_record_known = c->ho.store_ready,
    };
    return rc_gcp_run(c->b->s.http, &ro, res, err);
}

/* What the platform needs to act as the service account: its key, or (keyless) who may
 * impersonate it or use it through Workload Identity Federation. */
static json_t *credential_json(struct gcp_ctx *c, const char *email, const char *key_id,
                               const char *key_file)
{
    const struct profile_gcp *w = &c->profile->gcp;
    if (w->credential == PROFILE_GCP_KEYLESS) {
        /* impersonation when there is an impersonator, else Workload Identity Federation */
        json_t *o = json_pack("{s:s, s:s, s:s}", "type",
                              w->impersonator ? "gcp-impersonation" : "gcp-workload-identity",
                              "projectId", c->project, "serviceAccount", email);
        if (o != NULL && w->impersonator) {
            json_object_set_new(o, "impersonator", json_string(w->impersonator));
        }
        if (o != NULL && w->workload_identity_user) {
            json_object_set_new(o, "workloadIdentityUser", json_string(w->workload_identity_user));
        }
        return o;
    }
    if (key_id == NULL || key_file == NULL) {
        return NULL;
    }
    json_t *file = json_loads(key_file, 0, NULL);
    if (file == NULL) {
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "gcp-service-account-key", "projectId",
                     c->project, "serviceAccount", email, "keyId", key_id, "keyFile", file);
}

/* Deletes keys the platform no longer needs, once the new one is delivered. */
static int delete_stale(struct gcp_ctx *c, const char *email, char **ids, size_t n,
                        struct rc_list *changes, struct cg_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = rc_gcp_delete_key(c->b->s.http, c->api, c->project, email, ids[i], err);
        if (rc < 0) {
            return rc;
        }
        rc_list_add(changes, "gcp", "key", c->profile->gcp.service_account.id, ids[i], RC_DELETE,
                    "replaced");
    }
    return 0;
}

/* After a converge: store a new key, hand over what the platform must receive now (a new or
 * still undelivered key; keyless: who may impersonate), mark it delivered, then delete the
 * keys it replaces. */
static int deliver_after(void *ctx, const char *kind, struct rc_list *entries, int drift,
                         void *resp, int *delivered, struct cg_err *err)
{
    struct gcp_ctx *c = ctx;
    struct rc_gcp_result *res = resp;
    const struct profile_gcp *w = &c->profile->gcp;
    struct handover *h = &c->ho;
    *delivered = 0;
    if (res->key_id != NULL) {
        int rc =
            handover_store_new(h, "gcp", res->email, c->project, res->key_id, res->key_file, err);
        if (rc < 0) {
            return cg_err_wrap(err,
                               "key %s was created for service account '%s' but could not be "
                               "stored (it will be replaced on the next run)",
                               res->key_id, res->email);
        }
    }
    const char *key_id = NULL;
    json_t *cred = NULL;
    json_t *file = NULL;
    if (w->credential == PROFILE_GCP_KEY && h->stored_found && !h->stored.delivered) {
        key_id = h->stored.key_id;
        cred = credential_json(c, res->email, key_id, h->stored.secret);
        file = json_loads(h->stored.secret, 0, NULL);
    } else if (w->credential == PROFILE_GCP_KEYLESS) {
        cred = credential_json(c, res->email, NULL, NULL);
    }
    int rc = handover_send(h, kind, entries, drift, NULL, cred, file, key_id, err);
    handover_wipe_json(cred);
    handover_wipe_json(file);
    json_decref(cred);
    json_decref(file);
    if (rc < 0) {
        if (key_id != NULL) {
            cg_err_wrap(err,
                        "key %s is kept in Secret %s/%s and will be handed over on the next run",
                        key_id, h->store.ns, h->store.name);
        }
        return rc;
    }
    if (key_id != NULL) {
        rc = handover_mark_delivered(h, delivered, err);
    }
    /* Only a delivered key may replace the others. */
    if (rc == 0 && res->stale_count > 0 && (*delivered || key_id == NULL)) {
        rc = delete_stale(c, res->email, res->stale_keys, res->stale_count, entries, err);
    }
    return rc;
}

static void print_result(void *ctx, const char *verb, void *resp)
{
    struct gcp_ctx *c = ctx;
    const struct rc_gcp_result *res = resp;
    if (cmd_json_out(c->o)) {
        json_t *root = json_pack("{s:o}", "changes", cmd_entries_json(&res->entries, 0));
        if (res->resources.count > 0) {
            json_object_set_new(root, "resources", cmd_entries_json(&res->resources, 0));
        }
        cmd_print_json(root);
        return;
    }
    printf("%s: profile %s, GCP project %s, service account %s\n", verb, c->profile->name,
           c->project, res->email ? res->email : c->profile->gcp.service_account.id);
    cmd_print_entries(&res->entries, 0, stdout);
    printf("%zu change%s\n", res->entries.count, res->entries.count == 1 ? "" : "s");
}

/* rotate: a new key is created, stored and delivered before the old one is deleted. */
static int rotate(void *ctx, void *resp, int *delivered, struct cg_err *err)
{
    struct gcp_ctx *c = ctx;
    struct rc_gcp_result *res = resp;
    char *old = c->ho.stored.key_id ? strdup(c->ho.stored.key_id) : NULL;
    int rc = rc_gcp_create_key(c->b->s.http, c->api, c->project, res->email, &res->key_id,
                               &res->key_file, err);
    if (rc == 0) {
        rc_list_add(&res->entries, "gcp", "key", c->profile->gcp.service_account.id, res->key_id,
                    RC_CREATE, "rotated");
        if (old != NULL) {
            res->stale_keys = calloc(1, sizeof(char *));
            if (res->stale_keys != NULL) {
                res->stale_keys[0] = old;
                res->stale_count = 1;
                old = NULL;
            }
        }
        rc = deliver_after(c, "OnboardingReport", &res->entries, 0, res, delivered, err);
    }
    free(old);
    return rc;
}

static struct rc_list *entries(void *res)
{
    return &((struct rc_gcp_result *)res)->entries;
}

static const char *principal(void *ctx, void *res)
{
    const char *email = ((struct rc_gcp_result *)res)->email;
    return email ? email : ((struct gcp_ctx *)ctx)->profile->gcp.service_account.id;
}

static int has_new_key(void *res)
{
    return ((struct rc_gcp_result *)res)->key_id != NULL;
}

static void cleanup(void *res)
{
    rc_gcp_result_cleanup(res);
}

static void counts(void *ctx, unsigned long *reads, unsigned long *writes)
{
    struct gcp_ctx *c = ctx;
    struct gcp_rest_stats gs = {0};
    if (c->api != NULL) {
        gcp_rest_get_stats(c->api, &gs);
    }
    *reads = gs.reads;
    *writes = gs.writes;
}

int cg_cmd_gcp_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                   struct cg_run_stats *stats, struct cg_err *err)
{
    struct gcp_ctx c = {.o = o, .b = b, .getenv_fn = getenv_fn ? getenv_fn : env_default};
    c.started_at = (int64_t)time(NULL);
    int code;
    int rc = setup(&c, err);
    if (rc < 0) {
        code = rc == CG_EINVAL || rc == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
        if (stats != NULL) {
            counts(&c, &stats->reads, &stats->writes);
        }
    } else {
        char where[128];
        snprintf(where, sizeof(where), "GCP project %s", c.project);
        struct cmd_flow f = {
            .ctx = &c,
            .ho = &c.ho,
            .profile = c.profile->name,
            .where = where,
            .what = "service account",
            .credential = "key",
            .hands_key = c.profile->gcp.credential == PROFILE_GCP_KEY,
            .no_key = "is keyless on GCP: there is no key to rotate",
            .result_size = sizeof(struct rc_gcp_result),
            .entries = entries,
            .principal = principal,
            .run = run_mode,
            .deliver = deliver_after,
            .rotate = rotate,
            .has_new_key = has_new_key,
            .print = print_result,
            .cleanup = cleanup,
            .counts = counts,
        };
        code = cmd_flow_run(&f, o, c.b->s.k8s, stats, err);
    }
    teardown(&c);
    return code;
}
