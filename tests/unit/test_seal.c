/* Unit tests for agent/seal.c. Tokens are opened here with OpenSSL's primitives driven the way
 * RFC 7516/7518 describe, independently of the sealing code's structure; the e2e test opens
 * them with another JOSE implementation. Keys are generated at start-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_util.h"
#include "seal.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

struct keys {
    EVP_PKEY *rsa2048;
    EVP_PKEY *rsa1024;
    char *pub2048;
    char *pub1024;
    char *cert2048;
    char *cert1024;
    char *priv2048;
};

static struct keys K;

static char *bio_string(BIO *bio)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    char *s = malloc((size_t)n + 1);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    BIO_free(bio);
    return s;
}

static char *pub_pem(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
    return bio_string(bio);
}

static char *priv_pem(EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    return bio_string(bio);
}

/* A self-signed certificate for pk, as the platform might publish its key. */
static char *cert_pem(EVP_PKEY *pk)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"platform", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pk);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    X509_free(x);
    return bio_string(bio);
}

static int setup(void **state)
{
    (void)state;
    K.rsa2048 = EVP_RSA_gen(2048);
    K.rsa1024 = EVP_RSA_gen(1024);
    if (K.rsa2048 == NULL || K.rsa1024 == NULL) {
        return -1;
    }
    K.pub2048 = pub_pem(K.rsa2048);
    K.pub1024 = pub_pem(K.rsa1024);
    K.cert2048 = cert_pem(K.rsa2048);
    K.cert1024 = cert_pem(K.rsa1024);
    K.priv2048 = priv_pem(K.rsa2048);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(K.rsa2048);
    EVP_PKEY_free(K.rsa1024);
    free(K.pub2048);
    free(K.pub1024);
    free(K.cert2048);
    free(K.cert1024);
    free(K.priv2048);
    return 0;
}

