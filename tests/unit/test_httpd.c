/* Unit tests for agent/httpd: the request parser, and a real server on 127.0.0.1:0 driven by
 * blocking socket clients in a thread while the loop runs on the main thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_buf.h"
#include "cg_err.h"
#include "httpd.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- parser ---- */

struct parsed {
    char method[CG_HTTPD_METHOD_MAX];
    char path[CG_HTTPD_PATH_MAX];
    size_t consumed;
};

static int parse(const char *s, size_t len, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    return cg_httpd_parse_request(s, len, p->method, sizeof(p->method), p->path, sizeof(p->path),
                                  &p->consumed);
}

static int parse_str(const char *s, struct parsed *p)
{
    return parse(s, strlen(s), p);
}

static void test_parse_complete(void **state)
{
    (void)state;
    struct parsed p;
    const char *req = "GET /healthz HTTP/1.1\r\nHost: localhost:9090\r\nUser-Agent: kube-probe/1.29"
                      "\r\nAccept: */*\r\n\r\n";
    assert_int_equal(parse_str(req, &p), 0);
    assert_string_equal(p.method, "GET");
    assert_string_equal(p.path, "/healthz");
    assert_int_equal(p.consumed, strlen(req));

    /* query strings are not part of the path; bytes after the head are not consumed */
    const char *q = "HEAD /metrics?name[]=x&y=%20 HTTP/1.0\r\n\r\nextra";
    assert_int_equal(parse_str(q, &p), 0);
    assert_string_equal(p.method, "HEAD");
    assert_string_equal(p.path, "/metrics");
    assert_int_equal(p.consumed, strlen(q) - strlen("extra"));

    /* other methods parse fine: refusing them (405) is the server's business */
    assert_int_equal(parse_str("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &p), 0);
    assert_string_equal(p.method, "POST");
    assert_int_equal(parse_str("DELETE / HTTP/1.1\r\n\r\n", &p), 0);
    assert_string_equal(p.method, "DELETE");
    assert_string_equal(p.path, "/");
    /* empty header values and obs-text are allowed */
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nX-Empty:\r\nX-Utf8: caf\xc3\xa9\r\n\r\n", &p), 0);
}

static void test_parse_pieces(void **state)
{
    (void)state;
    struct parsed p;
    const char *req = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n\r\n";
    size_t len = strlen(req);
    /* every prefix is "need more", the whole is complete */
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(parse(req, i, &p), 1);
    }
    assert_int_equal(parse(req, len, &p), 0);
    assert_string_equal(p.path, "/metrics");
    assert_int_equal(p.consumed, len);
}

static void test_parse_line_ends(void **state)
{
    (void)state;
    struct parsed p;
    const char *lf = "GET /a HTTP/1.1\nHost: x\n\n";
    assert_int_equal(parse_str(lf, &p), 0);
    assert_int_equal(p.consumed, strlen(lf));
    const char *mixed = "GET /a HTTP/1.1\r\nHost: x\n\r\n";
    assert_int_equal(parse_str(mixed, &p), 0);
    assert_int_equal(p.consumed, strlen(mixed));
    /* a CR not followed by LF */
    assert_int_equal(parse_str("GET /a HTTP/1.1\rHost: x\r\n\r\n", &p), 400);
    assert_int_equal(parse_str("GET /a HTTP/1.1\r\nHost: x\ry\r\n\r\n", &p), 400);
    assert_int_equal(parse_str("GET /a HTTP/1.1\r\n\r\r\n", &p), 400);
    /* a CR at the very end may still get its LF */
    assert_int_equal(parse_str("GET /a HTTP/1.1\r", &p), 1);
    assert_int_equal(parse_str("GET /a HTTP/1.1\r\nHost: x\r", &p), 1);
    assert_int_equal(parse_str("GET /a HTTP/1.1\r\n\r", &p), 1);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    struct parsed p;
    static const char *const bad[] = {
        "G@T / HTTP/1.1\r\n\r\n",         /* not a token */
        "GET  / HTTP/1.1\r\n\r\n",        /* two spaces */
        " GET / HTTP/1.1\r\n\r\n",        /* leading space */
        "\r\nGET / HTTP/1.1\r\n\r\n",     /* empty line first */
        "GET\r\n\r\n",                    /* HTTP/0.9 style */
        "GET /\r\n\r\n",                  /* no version */
        "GET / HTTP/2.0\r\n\r\n",         /* unsupported version */
        "GET / HTTP/1.1x\r\n\r\n",        /* trailing junk */
        "GET / http/1.1\r\n\r\n",         /* case matters */
        "GET http://x/ HTTP/1.1\r\n\r\n", /* absolute-form */
        "OPTIONS * HTTP/1.1\r\n\r\n",     /* asterisk-form */
        "GET /a#frag HTTP/1.1\r\n\r\n",   /* fragments never reach servers */
        "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before colon */
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",             /* no colon */
        "GET / HTTP/1.1\r\n: x\r\n\r\n",                /* empty name */
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
        "GET / HTTP/1.1\r\nX: a\x01 b\r\n\r\n",         /* control byte */
        "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
        "GETTINGVERYLONGMETHOD / HTTP/1.1\r\n\r\n", /* over the method buffer */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_str(bad[i], &p) != 400) {
            fail_msg("case %zu (%s) was not refused with 400", i, bad[i]);
        }
    }
    /* binary garbage (a TLS ClientHello) is refused from its first bytes, without waiting */
    assert_int_equal(parse("\x16\x03\x01\x02\x00", 5, &p), 400);
    assert_int_equal(parse("GET /\x00", 6, &p), 400);
    assert_int_equal(parse("", 0, &p), 1);
}

