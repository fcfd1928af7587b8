/* cloud/outscale/auth.c: where the OUTSCALE key pair, region, endpoints and client certificate
 * come from, with an injected environment and config files in a scratch directory: the
 * environment pair, a partial pair, profile selection (OSC_PROFILE, OSC_CONFIG_FILE), a missing
 * profile, malformed files, key shapes, the region's precedence, endpoints (defaults, overrides,
 * both spellings of the config spec), client certificate files, and that no secret ever
 * appears in a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "outscale/osc_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AK  "F4K4T706S9000EXAMPLE"
#define SK  "E4XJE8EJ98ZEJ18E4J9ZE84J19Q8E1000EXAMPLE"
#define AK2 "AKPROD00000000000002"
#define SK2 "prodSECRET+/=prodSECRETprodSECRETprodSEC"

#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
#define KEY_PEM  "-----BEGIN PRIVATE KEY-----\nMIIEkeySECRETPART\n-----END PRIVATE KEY-----\n"

/* ---- an injected environment ------------------------------------------------------------ */

#define MAX_VARS 16
static const char *var_names[MAX_VARS];
static const char *var_values[MAX_VARS];

static void env_clear(void)
{
    memset(var_names, 0, sizeof(var_names));
    memset(var_values, 0, sizeof(var_values));
}

static void env_set(const char *name, const char *value)
{
    for (int i = 0; i < MAX_VARS; i++) {
        if (var_names[i] == NULL || strcmp(var_names[i], name) == 0) {
            var_names[i] = name;
            var_values[i] = value;
            return;
        }
    }
    fail_msg("too many variables");
}

static const char *fake_getenv(const char *name)
{
    for (int i = 0; i < MAX_VARS && var_names[i] != NULL; i++) {
        if (strcmp(var_names[i], name) == 0) {
            return var_values[i];
        }
    }
    return NULL;
}

