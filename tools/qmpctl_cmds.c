/* qmpctl_cmds.c - the qmpctl commands that talk to a guest: ifaces and qga
 * through the controller's control socket (it owns the agent channel),
 * qmp and events on the inspection monitor, stop, and console. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "src/ctl/runs.h"
#include "tools/qmpctl_int.h"

#define QMP_TIMEOUT_MS 10000
#define QGA_TIMEOUT_MS 30000
/* The controller's graceful stop: up to 20 s for the guest to power off,
 * then QMP quit, then SIGTERM and SIGKILL. */
#define STOP_TIMEOUT_MS 90000
#define CONSOLE_POLL_MS 500

static int tmo(const struct qc_opts *o, int def) { return o->timeout_ms ? o->timeout_ms : def; }

static int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", qc_prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s %s --help for usage)\n", qc_prog, cmd);
    return QC_USAGE;
}

static int valid_name(const char *s)
{
    return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") ==
                     strlen(s);
}

int qc_parse_command(const char *verb, int argc, char **argv, char *cmd, size_t cmdlen, json_t **args)
{
    *args = NULL;
    if (argc < 1)
        return cmd_usage_error(verb, "missing the command (a name or a JSON request)");
    char err[256];
    if (argv[0][0] == '{') {
        if (argc > 1)
            return cmd_usage_error(verb, "a JSON request takes no further arguments, not '%s'", argv[1]);
        json_t *req = json_parse(argv[0], strlen(argv[0]), err, sizeof(err));
        const char *ex = json_get_str(req, "execute");
        const json_t *a = json_get(req, "arguments");
        int rc = QC_OK;
        if (!req)
            rc = cmd_usage_error(verb, "the request is not valid JSON: %s", err);
        else if (json_typeof(req) != JSON_OBJECT || !ex || !valid_name(ex))
            rc = cmd_usage_error(verb, "a JSON request needs \"execute\": a command name, in '%s'", argv[0]);
        else if (a && json_typeof(a) != JSON_OBJECT)
            rc = cmd_usage_error(verb, "\"arguments\" must be a JSON object, in '%s'", argv[0]);
        if (rc == QC_OK) {
            snprintf(cmd, cmdlen, "%s", ex);
            *args = a ? json_copy(a) : NULL;
        }
        json_free(req);
        return rc;
    }
    if (!valid_name(argv[0]) || strlen(argv[0]) >= cmdlen)
        return cmd_usage_error(verb, "not a command name: '%s'", argv[0]);
    snprintf(cmd, cmdlen, "%s", argv[0]);
    if (argc == 2 && argv[1][0] == '{') {
        json_t *a = json_parse(argv[1], strlen(argv[1]), err, sizeof(err));
        if (json_typeof(a) != JSON_OBJECT) {
            json_free(a);
            return cmd_usage_error(verb, "arguments must be one JSON object or key=value pairs, not '%s'", argv[1]);
        }
        *args = a;
        return QC_OK;
    }
    /* key=value, as in qmp-shell: a value that parses as JSON (numbers,
     * true, objects, "quoted") is taken as such, anything else as text. */
    for (int i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i]) {
            json_free(*args);
            *args = NULL;
            return cmd_usage_error(verb, "arguments are key=value pairs, not '%s'", argv[i]);
        }
        if (!*args)
            *args = json_object();
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]), argv[i]);
        json_t *v = json_parse(eq + 1, strlen(eq + 1), NULL, 0);
        json_set(*args, key, v ? v : json_string(eq + 1));
    }
    return QC_OK;
}

/* Print a command's return value: JSON, except that text (what
 * human-monitor-command returns) reads better as itself. */
static void print_return(const json_t *ret, int json)
{
    const char *s = json_str(ret);
    if (!json && s) {
        size_t n = strlen(s);
        fputs(s, stdout);
        if (n && s[n - 1] != '\n')
            putchar('\n');
        fflush(stdout);
        return;
    }
    if (!json && json_typeof(ret) == JSON_OBJECT && json_len(ret) == 0)
        return; /* {} is how QMP says "done" */
    qc_print_json(ret, json);
}

