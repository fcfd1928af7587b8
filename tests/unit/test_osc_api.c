/* cloud/outscale/api.c: the response parser on canned bodies (Outscale's error shape, each
 * error class, problem+json, non-JSON errors, hostile JSON, caps), then whole calls on a real
 * loop against tests/support/http_mock: the request's shape and its OSC4 signature (checked
 * against one computed here, independently, with OpenSSL from the steps of protocols.md 4.1),
 * a fresh signature per attempt, throttling retried, a 401 never retried, consistency retries
 * and their budget, cancellation, paging, stats, action names, endpoints, the client
 * certificate, and what the debug log may show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_buf.h"
#include "cg_err.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_log.h"
#include "cg_util.h"
#include "http_mock.h"
#include "outscale/osc_api.h"
#include "outscale/osc_auth.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define AK "F4K4T706S9000EXAMPLE"
#define SK "E4XJE8EJ98ZEJ18E4J9ZE84J19Q8E1000EXAMPLE"

#define assert_prefix(s, prefix) assert_memory_equal((s), (prefix), strlen(prefix))

#define OERR(type, code, details)                                                                  \
    "{\"Errors\":[{\"Type\":\"" type "\",\"Code\":\"" code "\",\"Details\":\"" details "\"}],"     \
    "\"ResponseContext\":{\"RequestId\":\"0a1b2c3d-req\"}}"

/* ---- parser ----------------------------------------------------------------------------- */

struct parsed {
    int rc;
    json_t *json;
    struct osc_error o;
    struct cg_err err;
};

static void parse_n(struct parsed *p, const char *body, size_t len, long status, const char *label)
{
    memset(p, 0, sizeof(*p));
    p->rc = osc_api_parse_response(body, len, status, label, &p->json, &p->o, &p->err);
    if (p->rc == 0) {
        assert_non_null(p->json);
        assert_true(json_is_object(p->json));
    } else {
        assert_null(p->json);
        assert_int_equal(p->err.code, p->rc);
        assert_null(strpbrk(p->err.msg, "\r\n"));
        assert_int_equal(p->o.status, status);
        assert_int_equal(p->err.http_status, status);
        assert_prefix(p->err.msg, "OUTSCALE");
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

static void test_parse_success(void **state)
{
    (void)state;
    struct parsed p;
    parse(&p,
          "{\"User\":{\"UserId\":\"ABCDEF\",\"UserName\":\"u\",\"Path\":\"/\"},"
          "\"ResponseContext\":{\"RequestId\":\"r\"}}",
          200, "create user 'u'");
    assert_int_equal(p.rc, 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p.json, "User"), "UserName")), "u");
    parsed_free(&p);
    static const char *const empty[] = {"", " \r\n\t ", NULL};
    for (size_t i = 0; i < 3; i++) {
        parse(&p, empty[i], 200, "x");
        assert_int_equal(p.rc, 0);
        assert_int_equal(json_object_size(p.json), 0);
        parsed_free(&p);
    }
    /* Errors in a 2xx answer do not make it an error */
    parse(&p, OERR("InvalidResource", "5071", "x"), 200, "x");
    assert_int_equal(p.rc, 0);
    parsed_free(&p);
}

static void test_parse_2xx_not_object(void **state)
{
    (void)state;
    static const char *const bodies[] = {"ok",
                                         "[1,2]",
                                         "\"str\"",
                                         "{\"a\":1} x",
                                         "{\"a\":",
                                         "<html></html>",
                                         "null",
                                         "{\"a\":\"\\u0000\"}",
                                         "{\"a\":\"\xc3\x28\"}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct parsed p;
        parse(&p, bodies[i], 200, "read users");
        assert_int_equal(p.rc, CG_EINVAL);
        assert_string_equal(p.err.msg, "OUTSCALE read users: invalid response (HTTP 200)");
        assert_string_equal(p.o.type, "");
        assert_string_equal(p.o.code, "");
    }
}

static void test_parse_error_classes(void **state)
{
    (void)state;
    struct parsed p;
    /* the header's example */
    parse(
        &p,
        OERR("ResourceConflict", "9073", "The user name 'platform-access-prod' is already in use."),
        409, "create user 'platform-access-prod'");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.o.type, "ResourceConflict");
    assert_string_equal(p.o.code, "9073");
    assert_string_equal(p.o.request_id, "0a1b2c3d-req");
    assert_string_equal(p.err.msg,
                        "OUTSCALE create user 'platform-access-prod': ResourceConflict (9073): "
                        "The user name 'platform-access-prod' is already in use.");
    assert_true(osc_error_is_conflict(&p.o));

    static const struct {
        long status;
        const char *type;
        int errc;
        int conflict;
        int lock_note;
    } cases[] = {
        {400, "InvalidResource", CG_ENOTFOUND, 0, 0},
        {404, "InvalidResource", CG_ENOTFOUND, 0, 0},
        {404, "Whatever", CG_ENOTFOUND, 0, 0},
        {400, "ResourceConflict", CG_ESTATUS, 1, 0},
        {409, "InvalidParameterValue", CG_ESTATUS, 1, 0},
        {401, "AccessDenied", CG_EAUTH, 0, 1},
        {401, "AuthFailure", CG_EAUTH, 0, 1},
        {403, "AccessDenied", CG_EAUTH, 0, 0},
        {400, "AccessDenied", CG_EAUTH, 0, 0},
        {400, "AuthFailure", CG_EAUTH, 0, 1},
        {400, "InvalidParameterValue", CG_ESTATUS, 0, 0},
        {400, "TooManyResources", CG_ESTATUS, 0, 0},
        {400, "RequestLimitExceeded", CG_ESTATUS, 0, 0},
        {500, "InternalError", CG_ESTATUS, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"Errors\":[{\"Type\":\"%s\",\"Code\":\"4045\",\"Details\":\"d\"}]}",
                 cases[i].type);
        parse(&p, body, cases[i].status, "x");
        assert_int_equal(p.rc, cases[i].errc);
        assert_string_equal(p.o.type, cases[i].type);
        assert_string_equal(p.o.code, "4045");
        assert_string_equal(p.o.details, "d");
        assert_string_equal(p.o.request_id, "");
        assert_int_equal(osc_error_is_conflict(&p.o), cases[i].conflict);
        char want[128];
        snprintf(want, sizeof(want), "OUTSCALE x: %s (4045): d", cases[i].type);
        if (cases[i].lock_note) {
            assert_prefix(p.err.msg, want);
            assert_non_null(strstr(p.err.msg, "four refusals in a row lock the key for a minute"));
        } else {
            assert_string_equal(p.err.msg, want);
        }
    }
    /* no Type: the status stands in; no Details: left out; a non-digit Code is a name */
    parse(&p, "{\"Errors\":[{\"Code\":\"1\"}]}", 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "OUTSCALE x: HTTP 400 (1)");
    parse(&p, "{\"Errors\":[{\"Code\":\"RequestLimitExceeded\"}]}", 503, NULL);
    assert_string_equal(p.o.type, "RequestLimitExceeded");
    assert_string_equal(p.o.code, "");
    assert_string_equal(p.err.msg, "OUTSCALE: RequestLimitExceeded");
    parse(&p, "{\"Errors\":[{\"Details\":\"only details\"},{\"Type\":\"Second\"}]}", 500, "x");
    assert_string_equal(p.err.msg, "OUTSCALE x: HTTP 500: only details");
    assert_false(osc_error_is_conflict(NULL));
}

