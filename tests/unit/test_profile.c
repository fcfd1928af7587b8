/* Unit tests for agent/profile.c: the built-in profiles rendered for a sample cluster in both
 * AWS modes, templates and their filters, overrides, and the message of every error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_util.h"
#include "policy.h"
#include "profile.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX CG_FIXTURES "/profiles"

static const struct profile_vars vars = {
    .cluster_name = "prod",
    .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
    .cluster_region = "eu-west-1",
    .cloud_account = "123456789012",
};

#define PRINCIPAL "arn:aws:iam::210987654321:user/cast-crossrole-f8f82b9c"

/* Seed 003's CastEKSPolicy as `aws iam get-policy-version` printed it, with the seed's account
 * replaced by the sample cluster's. */
static const char *const seed_003 =
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"PassRoleEC2\",\"Action\":"
    "\"iam:PassRole\",\"Effect\":\"Allow\",\"Resource\":\"arn:aws:iam::*:role/*\",\"Condition\":"
    "{\"StringEquals\":{\"iam:PassedToService\":\"ec2.amazonaws.com\"}}},{\"Sid\":"
    "\"NonResourcePermissions\",\"Effect\":\"Allow\",\"Action\":[\"iam:DeleteInstanceProfile\","
    "\"iam:RemoveRoleFromInstanceProfile\",\"iam:DeleteRole\",\"iam:DetachRolePolicy\","
    "\"iam:CreateServiceLinkedRole\",\"iam:DeleteServiceLinkedRole\",\"ec2:CreateSecurityGroup\","
    "\"ec2:CreateKeyPair\",\"ec2:DeleteKeyPair\",\"ec2:CreateTags\",\"ec2:ImportKeyPair\"],"
    "\"Resource\":\"*\"},{\"Sid\":\"RunInstancesPermissions\",\"Effect\":\"Allow\",\"Action\":"
    "\"ec2:RunInstances\",\"Resource\":[\"arn:aws:ec2:*:123456789012:network-interface/*\","
    "\"arn:aws:ec2:*:123456789012:security-group/*\",\"arn:aws:ec2:*:123456789012:volume/*\","
    "\"arn:aws:ec2:*:123456789012:key-pair/*\",\"arn:aws:ec2:*::image/*\"]}]}";

static void policy_equals(const char *have, const char *want)
{
    struct cg_err err = {0};
    int eq = 0;
    assert_int_equal(policy_equal_text(have, want, &eq, &err), 0);
    if (!eq) {
        print_message("have: %s\nwant: %s\n", have, want);
    }
    assert_true(eq);
}

static struct profile *builtin(const char *name, const struct profile_vars *v,
                               const struct profile_overrides *ov)
{
    struct profile *p = NULL;
    struct cg_err err = {0};
    int rc = profile_load(&p, name, CG_PROFILES_DIR, v, ov, &err);
    if (rc != 0) {
        print_message("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(p);
    return p;
}

static void test_node_autoscaler_user(void **state)
{
    (void)state;
    struct profile *p = builtin("node-autoscaler", &vars, NULL);
    const struct profile_aws *a = &p->aws;
    assert_string_equal(p->name, "node-autoscaler");
    assert_string_equal(p->description,
                        "Node autoscaling on EKS, creating and removing the cluster's nodes");
    assert_string_equal(p->source, CG_PROFILES_DIR "/node-autoscaler.yaml");
    assert_true(a->present);
    assert_int_equal(a->mode, PROFILE_AWS_USER);
    assert_string_equal(a->name, "cast-eks-prod");
    assert_string_equal(a->path, "/");
    assert_int_equal(a->managed_count, 2);
    assert_string_equal(a->managed_policy_arns[0],
                        "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess");
    assert_string_equal(a->managed_policy_arns[1], "arn:aws:iam::aws:policy/IAMReadOnlyAccess");

    assert_int_equal(a->customer_count, 1);
    assert_string_equal(a->customer_policies[0].name, "CastEKSPolicy");
    assert_non_null(a->customer_policies[0].description);
    const char *doc = a->customer_policies[0].document;
    policy_equals(doc, seed_003);
    /* the account comes from the template, the seed's own never appears */
    assert_non_null(strstr(doc, "\"arn:aws:ec2:*:123456789012:network-interface/*\""));
    assert_non_null(strstr(doc, "\"arn:aws:ec2:*:123456789012:key-pair/*\""));
    assert_null(strstr(doc, "028075177508"));
    assert_null(strstr(doc, "{{"));
    /* compact and in the file's order: this is what IAM receives */
    const char *start = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"PassRoleEC2\",";
    assert_int_equal(strncmp(doc, start, strlen(start)), 0);

    assert_int_equal(a->inline_count, 1);
    assert_string_equal(a->inline_policies[0].name, "CastEKSRestrictedAccess");
    assert_null(a->inline_policies[0].description);
    policy_equals(a->inline_policies[0].document,
                  "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":"
                  "\"PauseResumeClusterInstances\",\"Effect\":\"Allow\",\"Action\":["
                  "\"ec2:StartInstances\",\"ec2:StopInstances\"],\"Resource\":"
                  "\"arn:aws:ec2:*:123456789012:instance/*\",\"Condition\":{\"StringEquals\":{"
                  "\"aws:ResourceTag/kubernetes.io/cluster/prod\":\"owned\"}}}]}");
    assert_true(policy_size_nonspace(a->inline_policies[0].document) <= 2048);

    assert_int_equal(a->access_key, 1);
    assert_null(a->trust_policy);
    assert_null(a->trust_principal);
    assert_null(a->external_id);
    assert_int_equal(a->tag_count, 0);
    profile_free(p);
}

static void test_node_autoscaler_role(void **state)
{
    (void)state;
    struct profile_overrides ov = {.aws_mode = "role", .aws_trust_principal = PRINCIPAL};
    struct profile *p = builtin("node-autoscaler", &vars, &ov);
    const struct profile_aws *a = &p->aws;
    assert_int_equal(a->mode, PROFILE_AWS_ROLE);
    assert_string_equal(a->name, "cast-eks-prod");
    assert_int_equal(a->access_key, 0);
    assert_int_equal(a->max_session_duration, 3600);
    assert_string_equal(a->trust_principal, PRINCIPAL);
    /* the external ID defaults to the cluster id */
    assert_string_equal(a->external_id, vars.cluster_id);
    assert_string_equal(a->trust_policy,
                        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                        "\"Principal\":{\"AWS\":\"" PRINCIPAL "\"},\"Action\":\"sts:AssumeRole\","
                        "\"Condition\":{\"StringEquals\":{\"sts:ExternalId\":"
                        "\"9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10\"}}}]}");
    /* the same permissions as the user */
    assert_int_equal(a->managed_count, 2);
    assert_int_equal(a->customer_count, 1);
    policy_equals(a->customer_policies[0].document, seed_003);
    assert_int_equal(a->inline_count, 1);
    profile_free(p);

    /* an explicit external ID wins */
    ov.aws_external_id = "platform-chosen-id";
    p = builtin("node-autoscaler", &vars, &ov);
    assert_string_equal(p->aws.external_id, "platform-chosen-id");
    assert_non_null(strstr(p->aws.trust_policy, "\"sts:ExternalId\":\"platform-chosen-id\""));
    profile_free(p);

    /* and --aws-mode user takes a profile back to user mode */
    struct profile_overrides user = {.aws_mode = "user"};
    p = builtin("node-autoscaler", &vars, &user);
    assert_int_equal(p->aws.mode, PROFILE_AWS_USER);
    assert_null(p->aws.trust_policy);
    profile_free(p);
}

static void test_platform_access(void **state)
{
    (void)state;
    struct profile *p = builtin("platform-access", &vars, NULL);
    const struct profile_aws *a = &p->aws;
    assert_int_equal(a->mode, PROFILE_AWS_USER);
    assert_string_equal(a->name, "platform-access-prod");
    assert_int_equal(a->managed_count, 0);
    assert_int_equal(a->inline_count, 0);
    assert_int_equal(a->customer_count, 1);
    assert_string_equal(a->customer_policies[0].name, "PlatformAccess-prod");
    assert_int_equal(a->access_key, 1);

    /* exactly the seed's document */
    char *seed = NULL;
    struct cg_err err = {0};
    assert_int_equal(
        cg_file_read(CG_PROFILES_DIR "/platform-access-policy.json", 1 << 20, &seed, NULL, &err),
        0);
    policy_equals(a->customer_policies[0].document, seed);
    free(seed);
    json_t *doc = json_loads(a->customer_policies[0].document, 0, NULL);
    json_t *st = json_object_get(doc, "Statement");
    assert_int_equal(json_array_size(st), 4);
    json_t *cond = json_object_get(json_array_get(st, 3), "Condition");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cond, "StringEqualsIfExists"),
                                          "ec2:ResourceTag/CreatedBy")),
        "user");
    json_decref(doc);
    profile_free(p);

    struct profile_overrides ov = {.aws_mode = "role", .aws_trust_principal = PRINCIPAL};
    p = builtin("platform-access", &vars, &ov);
    assert_int_equal(p->aws.mode, PROFILE_AWS_ROLE);
    assert_string_equal(p->aws.name, "platform-access-prod");
    assert_non_null(p->aws.trust_policy);
    profile_free(p);
}

static void test_profile_by_path(void **state)
{
    (void)state;
    struct profile *p = builtin(FIX "/good.yaml", &vars, NULL);
    const struct profile_aws *a = &p->aws;
    assert_string_equal(p->description, "test profile for prod");
    assert_string_equal(a->path, "/cloudgrant/");
    assert_string_equal(a->name, "good-prod");
    assert_int_equal(a->access_key, 0);
    assert_string_equal(a->managed_policy_arns[0],
                        "arn:aws:iam::123456789012:policy/team/Existing");
    assert_string_equal(a->customer_policies[0].name, "Good-prod");
    assert_string_equal(a->customer_policies[0].document,
                        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Describe\","
                        "\"Effect\":\"Allow\",\"Action\":\"ec2:DescribeInstances\",\"Resource\":"
                        "\"*\"}]}");
    /* a YAML mapping document: every scalar a string, templates rendered */
    assert_string_equal(a->inline_policies[0].document,
                        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                        "\"Action\":[\"s3:GetObject\"],\"Resource\":"
                        "\"arn:aws:s3:::prod-eu-west-1/*\",\"Condition\":{\"Bool\":{"
                        "\"aws:SecureTransport\":\"true\"}}}]}");
    assert_int_equal(a->tag_count, 2);
    assert_string_equal(a->tags[0].key, "team");
    assert_string_equal(a->tags[0].value, "platform");
    assert_string_equal(a->tags[1].key, "cluster");
    assert_string_equal(a->tags[1].value, "prod");
    profile_free(p);

    /* a name with a '/' or a .yaml suffix is a path: relative to the working directory */
    struct cg_err err = {0};
    assert_int_equal(profile_load(&p, "no-such.yaml", CG_PROFILES_DIR, &vars, NULL, &err),
                     CG_EINVAL);
    assert_null(p);
    assert_string_equal(err.msg, "cannot open 'no-such.yaml': No such file or directory");
}

static void test_render_filters(void **state)
{
    (void)state;
    struct cg_err err = {0};
    char *out = NULL;
    /* GCP's castai-gke-<hash>: the first 8 hex of sha1(cluster name); printf prod | sha1sum */
    assert_int_equal(
        profile_render("castai-gke-{{cluster.name | sha1 | trunc 8}}", &vars, &out, &err), 0);
    assert_string_equal(out, "castai-gke-f6c433ac");
    free(out);
    assert_int_equal(profile_render("{{cluster.name|sha1}}", &vars, &out, &err), 0);
    assert_string_equal(out, "f6c433acac2a27cc06a0625896fe3e540a275ac9");
    free(out);
    struct profile_vars upper = {.cluster_name = "Prod-EU"};
    assert_int_equal(
        profile_render("x-{{ cluster.name | lower }}-{{cluster.name|trunc 3}}", &upper, &out, &err),
        0);
    assert_string_equal(out, "x-prod-eu-Pro");
    free(out);
    /* trunc counts characters: a UTF-8 sequence is never split */
    struct profile_vars utf = {.cluster_name = "\xc3\xa9t\xc3\xa9"};
    assert_int_equal(profile_render("{{cluster.name | trunc 2}}", &utf, &out, &err), 0);
    assert_string_equal(out, "\xc3\xa9t");
    free(out);
    assert_int_equal(profile_render("{{cluster.name | trunc 99}}", &vars, &out, &err), 0);
    assert_string_equal(out, "prod");
    free(out);
    assert_int_equal(
        profile_render("{{cluster.region}}/{{cloud.account}}/{{cluster.id}}", &vars, &out, &err),
        0);
    assert_string_equal(out, "eu-west-1/123456789012/9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10");
    free(out);
    assert_int_equal(profile_render("no template, ${aws:username}", NULL, &out, &err), 0);
    assert_string_equal(out, "no template, ${aws:username}");
    free(out);
    assert_int_equal(profile_render("", NULL, &out, &err), 0);
    assert_string_equal(out, "");
    free(out);
}

static void render_fails(const char *tmpl, const struct profile_vars *v, const char *msg)
{
    struct cg_err err = {0};
    char *out = (char *)1;
    assert_int_equal(profile_render(tmpl, v, &out, &err), CG_EINVAL);
    assert_null(out);
    assert_string_equal(err.msg, msg);
}

