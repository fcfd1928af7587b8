/* gcp_rest: JSON calls to the Google Cloud APIs cloudgrant uses (IAM v1, Service Usage v1,
 * Resource Manager v1) on the cg_http engine, with a bearer token from gcp_auth.
 *
 * Endpoints: CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM, ..._SERVICEUSAGE, ..._CLOUDRESOURCEMANAGER
 * (gcloud's names; a base URL with an optional path prefix, a trailing '/' optional), else
 * https://iam.googleapis.com/, https://serviceusage.googleapis.com/,
 * https://cloudresourcemanager.googleapis.com/. Paths given to calls are relative to the base
 * ("v1/projects/p/serviceAccounts"). Plain http:// only on loopback unless allowed. An empty
 * variable counts as unset; a value with a query, a fragment, user information, spaces or
 * control characters is refused.
 *
 * Errors keep Google's shape (protocols.md 2.6): the HTTP status, the RPC status name
 * ("ALREADY_EXISTS"), the first ErrorInfo reason ("SERVICE_DISABLED") and its
 * metadata.service, and the message. Bodies are never logged or put into messages (a key
 * creation answer carries a private key). */
#ifndef CG_GCP_REST_H
#define CG_GCP_REST_H

#include "../../agent/core/cg_err.h"

#include <jansson.h>
#include <stddef.h>

struct cg_http;
struct gcp_auth;
struct gcp_rest;

enum gcp_api { GCP_IAM = 0, GCP_SERVICEUSAGE, GCP_CRM, GCP_API_COUNT };

struct gcp_rest_config {
    const char *(*getenv)(const char *name); /* NULL = getenv(3) */
    long timeout_ms;     /* per request sent, the engine's attempts included; 0 = 30 s. A call that
                            waits for consistency or a 401 sends again with a new timeout. */
    long consistency_ms; /* budget for the GCP_RETRY_* conditions below; 0 = 90 s */
    long poll_ms;        /* first wait between operation polls and consistency retries (then
                            doubling, with jitter, capped at 5 s); 0 = 500 ms */
    int allow_insecure_http; /* http:// to a non-loopback endpoint */
};

/* Borrows h and auth; reads the endpoint variables now (a malformed one is CG_EINVAL). */
int gcp_rest_new(struct gcp_rest **out, struct cg_http *h, struct gcp_auth *auth,
                 const struct gcp_rest_config *cfg, struct cg_err *err);
void gcp_rest_free(struct gcp_rest *c);
/* The base URL in use for an API (for messages and tests). */
const char *gcp_rest_endpoint(const struct gcp_rest *c, enum gcp_api api);

struct gcp_error {
    long status;      /* HTTP status; 0 when no response */
    char rpc[32];     /* "NOT_FOUND", "ALREADY_EXISTS", "ABORTED", ... ("" when absent) */
    char reason[64];  /* first ErrorInfo reason, e.g. "SERVICE_DISABLED" ("" when absent) */
    char service[96]; /* ErrorInfo metadata.service, e.g. "iam.googleapis.com" */
    char message[400];
};

/* Conditions retried (with backoff, on timers, within consistency_ms) instead of reported,
 * for Google's eventual consistency: */
enum {
    GCP_RETRY_SERVICE_DISABLED = 1 << 0, /* 403 with reason SERVICE_DISABLED: an API just
                                            enabled is not yet usable */
    GCP_RETRY_NOT_FOUND = 1 << 1,
    GCP_SEND_ONCE = 1 << 2,              /* not idempotent (keys.create): a transport failure
                                            after the request may have arrived is reported, not
                                            retried (cg_http_req_set_send_once) */        /* 404, or 400 whose message says "does not exist":
                                            a new service account not yet visible */
};

/* result: the response JSON (borrowed for the callback; {} for an empty body). err: NULL on
 * success (gerr NULL too); else a one-line message "GCP <label>: <RPC>: <message>" (e.g.
 * "GCP create service account 'castai-gke-1a2b3c4d': ALREADY_EXISTS: Service account
 * castai-gke-1a2b3c4d already exists within project projects/p") and gerr (never NULL then).
 * err->code: CG_ENOTFOUND for 404/NOT_FOUND, CG_EAUTH for 401 and PERMISSION_DENIED (403),
 * CG_ESTATUS for other API errors and for error statuses without a Google error body
 * ("GCP <label>: invalid response (HTTP 502)"; such a 404, from a wrong endpoint or a proxy,
 * says nothing about the resource, so it is CG_ESTATUS too; such a 401 stays CG_EAUTH),
 * CG_EINVAL for a 2xx body that is not a JSON object, and the engine's and gcp_auth's codes,
 * prefixed with "GCP <label>: ". An error body without error.status reads
 * "GCP <label>: HTTP <status>: <message>". rpc, reason and service hold only
 * [A-Za-z0-9_.-] (else ""); message is one line, cut with "..." at its size.
 * 429, 500, 502, 503, 504 and transport errors are retried by the engine (Retry-After
 * honoured); ABORTED is not (a stale etag needs a re-read: the caller's job). A 401 invalidates
 * the token and the call is sent once more with a new one. Each consistency retry asks
 * gcp_auth for the current token again. */