static void test_parse_problem_json(void **state)
{
    (void)state;
    struct parsed p;
    parse(&p,
          "{\"type\":\"about:blank\",\"title\":\"Unauthorized\",\"status\":401,"
          "\"detail\":\"bad signature\"}",
          401, "check authentication");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_string_equal(p.o.type, "Unauthorized");
    assert_string_equal(p.o.details, "bad signature");
    assert_prefix(p.err.msg, "OUTSCALE check authentication: Unauthorized: bad signature (the "
                             "signature was refused");
    parse(&p, "{\"title\":\"Bad Request\",\"status\":400,\"detail\":\"FirstItem is negative\"}",
          400, "read users");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.o.type, "");
    assert_string_equal(p.o.details, "Bad Request: FirstItem is negative");
    assert_string_equal(p.err.msg, "OUTSCALE read users: HTTP 400: Bad Request: FirstItem is "
                                   "negative");
    parse(&p, "{\"title\":\"Not Found\"}", 404, "x");
    assert_int_equal(p.rc, CG_ENOTFOUND);
    assert_string_equal(p.err.msg, "OUTSCALE x: HTTP 404: Not Found");
    /* the body's own status does not count */
    parse(&p, "{\"title\":\"Conflict\",\"status\":409}", 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_false(osc_error_is_conflict(&p.o));
}

