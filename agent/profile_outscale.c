/* profile_outscale.c: the outscale section of a grant profile (docs/profiles.md, "The outscale
 * section"): an EIM user, one policy that cloudgrant owns and links to it, and the lifetime of
 * the one access key cloudgrant makes and hands over (protocols.md 4.2). Both the user and the
 * policy live under PROFILE_OSC_PATH, which the reconcile adds: a profile names them only.
 *
 * Names and documents follow the aws section's rules (the helpers of profile_int.h) with
 * OUTSCALE's limits. On top of the identity-policy grammar, a document must say what EIM
 * enforces, and nothing EIM would not: actions of the OUTSCALE API ("api:ReadVms", "api:Read*"),
 * Resource "*" (EIM has no resource-level permissions) and no Condition (EIM has none either),
 * so that what a reviewer reads in the profile is what the account applies. */
#include "profile_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OSC_USER_NAME_MAX      64
#define OSC_POLICY_NAME_MAX    128
#define OSC_DESCRIPTION_MAX    1000
#define OSC_DOCUMENT_MAX       5120 /* non-whitespace characters (CreatePolicy) */
#define OSC_KEY_DAYS_MAX       3650
#define OSC_KEY_DAYS_DEFAULT   365
#define OSC_RENEW_DAYS_DEFAULT 30
#define FROM_MAX               256 /* "outscale.policy.document (<file>)" */

#define ACTION_FORM                                                                                \
    "'api:ACTION' as in 'api:ReadVms', '*' standing for any part of the name as in 'api:Read*' "   \
    "or 'api:*'"

static const char *const osc_keys[] = {"user", "policy", "accessKey", NULL};
static const char *const user_keys[] = {"name", NULL};
static const char *const policy_keys[] = {"name", "description", "document", NULL};
static const char *const key_keys[] = {"lifetimeDays", "renewBeforeDays", NULL};

static int oom(struct cg_err *err)
{
    return cg_err_set(err, CG_ENOMEM, "out of memory");
}

/* A mapping of the outscale section, checked for unknown keys. */
static int osc_section(struct loader *ld, const yaml_node_t *osc, const char *key,
                       const char *const *keys, yaml_node_t **out)
{
    char label[32];
    snprintf(label, sizeof(label), "outscale.%s", key);
    cg_yaml_where(&ld->y, "outscale");
    return profile__section(ld, osc, key, label, keys, out);
}

/* The required 'name' of `map` (the user or the policy), rendered and checked against OUTSCALE's
 * name rule. */
static int name(struct loader *ld, const yaml_node_t *map, const char *where, const char *label,
                size_t max, const char *what, char **out)
{
    yaml_node_t *node = NULL;
    cg_yaml_where(&ld->y, "%s", where);
    int rc = profile__field_str(ld, map, "name", label, 1, out, &node);
    if (rc < 0) {
        return rc;
    }
    if (*out == NULL) {
        return profile__fail_at(ld, node ? node : map, CG_EINVAL, "%s is missing", label);
    }
    return profile__check_name(ld, node, label, *out, max, "OUTSCALE", what);
}

static int user(struct loader *ld, const yaml_node_t *osc, const yaml_node_t *u,
                struct profile_outscale *o)
{
    if (u == NULL) {
        return profile__fail_at(ld, osc, CG_EINVAL,
                                "outscale.user is missing: the outscale section needs a user "
                                "with a 'name'");
    }
    return name(ld, u, "outscale.user", "outscale.user.name", OSC_USER_NAME_MAX, "user",
                &o->user_name);
}

/* "api:" then letters, digits and '*', the first an upper-case letter or '*': an OUTSCALE API
 * action as EIM matches it (case-sensitively: "api:readvms" would match nothing). */
static int action_ok(const char *s)
{
    if (strncmp(s, "api:", 4) != 0) {
        return 0;
    }
    s += 4;
    if (!((*s >= 'A' && *s <= 'Z') || *s == '*')) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '*')) {
            return 0;
        }
    }
    return 1;
}

