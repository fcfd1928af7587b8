/* cloud/gcp/rest.c: the response parser on canned bodies (success, Google's error shapes,
 * ErrorInfo, non-JSON errors, hostile JSON), then whole calls on a real loop against
 * tests/support/http_mock with a fake token source (gcp_auth_fake.c): bearer header and 401
 * refresh, engine retries with Retry-After, consistency retries, pagination, long-running
 * operations, endpoint overrides, stats and what the debug log may show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_log.h"
#include "cg_util.h"
#include "gcp_auth_fake.h"
#include "gcp/gcp_rest.h"
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
    struct gcp_error g;
    struct cg_err err;
};

static void parse_n(struct parsed *p, const char *body, size_t len, long status, const char *label)
{
    memset(p, 0, sizeof(*p));
    p->rc = gcp_rest_parse_response(body, len, status, label, &p->json, &p->g, &p->err);
    if (p->rc == 0) {
        assert_non_null(p->json);
        assert_true(json_is_object(p->json));
    } else {
        assert_null(p->json);
        assert_int_equal(p->err.code, p->rc);
        assert_true(p->err.msg[0] != '\0');
        assert_null(strchr(p->err.msg, '\n'));
        assert_int_equal(p->g.status, status);
    }
}

static void parse(struct parsed *p, const char *body, long status, const char *label)
{
    parse_n(p, body, body ? strlen(body) : 0, status, label);
}

static void parsed_free(struct parsed *p)
{
    json_decref(p->json);
    p->json = NULL;
}

#define GERR(code, status, msg)                                                                    \
    "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\"" status "\"}}"

#define SERVICE_DISABLED_BODY                                                                      \
    "{\"error\":{\"code\":403,\"message\":\"Identity and Access Management (IAM) API has not "     \
    "been used in project 1 before or it is disabled.\",\"status\":\"PERMISSION_DENIED\","         \
    "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[{"                 \
    "\"description\":\"console\",\"url\":\"https://console.developers.google.com/apis/api/"        \
    "iam.googleapis.com/overview?project=1\"}]},{\"@type\":\"type.googleapis.com/"                 \
    "google.rpc.ErrorInfo\",\"reason\":\"SERVICE_DISABLED\",\"domain\":\"googleapis.com\","        \
    "\"metadata\":{\"service\":\"iam.googleapis.com\",\"consumer\":\"projects/1\"}},{\"@type\":"   \
    "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"SECOND\",\"metadata\":{"            \
    "\"service\":\"other.googleapis.com\"}}]}}"

static void test_parse_success(void **state)
{
    struct parsed p;
    parse(&p, "{\"name\":\"projects/p/serviceAccounts/x@p.iam.gserviceaccount.com\",\"n\":[1,2]}",
          200, "get service account 'x'");
    assert_int_equal(p.rc, 0);
    assert_string_equal(json_string_value(json_object_get(p.json, "name")),
                        "projects/p/serviceAccounts/x@p.iam.gserviceaccount.com");
    parsed_free(&p);
    /* pretty-printed, any 2xx */
    parse(&p, "\n{\n  \"done\": true\n}\n", 201, "x");
    assert_int_equal(p.rc, 0);
    assert_true(json_is_true(json_object_get(p.json, "done")));
    parsed_free(&p);
}

static void test_parse_empty_body(void **state)
{
    static const char *const bodies[] = {"", " \r\n\t ", NULL};
    for (size_t i = 0; i < 3; i++) {
        struct parsed p;
        parse(&p, bodies[i], i == 1 ? 204 : 200, "delete role 'r'");
        assert_int_equal(p.rc, 0);
        assert_int_equal(json_object_size(p.json), 0);
        parsed_free(&p);
    }
}

static void test_parse_2xx_not_json(void **state)
{
    static const char *const bodies[] = {"ok",
                                         "[1,2]",
                                         "\"str\"",
                                         "{\"a\":1} trailing",
                                         "{\"a\":",
                                         "<html></html>",
                                         "{\"a\":\"\\u0000\"}",
                                         "null"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct parsed p;
        parse(&p, bodies[i], 200, "list roles");
        assert_int_equal(p.rc, CG_EINVAL);
        assert_string_equal(p.err.msg, "GCP list roles: invalid response (HTTP 200)");
        assert_int_equal(p.err.http_status, 200);
    }
}

static void test_parse_error_shapes(void **state)
{
    struct parsed p;
    parse(&p,
          GERR(409, "ALREADY_EXISTS",
               "Service account castai-gke-1a2b3c4d already exists within project projects/p."),
          409, "create service account 'castai-gke-1a2b3c4d'");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_int_equal(p.g.status, 409);
    assert_int_equal(p.err.http_status, 409);
    assert_string_equal(p.g.rpc, "ALREADY_EXISTS");
    assert_string_equal(p.g.reason, "");
    assert_string_equal(p.g.service, "");
    assert_string_equal(p.err.msg,
                        "GCP create service account 'castai-gke-1a2b3c4d': ALREADY_EXISTS: Service "
                        "account castai-gke-1a2b3c4d already exists within project projects/p.");

    static const struct {
        long status;
        const char *rpc;
        int code;
    } cases[] = {
        {404, "NOT_FOUND", CG_ENOTFOUND},         {403, "PERMISSION_DENIED", CG_EAUTH},
        {401, "UNAUTHENTICATED", CG_EAUTH},       {400, "INVALID_ARGUMENT", CG_ESTATUS},
        {400, "FAILED_PRECONDITION", CG_ESTATUS}, {409, "ABORTED", CG_ESTATUS},
        {429, "RESOURCE_EXHAUSTED", CG_ESTATUS},  {503, "UNAVAILABLE", CG_ESTATUS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"error\":{\"code\":%ld,\"message\":\"m\",\"status\":\"%s\"}}", cases[i].status,
                 cases[i].rpc);
        parse(&p, body, cases[i].status, "x");
        assert_int_equal(p.rc, cases[i].code);
        assert_string_equal(p.g.rpc, cases[i].rpc);
        assert_string_equal(p.g.message, "m");
        char want[128];
        snprintf(want, sizeof(want), "GCP x: %s: m", cases[i].rpc);
        assert_string_equal(p.err.msg, want);
    }

    /* no status name: the HTTP status stands in; no message: the name alone */
    parse(&p, "{\"error\":{\"code\":404,\"message\":\"gone\"}}", 404, "get role 'r'");
    assert_int_equal(p.rc, CG_ENOTFOUND);
    assert_string_equal(p.g.rpc, "");
    assert_string_equal(p.err.msg, "GCP get role 'r': HTTP 404: gone");
    parse(&p, "{\"error\":{\"status\":\"ABORTED\"}}", 409, "set IAM policy");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "GCP set IAM policy: ABORTED");
    parse(&p, "{\"error\":{\"code\":403}}", 403, NULL);
    assert_int_equal(p.rc, CG_EAUTH);
    assert_string_equal(p.err.msg, "GCP: HTTP 403");
}

