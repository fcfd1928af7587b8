/* Test-only driver for the report client, for end-to-end tests against central.py.
 *
 *   report_send [OPTIONS] send URL BODY_FILE IDEMPOTENCY_KEY
 *   report_send [OPTIONS] trust URL
 *   report_send key PART...
 *   report_send build INPUT_JSON   (prints report_build's output for the fields of INPUT_JSON:
 *                                   kind, cluster, profile, status, resources, drift,
 *                                   credentials, error, startedAt/finishedAt as epoch seconds,
 *                                   agentVersion)
 *   OPTIONS: --token-file F  --ca F  --allow-insecure  --timeout-ms N
 *
 * The token comes from CLOUDGRANT_REPORT_TOKEN or --token-file, as in the agent. "send" prints
 * "delivered", "trust" prints {"principalArn":..,"externalId":..}, "key" prints the key.
 * Failures print the one-line error on stderr: exit 1 for delivery errors, 2 for bad input. */
#include "cg_buf.h"
#include "cg_err.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_util.h"
#include "report.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct result {
    int done;
    int failed;
};

static void on_sent(const struct cg_err *err, void *data)
{
    struct result *r = data;
    r->done++;
    if (err != NULL) {
        fprintf(stderr, "%s\n", err->msg);
        r->failed = 1;
    } else {
        printf("delivered\n");
    }
}

static void on_trust(const char *principal_arn, const char *external_id, const struct cg_err *err,
                     void *data)
{
    struct result *r = data;
    r->done++;
    if (err != NULL) {
        fprintf(stderr, "%s\n", err->msg);
        r->failed = 1;
        return;
    }
    json_t *j = json_pack("{s:s, s:s}", "principalArn", principal_arn, "externalId", external_id);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(j);
}

static const char *opt_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int build(const char *path)
{
    json_error_t je;
    json_t *in = json_load_file(path, 0, &je);
    if (!json_is_object(in)) {
        fprintf(stderr, "%s: %s\n", path, je.text);
        json_decref(in);
        return 2;
    }
    json_t *cred = json_object_get(in, "credentials");
    struct report_input ri = {
        .kind = opt_str(in, "kind"),
        .cluster = json_object_get(in, "cluster"),
        .profile = opt_str(in, "profile"),
        .status = opt_str(in, "status"),
        .resources = json_object_get(in, "resources"),
        .drift = json_object_get(in, "drift"),
        .credentials = json_is_null(cred) ? NULL : cred,
        .error = opt_str(in, "error"),
        .started_at = json_integer_value(json_object_get(in, "startedAt")),
        .finished_at = json_integer_value(json_object_get(in, "finishedAt")),
        .agent_version = opt_str(in, "agentVersion"),
    };
    char *text = report_build(&ri);
    json_decref(in);
    if (text == NULL) {
        fprintf(stderr, "report_build failed\n");
        return 1;
    }
    printf("%s\n", text);
    cg_secret_free(text);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: report_send [--token-file F] [--ca F] [--allow-insecure] "
                    "[--timeout-ms N] send URL BODY_FILE KEY | trust URL | key PART... | "
                    "build INPUT_JSON\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *token_file = NULL, *ca = NULL;
    int insecure = 0;
    long timeout_ms = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc) {
            token_file = argv[++i];
        } else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc) {
            ca = argv[++i];
        } else if (strcmp(argv[i], "--allow-insecure") == 0) {
            insecure = 1;
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            timeout_ms = strtol(argv[++i], NULL, 10);
        } else {
            return usage();
        }
    }
    if (i >= argc) {
        return usage();
    }
    const char *cmd = argv[i++];
    if (strcmp(cmd, "key") == 0) {
        char key[37];
        report_idempotency_key((const char *const *)argv + i, (size_t)(argc - i), key);
        printf("%s\n", key);
        return 0;
    }
    if (strcmp(cmd, "build") == 0 && argc - i == 1) {
        return build(argv[i]);
    }
    int send = strcmp(cmd, "send") == 0;
    if (!(send && argc - i == 3) && !(strcmp(cmd, "trust") == 0 && argc - i == 1)) {
        return usage();
    }

    struct cg_err err = {0};
    struct report_config cfg;
    char *body = NULL;
    if (report_config_init(&cfg, argv[i], getenv("CLOUDGRANT_REPORT_TOKEN"), token_file, ca,
                           insecure, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    if (timeout_ms > 0) {
        cfg.timeout_ms = timeout_ms;
    }
    if (send && cg_file_read(argv[i + 1], 16u << 20, &body, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        report_config_cleanup(&cfg);
        return 2;
    }
    if (cg_http_global_init(&err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        cg_secret_free(body);
        report_config_cleanup(&cfg);
        return 2;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cg_http *http = NULL;
    struct result r = {0};
    int rc = cg_http_new(&http, &loop, &err);
    if (rc == 0) {
        rc = send ? report_send(http, &cfg, body, argv[i + 2], on_sent, &r, &err)
                  : report_fetch_trust(http, &cfg, argv[i], on_trust, &r, &err);
    }
    if (rc == 0) {
        cg_http_run(http);
    } else {
        fprintf(stderr, "%s\n", err.msg);
        r.failed = 1;
    }
    if (http != NULL) {
        cg_http_close(http);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    int closed = uv_loop_close(&loop);
    cg_http_global_cleanup();
    cg_secret_free(body);
    report_config_cleanup(&cfg);
    if (rc == 0 && r.done != 1) {
        fprintf(stderr, "callback ran %d times\n", r.done);
        return 1;
    }
    return r.failed || closed != 0 ? 1 : 0;
}
