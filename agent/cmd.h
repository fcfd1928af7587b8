/* cmd: the commands that act on a cloud; each returns the process exit code and leaves a
 * one-line message in err when it fails. */
#ifndef CG_CMD_H
#define CG_CMD_H

#include "cg_err.h"
#include "cli.h"
#include "identity.h"
#include "options.h"
#include "session.h"

/* What one run did, for watch's metrics. */
struct cg_run_stats {
    unsigned long reads;  /* cloud API reads */
    unsigned long writes; /* cloud API writes */
    size_t drift;         /* drift entries found */
    size_t remaining;     /* drift left after --fix */
    char provider[16];    /* the cloud the run acted on ("aws", ...); "" when not known */
    char summary[320];    /* one line saying what the run did (the Kubernetes termination
                             message); "" when it failed before doing anything */
};

/* What every cloud command starts from, made once per run: the session (loop, engine,
 * Kubernetes client) and the cluster's identity. */
struct cmd_base {
    struct cg_session s;
    struct cg_identity id;
    int id_ok;
};
struct uv_loop_s;
/* Opens the session on `loop` (NULL: its own) and reads the identity. <0 with err:
 * CG_EINVAL/CG_ENOTFOUND for a bad configuration, CG_EIO when the cluster could not be read. */
int cmd_base_open(struct cmd_base *b, struct uv_loop_s *loop, const struct cg_options *o,
                  cg_getenv_fn *getenv_fn, struct cg_err *err);
/* Closes the session (idempotent: a command may close it early) and frees the identity. */
void cmd_base_close(struct cmd_base *b);

/* plan, onboard, check [--fix], rotate, offboard on the base's cluster, filling stats (may be
 * NULL). getenv_fn NULL = the process environment. Each returns the exit code. */
int cg_cmd_aws_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                   struct cg_run_stats *stats, struct cg_err *err);
int cg_cmd_gcp_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                   struct cg_run_stats *stats, struct cg_err *err);
int cg_cmd_azure_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                     struct cg_run_stats *stats, struct cg_err *err);
int cg_cmd_outscale_run(struct cmd_base *b, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                        struct cg_run_stats *stats, struct cg_err *err);

/* identity on AKS: the cluster's name from the AKS tags of its node resource group in ARM,
 * when it is still unknown and Azure credentials are configured (AZURE_CLIENT_ID). Best
 * effort: a failure is logged and leaves the name unknown. Needs the session open. */
void cg_azure_identity_enrich(struct cmd_base *b, const struct cg_options *o,
                              cg_getenv_fn *getenv_fn);

/* The command on the cluster's cloud (--provider, else what the nodes say), on `loop` (NULL:
 * its own) (cmd_cloud.c). */
int cg_cmd_cloud_on(struct uv_loop_s *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                    struct cg_run_stats *stats, struct cg_err *err);

/* watch: periodic checks in one process (cmd_watch.c). */
int cg_cmd_watch(const struct cg_options *o, cg_getenv_fn *getenv_fn, struct cg_err *err);

#endif
