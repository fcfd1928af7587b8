/* cg_http: libcurl's multi interface driven by libuv (see cg_http.h for the contract).
 *
 * Shape: curl tells us which sockets to watch (on_socket -> one uv_poll_t per socket) and when
 * to call it back (on_curl_timer -> one uv_timer_t). libuv reports readiness (on_poll,
 * on_curl_timeout), we hand it to curl_multi_socket_action and then drain curl's completion
 * queue (drain). Completed attempts are either retried after a backoff timer or delivered to
 * the request's `done` callback, which is the only place user code sees the result.
 *
 * Rules this file keeps:
 * - curl callbacks (socket, timer, write, header, debug) never call back into libcurl, with the
 *   one documented exception of curl_multi_assign in the socket callback. Adding, removing and
 *   driving transfers happens only from libuv callbacks and the public API.
 * - User callbacks (sign hook, classifier, done, timers) may call cg_http_close; every path that
 *   runs one rechecks `closing` afterwards, and requests inside a hook are marked REQ_BUSY so
 *   that close leaves them to the code that called the hook.
 * - The engine is freed from the close callback of its last uv handle. */
#include "cg_http.h"

#include "../core/cg_buf.h"
#include "../core/cg_log.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <uv.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TOTAL_MS   30000L
#define DEFAULT_CONNECT_MS 10000L
#define DEFAULT_ATTEMPTS   4
#define MAX_ATTEMPTS       100
#define DEFAULT_MAX_BODY   ((size_t)8 * 1024 * 1024)
#define MAX_RESP_HEADERS   ((size_t)256 * 1024)
#define BACKOFF_BASE_MS    200L
#define BACKOFF_CAP_MS     20000L
#define USER_AGENT         "cloudgrant/" CG_VERSION

/* A one-shot timer: cg_http_after and retry backoff. */
struct http_timer {
    uv_timer_t handle;
    struct cg_http *h;
    cg_http_timer_cb *cb;
    void *data;
    struct http_timer *prev;
    struct http_timer *next;
};

/* One watched socket; curl hands it back to us through curl_multi_assign. */
struct http_sock {
    uv_poll_t poll;
    struct cg_http *h;
    curl_socket_t fd;
    struct http_sock *prev;
    struct http_sock *next;
};

struct cg_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;         /* curl's timeout; referenced only while transfers are running */
    struct cg_http_req *reqs; /* submitted and not yet delivered */
    struct http_timer *timers;
    struct http_sock *socks;
    unsigned inflight; /* easy handles in the multi */
    unsigned nhandles; /* open uv handles; the engine is freed when it drops to 0 */
    int closing;
    int sock_failures; /* a socket could not be watched; see reap_sock_failures */
    uint64_t rng;
    struct cg_http_stats stats;
    char *default_ca; /* trust anchors of requests that set none; NULL: the system store */
    size_t default_ca_len;
};

struct hdr {
    char *name;
    char *value; /* may be a credential: wiped on free */
};

struct resp {
    long status;
    struct cg_buf body;
    struct cg_buf hdrs; /* "name\0value\0" pairs of the last response block */
};

enum req_state {
    REQ_NEW,     /* built, not submitted */
    REQ_RUNNING, /* an attempt is in the multi handle */
    REQ_WAITING, /* between attempts (backoff timer) or being decided */
    REQ_BUSY,    /* inside a user hook; cg_http_close leaves it to the caller of the hook */
    REQ_DONE
};

struct cg_http_req {
    char *method;
    char *url;
    char *name; /* "METHOD url" without query or userinfo, for messages */
    char *label;
    struct hdr *hdrs;
    size_t nhdrs;
    size_t hdrs_cap;
    char *body;
    size_t body_len;
    int has_body;
    char *ca;
    size_t ca_len;
    char *cert;
    size_t cert_len;
    char *key; /* wiped on free */
    size_t key_len;
    int insecure;
    char *server_name;
    char *proxy;
    long total_ms;
    long attempt_ms; /* 0: same as total */
    long connect_ms;
    int max_attempts;
    int send_once; /* not idempotent: see cg_http_req_set_send_once */
    size_t max_body;
    void *user_data;
    cg_http_sign_cb *sign;
    void *sign_data;
    cg_http_retry_cb *classify;
    void *classify_data;
    cg_http_done_cb *done;
    void *done_data;

    /* engine state, from submit on */
    struct cg_http *h;
    enum req_state state;
    struct cg_http_req *prev;
    struct cg_http_req *next;
    CURL *easy;
    struct curl_slist *slist; /* request headers of the current attempt (wiped on free) */
    struct curl_slist *connect_to;
    char *conn_url; /* the URL given to curl when server_name rewrote its host */
    char *host_hdr; /* "Host: <original host>" in that case */
    struct http_timer *wait;
    uint64_t deadline; /* loop time (ms) when the whole request must be over */
    int attempts;
    int deadline_bound; /* the current attempt's timeout is the request deadline */
    uint64_t attempt_start;
    long attempt_limit; /* CURLOPT_TIMEOUT_MS of the current attempt */
    int toobig;
    int hdr_toobig;
    int nomem;
    int sock_err;     /* uv error from watching this attempt's socket */
    struct resp cur;  /* the attempt being received */
    struct resp last; /* the last complete response: what the accessors show */
    char errbuf[CURL_ERROR_SIZE];
};

static void drain(struct cg_http *h);
static void retry_fire(void *data, int canceled);

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t now_ms(struct cg_http *h)
{
    /* uv_now is cached per loop iteration; a long callback would make deadlines drift */
    uv_update_time(h->loop);
    return uv_now(h->loop);
}

static uint64_t rng_next(struct cg_http *h)
{
    /* xorshift64*: only spreads retries in time, nothing secret depends on it */
    uint64_t x = h->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    h->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void rng_seed(struct cg_http *h)
{
    uint64_t seed = 0;
    const char *env = getenv("CG_HTTP_JITTER_SEED"); /* tests: reproducible backoff */
    if (env != NULL && *env != '\0') {
        seed = strtoull(env, NULL, 10);
    } else if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1) {
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h;
    }
    h->rng = seed != 0 ? seed : 0x9E3779B97F4A7C15ULL; /* xorshift must not start at 0 */
}

static const char *fmt_ms(char *buf, size_t n, long ms)
{
    if (ms >= 1000 && ms % 1000 == 0) {
        snprintf(buf, n, "%ld s", ms / 1000);
    } else {
        snprintf(buf, n, "%ld ms", ms);
    }
    return buf;
}

/* Messages start lower-case ("Failed to..." -> "failed to..."), but only when the first word
 * is a plain capitalised word: "SSL certificate problem" and "OpenSSL/3.0" stay as they are. */
static void lower_first(char *s)
{
    if (!isupper((unsigned char)s[0])) {
        return;
    }
    size_t i = 1;
    while (islower((unsigned char)s[i])) {
        i++;
    }
    if (i > 1 && (s[i] == '\0' || s[i] == ' ' || s[i] == ',' || s[i] == ':')) {
        s[0] = (char)tolower((unsigned char)s[0]);
    }
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
}

