/* boot.c - one guest from leases to ready (stop.c takes it back down).
 *
 * fleet.c drives it (fleet__guest_boot; stop.c's _stop, _fail); every
 * change of g->state goes back through fleet__guest_changed() alone, which
 * decides nothing: whatever follows for the fleet (the next queued guest,
 * the owner's callbacks) happens later, from the fleet's own timer.
 *
 * Each phase is entered by an event (QMP ready, a reply, VSERPORT_CHANGE,
 * agent sync) and bounded by phase_timer. The only polling is for the DHCP
 * address, which nothing announces. QEMU's exit is seen through its pidfd
 * (proc.c) the moment it happens, in any phase. */
#include "src/fleet/fleet_int.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/fs.h"

#define QMP_CONNECT_MS 30000 /* at most, from launch to a negotiated QMP */
#define RUNNING_MS 15000
#define PCI_MS 15000
#define DHCP_POLL_MS 250
#define IDENTITY_MS 30000  /* a clone's identity through the agent */
#define SAVE_MS 120000     /* stop, migrate to the template file, cont */

static void next_phase(fguest_t *g);
static void on_phase_timeout(uv_timer_t *t);

static void phase_arm(fguest_t *g, int ms)
{
    uv_update_time(g->f->loop);
    uv_timer_start(&g->phase_timer, on_phase_timeout, (uint64_t)ms, 0);
}

int fleet__guest_booting(const fguest_t *g)
{
    return g->state >= GS_ALLOCATING && g->state < GS_READY;
}

void fleet__guest_init(fleet_t *f, fguest_t *g)
{
    g->f = f;
    for (int i = 0; i < GS_COUNT; i++)
        g->t_ms[i] = -1;
    uv_timer_init(f->loop, &g->phase_timer);
    uv_timer_init(f->loop, &g->poll_timer);
    uv_timer_init(f->loop, &g->stop_timer);
    g->phase_timer.data = g->poll_timer.data = g->stop_timer.data = g;
}

void fleet__guest_close(fguest_t *g, uv_close_cb cb)
{
    uv_close((uv_handle_t *)&g->phase_timer, cb);
    uv_close((uv_handle_t *)&g->poll_timer, cb);
    uv_close((uv_handle_t *)&g->stop_timer, cb);
}

void fleet__set_state(fguest_t *g, fleet_state s)
{
    g->state = s;
    if (s == GS_ALLOCATING) {
        g->started_ms = time_wall_ms();
        g->mono_start = uv_hrtime() / 1e6;
    }
    g->t_ms[s] = (long long)(uv_hrtime() / 1e6 - g->mono_start);
    fleet__guest_changed(g);
}

/* The control NIC (the one joined to the first user backend, whatever
 * its slot, as DTS reaches the guest) is found in the guest by its MAC:
 * the guest names interfaces as it likes. */
static const char *control_mac(const fguest_t *g)
{
    const struct cfg_nic_info *nic = &g->vi->nics[g->vi->control];
    return nic->mac ? nic->mac : g->res.macs[nic->mac_need];
}

static void on_phase_timeout(uv_timer_t *t)
{
    fguest_t *g = t->data;
    static const char *const what[GS_COUNT] = {
        [GS_LAUNCHING] = "QMP socket did not come up",
        [GS_QMP_CONNECTED] = "QEMU did not report running",
        [GS_RUNNING] = "guest agent never opened its port (the guest did not boot far enough)",
        [GS_AGENT_CONNECTED] = "no DHCP address on host_connect",
        [GS_NET_READY] = "query-pci did not answer",
        [GS_PCI_MAPPED] = "SSH login did not succeed",
    };
    double in_state = (uv_hrtime() / 1e6 - g->mono_start - (double)g->t_ms[g->state]) / 1000;
    if (g->state == GS_RESTORING &&
        fleet__guest_unclone(g, "QEMU did not load the template within %.0fs", in_state))
        return;
    const char *why = what[g->state] ? what[g->state] : "no progress";
    char buf[160];
    if (g->state == GS_PCI_MAPPED && g->cl.saving)
        why = "saving the template did not finish";
    else if (g->state == GS_AGENT_CONNECTED && g->cl.restoring && !g->cl.ided)
        why = "the clone's MACs, clock and hostname could not be set through the agent";
    else if (g->state == GS_RUNNING && g->port_open)
        why = "the guest opened its agent port but the agent never answered guest-sync";
    else if (g->state == GS_AGENT_CONNECTED && g->vi->control >= 0) {
        snprintf(buf, sizeof(buf), "no DHCP address on the control NIC %s (%s)",
                 g->vi->nics[g->vi->control].id, control_mac(g));
        why = buf;
    }
    fleet__guest_fail(g, "%s: timed out after %.0fs in state %s: %s", g->name, in_state,
                      fleet_state_name(g->state), why);
}

