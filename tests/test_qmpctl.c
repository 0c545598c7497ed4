/* test_qmpctl.c - qmpctl end to end: the real binary against a fleet of two
 * real TCG guests started by the real `qfleet up`, against a bare QEMU
 * (-s), and its usage errors. The fleet boots once, in one Test that walks
 * through every command in an order where each step leaves the guests as
 * the next one needs them (stop and kill come last).
 *
 * It needs only the JSON module (qfqmp) and testutil: tests/CMakeLists.txt
 * sorts test_qmp* into the qfqmp group. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "qfleet_fx.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define QMPCTL QF_BINARY_DIR "/tools/qmpctl"
#define RELAY ".qmpctl"

static char dir[256], run_dir[300], state_dir[300];
static pid_t fleet_pid, bg_pids[4], qemu_pid;
static int nout;

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "qmpctl"), 0);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    mkdir(state_dir, 0700);
    /* Under STATE/runs, where "the latest run" is looked for: a --run-dir
     * elsewhere is found only by naming it. */
    snprintf(run_dir, sizeof(run_dir), "%s/runs/fleet", state_dir);
}

/* Whatever a failed assertion left running goes down here: qfleet stops
 * its guests on SIGTERM (and QEMU dies with it on SIGKILL anyway). */
static void teardown(void)
{
    for (int i = 0; i < 4; i++)
        qfx_reap(&bg_pids[i], SIGINT, 3000);
    qfx_reap(&qemu_pid, SIGKILL, 1000);
    qfx_reap(&fleet_pid, SIGTERM, 60000);
    tu_rmtree(dir);
}

TestSuite(qmpctl, .init = setup, .fini = teardown, .timeout = 400);

/* ---- running things ---- */

static pid_t spawn(char *const argv[], const char *out, const char *err)
{
    tu_child c = { .out = out, .err = err, .state_dir = state_dir };
    return tu_start((const char *const *)argv, &c);
}

/* qmpctl ARGS... (then last, unless NULL); waits up to 120 s. */
static qfx_res run(const char *last, const char *first, va_list ap)
{
    char *argv[32], out[320], err[320];
    qfx_argv(argv, 32, QMPCTL, first, ap, last);
    snprintf(out, sizeof(out), "%s/out.%d", dir, nout);
    snprintf(err, sizeof(err), "%s/err.%d", dir, nout++);
    return qfx_collect(spawn(argv, out, err), out, err, 120000);
}

/* qmpctl ARGS... (NULL-terminated). */
static qfx_res qmpctl(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    qfx_res r = run(NULL, first, ap);
    va_end(ap);
    return r;
}

static json_t *parse(const char *s)
{
    json_t *v = json_parse(s, strlen(s), NULL, 0);
    cr_assert(v, "not JSON: %s", s);
    return v;
}

/* qmpctl ARGS... that must succeed with JSON on stdout. */
static json_t *qmpctl_json(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    qfx_res r = run("--json", first, ap);
    va_end(ap);
    cr_assert_eq(r.rc, 0, "qmpctl %s ... --json: exit %d: %s", first, r.rc, r.err);
    json_t *v = parse(r.out);
    qfx_res_free(&r);
    return v;
}

static pid_t *bg_slot(void)
{
    for (int i = 0; i < 4; i++)
        if (bg_pids[i] <= 0)
            return &bg_pids[i];
    cr_assert_fail("too many background children");
    return NULL;
}

/* A long-running qmpctl; stdout to DIR/NAME.out, stderr to DIR/NAME.err. */
static pid_t *background(const char *name, char *const argv[])
{
    char out[320], err[320];
    snprintf(out, sizeof(out), "%s/%s.out", dir, name);
    snprintf(err, sizeof(err), "%s/%s.err", dir, name);
    pid_t *slot = bg_slot();
    *slot = spawn(argv, out, err);
    return slot;
}

static char *bg_output(const char *name, const char *ext)
{
    char p[320];
    snprintf(p, sizeof(p), "%s/%s.%s", dir, name, ext);
    return tu_slurp(p);
}

/* Wait until the background output has every one of the words. */
static int wait_output(const char *name, const char *const *words, int ms)
{
    double end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        char *s = bg_output(name, "out");
        int all = 1;
        for (const char *const *w = words; *w && all; w++)
            all = strstr(s, *w) != NULL;
        free(s);
        if (all)
            return 1;
        usleep(50000);
    }
    return 0;
}