static void test_parse_no_error_body(void **state)
{
    (void)state;
    struct parsed p;
    static const struct {
        const char *body;
        long status;
        int errc;
    } cases[] = {
        {"", 502, CG_ESTATUS},
        {"<html><body>502 Bad Gateway</body></html>", 502, CG_ESTATUS},
        {"", 500, CG_ESTATUS},
        {"Not Found", 404, CG_ESTATUS}, /* a wrong endpoint says nothing about the resource */
        {"{\"Errors\":[]}", 400, CG_ESTATUS},
        {"{\"Errors\":[{}]}", 400, CG_ESTATUS},
        {"{\"Errors\":[{\"Type\":5,\"Code\":[]}]}", 400, CG_ESTATUS},
        {"{\"Errors\":{\"Type\":\"InvalidResource\"}}", 400, CG_ESTATUS},
        {"{\"message\":\"x\"}", 400, CG_ESTATUS},
        {"[]", 409, CG_ESTATUS},
        {"", 403, CG_EAUTH},
        {"{\"a\":1}", 302, CG_ESTATUS},
        {"{}", 0, CG_ESTATUS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse(&p, cases[i].body, cases[i].status, "read users");
        assert_int_equal(p.rc, cases[i].errc);
        char want[96];
        snprintf(want, sizeof(want), "OUTSCALE read users: invalid response (HTTP %ld)",
                 cases[i].status);
        assert_string_equal(p.err.msg, want);
        assert_string_equal(p.o.type, "");
    }
    /* a 401 without a body still says why it is not repeated */
    parse(&p, "", 401, "x");
    assert_int_equal(p.rc, CG_EAUTH);
    assert_prefix(p.err.msg, "OUTSCALE x: invalid response (HTTP 401) (the signature was refused");
    /* a bodiless 409 is a conflict by its status */
    parse(&p, "", 409, "x");
    assert_true(osc_error_is_conflict(&p.o));
}

static int utf8_valid(const char *s)
{
    json_t *j = json_string(s);
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

static void test_parse_hostile(void **state)
{
    (void)state;
    struct parsed p;
    /* hostile identifiers: left out rather than carried */
    parse(&p,
          "{\"Errors\":[{\"Type\":\"evil\\nheader\",\"Code\":\"12a\",\"Details\":\"d\"}],"
          "\"ResponseContext\":{\"RequestId\":\"r\\r\\nX: 1\"}}",
          400, "x");
    assert_string_equal(p.o.type, "");
    assert_string_equal(p.o.code, "");
    assert_string_equal(p.o.request_id, "");
    assert_string_equal(p.err.msg, "OUTSCALE x: HTTP 400: d");
    parse(&p, "{\"Errors\":[{\"Type\":\"T\",\"Code\":\"12345678901234567890\"}]}", 400, "x");
    assert_string_equal(p.o.code, ""); /* too long for the field */
    /* details on one line, control characters replaced, label too */
    parse(&p, OERR("T", "1", "a\\nb\\r\\n\\tc\\u0007d  "), 400, "x\ny");
    assert_string_equal(p.o.details, "a b c?d");
    assert_string_equal(p.err.msg, "OUTSCALE x y: T (1): a b c?d");

    /* long details are cut with "...", at a character boundary; the message stays whole */
    size_t n = 20000;
    char *big = malloc(n + 200);
    assert_non_null(big);
    strcpy(big, "{\"Errors\":[{\"Type\":\"T\",\"Code\":\"1\",\"Details\":\"");
    size_t o = strlen(big);
    for (size_t i = 0; i < n / 2; i++) {
        big[o++] = '\xc3';
        big[o++] = '\xa9';
    }
    strcpy(big + o, "\"}]}");
    parse(&p, big, 401, "x");
    assert_true(strlen(p.o.details) < sizeof(p.o.details));
    assert_string_equal(p.o.details + strlen(p.o.details) - 3, "...");
    assert_true(utf8_valid(p.o.details));
    assert_true(utf8_valid(p.err.msg));
    /* the lock note survives a long message */
    assert_non_null(strstr(p.err.msg, "check the access key, the secret key and the region)"));
    free(big);

    /* nesting over 128 levels is refused, in success and error answers */
    char nest[800];
    for (int depth = 127; depth <= 129; depth++) {
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
    strcpy(nest, "{\"Errors\":[{\"Type\":\"T\",\"x\":");
    o = strlen(nest);
    for (int i = 0; i < 130; i++) {
        nest[o++] = '[';
    }
    for (int i = 0; i < 130; i++) {
        nest[o++] = ']';
    }
    strcpy(nest + o, "}]}");
    parse(&p, nest, 400, "x");
    assert_int_equal(p.rc, CG_ESTATUS);
    assert_string_equal(p.err.msg, "OUTSCALE x: invalid response (HTTP 400)");
    n = 200000;
    big = malloc(n * 2 + 1);
    assert_non_null(big);
    memset(big, '[', n);
    memset(big + n, ']', n);
    big[2 * n] = '\0';
    parse(&p, big, 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);
    free(big);

    /* bad UTF-8, surrogates and escaped NULs */
    parse(&p, "{\"a\":\"\xed\xa0\x80\"}", 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);
    parse(&p, "{\"Errors\":[{\"Type\":\"T\",\"Details\":\"\xc3\x28\"}]}", 400, "x");
    assert_string_equal(p.err.msg, "OUTSCALE x: invalid response (HTTP 400)");
    parse_n(&p, "{\"a\":1}\0{", 9, 200, "x");
    assert_int_equal(p.rc, CG_EINVAL);

    /* over 8 MiB: too big, whatever it is */
    n = (size_t)8 * 1024 * 1024 + 1;
    big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    parse_n(&p, big, n, 200, "read users");
    assert_int_equal(p.rc, CG_ETOOBIG);
    assert_string_equal(p.err.msg, "OUTSCALE read users: response too large (HTTP 200)");
    parse_n(&p, big, n, 400, "x");
    assert_int_equal(p.rc, CG_ETOOBIG);
    parse_n(&p, big, n - 1, 200, "x"); /* 8 MiB exactly is parsed (and not closed: invalid) */
    assert_int_equal(p.rc, CG_EINVAL);
    free(big);

    struct cg_err err = {0};
    assert_int_equal(osc_api_parse_response("{}", 2, 200, "x", NULL, NULL, &err), CG_EINVAL);
    json_t *j = NULL;
    const char *nf = OERR("InvalidResource", "5071", "no such user");
    assert_int_equal(osc_api_parse_response(nf, strlen(nf), 400, "x", &j, NULL, &err),
                     CG_ENOTFOUND);
    assert_null(j);
    assert_int_equal(osc_api_parse_response(nf, strlen(nf), 400, "x", &j, NULL, NULL),
                     CG_ENOTFOUND);
}

static void test_parse_body_never_in_message(void **state)
{
    (void)state;
    struct parsed p;
    static const char *const bodies[] = {
        "{\"AccessKey\":{\"SecretKey\":\"U0VDUkVU\"},\"Errors\":[{\"Type\":\"T\"}]}",
        "{\"AccessKey\":{\"SecretKey\":\"U0VDUkVU\"}",
        "{\"AccessKey\":{\"SecretKey\":\"U0VDUkVU\"}}",
    };
    static const long statuses[] = {200, 400, 401, 502};
    for (size_t i = 0; i < 3; i++) {
        for (size_t s = 0; s < 4; s++) {
            parse(&p, bodies[i], statuses[s], "create access key");
            assert_null(strstr(p.err.msg, "U0VDUkVU"));
            assert_null(strstr(p.o.details, "U0VDUkVU"));
            parsed_free(&p);
        }
    }
}

/* ---- whole calls against http_mock ------------------------------------------------------ */

static int64_t clock_now = 1700000000; /* 2023-11-14T22:13:20Z */
static int64_t clock_step;             /* added after each reading */
static int clock_reads;

static int64_t fixed_clock(void)
{
    int64_t t = clock_now;
    clock_now += clock_step;
    clock_reads++;
    return t;
}

struct env {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    struct osc_api *c;
    struct osc_credentials creds;
    char base[96];      /* http://127.0.0.1:<port> */
    char endpoint[128]; /* <base>/api/v1 */
    char host[64];      /* 127.0.0.1:<port> */
};

struct res {
    int calls;
    int code;
    long http_status;
    struct osc_error o;
    char msg[CG_ERR_MSG_MAX];
    json_t *json;
};

static void on_res(json_t *result, const struct osc_error *oerr, const struct cg_err *err,
                   void *data)
{
    struct res *r = data;
    r->calls++;
    if (err != NULL) {
        assert_non_null(oerr);
        assert_null(result);
        r->code = err->code;
        r->http_status = err->http_status;
        r->o = *oerr;
        assert_int_equal(oerr->status, err->http_status);
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
        assert_prefix(err->msg, "OUTSCALE");
        assert_null(strpbrk(err->msg, "\r\n"));
        assert_null(strstr(err->msg, SK));
    } else {
        assert_null(oerr);
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

static int client_with(struct env *e, const struct osc_api_config *cfg, struct cg_err *err)
{
    osc_api_free(e->c);
    e->c = NULL;
    struct osc_api_config c = *cfg;
    c.now = fixed_clock;
    return osc_api_new(&e->c, e->h, &e->creds, &c, err);
}

static void client(struct env *e, long consistency_ms, long poll_ms)
{
    struct cg_err err = {0};
    struct osc_api_config cfg = {
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
    snprintf(e->host, sizeof(e->host), "127.0.0.1:%d", http_mock_port(e->m));
    snprintf(e->base, sizeof(e->base), "http://%s", e->host);
    snprintf(e->endpoint, sizeof(e->endpoint), "%s/api/v1", e->base);
    e->creds.access_key = AK;
    e->creds.secret_key = SK;
    e->creds.region = "eu-west-2";
    e->creds.endpoint_api = e->endpoint;
    e->creds.endpoint_eim = "https://eim.eu-west-2.outscale.com";
    e->creds.source = "environment";
    clock_now = 1700000000;
    clock_step = 0;
    clock_reads = 0;
    client(e, 2000, 10);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    osc_api_free(e->c);
    if (e->h != NULL) {
        cg_http_close(e->h);
    }
    http_mock_close(e->m);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void call(struct env *e, const char *action, json_t *body, const char *label, int flags,
                 struct res *r)
{
    struct cg_err err = {0};
    res_clear(r);
    if (osc_api_call(e->c, action, body, label, flags, on_res, r, &err) != 0) {
        fail_msg("call: %s", err.msg);
    }
    assert_int_equal(r->calls, 0); /* never from inside the call */
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static void call_all(struct env *e, const char *action, json_t *body, const char *list_key,
                     long page_size, const char *label, int flags, struct res *r)
{
    struct cg_err err = {0};
    res_clear(r);
    if (osc_api_call_all(e->c, action, body, list_key, page_size, label, flags, on_res, r, &err) !=
        0) {
        fail_msg("call_all: %s", err.msg);
    }
    assert_int_equal(r->calls, 0);
    cg_http_run(e->h);
    assert_int_equal(r->calls, 1);
}

static struct osc_api_stats stats(struct env *e)
{
    struct osc_api_stats st;
    osc_api_get_stats(e->c, &st);
    return st;
}

/* ---- the OSC4 signature, computed here from protocols.md 4.1 ---------------------------- */

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
    unsigned char h[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(d, n, h, &len, EVP_sha256(), NULL), 1);
    to_hex(h, 32, out);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    assert_non_null(
        HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len));
    assert_int_equal(len, 32);
}

/* The Authorization header an OSC4 signer must send for POST <path> with body to host at
 * date (YYYYMMDDTHHMMSSZ): the canonical request over content-type, host and x-osc-date, the
 * string to sign with the scope <day>/<region>/api/osc4_request, and the key derived from
 * "OSC4" + secret. */
static void expected_authorization(const char *host, const char *path, const char *body,
                                   size_t blen, const char *date, char *out, size_t cap)
{
    char day[9];
    memcpy(day, date, 8);
    day[8] = '\0';
    char body_hash[65];
    sha256_hex(body, blen, body_hash);
    char canonical[1024];
    snprintf(canonical, sizeof(canonical),
             "POST\n%s\n\ncontent-type:application/json\nhost:%s\nx-osc-date:%s\n\n"
             "content-type;host;x-osc-date\n%s",
             path, host, date, body_hash);
    char canonical_hash[65];
    sha256_hex(canonical, strlen(canonical), canonical_hash);
    char sts[512];
    snprintf(sts, sizeof(sts), "OSC4-HMAC-SHA256\n%s\n%s/eu-west-2/api/osc4_request\n%s", date, day,
             canonical_hash);
    unsigned char k[32];
    const char *seed = "OSC4" SK;
    hmac(seed, strlen(seed), day, k);
    hmac(k, 32, "eu-west-2", k);
    hmac(k, 32, "api", k);
    hmac(k, 32, "osc4_request", k);
    unsigned char sig[32];
    hmac(k, 32, sts, sig);
    char sig_hex[65];
    to_hex(sig, 32, sig_hex);
    snprintf(out, cap,
             "OSC4-HMAC-SHA256 Credential=" AK "/%s/eu-west-2/api/osc4_request, "
             "SignedHeaders=content-type;host;x-osc-date, Signature=%s",
             day, sig_hex);
}

static void assert_signed(struct env *e, int i, const char *path, const char *date)
{
    size_t len = 0;
    const char *body = http_mock_req_body(e->m, i, &len);
    char want[512];
    expected_authorization(e->host, path, body, len, date, want, sizeof(want));
    assert_string_equal(http_mock_req_header(e->m, i, "X-Osc-Date"), date);
    assert_string_equal(http_mock_req_header(e->m, i, "Authorization"), want);
    assert_int_equal(http_mock_req_header_count(e->m, i, "Authorization"), 1);
    assert_string_equal(http_mock_req_header(e->m, i, "Host"), e->host);
}

static void test_call_request_shape(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    size_t len = 0;
    http_mock_push(
        e->m, &(struct http_mock_resp){
                  .body = "{\"User\":{\"UserId\":\"ID1\",\"UserName\":\"platform-access-prod\","
                          "\"Path\":\"/\"},\"ResponseContext\":{\"RequestId\":\"r1\"}}"});
    json_t *body = json_pack("{s:s, s:s}", "UserName", "platform-access-prod", "Path", "/");
    call(e, "CreateUser", body, "create user 'platform-access-prod'", 0, &r);
    json_decref(body);
    assert_string_equal(r.msg, "");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "User"), "UserId")), "ID1");
    assert_int_equal(http_mock_count(e->m), 1);
    assert_string_equal(http_mock_req_method(e->m, 0), "POST");
    assert_string_equal(http_mock_req_target(e->m, 0), "/api/v1/CreateUser");
    assert_string_equal(http_mock_req_header(e->m, 0, "Content-Type"), "application/json");
    assert_string_equal(http_mock_req_header(e->m, 0, "User-Agent"), "cloudgrant/" CG_VERSION);
    assert_string_equal(http_mock_req_body(e->m, 0, &len),
                        "{\"UserName\":\"platform-access-prod\",\"Path\":\"/\"}");
    assert_signed(e, 0, "/api/v1/CreateUser", "20231114T221320Z");
    assert_null(http_mock_req_header(e->m, 0, "X-Amz-Date"));
    assert_null(http_mock_req_header(e->m, 0, "X-Amz-Security-Token"));
    /* the header's shape, spelled out */
    assert_prefix(http_mock_req_header(e->m, 0, "Authorization"),
                  "OSC4-HMAC-SHA256 Credential=F4K4T706S9000EXAMPLE/20231114/eu-west-2/api/"
                  "osc4_request, SignedHeaders=content-type;host;x-osc-date, Signature=");

    /* no body: "{}"; no label: the action names the call */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400, .body = OERR("InvalidParameterValue", "4045", "bad")});
    clock_now = 1700086400; /* a day later */
    call(e, "CheckAuthentication", NULL, NULL, 0, &r);
    assert_string_equal(r.msg, "OUTSCALE CheckAuthentication: InvalidParameterValue (4045): bad");
    assert_string_equal(http_mock_req_target(e->m, 1), "/api/v1/CheckAuthentication");
    assert_string_equal(http_mock_req_body(e->m, 1, &len), "{}");
    assert_signed(e, 1, "/api/v1/CheckAuthentication", "20231115T221320Z");
    res_clear(&r);
}

