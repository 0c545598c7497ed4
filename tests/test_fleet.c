/* test_fleet.c - `qfleet up` end to end: the real binary, real QEMU (TCG),
 * the real test guest from tools/mkguest. */
#include <criterion/criterion.h>

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "src/ctl/control.h"
#include "base/fs.h"
#include "qfleet_fx.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"

static char dir[256], run_dir[300], state_dir[300];

static void setup_dirs(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "fleet"), 0);
    snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
}

static void setup(void)
{
    setup_dirs();
    qfx_need_guest();
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(fleet, .init = setup, .fini = teardown, .timeout = 600);
/* Failures before any QEMU runs: no test guest needed. */
TestSuite(fleet_setup, .init = setup_dirs, .fini = teardown, .timeout = 300);

/* A cfg for the test guest with the given net key; append replaces the
 * kernel command line. */
static void write_cfg_net(const char *path, const char *append, const char *net, const char *extra)
{
    char keys[1024];
    snprintf(keys, sizeof(keys), "device =\n    driver=e1000,opt_id=pt_0;\n%s", extra ? extra : "");
    tu_guest_cfg(path, "vm0", append, net, keys);
}

/* The usual NIC: an e1000 at slot 1f (the guest names it host_connect). */
static void write_cfg(const char *path, const char *append, const char *extra)
{
    write_cfg_net(path, append, "    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n", extra);
}

/* Start qfleet with args; stdout to DIR/out.txt, stderr to DIR/err.txt;
 * its stack limited to stack bytes unless 0. */
static pid_t start_qfleet_stack(char *const args[], rlim_t stack)
{
    char out[320], errp[320];
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(errp, sizeof(errp), "%s/err.txt", dir);
    tu_child c = { .out = out, .err = errp, .state_dir = state_dir, .stack = stack };
    return tu_start((const char *const *)args, &c);
}

static pid_t start_qfleet(char *const args[]) { return start_qfleet_stack(args, 0); }

static int leases_held(const char *owner_part)
{
    char *args[] = { QFLEET, "leases", "--json", "--state-dir", state_dir, NULL };
    pid_t pid = start_qfleet(args);
    cr_assert_eq(tu_wait_exit(pid, 10000), 0);
    char *out = tu_slurp_in(dir, "out.txt");
    json_t *l = json_parse(out, strlen(out), NULL, 0);
    free(out);
    cr_assert(l, "qfleet leases --json printed no JSON");
    int n = 0;
    for (size_t i = 0; i < json_len(l); i++)
        if (strstr(json_get_str(json_at(l, i), "owner"), owner_part))
            n++;
    json_free(l);
    return n;
}

Test(fleet, eight_guests_ready_and_distinct)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", NULL);
    char *args[] = { QFLEET, "up", cfg, "--count", "8", "--run-dir", run_dir, "-q", NULL };
    pid_t pid = start_qfleet(args);
    json_t *reg = qfx_wait_settled(run_dir, 8, 400000);
    char *err = tu_slurp_in(dir, "err.txt");
    cr_assert(reg, "guests did not settle: %s", err);
    json_t *gs = json_get(reg, "guests");
    char macs[8][20], ctl[400];
    long long vnc[8], port[8];
    snprintf(ctl, sizeof(ctl), "%s/control.sock", run_dir);
    for (int i = 0; i < 8; i++) {
        json_t *g = json_at(gs, (size_t)i);
        cr_assert_str_eq(json_get_str(g, "state"), "ready", "%s: %s", json_get_str(g, "name"),
                         json_get_str(g, "reason"));
        snprintf(macs[i], sizeof(macs[i]), "%s", json_str(json_at(json_get(g, "macs"), 0)));
        vnc[i] = json_get_int(g, "vnc", -1);
        port[i] = json_get_int(g, "ssh_port", -1);
        cr_assert_str_eq(json_get_str(g, "ip"), "10.0.2.15");
        for (int k = 0; k < i; k++) {
            cr_assert_str_neq(macs[i], macs[k]);
            cr_assert_neq(vnc[i], vnc[k]);
            cr_assert_neq(port[i], port[k]);
        }
        /* pt_0 where QEMU itself reports it (asked on the inspection monitor). */
        json_t *pt = json_at(json_get(g, "pci"), 0);
        cr_assert_str_eq(json_get_str(pt, "id"), "pt_0");
        cr_assert(strncmp(json_get_str(pt, "addr"), "0000:00:", 8) == 0);
        /* The agent answers through the controller. */
        json_t *req = json_object(), *rep = NULL;
        json_set_str(req, "cmd", "qga");
        json_set_str(req, "guest", json_get_str(g, "name"));
        json_set_str(req, "execute", "guest-ping");
        char e[256];
        cr_assert_eq(control_request(ctl, req, &rep, 20000, e, sizeof(e)), 0, "%s", e);
        cr_assert(json_get(rep, "return"), "guest-ping failed");
        json_free(req);
        json_free(rep);
    }
    /* SSH answers on two of them (all eight take long under TCG). */
    for (int i = 0; i < 8; i += 7) {
        char un[256];
        qfx_ssh_run((int)port[i], "uname -r", un, sizeof(un));
        cr_assert(strstr(un, "amd64"), "uname -r said '%s'", un);
    }
    json_free(reg);
    kill(pid, SIGINT);
    cr_assert_eq(tu_wait_exit(pid, 120000), 128 + SIGINT);
    cr_assert_eq(leases_held("/vm0-"), 0);
    free(err);
}

