/* Unit tests for k8s/kubeconfig.c and k8s/incluster.c: parsing, merging, resolution, the
 * load order, in-cluster config, and the one-line message of every refused input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cg_err.h"
#include "cg_util.h"
#include "k8s_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KC_FIX   CG_FIXTURES "/kubeconfig"
#define PKI      KC_FIX "/pki"
#define DIFF     KC_FIX "/diff"
#define SRC_NAME "test.yaml"

/* ---- helpers ---- */

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    struct cg_err err = {0};
    if (cg_file_read(path, 1 << 20, &data, &len, &err) < 0) {
        fail_msg("cannot read fixture: %s", err.msg);
    }
    return data;
}

static char *b64_file(const char *path)
{
    char *data = slurp(path);
    char *enc = cg_b64_encode((const unsigned char *)data, strlen(data));
    free(data);
    return enc;
}

/* A one-cluster, one-user document: the lines given are the bodies of cluster "c" and user
 * "u", already indented by four spaces. */
static char *doc(const char *cluster, const char *user)
{
    size_t n = strlen(cluster) + strlen(user) + 512;
    char *d = malloc(n);
    assert_non_null(d);
    snprintf(d, n,
             "apiVersion: v1\n"
             "kind: Config\n"
             "current-context: ctx\n"
             "clusters:\n"
             "- name: c\n"
             "  cluster:\n"
             "%s"
             "contexts:\n"
             "- name: ctx\n"
             "  context:\n"
             "    cluster: c\n"
             "    user: u\n"
             "users:\n"
             "- name: u\n"
             "  user:\n"
             "%s",
             cluster, user);
    return d;
}

#define SERVER "    server: https://127.0.0.1:6443\n"

static struct k8s_config *load_ok(const char *text, const char *dir, const char *context)
{
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    int rc = k8s_kubeconfig_load_buffer(&cfg, text, strlen(text), SRC_NAME, dir, context, &err);
    if (rc != 0) {
        fail_msg("unexpected error %d: %s", rc, err.msg);
    }
    assert_non_null(cfg);
    return cfg;
}

/* The loader must refuse with exactly this one-line message, and allocate nothing for us. */
static void load_fails(const char *text, const char *dir, const char *context, int code,
                       const char *msg)
{
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    int rc = k8s_kubeconfig_load_buffer(&cfg, text, strlen(text), SRC_NAME, dir, context, &err);
    if (rc != code || strcmp(err.msg, msg) != 0) {
        fail_msg("got %d '%s'\nwant %d '%s'", rc, err.msg, code, msg);
    }
    assert_null(cfg);
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(err.code, code);
}

static void doc_ok_free(const char *cluster, const char *user)
{
    char *d = doc(cluster, user);
    k8s_config_free(load_ok(d, PKI, NULL));
    free(d);
}

static void doc_fails(const char *cluster, const char *user, const char *msg)
{
    char *d = doc(cluster, user);
    load_fails(d, PKI, NULL, CG_EINVAL, msg);
    free(d);
}

/* ---- basics ---- */

static void test_minimal(void **state)
{
    (void)state;
    char *d = doc(SERVER, "    token: dummy-token\n");
    struct k8s_config *cfg = load_ok(d, NULL, NULL);
    assert_string_equal(cfg->source, SRC_NAME);
    assert_string_equal(cfg->context_name, "ctx");
    assert_string_equal(cfg->cluster_name, "c");
    assert_string_equal(cfg->user_name, "u");
    assert_string_equal(cfg->namespace, "default");
    assert_string_equal(cfg->server, "https://127.0.0.1:6443");
    assert_string_equal(cfg->token, "dummy-token");
    assert_null(cfg->ca_pem);
    assert_null(cfg->cert_pem);
    assert_null(cfg->key_pem);
    assert_null(cfg->token_file);
    assert_null(cfg->exec);
    assert_null(cfg->proxy_url);
    assert_int_equal(cfg->insecure_skip_tls_verify, 0);
    assert_int_equal(cfg->in_cluster, 0);
    k8s_config_free(cfg);
    free(d);
    k8s_config_free(NULL);
}

static void test_namespace_and_context(void **state)
{
    (void)state;
    const char *text = "current-context: one\n"
                       "clusters:\n"
                       "- name: c1\n"
                       "  cluster: {server: https://one}\n"
                       "- name: c2\n"
                       "  cluster: {server: https://two}\n"
                       "contexts:\n"
                       "- name: one\n"
                       "  context: {cluster: c1, namespace: team-one}\n"
                       "- name: two\n"
                       "  context: {cluster: c2, user: missing-user}\n";
    struct k8s_config *cfg = load_ok(text, NULL, NULL);
    assert_string_equal(cfg->server, "https://one");
    assert_string_equal(cfg->namespace, "team-one");
    assert_null(cfg->user_name); /* a context without a user is anonymous */
    k8s_config_free(cfg);

    /* --context wins over current-context; a user that is not defined means no credentials,
     * as client-go treats it */
    cfg = load_ok(text, NULL, "two");
    assert_string_equal(cfg->context_name, "two");
    assert_string_equal(cfg->server, "https://two");
    assert_string_equal(cfg->namespace, "default");
    assert_string_equal(cfg->user_name, "missing-user");
    assert_null(cfg->token);
    assert_null(cfg->exec);
    k8s_config_free(cfg);

    /* an empty --context means "use current-context" */
    cfg = load_ok(text, NULL, "");
    assert_string_equal(cfg->context_name, "one");
    k8s_config_free(cfg);
}

