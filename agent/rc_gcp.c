/* agent/rc_gcp.c: the GCP reconcile (rc_gcp.h). Each phase submits its independent calls
 * together and runs the loop until they are all answered; phases follow the dependencies GCP
 * imposes (APIs, then reads, then the account and roles, then what binds them). */
#include "rc_gcp.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "gcp/gcp_rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SERVICES_PER_GET    30 /* services:batchGet */
#define SERVICES_PER_ENABLE 20 /* services:batchEnable: more fails the whole call */
#define POLICY_ATTEMPTS     6  /* read-modify-write rounds against concurrent writers */

static const char *const TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator";
static const char *const WI_USER = "roles/iam.workloadIdentityUser";

/* One call's answer, kept until the phase is over. */
struct slot {
    json_t *body;
    struct gcp_error gerr;
    struct cg_err err;
};

static void on_slot(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                    void *data)
{
    struct slot *s = data;
    if (err != NULL) {
        s->err = *err;
        if (gerr != NULL) {
            s->gerr = *gerr;
        }
    } else {
        s->body = json_incref(result);
    }
}

static void slot_reset(struct slot *s)
{
    json_decref(s->body);
    memset(s, 0, sizeof(*s));
}

struct run {
    struct cg_http *h;
    const struct rc_gcp_opts *o;
    const struct profile_gcp *w;
    struct rc_gcp_result *res;
    char *email;
    char *member; /* serviceAccount:<email> */
    char *sa_path;
    /* what the reads found */
    int *svc_enabled;
    int svc_unknown; /* Service Usage could not be read (plan/check on a project without it) */
    json_t *sa;      /* NULL: absent */
    json_t **roles;  /* per custom role; NULL: absent */
    json_t *policy;  /* the project's */
    json_t *keys;    /* array of user-managed keys */
    json_t *sa_policy;
    int iam_disabled, crm_disabled;
    struct cg_err first;
};

static void fail_first(struct run *r, const struct cg_err *err)
{
    if (r->first.code == 0 && err != NULL && err->code != 0) {
        r->first = *err;
    }
}

/* Submits a call into a slot; a call that cannot even start leaves its error in the slot. */
static void submit(struct run *r, struct slot *s, enum gcp_api api, const char *method,
                   const char *path, json_t *body, const char *label, int flags)
{
    slot_reset(s);
    if (gcp_rest_call(r->o->api, api, method, path, body, label, flags, on_slot, s, &s->err) < 0 &&
        s->err.code == 0) {
        cg_err_set(&s->err, CG_ENOMEM, "out of memory");
    }
}

static int add(struct rc_list *l, const char *kind, const char *name, const char *id,
               enum rc_change change, const char *detail)
{
    return rc_list_add(l, "gcp", kind, name, id, change, detail);
}

/* A read that GCP answers with "this API is disabled": in plan and check the things behind it
 * are reported as missing instead of failing the run. */
static int api_disabled(const struct slot *s)
{
    return s->err.code != 0 && strcmp(s->gerr.reason, "SERVICE_DISABLED") == 0;
}

static int not_found(const struct slot *s)
{
    return s->err.code == CG_ENOTFOUND;
}

static int owned(json_t *sa)
{
    const char *d = json_string_value(json_object_get(sa, "description"));
    return d != NULL && strcasestr(d, "cloudgrant") != NULL;
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

/* ---- services ---- */

/* The reads of a run's first round: the API states and the identity's state go out together
 * (rc_gcp_run says when the second set's answers stand). */
struct reads {
    struct slot *svc;
    size_t nsvc;
    struct slot *st;
    size_t nst;
};

static int services_submit(struct run *r, struct reads *rd)
{
    const struct profile_gcp *w = r->w;
    size_t n = w->service_count;
    size_t nslots = (n + SERVICES_PER_GET - 1) / SERVICES_PER_GET;
    r->svc_enabled = calloc(n ? n : 1, sizeof(int));
    struct slot *slots = calloc(nslots ? nslots : 1, sizeof(*slots));
    if (r->svc_enabled == NULL || slots == NULL) {
        free(slots);
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    rd->svc = slots;
    rd->nsvc = nslots;
    for (size_t c = 0; c < nslots; c++) {
        struct cg_buf path;
        cg_buf_init(&path, 0);
        cg_buf_printf(&path, "v1/projects/%s/services:batchGet?", r->o->project);
        for (size_t i = c * SERVICES_PER_GET; i < n && i < (c + 1) * SERVICES_PER_GET; i++) {
            cg_buf_printf(&path, "%snames=projects/%s/services/%s",
                          i == c * SERVICES_PER_GET ? "" : "&", r->o->project, w->services[i]);
        }
        if (path.data == NULL) {
            cg_err_set(&slots[c].err, CG_ENOMEM, "out of memory");
            continue;
        }
        submit(r, &slots[c], GCP_SERVICEUSAGE, "GET", path.data, NULL, "read the project's APIs",
               0);
        cg_buf_cleanup(&path);
    }
    return 0;
}

static void services_discard(struct reads *rd)
{
    for (size_t c = 0; c < rd->nsvc; c++) {
        slot_reset(&rd->svc[c]);
    }
    free(rd->svc);
    rd->svc = NULL;
    rd->nsvc = 0;
}

/* Takes the answers of services_submit (after the loop ran) and frees its slots. */
static int services_collect(struct run *r, struct reads *rd)
{
    const struct profile_gcp *w = r->w;
    size_t n = w->service_count;
    size_t nslots = rd->nsvc;
    struct slot *slots = rd->svc;
    int rc = 0;
    for (size_t c = 0; c < nslots; c++) {
        if (slots[c].err.code != 0) {
            int api_answer = slots[c].err.code == CG_EAUTH || slots[c].err.code == CG_ESTATUS ||
                             slots[c].err.code == CG_ENOTFOUND;
            if (api_answer && (r->o->mode == RC_MODE_PLAN || r->o->mode == RC_MODE_CHECK)) {
                /* e.g. Service Usage itself disabled: everything reads as not enabled. Only an
                 * answer of the API says so; a network or TLS failure says nothing about the
                 * project, and reading it as "disabled" would report drift that is not there. */
                r->svc_unknown = 1;
                CG_LOG(CG_LOG_WARN, "gcp", "%s", slots[c].err.msg);
            } else if (rc == 0) {
                fail_first(r, &slots[c].err);
                rc = slots[c].err.code;
            }
            continue;
        }
        size_t i;
        json_t *svc;
        json_array_foreach(json_object_get(slots[c].body, "services"), i, svc)
        {
            const char *name = str(json_object_get(svc, "config"), "name");
            for (size_t k = 0; k < n; k++) {
                if (strcmp(name, w->services[k]) == 0) {
                    r->svc_enabled[k] = strcmp(str(svc, "state"), "ENABLED") == 0;
                }
            }
        }
    }
    services_discard(rd);
    return rc;
}

/* A just-enabled API answers SERVICE_DISABLED from some replicas for a while, and a new
 * service account is missing from some: before depending on either, read it until
 * CONFIRM_READS reads in a row succeed (gcp_rest_confirm). */
#define CONFIRM_READS 2

static int confirm(struct run *r, struct slot *s, size_t n)
{
    cg_http_run(r->h);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].err.code != 0 && rc == 0) {
            fail_first(r, &s[i].err);
            rc = s[i].err.code;
        }
        slot_reset(&s[i]);
    }
    return rc;
}

