/* Unit tests for the reconcile core: entries and the dependency-graph runner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rc.h"
#include "rc_azure.h"
#include "rc_osc.h"

#include <string.h>

struct trace {
    char order[64];
    int n;
    struct rc_node *pending[16]; /* started, waiting for the test to complete them */
    int npending;
    int fail_label; /* label char that fails */
    int sync;       /* complete inside start */
    int finished;
    int failed;
};

static int start(struct rc_node *n, void *arg, struct cg_err *err)
{
    struct trace *t = arg;
    t->order[t->n++] = n->label[0];
    if (n->label[0] == t->fail_label && t->sync) {
        return cg_err_set(err, CG_EIO, "node %s failed", n->label);
    }
    if (t->sync) {
        struct cg_err e = {0};
        cg_err_set(&e, CG_EIO, "node %s failed", n->label);
        rc_node_done(n, n->label[0] == t->fail_label ? &e : NULL);
        return 0;
    }
    t->pending[t->npending++] = n;
    return 0;
}

static void on_done(struct rc_graph *g, const struct cg_err *err, void *data)
{
    struct trace *t = data;
    (void)g;
    t->finished++;
    t->failed = err != NULL;
}

/* Completes the oldest started node. */
static void complete_one(struct trace *t, const struct cg_err *err)
{
    assert_true(t->npending > 0);
    struct rc_node *n = t->pending[0];
    memmove(t->pending, t->pending + 1, (size_t)(t->npending - 1) * sizeof(t->pending[0]));
    t->npending--;
    rc_node_done(n, err);
}

static void build(struct rc_graph *g, struct trace *t)
{
    /*  a   b
     *  |  / \
     *  c d   e      c <- a;  d <- b;  e <- b;  f <- c, d */
    rc_graph_init(g);
    int a = rc_graph_add(g, "a", start, t, NULL, 0);
    int b = rc_graph_add(g, "b", start, t, NULL, 0);
    int c = rc_graph_add(g, "c", start, t, &a, 1);
    int d = rc_graph_add(g, "d", start, t, &b, 1);
    rc_graph_add(g, "e", start, t, &b, 1);
    int cd[2] = {c, d};
    rc_graph_add(g, "f", start, t, cd, 2);
}

static void test_independent_nodes_start_together(void **state)
{
    (void)state;
    struct rc_graph g;
    struct trace t = {0};
    build(&g, &t);
    rc_graph_run(&g, on_done, &t);
    assert_int_equal(t.npending, 2); /* a and b at once */
    assert_memory_equal(t.order, "ab", 2);
    complete_one(&t, NULL); /* a -> c starts */
    assert_int_equal(t.npending, 2);
    complete_one(&t, NULL); /* b -> d, e start */
    assert_int_equal(t.npending, 3);
    while (t.npending > 0) {
        complete_one(&t, NULL);
    }
    assert_int_equal(t.finished, 1);
    assert_false(t.failed);
    assert_int_equal(t.n, 6);
    assert_int_equal(rc_graph_critical_path(&g), 3);
    rc_graph_cleanup(&g);
}

static void test_failure_skips_dependents_only(void **state)
{
    (void)state;
    struct rc_graph g;
    struct trace t = {0};
    build(&g, &t);
    rc_graph_run(&g, on_done, &t);
    struct cg_err e = {0};
    cg_err_set(&e, CG_EIO, "a failed");
    complete_one(&t, &e); /* a fails: c and f are skipped */
    while (t.npending > 0) {
        complete_one(&t, NULL); /* b, d, e still run */
    }
    assert_int_equal(t.finished, 1);
    assert_true(t.failed);
    assert_int_equal(t.n, 4);
    assert_null(memchr(t.order, 'c', (size_t)t.n));
    assert_null(memchr(t.order, 'f', (size_t)t.n));
    assert_string_equal(g.first_error.msg, "a failed");
    rc_graph_cleanup(&g);
}

static void test_synchronous_completion_and_failure(void **state)
{
    (void)state;
    struct rc_graph g;
    struct trace t = {.sync = 1};
    build(&g, &t);
    rc_graph_run(&g, on_done, &t);
    assert_int_equal(t.finished, 1);
    assert_int_equal(t.n, 6);
    rc_graph_cleanup(&g);

    struct trace t2 = {.sync = 1, .fail_label = 'b'};
    build(&g, &t2);
    rc_graph_run(&g, on_done, &t2);
    assert_int_equal(t2.finished, 1);
    assert_true(t2.failed);
    assert_int_equal(t2.n, 3); /* a, b, c: d e f are behind b */
    rc_graph_cleanup(&g);
}

