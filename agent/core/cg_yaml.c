#include "cg_yaml.h"
#include "cg_util.h"
#include "cg_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static yaml_node_t *node_at(struct cg_yaml *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

/* Reader errors (bad UTF-8, ...) carry a byte offset but no mark. */
static void offset_to_pos(const char *buf, size_t len, size_t off, size_t *line, size_t *col)
{
    size_t l = 1;
    size_t c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int parser_error(struct cg_yaml *y, const yaml_parser_t *p, const char *buf, size_t len,
                        struct cg_err *err)
{
    if (p->error == YAML_MEMORY_ERROR) {
        return cg_err_set(err, CG_ENOMEM, "%s: out of memory", y->source);
    }
    const char *problem = p->problem ? p->problem : "syntax error";
    size_t line;
    size_t col;
    if (p->error == YAML_READER_ERROR) {
        offset_to_pos(buf, len, p->problem_offset, &line, &col);
        return cg_err_set(err, CG_EINVAL, "%s:%zu:%zu: %s", y->source, line, col, problem);
    }
    line = p->problem_mark.line + 1;
    col = p->problem_mark.column + 1;
    if (p->context != NULL) {
        /* libyaml's context ("while parsing a block mapping") points at where the construct
         * began, which is often what the user has to fix. */
        return cg_err_set(err, CG_EINVAL, "%s:%zu:%zu: %s (%s that started at %zu:%zu)", y->source,
                          line, col, problem, p->context, p->context_mark.line + 1,
                          p->context_mark.column + 1);
    }
    return cg_err_set(err, CG_EINVAL, "%s:%zu:%zu: %s", y->source, line, col, problem);
}

static size_t child_count(const yaml_node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE) {
        return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    }
    if (n->type == YAML_MAPPING_NODE) {
        return 2 * (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    }
    return 0;
}

static int child_at(const yaml_node_t *n, size_t i)
{
    if (n->type == YAML_SEQUENCE_NODE) {
        return n->data.sequence.items.start[i];
    }
    const yaml_node_pair_t *pair = &n->data.mapping.pairs.start[i / 2];
    return (i % 2) ? pair->value : pair->key;
}

/* libyaml registers an anchor before loading the node's children, so "&a [*a]" is a node that
 * contains itself, and aliases can make a small document huge when walked. One iterative
 * depth-first pass finds both, plus excessive nesting, before any caller recurses. */
static int check_graph(struct cg_yaml *y, struct cg_err *err)
{
    struct frame {
        int node;
        size_t next;
    };
    size_t n = (size_t)(y->doc.nodes.top - y->doc.nodes.start);
    if (n == 0) {
        return 0;
    }
    size_t limit = CG_YAML_MAX_EXPANSION + (n > SIZE_MAX / 8 ? SIZE_MAX / 2 : 4 * n);
    unsigned char *state = calloc(n, 1); /* 0 unseen, 1 on the path, 2 done */
    size_t *size = calloc(n, sizeof(*size));
    struct frame *stack = malloc((CG_YAML_MAX_DEPTH + 1) * sizeof(*stack));
    int rc = 0;
    if (state == NULL || size == NULL || stack == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", y->source);
        goto out;
    }
    size_t sp = 0;
    stack[sp++] = (struct frame){1, 0};
    state[0] = 1;
    while (sp > 0) {
        struct frame *f = &stack[sp - 1];
        const yaml_node_t *node = node_at(y, f->node);
        if (f->next < child_count(node)) {
            int c = child_at(node, f->next++);
            const yaml_node_t *child = node_at(y, c);
            if (child == NULL) {
                rc = cg_yaml_errorf(y, node, err, CG_EINVAL, "broken node reference");
                goto out;
            }
            if (state[c - 1] == 1) {
                rc = cg_yaml_errorf(y, child, err, CG_EINVAL, "alias refers to its own node");
                goto out;
            }
            if (state[c - 1] == 2) {
                continue;
            }
            if (sp > CG_YAML_MAX_DEPTH) {
                rc = cg_yaml_errorf(y, child, err, CG_EINVAL, "nested deeper than %d levels",
                                    CG_YAML_MAX_DEPTH);
                goto out;
            }
            state[c - 1] = 1;
            stack[sp++] = (struct frame){c, 0};
            continue;
        }
        /* All children are done: this node's size counts every alias expansion. */
        size_t total = 1;
        for (size_t i = 0; i < child_count(node); i++) {
            size_t s = size[child_at(node, i) - 1];
            total = (s > limit - total) ? limit : total + s;
        }
        size[f->node - 1] = total;
        state[f->node - 1] = 2;
        sp--;
    }
    if (size[0] >= limit) {
        rc = cg_yaml_errorf(y, NULL, err, CG_EINVAL, "document expands too many aliases");
    }
out:
    free(state);
    free(size);
    free(stack);
    return rc;
}

int cg_yaml_load(struct cg_yaml *y, const char *buf, size_t len, const char *source,
                 struct cg_err *err)
{
    yaml_parser_t parser;
    int rc = 0;
    memset(y, 0, sizeof(*y));
    y->source = strdup(source ? source : "<input>");
    if (y->source == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = cg_err_set(err, CG_ENOMEM, "%s: out of memory", y->source);
        goto out;
    }
    /* libyaml asserts on a NULL input even when empty. */
    yaml_parser_set_input_string(&parser, (const unsigned char *)(buf ? buf : ""), buf ? len : 0);
    if (!yaml_parser_load(&parser, &y->doc)) {
        rc = parser_error(y, &parser, buf, buf ? len : 0, err);
        yaml_parser_delete(&parser);
        goto out;
    }
    yaml_parser_delete(&parser);
    y->loaded = 1;
    rc = check_graph(y, err);
out:
    if (rc < 0) {
        cg_yaml_cleanup(y);
    }
    return rc;
}

void cg_yaml_cleanup(struct cg_yaml *y)
{
    if (y == NULL) {
        return;
    }
    if (y->loaded) {
        /* Config documents carry tokens and keys: wipe every scalar before libyaml frees it. */
        for (yaml_node_t *n = y->doc.nodes.start; n < y->doc.nodes.top; n++) {
            if (n->type == YAML_SCALAR_NODE && n->data.scalar.value != NULL) {
                cg_wipe(n->data.scalar.value, n->data.scalar.length);
            }
        }
        yaml_document_delete(&y->doc);
    }
    free(y->source);
    memset(y, 0, sizeof(*y));
}

yaml_node_t *cg_yaml_root(struct cg_yaml *y)
{
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

void cg_yaml_where(struct cg_yaml *y, const char *fmt, ...)
{
    if (fmt == NULL) {
        y->where[0] = '\0';
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(y->where, sizeof(y->where), fmt, ap);
    va_end(ap);
}

int cg_yaml_errorf(struct cg_yaml *y, const yaml_node_t *node, struct cg_err *err, int code,
                   const char *fmt, ...)
{
    char msg[CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *sep = y->where[0] ? ": " : "";
    if (node == NULL) {
        return cg_err_set(err, code, "%s: %s%s%s", y->source, y->where, sep, msg);
    }
    return cg_err_set(err, code, "%s:%zu:%zu: %s%s%s", y->source, node->start_mark.line + 1,
                      node->start_mark.column + 1, y->where, sep, msg);
}

int cg_yaml_is_null(const yaml_node_t *n)
{
    if (n == NULL) {
        return 1;
    }
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    const char *v = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    return l == 0 || (l == 1 && v[0] == '~') ||
           (l == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

const char *cg_yaml_kind(const yaml_node_t *n)
{
    if (cg_yaml_is_null(n)) {
        return "null";
    }
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "mapping";
    case YAML_SEQUENCE_NODE:
        return "sequence";
    default:
        return "string";
    }
}

static int scalar_is(const yaml_node_t *n, const char *s)
{
    size_t l = strlen(s);
    return n != NULL && n->type == YAML_SCALAR_NODE && n->data.scalar.length == l &&
           memcmp(n->data.scalar.value, s, l) == 0;
}

yaml_node_t *cg_yaml_map_get(struct cg_yaml *y, const yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    yaml_node_t *found = NULL;
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        if (scalar_is(node_at(y, p->key), key)) {
            found = node_at(y, p->value);
        }
    }
    return found;
}

size_t cg_yaml_map_len(const yaml_node_t *map)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return 0;
    }
    return (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
}

int cg_yaml_map_pair(struct cg_yaml *y, const yaml_node_t *map, size_t i, yaml_node_t **key,
                     yaml_node_t **value)
{
    if (i >= cg_yaml_map_len(map)) {
        return CG_EINVAL;
    }
    const yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
    *key = node_at(y, p->key);
    *value = node_at(y, p->value);
    return 0;
}

size_t cg_yaml_seq_len(const yaml_node_t *seq)
{
    if (seq == NULL || seq->type != YAML_SEQUENCE_NODE) {
        return 0;
    }
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

yaml_node_t *cg_yaml_seq_at(struct cg_yaml *y, const yaml_node_t *seq, size_t i)
{
    if (i >= cg_yaml_seq_len(seq)) {
        return NULL;
    }
    return node_at(y, seq->data.sequence.items.start[i]);
}

static int get_kind(struct cg_yaml *y, const yaml_node_t *map, const char *key,
                    yaml_node_type_t type, yaml_node_t **out, struct cg_err *err)
{
    yaml_node_t *v = cg_yaml_map_get(y, map, key);
    *out = NULL;
    if (cg_yaml_is_null(v)) {
        return 0;
    }
    if (v->type != type) {
        return cg_yaml_errorf(y, v, err, CG_EINVAL, "'%s' must be a %s, not a %s", key,
                              type == YAML_MAPPING_NODE ? "mapping" : "sequence", cg_yaml_kind(v));
    }
    *out = v;
    return 0;
}

int cg_yaml_get_map(struct cg_yaml *y, const yaml_node_t *map, const char *key, yaml_node_t **out,
                    struct cg_err *err)
{
    return get_kind(y, map, key, YAML_MAPPING_NODE, out, err);
}

int cg_yaml_get_seq(struct cg_yaml *y, const yaml_node_t *map, const char *key, yaml_node_t **out,
                    struct cg_err *err)
{
    return get_kind(y, map, key, YAML_SEQUENCE_NODE, out, err);
}

int cg_yaml_node_str(struct cg_yaml *y, const yaml_node_t *node, const char *what, const char **out,
                     struct cg_err *err)
{
    *out = NULL;
    if (cg_yaml_is_null(node)) {
        return 0;
    }
    if (node->type != YAML_SCALAR_NODE) {
        return cg_yaml_errorf(y, node, err, CG_EINVAL, "%s must be a string, not a %s", what,
                              cg_yaml_kind(node));
    }
    if (memchr(node->data.scalar.value, '\0', node->data.scalar.length) != NULL) {
        return cg_yaml_errorf(y, node, err, CG_EINVAL, "%s must not contain a NUL byte", what);
    }
    /* libyaml keeps scalar values NUL-terminated. */
    *out = (const char *)node->data.scalar.value;
    return 0;
}

int cg_yaml_get_str(struct cg_yaml *y, const yaml_node_t *map, const char *key, const char **out,
                    struct cg_err *err)
{
    char what[96];
    snprintf(what, sizeof(what), "'%s'", key);
    return cg_yaml_node_str(y, cg_yaml_map_get(y, map, key), what, out, err);
}

int cg_yaml_dup_str(struct cg_yaml *y, const yaml_node_t *map, const char *key, char **out,
                    struct cg_err *err)
{
    const char *s = NULL;
    *out = NULL;
    int rc = cg_yaml_get_str(y, map, key, &s, err);
    if (rc < 0 || s == NULL) {
        return rc;
    }
    *out = strdup(s);
    if (*out == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return 0;
}

int cg_yaml_get_bool(struct cg_yaml *y, const yaml_node_t *map, const char *key, int *out,
                     struct cg_err *err)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y",   NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
                                     "off",   "Off",   "OFF",   "n",  "N",  NULL};
    yaml_node_t *v = cg_yaml_map_get(y, map, key);
    *out = 0;
    if (cg_yaml_is_null(v)) {
        return 0;
    }
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        for (size_t i = 0; yes[i] != NULL; i++) {
            if (scalar_is(v, yes[i])) {
                *out = 1;
                return 0;
            }
        }
        for (size_t i = 0; no[i] != NULL; i++) {
            if (scalar_is(v, no[i])) {
                return 0;
            }
        }
    }
    return cg_yaml_errorf(y, v, err, CG_EINVAL, "'%s' must be true or false", key);
}

char *cg_yaml_printable(char *dst, size_t cap, const char *s)
{
    return (char *)cg_printable_n(dst, cap, s, strlen(s));
}

int cg_yaml_check_keys(struct cg_yaml *y, const yaml_node_t *map, const char *const *allowed,
                       struct cg_err *err)
{
    size_t n = 0;
    while (allowed[n] != NULL) {
        n++;
    }
    /* The allowed list is short and fixed, so a seen-flag per allowed key finds repeats in one
     * pass whatever the mapping's size. */
    unsigned char *seen = calloc(n + 1, 1);
    if (seen == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < cg_yaml_map_len(map); i++) {
        yaml_node_t *k = NULL;
        yaml_node_t *v = NULL;
        cg_yaml_map_pair(y, map, i, &k, &v);
        size_t j = 0;
        while (j < n && !scalar_is(k, allowed[j])) {
            j++;
        }
        if (j == n) {
            const char *name = NULL;
            if (k->type != YAML_SCALAR_NODE || cg_yaml_node_str(y, k, "key", &name, NULL) < 0) {
                rc = cg_yaml_errorf(y, k, err, CG_EINVAL, "keys must be strings");
            } else if (name == NULL || name[0] == '\0') {
                /* an empty key ("? " alone) reads as a null scalar */
                rc = cg_yaml_errorf(y, k, err, CG_EINVAL, "a key is empty");
            } else {
                char shown[72];
                rc = cg_yaml_errorf(y, k, err, CG_EINVAL, "unknown key '%s'",
                                    cg_yaml_printable(shown, sizeof(shown), name));
            }
            break;
        }
        if (seen[j]) {
            rc = cg_yaml_errorf(y, k, err, CG_EINVAL, "key '%s' is repeated", allowed[j]);
            break;
        }
        seen[j] = 1;
    }
    free(seen);
    return rc;
}
