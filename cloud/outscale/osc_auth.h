/* osc_auth: where the OUTSCALE access key, secret key, region and endpoints come from, the way
 * Outscale's own SDKs and osc-cli find them (protocols.md 4.1):
 *   1. OSC_ACCESS_KEY and OSC_SECRET_KEY (both, or neither: one alone is CG_EINVAL);
 *   2. else the profile OSC_PROFILE (default "default") of the config file OSC_CONFIG_FILE
 *      (default $HOME/.osc/config.json): {"<profile>": {"access_key", "secret_key", "region",
 *      "endpoints": {"api", "eim"}, "x509_client_cert", "x509_client_sslkey"}}.
 * Region: OSC_REGION, else the profile's "region", else the caller's hint (the cluster's
 * region from its nodes), else CG_EINVAL saying to set OSC_REGION.
 * API endpoint: OSC_ENDPOINT_API, else the profile's endpoints.api, else
 * https://api.<region>.outscale.com/api/v1. EIM endpoint (reported only: every call cloudgrant
 * makes goes to the OUTSCALE API, see osc_api.h): CLOUDGRANT_OSC_ENDPOINT_EIM, else the
 * profile's endpoints.eim, else https://eim.<region>.outscale.com.
 * Client certificate (needed when the account has CA-based API access rules):
 * OSC_X509_CLIENT_CERT and OSC_X509_CLIENT_KEY (files), else the profile's x509_client_cert and
 * x509_client_sslkey (or x509_client_key, osc-config-spec's name); both or neither. A relative
 * path in the profile is taken from the config file's directory.
 * An empty variable (or an empty string in the profile) counts as unset.
 *
 * With the environment pair the config file is not read at all: a key from one source is never
 * sent to an endpoint, or with a certificate, named by another. Endpoints are written two ways
 * in the wild: osc-config-spec's "https://api.eu-west-2.outscale.com" (no path) and osc-cli's
 * older "api.eu-west-2.outscale.com/api/v1" (no scheme). A value without a scheme gets
 * "https://", and an API endpoint without a path gets "/api/v1"; a trailing '/' is dropped. */
#ifndef CG_OSC_AUTH_H
#define CG_OSC_AUTH_H

#include "../../agent/core/cg_err.h"

#include <stddef.h>

struct osc_auth_env {
    const char *(*getenv)(const char *name); /* NULL = getenv(3) */
    const char *home;                        /* NULL = $HOME */
};

/* Everything owned; osc_credentials_cleanup wipes the secrets and frees. */
struct osc_credentials {
    char *access_key;   /* 20 characters, [A-Z0-9] */
    char *secret_key;   /* secret; 40 characters */
    char *region;       /* "eu-west-2" */
    char *endpoint_api; /* base URL without a trailing '/':
                           "https://api.eu-west-2.outscale.com/api/v1" */
    char *endpoint_eim;
    char *client_cert_pem; /* NULL when none; read from the file now */
    char *client_key_pem;  /* secret; NULL when none */
    char *source;          /* "environment" or "profile 'default' of /root/.osc/config.json" */
};

/* Fills *out (left zeroed on failure). CG_EAUTH "no OUTSCALE credentials: set OSC_ACCESS_KEY
 * and OSC_SECRET_KEY, or a profile in ~/.osc/config.json" when there are none (no pair and no
 * config file at the default path); CG_EINVAL for a partial pair, a config
 * file that is not JSON or lacks the profile (the message names the file and the profile, never
 * a value), an access key that is not 20 characters of [A-Z0-9] or a secret key that is not 40
 * printable characters (checked, since four bad signatures in a row lock the key), a region
 * that is not [a-z0-9-]{1,32}, an endpoint that is not an http(s) URL without a query, a
 * fragment or user information, a partial client certificate pair or files that are not PEM
 * (a config file over 1 MiB, a certificate or key file over 64 KiB too); CG_EIO for an
 * unreadable file (OSC_CONFIG_FILE naming a missing file included). region_hint may be NULL. */
int osc_credentials_load(struct osc_credentials *out, const struct osc_auth_env *env,
                         const char *region_hint, struct cg_err *err);
void osc_credentials_cleanup(struct osc_credentials *c); /* NULL-safe; leaves *c zeroed */

/* One profile of a config file as written, before the checks above (key shapes, region,
 * endpoints, files) that osc_credentials_load makes. Everything owned; NULL when absent or
 * empty. */
struct osc_profile {
    char *access_key;
    char *secret_key; /* secret */
    char *region;
    char *endpoint_api; /* endpoints.api */
    char *endpoint_eim; /* endpoints.eim */
    char *client_cert;  /* x509_client_cert: a path */
    char *client_key;   /* x509_client_sslkey or x509_client_key: a path */
};

/* The config file's parser, exposed for tests and fuzzing: profile `profile` of the JSON text
 * (len bytes; path names the file in messages) into *out (zeroed on failure). CG_EINVAL, with
 * a message naming the file and the profile but never a value or the parser's excerpt, when
 * the text is not strict JSON (UTF-8, no duplicate keys) or not an object, the profile is
 * missing or not an object, access_key or secret_key is missing, or a known member has the
 * wrong type; CG_ENOMEM. Unknown members are ignored. */
int osc_profile_parse(struct osc_profile *out, const char *json, size_t len, const char *profile,
                      const char *path, struct cg_err *err);
void osc_profile_cleanup(struct osc_profile *p); /* NULL-safe; wipes the secret */

#endif
