/* azure_auth: Microsoft Entra ID access tokens for Microsoft Graph and Azure Resource Manager,
 * from the sources azure-identity's DefaultAzureCredential tries, in its order:
 *   1. client credentials: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET;
 *   2. workload identity: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (the
 *      projected service-account token the AKS webhook mounts), sent as the client assertion
 *      and re-read from the file for every token request (the kubelet rotates it);
 *   3. managed identity through IMDS (CLOUDGRANT_AZURE_IMDS_URL, default
 *      http://169.254.169.254), AZURE_CLIENT_ID selecting a user-assigned identity when set.
 * Sources 1 and 2 POST to <AZURE_AUTHORITY_HOST>/<tenant>/oauth2/v2.0/token (default
 * authority https://login.microsoftonline.com; a trailing '/' is accepted, as the webhook
 * injects it, and a bare host means https://<host>, as in azure-identity). One token per
 * resource (Graph, ARM): scope <resource>/.default for 1 and 2, resource=<resource>/ for IMDS.
 * The resource identifiers are always the public ones (https://graph.microsoft.com,
 * https://management.azure.com), whatever endpoint override the calls themselves use. A token
 * is cached per resource and refreshed when less than 300 s of it remain; calls made while a
 * refresh for that resource is in flight wait for it. */
#ifndef CG_AZURE_AUTH_H
#define CG_AZURE_AUTH_H

#include "../../agent/core/cg_err.h"

#include <stddef.h>
#include <stdint.h>

struct cg_http;
struct azure_auth;

enum azure_resource { AZURE_GRAPH = 0, AZURE_ARM, AZURE_RESOURCE_COUNT };

/* Where the chain looks: injected so tests control every input. */
struct azure_auth_env {
    const char *(*getenv)(const char *name); /* NULL = getenv(3) */
    const char *imds_url;    /* NULL = $CLOUDGRANT_AZURE_IMDS_URL, else http://169.254.169.254 */
    int no_imds;             /* never ask IMDS */
    long imds_timeout_ms;    /* per attempt, 3 attempts; 0 = 3000 */
    int allow_insecure_http; /* http:// authority to a non-loopback host */
    int64_t (*now)(void);    /* wall clock (s since the epoch) for expiries; NULL = time(2) */
};

/* Builds the chain and picks the source now, from the variables: a partial set (a secret
 * without a client id, a token file without a tenant, ...) is CG_EINVAL naming what is
 * missing; a federated token file that does not exist is CG_EINVAL; a malformed authority or
 * IMDS URL is CG_EINVAL. No variable at all selects IMDS unless env->no_imds, in which case it
 * is CG_EAUTH "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and
 * AZURE_CLIENT_SECRET, or run with AKS workload identity or a managed identity". Borrows h.
 * azure_auth_free is NULL-safe and may be called from a callback: waiters get CG_ECANCELED
 * from the loop, as gcp_auth does. */
int azure_auth_new(struct azure_auth **out, struct cg_http *h, const struct azure_auth_env *env,
                   struct cg_err *err);
void azure_auth_free(struct azure_auth *a);

/* "client secret", "workload identity", "managed identity". Borrowed, never NULL. */
const char *azure_auth_source(const struct azure_auth *a);
/* The tenant: AZURE_TENANT_ID, else (IMDS) the `tid` claim of the first token received
 * (read, not verified: it only names the tenant in reports), else NULL. Borrowed. */
const char *azure_auth_tenant(const struct azure_auth *a);

/* Delivers a current access token for `res` (borrowed for the callback). 0: cb runs exactly
 * once from the loop, never inside this call, even for a cached token. <0: err filled, cb
 * never runs (CG_ECANCELED, CG_ENOMEM).
 *
 * Token requests have a 30 s deadline (IMDS: imds_timeout_ms per attempt); 429 (Retry-After
 * honoured), 5xx and transport errors are retried with backoff (4 attempts; IMDS also 404 and
 * 410, as msal does). Failures: CG_EAUTH "Azure token (<source>) for <Graph|ARM>: <error>:
 * <first line of error_description>" (for example "invalid_client: AADSTS7000215: Invalid
 * client secret provided."; printable, cut to fit); CG_ESTATUS for a 5xx that outlived its
 * retries; CG_EINVAL for an answer without a usable access_token/expires_in (IMDS sends
 * numbers as strings: both forms are read); the engine's codes with the source as context.
 * A refresh that fails while the cached token has more than 60 s left delivers the cached
 * token. No secret, assertion, token or response body appears in a message or a log. */
typedef void azure_token_cb(const char *access_token, const struct cg_err *err, void *data);
int azure_auth_get_token(struct azure_auth *a, enum azure_resource res, azure_token_cb *cb,
                         void *data, struct cg_err *err);
/* Forgets the cached token for `res` (after a 401). */
void azure_auth_invalidate(struct azure_auth *a, enum azure_resource res);

/* Pure helper, exposed for tests and fuzzing: the `tid` claim of an access token (a JWT whose
 * payload is read, not verified: the token is only used against the endpoint that issued it),
 * when it is a usable tenant (letters, digits, '-', '.', '_'; at most 256 bytes). Returns a
 * new string (free it) or NULL: not a JWT, no such claim, or not usable. */
char *azure__token_tenant(const char *token);

/* Pure helper, exposed for tests and fuzzing: reads a token endpoint's answer (Entra ID's or
 * IMDS's) that came with HTTP `status`. 200: 0 with *token (a new string: free it with
 * cg_secret_free) and *expires_in (seconds, at most a day); CG_EINVAL when the answer has no
 * usable access_token or expires_in. Other statuses: CG_EAUTH (a 4xx with an OAuth error, a
 * 401, a 403) or CG_ESTATUS, with the message "<error>: <first line of error_description>" or
 * "HTTP <status> (<reason>)" and err->http_status set. The message never holds the body. */
int azure_auth_parse_answer(const char *body, size_t len, long status, char **token,
                            int64_t *expires_in, struct cg_err *err);

#endif
