#include "cg_util.h"
#include "cg_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cg_file_read(const char *path, size_t limit, char **out, size_t *len, struct cg_err *err)
{
    /* Files we read (kubeconfig, tokens, CAs, profiles) are small and local; reading them
     * synchronously keeps callers simple and is bounded by `limit`. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return cg_err_set(err, e == ENOENT ? CG_ENOTFOUND : CG_EIO, "cannot open '%s': %s", path,
                          strerror(e));
    }
    struct cg_buf b;
    cg_buf_init(&b, limit);
    b.sensitive = 1; /* token files and keys pass through here */
    char chunk[4096];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = cg_err_set(err, CG_EIO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        rc = cg_buf_append(&b, chunk, (size_t)n);
        if (rc == CG_ETOOBIG) {
            rc = cg_err_set(err, rc, "cannot read '%s': larger than %zu bytes", path, limit);
            break;
        }
        if (rc < 0) {
            rc = cg_err_set(err, rc, "cannot read '%s': out of memory", path);
            break;
        }
    }
    cg_wipe(chunk, sizeof(chunk));
    close(fd);
    if (rc < 0) {
        cg_buf_cleanup(&b);
        return rc;
    }
    size_t l = 0;
    char *d = cg_buf_steal(&b, &l);
    if (d == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    *out = d;
    if (len != NULL) {
        *len = l;
    }
    return 0;
}

int cg_b64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
    /* EVP_DecodeBlock rejects whitespace and mis-counts padding, so strip first and fix up. */
    char *clean = malloc(inlen + 4);
    if (clean == NULL) {
        return CG_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=')) {
            free(clean);
            return CG_EINVAL;
        }
        clean[n++] = c;
    }
    size_t pad = 0;
    while (n > 0 && clean[n - 1] == '=') {
        n--;
        pad++;
    }
    if (pad > 2 || memchr(clean, '=', n) != NULL || n % 4 == 1) {
        free(clean);
        return CG_EINVAL;
    }
    size_t fill = (4 - n % 4) % 4;
    for (size_t i = 0; i < fill; i++) {
        clean[n++] = '=';
    }
    unsigned char *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL) {
        free(clean);
        return CG_ENOMEM;
    }
    int dec = n ? EVP_DecodeBlock(buf, (const unsigned char *)clean, (int)n) : 0;
    free(clean);
    if (dec < 0) {
        free(buf);
        return CG_EINVAL;
    }
    size_t l = (size_t)dec - fill;
    buf[l] = '\0';
    *out = buf;
    *outlen = l;
    return 0;
}

char *cg_b64_encode(const unsigned char *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL) {
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

char *cg_strdup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *cg_strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0) {
        out = NULL;
    }
    va_end(ap);
    return out;
}

char *cg_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return strdup(".");
    }
    if (slash == path) {
        return strdup("/");
    }
    return strndup(path, (size_t)(slash - path));
}

char *cg_path_join(const char *dir, const char *path)
{
    if (path[0] == '/' || dir == NULL || dir[0] == '\0') {
        return strdup(path);
    }
    size_t n = strlen(dir) + strlen(path) + 2;
    char *r = malloc(n);
    if (r != NULL) {
        snprintf(r, n, "%s/%s", dir, path);
    }
    return r;
}

char *cg_trim(char *s)
{
    char *p = s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) {
        n--;
    }
    memmove(s, p, n);
    s[n] = '\0';
    return s;
}

int cg_parse_rfc3339(const char *s, int64_t *epoch)
{
    int Y, M, D, h, m, sec, n = 0;
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 ||
        n != 19) {
        return CG_EINVAL;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1970) {
        return CG_EINVAL;
    }
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return CG_EINVAL;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59) {
            return CG_EINVAL;
        }
        offset = (oh * 3600L + om * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return CG_EINVAL;
    }
    if (*p != '\0') {
        return CG_EINVAL;
    }
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    *epoch = (int64_t)timegm(&tm) - offset;
    return 0;
}

void cg_format_rfc3339(int64_t epoch, char *buf, size_t len)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

uint64_t cg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int host_is_loopback(const char *h, size_t n)
{
    if ((n == 9 && strncasecmp(h, "localhost", 9) == 0) ||
        (n == 5 && strncmp(h, "[::1]", 5) == 0)) {
        return 1;
    }
    if (n < 9 || strncmp(h, "127.", 4) != 0) {
        return 0;
    }
    for (size_t i = 4; i < n; i++) {
        if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.')) {
            return 0;
        }
    }
    return 1;
}

int cg_url_check_transport(const char *url, int allow_insecure, const char *what,
                           struct cg_err *err)
{
    if (strncasecmp(url, "https://", 8) == 0) {
        return 0;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        return cg_err_set(err, CG_EINVAL, "%s '%s' must start with https://", what, url);
    }
    const char *h = url + 7;
    /* The host follows any userinfo: "http://127.0.0.1:80@evil.example/" goes to evil.example,
     * so only what is after the authority's last '@' counts. */
    size_t authority = strcspn(h, "/?#");
    for (size_t i = authority; i > 0; i--) {
        if (h[i - 1] == '@') {
            h += i;
            break;
        }
    }
    size_t n;
    if (*h == '[') {
        const char *e = strchr(h, ']');
        n = e ? (size_t)(e - h + 1) : strlen(h);
    } else {
        n = strcspn(h, ":/?#");
    }
    if (allow_insecure || host_is_loopback(h, n)) {
        return 0;
    }
    return cg_err_set(err, CG_EINVAL,
                      "%s '%s' uses plain http to a non-loopback host: use https, or pass "
                      "--allow-insecure-http if you accept that",
                      what, url);
}

const char *cg_printable_n(char *dst, size_t cap, const char *s, size_t len)
{
    if (cap == 0) {
        return dst;
    }
    size_t keep = len < cap ? len : (cap > 4 ? cap - 4 : cap - 1);
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (keep < len && cap > 4) {
        memcpy(dst + keep, "...", 3);
        keep += 3;
    }
    dst[keep] = '\0';
    return dst;
}

long long cg_parse_duration_ms(const char *s)
{
    long long total = 0;
    int any = 0;
    while (*s != '\0') {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0 || !isfinite(v)) {
            return -1;
        }
        long long unit = 1000;
        if (*end == 'h') {
            unit = 3600000;
            end++;
        } else if (*end == 'm' && end[1] == 's') {
            unit = 1;
            end += 2;
        } else if (*end == 'm') {
            unit = 60000;
            end++;
        } else if (*end == 's') {
            end++;
        } else if (*end != '\0') {
            return -1;
        }
        total += (long long)(v * (double)unit);
        any = 1;
        s = end;
    }
    return any ? total : -1;
}
