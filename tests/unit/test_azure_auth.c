/* Unit tests for cloud/azure/auth.c: the token-answer parser on canned answers, then the token
 * chain against tests/support/http_mock on a real loop with an injected environment and a
 * frozen clock: the client-secret and workload-identity grants (exact form fields, percent-
 * encoding, the token file re-read), IMDS (URL, Metadata header, numbers as strings, the tid
 * claim, retries), the per-resource cache with its margin and waiters, failures and their
 * messages, and what reaches the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure_auth.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_log.h"
#include "http_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define T0             1700000000
#define TENANT         "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT         "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
#define SECRET         "Q~8Q8~s3cr+t/=&%x.SECRET-CANARY"
#define TOKEN_PATH     "/" TENANT "/oauth2/v2.0/token"
#define IMDS_PATH      "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
#define ARM_RES        "https%3A%2F%2Fmanagement.azure.com%2F"
#define GRAPH_RES      "https%3A%2F%2Fgraph.microsoft.com%2F"
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define NO_SOURCE                                                                                  \
    "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run "  \
    "with AKS workload identity or a managed identity"
#define ANSWER(tok, exp)                                                                           \
    "{\"token_type\":\"Bearer\",\"expires_in\":" exp ",\"ext_expires_in\":" exp                    \
    ",\"access_token\":\"" tok "\"}"
/* a JWT-shaped token whose payload has tid = TENANT (header and payload are base64url JSON) */
#define JWT_WITH_TID                                                                               \
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyIsIn"  \
    "RpZCI6IjcyZjk4OGJmLTg2ZjEtNDFhZi05MWFiLTJkN2NkMDExZGI0NyIsIm9pZCI6IngifQ.c2ln"
/* the same with tid "../../evil", which is no tenant */
#define JWT_BAD_TID                                                                                \
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4IiwidGlkIjoiLi4vLi4vZXZpbCJ9.c2ln"

/* ---- the answer parser --------------------------------------------------------------------- */

struct answer {
    int rc;
    char *token;
    int64_t expires_in;
    struct cg_err err;
};

static void parse(struct answer *a, const char *body, long status)
{
    memset(a, 0, sizeof(*a));
    a->rc = azure_auth_parse_answer(body, body ? strlen(body) : 0, status, &a->token,
                                    &a->expires_in, &a->err);
    if (a->rc == 0) {
        assert_non_null(a->token);
    } else {
        assert_null(a->token);
        assert_int_equal(a->err.code, a->rc);
        assert_int_equal(a->err.http_status, status);
        assert_null(strpbrk(a->err.msg, "\r\n"));
    }
}

static void answer_clear(struct answer *a)
{
    cg_secret_free(a->token);
    a->token = NULL;
}

static void test_parse_answer(void **state)
{
    (void)state;
    struct answer a;
    /* Entra ID: numbers */
    parse(&a, ANSWER("eyJ.a.b", "3599"), 200);
    assert_int_equal(a.rc, 0);
    assert_string_equal(a.token, "eyJ.a.b");
    assert_int_equal(a.expires_in, 3599);
    answer_clear(&a);
    /* IMDS: numbers as strings, and more members */
    parse(&a,
          "{\"access_token\":\"tok\",\"client_id\":\"c\",\"expires_in\":\"86399\",\"expires_on\":"
          "\"1700086399\",\"ext_expires_in\":\"86399\",\"not_before\":\"1700000000\",\"resource\":"
          "\"https://management.azure.com/\",\"token_type\":\"Bearer\"}",
          200);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.expires_in, 86399);
    answer_clear(&a);
    /* a day at most is believed */
    parse(&a, ANSWER("t", "999999999"), 200);
    assert_int_equal(a.expires_in, 86400);
    answer_clear(&a);

    static const char *const unusable[] = {
        ANSWER("t", "0"),
        ANSWER("t", "-5"),
        ANSWER("t", "\"\""),
        ANSWER("t", "\"12x\""),
        ANSWER("t", "\"-1\""),
        ANSWER("t", "\"99999999999999999999999\""),
        ANSWER("t", "1.5"),
        ANSWER("t", "null"),
        "{\"access_token\":\"t\",\"token_type\":\"Bearer\"}",
        ANSWER("a b", "60"),
        ANSWER("a\\r\\nX-Evil: 1", "60"),
        ANSWER("", "60"),
        "{\"access_token\":5,\"expires_in\":60}",
        "{\"access_token\":\"t\",\"expires_in\":60,\"token_type\":\"MAC\"}",
        "[]",
        "not json",
        "",
    };
    for (size_t i = 0; i < sizeof(unusable) / sizeof(unusable[0]); i++) {
        parse(&a, unusable[i], 200);
        if (a.rc != CG_EINVAL) {
            fail_msg("'%s': rc %d", unusable[i], a.rc);
        }
        assert_null(strstr(a.err.msg, "X-Evil"));
    }
    parse(&a, "{\"access_token\":\"t\"}", 200);
    assert_string_equal(a.err.msg, "answer has no valid expires_in");
    parse(&a, ANSWER("a b", "60"), 200);
    assert_string_equal(a.err.msg, "answer has no usable access_token");

    /* Entra ID's error: the first line of the description */
    parse(&a,
          "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
          "secret provided. Ensure the secret being sent in the request is the client secret "
          "value.\\r\\nTrace ID: 0000\\r\\nCorrelation ID: 1111\\r\\nTimestamp: 2026-01-01 "
          "00:00:00Z\",\"error_codes\":[7000215],\"trace_id\":\"0000\"}",
          401);
    assert_int_equal(a.rc, CG_EAUTH);
    assert_string_equal(a.err.msg, "invalid_client: AADSTS7000215: Invalid client secret provided. "
                                   "Ensure the secret being sent in the request is the client "
                                   "secret value.");
    /* IMDS's */
    parse(&a, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}", 400);
    assert_int_equal(a.rc, CG_EAUTH);
    assert_string_equal(a.err.msg, "invalid_request: Identity not found");
    /* the {"error":{"code","message"}} shape too; no description */
    parse(&a, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"no\"}}", 403);
    assert_int_equal(a.rc, CG_EAUTH);
    assert_string_equal(a.err.msg, "Forbidden: no");
    parse(&a, "{\"error\":\"unauthorized_client\"}", 400);
    assert_string_equal(a.err.msg, "unauthorized_client");
    /* an error name that is not an identifier is not quoted; control bytes are not either */
    parse(&a, "{\"error\":\"x\\u001b[31m\",\"error_description\":\"a\\u0007b\\tc\"}", 400);
    assert_string_equal(a.err.msg, "error: a?b c");
    /* a long description is cut */
    char body[2000];
    char desc[1500];
    memset(desc, 'd', sizeof(desc) - 1);
    desc[sizeof(desc) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"error\":\"invalid_grant\",\"error_description\":\"%s\"}",
             desc);
    parse(&a, body, 400);
    assert_true(strlen(a.err.msg) < 400);
    assert_string_equal(a.err.msg + strlen(a.err.msg) - 3, "...");
    /* not OAuth: the status; a 5xx is not about the credentials */
    parse(&a, "<html>gateway</html>", 502);
    assert_int_equal(a.rc, CG_ESTATUS);
    assert_string_equal(a.err.msg, "HTTP 502 (Bad Gateway)");
    parse(&a, "{\"error\":\"server_error\"}", 500);
    assert_int_equal(a.rc, CG_ESTATUS);
    assert_string_equal(a.err.msg, "server_error");
    parse(&a, "", 401);
    assert_int_equal(a.rc, CG_EAUTH);
    assert_string_equal(a.err.msg, "HTTP 401 (Unauthorized)");
    parse(&a, "nope", 400);
    assert_int_equal(a.rc, CG_ESTATUS);
    parse(&a, "{\"access_token\":\"SHOULD-NOT-SHOW\",\"expires_in\":1}", 404);
    assert_int_equal(a.rc, CG_ESTATUS);
    assert_null(strstr(a.err.msg, "SHOULD-NOT-SHOW"));
    parse(&a, NULL, 200);
    assert_int_equal(a.rc, CG_EINVAL);
    assert_int_equal(azure_auth_parse_answer("{}", 2, 200, NULL, NULL, NULL), CG_EINVAL);
}