struct env {
    char dir[64];     /* scratch directory, the fake $HOME */
    char config[128]; /* <dir>/.osc/config.json */
    struct osc_auth_env auth;
};

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_config(struct env *e, const char *text)
{
    write_file(e->config, text, strlen(text));
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    snprintf(e->dir, sizeof(e->dir), "/tmp/cg-osc-auth-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    char osc[128];
    snprintf(osc, sizeof(osc), "%s/.osc", e->dir);
    assert_int_equal(mkdir(osc, 0700), 0);
    snprintf(e->config, sizeof(e->config), "%s/config.json", osc);
    e->auth.getenv = fake_getenv;
    e->auth.home = e->dir;
    env_clear();
    *state = e;
    return 0;
}

static void rm_tree(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
    struct env *e = *state;
    rm_tree(e->dir);
    free(e);
    return 0;
}

/* Every failure: the code returned is the one in err, one line, *out left zeroed, and none of
 * the secrets this file uses appears. */
static void check_failure(int rc, const struct cg_err *err, const struct osc_credentials *c)
{
    assert_true(rc < 0);
    assert_int_equal(err->code, rc);
    assert_true(err->msg[0] != '\0');
    assert_null(strpbrk(err->msg, "\r\n"));
    static const char *const secrets[] = {SK,           SK2,          "E4XJE8EJ98",
                                          "prodSECRET", "SECRETPART", "pw-secret"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (strstr(err->msg, secrets[i]) != NULL) {
            fail_msg("a secret in the message: %s", err->msg);
        }
    }
    static const struct osc_credentials zero = {0};
    assert_memory_equal(c, &zero, sizeof(zero));
}

static int load(struct env *e, const char *hint, struct osc_credentials *c, struct cg_err *err)
{
    memset(err, 0, sizeof(*err));
    memset(c, 0xA5, sizeof(*c)); /* garbage: the function must zero it */
    int rc = osc_credentials_load(c, &e->auth, hint, err);
    if (rc < 0) {
        check_failure(rc, err, c);
    }
    return rc;
}

static void load_ok(struct env *e, const char *hint, struct osc_credentials *c)
{
    struct cg_err err;
    if (load(e, hint, c, &err) != 0) {
        fail_msg("load: %s", err.msg);
    }
}

static void load_fails(struct env *e, const char *hint, int code, const char *want)
{
    struct osc_credentials c;
    struct cg_err err;
    int rc = load(e, hint, &c, &err);
    if (rc != code) {
        fail_msg("load: want %d, got %d: %s", code, rc, err.msg);
    }
    if (want != NULL && strstr(err.msg, want) == NULL) {
        fail_msg("load: want \"%s\" in \"%s\"", want, err.msg);
    }
}

/* ---- the environment pair --------------------------------------------------------------- */

static void test_env_pair(void **state)
{
    struct env *e = *state;
    struct osc_credentials c;
    env_set("OSC_ACCESS_KEY", AK);
    env_set("OSC_SECRET_KEY", SK);
    env_set("OSC_REGION", "eu-west-2");
    /* a config file with another key and endpoint is not read at all */
    write_config(e, "{\"default\":{\"access_key\":\"" AK2 "\",\"secret_key\":\"" SK2 "\","
                    "\"region\":\"us-east-2\",\"endpoints\":{\"api\":\"https://evil.example\"},"
                    "\"x509_client_cert\":\"nope.pem\",\"x509_client_sslkey\":\"nope.key\"}}");
    load_ok(e, "ap-northeast-1", &c);
    assert_string_equal(c.access_key, AK);
    assert_string_equal(c.secret_key, SK);
    assert_string_equal(c.region, "eu-west-2");
    assert_string_equal(c.endpoint_api, "https://api.eu-west-2.outscale.com/api/v1");
    assert_string_equal(c.endpoint_eim, "https://eim.eu-west-2.outscale.com");
    assert_null(c.client_cert_pem);
    assert_null(c.client_key_pem);
    assert_string_equal(c.source, "environment");
    osc_credentials_cleanup(&c);
    static const struct osc_credentials zero = {0};
    assert_memory_equal(&c, &zero, sizeof(zero));
    osc_credentials_cleanup(&c); /* twice is fine */
    osc_credentials_cleanup(NULL);

    /* a malformed config file does not matter either */
    write_config(e, "{not json");
    load_ok(e, NULL, &c);
    assert_string_equal(c.source, "environment");
    osc_credentials_cleanup(&c);
}

static void test_partial_pair(void **state)
{
    struct env *e = *state;
    write_config(e, "{\"default\":{\"access_key\":\"" AK2 "\",\"secret_key\":\"" SK2 "\"}}");
    env_set("OSC_REGION", "eu-west-2");
    env_set("OSC_ACCESS_KEY", AK);
    load_fails(e, NULL, CG_EINVAL, "OSC_ACCESS_KEY is set but OSC_SECRET_KEY is not");
    env_set("OSC_ACCESS_KEY", "");
    env_set("OSC_SECRET_KEY", SK);
    load_fails(e, NULL, CG_EINVAL, "OSC_SECRET_KEY is set but OSC_ACCESS_KEY is not");
    /* both empty: unset, so the profile is used */
    env_set("OSC_SECRET_KEY", "");
    struct osc_credentials c;
    load_ok(e, NULL, &c);
    assert_string_equal(c.access_key, AK2);
    osc_credentials_cleanup(&c);
}

static void test_no_credentials(void **state)
{
    struct env *e = *state;
    env_set("OSC_REGION", "eu-west-2");
    load_fails(e, NULL, CG_EAUTH, NULL);
    struct osc_credentials c;
    struct cg_err err;
    assert_int_equal(load(e, NULL, &c, &err), CG_EAUTH);
    assert_string_equal(err.msg, "no OUTSCALE credentials: set OSC_ACCESS_KEY and OSC_SECRET_KEY, "
                                 "or a profile in ~/.osc/config.json");
    /* no home at all */
    e->auth.home = NULL;
    load_fails(e, NULL, CG_EAUTH, "no OUTSCALE credentials");
    env_set("HOME", "");
    load_fails(e, NULL, CG_EAUTH, "no OUTSCALE credentials");
    /* $HOME through the injected getenv when env.home is NULL */
    env_set("HOME", e->dir);
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\"}}");
    load_ok(e, NULL, &c);
    osc_credentials_cleanup(&c);
}

/* ---- the config file -------------------------------------------------------------------- */

