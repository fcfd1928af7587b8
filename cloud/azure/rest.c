/* cloud/azure/rest.c: JSON calls to Microsoft Graph and Azure Resource Manager on the cg_http
 * engine. See azure_rest.h and protocols.md 3.2 and 3.3.
 *
 * A call goes: access token for the API's resource (azure_auth_get_token, async) -> one
 * cg_http request whose sign hook sets the bearer token before every attempt -> the JSON
 * answer, or the API's error. Retries happen at three places:
 * - transport errors, 429 and 5xx: inside the engine (backoff, Retry-After);
 * - 401: here, once, because a new token must be fetched asynchronously before resending;
 * - directory replication (AZURE_RETRY_*, and Graph's Directory_ConcurrencyViolation always):
 *   here, on engine timers, with a current token for each send, within consistency_ms.
 *
 * Bodies carry secrets (addPassword answers with secretText), so nothing here logs a body or
 * puts one into a message; messages use only the error's code and message. */
#include "azure_rest.h"

#include "azure_auth.h"

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
#include <strings.h>

#define DEFAULT_TIMEOUT_MS     30000L
#define DEFAULT_CONSISTENCY_MS 120000L
#define DEFAULT_POLL_MS        500L
#define MAX_WAIT_MS            5000L
/* The engine's body cap: a larger body never arrives from the network; the check is for
 * direct callers (tests, fuzzing). */
#define MAX_RESPONSE ((size_t)8 * 1024 * 1024)
/* Real answers nest under 10 levels; the cap keeps jansson's recursion (and json_decref's)
 * far below its own limit, whatever the body. */
#define MAX_DEPTH    128
#define MAX_PAGES    1000
#define MAX_PATH     8192
#define MAX_ENDPOINT 2048
#define MAX_LABEL    200
#define MAX_LOG_PATH 240
#define MAX_HEADERS  16
#define MAX_HEADER   1024

static const struct api_def {
    const char *name; /* for logs */
    const char *var;
    const char *def;
    enum azure_resource res;
    const char *next_key; /* the API's own next-page member */
} apis[AZURE_API_COUNT] = {
    [AZURE_API_GRAPH] = {"graph", "CLOUDGRANT_AZURE_GRAPH_URL", "https://graph.microsoft.com",
                         AZURE_GRAPH, "@odata.nextLink"},
    [AZURE_API_ARM] = {"arm", "CLOUDGRANT_AZURE_ARM_URL", "https://management.azure.com", AZURE_ARM,
                       "nextLink"},
};

struct azure_rest {
    struct cg_http *http;
    struct azure_auth *auth;
    char *base[AZURE_API_COUNT]; /* without a trailing '/' */
    long timeout_ms;
    long consistency_ms;
    long poll_ms;
    uint64_t rng;
    struct azure_rest_stats stats;
};

/* One logical call, across token fetches, the engine's attempts, a 401 and consistency
 * waits. */