static void test_parse_caps(void **state)
{
    (void)state;
    struct parsed p;
    struct cg_buf b;
    cg_buf_init(&b, 0);

    /* a path longer than the path buffer: 414 as soon as it shows */
    cg_buf_append_str(&b, "GET /");
    for (int i = 0; i < CG_HTTPD_PATH_MAX; i++) {
        cg_buf_append_str(&b, "a");
    }
    assert_int_equal(parse(b.data, b.len, &p), 414);
    /* ... but a long query string is fine until the request line passes the head cap */
    cg_buf_reset(&b);
    cg_buf_append_str(&b, "GET /?");
    while (b.len < CG_HTTPD_MAX_HEAD - 100) {
        cg_buf_append_str(&b, "q");
    }
    assert_int_equal(parse(b.data, b.len, &p), 1);
    while (b.len < CG_HTTPD_MAX_HEAD + 100) {
        cg_buf_append_str(&b, "q");
    }
    assert_int_equal(parse(b.data, b.len, &p), 414);

    /* 64 headers are fine, 65 are not */
    cg_buf_reset(&b);
    cg_buf_append_str(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < CG_HTTPD_MAX_HEADERS; i++) {
        cg_buf_printf(&b, "X-H%d: v\r\n", i);
    }
    size_t at64 = b.len;
    cg_buf_append_str(&b, "\r\n");
    assert_int_equal(parse(b.data, b.len, &p), 0);
    b.len = at64;
    cg_buf_append_str(&b, "X-Last: v\r\n\r\n");
    assert_int_equal(parse(b.data, b.len, &p), 431);

    /* headers beyond 8 KiB: 431 once the cap is reached, even without an end in sight */
    cg_buf_reset(&b);
    cg_buf_append_str(&b, "GET / HTTP/1.1\r\nX-Big: ");
    while (b.len < CG_HTTPD_MAX_HEAD - 1) {
        cg_buf_append_str(&b, "v");
    }
    assert_int_equal(parse(b.data, b.len, &p), 1);
    cg_buf_append_str(&b, "v");
    assert_int_equal(parse(b.data, b.len, &p), 431);
    /* the head ending exactly at the cap is accepted */
    cg_buf_reset(&b);
    cg_buf_append_str(&b, "GET / HTTP/1.1\r\nX-Big: ");
    while (b.len < CG_HTTPD_MAX_HEAD - 4) {
        cg_buf_append_str(&b, "v");
    }
    cg_buf_append_str(&b, "\r\n\r\n");
    assert_int_equal(b.len, CG_HTTPD_MAX_HEAD);
    assert_int_equal(parse(b.data, b.len, &p), 0);
    assert_int_equal(p.consumed, CG_HTTPD_MAX_HEAD);
    cg_buf_cleanup(&b);
}

/* ---- server ---- */

/* cmocka's assertions longjmp, which only the main thread may do: the client thread records
 * failures here and the main thread reports them after joining it. */
static char failures[4096];
static int nfailures;

static void record_failure(int line, const char *what)
{
    size_t used = strlen(failures);
    snprintf(failures + used, sizeof(failures) - used, "line %d: %s\n", line, what);
    nfailures++;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            record_failure(__LINE__, #cond);                                                       \
        }                                                                                          \
    } while (0)

