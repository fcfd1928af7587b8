/* Unit tests for agent/profile_outscale.c: the outscale section of both built-in profiles
 * rendered for a sample cluster, documents inline and from files, the access key's defaults,
 * profile_require, and the message of every rule, with its file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy.h"
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX CG_FIXTURES "/profiles"

static const struct profile_vars vars = {
    .cluster_name = "prod",
    .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
    .cluster_region = "eu-west-2",
    .cloud_account = "123456789012",
};

/* platform-access-outscale-policy.json as OUTSCALE should receive it. */
static const char *const platform_access_policy =
    "{\"Version\":\"2012-10-17\",\"Statement\":["
    "{\"Sid\":\"AccountLookups\",\"Effect\":\"Allow\",\"Action\":[\"api:ReadAccounts\","
    "\"api:ReadQuotas\"],\"Resource\":\"*\"},"
    "{\"Sid\":\"ReadOnlyDescriptions\",\"Effect\":\"Allow\",\"Action\":[\"api:ReadImages\","
    "\"api:ReadInternetServices\",\"api:ReadKeypairs\",\"api:ReadNatServices\",\"api:ReadNets\","
    "\"api:ReadNics\",\"api:ReadPublicIps\",\"api:ReadRouteTables\",\"api:ReadSecurityGroups\","
    "\"api:ReadSnapshots\",\"api:ReadSubnets\",\"api:ReadSubregions\",\"api:ReadTags\","
    "\"api:ReadVmTypes\",\"api:ReadVms\",\"api:ReadVolumes\"],\"Resource\":\"*\"},"
    "{\"Sid\":\"Creation\",\"Effect\":\"Allow\",\"Action\":[\"api:CreateImage\","
    "\"api:CreateInternetService\",\"api:CreateKeypair\",\"api:CreateNatService\","
    "\"api:CreateNet\",\"api:CreatePublicIp\",\"api:CreateRoute\",\"api:CreateRouteTable\","
    "\"api:CreateSecurityGroup\",\"api:CreateSecurityGroupRule\",\"api:CreateSubnet\","
    "\"api:CreateTags\",\"api:CreateVms\",\"api:CreateVolume\",\"api:LinkInternetService\","
    "\"api:LinkRouteTable\",\"api:LinkVolume\",\"api:StartVms\"],\"Resource\":\"*\"},"
    "{\"Sid\":\"DeletionAndModification\",\"Effect\":\"Allow\",\"Action\":[\"api:DeleteImage\","
    "\"api:DeleteInternetService\",\"api:DeleteKeypair\",\"api:DeleteNatService\","
    "\"api:DeleteNet\",\"api:DeletePublicIp\",\"api:DeleteRoute\",\"api:DeleteRouteTable\","
    "\"api:DeleteSecurityGroup\",\"api:DeleteSecurityGroupRule\",\"api:DeleteSubnet\","
    "\"api:DeleteTags\",\"api:DeleteVms\",\"api:DeleteVolume\",\"api:StopVms\","
    "\"api:UnlinkInternetService\",\"api:UnlinkRouteTable\",\"api:UnlinkVolume\","
    "\"api:UpdateNet\"],\"Resource\":\"*\"}]}";

/* node-autoscaler-outscale-policy.json as OUTSCALE should receive it. */
static const char *const node_autoscaler_policy =
    "{\"Version\":\"2012-10-17\",\"Statement\":["
    "{\"Sid\":\"ReadClusterResources\",\"Effect\":\"Allow\",\"Action\":[\"api:ReadImages\","
    "\"api:ReadKeypairs\",\"api:ReadSecurityGroups\",\"api:ReadSubnets\",\"api:ReadSubregions\","
    "\"api:ReadTags\",\"api:ReadVmTypes\",\"api:ReadVms\"],\"Resource\":\"*\"},"
    "{\"Sid\":\"ManageNodes\",\"Effect\":\"Allow\",\"Action\":[\"api:CreateTags\","
    "\"api:CreateVms\",\"api:DeleteTags\",\"api:DeleteVms\",\"api:StartVms\",\"api:StopVms\"],"
    "\"Resource\":\"*\"}]}";

