/* metrics: counters and gauges rendered as Prometheus text (see metrics.h).
 *
 * Families live in an array sorted by name and each family's series in an array sorted by
 * their rendered label set, so lookups are binary searches and rendering is a straight walk
 * that comes out in a stable order. A series is keyed by its label set already escaped and
 * rendered (`a="x",b="y"`), built in a scratch buffer of the registry: an update of an existing
 * series therefore allocates nothing. */
#include "metrics.h"

#include "cg_buf.h"
#include "cg_err.h"
#include "cg_log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { KIND_COUNTER, KIND_GAUGE };

struct series {
    char *labels; /* rendered label set without braces; "" for the unlabelled series */
    double value;
};

struct family {
    char *name;
    char *help;
    enum kind kind;
    struct series *series;
    size_t n;
    size_t cap;
};

struct cg_metrics {
    struct family *fam;
    size_t n;
    size_t cap;
    size_t bytes;                                 /* heap held by families and series */
    char scratch[CG_METRICS_MAX_LABEL_BYTES + 1]; /* the label set being looked up */
};

/* A metric name when colon, else a label name. */
static int is_name(const char *s, int colon)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes are not valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80) {
        return 1;
    }
    size_t len;
    unsigned long cp;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const unsigned long min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* Escapes s into dst[*pos..cap) the way the text format wants it: backslash and newline always,
 * the double quote inside label values. Returns -1 when it does not fit. */
static int escape_into(char *dst, size_t cap, size_t *pos, const char *s, int quote)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n) {
        char tmp[4];
        const char *out = tmp;
        size_t olen = 1;
        size_t adv = 1;
        if (p[i] == '\\') {
            out = "\\\\";
            olen = 2;
        } else if (p[i] == '\n') {
            out = "\\n";
            olen = 2;
        } else if (quote && p[i] == '"') {
            out = "\\\"";
            olen = 2;
        } else {
            adv = utf8_seq(p + i, n - i);
            if (adv == 0) {
                tmp[0] = '?';
                adv = 1;
            } else {
                out = s + i;
                olen = adv;
            }
        }
        if (olen > cap - *pos) {
            return -1;
        }
        memcpy(dst + *pos, out, olen);
        *pos += olen;
        i += adv;
    }
    return 0;
}

static struct family *find_family(const struct cg_metrics *m, const char *name, size_t *at)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, m->fam[mid].name);
        if (c == 0) {
            return &m->fam[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if (at != NULL) {
        *at = lo;
    }
    return NULL;
}

static struct series *find_series(const struct family *f, const char *labels, size_t *at)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(labels, f->series[mid].labels);
        if (c == 0) {
            return &f->series[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    *at = lo;
    return NULL;
}

static int declare(struct cg_metrics *m, const char *name, const char *help, enum kind kind)
{
    if (m == NULL || !is_name(name, 1)) {
        return CG_EINVAL;
    }
    size_t at = 0;
    struct family *f = find_family(m, name, &at);
    if (f != NULL) {
        return f->kind == kind ? 0 : CG_EINVAL;
    }
    if (m->n >= CG_METRICS_MAX_FAMILIES) {
        return CG_EINVAL;
    }
    if (m->n == m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        struct family *nf = realloc(m->fam, ncap * sizeof(*nf));
        if (nf == NULL) {
            return CG_ENOMEM;
        }
        m->bytes += (ncap - m->cap) * sizeof(*nf);
        m->fam = nf;
        m->cap = ncap;
    }
    char *n = strdup(name);
    char *h = strdup(help != NULL ? help : "");
    if (n == NULL || h == NULL) {
        free(n);
        free(h);
        return CG_ENOMEM;
    }
    m->bytes += strlen(n) + strlen(h) + 2;
    memmove(&m->fam[at + 1], &m->fam[at], (m->n - at) * sizeof(*m->fam));
    m->fam[at] = (struct family){.name = n, .help = h, .kind = kind};
    m->n++;
    return 0;
}

int cg_metrics_counter(struct cg_metrics *m, const char *name, const char *help)
{
    return declare(m, name, help, KIND_COUNTER);
}

int cg_metrics_gauge(struct cg_metrics *m, const char *name, const char *help)
{
    return declare(m, name, help, KIND_GAUGE);
}

/* Renders the label pairs of ap into m->scratch, sorted by name. */
static int build_labels(struct cg_metrics *m, va_list ap)
{
    const char *keys[CG_METRICS_MAX_LABELS];
    const char *vals[CG_METRICS_MAX_LABELS];
    size_t n = 0;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL) {
            break;
        }
        const char *v = va_arg(ap, const char *);
        if (n == CG_METRICS_MAX_LABELS || v == NULL || !is_name(k, 0) || strncmp(k, "__", 2) == 0) {
            return CG_EINVAL;
        }
        /* insertion sort: a handful of labels at most */
        size_t i = n;
        while (i > 0 && strcmp(keys[i - 1], k) > 0) {
            keys[i] = keys[i - 1];
            vals[i] = vals[i - 1];
            i--;
        }
        if (i > 0 && strcmp(keys[i - 1], k) == 0) {
            return CG_EINVAL;
        }
        keys[i] = k;
        vals[i] = v;
        n++;
    }
    size_t cap = CG_METRICS_MAX_LABEL_BYTES;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strlen(keys[i]);
        if (klen + 3 + (i > 0) > cap - pos) {
            return CG_EINVAL;
        }
        if (i > 0) {
            m->scratch[pos++] = ',';
        }
        memcpy(m->scratch + pos, keys[i], klen);
        pos += klen;
        m->scratch[pos++] = '=';
        m->scratch[pos++] = '"';
        if (escape_into(m->scratch, cap, &pos, vals[i], 1) < 0 || pos == cap) {
            return CG_EINVAL;
        }
        m->scratch[pos++] = '"';
    }
    m->scratch[pos] = '\0';
    return 0;
}

