/* Unit tests for the report client's pure parts: body builder, idempotency key, config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_buf.h"
#include "report.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    return j;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_build_full(void **state)
{
    (void)state;
    json_t *cluster = parse("{\"id\":\"arn:aws:eks:eu-west-1:1:cluster/c\",\"name\":\"c\","
                            "\"provider\":\"aws\",\"region\":\"eu-west-1\",\"account\":\"1\","
                            "\"kubernetesVersion\":\"v1.30.2\",\"server\":\"https://k\","
                            "\"extra\":\"dropped\"}");
    json_t *res = parse("[{\"provider\":\"aws\",\"kind\":\"IAMRole\",\"id\":\"arn:aws:iam::1:"
                        "role/x\",\"change\":\"create\",\"internal\":1}]");
    json_t *creds = parse("{\"accessKeyId\":\"AKIA\",\"secretAccessKey\":\"s\"}");
    struct report_input in = {.kind = "OnboardingReport",
                              .cluster = cluster,
                              .profile = "node-autoscaler",
                              .status = "succeeded",
                              .resources = res,
                              .credentials = creds,
                              .started_at = 1767225600, /* 2026-01-01T00:00:00Z */
                              .finished_at = 1767225661,
                              .agent_version = "0.3.0"};
    char *text = report_build(&in);
    assert_non_null(text);
    /* Fixed key order: the platform's logs and golden files stay diffable. */
    assert_true(strncmp(text, "{\"kind\":\"OnboardingReport\",\"cluster\":{\"id\":", 42) == 0);
    json_t *j = parse(text);
    assert_int_equal(json_object_size(j), 11);
    assert_string_equal(str(j, "kind"), "OnboardingReport");
    assert_string_equal(str(j, "profile"), "node-autoscaler");
    assert_string_equal(str(j, "status"), "succeeded");
    assert_string_equal(str(j, "startedAt"), "2026-01-01T00:00:00Z");
    assert_string_equal(str(j, "finishedAt"), "2026-01-01T00:01:01Z");
    assert_string_equal(str(j, "agentVersion"), "0.3.0");
    assert_true(json_is_null(json_object_get(j, "error")));
    json_t *c = json_object_get(j, "cluster");
    assert_int_equal(json_object_size(c), 7);
    assert_null(json_object_get(c, "extra"));
    assert_string_equal(str(c, "kubernetesVersion"), "v1.30.2");
    json_t *r0 = json_array_get(json_object_get(j, "resources"), 0);
    assert_int_equal(json_object_size(r0), 4);
    assert_string_equal(str(r0, "change"), "create");
    assert_true(json_is_array(json_object_get(j, "drift")));
    assert_int_equal(json_array_size(json_object_get(j, "drift")), 0);
    assert_true(json_equal(json_object_get(j, "credentials"), creds));
    json_decref(j);
    cg_secret_free(text);
    json_decref(cluster);
    json_decref(res);
    json_decref(creds);
}

static void test_build_nulls_and_failure(void **state)
{
    (void)state;
    json_t *cluster = parse("{\"name\":\"c\",\"provider\":\"digitalocean\",\"region\":7}");
    struct report_input in = {.kind = "OffboardingReport",
                              .cluster = cluster,
                              .status = "failed",
                              .error = "deleting role 'x': AccessDenied",
                              .started_at = 0,
                              .finished_at = 0};
    char *text = report_build(&in);
    assert_non_null(text);
    json_t *j = parse(text);
    json_t *c = json_object_get(j, "cluster");
    assert_int_equal(json_object_size(c), 7);
    assert_true(json_is_null(json_object_get(c, "id")));
    assert_true(json_is_null(json_object_get(c, "region"))); /* not a string: null */
    assert_string_equal(str(c, "provider"), "unknown");
    assert_true(json_is_null(json_object_get(j, "profile")));
    assert_true(json_is_null(json_object_get(j, "credentials")));
    assert_int_equal(json_array_size(json_object_get(j, "resources")), 0);
    assert_string_equal(str(j, "error"), "deleting role 'x': AccessDenied");
    assert_string_equal(str(j, "agentVersion"), "unknown");
    assert_string_equal(str(j, "startedAt"), "1970-01-01T00:00:00Z");
    json_decref(j);
    cg_secret_free(text);

    /* No cluster at all still yields the seven keys. */
    in.cluster = NULL;
    text = report_build(&in);
    j = parse(text);
    assert_int_equal(json_object_size(json_object_get(j, "cluster")), 7);
    json_decref(j);
    cg_secret_free(text);
    json_decref(cluster);
}