static void print_error_json(const char *cls, const char *desc)
{
    json_t *v = json_object(), *e = json_object();
    json_set_str(e, "class", cls);
    json_set_str(e, "desc", desc);
    json_set(v, "error", e);
    qc_print_json(v, 1);
    json_free(v);
}

/* A controller reply: its "return", or the error printed and NULL. */
static const json_t *control_return(const struct qc_opts *o, const char *name, const json_t *rep)
{
    const json_t *e = json_get(rep, "error");
    if (!e)
        return json_get(rep, "return");
    const char *cls = json_get_str(e, "class"), *desc = json_get_str(e, "desc");
    char line[512];
    fprintf(stderr, "%s: %s: %s: %s\n", qc_prog, name, cls ? cls : "Error",
            qc_first_line(desc, line, sizeof(line)));
    if (o->json)
        print_error_json(cls ? cls : "Error", desc ? desc : "");
    return NULL;
}

static json_t *qga_request(const char *name, const char *cmd, json_t *args, int timeout_ms)
{
    json_t *req = json_object();
    json_set_str(req, "cmd", "qga");
    json_set_str(req, "guest", name);
    json_set_str(req, "execute", cmd);
    if (args)
        json_set(req, "arguments", args);
    json_set_int(req, "timeout_ms", timeout_ms);
    return req;
}

/* ---- ifaces ---- */

int qc_cmd_ifaces(const struct qc_opts *o, const char *name)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, 1, &g) != QC_OK)
        return QC_FAIL;
    int t = tmo(o, QGA_TIMEOUT_MS);
    json_t *req = qga_request(name, "guest-network-get-interfaces", NULL, t), *rep = NULL;
    int rc = qc_control(&g, req, t + 5000, &rep);
    json_free(req);
    const json_t *ret = rc == QC_OK ? control_return(o, name, rep) : NULL;
    if (ret && o->json) {
        qc_print_json(ret, 0);
    } else if (ret) {
        size_t w = 4;
        for (size_t i = 0; i < json_len(ret); i++) {
            const char *n = json_get_str(json_at(ret, i), "name");
            if (n && strlen(n) > w)
                w = strlen(n);
        }
        printf("%-*s  %-17s  %s\n", (int)w, "NAME", "MAC", "ADDRESSES");
        for (size_t i = 0; i < json_len(ret); i++) {
            const json_t *ifc = json_at(ret, i);
            const json_t *addrs = json_get(ifc, "ip-addresses");
            const char *mac = json_get_str(ifc, "hardware-address");
            printf("%-*s  %-17s  ", (int)w, json_get_str(ifc, "name"), mac ? mac : "-");
            for (size_t k = 0; k < json_len(addrs); k++) {
                const json_t *a = json_at(addrs, k);
                printf("%s%s/%lld", k ? ", " : "", json_get_str(a, "ip-address"),
                       json_get_int(a, "prefix", 0));
            }
            printf("%s\n", json_len(addrs) ? "" : "-");
        }
        fflush(stdout);
    }
    json_free(rep);
    qc_guest_close(&g);
    return ret ? QC_OK : QC_FAIL;
}

/* ---- qmp and qga ---- */

static int raw_qga(const struct qc_opts *o, const char *name, const char *cmd, json_t *args)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, 1, &g) != QC_OK) {
        json_free(args);
        return QC_FAIL;
    }
    int t = tmo(o, QGA_TIMEOUT_MS);
    json_t *req = qga_request(name, cmd, args, t), *rep = NULL;
    int rc = qc_control(&g, req, t + 5000, &rep);
    json_free(req);
    const json_t *ret = rc == QC_OK ? control_return(o, name, rep) : NULL;
    if (ret)
        print_return(ret, o->json);
    json_free(rep);
    qc_guest_close(&g);
    return ret ? QC_OK : QC_FAIL;
}

