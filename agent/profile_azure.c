/* profile_azure.c: the azure section of a grant profile (docs/profiles.md, "The azure
 * section"): an app registration in the cluster's tenant, the credential the platform gets (a
 * client secret that cloudgrant renews, or a federated identity credential that trusts the
 * platform's own tokens), and what the app's service principal is granted in the cluster's
 * subscription: built-in roles, or a custom role that cloudgrant owns (protocols.md 3.2, 3.3).
 *
 * The limits are Microsoft's where Microsoft states one (Graph: an application's description,
 * a federated credential's issuer and subject; ARM: role definition GUIDs) and cloudgrant's
 * where the reconcile relies on them (the app's name, which is how it finds the app again). */
#include "profile_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AZURE_APP_NAME_MAX        120
#define AZURE_APP_DESCRIPTION_MAX 1024 /* Graph, application.description */
#define AZURE_SECRET_DAYS_MAX     730
#define AZURE_SECRET_DAYS_DEFAULT 365
#define AZURE_RENEW_DAYS_DEFAULT  30
#define AZURE_FEDERATED_MAX       600 /* Graph, federatedIdentityCredential issuer and subject */
#define AZURE_ROLE_NAME_MAX       512

#define FILTER_HINT                                                                                \
    ": keep the cluster's part short with a filter, as in '{{cluster.name | sha1 | trunc 8}}'"
#define ISSUER_FORM                                                                                \
    "https://HOST[/PATH] without a query or a fragment, at most 600 characters, exactly as the "   \
    "platform's tokens carry it in 'iss'"
#define ACTION_FORM                                                                                \
    "PROVIDER/TYPE/.../VERB, the verb read, write, delete or action, '*' for a whole part, as "    \
    "in 'Microsoft.Compute/virtualMachines/*' or 'Microsoft.Network/*/read'"

static const char *const azure_keys[] = {"application", "credential", "secret",     "federated",
                                         "grant",       "roles",      "customRole", NULL};
static const char *const app_keys[] = {"displayName", "description", NULL};
static const char *const secret_keys[] = {"lifetimeDays", "renewBeforeDays", NULL};
static const char *const federated_keys[] = {"issuer", "subject", NULL};
static const char *const role_keys[] = {"role", "scope", NULL};
static const char *const custom_role_keys[] = {"name", "description", "actions", "scope", NULL};

/* Indexed by enum profile_azure_credential, _grant and _scope. */
static const char *const credentials[] = {"secret", "federated"};
static const char *const grants[] = {"builtin", "custom"};
static const char *const scopes[] = {"subscription", "clusterResourceGroups"};

/* Built-in roles known by name. A built-in role has the same GUID in every tenant and cloud
 * (Microsoft's "Azure built-in roles" list); any other role, custom ones included, is given by
 * its GUID. */
static const struct {
    const char *name;
    const char *id;
} builtin_roles[] = {
    {"Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"},
    {"Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7"},
    {"Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"},
    {"User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"},
    {"Virtual Machine Contributor", "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"},
    {"Network Contributor", "4d97b98b-1d4f-4787-a291-c67834d212e7"},
    {"Azure Kubernetes Service Contributor Role", "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8"},
};

#define BUILTIN_ROLE_COUNT (sizeof(builtin_roles) / sizeof(builtin_roles[0]))

static int oom(struct cg_err *err)
{
    return cg_err_set(err, CG_ENOMEM, "out of memory");
}

/* Characters, not bytes: names are often not ASCII, and Microsoft counts characters. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        n += (*p & 0xC0) != 0x80;
    }
    return n;
}

/* C0 controls, DEL, and the C1 controls U+0080..U+009F (C2 80..C2 9F in UTF-8). */
static int has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)) {
            return 1;
        }
    }
    return 0;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 8-4-4-4-12 hex digits, either case: what ARM calls a role definition's name. */
static int guid_ok(const char *s)
{
    if (strlen(s) != 36) {
        return 0;
    }
    for (size_t i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* A resource provider namespace: two or more dot-separated words ("Microsoft.Compute"). */
static int namespace_ok(const char *s, size_t len)
{
    size_t words = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_alnum(s[i])) {
                return 0;
            }
            continue;
        }
        if (i == start ||
            !((s[start] >= 'a' && s[start] <= 'z') || (s[start] >= 'A' && s[start] <= 'Z'))) {
            return 0;
        }
        words++;
        start = i + 1;
    }
    return words >= 2;
}