typedef void gcp_rest_cb(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                         void *data);

/* 0: cb runs exactly once from the loop. <0: err filled, cb never runs.
 * method: GET, POST, PATCH, DELETE. path: relative to the API's base, query included (the
 * caller percent-encodes): printable ASCII without a leading '/', a '#', a backslash or a "."
 * or ".." segment, else CG_EINVAL. body: borrowed, serialised compactly; NULL sends none (POST
 * with no body sends "{}"); Content-Type: application/json whenever a body is sent. label:
 * what the call does to what, for messages and debug logs ("create service account 'x'");
 * NULL uses the path without its query. flags: GCP_RETRY_*. */
int gcp_rest_call(struct gcp_rest *c, enum gcp_api api, const char *method, const char *path,
                  json_t *body, const char *label, int flags, gcp_rest_cb *cb, void *data,
                  struct cg_err *err);

/* Follows nextPageToken (GET only; "pageToken=<percent-encoded token>" appended after '?' or
 * '&') and delivers {"<list_key>": [all items]} (only that key; a page without the list adds
 * nothing). A repeated token, over 1000 pages, a list that is not an array or a token that is
 * not a string is CG_EINVAL; an error on any page is the result. */
int gcp_rest_call_all(struct gcp_rest *c, enum gcp_api api, const char *path, const char *list_key,
                      const char *label, int flags, gcp_rest_cb *cb, void *data,
                      struct cg_err *err);

/* Waits for a long-running operation (google.longrunning.Operation) of `api`: an operation
 * already done (Service Usage's "operations/noop.DONE_OPERATION") is delivered without a
 * call; otherwise GET v1/<name> on timers until done:true or consistency_ms pass
 * (CG_ETIMEDOUT: "GCP <label>: operation <name> not done after <n> s"); polls wait poll_ms,
 * doubling with jitter up to 5 s, and each poll counts as a read. A done operation with an
 * `error` (google.rpc.Status) fails like an API error: rpc is named from its numeric code
 * (5 -> NOT_FOUND, ...) and gerr->status / err->http_status are the HTTP status Google maps
 * that code to (404), so callers can treat both kinds of failure alike. Else result is the
 * operation. Even an operation already done is delivered from the loop. An operation that is
 * not done and has no usable name is CG_EINVAL at once. */
int gcp_rest_wait(struct gcp_rest *c, enum gcp_api api, json_t *operation, const char *label,
                  gcp_rest_cb *cb, void *data, struct cg_err *err);

/* Confirms that something just made is visible, for Google's eventual consistency (a new
 * service account, a just-enabled API): GETs `path` until `need` (0 = 1) reads in a row
 * succeed. A read failing with one of `flags`' GCP_RETRY_* conditions resets the count and
 * reads again after a backoff (poll_ms doubling, with jitter, capped at 5 s), within
 * consistency_ms (then CG_ETIMEDOUT "GCP <label>: still NOT_FOUND after <n> s of retries;
 * wait a few minutes and run again"); any other error is the result. result: the last read.
 * Every read counts in the stats. */
int gcp_rest_confirm(struct gcp_rest *c, enum gcp_api api, const char *path, const char *label,
                     int flags, unsigned need, gcp_rest_cb *cb, void *data, struct cg_err *err);

/* Counters (for "a rerun makes zero mutating calls" and the benchmark), one per logical call
 * (pages count; engine retries and consistency retries do not). Reads: GET, and POSTs whose
 * path ends in ":getIamPolicy" or ":batchGet"; everything else is a write. */
struct gcp_rest_stats {
    unsigned long reads;
    unsigned long writes;
};
void gcp_rest_get_stats(const struct gcp_rest *c, struct gcp_rest_stats *out);

/* Pure helpers, exposed for tests and fuzzing. */
/* Parses an answer: 2xx JSON into *result (new reference; {} for an empty or blank body), or
 * fills gerr (may be NULL) and err (message "GCP <label>: ..."). Bodies over 8 MiB are
 * CG_ETOOBIG; JSON nested over 128 levels, invalid UTF-8 and escaped NULs are invalid. */
int gcp_rest_parse_response(const char *body, size_t len, long status, const char *label,
                            json_t **result, struct gcp_error *gerr, struct cg_err *err);

#endif
