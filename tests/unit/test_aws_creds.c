/* Unit tests for cloud/aws/creds.c: the shared-file INI parser, the STS answer parser, the
 * chain's order and precedence with an injected environment (HOME at tests/fixtures/sigv4/home
 * or a temporary directory), the cache and its callback contract, and the network sources
 * against tests/support/http_mock on a real loop (the end-to-end test with the Python emulator
 * is tests/e2e/test_aws_creds.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aws_creds.h"
#include "creds_int.h"

#include "cg_http.h"
#include "http_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define FIXTURE_HOME CG_FIXTURES "/sigv4/home"

/* ---- injected environment ------------------------------------------------------------------ */

#define MAX_ENV 32
static const char *env_names[MAX_ENV];
static const char *env_values[MAX_ENV];
static int env_n;

static void env_set(const char *name, const char *value)
{
    for (int i = 0; i < env_n; i++) {
        if (strcmp(env_names[i], name) == 0) {
            env_values[i] = value;
            return;
        }
    }
    assert_true(env_n < MAX_ENV);
    env_names[env_n] = name;
    env_values[env_n++] = value;
}

static const char *fake_getenv(const char *name)
{
    for (int i = 0; i < env_n; i++) {
        if (strcmp(env_names[i], name) == 0) {
            return env_values[i];
        }
    }
    return NULL;
}

/* ---- loop, mock, temp dir ------------------------------------------------------------------ */

struct t {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    char base[64];
    char dir[64];
    struct aws_env env;
};

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    struct cg_err err = {0};
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_int_equal(cg_http_new(&t->h, &t->loop, &err), 0);
    t->m = http_mock_new(&t->loop);
    snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%d", http_mock_port(t->m));
    snprintf(t->dir, sizeof(t->dir), "/tmp/cg-aws-creds-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    env_n = 0;
    /* no test may reach a real metadata service */
    env_set("AWS_EC2_METADATA_DISABLED", "true");
    t->env.getenv = fake_getenv;
    t->env.home = t->dir;
    *state = t;
    return 0;
}