static void test_call_endpoint_paths(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    /* another path prefix (osc-cli's /api/latest), with a trailing '/' */
    char ep[160];
    snprintf(ep, sizeof(ep), "%s/api/latest/", e->base);
    e->creds.endpoint_api = ep;
    struct osc_api_config cfg = {.timeout_ms = 5000};
    assert_int_equal(client_with(e, &cfg, &err), 0);
    char want[160];
    snprintf(want, sizeof(want), "%s/api/latest", e->base);
    assert_string_equal(osc_api_endpoint(e->c), want);
    assert_string_equal(osc_api_region(e->c), "eu-west-2");
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, "ReadAccounts", NULL, "read accounts", 0, &r);
    assert_string_equal(r.msg, "");
    assert_string_equal(http_mock_req_target(e->m, 0), "/api/latest/ReadAccounts");
    assert_signed(e, 0, "/api/latest/ReadAccounts", "20231114T221320Z");
    res_clear(&r);
}

static void test_call_fresh_signature_per_attempt(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    clock_step = 7;
    /* throttling as a 400: retried by the engine, signed again */
    http_mock_push(
        e->m, &(struct http_mock_resp){.status = 400,
                                       .body = OERR("RequestLimitExceeded", "10001", "slow down")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"Users\":[]}"});
    call(e, "ReadUsers", NULL, "read users", OSC_RETRY_NOT_FOUND, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 2);
    assert_signed(e, 0, "/api/v1/ReadUsers", "20231114T221320Z");
    assert_signed(e, 1, "/api/v1/ReadUsers", "20231114T221327Z");
    assert_string_not_equal(http_mock_req_header(e->m, 0, "Authorization"),
                            http_mock_req_header(e->m, 1, "Authorization"));
    assert_int_equal(stats(e).reads, 1); /* one logical call */
    struct cg_http_stats hs;
    cg_http_get_stats(e->h, &hs);
    assert_int_equal(hs.retries, 1);

    /* as a Code, and as a 503 (with Retry-After) */
    http_mock_push(
        e->m, &(struct http_mock_resp){
                  .status = 400, .body = "{\"Errors\":[{\"Code\":\"RequestLimitExceeded\"}]}"});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503,
                                                  .headers = "Retry-After: 1\r\n",
                                                  .body = OERR("RequestLimitExceeded", "1", "")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{}"});
    uint64_t t0 = cg_now_ms();
    call(e, "CreateUser", NULL, "create user", 0, &r);
    assert_string_equal(r.msg, "");
    assert_true(cg_now_ms() - t0 >= 950);
    assert_int_equal(http_mock_count(e->m), 5);
    assert_int_equal(stats(e).writes, 1);

    /* throttling that lasts: the engine's attempts, then the error */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 400,
                                       .body = OERR("RequestLimitExceeded", "10001", "slow down")});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_string_equal(r.msg, "OUTSCALE read users: RequestLimitExceeded (10001): slow down");
    assert_int_equal(http_mock_count(e->m), 9);

    /* another 400 is not retried */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 400,
                                       .body = OERR("InvalidParameterValue", "4045", "no")});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 10);
    res_clear(&r);
}