/* An Azure RBAC control-plane action: "*", or PROVIDER/TYPE[/...]/VERB, PROVIDER a namespace
 * or '*', every other part letters, digits, '.', '_' and '-', or a '*' standing for a whole
 * part; the last part is read, write, delete or action (as ARM's operations end) or '*'. */
static int action_ok(const char *s)
{
    static const char *const verbs[] = {"read", "write", "delete", "action"};
    if (strcmp(s, "*") == 0) {
        return 1;
    }
    const char *slash = strchr(s, '/');
    if (slash == NULL ||
        !((slash - s == 1 && s[0] == '*') || namespace_ok(s, (size_t)(slash - s)))) {
        return 0;
    }
    const char *part = slash + 1;
    for (;;) {
        const char *end = strchr(part, '/');
        size_t len = end ? (size_t)(end - part) : strlen(part);
        if (len == 0) {
            return 0;
        }
        int wildcard = len == 1 && part[0] == '*';
        for (size_t i = 0; !wildcard && i < len; i++) {
            if (!is_alnum(part[i]) && strchr("._-", part[i]) == NULL) {
                return 0;
            }
        }
        if (end == NULL) {
            for (size_t i = 0; !wildcard && i < sizeof(verbs) / sizeof(verbs[0]); i++) {
                wildcard = strlen(verbs[i]) == len && strncasecmp(part, verbs[i], len) == 0;
            }
            return wildcard;
        }
        part = end + 1;
    }
}

/* An OIDC issuer as Entra compares it with a token's 'iss': an https URL with a host and no
 * query or fragment (OpenID Connect Discovery 1.0), printable ASCII, Graph's 600 at most. */
static int issuer_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > AZURE_FEDERATED_MAX || strncmp(s, "https://", 8) != 0 || s[8] == '\0' || s[8] == '/') {
        return 0;
    }
    for (size_t i = 8; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '?' || s[i] == '#') {
            return 0;
        }
    }
    return 1;
}

/* A token's 'sub' as the platform presents it ("system:serviceaccount:ns:name", a GUID, ...):
 * no fixed form, 1 to 600 characters, one line. */
static int subject_ok(const char *s)
{
    size_t n = utf8_len(s);
    return n >= 1 && n <= AZURE_FEDERATED_MAX && !has_control(s);
}

/* A required name, after rendering: 1..max characters, no control characters. */
static int check_name(struct loader *ld, const yaml_node_t *node, const char *label,
                      const char *value, size_t max)
{
    char sh[SHOWN_MAX];
    char from[SHOWN_MAX + 32];
    size_t n = utf8_len(value);
    profile__origin(from, sizeof(from), node, value);
    if (n == 0) {
        return profile__fail_at(ld, node, CG_EINVAL, "%s is empty%s", label, from);
    }
    if (n > max) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "%s '%s'%s is %zu characters, at most %zu are allowed%s", label,
                                SHOWN(sh, value), from, n, max, from[0] ? FILTER_HINT : "");
    }
    if (has_control(value)) {
        return profile__fail_at(ld, node, CG_EINVAL, "%s '%s'%s contains a control character",
                                label, SHOWN(sh, value), from);
    }
    return 0;
}

/* One of two words under `key`, not a template: *out is the index of the word, `dflt` when the
 * key is absent; `flag` wins when given. */
static int choice(struct loader *ld, const yaml_node_t *map, const char *key, const char *label,
                  const char *const words[2], int dflt, const char *flag, const char *flag_value,
                  int *out)
{
    char sh[SHOWN_MAX];
    char *s = NULL;
    yaml_node_t *node = NULL;
    *out = dflt;
    int rc = profile__field_str(ld, map, key, label, 0, &s, &node);
    if (rc < 0) {
        return rc;
    }
    if (s != NULL && (strcmp(s, words[0]) == 0 || strcmp(s, words[1]) == 0)) {
        *out = strcmp(s, words[1]) == 0;
    } else if (s != NULL) {
        rc = profile__fail_at(ld, node, CG_EINVAL, "%s must be '%s' or '%s', not '%s'", label,
                              words[0], words[1], SHOWN(sh, s));
    }
    free(s);
    if (rc == 0 && flag != NULL && flag_value != NULL) {
        if (strcmp(flag_value, words[0]) == 0 || strcmp(flag_value, words[1]) == 0) {
            *out = strcmp(flag_value, words[1]) == 0;
        } else {
            rc = cg_err_set(ld->err, CG_EINVAL, "%s must be '%s' or '%s', not '%s'", flag, words[0],
                            words[1], SHOWN(sh, flag_value));
        }
    }
    return rc;
}

