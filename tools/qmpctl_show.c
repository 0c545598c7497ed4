/* qmpctl_show.c - the qmpctl commands that mostly read the registry:
 * list, status (plus query-status and a guest-ping), pci (plus query-pci
 * with --check), and the aligned tables they print for people. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/cluster/cluster.h"
#include "src/ctl/runs.h"
#include "src/fleet/fleet.h"
#include "tools/qmpctl_int.h"

#define QMP_TIMEOUT_MS 10000
#define PING_TIMEOUT_MS 5000

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *fmt_dur(long long ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%lldms", ms);
    else if (ms < 60000)
        snprintf(buf, len, "%.1fs", ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, len, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
    else
        snprintf(buf, len, "%lldd%02lldh", ms / 86400000, ms / 3600000 % 24);
    return buf;
}

/* An aligned table: cells are copied; columns are as wide as their widest
 * cell, two spaces apart, the last one unpadded. A row that cannot be
 * stored (no memory) is dropped whole, so columns never shift. */
struct table {
    int ncols;
    size_t n, cap;
    char **cells;
};

static void table_row(struct table *t, ...)
{
    if (t->n + (size_t)t->ncols > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        while (cap < t->n + (size_t)t->ncols)
            cap *= 2;
        char **nc = realloc(t->cells, cap * sizeof(*nc));
        if (!nc)
            return;
        t->cells = nc;
        t->cap = cap;
    }
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->n++] = strdup(s && *s ? s : "-");
    }
    va_end(ap);
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->n = t->cap = 0;
}

static void table_print(struct table *t)
{
    size_t w[16] = { 0 };
    for (size_t i = 0; i < t->n; i++) {
        size_t l = t->cells[i] ? strlen(t->cells[i]) : 0;
        if (l > w[i % (size_t)t->ncols])
            w[i % (size_t)t->ncols] = l;
    }
    for (size_t i = 0; i < t->n; i++) {
        int col = (int)(i % (size_t)t->ncols);
        const char *s = t->cells[i] ? t->cells[i] : "";
        if (col == t->ncols - 1)
            printf("%s\n", s);
        else
            printf("%-*s  ", (int)w[col], s);
    }
    table_free(t);
    fflush(stdout);
}

/* ---- list ---- */

static long long uptime_ms(const json_t *g, int live)
{
    const char *st = json_get_str(g, "state");
    long long started = json_get_int(g, "started_ms", -1);
    if (!live || started <= 0 || !st || qc_state_is_down(st) || fleet_state_from_name(st) == GS_ALLOCATING)
        return -1;
    return now_ms() - started;
}

static json_t *run_json(const struct qc_guest *r)
{
    json_t *o = json_object();
    json_set_str(o, "run", r->run_id);
    json_set_str(o, "run_dir", r->run_dir);
    json_set_bool(o, "live", r->live);
    json_t *gs = json_copy(json_get(r->reg, "guests"));
    for (size_t i = 0; i < json_len(gs); i++) {
        json_t *g = json_at(gs, i);
        long long up = uptime_ms(g, r->live);
        json_set(g, "uptime_ms", up >= 0 ? json_int(up) : json_null());
    }
    json_set(o, "guests", gs);
    return o;
}

/* The VNC, SSH and MAC cells of a guest's registry entry, as list shows
 * them (local runs and --cluster alike). */
struct cells {
    char macs[256], vnc[16], ssh[16];
};

static void guest_cells(const json_t *g, struct cells *c)
{
    long long v;
    *c = (struct cells){ 0 };
    if ((v = json_get_int(g, "vnc", -1)) >= 0)
        snprintf(c->vnc, sizeof(c->vnc), ":%lld", v);
    if ((v = json_get_int(g, "ssh_port", 0)) > 0)
        snprintf(c->ssh, sizeof(c->ssh), "%lld", v);
    const json_t *m = json_get(g, "macs");
    size_t off = 0;
    for (size_t k = 0; k < json_len(m) && off < sizeof(c->macs); k++)
        off += (size_t)snprintf(c->macs + off, sizeof(c->macs) - off, "%s%s", k ? "," : "",
                                json_str(json_at(m, k)));
}