/* Returns the series for m->scratch in f, creating it; *dropped is set when the cap refused it. */
static int get_series(struct cg_metrics *m, struct family *f, struct series **out, int *dropped)
{
    size_t at = 0;
    struct series *s = find_series(f, m->scratch, &at);
    if (s != NULL) {
        *out = s;
        return 0;
    }
    if (f->n >= CG_METRICS_MAX_SERIES) {
        *dropped = 1;
        return 0;
    }
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        if (ncap > CG_METRICS_MAX_SERIES) {
            ncap = CG_METRICS_MAX_SERIES;
        }
        struct series *ns = realloc(f->series, ncap * sizeof(*ns));
        if (ns == NULL) {
            return CG_ENOMEM;
        }
        m->bytes += (ncap - f->cap) * sizeof(*ns);
        f->series = ns;
        f->cap = ncap;
    }
    char *labels = strdup(m->scratch);
    if (labels == NULL) {
        return CG_ENOMEM;
    }
    m->bytes += strlen(labels) + 1;
    memmove(&f->series[at + 1], &f->series[at], (f->n - at) * sizeof(*f->series));
    f->series[at] = (struct series){.labels = labels, .value = 0};
    f->n++;
    *out = &f->series[at];
    return 0;
}

static void count_dropped(struct cg_metrics *m, const char *family)
{
    struct family *f = find_family(m, CG_METRICS_DROPPED_NAME, NULL);
    if (f != NULL && f->n == 1) {
        f->series[0].value += 1;
    }
    CG_LOG(CG_LOG_DEBUG, "metrics", "dropped a new series of '%s': over %d series", family,
           CG_METRICS_MAX_SERIES);
}

static int update(struct cg_metrics *m, const char *name, enum kind kind, double v, va_list ap)
{
    if (m == NULL || name == NULL) {
        return CG_EINVAL;
    }
    struct family *f = find_family(m, name, NULL);
    if (f == NULL) {
        return CG_ENOTFOUND;
    }
    if (f->kind != kind || isnan(v) || (kind == KIND_COUNTER && v < 0)) {
        return CG_EINVAL;
    }
    int rc = build_labels(m, ap);
    if (rc < 0) {
        return rc;
    }
    struct series *s = NULL;
    int dropped = 0;
    rc = get_series(m, f, &s, &dropped);
    if (rc < 0) {
        return rc;
    }
    if (dropped) {
        count_dropped(m, name);
        return 0;
    }
    if (kind == KIND_COUNTER) {
        s->value += v;
    } else {
        s->value = v;
    }
    return 0;
}

