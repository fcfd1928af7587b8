/* agent/rc_aws.c: AWS IAM reconcile (user mode and cross-account role mode). */
#include "rc_aws.h"

#include "aws_query.h"
#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_OWNER_KEY   "managed-by"
#define TAG_OWNER_VALUE "cloudgrant"
#define TAG_CLUSTER_KEY "cloudgrant/cluster-id"
/* IAM keeps at most five versions of a managed policy. */
#define MAX_POLICY_VERSIONS 5

struct cust_state {
    int exists;
    json_t *policy; /* GetPolicy's Policy object */
    char *arn;      /* desired ARN */
    char *doc;      /* default version's document (decoded JSON text) */
};

struct actual {
    int exists;
    json_t *principal;    /* User or Role object */
    json_t *attached;     /* [{PolicyName, PolicyArn}] */
    json_t *inline_names; /* ["name", ...] */
    json_t *inline_docs;  /* {name: document} for the profile's inline policies that exist */
    json_t *keys;         /* [{AccessKeyId, Status, ...}] */
    struct cust_state *cust;
};

enum op_kind {
    OP_CREATE_PRINCIPAL,
    OP_TAG_PRINCIPAL,
    OP_UPDATE_TRUST,
    OP_UPDATE_ROLE,
    OP_CREATE_POLICY,
    OP_UPDATE_POLICY,
    OP_ATTACH,
    OP_DETACH,
    OP_PUT_INLINE,
    OP_DELETE_INLINE,
    OP_DELETE_KEY,
    OP_CREATE_KEY,
    OP_DELETE_POLICY,
    OP_DELETE_PRINCIPAL,
};

struct run;

struct op {
    enum op_kind kind;
    struct run *run;
    char *arg;        /* policy ARN, inline name, key id */
    const char *name; /* policy name / inline name for display (borrowed) */
    const char *doc;  /* document to send (borrowed from the profile) */
    int cust;         /* customer policy index, or -1 */
    int node;         /* graph node index */
    /* multi-step ops */
    int step;
    json_t *versions;    /* DELETE_POLICY: the policy's versions, deleted in turn */
    size_t next_version; /* the index in versions to look at next */
    const char *entry_kind;
    enum rc_change change;
    char *detail;
};

struct run {
    const struct rc_aws_opts *o;
    const struct profile_aws *want;
    struct aws_query_client *iam;
    int role;          /* role mode */
    int new_principal; /* this run creates the user or role */
    struct actual act;
    struct op *ops;
    size_t nops;
    size_t opcap;
    struct rc_aws_result *res;
    struct rc_graph graph;
    int pending;
    struct cg_err err;
    int phase;
    int done;
};

/* ---- small helpers ---- */

static const char *principal_word(const struct run *r)
{
    return r->role ? "role" : "user";
}

static const char *tag_value(json_t *tags, const char *key)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *k = json_string_value(json_object_get(t, "Key"));
        if (k != NULL && strcmp(k, key) == 0) {
            return json_string_value(json_object_get(t, "Value"));
        }
    }
    return NULL;
}

static int owned(json_t *obj)
{
    const char *v = tag_value(json_object_get(obj, "Tags"), TAG_OWNER_KEY);
    return v != NULL && strcmp(v, TAG_OWNER_VALUE) == 0;
}

static size_t list_size(json_t *a)
{
    return json_is_array(a) ? json_array_size(a) : 0;
}

