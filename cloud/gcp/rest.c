/* cloud/gcp/rest.c: JSON calls to the Google Cloud APIs (IAM, Service Usage, Resource
 * Manager) on the cg_http engine.
 *
 * A call goes: access token (gcp_auth_get_token, async) -> one cg_http request whose sign hook
 * sets the bearer token before every attempt -> the JSON answer, or Google's error. Retries
 * happen at three places:
 * - transport errors, 429 and 5xx: inside the engine (backoff, Retry-After);
 * - 401: here, once, because a new token must be fetched asynchronously before resending;
 * - eventual consistency (GCP_RETRY_*) and operation polls: here, on engine timers, with a
 *   fresh token for each send, within consistency_ms.
 *
 * Bodies can carry secrets (a key creation answer holds a private key), so nothing here logs a
 * body or puts one into a message; messages use only Google's status, reason and message. */
#include "gcp_rest.h"

#include "gcp_auth.h"

#include "../rest_common.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS     30000L
#define DEFAULT_CONSISTENCY_MS 90000L
#define DEFAULT_POLL_MS        500L
#define MAX_WAIT_MS            5000L
/* The engine's body cap: a larger body never arrives from the network; the check is for
 * direct callers (tests, fuzzing). */
#define MAX_RESPONSE ((size_t)8 * 1024 * 1024)
/* Real answers nest under 10 levels; the cap keeps jansson's recursion (and json_decref's)
 * far below its own limit of 2048, whatever the body. */
#define MAX_DEPTH 128
/* 1000 pages of up to 1000 items is far beyond any project's quotas. */
#define MAX_PAGES      1000
#define MAX_PAGE_TOKEN 8192
#define MAX_PATH       8192
#define MAX_ENDPOINT   2048
#define MAX_LABEL      200
#define MAX_LOG_PATH   240

#define ERROR_INFO_TYPE "type.googleapis.com/google.rpc.ErrorInfo"
#define NOOP_OPERATION  "operations/noop.DONE_OPERATION"

static const struct api_def {
    const char *name; /* for logs */
    const char *var;
    const char *def;
} apis[GCP_API_COUNT] = {
    [GCP_IAM] = {"iam", "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM", "https://iam.googleapis.com/"},
    [GCP_SERVICEUSAGE] = {"serviceusage", "CLOUDSDK_API_ENDPOINT_OVERRIDES_SERVICEUSAGE",
                          "https://serviceusage.googleapis.com/"},
    [GCP_CRM] = {"cloudresourcemanager", "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER",
                 "https://cloudresourcemanager.googleapis.com/"},
};

struct gcp_rest {
    struct cg_http *http;
    struct gcp_auth *auth;
    char *base[GCP_API_COUNT]; /* ends in '/' */
    long timeout_ms;
    long consistency_ms;
    long poll_ms;
    uint64_t rng;
    struct gcp_rest_stats stats;
};

/* One logical call, across token fetches, the engine's attempts, a 401 and consistency
 * waits. */
struct rcall {
    struct gcp_rest *c;
    enum gcp_api api;
    char method[8];
    char *url;
    char *log_path; /* printable path without its query, for logs */
    char *label;    /* printable; for messages and logs */
    char *body;     /* serialised request body, NULL for none; wiped on free */
    size_t body_len;
    char *auth_header; /* "Bearer <token>"; wiped on free */
    int flags;
    int reauthed;             /* a 401 already led to a new token */
    struct cloud_retry retry; /* waits for GCP_RETRY_* conditions */
    gcp_rest_cb *cb;
    void *data;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void subject(char *dst, size_t cap, const char *label)
{
    if (label != NULL && label[0] != '\0') {
        snprintf(dst, cap, "GCP %s", label);
    } else {
        snprintf(dst, cap, "GCP");
    }
}

/* ---- Google's errors -------------------------------------------------------------------- */

/* google.rpc.Code: name and the HTTP status Google maps it to. */
static const struct rpc_code {
    const char *name;
    long http;
} rpc_codes[] = {
    {"OK", 200},
    {"CANCELLED", 499},
    {"UNKNOWN", 500},
    {"INVALID_ARGUMENT", 400},
    {"DEADLINE_EXCEEDED", 504},
    {"NOT_FOUND", 404},
    {"ALREADY_EXISTS", 409},
    {"PERMISSION_DENIED", 403},
    {"RESOURCE_EXHAUSTED", 429},
    {"FAILED_PRECONDITION", 400},
    {"ABORTED", 409},
    {"OUT_OF_RANGE", 400},
    {"UNIMPLEMENTED", 501},
    {"INTERNAL", 500},
    {"UNAVAILABLE", 503},
    {"DATA_LOSS", 500},
    {"UNAUTHENTICATED", 401},
};

static int errc_of(const struct gcp_error *g)
{
    if (g->status == 404 || strcmp(g->rpc, "NOT_FOUND") == 0) {
        return CG_ENOTFOUND;
    }
    if (g->status == 401 || strcmp(g->rpc, "UNAUTHENTICATED") == 0 ||
        strcmp(g->rpc, "PERMISSION_DENIED") == 0 || (g->status == 403 && g->rpc[0] == '\0')) {
        return CG_EAUTH;
    }
    return CG_ESTATUS;
}

/* Reads a google.rpc.Status-shaped object ({"code","message","status","details"}): the status
 * name, the message and the first ErrorInfo's reason and metadata.service. Wrong types are
 * ignored field by field. */
static void read_status(json_t *st, struct gcp_error *g)
{
    cloud__copy_ident(g->rpc, sizeof(g->rpc), json_string_value(json_object_get(st, "status")));
    json_t *msg = json_object_get(st, "message");
    if (json_is_string(msg)) {
        cloud__one_line(g->message, sizeof(g->message), json_string_value(msg),
                        json_string_length(msg));
    }
    json_t *details = json_object_get(st, "details");
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d)
    {
        const char *type = json_string_value(json_object_get(d, "@type"));
        if (type != NULL && strcmp(type, ERROR_INFO_TYPE) == 0) {
            cloud__copy_ident(g->reason, sizeof(g->reason),
                              json_string_value(json_object_get(d, "reason")));
            json_t *meta = json_object_get(d, "metadata");
            cloud__copy_ident(g->service, sizeof(g->service),
                              json_string_value(json_object_get(meta, "service")));
            break;
        }
    }
}