int cg_metrics_add(struct cg_metrics *m, const char *name, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    int rc = update(m, name, KIND_COUNTER, v, ap);
    va_end(ap);
    return rc;
}

int cg_metrics_set(struct cg_metrics *m, const char *name, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    int rc = update(m, name, KIND_GAUGE, v, ap);
    va_end(ap);
    return rc;
}

struct cg_metrics *cg_metrics_new(void)
{
    struct cg_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->bytes = sizeof(*m);
    /* The dropped counter exists from the start with its one series at 0, so alerts on it work
     * before anything was ever dropped. */
    if (cg_metrics_counter(m, CG_METRICS_DROPPED_NAME,
                           "New series refused because their family reached its series cap.") < 0 ||
        cg_metrics_add(m, CG_METRICS_DROPPED_NAME, 0, (const char *)NULL) < 0) {
        cg_metrics_free(m);
        return NULL;
    }
    return m;
}

void cg_metrics_free(struct cg_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        struct family *f = &m->fam[i];
        for (size_t j = 0; j < f->n; j++) {
            free(f->series[j].labels);
        }
        free(f->series);
        free(f->name);
        free(f->help);
    }
    free(m->fam);
    free(m);
}

/* Shortest of %.15g and %.17g that reads back as the same double, so 0.1 prints as 0.1 and
 * integers print without a fraction. */
static void format_value(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, n, "%.15g", v);
        if (strtod(out, NULL) != v) {
            snprintf(out, n, "%.17g", v);
        }
    }
}

static int append_help(struct cg_buf *out, const struct family *f)
{
    if (f->help[0] == '\0') {
        return 0;
    }
    /* Help comes from code, but escape it anyway: one stray newline would break the page. */
    size_t len = strlen(f->help);
    size_t cap = len * 2 + 1;
    char *esc = malloc(cap);
    if (esc == NULL) {
        return CG_ENOMEM;
    }
    size_t pos = 0;
    escape_into(esc, cap, &pos, f->help, 0); /* fits: each byte becomes at most two */
    esc[pos] = '\0';
    int rc = cg_buf_printf(out, "# HELP %s %s\n", f->name, esc);
    free(esc);
    return rc;
}

int cg_metrics_render_to(const struct cg_metrics *m, struct cg_buf *out)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct family *f = &m->fam[i];
        int rc = append_help(out, f);
        if (rc < 0) {
            return rc;
        }
        rc = cg_buf_printf(out, "# TYPE %s %s\n", f->name,
                           f->kind == KIND_COUNTER ? "counter" : "gauge");
        if (rc < 0) {
            return rc;
        }
        for (size_t j = 0; j < f->n; j++) {
            const struct series *s = &f->series[j];
            char val[40];
            format_value(val, sizeof(val), s->value);
            if ((rc = cg_buf_append_str(out, f->name)) < 0) {
                return rc;
            }
            if (s->labels[0] != '\0' && ((rc = cg_buf_append(out, "{", 1)) < 0 ||
                                         (rc = cg_buf_append_str(out, s->labels)) < 0 ||
                                         (rc = cg_buf_append(out, "}", 1)) < 0)) {
                return rc;
            }
            if ((rc = cg_buf_printf(out, " %s\n", val)) < 0) {
                return rc;
            }
        }
    }
    return 0;
}

char *cg_metrics_render(const struct cg_metrics *m)
{
    struct cg_buf b;
    cg_buf_init(&b, 0);
    if (cg_metrics_render_to(m, &b) < 0) {
        cg_buf_cleanup(&b);
        return NULL;
    }
    return cg_buf_steal(&b, NULL);
}

void cg_metrics_stats(const struct cg_metrics *m, size_t *series, size_t *bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        n += m->fam[i].n;
    }
    if (series != NULL) {
        *series = n;
    }
    if (bytes != NULL) {
        *bytes = m->bytes;
    }
}

int cg_metrics_http_handler(const char *path, struct cg_buf *body, const char **content_type,
                            void *data)
{
    const struct cg_metrics *m = data;
    if (cg_metrics_render_to(m, body) < 0) {
        cg_buf_reset(body);
        *content_type = "text/plain; charset=utf-8";
        cg_buf_append_str(body, "cannot render metrics\n");
        return 500;
    }
    *content_type = CG_METRICS_CONTENT_TYPE;
    return 200;
}
