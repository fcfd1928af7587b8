/* agent/cmd_outscale.c: plan, onboard, check [--fix], rotate and offboard on OUTSCALE. */
#include "cmd.h"

#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cmd_flow.h"
#include "cmd_out.h"
#include "handover.h"
#include "identity.h"
#include "outscale/osc_api.h"
#include "outscale/osc_auth.h"
#include "profile.h"
#include "rc_osc.h"
#include "session.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct osc_ctx {
    const struct cg_options *o;
    cg_getenv_fn *getenv_fn;
    struct cmd_base *b; /* the session and the identity; borrowed */
    struct osc_credentials creds;
    struct osc_api *api;
    struct profile *profile;
    char *account; /* the account the credentials act in (ReadAccounts) */
    struct handover ho;
    int64_t started_at;
};

static const char *env_default(const char *name)
{
    return getenv(name);
}

struct account_read {
    char *id;
    struct cg_err err;
};

static void on_accounts(json_t *result, const struct osc_error *oerr, const struct cg_err *err,
                        void *data)
{
    (void)oerr;
    struct account_read *a = data;
    if (err != NULL) {
        a->err = *err;
        return;
    }
    const char *id = json_string_value(
        json_object_get(json_array_get(json_object_get(result, "Accounts"), 0), "AccountId"));
    if (id == NULL || id[0] == '\0') {
        cg_err_set(&a->err, CG_EINVAL, "OUTSCALE read account: the answer names no account");
        return;
    }
    a->id = strdup(id);
}

/* The account fills {{cloud.account}} and the reports; it must be the cluster's. It is also
 * the credentials' probe, and goes out alone: OUTSCALE locks a key for a minute after four
 * refused signatures in a row, and the reconcile's first round is five or six calls at once,
 * which a wrong secret key would all get refused. */
static int read_account(struct osc_ctx *c, struct cg_err *err)
{
    struct account_read a = {0};
    int rc = osc_api_call(c->api, "ReadAccounts", NULL, "read account", 0, on_accounts, &a, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_run(c->b->s.http);
    if (a.err.code != 0) {
        *err = a.err;
        return cg_err_wrap(err, "cannot tell which OUTSCALE account the credentials act in");
    }
    c->account = a.id;
    struct k8s_identity *id = &c->b->id.k8s;
    if (id->account == NULL) {
        id->account = strdup(c->account);
    } else if (strcmp(id->account, c->account) != 0) {
        return cg_err_set(err, CG_EINVAL,
                          "the cluster runs in OUTSCALE account %s but the credentials act in "
                          "account %s: use credentials of the cluster's account",
                          id->account, c->account);
    }
    return 0;
}

static int setup(struct osc_ctx *c, struct cg_err *err)
{
    const struct cg_options *o = c->o;
    struct osc_auth_env ae = {.getenv = c->getenv_fn == env_default ? NULL : c->getenv_fn};
    const struct k8s_identity *id = &c->b->id.k8s;
    int rc = osc_credentials_load(&c->creds, &ae, o->region ? o->region : id->region, err);
    if (rc < 0) {
        return rc;
    }
    CG_LOG(CG_LOG_INFO, "outscale", "credentials from %s, region %s, endpoint %s", c->creds.source,
           c->creds.region, c->creds.endpoint_api);
    struct osc_api_config cfg = {.allow_insecure_http = o->allow_insecure_http};
    rc = osc_api_new(&c->api, c->b->s.http, &c->creds, &cfg, err);
    if (rc == 0) {
        rc = read_account(c, err);
    }
    if (rc == 0) {
        rc = handover_open(&c->ho, o, c->getenv_fn, c->b->s.http, &c->b->id, c->started_at, err);
    }
    if (rc < 0) {
        return rc;
    }
    struct profile_vars vars = {
        .cluster_name = id->name,
        .cluster_id = id->id,
        .cluster_region = id->region ? id->region : c->creds.region,
        .cloud_account = c->account,
    };
    struct profile_overrides ov = {0};
    rc = profile_load(&c->profile, o->profile, cmd_profiles_dir(o), &vars, &ov, err);
    if (rc == 0) {
        rc = profile_require(c->profile, "outscale", err);
    }
    return rc;
}

static void teardown(struct osc_ctx *c)
{
    osc_api_free(c->api);
    if (c->b->s.http != NULL) {
        cg_session_close(&c->b->s);
    }
    osc_credentials_cleanup(&c->creds);
    handover_close(&c->ho);
    profile_free(c->profile);
    free(c->account);
}

static struct rc_osc_opts opts(struct osc_ctx *c, enum rc_mode mode)
{
    return (struct rc_osc_opts){
        .mode = mode,
        .api = c->api,
        .want = &c->profile->outscale,
        .profile_name = c->profile->name,
        .delivered_key_id = c->ho.stored_found ? c->ho.stored.key_id : NULL,
        .key_record_known = c->ho.store_ready,
        .now = (int64_t)time(NULL),
    };
}

static int run_mode(void *ctx, enum rc_mode mode, void *res, struct cg_err *err)
{
    struct osc_ctx *c = ctx;
    struct rc_osc_opts ro = opts(c, mode);
    return rc_osc_run(c->b->s.http, &ro, res, err);
}

/* What the platform needs to act as the user: the key pair, where to use it, and until when. */
static json_t *credential_json(struct osc_ctx *c, const char *key_id, const char *secret,
                               const char *expiration)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "type", "outscale-access-key",
                     "accountId", c->account, "userName", c->profile->outscale.user_name, "region",
                     c->creds.region, "endpoint", c->creds.endpoint_api, "accessKeyId", key_id,
                     "secretKey", secret, "expirationDate", expiration);
}

