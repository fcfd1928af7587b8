/* incluster.c: the API server and credentials a pod gets from its service account, as
 * client-go's InClusterConfig reads them. */
#include "k8s_config.h"

#include "cg_buf.h"
#include "cg_log.h"
#include "cg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"
#define SA_SMALL_MAX   (64u * 1024u)   /* token, namespace */
#define SA_CA_MAX      (1024u * 1024u) /* a CA bundle */

static int nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static int valid_port(const char *s)
{
    unsigned long v = 0;
    size_t n = 0;
    for (; s[n] >= '0' && s[n] <= '9'; n++) {
        v = v * 10 + (unsigned long)(s[n] - '0');
        if (v > 65535) {
            return 0;
        }
    }
    return n > 0 && s[n] == '\0' && v > 0;
}

/* The host goes into a URL: anything that would change the URL's meaning is refused. */
static int valid_host(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == 0x7f || strchr("/?#@\\", *p) != NULL) {
            return 0;
        }
    }
    return 1;
}

/* Trims in place and wipes what trimming left behind the new end. */
static void trim_secret(char *s)
{
    size_t before = strlen(s);
    cg_trim(s);
    size_t after = strlen(s);
    cg_wipe(s + after, before - after);
}

/* Reads one file of the service-account directory; *out is NULL when it is absent. */
static int read_sa_file(const char *dir, const char *name, size_t limit, char **out, size_t *len,
                        struct cg_err *err)
{
    char *path = cg_path_join(dir, name);
    if (path == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    *out = NULL;
    int rc = cg_file_read(path, limit, out, len, err);
    free(path);
    return rc;
}

int k8s_config_in_cluster(struct k8s_config **out, const struct k8s_load_opts *opts,
                          struct cg_err *err)
{
    struct k8s_config *cfg = NULL;
    char *ns = NULL;
    int rc = 0;
    const char *host = opts->service_host;
    const char *port = opts->service_port;
    if (!nonempty(host) || !nonempty(port)) {
        return cg_err_set(err, CG_ENOTFOUND,
                          "not running in a cluster: KUBERNETES_SERVICE_HOST and "
                          "KUBERNETES_SERVICE_PORT must both be set");
    }
    if (!valid_host(host)) {
        return cg_err_set(err, CG_EINVAL, "in-cluster: KUBERNETES_SERVICE_HOST is not a host");
    }
    if (!valid_port(port)) {
        return cg_err_set(err, CG_EINVAL,
                          "in-cluster: KUBERNETES_SERVICE_PORT '%.16s' is not a port number",
                          valid_host(port) ? port : "?");
    }
    const char *sa_dir = nonempty(opts->sa_dir) ? opts->sa_dir : SA_DIR_DEFAULT;

    if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->source = strdup("in-cluster")) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    cfg->in_cluster = 1;

    /* An IPv6 literal must be bracketed (net.JoinHostPort); one already bracketed is kept. */
    int bracket = strchr(host, ':') != NULL && host[0] != '[';
    struct cg_buf url;
    cg_buf_init(&url, 0);
    rc = cg_buf_printf(&url, "https://%s%s%s:%s", bracket ? "[" : "", host, bracket ? "]" : "",
                       port);
    cfg->server = rc == 0 ? cg_buf_steal(&url, NULL) : NULL;
    cg_buf_cleanup(&url);
    if (cfg->server == NULL || (cfg->token_file = cg_path_join(sa_dir, "token")) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }

    /* The client re-reads token_file as kubelet rotates it; reading it once here turns a pod
     * without a mounted token into an error now rather than a 401 later. */
    rc = cg_file_read(cfg->token_file, SA_SMALL_MAX, &cfg->token, NULL, err);
    if (rc < 0) {
        if (rc == CG_ENOTFOUND) {
            rc = CG_EAUTH;
            cg_err_wrap(err, "in-cluster: no service account token (is "
                             "automountServiceAccountToken disabled?)");
            if (err != NULL) {
                err->code = rc;
            }
        } else {
            cg_err_wrap(err, "in-cluster");
        }
        goto out;
    }
    trim_secret(cfg->token);
    if (cfg->token[0] == '\0') {
        rc = cg_err_set(err, CG_EAUTH, "in-cluster: service account token '%s' is empty",
                        cfg->token_file);
        goto out;
    }

    /* client-go only logs an unreadable ca.crt and then trusts the system store; so do we. */
    struct cg_err ca_err = {0};
    if (read_sa_file(sa_dir, "ca.crt", SA_CA_MAX, &cfg->ca_pem, &cfg->ca_len, &ca_err) < 0) {
        CG_LOG(CG_LOG_DEBUG, "k8s", "in-cluster: no CA, using the system store: %s", ca_err.msg);
    } else if (cfg->ca_len == 0) {
        CG_LOG(CG_LOG_DEBUG, "k8s", "in-cluster: empty ca.crt, using the system store");
        free(cfg->ca_pem);
        cfg->ca_pem = NULL;
    }

    struct cg_err ns_err = {0};
    if (read_sa_file(sa_dir, "namespace", SA_SMALL_MAX, &ns, NULL, &ns_err) == 0) {
        cg_trim(ns);
    }
    if ((cfg->namespace = strdup(nonempty(ns) ? ns : "default")) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    free(ns);
    k8s_config_free(cfg);
    return rc;
}
