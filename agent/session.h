/* session: what every command that talks to the cluster needs: the event loop, the HTTP
 * engine and a Kubernetes client, built from the options and the environment. */
#ifndef CG_AGENT_SESSION_H
#define CG_AGENT_SESSION_H

#include "cg_err.h"
#include "options.h"

#include <uv.h>

struct cg_session {
    uv_loop_t own_loop;
    uv_loop_t *loop; /* own_loop, or the caller's (watch runs every cycle on its loop) */
    struct cg_http *http;
    struct k8s_client *k8s;
    int in_cluster;
};

/* Returns 0, or CG_EINVAL / CG_ENOTFOUND for configuration problems (exit 2) and other
 * codes for failures (exit 1). On failure everything built so far is released. */
int cg_session_open(struct cg_session *s, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                    struct cg_err *err);
/* The same on a loop the caller owns (and keeps running after the session closes). */
int cg_session_open_on(struct cg_session *s, uv_loop_t *loop, const struct cg_options *o,
                       cg_getenv_fn *getenv_fn, struct cg_err *err);
/* Closes the engine, drains the loop and closes it. */
void cg_session_close(struct cg_session *s);

#endif