/* "GCP <label>: <RPC>: <message>", with `fallback` ("HTTP 404") when there is no RPC name. */
static int google_err(struct cg_err *err, const char *subj, const struct gcp_error *g,
                      const char *fallback)
{
    const char *what = g->rpc[0] != '\0' ? g->rpc : fallback;
    int code = errc_of(g);
    if (g->message[0] != '\0') {
        return cg_err_set_http(err, code, g->status, "%s: %s: %s", subj, what, g->message);
    }
    return cg_err_set_http(err, code, g->status, "%s: %s", subj, what);
}

static int invalid(struct cg_err *err, long status, const char *subj)
{
    int code = status >= 200 && status < 300 ? CG_EINVAL : status == 401 ? CG_EAUTH : CG_ESTATUS;
    return cg_err_set_http(err, code, status, "%s: invalid response (HTTP %ld)", subj, status);
}

/* The parser behind gcp_rest_parse_response; label is printable already. */
static int parse_response(const char *body, size_t len, long status, const char *label,
                          json_t **result, struct gcp_error *gerr, struct cg_err *err)
{
    struct gcp_error scratch;
    if (gerr == NULL) {
        gerr = &scratch;
    }
    memset(gerr, 0, sizeof(*gerr));
    gerr->status = status;
    *result = NULL;
    char subj[MAX_LABEL + 8];
    subject(subj, sizeof(subj), label);
    json_t *doc = NULL;
    int rc = cloud__json_answer(body, len, status, subj, MAX_RESPONSE, MAX_DEPTH, &doc, err);
    if (rc <= 0) {
        *result = doc;
        return rc;
    }
    json_t *e = json_object_get(doc, "error");
    if (!json_is_object(e) || !(json_is_string(json_object_get(e, "status")) ||
                                json_is_string(json_object_get(e, "message")) ||
                                json_is_integer(json_object_get(e, "code")))) {
        /* not Google's error shape: an HTML page from a proxy, an OAuth error, ... */
        json_decref(doc);
        return invalid(err, status, subj);
    }
    read_status(e, gerr);
    json_decref(doc);
    char fallback[32];
    snprintf(fallback, sizeof(fallback), "HTTP %ld", status);
    return google_err(err, subj, gerr, fallback);
}

int gcp_rest_parse_response(const char *body, size_t len, long status, const char *label,
                            json_t **result, struct gcp_error *gerr, struct cg_err *err)
{
    if (result == NULL) {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_parse_response: missing argument");
    }
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), label ? label : "", label ? strlen(label) : 0);
    return parse_response(body, len, status, clean, result, gerr, err);
}

/* ---- client ----------------------------------------------------------------------------- */

static const char *env_get(const char *name)
{
    return getenv(name);
}

