/* http_mock: see http_mock.h. Test support code: allocation failures abort. */
#include "http_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RAW_CAP   16384
#define BIG_CHUNK 65536

struct rec {
    char *method;
    char *target;
    char **names;
    char **values;
    int n;
    char *body;
    size_t body_len;
};

struct script {
    struct http_mock_resp r;
    int left; /* -1 = forever */
};

struct conn;

struct http_mock {
    uv_loop_t *loop;
    uv_tcp_t server;
    int port;
    struct script *script;
    int nscript;
    struct http_mock_resp def;
    struct rec *recs;
    int nrecs;
    char raw[RAW_CAP];
    size_t raw_len;
    struct conn *conns;
    int nconns_total;
    int nopen; /* server + live connections */
    int closing;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct http_mock *m;
    char *in;
    size_t len;
    size_t cap;
    int busy;
    int closing;
    int nopen;
    int close_after;
    struct http_mock_resp resp;
    size_t big_left;
    struct conn *prev;
    struct conn *next;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    char *buf; /* owned, or NULL for the shared big-body chunk */
    int last;  /* completes the response */
};

static char big_chunk[BIG_CHUNK];

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void mock_unref(struct http_mock *m)
{
    if (--m->nopen == 0 && m->closing) {
        for (int i = 0; i < m->nrecs; i++) {
            struct rec *r = &m->recs[i];
            free(r->method);
            free(r->target);
            for (int j = 0; j < r->n; j++) {
                free(r->names[j]);
                free(r->values[j]);
            }
            free(r->names);
            free(r->values);
            free(r->body);
        }
        free(m->recs);
        free(m->script);
        free(m);
    }
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->nopen == 0) {
        struct http_mock *m = c->m;
        free(c->in);
        free(c);
        mock_unref(m);
    }
}

static void conn_unlink(struct conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        c->m->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
}

static void conn_close(struct conn *c, int reset)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    conn_unlink(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    if (!reset || uv_tcp_close_reset(&c->tcp, conn_handle_closed) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    }
}

static void process(struct conn *c);

static void respond_done(struct conn *c)
{
    c->busy = 0;
    if (c->close_after) {
        conn_close(c, 0);
    } else {
        process(c);
    }
}

static void on_written(uv_write_t *req, int status);

static void write_buf(struct conn *c, char *owned, const char *data, size_t len, int last)
{
    struct wreq *w = xmalloc(sizeof(*w));
    w->c = c;
    w->buf = owned;
    w->last = last;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w->buf);
        free(w);
        conn_close(c, 0);
    }
}