static void test_call_401_never_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 401, .body = OERR("AccessDenied", "1", "")});
    json_t *body = json_pack("{s:s}", "UserName", "u");
    call(e, "DeleteUser", body, "delete user 'u'", OSC_RETRY_NOT_FOUND | OSC_RETRY_CONFLICT, &r);
    json_decref(body);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(r.http_status, 401);
    assert_int_equal(r.o.status, 401);
    assert_string_equal(r.o.type, "AccessDenied");
    assert_prefix(r.msg, "OUTSCALE delete user 'u': AccessDenied (1) (the signature was refused "
                         "and is not sent again: four refusals in a row lock the key");
    assert_int_equal(http_mock_count(e->m), 1);
    /* without a body, and with RequestLimitExceeded in it: still once */
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 401});
    call(e, "ReadUsers", NULL, "read users", OSC_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(http_mock_count(e->m), 2);
    http_mock_set_default(e->m, &(struct http_mock_resp){
                                    .status = 401, .body = OERR("RequestLimitExceeded", "1", "")});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_int_equal(http_mock_count(e->m), 3);
    /* 403: denied, not retried, no lock note */
    http_mock_set_default(
        e->m, &(struct http_mock_resp){
                  .status = 403, .body = OERR("AccessDenied", "4", "not allowed to CreateUser")});
    call(e, "CreateUser", NULL, "create user 'u'", OSC_RETRY_CONFLICT, &r);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.msg, "OUTSCALE create user 'u': AccessDenied (4): not allowed to "
                               "CreateUser");
    assert_int_equal(http_mock_count(e->m), 4);
    struct cg_http_stats hs;
    cg_http_get_stats(e->h, &hs);
    assert_int_equal(hs.retries, 0);
    res_clear(&r);
}

static void test_call_5xx(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 502});
    call(e, "ReadUsers", NULL, "read users", OSC_RETRY_NOT_FOUND | OSC_RETRY_CONFLICT, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(r.http_status, 502);
    assert_string_equal(r.msg, "OUTSCALE read users: invalid response (HTTP 502)");
    assert_int_equal(http_mock_count(e->m), 4); /* the engine's attempts */
    assert_int_equal(stats(e).reads, 1);
    /* one 500 with the API's error, then success */
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    http_mock_push(
        e->m, &(struct http_mock_resp){.status = 500, .body = OERR("InternalError", "2000", "")});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 6);
    res_clear(&r);
}

static void test_call_transport_errors(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_RESET});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    assert_int_equal(r.code, CG_EHTTP);
    assert_int_equal(r.o.status, 0);
    assert_prefix(r.msg, "OUTSCALE read users: ");
    struct osc_api_config cfg = {.timeout_ms = 300};
    assert_int_equal(client_with(e, &cfg, &err), 0);
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_prefix(r.msg, "OUTSCALE read users: ");
    res_clear(&r);
}

static void test_call_not_found_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    size_t len = 0;
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400,
                             .uses = 2,
                             .body = OERR("InvalidResource", "5071", "user 'u' not found")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"AccessKey\":{\"AccessKeyId\":"
                                                          "\"AK1\",\"SecretKey\":\"S\"}}"});
    json_t *body = json_pack("{s:s}", "UserName", "u");
    call(e, "CreateAccessKey", body, "create access key for 'u'", OSC_RETRY_NOT_FOUND, &r);
    json_decref(body);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 3);
    assert_string_equal(http_mock_req_body(e->m, 2, &len), "{\"UserName\":\"u\"}");
    assert_int_equal(stats(e).writes, 1);
    assert_int_equal(clock_reads, 3); /* signed for each send */

    /* without the flag: at once */
    http_mock_push(
        e->m, &(struct http_mock_resp){
                  .status = 400, .body = OERR("InvalidResource", "5071", "user 'u' not found")});
    call(e, "CreateAccessKey", NULL, "create access key for 'u'", OSC_RETRY_CONFLICT, &r);
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_string_equal(r.msg,
                        "OUTSCALE create access key for 'u': InvalidResource (5071): user 'u' not "
                        "found");
    assert_int_equal(http_mock_count(e->m), 4);
    /* a 404 without the API's error body (a wrong endpoint) is not waited for */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 404, .body = "Not Found"});
    call(e, "ReadUsers", NULL, "read users", OSC_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(http_mock_count(e->m), 5);
    res_clear(&r);
}

static void test_call_conflict_retried(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    /* a DeleteUser right after an unlink: the link is still being applied */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 409,
                                                  .body = OERR("ResourceConflict", "9085",
                                                               "the user has linked policies")});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400, .body = OERR("ResourceConflict", "9095", "in use")});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, "DeleteUser", NULL, "delete user 'u'", OSC_RETRY_CONFLICT, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(http_mock_count(e->m), 3);
    /* without the flag: a conflict for the caller */
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 409, .body = OERR("ResourceConflict", "9073", "exists")});
    call(e, "CreateUser", NULL, "create user 'u'", OSC_RETRY_NOT_FOUND, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_true(osc_error_is_conflict(&r.o));
    assert_string_equal(r.msg, "OUTSCALE create user 'u': ResourceConflict (9073): exists");
    assert_int_equal(http_mock_count(e->m), 4);
    res_clear(&r);
}

