/* policy.c: normalisation and semantic comparison of IAM policy documents.
 *
 * The normal form keeps everything that changes what a policy allows and drops only what IAM
 * itself ignores: key order, whitespace, a string versus a one-element list, the order and
 * duplicates of list values, the case of action names, the order of statements. Resources,
 * principals, condition keys and values keep their case, because IAM compares them
 * case-sensitively (or, for some condition operators, depending on the operator), and a false
 * "no drift" is worse than a false "drift".
 *
 * The walk only descends into the structure a policy has (document -> statements -> fields ->
 * lists), so its depth is fixed whatever the input; anything else is refused by name. */
#include "policy.h"

#include "cg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERSION_CURRENT "2012-10-17"
#define VERSION_LEGACY  "2008-10-17" /* what IAM assumes when Version is absent */
#define SHOWN_MAX       64

static const char *const doc_keys[] = {"Version", "Id", "Statement", NULL};
static const char *const stmt_keys[] = {"Sid",       "Effect",    "Principal", "NotPrincipal",
                                        "Action",    "NotAction", "Resource",  "NotResource",
                                        "Condition", NULL};
static const char *const principal_keys[] = {"AWS", "Service", "Federated", "CanonicalUser", NULL};

static int oom(struct cg_err *err)
{
    return cg_err_set(err, CG_ENOMEM, "out of memory");
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A value from the document quoted in a message: one line, bounded. */
static const char *shown(char *dst, size_t cap, const char *s, size_t len)
{
    return cg_printable_n(dst, cap, s, len);
}

static int is_one_of(const char *key, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(key, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Policy grammar is case-sensitive about element names ("action" is not "Action"), and a key
 * we do not know could be a typo that silently widens or narrows the policy. allowed NULL
 * accepts any name. A key with a NUL byte is refused everywhere: C string lookups would read it
 * as a shorter key and the value behind it would vanish. */
static int check_keys(const json_t *obj, const char *const *allowed, const char *where,
                      struct cg_err *err)
{
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach((json_t *)obj, key, key_len, v)
    {
        char s[SHOWN_MAX];
        if (key_len != strlen(key)) {
            return cg_err_set(err, CG_EINVAL, "%selement name '%s' contains a NUL character", where,
                              shown(s, sizeof(s), key, key_len));
        }
        if (allowed != NULL && !is_one_of(key, allowed)) {
            return cg_err_set(err, CG_EINVAL, "%sunknown element '%s'", where,
                              shown(s, sizeof(s), key, key_len));
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a;
    const json_t *y = *(json_t *const *)b;
    size_t lx = json_string_length(x);
    size_t ly = json_string_length(y);
    int c = memcmp(json_string_value(x), json_string_value(y), lx < ly ? lx : ly);
    if (c != 0) {
        return c;
    }
    return (lx > ly) - (lx < ly);
}

/* A scalar as the string IAM compares: IAM reads condition values true and "true", 10 and "10"
 * alike. lower folds ASCII letters, for action names, which IAM matches case-insensitively
 * (ASCII only: action names are ASCII, and folding bytes of a UTF-8 sequence would corrupt
 * it). NULL on ENOMEM. */
static json_t *scalar_as_string(const json_t *v, int lower)
{
    char *text = NULL;
    size_t len;
    if (json_is_string(v)) {
        len = json_string_length(v);
        text = malloc(len + 1);
        if (text != NULL) {
            memcpy(text, json_string_value(v), len + 1);
        }
    } else {
        text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        len = text ? strlen(text) : 0;
    }
    if (text == NULL) {
        return NULL;
    }
    for (size_t i = 0; lower && i < len; i++) {
        if (text[i] >= 'A' && text[i] <= 'Z') {
            text[i] = (char)(text[i] - 'A' + 'a');
        }
    }
    json_t *s = json_stringn_nocheck(text, len);
    free(text);
    return s;
}

enum list_flags {
    LIST_LOWER = 1,     /* action names: IAM matches them case-insensitively */
    LIST_SCALARS = 2,   /* condition values: numbers and booleans become strings */
    LIST_MAY_EMPTY = 4, /* condition values may be an empty list */
};

/* A string or a list of strings as a sorted list without duplicates. */
static json_t *string_list(const json_t *v, unsigned flags, const char *where, const char *name,
                           struct cg_err *err)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    json_t **items = NULL;
    json_t *out = NULL;
    size_t got = 0;

    if (!json_is_array(v) && !json_is_string(v) &&
        !((flags & LIST_SCALARS) && v != NULL && (json_is_boolean(v) || json_is_number(v)))) {
        cg_err_set(err, CG_EINVAL, "%s'%s' must be a string or a list of strings, not %s", where,
                   name, v ? type_name(v) : "missing");
        return NULL;
    }
    if (n == 0 && !(flags & LIST_MAY_EMPTY)) {
        cg_err_set(err, CG_EINVAL, "%s'%s' must not be an empty list", where, name);
        return NULL;
    }
    items = calloc(n ? n : 1, sizeof(*items));
    if (items == NULL) {
        oom(err);
        return NULL;
    }
    for (got = 0; got < n; got++) {
        const json_t *item = json_is_array(v) ? json_array_get(v, got) : v;
        json_t *s = NULL;
        if (json_is_string(item) || ((flags & LIST_SCALARS) && !json_is_array(item) &&
                                     !json_is_object(item) && !json_is_null(item))) {
            s = scalar_as_string(item, flags & LIST_LOWER);
            if (s == NULL) {
                oom(err);
                goto fail;
            }
        } else {
            cg_err_set(err, CG_EINVAL, "%s'%s'[%zu] must be a string, not %s", where, name, got,
                       type_name(item));
            goto fail;
        }
        items[got] = s;
    }
    qsort(items, n, sizeof(*items), cmp_str);
    out = json_array();
    if (out == NULL) {
        oom(err);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cmp_str(&items[i - 1], &items[i]) == 0) {
            continue;
        }
        if (json_array_append(out, items[i]) < 0) {
            oom(err);
            json_decref(out);
            out = NULL;
            goto fail;
        }
    }
fail:
    for (size_t i = 0; i < got; i++) {
        json_decref(items[i]);
    }
    free(items);
    return out;
}

/* "*" stays the string "*": it is not the same as {"AWS": "*"} (it also covers anonymous
 * callers of resource policies). */
static json_t *principal(const json_t *v, const char *where, const char *name, struct cg_err *err)
{
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "*") != 0 || json_string_length(v) != 1) {
            cg_err_set(err, CG_EINVAL, "%s'%s' must be \"*\" or an object such as {\"AWS\": ...}",
                       where, name);
            return NULL;
        }
        return json_string("*");
    }
    if (!json_is_object(v) || json_object_size(v) == 0) {
        cg_err_set(err, CG_EINVAL, "%s'%s' must be \"*\" or a non-empty object, not %s", where,
                   name, json_is_object(v) ? "an empty object" : type_name(v));
        return NULL;
    }
    char sub[128];
    snprintf(sub, sizeof(sub), "%s'%s': ", where, name);
    if (check_keys(v, principal_keys, sub, err) < 0) {
        return NULL;
    }
    json_t *out = json_object();
    if (out == NULL) {
        oom(err);
        return NULL;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        json_t *list = string_list(val, 0, sub, key, err);
        if (list == NULL || json_object_set_new_nocheck(out, key, list) < 0) {
            if (list != NULL) {
                oom(err);
            }
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* Operator -> key -> sorted values. An operator without keys constrains nothing, and a
 * Condition without operators is no condition: both are dropped (*out stays NULL). */
static int condition(const json_t *v, const char *where, json_t **out, struct cg_err *err)
{
    *out = NULL;
    if (!json_is_object(v)) {
        return cg_err_set(err, CG_EINVAL, "%s'Condition' must be an object, not %s", where,
                          type_name(v));
    }
    if (check_keys(v, NULL, where, err) < 0) {
        return err ? err->code : CG_EINVAL;
    }
    json_t *cond = json_object();
    if (cond == NULL) {
        return oom(err);
    }
    const char *op;
    json_t *keys;
    json_object_foreach((json_t *)v, op, keys)
    {
        char sub[160];
        char s[SHOWN_MAX];
        snprintf(sub, sizeof(sub), "%sCondition '%s': ", where,
                 shown(s, sizeof(s), op, strlen(op)));
        if (!json_is_object(keys)) {
            json_decref(cond);
            return cg_err_set(err, CG_EINVAL, "%smust be an object of condition keys, not %s", sub,
                              type_name(keys));
        }
        if (check_keys(keys, NULL, sub, err) < 0) {
            json_decref(cond);
            return err ? err->code : CG_EINVAL;
        }
        if (json_object_size(keys) == 0) {
            continue;
        }
        json_t *m = json_object();
        if (m == NULL || json_object_set_new_nocheck(cond, op, m) < 0) {
            json_decref(cond);
            return oom(err);
        }
        const char *key;
        json_t *vals;
        json_object_foreach(keys, key, vals)
        {
            json_t *list = string_list(vals, LIST_SCALARS | LIST_MAY_EMPTY, sub,
                                       shown(s, sizeof(s), key, strlen(key)), err);
            if (list == NULL) {
                json_decref(cond);
                return err ? err->code : CG_EINVAL;
            }
            if (json_object_set_new_nocheck(m, key, list) < 0) {
                json_decref(cond);
                return oom(err);
            }
        }
    }
    if (json_object_size(cond) == 0) {
        json_decref(cond);
        return 0;
    }
    *out = cond;
    return 0;
}

static int exclusive(const json_t *s, const char *a, const char *b, int required, const char *where,
                     struct cg_err *err)
{
    int has_a = json_object_get(s, a) != NULL;
    int has_b = json_object_get(s, b) != NULL;
    if (has_a && has_b) {
        return cg_err_set(err, CG_EINVAL, "%shas both '%s' and '%s'", where, a, b);
    }
    if (required && !has_a && !has_b) {
        return cg_err_set(err, CG_EINVAL, "%sneeds '%s' or '%s'", where, a, b);
    }
    return 0;
}

/* fold: action names compare case-insensitively (AWS IAM); 0 keeps their case (OUTSCALE EIM,
 * whose policies are case-sensitive). */
static json_t *statement(const json_t *s, size_t index, int fold, struct cg_err *err)
{
    char where[48];
    snprintf(where, sizeof(where), "Statement[%zu]: ", index);
    if (!json_is_object(s)) {
        cg_err_set(err, CG_EINVAL, "%smust be an object, not %s", where, type_name(s));
        return NULL;
    }
    if (check_keys(s, stmt_keys, where, err) < 0 ||
        exclusive(s, "Action", "NotAction", 1, where, err) < 0 ||
        exclusive(s, "Resource", "NotResource", 0, where, err) < 0 ||
        exclusive(s, "Principal", "NotPrincipal", 0, where, err) < 0) {
        return NULL;
    }
    if (json_object_get(s, "Resource") == NULL && json_object_get(s, "NotResource") == NULL &&
        json_object_get(s, "Principal") == NULL && json_object_get(s, "NotPrincipal") == NULL) {
        /* An identity policy names resources, a trust policy names principals; a statement
         * with neither applies to nothing IAM can evaluate. */
        cg_err_set(err, CG_EINVAL, "%sneeds 'Resource' (or 'Principal' in a trust policy)", where);
        return NULL;
    }
    const json_t *effect = json_object_get(s, "Effect");
    if (!json_is_string(effect) || (strcmp(json_string_value(effect), "Allow") != 0 &&
                                    strcmp(json_string_value(effect), "Deny") != 0)) {
        cg_err_set(err, CG_EINVAL, "%s'Effect' must be \"Allow\" or \"Deny\"", where);
        return NULL;
    }
    const json_t *sid = json_object_get(s, "Sid");
    if (sid != NULL && !json_is_string(sid)) {
        cg_err_set(err, CG_EINVAL, "%s'Sid' must be a string, not %s", where, type_name(sid));
        return NULL;
    }

    json_t *out = json_object();
    if (out == NULL) {
        oom(err);
        return NULL;
    }
    /* Sid is kept: IAM stores it, and a profile that renames one should converge. */
    if (sid != NULL && json_object_set_nocheck(out, "Sid", (json_t *)sid) < 0) {
        goto nomem;
    }
    if (json_object_set_nocheck(out, "Effect", (json_t *)effect) < 0) {
        goto nomem;
    }
    static const struct {
        const char *name;
        unsigned flags;
    } lists[] = {
        {"Action", LIST_LOWER}, {"NotAction", LIST_LOWER}, {"Resource", 0}, {"NotResource", 0}};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        const json_t *v = json_object_get(s, lists[i].name);
        if (v == NULL) {
            continue;
        }
        unsigned flags = fold ? lists[i].flags : lists[i].flags & ~(unsigned)LIST_LOWER;
        json_t *list = string_list(v, flags, where, lists[i].name, err);
        if (list == NULL) {
            json_decref(out);
            return NULL;
        }
        if (json_object_set_new_nocheck(out, lists[i].name, list) < 0) {
            goto nomem;
        }
    }
    static const char *const principals[] = {"Principal", "NotPrincipal"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(s, principals[i]);
        if (v == NULL) {
            continue;
        }
        json_t *p = principal(v, where, principals[i], err);
        if (p == NULL) {
            json_decref(out);
            return NULL;
        }
        if (json_object_set_new_nocheck(out, principals[i], p) < 0) {
            goto nomem;
        }
    }
    const json_t *c = json_object_get(s, "Condition");
    if (c != NULL) {
        json_t *cond = NULL;
        if (condition(c, where, &cond, err) < 0) {
            json_decref(out);
            return NULL;
        }
        if (cond != NULL && json_object_set_new_nocheck(out, "Condition", cond) < 0) {
            goto nomem;
        }
    }
    return out;
nomem:
    json_decref(out);
    oom(err);
    return NULL;
}

struct keyed {
    char *key; /* canonical compact text */
    json_t *stmt;
};

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

static json_t *normalize_doc(json_t *doc, int fold, struct cg_err *err)
{
    struct keyed *stmts = NULL;
    size_t n = 0;
    size_t made = 0;
    json_t *out = NULL;
    json_t *list = NULL;

    if (!json_is_object(doc)) {
        cg_err_set(err, CG_EINVAL, "a policy document must be an object, not %s",
                   doc ? type_name(doc) : "nothing");
        return NULL;
    }
    if (check_keys(doc, doc_keys, "", err) < 0) {
        return NULL;
    }
    const json_t *version = json_object_get(doc, "Version");
    if (version != NULL &&
        (!json_is_string(version) || (strcmp(json_string_value(version), VERSION_CURRENT) != 0 &&
                                      strcmp(json_string_value(version), VERSION_LEGACY) != 0))) {
        cg_err_set(err, CG_EINVAL, "'Version' must be \"%s\" (or the legacy \"%s\")",
                   VERSION_CURRENT, VERSION_LEGACY);
        return NULL;
    }
    const json_t *id = json_object_get(doc, "Id");
    if (id != NULL && !json_is_string(id)) {
        cg_err_set(err, CG_EINVAL, "'Id' must be a string, not %s", type_name(id));
        return NULL;
    }
    const json_t *st = json_object_get(doc, "Statement");
    if (st == NULL) {
        cg_err_set(err, CG_EINVAL, "'Statement' is missing");
        return NULL;
    }
    if (!json_is_array(st) && !json_is_object(st)) {
        cg_err_set(err, CG_EINVAL, "'Statement' must be an object or a list, not %s",
                   type_name(st));
        return NULL;
    }
    n = json_is_array(st) ? json_array_size(st) : 1;
    if (n == 0) {
        cg_err_set(err, CG_EINVAL, "'Statement' must not be an empty list");
        return NULL;
    }
    stmts = calloc(n, sizeof(*stmts));
    if (stmts == NULL) {
        oom(err);
        return NULL;
    }
    for (made = 0; made < n; made++) {
        const json_t *s = json_is_array(st) ? json_array_get(st, made) : st;
        stmts[made].stmt = statement(s, made, fold, err);
        if (stmts[made].stmt == NULL) {
            goto out;
        }
        stmts[made].key = json_dumps(stmts[made].stmt, JSON_COMPACT | JSON_SORT_KEYS);
        if (stmts[made].key == NULL) {
            json_decref(stmts[made].stmt);
            oom(err);
            goto out;
        }
    }
    /* Statement order does not matter to IAM (every Deny wins, any Allow allows), so the
     * canonical text orders them; an exact duplicate adds nothing. */
    qsort(stmts, n, sizeof(*stmts), cmp_keyed);
    list = json_array();
    out = json_object();
    if (list == NULL || out == NULL) {
        goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(stmts[i - 1].key, stmts[i].key) == 0) {
            continue;
        }
        if (json_array_append(list, stmts[i].stmt) < 0) {
            goto nomem;
        }
    }
    if (json_object_set_new_nocheck(
            out, "Version", json_string(version ? json_string_value(version) : VERSION_LEGACY)) <
            0 ||
        (id != NULL && json_object_set_nocheck(out, "Id", (json_t *)id) < 0) ||
        json_object_set_nocheck(out, "Statement", list) < 0) {
        goto nomem;
    }
    goto out;
nomem:
    oom(err);
    json_decref(out);
    out = NULL;
out:
    json_decref(list);
    for (size_t i = 0; i < made; i++) {
        json_decref(stmts[i].stmt);
        free(stmts[i].key);
    }
    free(stmts);
    return out;
}

static json_t *parse(const char *text, const char *which, struct cg_err *err)
{
    json_error_t jerr;
    if (text == NULL) {
        cg_err_set(err, CG_EINVAL, "%s: no document", which);
        return NULL;
    }
    /* A repeated key would make one of the two values vanish silently. */
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        cg_err_set(err, CG_EINVAL, "%s: invalid JSON at line %d column %d: %s", which, jerr.line,
                   jerr.column, jerr.text);
    }
    return doc;
}

