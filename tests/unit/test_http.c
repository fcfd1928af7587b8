/* Engine tests: a real libuv loop and real libcurl against tests/support/http_mock on
 * 127.0.0.1. Every test ends by closing the engine and the mock and asserting that the loop
 * closes cleanly (no handle left behind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "cg_http.h"
#include "cg_log.h"
#include "http_mock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

struct env {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    char base[64];
};

struct result {
    int calls;
    int code;
    char msg[CG_ERR_MSG_MAX];
    long status;
    char *body;
    size_t body_len;
    int attempts;
    const char *want_hdr; /* response header to copy */
    char hdr[256];
    int hdr_present;
    uint64_t at;
};

static uint64_t now_ms(uv_loop_t *loop)
{
    uv_update_time(loop);
    return uv_now(loop);
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
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    cg_http_close(e->h); /* NULL when the test closed it */
    http_mock_close(e->m);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

static void on_done(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct result *r = data;
    r->calls++;
    r->code = err != NULL ? err->code : 0;
    if (err != NULL) {
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
    }
    r->status = cg_http_req_status(req);
    r->attempts = cg_http_req_attempts(req);
    free(r->body);
    r->body = cg_http_req_take_body(req, &r->body_len);
    if (r->want_hdr != NULL) {
        const char *v = cg_http_req_resp_header(req, r->want_hdr);
        r->hdr_present = v != NULL;
        snprintf(r->hdr, sizeof(r->hdr), "%s", v != NULL ? v : "");
    }
    r->at = now_ms(&((struct env *)cg_http_req_user_data(req))->loop);
}

static struct cg_http_req *mkreq(struct env *e, const char *method, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", e->base, path);
    struct cg_http_req *req = cg_http_req_new(method, url);
    assert_non_null(req);
    cg_http_req_set_user_data(req, e);
    return req;
}

static void submit(struct env *e, struct cg_http_req *req, struct result *r)
{
    struct cg_err err = {0};
    int rc = cg_http_submit(e->h, req, on_done, r, &err);
    if (rc != 0) {
        fail_msg("submit: %s", err.msg);
    }
}

static void result_free(struct result *r)
{
    free(r->body);
    r->body = NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nothing listens there now: connecting is refused */
    return ntohs(a.sin_port);
}

/* ---- basics ----------------------------------------------------------------------------- */

static void test_get(void **state)
{
    struct env *e = *state;
    struct result r = {.want_hdr = "x-reply"};
    http_mock_push(e->m, &(struct http_mock_resp){
                             .path = "/hello",
                             .headers = "X-Reply:   spaced value  \r\nContent-Type: text/plain\r\n",
                             .body = "hello world",
                         });
    struct cg_http_req *req = mkreq(e, "GET", "/hello?q=1");
    assert_int_equal(cg_http_req_header(req, "X-Test", "1"), 0);
    assert_int_equal(cg_http_req_header(req, "X-Empty", ""), 0);
    submit(e, req, &r);
    assert_int_equal(cg_http_run(e->h), 0);

    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.body_len, 11);
    assert_string_equal(r.body, "hello world");
    assert_true(r.hdr_present);
    assert_string_equal(r.hdr, "spaced value");
    assert_int_equal(http_mock_count(e->m), 1);
    assert_string_equal(http_mock_req_method(e->m, 0), "GET");
    assert_string_equal(http_mock_req_target(e->m, 0), "/hello?q=1");
    assert_string_equal(http_mock_req_header(e->m, 0, "x-test"), "1");
    assert_string_equal(http_mock_req_header(e->m, 0, "X-Empty"), "");
    assert_string_equal(http_mock_req_header(e->m, 0, "User-Agent"), "cloudgrant/" CG_VERSION);

    struct cg_http_stats st;
    cg_http_get_stats(e->h, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.mutating, 0);
    result_free(&r);
}

