/* agent/lease.c: one run at a time per credential (lease.h). */
#include "lease.h"

#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"
#include "k8s_client.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

struct lease {
    struct k8s_client *k8s; /* borrowed */
    struct cg_http *http;   /* borrowed */
    char *path;             /* /apis/coordination.k8s.io/v1/namespaces/<ns>/leases/<name> */
    char *where;            /* "<ns>/<name>" for messages */
    char holder[160];
    long duration_s;
    json_t *obj; /* the Lease as last written or read */
    uv_timer_t renew;
    int renewing; /* a renewal is in flight */
    int lost;
};

struct call {
    long status;
    json_t *body;
    struct cg_err err;
};

static void on_done(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct call *c = data;
    c->status = status;
    c->body = json_incref(body);
    if (err != NULL) {
        c->err = *err;
    }
}

/* One call, run to completion. */
static int call(struct lease *l, const char *method, const char *path, json_t *body,
                struct call *out)
{
    memset(out, 0, sizeof(*out));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = k8s_client_call(l->k8s, method, path, text, on_done, out, &out->err);
    free(text);
    if (rc < 0) {
        return rc;
    }
    cg_http_run(l->http);
    return 0;
}

static void now_micro(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%06ldZ", date, ts.tv_nsec / 1000);
}

/* The spec this holder writes: taking (transition) or renewing the Lease. */
static json_t *spec(const struct lease *l, json_t *old, int take)
{
    char now[40];
    now_micro(now, sizeof(now));
    json_t *s = json_pack("{s:s, s:I, s:s}", "holderIdentity", l->holder, "leaseDurationSeconds",
                          (json_int_t)l->duration_s, "renewTime", now);
    json_t *acq = json_object_get(old, "acquireTime");
    json_int_t transitions = json_integer_value(json_object_get(old, "leaseTransitions"));
    if (s != NULL) {
        json_object_set_new(s, "acquireTime",
                            take || acq == NULL ? json_string(now) : json_incref(acq));
        json_object_set_new(s, "leaseTransitions",
                            json_integer(transitions + (take && old != NULL ? 1 : 0)));
    }
    return s;
}

/* Whether the Lease is free for us: no holder, ours, or not renewed within its duration. */
static int free_for(const struct lease *l, json_t *obj, char *holder, size_t n, long *left_s)
{
    json_t *s = json_object_get(obj, "spec");
    const char *h = json_string_value(json_object_get(s, "holderIdentity"));
    snprintf(holder, n, "%s", h ? h : "");
    *left_s = 0;
    if (h == NULL || h[0] == '\0' || strcmp(h, l->holder) == 0) {
        return 1;
    }
    int64_t renewed = 0;
    json_int_t dur = json_integer_value(json_object_get(s, "leaseDurationSeconds"));
    if (cg_parse_rfc3339(json_string_value(json_object_get(s, "renewTime")), &renewed) < 0) {
        return 1; /* a holder that never renewed holds nothing */
    }
    int64_t left = renewed + (int64_t)dur - (int64_t)time(NULL);
    *left_s = left > 0 ? (long)left : 0;
    return left <= 0;
}

static int rbac_hint(struct lease *l, struct call *c, struct cg_err *err)
{
    if (c->status == 401 || c->status == 403) {
        return cg_err_set(err, CG_EAUTH,
                          "cannot take Lease %s, which keeps two runs from onboarding at once: "
                          "%s; the agent's service account needs get, create and update on "
                          "leases (coordination.k8s.io) in its namespace",
                          l->where, c->err.msg);
    }
    *err = c->err;
    return cg_err_wrap(err, "cannot take Lease %s", l->where);
}

