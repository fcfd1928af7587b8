/* azure_auth_fake: a stand-in for cloud/azure/auth.c in unit tests of code that borrows a
 * struct azure_auth (azure_rest). It implements every function of azure_auth.h, so a test that
 * links it never pulls auth.o out of the cg_cloud archive (which would then be a duplicate).
 *
 * azure_auth_get_token delivers "fake-<graph|arm>-<generation of that resource>" from the loop
 * (a 0 ms engine timer); azure_auth_invalidate bumps that resource's generation. The fields
 * below are the test's to read and set. */
#ifndef CG_AZURE_AUTH_FAKE_H
#define CG_AZURE_AUTH_FAKE_H

#include "azure/azure_auth.h"

struct azure_auth {
    struct cg_http *http;
    int gets[AZURE_RESOURCE_COUNT];          /* azure_auth_get_token calls */
    int invalidations[AZURE_RESOURCE_COUNT]; /* azure_auth_invalidate calls */
    int generation[AZURE_RESOURCE_COUNT];    /* start at 1 */
    int fail_now;                            /* get_token returns CG_EAUTH at once */
    int fail_later;                          /* get_token delivers CG_EAUTH from the loop */
    const char *token;                       /* delivered as is instead of "fake-..." when set */
};

#endif
