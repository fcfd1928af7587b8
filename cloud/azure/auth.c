/* cloud/azure/auth.c: Microsoft Entra ID access tokens for Graph and ARM from a client secret,
 * an AKS workload-identity token file or the instance metadata service; one cached token per
 * resource, shared by concurrent callers. See azure_auth.h and protocols.md 3.1.
 *
 * The cache, the waiters and the provider's lifetime are cloud/token_cache.c's: each resource
 * is a slot whose refresh is one request here.
 *
 * Secrets: the client secret lives in one wiped buffer for the provider's life; the federated
 * token is read from its file for each token request and wiped when that request ends; the
 * form body carrying either is built in a wiped buffer and handed to the engine, which wipes
 * it. The engine never logs bodies, and nothing here logs or quotes one. */
#include "azure_auth.h"

#include "../rest_common.h"
#include "../token_cache.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define DEFAULT_IMDS      "http://169.254.169.254"
#define IMDS_TOKEN_PATH   "/metadata/identity/oauth2/token?api-version=2018-02-01"
#define ASSERTION_TYPE    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define NO_SOURCE_MESSAGE                                                                          \
    "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run "  \
    "with AKS workload identity or a managed identity"

#define REFRESH_MARGIN_S 300   /* azure-identity refreshes five minutes before expiry */
#define STALE_OK_S       60    /* a failed refresh still serves a token with a minute left */
#define EXPIRES_IN_MAX   86400 /* a larger expires_in is not believed */
#define TOKEN_MAX        16384 /* Entra tokens are a few KiB, more with many group claims */
#define ANSWER_LIMIT     (64u * 1024u)
#define TOKEN_FILE_LIMIT (64u * 1024u)
#define ANSWER_DEPTH     32
#define URL_MAX          2048
#define ID_MAX           256 /* tenant IDs and domain names, client IDs */
#define DESC_MAX         300

#define TOKEN_TIMEOUT_MS 30000
#define TOKEN_ATTEMPT_MS 10000
#define TOKEN_ATTEMPTS   4
#define IMDS_TIMEOUT_MS  3000
#define IMDS_ATTEMPTS    3

enum source { SRC_SECRET = 0, SRC_WORKLOAD, SRC_IMDS, SRC_COUNT };

static const char *const source_names[SRC_COUNT] = {
    [SRC_SECRET] = "client secret",
    [SRC_WORKLOAD] = "workload identity",
    [SRC_IMDS] = "managed identity",
};

/* The public resource identifiers, whatever endpoint the calls themselves use. */
static const struct resource_def {
    const char *name;
    const char *id;
} resources[AZURE_RESOURCE_COUNT] = {
    [AZURE_GRAPH] = {"Graph", "https://graph.microsoft.com"},
    [AZURE_ARM] = {"ARM", "https://management.azure.com"},
};

struct azure_auth {
    struct cloud_token_owner o; /* first: release() gets back to us from it */
    struct cloud_token_slot slots[AZURE_RESOURCE_COUNT];
    char what[AZURE_RESOURCE_COUNT][64]; /* "Azure token (client secret) for ARM" */
    enum source src;
    char *client_id;  /* NULL: IMDS's system-assigned identity */
    char *secret;     /* SRC_SECRET; wiped on free */
    char *token_file; /* SRC_WORKLOAD */
    char *token_url;  /* SRC_SECRET, SRC_WORKLOAD: <authority>/<tenant>/oauth2/v2.0/token */
    char *imds;       /* SRC_IMDS: base URL without a trailing '/' */
    long imds_timeout_ms;
    char *tenant; /* AZURE_TENANT_ID, else the first IMDS token's tid */
};

/* One refresh of one resource. */
struct fetch {
    struct azure_auth *a;
    enum azure_resource res;
    char *assertion; /* SRC_WORKLOAD: the file's token, kept to keep it out of messages */
    size_t assertion_len;
};

static const char *sys_getenv(const char *name)
{
    return getenv(name);
}

static int64_t sys_now(void)
{
    return (int64_t)time(NULL);
}

/* ---- form bodies and tokens ---------------------------------------------------------------- */