static void on_renewed(long status, json_t *body, const struct cg_err *err, void *data)
{
    struct lease *l = data;
    l->renewing = 0;
    if (err == NULL && json_is_object(body)) {
        json_decref(l->obj);
        l->obj = json_incref(body);
        return;
    }
    /* 409: someone wrote it since our last write, which only a holder that took it over after
     * it expired can do. The run goes on (its writes are idempotent), but say so. */
    l->lost = status == 409;
    CG_LOG(CG_LOG_WARN, "lease", "renewing Lease %s: %s", l->where,
           err ? err->msg : "invalid answer");
}

static void on_renew_timer(uv_timer_t *t)
{
    struct lease *l = t->data;
    if (l->renewing || l->lost || l->obj == NULL) {
        return;
    }
    json_t *obj = json_deep_copy(l->obj);
    json_t *s = spec(l, json_object_get(l->obj, "spec"), 0);
    char *text = NULL;
    if (obj != NULL && s != NULL) {
        json_object_set_new(obj, "spec", s);
        s = NULL;
        text = json_dumps(obj, JSON_COMPACT);
    }
    json_decref(s);
    json_decref(obj);
    struct cg_err err = {0};
    if (text != NULL && k8s_client_call(l->k8s, "PUT", l->path, text, on_renewed, l, &err) == 0) {
        l->renewing = 1;
    } else if (text != NULL) {
        CG_LOG(CG_LOG_WARN, "lease", "renewing Lease %s: %s", l->where, err.msg);
    }
    free(text);
}

struct wait {
    int fired;
};

static void on_wait(void *data, int canceled)
{
    (void)canceled;
    ((struct wait *)data)->fired = 1;
}

static void lease_free(struct lease *l)
{
    json_decref(l->obj);
    free(l->path);
    free(l->where);
    free(l);
}

static void on_closed(uv_handle_t *h)
{
    lease_free(h->data);
}

/* Tries once: 1 taken, 0 held by another (holder, left_s filled), <0 error. */
static int try_take(struct lease *l, const char *ns, char *holder, size_t n, long *left_s,
                    struct cg_err *err)
{
    struct call c;
    int rc = call(l, "GET", l->path, NULL, &c);
    if (rc < 0) {
        *err = c.err;
        return rc;
    }
    json_t *want = NULL;
    const char *method = "PUT";
    const char *path = l->path;
    char *coll = NULL;
    if (c.status == 404) {
        const char *name = strrchr(l->path, '/') + 1;
        json_t *s = spec(l, NULL, 1);
        want = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:o}", "apiVersion",
                         "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", name,
                         "namespace", ns, "labels", "app.kubernetes.io/managed-by", "cloudgrant",
                         "spec", s);
        method = "POST";
        coll = cg_strfmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns);
        path = coll;
    } else if (c.err.code != 0 || !json_is_object(c.body)) {
        rc = c.err.code ? rbac_hint(l, &c, err)
                        : cg_err_set(err, CG_EINVAL, "Lease %s: invalid answer", l->where);
        json_decref(c.body);
        return rc;
    } else if (!free_for(l, c.body, holder, n, left_s)) {
        json_decref(c.body);
        return 0;
    } else {
        /* the resourceVersion read goes back: a concurrent taker makes this a 409 */
        want = json_deep_copy(c.body);
        json_t *s = spec(l, json_object_get(c.body, "spec"), 1);
        if (want != NULL && s != NULL) {
            json_object_set_new(want, "spec", s);
        } else {
            json_decref(s);
        }
    }
    json_decref(c.body);
    if (want == NULL || path == NULL) {
        json_decref(want);
        free(coll);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    rc = call(l, method, path, want, &c);
    json_decref(want);
    free(coll);
    if (rc < 0) {
        *err = c.err;
        return rc;
    }
    if (c.status == 409) {
        json_decref(c.body);
        snprintf(holder, n, "%s", "another run");
        *left_s = 0; /* someone else took or made it just now: look again at once */
        return 0;
    }
    if (c.err.code != 0 || !json_is_object(c.body)) {
        rc = c.err.code ? rbac_hint(l, &c, err)
                        : cg_err_set(err, CG_EINVAL, "Lease %s: invalid answer", l->where);
        json_decref(c.body);
        return rc;
    }
    l->obj = c.body;
    return 1;
}

