/* agent/cmd_azure.c: plan, onboard, check [--fix], rotate and offboard on Azure. */
#include "cmd.h"

#include "azure/azure_auth.h"
#include "azure/azure_rest.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
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

static int run_mode(struct azure_ctx *c, enum rc_mode mode, struct rc_azure_result *res,
                    struct cg_err *err)
{
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
static int deliver_after(struct azure_ctx *c, const char *kind, struct rc_list *entries, int drift,
                         struct rc_azure_result *res, int *delivered, struct cg_err *err)
{
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

static void print_result(struct azure_ctx *c, const char *verb, const struct rc_azure_result *res)
{
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
static int rotate(struct azure_ctx *c, struct rc_azure_result *res, int *delivered,
                  struct cg_err *err)
{
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

int cg_cmd_azure_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                     struct cg_run_stats *stats, struct cg_err *err)
{
    struct azure_ctx c = {.o = o, .b = b, .getenv_fn = getenv_fn ? getenv_fn : env_default};
    struct rc_azure_result res = {0};
    struct rc_azure_result after = {0};
    int exit_code = CG_EXIT_FAIL;
    int rc;
    c.started_at = (int64_t)time(NULL);

    rc = setup(&c, err);
    if (rc < 0) {
        exit_code = rc == CG_EINVAL || rc == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
        goto out;
    }
    const struct profile_azure *w = &c.profile->azure;
    int hands_secret = w->credential == PROFILE_AZURE_SECRET;
    int mutates = o->command == CG_CMD_ONBOARD || o->command == CG_CMD_ROTATE ||
                  (o->command == CG_CMD_CHECK && o->fix);
    if (hands_secret && mutates && !handover_has_channel(&c.ho)) {
        cg_err_set(err, CG_EINVAL,
                   "profile '%s' hands a client secret over, and there is nowhere to hand it: "
                   "pass --report-url URL (the platform), or --credentials-out FILE",
                   c.profile->name);
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    if (o->command == CG_CMD_ROTATE && !hands_secret) {
        cg_err_set(err, CG_EINVAL,
                   "profile '%s' uses a federated credential on Azure: there is no secret to "
                   "rotate",
                   c.profile->name);
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    rc = handover_store_open(&c.ho, c.b->s.k8s, c.profile->name, err);
    if (rc < 0) {
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    if (hands_secret && handover_store_read(&c.ho, err) < 0) {
        goto out;
    }
    const char *app = w->application.display_name;
    switch (o->command) {
    case CG_CMD_PLAN:
        rc = run_mode(&c, RC_MODE_PLAN, &res, err);
        if (rc < 0) {
            goto out;
        }
        if (cmd_json_out(o)) {
            cmd_print_json(json_pack("{s:o}", "actions", cmd_entries_json(&res.entries, 0)));
        } else {
            print_result(&c, "plan", &res);
        }
        cmd_summarize(stats,
                      "plan: %zu change%s to app registration %s in Azure subscription %s "
                      "(profile %s)",
                      res.entries.count, res.entries.count == 1 ? "" : "s", app, c.subscription,
                      c.profile->name);
        exit_code = CG_EXIT_OK;
        break;
    case CG_CMD_CHECK: {
        rc = run_mode(&c, RC_MODE_CHECK, &res, err);
        if (rc < 0) {
            goto out;
        }
        exit_code = res.entries.count ? CG_EXIT_DRIFT : CG_EXIT_OK;
        int delivered = 0;
        struct rc_azure_result fixed = {0};
        if (o->fix && res.entries.count > 0) {
            rc = run_mode(&c, RC_MODE_APPLY, &fixed, err);
            if (rc == 0) {
                rc = deliver_after(&c, "DriftReport", &res.entries, 1, &fixed, &delivered, err);
            }
            rc_azure_result_cleanup(&fixed);
            if (rc < 0) {
                exit_code = CG_EXIT_FAIL;
                goto out;
            }
            rc = run_mode(&c, RC_MODE_CHECK, &after, err);
            if (rc < 0) {
                goto out;
            }
            exit_code = after.entries.count ? CG_EXIT_DRIFT : CG_EXIT_OK;
        } else {
            rc = deliver_after(&c, "DriftReport", &res.entries, 1, &fixed, &delivered, err);
            if (rc < 0) {
                exit_code = CG_EXIT_FAIL;
                goto out;
            }
        }
        if (cmd_json_out(o)) {
            json_t *root = json_pack("{s:o}", "drift", cmd_entries_json(&res.entries, 1));
            if (o->fix) {
                json_object_set_new(root, "remaining", cmd_entries_json(&after.entries, 1));
            }
            cmd_print_json(root);
        } else if (res.entries.count == 0) {
            printf("no drift: app registration %s matches profile %s\n", app, c.profile->name);
        } else {
            printf("drift: app registration %s differs from profile %s\n", app, c.profile->name);
            cmd_print_entries(&res.entries, 1, stdout);
            if (o->fix) {
                printf(after.entries.count ? "not repaired:\n" : "repaired\n");
                cmd_print_entries(&after.entries, 1, stdout);
            }
        }
        if (res.entries.count == 0) {
            cmd_summarize(stats,
                          "check: no drift; app registration %s in Azure subscription %s matches "
                          "profile %s",
                          app, c.subscription, c.profile->name);
        } else {
            cmd_summarize(stats,
                          "check: %zu drift entr%s on app registration %s in Azure subscription "
                          "%s%s",
                          res.entries.count, res.entries.count == 1 ? "y" : "ies", app,
                          c.subscription,
                          !o->fix               ? " (run check --fix to repair)"
                          : after.entries.count ? ", not all repaired"
                                                : ", repaired");
        }
        break;
    }
    case CG_CMD_ONBOARD:
    case CG_CMD_ROTATE: {
        rc = run_mode(&c, RC_MODE_APPLY, &res, err);
        int delivered = 0;
        if (rc < 0) {
            /* a secret created before the failure is still stored and handed over */
            struct cg_err derr = {0};
            if (res.key_id != NULL) {
                deliver_after(&c, "OnboardingReport", &res.entries, 0, &res, &delivered, &derr);
            } else if (c.ho.report_on) {
                handover_send(&c.ho, "OnboardingReport", &res.entries, 0, err->msg, NULL, NULL,
                              NULL, &derr);
            }
            print_result(&c, cg_command_name(o->command), &res);
            goto out;
        }
        if (o->command == CG_CMD_ROTATE && res.key_id == NULL) {
            rc = deliver_after(&c, "OnboardingReport", &res.entries, 0, &res, &delivered, err);
            if (rc == 0) {
                rc = rotate(&c, &res, &delivered, err);
            }
        } else {
            rc = deliver_after(&c, "OnboardingReport", &res.entries, 0, &res, &delivered, err);
        }
        print_result(&c, cg_command_name(o->command), &res);
        if (delivered && !cmd_json_out(o)) {
            printf("client secret %s handed over%s%s%s\n", c.ho.stored.key_id,
                   c.ho.report_on ? " to the platform" : "",
                   o->credentials_out && strcmp(o->credentials_out, "-") ? " and written to " : "",
                   o->credentials_out && strcmp(o->credentials_out, "-") ? o->credentials_out : "");
        }
        if (rc < 0) {
            goto out;
        }
        cmd_summarize(stats,
                      "%s: app registration %s in Azure subscription %s converged to profile %s, "
                      "%zu change%s%s%s%s",
                      cg_command_name(o->command), app, c.subscription, c.profile->name,
                      res.entries.count, res.entries.count == 1 ? "" : "s",
                      delivered ? "; client secret " : "", delivered ? c.ho.stored.key_id : "",
                      delivered ? " handed over" : "");
        exit_code = CG_EXIT_OK;
        break;
    }
    case CG_CMD_OFFBOARD: {
        rc = run_mode(&c, RC_MODE_OFFBOARD, &res, err);
        struct cg_err rerr = {0};
        int hrc = 0;
        if (rc == 0) {
            hrc = credstore_delete(&c.ho.store, &rerr);
            if (hrc == 0 && c.ho.report_on) {
                hrc = handover_send(&c.ho, "OffboardingReport", &res.entries, 0, NULL, NULL, NULL,
                                    NULL, &rerr);
            }
        } else if (c.ho.report_on) {
            handover_send(&c.ho, "OffboardingReport", &res.entries, 0, err->msg, NULL, NULL, NULL,
                          &rerr);
        }
        print_result(&c, "offboard", &res);
        if (rc == 0 && hrc < 0) {
            *err = rerr;
            rc = hrc;
        }
        if (rc < 0) {
            goto out;
        }
        cmd_summarize(stats, "offboard: %zu change%s of profile %s in Azure subscription %s",
                      res.entries.count, res.entries.count == 1 ? "" : "s", c.profile->name,
                      c.subscription);
        exit_code = CG_EXIT_OK;
        break;
    }
    default:
        cg_err_set(err, CG_EINVAL, "command '%s' does not apply to Azure",
                   cg_command_name(o->command));
        exit_code = CG_EXIT_USAGE;
        break;
    }
out:
    fflush(stdout);
    if (stats != NULL) {
        struct azure_rest_stats as = {0};
        if (c.api != NULL) {
            azure_rest_get_stats(c.api, &as);
        }
        stats->reads = as.reads;
        stats->writes = as.writes;
        stats->drift = o->command == CG_CMD_CHECK ? res.entries.count : 0;
        stats->remaining = o->fix ? after.entries.count : stats->drift;
    }
    rc_azure_result_cleanup(&res);
    rc_azure_result_cleanup(&after);
    teardown(&c);
    return exit_code;
}
