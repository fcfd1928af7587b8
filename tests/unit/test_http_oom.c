/* Allocation-failure torture for cg_http and cg_proc (curl's "torture" idea): run a scenario
 * once per allocation it makes, failing exactly that allocation. Each run must not crash, must
 * call every accepted `done` exactly once, must leave the loop closable, and (under
 * LeakSanitizer) must not leak.
 *
 * malloc, calloc, realloc and strdup are wrapped at link time (-Wl,--wrap), which reaches our
 * static libraries but not libcurl or libuv: their own allocation failures are their business.
 * The mock server runs on a thread of its own, and only the test thread is failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "cg_http.h"
#include "cg_proc.h"
#include "http_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static _Thread_local int armed; /* only the test thread ever arms */
static long countdown;
static int injected;

static int should_fail(void)
{
    if (armed && --countdown == 0) {
        injected = 1;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}

static void arm(long n)
{
    countdown = n;
    injected = 0;
    armed = 1;
}

/* ---- the mock on its own thread --------------------------------------------------------- */

struct server {
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t tid;
    struct http_mock *m;
};

static void server_stop(uv_async_t *a)
{
    struct server *s = a->data;
    http_mock_close(s->m);
    uv_close((uv_handle_t *)a, NULL);
}

static void server_main(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void server_start(struct server *s)
{
    assert_int_equal(uv_loop_init(&s->loop), 0);
    s->m = http_mock_new(&s->loop);
    http_mock_push(s->m, &(struct http_mock_resp){
                             .path = "/retry", .uses = -1, .status = 503, .body = "busy"});
    http_mock_set_default(
        s->m, &(struct http_mock_resp){.headers = "X-Reply: yes\r\nX-Fold: a\r\n", .body = "ok"});
    s->stop.data = s;
    assert_int_equal(uv_async_init(&s->loop, &s->stop, server_stop), 0);
    assert_int_equal(uv_thread_create(&s->tid, server_main, s), 0);
}

static void server_join(struct server *s)
{
    uv_async_send(&s->stop);
    uv_thread_join(&s->tid);
    assert_int_equal(uv_loop_close(&s->loop), 0);
}

/* ---- scenarios -------------------------------------------------------------------------- */

struct slot {
    int submitted;
    int calls;
};

static void on_done(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct slot *s = data;
    size_t len = 0;
    s->calls++;
    (void)cg_http_req_resp_header(req, "X-Reply");
    char *body = cg_http_req_take_body(req, &len); /* NULL when that allocation fails */
    free(body);
    (void)err;
}

static int sign(struct cg_http_req *req, void *data, struct cg_err *err)
{
    (void)data;
    int rc = cg_http_req_set_header(req, "Authorization", "Bearer oom-token");
    if (rc < 0) {
        return cg_err_set(err, rc, "out of memory");
    }
    return 0;
}

static void on_timer(void *data, int canceled)
{
    (*(int *)data)++;
    (void)canceled;
}

static void try_submit(struct cg_http *h, struct cg_http_req *req, struct slot *slot)
{
    struct cg_err err = {0};
    if (req == NULL) {
        return;
    }
    if (cg_http_submit(h, req, on_done, slot, &err) == 0) {
        slot->submitted = 1;
    } else {
        cg_http_req_free(req);
    }
}

/* Returns 1 while the run still hit the injected failure. */
static int http_scenario(int port, long n, int retry_only)
{
    static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    uv_loop_t loop;
    struct cg_http *h = NULL;
    struct cg_err err = {0};
    struct slot slots[3];
    int timer_calls = 0;
    int timer_set = 0;
    char url[128];
    memset(slots, 0, sizeof(slots));
    assert_int_equal(uv_loop_init(&loop), 0);
    arm(n);
    if (cg_http_new(&h, &loop, &err) == 0) {
        struct cg_http_req *req;
        if (retry_only) {
            snprintf(url, sizeof(url), "http://127.0.0.1:%d/retry", port);
            req = cg_http_req_new("GET", url);
            if (req != NULL) {
                cg_http_req_set_max_attempts(req, 2);
            }
            try_submit(h, req, &slots[0]);
        } else {
            snprintf(url, sizeof(url), "http://user:pw@127.0.0.1:%d/ok?x=1", port);
            req = cg_http_req_new("POST", url);
            if (req != NULL) {
                struct cg_tls tls = {.ca_pem = pem, .ca_len = sizeof(pem) - 1};
                int ok = cg_http_req_header(req, "X-A", "1") == 0 &&
                         cg_http_req_header(req, "X-B", "") == 0 &&
                         cg_http_req_body_copy(req, "body", 4) == 0 &&
                         cg_http_req_set_label(req, "oom") == 0 &&
                         cg_http_req_set_tls(req, &tls) == 0;
                cg_http_req_set_sign(req, sign, NULL);
                if (!ok) {
                    cg_http_req_free(req);
                    req = NULL;
                }
            }
            try_submit(h, req, &slots[0]);

            snprintf(url, sizeof(url), "https://127.0.0.1:%d/tls", port);
            req = cg_http_req_new("GET", url);
            if (req != NULL) {
                struct cg_tls tls = {.server_name = "api.test", .insecure_skip_verify = 1};
                if (cg_http_req_set_tls(req, &tls) != 0) {
                    cg_http_req_free(req);
                    req = NULL;
                }
            }
            try_submit(h, req, &slots[1]);

            snprintf(url, sizeof(url), "http://127.0.0.1:%d/get", port);
            try_submit(h, cg_http_req_new("GET", url), &slots[2]);
            timer_set = cg_http_after(h, 0, on_timer, &timer_calls) == 0;
        }
        cg_http_run(h);
        cg_http_close(h);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    armed = 0;
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(slots[i].calls, slots[i].submitted);
    }
    assert_int_equal(timer_calls, timer_set);
    if (!injected) {
        /* the run without a failure must have done everything */
        for (int i = 0; i < (retry_only ? 1 : 3); i++) {
            assert_int_equal(slots[i].calls, 1);
        }
        assert_int_equal(timer_calls, retry_only ? 0 : 1);
    }
    return injected;
}

static void test_http_oom(void **state)
{
    (void)state;
    struct server s;
    server_start(&s);
    int port = http_mock_port(s.m);
    long n = 1;
    while (http_scenario(port, n, 0)) {
        n++;
    }
    assert_true(n > 10); /* the scenario did allocate */
    n = 1;
    while (http_scenario(port, n, 1)) {
        n++;
    }
    server_join(&s);
}

static void on_proc_done(const struct cg_proc_result *res, const struct cg_err *err, void *data)
{
    (*(int *)data)++;
    (void)res;
    (void)err;
}

static void test_proc_oom(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/cat", NULL};
    struct cg_proc_opts opts = {.argv = argv, .stdin_data = "input", .stdin_len = 5};
    long n = 1;
    for (;; n++) {
        uv_loop_t loop;
        int calls = 0;
        assert_int_equal(uv_loop_init(&loop), 0);
        arm(n);
        int rc = cg_proc_run(&loop, &opts, on_proc_done, &calls, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        armed = 0;
        assert_int_equal(uv_loop_close(&loop), 0);
        assert_int_equal(calls, rc == 0 ? 1 : 0);
        if (!injected) {
            break;
        }
    }
    assert_true(n > 2);
}

int main(void)
{
    setenv("CG_HTTP_JITTER_SEED", "46", 1); /* a first backoff of 2 ms keeps this test quick */
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_oom),
        cmocka_unit_test(test_proc_oom),
    };
    return cmocka_run_group_tests_name("http_oom", tests, NULL, NULL);
}