static const char two_profiles[] =
    "{\n"
    "  \"default\": {\"access_key\": \"" AK "\", \"secret_key\": \"" SK "\",\n"
    "               \"region\": \"eu-west-2\"},\n"
    "  \"prod\": {\"access_key\": \"" AK2 "\", \"secret_key\": \"" SK2 "\",\n"
    "            \"region\": \"cloudgouv-eu-west-1\",\n"
    "            \"endpoints\": {\"api\": \"api.cloudgouv-eu-west-1.outscale.com/api/v1\",\n"
    "                           \"eim\": \"https://eim.cloudgouv-eu-west-1.outscale.com/\",\n"
    "                           \"fcu\": \"fcu.cloudgouv-eu-west-1.outscale.com\"},\n"
    "            \"ssl_verify\": true, \"extra\": [1, {\"x\": null}]}\n"
    "}\n";

static void test_profile_selection(void **state)
{
    struct env *e = *state;
    struct osc_credentials c;
    char want[256];
    write_config(e, two_profiles);
    load_ok(e, NULL, &c);
    assert_string_equal(c.access_key, AK);
    assert_string_equal(c.secret_key, SK);
    assert_string_equal(c.region, "eu-west-2");
    snprintf(want, sizeof(want), "profile 'default' of %s", e->config);
    assert_string_equal(c.source, want);
    assert_string_equal(c.endpoint_api, "https://api.eu-west-2.outscale.com/api/v1");
    osc_credentials_cleanup(&c);

    env_set("OSC_PROFILE", "prod");
    load_ok(e, "eu-west-2", &c);
    assert_string_equal(c.access_key, AK2);
    assert_string_equal(c.secret_key, SK2);
    assert_string_equal(c.region, "cloudgouv-eu-west-1"); /* the profile's, before the hint */
    snprintf(want, sizeof(want), "profile 'prod' of %s", e->config);
    assert_string_equal(c.source, want);
    /* osc-cli's older spelling: no scheme */
    assert_string_equal(c.endpoint_api, "https://api.cloudgouv-eu-west-1.outscale.com/api/v1");
    assert_string_equal(c.endpoint_eim, "https://eim.cloudgouv-eu-west-1.outscale.com");
    osc_credentials_cleanup(&c);

    /* OSC_PROFILE empty: the default */
    env_set("OSC_PROFILE", "");
    load_ok(e, NULL, &c);
    assert_string_equal(c.access_key, AK);
    osc_credentials_cleanup(&c);

    /* OSC_CONFIG_FILE elsewhere */
    char other[160];
    snprintf(other, sizeof(other), "%s/other.json", e->dir);
    write_file(other, "{\"default\":{\"access_key\":\"" AK2 "\",\"secret_key\":\"" SK2 "\"}}",
               strlen("{\"default\":{\"access_key\":\"" AK2 "\",\"secret_key\":\"" SK2 "\"}}"));
    env_set("OSC_CONFIG_FILE", other);
    load_ok(e, "us-west-1", &c);
    assert_string_equal(c.access_key, AK2);
    assert_string_equal(c.region, "us-west-1");
    snprintf(want, sizeof(want), "profile 'default' of %s", other);
    assert_string_equal(c.source, want);
    osc_credentials_cleanup(&c);
}

static void test_missing_profile(void **state)
{
    struct env *e = *state;
    char want[256];
    write_config(e, two_profiles);
    env_set("OSC_PROFILE", "staging");
    snprintf(want, sizeof(want), "profile 'staging' of '%s': no such profile", e->config);
    load_fails(e, "eu-west-2", CG_EINVAL, want);
    /* a hostile profile name is quoted printable */
    env_set("OSC_PROFILE", "a\nb");
    snprintf(want, sizeof(want), "profile 'a?b' of '%s'", e->config);
    load_fails(e, "eu-west-2", CG_EINVAL, want);
    /* the default profile missing is the same error, not "no credentials" */
    env_set("OSC_PROFILE", "");
    write_config(e, "{\"prod\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\"}}");
    snprintf(want, sizeof(want), "profile 'default' of '%s': no such profile", e->config);
    load_fails(e, "eu-west-2", CG_EINVAL, want);
}

