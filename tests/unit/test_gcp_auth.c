/* Unit tests for cloud/gcp/auth.c: the service-account key-file parser, the RS256 JWT assertion
 * (checked with the public half of a key pair generated here, with OpenSSL's verifier), and the
 * token chain against tests/support/http_mock on a real loop with an injected environment and a
 * frozen clock: the key file's JWT bearer grant, the metadata server, the cache and its
 * callback contract, and what reaches the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gcp_auth.h"

#include "cg_http.h"
#include "cg_log.h"
#include "http_mock.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define SCOPE    "https://www.googleapis.com/auth/cloud-platform"
#define EMAIL    "cloudgrant@proj-1.iam.gserviceaccount.com"
#define KID      "0123456789abcdef0123456789abcdef01234567"
#define T0       1700000000
#define MD_TOKEN "/computeMetadata/v1/instance/service-accounts/default/token"
#define MD_EMAIL "/computeMetadata/v1/instance/service-accounts/default/email"
#define FLAVOR   "Metadata-Flavor: Google\r\n"
#define NO_SOURCE                                                                                  \
    "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, "    \
    "or run where the metadata server answers (GKE Workload Identity, GCE)"
#define TOKEN_OK                                                                                   \
    "{\"access_token\":\"ya29.token-one\",\"expires_in\":3599,\"token_type\":\"Bearer\"}"
#define TOKEN_OK_2                                                                                 \
    "{\"access_token\":\"ya29.token-two\",\"expires_in\":3599,\"token_type\":\"Bearer\"}"

/* ---- keys made for the run ----------------------------------------------------------------- */

static EVP_PKEY *rsa_key;
static char *rsa_pem;       /* PKCS#8, as Google writes it */
static char *rsa_pem_pkcs1; /* "BEGIN RSA PRIVATE KEY" */
static char *rsa_pem_enc;   /* encrypted PKCS#8 */
static char *ec_pem;

static char *bio_string(BIO *bio)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(bio);
    return s;
}

static int group_setup(void **state)
{
    (void)state;
    rsa_key = EVP_RSA_gen(2048);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    if (rsa_key == NULL || ec == NULL) {
        return -1;
    }
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, rsa_key, NULL, NULL, 0, NULL, NULL);
    rsa_pem = bio_string(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey_traditional(b, rsa_key, NULL, NULL, 0, NULL, NULL);
    rsa_pem_pkcs1 = bio_string(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS8PrivateKey(b, rsa_key, EVP_aes_256_cbc(), "pw", 2, NULL, NULL);
    rsa_pem_enc = bio_string(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL);
    ec_pem = bio_string(b);
    EVP_PKEY_free(ec);
    return strstr(rsa_pem, "BEGIN PRIVATE KEY") && strstr(rsa_pem_pkcs1, "BEGIN RSA PRIVATE KEY") &&
                   strstr(rsa_pem_enc, "BEGIN ENCRYPTED PRIVATE KEY")
               ? 0
               : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    free(rsa_pem);
    free(rsa_pem_pkcs1);
    free(rsa_pem_enc);
    free(ec_pem);
    return 0;
}

/* A key file's JSON; NULL members are left out. Caller frees. */
static char *key_json(const char *type, const char *email, const char *kid, const char *pem,
                      const char *token_uri)
{
    json_t *o = json_object();
    json_object_set_new(o, "project_id", json_string("proj-1"));
    if (type != NULL) {
        json_object_set_new(o, "type", json_string(type));
    }
    if (kid != NULL) {
        json_object_set_new(o, "private_key_id", json_string(kid));
    }
    if (pem != NULL) {
        json_object_set_new(o, "private_key", json_string(pem));
    }
    if (email != NULL) {
        json_object_set_new(o, "client_email", json_string(email));
    }
    json_object_set_new(o, "client_id", json_string("1234567890"));
    if (token_uri != NULL) {
        json_object_set_new(o, "token_uri", json_string(token_uri));
    }
    char *s = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return s;
}

/* ---- injected environment and clock -------------------------------------------------------- */

#define MAX_ENV 8
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
static int64_t clock_step; /* added after each reading: a clock that moves on its own */

static int64_t fake_now(void)
{
    int64_t t = clock_now;
    clock_now += clock_step;
    return t;
}

/* ---- loop, mock, temp dir ------------------------------------------------------------------ */

struct t {
    uv_loop_t loop;
    struct cg_http *h;
    struct http_mock *m;
    char token_uri[80];
    char md_host[40];
    char dir[64];
    char key_path[128];
    struct gcp_auth_env env;
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
    snprintf(t->token_uri, sizeof(t->token_uri), "http://127.0.0.1:%d/token", http_mock_port(t->m));
    snprintf(t->md_host, sizeof(t->md_host), "127.0.0.1:%d", http_mock_port(t->m));
    snprintf(t->dir, sizeof(t->dir), "/tmp/cg-gcp-auth-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->key_path, sizeof(t->key_path), "%s/key.json", t->dir);
    char *json = key_json("service_account", EMAIL, KID, rsa_pem, t->token_uri);
    write_file(t->key_path, json);
    free(json);
    env_n = 0;
    env_set("GOOGLE_APPLICATION_CREDENTIALS", t->key_path);
    clock_now = T0;
    clock_step = 0;
    t->env.getenv = fake_getenv;
    t->env.now = fake_now;
    t->env.no_metadata = 1; /* no test may reach a real metadata server */
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    cg_http_close(t->h);
    http_mock_close(t->m);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    unlink(t->key_path);
    rmdir(t->dir);
    free(t);
    return 0;
}

/* Points the chain at the mock as a metadata server, with no key file. */
static void use_metadata(struct t *t)
{
    env_set("GOOGLE_APPLICATION_CREDENTIALS", NULL);
    t->env.no_metadata = 0;
    t->env.metadata_host = t->md_host;
}

static struct gcp_auth *chain(struct t *t)
{
    struct gcp_auth *a = NULL;
    struct cg_err err = {0};
    int rc = gcp_auth_new(&a, t->h, &t->env, &err);
    if (rc != 0) {
        fail_msg("gcp_auth_new: %s", err.msg);
    }
    return a;
}

/* ---- getting tokens ------------------------------------------------------------------------ */

struct got {
    int calls;
    int code;
    long status;
    char msg[CG_ERR_MSG_MAX];
    char token[128];
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

/* One gcp_auth_get_token, run to completion; the callback must not run inside the call. */
static void get(struct t *t, struct gcp_auth *a, struct got *g)
{
    struct cg_err err = {0};
    memset(g, 0, sizeof(*g));
    int rc = gcp_auth_get_token(a, on_token, g, &err);
    if (rc != 0) {
        fail_msg("gcp_auth_get_token: %s", err.msg);
    }
    assert_int_equal(g->calls, 0);
    cg_http_run(t->h);
    assert_int_equal(g->calls, 1);
}

/* Index of the n-th recorded request whose target starts with prefix, or -1. */
static int req_index(struct t *t, const char *prefix, int n)
{
    for (int i = 0; i < http_mock_count(t->m); i++) {
        if (strncmp(http_mock_req_target(t->m, i), prefix, strlen(prefix)) == 0 && n-- == 0) {
            return i;
        }
    }
    return -1;
}

static int req_count(struct t *t, const char *prefix)
{
    int n = 0;
    while (req_index(t, prefix, n) >= 0) {
        n++;
    }
    return n;
}

/* ---- JWT decoding and verification --------------------------------------------------------- */

/* base64url (no padding) to bytes, with OpenSSL's decoder; NULL on bad input. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
    char *std = calloc(1, n + 4);
    size_t i;
    for (i = 0; i < n; i++) {
        if (s[i] == '+' || s[i] == '/' || s[i] == '=') {
            free(std);
            return NULL; /* not the URL alphabet, or padded */
        }
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }
    while (i % 4 != 0) {
        std[i++] = '=';
    }
    unsigned char *out = calloc(1, i + 1);
    int len = EVP_DecodeBlock(out, (unsigned char *)std, (int)i);
    free(std);
    if (len < 0) {
        free(out);
        return NULL;
    }
    size_t pad = (4 - n % 4) % 4;
    *outlen = (size_t)len - pad;
    out[*outlen] = '\0';
    return out;
}

