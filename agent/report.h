/* report: the client of the platform's central endpoint (design.md "Reporting").
 *
 * Builds the report body (report_build, pure), delivers it with a bearer token and a stable
 * Idempotency-Key (report_send, async on the engine's loop) and fetches the AWS trust
 * principal the platform publishes (report_fetch_trust). The token, the body and any
 * credentials never reach a log line or an error message. */
#ifndef REPORT_H
#define REPORT_H

#include "cg_err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct cg_http;
/* The layout of this struct is part of the agreed contract: keep it as written. */
/* clang-format off */
struct report_config {            /* owned strings; report_config_cleanup wipes the token */
    char *url;                    /* POST target */
    char *token;                  /* bearer token: secret */
    char *ca_pem; size_t ca_len;  /* --report-ca contents; NULL = system store */
    int allow_insecure;           /* --allow-insecure-report: plain http to non-loopback */
    long timeout_ms;              /* whole delivery incl. retries; default 120 s */
};
/* clang-format on */

/* From values the CLI has gathered: url (--report-url/CLOUDGRANT_REPORT_URL), token from
 * token_env (CLOUDGRANT_REPORT_TOKEN) or token_file (--report-token-file; trimmed), ca_file
 * (--report-ca). Checks the URL transport rule (https, or http only to loopback unless
 * allow_insecure) with a message naming --allow-insecure-report. CG_EINVAL on bad input. */
int report_config_init(struct report_config *c, const char *url, const char *token_env,
                       const char *token_file, const char *ca_file, int allow_insecure,
                       struct cg_err *err);
void report_config_cleanup(struct report_config *c);

/* Sends body (JSON text, copied) with Authorization: Bearer, Content-Type: application/json,
 * Idempotency-Key: key (the same on every retry). 2xx = delivered. 429/5xx/transport errors are
 * retried with backoff by the engine within timeout_ms. Any other 4xx is final: err carries the
 * server's message (from a JSON body's "message" or "error" field, else the status line; never
 * the request body) as "central endpoint <url without query>: 400 Bad Request: <message>".
 * cb runs exactly once from the loop when 0 is returned. */
typedef void report_done_cb(const struct cg_err *err, void *data);
int report_send(struct cg_http *h, const struct report_config *c, const char *body,
                const char *idempotency_key, report_done_cb *cb, void *data, struct cg_err *err);

/* GET url with the same bearer token; expects {"principalArn": "...", "externalId": "..."}.
 * principal/external_id are new strings for the callback's duration (borrowed; copy to keep). */
typedef void report_trust_cb(const char *principal_arn, const char *external_id,
                             const struct cg_err *err, void *data);
int report_fetch_trust(struct cg_http *h, const struct report_config *c, const char *url,
                       report_trust_cb *cb, void *data, struct cg_err *err);

/* A stable Idempotency-Key: lower-case hex SHA-256 (first 32 hex chars, formatted as a UUID
 * 8-4-4-4-12) of the given parts joined by '\n'. Same inputs, same key: a rerun after a crash
 * re-sends the same report with the same key, so the platform can drop the duplicate. */
void report_idempotency_key(const char *const *parts, size_t n, char out[37]);

/* The report body; docs/report.schema.json describes exactly what report_build emits. */
struct report_input {
    const char *kind;    /* OnboardingReport | DriftReport | OffboardingReport */
    json_t *cluster;     /* borrowed: {"id","name","provider","region","account",
                            "kubernetesVersion","server"}; missing or non-string values become
                            null, an unknown provider becomes "unknown", other keys are dropped */
    const char *profile; /* NULL -> null (a run that failed before loading one) */
    const char *status;  /* succeeded | failed */
    json_t *resources;   /* borrowed array of {provider, kind, id, change}; NULL -> [] */
    json_t *drift;       /* borrowed array of {provider, kind, name, change[, id, detail]};
                            NULL -> [] */
    json_t *credentials; /* borrowed: plain object, or a JSON string (sealed JWE); NULL = null */
    const char *error;   /* failure message or NULL */
    int64_t started_at, finished_at; /* epoch seconds -> RFC 3339 */
    const char *agent_version;       /* NULL -> "unknown" */
};

/* New JSON text (compact, keys in a fixed order). Entries of resources/drift keep only the
 * keys the schema knows. The caller frees it with cg_secret_free: it may carry credentials.
 * NULL on ENOMEM (or a NULL in). */
char *report_build(const struct report_input *in);

/* Cuts "?query" and "#fragment" off a URL for messages (a query may carry a signature).
 * Returns a new string, NULL on ENOMEM. */
char *report_url_for_msg(const char *url);

#endif