/* ---- injected environment and clock -------------------------------------------------------- */

#define MAX_ENV 12
static const char *env_names[MAX_ENV];
static const char *env_values[MAX_ENV];
static int env_n;

static void env_set(const char *name, const char *value)
{
    for (int i = 0; i < env_n; i++) {
        if (strcmp(env_names[i], name) == 0) {
            env_values[i] = value;
            return;
        }
    }
    assert_true(env_n < MAX_ENV);
    env_names[env_n] = name;
    env_values[env_n++] = value;
}

static const char *fake_getenv(const char *name)
{
    for (int i = 0; i < env_n; i++) {
        if (strcmp(env_names[i], name) == 0) {
            return env_values[i];
        }
    }
    return NULL;
}

static int64_t clock_now;

static int64_t fake_now(void)
{
    return clock_now;
}

/* ---- loop, mock, temp dir ------------------------------------------------------------------ */

struct t {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    char authority[80]; /* http://127.0.0.1:<port>/ */
    char imds[80];      /* http://127.0.0.1:<port> */
    char dir[64];
    char token_file[128];
    struct azure_auth_env env;
};

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    struct cg_err err = {0};
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_int_equal(cg_http_new(&t->h, &t->loop, &err), 0);
    t->m = http_mock_new(&t->loop);
    snprintf(t->authority, sizeof(t->authority), "http://127.0.0.1:%d/", http_mock_port(t->m));
    snprintf(t->imds, sizeof(t->imds), "http://127.0.0.1:%d", http_mock_port(t->m));
    snprintf(t->dir, sizeof(t->dir), "/tmp/cg-azure-auth-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->token_file, sizeof(t->token_file), "%s/azure-identity-token", t->dir);
    env_n = 0;
    env_set("AZURE_TENANT_ID", TENANT);
    env_set("AZURE_CLIENT_ID", CLIENT);
    env_set("AZURE_CLIENT_SECRET", SECRET);
    env_set("AZURE_AUTHORITY_HOST", t->authority); /* with the webhook's trailing '/' */
    clock_now = T0;
    t->env.getenv = fake_getenv;
    t->env.now = fake_now;
    t->env.no_imds = 1; /* no test may reach a real IMDS */
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    if (t->h != NULL) {
        cg_http_close(t->h);
    }
    http_mock_close(t->m);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    unlink(t->token_file);
    rmdir(t->dir);
    free(t);
    return 0;
}

/* Workload identity: the token file instead of the secret. */
static void use_workload(struct t *t, const char *content)
{
    write_file(t->token_file, content);
    env_set("AZURE_CLIENT_SECRET", NULL);
    env_set("AZURE_FEDERATED_TOKEN_FILE", t->token_file);
}

/* IMDS at the mock: no secret, no token file. */
static void use_imds(struct t *t)
{
    env_set("AZURE_CLIENT_SECRET", NULL);
    env_set("AZURE_FEDERATED_TOKEN_FILE", NULL);
    env_set("AZURE_TENANT_ID", NULL);
    env_set("AZURE_CLIENT_ID", NULL);
    t->env.no_imds = 0;
    t->env.imds_url = t->imds;
}

static struct azure_auth *chain(struct t *t)
{
    struct azure_auth *a = NULL;
    struct cg_err err = {0};
    int rc = azure_auth_new(&a, t->h, &t->env, &err);
    if (rc != 0) {
        fail_msg("azure_auth_new: %s", err.msg);
    }
    return a;
}

/* ---- getting tokens ------------------------------------------------------------------------ */