static void test_post_body(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    char body[2048];
    memset(body, 'b', sizeof(body));
    http_mock_push(e->m, &(struct http_mock_resp){.status = 201, .body = "{\"created\":true}"});
    struct cg_http_req *req = mkreq(e, "POST", "/items");
    assert_int_equal(cg_http_req_header(req, "Content-Type", "application/json"), 0);
    assert_int_equal(cg_http_req_body_copy(req, body, sizeof(body)), 0);
    submit(e, req, &r);
    cg_http_run(e->h);

    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"created\":true}");
    size_t len = 0;
    const char *got = http_mock_req_body(e->m, 0, &len);
    assert_int_equal(len, sizeof(body));
    assert_memory_equal(got, body, sizeof(body));
    assert_string_equal(http_mock_req_method(e->m, 0), "POST");
    assert_string_equal(http_mock_req_header(e->m, 0, "Content-Type"), "application/json");
    assert_null(http_mock_req_header(e->m, 0, "Expect")); /* no 100-continue round trip */

    /* a PUT with a body taken over, and a DELETE without one */
    struct result r2 = {0};
    struct result r3 = {0};
    char *owned = strdup("{\"x\":1}");
    req = mkreq(e, "PUT", "/items/1");
    assert_int_equal(cg_http_req_body_take(req, owned, strlen(owned)), 0);
    submit(e, req, &r2);
    req = mkreq(e, "DELETE", "/items/2");
    submit(e, req, &r3);
    cg_http_run(e->h);
    assert_int_equal(r2.calls + r3.calls, 2);
    assert_int_equal(r2.status, 200);
    assert_int_equal(r3.status, 200);
    int put = strcmp(http_mock_req_method(e->m, 1), "PUT") == 0 ? 1 : 2;
    assert_string_equal(http_mock_req_body(e->m, put, NULL), "{\"x\":1}");
    assert_string_equal(http_mock_req_method(e->m, 3 - put), "DELETE");

    struct cg_http_stats st;
    cg_http_get_stats(e->h, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.mutating, 3);
    result_free(&r);
    result_free(&r2);
    result_free(&r3);
}

static void test_concurrent(void **state)
{
    enum { N = 50 };
    struct env *e = *state;
    struct result r[N];
    memset(r, 0, sizeof(r));
    http_mock_set_default(e->m, &(struct http_mock_resp){.body = "slow", .delay_ms = 100});
    uint64_t t0 = now_ms(&e->loop);
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/c/%d", i);
        submit(e, mkreq(e, "GET", path), &r[i]);
    }
    cg_http_run(e->h);
    uint64_t elapsed = now_ms(&e->loop) - t0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].code, 0);
        assert_int_equal(r[i].status, 200);
        assert_string_equal(r[i].body, "slow");
        result_free(&r[i]);
    }
    assert_int_equal(http_mock_count(e->m), N);
    /* one after the other would take 5 s */
    assert_true(elapsed < 2000);
}

/* ---- retries ---------------------------------------------------------------------------- */

static void test_retry_503(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503, .body = "busy"});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 200, .body = "fine"});
    submit(e, mkreq(e, "GET", "/r"), &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.body, "fine");
    assert_int_equal(http_mock_count(e->m), 2);
    struct cg_http_stats st;
    cg_http_get_stats(e->h, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.retries, 1);
    result_free(&r);
}

static void test_retry_after_429(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 429, .headers = "Retry-After: 1\r\n"});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 200, .body = "done"});
    uint64_t t0 = now_ms(&e->loop);
    submit(e, mkreq(e, "GET", "/throttled"), &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    assert_true(r.at - t0 >= 1000);
    assert_true(r.at - t0 < 3000);
    result_free(&r);
}

static void test_500_until_max(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.status = 500, .body = "boom"});
    struct cg_http_req *req = mkreq(e, "GET", "/broken");
    cg_http_req_set_max_attempts(req, 3);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0); /* a complete response: the caller reads the status */
    assert_int_equal(r.status, 500);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(r.body, "boom");
    assert_int_equal(http_mock_count(e->m), 3);
    result_free(&r);
}

static void test_connection_refused(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    char url[128];
    char want[256];
    int port = free_port();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/version", port);
    struct cg_http_req *req = cg_http_req_new("GET", url);
    cg_http_req_set_user_data(req, e);
    cg_http_req_set_max_attempts(req, 3);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_EHTTP);
    snprintf(want, sizeof(want), "GET %s: connection refused after 3 attempts", url);
    assert_string_equal(r.msg, want);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.status, 0);
    struct cg_http_stats st;
    cg_http_get_stats(e->h, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.retries, 2);
    result_free(&r);
}

