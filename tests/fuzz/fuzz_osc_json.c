/* libFuzzer target: the OUTSCALE answer parser and the config-file parser on hostile bytes.
 * Each input is parsed by osc_api_parse_response as a success (200), an API error (400), a
 * refused signature (401), a missing resource (404), a conflict (409) and a gateway error
 * (502), and by osc_profile_parse as ~/.osc/config.json (profile "default"). The invariants
 * checked are the headers': a result is an object that serialises; an error has no result, the
 * code it returned, the status it was given, a one-line message starting "OUTSCALE fuzz: ",
 * digits-only Code, identifier-only Type and RequestId, one-line Details, and its class follows
 * the status or the Type; a parsed profile has both keys; a refused one leaves nothing behind
 * and has a one-line message. */
#include "outscale/osc_api.h"
#include "outscale/osc_auth.h"

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

static int digits(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
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

static void check_answer(int rc, long status, json_t *result, const struct osc_error *o,
                         const struct cg_err *err)
{
    if (rc == 0) {
        if (!json_is_object(result) || status < 200 || status > 299) {
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
        strncmp(err->msg, "OUTSCALE fuzz: ", 15) != 0 || !one_line(err->msg, sizeof(err->msg)) ||
        o->status != status || !digits(o->code, sizeof(o->code)) ||
        !ident(o->type, sizeof(o->type)) || !ident(o->request_id, sizeof(o->request_id)) ||
        !one_line(o->details, sizeof(o->details))) {
        __builtin_trap();
    }
    int auth_type = strcmp(o->type, "AccessDenied") == 0 || strcmp(o->type, "AuthFailure") == 0;
    if (rc == CG_EAUTH && status != 401 && status != 403 && !auth_type) {
        __builtin_trap();
    }
    if (rc == CG_ENOTFOUND && status != 404 && strcmp(o->type, "InvalidResource") != 0) {
        __builtin_trap();
    }
    if (status >= 200 && status < 300 && rc != CG_EINVAL && rc != CG_ETOOBIG && rc != CG_ENOMEM) {
        __builtin_trap();
    }
    if ((status == 401 || status == 403) && rc != CG_EAUTH && rc != CG_ETOOBIG) {
        __builtin_trap();
    }
}

static void check_profile(const uint8_t *data, size_t size)
{
    static const struct osc_profile zero = {0};
    struct osc_profile p;
    struct cg_err err = {0};
    int rc = osc_profile_parse(&p, (const char *)data, size, "default", "/fuzz/config.json", &err);
    if (rc == 0) {
        if (p.access_key == NULL || p.secret_key == NULL || p.access_key[0] == '\0' ||
            p.secret_key[0] == '\0') {
            __builtin_trap();
        }
        osc_profile_cleanup(&p);
        if (memcmp(&p, &zero, sizeof(zero)) != 0) {
            __builtin_trap();
        }
        return;
    }
    if ((rc != CG_EINVAL && rc != CG_ENOMEM) || err.code != rc || err.msg[0] == '\0' ||
        !one_line(err.msg, sizeof(err.msg)) || memcmp(&p, &zero, sizeof(zero)) != 0) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 404, 409, 502};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        json_t *result = NULL;
        struct osc_error o;
        struct cg_err err = {0};
        int rc = osc_api_parse_response((const char *)data, size, statuses[i], "fuzz", &result, &o,
                                        &err);
        check_answer(rc, statuses[i], result, &o, &err);
    }
    check_profile(data, size);
    return 0;
}
