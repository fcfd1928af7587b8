/* agent/credstore.c: the credential's write-ahead record in a Kubernetes Secret. */
#include "credstore.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_util.h"
#include "k8s_client.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct field_names {
    const char *provider, *principal, *account, *key_id, *secret;
};

static const struct field_names field_names[] = {
    {"aws", "userName", "accountId", "accessKeyId", "secretAccessKey"},
    {"gcp", "serviceAccount", "projectId", "keyId", "key.json"},
    {"azure", "clientId", "tenantId", "keyId", "clientSecret"},
    {"outscale", "userName", "accountId", "accessKeyId", "secretKey"},
};

/* An unknown or missing provider reads as AWS: the Secrets written before there was a choice. */
static const struct field_names *names_for(const char *provider)
{
    for (size_t i = 0; provider != NULL && i < sizeof(field_names) / sizeof(field_names[0]); i++) {
        if (strcmp(field_names[i].provider, provider) == 0) {
            return &field_names[i];
        }
    }
    return &field_names[0];
}

void credstore_entry_cleanup(struct credstore_entry *e)
{
    free(e->provider);
    free(e->principal);
    free(e->account);
    free(e->key_id);
    cg_secret_free(e->secret);
    free(e->profile);
    free(e->resource_version);
    memset(e, 0, sizeof(*e));
}

int credstore_init(struct credstore *s, struct k8s_client *k8s, const char *ns, const char *name,
                   const char *profile, struct cg_err *err)
{
    memset(s, 0, sizeof(*s));
    s->k8s = k8s;
    const char *cns = k8s_client_config(k8s)->namespace;
    s->ns = strdup(ns ? ns : (cns ? cns : "default"));
    if (name != NULL) {
        s->name = strdup(name);
    } else {
        struct cg_buf b;
        cg_buf_init(&b, 0);
        cg_buf_printf(&b, "cloudgrant-%s", profile);
        s->name = b.data;
    }
    if (s->ns == NULL || s->name == NULL) {
        credstore_cleanup(s);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    /* Kubernetes object names: a DNS subdomain of lower-case letters, digits, '-' and '.'. */
    size_t n = strlen(s->name);
    int ok = n > 0 && n <= 253;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s->name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    }
    if (!ok) {
        int rc = cg_err_set(err, CG_EINVAL,
                            "'%s' is not a valid Secret name (lower-case letters, digits, '-' "
                            "and '.', at most 253): set --secret-name",
                            s->name);
        credstore_cleanup(s);
        return rc;
    }
    return 0;
}

void credstore_cleanup(struct credstore *s)
{
    free(s->ns);
    free(s->name);
    memset(s, 0, sizeof(*s));
}

struct call {
    long status;
    json_t *body;
    struct cg_err err;
    int done;
};

static void on_done(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct call *c = data;
    c->done = 1;
    c->status = status;
    if (err != NULL) {
        c->err = *err;
    }
    c->body = json_incref(body);
}

/* One call, run to completion; the Secret's body is wiped before it is freed. */
static int call(struct credstore *s, const char *method, const char *path, const char *body,
                struct call *out, struct cg_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = k8s_client_call(s->k8s, method, path, body, on_done, out, err);
    if (rc < 0) {
        return rc;
    }
    /* Commands call the store between phases, when nothing else is in flight. */
    cg_http_run(k8s_client_http(s->k8s));
    return 0;
}

static void wipe_secret_tree(json_t *secret)
{
    json_t *data = json_object_get(secret, "data");
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v)
    {
        if (json_is_string(v)) {
            cg_wipe((void *)json_string_value(v), json_string_length(v));
        }
    }
}

static char *decode_field(json_t *data, const char *key)
{
    const char *b64 = json_string_value(json_object_get(data, key));
    unsigned char *out = NULL;
    size_t len = 0;
    if (b64 == NULL || cg_b64_decode(b64, strlen(b64), &out, &len) < 0) {
        return NULL;
    }
    if (memchr(out, '\0', len) != NULL) {
        cg_secret_free((char *)out);
        return NULL;
    }
    return (char *)out;
}

static char *path_of(const struct credstore *s, int with_name)
{
    struct cg_buf b;
    cg_buf_init(&b, 0);
    cg_buf_printf(&b, "/api/v1/namespaces/%s/secrets%s%s", s->ns, with_name ? "/" : "",
                  with_name ? s->name : "");
    return b.data;
}

int credstore_read(struct credstore *s, struct credstore_entry *out, int *found, struct cg_err *err)
{
    memset(out, 0, sizeof(*out));
    *found = 0;
    char *path = path_of(s, 1);
    struct call c;
    int rc = path ? call(s, "GET", path, NULL, &c, err) : CG_ENOMEM;
    free(path);
    if (rc < 0) {
        return rc == CG_ENOMEM ? cg_err_set(err, rc, "out of memory") : rc;
    }
    if (c.status == 404) {
        json_decref(c.body);
        return 0;
    }
    if (c.err.code != 0) {
        *err = c.err;
        json_decref(c.body);
        return cg_err_wrap(err, "cannot read credential Secret %s/%s", s->ns, s->name);
    }
    json_t *meta = json_object_get(c.body, "metadata");
    json_t *ann = json_object_get(meta, "annotations");
    json_t *data = json_object_get(c.body, "data");
    const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
    const char *delivered = json_string_value(json_object_get(ann, CREDSTORE_ANN_DELIVERED));
    out->provider = decode_field(data, "provider");
    const struct field_names *f = names_for(out->provider);
    out->key_id = decode_field(data, f->key_id);
    out->secret = decode_field(data, f->secret);
    out->principal = decode_field(data, f->principal);
    out->account = decode_field(data, f->account);
    out->resource_version = rv ? strdup(rv) : NULL;
    out->delivered = delivered != NULL && strcmp(delivered, "true") == 0;
    wipe_secret_tree(c.body);
    json_decref(c.body);
    *found = 1;
    if (out->key_id == NULL || out->secret == NULL) {
        /* a Secret we cannot use holds nothing to deliver: treat as absent, overwrite later */
        *found = 0;
        out->delivered = 0;
    }
    return 0;
}

