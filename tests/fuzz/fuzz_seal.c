/* libFuzzer target: any bytes as the platform's PEM key (cg_seal_key_load); a key that loads
 * seals a short document (cg_seal_jwe). Beyond the sanitizers it checks the contract: a refused
 * key is CG_EINVAL (or CG_ENOMEM) with one non-empty line naming the source and no key; a
 * loaded key seals into five base64url segments; OpenSSL's error queue is left as found. */
#include "seal.h"

#include <openssl/err.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char DOC[] = "{\"cluster\":\"fuzz\",\"nodes\":3}";

static void check_token(const char *tok)
{
    int dots = 0;
    for (const char *c = tok; *c != '\0'; c++) {
        if (*c == '.') {
            dots++;
        } else if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c) ==
                   NULL) {
            abort();
        }
    }
    if (dots != 4) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cg_seal_key *k = NULL;
    struct cg_err err = {0};
    int rc = cg_seal_key_load(&k, (const char *)data, size, "fuzz.pem", &err);
    if (rc != 0) {
        if (k != NULL || err.code != rc || err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL ||
            (rc != CG_EINVAL && rc != CG_ENOMEM) ||
            (rc == CG_EINVAL && strstr(err.msg, "'fuzz.pem'") == NULL)) {
            abort();
        }
    } else {
        char *tok = NULL;
        if (k == NULL ||
            cg_seal_jwe(k, (const unsigned char *)DOC, sizeof(DOC) - 1, &tok, &err) != 0) {
            abort();
        }
        check_token(tok);
        free(tok);
        cg_seal_key_free(k);
    }
    if (ERR_peek_error() != 0) {
        abort();
    }
    return 0;
}