static void submit_confirm(struct run *r, struct slot *s, enum gcp_api api, const char *path,
                           const char *label, int flags)
{
    slot_reset(s);
    if (path == NULL || gcp_rest_confirm(r->o->api, api, path, label, flags, CONFIRM_READS, on_slot,
                                         s, &s->err) < 0) {
        if (s->err.code == 0) {
            cg_err_set(&s->err, CG_ENOMEM, "out of memory");
        }
    }
}

/* The APIs cloudgrant calls next (IAM, Resource Manager), when they were just enabled. */
static int confirm_apis(struct run *r, const int *fresh)
{
    struct slot s[2] = {0};
    size_t n = 0;
    for (size_t i = 0; i < r->w->service_count; i++) {
        const char *svc = r->w->services[i];
        char *path = NULL;
        if (!fresh[i]) {
            continue;
        }
        if (strcmp(svc, "iam.googleapis.com") == 0) {
            path = cg_strfmt("v1/projects/%s/serviceAccounts?pageSize=1", r->o->project);
            submit_confirm(r, &s[n++], GCP_IAM, path, "confirm that the IAM API is enabled",
                           GCP_RETRY_SERVICE_DISABLED);
        } else if (strcmp(svc, "cloudresourcemanager.googleapis.com") == 0) {
            path = cg_strfmt("v1/projects/%s", r->o->project);
            submit_confirm(r, &s[n++], GCP_CRM, path,
                           "confirm that the Resource Manager API is enabled",
                           GCP_RETRY_SERVICE_DISABLED);
        }
        free(path);
    }
    return confirm(r, s, n);
}

/* Enables what is missing, at most SERVICES_PER_ENABLE per call, and waits for the
 * operations; an already-enabled answer (a no-op operation) costs no poll. */
static int enable_services(struct run *r)
{
    const struct profile_gcp *w = r->w;
    size_t missing = 0;
    for (size_t i = 0; i < w->service_count; i++) {
        missing += !r->svc_enabled[i];
    }
    if (missing == 0) {
        return 0;
    }
    size_t nslots = (missing + SERVICES_PER_ENABLE - 1) / SERVICES_PER_ENABLE;
    struct slot *slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    char *path = cg_strfmt("v1/projects/%s/services:batchEnable", r->o->project);
    size_t at = 0;
    for (size_t c = 0; c < nslots && path != NULL; c++) {
        json_t *ids = json_array();
        while (at < w->service_count && json_array_size(ids) < SERVICES_PER_ENABLE) {
            if (!r->svc_enabled[at]) {
                json_array_append_new(ids, json_string(w->services[at]));
            }
            at++;
        }
        json_t *body = json_pack("{s:o}", "serviceIds", ids);
        submit(r, &slots[c], GCP_SERVICEUSAGE, "POST", path, body, "enable the profile's APIs", 0);
        json_decref(body);
    }
    free(path);
    cg_http_run(r->h);
    /* the operations, polled together */
    struct slot *waits = calloc(nslots, sizeof(*waits));
    for (size_t c = 0; waits != NULL && c < nslots; c++) {
        if (slots[c].err.code != 0) {
            waits[c].err = slots[c].err;
            continue;
        }
        if (gcp_rest_wait(r->o->api, GCP_SERVICEUSAGE, slots[c].body, "enable the profile's APIs",
                          on_slot, &waits[c], &waits[c].err) < 0 &&
            waits[c].err.code == 0) {
            cg_err_set(&waits[c].err, CG_ENOMEM, "out of memory");
        }
    }
    cg_http_run(r->h);
    int rc = waits ? 0 : cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    for (size_t c = 0; waits != NULL && c < nslots; c++) {
        if (waits[c].err.code != 0 && rc == 0) {
            fail_first(r, &waits[c].err);
            rc = waits[c].err.code;
        }
        slot_reset(&waits[c]);
    }
    for (size_t c = 0; c < nslots; c++) {
        slot_reset(&slots[c]);
    }
    free(slots);
    free(waits);
    if (rc == 0) {
        int *fresh = calloc(w->service_count + 1, sizeof(int));
        for (size_t i = 0; i < w->service_count; i++) {
            if (fresh != NULL) {
                fresh[i] = !r->svc_enabled[i];
            }
            r->svc_enabled[i] = 1;
        }
        rc = fresh != NULL ? confirm_apis(r, fresh)
                           : cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        free(fresh);
    }
    return rc;
}

/* ---- reads ---- */

static json_t *policy_request(void)
{
    return json_pack("{s:{s:i}}", "options", "requestedPolicyVersion", 3);
}

enum { R_SA, R_POLICY, R_KEYS, R_SA_POLICY, R_FIXED };

/* flags: GCP_RETRY_SERVICE_DISABLED once the run has enabled an API (GCP answers
 * SERVICE_DISABLED for a while after, and a new account may be briefly invisible). */
static int state_submit(struct run *r, int flags, struct reads *rd)
{
    const struct profile_gcp *w = r->w;
    const char *p = r->o->project;
    size_t n = R_FIXED + w->custom_role_count;
    struct slot *s = calloc(n, sizeof(*s));
    if (r->roles == NULL) {
        r->roles = calloc(w->custom_role_count ? w->custom_role_count : 1, sizeof(json_t *));
    }
    if (s == NULL || r->roles == NULL) {
        free(s);
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    rd->st = s;
    rd->nst = n;
    char *label = cg_strfmt("read service account '%s'", r->email);
    char *keys = cg_strfmt("%s/keys?keyTypes=USER_MANAGED", r->sa_path);
    char *sapol = cg_strfmt("%s:getIamPolicy?options.requestedPolicyVersion=3", r->sa_path);
    char *pol = cg_strfmt("v1/projects/%s:getIamPolicy", p);
    json_t *preq = policy_request();
    if (label && keys && sapol && pol && preq) {
        submit(r, &s[R_SA], GCP_IAM, "GET", r->sa_path, NULL, label, flags);
        submit(r, &s[R_POLICY], GCP_CRM, "POST", pol, preq, "read the project's IAM policy", flags);
        submit(r, &s[R_KEYS], GCP_IAM, "GET", keys, NULL, label, flags);
        submit(r, &s[R_SA_POLICY], GCP_IAM, "POST", sapol, NULL, label, flags);
        for (size_t i = 0; i < w->custom_role_count; i++) {
            char *path = cg_strfmt("v1/projects/%s/roles/%s", p, w->custom_roles[i].id);
            char *l = cg_strfmt("read custom role '%s'", w->custom_roles[i].id);
            if (path && l) {
                submit(r, &s[R_FIXED + i], GCP_IAM, "GET", path, NULL, l, flags);
            } else {
                cg_err_set(&s[R_FIXED + i].err, CG_ENOMEM, "out of memory");
            }
            free(path);
            free(l);
        }
    } else {
        cg_err_set(&s[R_SA].err, CG_ENOMEM, "out of memory");
    }
    free(label);
    free(keys);
    free(sapol);
    free(pol);
    json_decref(preq);
    return 0;
}

/* Whether a state read failed in a way that is not an answer about the identity (an absent
 * account is one): a read sent before the APIs were known to be enabled is then sent again. */
static int state_failed(const struct reads *rd)
{
    for (size_t i = 0; i < rd->nst; i++) {
        const struct slot *x = &rd->st[i];
        if (x->err.code != 0 && !(not_found(x) && i != R_POLICY)) {
            return 1;
        }
    }
    return 0;
}

static void state_discard(struct reads *rd)
{
    for (size_t i = 0; i < rd->nst; i++) {
        slot_reset(&rd->st[i]);
    }
    free(rd->st);
    rd->st = NULL;
    rd->nst = 0;
}

/* Takes the answers of state_submit (after the loop ran) and frees its slots. */
static int state_collect(struct run *r, struct reads *rd)
{
    const struct profile_gcp *w = r->w;
    size_t n = rd->nst;
    struct slot *s = rd->st;
    int rc = 0;
    int reading = r->o->mode == RC_MODE_PLAN || r->o->mode == RC_MODE_CHECK;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct slot *x = &s[i];
        if (x->err.code == 0) {
            continue;
        }
        /* An absent service account also hides its keys and its policy. */
        int absent_ok = not_found(x) && i != R_POLICY;
        if (absent_ok) {
            continue;
        }
        if (reading && api_disabled(x)) {
            if (i == R_POLICY) {
                r->crm_disabled = 1;
            } else {
                r->iam_disabled = 1;
            }
            continue;
        }
        fail_first(r, &x->err);
        rc = x->err.code;
    }
    if (rc == 0) {
        r->sa = json_incref(s[R_SA].body);
        r->policy = s[R_POLICY].body ? json_incref(s[R_POLICY].body)
                                     : json_pack("{s:i, s:[]}", "version", 3, "bindings");
        json_t *k = json_object_get(s[R_KEYS].body, "keys");
        r->keys = json_is_array(k) ? json_incref(k) : json_array();
        r->sa_policy = s[R_SA_POLICY].body ? json_incref(s[R_SA_POLICY].body)
                                           : json_pack("{s:[]}", "bindings");
        for (size_t i = 0; i < w->custom_role_count; i++) {
            r->roles[i] = json_incref(s[R_FIXED + i].body);
        }
        if (r->sa != NULL && !owned(r->sa)) {
            rc = cg_err_set(&r->first, CG_EINVAL,
                            "service account %s exists and was not made by cloudgrant (its "
                            "description does not mention cloudgrant): cloudgrant will not take "
                            "it over; delete it, or choose another gcp.serviceAccount.id",
                            r->email);
        }
    }
    state_discard(rd);
    return rc;
}

