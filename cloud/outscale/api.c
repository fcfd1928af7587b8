/* cloud/outscale/api.c: calls to the OUTSCALE API on the cg_http engine. See osc_api.h and
 * protocols.md 4.1-4.3.
 *
 * A call is one POST <endpoint>/<Action> with a JSON object body, signed OSC4 (aws_sigv4 with
 * the OSC4 constants) in the engine's sign hook, so each attempt carries a fresh X-Osc-Date.
 * Retries happen at two places:
 * - transport errors, 429 and 5xx, and Outscale's throttling (RequestLimitExceeded, which may
 *   come as a 400): inside the engine (backoff, Retry-After), through a retry classifier;
 * - eventual consistency (OSC_RETRY_*): here, on engine timers, within consistency_ms.
 * A 401 is retried at neither place: four refused signatures in a row lock the key.
 *
 * Bodies carry secrets (CreateAccessKey answers with SecretKey), so nothing here logs a body or
 * puts one into a message; messages use only the error's Type, Code and Details. */
#include "osc_api.h"

#include "osc_auth.h"

#include "../rest_common.h"
#include "aws_sigv4.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS     30000L
#define DEFAULT_CONSISTENCY_MS 60000L
#define DEFAULT_POLL_MS        500L
#define MAX_WAIT_MS            5000L
/* The engine's body cap: a larger body never arrives from the network; the check is for
 * direct callers (tests, fuzzing). */
#define MAX_RESPONSE ((size_t)8 * 1024 * 1024)
/* Real answers nest under 10 levels; the cap keeps jansson's recursion far below its own. */
#define MAX_DEPTH 128
/* A throttling answer is a small error document: larger bodies are not parsed to classify. */
#define MAX_CLASSIFY       ((size_t)64 * 1024)
#define MAX_ERRORS_SCANNED 16
#define MAX_PAGES          1000
#define MAX_PAGE_SIZE      1000
#define DEFAULT_PAGE_SIZE  100
#define MAX_ENDPOINT       2048
#define MAX_LABEL          200
#define MAX_ACTION         64
#define MAX_LIST_KEY       64

#define LOCK_NOTE                                                                                  \
    " (the signature was refused and is not sent again: four refusals in a row lock the key "      \
    "for a minute; check the access key, the secret key and the region)"

struct osc_api {
    struct cg_http *http;
    char *endpoint; /* without a trailing '/' */
    char *region;
    struct aws_credentials creds; /* the key pair; no session token */
    char *cert_pem;               /* NULL when none */
    size_t cert_len;
    char *key_pem; /* secret */
    size_t key_len;
    long timeout_ms;
    long consistency_ms;
    long poll_ms;
    int64_t (*now)(void);
    uint64_t rng;
    struct osc_api_stats stats;
};

