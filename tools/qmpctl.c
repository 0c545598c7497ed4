/* qmpctl - inspect running qfleet guests the way people use virsh and
 * qmp-shell (issue 9). Everything comes from the run directory
 * (docs/rundir.md): the registry for what the controller knows, the
 * inspection monitor for QEMU itself, the control socket for the agent and
 * for stopping. This file: options, help, dispatch, and finding runs and
 * guests. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "src/ctl/control.h"
#include "src/fleet/fleet.h"
#include "base/fs.h"
#include "src/ctl/runs.h"
#include "tools/qmpctl_int.h"

const char *qc_prog = "qmpctl";

/* ---- small helpers ---- */

const char *qc_first_line(const char *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s", s ? s : "");
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* The first line of a guest's failure reason, without the "NAME: " the
 * controller puts in front (the caller names the guest already). */
const char *qc_reason_line(const json_t *g, char *buf, size_t len)
{
    const char *name = json_get_str(g, "name"), *r = json_get_str(g, "reason");
    size_t n = name ? strlen(name) : 0;
    if (r && n && !strncmp(r, name, n) && r[n] == ':' && r[n + 1] == ' ')
        r += n + 2;
    return qc_first_line(r, buf, len);
}

void qc_print_json(const json_t *v, int compact)
{
    /* The pretty printer spreads an empty container over lines. */
    if (json_len(v) == 0 && (json_typeof(v) == JSON_ARRAY || json_typeof(v) == JSON_OBJECT))
        compact = 1;
    char *s = compact ? json_dump(v, NULL) : json_dump_pretty(v, NULL);
    printf("%s\n", s ? s : "null");
    free(s);
    fflush(stdout);
}

/* ---- runs and guests ---- */

static json_t *read_json(const char *dir, const char *file)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    size_t n;
    char *s = fs_read_file(path, 64u << 20, &n);
    json_t *v = s ? json_parse(s, n, NULL, 0) : NULL;
    free(s);
    return v;
}

/* guests.json appears with the first state change; before that the run
 * simply has no guests to show. */
static json_t *read_registry(const char *dir)
{
    json_t *r = read_json(dir, "guests.json");
    if (!r || json_typeof(json_get(r, "guests")) != JSON_ARRAY) {
        json_free(r);
        r = json_object();
        json_set(r, "guests", json_array());
    }
    return r;
}

static void run_identity(const char *dir, char *id, size_t idlen)
{
    json_t *c = read_json(dir, "controller.json");
    const char *run = json_get_str(c, "run");
    const char *slash = strrchr(dir, '/');
    snprintf(id, idlen, "%s", run ? run : slash ? slash + 1 : dir);
    json_free(c);
}

static const json_t *find_guest(const json_t *reg, const char *name)
{
    const json_t *gs = json_get(reg, "guests");
    for (size_t i = 0; i < json_len(gs); i++) {
        const char *n = json_get_str(json_at(gs, i), "name");
        if (n && !strcmp(n, name))
            return json_at(gs, i);
    }
    return NULL;
}

int qc_run_open(const struct qc_opts *o, struct qc_guest *out)
{
    char err[1024];
    memset(out, 0, sizeof(*out));
    int rc = o->run ? runs_resolve(o->state_dir, o->run, out->run_dir, sizeof(out->run_dir), err,
                                   sizeof(err))
                    : runs_latest(o->state_dir, out->run_dir, sizeof(out->run_dir), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", qc_prog, err);
        return QC_FAIL;
    }
    run_identity(out->run_dir, out->run_id, sizeof(out->run_id));
    out->live = runs_alive(out->run_dir, NULL);
    out->reg = read_registry(out->run_dir);
    return QC_OK;
}

struct guest_search {
    const char *name;
    char dir[PATH_MAX];
};

static void search_run(const char *dir, void *data)
{
    struct guest_search *gs = data;
    json_t *reg = gs->dir[0] ? NULL : read_registry(dir);
    if (reg && find_guest(reg, gs->name))
        snprintf(gs->dir, sizeof(gs->dir), "%s", dir);
    json_free(reg);
}

