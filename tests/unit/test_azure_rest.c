/* cloud/azure/rest.c: the response parser on canned bodies (success, Graph's and ARM's error
 * shapes, non-JSON errors, hostile JSON, caps), then whole calls on a real loop against
 * tests/support/http_mock with a fake token source (azure_auth_fake.c): the bearer token of
 * the right resource and the 401 refresh, engine retries with Retry-After, replication
 * retries, pagination and hostile next-page links, endpoint overrides, paths, headers, stats
 * and what the debug log may show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure_rest.h"
#include "azure_auth_fake.h"
#include "cg_err.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_log.h"
#include "cg_util.h"
#include "http_mock.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- parser ----------------------------------------------------------------------------- */

struct parsed {
    int rc;
    json_t *json;
    struct azure_error a;
    struct cg_err err;
};

static void parse_n(struct parsed *p, const char *body, size_t len, long status, const char *label)
{
    memset(p, 0, sizeof(*p));
    p->rc = azure_rest_parse_response(body, len, status, label, &p->json, &p->a, &p->err);
    if (p->rc == 0) {
        assert_non_null(p->json);
        assert_true(json_is_object(p->json));
    } else {
        assert_null(p->json);
        assert_int_equal(p->err.code, p->rc);
        assert_true(p->err.msg[0] != '\0');
        assert_null(strpbrk(p->err.msg, "\r\n"));
        assert_int_equal(p->a.status, status);
        assert_int_equal(p->err.http_status, status);
        assert_true(strncmp(p->err.msg, "Azure", 5) == 0);
    }
}

#define assert_prefix(s, prefix) assert_memory_equal((s), (prefix), strlen(prefix))

static void parse(struct parsed *p, const char *body, long status, const char *label)
{
    parse_n(p, body, body ? strlen(body) : 0, status, label);
}

static void parsed_free(struct parsed *p)
{
    json_decref(p->json);
    p->json = NULL;
}

#define AERR(code, msg) "{\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}"

#define GRAPH_NOT_FOUND                                                                            \
    "{\"error\":{\"code\":\"Request_ResourceNotFound\",\"message\":\"Resource "                    \
    "'3f2a' does not exist or one of its queried reference-property objects are not present.\","   \
    "\"innerError\":{\"date\":\"2026-11-22T10:00:00\",\"request-id\":\"INNER-REQUEST-ID\","        \
    "\"client-request-id\":\"INNER-CLIENT-ID\"}}}"

#define ARM_DENIED                                                                                 \
    "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"The client 'c1' with object id "   \
    "'o1' does not have authorization to perform action "                                          \
    "'Microsoft.Authorization/roleAssignments/write' over scope '/subscriptions/s'.\","            \
    "\"target\":\"t\",\"details\":[{\"code\":\"DETAIL-CODE\",\"message\":\"DETAIL-MESSAGE\"}]}}"

#define NO_BACKING                                                                                 \
    "{\"error\":{\"code\":\"Request_BadRequest\",\"message\":\"The appId "                         \
    "'0b1c' of the service principal does not reference a valid application object.\","            \
    "\"innerError\":{\"request-id\":\"r\"}}}"

static void test_parse_success(void **state)
{
    struct parsed p;
    parse(&p, "{\"id\":\"3f2a\",\"appId\":\"0b1c\",\"n\":[1,2]}", 201, "create application 'a'");
    assert_int_equal(p.rc, 0);
    assert_string_equal(json_string_value(json_object_get(p.json, "appId")), "0b1c");
    parsed_free(&p);
    parse(&p, "\n{\n  \"value\": []\n}\n", 200, "x");
    assert_int_equal(p.rc, 0);
    assert_true(json_is_array(json_object_get(p.json, "value")));
    parsed_free(&p);
}

static void test_parse_empty_body(void **state)
{
    static const char *const bodies[] = {"", " \r\n\t ", NULL};
    for (size_t i = 0; i < 3; i++) {
        struct parsed p;
        parse(&p, bodies[i], i == 2 ? 200 : 204, "update application 'a'");
        assert_int_equal(p.rc, 0);
        assert_int_equal(json_object_size(p.json), 0);
        parsed_free(&p);
    }
}

static void test_parse_2xx_not_json(void **state)
{
    static const char *const bodies[] = {
        "ok",      "[1,2]",         "\"str\"", "{\"a\":1} x",
        "{\"a\":", "<html></html>", "null",    "{\"a\":\"\\u0000\"}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct parsed p;
        parse(&p, bodies[i], 200, "list applications");
        assert_int_equal(p.rc, CG_EINVAL);
        assert_string_equal(p.err.msg, "Azure list applications: invalid response (HTTP 200)");
        assert_string_equal(p.a.code, "");
    }
}

static void test_parse_graph_errors(void **state)
{
    struct parsed p;
    parse(&p, GRAPH_NOT_FOUND, 404, "add password to '3f2a'");
    assert_int_equal(p.rc, CG_ENOTFOUND);
    assert_string_equal(p.a.code, "Request_ResourceNotFound");
    assert_string_equal(p.a.message, "Resource '3f2a' does not exist or one of its queried "
                                     "reference-property objects are not present.");
    assert_string_equal(p.err.msg,
                        "Azure add password to '3f2a': Request_ResourceNotFound: Resource '3f2a' "
                        "does not exist or one of its queried reference-property objects are not "
                        "present.");
    /* innerError stays out */
    assert_null(strstr(p.err.msg, "INNER"));
    assert_null(strstr(p.a.message, "INNER"));

    static const struct {
        long status;
        const char *code;
        int errc;
    } cases[] = {
        {403, "Authorization_RequestDenied", CG_EAUTH},
        {401, "InvalidAuthenticationToken", CG_EAUTH},
        {400, "Request_BadRequest", CG_ESTATUS},
        {409, "Directory_ConcurrencyViolation", CG_ESTATUS},
        {429, "TooManyRequests", CG_ESTATUS},
        {503, "serviceNotAvailable", CG_ESTATUS},
        {404, "Request_ResourceNotFound", CG_ENOTFOUND},
        {404, "ResourceGroupNotFound", CG_ENOTFOUND},
        {409, "RoleAssignmentExists", CG_ESTATUS},
        {400, "PrincipalNotFound", CG_ESTATUS},
        {500, "InternalServerError", CG_ESTATUS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"m\"}}",
                 cases[i].code);
        parse(&p, body, cases[i].status, "x");
        assert_int_equal(p.rc, cases[i].errc);
        assert_string_equal(p.a.code, cases[i].code);
        assert_string_equal(p.a.message, "m");
        char want[128];
        snprintf(want, sizeof(want), "Azure x: %s: m", cases[i].code);
        assert_string_equal(p.err.msg, want);
    }
    /* no code: the HTTP status stands in; no message: the code alone */
    parse(&p, "{\"error\":{\"message\":\"gone\"}}", 404, "get 'a'");
    assert_int_equal(p.rc, CG_ENOTFOUND);
    assert_string_equal(p.a.code, "");
    assert_string_equal(p.err.msg, "Azure get 'a': HTTP 404: gone");
    parse(&p, "{\"error\":{\"code\":\"Request_BadRequest\"}}", 400, NULL);
    assert_string_equal(p.err.msg, "Azure: Request_BadRequest");
}