static void test_parse_error_info(void **state)
{
    struct parsed p;
    parse(&p, SERVICE_DISABLED_BODY, 403, "create service account 'x'");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_string_equal(p.g.rpc, "PERMISSION_DENIED");
    assert_string_equal(p.g.reason, "SERVICE_DISABLED"); /* the first ErrorInfo, not the second */
    assert_string_equal(p.g.service, "iam.googleapis.com");
    assert_string_equal(p.err.msg,
                        "GCP create service account 'x': PERMISSION_DENIED: Identity and Access "
                        "Management (IAM) API has not been used in project 1 before or it is "
                        "disabled.");
    /* ErrorInfo without metadata, and wrong types around it */
    parse(&p,
          "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"message\":\"q\","
          "\"details\":[7,null,{\"@type\":5},{\"@type\":\"type.googleapis.com/"
          "google.rpc.ErrorInfo\",\"reason\":\"RATE_LIMIT_EXCEEDED\",\"metadata\":[1]}]}}",
          429, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.g.reason, "RATE_LIMIT_EXCEEDED");
    assert_string_equal(p.g.service, "");
}

static void test_parse_non_google_errors(void **state)
{
    struct parsed p;
    parse(&p, "<html><body>502 Bad Gateway</body></html>", 502, "get IAM policy of 'p'");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_int_equal(p.g.status, 502);
    assert_string_equal(p.g.rpc, "");
    assert_string_equal(p.err.msg, "GCP get IAM policy of 'p': invalid response (HTTP 502)");
    assert_int_equal(p.err.http_status, 502);
    parse(&p, "", 500, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "GCP x: invalid response (HTTP 500)");
    /* OAuth's shape is not Google's API error shape; a 401 is still an auth failure */
    parse(&p, "{\"error\":\"invalid_token\",\"error_description\":\"expired\"}", 401, "x");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_string_equal(p.err.msg, "GCP x: invalid response (HTTP 401)");
    /* a 404 page from a wrong endpoint says nothing about the resource */
    parse(&p, "Not Found", 404, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    parse(&p, "{\"error\":{}}", 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "GCP x: invalid response (HTTP 400)");
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
    /* wrong types everywhere */
    static const char *const bodies[] = {
        "{\"error\":5}",
        "{\"error\":[]}",
        "{\"error\":{\"status\":7,\"message\":[],\"code\":\"x\",\"details\":\"d\"}}",
        "{\"error\":{\"status\":\"lower_case?\",\"message\":null,\"code\":1}}",
        "{\"error\":{\"status\":\"WAY_TOO_LONG_STATUS_NAME_FOR_THE_FIELD_XXXXXXXX\",\"code\":1}}",
        "{\"error\":{\"code\":1,\"details\":[{\"@type\":\"type.googleapis.com/google.rpc."
        "ErrorInfo\",\"reason\":{},\"metadata\":{\"service\":\"evil\\nhost\"}}]}}",
        "\xff\xfe{\"error\":{}}",
        "{\"error\":{\"code\":1,\"message\":\"\xc3\x28\"}}",
        "{\"error\":{\"code\":1,\"message\":\"nul\\u0000inside\"}}",
        "{\"error\":{\"code\":99999999999999999999999999}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        parse(&p, bodies[i], 500, "x");
        assert_true(p.rc == CG_ESTATUS);
        assert_true(strlen(p.g.rpc) < sizeof(p.g.rpc));
        for (const char *c = p.g.rpc; *c; c++) {
            assert_true((*c >= 'A' && *c <= 'Z') || *c == '_' || (*c >= '0' && *c <= '9'));
        }
        assert_null(strchr(p.g.service, '\n'));
        assert_string_equal(p.g.reason, "");
    }

    /* control characters and line breaks in the message: one line */
    parse(&p, "{\"error\":{\"status\":\"INTERNAL\",\"message\":\"a\\nb\\r\\n\\tc\\u0007d  \"}}",
          500, "x\ny");
    assert_string_equal(p.g.message, "a b c?d");
    assert_string_equal(p.err.msg, "GCP x y: INTERNAL: a b c?d");

    /* a long message is cut with "...", at a character boundary */
    size_t n = 20000;
    char *big = malloc(n + 100);
    assert_non_null(big);
    strcpy(big, "{\"error\":{\"status\":\"INTERNAL\",\"message\":\"");
    size_t o = strlen(big);
    for (size_t i = 0; i < n / 2; i++) {
        big[o++] = '\xc3'; /* U+00E9 */
        big[o++] = '\xa9';
    }
    strcpy(big + o, "\"}}");
    parse(&p, big, 500, "x");
    assert_true(strlen(p.g.message) < sizeof(p.g.message));
    assert_true(strlen(p.g.message) > sizeof(p.g.message) - 8);
    assert_string_equal(p.g.message + strlen(p.g.message) - 3, "...");
    assert_true(utf8_valid(p.g.message));
    assert_true(utf8_valid(p.err.msg) || strlen(p.err.msg) == CG_ERR_MSG_MAX - 1);
    free(big);

    /* deep nesting: refused, also inside an error body; brackets in strings do not count */
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
    char nest[600];
    strcpy(nest, "{\"error\":{\"status\":\"INTERNAL\",\"x\":");
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
    assert_string_equal(p.err.msg, "GCP x: invalid response (HTTP 500)");
    parse(&p,
          "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[\"}",
          200, "x");
    assert_int_equal(p.rc, 0);
    parsed_free(&p);

    /* over 8 MiB: too big, whatever it is */
    n = (size_t)8 * 1024 * 1024 + 1;
    big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    parse_n(&p, big, n, 200, "x");
    assert_int_equal(p.rc, CG_ETOOBIG);
    parse_n(&p, big, n - 2, 200, "x"); /* just under: an empty object */
    assert_int_equal(p.rc, CG_EINVAL);
    free(big);

    /* a NUL inside the body */
    parse_n(&p, "{\"a\":1}\0{", 9, 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);

    /* missing result pointer */
    struct cg_err err = {0};
    assert_int_equal(gcp_rest_parse_response("{}", 2, 200, "x", NULL, NULL, &err), CG_EINVAL);
}

static void test_parse_body_never_in_message(void **state)
{
    struct parsed p;
    parse(&p, "{\"privateKeyData\":\"U0VDUkVU\",\"error\":{\"status\":\"INTERNAL\"}}", 500, "x");
    assert_null(strstr(p.err.msg, "U0VDUkVU"));
    parse(&p, "{\"privateKeyData\":\"U0VDUkVU\"", 200, "x");
    assert_null(strstr(p.err.msg, "U0VDUkVU"));
    parse(&p, "{\"privateKeyData\":\"U0VDUkVU\"}", 502, "x");
    assert_null(strstr(p.err.msg, "U0VDUkVU"));
}

/* ---- whole calls against http_mock ------------------------------------------------------ */

static char env_iam[256], env_su[256], env_crm[256];

static const char *fake_getenv(const char *name)
{
    if (strcmp(name, "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM") == 0) {
        return env_iam;
    }
    if (strcmp(name, "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE") == 0) {
        return env_su;
    }
    if (strcmp(name, "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER") == 0) {
        return env_crm;
    }
    return NULL;
}

struct env {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    struct gcp_auth *auth;
    struct gcp_rest *c;
    char base[96];
};

struct res {
    int calls;
    int code;
    long http_status;
    struct gcp_error g;
    char msg[CG_ERR_MSG_MAX];
    json_t *json;
};

static void on_res(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                   void *data)
{
    struct res *r = data;
    r->calls++;
    if (err != NULL) {
        assert_non_null(gerr);
        assert_null(result);
        r->code = err->code;
        r->http_status = err->http_status;
        r->g = *gerr;
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
        assert_true(strncmp(err->msg, "GCP", 3) == 0);
    } else {
        assert_null(gerr);
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

static int client_with(struct env *e, const struct gcp_rest_config *cfg, struct cg_err *err)
{
    gcp_rest_free(e->c);
    e->c = NULL;
    struct gcp_rest_config c = *cfg;
    c.getenv = fake_getenv;
    return gcp_rest_new(&e->c, e->h, e->auth, &c, err);
}

static void client(struct env *e, long consistency_ms, long poll_ms)
{
    struct cg_err err = {0};
    struct gcp_rest_config cfg = {
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
    snprintf(env_iam, sizeof(env_iam), "%s/", e->base);
    snprintf(env_su, sizeof(env_su), "%s", e->base);
    snprintf(env_crm, sizeof(env_crm), "%s/", e->base);
    assert_int_equal(gcp_auth_new(&e->auth, e->h, NULL, &err), 0);
    client(e, 2000, 10);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    gcp_rest_free(e->c);
    gcp_auth_free(e->auth);
    if (e->h != NULL) {
        cg_http_close(e->h);
    }
    http_mock_close(e->m);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void call(struct env *e, enum gcp_api api, const char *method, const char *path,
                 json_t *body, const char *label, int flags, struct res *r)
{
    struct cg_err err = {0};
    res_clear(r);
    if (gcp_rest_call(e->c, api, method, path, body, label, flags, on_res, r, &err) != 0) {
        fail_msg("call: %s", err.msg);
    }
    assert_int_equal(r->calls, 0); /* never from inside the call */
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static const char sa_json[] =
    "{\"name\":\"projects/p/serviceAccounts/x@p.iam.gserviceaccount.com\","
    "\"email\":\"x@p.iam.gserviceaccount.com\"}";

static void test_call_request_shape(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.body = sa_json});
    json_t *body = json_pack("{s:s, s:{s:s, s:s}}", "accountId", "x", "serviceAccount",
                             "displayName", "X é", "description", "by cloudgrant");
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts", body, "create service account 'x'", 0,
         &r);
    json_decref(body);
    assert_null(r.msg[0] ? r.msg : NULL);
    assert_string_equal(json_string_value(json_object_get(r.json, "email")),
                        "x@p.iam.gserviceaccount.com");
    assert_int_equal(http_mock_count(e->m), 1);
    assert_string_equal(http_mock_req_method(e->m, 0), "POST");
    assert_string_equal(http_mock_req_target(e->m, 0), "/v1/projects/p/serviceAccounts");
    assert_string_equal(http_mock_req_header(e->m, 0, "Authorization"), "Bearer fake-token-1");
    assert_int_equal(http_mock_req_header_count(e->m, 0, "Authorization"), 1);
    assert_string_equal(http_mock_req_header(e->m, 0, "Content-Type"), "application/json");
    assert_string_equal(http_mock_req_header(e->m, 0, "User-Agent"), "cloudgrant/" CG_VERSION);
    size_t len = 0;
    const char *sent = http_mock_req_body(e->m, 0, &len);
    assert_string_equal(sent, "{\"accountId\":\"x\",\"serviceAccount\":{\"displayName\":\"X é\","
                              "\"description\":\"by cloudgrant\"}}");
    assert_int_equal(e->auth->gets, 1);

    /* GET: no body, no Content-Type; POST without a body sends {} ; DELETE sends none */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, GCP_CRM, "GET", "v1/projects/p?fields=name", NULL, "get project", 0, &r);
    assert_string_equal(http_mock_req_target(e->m, 1), "/v1/projects/p?fields=name");
    assert_null(http_mock_req_header(e->m, 1, "Content-Type"));
    http_mock_req_body(e->m, 1, &len);
    assert_int_equal(len, 0);
    call(e, GCP_IAM, "POST", "v1/projects/p/roles/r:undelete", NULL, "undelete", 0, &r);
    assert_string_equal(http_mock_req_body(e->m, 2, &len), "{}");
    assert_string_equal(http_mock_req_header(e->m, 2, "Content-Type"), "application/json");
    call(e, GCP_IAM, "DELETE", "v1/projects/p/roles/r", NULL, "delete role 'r'", 0, &r);
    assert_string_equal(http_mock_req_method(e->m, 3), "DELETE");
    http_mock_req_body(e->m, 3, &len);
    assert_int_equal(len, 0);
    json_t *patch = json_pack("{s:s}", "title", "t");
    call(e, GCP_IAM, "PATCH", "v1/projects/p/roles/r?updateMask=title", patch, "update role", 0,
         &r);
    json_decref(patch);
    assert_string_equal(http_mock_req_method(e->m, 4), "PATCH");
    assert_string_equal(http_mock_req_body(e->m, 4, &len), "{\"title\":\"t\"}");
    /* an empty 200 is {} */
    http_mock_push(e->m, &(struct http_mock_resp){.body = NULL});
    call(e, GCP_IAM, "DELETE", "v1/x", NULL, "x", 0, &r);
    assert_int_equal(json_object_size(r.json), 0);
    res_clear(&r);
}

static void test_call_error_reported(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 409,
                                                  .body = GERR(409, "ALREADY_EXISTS",
                                                               "Service account x already exists "
                                                               "within project projects/p.")});
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts", NULL, "create service account 'x'",
         GCP_RETRY_NOT_FOUND | GCP_RETRY_SERVICE_DISABLED, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(r.http_status, 409);
    assert_int_equal(r.g.status, 409);
    assert_string_equal(r.g.rpc, "ALREADY_EXISTS");
    assert_string_equal(r.msg, "GCP create service account 'x': ALREADY_EXISTS: Service account x "
                               "already exists within project projects/p.");
    /* ABORTED (stale etag) is the caller's to handle: not retried */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 409, .body = GERR(409, "ABORTED", "etag")});
    call(e, GCP_CRM, "POST", "v1/projects/p:setIamPolicy", NULL, "set IAM policy", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.g.rpc, "ABORTED");
    assert_int_equal(http_mock_count(e->m), 2);
    /* non-JSON error */
    http_mock_set_default(e->m,
                          &(struct http_mock_resp){.status = 400, .body = "<html>nope</html>"});
    call(e, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.msg, "GCP get x: invalid response (HTTP 400)");
    /* a 2xx that is not JSON */
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 200, .body = "ok"});
    call(e, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);
    res_clear(&r);
}

