/* libFuzzer target: any bytes as a grant profile, loaded for a sample cluster in user mode, in
 * role mode with and without a principal, and with the cluster name unknown. Policy files are
 * refused (no directory), so a run touches no file. Beyond the sanitizers it checks the
 * contract: a failure is one non-empty line with a known code and no result; a success has a
 * rendered name IAM accepts and documents that are policies. */
#include "policy.h"
#include "profile.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_doc(const char *doc, int kind)
{
    struct cg_err err = {0};
    if (doc == NULL || strstr(doc, "{{") != NULL) {
        abort();
    }
    json_t *j = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || policy_validate(j, (enum policy_kind)kind, &err) != 0) {
        abort();
    }
    json_decref(j);
    char *canon = policy_normalize_text(doc, &err);
    int eq = 0;
    if (canon == NULL || policy_equal_text(doc, canon, &eq, &err) != 0 || !eq) {
        abort();
    }
    free(canon);
}

static void check(int rc, const struct profile *p, const struct cg_err *err)
{
    if (rc != 0) {
        if (p != NULL || err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL || err->code != rc ||
            (rc != CG_EINVAL && rc != CG_ENOMEM && rc != CG_ETOOBIG)) {
            abort();
        }
        return;
    }
    const struct profile_aws *a = &p->aws;
    if (p == NULL || p->name == NULL || p->source == NULL || !a->present || a->name == NULL ||
        strlen(a->name) == 0 || strlen(a->name) > 64 || a->path == NULL ||
        strstr(a->name, "{{") != NULL) {
        abort();
    }
    for (size_t i = 0; i < a->customer_count; i++) {
        check_doc(a->customer_policies[i].document, POLICY_IDENTITY);
        if (policy_size_nonspace(a->customer_policies[i].document) > 6144) {
            abort();
        }
    }
    for (size_t i = 0; i < a->inline_count; i++) {
        check_doc(a->inline_policies[i].document, POLICY_IDENTITY);
    }
    if ((a->mode == PROFILE_AWS_ROLE) != (a->trust_policy != NULL)) {
        abort();
    }
    if (a->trust_policy != NULL) {
        check_doc(a->trust_policy, POLICY_TRUST);
        if (a->access_key || a->external_id == NULL || a->trust_principal == NULL) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct profile_vars known = {
        .cluster_name = "prod",
        .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
        .cluster_region = "eu-west-1",
        .cloud_account = "123456789012",
    };
    static const struct profile_vars no_name = {
        .cluster_id = "9b5d3c1e-0b6a-4a8f-9f3c-2c1f4b7e8a10",
        .cloud_account = "123456789012",
    };
    static const struct profile_overrides role = {
        .aws_mode = "role",
        .aws_trust_principal = "arn:aws:iam::210987654321:role/platform",
    };
    static const struct profile_overrides role_bare = {.aws_mode = "role"};
    const struct {
        const struct profile_vars *vars;
        const struct profile_overrides *ov;
    } runs[] = {{&known, NULL}, {&known, &role}, {&known, &role_bare}, {&no_name, NULL}};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        struct profile *p = NULL;
        struct cg_err err = {0};
        int rc = profile_load_buffer(&p, (const char *)data, size, "fuzz.yaml", NULL, runs[i].vars,
                                     runs[i].ov, &err);
        check(rc, p, &err);
        profile_free(p);
    }
    return 0;
}
