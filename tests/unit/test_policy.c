/* Unit tests for cloud/policy.c: semantic equality (no false drift, no missed drift),
 * normalisation of the seeds' documents, validation per kind, and the size IAM counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_util.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILES CG_PROFILES_DIR

static int equal(const char *a, const char *b)
{
    struct cg_err err = {0};
    int eq = -1;
    int rc = policy_equal_text(a, b, &eq, &err);
    if (rc != 0) {
        print_message("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    return eq;
}

/* One statement with the given body, in a document. */
#define DOC(stmt) "{\"Version\":\"2012-10-17\",\"Statement\":[" stmt "]}"
#define S3(extra)                                                                                  \
    "{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::b/*\"" extra "}"

static void test_equal_string_vs_list(void **state)
{
    (void)state;
    assert_true(equal(DOC(S3("")), DOC("{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\"],"
                                       "\"Resource\":[\"arn:aws:s3:::b/*\"]}")));
    /* Statement as a single object */
    assert_true(equal(DOC(S3("")), "{\"Version\":\"2012-10-17\",\"Statement\":" S3("") "}"));
}

static void test_equal_action_order_and_case(void **state)
{
    (void)state;
    const char *a = DOC("{\"Effect\":\"Allow\",\"Action\":[\"ec2:StartInstances\","
                        "\"ec2:StopInstances\"],\"Resource\":\"*\"}");
    const char *b = DOC("{\"Effect\":\"Allow\",\"Action\":[\"EC2:stopinstances\","
                        "\"ec2:StartInstances\",\"ec2:startinstances\"],\"Resource\":\"*\"}");
    assert_true(equal(a, b));
    /* NotAction is folded the same way, but it is not Action */
    const char *c = DOC("{\"Effect\":\"Allow\",\"NotAction\":[\"ec2:StartInstances\","
                        "\"ec2:StopInstances\"],\"Resource\":\"*\"}");
    assert_false(equal(a, c));
    /* OUTSCALE EIM is case-sensitive: order still does not matter, case does */
    int eq = -1;
    const char *d = DOC("{\"Effect\":\"Allow\",\"Action\":[\"ec2:StopInstances\","
                        "\"ec2:StartInstances\"],\"Resource\":\"*\"}");
    assert_int_equal(policy_equal_text_exact(a, d, &eq, NULL), 0);
    assert_true(eq);
    assert_int_equal(policy_equal_text_exact(a, b, &eq, NULL), 0);
    assert_false(eq);
}

static void test_equal_whitespace_and_key_order(void **state)
{
    (void)state;
    const char *a = DOC("{\"Sid\":\"A\",\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\","
                        "\"Resource\":\"*\",\"Condition\":{\"StringEquals\":{\"k\":\"v\"}}}");
    const char *b = "{\n  \"Statement\" : [ {\n    \"Condition\": { \"StringEquals\": { \"k\": "
                    "[\"v\", \"v\"] } },\n    \"Resource\": [\"*\"],\n    \"Action\": "
                    "\"s3:GetObject\",\n    \"Effect\": \"Allow\",\n    \"Sid\": \"A\"\n  } ],\n  "
                    "\"Version\": \"2012-10-17\"\n}\n";
    assert_true(equal(a, b));
}

static void test_equal_statement_order(void **state)
{
    (void)state;
    const char *one = "{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}";
    const char *two = "{\"Effect\":\"Deny\",\"Action\":\"s3:PutObject\",\"Resource\":\"*\"}";
    char a[512];
    char b[512];
    snprintf(a, sizeof(a), "{\"Version\":\"2012-10-17\",\"Statement\":[%s,%s]}", one, two);
    snprintf(b, sizeof(b), "{\"Version\":\"2012-10-17\",\"Statement\":[%s,%s,%s]}", two, one, two);
    assert_true(equal(a, b));
}

static void test_sid_is_significant(void **state)
{
    (void)state;
    assert_false(equal(DOC(S3(",\"Sid\":\"A\"")), DOC(S3(",\"Sid\":\"B\""))));
    assert_false(equal(DOC(S3(",\"Sid\":\"A\"")), DOC(S3(""))));
}