/* Without --run-dir, a guest missing from the latest run may live in another
 * live one (the suites of a `qfleet run` are runs of their own). */
static void open_other_run(const struct qc_opts *o, const char *name, struct qc_guest *out)
{
    struct guest_search gs = { .name = name };
    char err[512];
    if (o->run || runs_each(o->state_dir, 1, search_run, &gs, err, sizeof(err)) <= 0 || !gs.dir[0])
        return;
    struct qc_opts one = *o;
    struct qc_guest g;
    one.run = gs.dir;
    if (qc_run_open(&one, &g) != QC_OK)
        return;
    qc_guest_close(out);
    *out = g;
}

int qc_guest_open(const struct qc_opts *o, const char *name, int need_live, struct qc_guest *out)
{
    if (qc_run_open(o, out) != QC_OK)
        return QC_FAIL;
    out->name = name;
    out->g = find_guest(out->reg, name);
    if (!out->g) {
        open_other_run(o, name, out);
        out->name = name;
        out->g = find_guest(out->reg, name);
    }
    if (!out->g) {
        const json_t *gs = json_get(out->reg, "guests");
        char list[1024] = "";
        size_t off = 0;
        for (size_t i = 0; i < json_len(gs) && off < sizeof(list); i++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                    json_get_str(json_at(gs, i), "name"));
        fprintf(stderr, "%s: no guest '%s' in run %s (guests: %s)\n", qc_prog, name, out->run_id,
                list[0] ? list : "none");
        qc_guest_close(out);
        return QC_FAIL;
    }
    if (need_live && !out->live) {
        fprintf(stderr, "%s: run %s has finished (its registry stays readable: %s list --run-dir %s)\n",
                qc_prog, out->run_id, qc_prog, out->run_dir);
        qc_guest_close(out);
        return QC_FAIL;
    }
    return QC_OK;
}

void qc_guest_close(struct qc_guest *g)
{
    json_free(g->reg);
    g->reg = NULL;
    g->g = NULL;
}

void qc_guest_refresh(struct qc_guest *g)
{
    json_t *reg = read_registry(g->run_dir);
    const json_t *e = find_guest(reg, g->name);
    if (!e) {
        json_free(reg);
        return;
    }
    json_free(g->reg);
    g->reg = reg;
    g->g = e;
    g->live = runs_alive(g->run_dir, NULL);
}

void qc_guest_file(const struct qc_guest *g, const char *key, char *out, size_t outlen)
{
    const char *rel = json_get_str(g->g, key);
    if (rel && rel[0] == '/')
        snprintf(out, outlen, "%s", rel);
    else
        snprintf(out, outlen, "%s/%s", g->run_dir, rel ? rel : "");
}

void qc_guest_target(const struct qc_guest *g, struct qc_target *t)
{
    qc_guest_file(g, "qmp_inspect", t->sock, sizeof(t->sock));
    t->what = "inspection socket";
    t->guest = 1;
}

