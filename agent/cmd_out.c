/* agent/cmd_out.c: the commands' shared output. */
#include "cmd_out.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

json_t *cmd_entries_json(const struct rc_list *l, int drift)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < l->count; i++) {
        const struct rc_entry *e = &l->items[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "provider", e->provider, "kind", e->kind,
                              "name", e->name ? e->name : "", "change",
                              drift ? rc_drift_word(e->change) : rc_change_word(e->change));
        if (o == NULL) {
            continue;
        }
        if (e->id != NULL) {
            json_object_set_new(o, "id", json_string(e->id));
        }
        if (e->detail != NULL) {
            json_object_set_new(o, "detail", json_string(e->detail));
        }
        json_array_append_new(a, o);
    }
    return a;
}

void cmd_print_entries(const struct rc_list *l, int drift, FILE *out)
{
    static const char sign[] = {'+', '~', '-', ' '};
    for (size_t i = 0; i < l->count; i++) {
        const struct rc_entry *e = &l->items[i];
        fprintf(out, "  %c %-18s %-34s %s%s%s%s%s\n", sign[e->change], e->kind,
                e->name ? e->name : "", drift ? rc_drift_word(e->change) : "",
                e->id ? (drift ? "  " : "") : "", e->id ? e->id : "", e->detail ? "  # " : "",
                e->detail ? e->detail : "");
    }
}

void cmd_print_json(json_t *root)
{
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (s != NULL) {
        printf("%s\n", s);
        free(s);
    }
    json_decref(root);
}

int cmd_json_out(const struct cg_options *o)
{
    return o->output != NULL && strcmp(o->output, "json") == 0;
}

void cmd_summarize(struct cg_run_stats *stats, const char *fmt, ...)
{
    if (stats == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(stats->summary, sizeof(stats->summary), fmt, ap);
    va_end(ap);
}

const char *cmd_profiles_dir(const struct cg_options *o)
{
    struct stat st;
    if (o->profiles_dir != NULL) {
        return o->profiles_dir;
    }
    return stat(CG_PROFILES_DIR, &st) == 0 ? CG_PROFILES_DIR : CG_SOURCE_PROFILES_DIR;
}