static int remove_stale(struct osc_ctx *c, struct rc_osc_result *res, struct rc_list *changes,
                        struct cg_err *err)
{
    struct rc_osc_opts ro = opts(c, RC_MODE_APPLY);
    for (size_t i = 0; i < res->stale_count; i++) {
        int rc = rc_osc_remove_key(c->b->s.http, &ro, res->stale_keys[i], err);
        if (rc < 0) {
            return rc;
        }
        rc_list_add(changes, "outscale", "access-key", c->profile->outscale.user_name,
                    res->stale_keys[i], RC_DELETE, "replaced");
    }
    return 0;
}

/* After a converge: store a new key, hand over what the platform must receive now, mark it
 * delivered, then remove the keys it replaces. */
static int deliver_after(void *ctx, const char *kind, struct rc_list *entries, int drift,
                         void *resp, int *delivered, struct cg_err *err)
{
    struct osc_ctx *c = ctx;
    struct rc_osc_result *res = resp;
    struct handover *h = &c->ho;
    const char *user = c->profile->outscale.user_name;
    *delivered = 0;
    if (res->key_id != NULL) {
        int rc = handover_store_new(h, "outscale", user, c->account, res->key_id, res->secret, err);
        if (rc < 0) {
            return cg_err_wrap(err,
                               "access key %s was made for OUTSCALE user '%s' but could not be "
                               "stored (it will be replaced on the next run)",
                               res->key_id, user);
        }
    }
    const char *key_id = NULL;
    json_t *cred = NULL;
    if (h->stored_found && !h->stored.delivered) {
        key_id = h->stored.key_id;
        cred = credential_json(c, key_id, h->stored.secret,
                               res->key_id && strcmp(res->key_id, key_id) == 0 ? res->key_expiration
                                                                               : NULL);
    }
    int rc = handover_send(h, kind, entries, drift, NULL, cred, cred, key_id, err);
    handover_wipe_json(cred);
    json_decref(cred);
    if (rc < 0) {
        if (key_id != NULL) {
            cg_err_wrap(err,
                        "access key %s is kept in Secret %s/%s and will be handed over on the "
                        "next run",
                        key_id, h->store.ns, h->store.name);
        }
        return rc;
    }
    if (key_id != NULL) {
        rc = handover_mark_delivered(h, delivered, err);
    }
    /* Only a delivered key may replace the others. */
    if (rc == 0 && res->stale_count > 0 && (*delivered || key_id == NULL)) {
        rc = remove_stale(c, res, entries, err);
    }
    return rc;
}

static void print_result(void *ctx, const char *verb, void *resp)
{
    struct osc_ctx *c = ctx;
    const struct rc_osc_result *res = resp;
    if (cmd_json_out(c->o)) {
        json_t *root = json_pack("{s:o}", "changes", cmd_entries_json(&res->entries, 0));
        if (res->resources.count > 0) {
            json_object_set_new(root, "resources", cmd_entries_json(&res->resources, 0));
        }
        cmd_print_json(root);
        return;
    }
    printf("%s: profile %s, OUTSCALE account %s (%s), user %s%s%s%s\n", verb, c->profile->name,
           c->account, c->creds.region, c->profile->outscale.user_name, res->user_id ? " (" : "",
           res->user_id ? res->user_id : "", res->user_id ? ")" : "");
    cmd_print_entries(&res->entries, 0, stdout);
    printf("%zu change%s\n", res->entries.count, res->entries.count == 1 ? "" : "s");
}

/* rotate: a new key is made, stored and delivered before the old ones are removed. */
static int rotate(void *ctx, void *resp, int *delivered, struct cg_err *err)
{
    struct osc_ctx *c = ctx;
    struct rc_osc_result *res = resp;
    struct rc_osc_opts ro = opts(c, RC_MODE_APPLY);
    char *old = c->ho.stored.key_id ? strdup(c->ho.stored.key_id) : NULL;
    int rc = rc_osc_add_key(c->b->s.http, &ro, res->max_key_seconds, &res->key_id, &res->secret,
                            &res->key_expiration, err);
    if (rc == 0) {
        rc_list_add(&res->entries, "outscale", "access-key", c->profile->outscale.user_name,
                    res->key_id, RC_CREATE, "rotated");
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
    return &((struct rc_osc_result *)res)->entries;
}

static const char *principal(void *ctx, void *res)
{
    (void)res;
    return ((struct osc_ctx *)ctx)->profile->outscale.user_name;
}

static int has_new_key(void *res)
{
    return ((struct rc_osc_result *)res)->key_id != NULL;
}

static void cleanup(void *res)
{
    rc_osc_result_cleanup(res);
}

static void counts(void *ctx, unsigned long *reads, unsigned long *writes)
{
    struct osc_ctx *c = ctx;
    struct osc_api_stats st = {0};
    if (c->api != NULL) {
        osc_api_get_stats(c->api, &st);
    }
    *reads = st.reads;
    *writes = st.writes;
}

int cg_cmd_outscale_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                        struct cg_run_stats *stats, struct cg_err *err)
{
    struct osc_ctx c = {.o = o, .b = b, .getenv_fn = getenv_fn ? getenv_fn : env_default};
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
        snprintf(where, sizeof(where), "OUTSCALE account %s", c.account);
        struct cmd_flow f = {
            .ctx = &c,
            .ho = &c.ho,
            .profile = c.profile->name,
            .where = where,
            .what = "user",
            .credential = "access key",
            .hands_key = 1,
            .no_key = "",
            .result_size = sizeof(struct rc_osc_result),
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
