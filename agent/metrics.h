/* metrics: a small registry of counters and gauges with label sets, rendered in the Prometheus
 * text exposition format 0.0.4 for GET /metrics in watch mode.
 *
 * Pure (no I/O) and single-threaded: updates and rendering run on the watch loop.
 *
 * - Families are declared once by name ([a-zA-Z_:][a-zA-Z0-9_:]*) with a help text. Declaring
 *   the same name again with the same type is a no-op (the first help text stays), so modules
 *   need not coordinate; another type is CG_EINVAL.
 * - Series are created on first use. Labels are passed as "k1", "v1", "k2", "v2", ..., NULL;
 *   their order does not matter (they are kept sorted by name). Label names follow
 *   [a-zA-Z_][a-zA-Z0-9_]* and may not start with "__"; values are any string (bytes that are
 *   not valid UTF-8 become '?', so one odd value cannot make the whole page unparsable).
 * - Memory is bounded: at most CG_METRICS_MAX_FAMILIES families, CG_METRICS_MAX_SERIES series
 *   per family, CG_METRICS_MAX_LABELS labels and CG_METRICS_MAX_LABEL_BYTES bytes of rendered
 *   label set per series. A series over the per-family cap is dropped (the call still returns
 *   0, as the caller could do nothing better) and counted in
 *   cloudgrant_metrics_dropped_series_total, which every registry exposes. Updating existing
 *   series never allocates.
 * - Output is stable: families sorted by name, series by their rendered label set. */
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include <stddef.h>

struct cg_buf;
struct cg_metrics;

#define CG_METRICS_MAX_FAMILIES    256
#define CG_METRICS_MAX_SERIES      1000
#define CG_METRICS_MAX_LABELS      16
#define CG_METRICS_MAX_LABEL_BYTES 1024
#define CG_METRICS_DROPPED_NAME    "cloudgrant_metrics_dropped_series_total"
#define CG_METRICS_CONTENT_TYPE    "text/plain; version=0.0.4; charset=utf-8"

/* NULL on ENOMEM. */
struct cg_metrics *cg_metrics_new(void);
void cg_metrics_free(struct cg_metrics *m); /* NULL-safe */

/* Return 0, CG_EINVAL (bad name, declared with another type, too many families) or
 * CG_ENOMEM. */
int cg_metrics_counter(struct cg_metrics *m, const char *name, const char *help);
int cg_metrics_gauge(struct cg_metrics *m, const char *name, const char *help);

/* Labels: "k1", "v1", ..., NULL. Return 0 (also when the series was dropped over the cap),
 * CG_ENOTFOUND (family not declared), CG_EINVAL (wrong family type, bad label name, repeated
 * label, label set too large, negative or NaN counter increment) or CG_ENOMEM. */
int cg_metrics_add(struct cg_metrics *m, const char *name, double v, ...); /* counters */
int cg_metrics_set(struct cg_metrics *m, const char *name, double v, ...); /* gauges */

/* Appends the exposition to out; 0, CG_ENOMEM or CG_ETOOBIG (out's cap). */
int cg_metrics_render_to(const struct cg_metrics *m, struct cg_buf *out);
/* The exposition as a new string the caller frees; NULL on ENOMEM or over 16 MiB. */
char *cg_metrics_render(const struct cg_metrics *m);

/* For tests and self-monitoring: the number of series and the bytes the registry holds. */
void cg_metrics_stats(const struct cg_metrics *m, size_t *series, size_t *bytes);

/* A ready-made cg_httpd_handler for GET /metrics: data is the registry. */
int cg_metrics_http_handler(const char *path, struct cg_buf *body, const char **content_type,
                            void *data);

#endif
