/* cmd_up.c - `qfleet up`: boot guests from a cfg and follow them to ready;
 * `qfleet down`: ask a running controller to stop its guests and exit. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg/parse.h"
#include "cfg/vm.h"
#include "base/proc.h"
#include "src/cli/cmd.h"
#include "src/ctl/control.h"
#include "src/fleet/fleet.h"
#include "src/ctl/runs.h"

static const char up_usage[] =
    "usage: qfleet up CFG [VM...] [options]\n"
    "\n"
    "Launch the VMs of a DTS cfg (all its sections unless VMs are named) and\n"
    "follow each guest to ready: agent up, DHCP address on its control NIC, pt_N\n"
    "devices mapped, SSH login when the cfg has one. Then print a table and\n"
    "stay up until SIGINT/SIGTERM or 'qfleet down RUN'.\n"
    "\n"
    "options:\n"
    "  --count N          N instances of each VM (NAME-1 .. NAME-N), own leases each\n"
    "  --defaults FILE    global defaults ([KVM] section, like virt_global.cfg)\n"
    "  --run-dir DIR      run directory (default STATE/runs/RUN)\n"
    "  --state-dir DIR    host state dir (default $QFLEET_STATE_DIR, /var/lib/qfleet)\n"
    "  --jobs J           boot at most J guests at once (default: all)\n"
    "  --boot-timeout S   seconds from start to agent (default: the cfg's wait_seconds, 120)\n"
    "  --net-timeout S    seconds from agent to a DHCP address (default 60)\n"
    "  --no-ssh           skip the SSH login check\n"
    "  --clone            start guests from their VM's template (STATE/templates) and save\n"
    "                     one the first time a VM reaches the network (see README, Warm clones)\n"
    "  --no-clone         boot every guest cold (the default; overrides --clone)\n"
    "  --mac-prefix P     MAC prefix (1-5 octets) of every guest, over the cfg's mac_prefix\n"
    "  --until-ready      stop the guests and exit once all are ready (0) or any failed (1)\n"
    "  --json             print the result as JSON instead of a table\n"
    "  --qemu-path N|PATH the QEMU of a multi-path qemu key: path N (from 0) or PATH\n"
    "                     (default: the key's last path, as DTS)\n"
    "  -q, --quiet        no progress lines on stderr\n"
    "  --store etcd://H:P[,H:P...]  claim every guest MAC cluster-wide on etcd\n"
    "                     (default $QFLEET_STORE; a directory: the host store there,\n"
    "                     as --state-dir; none: leases stay host-local)\n"
    "  --host-id ID       this host's name in the cluster (default: the host name)\n"
    "  --cluster-wide K   also claim these kinds cluster-wide: vnc,migration,vlan\n"
    "\n"
    "exit: 0 all ready, 1 a guest failed (or 'qfleet down' came first), 2 usage or\n"
    "      cfg error, 3 setup error,\n"
    "      128+N stopped by signal N\n";

struct up {
    uv_loop_t *loop;
    fleet_t *f;
    cmd_session cc;
    control_t *ctl;
    uv_signal_t sig[3];
    int json, quiet, until_ready;
    int printed;
    int signo;
    int exit_code;
    int stopping;
};

static const char *first_line(const char *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s", s ? s : "");
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    return buf;
}

static void print_table(fleet_t *f)
{
    printf("%-16s %-10s %-17s %-4s %-6s %-15s %-22s %s\n", "NAME", "STATE", "MAC", "VNC", "SSH",
           "IP", "PCI", "READY");
    for (size_t i = 0; i < fleet_count(f); i++) {
        json_t *g = fguest_json(fleet_guest_at(f, i));
        char vnc[16] = "-", ssh[16] = "-", pci[256] = "", ready[32] = "-";
        long long v = json_get_int(g, "vnc", -1), p = json_get_int(g, "ssh_port", -1);
        if (v >= 0)
            snprintf(vnc, sizeof(vnc), ":%lld", v);
        if (p > 0)
            snprintf(ssh, sizeof(ssh), "%lld", p);
        const json_t *pts = json_get(g, "pci");
        size_t off = 0;
        for (size_t k = 0; k < json_len(pts) && off < sizeof(pci); k++)
            off += (size_t)snprintf(pci + off, sizeof(pci) - off, "%s%s=%s", k ? "," : "",
                                    json_get_str(json_at(pts, k), "id"),
                                    json_get_str(json_at(pts, k), "addr") + 5 /* drop 0000: */);
        long long r = json_get_int(json_get(g, "timings_ms"), "ready", -1);
        if (r >= 0)
            snprintf(ready, sizeof(ready), "%.1fs", r / 1000.0);
        const char *mac = json_str(json_at(json_get(g, "macs"), 0));
        const char *ip = json_get_str(g, "ip");
        printf("%-16s %-10s %-17s %-4s %-6s %-15s %-22s %s\n", json_get_str(g, "name"),
               json_get_str(g, "state"), mac ? mac : "-", vnc, ssh, ip ? ip : "-",
               pci[0] ? pci : "-", ready);
        json_free(g);
    }
    for (size_t i = 0; i < fleet_count(f); i++) {
        fguest_t *g = fleet_guest_at(f, i);
        if (fguest_state(g) == GS_FAILED)
            printf("\n%s failed: %s\n", fguest_name(g), fguest_reason(g));
    }
    fflush(stdout);
}

