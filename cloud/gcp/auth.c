/* cloud/gcp/auth.c: Google OAuth2 access tokens from a service-account key file (JWT bearer
 * grant) or the metadata server, cached and shared by concurrent callers. See gcp_auth.h and
 * protocols.md 2.1 and 2.2.
 *
 * The cache, the waiters queued on one refresh (`fetch`) and the lifetime rules are
 * cloud/token_cache's: every answer goes through the loop, and owner.busy counts the engine
 * callbacks that will come back to us so the memory outlives gcp_auth_free until the last of
 * them. */
#include "gcp_auth.h"

#include "../token_cache.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SCOPE_CLOUD_PLATFORM  "https://www.googleapis.com/auth/cloud-platform"
#define DEFAULT_TOKEN_URI     "https://oauth2.googleapis.com/token"
#define DEFAULT_METADATA_HOST "metadata.google.internal"
#define MD_TOKEN_PATH         "/computeMetadata/v1/instance/service-accounts/default/token"
#define MD_EMAIL_PATH         "/computeMetadata/v1/instance/service-accounts/default/email"
/* application/x-www-form-urlencoded, as google-auth's urlencode sends it */
#define GRANT_TYPE_FORM "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"

#define KEY_FILE_LIMIT   (64u * 1024u)
#define ANSWER_LIMIT     (64u * 1024u)
#define TOKEN_MAX        8192 /* Google's tokens are a few hundred bytes */
#define EMAIL_MAX        320
#define JWT_LIFETIME_S   3600  /* the maximum Google accepts */
#define REFRESH_MARGIN_S 225   /* google-auth's refresh threshold (3 min 45 s) */
#define STALE_OK_S       60    /* a failed refresh still serves a token with a minute left */
#define EXPIRES_IN_MAX   86400 /* a larger expires_in is not believed */

#define TOKEN_TIMEOUT_MS 30000
#define TOKEN_ATTEMPT_MS 10000
#define TOKEN_ATTEMPTS   4
#define MD_TIMEOUT_MS    3000 /* google-auth's metadata timeout */
#define MD_ATTEMPTS      3
#define NO_SOURCE_MESSAGE                                                                          \
    "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, "    \
    "or run where the metadata server answers (GKE Workload Identity, GCE)"

/* ---- key file ------------------------------------------------------------------------------ */

/* jansson keeps its own copy of every string it parsed: wipe the key before freeing. */
static void key_doc_free(json_t *doc)
{
    json_t *pk = json_is_object(doc) ? json_object_get(doc, "private_key") : NULL;
    if (json_is_string(pk)) {
        cg_wipe((char *)json_string_value(pk), json_string_length(pk));
    }
    json_decref(doc);
}

/* A string member: 0 with *out a copy (NULL when absent and optional), or CG_EINVAL naming the
 * member (never its value). */
static int key_member(json_t *doc, const char *name, int required, char **out, const char *src,
                      struct cg_err *err)
{
    json_t *v = json_object_get(doc, name);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return cg_err_set(err, CG_EINVAL, "service-account key file '%s': \"%s\" is missing",
                              src, name);
        }
        return 0;
    }
    if (!json_is_string(v)) {
        return cg_err_set(err, CG_EINVAL, "service-account key file '%s': \"%s\" is not a string",
                          src, name);
    }
    if (required && json_string_length(v) == 0) {
        return cg_err_set(err, CG_EINVAL, "service-account key file '%s': \"%s\" is empty", src,
                          name);
    }
    if ((*out = strdup(json_string_value(v))) == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return 0;
}

/* The assertion and the token request go to token_uri: only over TLS, or to this machine.
 * cg_url_check_transport decides the scheme and loopback question; a userinfo part is refused
 * on top, as "http://127.0.0.1:80@example.com/" names example.com, not loopback. */
static int token_uri_ok(const char *uri)
{
    for (const char *p = uri; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f) {
            return 0;
        }
    }
    if (cg_url_check_transport(uri, 0, "token_uri", NULL) < 0) {
        return 0;
    }
    const char *auth = strstr(uri, "://") + 3;
    size_t n = strcspn(auth, "/?#");
    return n > 0 && memchr(auth, '@', n) == NULL;
}