struct jwt {
    json_t *header;
    json_t *claims;
    int verified;
};

/* Splits, decodes and verifies (RS256: PKCS#1 v1.5, SHA-256) an assertion. */
static void jwt_open(const char *jwt, struct jwt *out)
{
    memset(out, 0, sizeof(*out));
    const char *d1 = strchr(jwt, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    size_t hl = 0;
    size_t cl = 0;
    size_t sl = 0;
    unsigned char *h = b64url_decode(jwt, (size_t)(d1 - jwt), &hl);
    unsigned char *c = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    unsigned char *s = b64url_decode(d2 + 1, strlen(d2 + 1), &sl);
    assert_non_null(h);
    assert_non_null(c);
    assert_non_null(s);
    out->header = json_loadb((char *)h, hl, JSON_REJECT_DUPLICATES, NULL);
    out->claims = json_loadb((char *)c, cl, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(out->header);
    assert_non_null(out->claims);

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, rsa_key), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
    out->verified =
        EVP_DigestVerify(md, s, sl, (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    free(h);
    free(c);
    free(s);
}

static void jwt_close(struct jwt *j)
{
    json_decref(j->header);
    json_decref(j->claims);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_int_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* The assertion inside a recorded token request's form body. */
static char *assertion_of(struct t *t, int i)
{
    size_t len = 0;
    const char *body = http_mock_req_body(t->m, i, &len);
    const char *prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                         "&assertion=";
    assert_non_null(body);
    assert_memory_equal(body, prefix, strlen(prefix));
    return strndup(body + strlen(prefix), len - strlen(prefix));
}

/* ---- key file ------------------------------------------------------------------------------ */

static void test_key_parse(void **state)
{
    (void)state;
    struct gcp_key_file k;
    struct cg_err err = {0};
    char *json = key_json("service_account", EMAIL, KID, rsa_pem, NULL);
    assert_int_equal(gcp_key_file_parse(&k, json, strlen(json), "k.json", &err), 0);
    assert_string_equal(k.client_email, EMAIL);
    assert_string_equal(k.private_key_id, KID);
    assert_string_equal(k.private_key, rsa_pem);
    assert_string_equal(k.token_uri, "https://oauth2.googleapis.com/token");
    assert_string_equal(k.project_id, "proj-1");
    gcp_key_file_cleanup(&k);
    assert_null(k.private_key);
    gcp_key_file_cleanup(&k); /* twice is fine */
    free(json);

    /* loopback http is allowed for tests and emulators */
    static const char *const fine[] = {"https://oauth2.example.com/token",
                                       "http://127.0.0.1:8080/token", "http://localhost/t",
                                       "http://[::1]:9/token", "HTTPS://x.example/"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        json = key_json("service_account", EMAIL, KID, rsa_pem, fine[i]);
        assert_int_equal(gcp_key_file_parse(&k, json, strlen(json), "k.json", &err), 0);
        assert_string_equal(k.token_uri, fine[i]);
        gcp_key_file_cleanup(&k);
        free(json);
    }
}

static void expect_parse_error(const char *json, const char *want)
{
    struct gcp_key_file k;
    struct cg_err err = {0};
    memset(&k, 0x5a, sizeof(k));
    int rc = gcp_key_file_parse(&k, json, strlen(json), "/keys/sa.json", &err);
    if (rc != CG_EINVAL || err.code != CG_EINVAL || strcmp(err.msg, want) != 0) {
        fail_msg("rc %d, message '%s', want '%s'", rc, err.msg, want);
    }
    /* clean on failure, and never a piece of the key in the message */
    assert_null(k.client_email);
    assert_null(k.private_key);
    assert_null(k.token_uri);
    assert_null(strstr(err.msg, "MII"));
}

static void test_key_parse_errors(void **state)
{
    (void)state;
    char *json;
    const char *pfx = "service-account key file '/keys/sa.json': ";
    char want[300];

    json = key_json("service_account", NULL, KID, rsa_pem, NULL);
    snprintf(want, sizeof(want), "%s\"client_email\" is missing", pfx);
    expect_parse_error(json, want);
    free(json);
    json = key_json("service_account", EMAIL, NULL, rsa_pem, NULL);
    snprintf(want, sizeof(want), "%s\"private_key_id\" is missing", pfx);
    expect_parse_error(json, want);
    free(json);
    json = key_json("service_account", EMAIL, KID, NULL, NULL);
    snprintf(want, sizeof(want), "%s\"private_key\" is missing", pfx);
    expect_parse_error(json, want);
    free(json);
    json = key_json("service_account", "", KID, rsa_pem, NULL);
    snprintf(want, sizeof(want), "%s\"client_email\" is empty", pfx);
    expect_parse_error(json, want);
    free(json);

    snprintf(want, sizeof(want),
             "%s\"type\" must be \"service_account\" (other credential types are not supported)",
             pfx);
    json = key_json("authorized_user", EMAIL, KID, rsa_pem, NULL);
    expect_parse_error(json, want);
    free(json);
    json = key_json(NULL, EMAIL, KID, rsa_pem, NULL);
    expect_parse_error(json, want);
    free(json);
    expect_parse_error("{\"type\":1,\"client_email\":\"a\"}", want);

    snprintf(want, sizeof(want), "%s\"private_key\" is not a string", pfx);
    expect_parse_error("{\"type\":\"service_account\",\"client_email\":\"a\",\"private_key_id\":"
                       "\"b\",\"private_key\":[\"x\"]}",
                       want);

    snprintf(want, sizeof(want), "%snot a JSON object", pfx);
    expect_parse_error("[1,2]", want);
    /* the parser's excerpt would quote the key: only the position is given */
    snprintf(want, sizeof(want), "%snot valid JSON (line 2, column 40)", pfx);
    expect_parse_error(
        "{\"type\":\"service_account\",\n\"private_key\":\"-----BEGIN MIIEvQIBADAN\\q\"}", want);
    snprintf(want, sizeof(want), "%snot valid JSON (line 1, column 0)", pfx);
    expect_parse_error("", want);
    snprintf(want, sizeof(want), "%sa member appears twice (line 1, column 32)", pfx);
    expect_parse_error("{\"type\":\"service_account\",\"type\":\"other\"}", want);

    snprintf(want, sizeof(want),
             "%s\"token_uri\" must be an https:// URL (plain http:// only to a loopback host, no "
             "user name)",
             pfx);
    static const char *const bad_uris[] = {"http://oauth2.googleapis.com/token",
                                           "http://127.0.0.1:80@evil.example/token",
                                           "http://localhost.evil.example/",
                                           "ftp://127.0.0.1/token",
                                           "https://x.example/to ken",
                                           "http://10.0.0.1/token",
                                           "token"};
    for (size_t i = 0; i < sizeof(bad_uris) / sizeof(bad_uris[0]); i++) {
        json = key_json("service_account", EMAIL, KID, rsa_pem, bad_uris[i]);
        expect_parse_error(json, want);
        free(json);
    }
}

/* ---- JWT ----------------------------------------------------------------------------------- */

static void test_jwt(void **state)
{
    (void)state;
    struct gcp_key_file k = {.client_email = EMAIL,
                             .private_key_id = KID,
                             .private_key = rsa_pem,
                             .token_uri = "https://oauth2.googleapis.com/token"};
    char *jwt = NULL;
    struct cg_err err = {0};
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), 0);
    assert_null(strpbrk(jwt, "=+/ \n"));

    struct jwt j;
    jwt_open(jwt, &j);
    assert_true(j.verified);
    assert_int_equal(json_object_size(j.header), 3);
    assert_string_equal(jstr(j.header, "alg"), "RS256");
    assert_string_equal(jstr(j.header, "typ"), "JWT");
    assert_string_equal(jstr(j.header, "kid"), KID);
    assert_int_equal(json_object_size(j.claims), 5);
    assert_string_equal(jstr(j.claims, "iss"), EMAIL);
    assert_string_equal(jstr(j.claims, "scope"), SCOPE);
    assert_string_equal(jstr(j.claims, "aud"), "https://oauth2.googleapis.com/token");
    assert_int_equal(jint(j.claims, "iat"), T0);
    assert_int_equal(jint(j.claims, "exp"), T0 + 3600);
    assert_int_equal(jint(j.claims, "exp") - jint(j.claims, "iat"), 3600);
    jwt_close(&j);

    /* PKCS#1 v1.5 is deterministic (PSS is not): the same input signs the same */
    char *again = NULL;
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &again, &err), 0);
    assert_string_equal(jwt, again);
    free(again);

    /* aud follows token_uri; the PKCS#1 PEM form works too */
    k.token_uri = "http://127.0.0.1:9/token";
    k.private_key = rsa_pem_pkcs1;
    char *other = NULL;
    assert_int_equal(gcp_jwt_assertion(&k, "a b", T0 + 5, &other, &err), 0);
    jwt_open(other, &j);
    assert_true(j.verified);
    assert_string_equal(jstr(j.claims, "aud"), "http://127.0.0.1:9/token");
    assert_string_equal(jstr(j.claims, "scope"), "a b");
    assert_int_equal(jint(j.claims, "iat"), T0 + 5);
    jwt_close(&j);

    /* the signature covers the claims: the first header and signature around the second
     * claims do not verify */
    char spliced[4096];
    const char *d1 = strchr(jwt, '.');
    const char *d2 = strrchr(jwt, '.');
    const char *o1 = strchr(other, '.');
    const char *o2 = strrchr(other, '.');
    snprintf(spliced, sizeof(spliced), "%.*s%.*s%s", (int)(d1 - jwt), jwt, (int)(o2 - o1), o1, d2);
    jwt_open(spliced, &j);
    assert_false(j.verified);
    jwt_close(&j);
    free(jwt);
    free(other);
}