static int endpoint_from_env(struct gcp_rest *c, enum gcp_api api, const char *(*get)(const char *),
                             int allow_insecure, struct cg_err *err)
{
    const char *var = apis[api].var;
    const char *v = get(var);
    if (v == NULL || v[0] == '\0') {
        c->base[api] = strdup(apis[api].def);
        return c->base[api] != NULL ? 0 : cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = cloud__endpoint_check(var, v, MAX_ENDPOINT, allow_insecure, err);
    if (rc < 0) {
        return rc;
    }
    size_t n = strlen(v);
    int slash = v[n - 1] == '/';
    c->base[api] = malloc(n + 2);
    if (c->base[api] == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    memcpy(c->base[api], v, n);
    memcpy(c->base[api] + n, slash ? "" : "/", slash ? 1 : 2);
    if (strcmp(c->base[api], apis[api].def) != 0) {
        CG_LOG(CG_LOG_DEBUG, "gcp", "%s endpoint from %s", apis[api].name, var);
    }
    return 0;
}

int gcp_rest_new(struct gcp_rest **out, struct cg_http *h, struct gcp_auth *auth,
                 const struct gcp_rest_config *cfg, struct cg_err *err)
{
    if (out == NULL || h == NULL || auth == NULL) {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_new: missing argument");
    }
    static const struct gcp_rest_config defaults = {0};
    if (cfg == NULL) {
        cfg = &defaults;
    }
    struct gcp_rest *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    c->http = h;
    c->auth = auth;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->consistency_ms = cfg->consistency_ms > 0 ? cfg->consistency_ms : DEFAULT_CONSISTENCY_MS;
    c->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : DEFAULT_POLL_MS;
    if (c->poll_ms > MAX_WAIT_MS) {
        c->poll_ms = MAX_WAIT_MS;
    }
    c->rng = cloud__rng_seed(c);
    const char *(*get)(const char *) = cfg->getenv ? cfg->getenv : env_get;
    for (int api = 0; api < GCP_API_COUNT; api++) {
        int rc = endpoint_from_env(c, (enum gcp_api)api, get, cfg->allow_insecure_http, err);
        if (rc < 0) {
            gcp_rest_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void gcp_rest_free(struct gcp_rest *c)
{
    if (c == NULL) {
        return;
    }
    for (int api = 0; api < GCP_API_COUNT; api++) {
        free(c->base[api]);
    }
    free(c);
}

const char *gcp_rest_endpoint(const struct gcp_rest *c, enum gcp_api api)
{
    if (c == NULL || (int)api < 0 || api >= GCP_API_COUNT) {
        return NULL;
    }
    return c->base[api];
}

void gcp_rest_get_stats(const struct gcp_rest *c, struct gcp_rest_stats *out)
{
    *out = c->stats;
}

/* ---- one call --------------------------------------------------------------------------- */

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int is_read(const char *method, const char *path)
{
    if (strcmp(method, "GET") == 0) {
        return 1;
    }
    size_t n = strcspn(path, "?");
    return strcmp(method, "POST") == 0 &&
           (ends_with(path, n, ":getIamPolicy") || ends_with(path, n, ":batchGet"));
}

static int valid_method(const char *m)
{
    return m != NULL && (strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0 ||
                         strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0);
}

static void rcall_free(struct rcall *q)
{
    if (q == NULL) {
        return;
    }
    free(q->url);
    free(q->log_path);
    free(q->label);
    if (q->body != NULL) {
        cg_wipe(q->body, q->body_len);
        free(q->body);
    }
    cg_secret_free(q->auth_header);
    free(q);
}

#define LOG_CALL_FMT    "GCP %s %s %s (%s)"
#define LOG_CALL_ARG(q) (q)->method, apis[(q)->api].name, (q)->log_path, (q)->label

static void finish_ok(struct rcall *q, json_t *result)
{
    q->cb(result, NULL, NULL, q->data);
    rcall_free(q);
}

static void finish_err(struct rcall *q, const struct gcp_error *gerr, const struct cg_err *err)
{
    struct gcp_error none = {.status = err->http_status};
    q->cb(NULL, gerr ? gerr : &none, err, q->data);
    rcall_free(q);
}

/* Failures that did not come from Google (transport, token): prefixes the subject. */
static void finish_wrapped(struct rcall *q, const struct cg_err *cause)
{
    struct cg_err e = {0};
    char subj[MAX_LABEL + 8];
    subject(subj, sizeof(subj), q->label);
    int code = cause->code != 0 ? cause->code : CG_EINVAL;
    cg_err_set_http(&e, code, cause->http_status, "%s: %s", subj,
                    cause->msg[0] != '\0' ? cause->msg : cg_errc_str(code));
    CG_LOG(CG_LOG_DEBUG, "gcp", LOG_CALL_FMT " -> failed (%s)", LOG_CALL_ARG(q), cg_errc_str(code));
    finish_err(q, NULL, &e);
}

static void finish_cancelled(struct rcall *q)
{
    struct cg_err e = {.code = CG_ECANCELED};
    snprintf(e.msg, sizeof(e.msg), "cancelled");
    finish_wrapped(q, &e);
}

static int sign_hook(struct cg_http_req *req, void *data, struct cg_err *err)
{
    struct rcall *q = data;
    if (q->auth_header == NULL) {
        return cg_err_set(err, CG_EAUTH, "no access token");
    }
    return cg_http_req_set_header(req, "Authorization", q->auth_header);
}

static int fetch_token(struct rcall *q, struct cg_err *err);

/* Builds and submits the HTTP request; on failure err is filled and nothing was sent. */
static int submit(struct rcall *q, struct cg_err *err);

static const char *retry_reason(int flags, const struct gcp_error *g)
{
    if ((flags & GCP_RETRY_SERVICE_DISABLED) && g->status == 403 &&
        strcmp(g->reason, "SERVICE_DISABLED") == 0) {
        return "SERVICE_DISABLED";
    }
    if ((flags & GCP_RETRY_NOT_FOUND) &&
        (g->status == 404 || strcmp(g->rpc, "NOT_FOUND") == 0 ||
         (g->status == 400 && strstr(g->message, "does not exist") != NULL))) {
        return "NOT_FOUND";
    }
    return NULL;
}

static void on_wait_done(void *data, int canceled)
{
    struct rcall *q = data;
    if (canceled) {
        finish_cancelled(q);
        return;
    }
    struct cg_err e = {0};
    if (fetch_token(q, &e) < 0) {
        finish_wrapped(q, &e);
    }
}

/* Eventual consistency: waits and sends again when the condition is one the caller asked to
 * retry and the budget allows; returns 1 when a wait was scheduled. */
static int consistency_retry(struct rcall *q, const struct gcp_error *g)
{
    struct gcp_rest *c = q->c;
    const char *why = retry_reason(q->flags, g);
    if (why == NULL) {
        return 0;
    }
    long spent_ms = 0;
    long wait = cloud__retry_next(&q->retry, &c->rng, c->poll_ms, MAX_WAIT_MS, c->consistency_ms,
                                  &spent_ms);
    if (wait < 0) {
        char spent[32];
        cloud__fmt_duration(spent, sizeof(spent), spent_ms);
        CG_LOG(CG_LOG_DEBUG, "gcp", LOG_CALL_FMT ": %s after %s of retries, giving up",
               LOG_CALL_ARG(q), why, spent);
        return 0;
    }
    if (cg_http_after(c->http, wait, on_wait_done, q) < 0) {
        return 0;
    }
    CG_LOG(CG_LOG_DEBUG, "gcp", LOG_CALL_FMT ": %s%s%s%s, waiting %ld ms (retry %u)",
           LOG_CALL_ARG(q), why, g->service[0] ? " (" : "", g->service, g->service[0] ? ")" : "",
           wait, q->retry.waits);
    return 1;
}

static void on_response(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct rcall *q = data;
    if (err != NULL) {
        finish_wrapped(q, err);
        return;
    }
    long status = cg_http_req_status(req);
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    json_t *result = NULL;
    struct gcp_error g;
    struct cg_err e = {0};
    int rc = parse_response(body, len, status, q->label, &result, &g, &e);
    if (rc == 0) {
        CG_LOG(CG_LOG_DEBUG, "gcp", LOG_CALL_FMT " -> %ld", LOG_CALL_ARG(q), status);
        finish_ok(q, result);
        json_decref(result);
        return;
    }
    CG_LOG(CG_LOG_DEBUG, "gcp", LOG_CALL_FMT " -> %ld%s%s%s%s", LOG_CALL_ARG(q), status,
           g.rpc[0] ? " " : "", g.rpc, g.reason[0] ? " " : "", g.reason);
    if (status == 401 && !q->reauthed) {
        /* The token was revoked or expired early: forget it, fetch a new one, send once
         * more. */
        q->reauthed = 1;
        gcp_auth_invalidate(q->c->auth);
        CG_LOG(CG_LOG_DEBUG, "gcp", LOG_CALL_FMT ": 401, retrying with a new token",
               LOG_CALL_ARG(q));
        struct cg_err fe = {0};
        if (fetch_token(q, &fe) < 0) {
            finish_wrapped(q, &fe);
        }
        return;
    }
    if (consistency_retry(q, &g)) {
        return;
    }
    finish_err(q, &g, &e);
}

static int submit(struct rcall *q, struct cg_err *err)
{
    struct gcp_rest *c = q->c;
    char label[64];
    snprintf(label, sizeof(label), "GCP %s %s", q->method, apis[q->api].name);
    struct cg_http_req *req = NULL;
    int rc =
        cloud__json_req_new(q->method, q->url, q->body, q->body_len, NULL, NULL, label, &req, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_req_set_timeout(req, c->timeout_ms);
    cg_http_req_set_sign(req, sign_hook, q);
    if (q->flags & GCP_SEND_ONCE) {
        cg_http_req_set_send_once(req);
    }
    rc = cg_http_submit(c->http, req, on_response, q, err);
    if (rc < 0) {
        cg_http_req_free(req);
    }
    return rc;
}

static void on_token(const char *token, const struct cg_err *err, void *data)
{
    struct rcall *q = data;
    if (err != NULL) {
        finish_wrapped(q, err);
        return;
    }
    struct cg_err e = {0};
    char *header = cloud__bearer_dup(token, &e);
    if (header == NULL) {
        finish_wrapped(q, &e);
        return;
    }
    cg_secret_free(q->auth_header);
    q->auth_header = header;
    if (submit(q, &e) < 0) {
        finish_wrapped(q, &e);
    }
}

static int fetch_token(struct rcall *q, struct cg_err *err)
{
    return gcp_auth_get_token(q->c->auth, on_token, q, err);
}

int gcp_rest_call(struct gcp_rest *c, enum gcp_api api, const char *method, const char *path,
                  json_t *body, const char *label, int flags, gcp_rest_cb *cb, void *data,
                  struct cg_err *err)
{
    if (c == NULL || cb == NULL || (int)api < 0 || api >= GCP_API_COUNT) {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_call: missing argument");
    }
    char subj[MAX_LABEL + 8];
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), label ? label : "", label ? strlen(label) : 0);
    subject(subj, sizeof(subj), clean);
    if (!valid_method(method)) {
        return cg_err_set(err, CG_EINVAL, "%s: unsupported method", subj);
    }
    if (!cloud__path_ok(path, MAX_PATH)) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: invalid API path (relative, printable ASCII, percent-encoded)",
                          subj);
    }
    struct rcall *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    q->c = c;
    q->api = api;
    q->flags = flags;
    q->cb = cb;
    q->data = data;
    snprintf(q->method, sizeof(q->method), "%s", method);
    size_t blen = strlen(c->base[api]), plen = strlen(path);
    q->url = malloc(blen + plen + 1);
    if (q->url != NULL) {
        memcpy(q->url, c->base[api], blen);
        memcpy(q->url + blen, path, plen + 1);
    }
    q->log_path = cloud__one_line_dup(path, strcspn(path, "?"), MAX_LOG_PATH);
    q->label =
        clean[0] != '\0' ? strdup(clean) : cloud__one_line_dup(path, strcspn(path, "?"), MAX_LABEL);
    int rc = q->url && q->log_path && q->label ? 0 : CG_ENOMEM;
    if (rc == 0 && body != NULL) {
        /* request bodies are sent as given, compact; never logged */
        q->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = q->body != NULL ? 0 : CG_EINVAL;
        q->body_len = q->body ? strlen(q->body) : 0;
    } else if (rc == 0 && strcmp(method, "POST") == 0) {
        q->body = strdup("{}");
        rc = q->body != NULL ? 0 : CG_ENOMEM;
        q->body_len = 2;
    }
    if (rc < 0) {
        rcall_free(q);
        return cg_err_set(err, rc, "%s: %s", subj,
                          rc == CG_EINVAL ? "cannot serialise the request body" : "out of memory");
    }
    rc = fetch_token(q, err);
    if (rc < 0) {
        if (err != NULL && err->code == 0) {
            err->code = rc;
        }
        cg_err_wrap(err, "%s", subj);
        rcall_free(q);
        return rc;
    }
    if (is_read(method, path)) {
        c->stats.reads++;
    } else {
        c->stats.writes++;
    }
    return 0;
}

/* ---- pagination ------------------------------------------------------------------------- */

struct pager {
    struct gcp_rest *c;
    enum gcp_api api;
    char *path;     /* the caller's */
    char *list_key; /* where the items are */
    char *label;    /* the caller's, for the page calls */
    int flags;
    json_t *items;
    json_t *seen; /* page tokens already followed, as object keys */
    unsigned pages;
    gcp_rest_cb *cb;
    void *data;
};

static void pager_free(struct pager *p)
{
    if (p == NULL) {
        return;
    }
    free(p->path);
    free(p->list_key);
    free(p->label);
    json_decref(p->items);
    json_decref(p->seen);
    free(p);
}

static void pager_fail(struct pager *p, const struct gcp_error *gerr, const struct cg_err *err)
{
    struct gcp_error none = {.status = err->http_status};
    p->cb(NULL, gerr ? gerr : &none, err, p->data);
    pager_free(p);
}

static void on_page(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                    void *data);

/* GET path (+ pageToken=<token>, percent-encoded, after '?' or '&'). */
static int pager_get(struct pager *p, const char *token, struct cg_err *err)
{
    struct cg_buf b;
    cg_buf_init(&b, MAX_PATH + 3 * MAX_PAGE_TOKEN + 16);
    int rc = cg_buf_append_str(&b, p->path);
    if (rc == 0 && token != NULL) {
        rc = cg_buf_append_str(&b, strchr(p->path, '?') ? "&pageToken=" : "?pageToken=");
        if (rc == 0) {
            rc = cloud__append_pct(&b, token, strlen(token));
        }
    }
    if (rc < 0) {
        cg_buf_cleanup(&b);
        return cg_err_set(err, rc, "out of memory");
    }
    rc = gcp_rest_call(p->c, p->api, "GET", b.data, NULL, p->label, p->flags, on_page, p, err);
    cg_buf_cleanup(&b);
    return rc;
}

static void on_page(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                    void *data)
{
    struct pager *p = data;
    if (err != NULL) {
        pager_fail(p, gerr, err);
        return;
    }
    p->pages++;
    struct cg_err e = {0};
    char subj[MAX_LABEL + 8];
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), p->label, strlen(p->label));
    subject(subj, sizeof(subj), clean);
    json_t *list = json_object_get(result, p->list_key);
    json_t *next = json_object_get(result, "nextPageToken");
    const char *token = json_string_value(next);
    if (list != NULL && !json_is_array(list)) {
        cg_err_set(&e, CG_EINVAL, "%s: invalid response ('%s' is not a list)", subj, p->list_key);
    } else if (list != NULL && json_array_extend(p->items, list) < 0) {
        cg_err_set(&e, CG_ENOMEM, "out of memory");
    } else if (next != NULL && !json_is_null(next) && token == NULL) {
        cg_err_set(&e, CG_EINVAL, "%s: invalid response (nextPageToken is not a string)", subj);
    } else if (token == NULL || token[0] == '\0') {
        /* the last page: Google omits empty lists, so no list is an empty one */
        json_t *out = json_object();
        if (out == NULL || json_object_set(out, p->list_key, p->items) < 0) {
            json_decref(out);
            cg_err_set(&e, CG_ENOMEM, "out of memory");
        } else {
            p->cb(out, NULL, NULL, p->data);
            json_decref(out);
            pager_free(p);
            return;
        }
    } else if (json_string_length(next) > MAX_PAGE_TOKEN) {
        cg_err_set(&e, CG_EINVAL, "%s: invalid response (page token too long)", subj);
    } else if (json_object_get(p->seen, token) != NULL) {
        cg_err_set(&e, CG_EINVAL, "%s: the service repeated a page token (page %u)", subj,
                   p->pages);
    } else if (p->pages >= MAX_PAGES) {
        cg_err_set(&e, CG_EINVAL, "%s: more than %d pages", subj, MAX_PAGES);
    } else if (json_object_set_new(p->seen, token, json_true()) < 0) {
        cg_err_set(&e, CG_ENOMEM, "out of memory");
    } else if (pager_get(p, token, &e) == 0) {
        return;
    }
    pager_fail(p, NULL, &e);
}