struct got {
    int calls;
    int code;
    long status;
    char msg[CG_ERR_MSG_MAX];
    char token[1024];
};

static void on_token(const char *token, const struct cg_err *err, void *data)
{
    struct got *g = data;
    g->calls++;
    if (err != NULL) {
        assert_null(token);
        g->code = err->code;
        g->status = err->http_status;
        snprintf(g->msg, sizeof(g->msg), "%s", err->msg);
        g->token[0] = '\0';
        return;
    }
    assert_non_null(token);
    g->code = 0;
    snprintf(g->token, sizeof(g->token), "%s", token);
}

/* One azure_auth_get_token, run to completion; the callback must not run inside the call. */
static void get(struct t *t, struct azure_auth *a, enum azure_resource res, struct got *g)
{
    struct cg_err err = {0};
    memset(g, 0, sizeof(*g));
    int rc = azure_auth_get_token(a, res, on_token, g, &err);
    if (rc != 0) {
        fail_msg("azure_auth_get_token: %s", err.msg);
    }
    assert_int_equal(g->calls, 0);
    cg_http_run(t->h);
    assert_int_equal(g->calls, 1);
}

/* ---- form bodies --------------------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes in place; every byte outside the unreserved set must have been encoded
 * (upper-case hex, as RFC 3986 recommends). */
static void pct_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r != '\0'; r++) {
        if (*r == '%') {
            int hi = hexval(r[1]);
            int lo = hi >= 0 ? hexval(r[2]) : -1;
            assert_true(hi >= 0 && lo >= 0);
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                   "-._~",
                                   *r));
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Checks that request i's body is exactly the form fields given as name, value pairs, in
 * that order (NULL-terminated). */
static void expect_form(struct t *t, int i, ...)
{
    size_t len = 0;
    const char *body = http_mock_req_body(t->m, i, &len);
    assert_non_null(body);
    char *copy = strndup(body, len);
    va_list ap;
    va_start(ap, i);
    char *save = NULL;
    char *field = strtok_r(copy, "&", &save);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (name == NULL) {
            break;
        }
        const char *value = va_arg(ap, const char *);
        if (field == NULL) {
            fail_msg("form field '%s' is missing", name);
        }
        char *eq = strchr(field, '=');
        assert_non_null(eq);
        *eq = '\0';
        pct_decode(field);
        pct_decode(eq + 1);
        assert_string_equal(field, name);
        assert_string_equal(eq + 1, value);
        field = strtok_r(NULL, "&", &save);
    }
    va_end(ap);
    if (field != NULL) {
        fail_msg("unexpected form field '%s'", field);
    }
    free(copy);
}

/* ---- azure_auth_new ------------------------------------------------------------------------ */

static void expect_new_error(struct t *t, int code, const char *want)
{
    struct azure_auth *a = (struct azure_auth *)&a; /* must be cleared */
    struct cg_err err = {0};
    int rc = azure_auth_new(&a, t->h, &t->env, &err);
    if (rc != code || err.code != code || strstr(err.msg, want) == NULL) {
        fail_msg("rc %d, message '%s', want %d '%s'", rc, err.msg, code, want);
    }
    assert_null(a);
    assert_null(strstr(err.msg, SECRET));
    assert_null(strstr(err.msg, "s3cr"));
}

