/* libFuzzer target: any bytes as an AWS shared config/credentials file (aws__ini_parse) and as an
 * STS AssumeRoleWithWebIdentity answer (aws__sts_parse, as a 200 and as a 400). Beyond the
 * sanitizers it checks the contracts' invariants: a failure is one non-empty line with a known
 * code and leaves nothing behind; a parsed file's sections and keys are well-formed; parsed
 * credentials are complete. */
#include "aws/creds_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_err(int rc, const struct cg_err *err, int allowed1, int allowed2)
{
    if (err->code != rc || err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL ||
        (rc != allowed1 && rc != allowed2 && rc != CG_ENOMEM)) {
        abort();
    }
}

static void fuzz_ini(const uint8_t *data, size_t size)
{
    struct aws_ini ini = {0};
    struct cg_err err = {0};
    int rc = aws__ini_parse(&ini, (const char *)data, size, "fuzz", &err);
    if (rc < 0) {
        check_err(rc, &err, CG_EINVAL, CG_EINVAL);
        if (ini.s != NULL || ini.n != 0) {
            abort();
        }
        return;
    }
    for (size_t i = 0; i < ini.n; i++) {
        const struct aws_ini_section *s = &ini.s[i];
        if (s->name == NULL || s->name[0] == '\0' || aws__ini_section(&ini, s->name) != s) {
            abort(); /* names are unique and non-empty */
        }
        for (size_t k = 0; k < s->n; k++) {
            const char *key = s->kv[k].key;
            if (key == NULL || key[0] == '\0' || s->kv[k].value == NULL ||
                aws__ini_get(s, key) != s->kv[k].value) {
                abort();
            }
            for (const char *p = key; *p != '\0'; p++) {
                if (*p >= 'A' && *p <= 'Z') {
                    abort(); /* keys are lower-cased */
                }
            }
        }
        /* profile lookups by every section's name and its last word */
        (void)aws__ini_config_profile(&ini, s->name);
        const char *sp = strrchr(s->name, ' ');
        (void)aws__ini_config_profile(&ini, sp != NULL ? sp + 1 : "default");
    }
    aws__ini_cleanup(&ini);
}

static void fuzz_sts(const uint8_t *data, size_t size, long status)
{
    struct aws_credentials c = {0};
    struct aws_sts_error ae;
    struct cg_err err = {0};
    int rc = aws__sts_parse((const char *)data, size, status, &c, &ae, &err);
    if (rc == 0) {
        if (status != 200 || c.access_key_id == NULL || c.secret_access_key == NULL ||
            c.session_token == NULL || c.access_key_id[0] == '\0') {
            abort();
        }
    } else {
        check_err(rc, &err, status == 200 ? CG_EINVAL : CG_ESTATUS, CG_ETOOBIG);
        if (c.access_key_id != NULL || c.secret_access_key != NULL || c.session_token != NULL) {
            abort();
        }
        if (memchr(ae.code, '\0', sizeof(ae.code)) == NULL ||
            memchr(ae.message, '\0', sizeof(ae.message)) == NULL) {
            abort();
        }
    }
    aws_credentials_cleanup(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_ini(data, size);
    fuzz_sts(data, size, 200);
    fuzz_sts(data, size, 400);
    return 0;
}