static void test_render_errors(void **state)
{
    (void)state;
    render_fails("a-{{cluster.nme}}", &vars,
                 "template 'a-{{cluster.nme}}': unknown variable 'cluster.nme' (variables: "
                 "cluster.name, cluster.id, cluster.region, cloud.account)");
    render_fails("{{cluster.name | upper}}", &vars,
                 "template '{{cluster.name | upper}}': unknown filter 'upper' (filters: sha1, "
                 "lower, trunc N)");
    render_fails("{{cluster.name | trunc}}", &vars,
                 "template '{{cluster.name | trunc}}': filter 'trunc' needs a length from 1 to "
                 "4096, as in 'trunc 8'");
    render_fails("{{cluster.name | trunc 0}}", &vars,
                 "template '{{cluster.name | trunc 0}}': filter 'trunc' needs a length from 1 to "
                 "4096, as in 'trunc 8'");
    render_fails("{{cluster.name | sha1 8}}", &vars,
                 "template '{{cluster.name | sha1 8}}': filter 'sha1' takes no argument");
    render_fails("{{cluster.name |}}", &vars,
                 "template '{{cluster.name |}}': empty filter after '|'");
    render_fails("cast-{{cluster.name", &vars,
                 "template 'cast-{{cluster.name': '{{' is not closed with '}}'");
    render_fails("cast-cluster.name}}", &vars,
                 "template 'cast-cluster.name}}': '}}' without a '{{' before it");
    render_fails("{{ {{cluster.name}} }}", &vars,
                 "template '{{ {{cluster.name}} }}': '{{' inside '{{ }}'");
    render_fails("{{}}", &vars, "template '{{}}': '{{ }}' names no variable");
    /* syntax is checked before the value is needed */
    render_fails("{{cluster.name | nope}}", NULL,
                 "template '{{cluster.name | nope}}': unknown filter 'nope' (filters: sha1, "
                 "lower, trunc N)");
    render_fails("x-{{cluster.name}}", NULL,
                 "template 'x-{{cluster.name}}': needs {{cluster.name}}, which this cluster does "
                 "not reveal: pass --cluster-name");
    struct profile_vars empty = {.cluster_name = ""};
    render_fails("{{cluster.name}}", &empty,
                 "template '{{cluster.name}}': needs {{cluster.name}}, which this cluster does "
                 "not reveal: pass --cluster-name");
}

/* A profile from a buffer named "t.yaml", policy files beside the fixtures. */
static int load(const char *yaml, const struct profile_vars *v, const struct profile_overrides *ov,
                struct cg_err *err)
{
    struct profile *p = (struct profile *)1;
    int rc = profile_load_buffer(&p, yaml, strlen(yaml), "t.yaml", FIX, v, ov, err);
    if (rc == 0) {
        assert_non_null(p);
        profile_free(p);
    } else {
        assert_null(p);
    }
    return rc;
}

static void load_fails(const char *yaml, const struct profile_vars *v,
                       const struct profile_overrides *ov, const char *msg)
{
    struct cg_err err = {0};
    int rc = load(yaml, v, ov, &err);
    if (rc == 0 || strcmp(err.msg, msg) != 0) {
        print_message("rc %d\nhave: %s\nwant: %s\n", rc, err.msg, msg);
    }
    assert_int_equal(rc, CG_EINVAL);
    assert_int_equal(err.code, CG_EINVAL);
    assert_string_equal(err.msg, msg);
}

#define HEAD "apiVersion: cloudgrant.io/v1alpha1\nkind: GrantProfile\nname: test\n"
#define USER HEAD "aws:\n  user:\n    name: \"u-{{cluster.name}}\"\n"

static void test_structure_errors(void **state)
{
    (void)state;
    assert_int_equal(load(USER, &vars, NULL, NULL), 0);
    /* unknown keys, with their position */
    load_fails(USER "    nmae: x\n", &vars, NULL, "t.yaml:7:5: aws.user: unknown key 'nmae'");
    load_fails(HEAD "aws:\n  managedPolicy: []\n", &vars, NULL,
               "t.yaml:5:3: aws: unknown key 'managedPolicy'");
    load_fails(HEAD "spec: {}\n", &vars, NULL, "t.yaml:4:1: unknown key 'spec'");
    load_fails(USER "  role:\n    trust:\n      principle: x\n", &vars, NULL,
               "t.yaml:9:7: aws.role.trust: unknown key 'principle'");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      description: b\n      document: {}\n",
               &vars, NULL, "t.yaml:9:7: aws.inlinePolicies[0]: unknown key 'description'");
    load_fails(USER "  user: {}\n", &vars, NULL, "t.yaml:7:3: aws: key 'user' is repeated");
    /* an empty key (found by fuzz_profile) */
    load_fails(HEAD "aws:\n  ? \n  user: {name: x}\n", &vars, NULL,
               "t.yaml:5:4: aws: a key is empty");
    load_fails(HEAD "? \n", &vars, NULL, "t.yaml:4:2: a key is empty");
    /* types */
    load_fails(USER "  managedPolicies: arn:aws:iam::aws:policy/X\n", &vars, NULL,
               "t.yaml:7:20: aws: 'managedPolicies' must be a sequence, not a string");
    load_fails(HEAD "aws:\n  user: [a]\n", &vars, NULL,
               "t.yaml:5:9: aws: 'user' must be a mapping, not a sequence");
    load_fails(USER "    accessKey: \"yes\"\n", &vars, NULL,
               "t.yaml:7:16: aws.user: 'accessKey' must be true or false");
    load_fails(HEAD "aws:\n  user:\n    name: [x]\n", &vars, NULL,
               "t.yaml:6:11: aws.user: 'name' must be a string, not a sequence");
    load_fails(USER "  managedPolicies:\n    - {a: b}\n", &vars, NULL,
               "t.yaml:8:7: aws.managedPolicies[0] must be a string, not a mapping");
    load_fails(USER "  customerPolicies:\n    - x\n", &vars, NULL,
               "t.yaml:8:7: aws.customerPolicies[0] must be a mapping with 'name' and "
               "'document', not a string");
    load_fails(USER "  role:\n    maxSessionDuration: 60\n", &vars, NULL,
               "t.yaml:8:25: aws.role.maxSessionDuration must be a number of seconds from 3600 "
               "to 43200");
    /* the header */
    load_fails("kind: GrantProfile\nname: x\naws: {}\n", &vars, NULL,
               "t.yaml:1:1: 'apiVersion' is missing: a profile starts with 'apiVersion: "
               "cloudgrant.io/v1alpha1'");
    load_fails("apiVersion: cloudgrant.io/v1\nkind: GrantProfile\nname: x\n", &vars, NULL,
               "t.yaml:1:13: 'apiVersion' must be 'cloudgrant.io/v1alpha1', not "
               "'cloudgrant.io/v1'");
    load_fails("apiVersion: cloudgrant.io/v1alpha1\nkind: Profile\nname: x\n", &vars, NULL,
               "t.yaml:2:7: 'kind' must be 'GrantProfile', not 'Profile'");
    load_fails("apiVersion: cloudgrant.io/v1alpha1\nkind: GrantProfile\naws: {}\n", &vars, NULL,
               "t.yaml:1:1: 'name' is missing");
    load_fails("apiVersion: cloudgrant.io/v1alpha1\nkind: GrantProfile\nname: My_Profile\n", &vars,
               NULL,
               "t.yaml:3:7: name 'My_Profile' must be a lower-case DNS label: letters, digits and "
               "'-', at most 63");
    load_fails(HEAD, &vars, NULL,
               "t.yaml:1:1: the profile has no provider section ('aws', 'gcp', 'azure' or "
               "'outscale'): nothing to grant");
    load_fails("", &vars, NULL, "t.yaml: the profile is empty");
    load_fails("- a\n", &vars, NULL, "t.yaml:1:1: a profile must be a mapping, not a sequence");
    load_fails("a: [\n", &vars, NULL,
               "t.yaml:2:1: did not find expected node content (while parsing a flow node that "
               "started at 2:1)");
    load_fails(HEAD "aws:\n  mode: both\n  user: {name: x}\n", &vars, NULL,
               "t.yaml:5:9: aws.mode must be 'user' or 'role', not 'both'");
    load_fails(HEAD "aws:\n  role:\n    name: x\n", &vars, NULL,
               "t.yaml:5:3: user mode needs an 'aws.user' section with the user's name");
    load_fails(HEAD "aws:\n  user:\n    accessKey: true\n", &vars, NULL,
               "t.yaml:6:5: aws.user.name is missing");
    /* the section the mode does not use is checked too, but not rendered */
    load_fails(USER "  role:\n    name: \"r-{{cluster.nam}}\"\n", &vars, NULL,
               "t.yaml:8:11: aws.role.name: template 'r-{{cluster.nam}}': unknown variable "
               "'cluster.nam' (variables: cluster.name, cluster.id, cluster.region, "
               "cloud.account)");
    struct profile_vars no_id = vars;
    no_id.cluster_id = NULL;
    assert_int_equal(load(USER "  role:\n    name: r\n    trust:\n      externalId: "
                               "\"{{cluster.id}}\"\n",
                          &no_id, NULL, NULL),
                     0);
}

static void test_file_errors(void **state)
{
    (void)state;
    struct profile *p = NULL;
    struct cg_err err = {0};
    assert_int_equal(profile_load(&p, FIX "/unknown-key.yaml", NULL, &vars, NULL, &err), CG_EINVAL);
    assert_string_equal(err.msg, FIX "/unknown-key.yaml:7:5: aws.user: unknown key 'acessKey'");

    assert_int_equal(profile_load(&p, FIX "/missing-file.yaml", NULL, &vars, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, FIX "/missing-file.yaml:9:17: aws.customerPolicies[0].document: "
                                     "cannot open '" FIX "/nope.json': No such file or directory");
    assert_null(p);

    /* unknown built-in: the message lists them */
    assert_int_equal(profile_load(&p, "node-scaler", CG_PROFILES_DIR, &vars, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "unknown profile 'node-scaler': the built-in profiles are "
                                 "node-autoscaler, platform-access (or give the path of a profile "
                                 "file)");
    assert_int_equal(profile_load(&p, "x", "/nonexistent", &vars, NULL, &err), CG_EINVAL);
    assert_string_equal(err.msg,
                        "unknown profile 'x': no built-in profiles in '/nonexistent' (give "
                        "the path of a profile file)");
    assert_int_equal(profile_load(&p, "", CG_PROFILES_DIR, &vars, NULL, &err), CG_EINVAL);
    assert_int_equal(profile_load(&p, FIX, CG_PROFILES_DIR, &vars, NULL, &err), CG_EINVAL);
    assert_string_equal(err.msg, "cannot load profile '" FIX "': not a regular file");

    /* a buffer without a directory cannot name files */
    const char *named = USER "  inlinePolicies:\n    - name: a\n      document: good-policy.json\n";
    assert_int_equal(profile_load_buffer(&p, named, strlen(named), "cm", NULL, &vars, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "cm:9:17: aws.inlinePolicies[0].document names the file "
                                 "'good-policy.json', but this profile was not loaded from a "
                                 "file: write the document inline");
    /* a directory is not a policy file */
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document: .\n", &vars, NULL,
               "t.yaml:9:17: aws.inlinePolicies[0].document: '" FIX "/.' is not a regular file");
}

static void test_template_errors(void **state)
{
    (void)state;
    /* a value the cluster does not reveal: what needs it and which flag gives it */
    struct profile_vars no_name = vars;
    no_name.cluster_name = NULL;
    struct profile *p = NULL;
    struct cg_err err = {0};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &no_name, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "profile 'node-autoscaler': aws.user.name needs {{cluster.name}}, "
                                 "which this cluster does not reveal: pass --cluster-name");
    load_fails(USER, &no_name, NULL,
               "profile 'test': aws.user.name needs {{cluster.name}}, which this cluster does not "
               "reveal: pass --cluster-name");
    struct profile_vars no_account = vars;
    no_account.cloud_account = NULL;
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &no_account, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg,
                        "profile 'node-autoscaler': aws.customerPolicies[0].document "
                        "(cast-eks-policy.json) needs "
                        "{{cloud.account}}, which this cluster does not reveal: it comes from the "
                        "cloud credentials or the metadata service: give the agent credentials "
                        "that can call sts:GetCallerIdentity");
    struct profile_vars no_id = vars;
    no_id.cluster_id = NULL;
    struct profile_overrides role = {.aws_mode = "role", .aws_trust_principal = PRINCIPAL};
    assert_int_equal(profile_load(&p, "platform-access", CG_PROFILES_DIR, &no_id, &role, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "profile 'platform-access': aws.role.trust.externalId needs "
                                 "{{cluster.id}}, which this cluster does not reveal: it is the "
                                 "UID of namespace kube-system: let the agent read that "
                                 "namespace");
    /* ... unless the flag gives the external ID */
    role.aws_external_id = "given-by-flag";
    assert_int_equal(profile_load(&p, "platform-access", CG_PROFILES_DIR, &no_id, &role, &err), 0);
    profile_free(p);

    /* bad templates are the profile's fault: position, field, template */
    load_fails(HEAD "aws:\n  user:\n    name: \"u-{{cluster.nam}}\"\n", &vars, NULL,
               "t.yaml:6:11: aws.user.name: template 'u-{{cluster.nam}}': unknown variable "
               "'cluster.nam' (variables: cluster.name, cluster.id, cluster.region, "
               "cloud.account)");
    load_fails(HEAD "aws:\n  user:\n    name: \"u-{{cluster.name | md5}}\"\n", &vars, NULL,
               "t.yaml:6:11: aws.user.name: template 'u-{{cluster.name | md5}}': unknown filter "
               "'md5' (filters: sha1, lower, trunc N)");
    load_fails(HEAD "aws:\n  user:\n    name: \"u-{{cluster.name\"\n", &vars, NULL,
               "t.yaml:6:11: aws.user.name: template 'u-{{cluster.name': '{{' is not closed with "
               "'}}'");
    /* in documents, every string is rendered, keys too */
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document: '{\"Version\":"
                    "\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:x\","
                    "\"Resource\":\"arn:aws:s3:::{{cluster}}\"}}'\n",
               &vars, NULL,
               "t.yaml:9:17: aws.inlinePolicies[0].document: template "
               "'arn:aws:s3:::{{cluster}}': unknown variable 'cluster' (variables: cluster.name, "
               "cluster.id, cluster.region, cloud.account)");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document: '{\"Version\":"
                    "\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:x\","
                    "\"Resource\":\"*\",\"Condition\":{\"StringEquals\":{\"k/{{cluster.name}}\":"
                    "\"a\",\"k/prod\":\"b\"}}}}'\n",
               &vars, NULL,
               "t.yaml:9:17: aws.inlinePolicies[0].document: two keys render to 'k/prod'");
}