json_t *policy_normalize(json_t *doc, struct cg_err *err)
{
    return normalize_doc(doc, 1, err);
}

static json_t *normalize_text(const char *text, const char *which, int fold, struct cg_err *err)
{
    json_t *doc = parse(text, which, err);
    if (doc == NULL) {
        return NULL;
    }
    json_t *norm = normalize_doc(doc, fold, err);
    json_decref(doc);
    if (norm == NULL && err != NULL && err->code == CG_EINVAL) {
        cg_err_wrap(err, "%s", which);
    }
    return norm;
}

static int equal_text(const char *a, const char *b, int fold, int *equal, struct cg_err *err)
{
    *equal = 0;
    json_t *na = normalize_text(a, "first policy", fold, err);
    if (na == NULL) {
        return err ? err->code : CG_EINVAL;
    }
    json_t *nb = normalize_text(b, "second policy", fold, err);
    if (nb == NULL) {
        json_decref(na);
        return err ? err->code : CG_EINVAL;
    }
    *equal = json_equal(na, nb);
    json_decref(na);
    json_decref(nb);
    return 0;
}

int policy_equal_text(const char *a, const char *b, int *equal, struct cg_err *err)
{
    return equal_text(a, b, 1, equal, err);
}

int policy_equal_text_exact(const char *a, const char *b, int *equal, struct cg_err *err)
{
    return equal_text(a, b, 0, equal, err);
}