static struct profile *builtin(const char *name, const struct profile_vars *v)
{
    struct profile *p = NULL;
    struct cg_err err = {0};
    int rc = profile_load(&p, name, CG_PROFILES_DIR, v, NULL, &err);
    if (rc != 0) {
        print_message("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(p);
    return p;
}

/* A profile from a buffer named "t.yaml"; policy files resolve against dir (NULL: none). */
static struct profile *load_ok_dir(const char *yaml, const char *dir, const struct profile_vars *v)
{
    struct profile *p = NULL;
    struct cg_err err = {0};
    int rc = profile_load_buffer(&p, yaml, strlen(yaml), "t.yaml", dir, v, NULL, &err);
    if (rc != 0) {
        print_message("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(p);
    return p;
}

static struct profile *load_ok(const char *yaml, const struct profile_vars *v)
{
    return load_ok_dir(yaml, NULL, v);
}

static void load_fails_dir(const char *yaml, const char *dir, const struct profile_vars *v,
                           const char *msg)
{
    struct profile *p = (struct profile *)1;
    struct cg_err err = {0};
    int rc = profile_load_buffer(&p, yaml, strlen(yaml), "t.yaml", dir, v, NULL, &err);
    if (rc == 0 || strcmp(err.msg, msg) != 0) {
        print_message("rc %d\nhave: %s\nwant: %s\n", rc, err.msg, msg);
    }
    if (rc == 0) {
        profile_free(p);
    }
    assert_int_equal(rc, CG_EINVAL);
    assert_int_equal(err.code, CG_EINVAL);
    assert_null(p);
    assert_string_equal(err.msg, msg);
}

static void load_fails(const char *yaml, const struct profile_vars *v, const char *msg)
{
    load_fails_dir(yaml, NULL, v, msg);
}

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

static void test_platform_access(void **state)
{
    (void)state;
    struct cg_err err = {0};
    struct profile *p = builtin("platform-access", &vars);
    const struct profile_outscale *o = &p->outscale;
    /* the other sections are still there */
    assert_true(p->aws.present);
    assert_true(p->gcp.present);
    assert_true(p->azure.present);
    assert_true(o->present);
    assert_string_equal(o->user_name, "platform-access-prod");
    assert_string_equal(o->policy.name, "PlatformAccess-prod");
    assert_string_equal(o->policy.description,
                        "Environment provisioning for cluster prod (managed by cloudgrant)");
    /* compact and in the file's order: this is what OUTSCALE receives */
    assert_string_equal(o->policy.document, platform_access_policy);
    policy_equals(o->policy.document, platform_access_policy);
    assert_null(strstr(o->policy.document, "Condition"));
    assert_true(policy_size_nonspace(o->policy.document) <= 5120);
    assert_int_equal(o->key_lifetime_days, 365);
    assert_int_equal(o->key_renew_days, 30);
    assert_int_equal(profile_require(p, "outscale", &err), 0);
    profile_free(p);
}

static void test_node_autoscaler(void **state)
{
    (void)state;
    struct cg_err err = {0};
    struct profile *p = builtin("node-autoscaler", &vars);
    const struct profile_outscale *o = &p->outscale;
    assert_true(p->aws.present);
    assert_true(o->present);
    assert_string_equal(o->user_name, "cast-osc-prod");
    assert_string_equal(o->policy.name, "CastOSCPolicy-prod");
    assert_string_equal(o->policy.description,
                        "Creates and removes the nodes of cluster prod (managed by cloudgrant)");
    assert_string_equal(o->policy.document, node_autoscaler_policy);
    /* no volume action: CreateVms makes the boot volume and DeleteVms removes it */
    assert_null(strstr(o->policy.document, "Volume"));
    assert_int_equal(o->key_lifetime_days, 365);
    assert_int_equal(o->key_renew_days, 30);
    assert_int_equal(profile_require(p, "outscale", &err), 0);
    profile_free(p);
}

/* The outscale section of a built-in, alone (the aws one has its own limit on the name). */
static int load_builtin_section(const char *name, const struct profile_vars *v, struct cg_err *err)
{
    char path[512];
    static char text[1 << 20];
    static char buf[1 << 16];
    struct profile *p = NULL;
    snprintf(path, sizeof(path), "%s/%s.yaml", CG_PROFILES_DIR, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *osc = strstr(text, "\noutscale:\n");
    assert_non_null(osc);
    snprintf(buf, sizeof(buf), "apiVersion: cloudgrant.io/v1alpha1\nkind: GrantProfile\nname: %s%s",
             name, osc);
    int rc = profile_load_buffer(&p, buf, strlen(buf), path, CG_PROFILES_DIR, v, NULL, err);
    profile_free(p);
    return rc;
}

/* The built-ins put the cluster's name in the user's: up to 48 characters for platform-access-
 * and 55 for cast-osc- fit, a longer one is refused before any call with the fix. */
static void test_builtin_cluster_name_limits(void **state)
{
    (void)state;
    static const struct {
        const char *profile;
        size_t fits;
    } cases[] = {{"platform-access", 48}, {"node-autoscaler", 55}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char cluster[80];
        struct cg_err err = {0};
        struct profile_vars v = vars;
        memset(cluster, 'c', sizeof(cluster));
        cluster[cases[i].fits] = '\0';
        v.cluster_name = cluster;
        assert_int_equal(load_builtin_section(cases[i].profile, &v, &err), 0);
        cluster[cases[i].fits] = 'c';
        cluster[cases[i].fits + 1] = '\0';
        assert_int_equal(load_builtin_section(cases[i].profile, &v, &err), CG_EINVAL);
        assert_non_null(strstr(err.msg, "is 65 characters, OUTSCALE allows 64 for a user name: "
                                        "keep the cluster's part short with a filter, as in "
                                        "'{{cluster.name | sha1 | trunc 8}}'"));
        assert_int_equal(strncmp(err.msg, CG_PROFILES_DIR "/", strlen(CG_PROFILES_DIR) + 1), 0);
        v.cluster_name = "team a";
        assert_int_equal(load_builtin_section(cases[i].profile, &v, &err), CG_EINVAL);
        assert_non_null(strstr(err.msg, "is not a valid OUTSCALE user name"));
    }
}

#define HEAD "apiVersion: cloudgrant.io/v1alpha1\nkind: GrantProfile\nname: test\n"
/* lines 4 to 8; a document follows on line 9 */
#define OHEAD                                                                                      \
    HEAD "outscale:\n  user:\n    name: \"u-{{cluster.name}}\"\n  policy:\n"                       \
         "    name: \"p-{{cluster.name}}\"\n"
#define READ_VMS                                                                                   \
    "{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:ReadVms, Resource: "        \
    "\"*\"}]}"
#define DOC(d) OHEAD "    document: " d "\n"
#define OSC    DOC(READ_VMS)

static void test_outscale_only(void **state)
{
    (void)state;
    struct cg_err err = {0};
    /* the smallest outscale section: a user, a policy written inline, the key's defaults */
    struct profile *p = load_ok(OSC, &vars);
    const struct profile_outscale *o = &p->outscale;
    assert_false(p->aws.present);
    assert_false(p->gcp.present);
    assert_false(p->azure.present);
    assert_true(o->present);
    assert_string_equal(o->user_name, "u-prod");
    assert_string_equal(o->policy.name, "p-prod");
    assert_null(o->policy.description);
    assert_string_equal(o->policy.document,
                        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
                        "\"Allow\",\"Action\":\"api:ReadVms\",\"Resource\":"
                        "\"*\"}]}");
    assert_int_equal(o->key_lifetime_days, 365);
    assert_int_equal(o->key_renew_days, 30);
    assert_int_equal(profile_require(p, "outscale", &err), 0);
    assert_int_equal(profile_require(p, "aws", &err), CG_EINVAL);
    assert_string_equal(err.msg, "profile 'test' has no aws section: the cluster runs on AWS; add "
                                 "one to the profile (docs/profiles.md) or use a profile that has "
                                 "one");
    assert_int_equal(profile_require(p, "azure", &err), CG_EINVAL);
    profile_free(p);

    /* JSON text, templates rendered in strings and keys, a description */
    p = load_ok(OHEAD "    description: \"Cluster {{cluster.name}} in {{cluster.region}}\"\n"
                      "    document: '{\"Version\": \"2012-10-17\", \"Statement\": {\"Sid\": "
                      "\"{{cluster.name}}\", \"Effect\": \"Deny\", \"NotAction\": [\"api:Delete*\","
                      " \"api:*Vms\"], \"Resource\": [\"*\"]}}'\n",
                &vars);
    assert_string_equal(p->outscale.policy.description, "Cluster prod in eu-west-2");
    assert_string_equal(p->outscale.policy.document,
                        "{\"Version\":\"2012-10-17\",\"Statement\":{\"Sid\":\"prod\",\"Effect\":"
                        "\"Deny\",\"NotAction\":[\"api:Delete*\",\"api:*Vms\"],\"Resource\":["
                        "\"*\"]}}");
    profile_free(p);

    /* a file beside the profile, exactly as for aws customer policies */
    p = load_ok_dir(DOC("node-autoscaler-outscale-policy.json"), CG_PROFILES_DIR, &vars);
    assert_string_equal(p->outscale.policy.document, node_autoscaler_policy);
    profile_free(p);

    /* the hashed form the built-ins suggest fits any cluster name */
    struct profile_vars odd = vars;
    odd.cluster_name = "team a/prod: a cluster name far longer than the sixty-four characters "
                       "of an OUTSCALE user name";
    p = load_ok(HEAD "outscale:\n  user:\n    name: \"platform-access-{{cluster.name | sha1 | "
                     "trunc 8}}\"\n  policy:\n    name: \"p-{{cluster.name | sha1 | trunc 8}}\"\n"
                     "    document: " READ_VMS "\n",
                &odd);
    assert_int_equal(strlen(p->outscale.user_name), strlen("platform-access-") + 8);
    profile_free(p);

    /* with every section, each is loaded */
    p = load_ok(HEAD "aws:\n  user:\n    name: u\ngcp:\n  serviceAccount:\n    id: sa-prod\n"
                     "azure:\n  application:\n    displayName: a\n  roles: [{role: Reader}]\n"
                     "outscale:\n  user:\n    name: u\n  policy:\n    name: p\n"
                     "    document: " READ_VMS "\n",
                &vars);
    assert_true(p->aws.present && p->gcp.present && p->azure.present && p->outscale.present);
    profile_free(p);
}

static void test_outscale_access_key(void **state)
{
    (void)state;
    struct profile *p = NULL;
    /* 0: no expiry date, nothing to renew before */
    p = load_ok(OSC "  accessKey:\n    lifetimeDays: 0\n", &vars);
    assert_int_equal(p->outscale.key_lifetime_days, 0);
    assert_int_equal(p->outscale.key_renew_days, 0);
    profile_free(p);
    p = load_ok(OSC "  accessKey:\n    lifetimeDays: 0\n    renewBeforeDays: 0\n", &vars);
    assert_int_equal(p->outscale.key_renew_days, 0);
    profile_free(p);
    /* the limits */
    p = load_ok(OSC "  accessKey:\n    lifetimeDays: 3650\n    renewBeforeDays: 3649\n", &vars);
    assert_int_equal(p->outscale.key_lifetime_days, 3650);
    assert_int_equal(p->outscale.key_renew_days, 3649);
    profile_free(p);
    p = load_ok(OSC "  accessKey:\n    lifetimeDays: 1\n    renewBeforeDays: 0\n", &vars);
    assert_int_equal(p->outscale.key_lifetime_days, 1);
    assert_int_equal(p->outscale.key_renew_days, 0);
    profile_free(p);
    /* the renewal's default, where it fits */
    p = load_ok(OSC "  accessKey:\n    lifetimeDays: 31\n", &vars);
    assert_int_equal(p->outscale.key_renew_days, 30);
    profile_free(p);
    p = load_ok(OSC "  accessKey:\n    renewBeforeDays: 7\n", &vars);
    assert_int_equal(p->outscale.key_lifetime_days, 365);
    assert_int_equal(p->outscale.key_renew_days, 7);
    profile_free(p);
    p = load_ok(OSC "  accessKey: {}\n", &vars);
    assert_int_equal(p->outscale.key_lifetime_days, 365);
    assert_int_equal(p->outscale.key_renew_days, 30);
    profile_free(p);

    /* the rules, at the value's position */
    static const char *const lifetimes[] = {"3651", "-1", "1.5", "x", "\"\"", "[1]", "9999999"};
    for (size_t i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), OSC "  accessKey:\n    lifetimeDays: %s\n", lifetimes[i]);
        load_fails(yaml, &vars,
                   "t.yaml:11:19: outscale.accessKey.lifetimeDays must be a number of days from 0 "
                   "to 3650 (0: the key does not expire)");
    }
    load_fails(OSC "  accessKey:\n    lifetimeDays: 90\n    renewBeforeDays: 90\n", &vars,
               "t.yaml:12:22: outscale.accessKey.renewBeforeDays must be a number of days from 0 "
               "to 89, less than lifetimeDays (90): else the key would be replaced as soon as it "
               "is made");
    load_fails(OSC "  accessKey:\n    renewBeforeDays: -1\n", &vars,
               "t.yaml:11:22: outscale.accessKey.renewBeforeDays must be a number of days from 0 "
               "to 364, less than lifetimeDays (365): else the key would be replaced as soon as "
               "it is made");
    load_fails(OSC "  accessKey:\n    lifetimeDays: 7\n", &vars,
               "t.yaml:11:19: outscale.accessKey.lifetimeDays 7 leaves no room for "
               "renewBeforeDays' default of 30 days: set renewBeforeDays below 7");
    load_fails(OSC "  accessKey:\n    lifetimeDays: 0\n    renewBeforeDays: 5\n", &vars,
               "t.yaml:12:22: outscale.accessKey.renewBeforeDays must be 0 when lifetimeDays is "
               "0: a key that does not expire is not renewed");
    load_fails(OSC "  accessKey:\n    lifetimeDays: 0\n    renewBeforeDays: x\n", &vars,
               "t.yaml:12:22: outscale.accessKey.renewBeforeDays must be 0 when lifetimeDays is "
               "0: a key that does not expire is not renewed");
    load_fails(OSC "  accessKey:\n    lifetime: 5\n", &vars,
               "t.yaml:11:5: outscale.accessKey: unknown key 'lifetime'");
    load_fails(OSC "  accessKey: true\n", &vars,
               "t.yaml:10:14: outscale: 'accessKey' must be a mapping, not a string");
}

static void test_outscale_structure_errors(void **state)
{
    (void)state;
    /* unknown keys, repeated keys, types */
    load_fails(OSC "  path: /x/\n", &vars, "t.yaml:10:3: outscale: unknown key 'path'");
    load_fails(OSC "  user: {name: v}\n", &vars, "t.yaml:10:3: outscale: key 'user' is repeated");
    load_fails(HEAD "outscale:\n  user:\n    name: u\n    path: /x/\n", &vars,
               "t.yaml:7:5: outscale.user: unknown key 'path'");
    load_fails(OSC "    tags: {a: b}\n", &vars, "t.yaml:10:5: outscale.policy: unknown key 'tags'");
    load_fails(HEAD "outscale: []\n", &vars,
               "t.yaml:4:11: 'outscale' must be a mapping, not a sequence");
    load_fails(HEAD "outscale:\n  user: u\n", &vars,
               "t.yaml:5:9: outscale: 'user' must be a mapping, not a string");
    load_fails(HEAD "outscale:\n  user:\n    name: [u]\n", &vars,
               "t.yaml:6:11: outscale.user: 'name' must be a string, not a sequence");
    load_fails(OHEAD "    description: {a: b}\n    document: " READ_VMS "\n", &vars,
               "t.yaml:9:18: outscale.policy: 'description' must be a string, not a mapping");
    load_fails(HEAD "outscale:\n  ? \n  user: {name: x}\n", &vars,
               "t.yaml:5:4: outscale: a key is empty");

    /* required parts */
    load_fails(HEAD "outscale: {}\n", &vars,
               "t.yaml:4:11: outscale.user is missing: the outscale section needs a user with a "
               "'name'");
    load_fails(HEAD "outscale:\n  user: {}\n", &vars, "t.yaml:5:9: outscale.user.name is missing");
    load_fails(HEAD "outscale:\n  user:\n    name:\n", &vars,
               "t.yaml:6:10: outscale.user.name is missing");
    load_fails(HEAD "outscale:\n  user:\n    name: u\n", &vars,
               "t.yaml:5:3: outscale.policy is missing: the outscale section needs a policy with "
               "a 'name' and a 'document'");
    load_fails(HEAD "outscale:\n  user:\n    name: u\n  policy:\n    document: " READ_VMS "\n",
               &vars, "t.yaml:8:5: outscale.policy.name is missing");
    load_fails(OHEAD, &vars, "t.yaml:8:5: outscale.policy.document is missing");
    load_fails(OHEAD "    document:\n", &vars, "t.yaml:9:14: outscale.policy.document is missing");
    /* no section at all */
    load_fails(HEAD, &vars,
               "t.yaml:1:1: the profile has no provider section ('aws', 'gcp', 'azure' or "
               "'outscale'): nothing to grant");
}

static void test_outscale_name_errors(void **state)
{
    (void)state;
    char yaml[2048];
    load_fails(HEAD "outscale:\n  user:\n    name: \"\"\n", &vars,
               "t.yaml:6:11: outscale.user.name is empty");
    load_fails(HEAD "outscale:\n  user:\n    name: \"team/u\"\n", &vars,
               "t.yaml:6:11: outscale.user.name 'team/u' is not a valid OUTSCALE user name: only "
               "letters, digits and +=,.@_- are allowed");
    /* the cluster's name breaks a template: the message says which, and what fits any name */
    struct profile_vars odd = vars;
    odd.cluster_name = "team a";
    load_fails(DOC(READ_VMS), &odd,
               "t.yaml:6:11: outscale.user.name 'u-team a' (rendered from 'u-{{cluster.name}}') "
               "is not a valid OUTSCALE user name: only letters, digits and +=,.@_- are allowed");
    struct profile_vars long_name = vars;
    long_name.cluster_name = "a-cluster-name-of-sixty-three-characters-which-is-long-abcdefgh";
    load_fails(DOC(READ_VMS), &long_name,
               "t.yaml:6:11: outscale.user.name "
               "'u-a-cluster-name-of-sixty-three-characters-which-is-long-abcdefgh' (rendered from "
               "'u-{{cluster.name}}') is 65 characters, OUTSCALE allows 64 for a user name: keep "
               "the cluster's part short with a filter, as in '{{cluster.name | sha1 | trunc 8}}'");
    snprintf(yaml, sizeof(yaml),
             HEAD "outscale:\n  user:\n    name: u\n  policy:\n    name: %0129d\n    document: "
                  "x\n",
             0);
    load_fails(yaml, &vars,
               "t.yaml:8:11: outscale.policy.name "
               "'00000000000000000000000000000000000000000000000000000000000000000000000000000000"
               "000000000000...' is 129 characters, OUTSCALE allows 128 for a policy name");
    snprintf(yaml, sizeof(yaml),
             HEAD "outscale:\n  user:\n    name: u\n  policy:\n    name: %0128d\n    document: "
                  "" READ_VMS "\n",
             0);
    struct profile *p = load_ok(yaml, &vars);
    assert_int_equal(strlen(p->outscale.policy.name), 128);
    profile_free(p);
    load_fails(HEAD "outscale:\n  user:\n    name: u\n  policy:\n    name: \"a b\"\n", &vars,
               "t.yaml:8:11: outscale.policy.name 'a b' is not a valid OUTSCALE policy name: only "
               "letters, digits and +=,.@_- are allowed");
    /* the description's limit */
    char desc[1100];
    memset(desc, 'd', 1001);
    desc[1001] = '\0';
    snprintf(yaml, sizeof(yaml), OHEAD "    description: %s\n    document: " READ_VMS "\n", desc);
    load_fails(yaml, &vars,
               "t.yaml:9:18: outscale.policy.description is 1001 bytes, at most 1000 are "
               "allowed");
    desc[1000] = '\0';
    snprintf(yaml, sizeof(yaml), OHEAD "    description: %s\n    document: " READ_VMS "\n", desc);
    p = load_ok(yaml, &vars);
    assert_int_equal(strlen(p->outscale.policy.description), 1000);
    profile_free(p);

    /* templates: a syntax error has a position; a value the cluster does not reveal names what
     * supplies it, OUTSCALE's own for the account */
    load_fails(HEAD "outscale:\n  user:\n    name: \"u-{{cluster.nam}}\"\n", &vars,
               "t.yaml:6:11: outscale.user.name: template 'u-{{cluster.nam}}': unknown variable "
               "'cluster.nam' (variables: cluster.name, cluster.id, cluster.region, "
               "cloud.account)");
    struct profile_vars no_account = vars;
    no_account.cloud_account = NULL;
    load_fails(HEAD "outscale:\n  user:\n    name: \"u-{{cloud.account}}\"\n", &no_account,
               "profile 'test': outscale.user.name needs {{cloud.account}}, which this cluster "
               "does not reveal: it is the OUTSCALE account id, from the OUTSCALE API "
               "(ReadAccounts): give the agent credentials that can call api:ReadAccounts");
    struct profile_vars no_name = vars;
    no_name.cluster_name = NULL;
    load_fails(DOC(READ_VMS), &no_name,
               "profile 'test': outscale.user.name needs {{cluster.name}}, which this cluster "
               "does not reveal: pass --cluster-name");
}

/* An inline document of 386 actions, with a Sid of sid_len characters. */
static void sized(char *yaml, size_t cap, int sid_len)
{
    size_t used = (size_t)snprintf(yaml, cap,
                                   OHEAD "    document:\n      Version: \"2012-10-17\"\n"
                                         "      Statement:\n        - Sid: %0*d\n"
                                         "          Effect: Allow\n"
                                         "          Resource: \"*\"\n          Action:\n",
                                   sid_len, 0);
    for (int i = 0; i < 386 && used < cap; i++) {
        used += (size_t)snprintf(yaml + used, cap - used, "            - api:Act%03d\n", i);
    }
    assert_true(used < cap);
}

static void test_outscale_document_errors(void **state)
{
    (void)state;
    char yaml[16384];
    /* what OUTSCALE enforces, at the document's position, with the statement's index */
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:ReadVms, "
                   "Resource: \"*\"}, {Effect: Allow, Action: [api:ReadVms, ec2:RunInstances], "
                   "Resource: \"*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[1]: 'Action' value "
               "'ec2:RunInstances' is not an OUTSCALE API action: 'api:ACTION' as in "
               "'api:ReadVms', '*' standing for any part of the name as in 'api:Read*' or "
               "'api:*'");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: \"*\", "
                   "Resource: \"*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[0]: 'Action' value '*' is not "
               "an OUTSCALE API action: 'api:ACTION' as in 'api:ReadVms', '*' standing for any "
               "part of the name as in 'api:Read*' or 'api:*'");
    /* EIM matches action names case-sensitively */
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:readVms, "
                   "Resource: \"*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[0]: 'Action' value "
               "'api:readVms' is not an OUTSCALE API action: 'api:ACTION' as in 'api:ReadVms', "
               "'*' standing for any part of the name as in 'api:Read*' or 'api:*'");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Deny, NotAction: [api:Read?], "
                   "Resource: \"*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[0]: 'NotAction' value "
               "'api:Read?' is not an OUTSCALE API action: 'api:ACTION' as in 'api:ReadVms', "
               "'*' standing for any part of the name as in 'api:Read*' or 'api:*'");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:DeleteVms, "
                   "Resource: \"arn:aws:ec2:*:*:instance/*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[0]: 'Resource' value "
               "'arn:aws:ec2:*:*:instance/*' is not \"*\": EIM has no resource-level "
               "permissions, so Resource must be \"*\"");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:DeleteVms, "
                   "NotResource: \"arn:aws:ec2:*:*:instance/i-1\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[0]: 'NotResource' is not for "
               "OUTSCALE: EIM has no resource-level permissions, write \"Resource\": \"*\"");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:DeleteVms, "
                   "Resource: \"*\", Condition: {StringEquals: {\"osc:ResourceTag/CreatedBy\": "
                   "user}}}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: Statement[0]: OUTSCALE policies have no "
               "'Condition': EIM applies a statement to every resource, whatever its tags");
    /* a file: named in the message (the fixture is an AWS policy) */
    load_fails_dir(DOC("good-policy.json"), FIX, &vars,
                   "t.yaml:9:15: outscale.policy.document (good-policy.json): Statement[0]: "
                   "'Action' value 'ec2:DescribeInstances' is not an OUTSCALE API action: "
                   "'api:ACTION' as in 'api:ReadVms', '*' standing for any part of the name as in "
                   "'api:Read*' or 'api:*'");
    load_fails_dir(DOC("no-such-policy.json"), FIX, &vars,
                   "t.yaml:9:15: outscale.policy.document: cannot open '" FIX
                   "/no-such-policy.json': No such file or directory");
    load_fails(DOC("osc-policy.json"), &vars,
               "t.yaml:9:15: outscale.policy.document names the file 'osc-policy.json', but this "
               "profile was not loaded from a file: write the document inline");
    /* the identity-policy grammar, as for aws documents */
    load_fails(DOC("'{\"Version\": \"2012-10-17\", \"Statement\": [}'"), &vars,
               "t.yaml:9:15: outscale.policy.document: invalid JSON at line 1 column 41: "
               "unexpected token near '}'");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Actions: api:ReadVms, "
                   "Resource: \"*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: not a policy document: Statement[0]: "
               "unknown element 'Actions'");
    load_fails(DOC("{Statement: [{Effect: Allow, Action: api:ReadVms, Resource: \"*\"}]}"), &vars,
               "t.yaml:9:15: outscale.policy.document: not a valid policy: 'Version' is missing: "
               "add \"Version\": \"2012-10-17\"");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: api:ReadVms}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: not a policy document: Statement[0]: needs "
               "'Resource' (or 'Principal' in a trust policy)");
    load_fails(DOC("{Version: \"2012-10-17\", Statement: [{Effect: Allow, Action: "
                   "\"api:{{cluster.nam}}\", Resource: \"*\"}]}"),
               &vars,
               "t.yaml:9:15: outscale.policy.document: template 'api:{{cluster.nam}}': unknown "
               "variable 'cluster.nam' (variables: cluster.name, cluster.id, cluster.region, "
               "cloud.account)");
    load_fails(DOC("[api:ReadVms]"), &vars,
               "t.yaml:9:15: outscale.policy.document must be a file name, JSON text or a "
               "mapping, not a sequence");

    /* OUTSCALE's size limit: 5120 characters without whitespace; 386 actions and a Sid of 10
     * characters make exactly 5120 */
    sized(yaml, sizeof(yaml), 10);
    struct profile *p = load_ok(yaml, &vars);
    assert_int_equal(policy_size_nonspace(p->outscale.policy.document), 5120);
    profile_free(p);
    sized(yaml, sizeof(yaml), 11);
    load_fails(yaml, &vars,
               "t.yaml:10:7: outscale.policy.document is 5121 characters without whitespace, "
               "OUTSCALE allows 5120 for a policy: list fewer actions, or use wildcards such as "
               "'api:Read*'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_platform_access),
        cmocka_unit_test(test_node_autoscaler),
        cmocka_unit_test(test_builtin_cluster_name_limits),
        cmocka_unit_test(test_outscale_only),
        cmocka_unit_test(test_outscale_access_key),
        cmocka_unit_test(test_outscale_structure_errors),
        cmocka_unit_test(test_outscale_name_errors),
        cmocka_unit_test(test_outscale_document_errors),
    };
    return cmocka_run_group_tests_name("profile_outscale", tests, NULL, NULL);
}