static void test_reset_then_ok(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_RESET});
    http_mock_push(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_CLOSE});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "third time"});
    submit(e, mkreq(e, "GET", "/flaky"), &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(r.body, "third time");
    result_free(&r);
}

/* A request that makes a secret is not sent again once the server may have acted on it: a
 * reset after sending ends it; a status (the server said what happened) is still retried. */
static void test_send_once(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_RESET});
    struct cg_http_req *req = mkreq(e, "POST", "/keys"); /* a retry would get the default 200 */
    cg_http_req_set_send_once(req);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_EHTTP);
    assert_int_equal(r.attempts, 1);
    result_free(&r);

    struct result r2 = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503, .body = "busy"});
    http_mock_push(e->m, &(struct http_mock_resp){.body = "the key"});
    req = mkreq(e, "POST", "/keys");
    cg_http_req_set_send_once(req);
    submit(e, req, &r2);
    cg_http_run(e->h);
    assert_int_equal(r2.code, 0);
    assert_int_equal(r2.attempts, 2);
    assert_string_equal(r2.body, "the key");
    result_free(&r2);
}

/* ---- deadlines and caps ----------------------------------------------------------------- */

static void test_attempt_timeout(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    char want[256];
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    struct cg_http_req *req = mkreq(e, "GET", "/slow");
    cg_http_req_set_attempt_timeout(req, 300);
    cg_http_req_set_max_attempts(req, 2);
    uint64_t t0 = now_ms(&e->loop);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_int_equal(r.attempts, 2);
    snprintf(want, sizeof(want), "GET %s/slow: timed out after 2 attempts of 300 ms each", e->base);
    assert_string_equal(r.msg, want);
    assert_true(r.at - t0 >= 600);
    assert_true(r.at - t0 < 2500);
    assert_int_equal(http_mock_count(e->m), 2);
    result_free(&r);
}

static void test_total_deadline(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    char want[256];
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    struct cg_http_req *req = mkreq(e, "GET", "/slow");
    cg_http_req_set_timeout(req, 700);
    uint64_t t0 = now_ms(&e->loop);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_int_equal(r.attempts, 1); /* the deadline is not per attempt: no retry */
    snprintf(want, sizeof(want), "GET %s/slow: timed out after 700 ms", e->base);
    assert_string_equal(r.msg, want);
    assert_true(r.at - t0 >= 650);
    assert_true(r.at - t0 < 1500);
    result_free(&r);
}

static void test_deadline_across_attempts(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_set_default(e->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG});
    struct cg_http_req *req = mkreq(e, "GET", "/slow");
    cg_http_req_set_timeout(req, 1000);
    cg_http_req_set_attempt_timeout(req, 300);
    cg_http_req_set_max_attempts(req, 10);
    uint64_t t0 = now_ms(&e->loop);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_true(r.attempts >= 2);
    assert_true(r.attempts <= 4);
    assert_true(r.at - t0 < 1300);
    result_free(&r);
}

static void test_connect_timeout(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fill[3];
    char url[128];
    char want[256];
    /* a listener whose accept queue is full drops SYNs: connecting hangs */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    struct cg_http_req *req = cg_http_req_new("GET", url);
    cg_http_req_set_user_data(req, e);
    cg_http_req_set_connect_timeout(req, 200);
    cg_http_req_set_max_attempts(req, 2);
    uint64_t t0 = now_ms(&e->loop);
    submit(e, req, &r);
    cg_http_run(e->h);
    /* a connect timeout is not the request deadline: it was retried */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_ETIMEDOUT);
    assert_int_equal(r.attempts, 2);
    snprintf(want, sizeof(want), "GET %s: connection timed out after 200 ms (2 attempts)", url);
    assert_string_equal(r.msg, want);
    assert_true(r.at - t0 >= 400);
    assert_true(r.at - t0 < 2000);
    for (int i = 0; i < 3; i++) {
        close(fill[i]);
    }
    close(l);
    result_free(&r);
}

