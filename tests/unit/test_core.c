/* Unit tests for agent/core: errors, buffers, base64, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_buf.h"
#include "cg_err.h"
#include "cg_log.h"
#include "cg_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_err_set_and_wrap(void **state)
{
    (void)state;
    struct cg_err err = {0};
    assert_int_equal(cg_err_set(&err, CG_EINVAL, "cannot parse '%s'", "x.yaml"), CG_EINVAL);
    assert_int_equal(cg_err_wrap(&err, "loading kubeconfig"), CG_EINVAL);
    assert_string_equal(err.msg, "loading kubeconfig: cannot parse 'x.yaml'");
    assert_int_equal(cg_err_set(NULL, CG_EIO, "ignored"), CG_EIO);

    /* quoted input or a server's text must not break the line or reach the terminal raw */
    cg_err_set(&err, CG_EINVAL, "invalid JSON near '%s'", "\"a\\\n\r\tb\x1b[31m\x7f\"");
    assert_string_equal(err.msg, "invalid JSON near '\"a\\   b?[31m?\"'");
    cg_err_wrap(&err, "reading '%s'", "x\ny");
    assert_string_equal(err.msg, "reading 'x y': invalid JSON near '\"a\\   b?[31m?\"'");
    assert_int_equal(cg_err_set_http(&err, CG_ESTATUS, 503, "%s", "busy\n"), CG_ESTATUS);
    assert_string_equal(err.msg, "busy ");
    assert_int_equal(err.http_status, 503);
}

static void test_buf_cap(void **state)
{
    (void)state;
    struct cg_buf b;
    cg_buf_init(&b, 8);
    assert_int_equal(cg_buf_append_str(&b, "12345"), 0);
    assert_int_equal(cg_buf_append_str(&b, "6789"), CG_ETOOBIG);
    assert_string_equal(b.data, "12345"); /* unchanged after a refused append */
    assert_int_equal(cg_buf_printf(&b, "%d", 678), 0);
    assert_string_equal(b.data, "12345678");
    size_t n = 0;
    char *s = cg_buf_steal(&b, &n);
    assert_int_equal(n, 8);
    assert_string_equal(s, "12345678");
    free(s);
    cg_buf_cleanup(&b);
}

static void test_buf_sensitive_growth(void **state)
{
    (void)state;
    struct cg_buf b;
    cg_buf_init(&b, 0);
    b.sensitive = 1;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(cg_buf_append_str(&b, "secret"), 0);
    }
    assert_int_equal(b.len, 6000);
    cg_buf_cleanup(&b);
    assert_null(b.data);
}

static void test_b64(void **state)
{
    (void)state;
    unsigned char *out = NULL;
    size_t n = 0;
    assert_int_equal(cg_b64_decode("aGVsbG8=", 8, &out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    /* unpadded and wrapped, as PEM-in-YAML often is */
    assert_int_equal(cg_b64_decode("aGVs\nbG8", 8, &out, &n), 0);
    assert_int_equal(n, 5);
    free(out);
    assert_int_equal(cg_b64_decode("", 0, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    assert_int_equal(cg_b64_decode("a$==", 4, &out, &n), CG_EINVAL);
    assert_int_equal(cg_b64_decode("a=bc", 4, &out, &n), CG_EINVAL);
    assert_int_equal(cg_b64_decode("abcde", 5, &out, &n), CG_EINVAL);
    char *e = cg_b64_encode((const unsigned char *)"hello", 5);
    assert_string_equal(e, "aGVsbG8=");
    free(e);
}

static void test_paths(void **state)
{
    (void)state;
    char *d = cg_dirname("/a/b/c.yaml");
    assert_string_equal(d, "/a/b");
    char *j = cg_path_join(d, "ca.crt");
    assert_string_equal(j, "/a/b/ca.crt");
    free(j);
    j = cg_path_join(d, "/abs/ca.crt");
    assert_string_equal(j, "/abs/ca.crt");
    free(j);
    free(d);
    d = cg_dirname("c.yaml");
    assert_string_equal(d, ".");
    free(d);
    char t[] = "  tok\n";
    assert_string_equal(cg_trim(t), "tok");
}

static void test_file_read_limits(void **state)
{
    (void)state;
    struct cg_err err = {0};
    char *data = NULL;
    size_t n = 0;
    assert_int_equal(cg_file_read("/nonexistent/x", 10, &data, &n, &err), CG_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/x"));
    char path[] = "/tmp/cg_test_core_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    assert_int_equal(cg_file_read(path, 5, &data, &n, &err), CG_ETOOBIG);
    assert_int_equal(cg_file_read(path, 10, &data, &n, &err), 0);
    assert_int_equal(n, 10);
    free(data);
    unlink(path);
}

/* Plain http only to loopback, judged on the host the request really goes to. */
static void test_url_transport(void **state)
{
    (void)state;
    struct cg_err err = {0};
    assert_int_equal(cg_url_check_transport("https://iam.example.com", 0, "x", &err), 0);
    assert_int_equal(cg_url_check_transport("http://127.0.0.1:8080/a", 0, "x", &err), 0);
    assert_int_equal(cg_url_check_transport("http://[::1]:80/", 0, "x", &err), 0);
    assert_int_equal(cg_url_check_transport("http://localhost/", 0, "x", &err), 0);
    assert_int_equal(cg_url_check_transport("http://evil.example/", 0, "x", &err), CG_EINVAL);
    /* userinfo that looks like a loopback host */
    assert_int_equal(cg_url_check_transport("http://127.0.0.1:80@evil.example/", 0, "x", &err),
                     CG_EINVAL);
    assert_int_equal(cg_url_check_transport("http://localhost@evil.example", 0, "x", &err),
                     CG_EINVAL);
    assert_int_equal(cg_url_check_transport("http://u:p@127.0.0.1:9/", 0, "x", &err), 0);
    /* an '@' after the authority is not userinfo */
    assert_int_equal(cg_url_check_transport("http://127.0.0.1/a@evil.example", 0, "x", &err), 0);
    assert_int_equal(cg_url_check_transport("http://evil.example/", 1, "x", &err), 0);
    assert_int_equal(cg_url_check_transport("ftp://127.0.0.1/", 1, "x", &err), CG_EINVAL);
}

static void test_log_redaction_names(void **state)
{
    (void)state;
    assert_true(cg_log_header_is_secret("Authorization: Bearer x", 23));
    assert_true(cg_log_header_is_secret("x-amz-security-token", 20));
    assert_false(cg_log_header_is_secret("Accept: */*", 11));
    assert_false(cg_log_header_is_secret("Authorizationx: y", 17));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_set_and_wrap),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_sensitive_growth),
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_file_read_limits),
        cmocka_unit_test(test_log_redaction_names),
        cmocka_unit_test(test_url_transport),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
