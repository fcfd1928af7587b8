/* rc: the reconcile core shared by every provider.
 *
 * A reconcile reads the actual state, compares it with the rendered profile and produces
 * entries: for `plan` the actions onboard would take, for `check` the drift, for `onboard` and
 * `offboard` what was changed. Changes run as a small dependency graph on the event loop:
 * every node whose dependencies are done starts at once, so independent calls go out
 * together and a run costs about its longest chain of dependent calls. */
#ifndef CG_RC_H
#define CG_RC_H

#include "cg_err.h"

#include <stddef.h>

struct cg_http;

enum rc_change {
    RC_CREATE = 0, /* drift: missing */
    RC_UPDATE,     /* drift: changed */
    RC_DELETE,     /* drift: unexpected */
    RC_NONE,       /* in a resource list: present and as desired */
};

/* One line of a plan, a drift report or a result. Strings are owned by the entry. */
struct rc_entry {
    const char *provider; /* static: "aws", ... */
    const char *kind;     /* static: "user", "policy", "policy-attachment", ... */
    char *name;           /* human name: user name, policy name, "<user> -> <policy arn>" */
    char *id;             /* cloud id (ARN, key id) when known; NULL otherwise */
    enum rc_change change;
    char *detail; /* why: "default version differs", ...; NULL when obvious */
};

struct rc_list {
    struct rc_entry *items;
    size_t count;
    size_t cap;
};

/* Appends a copy of name/id/detail (each may be NULL). Returns 0 or CG_ENOMEM. */
int rc_list_add(struct rc_list *l, const char *provider, const char *kind, const char *name,
                const char *id, enum rc_change change, const char *detail);
void rc_list_cleanup(struct rc_list *l);

/* "create" | "update" | "delete" | "unchanged"; drift words: "missing" | "changed" |
 * "unexpected". */
const char *rc_change_word(enum rc_change c);
const char *rc_drift_word(enum rc_change c);

/* ---- dependency graph ---- */

struct rc_graph;
struct rc_node;

/* Starts the node's work. Return 0 and call rc_node_done() later (or before returning), or
 * return <0 with err filled: the node fails at once. */
typedef int rc_node_start_fn(struct rc_node *n, void *arg, struct cg_err *err);

#define RC_MAX_DEPS 8

struct rc_node {
    const char *label; /* for logs and errors: "attach AmazonEC2ReadOnlyAccess" */
    rc_node_start_fn *start;
    void *arg;
    int deps[RC_MAX_DEPS];
    int ndeps;
    /* run state */
    int state; /* 0 waiting, 1 running, 2 done, 3 failed, 4 skipped */
    int depth; /* length of the longest dependency chain ending here */
    struct rc_graph *graph;
};

typedef void rc_graph_done_cb(struct rc_graph *g, const struct cg_err *first_error, void *data);

struct rc_graph {
    struct rc_node *nodes;
    size_t count;
    size_t cap;
    int running;
    int finished;
    int scheduling; /* a schedule() walk is in progress */
    struct cg_err first_error;
    rc_graph_done_cb *done;
    void *data;
};

void rc_graph_init(struct rc_graph *g);
void rc_graph_cleanup(struct rc_graph *g);
/* Adds a node depending on the given earlier nodes (index < the new one; -1 entries ignored).
 * Returns the node's index, or <0 on ENOMEM / too many deps. */
int rc_graph_add(struct rc_graph *g, const char *label, rc_node_start_fn *start, void *arg,
                 const int *deps, int ndeps);
/* Runs the graph; `done` runs once when no node can make progress (all done, or failed and
 * their dependents skipped). A failed node does not stop independent ones. */
void rc_graph_run(struct rc_graph *g, rc_graph_done_cb *done, void *data);
/* Reports a node's completion (err NULL on success). */
void rc_node_done(struct rc_node *n, const struct cg_err *err);
/* The longest chain of dependent nodes in the graph (for the benchmark). */
int rc_graph_critical_path(const struct rc_graph *g);

#endif