int gcp_rest_call_all(struct gcp_rest *c, enum gcp_api api, const char *path, const char *list_key,
                      const char *label, int flags, gcp_rest_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || path == NULL || list_key == NULL || list_key[0] == '\0') {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_call_all: missing argument");
    }
    struct pager *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    p->c = c;
    p->api = api;
    p->flags = flags;
    p->cb = cb;
    p->data = data;
    p->path = strdup(path);
    p->list_key = strdup(list_key);
    /* without a label, page calls and the pager's own messages name the path */
    p->label = label != NULL ? strdup(label) : strndup(path, strcspn(path, "?"));
    p->items = json_array();
    p->seen = json_object();
    if (p->path == NULL || p->list_key == NULL || p->label == NULL || p->items == NULL ||
        p->seen == NULL) {
        pager_free(p);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = pager_get(p, NULL, err);
    if (rc < 0) {
        pager_free(p);
    }
    return rc;
}

/* ---- long-running operations ------------------------------------------------------------ */

struct waiter {
    struct gcp_rest *c;
    enum gcp_api api;
    json_t *op; /* the latest state */
    char *name;
    char *path;            /* "v1/<name>" */
    char *label;           /* the caller's, for the poll calls */
    char clean[MAX_LABEL]; /* printable, for logs */
    char subj[MAX_LABEL + 8];
    uint64_t started;
    unsigned polls;
    gcp_rest_cb *cb;
    void *data;
};