/* ---- QEMU process ---- */

static void launch(fguest_t *g);

static int log_has(fguest_t *g, const char *needle)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s-qemu.log", g->f->run_dir, g->fname);
    char *t = fs_tail(path, 8192);
    int has = t && strstr(t, needle);
    free(t);
    return has;
}

/* A forwarded port that another process bound between our bind test and
 * QEMU's own bind: take fresh ports and try once more. */
static int retry_port_race(fguest_t *g)
{
    if (g->port_retry_used || (!g->nd.ports && !g->nd.vnc) || g->state >= GS_RUNNING ||
        !(log_has(g, "Could not set up host forwarding rule") || log_has(g, "Address already in use")))
        return 0;
    g->port_retry_used = 1;
    char err[256];
    if (fleet__renew_ports(g, err, sizeof(err)) < 0) {
        fleet__guest_fail(g, "%s: no free port or VNC display after a port race: %s", g->name, err);
        return 1;
    }
    fprintf(stderr, "qfleet: %s: a host port was taken by another process, retrying with new ones\n",
            g->name);
    fleet__close_clients(g);
    fleet__drop_proc(g);
    g->agent_connected = g->port_open = g->syncing = 0;
    launch(g);
    return 1;
}

static void on_proc_exit(proc_t *p, int code, int sig, void *data)
{
    fguest_t *g = data;
    (void)p;
    if (g->state == GS_STOPPING) {
        fleet__stop_finish(g);
        return;
    }
    if (g->state == GS_STOPPED || g->state == GS_FAILED)
        return;
    if (retry_port_race(g))
        return;
    if (fleet__guest_unclone(g, "QEMU (pid %d) exited with status %d while loading the template", (int)g->pid,
                       sig ? 128 + sig : code))
        return;
    /* Stop connects still retrying; open channels drain what QEMU wrote
     * before dying, then see EOF. */
    if (g->qmp)
        qmp_peer_exited(g->qmp);
    if (g->agent)
        agent_peer_exited(g->agent);
    if (sig)
        fleet__guest_fail(g, "%s: QEMU (pid %d) was killed by signal %d (SIG%s) in state %s", g->name, (int)g->pid,
                sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", fleet_state_name(g->state));
    else
        fleet__guest_fail(g, "%s: QEMU (pid %d) exited with status %d in state %s", g->name, (int)g->pid, code,
                fleet_state_name(g->state));
}

/* ---- QMP ---- */

static void start_agent_sync(fguest_t *g);

static void on_qmp_event(qmp_t *q, const qmp_event *ev, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (!strcmp(ev->name, "VSERPORT_CHANGE")) {
        const char *id = json_get_str(ev->data, "id");
        if (!id || strcmp(id, "qga0port"))
            return;
        if (json_get_bool(ev->data, "open", 0)) {
            g->port_open = 1;
            if (ev->seconds >= 0 && !g->port_open_ms)
                g->port_open_ms = ev->seconds * 1000 + ev->microseconds / 1000 - g->started_ms;
            start_agent_sync(g);
        } else {
            g->port_open = 0;
            if (g->agent)
                agent_port_closed(g->agent);
        }
    } else if (!strcmp(ev->name, "SHUTDOWN")) {
        g->got_shutdown = 1;
        if (g->state == GS_STOPPING && g->stop_stage == STOP_AGENT) {
            /* The guest powered off and QEMU exits by itself; quit is the
             * fallback should it not. */
            uv_timer_stop(&g->stop_timer);
            fleet__stop_next(g);
        }
    }
}

/* DTS pins the whole QEMU to the cpupin set (taskset) and vCPU i to
 * cpupin[i]. Every thread QEMU has now gets the set; threads it makes later
 * inherit it from their creator; then each vCPU thread gets its own CPU. */
static void pin_cpus(fguest_t *g, const json_t *cpus)
{
    const int *pin = g->vi->cpupin;
    int n = g->vi->ncpupin;
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int i = 0; i < n; i++)
        CPU_SET(pin[i], &all);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)g->pid);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.' && sched_setaffinity((pid_t)atoi(de->d_name), sizeof(all), &all) < 0)
            fprintf(stderr, "qfleet: %s: pinning QEMU thread %s: %s\n", g->name, de->d_name, strerror(errno));
    if (d)
        closedir(d);
    for (size_t i = 0; i < json_len(cpus); i++) {
        const json_t *c = json_at(cpus, i);
        long long tid = json_get_int(c, "thread-id", -1), idx = json_get_int(c, "cpu-index", (long long)i);
        if (tid <= 0)
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(pin[idx % n], &one);
        if (sched_setaffinity((pid_t)tid, sizeof(one), &one) < 0)
            fprintf(stderr, "qfleet: %s: pinning vCPU %lld: %s\n", g->name, idx, strerror(errno));
    }
}