/* "GET https://host:port/path": the query string and any user:password@ are left out so that
 * a presigned URL or credentials in the URL never reach an error message or a trace. */
static char *make_name(const char *method, const char *url)
{
    const char *sep = strstr(url, "://");
    const char *auth = sep != NULL ? sep + 3 : url;
    size_t authlen = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', authlen);
    const char *host = at != NULL ? at + 1 : auth;
    size_t rest = strcspn(host, "?#");
    struct cg_buf b;
    cg_buf_init(&b, 0);
    if (cg_buf_printf(&b, "%s %.*s%.*s", method, (int)(auth - url), url, (int)rest, host) < 0) {
        cg_buf_cleanup(&b);
        return NULL;
    }
    return cg_buf_steal(&b, NULL);
}

static int header_name_ok(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == ':') {
            return 0;
        }
    }
    return 1;
}

/* CR or LF in a value would let it start a header (or a request) of its own. */
static int header_value_ok(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

static int method_ok(const char *s)
{
    return header_name_ok(s); /* a token, like header names */
}

static int url_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static void slist_free_wiped(struct curl_slist *l)
{
    for (struct curl_slist *s = l; s != NULL; s = s->next) {
        cg_wipe(s->data, strlen(s->data));
    }
    curl_slist_free_all(l);
}

static void resp_init(struct resp *r, size_t max_body)
{
    r->status = 0;
    cg_buf_init(&r->body, max_body);
    r->body.sensitive = 1; /* token and credential endpoints answer through here */
    cg_buf_init(&r->hdrs, MAX_RESP_HEADERS);
    r->hdrs.sensitive = 1; /* Set-Cookie and friends */
}

static void resp_cleanup(struct resp *r)
{
    cg_buf_cleanup(&r->body);
    cg_buf_cleanup(&r->hdrs);
    r->status = 0;
}

/* ---- request building ------------------------------------------------------------------- */

struct cg_http_req *cg_http_req_new(const char *method, const char *url)
{
    if (method == NULL || url == NULL) {
        return NULL;
    }
    struct cg_http_req *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    req->method = strdup(method);
    req->url = strdup(url);
    req->name = make_name(method, url);
    req->total_ms = DEFAULT_TOTAL_MS;
    req->connect_ms = DEFAULT_CONNECT_MS;
    req->max_attempts = DEFAULT_ATTEMPTS;
    req->max_body = DEFAULT_MAX_BODY;
    resp_init(&req->cur, req->max_body);
    resp_init(&req->last, req->max_body);
    if (req->method == NULL || req->url == NULL || req->name == NULL) {
        cg_http_req_free(req);
        return NULL;
    }
    return req;
}

static void clear_target(struct cg_http_req *req)
{
    curl_slist_free_all(req->connect_to);
    req->connect_to = NULL;
    free(req->conn_url);
    req->conn_url = NULL;
    free(req->host_hdr);
    req->host_hdr = NULL;
}

static void clear_tls(struct cg_http_req *req)
{
    free(req->ca);
    free(req->cert);
    if (req->key != NULL) {
        cg_wipe(req->key, req->key_len);
        free(req->key);
    }
    free(req->server_name);
    req->ca = req->cert = req->key = req->server_name = NULL;
    req->ca_len = req->cert_len = req->key_len = 0;
    req->insecure = 0;
}

void cg_http_req_free(struct cg_http_req *req)
{
    if (req == NULL) {
        return;
    }
    if (req->easy != NULL) {
        curl_easy_cleanup(req->easy);
    }
    free(req->method);
    free(req->url);
    free(req->name);
    free(req->label);
    for (size_t i = 0; i < req->nhdrs; i++) {
        free(req->hdrs[i].name);
        cg_secret_free(req->hdrs[i].value);
    }
    free(req->hdrs);
    if (req->body != NULL) {
        cg_wipe(req->body, req->body_len);
        free(req->body);
    }
    clear_tls(req);
    free(req->proxy);
    slist_free_wiped(req->slist);
    clear_target(req);
    resp_cleanup(&req->cur);
    resp_cleanup(&req->last);
    free(req);
}

int cg_http_req_header(struct cg_http_req *req, const char *name, const char *value)
{
    if (req == NULL || !header_name_ok(name) || !header_value_ok(value)) {
        return CG_EINVAL;
    }
    if (req->nhdrs == req->hdrs_cap) {
        size_t ncap = req->hdrs_cap ? req->hdrs_cap * 2 : 8;
        struct hdr *n = realloc(req->hdrs, ncap * sizeof(*n));
        if (n == NULL) {
            return CG_ENOMEM;
        }
        req->hdrs = n;
        req->hdrs_cap = ncap;
    }
    char *n = strdup(name);
    char *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        cg_secret_free(v);
        return CG_ENOMEM;
    }
    req->hdrs[req->nhdrs].name = n;
    req->hdrs[req->nhdrs].value = v;
    req->nhdrs++;
    return 0;
}

int cg_http_req_set_header(struct cg_http_req *req, const char *name, const char *value)
{
    if (req == NULL || !header_name_ok(name) || !header_value_ok(value)) {
        return CG_EINVAL;
    }
    size_t first = req->nhdrs;
    for (size_t i = 0; i < req->nhdrs; i++) {
        if (strcasecmp(req->hdrs[i].name, name) == 0) {
            first = i;
            break;
        }
    }
    if (first == req->nhdrs) {
        return cg_http_req_header(req, name, value);
    }
    char *v = strdup(value);
    if (v == NULL) {
        return CG_ENOMEM;
    }
    cg_secret_free(req->hdrs[first].value);
    req->hdrs[first].value = v;
    /* one header of that name remains: a re-signed request must not carry the old signature */
    size_t w = first + 1;
    for (size_t i = first + 1; i < req->nhdrs; i++) {
        if (strcasecmp(req->hdrs[i].name, name) == 0) {
            free(req->hdrs[i].name);
            cg_secret_free(req->hdrs[i].value);
        } else {
            req->hdrs[w++] = req->hdrs[i];
        }
    }
    req->nhdrs = w;
    return 0;
}

int cg_http_req_body_take(struct cg_http_req *req, char *body, size_t len)
{
    if (req == NULL) {
        /* _take: the body is ours whatever happens, so it is not leaked on misuse */
        if (body != NULL) {
            cg_wipe(body, len);
            free(body);
        }
        return CG_EINVAL;
    }
    if (req->body != NULL) {
        cg_wipe(req->body, req->body_len);
        free(req->body);
    }
    req->body = body;
    req->body_len = body != NULL ? len : 0;
    req->has_body = 1;
    return 0;
}

int cg_http_req_body_copy(struct cg_http_req *req, const void *body, size_t len)
{
    if (req == NULL || (body == NULL && len > 0)) {
        return CG_EINVAL;
    }
    char *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL) {
            return CG_ENOMEM;
        }
        memcpy(copy, body, len);
    }
    return cg_http_req_body_take(req, copy, len);
}