static void waiter_free(struct waiter *w)
{
    if (w == NULL) {
        return;
    }
    json_decref(w->op);
    free(w->name);
    free(w->path);
    free(w->label);
    free(w);
}

static int op_done(json_t *op)
{
    const char *name = json_string_value(json_object_get(op, "name"));
    return json_is_true(json_object_get(op, "done")) ||
           (name != NULL && strcmp(name, NOOP_OPERATION) == 0);
}

/* Delivers a done operation: its `error` (google.rpc.Status) as an API error, else the
 * operation itself. */
static void waiter_deliver(struct waiter *w)
{
    json_t *error = json_object_get(w->op, "error");
    if (error == NULL || json_is_null(error)) {
        w->cb(w->op, NULL, NULL, w->data);
        waiter_free(w);
        return;
    }
    struct gcp_error g = {0};
    struct cg_err e = {0};
    char fallback[48];
    snprintf(fallback, sizeof(fallback), "operation failed");
    if (json_is_object(error)) {
        read_status(error, &g);
        json_t *code = json_object_get(error, "code");
        json_int_t n = json_is_integer(code) ? json_integer_value(code) : -1;
        /* 0 (OK) with an error present says nothing: treated as unknown */
        if (n > 0 && (size_t)n < sizeof(rpc_codes) / sizeof(rpc_codes[0])) {
            if (g.rpc[0] == '\0') {
                snprintf(g.rpc, sizeof(g.rpc), "%s", rpc_codes[n].name);
            }
            g.status = rpc_codes[n].http;
        } else if (json_is_integer(code)) {
            snprintf(fallback, sizeof(fallback), "operation failed (code %lld)", (long long)n);
        }
    }
    for (size_t i = 1;
         g.status == 0 && g.rpc[0] != '\0' && i < sizeof(rpc_codes) / sizeof(rpc_codes[0]); i++) {
        if (strcmp(g.rpc, rpc_codes[i].name) == 0) {
            g.status = rpc_codes[i].http;
        }
    }
    if (g.status == 0) {
        g.status = 500; /* an error without a known code: UNKNOWN */
    }
    google_err(&e, w->subj, &g, fallback);
    CG_LOG(CG_LOG_DEBUG, "gcp", "GCP operation %s (%s) failed: %s", w->name ? w->name : "?",
           w->clean, g.rpc[0] ? g.rpc : "error");
    w->cb(NULL, &g, &e, w->data);
    waiter_free(w);
}

