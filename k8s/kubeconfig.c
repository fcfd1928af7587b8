/* kubeconfig.c: kubeconfig files to struct k8s_config, with client-go's rules.
 *
 * Loading has two phases, as in client-go. Parsing reads every entry of every file and refuses
 * the whole file on a wrong type, bad base64 or a name defined twice (kubectl refuses such a
 * file even when the broken entry is never used). Resolving then picks the context and the
 * cluster and user it names, first file wins per name, and applies the checks client-go's
 * ConfirmUsable applies to those entries only, reading the files they refer to. */
#include "k8s_config.h"

#include "cg_buf.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cg_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KUBECONFIG_MAX (8u * 1024u * 1024u) /* room for many embedded CA bundles */
#define REFERENCED_MAX (1u * 1024u * 1024u) /* a CA bundle, certificate or key */
#define SHOWN_MAX      80                   /* a name quoted in a message */

#define EXEC_V1      "client.authentication.k8s.io/v1"
#define EXEC_V1BETA1 "client.authentication.k8s.io/v1beta1"

struct kc_cluster {
    char *name;
    char *server;
    char *ca_path;
    unsigned char *ca_data;
    size_t ca_data_len;
    int insecure;
    char *tls_server_name;
    char *proxy_url;
};

struct kc_user {
    char *name;
    char *cert_path;
    unsigned char *cert_data;
    size_t cert_data_len;
    char *key_path;
    unsigned char *key_data; /* secret */
    size_t key_data_len;
    char *token; /* secret */
    char *token_file;
    char *username;
    char *password; /* secret */
    int impersonates;
    int has_auth_provider;
    char *auth_provider_name;
    struct k8s_exec *exec;
};

struct kc_context {
    char *name;
    char *cluster;
    char *user;
    char *namespace;
};

struct kc_file {
    char *path; /* as the caller named it: used in messages */
    char *dir;  /* relative paths resolve against it; NULL leaves them as written */
    char *current_context;
    struct kc_cluster *clusters;
    size_t nclusters;
    struct kc_user *users;
    size_t nusers;
    struct kc_context *contexts;
    size_t ncontexts;
};

static int oom(struct cg_err *err)
{
    return cg_err_set(err, CG_ENOMEM, "out of memory");
}

static int nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Names and values from a file may hold newlines; messages must stay one line. */
#define SHOWN(buf, s) cg_yaml_printable((buf), sizeof(buf), (s) ? (s) : "")

static void exec_free(struct k8s_exec *e)
{
    if (e == NULL) {
        return;
    }
    free(e->api_version);
    free(e->command);
    if (e->args != NULL) {
        for (char **a = e->args; *a != NULL; a++) {
            free(*a);
        }
        free(e->args);
    }
    for (size_t i = 0; i < e->env_count; i++) {
        free(e->env[i].name);
        cg_secret_free(e->env[i].value); /* plugins are often handed credentials this way */
    }
    free(e->env);
    free(e->interactive_mode);
    free(e->install_hint);
    free(e);
}

void k8s_config_free(struct k8s_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    free(cfg->source);
    free(cfg->context_name);
    free(cfg->cluster_name);
    free(cfg->user_name);
    free(cfg->namespace);
    free(cfg->server);
    free(cfg->ca_pem);
    free(cfg->tls_server_name);
    cg_secret_free(cfg->proxy_url); /* may carry user:password */
    free(cfg->cert_pem);
    if (cfg->key_pem != NULL) {
        cg_wipe(cfg->key_pem, cfg->key_len); /* binary-safe, unlike cg_secret_free */
        free(cfg->key_pem);
    }
    cg_secret_free(cfg->token);
    free(cfg->token_file);
    free(cfg->username);
    cg_secret_free(cfg->password);
    exec_free(cfg->exec);
    free(cfg);
}

static void wipe_free(unsigned char *p, size_t n)
{
    if (p != NULL) {
        cg_wipe(p, n);
        free(p);
    }
}

static void file_cleanup(struct kc_file *f)
{
    for (size_t i = 0; i < f->nclusters; i++) {
        struct kc_cluster *c = &f->clusters[i];
        free(c->name);
        free(c->server);
        free(c->ca_path);
        free(c->ca_data);
        free(c->tls_server_name);
        cg_secret_free(c->proxy_url);
    }
    for (size_t i = 0; i < f->nusers; i++) {
        struct kc_user *u = &f->users[i];
        free(u->name);
        free(u->cert_path);
        free(u->cert_data);
        free(u->key_path);
        wipe_free(u->key_data, u->key_data_len);
        cg_secret_free(u->token);
        free(u->token_file);
        free(u->username);
        cg_secret_free(u->password);
        free(u->auth_provider_name);
        exec_free(u->exec);
    }
    for (size_t i = 0; i < f->ncontexts; i++) {
        struct kc_context *c = &f->contexts[i];
        free(c->name);
        free(c->cluster);
        free(c->user);
        free(c->namespace);
    }
    free(f->clusters);
    free(f->users);
    free(f->contexts);
    free(f->current_context);
    free(f->path);
    free(f->dir);
    memset(f, 0, sizeof(*f));
}

/* ---- paths ---- */

/* Lexical cleaning as Go's filepath.Clean does it, so resolved paths are the ones client-go
 * would open (and compare equal in tests). */
