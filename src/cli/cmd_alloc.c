/* cmd_alloc.c - `qfleet leases`, `qfleet alloc`, `qfleet free`: the lease
 * store for people and for scripts that start their own guests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/time.h"
#include "src/alloc/alloc.h"
#include "src/cli/cmd.h"

static int open_store(const char *cmd, const char *dir, alloc_store **s)
{
    char err[512];
    int rc = alloc_store_open(s, dir, NULL, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "qfleet %s: %s\n", cmd, err);
    return rc;
}

static int print_json(json_t *v)
{
    return cli_print_json(v) < 0 ? 1 : 0;
}

/* --- qfleet leases -------------------------------------------------- */

static const char leases_help[] =
    "usage: qfleet leases [--json [--with-prefix]] [--state-dir DIR]\n"
    "\n"
    "List the leases held on this host: MACs, VNC displays, host ports, pinned\n"
    "CPUs and SR-IOV VFs, with their owners. Leases of owners that are gone are\n"
    "reclaimed first, so what is listed is held right now.\n"
    "\n"
    "  --json           a JSON array of lease objects, for machines\n"
    "  --with-prefix    with --json: an object {\"prefix\", \"prefix_from\", \"leases\"},\n"
    "                   the MAC prefix new MACs get here and the array\n"
    "  --state-dir DIR  the host's state dir (default: $QFLEET_STATE_DIR, else\n"
    "                   /var/lib/qfleet as root, else $XDG_RUNTIME_DIR/qfleet)\n"
    "  --store etcd://H:P[,H:P...]  the leases of every host sharing that etcd\n"
    "                   cluster instead (default: $QFLEET_STORE; see\n"
    "                   `qfleet leases --store etcd:// --help`); --store DIR\n"
    "                   is --state-dir DIR\n";

static void print_table(const alloc_lease *v, size_t n, const char *dir)
{
    if (n == 0) {
        printf("no leases held in %s\n", dir);
        return;
    }
    int wk = 4, wv = 5, wo = 5, wp = 4;
    char pid[24];
    for (size_t i = 0; i < n; i++) {
        int l;
        if ((l = (int)strlen(v[i].kind)) > wk)
            wk = l;
        if ((l = (int)strlen(v[i].value)) > wv)
            wv = l;
        if ((l = (int)strlen(v[i].owner)) > wo)
            wo = l;
        if ((l = snprintf(pid, sizeof(pid), "%d", (int)v[i].pid)) > wp)
            wp = l;
    }
    printf("%-*s  %-*s  %-*s  %-*s  %-19s  %s\n", wk, "KIND", wv, "VALUE", wo, "OWNER", wp, "PID",
           "TAKEN", "NOTE");
    for (size_t i = 0; i < n; i++) {
        char when[32], note[ALLOC_DATA_MAX + 16];
        time_wall_text(v[i].taken_ms, "%Y-%m-%d %H:%M:%S", when, sizeof(when));
        if (v[i].flags & ALLOC_HOLD)
            snprintf(pid, sizeof(pid), "hold");
        else
            snprintf(pid, sizeof(pid), "%d", (int)v[i].pid);
        snprintf(note, sizeof(note), "%s%s%s", v[i].flags & ALLOC_SHARED ? "shared" : "",
                 v[i].flags & ALLOC_SHARED && v[i].data[0] ? ", " : "", v[i].data);
        printf("%-*s  %-*s  %-*s  %-*s  %-19s  %s\n", wk, v[i].kind, wv, v[i].value, wo,
               v[i].owner, wp, pid, when, note);
    }
}

/* Which prefix new MACs get here unless a cfg's mac_prefix or
 * --mac-prefix says otherwise. */
static void print_prefix(void)
{
    char pfx[32], err[256];
    const char *from = "";
    if (alloc_mac_default_prefix(NULL, pfx, sizeof(pfx), &from, err, sizeof(err)) == 0)
        printf("MAC prefix for new MACs: %s (%s; a VM's mac_prefix wins)\n", pfx, from);
    else
        printf("MAC prefix for new MACs: none: %s\n", err);
}

static json_t *leases_json(const alloc_lease *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_append(arr, alloc_lease_json(&v[i])) < 0) {
            json_free(arr);
            arr = NULL;
        }
    return arr;
}

/* --with-prefix: the array inside {"prefix", "prefix_from", "leases"}
 * ("prefix" null, "prefix_from" the reason, when there is none). */
static json_t *with_prefix(json_t *arr)
{
    char pfx[32], err[256];
    const char *from = "";
    json_t *o = arr ? json_object() : NULL;
    if (!o) {
        json_free(arr);
        return NULL;
    }
    int ok = alloc_mac_default_prefix(NULL, pfx, sizeof(pfx), &from, err, sizeof(err)) == 0;
    json_set(o, "prefix", ok ? json_string(pfx) : json_null());
    json_set_str(o, "prefix_from", ok ? from : err);
    json_set(o, "leases", arr);
    return o;
}