static void test_call_budget_spent(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    client(e, 300, 20);
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 400,
                                       .body = OERR("InvalidResource", "5071", "no such policy")});
    uint64_t t0 = cg_now_ms();
    call(e, "LinkPolicy", NULL, "link policy 'p' to 'u'", OSC_RETRY_NOT_FOUND, &r);
    uint64_t took = cg_now_ms() - t0;
    assert_int_equal(r.code, CG_ENOTFOUND);
    assert_string_equal(r.o.type, "InvalidResource");
    assert_prefix(r.msg, "OUTSCALE link policy 'p' to 'u': InvalidResource (5071): no such policy "
                         "(still not found after ");
    assert_non_null(strstr(r.msg, " retries over 0."));
    assert_true(took >= 300);
    assert_true(took < 3000);
    /* 20, 40, 80, 160 ms (less jitter), then a last try at the end of the budget */
    assert_true(http_mock_count(e->m) >= 3);
    assert_true(http_mock_count(e->m) <= 8);
    assert_int_equal(stats(e).writes, 1);

    http_mock_set_default(e->m, &(struct http_mock_resp){
                                    .status = 409, .body = OERR("ResourceConflict", "9085", "")});
    call(e, "DeletePolicy", NULL, "delete policy 'p'", OSC_RETRY_CONFLICT, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_prefix(r.msg, "OUTSCALE delete policy 'p': ResourceConflict (9085) (still conflict "
                         "after ");
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
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.status = 400, .body = OERR("InvalidResource", "5071", "")});
    assert_int_equal(
        osc_api_call(e->c, "ReadUsers", NULL, "read users", OSC_RETRY_NOT_FOUND, on_res, &r, &err),
        0);
    assert_int_equal(cg_http_after(e->h, 500, close_engine, e), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ECANCELED);
    assert_string_equal(r.msg, "OUTSCALE read users: cancelled");
    assert_int_equal(r.o.status, 0);
    assert_int_equal(http_mock_count(e->m), 1);
    res_clear(&r);
}

/* ---- arguments -------------------------------------------------------------------------- */

static void test_call_bad_arguments(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    char long_name[80];
    memset(long_name, 'A', 65);
    long_name[65] = '\0';
    static const char *const bad[] = {"",      "Create User",    "CreateUser/x", "../CreateUser",
                                      "Read1", "CreateUser?x=1", "Créer"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(osc_api_call(e->c, bad[i], NULL, "create user 'u'", 0, on_res, &r, &err),
                         CG_EINVAL);
        assert_string_equal(err.msg, "OUTSCALE create user 'u': invalid action name (1 to 64 "
                                     "letters)");
    }
    assert_int_equal(osc_api_call(e->c, long_name, NULL, NULL, 0, on_res, &r, &err), CG_EINVAL);
    assert_string_equal(err.msg, "OUTSCALE: invalid action name (1 to 64 letters)");
    assert_int_equal(osc_api_call(e->c, NULL, NULL, NULL, 0, on_res, &r, &err), CG_EINVAL);
    /* a body that is not an object */
    json_t *arr = json_array();
    assert_int_equal(osc_api_call(e->c, "CreateUser", arr, NULL, 0, on_res, &r, &err), CG_EINVAL);
    assert_string_equal(err.msg, "OUTSCALE CreateUser: the request body is not a JSON object");
    json_decref(arr);
    assert_int_equal(osc_api_call(NULL, "ReadUsers", NULL, NULL, 0, on_res, &r, &err), CG_EINVAL);
    assert_int_equal(osc_api_call(e->c, "ReadUsers", NULL, NULL, 0, NULL, &r, &err), CG_EINVAL);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 0);
    assert_int_equal(http_mock_count(e->m), 0);
    assert_int_equal(stats(e).reads + stats(e).writes, 0);

    /* 64 letters is a name */
    memset(long_name, 'A', 64);
    long_name[64] = '\0';
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    call(e, long_name, NULL, NULL, 0, &r);
    assert_string_equal(r.msg, "");
    res_clear(&r);
}

static void test_stats(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "{}"});
    static const struct {
        const char *action;
        int read;
    } calls[] = {
        {"ReadUsers", 1},           {"ReadPolicies", 1},    {"CheckAuthentication", 1},
        {"ReadApiAccessPolicy", 1}, {"CreateUser", 0},      {"DeleteUser", 0},
        {"LinkPolicy", 0},          {"UpdateAccessKey", 0}, {"Readonly", 1},
        {"ReaDUsers", 0},           {"CheckSomething", 0},
    };
    unsigned long reads = 0, writes = 0;
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        call(e, calls[i].action, NULL, NULL, 0, &r);
        reads += calls[i].read;
        writes += !calls[i].read;
        assert_int_equal(stats(e).reads, reads);
        assert_int_equal(stats(e).writes, writes);
    }
    /* a call refused before sending counts nothing; a failed call counts */
    struct cg_err err = {0};
    assert_int_equal(osc_api_call(e->c, "Bad Name", NULL, NULL, 0, on_res, &r, &err), CG_EINVAL);
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 403});
    call(e, "DeleteUser", NULL, NULL, 0, &r);
    assert_int_equal(stats(e).writes, writes + 1);
    assert_int_equal(stats(e).reads, reads);
    struct osc_api_stats st;
    osc_api_get_stats(NULL, &st);
    assert_int_equal(st.reads + st.writes, 0);
    res_clear(&r);
}

/* ---- paging ----------------------------------------------------------------------------- */

