/* httpd: a minimal HTTP/1.1 server on a libuv loop for watch mode's /healthz and /metrics.
 *
 * Deliberately small and defensive rather than complete:
 * - GET and HEAD only (405 with "Allow: GET, HEAD" otherwise); no request bodies, no
 *   keep-alive: every response carries "Connection: close" and the connection is closed after
 *   it is written.
 * - The request line and headers are parsed incrementally with hard caps: at most
 *   CG_HTTPD_MAX_HEAD bytes (414 when the request line alone does not fit, 431 when the
 *   headers do not) and CG_HTTPD_MAX_HEADERS header lines (431). Malformed input gets 400.
 * - Routing is by exact path; the query string is ignored. Unknown paths get 404.
 * - Each connection has one deadline (default 5 s) for the whole exchange, so idle or
 *   trickling clients (slowloris) are dropped. At most max_conns (default 64) connections are
 *   served at once; further ones wait in the kernel's backlog until a slot frees.
 * - Responses never contain request data: error bodies are fixed strings.
 *
 * Lifetime (libuv style): cg_httpd_close closes the listener and every connection and frees the
 * server from the last close callback; run the loop afterwards until it has no more handles. */
#ifndef CG_HTTPD_H
#define CG_HTTPD_H

#include "cg_err.h"

#include <stddef.h>
#include <uv.h>

struct cg_buf;
struct cg_httpd;

#define CG_HTTPD_MAX_HEAD      8192 /* request line + headers, terminating empty line included */
#define CG_HTTPD_MAX_HEADERS   64
#define CG_HTTPD_METHOD_MAX    16 /* buffer size for a method (15 characters) */
#define CG_HTTPD_PATH_MAX      2048
#define CG_HTTPD_MAX_CONNS     64
#define CG_HTTPD_TIMEOUT_MS    5000
#define CG_HTTPD_MAX_BODY      (16u * 1024u * 1024u) /* cap of the body a handler may fill */
#define CG_HTTPD_DEFAULT_CTYPE "text/plain; charset=utf-8"

/* Fills body (empty, capped at CG_HTTPD_MAX_BODY) and may point *content_type at a string that
 * lives at least until the handler returns (default CG_HTTPD_DEFAULT_CTYPE). Returns the HTTP
 * status; anything outside 100..599, or a content type with control characters, becomes 500.
 * For HEAD the handler runs as for GET and the body is not sent. Handlers run on the loop. */
typedef int cg_httpd_handler(const char *path, struct cg_buf *body, const char **content_type,
                             void *data);

/* Listens on listen_addr: "127.0.0.1:9090", "[::1]:9090", "0.0.0.0:9090", "localhost:9090"
 * or ":9090" (every interface: IPv6 dual-stack when the host has IPv6, else IPv4). Port 0
 * picks a free port (see cg_httpd_port). Returns 0, CG_EINVAL (bad address, with a message
 * naming it), CG_EIO (bind/listen failed: "cannot listen on '...': address already in use")
 * or CG_ENOMEM. On failure after the listening handle was created, it is closed and freed from
 * its close callback: run the loop as usual. */
int cg_httpd_start(struct cg_httpd **out, uv_loop_t *loop, const char *listen_addr,
                   struct cg_err *err);
/* path must start with '/'; registering a path twice is CG_EINVAL. The path is copied; data is
 * borrowed until cg_httpd_close. */
int cg_httpd_route(struct cg_httpd *h, const char *path, cg_httpd_handler *fn, void *data);
/* Overrides the defaults (values <= 0 keep the current ones); for tests and tuning. */
void cg_httpd_set_limits(struct cg_httpd *h, int max_conns, long timeout_ms);
int cg_httpd_port(const struct cg_httpd *h); /* the bound port (useful with ":0") */
/* Connections being served now, and requests answered so far (any status). */
int cg_httpd_active(const struct cg_httpd *h);
unsigned long cg_httpd_served(const struct cg_httpd *h);
void cg_httpd_close(struct cg_httpd *h); /* NULL-safe; frees from the last close callback */

/* The request parser, pure (exposed for tests and the fuzzer). Looks at the first
 * CG_HTTPD_MAX_HEAD bytes of buf. Returns 0 when a complete head (through the empty line) was
 * read: method (NUL-terminated, at most mlen - 1 characters) and path (the request target
 * without its query string, at most plen - 1 characters) are filled and *consumed is the
 * head's length. Returns 1 when the bytes so far are a valid prefix and more are needed, or an
 * HTTP error status: 400 (malformed, including a method longer than mlen - 1), 414 (the request
 * line or the path does not fit) or 431 (headers over the caps). Accepts CRLF or bare LF line
 * ends, HTTP/1.0 and HTTP/1.1, and origin-form targets only ("/..."). */
int cg_httpd_parse_request(const char *buf, size_t len, char *method, size_t mlen, char *path,
                           size_t plen, size_t *consumed);

#endif