static void rm_tree(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
    struct t *t = *state;
    cg_http_close(t->h);
    http_mock_close(t->m);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    rm_tree(t->dir);
    free(t);
    return 0;
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    if (slash != NULL && slash > path + strlen(dir)) {
        *slash = '\0';
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
        assert_int_equal(system(cmd), 0);
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* ---- getting credentials ------------------------------------------------------------------- */

struct got {
    int calls;
    int code;
    long status;
    char msg[CG_ERR_MSG_MAX];
    char akid[64];
    char secret[128];
    char token[256];
    int has_token;
    char source[40];
    int64_t exp;
};

static void on_creds(const struct aws_credentials *c, const struct cg_err *err, void *data)
{
    struct got *g = data;
    g->calls++;
    if (err != NULL) {
        g->code = err->code;
        g->status = err->http_status;
        snprintf(g->msg, sizeof(g->msg), "%s", err->msg);
        return;
    }
    g->code = 0;
    snprintf(g->akid, sizeof(g->akid), "%s", c->access_key_id);
    snprintf(g->secret, sizeof(g->secret), "%s", c->secret_access_key);
    g->has_token = c->session_token != NULL;
    snprintf(g->token, sizeof(g->token), "%s", c->session_token ? c->session_token : "");
    snprintf(g->source, sizeof(g->source), "%s", c->source ? c->source : "");
    g->exp = c->expiration;
}

/* One aws_creds_get, run to completion; the callback must not run inside the call. */
static void get(struct t *t, struct aws_creds_provider *p, struct got *g)
{
    struct cg_err err = {0};
    memset(g, 0, sizeof(*g));
    int rc = aws_creds_get(p, on_creds, g, &err);
    if (rc != 0) {
        fail_msg("aws_creds_get: %s", err.msg);
    }
    assert_int_equal(g->calls, 0);
    cg_http_run(t->h);
    assert_int_equal(g->calls, 1);
}

static struct aws_creds_provider *chain(struct t *t)
{
    struct aws_creds_provider *p = NULL;
    struct cg_err err = {0};
    assert_int_equal(aws_creds_chain_new(&p, t->h, &t->env, &err), 0);
    return p;
}

/* Runs the chain once and returns the result. */
static void resolve(struct t *t, struct got *g)
{
    struct aws_creds_provider *p = chain(t);
    get(t, p, g);
    aws_creds_provider_free(p);
}

/* ---- INI ----------------------------------------------------------------------------------- */

static void test_ini_basics(void **state)
{
    (void)state;
    const char *text = "\xEF\xBB\xBF# comment\r\n"
                       "; another\n"
                       "[default]\n"
                       "aws_access_key_id = AKID\n"
                       "Aws_Secret_Access_Key:  se=cr#et ; not a comment  \r\n"
                       "empty =\n"
                       "\n"
                       "[ spaced ]  trailing\n"
                       "s3 =\n"
                       "    max_concurrent_requests = 10\n"
                       "\n"
                       "    region = nested\n"
                       "region = top\n"
                       "[profile x]\n"
                       "  indented = yes\n";
    struct aws_ini ini = {0};
    struct cg_err err = {0};
    assert_int_equal(aws__ini_parse(&ini, text, strlen(text), "f", &err), 0);
    assert_int_equal(ini.n, 3);
    const struct aws_ini_section *d = aws__ini_section(&ini, "default");
    assert_non_null(d);
    assert_string_equal(aws__ini_get(d, "aws_access_key_id"), "AKID");
    /* keys are lower-cased; values trimmed; no inline comments (configparser's default) */
    assert_string_equal(aws__ini_get(d, "aws_secret_access_key"), "se=cr#et ; not a comment");
    assert_string_equal(aws__ini_get(d, "empty"), "");
    const struct aws_ini_section *s = aws__ini_section(&ini, "spaced");
    assert_non_null(s);
    /* indented lines continue "s3 =": they are not keys of the section */
    assert_string_equal(aws__ini_get(s, "s3"), "\nmax_concurrent_requests = 10\nregion = nested");
    assert_string_equal(aws__ini_get(s, "region"), "top");
    assert_null(aws__ini_get(s, "max_concurrent_requests"));
    /* an indented first key is a key */
    const struct aws_ini_section *x = aws__ini_config_profile(&ini, "x");
    assert_non_null(x);
    assert_string_equal(aws__ini_get(x, "indented"), "yes");
    assert_null(aws__ini_config_profile(&ini, "spaced"));
    aws__ini_cleanup(&ini);
    assert_null(ini.s);

    /* empty input, only comments */
    assert_int_equal(aws__ini_parse(&ini, "", 0, "f", &err), 0);
    assert_int_equal(ini.n, 0);
    aws__ini_cleanup(&ini);
    assert_int_equal(aws__ini_parse(&ini, "#x\n;y", 5, "f", &err), 0);
    aws__ini_cleanup(&ini);
}

static void test_ini_profiles(void **state)
{
    (void)state;
    const char *text = "[default]\nregion = a\n"
                       "[profile  spaced]\nregion = b\n"
                       "[profile \"two words\"]\nregion = c\n"
                       "[profile three words here]\nregion = d\n"
                       "[profilex]\nregion = e\n"
                       "[profile default]\nregion = f\n"
                       "[plain]\nregion = g\n";
    struct aws_ini ini = {0};
    struct cg_err err = {0};
    assert_int_equal(aws__ini_parse(&ini, text, strlen(text), "f", &err), 0);
    /* the later of [default] and [profile default] wins, as in botocore */
    assert_string_equal(aws__ini_get(aws__ini_config_profile(&ini, "default"), "region"), "f");
    assert_string_equal(aws__ini_get(aws__ini_config_profile(&ini, "spaced"), "region"), "b");
    assert_string_equal(aws__ini_get(aws__ini_config_profile(&ini, "two words"), "region"), "c");
    assert_null(aws__ini_config_profile(&ini, "three"));
    assert_null(aws__ini_config_profile(&ini, "x"));
    /* a config file's [plain] is no profile; a credentials file's is */
    assert_null(aws__ini_config_profile(&ini, "plain"));
    assert_non_null(aws__ini_section(&ini, "plain"));
    aws__ini_cleanup(&ini);
}

static void expect_ini_error(const char *text, const char *msg)
{
    struct aws_ini ini = {0};
    struct cg_err err = {0};
    assert_int_equal(aws__ini_parse(&ini, text, strlen(text), "/h/.aws/credentials", &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, msg);
    assert_null(ini.s);
}

static void test_ini_errors(void **state)
{
    (void)state;
    expect_ini_error("aws_secret_access_key = TOPSECRET\n",
                     "/h/.aws/credentials:1: key outside a [section]");
    expect_ini_error("[a]\nk = 1\n[a]\n", "/h/.aws/credentials:3: section [a] appears twice");
    expect_ini_error("[a]\nK = 1\nk = TOPSECRET\n",
                     "/h/.aws/credentials:3: key 'k' appears twice in its section");
    expect_ini_error("[a]\njust TOPSECRET words\n",
                     "/h/.aws/credentials:2: expected '[section]', 'key = value' or a comment");
    expect_ini_error("[a\n", "/h/.aws/credentials:1: section header without ']'");
    expect_ini_error("[ ]\n", "/h/.aws/credentials:1: empty section name");
    expect_ini_error("[a]\n = TOPSECRET\n", "/h/.aws/credentials:2: empty key");
    struct aws_ini ini = {0};
    struct cg_err err = {0};
    assert_int_equal(aws__ini_parse(&ini, "[a]\nk=\0v\n", 8, "f", &err), CG_EINVAL);
    assert_string_equal(err.msg, "f: contains a NUL byte");
}

/* ---- STS answers --------------------------------------------------------------------------- */

static const char sts_ok[] =
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleWithWebIdentityResult>\n"
    "    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n"
    "    <Audience>sts.amazonaws.com</Audience>\n"
    "    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>\n"
    "      <AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <SessionToken>\n   IQoJb3JpZ2luX2VjEXAMPLE/+==  \n</SessionToken>\n"
    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>\n"
    "      <Expiration>2026-11-22T10:00:00Z</Expiration>\n"
    "      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>\n"
    "    </Credentials>\n"
    "    <Provider>arn:aws:iam::123456789012:oidc-provider/x</Provider>\n"
    "  </AssumeRoleWithWebIdentityResult>\n"
    "  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>\n"
    "</AssumeRoleWithWebIdentityResponse>\n";

static void test_sts_parse(void **state)
{
    (void)state;
    struct aws_credentials c = {0};
    struct aws_sts_error ae;
    struct cg_err err = {0};
    assert_int_equal(aws__sts_parse(sts_ok, strlen(sts_ok), 200, &c, &ae, &err), 0);
    assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
    assert_string_equal(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    assert_string_equal(c.session_token, "IQoJb3JpZ2luX2VjEXAMPLE/+==");
    assert_int_equal(c.expiration, 1795341600);
    aws_credentials_cleanup(&c);

    /* a prefixed namespace: matched by local name */
    const char *pfx = "<s:R xmlns:s=\"urn:x\"><s:Credentials><s:AccessKeyId>A</s:AccessKeyId>"
                      "<s:SecretAccessKey>B</s:SecretAccessKey><s:SessionToken>C</s:SessionToken>"
                      "</s:Credentials></s:R>";
    assert_int_equal(aws__sts_parse(pfx, strlen(pfx), 200, &c, &ae, &err), 0);
    assert_string_equal(c.session_token, "C");
    assert_int_equal(c.expiration, 0);
    aws_credentials_cleanup(&c);

    const char *e = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
                    "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                    "<Message>Couldn't retrieve verification key\nfrom your identity provider"
                    "</Message></Error><RequestId>x</RequestId></ErrorResponse>";
    assert_int_equal(aws__sts_parse(e, strlen(e), 400, &c, &ae, &err), CG_ESTATUS);
    assert_string_equal(ae.code, "InvalidIdentityToken");
    assert_string_equal(ae.message,
                        "Couldn't retrieve verification key?from your identity provider");
    assert_null(c.access_key_id);
    assert_int_equal(aws__sts_parse("<html>bad gateway", 17, 502, &c, &ae, &err), CG_ESTATUS);
    assert_string_equal(ae.code, "");
    assert_string_equal(err.msg, "HTTP 502");

    /* 200 without credentials, not XML, a DTD (entity tricks), too big */
    const char *nocreds = "<R><Credentials><AccessKeyId>A</AccessKeyId></Credentials></R>";
    assert_int_equal(aws__sts_parse(nocreds, strlen(nocreds), 200, &c, &ae, &err), CG_EINVAL);
    assert_null(c.access_key_id);
    assert_int_equal(aws__sts_parse("not xml", 7, 200, &c, &ae, &err), CG_EINVAL);
    assert_int_equal(aws__sts_parse("", 0, 200, &c, &ae, &err), CG_EINVAL);
    const char *dtd = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\">]>"
                      "<R><Credentials><AccessKeyId>&a;</AccessKeyId></Credentials></R>";
    assert_int_equal(aws__sts_parse(dtd, strlen(dtd), 200, &c, &ae, &err), CG_EINVAL);
    const char *badexp = "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>B"
                         "</SecretAccessKey><SessionToken>C</SessionToken><Expiration>soon"
                         "</Expiration></Credentials></R>";
    assert_int_equal(aws__sts_parse(badexp, strlen(badexp), 200, &c, &ae, &err), CG_EINVAL);
    assert_null(c.access_key_id);
    char *big = calloc(1, AWS_STS_MAX_RESPONSE + 2);
    memset(big, ' ', AWS_STS_MAX_RESPONSE + 1);
    assert_int_equal(aws__sts_parse(big, AWS_STS_MAX_RESPONSE + 1, 200, &c, &ae, &err), CG_ETOOBIG);
    free(big);
}

static void test_sts_parse_prints_nothing(void **state)
{
    (void)state;
    /* libxml2 reports encoding errors on stderr unless told not to; library code prints nothing */
    static const char bad[] = "<?xml version=\"1.0\" encoding=\"ISO-2022-JP\"?><R>"
                              "<Credentials><AccessKeyId>\x1b$B\xff\xff</AccessKeyId>"
                              "</Credentials></R>";
    char path[] = "/tmp/cg-aws-stderr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0 && dup2(fd, 2) == 2);
    struct aws_credentials c = {0};
    struct aws_sts_error ae;
    struct cg_err err = {0};
    int rc200 = aws__sts_parse(bad, sizeof(bad) - 1, 200, &c, &ae, &err);
    int rc400 = aws__sts_parse(bad, sizeof(bad) - 1, 400, &c, &ae, &err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    assert_int_equal(rc200, CG_EINVAL);
    assert_int_equal(rc400, CG_ESTATUS);
    assert_int_equal(size, 0);
}

/* ---- the chain: environment and files ------------------------------------------------------ */

static void test_env_source(void **state)
{
    struct t *t = *state;
    struct got g;
    env_set("AWS_ACCESS_KEY_ID", "AKIDENV");
    env_set("AWS_SECRET_ACCESS_KEY", "env-secret");
    env_set("AWS_SESSION_TOKEN", "");
    env_set("AWS_SECURITY_TOKEN", "legacy-token");
    t->env.home = FIXTURE_HOME; /* files have credentials too: the environment wins */
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "environment");
    assert_string_equal(g.akid, "AKIDENV");
    assert_string_equal(g.secret, "env-secret");
    assert_string_equal(g.token, "legacy-token"); /* empty AWS_SESSION_TOKEN counts as unset */
    assert_int_equal(g.exp, 0);

    env_set("AWS_SESSION_TOKEN", "session-token");
    env_set("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T00:00:00Z");
    resolve(t, &g);
    assert_string_equal(g.token, "session-token");
    assert_int_equal(g.exp, 4070908800);

    env_set("AWS_CREDENTIAL_EXPIRATION", "tomorrow");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_string_equal(g.msg, "environment: AWS_CREDENTIAL_EXPIRATION 'tomorrow' is not an RFC "
                               "3339 time");
    env_set("AWS_CREDENTIAL_EXPIRATION", "2001-01-01T00:00:00Z");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);

    /* half-configured: an error, not a fall-through to the files */
    env_set("AWS_CREDENTIAL_EXPIRATION", NULL);
    env_set("AWS_SECRET_ACCESS_KEY", NULL);
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg,
                        "environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    assert_null(strstr(g.msg, "AKIDENV"));
}

static void test_files_fixture(void **state)
{
    struct t *t = *state;
    struct got g;
    t->env.home = FIXTURE_HOME;
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "shared-credentials-file");
    assert_string_equal(g.akid, "AKIDDEFAULTFILE");
    assert_string_equal(g.secret, "default/secret+KEY");
    assert_int_equal(g.has_token, 0);

    env_set("AWS_DEFAULT_PROFILE", "ci");
    resolve(t, &g);
    assert_string_equal(g.akid, "AKIDCIFILE");
    assert_string_equal(g.secret, "ci-secret");
    assert_string_equal(g.token, "ci-token==");

    /* AWS_PROFILE beats AWS_DEFAULT_PROFILE; keys only in the config file */
    env_set("AWS_PROFILE", "cfgkeys");
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "config-file");
    assert_string_equal(g.akid, "AKIDCONFIGFILE");

    env_set("AWS_PROFILE", "partial");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, FIXTURE_HOME "/.aws/credentials: profile 'partial' has "
                                            "aws_access_key_id but no aws_secret_access_key");

    env_set("AWS_PROFILE", "assume");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_non_null(strstr(g.msg, "AWS profile 'assume' uses role_arn with source_profile"));

    /* an explicitly named profile that does not exist is an error */
    env_set("AWS_PROFILE", "nope");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_string_equal(g.msg, "AWS profile 'nope' (from AWS_PROFILE) not found in '" FIXTURE_HOME
                               "/.aws/credentials' or '" FIXTURE_HOME "/.aws/config'");

    /* a profile that exists but has no keys: on through the chain to the final error */
    env_set("AWS_PROFILE", "quoted name");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_non_null(strstr(g.msg, "no AWS credentials found"));
}