/* ---- policies ---- */

static int has_member(json_t *binding, const char *member)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(binding, "members"), i, m)
    {
        if (same(json_string_value(m), member)) {
            return 1;
        }
    }
    return 0;
}

static int conditional(json_t *binding)
{
    return json_object_get(binding, "condition") != NULL;
}

/* Whether `policy` grants `role` to `member` without a condition. */
static int granted(json_t *policy, const char *role, const char *member)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(policy, "bindings"), i, b)
    {
        if (!conditional(b) && same(str(b, "role"), role) && has_member(b, member)) {
            return 1;
        }
    }
    return 0;
}

static int wanted(const char *role, const char *const *roles, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(roles[i], role) == 0) {
            return 1;
        }
    }
    return 0;
}

int rc_gcp_policy_apply(json_t *policy, const char *member, const char *const *roles, size_t nroles,
                        int prune)
{
    json_t *bindings = json_object_get(policy, "bindings");
    if (!json_is_array(bindings)) {
        bindings = json_array();
        if (bindings == NULL || json_object_set_new(policy, "bindings", bindings) < 0) {
            return CG_ENOMEM;
        }
    }
    size_t mlen = strlen(member);
    int changed = 0;
    /* removals: the member where it is not wanted, and "deleted:<member>?uid=" leftovers of an
     * earlier account of the same name */
    for (size_t i = 0; i < json_array_size(bindings);) {
        json_t *b = json_array_get(bindings, i);
        json_t *members = json_object_get(b, "members");
        int keep_member = conditional(b) || !prune || wanted(str(b, "role"), roles, nroles);
        for (size_t k = 0; json_is_array(members) && k < json_array_size(members);) {
            const char *m = json_string_value(json_array_get(members, k));
            int leftover = m && strncmp(m, "deleted:", 8) == 0 &&
                           strncmp(m + 8, member, mlen) == 0 && m[8 + mlen] == '?';
            if ((!keep_member && same(m, member)) || (leftover && !conditional(b))) {
                json_array_remove(members, k);
                changed = 1;
            } else {
                k++;
            }
        }
        if (json_array_size(members) == 0 && !conditional(b)) {
            json_array_remove(bindings, i);
            changed = 1;
        } else {
            i++;
        }
    }
    for (size_t r = 0; r < nroles; r++) {
        if (granted(policy, roles[r], member)) {
            continue;
        }
        json_t *target = NULL;
        size_t i;
        json_t *b;
        json_array_foreach(bindings, i, b)
        {
            if (!conditional(b) && same(str(b, "role"), roles[r])) {
                target = b;
                break;
            }
        }
        if (target == NULL) {
            target = json_pack("{s:s, s:[]}", "role", roles[r], "members");
            if (target == NULL || json_array_append_new(bindings, target) < 0) {
                return CG_ENOMEM;
            }
        }
        json_t *members = json_object_get(target, "members");
        if (!json_is_array(members)) {
            members = json_array();
            json_object_set_new(target, "members", members);
        }
        if (json_array_append_new(members, json_string(member)) < 0) {
            return CG_ENOMEM;
        }
        changed = 1;
    }
    return changed;
}

/* The roles the service account holds on the project: the profile's predefined roles and its
 * custom roles by full name. */