static void test_parse_arm_errors(void **state)
{
    struct parsed p;
    parse(&p, ARM_DENIED, 403, "create role assignment 'Contributor' on /subscriptions/s");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_int_equal(p.a.status, 403);
    assert_string_equal(p.a.code, "AuthorizationFailed");
    assert_string_equal(p.err.msg,
                        "Azure create role assignment 'Contributor' on /subscriptions/s: "
                        "AuthorizationFailed: The client 'c1' with object id 'o1' does not have "
                        "authorization to perform action "
                        "'Microsoft.Authorization/roleAssignments/write' over scope "
                        "'/subscriptions/s'.");
    assert_null(strstr(p.err.msg, "DETAIL"));
    /* a bare {"code","message"}, as some resource providers answer */
    parse(&p, "{\"code\":\"InvalidResourceType\",\"message\":\"no such type\"}", 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.a.code, "InvalidResourceType");
    assert_string_equal(p.err.msg, "Azure x: InvalidResourceType: no such type");
    parse(&p, "{\"code\":\"NotFound\",\"message\":\"m\"}", 404, "x");
    assert_int_equal(p.rc, CG_ENOTFOUND);
    /* but only with both: a lone code is not an error body */
    parse(&p, "{\"code\":\"NotFound\"}", 404, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "Azure x: invalid response (HTTP 404)");
}

