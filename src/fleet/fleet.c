/* fleet.c - the guests of one run: run directory, boot slots (--jobs),
 * registry (guests.json), event log (events.jsonl), stop-all.
 *
 * Every decision is taken in advance(), which runs from the fleet's own
 * zero-delay timer (f->kick), the way src/run/runner.c drives its suites.
 * A guest's machine (boot.c) only reports a change through
 * fleet__guest_changed(), which records it and kicks: so starting the next
 * queued guest never happens inside the QMP or process callback of the one
 * that just failed, a failure that is synchronous does not recurse into
 * the next boot (900 guests with a missing QEMU binary are one loop, not
 * 900 nested frames), and the owner is never called back from inside a
 * guest's callbacks or its own calls. */
#include "src/fleet/fleet_int.h"
#include "base/time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"

static const char *const state_names[GS_COUNT] = {
    [GS_QUEUED] = "queued",
    [GS_ALLOCATING] = "allocating",
    [GS_LAUNCHING] = "launching",
    [GS_QMP_CONNECTED] = "qmp-connected",
    [GS_RESTORING] = "restoring",
    [GS_RUNNING] = "running",
    [GS_AGENT_CONNECTED] = "agent-connected",
    [GS_NET_READY] = "net-ready",
    [GS_PCI_MAPPED] = "pci-mapped",
    [GS_SSH_READY] = "ssh-ready",
    [GS_READY] = "ready",
    [GS_AWAITING_MIGRATION] = "awaiting-migration",
    [GS_STOPPING] = "stopping",
    [GS_STOPPED] = "stopped",
    [GS_FAILED] = "failed",
};

const char *fleet_state_name(fleet_state s)
{
    return s >= 0 && s < GS_COUNT ? state_names[s] : "?";
}

int fleet_state_from_name(const char *name)
{
    for (int s = 0; name && s < GS_COUNT; s++)
        if (!strcmp(state_names[s], name))
            return s;
    return -1;
}

static void kick(fleet_t *f);

static int write_controller(fleet_t *f, char *err, size_t errlen)
{
    unsigned long long start = 0;
    alloc_proc_start(getpid(), &start);
    json_t *o = json_object();
    json_set_int(o, "version", 1);
    json_set_str(o, "run", f->run_id);
    json_set_int(o, "pid", getpid());
    json_set_int(o, "start_time", (long long)start);
    json_set_int(o, "started_ms", time_wall_ms());
    json_set_str(o, "control", "control.sock");
    json_set_str(o, "cfg", f->cfg_path);
    size_t n;
    char *s = json_dump_pretty(o, &n);
    json_free(o);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/controller.json", f->run_dir);
    int rc = s ? fs_write_atomic(path, s, n, 0600, err, errlen) : -ENOMEM;
    free(s);
    return rc;
}

/* A run dir given with --run-dir lives outside STATE/runs; a symlink there
 * lets `qfleet down`, `qmpctl list` and friends find it like any other. */
static void link_run(fleet_t *f)
{
    char abs[PATH_MAX], runs[PATH_MAX], link[PATH_MAX];
    snprintf(runs, sizeof(runs), "%s/runs", f->state_dir);
    if (!realpath(f->run_dir, abs) || fs_mkdir_p(runs, 0700, 0) < 0)
        return;
    snprintf(link, sizeof(link), "%s/%s", runs, f->run_id);
    if (strncmp(abs, runs, strlen(runs)) != 0 && symlink(abs, link) < 0)
        fprintf(stderr, "qfleet: %s: %s\n", link, strerror(errno));
}

/* The state dir, this fleet's run id, its run dir and the cfg's absolute
 * path, into f and f->o. */
static int fleet_paths(fleet_t *f, const fleet_opts *o, char *err, size_t errlen)
{
    int rc;
    if (o->state_dir)
        snprintf(f->state_dir, sizeof(f->state_dir), "%s", o->state_dir);
    else if ((rc = alloc_state_dir_default(f->state_dir, sizeof(f->state_dir))) < 0) {
        snprintf(err, errlen, "no state dir: set QFLEET_STATE_DIR or --state-dir");
        return rc;
    }
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    /* Leases are owned by RUN/NAME: fleets of one process (a suite
     * run starts several in the same second) need distinct run ids. */
    static int seq;
    if (seq++)
        snprintf(f->run_id, sizeof(f->run_id), "%s-%d-%d", stamp, (int)getpid(), seq);
    else
        snprintf(f->run_id, sizeof(f->run_id), "%s-%d", stamp, (int)getpid());
    if (o->run_dir)
        snprintf(f->run_dir, sizeof(f->run_dir), "%s", o->run_dir);
    else
        snprintf(f->run_dir, sizeof(f->run_dir), "%s/runs/%s", f->state_dir, f->run_id);
    if (o->cfg_path && !realpath(o->cfg_path, f->cfg_path))
        snprintf(f->cfg_path, sizeof(f->cfg_path), "%s", o->cfg_path);
    f->o.state_dir = f->state_dir;
    f->o.run_dir = f->run_dir;
    f->o.cfg_path = f->cfg_path;
    return 0;
}

