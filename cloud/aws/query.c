/* cloud/aws/query.c: the AWS Query protocol (IAM, STS) on the cg_http engine.
 *
 * A call goes: credentials (aws_creds_get, async) -> one cg_http request whose sign hook
 * signs every attempt afresh -> the XML answer turned into JSON. Retries of protocol-level
 * errors (Throttling arrives as a 400) happen inside cg_http through the classifier. Two
 * cases are handled here, on timers: an ExpiredToken answer, because new credentials must be
 * fetched asynchronously before the request can be sent again, and, when the caller asks,
 * IAM's eventual consistency (AWS_RETRY_*), whose waits are seconds, not an engine attempt's.
 *
 * Response bodies can carry secrets (CreateAccessKey returns SecretAccessKey), so nothing here
 * ever prints or logs a body; error messages use only the AWS Code and Message. */
#include "aws_query.h"

#include "aws_creds.h"
#include "aws_sigv4.h"
#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "rest_common.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000L
/* IAM's own guidance: changes take "a few seconds" to be seen everywhere. */
#define DEFAULT_CONSISTENCY_MS 30000L
#define DEFAULT_POLL_MS        300L
#define MAX_WAIT_MS            5000L
/* The engine's own body cap; a larger body never reaches us from the network, the check is
 * for direct callers (tests, fuzzing) and keeps the int that libxml2 takes in range. */
#define MAX_RESPONSE ((size_t)8 * 1024 * 1024)
/* Real answers nest at most 6 deep; the cap bounds the converter's recursion. */
#define MAX_DEPTH 64
/* 1000 pages of up to 1000 items is far beyond any account's quotas. */
#define MAX_PAGES 1000
/* How much of a parameter value names the resource in messages. */
#define MAX_RESOURCE 200

struct aws_query_client {
    struct cg_http *http;
    struct aws_creds_provider *creds;
    char *service;
    char *service_upper; /* "IAM" | "STS", for messages */
    char *version;
    char *url; /* endpoint + "/" (a path prefix of the endpoint is kept) */
    char *region;
    long timeout_ms;
    long consistency_ms;
    long poll_ms;
    uint64_t rng; /* jitter of consistency waits */
    struct aws_query_stats stats;
};

/* One logical call, across the credential fetch, the HTTP attempts and an ExpiredToken
 * refetch. */
struct qcall {
    struct aws_query_client *c;
    char *action;
    char *resource; /* cleaned value of the first naming parameter, or NULL */
    char *body;     /* the form body; wiped on free (ChangePassword-like actions carry secrets) */
    size_t body_len;
    struct aws_credentials creds; /* copy for the sign hook; wiped on free */
    int have_creds;
    int refetched;            /* ExpiredToken: credentials were refetched once already */
    uint64_t deadline_ms;     /* of the current send */
    unsigned flags;           /* AWS_RETRY_* */
    struct cloud_retry retry; /* waits for AWS_RETRY_* conditions */
    aws_query_cb *cb;
    void *data;
};

/* ---- small helpers ---- */

static int is_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

