/* cloud/aws/query.c: the form encoder and the response parser on canned bodies (success
 * shapes, empty and nested lists, policy documents, errors, hostile XML), then whole calls
 * on a real loop against tests/support/http_mock (signing, retries, ExpiredToken, paging). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aws_creds.h"
#include "aws_query.h"
#include "cg_err.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_util.h"
#include "http_mock.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* ---- helpers ---------------------------------------------------------------------------- */

struct parsed {
    int rc;
    json_t *json;
    struct aws_error aerr;
    struct cg_err err;
};

static void parse(struct parsed *p, const char *body, long status, const char *action)
{
    memset(p, 0, sizeof(*p));
    p->rc = aws_query_parse_response(body, body ? strlen(body) : 0, status, action, &p->json,
                                     &p->aerr, &p->err);
    if (p->rc == 0) {
        assert_non_null(p->json);
        assert_true(json_is_object(p->json));
    } else {
        assert_null(p->json);
    }
}

static const char *jstr(json_t *root, const char *path)
{
    /* "User.Tags.0.Key": object keys and array indexes */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = root;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok != NULL && cur != NULL;
         tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur)) {
            cur = json_array_get(cur, (size_t)strtoul(tok, NULL, 10));
        } else {
            cur = json_object_get(cur, tok);
        }
    }
    return json_string_value(cur);
}

static json_t *jget(json_t *root, const char *key)
{
    return json_object_get(root, key);
}

/* ---- encoder ---------------------------------------------------------------------------- */

static void test_encode_basic(void **state)
{
    struct aws_param p[] = {
        {"UserName", "alice"}, {"Tags.member.1.Key", "team"}, {"Tags.member.1.Value", "a b"}};
    char *s = aws_query_encode_form("CreateUser", "2010-05-08", p, 3);
    assert_non_null(s);
    assert_string_equal(s, "Action=CreateUser&Version=2010-05-08&UserName=alice&"
                           "Tags.member.1.Key=team&Tags.member.1.Value=a%20b");
    free(s);
    s = aws_query_encode_form("GetCallerIdentity", "2011-06-15", NULL, 0);
    assert_string_equal(s, "Action=GetCallerIdentity&Version=2011-06-15");
    free(s);
}

static void test_encode_specials(void **state)
{
    struct aws_param p[] = {
        {"PolicyDocument", "{\"a\": \"b+c&d=e\"}"},
        {"Z", "-_.~*'()!/:é"},
        {"Empty", ""},
        {"Null", NULL},
        {"Ordered", "1"},
    };
    char *s = aws_query_encode_form("CreatePolicy", "2010-05-08", p, 5);
    assert_string_equal(s, "Action=CreatePolicy&Version=2010-05-08&"
                           "PolicyDocument=%7B%22a%22%3A%20%22b%2Bc%26d%3De%22%7D&"
                           "Z=-_.~%2A%27%28%29%21%2F%3A%C3%A9&Empty=&Null=&Ordered=1");
    free(s);
}

/* ---- parser: success shapes ------------------------------------------------------------- */

static const char create_user_xml[] =
    "<CreateUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
    "<CreateUserResult><User><Path>/</Path><UserName>cast-eks-prod</UserName>"
    "<UserId>AIDAEXAMPLE</UserId><Arn>arn:aws:iam::123456789012:user/cast-eks-prod</Arn>"
    "<CreateDate>2024-01-02T03:04:05Z</CreateDate><Tags><member><Key>team</Key>"
    "<Value>a b</Value></member><member><Key>env</Key><Value>prod</Value></member></Tags>"
    "</User></CreateUserResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>"
    "</CreateUserResponse>";

static void test_parse_create_user(void **state)
{
    struct parsed p;
    parse(&p, create_user_xml, 200, "CreateUser");
    assert_int_equal(p.rc, 0);
    assert_string_equal(jstr(p.json, "User.UserName"), "cast-eks-prod");
    assert_string_equal(jstr(p.json, "User.Path"), "/");
    assert_true(json_is_array(jget(jget(p.json, "User"), "Tags")));
    assert_int_equal(json_array_size(jget(jget(p.json, "User"), "Tags")), 2);
    assert_string_equal(jstr(p.json, "User.Tags.0.Key"), "team");
    assert_string_equal(jstr(p.json, "User.Tags.1.Value"), "prod");
    assert_null(jget(p.json, "ResponseMetadata")); /* only the Result is returned */
    assert_int_equal(p.aerr.status, 200);
    json_decref(p.json);
}

static void test_parse_pretty_prefixed_cdata(void **state)
{
    /* indentation, a namespace prefix, CDATA, character and predefined entities */
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<iam:GetUserResponse xmlns:iam=\"https://iam.amazonaws.com/doc/2010-05-08/\">\n"
        "  <iam:GetUserResult>\n"
        "    <iam:User>\n"
        "      <iam:UserName>bob</iam:UserName>\n"
        "      <iam:Path><![CDATA[/a&b/]]></iam:Path>\n"
        "      <iam:Arn>arn&amp;&#x41;&#66;&lt;</iam:Arn>\n"
        "    </iam:User>\n"
        "  </iam:GetUserResult>\n"
        "</iam:GetUserResponse>\n";
    struct parsed p;
    parse(&p, xml, 200, "GetUser");
    assert_int_equal(p.rc, 0);
    assert_string_equal(jstr(p.json, "User.UserName"), "bob");
    assert_string_equal(jstr(p.json, "User.Path"), "/a&b/");
    assert_string_equal(jstr(p.json, "User.Arn"), "arn&AB<");
    json_decref(p.json);
}