struct server {
    uv_loop_t loop;
    uv_async_t stop;
    struct cg_httpd *h;
    struct cg_metrics *m;
    int port;
    void (*client)(struct server *);
};

static int healthz(const char *path, struct cg_buf *body, const char **content_type, void *data)
{
    cg_buf_append_str(body, "ok");
    return 200;
}

static int broken(const char *path, struct cg_buf *body, const char **content_type, void *data)
{
    *content_type = "text/plain\r\nX-Injected: 1";
    return 200;
}

static void *client_main(void *arg)
{
    struct server *s = arg;
    s->client(s);
    uv_async_send(&s->stop);
    return NULL;
}

static void on_stop(uv_async_t *a)
{
    struct server *s = a->data;
    cg_httpd_close(s->h);
    uv_close((uv_handle_t *)a, NULL);
}

static void run_server(void (*client)(struct server *), int max_conns, long timeout_ms)
{
    struct server s;
    memset(&s, 0, sizeof(s));
    failures[0] = '\0';
    nfailures = 0;
    s.client = client;
    assert_int_equal(uv_loop_init(&s.loop), 0);
    struct cg_err err = {0};
    assert_int_equal(cg_httpd_start(&s.h, &s.loop, "127.0.0.1:0", &err), 0);
    s.port = cg_httpd_port(s.h);
    assert_true(s.port > 0);
    cg_httpd_set_limits(s.h, max_conns, timeout_ms);
    s.m = cg_metrics_new();
    assert_non_null(s.m);
    assert_int_equal(cg_metrics_counter(s.m, "cloudgrant_checks_total", "Drift checks run."), 0);
    assert_int_equal(cg_metrics_add(s.m, "cloudgrant_checks_total", 3, "result", "ok", NULL), 0);
    assert_int_equal(cg_httpd_route(s.h, "/healthz", healthz, NULL), 0);
    assert_int_equal(cg_httpd_route(s.h, "/metrics", cg_metrics_http_handler, s.m), 0);
    assert_int_equal(cg_httpd_route(s.h, "/broken", broken, NULL), 0);
    assert_int_equal(cg_httpd_route(s.h, "/healthz", healthz, NULL), CG_EINVAL);
    assert_int_equal(cg_httpd_route(s.h, "healthz", healthz, NULL), CG_EINVAL);
    assert_int_equal(uv_async_init(&s.loop, &s.stop, on_stop), 0);
    s.stop.data = &s;

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &s), 0);
    assert_int_equal(uv_run(&s.loop, UV_RUN_DEFAULT), 0);
    pthread_join(th, NULL);
    /* every handle closed and the server freed itself */
    assert_int_equal(uv_loop_close(&s.loop), 0);
    cg_metrics_free(s.m);
    if (nfailures > 0) {
        fail_msg("%d client check(s) failed:\n%s", nfailures, failures);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until EOF; -1 on error or timeout. A reset after the response counts as its end. */
static ssize_t read_all(int fd, char *out, size_t cap)
{
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            return -1;
        }
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET && len > 0)) {
            break;
        }
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        len += (size_t)r;
    }
    out[len] = '\0';
    return (ssize_t)len;
}

/* One request on a fresh connection; the whole response (until the server closes) in out. */
static int exchange(int port, const char *req, size_t len, char *out, size_t cap)
{
    int fd = dial(port);
    if (fd < 0) {
        return -1;
    }
    int rc = send_all(fd, req, len) == 0 && read_all(fd, out, cap) >= 0 ? 0 : -1;
    close(fd);
    return rc;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b != NULL ? b + 4 : "<no head end>";
}

static int status_of(const char *resp)
{
    int st = 0;
    return sscanf(resp, "HTTP/1.1 %d ", &st) == 1 ? st : -1;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    while (readdir(d) != NULL) {
        n++;
    }
    closedir(d);
    return n;
}

static char resp[64 * 1024];

#define GET(s, req) exchange((s)->port, (req), strlen(req), resp, sizeof(resp))