static void print_result(struct up *u)
{
    if (u->json) {
        json_t *reg = fleet_registry(u->f);
        json_set_str(reg, "run_dir", fleet_run_dir(u->f));
        char *s = json_dump_pretty(reg, NULL);
        json_free(reg);
        printf("%s\n", s ? s : "{}");
        free(s);
        fflush(stdout);
    } else {
        print_table(u->f);
    }
}

static void close_signals(void *data)
{
    struct up *u = data;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&u->sig[i], NULL);
}

static void on_freed(fleet_t *f, void *data)
{
    (void)f;
    struct up *u = data;
    u->f = NULL;
    cmd_session_close(&u->cc, close_signals, u); /* the fleet's keys go with its lease */
}

static void on_all_stopped(fleet_t *f, void *data)
{
    struct up *u = data;
    control_close(u->ctl);
    u->ctl = NULL;
    fleet_free(f, on_freed, u);
}

static void stop_everything(struct up *u)
{
    if (u->stopping)
        return;
    u->stopping = 1;
    if (!u->quiet)
        fprintf(stderr, "qfleet: stopping %zu guest(s)\n", fleet_count(u->f));
    fleet_stop_all(u->f, on_all_stopped, u);
}

static void on_event(fleet_t *f, fguest_t *g, fleet_state s, void *data)
{
    struct up *u = data;
    if (!u->quiet) {
        char line[256];
        if (s == GS_FAILED)
            fprintf(stderr, "qfleet: %s: failed: %s\n", fguest_name(g), first_line(fguest_reason(g), line, sizeof(line)));
        else
            fprintf(stderr, "qfleet: %s: %s\n", fguest_name(g), fleet_state_name(s));
    }
    if (s == GS_FAILED && !u->stopping && u->exit_code == 0)
        u->exit_code = 1;
    if (!u->printed && !u->stopping && fleet_settled(f)) {
        /* Events come in order but may trail the guests: those that failed
         * by now count even if their event is still to come. */
        for (size_t i = 0; i < fleet_count(f); i++)
            if (fguest_state(fleet_guest_at(f, i)) == GS_FAILED)
                u->exit_code = 1;
        u->printed = 1;
        print_result(u);
        if (u->until_ready)
            stop_everything(u);
        else if (!u->quiet)
            fprintf(stderr, "qfleet: run %s is up; stop it with Ctrl-C or 'qfleet down %s'\n",
                    fleet_run_id(f), fleet_run_dir(f));
    }
}