static int application(struct loader *ld, const yaml_node_t *azure, const yaml_node_t *app,
                       struct profile_azure *z)
{
    static const char label[] = "azure.application.displayName";
    yaml_node_t *node = NULL;
    int rc;
    if (app == NULL) {
        return profile__fail_at(ld, azure, CG_EINVAL,
                                "azure.application is missing: the azure section needs an app "
                                "registration with a 'displayName'");
    }
    cg_yaml_where(&ld->y, "azure.application");
    if ((rc = profile__field_str(ld, app, "displayName", label, 1, &z->application.display_name,
                                 &node)) < 0) {
        return rc;
    }
    if (z->application.display_name == NULL) {
        return profile__fail_at(ld, app, CG_EINVAL, "%s is missing", label);
    }
    if ((rc = check_name(ld, node, label, z->application.display_name, AZURE_APP_NAME_MAX)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "azure.application");
    if ((rc = profile__field_str(ld, app, "description", "azure.application.description", 1,
                                 &z->application.description, &node)) < 0) {
        return rc;
    }
    size_t n = z->application.description ? utf8_len(z->application.description) : 0;
    if (n > AZURE_APP_DESCRIPTION_MAX) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "azure.application.description is %zu characters, Graph allows %d",
                                n, AZURE_APP_DESCRIPTION_MAX);
    }
    return 0;
}

/* The secret's lifetime and when to replace it: checked whatever the credential, so a mistake
 * is found before someone switches to a secret. */
static int secret(struct loader *ld, const yaml_node_t *sect, struct profile_azure *z)
{
    yaml_node_t *life = cg_yaml_map_get(&ld->y, sect, "lifetimeDays");
    yaml_node_t *renew = cg_yaml_map_get(&ld->y, sect, "renewBeforeDays");
    long *lifetime = &z->secret_lifetime_days;
    long *before = &z->secret_renew_days;
    *lifetime = AZURE_SECRET_DAYS_DEFAULT;
    *before = AZURE_RENEW_DAYS_DEFAULT;
    int has = profile__days(life, lifetime);
    if (has < 0 || *lifetime < 1 || *lifetime > AZURE_SECRET_DAYS_MAX) {
        return profile__fail_at(ld, life, CG_EINVAL,
                                "azure.secret.lifetimeDays must be a number of days from 1 to %d",
                                AZURE_SECRET_DAYS_MAX);
    }
    int given = profile__days(renew, before);
    if (given < 0 || (given > 0 && *before >= *lifetime)) {
        return profile__fail_at(ld, renew, CG_EINVAL,
                                "azure.secret.renewBeforeDays must be a number of days from 0 to "
                                "%ld, less than lifetimeDays (%ld): else the secret would be "
                                "replaced as soon as it is made",
                                *lifetime - 1, *lifetime);
    }
    if (*before >= *lifetime) {
        return profile__fail_at(ld, life, CG_EINVAL,
                                "azure.secret.lifetimeDays %ld leaves no room for "
                                "renewBeforeDays' default of %d days: set renewBeforeDays below "
                                "%ld",
                                *lifetime, AZURE_RENEW_DAYS_DEFAULT, *lifetime);
    }
    return 0;
}

/* One field of azure.federated, rendered and checked; "" means "not set here". */
static int federated_field(struct loader *ld, const yaml_node_t *fed, const char *key,
                           const char *label, int (*ok)(const char *), const char *form, char **out)
{
    char sh[SHOWN_MAX];
    yaml_node_t *node = NULL;
    cg_yaml_where(&ld->y, "azure.federated");
    int rc = profile__field_str(ld, fed, key, label, 1, out, &node);
    if (rc < 0) {
        return rc;
    }
    if (*out != NULL && (*out)[0] == '\0') {
        free(*out);
        *out = NULL;
    }
    if (*out != NULL && !ok(*out)) {
        return profile__fail_at(ld, node, CG_EINVAL, "%s '%s' is not %s", label, SHOWN(sh, *out),
                                form);
    }
    return 0;
}

