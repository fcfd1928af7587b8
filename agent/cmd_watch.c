/* agent/cmd_watch.c: `watch`: drift checks on a timer in one long-running process, with
 * /healthz and /metrics for the platform's monitoring.
 *
 * Everything runs on one libuv loop: the timer, the signal handlers, the HTTP server and
 * every check's cloud and Kubernetes calls. Between checks the loop serves HTTP; during a
 * check it serves HTTP too, because the check's requests run on the same loop. The long-lived
 * handles are unreferenced, so a check's cg_http_run returns as soon as its own work is
 * done. */
#include "cg_buf.h"
#include "cg_log.h"
#include "cg_util.h"
#include "cmd.h"
#include "httpd.h"
#include "metrics.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

struct watch {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct cg_httpd *httpd;
    struct cg_metrics *metrics;
    int stop;
    int waiting; /* between checks: the loop may be stopped */
    int due;
    int last_ok;
    int64_t last_success;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct watch *w = h->data;
    CG_LOG(CG_LOG_INFO, "watch", "signal %d: stopping after the check in progress", signum);
    w->stop = 1;
    /* Only the wait between checks is interrupted: stopping the loop in the middle of a check
     * would return from its requests' uv_run with their callbacks still pending. */
    if (w->waiting) {
        uv_stop(&w->loop);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct watch *w = t->data;
    w->due = 1;
    uv_stop(&w->loop);
}

static int healthz(const char *path, struct cg_buf *body, const char **content_type, void *data)
{
    struct watch *w = data;
    (void)path;
    *content_type = "text/plain; charset=utf-8";
    /* healthy while the last check completed (drift is a finding, not a failure) */
    cg_buf_append_str(body, w->last_ok ? "ok\n" : "last check failed\n");
    return w->last_ok ? 200 : 503;
}

static void declare_metrics(struct cg_metrics *m)
{
    cg_metrics_counter(m, "cloudgrant_checks_total", "Drift checks run, by result.");
    cg_metrics_counter(m, "cloudgrant_drift_found_total", "Drift entries found.");
    cg_metrics_counter(m, "cloudgrant_repairs_total", "Drift entries repaired by --fix.");
    cg_metrics_counter(m, "cloudgrant_api_calls_total", "Cloud API calls, by provider and kind.");
    cg_metrics_counter(m, "cloudgrant_errors_total", "Failed checks, by provider and code.");
    cg_metrics_gauge(m, "cloudgrant_drift", "Drift entries left after the last check.");
    cg_metrics_gauge(m, "cloudgrant_last_success_timestamp_seconds",
                     "When a check last completed.");
}

static const char *errc_label(int code)
{
    switch (code) {
    case CG_EAUTH:
        return "auth";
    case CG_ETIMEDOUT:
        return "timeout";
    case CG_EHTTP:
        return "transport";
    case CG_ESTATUS:
        return "status";
    case CG_EINVAL:
        return "invalid";
    default:
        return "other";
    }
}

static void run_check(struct watch *w, const struct cg_options *o, cg_getenv_fn *getenv_fn)
{
    struct cg_options co = *o;
    co.command = CG_CMD_CHECK;
    struct cg_run_stats st = {0};
    struct cg_err err = {0};
    int code = cg_cmd_cloud_on(&w->loop, &co, getenv_fn, &st, &err);
    const char *result = code == CG_EXIT_OK ? "ok" : code == CG_EXIT_DRIFT ? "drift" : "error";
    const char *provider = st.provider[0] != '\0' ? st.provider : "unknown";
    cg_metrics_add(w->metrics, "cloudgrant_checks_total", 1, "result", result, NULL);
    cg_metrics_add(w->metrics, "cloudgrant_api_calls_total", (double)st.reads, "provider", provider,
                   "kind", "read", NULL);
    cg_metrics_add(w->metrics, "cloudgrant_api_calls_total", (double)st.writes, "provider",
                   provider, "kind", "write", NULL);
    if (code == CG_EXIT_OK || code == CG_EXIT_DRIFT) {
        w->last_ok = 1;
        w->last_success = (int64_t)time(NULL);
        cg_metrics_add(w->metrics, "cloudgrant_drift_found_total", (double)st.drift, NULL);
        if (o->fix && st.drift >= st.remaining) {
            cg_metrics_add(w->metrics, "cloudgrant_repairs_total",
                           (double)(st.drift - st.remaining), NULL);
        }
        cg_metrics_set(w->metrics, "cloudgrant_drift", (double)st.remaining, NULL);
        cg_metrics_set(w->metrics, "cloudgrant_last_success_timestamp_seconds",
                       (double)w->last_success, NULL);
    } else {
        w->last_ok = 0;
        cg_metrics_add(w->metrics, "cloudgrant_errors_total", 1, "provider", provider, "code",
                       errc_label(err.code), NULL);
        CG_LOG(CG_LOG_ERROR, "watch", "check failed: %s", err.msg);
    }
}

/* The next wait: the interval with up to 10 % jitter either way, so a fleet of agents started
 * together does not call the cloud APIs in lockstep. */
static uint64_t next_delay(long long interval_ms)
{
    unsigned int r = 0;
    RAND_bytes((unsigned char *)&r, sizeof(r));
    double j = ((double)r / (double)UINT32_MAX) * 0.2 - 0.1;
    long long d = interval_ms + (long long)((double)interval_ms * j);
    return d > 0 ? (uint64_t)d : 1;
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

int cg_cmd_watch(const struct cg_options *o, cg_getenv_fn *getenv_fn, struct cg_err *err)
{
    long long interval = o->interval ? cg_parse_duration_ms(o->interval) : 3600000;
    if (interval < 1000) {
        cg_err_set(err, CG_EINVAL,
                   "--interval '%s' is not a duration of at least 1s (e.g. 1h, "
                   "15m, 30s)",
                   o->interval ? o->interval : "");
        return CG_EXIT_USAGE;
    }
    if (o->profile == NULL) {
        cg_err_set(err, CG_EINVAL, "'watch' needs --profile NAME|PATH");
        return CG_EXIT_USAGE;
    }
    struct watch w;
    memset(&w, 0, sizeof(w));
    w.last_ok = 1; /* healthy until a check says otherwise */
    if (uv_loop_init(&w.loop) != 0) {
        cg_err_set(err, CG_EIO, "cannot start the event loop");
        return CG_EXIT_FAIL;
    }
    w.metrics = cg_metrics_new();
    if (w.metrics == NULL) {
        uv_loop_close(&w.loop);
        cg_err_set(err, CG_ENOMEM, "out of memory");
        return CG_EXIT_FAIL;
    }
    declare_metrics(w.metrics);
    uv_timer_init(&w.loop, &w.timer);
    w.timer.data = &w;
    uv_signal_init(&w.loop, &w.sigterm);
    uv_signal_init(&w.loop, &w.sigint);
    w.sigterm.data = w.sigint.data = &w;
    uv_signal_start(&w.sigterm, on_signal, SIGTERM);
    uv_signal_start(&w.sigint, on_signal, SIGINT);
    /* Long-lived handles must not keep a check's cg_http_run from returning. */
    uv_unref((uv_handle_t *)&w.sigterm);
    uv_unref((uv_handle_t *)&w.sigint);
    int code = CG_EXIT_OK;
    if (o->listen != NULL) {
        if (cg_httpd_start(&w.httpd, &w.loop, o->listen, err) < 0) {
            code = CG_EXIT_USAGE;
            goto out;
        }
        cg_httpd_route(w.httpd, "/healthz", healthz, &w);
        cg_httpd_route(w.httpd, "/metrics", cg_metrics_http_handler, w.metrics);
        CG_LOG(CG_LOG_INFO, "watch", "serving /healthz and /metrics on port %d",
               cg_httpd_port(w.httpd));
    }
    while (!w.stop) {
        uint64_t started = cg_now_ms();
        run_check(&w, o, getenv_fn);
        fflush(stdout);
        if (w.stop) {
            break;
        }
        /* "A check every interval": the interval runs from one check's start to the next's,
         * so the schedule does not slip by each check's duration. A check that outlasted it
         * is followed by the next at once, not by a burst of the ones it missed. */
        uint64_t period = next_delay(interval);
        uint64_t took = cg_now_ms() - started;
        uint64_t wait = took < period ? period - took : 0;
        if (wait == 0) {
            CG_LOG(CG_LOG_WARN, "watch",
                   "the check took %.1f s, longer than the interval (%.1f s this time): the next "
                   "one starts now",
                   (double)took / 1000.0, (double)period / 1000.0);
        }
        /* Wait for the timer (or a signal), serving HTTP meanwhile: the timer is the one
         * referenced handle, and its callback stops the loop. */
        w.due = 0;
        w.waiting = 1;
        uv_timer_start(&w.timer, on_timer, wait, 0);
        while (!w.due && !w.stop) {
            uv_run(&w.loop, UV_RUN_DEFAULT);
        }
        uv_timer_stop(&w.timer);
        w.waiting = 0;
    }
    CG_LOG(CG_LOG_INFO, "watch", "stopped");
out:
    if (w.httpd != NULL) {
        cg_httpd_close(w.httpd);
    }
    uv_close((uv_handle_t *)&w.timer, close_cb);
    uv_close((uv_handle_t *)&w.sigterm, close_cb);
    uv_close((uv_handle_t *)&w.sigint, close_cb);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w.loop) != 0) {
        CG_LOG(CG_LOG_DEBUG, "watch", "event loop closed with handles still open");
    }
    cg_metrics_free(w.metrics);
    return code;
}