static int blob_dup(const char *p, size_t len, char **out)
{
    *out = NULL;
    if (p == NULL) {
        return 0;
    }
    char *c = malloc(len + 1);
    if (c == NULL) {
        return CG_ENOMEM;
    }
    memcpy(c, p, len);
    c[len] = '\0';
    *out = c;
    return 0;
}

int cg_http_req_set_tls(struct cg_http_req *req, const struct cg_tls *tls)
{
    if (req == NULL) {
        return CG_EINVAL;
    }
    if (tls == NULL) {
        clear_tls(req);
        return 0;
    }
    char *ca = NULL;
    char *cert = NULL;
    char *key = NULL;
    char *sn = NULL;
    int rc = blob_dup(tls->ca_pem, tls->ca_len, &ca);
    if (rc == 0) {
        rc = blob_dup(tls->cert_pem, tls->cert_len, &cert);
    }
    if (rc == 0) {
        rc = blob_dup(tls->key_pem, tls->key_len, &key);
    }
    if (rc == 0 && tls->server_name != NULL && tls->server_name[0] != '\0') {
        sn = strdup(tls->server_name);
        rc = sn == NULL ? CG_ENOMEM : 0;
    }
    if (rc < 0) {
        free(ca);
        free(cert);
        if (key != NULL) {
            cg_wipe(key, tls->key_len);
            free(key);
        }
        free(sn);
        return rc;
    }
    clear_tls(req);
    req->ca = ca;
    req->ca_len = ca != NULL ? tls->ca_len : 0;
    req->cert = cert;
    req->cert_len = cert != NULL ? tls->cert_len : 0;
    req->key = key;
    req->key_len = key != NULL ? tls->key_len : 0;
    req->server_name = sn;
    req->insecure = tls->insecure_skip_verify != 0;
    return 0;
}

void cg_http_req_set_timeout(struct cg_http_req *req, long total_ms)
{
    req->total_ms = total_ms > 0 ? total_ms : DEFAULT_TOTAL_MS;
}

void cg_http_req_set_attempt_timeout(struct cg_http_req *req, long ms)
{
    req->attempt_ms = ms > 0 ? ms : 0;
}

void cg_http_req_set_connect_timeout(struct cg_http_req *req, long ms)
{
    req->connect_ms = ms > 0 ? ms : DEFAULT_CONNECT_MS;
}

void cg_http_req_set_max_attempts(struct cg_http_req *req, int n)
{
    req->max_attempts = n < 1 ? 1 : n > MAX_ATTEMPTS ? MAX_ATTEMPTS : n;
}

void cg_http_req_set_send_once(struct cg_http_req *req)
{
    req->send_once = 1;
}

void cg_http_req_set_max_body(struct cg_http_req *req, size_t bytes)
{
    req->max_body = bytes > 0 ? bytes : DEFAULT_MAX_BODY;
}

int cg_http_req_set_proxy(struct cg_http_req *req, const char *proxy_url)
{
    char *p = NULL;
    if (proxy_url != NULL && (p = strdup(proxy_url)) == NULL) {
        return CG_ENOMEM;
    }
    free(req->proxy);
    req->proxy = p;
    return 0;
}

void cg_http_req_set_user_data(struct cg_http_req *req, void *data)
{
    req->user_data = data;
}

void *cg_http_req_user_data(const struct cg_http_req *req)
{
    return req->user_data;
}

int cg_http_req_set_label(struct cg_http_req *req, const char *label)
{
    char *l = NULL;
    if (label != NULL && (l = strdup(label)) == NULL) {
        return CG_ENOMEM;
    }
    free(req->label);
    req->label = l;
    return 0;
}

void cg_http_req_set_sign(struct cg_http_req *req, cg_http_sign_cb *cb, void *data)
{
    req->sign = cb;
    req->sign_data = data;
}

void cg_http_req_set_retry_classifier(struct cg_http_req *req, cg_http_retry_cb *cb, void *data)
{
    req->classify = cb;
    req->classify_data = data;
}

/* ---- response accessors ----------------------------------------------------------------- */

long cg_http_req_status(const struct cg_http_req *req)
{
    return req->last.status;
}

const char *cg_http_req_body(const struct cg_http_req *req, size_t *len)
{
    if (len != NULL) {
        *len = req->last.body.len;
    }
    return req->last.body.data != NULL ? req->last.body.data : "";
}

const char *cg_http_req_resp_header(const struct cg_http_req *req, const char *name)
{
    const struct cg_buf *b = &req->last.hdrs;
    if (name == NULL || b->data == NULL) {
        return NULL;
    }
    const char *p = b->data;
    const char *end = b->data + b->len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (v >= end) {
            break;
        }
        if (strcasecmp(p, name) == 0) {
            return v;
        }
        p = v + strlen(v) + 1;
    }
    return NULL;
}

int cg_http_req_attempts(const struct cg_http_req *req)
{
    return req->attempts;
}

const char *cg_http_req_method(const struct cg_http_req *req)
{
    return req->method;
}

const char *cg_http_req_url(const struct cg_http_req *req)
{
    return req->url;
}

const char *cg_http_req_request_body(const struct cg_http_req *req, size_t *len)
{
    if (len != NULL) {
        *len = req->has_body ? req->body_len : 0;
    }
    return req->has_body ? req->body : NULL;
}

const char *cg_http_req_request_header(const struct cg_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nhdrs; i++) {
        if (strcasecmp(req->hdrs[i].name, name) == 0) {
            return req->hdrs[i].value;
        }
    }
    return NULL;
}

char *cg_http_req_take_body(struct cg_http_req *req, size_t *len)
{
    return cg_buf_steal(&req->last.body, len);
}

/* ---- curl callbacks: record, never drive curl ------------------------------------------- */

static size_t on_write(char *p, size_t size, size_t n, void *userdata)
{
    struct cg_http_req *req = userdata;
    size_t len = size * n;
    int rc = cg_buf_append(&req->cur.body, p, len);
    if (rc == CG_ETOOBIG) {
        req->toobig = 1;
        return 0; /* a short count makes curl stop with CURLE_WRITE_ERROR */
    }
    if (rc < 0) {
        req->nomem = 1;
        return 0;
    }
    return len;
}