/* The flag when given (taken literally), else the profile's field. */
static int federated_value(struct loader *ld, const yaml_node_t *fed, const char *key,
                           const char *label, const char *flag, const char *flag_value,
                           int (*ok)(const char *), const char *form, char **out)
{
    char sh[SHOWN_MAX];
    if (flag_value == NULL || flag_value[0] == '\0') {
        return federated_field(ld, fed, key, label, ok, form, out);
    }
    cg_yaml_where(&ld->y, "azure.federated");
    int rc = profile__check_syntax(ld, fed, key, label); /* unused, but a typo is still one */
    if (rc < 0) {
        return rc;
    }
    if (!ok(flag_value)) {
        return cg_err_set(ld->err, CG_EINVAL, "%s '%s' is not %s", flag, SHOWN(sh, flag_value),
                          form);
    }
    *out = strdup(flag_value);
    return *out ? 0 : oom(ld->err);
}

static int federated(struct loader *ld, const yaml_node_t *fed, const struct profile_overrides *ov,
                     struct profile_azure *z)
{
    static const char subject_form[] =
        "a token subject: 1 to 600 characters without control characters";
    int rc;
    if ((rc = federated_value(ld, fed, "issuer", "azure.federated.issuer",
                              "--azure-federated-issuer", ov ? ov->azure_federated_issuer : NULL,
                              issuer_ok, "an OIDC issuer: " ISSUER_FORM, &z->federated_issuer)) <
            0 ||
        (rc = federated_value(ld, fed, "subject", "azure.federated.subject",
                              "--azure-federated-subject", ov ? ov->azure_federated_subject : NULL,
                              subject_ok, subject_form, &z->federated_subject)) < 0) {
        return rc;
    }
    if (z->federated_issuer != NULL && z->federated_subject != NULL) {
        return 0;
    }
    if (z->federated_issuer == NULL && z->federated_subject == NULL) {
        return cg_err_set(ld->err, CG_EINVAL,
                          "profile '%s': azure.credential is federated but neither "
                          "azure.federated.issuer nor azure.federated.subject is set: pass "
                          "--azure-federated-issuer URL and --azure-federated-subject SUBJECT",
                          ld->name);
    }
    int issuer = z->federated_issuer == NULL;
    return cg_err_set(ld->err, CG_EINVAL,
                      "profile '%s': azure.credential is federated but azure.federated.%s is not "
                      "set: pass --azure-federated-%s %s",
                      ld->name, issuer ? "issuer" : "subject", issuer ? "issuer" : "subject",
                      issuer ? "URL" : "SUBJECT");
}

/* A role by built-in name (any case) or by GUID; *id is the GUID in lower case. */
static int resolve_role(struct loader *ld, const yaml_node_t *node, const char *label,
                        const char *name, char **id)
{
    char sh[SHOWN_MAX];
    char known[384] = "";
    if (guid_ok(name)) {
        *id = strdup(name);
        if (*id == NULL) {
            return oom(ld->err);
        }
        for (char *p = *id; *p != '\0'; p++) {
            *p = *p >= 'A' && *p <= 'F' ? (char)(*p - 'A' + 'a') : *p;
        }
        return 0;
    }
    for (size_t i = 0; i < BUILTIN_ROLE_COUNT; i++) {
        if (strcasecmp(name, builtin_roles[i].name) == 0) {
            *id = strdup(builtin_roles[i].id);
            return *id ? 0 : oom(ld->err);
        }
    }
    for (size_t i = 0; i < BUILTIN_ROLE_COUNT; i++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", builtin_roles[i].name);
    }
    return profile__fail_at(ld, node, CG_EINVAL,
                            "%s '%s' is not a role known by name (%s): give any other role by its "
                            "role definition GUID, as in '%s'",
                            label, SHOWN(sh, name), known, builtin_roles[0].id);
}

