/* agent/cmd_aws.c: `plan`, `onboard`, `check` and `offboard` on AWS. */
#include "cmd.h"

#include "aws_creds.h"
#include "aws_query.h"
#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "identity.h"
#include "profile.h"
#include "rc_aws.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct aws_ctx {
    const struct cg_options *o;
    cg_getenv_fn *getenv_fn;
    struct cg_session s;
    struct cg_identity id;
    struct aws_creds_provider *creds;
    struct aws_query_client *sts;
    struct aws_query_client *iam;
    struct profile *profile;
    char *account;
    char *partition;
    char *caller_arn;
    char *delivered_key_id;
    int key_record_known;
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

/* ---- the delivery record ---- */

/* The credentials file is both where a new key goes and the record of which key the platform
 * has: a live key that is not the recorded one was never handed over. */
static int read_delivery_record(struct aws_ctx *c, struct cg_err *err)
{
    const char *path = c->o->credentials_out;
    if (path == NULL || strcmp(path, "-") == 0) {
        c->key_record_known = 0;
        return 0;
    }
    c->key_record_known = 1;
    char *text = NULL;
    size_t len = 0;
    struct cg_err e = {0};
    int rc = cg_file_read(path, 64 * 1024, &text, &len, &e);
    if (rc == CG_ENOTFOUND) {
        return 0; /* nothing delivered yet */
    }
    if (rc < 0) {
        *err = e;
        return rc;
    }
    json_t *doc = json_loadb(text, len, 0, NULL);
    cg_secret_free(text);
    const char *id = json_string_value(json_object_get(doc, "accessKeyId"));
    if (doc == NULL) {
        return cg_err_set(err, CG_EINVAL,
                          "credentials file '%s' is not JSON: remove it to have a new key "
                          "created and written there",
                          path);
    }
    c->delivered_key_id = id ? strdup(id) : NULL;
    /* the document also holds the secret: wipe it before freeing */
    json_t *s = json_object_get(doc, "secretAccessKey");
    if (json_is_string(s)) {
        cg_wipe((void *)json_string_value(s), json_string_length(s));
    }
    json_decref(doc);
    return 0;
}

static int write_credentials(struct aws_ctx *c, const struct rc_aws_result *res, struct cg_err *err)
{
    const char *path = c->o->credentials_out;
    char created[32];
    cg_format_rfc3339((int64_t)time(NULL), created, sizeof(created));
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "provider", "aws", "userName",
                  c->profile->aws.name, "accountId", c->account, "accessKeyId", res->access_key_id,
                  "secretAccessKey", res->secret_access_key, "createdAt", created);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (doc != NULL) {
        json_t *s = json_object_get(doc, "secretAccessKey");
        cg_wipe((void *)json_string_value(s), json_string_length(s));
        json_decref(doc);
    }
    if (text == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
            rc = cg_err_set(err, CG_EIO, "cannot write the credential to stdout");
        }
        cg_secret_free(text);
        return rc;
    }
    /* Write beside the target and rename, so a reader never sees half a file and a crash
     * leaves the old record intact. 0600 from creation: no moment where others can read. */
    struct cg_buf tmp;
    cg_buf_init(&tmp, 0);
    cg_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd =
        tmp.data ? open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
    size_t len = strlen(text);
    if (fd < 0) {
        rc = cg_err_set(err, CG_EIO, "cannot write credentials file '%s': %s", path,
                        strerror(errno));
    } else {
        ssize_t n = write(fd, text, len);
        int ok = n == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp.data, path) != 0) {
            rc = cg_err_set(err, CG_EIO, "cannot write credentials file '%s': %s", path,
                            strerror(errno));
            unlink(tmp.data);
        }
    }
    cg_buf_cleanup(&tmp);
    cg_secret_free(text);
    return rc;
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