static void test_retry_after_beyond_deadline(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    http_mock_set_default(
        e->m,
        &(struct http_mock_resp){.status = 503, .headers = "Retry-After: 5\r\n", .body = "later"});
    struct cg_http_req *req = mkreq(e, "GET", "/later");
    cg_http_req_set_timeout(req, 2000);
    uint64_t t0 = now_ms(&e->loop);
    submit(e, req, &r);
    cg_http_run(e->h);
    /* waiting 5 s would pass the deadline: the last response is delivered at once */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.body, "later");
    assert_true(r.at - t0 < 1000);
    result_free(&r);
}

static void test_body_cap(void **state)
{
    struct env *e = *state;
    struct result r1 = {0};
    struct result r2 = {0};
    char want[256];
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/small", .big_body = 100000});
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/huge", .big_body = 9u << 20});
    struct cg_http_req *req = mkreq(e, "GET", "/small");
    cg_http_req_set_max_body(req, 65536);
    submit(e, req, &r1);
    submit(e, mkreq(e, "GET", "/huge"), &r2);
    cg_http_run(e->h);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.code, CG_ETOOBIG);
    snprintf(want, sizeof(want), "GET %s/small: response larger than 65536 bytes", e->base);
    assert_string_equal(r1.msg, want);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.code, CG_ETOOBIG);
    snprintf(want, sizeof(want), "GET %s/huge: response larger than 8388608 bytes", e->base);
    assert_string_equal(r2.msg, want);
    assert_int_equal(r1.attempts, 1); /* not retried */
    result_free(&r1);
    result_free(&r2);
}

/* ---- hooks ------------------------------------------------------------------------------ */

struct sign_state {
    int calls;
    int fail_at; /* attempt number that fails, 0 = none */
};

static int sign_hook(struct cg_http_req *req, void *data, struct cg_err *err)
{
    struct sign_state *s = data;
    char tok[64];
    s->calls++;
    if (cg_http_req_attempts(req) == s->fail_at) {
        return cg_err_set(err, CG_EAUTH, "token file is empty");
    }
    snprintf(tok, sizeof(tok), "Bearer tok-%d", cg_http_req_attempts(req));
    return cg_http_req_set_header(req, "Authorization", tok);
}

static void test_sign_each_attempt(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct sign_state s = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503, .uses = 2});
    struct cg_http_req *req = mkreq(e, "GET", "/signed");
    assert_int_equal(cg_http_req_header(req, "authorization", "stale"), 0);
    assert_int_equal(cg_http_req_header(req, "Authorization", "stale2"), 0);
    cg_http_req_set_sign(req, sign_hook, &s);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(s.calls, 3);
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof(want), "Bearer tok-%d", i + 1);
        assert_string_equal(http_mock_req_header(e->m, i, "Authorization"), want);
        assert_int_equal(http_mock_req_header_count(e->m, i, "authorization"), 1);
    }
    result_free(&r);
}

static void test_sign_failure(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct sign_state s1 = {.fail_at = 1};
    struct sign_state s2 = {.fail_at = 2};
    struct cg_err err = {0};
    char want[256];

    /* on the first attempt the failure comes back from submit; done never runs */
    struct cg_http_req *req = mkreq(e, "GET", "/signed");
    cg_http_req_set_sign(req, sign_hook, &s1);
    assert_int_equal(cg_http_submit(e->h, req, on_done, &r, &err), CG_EAUTH);
    snprintf(want, sizeof(want), "GET %s/signed: token file is empty", e->base);
    assert_string_equal(err.msg, want);
    cg_http_req_free(req);

    /* on a retry it is delivered */
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503});
    req = mkreq(e, "GET", "/signed");
    cg_http_req_set_sign(req, sign_hook, &s2);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_EAUTH);
    assert_string_equal(r.msg, want);
    result_free(&r);
}

struct classify_state {
    int calls;
    long statuses[8];
};

static int classify_throttling(struct cg_http_req *req, void *data)
{
    struct classify_state *c = data;
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    if (c->calls < 8) {
        c->statuses[c->calls] = cg_http_req_status(req);
    }
    c->calls++;
    return cg_http_req_status(req) == 400 && strstr(body, "Throttling") != NULL;
}