static void test_context_errors(void **state)
{
    (void)state;
    const char *text = "current-context: one\n"
                       "clusters:\n"
                       "- name: c1\n"
                       "  cluster: {server: https://one}\n"
                       "- name: noserver\n"
                       "  cluster: {insecure-skip-tls-verify: true}\n"
                       "contexts:\n"
                       "- name: one\n"
                       "  context: {cluster: c1}\n"
                       "- name: dangling\n"
                       "  context: {cluster: gone, user: u}\n"
                       "- name: bare\n"
                       "  context: {user: u}\n"
                       "- name: ns\n"
                       "  context: {cluster: noserver}\n";
    load_fails(text, NULL, "nope", CG_EINVAL, "context 'nope' not found in 'test.yaml'");
    load_fails(text, NULL, "dangling", CG_EINVAL,
               "context 'dangling': cluster 'gone' not found in 'test.yaml'");
    load_fails(text, NULL, "bare", CG_EINVAL, "test.yaml: context 'bare' names no cluster");
    load_fails(text, NULL, "ns", CG_EINVAL, "test.yaml: cluster 'noserver' has no server");

    load_fails("clusters:\n- name: c\n  cluster: {server: https://x}\n", NULL, NULL, CG_EINVAL,
               "no current context in 'test.yaml': set current-context or choose a context");
    /* a current-context naming nothing */
    load_fails("current-context: ghost\n", NULL, NULL, CG_EINVAL,
               "context 'ghost' not found in 'test.yaml'");
    /* names from the file are made printable: messages stay one line */
    load_fails("current-context: \"a\\nb\"\n", NULL, NULL, CG_EINVAL,
               "context 'a?b' not found in 'test.yaml'");
}

static void test_empty_documents(void **state)
{
    (void)state;
    /* nothing configured is ENOTFOUND, so callers can try the next source */
    load_fails("", NULL, NULL, CG_ENOTFOUND, "'test.yaml' defines no contexts");
    load_fails("# nothing\n", NULL, NULL, CG_ENOTFOUND, "'test.yaml' defines no contexts");
    load_fails("apiVersion: v1\nkind: Config\nclusters: []\nusers: ~\n", NULL, NULL, CG_ENOTFOUND,
               "'test.yaml' defines no contexts");
    /* ... but a context asked for by name is a mistake */
    load_fails("", NULL, "x", CG_EINVAL, "context 'x' not found in 'test.yaml'");
}

/* ---- cluster fields ---- */

static void test_ca_by_path_and_data(void **state)
{
    (void)state;
    char *ca = slurp(PKI "/ca.crt");
    char *ca2 = slurp(PKI "/ca2.crt");

    /* relative to the dir given for the buffer; "./" and ".." are cleaned as client-go does */
    char *d = doc(SERVER "    certificate-authority: ./sub/../ca.crt\n", "");
    struct k8s_config *cfg = load_ok(d, PKI, NULL);
    assert_string_equal(cfg->ca_pem, ca);
    assert_int_equal(cfg->ca_len, strlen(ca));
    k8s_config_free(cfg);
    free(d);

    /* absolute paths are used as written */
    d = doc(SERVER "    certificate-authority: " PKI "/ca2.crt\n", "");
    cfg = load_ok(d, "/nonexistent", NULL);
    assert_string_equal(cfg->ca_pem, ca2);
    k8s_config_free(cfg);
    free(d);

    char *enc = b64_file(PKI "/ca2.crt");
    char line[4096];
    snprintf(line, sizeof(line), SERVER "    certificate-authority-data: %s\n", enc);
    d = doc(line, "");
    cfg = load_ok(d, NULL, NULL);
    assert_string_equal(cfg->ca_pem, ca2);
    assert_int_equal(cfg->ca_len, strlen(ca2));
    k8s_config_free(cfg);
    free(d);

    /* both at once: kubectl refuses rather than letting -data win */
    snprintf(line, sizeof(line),
             SERVER "    certificate-authority: ca.crt\n    certificate-authority-data: %s\n", enc);
    doc_fails(line, "",
              "test.yaml: cluster 'c': certificate-authority-data and "
              "certificate-authority are both set");
    free(enc);
    free(ca);
    free(ca2);
}