static void test_parse_empty_lists(void **state)
{
    static const char xml[] = "<ListUserTagsResponse><ListUserTagsResult><Tags/>"
                              "<IsTruncated>false</IsTruncated></ListUserTagsResult>"
                              "</ListUserTagsResponse>";
    struct parsed p;
    parse(&p, xml, 200, "ListUserTags");
    assert_int_equal(p.rc, 0);
    /* without the model an empty list and an empty string look alike: "" */
    assert_string_equal(jstr(p.json, "Tags"), "");
    assert_string_equal(jstr(p.json, "IsTruncated"), "false");
    json_decref(p.json);

    static const char one[] = "<ListUsersResponse><ListUsersResult><Users><member><UserName>u"
                              "</UserName></member></Users></ListUsersResult></ListUsersResponse>";
    parse(&p, one, 200, "ListUsers");
    assert_int_equal(json_array_size(jget(p.json, "Users")), 1);
    assert_string_equal(jstr(p.json, "Users.0.UserName"), "u");
    json_decref(p.json);

    /* a list of strings (ListUserPolicies PolicyNames) */
    static const char names[] = "<ListUserPoliciesResponse><ListUserPoliciesResult><PolicyNames>"
                                "<member>a</member><member>b</member></PolicyNames>"
                                "</ListUserPoliciesResult></ListUserPoliciesResponse>";
    parse(&p, names, 200, "ListUserPolicies");
    assert_string_equal(jstr(p.json, "PolicyNames.0"), "a");
    assert_string_equal(jstr(p.json, "PolicyNames.1"), "b");
    json_decref(p.json);
}

static void test_parse_nested_members_and_documents(void **state)
{
    /* GetAccountAuthorizationDetails-like: members in members, encoded documents inside */
    static const char xml[] =
        "<GetAccountAuthorizationDetailsResponse><GetAccountAuthorizationDetailsResult>"
        "<RoleDetailList><member><RoleName>r1</RoleName>"
        "<AssumeRolePolicyDocument>%7B%22Version%22%3A%222012-10-17%22%7D</"
        "AssumeRolePolicyDocument>"
        "<RolePolicyList><member><PolicyName>p</PolicyName>"
        "<PolicyDocument>%7B%22a%22%3A%22x+y%20%C3%A9%25%22%7D</PolicyDocument></member>"
        "</RolePolicyList><Tags><member><Key>k</Key><Value>v</Value></member></Tags>"
        "</member></RoleDetailList><IsTruncated>false</IsTruncated>"
        "</GetAccountAuthorizationDetailsResult></GetAccountAuthorizationDetailsResponse>";
    struct parsed p;
    parse(&p, xml, 200, "GetAccountAuthorizationDetails");
    assert_int_equal(p.rc, 0);
    assert_string_equal(jstr(p.json, "RoleDetailList.0.AssumeRolePolicyDocument"),
                        "{\"Version\":\"2012-10-17\"}");
    /* '+' is not a space in RFC 3986 */
    assert_string_equal(jstr(p.json, "RoleDetailList.0.RolePolicyList.0.PolicyDocument"),
                        "{\"a\":\"x+y é%\"}");
    assert_string_equal(jstr(p.json, "RoleDetailList.0.Tags.0.Value"), "v");
    json_decref(p.json);
}

static void test_parse_policy_version_document(void **state)
{
    static const char xml[] =
        "<GetPolicyVersionResponse><GetPolicyVersionResult><PolicyVersion>"
        "<Document>%7B%22Statement%22%3A%5B%5D%2C%22bad%22%3A%22%zz%25%22%7D</Document>"
        "<VersionId>v1</VersionId><IsDefaultVersion>true</IsDefaultVersion>"
        "</PolicyVersion></GetPolicyVersionResult></GetPolicyVersionResponse>";
    struct parsed p;
    parse(&p, xml, 200, "GetPolicyVersion");
    assert_int_equal(p.rc, 0);
    /* an escape that is not one stays as written */
    assert_string_equal(jstr(p.json, "PolicyVersion.Document"),
                        "{\"Statement\":[],\"bad\":\"%zz%\"}");
    json_decref(p.json);

    /* a document that decodes to bytes that are not UTF-8 is kept as sent */
    static const char raw[] = "<GetUserPolicyResponse><GetUserPolicyResult>"
                              "<PolicyDocument>%FF%FE</PolicyDocument><Other>%41</Other>"
                              "</GetUserPolicyResult></GetUserPolicyResponse>";
    parse(&p, raw, 200, "GetUserPolicy");
    assert_int_equal(p.rc, 0);
    assert_string_equal(jstr(p.json, "PolicyDocument"), "%FF%FE");
    assert_string_equal(jstr(p.json, "Other"), "%41"); /* only document keys are decoded */
    json_decref(p.json);
}

