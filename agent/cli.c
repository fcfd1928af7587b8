/* agent/cli.c: parse, dispatch, and turn errors into one line and an exit code. */
#include "cli.h"

#include "cg_http_global.h"
#include "cmd.h"
#include "cg_log.h"
#include "identity.h"
#include "options.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
    return getenv(name);
}

/* Bad input is the user's to fix (exit 2); anything else is a failure (exit 1). */
static int exit_code_for(int code)
{
    return code == CG_EINVAL || code == CG_ENOTFOUND ? CG_EXIT_USAGE : CG_EXIT_FAIL;
}

static int fail(const struct cg_err *err)
{
    fprintf(stderr, "cloudgrant: error: %s\n", err->msg);
    return exit_code_for(err->code);
}

/* Kubernetes shows a container's termination message (at most 4096 bytes) in `kubectl
 * describe` and the Job's status: one line that says what happened, success or failure.
 * Failing to write it is logged, never fatal: the command's own result stands. */
static void write_termination_log(const char *path, const char *command, int code, const char *what)
{
    if (path == NULL || path[0] == '\0') {
        return;
    }
    char line[4096];
    int n;
    if (code == CG_EXIT_OK || code == CG_EXIT_DRIFT) {
        n = snprintf(line, sizeof(line), "%s\n", what && what[0] ? what : command);
    } else {
        n = snprintf(line, sizeof(line), "%s failed (exit %d): %s\n", command, code,
                     what && what[0] ? what : "see the container log");
    }
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(line, 1, len, f) != len) {
        CG_LOG(CG_LOG_WARN, "cli", "cannot write the termination message to '%s'", path);
    }
    if (f != NULL) {
        fclose(f);
    }
}

static int cmd_identity(const struct cg_options *o, char *summary, size_t summary_len,
                        struct cg_err *err)
{
    struct cmd_base b;
    int rc = cmd_base_open(&b, NULL, o, env, err);
    if (rc < 0) {
        cmd_base_close(&b);
        fail(err);
        return rc == CG_EIO ? CG_EXIT_FAIL : exit_code_for(rc);
    }
    cg_azure_identity_enrich(&b, o, env);
    cg_session_close(&b.s); /* done with the network */
    const struct cg_identity *id = &b.id;
    if (o->output != NULL && strcmp(o->output, "json") == 0) {
        char *text = cg_identity_json(id);
        if (text == NULL) {
            cmd_base_close(&b);
            cg_err_set(err, CG_ENOMEM, "out of memory");
            return fail(err);
        }
        printf("%s\n", text);
        free(text);
    } else {
        cg_identity_print_text(id, stdout);
    }
    const struct k8s_identity *k = &id->k8s;
    snprintf(summary, summary_len, "identity: provider %s, cluster %s, region %s, account %s",
             k->provider ? k->provider : "unknown", k->name ? k->name : "(unknown)",
             k->region ? k->region : "(unknown)", k->account ? k->account : "(unknown)");
    cmd_base_close(&b);
    return fflush(stdout) == 0 ? CG_EXIT_OK : CG_EXIT_FAIL;
}

int cg_cli_main(int argc, char **argv)
{
    struct cg_options o;
    struct cg_err err = {0};
    if (cg_options_parse(&o, argc, argv, env, &err) < 0) {
        fprintf(stderr, "cloudgrant: error: %s\n", err.msg);
        return CG_EXIT_USAGE;
    }
    cg_log_setup(o.log_level ? cg_log_parse_level(o.log_level) : CG_LOG_WARN,
                 o.log_format && strcmp(o.log_format, "json") == 0 ? CG_LOG_JSON : CG_LOG_TEXT);
    switch (o.command) {
    case CG_CMD_VERSION:
        printf("cloudgrant %s\n", CG_VERSION);
        return CG_EXIT_OK;
    case CG_CMD_HELP:
        cg_options_usage(stdout);
        return CG_EXIT_OK;
    case CG_CMD_NONE:
        cg_options_usage(stderr);
        return CG_EXIT_USAGE;
    case CG_CMD_IDENTITY:
    case CG_CMD_PLAN:
    case CG_CMD_ONBOARD:
    case CG_CMD_CHECK:
    case CG_CMD_ROTATE:
    case CG_CMD_OFFBOARD:
    case CG_CMD_WATCH:
        break;
    default:
        fprintf(stderr,
                "cloudgrant: error: command '%s' is not available in cloudgrant %s yet; this "
                "version provides identity, plan, onboard, check, watch, rotate and offboard\n",
                cg_command_name(o.command), CG_VERSION);
        return CG_EXIT_USAGE;
    }
    if (cg_http_global_init(&err) < 0) {
        return fail(&err);
    }
    int code;
    struct cg_run_stats stats = {0};
    if (o.command == CG_CMD_IDENTITY) {
        code = cmd_identity(&o, stats.summary, sizeof(stats.summary), &err);
    } else if (o.command == CG_CMD_WATCH) {
        code = cg_cmd_watch(&o, env, &err);
        if (code != CG_EXIT_OK) {
            fprintf(stderr, "cloudgrant: error: %s\n", err.msg);
        }
    } else {
        code = cg_cmd_cloud_on(NULL, &o, env, &stats, &err);
        if (code != CG_EXIT_OK && code != CG_EXIT_DRIFT) {
            fprintf(stderr, "cloudgrant: error: %s\n", err.msg);
        }
    }
    write_termination_log(o.termination_log, cg_command_name(o.command), code,
                          code == CG_EXIT_OK || code == CG_EXIT_DRIFT ? stats.summary : err.msg);
    cg_http_global_cleanup();
    return code;
}