static void on_cpus(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (r->err)
        fprintf(stderr, "qfleet: %s: query-cpus-fast: %s\n", g->name, r->err->desc);
    else if (g->state < GS_STOPPING)
        pin_cpus(g, r->ret);
}

static void on_chardevs(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (r->err || !fleet__guest_booting(g))
        return;
    /* The guest may have opened the port before we subscribed. */
    for (size_t i = 0; i < json_len(r->ret); i++) {
        const json_t *c = json_at(r->ret, i);
        const char *label = json_get_str(c, "label");
        if (label && !strcmp(label, "qga0") && json_get_bool(c, "frontend-open", 0)) {
            g->port_open = 1;
            start_agent_sync(g);
        }
    }
}

/* ---- migration destination ---- */

/* QEMU waits for an incoming migration: park. Leases stay, QMP stays; the
 * agent socket stays connected but is not written to (no guest runs). */
static void await_migration(fguest_t *g)
{
    uv_timer_stop(&g->phase_timer);
    fleet__set_state(g, GS_AWAITING_MIGRATION);
}

void fleet__guest_migrated_in(fguest_t *g)
{
    if (g->state != GS_AWAITING_MIGRATION && g->state != GS_RESTORING)
        return;
    fleet__set_state(g, GS_RUNNING);
    if (g->vi->ncpupin)
        qmp_execute(g->qmp, "query-cpus-fast", NULL, 0, on_cpus, g);
    if (!g->vi->qga) {
        next_phase(g);
        return;
    }
    /* The guest opened its agent port on the source; the port comes over
     * open and QEMU sends no VSERPORT_CHANGE for it: sync at once. */
    g->port_open = 1;
    phase_arm(g, fleet__ms_of(g->f->o.boot_timeout_s, g->vi->wait_seconds));
    start_agent_sync(g);
}

/* ---- warm clone: the walk's hooks (template.c decides and saves) ---- */

/* The template did not load: drop it and boot this guest cold in a fresh
 * QEMU with the same leases; it saves a new template on its way. */
int fleet__guest_unclone(fguest_t *g, const char *fmt, ...)
{
    if (!g->cl.restoring || g->state >= GS_RUNNING || g->state < GS_LAUNCHING)
        return 0;
    char why[FLEET_REASON_MAX / 2], path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int off = vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s-qemu.log", g->f->run_dir, g->fname);
    char *t = fs_tail_text(path, 400), *nl;
    while (t && (nl = strrchr(t, '\n')) && !nl[1])
        *nl = 0; /* the last line QEMU wrote says why */
    if (t && *t && off > 0 && (size_t)off < sizeof(why))
        snprintf(why + off, sizeof(why) - (size_t)off, ": %s", strrchr(t, '\n') ? strrchr(t, '\n') + 1 : t);
    free(t);
    fleet__template_drop(g, why);
    uv_timer_stop(&g->poll_timer);
    fleet__close_clients(g);
    fleet__drop_proc(g);
    g->agent_connected = g->port_open = g->syncing = 0;
    g->cl.restoring = 0;
    g->cl.save = 1;
    g->res.incoming = NULL;
    launch(g);
    return 1;
}

