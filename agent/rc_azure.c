/* agent/rc_azure.c: the Azure reconcile (rc_azure.h). */
#include "rc_azure.h"

#include "azure/azure_rest.h"
#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "handover.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARM_AUTHZ_VERSION "api-version=2022-04-01"
#define FIC_AUDIENCE      "api://AzureADTokenExchange"
#define DAY               86400

/* ---- pure helpers ---- */

/* cloudgrant's UUIDv5 namespace: a random GUID, fixed forever (changing it renames every
 * role assignment cloudgrant ever made). */
static const unsigned char NAMESPACE[16] = {0x5c, 0x1e, 0x0f, 0x4e, 0x8f, 0x1a, 0x4b, 0x8e,
                                            0x9d, 0x6c, 0x2a, 0x7b, 0x3f, 0x0d, 0x9e, 0x11};

/* SHA-1 over up to four parts (NULL ends the list early). */
static void sha1_parts(unsigned char md[20], const void *a, size_t alen, const char *b,
                       const char *c, const char *d)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    memset(md, 0, 20);
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return;
    }
    EVP_DigestUpdate(ctx, a, alen);
    const char *rest[] = {b, c, d};
    for (size_t i = 0; i < 3 && rest[i] != NULL; i++) {
        EVP_DigestUpdate(ctx, rest[i], strlen(rest[i]));
    }
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
}

void rc_azure_uuid5(const char *text, char out[37])
{
    unsigned char md[20];
    sha1_parts(md, NAMESPACE, sizeof(NAMESPACE), text, NULL, NULL);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
             md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12],
             md[13], md[14], md[15]);
}

void rc_azure_unique_name(const char *subscription, const char *profile, const char *name,
                          char out[40])
{
    unsigned char md[20];
    char *key = NULL;
    if (asprintf(&key, "%s|%s|", subscription, profile) < 0) {
        key = NULL;
    }
    sha1_parts(md, key ? key : "", key ? strlen(key) : 0, name, NULL, NULL);
    free(key);
    int n = snprintf(out, 40, "cloudgrant-");
    for (int i = 0; i < 12; i++) {
        n += snprintf(out + n, (size_t)(40 - n), "%02x", md[i]);
    }
}

/* Percent-encodes a $filter value's text (every byte but the unreserved ones). */
static char *pct(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1);
    if (out == NULL) {
        return NULL;
    }
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static int same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The last path segment of an ARM id ("/subscriptions/s/.../roleDefinitions/<guid>"). */
static const char *last_segment(const char *id)
{
    const char *slash = strrchr(id, '/');
    return slash ? slash + 1 : id;
}

/* ---- calls ---- */

/* One call's answer, kept until the phase is over. */
struct slot {
    enum azure_api api;
    json_t *body;
    long status;
    struct azure_error aerr;
    struct cg_err err;
    int used;
};

static void on_slot(json_t *result, long status, const struct azure_error *aerr,
                    const struct cg_err *err, void *data)
{
    struct slot *s = data;
    s->status = status;
    if (err != NULL) {
        s->err = *err;
        if (aerr != NULL) {
            s->aerr = *aerr;
        }
    } else {
        s->body = json_incref(result);
    }
}

static void slot_reset(struct slot *s)
{
    json_decref(s->body); /* an addPassword answer was wiped by take_secret */
    memset(s, 0, sizeof(*s));
}

/* A wanted role assignment. */
struct want_ra {
    char *scope;     /* "/subscriptions/<sub>[/resourceGroups/<rg>]" */
    char *role_id;   /* role definition GUID */
    char *role_name; /* for messages */
    char name[37];   /* the assignment's GUID, once the principal is known */
    json_t *have;    /* borrowed from run.assignments */
};

struct run {
    struct cg_http *h;
    const struct rc_azure_opts *o;
    const struct profile_azure *w;
    struct rc_azure_result *res;
    char unique[40];
    char role_def_id[37]; /* the custom role definition's GUID */
    char *sub_scope;      /* "/subscriptions/<sub>" */
    /* what the reads found */
    json_t *app;         /* NULL: absent */
    json_t *sp;          /* NULL: absent */
    json_t *fics;        /* array; NULL when not read */
    json_t *assignments; /* array of the principal's assignments under the subscription */
    json_t *role_def;    /* our custom role definition; NULL: absent */
    struct want_ra *ras;
    size_t ra_count;
    struct cg_err first;
};

static void fail_first(struct run *r, const struct cg_err *err)
{
    if (r->first.code == 0 && err != NULL && err->code != 0) {
        r->first = *err;
    }
}

static void submit(struct run *r, struct slot *s, enum azure_api api, const char *method,
                   const char *path, json_t *body, const char *const *headers, const char *label,
                   int flags)
{
    slot_reset(s);
    s->used = 1;
    s->api = api;
    if (path == NULL || label == NULL) {
        cg_err_set(&s->err, CG_ENOMEM, "out of memory");
        return;
    }
    if (azure_rest_call(r->o->api, api, method, path, body, headers, label, flags, on_slot, s,
                        &s->err) < 0 &&
        s->err.code == 0) {
        cg_err_set(&s->err, CG_ENOMEM, "out of memory");
    }
}

static void submit_all(struct run *r, struct slot *s, enum azure_api api, const char *path,
                       const char *label)
{
    slot_reset(s);
    s->used = 1;
    if (path == NULL || label == NULL) {
        cg_err_set(&s->err, CG_ENOMEM, "out of memory");
        return;
    }
    if (azure_rest_call_all(r->o->api, api, path, NULL, label, 0, on_slot, s, &s->err) < 0 &&
        s->err.code == 0) {
        cg_err_set(&s->err, CG_ENOMEM, "out of memory");
    }
}

/* Runs the loop; the first error of the used slots (not_found_ok: a 404 is an answer). */
static int settle(struct run *r, struct slot *s, size_t n, int not_found_ok)
{
    cg_http_run(r->h);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].used || s[i].err.code == 0 || (not_found_ok && s[i].err.code == CG_ENOTFOUND)) {
            continue;
        }
        fail_first(r, &s[i].err);
        rc = rc ? rc : s[i].err.code;
    }
    return rc;
}

static int add(struct rc_list *l, const char *kind, const char *name, const char *id,
               enum rc_change change, const char *detail)
{
    return rc_list_add(l, "azure", kind, name, id, change, detail);
}

static int owned_app(json_t *app)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(app, "tags"), i, t)
    {
        if (same(json_string_value(t), "cloudgrant")) {
            return 1;
        }
    }
    return 0;
}

/* ---- the desired state ---- */

static char *group_scope(const struct run *r, const char *group)
{
    return cg_strfmt("/subscriptions/%s/resourceGroups/%s", r->o->subscription, group);
}

