/* agent/rc_osc.c: the OUTSCALE reconcile (rc_osc.h). */
#include "rc_osc.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "handover.h"
#include "outscale/osc_api.h"
#include "policy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY        86400
#define CAP_MARGIN 600 /* a capped expiry stays this far inside the cap */

/* ---- pure helpers ---- */

int64_t rc_osc_key_expiry(int64_t now, long lifetime_days, long max_key_seconds)
{
    int64_t life = (int64_t)lifetime_days * DAY;
    if (max_key_seconds > 0) {
        int64_t cap = (int64_t)max_key_seconds - CAP_MARGIN;
        if (cap < 60) {
            cap = max_key_seconds; /* a cap this short has no room for a margin */
        }
        if (life == 0 || life > cap) {
            life = cap;
        }
    }
    return life > 0 ? now + life : 0;
}

int64_t rc_osc_renew_window(int64_t lifetime, long renew_days)
{
    int64_t w = (int64_t)renew_days * DAY;
    if (lifetime > 0 && w > lifetime / 3) {
        w = lifetime / 3;
    }
    return w;
}

/* Outscale writes dates as ISO 8601 with a basic offset ("2026-11-22T10:00:00.000+0000"), an
 * extended one, a Z, or as a bare date ("2063-04-05"): all are read. */
static int parse_date(const char *s, int64_t *out)
{
    if (s == NULL || s[0] == '\0') {
        return CG_EINVAL;
    }
    if (cg_parse_rfc3339(s, out) == 0) {
        return 0;
    }
    char buf[48];
    size_t n = strlen(s);
    if (n == 10 && snprintf(buf, sizeof(buf), "%sT00:00:00Z", s) < (int)sizeof(buf)) {
        return cg_parse_rfc3339(buf, out);
    }
    /* "+hhmm" -> "+hh:mm" */
    if (n > 5 && n < sizeof(buf) - 2 && (s[n - 5] == '+' || s[n - 5] == '-')) {
        memcpy(buf, s, n - 2);
        buf[n - 2] = ':';
        memcpy(buf + n - 1, s + n - 2, 2);
        buf[n + 1] = '\0';
        return cg_parse_rfc3339(buf, out);
    }
    return CG_EINVAL;
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

/* ---- calls ---- */

/* One call's answer, kept until the phase is over. */
struct slot {
    json_t *body;
    struct osc_error oerr;
    struct cg_err err;
    int used;
};

static void on_slot(json_t *result, const struct osc_error *oerr, const struct cg_err *err,
                    void *data)
{
    struct slot *s = data;
    if (err != NULL) {
        s->err = *err;
        if (oerr != NULL) {
            s->oerr = *oerr;
        }
    } else {
        s->body = json_incref(result);
    }
}

static void slot_reset(struct slot *s)
{
    json_decref(s->body); /* a CreateAccessKey answer was wiped by take_key */
    memset(s, 0, sizeof(*s));
}

struct run {
    struct cg_http *h;
    const struct rc_osc_opts *o;
    const struct profile_outscale *w;
    struct rc_osc_result *res;
    /* what the reads found */
    json_t *user;      /* NULL: absent */
    json_t *policy;    /* ours (under PROFILE_OSC_PATH), NULL: absent */
    char *policy_body; /* the policy's default version document */
    json_t *links;     /* the user's linked policies (array); NULL when not read */
    json_t *keys;      /* the user's access keys (array); NULL when not read */
    int user_read;     /* links and keys came from a read that found the user */
    long max_key_seconds;
    struct cg_err first;
};

static void fail_first(struct run *r, const struct cg_err *err)
{
    if (r->first.code == 0 && err != NULL && err->code != 0) {
        r->first = *err;
    }
}

/* Sends one call into s; body is consumed. */
static void submit(struct run *r, struct slot *s, const char *action, json_t *body,
                   const char *list_key, char *label, int flags)
{
    slot_reset(s);
    s->used = 1;
    if (body == NULL || label == NULL) {
        cg_err_set(&s->err, CG_ENOMEM, "out of memory");
    } else {
        int rc = list_key
                     ? osc_api_call_all(r->o->api, action, body, list_key, 0, label, flags, on_slot,
                                        s, &s->err)
                     : osc_api_call(r->o->api, action, body, label, flags, on_slot, s, &s->err);
        if (rc < 0 && s->err.code == 0) {
            cg_err_set(&s->err, CG_ENOMEM, "out of memory");
        }
    }
    json_decref(body);
    free(label);
}

/* Runs the loop; the first error of the used slots (not_found_ok: not found is an answer). */
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
    return rc_list_add(l, "outscale", kind, name, id, change, detail);
}

/* Explains the failures a user can act on. */
static void explain(struct run *r, struct slot *s)
{
    if (s->err.code == 0) {
        return;
    }
    if (s->err.code == CG_EAUTH && s->oerr.status == 403) {
        cg_err_wrap(&s->err, "cloudgrant's access key needs the EIM permissions to manage users, "
                             "policies and access keys (the account's root key, or an EIM user "
                             "whose policy allows api:*User*, api:*Polic*, api:*AccessKey* and "
                             "api:ReadApiAccessPolicy)");
    }
    fail_first(r, &s->err);
}

