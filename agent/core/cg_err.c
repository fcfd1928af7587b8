#include "cg_err.h"

#include <stdio.h>
#include <string.h>

/* Messages often quote input: a JSON parser's token, a server's error text, a key name. A
 * newline there would break the one-line contract, and an escape sequence from a hostile
 * response would reach the user's terminal, so every control byte is flattened here, once,
 * instead of at each of the hundreds of call sites. */
static void flatten(char *msg)
{
    for (unsigned char *p = (unsigned char *)msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            *p = ' ';
        } else if (*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
}

__attribute__((format(printf, 4, 0))) static int vset(struct cg_err *err, int code, long status,
                                                      const char *fmt, va_list ap)
{
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    flatten(err->msg);
    err->code = code;
    err->http_status = status;
    return code;
}

int cg_err_set(struct cg_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, err->http_status, fmt, ap);
    va_end(ap);
    return code;
}

int cg_err_set_http(struct cg_err *err, int code, long status, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, status, fmt, ap);
    va_end(ap);
    return code;
}

int cg_err_wrap(struct cg_err *err, const char *fmt, ...)
{
    if (err == NULL) {
        return CG_EINVAL;
    }
    char prefix[CG_ERR_MSG_MAX];
    char old[CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    if (old[0] == '\0') {
        snprintf(err->msg, sizeof(err->msg), "%s", prefix);
    } else {
        snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    }
    flatten(err->msg);
    if (err->code == 0) {
        err->code = CG_EINVAL;
    }
    return err->code;
}

void cg_err_clear(struct cg_err *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}

const char *cg_errc_str(int code)
{
    switch (code) {
    case CG_OK:
        return "ok";
    case CG_ENOMEM:
        return "out of memory";
    case CG_EINVAL:
        return "invalid input";
    case CG_EIO:
        return "i/o error";
    case CG_EHTTP:
        return "transport error";
    case CG_ESTATUS:
        return "error status";
    case CG_EAUTH:
        return "authentication failed";
    case CG_ETIMEDOUT:
        return "timed out";
    case CG_ECANCELED:
        return "cancelled";
    case CG_ETOOBIG:
        return "too big";
    case CG_ENOTFOUND:
        return "not found";
    default:
        return "unknown error";
    }
}
