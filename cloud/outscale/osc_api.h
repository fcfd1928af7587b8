/* osc_api: calls to the OUTSCALE API (protocols.md 4.1-4.3) on the cg_http engine: every call
 * is POST <endpoint>/<Action> with a JSON object body, signed OSC4-HMAC-SHA256 (aws_sigv4 with
 * the OSC4 constants, service "api", the region of the credentials) in the engine's sign hook,
 * so every retry carries a fresh X-Osc-Date.
 *
 * Why the OUTSCALE API and not EIM: every call cloudgrant needs exists there (users, policies
 * and their versions, links, access keys with an expiration date and a state, the account's
 * API access policy, which says whether keys must expire); EIM has no ReadApiAccessPolicy and
 * no key expiration, answers in XML, and Outscale recommends the OUTSCALE API for new code. One
 * API means one signature scheme and one error shape.
 *
 * Errors keep Outscale's shape: {"Errors":[{"Code":"<digits>","Type":"<category>","Details":
 * "..."}],"ResponseContext":{"RequestId":"..."}} (or application/problem+json {"title",
 * "detail", "status"}). Bodies are never logged or put into messages (CreateAccessKey answers
 * with the secret key). */
#ifndef CG_OSC_API_H
#define CG_OSC_API_H

#include "../../agent/core/cg_err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct cg_http;
struct osc_api;
struct osc_credentials;

struct osc_api_config {
    long timeout_ms;         /* per request sent, the engine's attempts included; 0 = 30 s */
    long consistency_ms;     /* budget for OSC_RETRY_* below; 0 = 60 s (Outscale: a link or a policy
                                takes up to 15 s to apply) */
    long poll_ms;            /* first wait between consistency retries (doubling, with jitter,
                                capped at 5 s); 0 = 500 ms */
    int allow_insecure_http; /* http:// to a non-loopback endpoint */
    int64_t (*now)(void);    /* signing clock, epoch seconds; NULL = time(2) */
};

/* Copies what it needs from creds (secrets wiped on free). Borrows h. CG_EINVAL for an
 * endpoint that is plain http:// to a non-loopback host without allow_insecure_http.
 * osc_api_free is NULL-safe; free only when no call is in flight. */
int osc_api_new(struct osc_api **out, struct cg_http *h, const struct osc_credentials *creds,
                const struct osc_api_config *cfg, struct cg_err *err);
void osc_api_free(struct osc_api *c);
const char *osc_api_endpoint(const struct osc_api *c); /* for messages and tests */
const char *osc_api_region(const struct osc_api *c);

struct osc_error {
    long status;       /* HTTP status; 0 when no answer arrived */
    char code[16];     /* Errors[0].Code, digits only, "" when absent */
    char type[64];     /* Errors[0].Type ("InvalidResource", "ResourceConflict", ...) */
    char details[400]; /* Errors[0].Details, one printable line, cut with "..." */
    char request_id[64];
};

/* A conflict: HTTP 409 or Type ResourceConflict (the thing already exists, or is in use). */
int osc_error_is_conflict(const struct osc_error *e);

/* Conditions retried on timers (backoff with jitter, within consistency_ms) instead of
 * reported: */
enum {
    OSC_RETRY_NOT_FOUND = 1 << 0, /* CG_ENOTFOUND: a user or policy just made is not yet
                                     visible to this call */
    OSC_RETRY_CONFLICT = 1 << 1,
    OSC_SEND_ONCE = 1 << 2,       /* not idempotent (CreateAccessKey): a transport failure
                                     after the request may have arrived is reported, not
                                     retried (cg_http_req_set_send_once) */  /* a conflict: a link or unlink still being applied (a
                                     DeleteUser or DeletePolicy right after an unlink) */
};