/* QEMU reads the template (-incoming) and says "inmigrate" until it is in. */
static void restore_start(fguest_t *g)
{
    g->cl.t0 = time_mono_ms();
    fleet__set_state(g, GS_RESTORING);
    phase_arm(g, fleet__ms_of(g->f->o.boot_timeout_s, g->vi->wait_seconds));
    fleet__clone_restore_poll(g);
}

void fleet__guest_saved(fguest_t *g)
{
    g->cl.save = g->cl.saving = 0;
    if (g->state == GS_PCI_MAPPED)
        next_phase(g);
}

void fleet__guest_identity_done(fguest_t *g, const char *error)
{
    if (g->state != GS_AGENT_CONNECTED)
        return;
    if (error) {
        fleet__guest_fail(g, "%s: giving the clone its identity: %s", g->name, error);
        return;
    }
    g->cl.ided = 1;
    next_phase(g);
}

/* A QMP command of the boot failed. A lost connection is QEMU's exit (or
 * soon a QMP-dead or phase timeout): on_proc_exit reports that with what
 * killed it, which says more, so only other failures are news here. */
static void qmp_cmd_failed(fguest_t *g, const char *cmd, const conn_err *e)
{
    if (!strcmp(e->cls, CONN_ERR_DISCONNECTED))
        return;
    fleet__guest_fail(g, "%s: %s: %s", g->name, cmd, e->desc);
}

static void on_status(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    if (g->state != GS_QMP_CONNECTED)
        return;
    if (r->err) {
        qmp_cmd_failed(g, "query-status", r->err);
        return;
    }
    const char *status = json_get_str(r->ret, "status");
    /* A small template may be in before the first query-status: paused. */
    if (status && (!strcmp(status, "inmigrate") || !strcmp(status, "paused")) && g->cl.restoring) {
        restore_start(g);
        return;
    }
    if (status && !strcmp(status, "inmigrate") && g->vi->migrate) {
        await_migration(g);
        return;
    }
    if (!status || strcmp(status, "running")) {
        fleet__guest_fail(g, "%s: QEMU is %s, not running", g->name, status ? status : "in an unknown state");
        return;
    }
    fleet__set_state(g, GS_RUNNING);
    if (g->vi->ncpupin)
        qmp_execute(q, "query-cpus-fast", NULL, 0, on_cpus, g);
    if (g->vi->qga) {
        phase_arm(g, fleet__ms_of(g->f->o.boot_timeout_s, g->vi->wait_seconds));
        qmp_execute(q, "query-chardev", NULL, 0, on_chardevs, g);
    } else {
        next_phase(g);
    }
}

static void on_qmp_ready(qmp_t *q, const conn_err *err, void *data)
{
    fguest_t *g = data;
    if (g->state != GS_LAUNCHING)
        return;
    if (err) {
        /* An aborted connect means QEMU exited: on_proc_exit reports that
         * with the exit status, which says more. */
        if (err->code != -ECONNABORTED)
            fleet__guest_fail(g, "%s: %s", g->name, err->desc);
        return;
    }
    const qmp_greeting *gr = qmp_get_greeting(q);
    (void)gr;
    /* QEMU made its taps before it served QMP. */
    char why[512];
    if (fleet__bridges_attach(g, why, sizeof(why)) < 0) {
        fleet__guest_fail(g, "%s: %s", g->name, why);
        return;
    }
    qmp_subscribe(q, NULL, on_qmp_event, g);
    fleet__set_state(g, GS_QMP_CONNECTED);
    phase_arm(g, RUNNING_MS);
    qmp_execute(q, "query-status", NULL, 0, on_status, g);
}

static void on_qmp_dead(qmp_t *q, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)q;
    /* EOF comes with QEMU's exit, which on_proc_exit reports with its
     * status; only a protocol failure of a living QEMU is news here. */
    if (fleet__guest_booting(g) && err->code != -ECONNRESET && proc_running(g->proc))
        fleet__guest_fail(g, "%s: QMP connection lost: %s", g->name, err->desc);
}

/* ---- agent ---- */