static void test_parse_non_api_errors(void **state)
{
    struct parsed p;
    parse(&p, "<html><body>502 Bad Gateway</body></html>", 502, "list role assignments");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.a.code, "");
    assert_string_equal(p.err.msg, "Azure list role assignments: invalid response (HTTP 502)");
    parse(&p, "", 500, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    /* a 404 page from a wrong endpoint says nothing about the resource */
    parse(&p, "Not Found", 404, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    /* 401 and 403 stay auth failures without an error body; OAuth's shape is not the APIs' */
    parse(&p, "", 401, "x");
    assert_int_equal(p.rc, CG_EAUTH);
    parse(&p, "{\"error\":\"invalid_token\",\"error_description\":\"expired\"}", 401, "x");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_string_equal(p.err.msg, "Azure x: invalid response (HTTP 401)");
    parse(&p, "<html>forbidden</html>", 403, "x");
    assert_int_equal(p.rc, CG_EAUTH);
    parse(&p, "{\"error\":{}}", 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "Azure x: invalid response (HTTP 400)");
    parse(&p, "{\"error\":{\"code\":5,\"message\":[]}}", 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "Azure x: invalid response (HTTP 400)");
    parse(&p, "{\"a\":1}", 302, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    parse(&p, "{}", 0, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
}

static int utf8_valid(const char *s)
{
    json_t *j = json_string(s); /* jansson checks UTF-8 */
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

static void test_parse_hostile(void **state)
{
    struct parsed p;
    /* wrong types and hostile identifiers */
    static const char *const bodies[] = {
        "{\"error\":5}",
        "{\"error\":[]}",
        "{\"error\":{\"code\":\"lower case?\",\"message\":null}}",
        "{\"error\":{\"code\":\"WAY_TOO_LONG_ERROR_CODE_FOR_THE_FIELD_XXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
        "XXXXXXXX\",\"message\":\"m\"}}",
        "{\"error\":{\"code\":\"evil\\nheader\",\"message\":\"m\"}}",
        "\xff\xfe{\"error\":{}}",
        "{\"error\":{\"code\":\"C\",\"message\":\"\xc3\x28\"}}",
        "{\"error\":{\"code\":\"C\",\"message\":\"nul\\u0000inside\"}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        parse(&p, bodies[i], 500, "x");
        assert_int_equal(p.rc, CG_ESTATUS);
        assert_true(strlen(p.a.code) < sizeof(p.a.code));
        for (const char *c = p.a.code; *c; c++) {
            assert_non_null(
                strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", *c));
        }
        assert_null(strpbrk(p.a.message, "\r\n"));
    }

    /* control characters and line breaks in the message and the label: one line */
    parse(&p, "{\"error\":{\"code\":\"C\",\"message\":\"a\\nb\\r\\n\\tc\\u0007d  \"}}", 500,
          "x\ny");
    assert_string_equal(p.a.message, "a b c?d");
    assert_string_equal(p.err.msg, "Azure x y: C: a b c?d");

    /* a long message is cut with "...", at a character boundary */
    size_t n = 20000;
    char *big = malloc(n + 100);
    assert_non_null(big);
    strcpy(big, "{\"error\":{\"code\":\"C\",\"message\":\"");
    size_t o = strlen(big);
    for (size_t i = 0; i < n / 2; i++) {
        big[o++] = '\xc3'; /* U+00E9 */
        big[o++] = '\xa9';
    }
    strcpy(big + o, "\"}}");
    parse(&p, big, 500, "x");
    assert_true(strlen(p.a.message) < sizeof(p.a.message));
    assert_true(strlen(p.a.message) > sizeof(p.a.message) - 8);
    assert_string_equal(p.a.message + strlen(p.a.message) - 3, "...");
    assert_true(utf8_valid(p.a.message));
    free(big);

    /* nesting: refused over 128 levels, also inside an error body; brackets in strings do not
     * count */
    n = 200000;
    big = malloc(n * 2 + 1);
    assert_non_null(big);
    memset(big, '[', n);
    memset(big + n, ']', n);
    big[2 * n] = '\0';
    parse(&p, big, 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);
    parse(&p, big, 500, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    free(big);
    char nest[700];
    for (int depth = 127; depth <= 129; depth++) {
        /* {"a": [ ... ]} is depth + 1 levels */
        strcpy(nest, "{\"a\":");
        o = strlen(nest);
        for (int i = 0; i < depth; i++) {
            nest[o++] = '[';
        }
        for (int i = 0; i < depth; i++) {
            nest[o++] = ']';
        }
        strcpy(nest + o, "}");
        parse(&p, nest, 200, "x");
        assert_int_equal(p.rc, depth + 1 <= 128 ? 0 : CG_EINVAL);
        parsed_free(&p);
    }
    strcpy(nest, "{\"error\":{\"code\":\"C\",\"x\":");
    o = strlen(nest);
    for (int i = 0; i < 130; i++) {
        nest[o++] = '[';
    }
    for (int i = 0; i < 130; i++) {
        nest[o++] = ']';
    }
    strcpy(nest + o, "}}");
    parse(&p, nest, 500, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "Azure x: invalid response (HTTP 500)");
    parse(&p,
          "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[\"}",
          200, "x");
    assert_int_equal(p.rc, 0);
    parsed_free(&p);

    /* bad UTF-8 and escaped NULs in a success answer */
    parse(&p, "{\"displayName\":\"\xc3\x28\"}", 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);
    parse(&p, "{\"displayName\":\"\xed\xa0\x80\"}", 200, "x"); /* a UTF-16 surrogate */
    assert_int_equal(p.rc, CG_EINVAL);
    parse(&p, "{\"displayName\":\"a\\u0000b\"}", 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);
    parse_n(&p, "{\"a\":1}\0{", 9, 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);

    /* over 8 MiB: too big, whatever it is */
    n = (size_t)8 * 1024 * 1024 + 1;
    big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    parse_n(&p, big, n, 200, "x");
    assert_int_equal(p.rc, CG_ETOOBIG);
    assert_string_equal(p.err.msg, "Azure x: response too large (HTTP 200)");
    parse_n(&p, big, n, 404, "x");
    assert_int_equal(p.rc, CG_ETOOBIG);
    parse_n(&p, big, n - 1, 200, "x"); /* 8 MiB exactly: parsed (not closed: invalid) */
    assert_int_equal(p.rc, CG_EINVAL);
    free(big);

    struct cg_err err = {0};
    assert_int_equal(azure_rest_parse_response("{}", 2, 200, "x", NULL, NULL, &err), CG_EINVAL);
    /* aerr may be NULL */
    json_t *j = NULL;
    assert_int_equal(azure_rest_parse_response(GRAPH_NOT_FOUND, strlen(GRAPH_NOT_FOUND), 404, "x",
                                               &j, NULL, &err),
                     CG_ENOTFOUND);
    assert_null(j);
}

static void test_parse_body_never_in_message(void **state)
{
    struct parsed p;
    parse(&p, "{\"secretText\":\"U0VDUkVU\",\"error\":{\"code\":\"C\"}}", 500, "x");
    assert_null(strstr(p.err.msg, "U0VDUkVU"));
    parse(&p, "{\"secretText\":\"U0VDUkVU\"", 200, "x");
    assert_null(strstr(p.err.msg, "U0VDUkVU"));
    parse(&p, "{\"secretText\":\"U0VDUkVU\"}", 502, "x");
    assert_null(strstr(p.err.msg, "U0VDUkVU"));
}

/* ---- whole calls against http_mock ------------------------------------------------------ */

static char env_graph[256], env_arm[256];

static const char *fake_getenv(const char *name)
{
    if (strcmp(name, "CLOUDGRANT_AZURE_GRAPH_URL") == 0) {
        return env_graph;
    }
    if (strcmp(name, "CLOUDGRANT_AZURE_ARM_URL") == 0) {
        return env_arm;
    }
    return NULL;
}

struct env {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    struct azure_auth *auth;
    struct azure_rest *c;
    char base[96]; /* http://127.0.0.1:<port> */
};

struct res {
    int calls;
    int code;
    long status;
    long http_status;
    struct azure_error a;
    char msg[CG_ERR_MSG_MAX];
    json_t *json;
};

static void on_res(json_t *result, long status, const struct azure_error *aerr,
                   const struct cg_err *err, void *data)
{
    struct res *r = data;
    r->calls++;
    r->status = status;
    if (err != NULL) {
        assert_non_null(aerr);
        assert_null(result);
        r->code = err->code;
        r->http_status = err->http_status;
        r->a = *aerr;
        assert_int_equal(aerr->status, status);
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
        assert_true(strncmp(err->msg, "Azure", 5) == 0);
        assert_null(strpbrk(err->msg, "\r\n"));
    } else {
        assert_null(aerr);
        assert_non_null(result);
        json_decref(r->json);
        r->json = json_incref(result);
    }
}

static void res_clear(struct res *r)
{
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static int client_with(struct env *e, const struct azure_rest_config *cfg, struct cg_err *err)
{
    azure_rest_free(e->c);
    e->c = NULL;
    struct azure_rest_config c = *cfg;
    c.getenv = fake_getenv;
    return azure_rest_new(&e->c, e->h, e->auth, &c, err);
}

static void client(struct env *e, long consistency_ms, long poll_ms)
{
    struct cg_err err = {0};
    struct azure_rest_config cfg = {
        .timeout_ms = 10000, .consistency_ms = consistency_ms, .poll_ms = poll_ms};
    if (client_with(e, &cfg, &err) != 0) {
        fail_msg("client: %s", err.msg);
    }
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
    snprintf(env_graph, sizeof(env_graph), "%s/", e->base);
    snprintf(env_arm, sizeof(env_arm), "%s", e->base);
    assert_int_equal(azure_auth_new(&e->auth, e->h, NULL, &err), 0);
    client(e, 2000, 10);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    azure_rest_free(e->c);
    azure_auth_free(e->auth);
    if (e->h != NULL) {
        cg_http_close(e->h);
    }
    http_mock_close(e->m);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void call_h(struct env *e, enum azure_api api, const char *method, const char *path,
                   json_t *body, const char *const *headers, const char *label, int flags,
                   struct res *r)
{
    struct cg_err err = {0};
    res_clear(r);
    if (azure_rest_call(e->c, api, method, path, body, headers, label, flags, on_res, r, &err) !=
        0) {
        fail_msg("call: %s", err.msg);
    }
    assert_int_equal(r->calls, 0); /* never from inside the call */
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static void call(struct env *e, enum azure_api api, const char *method, const char *path,
                 json_t *body, const char *label, int flags, struct res *r)
{
    call_h(e, api, method, path, body, NULL, label, flags, r);
}

static void call_all(struct env *e, enum azure_api api, const char *path,
                     const char *const *headers, const char *label, int flags, struct res *r)
{
    struct cg_err err = {0};
    res_clear(r);
    if (azure_rest_call_all(e->c, api, path, headers, label, flags, on_res, r, &err) != 0) {
        fail_msg("call_all: %s", err.msg);
    }
    assert_int_equal(r->calls, 0);
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static struct azure_rest_stats stats(struct env *e)
{
    struct azure_rest_stats st;
    azure_rest_get_stats(e->c, &st);
    return st;
}

static const char app_json[] = "{\"id\":\"3f2a\",\"appId\":\"0b1c\",\"displayName\":\"x\"}";

static void test_call_request_shape(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    size_t len = 0;
    http_mock_push(e->m, &(struct http_mock_resp){.status = 201, .body = app_json});
    json_t *body =
        json_pack("{s:s, s:s}", "displayName", "cloudgrant é", "signInAudience", "AzureADMyOrg");
    call(e, AZURE_API_GRAPH, "POST", "v1.0/applications", body, "create application 'x'", 0, &r);
    json_decref(body);
    assert_string_equal(r.msg, "");
    assert_int_equal(r.status, 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "appId")), "0b1c");
    assert_int_equal(http_mock_count(e->m), 1);
    assert_string_equal(http_mock_req_method(e->m, 0), "POST");
    /* the base's trailing '/' does not double */
    assert_string_equal(http_mock_req_target(e->m, 0), "/v1.0/applications");
    assert_string_equal(http_mock_req_header(e->m, 0, "Authorization"), "Bearer fake-graph-1");
    assert_int_equal(http_mock_req_header_count(e->m, 0, "Authorization"), 1);
    assert_string_equal(http_mock_req_header(e->m, 0, "Content-Type"), "application/json");
    assert_string_equal(http_mock_req_header(e->m, 0, "Accept"), "application/json");
    assert_string_equal(http_mock_req_header(e->m, 0, "User-Agent"), "cloudgrant/" CG_VERSION);
    assert_string_equal(http_mock_req_body(e->m, 0, &len),
                        "{\"displayName\":\"cloudgrant é\",\"signInAudience\":\"AzureADMyOrg\"}");
    assert_int_equal(e->auth->gets[AZURE_GRAPH], 1);
    assert_int_equal(e->auth->gets[AZURE_ARM], 0);

    /* ARM: its own token; PUT with a query */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 201, .body = "{\"id\":\"ra\"}"});
    json_t *ra = json_pack("{s:{s:s, s:s, s:s}}", "properties", "roleDefinitionId", "/rd",
                           "principalId", "p", "principalType", "ServicePrincipal");
    call(e, AZURE_API_ARM, "PUT",
         "subscriptions/s/providers/Microsoft.Authorization/roleAssignments/"
         "9b2e?api-version=2022-04-01",
         ra, "create role assignment", 0, &r);
    json_decref(ra);
    assert_string_equal(r.msg, "");
    assert_int_equal(r.status, 201);
    assert_string_equal(http_mock_req_method(e->m, 1), "PUT");
    assert_string_equal(http_mock_req_target(e->m, 1),
                        "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/"
                        "9b2e?api-version=2022-04-01");
    assert_string_equal(http_mock_req_header(e->m, 1, "Authorization"), "Bearer fake-arm-1");
    assert_int_equal(e->auth->gets[AZURE_ARM], 1);

    /* GET: no body, no Content-Type; POST without a body sends none; DELETE 204 is {} */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/applications/3f2a?$select=id,appId", NULL, "get app", 0,
         &r);
    assert_string_equal(http_mock_req_target(e->m, 2), "/v1.0/applications/3f2a?$select=id,appId");
    assert_null(http_mock_req_header(e->m, 2, "Content-Type"));
    http_mock_req_body(e->m, 2, &len);
    assert_int_equal(len, 0);
    call(e, AZURE_API_GRAPH, "POST", "v1.0/applications/3f2a/removePassword", NULL, "x", 0, &r);
    /* (curl adds its form Content-Type to a bodiless POST; cg_http has no way to drop it) */
    const char *ct = http_mock_req_header(e->m, 3, "Content-Type");
    assert_true(ct == NULL || strcmp(ct, "application/json") != 0);
    http_mock_req_body(e->m, 3, &len);
    assert_int_equal(len, 0);
    http_mock_push(e->m, &(struct http_mock_resp){.status = 204});
    call(e, AZURE_API_ARM, "DELETE", "subscriptions/s/x?api-version=1", NULL, "delete x", 0, &r);
    assert_string_equal(http_mock_req_method(e->m, 4), "DELETE");
    assert_int_equal(r.status, 204);
    assert_int_equal(json_object_size(r.json), 0);
    json_t *patch = json_pack("{s:s}", "displayName", "y");
    http_mock_push(e->m, &(struct http_mock_resp){.status = 204});
    static const char *const create_if_missing[] = {"Prefer: create-if-missing", NULL};
    call_h(e, AZURE_API_GRAPH, "PATCH", "v1.0/applications(uniqueName='cg-1')", patch,
           create_if_missing, "upsert application 'cg-1'", 0, &r);
    json_decref(patch);
    assert_string_equal(http_mock_req_method(e->m, 5), "PATCH");
    assert_string_equal(http_mock_req_target(e->m, 5), "/v1.0/applications(uniqueName='cg-1')");
    assert_string_equal(http_mock_req_body(e->m, 5, &len), "{\"displayName\":\"y\"}");
    assert_string_equal(http_mock_req_header(e->m, 5, "Prefer"), "create-if-missing");
    assert_int_equal(r.status, 204);

    /* extra headers as given */
    static const char *const hdrs[] = {"ConsistencyLevel: eventual", "X-Trace:  a b\tc", NULL};
    call_h(e, AZURE_API_GRAPH, "GET", "v1.0/applications/$count", NULL, hdrs, "count", 0, &r);
    assert_string_equal(http_mock_req_header(e->m, 6, "ConsistencyLevel"), "eventual");
    assert_string_equal(http_mock_req_header(e->m, 6, "X-Trace"), "a b\tc");
    res_clear(&r);
}

static void test_call_headers_refused(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    static const char *const bad[][2] = {
        {"Authorization: Bearer other", NULL},
        {"authorization:x", NULL},
        {"Content-Type: text/plain", NULL},
        {"Host: evil.example", NULL},
        {"Content-Length: 5", NULL},
        {"NoColon", NULL},
        {": value", NULL},
        {" Leading: x", NULL},
        {"X-A: a\r\nX-Evil: 1", NULL},
        {"X-A: a\nb", NULL},
        {"Bad Name: x", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, bad[i],
                                         "get x", 0, on_res, &r, &err),
                         CG_EINVAL);
        assert_prefix(err.msg, "Azure get x: an extra header");
    }
    const char *many[18];
    for (int i = 0; i < 17; i++) {
        many[i] = "X-A: b";
    }
    many[17] = NULL;
    assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, many, "get x", 0,
                                     on_res, &r, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "Azure get x: too many extra headers");
    assert_int_equal(
        azure_rest_call_all(e->c, AZURE_API_GRAPH, "v1.0/x", many, "get x", 0, on_res, &r, &err),
        CG_EINVAL);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 0);
    assert_int_equal(http_mock_count(e->m), 0);
    assert_int_equal(stats(e).reads, 0);
    assert_int_equal(e->auth->gets[AZURE_GRAPH], 0);
}

static void test_call_error_reported(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 403, .body = ARM_DENIED});
    call(e, AZURE_API_ARM, "PUT", "subscriptions/s/providers/Microsoft.Authorization/x?a=1", NULL,
         "create role assignment 'Contributor' on /subscriptions/s",
         AZURE_RETRY_NOT_FOUND | AZURE_RETRY_REPLICATION, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.status, 403);
    assert_int_equal(r.http_status, 403);
    assert_int_equal(r.a.status, 403);
    assert_string_equal(r.a.code, "AuthorizationFailed");
    assert_prefix(r.msg, "Azure create role assignment 'Contributor' on /subscriptions/s: "
                         "AuthorizationFailed: The client 'c1' with object id 'o1' does not have "
                         "authorization");
    assert_int_equal(http_mock_count(e->m), 1);
    /* RoleAssignmentExists: the caller's to handle, at once */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 409,
                                                  .body = AERR("RoleAssignmentExists",
                                                               "The role assignment already "
                                                               "exists.")});
    call(e, AZURE_API_ARM, "PUT", "subscriptions/s/x", NULL, "assign", AZURE_RETRY_REPLICATION, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.a.code, "RoleAssignmentExists");
    assert_string_equal(r.msg, "Azure assign: RoleAssignmentExists: The role assignment already "
                               "exists.");
    assert_int_equal(http_mock_count(e->m), 2);
    /* the API's 404, without the flag: CG_ENOTFOUND at once */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 404, .body = GRAPH_NOT_FOUND});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/applications/3f2a", NULL, NULL, AZURE_RETRY_REPLICATION,
         &r);
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_string_equal(r.a.code, "Request_ResourceNotFound");
    /* no label: the path without its query names the call */
    assert_prefix(r.msg, "Azure v1.0/applications/3f2a: Request_ResourceNotFound: ");
    /* a non-JSON error; a 2xx that is not JSON */
    http_mock_set_default(e->m,
                          &(struct http_mock_resp){.status = 400, .body = "<html>nope</html>"});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.msg, "Azure get x: invalid response (HTTP 400)");
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 200, .body = "ok"});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);
    assert_int_equal(r.status, 200);
    res_clear(&r);
}