static void test_jwt_refuses(void **state)
{
    (void)state;
    struct gcp_key_file k = {.client_email = EMAIL,
                             .private_key_id = KID,
                             .private_key = ec_pem,
                             .token_uri = "https://oauth2.googleapis.com/token"};
    char *jwt = NULL;
    struct cg_err err = {0};
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), CG_EINVAL);
    assert_string_equal(err.msg, "\"private_key\" is not an RSA key (RS256 needs one)");
    assert_null(jwt);

    /* encrypted: refused, never a passphrase prompt */
    k.private_key = rsa_pem_enc;
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), CG_EINVAL);
    assert_string_equal(err.msg, "\"private_key\" is not an unencrypted PEM private key");
    k.private_key = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), CG_EINVAL);
    k.private_key = "";
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), CG_EINVAL);

    /* OpenSSL's error queue is left as the caller had it, failure or success */
    ERR_raise(ERR_LIB_USER, 42);
    unsigned long mine = ERR_peek_last_error();
    k.private_key = ec_pem;
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), CG_EINVAL);
    assert_int_equal(ERR_peek_last_error(), mine);
    k.private_key = rsa_pem;
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), 0);
    assert_int_equal(ERR_peek_last_error(), mine);
    free(jwt);
    jwt = NULL;
    ERR_clear_error();
    assert_int_equal(gcp_jwt_assertion(&k, SCOPE, T0, &jwt, &err), 0);
    assert_int_equal(ERR_peek_error(), 0);
    free(jwt);
    jwt = NULL;
    assert_int_equal(gcp_jwt_assertion(NULL, SCOPE, T0, &jwt, &err), CG_EINVAL);
    assert_null(jwt);
}

