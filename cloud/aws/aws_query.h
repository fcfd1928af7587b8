/* aws_query: the AWS Query protocol (IAM 2010-05-08, STS 2011-06-15) on the cg_http engine.
 *
 * A call is an Action plus parameters, POSTed as a form body and signed with SigV4 (IAM always
 * for us-east-1 / "iam" on the global endpoint, also when the endpoint is overridden; STS for
 * its region). The XML answer is turned into JSON generically: the <ActionResult> element
 * becomes an object, a <member> list becomes an array, text becomes a string. Policy
 * documents in answers (Document, PolicyDocument, AssumeRolePolicyDocument) are
 * percent-decoded. Errors keep AWS's Code and Message. */
#ifndef CG_AWS_QUERY_H
#define CG_AWS_QUERY_H

#include "../../agent/core/cg_err.h"

#include <jansson.h>
#include <stddef.h>

struct cg_http;
struct aws_creds_provider;
struct aws_query_client;

struct aws_query_config {
    const char *service;  /* "iam" | "sts" (signing name) */
    const char *version;  /* "2010-05-08" | "2011-06-15" */
    const char *endpoint; /* base URL, e.g. "https://iam.amazonaws.com" */
    const char *region;   /* signing region */
    long timeout_ms;      /* per call, all attempts; 0 = 30 s */
};

/* Borrows h and creds (they outlive the client); copies cfg's strings. */
int aws_query_client_new(struct aws_query_client **out, struct cg_http *h,
                         struct aws_creds_provider *creds, const struct aws_query_config *cfg,
                         struct cg_err *err);
void aws_query_client_free(struct aws_query_client *c);

struct aws_param {
    const char *name; /* "UserName", "Tags.member.1.Key" */
    const char *value;
};

/* What AWS said when it refused: code "" when the failure was not an AWS error document. */
struct aws_error {
    long status;
    char code[64]; /* "NoSuchEntity", "EntityAlreadyExists", "LimitExceeded", ... */
    char message[400];
};

/* result: the <ActionResult> as JSON (borrowed for the callback; an empty object for actions
 * without output). err: NULL on success; else a one-line message such as
 * "IAM CreateUser 'cast-eks-prod': LimitExceeded: Cannot exceed quota for UsersPerAccount"
 * (the resource is the first of UserName, RoleName, PolicyArn, PolicyName given) and aerr
 * holds the code. Throttling, ServiceFailure, ConcurrentModification, 5xx and transport
 * errors are retried with backoff before they are reported; LimitExceeded never is. */
typedef void aws_query_cb(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                          void *data);

/* 0: cb runs exactly once from the loop. <0: err filled, cb never runs. */
int aws_query_call(struct aws_query_client *c, const char *action, const struct aws_param *params,
                   size_t nparams, aws_query_cb *cb, void *data, struct cg_err *err);

/* Follows IsTruncated/Marker until the end and delivers {"<list_key>": [all members]} (other
 * fields from the last page). Loops on IsTruncated, never on item counts. */
int aws_query_call_all(struct aws_query_client *c, const char *action,
                       const struct aws_param *params, size_t nparams, const char *list_key,
                       aws_query_cb *cb, void *data, struct cg_err *err);

/* Counters (for "a rerun makes zero mutating calls" tests and the benchmark). Actions that
 * start with Get, List or are GetCallerIdentity count as reads. */
struct aws_query_stats {
    unsigned long reads;
    unsigned long writes;
};
void aws_query_get_stats(const struct aws_query_client *c, struct aws_query_stats *out);

/* Pure helpers, exposed for tests and fuzzing. */
/* Parses a Query API response body into *result (new reference) or fills aerr. */
int aws_query_parse_response(const char *body, size_t len, long status, const char *action,
                             json_t **result, struct aws_error *aerr, struct cg_err *err);
/* application/x-www-form-urlencoded body with RFC 3986 encoding; new string. */
char *aws_query_encode_form(const char *action, const char *version, const struct aws_param *params,
                            size_t nparams);

#endif