static void test_referenced_file_missing(void **state)
{
    (void)state;
    doc_fails(SERVER "    certificate-authority: nope/ca.crt\n", "",
              "test.yaml: cluster 'c': certificate-authority: cannot open '" PKI
              "/nope/ca.crt': No such file or directory");
    doc_fails(SERVER, "    client-certificate: client.crt\n    client-key: missing.key\n",
              "test.yaml: user 'u': client-key: cannot open '" PKI
              "/missing.key': No such file or directory");
    /* '~' is not expanded (client-go does not either): it is a relative path */
    doc_fails(SERVER "    certificate-authority: ~/ca.crt\n", "",
              "test.yaml: cluster 'c': certificate-authority: cannot open '" PKI
              "/~/ca.crt': No such file or directory");
}

static void test_insecure_tls_proxy(void **state)
{
    (void)state;
    char *d = doc(SERVER "    insecure-skip-tls-verify: true\n"
                         "    tls-server-name: api.internal\n"
                         "    proxy-url: HTTPS://user:dummy-pw@proxy:3128\n",
                  "");
    struct k8s_config *cfg = load_ok(d, NULL, NULL);
    assert_int_equal(cfg->insecure_skip_tls_verify, 1);
    assert_string_equal(cfg->tls_server_name, "api.internal");
    assert_string_equal(cfg->proxy_url, "HTTPS://user:dummy-pw@proxy:3128");
    k8s_config_free(cfg);
    free(d);

    doc_ok_free(SERVER "    proxy-url: socks5://127.0.0.1:1080\n", "");
    doc_ok_free(SERVER "    proxy-url: http://proxy\n", "");
    doc_ok_free(SERVER "    insecure-skip-tls-verify: false\n    certificate-authority: ca.crt\n",
                "");

    doc_fails(SERVER "    insecure-skip-tls-verify: true\n    certificate-authority: ca.crt\n", "",
              "test.yaml: cluster 'c': specifying a root certificates file with the insecure "
              "flag is not allowed");
    doc_fails(SERVER "    insecure-skip-tls-verify: yes\n    certificate-authority-data: "
                     "aGVsbG8=\n",
              "",
              "test.yaml: cluster 'c': specifying a root certificates file with the insecure "
              "flag is not allowed");
    /* the URL may hold a password: only the scheme is quoted */
    doc_fails(SERVER "    proxy-url: ftp://user:dummy-secret@proxy\n", "",
              "test.yaml: cluster 'c': proxy-url has unsupported scheme 'ftp' (want http, https "
              "or socks5)");
    doc_fails(SERVER "    proxy-url: proxy.internal:3128\n", "",
              "test.yaml: cluster 'c': proxy-url has unsupported scheme 'proxy.internal' (want "
              "http, https or socks5)");
    doc_fails(SERVER "    proxy-url: dummy-secret@proxy\n", "",
              "test.yaml: cluster 'c': proxy-url has unsupported scheme '' (want http, https or "
              "socks5)");
}

/* ---- user fields ---- */

static void test_client_cert_paths_and_data(void **state)
{
    (void)state;
    char *crt = slurp(PKI "/client.crt");
    char *key = slurp(PKI "/client.key");
    char *d = doc(SERVER, "    client-certificate: client.crt\n    client-key: client.key\n");
    struct k8s_config *cfg = load_ok(d, PKI, NULL);
    assert_string_equal(cfg->cert_pem, crt);
    assert_int_equal(cfg->cert_len, strlen(crt));
    assert_string_equal(cfg->key_pem, key);
    assert_int_equal(cfg->key_len, strlen(key));
    k8s_config_free(cfg);
    free(d);

    char *crt64 = b64_file(PKI "/client.crt");
    char *key64 = b64_file(PKI "/client.key");
    char user[4096];
    snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n",
             crt64, key64);
    d = doc(SERVER, user);
    cfg = load_ok(d, NULL, NULL);
    assert_string_equal(cfg->cert_pem, crt);
    assert_string_equal(cfg->key_pem, key);
    k8s_config_free(cfg);
    free(d);

    /* mixed: data for one, path for the other */
    snprintf(user, sizeof(user), "    client-certificate: client.crt\n    client-key-data: %s\n",
             key64);
    d = doc(SERVER, user);
    cfg = load_ok(d, PKI, NULL);
    assert_string_equal(cfg->cert_pem, crt);
    assert_string_equal(cfg->key_pem, key);
    k8s_config_free(cfg);
    free(d);

    snprintf(user, sizeof(user),
             "    client-certificate: client.crt\n    client-certificate-data: %s\n"
             "    client-key: client.key\n",
             crt64);
    doc_fails(SERVER, user,
              "test.yaml: user 'u': client-certificate-data and client-certificate are both set");
    snprintf(user, sizeof(user),
             "    client-certificate: client.crt\n    client-key: client.key\n"
             "    client-key-data: %s\n",
             key64);
    doc_fails(SERVER, user, "test.yaml: user 'u': client-key-data and client-key are both set");
    doc_fails(SERVER, "    client-certificate: client.crt\n",
              "test.yaml: user 'u': a client certificate needs client-key or client-key-data");

    /* a key alone is ignored (client-go ignores it), and not even read */
    d = doc(SERVER, "    client-key: does-not-exist.key\n");
    cfg = load_ok(d, PKI, NULL);
    assert_null(cfg->key_pem);
    assert_null(cfg->cert_pem);
    k8s_config_free(cfg);
    free(d);

    free(crt64);
    free(key64);
    free(crt);
    free(key);
}

