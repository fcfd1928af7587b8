/* cloud/rest_common.c: see rest_common.h. */
#include "rest_common.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer than any OAuth access token the clouds issue (Azure's run to a few KB) */
#define MAX_TOKEN 16384

void cloud__one_line(char *dst, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    int space = 1; /* drops leading blanks */
    int cut = 0;
    if (cap == 0) {
        return;
    }
    for (size_t i = 0; s != NULL && i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            if (space) {
                continue;
            }
            ch = ' ';
            space = 1;
        } else {
            space = 0;
            if (ch < 0x20 || ch == 0x7f) {
                ch = '?';
            }
        }
        if (o + 1 >= cap) {
            cut = 1;
            break;
        }
        dst[o++] = (char)ch;
    }
    if (cut && cap > 4) {
        o = cap - 4 < o ? cap - 4 : o;
        /* dst[o] is the first byte dropped: back up while it continues a character */
        while (o > 0 && ((unsigned char)dst[o] & 0xC0) == 0x80) {
            o--;
        }
    }
    while (o > 0 && dst[o - 1] == ' ') {
        o--;
    }
    if (cut && cap > 4) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

char *cloud__one_line_dup(const char *s, size_t len, size_t cap)
{
    char *out = malloc(cap);
    if (out != NULL) {
        cloud__one_line(out, cap, s, len);
    }
    return out;
}

static int ident_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

void cloud__copy_ident(char *dst, size_t cap, const char *s)
{
    if (cap == 0) {
        return;
    }
    dst[0] = '\0';
    if (s == NULL) {
        return;
    }
    size_t n = strlen(s);
    if (n == 0 || n >= cap) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ident_char(s[i])) {
            return;
        }
    }
    memcpy(dst, s, n + 1);
}

int cloud__is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

/* Nesting depth of a JSON text over max, counted lexically (brackets inside strings do not
 * count); a malformed text is left for the parser to refuse. */
static int too_deep(const char *s, size_t len, int max)
{
    int depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') {
                i++;
            } else if (ch == '"') {
                in_str = 0;
            }
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max) {
                return 1;
            }
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return 0;
}

json_t *cloud__json_load(const char *s, size_t len, int max_depth)
{
    if (s == NULL || too_deep(s, len, max_depth)) {
        return NULL;
    }
    json_error_t jerr;
    /* jansson is strict by default: UTF-8 only, no NUL in strings, nothing after the value */
    return json_loadb(s, len, 0, &jerr);
}

int cloud__json_answer(const char *body, size_t len, long status, const char *subj, size_t max_len,
                       int max_depth, json_t **out, struct cg_err *err)
{
    *out = NULL;
    if (body == NULL) {
        len = 0;
    }
    if (len > max_len) {
        return cg_err_set_http(err, CG_ETOOBIG, status, "%s: response too large (HTTP %ld)", subj,
                               status);
    }
    int ok = status >= 200 && status < 300;
    if (ok && cloud__is_blank(body, len)) {
        *out = json_object();
        return *out != NULL ? 0
                            : cg_err_set_http(err, CG_ENOMEM, status, "%s: out of memory", subj);
    }
    json_t *doc = len > 0 ? cloud__json_load(body, len, max_depth) : NULL;
    if (!ok) {
        *out = doc;
        return 1;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return cg_err_set_http(err, CG_EINVAL, status, "%s: invalid response (HTTP %ld)", subj,
                               status);
    }
    *out = doc;
    return 0;
}