static void test_call_401_refreshes_token(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 401,
                                                  .body = GERR(401, "UNAUTHENTICATED", "expired")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = sa_json});
    call(e, GCP_IAM, "GET", "v1/projects/p/serviceAccounts/x", NULL, "get x", 0, &r);
    assert_string_equal(r.msg, "");
    assert_non_null(r.json);
    assert_int_equal(http_mock_count(e->m), 2);
    assert_string_equal(http_mock_req_header(e->m, 0, "Authorization"), "Bearer fake-token-1");
    assert_string_equal(http_mock_req_header(e->m, 1, "Authorization"), "Bearer fake-token-2");
    assert_int_equal(e->auth->invalidations, 1);
    assert_int_equal(e->auth->gets, 2);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 1);
    assert_int_equal(st.writes, 0);

    /* refused again with the new token: reported, no third attempt */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 401, .body = GERR(401, "UNAUTHENTICATED", "no")});
    call(e, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.g.status, 401);
    assert_string_equal(r.msg, "GCP get x: UNAUTHENTICATED: no");
    assert_int_equal(http_mock_count(e->m), 4);
    assert_int_equal(e->auth->invalidations, 2);
    res_clear(&r);
}

static void test_call_503_retry_after(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503,
                                                  .headers = "Retry-After: 1\r\n",
                                                  .body = GERR(503, "UNAVAILABLE", "later")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"bindings\":[]}"});
    uint64_t t0 = cg_now_ms();
    call(e, GCP_CRM, "POST", "v1/projects/p:getIamPolicy", NULL, "get IAM policy", 0, &r);
    uint64_t took = cg_now_ms() - t0;
    assert_string_equal(r.msg, "");
    assert_true(took >= 950);
    assert_int_equal(http_mock_count(e->m), 2);
    /* the engine's retry signs again with the same token; it is one logical call */
    assert_string_equal(http_mock_req_header(e->m, 1, "Authorization"), "Bearer fake-token-1");
    assert_int_equal(e->auth->gets, 1);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 1);
    struct cg_http_stats hs;
    cg_http_get_stats(e->h, &hs);
    assert_int_equal(hs.retries, 1);
    res_clear(&r);
}