static void test_region(void **state)
{
    struct t *t = *state;
    t->env.home = FIXTURE_HOME;
    char *r = aws_env_region(&t->env);
    assert_string_equal(r, "eu-west-3"); /* [default] of the config file */
    free(r);
    env_set("AWS_PROFILE", "ci");
    r = aws_env_region(&t->env);
    assert_string_equal(r, "us-west-2");
    free(r);
    env_set("AWS_PROFILE", "quoted name");
    r = aws_env_region(&t->env);
    assert_string_equal(r, "sa-east-1");
    free(r);
    env_set("AWS_DEFAULT_REGION", "ca-central-1");
    r = aws_env_region(&t->env);
    assert_string_equal(r, "ca-central-1");
    free(r);
    env_set("AWS_REGION", "eu-north-1");
    r = aws_env_region(&t->env);
    assert_string_equal(r, "eu-north-1");
    free(r);
    env_set("AWS_REGION", NULL);
    env_set("AWS_DEFAULT_REGION", NULL);
    env_set("AWS_PROFILE", "nope");
    assert_null(aws_env_region(&t->env));
    t->env.home = t->dir; /* no files */
    env_set("AWS_PROFILE", NULL);
    assert_null(aws_env_region(&t->env));
}

static void test_files_overrides_and_errors(void **state)
{
    struct t *t = *state;
    struct got g;
    /* AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, with "~" */
    write_file(t->dir, "elsewhere/creds",
               "[team]\naws_access_key_id=AKIDTEAM\n"
               "aws_secret_access_key=team-secret\n");
    write_file(t->dir, "elsewhere/config", "[profile team]\nregion=eu-west-1\n");
    env_set("AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere/creds");
    env_set("AWS_CONFIG_FILE", "~/elsewhere/config");
    env_set("AWS_PROFILE", "team");
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.akid, "AKIDTEAM");
    char *r = aws_env_region(&t->env);
    assert_string_equal(r, "eu-west-1");
    free(r);

    /* a broken file is an error with file and line, and no secret in it */
    write_file(t->dir, "elsewhere/creds", "[team]\naws_secret_access_key TOPSECRET\n");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    char want[256];
    snprintf(want, sizeof(want),
             "reading the AWS shared files: %s/elsewhere/creds:2: expected '[section]', "
             "'key = value' or a comment",
             t->dir);
    assert_string_equal(g.msg, want);
    assert_null(strstr(g.msg, "TOPSECRET"));
}