static void test_call_all_pages(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    size_t len = 0;
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"Users\":[{\"UserName\":\"a\"},{\"UserName\":\"b\"}],"
                                     "\"HasMoreItems\":true,\"MaxResultsLimit\":2,"
                                     "\"ResponseContext\":{\"RequestId\":\"r\"}}"});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"Users\":[{\"UserName\":\"c\"},{\"UserName\":\"d\"}],"
                                     "\"HasMoreItems\":true}"});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"Users\":[{\"UserName\":\"e\"}],\"HasMoreItems\":false}"});
    json_t *body = json_pack("{s:{s:[s]}}", "Filters", "Paths", "/cloudgrant/");
    call_all(e, "ReadUsers", body, "Users", 2, "list users", OSC_RETRY_NOT_FOUND, &r);
    assert_string_equal(r.msg, "");
    json_t *users = json_object_get(r.json, "Users");
    assert_int_equal(json_object_size(r.json), 1);
    assert_int_equal(json_array_size(users), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(users, 4), "UserName")),
                        "e");
    assert_int_equal(http_mock_count(e->m), 3);
    assert_string_equal(http_mock_req_body(e->m, 0, &len),
                        "{\"Filters\":{\"Paths\":[\"/cloudgrant/\"]},\"FirstItem\":0,"
                        "\"ResultsPerPage\":2}");
    assert_string_equal(http_mock_req_body(e->m, 1, &len),
                        "{\"Filters\":{\"Paths\":[\"/cloudgrant/\"]},\"FirstItem\":2,"
                        "\"ResultsPerPage\":2}");
    assert_string_equal(http_mock_req_body(e->m, 2, &len),
                        "{\"Filters\":{\"Paths\":[\"/cloudgrant/\"]},\"FirstItem\":4,"
                        "\"ResultsPerPage\":2}");
    for (int i = 0; i < 3; i++) {
        assert_string_equal(http_mock_req_target(e->m, i), "/api/v1/ReadUsers");
    }
    /* the caller's body is borrowed, not changed */
    assert_null(json_object_get(body, "FirstItem"));
    assert_int_equal(json_object_size(body), 1);
    /* the caller's own FirstItem and ResultsPerPage are replaced */
    json_object_set_new(body, "FirstItem", json_integer(7));
    json_object_set_new(body, "ResultsPerPage", json_integer(7));
    assert_int_equal(stats(e).reads, 3); /* pages count */

    /* one page, default size, no list member at all, HasMoreItems absent */
    http_mock_push(e->m, &(struct http_mock_resp){.body = "{\"ResponseContext\":{}}"});
    call_all(e, "ReadPolicies", body, "Policies", 0, NULL, 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(json_array_size(json_object_get(r.json, "Policies")), 0);
    assert_string_equal(http_mock_req_body(e->m, 3, &len),
                        "{\"Filters\":{\"Paths\":[\"/cloudgrant/\"]},\"FirstItem\":0,"
                        "\"ResultsPerPage\":100}");
    json_decref(body);
    /* NULL body; HasMoreItems null */
    http_mock_push(e->m,
                   &(struct http_mock_resp){.body = "{\"PolicyVersions\":[{\"VersionId\":\"v1\"}],"
                                                    "\"HasMoreItems\":null}"});
    call_all(e, "ReadPolicyVersions", NULL, "PolicyVersions", 1000, NULL, 0, &r);
    assert_string_equal(r.msg, "");
    assert_int_equal(json_array_size(json_object_get(r.json, "PolicyVersions")), 1);
    assert_string_equal(http_mock_req_body(e->m, 4, &len),
                        "{\"FirstItem\":0,\"ResultsPerPage\":1000}");
    res_clear(&r);
}

static void test_call_all_refusals(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct cg_err err = {0};
    /* at once: cb never runs, nothing sent */
    assert_int_equal(
        osc_api_call_all(e->c, "CreateUser", NULL, "Users", 0, NULL, 0, on_res, &r, &err),
        CG_EINVAL);
    assert_string_equal(err.msg, "OUTSCALE CreateUser: only a Read* action pages");
    assert_int_equal(
        osc_api_call_all(e->c, "Read Users", NULL, "Users", 0, "list", 0, on_res, &r, &err),
        CG_EINVAL);
    assert_string_equal(err.msg, "OUTSCALE list: only a Read* action pages");
    static const char *const keys[] = {"", "Us ers", "Users\n", "a.b"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_int_equal(
            osc_api_call_all(e->c, "ReadUsers", NULL, keys[i], 0, "list", 0, on_res, &r, &err),
            CG_EINVAL);
        assert_string_equal(err.msg, "OUTSCALE list: invalid list key (1 to 64 letters)");
    }
    assert_int_equal(
        osc_api_call_all(e->c, "ReadUsers", NULL, NULL, 0, "list", 0, on_res, &r, &err), CG_EINVAL);
    assert_int_equal(
        osc_api_call_all(e->c, "ReadUsers", NULL, "Users", -1, "list", 0, on_res, &r, &err),
        CG_EINVAL);
    assert_string_equal(err.msg, "OUTSCALE list: page size -1 is not 1 to 1000");
    assert_int_equal(
        osc_api_call_all(e->c, "ReadUsers", NULL, "Users", 1001, "list", 0, on_res, &r, &err),
        CG_EINVAL);
    json_t *arr = json_array();
    assert_int_equal(
        osc_api_call_all(e->c, "ReadUsers", arr, "Users", 0, "list", 0, on_res, &r, &err),
        CG_EINVAL);
    assert_string_equal(err.msg, "OUTSCALE list: the request body is not a JSON object");
    json_decref(arr);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 0);
    assert_int_equal(http_mock_count(e->m), 0);

    /* from the answers */
    static const struct {
        const char *page;
        const char *want;
    } bad[] = {
        {"{\"Users\":{\"a\":1},\"HasMoreItems\":false}",
         "OUTSCALE list users: invalid response ('Users' is not a list)"},
        {"{\"Users\":[],\"HasMoreItems\":true}",
         "OUTSCALE list users: invalid response (page 1 has no items but says there are more)"},
        {"{\"HasMoreItems\":true}",
         "OUTSCALE list users: invalid response (page 1 has no items but says there are more)"},
        {"{\"Users\":[1],\"HasMoreItems\":\"yes\"}",
         "OUTSCALE list users: invalid response ('HasMoreItems' is not a boolean)"},
        {"[1]", "OUTSCALE list users: invalid response (HTTP 200)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_mock_push(e->m, &(struct http_mock_resp){.body = bad[i].page});
        call_all(e, "ReadUsers", NULL, "Users", 0, "list users", 0, &r);
        assert_int_equal(r.code, CG_EINVAL);
        assert_string_equal(r.msg, bad[i].want);
        assert_int_equal(r.o.status, 200);
    }
    /* an error on a later page is the result */
    http_mock_push(e->m,
                   &(struct http_mock_resp){.body = "{\"Users\":[1,2],\"HasMoreItems\":true}"});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400,
                             .body = OERR("InvalidParameterValue", "4045", "FirstItem too big")});
    call_all(e, "ReadUsers", NULL, "Users", 2, "list users", 0, &r);
    assert_int_equal(r.code, CG_ESTATUS);
    assert_int_equal(r.o.status, 400);
    assert_string_equal(r.o.type, "InvalidParameterValue");
    assert_string_equal(r.msg,
                        "OUTSCALE list users: InvalidParameterValue (4045): FirstItem too big");

    /* over 1000 pages */
    int before = http_mock_count(e->m);
    http_mock_set_default(
        e->m, &(struct http_mock_resp){.body = "{\"Users\":[1],\"HasMoreItems\":true}"});
    call_all(e, "ReadUsers", NULL, "Users", 1, "list users", 0, &r);
    assert_int_equal(r.code, CG_EINVAL);
    assert_string_equal(r.msg, "OUTSCALE list users: more than 1000 pages");
    assert_int_equal(http_mock_count(e->m) - before, 1000);
    res_clear(&r);
}

/* ---- endpoints and TLS ------------------------------------------------------------------ */