/* ---- gcp_auth_new -------------------------------------------------------------------------- */

static void test_new_errors(void **state)
{
    struct t *t = *state;
    struct gcp_auth *a = NULL;
    struct cg_err err = {0};

    env_set("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json");
    assert_int_equal(gcp_auth_new(&a, t->h, &t->env, &err), CG_EINVAL);
    assert_null(a);
    assert_string_equal(err.msg, "GOOGLE_APPLICATION_CREDENTIALS: cannot open "
                                 "'/nonexistent/key.json': No such file or directory");

    char path[160];
    snprintf(path, sizeof(path), "%s/ec.json", t->dir);
    char *json = key_json("service_account", EMAIL, KID, ec_pem, NULL);
    write_file(path, json);
    free(json);
    env_set("GOOGLE_APPLICATION_CREDENTIALS", path);
    assert_int_equal(gcp_auth_new(&a, t->h, &t->env, &err), CG_EINVAL);
    char want[400];
    snprintf(want, sizeof(want),
             "GOOGLE_APPLICATION_CREDENTIALS: service-account key file '%s': \"private_key\" is "
             "not an RSA key (RS256 needs one)",
             path);
    assert_string_equal(err.msg, want);

    json = key_json("external_account", EMAIL, KID, rsa_pem, NULL);
    write_file(path, json);
    free(json);
    assert_int_equal(gcp_auth_new(&a, t->h, &t->env, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "GOOGLE_APPLICATION_CREDENTIALS: service-account key file"));
    assert_non_null(strstr(err.msg, "\"type\" must be \"service_account\""));
    unlink(path);

    /* a metadata host must be a host[:port] */
    use_metadata(t);
    t->env.metadata_host = "evil.example/x?";
    assert_int_equal(gcp_auth_new(&a, t->h, &t->env, &err), CG_EINVAL);
    assert_string_equal(err.msg, "GCP metadata host 'evil.example/x?' is not a host[:port]");
    t->env.metadata_host = NULL;
    env_set("GCE_METADATA_HOST", "a@b");
    assert_int_equal(gcp_auth_new(&a, t->h, &t->env, &err), CG_EINVAL);
    assert_null(a);
    assert_int_equal(gcp_auth_new(&a, NULL, &t->env, &err), CG_EINVAL);
    assert_null(a);
}

