#include "cg_err.h"

#include <stdio.h>
#include <string.h>

int cg_err_set(struct cg_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = code;
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