static void on_agent_connected(agent_t *a, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)a;
    if (err) {
        if (err->code != -ECANCELED && err->code != -ECONNABORTED && fleet__guest_booting(g))
            fleet__guest_fail(g, "%s: agent socket: %s", g->name, err->desc);
        return;
    }
    g->agent_connected = 1;
    start_agent_sync(g);
}

static void on_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err, void *data);

static void poll_ifaces(uv_timer_t *t)
{
    fguest_t *g = t->data;
    if (g->state == GS_AGENT_CONNECTED && g->agent)
        agent_get_interfaces(g->agent, 5000, on_ifaces, g);
}

static void on_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)a;
    if (g->state != GS_AGENT_CONNECTED)
        return;
    if (!err) {
        const char *mac = control_mac(g);
        for (size_t i = 0; i < n; i++) {
            if (!ifs[i].hwaddr || strcasecmp(ifs[i].hwaddr, mac))
                continue;
            for (size_t k = 0; k < ifs[i].naddrs; k++) {
                if (ifs[i].addrs[k].family == 4) {
                    snprintf(g->ip, sizeof(g->ip), "%s", ifs[i].addrs[k].addr);
                    fleet__set_state(g, GS_NET_READY);
                    next_phase(g);
                    return;
                }
            }
        }
    }
    /* No address yet (or a transient agent error): ask again shortly. */
    uv_timer_start(&g->poll_timer, poll_ifaces, DHCP_POLL_MS, 0);
}

static void on_synced(agent_t *a, const conn_err *err, void *data)
{
    fguest_t *g = data;
    (void)a;
    g->syncing = 0;
    if (g->state != GS_RUNNING)
        return;
    if (err) {
        /* The port can flap while the guest's agent restarts; the next
         * VSERPORT_CHANGE tries again. A dead channel fails the guest. */
        if (g->agent && agent_error(g->agent))
            fleet__guest_fail(g, "%s: agent: %s", g->name, err->desc);
        else if (g->port_open)
            start_agent_sync(g);
        return;
    }
    fleet__set_state(g, GS_AGENT_CONNECTED);
    next_phase(g);
}

static void start_agent_sync(fguest_t *g)
{
    /* Never write to the agent before the guest opened its port. */
    if (!g->agent || !g->agent_connected || !g->port_open || g->syncing || g->state != GS_RUNNING)
        return;
    g->syncing = 1;
    if (agent_sync(g->agent, 0, on_synced, g) < 0)
        g->syncing = 0;
}

/* ---- PCI map and SSH ---- */

static void on_pci(qmp_t *q, const qmp_reply *r, void *data)
{
    fguest_t *g = data;
    (void)q;
    if (g->state != GS_NET_READY && g->state != GS_RUNNING && g->state != GS_AGENT_CONNECTED)
        return;
    if (r->err) {
        qmp_cmd_failed(g, "query-pci", r->err);
        return;
    }
    g->npt = 0;
    const struct cfg_vm_info *vi = g->vi;
    for (int k = 0; k < vi->npt && k < FLEET_PT_MAX; k++) {
        int found = 0;
        for (size_t b = 0; b < json_len(r->ret) && !found; b++) {
            const json_t *bus = json_at(r->ret, b);
            long long busn = json_get_int(bus, "bus", 0);
            const json_t *devs = json_get(bus, "devices");
            for (size_t d = 0; d < json_len(devs); d++) {
                const json_t *dev = json_at(devs, d);
                const char *qid = json_get_str(dev, "qdev_id");
                if (!qid || strcmp(qid, vi->pt[k].id))
                    continue;
                snprintf(g->pt[g->npt].id, sizeof(g->pt[0].id), "%s", qid);
                snprintf(g->pt[g->npt].addr, sizeof(g->pt[0].addr), "0000:%02llx:%02llx.%llx", busn,
                         json_get_int(dev, "slot", 0), json_get_int(dev, "function", 0));
                const char *host = vi->pt[k].host ? vi->pt[k].host
                                   : vi->pt[k].pool ? g->res.vf_host[vi->pt[k].vf_need] /* leased */
                                                    : "";
                snprintf(g->pt[g->npt].host, sizeof(g->pt[0].host), "%s", host);
                g->npt++;
                found = 1;
                break;
            }
        }
        if (!found) {
            fleet__guest_fail(g, "%s: %s is not in query-pci", g->name, vi->pt[k].id);
            return;
        }
    }
    fleet__set_state(g, GS_PCI_MAPPED);
    next_phase(g);
}

