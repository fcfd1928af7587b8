/* Internal to cloud/: a cached bearer token, the calls waiting for it and the one refresh that
 * serves them all, plus the pieces of an OAuth token answer every source reads the same way.
 * cloud/gcp/auth.c keeps its one token in a slot; cloud/azure/auth.c keeps one slot per
 * resource.
 *
 * A provider embeds one `struct cloud_token_owner` (its engine, clock and lifetime counters)
 * and one `struct cloud_token_slot` per token it caches. Rules the provider keeps:
 * - every engine request or timer that will call back into the provider counts in
 *   owner->busy while pending (the slots count their own timers);
 * - a refresh, started by the slot through slot->refresh, ends with exactly one
 *   cloud__token_done, now or later (a failure before any request included);
 * - freeing: set owner->dead, call cloud__token_cancel on every slot, then owner->release;
 *   owner->release frees the provider once cloud__token_owner_quiet and cloud__token_slot_idle
 *   for every slot say nothing will call back. The slots call owner->release after every
 *   delivery and every timer of theirs.
 * Every answer reaches the waiters from the loop (a zero-delay timer), never inside
 * cloud__token_get, even for a cached token. */
#ifndef CG_CLOUD_TOKEN_CACHE_H
#define CG_CLOUD_TOKEN_CACHE_H

#include "cg_err.h"

#include <jansson.h>
#include <stdint.h>

struct cg_http;
struct cg_http_req;

typedef void cloud_token_cb(const char *token, const struct cg_err *err, void *data);

struct cloud_token_owner {
    struct cg_http *http; /* borrowed */
    int64_t (*now)(void); /* wall clock, seconds */
    int busy;             /* engine callbacks (requests, timers) that will come back */
    int delivering;       /* inside waiters' callbacks */
    int dead;             /* the provider's owner freed it */
    void (*release)(struct cloud_token_owner *o); /* frees the provider when dead and idle */
};

struct cloud_token_waiter;

struct cloud_token_slot {
    struct cloud_token_owner *owner;
    const char *what;   /* "GCP token", "Azure token for ARM": messages and debug logs */
    const char *mod;    /* log module: "gcp", "azure" */
    int64_t margin_s;   /* refreshed when fewer seconds than this remain */
    int64_t stale_ok_s; /* a failed refresh still delivers a token with more seconds left */
    void (*refresh)(struct cloud_token_slot *s); /* starts a refresh (see above) */
    void *data;                                  /* the provider's, for refresh */

    char *token; /* the cache (secret); NULL when none */
    int64_t expires_at;
    int refreshing;   /* a refresh is in flight: new waiters join it */
    int kick_pending; /* a zero-delay timer will serve the queue */
    struct cloud_token_waiter *head;
    struct cloud_token_waiter **tail;
};

void cloud__token_slot_init(struct cloud_token_slot *s, struct cloud_token_owner *o,
                            const char *what, const char *mod, int64_t margin_s, int64_t stale_ok_s,
                            void (*refresh)(struct cloud_token_slot *s), void *data);
/* Wipes the cached token. Only for a slot nobody waits on (cloud__token_slot_idle). */
void cloud__token_slot_cleanup(struct cloud_token_slot *s);

/* Queues cb for the slot's token: from the cache when at least margin_s remain, else from a
 * refresh (the running one, or one started from the loop). 0: cb runs exactly once, later.
 * <0 (the engine refused the timer: CG_ECANCELED when it is closing, CG_ENOMEM): cb never runs
 * and err is left to the caller. The caller refuses calls once owner->dead is set. */
int cloud__token_get(struct cloud_token_slot *s, cloud_token_cb *cb, void *data);

/* Ends the refresh: token (taken, a secret; NULL on failure) becomes the cache for expires_in
 * seconds and goes to every waiter. On failure, a cached token with more than stale_ok_s left
 * is delivered instead of err. A dead owner's waiters get CG_ECANCELED. May release the
 * provider: touch nothing of it afterwards. */
void cloud__token_done(struct cloud_token_slot *s, char *token, int64_t expires_in,
                       const struct cg_err *err);

/* Forgets the cached token; a refresh in flight is not affected. */
void cloud__token_invalidate(struct cloud_token_slot *s);

/* For a dead owner: waiters that no refresh will answer hear CG_ECANCELED from the loop (or,
 * when the engine is closing, as it cancels the request in flight). */
void cloud__token_cancel(struct cloud_token_slot *s);

/* Seconds the cached token still has; -1 when there is none. */
int64_t cloud__token_remaining(const struct cloud_token_slot *s);

/* 1 when no waiter, refresh or timer of the slot is pending. */
int cloud__token_slot_idle(const struct cloud_token_slot *s);
/* 1 when the owner may be freed: dead, no engine callback or delivery pending. The slots are
 * checked by the provider with cloud__token_slot_idle. */
int cloud__token_owner_quiet(const struct cloud_token_owner *o);

/* ---- token answers ---- */

/* Loads a JSON answer from a finished request, wiping every copy of the body made on the way
 * (a 200 carries the token). NULL when it is not JSON. */
json_t *cloud__token_answer_load(struct cg_http_req *req);
/* json_decref that first wipes the token members jansson copied. NULL-safe. */
void cloud__token_answer_free(json_t *doc);

/* {"access_token","expires_in","token_type"}: 0 with *token (a new secret string) and
 * *expires_in (seconds, at most max_expires_in; expires_in may be a number or a string of
 * digits, as Azure's IMDS sends it), or CG_EINVAL with *what saying what is wrong (never a
 * value), or CG_ENOMEM. The token must be one header-safe word of at most max_token bytes;
 * token_type, when present, must be Bearer. */
int cloud__token_from_answer(json_t *doc, size_t max_token, int64_t max_expires_in, char **token,
                             int64_t *expires_in, const char **what);

#endif