static void test_classifier(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct classify_state c = {0};
    http_mock_push(e->m, &(struct http_mock_resp){
                             .status = 400, .body = "<Error><Code>Throttling</Code></Error>"});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 400, .body = "<Code>Bad</Code>"});
    struct cg_http_req *req = mkreq(e, "POST", "/aws");
    assert_int_equal(cg_http_req_body_copy(req, "Action=X", 8), 0);
    cg_http_req_set_retry_classifier(req, classify_throttling, &c);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "<Code>Bad</Code>");
    assert_int_equal(r.attempts, 3);
    /* consulted for both 400s, not for the 503 that the default rules retry */
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.statuses[0], 400);
    assert_int_equal(c.statuses[1], 400);
    result_free(&r);
}

static void test_classifier_401(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct classify_state c = {0};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 401});
    struct cg_http_req *req = mkreq(e, "GET", "/auth");
    cg_http_req_set_retry_classifier(req, classify_throttling, &c);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 401);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.statuses[0], 401);
    result_free(&r);
}

/* ---- cancellation and timers ------------------------------------------------------------ */

struct timer_rec {
    int calls;
    int canceled;
    int order;
    int *seq;
    uint64_t at;
    uv_loop_t *loop;
};

static void on_timer(void *data, int canceled)
{
    struct timer_rec *t = data;
    t->calls++;
    t->canceled = canceled;
    t->order = (*t->seq)++;
    t->at = now_ms(t->loop);
}

struct closer {
    struct env *e;
    int submit_rc;
    int after_rc;
};

static void close_from_timer(void *data, int canceled)
{
    struct closer *c = data;
    struct env *e = c->e;
    struct result unused = {0};
    assert_int_equal(canceled, 0);
    cg_http_close(e->h);
    /* the engine refuses new work while closing; the caller keeps the request */
    struct cg_http_req *req = mkreq(e, "GET", "/late");
    struct cg_err err = {0};
    c->submit_rc = cg_http_submit(e->h, req, on_done, &unused, &err);
    cg_http_req_free(req);
    c->after_rc = cg_http_after(e->h, 10, on_timer, NULL);
    e->h = NULL;
}

static void test_cancel_on_close(void **state)
{
    struct env *e = *state;
    struct result hung = {0};
    struct result backoff = {0};
    int seq = 0;
    struct timer_rec pending = {.seq = &seq, .loop = &e->loop};
    struct closer closer = {.e = e};
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/hang", .action = HTTP_MOCK_HANG});
    http_mock_push(e->m, &(struct http_mock_resp){
                             .path = "/busy", .status = 503, .headers = "Retry-After: 10\r\n"});
    submit(e, mkreq(e, "GET", "/hang"), &hung);
    submit(e, mkreq(e, "GET", "/busy"), &backoff);
    assert_int_equal(cg_http_after(e->h, 10000, on_timer, &pending), 0);
    assert_int_equal(cg_http_after(e->h, 300, close_from_timer, &closer), 0);
    uint64_t t0 = now_ms(&e->loop);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_true(now_ms(&e->loop) - t0 < 2000);

    assert_int_equal(hung.calls, 1);
    assert_int_equal(hung.code, CG_ECANCELED);
    assert_int_equal(backoff.calls, 1);
    assert_int_equal(backoff.code, CG_ECANCELED);
    assert_int_equal(backoff.attempts, 1);
    assert_int_equal(pending.calls, 1);
    assert_int_equal(pending.canceled, 1);
    assert_int_equal(closer.submit_rc, CG_ECANCELED);
    assert_int_equal(closer.after_rc, CG_ECANCELED);
    result_free(&hung);
    result_free(&backoff);
}

static void test_after_timers(void **state)
{
    struct env *e = *state;
    int seq = 0;
    struct timer_rec t[3];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 3; i++) {
        t[i].seq = &seq;
        t[i].loop = &e->loop;
    }
    uint64_t t0 = now_ms(&e->loop);
    assert_int_equal(cg_http_after(e->h, 80, on_timer, &t[0]), 0);
    assert_int_equal(cg_http_after(e->h, 0, on_timer, &t[1]), 0);
    assert_int_equal(cg_http_after(e->h, 30, on_timer, &t[2]), 0);
    assert_int_equal(cg_http_after(e->h, 10, NULL, NULL), CG_EINVAL);
    cg_http_run(e->h);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].canceled, 0);
    }
    assert_int_equal(t[1].order, 0);
    assert_int_equal(t[2].order, 1);
    assert_int_equal(t[0].order, 2);
    assert_true(t[0].at - t0 >= 80);
    assert_true(t[2].at - t0 >= 30);
}