static void test_call_401_refreshes_token(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 401,
                             .body = AERR("InvalidAuthenticationToken", "The token is expired")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"id\":\"rg\"}"});
    call(e, AZURE_API_ARM, "GET", "subscriptions/s/resourceGroups/rg?api-version=2021-04-01", NULL,
         "get rg", 0, &r);
    assert_string_equal(r.msg, "");
    assert_non_null(r.json);
    assert_int_equal(http_mock_count(e->m), 2);
    assert_string_equal(http_mock_req_header(e->m, 0, "Authorization"), "Bearer fake-arm-1");
    assert_string_equal(http_mock_req_header(e->m, 1, "Authorization"), "Bearer fake-arm-2");
    /* the ARM token was forgotten, not Graph's */
    assert_int_equal(e->auth->invalidations[AZURE_ARM], 1);
    assert_int_equal(e->auth->invalidations[AZURE_GRAPH], 0);
    assert_int_equal(e->auth->gets[AZURE_ARM], 2);
    assert_int_equal(stats(e).reads, 1);
    assert_int_equal(stats(e).writes, 0);

    /* refused again with the new token: reported, no third attempt */
    http_mock_set_default(
        e->m,
        &(struct http_mock_resp){.status = 401, .body = AERR("InvalidAuthenticationToken", "no")});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.a.status, 401);
    assert_string_equal(r.msg, "Azure get x: InvalidAuthenticationToken: no");
    assert_int_equal(http_mock_count(e->m), 4);
    assert_string_equal(http_mock_req_header(e->m, 3, "Authorization"), "Bearer fake-graph-2");
    assert_int_equal(e->auth->invalidations[AZURE_GRAPH], 1);
    res_clear(&r);
}

