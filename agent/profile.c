/* profile.c: grant profiles from YAML to struct profile, rendered and checked against IAM's
 * rules, so that a profile IAM would refuse fails here, before any cloud call, with a message
 * that names the field (docs/profiles.md is the format's reference).
 *
 * Loading is strict: an unknown key is an error (a typo must not silently drop a permission),
 * every value has one type, and every name is checked after rendering, because the cluster name
 * is what usually breaks it. Policy documents are parsed as JSON, rendered string by string and
 * serialised again: template values are never spliced into JSON text.
 *
 * Templates, the loader's helpers, and the aws and gcp sections are here; the azure and outscale
 * sections are in profile_azure.c and profile_outscale.c, on the helpers profile_int.h shares
 * with them. */
#include "profile.h"

#include "cg_buf.h"
#include "cg_util.h"
#include "cg_yaml.h"
#include "policy.h"
#include "profile_int.h"

#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define API_VERSION "cloudgrant.io/v1alpha1"
#define KIND        "GrantProfile"

#define PROFILE_MAX     (1u * 1024u * 1024u)
#define POLICY_FILE_MAX (1u * 1024u * 1024u) /* pretty-printed; IAM's own cap is 131072 chars */
#define RENDER_MAX      (1u * 1024u * 1024u)
#define FILTERS_MAX     16
#define TRUNC_MAX       4096
#define FROM_MAX        256 /* "aws.customerPolicies[0].document (<file>)" */

/* IAM's limits (protocols.md 1.3, the IAM quotas page). */
#define IAM_ENTITY_NAME_MAX  64
#define IAM_POLICY_NAME_MAX  128
#define IAM_PATH_MAX         512
#define IAM_DESCRIPTION_MAX  1000
#define IAM_MANAGED_SIZE_MAX 6144
#define IAM_INLINE_USER_MAX  2048
#define IAM_INLINE_ROLE_MAX  10240
#define IAM_TRUST_MAX        2048
#define IAM_ATTACHED_MAX     20 /* 10 unless the account's quota was raised */
#define IAM_TAGS_MAX         48 /* IAM allows 50; cloudgrant adds two of its own */
#define IAM_TAG_KEY_MAX      128
#define IAM_TAG_VALUE_MAX    256
#define IAM_ARN_MIN          20
#define IAM_ARN_MAX          2048
#define IAM_SESSION_MIN      3600
#define IAM_SESSION_MAX      43200
#define IAM_EXTERNAL_ID_MIN  2
#define IAM_EXTERNAL_ID_MAX  1224

static int oom(struct cg_err *err)
{
    return cg_err_set(err, CG_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------------------------------
 * Templates */

struct tvar {
    const char *name;
    size_t offset;              /* of the value in struct profile_vars */
    const char *supplier;       /* what to do when the value is unknown */
    const char *gcp_supplier;   /* the same for a field of the gcp section; NULL: supplier */
    const char *azure_supplier; /* the same for a field of the azure section; NULL: supplier */
    const char *osc_supplier;   /* the same for a field of the outscale section; NULL: supplier */
};

#define ACCOUNT_SUPPLIER                                                                           \
    "it comes from the cloud credentials or the metadata service: give the agent credentials "     \
    "that can call sts:GetCallerIdentity"
#define PROJECT_SUPPLIER                                                                           \
    "it is the GCP project id, from the metadata server or the key file's project_id: let the "    \
    "agent reach the metadata server or give it a key file"
#define SUBSCRIPTION_SUPPLIER                                                                      \
    "it is the Azure subscription id, from the nodes' providerID or the instance metadata "        \
    "service: let the agent list the nodes or reach the metadata service"
#define OSC_ACCOUNT_SUPPLIER                                                                       \
    "it is the OUTSCALE account id, from the OUTSCALE API (ReadAccounts): give the agent "         \
    "credentials that can call api:ReadAccounts"
/* On AKS the nodes do not carry the cluster's name: ARM does (protocols.md 3.4). */
#define AKS_NAME_SUPPLIER                                                                          \
    "it comes from ARM (the tags of the node resource group): give the agent credentials that "    \
    "can read that resource group, or pass --cluster-name"

/* cloud.project and cloud.subscription are cloud.account under their GCP and Azure names; the
 * message for an unknown variable lists the canonical names only. */
static const struct tvar tvars[] = {
    {"cluster.name", offsetof(struct profile_vars, cluster_name), "pass --cluster-name", NULL,
     AKS_NAME_SUPPLIER, NULL},
    {"cluster.id", offsetof(struct profile_vars, cluster_id),
     "it is the UID of namespace kube-system: let the agent read that namespace", NULL, NULL, NULL},
    {"cluster.region", offsetof(struct profile_vars, cluster_region), "pass --region", NULL, NULL,
     NULL},
    {"cloud.account", offsetof(struct profile_vars, cloud_account), ACCOUNT_SUPPLIER,
     PROJECT_SUPPLIER, SUBSCRIPTION_SUPPLIER, OSC_ACCOUNT_SUPPLIER},
    {"cloud.project", offsetof(struct profile_vars, cloud_account), ACCOUNT_SUPPLIER,
     PROJECT_SUPPLIER, SUBSCRIPTION_SUPPLIER, OSC_ACCOUNT_SUPPLIER},
    {"cloud.subscription", offsetof(struct profile_vars, cloud_account), ACCOUNT_SUPPLIER,
     PROJECT_SUPPLIER, SUBSCRIPTION_SUPPLIER, OSC_ACCOUNT_SUPPLIER},
};

#define TVAR_COUNT (sizeof(tvars) / sizeof(tvars[0]))

enum filter_op { F_SHA1, F_LOWER, F_TRUNC };

struct filter {
    enum filter_op op;
    size_t arg;
};

/* A piece of a template quoted in a message. */
static const char *shown_n(char *dst, size_t cap, const char *s, size_t len)
{
    return cg_printable_n(dst, cap, s, len);
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) {
        (*len)--;
    }
}

static int same(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static int parse_filter(const char *s, size_t len, struct filter *f, struct cg_err *err)
{
    char sh[SHOWN_MAX];
    size_t wlen = 0;
    while (wlen < len && s[wlen] != ' ' && s[wlen] != '\t') {
        wlen++;
    }
    const char *arg = s + wlen;
    size_t alen = len - wlen;
    trim(&arg, &alen);
    if (wlen == 0) {
        return cg_err_set(err, CG_EINVAL, "empty filter after '|'");
    }
    if (same(s, wlen, "sha1") || same(s, wlen, "lower")) {
        if (alen > 0) {
            return cg_err_set(err, CG_EINVAL, "filter '%.*s' takes no argument", (int)wlen, s);
        }
        f->op = same(s, wlen, "sha1") ? F_SHA1 : F_LOWER;
        return 0;
    }
    if (same(s, wlen, "trunc")) {
        size_t n = 0;
        int ok = alen > 0 && alen <= 4;
        for (size_t i = 0; ok && i < alen; i++) {
            ok = arg[i] >= '0' && arg[i] <= '9';
            n = n * 10 + (size_t)(arg[i] - '0');
        }
        if (!ok || n == 0 || n > TRUNC_MAX) {
            return cg_err_set(err, CG_EINVAL,
                              "filter 'trunc' needs a length from 1 to %d, as in 'trunc 8'",
                              TRUNC_MAX);
        }
        f->op = F_TRUNC;
        f->arg = n;
        return 0;
    }
    return cg_err_set(err, CG_EINVAL, "unknown filter '%s' (filters: sha1, lower, trunc N)",
                      shown_n(sh, sizeof(sh), s, wlen));
}

/* Applies f to the NUL-terminated value in b. */
static int apply_filter(const struct filter *f, struct cg_buf *b)
{
    switch (f->op) {
    case F_LOWER:
        /* ASCII only: the names it serves are ASCII, and bytes of a UTF-8 sequence must stay. */
        for (size_t i = 0; i < b->len; i++) {
            if (b->data[i] >= 'A' && b->data[i] <= 'Z') {
                b->data[i] = (char)(b->data[i] - 'A' + 'a');
            }
        }
        return 0;
    case F_TRUNC: {
        /* Characters, not bytes, so a cut never splits a UTF-8 sequence. */
        size_t chars = 0;
        for (size_t i = 0; i < b->len; i++) {
            if (((unsigned char)b->data[i] & 0xC0) != 0x80 && chars++ == f->arg) {
                b->len = i;
                b->data[i] = '\0';
                break;
            }
        }
        return 0;
    }
    case F_SHA1: {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (!EVP_Digest(b->data ? b->data : "", b->len, md, &mdlen, EVP_sha1(), NULL)) {
            return CG_ENOMEM;
        }
        cg_buf_reset(b);
        for (unsigned int i = 0; i < mdlen; i++) {
            int rc = cg_buf_printf(b, "%02x", md[i]);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    }
    return CG_EINVAL;
}

/* One "{{ var | filter ... }}" expression: the whole syntax is checked before the value is
 * looked up, so a typo is reported even when the value is unknown. */
static int eval(const char *expr, size_t len, const struct profile_vars *vars, struct cg_buf *out,
                const struct tvar **missing, struct cg_err *err)
{
    struct filter filters[FILTERS_MAX];
    size_t nfilters = 0;
    char sh[SHOWN_MAX];
    const char *bar = memchr(expr, '|', len);
    const char *name = expr;
    size_t name_len = bar ? (size_t)(bar - expr) : len;
    trim(&name, &name_len);
    if (name_len == 0) {
        return cg_err_set(err, CG_EINVAL, "'{{ }}' names no variable");
    }
    const struct tvar *var = NULL;
    for (size_t i = 0; i < TVAR_COUNT; i++) {
        if (same(name, name_len, tvars[i].name)) {
            var = &tvars[i];
        }
    }
    if (var == NULL) {
        return cg_err_set(err, CG_EINVAL,
                          "unknown variable '%s' (variables: cluster.name, cluster.id, "
                          "cluster.region, cloud.account)",
                          shown_n(sh, sizeof(sh), name, name_len));
    }
    while (bar != NULL) {
        const char *f = bar + 1;
        const char *end = expr + len;
        bar = memchr(f, '|', (size_t)(end - f));
        size_t flen = (size_t)((bar ? bar : end) - f);
        trim(&f, &flen);
        if (nfilters == FILTERS_MAX) {
            return cg_err_set(err, CG_EINVAL, "more than %d filters", FILTERS_MAX);
        }
        int rc = parse_filter(f, flen, &filters[nfilters++], err);
        if (rc < 0) {
            return rc;
        }
    }
    const char *value = vars ? *(const char *const *)((const char *)vars + var->offset) : NULL;
    if (value == NULL || value[0] == '\0') {
        *missing = var;
        return cg_err_set(err, CG_EINVAL, "needs {{%s}}, which this cluster does not reveal: %s",
                          var->name, var->supplier);
    }
    struct cg_buf b;
    cg_buf_init(&b, RENDER_MAX);
    int rc = cg_buf_append_str(&b, value);
    for (size_t i = 0; rc == 0 && i < nfilters; i++) {
        rc = apply_filter(&filters[i], &b);
    }
    if (rc == 0) {
        rc = cg_buf_append(out, b.data, b.len);
    }
    cg_buf_cleanup(&b);
    if (rc == CG_ETOOBIG) {
        return cg_err_set(err, rc, "renders to more than %u bytes", RENDER_MAX);
    }
    if (rc < 0) {
        return oom(err);
    }
    return 0;
}

/* Renders tmpl into a new string. On an unknown value *missing names the variable, so the
 * caller can say which field needs it; err then reads "needs {{x}}, which ...". */
static int render(const char *tmpl, const struct profile_vars *vars, char **out,
                  const struct tvar **missing, struct cg_err *err)
{
    struct cg_buf b;
    int rc = 0;
    cg_buf_init(&b, RENDER_MAX);
    *missing = NULL;
    const char *p = tmpl;
    while (*p != '\0') {
        const char *open = strstr(p, "{{");
        const char *close = strstr(p, "}}");
        if (close != NULL && (open == NULL || close < open)) {
            rc = cg_err_set(err, CG_EINVAL, "'}}' without a '{{' before it");
            goto out;
        }
        if (open == NULL) {
            rc = cg_buf_append_str(&b, p);
            break;
        }
        rc = cg_buf_append(&b, p, (size_t)(open - p));
        if (rc < 0) {
            break;
        }
        const char *end = strstr(open + 2, "}}");
        if (end == NULL) {
            rc = cg_err_set(err, CG_EINVAL, "'{{' is not closed with '}}'");
            goto out;
        }
        const char *nested = strstr(open + 2, "{{");
        if (nested != NULL && nested < end) {
            rc = cg_err_set(err, CG_EINVAL, "'{{' inside '{{ }}'");
            goto out;
        }
        rc = eval(open + 2, (size_t)(end - open - 2), vars, &b, missing, err);
        if (rc < 0) {
            goto out;
        }
        p = end + 2;
    }
    if (rc == CG_ETOOBIG) {
        rc = cg_err_set(err, rc, "renders to more than %u bytes", RENDER_MAX);
        goto out;
    }
    if (rc < 0) {
        rc = oom(err);
        goto out;
    }
    *out = cg_buf_steal(&b, NULL);
    if (*out == NULL) {
        rc = oom(err);
    }
out:
    cg_buf_cleanup(&b);
    return rc;
}

int profile_render(const char *tmpl, const struct profile_vars *vars, char **out,
                   struct cg_err *err)
{
    const struct tvar *missing = NULL;
    char sh[SHOWN_MAX];
    *out = NULL;
    if (tmpl == NULL) {
        return cg_err_set(err, CG_EINVAL, "no template");
    }
    int rc = render(tmpl, vars, out, &missing, err);
    if (rc == CG_EINVAL || rc == CG_ETOOBIG) {
        cg_err_wrap(err, "template '%s'", SHOWN(sh, tmpl));
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * IAM names and ARNs */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [\w+=,.@-] */
static int name_char(char c)
{
    return is_alnum(c) || strchr("_+=,.@-", c) != NULL;
}

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* "arn:aws[-a-z]*:iam::" and returns what follows, or NULL. */
static const char *arn_iam_prefix(const char *s)
{
    if (strncmp(s, "arn:aws", 7) != 0) {
        return NULL;
    }
    s += 7;
    while ((*s >= 'a' && *s <= 'z') || *s == '-') {
        s++;
    }
    return strncmp(s, ":iam::", 6) == 0 ? s + 6 : NULL;
}

/* An IAM path and name: "/dev/team/name" or "name"; the name 1..max of [\w+=,.@-] and the
 * path's characters printable ASCII as IAM allows. */
static int path_and_name_ok(const char *s, size_t max)
{
    const char *name = strrchr(s, '/');
    name = name ? name + 1 : s;
    size_t n = strlen(name);
    if (n == 0 || n > max) {
        return 0;
    }
    for (const char *p = s; p < name; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            return 0;
        }
    }
    for (const char *p = name; *p != '\0'; p++) {
        if (!name_char(*p)) {
            return 0;
        }
    }
    return 1;
}

/* arn:aws[-a-z]*:iam::(aws|\d{12}):policy/[path/]name */
static int managed_arn_ok(const char *s)
{
    size_t len = strlen(s);
    const char *p = arn_iam_prefix(s);
    if (p == NULL || len < IAM_ARN_MIN || len > IAM_ARN_MAX) {
        return 0;
    }
    if (strncmp(p, "aws:", 4) == 0) {
        p += 4;
    } else if (digits(p, 12) && p[12] == ':') {
        p += 13;
    } else {
        return 0;
    }
    return strncmp(p, "policy/", 7) == 0 && path_and_name_ok(p + 7, IAM_POLICY_NAME_MAX);
}

/* arn:aws[-a-z]*:iam::\d{12}:(root|user/[path/]name|role/[path/]name) */
static int principal_arn_ok(const char *s)
{
    size_t len = strlen(s);
    const char *p = arn_iam_prefix(s);
    if (p == NULL || len < IAM_ARN_MIN || len > IAM_ARN_MAX || !digits(p, 12) || p[12] != ':') {
        return 0;
    }
    p += 13;
    if (strcmp(p, "root") == 0) {
        return 1;
    }
    if (strncmp(p, "user/", 5) == 0 || strncmp(p, "role/", 5) == 0) {
        return path_and_name_ok(p + 5, IAM_ENTITY_NAME_MAX);
    }
    return 0;
}

/* /path/ of printable ASCII, or "/" */
static int iam_path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > IAM_PATH_MAX || s[0] != '/' || s[n - 1] != '/') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* [\w+=,.@:/-]{2,1224} */
static int external_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < IAM_EXTERNAL_ID_MIN || n > IAM_EXTERNAL_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i]) && s[i] != ':' && s[i] != '/') {
            return 0;
        }
    }
    return 1;
}