/* ---- input validation ------------------------------------------------------------------- */

static void test_header_injection(void **state)
{
    struct env *e = *state;
    struct cg_http_req *req = mkreq(e, "GET", "/x");
    assert_int_equal(cg_http_req_header(req, "X-A", "v\r\nInjected: 1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X-A", "v\nInjected: 1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X-A", "v\r"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X-A\r\nInjected", "1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X:A", "1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X A", "1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "", "1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, NULL, "1"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X-A", NULL), CG_EINVAL);
    assert_int_equal(cg_http_req_set_header(req, "X-A", "a\r\nb"), CG_EINVAL);
    assert_int_equal(cg_http_req_set_header(req, "X-A\n", "a"), CG_EINVAL);
    assert_int_equal(cg_http_req_header(req, "X-A", "fine\tvalue"), 0);
    cg_http_req_free(req);

    /* the method and the URL are checked at submit */
    struct cg_err err = {0};
    struct result r = {0};
    req = mkreq(e, "GET\r\nX: 1", "/x");
    assert_int_equal(cg_http_submit(e->h, req, on_done, &r, &err), CG_EINVAL);
    cg_http_req_free(req);
    req = mkreq(e, "GET", "/x\r\nHost: evil");
    assert_int_equal(cg_http_submit(e->h, req, on_done, &r, &err), CG_EINVAL);
    cg_http_req_free(req);
    assert_int_equal(r.calls, 0);
    assert_int_equal(http_mock_count(e->m), 0);
}

static void test_parse_retry_after(void **state)
{
    (void)state;
    const long long now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(cg_http_parse_retry_after("5", now), 5000);
    assert_int_equal(cg_http_parse_retry_after(" 7 ", now), 7000);
    assert_int_equal(cg_http_parse_retry_after("0", now), 0);
    assert_int_equal(cg_http_parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), 10000);
    assert_int_equal(cg_http_parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now), 60000);
    assert_int_equal(cg_http_parse_retry_after("Sun Nov  6 08:49:39 1994", now), 2000);
    assert_int_equal(cg_http_parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), 0);
    assert_true(cg_http_parse_retry_after("99999999999999999999", now) > 0);
    assert_int_equal(cg_http_parse_retry_after(NULL, now), -1);
    assert_int_equal(cg_http_parse_retry_after("", now), -1);
    assert_int_equal(cg_http_parse_retry_after("soon", now), -1);
    assert_int_equal(cg_http_parse_retry_after("5s", now), -1);
    assert_int_equal(cg_http_parse_retry_after("-1", now), -1);
    assert_int_equal(cg_http_parse_retry_after("1.5", now), -1);
    assert_int_equal(cg_http_parse_retry_after("Sun, 06 Foo 1994 08:49:47 GMT", now), -1);
    assert_int_equal(cg_http_parse_retry_after("Sun, 06 Nov 1994 08:49:47 PST", now), -1);
    assert_int_equal(cg_http_parse_retry_after("Sun, 06 Nov 1994 25:49:47 GMT", now), -1);
    assert_int_equal(cg_http_parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT junk", now), -1);
}

/* ---- response headers, proxy, accounting ------------------------------------------------ */

static void test_resp_headers_final_block(void **state)
{
    struct env *e = *state;
    struct result r = {.want_hdr = "X-Final"};
    http_mock_push(
        e->m, &(struct http_mock_resp){.raw = "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
                                              "HTTP/1.1 200 OK\r\nX-Final:  two \r\nX-Dup: a\r\n"
                                              "X-Dup: b\r\nContent-Length: 2\r\n\r\nok"});
    submit(e, mkreq(e, "GET", "/h"), &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.hdr, "two");
    assert_string_equal(r.body, "ok");
    result_free(&r);

    struct result r2 = {.want_hdr = "X-Early"};
    http_mock_push(e->m,
                   &(struct http_mock_resp){.raw = "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
                                                   "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"});
    submit(e, mkreq(e, "GET", "/h"), &r2);
    cg_http_run(e->h);
    assert_int_equal(r2.calls, 1);
    assert_false(r2.hdr_present); /* only the final response block counts */
    result_free(&r2);

    struct result r3 = {.want_hdr = "x-dup"};
    http_mock_push(e->m, &(struct http_mock_resp){.headers = "X-Dup: first\r\nX-Dup: second\r\n"});
    submit(e, mkreq(e, "GET", "/h"), &r3);
    cg_http_run(e->h);
    assert_string_equal(r3.hdr, "first");
    result_free(&r3);

    /* obsolete line folding: the continuation joins the value with one space */
    struct result r4 = {.want_hdr = "X-Fold"};
    http_mock_push(e->m, &(struct http_mock_resp){
                             .raw = "HTTP/1.1 200 OK\r\nX-Fold: a\r\n   b\r\nX-After: 1\r\n"
                                    "Content-Length: 0\r\n\r\n"});
    submit(e, mkreq(e, "GET", "/h"), &r4);
    cg_http_run(e->h);
    assert_int_equal(r4.code, 0);
    assert_string_equal(r4.hdr, "a b");
    result_free(&r4);
}

