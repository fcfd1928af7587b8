/* cloud/rest_common.c: the provider-independent start of reading a JSON answer, the bearer
 * header built from a token source's answer, and JSON requests as they reach a server
 * (tests/support/http_mock on a real loop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_buf.h"
#include "cg_err.h"
#include "cg_http.h"
#include "http_mock.h"
#include "rest_common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- cloud__json_answer ------------------------------------------------------------------ */

struct answer {
    int rc;
    json_t *doc;
    struct cg_err err;
};

static void answer(struct answer *a, const char *body, long status)
{
    memset(a, 0, sizeof(*a));
    a->doc = (json_t *)1; /* must be overwritten on every path */
    a->rc = cloud__json_answer(body, body ? strlen(body) : 0, status, "GCP get 'x'", 1024, 4,
                               &a->doc, &a->err);
}

static void test_answer_2xx_object(void **state)
{
    (void)state;
    struct answer a;
    answer(&a, "{\"name\": \"sa\"}", 200);
    assert_int_equal(a.rc, 0);
    assert_string_equal(json_string_value(json_object_get(a.doc, "name")), "sa");
    json_decref(a.doc);
}

/* DELETE and some POSTs answer 204 or 200 with nothing: an empty object, not an error */
static void test_answer_2xx_blank_is_empty_object(void **state)
{
    (void)state;
    const char *blanks[] = {NULL, "", " \r\n\t "};
    for (size_t i = 0; i < sizeof(blanks) / sizeof(blanks[0]); i++) {
        struct answer a;
        answer(&a, blanks[i], i == 0 ? 204 : 200);
        assert_int_equal(a.rc, 0);
        assert_true(json_is_object(a.doc));
        assert_int_equal(json_object_size(a.doc), 0);
        json_decref(a.doc);
    }
}

static void test_answer_2xx_not_an_object(void **state)
{
    (void)state;
    const char *bodies[] = {"[1]",
                            "\"s\"",
                            "<html>proxy</html>",
                            "{\"a\": 1} x",
                            "[[[[[[[[1]]]]]]]]",
                            "{\"a\":\"\\u0000\"}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct answer a;
        answer(&a, bodies[i], 200);
        assert_int_equal(a.rc, CG_EINVAL);
        assert_null(a.doc);
        assert_string_equal(a.err.msg, "GCP get 'x': invalid response (HTTP 200)");
        assert_int_equal(a.err.http_status, 200);
        /* the body is never quoted: it may hold a secret */
        assert_null(strstr(a.err.msg, "proxy"));
    }
}

static void test_answer_too_large(void **state)
{
    (void)state;
    char *big = malloc(1026);
    assert_non_null(big);
    memset(big, ' ', 1025);
    big[1025] = '\0';
    for (long status = 200; status <= 500; status += 300) {
        struct answer a;
        answer(&a, big, status);
        assert_int_equal(a.rc, CG_ETOOBIG);
        assert_null(a.doc);
        char want[80];
        snprintf(want, sizeof(want), "GCP get 'x': response too large (HTTP %ld)", status);
        assert_string_equal(a.err.msg, want);
    }
    big[1024] = '\0'; /* exactly the limit: blank, so {} */
    struct answer a;
    answer(&a, big, 200);
    assert_int_equal(a.rc, 0);
    json_decref(a.doc);
    free(big);
}

/* any other status hands the document (or NULL) back for the provider's own error shape */
static void test_answer_error_status(void **state)
{
    (void)state;
    struct answer a;
    answer(&a, "{\"error\": {\"code\": 404}}", 404);
    assert_int_equal(a.rc, 1);
    assert_true(json_is_object(a.doc));
    assert_int_equal(a.err.code, 0);
    json_decref(a.doc);

    const char *not_json[] = {NULL, "", "<html>502</html>", "[[[[[[[[1]]]]]]]]"};
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        answer(&a, not_json[i], 502);
        assert_int_equal(a.rc, 1);
        assert_null(a.doc);
        assert_int_equal(a.err.code, 0);
    }
    answer(&a, "[1, 2]", 400); /* JSON, but not the caller's shape: the caller decides */
    assert_int_equal(a.rc, 1);
    assert_true(json_is_array(a.doc));
    json_decref(a.doc);
}

/* ---- cloud__bearer_dup -------------------------------------------------------------------- */

static void test_bearer_ok(void **state)
{
    (void)state;
    struct cg_err err = {0};
    char *h = cloud__bearer_dup("ya29.a0-b_c~d/e+f=", &err);
    assert_non_null(h);
    assert_string_equal(h, "Bearer ya29.a0-b_c~d/e+f=");
    cg_secret_free(h);
}

static void test_bearer_refuses_what_could_inject_headers(void **state)
{
    (void)state;
    const char *bad[] = {NULL,      "",        "tok en",     "tok\r\nX-Evil: 1",
                         "tok\ten", "tok\x7f", "t\xc3\xa9t", "tok\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cg_err err = {0};
        assert_null(cloud__bearer_dup(bad[i], &err));
        assert_int_equal(err.code, CG_EAUTH);
        assert_string_equal(err.msg, "the access token is empty or malformed");
    }
}