struct rcall {
    struct azure_rest *c;
    enum azure_api api;
    char method[8];
    char *url;
    char *log_path; /* printable path without its query, for logs */
    char *label;    /* printable; for messages and logs */
    char *body;     /* serialised request body, NULL for none; wiped on free */
    size_t body_len;
    char **hdr_names; /* the caller's extra headers, split; NULL-terminated */
    char **hdr_values;
    char *auth_header; /* "Bearer <token>"; wiped on free */
    int flags;
    int reauthed;             /* a 401 already led to a new token */
    struct cloud_retry retry; /* consistency waits */
    azure_rest_cb *cb;
    void *data;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void subject(char *dst, size_t cap, const char *label)
{
    if (label != NULL && label[0] != '\0') {
        snprintf(dst, cap, "Azure %s", label);
    } else {
        snprintf(dst, cap, "Azure");
    }
}

static int valid_api(enum azure_api api)
{
    return (int)api >= 0 && api < AZURE_API_COUNT;
}

/* ---- the APIs' errors ------------------------------------------------------------------- */

static int errc_of(long status)
{
    if (status == 404) {
        return CG_ENOTFOUND;
    }
    return status == 401 || status == 403 ? CG_EAUTH : CG_ESTATUS;
}

static int invalid(struct cg_err *err, long status, const char *subj)
{
    int code = status >= 200 && status < 300    ? CG_EINVAL
               : status == 401 || status == 403 ? CG_EAUTH
                                                : CG_ESTATUS;
    return cg_err_set_http(err, code, status, "%s: invalid response (HTTP %ld)", subj, status);
}

/* The error object of an answer: {"error":{"code","message",...}} as both APIs send it, or a
 * bare {"code","message"} as a few ARM resource providers do; NULL for anything else. */
static json_t *error_object(json_t *doc)
{
    json_t *e = json_object_get(doc, "error");
    if (json_is_object(e)) {
        return json_is_string(json_object_get(e, "code")) ||
                       json_is_string(json_object_get(e, "message"))
                   ? e
                   : NULL;
    }
    if (e == NULL && json_is_string(json_object_get(doc, "code")) &&
        json_is_string(json_object_get(doc, "message"))) {
        return doc;
    }
    return NULL;
}

/* The parser behind azure_rest_parse_response; label is printable already. */
static int parse_response(const char *body, size_t len, long status, const char *label,
                          json_t **result, struct azure_error *aerr, struct cg_err *err)
{
    struct azure_error scratch;
    if (aerr == NULL) {
        aerr = &scratch;
    }
    memset(aerr, 0, sizeof(*aerr));
    aerr->status = status;
    *result = NULL;
    char subj[MAX_LABEL + 8];
    subject(subj, sizeof(subj), label);
    json_t *doc = NULL;
    int rc = cloud__json_answer(body, len, status, subj, MAX_RESPONSE, MAX_DEPTH, &doc, err);
    if (rc <= 0) {
        *result = doc;
        return rc;
    }
    json_t *e = error_object(doc);
    if (e == NULL) {
        /* not the APIs' error shape: an HTML page from a proxy, an OAuth error, ... */
        json_decref(doc);
        return invalid(err, status, subj);
    }
    /* Graph's innerError (date, request ids) and ARM's details are left out of messages */
    cloud__copy_ident(aerr->code, sizeof(aerr->code),
                      json_string_value(json_object_get(e, "code")));
    json_t *msg = json_object_get(e, "message");
    if (json_is_string(msg)) {
        cloud__one_line(aerr->message, sizeof(aerr->message), json_string_value(msg),
                        json_string_length(msg));
    }
    json_decref(doc);
    char fallback[32];
    snprintf(fallback, sizeof(fallback), "HTTP %ld", status);
    const char *what = aerr->code[0] != '\0' ? aerr->code : fallback;
    int code = errc_of(status);
    if (aerr->message[0] != '\0') {
        return cg_err_set_http(err, code, status, "%s: %s: %s", subj, what, aerr->message);
    }
    return cg_err_set_http(err, code, status, "%s: %s", subj, what);
}

int azure_rest_parse_response(const char *body, size_t len, long status, const char *label,
                              json_t **result, struct azure_error *aerr, struct cg_err *err)
{
    if (result == NULL) {
        return cg_err_set(err, CG_EINVAL, "azure_rest_parse_response: missing argument");
    }
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), label, label ? strlen(label) : 0);
    return parse_response(body, len, status, clean, result, aerr, err);
}

/* ---- client ----------------------------------------------------------------------------- */

static const char *env_get(const char *name)
{
    return getenv(name);
}