static void on_ssh(guest_session_t *s, const guest_result *r, void *data)
{
    fguest_t *g = data;
    (void)s;
    if (g->state != GS_PCI_MAPPED)
        return;
    if (r->status < 0) {
        fleet__guest_fail(g, "%s", r->error ? r->error : "ssh failed");
        return;
    }
    fleet__set_state(g, GS_SSH_READY);
    next_phase(g);
}

static int start_ssh(fguest_t *g)
{
    const char *addr;
    int port;
    if (cfg_vm_ssh(g->vm, &g->res, &addr, &port) < 0)
        return 0;
    char kh[PATH_MAX];
    /* Per guest, not per run: forwarded ports are reused by other guests
     * within a run, and known_hosts keys entries by [host]:port. */
    snprintf(kh, sizeof(kh), "%s/%s-known_hosts", g->f->run_dir, g->name);
    snprintf(g->ssh_host, sizeof(g->ssh_host), "%s", addr);
    g->ssh_port = port;
    int ms = fleet__ms_of(g->f->o.ssh_timeout_s, g->vi->login_timeout);
    guest_opts o = {
        .name = g->name,
        .transport = GUEST_SSH,
        .ssh = { .host = addr, .port = port, .user = g->vi->user, .password = g->vi->password,
                 .known_hosts = kh, .connect_timeout_ms = ms },
    };
    if (guest_open(g->f->loop, &o, NULL, NULL, &g->ssh) < 0)
        return -1;
    phase_arm(g, ms + 5000);
    if (guest_exec(g->ssh, "true", ms, on_ssh, g) < 0)
        return -1;
    return 1;
}

/* Move on from the state just reached to the next phase that applies. */
static void next_phase(fguest_t *g)
{
    const struct cfg_vm_info *vi = g->vi;
    switch (g->state) {
    case GS_RUNNING:
    case GS_AGENT_CONNECTED:
        if (g->state == GS_AGENT_CONNECTED && g->cl.restoring && !g->cl.ided) {
            phase_arm(g, IDENTITY_MS); /* MACs, time, hostname: then on */
            fleet__clone_identity(g);
            return;
        }
        if (g->state == GS_AGENT_CONNECTED && vi->control >= 0) {
            phase_arm(g, fleet__ms_of(g->f->o.net_timeout_s, 60));
            poll_ifaces(&g->poll_timer);
            return;
        }
        /* fall through - no address to wait for */
    case GS_NET_READY:
        phase_arm(g, PCI_MS);
        qmp_execute(g->qmp, "query-pci", NULL, PCI_MS, on_pci, g);
        return;
    case GS_PCI_MAPPED:
        if (!g->cl.saving && fleet__template_save(g)) {
            phase_arm(g, SAVE_MS); /* fleet__guest_saved comes back here */
            return;
        }
        if (vi->user && !g->f->o.no_ssh) {
            int rc = start_ssh(g);
            if (rc < 0)
                fleet__guest_fail(g, "%s: cannot start an SSH session", g->name);
            if (rc != 0)
                return;
        }
        /* fall through */
    case GS_SSH_READY:
        uv_timer_stop(&g->phase_timer);
        fleet__set_state(g, GS_READY);
        return;
    default:
        return;
    }
}

/* ---- launch ---- */

static void connect_clients(fguest_t *g);