static void test_bad_base64(void **state)
{
    (void)state;
    doc_fails(SERVER,
              "    client-certificate-data: aGVsbG8=\n    client-key-data: "
              "dummy-secret-key!!\n",
              "test.yaml: user 'u': client-key-data: illegal base64");
    doc_fails(SERVER "    certificate-authority-data: '%%%'\n", "",
              "test.yaml: cluster 'c': certificate-authority-data: illegal base64");
    /* kubectl refuses the whole file even when the broken entry is not in use */
    load_fails("current-context: ctx\n"
               "clusters:\n"
               "- name: c\n"
               "  cluster: {server: https://x}\n"
               "contexts:\n"
               "- name: ctx\n"
               "  context: {cluster: c}\n"
               "users:\n"
               "- name: unused\n"
               "  user: {client-certificate-data: ===}\n",
               NULL, NULL, CG_EINVAL,
               "test.yaml: user 'unused': client-certificate-data: illegal base64");
}

static void test_tokens_and_basic(void **state)
{
    (void)state;
    char *d = doc(SERVER, "    token: dummy-token\n    tokenFile: secrets/../token\n");
    struct k8s_config *cfg = load_ok(d, "/etc/kube", NULL);
    assert_string_equal(cfg->token, "dummy-token");
    assert_string_equal(cfg->token_file, "/etc/kube/token"); /* resolved, not read */
    k8s_config_free(cfg);
    free(d);

    d = doc(SERVER, "    tokenFile: /abs/token\n");
    cfg = load_ok(d, "/etc/kube", NULL);
    assert_null(cfg->token);
    assert_string_equal(cfg->token_file, "/abs/token");
    k8s_config_free(cfg);
    free(d);

    /* without a dir (a buffer from nowhere) relative paths stay as written */
    d = doc(SERVER, "    tokenFile: ./token\n");
    cfg = load_ok(d, NULL, NULL);
    assert_string_equal(cfg->token_file, "./token");
    k8s_config_free(cfg);
    free(d);

    d = doc(SERVER, "    username: admin\n    password: dummy-password\n");
    cfg = load_ok(d, NULL, NULL);
    assert_string_equal(cfg->username, "admin");
    assert_string_equal(cfg->password, "dummy-password");
    assert_null(cfg->token);
    k8s_config_free(cfg);
    free(d);

    /* the message names the problem, never the values */
    doc_fails(SERVER, "    token: dummy-token\n    password: dummy-password\n",
              "test.yaml: user 'u': more than one authentication method (token and basic auth)");
}