/* One logical call, across the engine's attempts and consistency waits. */
struct ocall {
    struct osc_api *c;
    char action[MAX_ACTION + 1];
    char *url;
    char *label; /* printable; for messages and logs */
    char *body;  /* serialised request body; wiped on free */
    size_t body_len;
    int flags;
    struct cloud_retry retry; /* consistency waits */
    osc_api_cb *cb;
    void *data;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void subject(char *dst, size_t cap, const char *label)
{
    if (label != NULL && label[0] != '\0') {
        snprintf(dst, cap, "OUTSCALE %s", label);
    } else {
        snprintf(dst, cap, "OUTSCALE");
    }
}

static int action_ok(const char *a)
{
    size_t n = 0;
    for (; a != NULL && a[n] != '\0'; n++) {
        if (!((a[n] >= 'A' && a[n] <= 'Z') || (a[n] >= 'a' && a[n] <= 'z')) || n >= MAX_ACTION) {
            return 0;
        }
    }
    return n > 0;
}

/* Reads are Read* and CheckAuthentication; the rest may change something. */
static int is_read(const char *action)
{
    return strncmp(action, "Read", 4) == 0 || strcmp(action, "CheckAuthentication") == 0;
}

static int digits_only(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

/* ---- the API's errors ------------------------------------------------------------------- */

int osc_error_is_conflict(const struct osc_error *e)
{
    return e != NULL && (e->status == 409 || strcmp(e->type, "ResourceConflict") == 0);
}

static int auth_type(const char *type)
{
    return strcmp(type, "AccessDenied") == 0 || strcmp(type, "AuthFailure") == 0;
}

/* The first entry of Outscale's {"Errors":[...]} when it has any of the fields; else NULL. */
static json_t *first_error(json_t *doc)
{
    json_t *errs = json_object_get(doc, "Errors");
    json_t *e = json_array_get(errs, 0);
    if (!json_is_object(e)) {
        return NULL;
    }
    if (!json_is_string(json_object_get(e, "Type")) &&
        !json_is_string(json_object_get(e, "Code")) &&
        !json_is_string(json_object_get(e, "Details"))) {
        return NULL;
    }
    return e;
}

/* Fills oerr from an error document; 0 when the document has neither Outscale's shape nor
 * application/problem+json's. */
static int error_fields(json_t *doc, struct osc_error *oerr)
{
    json_t *e = first_error(doc);
    if (e != NULL) {
        const char *code = json_string_value(json_object_get(e, "Code"));
        const char *type = json_string_value(json_object_get(e, "Type"));
        if (digits_only(code)) {
            cloud__copy_ident(oerr->code, sizeof(oerr->code), code);
        }
        cloud__copy_ident(oerr->type, sizeof(oerr->type), type);
        if (oerr->type[0] == '\0' && code != NULL &&
            ((code[0] >= 'A' && code[0] <= 'Z') || (code[0] >= 'a' && code[0] <= 'z'))) {
            /* a named code ("RequestLimitExceeded") without a Type says the category */
            cloud__copy_ident(oerr->type, sizeof(oerr->type), code);
        }
        json_t *d = json_object_get(e, "Details");
        if (json_is_string(d)) {
            cloud__one_line(oerr->details, sizeof(oerr->details), json_string_value(d),
                            json_string_length(d));
        }
        cloud__copy_ident(oerr->request_id, sizeof(oerr->request_id),
                          json_string_value(json_object_get(json_object_get(doc, "ResponseContext"),
                                                            "RequestId")));
        return 1;
    }
    /* application/problem+json (RFC 7807), which osc-sdk-python also reads */
    json_t *title = json_object_get(doc, "title");
    json_t *detail = json_object_get(doc, "detail");
    if (json_object_get(doc, "Errors") != NULL ||
        (!json_is_string(title) && !json_is_string(detail))) {
        return 0;
    }
    char t[MAX_LABEL] = "";
    char d[sizeof(oerr->details)] = "";
    if (json_is_string(title)) {
        cloud__copy_ident(oerr->type, sizeof(oerr->type), json_string_value(title));
        if (oerr->type[0] == '\0') {
            cloud__one_line(t, sizeof(t), json_string_value(title), json_string_length(title));
        }
    }
    if (json_is_string(detail)) {
        cloud__one_line(d, sizeof(d), json_string_value(detail), json_string_length(detail));
    }
    char both[sizeof(t) + sizeof(d) + 2];
    snprintf(both, sizeof(both), "%s%s%s", t, t[0] && d[0] ? ": " : "", d);
    cloud__one_line(oerr->details, sizeof(oerr->details), both, strlen(both));
    return 1;
}

/* "<subj>: invalid response (HTTP n)" for an answer without the API's error shape. */
static int invalid(struct cg_err *err, long status, const char *subj)
{
    int code = status >= 200 && status < 300    ? CG_EINVAL
               : status == 401 || status == 403 ? CG_EAUTH
                                                : CG_ESTATUS;
    cg_err_set_http(err, code, status, "%s: invalid response (HTTP %ld)", subj, status);
    if (status == 401) {
        cloud__err_append(err, LOCK_NOTE);
    }
    return code;
}

/* The message of an API error: "<subj>: <Type> (<Code>): <Details>". */
static int api_error(struct cg_err *err, const struct osc_error *oerr, const char *subj)
{
    long status = oerr->status;
    int code = CG_ESTATUS;
    if (status == 401 || status == 403 || auth_type(oerr->type)) {
        code = CG_EAUTH;
    } else if (status == 404 || strcmp(oerr->type, "InvalidResource") == 0) {
        code = CG_ENOTFOUND;
    }
    char what[sizeof(oerr->type) + sizeof(oerr->code) + 32];
    if (oerr->type[0] != '\0') {
        snprintf(what, sizeof(what), "%s", oerr->type);
    } else {
        snprintf(what, sizeof(what), "HTTP %ld", status);
    }
    if (oerr->code[0] != '\0') {
        size_t n = strlen(what);
        snprintf(what + n, sizeof(what) - n, " (%s)", oerr->code);
    }
    cg_err_set_http(err, code, status, "%s: %s%s%s", subj, what, oerr->details[0] ? ": " : "",
                    oerr->details);
    if (status == 401 || strcmp(oerr->type, "AuthFailure") == 0) {
        cloud__err_append(err, LOCK_NOTE);
    }
    return code;
}

/* The parser behind osc_api_parse_response; label is printable already. */
static int parse_response(const char *body, size_t len, long status, const char *label,
                          json_t **result, struct osc_error *oerr, struct cg_err *err)
{
    struct osc_error scratch;
    if (oerr == NULL) {
        oerr = &scratch;
    }
    memset(oerr, 0, sizeof(*oerr));
    oerr->status = status;
    *result = NULL;
    char subj[MAX_LABEL + 16];
    subject(subj, sizeof(subj), label);
    json_t *doc = NULL;
    int rc = cloud__json_answer(body, len, status, subj, MAX_RESPONSE, MAX_DEPTH, &doc, err);
    if (rc <= 0) {
        *result = doc;
        return rc;
    }
    int has = json_is_object(doc) && error_fields(doc, oerr);
    json_decref(doc);
    if (!has) {
        /* an HTML page from a proxy, an empty 502, ... */
        return invalid(err, status, subj);
    }
    return api_error(err, oerr, subj);
}

int osc_api_parse_response(const char *body, size_t len, long status, const char *label,
                           json_t **result, struct osc_error *oerr, struct cg_err *err)
{
    if (result == NULL) {
        return cg_err_set(err, CG_EINVAL, "osc_api_parse_response: missing argument");
    }
    char clean[MAX_LABEL];
    cloud__one_line(clean, sizeof(clean), label, label ? strlen(label) : 0);
    return parse_response(body, len, status, clean, result, oerr, err);
}

/* ---- client ----------------------------------------------------------------------------- */

void osc_api_free(struct osc_api *c)
{
    if (c == NULL) {
        return;
    }
    free(c->endpoint);
    free(c->region);
    aws_credentials_cleanup(&c->creds);
    free(c->cert_pem);
    if (c->key_pem != NULL) {
        cg_wipe(c->key_pem, c->key_len);
        free(c->key_pem);
    }
    free(c);
}

static char *dup_n(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n + 1);
        *len = n;
    }
    return d;
}