/* Tag characters IAM allows: letters, digits, spaces and _.:/=+-@ (non-ASCII letters pass). */
static int tag_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x80 && !is_alnum((char)*p) && strchr(" _.:/=+-@", *p) == NULL) {
            return 0;
        }
    }
    return 1;
}

/* IAM documents may hold TAB, LF, CR and U+0020..U+00FF only. */
static int latin1_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') {
            return 0;
        }
        if (*p >= 0x80) {
            /* U+0080..U+00FF are C2 xx and C3 xx in UTF-8 */
            if ((*p != 0xC2 && *p != 0xC3) || (p[1] & 0xC0) != 0x80) {
                return 0;
            }
            p++;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Loader */

/* Empty keys are refused first: cg_yaml_check_keys hands a null key's NULL name to
 * cg_yaml_printable (found by fuzz_profile). */
int profile__check_keys(struct loader *ld, const yaml_node_t *map, const char *const *allowed)
{
    for (size_t i = 0; i < cg_yaml_map_len(map); i++) {
        yaml_node_t *k = NULL;
        yaml_node_t *v = NULL;
        cg_yaml_map_pair(&ld->y, map, i, &k, &v);
        if (cg_yaml_is_null(k)) {
            return cg_yaml_errorf(&ld->y, k, ld->err, CG_EINVAL, "a key is empty");
        }
    }
    return cg_yaml_check_keys(&ld->y, map, allowed, ld->err);
}

int profile__fail_at(struct loader *ld, const yaml_node_t *node, int code, const char *fmt, ...)
{
    char msg[CG_ERR_MSG_MAX];
    char saved[sizeof(ld->y.where)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(saved, ld->y.where, sizeof(saved));
    ld->y.where[0] = '\0';
    cg_yaml_errorf(&ld->y, node, ld->err, code, "%s", msg);
    memcpy(ld->y.where, saved, sizeof(saved));
    return code;
}

int profile__render_at(struct loader *ld, const yaml_node_t *node, const char *label,
                       const char *tmpl, char **out)
{
    const struct tvar *missing = NULL;
    struct cg_err e = {0};
    char sh[SHOWN_MAX];
    *out = NULL;
    int rc = render(tmpl, ld->vars, out, &missing, &e);
    if (rc == 0) {
        return 0;
    }
    if (missing != NULL) {
        const char *supplier = missing->supplier;
        if (strncmp(label, "gcp.", 4) == 0 && missing->gcp_supplier != NULL) {
            supplier = missing->gcp_supplier;
        } else if (strncmp(label, "azure.", 6) == 0 && missing->azure_supplier != NULL) {
            supplier = missing->azure_supplier;
        } else if (strncmp(label, "outscale.", 9) == 0 && missing->osc_supplier != NULL) {
            supplier = missing->osc_supplier;
        }
        return cg_err_set(ld->err, CG_EINVAL,
                          "profile '%s': %s needs {{%s}}, which this cluster does not reveal: %s",
                          ld->name, label, missing->name, supplier);
    }
    if (rc == CG_ENOMEM) {
        return oom(ld->err);
    }
    return profile__fail_at(ld, node, CG_EINVAL, "%s: template '%s': %s", label, SHOWN(sh, tmpl),
                            e.msg);
}

int profile__check_syntax(struct loader *ld, const yaml_node_t *map, const char *key,
                          const char *label)
{
    char what[64];
    const char *s = NULL;
    char *out = NULL;
    const struct tvar *missing = NULL;
    struct cg_err e = {0};
    char sh[SHOWN_MAX];
    yaml_node_t *n = cg_yaml_map_get(&ld->y, map, key);
    snprintf(what, sizeof(what), "'%s'", key);
    int rc = cg_yaml_node_str(&ld->y, n, what, &s, ld->err);
    if (rc < 0 || s == NULL) {
        return rc;
    }
    rc = render(s, ld->vars, &out, &missing, &e);
    free(out);
    if (rc == CG_ENOMEM) {
        return oom(ld->err);
    }
    if (rc < 0 && missing == NULL) {
        return profile__fail_at(ld, n, CG_EINVAL, "%s: template '%s': %s", label, SHOWN(sh, s),
                                e.msg);
    }
    return 0;
}

int profile__field_str(struct loader *ld, const yaml_node_t *map, const char *key,
                       const char *label, int do_render, char **out, yaml_node_t **node)
{
    char what[128];
    const char *s = NULL;
    *out = NULL;
    yaml_node_t *n = cg_yaml_map_get(&ld->y, map, key);
    if (node != NULL) {
        *node = n;
    }
    snprintf(what, sizeof(what), "'%s'", key);
    int rc = cg_yaml_node_str(&ld->y, n, what, &s, ld->err);
    if (rc < 0 || s == NULL) {
        return rc;
    }
    if (do_render) {
        return profile__render_at(ld, n, label, s, out);
    }
    *out = strdup(s);
    return *out ? 0 : oom(ld->err);
}

const char *profile__origin(char *dst, size_t cap, const yaml_node_t *node, const char *value)
{
    const char *tmpl =
        node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
    char sh[SHOWN_MAX];
    if (tmpl == NULL || strcmp(tmpl, value) == 0) {
        dst[0] = '\0';
    } else {
        snprintf(dst, cap, " (rendered from '%s')", SHOWN(sh, tmpl));
    }
    return dst;
}

int profile__check_name(struct loader *ld, const yaml_node_t *node, const char *label,
                        const char *value, size_t max, const char *service, const char *what)
{
    char sh[SHOWN_MAX];
    char from[SHOWN_MAX + 32];
    size_t n = strlen(value);
    if (n == 0) {
        return profile__fail_at(ld, node, CG_EINVAL, "%s is empty%s", label,
                                profile__origin(from, sizeof(from), node, value));
    }
    if (n > max) {
        profile__origin(from, sizeof(from), node, value);
        return profile__fail_at(ld, node, CG_EINVAL,
                                "%s '%s'%s is %zu characters, %s allows %zu for a %s name%s", label,
                                SHOWN(sh, value), from, n, service, max, what,
                                from[0] ? ": keep the cluster's part short with a filter, as in "
                                          "'{{cluster.name | sha1 | trunc 8}}'"
                                        : "");
    }
    for (const char *p = value; *p != '\0'; p++) {
        if (!name_char(*p)) {
            return profile__fail_at(ld, node, CG_EINVAL,
                                    "%s '%s'%s is not a valid %s %s name: only letters, digits and "
                                    "+=,.@_- are allowed",
                                    label, SHOWN(sh, value),
                                    profile__origin(from, sizeof(from), node, value), service,
                                    what);
        }
    }
    return 0;
}

/* YAML mapping -> JSON, for documents written inline in YAML. Every scalar becomes a JSON
 * string: YAML's type guessing must not decide what a policy says (IAM compares condition
 * values as strings anyway). Depth is bounded by cg_yaml. */
static int yaml_to_json(struct loader *ld, const yaml_node_t *n, json_t **out)
{
    *out = NULL;
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = NULL;
        if (cg_yaml_is_null(n)) {
            *out = json_null();
            return 0;
        }
        int rc = cg_yaml_node_str(&ld->y, n, "a document value", &s, ld->err);
        if (rc < 0) {
            return rc;
        }
        *out = json_stringn(s, n->data.scalar.length);
        return *out ? 0 : profile__fail_at(ld, n, CG_EINVAL, "a document value is not valid UTF-8");
    }
    json_t *v = n->type == YAML_SEQUENCE_NODE ? json_array() : json_object();
    if (v == NULL) {
        return oom(ld->err);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        for (size_t i = 0; i < cg_yaml_seq_len(n); i++) {
            json_t *item = NULL;
            int rc = yaml_to_json(ld, cg_yaml_seq_at(&ld->y, n, i), &item);
            if (rc < 0 || json_array_append_new(v, item) < 0) {
                json_decref(v);
                return rc < 0 ? rc : oom(ld->err);
            }
        }
    } else {
        for (size_t i = 0; i < cg_yaml_map_len(n); i++) {
            yaml_node_t *k = NULL;
            yaml_node_t *val = NULL;
            const char *key = NULL;
            json_t *item = NULL;
            cg_yaml_map_pair(&ld->y, n, i, &k, &val);
            int rc = cg_yaml_node_str(&ld->y, k, "a document key", &key, ld->err);
            if (rc == 0 && key == NULL) {
                rc = profile__fail_at(ld, k, CG_EINVAL, "a document key must not be empty");
            }
            if (rc == 0 && json_object_get(v, key) != NULL) {
                char sh[SHOWN_MAX];
                rc = profile__fail_at(ld, k, CG_EINVAL, "document key '%s' is repeated",
                                      SHOWN(sh, key));
            }
            if (rc == 0) {
                rc = yaml_to_json(ld, val, &item);
            }
            if (rc == 0 && json_object_set_new(v, key, item) < 0) {
                rc = profile__fail_at(ld, k, CG_EINVAL, "a document key is not valid UTF-8");
            }
            if (rc < 0) {
                json_decref(v);
                return rc;
            }
        }
    }
    *out = v;
    return 0;
}

/* The document's JSON as the profile gives it: a file beside the profile, JSON text, or a YAML
 * mapping. `from` receives what to call it in messages. */
static int load_document(struct loader *ld, const yaml_node_t *node, const char *label,
                         json_t **out, char *from, size_t from_cap)
{
    json_error_t jerr;
    char sh[SHOWN_MAX];
    *out = NULL;
    snprintf(from, from_cap, "%s", label);
    if (node != NULL && node->type == YAML_MAPPING_NODE) {
        return yaml_to_json(ld, node, out);
    }
    const char *s = NULL;
    if (node != NULL && node->type != YAML_SCALAR_NODE) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "%s must be a file name, JSON text or a mapping, not a %s", label,
                                cg_yaml_kind(node));
    }
    int rc = cg_yaml_node_str(&ld->y, node, "'document'", &s, ld->err);
    if (rc < 0) {
        return rc;
    }
    if (s == NULL) {
        return profile__fail_at(ld, node, CG_EINVAL, "%s is missing", label);
    }
    size_t skip = strspn(s, " \t\r\n");
    if (s[skip] == '{') {
        *out = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
        if (*out == NULL) {
            return profile__fail_at(ld, node, CG_EINVAL,
                                    "%s: invalid JSON at line %d column %d: %s", label, jerr.line,
                                    jerr.column, jerr.text);
        }
        return 0;
    }
    if (ld->dir == NULL) {
        return profile__fail_at(
            ld, node, CG_EINVAL,
            "%s names the file '%s', but this profile was not loaded from a file: "
            "write the document inline",
            label, SHOWN(sh, s));
    }
    char *path = cg_path_join(ld->dir, s);
    char *text = NULL;
    size_t len = 0;
    struct cg_err e = {0};
    struct stat st;
    if (path == NULL) {
        return oom(ld->err);
    }
    snprintf(from, from_cap, "%s (%s)", label, SHOWN(sh, s));
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a FIFO or a device would block or never end */
        rc = profile__fail_at(ld, node, CG_EINVAL, "%s: '%s' is not a regular file", label,
                              SHOWN(sh, path));
        goto out;
    }
    rc = cg_file_read(path, POLICY_FILE_MAX, &text, &len, &e);
    if (rc < 0) {
        rc = rc == CG_ENOMEM ? oom(ld->err)
                             : profile__fail_at(ld, node, rc == CG_EIO ? CG_EIO : CG_EINVAL,
                                                "%s: %s", label, e.msg);
        goto out;
    }
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL) {
        rc = profile__fail_at(ld, node, CG_EINVAL, "%s: invalid JSON at line %d column %d: %s",
                              from, jerr.line, jerr.column, jerr.text);
    }