static char *path_clean(const char *p)
{
    size_t n = strlen(p);
    char *out = malloc(n + 2);
    if (out == NULL) {
        return NULL;
    }
    int rooted = p[0] == '/';
    size_t r = rooted ? 1 : 0;
    size_t w = 0;
    size_t dotdot = 0; /* ".." may not back up past this */
    if (rooted) {
        out[w++] = '/';
        dotdot = 1;
    }
    while (r < n) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/') {
                    w--;
                }
            } else if (!rooted) {
                if (w > 0) {
                    out[w++] = '/';
                }
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0)) {
                out[w++] = '/';
            }
            while (r < n && p[r] != '/') {
                out[w++] = p[r++];
            }
        }
    }
    if (w == 0) {
        out[w++] = '.';
    }
    out[w] = '\0';
    return out;
}

/* client-go joins a relative path to the defining file's directory and leaves absolute ones
 * untouched; it does not expand '~'. */
static char *resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/' || !nonempty(dir)) {
        return strdup(p);
    }
    char *joined = cg_path_join(dir, p);
    if (joined == NULL) {
        return NULL;
    }
    char *clean = path_clean(joined);
    free(joined);
    return clean;
}

/* The absolute directory of a kubeconfig, as client-go's filepath.Abs gives it. */
static char *abs_dir(const char *path)
{
    char *dir = cg_dirname(path);
    if (dir == NULL) {
        return NULL;
    }
    if (dir[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        char *joined = cwd ? cg_path_join(cwd, dir) : NULL;
        free(cwd);
        free(dir);
        dir = joined;
        if (dir == NULL) {
            return NULL;
        }
    }
    char *clean = path_clean(dir);
    free(dir);
    return clean;
}

/* ---- parsing ---- */

static int dup_b64(struct cg_yaml *y, const yaml_node_t *map, const char *key, const char *what,
                   unsigned char **out, size_t *len, struct cg_err *err)
{
    const char *s = NULL;
    int rc = cg_yaml_get_str(y, map, key, &s, err);
    if (rc < 0 || !nonempty(s)) {
        return rc;
    }
    rc = cg_b64_decode(s, strlen(s), out, len);
    if (rc == CG_ENOMEM) {
        return oom(err);
    }
    if (rc < 0) {
        /* Never quote the value: it may be a private key. */
        return cg_err_set(err, CG_EINVAL, "%s: %s: %s: illegal base64", y->source, what, key);
    }
    return 0;
}

/* A list entry is {name: ..., <body_key>: {...}}; a null entry is an unnamed, empty one, as
 * Go's JSON decoding makes it. */
static int parse_named(struct cg_yaml *y, const yaml_node_t *item, const char *list,
                       const char *body_key, char **name, yaml_node_t **body, struct cg_err *err)
{
    *body = NULL;
    cg_yaml_where(y, NULL);
    if (!cg_yaml_is_null(item)) {
        if (item->type != YAML_MAPPING_NODE) {
            return cg_yaml_errorf(y, item, err, CG_EINVAL,
                                  "'%s' entries must be mappings, not a %s", list,
                                  cg_yaml_kind(item));
        }
        int rc = cg_yaml_dup_str(y, item, "name", name, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (*name == NULL && (*name = strdup("")) == NULL) {
        return oom(err);
    }
    char shown[SHOWN_MAX];
    cg_yaml_where(y, "%s '%s'", body_key, SHOWN(shown, *name));
    return cg_yaml_get_map(y, item, body_key, body, err);
}

static int parse_cluster(struct cg_yaml *y, const yaml_node_t *item, struct kc_cluster *c,
                         struct cg_err *err)
{
    yaml_node_t *m = NULL;
    int rc = parse_named(y, item, "clusters", "cluster", &c->name, &m, err);
    if (rc < 0 || m == NULL) {
        return rc;
    }
    char what[SHOWN_MAX + 16];
    char shown[SHOWN_MAX];
    snprintf(what, sizeof(what), "cluster '%s'", SHOWN(shown, c->name));
    if ((rc = cg_yaml_dup_str(y, m, "server", &c->server, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "certificate-authority", &c->ca_path, err)) < 0 ||
        (rc = dup_b64(y, m, "certificate-authority-data", what, &c->ca_data, &c->ca_data_len,
                      err)) < 0 ||
        (rc = cg_yaml_get_bool(y, m, "insecure-skip-tls-verify", &c->insecure, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "tls-server-name", &c->tls_server_name, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "proxy-url", &c->proxy_url, err)) < 0) {
        return rc;
    }
    int ignored;
    return cg_yaml_get_bool(y, m, "disable-compression", &ignored, err);
}

static int parse_string_list(struct cg_yaml *y, const yaml_node_t *seq, const char *key,
                             char ***out, struct cg_err *err)
{
    size_t n = cg_yaml_seq_len(seq);
    char **list = calloc(n + 1, sizeof(*list));
    if (list == NULL) {
        return oom(err);
    }
    *out = list; /* NULL-terminated at every step, so the caller's cleanup works on failure */
    char what[64];
    snprintf(what, sizeof(what), "'%s' items", key);
    for (size_t i = 0; i < n; i++) {
        const char *s = NULL;
        int rc = cg_yaml_node_str(y, cg_yaml_seq_at(y, seq, i), what, &s, err);
        if (rc < 0) {
            return rc;
        }
        /* A null item is "" in Go's decoding. */
        if ((list[i] = strdup(s ? s : "")) == NULL) {
            return oom(err);
        }
    }
    return 0;
}

static int parse_exec(struct cg_yaml *y, const yaml_node_t *m, struct kc_user *u,
                      struct cg_err *err)
{
    struct k8s_exec *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return oom(err);
    }
    u->exec = e;
    yaml_node_t *args = NULL;
    yaml_node_t *env = NULL;
    int rc;
    if ((rc = cg_yaml_dup_str(y, m, "apiVersion", &e->api_version, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "command", &e->command, err)) < 0 ||
        (rc = cg_yaml_get_seq(y, m, "args", &args, err)) < 0 ||
        (rc = parse_string_list(y, args, "args", &e->args, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "interactiveMode", &e->interactive_mode, err)) < 0 ||
        (rc = cg_yaml_get_bool(y, m, "provideClusterInfo", &e->provide_cluster_info, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "installHint", &e->install_hint, err)) < 0 ||
        (rc = cg_yaml_get_seq(y, m, "env", &env, err)) < 0) {
        return rc;
    }
    size_t n = cg_yaml_seq_len(env);
    if (n == 0) {
        return 0;
    }
    if ((e->env = calloc(n, sizeof(*e->env))) == NULL) {
        return oom(err);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cg_yaml_seq_at(y, env, i);
        e->env_count = i + 1;
        if (cg_yaml_is_null(item)) {
            continue;
        }
        if (item->type != YAML_MAPPING_NODE) {
            return cg_yaml_errorf(y, item, err, CG_EINVAL, "'env' items must be mappings, not a %s",
                                  cg_yaml_kind(item));
        }
        if ((rc = cg_yaml_dup_str(y, item, "name", &e->env[i].name, err)) < 0 ||
            (rc = cg_yaml_dup_str(y, item, "value", &e->env[i].value, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_user(struct cg_yaml *y, const yaml_node_t *item, struct kc_user *u,
                      struct cg_err *err)
{
    yaml_node_t *m = NULL;
    int rc = parse_named(y, item, "users", "user", &u->name, &m, err);
    if (rc < 0 || m == NULL) {
        return rc;
    }
    char what[SHOWN_MAX + 16];
    char shown[SHOWN_MAX];
    snprintf(what, sizeof(what), "user '%s'", SHOWN(shown, u->name));
    yaml_node_t *groups = NULL;
    yaml_node_t *extra = NULL;
    yaml_node_t *provider = NULL;
    yaml_node_t *exec = NULL;
    const char *as = NULL;
    const char *as_uid = NULL;
    if ((rc = cg_yaml_dup_str(y, m, "client-certificate", &u->cert_path, err)) < 0 ||
        (rc = dup_b64(y, m, "client-certificate-data", what, &u->cert_data, &u->cert_data_len,
                      err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "client-key", &u->key_path, err)) < 0 ||
        (rc = dup_b64(y, m, "client-key-data", what, &u->key_data, &u->key_data_len, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "token", &u->token, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "tokenFile", &u->token_file, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "username", &u->username, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "password", &u->password, err)) < 0 ||
        (rc = cg_yaml_get_str(y, m, "as", &as, err)) < 0 ||
        (rc = cg_yaml_get_str(y, m, "as-uid", &as_uid, err)) < 0 ||
        (rc = cg_yaml_get_seq(y, m, "as-groups", &groups, err)) < 0 ||
        (rc = cg_yaml_get_map(y, m, "as-user-extra", &extra, err)) < 0 ||
        (rc = cg_yaml_get_map(y, m, "auth-provider", &provider, err)) < 0 ||
        (rc = cg_yaml_get_map(y, m, "exec", &exec, err)) < 0) {
        return rc;
    }
    u->impersonates = nonempty(as) || nonempty(as_uid) || cg_yaml_seq_len(groups) > 0 ||
                      cg_yaml_map_len(extra) > 0;
    if (provider != NULL) {
        u->has_auth_provider = 1;
        if ((rc = cg_yaml_dup_str(y, provider, "name", &u->auth_provider_name, err)) < 0) {
            return rc;
        }
    }
    if (exec != NULL) {
        return parse_exec(y, exec, u, err);
    }
    return 0;
}

static int parse_context(struct cg_yaml *y, const yaml_node_t *item, struct kc_context *c,
                         struct cg_err *err)
{
    yaml_node_t *m = NULL;
    int rc = parse_named(y, item, "contexts", "context", &c->name, &m, err);
    if (rc < 0 || m == NULL) {
        return rc;
    }
    if ((rc = cg_yaml_dup_str(y, m, "cluster", &c->cluster, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "user", &c->user, err)) < 0 ||
        (rc = cg_yaml_dup_str(y, m, "namespace", &c->namespace, err)) < 0) {
        return rc;
    }
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* kubectl refuses a file that defines a name twice in one list. Sorting keeps this
 * O(n log n) on the huge lists a fuzzer builds. */
static int check_unique(const char *source, const char *kind, char **names, size_t n,
                        struct cg_err *err)
{
    if (n < 2) {
        return 0;
    }
    const char **sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL) {
        return oom(err);
    }
    memcpy(sorted, names, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_name);
    int rc = 0;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            char shown[SHOWN_MAX];
            rc = cg_err_set(err, CG_EINVAL, "%s: %s '%s' is defined twice", source, kind,
                            SHOWN(shown, sorted[i]));
            break;
        }
    }
    free(sorted);
    return rc;
}

static int unique_names(struct kc_file *f, struct cg_err *err)
{
    size_t max = f->nclusters;
    max = f->nusers > max ? f->nusers : max;
    max = f->ncontexts > max ? f->ncontexts : max;
    if (max < 2) {
        return 0;
    }
    char **names = malloc(max * sizeof(*names));
    if (names == NULL) {
        return oom(err);
    }
    int rc;
    for (size_t i = 0; i < f->nclusters; i++) {
        names[i] = f->clusters[i].name;
    }
    rc = check_unique(f->path, "cluster", names, f->nclusters, err);
    for (size_t i = 0; rc == 0 && i < f->nusers; i++) {
        names[i] = f->users[i].name;
    }
    if (rc == 0) {
        rc = check_unique(f->path, "user", names, f->nusers, err);
    }
    for (size_t i = 0; rc == 0 && i < f->ncontexts; i++) {
        names[i] = f->contexts[i].name;
    }
    if (rc == 0) {
        rc = check_unique(f->path, "context", names, f->ncontexts, err);
    }
    free(names);
    return rc;
}

static int check_header(struct cg_yaml *y, const yaml_node_t *root, struct cg_err *err)
{
    const char *api = NULL;
    const char *kind = NULL;
    char shown[SHOWN_MAX];
    int rc;
    if ((rc = cg_yaml_get_str(y, root, "apiVersion", &api, err)) < 0 ||
        (rc = cg_yaml_get_str(y, root, "kind", &kind, err)) < 0) {
        return rc;
    }
    if (nonempty(api) && strcmp(api, "v1") != 0) {
        return cg_yaml_errorf(y, cg_yaml_map_get(y, root, "apiVersion"), err, CG_EINVAL,
                              "apiVersion '%s' is not supported (want v1)", SHOWN(shown, api));
    }
    if (nonempty(kind) && strcmp(kind, "Config") != 0) {
        return cg_yaml_errorf(y, cg_yaml_map_get(y, root, "kind"), err, CG_EINVAL,
                              "kind '%s' is not supported (want Config)", SHOWN(shown, kind));
    }
    return 0;
}

/* Parses one document into f (whose path and dir are set). */
static int parse_file(struct kc_file *f, const char *buf, size_t len, struct cg_err *err)
{
    struct cg_yaml y;
    yaml_node_t *clusters = NULL;
    yaml_node_t *users = NULL;
    yaml_node_t *contexts = NULL;
    int rc = cg_yaml_load(&y, buf, len, f->path, err);
    if (rc < 0) {
        return rc;
    }
    yaml_node_t *root = cg_yaml_root(&y);
    if (cg_yaml_is_null(root)) {
        goto out; /* an empty file is an empty config */
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = cg_yaml_errorf(&y, root, err, CG_EINVAL, "a kubeconfig must be a mapping, not a %s",
                            cg_yaml_kind(root));
        goto out;
    }
    if ((rc = check_header(&y, root, err)) < 0 ||
        (rc = cg_yaml_dup_str(&y, root, "current-context", &f->current_context, err)) < 0 ||
        (rc = cg_yaml_get_seq(&y, root, "clusters", &clusters, err)) < 0 ||
        (rc = cg_yaml_get_seq(&y, root, "users", &users, err)) < 0 ||
        (rc = cg_yaml_get_seq(&y, root, "contexts", &contexts, err)) < 0) {
        goto out;
    }
    size_t nc = cg_yaml_seq_len(clusters);
    size_t nu = cg_yaml_seq_len(users);
    size_t nx = cg_yaml_seq_len(contexts);
    if ((nc && !(f->clusters = calloc(nc, sizeof(*f->clusters)))) ||
        (nu && !(f->users = calloc(nu, sizeof(*f->users)))) ||
        (nx && !(f->contexts = calloc(nx, sizeof(*f->contexts))))) {
        rc = oom(err);
        goto out;
    }
    /* Counts grow as entries are filled so file_cleanup frees partial work. */
    for (size_t i = 0; i < nc && rc == 0; i++) {
        f->nclusters = i + 1;
        rc = parse_cluster(&y, cg_yaml_seq_at(&y, clusters, i), &f->clusters[i], err);
    }
    for (size_t i = 0; i < nu && rc == 0; i++) {
        f->nusers = i + 1;
        rc = parse_user(&y, cg_yaml_seq_at(&y, users, i), &f->users[i], err);
    }
    for (size_t i = 0; i < nx && rc == 0; i++) {
        f->ncontexts = i + 1;
        rc = parse_context(&y, cg_yaml_seq_at(&y, contexts, i), &f->contexts[i], err);
    }
    if (rc == 0) {
        rc = unique_names(f, err);
    }
out:
    cg_yaml_cleanup(&y);
    return rc;
}

/* ---- resolving ---- */

struct kc_set {
    struct kc_file *files;
    size_t n;
    const char *source;
};

/* First file that defines the name wins, and its entry is taken whole. */
static struct kc_cluster *find_cluster(const struct kc_set *s, const char *name,
                                       const struct kc_file **from)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->files[i].nclusters; j++) {
            if (strcmp(s->files[i].clusters[j].name, name) == 0) {
                *from = &s->files[i];
                return &s->files[i].clusters[j];
            }
        }
    }
    return NULL;
}

static struct kc_user *find_user(const struct kc_set *s, const char *name,
                                 const struct kc_file **from)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->files[i].nusers; j++) {
            if (strcmp(s->files[i].users[j].name, name) == 0) {
                *from = &s->files[i];
                return &s->files[i].users[j];
            }
        }
    }
    return NULL;
}