static char **project_roles(struct run *r, size_t *n)
{
    const struct profile_gcp *w = r->w;
    *n = w->role_count + w->custom_role_count;
    char **roles = calloc(*n ? *n : 1, sizeof(char *));
    for (size_t i = 0; roles != NULL && i < w->role_count; i++) {
        roles[i] = strdup(w->roles[i]);
    }
    for (size_t i = 0; roles != NULL && i < w->custom_role_count; i++) {
        roles[w->role_count + i] =
            cg_strfmt("projects/%s/roles/%s", r->o->project, w->custom_roles[i].id);
    }
    return roles;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* The grants on the service account itself: who may act as it (keyless). */
struct sa_grant {
    const char *role;
    const char *member; /* NULL: nobody */
};

static void sa_grants(const struct run *r, struct sa_grant g[2])
{
    int keyless = r->w->credential == PROFILE_GCP_KEYLESS;
    g[0] = (struct sa_grant){TOKEN_CREATOR, keyless ? r->w->impersonator : NULL};
    g[1] = (struct sa_grant){WI_USER, keyless ? r->w->workload_identity_user : NULL};
}

/* ---- compare ---- */

static char *perm_diff(json_t *have, const struct profile_gcp_role *want)
{
    struct cg_buf b;
    cg_buf_init(&b, 0);
    json_t *list = json_object_get(have, "includedPermissions");
    for (size_t i = 0; i < want->permission_count; i++) {
        int found = 0;
        size_t k;
        json_t *p;
        json_array_foreach(list, k, p)
        {
            found |= same(json_string_value(p), want->permissions[i]);
        }
        if (!found) {
            cg_buf_printf(&b, "%s+%s", b.len ? " " : "", want->permissions[i]);
        }
    }
    size_t k;
    json_t *p;
    json_array_foreach(list, k, p)
    {
        int found = 0;
        for (size_t i = 0; i < want->permission_count; i++) {
            found |= same(json_string_value(p), want->permissions[i]);
        }
        if (!found) {
            cg_buf_printf(&b, "%s-%s", b.len ? " " : "", json_string_value(p));
        }
    }
    return b.data; /* NULL when no difference */
}

/* What differs between a live custom role and the profile's; NULL when nothing. */
static char *role_diff(json_t *have, const struct profile_gcp_role *want)
{
    struct cg_buf b;
    cg_buf_init(&b, 0);
    char *perms = perm_diff(have, want);
    if (perms != NULL) {
        cg_buf_printf(&b, "permissions %s", perms);
        free(perms);
    }
    if (!same(str(have, "title"), want->title)) {
        cg_buf_printf(&b, "%stitle", b.len ? "; " : "");
    }
    if (!same(str(have, "description"), want->description)) {
        cg_buf_printf(&b, "%sdescription", b.len ? "; " : "");
    }
    const char *stage = json_string_value(json_object_get(have, "stage"));
    if (!same(stage ? stage : "GA", want->stage ? want->stage : "GA")) {
        cg_buf_printf(&b, "%sstage %s", b.len ? "; " : "", stage ? stage : "GA");
    }
    return b.data;
}

static int role_deleted(json_t *role)
{
    return json_is_true(json_object_get(role, "deleted"));
}

static const char *key_id_of(json_t *key)
{
    const char *name = str(key, "name");
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

static int key_live(const struct run *r, const char *id)
{
    size_t i;
    json_t *k;
    json_array_foreach(r->keys, i, k)
    {
        if (id != NULL && strcmp(key_id_of(k), id) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whether a new key is needed: key mode without a live key the platform has. */
static int key_needed(const struct run *r)
{
    return r->w->credential == PROFILE_GCP_KEY && !key_live(r, r->o->delivered_key_id);
}

static int compare(struct run *r, struct rc_list *out)
{
    const struct profile_gcp *w = r->w;
    const char *p = r->o->project;
    int drift = r->o->mode == RC_MODE_CHECK;
    for (size_t i = 0; i < w->service_count; i++) {
        if (!r->svc_enabled[i]) {
            char *id = cg_strfmt("projects/%s/services/%s", p, w->services[i]);
            add(out, "service", w->services[i], id, RC_CREATE,
                r->svc_unknown ? "Service Usage could not be read" : "disabled");
            free(id);
        }
    }
    if (r->sa == NULL) {
        add(out, "service-account", w->service_account.id, r->email, RC_CREATE,
            r->iam_disabled ? "the IAM API is disabled" : NULL);
    } else {
        if (!same(str(r->sa, "displayName"), w->service_account.display_name) ||
            !same(str(r->sa, "description"), w->service_account.description)) {
            add(out, "service-account", w->service_account.id, r->email, RC_UPDATE,
                "display name or description");
        }
        if (json_is_true(json_object_get(r->sa, "disabled"))) {
            add(out, "service-account", w->service_account.id, r->email, RC_UPDATE, "disabled");
        }
    }
    for (size_t i = 0; i < w->custom_role_count; i++) {
        const struct profile_gcp_role *want = &w->custom_roles[i];
        char *id = cg_strfmt("projects/%s/roles/%s", p, want->id);
        if (r->roles[i] == NULL) {
            add(out, "custom-role", want->id, id, RC_CREATE, NULL);
        } else if (role_deleted(r->roles[i])) {
            add(out, "custom-role", want->id, id, RC_CREATE, "deleted: undelete it");
        } else {
            char *d = role_diff(r->roles[i], want);
            if (d != NULL) {
                add(out, "custom-role", want->id, id, RC_UPDATE, d);
            }
            free(d);
        }
        free(id);
    }
    size_t nroles;
    char **roles = project_roles(r, &nroles);
    if (roles == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nroles; i++) {
        if (!granted(r->policy, roles[i], r->member)) {
            add(out, "binding", roles[i], r->member, RC_CREATE,
                r->crm_disabled ? "the Resource Manager API is disabled" : NULL);
        }
    }
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(r->policy, "bindings"), i, b)
    {
        if (!conditional(b) && has_member(b, r->member) &&
            !wanted(str(b, "role"), (const char *const *)roles, nroles)) {
            add(out, "binding", str(b, "role"), r->member, RC_DELETE, "not in the profile");
        }
    }
    free_strings(roles, nroles);

    struct sa_grant g[2];
    sa_grants(r, g);
    for (size_t k = 0; k < 2; k++) {
        json_array_foreach(json_object_get(r->sa_policy, "bindings"), i, b)
        {
            if (conditional(b) || !same(str(b, "role"), g[k].role)) {
                continue;
            }
            size_t m;
            json_t *mv;
            json_array_foreach(json_object_get(b, "members"), m, mv)
            {
                if (!same(json_string_value(mv), g[k].member)) {
                    char *name = cg_strfmt("%s on %s", g[k].role, r->email);
                    add(out, "binding", name, json_string_value(mv), RC_DELETE,
                        "may act as the service account, and the profile does not say so");
                    free(name);
                }
            }
        }
        if (g[k].member != NULL && !granted(r->sa_policy, g[k].role, g[k].member)) {
            char *name = cg_strfmt("%s on %s", g[k].role, r->email);
            add(out, "binding", name, g[k].member, RC_CREATE, NULL);
            free(name);
        }
    }

    /* keys */
    int judge = !drift || r->o->key_record_known;
    if (w->credential == PROFILE_GCP_KEY && judge && key_needed(r)) {
        add(out, "key", w->service_account.id, NULL, RC_CREATE,
            json_array_size(r->keys) ? "no live key was handed over" : NULL);
    }
    json_array_foreach(r->keys, i, b)
    {
        const char *id = key_id_of(b);
        int keep = w->credential == PROFILE_GCP_KEY && r->o->delivered_key_id != NULL &&
                   strcmp(id, r->o->delivered_key_id) == 0;
        if (!keep && (judge || w->credential == PROFILE_GCP_KEYLESS)) {
            add(out, "key", w->service_account.id, id, RC_DELETE,
                w->credential == PROFILE_GCP_KEYLESS ? "keyless profile"
                                                     : "not the key handed over");
        }
    }
    return 0;
}

/* ---- apply ---- */

static json_t *sa_body(const struct run *r)
{
    const struct profile_gcp *w = r->w;
    json_t *sa = json_object();
    if (w->service_account.display_name) {
        json_object_set_new(sa, "displayName", json_string(w->service_account.display_name));
    }
    if (w->service_account.description) {
        json_object_set_new(sa, "description", json_string(w->service_account.description));
    }
    return sa;
}

static json_t *role_body(const struct profile_gcp_role *want, const char *etag)
{
    json_t *perms = json_array();
    for (size_t i = 0; i < want->permission_count; i++) {
        json_array_append_new(perms, json_string(want->permissions[i]));
    }
    json_t *role = json_pack("{s:s, s:o, s:s}", "title", want->title, "includedPermissions", perms,
                             "stage", want->stage ? want->stage : "GA");
    if (role != NULL && want->description) {
        json_object_set_new(role, "description", json_string(want->description));
    }
    if (role != NULL && etag != NULL) {
        json_object_set_new(role, "etag", json_string(etag));
    }
    return role;
}

/* A failed write becomes the run's error with what to do, for the cases GCP's message alone
 * leaves unclear. */
static void explain(struct run *r, struct slot *s, const char *what)
{
    if (s->err.code == 0) {
        return;
    }
    if (strstr(s->err.msg, "disableServiceAccountKeyCreation") != NULL ||
        strstr(s->gerr.message, "Key creation is not allowed") != NULL) {
        cg_err_set(&s->err, CG_EINVAL,
                   "GCP: the organization policy iam.disableServiceAccountKeyCreation forbids "
                   "service-account keys in project %s: use the keyless mode "
                   "(--gcp-credential keyless --gcp-impersonator MEMBER), which grants the "
                   "platform's identity impersonation of %s instead of a key",
                   r->o->project, r->email);
    } else if (strcmp(what, "undelete") == 0 && s->gerr.status == 400) {
        size_t len = strlen(s->err.msg);
        snprintf(s->err.msg + len, sizeof(s->err.msg) - len, "%s",
                 " (a custom role deleted more than 7 days ago cannot be undeleted, and GCP "
                 "keeps its id for 37 days: give the role another id in the profile)");
    }
    fail_first(r, &s->err);
}

/* Phase 1: the account and the custom roles, together. */
static int apply_identity(struct run *r, struct rc_list *done)
{
    const struct profile_gcp *w = r->w;
    const char *p = r->o->project;
    size_t n = 2 + w->custom_role_count;
    struct slot *s = calloc(n, sizeof(*s));
    int *undeleted = calloc(w->custom_role_count + 1, sizeof(int));
    if (s == NULL || undeleted == NULL) {
        free(s);
        free(undeleted);
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    int create_sa = r->sa == NULL;
    if (create_sa) {
        json_t *body = json_pack("{s:s, s:o}", "accountId", w->service_account.id, "serviceAccount",
                                 sa_body(r));
        char *path = cg_strfmt("v1/projects/%s/serviceAccounts", p);
        char *label = cg_strfmt("create service account '%s'", w->service_account.id);
        submit(r, &s[0], GCP_IAM, "POST", path, body, label, 0);
        free(path);
        free(label);
        json_decref(body);
    } else {
        if (!same(str(r->sa, "displayName"), w->service_account.display_name) ||
            !same(str(r->sa, "description"), w->service_account.description)) {
            json_t *body = json_pack("{s:o, s:s}", "serviceAccount", sa_body(r), "updateMask",
                                     "displayName,description");
            char *label = cg_strfmt("update service account '%s'", r->email);
            submit(r, &s[0], GCP_IAM, "PATCH", r->sa_path, body, label, 0);
            free(label);
            json_decref(body);
            add(done, "service-account", w->service_account.id, r->email, RC_UPDATE,
                "display name or description");
        }
        if (json_is_true(json_object_get(r->sa, "disabled"))) {
            char *path = cg_strfmt("%s:enable", r->sa_path);
            char *label = cg_strfmt("enable service account '%s'", r->email);
            json_t *body = json_object();
            submit(r, &s[1], GCP_IAM, "POST", path, body, label, 0);
            json_decref(body);
            free(path);
            free(label);
            add(done, "service-account", w->service_account.id, r->email, RC_UPDATE, "enabled");
        }
    }
    for (size_t i = 0; i < w->custom_role_count; i++) {
        const struct profile_gcp_role *want = &w->custom_roles[i];
        json_t *have = r->roles[i];
        char *label = NULL;
        if (have == NULL) {
            json_t *body =
                json_pack("{s:s, s:o}", "roleId", want->id, "role", role_body(want, NULL));
            char *path = cg_strfmt("v1/projects/%s/roles", p);
            label = cg_strfmt("create custom role '%s'", want->id);
            submit(r, &s[2 + i], GCP_IAM, "POST", path, body, label, 0);
            free(path);
            json_decref(body);
        } else if (role_deleted(have)) {
            json_t *body = json_pack("{s:s}", "etag", str(have, "etag"));
            char *path = cg_strfmt("v1/projects/%s/roles/%s:undelete", p, want->id);
            label = cg_strfmt("undelete custom role '%s'", want->id);
            submit(r, &s[2 + i], GCP_IAM, "POST", path, body, label, 0);
            undeleted[i] = 1;
            free(path);
            json_decref(body);
        } else {
            char *d = role_diff(have, want);
            if (d != NULL) {
                json_t *body = role_body(want, str(have, "etag"));
                char *path = cg_strfmt("v1/projects/%s/roles/%s?updateMask=title,description,"
                                       "includedPermissions,stage",
                                       p, want->id);
                label = cg_strfmt("update custom role '%s'", want->id);
                submit(r, &s[2 + i], GCP_IAM, "PATCH", path, body, label, 0);
                free(path);
                json_decref(body);
                char *id = cg_strfmt("projects/%s/roles/%s", p, want->id);
                add(done, "custom-role", want->id, id, RC_UPDATE, d);
                free(id);
            }
            free(d);
        }
        free(label);
    }
    cg_http_run(r->h);

    int rc = 0;
    if (create_sa) {
        if (s[0].err.code != 0 && strcmp(s[0].gerr.rpc, "ALREADY_EXISTS") == 0) {
            /* another run made it in the meantime: fine if it is ours (checked on rerun) */
            CG_LOG(CG_LOG_INFO, "gcp", "service account %s was created concurrently", r->email);
            slot_reset(&s[0]);
        } else if (s[0].err.code == 0) {
            add(done, "service-account", w->service_account.id, r->email, RC_CREATE, NULL);
            json_decref(r->sa);
            r->sa = json_incref(s[0].body);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i].err.code != 0) {
            explain(r, &s[i],
                    i < 2              ? "service account"
                    : undeleted[i - 2] ? "undelete"
                                       : "custom role");
            rc = rc ? rc : s[i].err.code;
        } else if (i >= 2 && (r->roles[i - 2] == NULL || undeleted[i - 2])) {
            char *id = cg_strfmt("projects/%s/roles/%s", p, w->custom_roles[i - 2].id);
            add(done, "custom-role", w->custom_roles[i - 2].id, id, RC_CREATE,
                undeleted[i - 2] ? "undeleted" : NULL);
            free(id);
            json_decref(r->roles[i - 2]);
            r->roles[i - 2] = json_incref(s[i].body);
        }
    }
    /* An undeleted role comes back as it was: bring it in line in one more round. */
    for (size_t i = 0; rc == 0 && i < w->custom_role_count; i++) {
        char *d = undeleted[i] ? role_diff(r->roles[i], &w->custom_roles[i]) : NULL;
        if (d != NULL) {
            const struct profile_gcp_role *want = &w->custom_roles[i];
            json_t *body = role_body(want, str(r->roles[i], "etag"));
            char *path = cg_strfmt("v1/projects/%s/roles/%s?updateMask=title,description,"
                                   "includedPermissions,stage",
                                   p, want->id);
            char *label = cg_strfmt("update custom role '%s'", want->id);
            submit(r, &s[2 + i], GCP_IAM, "PATCH", path, body, label, 0);
            cg_http_run(r->h);
            if (s[2 + i].err.code != 0) {
                fail_first(r, &s[2 + i].err);
                rc = s[2 + i].err.code;
            }
            free(path);
            free(label);
            json_decref(body);
        }
        free(d);
    }
    for (size_t i = 0; i < n; i++) {
        slot_reset(&s[i]);
    }
    if (rc == 0 && create_sa) {
        /* the key and the grants that follow name the new account */
        char *label = cg_strfmt("confirm that service account '%s' exists", r->email);
        submit_confirm(r, &s[0], GCP_IAM, r->sa_path, label, GCP_RETRY_NOT_FOUND);
        free(label);
        rc = confirm(r, s, 1);
    }
    free(s);
    free(undeleted);
    return rc;
}

/* Read-modify-write of one IAM policy (the project's, or the service account's own), re-read
 * and re-applied when another writer changed it in between (409 ABORTED on the etag). */
struct policy_job {
    enum gcp_api api;
    const char *get_path;
    json_t *get_body; /* NULL for the service account's (query parameter) */
    const char *set_path;
    const char *label;
    json_t *policy; /* current; owned */
    int (*delta)(struct run *r, json_t *policy, void *arg);
    void *arg;
    int changed;
    struct slot s;
    int state; /* 0 apply, 1 re-read, 2 done */
    int attempts;
};

static void policy_submit(struct run *r, struct policy_job *j)
{
    if (j->state == 1) {
        submit(r, &j->s, j->api, "POST", j->get_path, j->get_body, j->label,
               GCP_RETRY_SERVICE_DISABLED);
        return;
    }
    int d = j->delta(r, j->policy, j->arg);
    if (d < 0) {
        cg_err_set(&j->s.err, CG_ENOMEM, "out of memory");
        j->state = 2;
        return;
    }
    if (d == 0) {
        j->state = 2;
        return;
    }
    j->changed = 1;
    /* any conditional binding needs version 3, which is also what was read */
    json_object_set_new(j->policy, "version", json_integer(3));
    json_t *body = json_pack("{s:O, s:s}", "policy", j->policy, "updateMask", "bindings,etag");
    /* A new service account can be refused as a member for a while ("does not exist"). */
    submit(r, &j->s, j->api, "POST", j->set_path, body, j->label, GCP_RETRY_NOT_FOUND);
    json_decref(body);
}

/* Runs the jobs together until each is done or failed. */
static int run_policy_jobs(struct run *r, struct policy_job *jobs, size_t n)
{
    for (;;) {
        int pending = 0;
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].state != 2) {
                policy_submit(r, &jobs[i]);
                pending += jobs[i].state != 2;
            }
        }
        if (!pending) {
            break;
        }
        cg_http_run(r->h);
        for (size_t i = 0; i < n; i++) {
            struct policy_job *j = &jobs[i];
            if (j->state == 2) {
                continue;
            }
            if (j->s.err.code != 0) {
                int conflict = strcmp(j->s.gerr.rpc, "ABORTED") == 0 || j->s.gerr.status == 409;
                if (j->state == 0 && conflict && ++j->attempts < POLICY_ATTEMPTS) {
                    CG_LOG(CG_LOG_INFO, "gcp", "%s: changed concurrently; reading it again",
                           j->label);
                    j->state = 1;
                    slot_reset(&j->s);
                    continue;
                }
                j->state = 2;
                continue;
            }
            json_decref(j->policy);
            j->policy = json_incref(j->s.body);
            j->state = j->state == 1 ? 0 : 2;
            slot_reset(&j->s);
        }
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].s.err.code != 0) {
            fail_first(r, &jobs[i].s.err);
            rc = rc ? rc : jobs[i].s.err.code;
        }
    }
    return rc;
}

