/* cg_err: the one error shape of the whole tree.
 *
 * Every function that can fail returns int: 0 on success or a negative enum cg_errc, and takes
 * an optional trailing `struct cg_err *err` that receives a one-line, user-readable message.
 * The layer that knows the facts writes the message; callers add context with cg_err_wrap().
 * Messages follow git's rules: lower-case first word, no final full stop, quote the subject. */
#ifndef CG_ERR_H
#define CG_ERR_H

#include <stdarg.h>

enum cg_errc {
    CG_OK = 0,
    CG_ENOMEM = -1,    /* allocation failed */
    CG_EINVAL = -2,    /* bad input: file, flag, document (exit code 2) */
    CG_EIO = -3,       /* local I/O: file, process */
    CG_EHTTP = -4,     /* transport: connect, TLS, reset */
    CG_ESTATUS = -5,   /* the server answered with an error status */
    CG_EAUTH = -6,     /* credentials missing or refused */
    CG_ETIMEDOUT = -7, /* a deadline passed */
    CG_ECANCELED = -8, /* the caller cancelled */
    CG_ETOOBIG = -9,   /* a network-fed buffer hit its cap */
    CG_ENOTFOUND = -10 /* the thing asked for does not exist */
};

#define CG_ERR_MSG_MAX 512

struct cg_err {
    int code;         /* enum cg_errc */
    long http_status; /* 0 when no response arrived */
    char msg[CG_ERR_MSG_MAX];
};

/* Sets code and message; returns code, so `return cg_err_set(err, ...)` is one line.
 * err may be NULL. Control bytes in the message (from quoted input or a server's text) become
 * a space or '?', so every message stays one printable line. */
int cg_err_set(struct cg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cg_err_set for an answer from a server: also records the HTTP status (0 when none came). */
int cg_err_set_http(struct cg_err *err, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepends "<context>: " to the message already in err; returns err->code (or CG_EINVAL
 * when err is NULL, which callers never rely on). */
int cg_err_wrap(struct cg_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void cg_err_clear(struct cg_err *err);

/* A short name for a code: "out of memory", "invalid input", ... */
const char *cg_errc_str(int code);

#endif