static void test_call_503_retry_after(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 429,
                                                  .headers = "Retry-After: 1\r\n",
                                                  .body = AERR("TooManyRequests", "later")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"value\":[]}"});
    uint64_t t0 = cg_now_ms();
    call(e, AZURE_API_ARM, "GET", "subscriptions/s/providers/x?api-version=1", NULL, "list", 0, &r);
    uint64_t took = cg_now_ms() - t0;
    assert_string_equal(r.msg, "");
    assert_true(took >= 950);
    assert_int_equal(http_mock_count(e->m), 2);
    /* the engine's retry signs again with the same token; it is one logical call */
    assert_string_equal(http_mock_req_header(e->m, 1, "Authorization"), "Bearer fake-arm-1");
    assert_int_equal(e->auth->gets[AZURE_ARM], 1);
    assert_int_equal(stats(e).reads, 1);
    struct cg_http_stats hs;
    cg_http_get_stats(e->h, &hs);
    assert_int_equal(hs.retries, 1);

    /* 5xx that lasts: the engine's attempts, then CG_ESTATUS with the API's error */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 503, .body = AERR("ServiceUnavailable", "busy")});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.msg, "Azure get x: ServiceUnavailable: busy");
    assert_int_equal(http_mock_count(e->m), 6);
    res_clear(&r);
}

static void test_call_not_found_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m,
                   &(struct http_mock_resp){.status = 404, .uses = 2, .body = GRAPH_NOT_FOUND});
    http_mock_push(e->m,
                   &(struct http_mock_resp){.body = "{\"keyId\":\"k\",\"secretText\":\"s\"}"});
    json_t *body = json_pack("{s:{s:s}}", "passwordCredential", "displayName", "cloudgrant");
    call(e, AZURE_API_GRAPH, "POST", "v1.0/applications/3f2a/addPassword", body,
         "add password to '3f2a'", AZURE_RETRY_NOT_FOUND, &r);
    json_decref(body);
    assert_string_equal(r.msg, "");
    assert_string_equal(json_string_value(json_object_get(r.json, "keyId")), "k");
    assert_int_equal(http_mock_count(e->m), 3);
    assert_int_equal(e->auth->gets[AZURE_GRAPH], 3); /* a current token for each send */
    /* the body went out each time */
    size_t len = 0;
    assert_string_equal(http_mock_req_body(e->m, 2, &len),
                        "{\"passwordCredential\":{\"displayName\":\"cloudgrant\"}}");
    assert_int_equal(stats(e).writes, 1);
    assert_int_equal(stats(e).reads, 0);

    /* a 404 without the API's error body (a wrong endpoint) is not waited for */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 404, .body = "Not Found"});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/applications/3f2a", NULL, "get", AZURE_RETRY_NOT_FOUND,
         &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 4);
    res_clear(&r);
}

static void test_call_replication_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    /* Graph: a service principal for an application not yet replicated */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400, .body = NO_BACKING});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 201, .body = "{\"id\":\"sp\"}"});
    json_t *body = json_pack("{s:s}", "appId", "0b1c");
    call(e, AZURE_API_GRAPH, "POST", "v1.0/servicePrincipals", body, "create service principal",
         AZURE_RETRY_REPLICATION, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(r.status, 201);
    assert_int_equal(http_mock_count(e->m), 2);
    /* the code alone says it too */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400,
                                                  .body = AERR("NoBackingApplicationObject", "m")});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 201, .body = "{\"id\":\"sp\"}"});
    call(e, AZURE_API_GRAPH, "POST", "v1.0/servicePrincipals", body, "create service principal",
         AZURE_RETRY_REPLICATION, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 4);

    /* ARM: a principal not yet replicated */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400,
                                                  .body = AERR("PrincipalNotFound",
                                                               "Principal sp does not exist in "
                                                               "the directory t.")});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 201, .body = "{\"id\":\"ra\"}"});
    call(e, AZURE_API_ARM, "PUT", "subscriptions/s/x?api-version=2022-04-01", body, "assign",
         AZURE_RETRY_REPLICATION, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 6);
    assert_string_equal(http_mock_req_header(e->m, 5, "Authorization"), "Bearer fake-arm-1");

    /* without the flag: reported at once; with it, another 400 too */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400, .body = NO_BACKING});
    call(e, AZURE_API_GRAPH, "POST", "v1.0/servicePrincipals", body, "create service principal",
         AZURE_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.a.code, "Request_BadRequest");
    assert_int_equal(http_mock_count(e->m), 7);
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400,
                                                  .body = AERR("InvalidRoleDefinitionId", "bad")});
    call(e, AZURE_API_ARM, "PUT", "subscriptions/s/x", body, "assign",
         AZURE_RETRY_REPLICATION | AZURE_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 8);
    json_decref(body);
    res_clear(&r);
}

static void test_call_concurrency_violation(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    /* retried without any flag */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 409,
                             .uses = 2,
                             .body = AERR("Directory_ConcurrencyViolation",
                                          "Another object with the same value for property "
                                          "proxyAddresses already exists.")});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 204});
    json_t *patch = json_pack("{s:s}", "displayName", "x");
    call(e, AZURE_API_GRAPH, "PATCH", "v1.0/applications/3f2a", patch, "update application", 0, &r);
    json_decref(patch);
    assert_string_equal(r.msg, "");
    assert_int_equal(r.status, 204);
    assert_int_equal(http_mock_count(e->m), 3);
    assert_int_equal(stats(e).writes, 1);
    /* another 409 is not */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 409, .body = AERR("Conflict", "c")});
    call(e, AZURE_API_GRAPH, "PATCH", "v1.0/applications/3f2a", NULL, "update", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 4);
    res_clear(&r);
}