Test(fleet, killed_qemu_fails_alone)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", NULL);
    char *args[] = { QFLEET, "up", cfg, "--count", "3", "--run-dir", run_dir, "--no-ssh", "-q", NULL };
    pid_t pid = start_qfleet(args);
    /* Kill vm0-2's QEMU as soon as it runs, well before the guest is up. */
    long long victim = 0;
    for (int i = 0; i < 600 && !victim; i++) {
        json_t *reg = qfx_registry(run_dir);
        json_t *g = qfx_guest_of(reg, "vm0-2");
        const char *st = json_get_str(g, "state");
        if (st && (!strcmp(st, "running") || !strcmp(st, "qmp-connected")))
            victim = json_get_int(g, "pid", 0);
        json_free(reg);
        usleep(50000);
    }
    cr_assert_gt(victim, 0, "vm0-2 never reached running");
    cr_assert_eq(kill((pid_t)victim, SIGKILL), 0);
    json_t *reg = qfx_wait_settled(run_dir, 3, 300000);
    cr_assert(reg);
    json_t *g = qfx_guest_of(reg, "vm0-2");
    cr_assert_str_eq(json_get_str(g, "state"), "failed");
    cr_assert(strstr(json_get_str(g, "reason"), "SIGKILL"), "%s", json_get_str(g, "reason"));
    cr_assert_str_eq(json_get_str(qfx_guest_of(reg, "vm0-1"), "state"), "ready");
    cr_assert_str_eq(json_get_str(qfx_guest_of(reg, "vm0-3"), "state"), "ready");
    json_free(reg);
    cr_assert_eq(leases_held("/vm0-2"), 0, "the failed guest still holds leases");
    cr_assert_gt(leases_held("/vm0-1"), 0);

    /* qfleet down stops the rest through the control socket. */
    char *down[] = { QFLEET, "down", run_dir, NULL };
    pid_t d = start_qfleet(down);
    cr_assert_eq(tu_wait_exit(d, 120000), 0);
    cr_assert_eq(tu_wait_exit(pid, 30000), 1, "a failed guest makes 'up' exit 1");
}

Test(fleet, guest_without_agent_times_out_with_serial_tail)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/noagent.cfg", dir);
    /* rdinit=/bin/sh: the kernel boots, but /init (and qemu-ga) never run. */
    write_cfg(cfg, "console=ttyS0 panic=-1 rdinit=/bin/sh", NULL);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--boot-timeout", "20", "--until-ready",
                     "--json", "-q", NULL };
    pid_t pid = start_qfleet(args);
    cr_assert_eq(tu_wait_exit(pid, 120000), 1);
    char *out = tu_slurp_in(dir, "out.txt");
    json_t *res = json_parse(out, strlen(out), NULL, 0);
    cr_assert(res, "no JSON result: %s", out);
    json_t *g = qfx_guest_of(res, "vm0");
    const char *reason = json_get_str(g, "reason");
    cr_assert_str_eq(json_get_str(g, "state"), "failed");
    cr_assert(strstr(reason, "timed out"), "%s", reason);
    cr_assert(strstr(reason, "agent"), "%s", reason);
    cr_assert(strstr(reason, "serial console"), "no serial tail in: %s", reason);
    cr_assert_null(strstr(reason, "tester"), "the password leaked into the reason");
    json_free(res);
    free(out);
    cr_assert_eq(leases_held("/vm0"), 0);
}

