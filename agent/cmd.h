/* cmd: the commands that act on a cloud; each returns the process exit code and leaves a
 * one-line message in err when it fails. */
#ifndef CG_CMD_H
#define CG_CMD_H

#include "cg_err.h"
#include "cli.h"
#include "options.h"

/* What one run did, for watch's metrics. */
struct cg_run_stats {
    unsigned long reads;  /* cloud API reads */
    unsigned long writes; /* cloud API writes */
    size_t drift;         /* drift entries found */
    size_t remaining;     /* drift left after --fix */
    char summary[320];    /* one line saying what the run did (the Kubernetes termination
                             message); "" when it failed before doing anything */
};

/* plan, onboard, check [--fix], rotate, offboard on AWS. getenv_fn NULL = the process
 * environment. */
int cg_cmd_aws(const struct cg_options *o, cg_getenv_fn *getenv_fn, struct cg_err *err);
/* The same on the caller's loop, filling stats (may be NULL). */
struct uv_loop_s;
int cg_cmd_aws_on(struct uv_loop_s *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                  struct cg_run_stats *stats, struct cg_err *err);

/* The same on GCP (cmd_gcp.c). */
int cg_cmd_gcp_on(struct uv_loop_s *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                  struct cg_run_stats *stats, struct cg_err *err);

/* The command on the cluster's cloud: --provider, else what the nodes say (cmd_cloud.c). */
int cg_cmd_cloud_on(struct uv_loop_s *loop, const struct cg_options *o, cg_getenv_fn *getenv_fn,
                    struct cg_run_stats *stats, struct cg_err *err);

/* watch: periodic checks in one process (cmd_watch.c). */
int cg_cmd_watch(const struct cg_options *o, cg_getenv_fn *getenv_fn, struct cg_err *err);

#endif