/* The tenant of a token: base64url without padding, unsafe or missing claims refused. */
static void test_token_tenant(void **state)
{
    (void)state;
    static const struct {
        const char *token, *want;
    } cases[] = {
        {"eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiI3MmY5ODhiZi04NmYxLTQxYWYtOTFhYi0yZDdjZDAxMWRiNDcifQ.sig",
         "72f988bf-86f1-41af-91ab-2d7cd011db47"},
        {"eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJjb250b3NvLm9ubWljcm9zb2Z0LmNvbSIsIngiOiI_PiJ9.sig",
         "contoso.onmicrosoft.com"},
        {"eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiIuLi94In0.sig", NULL},
        {"eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiIuLiJ9.sig", NULL},
        {"eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOjd9.sig", NULL},
        {"eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJhIn0.sig", NULL},
        {"no-dots", NULL},
        {"a.!!!.b", NULL},
        {"a..b", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tid = azure__token_tenant(cases[i].token);
        if (cases[i].want == NULL) {
            assert_null(tid);
        } else {
            assert_non_null(tid);
            assert_string_equal(tid, cases[i].want);
        }
        free(tid);
    }
}

static void test_new_errors(void **state)
{
    struct t *t = *state;

    /* partial sets name what is missing */
    env_set("AZURE_CLIENT_ID", NULL);
    expect_new_error(t, CG_EINVAL,
                     "AZURE_CLIENT_SECRET is set but AZURE_CLIENT_ID is not: a client secret "
                     "needs AZURE_TENANT_ID and AZURE_CLIENT_ID");
    env_set("AZURE_CLIENT_ID", "");
    env_set("AZURE_TENANT_ID", "");
    expect_new_error(t, CG_EINVAL,
                     "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not");
    env_set("AZURE_CLIENT_ID", CLIENT);
    expect_new_error(t, CG_EINVAL, "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID is not");
    use_workload(t, "eyJ.x.y");
    expect_new_error(t, CG_EINVAL,
                     "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID is not: workload "
                     "identity needs AZURE_TENANT_ID and AZURE_CLIENT_ID");
    env_set("AZURE_TENANT_ID", TENANT);
    env_set("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/azure-identity-token");
    expect_new_error(t, CG_EINVAL,
                     "AZURE_FEDERATED_TOKEN_FILE: cannot open '/nonexistent/azure-identity-token': "
                     "No such file or directory");
    env_set("AZURE_FEDERATED_TOKEN_FILE", NULL);
    env_set("AZURE_CLIENT_SECRET", SECRET);

    /* values that would be pasted into a URL */
    env_set("AZURE_TENANT_ID", "../../evil");
    expect_new_error(t, CG_EINVAL,
                     "AZURE_TENANT_ID '../../evil' is not a tenant ID or domain name");
    env_set("AZURE_TENANT_ID", "a/b");
    expect_new_error(t, CG_EINVAL, "is not a tenant ID or domain name");
    env_set("AZURE_TENANT_ID", TENANT);
    env_set("AZURE_CLIENT_ID", "id with spaces");
    expect_new_error(t, CG_EINVAL, "AZURE_CLIENT_ID 'id with spaces' is not a client ID");
    env_set("AZURE_CLIENT_ID", CLIENT);

    /* the authority: https, or http to loopback, no user, query or fragment */
    static const struct {
        const char *value;
        const char *msg;
    } bad[] = {
        {"http://login.example.com/", "AZURE_AUTHORITY_HOST 'http://login.example.com/' uses "
                                      "plain http to a non-loopback host"},
        {"ftp://login.example.com", "must start with https://"},
        {"https://user:s3cr@login.example.com/", "AZURE_AUTHORITY_HOST must not contain user "
                                                 "information"},
        {"https://login.example.com/?x=1", "must not have a query string or fragment"},
        {"https://login.example.com/#f", "must not have a query string or fragment"},
        {"https:///", "has no host"},
        {"https://login example.com", "without spaces or control characters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_set("AZURE_AUTHORITY_HOST", bad[i].value);
        expect_new_error(t, CG_EINVAL, bad[i].msg);
    }
    /* plain http elsewhere only when allowed; a bare host means https (azure-identity) */
    env_set("AZURE_AUTHORITY_HOST", "http://login.example.com/");
    t->env.allow_insecure_http = 1;
    struct azure_auth *a = chain(t);
    azure_auth_free(a);
    t->env.allow_insecure_http = 0;
    env_set("AZURE_AUTHORITY_HOST", "login.microsoftonline.us");
    a = chain(t);
    assert_string_equal(azure_auth_source(a), "client secret");
    azure_auth_free(a);
    env_set("AZURE_AUTHORITY_HOST", "");
    a = chain(t); /* empty: the default */
    azure_auth_free(a);

    /* nothing at all, IMDS off: no source */
    env_set("AZURE_CLIENT_SECRET", NULL);
    env_set("AZURE_TENANT_ID", NULL);
    env_set("AZURE_CLIENT_ID", NULL);
    expect_new_error(t, CG_EAUTH, NO_SOURCE);
    /* a client ID alone would select a user-assigned identity: IMDS is still off */
    env_set("AZURE_CLIENT_ID", CLIENT);
    expect_new_error(t, CG_EAUTH, NO_SOURCE);

    /* IMDS URLs */
    t->env.no_imds = 0;
    env_set("CLOUDGRANT_AZURE_IMDS_URL", "ftp://169.254.169.254");
    expect_new_error(t, CG_EINVAL,
                     "CLOUDGRANT_AZURE_IMDS_URL 'ftp://169.254.169.254' must be an http:// or "
                     "https:// URL");
    env_set("CLOUDGRANT_AZURE_IMDS_URL", "http://169.254.169.254/?api-version=1");
    expect_new_error(t, CG_EINVAL, "must not have a query string or fragment");
    t->env.imds_url = "http://u:p@169.254.169.254";
    expect_new_error(t, CG_EINVAL, "CLOUDGRANT_AZURE_IMDS_URL must not contain user information");
    t->env.imds_url = NULL;
    env_set("CLOUDGRANT_AZURE_IMDS_URL", "http://169.254.169.254/"); /* plain http: its nature */
    a = chain(t);
    assert_string_equal(azure_auth_source(a), "managed identity");
    assert_null(azure_auth_tenant(a));
    azure_auth_free(a);

    struct cg_err err = {0};
    assert_int_equal(azure_auth_new(&a, NULL, &t->env, &err), CG_EINVAL);
    assert_int_equal(azure_auth_new(NULL, t->h, &t->env, &err), CG_EINVAL);
}

/* ---- client secret ------------------------------------------------------------------------- */

static void test_secret_token(void **state)
{
    struct t *t = *state;
    struct got g;
    struct azure_auth *a = chain(t);
    assert_string_equal(azure_auth_source(a), "client secret");
    assert_string_equal(azure_auth_tenant(a), TENANT);

    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-token-1", "3599")});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "arm-token-1");
    assert_int_equal(http_mock_count(t->m), 1);
    /* the trailing '/' of the authority did not double */
    assert_string_equal(http_mock_req_method(t->m, 0), "POST");
    assert_string_equal(http_mock_req_target(t->m, 0), TOKEN_PATH);
    assert_string_equal(http_mock_req_header(t->m, 0, "Content-Type"),
                        "application/x-www-form-urlencoded");
    assert_null(http_mock_req_header(t->m, 0, "Authorization"));
    expect_form(t, 0, "grant_type", "client_credentials", "client_id", CLIENT, "client_secret",
                SECRET, "scope", "https://management.azure.com/.default", NULL);
    /* the secret's reserved characters are percent-encoded, not sent raw */
    size_t len = 0;
    const char *body = http_mock_req_body(t->m, 0, &len);
    assert_non_null(strstr(body, "&client_secret=Q~8Q8~s3cr%2Bt%2F%3D%26%25x.SECRET-CANARY&"));
    assert_non_null(strstr(body, "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"));

    /* Graph is another token, another request */
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH,
                                                  .body = ANSWER("graph-token-1", "3599")});
    get(t, a, AZURE_GRAPH, &g);
    assert_string_equal(g.token, "graph-token-1");
    assert_int_equal(http_mock_count(t->m), 2);
    expect_form(t, 1, "grant_type", "client_credentials", "client_id", CLIENT, "client_secret",
                SECRET, "scope", "https://graph.microsoft.com/.default", NULL);

    /* cached per resource: no request, still answered from the loop */
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "arm-token-1");
    get(t, a, AZURE_GRAPH, &g);
    assert_string_equal(g.token, "graph-token-1");
    assert_int_equal(http_mock_count(t->m), 2);

    /* expires_in 3599: kept while 300 s or more remain, refreshed after */
    clock_now = T0 + 3599 - 300;
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(http_mock_count(t->m), 2);
    clock_now = T0 + 3599 - 299;
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-token-2", "3599")});
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "arm-token-2");
    assert_int_equal(http_mock_count(t->m), 3);

    /* invalidate forgets one resource only */
    azure_auth_invalidate(a, AZURE_GRAPH);
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH,
                                                  .body = ANSWER("graph-token-2", "3599")});
    get(t, a, AZURE_GRAPH, &g);
    assert_string_equal(g.token, "graph-token-2");
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "arm-token-2");
    assert_int_equal(http_mock_count(t->m), 4);
    azure_auth_free(a);
}