out:
    free(path);
    free(text);
    return rc;
}

/* Renders every string of a JSON value, keys included (a condition key can hold the cluster
 * name). The structure is never touched, so rendering cannot change what is a key and what is
 * a value. */
static int render_json(struct loader *ld, const yaml_node_t *node, const char *label,
                       const json_t *v, json_t **out)
{
    char *r = NULL;
    int rc;
    *out = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            return profile__fail_at(ld, node, CG_EINVAL, "%s: a string contains a NUL character",
                                    label);
        }
        rc = profile__render_at(ld, node, label, json_string_value(v), &r);
        if (rc < 0) {
            return rc;
        }
        *out = json_string(r);
        free(r);
        return *out ? 0
                    : profile__fail_at(ld, node, CG_EINVAL, "%s: a rendered value is not UTF-8",
                                       label);
    case JSON_ARRAY: {
        json_t *a = json_array();
        if (a == NULL) {
            return oom(ld->err);
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *item = NULL;
            rc = render_json(ld, node, label, json_array_get(v, i), &item);
            if (rc < 0 || json_array_append_new(a, item) < 0) {
                json_decref(a);
                return rc < 0 ? rc : oom(ld->err);
            }
        }
        *out = a;
        return 0;
    }
    case JSON_OBJECT: {
        json_t *o = json_object();
        const char *key;
        size_t key_len;
        json_t *val;
        if (o == NULL) {
            return oom(ld->err);
        }
        json_object_keylen_foreach((json_t *)v, key, key_len, val)
        {
            json_t *item = NULL;
            char sh[SHOWN_MAX];
            rc = 0;
            if (key_len != strlen(key)) {
                rc = profile__fail_at(ld, node, CG_EINVAL, "%s: a key contains a NUL character",
                                      label);
            }
            if (rc == 0) {
                rc = profile__render_at(ld, node, label, key, &r);
            }
            if (rc == 0 && json_object_get(o, r) != NULL) {
                rc = profile__fail_at(ld, node, CG_EINVAL, "%s: two keys render to '%s'", label,
                                      SHOWN(sh, r));
            }
            if (rc == 0) {
                rc = render_json(ld, node, label, val, &item);
            }
            if (rc == 0 && json_object_set_new(o, r, item) < 0) {
                rc =
                    profile__fail_at(ld, node, CG_EINVAL, "%s: a rendered key is not UTF-8", label);
            }
            free(r);
            r = NULL;
            if (rc < 0) {
                json_decref(o);
                return rc;
            }
        }
        *out = o;
        return 0;
    }
    default:
        *out = json_incref((json_t *)v);
        return 0;
    }
}

int profile__policy_document(struct loader *ld, const yaml_node_t *node, const char *label,
                             char **text, size_t *size, char *from, size_t from_cap)
{
    char own[FROM_MAX];
    json_t *raw = NULL;
    json_t *doc = NULL;
    struct cg_err e = {0};
    *text = NULL;
    if (from == NULL) {
        from = own;
        from_cap = sizeof(own);
    }
    int rc = load_document(ld, node, label, &raw, from, from_cap);
    if (rc < 0) {
        return rc;
    }
    /* Structure first: it bounds the depth render_json walks, and a structural mistake is
     * reported before a template problem inside it. */
    json_t *norm = policy_normalize(raw, &e);
    if (norm == NULL) {
        rc = e.code == CG_ENOMEM ? oom(ld->err)
                                 : profile__fail_at(ld, node, CG_EINVAL,
                                                    "%s: not a policy document: %s", from, e.msg);
        goto out;
    }
    json_decref(norm);
    rc = render_json(ld, node, from, raw, &doc);
    if (rc < 0) {
        goto out;
    }
    rc = policy_validate(doc, POLICY_IDENTITY, &e);
    if (rc < 0) {
        rc = rc == CG_ENOMEM
                 ? oom(ld->err)
                 : profile__fail_at(ld, node, CG_EINVAL, "%s: not a valid policy: %s", from, e.msg);
        goto out;
    }
    *text = json_dumps(doc, JSON_COMPACT);
    if (*text == NULL) {
        rc = oom(ld->err);
        goto out;
    }
    if (!latin1_ok(*text)) {
        rc = profile__fail_at(ld, node, CG_EINVAL,
                              "%s: IAM accepts only characters up to U+00FF in a policy document",
                              from);
        free(*text);
        *text = NULL;
        goto out;
    }
    *size = policy_size_nonspace(*text);
out:
    json_decref(raw);
    json_decref(doc);
    return rc;
}

static const char *const top_keys[] = {"apiVersion", "kind",  "name",     "description", "aws",
                                       "gcp",        "azure", "outscale", NULL};
static const char *const aws_keys[] = {
    "mode",           "path", "user", "role", "managedPolicies", "customerPolicies",
    "inlinePolicies", "tags", NULL};
static const char *const user_keys[] = {"name", "accessKey", NULL};
static const char *const role_keys[] = {"name", "maxSessionDuration", "trust", NULL};
static const char *const trust_keys[] = {"principal", "externalId", NULL};
static const char *const customer_keys[] = {"name", "description", "document", NULL};
/* IAM has no description for inline policies: accepting one would drop it silently. */
static const char *const inline_keys[] = {"name", "document", NULL};

int profile__days(const yaml_node_t *n, long *out)
{
    if (cg_yaml_is_null(n)) {
        return 0;
    }
    const char *s = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
    size_t len = n->type == YAML_SCALAR_NODE ? n->data.scalar.length : 0;
    if (len == 0 || len > 6) {
        return -1;
    }
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int profile__section(struct loader *ld, const yaml_node_t *parent, const char *key,
                     const char *label, const char *const *keys, yaml_node_t **out)
{
    int rc = cg_yaml_get_map(&ld->y, parent, key, out, ld->err);
    if (rc < 0 || *out == NULL) {
        return rc;
    }
    cg_yaml_where(&ld->y, "%s", label);
    return profile__check_keys(ld, *out, keys);
}

static int managed_policies(struct loader *ld, const yaml_node_t *aws, struct profile_aws *a)
{
    yaml_node_t *seq = NULL;
    char sh[SHOWN_MAX];
    cg_yaml_where(&ld->y, "aws");
    int rc = cg_yaml_get_seq(&ld->y, aws, "managedPolicies", &seq, ld->err);
    size_t n = cg_yaml_seq_len(seq);
    if (rc < 0 || n == 0) {
        return rc;
    }
    a->managed_policy_arns = calloc(n, sizeof(*a->managed_policy_arns));
    if (a->managed_policy_arns == NULL) {
        return oom(ld->err);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cg_yaml_seq_at(&ld->y, seq, i);
        char label[64];
        const char *s = NULL;
        snprintf(label, sizeof(label), "aws.managedPolicies[%zu]", i);
        cg_yaml_where(&ld->y, NULL);
        rc = cg_yaml_node_str(&ld->y, item, label, &s, ld->err);
        if (rc < 0) {
            return rc;
        }
        if (s == NULL) {
            return profile__fail_at(ld, item, CG_EINVAL, "%s is empty", label);
        }
        a->managed_count = i + 1;
        rc = profile__render_at(ld, item, label, s, &a->managed_policy_arns[i]);
        if (rc < 0) {
            return rc;
        }
        const char *arn = a->managed_policy_arns[i];
        if (!managed_arn_ok(arn)) {
            return profile__fail_at(
                ld, item, CG_EINVAL,
                "%s '%s' is not a managed policy ARN (arn:aws:iam::aws:policy/NAME "
                "or arn:aws:iam::123456789012:policy/NAME)",
                label, SHOWN(sh, arn));
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a->managed_policy_arns[j], arn) == 0) {
                return profile__fail_at(ld, item, CG_EINVAL, "%s '%s' is listed twice", label,
                                        SHOWN(sh, arn));
            }
        }
    }
    return 0;
}

