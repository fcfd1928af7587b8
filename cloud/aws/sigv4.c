/* cloud/aws/sigv4.c: AWS Signature Version 4 (and Outscale's OSC4, the same algorithm with other
 * constants), per docs.aws.amazon.com "Create a signed AWS API request" and checked against
 * botocore's SigV4Auth (tests/sigv4_diff.py). */
#include "aws_sigv4.h"

#include "creds_int.h"

#include "cg_buf.h"
#include "cg_http.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct aws_sigv4_scheme aws_sigv4_aws = {"AWS4-HMAC-SHA256", "AWS4", "aws4_request",
                                               "X-Amz-Date"};
const struct aws_sigv4_scheme aws_sigv4_osc = {"OSC4-HMAC-SHA256", "OSC4", "osc4_request",
                                               "X-Osc-Date"};

#define TOKEN_HEADER "X-Amz-Security-Token"

/* ---- credentials --------------------------------------------------------------------------- */

void aws_credentials_cleanup(struct aws_credentials *c)
{
    if (c == NULL) {
        return;
    }
    free(c->access_key_id);
    cg_secret_free(c->secret_access_key);
    cg_secret_free(c->session_token);
    free(c->source);
    memset(c, 0, sizeof(*c));
}

int aws_credentials_copy(struct aws_credentials *dst, const struct aws_credentials *src)
{
    struct aws_credentials c = {0};
    c.expiration = src->expiration;
    if ((src->access_key_id != NULL && (c.access_key_id = strdup(src->access_key_id)) == NULL) ||
        (src->secret_access_key != NULL &&
         (c.secret_access_key = strdup(src->secret_access_key)) == NULL) ||
        (src->session_token != NULL && (c.session_token = strdup(src->session_token)) == NULL) ||
        (src->source != NULL && (c.source = strdup(src->source)) == NULL)) {
        aws_credentials_cleanup(&c);
        return CG_ENOMEM;
    }
    *dst = c;
    return 0;
}

void aws_sigv4_output_cleanup(struct aws_sigv4_output *o)
{
    if (o == NULL) {
        return;
    }
    free(o->authorization);
    free(o->canonical_request);
    free(o->string_to_sign);
    memset(o, 0, sizeof(*o));
}

/* ---- encoding ------------------------------------------------------------------------------ */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int aws__uri_encode(struct cg_buf *b, const char *s, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (unreserved(c) || (keep_slash && c == '/')) {
            rc = cg_buf_append(b, &s[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = cg_buf_append(b, e, 3);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes s[0..n) into out (at least n bytes); a '%' not followed by two hex digits
 * stays literal, and '+' is a plus (RFC 3986), not a space. Returns the decoded length. */
static size_t uri_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static void hex_encode(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(p != NULL ? p : "", n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        return CG_ENOMEM;
    }
    hex_encode(md, 32, out);
    return 0;
}

static int hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len) ==
            NULL ||
        len != 32) {
        return CG_ENOMEM;
    }
    return 0;
}

/* ---- canonical request parts --------------------------------------------------------------- */

/* Path normalisation as AWS services (other than S3) do it and botocore signs it: "." and
 * empty segments go, ".." drops the previous segment, the leading and trailing '/' stay. curl
 * removes dot segments before sending too, so what the server sees and what we sign agree. */
static int canonical_uri(struct cg_buf *b, const char *path)
{
    if (path == NULL || *path == '\0') {
        return cg_buf_append_str(b, "/");
    }
    size_t n = strlen(path);
    /* segment start offsets of the output, to pop on ".." */
    size_t *starts = malloc((n / 2 + 2) * sizeof(*starts));
    struct cg_buf tmp;
    cg_buf_init(&tmp, 0);
    int rc = 0;
    size_t depth = 0;
    if (starts == NULL) {
        return CG_ENOMEM;
    }
    for (const char *p = path; *p != '\0';) {
        const char *e = strchr(p, '/');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.')) {
            /* skip */
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            if (depth > 0) {
                depth--;
                tmp.len = starts[depth];
                if (tmp.data != NULL) {
                    tmp.data[tmp.len] = '\0';
                }
            }
        } else {
            starts[depth++] = tmp.len;
            if ((rc = cg_buf_append(&tmp, "/", 1)) < 0 || (rc = cg_buf_append(&tmp, p, l)) < 0) {
                goto out;
            }
        }
        p += l;
        if (*p == '/') {
            p++;
        }
    }
    if (path[0] != '/' && tmp.len > 0) {
        /* a relative path keeps no leading slash (botocore); never reached from a URL */
        memmove(tmp.data, tmp.data + 1, tmp.len);
        tmp.len--;
    }
    if (tmp.len == 0) {
        rc = cg_buf_append_str(b, path[0] == '/' ? "/" : "");
        goto out;
    }
    if ((rc = aws__uri_encode(b, tmp.data, tmp.len, 1)) < 0) {
        goto out;
    }
    if (path[n - 1] == '/') {
        rc = cg_buf_append(b, "/", 1);
    }
out:
    free(starts);
    cg_buf_cleanup(&tmp);
    return rc;
}