int osc_api_new(struct osc_api **out, struct cg_http *h, const struct osc_credentials *creds,
                const struct osc_api_config *cfg, struct cg_err *err)
{
    if (out == NULL || h == NULL || creds == NULL || creds->access_key == NULL ||
        creds->secret_key == NULL || creds->region == NULL || creds->endpoint_api == NULL) {
        return cg_err_set(err, CG_EINVAL, "osc_api_new: missing argument");
    }
    static const struct osc_api_config defaults = {0};
    if (cfg == NULL) {
        cfg = &defaults;
    }
    if ((creds->client_cert_pem == NULL) != (creds->client_key_pem == NULL)) {
        return cg_err_set(err, CG_EINVAL,
                          "OUTSCALE client certificate: a certificate and a key, or neither");
    }
    int rc = cloud__endpoint_check("the OUTSCALE API endpoint", creds->endpoint_api, MAX_ENDPOINT,
                                   cfg->allow_insecure_http, err);
    if (rc < 0) {
        return rc;
    }
    struct osc_api *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    c->http = h;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->consistency_ms = cfg->consistency_ms > 0 ? cfg->consistency_ms : DEFAULT_CONSISTENCY_MS;
    c->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : DEFAULT_POLL_MS;
    if (c->poll_ms > MAX_WAIT_MS) {
        c->poll_ms = MAX_WAIT_MS;
    }
    c->now = cfg->now;
    c->rng = cloud__rng_seed(c);
    c->endpoint = strdup(creds->endpoint_api);
    c->region = strdup(creds->region);
    c->creds.access_key_id = strdup(creds->access_key);
    c->creds.secret_access_key = strdup(creds->secret_key);
    c->creds.source = cg_strdup0(creds->source);
    rc = c->endpoint && c->region && c->creds.access_key_id && c->creds.secret_access_key &&
                 (creds->source == NULL || c->creds.source != NULL)
             ? 0
             : CG_ENOMEM;
    if (rc == 0 && creds->client_cert_pem != NULL) {
        c->cert_pem = dup_n(creds->client_cert_pem, &c->cert_len);
        c->key_pem = dup_n(creds->client_key_pem, &c->key_len);
        rc = c->cert_pem && c->key_pem ? 0 : CG_ENOMEM;
    }
    if (rc < 0) {
        osc_api_free(c);
        return cg_err_set(err, rc, "out of memory");
    }
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/') {
        c->endpoint[--n] = '\0';
    }
    *out = c;
    return 0;
}