static void test_resp_headers_from_final_attempt(void **state)
{
    struct env *e = *state;
    struct result r = {.want_hdr = "X-Attempt"};
    http_mock_push(e->m, &(struct http_mock_resp){.status = 503, .headers = "X-Attempt: 1\r\n"});
    http_mock_push(e->m, &(struct http_mock_resp){.status = 200});
    submit(e, mkreq(e, "GET", "/a"), &r);
    cg_http_run(e->h);
    assert_int_equal(r.status, 200);
    assert_false(r.hdr_present);
    result_free(&r);
}

static void test_explicit_proxy(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct cg_http_req *req = cg_http_req_new("GET", "http://cloudgrant.invalid/via-proxy");
    cg_http_req_set_user_data(req, e);
    assert_int_equal(cg_http_req_set_proxy(req, e->base), 0);
    submit(e, req, &r);
    cg_http_run(e->h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_mock_req_target(e->m, 0), "http://cloudgrant.invalid/via-proxy");
    result_free(&r);
}

static void test_done_exactly_once(void **state)
{
    enum { N = 8 };
    struct env *e = *state;
    struct result r[N];
    char url[128];
    memset(r, 0, sizeof(r));
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/retry", .status = 502});
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/big", .big_body = 4096});
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/hang", .action = HTTP_MOCK_HANG});
    http_mock_push(e->m, &(struct http_mock_resp){.path = "/gone", .status = 404, .uses = -1});
    http_mock_push(
        e->m, &(struct http_mock_resp){.path = "/reset", .action = HTTP_MOCK_RESET, .uses = -1});
    submit(e, mkreq(e, "GET", "/ok"), &r[0]);
    submit(e, mkreq(e, "GET", "/retry"), &r[1]);
    struct cg_http_req *req = mkreq(e, "GET", "/big");
    cg_http_req_set_max_body(req, 1024);
    submit(e, req, &r[2]);
    req = mkreq(e, "GET", "/hang");
    cg_http_req_set_timeout(req, 200);
    submit(e, req, &r[3]);
    submit(e, mkreq(e, "GET", "/gone"), &r[4]);
    req = mkreq(e, "GET", "/reset");
    cg_http_req_set_max_attempts(req, 2);
    submit(e, req, &r[5]);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", free_port());
    req = cg_http_req_new("HEAD", url);
    cg_http_req_set_user_data(req, e);
    cg_http_req_set_max_attempts(req, 1);
    submit(e, req, &r[6]);
    submit(e, mkreq(e, "HEAD", "/ok"), &r[7]);
    cg_http_run(e->h);

    int codes[N] = {0, 0, CG_ETOOBIG, CG_ETIMEDOUT, 0, CG_EHTTP, CG_EHTTP, 0};
    long statuses[N] = {200, 200, 200, 0, 404, 0, 0, 200};
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].code, codes[i]);
        if (codes[i] == 0) {
            assert_int_equal(r[i].status, statuses[i]);
        }
        result_free(&r[i]);
    }
    assert_int_equal(r[1].attempts, 2);
    assert_int_equal(r[5].attempts, 2);
    assert_int_equal(r[6].attempts, 1);
}

/* ---- TLS -------------------------------------------------------------------------------- */

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