/* The lease store, the run dir (private), its runs/ link, the controller
 * record and events.jsonl. What was opened stays in f on failure. */
static int fleet_open_run(fleet_t *f, const fleet_opts *o, char *err, size_t errlen)
{
    /* The store checks the state dir before anything is made in it (the
     * default run dir, the runs/ links). */
    int rc = alloc_store_open(&f->store, f->state_dir, NULL, err, errlen);
    if (rc < 0)
        return rc;
    /* One of ours is tightened to 0700; one others own or can write
     * in is refused: links planted there would redirect our logs. */
    char why[768];
    rc = fs_dir_open(f->run_dir, 0700, FS_DIR_PRIVATE | FS_DIR_TIGHTEN, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "run dir %s", why);
        return rc;
    }
    close(rc);
    if (o->run_dir)
        link_run(f);
    if ((rc = write_controller(f, err, errlen)) < 0)
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/events.jsonl", f->run_dir);
    f->evfd = fs_open_in(path, O_WRONLY | O_CREAT | O_APPEND, 0600, err, errlen);
    return f->evfd < 0 ? f->evfd : 0;
}

int fleet_new(uv_loop_t *loop, const fleet_opts *o, fleet_event_cb cb, void *data, fleet_t **out,
              char *err, size_t errlen)
{
    fleet_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->loop = loop;
    f->o = *o;
    f->cb = cb;
    f->data = data;
    f->evfd = -1;
    int rc = fleet_paths(f, o, err, errlen);
    if (rc == 0)
        rc = fleet_open_run(f, o, err, errlen);
    if (rc < 0) {
        if (f->store)
            alloc_store_close(f->store);
        if (f->evfd >= 0)
            close(f->evfd);
        free(f);
        return rc;
    }
    uv_timer_init(loop, &f->kick);
    f->kick.data = f;
    if (o->cluster) { /* until the owner tells a change */
        f->cl_state = cluster_get_state(o->cluster);
        f->cl_since_ms = f->cl_state == CLUSTER_LIVE ? 0 : time_wall_ms();
    }
    *out = f;
    return 0;
}

int fleet_add(fleet_t *f, struct cfg_vm *vm, const char *name, char *err, size_t errlen)
{
    int rc = 0;
    if (!*name || strlen(name) >= sizeof(((fguest_t *)0)->name) || strspn(name,
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(name)) {
        snprintf(err, errlen, "guest name '%s': use 1-%zu letters, digits, '_', '.', '-'", name,
                 sizeof(((fguest_t *)0)->name) - 1);
        rc = -EINVAL;
    } else if (fleet_find(f, name)) {
        snprintf(err, errlen, "guest name '%s' is used twice", name);
        rc = -EEXIST;
    }
    fguest_t *g = rc == 0 ? calloc(1, sizeof(*g)) : NULL;
    if (rc == 0 && f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        fguest_t **ng = realloc(f->g, cap * sizeof(*ng));
        if (ng) {
            f->g = ng;
            f->cap = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0 && !g)
        rc = -ENOMEM;
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        free(g);
        cfg_vm_free(vm);
        return rc;
    }
    snprintf(g->name, sizeof(g->name), "%s", name);
    snprintf(g->fname, sizeof(g->fname), "%s", name);
    g->vm = vm;
    g->vi = cfg_vm_info(vm);
    fleet__guest_init(f, g);
    g->state = GS_QUEUED;
    f->g[f->n++] = g;
    return 0;
}

void fleet_start(fleet_t *f) { kick(f); }

int fleet_settled(const fleet_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->g[i]->state < GS_READY)
            return 0;
    return 1;
}

