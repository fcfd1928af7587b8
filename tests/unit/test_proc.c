/* cg_proc tests: real children on a real loop. The shell is used here only to script the
 * children; cg_proc itself never goes through one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "cg_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct outcome {
    int calls;
    int code;
    char msg[CG_ERR_MSG_MAX];
    int64_t exit_status;
    int term_signal;
    char *out;
    size_t out_len;
    char *err_out;
    size_t err_len;
};

static void on_done(const struct cg_proc_result *res, const struct cg_err *err, void *data)
{
    struct outcome *o = data;
    o->calls++;
    o->code = err != NULL ? err->code : 0;
    if (err != NULL) {
        snprintf(o->msg, sizeof(o->msg), "%s", err->msg);
    }
    o->exit_status = res->exit_status;
    o->term_signal = res->term_signal;
    o->out = malloc(res->out_len + 1);
    o->err_out = malloc(res->err_len + 1);
    assert_non_null(o->out);
    assert_non_null(o->err_out);
    memcpy(o->out, res->out, res->out_len + 1); /* includes the terminating NUL */
    memcpy(o->err_out, res->err_out, res->err_len + 1);
    o->out_len = res->out_len;
    o->err_len = res->err_len;
}

static void outcome_free(struct outcome *o)
{
    free(o->out);
    free(o->err_out);
}

/* Runs one process to completion on a fresh loop, which must close cleanly. */
static int run(const struct cg_proc_opts *opts, struct outcome *o, struct cg_err *err,
               uint64_t *elapsed)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    int rc = cg_proc_run(&loop, opts, on_done, o, err);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_update_time(&loop);
    if (elapsed != NULL) {
        *elapsed = uv_now(&loop) - t0;
    }
    assert_int_equal(uv_loop_close(&loop), 0);
    return rc;
}

static void test_stdout(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "printf 'hello %s' \"$0\"", "world", NULL};
    struct cg_proc_opts opts = {.argv = argv};
    struct outcome o = {0};
    struct cg_err err = {0};
    assert_int_equal(run(&opts, &o, &err, NULL), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.code, 0);
    assert_int_equal(o.exit_status, 0);
    assert_int_equal(o.term_signal, 0);
    assert_string_equal(o.out, "hello world");
    assert_int_equal(o.out_len, 11);
    assert_int_equal(o.err_len, 0);
    outcome_free(&o);
}

static void test_exit_status_and_stderr(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "echo out; echo oops >&2; exit 3", NULL};
    struct cg_proc_opts opts = {.argv = argv};
    struct outcome o = {0};
    assert_int_equal(run(&opts, &o, NULL, NULL), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.code, 0); /* it ran: the status is the caller's to judge */
    assert_int_equal(o.exit_status, 3);
    assert_string_equal(o.out, "out\n");
    assert_string_equal(o.err_out, "oops\n");
    outcome_free(&o);
}

static void test_path_lookup(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "printf found", NULL};
    struct cg_proc_opts opts = {.argv = argv};
    struct outcome o = {0};
    assert_int_equal(run(&opts, &o, NULL, NULL), 0);
    assert_string_equal(o.out, "found");
    outcome_free(&o);
}

static void test_missing_command(void **state)
{
    (void)state;
    const char *argv[] = {"cg-no-such-command", "--flag", NULL};
    struct cg_proc_opts opts = {.argv = argv};
    struct outcome o = {0};
    struct cg_err err = {0};
    assert_int_equal(run(&opts, &o, &err, NULL), CG_ENOTFOUND);
    assert_int_equal(err.code, CG_ENOTFOUND);
    assert_string_equal(err.msg, "cannot run 'cg-no-such-command': no such file or directory");
    assert_int_equal(o.calls, 0);

    const char *argv2[] = {"/bin/sh", "-c", "true", NULL};
    struct cg_proc_opts opts2 = {.argv = argv2, .cwd = "/nonexistent/cg-dir"};
    assert_int_equal(run(&opts2, &o, &err, NULL), CG_ENOTFOUND);
    assert_string_equal(err.msg, "cannot run '/bin/sh': no such directory '/nonexistent/cg-dir'");
    assert_int_equal(o.calls, 0);

    struct cg_proc_opts bad = {0};
    assert_int_equal(run(&bad, &o, &err, NULL), CG_EINVAL);
}

static void test_timeout_kills(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "printf partial; exec sleep 5", NULL};
    struct cg_proc_opts opts = {.argv = argv, .timeout_ms = 200};
    struct outcome o = {0};
    uint64_t elapsed = 0;
    assert_int_equal(run(&opts, &o, NULL, &elapsed), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.code, CG_ETIMEDOUT);
    assert_string_equal(o.msg, "running '/bin/sh': timed out after 200 ms (killed)");
    assert_int_equal(o.term_signal, SIGKILL);
    assert_string_equal(o.out, "partial");
    assert_true(elapsed >= 200);
    assert_true(elapsed < 2000);
    outcome_free(&o);
}

