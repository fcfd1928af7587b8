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
    load_fails(HEAD, &vars, NULL, "t.yaml:1:1: the profile has no 'aws' section: nothing to grant");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_autoscaler_user), cmocka_unit_test(test_node_autoscaler_role),
        cmocka_unit_test(test_platform_access),      cmocka_unit_test(test_profile_by_path),
        cmocka_unit_test(test_render_filters),       cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_structure_errors),     cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_template_errors),      cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_role_errors),          cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_size_quotas),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