static void test_exec(void **state)
{
    (void)state;
    char *d = doc(SERVER, "    exec:\n"
                          "      apiVersion: client.authentication.k8s.io/v1\n"
                          "      command: ./bin/../bin/plugin\n"
                          "      args: [get-token, --flag, ~]\n"
                          "      env:\n"
                          "      - {name: A, value: one}\n"
                          "      - {name: EMPTY}\n"
                          "      interactiveMode: Never\n"
                          "      provideClusterInfo: true\n"
                          "      installHint: install the plugin\n");
    struct k8s_config *cfg = load_ok(d, "/opt/kube", NULL);
    struct k8s_exec *e = cfg->exec;
    assert_non_null(e);
    assert_string_equal(e->api_version, "client.authentication.k8s.io/v1");
    assert_string_equal(e->command, "/opt/kube/bin/plugin");
    assert_string_equal(e->args[0], "get-token");
    assert_string_equal(e->args[1], "--flag");
    assert_string_equal(e->args[2], "");
    assert_null(e->args[3]);
    assert_int_equal(e->env_count, 2);
    assert_string_equal(e->env[0].name, "A");
    assert_string_equal(e->env[0].value, "one");
    assert_string_equal(e->env[1].name, "EMPTY");
    assert_null(e->env[1].value);
    assert_string_equal(e->interactive_mode, "Never");
    assert_int_equal(e->provide_cluster_info, 1);
    assert_string_equal(e->install_hint, "install the plugin");
    k8s_config_free(cfg);
    free(d);

    /* v1beta1 defaults interactiveMode; a bare command is looked up on PATH, not resolved */
    d = doc(SERVER, "    exec:\n"
                    "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                    "      command: aws\n");
    cfg = load_ok(d, "/opt/kube", NULL);
    assert_string_equal(cfg->exec->interactive_mode, "IfAvailable");
    assert_string_equal(cfg->exec->command, "aws");
    assert_non_null(cfg->exec->args);
    assert_null(cfg->exec->args[0]);
    assert_int_equal(cfg->exec->env_count, 0);
    assert_int_equal(cfg->exec->provide_cluster_info, 0);
    k8s_config_free(cfg);
    free(d);

    /* a static credential shadows the plugin, as in client-go */
    d = doc(SERVER, "    token: dummy\n"
                    "    exec:\n"
                    "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                    "      command: aws\n");
    cfg = load_ok(d, NULL, NULL);
    assert_null(cfg->exec);
    assert_string_equal(cfg->token, "dummy");
    k8s_config_free(cfg);
    free(d);
}

static void test_exec_errors(void **state)
{
    (void)state;
    doc_fails(
        SERVER,
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n"
        "      command: x\n",
        "test.yaml: user 'u': unknown exec apiVersion 'client.authentication.k8s.io/v1alpha1' "
        "(want client.authentication.k8s.io/v1 or v1beta1)");
    doc_fails(SERVER, "    exec:\n      command: x\n",
              "test.yaml: user 'u': exec apiVersion is missing (want "
              "client.authentication.k8s.io/v1 or v1beta1)");
    doc_fails(SERVER, "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n",
              "test.yaml: user 'u': exec command is missing");
    doc_fails(SERVER,
              "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
              "      command: x\n",
              "test.yaml: user 'u': exec interactiveMode is required for "
              "client.authentication.k8s.io/v1 (Never, IfAvailable or Always)");
    doc_fails(SERVER,
              "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
              "      command: x\n      interactiveMode: Sometimes\n",
              "test.yaml: user 'u': invalid exec interactiveMode 'Sometimes' (want Never, "
              "IfAvailable or Always)");
    doc_fails(SERVER,
              "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
              "      command: x\n      env: [{name: A, value: b}, {value: dummy}]\n",
              "test.yaml: user 'u': exec env entry 2 has no name");
    doc_fails(SERVER,
              "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
              "      command: x\n      args: --flag\n",
              "test.yaml:19:13: user 'u': 'args' must be a sequence, not a string");
    doc_fails(SERVER,
              "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
              "      command: x\n      args: [[nested]]\n",
              "test.yaml:19:14: user 'u': 'args' items must be a string, not a sequence");
    doc_fails(SERVER,
              "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
              "      command: x\n      env: [A=b]\n",
              "test.yaml:19:13: user 'u': 'env' items must be mappings, not a string");
    doc_fails(SERVER, "    exec: /bin/plugin\n",
              "test.yaml:16:11: user 'u': 'exec' must be a mapping, not a string");
}

static void test_auth_provider_and_impersonation(void **state)
{
    (void)state;
    doc_fails(SERVER, "    auth-provider:\n      name: oidc\n      config: {id-token: dummy}\n",
              "test.yaml: user 'u': auth-provider 'oidc' is not supported: use an exec "
              "credential plugin (such as gke-gcloud-auth-plugin or kubelogin)");
    doc_fails(SERVER, "    token: dummy\n    as: admin\n",
              "test.yaml: user 'u': impersonation (as, as-groups) is not supported");
    doc_fails(SERVER, "    token: dummy\n    as-groups: [system:masters]\n",
              "test.yaml: user 'u': impersonation (as, as-groups) is not supported");
    /* an impersonation entry in an unused user does not matter */
    k8s_config_free(load_ok("current-context: x\nclusters: [{name: c, cluster: {server: "
                            "https://s}}]\ncontexts: [{name: x, context: {cluster: c}}]\n"
                            "users: [{name: other, user: {as: admin}}]\n",
                            NULL, NULL));
}

/* ---- structure and syntax ---- */

static void test_wrong_types(void **state)
{
    (void)state;
    load_fails("clusters: all\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:11: 'clusters' must be a sequence, not a string");
    load_fails("users: {a: b}\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:8: 'users' must be a sequence, not a mapping");
    load_fails("contexts: [oops]\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:12: 'contexts' entries must be mappings, not a string");
    load_fails("clusters:\n- name: c\n  cluster: 5\n", NULL, NULL, CG_EINVAL,
               "test.yaml:3:12: cluster 'c': 'cluster' must be a mapping, not a string");
    load_fails("clusters:\n- name: [c]\n", NULL, NULL, CG_EINVAL,
               "test.yaml:2:9: 'name' must be a string, not a sequence");
    load_fails("clusters:\n- name: c\n  cluster:\n    server: {host: x}\n", NULL, NULL, CG_EINVAL,
               "test.yaml:4:13: cluster 'c': 'server' must be a string, not a mapping");
    load_fails("clusters:\n- name: c\n  cluster:\n    insecure-skip-tls-verify: \"true\"\n", NULL,
               NULL, CG_EINVAL,
               "test.yaml:4:31: cluster 'c': 'insecure-skip-tls-verify' must be true or false");
    load_fails("current-context: [a]\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:18: 'current-context' must be a string, not a sequence");
    load_fails("- a\n- b\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:1: a kubeconfig must be a mapping, not a sequence");
    load_fails("just text\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:1: a kubeconfig must be a mapping, not a string");
    load_fails("apiVersion: v2\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:13: apiVersion 'v2' is not supported (want v1)");
    load_fails("kind: Pod\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:7: kind 'Pod' is not supported (want Config)");
    load_fails("users:\n- name: u\n  user:\n    token: \"a\\0b\"\n", NULL, NULL, CG_EINVAL,
               "test.yaml:4:12: user 'u': 'token' must not contain a NUL byte");
    /* unknown keys are ignored, as kubectl ignores them */
    k8s_config_free(load_ok("current-context: x\npreferences: {colors: true}\nextra: 1\n"
                            "clusters: [{name: c, cluster: {server: https://s, future: 1}}]\n"
                            "contexts: [{name: x, context: {cluster: c}}]\n",
                            NULL, NULL));
    /* null entries and bodies are empty, as Go's decoder makes them */
    k8s_config_free(load_ok("current-context: x\nclusters: [{name: c, cluster: {server: "
                            "https://s}}, ~]\nusers: [{name: u}]\n"
                            "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                            NULL, NULL));
}

static void test_yaml_errors(void **state)
{
    (void)state;
    load_fails("current-context: a\nclusters:\n  - name: c\n    cluster: {server: x\n", NULL, NULL,
               CG_EINVAL,
               "test.yaml:5:1: did not find expected ',' or '}' (while parsing a flow mapping "
               "that started at 4:14)");
    load_fails("a: b\n c: d\n", NULL, NULL, CG_EINVAL,
               "test.yaml:2:3: mapping values are not allowed in this context");
    load_fails("clusters: &x [*x]\n", NULL, NULL, CG_EINVAL,
               "test.yaml:1:11: alias refers to its own node");
}

static void test_duplicates(void **state)
{
    (void)state;
    load_fails("clusters:\n- name: a\n- name: b\n- name: a\n", NULL, NULL, CG_EINVAL,
               "test.yaml: cluster 'a' is defined twice");
    load_fails("users:\n- name: u\n- name: u\n", NULL, NULL, CG_EINVAL,
               "test.yaml: user 'u' is defined twice");
    load_fails("contexts:\n- {}\n- ~\n", NULL, NULL, CG_EINVAL,
               "test.yaml: context '' is defined twice");
}

static void test_secrets_not_in_messages(void **state)
{
    (void)state;
    /* every refusal of a document holding secrets: none may leak into the message */
    const char *users[] = {
        "    token: dummy-SECRET\n    username: a\n    password: dummy-SECRET\n",
        "    client-certificate-data: aGVsbG8=\n    client-key-data: dummy-SECRET\n",
        "    token: dummy-SECRET\n    as: x\n",
        "    token: [dummy-SECRET]\n",
        "    password: {dummy-SECRET: 1}\n",
    };
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        char *d = doc(SERVER, users[i]);
        struct k8s_config *cfg = NULL;
        struct cg_err err = {0};
        assert_int_equal(k8s_kubeconfig_load_buffer(&cfg, d, strlen(d), SRC_NAME, NULL, NULL, &err),
                         CG_EINVAL);
        assert_null(strstr(err.msg, "SECRET"));
        free(d);
    }
}

/* ---- files and merging ---- */

static void test_merge_precedence(void **state)
{
    (void)state;
    char *ca = slurp(PKI "/ca.crt");
    char *ca2 = slurp(PKI "/ca2.crt");
    const char *ab[] = {DIFF "/merge/a/config", DIFF "/merge/b/config"};
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};

    /* a first: current-context, context, cluster and user all from a; b's "shared" cluster
     * loses whole, so its tls-server-name does not leak in */
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, ab, 2, NULL, &err), 0);
    assert_string_equal(cfg->source, DIFF "/merge/a/config:" DIFF "/merge/b/config");
    assert_string_equal(cfg->context_name, "shared");
    assert_string_equal(cfg->server, "https://127.0.0.1:1");
    assert_string_equal(cfg->namespace, "from-a");
    assert_null(cfg->tls_server_name);
    assert_string_equal(cfg->ca_pem, ca); /* a/ca.crt, relative to a */
    assert_string_equal(cfg->token_file, DIFF "/merge/a/token");
    assert_null(cfg->token);
    k8s_config_free(cfg);
    cfg = NULL;

    /* a context from b using a user from a: each path resolves against its own file */
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, ab, 2, "b-only", &err), 0);
    assert_string_equal(cfg->server, "https://127.0.0.3:1");
    assert_string_equal(cfg->ca_pem, ca2); /* b/ca.crt */
    assert_string_equal(cfg->token_file, DIFF "/merge/a/token");
    k8s_config_free(cfg);
    cfg = NULL;

    /* b first: b's current-context and b's "shared" user */
    const char *ba[] = {DIFF "/merge/b/config", DIFF "/merge/a/config"};
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, ba, 2, NULL, &err), 0);
    assert_string_equal(cfg->context_name, "b-only");
    assert_string_equal(cfg->token, "dummy-token-from-b-shared");
    assert_null(cfg->token_file);
    k8s_config_free(cfg);
    cfg = NULL;
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, ba, 2, "shared", &err), 0);
    assert_string_equal(cfg->namespace, "from-b");
    assert_string_equal(cfg->token_file, DIFF "/merge/b/token");
    k8s_config_free(cfg);
    cfg = NULL;

    /* duplicates removed, empty entries and missing files skipped */
    const char *messy[] = {"",   DIFF "/merge/missing",  DIFF "/merge/b/config",
                           NULL, DIFF "/merge/b/config", DIFF "/merge/a/config"};
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, messy, 6, NULL, &err), 0);
    assert_string_equal(cfg->source, DIFF "/merge/b/config:" DIFF "/merge/a/config");
    assert_string_equal(cfg->context_name, "b-only");
    k8s_config_free(cfg);
    cfg = NULL;

    /* errors name all the files searched */
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, ab, 2, "nope", &err), CG_EINVAL);
    assert_string_equal(err.msg, "context 'nope' not found in '" DIFF "/merge/a/config:" DIFF
                                 "/merge/b/config'");
    assert_null(cfg);

    const char *none[] = {DIFF "/missing-1", "", DIFF "/missing-2"};
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, none, 3, NULL, &err), CG_ENOTFOUND);
    assert_string_equal(err.msg, "none of the kubeconfig files exist");
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, NULL, 0, NULL, &err), CG_ENOTFOUND);
    assert_null(cfg);
    free(ca);
    free(ca2);
}