static void test_nothing_found(void **state)
{
    struct t *t = *state;
    struct got g;
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    char want[CG_ERR_MSG_MAX];
    snprintf(want, sizeof(want),
             "no AWS credentials found: tried environment, web identity, shared files "
             "(%s/.aws/credentials, %s/.aws/config), container provider, instance metadata "
             "(disabled by AWS_EC2_METADATA_DISABLED)",
             t->dir, t->dir);
    assert_string_equal(g.msg, want);

    /* no home directory at all */
    t->env.home = NULL;
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_non_null(strstr(g.msg, "shared files (no home directory for ~/.aws/credentials"));
}

/* ---- cache and callback contract ----------------------------------------------------------- */

struct multi {
    int calls;
    int errors;
    struct aws_creds_provider *p;
    int free_in_cb;
    int get_in_cb;
    struct got nested;
};

static void on_multi(const struct aws_credentials *c, const struct cg_err *err, void *data)
{
    struct multi *m = data;
    m->calls++;
    m->errors += err != NULL;
    if (m->get_in_cb) {
        m->get_in_cb = 0;
        assert_int_equal(aws_creds_get(m->p, on_creds, &m->nested, NULL), 0);
        assert_int_equal(m->nested.calls, 0);
    }
    if (m->free_in_cb) {
        m->free_in_cb = 0;
        aws_creds_provider_free(m->p);
    }
}