static void test_parse_no_result(void **state)
{
    static const char meta_only[] = "<AttachUserPolicyResponse xmlns=\"x\"><ResponseMetadata>"
                                    "<RequestId>1</RequestId></ResponseMetadata>"
                                    "</AttachUserPolicyResponse>";
    struct parsed p;
    parse(&p, meta_only, 200, "AttachUserPolicy");
    assert_int_equal(p.rc, 0);
    assert_int_equal(json_object_size(p.json), 0);
    json_decref(p.json);
    parse(&p, "<TagUserResponse><TagUserResult/></TagUserResponse>", 200, "TagUser");
    assert_int_equal(p.rc, 0);
    assert_int_equal(json_object_size(p.json), 0);
    json_decref(p.json);
}

static void test_parse_repeated_key_keeps_last(void **state)
{
    static const char xml[] = "<GetUserResponse><GetUserResult><User><UserName>a</UserName>"
                              "<UserName>b</UserName></User></GetUserResult></GetUserResponse>";
    struct parsed p;
    parse(&p, xml, 200, "GetUser");
    assert_string_equal(jstr(p.json, "User.UserName"), "b");
    json_decref(p.json);
}

/* ---- parser: errors --------------------------------------------------------------------- */

static void test_parse_error_document(void **state)
{
    static const char xml[] =
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>"
        "<Type>Sender</Type><Code>EntityAlreadyExists</Code>"
        "<Message>User with name cast-eks-prod already exists.</Message></Error>"
        "<RequestId>x</RequestId></ErrorResponse>";
    struct parsed p;
    parse(&p, xml, 409, "CreateUser");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_int_equal(p.err.code, CG_ESTATUS);
    assert_int_equal(p.err.http_status, 409);
    assert_int_equal(p.aerr.status, 409);
    assert_string_equal(p.aerr.code, "EntityAlreadyExists");
    assert_string_equal(p.aerr.message, "User with name cast-eks-prod already exists.");
    assert_string_equal(p.err.msg,
                        "IAM CreateUser: EntityAlreadyExists: User with name cast-eks-prod "
                        "already exists.");

    parse(&p,
          "<ErrorResponse><Error><Code>NoSuchEntity</Code><Message>The user with name x "
          "cannot be found.</Message></Error></ErrorResponse>",
          404, "GetUser");
    assert_int_equal(p.rc, CG_ENOTFOUND);
    assert_string_equal(p.aerr.code, "NoSuchEntity");

    parse(&p,
          "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security token "
          "included in the request is invalid.</Message></Error></ErrorResponse>",
          403, "GetCallerIdentity");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_string_equal(p.err.msg, "STS GetCallerIdentity: InvalidClientTokenId: The security "
                                   "token included in the request is invalid.");

    /* the EC2-style shape, and a code without a message */
    parse(&p, "<Response><Errors><Error><Code>Throttling</Code></Error></Errors></Response>", 400,
          "ListUsers");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.aerr.code, "Throttling");
    assert_string_equal(p.err.msg, "IAM ListUsers: Throttling");
}

static void test_parse_error_message_one_line(void **state)
{
    char xml[4096];
    char longmsg[1200];
    /* a message far over the cap, ending in multi-byte characters, with newlines and tabs */
    size_t n = 0;
    n += (size_t)snprintf(longmsg + n, sizeof(longmsg) - n, "line one\n\tline   two ");
    while (n + 2 < 1100) {
        longmsg[n++] = (char)0xC3;
        longmsg[n++] = (char)0xA9; /* é */
    }
    longmsg[n] = '\0';
    snprintf(xml, sizeof(xml),
             "<ErrorResponse><Error><Code> MalformedPolicyDocument\n</Code><Message>%s</Message>"
             "</Error></ErrorResponse>",
             longmsg);
    struct parsed p;
    parse(&p, xml, 400, "PutUserPolicy");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.aerr.code, "MalformedPolicyDocument");
    assert_null(strchr(p.aerr.message, '\n'));
    assert_null(strchr(p.err.msg, '\n'));
    assert_null(strchr(p.err.msg, '\t'));
    assert_true(strncmp(p.aerr.message, "line one line two ", 18) == 0);
    /* cut on a character boundary: the last byte completes an é */
    size_t len = strlen(p.aerr.message);
    assert_true(len < sizeof(p.aerr.message));
    assert_int_equal((unsigned char)p.aerr.message[len - 1], 0xA9);
    json_t *valid = json_stringn(p.aerr.message, len); /* still valid UTF-8 */
    assert_non_null(valid);
    json_decref(valid);
}

static void test_parse_invalid_bodies(void **state)
{
    struct parsed p;
    static const char *const bad[] = {
        "",
        "<CreateUserResponse><CreateUserResult><User><UserName>x", /* truncated */
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "not xml at all",
        "<OtherResponse><OtherResult/></OtherResponse>", /* wrong root */
        "<ErrorResponse><Error><Message>no code</Message></Error></ErrorResponse>",
        "<CreateUserResponse>\xff\xfe</CreateUserResponse>", /* not UTF-8 */
        "\xff\xfe<\0C\0",                                    /* UTF-16 */
        "<CreateUserResponse>&undefined;</CreateUserResponse>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse(&p, bad[i], 200, "CreateUser");
        assert_int_equal(p.rc, CG_EINVAL);
        assert_string_equal(p.err.msg, "IAM CreateUser: invalid response (HTTP 200)");
        assert_int_equal(p.aerr.code[0], '\0');
        parse(&p, bad[i], 502, "CreateUser");
        assert_int_equal(p.rc, CG_ESTATUS);
        assert_int_equal(p.err.http_status, 502);
        assert_string_equal(p.err.msg, "IAM CreateUser: invalid response (HTTP 502)");
    }
    /* a success document with an error status is not a success */
    parse(&p, create_user_xml, 500, "CreateUser");
    assert_int_equal(p.rc, CG_ESTATUS);
    /* NULL body */
    memset(&p, 0, sizeof(p));
    p.rc = aws_query_parse_response(NULL, 0, 200, "GetUser", &p.json, &p.aerr, &p.err);
    assert_int_equal(p.rc, CG_EINVAL);
}