static struct kc_context *find_context(const struct kc_set *s, const char *name,
                                       const struct kc_file **from)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->files[i].ncontexts; j++) {
            if (strcmp(s->files[i].contexts[j].name, name) == 0) {
                *from = &s->files[i];
                return &s->files[i].contexts[j];
            }
        }
    }
    return NULL;
}

static int set_is_empty(const struct kc_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct kc_file *f = &s->files[i];
        if (f->nclusters || f->nusers || f->ncontexts || nonempty(f->current_context)) {
            return 0;
        }
    }
    return 1;
}

static int read_referenced(const char *path, char **out, size_t *len, const char *file,
                           const char *what, const char *field, struct cg_err *err)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* A fuzzed document can name /dev/stdin, a FIFO or /proc/kmsg and stall the run. */
    struct stat st;
    char *real = realpath(path, NULL);
    int refuse = real == NULL || !strncmp(real, "/dev/", 5) || !strncmp(real, "/proc/", 6) ||
                 !strncmp(real, "/sys/", 5) || stat(real, &st) != 0 || !S_ISREG(st.st_mode);
    free(real);
    if (refuse) {
        return cg_err_set(err, CG_EINVAL, "%s: %s: %s: '%s' is not a regular file", file, what,
                          field, path);
    }
#endif
    int rc = cg_file_read(path, REFERENCED_MAX, out, len, err);
    if (rc < 0) {
        /* A file the config names but that is absent is a broken config, not "nothing
         * configured". */
        int code = rc == CG_ENOTFOUND ? CG_EINVAL : rc;
        cg_err_wrap(err, "%s: %s: %s", file, what, field);
        if (err != NULL) {
            err->code = code;
        }
        return code;
    }
    return 0;
}

