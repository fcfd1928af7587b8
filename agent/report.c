/* report: body builder, delivery and trust fetch for the central endpoint. */
#include "report.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_FILE_MAX (64u * 1024u)
/* System CA bundles run to a few hundred KiB; a private CA is far smaller. */
#define CA_FILE_MAX        (1024u * 1024u)
#define DEFAULT_TIMEOUT_MS 120000L
/* One slow attempt must not eat the whole budget: a hung connection is cut and retried. */
#define ATTEMPT_TIMEOUT_MS 30000L
/* Enough attempts that the 120 s budget, not the count, ends a delivery during an outage
 * (backoff is capped at 20 s by the engine). */
#define MAX_ATTEMPTS   12
#define RESP_MAX       (1024u * 1024u)
#define TRUST_RESP_MAX (64u * 1024u)
/* Server messages are quoted into one-line errors: keep them short. */
#define SERVER_MSG_MAX 200

/* ---- configuration ------------------------------------------------------------------------ */

char *report_url_for_msg(const char *url)
{
    if (url == NULL) {
        return strdup("");
    }
    size_t n = strcspn(url, "?#");
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end != NULL && (size_t)(scheme_end - url) < n ? scheme_end + 3 : url;
    size_t auth_len = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth_len);
    size_t head = (size_t)(host - url);
    const char *rest = at != NULL ? at + 1 : host;
    size_t rest_len = n - (size_t)(rest - url);
    char *out = malloc(head + rest_len + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, url, head);
    memcpy(out + head, rest, rest_len);
    out[head + rest_len] = '\0';
    return out;
}

static int token_ok(const char *t)
{
    /* A CR or LF would split the Authorization header; other controls are never valid. */
    for (const unsigned char *p = (const unsigned char *)t; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }
    return *t != '\0';
}

static int check_url(const char *url, int allow_insecure, const char *what, struct cg_err *err)
{
    if (cg_url_check_transport(url, allow_insecure, what, NULL) == 0) {
        return 0;
    }
    char *shown = report_url_for_msg(url);
    int rc;
    if (shown == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    } else if (strncasecmp(url, "http://", 7) == 0) {
        rc = cg_err_set(err, CG_EINVAL,
                        "%s '%s' uses plain http to a non-loopback host: use https, or pass "
                        "--allow-insecure-report if you accept that",
                        what, shown);
    } else {
        rc = cg_err_set(err, CG_EINVAL, "%s '%s' must start with https://", what, shown);
    }
    free(shown);
    return rc;
}

int report_config_init(struct report_config *c, const char *url, const char *token_env,
                       const char *token_file, const char *ca_file, int allow_insecure,
                       struct cg_err *err)
{
    memset(c, 0, sizeof(*c));
    c->allow_insecure = allow_insecure;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    char *tok = NULL;
    int rc;