json_t *fguest_json(const fguest_t *g)
{
    json_t *o = json_object();
    json_set_str(o, "name", g->name);
    json_set_str(o, "vm", g->vi->section);
    json_set_str(o, "state", fleet_state_name(g->state));
    json_set(o, "reason", g->reason[0] ? json_string(g->reason) : json_null());
    json_set(o, "pid", g->pid > 0 ? json_int(g->pid) : json_null());
    json_t *macs = json_array();
    for (int i = 0; i < g->vi->nnics; i++) {
        const struct cfg_nic_info *n = &g->vi->nics[i];
        const char *mac = n->mac ? n->mac : (g->had_leases ? g->res.macs[n->mac_need] : NULL);
        if (mac)
            json_append(macs, json_string(mac));
    }
    json_set(o, "macs", macs);
    int vnc = g->vi->vnc == -2 ? (g->had_leases ? g->res.vnc : -1) : g->vi->vnc;
    json_set(o, "vnc", vnc >= 0 ? json_int(vnc) : json_null());
    const char *addr;
    int port = 0;
    if (!g->had_leases || cfg_vm_ssh(g->vm, &g->res, &addr, &port) < 0)
        port = 0;
    json_set(o, "ssh_port", port > 0 ? json_int(port) : json_null());
    json_set(o, "ip", g->ip[0] ? json_string(g->ip) : json_null());
    json_t *pci = json_array();
    for (int i = 0; i < g->npt; i++) {
        json_t *p = json_object();
        json_set_str(p, "id", g->pt[i].id);
        json_set_str(p, "addr", g->pt[i].addr);
        json_set(p, "host", g->pt[i].host[0] ? json_string(g->pt[i].host) : json_null());
        json_append(pci, p);
    }
    json_set(o, "pci", pci);
    static const struct { const char *key, *suffix; } files[] = {
        { "qmp", "qmp.sock" }, { "qmp_inspect", "qmp-inspect.sock" }, { "qga", "qga.sock" },
        { "serial", "serial.log" }, { "log", "qemu.log" },
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char rel[CFG_NAME_MAX + 40];
        snprintf(rel, sizeof(rel), "%s-%s", g->fname, files[i].suffix);
        json_set_str(o, files[i].key, rel);
    }
    json_set(o, "started_ms", g->started_ms ? json_int(g->started_ms) : json_null());
    json_t *t = json_object();
    for (int s = GS_ALLOCATING; s < GS_COUNT; s++)
        if (g->t_ms[s] >= 0)
            json_set_int(t, fleet_state_name(s), g->t_ms[s]);
    json_set(o, "timings_ms", t);
    /* When QEMU (by its own clock) saw the guest open the agent port: what
     * the controller's agent-connected time is measured against. */
    json_set(o, "port_open_ms", g->port_open_ms ? json_int(g->port_open_ms) : json_null());
    json_set(o, "migration", g->migration ? json_copy(g->migration) : json_null());
    json_set(o, "template", fleet__template_json(g));
    return o;
}

json_t *fleet_registry(const fleet_t *f)
{
    json_t *o = json_object();
    json_set_int(o, "version", 1);
    json_set_str(o, "run", f->run_id);
    json_set_int(o, "updated_ms", time_wall_ms());
    json_t *arr = json_array();
    for (size_t i = 0; i < f->n; i++)
        json_append(arr, fguest_json(f->g[i]));
    json_set(o, "guests", arr);
    json_set(o, "cluster", fleet__cluster_json(f));
    return o;
}

/* A failed rewrite (full disk) keeps the previous registry intact and the
 * change pending, so the next turn tries again; said once per failure run. */
static int write_registry(fleet_t *f, char *err, size_t errlen)
{
    size_t n;
    json_t *reg = fleet_registry(f);
    char *s = json_dump_pretty(reg, &n);
    json_free(reg);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/guests.json", f->run_dir);
    int rc = s ? fs_write_atomic(path, s, n, 0600, err, errlen) : -ENOMEM;
    free(s);
    if (rc == -ENOMEM && !s)
        snprintf(err, errlen, "guests.json: out of memory");
    if (rc < 0) {
        if (!f->registry_failed)
            fprintf(stderr, "qfleet: %s\n", err);
        f->registry_failed = 1;
        return rc;
    }
    f->registry_failed = 0;
    f->registry_dirty = 0;
    return 0;
}

int fleet_flush_registry(fleet_t *f, char *err, size_t errlen)
{
    return f->registry_dirty ? write_registry(f, err, errlen) : 0;
}

/* ---- records ---- */

void fleet__event_write(fleet_t *f, json_t *ev)
{
    size_t n;
    char *line = ev ? json_dump(ev, &n) : NULL;
    json_free(ev);
    if (line && fs_append_line(f->evfd, line, n) < 0)
        fprintf(stderr, "qfleet: events.jsonl: %s\n", strerror(errno));
    free(line);
}