static void test_name_errors(void **state)
{
    (void)state;
    struct profile_vars slash = vars;
    slash.cluster_name = "team/prod";
    load_fails(USER, &slash, NULL,
               "t.yaml:6:11: aws.user.name 'u-team/prod' (rendered from 'u-{{cluster.name}}') is "
               "not a valid IAM user name: only letters, digits and +=,.@_- are allowed");
    struct profile_vars long_name = vars;
    long_name.cluster_name = "a-very-long-cluster-name-that-eks-allows-but-iam-user-names-do-not";
    struct profile *p = NULL;
    struct cg_err err = {0};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &long_name, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, CG_PROFILES_DIR
                        "/node-autoscaler.yaml:22:11: aws.user.name "
                        "'cast-eks-a-very-long-cluster-name-that-eks-allows-but-iam-user-names-do-"
                        "not' (rendered from 'cast-eks-{{cluster.name}}') is 75 characters, IAM "
                        "allows 64 for a user name: keep the cluster's part short with a filter, "
                        "as in '{{cluster.name | sha1 | trunc 8}}'");
    /* the filter the message suggests fixes it */
    load_fails(HEAD "aws:\n  user:\n    name: \"cast-eks-{{cluster.name | sha1 | trunc 8}}\"\n"
                    "  customerPolicies:\n    - name: \"P {{cluster.name}}\"\n"
                    "      document: good-policy.json\n",
               &long_name, NULL,
               "t.yaml:8:13: aws.customerPolicies[0].name 'P a-very-long-cluster-name-that-eks-"
               "allows-but-iam-user-names-do-not' (rendered from 'P {{cluster.name}}') is not a "
               "valid IAM policy "
               "name: only letters, digits and +=,.@_- are allowed");
    load_fails(USER "  customerPolicies:\n    - name: A\n      document: good-policy.json\n"
                    "    - name: a\n      document: good-policy.json\n",
               &vars, NULL,
               "t.yaml:10:13: aws.customerPolicies[1].name 'a' is used twice (IAM names are "
               "case-insensitive)");
    load_fails(USER "  path: /a\n", &vars, NULL,
               "t.yaml:7:9: aws.path '/a' is not an IAM path: '/' or '/a/b/', at most 512 "
               "printable ASCII characters");
    /* ARNs */
    load_fails(USER "  managedPolicies:\n    - arn:aws:iam::aws:policy/\n", &vars, NULL,
               "t.yaml:8:7: aws.managedPolicies[0] 'arn:aws:iam::aws:policy/' is not a managed "
               "policy ARN (arn:aws:iam::aws:policy/NAME or "
               "arn:aws:iam::123456789012:policy/NAME)");
    load_fails(USER "  managedPolicies:\n    - AmazonEC2ReadOnlyAccess\n", &vars, NULL,
               "t.yaml:8:7: aws.managedPolicies[0] 'AmazonEC2ReadOnlyAccess' is not a managed "
               "policy ARN (arn:aws:iam::aws:policy/NAME or "
               "arn:aws:iam::123456789012:policy/NAME)");
    load_fails(USER "  managedPolicies:\n    - arn:aws:iam::12345:policy/X\n", &vars, NULL,
               "t.yaml:8:7: aws.managedPolicies[0] 'arn:aws:iam::12345:policy/X' is not a "
               "managed policy ARN (arn:aws:iam::aws:policy/NAME or "
               "arn:aws:iam::123456789012:policy/NAME)");
    load_fails(USER "  managedPolicies:\n    - arn:aws:iam::aws:policy/A\n"
                    "    - arn:aws:iam::aws:policy/A\n",
               &vars, NULL,
               "t.yaml:9:7: aws.managedPolicies[1] 'arn:aws:iam::aws:policy/A' is listed twice");
    assert_int_equal(load(USER "  managedPolicies:\n    - arn:aws-cn:iam::aws:policy/service-role/"
                               "AmazonEKSClusterPolicy\n    - arn:aws-us-gov:iam::123456789012:"
                               "policy/X\n",
                          &vars, NULL, NULL),
                     0);
    /* tags */
    load_fails(USER "  tags:\n    aws:owner: x\n", &vars, NULL,
               "t.yaml:8:5: aws.tags key 'aws:owner': the prefix 'aws:' is reserved");
    load_fails(USER "  tags:\n    owner: \"a;b\"\n", &vars, NULL,
               "t.yaml:8:12: aws.tags.owner: 'a;b' is not a valid tag value: up to 256 letters, "
               "digits, spaces and _.:/=+-@");
}

static void test_role_errors(void **state)
{
    (void)state;
    struct profile *p = NULL;
    struct cg_err err = {0};
    struct profile_overrides role = {.aws_mode = "role"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &role, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "profile 'node-autoscaler': role mode needs the platform's "
                                 "principal: set aws.role.trust.principal or pass "
                                 "--aws-trust-principal");
    role.aws_trust_principal = "arn:aws:iam::123:user/x";
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &role, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "--aws-trust-principal 'arn:aws:iam::123:user/x' is not an IAM "
                                 "principal ARN (arn:aws:iam::123456789012:user/NAME, :role/NAME "
                                 "or :root)");
    role.aws_trust_principal = "arn:aws:iam::123456789012:root";
    role.aws_external_id = "a b";
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &role, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "--aws-external-id 'a b' is not a valid external ID: 2 to 1224 "
                                 "letters, digits and +=,.@:/_-");
    struct profile_overrides bad_mode = {.aws_mode = "group"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &bad_mode, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "--aws-mode must be 'user' or 'role', not 'group'");

    /* principal from the profile, validated after rendering */
    const char *prof = HEAD "aws:\n  mode: role\n  role:\n    name: r\n    trust:\n"
                            "      principal: \"arn:aws:iam::{{cloud.account}}:role/platform\"\n";
    assert_int_equal(profile_load_buffer(&p, prof, strlen(prof), "t.yaml", NULL, &vars, NULL, &err),
                     0);
    assert_string_equal(p->aws.trust_principal, "arn:aws:iam::123456789012:role/platform");
    assert_string_equal(p->aws.external_id, vars.cluster_id);
    profile_free(p);
    load_fails(HEAD "aws:\n  mode: role\n  role:\n    name: r\n    trust:\n"
                    "      principal: \"*\"\n",
               &vars, NULL,
               "t.yaml:9:18: aws.role.trust.principal '*' is not an IAM principal ARN "
               "(arn:aws:iam::123456789012:user/NAME, :role/NAME or :root)");
    load_fails(HEAD "aws:\n  mode: role\n  role:\n    name: r\n    trust:\n"
                    "      principal: \"arn:aws:iam::123456789012:root\"\n      externalId: x\n",
               &vars, NULL,
               "t.yaml:10:19: aws.role.trust.externalId 'x' is not a valid external ID: 2 to 1224 "
               "letters, digits and +=,.@:/_-");
    load_fails(HEAD "aws:\n  mode: role\n  user:\n    name: u\n", &vars, NULL,
               "t.yaml:5:3: role mode needs an 'aws.role' section with the role's name");
}

static void test_document_errors(void **state)
{
    (void)state;
    /* not a policy */
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document: '{\"Statement\":[]}'\n",
               &vars, NULL,
               "t.yaml:9:17: aws.inlinePolicies[0].document: not a policy document: 'Statement' "
               "must not be an empty list");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document: '{\"Version\":1'\n", &vars,
               NULL,
               "t.yaml:9:17: aws.inlinePolicies[0].document: invalid JSON at line 1 column 12: "
               "'}' expected near end of file");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document: [a]\n", &vars, NULL,
               "t.yaml:9:17: aws.inlinePolicies[0].document must be a file name, JSON text or a "
               "mapping, not a sequence");
    load_fails(USER "  inlinePolicies:\n    - name: a\n", &vars, NULL,
               "t.yaml:8:7: aws.inlinePolicies[0].document is missing");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document:\n        Statement:\n"
                    "          Effect: Allow\n          Action: s3:x\n          Resource: '*'\n",
               &vars, NULL,
               "t.yaml:10:9: aws.inlinePolicies[0].document: not a valid policy: 'Version' is "
               "missing: add \"Version\": \"2012-10-17\"");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document:\n        Version: "
                    "2012-10-17\n        Statement:\n          Effect: Allow\n          Actions: "
                    "s3:x\n          Resource: '*'\n",
               &vars, NULL,
               "t.yaml:10:9: aws.inlinePolicies[0].document: not a policy document: Statement[0]: "
               "unknown element 'Actions'");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document:\n        Version: "
                    "2012-10-17\n        Statement:\n          Effect: Allow\n          Action: "
                    "sts:AssumeRole\n          Principal: {AWS: x}\n",
               &vars, NULL,
               "t.yaml:10:9: aws.inlinePolicies[0].document: not a valid policy: Statement[0]: an "
               "identity policy must not name a 'Principal' (the policy applies to the user or "
               "role it is attached to)");
    load_fails(USER "  customerPolicies:\n    - name: a\n      document: oversize-inline.yaml\n",
               &vars, NULL,
               "t.yaml:9:17: aws.customerPolicies[0].document (oversize-inline.yaml): invalid "
               "JSON at line 1 column 10: '[' or '{' expected near 'apiVersion'");
    /* a template error inside a file names the file */
    load_fails(USER "  customerPolicies:\n    - name: a\n      document: "
                    "bad-template-policy.json\n",
               &vars, NULL,
               "t.yaml:9:17: aws.customerPolicies[0].document (bad-template-policy.json): "
               "template 'arn:aws:ec2:*:{{cloud.acount}}:volume/*': unknown variable "
               "'cloud.acount' (variables: cluster.name, cluster.id, cluster.region, "
               "cloud.account)");
    load_fails(USER "  inlinePolicies:\n    - name: a\n      document:\n        Version: "
                    "2012-10-17\n        Statement:\n          Effect: Allow\n          Action: "
                    "s3:x\n          Resource: \"arn:aws:s3:::\\u0100\"\n",
               &vars, NULL,
               "t.yaml:10:9: aws.inlinePolicies[0].document: IAM accepts only characters up to "
               "U+00FF in a policy document");
}

static void test_size_quotas(void **state)
{
    (void)state;
    struct profile *p = NULL;
    struct cg_err err = {0};
    /* ~2400 characters: too much inline for a user, fine for a role */
    assert_int_equal(profile_load(&p, FIX "/oversize-inline.yaml", NULL, &vars, NULL, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, FIX "/oversize-inline.yaml:10:5: aws.inlinePolicies: the inline "
                                     "policies of a user total 2405 characters without "
                                     "whitespace, IAM allows 2048: move one to customerPolicies "
                                     "(a managed policy may have 6144)");
    struct profile_overrides role = {.aws_mode = "role", .aws_trust_principal = PRINCIPAL};
    assert_int_equal(profile_load(&p, FIX "/oversize-inline.yaml", NULL, &vars, &role, &err), 0);
    assert_int_equal(policy_size_nonspace(p->aws.inline_policies[0].document), 2405);
    profile_free(p);

    /* a managed policy over 6144 */
    size_t n = 400;
    size_t cap = 200 + n * 40;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    int len = snprintf(yaml, cap,
                       USER "  customerPolicies:\n    - name: big\n      document: '{\"Version\":"
                            "\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Resource\":"
                            "\"*\",\"Action\":[");
    for (size_t i = 0; i < n; i++) {
        len += snprintf(yaml + len, cap - (size_t)len, "%s\"ec2:Action%04zu\"", i ? "," : "", i);
    }
    snprintf(yaml + len, cap - (size_t)len, "]}}'\n");
    load_fails(yaml, &vars, NULL,
               "t.yaml:9:17: aws.customerPolicies[0] 'big' is 6881 characters without "
               "whitespace, IAM allows 6144 for a managed policy: split it into two customer "
               "policies");
    free(yaml);

    /* more attached policies than IAM allows */
    char many[4096];
    len = snprintf(many, sizeof(many), USER "  managedPolicies:\n");
    for (int i = 0; i < 21; i++) {
        len += snprintf(many + len, sizeof(many) - (size_t)len,
                        "    - arn:aws:iam::aws:policy/P%d\n", i);
    }
    load_fails(many, &vars, NULL,
               "t.yaml:5:3: the profile attaches 21 managed policies, IAM allows at most 20 to "
               "one user (10 unless the account's quota was raised)");
}

/* ------------------------------------------------------------------------------------------
 * GCP */

/* "castai-gke-" + the first 8 hex digits of SHA-1(name), computed here with OpenSSL rather
 * than with the profile's own filter. */
static void hashed_id(char *out, size_t cap, const char *prefix, const char *name)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(name, strlen(name), md, &len, EVP_sha1(), NULL), 1);
    assert_int_equal(len, 20);
    snprintf(out, cap, "%s%02x%02x%02x%02x", prefix, md[0], md[1], md[2], md[3]);
}

/* Seed 003's castai.gkeAccess, as `gcloud iam roles describe` printed it. */
static const char *const seed_003_permissions[] = {
    "compute.addresses.use",
    "compute.disks.create",
    "compute.disks.setLabels",
    "compute.disks.use",
    "compute.images.useReadOnly",
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
    "compute.instanceGroups.get",
    "compute.instanceTemplates.create",
    "compute.instanceTemplates.delete",
    "compute.instanceTemplates.get",
    "compute.instanceTemplates.list",
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setLabels",
    "compute.instances.setMetadata",
    "compute.instances.setServiceAccount",
    "compute.instances.setTags",
    "compute.instances.start",
    "compute.instances.stop",
    "compute.networks.use",
    "compute.networks.useExternalIp",
    "compute.subnetworks.get",
    "compute.subnetworks.use",
    "compute.subnetworks.useExternalIp",
    "compute.zones.get",
    "compute.zones.list",
    "container.certificateSigningRequests.approve",
    "container.clusters.get",
    "container.clusters.update",
    "container.operations.get",
    "serviceusage.services.list",
};

