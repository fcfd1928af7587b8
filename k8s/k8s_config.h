/* k8s_config: where the Kubernetes API is and how to authenticate to it, resolved from a
 * kubeconfig (one file, or a KUBECONFIG list merged the way kubectl merges it) or from the
 * in-cluster service account.
 *
 * Everything in struct k8s_config is owned by it and freed by k8s_config_free, which wipes the
 * secret fields (token, key, password). Paths left in it (token_file, exec command) are
 * absolute or resolved against the directory of the file that defined them. */
#ifndef CG_K8S_CONFIG_H
#define CG_K8S_CONFIG_H

#include "../agent/core/cg_err.h"

#include <stddef.h>

struct k8s_exec_env {
    char *name;
    char *value;
};

struct k8s_exec {
    char *api_version; /* client.authentication.k8s.io/v1 or v1beta1 */
    char *command;     /* resolved against the kubeconfig dir when it contains a '/' */
    char **args;       /* NULL-terminated */
    struct k8s_exec_env *env;
    size_t env_count;
    char *interactive_mode; /* Never | IfAvailable | Always */
    int provide_cluster_info;
    char *install_hint;
};

struct k8s_config {
    char *source; /* "/path/a:/path/b", "in-cluster" or the single file: used in errors */
    char *context_name;
    char *cluster_name;
    char *user_name;
    char *namespace; /* context namespace; "default" when unset */

    char *server; /* https://host:port[/prefix] */
    char *ca_pem; /* CA bundle contents (from -data or the file); NULL = system store */
    size_t ca_len;
    int insecure_skip_tls_verify;
    char *tls_server_name;
    char *proxy_url;

    char *cert_pem; /* client certificate contents */
    size_t cert_len;
    char *key_pem; /* client key contents: secret */
    size_t key_len;
    char *token;      /* static bearer token: secret */
    char *token_file; /* re-read periodically; wins over token (client-go) */
    char *username;   /* basic auth */
    char *password;   /* secret */
    struct k8s_exec *exec;

    int in_cluster;
};

/* Inputs that normally come from the process environment; injected so tests control them. */
struct k8s_load_opts {
    const char *kubeconfig_path; /* --kubeconfig: one file, no merging */
    const char *kubeconfig_env;  /* $KUBECONFIG: ':'-separated list */
    const char *context;         /* --context */
    const char *home;            /* $HOME, for ~/.kube/config */
    /* In-cluster: both must be set to use it. */
    const char *service_host; /* $KUBERNETES_SERVICE_HOST */
    const char *service_port; /* $KUBERNETES_SERVICE_PORT */
    const char *sa_dir;       /* default /var/run/secrets/kubernetes.io/serviceaccount */
};

/* Resolves the configuration in the documented order: --kubeconfig, else $KUBECONFIG, else
 * in-cluster, else ~/.kube/config. On success *out is a new config the caller frees.
 * Errors are CG_EINVAL for bad input (message names the file and the problem, with
 * line:column for YAML errors), CG_ENOTFOUND when nothing is configured. */
int k8s_config_load(struct k8s_config **out, const struct k8s_load_opts *opts, struct cg_err *err);

/* Parses and merges the given files (first wins per named entry, current-context from the
 * first file that sets it, missing files skipped, duplicates removed) and resolves `context`
 * (NULL = current-context). */
int k8s_kubeconfig_load_files(struct k8s_config **out, const char *const *paths, size_t n,
                              const char *context, struct cg_err *err);

/* Parses one kubeconfig document from memory (relative paths resolve against `dir`); for tests
 * and the fuzzer. `source` names it in errors. */
int k8s_kubeconfig_load_buffer(struct k8s_config **out, const char *buf, size_t len,
                               const char *source, const char *dir, const char *context,
                               struct cg_err *err);

/* In-cluster config from the environment and the service-account directory. */
int k8s_config_in_cluster(struct k8s_config **out, const struct k8s_load_opts *opts,
                          struct cg_err *err);

void k8s_config_free(struct k8s_config *cfg); /* NULL-safe; wipes secrets */

#endif
