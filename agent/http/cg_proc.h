/* cg_proc: run a child process on the loop (uv_spawn) with an explicit argv and environment,
 * capture its stdout and stderr up to a cap, and report once when it has exited.
 * Used for kubeconfig exec credential plugins; never goes through a shell. */
#ifndef CG_PROC_H
#define CG_PROC_H

#include "../core/cg_err.h"

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;

struct cg_proc_result {
    int64_t exit_status; /* valid when term_signal == 0 */
    int term_signal;
    const char *out; /* stdout, NUL-terminated; valid during the callback only */
    size_t out_len;
    const char *err_out; /* stderr, NUL-terminated, capped */
    size_t err_len;
};

/* err is NULL when the process ran and exited (whatever its status); set when it could not be
 * started (CG_ENOTFOUND for a missing command), timed out (killed; CG_ETIMEDOUT) or wrote more
 * than the cap (CG_ETOOBIG). */
typedef void cg_proc_done_cb(const struct cg_proc_result *res, const struct cg_err *err,
                             void *data);

struct cg_proc_opts {
    const char *const *argv; /* argv[0] is the file; PATH lookup when it has no '/' */
    const char *const *envp; /* full environment, NULL-terminated; NULL = inherit */
    const char *cwd;         /* NULL = current */
    long timeout_ms;         /* 0 = 60 s */
    size_t max_output;       /* 0 = 1 MiB, for stdout and stderr each */
    const char *stdin_data;  /* NULL = /dev/null */
    size_t stdin_len;
};

/* 0: done runs exactly once from the loop. <0: err filled, done never runs. */
int cg_proc_run(struct uv_loop_s *loop, const struct cg_proc_opts *opts, cg_proc_done_cb *done,
                void *data, struct cg_err *err);

#endif