/* customerPolicies or inlinePolicies. *total is the sum of the documents' sizes. */
static int policy_list(struct loader *ld, const yaml_node_t *aws, const char *key, int customer,
                       struct profile_policy **out, size_t *count, size_t *total,
                       yaml_node_t **seq_out)
{
    yaml_node_t *seq = NULL;
    char sh[SHOWN_MAX];
    *total = 0;
    cg_yaml_where(&ld->y, "aws");
    int rc = cg_yaml_get_seq(&ld->y, aws, key, &seq, ld->err);
    size_t n = cg_yaml_seq_len(seq);
    *seq_out = seq;
    if (rc < 0 || n == 0) {
        return rc;
    }
    *out = calloc(n, sizeof(**out));
    if (*out == NULL) {
        return oom(ld->err);
    }
    for (size_t i = 0; i < n; i++) {
        struct profile_policy *pol = &(*out)[i];
        yaml_node_t *item = cg_yaml_seq_at(&ld->y, seq, i);
        yaml_node_t *name_node = NULL;
        yaml_node_t *desc_node = NULL;
        char at[64];
        char label[96];
        size_t size = 0;
        *count = i + 1; /* profile_free releases what was filled so far */
        snprintf(at, sizeof(at), "aws.%s[%zu]", key, i);
        if (item->type != YAML_MAPPING_NODE) {
            return profile__fail_at(ld, item, CG_EINVAL,
                                    "%s must be a mapping with 'name' and 'document', "
                                    "not a %s",
                                    at, cg_yaml_kind(item));
        }
        cg_yaml_where(&ld->y, "%s", at);
        rc = profile__check_keys(ld, item, customer ? customer_keys : inline_keys);
        if (rc < 0) {
            return rc;
        }
        snprintf(label, sizeof(label), "%s.name", at);
        rc = profile__field_str(ld, item, "name", label, 1, &pol->name, &name_node);
        if (rc < 0) {
            return rc;
        }
        if (pol->name == NULL) {
            return profile__fail_at(ld, item, CG_EINVAL, "%s is missing", label);
        }
        rc = profile__check_name(ld, name_node, label, pol->name, IAM_POLICY_NAME_MAX, "IAM",
                                 "policy");
        if (rc < 0) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp((*out)[j].name, pol->name) == 0) {
                return profile__fail_at(ld, name_node, CG_EINVAL,
                                        "%s '%s' is used twice (IAM names are case-insensitive)",
                                        label, SHOWN(sh, pol->name));
            }
        }
        if (customer) {
            snprintf(label, sizeof(label), "%s.description", at);
            rc = profile__field_str(ld, item, "description", label, 1, &pol->description,
                                    &desc_node);
            if (rc < 0) {
                return rc;
            }
            if (pol->description != NULL && strlen(pol->description) > IAM_DESCRIPTION_MAX) {
                return profile__fail_at(ld, desc_node, CG_EINVAL,
                                        "%s is %zu characters, IAM allows %d", label,
                                        strlen(pol->description), IAM_DESCRIPTION_MAX);
            }
        }
        snprintf(label, sizeof(label), "%s.document", at);
        yaml_node_t *doc_node = cg_yaml_map_get(&ld->y, item, "document");
        if (cg_yaml_is_null(doc_node)) {
            return profile__fail_at(ld, doc_node ? doc_node : item, CG_EINVAL, "%s is missing",
                                    label);
        }
        rc = profile__policy_document(ld, doc_node, label, &pol->document, &size, NULL, 0);
        if (rc < 0) {
            return rc;
        }
        if (customer && size > IAM_MANAGED_SIZE_MAX) {
            return profile__fail_at(
                ld, doc_node, CG_EINVAL,
                "%s '%s' is %zu characters without whitespace, IAM allows %d for a "
                "managed policy: split it into two customer policies",
                at, SHOWN(sh, pol->name), size, IAM_MANAGED_SIZE_MAX);
        }
        *total += size;
    }
    return 0;
}

static int tags(struct loader *ld, const yaml_node_t *aws, struct profile_aws *a)
{
    yaml_node_t *map = NULL;
    char sh[SHOWN_MAX];
    cg_yaml_where(&ld->y, "aws");
    int rc = cg_yaml_get_map(&ld->y, aws, "tags", &map, ld->err);
    size_t n = cg_yaml_map_len(map);
    if (rc < 0 || n == 0) {
        return rc;
    }
    if (n > IAM_TAGS_MAX) {
        return profile__fail_at(ld, map, CG_EINVAL,
                                "aws.tags has %zu tags, at most %d fit beside cloudgrant's own two",
                                n, IAM_TAGS_MAX);
    }
    a->tags = calloc(n, sizeof(*a->tags));
    if (a->tags == NULL) {
        return oom(ld->err);
    }
    cg_yaml_where(&ld->y, "aws.tags");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = NULL;
        yaml_node_t *v = NULL;
        const char *key = NULL;
        const char *value = NULL;
        char label[SHOWN_MAX + 16];
        cg_yaml_map_pair(&ld->y, map, i, &k, &v);
        rc = cg_yaml_node_str(&ld->y, k, "a tag key", &key, ld->err);
        if (rc == 0) {
            rc = cg_yaml_node_str(&ld->y, v, "a tag value", &value, ld->err);
        }
        if (rc < 0) {
            return rc;
        }
        if (key == NULL) {
            return profile__fail_at(ld, k, CG_EINVAL, "aws.tags: a tag key is empty");
        }
        a->tag_count = i + 1;
        snprintf(label, sizeof(label), "aws.tags key '%s'", SHOWN(sh, key));
        rc = profile__render_at(ld, k, label, key, &a->tags[i].key);
        if (rc < 0) {
            return rc;
        }
        snprintf(label, sizeof(label), "aws.tags.%s", SHOWN(sh, a->tags[i].key));
        rc = profile__render_at(ld, v ? v : k, label, value ? value : "", &a->tags[i].value);
        if (rc < 0) {
            return rc;
        }
        const struct profile_tag *t = &a->tags[i];
        if (strlen(t->key) == 0 || strlen(t->key) > IAM_TAG_KEY_MAX || !tag_text_ok(t->key)) {
            return profile__fail_at(
                ld, k, CG_EINVAL,
                "aws.tags key '%s' is not a valid tag key: 1 to %d letters, digits, "
                "spaces and _.:/=+-@",
                SHOWN(sh, t->key), IAM_TAG_KEY_MAX);
        }
        if (strncasecmp(t->key, "aws:", 4) == 0) {
            return profile__fail_at(ld, k, CG_EINVAL,
                                    "aws.tags key '%s': the prefix 'aws:' is reserved",
                                    SHOWN(sh, t->key));
        }
        if (strlen(t->value) > IAM_TAG_VALUE_MAX || !tag_text_ok(t->value)) {
            return profile__fail_at(
                ld, v ? v : k, CG_EINVAL,
                "%s: '%s' is not a valid tag value: up to %d letters, digits, spaces "
                "and _.:/=+-@",
                label, SHOWN(sh, t->value), IAM_TAG_VALUE_MAX);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(a->tags[j].key, t->key) == 0) {
                return profile__fail_at(ld, k, CG_EINVAL, "aws.tags key '%s' is given twice",
                                        SHOWN(sh, t->key));
            }
        }
    }
    return 0;
}

static int session_duration(struct loader *ld, const yaml_node_t *role, long *out)
{
    yaml_node_t *n = cg_yaml_map_get(&ld->y, role, "maxSessionDuration");
    *out = 0;
    if (cg_yaml_is_null(n)) {
        return 0;
    }
    const char *s = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
    size_t len = n->type == YAML_SCALAR_NODE ? n->data.scalar.length : 0;
    long v = 0;
    int ok = len > 0 && len <= 6 && digits(s, len);
    for (size_t i = 0; ok && i < len; i++) {
        v = v * 10 + (s[i] - '0');
    }
    if (!ok || v < IAM_SESSION_MIN || v > IAM_SESSION_MAX) {
        return profile__fail_at(
            ld, n, CG_EINVAL,
            "aws.role.maxSessionDuration must be a number of seconds from %d to %d",
            IAM_SESSION_MIN, IAM_SESSION_MAX);
    }
    *out = v;
    return 0;
}

static int trust(struct loader *ld, const yaml_node_t *role, const yaml_node_t *trust_map,
                 const struct profile_overrides *ov, struct profile_aws *a)
{
    char sh[SHOWN_MAX];
    yaml_node_t *node = NULL;
    int rc;
    cg_yaml_where(&ld->y, "aws.role.trust");
    if (ov != NULL && ov->aws_trust_principal != NULL && ov->aws_trust_principal[0] != '\0') {
        if (!principal_arn_ok(ov->aws_trust_principal)) {
            return cg_err_set(ld->err, CG_EINVAL,
                              "--aws-trust-principal '%s' is not an IAM principal ARN "
                              "(arn:aws:iam::123456789012:user/NAME, :role/NAME or :root)",
                              SHOWN(sh, ov->aws_trust_principal));
        }
        a->trust_principal = strdup(ov->aws_trust_principal);
        if (a->trust_principal == NULL) {
            return oom(ld->err);
        }
    } else {
        rc = profile__field_str(ld, trust_map, "principal", "aws.role.trust.principal", 1,
                                &a->trust_principal, &node);
        if (rc < 0) {
            return rc;
        }
        if (a->trust_principal != NULL && a->trust_principal[0] == '\0') {
            free(a->trust_principal);
            a->trust_principal = NULL;
        }
        if (a->trust_principal != NULL && !principal_arn_ok(a->trust_principal)) {
            return profile__fail_at(ld, node, CG_EINVAL,
                                    "aws.role.trust.principal '%s' is not an IAM principal ARN "
                                    "(arn:aws:iam::123456789012:user/NAME, :role/NAME or :root)",
                                    SHOWN(sh, a->trust_principal));
        }
    }
    if (a->trust_principal == NULL) {
        return cg_err_set(ld->err, CG_EINVAL,
                          "profile '%s': role mode needs the platform's principal: set "
                          "aws.role.trust.principal or pass --aws-trust-principal",
                          ld->name);
    }

    if (ov != NULL && ov->aws_external_id != NULL && ov->aws_external_id[0] != '\0') {
        if (!external_id_ok(ov->aws_external_id)) {
            return cg_err_set(ld->err, CG_EINVAL,
                              "--aws-external-id '%s' is not a valid external ID: %d to %d "
                              "letters, digits and +=,.@:/_-",
                              SHOWN(sh, ov->aws_external_id), IAM_EXTERNAL_ID_MIN,
                              IAM_EXTERNAL_ID_MAX);
        }
        a->external_id = strdup(ov->aws_external_id);
        if (a->external_id == NULL) {
            return oom(ld->err);
        }
    } else {
        rc = profile__field_str(ld, trust_map, "externalId", "aws.role.trust.externalId", 1,
                                &a->external_id, &node);
        if (rc < 0) {
            return rc;
        }
        if (a->external_id == NULL || a->external_id[0] == '\0') {
            /* The cluster id is unique per cluster and stable, which is what an external ID
             * is for: the platform cannot be tricked into acting for another customer. */
            free(a->external_id);
            a->external_id = NULL;
            node = NULL;
            rc = profile__render_at(ld, trust_map ? trust_map : role,
                                    "aws.role.trust.externalId (by default '{{cluster.id}}')",
                                    "{{cluster.id}}", &a->external_id);
            if (rc < 0) {
                return rc;
            }
        }
        if (!external_id_ok(a->external_id)) {
            return profile__fail_at(
                ld, node ? node : (trust_map ? trust_map : role), CG_EINVAL,
                "aws.role.trust.externalId '%s' is not a valid external ID: %d to %d "
                "letters, digits and +=,.@:/_-",
                SHOWN(sh, a->external_id), IAM_EXTERNAL_ID_MIN, IAM_EXTERNAL_ID_MAX);
        }
    }

    json_t *doc =
        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:{s:{s:s}}}]}", "Version", "2012-10-17",
                  "Statement", "Effect", "Allow", "Principal", "AWS", a->trust_principal, "Action",
                  "sts:AssumeRole", "Condition", "StringEquals", "sts:ExternalId", a->external_id);
    if (doc == NULL) {
        return oom(ld->err);
    }
    struct cg_err e = {0};
    rc = policy_validate(doc, POLICY_TRUST, &e);
    if (rc == 0) {
        a->trust_policy = json_dumps(doc, JSON_COMPACT);
        rc = a->trust_policy ? 0 : oom(ld->err);
    } else {
        rc = cg_err_set(ld->err, rc, "trust policy: %s", e.msg);
    }
    json_decref(doc);
    if (rc < 0) {
        return rc;
    }
    size_t size = policy_size_nonspace(a->trust_policy);
    if (size > IAM_TRUST_MAX) {
        return cg_err_set(ld->err, CG_EINVAL,
                          "profile '%s': the trust policy is %zu characters without whitespace, "
                          "IAM allows %d by default: use a shorter external ID",
                          ld->name, size, IAM_TRUST_MAX);
    }
    return 0;
}

