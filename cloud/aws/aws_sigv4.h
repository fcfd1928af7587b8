/* aws_sigv4: Signature Version 4, written here rather than taken from curl's CURLOPT_AWS_SIGV4
 * because curl 7.88 cannot sign with a fixed timestamp (tests against the published vectors),
 * has no session-token option, and does not canonicalise query strings. The same algorithm
 * with renamed constants is Outscale's OSC4, so the constants are parameters. */
#ifndef CG_AWS_SIGV4_H
#define CG_AWS_SIGV4_H

#include "../../agent/core/cg_err.h"

#include <stddef.h>
#include <stdint.h>

struct cg_http_req;

/* Credentials as every AWS-side module sees them. Strings are owned by whoever filled the
 * struct; aws_credentials_cleanup wipes and frees them. */
struct aws_credentials {
    char *access_key_id;
    char *secret_access_key; /* secret */
    char *session_token;     /* secret; NULL for long-term keys */
    int64_t expiration;      /* epoch seconds; 0 = does not expire */
    char *source;            /* "environment", "web-identity", ... for logs; never a secret */
};
void aws_credentials_cleanup(struct aws_credentials *c);
/* Deep copy; returns 0 or CG_ENOMEM. */
int aws_credentials_copy(struct aws_credentials *dst, const struct aws_credentials *src);

/* The constants that differ between AWS SigV4 and Outscale OSC4. */
struct aws_sigv4_scheme {
    const char *algorithm;   /* "AWS4-HMAC-SHA256" | "OSC4-HMAC-SHA256" */
    const char *key_prefix;  /* "AWS4" | "OSC4" */
    const char *terminator;  /* "aws4_request" | "osc4_request" */
    const char *date_header; /* "X-Amz-Date" | "X-Osc-Date" */
};
extern const struct aws_sigv4_scheme aws_sigv4_aws;
extern const struct aws_sigv4_scheme aws_sigv4_osc;

struct aws_sigv4_header {
    const char *name; /* any case; lower-cased for signing */
    const char *value;
};

struct aws_sigv4_input {
    const char *method;
    const char *host;                       /* as sent in Host, with :port when not default */
    const char *path;                       /* raw path; "/" for Query APIs */
    const char *query;                      /* raw query string without '?', may be NULL */
    const struct aws_sigv4_header *headers; /* extra headers to sign (content-type, ...) */
    size_t header_count;
    const void *body;
    size_t body_len;
    const char *region;
    const char *service;
    int64_t now; /* epoch seconds */
};

/* The result; the strings are owned by it (aws_sigv4_output_cleanup). canonical_request and
 * string_to_sign are kept for tests and debugging. */
struct aws_sigv4_output {
    char date[17];           /* YYYYMMDDTHHMMSSZ */
    char *authorization;     /* full Authorization header value */
    char *canonical_request; /* no secret in it */
    char *string_to_sign;
    char signature[65];
};
void aws_sigv4_output_cleanup(struct aws_sigv4_output *o);

/* Signs host, the scheme's date header (value out->date) and in->headers; with a session token
 * in creds also X-Amz-Security-Token, which the caller must then send. Caller headers named
 * host, the date header or (with a token) X-Amz-Security-Token are ignored: those values are
 * the function's. Returns 0, CG_EINVAL (no method/host, bad region/service), CG_EAUTH (no
 * access key or secret) or CG_ENOMEM; out is filled only on success. */
int aws_sigv4_sign(const struct aws_sigv4_scheme *scheme, const struct aws_sigv4_input *in,
                   const struct aws_credentials *creds, struct aws_sigv4_output *out,
                   struct cg_err *err);

/* Signs a cg_http request in place: sets the date header, X-Amz-Security-Token when there is a
 * session token, and Authorization, signing host, the date header, content-type when set, and
 * the token. For use inside a cg_http sign hook, so each retry is signed afresh. */
int aws_sigv4_sign_http(const struct aws_sigv4_scheme *scheme, struct cg_http_req *req,
                        const struct aws_credentials *creds, const char *region,
                        const char *service, int64_t now, struct cg_err *err);

#endif
