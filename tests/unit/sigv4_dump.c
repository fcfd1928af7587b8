/* Test-only driver for tests/sigv4_diff.py: signs requests read from stdin, one JSON object a
 * line, and prints one JSON object a line with what the signer produced.
 *
 * In:  {"scheme":"aws"|"osc", "method", "host", "path", "query" (or null), "headers": [[n, v]...],
 *       "body_hex", "region", "service", "now", "akid", "secret", "token" (or null)}
 *      With "url" instead of host/path/query, the request goes through aws_sigv4_sign_http on
 *      a cg_http request that is never sent (headers as given, body from body_hex).
 * Out: {"canonical_request", "string_to_sign", "signature", "authorization", "date"}, or for
 *      "url" {"authorization", "date", "token"} (the headers set on the request), or
 *      {"error": "..."}. */
#include "aws_sigv4.h"

#include "cg_http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *unhex(const char *s, size_t *n)
{
    size_t l = s != NULL ? strlen(s) : 0;
    unsigned char *b = malloc(l / 2 + 1);
    if (b == NULL) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < l; i += 2) {
        unsigned v;
        sscanf(s + i, "%2x", &v);
        b[i / 2] = (unsigned char)v;
    }
    *n = l / 2;
    return b;
}

static json_t *sign_direct(json_t *in, const struct aws_sigv4_scheme *sc,
                           const struct aws_credentials *cr, const void *body, size_t blen)
{
    json_t *hs = json_object_get(in, "headers");
    size_t nh = json_array_size(hs);
    struct aws_sigv4_header *h = calloc(nh + 1, sizeof(*h));
    for (size_t i = 0; i < nh; i++) {
        h[i].name = json_string_value(json_array_get(json_array_get(hs, i), 0));
        h[i].value = json_string_value(json_array_get(json_array_get(hs, i), 1));
    }
    struct aws_sigv4_input si = {
        .method = json_string_value(json_object_get(in, "method")),
        .host = json_string_value(json_object_get(in, "host")),
        .path = json_string_value(json_object_get(in, "path")),
        .query = json_string_value(json_object_get(in, "query")),
        .headers = h,
        .header_count = nh,
        .body = body,
        .body_len = blen,
        .region = json_string_value(json_object_get(in, "region")),
        .service = json_string_value(json_object_get(in, "service")),
        .now = json_integer_value(json_object_get(in, "now")),
    };
    struct aws_sigv4_output o = {0};
    struct cg_err err = {0};
    json_t *res;
    if (aws_sigv4_sign(sc, &si, cr, &o, &err) < 0) {
        res = json_pack("{ss}", "error", err.msg);
    } else {
        res = json_pack("{ss ss ss ss ss}", "canonical_request", o.canonical_request,
                        "string_to_sign", o.string_to_sign, "signature", o.signature,
                        "authorization", o.authorization, "date", o.date);
    }
    aws_sigv4_output_cleanup(&o);
    free(h);
    return res;
}

static json_t *sign_url(json_t *in, const struct aws_sigv4_scheme *sc,
                        const struct aws_credentials *cr, const void *body, size_t blen)
{
    struct cg_http_req *req = cg_http_req_new(json_string_value(json_object_get(in, "method")),
                                              json_string_value(json_object_get(in, "url")));
    struct cg_err err = {0};
    json_t *hs = json_object_get(in, "headers");
    if (req == NULL) {
        return json_pack("{ss}", "error", "cannot build the request");
    }
    for (size_t i = 0; i < json_array_size(hs); i++) {
        cg_http_req_header(req, json_string_value(json_array_get(json_array_get(hs, i), 0)),
                           json_string_value(json_array_get(json_array_get(hs, i), 1)));
    }
    if (json_object_get(in, "body_hex") != NULL && blen > 0) {
        cg_http_req_body_copy(req, body, blen);
    }
    json_t *res;
    if (aws_sigv4_sign_http(sc, req, cr, json_string_value(json_object_get(in, "region")),
                            json_string_value(json_object_get(in, "service")),
                            json_integer_value(json_object_get(in, "now")), &err) < 0) {
        res = json_pack("{ss}", "error", err.msg);
    } else {
        const char *tok = cg_http_req_request_header(req, "X-Amz-Security-Token");
        res = json_pack("{ss ss so}", "authorization",
                        cg_http_req_request_header(req, "Authorization"), "date",
                        cg_http_req_request_header(req, sc->date_header), "token",
                        tok ? json_string(tok) : json_null());
    }
    cg_http_req_free(req);
    return res;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t je;
        json_t *in = json_loadb(line, (size_t)n, 0, &je);
        if (in == NULL) {
            fprintf(stderr, "bad input line: %s\n", je.text);
            return 2;
        }
        const char *scheme = json_string_value(json_object_get(in, "scheme"));
        const struct aws_sigv4_scheme *sc =
            scheme != NULL && strcmp(scheme, "osc") == 0 ? &aws_sigv4_osc : &aws_sigv4_aws;
        struct aws_credentials cr = {
            .access_key_id = (char *)json_string_value(json_object_get(in, "akid")),
            .secret_access_key = (char *)json_string_value(json_object_get(in, "secret")),
            .session_token = (char *)json_string_value(json_object_get(in, "token")),
        };
        size_t blen = 0;
        unsigned char *body = unhex(json_string_value(json_object_get(in, "body_hex")), &blen);
        json_t *res = json_object_get(in, "url") != NULL ? sign_url(in, sc, &cr, body, blen)
                                                         : sign_direct(in, sc, &cr, body, blen);
        char *s = json_dumps(res, JSON_COMPACT | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        free(body);
        json_decref(res);
        json_decref(in);
    }
    free(line);
    return 0;
}