struct project_delta {
    char **roles;
    size_t n;
    int offboard;
};

static int project_delta(struct run *r, json_t *policy, void *arg)
{
    struct project_delta *d = arg;
    return rc_gcp_policy_apply(policy, r->member, (const char *const *)d->roles,
                               d->offboard ? 0 : d->n, 1);
}

static int sa_delta(struct run *r, json_t *policy, void *arg)
{
    (void)arg;
    struct sa_grant g[2];
    sa_grants(r, g);
    int changed = 0;
    for (size_t k = 0; k < 2; k++) {
        /* only the profile's member holds these roles on the account */
        json_t *bindings = json_object_get(policy, "bindings");
        for (size_t i = 0; json_is_array(bindings) && i < json_array_size(bindings);) {
            json_t *b = json_array_get(bindings, i);
            if (!conditional(b) && same(str(b, "role"), g[k].role) &&
                (json_array_size(json_object_get(b, "members")) != (g[k].member ? 1u : 0u) ||
                 (g[k].member && !has_member(b, g[k].member)))) {
                json_array_remove(bindings, i);
                changed = 1;
            } else {
                i++;
            }
        }
        if (g[k].member != NULL) {
            const char *one[] = {g[k].role};
            int c = rc_gcp_policy_apply(policy, g[k].member, one, 1, 0);
            if (c < 0) {
                return c;
            }
            changed |= c;
        }
    }
    return changed;
}