static void log_event(fleet_t *f, const fguest_t *g)
{
    json_t *ev = json_object();
    json_set_int(ev, "ts_ms", time_wall_ms());
    json_set_str(ev, "run", f->run_id);
    json_set_str(ev, "guest", g->name);
    json_set_str(ev, "state", fleet_state_name(g->state));
    json_set(ev, "reason", g->state == GS_FAILED ? json_string(g->reason) : json_null());
    fleet__event_write(f, ev);
}

static int queue_event(fleet_t *f, fguest_t *g)
{
    if (f->nev == f->evcap) {
        size_t cap = f->evcap ? f->evcap * 2 : 64;
        struct fleet_event *ev = realloc(f->ev, cap * sizeof(*ev));
        if (!ev)
            return -ENOMEM;
        f->ev = ev;
        f->evcap = cap;
    }
    f->ev[f->nev++] = (struct fleet_event){ g, g->state };
    return 0;
}

void fleet__guest_changed(fguest_t *g)
{
    fleet_t *f = g->f;
    log_event(f, g);
    /* Several guests often change state in one loop turn: the registry is
     * rewritten (and fsync'd) once for all of them, after advance(). */
    f->registry_dirty = 1;
    g->pub_dirty = 1;
    if (f->freeing)
        return;
    if (f->cb && queue_event(f, g) < 0)
        fprintf(stderr, "qfleet: %s: %s: out of memory, the owner misses this event\n", g->name,
                fleet_state_name(g->state));
    kick(f);
}

/* ---- decisions ---- */

static int is_down(const fguest_t *g) { return g->state == GS_STOPPED || g->state == GS_FAILED; }

/* Boot queued guests while --jobs allows. A boot that fails at once frees
 * its slot at once: the loop goes on with the next guest, no recursion. */
static void schedule(fleet_t *f)
{
    if (f->stopping_all || !fleet__cluster_gate(f))
        return;
    int booting = 0;
    for (size_t i = 0; i < f->n; i++)
        booting += fleet__guest_booting(f->g[i]);
    for (size_t i = 0; i < f->n; i++) {
        if (f->o.jobs > 0 && booting >= f->o.jobs)
            return;
        fguest_t *g = f->g[i];
        if (g->state != GS_QUEUED)
            continue;
        fleet__guest_boot(g);
        booting += fleet__guest_booting(g);
    }
}

/* The owner's on_event, in order; those it causes are appended and told
 * in the same loop. It may free the fleet: nothing after that. */
static void tell_events(fleet_t *f)
{
    for (size_t i = 0; i < f->nev && !f->freeing; i++) {
        struct fleet_event ev = f->ev[i];
        if (f->cb)
            f->cb(f, ev.g, ev.s, f->data);
    }
    if (!f->freeing)
        f->nev = 0;
}

static void run_waiters(fguest_t *g)
{
    struct fleet_waiter *w = g->waiters;
    g->waiters = NULL;
    while (w) {
        struct fleet_waiter *next = w->next;
        if (w->cb)
            w->cb(g, w->data);
        free(w);
        w = next;
    }
}

static void tell_waiters(fleet_t *f)
{
    for (size_t i = 0; i < f->n && !f->freeing; i++)
        if (f->g[i]->waiters && is_down(f->g[i]))
            run_waiters(f->g[i]);
}

static void tell_stopped_all(fleet_t *f)
{
    if (!f->stopping_all || f->freeing)
        return;
    for (size_t i = 0; i < f->n; i++)
        if (!is_down(f->g[i]))
            return;
    f->stopping_all = 0;
    if (f->stop_cb)
        f->stop_cb(f, f->stop_data);
}

/* Everything the fleet decides, from its timer. A callback of the owner
 * may change guests (stop them, add some): another pass picks that up. */
static void advance(fleet_t *f)
{
    f->advancing = 1;
    do {
        f->again = 0;
        fleet__claims_advance(f);
        schedule(f);
        tell_events(f);
        if (!f->freeing)
            fleet__migrations_advance(f);
        tell_waiters(f);
        tell_stopped_all(f);
    } while (f->again && !f->freeing);
    f->advancing = 0;
    char err[256];
    if (!f->freeing)
        fleet_flush_registry(f, err, sizeof(err)); /* said, and retried next turn */
}

static void on_kick(uv_timer_t *t) { advance(t->data); }

void fleet__kick(fleet_t *f) { kick(f); }