/* ---- reads ---- */

static json_t *find_by(json_t *list, const char *key, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (same(str(v, key), value)) {
            return v;
        }
    }
    return NULL;
}

/* The user's links and keys from a read, or 0 when the read did not find the user. */
static int take_user_reads(struct run *r, struct slot *links, struct slot *keys)
{
    if (links->err.code != 0 || keys->err.code != 0) {
        return 0;
    }
    r->links = json_incref(json_object_get(links->body, "Policies"));
    r->keys = json_incref(json_object_get(keys->body, "AccessKeys"));
    if (!json_is_array(r->keys)) {
        json_decref(r->keys);
        r->keys = json_array();
    }
    r->user_read = 1;
    return 1;
}

static void submit_user_reads(struct run *r, struct slot *links, struct slot *keys)
{
    const char *name = r->w->user_name;
    submit(r, links, "ReadLinkedPolicies", json_pack("{s:s}", "UserName", name), "Policies",
           cg_strfmt("read policies linked to user '%s'", name), 0);
    submit(r, keys, "ReadAccessKeys", json_pack("{s:s}", "UserName", name), NULL,
           cg_strfmt("read access keys of user '%s'", name), 0);
}

/* Round 1 reads the lists and, by name, the user's links and keys: they need only the name,
 * and an absent user answers "not found", which costs nothing more than asking first. When
 * the user shows in the list but its own reads did not find it yet (a user just made is not
 * visible everywhere at once), round 2 reads them again. */
static int read_round1(struct run *r)
{
    const struct profile_outscale *w = r->w;
    struct slot s[5] = {0};
    submit(r, &s[0], "ReadUsers", json_object(), "Users", cg_strfmt("read users"), 0);
    submit(r, &s[1], "ReadPolicies",
           json_pack("{s:{s:s, s:s}}", "Filters", "PathPrefix", PROFILE_OSC_PATH, "Scope", "LOCAL"),
           "Policies", cg_strfmt("read policies under %s", PROFILE_OSC_PATH), 0);
    if (r->o->mode != RC_MODE_OFFBOARD) {
        submit(r, &s[2], "ReadApiAccessPolicy", json_object(), NULL,
               cg_strfmt("read the account's API access policy"), 0);
    }
    submit_user_reads(r, &s[3], &s[4]);
    int rc = settle(r, s, 5, 1);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        if (s[i].used && s[i].err.code != 0) { /* a list is never "not found" */
            fail_first(r, &s[i].err);
            rc = s[i].err.code;
        }
    }
    if (rc == 0) {
        json_t *u = find_by(json_object_get(s[0].body, "Users"), "UserName", w->user_name);
        json_t *p = find_by(json_object_get(s[1].body, "Policies"), "PolicyName", w->policy.name);
        r->user = json_incref(u);
        r->policy = p != NULL && same(str(p, "Path"), PROFILE_OSC_PATH) ? json_incref(p) : NULL;
        json_t *ap = json_object_get(s[2].body, "ApiAccessPolicy");
        json_t *max = json_object_get(ap, "MaxAccessKeyExpirationSeconds");
        r->max_key_seconds =
            json_is_integer(max) && json_integer_value(max) > 0 ? (long)json_integer_value(max) : 0;
        if (r->user != NULL) {
            take_user_reads(r, &s[3], &s[4]);
        }
    }
    for (size_t i = 0; i < 5; i++) {
        slot_reset(&s[i]);
    }
    if (rc == 0 && r->user != NULL && !same(str(r->user, "Path"), PROFILE_OSC_PATH)) {
        rc = cg_err_set(&r->first, CG_EINVAL,
                        "OUTSCALE user '%s' (%s) exists under path '%s', not cloudgrant's %s: "
                        "cloudgrant does not take over a user it did not make; delete or rename "
                        "it, or set another outscale.user.name in the profile",
                        w->user_name, str(r->user, "UserId"), str(r->user, "Path"),
                        PROFILE_OSC_PATH);
    }
    return rc;
}

static int read_round2(struct run *r)
{
    const struct profile_outscale *w = r->w;
    struct slot s[3] = {0};
    if (r->user != NULL && !r->user_read) {
        submit_user_reads(r, &s[0], &s[1]);
    }
    if (r->policy != NULL) {
        submit(r, &s[2], "ReadPolicyVersion",
               json_pack("{s:s, s:s}", "PolicyOrn", str(r->policy, "Orn"), "VersionId",
                         str(r->policy, "PolicyDefaultVersionId")),
               NULL, cg_strfmt("read policy '%s'", w->policy.name), 0);
    }
    if (!s[0].used && !s[2].used) {
        return 0;
    }
    int rc = settle(r, s, 3, 0);
    if (rc == 0) {
        if (s[0].used) {
            take_user_reads(r, &s[0], &s[1]);
        }
        if (s[2].used) {
            const char *body = json_string_value(
                json_object_get(json_object_get(s[2].body, "PolicyVersion"), "Body"));
            r->policy_body = strdup(body ? body : "");
        }
    }
    for (size_t i = 0; i < 3; i++) {
        slot_reset(&s[i]);
    }
    return rc;
}