int cloud__json_req_new(const char *method, const char *url, const char *body, size_t body_len,
                        const char *const *names, const char *const *values, const char *label,
                        struct cg_http_req **out, struct cg_err *err)
{
    *out = NULL;
    struct cg_http_req *req = cg_http_req_new(method, url);
    if (req == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = 0;
    if (body != NULL) {
        rc = cg_http_req_header(req, "Content-Type", "application/json");
        if (rc == 0) {
            rc = cg_http_req_body_copy(req, body, body_len);
        }
    }
    if (rc == 0) {
        rc = cg_http_req_header(req, "Accept", "application/json");
    }
    for (size_t i = 0; rc == 0 && names != NULL && names[i] != NULL; i++) {
        rc = cg_http_req_header(req, names[i], values[i]);
    }
    if (rc == 0) {
        rc = cg_http_req_set_label(req, label);
    }
    if (rc < 0) {
        cg_http_req_free(req);
        return cg_err_set(err, rc, "cannot build the request: %s", cg_errc_str(rc));
    }
    *out = req;
    return 0;
}

char *cloud__bearer_dup(const char *token, struct cg_err *err)
{
    size_t n = token != NULL ? strnlen(token, MAX_TOKEN + 1) : 0;
    int ok = n > 0 && n <= MAX_TOKEN;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char ch = (unsigned char)token[i];
        ok = ch > 0x20 && ch < 0x7f;
    }
    if (!ok) {
        cg_err_set(err, CG_EAUTH, "the access token is empty or malformed");
        return NULL;
    }
    char *h = malloc(n + 8);
    if (h == NULL) {
        cg_err_set(err, CG_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(h, "Bearer ", 7);
    memcpy(h + 7, token, n + 1);
    return h;
}

int cloud__path_ok(const char *path, size_t max_len)
{
    if (path == NULL || path[0] == '\0' || path[0] == '/' || strlen(path) > max_len) {
        return 0;
    }
    size_t n = strcspn(path, "?");
    for (size_t i = 0; path[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#' || ch == '\\') {
            return 0;
        }
    }
    for (size_t i = 0; i < n;) {
        size_t seg = strcspn(path + i, "/?");
        if (seg > n - i) {
            seg = n - i;
        }
        if ((seg == 1 && path[i] == '.') || (seg == 2 && path[i] == '.' && path[i + 1] == '.')) {
            return 0;
        }
        i += seg + 1;
    }
    return 1;
}

int cloud__endpoint_check(const char *var, const char *v, size_t max_len, int allow_insecure,
                          struct cg_err *err)
{
    size_t n = strlen(v);
    const char *sep = strstr(v, "://");
    if (sep != NULL && memchr(sep + 3, '@', strcspn(sep + 3, "/?#")) != NULL) {
        /* userinfo would be a credential in a URL: never quote it back, so this comes first */
        return cg_err_set(err, CG_EINVAL, "%s must not contain user information", var);
    }
    char shown[120];
    cg_printable_n(shown, sizeof(shown), v, n);
    if (n > max_len) {
        return cg_err_set(err, CG_EINVAL, "%s '%s' is too long", var, shown);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            return cg_err_set(err, CG_EINVAL,
                              "%s '%s' must be a URL without spaces or control characters", var,
                              shown);
        }
    }
    int rc = cg_url_check_transport(v, allow_insecure, var, err);
    if (rc < 0) {
        return rc;
    }
    const char *host = strstr(v, "://") + 3; /* the scheme was checked above */
    size_t hlen = strcspn(host, "/?#");
    if (hlen == 0 || host[0] == ':') {
        return cg_err_set(err, CG_EINVAL, "%s '%s' has no host", var, shown);
    }
    if (strpbrk(v, "?#") != NULL) {
        return cg_err_set(err, CG_EINVAL, "%s '%s' must not have a query string or fragment", var,
                          shown);
    }
    return 0;
}

int cloud__append_pct(struct cg_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = cg_buf_append(b, &s[i], 1);
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = cg_buf_append(b, enc, 3);
        }
    }
    return rc;
}

uint64_t cloud__rng_seed(const void *salt)
{
    return (cg_now_ms() ^ (uint64_t)(uintptr_t)salt) | 1;
}

static uint64_t rng_next(uint64_t *state)
{
    /* xorshift64*: only spreads waits in time, nothing secret depends on it */
    uint64_t x = *state != 0 ? *state : 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

long cloud__backoff_ms(uint64_t *rng, long first_ms, long cap_ms, unsigned n)
{
    long w = first_ms > 0 ? first_ms : 1;
    for (unsigned i = 0; i < n && w < cap_ms; i++) {
        w *= 2;
    }
    if (w > cap_ms) {
        w = cap_ms;
    }
    long spread = w / 4;
    return w - (long)(rng_next(rng) % (uint64_t)(spread + 1));
}

long cloud__retry_next(struct cloud_retry *r, uint64_t *rng, long first_ms, long cap_ms,
                       long budget_ms, long *spent_ms)
{
    uint64_t now = cg_now_ms();
    if (r->started == 0) {
        r->started = now;
    }
    uint64_t deadline = r->started + (uint64_t)budget_ms;
    if (now >= deadline) {
        *spent_ms = (long)(now - r->started);
        return -1;
    }
    long wait = cloud__backoff_ms(rng, first_ms, cap_ms, r->waits);
    if ((uint64_t)wait > deadline - now) {
        wait = (long)(deadline - now); /* one last try at the end of the budget */
    }
    r->waits++;
    return wait;
}

void cloud__err_append(struct cg_err *err, const char *suffix)
{
    if (err == NULL) {
        return;
    }
    size_t cap = sizeof(err->msg);
    size_t n = strnlen(err->msg, cap - 1);
    size_t s = strlen(suffix);
    if (s + 4 >= cap) {
        return;
    }
    if (n + s >= cap) {
        size_t keep = cap - 1 - s - 3;
        while (keep > 0 && ((unsigned char)err->msg[keep] & 0xC0) == 0x80) {
            keep--;
        }
        memcpy(err->msg + keep, "...", 3);
        n = keep + 3;
    }
    memcpy(err->msg + n, suffix, s + 1);
}

void cloud__fmt_duration(char *buf, size_t n, long ms)
{
    if (ms % 1000 == 0) {
        snprintf(buf, n, "%ld s", ms / 1000);
    } else {
        snprintf(buf, n, "%.1f s", (double)ms / 1000.0);
    }
}
