/* libFuzzer target: any bytes as a policy document, and as a profile template. The normal form
 * must be a fixed point (normalising it again changes nothing) and must compare equal to the
 * input; failures must be one line with CG_EINVAL. */
#include "policy.h"
#include "profile.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_failure(const struct cg_err *err, int rc)
{
    if (err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL ||
        (rc != CG_EINVAL && rc != CG_ENOMEM && rc != CG_ETOOBIG)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    struct cg_err err = {0};
    char *canon = policy_normalize_text(text, &err);
    if (canon == NULL) {
        check_failure(&err, err.code);
    } else {
        char *again = policy_normalize_text(canon, &err);
        int eq = 0;
        if (again == NULL || strcmp(again, canon) != 0) {
            abort();
        }
        if (policy_equal_text(text, canon, &eq, &err) != 0 || !eq) {
            abort();
        }
        (void)policy_size_nonspace(canon);
        json_t *doc = json_loads(text, 0, NULL);
        if (doc != NULL) {
            struct cg_err verr = {0};
            (void)policy_validate(doc, POLICY_IDENTITY, &verr);
            (void)policy_validate(doc, POLICY_TRUST, &verr);
            json_decref(doc);
        }
        free(again);
        free(canon);
    }

    static const struct profile_vars vars = {
        .cluster_name = "Prod-\xc3\xa9-cluster",
        .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
        .cloud_account = "123456789012",
    };
    char *out = NULL;
    struct cg_err rerr = {0};
    int rc = profile_render(text, &vars, &out, &rerr);
    if (rc == 0) {
        /* every "{{" of the input was a template, and no value holds braces */
        if (out == NULL || strstr(out, "{{") != NULL) {
            abort();
        }
        if (strstr(text, "{{") == NULL && strstr(text, "}}") == NULL && strcmp(out, text) != 0) {
            abort();
        }
    } else {
        if (out != NULL) {
            abort();
        }
        check_failure(&rerr, rc);
    }
    free(out);
    free(text);
    return 0;
}
