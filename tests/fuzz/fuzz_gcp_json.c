/* libFuzzer target: the Google API response parser (gcp_rest_parse_response) on hostile JSON.
 * Each input is parsed as a success answer (200), as an API error (403) and as a gateway error
 * (502). The invariants checked are the header's: a result is an object that serialises; an
 * error has no result, a one-line message that starts with "GCP <label>", the status it was
 * given, and error fields that are NUL-terminated identifiers (rpc, reason, service) or one
 * line (message). */
#include "gcp/gcp_rest.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int ident(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static void check(int rc, long status, json_t *result, const struct gcp_error *g,
                  const struct cg_err *err)
{
    if (rc == 0) {
        if (!json_is_object(result)) {
            __builtin_trap();
        }
        char *s = json_dumps(result, JSON_COMPACT);
        if (s == NULL) {
            __builtin_trap();
        }
        free(s);
        json_decref(result);
        return;
    }
    if (result != NULL || rc != err->code || strncmp(err->msg, "GCP fuzz: ", 10) != 0 ||
        strchr(err->msg, '\n') != NULL || g->status != status || !ident(g->rpc, sizeof(g->rpc)) ||
        !ident(g->reason, sizeof(g->reason)) || !ident(g->service, sizeof(g->service)) ||
        strnlen(g->message, sizeof(g->message)) == sizeof(g->message) ||
        strchr(g->message, '\n') != NULL || strchr(g->message, '\r') != NULL) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 403, 502};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        json_t *result = NULL;
        struct gcp_error g;
        struct cg_err err = {0};
        int rc = gcp_rest_parse_response((const char *)data, size, statuses[i], "fuzz", &result, &g,
                                         &err);
        check(rc, statuses[i], result, &g, &err);
    }
    return 0;
}