static void test_authority_prefix(void **state)
{
    struct t *t = *state;
    struct got g;
    char authority[120];
    snprintf(authority, sizeof(authority), "%slogin/prefix//", t->authority);
    env_set("AZURE_AUTHORITY_HOST", authority);
    env_set("AZURE_TENANT_ID", "contoso.onmicrosoft.com");
    struct azure_auth *a = chain(t);
    assert_string_equal(azure_auth_tenant(a), "contoso.onmicrosoft.com");
    http_mock_push(t->m, &(struct http_mock_resp){.body = ANSWER("t", "3599")});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(http_mock_req_target(t->m, 0),
                        "/login/prefix/contoso.onmicrosoft.com/oauth2/v2.0/token");
    azure_auth_free(a);
}

/* ---- workload identity --------------------------------------------------------------------- */

static void test_workload_token(void **state)
{
    struct t *t = *state;
    struct got g;
    use_workload(t, "eyJhbGciOiJSUzI1NiJ9.ZmlsZS1vbmU.c2lnLW9uZQ\n\n");
    struct azure_auth *a = chain(t);
    assert_string_equal(azure_auth_source(a), "workload identity");

    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-wi-1", "3599")});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "arm-wi-1");
    expect_form(t, 0, "grant_type", "client_credentials", "client_id", CLIENT,
                "client_assertion_type", ASSERTION_TYPE, "client_assertion",
                "eyJhbGciOiJSUzI1NiJ9.ZmlsZS1vbmU.c2lnLW9uZQ", "scope",
                "https://management.azure.com/.default", NULL);
    size_t len = 0;
    const char *body = http_mock_req_body(t->m, 0, &len);
    assert_non_null(strstr(body, "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"
                                 "assertion-type%3Ajwt-bearer&"));
    assert_null(strstr(body, "client_secret"));

    /* the kubelet rotates the file: the next token request reads the new one */
    write_file(t->token_file, "eyJhbGciOiJSUzI1NiJ9.ZmlsZS10d28.c2lnLXR3bw \t\r\n");
    get(t, a, AZURE_ARM, &g); /* cached: the file is not needed */
    assert_int_equal(http_mock_count(t->m), 1);
    clock_now = T0 + 3599 - 299;
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-wi-2", "3599")});
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "arm-wi-2");
    assert_int_equal(http_mock_count(t->m), 2);
    expect_form(t, 1, "grant_type", "client_credentials", "client_id", CLIENT,
                "client_assertion_type", ASSERTION_TYPE, "client_assertion",
                "eyJhbGciOiJSUzI1NiJ9.ZmlsZS10d28.c2lnLXR3bw", "scope",
                "https://management.azure.com/.default", NULL);

    /* a server that echoes the assertion: withheld too */
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH,
                             .status = 400,
                             .body = "{\"error\":\"invalid_client\",\"error_description\":"
                                     "\"AADSTS700024: Client assertion eyJhbGciOiJSUzI1NiJ9."
                                     "ZmlsZS10d28 is not within its valid time range.\"}"});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_null(strstr(g.msg, "ZmlsZS10d28"));
    assert_non_null(strstr(g.msg, "(withheld)"));
    assert_int_equal(http_mock_count(t->m), 3);

    /* a file that went empty or away: refused before any request */
    write_file(t->token_file, " \n");
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    char want[400];
    snprintf(want, sizeof(want),
             "Azure token (workload identity) for Graph: federated token file '%s' is empty",
             t->token_file);
    assert_string_equal(g.msg, want);
    write_file(t->token_file, "two words");
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_non_null(strstr(g.msg, "does not hold a token"));
    unlink(t->token_file);
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    snprintf(want, sizeof(want),
             "Azure token (workload identity) for Graph: cannot open '%s': No such file or "
             "directory",
             t->token_file);
    assert_string_equal(g.msg, want);
    assert_int_equal(http_mock_count(t->m), 3);
    /* ARM's cached token is unaffected */
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "arm-wi-2");
    azure_auth_free(a);
}

/* ---- IMDS ---------------------------------------------------------------------------------- */

