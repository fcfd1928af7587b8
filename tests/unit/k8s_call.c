/* Test-only driver: one Kubernetes API call through k8s_client, for end-to-end tests of the
 * write verbs. Usage: k8s_call --kubeconfig PATH METHOD PATH [JSON_BODY]
 * Prints "<status>\n<compact JSON body>" on stdout, or the error line on stderr (exit 1). */
#include "cg_http.h"
#include "cg_http_global.h"
#include "k8s_client.h"
#include "k8s_config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct result {
    int done;
    int failed;
};

static void on_done(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct result *r = data;
    r->done++;
    if (err != NULL) {
        fprintf(stderr, "%s\n", err->msg);
        r->failed = 1;
    }
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    printf("%ld\n%s\n", status, s ? s : "null");
    free(s);
}

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[1], "--kubeconfig") != 0) {
        fprintf(stderr, "usage: k8s_call --kubeconfig PATH METHOD PATH [JSON_BODY]\n");
        return 2;
    }
    struct cg_err err = {0};
    struct k8s_config *cfg = NULL;
    struct k8s_load_opts lo = {.kubeconfig_path = argv[2]};
    if (cg_http_global_init(&err) < 0 || k8s_config_load(&cfg, &lo, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cg_http *http = NULL;
    struct k8s_client *c = NULL;
    struct result r = {0};
    int rc = cg_http_new(&http, &loop, &err);
    if (rc == 0) {
        rc = k8s_client_new(&c, http, cfg, &err);
        cfg = NULL;
    }
    if (rc == 0) {
        rc = k8s_client_call(c, argv[3], argv[4], argc > 5 ? argv[5] : NULL, on_done, &r, &err);
    }
    if (rc == 0) {
        cg_http_run(http);
    } else {
        fprintf(stderr, "%s\n", err.msg);
        r.failed = 1;
    }
    k8s_config_free(cfg);
    if (http != NULL) {
        cg_http_close(http);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    k8s_client_free(c);
    int closed = uv_loop_close(&loop);
    cg_http_global_cleanup();
    if (rc == 0 && r.done != 1) {
        fprintf(stderr, "callback ran %d times\n", r.done);
        return 1;
    }
    return r.failed || closed != 0 ? 1 : 0;
}