static void write_big(struct conn *c)
{
    size_t n = c->big_left < BIG_CHUNK ? c->big_left : BIG_CHUNK;
    c->big_left -= n;
    write_buf(c, NULL, big_chunk, n, c->big_left == 0);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    int last = w->last;
    free(w->buf);
    free(w);
    if (status < 0 || c->closing) {
        conn_close(c, 0); /* the client went away (a capped body, a timeout) */
        return;
    }
    if (c->big_left > 0) {
        write_big(c); /* one chunk at a time: the client sets the pace */
    } else if (last) {
        respond_done(c);
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

static void act(struct conn *c)
{
    const struct http_mock_resp *r = &c->resp;
    switch (r->action) {
    case HTTP_MOCK_RESET:
        conn_close(c, 1);
        return;
    case HTTP_MOCK_CLOSE:
        conn_close(c, 0);
        return;
    case HTTP_MOCK_HANG:
        return;
    case HTTP_MOCK_RESPOND:
        break;
    }
    const char *extra = r->headers != NULL ? r->headers : "";
    c->close_after = strcasestr(extra, "Connection: close") != NULL;
    if (r->raw != NULL) {
        size_t n = strlen(r->raw);
        char *copy = xstrndup(r->raw, n);
        write_buf(c, copy, copy, n, 1);
        return;
    }
    size_t body_len = r->big_body > 0 ? r->big_body : r->body != NULL ? strlen(r->body) : 0;
    int status = r->status > 0 ? r->status : 200;
    size_t cap = 256 + strlen(extra) + (r->big_body > 0 ? 0 : body_len);
    char *buf = xmalloc(cap);
    int n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                     reason(status), body_len, extra);
    size_t len = (size_t)n;
    if (r->big_body == 0 && body_len > 0) {
        memcpy(buf + len, r->body, body_len);
        len += body_len;
    }
    c->big_left = r->big_body;
    write_buf(c, buf, buf, len, r->big_body == 0);
}

static void on_delay(uv_timer_t *t)
{
    act(t->data);
}

static const struct http_mock_resp *pick(struct http_mock *m, const char *target)
{
    for (int i = 0; i < m->nscript; i++) {
        struct script *s = &m->script[i];
        if (s->left == 0) {
            continue;
        }
        if (s->r.path != NULL && strncmp(target, s->r.path, strlen(s->r.path)) != 0) {
            continue;
        }
        if (s->left > 0) {
            s->left--;
        }
        return &s->r;
    }
    return &m->def;
}

static void record(struct http_mock *m, const char *head, size_t head_len, const char *body,
                   size_t body_len, struct rec **out)
{
    m->recs = realloc(m->recs, (size_t)(m->nrecs + 1) * sizeof(*m->recs));
    if (m->recs == NULL) {
        abort();
    }
    struct rec *r = &m->recs[m->nrecs++];
    memset(r, 0, sizeof(*r));
    const char *end = head + head_len;
    const char *eol = memmem(head, head_len, "\r\n", 2);
    const char *sp1 = memchr(head, ' ', (size_t)(eol - head));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    r->method = xstrndup(head, sp1 ? (size_t)(sp1 - head) : 0);
    r->target = sp2 ? xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)) : xstrndup("", 0);
    for (const char *p = eol + 2; p < end;) {
        const char *le = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (le == NULL) {
            le = end;
        }
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon != NULL) {
            const char *v = colon + 1;
            while (v < le && *v == ' ') {
                v++;
            }
            r->names = realloc(r->names, (size_t)(r->n + 1) * sizeof(char *));
            r->values = realloc(r->values, (size_t)(r->n + 1) * sizeof(char *));
            if (r->names == NULL || r->values == NULL) {
                abort();
            }
            r->names[r->n] = xstrndup(p, (size_t)(colon - p));
            r->values[r->n] = xstrndup(v, (size_t)(le - v));
            r->n++;
        }
        p = le + 2;
    }
    r->body = xstrndup(body, body_len);
    r->body_len = body_len;
    *out = r;
}

