/* k8s/client.c: Kubernetes API calls with client-go's authentication behaviour. */
#include "k8s_client.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_proc.h"
#include "cg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

/* client-go re-reads a token file at most once a minute (transport/token_source.go). */
#define TOKEN_FILE_TTL_MS 60000u
/* Treat an exec credential as expired a little early so a call does not race its expiry. */
#define EXEC_EXPIRY_SLACK_S 30
#define MAX_TOKEN_FILE      (64u * 1024u)
#define MAX_EXEC_OUTPUT     (1024u * 1024u)

/* The credential currently used. Everything here is secret except the timestamps. */
struct cred {
    int valid;
    char *token;
    char *cert_pem; /* from an exec plugin; else the config's */
    size_t cert_len;
    char *key_pem;
    size_t key_len;
    int64_t expires_at; /* epoch seconds, 0 = no expiry */
    uint64_t loaded_ms; /* when a token file was read */
};

struct call {
    struct k8s_client *c;
    char *method;
    char *path;
    char *body;
    k8s_done_cb *done;
    void *data;
    int auth_retried;
    struct call *next; /* in the queue waiting for an exec plugin */
};

struct k8s_client {
    struct cg_http *http;
    struct k8s_config *cfg;
    char *base; /* server URL without a trailing '/' */
    struct cred cred;
    long timeout_ms;
    int exec_running;
    struct call *waiting;
    struct call **waiting_tail;
    const char *const *exec_environ;
    struct cg_err exec_err; /* a plugin that could not start, delivered from the loop */
};

static void cred_clear(struct cred *cr)
{
    cg_secret_free(cr->token);
    if (cr->key_pem != NULL) {
        cg_wipe(cr->key_pem, cr->key_len);
        free(cr->key_pem);
    }
    free(cr->cert_pem);
    memset(cr, 0, sizeof(*cr));
}

static void call_free(struct call *call)
{
    if (call == NULL) {
        return;
    }
    free(call->method);
    free(call->path);
    cg_secret_free(call->body); /* bodies may carry Secret data */
    free(call);
}

int k8s_client_new(struct k8s_client **out, struct cg_http *http, struct k8s_config *cfg,
                   struct cg_err *err)
{
    if (cfg == NULL || cfg->server == NULL) {
        k8s_config_free(cfg);
        return cg_err_set(err, CG_EINVAL, "kubernetes configuration has no server");
    }
    struct k8s_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        k8s_config_free(cfg);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    c->http = http;
    c->cfg = cfg;
    c->timeout_ms = 15000;
    c->waiting_tail = &c->waiting;
    c->base = strdup(cfg->server);
    if (c->base == NULL) {
        k8s_client_free(c);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/') {
        c->base[--n] = '\0';
    }
    *out = c;
    return 0;
}

void k8s_client_free(struct k8s_client *c)
{
    if (c == NULL) {
        return;
    }
    cred_clear(&c->cred);
    k8s_config_free(c->cfg);
    free(c->base);
    free(c);
}

const struct k8s_config *k8s_client_config(const struct k8s_client *c)
{
    return c->cfg;
}

struct cg_http *k8s_client_http(const struct k8s_client *c)
{
    return c->http;
}

void k8s_client_set_timeout(struct k8s_client *c, long ms)
{
    c->timeout_ms = ms;
}

void k8s_client_set_exec_environ(struct k8s_client *c, const char *const *environ_list)
{
    c->exec_environ = environ_list;
}

/* ---- completion ---- */

static void finish(struct call *call, long status, json_t *body, const struct cg_err *err)
{
    call->done(status, body, err, call->data);
    call_free(call);
}

static void fail(struct call *call, const struct cg_err *cause)
{
    struct cg_err e = *cause;
    cg_err_wrap(&e, "%s %s", call->method, call->path);
    finish(call, cause->http_status, NULL, &e);
}

static void dispatch(struct call *call);