static void test_call_service_disabled_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(
        e->m, &(struct http_mock_resp){.uses = 2, .status = 403, .body = SERVICE_DISABLED_BODY});
    http_mock_push(e->m, &(struct http_mock_resp){.body = sa_json});
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts", NULL, "create service account 'x'",
         GCP_RETRY_SERVICE_DISABLED, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 3);
    assert_int_equal(e->auth->gets, 3); /* a current token for each send */
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.reads, 0);

    /* without the flag: reported at once */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 403, .body = SERVICE_DISABLED_BODY});
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts", NULL, "create service account 'x'",
         GCP_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.g.reason, "SERVICE_DISABLED");
    assert_string_equal(r.g.service, "iam.googleapis.com");
    assert_int_equal(http_mock_count(e->m), 4);

    /* with the flag, a 403 for another reason is reported at once */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 403,
                             .body = "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\","
                                     "\"message\":\"Permission 'iam.serviceAccounts.create' "
                                     "denied\",\"details\":[{\"@type\":\"type.googleapis.com/"
                                     "google.rpc.ErrorInfo\",\"reason\":\"IAM_PERMISSION_DENIED\","
                                     "\"metadata\":{\"permission\":\"x\"}}]}}"});
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts", NULL, "create service account 'x'",
         GCP_RETRY_SERVICE_DISABLED | GCP_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.g.reason, "IAM_PERMISSION_DENIED");
    assert_int_equal(http_mock_count(e->m), 5);
    res_clear(&r);
}

static void test_call_service_disabled_budget_spent(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    client(e, 300, 20);
    http_mock_set_default(e->m,
                          &(struct http_mock_resp){.status = 403, .body = SERVICE_DISABLED_BODY});
    uint64_t t0 = cg_now_ms();
    call(e, GCP_IAM, "GET", "v1/projects/p/serviceAccounts", NULL, "list service accounts",
         GCP_RETRY_SERVICE_DISABLED, &r);
    uint64_t took = cg_now_ms() - t0;
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.g.status, 403);
    assert_string_equal(r.g.reason, "SERVICE_DISABLED");
    assert_non_null(strstr(r.msg, "GCP list service accounts: PERMISSION_DENIED: Identity"));
    assert_true(took >= 300);
    assert_true(took < 3000);
    /* 20, 40, 80, 160 ms (less jitter) then a last try at the end of the budget */
    assert_true(http_mock_count(e->m) >= 3);
    assert_true(http_mock_count(e->m) <= 8);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 1);
    res_clear(&r);
}

static void test_call_not_found_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 404,
                                                  .body = GERR(404, "NOT_FOUND", "Unknown SA")});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400,
                             .body = GERR(400, "INVALID_ARGUMENT",
                                          "Service account projects/p/serviceAccounts/x does not "
                                          "exist.")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"name\":\"k\"}"});
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts/x/keys", NULL, "create key",
         GCP_RETRY_NOT_FOUND, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 3);

    /* without the flag: 404 is CG_ENOTFOUND at once */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 404,
                                                  .body = GERR(404, "NOT_FOUND", "Unknown SA")});
    call(e, GCP_IAM, "GET", "v1/projects/p/serviceAccounts/x", NULL, "get x",
         GCP_RETRY_SERVICE_DISABLED, &r);
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_int_equal(http_mock_count(e->m), 4);
    /* another 400 is not a consistency condition */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400,
                                                  .body = GERR(400, "INVALID_ARGUMENT", "bad id")});
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts", NULL, "create", GCP_RETRY_NOT_FOUND,
         &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 5);
    res_clear(&r);
}

