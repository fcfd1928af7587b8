#include "cg_buf.h"
#include "cg_err.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_buf_init(struct cg_buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit ? limit : CG_BUF_DEFAULT_LIMIT;
}

static int grow(struct cg_buf *b, size_t need)
{
    if (need + 1 <= b->cap) {
        return 0;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need + 1) {
        ncap *= 2;
    }
    char *n;
    if (b->sensitive && b->data != NULL) {
        /* realloc could leave a copy of a secret behind in freed memory */
        n = malloc(ncap);
        if (n == NULL) {
            return CG_ENOMEM;
        }
        memcpy(n, b->data, b->len + 1);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    } else {
        n = realloc(b->data, ncap);
        if (n == NULL) {
            return CG_ENOMEM;
        }
    }
    b->data = n;
    b->cap = ncap;
    return 0;
}

int cg_buf_append(struct cg_buf *b, const void *p, size_t n)
{
    size_t limit = b->limit ? b->limit : CG_BUF_DEFAULT_LIMIT;
    if (n > limit || b->len > limit - n) {
        return CG_ETOOBIG;
    }
    int rc = grow(b, b->len + n);
    if (rc < 0) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cg_buf_append_str(struct cg_buf *b, const char *s)
{
    return cg_buf_append(b, s, strlen(s));
}

int cg_buf_printf(struct cg_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return CG_EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        return cg_buf_append(b, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        return CG_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = cg_buf_append(b, big, (size_t)n);
    if (b->sensitive) {
        OPENSSL_cleanse(big, (size_t)n);
    }
    free(big);
    return rc;
}

void cg_buf_reset(struct cg_buf *b)
{
    if (b->data != NULL) {
        if (b->sensitive) {
            OPENSSL_cleanse(b->data, b->cap);
        }
        b->data[0] = '\0';
    }
    b->len = 0;
}

char *cg_buf_steal(struct cg_buf *b, size_t *len)
{
    if (b->data == NULL && grow(b, 0) < 0) {
        return NULL;
    }
    if (b->len == 0) {
        b->data[0] = '\0';
    }
    char *d = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}

void cg_buf_cleanup(struct cg_buf *b)
{
    if (b->data != NULL && b->sensitive) {
        OPENSSL_cleanse(b->data, b->cap);
    }
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cg_secret_free(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void cg_wipe(void *p, size_t n)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, n);
    }
}
