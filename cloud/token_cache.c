/* cloud/token_cache.c: see token_cache.h. */
#include "token_cache.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cloud_token_waiter {
    cloud_token_cb *cb;
    void *data;
    struct cloud_token_waiter *next;
};

void cloud__token_slot_init(struct cloud_token_slot *s, struct cloud_token_owner *o,
                            const char *what, const char *mod, int64_t margin_s, int64_t stale_ok_s,
                            void (*refresh)(struct cloud_token_slot *s), void *data)
{
    memset(s, 0, sizeof(*s));
    s->owner = o;
    s->what = what;
    s->mod = mod;
    s->margin_s = margin_s;
    s->stale_ok_s = stale_ok_s;
    s->refresh = refresh;
    s->data = data;
    s->tail = &s->head;
}

void cloud__token_slot_cleanup(struct cloud_token_slot *s)
{
    cg_secret_free(s->token);
    s->token = NULL;
    s->expires_at = 0;
}

int cloud__token_slot_idle(const struct cloud_token_slot *s)
{
    return s->head == NULL && !s->refreshing && !s->kick_pending;
}

int cloud__token_owner_quiet(const struct cloud_token_owner *o)
{
    return o->dead && o->busy == 0 && o->delivering == 0;
}

int64_t cloud__token_remaining(const struct cloud_token_slot *s)
{
    return s->token != NULL ? s->expires_at - s->owner->now() : -1;
}

/* Answers every queued waiter with token (copied first: a callback may invalidate the cache or
 * free the provider) or err. Waiters added by the callbacks form a new queue. The provider may
 * be gone when this returns. */
static void deliver_all(struct cloud_token_slot *s, const char *token, const struct cg_err *err)
{
    struct cloud_token_owner *o = s->owner;
    struct cloud_token_waiter *w = s->head;
    struct cg_err nomem = {0};
    char *copy = NULL;
    s->head = NULL;
    s->tail = &s->head;
    if (token != NULL && (copy = strdup(token)) == NULL) {
        err = &nomem;
        cg_err_set(&nomem, CG_ENOMEM, "out of memory");
    }
    o->delivering++;
    while (w != NULL) {
        struct cloud_token_waiter *next = w->next;
        w->cb(copy, copy != NULL ? NULL : err, w->data);
        free(w);
        w = next;
    }
    o->delivering--;
    cg_secret_free(copy);
    o->release(o);
}

static void deliver_canceled(struct cloud_token_slot *s)
{
    struct cg_err e = {0};
    cg_err_set(&e, CG_ECANCELED, "%s request cancelled", s->what);
    deliver_all(s, NULL, &e);
}

static void kick(void *data, int canceled)
{
    struct cloud_token_slot *s = data;
    struct cloud_token_owner *o = s->owner;
    o->busy--;
    s->kick_pending = 0;
    if (canceled || o->dead) {
        deliver_canceled(s);
        return;
    }
    if (s->refreshing) {
        return; /* the running refresh answers the queue */
    }
    if (cloud__token_remaining(s) >= s->margin_s) {
        deliver_all(s, s->token, NULL);
        return;
    }
    s->refreshing = 1;
    s->refresh(s);
}

int cloud__token_get(struct cloud_token_slot *s, cloud_token_cb *cb, void *data)
{
    struct cloud_token_owner *o = s->owner;
    struct cloud_token_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return CG_ENOMEM;
    }
    w->cb = cb;
    w->data = data;
    struct cloud_token_waiter **prev_tail = s->tail;
    *s->tail = w;
    s->tail = &w->next;
    if (s->refreshing || s->kick_pending) {
        return 0;
    }
    /* even a cached token goes through the loop: cb never runs inside this call */
    int rc = cg_http_after(o->http, 0, kick, s);
    if (rc < 0) {
        *prev_tail = NULL;
        s->tail = prev_tail;
        free(w);
        return rc;
    }
    s->kick_pending = 1;
    o->busy++;
    return 0;
}

