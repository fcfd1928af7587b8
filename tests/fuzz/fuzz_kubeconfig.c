/* libFuzzer target: any bytes as a kubeconfig. Beyond the sanitizers it checks the contract's
 * invariants: a failure is one non-empty line with a known code and no result; a success has a
 * server and a namespace. */
#include "k8s_config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(int rc, struct k8s_config *cfg, const struct cg_err *err)
{
    if (rc == 0) {
        if (cfg == NULL || cfg->server == NULL || cfg->server[0] == '\0' ||
            cfg->namespace == NULL || cfg->source == NULL) {
            abort();
        }
        if (cfg->exec != NULL && (cfg->exec->command == NULL || cfg->exec->args == NULL ||
                                  cfg->exec->interactive_mode == NULL)) {
            abort();
        }
        return;
    }
    if (cfg != NULL || err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL || err->code != rc ||
        (rc != CG_EINVAL && rc != CG_ENOTFOUND && rc != CG_ENOMEM && rc != CG_EIO &&
         rc != CG_ETOOBIG)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* current-context, then a fixed name that seeds often use */
    static const char *const contexts[] = {NULL, "c"};
    for (size_t i = 0; i < sizeof(contexts) / sizeof(contexts[0]); i++) {
        struct k8s_config *cfg = NULL;
        struct cg_err err = {0};
        int rc = k8s_kubeconfig_load_buffer(&cfg, (const char *)data, size, "fuzz.yaml",
                                            "/nonexistent/fuzz", contexts[i], &err);
        check(rc, cfg, &err);
        k8s_config_free(cfg);
    }
    return 0;
}
