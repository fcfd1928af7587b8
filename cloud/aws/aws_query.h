/* aws_query: the AWS Query protocol (IAM 2010-05-08, STS 2011-06-15) on the cg_http engine.
 *
 * A call is an Action plus parameters, POSTed as a form body and signed with SigV4 (IAM always
 * for us-east-1 / "iam" on the global endpoint, also when the endpoint is overridden; STS for
 * its region). The XML answer is turned into JSON generically (no service model), matching
 * elements by local name:
 * - an element whose child elements are all <member> becomes an array of them;
 * - an element with other child elements becomes an object keyed by local name; a repeated
 *   name keeps the last one; text between child elements is ignored;
 * - an element without child elements becomes a string of its text, "" when empty. An empty
 *   list (<Users/>) therefore arrives as "": callers treat any non-array as an empty list;
 * - every value is a string ("true", "3600"): callers convert what they need.
 * Policy documents in answers (values of Document, PolicyDocument, AssumeRolePolicyDocument,
 * at any depth) are percent-decoded (RFC 3986: '+' stays '+'; a value that would not decode to
 * UTF-8 is kept as sent). Errors keep AWS's Code and Message. Bodies are never logged or put
 * into messages (CreateAccessKey answers carry a secret). */
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
    long consistency_ms;  /* budget for AWS_RETRY_* below; 0 = 30 s */
    long poll_ms;         /* first wait between consistency retries (doubling, with jitter,
                             capped at 5 s); 0 = 300 ms */
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
 * without output). err: NULL on success (aerr NULL too); else a one-line message such as
 * "IAM CreateUser 'cast-eks-prod': LimitExceeded: Cannot exceed quota for UsersPerAccount"
 * (the resource is the first of UserName, RoleName, PolicyArn, PolicyName given; no other
 * parameter value ever appears) and aerr (never NULL then) holds the status and the code.
 * err->code: CG_ENOTFOUND for NoSuchEntity, CG_EAUTH for credential and signature refusals
 * (AccessDenied, InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken, ...), CG_ESTATUS
 * for other AWS errors and for error statuses whose body is no AWS error document ("IAM
 * GetRole 'r': invalid response (HTTP 502)"), CG_EINVAL for a 2xx body that cannot be parsed,
 * and the engine's codes (CG_EHTTP, CG_ETIMEDOUT, CG_ETOOBIG, CG_ECANCELED) or the credential
 * chain's, prefixed with "IAM <Action> '<resource>': ".
 * Throttling, ThrottlingException, RequestLimitExceeded, TooManyRequestsException,
 * PriorRequestNotComplete, RequestTimeout, ServiceFailure, ServiceUnavailable,
 * InternalFailure, ConcurrentModification, 429, 5xx and transport errors are retried with
 * backoff (cg_http's attempts) before they are reported; LimitExceeded never is. On
 * ExpiredToken/ExpiredTokenException the credentials are invalidated, fetched again and the
 * call sent once more. */
typedef void aws_query_cb(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                          void *data);

/* 0: cb runs exactly once from the loop. <0: err filled, cb never runs (CG_EINVAL for a
 * NULL client/callback or an action name that is not alphanumeric). POSTs the form to
 * <endpoint>/ (a path prefix of the endpoint is kept) after aws_creds_get; each attempt is
 * signed afresh. Debug logs name the action and resource only. */
int aws_query_call(struct aws_query_client *c, const char *action, const struct aws_param *params,
                   size_t nparams, aws_query_cb *cb, void *data, struct cg_err *err);

/* IAM is eventually consistent: a user, role or policy created moments ago may be unknown to
 * the next call for a few seconds. Conditions retried on timers (backoff with jitter, within
 * consistency_ms, each send with the full timeout_ms) instead of reported: */
enum {
    AWS_RETRY_NOT_FOUND = 1 << 0,         /* NoSuchEntity */
    AWS_RETRY_INVALID_PRINCIPAL = 1 << 1, /* MalformedPolicyDocument "Invalid principal": a
                                             trust policy naming a principal IAM cannot see
                                             yet (one that never exists fails after the
                                             budget) */
};

/* aws_query_call with flags; once the budget is spent the error is the last answer's, with
 * " (still <code> after N retries over X s)" appended. */
int aws_query_call_flags(struct aws_query_client *c, const char *action,
                         const struct aws_param *params, size_t nparams, unsigned flags,
                         aws_query_cb *cb, void *data, struct cg_err *err);

/* Follows IsTruncated/Marker until the end and delivers {"<list_key>": [all members]} (other
 * fields from the last page). Loops on IsTruncated, never on item counts. A Marker in params
 * starts the walk there. Fails (CG_EINVAL) when a truncated page has no Marker, when the
 * service repeats a Marker, or after 1000 pages; an error on any page is the result. */
int aws_query_call_all(struct aws_query_client *c, const char *action,
                       const struct aws_param *params, size_t nparams, const char *list_key,
                       aws_query_cb *cb, void *data, struct cg_err *err);

/* Counters (for "a rerun makes zero mutating calls" tests and the benchmark), one per
 * aws_query_call (each page of aws_query_call_all counts; retries do not). Actions that
 * start with Get, List or are GetCallerIdentity count as reads. */
struct aws_query_stats {
    unsigned long reads;
    unsigned long writes;
};
void aws_query_get_stats(const struct aws_query_client *c, struct aws_query_stats *out);

/* Pure helpers, exposed for tests and fuzzing. */
/* Parses a Query API response body into *result (new reference) or fills aerr (may be NULL)
 * and err, with the codes and messages described at aws_query_cb but without a resource
 * ("IAM CreateUser: ..."); the service in messages is STS for STS's actions, else IAM.
 * libxml2 without network access; a document with a DTD is refused (no entity is ever
 * expanded or fetched). Bodies over 8 MiB are CG_ETOOBIG; nesting over 64 levels is
 * invalid. */
int aws_query_parse_response(const char *body, size_t len, long status, const char *action,
                             json_t **result, struct aws_error *aerr, struct cg_err *err);
/* application/x-www-form-urlencoded body "Action=..&Version=..&<params in order>" with RFC
 * 3986 encoding of every name and value (only A-Za-z0-9-_.~ raw, space is %20); a NULL
 * value is sent empty ("Name=", an empty list). New string; NULL when out of memory or over
 * 16 MiB. */
char *aws_query_encode_form(const char *action, const char *version, const struct aws_param *params,
                            size_t nparams);

#endif