static void on_response(struct cg_http_req *req, const struct cg_err *err, void *data)
{
    struct call *call = data;
    struct k8s_client *c = call->c;
    if (err != NULL) {
        fail(call, err);
        return;
    }
    long status = cg_http_req_status(req);
    if (status == 401 && !call->auth_retried &&
        (c->cfg->exec != NULL || c->cfg->token_file != NULL)) {
        /* The credential may have rotated or expired early: refresh it once and resend. */
        CG_LOG(CG_LOG_DEBUG, "k8s", "%s %s: 401, refreshing credentials", call->method, call->path);
        call->auth_retried = 1;
        cred_clear(&c->cred);
        dispatch(call);
        return;
    }
    size_t len = 0;
    const char *text = cg_http_req_body(req, &len);
    json_t *body = NULL;
    if (text != NULL && len > 0) {
        body = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    }
    if (status >= 200 && status < 300) {
        if (body == NULL) {
            struct cg_err e = {.code = CG_EINVAL, .http_status = status};
            snprintf(e.msg, sizeof(e.msg), "response is not JSON");
            fail(call, &e);
            return;
        }
        finish(call, status, body, NULL);
        json_decref(body);
        return;
    }
    struct cg_err e = {.code = status == 401 || status == 403 ? CG_EAUTH : CG_ESTATUS,
                       .http_status = status};
    /* A Kubernetes Status object says what went wrong; other bodies are not shown because
     * a proxy in between may echo request data. */
    const char *message = json_string_value(json_object_get(body, "message"));
    const char *reason = cg_http_reason(status) ? cg_http_reason(status) : "Error";
    if (message != NULL) {
        snprintf(e.msg, sizeof(e.msg), "%ld %s: %s", status, reason, message);
    } else {
        snprintf(e.msg, sizeof(e.msg), "%ld %s", status, reason);
    }
    if (status == 401) {
        size_t n = strlen(e.msg);
        snprintf(e.msg + n, sizeof(e.msg) - n,
                 " (the API server refused the credentials of "
                 "context '%s')",
                 c->cfg->context_name ? c->cfg->context_name : "in-cluster");
    }
    struct cg_err wrapped = e;
    cg_err_wrap(&wrapped, "%s %s", call->method, call->path);
    finish(call, status, body, &wrapped);
    json_decref(body);
}