static void confirm(struct env *e, const char *path, int flags, unsigned need, struct res *r)
{
    struct cg_err err = {0};
    res_clear(r);
    if (gcp_rest_confirm(e->c, GCP_IAM, path, "confirm x", flags, need, on_res, r, &err) != 0) {
        fail_msg("confirm: %s", err.msg);
    }
    assert_int_equal(r->calls, 0);
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static void test_confirm_consecutive_reads(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct http_mock_resp miss = {.status = 404, .body = GERR(404, "NOT_FOUND", "Unknown SA")};
    struct http_mock_resp hit = {.body = sa_json};
    /* miss, hit, miss: the count starts again; then two hits in a row */
    http_mock_push(e->m, &miss);
    http_mock_push(e->m, &hit);
    http_mock_push(e->m, &miss);
    http_mock_push(e->m, &hit);
    http_mock_push(e->m, &hit);
    confirm(e, "v1/projects/p/serviceAccounts/x", GCP_RETRY_NOT_FOUND, 2, &r);
    assert_string_equal(r.msg, "");
    assert_string_equal(json_string_value(json_object_get(r.json, "email")),
                        "x@p.iam.gserviceaccount.com");
    assert_int_equal(http_mock_count(e->m), 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(http_mock_req_method(e->m, i), "GET");
    }
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 5);
    assert_int_equal(st.writes, 0);

    /* an error that is not the condition asked for ends it at once */
    http_mock_push(e->m, &hit);
    http_mock_push(e->m, &(struct http_mock_resp){.status = 403,
                                                  .body = GERR(403, "PERMISSION_DENIED", "no")});
    confirm(e, "v1/projects/p/serviceAccounts/x", GCP_RETRY_NOT_FOUND, 2, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(http_mock_count(e->m), 7);

    /* a resource that never settles: the budget ends it with a message that says what to do */
    client(e, 200, 10);
    http_mock_set_default(e->m, &miss);
    confirm(e, "v1/projects/p/serviceAccounts/x", GCP_RETRY_NOT_FOUND, 2, &r);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_string_equal(r.msg, "GCP confirm x: still NOT_FOUND after 0.2 s of retries; wait a "
                               "few minutes and run again");
    assert_int_equal(
        gcp_rest_confirm(e->c, GCP_IAM, "../x", NULL, 0, 2, on_res, &r, &(struct cg_err){0}),
        CG_EINVAL);
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
    http_mock_set_default(e->m,
                          &(struct http_mock_resp){.status = 403, .body = SERVICE_DISABLED_BODY});
    assert_int_equal(gcp_rest_call(e->c, GCP_IAM, "GET", "v1/x", NULL, "get x",
                                   GCP_RETRY_SERVICE_DISABLED, on_res, &r, &err),
                     0);
    assert_int_equal(cg_http_after(e->h, 1000, close_engine, e), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ECANCELED);
    assert_string_equal(r.msg, "GCP get x: cancelled");
    assert_int_equal(http_mock_count(e->m), 1);
    res_clear(&r);
}

static void test_call_token_failures(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    e->auth->fail_now = 1;
    assert_int_equal(
        gcp_rest_call(e->c, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, on_res, &r, &err), CG_EAUTH);
    assert_string_equal(err.msg, "GCP get x: GCP token: no credentials (fake)");
    e->auth->fail_now = 0;
    e->auth->fail_later = 1;
    call(e, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.msg, "GCP get x: GCP token from fake: invalid_grant: refused");
    e->auth->fail_later = 0;
    /* a token that could inject a header is refused */
    e->auth->token = "abc\r\nX-Evil: 1";
    call(e, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(http_mock_count(e->m), 0);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 2); /* the refused call never started */
    res_clear(&r);
}

static void test_call_timeout(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    struct gcp_rest_config cfg = {.timeout_ms = 300};
    assert_int_equal(client_with(e, &cfg, &err), 0);
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    call(e, GCP_IAM, "GET", "v1/x", NULL, "get x", 0, &r);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_true(strncmp(r.msg, "GCP get x: ", 11) == 0);
    assert_int_equal(r.g.status, 0);
    res_clear(&r);
}

static void test_call_bad_arguments(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    static const char *const paths[] = {"/v1/x", "",       "v1/a b", "v1/x#f",  "v1/../x",
                                        "../x",  "v1/./x", "v1/é",   "v1/x/..", "v1/a\\b"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(
            gcp_rest_call(e->c, GCP_IAM, "GET", paths[i], NULL, "x", 0, on_res, &r, &err),
            CG_EINVAL);
    }
    assert_int_equal(gcp_rest_call(e->c, GCP_IAM, "GET", NULL, NULL, "x", 0, on_res, &r, &err),
                     CG_EINVAL);
    assert_int_equal(gcp_rest_call(e->c, GCP_IAM, "PUT", "v1/x", NULL, "x", 0, on_res, &r, &err),
                     CG_EINVAL);
    assert_string_equal(err.msg, "GCP x: unsupported method");
    assert_int_equal(
        gcp_rest_call(e->c, GCP_API_COUNT, "GET", "v1/x", NULL, "x", 0, on_res, &r, &err),
        CG_EINVAL);
    assert_int_equal(gcp_rest_call(e->c, GCP_IAM, "GET", "v1/x", NULL, "x", 0, NULL, &r, &err),
                     CG_EINVAL);
    assert_int_equal(gcp_rest_call(NULL, GCP_IAM, "GET", "v1/x", NULL, "x", 0, on_res, &r, &err),
                     CG_EINVAL);
    /* dots inside names and a ".." in the query are fine */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, GCP_IAM, "GET", "v1/projects/p/serviceAccounts/a.b@p.iam.gserviceaccount.com?q=..",
         NULL, NULL, 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(r.calls, 1);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads + st.writes, 1);
    assert_int_equal(e->auth->gets, 1);
    res_clear(&r);
}

static void test_stats(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, GCP_IAM, "GET", "v1/projects/p/serviceAccounts", NULL, "list", 0, &r);
    call(e, GCP_CRM, "POST", "v1/projects/p:getIamPolicy", NULL, "get policy", 0, &r);
    call(e, GCP_CRM, "POST", "v3/projects/p:getIamPolicy?alt=json", NULL, "get policy", 0, &r);
    call(e, GCP_SERVICEUSAGE, "POST", "v1/projects/p/services:batchGet", NULL, "get services", 0,
         &r);
    call(e, GCP_CRM, "POST", "v1/projects/p:setIamPolicy", NULL, "set policy", 0, &r);
    call(e, GCP_SERVICEUSAGE, "POST", "v1/projects/p/services:batchEnable", NULL, "enable", 0, &r);
    call(e, GCP_IAM, "PATCH", "v1/projects/p/roles/r", NULL, "update", 0, &r);
    call(e, GCP_IAM, "DELETE", "v1/projects/p/roles/r", NULL, "delete", 0, &r);
    call(e, GCP_IAM, "POST", "v1/projects/p/roles/r:getIamPolicyX", NULL, "x", 0, &r);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 4);
    assert_int_equal(st.writes, 5);
    res_clear(&r);
}