/* Each value of `elem` (a string or a list of strings, as policy_validate left it) passes ok;
 * else *bad is the first that does not. */
static int values_ok(const json_t *v, int (*ok)(const char *), const char **bad)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; v != NULL && i < n; i++) {
        const char *s = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
        if (s == NULL || !ok(s)) {
            *bad = s ? s : "?";
            return 0;
        }
    }
    return 1;
}

static int is_star(const char *s)
{
    return strcmp(s, "*") == 0;
}

/* What EIM enforces, on a document profile__policy_document has validated and rendered. */
static int check_statements(struct loader *ld, const yaml_node_t *node, const char *from,
                            const char *text)
{
    char sh[SHOWN_MAX];
    json_error_t jerr;
    int rc = 0;
    json_t *doc = json_loads(text, 0, &jerr);
    if (doc == NULL) {
        return oom(ld->err); /* our own serialisation: only memory can fail here */
    }
    const json_t *st = json_object_get(doc, "Statement");
    size_t n = json_is_array(st) ? json_array_size(st) : 1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const json_t *s = json_is_array(st) ? json_array_get(st, i) : st;
        const char *bad = NULL;
        if (json_object_get(s, "Condition") != NULL) {
            rc = profile__fail_at(ld, node, CG_EINVAL,
                                  "%s: Statement[%zu]: OUTSCALE policies have no 'Condition': "
                                  "EIM applies a statement to every resource, whatever its tags",
                                  from, i);
        } else if (json_object_get(s, "NotResource") != NULL) {
            rc = profile__fail_at(ld, node, CG_EINVAL,
                                  "%s: Statement[%zu]: 'NotResource' is not for OUTSCALE: EIM has "
                                  "no resource-level permissions, write \"Resource\": \"*\"",
                                  from, i);
        } else if (!values_ok(json_object_get(s, "Resource"), is_star, &bad)) {
            rc = profile__fail_at(ld, node, CG_EINVAL,
                                  "%s: Statement[%zu]: 'Resource' value '%s' is not \"*\": EIM "
                                  "has no resource-level permissions, so Resource must be \"*\"",
                                  from, i, SHOWN(sh, bad));
        } else if (!values_ok(json_object_get(s, "Action"), action_ok, &bad) ||
                   !values_ok(json_object_get(s, "NotAction"), action_ok, &bad)) {
            rc = profile__fail_at(ld, node, CG_EINVAL,
                                  "%s: Statement[%zu]: '%s' value '%s' is not an OUTSCALE API "
                                  "action: " ACTION_FORM,
                                  from, i,
                                  json_object_get(s, "Action") != NULL ? "Action" : "NotAction",
                                  SHOWN(sh, bad));
        }
    }
    json_decref(doc);
    return rc;
}

static int policy(struct loader *ld, const yaml_node_t *osc, const yaml_node_t *pol,
                  struct profile_outscale *o)
{
    static const char label[] = "outscale.policy.document";
    struct profile_policy *p = &o->policy;
    yaml_node_t *node = NULL;
    char from[FROM_MAX];
    size_t size = 0;
    int rc;
    if (pol == NULL) {
        return profile__fail_at(ld, osc, CG_EINVAL,
                                "outscale.policy is missing: the outscale section needs a policy "
                                "with a 'name' and a 'document'");
    }
    if ((rc = name(ld, pol, "outscale.policy", "outscale.policy.name", OSC_POLICY_NAME_MAX,
                   "policy", &p->name)) < 0) {
        return rc;
    }
    cg_yaml_where(&ld->y, "outscale.policy");
    if ((rc = profile__field_str(ld, pol, "description", "outscale.policy.description", 1,
                                 &p->description, &node)) < 0) {
        return rc;
    }
    if (p->description != NULL && strlen(p->description) > OSC_DESCRIPTION_MAX) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "outscale.policy.description is %zu bytes, at most %d are allowed",
                                strlen(p->description), OSC_DESCRIPTION_MAX);
    }
    node = cg_yaml_map_get(&ld->y, pol, "document");
    if (cg_yaml_is_null(node)) {
        return profile__fail_at(ld, node ? node : pol, CG_EINVAL, "%s is missing", label);
    }
    cg_yaml_where(&ld->y, "outscale.policy");
    if ((rc = profile__policy_document(ld, node, label, &p->document, &size, from, sizeof(from))) <
            0 ||
        (rc = check_statements(ld, node, from, p->document)) < 0) {
        return rc;
    }
    if (size > OSC_DOCUMENT_MAX) {
        return profile__fail_at(ld, node, CG_EINVAL,
                                "%s is %zu characters without whitespace, OUTSCALE allows %d for a "
                                "policy: list fewer actions, or use wildcards such as 'api:Read*'",
                                from, size, OSC_DOCUMENT_MAX);
    }
    return 0;
}