Test(fleet, sigterm_stops_every_guest)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", NULL);
    char *args[] = { QFLEET, "up", cfg, "--count", "2", "--run-dir", run_dir, "--no-ssh", "-q", NULL };
    pid_t pid = start_qfleet(args);
    json_t *reg = qfx_wait_settled(run_dir, 2, 300000);
    cr_assert(reg);
    long long pids[2];
    for (int i = 0; i < 2; i++) {
        json_t *g = json_at(json_get(reg, "guests"), (size_t)i);
        cr_assert_str_eq(json_get_str(g, "state"), "ready");
        pids[i] = json_get_int(g, "pid", 0);
        cr_assert(tu_alive(pids[i]));
    }
    json_free(reg);
    kill(pid, SIGTERM);
    cr_assert_eq(tu_wait_exit(pid, 120000), 128 + SIGTERM);
    for (int i = 0; i < 2; i++)
        cr_assert_not(tu_alive(pids[i]), "QEMU %lld outlived qfleet", pids[i]);
    cr_assert_eq(leases_held("/vm0-"), 0);
    /* The event log saw the whole way down. */
    char p[400];
    snprintf(p, sizeof(p), "%s/events.jsonl", run_dir);
    char *ev = fs_read_file(p, 1 << 20, NULL);
    cr_assert(ev && strstr(ev, "\"state\":\"stopped\""));
    free(ev);
}

Test(fleet, kill9_controller_takes_qemu_along)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", NULL);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--no-ssh", "-q", NULL };
    pid_t pid = start_qfleet(args);
    long long qpid = 0;
    for (int i = 0; i < 600 && !qpid; i++) {
        json_t *reg = qfx_registry(run_dir);
        qpid = json_get_int(qfx_guest_of(reg, "vm0"), "pid", 0);
        json_free(reg);
        usleep(50000);
    }
    cr_assert_gt(qpid, 0);
    kill(pid, SIGKILL);
    tu_wait_exit(pid, 10000);
    for (int i = 0; i < 100 && tu_alive(qpid); i++)
        usleep(50000);
    cr_assert_not(tu_alive(qpid), "QEMU survived a kill -9 of its controller");
    /* Its leases are reclaimed by the next operation of anyone. */
    cr_assert_eq(leases_held("/vm0"), 0);
}

Test(fleet, bad_cfg_exits_2_naming_the_line)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/bad.cfg", dir);
    FILE *f = fopen(cfg, "w");
    fputs("[vm0]\nnet =\n    type=nic,opt_macaddr=zz:00:00:00:00:01;\n", f);
    fclose(f);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--until-ready", NULL };
    pid_t pid = start_qfleet(args);
    cr_assert_eq(tu_wait_exit(pid, 30000), 2);
    char *err = tu_slurp_in(dir, "err.txt");
    cr_assert(strstr(err, "bad.cfg:3:"), "%s", err);
    free(err);
    cr_assert_neq(access(run_dir, F_OK), 0, "a bad cfg left a run dir behind");
}

/* Cpus_allowed_list of one thread of pid ("1", "0-1"). */
static void allowed(long long pid, const char *tid, char *out, size_t outlen)
{
    char p[128], line[256];
    snprintf(p, sizeof(p), "/proc/%lld/task/%s/status", pid, tid);
    FILE *f = fopen(p, "r");
    out[0] = '\0';
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Cpus_allowed_list: %63s", out) == 1)
            break;
    if (f)
        fclose(f);
    (void)outlen;
}