/* A throwaway self-signed certificate and key, made in memory. */
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
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"cg-test", -1, -1,
                               0);
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

static void test_tls_to_plain_port(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    struct result r2 = {0};
    char *cert = NULL;
    char *key = NULL;
    char url[128];
    char prefix[160];
    make_cert(&cert, &key);
    struct cg_tls tls = {.ca_pem = cert,
                         .ca_len = strlen(cert),
                         .cert_pem = cert,
                         .cert_len = strlen(cert),
                         .key_pem = key,
                         .key_len = strlen(key)};
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/tls", http_mock_port(e->m));
    struct cg_http_req *req = cg_http_req_new("GET", url);
    cg_http_req_set_user_data(req, e);
    assert_int_equal(cg_http_req_set_tls(req, &tls), 0);
    submit(e, req, &r);

    /* the TLS name differs from the host: the connection still goes to 127.0.0.1 and the
     * ClientHello carries the configured name */
    tls.server_name = "api.cloudgrant.test";
    req = cg_http_req_new("GET", url);
    cg_http_req_set_user_data(req, e);
    assert_int_equal(cg_http_req_set_tls(req, &tls), 0);
    submit(e, req, &r2);
    cg_http_run(e->h);

    snprintf(prefix, sizeof(prefix), "GET %s: ", url);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.code, CG_EHTTP);
    assert_int_equal(strncmp(r.msg, prefix, strlen(prefix)), 0);
    assert_non_null(strstr(r.msg, "wrong version number"));
    assert_null(strchr(r.msg, '\n'));
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.code, CG_EHTTP);
    assert_int_equal(strncmp(r2.msg, prefix, strlen(prefix)), 0);
    size_t raw_len = 0;
    const char *raw = http_mock_raw(e->m, &raw_len);
    assert_non_null(memmem(raw, raw_len, "api.cloudgrant.test", 19));
    free(cert);
    free(key);
    result_free(&r);
    result_free(&r2);
}

/* ---- tracing ---------------------------------------------------------------------------- */

static void test_trace_redacts(void **state)
{
    struct env *e = *state;
    struct result r = {0};
    int saved_level = cg_log_level;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fileno(tmp), 2);
    cg_log_setup(CG_LOG_TRACE, CG_LOG_TEXT);

    http_mock_push(e->m, &(struct http_mock_resp){
                             .headers = "Set-Cookie: session=cookie-secret\r\nX-Visible: shown\r\n",
                             .body = "body-secret"});
    struct cg_http_req *req = mkreq(e, "POST", "/trace");
    assert_int_equal(cg_http_req_header(req, "Authorization", "Bearer token-secret"), 0);
    assert_int_equal(cg_http_req_header(req, "X-Amz-Security-Token", "amz-secret"), 0);
    assert_int_equal(cg_http_req_header(req, "X-Plain", "plain-value"), 0);
    assert_int_equal(cg_http_req_body_copy(req, "request-secret", 14), 0);
    submit(e, req, &r);
    cg_http_run(e->h);

    cg_log_setup(saved_level, CG_LOG_TEXT);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char log[65536];
    rewind(tmp);
    size_t n = fread(log, 1, sizeof(log) - 1, tmp);
    log[n] = '\0';
    fclose(tmp);

    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(log, "Authorization: <redacted>"));
    assert_non_null(strstr(log, "X-Amz-Security-Token: <redacted>"));
    assert_non_null(strstr(log, "Set-Cookie: <redacted>"));
    assert_non_null(strstr(log, "X-Plain: plain-value"));
    assert_non_null(strstr(log, "X-Visible: shown"));
    assert_null(strstr(log, "token-secret"));
    assert_null(strstr(log, "amz-secret"));
    assert_null(strstr(log, "cookie-secret"));
    assert_null(strstr(log, "body-secret"));
    assert_null(strstr(log, "request-secret"));
    result_free(&r);
}

int main(void)
{
    /* the requests go to 127.0.0.1 directly, whatever proxy the environment names */
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_until_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempt_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_across_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_beyond_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_each_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classifier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classifier_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_injection, setup, teardown),
        cmocka_unit_test(test_parse_retry_after),
        cmocka_unit_test_setup_teardown(test_resp_headers_final_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resp_headers_from_final_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_to_plain_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_redacts, setup, teardown),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
