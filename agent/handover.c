/* agent/handover.c: the credential's way to the platform, shared by every provider. */
#include "handover.h"

#include "lease.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_util.h"
#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int handover_open(struct handover *h, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                  struct cg_http *http, const struct cg_identity *id, int64_t started_at,
                  struct cg_err *err)
{
    memset(h, 0, sizeof(*h));
    h->o = o;
    h->http = http;
    h->id = id;
    h->started_at = started_at;
    int rc;
    if (o->report_url != NULL) {
        rc = report_config_init(&h->report, o->report_url, getenv_fn("CLOUDGRANT_REPORT_TOKEN"),
                                o->report_token_file, o->report_ca, o->allow_insecure_report, err);
        if (rc < 0) {
            return rc;
        }
        h->report_on = 1;
    }
    if (o->seal_key == NULL) {
        return 0;
    }
    /* the value is the PEM itself (as a chart passes it) or a file that holds it */
    char *pem = NULL;
    size_t len = 0;
    if (strncmp(o->seal_key, "-----BEGIN", 10) == 0) {
        pem = strdup(o->seal_key);
        len = pem ? strlen(pem) : 0;
        rc = pem ? 0 : cg_err_set(err, CG_ENOMEM, "out of memory");
    } else {
        rc = cg_file_read(o->seal_key, 64 * 1024, &pem, &len, err);
        if (rc < 0) {
            cg_err_wrap(err, "--seal-key");
            rc = CG_EINVAL;
        }
    }
    if (rc == 0) {
        rc = cg_seal_key_load(&h->seal, pem, len, "--seal-key", err);
    }
    free(pem);
    return rc;
}

int handover_store_open(struct handover *h, struct k8s_client *k8s, const char *profile,
                        struct cg_err *err)
{
    h->profile = profile;
    int rc =
        credstore_init(&h->store, k8s, h->o->secret_namespace, h->o->secret_name, profile, err);
    if (rc == 0) {
        h->store_open = 1;
    }
    return rc;
}

int handover_store_read(struct handover *h, struct cg_err *err)
{
    int rc = credstore_read(&h->store, &h->stored, &h->stored_found, err);
    if (rc == 0) {
        h->store_ready = 1;
    }
    return rc;
}

int handover_lock(struct handover *h, struct cg_err *err)
{
    const char *d = h->o->lease_duration;
    long long ms = d ? cg_parse_duration_ms(d) : 30000;
    if (ms < 0 || ms > 3600000 || (ms > 0 && ms < 1000)) {
        return cg_err_set(err, CG_EINVAL,
                          "--lease-duration '%s' is not 0 or a duration from 1s to 1h (e.g. 30s)",
                          d);
    }
    if (ms == 0 || !h->store_open) {
        return 0;
    }
    long s = (long)(ms / 1000);
    return lease_acquire(&h->lease, h->store.k8s, h->store.ns, h->store.name, s, 10 * s, err);
}

void handover_unlock(struct handover *h)
{
    lease_release(h->lease);
    h->lease = NULL;
}

void handover_close(struct handover *h)
{
    credstore_entry_cleanup(&h->stored);
    if (h->store_open) {
        credstore_cleanup(&h->store);
    }
    report_config_cleanup(&h->report);
    cg_seal_key_free(h->seal);
    memset(h, 0, sizeof(*h));
}

int handover_has_channel(const struct handover *h)
{
    return h->report_on || h->o->credentials_out != NULL;
}

void handover_wipe_json(json_t *doc)
{
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (json_is_string(v)) {
            cg_wipe((void *)json_string_value(v), json_string_length(v));
        } else if (json_is_object(v)) {
            handover_wipe_json(v);
        }
    }
}

int handover_store_new(struct handover *h, const char *provider, const char *principal,
                       const char *account, const char *key_id, const char *secret,
                       struct cg_err *err)
{
    struct credstore_entry e = {0};
    e.provider = strdup(provider);
    e.principal = strdup(principal);
    e.account = strdup(account);
    e.key_id = strdup(key_id);
    e.secret = strdup(secret);
    e.profile = strdup(h->profile);
    /* Replacing a Secret that exists (usable or not) goes by its resourceVersion, so a
     * concurrent writer is noticed instead of overwritten. */
    e.resource_version = h->stored.resource_version ? strdup(h->stored.resource_version) : NULL;
    e.delivered = 0;
    if (e.provider == NULL || e.principal == NULL || e.account == NULL || e.key_id == NULL ||
        e.secret == NULL || e.profile == NULL ||
        (h->stored.resource_version != NULL && e.resource_version == NULL)) {
        credstore_entry_cleanup(&e);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = credstore_write(&h->store, &e, err);
    if (rc < 0) {
        credstore_entry_cleanup(&e);
        return rc;
    }
    credstore_entry_cleanup(&h->stored);
    h->stored = e;
    h->stored_found = 1;
    return 0;
}

/* --credentials-out: written beside the target and renamed, so a reader never sees half a
 * file and a crash leaves the old record intact; 0600 from creation, so there is no moment
 * where others can read it. "-" prints it. */
static int write_file(const char *path, json_t *doc, struct cg_err *err)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
            rc = cg_err_set(err, CG_EIO, "cannot write the credential to stdout");
        }
        cg_secret_free(text);
        return rc;
    }
    struct cg_buf tmp;
    cg_buf_init(&tmp, 0);
    cg_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd =
        tmp.data ? open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
    size_t len = strlen(text);
    if (fd < 0) {
        rc = cg_err_set(err, CG_EIO, "cannot write credentials file '%s': %s", path,
                        strerror(errno));
    } else {
        ssize_t n = write(fd, text, len);
        int ok = n == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp.data, path) != 0) {
            rc = cg_err_set(err, CG_EIO, "cannot write credentials file '%s': %s", path,
                            strerror(errno));
            unlink(tmp.data);
        }
    }
    cg_buf_cleanup(&tmp);
    cg_secret_free(text);
    return rc;
}

