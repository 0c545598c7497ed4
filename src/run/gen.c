/* gen.c - a suite's generations of guests (runner.c drives them): booting
 * one (its VMs from the suite's cfg into the suite's fleet), following its
 * guests' fleet events, and stopping it (sessions first, then the guests).
 * Like the rest of the runner, the callbacks here only record and kick;
 * advance() decides. */
#include "src/run/run_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/vm.h"

/* ---- guests ------------------------------------------------------------------- */

void run__fleet_event(fleet_t *f, fguest_t *g, fleet_state state, void *data)
{
    struct rsuite *s = data;
    (void)f;
    int i = 0;
    while (i < s->def->nguests && s->g[i].g != g)
        i++;
    if (i == s->def->nguests)
        return;
    st_guest *sg = &s->st.guests[i];
    json_free(sg->snap);
    sg->snap = fguest_json(g);
    json_t *e = json_object();
    json_set_str(e, "suite", s->st.name);
    json_set_str(e, "guest", sg->name);
    json_set_str(e, "instance", fguest_name(g));
    json_set_str(e, "state", fleet_state_name(state));
    json_set(e, "reason", state == GS_FAILED ? json_string(fguest_reason(g)) : json_null());
    status_event(s->r->out, "guest", e);
    status_changed(s->r->out, 0);
    if (state == GS_READY && !s->g[i].ready_seen) {
        s->g[i].ready_seen = 1;
        long long ms = json_get_int(json_get(sg->snap, "timings_ms"), "ready", -1);
        if (ms >= 0)
            status_boot_time(&s->r->st, ms / 1000.0);
    }
    if (s->st.state == SS_BOOTING || s->st.state == SS_RUNNING) {
        /* A migrate step in flight: the source's old QEMU stops at the
         * hand-over, a failed or cancelled migration ends the destination
         * (its QEMU exits); the step's outcome says what happened. */
        if (state == GS_FAILED && s->g[i].migrating != MIG_DST)
            run__set_infra(s, "guest %s (%s) failed: %s", sg->name, fguest_name(g), fguest_reason(g));
        else if ((state == GS_STOPPING || state == GS_STOPPED) && !s->g[i].migrating)
            run__set_infra(s, "guest %s (%s) was stopped from outside the suite", sg->name, fguest_name(g));
    }
    run__kick(s);
}

/* st_run.refresh: a queued guest's reason changes without a fleet event
 * (it waits while the cluster session is not live, fleet.h); its snapshot
 * follows here, so status.json says why as guests.json does. */
int run__refresh_reasons(st_run *m, void *data)
{
    struct runner *r = data;
    int changed = 0;
    (void)m;
    for (int i = 0; i < r->n; i++) {
        struct rsuite *s = r->s[i];
        for (int k = 0; s->f && s->st.state == SS_BOOTING && k < s->def->nguests; k++) {
            st_guest *sg = &s->st.guests[k];
            const char *was = json_get_str(sg->snap, "reason");
            if (!s->g[k].g || !strcmp(was ? was : "", fguest_reason(s->g[k].g)))
                continue;
            json_free(sg->snap);
            sg->snap = fguest_json(s->g[k].g);
            changed = 1;
        }
    }
    return changed;
}

void run__gen_start(struct rsuite *s)
{
    struct suite *d = s->def;
    char err[1024], name[CFG_NAME_MAX + 16];
    s->gen++;
    free(s->infra);
    s->infra = NULL;
    s->setup_error = 0;
    free(s->setup_all_failed);
    s->setup_all_failed = NULL;
    s->setup_all_done = 0;
    run__suite_enter(s, SS_BOOTING, NULL);
    for (int i = 0; i < d->nguests && !s->infra; i++) {
        struct cfg_vm *vm;
        if (cfg_vm_from_docs(d->doc, d->guests[i].section, d->defaults_doc, &vm, err, sizeof(err)) < 0) {
            run__set_infra(s, "%s", err);
            break;
        }
        const char *pfx = s->r->o.mac_prefix; /* checked by runner_add */
        if (pfx && cfg_vm_set(vm, "mac_prefix", pfx, err, sizeof(err)) < 0) {
            cfg_vm_free(vm);
            run__set_infra(s, "--mac-prefix: %s", err);
            break;
        }
        run__add_password(s, cfg_vm_info(vm)->password);
        run__instance_name(s->r, d->guests[i].name, name, sizeof(name));
        if (cfg_sock_paths_fit(s->st.run_dir, name, err, sizeof(err)) < 0) {
            cfg_vm_free(vm);
            s->setup_error = 1; /* the same on any retry: none */
            run__set_infra(s, "set-up error: %s", err);
            break;
        }
        if (fleet_add(s->f, vm, name, err, sizeof(err)) < 0) {
            run__set_infra(s, "%s", err);
            break;
        }
        s->g[i].g = fleet_find(s->f, name);
        s->g[i].ready_seen = 0;
        s->g[i].migrating = 0;
        st_guest *sg = &s->st.guests[i];
        snprintf(sg->instance, sizeof(sg->instance), "%s", name);
        sg->boots++;
        json_free(sg->snap);
        sg->snap = fguest_json(s->g[i].g);
    }
    if (!s->infra)
        fleet_start(s->f);
    run__kick(s);
}

/* ---- stopping a generation -------------------------------------------------- */

static void stop_dec(struct rsuite *s);

static void on_session_closed(guest_session_t *gs, void *data)
{
    (void)gs;
    stop_dec(data);
}

static void on_guest_stopped(fguest_t *g, void *data)
{
    (void)g;
    stop_dec(data);
}

/* Sessions first (the agent ones borrow the fleet's agent client, which
 * must outlive them), then the guests. The end is taken up by advance(). */
static void stop_dec(struct rsuite *s)
{
    if (--s->pending > 0)
        return;
    if (s->stop_stage == 1) {
        s->stop_stage = 2;
        s->pending = 1;
        for (int i = 0; i < s->def->nguests; i++) {
            if (s->g[i].g) {
                s->pending++;
                fguest_stop(s->g[i].g, on_guest_stopped, s);
            }
        }
        stop_dec(s);
        return;
    }
    s->stop_stage = 3;
    run__kick(s);
}

void run__gen_stop(struct rsuite *s, enum rafter after)
{
    s->after = after;
    s->st.current = -1;
    s->in_tda = 0;
    run__suite_enter(s, SS_STOPPING, NULL);
    s->stop_stage = 1;
    s->pending = 1 + run__sessions_close(s, on_session_closed, s);
    for (int i = 0; i < s->def->nguests; i++) {
        guest_session_t **ss[2] = { &s->g[i].ssh, &s->g[i].ag };
        for (int k = 0; k < 2; k++) {
            if (*ss[k]) {
                s->pending++;
                guest_close(*ss[k], on_session_closed, s);
                *ss[k] = NULL;
            }
        }
    }
    stop_dec(s);
}