static void test_malformed_config(void **state)
{
    struct env *e = *state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"", "not valid JSON"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\"", "not valid JSON"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\"}} x", "not valid JSON"},
        {"[{\"access_key\":\"" AK "\"}]", "not a JSON object of profiles"},
        {"{\"default\":\"" SK "\"}", "profile 'default' of"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\",\"secret_key\":\"" SK2
         "\"}}",
         "a key appears twice (line 1)"},
        {"{\"default\":{\"access_key\":\"" AK "\"}}", "'secret_key' is missing"},
        {"{\"default\":{\"secret_key\":\"" SK "\"}}", "'access_key' is missing"},
        {"{\"default\":{\"access_key\":\"\",\"secret_key\":\"" SK "\"}}",
         "'access_key' is missing"},
        {"{\"default\":{\"access_key\":5,\"secret_key\":\"" SK "\"}}",
         "'access_key' is not a string"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":[\"" SK "\"]}}",
         "'secret_key' is not a string"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\",\"region\":1}}",
         "'region' is not a string"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\",\"endpoints\":\"x\"}}",
         "'endpoints' is not an object"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK
         "\",\"endpoints\":{\"api\":7}}}",
         "'api' is not a string"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"\xc3\x28" SK "\"}}",
         "not valid JSON"},
        {"{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"a\\u0000" SK "\"}}",
         "not valid JSON"},
    };
    char want[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_config(e, cases[i].text);
        load_fails(e, "eu-west-2", CG_EINVAL, cases[i].want);
        snprintf(want, sizeof(want), "'%s'", e->config);
        load_fails(e, "eu-west-2", CG_EINVAL, want); /* the file is named */
    }
    /* line and column, never the text */
    write_config(e, "{\n  \"default\": {\n    \"secret_key\": \"" SK "\" oops\n}}");
    snprintf(want, sizeof(want), "cannot parse '%s': not valid JSON (line 3", e->config);
    load_fails(e, NULL, CG_EINVAL, want);

    /* over 1 MiB */
    size_t n = (size_t)1024 * 1024 + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    write_file(e->config, big, n);
    free(big);
    load_fails(e, NULL, CG_EINVAL, "larger than 1 MiB");

    /* OSC_CONFIG_FILE naming a missing file, or a directory: unreadable */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.json", e->dir);
    env_set("OSC_CONFIG_FILE", missing);
    snprintf(want, sizeof(want), "cannot open '%s'", missing);
    load_fails(e, NULL, CG_EIO, want);
    env_set("OSC_CONFIG_FILE", e->dir);
    load_fails(e, NULL, CG_EIO, "cannot read");
    /* an unreadable file */
    if (geteuid() != 0) {
        write_config(e, two_profiles);
        assert_int_equal(chmod(e->config, 0), 0);
        env_set("OSC_CONFIG_FILE", "");
        load_fails(e, NULL, CG_EIO, "cannot open");
    }
}

static void test_profile_parse(void **state)
{
    (void)state;
    struct osc_profile p;
    struct cg_err err = {0};
    static const char text[] =
        "{\"p\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\",\"region\":\"\","
        "\"x509_client_cert\":\"c.pem\",\"x509_client_key\":\"k.pem\","
        "\"endpoints\":{\"api\":\"https://a\",\"eim\":null}}}";
    assert_int_equal(osc_profile_parse(&p, text, strlen(text), "p", "/x/config.json", &err), 0);
    assert_string_equal(p.access_key, AK);
    assert_string_equal(p.secret_key, SK);
    assert_null(p.region); /* "" counts as unset */
    assert_string_equal(p.endpoint_api, "https://a");
    assert_null(p.endpoint_eim);
    assert_string_equal(p.client_cert, "c.pem");
    assert_string_equal(p.client_key, "k.pem"); /* osc-config-spec's name */
    osc_profile_cleanup(&p);
    osc_profile_cleanup(NULL);
    /* osc-cli's name wins when both are there */
    static const char both[] = "{\"default\":{\"access_key\":\"a\",\"secret_key\":\"b\","
                               "\"x509_client_sslkey\":\"one\",\"x509_client_key\":\"two\"}}";
    assert_int_equal(osc_profile_parse(&p, both, strlen(both), NULL, NULL, &err), 0);
    assert_string_equal(p.client_key, "one");
    osc_profile_cleanup(&p);
    /* NULL text, NULL out */
    assert_int_equal(osc_profile_parse(&p, NULL, 5, "p", "f", &err), CG_EINVAL);
    assert_null(p.access_key);
    assert_int_equal(osc_profile_parse(NULL, text, strlen(text), "p", "f", &err), CG_EINVAL);
    /* a failure leaves nothing behind */
    memset(&p, 0x5A, sizeof(p));
    assert_int_equal(osc_profile_parse(&p, text, strlen(text), "q", "f", &err), CG_EINVAL);
    static const struct osc_profile zero = {0};
    assert_memory_equal(&p, &zero, sizeof(zero));
    assert_string_equal(err.msg, "profile 'q' of 'f': no such profile (set OSC_PROFILE to another "
                                 "one)");
}