static int finish_bg(pid_t *slot, int sig, int ms)
{
    if (sig)
        kill(*slot, sig);
    int rc = tu_wait_exit(*slot, ms);
    *slot = 0;
    return rc;
}

/* ---- the fleet ---- */

static void start_fleet(void)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    tu_guest_cfg(cfg, "vm0", NULL, NULL, "device =\n    driver=e1000,opt_id=pt_0;\nqga =\n    enable=yes;\n");
    char out[320], err[320];
    snprintf(out, sizeof(out), "%s/fleet.out", dir);
    snprintf(err, sizeof(err), "%s/fleet.err", dir);
    char *args[] = { QFLEET, "up", cfg, "--count", "2", "--run-dir", run_dir, "--no-ssh", "-q", NULL };
    fleet_pid = spawn(args, out, err);
    static const char *const ready[] = { "ready", "failed", NULL };
    for (int i = 1; i <= 2; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm0-%d", i);
        json_t *reg = qfx_wait_state(run_dir, name, ready, 240000);
        char *e = tu_slurp(err);
        cr_assert(reg, "%s did not come up: %s", name, e);
        cr_assert_str_eq(qfx_state_of(reg, name), "ready", "%s: %s", name,
                         json_get_str(qfx_guest_of(reg, name), "reason"));
        free(e);
        json_free(reg);
    }
}