static void test_parse_secret_never_in_message(void **state)
{
    static const char truncated[] =
        "<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><UserName>u</UserName>"
        "<AccessKeyId>AKIAEXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMISECRET";
    struct parsed p;
    parse(&p, truncated, 200, "CreateAccessKey");
    assert_int_equal(p.rc, CG_EINVAL);
    assert_null(strstr(p.err.msg, "SECRET"));
    assert_null(strstr(p.err.msg, "AKIA"));
}

static void test_parse_entity_attacks(void **state)
{
    static const char laughs[] =
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
        "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
        "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
        "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
        "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
        "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"
        "<GetUserResponse><GetUserResult><User><UserName>&lol9;</UserName></User>"
        "</GetUserResult></GetUserResponse>";
    static const char xxe[] =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<GetUserResponse><GetUserResult><User><UserName>&x;</UserName></User>"
        "</GetUserResult></GetUserResponse>";
    static const char xxe_net[] =
        "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"http://127.0.0.1:1/evil.dtd\">"
        "<GetUserResponse><GetUserResult><User><UserName>u</UserName></User>"
        "</GetUserResult></GetUserResponse>";
    static const char param[] =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>"
        "<GetUserResponse/>";
    const char *attacks[] = {laughs, xxe, xxe_net, param};
    clock_t t0 = clock();
    for (size_t i = 0; i < 4; i++) {
        struct parsed p;
        parse(&p, attacks[i], 200, "GetUser");
        assert_int_equal(p.rc, CG_EINVAL);
        assert_null(strstr(p.err.msg, "root:"));
    }
    assert_true(clock() - t0 < 2 * CLOCKS_PER_SEC);
}

static void test_parse_deep_and_big(void **state)
{
    /* nesting past the converter's cap (and past libxml2's own limit) */
    for (int depth = 70; depth <= 300; depth += 230) {
        char *xml = malloc((size_t)depth * 8 + 100);
        assert_non_null(xml);
        size_t n = (size_t)sprintf(xml, "<GetUserResponse><GetUserResult>");
        for (int i = 0; i < depth; i++) {
            n += (size_t)sprintf(xml + n, "<a>");
        }
        for (int i = 0; i < depth; i++) {
            n += (size_t)sprintf(xml + n, "</a>");
        }
        sprintf(xml + n, "</GetUserResult></GetUserResponse>");
        struct parsed p;
        parse(&p, xml, 200, "GetUser");
        assert_int_equal(p.rc, CG_EINVAL);
        free(xml);
    }
    /* over the size cap: refused before parsing */
    size_t big = (size_t)8 * 1024 * 1024 + 1;
    char *body = malloc(big + 1);
    assert_non_null(body);
    memset(body, ' ', big);
    body[big] = '\0';
    memcpy(body, "<GetUserResponse>", 17);
    json_t *j = NULL;
    struct cg_err err = {0};
    assert_int_equal(aws_query_parse_response(body, big, 200, "GetUser", &j, NULL, &err),
                     CG_ETOOBIG);
    assert_null(j);
    free(body);
}

/* ---- whole calls against http_mock ------------------------------------------------------ */

static int with_keys = 1;

