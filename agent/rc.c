/* agent/rc.c: entries and the dependency-graph runner of the reconcile core. */
#include "rc.h"

#include "cg_log.h"

#include <stdlib.h>
#include <string.h>

int rc_list_add(struct rc_list *l, const char *provider, const char *kind, const char *name,
                const char *id, enum rc_change change, const char *detail)
{
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        struct rc_entry *n = realloc(l->items, ncap * sizeof(*n));
        if (n == NULL) {
            return CG_ENOMEM;
        }
        l->items = n;
        l->cap = ncap;
    }
    struct rc_entry *e = &l->items[l->count];
    memset(e, 0, sizeof(*e));
    e->provider = provider;
    e->kind = kind;
    e->change = change;
    e->name = name ? strdup(name) : NULL;
    e->id = id ? strdup(id) : NULL;
    e->detail = detail ? strdup(detail) : NULL;
    if ((name && !e->name) || (id && !e->id) || (detail && !e->detail)) {
        free(e->name);
        free(e->id);
        free(e->detail);
        return CG_ENOMEM;
    }
    l->count++;
    return 0;
}

void rc_list_cleanup(struct rc_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].name);
        free(l->items[i].id);
        free(l->items[i].detail);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

const char *rc_change_word(enum rc_change c)
{
    static const char *const w[] = {"create", "update", "delete", "unchanged"};
    return c <= RC_NONE ? w[c] : "?";
}

const char *rc_drift_word(enum rc_change c)
{
    static const char *const w[] = {"missing", "changed", "unexpected", "none"};
    return c <= RC_NONE ? w[c] : "?";
}

/* ---- graph ---- */

enum { NODE_WAITING = 0, NODE_RUNNING, NODE_DONE, NODE_FAILED, NODE_SKIPPED };

void rc_graph_init(struct rc_graph *g)
{
    memset(g, 0, sizeof(*g));
}

void rc_graph_cleanup(struct rc_graph *g)
{
    free(g->nodes);
    memset(g, 0, sizeof(*g));
}

int rc_graph_add(struct rc_graph *g, const char *label, rc_node_start_fn *start, void *arg,
                 const int *deps, int ndeps)
{
    if (ndeps > RC_MAX_DEPS) {
        return CG_EINVAL;
    }
    if (g->count == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 16;
        struct rc_node *n = realloc(g->nodes, ncap * sizeof(*n));
        if (n == NULL) {
            return CG_ENOMEM;
        }
        g->nodes = n;
        g->cap = ncap;
        /* nodes hold a pointer to the graph, not to each other: realloc is safe */
    }
    struct rc_node *n = &g->nodes[g->count];
    memset(n, 0, sizeof(*n));
    n->label = label;
    n->start = start;
    n->arg = arg;
    n->graph = g;
    n->depth = 1;
    for (int i = 0; i < ndeps; i++) {
        if (deps[i] < 0) {
            continue;
        }
        if ((size_t)deps[i] >= g->count) {
            return CG_EINVAL; /* only earlier nodes: the graph cannot have a cycle */
        }
        n->deps[n->ndeps++] = deps[i];
        if (g->nodes[deps[i]].depth + 1 > n->depth) {
            n->depth = g->nodes[deps[i]].depth + 1;
        }
    }
    return (int)g->count++;
}

int rc_graph_critical_path(const struct rc_graph *g)
{
    int best = 0;
    for (size_t i = 0; i < g->count; i++) {
        best = g->nodes[i].depth > best ? g->nodes[i].depth : best;
    }
    return best;
}

static void schedule(struct rc_graph *g);

static void finish_if_idle(struct rc_graph *g)
{
    if (g->finished || g->running > 0) {
        return;
    }
    for (size_t i = 0; i < g->count; i++) {
        if (g->nodes[i].state == NODE_WAITING) {
            return;
        }
    }
    g->finished = 1;
    g->done(g, g->first_error.code ? &g->first_error : NULL, g->data);
}

/* Bookkeeping of a node's end, without scheduling. */
static void node_finish(struct rc_node *n, const struct cg_err *err)
{
    struct rc_graph *g = n->graph;
    g->running--;
    if (err != NULL) {
        n->state = NODE_FAILED;
        CG_LOG(CG_LOG_DEBUG, "rc", "%s failed: %s", n->label, err->msg);
        if (g->first_error.code == 0) {
            g->first_error = *err;
            if (g->first_error.code == 0) {
                g->first_error.code = CG_EIO;
            }
        }
    } else {
        n->state = NODE_DONE;
        CG_LOG(CG_LOG_DEBUG, "rc", "%s done", n->label);
    }
}

void rc_node_done(struct rc_node *n, const struct cg_err *err)
{
    node_finish(n, err);
    schedule(n->graph);
}

/* Starts every waiting node whose dependencies are done; skips those behind a failure.
 * Loops rather than recursing, so nodes that complete synchronously cannot grow the stack
 * without bound. */
static void schedule(struct rc_graph *g)
{
    if (g->scheduling) {
        return; /* an outer schedule() is walking the nodes and will see this change */
    }
    g->scheduling = 1;
    int progress = 1;
    while (progress) {
        progress = 0;
        for (size_t i = 0; i < g->count; i++) {
            struct rc_node *n = &g->nodes[i];
            if (n->state != NODE_WAITING) {
                continue;
            }
            int ready = 1;
            int blocked = 0;
            for (int d = 0; d < n->ndeps; d++) {
                int st = g->nodes[n->deps[d]].state;
                ready &= st == NODE_DONE;
                blocked |= st == NODE_FAILED || st == NODE_SKIPPED;
            }
            if (blocked) {
                n->state = NODE_SKIPPED;
                progress = 1;
                continue;
            }
            if (!ready) {
                continue;
            }
            n->state = NODE_RUNNING;
            g->running++;
            progress = 1;
            struct cg_err err = {0};
            CG_LOG(CG_LOG_DEBUG, "rc", "start %s", n->label);
            if (n->start(n, n->arg, &err) < 0) {
                if (err.code == 0) {
                    err.code = CG_EIO;
                }
                node_finish(n, &err);
            }
        }
    }
    g->scheduling = 0;
    finish_if_idle(g);
}

void rc_graph_run(struct rc_graph *g, rc_graph_done_cb *done, void *data)
{
    g->done = done;
    g->data = data;
    schedule(g);
}