static void test_cache_and_contract(void **state)
{
    struct t *t = *state;
    struct got g;
    env_set("AWS_ACCESS_KEY_ID", "AKID1");
    env_set("AWS_SECRET_ACCESS_KEY", "s1");
    struct aws_creds_provider *p = chain(t);
    get(t, p, &g);
    assert_string_equal(g.akid, "AKID1");
    /* non-expiring credentials are served from the cache */
    env_set("AWS_ACCESS_KEY_ID", "AKID2");
    get(t, p, &g);
    assert_string_equal(g.akid, "AKID1");
    aws_creds_invalidate(p);
    get(t, p, &g);
    assert_string_equal(g.akid, "AKID2");

    /* many gets in one turn, one answer each; a get from inside a callback works */
    struct multi m = {.p = p, .get_in_cb = 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(aws_creds_get(p, on_multi, &m, NULL), 0);
    }
    assert_int_equal(m.calls, 0);
    cg_http_run(t->h);
    assert_int_equal(m.calls, 5);
    assert_int_equal(m.errors, 0);
    assert_int_equal(m.nested.calls, 1);
    assert_string_equal(m.nested.akid, "AKID2");

    /* freed from inside a callback while others wait in the same batch */
    struct multi m2 = {.p = p, .free_in_cb = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(aws_creds_get(p, on_multi, &m2, NULL), 0);
    }
    cg_http_run(t->h);
    assert_int_equal(m2.calls, 3);
    assert_int_equal(m2.errors, 0);
}