/* ---- pagination ------------------------------------------------------------------------- */

static void test_call_all_pages(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"accounts\":[{\"email\":\"a\"},{\"email\":\"b\"}],"
                                     "\"nextPageToken\":\"tok/2+=\"}"});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"nextPageToken\":\"t3\"}"});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"accounts\":[{\"email\":\"c\"}],\"nextPageToken\":\"\"}"});
    assert_int_equal(gcp_rest_call_all(e->c, GCP_IAM, "v1/projects/p/serviceAccounts?pageSize=2",
                                       "accounts", "list service accounts", 0, on_res, &r, &err),
                     0);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.msg, "");
    assert_int_equal(json_object_size(r.json), 1);
    json_t *items = json_object_get(r.json, "accounts");
    assert_int_equal(json_array_size(items), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "email")), "a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 2), "email")), "c");
    assert_int_equal(http_mock_count(e->m), 3);
    assert_string_equal(http_mock_req_target(e->m, 0), "/v1/projects/p/serviceAccounts?pageSize=2");
    assert_string_equal(http_mock_req_target(e->m, 1),
                        "/v1/projects/p/serviceAccounts?pageSize=2&pageToken=tok%2F2%2B%3D");
    assert_string_equal(http_mock_req_target(e->m, 2),
                        "/v1/projects/p/serviceAccounts?pageSize=2&pageToken=t3");
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 3);

    /* no query yet: '?'; one page without the list: an empty list */
    http_mock_push(e->m,
                   &(struct http_mock_resp){.body = "{\"roles\":[1],\"nextPageToken\":\"x y\"}"});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{}"});
    res_clear(&r);
    assert_int_equal(gcp_rest_call_all(e->c, GCP_IAM, "v1/projects/p/roles", "roles", "list roles",
                                       0, on_res, &r, &err),
                     0);
    cg_http_run(e->h);
    assert_string_equal(r.msg, "");
    assert_string_equal(http_mock_req_target(e->m, 4), "/v1/projects/p/roles?pageToken=x%20y");
    assert_int_equal(json_array_size(json_object_get(r.json, "roles")), 1);
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{}"});
    res_clear(&r);
    assert_int_equal(gcp_rest_call_all(e->c, GCP_IAM, "v1/projects/p/roles", "roles", "list roles",
                                       0, on_res, &r, &err),
                     0);
    cg_http_run(e->h);
    assert_true(json_is_array(json_object_get(r.json, "roles")));
    assert_int_equal(json_array_size(json_object_get(r.json, "roles")), 0);
    res_clear(&r);
}

static void test_call_all_refusals(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    /* a repeated token would loop forever */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.body = "{\"roles\":[1],\"nextPageToken\":\"same\"}"});
    assert_int_equal(gcp_rest_call_all(e->c, GCP_IAM, "v1/projects/p/roles", "roles", "list roles",
                                       0, on_res, &r, &err),
                     0);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_EINVAL);
    assert_string_equal(r.msg, "GCP list roles: the service repeated a page token (page 2)");
    assert_null(r.json);
    assert_int_equal(http_mock_count(e->m), 2);

    /* the list is not a list; the token is not a string */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{\"roles\":{}}"});
    res_clear(&r);
    assert_int_equal(
        gcp_rest_call_all(e->c, GCP_IAM, "v1/r", "roles", "list roles", 0, on_res, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.code, CG_EINVAL);
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{\"nextPageToken\":5}"});
    res_clear(&r);
    assert_int_equal(
        gcp_rest_call_all(e->c, GCP_IAM, "v1/r", "roles", "list roles", 0, on_res, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.code, CG_EINVAL);

    /* an error on a later page is the result */
    http_mock_push(e->m,
                   &(struct http_mock_resp){.body = "{\"roles\":[1],\"nextPageToken\":\"n\"}"});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 403, .body = GERR(403, "PERMISSION_DENIED", "denied")});
    res_clear(&r);
    assert_int_equal(
        gcp_rest_call_all(e->c, GCP_IAM, "v1/r", "roles", "list roles", 0, on_res, &r, &err), 0);
    cg_http_run(e->h);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.g.rpc, "PERMISSION_DENIED");
    assert_string_equal(r.msg, "GCP list roles: PERMISSION_DENIED: denied");

    assert_int_equal(
        gcp_rest_call_all(e->c, GCP_IAM, "v1/r", NULL, "list roles", 0, on_res, &r, &err),
        CG_EINVAL);
    assert_int_equal(
        gcp_rest_call_all(e->c, GCP_IAM, "/v1/r", "roles", "list roles", 0, on_res, &r, &err),
        CG_EINVAL);
    res_clear(&r);
}

/* ---- long-running operations ------------------------------------------------------------ */

static void test_wait_noop(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    json_t *op = json_loads("{\"name\":\"operations/noop.DONE_OPERATION\",\"done\":true,"
                            "\"response\":{\"services\":[]}}",
                            0, NULL);
    assert_int_equal(gcp_rest_wait(e->c, GCP_SERVICEUSAGE, op, "enable APIs", on_res, &r, &err), 0);
    json_decref(op);
    assert_int_equal(r.calls, 0); /* from the loop, not from inside the call */
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.msg, "");
    assert_true(json_is_object(json_object_get(r.json, "response")));
    assert_int_equal(http_mock_count(e->m), 0);
    /* the noop name alone means done */
    op = json_loads("{\"name\":\"operations/noop.DONE_OPERATION\"}", 0, NULL);
    res_clear(&r);
    assert_int_equal(gcp_rest_wait(e->c, GCP_SERVICEUSAGE, op, "enable APIs", on_res, &r, &err), 0);
    json_decref(op);
    cg_http_run(e->h);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 0);
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads + st.writes, 0);
    res_clear(&r);
}

static void test_wait_polls(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    http_mock_push(e->m, &(struct http_mock_resp){
                             .path = "/v1/operations/acf.p2-123",
                             .body = "{\"name\":\"operations/acf.p2-123\",\"done\":false}"});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .path = "/v1/operations/acf.p2-123",
                             .body = "{\"name\":\"operations/acf.p2-123\",\"done\":true,"
                                     "\"response\":{\"@type\":\"x\",\"services\":[1,2]}}"});
    json_t *op = json_loads("{\"name\":\"operations/acf.p2-123\",\"metadata\":{}}", 0, NULL);
    assert_int_equal(gcp_rest_wait(e->c, GCP_SERVICEUSAGE, op, "enable APIs", on_res, &r, &err), 0);
    json_decref(op);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.msg, "");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(r.json, "response"), "services")), 2);
    assert_int_equal(http_mock_count(e->m), 2);
    assert_string_equal(http_mock_req_method(e->m, 0), "GET");
    assert_string_equal(http_mock_req_target(e->m, 1), "/v1/operations/acf.p2-123");
    assert_string_equal(http_mock_req_header(e->m, 1, "Authorization"), "Bearer fake-token-1");
    struct gcp_rest_stats st;
    gcp_rest_get_stats(e->c, &st);
    assert_int_equal(st.reads, 2);
    assert_int_equal(st.writes, 0);
    res_clear(&r);
}