static void test_merge_broken_later_file(void **state)
{
    (void)state;
    /* a later file is parsed whole even when the first wins everything: kubectl refuses it */
    const char *files[] = {DIFF "/single/config", DIFF "/errors/bad-base64.yaml"};
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, files, 2, NULL, &err), CG_EINVAL);
    assert_string_equal(err.msg, DIFF "/errors/bad-base64.yaml: user 'unused': client-key-data: "
                                      "illegal base64");
    const char *syntax[] = {DIFF "/single/config", DIFF "/errors/invalid-yaml.yaml"};
    assert_int_equal(k8s_kubeconfig_load_files(&cfg, syntax, 2, NULL, &err), CG_EINVAL);
    assert_string_equal(err.msg, DIFF "/errors/invalid-yaml.yaml:7:9: did not find expected ',' "
                                      "or '}' (while parsing a flow mapping that started at 6:14)");
    assert_null(cfg);
}

static void test_relative_kubeconfig_path(void **state)
{
    (void)state;
    /* a relative KUBECONFIG entry is taken from the working directory and its relative paths
     * resolve to absolute ones, as client-go makes them */
    char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    assert_int_equal(chdir(DIFF), 0);
    const char *files[] = {"./tokens/../tokens/config"};
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    int rc = k8s_kubeconfig_load_files(&cfg, files, 1, "file", &err);
    assert_int_equal(chdir(cwd), 0);
    free(cwd);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg->source, "./tokens/../tokens/config");
    assert_string_equal(cfg->token_file, DIFF "/tokens/secrets/token");
    k8s_config_free(cfg);
}