static int setup(struct aws_ctx *c, struct cg_err *err)
{
    const struct cg_options *o = c->o;
    int rc = cg_session_open(&c->s, o, c->getenv_fn, err);
    if (rc < 0) {
        return cg_err_wrap(err, "cannot load the Kubernetes configuration");
    }
    struct cg_identity_opts io = {
        .provider = o->provider,
        .cluster_name = o->cluster_name,
        .region = o->region,
        .no_metadata = o->no_metadata,
        .in_cluster = c->s.in_cluster,
        .getenv = c->getenv_fn,
    };
    rc = cg_identity_resolve(c->s.http, c->s.k8s, &io, &c->id, err);
    if (rc < 0) {
        cg_err_wrap(err, "cannot read the cluster identity");
        return CG_EIO; /* reaching the cluster failed: exit 1 */
    }
    const struct k8s_identity *id = &c->id.k8s;
    if (strcmp(id->provider, "aws") != 0) {
        return cg_err_set(err, CG_EINVAL,
                          "the cluster runs on '%s', and this version manages AWS identities "
                          "only; pass --provider aws if the cluster is on AWS after all",
                          id->provider);
    }

    struct aws_env env = {.getenv = c->getenv_fn == env_default ? NULL : c->getenv_fn};
    rc = aws_creds_chain_new(&c->creds, c->s.http, &env, err);
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
        rc = aws_query_client_new(&c->sts, c->s.http, c->creds, &sc, err);
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
    cg_http_run(c->s.http);
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
        c->id.k8s.account = strdup(c->account);
    } else if (strcmp(id->account, c->account) != 0) {
        CG_LOG(CG_LOG_WARN, "aws",
               "the cluster runs in account %s but the credentials act in account %s: the "
               "identity is created in %s",
               id->account, c->account, c->account);
    }
    CG_LOG(CG_LOG_INFO, "aws", "acting as %s", c->caller_arn);

    /* The profile, rendered for this cluster and account. */
    struct profile_vars vars = {
        .cluster_name = id->name,
        .cluster_id = id->id,
        .cluster_region = id->region,
        .cloud_account = c->account,
    };
    struct profile_overrides ov = {
        .aws_mode = o->aws_mode,
        .aws_trust_principal = o->aws_trust_principal,
        .aws_external_id = o->aws_external_id,
    };
    const char *dir = o->profiles_dir;
    struct stat st;
    if (dir == NULL) {
        dir = stat(CG_PROFILES_DIR, &st) == 0 ? CG_PROFILES_DIR : CG_SOURCE_PROFILES_DIR;
    }
    rc = profile_load(&c->profile, o->profile, dir, &vars, &ov, err);
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
        rc = aws_query_client_new(&c->iam, c->s.http, c->creds, &ic, err);
    }
    return rc;
}

static void teardown(struct aws_ctx *c)
{
    aws_query_client_free(c->iam);
    aws_query_client_free(c->sts);
    if (c->s.http != NULL) {
        /* the provider may hold timers on the loop: close the engine first */
        cg_session_close(&c->s);
    }
    aws_creds_provider_free(c->creds);
    cg_identity_cleanup(&c->id);
    profile_free(c->profile);
    free(c->account);
    free(c->partition);
    free(c->caller_arn);
    free(c->delivered_key_id);
}

/* ---- output ---- */

static json_t *entries_json(const struct rc_list *l, int drift)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->count; i++) {
        const struct rc_entry *e = &l->items[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "provider", e->provider, "kind", e->kind,
                              "name", e->name ? e->name : "", "change",
                              drift ? rc_drift_word(e->change) : rc_change_word(e->change));
        if (o == NULL) {
            continue;
        }
        if (e->id != NULL) {
            json_object_set_new(o, "id", json_string(e->id));
        }
        if (e->detail != NULL) {
            json_object_set_new(o, "detail", json_string(e->detail));
        }
        json_array_append_new(a, o);
    }
    return a;
}

static void print_entries(const struct rc_list *l, int drift, FILE *out)
{
    static const char sign[] = {'+', '~', '-', ' '};
    for (size_t i = 0; i < l->count; i++) {
        const struct rc_entry *e = &l->items[i];
        fprintf(out, "  %c %-18s %-34s %s%s%s%s%s\n", sign[e->change], e->kind,
                e->name ? e->name : "", drift ? rc_drift_word(e->change) : "",
                e->id ? (drift ? "  " : "") : "", e->id ? e->id : "", e->detail ? "  # " : "",
                e->detail ? e->detail : "");
    }
}

static void print_json(json_t *root)
{
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (s != NULL) {
        printf("%s\n", s);
        free(s);
    }
    json_decref(root);
}

static int json_out(const struct cg_options *o)
{
    return o->output != NULL && strcmp(o->output, "json") == 0;
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
        .cluster_id = c->id.k8s.id,
        .delivered_key_id = c->delivered_key_id,
        .key_record_known = c->key_record_known,
    };
    return rc_aws_run(c->s.http, &ro, res, err);
}

static int deliver(struct aws_ctx *c, struct rc_aws_result *res, struct cg_err *err)
{
    if (res->access_key_id == NULL) {
        return 0;
    }
    int rc = write_credentials(c, res, err);
    if (rc < 0) {
        cg_err_wrap(err,
                    "access key %s was created for '%s' but could not be handed over (it "
                    "will be replaced on the next run)",
                    res->access_key_id, c->profile->aws.name);
    }
    return rc;
}