static void test_timeout_with_grandchild(void **state)
{
    (void)state;
    /* the background sleep keeps stdout open after its parent is killed */
    const char *argv[] = {"/bin/sh", "-c", "sleep 3 & sleep 3", NULL};
    struct cg_proc_opts opts = {.argv = argv, .timeout_ms = 200};
    struct outcome o = {0};
    uint64_t elapsed = 0;
    assert_int_equal(run(&opts, &o, NULL, &elapsed), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.code, CG_ETIMEDOUT);
    assert_true(elapsed < 2000);
    outcome_free(&o);
}

static void test_output_cap(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "head -c 100000 /dev/zero; sleep 5", NULL};
    struct cg_proc_opts opts = {.argv = argv, .max_output = 1000};
    struct outcome o = {0};
    uint64_t elapsed = 0;
    assert_int_equal(run(&opts, &o, NULL, &elapsed), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.code, CG_ETOOBIG);
    assert_string_equal(o.msg, "running '/bin/sh': more than 1000 bytes on stdout (killed)");
    assert_true(o.out_len <= 1000);
    assert_true(elapsed < 2000);
    outcome_free(&o);

    const char *argv2[] = {"/bin/sh", "-c", "head -c 5000 /dev/zero >&2", NULL};
    struct cg_proc_opts opts2 = {.argv = argv2, .max_output = 1000};
    struct outcome o2 = {0};
    assert_int_equal(run(&opts2, &o2, NULL, NULL), 0);
    assert_int_equal(o2.code, CG_ETOOBIG);
    assert_non_null(strstr(o2.msg, "stderr"));
    outcome_free(&o2);
}

static void test_stdin(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/cat", NULL};
    struct cg_proc_opts opts = {.argv = argv, .stdin_data = "secret input", .stdin_len = 12};
    struct outcome o = {0};
    assert_int_equal(run(&opts, &o, NULL, NULL), 0);
    assert_int_equal(o.code, 0);
    assert_string_equal(o.out, "secret input");
    outcome_free(&o);

    /* more than a socket buffer holds, so writing follows the child's pace */
    size_t big = 1u << 20;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++) {
        data[i] = (char)('a' + i % 26);
    }
    struct cg_proc_opts opts2 = {
        .argv = argv, .stdin_data = data, .stdin_len = big, .max_output = 2u << 20};
    struct outcome o2 = {0};
    assert_int_equal(run(&opts2, &o2, NULL, NULL), 0);
    assert_int_equal(o2.code, 0);
    assert_int_equal(o2.out_len, big);
    assert_memory_equal(o2.out, data, big);
    outcome_free(&o2);

    /* a child that never reads must not take us down with SIGPIPE */
    const char *argv3[] = {"/bin/sh", "-c", "exit 0", NULL};
    struct cg_proc_opts opts3 = {.argv = argv3, .stdin_data = data, .stdin_len = big};
    struct outcome o3 = {0};
    assert_int_equal(run(&opts3, &o3, NULL, NULL), 0);
    assert_int_equal(o3.code, 0);
    assert_int_equal(o3.exit_status, 0);
    outcome_free(&o3);
    free(data);

    /* without stdin_data the child reads /dev/null */
    struct cg_proc_opts opts4 = {.argv = argv};
    struct outcome o4 = {0};
    assert_int_equal(run(&opts4, &o4, NULL, NULL), 0);
    assert_int_equal(o4.out_len, 0);
    outcome_free(&o4);

    /* empty stdin_data: EOF straight away */
    struct cg_proc_opts opts5 = {.argv = argv, .stdin_data = "", .stdin_len = 0};
    struct outcome o5 = {0};
    assert_int_equal(run(&opts5, &o5, NULL, NULL), 0);
    assert_int_equal(o5.out_len, 0);
    outcome_free(&o5);
}

static void test_env_and_cwd(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "printf '%s|%s|' \"$CG_TEST_VAR\" \"$HOME\"; pwd", NULL};
    const char *envp[] = {"CG_TEST_VAR=hello", NULL};
    struct cg_proc_opts opts = {.argv = argv, .envp = envp, .cwd = "/"};
    struct outcome o = {0};
    setenv("HOME", "/should/not/leak", 1);
    assert_int_equal(run(&opts, &o, NULL, NULL), 0);
    assert_int_equal(o.code, 0);
    assert_string_equal(o.out, "hello||/\n");
    outcome_free(&o);
}

static void on_done_count(const struct cg_proc_result *res, const struct cg_err *err, void *data)
{
    (void)res;
    (void)err;
    (*(int *)data)++;
}

static void test_parallel(void **state)
{
    (void)state;
    enum { N = 10 };
    uv_loop_t loop;
    int calls = 0;
    const char *argv[] = {"/bin/sh", "-c", "sleep 0.2", NULL};
    struct cg_proc_opts opts = {.argv = argv};
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cg_proc_run(&loop, &opts, on_done_count, &calls, NULL), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_update_time(&loop);
    assert_int_equal(calls, N);
    assert_true(uv_now(&loop) - t0 < 1500); /* they ran side by side */
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stdout),        cmocka_unit_test(test_exit_status_and_stderr),
        cmocka_unit_test(test_path_lookup),   cmocka_unit_test(test_missing_command),
        cmocka_unit_test(test_timeout_kills), cmocka_unit_test(test_timeout_with_grandchild),
        cmocka_unit_test(test_output_cap),    cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_env_and_cwd),   cmocka_unit_test(test_parallel),
    };
    return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