static int role(struct loader *ld, const yaml_node_t *item, const char *at,
                struct profile_azure_role *r)
{
    char label[64];
    yaml_node_t *node = NULL;
    int scope = 0;
    int rc;
    if (item->type != YAML_MAPPING_NODE) {
        return profile__fail_at(ld, item, CG_EINVAL,
                                "%s must be a mapping with 'role' and 'scope', not a %s", at,
                                cg_yaml_kind(item));
    }
    cg_yaml_where(&ld->y, "%s", at);
    if ((rc = profile__check_keys(ld, item, role_keys)) < 0) {
        return rc;
    }
    snprintf(label, sizeof(label), "%s.role", at);
    if ((rc = profile__field_str(ld, item, "role", label, 1, &r->name, &node)) < 0) {
        return rc;
    }
    if (r->name == NULL || r->name[0] == '\0') {
        return profile__fail_at(ld, node ? node : item, CG_EINVAL, "%s is missing", label);
    }
    if ((rc = resolve_role(ld, node, label, r->name, &r->role_id)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "%s", at);
    snprintf(label, sizeof(label), "%s.scope", at);
    rc = choice(ld, item, "scope", label, scopes, PROFILE_AZURE_SUBSCRIPTION, NULL, NULL, &scope);
    r->scope = (enum profile_azure_scope)scope;
    return rc;
}

static int roles(struct loader *ld, const yaml_node_t *azure, struct profile_azure *z)
{
    yaml_node_t *seq = NULL;
    char sh[SHOWN_MAX];
    cg_yaml_where(&ld->y, "azure");
    int rc = cg_yaml_get_seq(&ld->y, azure, "roles", &seq, ld->err);
    size_t n = cg_yaml_seq_len(seq);
    if (rc < 0 || n == 0) {
        return rc;
    }
    z->roles = calloc(n, sizeof(*z->roles));
    if (z->roles == NULL) {
        return oom(ld->err);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cg_yaml_seq_at(&ld->y, seq, i);
        struct profile_azure_role *r = &z->roles[i];
        char at[48];
        snprintf(at, sizeof(at), "azure.roles[%zu]", i);
        z->role_count = i + 1; /* profile_free releases what was filled so far */
        if ((rc = role(ld, item, at, r)) < 0) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(z->roles[j].role_id, r->role_id) == 0 && z->roles[j].scope == r->scope) {
                return profile__fail_at(ld, cg_yaml_map_get(&ld->y, item, "role"), CG_EINVAL,
                                        "%s.role '%s' is listed twice with scope %s", at,
                                        SHOWN(sh, r->name), scopes[r->scope]);
            }
        }
    }
    return 0;
}

struct ranked {
    const char *s;
    size_t index;
};

/* Case-insensitive, then by position: the second of a group of equal actions comes second. */
static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a;
    const struct ranked *y = b;
    int c = strcasecmp(x->s, y->s);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first action that repeats an earlier one in any case: ARM matches action names without
 * regard to case (the built-in Contributor's notActions end in "Delete" and "Write" for
 * operations ARM names ".../delete" and ".../write"). *dup is its position, or n; *first the
 * earlier one. Sorting keeps this fast on a fuzzer's thousands of actions. */
static int first_repeat(char *const *v, size_t n, size_t *dup, size_t *first, struct cg_err *err)
{
    *dup = n;
    if (n < 2) {
        return 0;
    }
    struct ranked *r = calloc(n, sizeof(*r));
    if (r == NULL) {
        return oom(err);
    }
    for (size_t i = 0; i < n; i++) {
        r[i].s = v[i];
        r[i].index = i;
    }
    qsort(r, n, sizeof(*r), cmp_ranked);
    for (size_t i = 1; i < n; i++) {
        if (strcasecmp(r[i - 1].s, r[i].s) == 0 && r[i].index < *dup) {
            *dup = r[i].index;
            *first = r[i - 1].index;
        }
    }
    free(r);
    return 0;
}

