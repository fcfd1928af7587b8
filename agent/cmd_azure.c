/* agent/cmd_azure.c: plan, onboard, check [--fix], rotate and offboard on Azure. */
#include "cmd.h"

#include "azure/azure_auth.h"
#include "azure/azure_rest.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cmd_flow.h"
#include "cmd_out.h"
#include "handover.h"
#include "identity.h"
#include "profile.h"
#include "rc_azure.h"
#include "session.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct azure_ctx {
    const struct cg_options *o;
    cg_getenv_fn *getenv_fn;
    struct cmd_base *b; /* the session and the identity; borrowed */
    struct azure_auth *auth;
    struct azure_rest *api;
    struct profile *profile;
    const char *subscription; /* borrowed from the identity */
    char *cluster_group;      /* the AKS resource's resource group, from ARM */
    struct handover ho;
    int64_t started_at;
};

static const char *env_default(const char *name)
{
    return getenv(name);
}

struct rg_read {
    json_t *body;
    struct cg_err err;
};

static void on_rg(json_t *result, long status, const struct azure_error *aerr,
                  const struct cg_err *err, void *data)
{
    struct rg_read *r = data;
    if (err != NULL) {
        r->err = *err;
    } else {
        r->body = json_incref(result);
    }
}

/* AKS tags its node resource group with the cluster's name and resource group
 * (protocols.md 3.4): the authoritative source for both, which the nodes do not carry. */
