/* creds_int.h: internals of sigv4.c and creds.c that tests and fuzzers reach: the URL splitter
 * and encoder the signer uses, the shared-file (INI) parser and the STS answer parser. Not for
 * other modules: they use aws_sigv4.h and aws_creds.h. */
#ifndef CG_AWS_CREDS_INT_H
#define CG_AWS_CREDS_INT_H

#include "aws_creds.h"

#include "cg_buf.h"

#include <stddef.h>

/* ---- sigv4.c ---------------------------------------------------------------------------- */

/* Appends s[0..n) percent-encoded as SigV4 wants it: A-Za-z0-9-_.~ raw, everything else %XX
 * (upper-case hex), and '/' raw when keep_slash. Returns 0, CG_ENOMEM or CG_ETOOBIG. */
int aws__uri_encode(struct cg_buf *b, const char *s, size_t n, int keep_slash);

/* kSigning for a day ("YYYYMMDD"), region and service; the caller wipes key. Returns 0 or
 * CG_ENOMEM. Exposed for the published signing-key vector. */
int aws__sigv4_signing_key(const struct aws_sigv4_scheme *sc, const char *secret, const char *day,
                           const char *region, const char *service, unsigned char key[32]);

/* An absolute http(s) URL split the way curl sends it. All strings owned by the struct. */
struct aws_url {
    int https;
    char *host;     /* as written (case kept, IPv6 in brackets), without userinfo */
    char *hostport; /* the Host header curl sends: host, plus ":port" when the URL names a port
                       that is not the scheme's default */
    int port;       /* the effective port */
    char *path;     /* raw path, "/" when the URL has none */
    char *query;    /* raw query without '?', NULL when none; the fragment is dropped */
};
/* Returns 0, or CG_EINVAL naming `what` (the URL itself is not echoed: it may carry a
 * presigned query), or CG_ENOMEM. u is clean on failure. */
int aws__url_parse(const char *url, const char *what, struct aws_url *u, struct cg_err *err);
void aws__url_cleanup(struct aws_url *u);

/* ---- creds.c: shared config/credentials files ------------------------------------------- */

/* The files' INI dialect as botocore's configparser reads it: [section] headers (text between
 * the first '[' and the last ']'), "key = value" or "key: value" (key lower-cased, value
 * trimmed, no inline comments), full-line comments starting with '#' or ';', indented lines
 * continuing the previous value (nested "s3 =" blocks), CRLF and a UTF-8 BOM accepted. */
struct aws_ini_kv {
    char *key;
    char *value; /* may be a secret: wiped on cleanup */
    unsigned line;
};
struct aws_ini_section {
    char *name; /* as written, trimmed ("profile prod", "default") */
    struct aws_ini_kv *kv;
    size_t n;
    size_t cap;
};
struct aws_ini {
    struct aws_ini_section *s;
    size_t n;
    size_t cap;
};

/* Parses buf (need not be NUL-terminated). On failure ini is clean and err says
 * "<source>:<line>: <problem>" without quoting the line (it may hold a secret). A repeated
 * section or key is an error, as configparser makes it. Returns 0, CG_EINVAL or CG_ENOMEM. */
int aws__ini_parse(struct aws_ini *ini, const char *buf, size_t len, const char *source,
                   struct cg_err *err);
void aws__ini_cleanup(struct aws_ini *ini);
/* The section with exactly this name, or NULL. */
const struct aws_ini_section *aws__ini_section(const struct aws_ini *ini, const char *name);
/* The profile `profile` of a config file: "[profile NAME]", or "[default]" for "default"
 * (where "[profile default]" also counts, and wins). NULL when absent. */
const struct aws_ini_section *aws__ini_config_profile(const struct aws_ini *ini,
                                                      const char *profile);
/* A key's value (key in lower case), or NULL. */
const char *aws__ini_get(const struct aws_ini_section *s, const char *key);

/* ---- creds.c: STS AssumeRoleWithWebIdentity answers ------------------------------------- */

#define AWS_STS_MAX_RESPONSE (256u * 1024u)

struct aws_sts_error {
    char code[64];     /* "InvalidIdentityToken", ...; "" when the body is no error document */
    char message[256]; /* control bytes replaced, cut to fit */
};

/* Parses the XML answer with libxml2 (no network, no entity substitution, no DTD loading),
 * matching elements by local name. status 200: fills out's keys, token and expiration (source
 * untouched) and returns 0, or CG_EINVAL when the document holds no complete credentials.
 * Other statuses: fills ae from <Error><Code>/<Message> and returns CG_ESTATUS. Bodies over
 * AWS_STS_MAX_RESPONSE are CG_ETOOBIG. Secrets never reach err. */
int aws__sts_parse(const char *body, size_t len, long status, struct aws_credentials *out,
                   struct aws_sts_error *ae, struct cg_err *err);

#endif