static int hdr_store(struct cg_http_req *req, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    struct cg_buf *b = &req->cur.hdrs;
    int rc = 0;
    if (name != NULL) {
        rc = cg_buf_append(b, name, nlen);
        if (rc == 0) {
            rc = cg_buf_append(b, "", 1);
        }
    } else {
        /* obs-fold continuation: glue onto the previous value, the last string stored */
        b->len--;
        rc = cg_buf_append(b, " ", 1);
    }
    if (rc == 0) {
        rc = cg_buf_append(b, value, vlen);
    }
    if (rc == 0) {
        rc = cg_buf_append(b, "", 1);
    }
    return rc;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    struct cg_http_req *req = userdata;
    size_t len = size * n;
    size_t l = len;
    while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n')) {
        l--;
    }
    if (l >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response block (after 100 Continue, a proxy CONNECT...): only the final one
         * is the response */
        cg_buf_reset(&req->cur.hdrs);
        return len;
    }
    if (l == 0) {
        return len;
    }
    int rc = 0;
    if (p[0] == ' ' || p[0] == '\t') {
        size_t i = 0;
        while (i < l && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        if (req->cur.hdrs.len == 0) {
            return len;
        }
        rc = hdr_store(req, NULL, 0, p + i, l - i);
    } else {
        const char *colon = memchr(p, ':', l);
        if (colon == NULL) {
            return len;
        }
        size_t nlen = (size_t)(colon - p);
        while (nlen > 0 && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t')) {
            nlen--;
        }
        const char *v = colon + 1;
        const char *vend = p + l;
        while (v < vend && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) {
            vend--;
        }
        rc = hdr_store(req, p, nlen, v, (size_t)(vend - v));
    }
    if (rc == CG_ETOOBIG) {
        req->hdr_toobig = 1;
        return 0;
    }
    if (rc < 0) {
        req->nomem = 1;
        return 0;
    }
    return len;
}

/* Finds a credential-bearing header name in a line, at its start or after "[" or a space (curl
 * prints HTTP/2 request headers inside informational text); returns its length or 0. */
static size_t secret_name_at(const char *line, size_t len, size_t *start)
{
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && line[i - 1] != '[' && line[i - 1] != ' ') {
            continue;
        }
        const char *colon = memchr(line + i, ':', len - i);
        if (colon == NULL) {
            return 0;
        }
        size_t nlen = (size_t)(colon - (line + i));
        if (nlen > 0 && cg_log_header_is_secret(line + i, len - i)) {
            *start = i;
            return nlen;
        }
    }
    return 0;
}

static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userp)
{
    struct cg_http_req *req = userp;
    const char *dir;
    switch (type) {
    case CURLINFO_TEXT:
        dir = "*";
        break;
    case CURLINFO_HEADER_IN:
        dir = "<";
        break;
    case CURLINFO_HEADER_OUT:
        dir = ">";
        break;
    default:
        return 0; /* bodies and TLS records never reach the log */
    }
    const char *tag = req->label != NULL ? req->label : req->name;
    const char *p = data;
    const char *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)((nl != NULL ? nl : end) - p);
        if (l > 0 && p[l - 1] == '\r') {
            l--;
        }
        size_t start = 0;
        size_t nlen = l > 0 ? secret_name_at(p, l, &start) : 0;
        if (nlen > 0) {
            CG_LOG(CG_LOG_TRACE, "http", "req=%s %s %.*s: <redacted>", tag, dir,
                   (int)(start + nlen), p);
        } else if (l > 0) {
            CG_LOG(CG_LOG_TRACE, "http", "req=%s %s %.*s", tag, dir, (int)l, p);
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return 0;
}

/* ---- uv handles owned by the engine ----------------------------------------------------- */

static void engine_free(struct cg_http *h)
{
    free(h->default_ca);
    free(h);
}

static void handle_closed(struct cg_http *h)
{
    h->nhandles--;
    if (h->closing && h->nhandles == 0) {
        engine_free(h);
    }
}