static void test_free_with_pending_get(void **state)
{
    struct t *t = *state;
    struct got g = {0};
    env_set("AWS_ACCESS_KEY_ID", "AKID1");
    env_set("AWS_SECRET_ACCESS_KEY", "s1");
    struct aws_creds_provider *p = chain(t);
    assert_int_equal(aws_creds_get(p, on_creds, &g, NULL), 0);
    aws_creds_provider_free(p); /* the waiter is answered, with CG_ECANCELED */
    cg_http_run(t->h);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, CG_ECANCELED);

    /* the engine closing answers waiters too */
    p = chain(t);
    memset(&g, 0, sizeof(g));
    assert_int_equal(aws_creds_get(p, on_creds, &g, NULL), 0);
    cg_http_close(t->h);
    t->h = NULL;
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, CG_ECANCELED);
    aws_creds_provider_free(p);
}

/* ---- network sources against http_mock ----------------------------------------------------- */

static void test_web_identity(void **state)
{
    struct t *t = *state;
    struct got g;
    char tokpath[128];
    snprintf(tokpath, sizeof(tokpath), "%s/token", t->dir);
    write_file(t->dir, "token", "eyJhbGciOiJSUzI1NiJ9.first+/=\n");
    env_set("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa");
    env_set("AWS_WEB_IDENTITY_TOKEN_FILE", tokpath);
    env_set("AWS_ROLE_SESSION_NAME", "sess");
    env_set("AWS_ENDPOINT_URL_STS", t->base);
    const char *invalid = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken"
                          "</Code><Message>Token expired</Message></Error></ErrorResponse>";
    http_mock_push(t->m, &(struct http_mock_resp){.status = 400, .body = invalid});
    http_mock_push(t->m, &(struct http_mock_resp){.body = sts_ok});
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "web-identity");
    assert_string_equal(g.akid, "ASIAEXAMPLE");
    assert_string_equal(g.token, "IQoJb3JpZ2luX2VjEXAMPLE/+==");
    /* retried once after InvalidIdentityToken; unsigned; a form with the trimmed token */
    assert_int_equal(http_mock_count(t->m), 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(http_mock_req_method(t->m, i), "POST");
        assert_string_equal(http_mock_req_target(t->m, i), "/");
        assert_null(http_mock_req_header(t->m, i, "Authorization"));
        assert_null(http_mock_req_header(t->m, i, "X-Amz-Date"));
        assert_string_equal(http_mock_req_header(t->m, i, "Content-Type"),
                            "application/x-www-form-urlencoded; charset=utf-8");
        size_t bl = 0;
        const char *b = http_mock_req_body(t->m, i, &bl);
        assert_string_equal(b, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3A"
                               "aws%3Aiam%3A%3A123456789012%3Arole%2Firsa&RoleSessionName=sess&"
                               "WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.first%2B%2F%3D");
    }

    /* a refusal that is not about the token: final, with code and message */
    const char *denied = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not "
                         "authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error>"
                         "</ErrorResponse>";
    http_mock_push(t->m, &(struct http_mock_resp){.status = 403, .body = denied});
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(g.status, 403);
    assert_string_equal(g.msg, "sts AssumeRoleWithWebIdentity for role "
                               "'arn:aws:iam::123456789012:role/irsa': AccessDenied: Not "
                               "authorized to perform sts:AssumeRoleWithWebIdentity");
    assert_int_equal(http_mock_count(t->m), 3);

    /* a missing token file is an error of this source */
    env_set("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token");
    resolve(t, &g);
    assert_int_equal(g.code, CG_ENOTFOUND);
    assert_non_null(strstr(g.msg, "web identity for role 'arn:aws:iam::123456789012:role/irsa'"));
    assert_non_null(strstr(g.msg, "/nonexistent/token"));

    /* plain http to a non-loopback STS is refused */
    env_set("AWS_WEB_IDENTITY_TOKEN_FILE", tokpath);
    env_set("AWS_ENDPOINT_URL_STS", "http://sts.example.com");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_int_equal(http_mock_count(t->m), 3);
}