static const char *fake_getenv(const char *name)
{
    if (with_keys && strcmp(name, "AWS_ACCESS_KEY_ID") == 0) {
        return "AKIDEXAMPLE";
    }
    if (with_keys && strcmp(name, "AWS_SECRET_ACCESS_KEY") == 0) {
        return "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    }
    if (strcmp(name, "AWS_EC2_METADATA_DISABLED") == 0) {
        return "true";
    }
    return NULL;
}

struct env {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    struct aws_creds_provider *creds;
    struct aws_query_client *c;
    char base[96];
};

struct qres {
    int calls;
    int code;
    long status;
    char aws_code[64];
    char msg[CG_ERR_MSG_MAX];
    json_t *json;
};

static void on_q(json_t *result, const struct aws_error *aerr, const struct cg_err *err, void *data)
{
    struct qres *r = data;
    r->calls++;
    if (err != NULL) {
        assert_non_null(aerr);
        assert_null(result);
        r->code = err->code;
        r->status = aerr->status;
        snprintf(r->aws_code, sizeof(r->aws_code), "%s", aerr->code);
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
    } else {
        assert_null(aerr);
        assert_non_null(result);
        json_decref(r->json);
        r->json = json_incref(result);
    }
}

static void client_with(struct env *e, const char *path, long timeout_ms, long consistency_ms,
                        long poll_ms)
{
    struct cg_err err = {0};
    char url[160];
    snprintf(url, sizeof(url), "%s%s", e->base, path);
    struct aws_query_config cfg = {.service = "iam",
                                   .version = "2010-05-08",
                                   .endpoint = url,
                                   .region = "us-east-1",
                                   .timeout_ms = timeout_ms,
                                   .consistency_ms = consistency_ms,
                                   .poll_ms = poll_ms};
    aws_query_client_free(e->c);
    e->c = NULL;
    if (aws_query_client_new(&e->c, e->h, e->creds, &cfg, &err) != 0) {
        fail_msg("client: %s", err.msg);
    }
}

static void client_for(struct env *e, const char *path, long timeout_ms)
{
    client_with(e, path, timeout_ms, 0, 0);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct cg_err err = {0};
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(cg_http_new(&e->h, &e->loop, &err), 0);
    e->m = http_mock_new(&e->loop);
    snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%d", http_mock_port(e->m));
    struct aws_env aenv = {.getenv = fake_getenv,
                           .home = "/nonexistent-cg-home",
                           .imds_endpoint = "http://127.0.0.1:1",
                           .sts_endpoint = "http://127.0.0.1:1"};
    with_keys = 1;
    if (aws_creds_chain_new(&e->creds, e->h, &aenv, &err) != 0) {
        fail_msg("creds: %s", err.msg);
    }
    client_for(e, "", 10000);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    aws_query_client_free(e->c);
    aws_creds_provider_free(e->creds);
    cg_http_close(e->h);
    http_mock_close(e->m);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void call_flags(struct env *e, const char *action, const struct aws_param *p, size_t n,
                       unsigned flags, struct qres *r)
{
    struct cg_err err = {0};
    memset(r, 0, sizeof(*r));
    if (aws_query_call_flags(e->c, action, p, n, flags, on_q, r, &err) != 0) {
        fail_msg("call: %s", err.msg);
    }
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static void call(struct env *e, const char *action, const struct aws_param *p, size_t n,
                 struct qres *r)
{
    call_flags(e, action, p, n, 0, r);
}

#define ERR_XML(code, msg)                                                                         \
    "<ErrorResponse "                                                                              \
    "xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type>"               \
    "<Code>" code "</Code><Message>" msg "</Message></Error><RequestId>1</RequestId>"              \
    "</ErrorResponse>"

static const char get_user_xml[] =
    "<GetUserResponse><GetUserResult><User><UserName>bob</UserName></User></GetUserResult>"
    "</GetUserResponse>";

static void test_call_request_shape(void **state)
{
    struct env *e = *state;
    client_for(e, "/prefix/", 10000);
    http_mock_push(e->m, &(struct http_mock_resp){.body = create_user_xml});
    struct aws_param p[] = {
        {"UserName", "cast-eks-prod"}, {"Tags.member.1.Key", "k"}, {"Tags.member.1.Value", "v w"}};
    struct qres r;
    call(e, "CreateUser", p, 3, &r);
    assert_int_equal(r.code, 0);
    assert_string_equal(jstr(r.json, "User.UserName"), "cast-eks-prod");
    assert_int_equal(http_mock_count(e->m), 1);
    assert_string_equal(http_mock_req_method(e->m, 0), "POST");
    assert_string_equal(http_mock_req_target(e->m, 0), "/prefix/");
    assert_string_equal(http_mock_req_header(e->m, 0, "Content-Type"),
                        "application/x-www-form-urlencoded; charset=utf-8");
    size_t len = 0;
    const char *body = http_mock_req_body(e->m, 0, &len);
    static const char want[] = "Action=CreateUser&Version=2010-05-08&UserName=cast-eks-prod&"
                               "Tags.member.1.Key=k&Tags.member.1.Value=v%20w";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(body, want, len);
    const char *auth = http_mock_req_header(e->m, 0, "Authorization");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "Credential=AKIDEXAMPLE/"));
    assert_non_null(strstr(auth, "/us-east-1/iam/aws4_request"));
    assert_non_null(strstr(auth, "SignedHeaders=content-type;host;x-amz-date,"));
    assert_non_null(http_mock_req_header(e->m, 0, "X-Amz-Date"));
    struct aws_query_stats st;
    aws_query_get_stats(e->c, &st);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.reads, 0);
    json_decref(r.json);
}