static struct cg_seal_key *load(const char *pem)
{
    struct cg_seal_key *k = NULL;
    struct cg_err err = {0};
    int rc = cg_seal_key_load(&k, pem, strlen(pem), "platform.pem", &err);
    if (rc != 0) {
        print_error("load: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(k);
    return k;
}

static char *seal(const struct cg_seal_key *k, const void *plain, size_t len)
{
    char *tok = NULL;
    struct cg_err err = {0};
    int rc = cg_seal_jwe(k, plain, len, &tok, &err);
    if (rc != 0) {
        print_error("seal: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(tok);
    return tok;
}

struct parts {
    char *seg[5]; /* point into buf */
    char *buf;
};

/* Splits a compact token; fails the test unless there are exactly five segments. */
static void split(const char *tok, struct parts *p)
{
    p->buf = strdup(tok);
    char *s = p->buf;
    for (int i = 0; i < 5; i++) {
        p->seg[i] = s;
        char *dot = strchr(s, '.');
        if (i < 4) {
            assert_non_null(dot);
            *dot = '\0';
            s = dot + 1;
        } else {
            assert_null(dot);
        }
    }
}

/* Decodes unpadded base64url; NULL when the text is not base64url. */
static unsigned char *b64url_dec(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *t = malloc(n + 1);
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=') {
            free(t);
            return NULL;
        }
        t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    unsigned char *out = NULL;
    int rc = cg_b64_decode(t, n, &out, len);
    free(t);
    return rc == 0 ? out : NULL;
}

static char *b64url_enc(const unsigned char *in, size_t len)
{
    char *s = cg_b64_encode(in, len);
    size_t j = 0;
    for (size_t i = 0; s[i] != '\0' && s[i] != '='; i++) {
        s[j++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    }
    s[j] = '\0';
    return s;
}

/* Opens a token with priv: RSA-OAEP(SHA-256, MGF1-SHA-256) unwraps the CEK, AES-256-GCM with
 * the first segment as AAD checks the tag. Returns 0 and the plaintext (and the CEK when cek is
 * not NULL), or -1 when anything does not verify. */
static int open_jwe(EVP_PKEY *priv, const char *tok, unsigned char **plain, size_t *plen,
                    unsigned char *cek)
{
    struct parts p;
    split(tok, &p);
    size_t len[5] = {0};
    unsigned char *bin[5] = {NULL};
    unsigned char key[512]; /* OpenSSL wants room for a whole modulus */
    size_t keylen = sizeof(key);
    unsigned char *pt = NULL;
    int ok = 0;
    int outl = 0;
    for (int i = 1; i < 5; i++) {
        bin[i] = b64url_dec(p.seg[i], &len[i]);
        if (bin[i] == NULL) {
            goto out;
        }
    }
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    int unwrapped = EVP_PKEY_decrypt_init(pctx) > 0 &&
                    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
                    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) > 0 &&
                    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0 &&
                    EVP_PKEY_decrypt(pctx, key, &keylen, bin[1], len[1]) > 0;
    EVP_PKEY_CTX_free(pctx);
    if (!unwrapped || keylen != 32 || len[2] != 12 || len[4] != 16) {
        goto out;
    }
    pt = malloc(len[3] + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, bin[2]) == 1 &&
         EVP_DecryptUpdate(c, NULL, &outl, (const unsigned char *)p.seg[0],
                           (int)strlen(p.seg[0])) == 1 &&
         EVP_DecryptUpdate(c, pt, &outl, bin[3], (int)len[3]) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, bin[4]) == 1 &&
         EVP_DecryptFinal_ex(c, pt + outl, &outl) == 1;
    EVP_CIPHER_CTX_free(c);
out:
    ERR_clear_error();
    for (int i = 0; i < 5; i++) {
        free(bin[i]);
    }
    free(p.buf);
    if (!ok) {
        free(pt);
        return -1;
    }
    if (cek != NULL) {
        memcpy(cek, key, 32);
    }
    *plain = pt;
    *plen = len[3];
    return 0;
}

static void test_structure(void **state)
{
    (void)state;
    struct cg_seal_key *k = load(K.pub2048);
    const char *msg = "{\"cluster\":\"prod\"}";
    char *tok = seal(k, msg, strlen(msg));
    for (const char *c = tok; *c != '\0'; c++) {
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *c));
    }
    struct parts p;
    split(tok, &p);
    size_t n = 0;
    unsigned char *b = NULL;
    const size_t want[5] = {0, 256, 12, strlen(msg), 16}; /* the CEK wraps to the modulus size */
    for (int i = 1; i < 5; i++) {
        b = b64url_dec(p.seg[i], &n);
        assert_non_null(b);
        assert_int_equal(n, want[i]);
        free(b);
    }
    free(p.buf);
    free(tok);
    cg_seal_key_free(k);
}

static void test_header(void **state)
{
    (void)state;
    struct cg_seal_key *k = load(K.pub2048);
    char *tok = seal(k, "{}", 2);
    struct parts p;
    split(tok, &p);
    size_t n = 0;
    unsigned char *h = b64url_dec(p.seg[0], &n);
    assert_non_null(h);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)h, n, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 4);
    assert_string_equal(json_string_value(json_object_get(j, "alg")), "RSA-OAEP-256");
    assert_string_equal(json_string_value(json_object_get(j, "enc")), "A256GCM");
    assert_string_equal(json_string_value(json_object_get(j, "cty")), "application/json");
    const char *kid = json_string_value(json_object_get(j, "kid"));
    assert_non_null(kid);
    assert_int_equal(strlen(kid), 43); /* base64url of a SHA-256 */
    json_decref(j);
    free(h);
    free(p.buf);
    free(tok);
    cg_seal_key_free(k);
}

static void roundtrip(const struct cg_seal_key *k, const unsigned char *msg, size_t len)
{
    char *tok = seal(k, msg, len);
    unsigned char *out = NULL;
    size_t outlen = 0;
    assert_int_equal(open_jwe(K.rsa2048, tok, &out, &outlen, NULL), 0);
    assert_int_equal(outlen, len);
    if (len > 0) {
        assert_memory_equal(out, msg, len);
    }
    free(out);
    free(tok);
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct cg_seal_key *k = load(K.pub2048);
    roundtrip(k, NULL, 0);
    roundtrip(k, (const unsigned char *)"{\"n\":\"\xc3\xa9t\xc3\xa9\"}", 13);
    /* Lengths around the sealing code's chunk size and the base64 groups. */
    size_t sizes[] = {1, 2, 3, 4, 6143, 6144, 6145, 12289, 100 * 1024};
    unsigned char *big = malloc(100 * 1024);
    for (size_t i = 0; i < 100 * 1024; i++) {
        big[i] = (unsigned char)(i * 131 + 7);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        roundtrip(k, big, sizes[i]);
    }
    free(big);
    cg_seal_key_free(k);
}

