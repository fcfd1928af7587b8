/* seal: encrypts a document for the platform so that only the holder of the platform's RSA
 * private key can read it, as a JWE (RFC 7516) any JOSE library can open.
 *
 * A loaded key is immutable: several threads may seal with the same key at once. */
#ifndef CG_AGENT_SEAL_H
#define CG_AGENT_SEAL_H

#include "cg_err.h"

#include <stddef.h>

/* Keys smaller than this are refused (NIST SP 800-57: 2048 bits until 2030). */
#define CG_SEAL_MIN_BITS 2048
/* Larger keys are refused: OpenSSL will not use them and they only slow every seal down. */
#define CG_SEAL_MAX_BITS 16384

/* Loads an RSA public key (PEM: SubjectPublicKeyInfo "PUBLIC KEY", or an X.509 certificate) of at
 * least 2048 bits; CG_EINVAL with a clear message otherwise (name `source` in it). The first PEM
 * block of either kind is used, so a certificate chain with the leaf first works. CG_ENOMEM when
 * an allocation fails. */
struct cg_seal_key;
int cg_seal_key_load(struct cg_seal_key **out, const char *pem, size_t len, const char *source,
                     struct cg_err *err);
void cg_seal_key_free(struct cg_seal_key *k);

/* A JWE compact serialization (RFC 7516) of plaintext for that key: protected header
 * {"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"application/json"[,"kid": RFC 7638 thumbprint]},
 * a fresh random 256-bit CEK encrypted with RSA-OAEP using SHA-256 and MGF1-SHA-256, a fresh
 * 96-bit IV, AES-256-GCM over the plaintext with AAD = ASCII of the base64url protected header,
 * 128-bit tag. Five base64url segments without padding. New string; caller frees. The CEK and
 * intermediate buffers are wiped. The kid is always present. plain may be NULL when len is 0.
 * Errors: CG_ENOMEM, CG_EINVAL (plaintext beyond GCM's limit), CG_EIO (the crypto library or
 * the random generator failed). */
int cg_seal_jwe(const struct cg_seal_key *k, const unsigned char *plain, size_t len, char **out,
                struct cg_err *err);

#endif
