/* cg_http: the HTTP engine. One engine per libuv loop; libcurl's multi interface driven by
 * curl_multi_socket_action with uv_poll and uv_timer, so every request in the process shares
 * one loop and runs in parallel with the others. Nothing here blocks.
 *
 * Request contract (aws-c-auth / libuv style):
 * - cg_http_submit() returning 0 means `done` runs exactly once, later, from the loop, and the
 *   engine frees the request after `done` returns. Returning <0 means `done` never runs, err is
 *   filled and the caller still owns the request (free it with cg_http_req_free).
 * - `done` gets err == NULL when a complete response arrived, whatever its status (the caller
 *   interprets statuses). err != NULL for transport failures after the last retry
 *   (CG_EHTTP), deadline (CG_ETIMEDOUT), response over the cap (CG_ETOOBIG) and cancellation
 *   (CG_ECANCELED).
 * - Retries: transport errors, 429, 500, 502, 503 and 504 are retried up to max_attempts with
 *   exponential backoff and full jitter (base 200 ms, cap 20 s), waiting at least what a
 *   Retry-After header asks (capped by the request deadline). A classifier callback lets
 *   callers retry protocol-level errors (AWS "Throttling" arrives as a 400).
 *   When no further attempt fits (attempts or deadline spent) the last result is delivered:
 *   the last complete response if any attempt got one (err == NULL, even if a later attempt
 *   failed at the transport level), else the last transport error.
 * - Error messages name the request as "METHOD url" with the query string and any userinfo
 *   left out; they never carry header values or bodies.
 * - The sign hook runs before every attempt (fresh timestamps, re-read tokens).
 * - Headers whose names carry credentials never appear in traces (cg_log_header_is_secret). */
#ifndef CG_HTTP_H
#define CG_HTTP_H

#include "../core/cg_err.h"

#include <stddef.h>

struct uv_loop_s;
struct cg_http;
struct cg_http_req;

/* TLS material is copied into the request; PEM blobs go to curl in memory (never to files). */
struct cg_tls {
    const char *ca_pem; /* trust anchors; NULL = system store */
    size_t ca_len;
    const char *cert_pem; /* client certificate; NULL = none */
    size_t cert_len;
    const char *key_pem; /* client key (secret); wiped on free */
    size_t key_len;
    int insecure_skip_verify; /* only when the user configured it */
    const char *server_name;  /* TLS server name to verify/SNI when it differs from the URL host */
};

/* Engine lifecycle. cg_http_new borrows the loop. cg_http_close cancels every request
 * (their `done` runs with CG_ECANCELED), closes the engine's handles and frees it from the
 * last close callback: run the loop afterwards until it has no more handles. */
int cg_http_new(struct cg_http **out, struct uv_loop_s *loop, struct cg_err *err);
void cg_http_close(struct cg_http *h);
struct uv_loop_s *cg_http_loop(struct cg_http *h);

/* Counters for the benchmark and for "zero mutating calls" tests. */
struct cg_http_stats {
    unsigned long requests; /* attempts sent, retries included */
    unsigned long retries;
    unsigned long mutating; /* attempts whose method is not GET/HEAD/OPTIONS */
};
void cg_http_get_stats(const struct cg_http *h, struct cg_http_stats *out);

/* Request building. cg_http_req_new returns NULL on ENOMEM. Setters copy their arguments. */
struct cg_http_req *cg_http_req_new(const char *method, const char *url);
void cg_http_req_free(struct cg_http_req *req); /* only for requests not submitted */
int cg_http_req_header(struct cg_http_req *req, const char *name, const char *value);
/* Replaces a header of the same name (case-insensitive), for sign hooks on retries. */
int cg_http_req_set_header(struct cg_http_req *req, const char *name, const char *value);
int cg_http_req_body_copy(struct cg_http_req *req, const void *body, size_t len);
int cg_http_req_body_take(struct cg_http_req *req, char *body, size_t len); /* owns body now */
int cg_http_req_set_tls(struct cg_http_req *req, const struct cg_tls *tls);
void cg_http_req_set_timeout(struct cg_http_req *req, long total_ms);   /* whole request, all
                                                                          attempts; default 30 s */