static int raw_qmp(const struct qc_opts *o, const char *name, const char *cmd, json_t *args)
{
    struct qc_guest g = { 0 };
    struct qc_target t = { .what = "socket" };
    char why[600] = "";
    if (o->socket) {
        snprintf(t.sock, sizeof(t.sock), "%s", o->socket);
    } else {
        if (qc_guest_open(o, name, 1, &g) != QC_OK) {
            json_free(args);
            return QC_FAIL;
        }
        qc_guest_target(&g, &t);
        const char *st = json_get_str(g.g, "state");
        if (st && (!strcmp(st, "stopped") || !strcmp(st, "failed")))
            qc_guest_why_gone(&g, why, sizeof(why));
    }
    struct qc_result r = { 0 };
    if (why[0]) {
        json_free(args);
        snprintf(r.cls, sizeof(r.cls), "Gone");
    } else if (qc_qmp_call(&t, cmd, args, tmo(o, QMP_TIMEOUT_MS), &r) < 0 && !r.remote && !o->socket) {
        qc_guest_why_gone(&g, why, sizeof(why));
    }
    if (r.ret) {
        print_return(r.ret, o->json);
    } else {
        char desc[1300];
        if (r.remote)
            snprintf(desc, sizeof(desc), "%s: %s", cmd, r.desc);
        else
            snprintf(desc, sizeof(desc), "%s", why[0] ? why : r.desc);
        fprintf(stderr, "%s: %s%s%s%s%s\n", qc_prog, name ? name : "", name ? ": " : "",
                r.remote ? r.cls : "", r.remote ? ": " : "", desc);
        if (o->json)
            print_error_json(r.cls, r.remote ? r.desc : desc);
    }
    int rc = r.ret ? QC_OK : QC_FAIL;
    qc_result_clear(&r);
    qc_guest_close(&g);
    return rc;
}

int qc_cmd_raw(const struct qc_opts *o, int qga, const char *name, int argc, char **argv)
{
    char cmd[128];
    json_t *args;
    int rc = qc_parse_command(qga ? "qga" : "qmp", argc, argv, cmd, sizeof(cmd), &args);
    if (rc != QC_OK)
        return rc;
    return qga ? raw_qga(o, name, cmd, args) : raw_qmp(o, name, cmd, args);
}

/* ---- stop ---- */

int qc_cmd_stop(const struct qc_opts *o, const char *name)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, 1, &g) != QC_OK)
        return QC_FAIL;
    json_t *req = json_object(), *rep = NULL;
    json_set_str(req, "cmd", "stop");
    json_set_str(req, "guest", name);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = qc_control(&g, req, tmo(o, STOP_TIMEOUT_MS), &rep);
    clock_gettime(CLOCK_MONOTONIC, &b);
    json_free(req);
    if (rc == QC_OK && !control_return(o, name, rep))
        rc = QC_FAIL;
    if (rc == QC_OK) {
        qc_guest_refresh(&g);
        const char *st = json_get_str(g.g, "state");
        double s = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        if (o->json) {
            json_t *v = json_object();
            json_set_str(v, "name", name);
            json_set_str(v, "state", st ? st : "stopped");
            json_set_int(v, "took_ms", (long long)(s * 1000));
            qc_print_json(v, 1);
            json_free(v);
        } else {
            printf("%s %s (%.1fs)\n", name, st ? st : "stopped", s);
        }
    }
    json_free(rep);
    qc_guest_close(&g);
    return rc;
}

/* ---- migrate ---- */

/* Past the migration's own timeout, how long the destination may take to
 * reach ready. */
#define MIGRATE_READY_MS 300000