static void test_real_changes_detected(void **state)
{
    (void)state;
    /* Resource */
    assert_false(
        equal(DOC(S3("")), DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":"
                               "\"arn:aws:s3:::c/*\"}")));
    /* resources are case-sensitive */
    assert_false(
        equal(DOC(S3("")), DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":"
                               "\"arn:aws:s3:::B/*\"}")));
    /* Effect */
    assert_false(
        equal(DOC(S3("")), DOC("{\"Effect\":\"Deny\",\"Action\":\"s3:GetObject\",\"Resource\":"
                               "\"arn:aws:s3:::b/*\"}")));
    /* Condition: value, key, operator, presence */
    const char *c1 = DOC(S3(",\"Condition\":{\"StringEquals\":{\"aws:ResourceTag/t\":\"a\"}}"));
    assert_false(equal(c1, DOC(S3(",\"Condition\":{\"StringEquals\":{\"aws:ResourceTag/t\":"
                                  "\"b\"}}"))));
    assert_false(equal(c1, DOC(S3(",\"Condition\":{\"StringEquals\":{\"aws:ResourceTag/u\":"
                                  "\"a\"}}"))));
    assert_false(equal(c1, DOC(S3(",\"Condition\":{\"StringEqualsIfExists\":{"
                                  "\"aws:ResourceTag/t\":\"a\"}}"))));
    assert_false(equal(c1, DOC(S3(""))));
    assert_false(equal(c1, DOC(S3(",\"Condition\":{\"StringEquals\":{\"aws:ResourceTag/t\":"
                                  "\"A\"}}"))));
    /* an added action */
    assert_false(equal(DOC(S3("")), DOC("{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\","
                                        "\"s3:PutObject\"],\"Resource\":\"arn:aws:s3:::b/*\"}")));
    /* Version */
    assert_false(equal(DOC(S3("")), "{\"Version\":\"2008-10-17\",\"Statement\":[" S3("") "]}"));
    /* an absent Version is the legacy one */
    assert_true(equal("{\"Version\":\"2008-10-17\",\"Statement\":[" S3("") "]}",
                      "{\"Statement\":[" S3("") "]}"));
}

static void test_condition_values(void **state)
{
    (void)state;
    /* IAM compares condition values as strings; sorted, duplicates dropped */
    assert_true(equal(DOC(S3(",\"Condition\":{\"Bool\":{\"aws:SecureTransport\":true},"
                             "\"NumericLessThan\":{\"s3:max-keys\":10}}")),
                      DOC(S3(",\"Condition\":{\"NumericLessThan\":{\"s3:max-keys\":[\"10\"]},"
                             "\"Bool\":{\"aws:SecureTransport\":\"true\"}}"))));
    assert_true(equal(DOC(S3(",\"Condition\":{\"StringEquals\":{\"k\":[\"b\",\"a\",\"b\"]}}")),
                      DOC(S3(",\"Condition\":{\"StringEquals\":{\"k\":[\"a\",\"b\"]}}"))));
    /* an empty operator or Condition constrains nothing */
    assert_true(equal(DOC(S3(",\"Condition\":{\"StringEquals\":{}}")), DOC(S3(""))));
    assert_true(equal(DOC(S3(",\"Condition\":{}")), DOC(S3(""))));
}

static void test_principals(void **state)
{
    (void)state;
    const char *a = DOC("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::"
                        "123456789012:root\"},\"Action\":\"sts:AssumeRole\"}");
    const char *b = DOC("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"arn:aws:iam::"
                        "123456789012:root\"]},\"Action\":\"sts:AssumeRole\"}");
    const char *star = DOC("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":"
                           "\"sts:AssumeRole\"}");
    const char *aws_star = DOC("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},\"Action\":"
                               "\"sts:AssumeRole\"}");
    assert_true(equal(a, b));
    assert_true(equal(star, star));
    assert_false(equal(star, aws_star));
    assert_false(equal(a, star));

    struct cg_err err = {0};
    char *text = policy_normalize_text(star, &err);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"Principal\":\"*\""));
    free(text);
    text = policy_normalize_text(a, &err);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"Principal\":{\"AWS\":[\"arn:aws:iam::123456789012:root\"]}"));
    free(text);
}