static void list_rows(struct table *t, const struct qc_guest *r, int with_run)
{
    const json_t *gs = json_get(r->reg, "guests");
    for (size_t i = 0; i < json_len(gs); i++) {
        const json_t *g = json_at(gs, i);
        char pid[24] = "", up[32];
        struct cells c;
        long long v;
        if ((v = json_get_int(g, "pid", 0)) > 0 && !qc_state_is_down(json_get_str(g, "state")))
            snprintf(pid, sizeof(pid), "%lld", v);
        guest_cells(g, &c);
        fmt_dur(uptime_ms(g, r->live), up, sizeof(up));
        const char *name = json_get_str(g, "name"), *st = json_get_str(g, "state");
        /* A guest that is down no longer has the address it had. */
        const char *ip = qc_state_is_down(st) ? NULL : json_get_str(g, "ip");
        if (with_run)
            table_row(t, r->run_id, name, st, pid, c.macs, c.vnc, c.ssh, ip, up);
        else
            table_row(t, name, st, pid, c.macs, c.vnc, c.ssh, ip, up);
    }
}

static void list_reasons(const struct qc_guest *r)
{
    const json_t *gs = json_get(r->reg, "guests");
    for (size_t i = 0; i < json_len(gs); i++) {
        const json_t *g = json_at(gs, i);
        const char *st = json_get_str(g, "state");
        char line[512];
        if (fleet_state_from_name(st) == GS_FAILED)
            printf("%s failed: %s\n", json_get_str(g, "name"), qc_reason_line(g, line, sizeof(line)));
    }
}

struct live_runs {
    char (*dirs)[PATH_MAX];
    size_t n, cap;
};

static void collect_run(const char *dir, void *data)
{
    struct live_runs *lr = data;
    if (lr->n == lr->cap) {
        size_t cap = lr->cap ? lr->cap * 2 : 8;
        char (*nd)[PATH_MAX] = realloc(lr->dirs, cap * sizeof(*nd));
        if (!nd)
            return;
        lr->dirs = nd;
        lr->cap = cap;
    }
    snprintf(lr->dirs[lr->n++], PATH_MAX, "%s", dir);
}

/* The runs list shows: every live run (--all), or one. *runs is NULL on
 * failure (said on stderr). */
static size_t list_open(const struct qc_opts *o, struct qc_guest **runs)
{
    size_t n = 0;
    if (!o->all) {
        *runs = calloc(1, sizeof(**runs));
        if (*runs && qc_run_open(o, &(*runs)[0]) == QC_OK)
            return 1;
        free(*runs);
        *runs = NULL;
        return 0;
    }
    struct live_runs lr = { 0 };
    char err[512];
    *runs = NULL;
    if (runs_each(o->state_dir, 1, collect_run, &lr, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", qc_prog, err);
        return 0;
    }
    *runs = calloc(lr.n ? lr.n : 1, sizeof(**runs));
    for (size_t i = 0; *runs && i < lr.n; i++) {
        struct qc_opts one = *o;
        one.run = lr.dirs[i];
        if (qc_run_open(&one, &(*runs)[n]) == QC_OK)
            n++;
    }
    free(lr.dirs);
    if (*runs && n == 0 && !o->json)
        fprintf(stderr, "%s: no running qfleet run on this host\n", qc_prog);
    return n;
}

static void list_print(const struct qc_opts *o, const struct qc_guest *runs, size_t n)
{
    struct table t = { .ncols = o->all ? 9 : 8 };
    if (o->all)
        table_row(&t, "RUN", "NAME", "STATE", "PID", "MACS", "VNC", "SSH", "IP", "UPTIME");
    else
        table_row(&t, "NAME", "STATE", "PID", "MACS", "VNC", "SSH", "IP", "UPTIME");
    for (size_t i = 0; i < n; i++)
        list_rows(&t, &runs[i], o->all);
    table_print(&t);
    for (size_t i = 0; i < n; i++)
        list_reasons(&runs[i]);
    if (!o->all && !runs[0].live)
        fprintf(stderr, "%s: run %s has finished; this is its last registry\n", qc_prog,
                runs[0].run_id);
}

int qc_cmd_list(const struct qc_opts *o)
{
    struct qc_guest *runs;
    size_t n = list_open(o, &runs);
    if (!runs)
        return QC_FAIL;
    if (o->json) {
        json_t *v = o->all ? json_array() : run_json(&runs[0]);
        for (size_t i = 0; o->all && i < n; i++)
            json_append(v, run_json(&runs[i]));
        qc_print_json(v, 0);
        json_free(v);
    } else if (n > 0) {
        list_print(o, runs, n);
    }
    for (size_t i = 0; i < n; i++)
        qc_guest_close(&runs[i]);
    free(runs);
    return QC_OK;
}

/* ---- list --cluster ---- */

/* One short session with etcd on a loop of its own: open, list, close. */
struct cl_list {
    char why[CLUSTER_ERR_MAX];
    int answered, closed, rc;
    json_t *guests;
};

static void cl_guests(cluster_t *c, int result, json_t *v, void *data)
{
    struct cl_list *l = data;
    l->answered = 1;
    l->rc = result;
    l->guests = v;
    if (result < 0)
        snprintf(l->why, sizeof(l->why), "%s", cluster_error(c));
}

static void cl_closed(cluster_t *c, int result, void *data)
{
    (void)c;
    (void)result;
    ((struct cl_list *)data)->closed = 1;
}

static int by_host_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *hx = json_get_str(x, "host"), *hy = json_get_str(y, "host");
    int c = strcmp(hx ? hx : "", hy ? hy : "");
    const char *nx = json_get_str(x, "name"), *ny = json_get_str(y, "name");
    return c ? c : strcmp(nx ? nx : "", ny ? ny : "");
}