static void assertion_free(struct fetch *f)
{
    if (f->assertion != NULL) {
        cg_wipe(f->assertion, f->assertion_len);
        free(f->assertion);
        f->assertion = NULL;
    }
}

/* Reads the projected service-account token: trailing whitespace trimmed, one printable word.
 * The kubelet rotates the file, so it is read for every token request. */
static int read_assertion(struct fetch *f, struct cg_err *err)
{
    const char *path = f->a->token_file;
    char *buf = NULL;
    size_t len = 0;
    char p[200];
    cg_printable_n(p, sizeof(p), path, strlen(path));
    int rc = cg_file_read(path, TOKEN_FILE_LIMIT, &buf, &len, err);
    if (rc < 0) {
        if (err != NULL && rc != CG_ENOMEM) {
            err->code = rc = CG_EAUTH; /* the credential is missing */
        }
        return rc;
    }
    f->assertion = buf;
    f->assertion_len = len;
    size_t n = len;
    while (n > 0 &&
           (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r' || buf[n - 1] == '\n')) {
        buf[--n] = '\0';
    }
    if (n == 0) {
        return cg_err_set(err, CG_EAUTH, "federated token file '%s' is empty", p);
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f) {
            return cg_err_set(err, CG_EAUTH, "federated token file '%s' does not hold a token", p);
        }
    }
    return 0;
}

/* The client-credentials grant (form-urlencoded), for the secret or the assertion. */
static int grant_body(struct fetch *f, char **out, size_t *out_len)
{
    struct azure_auth *a = f->a;
    const struct resource_def *r = &resources[f->res];
    struct cg_buf b;
    cg_buf_init(&b, 0);
    b.sensitive = 1;
    int rc = cg_buf_append_str(&b, "grant_type=client_credentials&client_id=");
    rc = rc < 0 ? rc : cloud__append_pct(&b, a->client_id, strlen(a->client_id));
    if (a->src == SRC_SECRET) {
        rc = rc < 0 ? rc : cg_buf_append_str(&b, "&client_secret=");
        rc = rc < 0 ? rc : cloud__append_pct(&b, a->secret, strlen(a->secret));
    } else {
        rc = rc < 0 ? rc : cg_buf_append_str(&b, "&client_assertion_type=");
        rc = rc < 0 ? rc : cloud__append_pct(&b, ASSERTION_TYPE, strlen(ASSERTION_TYPE));
        rc = rc < 0 ? rc : cg_buf_append_str(&b, "&client_assertion=");
        rc = rc < 0 ? rc : cloud__append_pct(&b, f->assertion, strlen(f->assertion));
    }
    rc = rc < 0 ? rc : cg_buf_append_str(&b, "&scope=");
    rc = rc < 0 ? rc : cloud__append_pct(&b, r->id, strlen(r->id));
    rc = rc < 0 ? rc : cloud__append_pct(&b, "/.default", 9);
    if (rc == 0 && (*out = cg_buf_steal(&b, out_len)) == NULL) {
        rc = CG_ENOMEM;
    }
    cg_buf_cleanup(&b);
    return rc;
}

/* Tenant IDs are GUIDs or domain names: they go into the token URL's path as they are. */
static int tenant_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_')) {
            return 0;
        }
    }
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

char *azure__token_tenant(const char *token)
{
    const char *p = strchr(token, '.');
    const char *end = p != NULL ? strchr(p + 1, '.') : NULL;
    if (end == NULL) {
        return NULL;
    }
    p++;
    size_t n = (size_t)(end - p);
    char *std = malloc(n + 1);
    if (std == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        std[i] = p[i] == '-' ? '+' : p[i] == '_' ? '/' : p[i];
    }
    std[n] = '\0';
    unsigned char *claims = NULL;
    size_t clen = 0;
    char *tid = NULL;
    if (cg_b64_decode(std, n, &claims, &clen) == 0) {
        json_t *doc = cloud__json_load((const char *)claims, clen, ANSWER_DEPTH);
        const char *v = json_string_value(json_object_get(doc, "tid"));
        if (v != NULL && tenant_ok(v)) {
            tid = strdup(v);
        }
        json_decref(doc);
        cg_wipe(claims, clen);
        free(claims);
    }
    cg_wipe(std, n);
    free(std);
    return tid;
}