struct qpair {
    char *k;
    char *v;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a;
    const struct qpair *y = b;
    int c = strcmp(x->k, y->k);
    return c != 0 ? c : strcmp(x->v, y->v);
}

/* Each key and value is decoded, then encoded with only the unreserved characters left raw,
 * so "a b", "a%20b" and "a%20b" written with lower-case hex all sign alike; pairs sorted by
 * encoded key, then value. Empty pieces ("a=1&&b=2") are dropped. */
static int canonical_query(struct cg_buf *b, const char *query)
{
    struct qpair *pairs = NULL;
    size_t np = 0;
    char *dec = NULL;
    struct cg_buf e;
    int rc = 0;
    cg_buf_init(&e, 0);
    if (query == NULL || *query == '\0') {
        return 0;
    }
    size_t qlen = strlen(query);
    size_t cap = 1;
    for (const char *p = query; *p != '\0'; p++) {
        cap += *p == '&';
    }
    pairs = calloc(cap, sizeof(*pairs));
    dec = malloc(qlen + 1);
    if (pairs == NULL || dec == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    for (const char *p = query; *p != '\0';) {
        size_t l = strcspn(p, "&");
        if (l > 0) {
            const char *eq = memchr(p, '=', l);
            size_t kl = eq != NULL ? (size_t)(eq - p) : l;
            const char *v = eq != NULL ? eq + 1 : p + l;
            size_t vl = (size_t)(p + l - v);
            size_t dl = uri_decode(p, kl, dec);
            cg_buf_reset(&e);
            if ((rc = aws__uri_encode(&e, dec, dl, 0)) < 0) {
                goto out;
            }
            if ((pairs[np].k = cg_buf_steal(&e, NULL)) == NULL) {
                rc = CG_ENOMEM;
                goto out;
            }
            np++;
            dl = uri_decode(v, vl, dec);
            if ((rc = aws__uri_encode(&e, dec, dl, 0)) < 0) {
                goto out;
            }
            if ((pairs[np - 1].v = cg_buf_steal(&e, NULL)) == NULL) {
                rc = CG_ENOMEM;
                goto out;
            }
        }
        p += l;
        if (*p == '&') {
            p++;
        }
    }
    qsort(pairs, np, sizeof(*pairs), qpair_cmp);
    for (size_t i = 0; i < np; i++) {
        if ((rc = cg_buf_printf(b, "%s%s=%s", i > 0 ? "&" : "", pairs[i].k, pairs[i].v)) < 0) {
            goto out;
        }
    }
out:
    for (size_t i = 0; i < np; i++) {
        free(pairs[i].k);
        free(pairs[i].v);
    }
    free(pairs);
    free(dec);
    cg_buf_cleanup(&e);
    return rc;
}

struct chdr {
    char *name;  /* lower-cased, trimmed */
    char *value; /* trimmed, whitespace runs collapsed */
    size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a;
    const struct chdr *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trimall from the SigV4 documentation: trims, and turns each inner whitespace run into one
 * space. Returns a new string or NULL. */
static char *trimall(const char *s)
{
    char *o = malloc(strlen(s) + 1);
    if (o == NULL) {
        return NULL;
    }
    size_t n = 0;
    int pending = 0;
    for (; *s != '\0'; s++) {
        if (is_ws(*s)) {
            pending = n > 0;
            continue;
        }
        if (pending) {
            o[n++] = ' ';
            pending = 0;
        }
        o[n++] = *s;
    }
    o[n] = '\0';
    return o;
}

static char *lower_name(const char *s)
{
    char *t = trimall(s);
    if (t != NULL) {
        for (char *p = t; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
    }
    return t;
}

static int add_chdr(struct chdr *h, size_t *n, const char *name, const char *value)
{
    h[*n].name = lower_name(name);
    h[*n].value = trimall(value);
    h[*n].order = *n;
    (*n)++;
    return h[*n - 1].name != NULL && h[*n - 1].value != NULL ? 0 : CG_ENOMEM;
}

/* ---- signing ------------------------------------------------------------------------------- */

static int format_date(int64_t now, char out[17])
{
    time_t t = (time_t)now;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) {
        return CG_EINVAL;
    }
    return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC(prefix + secret, day), region), service), terminator) */