static void test_node_autoscaler_gcp(void **state)
{
    (void)state;
    char want[64];
    struct profile *p = builtin("node-autoscaler", &vars, NULL);
    const struct profile_gcp *g = &p->gcp;
    assert_true(p->aws.present); /* both sections, the AWS one as before */
    assert_string_equal(p->aws.name, "cast-eks-prod");
    assert_true(g->present);

    hashed_id(want, sizeof(want), "castai-gke-", "prod");
    assert_string_equal(want, "castai-gke-f6c433ac"); /* printf prod | sha1sum */
    assert_string_equal(g->service_account.id, want);
    assert_string_equal(g->service_account.display_name, "Node autoscaler (managed by cloudgrant)");
    assert_string_equal(g->service_account.description,
                        "Creates and removes the nodes of cluster prod (managed by cloudgrant)");

    static const char *const services[] = {"serviceusage.googleapis.com", "iam.googleapis.com",
                                           "cloudresourcemanager.googleapis.com",
                                           "container.googleapis.com", "compute.googleapis.com"};
    assert_int_equal(g->service_count, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(g->services[i], services[i]);
    }

    assert_int_equal(g->custom_role_count, 1);
    const struct profile_gcp_role *r = &g->custom_roles[0];
    assert_string_equal(r->id, "castai.gkeAccess");
    assert_string_equal(r->title, "Role to manage GKE cluster via CAST AI");
    assert_string_equal(r->description, "Role to manage GKE cluster via CAST AI");
    assert_string_equal(r->stage, "ALPHA");
    size_t n = sizeof(seed_003_permissions) / sizeof(seed_003_permissions[0]);
    assert_int_equal(n, 34);
    assert_int_equal(r->permission_count, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(r->permissions[i], seed_003_permissions[i]);
    }

    assert_int_equal(g->role_count, 2);
    assert_string_equal(g->roles[0], "roles/container.developer");
    assert_string_equal(g->roles[1], "roles/iam.serviceAccountUser");
    assert_int_equal(g->credential, PROFILE_GCP_KEY);
    assert_null(g->impersonator);
    assert_null(g->workload_identity_user);
    profile_free(p);

    /* the id for other cluster names: GKE's longest (40), upper case and '_' (elsewhere) */
    static const char *const names[] = {"a", "My_Cluster.eu",
                                        "a-forty-character-gke-cluster-name-abcde"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct profile_vars v = vars;
        v.cluster_name = names[i];
        p = builtin("node-autoscaler", &v, NULL);
        hashed_id(want, sizeof(want), "castai-gke-", names[i]);
        assert_string_equal(p->gcp.service_account.id, want);
        profile_free(p);
    }

    /* keyless: no key, the platform's member instead */
    struct profile_overrides keyless = {
        .gcp_credential = "keyless",
        .gcp_impersonator = "serviceAccount:castai@platform-1.iam.gserviceaccount.com"};
    p = builtin("node-autoscaler", &vars, &keyless);
    assert_int_equal(p->gcp.credential, PROFILE_GCP_KEYLESS);
    assert_string_equal(p->gcp.impersonator,
                        "serviceAccount:castai@platform-1.iam.gserviceaccount.com");
    assert_null(p->gcp.workload_identity_user);
    assert_int_equal(p->gcp.custom_roles[0].permission_count, 34);
    profile_free(p);
}

static void test_platform_access_gcp(void **state)
{
    (void)state;
    char want[64];
    struct profile *p = builtin("platform-access", &vars, NULL);
    const struct profile_gcp *g = &p->gcp;
    assert_true(p->aws.present);
    assert_true(g->present);
    hashed_id(want, sizeof(want), "platform-access-", "prod");
    assert_string_equal(g->service_account.id, want);
    assert_string_equal(g->service_account.id, "platform-access-f6c433ac");
    static const char *const services[] = {"serviceusage.googleapis.com", "iam.googleapis.com",
                                           "cloudresourcemanager.googleapis.com",
                                           "compute.googleapis.com"};
    assert_int_equal(g->service_count, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(g->services[i], services[i]);
    }
    assert_int_equal(g->custom_role_count, 0);
    assert_null(g->custom_roles);
    assert_int_equal(g->role_count, 1);
    assert_string_equal(g->roles[0], "roles/compute.admin");
    assert_int_equal(g->credential, PROFILE_GCP_KEY);
    assert_null(g->impersonator);
    profile_free(p);
}

#define GHEAD HEAD "gcp:\n  serviceAccount:\n    id: \"sa-{{cluster.name}}\"\n"