static void test_imds(void **state)
{
    struct t *t = *state;
    struct got g;
    use_imds(t);
    /* IMDS never goes through a proxy, even when one is configured */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    struct azure_auth *a = chain(t);
    assert_null(azure_auth_tenant(a));
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = IMDS_PATH,
                             .body = "{\"access_token\":\"" JWT_WITH_TID "\",\"client_id\":\"c\","
                                     "\"expires_in\":\"3599\",\"expires_on\":\"1700003599\","
                                     "\"ext_expires_in\":\"3599\",\"not_before\":\"1699999999\","
                                     "\"resource\":\"https://management.azure.com/\","
                                     "\"token_type\":\"Bearer\"}"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, JWT_WITH_TID);
    assert_int_equal(http_mock_count(t->m), 1);
    assert_string_equal(http_mock_req_method(t->m, 0), "GET");
    assert_string_equal(http_mock_req_target(t->m, 0), IMDS_PATH ARM_RES);
    assert_string_equal(http_mock_req_header(t->m, 0, "Metadata"), "true");
    assert_int_equal(http_mock_req_header_count(t->m, 0, "Metadata"), 1);
    /* the tenant from the token's tid claim */
    assert_string_equal(azure_auth_tenant(a), TENANT);
    assert_string_equal(azure_auth_source(a), "managed identity");
    /* the string expires_in counts: cached until the margin */
    clock_now = T0 + 3599 - 300;
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(http_mock_count(t->m), 1);

    /* Graph: its resource; a 404 (identity being assigned) and a 410 are retried */
    http_mock_push(t->m, &(struct http_mock_resp){.path = IMDS_PATH, .status = 404});
    http_mock_push(t->m, &(struct http_mock_resp){.path = IMDS_PATH, .status = 410});
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = IMDS_PATH, .body = ANSWER("graph-mi", "\"60\"")});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "graph-mi");
    assert_int_equal(http_mock_count(t->m), 4);
    assert_string_equal(http_mock_req_target(t->m, 3), IMDS_PATH GRAPH_RES);
    /* 60 s is less than the margin: the next call asks again */
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = IMDS_PATH, .body = ANSWER("graph-mi-2", "60")});
    get(t, a, AZURE_GRAPH, &g);
    assert_string_equal(g.token, "graph-mi-2");
    assert_int_equal(http_mock_count(t->m), 5);

    /* IMDS refusing: an OAuth error, as an auth failure */
    azure_auth_invalidate(a, AZURE_GRAPH);
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = IMDS_PATH,
                             .status = 400,
                             .body = "{\"error\":\"invalid_request\",\"error_description\":"
                                     "\"Identity not found\"}"});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(g.status, 400);
    assert_string_equal(g.msg, "Azure token (managed identity) for Graph: invalid_request: "
                               "Identity not found");
    assert_int_equal(http_mock_count(t->m), 6);
    azure_auth_free(a);
    unsetenv("http_proxy");
}

static void test_imds_user_assigned(void **state)
{
    struct t *t = *state;
    struct got g;
    use_imds(t);
    /* through the variable, with a path prefix and a trailing '/'; a client ID selects the
     * identity; a tenant from the environment wins over the token's */
    char url[120];
    snprintf(url, sizeof(url), "%s/imds/", t->imds);
    t->env.imds_url = NULL;
    env_set("CLOUDGRANT_AZURE_IMDS_URL", url);
    env_set("AZURE_CLIENT_ID", CLIENT);
    env_set("AZURE_TENANT_ID", "contoso.onmicrosoft.com");
    struct azure_auth *a = chain(t);
    assert_string_equal(azure_auth_source(a), "managed identity");
    http_mock_push(t->m, &(struct http_mock_resp){.body = ANSWER(JWT_WITH_TID, "\"3599\"")});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(http_mock_req_target(t->m, 0),
                        "/imds" IMDS_PATH ARM_RES "&client_id=" CLIENT);
    assert_string_equal(azure_auth_tenant(a), "contoso.onmicrosoft.com");
    azure_auth_free(a);

    /* a tid that is no tenant name is not taken */
    env_set("AZURE_CLIENT_ID", NULL);
    env_set("AZURE_TENANT_ID", NULL);
    a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){.body = ANSWER(JWT_BAD_TID, "\"3599\"")});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_null(azure_auth_tenant(a));
    assert_string_equal(http_mock_req_target(t->m, 1), "/imds" IMDS_PATH ARM_RES);
    /* a token that is no JWT at all: no tenant either */
    http_mock_push(t->m, &(struct http_mock_resp){.body = ANSWER("opaque", "\"3599\"")});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, 0);
    assert_null(azure_auth_tenant(a));
    azure_auth_free(a);
}

static void test_imds_absent(void **state)
{
    struct t *t = *state;
    struct got g;
    use_imds(t);
    t->env.imds_timeout_ms = 200;
    http_mock_set_default(t->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG, .uses = -1});
    struct azure_auth *a = chain(t);
    uint64_t t0 = uv_hrtime();
    get(t, a, AZURE_ARM, &g);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(g.code, CG_ETIMEDOUT);
    assert_true(strncmp(g.msg, "Azure token (managed identity) for ARM: ", 40) == 0);
    assert_true(ms < 3000);
    assert_int_equal(http_mock_count(t->m), 3);
    azure_auth_free(a);
}

/* ---- sharing one refresh ------------------------------------------------------------------- */

struct multi {
    struct azure_auth *a;
    int calls;
    int errors;
    int get_in_cb;
    int free_in_cb;
    char tokens[4][64];
    struct got nested;
};

static void on_multi(const char *token, const struct cg_err *err, void *data)
{
    struct multi *m = data;
    if (m->calls < 4) {
        snprintf(m->tokens[m->calls], sizeof(m->tokens[0]), "%s", token ? token : "");
    }
    m->calls++;
    m->errors += err != NULL;
    if (m->get_in_cb) {
        m->get_in_cb = 0;
        assert_int_equal(azure_auth_get_token(m->a, AZURE_ARM, on_token, &m->nested, NULL), 0);
    }
    if (m->free_in_cb) {
        m->free_in_cb = 0;
        azure_auth_free(m->a);
    }
}

