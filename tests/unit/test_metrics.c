/* Unit tests for agent/metrics: exposition text, escaping, caps and flat memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_buf.h"
#include "cg_err.h"
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_render_small_registry(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    assert_int_equal(cg_metrics_counter(m, "cloudgrant_checks_total", "Drift checks run."), 0);
    assert_int_equal(cg_metrics_gauge(m, "cloudgrant_drift", "Resources out of policy,\nby scope."),
                     0);
    assert_int_equal(cg_metrics_gauge(m, "cloudgrant_up", ""), 0);
    /* declaring again with the same type is harmless; another type is not */
    assert_int_equal(cg_metrics_counter(m, "cloudgrant_checks_total", "other help"), 0);
    assert_int_equal(cg_metrics_gauge(m, "cloudgrant_checks_total", "x"), CG_EINVAL);

    assert_int_equal(cg_metrics_add(m, "cloudgrant_checks_total", 1, "result", "ok", NULL), 0);
    assert_int_equal(cg_metrics_add(m, "cloudgrant_checks_total", 2, "result", "error", NULL), 0);
    assert_int_equal(cg_metrics_add(m, "cloudgrant_checks_total", 1, "result", "ok", NULL), 0);
    assert_int_equal(
        cg_metrics_set(m, "cloudgrant_drift", 3, "provider", "aws", "cluster", "prod", NULL), 0);
    /* label order does not matter: the same series */
    assert_int_equal(
        cg_metrics_set(m, "cloudgrant_drift", 4, "cluster", "prod", "provider", "aws", NULL), 0);
    assert_int_equal(
        cg_metrics_set(m, "cloudgrant_drift", 0.1, "cluster", "dev", "provider", "aws", NULL), 0);
    assert_int_equal(cg_metrics_set(m, "cloudgrant_up", 1, NULL), 0);

    char *text = cg_metrics_render(m);
    assert_non_null(text);
    assert_string_equal(
        text, "# HELP cloudgrant_checks_total Drift checks run.\n"
              "# TYPE cloudgrant_checks_total counter\n"
              "cloudgrant_checks_total{result=\"error\"} 2\n"
              "cloudgrant_checks_total{result=\"ok\"} 2\n"
              "# HELP cloudgrant_drift Resources out of policy,\\nby scope.\n"
              "# TYPE cloudgrant_drift gauge\n"
              "cloudgrant_drift{cluster=\"dev\",provider=\"aws\"} 0.1\n"
              "cloudgrant_drift{cluster=\"prod\",provider=\"aws\"} 4\n"
              "# HELP cloudgrant_metrics_dropped_series_total New series refused because their "
              "family reached its series cap.\n"
              "# TYPE cloudgrant_metrics_dropped_series_total counter\n"
              "cloudgrant_metrics_dropped_series_total 0\n"
              "# TYPE cloudgrant_up gauge\n"
              "cloudgrant_up 1\n");
    /* stable: rendering twice gives the same bytes */
    char *again = cg_metrics_render(m);
    assert_string_equal(text, again);
    free(again);
    free(text);
    cg_metrics_free(m);
}