static int endpoint_from_env(struct azure_rest *c, enum azure_api api,
                             const char *(*get)(const char *), int allow_insecure,
                             struct cg_err *err)
{
    const char *var = apis[api].var;
    const char *v = get(var);
    if (v == NULL || v[0] == '\0') {
        v = apis[api].def;
    } else {
        int rc = cloud__endpoint_check(var, v, MAX_ENDPOINT, allow_insecure, err);
        if (rc < 0) {
            return rc;
        }
        CG_LOG(CG_LOG_DEBUG, "azure", "%s endpoint from %s", apis[api].name, var);
    }
    if ((c->base[api] = strdup(v)) == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    size_t n = strlen(c->base[api]);
    while (n > 0 && c->base[api][n - 1] == '/') {
        c->base[api][--n] = '\0';
    }
    return 0;
}

int azure_rest_new(struct azure_rest **out, struct cg_http *h, struct azure_auth *auth,
                   const struct azure_rest_config *cfg, struct cg_err *err)
{
    if (out == NULL || h == NULL || auth == NULL) {
        return cg_err_set(err, CG_EINVAL, "azure_rest_new: missing argument");
    }
    static const struct azure_rest_config defaults = {0};
    if (cfg == NULL) {
        cfg = &defaults;
    }
    struct azure_rest *c = calloc(1, sizeof(*c));
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
    for (int api = 0; api < AZURE_API_COUNT; api++) {
        int rc = endpoint_from_env(c, (enum azure_api)api, get, cfg->allow_insecure_http, err);
        if (rc < 0) {
            azure_rest_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void azure_rest_free(struct azure_rest *c)
{
    if (c == NULL) {
        return;
    }
    for (int api = 0; api < AZURE_API_COUNT; api++) {
        free(c->base[api]);
    }
    free(c);
}

const char *azure_rest_endpoint(const struct azure_rest *c, enum azure_api api)
{
    if (c == NULL || !valid_api(api)) {
        return NULL;
    }
    return c->base[api];
}

void azure_rest_get_stats(const struct azure_rest *c, struct azure_rest_stats *out)
{
    *out = c->stats;
}

/* ---- one call --------------------------------------------------------------------------- */

static int valid_method(const char *m)
{
    static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; m != NULL && i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(m, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void free_list(char **list)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        free(list[i]);
    }
    free(list);
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
    free_list(q->hdr_names);
    free_list(q->hdr_values);
    cg_secret_free(q->auth_header);
    free(q);
}

static int tchar(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Splits the caller's "Name: value" lines into names and values (copies). Names are HTTP
 * tokens; values printable, without line breaks (they would inject headers). The headers this
 * module owns cannot be replaced. 0 or CG_EINVAL / CG_ENOMEM with *what set. */
static int split_headers(const char *const *headers, char ***names, char ***values,
                         const char **what)
{
    static const char *const reserved[] = {"Authorization", "Content-Type", "Content-Length",
                                           "Host", "Transfer-Encoding"};
    size_t n = 0;
    while (headers != NULL && headers[n] != NULL) {
        n++;
    }
    *names = NULL;
    *values = NULL;
    if (n > MAX_HEADERS) {
        *what = "too many extra headers";
        return CG_EINVAL;
    }
    char **nv = calloc(n + 1, sizeof(char *));
    char **vv = calloc(n + 1, sizeof(char *));
    if (nv == NULL || vv == NULL) {
        free(nv);
        free(vv);
        *what = "out of memory";
        return CG_ENOMEM;
    }
    *names = nv;
    *values = vv;
    for (size_t i = 0; i < n; i++) {
        const char *line = headers[i];
        size_t nlen = 0;
        while (tchar(line[nlen])) {
            nlen++;
        }
        if (nlen == 0 || line[nlen] != ':' || strlen(line) > MAX_HEADER) {
            *what = "an extra header is not a \"Name: value\" line";
            return CG_EINVAL;
        }
        const char *v = line + nlen + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        for (const char *p = v; *p != '\0'; p++) {
            if (((unsigned char)*p < 0x20 && *p != '\t') || (unsigned char)*p == 0x7f) {
                *what = "an extra header has a control character";
                return CG_EINVAL;
            }
        }
        for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++) {
            if (strlen(reserved[r]) == nlen && strncasecmp(line, reserved[r], nlen) == 0) {
                *what = "an extra header replaces one the client sets";
                return CG_EINVAL;
            }
        }
        if ((nv[i] = strndup(line, nlen)) == NULL || (vv[i] = strdup(v)) == NULL) {
            *what = "out of memory";
            return CG_ENOMEM;
        }
    }
    return 0;
}

#define LOG_CALL_FMT    "Azure %s %s %s (%s)"
#define LOG_CALL_ARG(q) (q)->method, apis[(q)->api].name, (q)->log_path, (q)->label

static void finish_ok(struct rcall *q, json_t *result, long status)
{
    q->cb(result, status, NULL, NULL, q->data);
    rcall_free(q);
}

static void finish_err(struct rcall *q, const struct azure_error *aerr, const struct cg_err *err)
{
    struct azure_error none = {.status = err->http_status};
    q->cb(NULL, err->http_status, aerr ? aerr : &none, err, q->data);
    rcall_free(q);
}

/* Failures that did not come from the API (transport, token): prefixes the subject. */
static void finish_wrapped(struct rcall *q, const struct cg_err *cause)
{
    struct cg_err e = {0};
    char subj[MAX_LABEL + 8];
    subject(subj, sizeof(subj), q->label);
    int code = cause->code != 0 ? cause->code : CG_EINVAL;
    cg_err_set_http(&e, code, cause->http_status, "%s: %s", subj,
                    cause->msg[0] != '\0' ? cause->msg : cg_errc_str(code));
    CG_LOG(CG_LOG_DEBUG, "azure", LOG_CALL_FMT " -> failed (%s)", LOG_CALL_ARG(q),
           cg_errc_str(code));
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

/* What makes an error worth waiting for, or NULL. */
static const char *retry_reason(int flags, const struct azure_error *g)
{
    if (g->status == 409 && strcmp(g->code, "Directory_ConcurrencyViolation") == 0) {
        return "Directory_ConcurrencyViolation";
    }
    /* only the API's own 404: one from a wrong endpoint or a proxy will not go away */
    if ((flags & AZURE_RETRY_NOT_FOUND) && g->status == 404 &&
        (g->code[0] != '\0' || g->message[0] != '\0')) {
        return "not found";
    }
    if ((flags & AZURE_RETRY_REPLICATION) && g->status == 400 &&
        (strcmp(g->code, "PrincipalNotFound") == 0 ||
         strcmp(g->code, "NoBackingApplicationObject") == 0 ||
         strstr(g->message, "does not reference a valid application object") != NULL)) {
        return "not replicated";
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

/* Replication: waits and sends again when the condition is one to retry and the budget
 * allows; returns 1 when a wait was scheduled. */
static int consistency_retry(struct rcall *q, const struct azure_error *g)
{
    struct azure_rest *c = q->c;
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
        CG_LOG(CG_LOG_DEBUG, "azure", LOG_CALL_FMT ": %s after %s of retries, giving up",
               LOG_CALL_ARG(q), why, spent);
        return 0;
    }
    if (cg_http_after(c->http, wait, on_wait_done, q) < 0) {
        return 0;
    }
    CG_LOG(CG_LOG_DEBUG, "azure", LOG_CALL_FMT ": %s, waiting %ld ms (retry %u)", LOG_CALL_ARG(q),
           why, wait, q->retry.waits);
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
    struct azure_error g;
    struct cg_err e = {0};
    int rc = parse_response(body, len, status, q->label, &result, &g, &e);
    if (rc == 0) {
        CG_LOG(CG_LOG_DEBUG, "azure", LOG_CALL_FMT " -> %ld", LOG_CALL_ARG(q), status);
        finish_ok(q, result, status);
        json_decref(result);
        return;
    }
    CG_LOG(CG_LOG_DEBUG, "azure", LOG_CALL_FMT " -> %ld%s%s", LOG_CALL_ARG(q), status,
           g.code[0] ? " " : "", g.code);
    if (status == 401 && !q->reauthed) {
        /* The token was revoked or expired early: forget it, fetch a new one, send once
         * more. */
        q->reauthed = 1;
        azure_auth_invalidate(q->c->auth, apis[q->api].res);
        CG_LOG(CG_LOG_DEBUG, "azure", LOG_CALL_FMT ": 401, retrying with a new token",
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

/* Builds and submits the HTTP request; on failure err is filled and nothing was sent. */
static int submit(struct rcall *q, struct cg_err *err)
{
    struct azure_rest *c = q->c;
    char label[64];
    snprintf(label, sizeof(label), "Azure %s %s", q->method, apis[q->api].name);
    struct cg_http_req *req = NULL;
    int rc = cloud__json_req_new(q->method, q->url, q->body, q->body_len,
                                 (const char *const *)q->hdr_names,
                                 (const char *const *)q->hdr_values, label, &req, err);
    if (rc < 0) {
        return rc;
    }
    cg_http_req_set_timeout(req, c->timeout_ms);
    cg_http_req_set_sign(req, sign_hook, q);
    if (q->flags & AZURE_SEND_ONCE) {
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
    return azure_auth_get_token(q->c->auth, apis[q->api].res, on_token, q, err);
}

int azure_rest_call(struct azure_rest *c, enum azure_api api, const char *method, const char *path,
                    json_t *body, const char *const *headers, const char *label, int flags,
                    azure_rest_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || !valid_api(api)) {
        return cg_err_set(err, CG_EINVAL, "azure_rest_call: missing argument");
    }
    char subj[MAX_LABEL + 8];
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), label, label ? strlen(label) : 0);
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
    const char *what = NULL;
    int rc = split_headers(headers, &q->hdr_names, &q->hdr_values, &what);
    if (rc < 0) {
        rcall_free(q);
        return cg_err_set(err, rc, "%s: %s", subj, what);
    }
    q->c = c;
    q->api = api;
    q->flags = flags;
    q->cb = cb;
    q->data = data;
    snprintf(q->method, sizeof(q->method), "%s", method);
    size_t blen = strlen(c->base[api]), plen = strlen(path);
    q->url = malloc(blen + plen + 2);
    if (q->url != NULL) {
        memcpy(q->url, c->base[api], blen);
        q->url[blen] = '/';
        memcpy(q->url + blen + 1, path, plen + 1);
    }
    q->log_path = cloud__one_line_dup(path, strcspn(path, "?"), MAX_LOG_PATH);
    q->label =
        clean[0] != '\0' ? strdup(clean) : cloud__one_line_dup(path, strcspn(path, "?"), MAX_LABEL);
    rc = q->url && q->log_path && q->label ? 0 : CG_ENOMEM;
    if (rc == 0 && body != NULL) {
        /* request bodies are sent as given, compact; never logged */
        q->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = q->body != NULL ? 0 : CG_EINVAL;
        q->body_len = q->body ? strlen(q->body) : 0;
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
    if (strcmp(method, "GET") == 0) {
        c->stats.reads++;
    } else {
        c->stats.writes++;
    }
    return 0;
}

/* ---- pagination ------------------------------------------------------------------------- */

struct pager {
    struct azure_rest *c;
    enum azure_api api;
    char *label;    /* the caller's, or the path without its query */
    char **headers; /* the caller's, copied, for every page */
    char subj[MAX_LABEL + 8];
    int flags;
    json_t *items;
    json_t *seen; /* links already followed, as object keys */
    unsigned pages;
    azure_rest_cb *cb;
    void *data;
};

static void pager_free(struct pager *p)
{
    if (p == NULL) {
        return;
    }
    free(p->label);
    free_list(p->headers);
    json_decref(p->items);
    json_decref(p->seen);
    free(p);
}

static void pager_fail(struct pager *p, const struct azure_error *aerr, const struct cg_err *err)
{
    struct azure_error none = {.status = err->http_status};
    p->cb(NULL, err->http_status, aerr ? aerr : &none, err, p->data);
    pager_free(p);
}

static void on_page(json_t *result, long status, const struct azure_error *aerr,
                    const struct cg_err *err, void *data);

static int pager_get(struct pager *p, const char *path, struct cg_err *err)
{
    return azure_rest_call(p->c, p->api, "GET", path, NULL, (const char *const *)p->headers,
                           p->label, p->flags, on_page, p, err);
}

/* The next page's path relative to the API's base, or NULL when the link leads anywhere else:
 * the bearer token goes with it. */
static const char *relative_link(const struct pager *p, const char *link)
{
    const char *base = p->c->base[p->api];
    size_t blen = strlen(base);
    if (strncmp(link, base, blen) != 0 || link[blen] != '/') {
        return NULL;
    }
    const char *rel = link + blen + 1;
    return cloud__path_ok(rel, MAX_PATH) ? rel : NULL;
}

static void on_page(json_t *result, long status, const struct azure_error *aerr,
                    const struct cg_err *err, void *data)
{
    struct pager *p = data;
    if (err != NULL) {
        pager_fail(p, aerr, err);
        return;
    }
    p->pages++;
    struct cg_err e = {0};
    const char *own = apis[p->api].next_key;
    const char *other = apis[(p->api + 1) % AZURE_API_COUNT].next_key;
    json_t *list = json_object_get(result, "value");
    json_t *next = json_object_get(result, own);
    if (next == NULL) {
        next = json_object_get(result, other);
    }
    const char *link = json_string_value(next);
    const char *rel = NULL;
    if (list != NULL && !json_is_array(list)) {
        cg_err_set_http(&e, CG_EINVAL, status, "%s: invalid response ('value' is not a list)",
                        p->subj);
    } else if (list != NULL && json_array_extend(p->items, list) < 0) {
        cg_err_set_http(&e, CG_ENOMEM, status, "%s: out of memory", p->subj);
    } else if (next != NULL && !json_is_null(next) && link == NULL) {
        cg_err_set_http(&e, CG_EINVAL, status,
                        "%s: invalid response (the next-page link is not a string)", p->subj);
    } else if (link == NULL || link[0] == '\0') {
        /* the last page */
        json_t *out = json_object();
        if (out == NULL || json_object_set(out, "value", p->items) < 0) {
            json_decref(out);
            cg_err_set_http(&e, CG_ENOMEM, status, "%s: out of memory", p->subj);
        } else {
            p->cb(out, status, NULL, NULL, p->data);
            json_decref(out);
            pager_free(p);
            return;
        }
    } else if ((rel = relative_link(p, link)) == NULL) {
        /* never quote the link: it is the server's text; the base is ours */
        cg_err_set_http(&e, CG_EINVAL, status,
                        "%s: the next-page link does not lead to %s (refused)", p->subj,
                        p->c->base[p->api]);
    } else if (json_object_get(p->seen, link) != NULL) {
        cg_err_set_http(&e, CG_EINVAL, status,
                        "%s: the service repeated a next-page link (page %u)", p->subj, p->pages);
    } else if (p->pages >= MAX_PAGES) {
        cg_err_set_http(&e, CG_EINVAL, status, "%s: more than %d pages", p->subj, MAX_PAGES);
    } else if (json_object_set_new(p->seen, link, json_true()) < 0) {
        cg_err_set_http(&e, CG_ENOMEM, status, "%s: out of memory", p->subj);
    } else if (pager_get(p, rel, &e) == 0) {
        return;
    }
    pager_fail(p, NULL, &e);
}

static char **copy_list(const char *const *list)
{
    size_t n = 0;
    while (list != NULL && list[n] != NULL) {
        n++;
    }
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out != NULL && i < n; i++) {
        if ((out[i] = strdup(list[i])) == NULL) {
            free_list(out);
            return NULL;
        }
    }
    return out;
}

int azure_rest_call_all(struct azure_rest *c, enum azure_api api, const char *path,
                        const char *const *headers, const char *label, int flags, azure_rest_cb *cb,
                        void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || path == NULL || !valid_api(api)) {
        return cg_err_set(err, CG_EINVAL, "azure_rest_call_all: missing argument");
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
    /* without a label, page calls and the pager's own messages name the path */
    p->label = label != NULL ? strdup(label) : strndup(path, strcspn(path, "?"));
    p->headers = copy_list(headers);
    p->items = json_array();
    p->seen = json_object();
    if (p->label == NULL || p->headers == NULL || p->items == NULL || p->seen == NULL) {
        pager_free(p);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), p->label, strlen(p->label));
    subject(p->subj, sizeof(p->subj), clean);
    int rc = pager_get(p, path, err);
    if (rc < 0) {
        pager_free(p);
    }
    return rc;
}
