/* k8s_client: a small JSON client for the Kubernetes API on the cg_http engine.
 *
 * It authenticates the way client-go does: client certificate, static token, a token file
 * re-read when older than a minute or after a 401, basic auth, or an exec credential plugin
 * (run through cg_proc, cached until its expirationTimestamp, re-run after a 401). Each call
 * that gets a 401 refreshes the credential once and is sent again once. */
#ifndef CG_K8S_CLIENT_H
#define CG_K8S_CLIENT_H

#include "../agent/core/cg_err.h"
#include "k8s_config.h"

#include <jansson.h>

struct cg_http;
struct k8s_client;

/* Takes ownership of cfg (also on failure). Borrows http, which must outlive the client. */
int k8s_client_new(struct k8s_client **out, struct cg_http *http, struct k8s_config *cfg,
                   struct cg_err *err);
/* Frees the client. Calls still in flight must have completed (run the loop first). */
void k8s_client_free(struct k8s_client *c);
const struct k8s_config *k8s_client_config(const struct k8s_client *c);
/* The engine the client sends on (borrowed). */
struct cg_http *k8s_client_http(const struct k8s_client *c);

/* status: the HTTP status (0 when none arrived). body: the parsed JSON response, borrowed for
 * the callback (NULL when not JSON). err: NULL for a 2xx answer; otherwise a one-line message
 * naming the call, e.g. "GET /api/v1/nodes: 403 Forbidden: nodes is forbidden: ...", with
 * err->http_status set, or the transport failure. */
typedef void k8s_done_cb(long status, json_t *body, const struct cg_err *err, void *data);

/* Sends method + path (absolute API path, e.g. "/api/v1/nodes?limit=500") with an optional
 * JSON body (copied). 0: done runs exactly once from the loop. <0: err filled, done never runs. */
int k8s_client_call(struct k8s_client *c, const char *method, const char *path,
                    const char *json_body, k8s_done_cb *done, void *data, struct cg_err *err);

/* Sets the per-call timeout in milliseconds for later calls (default 15 s). */
void k8s_client_set_timeout(struct k8s_client *c, long ms);

/* Testing seam: the environment given to exec plugins (NULL-terminated "K=V" list; NULL =
 * the process environment). Borrowed. */
void k8s_client_set_exec_environ(struct k8s_client *c, const char *const *environ_list);

#endif