static void test_normalize_shape(void **state)
{
    (void)state;
    struct cg_err err = {0};
    char *text = policy_normalize_text(
        "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":[\"S3:PutObject\",\"s3:GetObject\"],"
        "\"Resource\":[\"arn:aws:s3:::b/Z\",\"arn:aws:s3:::b/a\",\"arn:aws:s3:::b/Z\"]},"
        "\"Version\":\"2012-10-17\"}",
        &err);
    assert_non_null(text);
    assert_string_equal(text, "{\"Statement\":[{\"Action\":[\"s3:getobject\",\"s3:putobject\"],"
                              "\"Effect\":\"Allow\",\"Resource\":[\"arn:aws:s3:::b/Z\","
                              "\"arn:aws:s3:::b/a\"]}],\"Version\":\"2012-10-17\"}");
    /* idempotent */
    char *again = policy_normalize_text(text, &err);
    assert_non_null(again);
    assert_string_equal(again, text);
    free(again);
    free(text);
}

static json_t *load_json(const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        print_message("%s: %s\n", path, jerr.text);
    }
    assert_non_null(doc);
    return doc;
}

static void test_seed_documents(void **state)
{
    (void)state;
    struct cg_err err = {0};
    /* seed 003, as get-policy-version prints it (after the template is rendered) */
    json_t *doc = load_json(PROFILES "/cast-eks-policy.json");
    json_t *norm = policy_normalize(doc, &err);
    assert_non_null(norm);
    json_t *st = json_object_get(norm, "Statement");
    assert_int_equal(json_array_size(st), 3);
    for (size_t i = 0; i < 3; i++) {
        /* every list value became a list, actions folded */
        json_t *s = json_array_get(st, i);
        assert_true(json_is_array(json_object_get(s, "Action")));
        assert_true(json_is_array(json_object_get(s, "Resource")));
        const char *sid = json_string_value(json_object_get(s, "Sid"));
        if (strcmp(sid, "NonResourcePermissions") == 0) {
            assert_int_equal(json_array_size(json_object_get(s, "Action")), 11);
            assert_string_equal(json_string_value(json_array_get(json_object_get(s, "Action"), 0)),
                                "ec2:createkeypair");
        }
        if (strcmp(sid, "PassRoleEC2") == 0) {
            json_t *v =
                json_object_get(json_object_get(json_object_get(s, "Condition"), "StringEquals"),
                                "iam:PassedToService");
            assert_true(json_is_array(v));
            assert_string_equal(json_string_value(json_array_get(v, 0)), "ec2.amazonaws.com");
        }
    }
    assert_int_equal(policy_validate(doc, POLICY_IDENTITY, &err), 0);
    json_decref(norm);
    json_decref(doc);

    /* seed 000: four statements, the condition kept */
    doc = load_json(PROFILES "/platform-access-policy.json");
    norm = policy_normalize(doc, &err);
    assert_non_null(norm);
    st = json_object_get(norm, "Statement");
    assert_int_equal(json_array_size(st), 4);
    int conditions = 0;
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_object_get(json_array_get(st, i), "Condition");
        if (c != NULL) {
            conditions++;
            json_t *v = json_object_get(json_object_get(c, "StringEqualsIfExists"),
                                        "ec2:ResourceTag/CreatedBy");
            assert_string_equal(json_string_value(json_array_get(v, 0)), "user");
        }
    }
    assert_int_equal(conditions, 1);
    json_decref(norm);
    json_decref(doc);

    /* the pretty file and AWS's compact, reordered rendition are the same policy */
    char *text = NULL;
    assert_int_equal(
        cg_file_read(PROFILES "/platform-access-policy.json", 1 << 20, &text, NULL, &err), 0);
    char *canon = policy_normalize_text(text, &err);
    assert_non_null(canon);
    assert_true(equal(text, canon));
    free(canon);
    free(text);
}