/* client-go's parseProxyURL: http, https and socks5 only. The URL is never quoted back, as it
 * may carry a password. */
static int check_proxy_url(const char *url, const char *file, const char *what, struct cg_err *err)
{
    size_t n = 0;
    while ((url[n] >= 'a' && url[n] <= 'z') || (url[n] >= 'A' && url[n] <= 'Z') ||
           (n > 0 && ((url[n] >= '0' && url[n] <= '9') || url[n] == '+' || url[n] == '-' ||
                      url[n] == '.'))) {
        n++;
    }
    if (url[n] == ':' &&
        ((n == 4 && !strncasecmp(url, "http", 4)) || (n == 5 && !strncasecmp(url, "https", 5)) ||
         (n == 6 && !strncasecmp(url, "socks5", 6)))) {
        return 0;
    }
    char scheme[24];
    if (url[n] != ':' || n >= sizeof(scheme)) {
        n = 0;
    }
    memcpy(scheme, url, n);
    scheme[n] = '\0';
    return cg_err_set(err, CG_EINVAL,
                      "%s: %s: proxy-url has unsupported scheme '%s' (want http, https or socks5)",
                      file, what, scheme);
}

static int resolve_cluster(struct k8s_config *cfg, struct kc_cluster *c, const struct kc_file *from,
                           struct cg_err *err)
{
    char shown[SHOWN_MAX];
    char what[SHOWN_MAX + 16];
    snprintf(what, sizeof(what), "cluster '%s'", SHOWN(shown, c->name));
    if (!nonempty(c->server)) {
        return cg_err_set(err, CG_EINVAL, "%s: %s has no server", from->path, what);
    }
    int has_ca_path = nonempty(c->ca_path);
    if (has_ca_path && c->ca_data != NULL) {
        /* kubectl refuses this rather than letting -data win silently. */
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: certificate-authority-data and certificate-authority are both "
                          "set",
                          from->path, what);
    }
    if (c->insecure && (has_ca_path || c->ca_data != NULL)) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: specifying a root certificates file with the insecure flag is "
                          "not allowed",
                          from->path, what);
    }
    if (nonempty(c->proxy_url)) {
        int rc = check_proxy_url(c->proxy_url, from->path, what, err);
        if (rc < 0) {
            return rc;
        }
        cfg->proxy_url = c->proxy_url;
        c->proxy_url = NULL;
    }
    cfg->server = c->server;
    c->server = NULL;
    cfg->insecure_skip_tls_verify = c->insecure;
    if (nonempty(c->tls_server_name)) {
        cfg->tls_server_name = c->tls_server_name;
        c->tls_server_name = NULL;
    }
    if (c->ca_data != NULL) {
        cfg->ca_pem = (char *)c->ca_data; /* cg_b64_decode NUL-terminates */
        cfg->ca_len = c->ca_data_len;
        c->ca_data = NULL;
    } else if (has_ca_path) {
        char *path = resolve_path(from->dir, c->ca_path);
        if (path == NULL) {
            return oom(err);
        }
        int rc = read_referenced(path, &cfg->ca_pem, &cfg->ca_len, from->path, what,
                                 "certificate-authority", err);
        free(path);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int resolve_exec(struct k8s_config *cfg, struct kc_user *u, const struct kc_file *from,
                        const char *what, struct cg_err *err)
{
    struct k8s_exec *e = u->exec;
    char shown[SHOWN_MAX];
    const char *file = from->path;
    if (!nonempty(e->api_version)) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: exec apiVersion is missing (want " EXEC_V1 " or v1beta1)", file,
                          what);
    }
    int v1 = strcmp(e->api_version, EXEC_V1) == 0;
    if (!v1 && strcmp(e->api_version, EXEC_V1BETA1) != 0) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: unknown exec apiVersion '%s' (want " EXEC_V1 " or v1beta1)",
                          file, what, SHOWN(shown, e->api_version));
    }
    if (!nonempty(e->command)) {
        return cg_err_set(err, CG_EINVAL, "%s: %s: exec command is missing", file, what);
    }
    for (size_t i = 0; i < e->env_count; i++) {
        if (!nonempty(e->env[i].name)) {
            return cg_err_set(err, CG_EINVAL, "%s: %s: exec env entry %zu has no name", file, what,
                              i + 1);
        }
    }
    if (!nonempty(e->interactive_mode)) {
        if (v1) {
            /* client-go defaults it for v1beta1 only and makes v1 users choose. */
            return cg_err_set(err, CG_EINVAL,
                              "%s: %s: exec interactiveMode is required for " EXEC_V1
                              " (Never, IfAvailable or Always)",
                              file, what);
        }
        free(e->interactive_mode);
        if ((e->interactive_mode = strdup("IfAvailable")) == NULL) {
            return oom(err);
        }
    } else if (strcmp(e->interactive_mode, "Never") != 0 &&
               strcmp(e->interactive_mode, "IfAvailable") != 0 &&
               strcmp(e->interactive_mode, "Always") != 0) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: invalid exec interactiveMode '%s' (want Never, IfAvailable or "
                          "Always)",
                          file, what, SHOWN(shown, e->interactive_mode));
    }
    if (strchr(e->command, '/') != NULL) {
        char *cmd = resolve_path(from->dir, e->command);
        if (cmd == NULL) {
            return oom(err);
        }
        free(e->command);
        e->command = cmd;
    }
    if (e->args == NULL && (e->args = calloc(1, sizeof(*e->args))) == NULL) {
        return oom(err);
    }
    cfg->exec = e;
    u->exec = NULL;
    return 0;
}