int qc_cmd_migrate(const struct qc_opts *o, const char *name, const char *dst)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, 1, &g) != QC_OK)
        return QC_FAIL;
    json_t *req = json_object(), *rep = NULL;
    json_set_str(req, "cmd", "migrate");
    json_set_str(req, "guest", name);
    json_set_str(req, "destination", dst);
    if (o->timeout_ms)
        json_set_int(req, "timeout_ms", o->timeout_ms);
    int rc = qc_control(&g, req, tmo(o, 600000) + MIGRATE_READY_MS, &rep);
    json_free(req);
    const json_t *ret = rc == QC_OK ? control_return(o, name, rep) : NULL;
    if (rc == QC_OK && !ret)
        rc = QC_FAIL;
    if (ret && o->json)
        qc_print_json(ret, 0);
    else if (ret)
        printf("%s -> %s: %s, total %lld ms, downtime %lld ms, %lld bytes\n", name, dst,
               json_get_str(ret, "phase"), json_get_int(ret, "total_ms", -1),
               json_get_int(ret, "downtime_ms", -1), json_get_int(ret, "transferred_bytes", -1));
    json_free(rep);
    qc_guest_close(&g);
    return rc;
}

/* ---- events ---- */

int qc_cmd_events(const struct qc_opts *o, const char *name)
{
    struct qc_target t = { .what = "socket" };
    if (o->socket) {
        snprintf(t.sock, sizeof(t.sock), "%s", o->socket);
        return qc_follow_events(&t, NULL, o->json, tmo(o, QMP_TIMEOUT_MS));
    }
    struct qc_guest g;
    if (qc_guest_open(o, name, 1, &g) != QC_OK)
        return QC_FAIL;
    const char *st = json_get_str(g.g, "state");
    if (st && (!strcmp(st, "stopped") || !strcmp(st, "failed"))) {
        char why[600];
        qc_guest_why_gone(&g, why, sizeof(why));
        fprintf(stderr, "%s: %s: %s\n", qc_prog, name, why);
        qc_guest_close(&g);
        return QC_FAIL;
    }
    qc_guest_target(&g, &t);
    int rc = qc_follow_events(&t, name, o->json, tmo(o, QMP_TIMEOUT_MS));
    qc_guest_close(&g);
    return rc;
}

/* ---- console ---- */

struct console {
    struct qc_guest *g;
    const struct qc_opts *o;
    char path[PATH_MAX + 64];
    int fd;
    off_t off;
    int sanitize;     /* a terminal: show control characters, never obey them */
    uv_fs_event_t watch;
    uv_timer_t tick;
    uv_signal_t sig[3];
    int watching;
    int done;
    int exit_code;
};

/* The serial log holds whatever the guest wrote, escape sequences
 * included (a shell asks the terminal for its cursor position); echoed to a
 * terminal they would act on it. Show them as ^X instead. */
static void emit(struct console *c, const char *buf, size_t n)
{
    if (!c->sanitize) {
        fwrite(buf, 1, n, stdout);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\r')
            continue;
        if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f) {
            putchar('^');
            putchar(ch == 0x7f ? '?' : ch + '@');
        } else {
            putchar(ch);
        }
    }
}

/* Print what was appended since the last read; a log that shrank was
 * rewritten (QEMU truncates it when it relaunches), so start over. */
static int drain(struct console *c)
{
    struct stat st;
    if (fstat(c->fd, &st) == 0 && st.st_size < c->off)
        c->off = 0;
    char buf[65536];
    ssize_t n;
    while ((n = pread(c->fd, buf, sizeof(buf), c->off)) > 0) {
        emit(c, buf, (size_t)n);
        c->off += n;
    }
    fflush(stdout);
    return ferror(stdout) ? -EPIPE : 0;
}