static void cluster_print(const json_t *gs)
{
    size_t n = json_len(gs);
    const json_t **v = calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_at(gs, i);
    if (v)
        qsort(v, n, sizeof(*v), by_host_name);
    struct table t = { .ncols = 9 };
    table_row(&t, "HOST", "NAME", "STATE", "MACS", "VNC", "SSH", "IP", "RUN", "UPTIME");
    for (size_t i = 0; v && i < n; i++) {
        const json_t *g = v[i];
        char up[32];
        struct cells c;
        guest_cells(g, &c);
        fmt_dur(uptime_ms(g, 1), up, sizeof(up));
        table_row(&t, json_get_str(g, "host"), json_get_str(g, "name"), json_get_str(g, "state"),
                  c.macs, c.vnc, c.ssh, json_get_str(g, "ip"), json_get_str(g, "run"), up);
    }
    table_print(&t);
    free(v);
}

int qc_cmd_list_cluster(const struct qc_opts *o)
{
    const char *store = o->store ? o->store : getenv(CLUSTER_STORE_ENV);
    char eps[512], err[CLUSTER_ERR_MAX], host[CLUSTER_HOST_MAX];
    int rc = cluster_store_parse(store, eps, sizeof(eps), err, sizeof(err));
    if (rc <= 0) {
        fprintf(stderr, "%s: list --cluster: %s\n", qc_prog,
                rc < 0 ? err : "name the etcd store: --store etcd://H:P or $" CLUSTER_STORE_ENV);
        return QC_USAGE;
    }
    /* A reader: no lease, no host record, nothing written in etcd. */
    snprintf(host, sizeof(host), "qmpctl-%d", (int)getpid());
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cl_list l = { 0 };
    cluster_opts co = { .store = store, .host_id = host, .readonly = 1,
                        .timeout_ms = o->timeout_ms ? o->timeout_ms : 0 };
    cluster_t *c = NULL;
    if (cluster_open(&loop, &co, NULL, NULL, &l, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: etcd %s: %s\n", qc_prog, store, err);
        uv_loop_close(&loop);
        return QC_FAIL;
    }
    if ((rc = cluster_guests(c, cl_guests, &l)) == 0)
        while (!l.answered && uv_run(&loop, UV_RUN_ONCE))
            ;
    int out = QC_OK;
    if (l.rc == -ENOTCONN || l.rc == -ETIMEDOUT || l.rc == -EHOSTUNREACH) {
        fprintf(stderr, "%s: etcd %s is unreachable: %s\n", qc_prog, store, l.why);
        out = QC_FAIL;
    } else if (rc < 0 || l.rc < 0) {
        fprintf(stderr, "%s: etcd %s: listing guests: %s\n", qc_prog, store,
                rc < 0 ? strerror(-rc) : l.why);
        out = QC_FAIL;
    } else if (o->json) {
        qc_print_json(l.guests, 0);
    } else {
        cluster_print(l.guests);
    }
    json_free(l.guests);
    cluster_close(c, cl_closed, &l);
    while (!l.closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return out;
}

/* ---- status ---- */

/* timings_ms has a member per state reached from allocating on. */
static void print_timings(const json_t *t)
{
    struct table tb = { .ncols = 3 };
    table_row(&tb, "PHASE", "AT", "TOOK");
    long long prev = -1;
    for (int s = GS_ALLOCATING; s < GS_COUNT; s++) {
        const char *phase = fleet_state_name(s);
        long long at = json_get_int(t, phase, -1);
        if (at < 0)
            continue;
        char a[32], d[32];
        table_row(&tb, phase, fmt_dur(at, a, sizeof(a)), fmt_dur(prev >= 0 ? at - prev : -1, d, sizeof(d)));
        prev = at;
    }
    table_print(&tb);
}

/* -s SOCK status: QEMU's own view only. */
static int status_socket(const struct qc_opts *o)
{
    struct qc_target t = { .what = "socket" };
    snprintf(t.sock, sizeof(t.sock), "%s", o->socket);
    struct qc_result r;
    qc_qmp_call(&t, "query-status", NULL, o->timeout_ms ? o->timeout_ms : QMP_TIMEOUT_MS, &r);
    int rc = r.ret ? QC_OK : QC_FAIL;
    if (!r.ret) {
        fprintf(stderr, "%s: %s%s%s\n", qc_prog, r.remote ? r.cls : "", r.remote ? ": " : "", r.desc);
    } else if (o->json) {
        json_t *v = json_copy(r.ret);
        json_set_str(v, "socket", o->socket);
        json_set_str(v, "version", r.version);
        qc_print_json(v, 0);
        json_free(v);
    } else {
        printf("socket  %s\nqemu    %s  (QEMU %s)\n", o->socket, json_get_str(r.ret, "status"), r.version);
    }
    qc_result_clear(&r);
    return rc;
}

static json_t *error_json(const char *cls, const char *desc)
{
    json_t *e = json_object();
    json_set_str(e, "class", cls);
    json_set_str(e, "desc", desc);
    return e;
}

/* What status found out about one guest. */
struct status {
    const char *name;
    struct qc_guest g;
    struct qc_result r;  /* query-status */
    char why[600];       /* why QEMU did not answer, when the registry knows */
    json_t *ping;        /* the controller's reply to guest-ping, or NULL */
    double ping_ms;
};

/* The agent, through the controller (the only one talking to it). */
static int status_ping(struct status *st)
{
    json_t *req = json_object();
    json_set_str(req, "cmd", "qga");
    json_set_str(req, "guest", st->name);
    json_set_str(req, "execute", "guest-ping");
    json_set_int(req, "timeout_ms", PING_TIMEOUT_MS);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = qc_control(&st->g, req, PING_TIMEOUT_MS + 2000, &st->ping);
    clock_gettime(CLOCK_MONOTONIC, &b);
    json_free(req);
    st->ping_ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    return rc;
}

static void status_print_json(const struct status *st)
{
    const json_t *e = st->g.g, *perr = json_get(st->ping, "error");
    long long up = uptime_ms(e, st->g.live);
    json_t *v = json_object();
    json_set_str(v, "name", st->name);
    json_set_str(v, "vm", json_get_str(e, "vm"));
    json_set_str(v, "run", st->g.run_id);
    json_set_str(v, "state", json_get_str(e, "state"));
    json_set(v, "reason", json_copy(json_get(e, "reason")));
    json_set(v, "pid", json_copy(json_get(e, "pid")));
    json_t *q = st->r.ret ? json_copy(st->r.ret) : json_object();
    if (st->r.ret)
        json_set_str(q, "version", st->r.version);
    else
        json_set(q, "error", error_json(st->r.remote ? st->r.cls : "Gone",
                                        st->why[0] ? st->why : st->r.desc));
    json_set(v, "qmp", q);
    json_t *ag = json_object();
    json_set_bool(ag, "ok", st->ping && !perr);
    if (st->ping && !perr)
        json_set_int(ag, "ping_ms", (long long)st->ping_ms);
    else if (perr)
        json_set(ag, "error", json_copy(perr));
    json_set(v, "agent", ag);
    json_set(v, "ip", json_copy(json_get(e, "ip")));
    json_set(v, "started_ms", json_copy(json_get(e, "started_ms")));
    json_set(v, "uptime_ms", up >= 0 ? json_int(up) : json_null());
    json_set(v, "timings_ms", json_copy(json_get(e, "timings_ms")));
    qc_print_json(v, 0);
    json_free(v);
}

static void status_print_text(const struct status *st)
{
    const json_t *e = st->g.g, *perr = json_get(st->ping, "error");
    char line[512], d[32];
    printf("guest    %s  (vm %s, run %s)\n", st->name, json_get_str(e, "vm"), st->g.run_id);
    printf("state    %s\n", json_get_str(e, "state"));
    if (json_get_str(e, "reason"))
        printf("reason   %s\n", qc_reason_line(e, line, sizeof(line)));
    if (st->r.ret)
        printf("qemu     %s  (pid %lld, QEMU %s)\n", json_get_str(st->r.ret, "status"),
               json_get_int(e, "pid", 0), st->r.version);
    else
        printf("qemu     -  (%s)\n",
               st->why[0] ? st->why : st->r.remote ? st->r.cls : "not answering");
    if (!st->ping)
        printf("agent    -\n");
    else if (perr)
        printf("agent    %s\n", json_get_str(perr, "desc"));
    else
        printf("agent    responding  (guest-ping %.0f ms through the controller)\n", st->ping_ms);
    printf("ip       %s\n", json_get_str(e, "ip") ? json_get_str(e, "ip") : "-");
    printf("uptime   %s\n\n", fmt_dur(uptime_ms(e, st->g.live), d, sizeof(d)));
    print_timings(json_get(e, "timings_ms"));
}

int qc_cmd_status(const struct qc_opts *o, const char *name)
{
    if (o->socket)
        return status_socket(o);
    struct status st = { .name = name };
    if (qc_guest_open(o, name, 1, &st.g) != QC_OK)
        return QC_FAIL;
    struct qc_target t;
    qc_guest_target(&st.g, &t);
    /* A guest the registry already knows is down has no monitor to ask. */
    if (qc_state_is_down(json_get_str(st.g.g, "state")))
        qc_guest_why_gone(&st.g, st.why, sizeof(st.why));
    else if (qc_qmp_call(&t, "query-status", NULL, o->timeout_ms ? o->timeout_ms : QMP_TIMEOUT_MS,
                         &st.r) < 0 && !st.r.remote)
        qc_guest_why_gone(&st.g, st.why, sizeof(st.why));
    int rc = st.r.ret && status_ping(&st) != QC_OK ? QC_FAIL : QC_OK;
    if (rc == QC_OK) {
        if (o->json)
            status_print_json(&st);
        else
            status_print_text(&st);
        rc = st.r.ret ? QC_OK : QC_FAIL;
        if (!st.r.ret && st.r.remote)
            fprintf(stderr, "%s: %s: query-status: %s: %s\n", qc_prog, name, st.r.cls, st.r.desc);
        else if (!st.r.ret)
            fprintf(stderr, "%s: %s: %s\n", qc_prog, name, st.why[0] ? st.why : st.r.desc);
    }
    json_free(st.ping);
    qc_result_clear(&st.r);
    qc_guest_close(&st.g);
    return rc;
}

/* ---- pci ---- */

/* Where QEMU has the device with qdev id id, per query-pci. */
static const json_t *pci_lookup(const json_t *buses, const char *id, char *addr, size_t addrlen)
{
    for (size_t b = 0; b < json_len(buses); b++) {
        const json_t *bus = json_at(buses, b);
        const json_t *devs = json_get(bus, "devices");
        for (size_t d = 0; d < json_len(devs); d++) {
            const json_t *dev = json_at(devs, d);
            const char *qid = json_get_str(dev, "qdev_id");
            if (!qid || strcmp(qid, id))
                continue;
            snprintf(addr, addrlen, "0000:%02llx:%02llx.%llx", json_get_int(bus, "bus", 0),
                     json_get_int(dev, "slot", 0), json_get_int(dev, "function", 0));
            return dev;
        }
    }
    return NULL;
}

/* --check of one pt_N device p against query-pci's buses: its table row
 * and JSON row. 1 when QEMU has it where the registry says. */
static int pci_check_row(struct table *t, const json_t *buses, const json_t *p, json_t *row)
{
    const char *id = json_get_str(p, "id"), *addr = json_get_str(p, "addr");
    char seen[32] = "", check[64] = "", dev[160] = "";
    const json_t *d = pci_lookup(buses, id ? id : "", seen, sizeof(seen));
    int ok = d && addr && !strcmp(seen, addr);
    snprintf(check, sizeof(check), "%s%s", !d ? "missing" : ok ? "ok" : "at ", d && !ok ? seen : "");
    const json_t *ids = json_get(d, "id");
    const char *desc = json_get_str(json_get(d, "class_info"), "desc");
    if (d)
        snprintf(dev, sizeof(dev), "%04llx:%04llx %s", json_get_int(ids, "vendor", 0),
                 json_get_int(ids, "device", 0), desc ? desc : "");
    json_set(row, "qemu_addr", d ? json_string(seen) : json_null());
    json_set_bool(row, "ok", ok);
    if (d) {
        json_set_int(row, "vendor_id", json_get_int(ids, "vendor", 0));
        json_set_int(row, "device_id", json_get_int(ids, "device", 0));
    }
    table_row(t, id, addr, json_get_str(p, "host"), check, dev);
    return ok;
}

/* query-pci on the guest's monitor into r; QC_FAIL said on stderr. */
static int pci_query(const struct qc_opts *o, struct qc_guest *g, struct qc_result *r)
{
    struct qc_target t;
    qc_guest_target(g, &t);
    if (qc_qmp_call(&t, "query-pci", NULL, o->timeout_ms ? o->timeout_ms : QMP_TIMEOUT_MS, r) == 0)
        return QC_OK;
    char why[600] = "";
    if (!r->remote)
        qc_guest_why_gone(g, why, sizeof(why));
    fprintf(stderr, "%s: %s: query-pci: %s\n", qc_prog, g->name, why[0] ? why : r->desc);
    return QC_FAIL;
}

int qc_cmd_pci(const struct qc_opts *o, const char *name)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, o->check, &g) != QC_OK)
        return QC_FAIL;
    const json_t *pts = json_get(g.g, "pci");
    struct qc_result r = { 0 };
    if (o->check && pci_query(o, &g, &r) != QC_OK) {
        qc_result_clear(&r);
        qc_guest_close(&g);
        return QC_FAIL;
    }
    int bad = 0;
    json_t *out = json_array();
    struct table t = { .ncols = o->check ? 5 : 3 };
    if (o->check)
        table_row(&t, "ID", "GUEST", "HOST", "QEMU", "DEVICE");
    else
        table_row(&t, "ID", "GUEST", "HOST");
    for (size_t i = 0; i < json_len(pts); i++) {
        const json_t *p = json_at(pts, i);
        json_t *row = json_copy(p);
        if (o->check)
            bad += !pci_check_row(&t, r.ret, p, row);
        else
            table_row(&t, json_get_str(p, "id"), json_get_str(p, "addr"), json_get_str(p, "host"));
        json_append(out, row);
    }
    if (o->json)
        qc_print_json(out, 0);
    else if (json_len(pts) == 0)
        printf("%s has no pt_N devices\n", name);
    else
        table_print(&t);
    table_free(&t);
    if (bad)
        fprintf(stderr, "%s: %s: %d device(s) not where the registry says\n", qc_prog, name, bad);
    json_free(out);
    qc_result_clear(&r);
    qc_guest_close(&g);
    return bad ? QC_FAIL : QC_OK;
}