/* ---- the key-file source against http_mock ------------------------------------------------- */

static void test_key_token(void **state)
{
    struct t *t = *state;
    struct got g;
    struct gcp_auth *a = chain(t);
    char want[300];
    snprintf(want, sizeof(want), "service-account key file '%s'", t->key_path);
    /* what is known before any call */
    assert_string_equal(gcp_auth_email(a), EMAIL);
    assert_string_equal(gcp_auth_project_hint(a), "proj-1");
    assert_null(gcp_auth_source(a));

    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK});
    get(t, a, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "ya29.token-one");
    assert_string_equal(gcp_auth_source(a), want);
    assert_int_equal(http_mock_count(t->m), 1);
    assert_string_equal(http_mock_req_method(t->m, 0), "POST");
    assert_string_equal(http_mock_req_target(t->m, 0), "/token");
    assert_string_equal(http_mock_req_header(t->m, 0, "Content-Type"),
                        "application/x-www-form-urlencoded");
    assert_null(http_mock_req_header(t->m, 0, "Authorization"));
    char *jwt = assertion_of(t, 0);
    struct jwt j;
    jwt_open(jwt, &j);
    assert_true(j.verified);
    assert_string_equal(jstr(j.header, "kid"), KID);
    assert_string_equal(jstr(j.claims, "iss"), EMAIL);
    assert_string_equal(jstr(j.claims, "aud"), t->token_uri);
    assert_string_equal(jstr(j.claims, "scope"), SCOPE);
    assert_int_equal(jint(j.claims, "iat"), T0);
    assert_int_equal(jint(j.claims, "exp"), T0 + 3600);
    jwt_close(&j);
    free(jwt);

    /* cached: no request, and still answered from the loop */
    get(t, a, &g);
    assert_string_equal(g.token, "ya29.token-one");
    assert_int_equal(http_mock_count(t->m), 1);

    /* expires_in 3599: kept while 225 s or more remain, refreshed after */
    clock_now = T0 + 3599 - 225;
    get(t, a, &g);
    assert_int_equal(http_mock_count(t->m), 1);
    clock_now = T0 + 3599 - 224;
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK_2});
    get(t, a, &g);
    assert_string_equal(g.token, "ya29.token-two");
    assert_int_equal(http_mock_count(t->m), 2);
    jwt = assertion_of(t, 1);
    jwt_open(jwt, &j);
    assert_int_equal(jint(j.claims, "iat"), T0 + 3599 - 224);
    jwt_close(&j);
    free(jwt);

    /* invalidate forgets */
    gcp_auth_invalidate(a);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK});
    get(t, a, &g);
    assert_string_equal(g.token, "ya29.token-one");
    assert_int_equal(http_mock_count(t->m), 3);
    gcp_auth_free(a);
}

struct multi {
    struct gcp_auth *a;
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
        assert_int_equal(gcp_auth_get_token(m->a, on_token, &m->nested, NULL), 0);
    }
    if (m->free_in_cb) {
        m->free_in_cb = 0;
        gcp_auth_free(m->a);
    }
}