static int decode_key(json_t *key, char **key_id, char **key_file)
{
    const char *data = json_string_value(json_object_get(key, "privateKeyData"));
    const char *id = key_id_of(key);
    if (data == NULL || id[0] == '\0') {
        return CG_EINVAL;
    }
    unsigned char *raw = NULL;
    size_t len = 0;
    if (cg_b64_decode(data, strlen(data), &raw, &len) < 0) {
        return CG_EINVAL;
    }
    char *text = malloc(len + 1);
    if (text == NULL) {
        cg_wipe(raw, len);
        free(raw);
        return CG_ENOMEM;
    }
    memcpy(text, raw, len);
    text[len] = '\0';
    cg_wipe(raw, len);
    free(raw);
    cg_wipe((void *)data, strlen(data));
    *key_id = strdup(id);
    *key_file = text;
    return *key_id ? 0 : CG_ENOMEM;
}

static void submit_key_create(struct run *r, struct slot *s, const char *sa_path, const char *email)
{
    char *path = cg_strfmt("%s/keys", sa_path);
    char *label = cg_strfmt("create a key for service account '%s'", email);
    json_t *body = json_pack("{s:s, s:s}", "privateKeyType", "TYPE_GOOGLE_CREDENTIALS_FILE",
                             "keyAlgorithm", "KEY_ALG_RSA_2048");
    /* a new account's keys endpoint can answer 404 for a moment */
    submit(r, s, GCP_IAM, "POST", path, body, label, GCP_RETRY_NOT_FOUND | GCP_SEND_ONCE);
    json_decref(body);
    free(path);
    free(label);
}

static int delete_keys(struct run *r, const char **ids, size_t n, struct rc_list *done,
                       const char *why)
{
    struct slot *s = calloc(n ? n : 1, sizeof(*s));
    if (s == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char *path = cg_strfmt("%s/keys/%s", r->sa_path, ids[i]);
        char *label = cg_strfmt("delete key %s of service account '%s'", ids[i], r->email);
        submit(r, &s[i], GCP_IAM, "DELETE", path, NULL, label, 0);
        free(path);
        free(label);
    }
    cg_http_run(r->h);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].err.code != 0 && !not_found(&s[i])) {
            fail_first(r, &s[i].err);
            rc = rc ? rc : s[i].err.code;
        } else {
            add(done, "key", r->w->service_account.id, ids[i], RC_DELETE, why);
        }
        slot_reset(&s[i]);
    }
    free(s);
    return rc;
}

/* Phase 2: what binds the account, together: the project's bindings, its own policy (who may
 * act as it), the key. */