static void test_coalescing(void **state)
{
    struct t *t = *state;
    struct azure_auth *a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH, .body = ANSWER("arm-1", "3599"), .delay_ms = 50});
    /* three calls, one request, one answer each; a call from inside a callback is served from
     * the new cache */
    struct multi m = {.a = a, .get_in_cb = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_multi, &m, NULL), 0);
    }
    assert_int_equal(m.calls, 0);
    cg_http_run(t->h);
    assert_int_equal(m.calls, 3);
    assert_int_equal(m.errors, 0);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(m.tokens[i], "arm-1");
    }
    assert_int_equal(m.nested.calls, 1);
    assert_string_equal(m.nested.token, "arm-1");
    assert_int_equal(http_mock_count(t->m), 1);

    /* both resources at once: one request each, in parallel */
    azure_auth_invalidate(a, AZURE_ARM);
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH, .body = ANSWER("tok-a", "3599"), .delay_ms = 80});
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH, .body = ANSWER("tok-b", "3599"), .delay_ms = 80});
    struct got ga = {0};
    struct got ga2 = {0};
    struct got gg = {0};
    assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_token, &ga, NULL), 0);
    assert_int_equal(azure_auth_get_token(a, AZURE_GRAPH, on_token, &gg, NULL), 0);
    uv_run(&t->loop, UV_RUN_NOWAIT); /* the requests are on their way */
    /* a call made while the refresh is in flight joins it */
    assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_token, &ga2, NULL), 0);
    cg_http_run(t->h);
    assert_int_equal(ga.calls, 1);
    assert_int_equal(ga2.calls, 1);
    assert_int_equal(gg.calls, 1);
    assert_int_equal(http_mock_count(t->m), 3);
    assert_string_equal(ga.token, ga2.token);
    assert_true(strcmp(ga.token, gg.token) != 0);
    size_t len = 0;
    const char *b1 = http_mock_req_body(t->m, 1, &len);
    const char *b2 = http_mock_req_body(t->m, 2, &len);
    assert_true((strstr(b1, "management.azure.com") && strstr(b2, "graph.microsoft.com")) ||
                (strstr(b2, "management.azure.com") && strstr(b1, "graph.microsoft.com")));

    /* freed from inside a callback while others wait in the same batch: they get the token */
    azure_auth_invalidate(a, AZURE_ARM);
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-3", "3599")});
    struct multi m2 = {.a = a, .free_in_cb = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_multi, &m2, NULL), 0);
    }
    cg_http_run(t->h);
    assert_int_equal(m2.calls, 3);
    assert_int_equal(m2.errors, 0);
    assert_string_equal(m2.tokens[2], "arm-3");
}

static void test_free_with_pending_get(void **state)
{
    struct t *t = *state;
    struct got g = {0};
    struct azure_auth *a = chain(t);

    /* before the refresh starts */
    assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_token, &g, NULL), 0);
    azure_auth_free(a);
    cg_http_run(t->h);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, CG_ECANCELED);
    assert_int_equal(http_mock_count(t->m), 0);

    /* while the request is in flight: answered at once, the memory goes when it ends */
    a = chain(t);
    memset(&g, 0, sizeof(g));
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH, .body = ANSWER("x", "3599"), .delay_ms = 300});
    assert_int_equal(azure_auth_get_token(a, AZURE_GRAPH, on_token, &g, NULL), 0);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    azure_auth_free(a);
    uint64_t t0 = uv_hrtime();
    while (g.calls == 0) {
        uv_run(&t->loop, UV_RUN_ONCE);
    }
    assert_true((uv_hrtime() - t0) / 1000000 < 250);
    assert_int_equal(g.code, CG_ECANCELED);
    cg_http_run(t->h);
    assert_int_equal(g.calls, 1);
    assert_int_equal(http_mock_count(t->m), 1);

    /* the engine closing cancels the request in flight: waiters hear CG_ECANCELED then */
    a = chain(t);
    memset(&g, 0, sizeof(g));
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .action = HTTP_MOCK_HANG});
    assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_token, &g, NULL), 0);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 0);
    cg_http_close(t->h);
    t->h = NULL;
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, CG_ECANCELED);
    /* later calls are refused at once; after free too */
    struct cg_err err = {0};
    struct got g2 = {0};
    assert_int_equal(azure_auth_get_token(a, AZURE_ARM, on_token, &g2, &err), CG_ECANCELED);
    azure_auth_free(a);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g2.calls, 0);
}

/* ---- failures ------------------------------------------------------------------------------ */

static void test_errors(void **state)
{
    struct t *t = *state;
    struct got g;
    struct azure_auth *a = chain(t);

    /* AADSTS: the first line of the description; final, not retried */
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH,
                             .status = 401,
                             .body = "{\"error\":\"invalid_client\",\"error_description\":"
                                     "\"AADSTS7000215: Invalid client secret provided.\\r\\n"
                                     "Trace ID: 9f1c\\r\\nCorrelation ID: 77aa\\r\\nTimestamp: "
                                     "2026-11-22 10:00:00Z\",\"error_codes\":[7000215],"
                                     "\"trace_id\":\"9f1c\",\"correlation_id\":\"77aa\"}"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(g.status, 401);
    assert_string_equal(g.msg, "Azure token (client secret) for ARM: invalid_client: "
                               "AADSTS7000215: Invalid client secret provided.");
    assert_int_equal(http_mock_count(t->m), 1);

    /* a server that echoes the secret: the description is withheld */
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH,
                             .status = 400,
                             .body = "{\"error\":\"invalid_request\",\"error_description\":"
                                     "\"AADSTS900144: bad client_secret '" SECRET "'\"}"});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_null(strstr(g.msg, SECRET));
    assert_null(strstr(g.msg, "s3cr"));
    assert_string_equal(g.msg, "Azure token (client secret) for Graph: HTTP 400, with an error "
                               "description that quotes the credential sent (withheld)");

    /* also when the cap would cut the quote short */
    char echo[700];
    char pad[291]; /* the cap keeps the secret's first bytes only */
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(echo, sizeof(echo), "{\"error\":\"invalid_request\",\"error_description\":\"%s %s\"}",
             pad, SECRET);
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .status = 400, .body = echo});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_null(strstr(g.msg, "Q~8Q"));
    assert_non_null(strstr(g.msg, "(withheld)"));

    /* not OAuth */
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH, .status = 403, .body = "<html>denied</html>"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, "Azure token (client secret) for ARM: HTTP 403 (Forbidden)");
    /* a 200 without a usable token */
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH,
                                                  .body = "{\"access_token\":\"a b\","
                                                          "\"expires_in\":3600}"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_string_equal(g.msg,
                        "Azure token (client secret) for ARM: answer has no usable access_token");

    /* 500, then success: retried by the engine */
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH,
                                                  .status = 500,
                                                  .body = "{\"error\":\"server_error\"}"});
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-ok", "3599")});
    int before = http_mock_count(t->m);
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "arm-ok");
    assert_int_equal(http_mock_count(t->m), before + 2);
    /* the same body each attempt */
    size_t l1 = 0;
    size_t l2 = 0;
    const char *b1 = http_mock_req_body(t->m, before, &l1);
    const char *b2 = http_mock_req_body(t->m, before + 1, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);

    /* 429 with Retry-After: honoured */
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH, .status = 429, .headers = "Retry-After: 1\r\n"});
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("graph-ok", "3599")});
    uint64_t t0 = uv_hrtime();
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, 0);
    assert_true((uv_hrtime() - t0) / 1000000 >= 950);

    /* a 5xx that lasts: 4 attempts, then CG_ESTATUS */
    azure_auth_invalidate(a, AZURE_ARM);
    before = http_mock_count(t->m);
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = TOKEN_PATH,
                                            .status = 503,
                                            .uses = 4,
                                            .body = "{\"error\":\"temporarily_unavailable\"}"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, CG_ESTATUS);
    assert_int_equal(g.status, 503);
    assert_int_equal(http_mock_count(t->m), before + 4);
    assert_string_equal(g.msg, "Azure token (client secret) for ARM: temporarily_unavailable");

    /* nothing answers: the engine's code, with the source as context */
    azure_auth_free(a);
    char dead[80];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:1/");
    env_set("AZURE_AUTHORITY_HOST", dead);
    a = chain(t);
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, CG_EHTTP);
    const char *want = "Azure token (client secret) for ARM: POST http://127.0.0.1:1/";
    assert_memory_equal(g.msg, want, strlen(want));
    assert_null(strstr(g.msg, "s3cr"));
    azure_auth_free(a);
}