int aws__sigv4_signing_key(const struct aws_sigv4_scheme *sc, const char *secret, const char *day,
                           const char *region, const char *service, unsigned char key[32])
{
    struct cg_buf k0;
    unsigned char a[32], b[32];
    int rc;
    cg_buf_init(&k0, 0);
    k0.sensitive = 1;
    if ((rc = cg_buf_printf(&k0, "%s%s", sc->key_prefix, secret)) == 0 &&
        (rc = hmac(k0.data, k0.len, day, a)) == 0 && (rc = hmac(a, 32, region, b)) == 0 &&
        (rc = hmac(b, 32, service, a)) == 0) {
        rc = hmac(a, 32, sc->terminator, key);
    }
    cg_wipe(a, sizeof(a));
    cg_wipe(b, sizeof(b));
    cg_buf_cleanup(&k0);
    return rc;
}

static int bad_scope_part(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 1;
    }
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || *s == '/' || (unsigned char)*s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

int aws_sigv4_sign(const struct aws_sigv4_scheme *scheme, const struct aws_sigv4_input *in,
                   const struct aws_credentials *creds, struct aws_sigv4_output *out,
                   struct cg_err *err)
{
    struct aws_sigv4_output o = {0};
    struct chdr *hdrs = NULL;
    size_t nh = 0;
    struct cg_buf cr, sh, tmp;
    unsigned char key[32];
    unsigned char sig[32];
    char hash[65];
    char day[9];
    int rc = 0;
    cg_buf_init(&cr, 0);
    cg_buf_init(&sh, 0);
    cg_buf_init(&tmp, 0);

    if (in->method == NULL || in->method[0] == '\0' || in->host == NULL || in->host[0] == '\0') {
        return cg_err_set(err, CG_EINVAL, "cannot sign a request without a method and a host");
    }
    if (bad_scope_part(in->region) || bad_scope_part(in->service)) {
        return cg_err_set(err, CG_EINVAL, "cannot sign for region '%s', service '%s'",
                          in->region ? in->region : "", in->service ? in->service : "");
    }
    if (creds == NULL || creds->access_key_id == NULL || creds->access_key_id[0] == '\0' ||
        creds->secret_access_key == NULL || creds->secret_access_key[0] == '\0') {
        return cg_err_set(err, CG_EAUTH, "cannot sign: the credentials have no access key");
    }
    if (format_date(in->now, o.date) < 0) {
        return cg_err_set(err, CG_EINVAL, "cannot sign: time %lld out of range",
                          (long long)in->now);
    }
    memcpy(day, o.date, 8);
    day[8] = '\0';

    /* the caller's headers, minus those this function owns (host, date, token) */
    hdrs = calloc(in->header_count + 3, sizeof(*hdrs));
    if (hdrs == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < in->header_count; i++) {
        const char *nm = in->headers[i].name;
        if (nm == NULL || in->headers[i].value == NULL) {
            continue;
        }
        char *t = lower_name(nm);
        if (t == NULL) {
            rc = CG_ENOMEM;
            goto out;
        }
        int ours = strcmp(t, "host") == 0 || strcasecmp(t, scheme->date_header) == 0 ||
                   (creds->session_token != NULL && strcasecmp(t, TOKEN_HEADER) == 0);
        free(t);
        if (!ours && (rc = add_chdr(hdrs, &nh, nm, in->headers[i].value)) < 0) {
            goto out;
        }
    }
    if ((rc = add_chdr(hdrs, &nh, "host", in->host)) < 0 ||
        (rc = add_chdr(hdrs, &nh, scheme->date_header, o.date)) < 0) {
        goto out;
    }
    if (creds->session_token != NULL &&
        (rc = add_chdr(hdrs, &nh, TOKEN_HEADER, creds->session_token)) < 0) {
        goto out;
    }
    qsort(hdrs, nh, sizeof(*hdrs), chdr_cmp);

