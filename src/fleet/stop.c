/* stop.c - one guest back down: a graceful stop in stages, or a failure.
 *
 * boot.c brings the guest up and calls in here when QEMU exits while
 * stopping (fleet__stop_finish) or the guest powered off (fleet__stop_next);
 * fleet.c calls fleet__guest_stop and fleet__guest_fail. Like boot.c, every
 * change of g->state goes through fleet__set_state and so back to
 * fleet.c's advance(); nothing is decided here for the fleet. */
#include "src/fleet/fleet_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"

#define QUIT_MS 3000
#define TERM_GRACE_MS 3000
#define TAIL_BYTES 1500

/* ---- clients and process ---- */

void fleet__close_clients(fguest_t *g)
{
    if (g->ssh) {
        guest_close(g->ssh, NULL, NULL);
        g->ssh = NULL;
    }
    if (g->agent) {
        agent_peer_exited(g->agent);
        agent_close(g->agent, NULL, NULL);
        g->agent = NULL;
    }
    if (g->qmp) {
        qmp_peer_exited(g->qmp);
        qmp_close(g->qmp, NULL, NULL);
        g->qmp = NULL;
    }
}

static void proc_closed(proc_t *p, void *data) { (void)p; (void)data; }

void fleet__drop_proc(fguest_t *g)
{
    if (g->proc) {
        proc_close(g->proc, proc_closed, NULL); /* kills the group if alive */
        g->proc = NULL;
    }
}

static void append_tail(fguest_t *g, size_t *off, const char *label, const char *path)
{
    char *t = fs_tail_text(path, TAIL_BYTES); /* the guest's bytes, made safe to print */
    if (t && *t) {
        char *masked = cfg_vm_mask(g->vm, t);
        *off += (size_t)snprintf(g->reason + *off, sizeof(g->reason) - *off,
                                 "\n--- %s (tail) ---\n%s", label, masked ? masked : "");
        free(masked);
    }
    free(t);
    if (*off >= sizeof(g->reason))
        *off = sizeof(g->reason) - 1;
}

/* ---- failure ---- */

void fleet__guest_fail(fguest_t *g, const char *fmt, ...)
{
    if (g->state == GS_FAILED || g->state == GS_STOPPED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->reason, sizeof(g->reason), fmt, ap);
    va_end(ap);
    size_t off = strlen(g->reason);
    if (g->state >= GS_LAUNCHING) {
        char path[PATH_MAX];
        if (cfg_run_path(g->vm, &g->res, CFG_RUN_SERIAL, path, sizeof(path)) == 0)
            append_tail(g, &off, "serial console", path);
        snprintf(path, sizeof(path), "%s/%s-qemu.log", g->f->run_dir, g->fname);
        append_tail(g, &off, "QEMU stderr", path);
    }
    uv_timer_stop(&g->phase_timer);
    uv_timer_stop(&g->poll_timer);
    uv_timer_stop(&g->stop_timer);
    fleet__close_clients(g);
    fleet__drop_proc(g);
    fleet__release(g);
    fleet__set_state(g, GS_FAILED);
}

/* ---- stop ---- */

static void on_stop_timer(uv_timer_t *t) { fleet__stop_next(t->data); }

void fleet__stop_finish(fguest_t *g)
{
    uv_timer_stop(&g->stop_timer);
    fleet__close_clients(g);
    fleet__drop_proc(g);
    fleet__release(g);
    fleet__set_state(g, GS_STOPPED);
}

/* On to the next stage of a graceful stop (enum stop_stage) that applies:
 * a stage QEMU cannot take (no synced agent, no QMP) is skipped. */
void fleet__stop_next(fguest_t *g)
{
    fleet_t *f = g->f;
    uv_update_time(f->loop);
    if (g->stop_stage < STOP_AGENT) {
        g->stop_stage = STOP_AGENT;
        if (g->agent && agent_is_synced(g->agent) && !g->got_shutdown && !g->migrated_away &&
            agent_shutdown(g->agent, "powerdown", NULL, NULL) == 0) {
            uv_timer_start(&g->stop_timer, on_stop_timer, (uint64_t)fleet__ms_of(f->o.stop_timeout_s, 20),
                           0);
            return;
        }
    }
    if (g->stop_stage < STOP_QUIT) {
        g->stop_stage = STOP_QUIT;
        if (g->qmp && qmp_is_ready(g->qmp) && qmp_execute(g->qmp, "quit", NULL, QUIT_MS, NULL, NULL) == 0) {
            uv_timer_start(&g->stop_timer, on_stop_timer, QUIT_MS, 0);
            return;
        }
    }
    g->stop_stage = STOP_KILL;
    if (g->proc && proc_running(g->proc))
        proc_stop(g->proc, TERM_GRACE_MS);
    else
        fleet__stop_finish(g);
}

void fleet__guest_stop(fguest_t *g)
{
    if (g->state == GS_STOPPING || g->state == GS_STOPPED || g->state == GS_FAILED)
        return;
    uv_timer_stop(&g->phase_timer);
    uv_timer_stop(&g->poll_timer);
    if (g->state == GS_QUEUED) {
        fleet__set_state(g, GS_STOPPED);
        return;
    }
    fleet__set_state(g, GS_STOPPING);
    g->stop_stage = STOP_NONE;
    fleet__stop_next(g);
}
