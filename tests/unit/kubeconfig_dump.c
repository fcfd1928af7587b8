/* kubeconfig_dump: test-only. Loads a configuration with k8s_config_load and prints it as JSON,
 * so tests/kubeconfig_diff.py can compare it with kubectl's view of the same files.
 *
 * Usage: kubeconfig_dump [--kubeconfig PATH] [--context NAME] [--home DIR] [--sa-dir DIR]
 * KUBECONFIG, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT come from the environment.
 * Exit status: 0, or 2 for invalid input, 3 when nothing is configured, 1 otherwise; the error
 * goes to stderr as one line. It prints secrets: never use it outside tests. */
#include "k8s_config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *str_or_null(const char *s, size_t len)
{
    if (s == NULL) {
        return json_null();
    }
    json_t *j = json_stringn(s, len);
    return j ? j : json_string("<not UTF-8>");
}

static json_t *exec_json(const struct k8s_exec *e)
{
    if (e == NULL) {
        return json_null();
    }
    json_t *args = json_array();
    for (char **a = e->args; a != NULL && *a != NULL; a++) {
        json_array_append_new(args, json_string(*a));
    }
    json_t *env = json_array();
    for (size_t i = 0; i < e->env_count; i++) {
        json_array_append_new(
            env, json_pack("{s:s?, s:s?}", "name", e->env[i].name, "value", e->env[i].value));
    }
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:b, s:o}", "apiVersion",
        str_or_null(e->api_version, e->api_version ? strlen(e->api_version) : 0), "command",
        str_or_null(e->command, e->command ? strlen(e->command) : 0), "args", args, "env", env,
        "interactiveMode",
        str_or_null(e->interactive_mode, e->interactive_mode ? strlen(e->interactive_mode) : 0),
        "provideClusterInfo", e->provide_cluster_info, "installHint",
        str_or_null(e->install_hint, e->install_hint ? strlen(e->install_hint) : 0));
}

#define S(field) str_or_null((field), (field) ? strlen(field) : 0)

int main(int argc, char **argv)
{
    struct k8s_load_opts opts = {0};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "kubeconfig_dump: '%s' needs a value\n", argv[i]);
            return 1;
        }
        if (strcmp(argv[i], "--kubeconfig") == 0) {
            opts.kubeconfig_path = v;
        } else if (strcmp(argv[i], "--context") == 0) {
            opts.context = v;
        } else if (strcmp(argv[i], "--home") == 0) {
            opts.home = v;
        } else if (strcmp(argv[i], "--sa-dir") == 0) {
            opts.sa_dir = v;
        } else {
            fprintf(stderr, "kubeconfig_dump: unknown option '%s'\n", argv[i]);
            return 1;
        }
        i++;
    }
    opts.kubeconfig_env = getenv("KUBECONFIG");
    opts.service_host = getenv("KUBERNETES_SERVICE_HOST");
    opts.service_port = getenv("KUBERNETES_SERVICE_PORT");

    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    int rc = k8s_config_load(&cfg, &opts, &err);
    if (rc < 0) {
        fprintf(stderr, "kubeconfig_dump: %s\n", err.msg);
        return rc == CG_EINVAL ? 2 : rc == CG_ENOTFOUND ? 3 : 1;
    }
    json_t *out = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:b, "
        "s:o}",
        "source", S(cfg->source), "context", S(cfg->context_name), "cluster", S(cfg->cluster_name),
        "user", S(cfg->user_name), "namespace", S(cfg->namespace), "server", S(cfg->server), "ca",
        str_or_null(cfg->ca_pem, cfg->ca_len), "cert", str_or_null(cfg->cert_pem, cfg->cert_len),
        "key", str_or_null(cfg->key_pem, cfg->key_len), "token", S(cfg->token), "tokenFile",
        S(cfg->token_file), "username", S(cfg->username), "password", S(cfg->password), "insecure",
        cfg->insecure_skip_tls_verify, "tlsServerName", S(cfg->tls_server_name), "proxyUrl",
        S(cfg->proxy_url), "inCluster", cfg->in_cluster, "exec", exec_json(cfg->exec));
    k8s_config_free(cfg);
    if (out == NULL) {
        fprintf(stderr, "kubeconfig_dump: cannot build JSON\n");
        return 1;
    }
    char *text = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(out);
    if (text == NULL) {
        fprintf(stderr, "kubeconfig_dump: cannot print JSON\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}