char *policy_normalize_text(const char *text, struct cg_err *err)
{
    json_t *norm = normalize_text(text, "policy", 1, err);
    if (norm == NULL) {
        return NULL;
    }
    char *out = json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(norm);
    if (out == NULL) {
        oom(err);
    }
    return out;
}

size_t policy_size_nonspace(const char *doc)
{
    size_t n = 0;
    if (doc == NULL) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)doc; *p != '\0'; p++) {
        /* IAM counts characters, not bytes: skip UTF-8 continuation bytes. */
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || (*p & 0xC0) == 0x80) {
            continue;
        }
        n++;
    }
    return n;
}

/* "service:action" as IAM requires, with wildcards; "*" alone is every action. */
static int action_ok(const char *a)
{
    if (strcmp(a, "*") == 0) {
        return 1;
    }
    const char *colon = strchr(a, ':');
    if (colon == NULL || colon == a || colon[1] == '\0') {
        return 0;
    }
    for (const char *p = a; p < colon; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-')) {
            return 0;
        }
    }
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '*' || *p == '?' || *p == '-' || *p == '_')) {
            return 0;
        }
    }
    return 1;
}

static int check_values(const json_t *v, int (*ok)(const char *), const char *where,
                        const char *name, const char *expect, struct cg_err *err)
{
    if (v == NULL) {
        return 0;
    }
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
        const char *s = json_string_value(item);
        if (s == NULL || strlen(s) != json_string_length(item) || !ok(s)) {
            char sh[SHOWN_MAX];
            return cg_err_set(err, CG_EINVAL, "%s'%s' value '%s' is not %s", where, name,
                              s ? shown(sh, sizeof(sh), s, json_string_length(item)) : "?", expect);
        }
    }
    return 0;
}

