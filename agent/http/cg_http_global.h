/* Process-wide setup of the HTTP stack: call once from main before any engine exists, and
 * cleanup once at exit, so that libcurl and OpenSSL release what they allocate globally. */
#ifndef CG_HTTP_GLOBAL_H
#define CG_HTTP_GLOBAL_H

#include "../core/cg_err.h"

int cg_http_global_init(struct cg_err *err);
void cg_http_global_cleanup(void);

#endif