/* ---- key shapes ------------------------------------------------------------------------- */

static void test_key_shapes(void **state)
{
    struct env *e = *state;
    env_set("OSC_REGION", "eu-west-2");
    static const char *const bad_ak[] = {
        "F4K4T706S9000EXAMPL",   /* 19 */
        "F4K4T706S9000EXAMPLEX", /* 21 */
        "f4k4t706s9000example",  /* lower case */
        "F4K4T706S9000EXAMPL-",  /* punctuation */
        "F4K4T706S9000EXAMP\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad_ak) / sizeof(bad_ak[0]); i++) {
        env_set("OSC_ACCESS_KEY", bad_ak[i]);
        env_set("OSC_SECRET_KEY", SK);
        load_fails(e, NULL, CG_EINVAL,
                   "OSC_ACCESS_KEY is not an OUTSCALE access key (20 characters, A-Z and 0-9)");
    }
    static const char *const bad_sk[] = {
        "E4XJE8EJ98ZEJ18E4J9ZE84J19Q8E1000EXAMPL",   /* 39 */
        "E4XJE8EJ98ZEJ18E4J9ZE84J19Q8E1000EXAMPLEX", /* 41 */
        "E4XJE8EJ98ZEJ18E4J9 E84J19Q8E1000EXAMPLE",  /* a space */
        "E4XJE8EJ98ZEJ18E4J9\tE84J19Q8E1000EXAMPLE", /* a tab */
        "E4XJE8EJ98ZEJ18E4J9\xc3\xa9\x38\x34J19Q8E1000EXAMPL",
    };
    env_set("OSC_ACCESS_KEY", AK);
    for (size_t i = 0; i < sizeof(bad_sk) / sizeof(bad_sk[0]); i++) {
        env_set("OSC_SECRET_KEY", bad_sk[i]);
        load_fails(e, NULL, CG_EINVAL,
                   "OSC_SECRET_KEY is not an OUTSCALE secret key (40 printable characters)");
    }
    /* from a profile: named by member, profile and file */
    env_set("OSC_ACCESS_KEY", "");
    env_set("OSC_SECRET_KEY", "");
    char want[256];
    write_config(e, "{\"default\":{\"access_key\":\"F4K4T706S9000EXAMPL\",\"secret_key\":\"" SK
                    "\"}}");
    snprintf(want, sizeof(want), "access_key of profile 'default' of '%s' is not", e->config);
    load_fails(e, NULL, CG_EINVAL, want);
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"pw-secret\"}}");
    snprintf(want, sizeof(want), "secret_key of profile 'default' of '%s' is not", e->config);
    load_fails(e, NULL, CG_EINVAL, want);
}

/* ---- the region ------------------------------------------------------------------------- */