Test(fleet, cpupin_pins_qemu_and_its_vcpus)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char cfg[320], pin[8];
    snprintf(pin, sizeof(pin), "%ld", ncpu - 1); /* the last CPU: never the whole set */
    snprintf(cfg, sizeof(cfg), "%s/pin.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", NULL);
    FILE *f = fopen(cfg, "r+");
    char text[4096] = { 0 };
    cr_assert_gt(fread(text, 1, sizeof(text) - 1, f), 0);
    fclose(f);
    char *p = strstr(text, "number=1;");
    cr_assert(p);
    char fixed[4200];
    snprintf(fixed, sizeof(fixed), "%.*snumber=1,cpupin=%s;%s", (int)(p - text), text, pin, p + 9);
    f = fopen(cfg, "w");
    fputs(fixed, f);
    fclose(f);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--no-ssh", "-q", NULL };
    pid_t pid = start_qfleet(args);
    json_t *reg = qfx_wait_settled(run_dir, 1, 120000);
    cr_assert(reg);
    json_t *g = qfx_guest_of(reg, "vm0");
    cr_assert_str_eq(json_get_str(g, "state"), "ready", "%s", json_get_str(g, "reason"));
    long long qpid = json_get_int(g, "pid", 0);
    json_free(reg);
    /* Every QEMU thread, vCPU included, runs only on the pinned CPU. */
    char tdir[64];
    snprintf(tdir, sizeof(tdir), "/proc/%lld/task", qpid);
    DIR *d = opendir(tdir);
    cr_assert(d);
    struct dirent *de;
    int threads = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char list[64];
        allowed(qpid, de->d_name, list, sizeof(list));
        cr_assert_str_eq(list, pin, "thread %s allowed on %s", de->d_name, list);
        threads++;
    }
    closedir(d);
    cr_assert_gt(threads, 1);
    /* The pinned CPU is leased while the guest runs. */
    cr_assert_gt(leases_held("/vm0"), 0);
    kill(pid, SIGINT);
    cr_assert_eq(tu_wait_exit(pid, 60000), 128 + SIGINT);
}

Test(fleet, jobs_limits_concurrent_boots)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", NULL);
    char *args[] = { QFLEET, "up", cfg, "--count", "3", "--jobs", "1", "--run-dir", run_dir, "--no-ssh",
                     "--until-ready", "-q", NULL };
    pid_t pid = start_qfleet(args);
    cr_assert_eq(tu_wait_exit(pid, 300000), 0);
    /* Replay events.jsonl: at no point more than one guest booting. */
    char p[400];
    snprintf(p, sizeof(p), "%s/events.jsonl", run_dir);
    char *ev = fs_read_file(p, 1 << 20, NULL);
    cr_assert(ev);
    int booting = 0, peak = 0, readies = 0;
    for (char *line = strtok(ev, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *e = json_parse(line, strlen(line), NULL, 0);
        cr_assert(e, "bad event line: %s", line);
        const char *st = json_get_str(e, "state");
        if (!strcmp(st, "allocating"))
            booting++;
        else if (!strcmp(st, "ready") || !strcmp(st, "failed"))
            booting--, readies += !strcmp(st, "ready");
        peak = booting > peak ? booting : peak;
        json_free(e);
    }
    free(ev);
    cr_assert_eq(peak, 1);
    cr_assert_eq(readies, 3);
}

Test(fleet, port_race_gets_a_new_port_once)
{
    /* A true race (another process binding the forwarded port between the
     * allocator's bind test and QEMU's bind) cannot be timed reliably, so a
     * stand-in binary plays QEMU losing it once: it records its argv, prints
     * the error QEMU prints, and exits; the second launch is the real QEMU. */
    char cfg[320], wrap[320], mark[320];
    snprintf(wrap, sizeof(wrap), "%s/qemu-wrap", dir);
    snprintf(mark, sizeof(mark), "%s/first-argv", dir);
    FILE *f = fopen(wrap, "w");
    fprintf(f, "#!/bin/sh\n"
               "if [ ! -e '%s' ]; then\n"
               "  echo \"$@\" > '%s'\n"
               "  echo 'qemu-system-x86_64: -netdev user,id=hostnet0: Could not set up host forwarding rule' >&2\n"
               "  exit 1\n"
               "fi\n"
               "exec qemu-system-x86_64 \"$@\"\n", mark, mark);
    fclose(f);
    chmod(wrap, 0755);
    char extra[400];
    snprintf(extra, sizeof(extra), "qemu =\n    path=%s;\n", wrap);
    snprintf(cfg, sizeof(cfg), "%s/race.cfg", dir);
    write_cfg(cfg, "console=ttyS0 quiet panic=-1", extra);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--no-ssh", "--until-ready", "--json", "-q", NULL };
    pid_t pid = start_qfleet(args);
    int code = tu_wait_exit(pid, 120000);
    char *errt = tu_slurp_in(dir, "err.txt");
    cr_assert_eq(code, 0, "exit %d: %s", code, errt);
    free(errt);
    char *out = tu_slurp_in(dir, "out.txt");
    json_t *res = json_parse(out, strlen(out), NULL, 0);
    cr_assert(res, "%s", out);
    json_t *g = qfx_guest_of(res, "vm0");
    cr_assert_str_eq(json_get_str(g, "state"), "ready", "%s", json_get_str(g, "reason"));
    long long port = json_get_int(g, "ssh_port", 0);
    char *first = fs_read_file(mark, 1 << 16, NULL);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%lld-:22", port);
    cr_assert(first && !strstr(first, want), "the retry reused port %lld", port);
    cr_assert(strstr(first, "hostfwd=tcp:127.0.0.1:"), "%s", first);
    free(first);
    json_free(res);
    free(out);
}