void cloud__token_done(struct cloud_token_slot *s, char *token, int64_t expires_in,
                       const struct cg_err *err)
{
    struct cloud_token_owner *o = s->owner;
    s->refreshing = 0;
    if (o->dead) {
        cg_secret_free(token);
        deliver_canceled(s);
        return;
    }
    if (token != NULL) {
        cg_secret_free(s->token);
        s->token = token;
        s->expires_at = o->now() + expires_in;
        deliver_all(s, s->token, NULL);
        return;
    }
    if (cloud__token_remaining(s) > s->stale_ok_s) {
        /* the token we hold still works for a while: the next call tries again */
        CG_LOG(CG_LOG_DEBUG, s->mod, "refreshing the %s failed, using the cached one: %s", s->what,
               err != NULL ? err->msg : "?");
        deliver_all(s, s->token, NULL);
        return;
    }
    struct cg_err fallback = {0};
    if (err == NULL) {
        cg_err_set(&fallback, CG_EAUTH, "%s: no token", s->what);
        err = &fallback;
    }
    deliver_all(s, NULL, err);
}

void cloud__token_invalidate(struct cloud_token_slot *s)
{
    cloud__token_slot_cleanup(s);
}

void cloud__token_cancel(struct cloud_token_slot *s)
{
    struct cloud_token_owner *o = s->owner;
    /* Waiters hear CG_ECANCELED from kick() now rather than when the request in flight ends.
     * If the engine is closing it refuses the timer, and cancels that request instead. (Inside
     * deliver_all the queue being answered is already detached: it gets its answer.) */
    if (s->head != NULL && !s->kick_pending && cg_http_after(o->http, 0, kick, s) == 0) {
        s->kick_pending = 1;
        o->busy++;
    }
}

/* ---- token answers ------------------------------------------------------------------------- */

json_t *cloud__token_answer_load(struct cg_http_req *req)
{
    size_t len = 0;
    char *body = cg_http_req_take_body(req, &len);
    if (body == NULL) {
        return NULL;
    }
    json_t *doc = json_loadb(body, len, 0, NULL);
    cg_wipe(body, len);
    free(body);
    return doc;
}

void cloud__token_answer_free(json_t *doc)
{
    static const char *const secrets[] = {"access_token", "id_token", "refresh_token"};
    for (size_t i = 0; json_is_object(doc) && i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        json_t *v = json_object_get(doc, secrets[i]);
        if (json_is_string(v)) {
            cg_wipe((char *)json_string_value(v), json_string_length(v));
        }
    }
    json_decref(doc);
}

int cloud__token_from_answer(json_t *doc, size_t max_token, int64_t max_expires_in, char **token,
                             int64_t *expires_in, const char **what)
{
    if (!json_is_object(doc)) {
        *what = "answer is not a JSON object";
        return CG_EINVAL;
    }
    json_t *at = json_object_get(doc, "access_token");
    const char *tok = json_string_value(at);
    size_t tlen = json_is_string(at) ? json_string_length(at) : 0;
    int ok = tok != NULL && tlen > 0 && tlen <= max_token && strlen(tok) == tlen;
    for (size_t i = 0; ok && i < tlen; i++) {
        ok = tok[i] > 0x20 && tok[i] < 0x7f; /* it goes into an Authorization header */
    }
    if (!ok) {
        *what = "answer has no usable access_token";
        return CG_EINVAL;
    }
    json_t *tt = json_object_get(doc, "token_type");
    if (tt != NULL && (!json_is_string(tt) || strcasecmp(json_string_value(tt), "Bearer") != 0)) {
        *what = "answer's token_type is not Bearer";
        return CG_EINVAL;
    }
    json_t *ex = json_object_get(doc, "expires_in");
    json_int_t secs = -1;
    if (json_is_integer(ex)) {
        secs = json_integer_value(ex);
    } else if (json_is_string(ex)) {
        const char *s = json_string_value(ex);
        size_t n = json_string_length(ex);
        /* digits only, and few enough that the value cannot overflow */
        int digits = n > 0 && n <= 12 && strlen(s) == n;
        for (size_t i = 0; digits && i < n; i++) {
            digits = isdigit((unsigned char)s[i]);
        }
        secs = digits ? (json_int_t)strtoll(s, NULL, 10) : -1;
    }
    if (secs <= 0) {
        *what = "answer has no valid expires_in";
        return CG_EINVAL;
    }
    *expires_in = secs > max_expires_in ? max_expires_in : (int64_t)secs;
    if ((*token = strdup(tok)) == NULL) {
        return CG_ENOMEM;
    }
    return 0;
}