static void test_call_budget_spent(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    client(e, 300, 20);
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 404, .body = GRAPH_NOT_FOUND});
    uint64_t t0 = cg_now_ms();
    call(e, AZURE_API_GRAPH, "GET", "v1.0/applications/3f2a", NULL, "get application",
         AZURE_RETRY_NOT_FOUND, &r);
    uint64_t took = cg_now_ms() - t0;
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_int_equal(r.a.status, 404);
    assert_string_equal(r.a.code, "Request_ResourceNotFound");
    assert_prefix(r.msg, "Azure get application: Request_ResourceNotFound: ");
    assert_true(took >= 300);
    assert_true(took < 3000);
    /* 20, 40, 80, 160 ms (less jitter) then a last try at the end of the budget */
    assert_true(http_mock_count(e->m) >= 3);
    assert_true(http_mock_count(e->m) <= 8);
    assert_int_equal(stats(e).reads, 1);
    res_clear(&r);
}

static void close_engine(void *data, int canceled)
{
    struct env *e = data;
    if (!canceled) {
        cg_http_close(e->h);
        e->h = NULL;
    }
}

static void test_call_cancelled_while_waiting(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    client(e, 60000, 5000);
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 404, .body = GRAPH_NOT_FOUND});
    assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, NULL, "get x",
                                     AZURE_RETRY_NOT_FOUND, on_res, &r, &err),
                     0);
    assert_int_equal(cg_http_after(e->h, 500, close_engine, e), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ECANCELED);
    assert_string_equal(r.msg, "Azure get x: cancelled");
    assert_int_equal(r.status, 0);
    assert_int_equal(http_mock_count(e->m), 1);
    res_clear(&r);
}

static void test_call_token_failures(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    e->auth->fail_now = 1;
    assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, NULL, "get x", 0,
                                     on_res, &r, &err),
                     CG_EAUTH);
    assert_string_equal(err.msg, "Azure get x: Azure token: no credentials (fake)");
    e->auth->fail_now = 0;
    e->auth->fail_later = 1;
    call(e, AZURE_API_ARM, "GET", "subscriptions/s", NULL, "get subscription", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.msg, "Azure get subscription: Azure token (fake) for ARM: "
                               "invalid_client: AADSTS7000215: Invalid client secret provided.");
    e->auth->fail_later = 0;
    /* a token that could inject a header is refused */
    e->auth->token = "abc\r\nX-Evil: 1";
    call(e, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.msg, "Azure get x: the access token is empty or malformed");
    assert_int_equal(http_mock_count(e->m), 0);
    assert_int_equal(stats(e).reads, 2); /* the refused call never started */
    res_clear(&r);
}

static void test_call_timeout(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    struct azure_rest_config cfg = {.timeout_ms = 300};
    assert_int_equal(client_with(e, &cfg, &err), 0);
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_prefix(r.msg, "Azure get x: ");
    assert_int_equal(r.a.status, 0);
    assert_int_equal(r.status, 0);
    res_clear(&r);
}

static void test_call_bad_arguments(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    static const char *const paths[] = {"/v1.0/x",   "",          "v1.0/a b", "v1.0/x#f",
                                        "v1.0/../x", "../x",      "v1.0/./x", "v1.0/é",
                                        "v1.0/x/..", "v1.0/a\\b", ".",        "v1.0/x\r\n"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, "GET", paths[i], NULL, NULL, "x", 0,
                                         on_res, &r, &err),
                         CG_EINVAL);
        assert_string_equal(err.msg, "Azure x: invalid API path (relative, printable ASCII, "
                                     "percent-encoded)");
    }
    assert_int_equal(
        azure_rest_call(e->c, AZURE_API_GRAPH, "GET", NULL, NULL, NULL, "x", 0, on_res, &r, &err),
        CG_EINVAL);
    static const char *const methods[] = {"HEAD", "get", "OPTIONS", "", "CONNECT"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, methods[i], "v1.0/x", NULL, NULL,
                                         "x", 0, on_res, &r, &err),
                         CG_EINVAL);
        assert_string_equal(err.msg, "Azure x: unsupported method");
    }
    assert_int_equal(azure_rest_call(e->c, AZURE_API_GRAPH, NULL, "v1.0/x", NULL, NULL, "x", 0,
                                     on_res, &r, &err),
                     CG_EINVAL);
    assert_int_equal(azure_rest_call(e->c, AZURE_API_COUNT, "GET", "v1.0/x", NULL, NULL, "x", 0,
                                     on_res, &r, &err),
                     CG_EINVAL);
    assert_int_equal(
        azure_rest_call(e->c, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, NULL, "x", 0, NULL, &r, &err),
        CG_EINVAL);
    assert_int_equal(azure_rest_call(NULL, AZURE_API_GRAPH, "GET", "v1.0/x", NULL, NULL, "x", 0,
                                     on_res, &r, &err),
                     CG_EINVAL);
    assert_int_equal(
        azure_rest_call_all(e->c, AZURE_API_GRAPH, "/v1.0/x", NULL, "x", 0, on_res, &r, &err),
        CG_EINVAL);
    assert_int_equal(
        azure_rest_call_all(e->c, AZURE_API_GRAPH, NULL, NULL, "x", 0, on_res, &r, &err),
        CG_EINVAL);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 0);
    assert_int_equal(stats(e).reads + stats(e).writes, 0);
    /* dots inside names and a ".." in the query are fine */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, AZURE_API_GRAPH, "GET",
         "v1.0/servicePrincipals(appId='a.b')?$filter=displayName%20eq%20'..'", NULL, NULL, 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(stats(e).reads, 1);
    assert_int_equal(e->auth->gets[AZURE_GRAPH], 1);
    res_clear(&r);
}

static void test_stats(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/applications", NULL, "list", 0, &r);
    call(e, AZURE_API_ARM, "GET", "subscriptions/s?api-version=1", NULL, "get", 0, &r);
    call(e, AZURE_API_GRAPH, "POST", "v1.0/applications", NULL, "create", 0, &r);
    call(e, AZURE_API_ARM, "PUT", "subscriptions/s/x", NULL, "put", 0, &r);
    call(e, AZURE_API_GRAPH, "PATCH", "v1.0/applications/a", NULL, "update", 0, &r);
    call(e, AZURE_API_ARM, "DELETE", "subscriptions/s/x", NULL, "delete", 0, &r);
    call(e, AZURE_API_GRAPH, "POST", "v1.0/applications/a/getMemberGroups", NULL, "x", 0, &r);
    struct azure_rest_stats st = stats(e);
    assert_int_equal(st.reads, 2);
    assert_int_equal(st.writes, 5);
    res_clear(&r);
}

/* ---- pagination ------------------------------------------------------------------------- */