    /* 1. canonical request */
    for (const char *m = in->method; *m != '\0'; m++) {
        char c = (char)toupper((unsigned char)*m);
        if ((rc = cg_buf_append(&cr, &c, 1)) < 0) {
            goto out;
        }
    }
    if ((rc = cg_buf_append(&cr, "\n", 1)) < 0 || (rc = canonical_uri(&cr, in->path)) < 0 ||
        (rc = cg_buf_append(&cr, "\n", 1)) < 0 || (rc = canonical_query(&cr, in->query)) < 0 ||
        (rc = cg_buf_append(&cr, "\n", 1)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < nh; i++) {
        int same = i > 0 && strcmp(hdrs[i].name, hdrs[i - 1].name) == 0;
        if (same) {
            /* repeated header: values comma-joined on the line already started */
            cr.len--; /* drop the '\n' */
            rc = cg_buf_printf(&cr, ",%s\n", hdrs[i].value);
        } else {
            rc = cg_buf_printf(&cr, "%s:%s\n", hdrs[i].name, hdrs[i].value);
            if (rc == 0) {
                rc = cg_buf_printf(&sh, "%s%s", sh.len > 0 ? ";" : "", hdrs[i].name);
            }
        }
        if (rc < 0) {
            goto out;
        }
    }
    if ((rc = sha256_hex(in->body, in->body_len, hash)) < 0 ||
        (rc = cg_buf_printf(&cr, "\n%s\n%s", sh.data ? sh.data : "", hash)) < 0) {
        goto out;
    }

    /* 2. string to sign */
    if ((rc = sha256_hex(cr.data, cr.len, hash)) < 0 ||
        (rc = cg_buf_printf(&tmp, "%s\n%s\n%s/%s/%s/%s\n%s", scheme->algorithm, o.date, day,
                            in->region, in->service, scheme->terminator, hash)) < 0) {
        goto out;
    }
    if ((o.string_to_sign = cg_buf_steal(&tmp, NULL)) == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }

    /* 3. signature */
    unsigned int slen = 0;
    if ((rc = aws__sigv4_signing_key(scheme, creds->secret_access_key, day, in->region, in->service,
                                     key)) < 0 ||
        HMAC(EVP_sha256(), key, 32, (const unsigned char *)o.string_to_sign,
             strlen(o.string_to_sign), sig, &slen) == NULL ||
        slen != 32) {
        rc = rc < 0 ? rc : CG_ENOMEM;
        goto out;
    }
    hex_encode(sig, 32, o.signature);

    /* 4. Authorization */
    if ((rc = cg_buf_printf(&tmp, "%s Credential=%s/%s/%s/%s/%s, SignedHeaders=%s, Signature=%s",
                            scheme->algorithm, creds->access_key_id, day, in->region, in->service,
                            scheme->terminator, sh.data ? sh.data : "", o.signature)) < 0) {
        goto out;
    }
    if ((o.authorization = cg_buf_steal(&tmp, NULL)) == NULL ||
        (o.canonical_request = cg_buf_steal(&cr, NULL)) == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    *out = o;
    memset(&o, 0, sizeof(o));
out:
    cg_wipe(key, sizeof(key));
    cg_wipe(sig, sizeof(sig));
    if (hdrs != NULL) {
        for (size_t i = 0; i < nh; i++) {
            free(hdrs[i].name);
            /* the session token is one of the values */
            cg_secret_free(hdrs[i].value);
        }
        free(hdrs);
    }
    cg_buf_cleanup(&cr);
    cg_buf_cleanup(&sh);
    cg_buf_cleanup(&tmp);
    aws_sigv4_output_cleanup(&o);
    if (rc < 0) {
        return cg_err_set(err, rc, "cannot sign the request: %s", cg_errc_str(rc));
    }
    return 0;
}

/* ---- URLs ---------------------------------------------------------------------------------- */

void aws__url_cleanup(struct aws_url *u)
{
    if (u == NULL) {
        return;
    }
    free(u->host);
    free(u->hostport);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof(*u));
}

int aws__url_parse(const char *url, const char *what, struct aws_url *out, struct cg_err *err)
{
    struct aws_url u = {0};
    const char *p;
    if (url == NULL) {
        return cg_err_set(err, CG_EINVAL, "%s: no URL", what);
    }
    for (p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return cg_err_set(err, CG_EINVAL, "%s: URL has a space, a control or non-ASCII byte",
                              what);
        }
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        u.https = 1;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return cg_err_set(err, CG_EINVAL, "%s: URL must start with https:// or http://", what);
    }
    size_t alen = strcspn(p, "/?#");
    const char *auth = p;
    const char *rest = p + alen;
    /* userinfo is never part of Host */
    for (const char *q = auth + alen; q > auth; q--) {
        if (q[-1] == '@') {
            alen -= (size_t)(q - auth);
            auth = q;
            break;
        }
    }
    const char *hend;
    if (alen > 0 && auth[0] == '[') {
        const char *rb = memchr(auth, ']', alen);
        if (rb == NULL) {
            return cg_err_set(err, CG_EINVAL, "%s: URL has an unclosed '[' in its host", what);
        }
        hend = rb + 1;
    } else {
        const char *c = memchr(auth, ':', alen);
        hend = c != NULL ? c : auth + alen;
    }
    size_t hlen = (size_t)(hend - auth);
    if (hlen == 0 || (auth[0] == '[' && hlen <= 2)) {
        return cg_err_set(err, CG_EINVAL, "%s: URL has no host", what);
    }
    int defport = u.https ? 443 : 80;
    int explicit_port = 0;
    u.port = defport;
    if (hend < auth + alen) {
        if (*hend != ':') {
            return cg_err_set(err, CG_EINVAL, "%s: URL has junk after its host", what);
        }
        const char *ps = hend + 1;
        size_t pl = (size_t)(auth + alen - ps);
        if (pl > 0) { /* "host:" means the default port, as in curl */
            long v = 0;
            for (size_t i = 0; i < pl; i++) {
                if (ps[i] < '0' || ps[i] > '9' || v > 65535) {
                    return cg_err_set(err, CG_EINVAL, "%s: URL has a bad port", what);
                }
                v = v * 10 + (ps[i] - '0');
            }
            if (v < 1 || v > 65535) {
                return cg_err_set(err, CG_EINVAL, "%s: URL has a bad port", what);
            }
            u.port = (int)v;
            explicit_port = u.port != defport;
        }
    }
    const char *path = rest;
    size_t plen = strcspn(path, "?#");
    const char *q = path[plen] == '?' ? path + plen + 1 : NULL;
    size_t qlen = q != NULL ? strcspn(q, "#") : 0;