static int parse_mode(struct loader *ld, const yaml_node_t *aws, const struct profile_overrides *ov,
                      enum profile_aws_mode *mode)
{
    char sh[SHOWN_MAX];
    char *s = NULL;
    yaml_node_t *node = NULL;
    *mode = PROFILE_AWS_USER;
    int rc = profile__field_str(ld, aws, "mode", "aws.mode", 0, &s, &node);
    if (rc < 0) {
        return rc;
    }
    if (s != NULL && strcmp(s, "role") == 0) {
        *mode = PROFILE_AWS_ROLE;
    } else if (s != NULL && strcmp(s, "user") != 0) {
        rc = profile__fail_at(ld, node, CG_EINVAL, "aws.mode must be 'user' or 'role', not '%s'",
                              SHOWN(sh, s));
    }
    free(s);
    if (rc == 0 && ov != NULL && ov->aws_mode != NULL) {
        if (strcmp(ov->aws_mode, "role") == 0) {
            *mode = PROFILE_AWS_ROLE;
        } else if (strcmp(ov->aws_mode, "user") == 0) {
            *mode = PROFILE_AWS_USER;
        } else {
            rc = cg_err_set(ld->err, CG_EINVAL, "--aws-mode must be 'user' or 'role', not '%s'",
                            SHOWN(sh, ov->aws_mode));
        }
    }
    return rc;
}

static int parse_aws(struct loader *ld, const yaml_node_t *aws, const struct profile_overrides *ov,
                     struct profile_aws *a)
{
    yaml_node_t *user = NULL;
    yaml_node_t *role = NULL;
    yaml_node_t *trust_map = NULL;
    yaml_node_t *node = NULL;
    yaml_node_t *customer_seq = NULL;
    yaml_node_t *inline_seq = NULL;
    size_t customer_total = 0;
    size_t inline_total = 0;
    char sh[SHOWN_MAX];
    int rc;

    a->present = 1;
    cg_yaml_where(&ld->y, "aws");
    if ((rc = profile__check_keys(ld, aws, aws_keys)) < 0 ||
        (rc = parse_mode(ld, aws, ov, &a->mode)) < 0) {
        return rc;
    }
    /* Both sections are checked whatever the mode, so a typo in the one not used today is found
     * before someone switches modes; only the used one is rendered. */
    cg_yaml_where(&ld->y, "aws");
    if ((rc = profile__section(ld, aws, "user", "aws.user", user_keys, &user)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "aws");
    if ((rc = profile__section(ld, aws, "role", "aws.role", role_keys, &role)) < 0 ||
        (rc = profile__section(ld, role, "trust", "aws.role.trust", trust_keys, &trust_map)) < 0 ||
        (rc = session_duration(ld, role, &a->max_session_duration)) < 0) {
        return rc;
    }
    a->access_key = 1;
    if (!cg_yaml_is_null(cg_yaml_map_get(&ld->y, user, "accessKey"))) {
        cg_yaml_where(&ld->y, "aws.user");
        if ((rc = cg_yaml_get_bool(&ld->y, user, "accessKey", &a->access_key, ld->err)) < 0) {
            return rc;
        }
    }

    cg_yaml_where(&ld->y, "aws");
    if ((rc = profile__field_str(ld, aws, "path", "aws.path", 1, &a->path, &node)) < 0) {
        return rc;
    }
    if (a->path == NULL && (a->path = strdup("/")) == NULL) {
        return oom(ld->err);
    }
    if (!iam_path_ok(a->path)) {
        return profile__fail_at(
            ld, node, CG_EINVAL,
            "aws.path '%s' is not an IAM path: '/' or '/a/b/', at most %d printable "
            "ASCII characters",
            SHOWN(sh, a->path), IAM_PATH_MAX);
    }

    if (a->mode == PROFILE_AWS_USER) {
        cg_yaml_where(&ld->y, "aws.role");
        if ((rc = profile__check_syntax(ld, role, "name", "aws.role.name")) < 0) {
            return rc;
        }
        cg_yaml_where(&ld->y, "aws.role.trust");
        if ((rc = profile__check_syntax(ld, trust_map, "principal", "aws.role.trust.principal")) <
                0 ||
            (rc = profile__check_syntax(ld, trust_map, "externalId", "aws.role.trust.externalId")) <
                0) {
            return rc;
        }
    } else {
        cg_yaml_where(&ld->y, "aws.user");
        if ((rc = profile__check_syntax(ld, user, "name", "aws.user.name")) < 0) {
            return rc;
        }
    }

    const char *what = a->mode == PROFILE_AWS_USER ? "user" : "role";
    yaml_node_t *sect = a->mode == PROFILE_AWS_USER ? user : role;
    char label[32];
    snprintf(label, sizeof(label), "aws.%s.name", what);
    if (sect == NULL) {
        return profile__fail_at(ld, aws, CG_EINVAL,
                                "%s mode needs an 'aws.%s' section with the %s's name", what, what,
                                what);
    }
    cg_yaml_where(&ld->y, "aws.%s", what);
    if ((rc = profile__field_str(ld, sect, "name", label, 1, &a->name, &node)) < 0) {
        return rc;
    }
    if (a->name == NULL) {
        return profile__fail_at(ld, sect, CG_EINVAL, "%s is missing", label);
    }
    if ((rc = profile__check_name(ld, node, label, a->name, IAM_ENTITY_NAME_MAX, "IAM", what)) <
        0) {
        return rc;
    }

    if ((rc = managed_policies(ld, aws, a)) < 0 ||
        (rc = policy_list(ld, aws, "customerPolicies", 1, &a->customer_policies, &a->customer_count,
                          &customer_total, &customer_seq)) < 0 ||
        (rc = policy_list(ld, aws, "inlinePolicies", 0, &a->inline_policies, &a->inline_count,
                          &inline_total, &inline_seq)) < 0 ||
        (rc = tags(ld, aws, a)) < 0) {
        return rc;
    }
    (void)customer_total;
    if (a->managed_count + a->customer_count > IAM_ATTACHED_MAX) {
        return profile__fail_at(
            ld, aws, CG_EINVAL,
            "the profile attaches %zu managed policies, IAM allows at most %d to one "
            "%s (10 unless the account's quota was raised)",
            a->managed_count + a->customer_count, IAM_ATTACHED_MAX, what);
    }
    size_t inline_max = a->mode == PROFILE_AWS_USER ? IAM_INLINE_USER_MAX : IAM_INLINE_ROLE_MAX;
    if (inline_total > inline_max) {
        return profile__fail_at(
            ld, inline_seq, CG_EINVAL,
            "aws.inlinePolicies: the inline policies of a %s total %zu characters "
            "without whitespace, IAM allows %zu: move one to customerPolicies (a "
            "managed policy may have %d)",
            what, inline_total, inline_max, IAM_MANAGED_SIZE_MAX);
    }

    if (a->mode == PROFILE_AWS_ROLE) {
        a->access_key = 0; /* a role has no keys: the platform assumes it */
        return trust(ld, role, trust_map, ov, a);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * GCP (protocols.md 2.4 and 2.5): a service account, the APIs it needs, custom roles that
 * cloudgrant owns, predefined roles bound on the project, and a key or members allowed to act
 * as the service account without one. */

#define GCP_SA_ID_MIN            6
#define GCP_SA_ID_MAX            30
#define GCP_DISPLAY_NAME_MAX     100
#define GCP_SA_DESCRIPTION_MAX   256
#define GCP_ROLE_ID_MIN          3
#define GCP_ROLE_ID_MAX          64
#define GCP_ROLE_TITLE_MAX       100
#define GCP_ROLE_DESCRIPTION_MAX 300
#define GCP_ROLE_PERMISSIONS_MAX 3000
#define GCP_CUSTOM_ROLES_MAX     300 /* per project */
#define GCP_DNS_NAME_MAX         253
#define GCP_DNS_LABEL_MAX        63
#define GCP_MEMBER_MAX           2048

#define GCP_FILTER_HINT "'{{cluster.name | sha1 | trunc 8}}' fits any cluster name"
#define GCP_MEMBER_FORMS                                                                           \
    "serviceAccount:NAME@PROJECT.iam.gserviceaccount.com, "                                        \
    "serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA], user:EMAIL, group:EMAIL, "                 \
    "principal://iam.googleapis.com/... or principalSet://iam.googleapis.com/..."

static const char *const gcp_keys[] = {"serviceAccount", "services", "customRoles", "roles",
                                       "credential",     "keyless",  NULL};
static const char *const gcp_sa_keys[] = {"id", "displayName", "description", NULL};
static const char *const gcp_role_keys[] = {"id",    "title",       "description",
                                            "stage", "permissions", NULL};
static const char *const gcp_keyless_keys[] = {"impersonator", "workloadIdentityUser", NULL};
static const char *const gcp_stages[] = {"ALPHA",    "BETA", "GA", "DEPRECATED",
                                         "DISABLED", "EAP",  NULL};

static int is_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* accountId: [a-z]([-a-z0-9]*[a-z0-9]), 6..30 (RFC 1035) */
static int gcp_sa_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < GCP_SA_ID_MIN || n > GCP_SA_ID_MAX || s[0] < 'a' || s[0] > 'z' ||
        !is_lower_or_digit(s[n - 1])) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_or_digit(s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* roleId: [a-zA-Z0-9_.]{3,64} */
static int gcp_role_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < GCP_ROLE_ID_MIN || n > GCP_ROLE_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.') {
            return 0;
        }
    }
    return 1;
}

/* A DNS name of at least `labels` labels of [a-z0-9-] (case as given by `upper`), none
 * starting or ending with '-'. */