/* ---- comparing ---- */

/* "" when the policy's document means what the profile says, else why not. */
static const char *policy_diff(const struct run *r)
{
    if (r->policy_body == NULL) {
        return "";
    }
    int equal = 0;
    /* EIM policies are case-sensitive: an action whose case changed is drift */
    if (policy_equal_text_exact(r->policy_body, r->w->policy.document, &equal, NULL) < 0) {
        return "default version is not a valid policy document";
    }
    return equal ? "" : "default version differs from the profile";
}

static int linked(const struct run *r)
{
    return r->policy != NULL && find_by(r->links, "Orn", str(r->policy, "Orn")) != NULL;
}

/* The user's access keys, judged: `keep` is the one handed over, active and not due for
 * renewal; every other one is stale. */
struct keys {
    json_t *keep;
    json_t *stale[16];
    size_t nstale;
    int need_new;
    char why[200]; /* why a new one is needed */
};

static void judge_keys(const struct run *r, struct keys *k)
{
    memset(k, 0, sizeof(*k));
    const struct profile_outscale *w = r->w;
    const char *delivered = r->o->delivered_key_id;
    int64_t now = r->o->now;
    /* The window is measured against the life a new key would get now, so that a cap on key
     * lifetimes shortens it (rc_osc_renew_window). */
    int64_t life = rc_osc_key_expiry(now, w->key_lifetime_days, r->max_key_seconds);
    int64_t window = rc_osc_renew_window(life > 0 ? life - now : 0, w->key_renew_days);
    size_t i;
    json_t *key;
    json_array_foreach(r->keys, i, key)
    {
        const char *id = str(key, "AccessKeyId");
        if (k->keep == NULL && delivered != NULL && same(id, delivered)) {
            int64_t exp = 0, created = 0;
            int has_exp = parse_date(str(key, "ExpirationDate"), &exp) == 0;
            int has_created = parse_date(str(key, "CreationDate"), &created) == 0;
            char date[32] = "";
            if (!same(str(key, "State"), "ACTIVE")) {
                snprintf(k->why, sizeof(k->why), "key %s is %s", id, str(key, "State"));
            } else if (has_exp && exp <= now) {
                snprintf(k->why, sizeof(k->why), "key %s expired", id);
            } else if (has_exp && exp - now <= window) {
                cg_format_rfc3339(exp, date, sizeof(date));
                snprintf(k->why, sizeof(k->why), "key %s expires %s, within the renewal window", id,
                         date);
            } else if (!has_exp && r->max_key_seconds > 0) {
                snprintf(k->why, sizeof(k->why),
                         "key %s never expires, and the account now caps key lifetimes at %ld s",
                         id, r->max_key_seconds);
            } else if (!has_exp && w->key_lifetime_days > 0 && has_created &&
                       now - created >= (int64_t)w->key_lifetime_days * DAY - window) {
                snprintf(k->why, sizeof(k->why), "key %s is %lld days old (lifetime %ld days)", id,
                         (long long)((now - created) / DAY), w->key_lifetime_days);
            } else {
                k->keep = key;
                continue;
            }
        }
        if (k->nstale < sizeof(k->stale) / sizeof(k->stale[0])) {
            k->stale[k->nstale++] = key;
        }
    }
    k->need_new = k->keep == NULL;
    if (k->need_new && k->why[0] == '\0') {
        snprintf(k->why, sizeof(k->why), "%s",
                 delivered ? "the key handed over is gone" : "none handed over");
    }
}

static const char *key_detail(json_t *key, char *buf, size_t n)
{
    const char *exp = str(key, "ExpirationDate");
    snprintf(buf, n, "not the one handed over, %s, created %s%s%s", str(key, "State"),
             str(key, "CreationDate"), exp[0] ? ", expires " : "", exp);
    return buf;
}