const char *osc_api_endpoint(const struct osc_api *c)
{
    return c != NULL ? c->endpoint : NULL;
}

const char *osc_api_region(const struct osc_api *c)
{
    return c != NULL ? c->region : NULL;
}

void osc_api_get_stats(const struct osc_api *c, struct osc_api_stats *out)
{
    if (out == NULL) {
        return;
    }
    if (c == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = c->stats;
}

/* ---- one call --------------------------------------------------------------------------- */

static void ocall_free(struct ocall *q)
{
    if (q == NULL) {
        return;
    }
    free(q->url);
    free(q->label);
    if (q->body != NULL) {
        cg_wipe(q->body, q->body_len);
        free(q->body);
    }
    free(q);
}

#define LOG_CALL_FMT    "OUTSCALE %s (%s)"
#define LOG_CALL_ARG(q) (q)->action, (q)->label

static void finish_ok(struct ocall *q, json_t *result)
{
    q->cb(result, NULL, NULL, q->data);
    ocall_free(q);
}

static void finish_err(struct ocall *q, const struct osc_error *oerr, const struct cg_err *err)
{
    struct osc_error none;
    if (oerr == NULL) {
        memset(&none, 0, sizeof(none));
        none.status = err->http_status;
        oerr = &none;
    }
    q->cb(NULL, oerr, err, q->data);
    ocall_free(q);
}

/* Failures that did not come from the API (transport, deadline, cancellation): prefixes the
 * subject. */
static void finish_wrapped(struct ocall *q, const struct cg_err *cause)
{
    struct cg_err e = {0};
    char subj[MAX_LABEL + 16];
    subject(subj, sizeof(subj), q->label);
    int code = cause->code != 0 ? cause->code : CG_EINVAL;
    cg_err_set_http(&e, code, cause->http_status, "%s: %s", subj,
                    cause->msg[0] != '\0' ? cause->msg : cg_errc_str(code));
    CG_LOG(CG_LOG_DEBUG, "osc", LOG_CALL_FMT " -> failed (%s)", LOG_CALL_ARG(q), cg_errc_str(code));
    finish_err(q, NULL, &e);
}

static int sign_hook(struct cg_http_req *req, void *data, struct cg_err *err)
{
    struct ocall *q = data;
    struct osc_api *c = q->c;
    int64_t now = c->now != NULL ? c->now() : (int64_t)time(NULL);
    return aws_sigv4_sign_http(&aws_sigv4_osc, req, &c->creds, c->region, "api", now, err);
}

/* Outscale's throttling of identical requests: an error whose Type or Code is
 * RequestLimitExceeded. */
static int throttled(json_t *doc)
{
    json_t *errs = json_object_get(doc, "Errors");
    size_t n = json_array_size(errs);
    for (size_t i = 0; i < n && i < MAX_ERRORS_SCANNED; i++) {
        json_t *e = json_array_get(errs, i);
        const char *type = json_string_value(json_object_get(e, "Type"));
        const char *code = json_string_value(json_object_get(e, "Code"));
        if ((type != NULL && strcmp(type, "RequestLimitExceeded") == 0) ||
            (code != NULL && strcmp(code, "RequestLimitExceeded") == 0)) {
            return 1;
        }
    }
    return 0;
}

/* The engine's retry classifier: consulted for statuses it does not retry by itself (so for
 * 400, and for 401, which must never be sent again: 4 refused signatures lock the key). */
static int classify(struct cg_http_req *req, void *data)
{
    struct ocall *q = data;
    long status = cg_http_req_status(req);
    if (status != 400 && status != 503) {
        return 0;
    }
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    if (body == NULL || len == 0 || len > MAX_CLASSIFY) {
        return 0;
    }
    json_t *doc = cloud__json_load(body, len, MAX_DEPTH);
    int retry = throttled(doc);
    json_decref(doc);
    if (retry) {
        CG_LOG(CG_LOG_DEBUG, "osc", LOG_CALL_FMT ": %ld RequestLimitExceeded, retrying",
               LOG_CALL_ARG(q), status);
    }
    return retry;
}

static int submit(struct ocall *q, struct cg_err *err);

/* What makes an error worth waiting for, or NULL. Never an authentication failure. */
static const char *retry_reason(int flags, int code, const struct osc_error *oerr)
{
    if (code == CG_EAUTH) {
        return NULL;
    }
    if ((flags & OSC_RETRY_NOT_FOUND) && code == CG_ENOTFOUND) {
        return "not found";
    }
    if ((flags & OSC_RETRY_CONFLICT) && osc_error_is_conflict(oerr)) {
        return "conflict";
    }
    return NULL;
}

static void on_wait_done(void *data, int canceled)
{
    struct ocall *q = data;
    struct cg_err e = {0};
    if (canceled) {
        cg_err_set_http(&e, CG_ECANCELED, 0, "cancelled");
        finish_wrapped(q, &e);
        return;
    }
    if (submit(q, &e) < 0) {
        finish_wrapped(q, &e);
    }
}

/* Eventual consistency: waits and sends again when the condition is one to retry and the
 * budget allows; returns 1 when a wait was scheduled. When the budget is spent, says so in
 * err. */
static int consistency_retry(struct ocall *q, int code, const struct osc_error *oerr,
                             struct cg_err *err)
{
    struct osc_api *c = q->c;
    const char *why = retry_reason(q->flags, code, oerr);
    if (why == NULL) {
        return 0;
    }
    long spent_ms = 0;
    long wait = cloud__retry_next(&q->retry, &c->rng, c->poll_ms, MAX_WAIT_MS, c->consistency_ms,
                                  &spent_ms);
    if (wait < 0) {
        char spent[32];
        char suffix[96];
        cloud__fmt_duration(spent, sizeof(spent), spent_ms);
        CG_LOG(CG_LOG_DEBUG, "osc", LOG_CALL_FMT ": %s after %s of retries, giving up",
               LOG_CALL_ARG(q), why, spent);
        snprintf(suffix, sizeof(suffix), " (still %s after %u retries over %s)", why,
                 q->retry.waits, spent);
        cloud__err_append(err, suffix);
        return 0;
    }
    if (cg_http_after(c->http, wait, on_wait_done, q) < 0) {
        return 0;
    }
    CG_LOG(CG_LOG_DEBUG, "osc", LOG_CALL_FMT ": %s, waiting %ld ms (retry %u)", LOG_CALL_ARG(q),
           why, wait, q->retry.waits);
    return 1;
}

static void on_response(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct ocall *q = data;
    if (err != NULL) {
        finish_wrapped(q, err);
        return;
    }
    long status = cg_http_req_status(req);
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    json_t *result = NULL;
    struct osc_error oerr;
    struct cg_err e = {0};
    int rc = parse_response(body, len, status, q->label, &result, &oerr, &e);
    if (rc == 0) {
        CG_LOG(CG_LOG_DEBUG, "osc", LOG_CALL_FMT " -> %ld", LOG_CALL_ARG(q), status);
        finish_ok(q, result);
        json_decref(result);
        return;
    }
    CG_LOG(CG_LOG_DEBUG, "osc", LOG_CALL_FMT " -> %ld%s%s%s%s%s%s", LOG_CALL_ARG(q), status,
           oerr.type[0] ? " " : "", oerr.type, oerr.code[0] ? " " : "", oerr.code,
           oerr.request_id[0] ? " request " : "", oerr.request_id);
    if (consistency_retry(q, rc, &oerr, &e)) {
        return;
    }
    finish_err(q, &oerr, &e);
}

/* Builds and submits the HTTP request; on failure err is filled and nothing was sent. */
static int submit(struct ocall *q, struct cg_err *err)
{
    struct osc_api *c = q->c;
    char label[MAX_ACTION + 16];
    snprintf(label, sizeof(label), "OUTSCALE %s", q->action);
    struct cg_http_req *req = NULL;
    int rc =
        cloud__json_req_new("POST", q->url, q->body, q->body_len, NULL, NULL, label, &req, err);
    if (rc < 0) {
        return rc;
    }
    if (c->cert_pem != NULL) {
        struct cg_tls tls = {.cert_pem = c->cert_pem,
                             .cert_len = c->cert_len,
                             .key_pem = c->key_pem,
                             .key_len = c->key_len};
        rc = cg_http_req_set_tls(req, &tls);
    }
    if (rc < 0) {
        cg_http_req_free(req);
        return cg_err_set(err, rc, "cannot build the request: %s", cg_errc_str(rc));
    }
    cg_http_req_set_timeout(req, c->timeout_ms);
    cg_http_req_set_sign(req, sign_hook, q);
    cg_http_req_set_retry_classifier(req, classify, q);
    if (q->flags & OSC_SEND_ONCE) {
        cg_http_req_set_send_once(req);
    }
    rc = cg_http_submit(c->http, req, on_response, q, err);
    if (rc < 0) {
        cg_http_req_free(req);
    }
    return rc;
}

int osc_api_call(struct osc_api *c, const char *action, json_t *body, const char *label, int flags,
                 osc_api_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL) {
        return cg_err_set(err, CG_EINVAL, "osc_api_call: missing argument");
    }
    char subj[MAX_LABEL + 16];
    char clean[MAX_LABEL];
    if (!action_ok(action)) {
        /* the name is not quoted: it is not an action, so it may be anything */
        cloud__one_line(clean, sizeof(clean), label, label ? strlen(label) : 0);
        subject(subj, sizeof(subj), clean);
        return cg_err_set(err, CG_EINVAL, "%s: invalid action name (1 to %d letters)", subj,
                          MAX_ACTION);
    }
    cloud__one_line(clean, sizeof(clean), label != NULL ? label : action,
                    strlen(label != NULL ? label : action));
    subject(subj, sizeof(subj), clean);
    if (body != NULL && !json_is_object(body)) {
        return cg_err_set(err, CG_EINVAL, "%s: the request body is not a JSON object", subj);
    }
    struct ocall *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    q->c = c;
    q->flags = flags;
    q->cb = cb;
    q->data = data;
    snprintf(q->action, sizeof(q->action), "%s", action);
    q->url = cg_strfmt("%s/%s", c->endpoint, action);
    q->label = strdup(clean);
    int rc = q->url && q->label ? 0 : CG_ENOMEM;
    if (rc == 0) {
        /* sent as given, compact; never logged */
        q->body = body != NULL ? json_dumps(body, JSON_COMPACT) : strdup("{}");
        rc = q->body != NULL ? 0 : body != NULL ? CG_EINVAL : CG_ENOMEM;
        q->body_len = q->body ? strlen(q->body) : 0;
    }
    if (rc < 0) {
        ocall_free(q);
        return cg_err_set(err, rc, "%s: %s", subj,
                          rc == CG_EINVAL ? "cannot serialise the request body" : "out of memory");
    }
    rc = submit(q, err);
    if (rc < 0) {
        if (err != NULL && err->code == 0) {
            err->code = rc;
        }
        cg_err_wrap(err, "%s", subj);
        ocall_free(q);
        return rc;
    }
    if (is_read(action)) {
        c->stats.reads++;
    } else {
        c->stats.writes++;
    }
    return 0;
}