/* An OAuth error answer ({"error","error_description"}; {"error":{"code","message"}} too) as
 * "<error>: <first line of the description>", printable and cut; 0 when it is neither. */
static int oauth_error_text(json_t *doc, char *buf, size_t cap)
{
    json_t *e = json_object_get(doc, "error");
    const char *code = json_string_value(e);
    const char *desc = json_string_value(json_object_get(doc, "error_description"));
    if (json_is_object(e)) {
        code = json_string_value(json_object_get(e, "code"));
        desc = json_string_value(json_object_get(e, "message"));
    }
    if (code == NULL && desc == NULL) {
        return 0;
    }
    char c[64];
    cloud__copy_ident(c, sizeof(c), code);
    if (c[0] == '\0') {
        snprintf(c, sizeof(c), "error");
    }
    char d[DESC_MAX];
    /* AADSTS descriptions go on with "Trace ID: ...", "Correlation ID: ..." lines */
    size_t dlen = desc != NULL ? strcspn(desc, "\r\n") : 0;
    cloud__one_line(d, sizeof(d), desc, dlen);
    if (d[0] != '\0') {
        snprintf(buf, cap, "%s: %s", c, d);
    } else {
        snprintf(buf, cap, "%s", c);
    }
    return 1;
}

int azure_auth_parse_answer(const char *body, size_t len, long status, char **token,
                            int64_t *expires_in, struct cg_err *err)
{
    if (token == NULL || expires_in == NULL || (body == NULL && len > 0)) {
        return cg_err_set(err, CG_EINVAL, "azure_auth_parse_answer: missing argument");
    }
    *token = NULL;
    json_t *doc = body != NULL ? cloud__json_load(body, len, ANSWER_DEPTH) : NULL;
    int rc;
    if (status == 200) {
        const char *what = "out of memory";
        rc = cloud__token_from_answer(doc, TOKEN_MAX, EXPIRES_IN_MAX, token, expires_in, &what);
        if (rc < 0) {
            cg_err_set(err, rc, "%s", what);
        }
    } else {
        /* An OAuth refusal (invalid_client, a federated token the app does not trust, an
         * identity IMDS does not know) is about the credentials; a server failure or an answer
         * from something else is not. */
        char text[DESC_MAX + 80];
        int oauth = json_is_object(doc) && oauth_error_text(doc, text, sizeof(text));
        rc = status >= 400 && status < 500 && (oauth || status == 401 || status == 403)
                 ? CG_EAUTH
                 : CG_ESTATUS;
        if (oauth) {
            cg_err_set(err, rc, "%s", text);
        } else {
            const char *reason = cg_http_reason(status);
            cg_err_set(err, rc, "HTTP %ld%s%s%s", status, reason ? " (" : "", reason ? reason : "",
                       reason ? ")" : "");
        }
    }
    if (rc < 0 && err != NULL) {
        err->http_status = status;
    }
    cloud__token_answer_free(doc);
    return rc;
}

/* ---- the provider -------------------------------------------------------------------------- */

static void provider_release(struct azure_auth *a)
{
    for (int r = 0; r < AZURE_RESOURCE_COUNT; r++) {
        cloud__token_slot_cleanup(&a->slots[r]);
    }
    free(a->client_id);
    cg_secret_free(a->secret);
    free(a->token_file);
    free(a->token_url);
    free(a->imds);
    free(a->tenant);
    free(a);
}

static void maybe_release(struct cloud_token_owner *o)
{
    struct azure_auth *a = (struct azure_auth *)o;
    if (!cloud__token_owner_quiet(o)) {
        return;
    }
    for (int r = 0; r < AZURE_RESOURCE_COUNT; r++) {
        if (!cloud__token_slot_idle(&a->slots[r])) {
            return;
        }
    }
    provider_release(a);
}

/* Ends a refresh: token (taken; NULL on failure) or err goes to the slot. */
static void finish(struct fetch *f, char *token, int64_t expires_in, const struct cg_err *err)
{
    struct azure_auth *a = f->a;
    struct cloud_token_slot *s = &a->slots[f->res];
    assertion_free(f);
    if (token != NULL && !a->o.dead) {
        CG_LOG(CG_LOG_DEBUG, "azure", "%s, expires in %lld s", a->what[f->res],
               (long long)expires_in);
        if (a->tenant == NULL && (a->tenant = azure__token_tenant(token)) != NULL) {
            CG_LOG(CG_LOG_DEBUG, "azure", "Azure tenant from the token: %s", a->tenant);
        }
    }
    free(f);
    cloud__token_done(s, token, expires_in, err);
}