static void check_list(const json_t *reg)
{
    const json_t *g1 = qfx_guest_of(reg, "vm0-1");
    char pid[32], vnc[16];
    snprintf(pid, sizeof(pid), "%lld", json_get_int(g1, "pid", 0));
    snprintf(vnc, sizeof(vnc), ":%lld", json_get_int(g1, "vnc", 0));
    const char *mac = json_str(json_at(json_get(g1, "macs"), 0));
    qfx_res r = qmpctl("list", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    const char *want[] = { "NAME", "STATE", "UPTIME", "vm0-1", "vm0-2", "ready", "10.0.2.15", pid, vnc, mac };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(strstr(r.out, want[i]), "list lacks '%s':\n%s", want[i], r.out);
    qfx_res_free(&r);

    json_t *v = qmpctl_json("list", NULL);
    cr_assert(json_get_bool(v, "live", 0));
    cr_assert_eq(json_len(json_get(v, "guests")), 2);
    cr_assert_gt(json_get_int(json_at(json_get(v, "guests"), 0), "uptime_ms", -1), 0);
    json_free(v);
    QFX_EXPECT(0, json_get_str(reg, "run"), 0, "list", "--all");
    QFX_EXPECT(0, "vm0-2", 0, "list", "--run-dir", run_dir);
}

static void check_status_pci_ifaces(const json_t *reg)
{
    QFX_EXPECT(0, "responding", 0, "status", "vm0-1");
    json_t *v = qmpctl_json("status", "vm0-1", NULL);
    cr_assert_str_eq(json_get_str(json_get(v, "qmp"), "status"), "running");
    cr_assert(json_get_bool(json_get(v, "agent"), "ok", 0));
    cr_assert_geq(json_get_int(json_get(v, "timings_ms"), "ready", -1), 0);
    cr_assert_geq(json_get_int(json_get(v, "timings_ms"), "qmp-connected", -1), 0);
    json_free(v);
    qfx_res r = qmpctl("status", "vm0-2", NULL);
    cr_assert_eq(r.rc, 0);
    for (const char *w[] = { "running", "agent-connected", "net-ready", "pci-mapped", NULL }, **p = w; *p; p++)
        cr_assert(strstr(r.out, *p), "status lacks '%s':\n%s", *p, r.out);
    qfx_res_free(&r);

    const char *addr = json_get_str(json_at(json_get(qfx_guest_of(reg, "vm0-1"), "pci"), 0), "addr");
    cr_assert(addr);
    QFX_EXPECT(0, addr, 0, "pci", "vm0-1");
    QFX_EXPECT(0, "ok", 0, "pci", "vm0-1", "--check");
    v = qmpctl_json("pci", "vm0-1", "--check", NULL);
    cr_assert_str_eq(json_get_str(json_at(v, 0), "id"), "pt_0");
    cr_assert(json_get_bool(json_at(v, 0), "ok", 0));
    json_free(v);

    r = qmpctl("ifaces", "vm0-1", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    const char *hc = strstr(r.out, "host_connect");
    cr_assert(hc && strstr(hc, "10.0.2.15"), "ifaces:\n%s", r.out);
    qfx_res_free(&r);
    v = qmpctl_json("ifaces", "vm0-2", NULL);
    int found = 0;
    for (size_t i = 0; i < json_len(v); i++) {
        const json_t *ifc = json_at(v, i);
        const json_t *a = json_get(ifc, "ip-addresses");
        for (size_t k = 0; k < json_len(a); k++)
            found += !strcmp(json_get_str(ifc, "name"), "host_connect") &&
                     !strcmp(json_get_str(json_at(a, k), "ip-address"), "10.0.2.15");
    }
    cr_assert_eq(found, 1);
    json_free(v);
}

static void check_raw(void)
{
    QFX_EXPECT(0, "\"running\"", 0, "qmp", "vm0-1", "query-status");
    json_t *v = qmpctl_json("qmp", "vm0-1", "{\"execute\":\"query-status\"}", NULL);
    cr_assert(json_get_bool(v, "running", 0));
    json_free(v);
    /* key=value arguments; text returns print as text. */
    QFX_EXPECT(0, "7.", 0, "qmp", "vm0-2", "human-monitor-command", "command-line=info version");
    QFX_EXPECT(1, "CommandNotFound", 1, "qmp", "vm0-1", "no-such-command");
    QFX_EXPECT(0, "supported_commands", 0, "qga", "vm0-1", "guest-info");
    QFX_EXPECT(0, NULL, 0, "qga", "vm0-2", "{\"execute\":\"guest-ping\"}");
    QFX_EXPECT(1, "vm0-1", 1, "qga", "vm0-1", "guest-no-such-command");
    QFX_EXPECT(0, "qfleet-guest:", 0, "console", "vm0-1");
    qfx_res r = qmpctl("console", "vm0-1", "-n", "1", NULL);
    cr_assert_eq(r.rc, 0);
    int lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    cr_assert(strstr(r.out, "qfleet-guest:") && lines <= 1, "-n 1 printed: %s", r.out);
    qfx_res_free(&r);
    r = qmpctl("status", "vm9", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "no guest 'vm9' in run") && strstr(r.err, "vm0-1, vm0-2"), "%s", r.err);
    qfx_res_free(&r);
}

/* events holds the inspection monitor and shares it, so qmp still works. */
static void check_events(void)
{
    char relay[400];
    snprintf(relay, sizeof(relay), "%s/vm0-1-qmp-inspect.sock" RELAY, run_dir);
    char *args[] = { QMPCTL, "events", "vm0-1", "--json", NULL };
    pid_t *ev = background("events", args);
    cr_assert_eq(tu_wait_path(relay, 20000), 0, "events never shared the monitor");
    QFX_EXPECT(0, NULL, 0, "qmp", "vm0-1", "stop");
    json_t *v = qmpctl_json("qmp", "vm0-1", "query-status", NULL);
    cr_assert_str_eq(json_get_str(v, "status"), "paused");
    json_free(v);
    QFX_EXPECT(0, NULL, 0, "qmp", "vm0-1", "cont");
    static const char *const want[] = { "\"STOP\"", "\"RESUME\"", NULL };
    cr_assert(wait_output("events", want, 10000), "no STOP and RESUME");
    cr_assert_eq(finish_bg(ev, SIGINT, 10000), 0);
    char *out = bg_output("events", "out");
    char *line = out, *nl;
    int stop = 0, resume = 0;
    for (; (nl = strchr(line, '\n')); line = nl + 1) {
        json_t *e = json_parse(line, (size_t)(nl - line), NULL, 0);
        cr_assert(e, "not a JSON line: %.*s", (int)(nl - line), line);
        cr_assert_str_eq(json_get_str(e, "guest"), "vm0-1");
        cr_assert_gt(json_get_int(json_get(e, "timestamp"), "seconds", 0), 0);
        stop += !strcmp(json_get_str(e, "event"), "STOP");
        resume += !strcmp(json_get_str(e, "event"), "RESUME") && stop;
        json_free(e);
    }
    free(out);
    cr_assert(stop == 1 && resume == 1, "STOP %d, RESUME after it %d", stop, resume);
    cr_assert_neq(access(relay, F_OK), 0, "the relay socket outlived its qmpctl");
}

static void check_stop(void)
{
    char *args[] = { QMPCTL, "console", "-f", "vm0-2", NULL };
    pid_t *con = background("console", args);
    static const char *const want[] = { "qfleet-guest:", NULL };
    cr_assert(wait_output("console", want, 10000));
    QFX_EXPECT(0, "vm0-2 stopped", 0, "stop", "vm0-2");
    json_t *reg = qfx_registry(run_dir);
    cr_assert_str_eq(qfx_state_of(reg, "vm0-2"), "stopped");
    json_free(reg);
    cr_assert_eq(finish_bg(con, 0, 10000), 0, "console -f did not end with its guest");
    char *e = bg_output("console", "err");
    cr_assert(strstr(e, "stopped"), "%s", e);
    free(e);
    QFX_EXPECT(1, "stopped", 1, "status", "vm0-2");
    QFX_EXPECT(1, "stopped", 1, "qmp", "vm0-2", "query-status");
}

static void check_killed(const json_t *reg)
{
    long long pid = json_get_int(qfx_guest_of(reg, "vm0-1"), "pid", 0);
    cr_assert_gt(pid, 0);
    cr_assert_eq(kill((pid_t)pid, SIGKILL), 0);
    /* At once, whether or not the controller has noticed yet. */
    qfx_res r = qmpctl("qmp", "vm0-1", "query-status", NULL);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "vm0-1:") && (strstr(r.err, "exited") || strstr(r.err, "failed")), "%s", r.err);
    qfx_res_free(&r);
    static const char *const failed[] = { "failed", NULL };
    json_t *now = qfx_wait_state(run_dir, "vm0-1", failed, 30000);
    cr_assert(now);
    json_free(now);
    QFX_EXPECT(1, "SIGKILL", 1, "status", "vm0-1");
    QFX_EXPECT(1, "failed", 1, "qmp", "vm0-1", "query-status");
    QFX_EXPECT(0, "vm0-1 failed:", 0, "list");
}