    if (url == NULL || *url == '\0') {
        rc = cg_err_set(err, CG_EINVAL,
                        "no report URL: pass --report-url or set CLOUDGRANT_REPORT_URL");
        goto out;
    }
    if ((rc = check_url(url, allow_insecure, "report URL", err)) < 0) {
        goto out;
    }
    if ((c->url = strdup(url)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }

    /* The flag is the more explicit choice, so a token file beats the environment (as
     * --report-url beats CLOUDGRANT_REPORT_URL). */
    if (token_file != NULL && *token_file != '\0') {
        size_t len = 0;
        if ((rc = cg_file_read(token_file, TOKEN_FILE_MAX, &tok, &len, err)) < 0) {
            cg_err_wrap(err, "--report-token-file");
            goto out;
        }
        if (strlen(tok) != len) {
            rc = cg_err_set(err, CG_EINVAL, "report token file '%s' contains a NUL byte",
                            token_file);
            goto out;
        }
        cg_trim(tok);
        if (*tok == '\0') {
            rc = cg_err_set(err, CG_EINVAL, "report token file '%s' is empty", token_file);
            goto out;
        }
        if (!token_ok(tok)) {
            rc = cg_err_set(err, CG_EINVAL, "report token file '%s' contains control characters",
                            token_file);
            goto out;
        }
    } else if (token_env != NULL && *token_env != '\0') {
        if ((tok = strdup(token_env)) == NULL) {
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto out;
        }
        cg_trim(tok);
        if (!token_ok(tok)) {
            rc = cg_err_set(err, CG_EINVAL,
                            "CLOUDGRANT_REPORT_TOKEN is blank or contains control characters");
            goto out;
        }
    } else {
        rc = cg_err_set(err, CG_EINVAL,
                        "no report token: set CLOUDGRANT_REPORT_TOKEN or pass "
                        "--report-token-file");
        goto out;
    }
    c->token = tok;
    tok = NULL;

    if (ca_file != NULL && *ca_file != '\0') {
        if ((rc = cg_file_read(ca_file, CA_FILE_MAX, &c->ca_pem, &c->ca_len, err)) < 0) {
            cg_err_wrap(err, "--report-ca");
            goto out;
        }
        if (strstr(c->ca_pem, "-----BEGIN CERTIFICATE-----") == NULL) {
            rc = cg_err_set(err, CG_EINVAL, "--report-ca: '%s' holds no PEM certificate", ca_file);
            goto out;
        }
    }
    rc = 0;
out:
    cg_secret_free(tok);
    if (rc < 0) {
        if (rc != CG_EINVAL && rc != CG_ENOMEM) {
            /* File errors (missing, unreadable, too big) are bad input from the user's side. */
            if (err != NULL) {
                err->code = CG_EINVAL;
            }
            rc = CG_EINVAL;
        }
        report_config_cleanup(c);
    }
    return rc;
}

void report_config_cleanup(struct report_config *c)
{
    if (c == NULL) {
        return;
    }
    free(c->url);
    cg_secret_free(c->token);
    free(c->ca_pem);
    memset(c, 0, sizeof(*c));
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
}

/* ---- requests ------------------------------------------------------------------------------ */

struct call {
    const char *what; /* "central endpoint" or "trust principal endpoint" */
    char *shown_url;  /* URL for messages: no query, no userinfo */
    char *token;      /* copy, only to scrub an echo of it from server messages */
    report_done_cb *done;
    report_trust_cb *trust;
    void *data;
};

static void call_free(struct call *k)
{
    if (k != NULL) {
        free(k->shown_url);
        cg_secret_free(k->token);
        free(k);
    }
}

/* The server's own words from a JSON error body: "message", or "error" as a string or as an
 * object with a "message" (OAuth- and Google-style bodies). Copied into out as one line. */
static void server_message(const char *body, size_t len, const char *token, char *out,
                           size_t outlen)
{
    out[0] = '\0';
    if (body == NULL || len == 0) {
        return;
    }
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *m = NULL;
    if (json_is_object(j)) {
        json_t *v = json_object_get(j, "message");
        json_t *e = json_object_get(j, "error");
        if (json_is_string(v)) {
            m = json_string_value(v);
        } else if (json_is_string(e)) {
            m = json_string_value(e);
        } else if (json_is_object(e) && json_is_string(json_object_get(e, "message"))) {
            m = json_string_value(json_object_get(e, "message"));
        }
    }
    char *msg = m != NULL ? strdup(m) : NULL;
    if (msg != NULL) {
        /* A proxy or a careless server may echo the Authorization header back: mask it before
         * cutting the message short, so no prefix of it survives either. The search resumes
         * after each replacement, so a token that looks like the mask still ends. */
        static const char red[] = "<redacted>";
        size_t tl = token != NULL ? strlen(token) : 0;
        char *from = msg;
        char *hit;
        while (tl >= 4 && (hit = strstr(from, token)) != NULL) {
            if (sizeof(red) - 1 < tl) {
                memcpy(hit, red, sizeof(red) - 1);
                memmove(hit + sizeof(red) - 1, hit + tl, strlen(hit + tl) + 1);
                from = hit + sizeof(red) - 1;
            } else {
                memset(hit, '*', tl);
                from = hit + tl;
            }
        }
        size_t n = 0;
        const unsigned char *p = (const unsigned char *)msg;
        for (; *p != '\0' && n + 1 < outlen; p++) {
            out[n++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
        }
        out[n] = '\0';
        if (*p != '\0' && outlen > 4) {
            memcpy(out + outlen - 4, "...", 4);
        }
        free(msg);
    }
    json_decref(j);
}

static void status_error(struct cg_err *e, const struct call *k, const struct cg_http_req *req)
{
    long status = cg_http_req_status(req);
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    char msg[SERVER_MSG_MAX + 1];
    server_message(body, len, k->token, msg, sizeof(msg));
    const char *phrase = cg_http_reason(status);
    int code = status == 401 || status == 403 ? CG_EAUTH : CG_ESTATUS;
    char line[64];
    snprintf(line, sizeof(line), "%ld%s%s", status, phrase ? " " : "", phrase ? phrase : "");
    if (msg[0] != '\0') {
        cg_err_set(e, code, "%s %s: %s: %s", k->what, k->shown_url, line, msg);
    } else {
        cg_err_set(e, code, "%s %s: %s", k->what, k->shown_url, line);
    }
    e->http_status = status;
}

static void on_sent(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct call *k = data;
    struct cg_err e = {0};
    if (err != NULL) {
        e = *err;
        cg_err_wrap(&e, "%s", k->what);
    } else {
        long status = cg_http_req_status(req);
        if (status >= 200 && status < 300) {
            CG_LOG(CG_LOG_DEBUG, "report", "delivered to %s: status %ld after %d attempt(s)",
                   k->shown_url, status, cg_http_req_attempts(req));
            k->done(NULL, k->data);
            call_free(k);
            return;
        }
        status_error(&e, k, req);
    }
    k->done(&e, k->data);
    call_free(k);
}

static void on_trust(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct call *k = data;
    struct cg_err e = {0};
    json_t *j = NULL;
    if (err != NULL) {
        e = *err;
        cg_err_wrap(&e, "%s", k->what);
        goto fail;
    }
    long status = cg_http_req_status(req);
    if (status < 200 || status >= 300) {
        status_error(&e, k, req);
        goto fail;
    }
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    json_error_t je;
    j = json_loadb(body ? body : "", len, 0, &je);
    if (!json_is_object(j)) {
        cg_err_set(&e, CG_ESTATUS, "%s %s: the answer is not a JSON object", k->what, k->shown_url);
        goto fail;
    }
    json_t *p = json_object_get(j, "principalArn");
    json_t *x = json_object_get(j, "externalId");
    if (!json_is_string(p) || json_string_length(p) == 0) {
        cg_err_set(&e, CG_ESTATUS, "%s %s: the answer has no \"principalArn\" string", k->what,
                   k->shown_url);
        goto fail;
    }
    if (!json_is_string(x) || json_string_length(x) == 0) {
        cg_err_set(&e, CG_ESTATUS, "%s %s: the answer has no \"externalId\" string", k->what,
                   k->shown_url);
        goto fail;
    }
    k->trust(json_string_value(p), json_string_value(x), NULL, k->data);
    json_decref(j);
    call_free(k);
    return;
fail:
    json_decref(j);
    k->trust(NULL, NULL, &e, k->data);
    call_free(k);
}

/* Builds the request both calls share: bearer token, TLS, deadline, caps. */
static int prepare(struct cg_http_req **out, struct call **kout, const struct report_config *c,
                   const char *method, const char *url, const char *what, struct cg_err *err)
{
    struct cg_http_req *req = NULL;
    struct call *k = NULL;
    char *auth = NULL;
    int rc = CG_ENOMEM;

    if (c == NULL || c->token == NULL || url == NULL) {
        return cg_err_set(err, CG_EINVAL, "%s: not configured", what);
    }
    if ((rc = check_url(url, c->allow_insecure, what, err)) < 0) {
        return rc;
    }
    rc = CG_ENOMEM;
    if ((k = calloc(1, sizeof(*k))) == NULL || (k->shown_url = report_url_for_msg(url)) == NULL ||
        (k->token = strdup(c->token)) == NULL) {
        goto out;
    }
    k->what = what;
    size_t alen = strlen(c->token) + sizeof("Bearer ");
    if ((req = cg_http_req_new(method, url)) == NULL || (auth = malloc(alen)) == NULL) {
        goto out;
    }
    snprintf(auth, alen, "Bearer %s", c->token);
    char label[32];
    snprintf(label, sizeof(label), "%s report", method);
    if (cg_http_req_header(req, "Authorization", auth) < 0 ||
        cg_http_req_header(req, "Accept", "application/json") < 0 ||
        cg_http_req_set_label(req, label) < 0) {
        goto out;
    }
    if (c->ca_pem != NULL) {
        struct cg_tls tls = {.ca_pem = c->ca_pem, .ca_len = c->ca_len};
        if (cg_http_req_set_tls(req, &tls) < 0) {
            goto out;
        }
    }
    long total = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS;
    cg_http_req_set_timeout(req, total);
    cg_http_req_set_attempt_timeout(req, total < ATTEMPT_TIMEOUT_MS ? total : ATTEMPT_TIMEOUT_MS);
    cg_http_req_set_max_attempts(req, MAX_ATTEMPTS);
    rc = 0;
out:
    cg_secret_free(auth);
    if (rc < 0) {
        cg_http_req_free(req);
        call_free(k);
        return cg_err_set(err, rc, "%s: out of memory", what);
    }
    *out = req;
    *kout = k;
    return 0;
}

int report_send(struct cg_http *h, const struct report_config *c, const char *body,
                const char *idempotency_key, report_done_cb *cb, void *data, struct cg_err *err)
{
    static const char what[] = "central endpoint";
    if (h == NULL || body == NULL || cb == NULL || idempotency_key == NULL ||
        *idempotency_key == '\0') {
        return cg_err_set(err, CG_EINVAL, "%s: invalid report request", what);
    }
    struct cg_http_req *req = NULL;
    struct call *k = NULL;
    int rc = prepare(&req, &k, c, "POST", c != NULL ? c->url : NULL, what, err);
    if (rc < 0) {
        return rc;
    }
    k->done = cb;
    k->data = data;
    if (cg_http_req_header(req, "Content-Type", "application/json") < 0 ||
        cg_http_req_header(req, "Idempotency-Key", idempotency_key) < 0 ||
        cg_http_req_body_copy(req, body, strlen(body)) < 0) {
        cg_http_req_free(req);
        call_free(k);
        return cg_err_set(err, CG_ENOMEM, "%s: out of memory", what);
    }
    cg_http_req_set_max_body(req, RESP_MAX);
    if ((rc = cg_http_submit(h, req, on_sent, k, err)) < 0) {
        cg_http_req_free(req);
        call_free(k);
        return rc;
    }
    return 0;
}

int report_fetch_trust(struct cg_http *h, const struct report_config *c, const char *url,
                       report_trust_cb *cb, void *data, struct cg_err *err)
{
    static const char what[] = "trust principal endpoint";
    if (h == NULL || cb == NULL) {
        return cg_err_set(err, CG_EINVAL, "%s: invalid request", what);
    }
    struct cg_http_req *req = NULL;
    struct call *k = NULL;
    int rc = prepare(&req, &k, c, "GET", url, what, err);
    if (rc < 0) {
        return rc;
    }
    k->trust = cb;
    k->data = data;
    cg_http_req_set_max_body(req, TRUST_RESP_MAX);
    if ((rc = cg_http_submit(h, req, on_trust, k, err)) < 0) {
        cg_http_req_free(req);
        call_free(k);
        return rc;
    }
    return 0;
}

/* ---- idempotency key ----------------------------------------------------------------------- */

void report_idempotency_key(const char *const *parts, size_t n, char out[37])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < n; i++) {
        const char *p = parts[i] != NULL ? parts[i] : "";
        if (i > 0) {
            ok = EVP_DigestUpdate(ctx, "\n", 1);
        }
        ok = ok && EVP_DigestUpdate(ctx, p, strlen(p));
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    /* Only allocation can fail here; a key that is stable but wrong would merge distinct
     * reports, so that is an invariant, not a recoverable error. */
    if (!ok || mdlen < 16) {
        fprintf(stderr, "report: SHA-256 failed\n");
        abort();
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 0xf];
    }
    out[o] = '\0';
}

