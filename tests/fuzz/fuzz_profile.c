/* libFuzzer target: any bytes as a grant profile, loaded for a sample cluster in user mode, in
 * role mode with and without a principal, with a keyless GCP credential with and without a
 * member, and with the cluster name unknown. Policy files are refused (no directory), so a run
 * touches no file. Beyond the sanitizers it checks the contract: a failure is one non-empty
 * line with a known code and no result; a success has an aws or a gcp section (or both), a
 * rendered name IAM accepts, documents that are policies, and GCP lists that are sorted or
 * free of repeats as the loader promises. */
#include "policy.h"
#include "profile.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void check_doc(const char *doc, int kind)
{
    struct cg_err err = {0};
    if (doc == NULL || strstr(doc, "{{") != NULL) {
        abort();
    }
    json_t *j = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || policy_validate(j, (enum policy_kind)kind, &err) != 0) {
        abort();
    }
    json_decref(j);
    char *canon = policy_normalize_text(doc, &err);
    int eq = 0;
    if (canon == NULL || policy_equal_text(doc, canon, &eq, &err) != 0 || !eq) {
        abort();
    }
    free(canon);
}

static int rendered(const char *s)
{
    return s != NULL && s[0] != '\0' && strstr(s, "{{") == NULL;
}

/* No two equal strings; when `sorted`, also in strcmp order. */
static void check_set(char *const *v, size_t n, int sorted)
{
    for (size_t i = 0; i < n; i++) {
        if (!rendered(v[i])) {
            abort();
        }
        for (size_t j = 0; j < i; j++) {
            int c = strcmp(v[j], v[i]);
            if (c == 0 || (sorted && j == i - 1 && c > 0)) {
                abort();
            }
        }
    }
}

static void check_gcp(const struct profile_gcp *g)
{
    const char *id = g->service_account.id;
    if (!rendered(id) || strlen(id) < 6 || strlen(id) > 30 ||
        (g->service_account.display_name && strlen(g->service_account.display_name) > 100) ||
        (g->service_account.description && strlen(g->service_account.description) > 256)) {
        abort();
    }
    check_set(g->services, g->service_count, 0);
    check_set(g->roles, g->role_count, 0);
    for (size_t i = 0; i < g->service_count; i++) {
        if (strchr(g->services[i], '.') == NULL) {
            abort();
        }
    }
    for (size_t i = 0; i < g->role_count; i++) {
        if (strncmp(g->roles[i], "roles/", 6) != 0) {
            abort();
        }
    }
    for (size_t i = 0; i < g->custom_role_count; i++) {
        const struct profile_gcp_role *r = &g->custom_roles[i];
        if (!rendered(r->id) || !rendered(r->title) || r->stage == NULL ||
            r->permission_count == 0 || r->permission_count > 3000) {
            abort();
        }
        check_set(r->permissions, r->permission_count, 1);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(g->custom_roles[j].id, r->id) == 0) {
                abort();
            }
        }
    }
    if (g->credential == PROFILE_GCP_KEYLESS
            ? g->impersonator == NULL && g->workload_identity_user == NULL
            : g->impersonator != NULL || g->workload_identity_user != NULL) {
        abort();
    }
}

static void check_azure(const struct profile_azure *z)
{
    const char *name = z->application.display_name;
    if (!rendered(name) || strlen(name) > 4 * 120 || z->secret_lifetime_days < 1 ||
        z->secret_lifetime_days > 730 || z->secret_renew_days < 0 ||
        z->secret_renew_days >= z->secret_lifetime_days) {
        abort();
    }
    if (z->credential == PROFILE_AZURE_FEDERATED
            ? z->federated_issuer == NULL || z->federated_subject == NULL ||
                  strncmp(z->federated_issuer, "https://", 8) != 0
            : z->federated_issuer != NULL || z->federated_subject != NULL) {
        abort();
    }
    for (size_t i = 0; i < z->role_count; i++) {
        const char *id = z->roles[i].role_id;
        if (z->roles[i].name == NULL || id == NULL || strlen(id) != 36 ||
            strspn(id, "0123456789abcdef-") != 36) {
            abort();
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(z->roles[j].role_id, id) == 0 && z->roles[j].scope == z->roles[i].scope) {
                abort();
            }
        }
    }
    if ((z->grant == PROFILE_AZURE_BUILTIN && z->role_count == 0) ||
        (z->grant == PROFILE_AZURE_CUSTOM && !z->custom_role.present)) {
        abort();
    }
    if (!z->custom_role.present) {
        if (z->custom_role.name != NULL || z->custom_role.actions != NULL) {
            abort();
        }
        return;
    }
    if (!rendered(z->custom_role.name) || z->custom_role.action_count == 0) {
        abort();
    }
    check_set(z->custom_role.actions, z->custom_role.action_count, 1);
    for (size_t i = 1; i < z->custom_role.action_count; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(z->custom_role.actions[j], z->custom_role.actions[i]) == 0) {
                abort();
            }
        }
    }
}