static void on_signal(uv_signal_t *h, int signo)
{
    struct up *u = h->data;
    if (u->stopping) {
        /* A second Ctrl-C: the user wants out now. The death signal of
         * every QEMU child makes sure none survives us. */
        fprintf(stderr, "qfleet: second signal, exiting at once\n");
        _exit(128 + signo);
    }
    u->signo = signo;
    stop_everything(u);
}

static void on_down(control_t *c, void *data)
{
    (void)c;
    struct up *u = data;
    if (!u->printed) {
        /* Stopped before every guest was ready: not the "all ready" of 0. */
        if (u->exit_code == 0)
            for (size_t i = 0; i < fleet_count(u->f); i++)
                if (fguest_state(fleet_guest_at(u->f, i)) != GS_READY)
                    u->exit_code = 1;
        u->printed = 1;
        print_result(u);
    }
    stop_everything(u);
}

/* ---- the cluster session (cmd.h) ---- */

static void cc_state(cluster_t *c, cluster_state s, const char *why, void *data)
{
    cmd_session *cc = data;
    (void)c;
    cc->state = s;
    snprintf(cc->why, sizeof(cc->why), "%s", why ? why : "");
    if (cc->on_state)
        cc->on_state(cc, s, why);
}

static void cc_conflict(cluster_t *c, const char *kind, const char *value, const char *owner,
                        const char *holder, void *data)
{
    cmd_session *cc = data;
    (void)c;
    if (cc->on_conflict)
        cc->on_conflict(cc, kind, value, owner, holder);
}

static void cc_closed(cluster_t *c, int result, void *data)
{
    cmd_session *cc = data;
    (void)c;
    (void)result;
    if (cc->closed)
        cc->closed(cc->data);
}

void cmd_session_close(cmd_session *cc, void (*cb)(void *data), void *data)
{
    cc->on_state = NULL;
    cc->on_conflict = NULL;
    if (!cc->c) {
        if (cb)
            cb(data);
        return;
    }
    cc->closed = cb;
    cc->data = data;
    cluster_t *c = cc->c;
    cc->c = NULL;
    cluster_close(c, cc_closed, cc);
}