static void curl_timer_closed(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void sock_closed(uv_handle_t *handle)
{
    struct http_sock *s = handle->data;
    struct cg_http *h = s->h;
    free(s);
    handle_closed(h);
}

static void sock_close(struct http_sock *s)
{
    struct cg_http *h = s->h;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        h->socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    /* stop first: curl closes the descriptor as soon as we return, and a watcher must not
     * outlive its descriptor */
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void timer_closed(uv_handle_t *handle)
{
    struct http_timer *t = handle->data;
    struct cg_http *h = t->h;
    free(t);
    handle_closed(h);
}

static void timer_unlink(struct http_timer *t)
{
    struct cg_http *h = t->h;
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        h->timers = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    t->prev = t->next = NULL;
}

static void on_timer_fire(uv_timer_t *handle)
{
    struct http_timer *t = handle->data;
    timer_unlink(t);
    uv_close((uv_handle_t *)handle, timer_closed); /* t stays valid until the close callback */
    t->cb(t->data, 0);
}

static struct http_timer *timer_new(struct cg_http *h, long ms, cg_http_timer_cb *cb, void *data)
{
    struct http_timer *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    if (uv_timer_init(h->loop, &t->handle) != 0) {
        free(t);
        return NULL;
    }
    t->handle.data = t;
    t->h = h;
    t->cb = cb;
    t->data = data;
    h->nhandles++;
    t->next = h->timers;
    if (h->timers != NULL) {
        h->timers->prev = t;
    }
    h->timers = t;
    uv_timer_start(&t->handle, on_timer_fire, ms > 0 ? (uint64_t)ms : 0, 0);
    return t;
}

/* Cancels without running the callback (the caller handles what the timer was for). */
static void timer_cancel(struct http_timer *t)
{
    timer_unlink(t);
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}

/* ---- curl <-> libuv --------------------------------------------------------------------- */

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct http_sock *s = poll->data;
    struct cg_http *h = s->h;
    int flags = 0;
    int running = 0;
    if (h->multi == NULL) {
        return;
    }
    if (status < 0) {
        flags = CURL_CSELECT_ERR; /* let curl fail the transfer rather than the poll spin */
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    drain(h);
}

static void on_curl_timeout(uv_timer_t *timer)
{
    struct cg_http *h = timer->data;
    int running = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
}

static void mark_sock_failure(struct cg_http *h, CURL *easy, int uverr)
{
    /* Returning -1 would mark the whole multi handle dead for good, so the failure is pinned
     * on the transfer and acted upon once curl has returned (reap_sock_failures). */
    for (struct cg_http_req *r = h->reqs; r != NULL; r = r->next) {
        if (r->easy == easy) {
            r->sock_err = uverr;
            h->sock_failures = 1;
            return;
        }
    }
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct cg_http *h = userp;
    struct http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            mark_sock_failure(h, easy, UV_ENOMEM);
            return 0;
        }
        int rc = uv_poll_init_socket(h->loop, &s->poll, fd);
        if (rc != 0) {
            free(s);
            mark_sock_failure(h, easy, rc);
            return 0;
        }
        s->poll.data = s;
        s->h = h;
        s->fd = fd;
        s->next = h->socks;
        if (h->socks != NULL) {
            h->socks->prev = s;
        }
        h->socks = s;
        h->nhandles++;
        /* documented as safe from inside the socket callback: it only stores the pointer */
        curl_multi_assign(h->multi, fd, s);
    }
    int events = 0;
    events |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    events |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc != 0) {
        mark_sock_failure(h, easy, rc);
    }
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct cg_http *h = userp;
    /* only (re)arm: curl must not be re-entered from its own callback */
    if (timeout_ms < 0) {
        uv_timer_stop(&h->timer);
    } else {
        uv_timer_start(&h->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- request lifecycle ------------------------------------------------------------------ */

static void req_link(struct cg_http *h, struct cg_http_req *req)
{
    req->prev = NULL;
    req->next = h->reqs;
    if (h->reqs != NULL) {
        h->reqs->prev = req;
    }
    h->reqs = req;
}

static void req_unlink(struct cg_http *h, struct cg_http_req *req)
{
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else if (h->reqs == req) {
        h->reqs = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
    req->prev = req->next = NULL;
}

static void deliver(struct cg_http_req *req, const struct cg_err *err)
{
    struct cg_http *h = req->h;
    req_unlink(h, req);
    req->state = REQ_DONE;
    if (err != NULL) {
        CG_LOG(CG_LOG_DEBUG, "http", "%s", err->msg);
    } else {
        CG_LOG(CG_LOG_DEBUG, "http", "%s: status %ld after %d attempt(s)", req->name,
               req->last.status, req->attempts);
    }
    req->done(req, err, req->done_data);
    req->h = NULL;
    cg_http_req_free(req);
}

static void deliver_err(struct cg_http_req *req, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void deliver_err(struct cg_http_req *req, int code, long status, const char *fmt, ...)
{
    struct cg_err err = {0};
    char what[CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cg_err_set(&err, code, "%s: %s", req->name, what);
    err.http_status = status;
    deliver(req, &err);
}

/* Detaches the current attempt's easy handle from curl. */
static void easy_detach(struct cg_http_req *req)
{
    struct cg_http *h = req->h;
    if (req->easy == NULL) {
        return;
    }
    curl_multi_remove_handle(h->multi, req->easy);
    curl_easy_cleanup(req->easy);
    req->easy = NULL;
    slist_free_wiped(req->slist);
    req->slist = NULL;
    h->inflight--;
    if (h->inflight == 0) {
        uv_unref((uv_handle_t *)&h->timer); /* an idle engine must not keep the loop running */
    }
    req->state = REQ_WAITING;
}

static int build_headers(struct cg_http_req *req, struct curl_slist **out)
{
    struct curl_slist *list = NULL;
    struct curl_slist *n;
    struct cg_buf line;
    int has_expect = 0;
    int has_host = 0;
    int rc = 0;
    cg_buf_init(&line, 0);
    line.sensitive = 1;
    for (size_t i = 0; i < req->nhdrs; i++) {
        const struct hdr *hd = &req->hdrs[i];
        has_expect |= strcasecmp(hd->name, "Expect") == 0;
        has_host |= strcasecmp(hd->name, "Host") == 0;
        cg_buf_reset(&line);
        /* "Name;" is curl's way to send a header with an empty value ("Name:" deletes it) */
        rc = hd->value[0] != '\0' ? cg_buf_printf(&line, "%s: %s", hd->name, hd->value)
                                  : cg_buf_printf(&line, "%s;", hd->name);
        if (rc < 0) {
            goto out;
        }
        if ((n = curl_slist_append(list, line.data)) == NULL) {
            rc = CG_ENOMEM;
            goto out;
        }
        list = n;
    }
    if (req->has_body && !has_expect) {
        /* no 100-continue round trip: our bodies are small and the servers answer directly */
        if ((n = curl_slist_append(list, "Expect:")) == NULL) {
            rc = CG_ENOMEM;
            goto out;
        }
        list = n;
    }
    if (req->host_hdr != NULL && !has_host) {
        if ((n = curl_slist_append(list, req->host_hdr)) == NULL) {
            rc = CG_ENOMEM;
            goto out;
        }
        list = n;
    }
    *out = list;
    list = NULL;
out:
    cg_buf_cleanup(&line);
    slist_free_wiped(list);
    return rc;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (cc == CURLE_OK) {                                                                      \
            cc = curl_easy_setopt(e, opt, val);                                                    \
        }                                                                                          \
    } while (0)

static int easy_setup(struct cg_http_req *req, long attempt_ms, struct cg_err *err)
{
    CURL *e = curl_easy_init();
    CURLcode cc = CURLE_OK;
    int rc = 0;
    if (e == NULL) {
        return cg_err_set(err, CG_ENOMEM, "%s: out of memory", req->name);
    }
    rc = build_headers(req, &req->slist);
    if (rc < 0) {
        curl_easy_cleanup(e);
        return cg_err_set(err, rc, "%s: out of memory", req->name);
    }
    SETOPT(CURLOPT_URL, req->conn_url != NULL ? req->conn_url : req->url);
    SETOPT(CURLOPT_PRIVATE, (void *)req);
    SETOPT(CURLOPT_ERRORBUFFER, req->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is the caller's business, never silent */
    SETOPT(CURLOPT_USERAGENT, USER_AGENT);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, (void *)req);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)req);
    SETOPT(CURLOPT_TIMEOUT_MS, attempt_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, req->connect_ms < attempt_ms ? req->connect_ms : attempt_ms);
    SETOPT(CURLOPT_HTTPHEADER, req->slist);

    if (strcmp(req->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") == 0 && !req->has_body) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        int sends_body = req->has_body || strcmp(req->method, "POST") == 0 ||
                         strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
        if (sends_body) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            SETOPT(CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        }
        if (strcmp(req->method, "POST") != 0) {
            SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
        }
    }

    /* PEM blobs in memory, not copied by curl (CURL_BLOB_NOCOPY): the request outlives the
     * easy handle, and the key then lives only in memory that we wipe. */
    const char *ca = req->ca;
    size_t ca_len = req->ca_len;
    if (ca == NULL && req->h != NULL && req->h->default_ca != NULL) {
        ca = req->h->default_ca;
        ca_len = req->h->default_ca_len;
    }
    if (ca != NULL) {
        struct curl_blob b = {(void *)ca, ca_len, CURL_BLOB_NOCOPY};
        SETOPT(CURLOPT_CAINFO_BLOB, &b);
        /* the configured CA is the only trust anchor: drop curl's built-in bundle and path */
        SETOPT(CURLOPT_CAINFO, (char *)NULL);
        SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    if (req->cert != NULL) {
        struct curl_blob b = {req->cert, req->cert_len, CURL_BLOB_NOCOPY};
        SETOPT(CURLOPT_SSLCERT_BLOB, &b);
        SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (req->key != NULL) {
        struct curl_blob b = {req->key, req->key_len, CURL_BLOB_NOCOPY};
        SETOPT(CURLOPT_SSLKEY_BLOB, &b);
        SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (req->insecure) {
        SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (req->connect_to != NULL) {
        SETOPT(CURLOPT_CONNECT_TO, req->connect_to);
    }
    if (req->proxy != NULL) {
        SETOPT(CURLOPT_PROXY, req->proxy);
    } /* else curl reads http_proxy, https_proxy and no_proxy itself */
    if (cg_log_level >= CG_LOG_TRACE) {
        SETOPT(CURLOPT_DEBUGFUNCTION, on_debug);
        SETOPT(CURLOPT_DEBUGDATA, (void *)req);
        SETOPT(CURLOPT_VERBOSE, 1L);
    }
    if (cc != CURLE_OK) {
        curl_easy_cleanup(e);
        slist_free_wiped(req->slist);
        req->slist = NULL;
        return cg_err_set(err, cc == CURLE_OUT_OF_MEMORY ? CG_ENOMEM : CG_EINVAL,
                          "%s: cannot set up the transfer: %s", req->name, curl_easy_strerror(cc));
    }
    req->easy = e;
    return 0;
}

#undef SETOPT

static int is_mutating(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

/* Runs the sign hook and puts the next attempt into the multi handle. */
static int start_attempt(struct cg_http_req *req, struct cg_err *err)
{
    struct cg_http *h = req->h;
    char dur[32];
    req->attempts++;
    if (req->sign != NULL) {
        enum req_state prev = req->state;
        req->state = REQ_BUSY;
        int rc = req->sign(req, req->sign_data, err);
        req->state = prev;
        if (h->closing) {
            return cg_err_set(err, CG_ECANCELED, "%s: cancelled", req->name);
        }
        if (rc < 0) {
            if (err->msg[0] == '\0') {
                cg_err_set(err, rc, "signing failed");
            }
            err->code = rc;
            return cg_err_wrap(err, "%s", req->name);
        }
    }
    uint64_t now = now_ms(h);
    if (now >= req->deadline) {
        return cg_err_set(err, CG_ETIMEDOUT, "%s: timed out after %s", req->name,
                          fmt_ms(dur, sizeof(dur), req->total_ms));
    }
    long remaining = (long)(req->deadline - now);
    long attempt = req->attempt_ms > 0 ? req->attempt_ms : req->total_ms;
    req->deadline_bound = attempt >= remaining;
    if (req->deadline_bound) {
        attempt = remaining;
    }
    req->attempt_start = now;
    req->attempt_limit = attempt;
    resp_cleanup(&req->cur);
    resp_init(&req->cur, req->max_body);
    req->toobig = req->hdr_toobig = req->nomem = req->sock_err = 0;
    req->errbuf[0] = '\0';

    int rc = easy_setup(req, attempt, err);
    if (rc < 0) {
        return rc;
    }
    CURLMcode mc = curl_multi_add_handle(h->multi, req->easy);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(req->easy);
        req->easy = NULL;
        slist_free_wiped(req->slist);
        req->slist = NULL;
        return cg_err_set(err, mc == CURLM_OUT_OF_MEMORY ? CG_ENOMEM : CG_EHTTP, "%s: %s",
                          req->name, curl_multi_strerror(mc));
    }
    req->state = REQ_RUNNING;
    if (h->inflight++ == 0) {
        uv_ref((uv_handle_t *)&h->timer);
    }
    h->stats.requests++;
    if (req->attempts > 1) {
        h->stats.retries++;
    }
    if (is_mutating(req->method)) {
        h->stats.mutating++;
    }
    CG_LOG(CG_LOG_DEBUG, "http", "req=%s attempt %d/%d", req->label ? req->label : req->name,
           req->attempts, req->max_attempts);
    return 0;
}

/* Schedules the next attempt; returns 0 when none is possible (attempts or deadline spent). */
static int schedule_retry(struct cg_http_req *req, long retry_after_ms)
{
    struct cg_http *h = req->h;
    if (req->attempts >= req->max_attempts) {
        return 0;
    }
    int shift = req->attempts - 1;
    long window = BACKOFF_CAP_MS;
    if (shift < 10 && (BACKOFF_BASE_MS << shift) < BACKOFF_CAP_MS) {
        window = BACKOFF_BASE_MS << shift;
    }
    /* full jitter: clients that failed together do not come back together */
    long delay = (long)(rng_next(h) % (uint64_t)(window + 1));
    if (retry_after_ms > delay) {
        delay = retry_after_ms;
    }
    if (now_ms(h) + (uint64_t)delay >= req->deadline) {
        return 0;
    }
    struct http_timer *t = timer_new(h, delay, retry_fire, req);
    if (t == NULL) {
        return 0; /* deliver what we have rather than fail on a timer */
    }
    req->wait = t;
    req->state = REQ_WAITING;
    CG_LOG(CG_LOG_DEBUG, "http", "req=%s retrying in %ld ms", req->label ? req->label : req->name,
           delay);
    return 1;
}

static void retry_fire(void *data, int canceled)
{
    struct cg_http_req *req = data;
    struct cg_err err = {0};
    req->wait = NULL;
    if (canceled) {
        deliver_err(req, CG_ECANCELED, 0, "cancelled");
        return;
    }
    if (start_attempt(req, &err) < 0) {
        deliver(req, &err);
    }
}

static int status_retryable(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

static void response_done(struct cg_http_req *req, long status)
{
    struct cg_http *h = req->h;
    resp_cleanup(&req->last);
    req->last = req->cur;
    req->last.status = status;
    resp_init(&req->cur, req->max_body);

    int retry = status_retryable(status);
    if (!retry && req->classify != NULL) {
        req->state = REQ_BUSY;
        retry = req->classify(req, req->classify_data) == 1;
        req->state = REQ_WAITING;
        if (h->closing) {
            deliver_err(req, CG_ECANCELED, 0, "cancelled");
            return;
        }
    }
    if (retry) {
        long ra = cg_http_parse_retry_after(cg_http_req_resp_header(req, "Retry-After"),
                                            (long long)time(NULL));
        if (schedule_retry(req, ra)) {
            return;
        }
    }
    deliver(req, NULL);
}

static int transient(CURLcode res)
{
    switch (res) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static void describe(const struct cg_http_req *req, CURLcode res, long os_errno, char *buf,
                     size_t n)
{
    char eb[128];
    switch (res) {
    case CURLE_GOT_NOTHING:
        snprintf(buf, n, "empty reply from server");
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        if (os_errno != 0) {
            /* "connection refused" says more than "Couldn't connect to server" */
            snprintf(buf, n, "%s", strerror_r((int)os_errno, eb, sizeof(eb)));
            break;
        }
        /* fall through */
    default:
        snprintf(buf, n, "%s", req->errbuf[0] != '\0' ? req->errbuf : curl_easy_strerror(res));
        break;
    }
    chomp(buf);
    lower_first(buf);
}

/* How a CURLE_OPERATION_TIMEDOUT came about: curl reports the connect timeout and the whole
 * attempt's timeout with the same code. */
enum timeout_kind { TIMEOUT_CONNECT, TIMEOUT_ATTEMPT, TIMEOUT_DEADLINE };

static enum timeout_kind timeout_kind(struct cg_http_req *req)
{
    /* curl and libuv read the same monotonic clock, at slightly different moments */
    const long slack_ms = 50;
    long elapsed = (long)(now_ms(req->h) - req->attempt_start);
    if (elapsed + slack_ms < req->attempt_limit) {
        return TIMEOUT_CONNECT;
    }
    return req->deadline_bound ? TIMEOUT_DEADLINE : TIMEOUT_ATTEMPT;
}

static void transport_failed(struct cg_http_req *req, CURLcode res, long os_errno)
{
    int timeout = res == CURLE_OPERATION_TIMEDOUT;
    enum timeout_kind kind = timeout ? timeout_kind(req) : TIMEOUT_CONNECT;
    /* Only a connection that never opened proves the server did not act on the request. */
    int unsent = res == CURLE_COULDNT_CONNECT || (timeout && kind == TIMEOUT_CONNECT);
    if (transient(res) && !(timeout && kind == TIMEOUT_DEADLINE) && (!req->send_once || unsent) &&
        schedule_retry(req, -1)) {
        return;
    }
    if (req->last.status > 0) {
        /* an earlier attempt got an answer: it says more than the last transport error */
        deliver(req, NULL);
        return;
    }
    char what[CURL_ERROR_SIZE + 64];
    char dur[32];
    if (timeout && kind == TIMEOUT_DEADLINE) {
        fmt_ms(dur, sizeof(dur), req->total_ms);
        if (req->attempts > 1) {
            deliver_err(req, CG_ETIMEDOUT, 0, "timed out after %s (%d attempts)", dur,
                        req->attempts);
        } else {
            deliver_err(req, CG_ETIMEDOUT, 0, "timed out after %s", dur);
        }
        return;
    }
    if (timeout && kind == TIMEOUT_ATTEMPT) {
        fmt_ms(dur, sizeof(dur), req->attempt_ms);
        snprintf(what, sizeof(what), "timed out after %s", dur);
        if (req->attempts > 1) {
            snprintf(what, sizeof(what), "timed out after %d attempts of %s each", req->attempts,
                     dur);
        }
        deliver_err(req, CG_ETIMEDOUT, 0, "%s", what);
        return;
    }
    if (timeout) {
        long limit = req->connect_ms < req->attempt_limit ? req->connect_ms : req->attempt_limit;
        fmt_ms(dur, sizeof(dur), limit);
        if (req->attempts > 1) {
            deliver_err(req, CG_ETIMEDOUT, 0, "connection timed out after %s (%d attempts)", dur,
                        req->attempts);
        } else {
            deliver_err(req, CG_ETIMEDOUT, 0, "connection timed out after %s", dur);
        }
        return;
    }
    describe(req, res, os_errno, what, sizeof(what));
    if (req->attempts > 1) {
        deliver_err(req, CG_EHTTP, 0, "%s after %d attempts", what, req->attempts);
    } else {
        deliver_err(req, CG_EHTTP, 0, "%s", what);
    }
}

static void attempt_done(struct cg_http_req *req, CURLcode res)
{
    long status = 0;
    long os_errno = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
    easy_detach(req);

    if (req->nomem) {
        deliver_err(req, CG_ENOMEM, 0, "out of memory");
    } else if (req->toobig) {
        deliver_err(req, CG_ETOOBIG, status, "response larger than %zu bytes", req->max_body);
    } else if (req->hdr_toobig) {
        deliver_err(req, CG_ETOOBIG, status, "response headers larger than %zu bytes",
                    MAX_RESP_HEADERS);
    } else if (res == CURLE_OK) {
        response_done(req, status);
    } else {
        transport_failed(req, res, os_errno);
    }
}

static void sock_failed(struct cg_http_req *req)
{
    int uverr = req->sock_err;
    easy_detach(req);
    if (uverr == UV_ENOMEM) {
        deliver_err(req, CG_ENOMEM, 0, "out of memory");
    } else {
        deliver_err(req, CG_EHTTP, 0, "cannot watch socket: %s", uv_strerror(uverr));
    }
}

static void reap_sock_failures(struct cg_http *h)
{
    while (h->sock_failures && h->multi != NULL) {
        struct cg_http_req *r = h->reqs;
        while (r != NULL && !(r->state == REQ_RUNNING && r->sock_err != 0)) {
            r = r->next;
        }
        if (r == NULL) {
            h->sock_failures = 0;
            break;
        }
        sock_failed(r); /* the user's done may change the list: rescan from the head */
    }
}

static void drain(struct cg_http *h)
{
    CURLMsg *m;
    int left = 0;
    /* h->multi turns NULL when a done callback closes the engine */
    while (h->multi != NULL && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        CURLcode res = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        attempt_done((struct cg_http_req *)priv, res);
    }
    reap_sock_failures(h);
}

/* ---- engine ----------------------------------------------------------------------------- */

int cg_http_new(struct cg_http **out, struct uv_loop_s *loop, struct cg_err *err)
{
    /* curl_global_init is main's job (cg_http_global_init); curl_easy_init falls back to it */
    struct cg_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    h->loop = loop;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h);
    /* Keep every connection a run opens: curl's default cache (4 x the transfers running)
     * closed the Kubernetes API's TLS connections during a wide round of cloud reads, and the
     * next Secret write paid for a new handshake (found by bench/). */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 64L);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_unref((uv_handle_t *)&h->timer);
    h->nhandles = 1;
    rng_seed(h);
    *out = h;
    return 0;
}

struct uv_loop_s *cg_http_loop(struct cg_http *h)
{
    return h->loop;
}

void cg_http_get_stats(const struct cg_http *h, struct cg_http_stats *out)
{
    *out = h->stats;
}

/* Rewrites the URL so that curl verifies and sends SNI for tls.server_name while connecting to
 * the real host. curl 7.88 has no option to override the TLS name alone, so: the URL's host
 * becomes server_name, CURLOPT_CONNECT_TO "server_name:port:realhost:port" sends the TCP
 * connection to the real host, and an explicit Host header keeps what the server sees
 * unchanged. Only for https: over plain http (or a proxy) the URL host is what the request
 * says. */
static int prepare_target(struct cg_http_req *req, struct cg_err *err)
{
    CURLU *u = NULL;
    char *host = NULL;
    char *port = NULL;
    char *given_port = NULL;
    char *url = NULL;
    char *sn = NULL;
    struct cg_buf b;
    int rc = 0;
    cg_buf_init(&b, 0);
    clear_target(req);
    if (req->server_name == NULL || strncasecmp(req->url, "https://", 8) != 0) {
        return 0;
    }
    if ((u = curl_url()) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", req->name);
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, req->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rc = cg_err_set(err, CG_EINVAL, "%s: invalid URL", req->name);
        goto out;
    }
    if (strcasecmp(host, req->server_name) == 0) {
        goto out; /* nothing to override */
    }
    if (curl_url_get(u, CURLUPART_PORT, &given_port, 0) != CURLUE_OK) {
        given_port = NULL; /* default port: the Host header carries none */
    }
    /* an IP literal with colons needs brackets in a URL and in CONNECT_TO */
    int v6 = strchr(req->server_name, ':') != NULL && req->server_name[0] != '[';
    if (cg_buf_printf(&b, v6 ? "[%s]" : "%s", req->server_name) < 0) {
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", req->name);
        goto out;
    }
    sn = cg_buf_steal(&b, NULL);
    if (sn == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", req->name);
        goto out;
    }
    if (curl_url_set(u, CURLUPART_HOST, sn, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        rc = cg_err_set(err, CG_EINVAL, "%s: invalid TLS server name '%s'", req->name,
                        req->server_name);
        goto out;
    }
    struct curl_slist *ct = NULL;
    char *host_hdr = NULL;
    if (cg_buf_printf(&b, "%s:%s:%s:%s", sn, port, host, port) == 0) {
        ct = curl_slist_append(NULL, b.data);
    }
    cg_buf_reset(&b);
    if (cg_buf_printf(&b, "Host: %s%s%s", host, given_port ? ":" : "",
                      given_port ? given_port : "") == 0) {
        host_hdr = cg_buf_steal(&b, NULL);
    }
    if (ct == NULL || host_hdr == NULL) {
        curl_slist_free_all(ct);
        free(host_hdr);
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", req->name);
        goto out;
    }
    req->connect_to = ct;
    req->host_hdr = host_hdr;
    req->conn_url = strdup(url);
    if (req->conn_url == NULL) {
        clear_target(req);
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", req->name);
    }
out:
    curl_free(host);
    curl_free(port);
    curl_free(given_port);
    curl_free(url);
    free(sn);
    curl_url_cleanup(u);
    cg_buf_cleanup(&b);
    return rc;
}

int cg_http_submit(struct cg_http *h, struct cg_http_req *req, cg_http_done_cb *done, void *data,
                   struct cg_err *err)
{
    struct cg_err e = {0};
    if (h == NULL || req == NULL || done == NULL) {
        return cg_err_set(err, CG_EINVAL, "invalid HTTP request");
    }
    if (req->h != NULL || req->state != REQ_NEW) {
        return cg_err_set(err, CG_EINVAL, "%s: already submitted", req->name);
    }
    if (h->closing) {
        return cg_err_set(err, CG_ECANCELED, "%s: cancelled: the HTTP engine is closing",
                          req->name);
    }
    if (!method_ok(req->method)) {
        return cg_err_set(err, CG_EINVAL, "%s: invalid method", req->name);
    }
    if (!url_ok(req->url)) {
        return cg_err_set(err, CG_EINVAL, "%s: invalid URL", req->name);
    }
    int rc = prepare_target(req, &e);
    if (rc == 0) {
        req->h = h;
        req->done = done;
        req->done_data = data;
        req->deadline = now_ms(h) + (uint64_t)req->total_ms;
        rc = start_attempt(req, &e);
    }
    if (rc < 0) {
        /* the caller keeps the request: leave it as it was before submit */
        req->h = NULL;
        req->done = NULL;
        req->done_data = NULL;
        req->attempts = 0;
        req->state = REQ_NEW;
        clear_target(req);
        if (err != NULL) {
            *err = e;
        }
        return rc;
    }
    req_link(h, req);
    return 0;
}

int cg_http_after(struct cg_http *h, long ms, cg_http_timer_cb *cb, void *data)
{
    if (h == NULL || cb == NULL) {
        return CG_EINVAL;
    }
    if (h->closing) {
        return CG_ECANCELED;
    }
    return timer_new(h, ms, cb, data) != NULL ? 0 : CG_ENOMEM;
}

int cg_http_set_default_ca(struct cg_http *h, const char *pem, size_t len, struct cg_err *err)
{
    char *copy = NULL;
    if (pem != NULL) {
        if (len == 0 || (copy = malloc(len)) == NULL) {
            return cg_err_set(err, len ? CG_ENOMEM : CG_EINVAL,
                              len ? "out of memory" : "empty CA bundle");
        }
        memcpy(copy, pem, len);
    }
    free(h->default_ca);
    h->default_ca = copy;
    h->default_ca_len = copy ? len : 0;
    return 0;
}

int cg_http_run(struct cg_http *h)
{
    /* Returns when nothing holds the loop: the curl timer is referenced only while transfers
     * run, and poll handles exist only for sockets of running transfers. */
    uv_run(h->loop, UV_RUN_DEFAULT);
    return 0;
}

void cg_http_close(struct cg_http *h)
{
    if (h == NULL || h->closing) {
        return;
    }
    h->closing = 1;
    /* Running transfers first. Done callbacks cannot add work (submit and after refuse while
     * closing) and cannot deliver other requests, so `next` stays valid. */
    struct cg_http_req *next;
    for (struct cg_http_req *r = h->reqs; r != NULL; r = next) {
        next = r->next;
        if (r->state == REQ_RUNNING) {
            easy_detach(r);
            deliver_err(r, CG_ECANCELED, 0, "cancelled");
        }
    }
    /* Then timers, backoff included: retry_fire delivers CG_ECANCELED for its request. */
    while (h->timers != NULL) {
        struct http_timer *t = h->timers;
        cg_http_timer_cb *cb = t->cb;
        void *data = t->data;
        timer_cancel(t);
        cb(data, 1);
    }
    /* Requests still listed are inside a user hook; the code that called the hook sees
     * `closing` and delivers them. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks != NULL) {
        sock_close(h->socks);
    }
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, curl_timer_closed);
}

/* ---- Retry-After ------------------------------------------------------------------------ */

static int month_index(const char *m)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++) {
        if (strcasecmp(m, months[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int only_space(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return *s == '\0';
}

long cg_http_parse_retry_after(const char *value, long long now_epoch_s)
{
    const long long max_s = 1000000000LL; /* keeps the result far from overflow */
    if (value == NULL) {
        return -1;
    }
    const char *p = value;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (isdigit((unsigned char)*p)) {
        long long secs = 0;
        while (isdigit((unsigned char)*p)) {
            if (secs < max_s) {
                secs = secs * 10 + (*p - '0');
            }
            p++;
        }
        if (!only_space(p)) {
            return -1;
        }
        return (long)((secs < max_s ? secs : max_s) * 1000);
    }

    /* HTTP-date: IMF-fixdate, or the obsolete RFC 850 and asctime forms (RFC 9110 5.6.7).
     * Parsed by hand: strptime's %a and %b follow the locale. */
    char mon[4] = "";
    char zone[4] = "";
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0, used = 0;
    const char *comma = strchr(p, ',');
    if (comma != NULL) {
        if (sscanf(comma + 1, " %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n", &day, mon, &year, &hh,
                   &mm, &ss, zone, &used) == 7 &&
            year >= 1000) {
            /* IMF-fixdate */
        } else if (sscanf(comma + 1, " %2d-%3[A-Za-z]-%2d %2d:%2d:%2d %3[A-Z]%n", &day, mon, &year,
                          &hh, &mm, &ss, zone, &used) == 7) {
            year += year < 70 ? 2000 : 1900;
        } else {
            return -1;
        }
        if (strcmp(zone, "GMT") != 0 || !only_space(comma + 1 + used)) {
            return -1;
        }
    } else {
        char wday[4];
        if (sscanf(p, "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wday, mon, &day, &hh, &mm, &ss,
                   &year, &used) != 7 ||
            !only_space(p + used)) {
            return -1;
        }
    }
    int m = month_index(mon);
    if (m < 0 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
        ss > 60 || year < 1970) {
        return -1;
    }
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = m;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    long long when = (long long)timegm(&tm);
    long long diff = when - now_epoch_s;
    if (diff < 0) {
        diff = 0; /* a date in the past means "now" */
    }
    return (long)((diff < max_s ? diff : max_s) * 1000);
}

const char *cg_http_reason(long status)
{
    switch (status) {
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return NULL;
    }
}