static void waiter_fail(struct waiter *w, const struct gcp_error *gerr, const struct cg_err *err)
{
    struct gcp_error none = {.status = err->http_status};
    w->cb(NULL, gerr ? gerr : &none, err, w->data);
    waiter_free(w);
}

static void on_ready(void *data, int canceled)
{
    struct waiter *w = data;
    if (canceled) {
        struct cg_err e = {0};
        cg_err_set_http(&e, CG_ECANCELED, 0, "%s: cancelled", w->subj);
        waiter_fail(w, NULL, &e);
        return;
    }
    waiter_deliver(w);
}

static void on_poll(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                    void *data);

static void on_poll_timer(void *data, int canceled)
{
    struct waiter *w = data;
    struct cg_err e = {0};
    if (canceled) {
        cg_err_set_http(&e, CG_ECANCELED, 0, "%s: cancelled", w->subj);
        waiter_fail(w, NULL, &e);
        return;
    }
    if (gcp_rest_call(w->c, w->api, "GET", w->path, NULL, w->label, 0, on_poll, w, &e) < 0) {
        waiter_fail(w, NULL, &e);
    }
}

/* Schedules the next poll, or fails with CG_ETIMEDOUT when the budget is spent. */
static void waiter_next(struct waiter *w)
{
    struct gcp_rest *c = w->c;
    struct cg_err e = {0};
    uint64_t now = cg_now_ms();
    uint64_t deadline = w->started + (uint64_t)c->consistency_ms;
    if (now >= deadline) {
        char d[32];
        cloud__fmt_duration(d, sizeof(d), c->consistency_ms);
        cg_err_set_http(&e, CG_ETIMEDOUT, 0, "%s: operation %s not done after %s", w->subj, w->name,
                        d);
        waiter_fail(w, NULL, &e);
        return;
    }
    long wait = cloud__backoff_ms(&c->rng, c->poll_ms, MAX_WAIT_MS, w->polls);
    if ((uint64_t)wait > deadline - now) {
        wait = (long)(deadline - now);
    }
    int rc = cg_http_after(c->http, wait, on_poll_timer, w);
    if (rc < 0) {
        cg_err_set_http(&e, rc, 0, "%s: %s", w->subj, cg_errc_str(rc));
        waiter_fail(w, NULL, &e);
        return;
    }
    w->polls++;
    CG_LOG(CG_LOG_DEBUG, "gcp", "GCP operation %s (%s): not done, polling in %ld ms", w->name,
           w->clean, wait);
}