/* A VM whose QEMU binary does not exist: every launch fails at once. */
/* A VM whose QEMU is there but cannot be executed (no ELF, no #!): exec
 * fails inside proc_start, so every launch fails synchronously. */
static void write_unrunnable_qemu_cfg(const char *path)
{
    char qemu[320];
    snprintf(qemu, sizeof(qemu), "%s/not-a-qemu", dir);
    FILE *f = fopen(qemu, "w");
    cr_assert(f);
    fputs("not a program\n", f);
    fclose(f);
    cr_assert_eq(chmod(qemu, 0755), 0);
    f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "[vm0]\n"
               "cpu =\n    model=qemu64,number=1;\n"
               "mem =\n    size=256;\n"
               "qemu =\n    path=%s;\n"
               "enable_kvm =\n    enable=no;\n", qemu);
    fclose(f);
}

/* Issue 17: a launch that fails synchronously used to boot the next guest
 * from inside its own failure, one stack frame chain per guest, until the
 * stack ran out (about 250 guests in 2 MiB). The fleet now schedules from
 * its timer, in a loop: 900 of them fit in 1 MiB. */
Test(fleet_setup, nine_hundred_synchronous_failures_in_a_small_stack)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/missing.cfg", dir);
    write_unrunnable_qemu_cfg(cfg);
    char *args[] = { QFLEET, "up", cfg, "--count", "900", "--run-dir", run_dir, "--until-ready", "-q", NULL };
    pid_t pid = start_qfleet_stack(args, 1 << 20);
    int code = tu_wait_exit(pid, 240000);
    char *errt = tu_slurp_in(dir, "err.txt");
    cr_assert_eq(code, 1, "exit %d (128+N: killed by signal N): %.2000s", code, errt);
    free(errt);
    json_t *reg = qfx_registry(run_dir);
    json_t *gs = json_get(reg, "guests");
    cr_assert_eq(json_len(gs), 900);
    for (size_t i = 0; i < json_len(gs); i++) {
        const json_t *g = json_at(gs, i);
        cr_assert_str_eq(json_get_str(g, "state"), "failed", "%s", json_get_str(g, "name"));
        cr_assert(strstr(json_get_str(g, "reason"), "launching QEMU"), "%s: %s", json_get_str(g, "name"),
                  json_get_str(g, "reason"));
    }
    json_free(reg);
    cr_assert_eq(leases_held("/vm0-"), 0);
}

/* The control socket cannot be created (a directory is in its way): a
 * setup error, exit 3, said once; the fleet freed once (it used to be freed
 * twice with --until-ready, an abort in uv_close) and no guest booted or
 * declared up on the way out. */
static void control_socket_blocked(int until_ready)
{
    char cfg[320], sock[400], in[420];
    snprintf(cfg, sizeof(cfg), "%s/missing.cfg", dir);
    write_unrunnable_qemu_cfg(cfg);
    snprintf(sock, sizeof(sock), "%s/control.sock", run_dir);
    cr_assert_eq(fs_mkdir_p(sock, 0700, 0), 0);
    snprintf(in, sizeof(in), "%s/keep", sock);
    char e[256];
    cr_assert_eq(fs_write_atomic(in, "x", 1, 0600, e, sizeof(e)), 0, "%s", e);
    char *args[] = { QFLEET, "up", cfg, "--count", "2", "--run-dir", run_dir, until_ready ? "--until-ready" : "--no-ssh",
                     NULL };
    pid_t pid = start_qfleet(args);
    int code = tu_wait_exit(pid, 60000);
    char *errt = tu_slurp_in(dir, "err.txt"), *out = tu_slurp_in(dir, "out.txt");
    cr_assert_eq(code, 3, "exit %d: %s", code, errt);
    cr_assert(strstr(errt, "control socket") && strstr(errt, sock), "%s", errt);
    cr_assert_not(strstr(errt, "is up"), "%s", errt);
    cr_assert_not(strstr(errt, "launching"), "a guest booted after the setup error: %s", errt);
    cr_assert_str_eq(out, "", "a result table after a setup error: %s", out);
    free(errt);
    free(out);
}