static void test_wait_error(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    /* failed after a poll */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"name\":\"operations/x\",\"done\":true,\"error\":{"
                                     "\"code\":9,\"message\":\"Constraint violated\",\"details\":[{"
                                     "\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                                     "\"reason\":\"ORG_POLICY\",\"metadata\":{\"service\":"
                                     "\"serviceusage.googleapis.com\"}}]}}"});
    json_t *op = json_loads("{\"name\":\"operations/x\"}", 0, NULL);
    assert_int_equal(gcp_rest_wait(e->c, GCP_SERVICEUSAGE, op, "enable APIs", on_res, &r, &err), 0);
    json_decref(op);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.g.rpc, "FAILED_PRECONDITION");
    assert_int_equal(r.g.status, 400);
    assert_int_equal(r.http_status, 400);
    assert_string_equal(r.g.reason, "ORG_POLICY");
    assert_string_equal(r.g.service, "serviceusage.googleapis.com");
    assert_string_equal(r.msg, "GCP enable APIs: FAILED_PRECONDITION: Constraint violated");

    /* done with an error from the start: no call */
    static const struct {
        const char *op;
        int code;
        const char *rpc;
        long status;
        const char *msg;
    } cases[] = {
        {"{\"done\":true,\"error\":{\"code\":7,\"message\":\"denied\"}}", CG_EAUTH,
         "PERMISSION_DENIED", 403, "GCP op: PERMISSION_DENIED: denied"},
        {"{\"done\":true,\"error\":{\"code\":5}}", CG_ENOTFOUND, "NOT_FOUND", 404,
         "GCP op: NOT_FOUND"},
        {"{\"done\":true,\"error\":{\"code\":16,\"message\":\"m\"}}", CG_EAUTH, "UNAUTHENTICATED",
         401, "GCP op: UNAUTHENTICATED: m"},
        {"{\"done\":true,\"error\":{\"code\":10}}", CG_ESTATUS, "ABORTED", 409, "GCP op: ABORTED"},
        {"{\"done\":true,\"error\":{\"code\":8}}", CG_ESTATUS, "RESOURCE_EXHAUSTED", 429,
         "GCP op: RESOURCE_EXHAUSTED"},
        {"{\"done\":true,\"error\":{\"code\":14}}", CG_ESTATUS, "UNAVAILABLE", 503,
         "GCP op: UNAVAILABLE"},
        {"{\"done\":true,\"error\":{\"code\":6}}", CG_ESTATUS, "ALREADY_EXISTS", 409,
         "GCP op: ALREADY_EXISTS"},
        {"{\"done\":true,\"error\":{\"code\":3}}", CG_ESTATUS, "INVALID_ARGUMENT", 400,
         "GCP op: INVALID_ARGUMENT"},
        {"{\"done\":true,\"error\":{\"code\":13}}", CG_ESTATUS, "INTERNAL", 500,
         "GCP op: INTERNAL"},
        {"{\"done\":true,\"error\":{\"code\":99,\"message\":\"?\"}}", CG_ESTATUS, "", 500,
         "GCP op: operation failed (code 99): ?"},
        {"{\"done\":true,\"error\":{\"message\":\"no code\"}}", CG_ESTATUS, "", 500,
         "GCP op: operation failed: no code"},
        {"{\"done\":true,\"error\":\"weird\"}", CG_ESTATUS, "", 500, "GCP op: operation failed"},
        {"{\"done\":true,\"error\":{\"code\":\"5\",\"status\":\"NOT_FOUND\"}}", CG_ENOTFOUND,
         "NOT_FOUND", 404, "GCP op: NOT_FOUND"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        op = json_loads(cases[i].op, 0, NULL);
        assert_non_null(op);
        res_clear(&r);
        assert_int_equal(gcp_rest_wait(e->c, GCP_SERVICEUSAGE, op, "op", on_res, &r, &err), 0);
        json_decref(op);
        cg_http_run(e->h);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.code, cases[i].code);
        assert_string_equal(r.g.rpc, cases[i].rpc);
        assert_int_equal(r.g.status, cases[i].status);
        assert_string_equal(r.msg, cases[i].msg);
    }
    assert_int_equal(http_mock_count(e->m), 1);
    res_clear(&r);
}

static void test_wait_timeout_and_refusals(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    client(e, 200, 20);
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{\"name\":\"operations/slow\"}"});
    json_t *op = json_loads("{\"name\":\"operations/slow\",\"done\":false}", 0, NULL);
    uint64_t t0 = cg_now_ms();
    assert_int_equal(gcp_rest_wait(e->c, GCP_CRM, op, "create project", on_res, &r, &err), 0);
    cg_http_run(e->h);
    uint64_t took = cg_now_ms() - t0;
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_string_equal(r.msg,
                        "GCP create project: operation operations/slow not done after 0.2 s");
    assert_true(took >= 200 && took < 3000);
    assert_true(http_mock_count(e->m) >= 2);

    /* a poll that fails is the result */
    http_mock_set_default(e->m, &(struct http_mock_resp){
                                    .status = 404, .body = GERR(404, "NOT_FOUND", "no such op")});
    res_clear(&r);
    assert_int_equal(gcp_rest_wait(e->c, GCP_CRM, op, "create project", on_res, &r, &err), 0);
    json_decref(op);
    cg_http_run(e->h);
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_string_equal(r.msg, "GCP create project: NOT_FOUND: no such op");

    /* not done and no usable name: nothing to poll */
    static const char *const bad[] = {"{}",
                                      "{\"done\":false}",
                                      "{\"name\":5}",
                                      "{\"name\":\"../../evil\"}",
                                      "{\"name\":\"operations/x?alt=1\"}",
                                      "{\"name\":\"operations/a b\"}",
                                      "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        op = json_loads(bad[i], 0, NULL);
        assert_non_null(op);
        assert_int_equal(gcp_rest_wait(e->c, GCP_CRM, op, "x", on_res, &r, &err), CG_EINVAL);
        json_decref(op);
    }
    assert_int_equal(gcp_rest_wait(e->c, GCP_CRM, NULL, "x", on_res, &r, &err), CG_EINVAL);
    res_clear(&r);
}