static void test_region_precedence(void **state)
{
    struct env *e = *state;
    struct osc_credentials c;
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK
                    "\",\"region\":\"us-east-2\"}}");
    /* OSC_REGION > profile > hint */
    env_set("OSC_REGION", "ap-northeast-1");
    load_ok(e, "us-west-1", &c);
    assert_string_equal(c.region, "ap-northeast-1");
    assert_string_equal(c.endpoint_api, "https://api.ap-northeast-1.outscale.com/api/v1");
    assert_string_equal(c.endpoint_eim, "https://eim.ap-northeast-1.outscale.com");
    osc_credentials_cleanup(&c);
    env_set("OSC_REGION", "");
    load_ok(e, "us-west-1", &c);
    assert_string_equal(c.region, "us-east-2");
    osc_credentials_cleanup(&c);
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\"}}");
    load_ok(e, "us-west-1", &c);
    assert_string_equal(c.region, "us-west-1");
    osc_credentials_cleanup(&c);
    /* none: an error that says what to set */
    load_fails(e, NULL, CG_EINVAL, "no OUTSCALE region: set OSC_REGION");
    load_fails(e, "", CG_EINVAL, "no OUTSCALE region: set OSC_REGION");
    /* with the environment pair, the hint still counts */
    env_set("OSC_ACCESS_KEY", AK);
    env_set("OSC_SECRET_KEY", SK);
    load_ok(e, "eu-west-2", &c);
    assert_string_equal(c.region, "eu-west-2");
    osc_credentials_cleanup(&c);
    load_fails(e, NULL, CG_EINVAL, "no OUTSCALE region");

    /* shapes */
    static const char *const bad[] = {"EU-WEST-2", "eu_west_2", "eu west 2", "eu-west-2\n",
                                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 33 */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_set("OSC_REGION", bad[i]);
        load_fails(e, NULL, CG_EINVAL, "OSC_REGION is not an OUTSCALE region name");
        env_set("OSC_REGION", "");
        load_fails(e, bad[i], CG_EINVAL, "the cluster's region is not an OUTSCALE region name");
    }
    env_set("OSC_REGION", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* 32 */
    load_ok(e, NULL, &c);
    osc_credentials_cleanup(&c);
    env_set("OSC_ACCESS_KEY", "");
    env_set("OSC_SECRET_KEY", "");
    env_set("OSC_REGION", "");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK
                    "\",\"region\":\"Eu\"}}");
    load_fails(e, "eu-west-2", CG_EINVAL, "region of profile 'default' of");
}

/* ---- endpoints -------------------------------------------------------------------------- */

static void test_endpoints(void **state)
{
    struct env *e = *state;
    struct osc_credentials c;
    env_set("OSC_ACCESS_KEY", AK);
    env_set("OSC_SECRET_KEY", SK);
    env_set("OSC_REGION", "us-west-1");
    static const struct {
        const char *value;
        const char *api;
    } ok[] = {
        {"https://api.us-west-1.outscale.com", "https://api.us-west-1.outscale.com/api/v1"},
        {"https://api.us-west-1.outscale.com/", "https://api.us-west-1.outscale.com/api/v1"},
        {"api.us-west-1.outscale.com/api/v1", "https://api.us-west-1.outscale.com/api/v1"},
        {"https://api.us-west-1.outscale.com/api/latest/",
         "https://api.us-west-1.outscale.com/api/latest"},
        {"http://127.0.0.1:8443", "http://127.0.0.1:8443/api/v1"},
        {"http://[::1]:8443/api/v1", "http://[::1]:8443/api/v1"},
        /* plain http anywhere is osc_api_new's to refuse (allow_insecure_http) */
        {"http://osc.internal:80/api/v1", "http://osc.internal:80/api/v1"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        env_set("OSC_ENDPOINT_API", ok[i].value);
        load_ok(e, NULL, &c);
        assert_string_equal(c.endpoint_api, ok[i].api);
        assert_string_equal(c.endpoint_eim, "https://eim.us-west-1.outscale.com");
        osc_credentials_cleanup(&c);
    }
    env_set("OSC_ENDPOINT_API", "");
    env_set("CLOUDGRANT_OSC_ENDPOINT_EIM", "http://127.0.0.1:9000/");
    load_ok(e, NULL, &c);
    assert_string_equal(c.endpoint_api, "https://api.us-west-1.outscale.com/api/v1");
    assert_string_equal(c.endpoint_eim, "http://127.0.0.1:9000"); /* no path added */
    osc_credentials_cleanup(&c);

    static const struct {
        const char *value;
        const char *want;
    } bad[] = {
        {"https://AK:pw-secret@api.example.com", "OSC_ENDPOINT_API must not contain user"},
        {"api.example.com@pw-secret/x", "OSC_ENDPOINT_API must not contain user information"},
        {"https://api.example.com/api/v1?x=1", "must not have a query string or fragment"},
        {"https://api.example.com/api/v1#f", "must not have a query string or fragment"},
        {"ftp://api.example.com", "must start with https://"},
        {"https://api.example.com/a b", "without spaces or control characters"},
        {"https:///api/v1", "has no host"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_set("OSC_ENDPOINT_API", bad[i].value);
        load_fails(e, NULL, CG_EINVAL, bad[i].want);
    }
    env_set("OSC_ENDPOINT_API", "");
    env_set("CLOUDGRANT_OSC_ENDPOINT_EIM", "https://eim.example.com?x");
    load_fails(e, NULL, CG_EINVAL, "CLOUDGRANT_OSC_ENDPOINT_EIM");

    /* from the profile, when the variables are unset; the variables win */
    env_set("CLOUDGRANT_OSC_ENDPOINT_EIM", "");
    env_set("OSC_ACCESS_KEY", "");
    env_set("OSC_SECRET_KEY", "");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
                    "\"endpoints\":{\"api\":\"https://osc.example.com\","
                    "\"eim\":\"eim.example.com\"}}}");
    load_ok(e, NULL, &c);
    assert_string_equal(c.endpoint_api, "https://osc.example.com/api/v1");
    assert_string_equal(c.endpoint_eim, "https://eim.example.com");
    osc_credentials_cleanup(&c);
    env_set("OSC_ENDPOINT_API", "https://other.example.com/api/v1");
    load_ok(e, NULL, &c);
    assert_string_equal(c.endpoint_api, "https://other.example.com/api/v1");
    assert_string_equal(c.endpoint_eim, "https://eim.example.com");
    osc_credentials_cleanup(&c);
    env_set("OSC_ENDPOINT_API", "");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
                    "\"endpoints\":{\"api\":\"https://u:pw-secret@osc.example.com\"}}}");
    load_fails(e, NULL, CG_EINVAL, "endpoints.api of profile 'default' of");
}