static int attached_has(json_t *attached, const char *arn)
{
    size_t i;
    json_t *v;
    json_array_foreach(attached, i, v)
    {
        const char *a = json_string_value(json_object_get(v, "PolicyArn"));
        if (a != NULL && strcmp(a, arn) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *arn_name(const char *arn)
{
    const char *slash = strrchr(arn, '/');
    return slash ? slash + 1 : arn;
}

static void fail(struct run *r, const struct cg_err *e)
{
    if (r->err.code == 0) {
        r->err = *e;
        if (r->err.code == 0) {
            r->err.code = CG_EIO;
        }
    }
}

static void fail_oom(struct run *r)
{
    struct cg_err e = {0};
    cg_err_set(&e, CG_ENOMEM, "out of memory");
    fail(r, &e);
}

static int docs_equal(struct run *r, const char *want, const char *have, const char *what)
{
    int eq = 0;
    struct cg_err e = {0};
    if (have == NULL) {
        return 0;
    }
    if (policy_equal_text(want, have, &eq, &e) < 0) {
        /* an unparsable document in the account is drift, not our failure */
        CG_LOG(CG_LOG_WARN, "aws", "%s: %s", what, e.msg);
        return 0;
    }
    return eq;
}

/* Parameter lists are built on the stack: a few fixed ones plus tags. */
struct params {
    struct aws_param p[128]; /* IAM allows 50 tags: 100 names plus the call's own */
    size_t n;
    char bufs[112][32];
    int nb;
};

static void param(struct params *ps, const char *name, const char *value)
{
    if (ps->n < sizeof(ps->p) / sizeof(ps->p[0]) && value != NULL) {
        ps->p[ps->n].name = name;
        ps->p[ps->n].value = value;
        ps->n++;
    }
}

/* "Tags.member.<i>.<field>" in storage that lives as long as the parameter list. */
static const char *tag_name(struct params *ps, int i, const char *field)
{
    if (ps->nb >= (int)(sizeof(ps->bufs) / sizeof(ps->bufs[0]))) {
        return "";
    }
    char *b = ps->bufs[ps->nb++];
    snprintf(b, sizeof(ps->bufs[0]), "Tags.member.%d.%s", i, field);
    return b;
}

static void tag_params(struct params *ps, const struct run *r)
{
    int i = 1;
    param(ps, tag_name(ps, i, "Key"), TAG_OWNER_KEY);
    param(ps, tag_name(ps, i, "Value"), TAG_OWNER_VALUE);
    i++;
    if (r->o->cluster_id != NULL) {
        param(ps, tag_name(ps, i, "Key"), TAG_CLUSTER_KEY);
        param(ps, tag_name(ps, i, "Value"), r->o->cluster_id);
        i++;
    }
    for (size_t t = 0; t < r->want->tag_count && i <= 50; t++, i++) {
        param(ps, tag_name(ps, i, "Key"), r->want->tags[t].key);
        param(ps, tag_name(ps, i, "Value"), r->want->tags[t].value);
    }
}

static int tags_match(const struct run *r, json_t *have)
{
    const char *v = tag_value(have, TAG_OWNER_KEY);
    if (v == NULL || strcmp(v, TAG_OWNER_VALUE) != 0) {
        return 0;
    }
    if (r->o->cluster_id != NULL) {
        v = tag_value(have, TAG_CLUSTER_KEY);
        if (v == NULL || strcmp(v, r->o->cluster_id) != 0) {
            return 0;
        }
    }
    for (size_t t = 0; t < r->want->tag_count; t++) {
        v = tag_value(have, r->want->tags[t].key);
        if (v == NULL || strcmp(v, r->want->tags[t].value) != 0) {
            return 0;
        }
    }
    return 1;
}

/* ---- reading ---- */

struct read {
    struct run *r;
    int what;
    int index;
    const char *label;
};

enum {
    RD_PRINCIPAL,
    RD_ATTACHED,
    RD_INLINE_NAMES,
    RD_INLINE_DOC,
    RD_KEYS,
    RD_POLICY,
    RD_POLICY_VERSION
};

static void phase_done(struct run *r);

static void on_read(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                    void *data)
{
    struct read *rd = data;
    struct run *r = rd->r;
    int missing = err != NULL && aerr != NULL && strcmp(aerr->code, "NoSuchEntity") == 0;
    if (err != NULL && !missing) {
        fail(r, err);
    } else if (!missing) {
        switch (rd->what) {
        case RD_PRINCIPAL:
            r->act.exists = 1;
            r->act.principal = json_incref(json_object_get(result, r->role ? "Role" : "User"));
            break;
        case RD_ATTACHED:
            r->act.attached = json_incref(json_object_get(result, "AttachedPolicies"));
            break;
        case RD_INLINE_NAMES:
            r->act.inline_names = json_incref(json_object_get(result, "PolicyNames"));
            break;
        case RD_INLINE_DOC: {
            json_t *doc = json_object_get(result, "PolicyDocument");
            if (json_is_string(doc)) {
                json_object_set(r->act.inline_docs, r->want->inline_policies[rd->index].name, doc);
            }
            break;
        }
        case RD_KEYS:
            r->act.keys = json_incref(json_object_get(result, "AccessKeyMetadata"));
            break;
        case RD_POLICY:
            r->act.cust[rd->index].exists = 1;
            r->act.cust[rd->index].policy = json_incref(json_object_get(result, "Policy"));
            break;
        case RD_POLICY_VERSION: {
            const char *doc = json_string_value(
                json_object_get(json_object_get(result, "PolicyVersion"), "Document"));
            r->act.cust[rd->index].doc = doc ? strdup(doc) : NULL;
            break;
        }
        }
    }
    free(rd);
    if (--r->pending == 0) {
        phase_done(r);
    }
}

static void read_call(struct run *r, int what, int index, const char *action, struct params *ps,
                      const char *list_key)
{
    struct read *rd = calloc(1, sizeof(*rd));
    struct cg_err e = {0};
    if (rd == NULL) {
        fail_oom(r);
        return;
    }
    rd->r = r;
    rd->what = what;
    rd->index = index;
    r->pending++;
    int rc = list_key ? aws_query_call_all(r->iam, action, ps->p, ps->n, list_key, on_read, rd, &e)
                      : aws_query_call(r->iam, action, ps->p, ps->n, on_read, rd, &e);
    if (rc < 0) {
        r->pending--;
        free(rd);
        fail(r, &e);
    }
}

static void start_phase1(struct run *r)
{
    const char *name = r->want->name;
    const char *key = r->role ? "RoleName" : "UserName";
    struct params ps = {0};
    param(&ps, key, name);
    /* Every read about the principal goes out at once: each answers NoSuchEntity when the
     * principal does not exist, which costs nothing more than asking first. */
    read_call(r, RD_PRINCIPAL, 0, r->role ? "GetRole" : "GetUser", &ps, NULL);
    read_call(r, RD_ATTACHED, 0, r->role ? "ListAttachedRolePolicies" : "ListAttachedUserPolicies",
              &ps, "AttachedPolicies");
    read_call(r, RD_INLINE_NAMES, 0, r->role ? "ListRolePolicies" : "ListUserPolicies", &ps,
              "PolicyNames");
    if (!r->role) {
        read_call(r, RD_KEYS, 0, "ListAccessKeys", &ps, "AccessKeyMetadata");
    }
    for (size_t i = 0; i < r->want->inline_count; i++) {
        struct params pi = {0};
        param(&pi, key, name);
        param(&pi, "PolicyName", r->want->inline_policies[i].name);
        read_call(r, RD_INLINE_DOC, (int)i, r->role ? "GetRolePolicy" : "GetUserPolicy", &pi, NULL);
    }
    for (size_t i = 0; i < r->want->customer_count; i++) {
        struct params pp = {0};
        param(&pp, "PolicyArn", r->act.cust[i].arn);
        read_call(r, RD_POLICY, (int)i, "GetPolicy", &pp, NULL);
    }
}

static void start_phase2(struct run *r)
{
    for (size_t i = 0; i < r->want->customer_count; i++) {
        struct cust_state *c = &r->act.cust[i];
        const char *v =
            c->exists ? json_string_value(json_object_get(c->policy, "DefaultVersionId")) : NULL;
        if (v == NULL) {
            continue;
        }
        struct params ps = {0};
        param(&ps, "PolicyArn", c->arn);
        param(&ps, "VersionId", v);
        read_call(r, RD_POLICY_VERSION, (int)i, "GetPolicyVersion", &ps, NULL);
    }
}

/* ---- planning ---- */

static struct op *add_op(struct run *r, enum op_kind kind, const char *entry_kind,
                         enum rc_change change, const char *arg, const char *name, const char *doc,
                         int cust, const char *detail)
{
    if (r->nops == r->opcap) {
        size_t ncap = r->opcap ? r->opcap * 2 : 16;
        struct op *n = realloc(r->ops, ncap * sizeof(*n));
        if (n == NULL) {
            fail_oom(r);
            return NULL;
        }
        r->ops = n;
        r->opcap = ncap;
    }
    struct op *op = &r->ops[r->nops];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->run = r;
    op->entry_kind = entry_kind;
    op->change = change;
    op->arg = arg ? strdup(arg) : NULL;
    op->detail = detail ? strdup(detail) : NULL;
    op->name = name;
    op->doc = doc;
    op->cust = cust;
    op->node = -1;
    r->nops++;
    return op;
}

static const char *key_status(json_t *k)
{
    const char *s = json_string_value(json_object_get(k, "Status"));
    return s ? s : "Active";
}

/* Compares the actual state with the profile and lists the operations that converge it. */
static void plan_converge(struct run *r)
{
    const struct profile_aws *w = r->want;
    const char *pw = principal_word(r);
    struct actual *a = &r->act;

    if (!a->exists) {
        add_op(r, OP_CREATE_PRINCIPAL, pw, RC_CREATE, NULL, w->name, NULL, -1, NULL);
        r->new_principal = 1;
    } else {
        if (!tags_match(r, json_object_get(a->principal, "Tags"))) {
            add_op(r, OP_TAG_PRINCIPAL, pw, RC_UPDATE, NULL, w->name, NULL, -1, "tags");
        }
        if (r->role) {
            const char *trust =
                json_string_value(json_object_get(a->principal, "AssumeRolePolicyDocument"));
            if (!docs_equal(r, w->trust_policy, trust, "trust policy")) {
                add_op(r, OP_UPDATE_TRUST, "trust-policy", RC_UPDATE, NULL, w->name,
                       w->trust_policy, -1, NULL);
            }
            json_t *msd = json_object_get(a->principal, "MaxSessionDuration");
            long have =
                msd ? strtol(json_string_value(msd) ? json_string_value(msd) : "0", NULL, 10) : 0;
            if (w->max_session_duration > 0 && have != w->max_session_duration) {
                add_op(r, OP_UPDATE_ROLE, pw, RC_UPDATE, NULL, w->name, NULL, -1,
                       "max session duration");
            }
        }
    }
    for (size_t i = 0; i < w->customer_count; i++) {
        struct cust_state *c = &a->cust[i];
        const struct profile_policy *pp = &w->customer_policies[i];
        if (!c->exists) {
            add_op(r, OP_CREATE_POLICY, "policy", RC_CREATE, c->arn, pp->name, pp->document, (int)i,
                   NULL);
        } else if (!docs_equal(r, pp->document, c->doc, pp->name)) {
            add_op(r, OP_UPDATE_POLICY, "policy", RC_UPDATE, c->arn, pp->name, pp->document, (int)i,
                   "default version differs from the profile");
        }
    }
    for (size_t i = 0; i < w->managed_count; i++) {
        if (!attached_has(a->attached, w->managed_policy_arns[i])) {
            add_op(r, OP_ATTACH, "policy-attachment", RC_CREATE, w->managed_policy_arns[i],
                   arn_name(w->managed_policy_arns[i]), NULL, -1, NULL);
        }
    }
    for (size_t i = 0; i < w->customer_count; i++) {
        if (!attached_has(a->attached, a->cust[i].arn)) {
            add_op(r, OP_ATTACH, "policy-attachment", RC_CREATE, a->cust[i].arn,
                   w->customer_policies[i].name, NULL, (int)i, NULL);
        }
    }
    size_t j;
    json_t *v;
    json_array_foreach(a->attached, j, v)
    {
        const char *arn = json_string_value(json_object_get(v, "PolicyArn"));
        int wanted = 0;
        for (size_t i = 0; arn && i < w->managed_count; i++) {
            wanted |= strcmp(arn, w->managed_policy_arns[i]) == 0;
        }
        for (size_t i = 0; arn && i < w->customer_count; i++) {
            wanted |= strcmp(arn, a->cust[i].arn) == 0;
        }
        if (arn != NULL && !wanted) {
            add_op(r, OP_DETACH, "policy-attachment", RC_DELETE, arn, arn_name(arn), NULL, -1,
                   "attached but not in the profile");
        }
    }
    for (size_t i = 0; i < w->inline_count; i++) {
        const struct profile_policy *pp = &w->inline_policies[i];
        const char *have = json_string_value(json_object_get(a->inline_docs, pp->name));
        if (have == NULL) {
            add_op(r, OP_PUT_INLINE, "inline-policy", RC_CREATE, pp->name, pp->name, pp->document,
                   -1, NULL);
        } else if (!docs_equal(r, pp->document, have, pp->name)) {
            add_op(r, OP_PUT_INLINE, "inline-policy", RC_UPDATE, pp->name, pp->name, pp->document,
                   -1, "document differs from the profile");
        }
    }
    json_array_foreach(a->inline_names, j, v)
    {
        const char *n = json_string_value(v);
        int wanted = 0;
        for (size_t i = 0; n && i < w->inline_count; i++) {
            wanted |= strcmp(n, w->inline_policies[i].name) == 0;
        }
        if (n != NULL && !wanted) {
            add_op(r, OP_DELETE_INLINE, "inline-policy", RC_DELETE, n, NULL, NULL, -1,
                   "not in the profile");
        }
    }
    if (r->role) {
        return;
    }
    /* Access keys: exactly one, and the one the platform has. A key that was never handed
     * over (a crash after CreateAccessKey, say) is replaced, never left beside a new one, so
     * the user never reaches IAM's two-key limit. */
    const char *delivered = r->o->delivered_key_id;
    int have_delivered = 0;
    size_t nkeys = list_size(a->keys);
    json_array_foreach(a->keys, j, v)
    {
        const char *id = json_string_value(json_object_get(v, "AccessKeyId"));
        if (id == NULL) {
            continue;
        }
        int keep = w->access_key && delivered != NULL && strcmp(id, delivered) == 0 &&
                   strcmp(key_status(v), "Active") == 0;
        if (!r->o->key_record_known && w->access_key && !have_delivered &&
            strcmp(key_status(v), "Active") == 0) {
            keep = 1; /* no delivery record to judge by: the first active key stands */
        }
        if (keep) {
            have_delivered = 1;
            continue;
        }
        const char *why = !w->access_key ? "the profile wants no access key"
                          : delivered != NULL && strcmp(id, delivered) == 0
                              ? "key is not active"
                              : (r->o->key_record_known ? "never handed over to the platform"
                                                        : "more than one key");
        add_op(r, OP_DELETE_KEY, "access-key", RC_DELETE, id, NULL, NULL, -1, why);
    }
    if (w->access_key && !have_delivered) {
        add_op(r, OP_CREATE_KEY, "access-key", RC_CREATE, NULL, NULL, NULL, -1,
               nkeys > 0 ? "replaces a key the platform does not have" : NULL);
    }
}

/* Offboarding: only what cloudgrant created, in the order IAM requires. */
static void plan_offboard(struct run *r)
{
    struct actual *a = &r->act;
    size_t j;
    json_t *v;
    if (a->exists) {
        json_array_foreach(a->keys, j, v)
        {
            const char *id = json_string_value(json_object_get(v, "AccessKeyId"));
            if (id != NULL) {
                add_op(r, OP_DELETE_KEY, "access-key", RC_DELETE, id, NULL, NULL, -1, NULL);
            }
        }
        json_array_foreach(a->inline_names, j, v)
        {
            if (json_is_string(v)) {
                add_op(r, OP_DELETE_INLINE, "inline-policy", RC_DELETE, json_string_value(v), NULL,
                       NULL, -1, NULL);
            }
        }
        json_array_foreach(a->attached, j, v)
        {
            const char *arn = json_string_value(json_object_get(v, "PolicyArn"));
            if (arn != NULL) {
                add_op(r, OP_DETACH, "policy-attachment", RC_DELETE, arn, arn_name(arn), NULL, -1,
                       NULL);
            }
        }
    }
    for (size_t i = 0; i < r->want->customer_count; i++) {
        if (a->cust[i].exists && owned(a->cust[i].policy)) {
            add_op(r, OP_DELETE_POLICY, "policy", RC_DELETE, a->cust[i].arn,
                   r->want->customer_policies[i].name, NULL, (int)i, NULL);
        }
    }
    if (a->exists) {
        add_op(r, OP_DELETE_PRINCIPAL, principal_word(r), RC_DELETE, NULL, r->want->name, NULL, -1,
               NULL);
    }
}

/* Refuses to touch what cloudgrant did not create, or what another cluster's agent owns. */
static int check_ownership(struct run *r)
{
    struct actual *a = &r->act;
    if (a->exists) {
        json_t *tags = json_object_get(a->principal, "Tags");
        if (!owned(a->principal)) {
            struct cg_err e = {0};
            cg_err_set(&e, CG_ESTATUS,
                       "IAM %s '%s' exists but is not managed by cloudgrant (no tag %s=%s): "
                       "refusing to change it; choose another name in the profile, or tag it "
                       "to hand it over",
                       principal_word(r), r->want->name, TAG_OWNER_KEY, TAG_OWNER_VALUE);
            fail(r, &e);
            return -1;
        }
        const char *cid = tag_value(tags, TAG_CLUSTER_KEY);
        if (cid != NULL && r->o->cluster_id != NULL && strcmp(cid, r->o->cluster_id) != 0) {
            struct cg_err e = {0};
            cg_err_set(&e, CG_ESTATUS,
                       "IAM %s '%s' belongs to another cluster (%s=%s, this cluster is %s): "
                       "refusing to change it; give this cluster's identity another name",
                       principal_word(r), r->want->name, TAG_CLUSTER_KEY, cid, r->o->cluster_id);
            fail(r, &e);
            return -1;
        }
    }
    if (r->o->mode == RC_MODE_OFFBOARD) {
        return 0; /* unowned policies are simply left alone when offboarding */
    }
    for (size_t i = 0; i < r->want->customer_count; i++) {
        if (a->cust[i].exists && !owned(a->cust[i].policy)) {
            struct cg_err e = {0};
            cg_err_set(&e, CG_ESTATUS,
                       "IAM policy '%s' exists but is not managed by cloudgrant (no tag %s=%s): "
                       "refusing to change it; rename it in the profile, or tag it to hand it "
                       "over",
                       a->cust[i].arn, TAG_OWNER_KEY, TAG_OWNER_VALUE);
            fail(r, &e);
            return -1;
        }
    }
    return 0;
}

/* ---- applying ---- */

static void op_finish(struct op *op, const struct cg_err *err)
{
    struct run *r = op->run;
    if (err == NULL) {
        r->res->writes++;
        const char *name = op->name ? op->name : (op->arg ? op->arg : r->want->name);
        const char *id = NULL;
        if (op->kind == OP_ATTACH || op->kind == OP_DETACH || op->kind == OP_CREATE_POLICY ||
            op->kind == OP_UPDATE_POLICY || op->kind == OP_DELETE_POLICY ||
            op->kind == OP_DELETE_KEY) {
            id = op->arg;
        } else if (op->kind == OP_CREATE_KEY) {
            id = r->res->access_key_id;
        }
        if (op->kind == OP_CREATE_KEY || op->kind == OP_DELETE_KEY) {
            name = r->want->name; /* a key is named by its user; its id is the id */
        } else if (op->kind == OP_CREATE_PRINCIPAL || op->kind == OP_DELETE_PRINCIPAL) {
            id = r->res->principal_arn;
        }
        if (rc_list_add(&r->res->entries, "aws", op->entry_kind, name, id, op->change, op->detail) <
            0) {
            fail_oom(r);
        }
    }
    rc_node_done(&r->graph.nodes[op->node], err);
}

static void on_write(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                     void *data);

/* IAM is eventually consistent: a write on a user, role or policy this run has just created
 * may be answered NoSuchEntity for a few seconds, and a trust policy may name a principal IAM
 * cannot see yet. Those are waited out in aws_query (AWS_RETRY_*) rather than confirmed by
 * reads first: a write that works at once costs no round trip, and the same wait covers a
 * customer policy made in parallel with its user. */
static unsigned consistency_flags(const struct op *op)
{
    const struct run *r = op->run;
    switch (op->kind) {
    case OP_CREATE_PRINCIPAL:
    case OP_UPDATE_TRUST:
        return r->role ? AWS_RETRY_INVALID_PRINCIPAL : 0;
    case OP_ATTACH:
        if (op->cust >= 0 && !r->act.cust[op->cust].exists) {
            return AWS_RETRY_NOT_FOUND; /* the policy is new */
        }
        return r->new_principal ? AWS_RETRY_NOT_FOUND : 0;
    case OP_PUT_INLINE:
    case OP_CREATE_KEY:
        return r->new_principal ? AWS_RETRY_NOT_FOUND : 0;
    default:
        return 0;
    }
}

static int call(struct op *op, const char *action, struct params *ps, struct cg_err *err)
{
    return aws_query_call_flags(op->run->iam, action, ps->p, ps->n, consistency_flags(op), on_write,
                                op, err);
}

static int start_op(struct rc_node *n, void *arg, struct cg_err *err);

/* One version of op's policy; the answer comes back to on_write. */
static int delete_version(struct op *op, const char *version, struct cg_err *err)
{
    struct params ps = {0};
    param(&ps, "PolicyArn", op->arg);
    param(&ps, "VersionId", version);
    return call(op, "DeletePolicyVersion", &ps, err);
}

/* Multi-step operations continue here; single calls finish. */
static void on_write(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                     void *data)
{
    struct op *op = data;
    struct run *r = op->run;
    const char *code = aerr ? aerr->code : "";
    struct cg_err e = {0};

    switch (op->kind) {
    case OP_CREATE_PRINCIPAL:
        if (err == NULL) {
            json_t *p = json_object_get(result, r->role ? "Role" : "User");
            const char *arn = json_string_value(json_object_get(p, "Arn"));
            free(r->res->principal_arn);
            r->res->principal_arn = arn ? strdup(arn) : NULL;
        }
        break;
    case OP_CREATE_KEY:
        if (err == NULL) {
            json_t *k = json_object_get(result, "AccessKey");
            const char *id = json_string_value(json_object_get(k, "AccessKeyId"));
            const char *secret = json_string_value(json_object_get(k, "SecretAccessKey"));
            if (id == NULL || secret == NULL) {
                cg_err_set(&e, CG_EINVAL,
                           "IAM CreateAccessKey '%s': the answer holds no key; run again",
                           r->want->name);
                err = &e;
                break;
            }
            r->res->access_key_id = strdup(id);
            r->res->secret_access_key = strdup(secret);
            /* the secret is in the response tree too: wipe it there */
            cg_wipe((void *)secret, strlen(secret));
        }
        break;
    case OP_UPDATE_POLICY:
        if (err != NULL) {
            break;
        }
        if (op->step == 0) {
            /* Step 1 answered ListPolicyVersions: make room if five versions exist. */
            json_decref(op->versions);
            op->versions = json_incref(json_object_get(result, "Versions"));
            op->step = 1;
            if (list_size(op->versions) >= MAX_POLICY_VERSIONS) {
                const char *oldest = NULL;
                const char *oldest_date = NULL;
                size_t i;
                json_t *v;
                json_array_foreach(op->versions, i, v)
                {
                    const char *def = json_string_value(json_object_get(v, "IsDefaultVersion"));
                    const char *d = json_string_value(json_object_get(v, "CreateDate"));
                    const char *id = json_string_value(json_object_get(v, "VersionId"));
                    if (def != NULL && strcmp(def, "true") == 0) {
                        continue;
                    }
                    if (id != NULL &&
                        (oldest == NULL || (d && oldest_date && strcmp(d, oldest_date) < 0))) {
                        oldest = id;
                        oldest_date = d;
                    }
                }
                if (oldest != NULL) {
                    if (delete_version(op, oldest, &e) < 0) {
                        err = &e;
                        break;
                    }
                    return;
                }
            }
        }
        if (op->step == 1) {
            op->step = 2;
            struct params ps = {0};
            param(&ps, "PolicyArn", op->arg);
            param(&ps, "PolicyDocument", op->doc);
            param(&ps, "SetAsDefault", "true");
            if (call(op, "CreatePolicyVersion", &ps, &e) < 0) {
                err = &e;
                break;
            }
            return;
        }
        break;
    case OP_DELETE_POLICY:
        if (err != NULL) {
            if (strcmp(code, "NoSuchEntity") == 0 && (op->step == 0 || op->step == 3)) {
                err = NULL; /* already gone */
            }
            break;
        }
        if (op->step == 0) {
            /* Step 1 answered GetPolicy: delete only a policy nothing else uses. */
            json_t *p = json_object_get(result, "Policy");
            const char *count = json_string_value(json_object_get(p, "AttachmentCount"));
            if (count != NULL && strcmp(count, "0") != 0) {
                free(op->detail);
                op->detail = strdup("kept: still attached elsewhere");
                op->change = RC_NONE;
                break;
            }
            op->step = 1;
            struct params ps = {0};
            param(&ps, "PolicyArn", op->arg);
            if (aws_query_call_all(r->iam, "ListPolicyVersions", ps.p, ps.n, "Versions", on_write,
                                   op, &e) < 0) {
                err = &e;
                break;
            }
            return;
        }
        if (op->step == 1) {
            json_decref(op->versions);
            op->versions = json_incref(json_object_get(result, "Versions"));
            op->step = 2;
            op->next_version = 0;
        }
        if (op->step == 2) {
            /* Non-default versions go first, one at a time, then the policy itself. */
            while (op->next_version < list_size(op->versions)) {
                json_t *v = json_array_get(op->versions, op->next_version++);
                const char *def = json_string_value(json_object_get(v, "IsDefaultVersion"));
                const char *id = json_string_value(json_object_get(v, "VersionId"));
                if (id != NULL && (def == NULL || strcmp(def, "true") != 0)) {
                    if (delete_version(op, id, &e) < 0) {
                        err = &e;
                        break;
                    }
                    return;
                }
            }
            if (err != NULL) {
                break;
            }
            op->step = 3;
            struct params ps = {0};
            param(&ps, "PolicyArn", op->arg);
            if (call(op, "DeletePolicy", &ps, &e) < 0) {
                err = &e;
                break;
            }
            return;
        }
        break;
    case OP_DELETE_KEY:
    case OP_DELETE_INLINE:
    case OP_DETACH:
    case OP_DELETE_PRINCIPAL:
        if (err != NULL && strcmp(code, "NoSuchEntity") == 0) {
            err = NULL; /* someone removed it already: the goal holds */
        }
        break;
    default:
        break;
    }
    op_finish(op, err);
}

static int start_op(struct rc_node *n, void *arg, struct cg_err *err)
{
    struct op *op = arg;
    struct run *r = op->run;
    const struct profile_aws *w = r->want;
    const char *key = r->role ? "RoleName" : "UserName";
    struct params ps = {0};
    char msd[24];

    switch (op->kind) {
    case OP_CREATE_PRINCIPAL:
        param(&ps, key, w->name);
        param(&ps, "Path", w->path);
        if (r->role) {
            param(&ps, "AssumeRolePolicyDocument", w->trust_policy);
            if (w->max_session_duration > 0) {
                snprintf(msd, sizeof(msd), "%ld", w->max_session_duration);
                param(&ps, "MaxSessionDuration", msd);
            }
            param(&ps, "Description", "Managed by cloudgrant");
        }
        tag_params(&ps, r);
        return call(op, r->role ? "CreateRole" : "CreateUser", &ps, err);
    case OP_TAG_PRINCIPAL:
        param(&ps, key, w->name);
        tag_params(&ps, r);
        return call(op, r->role ? "TagRole" : "TagUser", &ps, err);
    case OP_UPDATE_TRUST:
        param(&ps, "RoleName", w->name);
        param(&ps, "PolicyDocument", w->trust_policy);
        return call(op, "UpdateAssumeRolePolicy", &ps, err);
    case OP_UPDATE_ROLE:
        snprintf(msd, sizeof(msd), "%ld", w->max_session_duration);
        param(&ps, "RoleName", w->name);
        param(&ps, "MaxSessionDuration", msd);
        return call(op, "UpdateRole", &ps, err);
    case OP_CREATE_POLICY: {
        const struct profile_policy *pp = &w->customer_policies[op->cust];
        param(&ps, "PolicyName", pp->name);
        param(&ps, "Path", w->path);
        param(&ps, "PolicyDocument", pp->document);
        param(&ps, "Description", pp->description);
        int i = 1;
        param(&ps, tag_name(&ps, i, "Key"), TAG_OWNER_KEY);
        param(&ps, tag_name(&ps, i, "Value"), TAG_OWNER_VALUE);
        return call(op, "CreatePolicy", &ps, err);
    }
    case OP_UPDATE_POLICY:
        op->step = 0;
        param(&ps, "PolicyArn", op->arg);
        return aws_query_call_all(r->iam, "ListPolicyVersions", ps.p, ps.n, "Versions", on_write,
                                  op, err);
    case OP_ATTACH:
    case OP_DETACH:
        param(&ps, key, w->name);
        param(&ps, "PolicyArn", op->arg);
        return call(op,
                    op->kind == OP_ATTACH ? (r->role ? "AttachRolePolicy" : "AttachUserPolicy")
                                          : (r->role ? "DetachRolePolicy" : "DetachUserPolicy"),
                    &ps, err);
    case OP_PUT_INLINE:
        param(&ps, key, w->name);
        param(&ps, "PolicyName", op->arg);
        param(&ps, "PolicyDocument", op->doc);
        return call(op, r->role ? "PutRolePolicy" : "PutUserPolicy", &ps, err);
    case OP_DELETE_INLINE:
        param(&ps, key, w->name);
        param(&ps, "PolicyName", op->arg);
        return call(op, r->role ? "DeleteRolePolicy" : "DeleteUserPolicy", &ps, err);
    case OP_DELETE_KEY:
        param(&ps, "UserName", w->name);
        param(&ps, "AccessKeyId", op->arg);
        return call(op, "DeleteAccessKey", &ps, err);
    case OP_CREATE_KEY:
        param(&ps, "UserName", w->name);
        return call(op, "CreateAccessKey", &ps, err);
    case OP_DELETE_POLICY:
        op->step = 0;
        param(&ps, "PolicyArn", op->arg);
        return aws_query_call(r->iam, "GetPolicy", ps.p, ps.n, on_write, op, err);
    case OP_DELETE_PRINCIPAL:
        param(&ps, key, w->name);
        return call(op, r->role ? "DeleteRole" : "DeleteUser", &ps, err);
    }
    (void)n;
    return cg_err_set(err, CG_EINVAL, "unknown operation");
}

static const char *op_label(const struct op *op)
{
    static const char *const labels[] = {
        [OP_CREATE_PRINCIPAL] = "create principal",
        [OP_TAG_PRINCIPAL] = "tag principal",
        [OP_UPDATE_TRUST] = "update trust policy",
        [OP_UPDATE_ROLE] = "update role",
        [OP_CREATE_POLICY] = "create policy",
        [OP_UPDATE_POLICY] = "update policy",
        [OP_ATTACH] = "attach policy",
        [OP_DETACH] = "detach policy",
        [OP_PUT_INLINE] = "put inline policy",
        [OP_DELETE_INLINE] = "delete inline policy",
        [OP_DELETE_KEY] = "delete access key",
        [OP_CREATE_KEY] = "create access key",
        [OP_DELETE_POLICY] = "delete policy",
        [OP_DELETE_PRINCIPAL] = "delete principal",
    };
    return labels[op->kind];
}

static void on_graph_done(struct rc_graph *g, const struct cg_err *first, void *data)
{
    struct run *r = data;
    if (first != NULL) {
        fail(r, first);
    }
    r->res->critical_path = rc_graph_critical_path(g);
    r->done = 1;
}

static int barrier_start(struct rc_node *n, void *arg, struct cg_err *err)
{
    (void)arg;
    (void)err;
    rc_node_done(n, NULL);
    return 0;
}

/* A node that completes when all of `nodes` have: one node can wait for at most RC_MAX_DEPS
 * others, so larger sets are joined through a tree of barrier nodes. Returns -1 for an empty
 * set, <-1 on error. */
static int join(struct rc_graph *g, int *nodes, int n)
{
    while (n > 1) {
        int m = 0;
        for (int i = 0; i < n; i += RC_MAX_DEPS) {
            int k = n - i < RC_MAX_DEPS ? n - i : RC_MAX_DEPS;
            int b = k == 1 ? nodes[i] : rc_graph_add(g, "join", barrier_start, NULL, nodes + i, k);
            if (b < 0) {
                return -2;
            }
            nodes[m++] = b;
        }
        n = m;
    }
    return n == 1 ? nodes[0] : -1;
}

/* Builds the dependency graph of the operations and runs it:
 *   principal and customer policies first, in parallel;
 *   then everything on the principal, in parallel (an attachment of a customer policy also
 *   waits for that policy);
 *   a new access key after the old keys are gone (IAM allows two);
 *   when offboarding, customer policies after the detachments and the principal last. */
static void apply(struct run *r)
{
    struct rc_graph *g = &r->graph;
    int principal = -1;
    int policy_node[64];
    int *dels = calloc(r->nops + 1, sizeof(int));
    int *keydels = calloc(r->nops + 1, sizeof(int));
    int ndel = 0, nkeydel = 0;
    if (dels == NULL || keydels == NULL) {
        free(dels);
        free(keydels);
        fail_oom(r);
        return;
    }
    for (size_t i = 0; i < 64; i++) {
        policy_node[i] = -1;
    }
    for (size_t i = 0; i < r->nops; i++) {
        struct op *op = &r->ops[i];
        if (op->kind == OP_CREATE_PRINCIPAL) {
            op->node = principal = rc_graph_add(g, op_label(op), start_op, op, NULL, 0);
        } else if (op->kind == OP_CREATE_POLICY || op->kind == OP_UPDATE_POLICY) {
            op->node = rc_graph_add(g, op_label(op), start_op, op, NULL, 0);
            if (op->cust >= 0 && op->cust < 64) {
                policy_node[op->cust] = op->node;
            }
        }
    }
    for (size_t i = 0; i < r->nops; i++) {
        struct op *op = &r->ops[i];
        if (op->node >= 0 || op->kind == OP_CREATE_KEY || op->kind == OP_DELETE_PRINCIPAL ||
            op->kind == OP_DELETE_POLICY) {
            continue;
        }
        int deps[2] = {principal, -1};
        if (op->kind == OP_ATTACH && op->cust >= 0 && op->cust < 64) {
            deps[1] = policy_node[op->cust];
        }
        op->node = rc_graph_add(g, op_label(op), start_op, op, deps, 2);
        if (op->kind == OP_DELETE_KEY) {
            keydels[nkeydel++] = op->node;
        }
        if (op->kind == OP_DELETE_KEY || op->kind == OP_DELETE_INLINE || op->kind == OP_DETACH) {
            dels[ndel++] = op->node;
        }
    }
    int keys_gone = join(g, keydels, nkeydel);
    int all_gone = join(g, dels, ndel);
    for (size_t i = 0; i < r->nops; i++) {
        struct op *op = &r->ops[i];
        int deps[2] = {-1, -1};
        if (op->kind == OP_CREATE_KEY) {
            deps[0] = principal;
            deps[1] = keys_gone;
        } else if (op->kind == OP_DELETE_POLICY || op->kind == OP_DELETE_PRINCIPAL) {
            deps[0] = all_gone;
        } else {
            continue;
        }
        op->node = rc_graph_add(g, op_label(op), start_op, op, deps, 2);
    }
    free(dels);
    free(keydels);
    for (size_t i = 0; i < r->nops; i++) {
        if (r->ops[i].node < 0 || keys_gone < -1 || all_gone < -1) {
            fail_oom(r);
            r->done = 1;
            return;
        }
    }
    rc_graph_run(g, on_graph_done, r);
}

/* ---- phases ---- */

static void list_plan(struct run *r)
{
    for (size_t i = 0; i < r->nops; i++) {
        const struct op *op = &r->ops[i];
        const char *name = op->name ? op->name : (op->arg ? op->arg : r->want->name);
        const char *id = NULL;
        if (op->kind == OP_ATTACH || op->kind == OP_DETACH || op->kind == OP_CREATE_POLICY ||
            op->kind == OP_UPDATE_POLICY || op->kind == OP_DELETE_POLICY ||
            op->kind == OP_DELETE_KEY) {
            id = op->arg;
        }
        if (op->kind == OP_CREATE_KEY || op->kind == OP_DELETE_KEY) {
            name = r->want->name;
        }
        if (rc_list_add(&r->res->entries, "aws", op->entry_kind, name, id, op->change, op->detail) <
            0) {
            fail_oom(r);
            return;
        }
    }
}

static void phase_done(struct run *r)
{
    if (r->err.code != 0) {
        r->done = 1;
        return;
    }
    if (r->phase == 1) {
        r->phase = 2;
        r->pending = 1; /* hold while submitting */
        start_phase2(r);
        if (--r->pending == 0) {
            phase_done(r);
        }
        return;
    }
    /* phase 2 finished: the actual state is complete */
    if (r->act.exists) {
        const char *arn = json_string_value(json_object_get(r->act.principal, "Arn"));
        r->res->principal_arn = arn ? strdup(arn) : NULL;
    }
    if (check_ownership(r) < 0) {
        r->done = 1;
        return;
    }
    if (r->o->mode == RC_MODE_OFFBOARD) {
        plan_offboard(r);
    } else {
        plan_converge(r);
    }
    if (r->err.code != 0 || r->o->mode == RC_MODE_PLAN || r->o->mode == RC_MODE_CHECK ||
        r->nops == 0) {
        if (r->err.code == 0) {
            list_plan(r);
        }
        r->done = 1;
        return;
    }
    apply(r);
}

static void actual_cleanup(struct actual *a, size_t ncust)
{
    json_decref(a->principal);
    json_decref(a->attached);
    json_decref(a->inline_names);
    json_decref(a->inline_docs);
    json_decref(a->keys);
    for (size_t i = 0; a->cust != NULL && i < ncust; i++) {
        json_decref(a->cust[i].policy);
        free(a->cust[i].arn);
        free(a->cust[i].doc);
    }
    free(a->cust);
}

/* The identity as it stands after a converge, for the report. */
static int list_resources(struct run *r)
{
    const struct profile_aws *w = r->want;
    struct rc_list *l = &r->res->resources;
    int rc = rc_list_add(l, "aws", principal_word(r), w->name, r->res->principal_arn,
                         r->act.exists ? RC_NONE : RC_CREATE, NULL);
    for (size_t i = 0; rc == 0 && i < w->managed_count; i++) {
        rc = rc_list_add(
            l, "aws", "policy-attachment", arn_name(w->managed_policy_arns[i]),
            w->managed_policy_arns[i],
            attached_has(r->act.attached, w->managed_policy_arns[i]) ? RC_NONE : RC_CREATE, NULL);
    }
    for (size_t i = 0; rc == 0 && i < w->customer_count; i++) {
        rc = rc_list_add(l, "aws", "policy", w->customer_policies[i].name, r->act.cust[i].arn,
                         r->act.cust[i].exists ? RC_NONE : RC_CREATE, NULL);
    }
    for (size_t i = 0; rc == 0 && i < w->inline_count; i++) {
        rc = rc_list_add(
            l, "aws", "inline-policy", w->inline_policies[i].name, NULL,
            json_object_get(r->act.inline_docs, w->inline_policies[i].name) ? RC_NONE : RC_CREATE,
            NULL);
    }
    if (rc == 0 && !r->role && w->access_key) {
        const char *id = r->res->access_key_id ? r->res->access_key_id : r->o->delivered_key_id;
        rc = rc_list_add(l, "aws", "access-key", w->name, id,
                         r->res->access_key_id ? RC_CREATE : RC_NONE, NULL);
    }
    return rc;
}

int rc_aws_run(struct cg_http *h, const struct rc_aws_opts *o, struct rc_aws_result *res,
               struct cg_err *err)
{
    memset(res, 0, sizeof(*res));
    const struct profile_aws *w = o->want;
    if (w == NULL || !w->present || w->name == NULL) {
        return cg_err_set(err, CG_EINVAL, "the profile has no aws section");
    }
    if (w->customer_count > 64) {
        return cg_err_set(err, CG_EINVAL, "the profile has more than 64 customer policies");
    }
    struct run r = {0};
    r.o = o;
    r.want = w;
    r.iam = o->iam;
    r.role = w->mode == PROFILE_AWS_ROLE;
    r.res = res;
    rc_graph_init(&r.graph);
    r.act.inline_docs = json_object();
    r.act.cust = calloc(w->customer_count + 1, sizeof(*r.act.cust));
    int rc = r.act.inline_docs && r.act.cust ? 0 : CG_ENOMEM;
    for (size_t i = 0; rc == 0 && i < w->customer_count; i++) {
        struct cg_buf b;
        cg_buf_init(&b, 0);
        rc = cg_buf_printf(&b, "arn:%s:iam::%s:policy%s%s", o->partition ? o->partition : "aws",
                           o->account, w->path ? w->path : "/", w->customer_policies[i].name);
        r.act.cust[i].arn = b.data;
    }
    if (rc < 0) {
        actual_cleanup(&r.act, w->customer_count);
        return cg_err_set(err, rc, "out of memory");
    }
    r.phase = 1;
    r.pending = 1;
    start_phase1(&r);
    if (--r.pending == 0) {
        phase_done(&r);
    }
    cg_http_run(h);
    if (!r.done && r.err.code == 0) {
        cg_err_set(&r.err, CG_EIO, "the reconcile stopped before it finished");
    }
    if (r.err.code == 0 && o->mode == RC_MODE_APPLY) {
        if (list_resources(&r) < 0) {
            cg_err_set(&r.err, CG_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < r.nops; i++) {
        free(r.ops[i].arg);
        free(r.ops[i].detail);
        json_decref(r.ops[i].versions);
    }
    free(r.ops);
    rc_graph_cleanup(&r.graph);
    actual_cleanup(&r.act, w->customer_count);
    if (r.err.code != 0) {
        *err = r.err;
        return r.err.code;
    }
    return 0;
}

void rc_aws_result_cleanup(struct rc_aws_result *r)
{
    rc_list_cleanup(&r->entries);
    rc_list_cleanup(&r->resources);
    free(r->principal_arn);
    free(r->access_key_id);
    cg_secret_free(r->secret_access_key);
    memset(r, 0, sizeof(*r));
}
