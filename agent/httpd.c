/* httpd: a minimal GET/HEAD server for watch mode (see httpd.h).
 *
 * One struct conn per accepted connection embeds its uv_tcp_t, its deadline timer and its
 * write request, plus a fixed CG_HTTPD_MAX_HEAD buffer that reads go straight into, so a
 * connection's memory is fixed from accept to close whatever the client sends. The flow is
 * read -> parse -> run the handler -> one uv_write -> close; the timer bounds the whole of it.
 * A conn is freed when both of its handles have closed (`nclosing`), and the server when its
 * listener and every conn have. */
#include "httpd.h"

#include "cg_buf.h"
#include "cg_err.h"
#include "cg_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- parser ---- */

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Visible ASCII as RFC 3986 allows in a request target; '#' never reaches a server. */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

/* The parsers below see one line without its LF (complete) or the tail still arriving. They
 * return 0 (valid and complete), 1 (a valid prefix) or an error status, and reject a byte as
 * soon as it cannot be part of a valid line, so garbage is answered without waiting. */

static int request_line(const unsigned char *l, size_t n, int complete, char *method, size_t mlen,
                        char *path, size_t plen)
{
    size_t i = 0;
    while (i < n && is_tchar(l[i])) {
        i++;
    }
    if (i >= mlen) {
        return 400; /* no method we serve is this long */
    }
    if (i == n) {
        return complete ? 400 : 1;
    }
    if (i == 0 || l[i] != ' ') {
        return 400;
    }
    size_t mend = i++;
    if (i == n) {
        return complete ? 400 : 1;
    }
    if (l[i] != '/') {
        return 400; /* origin-form only: no absolute-form, authority-form or '*' */
    }
    size_t pstart = i;
    size_t pend = 0;
    while (i < n && is_target_char(l[i])) {
        if (l[i] == '?' && pend == 0) {
            pend = i;
        }
        i++;
        if ((pend ? pend : i) - pstart >= plen) {
            return 414;
        }
    }
    if (pend == 0) {
        pend = i;
    }
    if (i == n) {
        return complete ? 400 : 1;
    }
    if (l[i] != ' ') {
        return 400;
    }
    i++;
    static const char version[] = "HTTP/1.";
    size_t rest = n - i;
    size_t cmp = rest < 7 ? rest : 7;
    if (memcmp(l + i, version, cmp) != 0) {
        return 400;
    }
    if (rest < 8) {
        return complete ? 400 : 1;
    }
    if ((l[i + 7] != '0' && l[i + 7] != '1') || rest > 8) {
        return 400;
    }
    if (!complete) {
        return 1;
    }
    memcpy(method, l, mend);
    method[mend] = '\0';
    memcpy(path, l + pstart, pend - pstart);
    path[pend - pstart] = '\0';
    return 0;
}

static int header_line(const unsigned char *l, size_t n, int complete)
{
    size_t i = 0;
    while (i < n && is_tchar(l[i])) {
        i++;
    }
    if (i == n) {
        return complete ? 400 : 1;
    }
    /* whitespace before the colon and obsolete line folding are both refused (RFC 9112 5) */
    if (i == 0 || l[i] != ':') {
        return 400;
    }
    for (i++; i < n; i++) {
        if (l[i] != '\t' && (l[i] < 0x20 || l[i] == 0x7f)) {
            return 400;
        }
    }
    return complete ? 0 : 1;
}

/* Splits off the next line at pos: its length without LF and CR, and whether the LF arrived. A
 * trailing CR of a line still arriving is left out too: the LF may follow it. */
static size_t next_line(const unsigned char *p, size_t n, size_t pos, int *complete, size_t *adv)
{
    const unsigned char *nl = memchr(p + pos, '\n', n - pos);
    size_t ll = nl != NULL ? (size_t)(nl - (p + pos)) : n - pos;
    *complete = nl != NULL;
    *adv = ll + (nl != NULL);
    if (ll > 0 && p[pos + ll - 1] == '\r') {
        ll--;
    }
    return ll;
}

