/* cg_buf: a growable byte buffer with a hard cap, for anything fed by the network or a file.
 *
 * The buffer is always NUL-terminated (len excludes the NUL) so text can be handed to string
 * functions. When an append fails the buffer is left as it was: on CG_ETOOBIG the caller
 * decides whether the partial content matters; on CG_ENOMEM nothing was changed. */
#ifndef CG_BUF_H
#define CG_BUF_H

#include <stddef.h>

struct cg_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;    /* allocated bytes */
    size_t limit;  /* max len; 0 means CG_BUF_DEFAULT_LIMIT */
    int sensitive; /* wipe memory on growth and free */
};

#define CG_BUF_DEFAULT_LIMIT (16u * 1024u * 1024u)

void cg_buf_init(struct cg_buf *b, size_t limit);
/* Returns 0, CG_ENOMEM or CG_ETOOBIG. */
int cg_buf_append(struct cg_buf *b, const void *p, size_t n);
int cg_buf_append_str(struct cg_buf *b, const char *s);
int cg_buf_printf(struct cg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_buf_reset(struct cg_buf *b);
/* Hands the NUL-terminated data to the caller (who frees it) and resets the buffer.
 * Returns an empty allocated string when the buffer was empty; NULL only on ENOMEM. */
char *cg_buf_steal(struct cg_buf *b, size_t *len);
/* Frees data; wipes it first when sensitive. */
void cg_buf_cleanup(struct cg_buf *b);

/* Wipes and frees a NUL-terminated secret string; NULL-safe. */
void cg_secret_free(char *s);
/* Wipes n bytes. */
void cg_wipe(void *p, size_t n);

#endif
