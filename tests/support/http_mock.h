/* http_mock: a scriptable HTTP/1.1 server on 127.0.0.1:<ephemeral port> for engine tests.
 *
 * It runs on the test's own loop, so a test drives client and server with one uv_run. All of
 * its handles are unreferenced: they never keep uv_run (or cg_http_run) alive by themselves.
 * Requests are answered by the first script entry whose path prefix matches and that has uses
 * left, else by the default answer (200 "ok"). Every request is recorded. */
#ifndef CG_HTTP_MOCK_H
#define CG_HTTP_MOCK_H

#include <stddef.h>
#include <uv.h>

enum http_mock_action {
    HTTP_MOCK_RESPOND = 0,
    HTTP_MOCK_RESET, /* close with a TCP RST instead of answering */
    HTTP_MOCK_CLOSE, /* close (FIN) without answering */
    HTTP_MOCK_HANG   /* never answer */
};

/* Strings are borrowed: use literals or keep them alive as long as the mock. */
struct http_mock_resp {
    const char *path;    /* NULL: any request; else a prefix of the request target */
    int uses;            /* how many requests this entry answers: 0 = 1, -1 = forever */
    int status;          /* 0 = 200 */
    const char *headers; /* extra header lines, each ending with "\r\n" */
    const char *body;    /* NULL = empty */
    size_t big_body;     /* > 0: a body of that many 'x' instead of `body` */
    long delay_ms;       /* wait before acting */
    enum http_mock_action action;
    const char *raw; /* sent verbatim instead of a built response */
};

struct http_mock;

struct http_mock *http_mock_new(uv_loop_t *loop);
int http_mock_port(const struct http_mock *m);
void http_mock_push(struct http_mock *m, const struct http_mock_resp *r);
void http_mock_set_default(struct http_mock *m, const struct http_mock_resp *r);

int http_mock_count(const struct http_mock *m);
int http_mock_connections(const struct http_mock *m);
const char *http_mock_req_method(const struct http_mock *m, int i);
const char *http_mock_req_target(const struct http_mock *m, int i);
/* First value of a request header (case-insensitive name), NULL when absent. */
const char *http_mock_req_header(const struct http_mock *m, int i, const char *name);
int http_mock_req_header_count(const struct http_mock *m, int i, const char *name);
const char *http_mock_req_body(const struct http_mock *m, int i, size_t *len);
/* The first bytes received over all connections (TLS ClientHellos included). */
const char *http_mock_raw(const struct http_mock *m, size_t *len);

/* Closes every handle; the mock is freed from the last close callback (run the loop). */
void http_mock_close(struct http_mock *m);

#endif