int gcp_key_file_parse(struct gcp_key_file *out, const char *json, size_t len, const char *source,
                       struct cg_err *err)
{
    struct gcp_key_file k = {0};
    json_error_t je;
    char src[200];
    int rc = 0;
    if (out == NULL || (json == NULL && len > 0)) {
        return cg_err_set(err, CG_EINVAL, "no service-account key to parse");
    }
    memset(out, 0, sizeof(*out));
    cg_printable_n(src, sizeof(src), source ? source : "", source ? strlen(source) : 0);
    json_t *doc = json_loadb(json != NULL ? json : "", len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        /* je.text quotes the text near the error, which may be the private key: keep only the
         * position */
        const char *what = json_error_code(&je) == json_error_duplicate_key
                               ? "a member appears twice"
                               : "not valid JSON";
        return cg_err_set(err, CG_EINVAL, "service-account key file '%s': %s (line %d, column %d)",
                          src, what, je.line, je.column);
    }
    if (!json_is_object(doc)) {
        rc = cg_err_set(err, CG_EINVAL, "service-account key file '%s': not a JSON object", src);
        goto out;
    }
    json_t *type = json_object_get(doc, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "service_account") != 0) {
        rc =
            cg_err_set(err, CG_EINVAL,
                       "service-account key file '%s': \"type\" must be \"service_account\" (other "
                       "credential types are not supported)",
                       src);
        goto out;
    }
    if ((rc = key_member(doc, "client_email", 1, &k.client_email, src, err)) < 0 ||
        (rc = key_member(doc, "private_key_id", 1, &k.private_key_id, src, err)) < 0 ||
        (rc = key_member(doc, "private_key", 1, &k.private_key, src, err)) < 0 ||
        (rc = key_member(doc, "token_uri", 0, &k.token_uri, src, err)) < 0 ||
        (rc = key_member(doc, "project_id", 0, &k.project_id, src, err)) < 0) {
        goto out;
    }
    if (k.token_uri == NULL || k.token_uri[0] == '\0') {
        free(k.token_uri);
        if ((k.token_uri = strdup(DEFAULT_TOKEN_URI)) == NULL) {
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto out;
        }
    } else if (!token_uri_ok(k.token_uri)) {
        rc = cg_err_set(err, CG_EINVAL,
                        "service-account key file '%s': \"token_uri\" must be an https:// URL "
                        "(plain http:// only to a loopback host, no user name)",
                        src);
        goto out;
    }
    if (k.project_id != NULL && k.project_id[0] == '\0') {
        free(k.project_id);
        k.project_id = NULL;
    }
    *out = k;
    memset(&k, 0, sizeof(k));
out:
    gcp_key_file_cleanup(&k);
    key_doc_free(doc);
    return rc;
}

void gcp_key_file_cleanup(struct gcp_key_file *k)
{
    if (k == NULL) {
        return;
    }
    free(k->client_email);
    free(k->private_key_id);
    cg_secret_free(k->private_key);
    free(k->token_uri);
    free(k->project_id);
    memset(k, 0, sizeof(*k));
}

/* ---- JWT ----------------------------------------------------------------------------------- */

/* base64url without padding (RFC 7515 section 2), as a new string; NULL on ENOMEM. */
static char *b64url(const unsigned char *in, size_t len)
{
    char *s = cg_b64_encode(in, len);
    if (s == NULL) {
        return NULL;
    }
    char *w = s;
    for (const char *r = s; *r != '\0' && *r != '='; r++) {
        *w++ = *r == '+' ? '-' : *r == '/' ? '_' : *r;
    }
    *w = '\0';
    return s;
}

/* A compact JSON document as base64url; NULL on ENOMEM. */
static char *b64url_json(json_t *doc)
{
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    char *b = s != NULL ? b64url((const unsigned char *)s, strlen(s)) : NULL;
    free(s);
    return b;
}