static int resolve_user(struct k8s_config *cfg, struct kc_user *u, const struct kc_file *from,
                        struct cg_err *err)
{
    char shown[SHOWN_MAX];
    char what[SHOWN_MAX + 16];
    const char *file = from->path;
    snprintf(what, sizeof(what), "user '%s'", SHOWN(shown, u->name));
    if (u->has_auth_provider) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: auth-provider '%s' is not supported: use an exec credential "
                          "plugin (such as gke-gcloud-auth-plugin or kubelogin)",
                          file, what, SHOWN(shown, u->auth_provider_name));
    }
    if (u->impersonates) {
        /* Ignoring it would act as another identity than kubectl does. */
        return cg_err_set(err, CG_EINVAL, "%s: %s: impersonation (as, as-groups) is not supported",
                          file, what);
    }
    int has_cert = nonempty(u->cert_path) || u->cert_data != NULL;
    int has_key = nonempty(u->key_path) || u->key_data != NULL;
    if (has_cert) {
        if (nonempty(u->cert_path) && u->cert_data != NULL) {
            return cg_err_set(err, CG_EINVAL,
                              "%s: %s: client-certificate-data and client-certificate are both set",
                              file, what);
        }
        if (nonempty(u->key_path) && u->key_data != NULL) {
            return cg_err_set(err, CG_EINVAL, "%s: %s: client-key-data and client-key are both set",
                              file, what);
        }
        if (!has_key) {
            return cg_err_set(err, CG_EINVAL,
                              "%s: %s: a client certificate needs client-key or client-key-data",
                              file, what);
        }
    }
    int has_token = nonempty(u->token);
    int has_basic = nonempty(u->username) || nonempty(u->password);
    if (has_token && has_basic) {
        return cg_err_set(err, CG_EINVAL,
                          "%s: %s: more than one authentication method (token and basic auth)",
                          file, what);
    }
    int rc;
    if (u->exec != NULL) {
        /* client-go validates the plugin even when a static credential makes it unused. */
        if ((rc = resolve_exec(cfg, u, from, what, err)) < 0) {
            return rc;
        }
        if (has_cert || has_token || has_basic || nonempty(u->token_file)) {
            exec_free(cfg->exec); /* client-go prefers static credentials over the plugin */
            cfg->exec = NULL;
        }
    }
    if (has_cert) {
        if (u->cert_data != NULL) {
            cfg->cert_pem = (char *)u->cert_data;
            cfg->cert_len = u->cert_data_len;
            u->cert_data = NULL;
        } else {
            char *path = resolve_path(from->dir, u->cert_path);
            if (path == NULL) {
                return oom(err);
            }
            rc = read_referenced(path, &cfg->cert_pem, &cfg->cert_len, file, what,
                                 "client-certificate", err);
            free(path);
            if (rc < 0) {
                return rc;
            }
        }
        if (u->key_data != NULL) {
            cfg->key_pem = (char *)u->key_data;
            cfg->key_len = u->key_data_len;
            u->key_data = NULL;
        } else {
            char *path = resolve_path(from->dir, u->key_path);
            if (path == NULL) {
                return oom(err);
            }
            rc = read_referenced(path, &cfg->key_pem, &cfg->key_len, file, what, "client-key", err);
            free(path);
            if (rc < 0) {
                return rc;
            }
        }
    }
    /* A key without a certificate is ignored, as client-go ignores it. */
    if (has_token) {
        cfg->token = u->token;
        u->token = NULL;
    }
    if (nonempty(u->token_file)) {
        /* Read by the client, which re-reads it as it rotates. */
        if ((cfg->token_file = resolve_path(from->dir, u->token_file)) == NULL) {
            return oom(err);
        }
    }
    if (has_basic) {
        cfg->username = u->username;
        cfg->password = u->password;
        u->username = NULL;
        u->password = NULL;
    }
    return 0;
}