static int read_cluster_group(struct azure_ctx *c, struct cg_err *err)
{
    struct k8s_identity *id = &c->b->id.k8s;
    if (id->node_resource_group == NULL) {
        return 0;
    }
    struct rg_read rr = {0};
    char path[512];
    snprintf(path, sizeof(path), "subscriptions/%s/resourceGroups/%s?api-version=2021-04-01",
             c->subscription, id->node_resource_group);
    char label[300];
    snprintf(label, sizeof(label), "read node resource group '%s'", id->node_resource_group);
    int rc =
        azure_rest_call(c->api, AZURE_API_ARM, "GET", path, NULL, NULL, label, 0, on_rg, &rr, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_run(c->b->s.http);
    if (rr.err.code != 0 && id->name == NULL && c->o->cluster_name == NULL) {
        /* the profile's names need the cluster's name, and this was the only way to learn it:
         * the real cause beats a later "needs {{cluster.name}}" */
        *err = rr.err;
        return cg_err_wrap(err, "cannot name the AKS cluster (pass --cluster-name, or fix "
                                "this)");
    }
    if (rr.err.code != 0) {
        /* without it only the subscription scope works; say so, do not fail here */
        CG_LOG(CG_LOG_WARN, "azure", "%s", rr.err.msg);
        return 0;
    }
    json_t *tags = json_object_get(rr.body, "tags");
    const char *name = json_string_value(json_object_get(tags, "aks-managed-cluster-name"));
    const char *group = json_string_value(json_object_get(tags, "aks-managed-cluster-rg"));
    if (group != NULL && group[0] != '\0') {
        c->cluster_group = strdup(group);
    }
    if (name != NULL && name[0] != '\0' && id->name == NULL) {
        id->name = strdup(name);
    }
    json_decref(rr.body);
    return 0;
}

void cg_azure_identity_enrich(struct cmd_base *b, const struct cg_options *o,
                              cg_getenv_fn *getenv_fn)
{
    struct k8s_identity *id = &b->id.k8s;
    cg_getenv_fn *ge = getenv_fn ? getenv_fn : env_default;
    const char *client = ge("AZURE_CLIENT_ID");
    /* Only with Azure credentials configured: a laptop must not wait for an IMDS that is
     * not there. */
    if (id->provider == NULL || strcmp(id->provider, "azure") != 0 || id->name != NULL ||
        id->node_resource_group == NULL || id->account == NULL || client == NULL ||
        client[0] == '\0' || b->s.http == NULL) {
        return;
    }
    struct azure_ctx c = {.o = o, .b = b, .getenv_fn = ge, .subscription = id->account};
    struct cg_err err = {0};
    struct azure_auth_env ae = {.getenv = ge == env_default ? NULL : ge,
                                .no_imds = o->no_metadata,
                                .allow_insecure_http = o->allow_insecure_http};
    struct azure_rest_config rcfg = {.getenv = ae.getenv,
                                     .allow_insecure_http = o->allow_insecure_http};
    if (azure_auth_new(&c.auth, b->s.http, &ae, &err) < 0 ||
        azure_rest_new(&c.api, b->s.http, c.auth, &rcfg, &err) < 0 ||
        read_cluster_group(&c, &err) < 0) {
        CG_LOG(CG_LOG_INFO, "identity", "AKS cluster name from ARM: %s", err.msg);
    }
    azure_rest_free(c.api);
    azure_auth_free(c.auth);
    cg_http_run(b->s.http); /* let the freed clients' callbacks come back */
    free(c.cluster_group);
}

static void on_prefetched(const char *access_token, const struct cg_err *err, void *data)
{
    (void)access_token;
    (void)err;
    (void)data;
}

static int setup(struct azure_ctx *c, struct cg_err *err)
{
    const struct cg_options *o = c->o;
    cg_getenv_fn *ge = c->getenv_fn == env_default ? NULL : c->getenv_fn;
    struct azure_auth_env ae = {
        .getenv = ge, .no_imds = o->no_metadata, .allow_insecure_http = o->allow_insecure_http};
    int rc = azure_auth_new(&c->auth, c->b->s.http, &ae, err);
    if (rc < 0) {
        return rc;
    }
    c->subscription = c->b->id.k8s.account;
    if (c->subscription == NULL) {
        return cg_err_set(err, CG_EINVAL,
                          "cannot tell which Azure subscription to work in: the nodes do not name "
                          "it; run where the nodes are AKS nodes (their providerID names the "
                          "subscription)");
    }
    struct azure_rest_config rcfg = {.getenv = ge, .allow_insecure_http = o->allow_insecure_http};
    rc = azure_rest_new(&c->api, c->b->s.http, c->auth, &rcfg, err);
    if (rc == 0) {
        /* The reconcile's first call is to Graph: its token comes in alongside the ARM token
         * and read below, instead of one round later (a failure here is the reconcile's to
         * report, when it asks again). */
        struct cg_err ignored = {0};
        azure_auth_get_token(c->auth, AZURE_GRAPH, on_prefetched, NULL, &ignored);
        rc = read_cluster_group(c, err);
    }
    if (rc == 0) {
        rc = handover_open(&c->ho, o, c->getenv_fn, c->b->s.http, &c->b->id, c->started_at, err);
    }
    if (rc < 0) {
        return rc;
    }
    const struct k8s_identity *id = &c->b->id.k8s;
    struct profile_vars vars = {
        .cluster_name = id->name,
        .cluster_id = id->id,
        .cluster_region = id->region,
        .cloud_account = c->subscription,
    };
    struct profile_overrides ov = {
        .azure_credential = o->azure_credential,
        .azure_federated_issuer = o->azure_federated_issuer,
        .azure_federated_subject = o->azure_federated_subject,
        .azure_grant = o->azure_grant,
    };
    rc = profile_load(&c->profile, o->profile, cmd_profiles_dir(o), &vars, &ov, err);
    if (rc == 0) {
        rc = profile_require(c->profile, "azure", err);
    }
    return rc;
}

static void teardown(struct azure_ctx *c)
{
    azure_rest_free(c->api);
    if (c->b->s.http != NULL) {
        cg_session_close(&c->b->s);
    }
    azure_auth_free(c->auth);
    handover_close(&c->ho);
    profile_free(c->profile);
    free(c->cluster_group);
}

static struct rc_azure_opts opts(struct azure_ctx *c, enum rc_mode mode)
{
    return (struct rc_azure_opts){
        .mode = mode,
        .api = c->api,
        .want = &c->profile->azure,
        .profile_name = c->profile->name,
        .subscription = c->subscription,
        .cluster_group = c->cluster_group,
        .node_group = c->b->id.k8s.node_resource_group,
        .delivered_key_id = c->ho.stored_found ? c->ho.stored.key_id : NULL,
        .key_record_known = c->ho.store_ready,
        .now = (int64_t)time(NULL),
    };
}

static int run_mode(void *ctx, enum rc_mode mode, void *res, struct cg_err *err)
{
    struct azure_ctx *c = ctx;
    struct rc_azure_opts ro = opts(c, mode);
    return rc_azure_run(c->b->s.http, &ro, res, err);
}

/* What the platform needs to act as the app: tenant, client id and the secret, or (federated)
 * which issuer and subject it must present. */
static json_t *credential_json(struct azure_ctx *c, const char *client_id, const char *key_id,
                               const char *secret)
{
    const struct profile_azure *w = &c->profile->azure;
    const char *tenant = azure_auth_tenant(c->auth);
    json_t *o = json_pack("{s:s, s:s?, s:s, s:s}", "type",
                          w->credential == PROFILE_AZURE_FEDERATED ? "azure-federated"
                                                                   : "azure-client-secret",
                          "tenantId", tenant, "subscriptionId", c->subscription, "clientId",
                          client_id ? client_id : "");
    if (o == NULL) {
        return NULL;
    }
    if (w->credential == PROFILE_AZURE_FEDERATED) {
        json_object_set_new(o, "issuer", json_string(w->federated_issuer));
        json_object_set_new(o, "subject", json_string(w->federated_subject));
        json_object_set_new(o, "audience", json_string("api://AzureADTokenExchange"));
        return o;
    }
    if (key_id == NULL || secret == NULL) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "keyId", json_string(key_id));
    json_object_set_new(o, "clientSecret", json_string(secret));
    return o;
}