    u.host = strndup(auth, hlen);
    u.path = plen > 0 ? strndup(path, plen) : strdup("/");
    u.query = q != NULL ? strndup(q, qlen) : NULL;
    if (explicit_port) {
        size_t n = hlen + 8;
        if ((u.hostport = malloc(n)) != NULL) {
            snprintf(u.hostport, n, "%.*s:%d", (int)hlen, auth, u.port);
        }
    } else {
        u.hostport = strndup(auth, hlen);
    }
    if (u.host == NULL || u.path == NULL || u.hostport == NULL || (q != NULL && u.query == NULL)) {
        aws__url_cleanup(&u);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    *out = u;
    return 0;
}

/* ---- cg_http ------------------------------------------------------------------------------- */

int aws_sigv4_sign_http(const struct aws_sigv4_scheme *scheme, struct cg_http_req *req,
                        const struct aws_credentials *creds, const char *region,
                        const char *service, int64_t now, struct cg_err *err)
{
    struct aws_url u = {0};
    struct aws_sigv4_output o = {0};
    int rc = aws__url_parse(cg_http_req_url(req), "cannot sign the request", &u, err);
    if (rc < 0) {
        return rc;
    }
    /* Only headers we control are signed: a proxy or curl may add or rewrite others
     * (user-agent, accept, expect), and moto refuses a signed user-agent. */
    struct aws_sigv4_header hs[1];
    size_t nhs = 0;
    const char *ct = cg_http_req_request_header(req, "Content-Type");
    if (ct != NULL) {
        hs[nhs++] = (struct aws_sigv4_header){"content-type", ct};
    }
    const char *host = cg_http_req_request_header(req, "Host");
    size_t blen = 0;
    const char *body = cg_http_req_request_body(req, &blen);
    struct aws_sigv4_input in = {
        .method = cg_http_req_method(req),
        .host = host != NULL ? host : u.hostport,
        .path = u.path,
        .query = u.query,
        .headers = hs,
        .header_count = nhs,
        .body = body,
        .body_len = blen,
        .region = region,
        .service = service,
        .now = now,
    };
    if ((rc = aws_sigv4_sign(scheme, &in, creds, &o, err)) < 0) {
        goto out;
    }
    if ((rc = cg_http_req_set_header(req, scheme->date_header, o.date)) < 0 ||
        (creds->session_token != NULL &&
         (rc = cg_http_req_set_header(req, TOKEN_HEADER, creds->session_token)) < 0) ||
        (rc = cg_http_req_set_header(req, "Authorization", o.authorization)) < 0) {
        rc = cg_err_set(err, rc, "cannot sign the request: %s",
                        rc == CG_EINVAL ? "a header value has a line break" : cg_errc_str(rc));
    }
out:
    aws_sigv4_output_cleanup(&o);
    aws__url_cleanup(&u);
    return rc;
}