static void on_poll(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                    void *data)
{
    struct waiter *w = data;
    if (err != NULL) {
        waiter_fail(w, gerr, err);
        return;
    }
    if (!op_done(result)) {
        waiter_next(w);
        return;
    }
    json_t *copy = json_deep_copy(result);
    if (copy == NULL) {
        struct cg_err e = {0};
        cg_err_set_http(&e, CG_ENOMEM, 0, "%s: out of memory", w->subj);
        waiter_fail(w, NULL, &e);
        return;
    }
    json_decref(w->op);
    w->op = copy;
    waiter_deliver(w);
}

int gcp_rest_wait(struct gcp_rest *c, enum gcp_api api, json_t *operation, const char *label,
                  gcp_rest_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || (int)api < 0 || api >= GCP_API_COUNT) {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_wait: missing argument");
    }
    struct waiter *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    cloud__one_line(w->clean, sizeof(w->clean), label ? label : "", label ? strlen(label) : 0);
    subject(w->subj, sizeof(w->subj), w->clean);
    if (!json_is_object(operation)) {
        int rc = cg_err_set(err, CG_EINVAL, "%s: not an operation", w->subj);
        free(w);
        return rc;
    }
    w->c = c;
    w->api = api;
    w->cb = cb;
    w->data = data;
    w->started = cg_now_ms();
    w->op = json_deep_copy(operation);
    w->label = cg_strdup0(label);
    const char *name = json_string_value(json_object_get(operation, "name"));
    int done = op_done(operation);
    int rc = w->op != NULL && (label == NULL || w->label != NULL) ? 0 : CG_ENOMEM;
    if (rc == 0 && name != NULL) {
        w->name = cloud__one_line_dup(name, strlen(name), MAX_LOG_PATH);
        rc = w->name != NULL ? 0 : CG_ENOMEM;
    }
    if (rc == 0 && !done) {
        size_t n = name ? strlen(name) : 0;
        w->path = malloc(n + 4);
        if (w->path == NULL) {
            rc = CG_ENOMEM;
        } else {
            memcpy(w->path, "v1/", 3);
            memcpy(w->path + 3, name ? name : "", n + 1);
            if (name == NULL || strchr(name, '?') != NULL || !cloud__path_ok(w->path, MAX_PATH)) {
                rc = CG_EINVAL;
            }
        }
    }
    if (rc < 0) {
        if (rc == CG_EINVAL) {
            cg_err_set(err, rc, "%s: the operation has no valid name", w->subj);
        } else {
            cg_err_set(err, rc, "out of memory");
        }
        waiter_free(w);
        return rc;
    }
    if (done) {
        /* already done (Service Usage's noop): no call, but still from the loop */
        rc = cg_http_after(c->http, 0, on_ready, w);
        if (rc < 0) {
            cg_err_set(err, rc, "%s: %s", w->subj, cg_errc_str(rc));
            waiter_free(w);
        }
        return rc;
    }
    long wait = cloud__backoff_ms(&c->rng, c->poll_ms, MAX_WAIT_MS, w->polls++);
    rc = cg_http_after(c->http, wait, on_poll_timer, w);
    if (rc < 0) {
        cg_err_set(err, rc, "%s: %s", w->subj, cg_errc_str(rc));
        waiter_free(w);
        return rc;
    }
    CG_LOG(CG_LOG_DEBUG, "gcp", "GCP operation %s (%s): polling in %ld ms", w->name, w->clean,
           wait);
    return 0;
}

