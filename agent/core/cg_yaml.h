/* cg_yaml: load one YAML document with positioned errors, and read typed values by key.
 *
 * Config loaders (kubeconfig, agent profiles) share this so every YAML problem reads the same:
 * "<source>:<line>:<col>: <problem>", optionally with a "where" label the caller sets before
 * looking into an entry ("<source>:7:13: cluster 'prod': 'server' must be a string, not a
 * mapping"). Lines and columns are 1-based.
 *
 * A loaded document is safe to walk recursively: cg_yaml_load rejects recursive aliases,
 * nesting deeper than CG_YAML_MAX_DEPTH and alias expansion that multiplies the document's size
 * (the "billion laughs" shape). Nodes point into the document: they live until cg_yaml_cleanup.
 *
 * Scalars are not resolved to YAML types except where a getter says so: a value is "null" when
 * it is absent or a plain "", "~", "null", "Null" or "NULL" (YAML 1.1, as yaml.v2 reads it). */
#ifndef CG_YAML_H
#define CG_YAML_H

#include "cg_err.h"

#include <stddef.h>
#include <yaml.h>

#define CG_YAML_MAX_DEPTH 256
/* Alias expansion is refused past this many nodes beyond four times the document's own. */
#define CG_YAML_MAX_EXPANSION 100000u

struct cg_yaml {
    yaml_document_t doc;
    char *source;    /* owned copy of the name used in messages */
    char where[192]; /* optional label put after the position in messages; "" when unset */
    int loaded;
};

/* Parses the first document of buf (later documents are ignored, as yaml.v2 and so kubectl
 * do). y need not be initialised; on success release it with cg_yaml_cleanup, on failure it is
 * already clean (cleanup is still safe). Errors: CG_EINVAL with "<source>:<line>:<col>: ...",
 * CG_ENOMEM. */
int cg_yaml_load(struct cg_yaml *y, const char *buf, size_t len, const char *source,
                 struct cg_err *err);
void cg_yaml_cleanup(struct cg_yaml *y);

/* The document's root; NULL for an empty document. */
yaml_node_t *cg_yaml_root(struct cg_yaml *y);

/* Sets the label messages carry after the position; cg_yaml_where(y, NULL) clears it. */
void cg_yaml_where(struct cg_yaml *y, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes "<source>:<line>:<col>: [<where>: ]<message>" for node (or without the position when
 * node is NULL) into err and returns code. */
int cg_yaml_errorf(struct cg_yaml *y, const yaml_node_t *node, struct cg_err *err, int code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

int cg_yaml_is_null(const yaml_node_t *n); /* 1 also for NULL */
/* "mapping", "sequence", "string" or "null", for messages. */
const char *cg_yaml_kind(const yaml_node_t *n);

/* The value of key in a mapping, or NULL when absent or when map is not a mapping. A key given
 * twice yields the last value, as yaml.v2 does; cg_yaml_check_keys rejects repeats. */
yaml_node_t *cg_yaml_map_get(struct cg_yaml *y, const yaml_node_t *map, const char *key);
size_t cg_yaml_map_len(const yaml_node_t *map);
/* The i-th pair of a mapping; returns 0, or CG_EINVAL when i is out of range. */
int cg_yaml_map_pair(struct cg_yaml *y, const yaml_node_t *map, size_t i, yaml_node_t **key,
                     yaml_node_t **value);
size_t cg_yaml_seq_len(const yaml_node_t *seq);
yaml_node_t *cg_yaml_seq_at(struct cg_yaml *y, const yaml_node_t *seq, size_t i);

/* Typed getters. A missing or null value gives NULL (or 0) and returns 0; a value of another
 * kind is CG_EINVAL "'<key>' must be a <kind>, not a <kind>" at the value's position. */
int cg_yaml_get_map(struct cg_yaml *y, const yaml_node_t *map, const char *key, yaml_node_t **out,
                    struct cg_err *err);
int cg_yaml_get_seq(struct cg_yaml *y, const yaml_node_t *map, const char *key, yaml_node_t **out,
                    struct cg_err *err);
/* A borrowed, NUL-terminated scalar; strings with an embedded NUL are refused, so C code never
 * sees a silently shortened value. */
int cg_yaml_get_str(struct cg_yaml *y, const yaml_node_t *map, const char *key, const char **out,
                    struct cg_err *err);
/* Like cg_yaml_get_str but copies into a new string the caller frees; *out is NULL when the
 * value is null. */
int cg_yaml_dup_str(struct cg_yaml *y, const yaml_node_t *map, const char *key, char **out,
                    struct cg_err *err);
/* The same check for a node that is not reached by key (a sequence item); what names it. */
int cg_yaml_node_str(struct cg_yaml *y, const yaml_node_t *node, const char *what, const char **out,
                     struct cg_err *err);
/* A plain YAML 1.1 boolean (true/false, yes/no, on/off, y/n in the usual cases); quoted
 * strings are refused as kubectl refuses them. */
int cg_yaml_get_bool(struct cg_yaml *y, const yaml_node_t *map, const char *key, int *out,
                     struct cg_err *err);

/* Copies a value from a document into dst for use in a message: control bytes become '?' so
 * the message stays one line, and a value longer than cap allows is cut with "...". Returns
 * dst. */
char *cg_yaml_printable(char *dst, size_t cap, const char *s);

/* Refuses keys outside allowed (a NULL-terminated list) and keys given twice, for loaders that
 * want typos reported rather than ignored. */
int cg_yaml_check_keys(struct cg_yaml *y, const yaml_node_t *map, const char *const *allowed,
                       struct cg_err *err);

#endif
