/* Internal to the profile loader (agent/profile*.c): its state and the helpers every section
 * uses, so that a cloud's section can live in a file of its own (profile_azure.c,
 * profile_outscale.c). Nothing outside the loader includes this. */
#ifndef CG_PROFILE_INT_H
#define CG_PROFILE_INT_H

#include "cg_err.h"
#include "cg_yaml.h"
#include "profile.h"

#include <stddef.h>

/* A value quoted in a message: one line, bounded. */
#define SHOWN_MAX     96
#define SHOWN(buf, s) cg_yaml_printable((buf), sizeof(buf), (s) ? (s) : "")

struct loader {
    struct cg_yaml y;
    const char *dir; /* policy files resolve against it; NULL: documents must be inline */
    const struct profile_vars *vars;
    char name[72]; /* the profile's name, for messages */
    struct cg_err *err;
};

/* cg_yaml_check_keys, with empty keys refused first. */
int profile__check_keys(struct loader *ld, const yaml_node_t *map, const char *const *allowed);

/* A mapping under `key`: typed and checked for unknown keys, with `label` as the where label of
 * the typed getters that follow. *out is NULL when absent. */
int profile__section(struct loader *ld, const yaml_node_t *parent, const char *key,
                     const char *label, const char *const *keys, yaml_node_t **out);

/* CG_EINVAL (or `code`) at node's position, "<file>:<line>:<col>: <message>": the message
 * carries the full dotted field name, so the where label is left out. Returns code. */
int profile__fail_at(struct loader *ld, const yaml_node_t *node, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Renders a template of the profile into *out. A syntax error is the profile's fault and has a
 * position; a value the cluster does not reveal is not, so that message names the profile,
 * `label` and what supplies the value ("profile 'x': azure.application.displayName needs
 * {{cluster.name}}, which this cluster does not reveal: ..."). The supplier named depends on
 * the section `label` starts with ("gcp.", "azure.", "outscale."). */
int profile__render_at(struct loader *ld, const yaml_node_t *node, const char *label,
                       const char *tmpl, char **out);

/* For a field that is not used with the choices made (aws.role in user mode, gcp.keyless with
 * a key): the value is typed and its template syntax checked, but it is not rendered (a value
 * it needs may be missing, and nobody needs it). */
int profile__check_syntax(struct loader *ld, const yaml_node_t *map, const char *key,
                          const char *label);

/* A string field: typed, then rendered when do_render (else copied). *out is NULL when the
 * field is absent or null; *node (when node is not NULL) is the value's node or NULL. */
int profile__field_str(struct loader *ld, const yaml_node_t *map, const char *key,
                       const char *label, int do_render, char **out, yaml_node_t **node);

/* A whole number of days (lifetimes), plain digits, at most 6 of them: 1 with *out set, 0 when
 * the node is absent or null (*out untouched), -1 when it is not such a number. */
int profile__days(const yaml_node_t *n, long *out);

/* " (rendered from '<template>')" when a template made `value`, else "": for messages. */
const char *profile__origin(char *dst, size_t cap, const yaml_node_t *node, const char *value);

/* A name after rendering: 1..max of letters, digits and +=,.@_-, the rule IAM and OUTSCALE share
 * for users and policies. `service` names the cloud in messages ("IAM", "OUTSCALE"), `what` the
 * kind of name ("user", "policy"); a name too long for a template suggests a filter. */
int profile__check_name(struct loader *ld, const yaml_node_t *node, const char *label,
                        const char *value, size_t max, const char *service, const char *what);

/* Loads (a file beside the profile, JSON text or a YAML mapping), renders and checks one
 * identity policy document (policy_validate, POLICY_IDENTITY). *text is the result, compact JSON
 * in the author's key order, as it will be sent; *size its policy_size_nonspace. Messages start
 * with what `from` receives (when not NULL; from_cap bytes): `label`, and for a file its name,
 * "aws.customerPolicies[0].document (cast-eks-policy.json)". Quotas are the caller's to check. */
int profile__policy_document(struct loader *ld, const yaml_node_t *node, const char *label,
                             char **text, size_t *size, char *from, size_t from_cap);

/* The azure section (profile_azure.c). Fills *z (z->present = 1); on an error what was filled
 * so far is released by profile__azure_free. */
int profile__parse_azure(struct loader *ld, const yaml_node_t *azure,
                         const struct profile_overrides *ov, struct profile_azure *z);
void profile__azure_free(struct profile_azure *z);

/* The outscale section (profile_outscale.c). Fills *o (o->present = 1); on an error what was
 * filled so far is released by profile__outscale_free. */
int profile__parse_outscale(struct loader *ld, const yaml_node_t *osc, struct profile_outscale *o);
void profile__outscale_free(struct profile_outscale *o);

#endif