static int append_encoded(struct cg_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        int rc;
        if (is_unreserved(*p)) {
            rc = cg_buf_append(b, p, 1);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = cg_buf_append(b, enc, 3);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int append_pair(struct cg_buf *b, const char *name, const char *value, int first)
{
    int rc = first ? 0 : cg_buf_append(b, "&", 1);
    if (rc == 0) {
        rc = append_encoded(b, name ? name : "");
    }
    if (rc == 0) {
        rc = cg_buf_append(b, "=", 1);
    }
    if (rc == 0) {
        rc = append_encoded(b, value ? value : "");
    }
    return rc;
}

char *aws_query_encode_form(const char *action, const char *version, const struct aws_param *params,
                            size_t nparams)
{
    struct cg_buf b;
    cg_buf_init(&b, 0);
    b.sensitive = 1; /* it may hold a password or a token */
    int rc = append_pair(&b, "Action", action, 1);
    if (rc == 0) {
        rc = append_pair(&b, "Version", version, 0);
    }
    for (size_t i = 0; rc == 0 && i < nparams; i++) {
        rc = append_pair(&b, params[i].name, params[i].value, 0);
    }
    char *out = rc == 0 ? cg_buf_steal(&b, NULL) : NULL;
    cg_buf_cleanup(&b);
    return out;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* RFC 3986 decoding: %XX only; '+' stays '+' (it is not form encoding). A '%' that does not
 * start a valid escape is kept as it is. Returns the decoded length; out needs len bytes. */
static size_t percent_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)in[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/* Copies text for a one-line message: control characters become spaces, runs of spaces
 * collapse, the ends are trimmed, and a cut never splits a UTF-8 sequence. */
static void clean_line(char *dst, size_t cap, const char *src, size_t len)
{
    size_t o = 0;
    int space = 1; /* drops leading spaces */
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch < 0x20 || ch == 0x7f || ch == ' ') {
            if (!space) {
                dst[o++] = ' ';
                space = 1;
            }
            continue;
        }
        dst[o++] = (char)ch;
        space = 0;
    }
    if (o + 1 >= cap && o > 0) {
        /* cut at a character boundary */
        size_t k = o;
        while (k > 0 && ((unsigned char)dst[k - 1] & 0xC0) == 0x80) {
            k--;
        }
        if (k > 0 && ((unsigned char)dst[k - 1] & 0xC0) == 0xC0) {
            size_t need = (((unsigned char)dst[k - 1] & 0xE0) == 0xC0)   ? 2
                          : (((unsigned char)dst[k - 1] & 0xF0) == 0xE0) ? 3
                                                                         : 4;
            if (o - (k - 1) < need) {
                o = k - 1;
            }
        }
    }
    while (o > 0 && dst[o - 1] == ' ') {
        o--;
    }
    if (cap > 0) {
        dst[o] = '\0';
    }
}

static int is_read_action(const char *action)
{
    return strncmp(action, "Get", 3) == 0 || strncmp(action, "List", 4) == 0;
}

/* The actions of STS, for messages from the pure parser (which has no client); calls made
 * through a client name their service from its configuration. */
static const char *service_of_action(const char *action)
{
    static const char *const sts[] = {
        "GetCallerIdentity",  "AssumeRole",       "AssumeRoleWithWebIdentity",
        "AssumeRoleWithSAML", "AssumeRoot",       "GetSessionToken",
        "GetFederationToken", "GetAccessKeyInfo", "DecodeAuthorizationMessage"};
    for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++) {
        if (strcmp(action, sts[i]) == 0) {
            return "STS";
        }
    }
    return "IAM";
}

/* Error codes that mean "try again": botocore's throttling list plus IAM's transient ones.
 * LimitExceeded is a quota, never retried. */
