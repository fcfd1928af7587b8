/* cg_proc: uv_spawn with captured output, a deadline and an output cap (see cg_proc.h).
 *
 * Every uv handle of a run lives in one struct proc. `done` runs from the close callback of the
 * last handle, which by construction comes after the process exited and after both output
 * pipes reached EOF (or were given up on at the deadline or the cap), so the result is final.
 *
 * stdin is a socketpair that we write with send(MSG_NOSIGNAL) rather than a uv_pipe: a child
 * that exits without reading its input must not kill us with SIGPIPE. */
#include "cg_proc.h"

#include "../core/cg_buf.h"

#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 60000L
#define DEFAULT_MAX_OUTPUT ((size_t)1024 * 1024)
#define CHUNK              16384

struct proc {
    uv_process_t process;
    uv_pipe_t out;
    uv_pipe_t err;
    uv_poll_t in_poll; /* only while there is stdin left to write */
    uv_timer_t timer;
    int nopen; /* initialised handles not yet closed */
    int spawned;
    int exited;
    int out_done;
    int err_done;
    int in_open;
    int in_fd;
    int64_t exit_status;
    int term_signal;
    int failed; /* CG_ETIMEDOUT, CG_ETOOBIG or CG_ENOMEM */
    const char *failed_stream;
    long timeout_ms;
    size_t max_output;
    struct cg_buf out_buf; /* sensitive: exec credential plugins print tokens */
    struct cg_buf err_buf;
    char *in_data;
    size_t in_len;
    size_t in_off;
    char *cmd;
    cg_proc_done_cb *done;
    void *data;
    char out_chunk[CHUNK];
    char err_chunk[CHUNK];
};

static void proc_free(struct proc *p)
{
    cg_buf_cleanup(&p->out_buf);
    cg_buf_cleanup(&p->err_buf);
    cg_wipe(p->out_chunk, sizeof(p->out_chunk));
    if (p->in_data != NULL) {
        cg_wipe(p->in_data, p->in_len);
        free(p->in_data);
    }
    free(p->cmd);
    free(p);
}

static void finish(struct proc *p)
{
    if (p->spawned) {
        struct cg_proc_result res = {
            .exit_status = p->exit_status,
            .term_signal = p->term_signal,
            .out = p->out_buf.data != NULL ? p->out_buf.data : "",
            .out_len = p->out_buf.len,
            .err_out = p->err_buf.data != NULL ? p->err_buf.data : "",
            .err_len = p->err_buf.len,
        };
        struct cg_err err = {0};
        char dur[32];
        switch (p->failed) {
        case 0:
            break;
        case CG_ETIMEDOUT:
            if (p->timeout_ms % 1000 == 0) {
                snprintf(dur, sizeof(dur), "%ld s", p->timeout_ms / 1000);
            } else {
                snprintf(dur, sizeof(dur), "%ld ms", p->timeout_ms);
            }
            cg_err_set(&err, CG_ETIMEDOUT, "running '%s': timed out after %s (killed)", p->cmd,
                       dur);
            break;
        case CG_ETOOBIG:
            cg_err_set(&err, CG_ETOOBIG, "running '%s': more than %zu bytes on %s (killed)", p->cmd,
                       p->max_output, p->failed_stream);
            break;
        default:
            cg_err_set(&err, p->failed, "running '%s': out of memory", p->cmd);
            break;
        }
        p->done(&res, p->failed ? &err : NULL, p->data);
    }
    proc_free(p); /* wipes stdout */
}

static void on_closed(uv_handle_t *handle)
{
    struct proc *p = handle->data;
    if (handle == (uv_handle_t *)&p->in_poll) {
        close(p->in_fd);
        p->in_fd = -1;
    }
    if (--p->nopen == 0) {
        finish(p);
    }
}

static void close_handle(uv_handle_t *handle)
{
    if (!uv_is_closing(handle)) {
        uv_close(handle, on_closed);
    }
}