static void test_stale_token_served(void **state)
{
    struct t *t = *state;
    struct got g;
    struct azure_auth *a = chain(t);
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("arm-1", "3599")});
    get(t, a, AZURE_ARM, &g);
    /* 100 s left: refreshed, but a failed refresh still serves the token that works */
    clock_now = T0 + 3599 - 100;
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH,
                                                  .status = 400,
                                                  .body = "{\"error\":\"invalid_grant\"}"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "arm-1");
    assert_int_equal(http_mock_count(t->m), 2);
    /* 60 s left: not any more */
    clock_now = T0 + 3599 - 60;
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH,
                                                  .status = 400,
                                                  .body = "{\"error\":\"invalid_grant\"}"});
    get(t, a, AZURE_ARM, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, "Azure token (client secret) for ARM: invalid_grant");
    assert_int_equal(http_mock_count(t->m), 3);
    azure_auth_free(a);
}

/* ---- nothing secret in the log ------------------------------------------------------------- */

static void test_log_has_no_secrets(void **state)
{
    struct t *t = *state;
    struct got g;
    int saved_level = cg_log_level;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fileno(tmp), 2);
    cg_log_setup(CG_LOG_TRACE, CG_LOG_TEXT);

    /* client secret: a retry, a success, a refusal */
    struct azure_auth *a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .status = 503});
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("LOG-CANARY-1", "3599")});
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "LOG-CANARY-1");
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = TOKEN_PATH,
                             .status = 401,
                             .body = "{\"error\":\"invalid_client\",\"error_description\":\"no\","
                                     "\"access_token\":\"LOG-CANARY-2\"}"});
    get(t, a, AZURE_GRAPH, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_null(strstr(g.msg, "LOG-CANARY"));
    azure_auth_free(a);

    /* workload identity */
    use_workload(t, "eyJhbGciOiJSUzI1NiJ9.QVNTRVJUSU9OLUNBTkFSWQ.c2ln\n");
    a = chain(t);
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = TOKEN_PATH, .body = ANSWER("LOG-CANARY-3", "3599")});
    get(t, a, AZURE_GRAPH, &g);
    assert_string_equal(g.token, "LOG-CANARY-3");
    azure_auth_free(a);

    /* IMDS */
    use_imds(t);
    a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){.path = IMDS_PATH,
                                                  .body = ANSWER("LOG-CANARY-4", "\"1234\"")});
    get(t, a, AZURE_ARM, &g);
    assert_string_equal(g.token, "LOG-CANARY-4");
    azure_auth_free(a);
    cg_http_run(t->h);

    cg_log_setup(saved_level, CG_LOG_TEXT);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char log[1 << 20];
    rewind(tmp);
    size_t n = fread(log, 1, sizeof(log) - 1, tmp);
    log[n] = '\0';
    fclose(tmp);

    /* the log was captured, at the level that shows the most */
    assert_non_null(strstr(log, "Azure token (client secret) for ARM, expires in 3599 s"));
    assert_non_null(strstr(log, "Azure token (managed identity) for ARM, expires in 1234 s"));
    /* tokens, the secret, the assertion, the bodies */
    assert_null(strstr(log, "LOG-CANARY"));
    assert_null(strstr(log, "s3cr"));
    assert_null(strstr(log, "SECRET-CANARY"));
    assert_null(strstr(log, "QVNTRVJUSU9OLUNBTkFSWQ"));
    assert_null(strstr(log, "client_secret"));
    assert_null(strstr(log, "client_assertion"));
    assert_null(strstr(log, "grant_type"));
    assert_null(strstr(log, "expires_in"));
}

int main(void)
{
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++) {
        unsetenv(proxies[i]);
    }
    struct cg_err err = {0};
    if (cg_http_global_init(&err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_answer),
        cmocka_unit_test(test_token_tenant),
        cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authority_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workload_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imds_user_assigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imds_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_token_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_has_no_secrets, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("azure_auth", tests, NULL, NULL);
    cg_http_global_cleanup();
    return rc;
}