static struct profile *load_ok(const char *yaml, const struct profile_vars *v,
                               const struct profile_overrides *ov)
{
    struct profile *p = NULL;
    struct cg_err err = {0};
    int rc = profile_load_buffer(&p, yaml, strlen(yaml), "t.yaml", NULL, v, ov, &err);
    if (rc != 0) {
        print_message("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    return p;
}

static void test_gcp_only(void **state)
{
    (void)state;
    struct cg_err err = {0};
    /* the smallest gcp section: a service account and its key */
    struct profile *p = load_ok(GHEAD, &vars, NULL);
    assert_false(p->aws.present);
    assert_null(p->aws.name);
    assert_true(p->gcp.present);
    assert_string_equal(p->gcp.service_account.id, "sa-prod");
    assert_null(p->gcp.service_account.display_name);
    assert_null(p->gcp.service_account.description);
    assert_int_equal(p->gcp.service_count, 0);
    assert_int_equal(p->gcp.custom_role_count, 0);
    assert_int_equal(p->gcp.role_count, 0);
    assert_int_equal(p->gcp.credential, PROFILE_GCP_KEY);
    assert_int_equal(profile_require(p, "gcp", &err), 0);
    assert_int_equal(profile_require(p, "aws", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no aws section: the cluster runs on AWS; add "
                                 "one to the profile (docs/profiles.md) or use a profile that has "
                                 "one");
    profile_free(p);

    /* every key, templates everywhere they are allowed, cloud.project = cloud.account */
    struct profile_vars gke = vars;
    gke.cloud_account = "my-project-42";
    p = load_ok(HEAD "gcp:\n"
                     "  serviceAccount:\n"
                     "    id: \"{{cluster.name}}-{{cluster.id | sha1 | trunc 6}}\"\n"
                     "    displayName: \"Platform for {{cluster.name}}\"\n"
                     "    description: \"in {{cloud.project}}, {{cluster.region}}\"\n"
                     "  services: [container.googleapis.com, compute.googleapis.com]\n"
                     "  customRoles:\n"
                     "    - id: \"platform.{{cluster.name}}\"\n"
                     "      title: \"Platform {{cluster.name}}\"\n"
                     "      permissions:\n"
                     "        - container.clusters.get\n"
                     "        - compute.instances.list\n"
                     "        - compute.instanceGroups.get\n"
                     "        - compute.disks.create\n"
                     "    - id: other_role\n"
                     "      title: Other\n"
                     "      description: Other role\n"
                     "      stage: DEPRECATED\n"
                     "      permissions: [iam.serviceAccounts.actAs]\n"
                     "  roles: [roles/viewer, roles/container.developer]\n"
                     "  credential: keyless\n"
                     "  keyless:\n"
                     "    impersonator: "
                     "\"serviceAccount:platform@{{cloud.project}}.iam.gserviceaccount.com\"\n"
                     "    workloadIdentityUser: "
                     "\"serviceAccount:{{cloud.project}}.svc.id.goog[cloudgrant/agent]\"\n",
                &gke, NULL);
    const struct profile_gcp *g = &p->gcp;
    assert_string_equal(g->service_account.id, "prod-cf4ce8"); /* sha1 of the cluster id */
    assert_string_equal(g->service_account.display_name, "Platform for prod");
    assert_string_equal(g->service_account.description, "in my-project-42, eu-west-1");
    assert_int_equal(g->service_count, 2);
    assert_string_equal(g->services[0], "container.googleapis.com"); /* order kept */
    assert_string_equal(g->services[1], "compute.googleapis.com");
    assert_int_equal(g->custom_role_count, 2);
    assert_string_equal(g->custom_roles[0].id, "platform.prod");
    assert_string_equal(g->custom_roles[0].title, "Platform prod");
    assert_null(g->custom_roles[0].description);
    assert_string_equal(g->custom_roles[0].stage, "GA"); /* the default */
    /* sorted, as GCP's set is compared */
    assert_int_equal(g->custom_roles[0].permission_count, 4);
    assert_string_equal(g->custom_roles[0].permissions[0], "compute.disks.create");
    assert_string_equal(g->custom_roles[0].permissions[1], "compute.instanceGroups.get");
    assert_string_equal(g->custom_roles[0].permissions[2], "compute.instances.list");
    assert_string_equal(g->custom_roles[0].permissions[3], "container.clusters.get");
    assert_string_equal(g->custom_roles[1].stage, "DEPRECATED");
    assert_string_equal(g->custom_roles[1].description, "Other role");
    assert_int_equal(g->role_count, 2);
    assert_string_equal(g->roles[0], "roles/viewer");
    assert_int_equal(g->credential, PROFILE_GCP_KEYLESS);
    assert_string_equal(g->impersonator,
                        "serviceAccount:platform@my-project-42.iam.gserviceaccount.com");
    assert_string_equal(g->workload_identity_user,
                        "serviceAccount:my-project-42.svc.id.goog[cloudgrant/agent]");
    profile_free(p);

    /* a profile with only aws still works, and has no gcp */
    p = load_ok(USER, &vars, NULL);
    assert_true(p->aws.present);
    assert_false(p->gcp.present);
    assert_null(p->gcp.service_account.id);
    assert_int_equal(profile_require(p, "aws", &err), 0);
    assert_int_equal(profile_require(p, "gcp", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no gcp section: the cluster runs on GCP; add "
                                 "one to the profile (docs/profiles.md) or use a profile that has "
                                 "one");
    assert_int_equal(profile_require(p, "azure", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no azure section: the cluster runs on Azure; "
                                 "add one to the profile (docs/profiles.md) or use a profile that "
                                 "has one");
    assert_int_equal(profile_require(p, "outscale", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no outscale section: the cluster runs on "
                                 "OUTSCALE; add one to the profile (docs/profiles.md) or use a "
                                 "profile that has one");
    assert_int_equal(profile_require(p, "ibm", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no ibm section: grant profiles have aws, gcp, "
                                 "azure and outscale sections only");
    assert_int_equal(profile_require(p, "unknown", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test': the cluster's cloud provider is not known: pass "
                                 "--provider aws, --provider gcp, --provider azure or --provider "
                                 "outscale");
    assert_int_equal(profile_require(p, NULL, &err), CG_EINVAL);
    assert_int_equal(profile_require(NULL, "aws", &err), CG_EINVAL);
    profile_free(p);
}

static void test_gcp_overrides(void **state)
{
    (void)state;
    struct profile *p = NULL;
    struct cg_err err = {0};
    /* keyless without a member: what to pass */
    struct profile_overrides ov = {.gcp_credential = "keyless"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &ov, &err),
                     CG_EINVAL);
    assert_null(p);
    assert_string_equal(err.msg, "profile 'node-autoscaler': gcp.credential is keyless but no "
                                 "gcp.keyless.impersonator or workloadIdentityUser is set: pass "
                                 "--gcp-impersonator MEMBER");
    load_fails(GHEAD "  credential: keyless\n  keyless:\n    impersonator: \"\"\n", &vars, NULL,
               "profile 'test': gcp.credential is keyless but no gcp.keyless.impersonator or "
               "workloadIdentityUser is set: pass --gcp-impersonator MEMBER");

    /* the flag wins over the profile's member, and is taken literally */
    ov.gcp_impersonator = "group:platform-admins@example.com";
    p = load_ok(GHEAD "  credential: keyless\n  keyless:\n    impersonator: user:a@example.com\n",
                &vars, &ov);
    assert_string_equal(p->gcp.impersonator, "group:platform-admins@example.com");
    profile_free(p);
    /* a workload identity user alone is enough */
    p = load_ok(GHEAD "  credential: keyless\n  keyless:\n    workloadIdentityUser: "
                      "\"principal://iam.googleapis.com/projects/123/locations/global/"
                      "workloadIdentityPools/pool/subject/platform\"\n",
                &vars, NULL);
    assert_null(p->gcp.impersonator);
    assert_string_equal(p->gcp.workload_identity_user,
                        "principal://iam.googleapis.com/projects/123/locations/global/"
                        "workloadIdentityPools/pool/subject/platform");
    profile_free(p);

    /* --gcp-credential key takes a keyless profile back to a key; members are then unused */
    struct profile_overrides key = {.gcp_credential = "key"};
    p = load_ok(GHEAD "  credential: keyless\n  keyless:\n    impersonator: user:a@example.com\n",
                &vars, &key);
    assert_int_equal(p->gcp.credential, PROFILE_GCP_KEY);
    assert_null(p->gcp.impersonator);
    profile_free(p);
    /* --gcp-impersonator alone does not make a key profile keyless */
    struct profile_overrides imp = {.gcp_impersonator = "user:a@example.com"};
    p = builtin("node-autoscaler", &vars, &imp);
    assert_int_equal(p->gcp.credential, PROFILE_GCP_KEY);
    assert_null(p->gcp.impersonator);
    profile_free(p);

    /* bad flags */
    struct profile_overrides bad = {.gcp_credential = "none"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &bad, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "--gcp-credential must be 'key' or 'keyless', not 'none'");
    static const char *const not_members[] = {"allUsers",
                                              "allAuthenticatedUsers",
                                              "domain:example.com",
                                              "platform@example.com",
                                              "serviceAccount:",
                                              "serviceAccount:x@localhost",
                                              "user:a b@example.com",
                                              "serviceAccount:p.svc.id.goog[ns]",
                                              "serviceAccount:p.svc.id.goog[ns/ksa",
                                              "serviceAccount:p.svc.id.goog[n.s/ksa]",
                                              "principal://example.com/x",
                                              "principalSet://iam.googleapis.com/",
                                              "group:@example.com"};
    for (size_t i = 0; i < sizeof(not_members) / sizeof(not_members[0]); i++) {
        char want[512];
        struct profile_overrides o = {.gcp_credential = "keyless",
                                      .gcp_impersonator = not_members[i]};
        assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &vars, &o, &err),
                         CG_EINVAL);
        snprintf(want, sizeof(want),
                 "--gcp-impersonator '%s' is not an IAM member: use "
                 "serviceAccount:NAME@PROJECT.iam.gserviceaccount.com, "
                 "serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA], user:EMAIL, group:EMAIL, "
                 "principal://iam.googleapis.com/... or principalSet://iam.googleapis.com/...",
                 not_members[i]);
        assert_string_equal(err.msg, want);
    }
    static const char *const members[] = {
        "serviceAccount:castai@platform-1.iam.gserviceaccount.com",
        "serviceAccount:example.com:proj.svc.id.goog[kube-system/cluster-autoscaler]",
        "user:jane.doe+ops@example.co.uk", "group:platform@example.com",
        "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*"};
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        struct profile_overrides o = {.gcp_credential = "keyless", .gcp_impersonator = members[i]};
        p = builtin("node-autoscaler", &vars, &o);
        assert_string_equal(p->gcp.impersonator, members[i]);
        profile_free(p);
    }
}

static void test_gcp_errors(void **state)
{
    (void)state;
    /* structure: unknown keys, types, required parts */
    load_fails(GHEAD "  service: []\n", &vars, NULL, "t.yaml:7:3: gcp: unknown key 'service'");
    load_fails(GHEAD "    name: x\n", &vars, NULL,
               "t.yaml:7:5: gcp.serviceAccount: unknown key 'name'");
    load_fails(GHEAD "  keyless:\n    impersonater: x\n", &vars, NULL,
               "t.yaml:8:5: gcp.keyless: unknown key 'impersonater'");
    load_fails(GHEAD "  customRoles:\n    - id: r_1\n      title: t\n      permission: []\n", &vars,
               NULL, "t.yaml:10:7: gcp.customRoles[0]: unknown key 'permission'");
    load_fails(GHEAD "  roles: roles/viewer\n", &vars, NULL,
               "t.yaml:7:10: gcp: 'roles' must be a sequence, not a string");
    load_fails(GHEAD "  services:\n    - {a: b}\n", &vars, NULL,
               "t.yaml:8:7: gcp.services[0] must be a string, not a mapping");
    load_fails(GHEAD "  services:\n    -\n", &vars, NULL, "t.yaml:8:6: gcp.services[0] is empty");
    load_fails(HEAD "gcp: []\n", &vars, NULL,
               "t.yaml:4:6: 'gcp' must be a mapping, not a sequence");
    load_fails(HEAD "gcp:\n  services: [iam.googleapis.com]\n", &vars, NULL,
               "t.yaml:5:3: gcp.serviceAccount is missing: the gcp section needs a service "
               "account with an 'id'");
    load_fails(HEAD "gcp:\n  serviceAccount:\n    displayName: x\n", &vars, NULL,
               "t.yaml:6:5: gcp.serviceAccount.id is missing");
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: [x]\n", &vars, NULL,
               "t.yaml:6:9: gcp.serviceAccount: 'id' must be a string, not a sequence");
    load_fails(GHEAD "  credential: none\n", &vars, NULL,
               "t.yaml:7:15: gcp.credential must be 'key' or 'keyless', not 'none'");

    /* the service account id, after rendering */
    struct profile_vars long_name = vars;
    long_name.cluster_name = "a-forty-character-gke-cluster-name-abcde";
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: \"castai-gke-{{cluster.name}}\"\n",
               &long_name, NULL,
               "t.yaml:6:9: gcp.serviceAccount.id 'castai-gke-a-forty-character-gke-cluster-name-"
               "abcde' (rendered from 'castai-gke-{{cluster.name}}') is 51 characters, GCP "
               "allows 6 to 30 for a service account id: keep the cluster's part short with a "
               "filter, as in '{{cluster.name | sha1 | trunc 8}}'");
    struct profile_vars upper = vars;
    upper.cluster_name = "Prod";
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: \"castai-gke-{{cluster.name}}\"\n", &upper,
               NULL,
               "t.yaml:6:9: gcp.serviceAccount.id 'castai-gke-Prod' (rendered from "
               "'castai-gke-{{cluster.name}}') is not a valid GCP service account id: lower-case "
               "letters, digits and '-', starting with a letter and ending with a letter or "
               "digit; '{{cluster.name | sha1 | trunc 8}}' fits any cluster name");
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: short\n", &vars, NULL,
               "t.yaml:6:9: gcp.serviceAccount.id 'short' is 5 characters, GCP allows 6 to 30 for "
               "a service account id");
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: 1-account\n", &vars, NULL,
               "t.yaml:6:9: gcp.serviceAccount.id '1-account' is not a valid GCP service account "
               "id: lower-case letters, digits and '-', starting with a letter and ending with a "
               "letter or digit");
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: account-\n", &vars, NULL,
               "t.yaml:6:9: gcp.serviceAccount.id 'account-' is not a valid GCP service account "
               "id: lower-case letters, digits and '-', starting with a letter and ending with a "
               "letter or digit");
    load_fails(HEAD "gcp:\n  serviceAccount:\n    id: \"{{cluster.name | trunc 0}}\"\n", &vars,
               NULL,
               "t.yaml:6:9: gcp.serviceAccount.id: template '{{cluster.name | trunc 0}}': filter "
               "'trunc' needs a length from 1 to 4096, as in 'trunc 8'");
    struct profile_vars no_name = vars;
    no_name.cluster_name = NULL;
    load_fails(GHEAD, &no_name, NULL,
               "profile 'test': gcp.serviceAccount.id needs {{cluster.name}}, which this cluster "
               "does not reveal: pass --cluster-name");
    /* in the gcp section the account is the project, and the message says where it comes from */
    struct profile_vars no_project = vars;
    no_project.cloud_account = NULL;
    load_fails(GHEAD "    description: \"{{cloud.project}}\"\n", &no_project, NULL,
               "profile 'test': gcp.serviceAccount.description needs {{cloud.project}}, which "
               "this cluster does not reveal: it is the GCP project id, from the metadata server "
               "or the key file's project_id: let the agent reach the metadata server or give it "
               "a key file");
    char big[1024];
    snprintf(big, sizeof(big), GHEAD "    displayName: %0101d\n", 0);
    load_fails(big, &vars, NULL,
               "t.yaml:7:18: gcp.serviceAccount.displayName is 101 bytes, GCP "
               "allows 100");
    snprintf(big, sizeof(big), GHEAD "    description: %0257d\n", 0);
    load_fails(big, &vars, NULL,
               "t.yaml:7:18: gcp.serviceAccount.description is 257 bytes, GCP "
               "allows 256");

    /* services */
    load_fails(GHEAD "  services:\n    - iam\n", &vars, NULL,
               "t.yaml:8:7: gcp.services[0] 'iam' is not a service name: a lower-case DNS name, "
               "as in 'iam.googleapis.com'");
    load_fails(GHEAD "  services:\n    - IAM.googleapis.com\n", &vars, NULL,
               "t.yaml:8:7: gcp.services[0] 'IAM.googleapis.com' is not a service name: a "
               "lower-case DNS name, as in 'iam.googleapis.com'");
    load_fails(GHEAD "  services:\n    - https://iam.googleapis.com/\n", &vars, NULL,
               "t.yaml:8:7: gcp.services[0] 'https://iam.googleapis.com/' is not a service name: "
               "a lower-case DNS name, as in 'iam.googleapis.com'");
    load_fails(GHEAD "  services:\n    - iam..googleapis.com\n", &vars, NULL,
               "t.yaml:8:7: gcp.services[0] 'iam..googleapis.com' is not a service name: a "
               "lower-case DNS name, as in 'iam.googleapis.com'");
    load_fails(GHEAD "  services:\n    - iam.googleapis.com\n    - compute.googleapis.com\n"
                     "    - iam.googleapis.com\n",
               &vars, NULL, "t.yaml:10:7: gcp.services[2] 'iam.googleapis.com' is listed twice");

    /* predefined roles */
    load_fails(GHEAD "  roles:\n    - container.developer\n", &vars, NULL,
               "t.yaml:8:7: gcp.roles[0] 'container.developer' is not a predefined role: "
               "'roles/NAME', as in 'roles/container.developer'");
    load_fails(GHEAD "  roles:\n    - projects/p/roles/mine\n", &vars, NULL,
               "t.yaml:8:7: gcp.roles[0] 'projects/p/roles/mine' is not a predefined role: "
               "'roles/NAME', as in 'roles/container.developer'; a custom role goes in "
               "gcp.customRoles, which cloudgrant creates and binds to the service account");
    load_fails(GHEAD "  roles:\n    - roles/\n", &vars, NULL,
               "t.yaml:8:7: gcp.roles[0] 'roles/' is not a predefined role: 'roles/NAME', as in "
               "'roles/container.developer'");
    load_fails(GHEAD "  roles: [roles/viewer, roles/compute.admin, roles/viewer, roles/viewer]\n",
               &vars, NULL, "t.yaml:7:46: gcp.roles[2] 'roles/viewer' is listed twice");

    /* custom roles */
#define ROLE GHEAD "  customRoles:\n    - id: castai.gkeAccess\n      title: T\n"
    assert_int_equal(load(ROLE "      permissions: [compute.zones.get]\n", &vars, NULL, NULL), 0);
    load_fails(GHEAD "  customRoles:\n    - castai.gkeAccess\n", &vars, NULL,
               "t.yaml:8:7: gcp.customRoles[0] must be a mapping with 'id', 'title' and "
               "'permissions', not a string");
    load_fails(GHEAD "  customRoles:\n    - title: T\n      permissions: [a.b.c]\n", &vars, NULL,
               "t.yaml:8:7: gcp.customRoles[0].id is missing");
    load_fails(GHEAD "  customRoles:\n    - id: castai-gke\n", &vars, NULL,
               "t.yaml:8:11: gcp.customRoles[0].id 'castai-gke' is not a valid GCP role id: 3 to "
               "64 letters, digits, '_' and '.'");
    load_fails(GHEAD "  customRoles:\n    - id: \"castai.{{cluster.region}}\"\n", &vars, NULL,
               "t.yaml:8:11: gcp.customRoles[0].id 'castai.eu-west-1' (rendered from "
               "'castai.{{cluster.region}}') is not a valid GCP role id: 3 to 64 letters, digits, "
               "'_' and '.'; '{{cluster.name | sha1 | trunc 8}}' fits any cluster name");
    load_fails(GHEAD "  customRoles:\n    - id: ab\n", &vars, NULL,
               "t.yaml:8:11: gcp.customRoles[0].id 'ab' is not a valid GCP role id: 3 to 64 "
               "letters, digits, '_' and '.'");
    load_fails(GHEAD "  customRoles:\n    - id: abc\n      permissions: [a.b.c]\n", &vars, NULL,
               "t.yaml:8:7: gcp.customRoles[0].title is missing");
    load_fails(GHEAD "  customRoles:\n    - id: abc\n      title: \"\"\n", &vars, NULL,
               "t.yaml:9:14: gcp.customRoles[0].title is missing");
    snprintf(big, sizeof(big), ROLE "      description: %0301d\n", 0);
    load_fails(big, &vars, NULL,
               "t.yaml:10:20: gcp.customRoles[0].description is 301 bytes, GCP allows 300");
    snprintf(big, sizeof(big), GHEAD "  customRoles:\n    - id: abc\n      title: %0101d\n", 0);
    load_fails(big, &vars, NULL,
               "t.yaml:9:14: gcp.customRoles[0].title is 101 bytes, GCP allows 100");
    load_fails(ROLE "      stage: ga\n", &vars, NULL,
               "t.yaml:10:14: gcp.customRoles[0].stage must be ALPHA, BETA, GA, DEPRECATED, "
               "DISABLED or EAP, not 'ga'");
    load_fails(ROLE, &vars, NULL,
               "t.yaml:8:7: gcp.customRoles[0].permissions is missing: a custom role needs at "
               "least one permission");
    load_fails(ROLE "      permissions: []\n", &vars, NULL,
               "t.yaml:10:20: gcp.customRoles[0].permissions is empty: a custom role needs at "
               "least one permission");
    load_fails(ROLE "      permissions: compute.zones.get\n", &vars, NULL,
               "t.yaml:10:20: gcp.customRoles[0]: 'permissions' must be a sequence, not a string");
    load_fails(ROLE "      permissions:\n        - compute.zones\n", &vars, NULL,
               "t.yaml:11:11: gcp.customRoles[0].permissions[0] 'compute.zones' is not a GCP "
               "permission: service.resource.verb, as in 'compute.instances.create'");
    load_fails(ROLE "      permissions:\n        - compute.zones.get.x\n", &vars, NULL,
               "t.yaml:11:11: gcp.customRoles[0].permissions[0] 'compute.zones.get.x' is not a "
               "GCP permission: service.resource.verb, as in 'compute.instances.create'");
    load_fails(ROLE "      permissions:\n        - roles/compute.admin\n", &vars, NULL,
               "t.yaml:11:11: gcp.customRoles[0].permissions[0] 'roles/compute.admin' is not a "
               "GCP permission: service.resource.verb, as in 'compute.instances.create'");
    load_fails(ROLE "      permissions:\n        - compute.instances.*\n", &vars, NULL,
               "t.yaml:11:11: gcp.customRoles[0].permissions[0] 'compute.instances.*' is not a "
               "GCP permission: a custom role lists its permissions one by one, without "
               "wildcards");
    load_fails(ROLE
               "      permissions:\n        - compute.zones.list\n        - compute.zones.get\n"
               "        - compute.zones.list\n",
               &vars, NULL,
               "t.yaml:13:11: gcp.customRoles[0].permissions[2] 'compute.zones.list' is listed "
               "twice");
    load_fails(ROLE "      permissions: [a.b.c]\n    - id: castai.gkeAccess\n      title: T\n"
                    "      permissions: [a.b.c]\n",
               &vars, NULL, "t.yaml:11:11: gcp.customRoles[1].id 'castai.gkeAccess' is used twice");

    /* more permissions than a custom role holds */
    size_t cap = 200 + 3001 * 24;
    char *many = malloc(cap);
    assert_non_null(many);
    int len = snprintf(many, cap, ROLE "      permissions:\n");
    for (int i = 0; i < 3001; i++) {
        len += snprintf(many + len, cap - (size_t)len, "        - s.r.v%d\n", i);
    }
    load_fails(many, &vars, NULL,
               "t.yaml:11:9: gcp.customRoles[0].permissions has 3001 permissions, GCP allows 3000 "
               "in a custom role: split it into two custom roles");
    free(many);

    /* keyless members, checked after rendering */
    load_fails(GHEAD "  credential: keyless\n  keyless:\n    impersonator: allUsers\n", &vars, NULL,
               "t.yaml:9:19: gcp.keyless.impersonator 'allUsers' is not an IAM member: use "
               "serviceAccount:NAME@PROJECT.iam.gserviceaccount.com, "
               "serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA], user:EMAIL, group:EMAIL, "
               "principal://iam.googleapis.com/... or principalSet://iam.googleapis.com/...");
    load_fails(GHEAD "  credential: keyless\n  keyless:\n    workloadIdentityUser: "
                     "\"serviceAccount:{{cloud.account}}.svc.id.goog[ns/{{cluster.name}}_x]\"\n",
               &vars, NULL,
               "t.yaml:9:27: gcp.keyless.workloadIdentityUser "
               "'serviceAccount:123456789012.svc.id.goog[ns/prod_x]' is not an IAM member: use "
               "serviceAccount:NAME@PROJECT.iam.gserviceaccount.com, "
               "serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA], user:EMAIL, group:EMAIL, "
               "principal://iam.googleapis.com/... or principalSet://iam.googleapis.com/...");
    /* with a key, gcp.keyless is checked but not rendered */
    load_fails(GHEAD "  keyless:\n    impersonator: \"user:{{cluster.nam}}@example.com\"\n", &vars,
               NULL,
               "t.yaml:8:19: gcp.keyless.impersonator: template "
               "'user:{{cluster.nam}}@example.com': unknown variable 'cluster.nam' (variables: "
               "cluster.name, cluster.id, cluster.region, cloud.account)");
    assert_int_equal(
        load(GHEAD "  keyless:\n    impersonator: \"{{cluster.name}}\"\n", &vars, NULL, NULL), 0);

    /* both sections: each is checked */
    load_fails(USER "gcp:\n  serviceAccount:\n    id: x\n", &vars, NULL,
               "t.yaml:9:9: gcp.serviceAccount.id 'x' is 1 characters, GCP allows 6 to 30 for a "
               "service account id");
}

