/* agent/cmd_flow.c: the command flow shared by the clouds (cmd_flow.h). */
#include "cmd_flow.h"

#include "cmd_out.h"
#include "credstore.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plan(const struct cmd_flow *f, const struct cg_options *o, void *res,
                struct cg_run_stats *stats, struct cg_err *err)
{
    if (f->run(f->ctx, RC_MODE_PLAN, res, err) < 0) {
        return CG_EXIT_FAIL;
    }
    struct rc_list *l = f->entries(res);
    if (cmd_json_out(o)) {
        cmd_print_json(json_pack("{s:o}", "actions", cmd_entries_json(l, 0)));
    } else {
        f->print(f->ctx, "plan", res);
    }
    cmd_summarize(stats, "plan: %zu change%s to %s %s in %s (profile %s)", l->count,
                  l->count == 1 ? "" : "s", f->what, f->principal(f->ctx, res), f->where,
                  f->profile);
    return CG_EXIT_OK;
}

static int check(const struct cmd_flow *f, const struct cg_options *o, void *res, void *after,
                 void *fixed, struct cg_run_stats *stats, struct cg_err *err)
{
    if (f->run(f->ctx, RC_MODE_CHECK, res, err) < 0) {
        return CG_EXIT_FAIL;
    }
    struct rc_list *found = f->entries(res);
    struct rc_list *left = f->entries(after);
    int code = found->count ? CG_EXIT_DRIFT : CG_EXIT_OK;
    int delivered = 0;
    /* A plain check still hands over a credential a crashed run left owed. */
    void *from = fixed;
    if (o->fix && found->count > 0) {
        int rc = f->run(f->ctx, RC_MODE_APPLY, fixed, err);
        if (rc == 0) {
            rc = f->deliver(f->ctx, "DriftReport", found, 1, fixed, &delivered, err);
        }
        if (rc < 0 || f->run(f->ctx, RC_MODE_CHECK, after, err) < 0) {
            return CG_EXIT_FAIL;
        }
        code = left->count ? CG_EXIT_DRIFT : CG_EXIT_OK;
    } else if (f->deliver(f->ctx, "DriftReport", found, 1, from, &delivered, err) < 0) {
        return CG_EXIT_FAIL;
    }
    const char *who = f->principal(f->ctx, res);
    if (cmd_json_out(o)) {
        json_t *root = json_pack("{s:o}", "drift", cmd_entries_json(found, 1));
        if (o->fix) {
            json_object_set_new(root, "remaining", cmd_entries_json(left, 1));
        }
        cmd_print_json(root);
    } else if (found->count == 0) {
        printf("no drift: %s %s matches profile %s\n", f->what, who, f->profile);
    } else {
        printf("drift: %s %s differs from profile %s\n", f->what, who, f->profile);
        cmd_print_entries(found, 1, stdout);
        if (o->fix) {
            printf(left->count ? "not repaired:\n" : "repaired\n");
            cmd_print_entries(left, 1, stdout);
        }
    }
    if (found->count == 0) {
        cmd_summarize(stats, "check: no drift; %s %s in %s matches profile %s", f->what, who,
                      f->where, f->profile);
    } else {
        cmd_summarize(stats, "check: %zu drift entr%s on %s %s in %s%s", found->count,
                      found->count == 1 ? "y" : "ies", f->what, who, f->where,
                      !o->fix       ? " (run check --fix to repair)"
                      : left->count ? ", not all repaired"
                                    : ", repaired");
    }
    return code;
}

static int onboard(const struct cmd_flow *f, const struct cg_options *o, void *res,
                   struct cg_run_stats *stats, struct cg_err *err)
{
    struct handover *ho = f->ho;
    struct rc_list *l = f->entries(res);
    const char *verb = cg_command_name(o->command);
    int delivered = 0;
    int rc = f->run(f->ctx, RC_MODE_APPLY, res, err);
    if (rc < 0) {
        /* a credential created before the failure is still stored and handed over */
        struct cg_err derr = {0};
        if (f->has_new_key(res)) {
            f->deliver(f->ctx, "OnboardingReport", l, 0, res, &delivered, &derr);
        } else if (ho->report_on) {
            handover_send(ho, "OnboardingReport", l, 0, err->msg, NULL, NULL, NULL, &derr);
        }
        f->print(f->ctx, verb, res);
        return CG_EXIT_FAIL;
    }
    rc = f->deliver(f->ctx, "OnboardingReport", l, 0, res, &delivered, err);
    if (rc == 0 && o->command == CG_CMD_ROTATE && !f->has_new_key(res)) {
        rc = f->rotate(f->ctx, res, &delivered, err);
    }
    f->print(f->ctx, verb, res);
    const char *file =
        o->credentials_out && strcmp(o->credentials_out, "-") ? o->credentials_out : NULL;
    if (delivered && !cmd_json_out(o)) {
        printf("%s %s handed over%s%s%s\n", f->credential, ho->stored.key_id,
               ho->report_on ? " to the platform" : "", file ? " and written to " : "",
               file ? file : "");
    }
    if (rc < 0) {
        return CG_EXIT_FAIL;
    }
    char tail[160] = "";
    if (delivered) {
        snprintf(tail, sizeof(tail), "; %s %s handed over", f->credential, ho->stored.key_id);
    }
    cmd_summarize(stats, "%s: %s %s in %s converged to profile %s, %zu change%s%s", verb, f->what,
                  f->principal(f->ctx, res), f->where, f->profile, l->count,
                  l->count == 1 ? "" : "s", tail);
    return CG_EXIT_OK;
}