static void test_call_error_message(void **state)
{
    struct env *e = *state;
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 409,
                             .body = ERR_XML("EntityAlreadyExists",
                                             "User with name cast-eks-prod already exists."),
                         });
    struct aws_param p[] = {{"Path", "/x/"},
                            {"PolicyDocument", "{\"secret\":1}"},
                            {"PolicyArn", "arn:aws:iam::1:policy/p"},
                            {"UserName", "cast-eks-prod"}};
    struct qres r;
    call(e, "CreateUser", p, 4, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(r.status, 409);
    assert_string_equal(r.aws_code, "EntityAlreadyExists");
    assert_string_equal(r.msg, "IAM CreateUser 'cast-eks-prod': EntityAlreadyExists: User with "
                               "name cast-eks-prod already exists.");
    assert_int_equal(http_mock_count(e->m), 1);

    /* RoleName before PolicyArn before PolicyName; no naming parameter: no quotes */
    http_mock_push(
        e->m, &(struct http_mock_resp){.status = 404, .body = ERR_XML("NoSuchEntity", "gone")});
    struct aws_param q[] = {{"PolicyName", "pn"}, {"PolicyArn", "arn:p"}};
    call(e, "DeletePolicy", q, 2, &r);
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_string_equal(r.msg, "IAM DeletePolicy 'arn:p': NoSuchEntity: gone");
    http_mock_push(e->m,
                   &(struct http_mock_resp){.status = 400, .body = ERR_XML("InvalidInput", "bad")});
    call(e, "ListPolicies", NULL, 0, &r);
    assert_string_equal(r.msg, "IAM ListPolicies: InvalidInput: bad");

    /* a long name and a long message: cut to the message cap on a character boundary */
    static char name[400], body[2048];
    size_t n = 0;
    while (n + 2 < 300) {
        name[n++] = (char)0xC3;
        name[n++] = (char)0xA9;
    }
    name[n] = '\0';
    snprintf(body, sizeof(body), ERR_XML("MalformedPolicyDocument", "%s%s"), name, name);
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400, .body = body});
    struct aws_param l[] = {{"UserName", name}};
    call(e, "PutUserPolicy", l, 1, &r);
    assert_true(strlen(r.msg) < CG_ERR_MSG_MAX);
    assert_true(strlen(r.msg) > 400);
    json_t *valid = json_string(r.msg);
    assert_non_null(valid);
    json_decref(valid);
}

static void test_call_throttling_retried(void **state)
{
    struct env *e = *state;
    http_mock_push(e->m, &(struct http_mock_resp){.uses = 1,
                                                  .status = 400,
                                                  .body = ERR_XML("Throttling", "Rate exceeded")});
    http_mock_push(
        e->m, &(struct http_mock_resp){.uses = 1,
                                       .status = 409,
                                       .body = ERR_XML("ConcurrentModification", "try again")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = get_user_xml});
    struct aws_param p[] = {{"UserName", "bob"}};
    struct qres r;
    call(e, "GetUser", p, 1, &r);
    assert_int_equal(r.code, 0);
    assert_string_equal(jstr(r.json, "User.UserName"), "bob");
    assert_int_equal(http_mock_count(e->m), 3);
    json_decref(r.json);
}

/* IAM's eventual consistency: NoSuchEntity is waited out only when the caller asks, with
 * backoff, each wait on a timer; once the budget is spent the last answer is the error and
 * says how long it waited. */
static void test_call_consistency_retries(void **state)
{
    struct env *e = *state;
    client_with(e, "", 10000, 400, 20);
    struct aws_param p[] = {{"UserName", "bob"}, {"PolicyArn", "arn:aws:iam::1:policy/p"}};
    struct qres r;

    /* not asked: reported at once */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 404,
                                                  .body = ERR_XML("NoSuchEntity", "no user bob")});
    call(e, "AttachUserPolicy", p, 2, &r);
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_int_equal(http_mock_count(e->m), 1);

    /* asked: two misses, then the answer; the same request each time */
    http_mock_push(e->m, &(struct http_mock_resp){.uses = 2,
                                                  .status = 404,
                                                  .body = ERR_XML("NoSuchEntity", "no user bob")});
    http_mock_push(
        e->m, &(struct http_mock_resp){.body = "<AttachUserPolicyResponse><ResponseMetadata>"
                                               "</ResponseMetadata></AttachUserPolicyResponse>"});
    uint64_t t0 = cg_now_ms();
    call_flags(e, "AttachUserPolicy", p, 2, AWS_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, 0);
    assert_int_equal(http_mock_count(e->m), 4);
    /* 20 ms, then 40 ms, each less up to a quarter of jitter, and a millisecond of rounding */
    assert_true(cg_now_ms() - t0 >= 15 + 30 - 2);
    size_t l1 = 0, l3 = 0;
    const char *b1 = http_mock_req_body(e->m, 1, &l1);
    const char *b3 = http_mock_req_body(e->m, 3, &l3);
    assert_int_equal(l1, l3);
    assert_memory_equal(b1, b3, l1);
    json_decref(r.json);
    struct aws_query_stats st;
    aws_query_get_stats(e->c, &st);
    assert_int_equal(st.writes, 2); /* one per call, not per retry */

    /* another error is not waited for, even when NoSuchEntity would be */
    http_mock_push(
        e->m, &(struct http_mock_resp){.status = 409, .body = ERR_XML("EntityAlreadyExists", "x")});
    call_flags(e, "AttachUserPolicy", p, 2, AWS_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 5);

    /* never visible: the budget ends it, and the message says so on one line */
    http_mock_set_default(e->m, &(struct http_mock_resp){
                                    .status = 404, .body = ERR_XML("NoSuchEntity", "no user bob")});
    t0 = cg_now_ms();
    call_flags(e, "AttachUserPolicy", p, 2, AWS_RETRY_NOT_FOUND, &r);
    uint64_t spent = cg_now_ms() - t0;
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_string_equal(r.aws_code, "NoSuchEntity");
    assert_true(spent >= 400 && spent < 2000);
    assert_non_null(strstr(r.msg, "IAM AttachUserPolicy 'bob': NoSuchEntity: no user bob (still "
                                  "NoSuchEntity after "));
    size_t ml = strlen(r.msg);
    assert_true(ml > 3 && strcmp(r.msg + ml - 3, " s)") == 0);
    /* 20, 40, 80, 160 ms ... up to 400 ms: about six sends, fewer on a slow machine */
    int sent = http_mock_count(e->m) - 5;
    assert_true(sent >= 2 && sent <= 8);

    /* a trust policy naming a principal IAM cannot see yet */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .uses = 1,
                             .status = 400,
                             .body = ERR_XML("MalformedPolicyDocument",
                                             "Invalid principal in policy: \"AWS\":\"arn\"")});
    http_mock_push(e->m,
                   &(struct http_mock_resp){.body = "<CreateRoleResponse><CreateRoleResult>"
                                                    "<Role><RoleName>r</RoleName></Role>"
                                                    "</CreateRoleResult></CreateRoleResponse>"});
    struct aws_param rp[] = {{"RoleName", "r"}};
    int before = http_mock_count(e->m);
    call_flags(e, "CreateRole", rp, 1, AWS_RETRY_INVALID_PRINCIPAL, &r);
    assert_int_equal(r.code, 0);
    assert_int_equal(http_mock_count(e->m) - before, 2);
    json_decref(r.json);
    /* any other malformed document is the caller's mistake: not waited for */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400,
                                                  .body = ERR_XML("MalformedPolicyDocument",
                                                                  "Syntax errors in policy")});
    before = http_mock_count(e->m);
    call_flags(e, "CreateRole", rp, 1, AWS_RETRY_INVALID_PRINCIPAL, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m) - before, 1);
}