static int apply_grants(struct run *r, struct rc_list *done)
{
    const struct profile_gcp *w = r->w;
    size_t nroles;
    char **roles = project_roles(r, &nroles);
    char *get = cg_strfmt("v1/projects/%s:getIamPolicy", r->o->project);
    char *set = cg_strfmt("v1/projects/%s:setIamPolicy", r->o->project);
    char *sa_get = cg_strfmt("%s:getIamPolicy?options.requestedPolicyVersion=3", r->sa_path);
    char *sa_set = cg_strfmt("%s:setIamPolicy", r->sa_path);
    json_t *preq = policy_request();
    int rc = 0;
    if (roles == NULL || get == NULL || set == NULL || sa_get == NULL || sa_set == NULL ||
        preq == NULL) {
        rc = cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        goto out;
    }
    struct project_delta pd = {roles, nroles, 0};
    struct policy_job jobs[2] = {
        {.api = GCP_CRM,
         .get_path = get,
         .get_body = preq,
         .set_path = set,
         .label = "update the project's IAM policy",
         .policy = json_deep_copy(r->policy),
         .delta = project_delta,
         .arg = &pd},
        {.api = GCP_IAM,
         .get_path = sa_get,
         .set_path = sa_set,
         .label = "update who may act as the service account",
         .policy = json_deep_copy(r->sa_policy),
         .delta = sa_delta},
    };
    /* the key goes out with the first round */
    struct slot key = {0};
    int make_key = key_needed(r);
    if (make_key) {
        submit_key_create(r, &key, r->sa_path, r->email);
    }
    rc = run_policy_jobs(r, jobs, 2);
    if (make_key) {
        /* with no policy to change, run_policy_jobs sends nothing and never runs the loop:
         * the key's answer is still to come */
        cg_http_run(r->h);
        if (key.err.code != 0) {
            explain(r, &key, "key");
            rc = rc ? rc : key.err.code;
        } else if (decode_key(key.body, &r->res->key_id, &r->res->key_file) < 0) {
            rc = rc ? rc
                    : cg_err_set(&r->first, CG_EIO,
                                 "GCP create a key for service account '%s': the answer holds no "
                                 "usable key",
                                 r->email);
            fail_first(r, &r->first);
        } else {
            add(done, "key", w->service_account.id, r->res->key_id, RC_CREATE, NULL);
        }
        slot_reset(&key);
    }
    /* what changed, for the report */
    for (size_t i = 0; i < nroles; i++) {
        if (!granted(r->policy, roles[i], r->member) &&
            granted(jobs[0].policy, roles[i], r->member)) {
            add(done, "binding", roles[i], r->member, RC_CREATE, NULL);
        }
    }
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(r->policy, "bindings"), i, b)
    {
        if (!conditional(b) && has_member(b, r->member) &&
            !granted(jobs[0].policy, str(b, "role"), r->member)) {
            add(done, "binding", str(b, "role"), r->member, RC_DELETE, "not in the profile");
        }
    }
    if (jobs[1].changed && jobs[1].s.err.code == 0) {
        char *name = cg_strfmt("who may act as %s", r->email);
        add(done, "binding", name, w->impersonator ? w->impersonator : w->workload_identity_user,
            RC_UPDATE, NULL);
        free(name);
    }
    for (size_t k = 0; k < 2; k++) {
        json_decref(jobs[k].policy);
        slot_reset(&jobs[k].s);
    }
    /* Live keys the platform does not have: with a new key they go once it is delivered (the
     * caller's job); otherwise now. */
    if (rc == 0) {
        const char **stale = calloc(json_array_size(r->keys) + 1, sizeof(char *));
        size_t ns = 0;
        json_array_foreach(r->keys, i, b)
        {
            const char *id = key_id_of(b);
            int keep = w->credential == PROFILE_GCP_KEY && r->o->delivered_key_id != NULL &&
                       strcmp(id, r->o->delivered_key_id) == 0;
            if (!keep && stale != NULL) {
                stale[ns++] = id;
            }
        }
        if (make_key && ns > 0) {
            r->res->stale_keys = calloc(ns, sizeof(char *));
            for (size_t k = 0; r->res->stale_keys != NULL && k < ns; k++) {
                r->res->stale_keys[k] = strdup(stale[k]);
                r->res->stale_count++;
            }
        } else if (ns > 0) {
            rc = delete_keys(r, stale, ns, done,
                             w->credential == PROFILE_GCP_KEYLESS ? "keyless profile"
                                                                  : "not the key handed over");
        }
        free(stale);
    }
out:
    free_strings(roles, nroles);
    free(get);
    free(set);
    free(sa_get);
    free(sa_set);
    json_decref(preq);
    return rc;
}

/* ---- offboard ---- */

static int role_in_use(json_t *policy, const char *role)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(policy, "bindings"), i, b)
    {
        if (same(str(b, "role"), role)) {
            return 1;
        }
    }
    return 0;
}

static int offboard(struct run *r, struct rc_list *done)
{
    const struct profile_gcp *w = r->w;
    const char *p = r->o->project;
    size_t nroles;
    char **roles = project_roles(r, &nroles);
    char *get = cg_strfmt("v1/projects/%s:getIamPolicy", p);
    char *set = cg_strfmt("v1/projects/%s:setIamPolicy", p);
    json_t *preq = policy_request();
    int rc = 0;
    if (roles == NULL || get == NULL || set == NULL || preq == NULL) {
        rc = cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        goto out;
    }
    /* the bindings first, so no role is left granted to a deleted account */
    struct project_delta pd = {roles, nroles, 1};
    struct policy_job job = {.api = GCP_CRM,
                             .get_path = get,
                             .get_body = preq,
                             .set_path = set,
                             .label = "update the project's IAM policy",
                             .policy = json_deep_copy(r->policy),
                             .delta = project_delta,
                             .arg = &pd};
    rc = run_policy_jobs(r, &job, 1);
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(r->policy, "bindings"), i, b)
    {
        if (!conditional(b) && has_member(b, r->member) && rc == 0) {
            add(done, "binding", str(b, "role"), r->member, RC_DELETE, NULL);
        }
    }
    if (rc < 0) {
        json_decref(job.policy);
        goto out;
    }
    size_t n = 1 + w->custom_role_count;
    struct slot *s = calloc(n, sizeof(*s));
    int *deleting = calloc(n, sizeof(int));
    if (s == NULL || deleting == NULL) {
        free(s);
        free(deleting);
        json_decref(job.policy);
        rc = cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        goto out;
    }
    if (r->sa != NULL) {
        char *label = cg_strfmt("delete service account '%s'", r->email);
        submit(r, &s[0], GCP_IAM, "DELETE", r->sa_path, NULL, label, 0);
        deleting[0] = 1;
        free(label);
    }
    for (size_t k = 0; k < w->custom_role_count; k++) {
        const char *id = w->custom_roles[k].id;
        char *full = cg_strfmt("projects/%s/roles/%s", p, id);
        if (r->roles[k] == NULL || role_deleted(r->roles[k])) {
            free(full);
            continue;
        }
        if (full != NULL && role_in_use(job.policy, full)) {
            /* shared by another cluster's account, as the seed's project-wide role is */
            add(done, "custom-role", id, full, RC_NONE, "kept: still bound to other members");
        } else {
            char *path = cg_strfmt("v1/projects/%s/roles/%s", p, id);
            char *label = cg_strfmt("delete custom role '%s'", id);
            submit(r, &s[1 + k], GCP_IAM, "DELETE", path, NULL, label, 0);
            deleting[1 + k] = 1;
            free(path);
            free(label);
        }
        free(full);
    }
    json_decref(job.policy);
    cg_http_run(r->h);
    for (size_t k = 0; k < n; k++) {
        if (!deleting[k]) {
            continue;
        }
        if (s[k].err.code != 0 && !not_found(&s[k])) {
            fail_first(r, &s[k].err);
            rc = rc ? rc : s[k].err.code;
        } else if (k == 0) {
            add(done, "service-account", w->service_account.id, r->email, RC_DELETE, NULL);
        } else {
            char *full = cg_strfmt("projects/%s/roles/%s", p, w->custom_roles[k - 1].id);
            add(done, "custom-role", w->custom_roles[k - 1].id, full, RC_DELETE, NULL);
            free(full);
        }
        slot_reset(&s[k]);
    }
    free(s);
    free(deleting);
