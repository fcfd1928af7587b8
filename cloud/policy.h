/* policy: IAM-style policy documents compared by meaning, not by bytes.
 *
 * AWS returns documents re-serialised (and percent-encoded, which aws_query undoes): key order,
 * whitespace, a one-element list for a string, the order of actions and resources, the case of
 * action names all change without changing what the policy allows. Comparing normalised forms
 * gives no false drift and misses no real drift. */
#ifndef CG_POLICY_H
#define CG_POLICY_H

#include "../agent/core/cg_err.h"

#include <jansson.h>

/* Returns a new normalised copy of a policy document: Statement always a list; Action,
 * NotAction, Resource, NotResource, Principal values and Condition values always sorted lists
 * without duplicates; action names lower-cased (IAM treats them case-insensitively); statements
 * sorted. NULL with err on a document that is not a policy.
 * In detail (docs/profiles.md, "Policy comparison"):
 * - an absent Version becomes "2008-10-17", which is what IAM assumes;
 * - Sid is kept: it is part of what IAM stores;
 * - a Principal "*" stays the string "*"; {"AWS": "x"} becomes {"AWS": ["x"]};
 * - condition values that are numbers or booleans become strings (IAM compares 10 and "10"
 *   alike); an operator with no keys and an empty Condition are dropped;
 * - resources, principals, condition keys and values keep their case;
 * - identical statements collapse into one.
 * Element names outside the policy grammar (a typo such as "Actions") are refused, as IAM does,
 * and so are keys containing a NUL character. doc is borrowed; the result may share string
 * nodes with it. */
json_t *policy_normalize(json_t *doc, struct cg_err *err);

/* What a document is for: an identity policy (attached to a user or role: needs Resource, must
 * not name a Principal) or a role's trust policy (needs Principal, names no Resource). */
enum policy_kind { POLICY_IDENTITY = 0, POLICY_TRUST };

/* Checks that doc is a policy that IAM would accept for `kind`: it normalises, has a Version,
 * and its actions look like "service:Action" and its resources like ARNs or "*". Messages name
 * the statement by its index in doc ("Statement[2]: ..."). 0 or CG_EINVAL (CG_ENOMEM). */
int policy_validate(json_t *doc, enum policy_kind kind, struct cg_err *err);

/* The canonical text of a policy: normalised, compact, keys sorted. Two documents mean the same
 * exactly when their canonical texts are equal, so this is what drift reports can show and
 * store. A new string the caller frees; NULL with err (CG_EINVAL, CG_ENOMEM). */
char *policy_normalize_text(const char *text, struct cg_err *err);

/* *equal = 1 when the two documents (JSON text) mean the same. CG_EINVAL when either is not
 * valid policy JSON (err names which). */
int policy_equal_text(const char *a, const char *b, int *equal, struct cg_err *err);

/* policy_equal_text for a cloud whose policies are case-sensitive throughout (OUTSCALE EIM:
 * "api:readvms" is not "api:ReadVms"): action names keep their case. */
int policy_equal_text_exact(const char *a, const char *b, int *equal, struct cg_err *err);

/* The size IAM checks against its quotas: the number of non-whitespace characters (space, tab,
 * CR, LF are not counted; a multi-byte UTF-8 character counts once). */
size_t policy_size_nonspace(const char *doc);

#endif