static int actions(struct loader *ld, const yaml_node_t *cr, struct profile_azure *z)
{
    static const char at[] = "azure.customRole.actions";
    char sh[SHOWN_MAX];
    char sh2[SHOWN_MAX];
    yaml_node_t *seq = NULL;
    size_t dup = 0;
    size_t first = 0;
    cg_yaml_where(&ld->y, "azure.customRole");
    int rc = cg_yaml_get_seq(&ld->y, cr, "actions", &seq, ld->err);
    if (rc < 0) {
        return rc;
    }
    if (seq == NULL) {
        return profile__fail_at(ld, cr, CG_EINVAL,
                                "%s is missing: a custom role needs at least one action", at);
    }
    size_t n = cg_yaml_seq_len(seq);
    if (n == 0) {
        return profile__fail_at(ld, seq, CG_EINVAL,
                                "%s is empty: a custom role needs at least one action", at);
    }
    z->custom_role.actions = calloc(n, sizeof(*z->custom_role.actions));
    if (z->custom_role.actions == NULL) {
        return oom(ld->err);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cg_yaml_seq_at(&ld->y, seq, i);
        char label[64];
        const char *s = NULL;
        char **out = &z->custom_role.actions[i];
        snprintf(label, sizeof(label), "%s[%zu]", at, i);
        cg_yaml_where(&ld->y, NULL);
        if ((rc = cg_yaml_node_str(&ld->y, item, label, &s, ld->err)) < 0) {
            return rc;
        }
        if (s == NULL) {
            return profile__fail_at(ld, item, CG_EINVAL, "%s is empty", label);
        }
        z->custom_role.action_count = i + 1; /* profile_free releases what was filled so far */
        if ((rc = profile__render_at(ld, item, label, s, out)) < 0) {
            return rc;
        }
        if (!action_ok(*out)) {
            return profile__fail_at(ld, item, CG_EINVAL,
                                    "%s '%s' is not an Azure action: " ACTION_FORM, label,
                                    SHOWN(sh, *out));
        }
    }
    if ((rc = first_repeat(z->custom_role.actions, n, &dup, &first, ld->err)) < 0) {
        return rc;
    }
    if (dup < n) {
        const char *again = z->custom_role.actions[dup];
        const char *before = z->custom_role.actions[first];
        char as[SHOWN_MAX + 64] = "";
        if (strcmp(again, before) != 0) {
            snprintf(as, sizeof(as), " (as '%s': action names are not case-sensitive)",
                     SHOWN(sh2, before));
        }
        return profile__fail_at(ld, cg_yaml_seq_at(&ld->y, seq, dup), CG_EINVAL,
                                "%s[%zu] '%s' is listed twice%s", at, dup, SHOWN(sh, again), as);
    }
    /* ARM keeps actions as a set; sorted, two lists compare in one pass. */
    qsort(z->custom_role.actions, n, sizeof(*z->custom_role.actions), cmp_str);
    return 0;
}

/* Loaded whenever present, whatever the grant: with the builtin grant the reconcile does not
 * assign it, but can still find it by name (after a switch from custom, or to offboard). */
