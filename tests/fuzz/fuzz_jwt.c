/* libFuzzer target: JWT handling. The agent reads one claim of a token it did not make: the
 * tenant (`tid`) of an Azure access token (from Entra ID or the instance metadata service),
 * which names the token endpoint for Microsoft Graph.
 *
 * The first byte picks the mode. 0: the rest is the whole token, as hostile as it comes; a
 * tenant read from it must be usable as a URL path segment. 1: the rest is the claims JSON,
 * wrapped here in a well-formed token (base64url, no padding, as Entra ID sends it); then the
 * tenant read must be exactly the claim's value when that value is usable, and NULL when not,
 * which checks the decoding as well as the safety. */
#include "azure/azure_auth.h"

#include "cg_util.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int usable(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* nesting depth of a parsed document: the agent refuses answers deeper than 32 */
static int depth(json_t *v)
{
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            int c = depth(m);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            int c = depth(m);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

/* "eyJhbGciOiJSUzI1NiJ9.<claims, base64url>.sig"; NULL when out of memory */
static char *wrap(const uint8_t *claims, size_t n)
{
    char *b64 = cg_b64_encode(claims, n);
    if (b64 == NULL) {
        return NULL;
    }
    size_t len = strlen(b64);
    while (len > 0 && b64[len - 1] == '=') {
        len--;
    }
    for (size_t i = 0; i < len; i++) {
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    }
    static const char head[] = "eyJhbGciOiJSUzI1NiJ9.";
    char *tok = malloc(sizeof(head) + len + 5);
    if (tok != NULL) {
        memcpy(tok, head, sizeof(head) - 1);
        memcpy(tok + sizeof(head) - 1, b64, len);
        memcpy(tok + sizeof(head) - 1 + len, ".sig", 5);
    }
    free(b64);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    int mode = data[0] & 1;
    data++;
    size--;
    char *tok = NULL;
    if (mode == 0) {
        tok = malloc(size + 1);
        if (tok != NULL) {
            memcpy(tok, data, size);
            tok[size] = '\0';
        }
    } else {
        tok = wrap(data, size);
    }
    if (tok == NULL) {
        return 0;
    }
    char *tid = azure__token_tenant(tok);
    if (tid != NULL && !usable(tid)) {
        __builtin_trap();
    }
    if (mode == 1) {
        /* the oracle: jansson on the same claims, without duplicate keys (whose winner is a
         * parser's choice), within the agent's depth limit */
        json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        if (doc != NULL && depth(doc) <= 32) {
            const char *want = json_string_value(json_object_get(doc, "tid"));
            int want_ok = want != NULL && usable(want);
            if (want_ok ? (tid == NULL || strcmp(tid, want) != 0) : tid != NULL) {
                __builtin_trap();
            }
        }
        json_decref(doc);
    }
    free(tid);
    free(tok);
    return 0;
}
