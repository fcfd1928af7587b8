/* agent/options.c: flags and CLOUDGRANT_* variables, from one table. */
#include "options.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const command_names[CG_CMD_COUNT] = {
    [CG_CMD_NONE] = "",           [CG_CMD_IDENTITY] = "identity", [CG_CMD_PLAN] = "plan",
    [CG_CMD_ONBOARD] = "onboard", [CG_CMD_CHECK] = "check",       [CG_CMD_WATCH] = "watch",
    [CG_CMD_ROTATE] = "rotate",   [CG_CMD_OFFBOARD] = "offboard", [CG_CMD_VERSION] = "version",
    [CG_CMD_HELP] = "help",
};

const char *cg_command_name(enum cg_command c)
{
    return c < CG_CMD_COUNT ? command_names[c] : "";
}

enum opt_kind { OPT_STRING, OPT_BOOL };

struct opt_def {
    const char *name; /* long flag without "--"; the variable is CLOUDGRANT_<NAME> */
    char short_name;
    enum opt_kind kind;
    size_t offset;
    const char *arg; /* placeholder in help */
    const char *help;
    const char *const *choices; /* NULL = any value */
};

static const char *const text_json[] = {"text", "json", NULL};
static const char *const providers[] = {"aws", "gcp", "azure", "outscale", NULL};
static const char *const levels[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const aws_modes[] = {"user", "role", NULL};
static const char *const gcp_credentials[] = {"key", "keyless", NULL};
static const char *const azure_credentials[] = {"secret", "federated", NULL};
static const char *const azure_grants[] = {"builtin", "custom", NULL};

#define OFF(f) offsetof(struct cg_options, f)
static const struct opt_def opts[] = {
    {"kubeconfig", 0, OPT_STRING, OFF(kubeconfig), "PATH",
     "kubeconfig file (else $KUBECONFIG, else in-cluster, else ~/.kube/config)", NULL},
    {"context", 0, OPT_STRING, OFF(context), "NAME", "kubeconfig context to use", NULL},
    {"provider", 0, OPT_STRING, OFF(provider), "NAME",
     "cloud provider: aws|gcp|azure|outscale (else detected from the nodes)", providers},
    {"cluster-name", 0, OPT_STRING, OFF(cluster_name), "NAME",
     "cluster name, when the cluster does not reveal it", NULL},
    {"region", 0, OPT_STRING, OFF(region), "NAME", "cloud region, overriding detection", NULL},
    {"output", 'o', OPT_STRING, OFF(output), "FORMAT", "output format: text|json", text_json},
    {"log-format", 0, OPT_STRING, OFF(log_format), "FORMAT", "log format on stderr: text|json",
     text_json},
    {"log-level", 0, OPT_STRING, OFF(log_level), "LEVEL",
     "error|warn|info|debug|trace (default warn)", levels},
    {"no-metadata", 0, OPT_BOOL, OFF(no_metadata), NULL,
     "do not ask the cloud's instance metadata service", NULL},
    {"allow-insecure-http", 0, OPT_BOOL, OFF(allow_insecure_http), NULL,
     "allow plain http:// to a non-loopback Kubernetes or cloud API", NULL},
    {"profile", 0, OPT_STRING, OFF(profile), "NAME|PATH",
     "grant profile: a built-in name (node-autoscaler, platform-access) or a file", NULL},
    {"profiles-dir", 0, OPT_STRING, OFF(profiles_dir), "DIR",
     "where built-in profiles live (default: the installed share dir)", NULL},
    {"fix", 0, OPT_BOOL, OFF(fix), NULL, "check: also repair the drift found", NULL},
    {"aws-mode", 0, OPT_STRING, OFF(aws_mode), "MODE",
     "AWS identity: user (access key) or role (cross-account, no key)", aws_modes},
    {"aws-trust-principal", 0, OPT_STRING, OFF(aws_trust_principal), "ARN",
     "role mode: the platform principal allowed to assume the role", NULL},
    {"aws-external-id", 0, OPT_STRING, OFF(aws_external_id), "ID",
     "role mode: sts:ExternalId the platform must present (default: the cluster id)", NULL},
    {"report-url", 0, OPT_STRING, OFF(report_url), "URL",
     "the platform's endpoint that receives reports (token: $CLOUDGRANT_REPORT_TOKEN)", NULL},
    {"report-token-file", 0, OPT_STRING, OFF(report_token_file), "FILE",
     "file holding the report bearer token", NULL},
    {"cloud-ca", 0, OPT_STRING, OFF(cloud_ca), "FILE",
     "CA bundle (PEM) trusted for the cloud APIs instead of the system store", NULL},
    {"report-ca", 0, OPT_STRING, OFF(report_ca), "FILE",
     "CA bundle that signs the report endpoint's certificate", NULL},
    {"allow-insecure-report", 0, OPT_BOOL, OFF(allow_insecure_report), NULL,
     "allow a plain http:// report endpoint that is not on loopback", NULL},
    {"seal-key", 0, OPT_STRING, OFF(seal_key), "PEM|FILE",
     "platform's RSA public key: credentials are sent as JWE only it can open", NULL},
    {"trust-principal-url", 0, OPT_STRING, OFF(trust_principal_url), "URL",
     "role mode: GET the platform's principal ARN and external ID from here", NULL},
    {"secret-name", 0, OPT_STRING, OFF(secret_name), "NAME",
     "Kubernetes Secret that keeps the credential (default cloudgrant-<profile>)", NULL},
    {"secret-namespace", 0, OPT_STRING, OFF(secret_namespace), "NS",
     "its namespace (default: the agent's own)", NULL},
    {"lease-duration", 0, OPT_STRING, OFF(lease_duration), "DURATION",
     "how long the run's Lease on the credential lasts unrenewed (default 30s; 0: none)", NULL},
    {"interval", 0, OPT_STRING, OFF(interval), "DURATION",
     "watch: from the start of one check to the next, e.g. 1h, 15m, 30s (default 1h)", NULL},
    {"listen", 0, OPT_STRING, OFF(listen), "ADDR:PORT",
     "watch: serve /healthz and /metrics here, e.g. :9090", NULL},
    {"credentials-out", 0, OPT_STRING, OFF(credentials_out), "FILE",
     "write a new credential to FILE (mode 0600; '-' = stdout); also its delivery record", NULL},
    {"gcp-credential", 0, OPT_STRING, OFF(gcp_credential), "KIND",
     "GCP: key (a service-account key handed over) or keyless (impersonation, no key)",
     gcp_credentials},
    {"gcp-impersonator", 0, OPT_STRING, OFF(gcp_impersonator), "MEMBER",
     "GCP keyless: the platform's IAM member, e.g. serviceAccount:sa@p.iam.gserviceaccount.com",
     NULL},
    {"azure-credential", 0, OPT_STRING, OFF(azure_credential), "KIND",
     "Azure: secret (a client secret handed over) or federated (the platform's tokens, no secret)",
     azure_credentials},
    {"azure-federated-issuer", 0, OPT_STRING, OFF(azure_federated_issuer), "URL",
     "Azure federated: the OIDC issuer of the platform's tokens (https://...)", NULL},
    {"azure-federated-subject", 0, OPT_STRING, OFF(azure_federated_subject), "SUBJECT",
     "Azure federated: the subject ('sub') of the platform's tokens", NULL},
    {"azure-grant", 0, OPT_STRING, OFF(azure_grant), "KIND",
     "Azure: builtin (the profile's built-in roles) or custom (its least-privilege custom role)",
     azure_grants},
    {"termination-log", 0, OPT_STRING, OFF(termination_log), "FILE",
     "write a one-line outcome here when done (in a pod: /dev/termination-log)", NULL},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void env_name(const struct opt_def *d, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "CLOUDGRANT_");
    for (const char *p = d->name; *p && n + 1 < len; p++) {
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    }
    buf[n] = '\0';
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int set_value(struct cg_options *o, const struct opt_def *d, const char *v, const char *from,
                     struct cg_err *err)
{
    char *field = (char *)o + d->offset;
    if (d->kind == OPT_BOOL) {
        int b;
        if (parse_bool(v, &b) < 0) {
            return cg_err_set(err, CG_EINVAL, "%s: '%s' is not a boolean (true or false)", from, v);
        }
        *(int *)(void *)field = b;
        return 0;
    }
    if (d->choices != NULL) {
        int ok = 0;
        for (size_t i = 0; d->choices[i] != NULL; i++) {
            ok |= strcmp(d->choices[i], v) == 0;
        }
        if (!ok) {
            char list[128] = "";
            for (size_t i = 0; d->choices[i] != NULL; i++) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof(list) - n, "%s%s", i ? "|" : "", d->choices[i]);
            }
            return cg_err_set(err, CG_EINVAL, "%s: '%s' is not one of %s", from, v, list);
        }
    }
    *(const char **)(void *)field = v;
    return 0;
}