static void test_endpoint_refused(void **state)
{
    struct env *e = *state;
    struct cg_err err = {0};
    struct osc_api *d = NULL;
    struct osc_credentials creds = e->creds;
    creds.endpoint_api = "http://api.example.com/api/v1";
    assert_int_equal(osc_api_new(&d, e->h, &creds, NULL, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "plain http"));
    assert_null(d);
    struct osc_api_config cfg = {.allow_insecure_http = 1};
    assert_int_equal(osc_api_new(&d, e->h, &creds, &cfg, &err), 0);
    assert_string_equal(osc_api_endpoint(d), "http://api.example.com/api/v1");
    osc_api_free(d);
    d = NULL;
    static const char *const bad[] = {"https://u:p@api.example.com", "https://api.example.com?x",
                                      "ftp://api.example.com", "https://api example.com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        creds.endpoint_api = (char *)bad[i];
        assert_int_equal(osc_api_new(&d, e->h, &creds, &cfg, &err), CG_EINVAL);
        assert_null(strstr(err.msg, ":p@"));
    }
    creds = e->creds;
    creds.client_cert_pem = "-----BEGIN CERTIFICATE-----\n";
    assert_int_equal(osc_api_new(&d, e->h, &creds, NULL, &err), CG_EINVAL);
    creds = e->creds;
    creds.secret_key = NULL;
    assert_int_equal(osc_api_new(&d, e->h, &creds, NULL, &err), CG_EINVAL);
    assert_int_equal(osc_api_new(&d, NULL, &e->creds, NULL, &err), CG_EINVAL);
    assert_int_equal(osc_api_new(&d, e->h, NULL, NULL, &err), CG_EINVAL);
    assert_int_equal(osc_api_new(NULL, e->h, &e->creds, NULL, &err), CG_EINVAL);
    osc_api_free(NULL);
    assert_null(osc_api_endpoint(NULL));
    assert_null(osc_api_region(NULL));
}

static char *bio_string(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

static void make_cert(char **cert_pem, char **key_pem)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"osc-client", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    *cert_pem = bio_string(b);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    *key_pem = bio_string(b);
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* The mock speaks plain HTTP, so a TLS handshake to it fails after the ClientHello; what shows
 * the certificate reaches curl is that an unusable one fails before that, differently. */
static void test_client_cert(void **state)
{
    struct env *e = *state;
    struct res r = {0};
    struct res bad = {0};
    struct cg_err err = {0};
    char *cert = NULL;
    char *key = NULL;
    make_cert(&cert, &key);
    char ep[160];
    snprintf(ep, sizeof(ep), "https://%s/api/v1", e->host);
    e->creds.endpoint_api = ep;
    e->creds.client_cert_pem = cert;
    e->creds.client_key_pem = key;
    struct osc_api_config cfg = {.timeout_ms = 5000};
    assert_int_equal(client_with(e, &cfg, &err), 0);
    call(e, "CheckAuthentication", NULL, "check authentication", 0, &r);
    assert_int_equal(r.code, CG_EHTTP);
    assert_prefix(r.msg, "OUTSCALE check authentication: ");
    assert_non_null(strstr(r.msg, "wrong version number"));
    size_t raw_len = 0;
    const char *raw = http_mock_raw(e->m, &raw_len);
    assert_true(raw_len > 0 && raw[0] == 0x16); /* a TLS handshake record */

    e->creds.client_cert_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert_int_equal(client_with(e, &cfg, &err), 0);
    call(e, "CheckAuthentication", NULL, "check authentication", 0, &bad);
    assert_int_equal(bad.code, CG_EHTTP);
    assert_prefix(bad.msg, "OUTSCALE check authentication: ");
    assert_null(strstr(bad.msg, "wrong version number"));
    assert_non_null(strstr(bad.msg, "client certificate"));
    assert_null(strstr(bad.msg, "MII"));
    res_clear(&r);
    res_clear(&bad);
    cg_secret_free(key);
    free(cert);
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
    char path[] = "/tmp/cg-osc-api-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    cg_log_setup(CG_LOG_TRACE, CG_LOG_TEXT);

    http_mock_push(
        e->m, &(struct http_mock_resp){
                  .status = 400, .body = OERR("InvalidResource", "5071", "user not yet visible")});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .body = "{\"AccessKey\":{\"AccessKeyId\":\"AKNEW000000000000001\","
                                     "\"SecretKey\":\"NEWSECRETVALUE0000000000000000000000000\","
                                     "\"State\":\"ACTIVE\"}}"});
    json_t *body = json_pack("{s:s}", "UserName", "BODYUSERVALUE");
    call(e, "CreateAccessKey", body, "create access key for 'u'", OSC_RETRY_NOT_FOUND, &r);
    json_decref(body);
    assert_string_equal(r.msg, "");
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 401, .body = OERR("AccessDenied", "1", "DETAILSVALUE")});
    call(e, "ReadUsers", NULL, "read users", 0, &r);
    char *signature = strdup(strstr(http_mock_req_header(e->m, 2, "Authorization"), "Signature="));
    assert_non_null(signature);

    fflush(stderr);
    cg_log_setup(CG_LOG_WARN, CG_LOG_TEXT);
    dup2(saved, 2);
    close(saved);
    char *log = read_all(fd);
    close(fd);
    assert_non_null(strstr(log, "OUTSCALE CreateAccessKey (create access key for 'u') -> 400 "
                                "InvalidResource 5071 request 0a1b2c3d-req"));
    assert_non_null(strstr(log, "(create access key for 'u'): not found, waiting "));
    assert_non_null(strstr(log, "OUTSCALE CreateAccessKey (create access key for 'u') -> 200"));
    assert_non_null(strstr(log, "OUTSCALE ReadUsers (read users) -> 401 AccessDenied 1"));
    assert_non_null(strstr(log, "Authorization: <redacted>"));
    assert_null(strstr(log, "NEWSECRETVALUE"));
    assert_null(strstr(log, "BODYUSERVALUE"));
    assert_null(strstr(log, "DETAILSVALUE"));
    assert_null(strstr(log, SK));
    assert_null(strstr(log, signature + strlen("Signature=")));
    free(signature);
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
        cmocka_unit_test(test_parse_2xx_not_object),
        cmocka_unit_test(test_parse_error_classes),
        cmocka_unit_test(test_parse_problem_json),
        cmocka_unit_test(test_parse_no_error_body),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_body_never_in_message),
        cmocka_unit_test_setup_teardown(test_call_request_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_endpoint_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_fresh_signature_per_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_401_never_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_5xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_transport_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_not_found_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_conflict_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_budget_spent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_cancelled_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_all_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_never_show_secrets, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("osc_api", tests, NULL, NULL);
    cg_http_global_cleanup();
    return rc;
}