static int resolve(struct k8s_config **out, const struct kc_set *s, const char *context,
                   struct cg_err *err)
{
    struct k8s_config *cfg = NULL;
    const struct kc_file *ctx_from = NULL;
    const struct kc_file *cluster_from = NULL;
    const struct kc_file *user_from = NULL;
    char shown[SHOWN_MAX];
    char shown2[SHOWN_MAX];
    int rc = 0;

    const char *name = context;
    for (size_t i = 0; !nonempty(name) && i < s->n; i++) {
        name = s->files[i].current_context;
    }
    if (!nonempty(name)) {
        if (set_is_empty(s)) {
            return cg_err_set(err, CG_ENOTFOUND, "'%s' defines no contexts", s->source);
        }
        return cg_err_set(err, CG_EINVAL,
                          "no current context in '%s': set current-context or "
                          "choose a context",
                          s->source);
    }
    struct kc_context *ctx = find_context(s, name, &ctx_from);
    if (ctx == NULL) {
        return cg_err_set(err, CG_EINVAL, "context '%s' not found in '%s'", SHOWN(shown, name),
                          s->source);
    }
    if (!nonempty(ctx->cluster)) {
        return cg_err_set(err, CG_EINVAL, "%s: context '%s' names no cluster", ctx_from->path,
                          SHOWN(shown, name));
    }
    /* kubectl would fall back to http://localhost:8080 here; an agent must not guess. */
    struct kc_cluster *cluster = find_cluster(s, ctx->cluster, &cluster_from);
    if (cluster == NULL) {
        return cg_err_set(err, CG_EINVAL, "context '%s': cluster '%s' not found in '%s'",
                          SHOWN(shown, name), SHOWN(shown2, ctx->cluster), s->source);
    }
    /* A missing user is anonymous, as client-go makes it. */
    struct kc_user *user = nonempty(ctx->user) ? find_user(s, ctx->user, &user_from) : NULL;
    if (nonempty(ctx->user) && user == NULL) {
        CG_LOG(CG_LOG_DEBUG, "k8s", "context '%s': user '%s' not defined, no credentials",
               SHOWN(shown, name), SHOWN(shown2, ctx->user));
    }