static void test_fresh_each_call(void **state)
{
    (void)state;
    struct cg_seal_key *k = load(K.pub2048);
    const char *msg = "{\"same\":\"text\"}";
    char *t1 = seal(k, msg, strlen(msg));
    char *t2 = seal(k, msg, strlen(msg));
    struct parts a;
    struct parts b;
    split(t1, &a);
    split(t2, &b);
    assert_string_equal(a.seg[0], b.seg[0]);
    assert_string_not_equal(a.seg[1], b.seg[1]);
    assert_string_not_equal(a.seg[2], b.seg[2]); /* IV */
    assert_string_not_equal(a.seg[3], b.seg[3]);
    unsigned char cek1[32];
    unsigned char cek2[32];
    unsigned char *out = NULL;
    size_t outlen = 0;
    assert_int_equal(open_jwe(K.rsa2048, t1, &out, &outlen, cek1), 0);
    free(out);
    assert_int_equal(open_jwe(K.rsa2048, t2, &out, &outlen, cek2), 0);
    free(out);
    assert_memory_not_equal(cek1, cek2, 32);
    free(a.buf);
    free(b.buf);
    free(t1);
    free(t2);
    cg_seal_key_free(k);
}

/* Replaces segment i with a copy whose decoded first byte has one bit flipped. */
static char *tamper(const char *tok, int i)
{
    struct parts p;
    split(tok, &p);
    size_t n = 0;
    unsigned char *b = b64url_dec(p.seg[i], &n);
    assert_non_null(b);
    assert_true(n > 0);
    b[0] ^= 0x01;
    char *enc = b64url_enc(b, n);
    free(b);
    size_t cap = strlen(tok) + 8;
    char *out = malloc(cap);
    out[0] = '\0';
    for (int j = 0; j < 5; j++) {
        strcat(out, j == i ? enc : p.seg[j]);
        if (j < 4) {
            strcat(out, ".");
        }
    }
    free(enc);
    free(p.buf);
    return out;
}

static void test_tampering_detected(void **state)
{
    (void)state;
    struct cg_seal_key *k = load(K.pub2048);
    const char *msg = "{\"grant\":\"read-only\"}";
    char *tok = seal(k, msg, strlen(msg));
    unsigned char *out = NULL;
    size_t outlen = 0;
    assert_int_equal(open_jwe(K.rsa2048, tok, &out, &outlen, NULL), 0);
    free(out);
    /* Segment 0 included: the header is authenticated as AAD. */
    for (int i = 0; i < 5; i++) {
        char *bad = tamper(tok, i);
        assert_int_equal(open_jwe(K.rsa2048, bad, &out, &outlen, NULL), -1);
        free(bad);
    }
    free(tok);
    cg_seal_key_free(k);
}

/* RFC 7638 §3.1's example key and thumbprint. */
static void test_kid_rfc7638_vector(void **state)
{
    (void)state;
    const char *n64 =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
        "65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk"
        "t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw";
    size_t nlen = 0;
    unsigned char *nbin = b64url_dec(n64, &nlen);
    assert_non_null(nbin);
    BIGNUM *n = BN_bin2bn(nbin, (int)nlen, NULL);
    BIGNUM *e = BN_new();
    BN_set_word(e, 65537);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pk = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
    char *pem = pub_pem(pk);

    struct cg_seal_key *k = load(pem);
    char *tok = seal(k, "{}", 2);
    struct parts p;
    split(tok, &p);
    size_t hlen = 0;
    unsigned char *h = b64url_dec(p.seg[0], &hlen);
    json_t *j = json_loadb((const char *)h, hlen, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kid")),
                        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    json_decref(j);
    free(h);
    free(p.buf);
    free(tok);
    cg_seal_key_free(k);
    free(pem);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nbin);
}