/* Alive and not a zombie waiting for the controller to reap it. */
static int pid_alive(long long pid)
{
    char p[64], st = 0;
    snprintf(p, sizeof(p), "/proc/%lld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    int ok = fscanf(f, "%*d %*s %c", &st) == 1 && st != 'Z' && st != 'X';
    fclose(f);
    return ok;
}

int qc_state_is_down(const char *st)
{
    return fleet_state_from_name(st) >= GS_STOPPING;
}

void qc_guest_why_gone(struct qc_guest *g, char *out, size_t outlen)
{
    qc_guest_refresh(g);
    const char *st = json_get_str(g->g, "state");
    long long pid = json_get_int(g->g, "pid", 0);
    char line[512];
    out[0] = '\0';
    if (!g->live)
        snprintf(out, outlen, "run %s has finished", g->run_id);
    else if (fleet_state_from_name(st) == GS_FAILED)
        snprintf(out, outlen, "the guest failed: %s", qc_reason_line(g->g, line, sizeof(line)));
    else if (qc_state_is_down(st))
        snprintf(out, outlen, "the guest is %s", st);
    else if (pid > 0 && !pid_alive(pid))
        snprintf(out, outlen, "QEMU (pid %lld) has exited; the controller will mark the guest failed", pid);
    else if (fleet_state_from_name(st) >= GS_QUEUED && fleet_state_from_name(st) <= GS_LAUNCHING)
        snprintf(out, outlen, "QEMU is still starting (state %s); try again in a moment", st);
}

int qc_control(const struct qc_guest *g, json_t *req, int timeout_ms, json_t **reply)
{
    char sock[PATH_MAX + 32], err[1024];
    json_t *c = read_json(g->run_dir, "controller.json");
    const char *rel = json_get_str(c, "control");
    snprintf(sock, sizeof(sock), "%s/%s", g->run_dir, rel ? rel : "control.sock");
    json_free(c);
    *reply = NULL;
    if (control_request(sock, req, reply, timeout_ms, err, sizeof(err)) == 0)
        return QC_OK;
    if (!runs_alive(g->run_dir, NULL))
        fprintf(stderr, "%s: run %s has finished\n", qc_prog, g->run_id);
    else
        fprintf(stderr, "%s: %s: control socket: %s\n", qc_prog, g->name, err);
    return QC_FAIL;
}

/* ---- options and dispatch ---- */

enum { NEEDS_VM = 1, SOCKET_OK = 2 };

static const struct cmd {
    const char *name;
    const char *args;
    int flags;
    const char *summary;
    const char *help;
} cmds[] = {
    { "list", "", 0, "guests of the latest run: state, pid, MACs, VNC, SSH, IP, uptime",
      "Show the guests of the latest live run (or --run-dir RUN, which may have\n"
      "finished), or of every live run with --all.\n"
      "\n  --all    every live run on this host, with a RUN column\n"
      "  --cluster  every host's live guests as their controllers publish them on\n"
      "           etcd, with a HOST column\n"
      "  --store etcd://H:P[,H:P...]  the etcd of --cluster (default $QFLEET_STORE)\n" },
    { "status", "VM", NEEDS_VM | SOCKET_OK, "QEMU status, agent, and when each boot phase was reached",
      "QMP query-status on the guest's inspection monitor, a guest-ping through the\n"
      "controller, and the time each boot phase was reached (from the registry).\n"
      "With -s SOCK: query-status of that QEMU.\n" },
    { "pci", "VM", NEEDS_VM, "pt_N devices: guest PCI address, host BDF of passthrough",
      "List the guest's pt_N devices with their guest PCI address and, for\n"
      "passthrough devices, the host BDF (from the registry).\n"
      "\n  --check  confirm each address with QEMU's query-pci (exit 1 on a mismatch)\n" },
    { "ifaces", "VM", NEEDS_VM, "guest network interfaces from the guest agent",
      "The guest's interfaces (names, MACs, addresses) from qemu-guest-agent's\n"
      "guest-network-get-interfaces, asked through the controller.\n" },
    { "qmp", "VM CMD [ARGS]", NEEDS_VM | SOCKET_OK, "run a QMP command on the inspection monitor",
      "Run one QMP command on the guest's inspection monitor (with -s SOCK: on\n"
      "that socket; then there is no VM) and print its return value.\n"
      "CMD is a command name, optionally followed by arguments as key=value pairs\n"
      "(values that parse as JSON are taken as JSON) or as one JSON object, or a\n"
      "whole request: '{\"execute\":\"query-status\",\"arguments\":{}}'.\n"
      "\n  e.g. qmpctl qmp vm0-1 query-status\n"
      "       qmpctl qmp vm0-1 human-monitor-command command-line='info qtree'\n" },
    { "qga", "VM CMD [ARGS]", NEEDS_VM, "run a guest agent command through the controller",
      "Run one qemu-guest-agent command through the controller's control socket\n"
      "(the controller owns the agent channel) and print its return value.\n"
      "CMD and ARGS as for qmp.   e.g. qmpctl qga vm0-1 guest-info\n" },
    { "events", "VM", NEEDS_VM | SOCKET_OK, "follow QMP events until Ctrl-C",
      "Print QMP events of the guest's inspection monitor (with -s SOCK: that\n"
      "socket) as they happen, one line each with QEMU's timestamp, until Ctrl-C\n"
      "or QEMU exits. --json prints JSON lines. While it runs, it shares the\n"
      "monitor with other qmpctl commands through SOCK" QC_RELAY_SUFFIX " (QEMU serves\n"
      "one monitor client at a time).\n" },
    { "console", "VM", NEEDS_VM, "print the serial console log (-f to follow)",
      "Print the guest's serial console log (NAME-serial.log).\n"
      "\n  -f, --follow   keep printing what the guest writes, until Ctrl-C or the\n"
      "                 guest or its run ends\n"
      "  -n, --lines N  start with the last N lines\n"
      "  --raw          pass control characters through even to a terminal\n" },
    { "stop", "VM", NEEDS_VM, "stop a guest gracefully through the controller",
      "Ask the controller to stop the guest (agent shutdown, then QMP quit, then\n"
      "signals) and wait until it has stopped.\n" },
    { "migrate", "VM DST", NEEDS_VM, "live-migrate a guest into an awaiting one (controller)",
      "Ask the controller to migrate VM into DST (a guest of the same run in state\n"
      "awaiting-migration) and wait until DST is ready under VM's name; prints the\n"
      "total time, downtime and bytes moved. --timeout S bounds the migration itself.\n" },
    /* issue 16: tools/qmpctl_login.c */
    { "ssh", "VM [-- CMD...]", NEEDS_VM, "log in to the guest over SSH (or run one command)",
      "Log in to the guest through its forwarded SSH port with the cfg's user and\n"
      "password, using the system ssh client: an interactive shell, or CMD and\n"
      "its output. The password is handed to ssh through SSH_ASKPASS from this\n"
      "process (never on a command line, in the environment or in a file); the\n"
      "host key is checked against the run's known_hosts for the guest.\n"
      "Put -- before a CMD that has options of its own. --timeout S is ssh's\n"
      "ConnectTimeout; there is no --json (the output is the guest's).\n"
      "\n  e.g. qmpctl ssh vm0-1\n"
      "       qmpctl ssh vm0-1 -- ip addr\n"
      "\nexit: CMD's exit status (255: ssh could not connect or log in); 1 no such\n"
      "      guest, no SSH port or no user in the cfg; 2 usage\n" },
    { "vnc", "VM", NEEDS_VM, "print the address of the guest's VNC display",
      "Print HOST:PORT of the guest's VNC server (display N listens on 5900+N),\n"
      "ready for a viewer:  vncviewer $(qmpctl vnc vm0-1)\n"
      "--json adds the display number and the guest's state.\n" },
    { "hmp", "VM COMMAND...", NEEDS_VM | SOCKET_OK, "run an HMP command ('info pci') on the inspection monitor",
      "Run a human monitor command through QMP's human-monitor-command on the\n"
      "guest's inspection monitor (with -s SOCK: on that socket; then there is no\n"
      "VM) and print what the monitor printed. The words are joined with spaces.\n"
      "--json prints {\"command\", \"output\"}.\n"
      "\n  e.g. qmpctl hmp vm0-1 info pci\n"
      "       qmpctl hmp vm0-1 'info qtree'\n"
      "\nexit: 1 also when HMP does not know the command\n" },
    { NULL, NULL, 0, NULL, NULL },
};

static const char options_help[] =
    "options:\n"
    "  --run-dir RUN      a run id or run directory (default: the latest live run)\n"
    "  --state-dir DIR    host state dir (default $QFLEET_STATE_DIR, /var/lib/qfleet)\n"
    "  -s, --socket SOCK  any QEMU's QMP socket instead of a qfleet guest (qmp, events, status)\n"
    "  --json             JSON for machines instead of tables\n"
    "  --timeout S        seconds to wait for QEMU, the agent or the controller\n"
    "  -h, --help         help; 'qmpctl COMMAND --help' for one command\n"
    "  --version          the qfleet version this qmpctl belongs to\n"
    "\nexit: 0 ok, 1 failure (no such guest, run finished, QEMU gone, QMP error), 2 usage\n";

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [options] COMMAND [ARGS]\n\n"
               "Inspect the guests of a running qfleet, or any QEMU's QMP socket (-s).\n\ncommands:\n",
            qc_prog);
    for (const struct cmd *c = cmds; c->name; c++) {
        char head[64];
        snprintf(head, sizeof(head), "%s %s", c->name, c->args);
        fprintf(f, "  %-20s %s\n", head, c->summary);
    }
    fprintf(f, "\n%s", options_help);
}