static void test_values(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    assert_int_equal(cg_metrics_gauge(m, "g", "h"), 0);
    assert_int_equal(cg_metrics_set(m, "g", 1e21, "v", "a", NULL), 0);
    assert_int_equal(cg_metrics_set(m, "g", -2.5, "v", "b", NULL), 0);
    assert_int_equal(cg_metrics_set(m, "g", INFINITY, "v", "c", NULL), 0);
    assert_int_equal(cg_metrics_set(m, "g", -INFINITY, "v", "d", NULL), 0);
    assert_int_equal(cg_metrics_set(m, "g", 1.0 / 3, "v", "e", NULL), 0);
    assert_int_equal(cg_metrics_set(m, "g", NAN, "v", "f", NULL), CG_EINVAL);
    char *text = cg_metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "g{v=\"a\"} 1e+21\n"));
    assert_non_null(strstr(text, "g{v=\"b\"} -2.5\n"));
    assert_non_null(strstr(text, "g{v=\"c\"} +Inf\n"));
    assert_non_null(strstr(text, "g{v=\"d\"} -Inf\n"));
    assert_non_null(strstr(text, "g{v=\"e\"} 0.33333333333333331\n"));
    assert_null(strstr(text, "v=\"f\""));
    free(text);
    cg_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    assert_int_equal(cg_metrics_counter(m, "c_total", "a \\ backslash"), 0);
    assert_int_equal(cg_metrics_add(m, "c_total", 1, "v", "a\\b\"c\nd", NULL), 0);
    assert_int_equal(cg_metrics_add(m, "c_total", 1, "v", "caf\xc3\xa9 \xff\xc3(", NULL), 0);
    assert_int_equal(cg_metrics_add(m, "c_total", 1, "v", "", NULL), 0);
    char *text = cg_metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "# HELP c_total a \\\\ backslash\n"));
    assert_non_null(strstr(text, "c_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"));
    /* valid UTF-8 passes, invalid bytes become '?' */
    assert_non_null(strstr(text, "c_total{v=\"caf\xc3\xa9 ?\?(\"} 1\n"));
    assert_non_null(strstr(text, "c_total{v=\"\"} 1\n"));
    free(text);
    cg_metrics_free(m);
}

static void test_errors(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    assert_int_equal(cg_metrics_counter(m, "", "x"), CG_EINVAL);
    assert_int_equal(cg_metrics_counter(m, "1abc", "x"), CG_EINVAL);
    assert_int_equal(cg_metrics_counter(m, "a-b", "x"), CG_EINVAL);
    assert_int_equal(cg_metrics_counter(m, "a:b_c9", "x"), 0);
    assert_int_equal(cg_metrics_gauge(m, "g", "x"), 0);
    assert_int_equal(cg_metrics_gauge(m, CG_METRICS_DROPPED_NAME, "x"), CG_EINVAL);

    assert_int_equal(cg_metrics_add(m, "missing", 1, NULL), CG_ENOTFOUND);
    assert_int_equal(cg_metrics_add(m, "g", 1, NULL), CG_EINVAL);      /* gauge via add */
    assert_int_equal(cg_metrics_set(m, "a:b_c9", 1, NULL), CG_EINVAL); /* counter via set */
    assert_int_equal(cg_metrics_add(m, "a:b_c9", -1, NULL), CG_EINVAL);
    assert_int_equal(cg_metrics_add(m, "a:b_c9", NAN, NULL), CG_EINVAL);
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "a:b", "x", NULL), CG_EINVAL);
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "__name__", "x", NULL), CG_EINVAL);
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "9a", "x", NULL), CG_EINVAL);
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "a", "x", "a", "y", NULL), CG_EINVAL);
    /* a label set over the byte cap */
    char big[CG_METRICS_MAX_LABEL_BYTES];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "v", big, NULL), CG_EINVAL);
    big[CG_METRICS_MAX_LABEL_BYTES - 3] = '\0'; /* one byte too many */
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "v", big, NULL), CG_EINVAL);
    big[CG_METRICS_MAX_LABEL_BYTES - 4] = '\0'; /* v="..." fills the cap exactly */
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "v", big, NULL), 0);
    /* quotes double in size when escaped: the cap counts escaped bytes */
    memset(big, '"', CG_METRICS_MAX_LABEL_BYTES / 2);
    big[CG_METRICS_MAX_LABEL_BYTES / 2] = '\0';
    assert_int_equal(cg_metrics_add(m, "a:b_c9", 1, "v", big, NULL), CG_EINVAL);
    size_t series = 0;
    cg_metrics_stats(m, &series, NULL);
    assert_int_equal(series, 2); /* the dropped counter and the one valid big series */
    cg_metrics_free(m);
    cg_metrics_free(NULL);
}

