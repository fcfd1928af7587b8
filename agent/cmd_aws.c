/* agent/cmd_aws.c: `plan`, `onboard`, `check` and `offboard` on AWS. */
#include "cmd.h"

#include "aws_creds.h"
#include "aws_query.h"
#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cmd_out.h"
#include "credstore.h"
#include "handover.h"
#include "identity.h"
#include "profile.h"
#include "rc_aws.h"
#include "report.h"
#include "seal.h"
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

struct aws_ctx {
    const struct cg_options *o;
    cg_getenv_fn *getenv_fn;
    struct cmd_base *b; /* the session and the identity; borrowed */
    struct aws_creds_provider *creds;
    struct aws_query_client *sts;
    struct aws_query_client *iam;
    struct profile *profile;
    char *account;
    char *partition;
    char *caller_arn;
    struct handover ho;
    int64_t started_at;
    char *trust_principal; /* from --trust-principal-url */
    char *trust_external_id;
};

/* ---- endpoints (protocols.md 1.6) ---- */

static const char *configured_endpoint(cg_getenv_fn *env, const char *service_var)
{
    const char *ignore = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (ignore != NULL && strcasecmp(ignore, "true") == 0) {
        return NULL;
    }
    const char *v = env(service_var);
    if (v != NULL && v[0] != '\0') {
        return v;
    }
    v = env("AWS_ENDPOINT_URL");
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static const char *dns_suffix(const char *region)
{
    return region != NULL && strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
}

/* IAM is global per partition and signs for that partition's home region, whatever
 * endpoint the user points it at. */
static void iam_endpoint(cg_getenv_fn *env, const char *partition, char *url, size_t len,
                         const char **region)
{
    const char *over = configured_endpoint(env, "AWS_ENDPOINT_URL_IAM");
    if (partition != NULL && strcmp(partition, "aws-cn") == 0) {
        *region = "cn-north-1";
        snprintf(url, len, "%s", over ? over : "https://iam.cn-north-1.amazonaws.com.cn");
    } else if (partition != NULL && strcmp(partition, "aws-us-gov") == 0) {
        *region = "us-gov-west-1";
        snprintf(url, len, "%s", over ? over : "https://iam.us-gov.amazonaws.com");
    } else {
        *region = "us-east-1";
        snprintf(url, len, "%s", over ? over : "https://iam.amazonaws.com");
    }
}

/* ---- setup ---- */

struct caller {
    json_t *result;
    struct cg_err err;
    int done;
};

static void on_caller(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                      void *data)
{
    struct caller *c = data;
    c->done = 1;
    if (err != NULL) {
        c->err = *err;
    } else {
        c->result = json_incref(result);
    }
}

static const char *env_default(const char *name)
{
    return getenv(name);
}

struct trust {
    char *principal;
    char *external_id;
    struct cg_err err;
};

static void on_trust(const char *principal_arn, const char *external_id, const struct cg_err *err,
                     void *data)
{
    struct trust *t = data;
    if (err != NULL) {
        t->err = *err;
        return;
    }
    t->principal = principal_arn ? strdup(principal_arn) : NULL;
    t->external_id = external_id ? strdup(external_id) : NULL;
}

/* The report endpoint, the seal key and, in role mode, the platform's principal. */
static int setup_handover(struct aws_ctx *c, struct cg_err *err)
{
    const struct cg_options *o = c->o;
    int rc = handover_open(&c->ho, o, c->getenv_fn, c->b->s.http, &c->b->id, c->started_at, err);
    if (rc < 0) {
        return rc;
    }
    if (o->trust_principal_url != NULL && o->aws_trust_principal == NULL) {
        if (!c->ho.report_on) {
            return cg_err_set(err, CG_EINVAL,
                              "--trust-principal-url needs --report-url and its token (the same "
                              "bearer token is sent)");
        }
        struct trust t = {0};
        rc = cg_url_check_transport(o->trust_principal_url,
                                    o->allow_insecure_report || o->allow_insecure_http,
                                    "trust principal URL", err);
        if (rc == 0) {
            rc = report_fetch_trust(c->b->s.http, &c->ho.report, o->trust_principal_url, on_trust,
                                    &t, err);
        }
        if (rc < 0) {
            return rc;
        }
        cg_http_run(c->b->s.http);
        if (t.err.code != 0) {
            free(t.principal);
            free(t.external_id);
            *err = t.err;
            return cg_err_wrap(err, "cannot fetch the platform's trust principal");
        }
        c->trust_principal = t.principal;
        c->trust_external_id = t.external_id;
    }
    return 0;
}

static int setup(struct aws_ctx *c, struct cg_err *err)
{
    const struct cg_options *o = c->o;
    int rc;
    const struct k8s_identity *id = &c->b->id.k8s; /* on AWS: cmd_cloud.c chose */
    struct aws_env env = {.getenv = c->getenv_fn == env_default ? NULL : c->getenv_fn};
    rc = aws_creds_chain_new(&c->creds, c->b->s.http, &env, err);
    if (rc < 0) {
        return rc;
    }
    char *env_region = aws_env_region(&env);
    const char *region = id->region ? id->region : (env_region ? env_region : "us-east-1");
    char sts_url[512];
    const char *over = configured_endpoint(c->getenv_fn, "AWS_ENDPOINT_URL_STS");
    snprintf(sts_url, sizeof(sts_url), "%s", over ? over : "");
    if (over == NULL) {
        snprintf(sts_url, sizeof(sts_url), "https://sts.%s.%s", region, dns_suffix(region));
    }
    struct aws_query_config sc = {
        .service = "sts", .version = "2011-06-15", .endpoint = sts_url, .region = region};
    rc = cg_url_check_transport(sts_url, o->allow_insecure_http, "STS endpoint", err);
    if (rc == 0) {
        rc = aws_query_client_new(&c->sts, c->b->s.http, c->creds, &sc, err);
    }
    free(env_region);
    if (rc < 0) {
        return rc;
    }
    /* Which account the credentials act in fills {{cloud.account}} and every ARN. */
    struct caller who = {0};
    rc = aws_query_call(c->sts, "GetCallerIdentity", NULL, 0, on_caller, &who, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_run(c->b->s.http);
    if (who.err.code != 0) {
        *err = who.err;
        return cg_err_wrap(err, "cannot tell which AWS account the credentials belong to");
    }
    const char *acct = json_string_value(json_object_get(who.result, "Account"));
    const char *arn = json_string_value(json_object_get(who.result, "Arn"));
    c->account = acct ? strdup(acct) : NULL;
    c->caller_arn = arn ? strdup(arn) : NULL;
    json_decref(who.result);
    if (c->account == NULL || c->caller_arn == NULL || strncmp(c->caller_arn, "arn:", 4) != 0) {
        return cg_err_set(err, CG_EIO, "STS GetCallerIdentity: the answer has no account");
    }
    /* arn:<partition>:sts::<account>:... */
    const char *p = c->caller_arn + 4;
    const char *e = strchr(p, ':');
    c->partition = e ? strndup(p, (size_t)(e - p)) : strdup("aws");
    if (id->account == NULL) {
        /* the cluster did not reveal its account: the credentials' account is the one the
         * identity is made in, and what reports will name */
        c->b->id.k8s.account = strdup(c->account);
    } else if (strcmp(id->account, c->account) != 0) {
        CG_LOG(CG_LOG_WARN, "aws",
               "the cluster runs in account %s but the credentials act in account %s: the "
               "identity is created in %s",
               id->account, c->account, c->account);
    }
    CG_LOG(CG_LOG_INFO, "aws", "acting as %s", c->caller_arn);

    rc = setup_handover(c, err);
    if (rc < 0) {
        return rc;
    }

    /* The profile, rendered for this cluster and account. */
    struct profile_vars vars = {
        .cluster_name = id->name,
        .cluster_id = id->id,
        .cluster_region = id->region,
        .cloud_account = c->account,
    };
    struct profile_overrides ov = {
        .aws_mode = o->aws_mode,
        .aws_trust_principal = o->aws_trust_principal ? o->aws_trust_principal : c->trust_principal,
        .aws_external_id = o->aws_external_id ? o->aws_external_id : c->trust_external_id,
    };
    rc = profile_load(&c->profile, o->profile, cmd_profiles_dir(o), &vars, &ov, err);
    if (rc < 0) {
        return rc;
    }
    if (!c->profile->aws.present) {
        return cg_err_set(err, CG_EINVAL, "profile '%s' has no aws section", c->profile->name);
    }

    char iam_url[512];
    const char *iam_region = NULL;
    iam_endpoint(c->getenv_fn, c->partition, iam_url, sizeof(iam_url), &iam_region);
    struct aws_query_config ic = {
        .service = "iam", .version = "2010-05-08", .endpoint = iam_url, .region = iam_region};
    rc = cg_url_check_transport(iam_url, o->allow_insecure_http, "IAM endpoint", err);
    if (rc == 0) {
        rc = aws_query_client_new(&c->iam, c->b->s.http, c->creds, &ic, err);
    }
    return rc;
}

static void teardown(struct aws_ctx *c)
{
    aws_query_client_free(c->iam);
    aws_query_client_free(c->sts);
    if (c->b->s.http != NULL) {
        /* the provider may hold timers on the loop: close the engine first */
        cg_session_close(&c->b->s);
    }
    aws_creds_provider_free(c->creds);
    profile_free(c->profile);
    free(c->account);
    free(c->partition);
    free(c->caller_arn);
    handover_close(&c->ho);
    free(c->trust_principal);
    free(c->trust_external_id);
}

/* ---- commands ---- */

static int run_mode(struct aws_ctx *c, enum rc_mode mode, struct rc_aws_result *res,
                    struct cg_err *err)
{
    struct rc_aws_opts ro = {
        .mode = mode,
        .iam = c->iam,
        .want = &c->profile->aws,
        .account = c->account,
        .partition = c->partition,
        .cluster_id = c->b->id.k8s.id,
        .delivered_key_id = c->ho.stored_found ? c->ho.stored.key_id : NULL,
        .key_record_known = c->ho.store_ready,
    };
    return rc_aws_run(c->b->s.http, &ro, res, err);
}

/* What the platform needs to act: the key of a user, or the role ARN and external ID. */
static json_t *credential_json(struct aws_ctx *c, const char *key_id, const char *secret,
                               const char *role_arn)
{
    const struct profile_aws *w = &c->profile->aws;
    if (w->mode == PROFILE_AWS_ROLE) {
        return role_arn ? json_pack("{s:s, s:s, s:s, s:s}", "type", "aws-role", "accountId",
                                    c->account, "roleArn", role_arn, "externalId",
                                    w->external_id ? w->external_id : "")
                        : NULL;
    }
    if (key_id == NULL || secret == NULL) {
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "aws-access-key", "accountId", c->account,
                     "userName", w->name, "accessKeyId", key_id, "secretAccessKey", secret);
}

/* The --credentials-out record of an access key. */
static json_t *file_json(struct aws_ctx *c, const char *key_id, const char *secret)
{
    char created[32];
    cg_format_rfc3339((int64_t)time(NULL), created, sizeof(created));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "provider", "aws", "userName",
                     c->profile->aws.name, "accountId", c->account, "accessKeyId", key_id,
                     "secretAccessKey", secret, "createdAt", created);
}

/* A report without a credential in it. */
static int hand_over(struct aws_ctx *c, const char *kind, const struct rc_list *entries, int drift,
                     const char *error, struct cg_err *err)
{
    return handover_send(&c->ho, kind, entries, drift, error, NULL, NULL, NULL, err);
}

/* After a converge: the credential the platform must receive now, if any (a new key, or a
 * stored one never delivered), is stored, handed over and marked delivered. */
static int deliver_after(struct aws_ctx *c, const char *kind, const struct rc_list *entries,
                         int drift, const struct rc_aws_result *res, int *delivered_key,
                         struct cg_err *err)
{
    const struct profile_aws *w = &c->profile->aws;
    struct handover *h = &c->ho;
    *delivered_key = 0;
    if (res->access_key_id != NULL) {
        int rc = handover_store_new(h, "aws", w->name, c->account, res->access_key_id,
                                    res->secret_access_key, err);
        if (rc < 0) {
            return cg_err_wrap(err,
                               "access key %s was created for '%s' but could not be stored "
                               "(it will be replaced on the next run)",
                               res->access_key_id, w->name);
        }
    }
    const char *key_id = NULL;
    json_t *cred = NULL;
    json_t *file = NULL;
    if (w->mode == PROFILE_AWS_USER && w->access_key && h->stored_found && !h->stored.delivered) {
        key_id = h->stored.key_id;
        cred = credential_json(c, key_id, h->stored.secret, NULL);
        file = file_json(c, key_id, h->stored.secret);
    } else if (w->mode == PROFILE_AWS_ROLE) {
        cred = credential_json(c, NULL, NULL, res->principal_arn);
    }
    int rc = handover_send(h, kind, entries, drift, NULL, cred, file, key_id, err);
    handover_wipe_json(cred);
    handover_wipe_json(file);
    json_decref(cred);
    json_decref(file);
    if (rc < 0) {
        if (key_id != NULL) {
            cg_err_wrap(err,
                        "access key %s is kept in Secret %s/%s and will be handed over on "
                        "the next run",
                        key_id, h->store.ns, h->store.name);
        }
        return rc;
    }
    return key_id != NULL ? handover_mark_delivered(h, delivered_key, err) : 0;
}

/* A synchronous IAM call for the few single steps outside the reconcile (rotate). */
struct one {
    json_t *result;
    struct cg_err err;
};

static void on_one(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                   void *data)
{
    struct one *o = data;
    if (err != NULL) {
        o->err = *err;
    } else {
        o->result = json_incref(result);
    }
}

static int iam_call(struct aws_ctx *c, const char *action, const struct aws_param *p, size_t n,
                    json_t **out, struct cg_err *err)
{
    struct one one = {0};
    int rc = aws_query_call(c->iam, action, p, n, on_one, &one, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_run(c->b->s.http);
    if (one.err.code != 0) {
        *err = one.err;
        json_decref(one.result);
        return err->code;
    }
    if (out != NULL) {
        *out = one.result;
    } else {
        json_decref(one.result);
    }
    return 0;
}

/* rotate: a new key exists, is stored and delivered before the old one is deleted, so the
 * platform is never without a working key. */
static int rotate(struct aws_ctx *c, struct rc_list *changes, struct cg_err *err)
{
    const struct profile_aws *w = &c->profile->aws;
    char *old = c->ho.stored.key_id ? strdup(c->ho.stored.key_id) : NULL;
    struct aws_param p[] = {{"UserName", w->name}};
    json_t *res = NULL;
    int rc = iam_call(c, "CreateAccessKey", p, 1, &res, err);
    if (rc < 0) {
        free(old);
        return rc;
    }
    json_t *k = json_object_get(res, "AccessKey");
    const char *id = json_string_value(json_object_get(k, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(k, "SecretAccessKey"));
    struct rc_aws_result fresh = {0};
    fresh.access_key_id = id ? strdup(id) : NULL;
    fresh.secret_access_key = secret ? strdup(secret) : NULL;
    if (secret != NULL) {
        cg_wipe((void *)secret, strlen(secret));
    }
    json_decref(res);
    if (fresh.access_key_id == NULL || fresh.secret_access_key == NULL) {
        free(old);
        rc_aws_result_cleanup(&fresh);
        return cg_err_set(err, CG_EIO, "IAM CreateAccessKey '%s': the answer holds no key",
                          w->name);
    }
    rc_list_add(changes, "aws", "access-key", w->name, fresh.access_key_id, RC_CREATE, "rotated");
    int delivered = 0;
    rc = deliver_after(c, "OnboardingReport", changes, 0, &fresh, &delivered, err);
    if (rc == 0 && old != NULL && strcmp(old, fresh.access_key_id) != 0) {
        struct aws_param d[] = {{"UserName", w->name}, {"AccessKeyId", old}};
        rc = iam_call(c, "DeleteAccessKey", d, 2, NULL, err);
        if (rc == 0) {
            rc_list_add(changes, "aws", "access-key", w->name, old, RC_DELETE, "replaced");
        }
    }
    free(old);
    rc_aws_result_cleanup(&fresh);
    return rc;
}

static const char *principal_word(const struct profile_aws *w)
{
    return w->mode == PROFILE_AWS_ROLE ? "role" : "user";
}

static void print_result(struct aws_ctx *c, const char *verb, const struct rc_aws_result *res,
                         const struct rc_list *extra)
{
    const struct profile_aws *w = &c->profile->aws;
    if (cmd_json_out(c->o)) {
        json_t *root = json_pack("{s:o}", "changes", cmd_entries_json(&res->entries, 0));
        if (extra != NULL && extra->count > 0) {
            json_t *more = cmd_entries_json(extra, 0);
            json_array_extend(json_object_get(root, "changes"), more);
            json_decref(more);
        }
        if (res->resources.count > 0) {
            json_object_set_new(root, "resources", cmd_entries_json(&res->resources, 0));
        }
        cmd_print_json(root);
        return;
    }
    size_t n = res->entries.count + (extra ? extra->count : 0);
    printf("%s: profile %s, AWS account %s, %s %s\n", verb, c->profile->name, c->account,
           principal_word(w), w->name);
    cmd_print_entries(&res->entries, 0, stdout);
    if (extra != NULL) {
        cmd_print_entries(extra, 0, stdout);
    }
    printf("%zu change%s\n", n, n == 1 ? "" : "s");
}

int cg_cmd_aws_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                   struct cg_run_stats *stats, struct cg_err *err)
{
    struct aws_ctx c = {.o = o, .b = b, .getenv_fn = getenv_fn ? getenv_fn : env_default};
    struct rc_aws_result res = {0};
    struct rc_aws_result after = {0};
    struct rc_list extra = {0};
    int exit_code = CG_EXIT_FAIL;
    int rc;
    c.started_at = (int64_t)time(NULL);

    rc = setup(&c, err);
    if (rc < 0) {
        exit_code = rc == CG_EINVAL || rc == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
        goto out;
    }
    const struct profile_aws *w = &c.profile->aws;
    int hands_key = w->mode == PROFILE_AWS_USER && w->access_key;
    int mutates = o->command == CG_CMD_ONBOARD || o->command == CG_CMD_ROTATE ||
                  (o->command == CG_CMD_CHECK && o->fix);
    if (hands_key && mutates && !c.ho.report_on && o->credentials_out == NULL) {
        cg_err_set(err, CG_EINVAL,
                   "profile '%s' hands an access key over, and there is nowhere to hand it: "
                   "pass --report-url URL (the platform), or --credentials-out FILE",
                   c.profile->name);
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    if (o->command == CG_CMD_ROTATE && !hands_key) {
        cg_err_set(err, CG_EINVAL,
                   "profile '%s' hands over no access key in %s mode: nothing "
                   "to rotate",
                   c.profile->name, principal_word(w));
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    /* The Secret is the record of which key the platform has, and the write-ahead store of a
     * key until it is delivered. */
    rc = handover_store_open(&c.ho, c.b->s.k8s, c.profile->name, err);
    if (rc < 0) {
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    /* One run at a time on a credential; plan changes nothing and hands nothing over. */
    if (o->command != CG_CMD_PLAN && handover_lock(&c.ho, err) < 0) {
        exit_code = err->code == CG_EINVAL ? CG_EXIT_USAGE : CG_EXIT_FAIL;
        goto out;
    }
    if (hands_key && handover_store_read(&c.ho, err) < 0) {
        goto out;
    }

    switch (o->command) {
    case CG_CMD_PLAN:
        rc = run_mode(&c, RC_MODE_PLAN, &res, err);
        if (rc < 0) {
            goto out;
        }
        if (cmd_json_out(o)) {
            cmd_print_json(json_pack("{s:o}", "actions", cmd_entries_json(&res.entries, 0)));
        } else {
            printf("plan: profile %s, AWS account %s, %s %s\n", c.profile->name, c.account,
                   principal_word(w), w->name);
            cmd_print_entries(&res.entries, 0, stdout);
            printf("%zu change%s\n", res.entries.count, res.entries.count == 1 ? "" : "s");
        }
        cmd_summarize(stats, "plan: %zu change%s to %s %s in AWS account %s (profile %s)",
                      res.entries.count, res.entries.count == 1 ? "" : "s", principal_word(w),
                      w->name, c.account, c.profile->name);
        exit_code = CG_EXIT_OK;
        break;
    case CG_CMD_CHECK: {
        rc = run_mode(&c, RC_MODE_CHECK, &res, err);
        if (rc < 0) {
            goto out;
        }
        exit_code = res.entries.count ? CG_EXIT_DRIFT : CG_EXIT_OK;
        int delivered = 0;
        if (o->fix && res.entries.count > 0) {
            struct rc_aws_result fixed = {0};
            rc = run_mode(&c, RC_MODE_APPLY, &fixed, err);
            if (rc == 0 && fixed.access_key_id != NULL) {
                rc = handover_store_new(&c.ho, "aws", w->name, c.account, fixed.access_key_id,
                                        fixed.secret_access_key, err);
            }
            rc_aws_result_cleanup(&fixed);
            if (rc < 0) {
                exit_code = CG_EXIT_FAIL;
                goto out;
            }
            rc = run_mode(&c, RC_MODE_CHECK, &after, err);
            if (rc < 0) {
                goto out;
            }
            exit_code = after.entries.count ? CG_EXIT_DRIFT : CG_EXIT_OK;
        }
        /* The drift report also carries a credential still owed to the platform. */
        struct rc_aws_result none = {0};
        rc = deliver_after(&c, "DriftReport", &res.entries, 1, &none, &delivered, err);
        if (rc < 0) {
            exit_code = CG_EXIT_FAIL;
            goto out;
        }
        if (res.entries.count == 0) {
            cmd_summarize(stats, "check: no drift; %s %s in AWS account %s matches profile %s",
                          principal_word(w), w->name, c.account, c.profile->name);
        } else {
            cmd_summarize(stats, "check: %zu drift entr%s on %s %s in AWS account %s%s%s",
                          res.entries.count, res.entries.count == 1 ? "y" : "ies",
                          principal_word(w), w->name, c.account,
                          !o->fix               ? " (run check --fix to repair)"
                          : after.entries.count ? ", not all repaired"
                                                : ", repaired",
                          delivered ? "; the credential owed to the platform was delivered" : "");
        }
        if (cmd_json_out(o)) {
            json_t *root = json_pack("{s:o}", "drift", cmd_entries_json(&res.entries, 1));
            if (o->fix) {
                json_object_set_new(root, "remaining", cmd_entries_json(&after.entries, 1));
            }
            cmd_print_json(root);
        } else if (res.entries.count == 0) {
            printf("no drift: %s %s matches profile %s\n", principal_word(w), w->name,
                   c.profile->name);
        } else {
            printf("drift: %s %s differs from profile %s\n", principal_word(w), w->name,
                   c.profile->name);
            cmd_print_entries(&res.entries, 1, stdout);
            if (o->fix) {
                printf(after.entries.count ? "not repaired:\n" : "repaired\n");
                cmd_print_entries(&after.entries, 1, stdout);
            }
        }
        break;
    }
    case CG_CMD_ONBOARD:
    case CG_CMD_ROTATE: {
        rc = run_mode(&c, RC_MODE_APPLY, &res, err);
        int delivered = 0;
        if (rc < 0) {
            /* a key created before the failure is still stored and handed over */
            struct cg_err derr = {0};
            if (res.access_key_id != NULL) {
                deliver_after(&c, "OnboardingReport", &res.entries, 0, &res, &delivered, &derr);
            } else if (c.ho.report_on) {
                hand_over(&c, "OnboardingReport", &res.entries, 0, err->msg, &derr);
            }
            print_result(&c, cg_command_name(o->command), &res, NULL);
            goto out;
        }
        if (o->command == CG_CMD_ROTATE && res.access_key_id == NULL) {
            rc = deliver_after(&c, "OnboardingReport", &res.entries, 0, &res, &delivered, err);
            if (rc == 0) {
                rc = rotate(&c, &extra, err);
            }
        } else {
            rc = deliver_after(&c, "OnboardingReport", &res.entries, 0, &res, &delivered, err);
        }
        print_result(&c, cg_command_name(o->command), &res, &extra);
        if (delivered && !cmd_json_out(o)) {
            printf("access key %s handed over%s%s%s\n", c.ho.stored.key_id,
                   c.ho.report_on ? " to the platform" : "",
                   o->credentials_out && strcmp(o->credentials_out, "-") ? " and written to " : "",
                   o->credentials_out && strcmp(o->credentials_out, "-") ? o->credentials_out : "");
        }
        if (rc < 0) {
            goto out;
        }
        cmd_summarize(
            stats, "%s: %s %s in AWS account %s converged to profile %s, %zu change%s%s%s%s",
            cg_command_name(o->command), principal_word(w), w->name, c.account, c.profile->name,
            res.entries.count + extra.count, res.entries.count + extra.count == 1 ? "" : "s",
            delivered ? "; access key " : "", delivered ? c.ho.stored.key_id : "",
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
                hrc = hand_over(&c, "OffboardingReport", &res.entries, 0, NULL, &rerr);
            }
        } else if (c.ho.report_on) {
            hand_over(&c, "OffboardingReport", &res.entries, 0, err->msg, &rerr);
        }
        print_result(&c, "offboard", &res, NULL);
        if (rc == 0 && hrc < 0) {
            *err = rerr;
            rc = hrc;
        }
        if (rc < 0) {
            goto out;
        }
        cmd_summarize(stats, "offboard: %zu resource%s of profile %s removed from AWS account %s",
                      res.entries.count, res.entries.count == 1 ? "" : "s", c.profile->name,
                      c.account);
        exit_code = CG_EXIT_OK;
        break;
    }
    default:
        cg_err_set(err, CG_EINVAL, "command '%s' does not apply to AWS",
                   cg_command_name(o->command));
        exit_code = CG_EXIT_USAGE;
        break;
    }
out:
    handover_unlock(&c.ho);
    fflush(stdout);
    if (stats != NULL) {
        struct aws_query_stats qs = {0};
        if (c.iam != NULL) {
            aws_query_get_stats(c.iam, &qs);
        }
        stats->reads = qs.reads;
        stats->writes = qs.writes;
        stats->drift = o->command == CG_CMD_CHECK ? res.entries.count : 0;
        stats->remaining = o->fix ? after.entries.count : stats->drift;
    }
    rc_aws_result_cleanup(&res);
    rc_aws_result_cleanup(&after);
    rc_list_cleanup(&extra);
    teardown(&c);
    return exit_code;
}