/* The scopes a profile scope stands for. */
static int scopes_of(struct run *r, enum profile_azure_scope sc, char *out[2], size_t *n)
{
    *n = 0;
    if (sc == PROFILE_AZURE_SUBSCRIPTION) {
        out[(*n)++] = strdup(r->sub_scope);
    } else {
        if (r->o->cluster_group == NULL && r->o->node_group == NULL) {
            return cg_err_set(&r->first, CG_EINVAL,
                              "profile '%s' assigns roles on the cluster's resource groups, which "
                              "are unknown: run on AKS nodes with ARM access to the node resource "
                              "group, or use scope: subscription",
                              r->o->profile_name);
        }
        if (r->o->cluster_group != NULL) {
            out[(*n)++] = group_scope(r, r->o->cluster_group);
        }
        if (r->o->node_group != NULL &&
            (r->o->cluster_group == NULL || strcasecmp(r->o->node_group, r->o->cluster_group))) {
            out[(*n)++] = group_scope(r, r->o->node_group);
        }
    }
    for (size_t i = 0; i < *n; i++) {
        if (out[i] == NULL) {
            return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        }
    }
    return 0;
}

static int want_add(struct run *r, const char *scope, const char *role_id, const char *role_name)
{
    struct want_ra *v = realloc(r->ras, (r->ra_count + 1) * sizeof(*v));
    if (v == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    r->ras = v;
    struct want_ra *a = &v[r->ra_count];
    memset(a, 0, sizeof(*a));
    a->scope = strdup(scope);
    a->role_id = strdup(role_id);
    a->role_name = strdup(role_name);
    r->ra_count++;
    if (a->scope == NULL || a->role_id == NULL || a->role_name == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    return 0;
}

static int desired(struct run *r)
{
    const struct profile_azure *w = r->w;
    char *sc[2] = {0};
    size_t n = 0;
    int rc = 0;
    if (w->custom_role.present) {
        char *text = cg_strfmt("role|%s|%s", r->o->subscription, w->custom_role.name);
        if (text == NULL) {
            return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        }
        rc_azure_uuid5(text, r->role_def_id);
        free(text);
    }
    if (r->o->mode == RC_MODE_OFFBOARD) {
        return 0; /* every assignment of the principal goes, whatever the profile says now */
    }
    if (w->grant == PROFILE_AZURE_CUSTOM) {
        rc = scopes_of(r, w->custom_role.scope, sc, &n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = want_add(r, sc[i], r->role_def_id, w->custom_role.name);
        }
        for (size_t i = 0; i < n; i++) {
            free(sc[i]);
        }
        return rc;
    }
    for (size_t k = 0; rc == 0 && k < w->role_count; k++) {
        rc = scopes_of(r, w->roles[k].scope, sc, &n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = want_add(r, sc[i], w->roles[k].role_id, w->roles[k].name);
        }
        for (size_t i = 0; i < n; i++) {
            free(sc[i]);
            sc[i] = NULL;
        }
    }
    return rc;
}

/* Names the wanted assignments once the principal is known. */
static void name_assignments(struct run *r, const char *principal)
{
    for (size_t i = 0; i < r->ra_count; i++) {
        struct want_ra *a = &r->ras[i];
        char text[600];
        char scope[400];
        snprintf(scope, sizeof(scope), "%s", a->scope);
        for (char *p = scope; *p; p++) {
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p); /* ARM scopes are case-blind */
        }
        snprintf(text, sizeof(text), "assignment|%s|%s|%s", scope, a->role_id, principal);
        rc_azure_uuid5(text, a->name);
    }
}

/* ---- reads ---- */

/* The app registration by its alternate key. */
static char *app_path(const struct run *r)
{
    return cg_strfmt("v1.0/applications(uniqueName='%s')", r->unique);
}

static int read_app(struct run *r)
{
    struct slot s[2] = {0};
    char *path = app_path(r);
    char *label = cg_strfmt("read app registration '%s'", r->w->application.display_name);
    submit(r, &s[0], AZURE_API_GRAPH, "GET", path, NULL, NULL, label, 0);
    free(path);
    free(label);
    if (r->w->custom_role.present) {
        path = cg_strfmt("subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/"
                         "%s?" ARM_AUTHZ_VERSION,
                         r->o->subscription, r->role_def_id);
        label = cg_strfmt("read custom role '%s'", r->w->custom_role.name);
        submit(r, &s[1], AZURE_API_ARM, "GET", path, NULL, NULL, label, 0);
        free(path);
        free(label);
    }
    int rc = settle(r, s, 2, 1);
    if (rc == 0) {
        r->app = s[0].err.code == 0 ? json_incref(s[0].body) : NULL;
        r->role_def = s[1].used && s[1].err.code == 0 ? json_incref(s[1].body) : NULL;
    }
    slot_reset(&s[0]);
    slot_reset(&s[1]);
    if (rc == 0 && r->app != NULL && !owned_app(r->app)) {
        rc = cg_err_set(&r->first, CG_EINVAL,
                        "app registration '%s' (%s) has cloudgrant's unique name but not its "
                        "\"cloudgrant\" tag: someone changed it by hand; add the tag back or "
                        "delete the app registration",
                        r->w->application.display_name, str(r->app, "appId"));
    }
    return rc;
}

static int read_principal(struct run *r)
{
    struct slot s[2] = {0};
    const char *app_id = str(r->app, "appId");
    char *path = cg_strfmt("v1.0/servicePrincipals(appId='%s')", app_id);
    char *label = cg_strfmt("read service principal of '%s'", r->w->application.display_name);
    submit(r, &s[0], AZURE_API_GRAPH, "GET", path, NULL, NULL, label, 0);
    free(path);
    free(label);
    path = cg_strfmt("v1.0/applications/%s/federatedIdentityCredentials", str(r->app, "id"));
    label = cg_strfmt("list federated credentials of '%s'", r->w->application.display_name);
    submit_all(r, &s[1], AZURE_API_GRAPH, path, label);
    free(path);
    free(label);
    int rc = settle(r, s, 2, 1);
    if (rc == 0) {
        r->sp = s[0].err.code == 0 ? json_incref(s[0].body) : NULL;
        r->fics = s[1].err.code == 0 ? json_incref(json_object_get(s[1].body, "value")) : NULL;
    }
    slot_reset(&s[0]);
    slot_reset(&s[1]);
    return rc;
}

static int read_assignments(struct run *r)
{
    struct slot s = {0};
    char *who = cg_strfmt("'%s'", str(r->sp, "id"));
    char *q = who ? pct(who) : NULL;
    char *path = cg_strfmt(
        "subscriptions/%s/providers/Microsoft.Authorization/roleAssignments?" ARM_AUTHZ_VERSION
        "&$filter=principalId%%20eq%%20%s",
        r->o->subscription, q ? q : "");
    char *label = cg_strfmt("list role assignments of '%s'", r->w->application.display_name);
    submit_all(r, &s, AZURE_API_ARM, path, label);
    free(who);
    free(q);
    free(path);
    free(label);
    int rc = settle(r, &s, 1, 0);
    if (rc == 0) {
        r->assignments = json_incref(json_object_get(s.body, "value"));
    }
    slot_reset(&s);
    return rc;
}

static json_t *props(json_t *o)
{
    return json_object_get(o, "properties");
}

/* Pairs each wanted assignment with the one found (same scope and role). */
static void match_assignments(struct run *r)
{
    size_t i;
    json_t *a;
    for (size_t k = 0; k < r->ra_count; k++) {
        r->ras[k].have = NULL;
    }
    json_array_foreach(r->assignments, i, a)
    {
        const char *scope = str(props(a), "scope");
        const char *role = last_segment(str(props(a), "roleDefinitionId"));
        for (size_t k = 0; k < r->ra_count; k++) {
            if (r->ras[k].have == NULL && strcasecmp(scope, r->ras[k].scope) == 0 &&
                strcasecmp(role, r->ras[k].role_id) == 0) {
                r->ras[k].have = a;
                break;
            }
        }
    }
}

static int wanted_assignment(const struct run *r, json_t *a)
{
    for (size_t k = 0; k < r->ra_count; k++) {
        if (r->ras[k].have == a) {
            return 1;
        }
    }
    return 0;
}

/* An assignment cloudgrant may remove: under this subscription (one inherited from a
 * management group is not ours to touch). */
static int removable(const struct run *r, json_t *a)
{
    const char *scope = str(props(a), "scope");
    size_t n = strlen(r->sub_scope);
    return strncasecmp(scope, r->sub_scope, n) == 0 && (scope[n] == '\0' || scope[n] == '/');
}

/* A role definition's name for messages: the profile's, else its GUID. */
static const char *role_label(const struct run *r, const char *guid)
{
    const struct profile_azure *w = r->w;
    if (w->custom_role.present && strcasecmp(guid, r->role_def_id) == 0) {
        return w->custom_role.name;
    }
    for (size_t i = 0; i < w->role_count; i++) {
        if (strcasecmp(guid, w->roles[i].role_id) == 0) {
            return w->roles[i].name;
        }
    }
    return guid;
}

/* ---- comparing ---- */

static char *fic_name(const struct run *r)
{
    char *n = cg_strfmt("cloudgrant-%s", r->o->profile_name);
    if (n != NULL && strlen(n) > 120) {
        n[120] = '\0';
    }
    return n;
}

static json_t *find_fic(const struct run *r, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(r->fics, i, f)
    {
        if (same(str(f, "name"), name)) {
            return f;
        }
    }
    return NULL;
}

static int fic_matches(const struct run *r, json_t *f)
{
    json_t *aud = json_object_get(f, "audiences");
    return same(str(f, "issuer"), r->w->federated_issuer) &&
           same(str(f, "subject"), r->w->federated_subject) && json_array_size(aud) == 1 &&
           same(json_string_value(json_array_get(aud, 0)), FIC_AUDIENCE);
}

/* Differences of the app from the profile ("" none); a new string. */
static char *app_diff(const struct run *r)
{
    const struct profile_azure *w = r->w;
    char buf[200] = "";
    if (!same(str(r->app, "displayName"), w->application.display_name)) {
        strcat(buf, "display name, ");
    }
    if (!same(json_string_value(json_object_get(r->app, "description")),
              w->application.description)) {
        strcat(buf, "description, ");
    }
    if (!same(str(r->app, "signInAudience"), "AzureADMyOrg")) {
        strcat(buf, "sign-in audience (not single-tenant), ");
    }
    size_t n = strlen(buf);
    if (n > 2) {
        buf[n - 2] = '\0';
    }
    return strdup(buf);
}

static json_t *role_actions(json_t *def)
{
    return json_object_get(json_array_get(json_object_get(props(def), "permissions"), 0),
                           "actions");
}

/* Differences of the custom role definition from the profile; a new string, "" none. */
static char *role_diff(const struct run *r, char *const *scopes, size_t nscopes)
{
    const struct profile_azure *w = r->w;
    json_t *p = props(r->role_def);
    char buf[300] = "";
    json_t *have = role_actions(r->role_def);
    size_t missing = 0, extra = 0;
    for (size_t i = 0; i < w->custom_role.action_count; i++) {
        int found = 0;
        size_t k;
        json_t *v;
        json_array_foreach(have, k, v)
        {
            found |= same(json_string_value(v), w->custom_role.actions[i]);
        }
        missing += !found;
    }
    size_t k;
    json_t *v;
    json_array_foreach(have, k, v)
    {
        int found = 0;
        for (size_t i = 0; i < w->custom_role.action_count; i++) {
            found |= same(json_string_value(v), w->custom_role.actions[i]);
        }
        extra += !found;
    }
    size_t nperm = json_array_size(json_object_get(p, "permissions"));
    json_t *perm0 = json_array_get(json_object_get(p, "permissions"), 0);
    if (missing || extra) {
        snprintf(buf, sizeof(buf), "%zu action%s missing, %zu unexpected; ", missing,
                 missing == 1 ? "" : "s", extra);
    }
    if (nperm != 1 || json_array_size(json_object_get(perm0, "notActions")) ||
        json_array_size(json_object_get(perm0, "dataActions")) ||
        json_array_size(json_object_get(perm0, "notDataActions"))) {
        strcat(buf, "other permissions; ");
    }
    json_t *as = json_object_get(p, "assignableScopes");
    int scopes_ok = json_array_size(as) == nscopes;
    for (size_t i = 0; scopes_ok && i < nscopes; i++) {
        int found = 0;
        json_array_foreach(as, k, v)
        {
            found |= json_is_string(v) && strcasecmp(json_string_value(v), scopes[i]) == 0;
        }
        scopes_ok = found;
    }
    if (!scopes_ok) {
        strcat(buf, "assignable scopes; ");
    }
    if (!same(str(p, "roleName"), w->custom_role.name)) {
        strcat(buf, "name; ");
    }
    if (!same(json_string_value(json_object_get(p, "description")), w->custom_role.description)) {
        strcat(buf, "description; ");
    }
    size_t n = strlen(buf);
    if (n > 2) {
        buf[n - 2] = '\0';
    }
    return strdup(buf);
}

/* The app's client secrets, judged: `keep` is the one handed over and not expiring; every
 * other one is stale. */
struct secrets {
    json_t *keep;
    json_t *stale[32];
    size_t nstale;
    int need_new;
    char why[160]; /* why a new one is needed */
};

static void judge_secrets(const struct run *r, struct secrets *s)
{
    memset(s, 0, sizeof(*s));
    const struct profile_azure *w = r->w;
    int secret_mode = w->credential == PROFILE_AZURE_SECRET;
    size_t i;
    json_t *pc;
    json_array_foreach(json_object_get(r->app, "passwordCredentials"), i, pc)
    {
        const char *id = str(pc, "keyId");
        int64_t end = 0;
        int live = cg_parse_rfc3339(str(pc, "endDateTime"), &end) == 0 && end > r->o->now;
        if (secret_mode && s->keep == NULL && r->o->delivered_key_id != NULL &&
            strcasecmp(id, r->o->delivered_key_id) == 0 && live) {
            if (end - r->o->now > (int64_t)w->secret_renew_days * DAY) {
                s->keep = pc;
                continue;
            }
            char date[32];
            cg_format_rfc3339(end, date, sizeof(date));
            snprintf(s->why, sizeof(s->why),
                     "secret %s expires %s, within the %ld-day renewal window", id, date,
                     w->secret_renew_days);
        } else if (secret_mode && r->o->delivered_key_id != NULL &&
                   strcasecmp(id, r->o->delivered_key_id) == 0) {
            snprintf(s->why, sizeof(s->why), "secret %s expired", id);
        }
        if (s->nstale < sizeof(s->stale) / sizeof(s->stale[0])) {
            s->stale[s->nstale++] = pc;
        }
    }
    s->need_new = secret_mode && s->keep == NULL;
    if (s->need_new && s->why[0] == '\0') {
        snprintf(s->why, sizeof(s->why), "%s",
                 r->o->delivered_key_id ? "the secret handed over is gone" : "none handed over");
    }
}

static const char *secret_detail(const struct run *r, json_t *pc, char *buf, size_t n)
{
    int64_t end = 0;
    char date[32] = "?";
    if (cg_parse_rfc3339(str(pc, "endDateTime"), &end) == 0) {
        cg_format_rfc3339(end, date, sizeof(date));
    }
    const char *dn = str(pc, "displayName");
    snprintf(buf, n, "%s, \"%s\", %s %s",
             r->w->credential == PROFILE_AZURE_FEDERATED ? "a secret in federated mode"
                                                         : "not the one handed over",
             dn, end > r->o->now ? "expires" : "expired", date);
    return buf;
}

/* Everything that differs, as entries (plan: actions; check: drift). */
static int compare(struct run *r, struct rc_list *out)
{
    const struct profile_azure *w = r->w;
    const char *app_name = w->application.display_name;
    if (r->app == NULL) {
        add(out, "app-registration", app_name, r->unique, RC_CREATE, "single tenant");
        add(out, "service-principal", app_name, NULL, RC_CREATE, NULL);
    } else {
        char *d = app_diff(r);
        if (d == NULL) {
            return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        }
        if (d[0]) {
            add(out, "app-registration", app_name, str(r->app, "appId"), RC_UPDATE, d);
        }
        free(d);
        if (r->sp == NULL) {
            add(out, "service-principal", app_name, NULL, RC_CREATE, NULL);
        } else if (json_is_false(json_object_get(r->sp, "accountEnabled"))) {
            add(out, "service-principal", app_name, str(r->sp, "id"), RC_UPDATE, "disabled");
        }
    }
    /* the custom role */
    char *sc[2] = {0};
    size_t nsc = 0;
    if (w->custom_role.present && w->grant == PROFILE_AZURE_CUSTOM) {
        int rc = scopes_of(r, w->custom_role.scope, sc, &nsc);
        if (rc < 0) {
            return rc;
        }
        if (r->role_def == NULL) {
            add(out, "custom-role", w->custom_role.name, r->role_def_id, RC_CREATE, NULL);
        } else {
            char *d = role_diff(r, sc, nsc);
            if (d != NULL && d[0]) {
                add(out, "custom-role", w->custom_role.name, r->role_def_id, RC_UPDATE, d);
            }
            free(d);
        }
    } else if (r->role_def != NULL) {
        add(out, "custom-role", w->custom_role.name, r->role_def_id, RC_DELETE,
            "not used with grant builtin");
    }
    for (size_t i = 0; i < nsc; i++) {
        free(sc[i]);
    }
    /* the credential */
    if (r->app != NULL || w->credential == PROFILE_AZURE_SECRET) {
        struct secrets s;
        judge_secrets(r, &s);
        if (s.need_new && (r->o->key_record_known || r->o->mode == RC_MODE_PLAN)) {
            add(out, "client-secret", app_name, NULL, RC_CREATE, s.why);
        }
        for (size_t i = 0;
             i < s.nstale && (r->o->key_record_known || w->credential == PROFILE_AZURE_FEDERATED);
             i++) {
            char buf[200];
            add(out, "client-secret", app_name, str(s.stale[i], "keyId"), RC_DELETE,
                secret_detail(r, s.stale[i], buf, sizeof(buf)));
        }
    }
    if (w->credential == PROFILE_AZURE_FEDERATED) {
        char *name = fic_name(r);
        json_t *f = name ? find_fic(r, name) : NULL;
        char *detail =
            cg_strfmt("issuer %s, subject %s", w->federated_issuer, w->federated_subject);
        if (f == NULL) {
            add(out, "federated-credential", name, NULL, RC_CREATE, detail);
        } else if (!fic_matches(r, f)) {
            add(out, "federated-credential", name, str(f, "id"), RC_UPDATE, detail);
        }
        free(detail);
        free(name);
    }
    if (r->fics != NULL) {
        char *name = fic_name(r);
        size_t i;
        json_t *f;
        json_array_foreach(r->fics, i, f)
        {
            if (w->credential != PROFILE_AZURE_FEDERATED || !same(str(f, "name"), name)) {
                char *detail =
                    cg_strfmt("issuer %s, subject %s", str(f, "issuer"), str(f, "subject"));
                add(out, "federated-credential", str(f, "name"), str(f, "id"), RC_DELETE, detail);
                free(detail);
            }
        }
        free(name);
    }
    /* role assignments */
    if (r->sp != NULL) {
        name_assignments(r, str(r->sp, "id"));
    }
    match_assignments(r);
    for (size_t k = 0; k < r->ra_count; k++) {
        if (r->ras[k].have == NULL) {
            char *name = cg_strfmt("%s on %s", r->ras[k].role_name, r->ras[k].scope);
            add(out, "role-assignment", name, r->sp ? r->ras[k].name : NULL, RC_CREATE, NULL);
            free(name);
        }
    }
    size_t i;
    json_t *a;
    json_array_foreach(r->assignments, i, a)
    {
        if (!wanted_assignment(r, a) && removable(r, a)) {
            char *name = cg_strfmt("%s on %s",
                                   role_label(r, last_segment(str(props(a), "roleDefinitionId"))),
                                   str(props(a), "scope"));
            add(out, "role-assignment", name, str(a, "name"), RC_DELETE, "not in the profile");
            free(name);
        }
    }
    return 0;
}

/* ---- applying ---- */

static json_t *app_body(const struct run *r)
{
    const struct profile_azure *w = r->w;
    char *tag = cg_strfmt("cloudgrant:profile=%s", r->o->profile_name);
    json_t *b = json_pack("{s:s, s:s, s:[s,s?]}", "displayName", w->application.display_name,
                          "signInAudience", "AzureADMyOrg", "tags", "cloudgrant", tag);
    free(tag);
    if (b != NULL) {
        json_object_set_new(b, "description",
                            w->application.description ? json_string(w->application.description)
                                                       : json_null());
    }
    return b;
}

/* Explains the failures a user can act on. */
static void explain(struct run *r, struct slot *s)
{
    if (s->err.code == 0) {
        return;
    }
    if (strcmp(s->aerr.code, "CredentialInvalidLifetimeAsPerAppPolicy") == 0) {
        cg_err_wrap(&s->err,
                    "the tenant's app management policy limits client secret lifetimes: lower "
                    "azure.secret.lifetimeDays in the profile (now %ld), or use "
                    "--azure-credential federated",
                    r->w->secret_lifetime_days);
    } else if (s->err.code == CG_EAUTH && s->aerr.status == 403) {
        cg_err_wrap(&s->err, "cloudgrant's identity needs %s",
                    s->api == AZURE_API_ARM
                        ? "Owner or User Access Administrator on the subscription (it manages "
                          "role assignments and role definitions)"
                        : "the Microsoft Graph application permission "
                          "Application.ReadWrite.OwnedBy (or Application.ReadWrite.All)");
    } else if (strcmp(s->aerr.code, "PrincipalNotFound") == 0) {
        cg_err_wrap(&s->err, "the new service principal has not reached ARM yet; run again in "
                             "a few minutes");
    }
    fail_first(r, &s->err);
}

static int phase_app(struct run *r, struct rc_list *done, int *phases)
{
    const struct profile_azure *w = r->w;
    struct slot s[2] = {0};
    char *d = r->app ? app_diff(r) : NULL;
    static const char *const upsert[] = {"Prefer: create-if-missing", NULL};
    if (r->app == NULL || (d != NULL && d[0])) {
        json_t *body = app_body(r);
        char *path = r->app ? cg_strfmt("v1.0/applications/%s", str(r->app, "id")) : app_path(r);
        char *label = cg_strfmt("%s app registration '%s'", r->app ? "update" : "create",
                                w->application.display_name);
        submit(r, &s[0], AZURE_API_GRAPH, "PATCH", path, body, r->app ? NULL : upsert, label, 0);
        json_decref(body);
        free(path);
        free(label);
    }
    char *sc[2] = {0};
    size_t nsc = 0;
    int rc = 0;
    if (w->custom_role.present && w->grant == PROFILE_AZURE_CUSTOM &&
        (rc = scopes_of(r, w->custom_role.scope, sc, &nsc)) == 0) {
        char *rd = r->role_def ? role_diff(r, sc, nsc) : NULL;
        if (r->role_def == NULL || (rd != NULL && rd[0])) {
            json_t *scopes = json_array();
            json_t *actions = json_array();
            for (size_t i = 0; i < nsc; i++) {
                json_array_append_new(scopes, json_string(sc[i]));
            }
            for (size_t i = 0; i < w->custom_role.action_count; i++) {
                json_array_append_new(actions, json_string(w->custom_role.actions[i]));
            }
            json_t *body = json_pack("{s:{s:s, s:s?, s:s, s:[{s:o, s:[], s:[], s:[]}], s:o}}",
                                     "properties", "roleName", w->custom_role.name, "description",
                                     w->custom_role.description, "type", "CustomRole",
                                     "permissions", "actions", actions, "notActions", "dataActions",
                                     "notDataActions", "assignableScopes", scopes);
            char *path =
                cg_strfmt("subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/"
                          "%s?" ARM_AUTHZ_VERSION,
                          r->o->subscription, r->role_def_id);
            char *label = cg_strfmt("%s custom role '%s'", r->role_def ? "update" : "create",
                                    w->custom_role.name);
            submit(r, &s[1], AZURE_API_ARM, "PUT", path, body, NULL, label, 0);
            json_decref(body);
            free(path);
            free(label);
            if (r->role_def != NULL) {
                add(done, "custom-role", w->custom_role.name, r->role_def_id, RC_UPDATE, rd);
            }
        }
        free(rd);
    }
    for (size_t i = 0; i < nsc; i++) {
        free(sc[i]);
    }
    if (rc < 0) {
        free(d);
        return rc;
    }
    if (!s[0].used && !s[1].used) {
        free(d);
        return 0;
    }
    (*phases)++;
    settle(r, s, 2, 0);
    for (size_t i = 0; i < 2; i++) {
        if (s[i].used && s[i].err.code != 0) {
            explain(r, &s[i]);
            rc = rc ? rc : s[i].err.code;
        }
    }
    if (s[0].used && s[0].err.code == 0) {
        if (r->app == NULL) {
            add(done, "app-registration", w->application.display_name, str(s[0].body, "appId"),
                RC_CREATE, "single tenant");
        } else {
            add(done, "app-registration", w->application.display_name, str(r->app, "appId"),
                RC_UPDATE, d);
        }
        if (s[0].status == 201 && json_object_get(s[0].body, "appId") != NULL) {
            json_decref(r->app);
            r->app = json_incref(s[0].body);
        } else if (r->app == NULL) {
            /* 204: it existed after all (a concurrent run): read it */
            struct slot g = {0};
            char *path = app_path(r);
            char *label = cg_strfmt("read app registration '%s'", w->application.display_name);
            submit(r, &g, AZURE_API_GRAPH, "GET", path, NULL, NULL, label, AZURE_RETRY_NOT_FOUND);
            free(path);
            free(label);
            if (settle(r, &g, 1, 0) == 0) {
                r->app = json_incref(g.body);
            } else {
                rc = rc ? rc : g.err.code;
            }
            slot_reset(&g);
        }
    }
    if (s[1].used && s[1].err.code == 0 && r->role_def == NULL) {
        add(done, "custom-role", w->custom_role.name, r->role_def_id, RC_CREATE, NULL);
        r->role_def = json_incref(s[1].body);
    }
    slot_reset(&s[0]);
    slot_reset(&s[1]);
    free(d);
    return rc;
}

static void submit_add_secret(struct run *r, struct slot *s, const char *app_object_id)
{
    const struct profile_azure *w = r->w;
    char end[32];
    cg_format_rfc3339(r->o->now + (int64_t)w->secret_lifetime_days * DAY, end, sizeof(end));
    char *dn = cg_strfmt("cloudgrant %s", r->o->profile_name);
    json_t *body = json_pack("{s:{s:s, s:s}}", "passwordCredential", "displayName", dn ? dn : "",
                             "endDateTime", end);
    char *path = cg_strfmt("v1.0/applications/%s/addPassword", app_object_id);
    char *label = cg_strfmt("add a client secret to '%s'", w->application.display_name);
    /* a new app may not be visible to addPassword yet */
    submit(r, s, AZURE_API_GRAPH, "POST", path, body, NULL, label,
           AZURE_RETRY_NOT_FOUND | AZURE_SEND_ONCE);
    json_decref(body);
    free(dn);
    free(path);
    free(label);
}

/* Takes the new secret out of an addPassword answer (and wipes it there). */
static int take_secret(json_t *ans, char **key_id, char **secret, char **end)
{
    const char *id = json_string_value(json_object_get(ans, "keyId"));
    const char *text = json_string_value(json_object_get(ans, "secretText"));
    const char *e = json_string_value(json_object_get(ans, "endDateTime"));
    if (id == NULL || text == NULL || text[0] == '\0') {
        return CG_EINVAL;
    }
    *key_id = strdup(id);
    *secret = strdup(text);
    *end = e ? strdup(e) : NULL;
    handover_wipe_json(ans);
    return *key_id && *secret ? 0 : CG_ENOMEM;
}

static void submit_remove_secret(struct run *r, struct slot *s, const char *app_object_id,
                                 const char *key_id)
{
    json_t *body = json_pack("{s:s}", "keyId", key_id);
    char *path = cg_strfmt("v1.0/applications/%s/removePassword", app_object_id);
    char *label =
        cg_strfmt("remove client secret %s of '%s'", key_id, r->w->application.display_name);
    submit(r, s, AZURE_API_GRAPH, "POST", path, body, NULL, label, 0);
    json_decref(body);
    free(path);
    free(label);
}

static int phase_principal(struct run *r, struct rc_list *done, int *phases)
{
    const struct profile_azure *w = r->w;
    const char *app_name = w->application.display_name;
    const char *oid = str(r->app, "id");
    size_t nfic = json_array_size(r->fics);
    struct secrets sec;
    judge_secrets(r, &sec);
    size_t n = 3 + nfic + sec.nstale;
    struct slot *s = calloc(n, sizeof(*s));
    if (s == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    /* [0] service principal, [1] secret or federated credential, [2..] removals */
    if (r->sp == NULL) {
        json_t *body =
            json_pack("{s:s, s:[s]}", "appId", str(r->app, "appId"), "tags", "cloudgrant");
        char *label = cg_strfmt("create service principal of '%s'", app_name);
        /* the app may not have reached the directory replica yet */
        submit(r, &s[0], AZURE_API_GRAPH, "POST", "v1.0/servicePrincipals", body, NULL, label,
               AZURE_RETRY_REPLICATION);
        json_decref(body);
        free(label);
    } else if (json_is_false(json_object_get(r->sp, "accountEnabled"))) {
        json_t *body = json_pack("{s:b}", "accountEnabled", 1);
        char *path = cg_strfmt("v1.0/servicePrincipals/%s", str(r->sp, "id"));
        char *label = cg_strfmt("enable service principal of '%s'", app_name);
        submit(r, &s[0], AZURE_API_GRAPH, "PATCH", path, body, NULL, label, 0);
        json_decref(body);
        free(path);
        free(label);
        add(done, "service-principal", app_name, str(r->sp, "id"), RC_UPDATE, "enabled");
    }
    char *fname = fic_name(r);
    json_t *fic = fname && w->credential == PROFILE_AZURE_FEDERATED ? find_fic(r, fname) : NULL;
    if (sec.need_new) {
        submit_add_secret(r, &s[1], oid);
    } else if (w->credential == PROFILE_AZURE_FEDERATED && (fic == NULL || !fic_matches(r, fic))) {
        json_t *body = json_pack("{s:s, s:s, s:[s], s:s}", "issuer", w->federated_issuer, "subject",
                                 w->federated_subject, "audiences", FIC_AUDIENCE, "description",
                                 "Platform access (managed by cloudgrant)");
        char *path = fic ? cg_strfmt("v1.0/applications/%s/federatedIdentityCredentials/%s", oid,
                                     str(fic, "id"))
                         : cg_strfmt("v1.0/applications/%s/federatedIdentityCredentials", oid);
        char *label = cg_strfmt("%s federated credential '%s' of '%s'", fic ? "update" : "create",
                                fname, app_name);
        if (fic == NULL) {
            json_object_set_new(body, "name", json_string(fname));
        }
        submit(r, &s[1], AZURE_API_GRAPH, fic ? "PATCH" : "POST", path, body, NULL, label,
               AZURE_RETRY_NOT_FOUND);
        json_decref(body);
        free(path);
        free(label);
    }
    /* Stale secrets go now only when no new one is being made (the caller removes them once
     * the new one is delivered). */
    size_t at = 2;
    for (size_t i = 0; !sec.need_new && i < sec.nstale; i++) {
        submit_remove_secret(r, &s[at++], oid, str(sec.stale[i], "keyId"));
    }
    size_t i;
    json_t *f;
    json_array_foreach(r->fics, i, f)
    {
        if (w->credential != PROFILE_AZURE_FEDERATED || !same(str(f, "name"), fname)) {
            char *path = cg_strfmt("v1.0/applications/%s/federatedIdentityCredentials/%s", oid,
                                   str(f, "id"));
            char *label =
                cg_strfmt("delete federated credential '%s' of '%s'", str(f, "name"), app_name);
            submit(r, &s[at++], AZURE_API_GRAPH, "DELETE", path, NULL, NULL, label, 0);
            free(path);
            free(label);
        }
    }
    int any = 0;
    for (size_t k = 0; k < n; k++) {
        any |= s[k].used;
    }
    int rc = 0;
    if (any) {
        (*phases)++;
        cg_http_run(r->h);
    }
    /* the service principal */
    if (s[0].used && s[0].err.code != 0 && s[0].aerr.status == 409 && r->sp == NULL) {
        /* made by a concurrent run: read it */
        struct slot g = {0};
        char *path = cg_strfmt("v1.0/servicePrincipals(appId='%s')", str(r->app, "appId"));
        char *label = cg_strfmt("read service principal of '%s'", app_name);
        submit(r, &g, AZURE_API_GRAPH, "GET", path, NULL, NULL, label, AZURE_RETRY_NOT_FOUND);
        free(path);
        free(label);
        if (settle(r, &g, 1, 0) == 0) {
            r->sp = json_incref(g.body);
            slot_reset(&s[0]);
        }
        slot_reset(&g);
    } else if (s[0].used && s[0].err.code == 0 && r->sp == NULL) {
        r->sp = json_incref(s[0].body);
        add(done, "service-principal", app_name, str(r->sp, "id"), RC_CREATE, NULL);
    }
    /* the credential */
    if (s[1].used && s[1].err.code == 0) {
        if (sec.need_new) {
            if (take_secret(s[1].body, &r->res->key_id, &r->res->secret, &r->res->secret_end) < 0) {
                cg_err_set(&s[1].err, CG_EINVAL,
                           "Azure add a client secret to '%s': the answer has no secret", app_name);
            } else {
                add(done, "client-secret", app_name, r->res->key_id, RC_CREATE, sec.why);
                /* every other secret is removed once this one is delivered */
                r->res->stale_keys = calloc(sec.nstale + 1, sizeof(char *));
                for (size_t k = 0; r->res->stale_keys != NULL && k < sec.nstale; k++) {
                    r->res->stale_keys[r->res->stale_count++] = strdup(str(sec.stale[k], "keyId"));
                }
            }
        } else {
            add(done, "federated-credential", fname, str(s[1].body, "id"),
                fic ? RC_UPDATE : RC_CREATE, w->federated_subject);
        }
    }
    at = 2;
    for (size_t k = 0; !sec.need_new && k < sec.nstale; k++, at++) {
        if (s[at].err.code == 0) {
            add(done, "client-secret", app_name, str(sec.stale[k], "keyId"), RC_DELETE,
                w->credential == PROFILE_AZURE_FEDERATED ? "federated mode" : "stale");
        }
    }
    json_array_foreach(r->fics, i, f)
    {
        if (w->credential != PROFILE_AZURE_FEDERATED || !same(str(f, "name"), fname)) {
            if (s[at++].err.code == 0) {
                add(done, "federated-credential", str(f, "name"), str(f, "id"), RC_DELETE,
                    "not in the profile");
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (s[k].used && s[k].err.code != 0 && s[k].err.code != CG_ENOTFOUND) {
            explain(r, &s[k]);
            rc = rc ? rc : s[k].err.code;
        }
        slot_reset(&s[k]);
    }
    free(s);
    free(fname);
    return rc;
}

static int phase_assignments(struct run *r, struct rc_list *done, int *phases)
{
    const char *principal = str(r->sp, "id");
    name_assignments(r, principal);
    match_assignments(r);
    size_t nextra = json_array_size(r->assignments);
    size_t n = r->ra_count + nextra;
    struct slot *s = calloc(n ? n : 1, sizeof(*s));
    if (s == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    int any = 0;
    for (size_t k = 0; k < r->ra_count; k++) {
        struct want_ra *a = &r->ras[k];
        if (a->have != NULL) {
            continue;
        }
        char *def =
            cg_strfmt("/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
                      r->o->subscription, a->role_id);
        json_t *body =
            json_pack("{s:{s:s, s:s, s:s}}", "properties", "roleDefinitionId", def ? def : "",
                      "principalId", principal, "principalType", "ServicePrincipal");
        char *path =
            cg_strfmt("%s/providers/Microsoft.Authorization/roleAssignments/%s?" ARM_AUTHZ_VERSION,
                      a->scope + 1, a->name);
        char *label = cg_strfmt("assign role '%s' on %s", a->role_name, a->scope);
        /* a new principal takes a while to reach ARM (PrincipalNotFound) */
        submit(r, &s[k], AZURE_API_ARM, "PUT", path, body, NULL, label, AZURE_RETRY_REPLICATION);
        any = 1;
        json_decref(body);
        free(def);
        free(path);
        free(label);
    }
    size_t i;
    json_t *x;
    json_array_foreach(r->assignments, i, x)
    {
        if (wanted_assignment(r, x) || !removable(r, x)) {
            continue;
        }
        char *path = cg_strfmt("%s?" ARM_AUTHZ_VERSION, str(x, "id") + (str(x, "id")[0] == '/'));
        char *label =
            cg_strfmt("remove role assignment %s on %s", str(x, "name"), str(props(x), "scope"));
        submit(r, &s[r->ra_count + i], AZURE_API_ARM, "DELETE", path, NULL, NULL, label, 0);
        any = 1;
        free(path);
        free(label);
    }
    int rc = 0;
    if (any) {
        (*phases)++;
        cg_http_run(r->h);
    }
    for (size_t k = 0; k < r->ra_count; k++) {
        struct slot *sl = &s[k];
        if (!sl->used) {
            continue;
        }
        char *name = cg_strfmt("%s on %s", r->ras[k].role_name, r->ras[k].scope);
        if (sl->err.code == 0 || strcmp(sl->aerr.code, "RoleAssignmentExists") == 0) {
            /* RoleAssignmentExists: the same grant under another name (made by hand or by an
             * older naming): the principal has the role, which is what matters */
            add(done, "role-assignment", name, r->ras[k].name, RC_CREATE,
                sl->err.code ? "already granted under another name" : NULL);
        } else {
            explain(r, sl);
            rc = rc ? rc : sl->err.code;
        }
        free(name);
    }
    json_array_foreach(r->assignments, i, x)
    {
        struct slot *sl = &s[r->ra_count + i];
        if (!sl->used) {
            continue;
        }
        if (sl->err.code == 0 || sl->err.code == CG_ENOTFOUND) {
            char *name = cg_strfmt("%s on %s",
                                   role_label(r, last_segment(str(props(x), "roleDefinitionId"))),
                                   str(props(x), "scope"));
            add(done, "role-assignment", name, str(x, "name"), RC_DELETE,
                r->o->mode == RC_MODE_OFFBOARD ? NULL : "not in the profile");
            free(name);
        } else {
            explain(r, sl);
            rc = rc ? rc : sl->err.code;
        }
    }
    for (size_t k = 0; k < n; k++) {
        slot_reset(&s[k]);
    }
    free(s);
    return rc;
}

/* The custom role definition, when the profile no longer uses it (or on offboard). Its
 * assignments must be gone first: ARM refuses to delete a role that is assigned. */
static int delete_role_def(struct run *r, struct rc_list *done)
{
    if (r->role_def == NULL) {
        return 0;
    }
    struct slot s = {0};
    char *path = cg_strfmt(
        "subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s?" ARM_AUTHZ_VERSION,
        r->o->subscription, r->role_def_id);
    char *label = cg_strfmt("delete custom role '%s'", r->w->custom_role.name);
    submit(r, &s, AZURE_API_ARM, "DELETE", path, NULL, NULL, label, 0);
    free(path);
    free(label);
    int rc = settle(r, &s, 1, 1);
    if (rc == 0) {
        add(done, "custom-role", r->w->custom_role.name, r->role_def_id, RC_DELETE, NULL);
    } else {
        explain(r, &s);
    }
    slot_reset(&s);
    return rc;
}

static int offboard(struct run *r, struct rc_list *done)
{
    const char *app_name = r->w->application.display_name;
    int rc = 0;
    if (r->sp != NULL) {
        /* every assignment of the principal under the subscription (none is wanted) */
        rc = phase_assignments(r, done, &r->res->critical_path);
    }
    if (rc == 0) {
        rc = delete_role_def(r, done);
    }
    if (rc == 0 && r->app != NULL) {
        struct slot s[2] = {0};
        if (r->sp != NULL) {
            char *path = cg_strfmt("v1.0/servicePrincipals/%s", str(r->sp, "id"));
            char *label = cg_strfmt("delete service principal of '%s'", app_name);
            submit(r, &s[0], AZURE_API_GRAPH, "DELETE", path, NULL, NULL, label, 0);
            free(path);
            free(label);
            rc = settle(r, s, 1, 1);
            if (rc == 0) {
                add(done, "service-principal", app_name, str(r->sp, "id"), RC_DELETE, NULL);
            }
        }
        if (rc == 0) {
            char *path = cg_strfmt("v1.0/applications/%s", str(r->app, "id"));
            char *label = cg_strfmt("delete app registration '%s'", app_name);
            submit(r, &s[1], AZURE_API_GRAPH, "DELETE", path, NULL, NULL, label, 0);
            free(path);
            free(label);
            rc = settle(r, &s[1], 1, 1);
            if (rc == 0) {
                add(done, "app-registration", app_name, str(r->app, "appId"), RC_DELETE,
                    "with its secrets and federated credentials");
            }
        }
        for (size_t i = 0; i < 2; i++) {
            if (s[i].err.code != 0 && s[i].err.code != CG_ENOTFOUND) {
                explain(r, &s[i]);
            }
            slot_reset(&s[i]);
        }
    }
    return rc;
}

static void resources(struct run *r)
{
    struct rc_list *l = &r->res->resources;
    const char *app_name = r->w->application.display_name;
    if (r->app != NULL) {
        add(l, "app-registration", app_name, str(r->app, "appId"), RC_NONE, NULL);
    }
    if (r->sp != NULL) {
        add(l, "service-principal", app_name, str(r->sp, "id"), RC_NONE, NULL);
    }
    if (r->w->grant == PROFILE_AZURE_CUSTOM && r->role_def != NULL) {
        add(l, "custom-role", r->w->custom_role.name, r->role_def_id, RC_NONE, NULL);
    }
    for (size_t k = 0; k < r->ra_count; k++) {
        char *name = cg_strfmt("%s on %s", r->ras[k].role_name, r->ras[k].scope);
        add(l, "role-assignment", name, r->ras[k].name, RC_NONE, NULL);
        free(name);
    }
}

static int reads(struct run *r)
{
    int rc = read_app(r);
    if (rc == 0 && r->app != NULL) {
        rc = read_principal(r);
    }
    if (rc == 0 && r->sp != NULL) {
        rc = read_assignments(r);
    }
    return rc;
}

int rc_azure_run(struct cg_http *h, const struct rc_azure_opts *o, struct rc_azure_result *res,
                 struct cg_err *err)
{
    struct run r = {.h = h, .o = o, .w = o->want, .res = res};
    memset(res, 0, sizeof(*res));
    rc_azure_unique_name(o->subscription, o->profile_name, o->want->application.display_name,
                         r.unique);
    r.sub_scope = cg_strfmt("/subscriptions/%s", o->subscription);
    res->app_name = strdup(o->want->application.display_name);
    int rc = r.sub_scope && res->app_name ? 0 : cg_err_set(&r.first, CG_ENOMEM, "out of memory");
    if (rc == 0) {
        rc = desired(&r);
    }
    if (rc == 0) {
        rc = reads(&r);
    }
    if (rc == 0 && (o->mode == RC_MODE_PLAN || o->mode == RC_MODE_CHECK)) {
        rc = compare(&r, &res->entries);
    } else if (rc == 0 && o->mode == RC_MODE_APPLY) {
        int phases = 0;
        rc = phase_app(&r, &res->entries, &phases);
        if (rc == 0) {
            rc = phase_principal(&r, &res->entries, &phases);
        }
        if (rc == 0) {
            rc = phase_assignments(&r, &res->entries, &phases);
        }
        if (rc == 0 && r.w->grant != PROFILE_AZURE_CUSTOM && r.role_def != NULL) {
            rc = delete_role_def(&r, &res->entries);
            phases++;
        }
        if (rc == 0) {
            resources(&r);
        }
        res->critical_path = phases;
    } else if (rc == 0 && o->mode == RC_MODE_OFFBOARD) {
        rc = offboard(&r, &res->entries);
    }
    if (r.app != NULL) {
        res->client_id = strdup(str(r.app, "appId"));
        res->app_object_id = strdup(str(r.app, "id"));
    }
    if (r.sp != NULL) {
        res->principal_id = strdup(str(r.sp, "id"));
    }
    if (rc < 0 && err != NULL) {
        *err = r.first.code ? r.first : *err;
        if (err->code == 0) {
            cg_err_set(err, rc, "%s", cg_errc_str(rc));
        }
    }
    json_decref(r.app);
    json_decref(r.sp);
    json_decref(r.fics);
    json_decref(r.assignments);
    json_decref(r.role_def);
    for (size_t i = 0; i < r.ra_count; i++) {
        free(r.ras[i].scope);
        free(r.ras[i].role_id);
        free(r.ras[i].role_name);
    }
    free(r.ras);
    free(r.sub_scope);
    return rc;
}

void rc_azure_result_cleanup(struct rc_azure_result *r)
{
    rc_list_cleanup(&r->entries);
    rc_list_cleanup(&r->resources);
    free(r->app_name);
    free(r->client_id);
    free(r->app_object_id);
    free(r->principal_id);
    free(r->key_id);
    cg_secret_free(r->secret);
    free(r->secret_end);
    for (size_t i = 0; i < r->stale_count; i++) {
        free(r->stale_keys[i]);
    }
    free(r->stale_keys);
    memset(r, 0, sizeof(*r));
}

int rc_azure_add_secret(struct cg_http *h, const struct rc_azure_opts *o, const char *app_object_id,
                        char **key_id, char **secret, char **end, struct cg_err *err)
{
    struct rc_azure_result res = {0};
    struct run r = {.h = h, .o = o, .w = o->want, .res = &res};
    struct slot s = {0};
    submit_add_secret(&r, &s, app_object_id);
    int rc = settle(&r, &s, 1, 0);
    if (rc == 0 && take_secret(s.body, key_id, secret, end) < 0) {
        rc = cg_err_set(&r.first, CG_EINVAL,
                        "Azure add a client secret to '%s': the answer has "
                        "no secret",
                        o->want->application.display_name);
    } else if (rc < 0) {
        explain(&r, &s);
    }
    slot_reset(&s);
    if (rc < 0 && err != NULL) {
        *err = r.first;
    }
    return rc;
}

int rc_azure_remove_secret(struct cg_http *h, const struct rc_azure_opts *o,
                           const char *app_object_id, const char *key_id, struct cg_err *err)
{
    struct run r = {.h = h, .o = o, .w = o->want};
    struct slot s = {0};
    submit_remove_secret(&r, &s, app_object_id, key_id);
    int rc = settle(&r, &s, 1, 1);
    if (rc < 0 && err != NULL) {
        *err = r.first;
    }
    slot_reset(&s);
    return rc;
}