/* ------------------------------------------------------------------------------------------
 * Azure */

static const struct profile_vars aks = {
    .cluster_name = "aks-main",
    .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
    .cluster_region = "westeurope",
    .cloud_account = "0b1f6471-1bf0-4dda-aec3-111122223333",
};

#define CONTRIBUTOR "b24988ac-6180-42a0-ab88-20f7382dd24c"

static void assert_strings(char *const *have, size_t n, const char *const *want, size_t m)
{
    assert_int_equal(n, m);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(have[i], want[i]);
    }
}

static void test_node_autoscaler_azure(void **state)
{
    (void)state;
    struct profile *p = builtin("node-autoscaler", &aks, NULL);
    const struct profile_azure *z = &p->azure;
    assert_true(p->aws.present); /* every section, the others as before */
    assert_string_equal(p->aws.name, "cast-eks-aks-main");
    assert_true(p->gcp.present);
    assert_true(z->present);
    assert_string_equal(z->application.display_name, "cast-aks-aks-main");
    assert_string_equal(
        z->application.description,
        "Creates and removes the nodes of cluster aks-main (managed by cloudgrant)");
    assert_int_equal(z->credential, PROFILE_AZURE_SECRET);
    assert_int_equal(z->secret_lifetime_days, 365);
    assert_int_equal(z->secret_renew_days, 30);
    assert_null(z->federated_issuer);
    assert_null(z->federated_subject);

    /* least privilege by default: the custom role, on the cluster's groups only */
    assert_int_equal(z->grant, PROFILE_AZURE_CUSTOM);
    assert_true(z->custom_role.present);
    assert_string_equal(z->custom_role.name, "cast-aks-aks-main");
    assert_string_equal(
        z->custom_role.description,
        "Creates and removes the nodes of cluster aks-main (managed by cloudgrant)");
    assert_int_equal(z->custom_role.scope, PROFILE_AZURE_CLUSTER_GROUPS);
    static const char *const actions[] = {
        "Microsoft.Compute/*/read",
        "Microsoft.Compute/disks/delete",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/virtualMachineScaleSets/*",
        "Microsoft.Compute/virtualMachines/*",
        "Microsoft.ContainerService/managedClusters/agentPools/read",
        "Microsoft.ContainerService/managedClusters/read",
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
        "Microsoft.Network/*/read",
        "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
        "Microsoft.Network/networkInterfaces/delete",
        "Microsoft.Network/networkInterfaces/join/action",
        "Microsoft.Network/networkInterfaces/write",
        "Microsoft.Network/networkSecurityGroups/join/action",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
    };
    assert_strings(z->custom_role.actions, z->custom_role.action_count, actions,
                   sizeof(actions) / sizeof(actions[0]));
    /* the builtin alternative is loaded too (a switch can clean up after the other) */
    assert_int_equal(z->role_count, 1);
    assert_string_equal(z->roles[0].name, "Contributor");
    assert_string_equal(z->roles[0].role_id, CONTRIBUTOR);
    assert_int_equal(z->roles[0].scope, PROFILE_AZURE_CLUSTER_GROUPS);
    profile_free(p);

    /* --azure-grant builtin: Contributor on the same groups */
    struct profile_overrides builtin_grant = {.azure_grant = "builtin"};
    p = builtin("node-autoscaler", &aks, &builtin_grant);
    assert_int_equal(p->azure.grant, PROFILE_AZURE_BUILTIN);
    assert_string_equal(p->azure.roles[0].role_id, CONTRIBUTOR);
    assert_true(p->azure.custom_role.present);
    profile_free(p);

    /* federated: no secret, the platform's tokens */
    struct profile_overrides fed = {
        .azure_credential = "federated",
        .azure_federated_issuer = "https://oidc.platform.example.com/clusters",
        .azure_federated_subject = "system:serviceaccount:castai:autoscaler",
    };
    p = builtin("node-autoscaler", &aks, &fed);
    assert_int_equal(p->azure.credential, PROFILE_AZURE_FEDERATED);
    assert_string_equal(p->azure.federated_issuer, "https://oidc.platform.example.com/clusters");
    assert_string_equal(p->azure.federated_subject, "system:serviceaccount:castai:autoscaler");
    assert_int_equal(p->azure.custom_role.action_count, 16);
    profile_free(p);
}

static void test_platform_access_azure(void **state)
{
    (void)state;
    struct profile *p = builtin("platform-access", &aks, NULL);
    const struct profile_azure *z = &p->azure;
    assert_true(p->aws.present);
    assert_true(p->gcp.present);
    assert_true(z->present);
    /* exactly the seed: an app, a secret with an expiry, Contributor on the subscription */
    assert_string_equal(z->application.display_name, "platform-access-aks-main");
    assert_string_equal(z->application.description,
                        "Environment provisioning for cluster aks-main (managed by cloudgrant)");
    assert_int_equal(z->credential, PROFILE_AZURE_SECRET);
    assert_int_equal(z->secret_lifetime_days, 365);
    assert_int_equal(z->secret_renew_days, 30);
    assert_null(z->federated_issuer);
    assert_int_equal(z->grant, PROFILE_AZURE_BUILTIN);
    assert_int_equal(z->role_count, 1);
    assert_string_equal(z->roles[0].name, "Contributor");
    assert_string_equal(z->roles[0].role_id, CONTRIBUTOR);
    assert_int_equal(z->roles[0].scope, PROFILE_AZURE_SUBSCRIPTION);
    /* the custom role of --azure-grant custom, on the subscription */
    assert_true(z->custom_role.present);
    assert_string_equal(z->custom_role.name, "platform-access-aks-main");
    assert_int_equal(z->custom_role.scope, PROFILE_AZURE_SUBSCRIPTION);
    static const char *const actions[] = {
        "Microsoft.Compute/*/read",
        "Microsoft.Compute/disks/delete",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/images/*",
        "Microsoft.Compute/sshPublicKeys/*",
        "Microsoft.Compute/virtualMachines/*",
        "Microsoft.Network/*/read",
        "Microsoft.Network/natGateways/*",
        "Microsoft.Network/networkInterfaces/*",
        "Microsoft.Network/networkSecurityGroups/*",
        "Microsoft.Network/publicIPAddresses/*",
        "Microsoft.Network/routeTables/*",
        "Microsoft.Network/virtualNetworks/*",
        "Microsoft.Resources/subscriptions/read",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Resources/subscriptions/resourceGroups/write",
    };
    assert_strings(z->custom_role.actions, z->custom_role.action_count, actions,
                   sizeof(actions) / sizeof(actions[0]));
    profile_free(p);

    struct profile_overrides custom = {.azure_grant = "custom"};
    p = builtin("platform-access", &aks, &custom);
    assert_int_equal(p->azure.grant, PROFILE_AZURE_CUSTOM);
    profile_free(p);

    /* on another cloud the azure section is rendered with that cloud's values, and works */
    p = builtin("platform-access", &vars, NULL);
    assert_string_equal(p->azure.application.display_name, "platform-access-prod");
    profile_free(p);
}

#define AHEAD                                                                                      \
    HEAD "azure:\n  application:\n    displayName: \"app-{{cluster.name}}\"\n  roles:\n"           \
         "    - role: Contributor\n"