int cg_cmd_aws(const struct cg_options *o, cg_getenv_fn *getenv_fn, struct cg_err *err)
{
    struct aws_ctx c = {.o = o, .getenv_fn = getenv_fn ? getenv_fn : env_default};
    struct rc_aws_result res = {0};
    struct rc_aws_result after = {0};
    int exit_code = CG_EXIT_FAIL;
    int rc;

    if (o->profile == NULL) {
        cg_err_set(err, CG_EINVAL,
                   "'%s' needs --profile NAME|PATH (built-in: node-autoscaler, "
                   "platform-access)",
                   cg_command_name(o->command));
        return CG_EXIT_USAGE;
    }
    rc = setup(&c, err);
    if (rc < 0) {
        exit_code = rc == CG_EINVAL || rc == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
        goto out;
    }
    const struct profile_aws *w = &c.profile->aws;
    int hands_key = w->mode == PROFILE_AWS_USER && w->access_key;
    int mutates = o->command == CG_CMD_ONBOARD || (o->command == CG_CMD_CHECK && o->fix);
    if (hands_key && mutates && o->credentials_out == NULL) {
        cg_err_set(err, CG_EINVAL,
                   "profile '%s' hands an access key over: pass --credentials-out FILE (it also "
                   "records which key the platform has) or --credentials-out - for stdout",
                   c.profile->name);
        exit_code = CG_EXIT_USAGE;
        goto out;
    }
    if (read_delivery_record(&c, err) < 0) {
        exit_code = CG_EXIT_USAGE;
        goto out;
    }

    switch (o->command) {
    case CG_CMD_PLAN:
        rc = run_mode(&c, RC_MODE_PLAN, &res, err);
        if (rc < 0) {
            goto out;
        }
        if (json_out(o)) {
            print_json(json_pack("{s:o}", "actions", entries_json(&res.entries, 0)));
        } else {
            printf("plan: profile %s, AWS account %s, %s %s\n", c.profile->name, c.account,
                   w->mode == PROFILE_AWS_ROLE ? "role" : "user", w->name);
            print_entries(&res.entries, 0, stdout);
            printf("%zu change%s\n", res.entries.count, res.entries.count == 1 ? "" : "s");
        }
        exit_code = CG_EXIT_OK;
        break;
    case CG_CMD_CHECK:
        rc = run_mode(&c, RC_MODE_CHECK, &res, err);
        if (rc < 0) {
            goto out;
        }
        exit_code = res.entries.count ? CG_EXIT_DRIFT : CG_EXIT_OK;
        if (o->fix && res.entries.count > 0) {
            struct rc_aws_result fixed = {0};
            rc = run_mode(&c, RC_MODE_APPLY, &fixed, err);
            int drc = rc == 0 ? deliver(&c, &fixed, err) : rc;
            if (fixed.access_key_id != NULL) {
                /* the re-check judges keys by the one just handed over */
                free(c.delivered_key_id);
                c.delivered_key_id = strdup(fixed.access_key_id);
                c.key_record_known = 1;
            }
            rc_aws_result_cleanup(&fixed);
            if (rc < 0 || drc < 0) {
                goto out;
            }
            /* what is left after the repair decides the exit code */
            rc = run_mode(&c, RC_MODE_CHECK, &after, err);
            if (rc < 0) {
                goto out;
            }
            exit_code = after.entries.count ? CG_EXIT_DRIFT : CG_EXIT_OK;
        }
        if (json_out(o)) {
            json_t *root = json_pack("{s:o}", "drift", entries_json(&res.entries, 1));
            if (o->fix) {
                json_object_set_new(root, "remaining", entries_json(&after.entries, 1));
            }
            print_json(root);
        } else if (res.entries.count == 0) {
            printf("no drift: %s %s matches profile %s\n",
                   w->mode == PROFILE_AWS_ROLE ? "role" : "user", w->name, c.profile->name);
        } else {
            printf("drift: %s %s differs from profile %s\n",
                   w->mode == PROFILE_AWS_ROLE ? "role" : "user", w->name, c.profile->name);
            print_entries(&res.entries, 1, stdout);
            if (o->fix) {
                printf(after.entries.count ? "not repaired:\n" : "repaired\n");
                print_entries(&after.entries, 1, stdout);
            }
        }
        break;
    case CG_CMD_ONBOARD:
    case CG_CMD_OFFBOARD: {
        int off = o->command == CG_CMD_OFFBOARD;
        rc = run_mode(&c, off ? RC_MODE_OFFBOARD : RC_MODE_APPLY, &res, err);
        /* A key that was created is handed over even when a later step failed. */
        struct cg_err derr = {0};
        int drc = deliver(&c, &res, &derr);
        if (rc == 0 && drc < 0) {
            *err = derr;
            rc = drc;
        }
        if (json_out(o)) {
            json_t *root = json_pack("{s:o}", "changes", entries_json(&res.entries, 0));
            if (!off) {
                json_object_set_new(root, "resources", entries_json(&res.resources, 0));
            }
            print_json(root);
        } else {
            printf("%s: profile %s, AWS account %s, %s %s\n", off ? "offboard" : "onboard",
                   c.profile->name, c.account, w->mode == PROFILE_AWS_ROLE ? "role" : "user",
                   w->name);
            print_entries(&res.entries, 0, stdout);
            printf("%zu change%s\n", res.entries.count, res.entries.count == 1 ? "" : "s");
            if (res.access_key_id != NULL && strcmp(o->credentials_out, "-") != 0) {
                printf("access key %s written to %s\n", res.access_key_id, o->credentials_out);
            }
        }
        if (rc < 0) {
            goto out;
        }
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
    fflush(stdout);
    rc_aws_result_cleanup(&res);
    rc_aws_result_cleanup(&after);
    teardown(&c);
    return exit_code;
}