static void test_call_limit_exceeded_not_retried(void **state)
{
    struct env *e = *state;
    http_mock_set_default(
        e->m, &(struct http_mock_resp){
                  .status = 409,
                  .body = ERR_XML("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2"),
              });
    struct aws_param p[] = {{"UserName", "u"}};
    struct qres r;
    call(e, "CreateAccessKey", p, 1, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.aws_code, "LimitExceeded");
    assert_int_equal(http_mock_count(e->m), 1);
    assert_string_equal(r.msg, "IAM CreateAccessKey 'u': LimitExceeded: Cannot exceed quota for "
                               "AccessKeysPerUser: 2");
}

static void test_call_expired_token_refetches_once(void **state)
{
    struct env *e = *state;
    http_mock_push(e->m, &(struct http_mock_resp){.uses = 1,
                                                  .status = 403,
                                                  .body = ERR_XML("ExpiredToken",
                                                                  "The security token included in "
                                                                  "the request is expired")});
    http_mock_push(e->m, &(struct http_mock_resp){.uses = 1, .body = get_user_xml});
    struct aws_param p[] = {{"UserName", "bob"}};
    struct qres r;
    call(e, "GetUser", p, 1, &r);
    assert_int_equal(r.code, 0);
    assert_int_equal(http_mock_count(e->m), 2);
    json_decref(r.json);

    /* expired again after the refetch: reported, not looped on */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 403, .body = ERR_XML("ExpiredToken", "expired")});
    call(e, "GetUser", p, 1, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.aws_code, "ExpiredToken");
    assert_int_equal(http_mock_count(e->m), 4);
}

static void test_call_invalid_response(void **state)
{
    struct env *e = *state;
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 403,
                                       .headers = "Content-Type: text/html\r\n",
                                       .body = "<html><body>Access denied by proxy</body></html>"});
    struct aws_param p[] = {{"RoleName", "r"}};
    struct qres r;
    call(e, "GetRole", p, 1, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.aws_code, "");
    assert_string_equal(r.msg, "IAM GetRole 'r': invalid response (HTTP 403)");
}

static void test_call_timeout_and_transport(void **state)
{
    struct env *e = *state;
    client_for(e, "", 300);
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    struct aws_param p[] = {{"UserName", "bob"}};
    struct qres r;
    call(e, "GetUser", p, 1, &r);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_true(strncmp(r.msg, "IAM GetUser 'bob': ", 19) == 0);
}

static void test_call_no_credentials(void **state)
{
    struct env *e = *state;
    with_keys = 0;
    struct aws_param p[] = {{"UserName", "bob"}};
    struct qres r = {0};
    struct cg_err err = {0};
    int rc = aws_query_call(e->c, "GetUser", p, 1, on_q, &r, &err);
    if (rc == 0) {
        cg_http_run(e->h);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.code, CG_EAUTH);
        assert_true(strncmp(r.msg, "IAM GetUser 'bob': ", 19) == 0);
    } else {
        assert_int_equal(rc, CG_EAUTH);
        assert_true(strncmp(err.msg, "IAM GetUser 'bob': ", 19) == 0);
    }
    assert_int_equal(http_mock_count(e->m), 0);
    with_keys = 1;
}

static void test_call_bad_arguments(void **state)
{
    struct env *e = *state;
    struct cg_err err = {0};
    struct qres r = {0};
    assert_int_equal(aws_query_call(e->c, "Get User", NULL, 0, on_q, &r, &err), CG_EINVAL);
    assert_int_equal(aws_query_call(e->c, "", NULL, 0, on_q, &r, &err), CG_EINVAL);
    assert_int_equal(aws_query_call(e->c, "GetUser", NULL, 1, on_q, &r, &err), CG_EINVAL);
    assert_int_equal(r.calls, 0);
    struct aws_query_client *c = NULL;
    struct aws_query_config cfg = {.service = "iam", .version = "2010-05-08"};
    assert_int_equal(aws_query_client_new(&c, e->h, e->creds, &cfg, &err), CG_EINVAL);
    cfg.endpoint = "http://127.0.0.1:1/?x=1";
    assert_int_equal(aws_query_client_new(&c, e->h, e->creds, &cfg, &err), CG_EINVAL);
    assert_null(c);
}