void cg_http_req_set_attempt_timeout(struct cg_http_req *req, long ms); /* default = total */
void cg_http_req_set_connect_timeout(struct cg_http_req *req, long ms); /* default 10 s */
void cg_http_req_set_max_attempts(struct cg_http_req *req, int n);      /* default 4; 1 = none */
/* The request is not idempotent: its answer alone carries what it made (a new key's secret).
 * A transport failure that may have come after the server got it (a reset, a cut or empty
 * answer, a timeout once connected) ends it instead of sending it again, which would make a
 * second key while the first is lost; a refused connection or a connect timeout is still
 * retried, and so are error statuses. */
void cg_http_req_set_send_once(struct cg_http_req *req);
void cg_http_req_set_max_body(struct cg_http_req *req, size_t bytes);      /* default 8 MiB */
int cg_http_req_set_proxy(struct cg_http_req *req, const char *proxy_url); /* else env */
void cg_http_req_set_user_data(struct cg_http_req *req, void *data);
void *cg_http_req_user_data(const struct cg_http_req *req);
/* A short label for traces and errors, e.g. "GET nodes" (copied). */
int cg_http_req_set_label(struct cg_http_req *req, const char *label);

/* Runs before each attempt; may set headers. A negative return fails the request with err. */
typedef int cg_http_sign_cb(struct cg_http_req *req, void *data, struct cg_err *err);
void cg_http_req_set_sign(struct cg_http_req *req, cg_http_sign_cb *cb, void *data);

/* Called after a complete response whose status is not retried by default; return 1 to retry
 * (with backoff), 0 to deliver. Also consulted for 401 (the hook may refresh credentials and
 * ask for one more attempt). */
typedef int cg_http_retry_cb(struct cg_http_req *req, void *data);
void cg_http_req_set_retry_classifier(struct cg_http_req *req, cg_http_retry_cb *cb, void *data);

typedef void cg_http_done_cb(struct cg_http_req *req, const struct cg_err *err, void *data);
int cg_http_submit(struct cg_http *h, struct cg_http_req *req, cg_http_done_cb *done, void *data,
                   struct cg_err *err);

/* Response accessors: valid inside `done` and inside the retry classifier. */
long cg_http_req_status(const struct cg_http_req *req);
const char *cg_http_req_body(const struct cg_http_req *req, size_t *len); /* NUL-terminated */
/* Case-insensitive; the value is trimmed; NULL when absent. */
const char *cg_http_req_resp_header(const struct cg_http_req *req, const char *name);
int cg_http_req_attempts(const struct cg_http_req *req);
const char *cg_http_req_method(const struct cg_http_req *req);
const char *cg_http_req_url(const struct cg_http_req *req);
/* The request as built (for sign hooks): body (NULL when none) and a header's value
 * (case-insensitive name; NULL when absent). */
const char *cg_http_req_request_body(const struct cg_http_req *req, size_t *len);
const char *cg_http_req_request_header(const struct cg_http_req *req, const char *name);
/* Detaches the response body (caller frees) so it can outlive the request. */
char *cg_http_req_take_body(struct cg_http_req *req, size_t *len);

/* One-shot timer on the engine's loop (for polling eventual consistency without sleeping).
 * Returns 0 and runs cb once later, or <0 and never runs it. Pending timers fire with
 * canceled=1 when the engine closes. */
typedef void cg_http_timer_cb(void *data, int canceled);
int cg_http_after(struct cg_http *h, long ms, cg_http_timer_cb *cb, void *data);

/* Trust anchors (PEM, copied) for the requests that bring none of their own: the cloud APIs,
 * whose endpoints a TLS-inspecting proxy or a private cloud may serve with a private CA. They
 * replace the system store for those requests, as a request's own CA does. NULL: back to the
 * system store. CG_EINVAL for an empty bundle. */
int cg_http_set_default_ca(struct cg_http *h, const char *pem, size_t len, struct cg_err *err);
/* Runs the loop until no request or timer is pending. For commands that submit a batch and
 * wait; never called from inside a callback. */
int cg_http_run(struct cg_http *h);

/* The standard reason phrase of an HTTP status ("Not Found"), for messages; NULL for a
 * status without one. */
const char *cg_http_reason(long status);

/* Parses a Retry-After value (delta seconds or HTTP-date) into milliseconds from now;
 * -1 when absent or unparsable. Exposed for tests. */
long cg_http_parse_retry_after(const char *value, long long now_epoch_s);

#endif