static void test_coalescing(void **state)
{
    struct t *t = *state;
    struct gcp_auth *a = chain(t);
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK, .delay_ms = 50});
    /* three calls, one request, one answer each; a call from inside a callback is served from
     * the new cache */
    struct multi m = {.a = a, .get_in_cb = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gcp_auth_get_token(a, on_multi, &m, NULL), 0);
    }
    assert_int_equal(m.calls, 0);
    cg_http_run(t->h);
    assert_int_equal(m.calls, 3);
    assert_int_equal(m.errors, 0);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(m.tokens[i], "ya29.token-one");
    }
    assert_int_equal(m.nested.calls, 1);
    assert_string_equal(m.nested.token, "ya29.token-one");
    assert_int_equal(http_mock_count(t->m), 1);

    /* a call made while the refresh is in flight joins it */
    gcp_auth_invalidate(a);
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK_2, .delay_ms = 100});
    struct got g1 = {0};
    struct got g2 = {0};
    assert_int_equal(gcp_auth_get_token(a, on_token, &g1, NULL), 0);
    uv_run(&t->loop, UV_RUN_NOWAIT); /* the request is on its way */
    assert_int_equal(gcp_auth_get_token(a, on_token, &g2, NULL), 0);
    cg_http_run(t->h);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g2.calls, 1);
    assert_string_equal(g1.token, "ya29.token-two");
    assert_string_equal(g2.token, "ya29.token-two");
    assert_int_equal(http_mock_count(t->m), 2);

    /* freed from inside a callback while others wait in the same batch: they get the token */
    gcp_auth_invalidate(a);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK});
    struct multi m2 = {.a = a, .free_in_cb = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gcp_auth_get_token(a, on_multi, &m2, NULL), 0);
    }
    cg_http_run(t->h);
    assert_int_equal(m2.calls, 3);
    assert_int_equal(m2.errors, 0);
}

static void test_oauth_errors(void **state)
{
    struct t *t = *state;
    struct got g;
    struct gcp_auth *a = chain(t);
    char want[CG_ERR_MSG_MAX];

    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/token",
                             .status = 400,
                             .body = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid "
                                     "JWT Signature.\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(g.status, 400);
    snprintf(want, sizeof(want),
             "GCP token from key file '%s': invalid_grant: Invalid JWT Signature.", t->key_path);
    assert_string_equal(g.msg, want);
    assert_int_equal(http_mock_count(t->m), 1); /* final: not retried */

    /* 401 with a description that carries control bytes and goes on: printable, cut */
    char desc[600];
    memset(desc, 'd', sizeof(desc));
    memcpy(desc, "line\\none\\u001b[31m", 19);
    desc[sizeof(desc) - 1] = '\0';
    char body[700];
    snprintf(body, sizeof(body), "{\"error\":\"invalid_client\",\"error_description\":\"%s\"}",
             desc);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .status = 401, .body = body});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(g.status, 401);
    snprintf(want, sizeof(want), "GCP token from key file '%s': invalid_client: line?one?[31mddd",
             t->key_path);
    assert_memory_equal(g.msg, want, strlen(want));
    assert_null(strpbrk(g.msg, "\n\x1b"));
    assert_string_equal(g.msg + strlen(g.msg) - 3, "...");
    assert_int_equal(http_mock_count(t->m), 2);

    /* a 403 without an OAuth body */
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/token", .status = 403, .body = "<html>denied</html>"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    snprintf(want, sizeof(want), "GCP token from key file '%s': HTTP 403 (Forbidden)", t->key_path);
    assert_string_equal(g.msg, want);

    /* a 200 without a usable token */
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token",
                                                  .body = "{\"access_token\":\"a b\","
                                                          "\"expires_in\":3600}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EINVAL);
    snprintf(want, sizeof(want), "GCP token from key file '%s': answer has no usable access_token",
             t->key_path);
    assert_string_equal(g.msg, want);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token",
                                                  .body = "{\"access_token\":\"ok\","
                                                          "\"token_type\":\"Bearer\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_non_null(strstr(g.msg, "answer has no valid expires_in"));
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/token",
                                            .body = "{\"access_token\":\"ok\","
                                                    "\"expires_in\":60,\"token_type\":\"MAC\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EINVAL);
    assert_non_null(strstr(g.msg, "token_type is not Bearer"));
    assert_null(gcp_auth_source(a));
    gcp_auth_free(a);
}

static void test_retries(void **state)
{
    struct t *t = *state;
    struct got g;
    struct gcp_auth *a = chain(t);
    clock_step = 1; /* each reading of the clock is a second later */

    /* 500, then success: retried by the engine, with a new assertion */
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token",
                                                  .status = 500,
                                                  .body = "{\"error\":\"internal_failure\"}"});
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK});
    get(t, a, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "ya29.token-one");
    assert_int_equal(http_mock_count(t->m), 2);
    char *j0 = assertion_of(t, 0);
    char *j1 = assertion_of(t, 1);
    struct jwt a0;
    struct jwt a1;
    jwt_open(j0, &a0);
    jwt_open(j1, &a1);
    assert_true(a0.verified && a1.verified);
    assert_true(jint(a1.claims, "iat") > jint(a0.claims, "iat"));
    assert_int_equal(jint(a1.claims, "exp") - jint(a1.claims, "iat"), 3600);
    jwt_close(&a0);
    jwt_close(&a1);
    free(j0);
    free(j1);

    /* retryable OAuth errors that arrive as 400 (error or error_description), then success */
    gcp_auth_invalidate(a);
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/token",
                                            .status = 400,
                                            .body = "{\"error\":\"temporarily_unavailable\"}"});
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/token",
                             .status = 400,
                             .body = "{\"error\":\"x\",\"error_description\":\"server_error\"}"});
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK_2});
    get(t, a, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "ya29.token-two");
    assert_int_equal(http_mock_count(t->m), 5);

    /* a 5xx that lasts: bounded attempts, CG_ESTATUS with the OAuth text */
    gcp_auth_invalidate(a);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token",
                                                  .status = 503,
                                                  .uses = 4,
                                                  .body = "{\"error\":\"server_error\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_ESTATUS);
    assert_int_equal(g.status, 503);
    assert_int_equal(http_mock_count(t->m), 9);
    assert_non_null(strstr(g.msg, "': server_error"));
    gcp_auth_free(a);
}

