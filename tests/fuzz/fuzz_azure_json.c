/* libFuzzer target: the Azure answer parsers on hostile JSON. Each input is parsed by
 * azure_rest_parse_response as a success answer (200), an API error (403), a missing resource
 * (404) and a gateway error (502), and by azure_auth_parse_answer as a token answer (200) and a
 * refusal (401). The invariants checked are the headers': a result is an object that
 * serialises; an error has no result, a one-line message that starts with "Azure <label>", the
 * status it was given, an identifier-only code and a one-line message field; a token is one
 * header-safe word with an expiry of 1 s to a day; a refused token answer has no token and a
 * one-line message. */
#include "azure/azure_auth.h"
#include "azure/azure_rest.h"

#include "cg_buf.h"

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

static int one_line(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n < cap && memchr(s, '\n', n) == NULL && memchr(s, '\r', n) == NULL;
}

static void check_rest(int rc, long status, json_t *result, const struct azure_error *a,
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
    if (result != NULL || rc != err->code || err->http_status != status ||
        strncmp(err->msg, "Azure fuzz: ", 12) != 0 || !one_line(err->msg, sizeof(err->msg)) ||
        a->status != status || !ident(a->code, sizeof(a->code)) ||
        !one_line(a->message, sizeof(a->message))) {
        __builtin_trap();
    }
    if (rc == CG_ENOTFOUND && status != 404) {
        __builtin_trap();
    }
}

static void check_token(int rc, long status, char *token, int64_t expires_in,
                        const struct cg_err *err)
{
    if (rc == 0) {
        size_t n = token != NULL ? strlen(token) : 0;
        if (status != 200 || n == 0 || expires_in < 1 || expires_in > 86400) {
            __builtin_trap();
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f) {
                __builtin_trap();
            }
        }
        cg_secret_free(token);
        return;
    }
    if (token != NULL || rc != err->code || err->http_status != status ||
        !one_line(err->msg, sizeof(err->msg))) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 403, 404, 502};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        json_t *result = NULL;
        struct azure_error a;
        struct cg_err err = {0};
        int rc = azure_rest_parse_response((const char *)data, size, statuses[i], "fuzz", &result,
                                           &a, &err);
        check_rest(rc, statuses[i], result, &a, &err);
    }
    static const long token_statuses[] = {200, 401};
    for (size_t i = 0; i < sizeof(token_statuses) / sizeof(token_statuses[0]); i++) {
        char *token = NULL;
        int64_t expires_in = 0;
        struct cg_err err = {0};
        int rc = azure_auth_parse_answer((const char *)data, size, token_statuses[i], &token,
                                         &expires_in, &err);
        check_token(rc, token_statuses[i], token, expires_in, &err);
    }
    return 0;
}