static void launch(fguest_t *g)
{
    fleet_t *f = g->f;
    char err[512], path[PATH_MAX], **argv;
    fleet__set_state(g, GS_LAUNCHING);
    if (cfg_argv_build(g->vm, &g->res, &argv, err, sizeof(err)) < 0) {
        fleet__guest_fail(g, "%s: %s", g->name, err);
        return;
    }
    /* QEMU's -serial file: follows links and truncates: the file is made
     * here first, 0600 and never through a link. */
    if (cfg_run_path(g->vm, &g->res, CFG_RUN_SERIAL, path, sizeof(path)) == 0) {
        int fd = fs_open_in(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, err, sizeof(err));
        if (fd < 0) {
            cfg_argv_free(argv);
            fleet__guest_fail(g, "%s: serial log %s", g->name, err);
            return;
        }
        close(fd);
    }
    int rc = fleet__bridges_check(g->vi, err, sizeof(err));
    if (rc < 0) {
        cfg_argv_free(argv);
        fleet__guest_fail(g, "%s: %s", g->name, err);
        return;
    }
    snprintf(path, sizeof(path), "%s/%s-qemu.log", f->run_dir, g->fname);
    /* Pinned from the first instruction, as DTS's taskset: hugepage
     * preallocation runs on the VM's CPUs; vCPUs are pinned one by one
     * once QEMU runs (pin_cpus). */
    proc_opts po = { .argv = argv, .log_path = path, .cpus = g->vi->cpupin,
                     .ncpus = g->vi->ncpupin };
    rc = proc_start(f->loop, &po, on_proc_exit, g, &g->proc, err, sizeof(err));
    cfg_argv_free(argv);
    if (rc < 0) {
        fleet__guest_fail(g, "%s: launching QEMU: %s", g->name, err);
        return;
    }
    g->pid = proc_pid(g->proc);
    connect_clients(g);
}

/* QEMU was started: its QMP socket, and the agent's when the guest has one. */
static void connect_clients(fguest_t *g)
{
    fleet_t *f = g->f;
    char path[PATH_MAX];
    /* QMP's own deadline (connect, greeting, negotiation) is the boot
     * timeout, capped so a wedged QEMU is not waited on for minutes; the
     * phase timer is a margin later, so QMP's more precise reason wins. */
    int qmp_ms = fleet__ms_of(f->o.boot_timeout_s, g->vi->wait_seconds);
    if (qmp_ms > QMP_CONNECT_MS)
        qmp_ms = QMP_CONNECT_MS;
    phase_arm(g, qmp_ms + 2000);
    if (qmp_new(f->loop, &g->qmp) < 0 ||
        cfg_run_path(g->vm, &g->res, CFG_RUN_QMP, path, sizeof(path)) < 0) {
        fleet__guest_fail(g, "%s: cannot set up the QMP client", g->name);
        return;
    }
    qmp_set_dead_cb(g->qmp, on_qmp_dead, g);
    int rc = qmp_connect(g->qmp, path, qmp_ms, on_qmp_ready, g);
    if (rc < 0) {
        fleet__guest_fail(g, "%s: QMP connect to %s: %s", g->name, path, strerror(-rc));
        return;
    }
    if (!g->vi->qga)
        return;
    /* Connecting to the agent chardev is harmless; writing waits for the
     * guest to open its port (VSERPORT_CHANGE). */
    if (agent_new(f->loop, &g->agent) < 0 ||
        cfg_run_path(g->vm, &g->res, CFG_RUN_QGA, path, sizeof(path)) < 0 ||
        agent_connect(g->agent, path, 0, on_agent_connected, g) < 0)
        fleet__guest_fail(g, "%s: cannot set up the agent client", g->name);
}

void fleet__guest_boot(fguest_t *g)
{
    char err[512], owner[ALLOC_OWNER_MAX];
    g->reason[0] = '\0'; /* a queued guest's "waiting: ..." */
    fleet__set_state(g, GS_ALLOCATING);
    snprintf(owner, sizeof(owner), "%s/%s", g->f->run_id, g->name);
    if (alloc_owner_init(&g->owner, owner, getpid(), err, sizeof(err)) < 0) {
        fleet__guest_fail(g, "%s: %s", g->name, err);
        return;
    }
    cfg_vm_needs(g->vm, &g->nd);
    memset(&g->res, 0, sizeof(g->res));
    g->res.run_dir = g->f->run_dir;
    g->res.name = g->fname;
    if (fleet__place_devices(g, err, sizeof(err)) < 0 || fleet__take_leases(g, err, sizeof(err)) < 0 ||
        fleet__claims_start(g, err, sizeof(err)) < 0) {
        fleet__guest_fail(g, "%s: allocating: %s", g->name, err);
        return;
    }
    if (!g->claiming) /* else claims.c launches once the cluster said yes */
        fleet__guest_launch(g);
}

void fleet__guest_launch(fguest_t *g)
{
    fleet__clone_plan(g); /* may set res.incoming: start from the template */
    launch(g);
}