/* ---- k8s_config_load order ---- */

static void test_load_order(void **state)
{
    (void)state;
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    struct k8s_load_opts opts = {
        .kubeconfig_path = DIFF "/single/config",
        .kubeconfig_env = DIFF "/tokens/config",
        .home = KC_FIX "/home",
        .service_host = "10.0.0.1",
        .service_port = "443",
        .sa_dir = KC_FIX "/sa",
    };
    /* 1. --kubeconfig beats everything */
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->source, DIFF "/single/config");
    assert_string_equal(cfg->context_name, "dev");
    k8s_config_free(cfg);
    cfg = NULL;
    opts.context = "ops";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->token, "dummy-static-token-1");
    k8s_config_free(cfg);
    cfg = NULL;
    opts.context = NULL;

    /* ... and must exist: no merging, no skipping */
    opts.kubeconfig_path = DIFF "/missing";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), CG_EINVAL);
    assert_string_equal(err.msg, "cannot open '" DIFF "/missing': No such file or directory");
    assert_null(cfg);
    opts.kubeconfig_path = KC_FIX "/README"; /* plain text, not a mapping */
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), CG_EINVAL);

    /* 2. then KUBECONFIG */
    opts.kubeconfig_path = "";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->source, DIFF "/tokens/config");
    k8s_config_free(cfg);
    cfg = NULL;

    /* KUBECONFIG naming only missing files falls back to in-cluster, never to $HOME */
    opts.kubeconfig_env = DIFF "/missing-1::" DIFF "/missing-2";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), 0);
    assert_int_equal(cfg->in_cluster, 1);
    k8s_config_free(cfg);
    cfg = NULL;
    opts.service_port = NULL;
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), CG_ENOTFOUND);
    assert_string_equal(err.msg,
                        "no Kubernetes configuration found: KUBECONFIG '" DIFF "/missing-1::" DIFF
                        "/missing-2': none of the kubeconfig files exist");
    assert_null(cfg);
    opts.service_port = "443";

    /* a broken KUBECONFIG file is an error, not a reason to look elsewhere */
    opts.kubeconfig_env = DIFF "/errors/clusters-scalar.yaml";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), CG_EINVAL);
    assert_null(cfg);

    /* 3. then in-cluster */
    opts.kubeconfig_env = NULL;
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), 0);
    assert_int_equal(cfg->in_cluster, 1);
    assert_string_equal(cfg->source, "in-cluster");
    k8s_config_free(cfg);
    cfg = NULL;

    /* 4. then ~/.kube/config */
    opts.service_host = "";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->source, KC_FIX "/home/.kube/config");
    assert_string_equal(cfg->token, "dummy-home-token");
    k8s_config_free(cfg);
    cfg = NULL;

    /* 5. nothing */
    opts.home = KC_FIX "/no-such-home";
    assert_int_equal(k8s_config_load(&cfg, &opts, &err), CG_ENOTFOUND);
    assert_string_equal(err.msg, "no Kubernetes configuration found: set --kubeconfig or "
                                 "KUBECONFIG, or run in a cluster");
    struct k8s_load_opts empty = {0};
    assert_int_equal(k8s_config_load(&cfg, &empty, &err), CG_ENOTFOUND);
    assert_string_equal(err.msg, "no Kubernetes configuration found: set --kubeconfig or "
                                 "KUBECONFIG, or run in a cluster");
    assert_null(cfg);
}