static void process(struct conn *c)
{
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n";
    struct http_mock *m = c->m;
    if (c->busy || c->closing || c->len == 0) {
        return;
    }
    if ((unsigned char)c->in[0] == 0x16) {
        /* a TLS ClientHello on a plain port: answer like any HTTP server would */
        c->busy = 1;
        c->close_after = 1;
        c->len = 0;
        char *copy = xstrndup(bad, sizeof(bad) - 1);
        write_buf(c, copy, copy, sizeof(bad) - 1, 1);
        return;
    }
    const char *hend = memmem(c->in, c->len, "\r\n\r\n", 4);
    if (hend == NULL) {
        return;
    }
    size_t head_len = (size_t)(hend - c->in) + 2;
    size_t clen = 0;
    const char *cl = NULL;
    for (const char *p = c->in; p < hend; p++) {
        if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0) {
            cl = p + 15;
            break;
        }
    }
    if (cl != NULL) {
        clen = strtoul(cl, NULL, 10);
    }
    size_t total = head_len + 2 + clen;
    if (c->len < total) {
        return;
    }
    struct rec *r;
    record(m, c->in, head_len, c->in + head_len + 2, clen, &r);
    memmove(c->in, c->in + total, c->len - total);
    c->len -= total;
    c->resp = *pick(m, r->target);
    c->busy = 1;
    if (c->resp.delay_ms > 0) {
        uv_timer_start(&c->timer, on_delay, (uint64_t)c->resp.delay_ms, 0);
    } else {
        act(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    if (c->cap - c->len < 65536) {
        c->cap = c->cap * 2 + 65536;
        c->in = realloc(c->in, c->cap);
        if (c->in == NULL) {
            abort();
        }
    }
    *buf = uv_buf_init(c->in + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct http_mock *m = c->m;
    if (nread < 0) {
        conn_close(c, 0);
        return;
    }
    if (nread > 0) {
        size_t n = (size_t)nread;
        size_t room = RAW_CAP - m->raw_len;
        memcpy(m->raw + m->raw_len, buf->base, n < room ? n : room);
        m->raw_len += n < room ? n : room;
        c->len += n;
        process(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct http_mock *m = server->data;
    if (status < 0 || m->closing) {
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        abort();
    }
    c->m = m;
    uv_tcp_init(m->loop, &c->tcp);
    uv_timer_init(m->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->nopen = 2;
    m->nopen++;
    c->next = m->conns;
    if (m->conns != NULL) {
        m->conns->prev = c;
    }
    m->conns = c;
    uv_unref((uv_handle_t *)&c->tcp);
    uv_unref((uv_handle_t *)&c->timer);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, 0);
        return;
    }
    m->nconns_total++;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void server_closed(uv_handle_t *h)
{
    mock_unref(h->data);
}

struct http_mock *http_mock_new(uv_loop_t *loop)
{
    struct http_mock *m = calloc(1, sizeof(*m));
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof(name);
    if (m == NULL) {
        abort();
    }
    memset(big_chunk, 'x', sizeof(big_chunk));
    m->loop = loop;
    m->def.body = "ok";
    uv_tcp_init(loop, &m->server);
    m->server.data = m;
    m->nopen = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&m->server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&m->server, 128, on_connection) != 0 ||
        uv_tcp_getsockname(&m->server, (struct sockaddr *)&name, &namelen) != 0) {
        abort();
    }
    m->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    uv_unref((uv_handle_t *)&m->server);
    return m;
}

int http_mock_port(const struct http_mock *m)
{
    return m->port;
}

void http_mock_push(struct http_mock *m, const struct http_mock_resp *r)
{
    m->script = realloc(m->script, (size_t)(m->nscript + 1) * sizeof(*m->script));
    if (m->script == NULL) {
        abort();
    }
    m->script[m->nscript].r = *r;
    m->script[m->nscript].left = r->uses == 0 ? 1 : r->uses;
    m->nscript++;
}

void http_mock_set_default(struct http_mock *m, const struct http_mock_resp *r)
{
    m->def = *r;
}

int http_mock_count(const struct http_mock *m)
{
    return m->nrecs;
}

int http_mock_connections(const struct http_mock *m)
{
    return m->nconns_total;
}

const char *http_mock_req_method(const struct http_mock *m, int i)
{
    return i >= 0 && i < m->nrecs ? m->recs[i].method : NULL;
}

const char *http_mock_req_target(const struct http_mock *m, int i)
{
    return i >= 0 && i < m->nrecs ? m->recs[i].target : NULL;
}

const char *http_mock_req_header(const struct http_mock *m, int i, const char *name)
{
    if (i < 0 || i >= m->nrecs) {
        return NULL;
    }
    for (int j = 0; j < m->recs[i].n; j++) {
        if (strcasecmp(m->recs[i].names[j], name) == 0) {
            return m->recs[i].values[j];
        }
    }
    return NULL;
}

int http_mock_req_header_count(const struct http_mock *m, int i, const char *name)
{
    int n = 0;
    if (i < 0 || i >= m->nrecs) {
        return 0;
    }
    for (int j = 0; j < m->recs[i].n; j++) {
        n += strcasecmp(m->recs[i].names[j], name) == 0;
    }
    return n;
}

const char *http_mock_req_body(const struct http_mock *m, int i, size_t *len)
{
    if (i < 0 || i >= m->nrecs) {
        return NULL;
    }
    if (len != NULL) {
        *len = m->recs[i].body_len;
    }
    return m->recs[i].body;
}

const char *http_mock_raw(const struct http_mock *m, size_t *len)
{
    *len = m->raw_len;
    return m->raw;
}

void http_mock_close(struct http_mock *m)
{
    if (m == NULL || m->closing) {
        return;
    }
    m->closing = 1;
    while (m->conns != NULL) {
        conn_close(m->conns, 0);
    }
    uv_close((uv_handle_t *)&m->server, server_closed);
}
