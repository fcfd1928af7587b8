#include "cg_http_global.h"

#include <curl/curl.h>

int cg_http_global_init(struct cg_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return cg_err_set(err, CG_EIO, "cannot initialise libcurl");
    }
    return 0;
}

void cg_http_global_cleanup(void)
{
    curl_global_cleanup();
}