int cg_httpd_parse_request(const char *buf, size_t len, char *method, size_t mlen, char *path,
                           size_t plen, size_t *consumed)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t n = len < CG_HTTPD_MAX_HEAD ? len : CG_HTTPD_MAX_HEAD;
    int full = n == CG_HTTPD_MAX_HEAD; /* no more bytes will be looked at */
    if (mlen == 0 || plen == 0) {
        return 400;
    }
    int complete = 0;
    size_t adv = 0;
    size_t ll = next_line(p, n, 0, &complete, &adv);
    int rc = request_line(p, ll, complete, method, mlen, path, plen);
    if (rc == 1) {
        return full ? 414 : 1;
    }
    if (rc != 0) {
        return rc;
    }
    size_t pos = adv;
    int nheaders = 0;
    for (;;) {
        if (pos >= n) {
            return full ? 431 : 1;
        }
        ll = next_line(p, n, pos, &complete, &adv);
        if (ll == 0) {
            if (complete) {
                *consumed = pos + adv;
                return 0;
            }
            return full ? 431 : 1; /* a lone CR so far */
        }
        if (nheaders == CG_HTTPD_MAX_HEADERS) {
            return 431;
        }
        rc = header_line(p + pos, ll, complete);
        if (rc == 1) {
            return full ? 431 : 1;
        }
        if (rc != 0) {
            return rc;
        }
        nheaders++;
        pos += adv;
    }
}

/* ---- server ---- */

struct route {
    char *path;
    cg_httpd_handler *fn;
    void *data;
};

struct conn {
    struct cg_httpd *h;
    struct conn *prev;
    struct conn *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    int nclosing; /* handles whose close callback is still due */
    int closing;
    int answered; /* reading is over: a response is queued */
    char *resp;
    size_t len;
    char buf[CG_HTTPD_MAX_HEAD];
};

struct cg_httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listener_open; /* its close callback is still due */
    int closing;
    int accept_pending; /* a connection waits in the backlog because we were full */
    int port;
    int max_conns;
    long timeout_ms;
    int nconns;
    unsigned long served;
    struct conn *conns;
    struct route *routes;
    size_t nroutes;
};

static void maybe_free(struct cg_httpd *h)
{
    if (!h->closing || h->listener_open || h->conns != NULL) {
        return;
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].path);
    }
    free(h->routes);
    free(h);
}

static void accept_one(struct cg_httpd *h);

static void conn_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    if (--c->nclosing > 0) {
        return;
    }
    struct cg_httpd *h = c->h;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    h->nconns--;
    free(c->resp);
    free(c);
    if (h->closing) {
        maybe_free(h);
    } else if (h->accept_pending) {
        h->accept_pending = 0;
        accept_one(h);
    }
}

static void conn_close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    c->nclosing = 2;
    uv_close((uv_handle_t *)&c->timer, conn_closed);
    /* Closing the stream cancels a pending write, whose callback runs before ours. */
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    CG_LOG(CG_LOG_DEBUG, "httpd", "closing a connection at its %ld ms deadline", c->h->timeout_ms);
    conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED) {
        CG_LOG(CG_LOG_DEBUG, "httpd", "write failed: %s", uv_strerror(status));
    }
    conn_close(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static int ctype_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Queues the one response of this connection and stops reading; the write callback closes. */
static void respond(struct conn *c, int status, const char *ctype, const char *body, size_t blen,
                    int head_only)
{
    c->answered = 1;
    c->h->served++;
    uv_read_stop((uv_stream_t *)&c->tcp);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0) {
        date[0] = '\0';
    }
    struct cg_buf b;
    cg_buf_init(&b, CG_HTTPD_MAX_BODY + 1024);
    int rc = cg_buf_printf(&b,
                           "HTTP/1.1 %d %s\r\n"
                           "Date: %s\r\n"
                           "Content-Type: %s\r\n"
                           "Content-Length: %zu\r\n"
                           "%s"
                           "Cache-Control: no-store\r\n"
                           "X-Content-Type-Options: nosniff\r\n"
                           "Connection: close\r\n\r\n",
                           status, reason(status), date, ctype, blen,
                           status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (rc == 0 && !head_only && blen > 0) {
        rc = cg_buf_append(&b, body, blen);
    }
    if (rc < 0) {
        cg_buf_cleanup(&b);
        conn_close(c);
        return;
    }
    c->resp = cg_buf_steal(&b, &c->len);
    if (c->resp == NULL) {
        conn_close(c);
        return;
    }
    uv_buf_t ub = uv_buf_init(c->resp, (unsigned int)c->len);
    c->wreq.data = c;
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, on_written);
    if (rc < 0) {
        CG_LOG(CG_LOG_DEBUG, "httpd", "write failed: %s", uv_strerror(rc));
        conn_close(c);
    }
}

static void respond_error(struct conn *c, int status, int head_only)
{
    const char *body;
    switch (status) {
    case 400:
        body = "bad request\n";
        break;
    case 404:
        body = "not found\n";
        break;
    case 405:
        body = "method not allowed\n";
        break;
    case 414:
        body = "request target too long\n";
        break;
    case 431:
        body = "request header fields too large\n";
        break;
    default:
        body = "internal server error\n";
        break;
    }
    respond(c, status, CG_HTTPD_DEFAULT_CTYPE, body, strlen(body), head_only);
}