static void test_web_identity_from_profile(void **state)
{
    struct t *t = *state;
    struct got g;
    write_file(t->dir, ".aws/config",
               "[profile irsa]\nrole_arn = arn:aws:iam::1:role/p\n"
               "web_identity_token_file = ~/tok\n");
    write_file(t->dir, "tok", "profile-token");
    env_set("AWS_PROFILE", "irsa");
    t->env.sts_endpoint = t->base; /* beats AWS_ENDPOINT_URL */
    env_set("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
    http_mock_push(t->m, &(struct http_mock_resp){.body = sts_ok});
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "web-identity");
    size_t bl = 0;
    const char *b = http_mock_req_body(t->m, 0, &bl);
    assert_non_null(strstr(b, "&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fp&RoleSessionName="
                              "cloudgrant-"));
    assert_non_null(strstr(b, "&WebIdentityToken=profile-token"));
}

static void test_container(void **state)
{
    struct t *t = *state;
    struct got g;
    char url[128];
    char tokpath[128];
    snprintf(url, sizeof(url), "%s/v1/credentials?x=1", t->base);
    snprintf(tokpath, sizeof(tokpath), "%s/pod-identity-token", t->dir);
    write_file(t->dir, "pod-identity-token", "pod-token-1");
    env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokpath);
    env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-literal");
    http_mock_set_default(t->m,
                          &(struct http_mock_resp){
                              .body = "{\"AccessKeyId\":\"ASIACONTAINER\",\"SecretAccessKey\":"
                                      "\"c-secret\",\"Token\":\"c-token\",\"AccountId\":"
                                      "\"123456789012\",\"Expiration\":\"2099-01-01T00:00:00Z\"}"});
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "container");
    assert_string_equal(g.akid, "ASIACONTAINER");
    assert_string_equal(g.token, "c-token");
    assert_int_equal(g.exp, 4070908800);
    assert_string_equal(http_mock_req_header(t->m, 0, "Authorization"), "pod-token-1");
    assert_string_equal(http_mock_req_target(t->m, 0), "/v1/credentials?x=1");

    /* the file is read again on each lookup */
    write_file(t->dir, "pod-identity-token", "pod-token-2");
    resolve(t, &g);
    assert_string_equal(http_mock_req_header(t->m, 1, "Authorization"), "pod-token-2");

    write_file(t->dir, "pod-identity-token", "bad\ntoken");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_non_null(strstr(g.msg, "contains a line break"));
    assert_int_equal(http_mock_count(t->m), 2);

    /* the literal token when there is no file */
    env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", NULL);
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(http_mock_req_header(t->m, 2, "Authorization"), "ignored-literal");

    /* refusals keep the endpoint's explanation */
    http_mock_push(t->m, &(struct http_mock_resp){.status = 403,
                                                  .body = "{\"code\":\"AccessDenied\",\"message\":"
                                                          "\"token audience mismatch\"}"});
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    char want[300];
    snprintf(want, sizeof(want),
             "container credentials from '%s/v1/credentials': HTTP 403 (AccessDenied: token "
             "audience mismatch)",
             t->base);
    assert_string_equal(g.msg, want);

    /* plain http only to the link-local hosts and loopback */
    env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds");
    resolve(t, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_string_equal(g.msg, "AWS_CONTAINER_CREDENTIALS_FULL_URI 'http://10.0.0.1/creds': "
                               "plain http is allowed only to loopback, 169.254.170.2, "
                               "169.254.170.23 or [fd00:ec2::23]");
}