static void test_azure_only(void **state)
{
    (void)state;
    struct cg_err err = {0};
    /* the smallest azure section: an app, a secret, a role on the subscription */
    struct profile *p = load_ok(AHEAD, &aks, NULL);
    const struct profile_azure *z = &p->azure;
    assert_false(p->aws.present);
    assert_false(p->gcp.present);
    assert_true(z->present);
    assert_string_equal(z->application.display_name, "app-aks-main");
    assert_null(z->application.description);
    assert_int_equal(z->credential, PROFILE_AZURE_SECRET);
    assert_int_equal(z->secret_lifetime_days, 365);
    assert_int_equal(z->secret_renew_days, 30);
    assert_null(z->federated_issuer);
    assert_null(z->federated_subject);
    assert_int_equal(z->grant, PROFILE_AZURE_BUILTIN);
    assert_int_equal(z->role_count, 1);
    assert_string_equal(z->roles[0].role_id, CONTRIBUTOR);
    assert_int_equal(z->roles[0].scope, PROFILE_AZURE_SUBSCRIPTION);
    assert_false(z->custom_role.present);
    assert_null(z->custom_role.name);
    assert_int_equal(profile_require(p, "azure", &err), 0);
    assert_int_equal(profile_require(p, "gcp", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no gcp section: the cluster runs on GCP; add "
                                 "one to the profile (docs/profiles.md) or use a profile that has "
                                 "one");
    profile_free(p);

    /* every key, templates where they are allowed, cloud.subscription = cloud.account */
    p = load_ok(HEAD "azure:\n"
                     "  application:\n"
                     "    displayName: \"Platform {{cluster.name}} ({{cluster.region}})\"\n"
                     "    description: \"in {{cloud.subscription}}\"\n"
                     "  credential: federated\n"
                     "  secret:\n"
                     "    lifetimeDays: 90\n"
                     "    renewBeforeDays: 0\n"
                     "  federated:\n"
                     "    issuer: \"https://oidc.example.com/{{cluster.id}}/\"\n"
                     "    subject: \"system:serviceaccount:{{cluster.name}}:agent\"\n"
                     "  grant: custom\n"
                     "  roles:\n"
                     "    - role: reader\n"
                     "      scope: clusterResourceGroups\n"
                     "    - role: ACDD72A7-3385-48EF-BD42-F606FBA81AE7\n"
                     "    - role: \"{{cluster.id}}\"\n"
                     "  customRole:\n"
                     "    name: \"Nodes of {{cluster.name}}\"\n"
                     "    description: \"{{cloud.account}}\"\n"
                     "    scope: subscription\n"
                     "    actions:\n"
                     "      - Microsoft.Network/*/read\n"
                     "      - \"*/read\"\n"
                     "      - Microsoft.Authorization/*/Delete\n"
                     "      - microsoft.insights/diagnosticSettings/*\n"
                     "      - Microsoft.Compute/virtualMachines/start/action\n"
                     "      - \"*\"\n",
                &aks, NULL);
    z = &p->azure;
    assert_string_equal(z->application.display_name, "Platform aks-main (westeurope)");
    assert_string_equal(z->application.description, "in 0b1f6471-1bf0-4dda-aec3-111122223333");
    assert_int_equal(z->credential, PROFILE_AZURE_FEDERATED);
    assert_int_equal(z->secret_lifetime_days, 90);
    assert_int_equal(z->secret_renew_days, 0);
    assert_string_equal(z->federated_issuer,
                        "https://oidc.example.com/9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10/");
    assert_string_equal(z->federated_subject, "system:serviceaccount:aks-main:agent");
    assert_int_equal(z->grant, PROFILE_AZURE_CUSTOM);
    /* by name in any case, or by GUID, lower-cased; both scopes */
    assert_int_equal(z->role_count, 3);
    assert_string_equal(z->roles[0].name, "reader");
    assert_string_equal(z->roles[0].role_id, "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    assert_int_equal(z->roles[0].scope, PROFILE_AZURE_CLUSTER_GROUPS);
    assert_string_equal(z->roles[1].name, "ACDD72A7-3385-48EF-BD42-F606FBA81AE7");
    assert_string_equal(z->roles[1].role_id, "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    assert_int_equal(z->roles[1].scope, PROFILE_AZURE_SUBSCRIPTION);
    assert_string_equal(z->roles[2].role_id, aks.cluster_id);
    assert_true(z->custom_role.present);
    assert_string_equal(z->custom_role.name, "Nodes of aks-main");
    assert_string_equal(z->custom_role.description, aks.cloud_account);
    assert_int_equal(z->custom_role.scope, PROFILE_AZURE_SUBSCRIPTION);
    /* sorted with strcmp, as the reconcile compares them */
    static const char *const sorted[] = {
        "*",
        "*/read",
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Compute/virtualMachines/start/action",
        "Microsoft.Network/*/read",
        "microsoft.insights/diagnosticSettings/*",
    };
    assert_strings(z->custom_role.actions, z->custom_role.action_count, sorted,
                   sizeof(sorted) / sizeof(sorted[0]));
    profile_free(p);

    /* a custom role's scope defaults to the cluster's groups; a renewal can wait to the last
     * day */
    p = load_ok(AHEAD "  secret:\n    lifetimeDays: 1\n    renewBeforeDays: 0\n  customRole:\n"
                      "    name: r\n    actions: [Microsoft.Compute/disks/read]\n",
                &aks, NULL);
    assert_int_equal(p->azure.custom_role.scope, PROFILE_AZURE_CLUSTER_GROUPS);
    assert_int_equal(p->azure.secret_lifetime_days, 1);
    assert_int_equal(p->azure.grant, PROFILE_AZURE_BUILTIN);
    profile_free(p);
    p = load_ok(AHEAD "  secret:\n    lifetimeDays: 730\n    renewBeforeDays: 729\n", &aks, NULL);
    assert_int_equal(p->azure.secret_renew_days, 729);
    profile_free(p);
    p = load_ok(AHEAD "  secret:\n    lifetimeDays: 31\n", &aks, NULL);
    assert_int_equal(p->azure.secret_renew_days, 30);
    profile_free(p);

    /* every built-in role known by name */
    static const char *const known[][2] = {
        {"Contributor", CONTRIBUTOR},
        {"Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7"},
        {"Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"},
        {"User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"},
        {"Virtual Machine Contributor", "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"},
        {"network contributor", "4d97b98b-1d4f-4787-a291-c67834d212e7"},
        {"Azure Kubernetes Service Contributor Role", "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 HEAD "azure:\n  application: {displayName: a}\n  roles:\n    - role: %s\n",
                 known[i][0]);
        p = load_ok(yaml, &aks, NULL);
        assert_string_equal(p->azure.roles[0].name, known[i][0]);
        assert_string_equal(p->azure.roles[0].role_id, known[i][1]);
        profile_free(p);
    }

    /* one role on two scopes is two assignments */
    p = load_ok(AHEAD "      scope: subscription\n    - role: Contributor\n"
                      "      scope: clusterResourceGroups\n",
                &aks, NULL);
    assert_int_equal(p->azure.role_count, 2);
    profile_free(p);

    /* a template value the cluster does not reveal: what supplies it on Azure */
    struct profile_vars no_name = aks;
    no_name.cluster_name = NULL;
    load_fails(AHEAD, &no_name, NULL,
               "profile 'test': azure.application.displayName needs {{cluster.name}}, which this "
               "cluster does not reveal: it comes from ARM (the tags of the node resource group): "
               "give the agent credentials that can read that resource group, or pass "
               "--cluster-name");
    struct profile_vars no_sub = aks;
    no_sub.cloud_account = NULL;
    load_fails(AHEAD "  customRole:\n    name: \"r-{{cloud.subscription}}\"\n", &no_sub, NULL,
               "profile 'test': azure.customRole.name needs {{cloud.subscription}}, which this "
               "cluster does not reveal: it is the Azure subscription id, from the nodes' "
               "providerID or the instance metadata service: let the agent list the nodes or "
               "reach the metadata service");
    load_fails(AHEAD "  customRole:\n    name: \"r-{{cloud.subscriptions}}\"\n", &aks, NULL,
               "t.yaml:10:11: azure.customRole.name: template 'r-{{cloud.subscriptions}}': "
               "unknown variable 'cloud.subscriptions' (variables: cluster.name, cluster.id, "
               "cluster.region, cloud.account)");
    char *out = NULL;
    assert_int_equal(profile_render("/subscriptions/{{cloud.subscription}}", &aks, &out, &err), 0);
    assert_string_equal(out, "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333");
    free(out);
}

static void test_azure_overrides(void **state)
{
    (void)state;
    struct profile *p = NULL;
    struct cg_err err = {0};
    /* federated without an issuer and a subject: what to pass */
    struct profile_overrides fed = {.azure_credential = "federated"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &fed, &err),
                     CG_EINVAL);
    assert_null(p);
    assert_string_equal(err.msg, "profile 'node-autoscaler': azure.credential is federated but "
                                 "neither azure.federated.issuer nor azure.federated.subject is "
                                 "set: pass --azure-federated-issuer URL and "
                                 "--azure-federated-subject SUBJECT");
    fed.azure_federated_issuer = "https://oidc.platform.example.com";
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &fed, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "profile 'node-autoscaler': azure.credential is federated but "
                                 "azure.federated.subject is not set: pass "
                                 "--azure-federated-subject SUBJECT");
    load_fails(AHEAD "  credential: federated\n  federated:\n    subject: s\n", &aks, NULL,
               "profile 'test': azure.credential is federated but azure.federated.issuer is not "
               "set: pass --azure-federated-issuer URL");

    /* the flags win over the profile's values, and are taken literally */
    struct profile_overrides flags = {.azure_federated_issuer = "https://token.example.com",
                                      .azure_federated_subject = "{{not-a-template}}"};
    p = load_ok(AHEAD "  credential: federated\n  federated:\n    issuer: https://a.example.com\n"
                      "    subject: from-profile\n",
                &aks, &flags);
    assert_string_equal(p->azure.federated_issuer, "https://token.example.com");
    assert_string_equal(p->azure.federated_subject, "{{not-a-template}}");
    profile_free(p);
    /* --azure-federated-issuer alone does not make a secret profile federated */
    p = builtin("node-autoscaler", &aks, &flags);
    assert_int_equal(p->azure.credential, PROFILE_AZURE_SECRET);
    assert_null(p->azure.federated_issuer);
    assert_null(p->azure.federated_subject);
    profile_free(p);
    /* --azure-credential secret takes a federated profile back to a secret */
    struct profile_overrides secret = {.azure_credential = "secret"};
    p = load_ok(AHEAD "  credential: federated\n", &aks, &secret);
    assert_int_equal(p->azure.credential, PROFILE_AZURE_SECRET);
    profile_free(p);

    /* the grant needs what it assigns */
    struct profile_overrides custom = {.azure_grant = "custom"};
    load_fails(AHEAD, &aks, &custom,
               "profile 'test': azure.grant is custom but there is no azure.customRole: add one "
               "to the profile, or pass --azure-grant builtin to assign azure.roles");
    load_fails(HEAD "azure:\n  application: {displayName: a}\n  grant: custom\n", &aks, NULL,
               "profile 'test': azure.grant is custom but there is no azure.customRole: add one "
               "to the profile");
    struct profile_overrides builtin_grant = {.azure_grant = "builtin"};
    load_fails(HEAD "azure:\n  application: {displayName: a}\n  grant: custom\n  customRole:\n"
                    "    name: r\n    actions: ['*/read']\n",
               &aks, &builtin_grant,
               "profile 'test': azure.grant is builtin but azure.roles lists no role: list the "
               "roles to assign (as '- role: Contributor'), or pass --azure-grant custom to "
               "assign azure.customRole");
    load_fails(HEAD "azure:\n  application: {displayName: a}\n  roles: []\n", &aks, NULL,
               "profile 'test': azure.grant is builtin but azure.roles lists no role: list the "
               "roles to assign (as '- role: Contributor')");

    /* bad flags */
    struct profile_overrides bad = {.azure_credential = "certificate"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &bad, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg,
                        "--azure-credential must be 'secret' or 'federated', not 'certificate'");
    struct profile_overrides bad_grant = {.azure_grant = "both"};
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &bad_grant, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "--azure-grant must be 'builtin' or 'custom', not 'both'");
    static const char *const not_issuers[] = {"http://oidc.example.com",
                                              "https://",
                                              "https:///path",
                                              "oidc.example.com",
                                              "https://oidc.example.com/?tenant=1",
                                              "https://oidc.example.com/#x",
                                              "https://oidc example.com"};
    for (size_t i = 0; i < sizeof(not_issuers) / sizeof(not_issuers[0]); i++) {
        char want[512];
        struct profile_overrides o = {.azure_credential = "federated",
                                      .azure_federated_issuer = not_issuers[i],
                                      .azure_federated_subject = "s"};
        assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &o, &err),
                         CG_EINVAL);
        snprintf(want, sizeof(want),
                 "--azure-federated-issuer '%s' is not an OIDC issuer: https://HOST[/PATH] "
                 "without a query or a fragment, at most 600 characters, exactly as the "
                 "platform's tokens carry it in 'iss'",
                 not_issuers[i]);
        assert_string_equal(err.msg, want);
    }
    static const char *const issuers[] = {
        "https://token.actions.githubusercontent.com",
        "https://oidc.prod-aks.azure.com/0b1f6471-1bf0-4dda-aec3-111122223333/",
        "https://accounts.google.com", "https://localhost:8443/realms/platform"};
    for (size_t i = 0; i < sizeof(issuers) / sizeof(issuers[0]); i++) {
        struct profile_overrides o = {.azure_credential = "federated",
                                      .azure_federated_issuer = issuers[i],
                                      .azure_federated_subject = "repo:org/platform:ref:main"};
        p = builtin("node-autoscaler", &aks, &o);
        assert_string_equal(p->azure.federated_issuer, issuers[i]);
        profile_free(p);
    }
    char long_issuer[700];
    snprintf(long_issuer, sizeof(long_issuer), "https://%0592d", 0); /* 600 */
    struct profile_overrides o = {.azure_credential = "federated",
                                  .azure_federated_issuer = long_issuer,
                                  .azure_federated_subject = "s"};
    p = builtin("node-autoscaler", &aks, &o);
    profile_free(p);
    snprintf(long_issuer, sizeof(long_issuer), "https://%0593d", 0); /* 601 */
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &o, &err),
                     CG_EINVAL);
    o.azure_federated_issuer = "https://oidc.example.com";
    o.azure_federated_subject = "a\nb";
    assert_int_equal(profile_load(&p, "node-autoscaler", CG_PROFILES_DIR, &aks, &o, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "--azure-federated-subject 'a?b' is not a token subject: 1 to "
                                 "600 characters without control characters");
}