static const struct opt_def *find_long(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static const struct opt_def *find_short(char c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].short_name == c) {
            return &opts[i];
        }
    }
    return NULL;
}

int cg_options_parse(struct cg_options *o, int argc, char **argv, cg_getenv_fn *getenv_fn,
                     struct cg_err *err)
{
    memset(o, 0, sizeof(*o));
    /* Environment first, so that flags override it. */
    for (size_t i = 0; i < NOPTS; i++) {
        char name[64];
        env_name(&opts[i], name, sizeof(name));
        const char *v = getenv_fn(name);
        if (v != NULL && set_value(o, &opts[i], v, name, err) < 0) {
            return CG_EINVAL;
        }
    }
    int only_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct opt_def *d = NULL;
        const char *value = NULL;
        char flag[96];
        if (!only_args && strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (!only_args && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            o->command = CG_CMD_HELP;
            return 0;
        }
        if (!only_args && strcmp(a, "--version") == 0) {
            o->command = CG_CMD_VERSION;
            continue;
        }
        if (!only_args && strncmp(a, "--", 2) == 0) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            d = find_long(a + 2, len);
            snprintf(flag, sizeof(flag), "--%.*s", (int)len, a + 2);
            if (d == NULL) {
                return cg_err_set(err, CG_EINVAL, "unknown option '%s' (see cloudgrant --help)",
                                  flag);
            }
            value = eq ? eq + 1 : NULL;
        } else if (!only_args && a[0] == '-' && a[1] != '\0') {
            d = find_short(a[1]);
            snprintf(flag, sizeof(flag), "-%c", a[1]);
            if (d == NULL) {
                return cg_err_set(err, CG_EINVAL, "unknown option '%s' (see cloudgrant --help)",
                                  flag);
            }
            value = a[2] ? a + 2 : NULL;
        } else {
            if (o->command != CG_CMD_NONE) {
                return cg_err_set(err, CG_EINVAL, "unexpected argument '%s' after command '%s'", a,
                                  cg_command_name(o->command));
            }
            for (int c = 1; c < CG_CMD_COUNT; c++) {
                if (strcmp(a, command_names[c]) == 0) {
                    o->command = (enum cg_command)c;
                }
            }
            if (o->command == CG_CMD_NONE) {
                return cg_err_set(err, CG_EINVAL, "unknown command '%s' (see cloudgrant --help)",
                                  a);
            }
            continue;
        }
        if (d->kind == OPT_BOOL) {
            if (set_value(o, d, value ? value : "true", flag, err) < 0) {
                return CG_EINVAL;
            }
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc) {
                return cg_err_set(err, CG_EINVAL, "option '%s' needs a value", flag);
            }
            value = argv[++i];
        }
        if (set_value(o, d, value, flag, err) < 0) {
            return CG_EINVAL;
        }
    }
    return 0;
}