static void fails(const char *doc, const char *msg)
{
    struct cg_err err = {0};
    char *text = policy_normalize_text(doc, &err);
    assert_null(text);
    assert_int_equal(err.code, CG_EINVAL);
    if (strstr(err.msg, msg) == NULL) {
        print_message("message: %s\nwanted:  %s\n", err.msg, msg);
    }
    assert_non_null(strstr(err.msg, msg));
}

static void test_not_a_policy(void **state)
{
    (void)state;
    fails("[]", "must be an object");
    fails("{", "invalid JSON at line");
    fails("{\"Version\":\"2012-10-17\"}", "'Statement' is missing");
    fails("{\"Statement\":[]}", "must not be an empty list");
    fails("{\"Version\":\"2012-10-18\",\"Statement\":[" S3("") "]}", "'Version' must be");
    fails("{\"Statement\":[" S3("") "],\"Extra\":1}", "unknown element 'Extra'");
    fails(DOC("{\"Effect\":\"Allow\",\"Actions\":\"s3:x\",\"Resource\":\"*\"}"),
          "Statement[0]: unknown element 'Actions'");
    fails(DOC("{\"Effect\":\"allow\",\"Action\":\"s3:x\",\"Resource\":\"*\"}"), "'Effect' must be");
    fails(DOC("{\"Effect\":\"Allow\",\"Resource\":\"*\"}"), "needs 'Action' or 'NotAction'");
    fails(
        DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\",\"NotAction\":\"s3:y\",\"Resource\":\"*\"}"),
        "has both 'Action' and 'NotAction'");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":[\"s3:x\",7],\"Resource\":\"*\"}"),
          "'Action'[1] must be a string, not a number");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":{\"a\":1},\"Resource\":\"*\"}"),
          "'Action' must be a string or a list of strings, not an object");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":[],\"Resource\":\"*\"}"),
          "'Action' must not be an empty list");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\"}"), "needs 'Resource'");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\",\"Resource\":\"*\",\"Condition\":[]}"),
          "'Condition' must be an object");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\",\"Resource\":\"*\",\"Condition\":{"
              "\"StringEquals\":{\"k\":[{}]}}}"),
          "must be a string, not an object");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\",\"Principal\":\"me\"}"),
          "'Principal' must be \"*\"");
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\",\"Principal\":{\"Aws\":\"x\"}}"),
          "unknown element 'Aws'");
    /* a repeated key would hide one of its values */
    fails(DOC("{\"Effect\":\"Allow\",\"Action\":\"s3:x\",\"Action\":\"s3:y\",\"Resource\":\"*\"}"),
          "duplicate object key");
    /* a key with a NUL must not pass as a shorter one: jansson's parser refuses it, and a
     * document built in code is checked by the walk */
    fails(DOC("{\"Effect\":\"Allow\",\"Action\\u0000x\":\"s3:x\",\"Resource\":\"*\"}"),
          "NUL byte in object key");
    {
        struct cg_err e = {0};
        json_t *doc = json_loads(DOC(S3("")), 0, NULL);
        json_t *stmt = json_array_get(json_object_get(doc, "Statement"), 0);
        assert_int_equal(json_object_setn_new(stmt, "Sid\0x", 5, json_string("A")), 0);
        assert_null(policy_normalize(doc, &e));
        assert_string_equal(e.msg, "Statement[0]: element name 'Sid?x' contains a NUL character");
        json_decref(doc);
    }
    fails("{\"Statement\":[" S3("") "],\"Id\":5}", "'Id' must be a string");
    /* numbers jansson cannot hold are a parse error, not a crash */
    fails(DOC(S3(",\"Condition\":{\"NumericEquals\":{\"k\":1e999}}")), "invalid JSON");
    fails(DOC(S3(",\"Condition\":{\"NumericEquals\":{\"k\":123456789012345678901234567890}}")),
          "invalid JSON");

    struct cg_err err = {0};
    int eq = 5;
    assert_int_equal(policy_equal_text(DOC(S3("")), "nope", &eq, &err), CG_EINVAL);
    assert_int_equal(eq, 0);
    assert_non_null(strstr(err.msg, "second policy"));
    assert_int_equal(policy_equal_text("{}", DOC(S3("")), &eq, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "first policy"));
    assert_null(policy_normalize(NULL, &err));
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* jansson refuses beyond its depth limit; below it the walk refuses by structure */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    fails(deep, "invalid JSON");
    free(deep);
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "%s",
                     "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                     "\"Action\":\"s3:x\",\"Resource\":\"*\",\"Condition\":{"
                     "\"StringEquals\":{\"k\":");
    for (int i = 0; i < 1000; i++) {
        buf[n++] = '[';
    }
    for (int i = 0; i < 1000; i++) {
        buf[n++] = ']';
    }
    snprintf(buf + n, sizeof(buf) - (size_t)n, "}}}]}");
    fails(buf, "must be a string, not a list");
}

