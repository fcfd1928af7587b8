/* libFuzzer target: the HTTP request parser of the watch-mode server, fed hostile heads.
 *
 * Besides crashes it checks the parser's contract: outputs are NUL-terminated and in range,
 * and parsing is incremental, so a prefix of the input either needs more bytes or gives the
 * same verdict as the whole (what the server relies on when a request arrives in pieces). */
#include "httpd.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int run(const char *buf, size_t len, char *method, char *path, size_t *consumed)
{
    *consumed = 0;
    return cg_httpd_parse_request(buf, len, method, CG_HTTPD_METHOD_MAX, path, CG_HTTPD_PATH_MAX,
                                  consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char method[CG_HTTPD_METHOD_MAX];
    char path[CG_HTTPD_PATH_MAX];
    size_t consumed = 0;
    int rc = run(buf, size, method, path, &consumed);
    if (rc != 0 && rc != 1 && rc != 400 && rc != 414 && rc != 431) {
        __builtin_trap();
    }
    if (rc == 0) {
        if (consumed == 0 || consumed > size || consumed > CG_HTTPD_MAX_HEAD ||
            memchr(method, '\0', sizeof(method)) == NULL || method[0] == '\0' ||
            memchr(path, '\0', sizeof(path)) == NULL || path[0] != '/' ||
            strchr(path, '?') != NULL) {
            __builtin_trap();
        }
    }
    if (rc == 1 && size >= CG_HTTPD_MAX_HEAD) {
        __builtin_trap(); /* a full window must get a verdict */
    }
    /* a few prefixes: each needs more bytes or agrees with the whole input */
    size_t cuts[] = {size / 2, size > 0 ? size - 1 : 0, consumed > 0 ? consumed - 1 : 0};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char m2[CG_HTTPD_METHOD_MAX];
        char p2[CG_HTTPD_PATH_MAX];
        size_t c2 = 0;
        int r2 = run(buf, cuts[i], m2, p2, &c2);
        if (r2 == 1) {
            continue;
        }
        if (r2 != rc ||
            (rc == 0 && (c2 != consumed || strcmp(m2, method) != 0 || strcmp(p2, path) != 0))) {
            __builtin_trap();
        }
    }
    return 0;
}
