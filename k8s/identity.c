/* k8s/identity.c: the cluster's identity as the Kubernetes API reveals it. */
#include "k8s_identity.h"

#include "cg_buf.h"
#include "cg_log.h"
#include "k8s_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void k8s_identity_cleanup(struct k8s_identity *id)
{
    free(id->id);
    free(id->name);
    free(id->provider);
    free(id->region);
    free(id->account);
    free(id->version);
    free(id->server);
    free(id->zone);
    free(id->node_resource_group);
    memset(id, 0, sizeof(*id));
}

/* One fact as several nodes state it: kept only while every node agrees. */
struct agreed {
    char value[256];
    int set;
    int conflict;
};

static void agree(struct agreed *a, const char *v, size_t len)
{
    if (v == NULL || len == 0 || a->conflict) {
        return;
    }
    if (len >= sizeof(a->value)) {
        a->conflict = 1; /* longer than any real region, project or name */
        return;
    }
    if (!a->set) {
        memcpy(a->value, v, len);
        a->value[len] = '\0';
        a->set = 1;
    } else if (strlen(a->value) != len || strncmp(a->value, v, len) != 0) {
        a->conflict = 1;
    }
}

static void agree_str(struct agreed *a, const char *v)
{
    if (v != NULL) {
        agree(a, v, strlen(v));
    }
}

static int take_agreed(char **field, const struct agreed *a)
{
    if (*field != NULL || !a->set || a->conflict) {
        return 0;
    }
    *field = strdup(a->value);
    return *field ? 0 : CG_ENOMEM;
}

static const char *label(json_t *labels, const char *key)
{
    return json_string_value(json_object_get(labels, key));
}

