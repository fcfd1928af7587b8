/* Test-only driver for tests/e2e/test_seal.py: seals a file (or stdin) for a public key with
 * agent/seal.c and prints the JWE, so an independent JOSE implementation can open it.
 *
 * seal_dump KEY.pem [PLAINTEXT|-]
 *
 * Prints the compact token and a newline. Exit status 0 on success, 1 with "seal_dump: <message>"
 * on stderr when loading the key or sealing fails, 2 on misuse. */
#include "seal.h"

#include "cg_buf.h"
#include "cg_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LIMIT   (1024 * 1024)
#define PLAIN_LIMIT (64 * 1024 * 1024)

/* Reads all of f; returns NULL when it is larger than PLAIN_LIMIT or on a read error. */
static unsigned char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536;
    size_t n = 0;
    unsigned char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                break;
            }
            *len = n;
            return buf;
        }
        if (n == cap) {
            if (cap >= PLAIN_LIMIT) {
                break;
            }
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: seal_dump KEY.pem [PLAINTEXT|-]\n");
        return 2;
    }
    struct cg_err err = {0};
    char *pem = NULL;
    size_t pemlen = 0;
    if (cg_file_read(argv[1], KEY_LIMIT, &pem, &pemlen, &err) != 0) {
        fprintf(stderr, "seal_dump: %s\n", err.msg);
        return 1;
    }
    struct cg_seal_key *k = NULL;
    int rc = cg_seal_key_load(&k, pem, pemlen, argv[1], &err);
    free(pem);
    if (rc != 0) {
        fprintf(stderr, "seal_dump: %s\n", err.msg);
        return 1;
    }

    FILE *in = stdin;
    if (argc == 3 && strcmp(argv[2], "-") != 0) {
        in = fopen(argv[2], "rb");
        if (in == NULL) {
            perror(argv[2]);
            cg_seal_key_free(k);
            return 1;
        }
    }
    size_t len = 0;
    unsigned char *plain = read_all(in, &len);
    if (in != stdin) {
        fclose(in);
    }
    if (plain == NULL) {
        fprintf(stderr, "seal_dump: cannot read the plaintext\n");
        cg_seal_key_free(k);
        return 1;
    }
    char *jwe = NULL;
    rc = cg_seal_jwe(k, plain, len, &jwe, &err);
    cg_wipe(plain, len);
    free(plain);
    cg_seal_key_free(k);
    if (rc != 0) {
        fprintf(stderr, "seal_dump: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", jwe);
    free(jwe);
    return 0;
}