/* ---- consecutive reads ------------------------------------------------------------------ */

/* A read-until-stable loop: Google's IAM and Service Usage are eventually consistent, and one
 * successful read of a new service account or a just-enabled API can come from a replica
 * that has it while the next call lands on one that does not. */
struct confirm {
    struct gcp_rest *c;
    enum gcp_api api;
    char *path;
    char *label;
    char clean[MAX_LABEL];
    char subj[MAX_LABEL + 8];
    int flags;
    unsigned need, got, waits, reads;
    uint64_t started;
    gcp_rest_cb *cb;
    void *data;
};

static void confirm_free(struct confirm *k)
{
    free(k->path);
    free(k->label);
    free(k);
}

static void confirm_fail(struct confirm *k, const struct gcp_error *gerr, const struct cg_err *err)
{
    struct gcp_error none = {.status = err->http_status};
    k->cb(NULL, gerr ? gerr : &none, err, k->data);
    confirm_free(k);
}

static void on_confirm_read(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                            void *data);

static void confirm_read(struct confirm *k)
{
    struct cg_err e = {0};
    k->reads++;
    if (gcp_rest_call(k->c, k->api, "GET", k->path, NULL, k->label, 0, on_confirm_read, k, &e) <
        0) {
        confirm_fail(k, NULL, &e);
    }
}

static void on_confirm_timer(void *data, int canceled)
{
    struct confirm *k = data;
    if (canceled) {
        struct cg_err e = {0};
        cg_err_set_http(&e, CG_ECANCELED, 0, "%s: cancelled", k->subj);
        confirm_fail(k, NULL, &e);
        return;
    }
    confirm_read(k);
}

static void on_confirm_read(json_t *result, const struct gcp_error *gerr, const struct cg_err *err,
                            void *data)
{
    struct confirm *k = data;
    struct gcp_rest *c = k->c;
    const char *why = NULL;
    if (err == NULL) {
        if (++k->got >= k->need) {
            CG_LOG(CG_LOG_DEBUG, "gcp", "GCP %s: confirmed by %u consecutive reads (%u in all)",
                   k->clean, k->got, k->reads);
            k->cb(result, NULL, NULL, k->data);
            confirm_free(k);
            return;
        }
    } else if (gerr == NULL || (why = retry_reason(k->flags, gerr)) == NULL) {
        confirm_fail(k, gerr, err);
        return;
    } else {
        k->got = 0; /* a miss after a hit: the hit was one replica's view */
    }
    uint64_t now = cg_now_ms();
    uint64_t deadline = k->started + (uint64_t)c->consistency_ms;
    if (now >= deadline) {
        char d[32];
        struct cg_err e = {0};
        cloud__fmt_duration(d, sizeof(d), c->consistency_ms);
        cg_err_set_http(&e, CG_ETIMEDOUT, 0,
                        "%s: still %s after %s of retries; wait a few minutes and run again",
                        k->subj, why ? why : "not stable", d);
        confirm_fail(k, gerr, &e);
        return;
    }
    long wait = cloud__backoff_ms(&c->rng, c->poll_ms, MAX_WAIT_MS, k->waits++);
    if ((uint64_t)wait > deadline - now) {
        wait = (long)(deadline - now);
    }
    int rc = cg_http_after(c->http, wait, on_confirm_timer, k);
    if (rc < 0) {
        struct cg_err e = {0};
        cg_err_set_http(&e, rc, 0, "%s: %s", k->subj, cg_errc_str(rc));
        confirm_fail(k, NULL, &e);
        return;
    }
    CG_LOG(CG_LOG_DEBUG, "gcp", "GCP %s: %s (%u of %u reads), reading again in %ld ms", k->clean,
           why ? why : "seen", k->got, k->need, wait);
}

int gcp_rest_confirm(struct gcp_rest *c, enum gcp_api api, const char *path, const char *label,
                     int flags, unsigned need, gcp_rest_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || path == NULL || (int)api < 0 || api >= GCP_API_COUNT) {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_confirm: missing argument");
    }
    if (!cloud__path_ok(path, MAX_PATH)) {
        return cg_err_set(err, CG_EINVAL, "gcp_rest_confirm: invalid path");
    }
    struct confirm *k = calloc(1, sizeof(*k));
    if (k == NULL || (k->path = cg_strdup0(path)) == NULL ||
        (label != NULL && (k->label = cg_strdup0(label)) == NULL)) {
        if (k != NULL) {
            confirm_free(k);
        }
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    cloud__one_line(k->clean, sizeof(k->clean), label ? label : path, strlen(label ? label : path));
    subject(k->subj, sizeof(k->subj), k->clean);
    k->c = c;
    k->api = api;
    k->flags = flags;
    k->need = need > 0 ? need : 1;
    k->started = cg_now_ms();
    k->cb = cb;
    k->data = data;
    struct cg_err e = {0};
    k->reads++;
    if (gcp_rest_call(c, api, "GET", path, NULL, label, 0, on_confirm_read, k, &e) < 0) {
        confirm_free(k);
        if (err != NULL) {
            *err = e;
        }
        return e.code;
    }
    return 0;
}