static void test_empty_graph_finishes(void **state)
{
    (void)state;
    struct rc_graph g;
    struct trace t = {0};
    rc_graph_init(&g);
    rc_graph_run(&g, on_done, &t);
    assert_int_equal(t.finished, 1);
    rc_graph_cleanup(&g);
}

static void test_bad_dependencies_refused(void **state)
{
    (void)state;
    struct rc_graph g;
    struct trace t = {0};
    rc_graph_init(&g);
    int later = 3;
    assert_true(rc_graph_add(&g, "x", start, &t, &later, 1) < 0); /* no forward edges */
    int many[RC_MAX_DEPS + 1] = {0};
    assert_true(rc_graph_add(&g, "y", start, &t, many, RC_MAX_DEPS + 1) < 0);
    rc_graph_cleanup(&g);
}

static void test_entries(void **state)
{
    (void)state;
    struct rc_list l = {0};
    for (int i = 0; i < 40; i++) {
        assert_int_equal(rc_list_add(&l, "aws", "user", "u", i % 2 ? "arn" : NULL, RC_CREATE, NULL),
                         0);
    }
    assert_int_equal(l.count, 40);
    assert_string_equal(rc_change_word(RC_UPDATE), "update");
    assert_string_equal(rc_drift_word(RC_CREATE), "missing");
    assert_string_equal(rc_drift_word(RC_DELETE), "unexpected");
    rc_list_cleanup(&l);
}

/* Role assignment names are UUIDv5 in cloudgrant's namespace: checked against Python's
 * uuid.uuid5, an independent implementation of RFC 4122. */
static void test_azure_names(void **state)
{
    (void)state;
    char u[37];
    rc_azure_uuid5("assignment|/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333|"
                   "b24988ac-6180-42a0-ab88-20f7382dd24c|11111111-2222-3333-4444-555555555555",
                   u);
    assert_string_equal(u, "96b1c80f-eadf-5f98-971e-1662391441b1");
    char again[37];
    rc_azure_uuid5("assignment|/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333|"
                   "b24988ac-6180-42a0-ab88-20f7382dd24c|11111111-2222-3333-4444-555555555555",
                   again);
    assert_string_equal(u, again);
    rc_azure_uuid5("other", again);
    assert_string_not_equal(u, again);
    /* printf 'sub|platform-access|platform-access-aks-main' | sha1sum */
    char n[40];
    rc_azure_unique_name("sub", "platform-access", "platform-access-aks-main", n);
    assert_string_equal(n, "cloudgrant-d83970a1f4853acaad156d5e");
}

/* OUTSCALE key expiry: the profile's lifetime, capped by the account (10 minutes inside the
 * cap), and a renewal window that never exceeds a third of the key's life. */
static void test_osc_key_expiry(void **state)
{
    (void)state;
    const int64_t now = 1795000000;
    assert_int_equal(rc_osc_key_expiry(now, 365, 0), now + 365 * 86400LL);
    assert_int_equal(rc_osc_key_expiry(now, 0, 0), 0); /* never expires */
    assert_int_equal(rc_osc_key_expiry(now, 365, 30 * 86400L), now + 30 * 86400LL - 600);
    assert_int_equal(rc_osc_key_expiry(now, 7, 30 * 86400L), now + 7 * 86400LL);
    assert_int_equal(rc_osc_key_expiry(now, 0, 86400L), now + 86400LL - 600);
    assert_int_equal(rc_osc_key_expiry(now, 10, 300L), now + 300); /* no room for a margin */
    assert_int_equal(rc_osc_renew_window(365 * 86400LL, 30), 30 * 86400LL);
    assert_int_equal(rc_osc_renew_window(86400LL, 30), 86400LL / 3);
    assert_int_equal(rc_osc_renew_window(0, 30), 30 * 86400LL); /* unknown lifetime */
    assert_int_equal(rc_osc_renew_window(365 * 86400LL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_nodes_start_together),
        cmocka_unit_test(test_failure_skips_dependents_only),
        cmocka_unit_test(test_synchronous_completion_and_failure),
        cmocka_unit_test(test_empty_graph_finishes),
        cmocka_unit_test(test_bad_dependencies_refused),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_azure_names),
        cmocka_unit_test(test_osc_key_expiry),
    };
    return cmocka_run_group_tests_name("rc", tests, NULL, NULL);
}