/* Where the last n lines start. */
static off_t last_lines(int fd, long n)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || n < 0)
        return 0;
    off_t pos = st.st_size;
    if (n == 0)
        return pos;
    char buf[8192];
    long seen = 0;
    int first = 1;
    while (pos > 0) {
        size_t len = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
        pos -= (off_t)len;
        if (pread(fd, buf, len, pos) != (ssize_t)len)
            return 0;
        for (size_t i = len; i-- > 0;) {
            /* A final newline ends the last line rather than starting one. */
            if (first && pos + (off_t)i == st.st_size - 1 && buf[i] == '\n')
                continue;
            if (buf[i] == '\n' && ++seen == n)
                return pos + (off_t)i + 1;
        }
        first = 0;
    }
    return 0;
}

static void console_finish(struct console *c, int code)
{
    if (c->done)
        return;
    c->done = 1;
    c->exit_code = code;
    if (c->watching)
        uv_fs_event_stop(&c->watch);
    uv_close((uv_handle_t *)&c->watch, NULL);
    uv_close((uv_handle_t *)&c->tick, NULL);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&c->sig[i], NULL);
}

static void console_changed(uv_fs_event_t *h, const char *file, int events, int status)
{
    struct console *c = h->data;
    (void)file;
    (void)events;
    (void)status;
    if (!c->done && drain(c) < 0)
        console_finish(c, QC_OK);
}

/* Besides catching up after missed notifications, the tick notices that
 * the guest or its whole run has ended, which the log itself never says. */
static void console_tick(uv_timer_t *t)
{
    struct console *c = t->data;
    if (drain(c) < 0) {
        console_finish(c, QC_OK);
        return;
    }
    qc_guest_refresh(c->g);
    const char *st = json_get_str(c->g->g, "state");
    if (!c->g->live || (st && (!strcmp(st, "stopped") || !strcmp(st, "failed")))) {
        drain(c);
        fprintf(stderr, "%s: %s: %s; end of console\n", qc_prog, c->g->name,
                !c->g->live ? "the run has finished" : !strcmp(st, "failed") ? "the guest failed"
                                                                             : "the guest stopped");
        console_finish(c, QC_OK);
    }
}

static void console_signal(uv_signal_t *h, int signo)
{
    (void)signo;
    console_finish(h->data, QC_OK);
}

static int console_follow(struct console *c)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_fs_event_init(&loop, &c->watch);
    c->watch.data = c;
    c->watching = uv_fs_event_start(&c->watch, console_changed, c->path, 0) == 0;
    uv_timer_init(&loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, console_tick, CONSOLE_POLL_MS, CONSOLE_POLL_MS);
    const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &c->sig[i]);
        c->sig[i].data = c;
        uv_signal_start(&c->sig[i], console_signal, sigs[i]);
    }
    /* Check at once: following a guest that is already down ends now. */
    console_tick(&c->tick);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return c->exit_code;
}

int qc_cmd_console(const struct qc_opts *o, const char *name)
{
    struct qc_guest g;
    if (qc_guest_open(o, name, 0, &g) != QC_OK)
        return QC_FAIL;
    struct console c = { .g = &g, .o = o, .sanitize = !o->raw && isatty(STDOUT_FILENO) };
    qc_guest_file(&g, "serial", c.path, sizeof(c.path));
    c.fd = open(c.path, O_RDONLY | O_CLOEXEC);
    if (c.fd < 0) {
        fprintf(stderr, "%s: %s: no serial log at %s: %s\n", qc_prog, name, c.path, strerror(errno));
        qc_guest_close(&g);
        return QC_FAIL;
    }
    /* A reader that went away (| head) ends us quietly through EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    c.off = last_lines(c.fd, o->lines);
    int rc = QC_OK;
    if (drain(&c) == 0 && o->follow) {
        if (!g.live)
            fprintf(stderr, "%s: run %s has finished; nothing to follow\n", qc_prog, g.run_id);
        else
            rc = console_follow(&c);
    }
    close(c.fd);
    qc_guest_close(&g);
    return rc;
}