Test(fleet_setup, control_socket_error_exits_3_with_until_ready) { control_socket_blocked(1); }
Test(fleet_setup, control_socket_error_exits_3_without_until_ready) { control_socket_blocked(0); }

/* DTS reaches a guest through the first user netdev's forward, whatever
 * slot its NIC sits in: no NIC at 1f, the nic written before its user
 * backend, and the guest still gets to ready with an SSH login. */
Test(fleet, control_nic_without_1f_reaches_ready_with_ssh)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    write_cfg_net(cfg, "console=ttyS0 quiet panic=-1", "    type=nic,opt_model=e1000;\n    type=user;\n",
                  NULL);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "-q", NULL };
    pid_t pid = start_qfleet(args);
    json_t *reg = qfx_wait_settled(run_dir, 1, 300000);
    char *err = tu_slurp_in(dir, "err.txt");
    cr_assert(reg, "guest did not settle: %s", err);
    json_t *g = json_at(json_get(reg, "guests"), 0);
    cr_assert_str_eq(json_get_str(g, "state"), "ready", "%s", json_get_str(g, "reason"));
    cr_assert_str_eq(json_get_str(g, "ip"), "10.0.2.15");
    char un[256];
    qfx_ssh_run((int)json_get_int(g, "ssh_port", -1), "uname -r", un, sizeof(un));
    cr_assert(strstr(un, "amd64"), "uname -r said '%s'", un);
    json_free(reg);
    kill(pid, SIGINT);
    cr_assert_eq(tu_wait_exit(pid, 120000), 128 + SIGINT);
    free(err);
}

static int run_ip(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
    pid_t p = fork();
    if (p == 0) {
        execlp("ip", "ip", a1, a2, a3, a4, a5, (char *)NULL);
        _exit(127);
    }
    return tu_wait_exit(p, 10000);
}

/* A tap NIC with opt_br joins that bridge (a real one, made here), as
 * DTS's ifup script would make it; a missing bridge fails the guest
 * before QEMU runs, naming the bridge. */
Test(fleet, tap_nic_joins_its_bridge)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (CAP_NET_ADMIN) to make a bridge and taps");
    char br[16], cfg[320], net[256];
    snprintf(br, sizeof(br), "qftbr%d", (int)getpid() % 100000);
    cr_assert_eq(run_ip("link", "add", br, "type", "bridge"), 0, "ip link add %s type bridge", br);
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    snprintf(net, sizeof(net),
             "    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
             "    type=nic,opt_model=e1000;\n    type=tap,opt_br=%s,opt_script=no,opt_downscript=no;\n",
             br);
    write_cfg_net(cfg, "console=ttyS0 quiet panic=-1", net, NULL);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "-q", "--no-ssh", NULL };
    pid_t pid = start_qfleet(args);
    json_t *reg = qfx_wait_settled(run_dir, 1, 300000);
    char *err = tu_slurp_in(dir, "err.txt"), brif[64];
    json_t *g = reg ? json_at(json_get(reg, "guests"), 0) : NULL;
    int ports = 0;
    snprintf(brif, sizeof(brif), "/sys/class/net/%s/brif", br);
    DIR *d = opendir(brif);
    for (struct dirent *e; d && (e = readdir(d));)
        ports += !strncmp(e->d_name, "qf", 2);
    if (d)
        closedir(d);
    const char *state = g ? json_get_str(g, "state") : "(none)";
    const char *reason = g ? json_get_str(g, "reason") : err;
    kill(pid, SIGINT);
    int code = tu_wait_exit(pid, 120000);
    run_ip("link", "del", br, NULL, NULL);
    cr_assert_str_eq(state, "ready", "%s", reason);
    cr_assert_eq(ports, 1, "the guest's tap is not a port of %s", br);
    cr_assert_eq(code, 128 + SIGINT);
    json_free(reg);
    free(err);

    /* The same cfg once the bridge is gone: refused before QEMU runs. */
    char *args2[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "-q", "--until-ready", NULL };
    char rd2[400];
    snprintf(rd2, sizeof(rd2), "%s2", run_dir);
    args2[4] = rd2;
    pid = start_qfleet(args2);
    cr_assert_eq(tu_wait_exit(pid, 120000), 1);
    char *out = tu_slurp_in(dir, "out.txt"), want[64];
    snprintf(want, sizeof(want), "bridge %s does not exist", br);
    cr_assert(strstr(out, want), "stdout: %s", out);
    free(out);
}