#define PAGE(users, trunc, marker)                                                                 \
    "<ListUsersResponse><ListUsersResult><Users>" users "</Users><IsTruncated>" trunc              \
    "</IsTruncated>" marker "</ListUsersResult></ListUsersResponse>"
#define U(n) "<member><UserName>" n "</UserName></member>"

static void test_call_all_pages(void **state)
{
    struct env *e = *state;
    http_mock_push(
        e->m, &(struct http_mock_resp){.uses = 1,
                                       .body = PAGE(U("a") U("b"), "true", "<Marker>m1</Marker>")});
    /* fewer items than asked for, still truncated: only IsTruncated counts */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .uses = 1, .body = PAGE(U("c"), "true", "<Marker>m 2+</Marker>")});
    http_mock_push(
        e->m, &(struct http_mock_resp){.uses = 1, .body = PAGE("", "true", "<Marker>m3</Marker>")});
    http_mock_push(e->m, &(struct http_mock_resp){.uses = 1, .body = PAGE(U("d"), "false", "")});
    struct aws_param p[] = {{"MaxItems", "2"}, {"PathPrefix", "/"}};
    struct qres r = {0};
    struct cg_err err = {0};
    assert_int_equal(aws_query_call_all(e->c, "ListUsers", p, 2, "Users", on_q, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    json_t *users = jget(r.json, "Users");
    assert_int_equal(json_array_size(users), 4);
    assert_string_equal(jstr(r.json, "Users.0.UserName"), "a");
    assert_string_equal(jstr(r.json, "Users.3.UserName"), "d");
    assert_string_equal(jstr(r.json, "IsTruncated"), "false");
    assert_int_equal(http_mock_count(e->m), 4);
    size_t len = 0;
    const char *b1 = http_mock_req_body(e->m, 0, &len);
    assert_null(memmem(b1, len, "Marker", 6));
    const char *b2 = http_mock_req_body(e->m, 2, &len);
    static const char want[] =
        "Action=ListUsers&Version=2010-05-08&MaxItems=2&PathPrefix=%2F&Marker=m%202%2B";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(b2, want, len);
    struct aws_query_stats st;
    aws_query_get_stats(e->c, &st);
    assert_int_equal(st.reads, 4);
    assert_int_equal(st.writes, 0);
    json_decref(r.json);
}

static void test_call_all_repeated_marker(void **state)
{
    struct env *e = *state;
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.body = PAGE(U("a"), "true", "<Marker>same</Marker>")});
    struct qres r = {0};
    struct cg_err err = {0};
    assert_int_equal(aws_query_call_all(e->c, "ListUsers", NULL, 0, "Users", on_q, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_EINVAL);
    assert_non_null(strstr(r.msg, "repeated a Marker"));
    assert_int_equal(http_mock_count(e->m), 2);

    /* truncated without a Marker */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = PAGE(U("a"), "true", "")});
    memset(&r, 0, sizeof(r));
    assert_int_equal(aws_query_call_all(e->c, "ListUsers", NULL, 0, "Users", on_q, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.code, CG_EINVAL);
    assert_non_null(strstr(r.msg, "no Marker"));

    /* an error on a later page is the result */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 400, .body = ERR_XML("InvalidInput", "x")});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .uses = 1, .body = PAGE(U("a"), "true", "<Marker>n</Marker>")});
    memset(&r, 0, sizeof(r));
    assert_int_equal(aws_query_call_all(e->c, "ListUsers", NULL, 0, "Users", on_q, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.aws_code, "InvalidInput");
    assert_null(r.json);
}

int main(void)
{
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    struct cg_err err = {0};
    if (cg_http_global_init(&err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_basic),
        cmocka_unit_test(test_encode_specials),
        cmocka_unit_test(test_parse_create_user),
        cmocka_unit_test(test_parse_pretty_prefixed_cdata),
        cmocka_unit_test(test_parse_empty_lists),
        cmocka_unit_test(test_parse_nested_members_and_documents),
        cmocka_unit_test(test_parse_policy_version_document),
        cmocka_unit_test(test_parse_no_result),
        cmocka_unit_test(test_parse_repeated_key_keeps_last),
        cmocka_unit_test(test_parse_error_document),
        cmocka_unit_test(test_parse_error_message_one_line),
        cmocka_unit_test(test_parse_invalid_bodies),
        cmocka_unit_test(test_parse_secret_never_in_message),
        cmocka_unit_test(test_parse_entity_attacks),
        cmocka_unit_test(test_parse_deep_and_big),
        cmocka_unit_test_setup_teardown(test_call_request_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_error_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_throttling_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_limit_exceeded_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_consistency_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_expired_token_refetches_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_invalid_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout_and_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_no_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_repeated_marker, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cg_http_global_cleanup();
    return rc;
}
