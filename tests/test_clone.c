/* test_clone.c - warm clones (fleet.h "warm clones") with the real test
 * guest: a cold guest saves its VM's template, four clones of it come up
 * each with its own MAC (seen by the guest agent), port, clock, hostname
 * and files; a corrupted template falls back to a cold boot and says so;
 * a changed initrd retires the old template. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "cfg/suite.h"
#include "cfg/vm.h"
#include "guest_fx.h"
#include "qmp/agent.h"
#include "src/fleet/fleet.h"
#include "testutil.h"

#define N 4
#define BOOT_MS 300000

static char dir[256], state[300], cfg[300], initrd[300], err[1024];

static void setup(void)
{
    char k[512];
    snprintf(k, sizeof(k), "%s/vmlinux", tu_guest_dir());
    cr_assert_eq(access(k, R_OK), 0, "no test guest in %s: run tools/mkguest", tu_guest_dir());
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "clone"), 0);
    snprintf(state, sizeof(state), "%s/state", dir);
    cr_assert_eq(mkdir(state, 0700), 0);
    /* an initrd of the test's own, to change under the template */
    snprintf(k, sizeof(k), "%s/initrd.img", tu_guest_dir());
    snprintf(initrd, sizeof(initrd), "%s/initrd.img", dir);
    size_t n;
    char *img = fs_read_file(k, 1 << 28, &n);
    cr_assert(img);
    cr_assert_eq(fs_write_atomic(initrd, img, n, 0644, err, sizeof(err)), 0, "%s", err);
    free(img);
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    FILE *f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f,
            "[vm0]\n"
            "cpu =\n    model=qemu64,number=1;\n"
            "mem =\n    size=256;\n"
            "kernel =\n    file=%s/vmlinux,initrd=%s,append=console=ttyS0 quiet panic=-1;\n"
            "login =\n    user=" TG_USER ",password=" TG_PASSWORD ";\n"
            "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
            "enable_kvm =\n    enable=no;\n",
            tu_guest_dir(), initrd);
    cr_assert_eq(fclose(f), 0);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(clone, .init = setup, .fini = teardown, .timeout = 1500);

/* ---- a fleet on a loop ---- */

static void tick(uv_timer_t *t) { (void)t; }
static void set_flag(fleet_t *f, void *data)
{
    (void)f;
    *(int *)data = 1;
}

static int settled(void *f) { return fleet_settled(f); }
static int flag(void *p) { return *(int *)p; }