/* The cfg's login password appears in nothing qmpctl printed. */
static void check_no_password(void)
{
    char p[320];
    for (int i = 0; i < nout; i++) {
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof(p), "%s/%s.%d", dir, k ? "err" : "out", i);
            char *s = tu_slurp(p);
            cr_assert_null(strstr(s, "tester"), "%s shows the password:\n%s", p, s);
            free(s);
        }
    }
    static const char *const bg[] = { "events.out", "events.err", "console.out", "console.err" };
    for (size_t i = 0; i < sizeof(bg) / sizeof(bg[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, bg[i]);
        char *s = tu_slurp(p);
        cr_assert_null(strstr(s, "tester"), "%s shows the password", p);
        free(s);
    }
}

Test(qmpctl, fleet_end_to_end)
{
    double t0 = tu_now_ms();
    start_fleet();
    double t_up = tu_now_ms();
    json_t *reg = qfx_registry(run_dir);
    check_list(reg);
    check_status_pci_ifaces(reg);
    check_raw();
    check_events();
    check_stop();
    check_killed(reg);

    char *down[] = { QFLEET, "down", run_dir, NULL };
    char o[320], e[320];
    snprintf(o, sizeof(o), "%s/down.out", dir);
    snprintf(e, sizeof(e), "%s/down.err", dir);
    cr_assert_eq(tu_wait_exit(spawn(down, o, e), 120000), 0);
    cr_assert_eq(tu_wait_exit(fleet_pid, 30000), 1, "a failed guest makes 'up' exit 1");
    fleet_pid = 0;
    QFX_EXPECT(1, "has finished", 1, "status", "vm0-1", "--run-dir", run_dir);
    QFX_EXPECT(0, "stopped", 0, "list", "--run-dir", run_dir);
    QFX_EXPECT(1, "no running qfleet run", 1, "list");
    for (int i = 1; i <= 2; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vm0-%d", i);
        long long pid = json_get_int(qfx_guest_of(reg, name), "pid", 0);
        cr_assert_not(tu_alive(pid), "QEMU of %s (%lld) still runs", name, pid);
    }
    json_free(reg);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bg_pids[i], 0);
    check_no_password();
    cr_log_info("fleet up in %.1fs, all checks in %.1fs", (t_up - t0) / 1000, (tu_now_ms() - t_up) / 1000);
}

/* ---- any QEMU (-s) ---- */