/* ---- pagination ------------------------------------------------------------------------- */

struct pager {
    struct osc_api *c;
    char action[MAX_ACTION + 1];
    char list_key[MAX_LIST_KEY + 1];
    char *label;
    char subj[MAX_LABEL + 16];
    json_t *body; /* the caller's, copied; FirstItem and ResultsPerPage set per page */
    json_t *items;
    long page_size;
    unsigned pages;
    int flags;
    osc_api_cb *cb;
    void *data;
};

static void pager_free(struct pager *p)
{
    if (p == NULL) {
        return;
    }
    free(p->label);
    json_decref(p->body);
    json_decref(p->items);
    free(p);
}

static void on_page(json_t *result, const struct osc_error *oerr, const struct cg_err *err,
                    void *data);

/* Asks for the page starting at the items received so far (FirstItem counts from 0). */
static int pager_get(struct pager *p, struct cg_err *err)
{
    if (json_object_set_new(p->body, "FirstItem",
                            json_integer((json_int_t)json_array_size(p->items))) < 0 ||
        json_object_set_new(p->body, "ResultsPerPage", json_integer(p->page_size)) < 0) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return osc_api_call(p->c, p->action, p->body, p->label, p->flags, on_page, p, err);
}

static void on_page(json_t *result, const struct osc_error *oerr, const struct cg_err *err,
                    void *data)
{
    struct pager *p = data;
    if (err != NULL) {
        p->cb(NULL, oerr, err, p->data);
        pager_free(p);
        return;
    }
    p->pages++;
    struct cg_err e = {0};
    struct osc_error pe = {.status = 200};
    json_t *list = json_object_get(result, p->list_key);
    json_t *more = json_object_get(result, "HasMoreItems");
    size_t before = json_array_size(p->items);
    if (list != NULL && !json_is_array(list)) {
        cg_err_set_http(&e, CG_EINVAL, 200, "%s: invalid response ('%s' is not a list)", p->subj,
                        p->list_key);
    } else if (more != NULL && !json_is_boolean(more) && !json_is_null(more)) {
        cg_err_set_http(&e, CG_EINVAL, 200,
                        "%s: invalid response ('HasMoreItems' is not a boolean)", p->subj);
    } else if (list != NULL && json_array_extend(p->items, list) < 0) {
        cg_err_set_http(&e, CG_ENOMEM, 200, "%s: out of memory", p->subj);
    } else if (!json_is_true(more)) {
        json_t *out = json_object();
        if (out == NULL || json_object_set(out, p->list_key, p->items) < 0) {
            json_decref(out);
            cg_err_set_http(&e, CG_ENOMEM, 200, "%s: out of memory", p->subj);
        } else {
            p->cb(out, NULL, NULL, p->data);
            json_decref(out);
            pager_free(p);
            return;
        }
    } else if (json_array_size(p->items) == before) {
        cg_err_set_http(&e, CG_EINVAL, 200,
                        "%s: invalid response (page %u has no items but says there are more)",
                        p->subj, p->pages);
    } else if (p->pages >= MAX_PAGES) {
        cg_err_set_http(&e, CG_EINVAL, 200, "%s: more than %d pages", p->subj, MAX_PAGES);
    } else if (pager_get(p, &e) == 0) {
        return;
    } else {
        pe.status = 0;
        e.http_status = 0;
    }
    p->cb(NULL, &pe, &e, p->data);
    pager_free(p);
}