/* result: the answer JSON (borrowed for the callback). err: NULL on success (oerr NULL too);
 * else a one-line message "OUTSCALE <label>: <Type> (<Code>): <Details>" (for example
 * "OUTSCALE create user 'platform-access-prod': ResourceConflict (9073): ...") and oerr
 * (never NULL then). err->code: CG_EAUTH for 401, 403 and Type AccessDenied/AuthFailure (the
 * message adds, for a signature refused, that four bad signatures in a row lock the key for a
 * minute: the call is not repeated); CG_ENOTFOUND for 404 and Type InvalidResource; CG_ESTATUS
 * for other API errors and for error statuses without an Outscale error body ("OUTSCALE
 * <label>: invalid response (HTTP 502)"; such a 404 says nothing about the resource, so it is
 * CG_ESTATUS and OSC_RETRY_NOT_FOUND does not wait for it; such a 401 or 403 is still
 * CG_EAUTH); CG_EINVAL for a 2xx body that is not a JSON object; the engine's codes prefixed
 * "OUTSCALE <label>: ". err->http_status is the status. Without a Type the message says
 * "HTTP <status>" instead, and a Code that is not digits but a name (RequestLimitExceeded)
 * stands in for the missing Type. A problem+json body gives its title as type when it is one
 * word, and its detail (with the title when that is not one word) as details. When the
 * consistency budget is spent the last error is delivered, its message ending
 * " (still <not found|conflict> after <n> retries over <time>)".
 * 429, 500, 502, 503, 504 and transport errors are retried by the engine (Retry-After
 * honoured); so is a 400/503 with Type/Code RequestLimitExceeded (Outscale's throttling of
 * identical requests). A 401 is never retried. */
typedef void osc_api_cb(json_t *result, const struct osc_error *oerr, const struct cg_err *err,
                        void *data);

/* 0: cb runs exactly once from the loop. <0: err filled, cb never runs.
 * action: [A-Za-z]{1,64} ("CreateUser"). body: borrowed, a JSON object (else CG_EINVAL),
 * serialised compactly; NULL sends "{}". label: what the call does to what ("create user
 * 'x'"), for messages and debug logs; NULL uses the action. flags: OSC_RETRY_*. Reads are the
 * actions named Read* and CheckAuthentication; everything else counts as a write. */
int osc_api_call(struct osc_api *c, const char *action, json_t *body, const char *label, int flags,
                 osc_api_cb *cb, void *data, struct cg_err *err);

/* A Read* call that pages with FirstItem/ResultsPerPage (ReadUsers, ReadPolicies,
 * ReadLinkedPolicies, ReadPolicyVersions): sends body (borrowed; FirstItem and ResultsPerPage
 * are the function's) page after page while HasMoreItems is true, and delivers
 * {"<list_key>": [all items]}. A page that is not an object, a list that is not an array, a
 * page that adds nothing while HasMoreItems is true, or over 1000 pages is CG_EINVAL; an error
 * on any page is the result. page_size 0 = 100. FirstItem is the number of items received so
 * far (0 for the first page); a page without list_key adds nothing; HasMoreItems absent or
 * null means false, any other non-boolean is CG_EINVAL. Refused at once (CG_EINVAL, cb never
 * runs): an action that is not Read*, a list_key that is not [A-Za-z]{1,64}, a page_size
 * outside 0..1000, a body that is not a JSON object. Each page is one call for the stats. */
int osc_api_call_all(struct osc_api *c, const char *action, json_t *body, const char *list_key,
                     long page_size, const char *label, int flags, osc_api_cb *cb, void *data,
                     struct cg_err *err);

/* Counters, one per logical call (pages count; retries do not). */
struct osc_api_stats {
    unsigned long reads;
    unsigned long writes;
};
void osc_api_get_stats(const struct osc_api *c, struct osc_api_stats *out);

/* Pure helper, exposed for tests and fuzzing: an answer with HTTP `status` into *result (a new
 * reference, 2xx JSON object; an empty body is {}) or oerr (may be NULL) and err ("OUTSCALE
 * <label>: ..."). Bodies over 8 MiB are CG_ETOOBIG; JSON nested over 128 levels, invalid UTF-8
 * and escaped NULs are invalid. */
int osc_api_parse_response(const char *body, size_t len, long status, const char *label,
                           json_t **result, struct osc_error *oerr, struct cg_err *err);

#endif