static void dispatch(struct conn *c, const char *method, const char *path)
{
    struct cg_httpd *h = c->h;
    int head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        respond_error(c, 405, 0);
        return;
    }
    const struct route *r = NULL;
    for (size_t i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].path, path) == 0) {
            r = &h->routes[i];
            break;
        }
    }
    if (r == NULL) {
        respond_error(c, 404, head);
        return;
    }
    struct cg_buf body;
    cg_buf_init(&body, CG_HTTPD_MAX_BODY);
    const char *ctype = CG_HTTPD_DEFAULT_CTYPE;
    int status = r->fn(path, &body, &ctype, r->data);
    if (c->closing) {
        /* the handler closed the server (and so this connection) */
        cg_buf_cleanup(&body);
        return;
    }
    if (status < 100 || status > 599 || ctype == NULL || !ctype_ok(ctype)) {
        CG_LOG(CG_LOG_DEBUG, "httpd", "handler for '%s' returned status %d or a bad content type",
               r->path, status);
        respond_error(c, 500, head);
    } else {
        respond(c, status, ctype, body.data != NULL ? body.data : "", body.len, head);
    }
    cg_buf_cleanup(&body);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;
    /* The parser answers before the buffer is full, so there is always room here. */
    *buf = uv_buf_init(c->buf + c->len, (unsigned int)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        /* EOF or reset before a complete request: nobody to answer */
        conn_close(c);
        return;
    }
    if (nread == 0 || c->answered || c->closing) {
        return;
    }
    c->len += (size_t)nread;
    char method[CG_HTTPD_METHOD_MAX];
    char path[CG_HTTPD_PATH_MAX];
    size_t consumed = 0;
    int rc = cg_httpd_parse_request(c->buf, c->len, method, sizeof(method), path, sizeof(path),
                                    &consumed);
    if (rc == 1) {
        return;
    }
    if (rc != 0) {
        respond_error(c, rc, 0);
        return;
    }
    /* Bytes after the head (a body, a pipelined request) are ignored: we close after this. */
    dispatch(c, method, path);
}

static void accept_one(struct cg_httpd *h)
{
    if (h->nconns >= h->max_conns) {
        /* Leave it in the kernel backlog; libuv stops polling the listener until we accept. */
        h->accept_pending = 1;
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Retried when a connection closes; with none open the listener stays stalled. */
        h->accept_pending = 1;
        return;
    }
    c->h = h;
    c->tcp.data = c;
    c->timer.data = c;
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    h->nconns++;
    uv_timer_init(h->loop, &c->timer); /* cannot fail */
    int rc = uv_tcp_init(h->loop, &c->tcp);
    if (rc < 0) {
        CG_LOG(CG_LOG_DEBUG, "httpd", "cannot create a connection handle: %s", uv_strerror(rc));
        /* The timer is registered with the loop already: it must go through uv_close. */
        c->closing = 1;
        c->nclosing = 1;
        uv_close((uv_handle_t *)&c->timer, conn_closed);
        return;
    }
    uv_unref((uv_handle_t *)&c->timer);
    uv_unref((uv_handle_t *)&c->tcp);
    rc = uv_accept((uv_stream_t *)&h->listener, (uv_stream_t *)&c->tcp);
    if (rc == 0) {
        rc = uv_timer_start(&c->timer, on_timeout, (uint64_t)h->timeout_ms, 0);
    }
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (rc < 0) {
        CG_LOG(CG_LOG_DEBUG, "httpd", "cannot accept: %s", uv_strerror(rc));
        conn_close(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct cg_httpd *h = server->data;
    if (status < 0) {
        CG_LOG(CG_LOG_DEBUG, "httpd", "accept failed: %s", uv_strerror(status));
        return;
    }
    if (h->closing) {
        return;
    }
    accept_one(h);
}

static void listener_closed(uv_handle_t *handle)
{
    struct cg_httpd *h = handle->data;
    h->listener_open = 0;
    maybe_free(h);
}

/* Fills addr from "host:port"; host is an IPv4 literal, a bracketed IPv6 literal, "localhost"
 * or empty (every interface). */
static int parse_addr(const char *s, struct sockaddr_storage *addr, struct cg_err *err)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0') {
        return cg_err_set(err, CG_EINVAL, "invalid listen address '%s': expected HOST:PORT", s);
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || colon[1] < '0' || colon[1] > '9') {
        return cg_err_set(err, CG_EINVAL, "invalid listen address '%s': bad port", s);
    }
    char host[64];
    size_t hlen = (size_t)(colon - s);
    if (hlen >= sizeof(host)) {
        return cg_err_set(err, CG_EINVAL, "invalid listen address '%s': host too long", s);
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    int rc;
    if (hlen == 0) {
        /* Every interface: IPv6 dual-stack (also takes IPv4) unless the host has no IPv6. */
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        if (fd >= 0) {
            close(fd);
            rc = uv_ip6_addr("::", (int)port, (struct sockaddr_in6 *)addr);
        } else {
            rc = uv_ip4_addr("0.0.0.0", (int)port, (struct sockaddr_in *)addr);
        }
    } else if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']') {
            return cg_err_set(err, CG_EINVAL, "invalid listen address '%s': bad IPv6 brackets", s);
        }
        host[hlen - 1] = '\0';
        rc = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)addr);
    } else if (strcmp(host, "localhost") == 0) {
        rc = uv_ip4_addr("127.0.0.1", (int)port, (struct sockaddr_in *)addr);
    } else if (strchr(host, ':') != NULL) {
        return cg_err_set(err, CG_EINVAL,
                          "invalid listen address '%s': put an IPv6 address in brackets", s);
    } else {
        /* uv_ip4_addr (inet_pton) accepts only dotted quads, no host names */
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr);
    }
    if (rc < 0) {
        return cg_err_set(err, CG_EINVAL, "invalid listen address '%s': not an IP address", s);
    }
    return 0;
}

