/* options: the command line and its CLOUDGRANT_<OPTION> environment twins.
 *
 * Every option can be given as a flag or as an environment variable (so a Helm chart can set
 * it); a flag wins over the variable. The table in options.c is the single list of options:
 * help text, README and parsing all follow it. */
#ifndef CG_OPTIONS_H
#define CG_OPTIONS_H

#include "cg_err.h"

#include <stdio.h>

enum cg_command {
    CG_CMD_NONE = 0,
    CG_CMD_IDENTITY,
    CG_CMD_PLAN,
    CG_CMD_ONBOARD,
    CG_CMD_CHECK,
    CG_CMD_WATCH,
    CG_CMD_ROTATE,
    CG_CMD_OFFBOARD,
    CG_CMD_VERSION,
    CG_CMD_HELP,
    CG_CMD_COUNT
};

struct cg_options {
    enum cg_command command;
    /* Borrowed from argv or the environment; valid for the life of the process. */
    const char *kubeconfig;
    const char *context;
    const char *provider;
    const char *cluster_name;
    const char *region;
    const char *output;     /* "text" | "json" */
    const char *log_format; /* "text" | "json" */
    const char *log_level;
    int no_metadata;
    int allow_insecure_http; /* plain http:// to a non-loopback Kubernetes API or cloud API */
    const char *profile;
    const char *profiles_dir;
    int fix;
    const char *aws_mode;
    const char *aws_trust_principal;
    const char *aws_external_id;
    const char *credentials_out; /* file for a new credential, or "-" for stdout */
    const char *report_url;
    const char *report_token_file;
    const char *report_ca;
    const char *cloud_ca; /* CA bundle for the cloud APIs; NULL: the system store */
    int allow_insecure_report;
    const char *seal_key; /* PEM text or a file holding it */
    const char *trust_principal_url;
    const char *secret_name;
    const char *secret_namespace;
    const char *lease_duration;          /* "30s" (default); "0": take no Lease */
    const char *interval;                /* watch: "1h", "15m", "30s" */
    const char *listen;                  /* watch: ADDR:PORT for /healthz and /metrics */
    const char *gcp_credential;          /* "key" | "keyless" */
    const char *gcp_impersonator;        /* keyless: IAM member allowed to impersonate */
    const char *azure_credential;        /* "secret" | "federated" */
    const char *azure_federated_issuer;  /* federated: the platform's OIDC issuer URL */
    const char *azure_federated_subject; /* federated: the subject of the platform's tokens */
    const char *azure_grant;             /* "builtin" | "custom" */
    const char *termination_log;         /* file for a one-line outcome (Kubernetes termination
                                            message) */
};

/* Parses argv and the environment (through `getenv_fn`, injectable for tests).
 * Returns 0, or CG_EINVAL with a one-line message for a usage error. */
typedef const char *cg_getenv_fn(const char *name);
int cg_options_parse(struct cg_options *o, int argc, char **argv, cg_getenv_fn *getenv_fn,
                     struct cg_err *err);

const char *cg_command_name(enum cg_command c);
void cg_options_usage(FILE *out);

#endif
