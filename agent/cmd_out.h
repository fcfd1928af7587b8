/* cmd_out: what every cloud command prints, in text or JSON (design.md "Commands"), and the
 * small pieces the commands share. */
#ifndef CG_CMD_OUT_H
#define CG_CMD_OUT_H

#include "cmd.h"
#include "options.h"
#include "rc.h"

#include <jansson.h>
#include <stdio.h>

/* [{provider, kind, name, change[, id, detail]}]; drift entries use the drift words. */
json_t *cmd_entries_json(const struct rc_list *l, int drift);
/* One aligned line per entry, "+ kind name id  # detail". */
void cmd_print_entries(const struct rc_list *l, int drift, FILE *out);
/* Prints and releases root (indented, keys in order). */
void cmd_print_json(json_t *root);
int cmd_json_out(const struct cg_options *o);
/* The run's one-line outcome, kept in stats (may be NULL) for the termination message. */
void cmd_summarize(struct cg_run_stats *stats, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* --profiles-dir, else the installed share dir, else (a build tree) the source tree's. */
const char *cmd_profiles_dir(const struct cg_options *o);

#endif
