/* profile: a grant profile, the YAML document that states the identity a platform needs in
 * each cloud (README "Grant profiles"). It is data, not code: adding a policy or a role is a
 * change to a profile. Loading renders every template from the cluster identity, so what
 * comes out is exactly what the reconcile compares against the cloud. */
#ifndef CG_PROFILE_H
#define CG_PROFILE_H

#include "cg_err.h"

#include <stddef.h>

enum profile_aws_mode { PROFILE_AWS_USER = 0, PROFILE_AWS_ROLE };

struct profile_tag {
    char *key;
    char *value;
};

struct profile_policy {
    char *name;
    char *description; /* NULL when none */
    char *document;    /* rendered policy JSON (compact) */
};

struct profile_aws {
    int present; /* the profile has an aws section */
    enum profile_aws_mode mode;
    char *name;                 /* user or role name, rendered */
    char *path;                 /* IAM path, default "/" */
    char **managed_policy_arns; /* AWS-managed or existing policies to attach, rendered */
    size_t managed_count;
    struct profile_policy *customer_policies; /* created and owned by cloudgrant */
    size_t customer_count;
    struct profile_policy *inline_policies;
    size_t inline_count;
    int access_key; /* user mode: keep exactly one access key */
    /* role mode */
    char *trust_principal; /* ARN of the platform's principal */
    char *external_id;
    char *trust_policy;        /* rendered trust policy JSON (role mode) */
    long max_session_duration; /* 0 = IAM's default */
    struct profile_tag *tags;  /* extra tags besides cloudgrant's own */
    size_t tag_count;
};

enum profile_gcp_credential { PROFILE_GCP_KEY = 0, PROFILE_GCP_KEYLESS };

/* A project custom role that cloudgrant creates, owns, keeps exactly as here and binds to the
 * service account on the project. */
struct profile_gcp_role {
    char *id;           /* roleId, rendered: the role is projects/<project>/roles/<id> */
    char *title;        /* rendered, <= 100 bytes */
    char *description;  /* NULL when none; rendered, <= 300 bytes */
    char *stage;        /* ALPHA | BETA | GA (default) | DEPRECATED | DISABLED | EAP */
    char **permissions; /* rendered, sorted (strcmp), each listed once */
    size_t permission_count;
};

struct profile_gcp {
    int present; /* the profile has a gcp section */
    struct {
        char *id;           /* accountId, rendered: <id>@<project>.iam.gserviceaccount.com */
        char *display_name; /* NULL when none */
        char *description;  /* NULL when none */
    } service_account;
    char **services; /* APIs to enable, in the profile's order ("iam.googleapis.com") */
    size_t service_count;
    struct profile_gcp_role *custom_roles;
    size_t custom_role_count;
    char **roles; /* predefined roles bound on the project ("roles/compute.admin") */
    size_t role_count;
    enum profile_gcp_credential credential; /* key: exactly one cloudgrant-made key */
    /* keyless only (NULL otherwise), at least one of the two set: IAM members (for example
     * "serviceAccount:platform@p.iam.gserviceaccount.com") granted, on the service account
     * only, roles/iam.serviceAccountTokenCreator and roles/iam.workloadIdentityUser
     * respectively */
    char *impersonator;
    char *workload_identity_user;
};

enum profile_azure_credential { PROFILE_AZURE_SECRET = 0, PROFILE_AZURE_FEDERATED };
enum profile_azure_grant { PROFILE_AZURE_BUILTIN = 0, PROFILE_AZURE_CUSTOM };
/* Where a role is assigned (and a custom role may be assigned): the whole subscription, or
 * the cluster's resource groups (the one holding the AKS resource and its node resource
 * group, both known from the cluster identity at run time). */
enum profile_azure_scope { PROFILE_AZURE_SUBSCRIPTION = 0, PROFILE_AZURE_CLUSTER_GROUPS };

struct profile_azure_role {
    char *name;    /* as written: "Contributor" (a built-in known by name) or a role
                      definition GUID */
    char *role_id; /* the role definition GUID, lower case: Contributor ->
                      b24988ac-6180-42a0-ab88-20f7382dd24c */
    enum profile_azure_scope scope;
};

struct profile_azure {
    int present; /* the profile has an azure section */
    struct {
        char *display_name; /* rendered, 1..120: the app registration's name, which is how
                               cloudgrant finds it again (with its "cloudgrant" tag) */
        char *description;  /* NULL when none; rendered, <= 1024 */
    } application;
    enum profile_azure_credential credential;
    /* secret: one client secret made by cloudgrant, valid lifetime_days (1..730), replaced
     * by check --fix / onboard when fewer than renew_days (0..lifetime_days-1) remain */
    long secret_lifetime_days;
    long secret_renew_days;
    /* federated (NULL otherwise; both set then): the platform's token issuer (https URL) and
     * subject, trusted by a federated identity credential with audience
     * api://AzureADTokenExchange */
    char *federated_issuer;
    char *federated_subject;
    enum profile_azure_grant grant;   /* which of the two below is assigned */
    struct profile_azure_role *roles; /* built-in grant: role assignments */
    size_t role_count;
    struct {
        int present;
        char *name;        /* rendered roleName, 1..512, unique in the tenant */
        char *description; /* NULL when none */
        char **actions;    /* sorted (strcmp), each once, "*" wildcards allowed */
        size_t action_count;
        enum profile_azure_scope scope; /* assignable scope and assignment scope */
    } custom_role;
};

