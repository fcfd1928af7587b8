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
 * sorted. NULL with err on a document that is not a policy. */
json_t *policy_normalize(json_t *doc, struct cg_err *err);

/* *equal = 1 when the two documents (JSON text) mean the same. CG_EINVAL when either is not
 * valid policy JSON (err names which). */
int policy_equal_text(const char *a, const char *b, int *equal, struct cg_err *err);

/* The size IAM checks against its quotas: the number of non-whitespace characters. */
size_t policy_size_nonspace(const char *doc);

#endif