static int dns_name_ok(const char *s, size_t len, size_t labels, int upper)
{
    size_t count = 0;
    size_t start = 0;
    if (len == 0 || len > GCP_DNS_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            char c = upper && s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
            if (!is_lower_or_digit(c) && c != '-') {
                return 0;
            }
            continue;
        }
        size_t n = i - start;
        if (n == 0 || n > GCP_DNS_LABEL_MAX || s[start] == '-' || s[i - 1] == '-') {
            return 0;
        }
        count++;
        start = i + 1;
    }
    return count >= labels;
}

/* A service name: "iam.googleapis.com", "myapi.endpoints.my-project.cloud.goog". */
static int gcp_service_ok(const char *s)
{
    return dns_name_ok(s, strlen(s), 2, 0);
}

/* service.resource.verb: "compute.instances.create", "iam.serviceAccounts.actAs". */
static int gcp_permission_ok(const char *s)
{
    const char *p = s;
    for (int part = 0; part < 3; part++) {
        const char *start = p;
        if (part == 0 ? !(*p >= 'a' && *p <= 'z') : !is_alnum(*p)) {
            return 0;
        }
        while (part == 0 ? is_lower_or_digit(*p) : (is_alnum(*p) || *p == '_')) {
            p++;
        }
        if (p == start || *p != (part < 2 ? '.' : '\0')) {
            return 0;
        }
        p += part < 2;
    }
    return 1;
}

/* roles/NAME, NAME of letters, digits, '_' and '.' ("roles/container.developer") */
static int gcp_predefined_role_ok(const char *s)
{
    if (strncmp(s, "roles/", 6) != 0) {
        return 0;
    }
    s += 6;
    size_t n = strlen(s);
    if (n == 0 || n > GCP_ROLE_ID_MAX || s[0] == '.' || s[n - 1] == '.' ||
        strstr(s, "..") != NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.') {
            return 0;
        }
    }
    return 1;
}

/* LOCAL@DOMAIN, the domain with at least two labels. */
static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || at - s > 64 || strchr(at + 1, '@') != NULL) {
        return 0;
    }
    for (const char *p = s; p < at; p++) {
        if (!is_alnum(*p) && strchr("._%+-'", *p) == NULL) {
            return 0;
        }
    }
    return dns_name_ok(at + 1, strlen(at + 1), 2, 1);
}

/* GKE Workload Identity: PROJECT.svc.id.goog[NAMESPACE/KSA] (protocols.md 2.2). */
static int workload_identity_ok(const char *s)
{
    static const char pool[] = ".svc.id.goog[";
    const char *b = strstr(s, pool);
    size_t n = strlen(s);
    if (b == NULL || b == s || n < 2 || s[n - 1] != ']') {
        return 0;
    }
    for (const char *p = s; p < b; p++) {
        if (!is_lower_or_digit(*p) && strchr("-.:", *p) == NULL) {
            return 0;
        }
    }
    const char *ns = b + sizeof(pool) - 1;
    const char *slash = strchr(ns, '/');
    const char *end = s + n - 1;
    if (slash == NULL || slash > end) {
        return 0;
    }
    return dns_name_ok(ns, (size_t)(slash - ns), 1, 0) && slash - ns <= GCP_DNS_LABEL_MAX &&
           memchr(ns, '.', (size_t)(slash - ns)) == NULL &&
           dns_name_ok(slash + 1, (size_t)(end - slash - 1), 1, 0);
}

/* An IAM member that may act as the service account. allUsers, allAuthenticatedUsers and
 * domain: are refused on purpose: they would hand the service account to strangers. */
static int gcp_member_ok(const char *s)
{
    static const char *const wif[] = {"principal://iam.googleapis.com/",
                                      "principalSet://iam.googleapis.com/"};
    if (strlen(s) > GCP_MEMBER_MAX) {
        return 0;
    }
    if (strncmp(s, "serviceAccount:", 15) == 0) {
        return email_ok(s + 15) || workload_identity_ok(s + 15);
    }
    if (strncmp(s, "user:", 5) == 0 || strncmp(s, "group:", 6) == 0) {
        return email_ok(strchr(s, ':') + 1);
    }
    for (size_t i = 0; i < sizeof(wif) / sizeof(wif[0]); i++) {
        size_t n = strlen(wif[i]);
        if (strncmp(s, wif[i], n) == 0 && s[n] != '\0') {
            for (const char *p = s + n; *p != '\0'; p++) {
                if (*p < 0x21 || *p > 0x7e) {
                    return 0;
                }
            }
            return 1;
        }
    }
    return 0;
}

struct ranked {
    const char *s;
    size_t index;
};

static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a;
    const struct ranked *y = b;
    int c = strcmp(x->s, y->s);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* *dup = the position of the first value that repeats an earlier one, or n. */
static int first_repeat(char *const *v, size_t n, size_t *dup, struct cg_err *err)
{
    *dup = n;
    if (n < 2) {
        return 0;
    }
    struct ranked *r = calloc(n, sizeof(*r));
    if (r == NULL) {
        return oom(err);
    }
    for (size_t i = 0; i < n; i++) {
        r[i].s = v[i];
        r[i].index = i;
    }
    qsort(r, n, sizeof(*r), cmp_ranked);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(r[i - 1].s, r[i].s) == 0 && r[i].index < *dup) {
            *dup = r[i].index; /* the group's second, as sorted by position */
        }
    }
    free(r);
    return 0;
}

typedef int (*item_check_fn)(struct loader *ld, const yaml_node_t *node, const char *label,
                             const char *value);

/* A sequence of strings, each rendered, checked by `check` and listed once. */
static int string_list(struct loader *ld, const yaml_node_t *seq, const char *at,
                       item_check_fn check, char ***out, size_t *count)
{
    char sh[SHOWN_MAX];
    size_t n = cg_yaml_seq_len(seq);
    size_t dup = 0;
    if (n == 0) {
        return 0;
    }
    *out = calloc(n, sizeof(**out));
    if (*out == NULL) {
        return oom(ld->err);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cg_yaml_seq_at(&ld->y, seq, i);
        char label[128];
        const char *s = NULL;
        snprintf(label, sizeof(label), "%s[%zu]", at, i);
        cg_yaml_where(&ld->y, NULL);
        int rc = cg_yaml_node_str(&ld->y, item, label, &s, ld->err);
        if (rc < 0) {
            return rc;
        }
        if (s == NULL) {
            return profile__fail_at(ld, item, CG_EINVAL, "%s is empty", label);
        }
        *count = i + 1; /* profile_free releases what was filled so far */
        if ((rc = profile__render_at(ld, item, label, s, &(*out)[i])) < 0 ||
            (rc = check(ld, item, label, (*out)[i])) < 0) {
            return rc;
        }
    }
    int rc = first_repeat(*out, n, &dup, ld->err);
    if (rc == 0 && dup < n) {
        rc = profile__fail_at(ld, cg_yaml_seq_at(&ld->y, seq, dup), CG_EINVAL,
                              "%s[%zu] '%s' is listed twice", at, dup, SHOWN(sh, (*out)[dup]));
    }
    return rc;
}

static int check_service(struct loader *ld, const yaml_node_t *node, const char *label,
                         const char *value)
{
    char sh[SHOWN_MAX];
    if (gcp_service_ok(value)) {
        return 0;
    }
    return profile__fail_at(ld, node, CG_EINVAL,
                            "%s '%s' is not a service name: a lower-case DNS name, as in "
                            "'iam.googleapis.com'",
                            label, SHOWN(sh, value));
}

static int check_permission(struct loader *ld, const yaml_node_t *node, const char *label,
                            const char *value)
{
    char sh[SHOWN_MAX];
    if (gcp_permission_ok(value)) {
        return 0;
    }
    if (strchr(value, '*') != NULL) {
        return profile__fail_at(
            ld, node, CG_EINVAL,
            "%s '%s' is not a GCP permission: a custom role lists its permissions one "
            "by one, without wildcards",
            label, SHOWN(sh, value));
    }
    return profile__fail_at(ld, node, CG_EINVAL,
                            "%s '%s' is not a GCP permission: service.resource.verb, as in "
                            "'compute.instances.create'",
                            label, SHOWN(sh, value));
}

static int check_predefined_role(struct loader *ld, const yaml_node_t *node, const char *label,
                                 const char *value)
{
    char sh[SHOWN_MAX];
    if (gcp_predefined_role_ok(value)) {
        return 0;
    }
    int custom = strncmp(value, "projects/", 9) == 0 || strncmp(value, "organizations/", 14) == 0;
    return profile__fail_at(
        ld, node, CG_EINVAL,
        "%s '%s' is not a predefined role: 'roles/NAME', as in "
        "'roles/container.developer'%s",
        label, SHOWN(sh, value),
        custom ? "; a custom role goes in gcp.customRoles, which cloudgrant creates "
                 "and binds to the service account"
               : "");
}

/* A byte limit on an optional rendered text. */
static int check_bytes(struct loader *ld, const yaml_node_t *node, const char *label,
                       const char *value, size_t max)
{
    if (value == NULL || strlen(value) <= max) {
        return 0;
    }
    return profile__fail_at(ld, node, CG_EINVAL, "%s is %zu bytes, GCP allows %zu", label,
                            strlen(value), max);
}

static int check_sa_id(struct loader *ld, const yaml_node_t *node, const char *value)
{
    static const char label[] = "gcp.serviceAccount.id";
    char sh[SHOWN_MAX];
    char from[SHOWN_MAX + 32];
    size_t n = strlen(value);
    profile__origin(from, sizeof(from), node, value);
    if (n == 0) {
        return profile__fail_at(ld, node, CG_EINVAL, "%s is empty%s", label, from);
    }
    if (n < GCP_SA_ID_MIN || n > GCP_SA_ID_MAX) {
        return profile__fail_at(
            ld, node, CG_EINVAL,
            "%s '%s'%s is %zu characters, GCP allows %d to %d for a service account "
            "id%s",
            label, SHOWN(sh, value), from, n, GCP_SA_ID_MIN, GCP_SA_ID_MAX,
            from[0] && n > GCP_SA_ID_MAX ? ": keep the cluster's part short with a filter, as in "
                                           "'{{cluster.name | sha1 | trunc 8}}'"
                                         : "");
    }
    if (!gcp_sa_id_ok(value)) {
        return profile__fail_at(
            ld, node, CG_EINVAL,
            "%s '%s'%s is not a valid GCP service account id: lower-case letters, "
            "digits and '-', starting with a letter and ending with a letter or "
            "digit%s",
            label, SHOWN(sh, value), from, from[0] ? "; " GCP_FILTER_HINT : "");
    }
    return 0;
}

static int service_account(struct loader *ld, const yaml_node_t *gcp, const yaml_node_t *sa,
                           struct profile_gcp *g)
{
    yaml_node_t *node = NULL;
    int rc;
    if (sa == NULL) {
        return profile__fail_at(
            ld, gcp, CG_EINVAL,
            "gcp.serviceAccount is missing: the gcp section needs a service account "
            "with an 'id'");
    }
    cg_yaml_where(&ld->y, "gcp.serviceAccount");
    if ((rc = profile__field_str(ld, sa, "id", "gcp.serviceAccount.id", 1, &g->service_account.id,
                                 &node)) < 0) {
        return rc;
    }
    if (g->service_account.id == NULL) {
        return profile__fail_at(ld, sa, CG_EINVAL, "gcp.serviceAccount.id is missing");
    }
    if ((rc = check_sa_id(ld, node, g->service_account.id)) < 0) {
        return rc;
    }
    if ((rc = profile__field_str(ld, sa, "displayName", "gcp.serviceAccount.displayName", 1,
                                 &g->service_account.display_name, &node)) < 0 ||
        (rc = check_bytes(ld, node, "gcp.serviceAccount.displayName",
                          g->service_account.display_name, GCP_DISPLAY_NAME_MAX)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "gcp.serviceAccount");
    if ((rc = profile__field_str(ld, sa, "description", "gcp.serviceAccount.description", 1,
                                 &g->service_account.description, &node)) < 0 ||
        (rc = check_bytes(ld, node, "gcp.serviceAccount.description",
                          g->service_account.description, GCP_SA_DESCRIPTION_MAX)) < 0) {
        return rc;
    }
    return 0;
}

static int custom_role(struct loader *ld, const yaml_node_t *item, const char *at,
                       struct profile_gcp_role *r)
{
    char label[96];
    char sh[SHOWN_MAX];
    char from[SHOWN_MAX + 32];
    yaml_node_t *node = NULL;
    yaml_node_t *seq = NULL;
    int rc;
    if (item->type != YAML_MAPPING_NODE) {
        return profile__fail_at(
            ld, item, CG_EINVAL,
            "%s must be a mapping with 'id', 'title' and 'permissions', not a %s", at,
            cg_yaml_kind(item));
    }
    cg_yaml_where(&ld->y, "%s", at);
    if ((rc = profile__check_keys(ld, item, gcp_role_keys)) < 0) {
        return rc;
    }

