/* agent/session.c: loop, engine and Kubernetes client for one command run. */
#include "session.h"

#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "k8s_client.h"
#include "k8s_config.h"

#include <stdlib.h>
#include <string.h>

int cg_session_open(struct cg_session *s, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                    struct cg_err *err)
{
    return cg_session_open_on(s, NULL, o, getenv_fn, err);
}

int cg_session_open_on(struct cg_session *s, uv_loop_t *loop, const struct cg_options *o,
                       cg_getenv_fn *getenv_fn, struct cg_err *err)
{
    memset(s, 0, sizeof(*s));
    struct k8s_config *cfg = NULL;
    struct k8s_load_opts lo = {
        .kubeconfig_path = o->kubeconfig,
        .kubeconfig_env = getenv_fn("KUBECONFIG"),
        .context = o->context,
        .home = getenv_fn("HOME"),
        .service_host = getenv_fn("KUBERNETES_SERVICE_HOST"),
        .service_port = getenv_fn("KUBERNETES_SERVICE_PORT"),
        /* Where a pod's service account is mounted; overridable for tests and odd mounts. */
        .sa_dir = getenv_fn("CLOUDGRANT_SERVICE_ACCOUNT_DIR"),
    };
    int rc = k8s_config_load(&cfg, &lo, err);
    if (rc < 0) {
        return rc;
    }
    rc = cg_url_check_transport(cfg->server, o->allow_insecure_http, "Kubernetes API server", err);
    if (rc < 0) {
        k8s_config_free(cfg);
        return rc;
    }
    CG_LOG(CG_LOG_INFO, "session", "using %s (context '%s', server %s)", cfg->source,
           cfg->context_name ? cfg->context_name : "-", cfg->server);
    s->in_cluster = cfg->in_cluster;
    if (loop != NULL) {
        s->loop = loop;
    } else if (uv_loop_init(&s->own_loop) == 0) {
        s->loop = &s->own_loop;
    } else {
        k8s_config_free(cfg);
        return cg_err_set(err, CG_EIO, "cannot start the event loop");
    }
    rc = cg_http_new(&s->http, s->loop, err);
    if (rc < 0) {
        k8s_config_free(cfg);
        if (s->loop == &s->own_loop) {
            uv_loop_close(&s->own_loop);
        }
        s->loop = NULL;
        return rc;
    }
    rc = k8s_client_new(&s->k8s, s->http, cfg, err); /* takes cfg */
    if (rc < 0) {
        cg_session_close(s);
        return rc;
    }
    return 0;
}

void cg_session_close(struct cg_session *s)
{
    if (s->http != NULL) {
        cg_http_close(s->http);
        s->http = NULL;
        uv_run(s->loop, UV_RUN_DEFAULT);
    }
    k8s_client_free(s->k8s);
    s->k8s = NULL;
    if (s->loop == &s->own_loop && uv_loop_close(&s->own_loop) != 0) {
        CG_LOG(CG_LOG_DEBUG, "session", "event loop closed with handles still open");
    }
    s->loop = NULL;
}