static json_t *report_entries(const struct rc_list *l, int drift)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->count; i++) {
        const struct rc_entry *e = &l->items[i];
        json_t *o;
        if (drift) {
            o = json_pack("{s:s, s:s, s:s, s:s}", "provider", e->provider, "kind", e->kind, "name",
                          e->name ? e->name : "", "change", rc_drift_word(e->change));
            if (o != NULL && e->id != NULL) {
                json_object_set_new(o, "id", json_string(e->id));
            }
            if (o != NULL && e->detail != NULL) {
                json_object_set_new(o, "detail", json_string(e->detail));
            }
        } else {
            o = json_pack("{s:s, s:s, s:s, s:s}", "provider", e->provider, "kind", e->kind, "id",
                          e->id ? e->id : (e->name ? e->name : ""), "change",
                          rc_change_word(e->change));
        }
        if (o != NULL) {
            json_array_append_new(a, o);
        }
    }
    return a;
}

struct sent {
    struct cg_err err;
};

static void on_sent(const struct cg_err *err, void *data)
{
    struct sent *s = data;
    if (err != NULL) {
        s->err = *err;
    }
}

static int send_report(struct handover *h, const char *kind, const struct rc_list *entries,
                       int drift, const char *error, json_t *cred, const char *key_id,
                       struct cg_err *err)
{
    char *cluster_text = cg_identity_json(h->id);
    json_t *cluster_doc = cluster_text ? json_loads(cluster_text, 0, NULL) : NULL;
    free(cluster_text);
    json_t *creds_field = NULL;
    char *sealed = NULL;
    if (cred != NULL && h->seal != NULL) {
        char *plain = json_dumps(cred, JSON_COMPACT);
        if (plain == NULL ||
            cg_seal_jwe(h->seal, (unsigned char *)plain, strlen(plain), &sealed, err) < 0) {
            cg_secret_free(plain);
            json_decref(cluster_doc);
            return err->code ? err->code : cg_err_set(err, CG_ENOMEM, "out of memory");
        }
        cg_secret_free(plain);
        creds_field = json_string(sealed);
    } else if (cred != NULL) {
        creds_field = json_incref(cred);
    }
    json_t *list = report_entries(entries, 0);
    json_t *drift_list = drift ? report_entries(entries, 1) : NULL;
    struct report_input in = {
        .kind = kind,
        .cluster = json_object_get(cluster_doc, "cluster"),
        .profile = h->profile,
        .status = error ? "failed" : "succeeded",
        .resources = drift ? NULL : list,
        .drift = drift_list,
        .credentials = creds_field,
        .error = error,
        .started_at = h->started_at,
        .finished_at = (int64_t)time(NULL),
        .agent_version = CG_VERSION,
    };
    char *body = report_build(&in);
    json_decref(list);
    json_decref(drift_list);
    json_decref(creds_field);
    json_decref(cluster_doc);
    cg_secret_free(sealed);
    if (body == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    /* A credential's report keeps its key across runs, so a re-delivery after a crash is
     * recognisably the same report; other reports are one per run. */
    char started[32];
    snprintf(started, sizeof(started), "%lld", (long long)h->started_at);
    const char *parts[] = {kind, h->id->k8s.id ? h->id->k8s.id : "", h->profile ? h->profile : "",
                           key_id ? key_id : started};
    char key[37];
    report_idempotency_key(parts, 4, key);
    struct sent sent = {0};
    int rc = report_send(h->http, &h->report, body, key, on_sent, &sent, err);
    cg_secret_free(body);
    if (rc == 0) {
        cg_http_run(h->http);
        if (sent.err.code != 0) {
            *err = sent.err;
            rc = err->code;
        }
    }
    return rc;
}

int handover_send(struct handover *h, const char *kind, const struct rc_list *entries, int drift,
                  const char *error, json_t *cred, json_t *file_doc, const char *key_id,
                  struct cg_err *err)
{
    if (h->report_on) {
        int rc = send_report(h, kind, entries, drift, error, cred, key_id, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (file_doc != NULL && h->o->credentials_out != NULL) {
        return write_file(h->o->credentials_out, file_doc, err);
    }
    return 0;
}

int handover_mark_delivered(struct handover *h, int *delivered, struct cg_err *err)
{
    *delivered = 0;
    /* Delivered means a channel took it: the platform's endpoint or the credentials file. */
    if (!handover_has_channel(h)) {
        return 0;
    }
    int rc = credstore_mark_delivered(&h->store, err);
    if (rc == 0) {
        h->stored.delivered = 1;
        *delivered = 1;
    }
    return rc;
}