    snprintf(label, sizeof(label), "%s.id", at);
    if ((rc = profile__field_str(ld, item, "id", label, 1, &r->id, &node)) < 0) {
        return rc;
    }
    if (r->id == NULL) {
        return profile__fail_at(ld, item, CG_EINVAL, "%s is missing", label);
    }
    if (!gcp_role_id_ok(r->id)) {
        profile__origin(from, sizeof(from), node, r->id);
        return profile__fail_at(
            ld, node, CG_EINVAL,
            "%s '%s'%s is not a valid GCP role id: %d to %d letters, digits, '_' and "
            "'.'%s",
            label, SHOWN(sh, r->id), from, GCP_ROLE_ID_MIN, GCP_ROLE_ID_MAX,
            from[0] ? "; " GCP_FILTER_HINT : "");
    }

    cg_yaml_where(&ld->y, "%s", at);
    snprintf(label, sizeof(label), "%s.title", at);
    if ((rc = profile__field_str(ld, item, "title", label, 1, &r->title, &node)) < 0) {
        return rc;
    }
    if (r->title == NULL || r->title[0] == '\0') {
        return profile__fail_at(ld, node ? node : item, CG_EINVAL, "%s is missing", label);
    }
    if ((rc = check_bytes(ld, node, label, r->title, GCP_ROLE_TITLE_MAX)) < 0) {
        return rc;
    }

    cg_yaml_where(&ld->y, "%s", at);
    snprintf(label, sizeof(label), "%s.description", at);
    if ((rc = profile__field_str(ld, item, "description", label, 1, &r->description, &node)) < 0 ||
        (rc = check_bytes(ld, node, label, r->description, GCP_ROLE_DESCRIPTION_MAX)) < 0) {
        return rc;
    }

    /* Not a template, like aws.mode: a stage is one of GCP's words. */
    cg_yaml_where(&ld->y, "%s", at);
    snprintf(label, sizeof(label), "%s.stage", at);
    if ((rc = profile__field_str(ld, item, "stage", label, 0, &r->stage, &node)) < 0) {
        return rc;
    }
    if (r->stage == NULL && (r->stage = strdup("GA")) == NULL) {
        return oom(ld->err);
    }
    int known = 0;
    for (size_t i = 0; gcp_stages[i] != NULL; i++) {
        known |= strcmp(r->stage, gcp_stages[i]) == 0;
    }
    if (!known) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "%s must be ALPHA, BETA, GA, DEPRECATED, DISABLED or EAP, not '%s'",
                                label, SHOWN(sh, r->stage));
    }

    cg_yaml_where(&ld->y, "%s", at);
    snprintf(label, sizeof(label), "%s.permissions", at);
    if ((rc = cg_yaml_get_seq(&ld->y, item, "permissions", &seq, ld->err)) < 0) {
        return rc;
    }
    if (seq == NULL) {
        return profile__fail_at(ld, item, CG_EINVAL,
                                "%s is missing: a custom role needs at least one permission",
                                label);
    }
    size_t n = cg_yaml_seq_len(seq);
    if (n == 0) {
        return profile__fail_at(ld, seq, CG_EINVAL,
                                "%s is empty: a custom role needs at least one permission", label);
    }
    if (n > GCP_ROLE_PERMISSIONS_MAX) {
        return profile__fail_at(
            ld, seq, CG_EINVAL,
            "%s has %zu permissions, GCP allows %d in a custom role: split it into two "
            "custom roles",
            label, n, GCP_ROLE_PERMISSIONS_MAX);
    }
    if ((rc = string_list(ld, seq, label, check_permission, &r->permissions,
                          &r->permission_count)) < 0) {
        return rc;
    }
    /* GCP keeps includedPermissions as a set; sorted, two lists compare with one pass. */
    qsort(r->permissions, r->permission_count, sizeof(*r->permissions), cmp_str);
    return 0;
}

static int custom_roles(struct loader *ld, const yaml_node_t *gcp, struct profile_gcp *g)
{
    yaml_node_t *seq = NULL;
    char sh[SHOWN_MAX];
    cg_yaml_where(&ld->y, "gcp");
    int rc = cg_yaml_get_seq(&ld->y, gcp, "customRoles", &seq, ld->err);
    size_t n = cg_yaml_seq_len(seq);
    if (rc < 0 || n == 0) {
        return rc;
    }
    if (n > GCP_CUSTOM_ROLES_MAX) {
        return profile__fail_at(
            ld, seq, CG_EINVAL,
            "gcp.customRoles has %zu roles, GCP allows %d custom roles in a project", n,
            GCP_CUSTOM_ROLES_MAX);
    }
    g->custom_roles = calloc(n, sizeof(*g->custom_roles));
    if (g->custom_roles == NULL) {
        return oom(ld->err);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cg_yaml_seq_at(&ld->y, seq, i);
        char at[48];
        snprintf(at, sizeof(at), "gcp.customRoles[%zu]", i);
        g->custom_role_count = i + 1; /* profile_free releases what was filled so far */
        if ((rc = custom_role(ld, item, at, &g->custom_roles[i])) < 0) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(g->custom_roles[j].id, g->custom_roles[i].id) == 0) {
                return profile__fail_at(ld, cg_yaml_map_get(&ld->y, item, "id"), CG_EINVAL,
                                        "%s.id '%s' is used twice", at,
                                        SHOWN(sh, g->custom_roles[i].id));
            }
        }
    }
    return 0;
}

/* A list of strings under `key` of the gcp section. */
static int gcp_list(struct loader *ld, const yaml_node_t *gcp, const char *key, item_check_fn check,
                    char ***out, size_t *count)
{
    yaml_node_t *seq = NULL;
    char at[32];
    cg_yaml_where(&ld->y, "gcp");
    int rc = cg_yaml_get_seq(&ld->y, gcp, key, &seq, ld->err);
    if (rc < 0) {
        return rc;
    }
    snprintf(at, sizeof(at), "gcp.%s", key);
    return string_list(ld, seq, at, check, out, count);
}

static int parse_credential(struct loader *ld, const yaml_node_t *gcp,
                            const struct profile_overrides *ov, enum profile_gcp_credential *out)
{
    char sh[SHOWN_MAX];
    char *s = NULL;
    yaml_node_t *node = NULL;
    *out = PROFILE_GCP_KEY;
    cg_yaml_where(&ld->y, "gcp");
    int rc = profile__field_str(ld, gcp, "credential", "gcp.credential", 0, &s, &node);
    if (rc < 0) {
        return rc;
    }
    if (s != NULL && strcmp(s, "keyless") == 0) {
        *out = PROFILE_GCP_KEYLESS;
    } else if (s != NULL && strcmp(s, "key") != 0) {
        rc = profile__fail_at(ld, node, CG_EINVAL,
                              "gcp.credential must be 'key' or 'keyless', not '%s'", SHOWN(sh, s));
    }
    free(s);
    if (rc == 0 && ov != NULL && ov->gcp_credential != NULL) {
        if (strcmp(ov->gcp_credential, "keyless") == 0) {
            *out = PROFILE_GCP_KEYLESS;
        } else if (strcmp(ov->gcp_credential, "key") == 0) {
            *out = PROFILE_GCP_KEY;
        } else {
            rc = cg_err_set(ld->err, CG_EINVAL,
                            "--gcp-credential must be 'key' or 'keyless', not '%s'",
                            SHOWN(sh, ov->gcp_credential));
        }
    }
    return rc;
}

/* One member field of gcp.keyless, rendered and checked; "" means "not set here". */
static int keyless_member(struct loader *ld, const yaml_node_t *keyless, const char *key,
                          const char *label, char **out)
{
    char sh[SHOWN_MAX];
    yaml_node_t *node = NULL;
    cg_yaml_where(&ld->y, "gcp.keyless");
    int rc = profile__field_str(ld, keyless, key, label, 1, out, &node);
    if (rc < 0) {
        return rc;
    }
    if (*out != NULL && (*out)[0] == '\0') {
        free(*out);
        *out = NULL;
    }
    if (*out != NULL && !gcp_member_ok(*out)) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "%s '%s' is not an IAM member: use " GCP_MEMBER_FORMS, label,
                                SHOWN(sh, *out));
    }
    return 0;
}

static int keyless_members(struct loader *ld, const yaml_node_t *keyless,
                           const struct profile_overrides *ov, struct profile_gcp *g)
{
    char sh[SHOWN_MAX];
    int rc;
    if (ov != NULL && ov->gcp_impersonator != NULL && ov->gcp_impersonator[0] != '\0') {
        if (!gcp_member_ok(ov->gcp_impersonator)) {
            return cg_err_set(ld->err, CG_EINVAL,
                              "--gcp-impersonator '%s' is not an IAM member: use " GCP_MEMBER_FORMS,
                              SHOWN(sh, ov->gcp_impersonator));
        }
        g->impersonator = strdup(ov->gcp_impersonator);
        if (g->impersonator == NULL) {
            return oom(ld->err);
        }
    } else if ((rc = keyless_member(ld, keyless, "impersonator", "gcp.keyless.impersonator",
                                    &g->impersonator)) < 0) {
        return rc;
    }
    if ((rc = keyless_member(ld, keyless, "workloadIdentityUser",
                             "gcp.keyless.workloadIdentityUser", &g->workload_identity_user)) < 0) {
        return rc;
    }
    if (g->impersonator == NULL && g->workload_identity_user == NULL) {
        return cg_err_set(ld->err, CG_EINVAL,
                          "profile '%s': gcp.credential is keyless but no "
                          "gcp.keyless.impersonator or workloadIdentityUser is set: pass "
                          "--gcp-impersonator MEMBER",
                          ld->name);
    }
    return 0;
}

static int parse_gcp(struct loader *ld, const yaml_node_t *gcp, const struct profile_overrides *ov,
                     struct profile_gcp *g)
{
    yaml_node_t *sa = NULL;
    yaml_node_t *keyless = NULL;
    int rc;