/* ---- client certificate ----------------------------------------------------------------- */

static void test_client_cert(void **state)
{
    struct env *e = *state;
    struct osc_credentials c;
    char cert[160], key[160], junk[160], want[256];
    snprintf(cert, sizeof(cert), "%s/.osc/client.crt", e->dir);
    snprintf(key, sizeof(key), "%s/.osc/client.key", e->dir);
    snprintf(junk, sizeof(junk), "%s/.osc/junk", e->dir);
    write_file(cert, CERT_PEM, strlen(CERT_PEM));
    write_file(key, KEY_PEM, strlen(KEY_PEM));
    write_file(junk, "pw-secret, not PEM", 18);
    env_set("OSC_REGION", "eu-west-2");
    env_set("OSC_ACCESS_KEY", AK);
    env_set("OSC_SECRET_KEY", SK);

    env_set("OSC_X509_CLIENT_CERT", cert);
    env_set("OSC_X509_CLIENT_KEY", key);
    load_ok(e, NULL, &c);
    assert_string_equal(c.client_cert_pem, CERT_PEM);
    assert_string_equal(c.client_key_pem, KEY_PEM);
    osc_credentials_cleanup(&c);

    /* both or neither */
    env_set("OSC_X509_CLIENT_KEY", "");
    load_fails(e, NULL, CG_EINVAL, "OSC_X509_CLIENT_CERT is set but OSC_X509_CLIENT_KEY is not");
    env_set("OSC_X509_CLIENT_CERT", "");
    env_set("OSC_X509_CLIENT_KEY", key);
    load_fails(e, NULL, CG_EINVAL, "OSC_X509_CLIENT_KEY is set but OSC_X509_CLIENT_CERT is not");
    /* missing, not PEM, too large */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.crt", e->dir);
    env_set("OSC_X509_CLIENT_CERT", missing);
    snprintf(want, sizeof(want), "OSC_X509_CLIENT_CERT: cannot open '%s'", missing);
    load_fails(e, NULL, CG_EIO, want);
    env_set("OSC_X509_CLIENT_CERT", cert);
    env_set("OSC_X509_CLIENT_KEY", junk);
    snprintf(want, sizeof(want), "OSC_X509_CLIENT_KEY: '%s' is not a PEM file", junk);
    load_fails(e, NULL, CG_EINVAL, want);
    char big[160];
    snprintf(big, sizeof(big), "%s/big.pem", e->dir);
    size_t n = 64 * 1024 + 1;
    char *text = malloc(n);
    assert_non_null(text);
    memset(text, 'A', n);
    memcpy(text, "-----BEGIN ", 11);
    write_file(big, text, n);
    free(text);
    env_set("OSC_X509_CLIENT_KEY", big);
    load_fails(e, NULL, CG_EINVAL, "OSC_X509_CLIENT_KEY: cannot read");

    /* from the profile: paths relative to the config file; the variables win */
    env_set("OSC_ACCESS_KEY", "");
    env_set("OSC_SECRET_KEY", "");
    env_set("OSC_X509_CLIENT_CERT", "");
    env_set("OSC_X509_CLIENT_KEY", "");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
                    "\"x509_client_cert\":\"client.crt\",\"x509_client_sslkey\":\"client.key\"}}");
    load_ok(e, NULL, &c);
    assert_string_equal(c.client_cert_pem, CERT_PEM);
    assert_string_equal(c.client_key_pem, KEY_PEM);
    osc_credentials_cleanup(&c);
    char absolute[512];
    snprintf(absolute, sizeof(absolute),
             "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
             "\"x509_client_cert\":\"%s\",\"x509_client_key\":\"%s\"}}",
             cert, key);
    write_config(e, absolute);
    load_ok(e, NULL, &c);
    assert_string_equal(c.client_key_pem, KEY_PEM);
    osc_credentials_cleanup(&c);
    env_set("OSC_X509_CLIENT_CERT", cert);
    env_set("OSC_X509_CLIENT_KEY", junk);
    load_fails(e, NULL, CG_EINVAL, "OSC_X509_CLIENT_KEY");
    env_set("OSC_X509_CLIENT_CERT", "");
    env_set("OSC_X509_CLIENT_KEY", "");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
                    "\"x509_client_cert\":\"client.crt\"}}");
    load_fails(e, NULL, CG_EINVAL, "'x509_client_cert' is set but 'x509_client_sslkey' is not");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
                    "\"x509_client_cert\":\"client.crt\",\"x509_client_sslkey\":\"junk\"}}");
    load_fails(e, NULL, CG_EINVAL, "x509_client_sslkey: '");
    write_config(e, "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\","
                    "\"x509_client_cert\":\"none.crt\",\"x509_client_sslkey\":\"client.key\"}}");
    load_fails(e, NULL, CG_EIO, "x509_client_cert: cannot open");
}