static int run(uv_loop_t *loop, int (*done)(void *), void *arg, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 20, 20);
    double end = tu_now_ms() + ms;
    int ok;
    while (!(ok = done(arg)) && tu_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

/* n guests vm0..vm(n-1) of vm0 with --clone, run until settled. */
static fleet_t *up(uv_loop_t *loop, const char *run_name, int n)
{
    char run_dir[400];
    snprintf(run_dir, sizeof(run_dir), "%s/%s", dir, run_name);
    fleet_opts o = { .state_dir = state, .run_dir = run_dir, .cfg_path = cfg, .clone = 1 };
    fleet_t *f;
    cr_assert_eq(fleet_new(loop, &o, NULL, NULL, &f, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < n; i++) {
        struct cfg_vm *vm;
        char name[16];
        snprintf(name, sizeof(name), "vm%d", i);
        cr_assert_eq(cfg_vm_load(cfg, "vm0", NULL, &vm, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(fleet_add(f, vm, name, err, sizeof(err)), 0, "%s", err);
    }
    fleet_start(f);
    cr_assert(run(loop, settled, f, BOOT_MS), "the guests did not settle; logs in %s", run_dir);
    for (int i = 0; i < n; i++) {
        fguest_t *g = fleet_guest_at(f, (size_t)i);
        cr_assert_eq(fguest_state(g), GS_READY, "%s: %s; logs in %s", fguest_name(g),
                     fguest_reason(g) ? fguest_reason(g) : fleet_state_name(fguest_state(g)), run_dir);
    }
    return f;
}

static void down(uv_loop_t *loop, fleet_t *f)
{
    int stopped = 0, freed = 0;
    fleet_stop_all(f, set_flag, &stopped);
    cr_assert(run(loop, flag, &stopped, 60000), "the guests did not stop");
    fleet_free(f, set_flag, &freed);
    cr_assert(run(loop, flag, &freed, 10000), "the fleet was not freed");
}

/* The template lines of a run's events.jsonl, as one string. */
static char *template_events(const char *run_name)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s/events.jsonl", dir, run_name);
    size_t n;
    char *s = fs_read_file(path, 1 << 22, &n);
    cr_assert(s, "%s", path);
    struct sbuf { char *p; size_t n; } out = { calloc(1, n + 1), 0 };
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "\"event\":\"template\""))
            out.n += (size_t)sprintf(out.p + out.n, "%s\n", line);
    free(s);
    return out.p;
}

static json_t *templates(void)
{
    json_t *t = fleet_templates(state, err, sizeof(err));
    cr_assert(t, "%s", err);
    return t;
}

/* ---- the agent, from the test ---- */

struct ag {
    int done;
    char hw[64];
    long long ns;
    char err[256];
    const char *want_name;
};

static void on_ifaces(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *e, void *data)
{
    struct ag *r = data;
    (void)a;
    r->done = 1;
    if (e)
        snprintf(r->err, sizeof(r->err), "%s", e->desc);
    for (size_t i = 0; !e && i < n; i++)
        if (!strcmp(ifs[i].name, "host_connect"))
            snprintf(r->hw, sizeof(r->hw), "%s", ifs[i].hwaddr ? ifs[i].hwaddr : "");
}

static void on_time(agent_t *a, const json_t *ret, const conn_err *e, void *data)
{
    struct ag *r = data;
    (void)a;
    r->done = 1;
    if (e)
        snprintf(r->err, sizeof(r->err), "%s", e->desc);
    else
        json_as_int(ret, &r->ns);
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- SSH ---- */

static void ssh(uv_loop_t *loop, fguest_t *g, const char *cmd, res *out)
{
    const char *host, *user, *pw;
    int port;
    cr_assert_eq(fguest_ssh_target(g, &host, &port, &user, &pw), 0);
    char kh[400];
    snprintf(kh, sizeof(kh), "%s/%s-test_known_hosts", dir, fguest_name(g));
    guest_opts o = tg_ssh_opts(fguest_name(g), port, kh);
    res r = { 0 };
    guest_session_t *s = open_wait(loop, &o, &r);
    cr_assert_eq(r.status, 0, "%s: SSH login: %s", fguest_name(g), r.error);
    res_free(&r);
    exec_wait(loop, s, cmd, 30000, out);
    cr_assert_eq(out->status, 0, "%s: %s: %s", fguest_name(g), cmd, out->error);
    close_session(loop, s);
}

static void check_clones(uv_loop_t *loop, fleet_t *f)
{
    char macs[N][32];
    int ports[N];
    for (int i = 0; i < N; i++) {
        fguest_t *g = fleet_guest_at(f, (size_t)i);
        int restored;
        const char *key = fguest_template(g, &restored);
        cr_assert(restored && key[0], "%s was not restored from the template", fguest_name(g));
        json_t *j = fguest_json(g);
        snprintf(macs[i], sizeof(macs[i]), "%s", json_str(json_at(json_get(j, "macs"), 0)));
        ports[i] = (int)json_get_int(j, "ssh_port", -1);
        json_free(j);
        /* the leased MAC is the NIC's, inside the guest */
        struct ag r = { 0 };
        cr_assert_eq(agent_get_interfaces(fguest_agent(g), 10000, on_ifaces, &r), 0);
        cr_assert(run(loop, flag, &r.done, 20000));
        cr_assert_str_eq(r.err, "");
        cr_assert(!strcasecmp(r.hw, macs[i]), "%s: host_connect has %s, its lease is %s", fguest_name(g),
                  r.hw, macs[i]);
        /* the guest's clock is the host's, not the template's */
        struct ag t = { 0 };
        cr_assert_eq(agent_execute(fguest_agent(g), "guest-get-time", NULL, 10000, on_time, &t), 0);
        double host = wall_s();
        cr_assert(run(loop, flag, &t.done, 20000));
        cr_assert_str_eq(t.err, "");
        double off = t.ns / 1e9 - host;
        cr_assert(off > -2 && off < 2, "%s: guest clock off by %.1f s", fguest_name(g), off);
        for (int k = 0; k < i; k++) {
            cr_assert(strcasecmp(macs[k], macs[i]), "vm%d and vm%d share MAC %s", k, i, macs[i]);
            cr_assert_neq(ports[k], ports[i]);
        }
    }
    /* SSH into each; a file one clone writes is its own */
    res r;
    ssh(loop, fleet_guest_at(f, 0), "echo only-here >/root/mark && hostname", &r);
    cr_assert_str_eq(r.out, "vm0\n");
    res_free(&r);
    for (int i = 1; i < N; i++) {
        ssh(loop, fleet_guest_at(f, (size_t)i), "hostname; cat /root/mark 2>&1 || true", &r);
        char want[64];
        snprintf(want, sizeof(want), "vm%d\n", i);
        cr_assert(!strncmp(r.out, want, strlen(want)), "vm%d: %s", i, r.out);
        cr_assert_null(strstr(r.out, "only-here"), "vm%d sees vm0's file: %s", i, r.out);
        res_free(&r);
    }
}

Test(clone, template_clones_fallback_and_expiry)
{
    uv_loop_t loop;
    uv_loop_init(&loop);

    /* 1. nothing yet: a cold boot that leaves the template */
    fleet_t *f = up(&loop, "cold", 1);
    int restored;
    char key[32];
    snprintf(key, sizeof(key), "%s", fguest_template(fleet_guest_at(f, 0), &restored));
    cr_assert(key[0] && !restored);
    down(&loop, f);
    char *ev = template_events("cold");
    cr_assert(strstr(ev, "\"what\":\"saved\""), "%s", ev);
    free(ev);
    json_t *t = templates();
    cr_assert_eq(json_len(t), 1);
    cr_assert_str_eq(json_get_str(json_at(t, 0), "key"), key);
    cr_assert(!json_get_bool(json_at(t, 0), "stale", 1));
    cr_assert_gt(json_get_int(json_at(t, 0), "bytes", 0), 1 << 20);
    json_free(t);

    /* 2. four clones of it, each itself */
    f = up(&loop, "clones", N);
    check_clones(&loop, f);
    down(&loop, f);
    ev = template_events("clones");
    cr_assert(strstr(ev, "\"what\":\"restore\""), "%s", ev);
    cr_assert_null(strstr(ev, "\"what\":\"saved\""), "%s", ev);
    free(ev);

    /* 3. a truncated template: dropped, with the reason, and a cold boot */
    char path[600];
    snprintf(path, sizeof(path), "%s/templates/%s.state", state, key);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    f = up(&loop, "corrupt", 1);
    fguest_template(fleet_guest_at(f, 0), &restored);
    cr_assert(!restored, "the guest claims it was restored from a truncated template");
    down(&loop, f);
    ev = template_events("corrupt");
    cr_assert(strstr(ev, "\"what\":\"dropped\"") && strstr(ev, "while loading the template"), "%s", ev);
    cr_assert(strstr(ev, "\"what\":\"saved\""), "no fresh template after the fallback: %s", ev);
    free(ev);

    /* 4. the initrd changes (zero padding, which the kernel skips): the old
     * template expires and the guest boots cold under a new key */
    int fd = open(initrd, O_WRONLY | O_APPEND);
    char zeros[512] = { 0 };
    cr_assert(fd >= 0 && write(fd, zeros, sizeof(zeros)) == (ssize_t)sizeof(zeros));
    close(fd);
    t = templates();
    cr_assert_eq(json_len(t), 1);
    cr_assert(json_get_bool(json_at(t, 0), "stale", 0), "a template of the old initrd is not stale");
    json_free(t);
    f = up(&loop, "newinitrd", 1);
    const char *nkey = fguest_template(fleet_guest_at(f, 0), &restored);
    cr_assert(!restored && nkey[0] && strcmp(nkey, key), "key %s after the initrd changed", nkey);
    down(&loop, f);
    ev = template_events("newinitrd");
    cr_assert(strstr(ev, "\"what\":\"expired\"") && strstr(ev, key), "%s", ev);
    free(ev);
    t = templates();
    cr_assert_eq(json_len(t), 1);
    cr_assert_neq(strcmp(json_get_str(json_at(t, 0), "key"), key), 0);
    json_free(t);
    cr_assert_eq(fleet_template_rm(state, NULL, err, sizeof(err)), 1, "%s", err);

    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
}

static int launched(void *g) { return fguest_state(g) >= GS_LAUNCHING; }

Test(clone, refused_vms_boot_cold_and_say_why, .timeout = 60)
{
    /* a writable disk: never cloned (no guest needed to see the refusal) */
    FILE *fp = fopen(cfg, "a");
    cr_assert(fp);
    fprintf(fp, "disk =\n    file=%s/disk.img;\n", dir);
    fclose(fp);
    char img[400];
    snprintf(img, sizeof(img), "%s/disk.img", dir);
    cr_assert_eq(fs_write_atomic(img, "", 0, 0600, err, sizeof(err)), 0, "%s", err);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char run_dir[400];
    snprintf(run_dir, sizeof(run_dir), "%s/refused", dir);
    fleet_opts o = { .state_dir = state, .run_dir = run_dir, .cfg_path = cfg, .clone = 1 };
    fleet_t *f;
    struct cfg_vm *vm;
    cr_assert_eq(fleet_new(&loop, &o, NULL, NULL, &f, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg_vm_load(cfg, "vm0", NULL, &vm, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(fleet_add(f, vm, "vm0", err, sizeof(err)), 0, "%s", err);
    fleet_start(f);
    cr_assert(run(&loop, launched, fleet_guest_at(f, 0), 30000));
    int restored;
    cr_assert_str_eq(fguest_template(fleet_guest_at(f, 0), &restored), "");
    down(&loop, f);
    char *ev = template_events("refused");
    cr_assert(strstr(ev, "\"what\":\"refused\"") && strstr(ev, "writable disk"), "%s", ev);
    free(ev);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
}

/* ---- qfleet templates, on templates made by hand (no guest) ---- */

static void setup_state(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "templates"), 0);
    snprintf(state, sizeof(state), "%s/state", dir);
    char t[400];
    snprintf(t, sizeof(t), "%s/templates", state);
    cr_assert_eq(mkdir(state, 0700), 0);
    cr_assert_eq(mkdir(t, 0700), 0);
}

TestSuite(templates_cli, .init = setup_state, .fini = teardown, .timeout = 60);

static void put(const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/templates/%s", state, name);
    cr_assert_eq(fs_write_atomic(path, text, strlen(text), 0600, err, sizeof(err)), 0, "%s", err);
}

/* Run qfleet ARGS --state-dir STATE: exit code, stdout into out. */
static int qfleet(const char *args, char *out, size_t outlen)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s/src/qfleet %s --state-dir '%s' 2>&1", QF_BINARY_DIR, args, state);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(templates_cli, list_stale_and_remove)
{
    char input[400], meta[1200], out[8192];
    snprintf(input, sizeof(input), "%s/kernel", dir);
    cr_assert_eq(fs_write_atomic(input, "12345", 5, 0600, err, sizeof(err)), 0, "%s", err);
    put("0123456789abcdef.state", "QEVM-stream");
    snprintf(meta, sizeof(meta), "{\"version\":1,\"key\":\"0123456789abcdef\",\"vm\":\"vm0\",\"cfg\":\"/c.cfg\","
             "\"created_ms\":1,\"save_ms\":700,\"bytes\":11,\"macs\":[],\"inputs\":[]}");
    put("0123456789abcdef.json", meta);
    /* saved when the kernel had 4 bytes: stale now */
    put("fedcba9876543210.state", "x");
    snprintf(meta, sizeof(meta), "{\"version\":1,\"key\":\"fedcba9876543210\",\"vm\":\"vm1\",\"cfg\":\"/c.cfg\","
             "\"inputs\":[{\"path\":\"%s\",\"size\":4,\"mtime_ns\":0,\"ino\":0}]}", input);
    put("fedcba9876543210.json", meta);
    put("fedcba9876543210.state.1-vm1.tmp", "half");

    cr_assert_eq(qfleet("templates --json", out, sizeof(out)), 0, "%s", out);
    json_t *v = json_parse(out, strlen(out), err, sizeof(err));
    cr_assert(v, "%s: %s", err, out);
    cr_assert_eq(json_len(v), 2, "%s", out);
    for (size_t i = 0; i < 2; i++) {
        const json_t *o = json_at(v, i);
        int fresh = !strcmp(json_get_str(o, "key"), "0123456789abcdef");
        cr_assert_eq(json_get_bool(o, "stale", -1), !fresh, "%s", out);
        cr_assert_eq(json_get_int(o, "bytes", -1), fresh ? 11 : 1, "%s", out);
    }
    json_free(v);
    cr_assert_eq(qfleet("templates", out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "0123456789abcdef") && strstr(out, "vm1"), "%s", out);

    cr_assert_eq(qfleet("templates rm", out, sizeof(out)), 2, "%s", out);
    cr_assert_eq(qfleet("templates rm 0123456789abcdef --all", out, sizeof(out)), 2, "%s", out);
    cr_assert_eq(qfleet("templates rm 0123", out, sizeof(out)), 1, "%s", out);
    cr_assert(strstr(out, "no template 0123"), "%s", out);
    cr_assert_eq(qfleet("templates rm 0123456789abcdef", out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "removed 1 template"), "%s", out);
    cr_assert_eq(qfleet("templates rm --all --json", out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "\"removed\": 1"), "%s", out);
    char path[600];
    snprintf(path, sizeof(path), "%s/templates/fedcba9876543210.state.1-vm1.tmp", state);
    cr_assert_neq(access(path, F_OK), 0, "rm --all left a half-written template");
    cr_assert_eq(qfleet("templates", out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "no templates"), "%s", out);
}

/* ---- setup = clone: a suite run by the real qfleet ---- */

/* Lines of FILE holding both a and b. */
static int count_lines(const char *file, const char *a, const char *b)
{
    size_t n;
    char *s = fs_read_file(file, 1 << 24, &n);
    cr_assert(s, "%s", file);
    int k = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
        k += strstr(line, a) && strstr(line, b);
    free(s);
    return k;
}

TestSuite(clone_suite, .init = setup, .fini = teardown, .timeout = 1500);

Test(clone_suite, setup_clone_runs_every_case_on_fresh_clones)
{
    struct suite *s;
    cr_assert_eq(suite_load(QF_SOURCE_DIR "/cfg/examples/clone.suite", &s, err, sizeof(err)), 0, "%s", err);
    cr_assert(s->setup_each && s->setup_clone, "setup = clone is fresh guests per case, from templates");
    int ncases = (int)s->ncases, nguests = (int)s->nguests;
    suite_free(s);
    cr_assert_geq(ncases, 2);

    /* a fresh state dir: the first case's guests boot cold and save the
     * template, every later case's guests are restored from it */
    char cmd[1400], out[1 << 16];
    snprintf(cmd, sizeof(cmd),
             "%s/src/qfleet run " QF_SOURCE_DIR "/cfg/examples/clone.suite "
             "--state-dir '%s' --run-dir '%s/run' --jobs 2 --json 2>'%s/stderr'",
             QF_BINARY_DIR, state, dir, dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int st = pclose(p);
    char path[600];
    snprintf(path, sizeof(path), "%s/stderr", dir);
    size_t en;
    char *errs = fs_read_file(path, 1 << 20, &en);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "qfleet run: status %d\n%s\n%s", st, out,
              errs ? errs : "");
    free(errs);

    json_t *j = json_parse(out, n, err, sizeof(err));
    cr_assert(j, "%s: %s", err, out);
    json_t *cases = json_get(json_at(json_get(j, "suites"), 0), "cases");
    cr_assert_eq((int)json_len(cases), ncases, "%s", out);
    for (int i = 0; i < ncases; i++)
        cr_assert_str_eq(json_get_str(json_at(cases, (size_t)i), "result"), "passed", "case %d: %s", i, out);
    json_free(j);

    snprintf(path, sizeof(path), "%s/run/clone/events.jsonl", dir);
    cr_assert_geq(count_lines(path, "\"event\":\"template\"", "\"what\":\"saved\""), 1,
                  "the first case's guests saved no template");
    int restores = count_lines(path, "\"event\":\"template\"", "\"what\":\"restore\"");
    cr_assert_geq(restores, nguests * (ncases - 1), "%d restores for %d cases after the first on %d guests",
                  restores, ncases - 1, nguests);
}
