/* cmd_flow: what plan, check [--fix], onboard, rotate and offboard do around a provider's
 * reconcile, the same on every cloud whose reconcile fills one result per run (GCP, Azure):
 * the hand-over guards, the order reconcile -> store -> deliver -> remove what was replaced,
 * the output in text and JSON, the one-line summary and the run's stats. A provider supplies
 * its nouns and a few operations on its own context and result types. */
#ifndef CG_CMD_FLOW_H
#define CG_CMD_FLOW_H

#include "cmd.h"
#include "handover.h"
#include "rc.h"
#include "rc_aws.h" /* enum rc_mode */

struct cmd_flow {
    void *ctx; /* the provider's, passed back to every operation */
    struct handover *ho;
    const char *profile;    /* the profile's name */
    const char *where;      /* "GCP project acme-prod-321" */
    const char *what;       /* "service account", "app registration" */
    const char *credential; /* "key", "client secret" */
    int hands_key;          /* the profile hands a credential over */
    const char *no_key;     /* why rotate has nothing to rotate, when !hands_key */
    size_t result_size;     /* sizeof the provider's result */
    struct rc_list *(*entries)(void *res);
    const char *(*principal)(void *ctx, void *res); /* the identity's name, for messages */
    int (*run)(void *ctx, enum rc_mode mode, void *res, struct cg_err *err);
    /* stores a new credential, hands over what is owed, marks it delivered, removes what it
     * replaced */
    int (*deliver)(void *ctx, const char *kind, struct rc_list *entries, int drift, void *res,
                   int *delivered, struct cg_err *err);
    int (*rotate)(void *ctx, void *res, int *delivered, struct cg_err *err);
    int (*has_new_key)(void *res); /* the run made a credential before it failed */
    void (*print)(void *ctx, const char *verb, void *res);
    void (*cleanup)(void *res);
    void (*counts)(void *ctx, unsigned long *reads, unsigned long *writes);
};

/* Runs o->command. Returns the exit code; err holds the message when it is not 0 or 3. */
int cmd_flow_run(const struct cmd_flow *f, const struct cg_options *o, struct k8s_client *k8s,
                 struct cg_run_stats *stats, struct cg_err *err);

#endif
