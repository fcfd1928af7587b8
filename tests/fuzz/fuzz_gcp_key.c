/* libFuzzer target: any bytes as a service-account key file (gcp_key_file_parse); a file that
 * parses, with a key small enough to sign quickly, is turned into a JWT assertion
 * (gcp_jwt_assertion). Beyond the sanitizers it checks the contracts: a refused file is
 * CG_EINVAL (or CG_ENOMEM) with one non-empty line naming the source, leaves the struct clean
 * and never quotes the key; a parsed file has every required field and a token_uri that is
 * https or loopback http; an assertion is three base64url segments; OpenSSL's error queue is
 * left as found. */
#include "gcp/gcp_auth.h"

#include "cg_buf.h"
#include "cg_util.h"

#include <openssl/err.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIGN_MAX_KEY 2048 /* bigger keys are OpenSSL's to fuzz, and slow */

static int one_line(const struct cg_err *err, int rc)
{
    return err->code == rc && err->msg[0] != '\0' && strchr(err->msg, '\n') == NULL;
}

static void check_assertion(const char *jwt)
{
    int dots = 0;
    for (const char *c = jwt; *c != '\0'; c++) {
        if (*c == '.') {
            dots++;
        } else if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c) ==
                   NULL) {
            abort();
        }
    }
    if (dots != 2 || jwt[0] == '.' || jwt[strlen(jwt) - 1] == '.' || strstr(jwt, "..") != NULL) {
        abort();
    }
}

static void fuzz_sign(const struct gcp_key_file *k)
{
    char *jwt = NULL;
    struct cg_err err = {0};
    if (strlen(k->private_key) > SIGN_MAX_KEY) {
        return;
    }
    int rc = gcp_jwt_assertion(k, "https://www.googleapis.com/auth/cloud-platform", 1700000000,
                               &jwt, &err);
    if (rc == 0) {
        check_assertion(jwt);
        cg_secret_free(jwt);
    } else if (jwt != NULL || !one_line(&err, rc) || (rc != CG_EINVAL && rc != CG_ENOMEM)) {
        abort();
    }
    if (ERR_peek_error() != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gcp_key_file k;
    struct cg_err err = {0};
    int rc = gcp_key_file_parse(&k, (const char *)data, size, "fuzz.json", &err);
    if (rc != 0) {
        if (!one_line(&err, rc) || (rc != CG_EINVAL && rc != CG_ENOMEM) ||
            (rc == CG_EINVAL && strstr(err.msg, "'fuzz.json'") == NULL) ||
            strstr(err.msg, "-----") != NULL || k.client_email != NULL ||
            k.private_key_id != NULL || k.private_key != NULL || k.token_uri != NULL ||
            k.project_id != NULL) {
            abort();
        }
        return 0;
    }
    if (k.client_email == NULL || k.client_email[0] == '\0' || k.private_key_id == NULL ||
        k.private_key_id[0] == '\0' || k.private_key == NULL || k.private_key[0] == '\0' ||
        k.token_uri == NULL || cg_url_check_transport(k.token_uri, 0, "token_uri", NULL) != 0 ||
        (k.project_id != NULL && k.project_id[0] == '\0')) {
        abort();
    }
    fuzz_sign(&k);
    gcp_key_file_cleanup(&k);
    if (k.private_key != NULL) {
        abort();
    }
    return 0;
}
