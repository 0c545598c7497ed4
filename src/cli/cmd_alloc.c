/* cmd_alloc.c - `qfleet leases`, `qfleet alloc`, `qfleet free`: the lease
 * store for people and for scripts that start their own guests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "src/alloc/alloc.h"
#include "src/cli/cmd.h"

/* --- options -------------------------------------------------------- */

typedef struct opt {
    const char *name; /* "--owner" */
    int takes_value;
    const char *value; /* set when seen: the value, or "" for a flag */
} opt;

/* Match argv against opts; positional arguments go to pos[]. Returns 0 or
 * prints why to stderr and returns 2. */
static int parse_opts(const char *cmd, int argc, char **argv, opt *opts, const char **pos,
                      int maxpos, int *npos)
{
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (*npos == maxpos) {
                fprintf(stderr, "qfleet %s: unexpected argument '%s'\n", cmd, a);
                return 2;
            }
            pos[(*npos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        opt *o = NULL;
        for (opt *p = opts; p->name; p++)
            if (strlen(p->name) == len && !strncmp(p->name, a, len))
                o = p;
        if (!o) {
            fprintf(stderr, "qfleet %s: unknown option '%.*s' (see --help)\n", cmd, (int)len, a);
            return 2;
        }
        if (!o->takes_value) {
            if (eq) {
                fprintf(stderr, "qfleet %s: %s takes no value\n", cmd, o->name);
                return 2;
            }
            o->value = "";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            fprintf(stderr, "qfleet %s: %s needs a value\n", cmd, o->name);
            return 2;
        }
    }
    return 0;
}

static int has_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

/* A whole decimal int in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

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
    char *text = v ? json_dump_pretty(v, NULL) : NULL;
    json_free(v);
    if (!text) {
        fprintf(stderr, "qfleet: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* --- qfleet leases -------------------------------------------------- */

static const char leases_help[] =
    "usage: qfleet leases [--json] [--state-dir DIR]\n"
    "\n"
    "List the leases held on this host: MACs, VNC displays, host ports, pinned\n"
    "CPUs and SR-IOV VFs, with their owners. Leases of owners that are gone are\n"
    "reclaimed first, so what is listed is held right now.\n"
    "\n"
    "  --json           a JSON array of lease objects, for machines\n"
    "  --state-dir DIR  the host's state dir (default: $QFLEET_STATE_DIR, else\n"
    "                   /var/lib/qfleet as root, else $XDG_RUNTIME_DIR/qfleet)\n";

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
        char when[32] = "?", note[ALLOC_DATA_MAX + 16];
        time_t t = (time_t)(v[i].taken_ms / 1000);
        struct tm tm;
        if (localtime_r(&t, &tm))
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
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

int cmd_leases(int argc, char **argv)
{
    if (has_help(argc, argv)) {
        fputs(leases_help, stdout);
        return 0;
    }
    opt opts[] = { { "--json", 0, NULL }, { "--state-dir", 1, NULL }, { NULL, 0, NULL } };
    const char *pos[1];
    int npos;
    if (parse_opts("leases", argc, argv, opts, pos, 0, &npos))
        return 2;
    alloc_store *s;
    if (open_store("leases", opts[1].value, &s) < 0)
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
    if (opts[0].value) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            if (json_append(arr, alloc_lease_json(&v[i])) < 0) {
                json_free(arr);
                arr = NULL;
            }
        exit = print_json(arr);
    } else {
        print_table(v, n, alloc_store_dir(s));
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
    "mac:\n"
    "  --nic N          NIC index (default 0); the same owner and NIC always get\n"
    "                   the same MAC while the lease lives\n"
    "  --prefix P       MAC prefix, 0-5 octets (default: derived from this host's\n"
    "                   first NIC, so hosts do not collide)\n"
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

static int print_value(const char *kind, const char *value, int display, const alloc_owner *o,
                       int json)
{
    if (!json) {
        printf("%s\n", value);
        return 0;
    }
    json_t *obj = json_object();
    if (obj && (json_set_str(obj, "kind", kind) || json_set_str(obj, "value", value) ||
                json_set_str(obj, "owner", o->name) || json_set_int(obj, "pid", o->pid) ||
                json_set_bool(obj, "hold", o->pid == 0) ||
                (display >= 0 && (json_set_int(obj, "display", display) ||
                                  json_set_int(obj, "port", ALLOC_VNC_PORT_BASE + display))))) {
        json_free(obj);
        obj = NULL;
    }
    return print_json(obj);
}

int cmd_alloc(int argc, char **argv)
{
    if (has_help(argc, argv)) {
        fputs(alloc_help, stdout);
        return 0;
    }
    enum { O_OWNER, O_HOLD, O_PID, O_DIR, O_JSON, O_NIC, O_PREFIX, O_MAC, O_SHARED, O_DISPLAY,
           O_WS, O_RANGE, O_PORT };
    opt opts[] = { { "--owner", 1, NULL },   { "--hold", 0, NULL },   { "--pid", 1, NULL },
                   { "--state-dir", 1, NULL }, { "--json", 0, NULL }, { "--nic", 1, NULL },
                   { "--prefix", 1, NULL },  { "--mac", 1, NULL },    { "--shared", 0, NULL },
                   { "--display", 1, NULL }, { "--websocket", 0, NULL },
                   { "--range", 1, NULL },   { "--port", 1, NULL },   { NULL, 0, NULL } };
    const char *pos[1];
    int npos;
    if (parse_opts("alloc", argc, argv, opts, pos, 1, &npos))
        return 2;
    const char *kind = npos ? pos[0] : NULL;
    const char *only = NULL;
    if (!kind || (strcmp(kind, "mac") && strcmp(kind, "vnc") && strcmp(kind, "port"))) {
        fprintf(stderr, "qfleet alloc: say what to allocate: mac, vnc or port (see --help)\n");
        return 2;
    }
    if (!opts[O_OWNER].value) {
        fprintf(stderr, "qfleet alloc: --owner NAME is required\n");
        return 2;
    }
    if (opts[O_HOLD].value && opts[O_PID].value) {
        fprintf(stderr, "qfleet alloc: --hold and --pid exclude each other\n");
        return 2;
    }
    /* Options of one kind given for another are mistakes, not no-ops. */
    if (strcmp(kind, "mac"))
        for (int i = O_NIC; i <= O_SHARED; i++)
            only = opts[i].value ? opts[i].name : only;
    if (strcmp(kind, "vnc"))
        for (int i = O_DISPLAY; i <= O_WS; i++)
            only = opts[i].value ? opts[i].name : only;
    if (strcmp(kind, "port"))
        for (int i = O_RANGE; i <= O_PORT; i++)
            only = opts[i].value ? opts[i].name : only;
    if (only) {
        fprintf(stderr, "qfleet alloc: %s does not apply to %s\n", only, kind);
        return 2;
    }
    int pid = 0, nic = 0, display = -1, port = -1, first = ALLOC_SSH_PORTS_FIRST,
        last = ALLOC_SSH_PORTS_LAST;
    char tail;
    if ((opts[O_PID].value && parse_int(opts[O_PID].value, 1, 0x7fffffff, &pid)) ||
        (opts[O_NIC].value && parse_int(opts[O_NIC].value, 0, 9999, &nic)) ||
        (opts[O_DISPLAY].value && parse_int(opts[O_DISPLAY].value, 0, 65535 - 5900, &display)) ||
        (opts[O_PORT].value && parse_int(opts[O_PORT].value, 1, 65535, &port)) ||
        (opts[O_RANGE].value &&
         (sscanf(opts[O_RANGE].value, "%d-%d%c", &first, &last, &tail) != 2 || first < 1 ||
          last > 65535 || first > last))) {
        fprintf(stderr, "qfleet alloc: bad number in an option (see --help)\n");
        return 2;
    }
    if (opts[O_PREFIX].value && opts[O_MAC].value) {
        fprintf(stderr, "qfleet alloc: --prefix and --mac exclude each other\n");
        return 2;
    }
    if (!opts[O_PID].value && !opts[O_HOLD].value)
        pid = (int)getppid(); /* see alloc_help: the script's shell */

    char err[512];
    alloc_owner o;
    int orc = alloc_owner_init(&o, opts[O_OWNER].value, (pid_t)pid, err, sizeof(err));
    if (orc < 0) {
        fprintf(stderr, "qfleet alloc: %s\n", err);
        return orc == -EINVAL ? 2 : 1; /* a bad name is a usage error */
    }
    alloc_store *s;
    if (open_store("alloc", opts[O_DIR].value, &s) < 0)
        return 1;
    char value[ALLOC_VALUE_MAX];
    unsigned shared = opts[O_SHARED].value ? ALLOC_SHARED : 0;
    unsigned ws = opts[O_WS].value ? ALLOC_WEBSOCKET : 0;
    int rc;
    if (!strcmp(kind, "mac")) {
        if (opts[O_MAC].value) {
            rc = alloc_reserve_mac(s, &o, nic, opts[O_MAC].value, shared, err, sizeof(err));
            unsigned char m[6];
            if (rc == 0 && mac_parse(opts[O_MAC].value, m) == 0)
                mac_format(m, value);
        } else {
            rc = alloc_mac(s, &o, nic, opts[O_PREFIX].value, shared, value, err, sizeof(err));
        }
    } else if (!strcmp(kind, "vnc")) {
        if (display >= 0)
            rc = alloc_reserve_vnc(s, &o, display, ws, err, sizeof(err));
        else
            rc = alloc_vnc(s, &o, ws, &display, err, sizeof(err));
        snprintf(value, sizeof(value), "%d", display);
    } else {
        if (port > 0)
            rc = alloc_reserve_port(s, &o, port, err, sizeof(err));
        else
            rc = alloc_port(s, &o, first, last, &port, err, sizeof(err));
        snprintf(value, sizeof(value), "%d", port);
    }
    alloc_store_close(s);
    if (rc < 0) {
        fprintf(stderr, "qfleet alloc: %s\n", err);
        return 1;
    }
    return print_value(kind, value, strcmp(kind, "vnc") ? -1 : display, &o,
                       opts[O_JSON].value != NULL);
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
    if (has_help(argc, argv)) {
        fputs(free_help, stdout);
        return 0;
    }
    opt opts[] = { { "--owner", 1, NULL }, { "--json", 0, NULL }, { "--state-dir", 1, NULL },
                   { NULL, 0, NULL } };
    const char *pos[1];
    int npos;
    if (parse_opts("free", argc, argv, opts, pos, 0, &npos))
        return 2;
    if (!opts[0].value || !*opts[0].value) {
        fprintf(stderr, "qfleet free: --owner NAME is required\n");
        return 2;
    }
    alloc_store *s;
    if (open_store("free", opts[2].value, &s) < 0)
        return 1;
    char err[512];
    int n = alloc_release_owner(s, opts[0].value, err, sizeof(err));
    alloc_store_close(s);
    if (n < 0) {
        fprintf(stderr, "qfleet free: %s\n", err);
        return 1;
    }
    if (!opts[1].value) {
        printf("released %d lease%s of %s\n", n, n == 1 ? "" : "s", opts[0].value);
        return 0;
    }
    json_t *obj = json_object();
    if (obj && (json_set_str(obj, "owner", opts[0].value) || json_set_int(obj, "released", n))) {
        json_free(obj);
        obj = NULL;
    }
    return print_json(obj);
}
