/* gcp_auth_fake: a stand-in for cloud/gcp/auth.c in unit tests of code that borrows a
 * struct gcp_auth (gcp_rest). It implements every function of gcp_auth.h, so a test that links
 * it never pulls auth.o out of the cg_cloud archive (which would then be a duplicate).
 *
 * gcp_auth_get_token delivers "fake-token-<generation>" from the loop (a 0 ms engine timer);
 * gcp_auth_invalidate bumps the generation. The fields below are the test's to read and set. */
#ifndef CG_GCP_AUTH_FAKE_H
#define CG_GCP_AUTH_FAKE_H

#include "gcp/gcp_auth.h"

struct gcp_auth {
    struct cg_http *http;
    int gets;          /* gcp_auth_get_token calls */
    int invalidations; /* gcp_auth_invalidate calls */
    int generation;    /* starts at 1 */
    int fail_now;      /* get_token returns CG_EAUTH at once */
    int fail_later;    /* get_token delivers CG_EAUTH from the loop */
    const char *token; /* delivered as is instead of "fake-token-<n>" when set */
};

#endif