static int resource_ok(const char *r)
{
    return strcmp(r, "*") == 0 || strncmp(r, "arn:", 4) == 0;
}

int policy_validate(json_t *doc, enum policy_kind kind, struct cg_err *err)
{
    json_t *norm = policy_normalize(doc, err);
    if (norm == NULL) {
        return err ? err->code : CG_EINVAL;
    }
    json_decref(norm);
    if (json_object_get(doc, "Version") == NULL) {
        /* Without it IAM uses the 2008 grammar, in which ${aws:...} variables are literal
         * text: always say which one is meant. */
        return cg_err_set(err, CG_EINVAL, "'Version' is missing: add \"Version\": \"%s\"",
                          VERSION_CURRENT);
    }
    /* The original order, so a message's index is the one the author sees. */
    const json_t *st = json_object_get(doc, "Statement");
    size_t n = json_is_array(st) ? json_array_size(st) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(st) ? json_array_get(st, i) : st;
        char where[48];
        snprintf(where, sizeof(where), "Statement[%zu]: ", i);
        int has_principal =
            json_object_get(s, "Principal") != NULL || json_object_get(s, "NotPrincipal") != NULL;
        int has_resource =
            json_object_get(s, "Resource") != NULL || json_object_get(s, "NotResource") != NULL;
        if (kind == POLICY_IDENTITY && has_principal) {
            return cg_err_set(err, CG_EINVAL,
                              "%san identity policy must not name a 'Principal' (the policy "
                              "applies to the user or role it is attached to)",
                              where);
        }
        if (kind == POLICY_IDENTITY && !has_resource) {
            return cg_err_set(err, CG_EINVAL, "%sneeds 'Resource' or 'NotResource'", where);
        }
        if (kind == POLICY_TRUST && !has_principal) {
            return cg_err_set(err, CG_EINVAL, "%sa trust policy needs 'Principal'", where);
        }
        if (kind == POLICY_TRUST && has_resource) {
            return cg_err_set(err, CG_EINVAL, "%sa trust policy must not name a 'Resource'", where);
        }
        int rc = check_values(json_object_get(s, "Action"), action_ok, where, "Action",
                              "an action ('service:Action', wildcards allowed, or \"*\")", err);
        if (rc == 0) {
            rc = check_values(json_object_get(s, "NotAction"), action_ok, where, "NotAction",
                              "an action ('service:Action', wildcards allowed, or \"*\")", err);
        }
        if (rc == 0) {
            rc = check_values(json_object_get(s, "Resource"), resource_ok, where, "Resource",
                              "an ARN or \"*\"", err);
        }
        if (rc == 0) {
            rc = check_values(json_object_get(s, "NotResource"), resource_ok, where, "NotResource",
                              "an ARN or \"*\"", err);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}