/* ---- body ---------------------------------------------------------------------------------- */

static const char *const CLUSTER_KEYS[] = {
    "id", "name", "provider", "region", "account", "kubernetesVersion", "server"};
static const char *const PROVIDERS[] = {"aws", "gcp", "azure", "outscale", "unknown"};
static const char *const RESOURCE_KEYS[] = {"provider", "kind", "id", "change"};
static const char *const DRIFT_KEYS[] = {"provider", "kind", "name", "change", "id", "detail"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* json_object_set_new steals its value even on failure, so a NULL value is the only thing
 * left to check. */
static int put(json_t *o, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(o, key, v) == 0 ? 0 : -1;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *build_cluster(json_t *in)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < NELEM(CLUSTER_KEYS); i++) {
        json_t *v = json_is_object(in) ? json_object_get(in, CLUSTER_KEYS[i]) : NULL;
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (strcmp(CLUSTER_KEYS[i], "provider") == 0) {
            const char *known = "unknown";
            for (size_t p = 0; s != NULL && p < NELEM(PROVIDERS); p++) {
                if (strcmp(s, PROVIDERS[p]) == 0) {
                    known = PROVIDERS[p];
                }
            }
            s = known;
        }
        if (put(o, CLUSTER_KEYS[i], str_or_null(s)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* Copies each object of arr with only the listed keys (values shared, not copied). */
static json_t *filter_array(json_t *arr, const char *const *keys, size_t nkeys)
{
    json_t *out = json_array();
    size_t i;
    json_t *item;
    if (out == NULL || !json_is_array(arr)) {
        return out;
    }
    json_array_foreach(arr, i, item)
    {
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(out, o) < 0) {
            json_decref(out);
            return NULL;
        }
        for (size_t k = 0; json_is_object(item) && k < nkeys; k++) {
            json_t *v = json_object_get(item, keys[k]);
            if (v != NULL && json_object_set(o, keys[k], v) < 0) {
                json_decref(out);
                return NULL;
            }
        }
    }
    return out;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return cg_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

char *report_build(const struct report_input *in)
{
    if (in == NULL) {
        return NULL;
    }
    char started[32], finished[32];
    cg_format_rfc3339(in->started_at, started, sizeof(started));
    cg_format_rfc3339(in->finished_at, finished, sizeof(finished));
    json_t *cred = NULL;
    if (json_is_object(in->credentials) || json_is_string(in->credentials)) {
        cred = json_incref(in->credentials);
    } else {
        cred = json_null();
    }

    char *text = NULL;
    json_t *o = json_object();
    if (o == NULL || put(o, "kind", str_or_null(in->kind)) < 0 ||
        put(o, "cluster", build_cluster(in->cluster)) < 0 ||
        put(o, "profile", str_or_null(in->profile)) < 0 ||
        put(o, "status", str_or_null(in->status)) < 0 ||
        put(o, "resources", filter_array(in->resources, RESOURCE_KEYS, NELEM(RESOURCE_KEYS))) < 0 ||
        put(o, "drift", filter_array(in->drift, DRIFT_KEYS, NELEM(DRIFT_KEYS))) < 0 ||
        json_object_set(o, "credentials", cred) < 0 ||
        put(o, "error", str_or_null(in->error)) < 0 ||
        put(o, "startedAt", json_string(started)) < 0 ||
        put(o, "finishedAt", json_string(finished)) < 0 ||
        put(o, "agentVersion", json_string(in->agent_version ? in->agent_version : "unknown")) <
            0) {
        goto out;
    }
    /* Dump through a wiped buffer: the text may hold credentials in the clear. */
    struct cg_buf b;
    cg_buf_init(&b, 0);
    b.sensitive = 1;
    if (json_dump_callback(o, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0) {
        text = cg_buf_steal(&b, NULL);
    }
    cg_buf_cleanup(&b);
out:
    json_decref(cred);
    json_decref(o);
    return text;
}