static void test_stale_token_served(void **state)
{
    struct t *t = *state;
    struct got g;
    struct gcp_auth *a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK});
    get(t, a, &g);
    /* 100 s left: refreshed, but a failed refresh still serves the token that works */
    clock_now = T0 + 3599 - 100;
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token",
                                                  .status = 400,
                                                  .body = "{\"error\":\"invalid_grant\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "ya29.token-one");
    assert_int_equal(http_mock_count(t->m), 2);
    /* 30 s left: not any more */
    clock_now = T0 + 3599 - 30;
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token",
                                                  .status = 400,
                                                  .body = "{\"error\":\"invalid_grant\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(http_mock_count(t->m), 3);
    gcp_auth_free(a);
}

static void test_free_with_pending_get(void **state)
{
    struct t *t = *state;
    struct got g = {0};
    struct gcp_auth *a = chain(t);

    /* before the refresh starts */
    assert_int_equal(gcp_auth_get_token(a, on_token, &g, NULL), 0);
    gcp_auth_free(a);
    cg_http_run(t->h);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, CG_ECANCELED);
    assert_int_equal(http_mock_count(t->m), 0);

    /* while the request is in flight: answered at once, the memory goes when the request ends */
    a = chain(t);
    memset(&g, 0, sizeof(g));
    http_mock_push(t->m,
                   &(struct http_mock_resp){.path = "/token", .body = TOKEN_OK, .delay_ms = 300});
    assert_int_equal(gcp_auth_get_token(a, on_token, &g, NULL), 0);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    gcp_auth_free(a);
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
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .action = HTTP_MOCK_HANG});
    assert_int_equal(gcp_auth_get_token(a, on_token, &g, NULL), 0);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 0);
    cg_http_close(t->h);
    t->h = NULL;
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, CG_ECANCELED);
    /* and later calls are refused at once */
    struct cg_err err = {0};
    struct got g2 = {0};
    assert_int_equal(gcp_auth_get_token(a, on_token, &g2, &err), CG_ECANCELED);
    gcp_auth_free(a);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g2.calls, 0);
}

/* ---- the metadata source ------------------------------------------------------------------- */