static void expect_refused(const char *pem, size_t len, const char *want)
{
    struct cg_seal_key *k = NULL;
    struct cg_err err = {0};
    assert_int_equal(cg_seal_key_load(&k, pem, len, "platform.pem", &err), CG_EINVAL);
    assert_null(k);
    if (strstr(err.msg, "'platform.pem'") == NULL || strstr(err.msg, want) == NULL) {
        fail_msg("message \"%s\" lacks 'platform.pem' or \"%s\"", err.msg, want);
    }
    /* Parsing errors must not linger in the thread's OpenSSL queue. */
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_small_key_refused(void **state)
{
    (void)state;
    expect_refused(K.pub1024, strlen(K.pub1024), "1024 bits; at least 2048");
    expect_refused(K.cert1024, strlen(K.cert1024), "1024 bits; at least 2048");
}

static void test_garbage_refused(void **state)
{
    (void)state;
    expect_refused("", 0, "is empty");
    expect_refused("hello", 5, "not PEM");
    const char bin[] = {'\0', '\x01', '\xff', '-', '-'};
    expect_refused(bin, sizeof(bin), "not PEM");
    const char *bad64 = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
    expect_refused(bad64, strlen(bad64), "malformed PEM");
    const char *notder = "-----BEGIN PUBLIC KEY-----\naGVsbG8gd29ybGQ=\n-----END PUBLIC KEY-----\n";
    expect_refused(notder, strlen(notder), "not a valid SubjectPublicKeyInfo");
    const char *notcert =
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    expect_refused(notcert, strlen(notcert), "not a valid X.509");
    const char *other = "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n"
                        "-----END CERTIFICATE REQUEST-----\n";
    expect_refused(other, strlen(other), "'CERTIFICATE REQUEST', not");
    /* Truncated in the middle of the base64. */
    expect_refused(K.pub2048, strlen(K.pub2048) / 2, "malformed PEM");
    expect_refused(K.priv2048, strlen(K.priv2048), "private key");

    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    char *ecpem = pub_pem(ec);
    expect_refused(ecpem, strlen(ecpem), "type 'EC'");
    free(ecpem);
    EVP_PKEY_free(ec);

    /* Refused by its label, so its content does not matter. */
    const char *pkcs1 = "-----BEGIN RSA PUBLIC KEY-----\naGVsbG8=\n-----END RSA PUBLIC KEY-----\n";
    expect_refused(pkcs1, strlen(pkcs1), "PKCS#1");
}

static void test_certificate_accepted(void **state)
{
    (void)state;
    struct cg_seal_key *kp = load(K.pub2048);
    struct cg_seal_key *kc = load(K.cert2048);
    char *tp = seal(kp, "{}", 2);
    char *tc = seal(kc, "{}", 2);
    struct parts a;
    struct parts b;
    split(tp, &a);
    split(tc, &b);
    assert_string_equal(a.seg[0], b.seg[0]); /* same key, same kid */
    free(a.buf);
    free(b.buf);
    roundtrip(kc, (const unsigned char *)"{\"via\":\"cert\"}", 14);

    /* A bundle: leading text and an unrelated block before the certificate. */
    size_t cap = strlen(K.cert2048) + 256;
    char *bundle = malloc(cap);
    snprintf(bundle, cap,
             "platform key\n-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n"
             "-----END CERTIFICATE REQUEST-----\n%s",
             K.cert2048);
    struct cg_seal_key *kb = load(bundle);
    roundtrip(kb, (const unsigned char *)"x", 1);
    cg_seal_key_free(kb);
    free(bundle);
    free(tp);
    free(tc);
    cg_seal_key_free(kp);
    cg_seal_key_free(kc);
}

static void test_null_source(void **state)
{
    (void)state;
    struct cg_seal_key *k = NULL;
    struct cg_err err = {0};
    assert_int_equal(cg_seal_key_load(&k, "x", 1, NULL, &err), CG_EINVAL);
    assert_non_null(strstr(err.msg, "sealing key"));
    assert_int_equal(cg_seal_key_load(&k, "x", 1, "k", NULL), CG_EINVAL);
    cg_seal_key_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_fresh_each_call),
        cmocka_unit_test(test_tampering_detected),
        cmocka_unit_test(test_kid_rfc7638_vector),
        cmocka_unit_test(test_small_key_refused),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_certificate_accepted),
        cmocka_unit_test(test_null_source),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
