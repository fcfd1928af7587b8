/* libFuzzer target: the AWS Query response parser (aws_query_parse_response) on hostile XML.
 * Each input is parsed as a success answer, with the action taken from its first
 * "<...Response" element so the Result conversion is reached, and as an error answer. The
 * invariants checked are the header's: a result is an object that serialises, an error has a
 * one-line message and no result. */
#include "aws_query.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int ident(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* The action named by the first "<Name...Response" (namespace prefix allowed), else "". */
static void action_of(const uint8_t *data, size_t size, char *out, size_t cap)
{
    out[0] = '\0';
    const uint8_t *p = memmem(data, size, "Response", 8);
    while (p != NULL) {
        size_t end = (size_t)(p - data);
        size_t start = end;
        while (start > 0 && ident(data[start - 1]) && end - start < cap - 1) {
            start--;
        }
        if (start < end && start > 0 && (data[start - 1] == '<' || data[start - 1] == ':')) {
            memcpy(out, data + start, end - start);
            out[end - start] = '\0';
            return;
        }
        size_t off = end + 8;
        p = off < size ? memmem(data + off, size - off, "Response", 8) : NULL;
    }
}

static void check(int rc, json_t *result, const struct aws_error *aerr, const struct cg_err *err)
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
    if (result != NULL || err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL ||
        strchr(aerr->message, '\n') != NULL || strchr(aerr->code, '\n') != NULL) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char action[65];
    action_of(data, size, action, sizeof(action));
    static const long statuses[] = {200, 409};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        json_t *result = NULL;
        struct aws_error aerr;
        struct cg_err err = {0};
        const char *act = i == 0 && action[0] != '\0' ? action : "CreateUser";
        int rc = aws_query_parse_response((const char *)data, size, statuses[i], act, &result,
                                          &aerr, &err);
        check(rc, result, &aerr, &err);
    }
    return 0;
}
