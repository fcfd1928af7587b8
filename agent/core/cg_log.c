#include "cg_log.h"

#include <jansson.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int cg_log_level = CG_LOG_WARN;
static enum cg_log_format log_format = CG_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void cg_log_setup(int level, enum cg_log_format format)
{
    cg_log_level = level;
    log_format = format;
}

int cg_log_parse_level(const char *s)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void cg_log_emit(int level, const char *mod, const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now.tv_nsec / 1000000) % 1000);
    const char *lvl = level >= 0 && level <= CG_LOG_TRACE ? level_names[level] : "?";
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    if (log_format == CG_LOG_JSON) {
        char src[128];
        snprintf(src, sizeof(src), "%s:%d", base, line);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ts", ts, "level", lvl, "mod", mod,
                              "msg", msg, "src", src);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s != NULL) {
            fprintf(stderr, "%s\n", s);
            free(s);
        }
        json_decref(o);
    } else {
        fprintf(stderr, "%s %-5s %s: %s\n", ts, lvl, mod, msg);
    }
}

int cg_log_header_is_secret(const char *line, size_t len)
{
    static const char *const names[] = {"authorization",
                                        "proxy-authorization",
                                        "x-amz-security-token",
                                        "x-aws-ec2-metadata-token",
                                        "x-aws-ec2-metadata-token-ttl-seconds",
                                        "cookie",
                                        "set-cookie",
                                        "metadata-flavor",
                                        "x-goog-iam-authorization-token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (len >= n && strncasecmp(line, names[i], n) == 0 && (len == n || line[n] == ':')) {
            return 1;
        }
    }
    return 0;
}