static int put_b64(json_t *data, const char *key, const char *value)
{
    if (value == NULL) {
        return 0;
    }
    char *b64 = cg_b64_encode((const unsigned char *)value, strlen(value));
    if (b64 == NULL) {
        return CG_ENOMEM;
    }
    int rc = json_object_set_new(data, key, json_string(b64)) == 0 ? 0 : CG_ENOMEM;
    cg_secret_free(b64);
    return rc;
}

int credstore_write(struct credstore *s, struct credstore_entry *e, struct cg_err *err)
{
    json_t *data = json_object();
    int rc = data ? 0 : CG_ENOMEM;
    if (rc == 0) {
        rc = put_b64(data, "provider", e->provider);
    }
    const struct field_names *f = names_for(e->provider);
    if (rc == 0) {
        rc = put_b64(data, f->principal, e->principal);
    }
    if (rc == 0) {
        rc = put_b64(data, f->account, e->account);
    }
    if (rc == 0) {
        rc = put_b64(data, f->key_id, e->key_id);
    }
    if (rc == 0) {
        rc = put_b64(data, f->secret, e->secret);
    }
    json_t *meta = json_pack(
        "{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}}", "name", s->name, "namespace", s->ns, "labels",
        "app.kubernetes.io/managed-by", "cloudgrant", "annotations", CREDSTORE_ANN_DELIVERED,
        e->delivered ? "true" : "false", CREDSTORE_ANN_KEY_ID, e->key_id ? e->key_id : "",
        "cloudgrant.io/profile", e->profile ? e->profile : "");
    if (meta != NULL && e->resource_version != NULL) {
        json_object_set_new(meta, "resourceVersion", json_string(e->resource_version));
    }
    json_t *secret = rc == 0 && meta
                         ? json_pack("{s:s, s:s, s:o, s:s, s:o}", "apiVersion", "v1", "kind",
                                     "Secret", "metadata", meta, "type", "Opaque", "data", data)
                         : NULL;
    char *text = secret ? json_dumps(secret, JSON_COMPACT) : NULL;
    if (secret != NULL) {
        wipe_secret_tree(secret);
        json_decref(secret);
    } else {
        json_decref(meta);
        json_decref(data);
    }
    if (text == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int exists = e->resource_version != NULL;
    char *path = path_of(s, exists);
    struct call c;
    rc = path ? call(s, exists ? "PUT" : "POST", path, text, &c, err) : CG_ENOMEM;
    free(path);
    cg_secret_free(text);
    if (rc < 0) {
        return rc == CG_ENOMEM ? cg_err_set(err, rc, "out of memory") : rc;
    }
    if (c.err.code != 0) {
        *err = c.err;
        json_decref(c.body);
        return cg_err_wrap(err, "cannot store the credential in Secret %s/%s", s->ns, s->name);
    }
    const char *rv =
        json_string_value(json_object_get(json_object_get(c.body, "metadata"), "resourceVersion"));
    free(e->resource_version);
    e->resource_version = rv ? strdup(rv) : NULL;
    wipe_secret_tree(c.body);
    json_decref(c.body);
    return 0;
}

int credstore_mark_delivered(struct credstore *s, struct cg_err *err)
{
    char when[32];
    cg_format_rfc3339((int64_t)time(NULL), when, sizeof(when));
    json_t *patch = json_pack("{s:{s:{s:s, s:s}}}", "metadata", "annotations",
                              CREDSTORE_ANN_DELIVERED, "true", CREDSTORE_ANN_DELIVERED_AT, when);
    char *text = patch ? json_dumps(patch, JSON_COMPACT) : NULL;
    json_decref(patch);
    char *path = path_of(s, 1);
    struct call c;
    int rc = text && path ? call(s, "PATCH", path, text, &c, err) : CG_ENOMEM;
    free(text);
    free(path);
    if (rc < 0) {
        return rc == CG_ENOMEM ? cg_err_set(err, rc, "out of memory") : rc;
    }
    if (c.body != NULL) {
        wipe_secret_tree(c.body);
    }
    json_decref(c.body);
    if (c.err.code != 0) {
        *err = c.err;
        return cg_err_wrap(err, "cannot mark Secret %s/%s delivered", s->ns, s->name);
    }
    return 0;
}

int credstore_delete(struct credstore *s, struct cg_err *err)
{
    char *path = path_of(s, 1);
    struct call c;
    int rc = path ? call(s, "DELETE", path, NULL, &c, err) : CG_ENOMEM;
    free(path);
    if (rc < 0) {
        return rc == CG_ENOMEM ? cg_err_set(err, rc, "out of memory") : rc;
    }
    json_decref(c.body);
    if (c.err.code != 0 && c.status != 404) {
        *err = c.err;
        return cg_err_wrap(err, "cannot delete credential Secret %s/%s", s->ns, s->name);
    }
    return 0;
}