void cg_options_usage(FILE *out)
{
    fprintf(out, "usage: cloudgrant <command> [options]\n\n"
                 "Gives a SaaS platform exactly the cloud identity it needs, from inside the\n"
                 "customer's Kubernetes cluster.\n\n"
                 "commands:\n"
                 "  identity        print the cluster identity (-o json for the contract form)\n"
                 "  plan            what onboard would change (no mutating call)\n"
                 "  onboard         converge the cloud identity and hand the credential over\n"
                 "  check           report drift (exit 3 when there is some); --fix repairs\n"
                 "  watch           check periodically (--interval), --fix optional, /metrics\n"
                 "  rotate          new access key: store, hand over, then delete the old one\n"
                 "  offboard        delete what cloudgrant created, nothing else\n"
                 "  version         print the version\n"
                 "  help            print this help\n\n"
                 "options (each also read from the environment variable shown):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char left[64];
        char env[64];
        if (opts[i].short_name) {
            snprintf(left, sizeof(left), "-%c, --%s%s%s", opts[i].short_name, opts[i].name,
                     opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
        } else {
            snprintf(left, sizeof(left), "    --%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                     opts[i].arg ? opts[i].arg : "");
        }
        env_name(&opts[i], env, sizeof(env));
        if (strlen(left) > 30) { /* a long flag gets a line of its own */
            fprintf(out, "  %s\n", left);
            left[0] = '\0';
        }
        fprintf(out, "  %-30s %s\n  %-30s [%s]\n", left, opts[i].help, "", env);
    }
    fprintf(out, "\nexit codes: 0 success, 1 failure, 2 usage or bad input, 3 drift found\n");
}