static int list_key_ok(const char *k)
{
    size_t n = 0;
    for (; k != NULL && k[n] != '\0'; n++) {
        if (!((k[n] >= 'A' && k[n] <= 'Z') || (k[n] >= 'a' && k[n] <= 'z')) || n >= MAX_LIST_KEY) {
            return 0;
        }
    }
    return n > 0;
}

int osc_api_call_all(struct osc_api *c, const char *action, json_t *body, const char *list_key,
                     long page_size, const char *label, int flags, osc_api_cb *cb, void *data,
                     struct cg_err *err)
{
    if (c == NULL || cb == NULL) {
        return cg_err_set(err, CG_EINVAL, "osc_api_call_all: missing argument");
    }
    char clean[MAX_LABEL];
    char subj[MAX_LABEL + 16];
    int named = action_ok(action);
    const char *l = label != NULL ? label : named ? action : "";
    cloud__one_line(clean, sizeof(clean), l, strlen(l));
    subject(subj, sizeof(subj), clean);
    if (!named || strncmp(action, "Read", 4) != 0) {
        return cg_err_set(err, CG_EINVAL, "%s: only a Read* action pages", subj);
    }
    if (!list_key_ok(list_key)) {
        return cg_err_set(err, CG_EINVAL, "%s: invalid list key (1 to %d letters)", subj,
                          MAX_LIST_KEY);
    }
    if (page_size < 0 || page_size > MAX_PAGE_SIZE) {
        return cg_err_set(err, CG_EINVAL, "%s: page size %ld is not 1 to %d", subj, page_size,
                          MAX_PAGE_SIZE);
    }
    if (body != NULL && !json_is_object(body)) {
        return cg_err_set(err, CG_EINVAL, "%s: the request body is not a JSON object", subj);
    }
    struct pager *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    p->c = c;
    p->flags = flags;
    p->cb = cb;
    p->data = data;
    p->page_size = page_size > 0 ? page_size : DEFAULT_PAGE_SIZE;
    snprintf(p->action, sizeof(p->action), "%s", action);
    snprintf(p->list_key, sizeof(p->list_key), "%s", list_key);
    snprintf(p->subj, sizeof(p->subj), "%s", subj);
    p->label = strdup(clean);
    p->body = body != NULL ? json_deep_copy(body) : json_object();
    p->items = json_array();
    if (p->label == NULL || p->body == NULL || p->items == NULL) {
        pager_free(p);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = pager_get(p, err);
    if (rc < 0) {
        pager_free(p);
    }
    return rc;
}