int cmd_session_open(uv_loop_t *loop, const char *prog, const char *store, const char *host_id,
                     cmd_session *cc)
{
    char err[CLUSTER_ERR_MAX];
    void *keep = cc->data;
    *cc = (cmd_session){ .data = keep };
    if (!store || !*store)
        store = getenv(CLUSTER_STORE_ENV);
    int rc = cluster_store_parse(store, cc->store, sizeof(cc->store), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "%s: --store %s: %s\n", prog, store, err);
        return 2;
    }
    if (rc == 0) { /* the host's own store: a state dir, or the default */
        snprintf(cc->store, sizeof(cc->store), "%s", store ? store : "");
        return 0;
    }
    cluster_opts o = { .store = store, .host_id = host_id };
    if (cluster_open(loop, &o, cc_state, cc_conflict, cc, &cc->c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: etcd %s: %s\n", prog, store, err);
        return 3;
    }
    while (cc->state == CLUSTER_CONNECTING && uv_run(loop, UV_RUN_ONCE))
        ;
    if (cc->state == CLUSTER_LIVE)
        return 0;
    fprintf(stderr, "%s: etcd %s is unreachable: %s; nothing was started\n", prog, store,
            cc->why[0] ? cc->why : cluster_state_name(cc->state));
    cmd_session_close(cc, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return 3;
}

/* The session's news for the fleet: recorded there, decided on later. */
static void up_cluster_state(cmd_session *cc, cluster_state s, const char *why)
{
    struct up *u = cc->data;
    if (!u->quiet)
        fprintf(stderr, "qfleet: cluster %s: %s\n", cluster_state_name(s), why ? why : "");
    if (u->f)
        fleet_cluster_state(u->f, s, why);
}

static void up_cluster_conflict(cmd_session *cc, const char *kind, const char *value,
                                const char *owner, const char *holder)
{
    struct up *u = cc->data;
    if (u->f)
        fleet_cluster_conflict(u->f, kind, value, owner, holder);
}

struct inst {
    struct cfg_vm *vm;
    char name[CFG_NAME_MAX + 16];
};

/* What a VM needs on the host before any guest of it can start: its QEMU
 * (3, a set-up error: install it) and its kernel and initrd files (2, the
 * cfg names a file that is not there). 0 or that exit code, said. */
static int preflight(const struct cfg_vm_info *vi, const char *qemu)
{
    char exe[4096];
    int rc = proc_which(vi->qemu, exe, sizeof(exe));
    if (rc < 0) {
        fprintf(stderr, "qfleet: VM %s: QEMU %s: %s%s\n", vi->name, vi->qemu,
                strchr(vi->qemu, '/') ? strerror(-rc) : "not found in PATH",
                qemu ? "" : " (apt-get install qemu-system-x86, or the cfg's qemu key)");
        return 3;
    }
    const char *files[2] = { vi->kernel, vi->initrd }, *what[2] = { "kernel", "initrd" };
    for (int i = 0; i < 2; i++)
        if (files[i] && access(files[i], R_OK) < 0) {
            fprintf(stderr, "qfleet: VM %s: %s %s: %s\n", vi->name, what[i], files[i],
                    strerror(errno));
            return 2;
        }
    return 0;
}

/* Load the cfg and every requested instance before anything is created on
 * the host, so a bad cfg leaves no run directory behind. 0 or exit code 2
 * (3: the host lacks the VM's QEMU). */
static int load_guests(const char *cfg, const char *defaults, const char *qemu, char **vms,
                       int nvms, int count, struct inst **out, int *nout)
{
    char err[1024];
    struct cfg_doc *doc = NULL, *def = NULL;
    if (cfg_doc_load(cfg, &doc, err, sizeof(err)) < 0 ||
        (defaults && cfg_doc_load(defaults, &def, err, sizeof(err)) < 0)) {
        fprintf(stderr, "qfleet: %s\n", err);
        cfg_doc_free(doc);
        return 2;
    }
    int n = nvms ? nvms : cfg_doc_nsections(doc);
    struct inst *in = calloc((size_t)(n > 0 ? n : 1) * (size_t)count, sizeof(*in));
    int rc = in ? 0 : 2, k = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *name = nvms ? vms[i] : cfg_doc_section_at(doc, i)->name;
        for (int c = 1; c <= count && rc == 0; c++) {
            if (cfg_vm_from_docs(doc, name, def, &in[k].vm, err, sizeof(err)) < 0) {
                fprintf(stderr, "qfleet: %s\n", err);
                rc = 2;
                break;
            }
            struct cfg_vm *vm = in[k++].vm; /* counted: freed on any error below */
            if (qemu && cfg_vm_select_qemu(vm, qemu, err, sizeof(err)) < 0) {
                fprintf(stderr, "qfleet: --qemu-path: %s\n", err);
                rc = 2;
                break;
            }
            const struct cfg_vm_info *vi = cfg_vm_info(vm);
            for (int w = 0; c == 1 && w < vi->nwarnings; w++)
                fprintf(stderr, "%s\n", vi->warnings[w]);
            if (c == 1 && (rc = preflight(vi, qemu)) != 0)
                break;
            if (count > 1)
                snprintf(in[k - 1].name, sizeof(in[k - 1].name), "%s-%d", vi->name, c);
            else
                snprintf(in[k - 1].name, sizeof(in[k - 1].name), "%s", vi->name);
        }
    }
    if (rc == 0 && n == 0) {
        fprintf(stderr, "qfleet: %s has no VM sections\n", cfg);
        rc = 2;
    }
    cfg_doc_free(doc);
    cfg_doc_free(def);
    if (rc != 0) {
        for (int i = 0; in && i < k; i++)
            cfg_vm_free(in[i].vm);
        free(in);
        return rc;
    }
    *out = in;
    *nout = k;
    return 0;
}