static void client_routes(struct server *s)
{
    CHECK(GET(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    CHECK(status_of(resp) == 200);
    CHECK(strcmp(body_of(resp), "ok") == 0);
    CHECK(strstr(resp, "\r\nContent-Length: 2\r\n") != NULL);
    CHECK(strstr(resp, "\r\nConnection: close\r\n") != NULL);

    /* LF-only clients and query strings */
    CHECK(GET(s, "GET /healthz?probe=1 HTTP/1.0\n\n") == 0);
    CHECK(status_of(resp) == 200 && strcmp(body_of(resp), "ok") == 0);

    CHECK(GET(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    CHECK(status_of(resp) == 200);
    CHECK(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL);
    CHECK(strstr(body_of(resp), "cloudgrant_checks_total{result=\"ok\"} 3\n") != NULL);

    /* HEAD: the GET's headers, no body */
    CHECK(GET(s, "HEAD /healthz HTTP/1.1\r\n\r\n") == 0);
    CHECK(status_of(resp) == 200);
    CHECK(strstr(resp, "\r\nContent-Length: 2\r\n") != NULL);
    CHECK(strcmp(body_of(resp), "") == 0);

    /* errors carry fixed bodies: nothing of the request is reflected */
    CHECK(GET(s, "GET /nope-MARKER HTTP/1.1\r\nX-Echo: MARKER\r\n\r\n") == 0);
    CHECK(status_of(resp) == 404);
    CHECK(strstr(resp, "MARKER") == NULL);
    CHECK(GET(s, "POST /healthz HTTP/1.1\r\nContent-Length: 6\r\n\r\nMARKER") == 0);
    CHECK(status_of(resp) == 405);
    CHECK(strstr(resp, "\r\nAllow: GET, HEAD\r\n") != NULL);
    CHECK(strstr(resp, "MARKER") == NULL);
    CHECK(GET(s, "get /healthz HTTP/1.1\r\n\r\n") == 0); /* methods are case-sensitive */
    CHECK(status_of(resp) == 405);
    CHECK(GET(s, "GET /<script>MARKER HTTP/1.1\r\n\r\n") == 0);
    CHECK(status_of(resp) == 404 && strstr(resp, "MARKER") == NULL);
    CHECK(GET(s, "\x16\x03\x01\x02\x00MARKER") == 0);
    CHECK(status_of(resp) == 400 && strstr(resp, "MARKER") == NULL);
    CHECK(GET(s, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n") == 0);
    CHECK(status_of(resp) == 400);

    /* a handler's bad content type becomes a 500, not a header injection */
    CHECK(GET(s, "GET /broken HTTP/1.1\r\n\r\n") == 0);
    CHECK(status_of(resp) == 500 && strstr(resp, "X-Injected") == NULL);

    /* over the caps */
    static char big[CG_HTTPD_MAX_HEAD * 2];
    size_t n = (size_t)snprintf(big, sizeof(big), "GET /");
    while (n < CG_HTTPD_PATH_MAX + 10) {
        big[n++] = 'a';
    }
    n += (size_t)snprintf(big + n, sizeof(big) - n, " HTTP/1.1\r\n\r\n");
    CHECK(exchange(s->port, big, n, resp, sizeof(resp)) == 0);
    CHECK(status_of(resp) == 414);
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-H%d: v\r\n", i);
    }
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    CHECK(exchange(s->port, big, n, resp, sizeof(resp)) == 0);
    CHECK(status_of(resp) == 431);
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: ");
    while (n < sizeof(big) - 5) {
        big[n++] = 'v';
    }
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n\r\n");
    /* the server answers and closes while we may still be sending: a send error is fine */
    int fd = dial(s->port);
    CHECK(fd >= 0);
    send_all(fd, big, n);
    CHECK(read_all(fd, resp, sizeof(resp)) >= 0);
    CHECK(status_of(resp) == 431);
    close(fd);

    /* a request in many small pieces */
    fd = dial(s->port);
    CHECK(fd >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t i = 0; req[i] != '\0'; i++) {
        send_all(fd, req + i, 1);
        usleep(1000);
    }
    CHECK(read_all(fd, resp, sizeof(resp)) >= 0);
    CHECK(status_of(resp) == 200 && strcmp(body_of(resp), "ok") == 0);
    close(fd);

    /* a client that goes away without a complete request */
    fd = dial(s->port);
    CHECK(fd >= 0);
    send_all(fd, "GET /hea", 8);
    close(fd);
}

static void test_server_routes(void **state)
{
    (void)state;
    run_server(client_routes, 0, 0);
}

static void client_slowloris(struct server *s)
{
    /* idle after a partial request: closed at the deadline (300 ms here) */
    int fd = dial(s->port);
    CHECK(fd >= 0);
    CHECK(send_all(fd, "GET /healthz HTTP/1.1\r\n", 23) == 0);
    double t0 = now_s();
    char buf[256];
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    double dt = now_s() - t0;
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    CHECK(dt > 0.2 && dt < 2.0);
    close(fd);

    /* trickling a header byte every 20 ms does not extend the deadline */
    fd = dial(s->port);
    CHECK(fd >= 0);
    CHECK(send_all(fd, "GET /healthz HTTP/1.1\r\nX-Slow: ", 31) == 0);
    t0 = now_s();
    int closed = 0;
    while (!closed && now_s() - t0 < 3.0) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) < 0) {
            closed = 1;
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) > 0) {
            r = recv(fd, buf, sizeof(buf), 0);
            closed = r <= 0;
            CHECK(r <= 0); /* no response, just a close */
        }
    }
    dt = now_s() - t0;
    CHECK(closed);
    CHECK(dt < 1.5);
    close(fd);

    /* a connection that never sends anything */
    fd = dial(s->port);
    CHECK(fd >= 0);
    r = recv(fd, buf, sizeof(buf), 0);
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    close(fd);
}

static void test_server_slowloris(void **state)
{
    (void)state;
    run_server(client_slowloris, 0, 300);
}

static void client_many(struct server *s)
{
    /* warm up, so lazily opened descriptors (if any) exist before the first count */
    CHECK(GET(s, "GET /healthz HTTP/1.1\r\n\r\n") == 0);
    int before = count_fds();
    CHECK(before > 0);
    for (int i = 0; i < 100; i++) {
        CHECK(GET(s, "GET /metrics HTTP/1.1\r\n\r\n") == 0);
        CHECK(status_of(resp) == 200);
    }
    int after = count_fds();
    CHECK(after == before);
}

static void test_server_many_connections(void **state)
{
    (void)state;
    run_server(client_many, 0, 0);
}

static void client_cap(struct server *s)
{
    /* two idle connections fill the two slots; a third waits in the backlog until the deadline
     * (500 ms) frees a slot, then is served normally */
    int idle1 = dial(s->port);
    int idle2 = dial(s->port);
    CHECK(idle1 >= 0 && idle2 >= 0);
    usleep(100 * 1000);
    double t0 = now_s();
    CHECK(GET(s, "GET /healthz HTTP/1.1\r\n\r\n") == 0);
    double dt = now_s() - t0;
    CHECK(status_of(resp) == 200);
    CHECK(dt > 0.25 && dt < 3.0);
    close(idle1);
    close(idle2);
}

static void test_server_connection_cap(void **state)
{
    (void)state;
    run_server(client_cap, 2, 500);
}

static void test_start_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct cg_httpd *h = NULL;
    struct cg_err err = {0};
    static const char *const bad[] = {
        "",         "9090",    "127.0.0.1", "1.2.3.4:",        "1.2.3.4:99999", "1.2.3.4:-1",
        "1.2.3:80", "[::1:80", "::1:80",    "host.example:80", "127.0.0.1:80x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cg_httpd_start(&h, &loop, bad[i], &err) != CG_EINVAL) {
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_non_null(strstr(err.msg, "invalid listen address"));
    }
    assert_int_equal(cg_httpd_start(&h, &loop, NULL, &err), CG_EINVAL);

    struct cg_httpd *a = NULL;
    assert_int_equal(cg_httpd_start(&a, &loop, "127.0.0.1:0", &err), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cg_httpd_port(a));
    assert_int_equal(cg_httpd_start(&h, &loop, addr, &err), CG_EIO);
    assert_non_null(strstr(err.msg, "address already in use"));
    assert_non_null(strstr(err.msg, addr));

    /* every interface, localhost, and IPv6 loopback when the host has it */
    struct cg_httpd *b = NULL, *c = NULL, *d = NULL;
    assert_int_equal(cg_httpd_start(&b, &loop, ":0", &err), 0);
    assert_true(cg_httpd_port(b) > 0);
    assert_int_equal(cg_httpd_start(&c, &loop, "localhost:0", &err), 0);
    if (cg_httpd_start(&d, &loop, "[::1]:0", &err) == 0) {
        assert_true(cg_httpd_port(d) > 0);
        cg_httpd_close(d);
    }
    cg_httpd_close(a);
    cg_httpd_close(b);
    cg_httpd_close(c);
    cg_httpd_close(NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_complete),
        cmocka_unit_test(test_parse_pieces),
        cmocka_unit_test(test_parse_line_ends),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_server_routes),
        cmocka_unit_test(test_server_slowloris),
        cmocka_unit_test(test_server_many_connections),
        cmocka_unit_test(test_server_connection_cap),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
