/* Test-only driver: one AWS Query call through aws_query, for end-to-end tests against moto.
 *
 *   aws_query_call --endpoint URL [--service iam|sts] [--region R] [--version V]
 *                  [--timeout MS] [--all LIST_KEY] [--stats] ACTION [Name=Value ...]
 *   aws_query_call --parse FILE [--status N] ACTION
 *
 * Credentials come from the process environment through the standard chain. Prints the result
 * as compact JSON (sorted keys) on stdout, or the error line on stderr and exits 1 (2 for
 * usage errors). --all follows IsTruncated/Marker and merges LIST_KEY. --stats adds a line
 * "stats reads=R writes=W requests=N retries=T" on stderr. --parse runs only the response
 * parser on a file's bytes (no network), for the hostile-XML tests. */
#include "aws_creds.h"
#include "aws_query.h"
#include "cg_http.h"
#include "cg_http_global.h"
#include "cg_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct result {
    int done;
    int failed;
};

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    printf("%s\n", s ? s : "null");
    free(s);
}

static void on_done(json_t *result, const struct aws_error *aerr, const struct cg_err *err,
                    void *data)
{
    struct result *r = data;
    r->done++;
    if (err != NULL) {
        fprintf(stderr, "%s\n", err->msg);
        r->failed = 1;
        return;
    }
    print_json(result);
}

static int usage(void)
{
    fprintf(stderr, "usage: aws_query_call --endpoint URL [--service iam|sts] [--region R] "
                    "[--version V] [--timeout MS] [--all LIST_KEY] [--stats] ACTION "
                    "[Name=Value ...]\n"
                    "       aws_query_call --parse FILE [--status N] ACTION\n");
    return 2;
}

static int parse_file(const char *path, long status, const char *action)
{
    struct cg_err err = {0};
    char *body = NULL;
    size_t len = 0;
    if (cg_file_read(path, (size_t)64 * 1024 * 1024, &body, &len, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    json_t *result = NULL;
    struct aws_error aerr;
    int rc = aws_query_parse_response(body, len, status, action, &result, &aerr, &err);
    free(body);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    print_json(result);
    json_decref(result);
    return 0;
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL, *service = "iam", *region = NULL, *version = NULL;
    const char *list_key = NULL, *parse = NULL;
    long timeout_ms = 0, status = 200;
    int stats = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--stats") == 0) {
            stats = 1;
            continue;
        }
        if (i + 1 >= argc) {
            return usage();
        }
        const char *val = argv[++i];
        if (strcmp(opt, "--endpoint") == 0) {
            endpoint = val;
        } else if (strcmp(opt, "--service") == 0) {
            service = val;
        } else if (strcmp(opt, "--region") == 0) {
            region = val;
        } else if (strcmp(opt, "--version") == 0) {
            version = val;
        } else if (strcmp(opt, "--timeout") == 0) {
            timeout_ms = strtol(val, NULL, 10);
        } else if (strcmp(opt, "--all") == 0) {
            list_key = val;
        } else if (strcmp(opt, "--parse") == 0) {
            parse = val;
        } else if (strcmp(opt, "--status") == 0) {
            status = strtol(val, NULL, 10);
        } else {
            return usage();
        }
    }
    if (i >= argc) {
        return usage();
    }
    const char *action = argv[i++];
    if (parse != NULL) {
        return parse_file(parse, status, action);
    }
    if (endpoint == NULL) {
        return usage();
    }
    if (version == NULL) {
        version = strcmp(service, "sts") == 0 ? "2011-06-15" : "2010-05-08";
    }
    size_t nparams = (size_t)(argc - i);
    struct aws_param *params = calloc(nparams + 1, sizeof(*params));
    char **names = calloc(nparams + 1, sizeof(*names));
    if (params == NULL || names == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < nparams; k++) {
        const char *arg = argv[i + (int)k];
        const char *eq = strchr(arg, '=');
        if (eq == NULL) {
            fprintf(stderr, "parameter '%s' is not Name=Value\n", arg);
            return 2;
        }
        names[k] = strndup(arg, (size_t)(eq - arg));
        params[k].name = names[k];
        params[k].value = eq + 1;
    }

    struct cg_err err = {0};
    if (cg_http_global_init(&err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cg_http *http = NULL;
    struct aws_creds_provider *creds = NULL;
    struct aws_query_client *c = NULL;
    struct result r = {0};
    struct aws_env env = {0};
    int rc = cg_http_new(&http, &loop, &err);
    if (rc == 0) {
        rc = aws_creds_chain_new(&creds, http, &env, &err);
    }
    if (rc == 0) {
        struct aws_query_config cfg = {.service = service,
                                       .version = version,
                                       .endpoint = endpoint,
                                       .region = region,
                                       .timeout_ms = timeout_ms};
        rc = aws_query_client_new(&c, http, creds, &cfg, &err);
    }
    if (rc == 0) {
        rc = list_key ? aws_query_call_all(c, action, params, nparams, list_key, on_done, &r, &err)
                      : aws_query_call(c, action, params, nparams, on_done, &r, &err);
    }
    if (rc == 0) {
        cg_http_run(http);
    } else {
        fprintf(stderr, "%s\n", err.msg);
        r.failed = 1;
    }
    if (stats && http != NULL) {
        struct aws_query_stats qs = {0};
        struct cg_http_stats hs = {0};
        if (c != NULL) {
            aws_query_get_stats(c, &qs);
        }
        cg_http_get_stats(http, &hs);
        fprintf(stderr, "stats reads=%lu writes=%lu requests=%lu retries=%lu\n", qs.reads,
                qs.writes, hs.requests, hs.retries);
    }
    aws_query_client_free(c);
    aws_creds_provider_free(creds);
    if (http != NULL) {
        cg_http_close(http);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    int closed = uv_loop_close(&loop);
    cg_http_global_cleanup();
    for (size_t k = 0; k < nparams; k++) {
        free(names[k]);
    }
    free(names);
    free(params);
    if (rc == 0 && r.done != 1) {
        fprintf(stderr, "callback ran %d times\n", r.done);
        return 1;
    }
    return r.failed || closed != 0 ? 1 : 0;
}