/* What `qfleet up` was asked for. */
struct up_args {
    fleet_opts fo;
    const char *cfg, *defaults, *qemu, *mac_prefix, *store, *host_id;
    char **vms; /* the VMs named, or none: every section */
    int nvms;
    int count;
    int json, quiet, until_ready;
};

static int up_parse(int argc, char **argv, struct up_args *a)
{
    static const char P[] = "qfleet up";
    enum { O_COUNT, O_DEFAULTS, O_RUN_DIR, O_STATE, O_JOBS, O_BOOT, O_NET, O_NO_SSH, O_UNTIL,
           O_JSON, O_QUIET, O_QEMU, O_MAC_PREFIX, O_CLONE, O_NO_CLONE, O_STORE, O_HOST_ID,
           O_CLUSTER_WIDE };
    cli_opt opts[] = {
        { "--count", 0, 1, NULL },        { "--defaults", 0, 1, NULL },
        { "--run-dir", 0, 1, NULL },      { "--state-dir", 0, 1, NULL },
        { "--jobs", 0, 1, NULL },         { "--boot-timeout", 0, 1, NULL },
        { "--net-timeout", 0, 1, NULL },  { "--no-ssh", 0, 0, NULL },
        { "--until-ready", 0, 0, NULL },  { "--json", 0, 0, NULL },
        { "--quiet", 'q', 0, NULL },      { "--qemu-path", 0, 1, NULL },
        { "--mac-prefix", 0, 1, NULL },
        { "--clone", 0, 0, NULL },        { "--no-clone", 0, 0, NULL },
        { "--store", 0, 1, NULL },        { "--host-id", 0, 1, NULL },
        { "--cluster-wide", 0, 1, NULL },
        { NULL, 0, 0, NULL },
    };
    cli_args ca;
    /* Options may follow CFG and the VM names. */
    if (cli_parse(P, argc, argv, opts, -1, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    *a = (struct up_args){ .defaults = opts[O_DEFAULTS].value, .qemu = opts[O_QEMU].value, .count = 1,
                           .json = !!opts[O_JSON].value, .quiet = !!opts[O_QUIET].value,
                           .until_ready = !!opts[O_UNTIL].value,
                           .mac_prefix = opts[O_MAC_PREFIX].value, .store = opts[O_STORE].value,
                           .host_id = opts[O_HOST_ID].value };
    fleet_opts *fo = &a->fo;
    fo->run_dir = opts[O_RUN_DIR].value;
    fo->state_dir = opts[O_STATE].value;
    fo->no_ssh = !!opts[O_NO_SSH].value;
    fo->clone = opts[O_CLONE].value && !opts[O_NO_CLONE].value;
    if (cli_int(P, &opts[O_COUNT], 1, 999, &a->count) ||
        cli_int(P, &opts[O_JOBS], 1, 100000, &fo->jobs) ||
        cli_int(P, &opts[O_BOOT], 1, 86400, &fo->boot_timeout_s) ||
        cli_int(P, &opts[O_NET], 1, 86400, &fo->net_timeout_s))
        return 2;
    char err[256];
    if (fleet_cluster_wide_parse(opts[O_CLUSTER_WIDE].value, &fo->cluster_wide, err, sizeof(err)) < 0)
        return cli_usage_error(P, "--cluster-wide: %s", err);
    if (ca.npos == 0)
        return cli_usage_error(P, "name the cfg file: qfleet up CFG [VM...]");
    a->cfg = fo->cfg_path = ca.pos[0];
    a->vms = ca.pos + 1;
    a->nvms = ca.npos - 1;
    return 0;
}

/* The fleet with every instance added and its control socket listening.
 * 0, or the exit code with the fleet freed. */
static int up_start(struct up *u, const struct up_args *a, struct inst *in, int nin)
{
    char err[1024], path[PATH_MAX];
    fleet_opts fo = a->fo;
    fo.cluster = u->cc.c;
    if (fleet_new(u->loop, &fo, on_event, u, &u->f, err, sizeof(err)) < 0) {
        fprintf(stderr, "qfleet: %s\n", err);
        for (int i = 0; i < nin; i++)
            cfg_vm_free(in[i].vm);
        free(in);
        cmd_session_close(&u->cc, NULL, NULL);
        uv_run(u->loop, UV_RUN_DEFAULT);
        return 3;
    }
    if (u->cc.c) /* what the session said at open, for events.jsonl */
        fleet_cluster_state(u->f, u->cc.state, u->cc.why);
    int rc = 0;
    for (int i = 0; i < nin; i++) /* the fleet owns each vm from here on */
        if (fleet_add(u->f, in[i].vm, in[i].name, err, sizeof(err)) < 0 && rc == 0) {
            fprintf(stderr, "qfleet: %s\n", err);
            rc = 2;
        }
    free(in);
    snprintf(path, sizeof(path), "%s/control.sock", fleet_run_dir(u->f));
    if (rc == 0 && control_start(u->loop, u->f, path, on_down, u, &u->ctl, err, sizeof(err)) < 0) {
        fprintf(stderr, "qfleet: %s\n", err);
        rc = 3;
    }
    if (rc != 0) {
        /* Once: the fleet calls no on_event after fleet_free, and with
         * stopping set on_event would take no decision anyway. */
        u->stopping = 1;
        fleet_free(u->f, NULL, NULL);
        u->f = NULL;
        uv_run(u->loop, UV_RUN_DEFAULT);
        cmd_session_close(&u->cc, NULL, NULL);
        uv_run(u->loop, UV_RUN_DEFAULT);
    }
    return rc;
}

int cmd_up(int argc, char **argv)
{
    struct up_args a;
    int rc = up_parse(argc, argv, &a), nin;
    if (rc)
        return rc == CLI_HELP ? cli_help(up_usage) : rc;
    struct inst *in;
    if ((rc = load_guests(a.cfg, a.defaults, a.qemu, a.vms, a.nvms, a.count, &in, &nin)) != 0)
        return rc;
    for (int i = 0; a.mac_prefix && i < nin; i++) {
        char err[512];
        if (cfg_vm_set(in[i].vm, "mac_prefix", a.mac_prefix, err, sizeof(err)) < 0) {
            fprintf(stderr, "qfleet up: --mac-prefix: %s\n", err);
            for (int j = 0; j < nin; j++)
                cfg_vm_free(in[j].vm);
            free(in);
            return 2;
        }
    }
    struct up u = { .loop = uv_default_loop(), .json = a.json, .quiet = a.quiet,
                    .until_ready = a.until_ready };
    u.cc.data = &u;
    if ((rc = cmd_session_open(u.loop, "qfleet up", a.store, a.host_id, &u.cc)) != 0) {
        for (int j = 0; j < nin; j++)
            cfg_vm_free(in[j].vm);
        free(in);
        return rc;
    }
    if (!u.cc.c && u.cc.store[0] && !a.fo.state_dir)
        a.fo.state_dir = u.cc.store;
    u.cc.on_state = up_cluster_state;
    u.cc.on_conflict = up_cluster_conflict;
    if ((rc = up_start(&u, &a, in, nin)) != 0)
        return rc;
    const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
    for (int i = 0; i < 3; i++) {
        uv_signal_init(u.loop, &u.sig[i]);
        u.sig[i].data = &u;
        uv_signal_start(&u.sig[i], on_signal, sigs[i]);
    }
    if (!u.quiet)
        fprintf(stderr, "qfleet: run %s: %zu guest(s), run dir %s\n", fleet_run_id(u.f),
                fleet_count(u.f), fleet_run_dir(u.f));
    fleet_start(u.f);
    uv_run(u.loop, UV_RUN_DEFAULT);
    uv_loop_close(u.loop);
    if (u.signo)
        return 128 + u.signo;
    return u.exit_code;
}

static const char down_usage[] =
    "usage: qfleet down [RUN] [--state-dir DIR] [--timeout S] [--json]\n"
    "\n"
    "Ask the controller of RUN (a run id or run directory; default: the latest\n"
    "live run) to stop its guests gracefully and exit, and wait until it has.\n"
    "\n"
    "  --state-dir DIR  host state dir (default $QFLEET_STATE_DIR, /var/lib/qfleet)\n"
    "  --timeout S      seconds to wait for the controller (default 120)\n"
    "  --json           print {\"run_dir\":..., \"stopped\":true} instead of a line\n"
    "\n"
    "exit: 0 stopped, 1 no such live run or the controller did not stop, 2 usage\n";

/* What `qfleet down` was asked for. */
struct down_args {
    const char *state_dir, *run;
    int timeout, json;
};

static int down_parse(int argc, char **argv, struct down_args *a)
{
    static const char P[] = "qfleet down";
    enum { O_STATE, O_TIMEOUT, O_JSON };
    cli_opt opts[] = { { "--state-dir", 0, 1, NULL }, { "--timeout", 0, 1, NULL },
                       { "--json", 0, 0, NULL }, { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 1, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    *a = (struct down_args){ .state_dir = opts[O_STATE].value, .run = ca.npos ? ca.pos[0] : NULL,
                             .timeout = 120, .json = !!opts[O_JSON].value };
    return cli_int(P, &opts[O_TIMEOUT], 1, 86400, &a->timeout);
}

/* Ask the controller of the run in dir to stop, and wait until it has. */
static int down_run(const struct down_args *a, const char *dir)
{
    char err[512], sock[PATH_MAX + 16];
    pid_t pid;
    if (!runs_alive(dir, &pid)) {
        fprintf(stderr, "qfleet down: the run in %s has already finished\n", dir);
        return 1;
    }
    snprintf(sock, sizeof(sock), "%s/control.sock", dir);
    json_t *req = json_object(), *reply = NULL;
    json_set_str(req, "cmd", "down");
    int rc = control_request(sock, req, &reply, 10000, err, sizeof(err));
    json_free(req);
    json_free(reply);
    if (rc < 0) {
        fprintf(stderr, "qfleet down: %s\n", err);
        return 1;
    }
    /* Done when the controller exits, or, for one suite of a `qfleet run`
     * that goes on with others, when that fleet closed its control socket. */
    for (int i = 0; i < a->timeout * 10 && runs_alive(dir, NULL) && access(sock, F_OK) == 0; i++)
        usleep(100000);
    if (runs_alive(dir, NULL) && access(sock, F_OK) == 0) {
        fprintf(stderr, "qfleet down: controller %d still running after %d s\n", (int)pid,
                a->timeout);
        return 1;
    }
    return 0;
}

int cmd_down(int argc, char **argv)
{
    struct down_args a;
    int rc = down_parse(argc, argv, &a);
    if (rc)
        return rc == CLI_HELP ? cli_help(down_usage) : rc;
    char dir[PATH_MAX], err[512];
    rc = a.run ? runs_resolve(a.state_dir, a.run, dir, sizeof(dir), err, sizeof(err))
               : runs_latest(a.state_dir, dir, sizeof(dir), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qfleet down: %s\n", err);
        return 1;
    }
    if ((rc = down_run(&a, dir)) != 0)
        return rc;
    if (!a.json) {
        printf("run %s stopped\n", dir);
        return 0;
    }
    json_t *o = json_object();
    json_set_str(o, "run_dir", dir);
    json_set_bool(o, "stopped", 1);
    return cli_print_json(o) < 0 ? 1 : 0;
}