    if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->source = strdup(s->source)) == NULL ||
        (cfg->context_name = strdup(name)) == NULL ||
        (cfg->cluster_name = strdup(ctx->cluster)) == NULL ||
        (nonempty(ctx->user) && (cfg->user_name = strdup(ctx->user)) == NULL) ||
        (cfg->namespace = strdup(nonempty(ctx->namespace) ? ctx->namespace : "default")) == NULL) {
        rc = oom(err);
        goto out;
    }
    if ((rc = resolve_cluster(cfg, cluster, cluster_from, err)) < 0) {
        goto out;
    }
    if (user != NULL && (rc = resolve_user(cfg, user, user_from, err)) < 0) {
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    k8s_config_free(cfg);
    return rc;
}

/* ---- entry points ---- */

int k8s_kubeconfig_load_buffer(struct k8s_config **out, const char *buf, size_t len,
                               const char *source, const char *dir, const char *context,
                               struct cg_err *err)
{
    struct kc_file f = {0};
    int rc = 0;
    if ((f.path = strdup(source ? source : "<kubeconfig>")) == NULL ||
        (nonempty(dir) && (f.dir = path_clean(dir)) == NULL)) {
        rc = oom(err);
        goto out;
    }
    if ((rc = parse_file(&f, buf, len, err)) < 0) {
        goto out;
    }
    struct kc_set set = {&f, 1, f.path};
    rc = resolve(out, &set, context, err);
out:
    file_cleanup(&f);
    return rc;
}