out:
    free_strings(roles, nroles);
    free(get);
    free(set);
    json_decref(preq);
    return rc;
}

/* ---- entry points ---- */

static void resources(struct run *r)
{
    const struct profile_gcp *w = r->w;
    struct rc_list *l = &r->res->resources;
    add(l, "service-account", w->service_account.id, r->email, RC_NONE, NULL);
    for (size_t i = 0; i < w->custom_role_count; i++) {
        char *id = cg_strfmt("projects/%s/roles/%s", r->o->project, w->custom_roles[i].id);
        add(l, "custom-role", w->custom_roles[i].id, id, RC_NONE, NULL);
        free(id);
    }
    size_t n;
    char **roles = project_roles(r, &n);
    for (size_t i = 0; roles != NULL && i < n; i++) {
        add(l, "binding", roles[i], r->member, RC_NONE, NULL);
    }
    free_strings(roles, n);
}

int rc_gcp_run(struct cg_http *h, const struct rc_gcp_opts *o, struct rc_gcp_result *res,
               struct cg_err *err)
{
    struct run r = {.h = h, .o = o, .w = o->want, .res = res};
    memset(res, 0, sizeof(*res));
    r.email = cg_strfmt("%s@%s.iam.gserviceaccount.com", o->want->service_account.id, o->project);
    r.member = r.email ? cg_strfmt("serviceAccount:%s", r.email) : NULL;
    r.sa_path =
        r.email ? cg_strfmt("v1/projects/%s/serviceAccounts/%s", o->project, r.email) : NULL;
    res->email = r.email ? strdup(r.email) : NULL;
    int rc = 0;
    if (r.email == NULL || r.member == NULL || r.sa_path == NULL || res->email == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    int phases = 0;
    /* The identity's state is read alongside the APIs' (one round, not two): on a project
     * whose APIs are enabled (every rerun and check) those answers stand. In apply mode they
     * are read again, waiting out SERVICE_DISABLED, when the run had to enable an API or when
     * one of them failed. */
    struct reads rd = {0};
    rc = services_submit(&r, &rd);
    if (rc == 0) {
        rc = state_submit(&r, 0, &rd);
    }
    cg_http_run(h);
    if (rc == 0) {
        rc = services_collect(&r, &rd);
    }
    int reread = 0;
    if (rc == 0 && (o->mode == RC_MODE_APPLY)) {
        struct rc_list before = {0};
        for (size_t i = 0; i < r.w->service_count; i++) {
            if (!r.svc_enabled[i]) {
                char *id = cg_strfmt("projects/%s/services/%s", o->project, r.w->services[i]);
                add(&before, "service", r.w->services[i], id, RC_CREATE, NULL);
                free(id);
            }
        }
        rc = enable_services(&r);
        for (size_t i = 0; rc == 0 && i < before.count; i++) {
            const struct rc_entry *e = &before.items[i];
            add(&res->entries, e->kind, e->name, e->id, e->change, e->detail);
        }
        phases += before.count > 0;
        reread = before.count > 0 || state_failed(&rd);
        rc_list_cleanup(&before);
    }
    if (rc == 0 && reread) {
        state_discard(&rd);
        rc = state_submit(&r, GCP_RETRY_SERVICE_DISABLED, &rd);
        cg_http_run(h);
    }
    if (rc == 0) {
        rc = state_collect(&r, &rd);
    }
    services_discard(&rd);
    state_discard(&rd);
    if (rc == 0 && (o->mode == RC_MODE_PLAN || o->mode == RC_MODE_CHECK)) {
        rc = compare(&r, &res->entries);
    } else if (rc == 0 && o->mode == RC_MODE_APPLY) {
        struct rc_list todo = {0};
        rc = compare(&r, &todo);
        int identity_work = 0;
        for (size_t i = 0; i < todo.count; i++) {
            const char *k = todo.items[i].kind;
            identity_work |= strcmp(k, "service-account") == 0 || strcmp(k, "custom-role") == 0;
        }
        rc_list_cleanup(&todo);
        if (rc == 0 && identity_work) {
            rc = apply_identity(&r, &res->entries);
            phases++;
        }
        if (rc == 0) {
            rc = apply_grants(&r, &res->entries);
            phases++;
        }
        if (rc == 0) {
            resources(&r);
        }
    } else if (rc == 0 && o->mode == RC_MODE_OFFBOARD) {
        if (r.sa == NULL && r.sa_policy != NULL) {
            CG_LOG(CG_LOG_INFO, "gcp", "service account %s does not exist", r.email);
        }
        rc = offboard(&r, &res->entries);
        phases = 2;
    }
    res->critical_path = phases;
    if (rc < 0) {
        if (r.first.code != 0) {
            *err = r.first;
        } else {
            cg_err_set(err, rc, "GCP reconcile failed");
        }
        rc = err->code;
    }
out:
    free(r.email);
    free(r.member);
    free(r.sa_path);
    free(r.svc_enabled);
    json_decref(r.sa);
    for (size_t i = 0; r.roles != NULL && i < o->want->custom_role_count; i++) {
        json_decref(r.roles[i]);
    }
    free(r.roles);
    json_decref(r.policy);
    json_decref(r.keys);
    json_decref(r.sa_policy);
    return rc;
}

void rc_gcp_result_cleanup(struct rc_gcp_result *r)
{
    rc_list_cleanup(&r->entries);
    rc_list_cleanup(&r->resources);
    free(r->email);
    free(r->key_id);
    cg_secret_free(r->key_file);
    free_strings(r->stale_keys, r->stale_count);
    memset(r, 0, sizeof(*r));
}

int rc_gcp_delete_key(struct cg_http *h, struct gcp_rest *api, const char *project,
                      const char *email, const char *key_id, struct cg_err *err)
{
    struct rc_gcp_opts o = {.api = api, .project = project};
    struct run r = {.h = h, .o = &o};
    char *path = cg_strfmt("v1/projects/%s/serviceAccounts/%s/keys/%s", project, email, key_id);
    char *label = cg_strfmt("delete key %s of service account '%s'", key_id, email);
    struct slot s = {0};
    if (path == NULL || label == NULL) {
        free(path);
        free(label);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    submit(&r, &s, GCP_IAM, "DELETE", path, NULL, label, 0);
    cg_http_run(h);
    free(path);
    free(label);
    int rc = 0;
    if (s.err.code != 0 && !not_found(&s)) {
        *err = s.err;
        rc = err->code;
    }
    slot_reset(&s);
    return rc;
}

int rc_gcp_create_key(struct cg_http *h, struct gcp_rest *api, const char *project,
                      const char *email, char **key_id, char **key_file, struct cg_err *err)
{
    struct rc_gcp_opts o = {.api = api, .project = project};
    struct run r = {.h = h, .o = &o, .email = (char *)email};
    char *sa_path = cg_strfmt("v1/projects/%s/serviceAccounts/%s", project, email);
    if (sa_path == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    struct slot s = {0};
    submit_key_create(&r, &s, sa_path, email);
    cg_http_run(h);
    free(sa_path);
    int rc = 0;
    if (s.err.code != 0) {
        explain(&r, &s, "key");
        *err = r.first;
        rc = err->code;
    } else if ((rc = decode_key(s.body, key_id, key_file)) < 0) {
        rc = cg_err_set(err, CG_EIO,
                        "GCP create a key for service account '%s': the answer holds no usable "
                        "key",
                        email);
    }
    slot_reset(&s);
    return rc;
}
