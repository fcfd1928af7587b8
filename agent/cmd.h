/* cmd: the commands that act on a cloud; each returns the process exit code and leaves a
 * one-line message in err when it fails. */
#ifndef CG_CMD_H
#define CG_CMD_H

#include "cg_err.h"
#include "cli.h"
#include "options.h"

/* plan, onboard, check [--fix], offboard on AWS. getenv_fn NULL = the process environment. */
int cg_cmd_aws(const struct cg_options *o, cg_getenv_fn *getenv_fn, struct cg_err *err);

#endif
