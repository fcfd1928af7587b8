/* Unit tests for agent/core/cg_yaml: positioned errors, typed getters, hostile documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "cg_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void load_ok(struct cg_yaml *y, const char *text)
{
    struct cg_err err = {0};
    int rc = cg_yaml_load(y, text, strlen(text), "t.yaml", &err);
    if (rc != 0) {
        print_message("unexpected error: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
}

static void load_fails(const char *text, size_t len, int code, const char *msg)
{
    struct cg_yaml y;
    struct cg_err err = {0};
    assert_int_equal(cg_yaml_load(&y, text, len, "t.yaml", &err), code);
    assert_string_equal(err.msg, msg);
    cg_yaml_cleanup(&y); /* safe after a failure */
}

static void test_getters(void **state)
{
    (void)state;
    struct cg_yaml y;
    struct cg_err err = {0};
    load_ok(&y, "name: demo\n"
                "quoted: \"yes\"\n"
                "flag: yes\n"
                "off: Off\n"
                "list: [a, b, ~]\n"
                "map: {k: v}\n"
                "nothing: ~\n"
                "empty:\n"
                "key: first\n"
                "key: last\n");
    yaml_node_t *root = cg_yaml_root(&y);
    assert_non_null(root);

    const char *s = NULL;
    assert_int_equal(cg_yaml_get_str(&y, root, "name", &s, &err), 0);
    assert_string_equal(s, "demo");
    assert_int_equal(cg_yaml_get_str(&y, root, "quoted", &s, &err), 0);
    assert_string_equal(s, "yes");
    assert_int_equal(cg_yaml_get_str(&y, root, "absent", &s, &err), 0);
    assert_null(s);
    assert_int_equal(cg_yaml_get_str(&y, root, "nothing", &s, &err), 0);
    assert_null(s);
    assert_int_equal(cg_yaml_get_str(&y, root, "empty", &s, &err), 0);
    assert_null(s);
    /* yaml.v2 keeps the last of repeated keys, and so kubectl does */
    assert_int_equal(cg_yaml_get_str(&y, root, "key", &s, &err), 0);
    assert_string_equal(s, "last");

    int b = -1;
    assert_int_equal(cg_yaml_get_bool(&y, root, "flag", &b, &err), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cg_yaml_get_bool(&y, root, "off", &b, &err), 0);
    assert_int_equal(b, 0);
    assert_int_equal(cg_yaml_get_bool(&y, root, "absent", &b, &err), 0);
    assert_int_equal(b, 0);
    assert_int_equal(cg_yaml_get_bool(&y, root, "quoted", &b, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:9: 'quoted' must be true or false");

    yaml_node_t *seq = NULL;
    assert_int_equal(cg_yaml_get_seq(&y, root, "list", &seq, &err), 0);
    assert_int_equal(cg_yaml_seq_len(seq), 3);
    assert_int_equal(cg_yaml_node_str(&y, cg_yaml_seq_at(&y, seq, 1), "item", &s, &err), 0);
    assert_string_equal(s, "b");
    assert_true(cg_yaml_is_null(cg_yaml_seq_at(&y, seq, 2)));
    assert_null(cg_yaml_seq_at(&y, seq, 3));

    yaml_node_t *map = NULL;
    assert_int_equal(cg_yaml_get_map(&y, root, "map", &map, &err), 0);
    assert_int_equal(cg_yaml_map_len(map), 1);
    yaml_node_t *k = NULL;
    yaml_node_t *v = NULL;
    assert_int_equal(cg_yaml_map_pair(&y, map, 0, &k, &v), 0);
    assert_string_equal((const char *)v->data.scalar.value, "v");
    assert_int_equal(cg_yaml_map_pair(&y, map, 1, &k, &v), CG_EINVAL);

    /* wrong kinds, with the position of the offending value */
    assert_int_equal(cg_yaml_get_map(&y, root, "list", &map, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:5:7: 'list' must be a mapping, not a sequence");
    assert_null(map);
    assert_int_equal(cg_yaml_get_seq(&y, root, "name", &seq, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:7: 'name' must be a sequence, not a string");
    assert_int_equal(cg_yaml_get_str(&y, root, "map", &s, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:6:6: 'map' must be a string, not a mapping");

    /* the caller's label goes after the position */
    cg_yaml_where(&y, "entry '%s'", "x");
    assert_int_equal(cg_yaml_get_str(&y, root, "list", &s, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:5:7: entry 'x': 'list' must be a string, not a sequence");
    cg_yaml_where(&y, NULL);
    assert_int_equal(cg_yaml_errorf(&y, NULL, &err, CG_EINVAL, "whole %s", "file"), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml: whole file");

    char *dup = NULL;
    assert_int_equal(cg_yaml_dup_str(&y, root, "name", &dup, &err), 0);
    assert_string_equal(dup, "demo");
    free(dup);
    assert_int_equal(cg_yaml_dup_str(&y, root, "absent", &dup, &err), 0);
    assert_null(dup);
    cg_yaml_cleanup(&y);
}

static void test_kinds_and_nulls(void **state)
{
    (void)state;
    struct cg_yaml y;
    load_ok(&y, "[~, null, Null, NULL, '', \"~\", x, [], {}]\n");
    yaml_node_t *root = cg_yaml_root(&y);
    const char *want[] = {"null",   "null",   "null",     "null",   "string",
                          "string", "string", "sequence", "mapping"};
    assert_int_equal(cg_yaml_seq_len(root), 9);
    for (size_t i = 0; i < 9; i++) {
        assert_string_equal(cg_yaml_kind(cg_yaml_seq_at(&y, root, i)), want[i]);
    }
    assert_true(cg_yaml_is_null(NULL));
    /* lookups on non-mappings are empty rather than errors */
    assert_null(cg_yaml_map_get(&y, root, "x"));
    assert_int_equal(cg_yaml_map_len(root), 0);
    cg_yaml_cleanup(&y);
}

static void test_empty_and_multi_document(void **state)
{
    (void)state;
    struct cg_yaml y;
    load_ok(&y, "");
    assert_null(cg_yaml_root(&y));
    cg_yaml_cleanup(&y);
    load_ok(&y, "# only a comment\n");
    assert_null(cg_yaml_root(&y));
    cg_yaml_cleanup(&y);

    struct cg_err err = {0};
    assert_int_equal(cg_yaml_load(&y, NULL, 0, NULL, &err), 0);
    assert_null(cg_yaml_root(&y));
    cg_yaml_cleanup(&y);

    /* Only the first document counts, even when a later one is broken (as yaml.v2). */
    load_ok(&y, "a: 1\n---\n[unclosed\n");
    const char *s = NULL;
    assert_int_equal(cg_yaml_get_str(&y, cg_yaml_root(&y), "a", &s, &err), 0);
    assert_string_equal(s, "1");
    cg_yaml_cleanup(&y);
    cg_yaml_cleanup(NULL);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    const char *t1 = "a: 1\nb: [1, 2\nc: 3\n";
    load_fails(t1, strlen(t1), CG_EINVAL,
               "t.yaml:3:2: did not find expected ',' or ']' (while parsing a flow sequence that "
               "started at 2:4)");
    const char *t2 = "a: 1\n  b: 2\n";
    load_fails(t2, strlen(t2), CG_EINVAL,
               "t.yaml:2:4: mapping values are not allowed in this context");
    const char *t3 = "a: *nope\n";
    load_fails(t3, strlen(t3), CG_EINVAL, "t.yaml:1:4: found undefined alias");
    /* reader errors carry an offset, turned into a position */
    const char t4[] = "a: 1\nb: \xff\n";
    load_fails(t4, sizeof(t4) - 1, CG_EINVAL, "t.yaml:2:4: invalid leading UTF-8 octet");
    /* a NUL byte is not allowed in a YAML stream */
    const char t5[] = "a: b\0c\n";
    struct cg_yaml y;
    struct cg_err err = {0};
    assert_int_equal(cg_yaml_load(&y, t5, sizeof(t5) - 1, "t.yaml", &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "t.yaml:1:5: "));
    assert_null(strchr(err.msg, '\n'));
}

static void test_nul_in_scalar(void **state)
{
    (void)state;
    struct cg_yaml y;
    struct cg_err err = {0};
    load_ok(&y, "path: \"ca.crt\\0.evil\"\n");
    const char *s = "untouched";
    assert_int_equal(cg_yaml_get_str(&y, cg_yaml_root(&y), "path", &s, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:7: 'path' must not contain a NUL byte");
    assert_null(s);
    cg_yaml_cleanup(&y);
}

static void test_recursive_alias(void **state)
{
    (void)state;
    const char *t = "a: &x [1, *x]\n";
    load_fails(t, strlen(t), CG_EINVAL, "t.yaml:1:4: alias refers to its own node");
    const char *t2 = "&m {k: *m}\n";
    load_fails(t2, strlen(t2), CG_EINVAL, "t.yaml:1:1: alias refers to its own node");
}

static void test_alias_expansion(void **state)
{
    (void)state;
    /* a few aliases are fine */
    struct cg_yaml y;
    load_ok(&y, "base: &b {server: x}\ncopy: *b\nlist: [*b, *b]\n");
    const char *s = NULL;
    struct cg_err err = {0};
    yaml_node_t *copy = cg_yaml_map_get(&y, cg_yaml_root(&y), "copy");
    assert_int_equal(cg_yaml_get_str(&y, copy, "server", &s, &err), 0);
    assert_string_equal(s, "x");
    cg_yaml_cleanup(&y);

    /* "billion laughs": each level multiplies the walk by ten */
    char doc[2048];
    size_t n = (size_t)snprintf(doc, sizeof(doc), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 9; i++) {
        n += (size_t)snprintf(doc + n, sizeof(doc) - n,
                              "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
                              "*a%d]\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                              i - 1);
    }
    load_fails(doc, n, CG_EINVAL, "t.yaml: document expands too many aliases");
}

static void test_depth(void **state)
{
    (void)state;
    size_t depth = CG_YAML_MAX_DEPTH + 10;
    char *doc = malloc(2 * depth + 2);
    assert_non_null(doc);
    memset(doc, '[', depth);
    memset(doc + depth, ']', depth);
    doc[2 * depth] = '\n';
    doc[2 * depth + 1] = '\0';
    struct cg_yaml y;
    struct cg_err err = {0};
    assert_int_equal(cg_yaml_load(&y, doc, 2 * depth + 1, "t.yaml", &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "nested deeper than 256 levels"));
    /* exactly at the limit is fine */
    depth = CG_YAML_MAX_DEPTH;
    memset(doc, '[', depth);
    memset(doc + depth, ']', depth);
    assert_int_equal(cg_yaml_load(&y, doc, 2 * depth, "t.yaml", &err), 0);
    cg_yaml_cleanup(&y);
    free(doc);
}

static void test_check_keys(void **state)
{
    (void)state;
    static const char *const allowed[] = {"name", "server", NULL};
    struct cg_yaml y;
    struct cg_err err = {0};
    load_ok(&y, "name: a\nserver: b\n");
    assert_int_equal(cg_yaml_check_keys(&y, cg_yaml_root(&y), allowed, &err), 0);
    cg_yaml_cleanup(&y);

    load_ok(&y, "name: a\nsrever: b\n");
    assert_int_equal(cg_yaml_check_keys(&y, cg_yaml_root(&y), allowed, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:1: unknown key 'srever'");
    cg_yaml_cleanup(&y);

    load_ok(&y, "name: a\nserver: b\nname: c\n");
    assert_int_equal(cg_yaml_check_keys(&y, cg_yaml_root(&y), allowed, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:3:1: key 'name' is repeated");
    cg_yaml_cleanup(&y);

    load_ok(&y, "? [a]\n: b\n");
    assert_int_equal(cg_yaml_check_keys(&y, cg_yaml_root(&y), allowed, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:3: keys must be strings");
    cg_yaml_cleanup(&y);

    load_ok(&y, "\"multi\\nline\": b\n");
    assert_int_equal(cg_yaml_check_keys(&y, cg_yaml_root(&y), allowed, &err), CG_EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:1: unknown key 'multi?line'");
    cg_yaml_cleanup(&y);
}

static void test_printable(void **state)
{
    (void)state;
    char buf[8];
    assert_string_equal(cg_yaml_printable(buf, sizeof(buf), "a\nb\tc"), "a?b?c");
    assert_string_equal(cg_yaml_printable(buf, sizeof(buf), "1234567"), "1234567");
    assert_string_equal(cg_yaml_printable(buf, sizeof(buf), "12345678"), "1234...");
    char tiny[3];
    assert_string_equal(cg_yaml_printable(tiny, sizeof(tiny), "abcdef"), "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_kinds_and_nulls),
        cmocka_unit_test(test_empty_and_multi_document),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_in_scalar),
        cmocka_unit_test(test_recursive_alias),
        cmocka_unit_test(test_alias_expansion),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_check_keys),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