/* What the host lacks is said before anything starts: a QEMU that is not
 * there is a set-up error (3), a kernel file that is not there a cfg
 * error (2); neither leaves a run dir behind. */
Test(fleet_setup, missing_qemu_or_kernel_exit_codes)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/q.cfg", dir);
    FILE *f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f, "[vm0]\nqemu =\n    path=%s/no-such-qemu;\nenable_kvm =\n    enable=no;\n", dir);
    fclose(f);
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--until-ready", NULL };
    cr_assert_eq(tu_wait_exit(start_qfleet(args), 60000), 3);
    char *e = tu_slurp_in(dir, "err.txt");
    cr_assert(strstr(e, "no-such-qemu: No such file or directory"), "%s", e);
    free(e);
    cr_assert_neq(access(run_dir, F_OK), 0, "a run dir was made");
    f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f, "[vm0]\nkernel =\n    file=%s/no-such-vmlinuz;\nenable_kvm =\n    enable=no;\n", dir);
    fclose(f);
    cr_assert_eq(tu_wait_exit(start_qfleet(args), 60000), 2);
    e = tu_slurp_in(dir, "err.txt");
    cr_assert(strstr(e, "kernel ") && strstr(e, "no-such-vmlinuz: No such file or directory"), "%s", e);
    free(e);
}

/* A QEMU that never serves QMP (a stand-in: real QEMU always does) fails
 * its guest within --boot-timeout, saying so, not after a fixed 30 s. */
static void write_silent_qemu_cfg(char *cfg, size_t len)
{
    char qemu[320];
    snprintf(qemu, sizeof(qemu), "%s/silent-qemu", dir);
    FILE *f = fopen(qemu, "w");
    cr_assert(f);
    fputs("#!/bin/sh\nexec sleep 600\n", f);
    fclose(f);
    cr_assert_eq(chmod(qemu, 0755), 0);
    snprintf(cfg, len, "%s/silent.cfg", dir);
    f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f, "[vm0]\nqemu =\n    path=%s;\nenable_kvm =\n    enable=no;\n", qemu);
    fclose(f);
}

Test(fleet_setup, silent_qmp_fails_within_the_boot_timeout)
{
    char cfg[320];
    write_silent_qemu_cfg(cfg, sizeof(cfg));
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--boot-timeout", "3", "--until-ready", NULL };
    cr_assert_eq(tu_wait_exit(start_qfleet(args), 60000), 1);
    json_t *reg = qfx_registry(run_dir);
    const char *why = json_get_str(json_at(json_get(reg, "guests"), 0), "reason");
    cr_assert(why && strstr(why, "QMP") && strstr(why, "3000 ms"), "%s", why ? why : "(none)");
    json_free(reg);
}

/* `qfleet down` while the guests still boot: up does not exit 0 ("all
 * ready"), it exits 1. */
Test(fleet_setup, down_during_boot_is_not_success)
{
    char cfg[320], sock[400];
    write_silent_qemu_cfg(cfg, sizeof(cfg));
    char *args[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--boot-timeout", "120", "-q", NULL };
    pid_t up = start_qfleet(args);
    snprintf(sock, sizeof(sock), "%s/control.sock", run_dir);
    cr_assert_eq(tu_wait_path(sock, 30000), 0, "no control socket");
    pid_t down = fork();
    if (down == 0) {
        setenv("QFLEET_STATE_DIR", state_dir, 1);
        execl(QFLEET, QFLEET, "down", run_dir, (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(tu_wait_exit(down, 60000), 0);
    cr_assert_eq(tu_wait_exit(up, 60000), 1);
}