static void test_build_sealed_and_drift(void **state)
{
    (void)state;
    const char *jwe = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.a2V5.aXY.Y3Q.dGFn";
    json_t *sealed = json_string(jwe);
    json_t *drift = parse("[{\"provider\":\"aws\",\"kind\":\"IAMPolicy\",\"name\":\"p\","
                          "\"change\":\"changed\",\"detail\":\"Action added\",\"x\":true},"
                          "{\"provider\":\"gcp\",\"kind\":\"ServiceAccount\",\"name\":\"sa\","
                          "\"change\":\"missing\",\"id\":\"sa@p.iam.gserviceaccount.com\"}]");
    struct report_input in = {.kind = "DriftReport",
                              .profile = "p",
                              .status = "succeeded",
                              .drift = drift,
                              .credentials = sealed,
                              .agent_version = "1"};
    char *text = report_build(&in);
    json_t *j = parse(text);
    assert_string_equal(str(j, "credentials"), jwe);
    json_t *d = json_object_get(j, "drift");
    assert_int_equal(json_array_size(d), 2);
    assert_int_equal(json_object_size(json_array_get(d, 0)), 5); /* "x" dropped */
    assert_string_equal(str(json_array_get(d, 1), "id"), "sa@p.iam.gserviceaccount.com");
    json_decref(j);
    cg_secret_free(text);
    json_decref(sealed);
    json_decref(drift);
    assert_null(report_build(NULL));
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void test_idempotency_key(void **state)
{
    (void)state;
    const char *a[] = {"OnboardingReport", "cluster-id", "node-autoscaler", "run-1"};
    char k1[37], k2[37], k3[37];
    report_idempotency_key(a, 4, k1);
    report_idempotency_key(a, 4, k2);
    assert_string_equal(k1, k2);
    assert_int_equal(strlen(k1), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(k1[i], '-');
        } else {
            assert_true(is_hex(k1[i]));
        }
    }
    /* Joined by '\n': moving a boundary changes the key. */
    const char *b[] = {"OnboardingReport", "cluster-idnode-autoscaler", "", "run-1"};
    report_idempotency_key(b, 4, k3);
    assert_string_not_equal(k1, k3);
    /* Known value: sha256("a\nb") = 7e18f737...; the key is its first 32 hex digits. */
    const char *ab[] = {"a", "b"};
    report_idempotency_key(ab, 2, k3);
    assert_string_equal(k3, "7e18f737-311b-2dc3-b2f2-69dd78396b03");
}

/* ---- config ---- */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/cg-report-test-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_file(const char *name, const char *content)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

static void test_config_transport(void **state)
{
    (void)state;
    struct report_config c;
    struct cg_err err = {0};
    assert_int_equal(
        report_config_init(&c, "http://127.0.0.1:8080/reports", "tok", NULL, NULL, 0, &err), 0);
    assert_string_equal(c.url, "http://127.0.0.1:8080/reports");
    assert_string_equal(c.token, "tok");
    assert_null(c.ca_pem);
    assert_int_equal(c.timeout_ms, 120000);
    report_config_cleanup(&c);
    assert_null(c.token);

    assert_int_equal(report_config_init(&c, "http://localhost/r", "t", NULL, NULL, 0, &err), 0);
    report_config_cleanup(&c);
    assert_int_equal(
        report_config_init(&c, "https://central.example.com/r", "t", NULL, NULL, 0, &err), 0);
    report_config_cleanup(&c);

    assert_int_equal(
        report_config_init(&c, "http://central.example.com/r?sig=abc", "t", NULL, NULL, 0, &err),
        CG_EINVAL);
    assert_non_null(strstr(err.msg, "--allow-insecure-report"));
    assert_null(strstr(err.msg, "sig=abc")); /* a query may carry a signature */
    assert_null(c.url);
    assert_int_equal(
        report_config_init(&c, "http://central.example.com/r", "t", NULL, NULL, 1, &err), 0);
    assert_int_equal(c.allow_insecure, 1);
    report_config_cleanup(&c);

    assert_int_equal(report_config_init(&c, "ftp://x/r", "t", NULL, NULL, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "https://"));
    assert_int_equal(report_config_init(&c, NULL, "t", NULL, NULL, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "--report-url"));
}

