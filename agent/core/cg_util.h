/* cg_util: small helpers that several modules need: files, base64, strings. */
#ifndef CG_UTIL_H
#define CG_UTIL_H

#include "cg_err.h"

#include <stddef.h>
#include <stdint.h>

/* Reads a whole file of at most `limit` bytes into a new NUL-terminated buffer that the
 * caller frees (cg_secret_free for secrets). Errors name the path. */
int cg_file_read(const char *path, size_t limit, char **out, size_t *len, struct cg_err *err);

/* Decodes standard base64 (whitespace ignored, padding optional) into a new buffer that the
 * caller frees; NUL-terminated for convenience. Returns CG_EINVAL on bad input. */
int cg_b64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);
/* Encodes to a new NUL-terminated string (standard alphabet, padded); NULL on ENOMEM. */
char *cg_b64_encode(const unsigned char *in, size_t len);

/* strdup that returns NULL for NULL. */
char *cg_strdup0(const char *s);
/* A new formatted string (caller frees); NULL on ENOMEM. */
char *cg_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Returns the directory part of path as a new string ("." when none). */
char *cg_dirname(const char *path);
/* Joins dir and a relative path; returns a copy of path when it is absolute. */
char *cg_path_join(const char *dir, const char *path);

/* Copies len bytes of s into dst (cap bytes) for quoting in a one-line message: control
 * characters become '?', and a value longer than fits ends in "...". Returns dst. */
const char *cg_printable_n(char *dst, size_t cap, const char *s, size_t len);

/* Trims ASCII whitespace at both ends, in place; returns s. */
char *cg_trim(char *s);

/* Parses an RFC 3339 timestamp ("2026-11-22T10:00:00Z", fractions and +hh:mm offsets allowed)
 * into seconds since the epoch. Returns 0 or CG_EINVAL. */
int cg_parse_rfc3339(const char *s, int64_t *epoch);
/* Formats seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void cg_format_rfc3339(int64_t epoch, char *buf, size_t len);
/* A duration: "1h", "15m", "30s", "500ms", "1h30m", "90" (seconds), in milliseconds; -1 when
 * it is not one. */
long long cg_parse_duration_ms(const char *s);
/* Milliseconds from a monotonic clock. */
uint64_t cg_now_ms(void);

/* Plain http:// is allowed only to loopback hosts (tests) unless the user opted in.
 * Returns 0 for https://, for http:// to localhost/127.0.0.0/8/[::1], or when allow_insecure;
 * CG_EINVAL with a message naming `what` otherwise (also for other schemes). */
int cg_url_check_transport(const char *url, int allow_insecure, const char *what,
                           struct cg_err *err);

#endif
