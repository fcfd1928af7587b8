/* gcp_auth: OAuth2 access tokens for Google Cloud APIs, from the sources Application Default
 * Credentials use, in their order:
 *   1. a service-account key file named by GOOGLE_APPLICATION_CREDENTIALS (JWT bearer grant,
 *      RS256 signed with OpenSSL, POSTed to the key file's token_uri);
 *   2. the GCE/GKE metadata server (GCE_METADATA_HOST, default metadata.google.internal),
 *      which is also how GKE Workload Identity reaches a pod: same path, the node's
 *      gke-metadata-server answers for the pod's Kubernetes service account.
 * A token is cached and refreshed when less than 225 s of it remain (google-auth's margin);
 * calls made while a refresh is in flight wait for it, so one refresh serves them all. */
#ifndef CG_GCP_AUTH_H
#define CG_GCP_AUTH_H

#include "../../agent/core/cg_err.h"

#include <stddef.h>
#include <stdint.h>

struct cg_http;
struct gcp_auth;

/* Where the chain looks: injected so tests control every input. */
struct gcp_auth_env {
    const char *(*getenv)(const char *name); /* NULL = getenv(3) */
    const char *metadata_host;               /* host[:port]; NULL = $GCE_METADATA_HOST, else
                                                metadata.google.internal */
    int no_metadata;                         /* never ask the metadata server */
    long metadata_timeout_ms;                /* per attempt, 3 attempts; 0 = 3000 */
    int64_t (*now)(void); /* wall clock in seconds since the epoch, for the JWT's iat and the
                             token's expiry; NULL = time(2). Tests freeze it. */
};

/* A parsed service-account key file (the JSON `gcloud iam service-accounts keys create`
 * writes). private_key is secret and wiped by gcp_key_file_cleanup. */
struct gcp_key_file {
    char *client_email;
    char *private_key_id;
    char *private_key; /* PEM, PKCS#8 (PKCS#1 accepted) */
    char *token_uri;   /* default https://oauth2.googleapis.com/token */
    char *project_id;  /* NULL when absent */
};

/* Parses key-file JSON into *out (clean on failure; on success free with
 * gcp_key_file_cleanup). CG_EINVAL with a message naming the missing or wrong field (never a
 * value, and never the JSON parser's excerpt of the text, which could be key material): type
 * must be "service_account"; client_email, private_key_id and private_key are non-empty
 * strings; token_uri, when present, is https:// or plain http:// to a loopback host (127.0.0.0/8,
 * [::1], localhost) with no userinfo. CG_ENOMEM. `source` names the file in messages. */
int gcp_key_file_parse(struct gcp_key_file *out, const char *json, size_t len, const char *source,
                       struct cg_err *err);
void gcp_key_file_cleanup(struct gcp_key_file *k);

/* The signed JWT assertion for the key (header {"alg":"RS256","typ":"JWT","kid":<key id>};
 * claims iss=client_email, scope, aud=token_uri, iat=now, exp=now+3600; base64url segments
 * without padding; RSASSA-PKCS1-v1_5 with SHA-256), as a new string the caller frees with
 * cg_secret_free. CG_EINVAL when the PEM is not an unencrypted RSA private key (PKCS#8 or
 * PKCS#1); CG_ENOMEM. */
int gcp_jwt_assertion(const struct gcp_key_file *k, const char *scope, int64_t now, char **out,
                      struct cg_err *err);

/* Builds the chain. Reads GOOGLE_APPLICATION_CREDENTIALS now (a named file that is missing or
 * invalid, or whose key cannot sign, is CG_EINVAL here, not at the first call; an empty value
 * counts as unset); checks the metadata host when that source will be used (CG_EINVAL);
 * borrows h, which must outlive the chain.
 *
 * gcp_auth_free is NULL-safe and may be called from inside a gcp_token_cb. Calls still waiting
 * are answered, each once, with CG_ECANCELED: from a zero-delay timer on the loop, or, when
 * the engine is closing, as cg_http_close cancels the request in flight (cg_http_close alone
 * also answers every waiter of a live chain with CG_ECANCELED). The memory is released when
 * the last engine callback has come back, so keep running the loop (or close the engine and
 * run it) as usual. */
int gcp_auth_new(struct gcp_auth **out, struct cg_http *h, const struct gcp_auth_env *env,
                 struct cg_err *err);
void gcp_auth_free(struct gcp_auth *a);

/* What the chain knows without a call: the key file's project_id and client_email, or NULL
 * (metadata source: ask gcp_auth_get_token first, then the email is known). Borrowed. */
const char *gcp_auth_project_hint(const struct gcp_auth *a);
const char *gcp_auth_email(const struct gcp_auth *a);
/* "service-account key file '<path>'" | "metadata server" | NULL before the first token. */
const char *gcp_auth_source(const struct gcp_auth *a);

/* Delivers a current access token (borrowed for the callback: copy it to keep it). 0: cb
 * runs exactly once from the loop, never inside this call, even for a cached token. <0: err
 * filled, cb never runs (CG_ECANCELED after gcp_auth_free or when the engine is closing,
 * CG_ENOMEM). Calls made while a refresh is in flight wait for it and get its result.
 *
 * The key-file source POSTs the JWT bearer grant with a 30 s deadline; 429, 5xx, transport
 * errors and the OAuth errors internal_failure, server_error and temporarily_unavailable are
 * retried (4 attempts, backoff), each attempt with a freshly signed assertion. The metadata
 * source GETs the token (and, the first time, the account's email, in parallel) with
 * Metadata-Flavor: Google, no proxy, metadata_timeout_ms per attempt, 3 attempts; a reply
 * without the Metadata-Flavor: Google echo is not the metadata server.
 *
 * Failures: CG_EAUTH with the OAuth error and description ("GCP token from key file '<path>':
 * invalid_grant: Invalid JWT Signature"; printable, cut to fit), CG_ESTATUS for a 5xx that
 * outlived its retries, CG_EINVAL for an answer without a usable token, the transport's code
 * (CG_EHTTP, CG_ETIMEDOUT, CG_ECANCELED) with the source as context, and CG_EAUTH "no Google
 * credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run where
 * the metadata server answers (GKE Workload Identity, GCE)" when there is no key file and the
 * metadata server is off or does not answer. A refresh that fails while the cached token still
 * has more than 60 s left delivers the cached token. No token, assertion, key or response
 * body ever appears in a message or a log. */
typedef void gcp_token_cb(const char *access_token, const struct cg_err *err, void *data);
int gcp_auth_get_token(struct gcp_auth *a, gcp_token_cb *cb, void *data, struct cg_err *err);
/* Forgets the cached token (after a 401): the next call fetches a new one. A refresh in
 * flight is not affected. */
void gcp_auth_invalidate(struct gcp_auth *a);

#endif