static void finish_err(struct fetch *f, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish_err(struct fetch *f, int code, long status, const char *fmt, ...)
{
    struct cg_err e = {0};
    char msg[CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cg_err_set(&e, code, "%s", msg);
    e.http_status = status;
    finish(f, NULL, 0, &e);
}

/* 1 when text quotes a credential we sent, judged by its first 8 bytes (so a quote cut short
 * by a message's cap is caught too): a server, or something posing as one, may echo what it
 * got. */
static int quotes(const char *text, size_t len, const char *secret)
{
    if (text == NULL || secret == NULL || strlen(secret) < 8) {
        return 0;
    }
    return memmem(text, len, secret, 8) != NULL;
}

static void on_token(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct azure_auth *a = f->a;
    const char *what = a->what[f->res];
    a->o.busy--;
    if (a->o.dead) {
        finish_err(f, CG_ECANCELED, 0, "%s request cancelled", what);
        return;
    }
    if (herr != NULL) {
        finish_err(f, herr->code, herr->http_status, "%s: %s", what, herr->msg);
        return;
    }
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    char *token = NULL;
    int64_t expires_in = 0;
    struct cg_err e = {0};
    long status = cg_http_req_status(req);
    if (azure_auth_parse_answer(body, len, status, &token, &expires_in, &e) < 0) {
        if (quotes(body, len, a->secret) || quotes(body, len, f->assertion) ||
            quotes(e.msg, strlen(e.msg), a->secret) || quotes(e.msg, strlen(e.msg), f->assertion)) {
            cg_err_set(&e, e.code,
                       "HTTP %ld, with an error description that quotes the credential "
                       "sent (withheld)",
                       status);
        }
        finish_err(f, e.code, status, "%s: %s", what, e.msg);
        return;
    }
    finish(f, token, expires_in, NULL);
}

/* Source 1 and 2: the client-credentials grant at the authority. */
static void grant_start(struct fetch *f)
{
    struct azure_auth *a = f->a;
    const char *what = a->what[f->res];
    struct cg_err err = {0};
    char *body = NULL;
    size_t len = 0;
    if (a->src == SRC_WORKLOAD && read_assertion(f, &err) < 0) {
        finish_err(f, err.code, 0, "%s: %s", what, err.msg);
        return;
    }
    if (grant_body(f, &body, &len) < 0) {
        finish_err(f, CG_ENOMEM, 0, "%s: out of memory", what);
        return;
    }
    struct cg_http_req *req = cg_http_req_new("POST", a->token_url);
    if (req == NULL) {
        cg_wipe(body, len);
        free(body);
        finish_err(f, CG_ENOMEM, 0, "%s: out of memory", what);
        return;
    }
    /* the engine owns the body from here, whatever happens, and wipes it when done */
    if (cg_http_req_body_take(req, body, len) < 0 ||
        cg_http_req_header(req, "Content-Type", "application/x-www-form-urlencoded") < 0 ||
        cg_http_req_header(req, "Accept", "application/json") < 0 ||
        cg_http_req_set_label(req, "Azure token") < 0) {
        cg_http_req_free(req);
        finish_err(f, CG_ENOMEM, 0, "%s: out of memory", what);
        return;
    }
    cg_http_req_set_timeout(req, TOKEN_TIMEOUT_MS);
    cg_http_req_set_attempt_timeout(req, TOKEN_ATTEMPT_MS);
    cg_http_req_set_max_attempts(req, TOKEN_ATTEMPTS);
    cg_http_req_set_max_body(req, ANSWER_LIMIT);
    if (cg_http_submit(a->o.http, req, on_token, f, &err) < 0) {
        cg_http_req_free(req);
        finish_err(f, err.code, 0, "%s: %s", what, err.msg);
        return;
    }
    a->o.busy++;
}

/* msal retries IMDS's 404 (the identity is being assigned) and 410 (IMDS is updating); the
 * engine retries 429 and 5xx itself. */
static int imds_retry(struct cg_http_req *req, void *data)
{
    long status = cg_http_req_status(req);
    return status == 404 || status == 410;
}

/* Source 3: IMDS, never through a proxy (the answer must come from this machine). */
static void imds_start(struct fetch *f)
{
    struct azure_auth *a = f->a;
    const char *what = a->what[f->res];
    const struct resource_def *r = &resources[f->res];
    struct cg_err err = {0};
    struct cg_buf url;
    cg_buf_init(&url, 0);
    int rc = cg_buf_append_str(&url, a->imds);
    rc = rc < 0 ? rc : cg_buf_append_str(&url, IMDS_TOKEN_PATH "&resource=");
    rc = rc < 0 ? rc : cloud__append_pct(&url, r->id, strlen(r->id));
    rc = rc < 0 ? rc : cloud__append_pct(&url, "/", 1); /* v1 resource: with the slash */
    if (a->client_id != NULL) {
        rc = rc < 0 ? rc : cg_buf_append_str(&url, "&client_id=");
        rc = rc < 0 ? rc : cloud__append_pct(&url, a->client_id, strlen(a->client_id));
    }
    struct cg_http_req *req = rc == 0 ? cg_http_req_new("GET", url.data) : NULL;
    cg_buf_cleanup(&url);
    if (req == NULL || cg_http_req_header(req, "Metadata", "true") < 0 ||
        cg_http_req_set_proxy(req, "") < 0 || cg_http_req_set_label(req, "Azure IMDS token") < 0) {
        cg_http_req_free(req);
        finish_err(f, CG_ENOMEM, 0, "%s: out of memory", what);
        return;
    }
    cg_http_req_set_attempt_timeout(req, a->imds_timeout_ms);
    cg_http_req_set_connect_timeout(req, a->imds_timeout_ms);
    cg_http_req_set_timeout(req, IMDS_ATTEMPTS * a->imds_timeout_ms + 1000);
    cg_http_req_set_max_attempts(req, IMDS_ATTEMPTS);
    cg_http_req_set_max_body(req, ANSWER_LIMIT);
    cg_http_req_set_retry_classifier(req, imds_retry, f);
    if (cg_http_submit(a->o.http, req, on_token, f, &err) < 0) {
        cg_http_req_free(req);
        finish_err(f, err.code, 0, "%s: %s", what, err.msg);
        return;
    }
    a->o.busy++;
}

static void refresh(struct cloud_token_slot *s)
{
    struct azure_auth *a = s->data;
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        struct cg_err e = {0};
        cg_err_set(&e, CG_ENOMEM, "out of memory");
        cloud__token_done(s, NULL, 0, &e);
        return;
    }
    f->a = a;
    f->res = (enum azure_resource)(s - a->slots);
    if (a->src == SRC_IMDS) {
        imds_start(f);
    } else {
        grant_start(f);
    }
}

/* ---- azure_auth_new ------------------------------------------------------------------------ */

static const char *var(const char *(*get)(const char *), const char *name)
{
    const char *v = get(name);
    return v != NULL && v[0] != '\0' ? v : NULL; /* empty counts as unset */
}

static int client_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* "<authority>/<tenant>/oauth2/v2.0/token". The authority may end with '/' (the AKS webhook
 * injects "https://login.microsoftonline.com/") and, as in azure-identity, may be a bare host
 * meaning https://. */
static int authority_url(struct azure_auth *a, const char *value, const char *tenant,
                         int allow_insecure, struct cg_err *err)
{
    struct cg_buf b;
    cg_buf_init(&b, 0);
    int rc = strstr(value, "://") == NULL ? cg_buf_append_str(&b, "https://") : 0;
    rc = rc < 0 ? rc : cg_buf_append_str(&b, value);
    if (rc < 0) {
        cg_buf_cleanup(&b);
        return cg_err_set(err, rc, "out of memory");
    }
    rc = cloud__endpoint_check("AZURE_AUTHORITY_HOST", b.data, URL_MAX, allow_insecure, err);
    if (rc < 0) {
        cg_buf_cleanup(&b);
        return rc;
    }
    while (b.len > 0 && b.data[b.len - 1] == '/') {
        b.data[--b.len] = '\0';
    }
    if (cg_buf_printf(&b, "/%s/oauth2/v2.0/token", tenant) < 0 ||
        (a->token_url = cg_buf_steal(&b, NULL)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    cg_buf_cleanup(&b);
    return rc;
}

static int imds_url(struct azure_auth *a, const char *value, struct cg_err *err)
{
    char shown[120];
    cg_printable_n(shown, sizeof(shown), value, strlen(value));
    if (strncasecmp(value, "http://", 7) != 0 && strncasecmp(value, "https://", 8) != 0) {
        return cg_err_set(err, CG_EINVAL,
                          "CLOUDGRANT_AZURE_IMDS_URL '%s' must be an http:// or https:// URL",
                          strstr(value, "@") ? "..." : shown);
    }
    /* plain http is IMDS's nature (a link-local address): allowed anywhere */
    int rc = cloud__endpoint_check("CLOUDGRANT_AZURE_IMDS_URL", value, URL_MAX, 1, err);
    if (rc < 0) {
        return rc;
    }
    if ((a->imds = strdup(value)) == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    size_t n = strlen(a->imds);
    while (n > 0 && a->imds[n - 1] == '/') {
        a->imds[--n] = '\0';
    }
    return 0;
}

/* The configuration names a token file: it must be there now (it is read again for every
 * token request). */
static int check_token_file(const char *path, struct cg_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = cg_file_read(path, TOKEN_FILE_LIMIT, &buf, &len, err);
    if (rc < 0) {
        if (err != NULL && rc != CG_ENOMEM) {
            err->code = rc = CG_EINVAL;
        }
        return cg_err_wrap(err, "AZURE_FEDERATED_TOKEN_FILE");
    }
    cg_wipe(buf, len);
    free(buf);
    return 0;
}

/* Which variables a source is missing, for the message: "AZURE_TENANT_ID and AZURE_CLIENT_ID". */
static const char *missing(const char *tenant, const char *client)
{
    if (tenant == NULL && client == NULL) {
        return "AZURE_TENANT_ID and AZURE_CLIENT_ID are";
    }
    return tenant == NULL ? "AZURE_TENANT_ID is" : "AZURE_CLIENT_ID is";
}

static int pick_source(struct azure_auth *a, const struct azure_auth_env *env,
                       const char *(*get)(const char *), struct cg_err *err)
{
    const char *tenant = var(get, "AZURE_TENANT_ID");
    const char *client = var(get, "AZURE_CLIENT_ID");
    const char *secret = var(get, "AZURE_CLIENT_SECRET");
    const char *file = var(get, "AZURE_FEDERATED_TOKEN_FILE");
    char shown[120];
    if (tenant != NULL && !tenant_ok(tenant)) {
        return cg_err_set(err, CG_EINVAL, "AZURE_TENANT_ID '%s' is not a tenant ID or domain name",
                          cg_printable_n(shown, sizeof(shown), tenant, strlen(tenant)));
    }
    if (client != NULL && !client_id_ok(client)) {
        return cg_err_set(err, CG_EINVAL, "AZURE_CLIENT_ID '%s' is not a client ID",
                          cg_printable_n(shown, sizeof(shown), client, strlen(client)));
    }
    if ((tenant != NULL && (a->tenant = strdup(tenant)) == NULL) ||
        (client != NULL && (a->client_id = strdup(client)) == NULL)) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int allow_insecure = env != NULL && env->allow_insecure_http;
    const char *authority = var(get, "AZURE_AUTHORITY_HOST");
    authority = authority != NULL ? authority : DEFAULT_AUTHORITY;
    if (secret != NULL) {
        if (tenant == NULL || client == NULL) {
            return cg_err_set(err, CG_EINVAL,
                              "AZURE_CLIENT_SECRET is set but %s not: a client secret needs "
                              "AZURE_TENANT_ID and AZURE_CLIENT_ID",
                              missing(tenant, client));
        }
        if ((a->secret = strdup(secret)) == NULL) {
            return cg_err_set(err, CG_ENOMEM, "out of memory");
        }
        a->src = SRC_SECRET;
        return authority_url(a, authority, tenant, allow_insecure, err);
    }
    if (file != NULL) {
        if (tenant == NULL || client == NULL) {
            return cg_err_set(err, CG_EINVAL,
                              "AZURE_FEDERATED_TOKEN_FILE is set but %s not: workload identity "
                              "needs AZURE_TENANT_ID and AZURE_CLIENT_ID",
                              missing(tenant, client));
        }
        int rc = check_token_file(file, err);
        if (rc < 0) {
            return rc;
        }
        if ((a->token_file = strdup(file)) == NULL) {
            return cg_err_set(err, CG_ENOMEM, "out of memory");
        }
        a->src = SRC_WORKLOAD;
        return authority_url(a, authority, tenant, allow_insecure, err);
    }
    if (env != NULL && env->no_imds) {
        return cg_err_set(err, CG_EAUTH, NO_SOURCE_MESSAGE);
    }
    const char *imds = env != NULL && env->imds_url != NULL && env->imds_url[0] != '\0'
                           ? env->imds_url
                           : var(get, "CLOUDGRANT_AZURE_IMDS_URL");
    a->src = SRC_IMDS;
    a->imds_timeout_ms =
        env != NULL && env->imds_timeout_ms > 0 ? env->imds_timeout_ms : IMDS_TIMEOUT_MS;
    return imds_url(a, imds != NULL ? imds : DEFAULT_IMDS, err);
}

int azure_auth_new(struct azure_auth **out, struct cg_http *h, const struct azure_auth_env *env,
                   struct cg_err *err)
{
    if (out == NULL || h == NULL) {
        return cg_err_set(err, CG_EINVAL, "no HTTP engine for Azure authentication");
    }
    *out = NULL;
    struct azure_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    a->o.http = h;
    a->o.now = env != NULL && env->now != NULL ? env->now : sys_now;
    a->o.release = maybe_release;
    const char *(*get)(const char *) = env != NULL && env->getenv ? env->getenv : sys_getenv;
    int rc = pick_source(a, env, get, err);
    if (rc < 0) {
        provider_release(a);
        return rc;
    }
    for (int r = 0; r < AZURE_RESOURCE_COUNT; r++) {
        snprintf(a->what[r], sizeof(a->what[r]), "Azure token (%s) for %s", source_names[a->src],
                 resources[r].name);
        cloud__token_slot_init(&a->slots[r], &a->o, a->what[r], "azure", REFRESH_MARGIN_S,
                               STALE_OK_S, refresh, a);
    }
    CG_LOG(CG_LOG_DEBUG, "azure", "Azure credentials: %s", source_names[a->src]);
    *out = a;
    return 0;
}

void azure_auth_free(struct azure_auth *a)
{
    if (a == NULL || a->o.dead) {
        return;
    }
    a->o.dead = 1;
    for (int r = 0; r < AZURE_RESOURCE_COUNT; r++) {
        cloud__token_cancel(&a->slots[r]);
    }
    maybe_release(&a->o);
}

const char *azure_auth_source(const struct azure_auth *a)
{
    return a != NULL ? source_names[a->src] : "none";
}

const char *azure_auth_tenant(const struct azure_auth *a)
{
    return a != NULL ? a->tenant : NULL;
}

int azure_auth_get_token(struct azure_auth *a, enum azure_resource res, azure_token_cb *cb,
                         void *data, struct cg_err *err)
{
    if (a == NULL || cb == NULL || (int)res < 0 || res >= AZURE_RESOURCE_COUNT) {
        return cg_err_set(err, CG_EINVAL, "no Azure credentials provider");
    }
    if (a->o.dead) {
        return cg_err_set(err, CG_ECANCELED, "Azure credentials provider is shut down");
    }
    int rc = cloud__token_get(&a->slots[res], cb, data);
    if (rc < 0) {
        return cg_err_set(err, rc, "cannot get an Azure token: %s", cg_errc_str(rc));
    }
    return 0;
}

void azure_auth_invalidate(struct azure_auth *a, enum azure_resource res)
{
    if (a == NULL || (int)res < 0 || res >= AZURE_RESOURCE_COUNT) {
        return;
    }
    cloud__token_invalidate(&a->slots[res]);
}