/* explicit: the one file named by --kubeconfig, which must exist. */
static int load_files(struct k8s_config **out, const char *const *paths, size_t n,
                      const char *context, int explicit, struct cg_err *err)
{
    struct kc_file *files = calloc(n ? n : 1, sizeof(*files));
    struct cg_buf source;
    size_t loaded = 0;
    int rc = 0;
    cg_buf_init(&source, 0);
    if (files == NULL) {
        return oom(err);
    }
    for (size_t i = 0; i < n; i++) {
        const char *path = paths[i];
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++) {
            dup = paths[j] != NULL && path != NULL && strcmp(paths[j], path) == 0;
        }
        if (dup || !nonempty(path)) {
            continue;
        }
        char *buf = NULL;
        size_t len = 0;
        rc = cg_file_read(path, KUBECONFIG_MAX, &buf, &len, err);
        if (rc == CG_ENOTFOUND && !explicit) {
            CG_LOG(CG_LOG_DEBUG, "k8s", "kubeconfig '%s' does not exist, skipped", path);
            rc = 0;
            continue;
        }
        if (rc < 0) {
            if (rc == CG_ENOTFOUND && err != NULL) {
                err->code = rc = CG_EINVAL; /* the user named this file */
            }
            goto out;
        }
        struct kc_file *f = &files[loaded++];
        if ((f->path = strdup(path)) == NULL || (f->dir = abs_dir(path)) == NULL) {
            rc = oom(err);
        } else {
            rc = parse_file(f, buf, len, err);
        }
        cg_wipe(buf, len);
        free(buf);
        if (rc < 0) {
            goto out;
        }
        if ((source.len > 0 && (rc = cg_buf_append_str(&source, ":")) < 0) ||
            (rc = cg_buf_append_str(&source, path)) < 0) {
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (loaded == 0) {
        rc = cg_err_set(err, CG_ENOTFOUND, "none of the kubeconfig files exist");
        goto out;
    }
    struct kc_set set = {files, loaded, source.data};
    rc = resolve(out, &set, context, err);
out:
    for (size_t i = 0; i < loaded; i++) {
        file_cleanup(&files[i]);
    }
    free(files);
    cg_buf_cleanup(&source);
    return rc;
}

int k8s_kubeconfig_load_files(struct k8s_config **out, const char *const *paths, size_t n,
                              const char *context, struct cg_err *err)
{
    return load_files(out, paths, n, context, 0, err);
}

static int not_configured(struct cg_err *err)
{
    return cg_err_set(err, CG_ENOTFOUND,
                      "no Kubernetes configuration found: set --kubeconfig or KUBECONFIG, or run "
                      "in a cluster");
}

static int in_cluster_possible(const struct k8s_load_opts *opts)
{
    return nonempty(opts->service_host) && nonempty(opts->service_port);
}

/* Splits $KUBECONFIG on ':' into a NULL-padded array of copies. */
static int split_env(const char *env, char ***out, size_t *n, struct cg_err *err)
{
    size_t count = 1;
    for (const char *p = env; *p; p++) {
        count += *p == ':';
    }
    char **list = calloc(count, sizeof(*list));
    if (list == NULL) {
        return oom(err);
    }
    const char *start = env;
    for (size_t i = 0; i < count; i++) {
        const char *end = strchr(start, ':');
        size_t l = end ? (size_t)(end - start) : strlen(start);
        if ((list[i] = strndup(start, l)) == NULL) {
            for (size_t j = 0; j < i; j++) {
                free(list[j]);
            }
            free(list);
            return oom(err);
        }
        start = end ? end + 1 : start + l;
    }
    *out = list;
    *n = count;
    return 0;
}

int k8s_config_load(struct k8s_config **out, const struct k8s_load_opts *opts, struct cg_err *err)
{
    int rc;
    if (nonempty(opts->kubeconfig_path)) {
        const char *one[] = {opts->kubeconfig_path};
        rc = load_files(out, one, 1, opts->context, 1, err);
        if (rc == CG_ENOTFOUND && err != NULL) {
            err->code = rc = CG_EINVAL; /* an empty file named on purpose is a mistake */
        }
        return rc;
    }
    if (nonempty(opts->kubeconfig_env)) {
        char **list = NULL;
        size_t n = 0;
        if ((rc = split_env(opts->kubeconfig_env, &list, &n, err)) < 0) {
            return rc;
        }
        rc = load_files(out, (const char *const *)list, n, opts->context, 0, err);
        for (size_t i = 0; i < n; i++) {
            free(list[i]);
        }
        free(list);
        if (rc != CG_ENOTFOUND) {
            return rc;
        }
        /* Like client-go: KUBECONFIG naming nothing usable falls back to in-cluster, never to
         * ~/.kube/config. */
        CG_LOG(CG_LOG_DEBUG, "k8s", "KUBECONFIG names nothing usable: %s", err ? err->msg : "");
        if (in_cluster_possible(opts)) {
            return k8s_config_in_cluster(out, opts, err);
        }
        char why[CG_ERR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", err ? err->msg : "");
        return cg_err_set(err, CG_ENOTFOUND,
                          "no Kubernetes configuration found: KUBECONFIG '%s': %s",
                          opts->kubeconfig_env, why);
    }
    if (in_cluster_possible(opts)) {
        return k8s_config_in_cluster(out, opts, err);
    }
    if (nonempty(opts->home)) {
        char *path = cg_path_join(opts->home, ".kube/config");
        if (path == NULL) {
            return oom(err);
        }
        const char *one[] = {path};
        rc = load_files(out, one, 1, opts->context, 0, err);
        free(path);
        if (rc != CG_ENOTFOUND) {
            return rc;
        }
    }
    return not_configured(err);
}