static void test_validate_kinds(void **state)
{
    (void)state;
    struct cg_err err = {0};
    json_t *trust = json_loads(DOC("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::"
                                   "123456789012:root\"},\"Action\":\"sts:AssumeRole\"}"),
                               0, NULL);
    assert_int_equal(policy_validate(trust, POLICY_TRUST, &err), 0);
    assert_int_equal(policy_validate(trust, POLICY_IDENTITY, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "must not name a 'Principal'"));
    json_decref(trust);

    json_t *id = json_loads(DOC(S3("")), 0, NULL);
    assert_int_equal(policy_validate(id, POLICY_IDENTITY, &err), 0);
    assert_int_equal(policy_validate(id, POLICY_TRUST, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "needs 'Principal'"));
    json_decref(id);

    json_t *nover = json_loads("{\"Statement\":[" S3("") "]}", 0, NULL);
    assert_int_equal(policy_validate(nover, POLICY_IDENTITY, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "'Version' is missing"));
    json_decref(nover);

    json_t *bad = json_loads(DOC(S3("") ",{\"Effect\":\"Allow\",\"Action\":\"ec2 RunInstances\","
                                        "\"Resource\":\"*\"}"),
                             0, NULL);
    assert_int_equal(policy_validate(bad, POLICY_IDENTITY, &err), CG_EINVAL);
    assert_string_equal(err.msg, "Statement[1]: 'Action' value 'ec2 RunInstances' is not an "
                                 "action ('service:Action', wildcards allowed, or \"*\")");
    json_decref(bad);

    bad = json_loads(DOC("{\"Effect\":\"Allow\",\"Action\":\"ec2:*\",\"Resource\":\"instance/*\"}"),
                     0, NULL);
    assert_int_equal(policy_validate(bad, POLICY_IDENTITY, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "'Resource' value 'instance/*' is not an ARN or \"*\""));
    json_decref(bad);
}

static void test_size_nonspace(void **state)
{
    (void)state;
    assert_int_equal(policy_size_nonspace(""), 0);
    assert_int_equal(policy_size_nonspace(NULL), 0);
    assert_int_equal(policy_size_nonspace(" {\n\t\"a\" : 1 }\r\n"), 7);
    /* a two-byte UTF-8 character counts once */
    assert_int_equal(policy_size_nonspace("\"\xc3\xa9\""), 3);
    /* the pretty file and its compact form have the same size */
    struct cg_err err = {0};
    char *text = NULL;
    assert_int_equal(cg_file_read(PROFILES "/cast-eks-policy.json", 1 << 20, &text, NULL, &err), 0);
    json_t *doc = json_loads(text, 0, NULL);
    char *compact = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(policy_size_nonspace(text), strlen(compact));
    free(compact);
    json_decref(doc);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_string_vs_list),
        cmocka_unit_test(test_equal_action_order_and_case),
        cmocka_unit_test(test_equal_whitespace_and_key_order),
        cmocka_unit_test(test_equal_statement_order),
        cmocka_unit_test(test_sid_is_significant),
        cmocka_unit_test(test_real_changes_detected),
        cmocka_unit_test(test_condition_values),
        cmocka_unit_test(test_principals),
        cmocka_unit_test(test_normalize_shape),
        cmocka_unit_test(test_seed_documents),
        cmocka_unit_test(test_not_a_policy),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_validate_kinds),
        cmocka_unit_test(test_size_nonspace),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