static void test_metadata(void **state)
{
    struct t *t = *state;
    struct got g;
    use_metadata(t);
    struct gcp_auth *a = chain(t);
    assert_null(gcp_auth_email(a));
    assert_null(gcp_auth_project_hint(a));
    http_mock_push(t->m,
                   &(struct http_mock_resp){
                       .path = MD_TOKEN, .headers = FLAVOR, .body = TOKEN_OK, .delay_ms = 20});
    http_mock_push(t->m, &(struct http_mock_resp){.path = MD_EMAIL,
                                                  .headers = FLAVOR,
                                                  .body = "gsa@proj-1.iam.gserviceaccount.com\n",
                                                  .delay_ms = 40});
    get(t, a, &g);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.token, "ya29.token-one");
    assert_string_equal(gcp_auth_source(a), "metadata server");
    /* the email is known when the token is */
    assert_string_equal(gcp_auth_email(a), "gsa@proj-1.iam.gserviceaccount.com");
    assert_null(gcp_auth_project_hint(a));
    assert_int_equal(http_mock_count(t->m), 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(http_mock_req_method(t->m, i), "GET");
        assert_string_equal(http_mock_req_header(t->m, i, "Metadata-Flavor"), "Google");
        assert_int_equal(http_mock_req_header_count(t->m, i, "Metadata-Flavor"), 1);
    }
    assert_true(req_index(t, MD_TOKEN, 0) >= 0);
    assert_true(req_index(t, MD_EMAIL, 0) >= 0);

    /* cached; then a refresh asks for the token only */
    get(t, a, &g);
    assert_int_equal(http_mock_count(t->m), 2);
    gcp_auth_invalidate(a);
    http_mock_push(
        t->m, &(struct http_mock_resp){.path = MD_TOKEN, .headers = FLAVOR, .body = TOKEN_OK_2});
    get(t, a, &g);
    assert_string_equal(g.token, "ya29.token-two");
    assert_int_equal(http_mock_count(t->m), 3);
    assert_int_equal(req_count(t, MD_EMAIL), 1);

    /* the metadata server refusing (no service account for this pod) */
    gcp_auth_invalidate(a);
    http_mock_push(t->m,
                   &(struct http_mock_resp){
                       .path = MD_TOKEN, .headers = FLAVOR, .status = 404, .body = "not found"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_int_equal(g.status, 404);
    char want[200];
    snprintf(want, sizeof(want), "GCP token from metadata server '%s': HTTP 404 (Not Found)",
             t->md_host);
    assert_string_equal(g.msg, want);
    gcp_auth_free(a);
}

static void test_metadata_without_flavor(void **state)
{
    struct t *t = *state;
    struct got g;
    use_metadata(t);
    env_set("GCE_METADATA_HOST", t->md_host); /* through the variable this time */
    t->env.metadata_host = NULL;
    struct gcp_auth *a = chain(t);
    /* something answers, but not the metadata server: not a source */
    http_mock_push(t->m, &(struct http_mock_resp){.path = MD_TOKEN, .body = TOKEN_OK});
    http_mock_push(t->m, &(struct http_mock_resp){.path = MD_EMAIL, .body = "x@y.z"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, NO_SOURCE);
    assert_null(gcp_auth_email(a));
    assert_null(gcp_auth_source(a));
    assert_int_equal(http_mock_count(t->m), 2);
    /* a wrong flavour is no better */
    http_mock_push(t->m, &(struct http_mock_resp){.path = MD_TOKEN,
                                                  .headers = "Metadata-Flavor: Amazon\r\n",
                                                  .body = TOKEN_OK});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, NO_SOURCE);
    gcp_auth_free(a);
}

static void test_metadata_absent(void **state)
{
    struct t *t = *state;
    struct got g;

    /* neither a key file nor the metadata server allowed: nothing is asked */
    env_set("GOOGLE_APPLICATION_CREDENTIALS", "");
    struct gcp_auth *a = chain(t);
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, NO_SOURCE);
    assert_int_equal(http_mock_count(t->m), 0);
    gcp_auth_free(a);

    /* a metadata server that never answers: bounded attempts, bounded time */
    use_metadata(t);
    t->env.metadata_timeout_ms = 200;
    http_mock_set_default(t->m, &(struct http_mock_resp){.action = HTTP_MOCK_HANG, .uses = -1});
    a = chain(t);
    uint64_t t0 = uv_hrtime();
    get(t, a, &g);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(g.code, CG_EAUTH);
    assert_string_equal(g.msg, NO_SOURCE);
    assert_true(ms < 3000);
    assert_int_equal(req_count(t, MD_TOKEN), 3);
    gcp_auth_free(a);
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

    /* key file: a retry, a success, a refusal */
    struct gcp_auth *a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){.path = "/token", .status = 503});
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/token",
                             .body = "{\"access_token\":\"ya29.LOG-CANARY-1\",\"expires_in\":3599,"
                                     "\"token_type\":\"Bearer\"}"});
    get(t, a, &g);
    assert_string_equal(g.token, "ya29.LOG-CANARY-1");
    gcp_auth_invalidate(a);
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = "/token",
                             .status = 400,
                             .body = "{\"error\":\"invalid_grant\",\"error_description\":\"no\","
                                     "\"access_token\":\"ya29.LOG-CANARY-2\"}"});
    get(t, a, &g);
    assert_int_equal(g.code, CG_EAUTH);
    assert_null(strstr(g.msg, "LOG-CANARY"));
    char *jwt = assertion_of(t, 0);
    gcp_auth_free(a);

    /* metadata */
    use_metadata(t);
    a = chain(t);
    http_mock_push(t->m, &(struct http_mock_resp){
                             .path = MD_TOKEN,
                             .headers = FLAVOR,
                             .body = "{\"access_token\":\"ya29.LOG-CANARY-3\",\"expires_in\":1234,"
                                     "\"token_type\":\"Bearer\"}"});
    http_mock_push(t->m, &(struct http_mock_resp){.path = MD_EMAIL,
                                                  .headers = FLAVOR,
                                                  .body = "gsa@p.iam.gserviceaccount.com"});
    get(t, a, &g);
    assert_string_equal(g.token, "ya29.LOG-CANARY-3");
    gcp_auth_free(a);
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
    assert_non_null(strstr(log, "GCP token from metadata server, expires in 1234 s"));
    assert_non_null(strstr(log, "GCP token from service-account key file '"));
    assert_non_null(strstr(log, "Metadata-Flavor: <redacted>"));
    /* tokens, the assertion and its pieces, the key, the bodies */
    assert_null(strstr(log, "LOG-CANARY"));
    assert_null(strstr(log, "assertion"));
    assert_null(strstr(log, "expires_in"));
    assert_null(strstr(log, "eyJ")); /* any base64url JSON object, a JWT's first bytes */
    char piece[41];
    const char *sig = strrchr(jwt, '.') + 1;
    snprintf(piece, sizeof(piece), "%s", sig);
    assert_null(strstr(log, piece));
    /* every line of the key's PEM body */
    char *pem = strdup(rsa_pem);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(pem, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "-----", 5) != 0) {
            assert_null(strstr(log, line));
            lines++;
        }
    }
    assert_true(lines > 20);
    free(pem);
    free(jwt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test(test_key_parse_errors),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_jwt_refuses),
        cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oauth_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_token_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_without_flavor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_has_no_secrets, setup, teardown),
    };
    return cmocka_run_group_tests_name("gcp_auth", tests, group_setup, group_teardown);
}
