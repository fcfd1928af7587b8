/* agent/seal.c: JWE (RFC 7516) compact serialization with RSA-OAEP-256 and A256GCM, so that a
 * document reaches the platform readable only with the platform's private key. */
#include "seal.h"

#include "cg_buf.h"
#include "cg_yaml.h"

#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CEK_LEN 32 /* A256GCM */
#define IV_LEN  12 /* 96 bits, the size GCM handles without hashing the IV */
#define TAG_LEN 16
/* NIST SP 800-38D caps one GCM message at 2^39 - 256 bits. */
#define GCM_MAX_PLAIN ((UINT64_C(1) << 36) - 32)
/* Ciphertext is base64url-encoded as it is produced, a chunk at a time; a multiple of 3 keeps
 * the encoding of consecutive chunks continuous. */
#define CHUNK (3 * 2048)

struct cg_seal_key {
    EVP_PKEY *pkey;
    char *header; /* base64url protected header: the token's first segment and the GCM AAD */
};

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Writes the unpadded base64url of in at dst (no NUL); returns the end. */
static char *b64url_put(char *dst, const unsigned char *in, size_t n)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *dst++ = B64URL[v >> 18 & 63];
        *dst++ = B64URL[v >> 12 & 63];
        *dst++ = B64URL[v >> 6 & 63];
        *dst++ = B64URL[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *dst++ = B64URL[v >> 18 & 63];
        *dst++ = B64URL[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *dst++ = B64URL[v >> 18 & 63];
        *dst++ = B64URL[v >> 12 & 63];
        *dst++ = B64URL[v >> 6 & 63];
    }
    return dst;
}

static char *b64url_dup(const unsigned char *in, size_t n)
{
    char *s = malloc(b64url_len(n) + 1);
    if (s != NULL) {
        *b64url_put(s, in, n) = '\0';
    }
    return s;
}

/* The reason OpenSSL gave for the most recent failure, for a message. */
static const char *ossl_reason(void)
{
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    return r != NULL ? r : "unknown error";
}

static int crypto_fail(struct cg_err *err, const char *what)
{
    return cg_err_set(err, CG_EIO, "%s failed: %s", what, ossl_reason());
}

/* A JWK member (RFC 7518 §6.3.1: unsigned big-endian, no leading zero octets) as base64url. */
static char *bn_b64url(const BIGNUM *bn)
{
    int n = BN_num_bytes(bn);
    unsigned char *bin = malloc(n > 0 ? (size_t)n : 1);
    if (bin == NULL) {
        return NULL;
    }
    BN_bn2bin(bn, bin);
    char *s = b64url_dup(bin, (size_t)n);
    free(bin);
    return s;
}

/* Checks the RSA parameters and builds the protected header, whose kid is the RFC 7638
 * thumbprint: the platform may hold several keys (rotation) and must know which one to use. */