static void test_series_cap(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    assert_int_equal(cg_metrics_counter(m, "req_total", "x"), 0);
    char id[32];
    for (int i = 0; i < CG_METRICS_MAX_SERIES + 5; i++) {
        snprintf(id, sizeof(id), "%d", i);
        assert_int_equal(cg_metrics_add(m, "req_total", 1, "id", id, NULL), 0);
    }
    size_t series = 0, bytes = 0;
    cg_metrics_stats(m, &series, &bytes);
    assert_int_equal(series, CG_METRICS_MAX_SERIES + 1);
    /* existing series still update once the family is full */
    assert_int_equal(cg_metrics_add(m, "req_total", 41, "id", "0", NULL), 0);
    /* another family is not affected by the first one's cap */
    assert_int_equal(cg_metrics_gauge(m, "other", "x"), 0);
    assert_int_equal(cg_metrics_set(m, "other", 1, NULL), 0);
    char *text = cg_metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "\ncloudgrant_metrics_dropped_series_total 5\n"));
    assert_non_null(strstr(text, "\nreq_total{id=\"0\"} 42\n"));
    assert_null(strstr(text, "id=\"1004\""));
    assert_non_null(strstr(text, "\nother 1\n"));
    free(text);
    cg_metrics_free(m);
}

static void test_million_updates_flat(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    assert_int_equal(cg_metrics_counter(m, "checks_total", "x"), 0);
    assert_int_equal(cg_metrics_gauge(m, "drift", "x"), 0);
    static const char *const provider[] = {"aws", "gcp", "azure", "outscale"};
    static const char *const result[] = {"ok", "error", "drift"};
    for (int i = 0; i < 12; i++) { /* create every series first */
        cg_metrics_add(m, "checks_total", 0, "provider", provider[i % 4], "result", result[i % 3],
                       NULL);
        cg_metrics_set(m, "drift", 0, "provider", provider[i % 4], NULL);
    }
    size_t series0 = 0, bytes0 = 0;
    cg_metrics_stats(m, &series0, &bytes0);
    assert_int_equal(series0, 1 + 12 + 4);
    for (int i = 0; i < 1000000; i++) {
        cg_metrics_add(m, "checks_total", 1, "result", result[i % 3], "provider", provider[i % 4],
                       NULL);
        cg_metrics_set(m, "drift", i, "provider", provider[i % 4], NULL);
    }
    size_t series1 = 0, bytes1 = 0;
    cg_metrics_stats(m, &series1, &bytes1);
    assert_int_equal(series1, series0);
    assert_int_equal(bytes1, bytes0);
    char *text = cg_metrics_render(m);
    assert_non_null(text);
    /* 1e6 updates over 12 series: 83333 or 83334 each */
    assert_non_null(strstr(text, "checks_total{provider=\"aws\",result=\"ok\"} 83334\n"));
    assert_non_null(strstr(text, "drift{provider=\"outscale\"} 999999\n"));
    free(text);
    cg_metrics_free(m);
}

static void test_http_handler(void **state)
{
    (void)state;
    struct cg_metrics *m = cg_metrics_new();
    assert_non_null(m);
    struct cg_buf body;
    cg_buf_init(&body, 0);
    const char *ct = NULL;
    assert_int_equal(cg_metrics_http_handler("/metrics", &body, &ct, m), 200);
    assert_string_equal(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(body.data, "cloudgrant_metrics_dropped_series_total 0\n"));
    cg_buf_cleanup(&body);
    cg_buf_init(&body, 16); /* too small for the page: a 500, not a cut page */
    assert_int_equal(cg_metrics_http_handler("/metrics", &body, &ct, m), 500);
    cg_buf_cleanup(&body);
    cg_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_small_registry),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_million_updates_flat),
        cmocka_unit_test(test_http_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
