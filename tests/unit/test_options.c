/* Unit tests for the command line and its CLOUDGRANT_* environment twins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "options.h"

#include <string.h>

static const char *fake_env[][2] = {
    {"CLOUDGRANT_CONTEXT", "from-env"},
    {"CLOUDGRANT_OUTPUT", "json"},
    {"CLOUDGRANT_NO_METADATA", "true"},
};

static const char *env_fn(const char *name)
{
    for (size_t i = 0; i < sizeof(fake_env) / sizeof(fake_env[0]); i++) {
        if (strcmp(fake_env[i][0], name) == 0) {
            return fake_env[i][1];
        }
    }
    return NULL;
}

static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

static void test_flags_override_env(void **state)
{
    (void)state;
    char *argv[] = {"cloudgrant", "identity", "--context", "from-flag", "-o", "text", NULL};
    struct cg_options o;
    struct cg_err err = {0};
    assert_int_equal(cg_options_parse(&o, 6, argv, env_fn, &err), 0);
    assert_int_equal(o.command, CG_CMD_IDENTITY);
    assert_string_equal(o.context, "from-flag");
    assert_string_equal(o.output, "text");
    assert_true(o.no_metadata);
}

static void test_env_alone(void **state)
{
    (void)state;
    char *argv[] = {"cloudgrant", "identity", NULL};
    struct cg_options o;
    struct cg_err err = {0};
    assert_int_equal(cg_options_parse(&o, 2, argv, env_fn, &err), 0);
    assert_string_equal(o.context, "from-env");
    assert_string_equal(o.output, "json");
}

static void test_equals_and_short_forms(void **state)
{
    (void)state;
    char *argv[] = {"cloudgrant", "--kubeconfig=/k", "-ojson", "identity", "--provider=gcp", NULL};
    struct cg_options o;
    struct cg_err err = {0};
    assert_int_equal(cg_options_parse(&o, 5, argv, no_env, &err), 0);
    assert_string_equal(o.kubeconfig, "/k");
    assert_string_equal(o.output, "json");
    assert_string_equal(o.provider, "gcp");
}

static void expect_usage_error(int argc, char **argv, const char *needle)
{
    struct cg_options o;
    struct cg_err err = {0};
    assert_int_equal(cg_options_parse(&o, argc, argv, no_env, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, needle));
}

static void test_usage_errors(void **state)
{
    (void)state;
    char *a1[] = {"cloudgrant", "identity", "--bogus"};
    expect_usage_error(3, a1, "unknown option '--bogus'");
    char *a2[] = {"cloudgrant", "identiti"};
    expect_usage_error(2, a2, "unknown command 'identiti'");
    char *a3[] = {"cloudgrant", "identity", "--context"};
    expect_usage_error(3, a3, "needs a value");
    char *a4[] = {"cloudgrant", "identity", "-o", "yaml"};
    expect_usage_error(4, a4, "'yaml' is not one of text|json");
    char *a5[] = {"cloudgrant", "identity", "--provider", "ibm"};
    expect_usage_error(4, a5, "not one of aws|gcp|azure|outscale");
    char *a6[] = {"cloudgrant", "identity", "extra"};
    expect_usage_error(3, a6, "unexpected argument 'extra'");
    char *a7[] = {"cloudgrant", "identity", "--no-metadata=maybe"};
    expect_usage_error(3, a7, "not a boolean");
}

static const char *bad_env(const char *name)
{
    return strcmp(name, "CLOUDGRANT_LOG_LEVEL") == 0 ? "loud" : NULL;
}

static void test_bad_env_value_names_variable(void **state)
{
    (void)state;
    struct cg_options o;
    struct cg_err err = {0};
    char *argv[] = {"cloudgrant", "identity"};
    assert_int_equal(cg_options_parse(&o, 2, argv, bad_env, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "CLOUDGRANT_LOG_LEVEL"));
}

static void test_help_and_version(void **state)
{
    (void)state;
    struct cg_options o;
    struct cg_err err = {0};
    char *a1[] = {"cloudgrant", "--help"};
    assert_int_equal(cg_options_parse(&o, 2, a1, no_env, &err), 0);
    assert_int_equal(o.command, CG_CMD_HELP);
    char *a2[] = {"cloudgrant", "version"};
    assert_int_equal(cg_options_parse(&o, 2, a2, no_env, &err), 0);
    assert_int_equal(o.command, CG_CMD_VERSION);
}

static const char *azure_env(const char *name)
{
    static const char *const env[][2] = {
        {"CLOUDGRANT_AZURE_CREDENTIAL", "federated"},
        {"CLOUDGRANT_AZURE_FEDERATED_ISSUER", "https://oidc.platform.example.com"},
        {"CLOUDGRANT_AZURE_FEDERATED_SUBJECT", "system:serviceaccount:platform:agent"},
        {"CLOUDGRANT_AZURE_GRANT", "custom"},
    };
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
        if (strcmp(env[i][0], name) == 0) {
            return env[i][1];
        }
    }
    return NULL;
}

static void test_azure_options(void **state)
{
    (void)state;
    struct cg_options o;
    struct cg_err err = {0};
    char *a1[] = {"cloudgrant",
                  "plan",
                  "--azure-credential",
                  "federated",
                  "--azure-federated-issuer=https://token.example.com/tenant",
                  "--azure-federated-subject",
                  "platform:agent",
                  "--azure-grant",
                  "builtin"};
    assert_int_equal(cg_options_parse(&o, 9, a1, no_env, &err), 0);
    assert_string_equal(o.azure_credential, "federated");
    assert_string_equal(o.azure_federated_issuer, "https://token.example.com/tenant");
    assert_string_equal(o.azure_federated_subject, "platform:agent");
    assert_string_equal(o.azure_grant, "builtin");

    /* each has its CLOUDGRANT_ twin, and a flag wins over it */
    char *a2[] = {"cloudgrant", "onboard", "--azure-grant", "builtin"};
    assert_int_equal(cg_options_parse(&o, 4, a2, azure_env, &err), 0);
    assert_string_equal(o.azure_credential, "federated");
    assert_string_equal(o.azure_federated_issuer, "https://oidc.platform.example.com");
    assert_string_equal(o.azure_federated_subject, "system:serviceaccount:platform:agent");
    assert_string_equal(o.azure_grant, "builtin");

    /* the two choices are checked here; the issuer and subject by the profile loader */
    char *a3[] = {"cloudgrant", "plan", "--azure-credential", "certificate"};
    expect_usage_error(4, a3, "--azure-credential: 'certificate' is not one of secret|federated");
    char *a4[] = {"cloudgrant", "plan", "--azure-grant=Custom"};
    expect_usage_error(3, a4, "--azure-grant: 'Custom' is not one of builtin|custom");
    char *a5[] = {"cloudgrant", "plan", "--azure-federated-issuer"};
    expect_usage_error(3, a5, "option '--azure-federated-issuer' needs a value");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_override_env),
        cmocka_unit_test(test_env_alone),
        cmocka_unit_test(test_equals_and_short_forms),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_env_value_names_variable),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_azure_options),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