static void test_call_all_pages(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    /* Graph behind a path prefix */
    snprintf(env_graph, sizeof(env_graph), "%s/graph/", e->base);
    client(e, 1000, 10);
    char page1[512];
    snprintf(
        page1, sizeof(page1),
        "{\"@odata.context\":\"x\",\"value\":[{\"id\":\"a\"},{\"id\":\"b\"}],"
        "\"@odata.nextLink\":\"%s/graph/v1.0/applications?$top=2&$skiptoken=RFNwdAIAAQAA%%27\"}",
        e->base);
    http_mock_push(e->m, &(struct http_mock_resp){.body = page1});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"value\":[{\"id\":\"c\"}]}"});
    static const char *const hdrs[] = {"ConsistencyLevel: eventual", NULL};
    call_all(e, AZURE_API_GRAPH, "v1.0/applications?$top=2", hdrs, "list applications", 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_object_size(r.json), 1);
    json_t *items = json_object_get(r.json, "value");
    assert_int_equal(json_array_size(items), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")), "a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 2), "id")), "c");
    assert_int_equal(http_mock_count(e->m), 2);
    assert_string_equal(http_mock_req_target(e->m, 0), "/graph/v1.0/applications?$top=2");
    assert_string_equal(http_mock_req_target(e->m, 1),
                        "/graph/v1.0/applications?$top=2&$skiptoken=RFNwdAIAAQAA%27");
    for (int i = 0; i < 2; i++) {
        assert_string_equal(http_mock_req_header(e->m, i, "ConsistencyLevel"), "eventual");
        assert_string_equal(http_mock_req_header(e->m, i, "Authorization"), "Bearer fake-graph-1");
    }
    assert_int_equal(stats(e).reads, 2);

    /* ARM: nextLink, null at the end; a page without "value" adds nothing */
    char arm1[512];
    snprintf(arm1, sizeof(arm1),
             "{\"value\":[1,2],\"nextLink\":\"%s/subscriptions/s/providers/"
             "Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$skiptoken=z\"}",
             e->base);
    http_mock_push(e->m, &(struct http_mock_resp){.body = arm1});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"nextLink\":null}"});
    call_all(e, AZURE_API_ARM,
             "subscriptions/s/providers/Microsoft.Authorization/roleAssignments?api-version="
             "2022-04-01",
             NULL, NULL, 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(json_array_size(json_object_get(r.json, "value")), 2);
    assert_string_equal(http_mock_req_target(e->m, 3),
                        "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments?api-"
                        "version=2022-04-01&$skiptoken=z");
    assert_string_equal(http_mock_req_header(e->m, 3, "Authorization"), "Bearer fake-arm-1");
    /* one page, empty link: done */
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"value\":[],\"nextLink\":\"\"}"});
    call_all(e, AZURE_API_ARM, "subscriptions?api-version=1", NULL, "list subscriptions", 0, &r);
    assert_string_equal(r.msg, "");
    assert_true(json_is_array(json_object_get(r.json, "value")));
    assert_int_equal(http_mock_count(e->m), 5);
    assert_int_equal(stats(e).reads, 5);
    res_clear(&r);
}

static void test_call_all_refusals(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    snprintf(env_graph, sizeof(env_graph), "%s/graph", e->base);
    client(e, 1000, 10);
    int port = http_mock_port(e->m);
    /* links that would take the token elsewhere: refused before any request */
    char links[9][200];
    snprintf(links[0], sizeof(links[0]), "http://evil.example/graph/v1.0/applications?p=2");
    snprintf(links[1], sizeof(links[1]), "http://127.0.0.1:%d.evil.example/graph/v1.0/x", port);
    snprintf(links[2], sizeof(links[2]), "http://127.0.0.1:%d@evil.example/graph/v1.0/x", port);
    snprintf(links[3], sizeof(links[3]), "http://127.0.0.1:%d/graphx/v1.0/x", port);
    snprintf(links[4], sizeof(links[4]), "http://127.0.0.1:%d/graph/../admin/x", port);
    snprintf(links[5], sizeof(links[5]), "https://127.0.0.1:%d/graph/v1.0/x", port);
    snprintf(links[6], sizeof(links[6]), "/graph/v1.0/applications?p=2");
    snprintf(links[7], sizeof(links[7]), "http://127.0.0.1:%d/graph//v1.0/x", port);
    snprintf(links[8], sizeof(links[8]), "http://127.0.0.1:%d/graphXv1.0/x", port);
    for (int i = 0; i < 9; i++) {
        char page[400];
        snprintf(page, sizeof(page), "{\"value\":[1],\"@odata.nextLink\":\"%s\"}", links[i]);
        http_mock_push(e->m, &(struct http_mock_resp){.body = page});
        int before = http_mock_count(e->m);
        call_all(e, AZURE_API_GRAPH, "v1.0/applications", NULL, "list applications", 0, &r);
        assert_int_equal(http_mock_count(e->m), before + 1);
        assert_int_equal(r.code, CG_EINVAL);
        char want[200];
        snprintf(want, sizeof(want),
                 "Azure list applications: the next-page link does not lead to %s/graph (refused)",
                 e->base);
        assert_string_equal(r.msg, want);
        assert_null(r.json);
    }
    /* the next link of the other API's kind is followed under the same rule */
    char page[400];
    snprintf(page, sizeof(page), "{\"value\":[1],\"nextLink\":\"http://evil.example/x\"}");
    http_mock_push(e->m, &(struct http_mock_resp){.body = page});
    call_all(e, AZURE_API_GRAPH, "v1.0/applications", NULL, "list applications", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);
    assert_int_equal(e->auth->gets[AZURE_GRAPH], 10);

    /* a repeated link would loop forever */
    snprintf(page, sizeof(page), "{\"value\":[1],\"@odata.nextLink\":\"%s/graph/v1.0/a?p=same\"}",
             e->base);
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = page});
    int before = http_mock_count(e->m);
    call_all(e, AZURE_API_GRAPH, "v1.0/a", NULL, "list a", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);
    assert_string_equal(r.msg, "Azure list a: the service repeated a next-page link (page 2)");
    assert_int_equal(http_mock_count(e->m), before + 2);

    /* the list is not a list; the link is not a string */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{\"value\":{}}"});
    call_all(e, AZURE_API_GRAPH, "v1.0/a", NULL, "list a", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);
    assert_string_equal(r.msg, "Azure list a: invalid response ('value' is not a list)");
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{\"value\":[],\"nextLink\":5}"});
    call_all(e, AZURE_API_ARM, "subscriptions", NULL, "list subscriptions", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);

    /* an error on a later page is the result */
    snprintf(page, sizeof(page), "{\"value\":[1],\"@odata.nextLink\":\"%s/graph/v1.0/a?p=2\"}",
             e->base);
    http_mock_push(e->m, &(struct http_mock_resp){.body = page});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 403, .body = AERR("Authorization_RequestDenied", "denied")});
    call_all(e, AZURE_API_GRAPH, "v1.0/a", NULL, "list a", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.a.code, "Authorization_RequestDenied");
    assert_string_equal(r.msg, "Azure list a: Authorization_RequestDenied: denied");
    res_clear(&r);
}

/* ---- endpoints -------------------------------------------------------------------------- */

