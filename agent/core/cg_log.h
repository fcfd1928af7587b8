/* cg_log: leveled logging to stderr, text or one JSON object per line.
 *
 * CG_LOG checks the level before evaluating its arguments. Library modules (k8s/, cloud/,
 * agent/core, agent/http) log only at debug level; user-facing failures travel as cg_err.
 * Never pass a secret value to a log call: trace code redacts through cg_log_redact_header. */
#ifndef CG_LOG_H
#define CG_LOG_H

#include <stddef.h>

enum cg_log_level { CG_LOG_ERROR = 0, CG_LOG_WARN, CG_LOG_INFO, CG_LOG_DEBUG, CG_LOG_TRACE };
enum cg_log_format { CG_LOG_TEXT = 0, CG_LOG_JSON };

extern int cg_log_level;

void cg_log_setup(int level, enum cg_log_format format);
/* Parses "error|warn|info|debug|trace"; returns -1 when unknown. */
int cg_log_parse_level(const char *s);

void cg_log_emit(int level, const char *mod, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define CG_LOG(level, mod, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= cg_log_level) {                                                             \
            cg_log_emit((level), (mod), __FILE__, __LINE__, __VA_ARGS__);                          \
        }                                                                                          \
    } while (0)

/* Returns 1 when a header (name: value line or bare name) carries a credential and must be
 * printed as "<name>: <redacted>". */
int cg_log_header_is_secret(const char *line, size_t len);

#endif