Test(qmpctl, bare_qemu_socket)
{
    char sock[320], relay[340], out[320], err[320];
    snprintf(sock, sizeof(sock), "%s/bare.sock", dir);
    snprintf(relay, sizeof(relay), "%s" RELAY, sock);
    snprintf(out, sizeof(out), "%s/qemu.out", dir);
    snprintf(err, sizeof(err), "%s/qemu.err", dir);
    char qmp[400];
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
    char *q[] = { "/usr/bin/qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                  "-qmp", qmp, NULL };
    qemu_pid = spawn(q, out, err);
    cr_assert_eq(tu_wait_path(sock, 10000), 0);

    QFX_EXPECT(0, "\"status\"", 0, "-s", sock, "qmp", "query-status");
    json_t *v = qmpctl_json("-s", sock, "qmp", "{\"execute\":\"query-version\"}", NULL);
    cr_assert_geq(json_get_int(json_get(v, "qemu"), "major", 0), 2);
    json_free(v);
    QFX_EXPECT(0, "running", 0, "-s", sock, "status");
    QFX_EXPECT(1, "CommandNotFound", 1, "-s", sock, "qmp", "no-such-command");

    char *args[] = { QMPCTL, "-s", sock, "events", "--json", NULL };
    pid_t *ev = background("bare-events", args);
    cr_assert_eq(tu_wait_path(relay, 10000), 0);
    QFX_EXPECT(0, NULL, 0, "-s", sock, "qmp", "stop");
    QFX_EXPECT(0, NULL, 0, "-s", sock, "qmp", "cont");
    static const char *const want[] = { "\"STOP\"", "\"RESUME\"", NULL };
    cr_assert(wait_output("bare-events", want, 10000));
    /* QEMU goes away under the follower: it says so and exits 1. */
    qfx_reap(&qemu_pid, SIGKILL, 1000);
    cr_assert_eq(finish_bg(ev, 0, 10000), 1);
    char *e = bg_output("bare-events", "err");
    cr_assert(strstr(e, "closed"), "%s", e);
    free(e);
    QFX_EXPECT(1, "QEMU exited?", 1, "-s", sock, "qmp", "query-status");
    QFX_EXPECT(1, "no socket", 1, "-s", "/nonexistent/qmp.sock", "qmp", "query-status");
}

/* ---- usage ---- */

Test(qmpctl, usage_and_no_run)
{
    QFX_EXPECT(2, "usage", 1, NULL);
    QFX_EXPECT(2, "no command 'bogus'", 1, "bogus");
    QFX_EXPECT(2, "needs a guest name", 1, "status");
    QFX_EXPECT(2, "unexpected argument", 1, "list", "extra");
    QFX_EXPECT(2, "missing the command", 1, "qmp", "vm0");
    QFX_EXPECT(2, "not valid JSON", 1, "qmp", "vm0", "{\"execute\":");
    QFX_EXPECT(2, "key=value", 1, "qga", "vm0", "guest-ping", "oops");
    QFX_EXPECT(2, "-s works with", 1, "-s", "/tmp/x.sock", "list");
    QFX_EXPECT(2, "--all is for list", 1, "--all", "status", "vm0");
    QFX_EXPECT(2, "--timeout", 1, "--timeout", "soon", "list");
    QFX_EXPECT(2, "for console", 1, "-f", "status", "vm0");
    QFX_EXPECT(2, NULL, 0, "--no-such-option");
    QFX_EXPECT(0, "commands:", 0, "--help");
    QFX_EXPECT(0, "usage: qmpctl [options] status VM", 0, "status", "--help");
    QFX_EXPECT(0, "Ctrl-C", 0, "help", "events");
    /* An empty state dir: nothing to inspect. */
    QFX_EXPECT(1, "no running qfleet run", 1, "list");
    QFX_EXPECT(1, "no running qfleet run", 1, "status", "vm0");
    QFX_EXPECT(0, "[]", 0, "list", "--all", "--json");
}

/* Issue 17: with the run dir's disk full, a stop whose registry rewrite
 * fails must not be reported as done: qmpctl says why and exits 1 (it used
 * to print "vm0-2 ready" and exit 0). A real, small tmpfs. */
Test(qmpctl, full_disk_makes_stop_an_error)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to mount a small tmpfs");
    char mnt[300], filler[340];
    snprintf(mnt, sizeof(mnt), "%s/small", dir);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=0700"), 0, "mount: %s",
                 strerror(errno));
    snprintf(run_dir, sizeof(run_dir), "%s/run", mnt);
    start_fleet();
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    int fd = open(filler, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    static char zeros[65536];
    while (write(fd, zeros, sizeof(zeros)) > 0)
        ;
    close(fd);
    qfx_res r = qmpctl("stop", "vm0-2", NULL);
    unlink(filler);
    qfx_reap(&fleet_pid, SIGTERM, 60000);
    umount2(mnt, MNT_DETACH);
    cr_assert_eq(r.rc, 1, "stdout: %s\nstderr: %s", r.out, r.err);
    cr_assert(strstr(r.err, "registry could not be updated") && strstr(r.err, "No space left"),
              "%s", r.err);
    qfx_res_free(&r);
}