static int offboard(const struct cmd_flow *f, const struct cg_options *o, void *res,
                    struct cg_run_stats *stats, struct cg_err *err)
{
    struct handover *ho = f->ho;
    struct rc_list *l = f->entries(res);
    int rc = f->run(f->ctx, RC_MODE_OFFBOARD, res, err);
    struct cg_err rerr = {0};
    int hrc = 0;
    if (rc == 0) {
        hrc = credstore_delete(&ho->store, &rerr);
        if (hrc == 0 && ho->report_on) {
            hrc = handover_send(ho, "OffboardingReport", l, 0, NULL, NULL, NULL, NULL, &rerr);
        }
    } else if (ho->report_on) {
        handover_send(ho, "OffboardingReport", l, 0, err->msg, NULL, NULL, NULL, &rerr);
    }
    f->print(f->ctx, "offboard", res);
    if (rc == 0 && hrc < 0) {
        *err = rerr;
        rc = hrc;
    }
    if (rc < 0) {
        return CG_EXIT_FAIL;
    }
    cmd_summarize(stats, "offboard: %zu change%s of profile %s in %s", l->count,
                  l->count == 1 ? "" : "s", f->profile, f->where);
    return CG_EXIT_OK;
}

int cmd_flow_run(const struct cmd_flow *f, const struct cg_options *o, struct k8s_client *k8s,
                 struct cg_run_stats *stats, struct cg_err *err)
{
    void *res = calloc(1, f->result_size);
    void *after = calloc(1, f->result_size);
    void *fixed = calloc(1, f->result_size);
    int code = CG_EXIT_FAIL;
    if (res == NULL || after == NULL || fixed == NULL) {
        cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    int mutates = o->command == CG_CMD_ONBOARD || o->command == CG_CMD_ROTATE ||
                  (o->command == CG_CMD_CHECK && o->fix);
    if (f->hands_key && mutates && !handover_has_channel(f->ho)) {
        cg_err_set(err, CG_EINVAL,
                   "profile '%s' hands a %s over, and there is nowhere to hand it: pass "
                   "--report-url URL (the platform), or --credentials-out FILE",
                   f->profile, f->credential);
        code = CG_EXIT_USAGE;
        goto out;
    }
    if (o->command == CG_CMD_ROTATE && !f->hands_key) {
        cg_err_set(err, CG_EINVAL, "profile '%s' %s", f->profile, f->no_key);
        code = CG_EXIT_USAGE;
        goto out;
    }
    /* The Secret is the record of which credential the platform has, and the write-ahead
     * store of a new one until it is delivered. */
    if (handover_store_open(f->ho, k8s, f->profile, err) < 0) {
        code = CG_EXIT_USAGE;
        goto out;
    }
    /* One run at a time on a credential; plan changes nothing and hands nothing over. */
    if (o->command != CG_CMD_PLAN && handover_lock(f->ho, err) < 0) {
        code = err->code == CG_EINVAL ? CG_EXIT_USAGE : CG_EXIT_FAIL;
        goto out;
    }
    if (f->hands_key && handover_store_read(f->ho, err) < 0) {
        goto out;
    }
    switch (o->command) {
    case CG_CMD_PLAN:
        code = plan(f, o, res, stats, err);
        break;
    case CG_CMD_CHECK:
        code = check(f, o, res, after, fixed, stats, err);
        break;
    case CG_CMD_ONBOARD:
    case CG_CMD_ROTATE:
        code = onboard(f, o, res, stats, err);
        break;
    case CG_CMD_OFFBOARD:
        code = offboard(f, o, res, stats, err);
        break;
    default:
        cg_err_set(err, CG_EINVAL, "command '%s' does not apply to %s", cg_command_name(o->command),
                   f->where);
        code = CG_EXIT_USAGE;
        break;
    }
out:
    handover_unlock(f->ho);
    fflush(stdout);
    if (stats != NULL) {
        stats->reads = stats->writes = 0;
        f->counts(f->ctx, &stats->reads, &stats->writes);
        stats->drift = o->command == CG_CMD_CHECK && res ? f->entries(res)->count : 0;
        stats->remaining = o->fix && after ? f->entries(after)->count : stats->drift;
    }
    void *results[] = {res, after, fixed};
    for (size_t i = 0; i < 3; i++) {
        if (results[i] != NULL) {
            f->cleanup(results[i]);
            free(results[i]);
        }
    }
    return code;
}