static void test_endpoints(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    snprintf(env_graph, sizeof(env_graph), "%s/ms/graph//", e->base);
    env_arm[0] = '\0'; /* empty: the default */
    client(e, 1000, 10);
    char want[160];
    snprintf(want, sizeof(want), "%s/ms/graph", e->base);
    assert_string_equal(azure_rest_endpoint(e->c, AZURE_API_GRAPH), want);
    assert_string_equal(azure_rest_endpoint(e->c, AZURE_API_ARM), "https://management.azure.com");
    assert_null(azure_rest_endpoint(e->c, AZURE_API_COUNT));
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, AZURE_API_GRAPH, "GET", "v1.0/me", NULL, "get me", 0, &r);
    assert_string_equal(r.msg, "");
    assert_string_equal(http_mock_req_target(e->m, 0), "/ms/graph/v1.0/me");
    res_clear(&r);

    /* the defaults with no variable at all */
    struct azure_rest *d = NULL;
    struct cg_err err = {0};
    struct azure_rest_config cfg = {0};
    unsetenv("CLOUDGRANT_AZURE_GRAPH_URL");
    unsetenv("CLOUDGRANT_AZURE_ARM_URL");
    assert_int_equal(azure_rest_new(&d, e->h, e->auth, &cfg, &err), 0);
    assert_string_equal(azure_rest_endpoint(d, AZURE_API_GRAPH), "https://graph.microsoft.com");
    assert_string_equal(azure_rest_endpoint(d, AZURE_API_ARM), "https://management.azure.com");
    azure_rest_free(d);
    /* the process environment when no getenv is injected */
    setenv("CLOUDGRANT_AZURE_ARM_URL", "https://management.usgovcloudapi.net/", 1);
    assert_int_equal(azure_rest_new(&d, e->h, e->auth, NULL, &err), 0);
    assert_string_equal(azure_rest_endpoint(d, AZURE_API_ARM),
                        "https://management.usgovcloudapi.net");
    azure_rest_free(d);
    unsetenv("CLOUDGRANT_AZURE_ARM_URL");
    azure_rest_free(NULL);
}

static void test_endpoint_refused(void **state)
{
    struct env *e = *state;
    struct cg_err err = {0};
    struct azure_rest_config cfg = {0};
    static const struct {
        const char *value;
        const char *msg; /* a part of the message */
    } cases[] = {
        {"http://example.com/", "CLOUDGRANT_AZURE_ARM_URL 'http://example.com/' uses plain http "
                                "to a non-loopback host"},
        {"ftp://example.com/", "CLOUDGRANT_AZURE_ARM_URL 'ftp://example.com/' must start with "
                               "https://"},
        {"management.azure.com", "must start with https://"},
        {"https://", "'https://' has no host"},
        {"https://:443/", "has no host"},
        {"https://h/x?api-version=1", "must not have a query string or fragment"},
        {"https://h/x#f", "must not have a query string or fragment"},
        {"https://user:secret@h/", "CLOUDGRANT_AZURE_ARM_URL must not contain user information"},
        {"http://user:secret@127.0.0.1/", "must not contain user information"},
        {"https://h/a b", "without spaces or control characters"},
        {"https://h/\n", "without spaces or control characters"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(env_arm, sizeof(env_arm), "%s", cases[i].value);
        memset(&err, 0, sizeof(err));
        assert_int_equal(client_with(e, &cfg, &err), CG_EINVAL);
        assert_null(e->c);
        if (strstr(err.msg, cases[i].msg) == NULL) {
            fail_msg("'%s': got '%s'", cases[i].value, err.msg);
        }
        assert_null(strstr(err.msg, "secret"));
        assert_null(strchr(err.msg, '\n'));
    }
    /* plain http elsewhere than loopback only when allowed */
    snprintf(env_arm, sizeof(env_arm), "http://example.com");
    cfg.allow_insecure_http = 1;
    assert_int_equal(client_with(e, &cfg, &err), 0);
    assert_string_equal(azure_rest_endpoint(e->c, AZURE_API_ARM), "http://example.com");
    snprintf(env_arm, sizeof(env_arm), "http://[::1]:8080/p/");
    cfg.allow_insecure_http = 0;
    assert_int_equal(client_with(e, &cfg, &err), 0);
    assert_string_equal(azure_rest_endpoint(e->c, AZURE_API_ARM), "http://[::1]:8080/p");
    assert_int_equal(azure_rest_new(NULL, e->h, e->auth, &cfg, &err), CG_EINVAL);
    struct azure_rest *d = NULL;
    assert_int_equal(azure_rest_new(&d, e->h, NULL, &cfg, &err), CG_EINVAL);
    assert_int_equal(azure_rest_new(&d, NULL, e->auth, &cfg, &err), CG_EINVAL);
}

/* ---- what the log shows ----------------------------------------------------------------- */

static char *read_all(int fd)
{
    off_t n = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)n, 0), n);
    return buf;
}

static void test_logs_never_show_secrets(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    char path[] = "/tmp/cg-azure-rest-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    cg_log_setup(CG_LOG_TRACE, CG_LOG_TEXT);

    http_mock_push(e->m, &(struct http_mock_resp){.status = 404, .body = GRAPH_NOT_FOUND});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"keyId\":\"k\",\"secretText\":\"U0VDUkVUVEVYVA~x\"}"});
    json_t *body = json_pack("{s:{s:s}}", "passwordCredential", "displayName", "SECRETBODYVALUE");
    call(e, AZURE_API_GRAPH, "POST", "v1.0/applications/3f2a/addPassword", body,
         "add password to '3f2a'", AZURE_RETRY_NOT_FOUND, &r);
    json_decref(body);
    assert_string_equal(r.msg, "");
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400,
                             .body = "{\"error\":{\"code\":\"Request_BadRequest\",\"message\":"
                                     "\"bad\"},\"secretText\":\"U0VDUkVUVEVYVA~x\"}"});
    call(e, AZURE_API_ARM, "GET", "subscriptions/s?api-version=1", NULL, "get subscription", 0, &r);

    fflush(stderr);
    cg_log_setup(CG_LOG_WARN, CG_LOG_TEXT);
    dup2(saved, 2);
    close(saved);
    char *log = read_all(fd);
    close(fd);
    assert_non_null(strstr(log, "Azure POST graph v1.0/applications/3f2a/addPassword (add "
                                "password to '3f2a') -> 404 Request_ResourceNotFound"));
    assert_non_null(strstr(log, "(add password to '3f2a'): not found, waiting "));
    assert_non_null(strstr(log, "Azure POST graph v1.0/applications/3f2a/addPassword (add "
                                "password to '3f2a') -> 200"));
    assert_non_null(strstr(log, "Azure GET arm subscriptions/s (get subscription) -> 400 "
                                "Request_BadRequest"));
    assert_non_null(strstr(log, "Authorization: <redacted>"));
    assert_null(strstr(log, "U0VDUkVUVEVYVA"));
    assert_null(strstr(log, "SECRETBODYVALUE"));
    assert_null(strstr(log, "fake-graph"));
    assert_null(strstr(log, "fake-arm"));
    assert_null(strstr(log, "INNER-REQUEST-ID"));
    free(log);
    res_clear(&r);
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
        cmocka_unit_test(test_parse_success),
        cmocka_unit_test(test_parse_empty_body),
        cmocka_unit_test(test_parse_2xx_not_json),
        cmocka_unit_test(test_parse_graph_errors),
        cmocka_unit_test(test_parse_arm_errors),
        cmocka_unit_test(test_parse_non_api_errors),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_body_never_in_message),
        cmocka_unit_test_setup_teardown(test_call_request_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_headers_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_error_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_401_refreshes_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_503_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_not_found_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_replication_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_concurrency_violation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_budget_spent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_cancelled_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_token_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_never_show_secrets, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cg_http_global_cleanup();
    return rc;
}