static int has_label_prefix(json_t *labels, const char *prefix)
{
    const char *key;
    json_t *v;
    size_t n = strlen(prefix);
    json_object_foreach(labels, key, v)
    {
        if (strncmp(key, prefix, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An AWS-style availability zone "eu-west-3a" names its region "eu-west-3". Local and
 * Wavelength zones ("us-west-2-lax-1a") do not follow that rule, so only the plain shape
 * is derived. */
static int region_from_az(const char *az, size_t *region_len)
{
    size_t n = strlen(az);
    if (n < 4 || !islower((unsigned char)az[n - 1]) || !isdigit((unsigned char)az[n - 2])) {
        return 0;
    }
    int dashes = 0;
    for (size_t i = 0; i < n; i++) {
        dashes += az[i] == '-';
    }
    if (dashes != 2 && !(dashes == 3 && strstr(az, "-gov-") != NULL)) {
        return 0;
    }
    *region_len = n - 1;
    return 1;
}

/* A GCE zone "europe-west1-b" names its region "europe-west1". */
static int region_from_gce_zone(const char *zone, size_t *region_len)
{
    const char *dash = strrchr(zone, '-');
    if (dash == NULL || dash == zone || strlen(dash) != 2 || !islower((unsigned char)dash[1])) {
        return 0;
    }
    *region_len = (size_t)(dash - zone);
    return 1;
}

int k8s_identity_from_nodes(struct k8s_identity *id, json_t *items)
{
    struct agreed provider = {0}, region = {0}, account = {0}, name = {0}, zone = {0},
                  node_rg = {0};
    size_t i;
    json_t *node;
    json_array_foreach(items, i, node)
    {
        json_t *labels = json_object_get(json_object_get(node, "metadata"), "labels");
        const char *pid =
            json_string_value(json_object_get(json_object_get(node, "spec"), "providerID"));
        const char *node_region = label(labels, "topology.kubernetes.io/region");
        if (node_region == NULL) {
            node_region = label(labels, "failure-domain.beta.kubernetes.io/region");
        }
        const char *node_zone = label(labels, "topology.kubernetes.io/zone");
        if (node_zone == NULL) {
            node_zone = label(labels, "failure-domain.beta.kubernetes.io/zone");
        }
        const char *itype = label(labels, "node.kubernetes.io/instance-type");
        if (itype == NULL) {
            itype = label(labels, "beta.kubernetes.io/instance-type");
        }
        id->nodes_seen++;
        agree_str(&region, node_region);

        if (pid == NULL) {
            continue;
        }
        if (strncmp(pid, "gce://", 6) == 0) {
            /* gce://<project>/<zone>/<instance> */
            const char *p = pid + 6;
            const char *s1 = strchr(p, '/');
            const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
            agree_str(&provider, "gcp");
            if (s1 != NULL && s2 != NULL) {
                agree(&account, p, (size_t)(s1 - p));
                char z[128];
                size_t zl = (size_t)(s2 - s1 - 1);
                if (zl < sizeof(z)) {
                    memcpy(z, s1 + 1, zl);
                    z[zl] = '\0';
                    agree_str(&zone, z);
                    size_t rl;
                    if (node_region == NULL && region_from_gce_zone(z, &rl)) {
                        agree(&region, z, rl);
                    }
                }
            }
        } else if (strncmp(pid, "azure://", 8) == 0) {
            /* azure:///subscriptions/<sub>/resourceGroups/<nodeRG>/providers/... ; Azure
             * sometimes lower-cases the path, so match case-insensitively. */
            agree_str(&provider, "azure");
            const char *p = strcasestr(pid, "/subscriptions/");
            if (p != NULL) {
                p += strlen("/subscriptions/");
                const char *e = strchr(p, '/');
                agree(&account, p, e ? (size_t)(e - p) : strlen(p));
            }
            /* The node resource group is "MC_<group>_<cluster>_<region>" by default, but it
             * can be renamed and both names may hold '_': the cluster name is not read from
             * it (ARM's managedBy on that group is the authoritative source). */
            const char *rg = label(labels, "kubernetes.azure.com/cluster");
            const char *g = strcasestr(pid, "/resourceGroups/");
            if (rg != NULL) {
                agree_str(&node_rg, rg);
            } else if (g != NULL) {
                g += strlen("/resourceGroups/");
                const char *e = strchr(g, '/');
                agree(&node_rg, g, e ? (size_t)(e - g) : strlen(g));
            }
        } else if (strncmp(pid, "aws://", 6) == 0 || strncmp(pid, "osc://", 6) == 0) {
            /* Outscale's cloud controller writes the same aws:///<zone>/<vm> shape as EKS:
             * its labels and VM types tell them apart. */
            int osc = strncmp(pid, "osc://", 6) == 0 ||
                      has_label_prefix(labels, "topology.outscale.com/") ||
                      has_label_prefix(labels, "role.outscale.com/") ||
                      (itype != NULL && strncmp(itype, "tinav", 5) == 0);
            agree_str(&provider, osc ? "outscale" : "aws");
            const char *p = pid + 6;
            while (*p == '/') {
                p++;
            }
            const char *e = strchr(p, '/');
            char z[128];
            size_t zl = e ? (size_t)(e - p) : 0;
            if (zl > 0 && zl < sizeof(z)) {
                memcpy(z, p, zl);
                z[zl] = '\0';
                agree_str(&zone, z);
                size_t rl;
                if (node_region == NULL && region_from_az(z, &rl)) {
                    agree(&region, z, rl);
                }
            }
            if (!osc) {
                agree_str(&name, label(labels, "alpha.eksctl.io/cluster-name"));
            }
        } else {
            agree_str(&provider, "unknown");
        }
        (void)node_zone;
    }
    int rc = 0;
    if (id->provider == NULL) {
        /* nodes that disagree (a hybrid cluster) or none with a providerID: do not guess */
        const char *p = provider.set && !provider.conflict ? provider.value : "unknown";
        id->provider = strdup(p);
        rc = id->provider ? 0 : CG_ENOMEM;
    }
    if (rc == 0) {
        rc = take_agreed(&id->region, &region);
    }
    /* Nodes of different clouds (a hybrid cluster) have no one account, name or zone. */
    int mixed = provider.conflict;
    if (rc == 0 && !mixed) {
        rc = take_agreed(&id->account, &account);
    }
    if (rc == 0 && !mixed) {
        rc = take_agreed(&id->name, &name);
    }
    if (rc == 0 && !mixed) {
        rc = take_agreed(&id->zone, &zone);
    }
    if (rc == 0 && !mixed) {
        rc = take_agreed(&id->node_resource_group, &node_rg);
    }
    return rc;
}

/* ---- fetching ---- */

struct fetch {
    struct k8s_client *c;
    struct k8s_identity id;
    json_t *nodes; /* accumulated items across pages */
    int pending;
    int pages;
    struct cg_err err;
    k8s_identity_cb *done;
    void *data;
};

static void fetch_step_done(struct fetch *f)
{
    if (--f->pending > 0) {
        return;
    }
    if (f->err.code == 0 && f->nodes != NULL) {
        if (k8s_identity_from_nodes(&f->id, f->nodes) < 0) {
            cg_err_set(&f->err, CG_ENOMEM, "out of memory");
        }
    }
    if (f->err.code == 0 && f->id.provider == NULL) {
        f->id.provider = strdup("unknown");
    }
    f->done(&f->id, f->err.code ? &f->err : NULL, f->data);
    k8s_identity_cleanup(&f->id);
    json_decref(f->nodes);
    free(f);
}

/* 403/404: the agent may lack RBAC for this read; the field stays unknown. */
static int tolerable(const struct cg_err *err)
{
    return err->http_status == 403 || err->http_status == 404;
}

static void record_error(struct fetch *f, const struct cg_err *err)
{
    if (tolerable(err)) {
        CG_LOG(CG_LOG_WARN, "k8s", "%s; the fields it would give stay unknown", err->msg);
        return;
    }
    if (f->err.code == 0) {
        f->err = *err;
    }
}

static void on_version(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct fetch *f = data;
    if (err != NULL) {
        record_error(f, err);
    } else {
        const char *v = json_string_value(json_object_get(body, "gitVersion"));
        f->id.version = v ? strdup(v) : NULL;
    }
    fetch_step_done(f);
}

static void on_namespace(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct fetch *f = data;
    if (err != NULL) {
        record_error(f, err);
    } else {
        const char *uid =
            json_string_value(json_object_get(json_object_get(body, "metadata"), "uid"));
        f->id.id = uid ? strdup(uid) : NULL;
    }
    fetch_step_done(f);
}

#define NODES_PAGE "/api/v1/nodes?limit=500"

static void on_nodes(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct fetch *f = data;
    if (err != NULL) {
        record_error(f, err);
        fetch_step_done(f);
        return;
    }
    json_t *items = json_object_get(body, "items");
    if (json_is_array(items)) {
        if (f->nodes == NULL) {
            f->nodes = json_array();
        }
        if (f->nodes == NULL || json_array_extend(f->nodes, items) < 0) {
            cg_err_set(&f->err, CG_ENOMEM, "out of memory");
            fetch_step_done(f);
            return;
        }
    }
    const char *cont =
        json_string_value(json_object_get(json_object_get(body, "metadata"), "continue"));
    /* A server that keeps answering "continue" (with or without items) must not keep us
     * paging forever: 200 pages of 500 is far beyond any real cluster. */
    if (cont != NULL && cont[0] != '\0' && ++f->pages >= 200) {
        struct cg_err perr = {0};
        cg_err_set(&perr, CG_ETOOBIG, "GET /api/v1/nodes: more than 200 pages of nodes");
        record_error(f, &perr);
        fetch_step_done(f);
        return;
    }
    if (cont != NULL && cont[0] != '\0') {
        struct cg_buf path;
        cg_buf_init(&path, 0);
        char *esc = NULL;
        /* continue tokens are opaque base64-ish strings: escape everything but the safe set */
        struct cg_buf e;
        cg_buf_init(&e, 0);
        for (const char *p = cont; *p; p++) {
            if (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
                cg_buf_append(&e, p, 1);
            } else {
                cg_buf_printf(&e, "%%%02X", (unsigned char)*p);
            }
        }
        esc = e.data;
        struct cg_err cerr = {0};
        if (esc == NULL || cg_buf_printf(&path, NODES_PAGE "&continue=%s", esc) < 0 ||
            k8s_client_call(f->c, "GET", path.data, NULL, on_nodes, f, &cerr) < 0) {
            if (cerr.code == 0) {
                cg_err_set(&cerr, CG_ENOMEM, "out of memory");
            }
            record_error(f, &cerr);
            cg_buf_cleanup(&e);
            cg_buf_cleanup(&path);
            fetch_step_done(f);
            return;
        }
        cg_buf_cleanup(&e);
        cg_buf_cleanup(&path);
        return; /* the next page completes this step */
    }
    fetch_step_done(f);
}

int k8s_identity_fetch(struct k8s_client *c, k8s_identity_cb *done, void *data, struct cg_err *err)
{
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    f->c = c;
    f->done = done;
    f->data = data;
    f->id.server = strdup(k8s_client_config(c)->server);
    if (f->id.server == NULL) {
        free(f);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    /* Three independent reads go out together; the last to finish completes the fetch. */
    static const struct {
        const char *path;
        k8s_done_cb *cb;
    } reads[] = {
        {"/version", on_version},
        {"/api/v1/namespaces/kube-system", on_namespace},
        {NODES_PAGE, on_nodes},
    };
    f->pending = 1; /* held until every read is submitted */
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        f->pending++;
        struct cg_err e = {0};
        if (k8s_client_call(c, "GET", reads[i].path, NULL, reads[i].cb, f, &e) < 0) {
            f->pending--;
            if (f->err.code == 0) {
                f->err = e;
            }
        }
    }
    fetch_step_done(f); /* releases the submission hold; may complete now if all failed */
    return 0;
}