static void test_bearer_length_limit(void **state)
{
    (void)state;
    char *t = malloc(16386);
    assert_non_null(t);
    memset(t, 'a', 16385);
    t[16385] = '\0';
    struct cg_err err = {0};
    assert_null(cloud__bearer_dup(t, &err));
    assert_int_equal(err.code, CG_EAUTH);
    t[16384] = '\0';
    char *h = cloud__bearer_dup(t, &err);
    assert_non_null(h);
    assert_int_equal(strlen(h), 7 + 16384);
    cg_secret_free(h);
    free(t);
}

/* ---- cloud__json_req_new ------------------------------------------------------------------ */

struct env {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    char url[96];
    int done;
    long status;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct cg_err err = {0};
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(cg_http_new(&e->h, &e->loop, &err), 0);
    e->m = http_mock_new(&e->loop);
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d/v1/things?x=1", http_mock_port(e->m));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    cg_http_close(e->h);
    http_mock_close(e->m);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void on_done(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct env *e = data;
    e->done++;
    e->status = err == NULL ? cg_http_req_status(req) : -1;
}

static void send_req(struct env *e, struct cg_http_req *req)
{
    struct cg_err err = {0};
    assert_int_equal(cg_http_submit(e->h, req, on_done, e, &err), 0);
    assert_int_equal(cg_http_run(e->h), 0);
    assert_int_equal(e->done, 1);
    assert_int_equal(e->status, 200);
    assert_int_equal(http_mock_count(e->m), 1);
}

static void test_req_with_body_and_headers(void **state)
{
    struct env *e = *state;
    const char *names[] = {"If-Match", "ConsistencyLevel", NULL};
    const char *values[] = {"\"etag-1\"", "eventual", NULL};
    const char body[] = "{\"a\":1}";
    struct cg_http_req *req = NULL;
    struct cg_err err = {0};
    assert_int_equal(cloud__json_req_new("PATCH", e->url, body, strlen(body), names, values,
                                         "Test PATCH things", &req, &err),
                     0);
    assert_non_null(req);
    send_req(e, req);
    assert_string_equal(http_mock_req_method(e->m, 0), "PATCH");
    assert_string_equal(http_mock_req_target(e->m, 0), "/v1/things?x=1");
    assert_string_equal(http_mock_req_header(e->m, 0, "Content-Type"), "application/json");
    assert_string_equal(http_mock_req_header(e->m, 0, "Accept"), "application/json");
    assert_string_equal(http_mock_req_header(e->m, 0, "If-Match"), "\"etag-1\"");
    assert_string_equal(http_mock_req_header(e->m, 0, "ConsistencyLevel"), "eventual");
    assert_int_equal(http_mock_req_header_count(e->m, 0, "Accept"), 1);
    size_t len = 0;
    const char *got = http_mock_req_body(e->m, 0, &len);
    assert_int_equal(len, strlen(body));
    assert_memory_equal(got, body, len);
}

/* a GET carries no body, so no Content-Type either */
static void test_req_without_body(void **state)
{
    struct env *e = *state;
    struct cg_http_req *req = NULL;
    struct cg_err err = {0};
    assert_int_equal(
        cloud__json_req_new("GET", e->url, NULL, 0, NULL, NULL, "Test GET things", &req, &err), 0);
    send_req(e, req);
    assert_string_equal(http_mock_req_method(e->m, 0), "GET");
    assert_null(http_mock_req_header(e->m, 0, "Content-Type"));
    assert_string_equal(http_mock_req_header(e->m, 0, "Accept"), "application/json");
    size_t len = 1;
    http_mock_req_body(e->m, 0, &len);
    assert_int_equal(len, 0);
}

/* a header the engine refuses (a line break would split the request) builds nothing */
static void test_req_refused_header(void **state)
{
    struct env *e = *state;
    const char *names[] = {"X-Ok", "X-Bad", NULL};
    const char *values[] = {"1", "a\r\nX-Evil: 1", NULL};
    struct cg_http_req *req = (struct cg_http_req *)1;
    struct cg_err err = {0};
    int rc = cloud__json_req_new("GET", e->url, NULL, 0, names, values, "Test", &req, &err);
    assert_true(rc < 0);
    assert_null(req);
    assert_int_equal(err.code, rc);
    assert_non_null(strstr(err.msg, "cannot build the request: "));
    assert_null(strstr(err.msg, "Evil"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_2xx_object),
        cmocka_unit_test(test_answer_2xx_blank_is_empty_object),
        cmocka_unit_test(test_answer_2xx_not_an_object),
        cmocka_unit_test(test_answer_too_large),
        cmocka_unit_test(test_answer_error_status),
        cmocka_unit_test(test_bearer_ok),
        cmocka_unit_test(test_bearer_refuses_what_could_inject_headers),
        cmocka_unit_test(test_bearer_length_limit),
        cmocka_unit_test_setup_teardown(test_req_with_body_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_req_without_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_req_refused_header, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