/* Every message of every failure above was checked for the secrets by check_failure; this
 * adds the secrets placed where a careless message would quote them. */
static void test_no_secret_in_messages(void **state)
{
    struct env *e = *state;
    env_set("OSC_REGION", "eu-west-2");
    /* the secret where the access key goes, and the other way round */
    env_set("OSC_ACCESS_KEY", SK);
    env_set("OSC_SECRET_KEY", AK);
    load_fails(e, NULL, CG_EINVAL, "OSC_ACCESS_KEY is not");
    env_set("OSC_ACCESS_KEY", "");
    env_set("OSC_SECRET_KEY", "");
    write_config(e, "{\"default\":{\"access_key\":\"" SK "\",\"secret_key\":\"" SK "\"}}");
    load_fails(e, NULL, CG_EINVAL, "access_key of profile");
    write_config(e,
                 "{\"default\":{\"access_key\":\"" AK "\",\"secret_key\":\"" SK "\" \"" SK2 "\"}}");
    load_fails(e, NULL, CG_EINVAL, "not valid JSON");
    write_config(e, "{\"" SK "\":{}}");
    load_fails(e, NULL, CG_EINVAL, "no such profile");
    env_set("OSC_PROFILE", SK2);
    write_config(e, two_profiles);
    /* the profile's name is the user's own choice and is quoted: the check is that the
     * profiles' keys are not */
    struct osc_credentials c;
    struct cg_err err;
    assert_int_equal(osc_credentials_load(&c, &e->auth, NULL, &err), CG_EINVAL);
    assert_null(strstr(err.msg, SK));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_env_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_config, setup, teardown),
        cmocka_unit_test(test_profile_parse),
        cmocka_unit_test_setup_teardown(test_key_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_in_messages, setup, teardown),
    };
    return cmocka_run_group_tests_name("osc_auth", tests, NULL, NULL);
}