static int remove_stale(struct azure_ctx *c, struct rc_azure_result *res, struct rc_list *changes,
                        struct cg_err *err)
{
    struct rc_azure_opts ro = opts(c, RC_MODE_APPLY);
    for (size_t i = 0; i < res->stale_count; i++) {
        int rc =
            rc_azure_remove_secret(c->b->s.http, &ro, res->app_object_id, res->stale_keys[i], err);
        if (rc < 0) {
            return rc;
        }
        rc_list_add(changes, "azure", "client-secret", res->app_name, res->stale_keys[i], RC_DELETE,
                    "replaced");
    }
    return 0;
}

/* After a converge: store a new secret, hand over what the platform must receive now, mark it
 * delivered, then remove the secrets it replaces. */
static int deliver_after(void *ctx, const char *kind, struct rc_list *entries, int drift,
                         void *resp, int *delivered, struct cg_err *err)
{
    struct azure_ctx *c = ctx;
    struct rc_azure_result *res = resp;
    const struct profile_azure *w = &c->profile->azure;
    struct handover *h = &c->ho;
    *delivered = 0;
    if (res->key_id != NULL) {
        int rc = handover_store_new(h, "azure", res->client_id, azure_auth_tenant(c->auth),
                                    res->key_id, res->secret, err);
        if (rc < 0) {
            return cg_err_wrap(err,
                               "client secret %s was added to app registration '%s' but could "
                               "not be stored (it will be replaced on the next run)",
                               res->key_id, res->app_name);
        }
    }
    const char *key_id = NULL;
    json_t *cred = NULL;
    if (w->credential == PROFILE_AZURE_SECRET && h->stored_found && !h->stored.delivered) {
        key_id = h->stored.key_id;
        cred = credential_json(c, res->client_id, key_id, h->stored.secret);
    } else if (w->credential == PROFILE_AZURE_FEDERATED && res->client_id != NULL) {
        cred = credential_json(c, res->client_id, NULL, NULL);
    }
    int rc = handover_send(h, kind, entries, drift, NULL, cred, cred, key_id, err);
    handover_wipe_json(cred);
    json_decref(cred);
    if (rc < 0) {
        if (key_id != NULL) {
            cg_err_wrap(err,
                        "client secret %s is kept in Secret %s/%s and will be handed over on the "
                        "next run",
                        key_id, h->store.ns, h->store.name);
        }
        return rc;
    }
    if (key_id != NULL) {
        rc = handover_mark_delivered(h, delivered, err);
    }
    /* Only a delivered secret may replace the others. */
    if (rc == 0 && res->stale_count > 0 && (*delivered || key_id == NULL)) {
        rc = remove_stale(c, res, entries, err);
    }
    return rc;
}