static void test_config_token(void **state)
{
    (void)state;
    struct report_config c;
    struct cg_err err = {0};
    const char *url = "https://central.example.com/r";

    assert_int_equal(report_config_init(&c, url, NULL, NULL, NULL, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "CLOUDGRANT_REPORT_TOKEN"));
    assert_non_null(strstr(err.msg, "--report-token-file"));
    assert_int_equal(report_config_init(&c, url, "", NULL, NULL, 0, &err), CG_EINVAL);

    char *p = write_file("token", "  file-token-123\n\n");
    assert_int_equal(report_config_init(&c, url, NULL, p, NULL, 0, &err), 0);
    assert_string_equal(c.token, "file-token-123");
    report_config_cleanup(&c);
    /* The explicit flag beats the environment. */
    assert_int_equal(report_config_init(&c, url, "env-token", p, NULL, 0, &err), 0);
    assert_string_equal(c.token, "file-token-123");
    report_config_cleanup(&c);
    assert_int_equal(report_config_init(&c, url, "env-token", NULL, NULL, 0, &err), 0);
    assert_string_equal(c.token, "env-token");
    report_config_cleanup(&c);

    p = write_file("empty", " \n");
    assert_int_equal(report_config_init(&c, url, NULL, p, NULL, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
    p = write_file("crlf", "a\r\nb\n");
    assert_int_equal(report_config_init(&c, url, NULL, p, NULL, 0, &err), CG_EINVAL);
    assert_null(strstr(err.msg, "a\r")); /* the token's bytes never reach the message */

    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nope", tmpdir);
    assert_int_equal(report_config_init(&c, url, NULL, missing, NULL, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "--report-token-file"));
    assert_non_null(strstr(err.msg, missing));
}

static void test_config_ca(void **state)
{
    (void)state;
    struct report_config c;
    struct cg_err err = {0};
    const char *url = "https://central.example.com/r";
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/ca-missing.pem", tmpdir);
    assert_int_equal(report_config_init(&c, url, "t", NULL, missing, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "--report-ca"));
    assert_non_null(strstr(err.msg, missing));
    assert_null(c.token); /* cleaned up on failure */

    char *p = write_file("notpem", "hello\n");
    assert_int_equal(report_config_init(&c, url, "t", NULL, p, 0, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "no PEM certificate"));

    const char *pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    p = write_file("ca.pem", pem);
    assert_int_equal(report_config_init(&c, url, "t", NULL, p, 0, &err), 0);
    assert_int_equal(c.ca_len, strlen(pem));
    assert_memory_equal(c.ca_pem, pem, c.ca_len);
    report_config_cleanup(&c);
}

static void test_url_for_msg(void **state)
{
    (void)state;
    char *s = report_url_for_msg("https://user:pw@h.example:8443/a/b?token=x#f");
    assert_string_equal(s, "https://h.example:8443/a/b");
    free(s);
    s = report_url_for_msg("http://127.0.0.1:1/reports");
    assert_string_equal(s, "http://127.0.0.1:1/reports");
    free(s);
    s = report_url_for_msg("https://h/p?q=a@b");
    assert_string_equal(s, "https://h/p");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_full),
        cmocka_unit_test(test_build_nulls_and_failure),
        cmocka_unit_test(test_build_sealed_and_drift),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_config_transport),
        cmocka_unit_test(test_config_token),
        cmocka_unit_test(test_config_ca),
        cmocka_unit_test(test_url_for_msg),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