int lease_acquire(struct lease **out, struct k8s_client *k8s, const char *ns, const char *name,
                  long duration_s, long wait_s, struct cg_err *err)
{
    *out = NULL;
    struct lease *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    l->k8s = k8s;
    l->http = k8s_client_http(k8s);
    l->duration_s = duration_s;
    l->path = cg_strfmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", ns, name);
    l->where = cg_strfmt("%s/%s", ns, name);
    char host[64] = "";
    unsigned char rnd[4] = {0};
    gethostname(host, sizeof(host) - 1);
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(l->holder, sizeof(l->holder), "%s/%ld/%02x%02x%02x%02x", host[0] ? host : "cloudgrant",
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
    if (l->path == NULL || l->where == NULL) {
        lease_free(l);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    uint64_t deadline = cg_now_ms() + (uint64_t)wait_s * 1000u;
    int said = 0;
    for (;;) {
        char holder[160] = "";
        long left = 0;
        int rc = try_take(l, ns, holder, sizeof(holder), &left, err);
        if (rc < 0) {
            lease_free(l);
            return rc;
        }
        if (rc == 1) {
            break;
        }
        uint64_t now = cg_now_ms();
        if (now >= deadline) {
            rc = cg_err_set(err, CG_ETIMEDOUT,
                            "another cloudgrant run (%s) holds Lease %s: it is working on the "
                            "same credential; waited %ld s. Run again once it is done, or delete "
                            "the Lease if that run is gone",
                            holder, l->where, wait_s);
            lease_free(l);
            return rc;
        }
        if (!said) {
            CG_LOG(CG_LOG_WARN, "lease", "waiting for %s to release Lease %s (expires in %ld s)",
                   holder, l->where, left);
            said = 1;
        }
        /* poll: soon after a release, at the latest when it expires */
        long ms = left > 0 && left < 2 ? left * 1000 : 2000;
        uint64_t rest = deadline - now;
        if ((uint64_t)ms > rest) {
            ms = (long)rest;
        }
        unsigned char j = 0;
        RAND_bytes(&j, 1);
        struct wait w = {0};
        if (cg_http_after(l->http, ms + j, on_wait, &w) == 0) {
            cg_http_run(l->http);
        }
    }
    uv_loop_t *loop = cg_http_loop(l->http);
    uv_timer_init(loop, &l->renew);
    l->renew.data = l;
    uint64_t every = (uint64_t)duration_s * 1000u / 3u;
    uv_timer_start(&l->renew, on_renew_timer, every ? every : 1, every ? every : 1);
    uv_unref((uv_handle_t *)&l->renew); /* renewing never keeps a finished run alive */
    CG_LOG(CG_LOG_DEBUG, "lease", "took Lease %s as %s", l->where, l->holder);
    *out = l;
    return 0;
}

void lease_release(struct lease *l)
{
    if (l == NULL) {
        return;
    }
    uv_timer_stop(&l->renew);
    cg_http_run(l->http); /* a renewal in flight lands first */
    if (!l->lost && l->obj != NULL) {
        json_t *obj = json_deep_copy(l->obj);
        json_t *s = json_object_get(obj, "spec");
        if (s != NULL) {
            json_object_del(s, "holderIdentity");
            json_object_set_new(s, "leaseDurationSeconds", json_integer(1));
        }
        struct call c = {0};
        if (obj != NULL && call(l, "PUT", l->path, obj, &c) == 0 && c.err.code != 0) {
            CG_LOG(CG_LOG_INFO, "lease", "releasing Lease %s: %s (it expires by itself)", l->where,
                   c.err.msg);
        }
        json_decref(c.body);
        json_decref(obj);
    }
    uv_close((uv_handle_t *)&l->renew, on_closed);
    cg_http_run(l->http);
}
