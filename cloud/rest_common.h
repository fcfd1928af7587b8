/* Internal to cloud/: the pieces every JSON REST client here needs the same way, whatever the
 * provider: messages built from hostile text, identifiers copied from answers, JSON parsed
 * with a nesting cap, API paths and endpoint overrides checked before a token is sent, and
 * the waits between consistency retries.
 *
 * cloud/gcp/rest.c, cloud/azure/rest.c and cloud/outscale/api.c use them. cloud__endpoint_check
 * refuses user information before anything else so that no message ever quotes it. */
#ifndef CG_CLOUD_REST_COMMON_H
#define CG_CLOUD_REST_COMMON_H

#include "cg_err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct cg_buf;
struct cg_http_req;

/* Text for a one-line message, into dst (cap bytes, always NUL-terminated): tabs and line
 * breaks become single spaces, other control characters '?', the ends are trimmed, and a
 * value too long for cap ends in "..." cut at a UTF-8 character boundary. */
void cloud__one_line(char *dst, size_t cap, const char *s, size_t len);
/* The same into a new string of at most cap bytes; NULL on ENOMEM. */
char *cloud__one_line_dup(const char *s, size_t len, size_t cap);

/* Copies an identifier-like value (an error code, a status name) when it fits and has only
 * [A-Za-z0-9_.-]; anything else (NULL included) leaves dst empty rather than carry hostile
 * text. */
void cloud__copy_ident(char *dst, size_t cap, const char *s);

/* 1 when s holds only spaces, tabs and line breaks (or nothing). */
int cloud__is_blank(const char *s, size_t len);

/* Parses a JSON text strictly (UTF-8 only, no NUL in strings, nothing after the value) into
 * a new reference, or NULL when it is not JSON or nests deeper than max_depth (counted before
 * parsing, so jansson's recursion stays far below its own limit whatever the text). The
 * parser's message is dropped: it quotes the text, which may be a secret. */
json_t *cloud__json_load(const char *s, size_t len, int max_depth);

/* The provider-independent start of reading a JSON API's answer, which subj (printable) names
 * in messages. A 2xx answer must be a JSON object, a blank body counting as {}: 0 with *out a
 * new reference. Any other status: 1 with *out the parsed document (a new reference, or NULL
 * when the body is not JSON) for the caller to read its provider's error shape. A body over
 * max_len bytes or a 2xx answer that is not an object: a negative code (CG_ETOOBIG, CG_EINVAL,
 * CG_ENOMEM) with err set and carrying status, and *out NULL. */
int cloud__json_answer(const char *body, size_t len, long status, const char *subj, size_t max_len,
                       int max_depth, json_t **out, struct cg_err *err);

/* A new request in *out (the caller submits or frees it) with "Accept: application/json", the
 * body copied with "Content-Type: application/json" when body is not NULL, the extra headers
 * names[i]: values[i] up to a NULL name (names may be NULL), and label for the engine's log.
 * 0, or a negative code with err set and *out NULL when out of memory or a header is
 * refused. */
int cloud__json_req_new(const char *method, const char *url, const char *body, size_t body_len,
                        const char *const *names, const char *const *values, const char *label,
                        struct cg_http_req **out, struct cg_err *err);

/* "Bearer <token>" in a new string for an Authorization header, freed with cg_secret_free. The
 * token must be one header-safe word of at most 16 KiB, since anything else would let a
 * hostile token source inject headers: NULL with err CG_EAUTH otherwise (the message never
 * quotes the token), or CG_ENOMEM. */
char *cloud__bearer_dup(const char *token, struct cg_err *err);

/* An API path relative to a base URL: printable ASCII (the caller percent-encodes), at most
 * max_len bytes, no leading '/', no '#' or backslash, and no "." or ".." segment before the
 * query (curl would resolve them and leave the base's path prefix). 1 when acceptable. */
int cloud__path_ok(const char *path, size_t max_len);

/* An endpoint override (the value of variable `var`): a URL of at most max_len bytes without
 * spaces or control characters, https:// (plain http:// only to loopback unless
 * allow_insecure), with a host, without user information (never quoted back: it would be a
 * credential), a query string or a fragment. 0, or CG_EINVAL with a message naming var. */
int cloud__endpoint_check(const char *var, const char *value, size_t max_len, int allow_insecure,
                          struct cg_err *err);

/* Appends s percent-encoded (RFC 3986: everything but ALPHA, DIGIT and "-._~" becomes %XX),
 * for query values and application/x-www-form-urlencoded bodies. 0, CG_ENOMEM or CG_ETOOBIG;
 * with a sensitive buffer nothing of s is left behind in freed memory. */
int cloud__append_pct(struct cg_buf *b, const char *s, size_t len);

/* A seed for cloud__backoff_ms (never 0). */
uint64_t cloud__rng_seed(const void *salt);
/* The n-th wait (n from 0) between consistency retries or polls: first_ms doubling up to
 * cap_ms, minus up to a quarter of jitter so calls that failed together do not come back
 * together. *rng is the caller's generator state. */
long cloud__backoff_ms(uint64_t *rng, long first_ms, long cap_ms, unsigned n);

/* The consistency-retry state of one call. */
struct cloud_retry {
    uint64_t started; /* when the first retried condition was seen; 0 = never */
    unsigned waits;   /* waits so far */
};

/* The wait before the next consistency retry of a call, counted in r: first_ms doubling up
 * to cap_ms with jitter (cloud__backoff_ms), the last one cut to end with the budget. -1 once
 * budget_ms since the first condition are spent; *spent_ms then says how long that was. */
long cloud__retry_next(struct cloud_retry *r, uint64_t *rng, long first_ms, long cap_ms,
                       long budget_ms, long *spent_ms);

/* Appends suffix to err's message, cutting the message (with "...", at a UTF-8 character
 * boundary) when both do not fit, so the suffix always survives. NULL-safe. */
void cloud__err_append(struct cg_err *err, const char *suffix);

/* "2 s" or "0.2 s", for messages. */
void cloud__fmt_duration(char *buf, size_t n, long ms);

#endif