static int make_header(struct cg_seal_key *k, const char *src, struct cg_err *err)
{
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    char *n64 = NULL;
    char *e64 = NULL;
    char *jwk = NULL;
    char *kid = NULL;
    char *hdr = NULL;
    int rc = 0;

    if (!EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
        rc = cg_err_set(err, CG_EINVAL, "'%s': cannot read the RSA key's parameters: %s", src,
                        ossl_reason());
        goto out;
    }
    /* An even or unit exponent cannot be an RSA key anyone can decrypt with (e = 1 would even
     * leave the CEK in clear). */
    if (!BN_is_odd(e) || BN_is_one(e) || !BN_is_odd(n)) {
        rc = cg_err_set(err, CG_EINVAL, "'%s': the RSA public key is not valid", src);
        goto out;
    }
    n64 = bn_b64url(n);
    e64 = bn_b64url(e);
    if (n64 == NULL || e64 == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    /* RFC 7638 §3.2: required members only, sorted, no whitespace. */
    size_t jlen = strlen(n64) + strlen(e64) + 64;
    jwk = malloc(jlen);
    if (jwk == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    snprintf(jwk, jlen, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e64, n64);
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(jwk, strlen(jwk), md, &mdlen, EVP_sha256(), NULL)) {
        rc = crypto_fail(err, "SHA-256");
        goto out;
    }
    kid = b64url_dup(md, mdlen);
    if (kid == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    char json[160];
    int hl = snprintf(json, sizeof(json),
                      "{\"alg\":\"RSA-OAEP-256\",\"enc\":\"A256GCM\",\"cty\":\"application/"
                      "json\",\"kid\":\"%s\"}",
                      kid);
    if (hl < 0 || (size_t)hl >= sizeof(json)) {
        rc = cg_err_set(err, CG_EIO, "protected header too long"); /* a 43-byte kid fits */
        goto out;
    }
    hdr = b64url_dup((const unsigned char *)json, (size_t)hl);
    if (hdr == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    k->header = hdr;
    hdr = NULL;
out:
    if (rc == CG_ENOMEM) {
        cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    BN_free(n);
    BN_free(e);
    free(n64);
    free(e64);
    free(jwk);
    free(kid);
    free(hdr);
    return rc;
}

/* The public key of the first "PUBLIC KEY" or certificate block; CG_EINVAL with a message that
 * says what was found instead. */
static int read_pem(BIO *bio, const char *src, EVP_PKEY **out, struct cg_err *err)
{
    char first[48] = "";
    int saw_private = 0;
    int saw_pkcs1 = 0;
    for (;;) {
        char *name = NULL;
        char *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
            if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
                return cg_err_set(err, CG_EINVAL, "'%s': malformed PEM block: %s", src,
                                  ossl_reason());
            }
            break;
        }
        const unsigned char *p = data;
        EVP_PKEY *pkey = NULL;
        int rc = 1; /* 1: not a block we use, keep looking */
        if (strcmp(name, PEM_STRING_PUBLIC) == 0) {
            pkey = d2i_PUBKEY(NULL, &p, dlen);
            if (pkey == NULL || p != data + dlen) {
                rc = cg_err_set(err, CG_EINVAL,
                                "'%s': the 'PUBLIC KEY' block is not a valid SubjectPublicKeyInfo",
                                src);
            } else {
                rc = 0;
            }
        } else if (strcmp(name, PEM_STRING_X509) == 0 || strcmp(name, PEM_STRING_X509_OLD) == 0) {
            X509 *cert = d2i_X509(NULL, &p, dlen);
            if (cert == NULL || p != data + dlen) {
                rc = cg_err_set(err, CG_EINVAL,
                                "'%s': the 'CERTIFICATE' block is not a valid X.509 certificate",
                                src);
            } else if ((pkey = X509_get_pubkey(cert)) == NULL) {
                rc = cg_err_set(err, CG_EINVAL, "'%s': cannot read the certificate's key: %s", src,
                                ossl_reason());
            } else {
                rc = 0;
            }
            X509_free(cert);
        } else if (strcmp(name, PEM_STRING_RSA_PUBLIC) == 0) {
            saw_pkcs1 = 1;
        } else if (strstr(name, "PRIVATE KEY") != NULL) {
            saw_private = 1;
        } else if (first[0] == '\0') {
            cg_yaml_printable(first, sizeof(first), name);
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_clear_free(data, (size_t)dlen); /* may be a private key */
        if (rc <= 0) {
            if (rc < 0) {
                EVP_PKEY_free(pkey);
            } else {
                *out = pkey;
            }
            return rc;
        }
    }
    if (saw_pkcs1) {
        return cg_err_set(err, CG_EINVAL,
                          "'%s' holds a PKCS#1 'RSA PUBLIC KEY'; convert it with 'openssl rsa "
                          "-RSAPublicKey_in -pubout'",
                          src);
    }
    if (saw_private) {
        return cg_err_set(err, CG_EINVAL,
                          "'%s' holds a private key; give the platform's public key or "
                          "certificate instead",
                          src);
    }
    if (first[0] != '\0') {
        return cg_err_set(err, CG_EINVAL,
                          "'%s' holds a PEM '%s', not a 'PUBLIC KEY' or a 'CERTIFICATE'", src,
                          first);
    }
    return cg_err_set(err, CG_EINVAL, "'%s' is not PEM: no '-----BEGIN' line", src);
}

int cg_seal_key_load(struct cg_seal_key **out, const char *pem, size_t len, const char *source,
                     struct cg_err *err)
{
    const char *src = source != NULL ? source : "sealing key";
    struct cg_seal_key *k = NULL;
    BIO *bio = NULL;
    int rc = 0;

    /* Whatever OpenSSL queues while parsing untrusted input is ours to drop: leaving it would
     * confuse the next caller on this thread that inspects the queue (libcurl does). */
    ERR_set_mark();
    if (len == 0) {
        rc = cg_err_set(err, CG_EINVAL, "'%s' is empty", src);
        goto out;
    }
    if (len > INT_MAX) {
        rc = cg_err_set(err, CG_EINVAL, "'%s' is too large for a public key", src);
        goto out;
    }
    k = calloc(1, sizeof(*k));
    bio = BIO_new_mem_buf(pem, (int)len);
    if (k == NULL || bio == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    rc = read_pem(bio, src, &k->pkey, err);
    if (rc != 0) {
        goto out;
    }
    /* RSA-PSS keys are signature-only; anything else cannot do RSA-OAEP. */
    if (!EVP_PKEY_is_a(k->pkey, "RSA")) {
        const char *type = EVP_PKEY_get0_type_name(k->pkey);
        rc = cg_err_set(err, CG_EINVAL, "'%s' holds a key of type '%s'; sealing needs RSA", src,
                        type != NULL ? type : "unknown");
        goto out;
    }
    int bits = EVP_PKEY_get_bits(k->pkey);
    if (bits < CG_SEAL_MIN_BITS) {
        rc = cg_err_set(err, CG_EINVAL, "'%s': the RSA key has %d bits; at least %d are required",
                        src, bits, CG_SEAL_MIN_BITS);
        goto out;
    }
    if (bits > CG_SEAL_MAX_BITS) {
        rc = cg_err_set(err, CG_EINVAL, "'%s': the RSA key has %d bits; at most %d are supported",
                        src, bits, CG_SEAL_MAX_BITS);
        goto out;
    }
    rc = make_header(k, src, err);
    if (rc != 0) {
        goto out;
    }
    *out = k;
    k = NULL;
out:
    BIO_free(bio);
    cg_seal_key_free(k);
    ERR_pop_to_mark();
    return rc;
}

void cg_seal_key_free(struct cg_seal_key *k)
{
    if (k != NULL) {
        EVP_PKEY_free(k->pkey);
        free(k->header);
        free(k);
    }
}

/* RSAES-OAEP with SHA-256 for both the label hash and MGF1, which is what "RSA-OAEP-256"
 * means (RFC 7518 §4.3); OpenSSL's default MGF1 digest would otherwise follow the OAEP digest
 * only by convention, so both are set. */
static int wrap_cek(const struct cg_seal_key *k, const unsigned char *cek, unsigned char **ek,
                    size_t *eklen, struct cg_err *err)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc = 0;
    if (pctx == NULL || EVP_PKEY_encrypt_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_encrypt(pctx, NULL, &n, cek, CEK_LEN) <= 0) {
        rc = crypto_fail(err, "RSA-OAEP setup");
        goto out;
    }
    buf = malloc(n);
    if (buf == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    if (EVP_PKEY_encrypt(pctx, buf, &n, cek, CEK_LEN) <= 0) {
        rc = crypto_fail(err, "RSA-OAEP encryption");
        goto out;
    }
    *ek = buf;
    *eklen = n;
    buf = NULL;
out:
    free(buf);
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

int cg_seal_jwe(const struct cg_seal_key *k, const unsigned char *plain, size_t len, char **out,
                struct cg_err *err)
{
    unsigned char cek[CEK_LEN];
    unsigned char iv[IV_LEN];
    unsigned char tag[TAG_LEN];
    unsigned char chunk[CHUNK];
    unsigned char *ek = NULL;
    size_t eklen = 0;
    EVP_CIPHER_CTX *cctx = NULL;
    char *res = NULL;
    int rc = 0;

    ERR_set_mark();
    /* The GCM bound, and on 32-bit hosts the bound that keeps the output length in a size_t. */
    if ((uint64_t)len > GCM_MAX_PLAIN || len > SIZE_MAX / 4 * 3 - 4 * CHUNK) {
        rc = cg_err_set(err, CG_EINVAL, "cannot seal %zu bytes: too large for AES-GCM", len);
        goto out;
    }
    /* The CEK is key material, so it comes from the private DRBG. */
    if (RAND_priv_bytes(cek, sizeof(cek)) != 1 || RAND_bytes(iv, sizeof(iv)) != 1) {
        rc = crypto_fail(err, "random generator");
        goto out;
    }
    rc = wrap_cek(k, cek, &ek, &eklen, err);
    if (rc != 0) {
        goto out;
    }

    size_t hlen = strlen(k->header);
    size_t total = hlen + b64url_len(eklen) + b64url_len(IV_LEN) + b64url_len(len) +
                   b64url_len(TAG_LEN) + 4 + 1;
    res = malloc(total);
    cctx = EVP_CIPHER_CTX_new();
    if (res == NULL || cctx == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    char *p = res;
    memcpy(p, k->header, hlen);
    p += hlen;
    *p++ = '.';
    p = b64url_put(p, ek, eklen);
    *p++ = '.';
    p = b64url_put(p, iv, IV_LEN);
    *p++ = '.';

    int outl = 0;
    if (EVP_EncryptInit_ex(cctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(cctx, NULL, NULL, cek, iv) != 1 ||
        /* RFC 7516 §5.1 step 14: AAD is the encoded protected header, as ASCII. */
        EVP_EncryptUpdate(cctx, NULL, &outl, (const unsigned char *)k->header, (int)hlen) != 1) {
        rc = crypto_fail(err, "AES-GCM setup");
        goto out;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        /* GCM is a stream mode: each update returns as many bytes as it was given. */
        if (EVP_EncryptUpdate(cctx, chunk, &outl, plain + off, (int)n) != 1 || (size_t)outl != n) {
            rc = crypto_fail(err, "AES-GCM encryption");
            goto out;
        }
        p = b64url_put(p, chunk, n);
        off += n;
    }
    if (EVP_EncryptFinal_ex(cctx, chunk, &outl) != 1 || outl != 0 ||
        EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
        rc = crypto_fail(err, "AES-GCM encryption");
        goto out;
    }
    *p++ = '.';
    p = b64url_put(p, tag, TAG_LEN);
    *p = '\0';
    *out = res;
    res = NULL;
out:
    cg_wipe(cek, sizeof(cek));
    cg_wipe(chunk, sizeof(chunk));
    cg_wipe(iv, sizeof(iv));
    cg_wipe(tag, sizeof(tag));
    EVP_CIPHER_CTX_free(cctx); /* clears the expanded key */
    free(ek);
    free(res);
    ERR_pop_to_mark();
    return rc;
}