static void test_azure_errors(void **state)
{
    (void)state;
    char big[4096];
    /* structure: unknown keys, types, required parts */
    load_fails(AHEAD "  secrets: {}\n", &aks, NULL, "t.yaml:9:3: azure: unknown key 'secrets'");
    load_fails(AHEAD "  roles: []\n", &aks, NULL, "t.yaml:9:3: azure: key 'roles' is repeated");
    load_fails(HEAD "azure:\n  application:\n    displayName: a\n    name: b\n", &aks, NULL,
               "t.yaml:7:5: azure.application: unknown key 'name'");
    load_fails(AHEAD "  secret:\n    lifetime: 5\n", &aks, NULL,
               "t.yaml:10:5: azure.secret: unknown key 'lifetime'");
    load_fails(AHEAD "  federated:\n    audience: api://AzureADTokenExchange\n", &aks, NULL,
               "t.yaml:10:5: azure.federated: unknown key 'audience'");
    load_fails(AHEAD "      scopes: subscription\n", &aks, NULL,
               "t.yaml:9:7: azure.roles[0]: unknown key 'scopes'");
    load_fails(AHEAD "  customRole:\n    name: r\n    permissions: [a]\n", &aks, NULL,
               "t.yaml:11:5: azure.customRole: unknown key 'permissions'");
    load_fails(HEAD "azure: []\n", &aks, NULL,
               "t.yaml:4:8: 'azure' must be a mapping, not a sequence");
    load_fails(AHEAD "  secret: 365\n", &aks, NULL,
               "t.yaml:9:11: azure: 'secret' must be a mapping, not a string");
    load_fails(HEAD "azure:\n  roles: [{role: Reader}]\n", &aks, NULL,
               "t.yaml:5:3: azure.application is missing: the azure section needs an app "
               "registration with a 'displayName'");
    load_fails(HEAD "azure:\n  application:\n    description: d\n", &aks, NULL,
               "t.yaml:6:5: azure.application.displayName is missing");
    load_fails(HEAD "azure:\n  application:\n    displayName: [a]\n", &aks, NULL,
               "t.yaml:6:18: azure.application: 'displayName' must be a string, not a sequence");

    /* the app's name and description, after rendering */
    load_fails(HEAD "azure:\n  application:\n    displayName: \"\"\n", &aks, NULL,
               "t.yaml:6:18: azure.application.displayName is empty");
    load_fails(HEAD "azure:\n  application:\n    displayName: \"a\\tb\"\n", &aks, NULL,
               "t.yaml:6:18: azure.application.displayName 'a?b' contains a control character");
    struct profile_vars long_name = aks;
    long_name.cluster_name = "a-cluster-name-of-sixty-three-characters-which-aks-allows-abcde";
    load_fails(HEAD "azure:\n  application:\n    displayName: \"platform-access-{{cluster.name}}-"
                    "{{cluster.name}}\"\n",
               &long_name, NULL,
               "t.yaml:6:18: azure.application.displayName 'platform-access-a-cluster-name-of-"
               "sixty-three-characters-which-aks-allows-abcde-a-cluster-na...' (rendered from "
               "'platform-access-{{cluster.name}}-{{cluster.name}}') is 143 characters, at most "
               "120 are allowed: keep the cluster's part short with a filter, as in "
               "'{{cluster.name | sha1 | trunc 8}}'");
    /* characters, not bytes */
    int len = snprintf(big, sizeof(big), HEAD "azure:\n  application:\n    displayName: \"");
    for (int i = 0; i < 120; i++) {
        len += snprintf(big + len, sizeof(big) - (size_t)len, "\xc3\xa9");
    }
    snprintf(big + len, sizeof(big) - (size_t)len, "\"\n  roles: [{role: Reader}]\n");
    assert_int_equal(load(big, &aks, NULL, NULL), 0);
    snprintf(big, sizeof(big), HEAD "azure:\n  application:\n    displayName: %0121d\n", 0);
    load_fails(big, &aks, NULL,
               "t.yaml:6:18: azure.application.displayName "
               "'0000000000000000000000000000000000000000000000000000000000000000000000000000000"
               "0000000000000...' is 121 characters, at most 120 are allowed");
    snprintf(big, sizeof(big),
             HEAD "azure:\n  application:\n    displayName: a\n    description: %01025d\n", 0);
    load_fails(big, &aks, NULL,
               "t.yaml:7:18: azure.application.description is 1025 characters, Graph allows "
               "1024");

    /* the credential and the secret */
    load_fails(AHEAD "  credential: key\n", &aks, NULL,
               "t.yaml:9:15: azure.credential must be 'secret' or 'federated', not 'key'");
    static const char *const lifetimes[] = {"0", "731", "-1", "a year", "[365]", "1e3"};
    for (size_t i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); i++) {
        snprintf(big, sizeof(big), AHEAD "  secret:\n    lifetimeDays: %s\n", lifetimes[i]);
        load_fails(big, &aks, NULL,
                   "t.yaml:10:19: azure.secret.lifetimeDays must be a number of days from 1 to "
                   "730");
    }
    load_fails(AHEAD "  secret:\n    lifetimeDays: 90\n    renewBeforeDays: 90\n", &aks, NULL,
               "t.yaml:11:22: azure.secret.renewBeforeDays must be a number of days from 0 to 89, "
               "less than lifetimeDays (90): else the secret would be replaced as soon as it is "
               "made");
    load_fails(AHEAD "  secret:\n    renewBeforeDays: -1\n", &aks, NULL,
               "t.yaml:10:22: azure.secret.renewBeforeDays must be a number of days from 0 to "
               "364, less than lifetimeDays (365): else the secret would be replaced as soon as "
               "it is made");
    load_fails(AHEAD "  secret:\n    lifetimeDays: 7\n", &aks, NULL,
               "t.yaml:10:19: azure.secret.lifetimeDays 7 leaves no room for renewBeforeDays' "
               "default of 30 days: set renewBeforeDays below 7");

    /* federated, checked after rendering when used ... */
    load_fails(AHEAD "  credential: federated\n  federated:\n    issuer: http://oidc.example.com\n"
                     "    subject: s\n",
               &aks, NULL,
               "t.yaml:11:13: azure.federated.issuer 'http://oidc.example.com' is not an OIDC "
               "issuer: https://HOST[/PATH] without a query or a fragment, at most 600 "
               "characters, exactly as the platform's tokens carry it in 'iss'");
    snprintf(big, sizeof(big),
             AHEAD "  credential: federated\n  federated:\n    issuer: https://a.example.com\n"
                   "    subject: %0601d\n",
             0);
    load_fails(big, &aks, NULL,
               "t.yaml:12:14: azure.federated.subject "
               "'0000000000000000000000000000000000000000000000000000000000000000000000000000000"
               "0000000000000...' is not a token subject: 1 to 600 characters without control "
               "characters");
    /* ... and only their template syntax when not */
    load_fails(AHEAD "  federated:\n    issuer: \"https://{{cluster.nam}}\"\n", &aks, NULL,
               "t.yaml:10:13: azure.federated.issuer: template 'https://{{cluster.nam}}': unknown "
               "variable 'cluster.nam' (variables: cluster.name, cluster.id, cluster.region, "
               "cloud.account)");
    struct profile_vars no_region = aks;
    no_region.cluster_region = NULL;
    assert_int_equal(
        load(AHEAD "  federated:\n    issuer: http://{{cluster.region}}\n", &no_region, NULL, NULL),
        0);

    /* the grant and the roles */
    load_fails(AHEAD "  grant: Custom\n", &aks, NULL,
               "t.yaml:9:10: azure.grant must be 'builtin' or 'custom', not 'Custom'");
    load_fails(HEAD "azure:\n  application: {displayName: a}\n  roles: Contributor\n", &aks, NULL,
               "t.yaml:6:10: azure: 'roles' must be a sequence, not a string");
    load_fails(HEAD "azure:\n  application: {displayName: a}\n  roles: [Contributor]\n", &aks, NULL,
               "t.yaml:6:11: azure.roles[0] must be a mapping with 'role' and 'scope', not a "
               "string");
    load_fails(HEAD
               "azure:\n  application: {displayName: a}\n  roles:\n    - scope: subscription\n",
               &aks, NULL, "t.yaml:7:7: azure.roles[0].role is missing");
    load_fails(HEAD "azure:\n  application: {displayName: a}\n  roles:\n    - role: Contributer\n",
               &aks, NULL,
               "t.yaml:7:13: azure.roles[0].role 'Contributer' is not a role known by name "
               "(Contributor, Reader, Owner, User Access Administrator, Virtual Machine "
               "Contributor, Network Contributor, Azure Kubernetes Service Contributor Role): "
               "give any other role by its role definition GUID, as in "
               "'b24988ac-6180-42a0-ab88-20f7382dd24c'");
    static const char *const not_guids[] = {
        "b24988ac-6180-42a0-ab88-20f7382dd24",
        "{b24988ac-6180-42a0-ab88-20f7382dd24c}",
        "b24988ac61804-2a0-ab88-20f7382dd24c",
        "g24988ac-6180-42a0-ab88-20f7382dd24c",
        "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor "};
    for (size_t i = 0; i < sizeof(not_guids) / sizeof(not_guids[0]); i++) {
        struct cg_err err = {0};
        snprintf(big, sizeof(big),
                 HEAD "azure:\n  application: {displayName: a}\n  roles:\n    - role: \"%s\"\n",
                 not_guids[i]);
        assert_int_equal(load(big, &aks, NULL, &err), CG_EINVAL);
        assert_non_null(strstr(err.msg, "is not a role known by name"));
    }
    load_fails(AHEAD "      scope: resourceGroup\n", &aks, NULL,
               "t.yaml:9:14: azure.roles[0].scope must be 'subscription' or "
               "'clusterResourceGroups', not 'resourceGroup'");
    load_fails(AHEAD "    - role: Reader\n    - role: contributor\n", &aks, NULL,
               "t.yaml:10:13: azure.roles[2].role 'contributor' is listed twice with scope "
               "subscription");
    load_fails(AHEAD "      scope: clusterResourceGroups\n    - role: "
                     "B24988AC-6180-42A0-AB88-20F7382DD24C\n      scope: clusterResourceGroups\n",
               &aks, NULL,
               "t.yaml:10:13: azure.roles[1].role 'B24988AC-6180-42A0-AB88-20F7382DD24C' is "
               "listed twice with scope clusterResourceGroups");

    /* the custom role */
#define CROLE AHEAD "  customRole:\n    name: \"nodes-{{cluster.name}}\"\n"
    assert_int_equal(load(CROLE "    actions: [Microsoft.Compute/disks/read]\n", &aks, NULL, NULL),
                     0);
    load_fails(AHEAD "  customRole:\n    actions: ['*']\n", &aks, NULL,
               "t.yaml:10:5: azure.customRole.name is missing");
    snprintf(big, sizeof(big), AHEAD "  customRole:\n    name: %0513d\n", 0);
    load_fails(big, &aks, NULL,
               "t.yaml:10:11: azure.customRole.name "
               "'0000000000000000000000000000000000000000000000000000000000000000000000000000000"
               "0000000000000...' is 513 characters, at most 512 are allowed");
    load_fails(CROLE "    scope: tenant\n", &aks, NULL,
               "t.yaml:11:12: azure.customRole.scope must be 'subscription' or "
               "'clusterResourceGroups', not 'tenant'");
    load_fails(CROLE, &aks, NULL,
               "t.yaml:10:5: azure.customRole.actions is missing: a custom role needs at least "
               "one action");
    load_fails(CROLE "    actions: []\n", &aks, NULL,
               "t.yaml:11:14: azure.customRole.actions is empty: a custom role needs at least one "
               "action");
    load_fails(CROLE "    actions: '*'\n", &aks, NULL,
               "t.yaml:11:14: azure.customRole: 'actions' must be a sequence, not a string");
    load_fails(CROLE "    actions:\n      - {a: b}\n", &aks, NULL,
               "t.yaml:12:9: azure.customRole.actions[0] must be a string, not a mapping");
    load_fails(CROLE "    actions:\n      -\n", &aks, NULL,
               "t.yaml:12:8: azure.customRole.actions[0] is empty");
    static const char *const not_actions[] = {
        "Microsoft.Compute/virtualMachines",
        "Microsoft/virtualMachines/read",
        "Microsoft.Compute//read",
        "Microsoft.Compute/virtual Machines/read",
        "Microsoft.Compute/virtualMachines*/read",
        "Microsoft.Compute/virtualMachines/read/",
        "ec2:RunInstances",
        "compute.instances.create",
        "*/",
        "**",
        ".Compute/disks/read",
        "Microsoft.Compute/disks/readd",
    };
    for (size_t i = 0; i < sizeof(not_actions) / sizeof(not_actions[0]); i++) {
        char want[1024];
        snprintf(big, sizeof(big), CROLE "    actions:\n      - \"%s\"\n", not_actions[i]);
        snprintf(want, sizeof(want),
                 "t.yaml:12:9: azure.customRole.actions[0] '%s' is not an Azure action: "
                 "PROVIDER/TYPE/.../VERB, the verb read, write, delete or action, '*' for a whole "
                 "part, as in 'Microsoft.Compute/virtualMachines/*' or "
                 "'Microsoft.Network/*/read'",
                 not_actions[i]);
        load_fails(big, &aks, NULL, want);
    }
    load_fails(CROLE "    actions:\n      - \"Microsoft.{{cluster.name}}/x/read\"\n", &aks, NULL,
               "t.yaml:12:9: azure.customRole.actions[0] 'Microsoft.aks-main/x/read' is not an "
               "Azure action: PROVIDER/TYPE/.../VERB, the verb read, write, delete or action, '*' "
               "for a whole part, as in 'Microsoft.Compute/virtualMachines/*' or "
               "'Microsoft.Network/*/read'");
    load_fails(CROLE
               "    actions:\n      - Microsoft.Compute/disks/write\n"
               "      - Microsoft.Compute/disks/read\n      - Microsoft.Compute/disks/write\n",
               &aks, NULL,
               "t.yaml:14:9: azure.customRole.actions[2] 'Microsoft.Compute/disks/write' is listed "
               "twice");
    load_fails(CROLE "    actions:\n      - Microsoft.Compute/disks/write\n"
                     "      - microsoft.compute/Disks/Write\n",
               &aks, NULL,
               "t.yaml:13:9: azure.customRole.actions[1] 'microsoft.compute/Disks/Write' is listed "
               "twice (as 'Microsoft.Compute/disks/write': action names are not case-sensitive)");
    /* checked when present, whatever the grant */
    load_fails(AHEAD "  grant: builtin\n  customRole:\n    name: r\n    actions: [read]\n", &aks,
               NULL,
               "t.yaml:12:15: azure.customRole.actions[0] 'read' is not an Azure action: "
               "PROVIDER/TYPE/.../VERB, the verb read, write, delete or action, '*' for a whole "
               "part, as in 'Microsoft.Compute/virtualMachines/*' or "
               "'Microsoft.Network/*/read'");

    /* all three sections: each is checked */
    load_fails(USER "azure:\n  application:\n    displayName: \"\"\n", &vars, NULL,
               "t.yaml:9:18: azure.application.displayName is empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_autoscaler_user),
        cmocka_unit_test(test_node_autoscaler_role),
        cmocka_unit_test(test_platform_access),
        cmocka_unit_test(test_profile_by_path),
        cmocka_unit_test(test_render_filters),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_role_errors),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_size_quotas),
        cmocka_unit_test(test_node_autoscaler_gcp),
        cmocka_unit_test(test_platform_access_gcp),
        cmocka_unit_test(test_gcp_only),
        cmocka_unit_test(test_gcp_overrides),
        cmocka_unit_test(test_gcp_errors),
        cmocka_unit_test(test_node_autoscaler_azure),
        cmocka_unit_test(test_platform_access_azure),
        cmocka_unit_test(test_azure_only),
        cmocka_unit_test(test_azure_overrides),
        cmocka_unit_test(test_azure_errors),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