int cg_httpd_start(struct cg_httpd **out, uv_loop_t *loop, const char *listen_addr,
                   struct cg_err *err)
{
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    if (listen_addr == NULL) {
        return cg_err_set(err, CG_EINVAL, "no listen address");
    }
    int rc = parse_addr(listen_addr, &addr, err);
    if (rc < 0) {
        return rc;
    }
    struct cg_httpd *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    h->loop = loop;
    h->max_conns = CG_HTTPD_MAX_CONNS;
    h->timeout_ms = CG_HTTPD_TIMEOUT_MS;
    rc = uv_tcp_init(loop, &h->listener);
    if (rc < 0) {
        free(h);
        return cg_err_set(err, CG_EIO, "cannot listen on '%s': %s", listen_addr, uv_strerror(rc));
    }
    h->listener.data = h;
    h->listener_open = 1;
    rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection);
    }
    /* The server runs beside other work on the same loop (watch's checks): none of its handles
     * may keep that work's uv_run from returning, so they are all unreferenced. */
    uv_unref((uv_handle_t *)&h->listener);
    struct sockaddr_storage bound;
    int blen = (int)sizeof(bound);
    if (rc == 0) {
        rc = uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &blen);
    }
    if (rc < 0) {
        cg_err_set(err, CG_EIO, "cannot listen on '%s': %s", listen_addr, uv_strerror(rc));
        h->closing = 1;
        uv_close((uv_handle_t *)&h->listener, listener_closed);
        return CG_EIO;
    }
    h->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    CG_LOG(CG_LOG_DEBUG, "httpd", "listening on '%s' (port %d)", listen_addr, h->port);
    *out = h;
    return 0;
}

int cg_httpd_route(struct cg_httpd *h, const char *path, cg_httpd_handler *fn, void *data)
{
    if (h == NULL || path == NULL || path[0] != '/' || fn == NULL || h->closing) {
        return CG_EINVAL;
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].path, path) == 0) {
            return CG_EINVAL;
        }
    }
    struct route *nr = realloc(h->routes, (h->nroutes + 1) * sizeof(*nr));
    if (nr == NULL) {
        return CG_ENOMEM;
    }
    h->routes = nr;
    char *p = strdup(path);
    if (p == NULL) {
        return CG_ENOMEM;
    }
    h->routes[h->nroutes++] = (struct route){.path = p, .fn = fn, .data = data};
    return 0;
}

void cg_httpd_set_limits(struct cg_httpd *h, int max_conns, long timeout_ms)
{
    if (max_conns > 0) {
        h->max_conns = max_conns;
    }
    if (timeout_ms > 0) {
        h->timeout_ms = timeout_ms;
    }
}

int cg_httpd_port(const struct cg_httpd *h)
{
    return h->port;
}

int cg_httpd_active(const struct cg_httpd *h)
{
    return h->nconns;
}

unsigned long cg_httpd_served(const struct cg_httpd *h)
{
    return h->served;
}

void cg_httpd_close(struct cg_httpd *h)
{
    if (h == NULL || h->closing) {
        return;
    }
    h->closing = 1;
    uv_close((uv_handle_t *)&h->listener, listener_closed);
    /* conn_close only marks and schedules: every conn stays linked until its callbacks run. */
    for (struct conn *c = h->conns; c != NULL; c = c->next) {
        conn_close(c);
    }
}
