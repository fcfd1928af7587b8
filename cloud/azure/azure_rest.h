/* azure_rest: JSON calls to Microsoft Graph v1.0 and Azure Resource Manager on the cg_http
 * engine, with a bearer token from azure_auth (the Graph token for Graph, the ARM token for
 * ARM).
 *
 * Endpoints: CLOUDGRANT_AZURE_GRAPH_URL (default https://graph.microsoft.com) and
 * CLOUDGRANT_AZURE_ARM_URL (default https://management.azure.com): a base URL with an
 * optional path prefix, a trailing '/' optional. Paths given to calls are relative to it
 * ("v1.0/applications", "subscriptions/<sub>/providers/Microsoft.Authorization/
 * roleAssignments/<guid>?api-version=2022-04-01"). Plain http:// only on loopback unless
 * allowed. An empty variable counts as unset; a value with a query, a fragment, user
 * information, spaces or control characters is CG_EINVAL.
 *
 * Errors keep the shape both APIs use ({"error":{"code","message",...}}, protocols.md 3.2,
 * 3.3). Bodies are never logged or put into messages (addPassword answers with the secret). */
#ifndef CG_AZURE_REST_H
#define CG_AZURE_REST_H

#include "../../agent/core/cg_err.h"

#include <jansson.h>
#include <stddef.h>

struct cg_http;
struct azure_auth;
struct azure_rest;

enum azure_api { AZURE_API_GRAPH = 0, AZURE_API_ARM, AZURE_API_COUNT };

struct azure_rest_config {
    const char *(*getenv)(const char *name); /* NULL = getenv(3) */
    long timeout_ms;         /* per request sent, the engine's attempts included; 0 = 30 s */
    long consistency_ms;     /* budget for the AZURE_RETRY_* conditions below; 0 = 120 s (Graph
                                replication can take 1-2 min) */
    long poll_ms;            /* first wait between consistency retries (then doubling, with
                                jitter, capped at 5 s); 0 = 500 ms */
    int allow_insecure_http; /* http:// to a non-loopback endpoint */
};

/* Borrows h and auth; reads the endpoint variables now (a malformed one is CG_EINVAL).
 * azure_rest_free is NULL-safe; free only when no call is in flight. */
int azure_rest_new(struct azure_rest **out, struct cg_http *h, struct azure_auth *auth,
                   const struct azure_rest_config *cfg, struct cg_err *err);
void azure_rest_free(struct azure_rest *c);
/* The base URL in use for an API (for messages and tests), without a trailing '/'. */
const char *azure_rest_endpoint(const struct azure_rest *c, enum azure_api api);

struct azure_error {
    long status;   /* HTTP status; 0 when no response */
    char code[64]; /* error.code: "Request_ResourceNotFound", "RoleAssignmentExists", ... */
    char message[400];
};

/* Conditions retried (with backoff, on timers, within consistency_ms) instead of reported,
 * for directory replication: */
enum {
    AZURE_RETRY_NOT_FOUND = 1 << 0,   /* 404 (Graph Request_ResourceNotFound, ARM NotFound):
                                         an object just created is not yet visible here */
    AZURE_RETRY_REPLICATION = 1 << 1,
    AZURE_SEND_ONCE = 1 << 2,         /* not idempotent (addPassword): a transport failure
                                         after the request may have arrived is reported, not
                                         retried (cg_http_req_set_send_once) */ /* 400 PrincipalNotFound (ARM: a new service principal
                                         not yet replicated), 400 whose message says "does
                                         not reference a valid application object"
                                         (Graph NoBackingApplicationObject) */
};

