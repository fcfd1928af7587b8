/* Test-only driver for tests/e2e/test_aws_creds.py: runs the AWS credential chain with the
 * process environment and prints what each lookup returned. Never prints a secret: only a
 * SHA-256 of the secret key and of the session token, for comparison.
 *
 * aws_creds_dump [--gets N] [--concurrent N] [--interval-ms MS] [--sts-endpoint URL]
 *                [--imds-endpoint URL] [--imds-timeout-ms MS]
 *
 * Runs N rounds (default 1), MS apart; each round issues --concurrent lookups at once (default
 * 1). One line per answer, in answer order:
 *   get R.I source=S akid=A secret_sha256=H token=yes|no token_sha256=H|- expiration=E
 *   get R.I error code=C status=S message=M
 * then "elapsed_ms=T". Exit status 0 when every lookup succeeded, 1 otherwise, 2 on misuse. */
#include "aws/aws_creds.h"

#include "cg_http.h"
#include "cg_http_global.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct run {
    struct cg_http *h;
    struct aws_creds_provider *p;
    int rounds;
    int concurrent;
    long interval_ms;
    int round;
    int answered; /* in this round */
    int failures;
    int calls;
};

struct slot {
    struct run *r;
    int round;
    int index;
};

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

static void start_round(struct run *r);

static void next_round(void *data, int canceled)
{
    struct run *r = data;
    if (!canceled) {
        start_round(r);
    }
}

static void on_creds(const struct aws_credentials *c, const struct cg_err *err, void *data)
{
    struct slot *s = data;
    struct run *r = s->r;
    r->calls++;
    if (err != NULL) {
        printf("get %d.%d error code=%d status=%ld message=%s\n", s->round, s->index, err->code,
               err->http_status, err->msg);
        r->failures++;
    } else {
        char hs[65], ht[65] = "-";
        sha256_hex(c->secret_access_key, hs);
        if (c->session_token != NULL) {
            sha256_hex(c->session_token, ht);
        }
        printf("get %d.%d source=%s akid=%s secret_sha256=%s token=%s token_sha256=%s "
               "expiration=%lld\n",
               s->round, s->index, c->source, c->access_key_id, hs, c->session_token ? "yes" : "no",
               ht, (long long)c->expiration);
    }
    fflush(stdout);
    free(s);
    if (++r->answered == r->concurrent && r->round < r->rounds) {
        if (cg_http_after(r->h, r->interval_ms, next_round, r) < 0) {
            r->failures++;
        }
    }
}

static void start_round(struct run *r)
{
    r->round++;
    r->answered = 0;
    for (int i = 0; i < r->concurrent; i++) {
        struct slot *s = calloc(1, sizeof(*s));
        struct cg_err err = {0};
        s->r = r;
        s->round = r->round;
        s->index = i + 1;
        if (aws_creds_get(r->p, on_creds, s, &err) < 0) {
            printf("get %d.%d error code=%d status=0 message=%s\n", s->round, s->index, err.code,
                   err.msg);
            free(s);
            r->failures++;
            r->answered++;
        }
    }
}

int main(int argc, char **argv)
{
    struct aws_env env = {0};
    struct run r = {.rounds = 1, .concurrent = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "aws_creds_dump: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--gets") == 0) {
            r.rounds = atoi(v);
        } else if (strcmp(a, "--concurrent") == 0) {
            r.concurrent = atoi(v);
        } else if (strcmp(a, "--interval-ms") == 0) {
            r.interval_ms = atol(v);
        } else if (strcmp(a, "--sts-endpoint") == 0) {
            env.sts_endpoint = v;
        } else if (strcmp(a, "--imds-endpoint") == 0) {
            env.imds_endpoint = v;
        } else if (strcmp(a, "--imds-timeout-ms") == 0) {
            env.imds_timeout_ms = atol(v);
        } else {
            fprintf(stderr, "aws_creds_dump: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (r.rounds < 1 || r.concurrent < 1) {
        fprintf(stderr, "aws_creds_dump: --gets and --concurrent must be at least 1\n");
        return 2;
    }
    struct cg_err err = {0};
    if (cg_http_global_init(&err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    int rc = cg_http_new(&r.h, &loop, &err);
    if (rc == 0) {
        rc = aws_creds_chain_new(&r.p, r.h, &env, &err);
    }
    uint64_t t0 = uv_hrtime();
    if (rc == 0) {
        start_round(&r);
        cg_http_run(r.h);
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    printf("elapsed_ms=%llu\n", (unsigned long long)((uv_hrtime() - t0) / 1000000));
    aws_creds_provider_free(r.p);
    if (r.h != NULL) {
        cg_http_close(r.h);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    int closed = uv_loop_close(&loop);
    cg_http_global_cleanup();
    if (rc < 0) {
        return 2;
    }
    if (r.calls != r.rounds * r.concurrent) {
        fprintf(stderr, "aws_creds_dump: %d answers for %d lookups\n", r.calls,
                r.rounds * r.concurrent);
        return 1;
    }
    return r.failures > 0 || closed != 0 ? 1 : 0;
}