/* ---- endpoints -------------------------------------------------------------------------- */

static void test_endpoint_prefix(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    snprintf(env_iam, sizeof(env_iam), "%s/gcp/iam", e->base);
    env_su[0] = '\0'; /* empty: the default */
    snprintf(env_crm, sizeof(env_crm), "%s/crm//", e->base);
    client(e, 1000, 10);
    char want[160];
    snprintf(want, sizeof(want), "%s/gcp/iam/", e->base);
    assert_string_equal(gcp_rest_endpoint(e->c, GCP_IAM), want);
    assert_string_equal(gcp_rest_endpoint(e->c, GCP_SERVICEUSAGE),
                        "https://serviceusage.googleapis.com/");
    snprintf(want, sizeof(want), "%s/crm//", e->base);
    assert_string_equal(gcp_rest_endpoint(e->c, GCP_CRM), want);
    assert_null(gcp_rest_endpoint(e->c, GCP_API_COUNT));
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, GCP_IAM, "GET", "v1/projects/p/roles?view=FULL", NULL, "list roles", 0, &r);
    assert_string_equal(r.msg, "");
    assert_string_equal(http_mock_req_target(e->m, 0), "/gcp/iam/v1/projects/p/roles?view=FULL");
    res_clear(&r);

    /* the defaults with no variable at all */
    struct gcp_rest *d = NULL;
    struct cg_err err = {0};
    static const char *(*none)(const char *) = NULL;
    struct gcp_rest_config cfg = {.getenv = none};
    unsetenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM");
    unsetenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE");
    unsetenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER");
    assert_int_equal(gcp_rest_new(&d, e->h, e->auth, &cfg, &err), 0);
    assert_string_equal(gcp_rest_endpoint(d, GCP_IAM), "https://iam.googleapis.com/");
    assert_string_equal(gcp_rest_endpoint(d, GCP_CRM),
                        "https://cloudresourcemanager.googleapis.com/");
    gcp_rest_free(d);
    /* the process environment when no getenv is injected */
    setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER", "https://crm.example/x", 1);
    assert_int_equal(gcp_rest_new(&d, e->h, e->auth, NULL, &err), 0);
    assert_string_equal(gcp_rest_endpoint(d, GCP_CRM), "https://crm.example/x/");
    gcp_rest_free(d);
    unsetenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER");
}

static void test_endpoint_refused(void **state)
{
    struct env *e = *state;
    struct cg_err err = {0};
    struct gcp_rest_config cfg = {0};
    static const struct {
        const char *value;
        const char *msg; /* a part of the message */
    } cases[] = {
        {"http://example.com/",
         "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE 'http://example.com/' "
         "uses plain http to a non-loopback host"},
        {"ftp://example.com/", "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE 'ftp://example.com/' "
                               "must start with https://"},
        {"example.com", "must start with https://"},
        {"https://", "'https://' has no host"},
        {"https://:443/", "has no host"},
        {"https://h/x?alt=json", "must not have a query string or fragment"},
        {"https://h/x#f", "must not have a query string or fragment"},
        {"https://user:secret@h/", "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE must not contain "
                                   "user information"},
        {"https://h/a b", "without spaces or control characters"},
        {"https://h/\n", "without spaces or control characters"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(env_su, sizeof(env_su), "%s", cases[i].value);
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
    snprintf(env_su, sizeof(env_su), "http://example.com");
    cfg.allow_insecure_http = 1;
    assert_int_equal(client_with(e, &cfg, &err), 0);
    assert_string_equal(gcp_rest_endpoint(e->c, GCP_SERVICEUSAGE), "http://example.com/");
    snprintf(env_su, sizeof(env_su), "http://[::1]:8080/p");
    cfg.allow_insecure_http = 0;
    assert_int_equal(client_with(e, &cfg, &err), 0);
    assert_int_equal(gcp_rest_new(NULL, e->h, e->auth, &cfg, &err), CG_EINVAL);
    assert_int_equal(gcp_rest_new(&e->c, e->h, NULL, &cfg, &err), CG_EINVAL);
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
    char path[] = "/tmp/cg-gcp-rest-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    cg_log_setup(CG_LOG_TRACE, CG_LOG_TEXT);

    http_mock_push(e->m, &(struct http_mock_resp){.status = 403, .body = SERVICE_DISABLED_BODY});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"name\":\"k\",\"privateKeyData\":\"UFJJVkFURUtFWQ==\"}"});
    json_t *body = json_pack("{s:s}", "privateKeyType", "SECRETBODYVALUE");
    call(e, GCP_IAM, "POST", "v1/projects/p/serviceAccounts/sa@p.iam.gserviceaccount.com/keys",
         body, "create key for 'sa'", GCP_RETRY_SERVICE_DISABLED, &r);
    json_decref(body);
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400,
                             .body = "{\"error\":{\"status\":\"INVALID_ARGUMENT\",\"message\":"
                                     "\"UFJJVkFURUtFWQ\"},\"privateKeyData\":\"UFJJVkFURUtFWQ\"}"});
    call(e, GCP_IAM, "GET", "v1/x?pageToken=abc", NULL, "get x", 0, &r);

    fflush(stderr);
    cg_log_setup(CG_LOG_WARN, CG_LOG_TEXT);
    dup2(saved, 2);
    close(saved);
    char *log = read_all(fd);
    close(fd);
    assert_non_null(strstr(log, "GCP POST iam v1/projects/p/serviceAccounts/"
                                "sa@p.iam.gserviceaccount.com/keys (create key for 'sa') -> 403 "
                                "PERMISSION_DENIED SERVICE_DISABLED"));
    assert_non_null(strstr(log, "SERVICE_DISABLED (iam.googleapis.com), waiting "));
    assert_non_null(strstr(log, "GCP POST iam v1/projects/p/serviceAccounts/"
                                "sa@p.iam.gserviceaccount.com/keys (create key for 'sa') -> 200"));
    assert_non_null(strstr(log, "GCP GET iam v1/x (get x) -> 400 INVALID_ARGUMENT"));
    assert_null(strstr(log, "UFJJVkFURUtFWQ"));
    assert_null(strstr(log, "SECRETBODYVALUE"));
    assert_null(strstr(log, "fake-token"));
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
        cmocka_unit_test(test_parse_error_shapes),
        cmocka_unit_test(test_parse_error_info),
        cmocka_unit_test(test_parse_non_google_errors),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_body_never_in_message),
        cmocka_unit_test_setup_teardown(test_call_request_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_error_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_401_refreshes_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_503_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_service_disabled_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_service_disabled_budget_spent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_not_found_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_consecutive_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_cancelled_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_token_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_timeout_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_never_show_secrets, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cg_http_global_cleanup();
    return rc;
}