/* Every OUTSCALE user and policy cloudgrant makes lives under this EIM path: it is how
 * cloudgrant tells its own from the account's others, which it never changes or deletes. */
#define PROFILE_OSC_PATH "/cloudgrant/"

/* The outscale section: an EIM user, one policy that cloudgrant owns and links to it, and
 * exactly one access key made by cloudgrant and handed over (protocols.md 4.2). */
struct profile_outscale {
    int present;     /* the profile has an outscale section */
    char *user_name; /* rendered, 1..64 of [A-Za-z0-9+=,.@_-] */
    /* name: 1..128 of [A-Za-z0-9+=,.@_-]; description: NULL or <= 1000 bytes; document: the
       rendered policy (compact JSON, identity policy, <= 5120 non-whitespace characters) */
    struct profile_policy policy;
    /* The key expires key_lifetime_days (0..3650; 0 = never, unless the account caps key
     * lifetimes, then it gets the cap) after it is made, and is replaced when fewer than
     * key_renew_days (0..lifetime-1; 0 when the lifetime is 0) remain, or a third of a capped
     * lifetime if that is less (rc_osc_renew_window). A key without an expiry date is replaced
     * as if it had been made to expire key_lifetime_days after its creation. */
    long key_lifetime_days;
    long key_renew_days;
};

struct profile {
    char *name;
    char *description;
    char *source;           /* the file it was loaded from */
    struct profile_aws aws; /* at least one of aws, gcp, azure and outscale is present */
    struct profile_gcp gcp;
    struct profile_azure azure;
    struct profile_outscale outscale;
};

/* Values templates may use. NULL = unknown: a template that needs it fails with a message
 * that says which flag supplies it. */
struct profile_vars {
    const char *cluster_name;
    const char *cluster_id;
    const char *cluster_region;
    const char *cloud_account; /* AWS account id, GCP project id ({{cloud.project}} too), Azure
                                  subscription id ({{cloud.subscription}} too), OUTSCALE
                                  account id */
};

/* Command-line choices that win over the profile. NULL = keep the profile's. */
struct profile_overrides {
    const char *aws_mode; /* "user" | "role" */
    const char *aws_trust_principal;
    const char *aws_external_id;
    const char *gcp_credential;         /* "key" | "keyless" */
    const char *gcp_impersonator;       /* an IAM member; used when the credential is keyless */
    const char *azure_credential;       /* "secret" | "federated" */
    const char *azure_federated_issuer; /* used when the credential is federated */
    const char *azure_federated_subject;
    const char *azure_grant; /* "builtin" | "custom" */
};

/* Loads `name_or_path`: a path (contains '/' or ends in .yaml/.yml) or the name of a built-in
 * profile in `builtin_dir` (<dir>/<name>.yaml). Policy documents named by file are read
 * relative to the profile. Errors are CG_EINVAL with "<file>:<line>:<col>: <problem>" where
 * the problem is in the YAML, or naming the policy file. *out is the caller's on success.
 * Also CG_EINVAL: an unknown built-in name (the message lists the built-ins), a profile file
 * that does not exist, a template value this cluster does not reveal ("profile 'x': aws.user.name
 * needs {{cluster.name}}, which this cluster does not reveal: pass --cluster-name"), role mode
 * without a principal, a keyless GCP credential without a member to grant it, a federated Azure
 * credential without both an issuer and a subject, a profile with none of aws, gcp, azure and
 * outscale sections. Every section present is rendered and checked. CG_EIO: a file that exists but
 * cannot be read. CG_ETOOBIG: a profile over 1 MiB. CG_ENOMEM. The format, the
 * template syntax and every rule checked: docs/profiles.md. */
int profile_load(struct profile **out, const char *name_or_path, const char *builtin_dir,
                 const struct profile_vars *vars, const struct profile_overrides *ov,
                 struct cg_err *err);
void profile_free(struct profile *p);

/* 0 when p has a section for `provider` ("aws", "gcp", "azure", "outscale":
 * cloud_provider_name()); else CG_EINVAL "profile 'x' has no gcp section: ...", which is what a
 * command says when the cluster's cloud is not one the profile grants anything on. */
int profile_require(const struct profile *p, const char *provider, struct cg_err *err);

/* The same from a buffer: `source` names it in messages (and becomes profile->source); policy
 * files resolve against `dir`, and dir NULL refuses them (every document must then be inline),
 * which is what a profile from a ConfigMap or a fuzzer needs. */
int profile_load_buffer(struct profile **out, const char *buf, size_t len, const char *source,
                        const char *dir, const struct profile_vars *vars,
                        const struct profile_overrides *ov, struct cg_err *err);

/* Renders one template string ("cast-eks-{{cluster.name}}", "{{cluster.name | sha1 | trunc 8}}")
 * into a new string. Exposed for tests and the fuzzer. */
int profile_render(const char *tmpl, const struct profile_vars *vars, char **out,
                   struct cg_err *err);

#endif