/* --store etcd://... (or $QFLEET_STORE): the cluster's leases
 * (cmd_cluster.c). 1 with the exit code in *exit when handled there. */
static int leases_on_etcd(int argc, char **argv, int *exit)
{
    const char *store = NULL;
    if ((*exit = cmd_cluster_store("qfleet leases", argc, argv, &store)) != 0)
        return 1;
    if (!store)
        return 0;
    *exit = cmd_cluster_leases(store, argc, argv);
    return 1;
}

int cmd_leases(int argc, char **argv)
{
    int on_etcd;
    if (leases_on_etcd(argc, argv, &on_etcd))
        return on_etcd;
    enum { O_JSON, O_DIR, O_WITH_PREFIX };
    cli_opt opts[] = { { "--json", 0, 0, NULL }, { "--state-dir", 0, 1, NULL },
                       { "--with-prefix", 0, 0, NULL }, { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse("qfleet leases", argc, argv, opts, 0, &ca))
        return 2;
    if (ca.help)
        return cli_help(leases_help);
    if (opts[O_WITH_PREFIX].value && !opts[O_JSON].value)
        return cli_usage_error("qfleet leases", "--with-prefix goes with --json (the table always "
                               "shows the prefix)");
    alloc_store *s;
    if (open_store("leases", opts[O_DIR].value, &s) < 0)
        return 1;
    alloc_lease *v;
    size_t n;
    char err[512];
    int rc = alloc_list(s, &v, &n, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qfleet leases: %s\n", err);
        alloc_store_close(s);
        return 1;
    }
    int exit = 0;
    if (opts[O_JSON].value) {
        json_t *arr = leases_json(v, n);
        exit = print_json(opts[O_WITH_PREFIX].value ? with_prefix(arr) : arr);
    } else {
        print_table(v, n, alloc_store_dir(s));
        print_prefix();
    }
    free(v);
    alloc_store_close(s);
    return exit;
}

/* --- qfleet alloc --------------------------------------------------- */

static const char alloc_help[] =
    "usage: qfleet alloc mac|vnc|port --owner NAME [OPTIONS]\n"
    "\n"
    "Take a lease on this host and print what was allocated: a MAC address, a\n"
    "VNC display number or a TCP port. Every qfleet on the host respects it.\n"
    "\n"
    "  --owner NAME     who holds the lease, e.g. RUN/VM ('/' separates parts;\n"
    "                   a MAC belongs to NAME/nicN)\n"
    "  --hold           keep the lease until `qfleet free --owner NAME`\n"
    "  --pid PID        keep it while process PID lives\n"
    "  --state-dir DIR  the host's state dir (see `qfleet leases --help`)\n"
    "  --json           print the lease as a JSON object\n"
    "  --store etcd://H:P[,H:P...]  take it across every host sharing that etcd\n"
    "                   cluster (default: $QFLEET_STORE; see\n"
    "                   `qfleet alloc --store etcd:// --help`); --store DIR\n"
    "                   is --state-dir DIR\n"
    "mac:\n"
    "  --nic N          NIC index (default 0); the same owner and NIC always get\n"
    "                   the same MAC while the lease lives\n"
    "  --prefix P       MAC prefix, 0-5 octets (default: $QFLEET_MAC_PREFIX, else\n"
    "                   derived from this host's first NIC, so hosts do not collide)\n"
    "  --mac MAC        reserve this MAC instead of a random one\n"
    "  --shared         the MAC may also be held by another shared lease\n"
    "                   (migration source and destination)\n"
    "vnc:\n"
    "  --display N      reserve this display instead of the first free one\n"
    "  --websocket      also lease the websocket port 5700+N\n"
    "port:\n"
    "  --range A-B      where to look (default 20000-29999)\n"
    "  --port N         reserve this port\n"
    "\n"
    "Whose lease is it? `qfleet alloc` exits at once, so a lease tied to it\n"
    "would die with it. Without --hold or --pid the lease belongs to the\n"
    "PARENT process of `qfleet alloc`: normally the shell running your script,\n"
    "including in MAC=$(qfleet alloc mac ...). It is reclaimed when that shell\n"
    "exits. If your shell forks a subshell for the call that then exits, use\n"
    "--pid $$ or --hold.\n";

/* owner: the lease's owner name, NAME/nicN for a MAC (as `qfleet leases`). */
static int print_value(const char *kind, const char *value, int display, const alloc_owner *o,
                       const char *owner, int json)
{
    if (!json) {
        printf("%s\n", value);
        return 0;
    }
    json_t *obj = json_object();
    if (obj && (json_set_str(obj, "kind", kind) || json_set_str(obj, "value", value) ||
                json_set_str(obj, "owner", owner) || json_set_int(obj, "pid", o->pid) ||
                json_set_bool(obj, "hold", o->pid == 0) ||
                (display >= 0 && (json_set_int(obj, "display", display) ||
                                  json_set_int(obj, "port", ALLOC_VNC_PORT_BASE + display))))) {
        json_free(obj);
        obj = NULL;
    }
    return print_json(obj);
}

/* What `qfleet alloc` was asked for. */
struct alloc_args {
    const char *kind, *owner, *dir, *prefix, *mac;
    int json, shared, websocket;
    int pid;           /* 0: held until `qfleet free` */
    int nic;
    int display, port; /* -1: the first free one */
    int first, last;   /* --range */
};

enum { O_OWNER, O_HOLD, O_PID, O_DIR, O_JSON, O_NIC, O_PREFIX, O_MAC, O_SHARED, O_DISPLAY,
       O_WS, O_RANGE, O_PORT };

/* Options of one kind given for another are mistakes, not no-ops: the
 * first such option, or NULL. */
static const char *misplaced(const cli_opt *opts, const char *kind)
{
    static const struct { const char *kind; int from, to; } only[] = {
        { "mac", O_NIC, O_SHARED }, { "vnc", O_DISPLAY, O_WS }, { "port", O_RANGE, O_PORT },
    };
    for (size_t k = 0; k < sizeof(only) / sizeof(only[0]); k++)
        for (int i = only[k].from; strcmp(kind, only[k].kind) && i <= only[k].to; i++)
            if (opts[i].value)
                return opts[i].name;
    return NULL;
}

static int alloc_numbers(const cli_opt *opts, struct alloc_args *a)
{
    static const char P[] = "qfleet alloc";
    char tail;
    if (cli_int(P, &opts[O_PID], 1, 0x7fffffff, &a->pid) ||
        cli_int(P, &opts[O_NIC], 0, 9999, &a->nic) ||
        cli_int(P, &opts[O_DISPLAY], 0, 65535 - 5900, &a->display) ||
        cli_int(P, &opts[O_PORT], 1, 65535, &a->port))
        return 2;
    const char *r = opts[O_RANGE].value;
    if (r && (sscanf(r, "%d-%d%c", &a->first, &a->last, &tail) != 2 || a->first < 1 ||
              a->last > 65535 || a->first > a->last))
        return cli_usage_error(P, "--range takes A-B with 1 <= A <= B <= 65535, not '%s'", r);
    return 0;
}

static int alloc_parse(int argc, char **argv, struct alloc_args *a)
{
    static const char P[] = "qfleet alloc";
    cli_opt opts[] = { { "--owner", 0, 1, NULL },   { "--hold", 0, 0, NULL },
                       { "--pid", 0, 1, NULL },     { "--state-dir", 0, 1, NULL },
                       { "--json", 0, 0, NULL },    { "--nic", 0, 1, NULL },
                       { "--prefix", 0, 1, NULL },  { "--mac", 0, 1, NULL },
                       { "--shared", 0, 0, NULL },  { "--display", 0, 1, NULL },
                       { "--websocket", 0, 0, NULL }, { "--range", 0, 1, NULL },
                       { "--port", 0, 1, NULL },    { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 1, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    *a = (struct alloc_args){ .kind = ca.npos ? ca.pos[0] : NULL, .owner = opts[O_OWNER].value,
                              .dir = opts[O_DIR].value, .prefix = opts[O_PREFIX].value,
                              .mac = opts[O_MAC].value, .json = !!opts[O_JSON].value,
                              .shared = !!opts[O_SHARED].value, .websocket = !!opts[O_WS].value,
                              .display = -1, .port = -1, .first = ALLOC_SSH_PORTS_FIRST,
                              .last = ALLOC_SSH_PORTS_LAST };
    const char *k = a->kind, *only;
    if (!k || (strcmp(k, "mac") && strcmp(k, "vnc") && strcmp(k, "port")))
        return cli_usage_error(P, "say what to allocate: mac, vnc or port");
    if (!a->owner)
        return cli_usage_error(P, "--owner NAME is required");
    if (opts[O_HOLD].value && opts[O_PID].value)
        return cli_usage_error(P, "--hold and --pid exclude each other");
    if ((only = misplaced(opts, k)))
        return cli_usage_error(P, "%s does not apply to %s", only, k);
    if (alloc_numbers(opts, a))
        return 2;
    if (a->prefix && a->mac)
        return cli_usage_error(P, "--prefix and --mac exclude each other");
    if (!opts[O_PID].value && !opts[O_HOLD].value)
        a->pid = (int)getppid(); /* see alloc_help: the script's shell */
    return 0;
}

/* Take the lease a asks for; the allocated value goes to value. */
static int take_lease(alloc_store *s, const alloc_owner *o, struct alloc_args *a,
                      char *value, char *err, size_t errlen)
{
    unsigned shared = a->shared ? ALLOC_SHARED : 0, ws = a->websocket ? ALLOC_WEBSOCKET : 0;
    int rc;
    if (!strcmp(a->kind, "mac")) {
        if (!a->mac)
            return alloc_mac(s, o, a->nic, a->prefix, shared, value, err, errlen);
        rc = alloc_reserve_mac(s, o, a->nic, a->mac, shared, err, errlen);
        unsigned char m[6];
        if (rc == 0 && mac_parse(a->mac, m) == 0)
            mac_format(m, value);
    } else if (!strcmp(a->kind, "vnc")) {
        if (a->display >= 0)
            rc = alloc_reserve_vnc(s, o, a->display, ws, err, errlen);
        else
            rc = alloc_vnc(s, o, ws, &a->display, err, errlen);
        snprintf(value, ALLOC_VALUE_MAX, "%d", a->display);
    } else {
        if (a->port > 0)
            rc = alloc_reserve_port(s, o, a->port, err, errlen);
        else
            rc = alloc_port(s, o, a->first, a->last, &a->port, err, errlen);
        snprintf(value, ALLOC_VALUE_MAX, "%d", a->port);
    }
    return rc;
}

/* --store etcd://... (or $QFLEET_STORE): leases across hosts
 * (cmd_cluster.c). 1 with the exit code in *exit when handled there. */
static int alloc_on_etcd(int argc, char **argv, int *exit)
{
    const char *store = NULL;
    if ((*exit = cmd_cluster_store("qfleet alloc", argc, argv, &store)) != 0)
        return 1;
    if (!store)
        return 0;
    *exit = cmd_cluster_alloc(store, argc, argv);
    return 1;
}

int cmd_alloc(int argc, char **argv)
{
    int on_etcd;
    if (alloc_on_etcd(argc, argv, &on_etcd))
        return on_etcd;
    struct alloc_args a;
    int rc = alloc_parse(argc, argv, &a);
    if (rc)
        return rc == CLI_HELP ? cli_help(alloc_help) : rc;
    char err[512], value[ALLOC_VALUE_MAX] = "";
    alloc_owner o;
    rc = alloc_owner_init(&o, a.owner, (pid_t)a.pid, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qfleet alloc: %s\n", err);
        return rc == -EINVAL ? 2 : 1; /* a bad name is a usage error */
    }
    alloc_store *s;
    if (open_store("alloc", a.dir, &s) < 0)
        return 1;
    rc = take_lease(s, &o, &a, value, err, sizeof(err));
    alloc_store_close(s);
    if (rc < 0) {
        fprintf(stderr, "qfleet alloc: %s\n", err);
        return 1;
    }
    char owner[ALLOC_OWNER_MAX + 16];
    if (!strcmp(a.kind, "mac"))
        snprintf(owner, sizeof(owner), "%s/nic%d", o.name, a.nic);
    else
        snprintf(owner, sizeof(owner), "%s", o.name);
    return print_value(a.kind, value, strcmp(a.kind, "vnc") ? -1 : a.display, &o, owner, a.json);
}

/* --- qfleet free ---------------------------------------------------- */

static const char free_help[] =
    "usage: qfleet free --owner NAME [--json] [--state-dir DIR]\n"
    "\n"
    "Release every lease of NAME and of the names below it: RUN/VM also frees\n"
    "RUN/VM/nic0, RUN frees the whole run. Prints how many were released;\n"
    "none is not an error.\n";

int cmd_free(int argc, char **argv)
{
    enum { O_FOWNER, O_FJSON, O_FDIR };
    cli_opt opts[] = { { "--owner", 0, 1, NULL }, { "--json", 0, 0, NULL },
                       { "--state-dir", 0, 1, NULL }, { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse("qfleet free", argc, argv, opts, 0, &ca))
        return 2;
    if (ca.help)
        return cli_help(free_help);
    const char *owner = opts[O_FOWNER].value;
    if (!owner || !*owner)
        return cli_usage_error("qfleet free", "--owner NAME is required");
    alloc_store *s;
    if (open_store("free", opts[O_FDIR].value, &s) < 0)
        return 1;
    char err[512];
    int n = alloc_release_owner(s, owner, err, sizeof(err));
    alloc_store_close(s);
    if (n < 0) {
        fprintf(stderr, "qfleet free: %s\n", err);
        return 1;
    }
    if (!opts[O_FJSON].value) {
        printf("released %d lease%s of %s\n", n, n == 1 ? "" : "s", owner);
        return 0;
    }
    json_t *obj = json_object();
    if (obj && (json_set_str(obj, "owner", owner) || json_set_int(obj, "released", n))) {
        json_free(obj);
        obj = NULL;
    }
    return print_json(obj);
}