static void cmd_usage(FILE *f, const struct cmd *c)
{
    fprintf(f, "usage: %s [options] %s %s\n\n%s\n%s", qc_prog, c->name, c->args, c->help, options_help);
}

static int usage_error(const struct cmd *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", qc_prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c)
        fprintf(stderr, "usage: %s [options] %s %s  (%s %s --help for more)\n", qc_prog, c->name,
                c->args, qc_prog, c->name);
    else
        fprintf(stderr, "(%s --help for usage)\n", qc_prog);
    return QC_USAGE;
}

static const struct cmd *find_cmd(const char *name)
{
    for (const struct cmd *c = cmds; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

static int run_cmd(const struct cmd *c, const struct qc_opts *o, int argc, char **argv)
{
    const char *vm = c->flags & NEEDS_VM && !o->socket ? argv[0] : NULL;
    int rest = argc - (vm ? 1 : 0);
    char **rargv = argv + (vm ? 1 : 0);
    if (!strcmp(c->name, "qmp") || !strcmp(c->name, "qga"))
        return qc_cmd_raw(o, c->name[1] == 'g', vm, rest, rargv);
    if (!strcmp(c->name, "migrate")) {
        if (rest != 1)
            return usage_error(c, "migrate: give the destination guest");
        return qc_cmd_migrate(o, vm, rargv[0]);
    }
    if (!strcmp(c->name, "ssh"))
        return qc_cmd_ssh(o, vm, rest, rargv);
    if (!strcmp(c->name, "hmp"))
        return qc_cmd_hmp(o, vm, rest, rargv);
    if (!strcmp(c->name, "vnc") && rest == 0)
        return qc_cmd_vnc(o, vm);
    if (rest > 0)
        return usage_error(c, "%s: unexpected argument '%s'", c->name, rargv[0]);
    if (!strcmp(c->name, "list"))
        return o->cluster ? qc_cmd_list_cluster(o) : qc_cmd_list(o);
    if (!strcmp(c->name, "status"))
        return qc_cmd_status(o, vm);
    if (!strcmp(c->name, "pci"))
        return qc_cmd_pci(o, vm);
    if (!strcmp(c->name, "ifaces"))
        return qc_cmd_ifaces(o, vm);
    if (!strcmp(c->name, "events"))
        return qc_cmd_events(o, vm);
    if (!strcmp(c->name, "console"))
        return qc_cmd_console(o, vm);
    return qc_cmd_stop(o, vm);
}

/* The options of every command (they may come before or after it). */
enum { O_RUN_DIR, O_RUN, O_STATE, O_SOCKET, O_ALL, O_JSON, O_FOLLOW, O_LINES, O_RAW, O_CHECK,
       O_TIMEOUT, O_VERSION, O_CLUSTER, O_STORE };

static int parse_opts(int argc, char **argv, struct qc_opts *o, cli_args *ca, int *version)
{
    cli_opt opts[] = {
        { "--run-dir", 0, 1, NULL }, { "--run", 0, 1, NULL },      { "--state-dir", 0, 1, NULL },
        { "--socket", 's', 1, NULL }, { "--all", 0, 0, NULL },     { "--json", 0, 0, NULL },
        { "--follow", 'f', 0, NULL }, { "--lines", 'n', 1, NULL }, { "--raw", 0, 0, NULL },
        { "--check", 0, 0, NULL },   { "--timeout", 0, 1, NULL },  { "--version", 0, 0, NULL },
        { "--cluster", 0, 0, NULL }, { "--store", 0, 1, NULL },
        { NULL, 0, 0, NULL },
    };
    if (cli_parse(qc_prog, argc, argv, opts, -1, ca))
        return QC_USAGE;
    *o = (struct qc_opts){ .run = opts[O_RUN_DIR].value ? opts[O_RUN_DIR].value : opts[O_RUN].value,
                           .state_dir = opts[O_STATE].value, .socket = opts[O_SOCKET].value,
                           .all = !!opts[O_ALL].value, .json = !!opts[O_JSON].value,
                           .follow = !!opts[O_FOLLOW].value, .raw = !!opts[O_RAW].value,
                           .check = !!opts[O_CHECK].value, .lines = -1,
                           .cluster = !!opts[O_CLUSTER].value, .store = opts[O_STORE].value };
    *version = !!opts[O_VERSION].value;
    long long lines = -1, secs = 0;
    if (cli_number(qc_prog, &opts[O_LINES], 0, 1000000000, &lines) ||
        cli_number(qc_prog, &opts[O_TIMEOUT], 1, 86400, &secs))
        return QC_USAGE;
    o->lines = (long)lines;
    o->timeout_ms = (int)secs * 1000;
    return QC_OK;
}

/* Options that do not fit command c, and a missing guest name. */
static int check_opts(const struct cmd *c, const struct qc_opts *o, int nargs)
{
    if (o->socket && !(c->flags & SOCKET_OK))
        return usage_error(c, "-s works with qmp, hmp, events and status, not %s", c->name);
    if (o->socket && (o->run || o->state_dir))
        return usage_error(c, "-s talks to one socket; --run-dir and --state-dir do not apply");
    if (o->all && strcmp(c->name, "list"))
        return usage_error(c, "--all is for list");
    if (o->all && o->run)
        return usage_error(c, "--all and --run-dir exclude each other");
    if ((o->cluster || o->store) && strcmp(c->name, "list"))
        return usage_error(c, "--cluster and --store are for list");
    if (o->cluster && (o->all || o->run || o->state_dir))
        return usage_error(c, "--cluster lists every host from etcd; --all, --run-dir and "
                              "--state-dir are for this host's runs");
    if (o->store && !o->cluster)
        return usage_error(c, "--store is for list --cluster");
    if ((o->follow || o->raw || o->lines >= 0) && strcmp(c->name, "console"))
        return usage_error(c, "-f, -n and --raw are for console");
    if (o->check && strcmp(c->name, "pci"))
        return usage_error(c, "--check is for pci");
    if ((c->flags & NEEDS_VM) && !o->socket && nargs < 1)
        return usage_error(c, "%s needs a guest name (see '%s list')", c->name, qc_prog);
    return QC_OK;
}

/* --help, alone or with a command ("qmpctl help events" too). */
static int help(int nargs, char **args)
{
    const struct cmd *c = nargs > 0 ? find_cmd(args[0]) : NULL;
    if (nargs > 0 && !c)
        return usage_error(NULL, "no command '%s'", args[0]);
    if (c)
        cmd_usage(stdout, c);
    else
        usage(stdout);
    return QC_OK;
}

int main(int argc, char **argv)
{
    /* ssh runs qmpctl as its SSH_ASKPASS helper (qmpctl_login.c). */
    int ask = qc_askpass_hook(argc, argv);
    if (ask >= 0)
        return ask;
    struct qc_opts o;
    cli_args ca;
    int version, rc = parse_opts(argc, argv, &o, &ca, &version);
    int nargs = ca.npos;
    char **args = ca.pos;
    if (rc != QC_OK)
        return rc;
    if (version && !ca.help) {
        printf("%s %s\n", qc_prog, cli_version());
        return QC_OK;
    }
    if (nargs > 0 && !strcmp(args[0], "help"))
        return help(nargs - 1, args + 1);
    if (ca.help)
        return help(nargs, args);
    if (nargs == 0) {
        usage(stderr);
        return QC_USAGE;
    }
    const struct cmd *c = find_cmd(args[0]);
    if (!c)
        return usage_error(
            NULL, "no command '%s' (list, status, pci, ifaces, qmp, qga, events, console, stop, migrate, ssh, vnc, hmp)",
            args[0]);
    if ((rc = check_opts(c, &o, nargs - 1)) != QC_OK)
        return rc;
    return run_cmd(c, &o, nargs - 1, args + 1);
}