static int custom_role(struct loader *ld, const yaml_node_t *cr, struct profile_azure *z)
{
    static const char label[] = "azure.customRole.name";
    yaml_node_t *node = NULL;
    int scope = 0;
    int rc;
    if (cr == NULL) {
        return 0;
    }
    z->custom_role.present = 1;
    cg_yaml_where(&ld->y, "azure.customRole");
    if ((rc = profile__field_str(ld, cr, "name", label, 1, &z->custom_role.name, &node)) < 0) {
        return rc;
    }
    if (z->custom_role.name == NULL) {
        return profile__fail_at(ld, cr, CG_EINVAL, "%s is missing", label);
    }
    if ((rc = check_name(ld, node, label, z->custom_role.name, AZURE_ROLE_NAME_MAX)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "azure.customRole");
    if ((rc = profile__field_str(ld, cr, "description", "azure.customRole.description", 1,
                                 &z->custom_role.description, NULL)) < 0) {
        return rc;
    }
    /* By default the cluster's resource groups: a custom role is there for least privilege. */
    cg_yaml_where(&ld->y, "azure.customRole");
    if ((rc = choice(ld, cr, "scope", "azure.customRole.scope", scopes,
                     PROFILE_AZURE_CLUSTER_GROUPS, NULL, NULL, &scope)) < 0) {
        return rc;
    }
    z->custom_role.scope = (enum profile_azure_scope)scope;
    return actions(ld, cr, z);
}

/* A mapping of the azure section, checked for unknown keys. */
static int azure_section(struct loader *ld, const yaml_node_t *azure, const char *key,
                         const char *const *keys, yaml_node_t **out)
{
    char label[32];
    snprintf(label, sizeof(label), "azure.%s", key);
    cg_yaml_where(&ld->y, "azure");
    return profile__section(ld, azure, key, label, keys, out);
}

int profile__parse_azure(struct loader *ld, const yaml_node_t *azure,
                         const struct profile_overrides *ov, struct profile_azure *z)
{
    yaml_node_t *app = NULL;
    yaml_node_t *sec = NULL;
    yaml_node_t *fed = NULL;
    yaml_node_t *cr = NULL;
    int credential = 0;
    int grant = 0;
    int rc;

    z->present = 1;
    cg_yaml_where(&ld->y, "azure");
    if ((rc = profile__check_keys(ld, azure, azure_keys)) < 0 ||
        (rc = choice(ld, azure, "credential", "azure.credential", credentials, PROFILE_AZURE_SECRET,
                     "--azure-credential", ov ? ov->azure_credential : NULL, &credential)) < 0) {
        return rc;
    }
    z->credential = (enum profile_azure_credential)credential;
    cg_yaml_where(&ld->y, "azure");
    if ((rc = choice(ld, azure, "grant", "azure.grant", grants, PROFILE_AZURE_BUILTIN,
                     "--azure-grant", ov ? ov->azure_grant : NULL, &grant)) < 0) {
        return rc;
    }
    z->grant = (enum profile_azure_grant)grant;
    /* Every part is checked whatever the choices, so a typo in one not used today is found
     * before someone switches to it. */
    if ((rc = azure_section(ld, azure, "application", app_keys, &app)) < 0 ||
        (rc = azure_section(ld, azure, "secret", secret_keys, &sec)) < 0 ||
        (rc = azure_section(ld, azure, "federated", federated_keys, &fed)) < 0 ||
        (rc = azure_section(ld, azure, "customRole", custom_role_keys, &cr)) < 0 ||
        (rc = application(ld, azure, app, z)) < 0 || (rc = secret(ld, sec, z)) < 0) {
        return rc;
    }
    if (z->credential == PROFILE_AZURE_FEDERATED) {
        rc = federated(ld, fed, ov, z);
    } else {
        /* With a secret, azure.federated is not used: its templates are checked, not
         * rendered, so a typo is found before someone switches to federated. */
        cg_yaml_where(&ld->y, "azure.federated");
        if ((rc = profile__check_syntax(ld, fed, "issuer", "azure.federated.issuer")) == 0) {
            rc = profile__check_syntax(ld, fed, "subject", "azure.federated.subject");
        }
    }
    if (rc < 0 || (rc = roles(ld, azure, z)) < 0 || (rc = custom_role(ld, cr, z)) < 0) {
        return rc;
    }
    if (z->grant == PROFILE_AZURE_BUILTIN && z->role_count == 0) {
        return cg_err_set(ld->err, CG_EINVAL,
                          "profile '%s': azure.grant is builtin but azure.roles lists no role: "
                          "list the roles to assign (as '- role: Contributor')%s",
                          ld->name,
                          z->custom_role.present
                              ? ", or pass --azure-grant custom to assign azure.customRole"
                              : "");
    }
    if (z->grant == PROFILE_AZURE_CUSTOM && !z->custom_role.present) {
        return cg_err_set(
            ld->err, CG_EINVAL,
            "profile '%s': azure.grant is custom but there is no "
            "azure.customRole: add one to the profile%s",
            ld->name,
            z->role_count > 0 ? ", or pass --azure-grant builtin to assign azure.roles" : "");
    }
    return 0;
}

void profile__azure_free(struct profile_azure *z)
{
    free(z->application.display_name);
    free(z->application.description);
    free(z->federated_issuer);
    free(z->federated_subject);
    for (size_t i = 0; z->roles != NULL && i < z->role_count; i++) {
        free(z->roles[i].name);
        free(z->roles[i].role_id);
    }
    free(z->roles);
    free(z->custom_role.name);
    free(z->custom_role.description);
    for (size_t i = 0; z->custom_role.actions != NULL && i < z->custom_role.action_count; i++) {
        free(z->custom_role.actions[i]);
    }
    free(z->custom_role.actions);
}