/* The key's lifetime and when to replace it. 0 days is a key without an expiry date (unless the
 * account caps key lifetimes, profile.h), so there is nothing to renew it before. */
static int access_key(struct loader *ld, const yaml_node_t *sect, struct profile_outscale *o)
{
    yaml_node_t *life = cg_yaml_map_get(&ld->y, sect, "lifetimeDays");
    yaml_node_t *renew = cg_yaml_map_get(&ld->y, sect, "renewBeforeDays");
    long *lifetime = &o->key_lifetime_days;
    long *before = &o->key_renew_days;
    *lifetime = OSC_KEY_DAYS_DEFAULT;
    int has = profile__days(life, lifetime);
    if (has < 0 || *lifetime > OSC_KEY_DAYS_MAX) {
        return profile__fail_at(ld, life, CG_EINVAL,
                                "outscale.accessKey.lifetimeDays must be a number of days from 0 "
                                "to %d (0: the key does not expire)",
                                OSC_KEY_DAYS_MAX);
    }
    *before = *lifetime == 0 ? 0 : OSC_RENEW_DAYS_DEFAULT;
    int given = profile__days(renew, before);
    if (*lifetime == 0) {
        if (given < 0 || *before != 0) {
            return profile__fail_at(ld, renew, CG_EINVAL,
                                    "outscale.accessKey.renewBeforeDays must be 0 when "
                                    "lifetimeDays is 0: a key that does not expire is not renewed");
        }
        return 0;
    }
    if (given < 0 || (given > 0 && *before >= *lifetime)) {
        return profile__fail_at(ld, renew, CG_EINVAL,
                                "outscale.accessKey.renewBeforeDays must be a number of days from "
                                "0 to %ld, less than lifetimeDays (%ld): else the key would be "
                                "replaced as soon as it is made",
                                *lifetime - 1, *lifetime);
    }
    if (*before >= *lifetime) {
        return profile__fail_at(ld, life, CG_EINVAL,
                                "outscale.accessKey.lifetimeDays %ld leaves no room for "
                                "renewBeforeDays' default of %d days: set renewBeforeDays below "
                                "%ld",
                                *lifetime, OSC_RENEW_DAYS_DEFAULT, *lifetime);
    }
    return 0;
}

int profile__parse_outscale(struct loader *ld, const yaml_node_t *osc, struct profile_outscale *o)
{
    yaml_node_t *u = NULL;
    yaml_node_t *pol = NULL;
    yaml_node_t *key = NULL;
    int rc;

    o->present = 1;
    cg_yaml_where(&ld->y, "outscale");
    if ((rc = profile__check_keys(ld, osc, osc_keys)) < 0 ||
        (rc = osc_section(ld, osc, "user", user_keys, &u)) < 0 ||
        (rc = osc_section(ld, osc, "policy", policy_keys, &pol)) < 0 ||
        (rc = osc_section(ld, osc, "accessKey", key_keys, &key)) < 0 ||
        (rc = user(ld, osc, u, o)) < 0 || (rc = policy(ld, osc, pol, o)) < 0 ||
        (rc = access_key(ld, key, o)) < 0) {
        return rc;
    }
    return 0;
}

void profile__outscale_free(struct profile_outscale *o)
{
    free(o->user_name);
    free(o->policy.name);
    free(o->policy.description);
    free(o->policy.document);
}