/* Everything that differs, as entries (plan: actions; check: drift). */
static int compare(struct run *r, struct rc_list *out)
{
    const struct profile_outscale *w = r->w;
    if (r->user == NULL) {
        add(out, "user", w->user_name, NULL, RC_CREATE, "path " PROFILE_OSC_PATH);
    }
    if (r->policy == NULL) {
        add(out, "policy", w->policy.name, NULL, RC_CREATE, "path " PROFILE_OSC_PATH);
    } else if (policy_diff(r)[0] != '\0') {
        add(out, "policy", w->policy.name, str(r->policy, "Orn"), RC_UPDATE, policy_diff(r));
    }
    char *link = cg_strfmt("%s -> %s", w->user_name, w->policy.name);
    if (link == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    if (!linked(r)) {
        add(out, "policy-link", link, r->policy ? str(r->policy, "Orn") : NULL, RC_CREATE, NULL);
    }
    free(link);
    size_t i;
    json_t *l;
    json_array_foreach(r->links, i, l)
    {
        if (r->policy == NULL || !same(str(l, "Orn"), str(r->policy, "Orn"))) {
            char *name = cg_strfmt("%s -> %s", w->user_name, str(l, "PolicyName"));
            add(out, "policy-link", name, str(l, "Orn"), RC_DELETE, "not in the profile");
            free(name);
        }
    }
    if (r->o->key_record_known || r->o->mode == RC_MODE_PLAN) {
        struct keys k;
        judge_keys(r, &k);
        if (k.need_new) {
            add(out, "access-key", w->user_name, NULL, RC_CREATE, k.why);
        }
        for (size_t j = 0; j < k.nstale; j++) {
            char buf[200];
            add(out, "access-key", w->user_name, str(k.stale[j], "AccessKeyId"), RC_DELETE,
                key_detail(k.stale[j], buf, sizeof(buf)));
        }
    }
    return 0;
}

/* ---- applying ---- */

static json_t *key_body(const struct run *r, long max_key_seconds)
{
    json_t *b = json_pack("{s:s}", "UserName", r->w->user_name);
    int64_t exp = rc_osc_key_expiry(r->o->now, r->w->key_lifetime_days, max_key_seconds);
    if (b != NULL && exp > 0) {
        char date[32];
        cg_format_rfc3339(exp, date, sizeof(date));
        json_object_set_new(b, "ExpirationDate", json_string(date));
    }
    return b;
}

static void submit_add_key(struct run *r, struct slot *s, long max_key_seconds)
{
    /* a user just made may not be visible to this call yet */
    submit(r, s, "CreateAccessKey", key_body(r, max_key_seconds), NULL,
           cg_strfmt("create an access key for user '%s'", r->w->user_name),
           OSC_RETRY_NOT_FOUND | OSC_SEND_ONCE);
}

/* Takes the new key out of a CreateAccessKey answer (and wipes it there). */
static int take_key(json_t *ans, char **key_id, char **secret, char **expiration)
{
    json_t *k = json_object_get(ans, "AccessKey");
    const char *id = json_string_value(json_object_get(k, "AccessKeyId"));
    const char *sk = json_string_value(json_object_get(k, "SecretKey"));
    const char *exp = json_string_value(json_object_get(k, "ExpirationDate"));
    int rc = id != NULL && id[0] != '\0' && sk != NULL && sk[0] != '\0' ? 0 : CG_EINVAL;
    if (rc == 0) {
        *key_id = strdup(id);
        *secret = strdup(sk);
        *expiration = exp && exp[0] ? strdup(exp) : NULL;
        rc = *key_id && *secret ? 0 : CG_ENOMEM;
    }
    handover_wipe_json(ans);
    return rc;
}

/* Sends one step of a key's removal: INACTIVE first (an EIM user's active key cannot be
 * deleted), then the deletion. UpdateAccessKey without an ExpirationDate makes the key never
 * expire, which an account that caps key lifetimes refuses: the key's own date goes along. */
static void submit_key_step(struct run *r, struct slot *s, json_t *key, int inactive)
{
    const char *user = r->w->user_name;
    const char *id = str(key, "AccessKeyId");
    if (!inactive) {
        json_t *b =
            json_pack("{s:s, s:s, s:s}", "AccessKeyId", id, "State", "INACTIVE", "UserName", user);
        const char *exp = str(key, "ExpirationDate");
        if (b != NULL && exp[0] != '\0') {
            json_object_set_new(b, "ExpirationDate", json_string(exp));
        }
        submit(r, s, "UpdateAccessKey", b, NULL,
               cg_strfmt("deactivate access key %s of user '%s'", id, user), 0);
    } else {
        submit(r, s, "DeleteAccessKey",
               json_pack("{s:s, s:s}", "AccessKeyId", id, "UserName", user), NULL,
               cg_strfmt("delete access key %s of user '%s'", id, user), 0);
    }
}

/* Removes keys (objects as ReadAccessKeys gives them) in the two steps the API requires:
 * every active one is set INACTIVE, then every inactive one is deleted; each step is one
 * round of parallel calls. A key already gone counts as removed. Adds a done entry per key
 * removed. */
static int remove_keys(struct run *r, json_t *const *keys, size_t n, struct rc_list *done,
                       const char *detail, int *phases)
{
    enum { ACTIVE = 0, INACTIVE, GONE, FAILED };
    if (n == 0) {
        return 0;
    }
    struct slot *s = calloc(n, sizeof(*s));
    int *state = calloc(n, sizeof(int));
    if (s == NULL || state == NULL) {
        free(s);
        free(state);
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        state[i] = same(str(keys[i], "State"), "INACTIVE") ? INACTIVE : ACTIVE;
    }
    int rc = 0;
    for (int step = ACTIVE; step <= INACTIVE; step++) {
        int any = 0;
        for (size_t i = 0; i < n; i++) {
            if (state[i] == step) {
                submit_key_step(r, &s[i], keys[i], step == INACTIVE);
                any = 1;
            }
        }
        if (!any) {
            continue;
        }
        (*phases)++;
        cg_http_run(r->h);
        for (size_t i = 0; i < n; i++) {
            if (!s[i].used) {
                continue;
            }
            const char *id = str(keys[i], "AccessKeyId");
            if (s[i].err.code == 0 && step == ACTIVE) {
                state[i] = INACTIVE;
            } else if (s[i].err.code == 0 || s[i].err.code == CG_ENOTFOUND) {
                state[i] = GONE;
                add(done, "access-key", r->w->user_name, id, RC_DELETE, detail);
            } else {
                explain(r, &s[i]);
                rc = rc ? rc : s[i].err.code;
                state[i] = FAILED;
            }
            slot_reset(&s[i]);
        }
    }
    free(s);
    free(state);
    return rc;
}

/* Phase 1: the user and the policy (a new default version when it differs). */
static int phase_user_policy(struct run *r, struct rc_list *done, int *phases)
{
    const struct profile_outscale *w = r->w;
    struct slot s[2] = {0};
    const char *diff = r->policy ? policy_diff(r) : "";
    int rc = 0;
    if (r->policy != NULL && diff[0] != '\0') {
        /* Make room first: OUTSCALE keeps at most 5 versions, and the old ones are
         * cloudgrant's own history, which nobody needs. */
        struct slot v = {0};
        submit(r, &v, "ReadPolicyVersions", json_pack("{s:s}", "PolicyOrn", str(r->policy, "Orn")),
               "PolicyVersions", cg_strfmt("read versions of policy '%s'", w->policy.name), 0);
        rc = settle(r, &v, 1, 0);
        (*phases)++;
        size_t n = 0;
        json_t *vs = json_object_get(v.body, "PolicyVersions");
        struct slot *d = calloc(json_array_size(vs) + 1, sizeof(*d));
        size_t i;
        json_t *ver;
        json_array_foreach(vs, i, ver)
        {
            if (rc == 0 && d != NULL && !json_is_true(json_object_get(ver, "DefaultVersion"))) {
                submit(r, &d[n++], "DeletePolicyVersion",
                       json_pack("{s:s, s:s}", "PolicyOrn", str(r->policy, "Orn"), "VersionId",
                                 str(ver, "VersionId")),
                       NULL,
                       cg_strfmt("delete old version %s of policy '%s'", str(ver, "VersionId"),
                                 w->policy.name),
                       0);
            }
        }
        if (n > 0) {
            (*phases)++;
            rc = settle(r, d, n, 1);
        }
        for (size_t k = 0; d != NULL && k < n; k++) {
            slot_reset(&d[k]);
        }
        free(d);
        slot_reset(&v);
        if (d == NULL && rc == 0) {
            rc = cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (r->user == NULL) {
        submit(r, &s[0], "CreateUser",
               json_pack("{s:s, s:s}", "UserName", w->user_name, "Path", PROFILE_OSC_PATH), NULL,
               cg_strfmt("create user '%s'", w->user_name), 0);
    }
    if (r->policy == NULL) {
        json_t *b = json_pack("{s:s, s:s, s:s}", "PolicyName", w->policy.name, "Document",
                              w->policy.document, "Path", PROFILE_OSC_PATH);
        if (b != NULL && w->policy.description != NULL) {
            json_object_set_new(b, "Description", json_string(w->policy.description));
        }
        submit(r, &s[1], "CreatePolicy", b, NULL, cg_strfmt("create policy '%s'", w->policy.name),
               0);
    } else if (diff[0] != '\0') {
        submit(r, &s[1], "CreatePolicyVersion",
               json_pack("{s:s, s:s, s:b}", "PolicyOrn", str(r->policy, "Orn"), "Document",
                         w->policy.document, "SetAsDefault", 1),
               NULL, cg_strfmt("update policy '%s'", w->policy.name), 0);
    }
    if (!s[0].used && !s[1].used) {
        return 0;
    }
    (*phases)++;
    cg_http_run(r->h);
    /* a conflict on creation: a concurrent run made it; read it back */
    if (s[0].used && s[0].err.code != 0 && osc_error_is_conflict(&s[0].oerr)) {
        slot_reset(&s[0]);
        submit(r, &s[0], "ReadUsers", json_object(), "Users", cg_strfmt("read users"), 0);
        if (settle(r, &s[0], 1, 0) == 0) {
            json_t *u = find_by(json_object_get(s[0].body, "Users"), "UserName", w->user_name);
            if (u != NULL && same(str(u, "Path"), PROFILE_OSC_PATH)) {
                r->user = json_incref(u);
            } else {
                cg_err_set(&s[0].err, CG_ESTATUS,
                           "OUTSCALE create user '%s': it exists, but not under %s", w->user_name,
                           PROFILE_OSC_PATH);
            }
        }
    } else if (s[0].used && s[0].err.code == 0) {
        r->user = json_incref(json_object_get(s[0].body, "User"));
        add(done, "user", w->user_name, str(r->user, "UserId"), RC_CREATE,
            "path " PROFILE_OSC_PATH);
    }
    if (s[1].used && r->policy == NULL && s[1].err.code != 0 && osc_error_is_conflict(&s[1].oerr)) {
        slot_reset(&s[1]);
        submit(r, &s[1], "ReadPolicies",
               json_pack("{s:{s:s, s:s}}", "Filters", "PathPrefix", PROFILE_OSC_PATH, "Scope",
                         "LOCAL"),
               "Policies", cg_strfmt("read policies under %s", PROFILE_OSC_PATH), 0);
        if (settle(r, &s[1], 1, 0) == 0) {
            json_t *p =
                find_by(json_object_get(s[1].body, "Policies"), "PolicyName", w->policy.name);
            if (p != NULL && same(str(p, "Path"), PROFILE_OSC_PATH)) {
                r->policy = json_incref(p); /* its document is compared on the next run */
            } else {
                cg_err_set(&s[1].err, CG_ESTATUS,
                           "OUTSCALE create policy '%s': a policy of that name exists outside "
                           "%s; cloudgrant does not take over a policy it did not make: delete "
                           "or rename it, or set another outscale.policy.name in the profile",
                           w->policy.name, PROFILE_OSC_PATH);
            }
        }
    } else if (s[1].used && s[1].err.code == 0) {
        if (r->policy == NULL) {
            r->policy = json_incref(json_object_get(s[1].body, "Policy"));
            add(done, "policy", w->policy.name, str(r->policy, "Orn"), RC_CREATE,
                "path " PROFILE_OSC_PATH);
        } else {
            add(done, "policy", w->policy.name, str(r->policy, "Orn"), RC_UPDATE, diff);
        }
    }
    for (size_t i = 0; i < 2; i++) {
        if (s[i].used && s[i].err.code != 0) {
            explain(r, &s[i]);
            rc = rc ? rc : s[i].err.code;
        }
        slot_reset(&s[i]);
    }
    return rc;
}

/* Phase 2: the link, the key, the links that are not the profile's; then stale keys when no
 * new key was made. */
static int phase_link_key(struct run *r, struct rc_list *done, int *phases)
{
    const struct profile_outscale *w = r->w;
    size_t nlinks = json_array_size(r->links);
    struct slot *s = calloc(2 + nlinks, sizeof(*s));
    if (s == NULL) {
        return cg_err_set(&r->first, CG_ENOMEM, "out of memory");
    }
    const char *orn = str(r->policy, "Orn");
    int need_link = !linked(r);
    if (need_link) {
        /* a new user or policy may not be visible yet */
        submit(r, &s[0], "LinkPolicy",
               json_pack("{s:s, s:s}", "PolicyOrn", orn, "UserName", w->user_name), NULL,
               cg_strfmt("link policy '%s' to user '%s'", w->policy.name, w->user_name),
               OSC_RETRY_NOT_FOUND);
    }
    struct keys k;
    judge_keys(r, &k);
    if (k.need_new) {
        submit_add_key(r, &s[1], r->max_key_seconds);
    }
    size_t i;
    json_t *l;
    json_array_foreach(r->links, i, l)
    {
        if (!same(str(l, "Orn"), orn)) {
            submit(
                r, &s[2 + i], "UnlinkPolicy",
                json_pack("{s:s, s:s}", "PolicyOrn", str(l, "Orn"), "UserName", w->user_name), NULL,
                cg_strfmt("unlink policy '%s' from user '%s'", str(l, "PolicyName"), w->user_name),
                0);
        }
    }
    int any = 0;
    for (size_t j = 0; j < 2 + nlinks; j++) {
        any |= s[j].used;
    }
    if (any) {
        (*phases)++;
        cg_http_run(r->h);
    }
    int rc = 0;
    if (s[0].used && s[0].err.code == 0) {
        char *name = cg_strfmt("%s -> %s", w->user_name, w->policy.name);
        add(done, "policy-link", name, orn, RC_CREATE, NULL);
        free(name);
    } else if (s[0].used && osc_error_is_conflict(&s[0].oerr)) {
        /* linked already: by a concurrent run, or a link this read did not see yet (a link
         * takes up to 15 s to show) */
        slot_reset(&s[0]);
    }
    if (s[1].used && s[1].err.code == 0) {
        struct rc_osc_result *res = r->res;
        if (take_key(s[1].body, &res->key_id, &res->secret, &res->key_expiration) < 0) {
            cg_err_set(&s[1].err, CG_EINVAL,
                       "OUTSCALE create an access key for user '%s': the answer has no key",
                       w->user_name);
        } else {
            add(done, "access-key", w->user_name, res->key_id, RC_CREATE, k.why);
            /* every other key goes once this one is delivered */
            res->stale_keys = calloc(k.nstale + 1, sizeof(char *));
            for (size_t j = 0; res->stale_keys != NULL && j < k.nstale; j++) {
                res->stale_keys[res->stale_count++] = strdup(str(k.stale[j], "AccessKeyId"));
            }
        }
    }
    json_array_foreach(r->links, i, l)
    {
        struct slot *sl = &s[2 + i];
        if (sl->used && (sl->err.code == 0 || sl->err.code == CG_ENOTFOUND)) {
            char *name = cg_strfmt("%s -> %s", w->user_name, str(l, "PolicyName"));
            add(done, "policy-link", name, str(l, "Orn"), RC_DELETE, "not in the profile");
            free(name);
            slot_reset(sl);
        }
    }
    for (size_t j = 0; j < 2 + nlinks; j++) {
        if (s[j].used && s[j].err.code != 0) {
            explain(r, &s[j]);
            rc = rc ? rc : s[j].err.code;
        }
        slot_reset(&s[j]);
    }
    free(s);
    if (rc == 0 && !k.need_new && k.nstale > 0) {
        rc = remove_keys(r, k.stale, k.nstale, done, "not the one handed over", phases);
    }
    return rc;
}

static int offboard(struct run *r, struct rc_list *done)
{
    const struct profile_outscale *w = r->w;
    int *phases = &r->res->critical_path;
    int rc = 0;
    if (r->user != NULL) {
        /* keys and links first: OUTSCALE deletes only a user that has neither */
        size_t nk = json_array_size(r->keys);
        json_t **keys = calloc(nk + 1, sizeof(json_t *));
        size_t nl = json_array_size(r->links);
        struct slot *s = calloc(nl + 1, sizeof(*s));
        if (keys == NULL || s == NULL) {
            rc = cg_err_set(&r->first, CG_ENOMEM, "out of memory");
        }
        size_t i;
        json_t *x;
        json_array_foreach(r->links, i, x)
        {
            if (rc == 0) {
                submit(
                    r, &s[i], "UnlinkPolicy",
                    json_pack("{s:s, s:s}", "PolicyOrn", str(x, "Orn"), "UserName", w->user_name),
                    NULL,
                    cg_strfmt("unlink policy '%s' from user '%s'", str(x, "PolicyName"),
                              w->user_name),
                    0);
            }
        }
        json_array_foreach(r->keys, i, x)
        {
            if (keys != NULL) {
                keys[i] = x;
            }
        }
        /* the unlinks go out with the first round of key removals */
        if (rc == 0) {
            rc = remove_keys(r, keys, nk, done, NULL, phases);
            if (nk == 0 && nl > 0) {
                (*phases)++;
            }
            int lrc = settle(r, s, nl, 1);
            json_array_foreach(r->links, i, x)
            {
                if (!s[i].used) {
                    continue;
                }
                if (s[i].err.code == 0 || s[i].err.code == CG_ENOTFOUND) {
                    char *name = cg_strfmt("%s -> %s", w->user_name, str(x, "PolicyName"));
                    add(done, "policy-link", name, str(x, "Orn"), RC_DELETE, NULL);
                    free(name);
                } else {
                    explain(r, &s[i]);
                }
                slot_reset(&s[i]);
            }
            rc = rc ? rc : lrc;
        }
        free(keys);
        free(s);
    }
    struct slot s[2] = {0};
    if (rc == 0 && r->user != NULL) {
        /* an unlink takes a moment to apply: DeleteUser answers a conflict until then */
        submit(r, &s[0], "DeleteUser", json_pack("{s:s}", "UserName", w->user_name), NULL,
               cg_strfmt("delete user '%s'", w->user_name), OSC_RETRY_CONFLICT);
    }
    if (rc == 0 && r->policy != NULL) {
        /* its old versions first (only the default one may remain), then the policy */
        struct slot v = {0};
        submit(r, &v, "ReadPolicyVersions", json_pack("{s:s}", "PolicyOrn", str(r->policy, "Orn")),
               "PolicyVersions", cg_strfmt("read versions of policy '%s'", w->policy.name), 0);
        rc = settle(r, &v, 1, 1);
        size_t i;
        json_t *ver;
        json_array_foreach(json_object_get(v.body, "PolicyVersions"), i, ver)
        {
            if (rc == 0 && !json_is_true(json_object_get(ver, "DefaultVersion"))) {
                struct slot d = {0};
                submit(r, &d, "DeletePolicyVersion",
                       json_pack("{s:s, s:s}", "PolicyOrn", str(r->policy, "Orn"), "VersionId",
                                 str(ver, "VersionId")),
                       NULL,
                       cg_strfmt("delete old version %s of policy '%s'", str(ver, "VersionId"),
                                 w->policy.name),
                       0);
                rc = settle(r, &d, 1, 1);
                slot_reset(&d);
            }
        }
        slot_reset(&v);
    }
    if (rc == 0 && r->policy != NULL) {
        submit(r, &s[1], "DeletePolicy", json_pack("{s:s}", "PolicyOrn", str(r->policy, "Orn")),
               NULL, cg_strfmt("delete policy '%s'", w->policy.name), OSC_RETRY_CONFLICT);
    }
    if (s[0].used || s[1].used) {
        (*phases)++;
        cg_http_run(r->h);
    }
    if (s[0].used && (s[0].err.code == 0 || s[0].err.code == CG_ENOTFOUND)) {
        add(done, "user", w->user_name, str(r->user, "UserId"), RC_DELETE, NULL);
    }
    if (s[1].used && (s[1].err.code == 0 || s[1].err.code == CG_ENOTFOUND)) {
        add(done, "policy", w->policy.name, str(r->policy, "Orn"), RC_DELETE, NULL);
    } else if (s[1].used && osc_error_is_conflict(&s[1].oerr)) {
        cg_err_wrap(&s[1].err, "the policy is still linked to another user (linked by hand?): "
                               "unlink it, or delete it yourself");
    }
    for (size_t i = 0; i < 2; i++) {
        if (s[i].used && s[i].err.code != 0 && s[i].err.code != CG_ENOTFOUND) {
            explain(r, &s[i]);
            rc = rc ? rc : s[i].err.code;
        }
        slot_reset(&s[i]);
    }
    return rc;
}

static void resources(struct run *r)
{
    struct rc_list *l = &r->res->resources;
    const struct profile_outscale *w = r->w;
    if (r->user != NULL) {
        add(l, "user", w->user_name, str(r->user, "UserId"), RC_NONE, NULL);
    }
    if (r->policy != NULL) {
        add(l, "policy", w->policy.name, str(r->policy, "Orn"), RC_NONE, NULL);
        char *name = cg_strfmt("%s -> %s", w->user_name, w->policy.name);
        add(l, "policy-link", name, str(r->policy, "Orn"), RC_NONE, NULL);
        free(name);
    }
}

int rc_osc_run(struct cg_http *h, const struct rc_osc_opts *o, struct rc_osc_result *res,
               struct cg_err *err)
{
    struct run r = {.h = h, .o = o, .w = o->want, .res = res};
    memset(res, 0, sizeof(*res));
    int rc = read_round1(&r);
    int phases = 1;
    if (rc == 0 && ((r.user != NULL && !r.user_read) || r.policy != NULL)) {
        rc = read_round2(&r);
        phases++;
    }
    res->max_key_seconds = r.max_key_seconds;
    if (rc == 0 && (o->mode == RC_MODE_PLAN || o->mode == RC_MODE_CHECK)) {
        rc = compare(&r, &res->entries);
    } else if (rc == 0 && o->mode == RC_MODE_APPLY) {
        rc = phase_user_policy(&r, &res->entries, &phases);
        if (rc == 0) {
            rc = phase_link_key(&r, &res->entries, &phases);
        }
        if (rc == 0) {
            resources(&r);
        }
    } else if (rc == 0 && o->mode == RC_MODE_OFFBOARD) {
        res->critical_path = phases;
        rc = offboard(&r, &res->entries);
        phases = res->critical_path;
    }
    res->critical_path = phases;
    if (r.user != NULL) {
        res->user_id = strdup(str(r.user, "UserId"));
    }
    if (r.policy != NULL) {
        res->policy_orn = strdup(str(r.policy, "Orn"));
    }
    if (rc < 0 && err != NULL) {
        *err = r.first.code ? r.first : *err;
        if (err->code == 0) {
            cg_err_set(err, rc, "%s", cg_errc_str(rc));
        }
    }
    json_decref(r.user);
    json_decref(r.policy);
    json_decref(r.links);
    json_decref(r.keys);
    free(r.policy_body);
    return rc;
}

void rc_osc_result_cleanup(struct rc_osc_result *r)
{
    rc_list_cleanup(&r->entries);
    rc_list_cleanup(&r->resources);
    free(r->user_id);
    free(r->policy_orn);
    free(r->key_id);
    cg_secret_free(r->secret);
    free(r->key_expiration);
    for (size_t i = 0; i < r->stale_count; i++) {
        free(r->stale_keys[i]);
    }
    free(r->stale_keys);
    memset(r, 0, sizeof(*r));
}

int rc_osc_add_key(struct cg_http *h, const struct rc_osc_opts *o, long max_key_seconds,
                   char **key_id, char **secret, char **expiration, struct cg_err *err)
{
    struct rc_osc_result res = {0};
    struct run r = {.h = h, .o = o, .w = o->want, .res = &res};
    struct slot s = {0};
    submit_add_key(&r, &s, max_key_seconds);
    int rc = settle(&r, &s, 1, 0);
    if (rc == 0 && take_key(s.body, key_id, secret, expiration) < 0) {
        rc = cg_err_set(&r.first, CG_EINVAL,
                        "OUTSCALE create an access key for user '%s': the answer has no key",
                        o->want->user_name);
    } else if (rc < 0) {
        explain(&r, &s);
    }
    slot_reset(&s);
    if (rc < 0 && err != NULL) {
        *err = r.first;
    }
    return rc;
}

int rc_osc_remove_key(struct cg_http *h, const struct rc_osc_opts *o, const char *key_id,
                      struct cg_err *err)
{
    struct rc_osc_result res = {0};
    struct run r = {.h = h, .o = o, .w = o->want, .res = &res};
    /* its state and expiry decide the steps (see submit_key_step) */
    struct slot s = {0};
    submit(&r, &s, "ReadAccessKeys",
           json_pack("{s:s, s:{s:[s]}}", "UserName", o->want->user_name, "Filters", "AccessKeyIds",
                     key_id),
           NULL, cg_strfmt("read access key %s of user '%s'", key_id, o->want->user_name), 0);
    int rc = settle(&r, &s, 1, 1);
    json_t *key =
        rc == 0 ? find_by(json_object_get(s.body, "AccessKeys"), "AccessKeyId", key_id) : NULL;
    int phases = 0;
    if (key != NULL) {
        rc = remove_keys(&r, &key, 1, &res.entries, NULL, &phases);
    }
    slot_reset(&s);
    rc_osc_result_cleanup(&res);
    if (rc < 0 && err != NULL) {
        *err = r.first;
    }
    return rc;
}