/* ---- in-cluster ---- */

static void test_in_cluster(void **state)
{
    (void)state;
    char *ca = slurp(KC_FIX "/sa/ca.crt");
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    struct k8s_load_opts opts = {
        .service_host = "10.96.0.1", .service_port = "443", .sa_dir = KC_FIX "/sa"};
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    assert_string_equal(cfg->source, "in-cluster");
    assert_int_equal(cfg->in_cluster, 1);
    assert_string_equal(cfg->token_file, KC_FIX "/sa/token");
    assert_string_equal(cfg->token, "dummy.sa.jwt-token"); /* trimmed */
    assert_string_equal(cfg->ca_pem, ca);
    assert_int_equal(cfg->ca_len, strlen(ca));
    assert_string_equal(cfg->namespace, "cloudgrant-system"); /* trimmed */
    k8s_config_free(cfg);
    cfg = NULL;

    opts.service_host = "fd00:10:96::1";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->server, "https://[fd00:10:96::1]:443");
    k8s_config_free(cfg);
    cfg = NULL;
    opts.service_host = "[::1]";
    opts.service_port = "6443";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->server, "https://[::1]:6443");
    k8s_config_free(cfg);
    cfg = NULL;
    opts.service_host = "kubernetes.default.svc";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), 0);
    assert_string_equal(cfg->server, "https://kubernetes.default.svc:6443");
    k8s_config_free(cfg);
    cfg = NULL;

    /* no ca.crt or namespace: the system store and "default", as client-go */
    opts.sa_dir = KC_FIX "/sa-token-only";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), 0);
    assert_null(cfg->ca_pem);
    assert_string_equal(cfg->namespace, "default");
    assert_string_equal(cfg->token, "dummy-only-token");
    k8s_config_free(cfg);
    cfg = NULL;
    free(ca);
}

static void test_in_cluster_errors(void **state)
{
    (void)state;
    struct k8s_config *cfg = NULL;
    struct cg_err err = {0};
    struct k8s_load_opts opts = {
        .service_host = "10.96.0.1", .service_port = "443", .sa_dir = KC_FIX "/sa-blank-token"};
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), CG_EAUTH);
    assert_string_equal(err.msg, "in-cluster: service account token '" KC_FIX
                                 "/sa-blank-token/token' is empty");
    opts.sa_dir = KC_FIX "/no-such-sa";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), CG_EAUTH);
    assert_string_equal(err.msg, "in-cluster: no service account token (is "
                                 "automountServiceAccountToken disabled?): cannot open '" KC_FIX
                                 "/no-such-sa/token': No such file or directory");
    opts.sa_dir = KC_FIX "/sa";
    opts.service_port = "http";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), CG_EINVAL);
    assert_string_equal(err.msg, "in-cluster: KUBERNETES_SERVICE_PORT 'http' is not a port number");
    opts.service_port = "70000";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), CG_EINVAL);
    opts.service_port = "443";
    opts.service_host = "evil/path@x";
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), CG_EINVAL);
    assert_string_equal(err.msg, "in-cluster: KUBERNETES_SERVICE_HOST is not a host");
    opts.service_host = NULL;
    assert_int_equal(k8s_config_in_cluster(&cfg, &opts, &err), CG_ENOTFOUND);
    assert_string_equal(err.msg, "not running in a cluster: KUBERNETES_SERVICE_HOST and "
                                 "KUBERNETES_SERVICE_PORT must both be set");
    assert_null(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_namespace_and_context),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_ca_by_path_and_data),
        cmocka_unit_test(test_referenced_file_missing),
        cmocka_unit_test(test_insecure_tls_proxy),
        cmocka_unit_test(test_client_cert_paths_and_data),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_tokens_and_basic),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_exec_errors),
        cmocka_unit_test(test_auth_provider_and_impersonation),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_secrets_not_in_messages),
        cmocka_unit_test(test_merge_precedence),
        cmocka_unit_test(test_merge_broken_later_file),
        cmocka_unit_test(test_relative_kubeconfig_path),
        cmocka_unit_test(test_load_order),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_in_cluster_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