/* An encrypted PEM would make OpenSSL prompt on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* RS256 over `in`: the signature as base64url. */
static int rs256(EVP_PKEY *pkey, const char *in, size_t len, char **out, struct cg_err *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    int rc = 0;
    if (md == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    /* PKCS#1 v1.5 is RSA's default padding; set it anyway: RS256 is not PSS */
    if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)in, len) != 1) {
        rc = cg_err_set(err, CG_EINVAL, "cannot sign with \"private_key\"");
        goto out;
    }
    if ((sig = malloc(siglen)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)in, len) != 1) {
        rc = cg_err_set(err, CG_EINVAL, "cannot sign with \"private_key\"");
        goto out;
    }
    if ((*out = b64url(sig, siglen)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    }
out:
    free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

int gcp_jwt_assertion(const struct gcp_key_file *k, const char *scope, int64_t now, char **out,
                      struct cg_err *err)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    json_t *hdr = NULL;
    json_t *claims = NULL;
    char *h64 = NULL;
    char *c64 = NULL;
    char *s64 = NULL;
    struct cg_buf b;
    int rc = 0;
    cg_buf_init(&b, 0);
    b.sensitive = 1; /* the assertion is a bearer credential for an hour */
    if (k == NULL || k->private_key == NULL || k->client_email == NULL ||
        k->private_key_id == NULL || k->token_uri == NULL || scope == NULL || out == NULL) {
        return cg_err_set(err, CG_EINVAL, "incomplete service-account key");
    }
    /* OpenSSL's decoders queue errors even on paths that end well: leave the thread's queue as
     * the caller had it */
    ERR_set_mark();
    if ((bio = BIO_new_mem_buf(k->private_key, -1)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        rc = cg_err_set(err, CG_EINVAL, "\"private_key\" is not an unencrypted PEM private key");
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        rc = cg_err_set(err, CG_EINVAL, "\"private_key\" is not an RSA key (RS256 needs one)");
        goto out;
    }
    hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", k->private_key_id);
    claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", k->client_email, "scope", scope, "aud",
                  k->token_uri, "iat", (json_int_t)now, "exp", (json_int_t)(now + JWT_LIFETIME_S));
    if (hdr == NULL || claims == NULL) {
        /* jansson refuses strings that are not UTF-8 (a parsed key file's always are) */
        rc = cg_err_set(err, CG_EINVAL, "cannot encode the JWT: a key field is not UTF-8");
        goto out;
    }
    if ((h64 = b64url_json(hdr)) == NULL || (c64 = b64url_json(claims)) == NULL ||
        cg_buf_printf(&b, "%s.%s", h64, c64) < 0) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = rs256(pkey, b.data, b.len, &s64, err)) < 0) {
        goto out;
    }
    if (cg_buf_printf(&b, ".%s", s64) < 0) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    if ((*out = cg_buf_steal(&b, NULL)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    }
out:
    ERR_pop_to_mark();
    free(s64);
    free(h64);
    free(c64);
    json_decref(hdr);
    json_decref(claims);
    cg_buf_cleanup(&b);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

/* ---- token answers ------------------------------------------------------------------------- */

/* ---- the provider -------------------------------------------------------------------------- */

enum source { SRC_NONE = 0, SRC_KEY, SRC_METADATA, SRC_COUNT };

struct gcp_auth {
    struct cloud_token_owner owner; /* engine, clock, lifetime counters */
    struct cloud_token_slot slot;   /* the cached token and its waiters */
    enum source src;

    struct gcp_key_file key; /* SRC_KEY */
    char what[300];          /* message prefix: "GCP token from key file '<path>'" */
    char key_source[300];    /* "service-account key file '<path>'" */
    char *md_host;           /* SRC_METADATA: host[:port] */
    long md_timeout_ms;
    char *md_email; /* learnt from the metadata server */

    const char *source; /* of the cached token; NULL before the first one */
};

/* One refresh. The metadata source waits for its token and email requests both. */
struct fetch {
    struct gcp_auth *a;
    enum source src;
    int pending;
    char *token; /* secret */
    int64_t expires_in;
    int failed;
    struct cg_err err;
    char *email;
};

static const char *sys_getenv(const char *name)
{
    return getenv(name);
}

static int64_t sys_now(void)
{
    return (int64_t)time(NULL);
}

static void provider_release(struct gcp_auth *a)
{
    gcp_key_file_cleanup(&a->key);
    free(a->md_host);
    free(a->md_email);
    cloud__token_slot_cleanup(&a->slot);
    free(a);
}

static void owner_release(struct cloud_token_owner *o)
{
    struct gcp_auth *a = (struct gcp_auth *)o; /* owner is the first member */
    if (cloud__token_owner_quiet(o) && cloud__token_slot_idle(&a->slot)) {
        provider_release(a);
    }
}

static void fetch_free(struct fetch *f)
{
    cg_secret_free(f->token);
    free(f->email);
    free(f);
}

/* Ends the refresh: token (taken; NULL on failure) becomes the cache. */
static void finish(struct fetch *f, char *token, int64_t expires_in, const struct cg_err *err)
{
    struct gcp_auth *a = f->a;
    enum source src = f->src;
    fetch_free(f);
    if (token != NULL && !a->owner.dead) {
        a->source = src == SRC_KEY ? a->key_source : "metadata server";
        CG_LOG(CG_LOG_DEBUG, "gcp", "GCP token from %s, expires in %lld s", a->source,
               (long long)expires_in);
    }
    /* caches the token or falls back to the cached one; may free the provider */
    cloud__token_done(&a->slot, token, expires_in, err);
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

/* ---- source 1: the key file's JWT bearer grant --------------------------------------------- */

/* Sign hook: each attempt carries an assertion signed now, so a retry after a long backoff (or
 * a clock that moved) is not refused for a stale iat. The engine runs the hook before it hands
 * the body to curl, so the body replaced here is the one this attempt sends. */
static int sign_grant(struct cg_http_req *req, void *data, struct cg_err *err)
{
    struct fetch *f = data;
    struct gcp_auth *a = f->a;
    char *jwt = NULL;
    struct cg_buf b;
    int rc = gcp_jwt_assertion(&a->key, SCOPE_CLOUD_PLATFORM, a->owner.now(), &jwt, err);
    if (rc < 0) {
        return rc;
    }
    cg_buf_init(&b, 0);
    b.sensitive = 1;
    rc = cg_buf_printf(&b, "%s&assertion=%s", GRANT_TYPE_FORM, jwt); /* base64url: no escaping */
    cg_secret_free(jwt);
    size_t len = b.len;
    char *body = rc == 0 ? cg_buf_steal(&b, NULL) : NULL;
    cg_buf_cleanup(&b);
    if (body == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    if ((rc = cg_http_req_body_take(req, body, len)) < 0) {
        return cg_err_set(err, rc, "cannot set the request body");
    }
    return 0;
}

static int is_retryable_oauth(const char *s)
{
    return s != NULL && (strcmp(s, "internal_failure") == 0 || strcmp(s, "server_error") == 0 ||
                         strcmp(s, "temporarily_unavailable") == 0);
}

/* Retry classifier: the OAuth errors google-auth retries arrive with 4xx statuses (5xx and 429
 * are retried by the engine already). */
static int oauth_retry(struct cg_http_req *req, void *data)
{
    long status = cg_http_req_status(req);
    if (status < 400) {
        return 0; /* a 200 holds the token: not parsed here */
    }
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    json_t *doc = json_loadb(body, len, 0, NULL);
    int retry = json_is_object(doc) &&
                (is_retryable_oauth(json_string_value(json_object_get(doc, "error"))) ||
                 is_retryable_oauth(json_string_value(json_object_get(doc, "error_description"))));
    json_decref(doc);
    return retry;
}

/* An OAuth error answer ({"error","error_description"}, or Google's {"error":{"status",
 * "message"}}) as "<error>: <description>", printable and cut; 0 when the body has neither. */
static int oauth_error_text(json_t *doc, char *buf, size_t cap)
{
    json_t *e = json_is_object(doc) ? json_object_get(doc, "error") : NULL;
    const char *code = json_string_value(e);
    const char *desc = json_string_value(json_object_get(doc, "error_description"));
    if (json_is_object(e)) {
        code = json_string_value(json_object_get(e, "status"));
        desc = json_string_value(json_object_get(e, "message"));
    }
    if (code == NULL && desc == NULL) {
        return 0;
    }
    char c[64];
    char d[240];
    cg_printable_n(c, sizeof(c), code ? code : "error", code ? strlen(code) : 5);
    if (desc != NULL && desc[0] != '\0') {
        cg_printable_n(d, sizeof(d), desc, strlen(desc));
        snprintf(buf, cap, "%s: %s", c, d);
    } else {
        snprintf(buf, cap, "%s", c);
    }
    return 1;
}

static void on_key_token(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct gcp_auth *a = f->a;
    a->owner.busy--;
    if (a->owner.dead) {
        finish_err(f, CG_ECANCELED, 0, "GCP token request cancelled");
        return;
    }
    if (herr != NULL) {
        finish_err(f, herr->code, herr->http_status, "%s: %s", a->what, herr->msg);
        return;
    }
    long status = cg_http_req_status(req);
    json_t *doc = cloud__token_answer_load(req);
    if (status == 200) {
        char *token = NULL;
        int64_t expires_in = 0;
        const char *what = "out of memory";
        int rc =
            cloud__token_from_answer(doc, TOKEN_MAX, EXPIRES_IN_MAX, &token, &expires_in, &what);
        cloud__token_answer_free(doc);
        if (rc < 0) {
            finish_err(f, rc, status, "%s: %s", a->what, what);
            return;
        }
        finish(f, token, expires_in, NULL);
        return;
    }
    /* An OAuth refusal (invalid_grant: clock skew, a deleted key) is about the credentials;
     * a server failure or an answer from something else is not. */
    char text[320];
    int oauth = oauth_error_text(doc, text, sizeof(text));
    cloud__token_answer_free(doc);
    int code = status < 500 && (oauth || status == 401 || status == 403) ? CG_EAUTH : CG_ESTATUS;
    if (oauth) {
        finish_err(f, code, status, "%s: %s", a->what, text);
        return;
    }
    const char *reason = cg_http_reason(status);
    finish_err(f, code, status, "%s: HTTP %ld%s%s%s", a->what, status, reason ? " (" : "",
               reason ? reason : "", reason ? ")" : "");
}

static void key_start(struct fetch *f)
{
    struct gcp_auth *a = f->a;
    struct cg_err err = {0};
    struct cg_http_req *req = cg_http_req_new("POST", a->key.token_uri);
    if (req == NULL ||
        cg_http_req_header(req, "Content-Type", "application/x-www-form-urlencoded") < 0 ||
        cg_http_req_header(req, "Accept", "application/json") < 0 ||
        cg_http_req_set_label(req, "GCP OAuth token") < 0) {
        cg_http_req_free(req);
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    cg_http_req_set_timeout(req, TOKEN_TIMEOUT_MS);
    cg_http_req_set_attempt_timeout(req, TOKEN_ATTEMPT_MS);
    cg_http_req_set_max_attempts(req, TOKEN_ATTEMPTS);
    cg_http_req_set_max_body(req, ANSWER_LIMIT);
    cg_http_req_set_sign(req, sign_grant, f);
    cg_http_req_set_retry_classifier(req, oauth_retry, f);
    if (cg_http_submit(a->owner.http, req, on_key_token, f, &err) < 0) {
        cg_http_req_free(req);
        cg_err_wrap(&err, "%s", a->what);
        finish(f, NULL, 0, &err);
        return;
    }
    a->owner.busy++;
}

/* ---- source 2: the metadata server --------------------------------------------------------- */

/* A reply without Metadata-Flavor: Google did not come from the metadata server (a captive
 * portal, a proxy, some other host on that name). */
static int genuine(struct cg_http_req *req)
{
    const char *flavor = cg_http_req_resp_header(req, "Metadata-Flavor");
    return flavor != NULL && strcasecmp(flavor, "Google") == 0;
}

static void md_complete(struct fetch *f)
{
    struct gcp_auth *a = f->a;
    if (a->owner.dead) {
        finish_err(f, CG_ECANCELED, 0, "GCP token request cancelled");
        return;
    }
    if (f->email != NULL && a->md_email == NULL) {
        a->md_email = f->email;
        f->email = NULL;
    }
    if (f->failed) {
        struct cg_err e = f->err;
        finish(f, NULL, 0, &e);
        return;
    }
    char *token = f->token;
    f->token = NULL;
    finish(f, token, f->expires_in, NULL);
}

static void md_fail(struct fetch *f, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void md_fail(struct fetch *f, int code, long status, const char *fmt, ...)
{
    char msg[CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    f->failed = 1;
    cg_err_set(&f->err, code, "%s", msg);
    f->err.http_status = status;
}

static void on_md_token(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct gcp_auth *a = f->a;
    a->owner.busy--;
    f->pending--;
    if (a->owner.dead) {
        /* md_complete answers with CG_ECANCELED */
    } else if (herr != NULL && herr->code == CG_ECANCELED) {
        md_fail(f, herr->code, 0, "GCP token from metadata server '%s': %s", a->md_host, herr->msg);
    } else if (herr != NULL) {
        /* not on GCP, or the metadata server is unreachable from here: the source is absent */
        CG_LOG(CG_LOG_DEBUG, "gcp", "no metadata server: %s", herr->msg);
        md_fail(f, CG_EAUTH, 0, NO_SOURCE_MESSAGE);
    } else if (!genuine(req)) {
        CG_LOG(CG_LOG_DEBUG, "gcp",
               "metadata server '%s': ignored an answer without Metadata-Flavor: Google",
               a->md_host);
        md_fail(f, CG_EAUTH, 0, NO_SOURCE_MESSAGE);
    } else if (cg_http_req_status(req) != 200) {
        long status = cg_http_req_status(req);
        const char *reason = cg_http_reason(status);
        md_fail(f, status >= 500 ? CG_ESTATUS : CG_EAUTH, status,
                "GCP token from metadata server '%s': HTTP %ld%s%s%s", a->md_host, status,
                reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
    } else {
        json_t *doc = cloud__token_answer_load(req);
        const char *what = "out of memory";
        int rc = cloud__token_from_answer(doc, TOKEN_MAX, EXPIRES_IN_MAX, &f->token, &f->expires_in,
                                          &what);
        cloud__token_answer_free(doc);
        if (rc < 0) {
            md_fail(f, rc, 200, "GCP token from metadata server '%s': %s", a->md_host, what);
        }
    }
    if (f->pending == 0) {
        md_complete(f);
    }
}

static int email_ok(const char *s, size_t len)
{
    if (len == 0 || len > EMAIL_MAX || strlen(s) != len || strchr(s, '@') == NULL) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

static void on_md_email(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct gcp_auth *a = f->a;
    a->owner.busy--;
    f->pending--;
    if (herr == NULL && !a->owner.dead && genuine(req) && cg_http_req_status(req) == 200) {
        size_t len = 0;
        const char *body = cg_http_req_body(req, &len);
        char *email = strndup(body, len);
        if (email != NULL) {
            cg_trim(email);
            if (email_ok(email, strlen(email))) {
                f->email = email;
                email = NULL;
            }
        }
        free(email);
    }
    if (f->email == NULL && !a->owner.dead) {
        /* the token works without it; the next refresh asks again */
        CG_LOG(CG_LOG_DEBUG, "gcp", "metadata server '%s': no usable service-account email",
               a->md_host);
    }
    if (f->pending == 0) {
        md_complete(f);
    }
}

/* One metadata GET: never through a proxy (the answer must come from this node), short
 * attempts, a few of them. */
static int md_submit(struct fetch *f, const char *path, const char *label, cg_http_done_cb *done,
                     struct cg_err *err)
{
    struct gcp_auth *a = f->a;
    char url[400];
    snprintf(url, sizeof(url), "http://%s%s", a->md_host, path);
    struct cg_http_req *req = cg_http_req_new("GET", url);
    if (req == NULL || cg_http_req_header(req, "Metadata-Flavor", "Google") < 0 ||
        cg_http_req_set_proxy(req, "") < 0 || cg_http_req_set_label(req, label) < 0) {
        cg_http_req_free(req);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    cg_http_req_set_attempt_timeout(req, a->md_timeout_ms);
    cg_http_req_set_connect_timeout(req, a->md_timeout_ms);
    cg_http_req_set_timeout(req, MD_ATTEMPTS * a->md_timeout_ms + 1000);
    cg_http_req_set_max_attempts(req, MD_ATTEMPTS);
    cg_http_req_set_max_body(req, ANSWER_LIMIT);
    int rc = cg_http_submit(a->owner.http, req, done, f, err);
    if (rc < 0) {
        cg_http_req_free(req);
        return rc;
    }
    a->owner.busy++;
    f->pending++;
    return 0;
}

static void md_start(struct fetch *f)
{
    struct gcp_auth *a = f->a;
    struct cg_err err = {0};
    if (md_submit(f, MD_TOKEN_PATH, "GCP metadata token", on_md_token, &err) < 0) {
        cg_err_wrap(&err, "GCP token from metadata server '%s'", a->md_host);
        finish(f, NULL, 0, &err);
        return;
    }
    if (a->md_email == NULL &&
        md_submit(f, MD_EMAIL_PATH, "GCP metadata email", on_md_email, &err) < 0) {
        CG_LOG(CG_LOG_DEBUG, "gcp", "cannot ask the metadata server for the email: %s", err.msg);
    }
}

/* ---- public API ---------------------------------------------------------------------------- */

static int metadata_host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 255) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)h[i]) && strchr(".-_:[]", h[i]) == NULL) {
            return 0;
        }
    }
    return 1;
}

static int load_key(struct gcp_auth *a, const char *path, struct cg_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    char *jwt = NULL;
    char p[200];
    cg_printable_n(p, sizeof(p), path, strlen(path));
    int rc = cg_file_read(path, KEY_FILE_LIMIT, &buf, &len, err);
    if (rc < 0) {
        rc = rc == CG_ENOMEM ? rc : CG_EINVAL; /* the configuration names a file we cannot use */
        if (err != NULL) {
            err->code = rc;
        }
        cg_err_wrap(err, "GOOGLE_APPLICATION_CREDENTIALS");
        return rc;
    }
    rc = gcp_key_file_parse(&a->key, buf, len, path, err);
    cg_wipe(buf, len);
    free(buf);
    if (rc < 0) {
        cg_err_wrap(err, "GOOGLE_APPLICATION_CREDENTIALS");
        return rc;
    }
    /* sign once now: a key that cannot sign is a configuration error, said at startup */
    rc = gcp_jwt_assertion(&a->key, SCOPE_CLOUD_PLATFORM, a->owner.now(), &jwt, err);
    cg_secret_free(jwt);
    if (rc < 0) {
        cg_err_wrap(err, "GOOGLE_APPLICATION_CREDENTIALS: service-account key file '%s'", p);
        return rc;
    }
    snprintf(a->what, sizeof(a->what), "GCP token from key file '%s'", p);
    snprintf(a->key_source, sizeof(a->key_source), "service-account key file '%s'", p);
    return 0;
}

static void start_fetch(struct cloud_token_slot *s);

int gcp_auth_new(struct gcp_auth **out, struct cg_http *h, const struct gcp_auth_env *env,
                 struct cg_err *err)
{
    if (out == NULL || h == NULL) {
        return cg_err_set(err, CG_EINVAL, "no HTTP engine for GCP authentication");
    }
    struct gcp_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    a->owner.http = h;
    a->owner.now = env && env->now ? env->now : sys_now;
    a->owner.release = owner_release;
    cloud__token_slot_init(&a->slot, &a->owner, "GCP token", "gcp", REFRESH_MARGIN_S, STALE_OK_S,
                           start_fetch, a);
    const char *(*get)(const char *) = env && env->getenv ? env->getenv : sys_getenv;
    a->md_timeout_ms =
        env && env->metadata_timeout_ms > 0 ? env->metadata_timeout_ms : MD_TIMEOUT_MS;
    int rc = 0;
    const char *path = get("GOOGLE_APPLICATION_CREDENTIALS");
    if (path != NULL && path[0] != '\0') {
        if ((rc = load_key(a, path, err)) < 0) {
            goto fail;
        }
        a->src = SRC_KEY;
    } else if (env != NULL && env->no_metadata) {
        a->src = SRC_NONE;
    } else {
        const char *host = env ? env->metadata_host : NULL;
        host = host ? host : get("GCE_METADATA_HOST");
        host = host && host[0] ? host : DEFAULT_METADATA_HOST;
        if (!metadata_host_ok(host)) {
            char hp[100];
            cg_printable_n(hp, sizeof(hp), host, strlen(host));
            rc = cg_err_set(err, CG_EINVAL, "GCP metadata host '%s' is not a host[:port]", hp);
            goto fail;
        }
        if ((a->md_host = strdup(host)) == NULL) {
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto fail;
        }
        a->src = SRC_METADATA;
    }
    *out = a;
    return 0;
fail:
    provider_release(a);
    return rc;
}

const char *gcp_auth_project_hint(const struct gcp_auth *a)
{
    return a != NULL && a->src == SRC_KEY ? a->key.project_id : NULL;
}

const char *gcp_auth_email(const struct gcp_auth *a)
{
    if (a == NULL) {
        return NULL;
    }
    return a->src == SRC_KEY ? a->key.client_email : a->md_email;
}

const char *gcp_auth_source(const struct gcp_auth *a)
{
    return a != NULL ? a->source : NULL;
}

void gcp_auth_invalidate(struct gcp_auth *a)
{
    if (a == NULL) {
        return;
    }
    cloud__token_invalidate(&a->slot);
}

static void start_fetch(struct cloud_token_slot *s)
{
    struct gcp_auth *a = s->data;
    if (a->src == SRC_NONE) {
        struct cg_err e = {0};
        cg_err_set(&e, CG_EAUTH, NO_SOURCE_MESSAGE);
        cloud__token_done(s, NULL, 0, &e);
        return;
    }
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        struct cg_err e = {0};
        cg_err_set(&e, CG_ENOMEM, "out of memory");
        cloud__token_done(s, NULL, 0, &e);
        return;
    }
    f->a = a;
    f->src = a->src;
    if (a->src == SRC_KEY) {
        key_start(f);
    } else {
        md_start(f);
    }
}

void gcp_auth_free(struct gcp_auth *a)
{
    if (a == NULL || a->owner.dead) {
        return;
    }
    a->owner.dead = 1;
    cloud__token_cancel(&a->slot);
    a->owner.release(&a->owner);
}

int gcp_auth_get_token(struct gcp_auth *a, gcp_token_cb *cb, void *data, struct cg_err *err)
{
    if (a == NULL || cb == NULL) {
        return cg_err_set(err, CG_EINVAL, "no GCP credentials provider");
    }
    if (a->owner.dead) {
        return cg_err_set(err, CG_ECANCELED, "GCP credentials provider is shut down");
    }
    int rc = cloud__token_get(&a->slot, cb, data);
    if (rc == CG_ENOMEM) {
        return cg_err_set(err, rc, "out of memory");
    }
    if (rc < 0) {
        return cg_err_set(err, rc, "cannot get a GCP token: %s", cg_errc_str(rc));
    }
    return 0;
}