static int code_retryable(const char *code)
{
    static const char *const codes[] = {"Throttling",
                                        "ThrottlingException",
                                        "RequestLimitExceeded",
                                        "TooManyRequestsException",
                                        "PriorRequestNotComplete",
                                        "RequestTimeout",
                                        "ServiceFailure",
                                        "ServiceUnavailable",
                                        "InternalFailure",
                                        "ConcurrentModification"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(code, codes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int code_expired(const char *code)
{
    return strcmp(code, "ExpiredToken") == 0 || strcmp(code, "ExpiredTokenException") == 0;
}

static int code_errc(const char *code)
{
    static const char *const auth[] = {"InvalidClientTokenId",
                                       "SignatureDoesNotMatch",
                                       "IncompleteSignature",
                                       "MissingAuthenticationToken",
                                       "AccessDenied",
                                       "AccessDeniedException",
                                       "ExpiredToken",
                                       "ExpiredTokenException",
                                       "UnrecognizedClientException",
                                       "InvalidAccessKeyId",
                                       "RequestExpired"};
    if (strcmp(code, "NoSuchEntity") == 0) {
        return CG_ENOTFOUND;
    }
    for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
        if (strcmp(code, auth[i]) == 0) {
            return CG_EAUTH;
        }
    }
    return CG_ESTATUS;
}

/* "IAM CreateUser 'name'" or "IAM CreateUser" */
static void subject(char *buf, size_t cap, const char *svc, const char *action,
                    const char *resource)
{
    if (resource != NULL) {
        snprintf(buf, cap, "%s %s '%s'", svc, action, resource);
    } else {
        snprintf(buf, cap, "%s %s", svc, action);
    }
}

/* Sets err with a one-line message: formatted at full length first, then cut on a character
 * boundary (AWS messages are UTF-8 and may be long). */
__attribute__((format(printf, 4, 5))) static int set_err(struct cg_err *err, int code, long status,
                                                         const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    char buf[2 * CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    clean_line(err->msg, sizeof(err->msg), buf, len);
    err->code = code;
    err->http_status = status;
    return code;
}

/* ---- XML to JSON ---- */

static int is_element(const xmlNode *n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNode *child_element(const xmlNode *parent, const char *name)
{
    for (xmlNode *ch = parent->children; ch != NULL; ch = ch->next) {
        if (is_element(ch, name)) {
            return ch;
        }
    }
    return NULL;
}

/* The element's own text (text and CDATA children, concatenated). */
static int element_text(const xmlNode *n, struct cg_buf *b)
{
    for (const xmlNode *ch = n->children; ch != NULL; ch = ch->next) {
        if ((ch->type == XML_TEXT_NODE || ch->type == XML_CDATA_SECTION_NODE) &&
            ch->content != NULL) {
            int rc = cg_buf_append_str(b, (const char *)ch->content);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Policy documents in IAM answers are percent-encoded JSON. */
static int is_policy_key(const char *key)
{
    return strcmp(key, "Document") == 0 || strcmp(key, "PolicyDocument") == 0 ||
           strcmp(key, "AssumeRolePolicyDocument") == 0;
}

static int leaf_string(const xmlNode *n, int decode, json_t **out)
{
    struct cg_buf b;
    cg_buf_init(&b, MAX_RESPONSE);
    b.sensitive = 1; /* SecretAccessKey, SessionToken */
    int rc = element_text(n, &b);
    const char *text = b.data ? b.data : "";
    json_t *s = NULL;
    if (rc == 0 && decode && b.len > 0) {
        char *dec = malloc(b.len);
        if (dec == NULL) {
            rc = CG_ENOMEM;
        } else {
            size_t dlen = percent_decode(text, b.len, dec);
            /* A document that does not decode to UTF-8 was not percent-encoded by IAM (moto
             * sends it raw): keep it as it came. */
            if (utf8_valid((const unsigned char *)dec, dlen)) {
                s = json_stringn(dec, dlen);
                if (s == NULL) {
                    rc = CG_ENOMEM;
                }
            }
            free(dec);
        }
    }
    if (rc == 0 && s == NULL) {
        /* libxml2 hands out UTF-8 only, so NULL here is an allocation failure */
        s = json_stringn(text, b.len);
        if (s == NULL) {
            rc = CG_ENOMEM;
        }
    }
    cg_buf_cleanup(&b);
    *out = s;
    return rc;
}

/* The generic conversion (documented in aws_query.h):
 * - no child element: a string (its text, "" when empty; an empty list looks the same);
 * - only <member> children: an array of their conversions;
 * - other child elements: an object keyed by local name; a repeated name keeps the last one;
 *   text between child elements (indentation) is ignored. */
static int convert(const xmlNode *n, int depth, int decode, json_t **out)
{
    *out = NULL;
    if (depth > MAX_DEPTH) {
        return CG_EINVAL;
    }
    size_t elements = 0, members = 0;
    for (const xmlNode *ch = n->children; ch != NULL; ch = ch->next) {
        if (ch->type == XML_ELEMENT_NODE) {
            elements++;
            members += strcmp((const char *)ch->name, "member") == 0;
        }
    }
    if (elements == 0) {
        return leaf_string(n, decode, out);
    }
    json_t *v = members == elements ? json_array() : json_object();
    if (v == NULL) {
        return CG_ENOMEM;
    }
    for (const xmlNode *ch = n->children; ch != NULL; ch = ch->next) {
        if (ch->type != XML_ELEMENT_NODE) {
            continue;
        }
        const char *key = (const char *)ch->name;
        json_t *item = NULL;
        int rc = convert(ch, depth + 1, is_policy_key(key), &item);
        if (rc == 0) {
            rc = json_is_array(v) ? json_array_append_new(v, item)
                                  : json_object_set_new(v, key, item);
            rc = rc == 0 ? 0 : CG_ENOMEM;
        }
        if (rc < 0) {
            json_decref(v);
            return rc;
        }
    }
    *out = v;
    return 0;
}

/* AWS never sends a DTD. Refusing one before parsing means no entity (internal, external or
 * recursive) can be declared, so none is expanded or fetched whatever libxml2 would do. The
 * encoding is forced to UTF-8, so the keyword cannot hide in UTF-16 or UTF-7. */
static int has_dtd(const char *body, size_t len)
{
    return memmem(body, len, "<!DOCTYPE", 9) != NULL || memmem(body, len, "<!ENTITY", 8) != NULL;
}

static xmlDoc *read_xml(const char *body, size_t len)
{
    if (body == NULL || len == 0 || len > MAX_RESPONSE || has_dtd(body, len)) {
        return NULL;
    }
    /* No XML_PARSE_NOENT, DTDLOAD, DTDATTR or HUGE: the safe defaults. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    xmlDoc *doc = xmlReadMemory(body, (int)len, "noname.xml", "UTF-8", opts);
    if (doc != NULL && (doc->intSubset != NULL || doc->extSubset != NULL)) {
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

/* <ErrorResponse><Error> (IAM, STS) or <Response><Errors><Error> (EC2-style gateways). */
static const xmlNode *find_error(const xmlNode *root)
{
    if (is_element(root, "ErrorResponse")) {
        return child_element(root, "Error");
    }
    if (is_element(root, "Response")) {
        const xmlNode *errs = child_element(root, "Errors");
        return errs ? child_element(errs, "Error") : NULL;
    }
    return NULL;
}

static int error_fields(const xmlNode *e, struct aws_error *aerr)
{
    const xmlNode *code = child_element(e, "Code");
    const xmlNode *msg = child_element(e, "Message");
    struct cg_buf b;
    cg_buf_init(&b, 64 * 1024);
    int rc = code ? element_text(code, &b) : 0;
    if (rc == 0) {
        clean_line(aerr->code, sizeof(aerr->code), b.data ? b.data : "", b.len);
    }
    cg_buf_reset(&b);
    if (rc == 0 && msg != NULL) {
        rc = element_text(msg, &b);
        if (rc == 0) {
            clean_line(aerr->message, sizeof(aerr->message), b.data ? b.data : "", b.len);
        }
    }
    cg_buf_cleanup(&b);
    /* a cut (ETOOBIG) message is still a message */
    return rc == CG_ENOMEM ? rc : 0;
}

static int invalid(struct cg_err *err, long status, const char *subj)
{
    int code = status >= 200 && status < 300 ? CG_EINVAL : CG_ESTATUS;
    return set_err(err, code, status, "%s: invalid response (HTTP %ld)", subj, status);
}

/* The parser behind aws_query_parse_response, with the service and the resource for
 * messages. */
static int parse_response(const char *body, size_t len, long status, const char *action,
                          const char *svc, const char *resource, json_t **result,
                          struct aws_error *aerr, struct cg_err *err)
{
    struct aws_error scratch;
    if (aerr == NULL) {
        aerr = &scratch;
    }
    memset(aerr, 0, sizeof(*aerr));
    aerr->status = status;
    *result = NULL;
    char subj[320];
    subject(subj, sizeof(subj), svc, action, resource);
    if (body != NULL && len > MAX_RESPONSE) {
        return set_err(err, CG_ETOOBIG, status, "%s: response too large (HTTP %ld)", subj, status);
    }
    xmlDoc *doc = read_xml(body, len);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (root == NULL) {
        xmlFreeDoc(doc);
        return invalid(err, status, subj);
    }
    int rc = 0;
    const xmlNode *e = find_error(root);
    if (e != NULL) {
        rc = error_fields(e, aerr);
        if (rc == 0 && aerr->code[0] == '\0') {
            rc = invalid(err, status, subj);
        } else if (rc == 0) {
            rc = code_errc(aerr->code);
            if (aerr->message[0] != '\0') {
                set_err(err, rc, status, "%s: %s: %s", subj, aerr->code, aerr->message);
            } else {
                set_err(err, rc, status, "%s: %s", subj, aerr->code);
            }
        } else {
            set_err(err, rc, status, "%s: out of memory", subj);
        }
        xmlFreeDoc(doc);
        return rc;
    }
    char want[160];
    snprintf(want, sizeof(want), "%sResponse", action);
    if (status < 200 || status >= 300 || !is_element(root, want)) {
        xmlFreeDoc(doc);
        return invalid(err, status, subj);
    }
    snprintf(want, sizeof(want), "%sResult", action);
    const xmlNode *res = child_element(root, want);
    json_t *out = NULL;
    if (res != NULL) {
        rc = convert(res, 0, 0, &out);
    }
    if (rc == 0 && !json_is_object(out)) {
        /* no Result, or an empty one: the action has no output */
        json_decref(out);
        out = json_object();
        rc = out ? 0 : CG_ENOMEM;
    }
    xmlFreeDoc(doc);
    if (rc == CG_ENOMEM) {
        return set_err(err, rc, status, "%s: out of memory", subj);
    }
    if (rc < 0) {
        return invalid(err, status, subj); /* nested too deep */
    }
    *result = out;
    return 0;
}

int aws_query_parse_response(const char *body, size_t len, long status, const char *action,
                             json_t **result, struct aws_error *aerr, struct cg_err *err)
{
    if (result == NULL || action == NULL) {
        return cg_err_set(err, CG_EINVAL, "aws_query_parse_response: missing argument");
    }
    return parse_response(body, len, status, action, service_of_action(action), NULL, result, aerr,
                          err);
}

/* Only the error code, for the retry classifier. */
static void peek_error_code(const char *body, size_t len, struct aws_error *aerr)
{
    memset(aerr, 0, sizeof(*aerr));
    xmlDoc *doc = read_xml(body, len);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    const xmlNode *e = root ? find_error(root) : NULL;
    if (e != NULL) {
        error_fields(e, aerr);
    }
    xmlFreeDoc(doc);
}

/* ---- client ---- */

int aws_query_client_new(struct aws_query_client **out, struct cg_http *h,
                         struct aws_creds_provider *creds, const struct aws_query_config *cfg,
                         struct cg_err *err)
{
    if (out == NULL || h == NULL || creds == NULL || cfg == NULL || cfg->service == NULL ||
        cfg->version == NULL || cfg->endpoint == NULL || cfg->service[0] == '\0' ||
        cfg->endpoint[0] == '\0') {
        return cg_err_set(err, CG_EINVAL, "AWS client: service, version and endpoint are needed");
    }
    if (strchr(cfg->endpoint, '?') != NULL || strchr(cfg->endpoint, '#') != NULL) {
        return cg_err_set(err, CG_EINVAL, "AWS endpoint '%s' must not have a query string",
                          cfg->endpoint);
    }
    struct aws_query_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    c->http = h;
    c->creds = creds;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->consistency_ms = cfg->consistency_ms > 0 ? cfg->consistency_ms : DEFAULT_CONSISTENCY_MS;
    c->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : DEFAULT_POLL_MS;
    c->rng = cloud__rng_seed(c);
    c->service = strdup(cfg->service);
    c->service_upper = strdup(cfg->service);
    c->version = strdup(cfg->version);
    /* IAM is global and signs for us-east-1; a caller that knows better says so. */
    c->region = strdup(cfg->region && cfg->region[0] ? cfg->region : "us-east-1");
    size_t n = strlen(cfg->endpoint);
    while (n > 0 && cfg->endpoint[n - 1] == '/') {
        n--;
    }
    c->url = malloc(n + 2);
    if (c->service == NULL || c->service_upper == NULL || c->version == NULL || c->region == NULL ||
        c->url == NULL) {
        aws_query_client_free(c);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    memcpy(c->url, cfg->endpoint, n);
    memcpy(c->url + n, "/", 2);
    for (char *p = c->service_upper; *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    *out = c;
    return 0;
}

void aws_query_client_free(struct aws_query_client *c)
{
    if (c == NULL) {
        return;
    }
    free(c->service);
    free(c->service_upper);
    free(c->version);
    free(c->url);
    free(c->region);
    free(c);
}

void aws_query_get_stats(const struct aws_query_client *c, struct aws_query_stats *out)
{
    *out = c->stats;
}

static void qcall_free(struct qcall *q)
{
    if (q == NULL) {
        return;
    }
    if (q->have_creds) {
        aws_credentials_cleanup(&q->creds);
    }
    cg_wipe(&q->creds, sizeof(q->creds));
    free(q->action);
    free(q->resource);
    if (q->body != NULL) {
        cg_wipe(q->body, q->body_len);
        free(q->body);
    }
    free(q);
}

static void finish_ok(struct qcall *q, json_t *result)
{
    CG_LOG(CG_LOG_DEBUG, "aws", "%s %s%s%s%s: ok", q->c->service_upper, q->action,
           q->resource ? " '" : "", q->resource ? q->resource : "", q->resource ? "'" : "");
    q->cb(result, NULL, NULL, q->data);
    qcall_free(q);
}

static void finish_err(struct qcall *q, const struct aws_error *aerr, const struct cg_err *err)
{
    struct aws_error none = {.status = err->http_status};
    CG_LOG(CG_LOG_DEBUG, "aws", "%s %s%s%s%s: failed (%s)", q->c->service_upper, q->action,
           q->resource ? " '" : "", q->resource ? q->resource : "", q->resource ? "'" : "",
           aerr && aerr->code[0] ? aerr->code : cg_errc_str(err->code));
    q->cb(NULL, aerr ? aerr : &none, err, q->data);
    qcall_free(q);
}

/* For failures that did not come from AWS (transport, credentials): prefixes the subject. */
static void finish_wrapped(struct qcall *q, const struct cg_err *cause)
{
    struct cg_err e = {0};
    char subj[320];
    subject(subj, sizeof(subj), q->c->service_upper, q->action, q->resource);
    if (cause->msg[0] != '\0') {
        set_err(&e, cause->code ? cause->code : CG_EINVAL, cause->http_status, "%s: %s", subj,
                cause->msg);
    } else {
        set_err(&e, cause->code ? cause->code : CG_EINVAL, cause->http_status, "%s: %s", subj,
                cg_errc_str(cause->code));
    }
    finish_err(q, NULL, &e);
}

static int sign_hook(struct cg_http_req *req, void *data, struct cg_err *err)
{
    struct qcall *q = data;
    return aws_sigv4_sign_http(&aws_sigv4_aws, req, &q->creds, q->c->region, q->c->service,
                               (int64_t)time(NULL), err);
}

static int classify(struct cg_http_req *req, void *data)
{
    long status = cg_http_req_status(req);
    if (status >= 200 && status < 300) {
        return 0;
    }
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    struct aws_error aerr;
    peek_error_code(body, len, &aerr);
    if (code_retryable(aerr.code)) {
        struct qcall *q = data;
        CG_LOG(CG_LOG_DEBUG, "aws", "%s %s: %s, retrying", q->c->service_upper, q->action,
               aerr.code);
        return 1;
    }
    return 0;
}

static int fetch_creds(struct qcall *q, struct cg_err *err);
static int submit(struct qcall *q, struct cg_err *err);

/* Which AWS_RETRY_* condition an answer is, or 0. */
static unsigned consistency_condition(const struct aws_error *aerr)
{
    if (strcmp(aerr->code, "NoSuchEntity") == 0) {
        return AWS_RETRY_NOT_FOUND;
    }
    if (strcmp(aerr->code, "MalformedPolicyDocument") == 0 &&
        strcasestr(aerr->message, "invalid principal") != NULL) {
        return AWS_RETRY_INVALID_PRINCIPAL;
    }
    return 0;
}

static void on_wait_done(void *data, int canceled)
{
    struct qcall *q = data;
    struct cg_err e = {0};
    if (canceled) {
        cg_err_set(&e, CG_ECANCELED, "cancelled");
        finish_wrapped(q, &e);
        return;
    }
    q->deadline_ms = cg_now_ms() + (uint64_t)q->c->timeout_ms;
    if (submit(q, &e) < 0) {
        finish_wrapped(q, &e);
    }
}

/* Eventual consistency: schedules the same request again after a backoff when the answer is
 * a condition the caller asked to wait out and the budget allows; returns 1 then. When the
 * budget is spent, says so in err. */
static int consistency_retry(struct qcall *q, const struct aws_error *aerr, struct cg_err *err)
{
    struct aws_query_client *c = q->c;
    if ((q->flags & consistency_condition(aerr)) == 0) {
        return 0;
    }
    long spent_ms = 0;
    long wait = cloud__retry_next(&q->retry, &c->rng, c->poll_ms, MAX_WAIT_MS, c->consistency_ms,
                                  &spent_ms);
    if (wait < 0) {
        char spent[32];
        char suffix[128];
        cloud__fmt_duration(spent, sizeof(spent), spent_ms);
        snprintf(suffix, sizeof(suffix), " (still %s after %u retr%s over %s)", aerr->code,
                 q->retry.waits, q->retry.waits == 1 ? "y" : "ies", spent);
        cloud__err_append(err, suffix);
        return 0;
    }
    if (cg_http_after(c->http, wait, on_wait_done, q) < 0) {
        return 0;
    }
    CG_LOG(CG_LOG_DEBUG, "aws", "%s %s%s%s%s: %s, waiting %ld ms (retry %u)", c->service_upper,
           q->action, q->resource ? " '" : "", q->resource ? q->resource : "",
           q->resource ? "'" : "", aerr->code, wait, q->retry.waits);
    return 1;
}

static void on_response(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct qcall *q = data;
    if (err != NULL) {
        finish_wrapped(q, err);
        return;
    }
    long status = cg_http_req_status(req);
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    json_t *result = NULL;
    struct aws_error aerr;
    struct cg_err e = {0};
    int rc = parse_response(body, len, status, q->action, q->c->service_upper, q->resource, &result,
                            &aerr, &e);
    if (rc == 0) {
        finish_ok(q, result);
        json_decref(result);
        return;
    }
    if (code_expired(aerr.code) && !q->refetched) {
        /* The cached credentials expired earlier than they said (or were revoked): forget
         * them, fetch new ones and send once more. */
        CG_LOG(CG_LOG_DEBUG, "aws", "%s %s: %s, refreshing credentials", q->c->service_upper,
               q->action, aerr.code);
        q->refetched = 1;
        aws_creds_invalidate(q->c->creds);
        struct cg_err fe = {0};
        if (fetch_creds(q, &fe) < 0) {
            finish_wrapped(q, &fe);
        }
        return;
    }
    if (consistency_retry(q, &aerr, &e)) {
        return;
    }
    finish_err(q, &aerr, &e);
}

/* Builds and submits the HTTP request; on failure err is filled and nothing was sent. */
static int submit(struct qcall *q, struct cg_err *err)
{
    struct aws_query_client *c = q->c;
    uint64_t now = cg_now_ms();
    if (now >= q->deadline_ms) {
        return cg_err_set(err, CG_ETIMEDOUT, "timed out after %ld ms", c->timeout_ms);
    }
    struct cg_http_req *req = cg_http_req_new("POST", c->url);
    if (req == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc =
        cg_http_req_header(req, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
    if (rc == 0) {
        rc = cg_http_req_body_copy(req, q->body, q->body_len);
    }
    if (rc == 0) {
        char label[160];
        snprintf(label, sizeof(label), "%s %s", c->service_upper, q->action);
        rc = cg_http_req_set_label(req, label);
    }
    if (rc < 0) {
        cg_http_req_free(req);
        return cg_err_set(err, rc, "cannot build request: %s", cg_errc_str(rc));
    }
    cg_http_req_set_timeout(req, (long)(q->deadline_ms - now));
    cg_http_req_set_sign(req, sign_hook, q);
    cg_http_req_set_retry_classifier(req, classify, q);
    if (strcmp(q->action, "CreateAccessKey") == 0) {
        /* the answer alone carries the new key's secret: never make a second one because the
         * first answer was lost (cg_http_req_set_send_once). A consistency retry is safe: it
         * follows an answer, NoSuchEntity, that made no key. */
        cg_http_req_set_send_once(req);
    }
    rc = cg_http_submit(c->http, req, on_response, q, err);
    if (rc < 0) {
        cg_http_req_free(req);
    }
    return rc;
}

static void on_creds(const struct aws_credentials *creds, const struct cg_err *err, void *data)
{
    struct qcall *q = data;
    if (err != NULL || creds == NULL) {
        struct cg_err e = {.code = CG_EAUTH};
        if (err != NULL) {
            e = *err;
        } else {
            snprintf(e.msg, sizeof(e.msg), "no credentials");
        }
        finish_wrapped(q, &e);
        return;
    }
    if (q->have_creds) {
        aws_credentials_cleanup(&q->creds);
        q->have_creds = 0;
    }
    memset(&q->creds, 0, sizeof(q->creds));
    struct cg_err e = {0};
    if (aws_credentials_copy(&q->creds, creds) < 0) {
        cg_err_set(&e, CG_ENOMEM, "out of memory");
        finish_wrapped(q, &e);
        return;
    }
    q->have_creds = 1;
    if (submit(q, &e) < 0) {
        finish_wrapped(q, &e);
    }
}

static int fetch_creds(struct qcall *q, struct cg_err *err)
{
    return aws_creds_get(q->c->creds, on_creds, q, err);
}

/* The value that names the call's subject in messages; never a document or a secret.
 * *out stays NULL when no parameter names one. */
static int find_resource(const struct aws_param *params, size_t nparams, char **out)
{
    static const char *const names[] = {"UserName", "RoleName", "PolicyArn", "PolicyName"};
    *out = NULL;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        for (size_t i = 0; i < nparams; i++) {
            if (params[i].name != NULL && params[i].value != NULL &&
                strcmp(params[i].name, names[k]) == 0) {
                char buf[MAX_RESOURCE + 1];
                clean_line(buf, sizeof(buf), params[i].value, strlen(params[i].value));
                *out = strdup(buf);
                return *out != NULL ? 0 : CG_ENOMEM;
            }
        }
    }
    return 0;
}

static int valid_action(const char *action)
{
    if (action == NULL || action[0] == '\0' || strlen(action) > 100) {
        return 0;
    }
    for (const char *p = action; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            return 0;
        }
    }
    return 1;
}

int aws_query_call(struct aws_query_client *c, const char *action, const struct aws_param *params,
                   size_t nparams, aws_query_cb *cb, void *data, struct cg_err *err)
{
    return aws_query_call_flags(c, action, params, nparams, 0, cb, data, err);
}

int aws_query_call_flags(struct aws_query_client *c, const char *action,
                         const struct aws_param *params, size_t nparams, unsigned flags,
                         aws_query_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || (params == NULL && nparams > 0)) {
        return cg_err_set(err, CG_EINVAL, "aws_query_call: missing argument");
    }
    if (!valid_action(action)) {
        return cg_err_set(err, CG_EINVAL, "%s: invalid action name", c->service_upper);
    }
    struct qcall *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    q->c = c;
    q->cb = cb;
    q->data = data;
    q->deadline_ms = cg_now_ms() + (uint64_t)c->timeout_ms;
    q->flags = flags;
    q->action = strdup(action);
    int rc = find_resource(params, nparams, &q->resource);
    q->body = aws_query_encode_form(action, c->version, params, nparams);
    if (q->action == NULL || q->body == NULL || rc < 0) {
        qcall_free(q);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    q->body_len = strlen(q->body);
    if (is_read_action(action)) {
        c->stats.reads++;
    } else {
        c->stats.writes++;
    }
    CG_LOG(CG_LOG_DEBUG, "aws", "%s %s%s%s%s", c->service_upper, action, q->resource ? " '" : "",
           q->resource ? q->resource : "", q->resource ? "'" : "");
    rc = fetch_creds(q, err);
    if (rc < 0) {
        char subj[320];
        subject(subj, sizeof(subj), c->service_upper, action, q->resource);
        if (err != NULL && err->code == 0) {
            err->code = rc;
        }
        cg_err_wrap(err, "%s", subj);
        qcall_free(q);
        return rc;
    }
    return 0;
}

/* ---- pagination ---- */

struct pager {
    struct aws_query_client *c;
    char *action;
    struct aws_param *params; /* the caller's, copied, plus a Marker slot at the end */
    size_t nparams;           /* without the Marker slot */
    char *list_key;
    char *marker; /* for the next page; NULL on the first */
    json_t *items;
    json_t *seen; /* markers already followed, as object keys */
    unsigned pages;
    aws_query_cb *cb;
    void *data;
};

static void pager_free(struct pager *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; p->params != NULL && i < p->nparams; i++) {
        free((char *)p->params[i].name);
        cg_secret_free((char *)p->params[i].value);
    }
    free(p->params);
    free(p->action);
    free(p->list_key);
    free(p->marker);
    json_decref(p->items);
    json_decref(p->seen);
    free(p);
}

static void pager_fail(struct pager *p, const struct aws_error *aerr, const struct cg_err *err)
{
    struct aws_error none = {.status = err->http_status};
    p->cb(NULL, aerr ? aerr : &none, err, p->data);
    pager_free(p);
}

static int pager_next(struct pager *p, struct cg_err *err);

static void on_page(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                    void *data)
{
    struct pager *p = data;
    if (err != NULL) {
        pager_fail(p, aerr, err);
        return;
    }
    p->pages++;
    json_t *list = json_object_get(result, p->list_key);
    /* A non-array is an empty list (<Users/> converts to "") */
    if (json_is_array(list) && json_array_extend(p->items, list) < 0) {
        struct cg_err e = {.code = CG_ENOMEM};
        snprintf(e.msg, sizeof(e.msg), "out of memory");
        pager_fail(p, NULL, &e);
        return;
    }
    const char *trunc = json_string_value(json_object_get(result, "IsTruncated"));
    if (trunc == NULL || strcmp(trunc, "true") != 0) {
        json_t *out = json_copy(result);
        if (out == NULL || json_object_set(out, p->list_key, p->items) < 0) {
            json_decref(out);
            struct cg_err e = {.code = CG_ENOMEM};
            snprintf(e.msg, sizeof(e.msg), "out of memory");
            pager_fail(p, NULL, &e);
            return;
        }
        p->cb(out, NULL, NULL, p->data);
        json_decref(out);
        pager_free(p);
        return;
    }
    struct cg_err e = {0};
    const char *marker = json_string_value(json_object_get(result, "Marker"));
    char subj[320];
    subject(subj, sizeof(subj), p->c->service_upper, p->action, NULL);
    if (marker == NULL || marker[0] == '\0') {
        cg_err_set(&e, CG_EINVAL, "%s: truncated page %u has no Marker", subj, p->pages);
    } else if (json_object_get(p->seen, marker) != NULL) {
        cg_err_set(&e, CG_EINVAL, "%s: the service repeated a Marker (page %u)", subj, p->pages);
    } else if (p->pages >= MAX_PAGES) {
        cg_err_set(&e, CG_EINVAL, "%s: more than %d pages", subj, MAX_PAGES);
    } else {
        char *m = strdup(marker);
        if (m == NULL || json_object_set_new(p->seen, marker, json_true()) < 0) {
            free(m);
            cg_err_set(&e, CG_ENOMEM, "out of memory");
        } else {
            free(p->marker);
            p->marker = m;
            if (pager_next(p, &e) == 0) {
                return;
            }
        }
    }
    pager_fail(p, NULL, &e);
}

static int pager_next(struct pager *p, struct cg_err *err)
{
    size_t n = p->nparams;
    if (p->marker != NULL) {
        p->params[n].name = "Marker";
        p->params[n].value = p->marker;
        n++;
    }
    return aws_query_call(p->c, p->action, p->params, n, on_page, p, err);
}

int aws_query_call_all(struct aws_query_client *c, const char *action,
                       const struct aws_param *params, size_t nparams, const char *list_key,
                       aws_query_cb *cb, void *data, struct cg_err *err)
{
    if (c == NULL || cb == NULL || action == NULL || list_key == NULL ||
        (params == NULL && nparams > 0)) {
        return cg_err_set(err, CG_EINVAL, "aws_query_call_all: missing argument");
    }
    struct pager *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    p->c = c;
    p->cb = cb;
    p->data = data;
    p->action = strdup(action);
    p->list_key = strdup(list_key);
    p->items = json_array();
    p->seen = json_object();
    p->params = calloc(nparams + 1, sizeof(*p->params));
    int rc = p->action && p->list_key && p->items && p->seen && p->params ? 0 : CG_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nparams; i++) {
        /* A caller's Marker starts the walk further on. */
        if (params[i].name != NULL && strcmp(params[i].name, "Marker") == 0) {
            free(p->marker);
            p->marker = cg_strdup0(params[i].value);
            if (params[i].value != NULL && p->marker == NULL) {
                rc = CG_ENOMEM;
            }
            continue;
        }
        struct aws_param *d = &p->params[p->nparams++];
        d->name = cg_strdup0(params[i].name);
        d->value = cg_strdup0(params[i].value);
        if ((params[i].name && !d->name) || (params[i].value && !d->value)) {
            rc = CG_ENOMEM;
        }
    }
    if (rc < 0) {
        pager_free(p);
        return cg_err_set(err, rc, "out of memory");
    }
    rc = pager_next(p, err);
    if (rc < 0) {
        pager_free(p);
    }
    return rc;
}