    g->present = 1;
    cg_yaml_where(&ld->y, "gcp");
    if ((rc = profile__check_keys(ld, gcp, gcp_keys)) < 0 ||
        (rc = parse_credential(ld, gcp, ov, &g->credential)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "gcp");
    if ((rc = profile__section(ld, gcp, "serviceAccount", "gcp.serviceAccount", gcp_sa_keys, &sa)) <
        0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "gcp");
    if ((rc = profile__section(ld, gcp, "keyless", "gcp.keyless", gcp_keyless_keys, &keyless)) <
            0 ||
        (rc = service_account(ld, gcp, sa, g)) < 0 ||
        (rc = gcp_list(ld, gcp, "services", check_service, &g->services, &g->service_count)) < 0 ||
        (rc = custom_roles(ld, gcp, g)) < 0 ||
        (rc = gcp_list(ld, gcp, "roles", check_predefined_role, &g->roles, &g->role_count)) < 0) {
        return rc;
    }
    if (g->credential == PROFILE_GCP_KEYLESS) {
        return keyless_members(ld, keyless, ov, g);
    }
    /* With a key, gcp.keyless is not used: its templates are checked, not rendered, so a typo
     * is found before someone switches to keyless. */
    cg_yaml_where(&ld->y, "gcp.keyless");
    if ((rc = profile__check_syntax(ld, keyless, "impersonator", "gcp.keyless.impersonator")) < 0 ||
        (rc = profile__check_syntax(ld, keyless, "workloadIdentityUser",
                                    "gcp.keyless.workloadIdentityUser")) < 0) {
        return rc;
    }
    return 0;
}

/* A lower-case DNS label: the name goes into reports, tags and Kubernetes objects. */
static int profile_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

static int fixed_field(struct loader *ld, const yaml_node_t *root, const char *key,
                       const char *want)
{
    char sh[SHOWN_MAX];
    char *s = NULL;
    yaml_node_t *node = NULL;
    int rc = profile__field_str(ld, root, key, key, 0, &s, &node);
    if (rc < 0) {
        return rc;
    }
    if (s == NULL) {
        rc = profile__fail_at(ld, root, CG_EINVAL,
                              "'%s' is missing: a profile starts with '%s: %s'", key, key, want);
    } else if (strcmp(s, want) != 0) {
        rc = profile__fail_at(ld, node, CG_EINVAL, "'%s' must be '%s', not '%s'", key, want,
                              SHOWN(sh, s));
    }
    free(s);
    return rc;
}

int profile_load_buffer(struct profile **out, const char *buf, size_t len, const char *source,
                        const char *dir, const struct profile_vars *vars,
                        const struct profile_overrides *ov, struct cg_err *err)
{
    struct loader ld;
    struct profile *p = NULL;
    yaml_node_t *node = NULL;
    yaml_node_t *aws = NULL;
    yaml_node_t *gcp = NULL;
    yaml_node_t *azure = NULL;
    yaml_node_t *osc = NULL;
    char sh[SHOWN_MAX];
    memset(&ld, 0, sizeof(ld));
    ld.dir = dir;
    ld.vars = vars;
    ld.err = err;
    *out = NULL;
    if (source == NULL) {
        source = "<profile>";
    }
    int rc = cg_yaml_load(&ld.y, buf, len, source, err);
    if (rc < 0) {
        return rc;
    }
    yaml_node_t *root = cg_yaml_root(&ld.y);
    if (cg_yaml_is_null(root)) {
        rc = cg_yaml_errorf(&ld.y, NULL, err, CG_EINVAL, "the profile is empty");
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = cg_yaml_errorf(&ld.y, root, err, CG_EINVAL, "a profile must be a mapping, not a %s",
                            cg_yaml_kind(root));
        goto out;
    }
    if ((rc = profile__check_keys(&ld, root, top_keys)) < 0 ||
        (rc = fixed_field(&ld, root, "apiVersion", API_VERSION)) < 0 ||
        (rc = fixed_field(&ld, root, "kind", KIND)) < 0) {
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = oom(err);
        goto out;
    }
    if ((rc = profile__field_str(&ld, root, "name", "name", 0, &p->name, &node)) < 0) {
        goto out;
    }
    if (p->name == NULL) {
        rc = profile__fail_at(&ld, root, CG_EINVAL, "'name' is missing");
        goto out;
    }
    if (!profile_name_ok(p->name)) {
        rc = profile__fail_at(
            &ld, node, CG_EINVAL,
            "name '%s' must be a lower-case DNS label: letters, digits and '-', at most "
            "63",
            SHOWN(sh, p->name));
        goto out;
    }
    snprintf(ld.name, sizeof(ld.name), "%s", p->name);
    if ((rc = profile__field_str(&ld, root, "description", "description", 1, &p->description,
                                 NULL)) < 0 ||
        (rc = cg_yaml_get_map(&ld.y, root, "aws", &aws, err)) < 0 ||
        (rc = cg_yaml_get_map(&ld.y, root, "gcp", &gcp, err)) < 0 ||
        (rc = cg_yaml_get_map(&ld.y, root, "azure", &azure, err)) < 0 ||
        (rc = cg_yaml_get_map(&ld.y, root, "outscale", &osc, err)) < 0) {
        goto out;
    }
    if (aws == NULL && gcp == NULL && azure == NULL && osc == NULL) {
        rc = profile__fail_at(&ld, root, CG_EINVAL,
                              "the profile has no provider section ('aws', 'gcp', 'azure' or "
                              "'outscale'): nothing to grant");
        goto out;
    }
    if ((aws != NULL && (rc = parse_aws(&ld, aws, ov, &p->aws)) < 0) ||
        (gcp != NULL && (rc = parse_gcp(&ld, gcp, ov, &p->gcp)) < 0) ||
        (azure != NULL && (rc = profile__parse_azure(&ld, azure, ov, &p->azure)) < 0) ||
        (osc != NULL && (rc = profile__parse_outscale(&ld, osc, &p->outscale)) < 0)) {
        goto out;
    }
    p->source = strdup(source);
    if (p->source == NULL) {
        rc = oom(err);
        goto out;
    }
    *out = p;
    p = NULL;
out:
    profile_free(p);
    cg_yaml_cleanup(&ld.y);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "unknown profile 'x': ..." with the built-ins found in dir. */
static int unknown_builtin(const char *name, const char *dir, struct cg_err *err)
{
    char sh[SHOWN_MAX];
    char list[384] = "";
    char *names[64];
    size_t n = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    if (d != NULL) {
        struct dirent *e;
        while (n < sizeof(names) / sizeof(names[0]) && (e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.' && ends_with(e->d_name, ".yaml")) {
                names[n] = strndup(e->d_name, strlen(e->d_name) - 5);
                n += names[n] != NULL;
            }
        }
        closedir(d);
    }
    qsort(names, n, sizeof(names[0]), cmp_names);
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
        free(names[i]);
    }
    if (n == 0) {
        return cg_err_set(err, CG_EINVAL,
                          "unknown profile '%s': no built-in profiles in '%s' (give the path of a "
                          "profile file)",
                          SHOWN(sh, name), dir ? dir : "");
    }
    return cg_err_set(err, CG_EINVAL,
                      "unknown profile '%s': the built-in profiles are %s (or give the path of a "
                      "profile file)",
                      SHOWN(sh, name), list);
}

int profile_load(struct profile **out, const char *name_or_path, const char *builtin_dir,
                 const struct profile_vars *vars, const struct profile_overrides *ov,
                 struct cg_err *err)
{
    char *path = NULL;
    char *dir = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    if (name_or_path == NULL || name_or_path[0] == '\0') {
        return cg_err_set(err, CG_EINVAL, "no profile given: pass --profile NAME or a path");
    }
    int builtin = strchr(name_or_path, '/') == NULL && !ends_with(name_or_path, ".yaml") &&
                  !ends_with(name_or_path, ".yml");
    if (builtin) {
        if (builtin_dir == NULL || name_or_path[0] == '.') {
            return unknown_builtin(name_or_path, builtin_dir, err);
        }
        size_t n = strlen(builtin_dir) + strlen(name_or_path) + 7;
        path = malloc(n);
        if (path == NULL) {
            return oom(err);
        }
        snprintf(path, n, "%s/%s.yaml", builtin_dir, name_or_path);
    } else {
        path = strdup(name_or_path);
        if (path == NULL) {
            return oom(err);
        }
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        rc = cg_err_set(err, CG_EINVAL, "cannot load profile '%s': not a regular file", path);
        goto out;
    }
    rc = cg_file_read(path, PROFILE_MAX, &buf, &len, err);
    if (rc == CG_ENOTFOUND && builtin) {
        rc = unknown_builtin(name_or_path, builtin_dir, err);
        goto out;
    }
    if (rc < 0) {
        /* a profile that is not there is bad input, like a wrong flag */
        rc = rc == CG_ENOTFOUND ? CG_EINVAL : rc;
        if (err != NULL) {
            err->code = rc;
        }
        goto out;
    }
    dir = cg_dirname(path);
    if (dir == NULL) {
        rc = oom(err);
        goto out;
    }
    rc = profile_load_buffer(out, buf, len, path, dir, vars, ov, err);
out:
    free(path);
    free(dir);
    free(buf);
    return rc;
}

static void policies_free(struct profile_policy *p, size_t n)
{
    for (size_t i = 0; p != NULL && i < n; i++) {
        free(p[i].name);
        free(p[i].description);
        free(p[i].document);
    }
    free(p);
}

static void strings_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void gcp_free(struct profile_gcp *g)
{
    free(g->service_account.id);
    free(g->service_account.display_name);
    free(g->service_account.description);
    strings_free(g->services, g->service_count);
    for (size_t i = 0; g->custom_roles != NULL && i < g->custom_role_count; i++) {
        struct profile_gcp_role *r = &g->custom_roles[i];
        free(r->id);
        free(r->title);
        free(r->description);
        free(r->stage);
        strings_free(r->permissions, r->permission_count);
    }
    free(g->custom_roles);
    strings_free(g->roles, g->role_count);
    free(g->impersonator);
    free(g->workload_identity_user);
}

void profile_free(struct profile *p)
{
    if (p == NULL) {
        return;
    }
    gcp_free(&p->gcp);
    profile__azure_free(&p->azure);
    profile__outscale_free(&p->outscale);
    struct profile_aws *a = &p->aws;
    free(a->name);
    free(a->path);
    for (size_t i = 0; a->managed_policy_arns != NULL && i < a->managed_count; i++) {
        free(a->managed_policy_arns[i]);
    }
    free(a->managed_policy_arns);
    policies_free(a->customer_policies, a->customer_count);
    policies_free(a->inline_policies, a->inline_count);
    free(a->trust_principal);
    free(a->external_id);
    free(a->trust_policy);
    for (size_t i = 0; a->tags != NULL && i < a->tag_count; i++) {
        free(a->tags[i].key);
        free(a->tags[i].value);
    }
    free(a->tags);
    free(p->name);
    free(p->description);
    free(p->source);
    free(p);
}

int profile_require(const struct profile *p, const char *provider, struct cg_err *err)
{
    char sh[SHOWN_MAX];
    const char *name = p != NULL && p->name != NULL ? p->name : "";
    if (p == NULL) {
        return cg_err_set(err, CG_EINVAL, "no profile");
    }
    if (provider == NULL || provider[0] == '\0' || strcmp(provider, "unknown") == 0) {
        return cg_err_set(err, CG_EINVAL,
                          "profile '%s': the cluster's cloud provider is not known: pass "
                          "--provider aws, --provider gcp, --provider azure or --provider "
                          "outscale",
                          name);
    }
    int aws = strcmp(provider, "aws") == 0;
    int gcp = strcmp(provider, "gcp") == 0;
    int azure = strcmp(provider, "azure") == 0;
    int osc = strcmp(provider, "outscale") == 0;
    if ((aws && p->aws.present) || (gcp && p->gcp.present) || (azure && p->azure.present) ||
        (osc && p->outscale.present)) {
        return 0;
    }
    if (!aws && !gcp && !azure && !osc) {
        return cg_err_set(err, CG_EINVAL,
                          "profile '%s' has no %s section: grant profiles have aws, gcp, azure "
                          "and outscale sections only",
                          name, SHOWN(sh, provider));
    }
    return cg_err_set(err, CG_EINVAL,
                      "profile '%s' has no %s section: the cluster runs on %s; add one to the "
                      "profile (docs/profiles.md) or use a profile that has one",
                      name, provider,
                      aws     ? "AWS"
                      : gcp   ? "GCP"
                      : azure ? "Azure"
                              : "OUTSCALE");
}