static int send_now(struct call *call, struct cg_err *err)
{
    struct k8s_client *c = call->c;
    const struct k8s_config *cfg = c->cfg;
    struct cg_buf url;
    cg_buf_init(&url, 0);
    if (cg_buf_append_str(&url, c->base) < 0 || cg_buf_append_str(&url, call->path) < 0) {
        cg_buf_cleanup(&url);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    struct cg_http_req *req = cg_http_req_new(call->method, url.data);
    cg_buf_cleanup(&url);
    if (req == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = cg_http_req_header(req, "Accept", "application/json");
    if (rc == 0 && call->body != NULL) {
        const char *ct = strcmp(call->method, "PATCH") == 0 ? "application/merge-patch+json"
                                                            : "application/json";
        rc = cg_http_req_header(req, "Content-Type", ct);
        if (rc == 0) {
            rc = cg_http_req_body_copy(req, call->body, strlen(call->body));
        }
    }
    if (rc == 0 && c->cred.token != NULL) {
        struct cg_buf h;
        cg_buf_init(&h, 0);
        h.sensitive = 1;
        rc = cg_buf_printf(&h, "Bearer %s", c->cred.token);
        if (rc == 0) {
            rc = cg_http_req_header(req, "Authorization", h.data);
        }
        cg_buf_cleanup(&h);
    } else if (rc == 0 && cfg->username != NULL && cfg->password != NULL) {
        struct cg_buf h;
        cg_buf_init(&h, 0);
        h.sensitive = 1;
        rc = cg_buf_printf(&h, "%s:%s", cfg->username, cfg->password);
        char *b64 = rc == 0 ? cg_b64_encode((unsigned char *)h.data, h.len) : NULL;
        cg_buf_reset(&h);
        if (b64 != NULL) {
            rc = cg_buf_printf(&h, "Basic %s", b64);
            if (rc == 0) {
                rc = cg_http_req_header(req, "Authorization", h.data);
            }
            cg_secret_free(b64);
        } else if (rc == 0) {
            rc = CG_ENOMEM;
        }
        cg_buf_cleanup(&h);
    }
    if (rc == 0) {
        struct cg_tls tls = {
            .ca_pem = cfg->ca_pem,
            .ca_len = cfg->ca_len,
            .cert_pem = c->cred.cert_pem ? c->cred.cert_pem : cfg->cert_pem,
            .cert_len = c->cred.cert_pem ? c->cred.cert_len : cfg->cert_len,
            .key_pem = c->cred.key_pem ? c->cred.key_pem : cfg->key_pem,
            .key_len = c->cred.key_pem ? c->cred.key_len : cfg->key_len,
            .insecure_skip_verify = cfg->insecure_skip_tls_verify,
            .server_name = cfg->tls_server_name,
        };
        rc = cg_http_req_set_tls(req, &tls);
    }
    if (rc == 0 && cfg->proxy_url != NULL) {
        rc = cg_http_req_set_proxy(req, cfg->proxy_url);
    }
    if (rc < 0) {
        cg_http_req_free(req);
        return cg_err_set(err, rc, "cannot build request: %s", cg_errc_str(rc));
    }
    char label[160];
    snprintf(label, sizeof(label), "%s %s", call->method, call->path);
    cg_http_req_set_label(req, label);
    cg_http_req_set_timeout(req, c->timeout_ms);
    if (strcmp(call->method, "GET") != 0) {
        /* Writes are not retried blindly by the engine: the caller knows whether they are safe
         * to repeat (a create answers 409 the second time). */
        cg_http_req_set_max_attempts(req, 1);
    }
    rc = cg_http_submit(c->http, req, on_response, call, err);
    if (rc < 0) {
        cg_http_req_free(req);
    }
    return rc;
}

/* ---- credentials ---- */

static int load_token_file(struct k8s_client *c, struct cg_err *err)
{
    char *tok = NULL;
    int rc = cg_file_read(c->cfg->token_file, MAX_TOKEN_FILE, &tok, NULL, err);
    if (rc < 0) {
        if (c->cred.token != NULL) {
            /* client-go keeps the last good token when a re-read fails */
            CG_LOG(CG_LOG_WARN, "k8s", "%s; keeping the previous token", err->msg);
            c->cred.loaded_ms = cg_now_ms();
            return 0;
        }
        return rc;
    }
    cg_trim(tok);
    if (tok[0] == '\0') {
        cg_secret_free(tok);
        return cg_err_set(err, CG_EAUTH, "token file '%s' is empty", c->cfg->token_file);
    }
    cg_secret_free(c->cred.token);
    c->cred.token = tok;
    c->cred.valid = 1;
    c->cred.loaded_ms = cg_now_ms();
    return 0;
}

static void start_exec(struct k8s_client *c);

/* 1: the credential is ready, send now. 0: an exec plugin runs, the call was queued.
 * <0: err is filled. */
static int ensure_cred(struct k8s_client *c, struct call *call, struct cg_err *err)
{
    const struct k8s_config *cfg = c->cfg;
    if (cfg->exec != NULL) {
        int64_t now = (int64_t)time(NULL);
        if (c->cred.valid &&
            (c->cred.expires_at == 0 || now < c->cred.expires_at - EXEC_EXPIRY_SLACK_S)) {
            return 1;
        }
        call->next = NULL;
        *c->waiting_tail = call;
        c->waiting_tail = &call->next;
        if (!c->exec_running) {
            start_exec(c);
        }
        return 0;
    }
    if (cfg->token_file != NULL) {
        if (!c->cred.valid || cg_now_ms() - c->cred.loaded_ms > TOKEN_FILE_TTL_MS) {
            int rc = load_token_file(c, err);
            if (rc < 0) {
                return rc;
            }
        }
        return 1;
    }
    if (!c->cred.valid && cfg->token != NULL) {
        c->cred.token = strdup(cfg->token);
        if (c->cred.token == NULL) {
            return cg_err_set(err, CG_ENOMEM, "out of memory");
        }
        c->cred.valid = 1;
    }
    return 1;
}

static void dispatch(struct call *call)
{
    struct cg_err err = {0};
    int rc = ensure_cred(call->c, call, &err);
    if (rc == 1) {
        rc = send_now(call, &err);
    }
    if (rc < 0) {
        fail(call, &err);
    }
}

static void flush_waiting(struct k8s_client *c, const struct cg_err *err)
{
    struct call *q = c->waiting;
    c->waiting = NULL;
    c->waiting_tail = &c->waiting;
    while (q != NULL) {
        struct call *next = q->next;
        q->next = NULL;
        if (err != NULL) {
            fail(q, err);
        } else {
            struct cg_err e = {0};
            if (send_now(q, &e) < 0) {
                fail(q, &e);
            }
        }
        q = next;
    }
}

/* Reads an ExecCredential from plugin output into c->cred. */
static int parse_exec_output(struct k8s_client *c, const char *out, size_t len, struct cg_err *err)
{
    const struct k8s_exec *ex = c->cfg->exec;
    json_t *root = json_loadb(out, len, 0, NULL);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = cg_err_set(err, CG_EAUTH, "output is not an ExecCredential JSON object");
        goto out;
    }
    const char *api = json_string_value(json_object_get(root, "apiVersion"));
    const char *kind = json_string_value(json_object_get(root, "kind"));
    if (api == NULL || strcmp(api, ex->api_version) != 0) {
        rc = cg_err_set(err, CG_EAUTH,
                        "plugin returned apiVersion '%s', the kubeconfig asks "
                        "for '%s'",
                        api ? api : "", ex->api_version);
        goto out;
    }
    if (kind == NULL || strcmp(kind, "ExecCredential") != 0) {
        rc = cg_err_set(err, CG_EAUTH, "plugin returned kind '%s', not ExecCredential",
                        kind ? kind : "");
        goto out;
    }
    json_t *status = json_object_get(root, "status");
    if (!json_is_object(status)) {
        rc = cg_err_set(err, CG_EAUTH, "plugin returned no status");
        goto out;
    }
    const char *token = json_string_value(json_object_get(status, "token"));
    const char *cert = json_string_value(json_object_get(status, "clientCertificateData"));
    const char *key = json_string_value(json_object_get(status, "clientKeyData"));
    const char *exp = json_string_value(json_object_get(status, "expirationTimestamp"));
    if ((cert == NULL) != (key == NULL)) {
        rc = cg_err_set(err, CG_EAUTH,
                        "plugin returned a client certificate without its key "
                        "or a key without its certificate");
        goto out;
    }
    if (token == NULL && cert == NULL) {
        rc = cg_err_set(err, CG_EAUTH,
                        "plugin returned neither a token nor a client "
                        "certificate");
        goto out;
    }
    int64_t expires = 0;
    if (exp != NULL && cg_parse_rfc3339(exp, &expires) < 0) {
        rc = cg_err_set(err, CG_EAUTH, "plugin returned an invalid expirationTimestamp '%s'", exp);
        goto out;
    }
    cred_clear(&c->cred);
    if (token != NULL && (c->cred.token = strdup(token)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    if (cert != NULL) {
        c->cred.cert_pem = strdup(cert);
        c->cred.key_pem = strdup(key);
        if (c->cred.cert_pem == NULL || c->cred.key_pem == NULL) {
            cred_clear(&c->cred);
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto out;
        }
        c->cred.cert_len = strlen(cert);
        c->cred.key_len = strlen(key);
    }
    c->cred.expires_at = expires;
    c->cred.valid = 1;
out:
    if (root != NULL) {
        /* the tree holds the token: wipe its strings before jansson frees them */
        json_t *st = json_object_get(root, "status");
        const char *k;
        json_t *v;
        json_object_foreach(st, k, v)
        {
            if (json_is_string(v)) {
                cg_wipe((void *)json_string_value(v), json_string_length(v));
            }
        }
        json_decref(root);
    }
    return rc;
}

static void on_exec_done(const struct cg_proc_result *res, const struct cg_err *perr, void *data)
{
    struct k8s_client *c = data;
    const struct k8s_exec *ex = c->cfg->exec;
    struct cg_err err = {0};
    c->exec_running = 0;
    if (perr != NULL) {
        err = *perr;
        if (perr->code == CG_ENOTFOUND && ex->install_hint != NULL) {
            char hint[200];
            snprintf(hint, sizeof(hint), "%s", ex->install_hint);
            hint[strcspn(hint, "\r\n")] = '\0';
            size_t n = strlen(err.msg);
            snprintf(err.msg + n, sizeof(err.msg) - n, " (%s)", hint);
        }
        err.code = CG_EAUTH;
    } else if (res->term_signal != 0 || res->exit_status != 0) {
        char first[200] = "";
        if (res->err_out != NULL) {
            snprintf(first, sizeof(first), "%s", res->err_out);
            first[strcspn(first, "\r\n")] = '\0';
        }
        if (res->term_signal != 0) {
            cg_err_set(&err, CG_EAUTH, "killed by signal %d%s%s", res->term_signal,
                       first[0] ? ": " : "", first);
        } else {
            cg_err_set(&err, CG_EAUTH, "exit status %lld%s%s", (long long)res->exit_status,
                       first[0] ? ": " : "", first);
        }
    } else {
        parse_exec_output(c, res->out, res->out_len, &err);
    }
    if (err.code != 0) {
        cg_err_wrap(&err, "exec credential plugin '%s'", ex->command);
        flush_waiting(c, &err);
    } else {
        flush_waiting(c, NULL);
    }
}

static char *exec_info_json(const struct k8s_client *c, struct cg_err *err)
{
    const struct k8s_config *cfg = c->cfg;
    const struct k8s_exec *ex = cfg->exec;
    json_t *spec = json_pack("{s:b}", "interactive", 0);
    if (spec != NULL && ex->provide_cluster_info) {
        json_t *cluster = json_pack("{s:s}", "server", cfg->server);
        if (cluster != NULL && cfg->ca_pem != NULL) {
            char *b64 = cg_b64_encode((const unsigned char *)cfg->ca_pem, cfg->ca_len);
            if (b64 != NULL) {
                json_object_set_new(cluster, "certificate-authority-data", json_string(b64));
                free(b64);
            }
        }
        if (cluster != NULL && cfg->insecure_skip_tls_verify) {
            json_object_set_new(cluster, "insecure-skip-tls-verify", json_true());
        }
        if (cluster != NULL && cfg->tls_server_name != NULL) {
            json_object_set_new(cluster, "tls-server-name", json_string(cfg->tls_server_name));
        }
        if (cluster != NULL && cfg->proxy_url != NULL) {
            json_object_set_new(cluster, "proxy-url", json_string(cfg->proxy_url));
        }
        json_object_set_new(spec, "cluster", cluster);
    }
    json_t *info = spec ? json_pack("{s:s, s:s, s:o}", "apiVersion", ex->api_version, "kind",
                                    "ExecCredential", "spec", spec)
                        : NULL;
    char *s = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    if (s == NULL) {
        cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return s;
}

static void on_exec_start_failed(void *data, int canceled)
{
    struct k8s_client *c = data;
    (void)canceled;
    c->exec_running = 0;
    flush_waiting(c, &c->exec_err);
}

static void start_exec(struct k8s_client *c)
{
    const struct k8s_exec *ex = c->cfg->exec;
    struct cg_err err = {0};
    const char **argv = NULL;
    char **envp = NULL;
    size_t nenv = 0;
    char *info = NULL;

    if (ex->interactive_mode != NULL && strcmp(ex->interactive_mode, "Always") == 0) {
        cg_err_set(&err, CG_EAUTH,
                   "exec credential plugin '%s' needs an interactive terminal "
                   "(interactiveMode: Always), which an agent does not have",
                   ex->command);
        goto fail;
    }
    size_t nargs = 0;
    while (ex->args != NULL && ex->args[nargs] != NULL) {
        nargs++;
    }
    argv = calloc(nargs + 2, sizeof(*argv));
    const char *const *base_env = c->exec_environ ? c->exec_environ : (const char *const *)environ;
    size_t nbase = 0;
    while (base_env[nbase] != NULL) {
        nbase++;
    }
    envp = calloc(nbase + ex->env_count + 2, sizeof(*envp));
    info = exec_info_json(c, &err);
    if (argv == NULL || envp == NULL || info == NULL) {
        cg_err_set(&err, CG_ENOMEM, "out of memory");
        goto fail;
    }
    argv[0] = ex->command;
    for (size_t i = 0; i < nargs; i++) {
        argv[i + 1] = ex->args[i];
    }
    /* The plugin gets our environment with the kubeconfig's env entries on top (client-go),
     * plus KUBERNETES_EXEC_INFO. */
    for (size_t i = 0; i < nbase; i++) {
        const char *eq = strchr(base_env[i], '=');
        size_t klen = eq ? (size_t)(eq - base_env[i]) : strlen(base_env[i]);
        int overridden = strncmp(base_env[i], "KUBERNETES_EXEC_INFO=", 21) == 0;
        for (size_t j = 0; j < ex->env_count && !overridden; j++) {
            overridden =
                strlen(ex->env[j].name) == klen && strncmp(ex->env[j].name, base_env[i], klen) == 0;
        }
        if (!overridden) {
            envp[nenv] = strdup(base_env[i]);
            if (envp[nenv++] == NULL) {
                cg_err_set(&err, CG_ENOMEM, "out of memory");
                goto fail;
            }
        }
    }
    for (size_t j = 0; j < ex->env_count; j++) {
        size_t n = strlen(ex->env[j].name) + strlen(ex->env[j].value) + 2;
        envp[nenv] = malloc(n);
        if (envp[nenv] == NULL) {
            cg_err_set(&err, CG_ENOMEM, "out of memory");
            goto fail;
        }
        snprintf(envp[nenv++], n, "%s=%s", ex->env[j].name, ex->env[j].value);
    }
    size_t n = strlen(info) + sizeof("KUBERNETES_EXEC_INFO=");
    envp[nenv] = malloc(n);
    if (envp[nenv] == NULL) {
        cg_err_set(&err, CG_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(envp[nenv++], n, "KUBERNETES_EXEC_INFO=%s", info);

    struct cg_proc_opts opts = {
        .argv = argv,
        .envp = (const char *const *)envp,
        .timeout_ms = 60000,
        .max_output = MAX_EXEC_OUTPUT,
    };
    if (cg_proc_run(cg_http_loop(c->http), &opts, on_exec_done, c, &err) < 0) {
        cg_err_wrap(&err, "exec credential plugin '%s'", ex->command);
        goto fail;
    }
    c->exec_running = 1;
    goto out;
fail:
    /* Callers were promised their callback from the loop, never from inside their own call. */
    c->exec_err = err;
    c->exec_running = 1;
    if (cg_http_after(c->http, 0, on_exec_start_failed, c) < 0) {
        c->exec_running = 0;
        flush_waiting(c, &err);
    }
out:
    for (size_t i = 0; envp != NULL && i < nenv; i++) {
        cg_secret_free(envp[i]); /* the environment may hold cloud credentials */
    }
    free(envp);
    free(argv);
    free(info);
}

int k8s_client_call(struct k8s_client *c, const char *method, const char *path,
                    const char *json_body, k8s_done_cb *done, void *data, struct cg_err *err)
{
    if (path == NULL || path[0] != '/') {
        return cg_err_set(err, CG_EINVAL, "API path must start with '/'");
    }
    struct call *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    call->c = c;
    call->done = done;
    call->data = data;
    call->method = strdup(method);
    call->path = strdup(path);
    call->body = json_body ? strdup(json_body) : NULL;
    if (call->method == NULL || call->path == NULL || (json_body && call->body == NULL)) {
        call_free(call);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = ensure_cred(c, call, err);
    if (rc == 1) {
        rc = send_now(call, err);
    }
    if (rc < 0) {
        cg_err_wrap(err, "%s %s", method, path);
        call_free(call);
        return rc;
    }
    return 0;
}