/* result: the response JSON (borrowed for the callback; {} for an empty body, as 204 is).
 * status: the HTTP status of the answer (201 vs 200/204 tells created from updated).
 * err: NULL on success (aerr NULL too); else a one-line message "Azure <label>: <code>:
 * <message>" (e.g. "Azure create role assignment 'Contributor' on /subscriptions/s:
 * AuthorizationFailed: The client ... does not have authorization ...") and aerr (never NULL
 * then; status is 0 when no answer arrived). err->code: CG_ENOTFOUND for 404, CG_EAUTH for 401
 * and 403 (with or without an error body), CG_ESTATUS for other API errors and for error
 * statuses without an error body ("Azure <label>: invalid response (HTTP 502)"; such a 404
 * says nothing about the resource, so it is CG_ESTATUS too, and AZURE_RETRY_NOT_FOUND does not
 * wait for it),
 * CG_EINVAL for a 2xx body that is not a JSON object, and the engine's and azure_auth's codes
 * prefixed with "Azure <label>: ". code holds only [A-Za-z0-9_.-] (else ""); message is one
 * printable line, cut with "..." at its size.
 * 429 and 5xx and transport errors are retried by the engine (Retry-After honoured); Graph's
 * 409 Directory_ConcurrencyViolation is retried like the consistency conditions, always. A
 * 401 invalidates the token and the call is sent once more with a new one. An error body is
 * {"error":{"code","message"}}, or a bare {"code","message"} as a few ARM providers send. */
typedef void azure_rest_cb(json_t *result, long status, const struct azure_error *aerr,
                           const struct cg_err *err, void *data);

/* 0: cb runs exactly once from the loop. <0: err filled, cb never runs.
 * method: GET, POST, PUT, PATCH, DELETE. path: relative to the API's base, query included
 * (the caller percent-encodes): printable ASCII without a leading '/', a '#', a backslash or
 * a "." or ".." segment, else CG_EINVAL. body: borrowed, serialised compactly; NULL sends
 * none; Content-Type: application/json whenever a body is sent. headers: NULL or a
 * NULL-terminated list of extra "Name: value" lines (Graph's "ConsistencyLevel: eventual"; at
 * most 16, no control characters, and not Authorization, Content-Type, Content-Length, Host or
 * Transfer-Encoding, which the client sets: else CG_EINVAL).
 * label: what the call does to what, for messages and debug logs; NULL uses the path without
 * its query. flags: AZURE_RETRY_*. */
int azure_rest_call(struct azure_rest *c, enum azure_api api, const char *method, const char *path,
                    json_t *body, const char *const *headers, const char *label, int flags,
                    azure_rest_cb *cb, void *data, struct cg_err *err);

/* GET that follows the pages (Graph "@odata.nextLink", ARM "nextLink": absolute URLs, which
 * must start with the same API's base URL and a '/', the rest being a valid path as above,
 * else CG_EINVAL, so a hostile answer cannot send the bearer token elsewhere) and delivers
 * {"value": [all items]} (a page without "value" adds nothing). A repeated link, over 1000
 * pages, or a value that is not an array is CG_EINVAL; an error on any page is the result. */
int azure_rest_call_all(struct azure_rest *c, enum azure_api api, const char *path,
                        const char *const *headers, const char *label, int flags, azure_rest_cb *cb,
                        void *data, struct cg_err *err);

/* Counters, one per logical call (pages count; engine and consistency retries do not).
 * Reads: GET; everything else is a write. */
struct azure_rest_stats {
    unsigned long reads;
    unsigned long writes;
};
void azure_rest_get_stats(const struct azure_rest *c, struct azure_rest_stats *out);

/* Pure helper, exposed for tests and fuzzing: a 2xx JSON object (or an empty/blank body,
 * delivered as {}) into *result (new reference), or aerr (may be NULL) and err filled
 * ("Azure <label>: ..."). Bodies over 8 MiB are CG_ETOOBIG; JSON nested over 128 levels,
 * invalid UTF-8 and escaped NULs are invalid. */
int azure_rest_parse_response(const char *body, size_t len, long status, const char *label,
                              json_t **result, struct azure_error *aerr, struct cg_err *err);

#endif