static void test_imds(void **state)
{
    struct t *t = *state;
    struct got g;
    env_set("AWS_EC2_METADATA_DISABLED", NULL);
    t->env.imds_endpoint = t->base;
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/latest/api/token", .body = "imds-tok"});
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/latest/meta-data/iam/security-credentials/node-role",
                             .body = "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":"
                                     "\"ASIAIMDS\",\"SecretAccessKey\":\"i-secret\",\"Token\":"
                                     "\"i-token\",\"Expiration\":\"2099-01-01T00:00:00Z\"}"});
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/latest/meta-data/iam/security-credentials/",
                                            .body = "node-role\n"});
    resolve(t, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.source, "instance-metadata");
    assert_string_equal(g.akid, "ASIAIMDS");
    assert_int_equal(http_mock_count(t->m), 3);
    assert_string_equal(http_mock_req_method(t->m, 0), "PUT");
    assert_string_equal(http_mock_req_header(t->m, 0, "X-aws-ec2-metadata-token-ttl-seconds"),
                        "21600");
    assert_string_equal(http_mock_req_header(t->m, 1, "X-aws-ec2-metadata-token"), "imds-tok");
    assert_string_equal(http_mock_req_target(t->m, 2),
                        "/latest/meta-data/iam/security-credentials/node-role");
    assert_string_equal(http_mock_req_header(t->m, 2, "X-aws-ec2-metadata-token"), "imds-tok");

    /* no IMDSv2 (PUT 404): IMDS is absent, the final error says so */
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/latest/api/token", .status = 404});
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_non_null(strstr(g.msg, "no AWS credentials found: "));
    assert_non_null(strstr(g.msg, "instance metadata (" /* base */));
    assert_non_null(strstr(g.msg, "no IMDSv2, token request answered HTTP 404)"));

    /* a role that says something else than Success */
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/latest/api/token", .body = "t"});
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/latest/meta-data/iam/security-credentials/r",
                                            .body = "{\"Code\":\"AssumeRoleUnauthorizedAccess\"}"});
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/latest/meta-data/iam/security-credentials/", .body = "r"});
    resolve(t, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, "instance metadata credentials for role 'r': Code "
                               "AssumeRoleUnauthorizedAccess");
}

static void test_imds_timeout(void **state)
{
    struct t *t = *state;
    struct got g;
    env_set("AWS_EC2_METADATA_DISABLED", NULL);
    t->env.imds_endpoint = t->base;
    t->env.imds_timeout_ms = 200;
    http_mock_set_default(t->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG, .uses = -1});
    uint64_t t0 = uv_hrtime();
    resolve(t, &g);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(g.code, CG_EAUTH);
    assert_non_null(strstr(g.msg, "timed out"));
    assert_true(ms < 1500);
    assert_int_equal(http_mock_count(t->m), 2); /* two attempts */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ini_basics),
        cmocka_unit_test(test_ini_profiles),
        cmocka_unit_test(test_ini_errors),
        cmocka_unit_test(test_sts_parse),
        cmocka_unit_test(test_sts_parse_prints_nothing),
        cmocka_unit_test_setup_teardown(test_env_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_overrides_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_and_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_identity_from_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imds_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