static void print_result(void *ctx, const char *verb, void *resp)
{
    struct azure_ctx *c = ctx;
    const struct rc_azure_result *res = resp;
    if (cmd_json_out(c->o)) {
        json_t *root = json_pack("{s:o}", "changes", cmd_entries_json(&res->entries, 0));
        if (res->resources.count > 0) {
            json_object_set_new(root, "resources", cmd_entries_json(&res->resources, 0));
        }
        cmd_print_json(root);
        return;
    }
    printf("%s: profile %s, Azure subscription %s, app registration %s%s%s%s\n", verb,
           c->profile->name, c->subscription, c->profile->azure.application.display_name,
           res->client_id ? " (client id " : "", res->client_id ? res->client_id : "",
           res->client_id ? ")" : "");
    cmd_print_entries(&res->entries, 0, stdout);
    printf("%zu change%s\n", res->entries.count, res->entries.count == 1 ? "" : "s");
}

/* rotate: a new secret is added, stored and delivered before the old ones are removed. */
static int rotate(void *ctx, void *resp, int *delivered, struct cg_err *err)
{
    struct azure_ctx *c = ctx;
    struct rc_azure_result *res = resp;
    struct rc_azure_opts ro = opts(c, RC_MODE_APPLY);
    char *old = c->ho.stored.key_id ? strdup(c->ho.stored.key_id) : NULL;
    int rc = rc_azure_add_secret(c->b->s.http, &ro, res->app_object_id, &res->key_id, &res->secret,
                                 &res->secret_end, err);
    if (rc == 0) {
        rc_list_add(&res->entries, "azure", "client-secret", res->app_name, res->key_id, RC_CREATE,
                    "rotated");
        if (old != NULL) {
            char **v = realloc(res->stale_keys, (res->stale_count + 1) * sizeof(char *));
            if (v != NULL) {
                res->stale_keys = v;
                res->stale_keys[res->stale_count++] = old;
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
    return &((struct rc_azure_result *)res)->entries;
}

static const char *principal(void *ctx, void *res)
{
    return ((struct azure_ctx *)ctx)->profile->azure.application.display_name;
}

static int has_new_key(void *res)
{
    return ((struct rc_azure_result *)res)->key_id != NULL;
}

static void cleanup(void *res)
{
    rc_azure_result_cleanup(res);
}

static void counts(void *ctx, unsigned long *reads, unsigned long *writes)
{
    struct azure_ctx *c = ctx;
    struct azure_rest_stats as = {0};
    if (c->api != NULL) {
        azure_rest_get_stats(c->api, &as);
    }
    *reads = as.reads;
    *writes = as.writes;
}

int cg_cmd_azure_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                     struct cg_run_stats *stats, struct cg_err *err)
{
    struct azure_ctx c = {.o = o, .b = b, .getenv_fn = getenv_fn ? getenv_fn : env_default};
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
        snprintf(where, sizeof(where), "Azure subscription %s", c.subscription);
        struct cmd_flow f = {
            .ctx = &c,
            .ho = &c.ho,
            .profile = c.profile->name,
            .where = where,
            .what = "app registration",
            .credential = "client secret",
            .hands_key = c.profile->azure.credential == PROFILE_AZURE_SECRET,
            .no_key = "uses a federated credential on Azure: there is no secret to rotate",
            .result_size = sizeof(struct rc_azure_result),
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