static void check(int rc, const struct profile *p, const struct cg_err *err)
{
    if (rc != 0) {
        if (p != NULL || err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL || err->code != rc ||
            (rc != CG_EINVAL && rc != CG_ENOMEM && rc != CG_ETOOBIG)) {
            abort();
        }
        return;
    }
    if (p == NULL || p->name == NULL || p->source == NULL ||
        (!p->aws.present && !p->gcp.present && !p->azure.present && !p->outscale.present)) {
        abort();
    }
    const struct profile_outscale *o = &p->outscale;
    if (o->present) {
        if (!rendered(o->user_name) || strlen(o->user_name) > 64 || !rendered(o->policy.name) ||
            strlen(o->policy.name) > 128 || o->policy.document == NULL ||
            o->key_lifetime_days < 0 || o->key_lifetime_days > 3650 || o->key_renew_days < 0 ||
            (o->key_lifetime_days > 0 && o->key_renew_days >= o->key_lifetime_days) ||
            (o->key_lifetime_days == 0 && o->key_renew_days != 0)) {
            abort();
        }
    } else if (o->user_name != NULL || o->policy.name != NULL || o->policy.document != NULL) {
        abort();
    }
    if (p->azure.present) {
        check_azure(&p->azure);
    } else if (p->azure.application.display_name != NULL || p->azure.roles != NULL) {
        abort();
    }
    if (p->gcp.present) {
        check_gcp(&p->gcp);
    } else if (p->gcp.service_account.id != NULL || p->gcp.custom_roles != NULL) {
        abort();
    }
    const struct profile_aws *a = &p->aws;
    if (!a->present) {
        if (a->name != NULL || a->trust_policy != NULL || a->customer_policies != NULL) {
            abort();
        }
        return;
    }
    if (a->name == NULL || strlen(a->name) == 0 || strlen(a->name) > 64 || a->path == NULL ||
        strstr(a->name, "{{") != NULL) {
        abort();
    }
    for (size_t i = 0; i < a->customer_count; i++) {
        check_doc(a->customer_policies[i].document, POLICY_IDENTITY);
        if (policy_size_nonspace(a->customer_policies[i].document) > 6144) {
            abort();
        }
    }
    for (size_t i = 0; i < a->inline_count; i++) {
        check_doc(a->inline_policies[i].document, POLICY_IDENTITY);
    }
    if ((a->mode == PROFILE_AWS_ROLE) != (a->trust_policy != NULL)) {
        abort();
    }
    if (a->trust_policy != NULL) {
        check_doc(a->trust_policy, POLICY_TRUST);
        if (a->access_key || a->external_id == NULL || a->trust_principal == NULL) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct profile_vars known = {
        .cluster_name = "prod",
        .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
        .cluster_region = "eu-west-1",
        .cloud_account = "123456789012",
    };
    static const struct profile_vars no_name = {
        .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
        .cloud_account = "123456789012",
    };
    static const struct profile_overrides role = {
        .aws_mode = "role",
        .aws_trust_principal = "arn:aws:iam::210987654321:role/platform",
    };
    static const struct profile_overrides role_bare = {.aws_mode = "role"};
    static const struct profile_overrides keyless = {
        .gcp_credential = "keyless",
        .gcp_impersonator = "serviceAccount:platform@platform-1.iam.gserviceaccount.com",
    };
    static const struct profile_overrides keyless_bare = {.gcp_credential = "keyless"};
    static const struct profile_overrides federated = {
        .azure_credential = "federated",
        .azure_federated_issuer = "https://oidc.platform.example.com",
        .azure_federated_subject = "system:serviceaccount:platform:agent",
        .azure_grant = "custom",
    };
    static const struct profile_overrides federated_bare = {.azure_credential = "federated",
                                                            .azure_grant = "builtin"};
    const struct {
        const struct profile_vars *vars;
        const struct profile_overrides *ov;
    } runs[] = {{&known, NULL},       {&known, &role},          {&known, &role_bare},
                {&known, &keyless},   {&known, &keyless_bare},  {&no_name, NULL},
                {&known, &federated}, {&known, &federated_bare}};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        struct profile *p = NULL;
        struct cg_err err = {0};
        int rc = profile_load_buffer(&p, (const char *)data, size, "fuzz.yaml", NULL, runs[i].vars,
                                     runs[i].ov, &err);
        check(rc, p, &err);
        profile_free(p);
    }
    return 0;
}