static void kick(fleet_t *f)
{
    if (f->freeing)
        return;
    if (f->advancing)
        f->again = 1;
    else if (!uv_is_active((uv_handle_t *)&f->kick))
        uv_timer_start(&f->kick, on_kick, 0, 0);
}

void fguest_stop(fguest_t *g, fguest_done_cb cb, void *data)
{
    struct fleet_waiter *w = calloc(1, sizeof(*w));
    if (w) {
        w->cb = cb;
        w->data = data;
        w->next = g->waiters;
        g->waiters = w;
    }
    fleet__guest_stop(g);
    kick(g->f);
}

void fleet_stop_all(fleet_t *f, fleet_done_cb cb, void *data)
{
    f->stopping_all = 1;
    f->stop_cb = cb;
    f->stop_data = data;
    for (size_t i = 0; i < f->n; i++)
        fleet__guest_stop(f->g[i]);
    kick(f);
}

static void free_all(fleet_t *f)
{
    free(f->ev);
    fleet__migrations_free(f);
    for (size_t i = 0; i < f->n; i++) {
        json_free(f->g[i]->migration);
        fleet__claims_free(f->g[i]);
        cfg_vm_free(f->g[i]->vm);
        free(f->g[i]);
    }
    free(f->g);
    if (f->store)
        alloc_store_close(f->store);
    if (f->evfd >= 0)
        close(f->evfd);
    fleet_done_cb cb = f->free_cb;
    void *data = f->free_data;
    free(f);
    if (cb)
        cb(NULL, data);
}

void fleet__closed_one(fleet_t *f)
{
    if (--f->pending_closes == 0)
        free_all(f);
}

static void on_guest_handle_closed(uv_handle_t *h) { fleet__closed_one(((fguest_t *)h->data)->f); }
static void on_kick_closed(uv_handle_t *h) { fleet__closed_one(h->data); }

void fleet_free(fleet_t *f, fleet_done_cb cb, void *data)
{
    if (f->freeing)
        return;
    f->freeing = 1;
    f->free_cb = cb;
    f->free_data = data;
    for (size_t i = 0; i < f->n; i++)
        fleet__guest_fail(f->g[i], "%s: the controller shut down", f->g[i]->name);
    for (size_t i = 0; i < f->n; i++)
        run_waiters(f->g[i]);
    /* Nothing recorded may be lost to the coalescing. */
    char err[256];
    fleet_flush_registry(f, err, sizeof(err));
    f->pending_closes = 1 + FLEET_GUEST_HANDLES * (int)f->n;
    f->pending_closes += fleet__migrations_close(f);
    f->pending_closes += f->claims_pending; /* on_claim counts them down */
    uv_close((uv_handle_t *)&f->kick, on_kick_closed);
    for (size_t i = 0; i < f->n; i++)
        fleet__guest_close(f->g[i], on_guest_handle_closed);
}

const char *fleet_run_dir(const fleet_t *f) { return f->run_dir; }
const char *fleet_run_id(const fleet_t *f) { return f->run_id; }
size_t fleet_count(const fleet_t *f) { return f->n; }
fguest_t *fleet_guest_at(const fleet_t *f, size_t i) { return i < f->n ? f->g[i] : NULL; }

fguest_t *fleet_find(const fleet_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->g[i]->name, name))
            return f->g[i];
    return NULL;
}

const char *fguest_name(const fguest_t *g) { return g->name; }
fleet_state fguest_state(const fguest_t *g) { return g->state; }
const char *fguest_reason(const fguest_t *g) { return g->reason; }

struct agent *fguest_agent(const fguest_t *g)
{
    return g->state >= GS_AGENT_CONNECTED && g->state <= GS_READY ? g->agent : NULL;
}

/* ---- accessors for the suite runner ---- */

struct qmp *fguest_qmp(const fguest_t *g)
{
    return g->state >= GS_QMP_CONNECTED && g->state <= GS_AWAITING_MIGRATION ? g->qmp : NULL;
}

json_t *fguest_migration(const fguest_t *g) { return g->migration ? json_copy(g->migration) : NULL; }

int fguest_ssh_target(const fguest_t *g, const char **host, int *port, const char **user,
                      const char **password)
{
    const char *addr;
    int p = 0;
    if (!g->leased || !g->vi->user || cfg_vm_ssh(g->vm, &g->res, &addr, &p) < 0 || p <= 0)
        return -ENOENT;
    *host = addr;
    *port = p;
    *user = g->vi->user;
    *password = g->vi->password;
    return 0;
}

const struct cfg_vm *fguest_vm(const fguest_t *g) { return g->vm; }