static void close_stdin(struct proc *p)
{
    if (p->in_open) {
        p->in_open = 0;
        uv_poll_stop(&p->in_poll);
        close_handle((uv_handle_t *)&p->in_poll); /* the descriptor goes in on_closed */
    }
}

/* The run is over once the child exited and both output streams are closed; then the
 * remaining handles go, and the last close callback reports. */
static void maybe_wrap_up(struct proc *p)
{
    if (p->exited && p->out_done && p->err_done) {
        uv_timer_stop(&p->timer);
        close_handle((uv_handle_t *)&p->timer);
        close_stdin(p);
    }
}

static void kill_child(struct proc *p)
{
    if (!p->exited) {
        uv_process_kill(&p->process, SIGKILL);
    }
}

static void close_stream(struct proc *p, uv_pipe_t *pipe)
{
    int *done = pipe == &p->out ? &p->out_done : &p->err_done;
    if (!*done) {
        *done = 1;
        uv_read_stop((uv_stream_t *)pipe);
        close_handle((uv_handle_t *)pipe);
    }
    maybe_wrap_up(p);
}

static void fail(struct proc *p, int code, const char *stream)
{
    if (!p->failed) {
        p->failed = code;
        p->failed_stream = stream;
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct proc *p = handle->data;
    if (handle == (uv_handle_t *)&p->out) {
        *buf = uv_buf_init(p->out_chunk, sizeof(p->out_chunk));
    } else {
        *buf = uv_buf_init(p->err_chunk, sizeof(p->err_chunk));
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct proc *p = stream->data;
    int is_out = stream == (uv_stream_t *)&p->out;
    if (nread > 0) {
        int rc = cg_buf_append(is_out ? &p->out_buf : &p->err_buf, buf->base, (size_t)nread);
        if (rc < 0) {
            fail(p, rc == CG_ETOOBIG ? CG_ETOOBIG : CG_ENOMEM, is_out ? "stdout" : "stderr");
            kill_child(p);
            /* the run has failed: do not wait for a grandchild to release the other stream */
            close_stream(p, &p->out);
            close_stream(p, &p->err);
        }
    } else if (nread < 0) {
        /* EOF or a read error: either way nothing more comes from this stream */
        close_stream(p, is_out ? &p->out : &p->err);
    }
}

static void on_stdin_writable(uv_poll_t *poll, int status, int events)
{
    struct proc *p = poll->data;
    while (status >= 0 && p->in_off < p->in_len) {
        ssize_t n = send(p->in_fd, p->in_data + p->in_off, p->in_len - p->in_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p->in_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* wait for the next writable event */
        } else {
            break; /* the child stopped reading (EPIPE...): its exit status will tell */
        }
    }
    close_stdin(p); /* EOF for the child */
}

static void on_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal)
{
    struct proc *p = process->data;
    p->exited = 1;
    p->exit_status = exit_status;
    p->term_signal = term_signal;
    close_handle((uv_handle_t *)process);
    maybe_wrap_up(p);
}

static void on_timeout(uv_timer_t *timer)
{
    struct proc *p = timer->data;
    fail(p, CG_ETIMEDOUT, NULL);
    kill_child(p);
    /* a grandchild may hold the pipes open forever: stop waiting for their EOF */
    close_stream(p, &p->out);
    close_stream(p, &p->err);
}

static void close_all(struct proc *p)
{
    close_handle((uv_handle_t *)&p->out);
    close_handle((uv_handle_t *)&p->err);
    close_handle((uv_handle_t *)&p->timer);
    close_handle((uv_handle_t *)&p->process);
    close_stdin(p);
}

int cg_proc_run(struct uv_loop_s *loop, const struct cg_proc_opts *opts, cg_proc_done_cb *done,
                void *data, struct cg_err *err)
{
    int sv[2] = {-1, -1};
    int rc;
    if (loop == NULL || opts == NULL || opts->argv == NULL || opts->argv[0] == NULL ||
        done == NULL || (opts->stdin_data == NULL && opts->stdin_len > 0)) {
        return cg_err_set(err, CG_EINVAL, "invalid process options");
    }
    const char *cmd = opts->argv[0];
    struct proc *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "cannot run '%s': out of memory", cmd);
    }
    p->in_fd = -1;
    p->done = done;
    p->data = data;
    p->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->max_output = opts->max_output > 0 ? opts->max_output : DEFAULT_MAX_OUTPUT;
    cg_buf_init(&p->out_buf, p->max_output);
    p->out_buf.sensitive = 1;
    cg_buf_init(&p->err_buf, p->max_output);
    p->cmd = strdup(cmd);
    if (p->cmd == NULL) {
        proc_free(p);
        return cg_err_set(err, CG_ENOMEM, "cannot run '%s': out of memory", cmd);
    }
    if (opts->stdin_data != NULL) {
        p->in_len = opts->stdin_len;
        p->in_data = malloc(p->in_len > 0 ? p->in_len : 1);
        if (p->in_data == NULL) {
            proc_free(p);
            return cg_err_set(err, CG_ENOMEM, "cannot run '%s': out of memory", cmd);
        }
        memcpy(p->in_data, opts->stdin_data, p->in_len);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            rc = cg_err_set(err, CG_EIO, "cannot run '%s': cannot create a pipe: %s", cmd,
                            strerror(errno));
            proc_free(p);
            return rc;
        }
        shutdown(sv[0], SHUT_RD); /* our end only writes */
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
        p->in_fd = sv[0];
    }

    /* From here on every handle is initialised before anything can fail, so one path
     * (close_all, then the last close callback) releases everything. */
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_timer_init(loop, &p->timer);
    p->out.data = p->err.data = p->timer.data = p->process.data = p->in_poll.data = p;
    p->nopen = 3;
    if (p->in_fd >= 0) {
        rc = uv_poll_init_socket(loop, &p->in_poll, p->in_fd);
        if (rc == 0) {
            p->in_open = 1;
            p->nopen++;
        } else {
            close(p->in_fd);
            p->in_fd = -1;
        }
    }

    uv_stdio_container_t stdio[3];
    memset(stdio, 0, sizeof(stdio));
    if (opts->stdin_data != NULL) {
        stdio[0].flags = UV_INHERIT_FD; /* dup2'ed onto 0 in the child, which clears CLOEXEC */
        stdio[0].data.fd = sv[1];
    } else {
        stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null */
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;

    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.exit_cb = on_exit_cb;
    o.file = cmd;
    o.args = (char **)opts->argv; /* libuv does not write through these */
    o.env = (char **)opts->envp;
    o.cwd = opts->cwd;
    o.stdio_count = 3;
    o.stdio = stdio;

    rc = uv_spawn(loop, &p->process, &o);
    p->nopen++; /* uv_spawn initialises the process handle even when it fails */
    if (sv[1] >= 0) {
        close(sv[1]); /* the child has its copy */
    }
    if (rc != 0) {
        int code = rc == UV_ENOENT ? CG_ENOTFOUND : CG_EIO;
        if (rc == UV_ENOENT && opts->cwd != NULL && access(opts->cwd, F_OK) != 0) {
            cg_err_set(err, code, "cannot run '%s': no such directory '%s'", cmd, opts->cwd);
        } else {
            cg_err_set(err, code, "cannot run '%s': %s", cmd, uv_strerror(rc));
        }
        close_all(p); /* frees p from the last close callback, without calling done */
        return code;
    }
    p->spawned = 1;

    if (uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read) != 0) {
        close_stream(p, &p->out);
    }
    if (uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read) != 0) {
        close_stream(p, &p->err);
    }
    if (p->in_open) {
        if (p->in_len == 0 || uv_poll_start(&p->in_poll, UV_WRITABLE, on_stdin_writable) != 0) {
            close_stdin(p);
        }
    }
    uv_timer_start(&p->timer, on_timeout, (uint64_t)p->timeout_ms, 0);
    return 0;
}
